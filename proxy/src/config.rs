//! Proxy configuration: a typed struct with defaults, loaded by figment from (in rising
//! precedence) defaults, a TOML file, `AUTOCACHE_*` environment variables and command-line
//! flags — the same scheme and key style as the shard (`backend-connections`, `requirepass`).
//! Every problem in the merged configuration is reported at once, with where it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::value::Value;
use membership::settings::{
    self, as_bool, as_int, as_list, as_memory, as_ms, as_opt_string, as_string,
};
pub use membership::settings::{ConfigErrors, Layered, log_filter, parse_memory};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Addresses to listen on (used by the binary; the library gets a bound listener).
    pub bind: Vec<String>,
    pub port: u16,
    /// `host:port` of cluster nodes or standalone servers. Empty: start an embedded local
    /// cluster (binary only).
    pub seeds: Vec<String>,
    /// Password clients must AUTH with (the proxy's own).
    pub requirepass: Option<String>,
    /// Credentials the proxy uses towards the shards.
    pub backend_user: Option<String>,
    pub backend_password: Option<String>,
    /// Long-lived pipelined connections per shard.
    pub backend_connections: usize,
    /// Clients that may wait in a blocking command (BLPOP, ...) at once, each on a backend
    /// connection of its own; past it, a blocking command gets an error at once.
    pub blocking_connections: usize,
    /// Members a cross-slot set-algebra command (SUNION, ...) may read from the shards in
    /// all; past it the command gets an error (see [`crate::algebra`]).
    pub algebra_max_members: usize,
    pub connect_timeout: Duration,
    /// A backend request unanswered this long closes its connection.
    pub backend_timeout: Duration,
    /// PING interval per backend connection, and retry pace for a down shard.
    pub health_interval: Duration,
    /// Periodic slot-map refresh (cluster mode).
    pub refresh_interval: Duration,
    pub maxclients: usize,
    /// Runtime worker threads; 0 = one per CPU (binary only).
    pub threads: usize,
    /// Data directory of the embedded shards.
    pub dir: PathBuf,
    /// Shards the zero-config mode starts.
    pub embedded_shards: usize,
    pub proto_max_bulk_len: u64,
    pub loglevel: String,
    // Hot keys and the near cache (see docs/proxy.md).
    /// Detect hot keys (the near cache needs it).
    pub hotkey_enabled: bool,
    /// Operations per second from which a key is hot.
    pub hotkey_threshold: u64,
    /// Keys the detector tracks (constant memory).
    pub hotkey_capacity: usize,
    /// Rates are measured over this window (counts halve at every window).
    pub hotkey_window: Duration,
    /// Count one request in this many at least (the detector samples more above
    /// `hotkey_max_samples`).
    pub hotkey_sample: u32,
    /// Requests per second the detector's sketch counts at most (0: no cap).
    pub hotkey_max_samples: u64,
    /// INFO shows key hashes instead of names.
    pub hotkey_hide_names: bool,
    /// Serve hot keys' values from the proxy's memory.
    pub near_cache: bool,
    pub near_cache_bytes: u64,
    /// How long a miss waits for another client's read of the same key.
    pub near_cache_wait: Duration,
    /// Invalidation links are subscribed while this proxy has hot keys and dropped after this
    /// long without any (uniform traffic then costs the shards no invalidation pushes); zero
    /// keeps them subscribed always.
    pub near_cache_link_idle: Duration,
    /// After client traffic, keep polling for I/O this long instead of sleeping (0 = never).
    pub busy_poll: Duration,
    /// Log lines as text or JSON objects.
    pub log_format: LogFormat,
    /// Admin HTTP server, metrics and traces (`admin-port`, `otel-endpoint`, ...).
    pub telemetry: telemetry::Settings,
    /// Redis's `client-output-buffer-limit` (see [`crate::outbuf`]).
    pub client_output_buffer_limit: crate::outbuf::OutputLimits,
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
            seeds: Vec::new(),
            requirepass: None,
            backend_user: None,
            backend_password: None,
            backend_connections: 2,
            blocking_connections: 1024,
            algebra_max_members: crate::algebra::MAX_MEMBERS,
            connect_timeout: Duration::from_millis(1000),
            backend_timeout: Duration::from_millis(5000),
            health_interval: Duration::from_millis(1000),
            refresh_interval: Duration::from_millis(10_000),
            maxclients: 10_000,
            threads: 0,
            dir: PathBuf::from("./data"),
            embedded_shards: 3,
            proto_max_bulk_len: 512 * 1024 * 1024,
            loglevel: "notice".into(),
            hotkey_enabled: true,
            hotkey_threshold: 50,
            hotkey_capacity: 1024,
            hotkey_window: Duration::from_millis(1000),
            hotkey_sample: 1,
            hotkey_max_samples: 50_000,
            hotkey_hide_names: false,
            near_cache: true,
            near_cache_bytes: 64 * 1024 * 1024,
            near_cache_wait: Duration::from_millis(50),
            near_cache_link_idle: Duration::from_secs(30),
            busy_poll: Duration::ZERO,
            log_format: LogFormat::Text,
            telemetry: telemetry::Settings::default(),
            client_output_buffer_limit: crate::outbuf::OutputLimits::default(),
        }
    }
}

impl Config {
    /// Defaults, then the TOML file (if any), then `AUTOCACHE_*` environment variables
    /// (`AUTOCACHE_BACKEND_CONNECTIONS=4`). Merge flags on top, then call
    /// [`Config::from_figment`].
    pub fn figment(file: Option<&Path>) -> Figment {
        settings::figment(file)
    }

    /// Extracts and validates a configuration, reporting every problem at once.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigErrors> {
        settings::extract(figment)
    }

    /// Settings that are valid but risky, one sentence each, for the log at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.backend_password.is_some() && self.requirepass.is_none() {
            w.push(
                "backend-password is set but requirepass is not: every client that can reach \
                 the proxy gets full access to the password-protected shards without a password; \
                 set requirepass (the password clients must AUTH with)"
                    .to_string(),
            );
        }
        w
    }
}

impl settings::Layered for Config {
    fn set_value(&mut self, key: &str, v: &Value) -> Result<(), String> {
        match key {
            "bind" => self.bind = as_list(v)?,
            "seeds" => self.seeds = as_list(v)?,
            "port" => {
                self.port = as_int(v)?
                    .try_into()
                    .map_err(|_| "must be between 0 and 65535")?
            }
            "requirepass" => self.requirepass = as_opt_string(v)?,
            "backend-user" => self.backend_user = as_opt_string(v)?,
            "backend-password" => self.backend_password = as_opt_string(v)?,
            "backend-connections" => {
                self.backend_connections = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "blocking-connections" => {
                self.blocking_connections = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "algebra-max-members" => {
                self.algebra_max_members = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "connect-timeout-ms" => self.connect_timeout = as_ms(v)?,
            "backend-timeout-ms" => self.backend_timeout = as_ms(v)?,
            "health-interval-ms" => self.health_interval = as_ms(v)?,
            "refresh-interval-ms" => self.refresh_interval = as_ms(v)?,
            "maxclients" => self.maxclients = as_int(v)?.try_into().map_err(|_| "out of range")?,
            "threads" => self.threads = as_int(v)?.try_into().map_err(|_| "out of range")?,
            "dir" => self.dir = PathBuf::from(as_string(v)?),
            "embedded-shards" => {
                self.embedded_shards = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "proto-max-bulk-len" => self.proto_max_bulk_len = as_memory(v)?,
            "client-output-buffer-limit" => {
                self.client_output_buffer_limit.apply(&as_string(v)?)?
            }
            "loglevel" => self.loglevel = as_string(v)?,
            "hotkey-enabled" => self.hotkey_enabled = as_bool(v)?,
            "hotkey-threshold" => {
                self.hotkey_threshold = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "hotkey-capacity" => {
                self.hotkey_capacity = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "hotkey-window-ms" => self.hotkey_window = as_ms(v)?,
            "hotkey-sample" => {
                self.hotkey_sample = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "hotkey-max-samples" => {
                self.hotkey_max_samples = as_int(v)?.try_into().map_err(|_| "out of range")?
            }
            "hotkey-hide-names" => self.hotkey_hide_names = as_bool(v)?,
            "near-cache" => self.near_cache = as_bool(v)?,
            "near-cache-bytes" => self.near_cache_bytes = as_memory(v)?,
            "near-cache-wait-ms" => self.near_cache_wait = as_ms(v)?,
            "near-cache-link-idle-ms" => self.near_cache_link_idle = as_ms(v)?,
            "busy-poll-us" => {
                self.busy_poll = Duration::from_micros(
                    as_int(v)?
                        .try_into()
                        .map_err(|_| "expected microseconds (a non-negative integer)")?,
                )
            }
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
        for s in &self.seeds {
            let ok = s
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                errs.push(format!("`seeds`: '{s}' is not host:port"));
            }
        }
        if !(1..=64).contains(&self.backend_connections) {
            errs.push("`backend-connections`: must be between 1 and 64".into());
        }
        if !(1..=65_536).contains(&self.blocking_connections) {
            errs.push("`blocking-connections`: must be between 1 and 65536".into());
        }
        if self.algebra_max_members == 0 {
            errs.push("`algebra-max-members`: must be at least 1".into());
        }
        for (name, d) in [
            ("connect-timeout-ms", self.connect_timeout),
            ("backend-timeout-ms", self.backend_timeout),
            ("health-interval-ms", self.health_interval),
            ("refresh-interval-ms", self.refresh_interval),
        ] {
            if d < Duration::from_millis(10) {
                errs.push(format!("`{name}`: must be at least 10"));
            }
        }
        if self.maxclients == 0 {
            errs.push("`maxclients`: must be at least 1".into());
        }
        if self.threads > 1024 {
            errs.push("`threads`: at most 1024".into());
        }
        if !(1..=64).contains(&self.embedded_shards) {
            errs.push("`embedded-shards`: must be between 1 and 64".into());
        }
        if self.proto_max_bulk_len < 1024 * 1024 {
            errs.push("`proto-max-bulk-len`: must be at least 1mb".into());
        }
        if self.hotkey_threshold == 0 {
            errs.push("`hotkey-threshold`: must be at least 1 (operations per second)".into());
        }
        if !(1..=65_536).contains(&self.hotkey_capacity) {
            errs.push("`hotkey-capacity`: must be between 1 and 65536".into());
        }
        if !(1..=1024).contains(&self.hotkey_sample) {
            errs.push("`hotkey-sample`: must be between 1 and 1024".into());
        }
        if self.hotkey_window < Duration::from_millis(10) {
            errs.push("`hotkey-window-ms`: must be at least 10".into());
        }
        if self.near_cache_wait > Duration::from_secs(10) {
            errs.push("`near-cache-wait-ms`: at most 10000".into());
        }
        if self.near_cache_bytes > usize::MAX as u64 {
            errs.push("`near-cache-bytes`: too large for this machine".into());
        }
        errs.extend(settings::loglevel_problem(&self.loglevel));
        ConfigErrors::check(errs)
    }
}

#[cfg(test)]
// figment::Jail's closures return figment's large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use figment::providers::Serialized;

    #[test]
    fn layers_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "proxy.toml",
                "port = 7000\nseeds = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\nbackend-connections = 3\n",
            )?;
            jail.set_env("AUTOCACHE_BACKEND_CONNECTIONS", "4");
            jail.set_env("AUTOCACHE_REQUIREPASS", "s3cret");
            jail.set_env("AUTOCACHE_NEAR_CACHE_LINK_IDLE_MS", "0");
            let fig = Config::figment(Some(Path::new("proxy.toml")))
                .merge(Serialized::default("port", 7100));
            let cfg = Config::from_figment(&fig).expect("valid");
            assert_eq!(cfg.port, 7100, "flags beat file");
            assert_eq!(cfg.seeds, ["127.0.0.1:7001", "127.0.0.1:7002"]);
            assert_eq!(cfg.backend_connections, 4, "env beats file");
            assert_eq!(cfg.requirepass.as_deref(), Some("s3cret"));
            assert_eq!(cfg.near_cache_link_idle, Duration::ZERO, "links always on");
            assert_eq!(
                cfg.refresh_interval,
                Duration::from_secs(10),
                "default kept"
            );
            Ok(())
        });
    }

    #[test]
    fn busy_poll_is_off_by_default_and_takes_microseconds() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTOCACHE_SEEDS", "a:1");
            let cfg = Config::from_figment(&Config::figment(None)).expect("defaults");
            assert_eq!(cfg.busy_poll, Duration::ZERO);
            jail.set_env("AUTOCACHE_BUSY_POLL_US", "100");
            let cfg = Config::from_figment(&Config::figment(None)).expect("valid");
            assert_eq!(cfg.busy_poll, Duration::from_micros(100));
            jail.set_env("AUTOCACHE_BUSY_POLL_US", "-5");
            let errs = Config::from_figment(&Config::figment(None)).expect_err("negative");
            assert!(errs.to_string().contains("`busy-poll-us`"), "{errs}");
            Ok(())
        });
    }

    #[test]
    fn client_output_buffer_limit_takes_redis_syntax() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTOCACHE_SEEDS", "a:1");
            jail.set_env("AUTOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT", "normal 16mb 4mb 10");
            let cfg = Config::from_figment(&Config::figment(None)).expect("valid");
            let l = cfg.client_output_buffer_limit.normal;
            assert_eq!((l.hard, l.soft, l.soft_seconds), (16 << 20, 4 << 20, 10));
            jail.set_env("AUTOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT", "normal 16mb");
            let errs = Config::from_figment(&Config::figment(None)).expect_err("incomplete");
            assert!(
                errs.to_string().contains("`client-output-buffer-limit`"),
                "{errs}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_backend_password_without_requirepass_is_warned_about() {
        let mut cfg = Config {
            seeds: vec!["a:1".into()],
            ..Config::default()
        };
        assert!(cfg.warnings().is_empty());
        cfg.backend_password = Some("s3cret".into());
        let w = cfg.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("requirepass"), "{w:?}");
        cfg.requirepass = Some("other".into());
        assert!(cfg.warnings().is_empty());
    }

    #[test]
    fn seeds_from_a_comma_list() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTOCACHE_SEEDS", "a:1,b:2 c:3");
            let cfg = Config::from_figment(&Config::figment(None)).expect("valid");
            assert_eq!(cfg.seeds, ["a:1", "b:2", "c:3"]);
            Ok(())
        });
    }

    #[test]
    fn reports_every_problem_at_once_with_origin() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                "port = 70000\nseeds = [\"nohost\"]\nbackend-connections = 0\ncolour = \"blue\"\n",
            )?;
            jail.set_env("AUTOCACHE_LOGLEVEL", "chatty");
            let errs = Config::from_figment(&Config::figment(Some(Path::new("bad.toml"))))
                .expect_err("invalid");
            let text = errs.to_string();
            for needle in [
                "`port`",
                "`seeds`",
                "`backend-connections`",
                "`colour`: unknown",
                "`loglevel`",
                "bad.toml",
            ] {
                assert!(text.contains(needle), "missing {needle} in:\n{text}");
            }
            assert_eq!(errs.0.len(), 5, "{text}");
            Ok(())
        });
    }
}
