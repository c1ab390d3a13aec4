//! CLUSTER subcommands a standalone shard answers: key-slot introspection over both tiers.

use membership::Slot;
use membership::command::CommandId;

use super::{Session, parse_i64};
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};

/// What a standalone shard answers for CLUSTER subcommands that need cluster mode.
pub fn disabled() -> CmdError {
    CmdError::err("This instance has cluster support disabled")
}

fn slot_arg(b: &[u8]) -> Result<Slot, CmdError> {
    let n = parse_i64(b).map_err(|_| CmdError::err("Invalid slot"))?;
    u16::try_from(n)
        .ok()
        .and_then(Slot::new)
        .ok_or_else(|| CmdError::err("Invalid slot"))
}

pub fn cluster(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    match id {
        CommandId::ClusterKeyslot => Ok(Reply::Int(i64::from(Slot::for_key(a.get(2)).get()))),
        CommandId::ClusterCountkeysinslot => Ok(Reply::Int(
            s.shared.db.count_in_slot(slot_arg(a.get(2))?) as i64,
        )),
        CommandId::ClusterGetkeysinslot => {
            let slot = slot_arg(a.get(2))?;
            let count = parse_i64(a.get(3))
                .ok()
                .filter(|c| *c >= 0)
                .ok_or_else(|| CmdError::err("Invalid number of keys"))?;
            let keys = s.shared.db.keys_in_slot(slot, count as usize, s.now);
            Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
        }
        _ => Ok(super::server::help(
            "CLUSTER",
            &[
                "COUNTKEYSINSLOT <slot>",
                "    Return the number of keys in <slot>.",
                "GETKEYSINSLOT <slot> <count>",
                "    Return key names stored by current node in a slot.",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
            ],
        )),
    }
}
