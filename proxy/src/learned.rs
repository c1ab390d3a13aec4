//! Commands learned from the backends: at start-up the proxy reads one backend's `COMMAND`
//! reply and routes every command its own table (`membership::command`) does not carry by
//! what the backend says of it — arity, flags, key positions and Redis 7 key specs, and the
//! cluster routing tips (`request_policy`, `response_policy`). So `XADD`, `XRANGE`
//! or a module's commands go through in front of Redis or Valkey.
//!
//! Keyed commands go to the owner of their keys' slot (all keys in one slot, else
//! `-CROSSSLOT`); keyless ones to every shard when the backend says so (`request_policy:
//! all_shards|all_nodes`), else to any one. Refused ([`Route::Refused`], with the reason) are
//! commands that hold a connection (blocking, pub/sub), keyless administration of one server,
//! and commands whose keys the reply does not let the proxy find. The proxy's own table wins:
//! a command it has a row for, served or refused (transactions, WAIT, ...), is not learned.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use membership::command::{
    CommandId, CommandSpec, Flags, KeyPos, Merge, Refusal, Route, lookup_any,
};
use membership::keyspec::{self, KeySpec, int, strings, text};
use parking_lot::Mutex;

use crate::protocol::{Reply, decode_reply};
use crate::topology::TopologyCell;

/// Learned commands by lower-case name; a refused one has [`Route::Refused`] (a container's
/// refused subcommands are among its subcommands).
#[derive(Default)]
pub struct LearnedTable {
    by_name: HashMap<Box<[u8]>, &'static CommandSpec>,
}

impl LearnedTable {
    /// A learned command by name, case-insensitively (without allocating for names of up to
    /// 64 bytes: this runs for every command the built-in table lacks).
    pub fn get(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        if self.by_name.is_empty() {
            return None;
        }
        let mut buf = [0u8; 64];
        match buf.get_mut(..name.len()) {
            Some(lower) => {
                lower.copy_from_slice(name);
                lower.make_ascii_lowercase();
                self.by_name.get(&*lower).copied()
            }
            None => self
                .by_name
                .get(name.to_ascii_lowercase().as_slice())
                .copied(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// How a learned command routes, from its flags and tips (pure). `keyed`: it has keys the proxy
/// can find; `movable_unfound`: its keys move (Redis's `movablekeys`) and no key spec says
/// where; `plain_multi`: its keys are the plain range `1..` (so it can be split per shard like
/// MSET).
pub fn route_for(
    flags: &[&str],
    tips: &[&str],
    keyed: bool,
    movable_unfound: bool,
    plain_multi: bool,
) -> Route {
    let flag = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let tip = |t: &str| tips.iter().any(|x| x.eq_ignore_ascii_case(t));
    // A keyed blocking command waits on a connection of its own; one without keys the
    // proxy can find has nowhere to go.
    if flag("blocking") {
        return if keyed && !movable_unfound {
            Route::Blocking
        } else {
            Route::Refused(Refusal::Blocking)
        };
    }
    if flag("pubsub") {
        return Route::Refused(Refusal::PubSub);
    }
    if movable_unfound {
        return Route::Refused(Refusal::KeysNotFound);
    }
    let merge = if tip("response_policy:agg_sum") {
        Merge::Sum
    } else if tip("response_policy:all_succeeded") && !keyed {
        Merge::Same
    } else if keyed {
        Merge::KeyOrder
    } else {
        Merge::Same
    };
    if keyed {
        if tip("request_policy:multi_shard") && plain_multi {
            return Route::FanOut(merge);
        }
        return Route::SameSlot;
    }
    if tip("request_policy:all_shards") || tip("request_policy:all_nodes") {
        return Route::AllShards(merge);
    }
    if flag("admin") {
        return Route::Refused(Refusal::KeylessAdmin);
    }
    Route::AnyShard
}

/// Strings and slices made `'static` for the learned specs. Tables are built once per distinct
/// `COMMAND` reply (cached by [`from_reply`]), so what is leaked is bounded by the commands the
/// backends have, not by how often a proxy starts.
fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_ascii_lowercase().into_boxed_str())
}

fn our_flags(flags: &[&str]) -> Flags {
    const MAP: [(&str, Flags); 9] = [
        ("write", Flags::WRITE),
        ("readonly", Flags::READONLY),
        ("denyoom", Flags::DENYOOM),
        ("admin", Flags::ADMIN),
        ("noscript", Flags::NOSCRIPT),
        ("loading", Flags::LOADING),
        ("stale", Flags::STALE),
        ("fast", Flags::FAST),
        ("no_auth", Flags::NO_AUTH),
    ];
    let f = MAP
        .iter()
        .filter(|(n, _)| flags.iter().any(|f| f.eq_ignore_ascii_case(n)))
        .fold(Flags::NONE, |acc, (_, f)| acc | *f);
    // Anything not read-only may change its keys (`EVAL` is `may_replicate`, not `write`): the
    // near cache fences its keys like a write's, so a client reads what its script wrote.
    if f.contains(Flags::READONLY) {
        f
    } else {
        f | Flags::WRITE
    }
}

/// One `COMMAND` entry: `[name, arity, flags, first, last, step, acl categories, tips, key
/// specs, subcommands]` (Redis 6 sends the first seven). `None` for anything malformed.
fn entry(info: &Reply) -> Option<(String, &'static CommandSpec)> {
    let Reply::Array(f) = info else {
        return None;
    };
    let full = text(f.first()?)?.to_ascii_lowercase();
    // Subcommands are named `container|sub`.
    let name = full.rsplit('|').next().unwrap_or(&full).to_string();
    let arity = i32::try_from(int(f.get(1))?).ok()?;
    let flags = strings(f.get(2));
    let keys = KeyPos {
        first: i32::try_from(int(f.get(3))?).ok()?,
        last: i32::try_from(int(f.get(4))?).ok()?,
        step: i32::try_from(int(f.get(5))?).ok()?,
    };
    let tips = strings(f.get(7));
    let raw_specs: &[Reply] = match f.get(8) {
        Some(Reply::Array(a)) => a,
        _ => &[],
    };
    let mut intern = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let parsed: Vec<Option<KeySpec>> = raw_specs
        .iter()
        .map(|s| keyspec::parse(s, &mut intern))
        .collect();
    let movable = flags.iter().any(|x| x.eq_ignore_ascii_case("movablekeys"));
    let specs_complete = !parsed.is_empty() && parsed.iter().all(Option::is_some);
    let specs: Vec<KeySpec> = parsed.into_iter().flatten().collect();
    // Key specs are used where the plain range does not describe the keys; a command without
    // movable keys is routed by its range (the fast path).
    let use_specs = movable && specs_complete;
    // Refused subcommands stay among the subcommands: the client is told why.
    let subs: Vec<CommandSpec> = match f.get(9) {
        Some(Reply::Array(a)) => a
            .iter()
            .filter_map(|s| entry(s))
            .map(|(_, s)| clone_spec(s))
            .collect(),
        _ => Vec::new(),
    };
    let routed_subs = subs.iter().any(|s| s.refusal().is_none());
    let keyed = !keys.is_none() || use_specs;
    let plain_multi = !movable && keys.first == 1 && keys.last == -1;
    let route = match route_for(
        &flags,
        &tips,
        keyed,
        movable && !use_specs && !routed_subs,
        plain_multi,
    ) {
        // A container is resolved to its subcommands, each with its own route.
        Route::Refused(_) if routed_subs => Route::AnyShard,
        route => route,
    };
    let category = strings(f.get(6))
        .iter()
        .find(|c| !matches!(**c, "@read" | "@write" | "@fast" | "@slow"))
        .map_or("generic", |c| leak_str(c.trim_start_matches('@')));
    let spec: &'static CommandSpec = Box::leak(Box::new(CommandSpec {
        name: leak_str(&name),
        id: CommandId::Learned,
        arity,
        flags: our_flags(&flags),
        keys: if use_specs { KeyPos::NONE } else { keys },
        route,
        group: category,
        since: "",
        summary: "",
        subcommands: Box::leak(subs.into_boxed_slice()),
        specs: if use_specs {
            Box::leak(specs.into_boxed_slice())
        } else {
            &[]
        },
        key_use: &[],
        tips: &[],
    }));
    Some((name, spec))
}

fn clone_spec(s: &CommandSpec) -> CommandSpec {
    CommandSpec {
        name: s.name,
        id: s.id,
        arity: s.arity,
        flags: s.flags,
        keys: s.keys,
        route: s.route,
        group: s.group,
        since: s.since,
        summary: s.summary,
        subcommands: s.subcommands,
        specs: s.specs,
        key_use: s.key_use,
        tips: s.tips,
    }
}

/// Tables already built, by the raw `COMMAND` reply they came from.
static BUILT: LazyLock<Mutex<HashMap<Bytes, Arc<LearnedTable>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The learned table for a raw `COMMAND` reply: every command not in the proxy's own table.
pub fn from_reply(raw: &Bytes) -> Option<Arc<LearnedTable>> {
    if let Some(t) = BUILT.lock().get(raw) {
        return Some(t.clone());
    }
    let Ok(Reply::Array(entries)) = decode_reply(raw) else {
        return None;
    };
    let mut by_name = HashMap::new();
    for e in &entries {
        let Some((name, spec)) = entry(e) else {
            continue;
        };
        // The table's rows stand, served or refused (transactions, WAIT, ... keep the proxy's
        // reasons).
        if lookup_any(name.as_bytes()).is_some() {
            continue;
        }
        by_name.insert(name.into_bytes().into_boxed_slice(), spec);
    }
    let table = Arc::new(LearnedTable { by_name });
    BUILT.lock().insert(raw.clone(), table.clone());
    Some(table)
}

/// Reads `COMMAND` from the first backend that answers and installs what it teaches; retries
/// every second while no backend answers (a backend that answers with an error has nothing to
/// teach: the proxy's own table is all it routes).
pub async fn learn(
    topology: Arc<TopologyCell>,
    connect_timeout: Duration,
    into: Arc<ArcSwap<LearnedTable>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let req = Bytes::from_static(b"*1\r\n$7\r\nCOMMAND\r\n");
    loop {
        let backends = topology
            .load()
            .map(|t| t.backends.clone())
            .unwrap_or_default();
        for b in backends.iter() {
            let call = tokio::time::timeout(
                connect_timeout.max(Duration::from_secs(2)),
                b.call(0, req.clone(), 1),
            );
            let reply = match call.await {
                Ok(Ok(mut v)) => v.pop(),
                _ => None,
            };
            let Some(raw) = reply else {
                continue;
            };
            if raw.first() == Some(&b'-') {
                tracing::info!(backend = %b.addr, "backend has no COMMAND; routing by the built-in table only");
                return;
            }
            if let Some(t) = from_reply(&raw) {
                tracing::info!(backend = %b.addr, commands = t.len(), "learned commands from the backend");
                into.store(t);
                return;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_flags_and_tips() {
        let r = |flags: &[&str], tips: &[&str], keyed, movable_unfound, plain| {
            route_for(flags, tips, keyed, movable_unfound, plain)
        };
        assert_eq!(r(&["write"], &[], true, false, false), Route::SameSlot);
        assert_eq!(
            r(
                &["write"],
                &["request_policy:multi_shard", "response_policy:agg_sum"],
                true,
                false,
                true
            ),
            Route::FanOut(Merge::Sum)
        );
        // multi_shard whose keys are not a plain range: one slot only.
        assert_eq!(
            r(
                &["write"],
                &["request_policy:multi_shard"],
                true,
                false,
                false
            ),
            Route::SameSlot
        );
        assert_eq!(
            r(&["write", "blocking"], &[], true, false, false),
            Route::Blocking
        );
        assert_eq!(
            r(&["write", "blocking"], &[], false, false, false),
            Route::Refused(Refusal::Blocking)
        );
        assert_eq!(
            r(&["pubsub"], &[], false, false, false),
            Route::Refused(Refusal::PubSub)
        );
        assert_eq!(
            r(&["movablekeys"], &[], false, true, false),
            Route::Refused(Refusal::KeysNotFound)
        );
        assert_eq!(
            r(
                &["noscript"],
                &["request_policy:all_shards", "response_policy:all_succeeded"],
                false,
                false,
                false
            ),
            Route::AllShards(Merge::Same)
        );
        assert_eq!(
            r(
                &["readonly"],
                &["request_policy:all_shards", "response_policy:agg_sum"],
                false,
                false,
                false
            ),
            Route::AllShards(Merge::Sum)
        );
        assert_eq!(
            r(&["admin"], &[], false, false, false),
            Route::Refused(Refusal::KeylessAdmin)
        );
        assert_eq!(r(&["readonly"], &[], false, false, false), Route::AnyShard);
    }

    fn cmd(name: &str, arity: i64, flags: &[&str], keys: (i64, i64, i64), tips: &[&str]) -> String {
        let arr = |xs: &[&str]| {
            let mut s = format!("*{}\r\n", xs.len());
            for x in xs {
                s.push_str(&format!("+{x}\r\n"));
            }
            s
        };
        format!(
            "*10\r\n${}\r\n{name}\r\n:{arity}\r\n{}:{}\r\n:{}\r\n:{}\r\n*0\r\n{}*0\r\n*0\r\n",
            name.len(),
            arr(flags),
            keys.0,
            keys.1,
            keys.2,
            arr(tips)
        )
    }

    #[test]
    fn a_command_reply_becomes_routes_for_what_the_table_lacks() {
        let raw = format!(
            "*5\r\n{}{}{}{}{}",
            cmd("get", 2, &["readonly", "fast"], (1, 1, 1), &[]),
            cmd("mod.add", -2, &["write", "denyoom", "fast"], (1, 1, 1), &[]),
            cmd("blpop", -3, &["write", "blocking"], (1, -2, 1), &[]),
            cmd("mod.count", -2, &["readonly"], (1, -1, 1), &[]),
            cmd("mod.movable", -6, &["write", "movablekeys"], (1, 1, 1), &[]),
        );
        let t = from_reply(&Bytes::from(raw)).expect("table");
        assert!(t.get(b"get").is_none(), "the built-in table wins");
        let add = t.get(b"MOD.ADD").expect("mod.add learned");
        assert_eq!(add.route, Route::SameSlot);
        assert!(add.is_write());
        assert_eq!(add.key_positions(4, |_| b"x").collect::<Vec<_>>(), [1]);
        // BLPOP is the table's (served on a connection of its own), not learned.
        assert!(t.get(b"blpop").is_none());
        let count = t.get(b"mod.count").expect("mod.count learned");
        assert_eq!(count.route, Route::SameSlot);
        assert_eq!(
            count.key_positions(4, |_| b"x").collect::<Vec<_>>(),
            [1, 2, 3]
        );
        // Movable keys without key specs (a Redis 6 reply): the keys cannot be found.
        assert_eq!(
            t.get(b"mod.movable").map(|c| c.route),
            Some(Route::Refused(Refusal::KeysNotFound))
        );
    }

    /// A module's blocking command is refused like the table's; a container keeps its refused
    /// subcommands, so the client is told why (MODULE LIST administers one server).
    #[test]
    fn refusals_are_routes_down_to_subcommands() {
        // The last element of an entry is its subcommands.
        let container = cmd("module", -2, &[], (0, 0, 0), &[]);
        let module = format!(
            "{}*2\r\n{}{}",
            container.strip_suffix("*0\r\n").expect("subcommands last"),
            cmd("module|list", 2, &["admin", "noscript"], (0, 0, 0), &[]),
            cmd("module|help", 2, &["loading", "stale"], (0, 0, 0), &[])
        );
        let raw = format!(
            "*2\r\n{}{module}",
            cmd("mod.block", -2, &["write", "blocking"], (1, 1, 1), &[]),
        );
        let t = from_reply(&Bytes::from(raw)).expect("table");
        assert_eq!(t.get(b"mod.block").map(|c| c.route), Some(Route::Blocking));
        let module = t.get(b"MODULE").expect("module learned");
        assert_eq!(
            module.route,
            Route::AnyShard,
            "a container routes by subcommand"
        );
        assert_eq!(
            module.subcommand(b"list").map(|c| c.route),
            Some(Route::Refused(Refusal::KeylessAdmin))
        );
        assert_eq!(
            module.subcommand(b"help").map(|c| c.route),
            Some(Route::AnyShard)
        );
    }
}
