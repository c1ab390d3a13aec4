//! Shards as the proxy sees them: a few multiplexed connections each ([`conn`]), their
//! lifecycle managed by deadpool and a per-shard maintenance task ([`Backend`]), and the
//! registry of every shard address seen ([`Backends`]).

pub mod conn;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use deadpool::managed::{self, Metrics, Object, Pool, PoolError, RecycleError, RecycleResult};
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

pub use conn::{BackendStats, Batch, BatchResult, ConnHandle, ConnSettings, ErrorKind};

use crate::error::BackendError;

/// A blocking command's connection waits as long as the command does.
const DEDICATED_REQUEST_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Closes a dedicated connection when its owner is done with it (or dropped).
struct Closing(ConnHandle);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A backend connection one client holds from WATCH to EXEC (the shard's watch belongs to a
/// connection): opened when its first batch is sent, closed when its last holder lets go, so
/// the shard forgets the watch with it.
pub struct Pinned {
    backend: Arc<Backend>,
    conn: tokio::sync::OnceCell<Closing>,
}

impl Pinned {
    pub fn new(backend: Arc<Backend>) -> Arc<Pinned> {
        Arc::new(Pinned {
            backend,
            conn: tokio::sync::OnceCell::new(),
        })
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Queues a batch on the pinned connection (opening it first). A connection that failed
    /// fails every later batch too: the watch it held is gone.
    pub async fn send(&self, batch: Batch) {
        self.backend.requests.fetch_add(batch.count as u64, Relaxed);
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let settings = (*self.backend.settings).clone();
                conn::connect(&settings, Arc::new(Notify::new()))
                    .await
                    .map(Closing)
            })
            .await;
        match conn {
            Ok(c) if !c.0.is_closed() => c.0.send(batch).await,
            Ok(_) => batch.fail(self.backend.unavailable()),
            Err(e) => batch.fail(e),
        }
    }
}

/// deadpool manager: creates connections and recycles them with a PING.
pub struct Manager {
    settings: Arc<ConnSettings>,
    on_close: Arc<Notify>,
}

impl managed::Manager for Manager {
    type Type = ConnHandle;
    type Error = BackendError;

    async fn create(&self) -> Result<ConnHandle, BackendError> {
        let r = conn::connect(&self.settings, self.on_close.clone()).await;
        if let Err(e) = &r {
            let kind = match e {
                BackendError::Auth { .. } => ErrorKind::Auth,
                _ => ErrorKind::Connect,
            };
            self.settings.stats.error(kind, 1);
        }
        r
    }

    async fn recycle(&self, c: &mut ConnHandle, _: &Metrics) -> RecycleResult<BackendError> {
        if c.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        c.ping(self.settings.connect_timeout)
            .await
            .map_err(RecycleError::Backend)
    }
}

/// Backend health as INFO reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Never connected yet: senders wait up to the connect timeout.
    Connecting,
    Up,
    /// No live connection: commands fail fast.
    Down,
}

/// Settings shared by every backend.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub connections: usize,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub health_interval: Duration,
    pub queue: usize,
    /// Time request batches per shard (metrics on).
    pub timed: bool,
    /// Find out which shards are AutoCache shards (traces on).
    pub detect_autocache: bool,
    /// Notified when a connection is lost, a health check fails or a shard goes down: the slot
    /// map may be stale (a failover), so the topology refresher is asked to look at once.
    pub on_trouble: Option<Arc<Notify>>,
}

/// One shard: `connections` long-lived connections. Connection `i` of a shard always carries a
/// given client session's requests (`hint % connections`), so one client's commands to one
/// shard are never reordered across connections.
pub struct Backend {
    pub addr: String,
    settings: Arc<ConnSettings>,
    pool: Pool<Manager>,
    /// Fixed-size: slot `i` is connection `i`, `None` while it is down.
    conns: ArcSwap<Vec<Option<ConnHandle>>>,
    state: AtomicU8,
    last_error: Mutex<String>,
    /// Woken when connections change (senders waiting in `Connecting`).
    changed: Notify,
    /// Wakes the maintenance task (a connection closed).
    wake: Arc<Notify>,
    /// See [`BackendSettings::on_trouble`].
    trouble: Option<Arc<Notify>>,
    /// The last connection attempt was refused for its credentials.
    auth_failed: AtomicBool,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    stop: CancellationToken,
    /// A connection of its own for large requests, opened on first use (see [`Backend::send_bulk`]).
    bulk: tokio::sync::Mutex<Option<ConnHandle>>,
}

impl Backend {
    fn new(addr: &str, s: &BackendSettings, stop: CancellationToken) -> Arc<Backend> {
        let settings = Arc::new(ConnSettings {
            stats: Arc::new(BackendStats::new(s.timed)),
            detect_autocache: s.detect_autocache,
            addr: addr.to_string(),
            username: s.username.clone(),
            password: s.password.clone(),
            connect_timeout: s.connect_timeout,
            request_timeout: s.request_timeout,
            queue: s.queue,
        });
        let wake = Arc::new(Notify::new());
        let manager = Manager {
            settings: settings.clone(),
            on_close: wake.clone(),
        };
        let n = s.connections.max(1);
        // Building only fails without a runtime for the timeouts; we pass one.
        let pool = Pool::builder(manager)
            .max_size(n)
            .runtime(deadpool::Runtime::Tokio1)
            .create_timeout(Some(s.connect_timeout))
            .wait_timeout(Some(s.connect_timeout))
            .recycle_timeout(Some(s.connect_timeout))
            .build();
        let pool = match pool {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "deadpool build failed");
                // Unreachable with the settings above; fall back to a pool without timeouts.
                #[allow(clippy::expect_used)]
                Pool::builder(Manager {
                    settings: settings.clone(),
                    on_close: wake.clone(),
                })
                .max_size(n)
                .build()
                .expect("pool without timeouts")
            }
        };
        let b = Arc::new(Backend {
            addr: addr.to_string(),
            settings,
            pool,
            conns: ArcSwap::from_pointee(vec![None; n]),
            state: AtomicU8::new(State::Connecting as u8),
            last_error: Mutex::new("not connected yet".into()),
            changed: Notify::new(),
            wake,
            trouble: s.on_trouble.clone(),
            auth_failed: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            stop,
            bulk: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(maintain(b.clone(), s.health_interval));
        b
    }

    pub fn state(&self) -> State {
        match self.state.load(Relaxed) {
            0 => State::Connecting,
            // Connections can die between maintenance passes.
            1 if self.live().0 > 0 => State::Up,
            _ => State::Down,
        }
    }

    pub fn stats(&self) -> &BackendStats {
        &self.settings.stats
    }

    /// Whether traced commands can carry their context to this shard.
    pub fn speaks_trace(&self) -> bool {
        self.settings.stats.autocache.load(Relaxed)
    }

    pub fn last_error(&self) -> String {
        self.last_error.lock().clone()
    }

    /// The shard refuses the proxy's credentials (its last connection attempt failed on AUTH,
    /// and no connection is up).
    pub fn auth_failed(&self) -> bool {
        self.auth_failed.load(Relaxed) && self.state() != State::Up
    }

    /// Tells the topology refresher that this shard is in trouble (see `on_trouble`).
    fn raise_trouble(&self) {
        if let Some(t) = &self.trouble {
            t.notify_one();
        }
    }

    /// Live connections and the configured number.
    pub fn live(&self) -> (usize, usize) {
        let c = self.conns.load();
        (
            c.iter().flatten().filter(|c| !c.is_closed()).count(),
            c.len(),
        )
    }

    fn unavailable(&self) -> BackendError {
        // Marked up but without a live connection: they closed since the maintenance task last
        // looked, and it has not recorded why yet (the stored error is older, or the initial
        // "not connected yet").
        let reason = if self.state.load(Relaxed) == State::Up as u8 {
            "connection lost".to_string()
        } else {
            self.last_error()
        };
        BackendError::Unavailable {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// The connection for session `hint`, or the next live one; fails fast when the shard is
    /// down (waits up to the connect timeout only before the first connection).
    pub async fn pick(&self, hint: usize) -> Result<ConnHandle, BackendError> {
        // A backend still making its first connections is waited for (up to the connect
        // timeout, across however many updates it publishes meanwhile); a down one fails fast.
        let deadline = tokio::time::Instant::now() + self.settings.connect_timeout;
        loop {
            let notified = self.changed.notified();
            {
                let conns = self.conns.load();
                let n = conns.len();
                for k in 0..n {
                    if let Some(Some(c)) = conns.get((hint + k) % n)
                        && !c.is_closed()
                    {
                        return Ok(c.clone());
                    }
                }
            }
            if self.state() == State::Connecting && tokio::time::Instant::now() < deadline {
                let _ = tokio::time::timeout_at(deadline, notified).await;
                continue;
            }
            break;
        }
        Err(self.unavailable())
    }

    /// Queues a batch on the session's connection; a down shard fails it at once.
    pub async fn send(&self, hint: usize, batch: Batch) {
        self.requests.fetch_add(batch.count as u64, Relaxed);
        match self.pick(hint).await {
            Ok(c) => c.send(batch).await,
            Err(e) => self.fail(batch, e),
        }
    }

    /// Answers a batch that could not be sent with `e`, counting it.
    fn fail(&self, batch: Batch, e: BackendError) {
        self.failures.fetch_add(batch.count as u64, Relaxed);
        self.settings
            .stats
            .error(ErrorKind::of(&e), batch.count as u64);
        batch.fail(e);
    }

    /// Queues a large batch (a big value) on the shard's bulk connection, so the small requests
    /// of other sessions do not wait behind it on theirs. The caller keeps its own order: it
    /// sends nothing else to this shard until the batch is answered.
    pub async fn send_bulk(&self, batch: Batch) {
        self.requests.fetch_add(batch.count as u64, Relaxed);
        let conn = {
            let mut bulk = self.bulk.lock().await;
            match bulk.as_ref() {
                Some(c) if !c.is_closed() => Ok(c.clone()),
                _ => match conn::connect_with(
                    &self.settings,
                    Arc::new(Notify::new()),
                    Some(conn::BULK_SEND_BUFFER),
                )
                .await
                {
                    Ok(c) => {
                        *bulk = Some(c.clone());
                        Ok(c)
                    }
                    Err(e) => Err(e),
                },
            }
        };
        match conn {
            Ok(c) => c.send(batch).await,
            Err(e) => self.fail(batch, e),
        }
    }

    /// Sends requests and waits for their replies.
    /// Runs a blocking command (BLPOP, ...) on a connection of its own, opened for it and
    /// closed after it: it may wait for minutes, and on a shared connection every other
    /// client's requests would queue behind it. The connection has no request timeout (the
    /// command has its own). Dropping the future (the client went away) closes the connection,
    /// which ends the wait on the shard.
    pub async fn call_dedicated(&self, bytes: Bytes, count: usize) -> BatchResult {
        self.requests.fetch_add(count as u64, Relaxed);
        let settings = ConnSettings {
            request_timeout: DEDICATED_REQUEST_TIMEOUT,
            ..(*self.settings).clone()
        };
        let conn = Closing(conn::connect(&settings, Arc::new(Notify::new())).await?);
        let (done, rx) = oneshot::channel();
        conn.0.send(Batch { bytes, count, done }).await;
        rx.await.unwrap_or_else(|_| Err(self.unavailable()))
    }

    /// Queues a blocking command's batch on a connection of its own (see
    /// [`Backend::call_dedicated`]), holding `permit` while it waits; if the batch's receiver
    /// goes away first (the client closed), the connection is closed.
    pub fn send_dedicated(
        self: &Arc<Self>,
        batch: Batch,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let backend = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Batch {
                bytes,
                count,
                mut done,
            } = batch;
            tokio::select! {
                r = backend.call_dedicated(bytes, count) => {
                    let _ = done.send(r);
                }
                () = done.closed() => {}
            }
        });
    }

    pub async fn call(&self, hint: usize, bytes: Bytes, count: usize) -> BatchResult {
        let (done, rx) = oneshot::channel();
        self.send(hint, Batch { bytes, count, done }).await;
        rx.await.unwrap_or_else(|_| Err(self.unavailable()))
    }

    fn publish(&self, held: &[Option<Object<Manager>>], error: Option<String>) {
        let conns: Vec<Option<ConnHandle>> = held.iter().map(|o| o.as_deref().cloned()).collect();
        let live = conns.iter().flatten().count();
        self.conns.store(Arc::new(conns));
        if let Some(e) = error {
            *self.last_error.lock() = e;
        }
        let state = if live > 0 {
            State::Up
        } else if self.state.load(Relaxed) == State::Connecting as u8
            && self.last_error() == "not connected yet"
        {
            State::Connecting
        } else {
            State::Down
        };
        let old = self.state.swap(state as u8, Relaxed);
        if old != state as u8 {
            match state {
                State::Up => tracing::info!(backend = %self.addr, "backend up"),
                State::Down => {
                    tracing::warn!(backend = %self.addr, error = %self.last_error(), "backend down");
                    self.raise_trouble();
                }
                State::Connecting => {}
            }
        }
        self.changed.notify_waiters();
    }
}

fn describe(e: PoolError<BackendError>) -> String {
    match e {
        PoolError::Backend(BackendError::Unavailable { reason, .. }) => reason,
        PoolError::Backend(BackendError::Auth { reason, .. }) => {
            format!("authentication failed: {reason}")
        }
        PoolError::Backend(e) => e.to_string(),
        PoolError::Timeout(_) => "connect timed out".into(),
        other => other.to_string(),
    }
}

/// Keeps `connections` connections open: replaces dead ones (deadpool recycles or recreates
/// them), PINGs live ones every `health` interval, and retries a down shard at that pace.
async fn maintain(b: Arc<Backend>, health: Duration) {
    let n = b.conns.load().len();
    let mut held: Vec<Option<Object<Manager>>> = (0..n).map(|_| None).collect();
    loop {
        let mut changed = false;
        for h in held.iter_mut() {
            if h.as_ref().is_some_and(|o| o.is_closed()) {
                *b.last_error.lock() = "connection lost".into();
                b.raise_trouble();
                // Back to the pool; its recycle check discards it and the next get() creates a
                // fresh connection.
                *h = None;
                changed = true;
            }
        }
        let mut error = None;
        for h in held.iter_mut() {
            if h.is_none() {
                match b.pool.get().await {
                    Ok(o) => {
                        *h = Some(o);
                        b.auth_failed.store(false, Relaxed);
                        changed = true;
                    }
                    Err(e) => {
                        let auth = matches!(e, PoolError::Backend(BackendError::Auth { .. }));
                        b.auth_failed.store(auth, Relaxed);
                        error = Some(describe(e));
                        break;
                    }
                }
            }
        }
        if changed || error.is_some() {
            b.publish(&held, error);
        }
        let idle = if held.iter().all(Option::is_some) {
            health
        } else {
            // Down or partly down: retry soon, but do not spin on a flapping server.
            health.min(Duration::from_millis(500))
        };
        tokio::select! {
            _ = b.stop.cancelled() => break,
            _ = b.wake.notified() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = tokio::time::sleep(idle) => {
                for h in held.iter_mut() {
                    if let Some(o) = h
                        && let Err(e) = o.ping(b.settings.connect_timeout.max(Duration::from_secs(1))).await
                    {
                        tracing::warn!(backend = %b.addr, error = %e, "health check failed");
                        b.raise_trouble();
                        o.close();
                        *h = None;
                        *b.last_error.lock() = e.to_string();
                    }
                }
            }
        }
    }
    for h in held.iter().flatten() {
        h.close();
    }
    if let Ok(mut bulk) = b.bulk.try_lock()
        && let Some(c) = bulk.take()
    {
        c.close();
    }
    b.conns.store(Arc::new(vec![None; n]));
}

/// Every shard address the proxy has seen, each with its connections.
pub struct Backends {
    settings: BackendSettings,
    map: Mutex<HashMap<String, Arc<Backend>>>,
    stop: CancellationToken,
}

impl Backends {
    pub fn new(settings: BackendSettings, stop: CancellationToken) -> Backends {
        Backends {
            settings,
            map: Mutex::new(HashMap::new()),
            stop,
        }
    }

    /// The backend for `addr`, connecting to it on first use.
    pub fn get(&self, addr: &str) -> Arc<Backend> {
        let mut map = self.map.lock();
        if let Some(b) = map.get(addr) {
            return b.clone();
        }
        let b = Backend::new(addr, &self.settings, self.stop.child_token());
        map.insert(addr.to_string(), b.clone());
        b
    }

    /// The backend for `addr` if the proxy has one (never connects).
    pub fn peek(&self, addr: &str) -> Option<Arc<Backend>> {
        self.map.lock().get(addr).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Backend>> {
        let mut v: Vec<_> = self.map.lock().values().cloned().collect();
        v.sort_by(|a, b| a.addr.cmp(&b.addr));
        v
    }

    pub fn settings(&self) -> &BackendSettings {
        &self.settings
    }
}
