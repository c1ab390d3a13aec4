//! Zero-config mode: with no seeds, the binary starts a local cluster of real shards in this
//! process (`shard::run` on `127.0.0.1:0`, data under `<dir>/shard-N`). The shards run in
//! cluster mode — SWIM membership over QUIC on loopback, with a secret made up for this run —
//! so the proxy reads their slot map with `CLUSTER SHARDS` like in front of any cluster.

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Running embedded shards.
pub struct LocalCluster {
    pub addrs: Vec<SocketAddr>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalCluster {
    /// Starts `n` shards with data under `dir/shard-<i>`.
    pub async fn start(n: usize, dir: &Path) -> std::io::Result<LocalCluster> {
        let stop = CancellationToken::new();
        let mut addrs = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let secret = random_secret();
        let mut first_bus: Option<SocketAddr> = None;
        for i in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let shard_dir = dir.join(format!("shard-{i}"));
            std::fs::create_dir_all(&shard_dir)?;
            // A free UDP port for this shard's cluster bus (QUIC), so the others can seed from
            // the first one.
            let bus = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
            let cfg = shard::Config {
                port: addr.port(),
                dir: shard_dir,
                cluster_enabled: true,
                cluster_port: Some(bus.port()),
                cluster_seeds: first_bus.iter().map(ToString::to_string).collect(),
                cluster_secret: Some(secret.clone()),
                ..shard::Config::default()
            };
            first_bus.get_or_insert(bus);
            let token = stop.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = shard::run(listener, cfg, token.cancelled_owned()).await {
                    tracing::error!(shard = %addr, error = %e, "embedded shard failed");
                }
            }));
            addrs.push(addr);
        }
        if let Some(first) = addrs.first() {
            wait_converged(*first, n).await?;
        }
        Ok(LocalCluster { addrs, stop, tasks })
    }

    /// Seeds for the proxy configuration (any node of the cluster would do).
    pub fn seeds(&self) -> Vec<String> {
        self.addrs.iter().map(ToString::to_string).collect()
    }

    /// Stops the shards and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// 128 bits from the OS's randomness (std seeds `RandomState` from it): the cluster secret of a
/// local cluster that lives as long as this process.
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Polls `CLUSTER INFO` on one shard until it reports all `n` nodes and every slot served, so
/// the proxy starts with the final slot map (bounded: 30 s).
async fn wait_converged(addr: SocketAddr, n: usize) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let want = format!("cluster_size:{n}\r\n");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            s.write_all(b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n")
                .await?;
            let mut buf = vec![0u8; 4096];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
            if let Ok(Ok(len)) = read {
                let text = String::from_utf8_lossy(&buf[..len]);
                if text.contains("cluster_state:ok") && text.contains(&want) {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(std::io::Error::other(
        "the embedded shards did not form a cluster within 30 s",
    ))
}
