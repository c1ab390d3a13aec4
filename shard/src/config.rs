//! Shard configuration: a typed struct with defaults, loaded by figment from (in rising
//! precedence) defaults, a TOML file, `AUTOCACHE_*` environment variables and command-line
//! flags. Keys use redis-server's names (`maxmemory-policy`, `requirepass`, ...). Every problem
//! in the merged configuration is reported at once, each with where the value came from.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::value::Value;
use membership::settings::{self, as_bool, as_int, as_list, as_memory, as_opt_string, as_string};
pub use membership::settings::{ConfigErrors, Layered, log_filter, parse_memory};

use crate::store::Policy;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Addresses to listen on (used by the binary; the library gets a bound listener).
    pub bind: Vec<String>,
    pub port: u16,
    /// Data directory (the warm tier lives here).
    pub dir: PathBuf,
    /// RAM budget in bytes; 0 = unlimited.
    pub maxmemory: u64,
    pub maxmemory_policy: Policy,
    pub maxmemory_samples: u32,
    pub requirepass: Option<String>,
    pub maxclients: usize,
    /// After this many milliseconds a running script makes other clients' commands answer
    /// `-BUSY` (`busy-reply-threshold`, alias `lua-time-limit`).
    pub busy_reply_threshold_ms: u64,
    /// Largest accepted bulk string in a request.
    pub proto_max_bulk_len: u64,
    /// A client whose unparsed input exceeds this is disconnected.
    pub client_query_buffer_limit: u64,
    /// Background task frequency (active expiry), per second.
    pub hz: u32,
    pub loglevel: String,
    pub log_format: LogFormat,
    /// Keep entries demoted from RAM in a redb database under `dir` instead of evicting them.
    pub warm_tier: bool,
    /// Warm-tier budget in bytes (0 = unlimited); beyond it warm keys are evicted.
    pub warm_maxbytes: u64,
    pub warm_promotion: WarmPromotion,
    /// Second-access promotion window in milliseconds.
    pub warm_promotion_window_ms: u64,
    /// On a planned shutdown, move the RAM tier to the warm tier so a restart loses nothing.
    pub warm_demote_on_shutdown: bool,
    /// Page cache of the warm tier's database (RAM outside `maxmemory`).
    pub warm_cache_bytes: u64,
    /// Added to the warm-tier writer thread's nice value (0–19; Linux).
    pub warm_writer_nice: u8,
    /// Most keys remembered for CLIENT TRACKING's default mode (0 = unlimited).
    pub tracking_table_max_keys: u64,
    /// Keyspace notification classes, Redis's flag letters (`KEA`, ...); empty: off.
    pub notify_keyspace_events: String,
    /// `client-output-buffer-limit` in Redis's syntax (`pubsub 32mb 8mb 60`); only the pubsub
    /// class is enforced.
    pub client_output_buffer_limit: String,
    /// Join or form a cluster (SWIM membership over QUIC); otherwise a standalone server.
    pub cluster_enabled: bool,
    /// UDP port of the cluster bus (QUIC); default: the client port + 10000 (or any free port
    /// when the client port is 0).
    pub cluster_port: Option<u16>,
    /// Cluster-bus addresses (`host:port`) of nodes to join; none: bootstrap a new cluster.
    pub cluster_seeds: Vec<String>,
    /// Shared secret every node of the cluster holds; required in cluster mode.
    pub cluster_secret: Option<String>,
    /// IP announced to clients in MOVED and CLUSTER SLOTS; default: the bind address.
    pub cluster_announce_ip: Option<String>,
    /// Whether this node migrates slots by itself to keep the cluster balanced.
    pub cluster_rebalance: Rebalance,
    /// Admin HTTP server, metrics and traces (`admin-port`, `otel-endpoint`, ...).
    pub telemetry: telemetry::Settings,
    /// What a planned shutdown (SIGTERM, SHUTDOWN) does in cluster mode.
    pub cluster_shutdown: ClusterShutdown,
    /// How long the others keep this node's slots for it after a planned restart, in
    /// milliseconds; if it is not back by then they take the slots over (empty).
    pub cluster_restart_grace_ms: u64,
}

/// What a cluster-mode shard does with its slots on a planned shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterShutdown {
    /// Keep them: tell the others it will be back within `cluster-restart-grace`, demote RAM
    /// to the warm tier and exit; restarted on the same `dir` it serves its keys again.
    Restart,
    /// Hand them to the others (empty) and leave the cluster: for decommissioning a node.
    Leave,
}

/// Who moves slots when the cluster is out of balance (a node joined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalance {
    /// Each node migrates its share of the balancing plan online, one range at a time.
    Auto,
    /// Only operators move slots (`CLUSTER MIGRATE`).
    Manual,
}

/// When a warm key that a command reads moves back to RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmPromotion {
    Always,
    SecondAccess,
    Frequency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec!["127.0.0.1".into()],
            port: 6379,
            dir: PathBuf::from("./data"),
            maxmemory: 0,
            maxmemory_policy: Policy::NoEviction,
            maxmemory_samples: 5,
            requirepass: None,
            maxclients: 10_000,
            busy_reply_threshold_ms: crate::running::DEFAULT_THRESHOLD_MS,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            hz: 10,
            loglevel: "notice".into(),
            log_format: LogFormat::Text,
            warm_tier: false,
            warm_maxbytes: 0,
            warm_promotion: WarmPromotion::SecondAccess,
            warm_promotion_window_ms: 5_000,
            warm_demote_on_shutdown: true,
            warm_cache_bytes: 32 * 1024 * 1024,
            warm_writer_nice: 19,
            tracking_table_max_keys: 1_000_000,
            notify_keyspace_events: String::new(),
            client_output_buffer_limit: crate::pubsub::Limits::default().render(),
            cluster_enabled: false,
            cluster_port: None,
            cluster_seeds: Vec::new(),
            cluster_secret: None,
            cluster_announce_ip: None,
            cluster_rebalance: Rebalance::Auto,
            // Not the proxy's default port: both run on one host with their defaults.
            telemetry: telemetry::Settings {
                admin_port: telemetry::settings::DEFAULT_SHARD_ADMIN_PORT,
                ..telemetry::Settings::default()
            },
            cluster_shutdown: ClusterShutdown::Restart,
            cluster_restart_grace_ms: 30_000,
        }
    }
}

impl Config {
    /// Defaults, then the TOML file (if any), then `AUTOCACHE_*` environment variables
    /// (`AUTOCACHE_MAXMEMORY_POLICY=allkeys-lru`; `__` nests). Merge flags on top, then call
    /// [`Config::from_figment`].
    pub fn figment(file: Option<&Path>) -> Figment {
        settings::figment(file)
    }

    /// Extracts and validates a configuration, reporting every problem at once.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigErrors> {
        settings::extract(figment)
    }
}

impl settings::Layered for Config {
    fn set_value(&mut self, key: &str, v: &Value) -> Result<(), String> {
        match key {
            "bind" => {
                self.bind = match v {
                    Value::String(_, s) => s.split_whitespace().map(str::to_string).collect(),
                    Value::Array(_, items) => {
                        items.iter().map(as_string).collect::<Result<_, _>>()?
                    }
                    _ => return Err("expected an address or a list of addresses".into()),
                }
            }
            "port" => {
                self.port = as_int(v)?
                    .try_into()
                    .map_err(|_| "must be between 0 and 65535")?
            }
            "dir" => self.dir = PathBuf::from(as_string(v)?),
            "maxmemory" => self.maxmemory = as_memory(v)?,
            "maxmemory-policy" => {
                let s = as_string(v)?;
                self.maxmemory_policy = Policy::parse(&s).ok_or_else(|| {
                    let names: Vec<_> = Policy::ALL.iter().map(|p| p.name()).collect();
                    format!(
                        "unknown policy '{s}' (expected one of {})",
                        names.join(", ")
                    )
                })?;
            }
            "maxmemory-samples" => {
                self.maxmemory_samples = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "requirepass" => {
                let s = as_string(v)?;
                self.requirepass = (!s.is_empty()).then_some(s);
            }
            "maxclients" => self.maxclients = as_int(v)?.try_into().map_err(|_| "out of range")?,
            "busy-reply-threshold" | "lua-time-limit" => {
                self.busy_reply_threshold_ms = as_int(v)?
                    .try_into()
                    .map_err(|_| "must be a non-negative number of milliseconds")?
            }
            "proto-max-bulk-len" => self.proto_max_bulk_len = as_memory(v)?,
            "client-query-buffer-limit" => self.client_query_buffer_limit = as_memory(v)?,
            "hz" => self.hz = as_int(v)?.try_into().map_err(|_| "out of range")?,
            "loglevel" => self.loglevel = as_string(v)?,
            "log-format" => {
                self.log_format = match as_string(v)?.to_ascii_lowercase().as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => {
                        return Err(format!(
                            "unknown log format '{other}' (expected text or json)"
                        ));
                    }
                }
            }
            "warm-tier" => self.warm_tier = as_bool(v)?,
            "warm-maxbytes" => self.warm_maxbytes = as_memory(v)?,
            "warm-promotion" => {
                self.warm_promotion = match as_string(v)?.to_ascii_lowercase().as_str() {
                    "always" => WarmPromotion::Always,
                    "second-access" => WarmPromotion::SecondAccess,
                    "frequency" => WarmPromotion::Frequency,
                    other => {
                        return Err(format!(
                            "unknown promotion policy '{other}' (expected always, second-access or frequency)"
                        ));
                    }
                }
            }
            "warm-promotion-window" => {
                self.warm_promotion_window_ms = as_int(v)?
                    .try_into()
                    .map_err(|_| "must be a non-negative number of milliseconds")?
            }
            "warm-demote-on-shutdown" => self.warm_demote_on_shutdown = as_bool(v)?,
            "warm-cache-bytes" => self.warm_cache_bytes = as_memory(v)?,
            "warm-writer-nice" => {
                self.warm_writer_nice = as_int(v)?
                    .try_into()
                    .ok()
                    .filter(|n| *n <= 19)
                    .ok_or("must be between 0 and 19")?
            }
            "tracking-table-max-keys" => {
                self.tracking_table_max_keys = as_int(v)?
                    .try_into()
                    .map_err(|_| "must be a non-negative number")?
            }
            "notify-keyspace-events" => {
                let s = as_string(v)?;
                crate::notify::parse_flags(s.as_bytes()).ok_or(crate::notify::INVALID_FLAGS)?;
                self.notify_keyspace_events = s;
            }
            "client-output-buffer-limit" => {
                let s = as_string(v)?;
                crate::pubsub::Limits::default().parse(&s)?;
                self.client_output_buffer_limit = s;
            }
            "cluster-enabled" => self.cluster_enabled = as_bool(v)?,
            "cluster-port" => {
                self.cluster_port = Some(
                    as_int(v)?
                        .try_into()
                        .map_err(|_| "must be between 0 and 65535")?,
                )
            }
            "cluster-seeds" => self.cluster_seeds = as_list(v)?,
            "cluster-secret" => self.cluster_secret = as_opt_string(v)?,
            "cluster-announce-ip" => self.cluster_announce_ip = as_opt_string(v)?,
            "cluster-rebalance" => {
                self.cluster_rebalance = match as_string(v)?.to_ascii_lowercase().as_str() {
                    "auto" => Rebalance::Auto,
                    "manual" => Rebalance::Manual,
                    other => {
                        return Err(format!(
                            "unknown rebalance mode '{other}' (expected auto or manual)"
                        ));
                    }
                }
            }
            "cluster-shutdown" => {
                self.cluster_shutdown = match as_string(v)?.to_ascii_lowercase().as_str() {
                    "restart" => ClusterShutdown::Restart,
                    "leave" => ClusterShutdown::Leave,
                    other => {
                        return Err(format!(
                            "unknown shutdown mode '{other}' (expected restart or leave)"
                        ));
                    }
                }
            }
            "cluster-restart-grace" => {
                self.cluster_restart_grace_ms = as_int(v)?
                    .try_into()
                    .ok()
                    .filter(|&ms: &u64| (1..=3_600_000).contains(&ms))
                    .ok_or("must be between 1 and 3600000 milliseconds")?
            }
            other => return self.telemetry.set_or_unknown(other, v),
        }
        Ok(())
    }

    /// Cross-field and range checks.
    fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        if self.bind.is_empty() {
            errs.push("`bind`: at least one address is required".into());
        }
        if self.cluster_enabled && self.cluster_secret.is_none() {
            errs.push("`cluster-secret`: required when `cluster-enabled` is yes (every node must hold the same secret)".into());
        }
        if self.cluster_secret.as_ref().is_some_and(|s| s.len() < 8) {
            errs.push("`cluster-secret`: must be at least 8 bytes".into());
        }
        for seed in &self.cluster_seeds {
            if seed
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                errs.push(format!("`cluster-seeds`: '{seed}' is not host:port"));
            }
        }
        if self.maxclients == 0 {
            errs.push("`maxclients`: must be at least 1".into());
        }
        if crate::notify::parse_flags(self.notify_keyspace_events.as_bytes()).is_none() {
            errs.push(format!(
                "`notify-keyspace-events`: {}",
                crate::notify::INVALID_FLAGS
            ));
        }
        if let Err(e) = crate::pubsub::Limits::default().parse(&self.client_output_buffer_limit) {
            errs.push(format!("`client-output-buffer-limit`: {e}"));
        }
        if !(1..=64).contains(&self.maxmemory_samples) {
            errs.push("`maxmemory-samples`: must be between 1 and 64".into());
        }
        if !(1..=500).contains(&self.hz) {
            errs.push("`hz`: must be between 1 and 500".into());
        }
        if self.proto_max_bulk_len < 1024 * 1024 {
            errs.push("`proto-max-bulk-len`: must be at least 1mb".into());
        }
        if self.client_query_buffer_limit < 1024 * 1024 {
            errs.push("`client-query-buffer-limit`: must be at least 1mb".into());
        }
        errs.extend(settings::loglevel_problem(&self.loglevel));
        ConfigErrors::check(errs)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_defaults_file_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "shard.toml",
                "port = 7001\nmaxmemory = \"100mb\"\nmaxmemory-policy = \"allkeys-lru\"\n",
            )?;
            jail.set_env("AUTOCACHE_MAXMEMORY_POLICY", "allkeys-lfu");
            jail.set_env("AUTOCACHE_REQUIREPASS", "s3cret");
            let cfg = Config::from_figment(&Config::figment(Some(Path::new("shard.toml"))))
                .expect("valid");
            assert_eq!(cfg.port, 7001);
            assert_eq!(cfg.maxmemory, 100 << 20);
            assert_eq!(cfg.maxmemory_policy, Policy::AllKeysLfu, "env beats file");
            assert_eq!(cfg.requirepass.as_deref(), Some("s3cret"));
            assert_eq!(cfg.hz, 10, "default kept");
            Ok(())
        });
    }

    #[test]
    fn reports_every_problem_at_once_with_origin() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "port = 70000\nmaxmemory = \"lots\"\nmaxmemory-policy = \"lru\"\ncolour = \"blue\"\n")?;
            jail.set_env("AUTOCACHE_HZ", "0");
            let errs = Config::from_figment(&Config::figment(Some(Path::new("bad.toml"))))
                .expect_err("invalid");
            let text = errs.to_string();
            for needle in [
                "`port`",
                "`maxmemory`",
                "`maxmemory-policy`",
                "`colour`: unknown",
                "`hz`",
                "bad.toml",
            ] {
                assert!(text.contains(needle), "missing {needle} in:\n{text}");
            }
            assert_eq!(errs.0.len(), 5, "{text}");
            Ok(())
        });
    }

    #[test]
    fn cluster_shutdown_and_restart_grace() {
        Jail::expect_with(|jail| {
            let cfg = Config::from_figment(&Config::figment(None)).expect("defaults");
            assert_eq!(cfg.cluster_shutdown, ClusterShutdown::Restart);
            assert_eq!(cfg.cluster_restart_grace_ms, 30_000);
            jail.set_env("AUTOCACHE_CLUSTER_SHUTDOWN", "LEAVE");
            jail.set_env("AUTOCACHE_CLUSTER_RESTART_GRACE", "5000");
            let cfg = Config::from_figment(&Config::figment(None)).expect("valid");
            assert_eq!(cfg.cluster_shutdown, ClusterShutdown::Leave);
            assert_eq!(cfg.cluster_restart_grace_ms, 5000);
            jail.set_env("AUTOCACHE_CLUSTER_SHUTDOWN", "pause");
            jail.set_env("AUTOCACHE_CLUSTER_RESTART_GRACE", "0");
            let errs = Config::from_figment(&Config::figment(None)).expect_err("invalid");
            let text = errs.to_string();
            assert!(text.contains("`cluster-shutdown`"), "{text}");
            assert!(text.contains("`cluster-restart-grace`"), "{text}");
            assert_eq!(errs.0.len(), 2, "{text}");
            Ok(())
        });
    }

    #[test]
    fn warm_writer_nice_is_0_to_19() {
        Jail::expect_with(|jail| {
            let cfg = Config::from_figment(&Config::figment(None)).expect("defaults");
            assert_eq!(cfg.warm_writer_nice, 19);
            jail.set_env("AUTOCACHE_WARM_WRITER_NICE", "0");
            let cfg = Config::from_figment(&Config::figment(None)).expect("valid");
            assert_eq!(cfg.warm_writer_nice, 0);
            for bad in ["20", "-1", "low"] {
                jail.set_env("AUTOCACHE_WARM_WRITER_NICE", bad);
                let errs = Config::from_figment(&Config::figment(None)).expect_err(bad);
                assert!(errs.to_string().contains("`warm-writer-nice`"), "{errs}");
            }
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        Jail::expect_with(|_| {
            let errs = Config::from_figment(&Config::figment(Some(Path::new("nope.toml"))))
                .expect_err("missing");
            assert!(errs.to_string().contains("nope.toml"), "{errs}");
            Ok(())
        });
    }
}
