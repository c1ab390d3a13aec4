//! Fixtures of the proxy's tests: the proxy on 127.0.0.1:0 and Redis Cluster helpers; shards,
//! clients and the raw RESP connection come from `shard::testing`.
#![allow(dead_code)]

pub mod near_ttl;
pub mod redis_cluster;

use std::net::SocketAddr;
use std::time::Duration;

pub use shard::testing::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The proxy in this process; stopped on `stop` or drop.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The admin server (`/metrics`, `/ready`), when started with one.
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    ready: Option<oneshot::Receiver<()>>,
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
        let mut p = Proxy::spawn(cfg, with_admin).await;
        p.wait_ready().await;
        p
    }

    /// The proxy, without waiting until it is ready (it has a slot map):
    /// [`Proxy::wait_ready`] does.
    pub async fn spawn(cfg: proxy::Config, with_admin: bool) -> Proxy {
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
        Proxy {
            addr,
            admin: admin_addr,
            stop: Some(tx),
            ready: Some(ready_rx),
            task: Some(task),
        }
    }

    /// Waits until the proxy is ready (once; later calls return at once).
    pub async fn wait_ready(&mut self) {
        if let Some(r) = self.ready.take() {
            tokio::time::timeout(TIMEOUT, r)
                .await
                .expect("proxy ready in time")
                .expect("proxy ready");
        }
    }

    pub async fn over(shards: &[TestShard]) -> Proxy {
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
            tokio::time::timeout(TIMEOUT, t)
                .await
                .expect("proxy stops in time")
                .expect("proxy task")
                .expect("proxy stops cleanly");
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
    run_redis_py_script(python, "redis_py.py", addr).await
}

/// Runs tests/clients/`name` against `addr` and fails with its output unless it prints `ok`.
pub async fn run_redis_py_script(python: &str, name: &str, addr: SocketAddr) {
    let script = format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"));
    run_python(python, &script, addr).await;
}

/// Runs the shard's tests/clients/redis_py_scripts.py (redis-py's `register_script`, `Lock`,
/// FCALL) against `addr`: the same script the shard's tests run directly on a shard.
pub async fn run_redis_py_scripts(python: &str, addr: SocketAddr) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shard/tests/clients/redis_py_scripts.py"
    );
    run_python(python, script, addr).await;
}

async fn run_python(python: &str, script: &str, addr: SocketAddr) {
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
        "redis-py script {script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Requests the proxy has sent to its shards (INFO shards).
pub async fn backend_requests(raw: &mut Raw) -> u64 {
    raw.text(&["INFO", "shards"])
        .await
        .lines()
        .filter_map(|l| l.split("requests=").nth(1))
        .filter_map(|v| v.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Flags of tests/clients/ioredis.js through the proxy: pub/sub included.
pub const IOREDIS_PROXY_FLAGS: &[&str] = &["--proxy", "--pubsub"];
