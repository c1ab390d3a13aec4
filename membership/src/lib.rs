//! The cluster vocabulary shared by AutoCache's proxy and shard: key slots, the static command
//! table, and (in later modules) topology, redirects and SWIM membership.
#![forbid(unsafe_code)]

pub mod command;
pub mod redirect;
pub mod slot;
pub mod topology;

pub use command::{CommandSpec, lookup};
pub use slot::{SLOT_COUNT, Slot};
pub use topology::{Mode, SlotMap};
