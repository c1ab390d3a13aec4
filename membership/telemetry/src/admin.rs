//! The admin HTTP server: `GET /metrics` (Prometheus text), `GET /health` (200 while the
//! process runs) and `GET /ready` (200 while the server is serving, else 503).
//!
//! Its connections cost memory until they close, so they are bounded: a connection that
//! neither sends nor receives a byte for `idle_timeout` is closed (half-open connections and
//! idle keep-alives alike), and at most [`MAX_CONNECTIONS`] are open at once; further ones wait
//! in the listen backlog until one closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Readiness as the server defines it (the proxy: it has a slot map; the shard: standalone, or
/// joined and owning slots).
pub type ReadyFn = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the admin server answers from.
pub struct Admin {
    pub metrics: Option<Arc<Metrics>>,
    pub ready: ReadyFn,
    /// A connection without traffic this long is closed (`admin-idle-timeout-ms`).
    pub idle_timeout: Duration,
}

/// Admin connections open at once; a scraper, a probe and a person need a handful.
pub const MAX_CONNECTIONS: usize = 64;

/// The `Content-Type` of the Prometheus text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin HTTP server listening (/metrics, /health, /ready)");
    }
    let idle = admin.idle_timeout.max(Duration::from_millis(1));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(admin);
    let listener = Bounded {
        inner: listener,
        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        idle,
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// The admin listener: accepts while fewer than [`MAX_CONNECTIONS`] are open, and hands out
/// connections that close themselves when idle.
struct Bounded {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl axum::serve::Listener for Bounded {
    type Io = IdleClosing;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (IdleClosing, std::net::SocketAddr) {
        // A permit is held for the connection's life (the semaphore is never closed).
        let permit = self.slots.clone().acquire_owned().await.ok();
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    let deadline = Box::pin(tokio::time::sleep(self.idle));
                    return (
                        IdleClosing {
                            io,
                            idle: self.idle,
                            deadline,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                // Out of file descriptors and the like: wait rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that fails with `TimedOut` (and is then dropped by the HTTP server) once no
/// byte has moved in either direction for `idle`. Every read or write that makes progress
/// pushes the deadline back.
struct IdleClosing {
    io: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl IdleClosing {
    fn progressed(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Called when the socket is not ready: an error once the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "idle admin connection closed")
}

impl AsyncRead for IdleClosing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for IdleClosing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

async fn metrics(State(a): State<Arc<Admin>>) -> Response {
    match &a.metrics {
        Some(m) => {
            let m = m.clone();
            // Scrapes run the instruments' callbacks; keep them off the async workers.
            match tokio::task::spawn_blocking(move || m.render()).await {
                Ok(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        None => (StatusCode::NOT_FOUND, "metrics are disabled\n").into_response(),
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(a): State<Arc<Admin>>) -> Response {
    match (a.ready)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// A minimal HTTP/1.1 `GET` (status code and body) for probes and tests: one request per
/// connection, `Connection: close`, no redirects, no TLS.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(bad)?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Decodes a chunked body (sizes in hex, each chunk followed by CRLF).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        let Some(chunk) = rest.get(..n) else {
            out.push_str(rest);
            break;
        };
        out.push_str(chunk);
        s = rest.get(n + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An admin server with the given idle timeout on 127.0.0.1:0.
    async fn start(idle: Duration) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let admin = Arc::new(Admin {
            metrics: None,
            ready: Box::new(|| Ok(())),
            idle_timeout: idle,
        });
        tokio::spawn(serve(listener, admin, stop.clone()));
        (addr, stop)
    }

    /// Waits for the server to close `s` (bounded: 10 s); returns how long after `since`.
    async fn closed_after(s: &mut TcpStream, since: std::time::Instant) -> Duration {
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return since.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("idle connection still open after 10 s"),
            }
        }
    }

    #[tokio::test]
    async fn idle_and_half_open_connections_are_closed() {
        let (addr, stop) = start(Duration::from_millis(200)).await;
        // Connected, never a byte.
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let silent_since = std::time::Instant::now();
        // Half a request.
        let mut half = TcpStream::connect(addr).await.expect("connect");
        half.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        let half_since = std::time::Instant::now();
        // A keep-alive connection after one answered request.
        let mut kept = TcpStream::connect(addr).await.expect("connect");
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).await.expect("answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let kept_since = std::time::Instant::now();
        for (s, since) in [
            (&mut silent, silent_since),
            (&mut half, half_since),
            (&mut kept, kept_since),
        ] {
            let took = closed_after(s, since).await;
            // Not before the timeout (less a little: the server's clock started first).
            assert!(took >= Duration::from_millis(150), "{took:?}");
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let (addr, stop) = start(Duration::from_millis(300)).await;
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        // Answered once idle connections have been closed, not starved.
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(10), http_get(addr, "/ready"))
                .await
                .expect("answered in time")
                .expect("GET");
        assert_eq!((status, body.as_str()), (200, "ready\n"));
        stop.cancel();
    }
}
