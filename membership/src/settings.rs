//! Configuration plumbing shared by the binaries: figment layering (defaults → TOML file →
//! `AUTOCACHE_*` environment → flags), collecting every problem at once with where the bad
//! value came from, and converters for redis-server-style values (`100mb`, `yes`/`no`).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Num, Value};

/// Everything wrong with a configuration, one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// `Ok` when there are no problems, else all of them.
    pub fn check(problems: Vec<String>) -> Result<(), ConfigErrors> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

/// The problem with a `loglevel` value, if it is not a level [`log_filter`] knows.
pub fn loglevel_problem(level: &str) -> Option<String> {
    log_filter(level).is_none().then(|| {
        format!(
            "`loglevel`: unknown level '{level}' (expected debug, verbose, notice, warning, or a tracing filter)"
        )
    })
}

/// Defaults, then the TOML file (if any), then `AUTOCACHE_*` environment variables
/// (`AUTOCACHE_MAXMEMORY_POLICY=allkeys-lru` sets `maxmemory-policy`; `__` nests). Merge flags
/// on top before extracting.
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

/// Feeds every top-level key of `figment` (with `_` read as `-`) to `set`, and returns one
/// message per key that `set` rejected, naming the key and where its value came from.
pub fn apply(
    figment: &Figment,
    mut set: impl FnMut(&str, &Value) -> Result<(), String>,
) -> Vec<String> {
    let dict: Dict = match figment.extract() {
        Ok(d) => d,
        Err(e) => return e.into_iter().map(|e| e.to_string()).collect(),
    };
    let mut errs = Vec::new();
    for (raw_key, value) in &dict {
        let key = raw_key.replace('_', "-");
        if let Err(msg) = set(&key, value) {
            let origin = figment
                .find_metadata(raw_key)
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            errs.push(format!("`{key}`: {msg}{origin}"));
        }
    }
    errs
}

/// A configuration read in layers: it starts from `Default`, takes each key it knows from the
/// merged layers, and then checks itself as a whole.
pub trait Layered: Default {
    /// Sets one key (`-` separated, as in the TOML file); an error names what is wrong.
    fn set_value(&mut self, key: &str, value: &Value) -> Result<(), String>;
    /// Every problem of the whole configuration at once.
    fn validate(&self) -> Result<(), ConfigErrors>;
}

/// Extracts and validates a configuration from `figment`, reporting every problem at once:
/// unknown or bad keys (with where their values came from), then what `validate` finds.
pub fn extract<C: Layered>(figment: &Figment) -> Result<C, ConfigErrors> {
    let mut cfg = C::default();
    let mut errs = apply(figment, |key, value| cfg.set_value(key, value));
    errs.extend(cfg.validate().err().map(|e| e.0).unwrap_or_default());
    ConfigErrors::check(errs).map(|()| cfg)
}

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

/// Maps Redis log level names (and tracing's) to a tracing filter directive.
pub fn log_filter(level: &str) -> Option<String> {
    let l = level.to_ascii_lowercase();
    let mapped = match l.as_str() {
        "debug" => "debug",
        "verbose" | "notice" | "info" => "info",
        "warning" | "warn" => "warn",
        "nothing" | "off" => "off",
        "trace" | "error" => l.as_str(),
        _ if l.contains('=') => l.as_str(),
        _ => return None,
    };
    Some(mapped.to_string())
}

/// Any integer figment holds (TOML gives signed, serialized flags may give unsigned).
fn num_i128(n: &Num) -> Option<i128> {
    n.to_i128()
        .or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
}

pub fn as_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(_, s) => Ok(s.clone()),
        Value::Num(_, n) => Ok(num_i128(n).map(|n| n.to_string()).unwrap_or_default()),
        _ => Err("expected a string".into()),
    }
}

/// A string where empty means "not set".
pub fn as_opt_string(v: &Value) -> Result<Option<String>, String> {
    let s = as_string(v)?;
    Ok((!s.is_empty()).then_some(s))
}

/// `yes`/`no` (also true/false, on/off, 1/0).
pub fn as_bool(v: &Value) -> Result<bool, String> {
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

pub fn as_int(v: &Value) -> Result<i64, String> {
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

pub fn as_memory(v: &Value) -> Result<u64, String> {
    match v {
        Value::Num(_, n) => num_i128(n)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| "expected a byte count".into()),
        Value::String(_, s) => parse_memory(s)
            .ok_or_else(|| format!("expected a memory size like 100mb or 2gb, got '{s}'")),
        _ => Err("expected a memory size".into()),
    }
}

/// A list from a TOML array or a comma/space-separated string.
pub fn as_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(_, s) => Ok(s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()),
        Value::Array(_, items) => items.iter().map(as_string).collect(),
        _ => Err("expected a string or a list of strings".into()),
    }
}

/// Milliseconds as a duration.
pub fn as_ms(v: &Value) -> Result<Duration, String> {
    let n = as_int(v)?;
    u64::try_from(n)
        .map(Duration::from_millis)
        .map_err(|_| "expected milliseconds (a non-negative integer)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn values() {
        let s = |x: &str| Value::from(x.to_string());
        assert_eq!(as_bool(&s("yes")), Ok(true));
        assert_eq!(as_bool(&s("off")), Ok(false));
        assert!(as_bool(&s("maybe")).is_err());
        assert_eq!(
            as_list(&s("a:1, b:2 c:3")),
            Ok(vec!["a:1".into(), "b:2".into(), "c:3".into()])
        );
        assert_eq!(as_memory(&s("1mb")), Ok(1 << 20));
        assert_eq!(as_int(&Value::from(7u16)), Ok(7));
        assert_eq!(log_filter("warning").as_deref(), Some("warn"));
        assert_eq!(log_filter("loud"), None);
    }
}
