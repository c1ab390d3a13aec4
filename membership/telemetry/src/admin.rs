//! The admin HTTP server: `GET /metrics` (Prometheus text), `GET /health` (200 while the
//! process runs) and `GET /ready` (200 while the server is serving, else 503).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Readiness as the server defines it (the proxy: it has a slot map; the shard: standalone, or
/// joined and owning slots).
pub type ReadyFn = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the admin server answers from.
pub struct Admin {
    pub metrics: Option<Arc<Metrics>>,
    pub ready: ReadyFn,
}

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
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(admin);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
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
