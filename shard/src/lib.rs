//! AutoCache shard: a Redis-protocol cache server.
//!
//! The server is a library function, [`run`], so tests and the proxy's embedded mode start it
//! on any listener; `main.rs` only loads configuration and calls it.
//!
//! # Module dependencies
//!
//! Each module uses only modules above it in this list (data flows down: server → connection
//! → cmd → store):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | wire | `protocol`, `error` | request framing, reply encoding; errors as Redis replies |
//! | values | `value` | `Value`, `Kind`, per-type accounting and encoding, the one codec |
//! | storage | `store` (with `store::warm`) | slot tables, expiry, eviction, the warm tier |
//! | services | `clock`, `config`, `params`, `slowlog`, `latency`, `errorstats`, `pause`, `monitor`, `tracking`, `pubsub`, `notify`, `clients`, `blocking`, `scripts` | client-side caching, pub/sub and keyspace notifications, blocked clients' registry, the script cache |
//! | cluster | `migrate`, then `cluster` | slot gates and migration tasks; membership, routing |
//! | state | `shared` | what every connection and task shares |
//! | requests | `cmd`, `observe` | dispatch and command families; metrics and spans |
//! | connections | `connection`, then `server` | one client's pipeline; the accept loop and `run` |
//!
//! Migration tasks reach the server through `migrate::Node` (implemented by `shared::Shared`),
//! so `migrate` does not import the state that holds its gates. Inside a module directory,
//! `mod.rs` declares and re-exports its files, which use each other and never the layers
//! above; the exception is `store/`, whose files (`evict`, `expire`, `scan`, `tiering`,
//! `migrate`) are further `impl Db` blocks over the tables defined in `store/mod.rs`.
#![forbid(unsafe_code)]

mod blocking;
mod clients;
mod clock;
pub mod cluster;
mod cmd;
pub mod config;
mod connection;
pub mod error;
mod errorstats;
mod functions;
mod gates;
mod latency;
pub mod migrate;
mod monitor;
mod notify;
pub mod observe;
pub mod params;
mod pause;
pub mod protocol;
mod pubsub;
mod running;
mod scripts;
mod server;
mod shared;
mod slowlog;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod tracking;
pub mod value;
mod watch;

pub use config::Config;
/// One MONITOR line (without the leading `+`), as Redis prints it; the proxy's MONITOR uses it.
pub use monitor::line as monitor_line;
pub use server::{Error, run, run_with_admin};

/// The Redis version this server reports (clients gate features on it).
pub const REDIS_VERSION: &str = "7.2.4";
