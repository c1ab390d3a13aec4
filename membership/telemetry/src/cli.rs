//! What both binaries do before they serve: the flags they share, configuration read in layers
//! (OpenTelemetry's `OTEL_*` variables < TOML file < `AUTOCACHE_*` variables < flags), and the
//! client and admin listeners bound from it.

use std::path::PathBuf;

use clap::Args;
use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use membership::settings::{ConfigErrors, Layered};
use serde::Serialize;
use tokio::net::TcpListener;

/// The flags of every AutoCache server: flatten them into the binary's own (`#[command(flatten)]`
/// and `#[serde(flatten)]`).
#[derive(Args, Serialize, Debug)]
pub struct CommonFlags {
    /// TOML configuration file.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Addresses to listen on (comma-separated; the first is used).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<Vec<String>>,
    /// TCP port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Log level: debug, verbose, notice, warning (or a tracing filter).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loglevel: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format")]
    #[serde(rename = "log-format", skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Port of the admin HTTP server (/metrics, /health, /ready); 0 = none. Default 9121 for the
    /// proxy, 9122 for a shard.
    #[arg(long = "admin-port")]
    #[serde(rename = "admin-port", skip_serializing_if = "Option::is_none")]
    pub admin_port: Option<u16>,
    /// Address of the admin HTTP server (default: 127.0.0.1, whatever --bind says).
    #[arg(long = "admin-bind")]
    #[serde(rename = "admin-bind", skip_serializing_if = "Option::is_none")]
    pub admin_bind: Option<String>,
    /// OTLP endpoint for traces, e.g. http://localhost:4318 (default: OTEL_EXPORTER_OTLP_ENDPOINT; none = no traces).
    #[arg(long = "otel-endpoint")]
    #[serde(rename = "otel-endpoint", skip_serializing_if = "Option::is_none")]
    pub otel_endpoint: Option<String>,
    /// Share of commands traced, 0 to 1 (default 0.01).
    #[arg(long = "otel-sample-ratio")]
    #[serde(rename = "otel-sample-ratio", skip_serializing_if = "Option::is_none")]
    pub otel_sample_ratio: Option<f64>,
}

/// Reads a configuration: the standard `OTEL_*` variables, then the TOML file named by
/// `--config`, then `AUTOCACHE_*` variables, then `flags` (all of the binary's flags, whose
/// common part is `common`), each layer over the one before.
pub fn load<C: Layered>(common: &CommonFlags, flags: &impl Serialize) -> Result<C, ConfigErrors> {
    let otel = crate::settings::otel_env(|k| std::env::var(k).ok());
    let figment = Figment::from(Named(otel, "OTEL_* environment variables"))
        .merge(membership::settings::figment(common.config.as_deref()))
        .merge(Named(Serialized::defaults(flags), "command-line flags"));
    membership::settings::extract(&figment)
}

/// A provider under a name users know, for the "(from ...)" of configuration errors (a
/// serialized value would be named by its Rust type and source line).
struct Named<P>(P, &'static str);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.1)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

/// Binds the client listener (the first `bind` address, or loopback, on `port`) and the admin
/// listener `settings` asks for; an error names the address that could not be bound.
pub async fn bind(
    bind: &[String],
    port: u16,
    settings: &crate::Settings,
) -> Result<(TcpListener, Option<TcpListener>), std::io::Error> {
    let host = bind.first().map_or("127.0.0.1", String::as_str);
    let listener = listen(host, port, "").await?;
    let admin = match settings.admin_addr() {
        Some((host, port)) => Some(listen(&host, port, " (admin-port)").await?),
        None => None,
    };
    Ok((listener, admin))
}

async fn listen(host: &str, port: u16, what: &str) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind((host, port)).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {host}:{port}{what}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use figment::value::Value;

    #[derive(Parser, Serialize)]
    struct Flags {
        #[command(flatten)]
        #[serde(flatten)]
        common: CommonFlags,
        #[arg(long = "own-flag")]
        #[serde(rename = "own-flag", skip_serializing_if = "Option::is_none")]
        own_flag: Option<u64>,
    }

    /// Records the keys it is given; rejects `port` 1.
    #[derive(Default)]
    struct Seen(Vec<String>);

    impl Layered for Seen {
        fn set_value(&mut self, key: &str, value: &Value) -> Result<(), String> {
            if key == "port" && value.to_u128() == Some(1) {
                return Err("port 1 is refused".into());
            }
            self.0.push(key.to_string());
            Ok(())
        }

        fn validate(&self) -> Result<(), ConfigErrors> {
            Ok(())
        }
    }

    #[test]
    fn flags_common_and_own_reach_the_configuration_under_their_names() {
        let flags = Flags::parse_from([
            "bin",
            "--port",
            "7001",
            "--admin-port",
            "0",
            "--own-flag",
            "3",
        ]);
        let mut seen: Seen = load(&flags.common, &flags).expect("valid");
        seen.0.sort();
        for key in ["admin-port", "own-flag", "port"] {
            assert!(seen.0.iter().any(|k| k == key), "{key} in {:?}", seen.0);
        }
        assert!(!seen.0.iter().any(|k| k == "config" || k == "bind"));
    }

    #[test]
    fn a_bad_flag_is_reported_as_coming_from_the_command_line() {
        let flags = Flags::parse_from(["bin", "--port", "1"]);
        let errs = load::<Seen>(&flags.common, &flags).err().expect("refused");
        assert_eq!(
            errs.0,
            vec!["`port`: port 1 is refused (from command-line flags)".to_string()]
        );
    }
}
