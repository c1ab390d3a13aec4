//! One long-lived, pipelined connection to a shard, multiplexing many clients' requests.
//!
//! A [`ConnHandle`] sends [`Batch`]es over a bounded channel to a writer task, which takes
//! whatever is queued, records each batch in the in-flight FIFO (another bounded channel) and
//! writes them with one syscall. A reader task cuts replies off the socket in order and
//! completes the oldest batch once it has all its replies. Redis answers in order on one
//! connection, so FIFO matching is exact. When either side fails, every pending and queued batch
//! is answered with an error: nothing waits forever.
//!
//! Deadlines and health checks count from the connection's last progress, not from when a
//! request was queued: a 200 MB value takes a while to cross, and the requests behind it (a
//! health check's PING among them) must not time out while bytes are still moving. A
//! connection with requests in flight that has moved bytes within the timeout is healthy
//! without a PING; one that has not is checked, and closed if the PING goes unanswered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use telemetry::stats::{AtomicHistogram, LATENCY_BOUNDS_NS};

use crate::error::BackendError;
use crate::protocol::{Request, reply_len};

/// Replies to one batch, in request order.
pub type BatchResult = Result<Vec<Bytes>, BackendError>;

/// Requests written back to back; `count` replies complete it.
pub struct Batch {
    pub bytes: Bytes,
    pub count: usize,
    pub done: oneshot::Sender<BatchResult>,
}

impl Batch {
    /// Answers the batch with an error (the receiver may be gone; that is fine).
    pub fn fail(self, e: BackendError) {
        let _ = self.done.send(Err(e));
    }
}

/// How to reach and talk to one shard.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// The shard's statistics (shared by its connections).
    pub stats: Arc<BackendStats>,
    /// Ask a new connection's server whether it is an AutoCache shard (`INFO server`), so
    /// traced commands can carry their context to it.
    pub detect_autocache: bool,
    pub addr: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// A request unanswered this long closes the connection (failing everything on it).
    pub request_timeout: Duration,
    /// Batches queued per connection before senders wait.
    pub queue: usize,
}

/// What the metrics say about one shard.
pub struct BackendStats {
    /// Round trips of request batches, in nanoseconds (kept when `timed`).
    pub latency: AtomicHistogram,
    pub timed: bool,
    /// Failed requests by [`ErrorKind`].
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// The server said it is an AutoCache shard.
    pub autocache: AtomicBool,
}

impl std::fmt::Debug for BackendStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendStats")
            .field("requests", &self.latency.count())
            .finish_non_exhaustive()
    }
}

/// Why requests to a shard failed, as `autocache_backend_errors_total{kind}` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A connection attempt failed.
    Connect,
    Auth,
    /// A request failed fast: no live connection.
    Unavailable,
    Timeout,
    /// The connection broke with the request in flight.
    Lost,
    Protocol,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Auth,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Lost,
        ErrorKind::Protocol,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Auth => "auth",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Lost => "lost",
            ErrorKind::Protocol => "protocol",
        }
    }

    pub fn of(e: &BackendError) -> ErrorKind {
        match e {
            BackendError::Unavailable { .. } => ErrorKind::Unavailable,
            BackendError::Lost { .. } => ErrorKind::Lost,
            BackendError::Timeout { .. } => ErrorKind::Timeout,
            BackendError::Auth { .. } => ErrorKind::Auth,
            BackendError::Protocol { .. } => ErrorKind::Protocol,
        }
    }
}

impl BackendStats {
    pub fn new(timed: bool) -> BackendStats {
        BackendStats {
            latency: AtomicHistogram::new(&LATENCY_BOUNDS_NS),
            timed,
            errors: Default::default(),
            autocache: AtomicBool::new(false),
        }
    }

    pub fn error(&self, kind: ErrorKind, requests: u64) {
        if let Some(c) = self.errors.get(kind as usize) {
            c.fetch_add(requests, Relaxed);
        }
    }

    /// `(kind, failed requests)` for every kind.
    pub fn errors(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL
            .into_iter()
            .zip(self.errors.iter())
            .map(|(k, c)| (k, c.load(Relaxed)))
    }
}

/// A cloneable handle to a connection's driver tasks.
#[derive(Clone)]
pub struct ConnHandle {
    tx: mpsc::Sender<Batch>,
    closed: CancellationToken,
    addr: Arc<str>,
    progress: Arc<Progress>,
}

/// When the connection last moved bytes either way, and how many batches it has written
/// whose replies have not all arrived.
struct Progress {
    base: Instant,
    /// Nanoseconds after `base`.
    last: AtomicU64,
    outstanding: AtomicUsize,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last: AtomicU64::new(0),
            outstanding: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(ns, Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last.load(Relaxed))
    }

    /// Busy and moving: requests in flight and bytes moved within `window`.
    fn moving(&self, window: Duration) -> bool {
        self.outstanding.load(Relaxed) > 0 && self.last().elapsed() < window
    }
}

/// Largest write the writer assembles from queued batches.
const MAX_WRITE: usize = 256 * 1024;
/// A large write is made in pieces of this size, noting progress after each.
const PROGRESS_PIECE: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;

impl ConnHandle {
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Queues a batch; if the connection is closed the batch is failed.
    pub async fn send(&self, batch: Batch) {
        if let Err(mpsc::error::SendError(b)) = self.tx.send(batch).await {
            b.fail(self.lost("connection closed"));
        }
    }

    /// Sends requests and waits for their replies.
    pub async fn call(&self, bytes: Bytes, count: usize) -> BatchResult {
        let (done, rx) = oneshot::channel();
        self.send(Batch { bytes, count, done }).await;
        rx.await
            .unwrap_or_else(|_| Err(self.lost("connection closed")))
    }

    /// A PING round trip (health checks and deadpool's recycle); a connection busy moving
    /// bytes (see the module doc) passes without one.
    pub async fn ping(&self, timeout: Duration) -> Result<(), BackendError> {
        if self.progress.moving(timeout) {
            return Ok(());
        }
        let ping = Request::from_args(&["PING"]).raw;
        match tokio::time::timeout(timeout, self.call(ping, 1)).await {
            Err(_) => Err(BackendError::Timeout {
                addr: self.addr.to_string(),
                ms: timeout.as_millis() as u64,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(r)) if r.first().is_some_and(|r| r.starts_with(b"+PONG")) => Ok(()),
            Ok(Ok(r)) => Err(BackendError::Protocol {
                addr: self.addr.to_string(),
                reason: format!(
                    "PING answered {:?}",
                    r.first()
                        .map(|b| String::from_utf8_lossy(b).trim_end().to_string())
                ),
            }),
        }
    }

    /// Stops the driver tasks; pending requests fail.
    pub fn close(&self) {
        self.closed.cancel();
    }

    fn lost(&self, reason: &str) -> BackendError {
        BackendError::Lost {
            addr: self.addr.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Connects, authenticates, and starts the driver tasks. `on_close` is notified when the
/// connection dies, so its owner can replace it.
pub async fn connect(
    settings: &ConnSettings,
    on_close: Arc<Notify>,
) -> Result<ConnHandle, BackendError> {
    connect_with(settings, on_close, None).await
}

/// The socket send buffer of a bulk connection. Its writer counts a piece as progress once the
/// kernel has taken it; with the default, autotuned buffer (up to 4 MiB) a shard that reads
/// slowly could leave megabytes unread behind the last piece for longer than the request
/// timeout without the connection seeing any progress.
pub const BULK_SEND_BUFFER: u32 = 256 * 1024;

/// [`connect`], with the socket's send buffer set to `send_buffer` bytes when given (bulk
/// connections: [`BULK_SEND_BUFFER`]).
pub async fn connect_with(
    settings: &ConnSettings,
    on_close: Arc<Notify>,
    send_buffer: Option<u32>,
) -> Result<ConnHandle, BackendError> {
    let addr = settings.addr.clone();
    let unavailable = |reason: String| BackendError::Unavailable {
        addr: addr.clone(),
        reason,
    };
    let mut stream = tokio::time::timeout(settings.connect_timeout, open(&addr, send_buffer))
        .await
        .map_err(|_| unavailable("connect timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    if let Some(pass) = &settings.password {
        let auth = match &settings.username {
            Some(user) => Request::from_args(&["AUTH", user.as_str(), pass.as_str()]),
            None => Request::from_args(&["AUTH", pass.as_str()]),
        };
        let reply =
            tokio::time::timeout(settings.connect_timeout, roundtrip(&mut stream, &auth.raw))
                .await
                .map_err(|_| unavailable("AUTH timed out".into()))?
                .map_err(unavailable)?;
        if !reply.starts_with(b"+OK") {
            return Err(BackendError::Auth {
                addr,
                reason: String::from_utf8_lossy(&reply).trim_end().to_string(),
            });
        }
    }
    if settings.detect_autocache && !settings.stats.autocache.load(Relaxed) {
        let info = Request::from_args(&["INFO", "server"]);
        if let Ok(Ok(reply)) =
            tokio::time::timeout(settings.connect_timeout, roundtrip(&mut stream, &info.raw)).await
        {
            let is_autocache = reply
                .windows(b"autocache_version:".len())
                .any(|w| w == b"autocache_version:");
            settings.stats.autocache.store(is_autocache, Relaxed);
        }
    }
    let (r, w) = stream.into_split();
    let queue = settings.queue.max(1);
    let (tx, rx) = mpsc::channel(queue);
    let (inflight_tx, inflight_rx) = mpsc::channel(queue * 2);
    let closed = CancellationToken::new();
    let addr: Arc<str> = Arc::from(addr.as_str());
    let progress = Arc::new(Progress::new());
    tokio::spawn(writer(
        w,
        rx,
        inflight_tx,
        closed.clone(),
        settings.request_timeout,
        addr.clone(),
        settings.stats.clone(),
        progress.clone(),
    ));
    tokio::spawn(reader(
        r,
        inflight_rx,
        closed.clone(),
        addr.clone(),
        on_close,
        settings.request_timeout,
        settings.stats.clone(),
        progress.clone(),
    ));
    Ok(ConnHandle {
        tx,
        closed,
        addr,
        progress,
    })
}

/// A TCP connection to `addr`, with the given send buffer size if any.
async fn open(addr: &str, send_buffer: Option<u32>) -> std::io::Result<TcpStream> {
    let Some(size) = send_buffer else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_send_buffer_size(size)?;
        match socket.connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
    }))
}

/// Writes one request on a fresh connection and reads one reply (setup only).
pub async fn roundtrip(stream: &mut TcpStream, req: &[u8]) -> Result<Bytes, String> {
    stream.write_all(req).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match reply_len(&buf) {
            Ok(Some(n)) => return Ok(buf.split_to(n).freeze()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => return Err("connection closed by server".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

struct Pending {
    count: usize,
    replies: Vec<Bytes>,
    done: oneshot::Sender<BatchResult>,
    deadline: Instant,
}

#[allow(clippy::too_many_arguments)]
async fn writer(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Batch>,
    inflight: mpsc::Sender<Pending>,
    closed: CancellationToken,
    timeout: Duration,
    addr: Arc<str>,
    stats: Arc<BackendStats>,
    progress: Arc<Progress>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    'outer: loop {
        let first = tokio::select! {
            biased;
            _ = closed.cancelled() => break,
            b = rx.recv() => match b {
                Some(b) => b,
                None => break,
            },
        };
        // Let the other ready tasks (clients planning their requests) queue their batches
        // before this one goes out: one write then carries many. Without this, a client task
        // that wakes this one and parks has its batch written alone, one syscall per request.
        if rx.is_empty() {
            tokio::task::yield_now().await;
        }
        buf.clear();
        let deadline = Instant::now() + timeout;
        let mut next = Some(first);
        while let Some(b) = next.take() {
            // Registered before the bytes go out, so the reader always finds it.
            let p = Pending {
                count: b.count,
                replies: Vec::with_capacity(b.count),
                done: b.done,
                deadline,
            };
            if inflight.send(p).await.is_err() {
                break 'outer;
            }
            progress.outstanding.fetch_add(1, Relaxed);
            buf.extend_from_slice(&b.bytes);
            if buf.len() < MAX_WRITE {
                next = rx.try_recv().ok();
            }
        }
        // Large buffers (a big value) go out a piece at a time, so progress is seen while
        // they cross.
        for piece in buf.chunks(PROGRESS_PIECE) {
            if w.write_all(piece).await.is_err() {
                break 'outer;
            }
            progress.touch();
        }
        if buf.capacity() > 4 * MAX_WRITE {
            buf = BytesMut::with_capacity(READ_CHUNK);
        }
    }
    closed.cancel();
    // Batches queued but never written: nobody else will answer them.
    rx.close();
    while let Ok(b) = rx.try_recv() {
        stats.error(ErrorKind::Lost, b.count as u64);
        b.fail(BackendError::Lost {
            addr: addr.to_string(),
            reason: "connection closed".into(),
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn reader(
    mut r: OwnedReadHalf,
    mut inflight: mpsc::Receiver<Pending>,
    closed: CancellationToken,
    addr: Arc<str>,
    on_close: Arc<Notify>,
    timeout: Duration,
    stats: Arc<BackendStats>,
    progress: Arc<Progress>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let failure: BackendError = 'outer: loop {
        // The oldest request's deadline, pushed back while bytes are moving.
        let deadline = pending
            .front()
            .map(|p| p.deadline.max(progress.last() + timeout));
        tokio::select! {
            biased;
            _ = closed.cancelled() => break BackendError::Lost {
                addr: addr.to_string(),
                reason: "connection closed".into(),
            },
            p = inflight.recv() => {
                match p {
                    Some(p) => pending.push_back(p),
                    None => break BackendError::Lost {
                        addr: addr.to_string(),
                        reason: "connection closed".into(),
                    },
                }
                continue;
            }
            _ = sleep_until_opt(deadline), if deadline.is_some() => {
                // The writer may have moved bytes while this slept.
                if progress.last() + timeout > Instant::now() {
                    continue;
                }
                break BackendError::Timeout {
                    addr: addr.to_string(),
                    ms: timeout.as_millis() as u64,
                };
            }
            n = r.read_buf(&mut buf) => match n {
                Ok(0) => break BackendError::Lost {
                    addr: addr.to_string(),
                    reason: "connection closed by server".into(),
                },
                Ok(_) => progress.touch(),
                Err(e) => break BackendError::Lost { addr: addr.to_string(), reason: e.to_string() },
            },
        }
        loop {
            match reply_len(&buf) {
                Ok(Some(n)) => {
                    let reply = buf.split_to(n).freeze();
                    if pending.is_empty() {
                        while let Ok(p) = inflight.try_recv() {
                            pending.push_back(p);
                        }
                    }
                    let Some(front) = pending.front_mut() else {
                        break 'outer BackendError::Protocol {
                            addr: addr.to_string(),
                            reason: "reply without a request".into(),
                        };
                    };
                    front.replies.push(reply);
                    if front.replies.len() >= front.count
                        && let Some(p) = pending.pop_front()
                    {
                        if stats.timed {
                            // The deadline is the write time plus the timeout.
                            let sent = p.deadline.checked_sub(timeout).unwrap_or(p.deadline);
                            stats
                                .latency
                                .record_duration(Instant::now().saturating_duration_since(sent));
                        }
                        progress.outstanding.fetch_sub(1, Relaxed);
                        let _ = p.done.send(Ok(p.replies));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    break 'outer BackendError::Protocol {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    };
                }
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
    };
    closed.cancel();
    tracing::debug!(backend = %addr, error = %failure, "backend connection closed");
    on_close.notify_one();
    inflight.close();
    while let Ok(p) = inflight.try_recv() {
        pending.push_back(p);
    }
    let kind = ErrorKind::of(&failure);
    for p in pending {
        stats.error(kind, p.count as u64);
        let _ = p.done.send(Err(failure.clone()));
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
