//! `autocache-proxy`: loads configuration, sets up logging, binds, and calls `proxy::run`.
//! With no seeds it first starts an embedded local cluster of shards.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use figment::providers::Serialized;
use proxy::Config;
use proxy::embedded::LocalCluster;
use serde::Serialize;

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
    /// TOML configuration file.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Addresses to listen on (comma-separated).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<Vec<String>>,
    /// TCP port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
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
    /// Log level: debug, verbose, notice, warning (or a tracing filter).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    loglevel: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format")]
    #[serde(rename = "log-format", skip_serializing_if = "Option::is_none")]
    log_format: Option<String>,
    /// Port of the admin HTTP server (/metrics, /health, /ready); 0 = none. Default 9121.
    #[arg(long = "admin-port")]
    #[serde(rename = "admin-port", skip_serializing_if = "Option::is_none")]
    admin_port: Option<u16>,
    /// Address of the admin HTTP server (default: 127.0.0.1, whatever --bind says).
    #[arg(long = "admin-bind")]
    #[serde(rename = "admin-bind", skip_serializing_if = "Option::is_none")]
    admin_bind: Option<String>,
    /// OTLP endpoint for traces, e.g. http://localhost:4318 (default: OTEL_EXPORTER_OTLP_ENDPOINT; none = no traces).
    #[arg(long = "otel-endpoint")]
    #[serde(rename = "otel-endpoint", skip_serializing_if = "Option::is_none")]
    otel_endpoint: Option<String>,
    /// Share of commands traced, 0 to 1 (default 0.01).
    #[arg(long = "otel-sample-ratio")]
    #[serde(rename = "otel-sample-ratio", skip_serializing_if = "Option::is_none")]
    otel_sample_ratio: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    // The standard OTEL_* variables sit below everything else.
    let figment = figment::Figment::from(telemetry::settings::otel_env(|k| std::env::var(k).ok()))
        .merge(Config::figment(flags.config.as_deref()))
        .merge(Serialized::defaults(&flags));
    let cfg = match Config::from_figment(&figment) {
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
    let addr = cfg
        .bind
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".into());
    let listener = tokio::net::TcpListener::bind((addr.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot listen on {addr}:{}", cfg.port))?;
    let local = listener.local_addr()?;
    let admin = match cfg.telemetry.admin_addr() {
        Some((host, port)) => Some(
            tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .with_context(|| format!("cannot listen on {host}:{port} (admin-port)"))?,
        ),
        None => None,
    };
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
