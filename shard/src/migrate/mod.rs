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
//! Files: `context.rs` is what the tasks share (context, error, the `Node` they run in);
//! then in the order data moves, `gate.rs` is the per-slot state every keyed command consults
//! (gates, migrating/importing, keys in flight), `source.rs` takes batches out and streams
//! them, `wire.rs` is the frame format (its records are the value codec's), `destination.rs`
//! installs what arrives, and `maintain.rs` keeps the store to the slots this node serves.

mod context;
mod destination;
mod gate;
mod maintain;
mod publish;
mod source;
mod wire;

pub use context::{Ctx, MigrateError, Node};
pub use destination::run_destination;
pub use gate::{
    BATCH_BYTES, BATCH_KEYS, Job, MigrationStats, Migrations, Presence, SlotState, migration_lines,
};
pub use maintain::maintain;
pub use publish::{Forwarder, run_forwarder};
pub use source::{AUTO_STEP_SLOTS, migrate_range, next_auto_job, run_source};
pub use wire::{Frame, Item, decode_frame, encode_batch, encode_begin, encode_done};
