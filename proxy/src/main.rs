//! `autocache-proxy`: loads configuration, sets up logging, binds, and calls `proxy::run`.
//! With no seeds it first starts an embedded local cluster of shards.

use anyhow::Context;
use clap::Parser;
use proxy::Config;
use proxy::embedded::LocalCluster;
use serde::Serialize;
use telemetry::cli::CommonFlags;

/// mimalloc instead of glibc's malloc: the proxy allocates and frees many small buffers per
/// request (request and reply chunks), where glibc spent ~9% of the proxy's CPU under SET -P 16.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// AutoCache proxy: one Redis endpoint in front of a Redis Cluster, standalone Redis servers or
/// AutoCache shards. Each option can also be set in the TOML file given by --config or as an
/// AUTOCACHE_* environment variable (AUTOCACHE_BACKEND_CONNECTIONS=4). Flags win over
/// environment over file. Without seeds, starts a local cluster of 3 shards in-process.
#[derive(Parser, Serialize, Debug)]
#[command(name = "autocache-proxy", version)]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonFlags,
    /// Shards or cluster nodes, host:port,... (none: embedded local cluster).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    seeds: Option<Vec<String>>,
    /// Password clients must AUTH with.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    requirepass: Option<String>,
    /// Password the proxy sends to the shards.
    #[arg(long = "backend-password")]
    #[serde(rename = "backend-password", skip_serializing_if = "Option::is_none")]
    backend_password: Option<String>,
    /// Pipelined connections per shard.
    #[arg(long = "backend-connections")]
    #[serde(
        rename = "backend-connections",
        skip_serializing_if = "Option::is_none"
    )]
    backend_connections: Option<usize>,
    /// Runtime worker threads (0 = one per CPU).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    /// Data directory of the embedded shards.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let cfg: Config = match telemetry::cli::load(&flags.common, &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autocache-proxy: {e}");
            std::process::exit(2);
        }
    };
    membership::process::init_logging(
        &cfg.loglevel,
        cfg.log_format == proxy::config::LogFormat::Json,
    );
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.threads > 0 {
        rt.worker_threads(cfg.threads);
    }
    rt.enable_all().build()?.block_on(serve(cfg))
}

async fn serve(mut cfg: Config) -> anyhow::Result<()> {
    let (listener, admin) = telemetry::cli::bind(&cfg.bind, cfg.port, &cfg.telemetry).await?;
    let local = listener.local_addr()?;
    let embedded = if cfg.seeds.is_empty() {
        let cluster = LocalCluster::start(cfg.embedded_shards, &cfg.dir)
            .await
            .with_context(|| format!("cannot start embedded shards under {}", cfg.dir.display()))?;
        cfg.seeds = cluster.seeds();
        Some(cluster)
    } else {
        None
    };
    let banner = match &embedded {
        Some(c) => format!(
            "autocache-proxy listening on {local}; started an embedded local cluster of {} shards ({}) with data under {}, cluster membership over QUIC on loopback",
            c.addrs.len(),
            cfg.seeds.join(", "),
            cfg.dir.display()
        ),
        None => format!(
            "autocache-proxy listening on {local}; seeds {}",
            cfg.seeds.join(", ")
        ),
    };
    proxy::run_with_admin(
        listener,
        admin,
        cfg,
        membership::process::shutdown_signal(),
        move || println!("{banner}"),
    )
    .await?;
    if let Some(c) = embedded {
        c.stop().await;
    }
    Ok(())
}
