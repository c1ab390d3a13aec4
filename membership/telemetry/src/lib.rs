//! AutoCache observability, shared by the shard and the proxy: the observability settings,
//! hot-path command statistics in preallocated atomics, the metrics registry exported in the
//! Prometheus format, the admin HTTP server (`/metrics`, `/health`, `/ready`) and OTLP traces.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod metrics;
pub mod settings;
pub mod stats;
pub mod trace;

pub use admin::Admin;
pub use metrics::{Identity, Metrics};
pub use settings::Settings;
pub use trace::{TraceParent, Tracing};
