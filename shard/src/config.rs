//! Shard configuration: a typed struct with defaults, loaded by figment from (in rising
//! precedence) defaults, a TOML file, `AUTOCACHE_*` environment variables and command-line
//! flags. Keys use redis-server's names (`maxmemory-policy`, `requirepass`, ...). Every problem
//! in the merged configuration is reported at once, each with where the value came from.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};

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
}

/// When a warm key that a command reads moves back to RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmPromotion {
    Always,
    SecondAccess,
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
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            hz: 10,
            loglevel: "notice".into(),
            log_format: LogFormat::Text,
            warm_tier: false,
            warm_maxbytes: 0,
            warm_promotion: WarmPromotion::SecondAccess,
            warm_promotion_window_ms: 60_000,
            warm_demote_on_shutdown: true,
        }
    }
}

/// Everything wrong with a configuration, one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses a Redis memory value: a plain byte count or a number with a unit
/// (`k`/`m`/`g` = powers of 1000, `kb`/`mb`/`gb` = powers of 1024), case-insensitive.
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

impl Config {
    /// Defaults, then the TOML file (if any), then `AUTOCACHE_*` environment variables
    /// (`AUTOCACHE_MAXMEMORY_POLICY=allkeys-lru`; `__` nests). Merge flags on top, then call
    /// [`Config::from_figment`].
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut f = Figment::new();
        if let Some(path) = file {
            f = f.merge(Toml::file_exact(path));
        }
        f.merge(
            Env::prefixed("AUTOCACHE_")
                .ignore(&["config"])
                .map(|k| k.as_str().replace("__", ".").replace('_', "-").into()),
        )
    }

    /// Extracts and validates a configuration, reporting every problem at once.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigErrors> {
        let dict: Dict = figment
            .extract()
            .map_err(|e| ConfigErrors(e.into_iter().map(|e| e.to_string()).collect()))?;
        let mut cfg = Config::default();
        let mut errs = Vec::new();
        for (raw_key, value) in &dict {
            let key = raw_key.replace('_', "-");
            let origin = || {
                figment
                    .find_metadata(raw_key)
                    .map(|m| match &m.source {
                        Some(src) => format!(" (from {} {src})", m.name),
                        None => format!(" (from {})", m.name),
                    })
                    .unwrap_or_default()
            };
            if let Err(msg) = cfg.set_value(&key, value) {
                errs.push(format!("`{key}`: {msg}{}", origin()));
            }
        }
        errs.extend(cfg.validate().err().map(|e| e.0).unwrap_or_default());
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errs))
        }
    }

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
                    other => {
                        return Err(format!(
                            "unknown promotion policy '{other}' (expected always or second-access)"
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
            _ => return Err("unknown configuration key".into()),
        }
        Ok(())
    }

    /// Cross-field and range checks.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        if self.bind.is_empty() {
            errs.push("`bind`: at least one address is required".into());
        }
        if self.maxclients == 0 {
            errs.push("`maxclients`: must be at least 1".into());
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
        if log_filter(&self.loglevel).is_none() {
            errs.push(format!(
                "`loglevel`: unknown level '{}' (expected debug, verbose, notice, warning, or a tracing filter)",
                self.loglevel
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

/// Maps Redis log level names (and tracing's) to a tracing filter directive.
pub fn log_filter(level: &str) -> Option<String> {
    let l = level.to_ascii_lowercase();
    let mapped = match l.as_str() {
        "debug" => "debug",
        "verbose" => "info",
        "notice" | "info" => "info",
        "warning" | "warn" => "warn",
        "nothing" | "off" => "off",
        "trace" | "error" => l.as_str(),
        _ if l.contains('=') => l.as_str(),
        _ => return None,
    };
    Some(mapped.to_string())
}

/// Any integer figment holds (TOML gives signed, serialized flags may give unsigned).
fn num_i128(n: &figment::value::Num) -> Option<i128> {
    n.to_i128()
        .or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
}

fn as_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(_, s) => Ok(s.clone()),
        Value::Num(_, n) => Ok(num_i128(n).map(|n| n.to_string()).unwrap_or_default()),
        _ => Err("expected a string".into()),
    }
}

fn as_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(_, b) => Ok(*b),
        Value::String(_, s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Ok(true),
            "no" | "false" | "off" | "0" => Ok(false),
            _ => Err(format!("expected yes or no, got '{s}'")),
        },
        Value::Num(_, n) => Ok(num_i128(n).is_some_and(|n| n != 0)),
        _ => Err("expected yes or no".into()),
    }
}

fn as_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Num(_, n) => num_i128(n)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| "expected an integer".into()),
        Value::String(_, s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected an integer, got '{s}'")),
        _ => Err("expected an integer".into()),
    }
}

fn as_memory(v: &Value) -> Result<u64, String> {
    match v {
        Value::Num(_, n) => num_i128(n)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| "expected a byte count".into()),
        Value::String(_, s) => parse_memory(s)
            .ok_or_else(|| format!("expected a memory size like 100mb or 2gb, got '{s}'")),
        _ => Err("expected a memory size".into()),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("2GB"), Some(2 << 30));
        assert_eq!(parse_memory("1.5gb"), None);
        assert_eq!(parse_memory("lots"), None);
    }

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
    fn missing_file_is_an_error() {
        Jail::expect_with(|_| {
            let errs = Config::from_figment(&Config::figment(Some(Path::new("nope.toml"))))
                .expect_err("missing");
            assert!(errs.to_string().contains("nope.toml"), "{errs}");
            Ok(())
        });
    }
}
