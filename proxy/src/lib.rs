//! AutoCache proxy: plain Redis clients talk to it as if it were one Redis server; it routes each
//! command to the shard that owns its slot (a Redis Cluster, or standalone servers with the slots
//! split statically), fans multi-key commands out, and keeps pipelined replies in order.
//!
//! Modules, top to bottom; each uses only modules below it (no import cycles: `grep 'use
//! crate::'` shows it), so data flows one way, server → session → plan → backend:
//!
//! 1. `server` — the accept loop and shutdown; builds the shared state, starts the background
//!    tasks, hands each client to a session.
//! 2. `session` — one client: framing, the queue of planned chunks (`session::chunk`), reply
//!    rendering and redirects (`session::reply`), fan-out merges (`session::merge`).
//! 3. `plan` — routes each request into per-backend batches, or answers it.
//! 4. `local` — commands the proxy answers itself; `observe` — metrics and traces.
//! 5. `shared` — the proxy-wide state (configuration, slot map cell, backends, clients,
//!    counters, hot keys, learned commands); `client` — one connection's own state.
//! 6. `hotkey` — hot keys and the near cache; `learned` — commands learned from the backends;
//!    `pubsub` — the subscription hub (upstream subscriptions fanned out to the clients).
//! 7. `topology` — the slot map snapshot.
//! 8. `backend` — multiplexed shard connections.
//! 9. What uses nothing above: `aggregate` (merge rules of gathered replies), `algebra`
//!    (cross-slot set algebra computed from the shards' replies), `config`, `error`
//!    (where errors become Redis replies), `protocol`, `outbuf`, `busy`; `embedded` (the
//!    zero-config local cluster) stands apart.
#![forbid(unsafe_code)]

mod aggregate;
mod algebra;
pub mod backend;
mod busy;
mod client;
pub mod config;
pub mod embedded;
pub mod error;
pub mod hotkey;
pub mod learned;
mod local;
mod monitor;
mod observe;
pub mod outbuf;
mod plan;
pub mod protocol;
pub mod pubsub;
mod scripts;
mod server;
mod session;
mod shared;
mod subscribe;
pub mod topology;
mod transaction;

pub use config::Config;
pub use server::{Error, run, run_with_admin, run_with_ready};

/// The Redis version the proxy reports (clients gate features on it).
pub const REDIS_VERSION: &str = "7.2.4";
