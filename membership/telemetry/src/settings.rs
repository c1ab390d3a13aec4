//! The observability keys both binaries take (`admin-port`, `admin-bind`, `otel-*`,
//! `latency-tracking`), parsed the same way as the rest of their configuration, plus the
//! standard OpenTelemetry environment variables as a lowest-precedence layer.

use figment::providers::Serialized;
use figment::value::{Dict, Num, Value};
use membership::settings::{as_bool, as_int, as_opt_string, as_string};

/// Default port of the proxy's admin HTTP server (`/metrics`, `/health`, `/ready`).
pub const DEFAULT_ADMIN_PORT: u16 = 9121;
/// Default port of the shard's admin HTTP server: not the proxy's, so that a proxy and a
/// shard started with their defaults on one host both come up.
pub const DEFAULT_SHARD_ADMIN_PORT: u16 = 9122;
/// Default address of the admin HTTP server: loopback, whatever `bind` says, so exposing the
/// client port does not expose the metrics and probes too (`admin-bind` opens them up).
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1";
/// Default `admin-idle-timeout-ms`.
pub const DEFAULT_ADMIN_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (usually port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (usually port 4318), `POST <endpoint>/v1/traces`.
    HttpProtobuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Port of the admin HTTP server; 0 = no admin server (and no per-command metrics).
    pub admin_port: u16,
    /// Address of the admin HTTP server; `None` = [`DEFAULT_ADMIN_BIND`].
    pub admin_bind: Option<String>,
    /// An admin connection without traffic this long is closed.
    pub admin_idle_timeout: std::time::Duration,
    /// Time every command into the `command_duration_seconds` histogram (one clock read per
    /// command); counts are kept either way while the admin server runs.
    pub latency_tracking: bool,
    /// OTLP base endpoint (`http://jaeger:4317`); `None` = no traces at all.
    pub otel_endpoint: Option<String>,
    pub otel_protocol: OtlpProtocol,
    /// `service.name` of the spans; `None` = the binary's name.
    pub otel_service_name: Option<String>,
    /// Share of commands traced from their start (head sampling), 0.0..=1.0.
    pub otel_sample_ratio: f64,
    /// Commands slower than this many milliseconds are traced even when not sampled (at the
    /// proxy without children: the shards were not told in time); 0 = off.
    pub otel_slow_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            admin_port: DEFAULT_ADMIN_PORT,
            admin_bind: None,
            admin_idle_timeout: DEFAULT_ADMIN_IDLE_TIMEOUT,
            latency_tracking: true,
            otel_endpoint: None,
            otel_protocol: OtlpProtocol::HttpProtobuf,
            otel_service_name: None,
            otel_sample_ratio: 0.01,
            otel_slow_ms: 0,
        }
    }
}

impl Settings {
    /// Settings for tests: an admin server wherever the test binds it, nothing else.
    pub fn disabled() -> Settings {
        Settings {
            admin_port: 0,
            ..Settings::default()
        }
    }

    /// Applies one configuration key; `None` when the key is not an observability key.
    /// [`Settings::set_value`] for the last arm of a configuration's own keys: a key that is
    /// not an observability key either is unknown.
    pub fn set_or_unknown(&mut self, key: &str, v: &Value) -> Result<(), String> {
        self.set_value(key, v)
            .unwrap_or_else(|| Err("unknown configuration key".into()))
    }

    pub fn set_value(&mut self, key: &str, v: &Value) -> Option<Result<(), String>> {
        let r = match key {
            "admin-port" => as_int(v).and_then(|n| {
                self.admin_port = n.try_into().map_err(|_| "must be between 0 and 65535")?;
                Ok(())
            }),
            "admin-bind" => as_opt_string(v).map(|s| self.admin_bind = s),
            "admin-idle-timeout-ms" => as_int(v).and_then(|n| match u64::try_from(n) {
                Ok(ms) if ms > 0 => {
                    self.admin_idle_timeout = std::time::Duration::from_millis(ms);
                    Ok(())
                }
                _ => Err("must be a positive number of milliseconds".into()),
            }),
            "latency-tracking" => as_bool(v).map(|b| self.latency_tracking = b),
            "otel-endpoint" => as_opt_string(v).map(|s| self.otel_endpoint = s),
            "otel-protocol" => as_string(v).and_then(|s| {
                self.otel_protocol = parse_protocol(&s)?;
                Ok(())
            }),
            "otel-service-name" => as_opt_string(v).map(|s| self.otel_service_name = s),
            "otel-sample-ratio" => as_float(v).and_then(|f| {
                if !(0.0..=1.0).contains(&f) {
                    return Err(format!("must be between 0 and 1, not {f}"));
                }
                self.otel_sample_ratio = f;
                Ok(())
            }),
            "otel-slow-ms" => as_int(v).and_then(|n| {
                self.otel_slow_ms = n
                    .try_into()
                    .map_err(|_| "must be a non-negative number of milliseconds")?;
                Ok(())
            }),
            _ => return None,
        };
        Some(r)
    }

    /// The admin server's address. Not derived from the client `bind`: the admin port serves
    /// metrics and readiness to whoever can reach it, so it is opened beyond loopback only by
    /// an explicit `admin-bind`.
    pub fn admin_addr(&self) -> Option<(String, u16)> {
        if self.admin_port == 0 {
            return None;
        }
        let host = self
            .admin_bind
            .clone()
            .unwrap_or_else(|| DEFAULT_ADMIN_BIND.into());
        Some((host, self.admin_port))
    }
}

fn parse_protocol(s: &str) -> Result<OtlpProtocol, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" | "http" => Ok(OtlpProtocol::HttpProtobuf),
        other => Err(format!(
            "unknown OTLP protocol '{other}' (expected grpc or http/protobuf)"
        )),
    }
}

fn as_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Num(_, Num::F32(f)) => Ok(f64::from(*f)),
        Value::Num(_, Num::F64(f)) => Ok(*f),
        Value::Num(..) => as_int(v).map(|i| i as f64),
        Value::String(_, s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("'{s}' is not a number")),
        _ => Err("expected a number".into()),
    }
}

/// The standard OpenTelemetry environment variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG`) translated into configuration keys. Binaries merge this provider
/// *below* their own layers, so `otel-*` keys from the file, `AUTOCACHE_*` variables and flags win.
/// `env` is `std::env::var` in the binaries (tests pass a map).
pub fn otel_env(env: impl Fn(&str) -> Option<String>) -> Serialized<Dict> {
    let mut d = Dict::new();
    let mut put = |k: &str, v: String| {
        d.insert(k.into(), Value::from(v));
    };
    if let Some(e) = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|s| !s.is_empty()) {
        put("otel-endpoint", e);
    }
    if let Some(p) = env("OTEL_EXPORTER_OTLP_PROTOCOL").filter(|s| !s.is_empty()) {
        put("otel-protocol", p);
    }
    if let Some(n) = env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()) {
        put("otel-service-name", n);
    }
    if let Some(s) = env("OTEL_TRACES_SAMPLER") {
        let arg = env("OTEL_TRACES_SAMPLER_ARG").filter(|s| !s.is_empty());
        let ratio = match s.trim().to_ascii_lowercase().as_str() {
            "always_on" | "parentbased_always_on" => Some("1".to_string()),
            "always_off" | "parentbased_always_off" => Some("0".to_string()),
            // The specification's default argument for the ratio samplers is 1.0.
            "traceidratio" | "parentbased_traceidratio" => Some(arg.unwrap_or_else(|| "1".into())),
            _ => None,
        };
        if let Some(r) = ratio {
            put("otel-sample-ratio", r);
        }
    }
    Serialized::defaults(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use std::collections::HashMap;

    fn settings_from(f: &Figment) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let errs = membership::settings::apply(f, |k, v| {
            s.set_value(k, v)
                .unwrap_or_else(|| Err("unknown configuration key".into()))
        });
        (s, errs)
    }

    #[test]
    fn otel_environment_is_the_lowest_layer() {
        let env: HashMap<&str, &str> = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "cache-a"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]
        .into_iter()
        .collect();
        let provider = otel_env(|k| env.get(k).map(|v| v.to_string()));
        let f = Figment::from(provider).merge(Serialized::defaults(
            [("otel-service-name", "from-config")]
                .into_iter()
                .collect::<HashMap<_, _>>(),
        ));
        let (s, errs) = settings_from(&f);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.otel_endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(s.otel_protocol, OtlpProtocol::Grpc);
        assert_eq!(s.otel_service_name.as_deref(), Some("from-config"));
        assert!((s.otel_sample_ratio - 0.25).abs() < 1e-9);
    }

    #[test]
    fn bad_values_are_reported() {
        let f = Figment::from(Serialized::defaults(
            [
                ("otel-sample-ratio", "1.5"),
                ("otel-protocol", "carrier-pigeon"),
                ("admin-port", "70000"),
            ]
            .into_iter()
            .collect::<HashMap<_, _>>(),
        ));
        let (_, errs) = settings_from(&f);
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn admin_address_is_loopback_unless_admin_bind_says_otherwise() {
        let mut s = Settings::default();
        assert_eq!(
            s.admin_addr(),
            Some(("127.0.0.1".into(), DEFAULT_ADMIN_PORT))
        );
        s.admin_bind = Some("0.0.0.0".into());
        assert_eq!(s.admin_addr(), Some(("0.0.0.0".into(), DEFAULT_ADMIN_PORT)));
        assert_eq!(Settings::disabled().admin_addr(), None);
    }

    #[test]
    fn admin_idle_timeout_is_positive_milliseconds() {
        let f = |v: &str| {
            Figment::from(Serialized::defaults(
                [("admin-idle-timeout-ms", v)]
                    .into_iter()
                    .collect::<HashMap<_, _>>(),
            ))
        };
        let (s, errs) = settings_from(&f("250"));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.admin_idle_timeout, std::time::Duration::from_millis(250));
        assert_eq!(settings_from(&f("0")).1.len(), 1);
        assert_eq!(settings_from(&f("-1")).1.len(), 1);
        assert_eq!(
            Settings::default().admin_idle_timeout,
            DEFAULT_ADMIN_IDLE_TIMEOUT
        );
    }
}
