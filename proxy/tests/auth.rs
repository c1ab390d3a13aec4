//! Backend authentication that fails loudly: with a wrong or missing `backend-password`, clients
//! are answered at once with the shards' refusal and `/ready` says why the proxy is not ready;
//! the binary warns when `backend-password` comes without `requirepass`, and keeps its admin
//! port on loopback when `--bind 0.0.0.0` opens the client port.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A reply is "prompt" well under any client timeout; generous for a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(5);

/// A shard that wants `password`.
async fn protected_shard(password: &str) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = shard::Config {
        port: addr.port(),
        dir: temp_dir("auth-shard"),
        requirepass: Some(password.into()),
        ..shard::Config::default()
    };
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(shard::run(listener, cfg, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Sends GET through the proxy and returns the error text and how long the answer took.
async fn get_error(addr: SocketAddr) -> (String, Duration) {
    let mut raw = Raw::connect(addr).await;
    let t = Instant::now();
    let reply = tokio::time::timeout(PROMPT, raw.text(&["GET", "k"]))
        .await
        .expect("an answer, not a hang");
    (reply, t.elapsed())
}

async fn check_refused(backend_password: Option<&str>, expect: &str) {
    let (shard, _stop_shard) = protected_shard("right").await;
    let cfg = proxy::Config {
        seeds: vec![shard.to_string()],
        backend_password: backend_password.map(str::to_string),
        ..config(&[])
    };
    let proxy = Proxy::start_with_admin(cfg).await;
    let (addr, admin) = (proxy.addr, proxy.admin.expect("admin server"));
    let (reply, took) = get_error(addr).await;
    eprintln!("answered in {took:?}: {}", reply.trim_end());
    assert!(
        reply.starts_with("-ERR ") && reply.contains(expect),
        "{reply}"
    );
    assert!(
        reply.contains(&shard.to_string()) && reply.contains("credentials"),
        "names the shard and the cause: {reply}"
    );
    assert!(took < PROMPT, "answered in {took:?}");
    // Every request of a pipeline gets its answer, in order.
    let mut raw = Raw::connect(addr).await;
    raw.send(&[encode(&["SET", "a", "1"]), encode(&["PING"])].concat())
        .await;
    for _ in 0..2 {
        let r = String::from_utf8_lossy(&raw.reply().await).into_owned();
        assert!(r.contains(expect), "{r}");
    }
    let (status, body) = telemetry::admin::http_get(admin, "/ready")
        .await
        .expect("/ready");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("credentials") && body.contains(expect),
        "{body}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_backend_password_is_answered_at_once_and_not_ready() {
    check_refused(Some("wrong"), "WRONGPASS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_backend_password_is_answered_at_once_and_not_ready() {
    check_refused(None, "NOAUTH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_backend_password_serves_and_is_ready() {
    let (shard, _stop_shard) = protected_shard("right").await;
    let cfg = proxy::Config {
        seeds: vec![shard.to_string()],
        backend_password: Some("right".into()),
        requirepass: Some("clients".into()),
        ..config(&[])
    };
    let proxy = Proxy::start_with_admin(cfg).await;
    let (addr, admin) = (proxy.addr, proxy.admin.expect("admin server"));
    let mut raw = Raw::connect(addr).await;
    assert_eq!(raw.text(&["AUTH", "clients"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["SET", "k", "v"]).await, "+OK\r\n");
    let (status, body) = telemetry::admin::http_get(admin, "/ready")
        .await
        .expect("/ready");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    proxy.stop().await;
}

/// The binary, with `--bind 0.0.0.0` and a backend password but no requirepass: it warns about
/// the open access, and its admin server listens on loopback only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_warns_about_open_access_and_keeps_admin_on_loopback() {
    let (shard, _stop_shard) = protected_shard("right").await;
    let admin_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_autocache-proxy"))
        .args(["--bind", "0.0.0.0", "--port", "0"])
        .args(["--admin-port", &admin_port.to_string()])
        .args(["--seeds", &shard.to_string(), "--backend-password", "right"])
        .args(["--loglevel", "notice"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn autocache-proxy");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (mut warned, mut admin_line) = (None, None);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while warned.is_none() || admin_line.is_none() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("log lines in time")
            .expect("read")
            .expect("the proxy keeps running");
        if line.contains("WARN") && line.contains("requirepass") {
            warned = Some(line);
        } else if line.contains("admin HTTP server listening") {
            admin_line = Some(line);
        }
    }
    let admin_line = admin_line.unwrap_or_default();
    assert!(
        admin_line.contains(&format!("127.0.0.1:{admin_port}")),
        "{admin_line}"
    );
    let warned = warned.unwrap_or_default();
    assert!(warned.contains("backend-password"), "{warned}");
    let (status, _) =
        telemetry::admin::http_get(SocketAddr::from(([127, 0, 0, 1], admin_port)), "/health")
            .await
            .expect("/health on loopback");
    assert_eq!(status, 200);
    let _ = child.start_kill();
    let _ = child.wait().await;
}
