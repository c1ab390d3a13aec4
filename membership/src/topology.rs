//! The slot map: which node serves each of the 16384 slots, built from `CLUSTER SHARDS`,
//! `CLUSTER SLOTS`, or (for standalone servers) an even split of the slots over a static list.
//!
//! Sans-IO: callers run the commands and hand the replies over as [`Value`]s.

use std::fmt;

use crate::resp::Reply;
use crate::slot::{SLOT_COUNT, Slot};

/// Marks a slot that no node serves.
const NO_OWNER: u16 = u16::MAX;

/// How the map was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read from a cluster (`CLUSTER SHARDS` / `CLUSTER SLOTS`); MOVED/ASK may change it.
    Cluster,
    /// Standalone servers: slots split evenly over the configured list, in order (the
    /// twemproxy-like mode). Nothing redirects; the map never changes.
    Static,
}

/// A reply value, independent of any RESP library (RESP2 arrays and RESP3 maps both fit).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    /// Bulk or simple string.
    Str(Vec<u8>),
    Error(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl From<Reply> for Value {
    /// A decoded reply, whatever its RESP version (sets are arrays; doubles and verbatim
    /// strings are text).
    fn from(r: Reply) -> Value {
        match r {
            Reply::Ok => Value::Str(b"OK".to_vec()),
            Reply::Simple(s) => Value::Str(s.as_bytes().to_vec()),
            Reply::Status(s) | Reply::Verbatim(s) => Value::Str(s.into_bytes()),
            Reply::Error(e) => Value::Error(e),
            Reply::Int(n) => Value::Int(n),
            Reply::Double(d) => Value::Str(crate::resp::format_double(d).into_bytes()),
            Reply::Human(d) => Value::Str(crate::resp::format_human(d).into_bytes()),
            Reply::Bulk(b) => Value::Str(b.to_vec()),
            Reply::Nil | Reply::NilArray => Value::Nil,
            Reply::Array(a) | Reply::Set(a) | Reply::Push(a) | Reply::Many(a) => {
                Value::Array(a.into_iter().map(Value::from).collect())
            }
            Reply::Map(m) => Value::Map(
                m.into_iter()
                    .map(|(k, v)| (Value::from(k), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl Value {
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// Key/value pairs from a RESP3 map or a flat RESP2 array of alternating keys and values.
    fn pairs(&self) -> Option<Vec<(&Value, &Value)>> {
        match self {
            Value::Map(p) => Some(p.iter().map(|(k, v)| (k, v)).collect()),
            Value::Array(a) if a.len() % 2 == 0 => {
                Some(a.chunks_exact(2).map(|c| (&c[0], &c[1])).collect())
            }
            _ => None,
        }
    }

    fn field(&self, name: &str) -> Option<&Value> {
        self.pairs()?
            .into_iter()
            .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v)
    }
}

/// Why a slot map could not be built. (Display/Error by hand: membership keeps its
/// dependencies to crc16.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyError {
    Malformed(&'static str, String),
    NoNodes,
    TooManyNodes(usize),
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::Malformed(what, why) => write!(f, "malformed {what} reply: {why}"),
            TopologyError::NoNodes => f.write_str("no nodes"),
            TopologyError::TooManyNodes(n) => write!(f, "too many nodes ({n})"),
        }
    }
}

impl std::error::Error for TopologyError {}

/// Owner of every slot, plus the node list (index = position in [`SlotMap::nodes`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SlotMap {
    mode: Mode,
    nodes: Vec<String>,
    owner: Box<[u16]>,
}

impl fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SlotMap");
        d.field("mode", &self.mode);
        for (i, n) in self.nodes.iter().enumerate() {
            d.field(n, &self.ranges_of(i));
        }
        d.finish()
    }
}

impl SlotMap {
    /// The static mode: the slots split into `addrs.len()` contiguous ranges of (nearly) equal
    /// size, in the order given, the same ranges `redis-cli --cluster create` assigns.
    pub fn split_evenly(addrs: &[String]) -> Result<SlotMap, TopologyError> {
        let n = addrs.len();
        if n == 0 {
            return Err(TopologyError::NoNodes);
        }
        if n >= usize::from(NO_OWNER) || n > usize::from(SLOT_COUNT) {
            return Err(TopologyError::TooManyNodes(n));
        }
        let total = usize::from(SLOT_COUNT);
        let mut owner = vec![NO_OWNER; total].into_boxed_slice();
        for i in 0..n {
            let (start, end) = ((i * total + n / 2) / n, ((i + 1) * total + n / 2) / n);
            owner[start..end.min(total)].fill(i as u16);
        }
        Ok(SlotMap {
            mode: Mode::Static,
            nodes: addrs.to_vec(),
            owner,
        })
    }

    /// Builds a cluster map from `(first, last, addr)` ranges. Nodes are ordered by the first
    /// slot they own, so the order (which SCAN cursors depend on) is stable across refreshes.
    pub fn from_ranges(ranges: &[(u16, u16, String)]) -> Result<SlotMap, TopologyError> {
        let mut by_start: Vec<&(u16, u16, String)> = ranges.iter().collect();
        by_start.sort_by_key(|r| r.0);
        let mut nodes: Vec<String> = Vec::new();
        let mut owner = vec![NO_OWNER; usize::from(SLOT_COUNT)].into_boxed_slice();
        for (first, last, addr) in by_start {
            if first > last || *last >= SLOT_COUNT {
                return Err(TopologyError::Malformed(
                    "slot range",
                    format!("{first}-{last}"),
                ));
            }
            let idx = match nodes.iter().position(|n| n == addr) {
                Some(i) => i,
                None => {
                    nodes.push(addr.clone());
                    nodes.len() - 1
                }
            };
            if idx >= usize::from(NO_OWNER) {
                return Err(TopologyError::TooManyNodes(idx));
            }
            owner[usize::from(*first)..=usize::from(*last)].fill(idx as u16);
        }
        if nodes.is_empty() {
            return Err(TopologyError::NoNodes);
        }
        Ok(SlotMap {
            mode: Mode::Cluster,
            nodes,
            owner,
        })
    }

    /// Parses a `CLUSTER SHARDS` reply (Redis 7+), taking each shard's first master that has
    /// not failed (Redis says `failed`; `fail` is accepted too); `default_host` replaces an
    /// empty or `?` endpoint (nodes that do not know their address).
    pub fn from_cluster_shards(v: &Value, default_host: &str) -> Result<SlotMap, TopologyError> {
        let bad = |why: &str| TopologyError::Malformed("CLUSTER SHARDS", why.to_string());
        let Value::Array(shards) = v else {
            return Err(bad("not an array"));
        };
        let mut ranges = Vec::new();
        for shard in shards {
            let slots = match shard.field("slots") {
                Some(Value::Array(s)) => s,
                _ => return Err(bad("shard without slots")),
            };
            let Some(Value::Array(nodes)) = shard.field("nodes") else {
                return Err(bad("shard without nodes"));
            };
            let master = nodes.iter().find(|n| {
                n.field("role").and_then(Value::as_str) == Some("master")
                    && !matches!(
                        n.field("health").and_then(Value::as_str),
                        Some("failed" | "fail")
                    )
            });
            let Some(master) = master else {
                // A shard without a live master: its slots stay unowned (CLUSTERDOWN).
                continue;
            };
            let host = ["endpoint", "ip", "hostname"]
                .iter()
                .filter_map(|f| master.field(f).and_then(Value::as_str))
                .find(|h| !h.is_empty() && *h != "?")
                .unwrap_or(default_host);
            let port = master
                .field("port")
                .or_else(|| master.field("tls-port"))
                .and_then(Value::as_int)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad("node without port"))?;
            let addr = join_host_port(host, port);
            for pair in slots.chunks(2) {
                let [a, b] = pair else {
                    return Err(bad("odd slot list"));
                };
                let (a, b) = (
                    slot_num(a).ok_or_else(|| bad("slot"))?,
                    slot_num(b).ok_or_else(|| bad("slot"))?,
                );
                ranges.push((a, b, addr.clone()));
            }
        }
        SlotMap::from_ranges(&ranges)
    }

    /// Parses a `CLUSTER SLOTS` reply (the pre-7 form).
    pub fn from_cluster_slots(v: &Value, default_host: &str) -> Result<SlotMap, TopologyError> {
        let bad = |why: &str| TopologyError::Malformed("CLUSTER SLOTS", why.to_string());
        let Value::Array(entries) = v else {
            return Err(bad("not an array"));
        };
        let mut ranges = Vec::new();
        for e in entries {
            let Value::Array(items) = e else {
                return Err(bad("entry is not an array"));
            };
            let (Some(a), Some(b), Some(Value::Array(master))) =
                (items.first(), items.get(1), items.get(2))
            else {
                return Err(bad("short entry"));
            };
            let (a, b) = (
                slot_num(a).ok_or_else(|| bad("slot"))?,
                slot_num(b).ok_or_else(|| bad("slot"))?,
            );
            let host = master
                .first()
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty() && *h != "?")
                .unwrap_or(default_host);
            let port = master
                .get(1)
                .and_then(Value::as_int)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad("node without port"))?;
            ranges.push((a, b, join_host_port(host, port)));
        }
        SlotMap::from_ranges(&ranges)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Index (into [`SlotMap::nodes`]) of the node serving `slot`.
    pub fn owner(&self, slot: Slot) -> Option<usize> {
        match self.owner.get(slot.index()).copied() {
            Some(NO_OWNER) | None => None,
            Some(i) => Some(usize::from(i)),
        }
    }

    /// Slots with no owner.
    pub fn unowned(&self) -> usize {
        self.owner.iter().filter(|&&o| o == NO_OWNER).count()
    }

    /// Number of slots node `i` serves.
    pub fn slot_count(&self, i: usize) -> usize {
        self.owner.iter().filter(|&&o| usize::from(o) == i).count()
    }

    /// Node `i`'s slots as inclusive ranges.
    pub fn ranges_of(&self, i: usize) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (s, &o) in self.owner.iter().enumerate() {
            if usize::from(o) != i {
                continue;
            }
            let s = s as u16;
            match out.last_mut() {
                Some((_, last)) if *last + 1 == s => *last = s,
                _ => out.push((s, s)),
            }
        }
        out
    }

    /// A copy with `slot` moved to `addr` (applied on `-MOVED` until the next full refresh).
    pub fn with_moved(&self, slot: Slot, addr: &str) -> SlotMap {
        let mut next = self.clone();
        next.move_slot(slot, addr);
        next
    }

    /// Moves `slot` to `addr` in place (appending the node if new) and returns the node's
    /// index; `None`, and nothing changes, when the map cannot take another node. Indices of
    /// existing nodes never change.
    pub fn move_slot(&mut self, slot: Slot, addr: &str) -> Option<usize> {
        let idx = self.node_index(addr)?;
        let owner = u16::try_from(idx).ok()?;
        if let Some(o) = self.owner.get_mut(slot.index()) {
            *o = owner;
        }
        Some(idx)
    }

    /// The index of the node at `addr`, appending it if new; `None` when the map is full.
    pub fn node_index(&mut self, addr: &str) -> Option<usize> {
        if let Some(i) = self.nodes.iter().position(|n| n == addr) {
            return Some(i);
        }
        if self.nodes.len() >= usize::from(NO_OWNER) {
            return None;
        }
        self.nodes.push(addr.to_string());
        Some(self.nodes.len() - 1)
    }
}

fn slot_num(v: &Value) -> Option<u16> {
    v.as_int()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n < SLOT_COUNT)
}

/// `host:port`, bracketing nothing (Redis writes IPv6 redirects as `::1:7000` too).
pub fn join_host_port(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// Whether an error reply to `CLUSTER SHARDS`/`CLUSTER SLOTS` means "this is not a cluster"
/// (standalone redis-server, or a server without the CLUSTER command).
pub fn is_not_cluster_error(err: &str) -> bool {
    let e = err.to_ascii_lowercase();
    e.contains("cluster support disabled")
        || e.contains("unknown command")
        || e.contains("this instance has cluster support disabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.as_bytes().to_vec())
    }

    #[test]
    fn even_split_matches_redis_cli() {
        let addrs: Vec<String> = (1..=3).map(|i| format!("127.0.0.1:700{i}")).collect();
        let m = SlotMap::split_evenly(&addrs).expect("map");
        assert_eq!(m.mode(), Mode::Static);
        assert_eq!(m.ranges_of(0), vec![(0, 5460)]);
        assert_eq!(m.ranges_of(1), vec![(5461, 10922)]);
        assert_eq!(m.ranges_of(2), vec![(10923, 16383)]);
        assert_eq!(m.unowned(), 0);
        let one = SlotMap::split_evenly(&addrs[..1]).expect("map");
        assert_eq!(one.ranges_of(0), vec![(0, 16383)]);
        assert!(SlotMap::split_evenly(&[]).is_err());
        for n in 1..40 {
            let addrs: Vec<String> = (0..n).map(|i| format!("h:{i}")).collect();
            let m = SlotMap::split_evenly(&addrs).expect("map");
            assert_eq!(m.unowned(), 0, "n={n}");
            let sizes: Vec<usize> = (0..n).map(|i| m.slot_count(i)).collect();
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                max.zip(min).is_some_and(|(a, b)| a - b <= 1),
                "n={n} {sizes:?}"
            );
        }
    }

    #[test]
    fn parses_cluster_shards_resp2_and_resp3() {
        let node = |port: i64, role: &str| {
            Value::Array(vec![
                s("id"),
                s("abc"),
                s("port"),
                Value::Int(port),
                s("ip"),
                s("127.0.0.1"),
                s("endpoint"),
                s("127.0.0.1"),
                s("role"),
                s(role),
                s("health"),
                s("online"),
            ])
        };
        let shard = |a: i64, b: i64, port: i64| {
            Value::Array(vec![
                s("slots"),
                Value::Array(vec![Value::Int(a), Value::Int(b)]),
                s("nodes"),
                Value::Array(vec![node(port + 100, "replica"), node(port, "master")]),
            ])
        };
        let reply = Value::Array(vec![
            shard(10923, 16383, 7003),
            shard(0, 5460, 7001),
            shard(5461, 10922, 7002),
        ]);
        let m = SlotMap::from_cluster_shards(&reply, "x").expect("map");
        assert_eq!(m.mode(), Mode::Cluster);
        assert_eq!(
            m.nodes(),
            ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
        );
        assert_eq!(m.owner(Slot::for_key(b"foo")), Some(2)); // 12182
        assert_eq!(m.unowned(), 0);

        let resp3 = Value::Array(vec![Value::Map(vec![
            (s("slots"), Value::Array(vec![s("0"), s("16383")])),
            (
                s("nodes"),
                Value::Array(vec![Value::Map(vec![
                    (s("port"), Value::Int(6379)),
                    (s("endpoint"), s("")),
                    (s("role"), s("master")),
                ])]),
            ),
        ])]);
        let m = SlotMap::from_cluster_shards(&resp3, "10.0.0.1").expect("map");
        assert_eq!(m.nodes(), ["10.0.0.1:6379"]);
    }

    #[test]
    fn parses_cluster_slots() {
        let entry = |a: i64, b: i64, port: i64| {
            Value::Array(vec![
                Value::Int(a),
                Value::Int(b),
                Value::Array(vec![s("127.0.0.1"), Value::Int(port), s("id")]),
                Value::Array(vec![s("127.0.0.1"), Value::Int(port + 100), s("id2")]),
            ])
        };
        let reply = Value::Array(vec![entry(0, 8191, 7001), entry(8192, 16383, 7002)]);
        let m = SlotMap::from_cluster_slots(&reply, "x").expect("map");
        assert_eq!(m.nodes(), ["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(m.ranges_of(1), vec![(8192, 16383)]);
        assert!(SlotMap::from_cluster_slots(&Value::Int(3), "x").is_err());
        let partial = Value::Array(vec![entry(0, 100, 7001)]);
        assert_eq!(
            SlotMap::from_cluster_slots(&partial, "x").map(|m| m.unowned()),
            Ok(16384 - 101)
        );
    }

    #[test]
    fn moved_updates_one_slot() {
        let addrs = vec!["a:1".to_string(), "b:2".to_string()];
        let m = SlotMap::split_evenly(&addrs).expect("map");
        let slot = Slot::new(5).expect("slot");
        let n = m.with_moved(slot, "c:3");
        assert_eq!(n.owner(slot), Some(2));
        assert_eq!(n.nodes().len(), 3);
        assert_eq!(n.owner(Slot::new(6).expect("slot")), Some(0));
    }

    /// Redis marks a master that went down `health failed`; the shard's live master wins.
    #[test]
    fn failed_masters_are_skipped() {
        let node = |port: i64, health: &str| {
            Value::Map(vec![
                (s("port"), Value::Int(port)),
                (s("ip"), s("127.0.0.1")),
                (s("role"), s("master")),
                (s("health"), s(health)),
            ])
        };
        let reply = Value::Array(vec![Value::Map(vec![
            (
                s("slots"),
                Value::Array(vec![Value::Int(0), Value::Int(16383)]),
            ),
            (
                s("nodes"),
                Value::Array(vec![node(7002, "failed"), node(7003, "online")]),
            ),
        ])]);
        let m = SlotMap::from_cluster_shards(&reply, "x").expect("map");
        assert_eq!(m.nodes(), ["127.0.0.1:7003"]);
    }

    #[test]
    fn moving_in_place_keeps_node_indices() {
        let mut m = SlotMap::from_ranges(&[(0, 16383, "a:1".to_string())]).expect("map");
        let slot = Slot::new(9).expect("slot");
        assert_eq!(m.move_slot(slot, "b:2"), Some(1));
        assert_eq!(m.move_slot(Slot::new(10).expect("slot"), "b:2"), Some(1));
        assert_eq!(m.node_index("a:1"), Some(0));
        assert_eq!((m.owner(slot), m.nodes().len()), (Some(1), 2));
    }

    #[test]
    fn replies_become_values() {
        let r = Reply::Map(vec![(
            Reply::Simple("slots"),
            Reply::Set(vec![
                Reply::Int(0),
                Reply::Bulk(bytes::Bytes::from_static(b"9")),
            ]),
        )]);
        assert_eq!(
            Value::from(r),
            Value::Map(vec![(
                s("slots"),
                Value::Array(vec![Value::Int(0), s("9")])
            )])
        );
        assert_eq!(Value::from(Reply::NilArray), Value::Nil);
        assert_eq!(
            Value::from(Reply::Error("ERR x".into())),
            Value::Error("ERR x".into())
        );
    }

    #[test]
    fn not_cluster_errors() {
        assert!(is_not_cluster_error(
            "ERR This instance has cluster support disabled"
        ));
        assert!(is_not_cluster_error(
            "ERR unknown command 'CLUSTER', with args beginning with: 'SHARDS' "
        ));
        assert!(!is_not_cluster_error("LOADING Redis is loading"));
    }
}
