//! `autocache-shard`: loads configuration, sets up logging, binds and serves.

use clap::Parser;
use serde::Serialize;
use shard::Config;
use shard::config::LogFormat;
use telemetry::cli::CommonFlags;

/// AutoCache shard: a Redis-protocol cache server. Options take redis-server's names; each can
/// also be set in the TOML file given by --config or as an AUTOCACHE_* environment variable
/// (e.g. AUTOCACHE_MAXMEMORY_POLICY=allkeys-lru). Flags win over environment over file.
#[derive(Parser, Serialize, Debug)]
#[command(name = "autocache-shard", version)]
struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonFlags,
    /// Data directory.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
    /// RAM budget, e.g. 100mb or 2gb (0 = unlimited).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    maxmemory: Option<String>,
    /// noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl.
    #[arg(long = "maxmemory-policy")]
    #[serde(rename = "maxmemory-policy", skip_serializing_if = "Option::is_none")]
    maxmemory_policy: Option<String>,
    /// Keys sampled per eviction.
    #[arg(long = "maxmemory-samples")]
    #[serde(rename = "maxmemory-samples", skip_serializing_if = "Option::is_none")]
    maxmemory_samples: Option<u32>,
    /// Password clients must AUTH with.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    requirepass: Option<String>,
    /// Maximum simultaneous clients.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    maxclients: Option<usize>,
    /// Keep keys demoted from RAM in a redb database under --dir instead of evicting them (yes/no).
    #[arg(long = "warm-tier")]
    #[serde(rename = "warm-tier", skip_serializing_if = "Option::is_none")]
    warm_tier: Option<String>,
    /// Warm-tier budget, e.g. 20gb (0 = unlimited); beyond it warm keys are evicted.
    #[arg(long = "warm-maxbytes")]
    #[serde(rename = "warm-maxbytes", skip_serializing_if = "Option::is_none")]
    warm_maxbytes: Option<String>,
    /// When a warm key that is read moves back to RAM: always, second-access or frequency.
    #[arg(long = "warm-promotion")]
    #[serde(rename = "warm-promotion", skip_serializing_if = "Option::is_none")]
    warm_promotion: Option<String>,
    /// Second-access promotion window in milliseconds.
    #[arg(long = "warm-promotion-window")]
    #[serde(
        rename = "warm-promotion-window",
        skip_serializing_if = "Option::is_none"
    )]
    warm_promotion_window: Option<u64>,
    /// On a planned shutdown, demote the RAM tier to disk first (yes/no).
    #[arg(long = "warm-demote-on-shutdown")]
    #[serde(
        rename = "warm-demote-on-shutdown",
        skip_serializing_if = "Option::is_none"
    )]
    warm_demote_on_shutdown: Option<String>,
    /// Join or form a cluster (yes/no); otherwise a standalone server.
    #[arg(long = "cluster-enabled")]
    #[serde(rename = "cluster-enabled", skip_serializing_if = "Option::is_none")]
    cluster_enabled: Option<String>,
    /// UDP port of the cluster bus (QUIC); default: port + 10000.
    #[arg(long = "cluster-port")]
    #[serde(rename = "cluster-port", skip_serializing_if = "Option::is_none")]
    cluster_port: Option<u16>,
    /// Cluster-bus addresses of nodes to join (host:port,...); none: start a new cluster.
    #[arg(long = "cluster-seeds")]
    #[serde(rename = "cluster-seeds", skip_serializing_if = "Option::is_none")]
    cluster_seeds: Option<String>,
    /// The secret every node of the cluster holds (required in cluster mode).
    #[arg(long = "cluster-secret")]
    #[serde(rename = "cluster-secret", skip_serializing_if = "Option::is_none")]
    cluster_secret: Option<String>,
    /// IP announced to clients in MOVED and CLUSTER SLOTS (default: the bind address).
    #[arg(long = "cluster-announce-ip")]
    #[serde(
        rename = "cluster-announce-ip",
        skip_serializing_if = "Option::is_none"
    )]
    cluster_announce_ip: Option<String>,
    /// Who moves slots when a node joins: auto (this node migrates online) or manual.
    #[arg(long = "cluster-rebalance")]
    #[serde(rename = "cluster-rebalance", skip_serializing_if = "Option::is_none")]
    cluster_rebalance: Option<String>,
    /// Planned shutdown in cluster mode: restart (keep the slots for the grace) or leave.
    #[arg(long = "cluster-shutdown")]
    #[serde(rename = "cluster-shutdown", skip_serializing_if = "Option::is_none")]
    cluster_shutdown: Option<String>,
    /// Milliseconds the others keep a restarting node's slots for it.
    #[arg(long = "cluster-restart-grace")]
    #[serde(
        rename = "cluster-restart-grace",
        skip_serializing_if = "Option::is_none"
    )]
    cluster_restart_grace: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let cfg: Config = match telemetry::cli::load(&flags.common, &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autocache-shard: {e}");
            std::process::exit(2);
        }
    };
    membership::process::init_logging(&cfg.loglevel, cfg.log_format == LogFormat::Json);
    let (listener, admin) = telemetry::cli::bind(&cfg.bind, cfg.port, &cfg.telemetry).await?;
    shard::run_with_admin(listener, admin, cfg, membership::process::shutdown_signal()).await?;
    Ok(())
}
