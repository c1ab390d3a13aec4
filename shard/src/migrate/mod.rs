//! Online slot migration between cluster nodes.
//!
//! The source (the slot's owner) moves a range of slots to a destination over one QUIC
//! stream of the cluster transport (mutually authenticated by the cluster secret), batch by
//! batch, like Redis's MIGRATE: a batch's keys are taken *out* of the store (both tiers) into
//! an in-flight set, sent, installed by the destination, acknowledged, and forgotten. So a key
//! is always in exactly one place: in the source's store, in flight (clients get `-TRYAGAIN`),
//! or at the destination (clients get `-ASK`, and the destination serves them after `ASKING`).
//! When the range is empty the source claims it for the destination at a new epoch; from then
//! on the source answers `-MOVED`.
//!
//! Per slot, a *gate* (read-write lock) orders the source's batch extraction against the
//! commands of the slot: a command holds the read side from its routing decision to its end,
//! so no command can decide "local" and then find its key gone, or create a key the source
//! already gave away.
//!
//! Files, in the order data moves: `gate.rs` is the per-slot state every keyed command consults
//! (gates, migrating/importing, keys in flight); `source.rs` takes batches out and streams them;
//! `wire.rs` is the frame format (records inside are the value codec's); `destination.rs`
//! installs what arrives; `maintain.rs` keeps the store to the slots this node serves.

mod destination;
mod gate;
mod maintain;
mod source;
mod wire;

use std::sync::Arc;

use membership::swim::{AgentHandle, NodeId, QuicStreams};
use tokio_util::sync::CancellationToken;

use crate::store::Db;

pub use destination::run_destination;
pub use gate::{Job, MigrationStats, Migrations, Presence, SlotState, migration_lines};
pub use maintain::maintain;
pub use source::{AUTO_STEP_SLOTS, migrate_range, next_auto_job, run_source};
pub use wire::{Frame, Item, decode_frame, encode_batch, encode_begin, encode_done};

/// Most keys per batch.
pub const BATCH_KEYS: usize = 512;
/// Batches close once they hold this many accounted bytes (a single larger key still goes).
pub const BATCH_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("the destination refused: {0}")]
    Refused(String),
    #[error("bad frame from peer: {0}")]
    Frame(&'static str),
    #[error("warm tier: {0}")]
    Warm(String),
    #[error("{0}")]
    Aborted(String),
}

fn io(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Transport(e.to_string())
}
/// What the migration tasks use of the node they run in. `crate::shared::Shared` is the one
/// implementation; the tasks see it through this trait so that migration sits below the shared
/// state (which holds the migration gates) rather than importing it back. Not on any command's
/// path: called per batch and per view change.
pub trait Node: Send + Sync + 'static {
    fn db(&self) -> &Db;
    /// Unix ms by the server's clock (`crate::clock`).
    fn now_ms(&self) -> u64;
    /// Cancelled when the server stops.
    fn shutdown(&self) -> &CancellationToken;
}

/// What the migration tasks need.
#[derive(Clone)]
pub struct Ctx {
    pub node: Arc<dyn Node>,
    pub handle: AgentHandle,
    pub me: NodeId,
    pub streams: QuicStreams,
    pub migrations: Arc<Migrations>,
    /// Whether this node migrates the agent's balancing plan by itself.
    pub auto: bool,
}

impl Ctx {
    fn db(&self) -> &Db {
        self.node.db()
    }

    fn now(&self) -> u64 {
        self.node.now_ms()
    }

    fn stopping(&self) -> &CancellationToken {
        self.node.shutdown()
    }
}
