//! Zero-config mode: with no seeds, the binary starts a local cluster of real shards in this
//! process (`shard::run` on `127.0.0.1:0`, data under `<dir>/shard-N`) and serves them in the
//! static-split mode. Cluster membership over QUIC comes later; until then the embedded shards
//! are a fixed list.

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
        for i in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let shard_dir = dir.join(format!("shard-{i}"));
            std::fs::create_dir_all(&shard_dir)?;
            let cfg = shard::Config {
                port: addr.port(),
                dir: shard_dir,
                ..shard::Config::default()
            };
            let token = stop.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = shard::run(listener, cfg, token.cancelled_owned()).await {
                    tracing::error!(shard = %addr, error = %e, "embedded shard failed");
                }
            }));
            addrs.push(addr);
        }
        Ok(LocalCluster { addrs, stop, tasks })
    }

    /// Seeds for the proxy configuration.
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
