//! The cluster vocabulary shared by AutoCache's proxy and shard: key slots, the static command
//! table, and (in later modules) topology, redirects and SWIM membership.
#![forbid(unsafe_code)]

pub mod command;
pub mod slot;

pub use command::{CommandSpec, lookup};
pub use slot::{SLOT_COUNT, Slot};
