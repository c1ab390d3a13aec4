//! CLUSTER subcommands a standalone shard answers: key-slot introspection over both tiers.

use membership::Slot;
use membership::command::CommandId;

use super::args::parse_i64;
use super::session::Session;
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

fn split_addr(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((ip, port)) => (ip.to_string(), port.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

/// CLUSTER SLOTS / SHARDS / NODES / INFO / MYID, ASKING, READONLY, READWRITE: cluster mode only.
fn cluster_mode(s: &Session, id: CommandId) -> CmdResult {
    let Some(c) = s.shared.cluster.get() else {
        return Err(disabled());
    };
    let view = c.handle.load();
    let own = &view.slots;
    Ok(match id {
        CommandId::ClusterMyid => Reply::str(&c.me.to_string()),
        CommandId::Readonly | CommandId::Readwrite => Reply::Ok,
        CommandId::ClusterSlots => Reply::Array(
            own.ranges()
                .into_iter()
                .filter_map(|r| {
                    let n = r.node?;
                    let (ip, port) = split_addr(&n.client_addr);
                    Some(Reply::Array(vec![
                        Reply::Int(i64::from(r.first)),
                        Reply::Int(i64::from(r.last)),
                        Reply::Array(vec![
                            Reply::str(&ip),
                            Reply::Int(port),
                            Reply::str(&n.id.to_string()),
                        ]),
                    ]))
                })
                .collect(),
        ),
        CommandId::ClusterShards => Reply::Array(
            own.shards()
                .into_iter()
                .filter_map(|(id, ranges)| {
                    let n = own.node(&id)?;
                    let (ip, port) = split_addr(&n.client_addr);
                    let slots = ranges
                        .iter()
                        .flat_map(|(f, l)| [Reply::Int(i64::from(*f)), Reply::Int(i64::from(*l))])
                        .collect();
                    let node = Reply::Map(vec![
                        (Reply::str("id"), Reply::str(&id.to_string())),
                        (Reply::str("port"), Reply::Int(port)),
                        (Reply::str("ip"), Reply::str(&ip)),
                        (Reply::str("endpoint"), Reply::str(&ip)),
                        (Reply::str("role"), Reply::str("master")),
                        (Reply::str("replication-offset"), Reply::Int(0)),
                        (Reply::str("health"), Reply::str("online")),
                    ]);
                    Some(Reply::Map(vec![
                        (Reply::str("slots"), Reply::Array(slots)),
                        (Reply::str("nodes"), Reply::Array(vec![node])),
                    ]))
                })
                .collect(),
        ),
        CommandId::ClusterNodes => {
            let shards = own.shards();
            let mut out = String::new();
            let me = std::iter::once((&view.me, "myself,master"));
            let others = view.members.values().map(|m| {
                let flags = match m.state {
                    membership::swim::MemberState::Down => "master,fail",
                    membership::swim::MemberState::Suspect => "master,pfail",
                    membership::swim::MemberState::Alive => "master",
                };
                (&m.info, flags)
            });
            for (info, flags) in me.chain(others) {
                let ranges: Vec<String> = shards
                    .iter()
                    .filter(|(id, _)| *id == info.id)
                    .flat_map(|(_, r)| {
                        r.iter().map(|(f, l)| {
                            if f == l {
                                f.to_string()
                            } else {
                                format!("{f}-{l}")
                            }
                        })
                    })
                    .collect();
                let mut ranges = ranges;
                if info.id == c.me {
                    // Open slots, as Redis shows them: `[slot->-dest]`, `[slot-<-source]`.
                    ranges.extend(c.migrations.open_slots().into_iter().map(
                        |(slot, outgoing, peer)| {
                            let arrow = if outgoing { "->-" } else { "-<-" };
                            format!("[{slot}{arrow}{peer}]")
                        },
                    ));
                }
                let state = if flags.contains("fail") {
                    "disconnected"
                } else {
                    "connected"
                };
                out.push_str(&format!(
                    "{} {}@{} {flags} - 0 0 {} {state}{}{}\n",
                    info.id,
                    info.client_addr,
                    info.cluster_addr.port(),
                    own.config_epoch(),
                    if ranges.is_empty() { "" } else { " " },
                    ranges.join(" ")
                ));
            }
            Reply::Verbatim(out)
        }
        _ => {
            let unowned = own.unowned();
            let owners = own.shards().len();
            let known = view
                .members
                .values()
                .filter(|m| m.state != membership::swim::MemberState::Down)
                .count()
                + 1;
            let assigned = usize::from(membership::SLOT_COUNT) - unowned;
            Reply::Verbatim(format!(
                "cluster_enabled:1\r\ncluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\n\
                 cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{known}\r\ncluster_size:{owners}\r\n\
                 cluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n{}",
                if unowned == 0 { "ok" } else { "fail" },
                own.config_epoch(),
                own.config_epoch(),
                crate::migrate::migration_lines(&c.migrations, "\r\n"),
            ))
        }
    })
}

/// CLUSTER MIGRATE <first> <last> <node-id>: queues an online migration of slots this node
/// owns; progress shows in CLUSTER INFO, completion in CLUSTER SLOTS.
fn migrate(s: &Session, a: &Args) -> CmdResult {
    let Some(c) = s.shared.cluster.get() else {
        return Err(disabled());
    };
    let (first, last) = (slot_arg(a.get(2))?, slot_arg(a.get(3))?);
    if first > last {
        return Err(CmdError::err(
            "Invalid slot range: first slot is after last slot",
        ));
    }
    let to: membership::swim::NodeId = std::str::from_utf8(a.get(4))
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| CmdError::err("Invalid node id"))?;
    let view = c.handle.load();
    if to == c.me {
        return Err(CmdError::err("The destination is this node"));
    }
    if view.state_of(&to) != Some(membership::swim::MemberState::Alive) {
        return Err(CmdError::err(format!("Unknown or unreachable node {to}")));
    }
    if let Some(s) = (first.get()..=last.get())
        .find(|&n| Slot::new(n).and_then(|n| view.slots.owner_id(n)) != Some(c.me))
    {
        return Err(CmdError::err(format!(
            "Slot {s} is not owned by this node; send CLUSTER MIGRATE to the slot's owner"
        )));
    }
    c.migrations
        .submit(crate::migrate::Job {
            first: first.get(),
            last: last.get(),
            to,
        })
        .map_err(CmdError::err)?;
    Ok(Reply::Ok)
}

pub fn cluster(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    match id {
        CommandId::ClusterSlots
        | CommandId::ClusterShards
        | CommandId::ClusterNodes
        | CommandId::ClusterInfo
        | CommandId::ClusterMyid
        | CommandId::Readonly
        | CommandId::Readwrite => cluster_mode(s, id),
        CommandId::ClusterMigrate => migrate(s, a),
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
                "MIGRATE <first-slot> <last-slot> <node-id>",
                "    Move the slots (owned by this node) and their keys online to <node-id>.",
            ],
        )),
    }
}
