//! Fixtures: in-process shards, the proxy on 127.0.0.1:0, a `redis` crate client with long
//! timeouts (CI is slow), and a raw RESP connection for exact ordering checks.
#![allow(dead_code)]

pub mod near_ttl;
pub mod redis_cluster;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TIMEOUT: Duration = Duration::from_secs(60);

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!(
        "autocache-proxy-test-{}-{tag}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A shard in this process; stopped on `stop` or drop.
pub struct Shard {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Shard {
    pub async fn start() -> Shard {
        Shard::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Shard {
        Shard::start_with(addr, |_| {}).await
    }

    /// A shard on `addr` whose configuration `tune` adjusts.
    pub async fn start_with(addr: &str, tune: impl FnOnce(&mut shard::Config)) -> Shard {
        let listener = TcpListener::bind(addr).await.expect("bind shard");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let mut cfg = shard::Config {
            port: addr.port(),
            dir: temp_dir("shard"),
            ..shard::Config::default()
        };
        tune(&mut cfg);
        let task = tokio::spawn(async move {
            let _ = shard::run(listener, cfg, async {
                let _ = rx.await;
            })
            .await;
        });
        Shard {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The proxy in this process; stopped on `stop` or drop.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The admin server (`/metrics`, `/ready`), when started with one.
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), proxy::Error>>>,
}

pub fn config(seeds: &[String]) -> proxy::Config {
    proxy::Config {
        seeds: seeds.to_vec(),
        health_interval: Duration::from_millis(200),
        ..proxy::Config::default()
    }
}

impl Proxy {
    pub async fn start(cfg: proxy::Config) -> Proxy {
        Proxy::start_inner(cfg, false).await
    }

    /// [`Proxy::start`] with an admin server on 127.0.0.1:0 ([`Proxy::admin`]).
    pub async fn start_with_admin(cfg: proxy::Config) -> Proxy {
        Proxy::start_inner(cfg, true).await
    }

    async fn start_inner(cfg: proxy::Config, with_admin: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let admin = match with_admin {
            true => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind admin")),
            false => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr().expect("admin addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy::run_with_admin(
            listener,
            admin,
            cfg,
            async {
                let _ = rx.await;
            },
            move || {
                let _ = ready_tx.send(());
            },
        ));
        tokio::time::timeout(TIMEOUT, ready_rx)
            .await
            .expect("proxy ready in time")
            .expect("proxy ready");
        Proxy {
            addr,
            admin: admin_addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn over(shards: &[Shard]) -> Proxy {
        let seeds: Vec<String> = shards.iter().map(|s| s.addr.to_string()).collect();
        Proxy::start(config(&seeds)).await
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        connect_url(&self.url()).await
    }

    pub async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("proxy task").expect("proxy result");
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn connect_url(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("client");
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(TIMEOUT))
        .set_connection_timeout(Some(TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("connect")
}

/// A raw RESP connection: write bytes, read whole replies.
pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect raw"),
            buf: BytesMut::new(),
        }
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Reads and drops whatever arrives until the server closes the connection; true if it
    /// did within [`TIMEOUT`].
    pub async fn closed_after_replies(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            self.buf.clear();
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one complete reply (raw bytes).
    pub async fn reply(&mut self) -> Vec<u8> {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(n) = proxy::protocol::reply_len(&self.buf).expect("valid reply") {
                    return self.buf.split_to(n).to_vec();
                }
                let n = self.stream.read_buf(&mut self.buf).await.expect("read");
                assert!(
                    n > 0,
                    "connection closed; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        })
        .await
        .expect("reply in time")
    }

    /// Sends a command and returns its reply as text.
    pub async fn cmd(&mut self, args: &[&str]) -> String {
        let req = proxy::protocol::Request::from_args(args);
        self.send(&req.raw).await;
        String::from_utf8_lossy(&self.reply().await).into_owned()
    }

    /// True when the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Encodes a command as RESP.
pub fn resp(args: &[&str]) -> Vec<u8> {
    proxy::protocol::Request::from_args(args).raw.to_vec()
}

/// Keys spread over every shard of a 3-way static split (slot ranges 0-5460, 5461-10922,
/// 10923-16383), `n` of them.
pub fn spread_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key:{i}")).collect()
}

pub fn owner_3(key: &str) -> usize {
    let s = membership::Slot::for_key(key.as_bytes()).get();
    if s <= 5460 {
        0
    } else if s <= 10922 {
        1
    } else {
        2
    }
}

/// A Python interpreter that can `import redis` (redis-py): `$AUTOCACHE_PYTHON`, `python3` on
/// the PATH, or Debian's `/usr/bin/python3` with `python3-redis`. None (the test skips) only
/// when AUTOCACHE_SKIP_EXTERNAL=1; otherwise a missing redis-py fails the test.
pub fn redis_py() -> Option<String> {
    let candidates = std::env::var("AUTOCACHE_PYTHON")
        .into_iter()
        .chain(["python3".to_string(), "/usr/bin/python3".to_string()]);
    for py in candidates {
        let ok = std::process::Command::new(&py)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    if std::env::var("AUTOCACHE_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("redis-py missing; skipped (AUTOCACHE_SKIP_EXTERNAL=1)");
        return None;
    }
    panic!(
        "redis-py is needed: `apt-get install -y python3 python3-redis` (or set AUTOCACHE_SKIP_EXTERNAL=1 to skip)"
    );
}

/// Runs tests/clients/redis_py.py against `addr` and fails with its output unless it passes.
pub async fn run_redis_py(python: &str, addr: SocketAddr) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/redis_py.py");
    let out = tokio::time::timeout(
        TIMEOUT,
        tokio::process::Command::new(python)
            .arg(script)
            .arg(addr.port().to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("redis-py script in time")
    .expect("python runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "redis-py script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// An integer field of an INFO reply.
pub fn info_int(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {info}"))
}

/// Requests the proxy has sent to its shards (INFO shards).
pub async fn backend_requests(raw: &mut Raw) -> u64 {
    raw.cmd(&["INFO", "shards"])
        .await
        .lines()
        .filter_map(|l| l.split("requests=").nth(1))
        .filter_map(|v| v.split(',').next()?.parse::<u64>().ok())
        .sum()
}
