//! Traces: an OTLP exporter behind a bounded batch processor (a dead collector costs dropped
//! spans, never a blocked command), and the small vocabulary the servers use to record spans
//! after the fact — they decide to trace a command (head sampling, or because it was slow),
//! then emit its span with explicit ids and timestamps, so untraced commands cost one branch.
//!
//! Trace context crosses from the proxy to the shards as a W3C `traceparent` carried by the
//! private command `AUTOCACHE.TRACE <traceparent>`, sent just before a sampled command on the
//! backend connection (see [`TRACE_COMMAND`]).

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, Sampler, SdkTracerProvider,
};

use crate::settings::{OtlpProtocol, Settings};

/// The private command that hands a shard the trace context of the next command on the same
/// connection. Plain clients never see it: the proxy only sends it to backends it identified as
/// AutoCache shards, and swallows the reply.
pub const TRACE_COMMAND: &str = "AUTOCACHE.TRACE";

/// Spans queued for export before new ones are dropped.
const MAX_QUEUE: usize = 4096;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// A W3C trace context: the trace and the parent span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>` (version 00; later versions may append fields).
    pub fn parse(b: &[u8]) -> Option<TraceParent> {
        let s = std::str::from_utf8(b).ok()?;
        let mut parts = s.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2
            || version == "ff"
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        u8::from_str_radix(flags, 16).ok()?;
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID)
            .then_some(TraceParent { trace_id, span_id })
    }

    /// The `traceparent` value (always sampled: only traced commands carry one).
    pub fn encode(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// A fresh random trace with a fresh span.
    pub fn random() -> TraceParent {
        TraceParent {
            trace_id: TraceId::from_bytes(fastrand::u128(1..).to_be_bytes()),
            span_id: new_span_id(),
        }
    }

    /// The same trace, another span.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            span_id: new_span_id(),
        }
    }

    fn context(&self, remote: bool) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            self.trace_id,
            self.span_id,
            TraceFlags::SAMPLED,
            remote,
            TraceState::default(),
        ))
    }
}

pub fn new_span_id() -> SpanId {
    SpanId::from_bytes(fastrand::u64(1..).to_be_bytes())
}

/// The wall-clock time of an earlier `Instant`.
pub fn wall(at: Instant) -> SystemTime {
    let ago = at.elapsed();
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// One finished span, emitted after the fact with explicit ids.
pub struct SpanRecord {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    /// This span's trace and id.
    pub ids: TraceParent,
    /// The parent span (same trace), if any; `remote` when it lives in another process.
    pub parent: Option<(SpanId, bool)>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<(Cow<'static, str>, SystemTime, Vec<KeyValue>)>,
    /// An error reply or failure: the span's status becomes Error with this description.
    pub error: Option<String>,
}

thread_local! {
    /// The ids of the span this thread is about to build (see [`Tracing::emit`]).
    static CHOSEN: Cell<Option<TraceParent>> = const { Cell::new(None) };
}

/// Gives the SDK the ids [`Tracing::emit`] chose; random ones otherwise. The SDK asks for the
/// span id first, then (for a span without a parent) the trace id.
#[derive(Debug)]
struct ChosenIds;

impl IdGenerator for ChosenIds {
    fn new_trace_id(&self) -> TraceId {
        CHOSEN
            .with(Cell::get)
            .map_or_else(|| TraceParent::random().trace_id, |p| p.trace_id)
    }

    fn new_span_id(&self) -> SpanId {
        CHOSEN
            .with(Cell::get)
            .map_or_else(new_span_id, |p| p.span_id)
    }
}

/// A server's tracer: sampling settings and the exporter pipeline.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    ratio: f64,
    slow: Option<Duration>,
}

impl Tracing {
    /// The tracer the settings ask for: `None` without an endpoint (no cost at all).
    pub fn start(
        settings: &Settings,
        default_service: &'static str,
    ) -> Result<Option<Arc<Tracing>>, TraceError> {
        let Some(endpoint) = settings.otel_endpoint.clone() else {
            return Ok(None);
        };
        let err = |reason: String| TraceError::Exporter {
            endpoint: endpoint.clone(),
            reason,
        };
        let exporter = match settings.otel_protocol {
            // tonic needs the tokio runtime this is called from.
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| err(e.to_string()))?,
            OtlpProtocol::HttpProtobuf => {
                let url = traces_url(&endpoint);
                // The blocking HTTP client must not be built on an async worker.
                std::thread::spawn(move || {
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_protocol(Protocol::HttpBinary)
                        .with_endpoint(url)
                        .with_timeout(EXPORT_TIMEOUT)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .join()
                .map_err(|_| err("exporter set-up panicked".into()))?
                .map_err(err)?
            }
        };
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUE)
                    .with_scheduled_delay(Duration::from_secs(1))
                    .build(),
            )
            .build();
        let service = settings
            .otel_service_name
            .clone()
            .unwrap_or_else(|| default_service.to_string());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            // Sampling is decided before a span is recorded (see `sample`).
            .with_sampler(Sampler::AlwaysOn)
            .with_id_generator(ChosenIds)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let tracer = provider.tracer("autocache");
        tracing::info!(
            %endpoint,
            ratio = settings.otel_sample_ratio,
            slow_ms = settings.otel_slow_ms,
            "exporting traces over OTLP"
        );
        Ok(Some(Arc::new(Tracing {
            provider,
            tracer,
            ratio: settings.otel_sample_ratio,
            slow: (settings.otel_slow_ms > 0).then(|| Duration::from_millis(settings.otel_slow_ms)),
        })))
    }

    /// Head sampling: whether to trace the command about to run.
    #[inline]
    pub fn sample(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && fastrand::f64() < self.ratio)
    }

    /// Whether commands are traced for being slow (then they must be timed).
    pub fn traces_slow(&self) -> bool {
        self.slow.is_some()
    }

    /// Whether a command that took `d` is traced even though it was not sampled.
    #[inline]
    pub fn is_slow(&self, d: Duration) -> bool {
        self.slow.is_some_and(|s| d >= s)
    }

    pub fn emit(&self, r: SpanRecord) {
        let b = self
            .tracer
            .span_builder(r.name)
            .with_kind(r.kind)
            .with_start_time(r.start)
            .with_attributes(r.attributes);
        // The ids were chosen before the span (they went to the shards already): the id
        // generator hands them to the span built next on this thread.
        CHOSEN.with(|c| c.set(Some(r.ids)));
        let cx = match r.parent {
            Some((parent, remote)) => TraceParent {
                trace_id: r.ids.trace_id,
                span_id: parent,
            }
            .context(remote),
            None => Context::new(),
        };
        let mut span = b.start_with_context(&self.tracer, &cx);
        CHOSEN.with(|c| c.set(None));
        for (name, at, attrs) in r.events {
            span.add_event_with_timestamp(name, at, attrs);
        }
        if let Some(e) = r.error {
            span.set_status(Status::error(e));
        }
        span.end_with_timestamp(r.end);
    }

    /// Flushes queued spans and stops the exporter (blocks up to the export timeout).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "trace exporter shutdown");
        }
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL; spans go to `<base>/v1/traces`.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let p = TraceParent::random();
        let s = p.encode();
        assert_eq!(s.len(), 55);
        assert_eq!(TraceParent::parse(s.as_bytes()), Some(p));
        let w3c = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let q = TraceParent::parse(w3c).expect("valid");
        assert_eq!(
            format!("{:032x}", q.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"garbage",
            b"",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn no_endpoint_no_tracer() {
        assert!(
            Tracing::start(&Settings::default(), "x")
                .expect("ok")
                .is_none()
        );
    }
}
