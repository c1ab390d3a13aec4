//! The metrics registry of one server: OpenTelemetry observable instruments exported by
//! `opentelemetry-prometheus` into a `prometheus::Registry`, read from the server's own atomics
//! at scrape time (callbacks), and histograms kept in [`AtomicHistogram`]s rendered next to
//! them in the Prometheus text format. Instruments are created once at start-up; recording on
//! the hot path never touches OpenTelemetry.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use std::sync::Mutex;

use crate::stats::{CommandStats, HistogramSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics exporter: {0}")]
    Exporter(String),
}

/// Emits `(label value, snapshot)` pairs of one histogram family at scrape time.
type HistogramSource = Box<dyn Fn(&mut dyn FnMut(&str, HistogramSnapshot)) + Send + Sync>;

struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    /// Divides the stored integers into the exported unit (1e9: nanoseconds → seconds).
    divisor: f64,
    source: HistogramSource,
}

/// What `autocache_info` says about the process.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `shard` or `proxy`.
    pub role: &'static str,
    pub version: &'static str,
    pub node_id: String,
}

/// One server's metrics: the per-command statistics the hot path writes, and everything the
/// admin server's `/metrics` renders.
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    meter: Meter,
    pub commands: Arc<CommandStats>,
    /// Whether commands are timed (`latency-tracking`).
    pub latency: bool,
    histograms: Mutex<Vec<HistogramFamily>>,
}

impl Metrics {
    /// Creates the registry with the instruments both roles share: `commands_total`,
    /// `command_duration_seconds`, `uptime_seconds` and `info`.
    pub fn new(identity: Identity, latency: bool) -> Result<Metrics, MetricsError> {
        Metrics::with_commands(identity, latency, Arc::new(CommandStats::default()))
    }

    /// [`Metrics::new`] over per-command statistics the server keeps anyway (a shard keeps
    /// them for INFO commandstats whether or not metrics are exported).
    pub fn with_commands(
        identity: Identity,
        latency: bool,
        commands: Arc<CommandStats>,
    ) -> Result<Metrics, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .without_units()
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("autocache");
        let m = Metrics {
            registry,
            provider,
            meter,
            commands,
            latency,
            histograms: Mutex::new(Vec::new()),
        };
        let stats = m.commands.clone();
        m.meter
            .u64_observable_counter("autocache_commands")
            .with_description("Commands executed, by command and outcome (error = error reply).")
            .with_callback(move |o| {
                for (cmd, c) in stats.used() {
                    for (status, n) in [
                        ("ok", c.ok.load(std::sync::atomic::Ordering::Relaxed)),
                        ("error", c.err.load(std::sync::atomic::Ordering::Relaxed)),
                    ] {
                        o.observe(
                            n,
                            &[KeyValue::new("cmd", cmd), KeyValue::new("status", status)],
                        );
                    }
                }
            })
            .build();
        let stats = m.commands.clone();
        m.histogram(
            "autocache_command_duration_seconds",
            "Time from reading a command to its reply being ready, by command.",
            "cmd",
            1e9,
            move |emit| {
                for (cmd, c) in stats.used() {
                    if c.latency.count() > 0 {
                        emit(cmd, c.latency.snapshot());
                    }
                }
            },
        );
        let started = Instant::now();
        m.meter
            .f64_observable_gauge("autocache_uptime_seconds")
            .with_description("Seconds since the server started.")
            .with_callback(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))
            .build();
        let info = [
            KeyValue::new("version", identity.version),
            KeyValue::new("role", identity.role),
            KeyValue::new("node_id", identity.node_id),
        ];
        m.meter
            .u64_observable_gauge("autocache_info")
            .with_description("Always 1; the labels say what this process is.")
            .with_callback(move |o| o.observe(1, &info))
            .build();
        Ok(m)
    }

    /// The meter for role-specific instruments.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// A monotonic counter read at scrape time (`name` gets `_total`).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        f: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        self.meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| o.observe(f(), &[]))
            .build();
    }

    /// A counter with one label, read at scrape time: `f` emits `(label value, count)` pairs.
    pub fn counter_by(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        f: impl Fn(&mut dyn FnMut(&str, u64)) + Send + Sync + 'static,
    ) {
        self.meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| {
                f(&mut |v, n| o.observe(n, &[KeyValue::new(label, v.to_string())]));
            })
            .build();
    }

    /// A counter with two labels, read at scrape time.
    pub fn counter_by2(
        &self,
        name: &'static str,
        help: &'static str,
        labels: (&'static str, &'static str),
        f: impl Fn(&mut dyn FnMut(&str, &str, u64)) + Send + Sync + 'static,
    ) {
        self.meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| {
                f(&mut |a, b, n| {
                    o.observe(
                        n,
                        &[
                            KeyValue::new(labels.0, a.to_string()),
                            KeyValue::new(labels.1, b.to_string()),
                        ],
                    )
                });
            })
            .build();
    }

    /// A gauge read at scrape time.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        f: impl Fn() -> i64 + Send + Sync + 'static,
    ) {
        self.meter
            .i64_observable_gauge(name)
            .with_description(help)
            .with_callback(move |o| o.observe(f(), &[]))
            .build();
    }

    /// A gauge with one label, read at scrape time.
    pub fn gauge_by(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        f: impl Fn(&mut dyn FnMut(&str, i64)) + Send + Sync + 'static,
    ) {
        self.meter
            .i64_observable_gauge(name)
            .with_description(help)
            .with_callback(move |o| {
                f(&mut |v, n| o.observe(n, &[KeyValue::new(label, v.to_string())]));
            })
            .build();
    }

    /// A decimal gauge with one label, read at scrape time (ratios).
    pub fn gauge_f64_by(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        f: impl Fn(&mut dyn FnMut(&str, f64)) + Send + Sync + 'static,
    ) {
        self.meter
            .f64_observable_gauge(name)
            .with_description(help)
            .with_callback(move |o| {
                f(&mut |v, n| o.observe(n, &[KeyValue::new(label, v.to_string())]));
            })
            .build();
    }

    /// A histogram kept in [`crate::stats::AtomicHistogram`]s: `f` emits one snapshot per label
    /// value at scrape time; stored integers divided by `divisor` give the exported unit.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        divisor: f64,
        f: impl Fn(&mut dyn FnMut(&str, HistogramSnapshot)) + Send + Sync + 'static,
    ) {
        if let Ok(mut h) = self.histograms.lock() {
            h.push(HistogramFamily {
                name,
                help,
                label,
                divisor,
                source: Box::new(f),
            });
        }
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let families = self.registry.gather();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        if let Ok(hs) = self.histograms.lock() {
            for h in hs.iter() {
                render_histogram(h, &mut out);
            }
        }
        out
    }

    /// Stops the meter provider (its callbacks hold references to the server's state).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
        if let Ok(mut h) = self.histograms.lock() {
            h.clear();
        }
    }
}

fn render_histogram(h: &HistogramFamily, out: &mut String) {
    let mut header = false;
    (h.source)(&mut |value, snap| {
        if !header {
            let _ = writeln!(out, "# HELP {} {}", h.name, h.help);
            let _ = writeln!(out, "# TYPE {} histogram", h.name);
            header = true;
        }
        let v = escape(value);
        for (bound, count) in &snap.buckets {
            let le = *bound as f64 / h.divisor;
            let _ = writeln!(
                out,
                "{}_bucket{{{}=\"{v}\",le=\"{le}\"}} {count}",
                h.name, h.label
            );
        }
        let _ = writeln!(
            out,
            "{}_bucket{{{}=\"{v}\",le=\"+Inf\"}} {}",
            h.name, h.label, snap.count
        );
        let _ = writeln!(
            out,
            "{}_sum{{{}=\"{v}\"}} {}",
            h.name,
            h.label,
            snap.sum as f64 / h.divisor
        );
        let _ = writeln!(
            out,
            "{}_count{{{}=\"{v}\"}} {}",
            h.name, h.label, snap.count
        );
    });
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Registers the connection metrics every server has: `autocache_connections` (now connected),
/// `autocache_connections_received`, `autocache_connections_rejected`,
/// `autocache_network_bytes_received` / `_sent`, and `autocache_network_bytes` by direction
/// (the same two figures under one name, kept for existing dashboards). The callbacks hold `server` weakly (the registry must
/// not keep a stopped server alive) and report nothing once it is gone.
pub fn register_connections<S: Send + Sync + 'static>(
    m: &Metrics,
    server: &std::sync::Arc<S>,
    stats: fn(&S) -> &crate::stats::ConnectionStats,
    connected: fn(&S) -> usize,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let w = std::sync::Arc::downgrade(server);
    let read = move |f: &dyn Fn(&S) -> u64| w.upgrade().map_or(0, |s| f(&s));
    let r = read.clone();
    m.gauge("autocache_connections", "Connected clients.", move || {
        r(&|s| connected(s) as u64) as i64
    });
    let r = read.clone();
    m.counter(
        "autocache_connections_received",
        "Client connections accepted.",
        move || r(&|s| stats(s).received.load(Relaxed)),
    );
    let r = read.clone();
    m.counter(
        "autocache_connections_rejected",
        "Client connections refused (maxclients).",
        move || r(&|s| stats(s).rejected.load(Relaxed)),
    );
    let r = read.clone();
    m.counter(
        "autocache_network_bytes_received",
        "Bytes read from clients (INFO total_net_input_bytes).",
        move || r(&|s| stats(s).net_input_bytes.load(Relaxed)),
    );
    let r = read.clone();
    m.counter(
        "autocache_network_bytes_sent",
        "Bytes written to clients (INFO total_net_output_bytes).",
        move || r(&|s| stats(s).net_output_bytes.load(Relaxed)),
    );
    let w = std::sync::Arc::downgrade(server);
    m.counter_by(
        "autocache_network_bytes",
        "Bytes read from and written to clients.",
        "direction",
        move |emit| {
            if let Some(s) = w.upgrade() {
                emit("in", stats(&s).net_input_bytes.load(Relaxed));
                emit("out", stats(&s).net_output_bytes.load(Relaxed));
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{AtomicHistogram, WIDTH_BOUNDS, slot_of};
    use membership::command::lookup;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::new(
            Identity {
                role: "shard",
                version: "1.2.3",
                node_id: "n1".into(),
            },
            true,
        )
        .expect("metrics");
        let get = slot_of(lookup(b"get").map(|c| c.id));
        m.commands
            .record(get, true, Some(std::time::Duration::from_micros(20)));
        m.commands.record(get, false, None);
        m.counter("autocache_keys_expired", "Expired keys.", || 42);
        m.gauge_by("autocache_memory_bytes", "Memory.", "type", |emit| {
            emit("used", 100);
            emit("maxmemory", 0);
        });
        let width = Arc::new(AtomicHistogram::new(&WIDTH_BOUNDS));
        width.record(3);
        let w = width.clone();
        m.histogram("autocache_fanout_width", "Width.", "x", 1.0, move |emit| {
            emit("y", w.snapshot())
        });
        let text = m.render();
        for line in [
            "autocache_commands_total{cmd=\"get\",status=\"ok\"} 1",
            "autocache_commands_total{cmd=\"get\",status=\"error\"} 1",
            "autocache_keys_expired_total 42",
            "autocache_memory_bytes{type=\"used\"} 100",
            "autocache_info{node_id=\"n1\",role=\"shard\",version=\"1.2.3\"} 1",
            "autocache_command_duration_seconds_bucket{cmd=\"get\",le=\"0.00001\"} 0",
            "autocache_command_duration_seconds_bucket{cmd=\"get\",le=\"0.000025\"} 1",
            "autocache_command_duration_seconds_count{cmd=\"get\"} 1",
            "autocache_fanout_width_bucket{x=\"y\",le=\"3\"} 1",
            "# TYPE autocache_fanout_width histogram",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("autocache_uptime_seconds "), "{text}");
    }
}
