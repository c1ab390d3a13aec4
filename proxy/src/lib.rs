//! AutoCache proxy: plain Redis clients talk to it as if it were one Redis server; it routes each
//! command to the shard that owns its slot (a Redis Cluster, or standalone servers with the slots
//! split statically), fans multi-key commands out, and keeps pipelined replies in order.
//!
//! Layers, each depending only on the ones below it:
//! `server` (accept, shutdown) → `session` (ordered replies per client) → `plan`/`local`
//! (routing, locally answered commands) → `backend` (multiplexed shard connections) and
//! `topology` (slot map snapshot). Errors become RESP replies in `error` only.
#![forbid(unsafe_code)]

mod aggregate;
pub mod backend;
mod busy;
pub mod config;
pub mod embedded;
pub mod error;
pub mod hotkey;
pub mod learned;
mod local;
mod observe;
pub mod outbuf;
mod plan;
pub mod protocol;
mod server;
mod session;
pub mod topology;

pub use config::Config;
pub use server::{Error, run, run_with_admin, run_with_ready};

/// The Redis version the proxy reports (clients gate features on it).
pub const REDIS_VERSION: &str = "7.2.4";
