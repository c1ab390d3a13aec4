//! What AutoCache's proxy, shard and load generator share: the cluster vocabulary (key slots,
//! the static command table, slot maps, redirects, SWIM membership), request framing, the RESP
//! reply type and its encoder, and the configuration and process plumbing of the binaries.
#![forbid(unsafe_code)]

pub mod command;
pub mod double;
pub mod frame;
pub mod keyspec;
pub mod process;
pub mod redirect;
pub mod resp;
pub mod settings;
pub mod slot;
pub mod swim;
pub mod topology;

pub use command::{CommandSpec, lookup};
pub use slot::{SLOT_COUNT, Slot};
pub use topology::{Mode, SlotMap};
