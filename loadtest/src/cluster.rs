//! Redis Cluster routing for the load generator: the slot map (from CLUSTER SHARDS, falling back
//! to CLUSTER SLOTS), the MOVED/ASK decision, and the rule that keeps traffic on the addresses
//! the user gave.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use membership::{SLOT_COUNT, Slot};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;

use crate::client::{Conn, Encoder, Reply};

const UNASSIGNED: u16 = u16::MAX;

/// Which node owns each slot. Node indices are stable: nodes are only ever appended.
#[derive(Clone, Debug)]
pub struct SlotMap {
    nodes: Vec<SocketAddr>,
    owner: Vec<u16>,
}

impl SlotMap {
    /// Every slot sent to one node (plain, non-cluster mode).
    pub fn single(addr: SocketAddr) -> SlotMap {
        SlotMap {
            nodes: vec![addr],
            owner: vec![0; usize::from(SLOT_COUNT)],
        }
    }

    /// From `(first, last, node)` slot ranges, inclusive.
    pub fn from_ranges(ranges: &[(u16, u16, SocketAddr)]) -> Result<SlotMap, String> {
        let mut map = SlotMap {
            nodes: Vec::new(),
            owner: vec![UNASSIGNED; usize::from(SLOT_COUNT)],
        };
        for &(first, last, addr) in ranges {
            if first > last || last >= SLOT_COUNT {
                return Err(format!("bad slot range {first}-{last}"));
            }
            let node = map.node_index(addr);
            for s in first..=last {
                map.owner[usize::from(s)] = node;
            }
        }
        if map.nodes.is_empty() {
            return Err("the cluster reported no slots".into());
        }
        Ok(map)
    }

    pub fn nodes(&self) -> &[SocketAddr] {
        &self.nodes
    }

    pub fn unassigned_slots(&self) -> usize {
        self.owner.iter().filter(|&&o| o == UNASSIGNED).count()
    }

    pub fn node_for(&self, slot: Slot) -> Option<usize> {
        match self.owner.get(slot.index()) {
            Some(&o) if o != UNASSIGNED => Some(usize::from(o)),
            _ => None,
        }
    }

    /// The node's index, appending it if new.
    pub fn node_index(&mut self, addr: SocketAddr) -> u16 {
        if let Some(i) = self.nodes.iter().position(|a| *a == addr) {
            return i as u16;
        }
        self.nodes.push(addr);
        (self.nodes.len() - 1) as u16
    }

    pub fn set_owner(&mut self, slot: Slot, node: u16) {
        if let Some(o) = self.owner.get_mut(slot.index()) {
            *o = node;
        }
    }
}

/// Traffic goes only where the user pointed: a discovered node must have the seed's IP, or both
/// must be loopback addresses.
pub fn address_allowed(seed: IpAddr, node: IpAddr) -> bool {
    node == seed || (seed.is_loopback() && node.is_loopback())
}

/// What to do with an error reply to a routed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Not a redirect: count it as an error of its kind.
    Fail,
    /// `-MOVED slot addr`: update the map, resend there.
    Moved { slot: Slot, addr: SocketAddr },
    /// `-ASK slot addr`: send `ASKING` and the command there, map unchanged.
    Ask { slot: Slot, addr: SocketAddr },
    /// A redirect after `max` redirects already: give up, count as an error.
    TooManyRedirects,
}

/// The redirect decision, pure. `msg` is the error text without `-`; `from` answers for an empty
/// host (`-MOVED 12 :7001`). `redirects` is how many this request has followed so far.
pub fn redirect_action(msg: &[u8], from: SocketAddr, redirects: u32, max: u32) -> Action {
    let mut parts = msg.split(|&b| b == b' ');
    let (Some(kind), Some(slot), Some(addr), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Action::Fail;
    };
    let moved = match kind {
        b"MOVED" => true,
        b"ASK" => false,
        _ => return Action::Fail,
    };
    let (Some(slot), Some(addr)) = (Slot::parse(slot), parse_node_addr(addr, from.ip())) else {
        return Action::Fail;
    };
    if redirects >= max {
        return Action::TooManyRedirects;
    }
    if moved {
        Action::Moved { slot, addr }
    } else {
        Action::Ask { slot, addr }
    }
}

/// `ip:port`, `[v6]:port`, `v6:port` or `:port` (same host as `default_ip`). Names other than
/// `localhost` are not resolved.
pub fn parse_node_addr(s: &[u8], default_ip: IpAddr) -> Option<SocketAddr> {
    let s = std::str::from_utf8(s).ok()?;
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(SocketAddr::new(parse_host(host, default_ip)?, port))
}

fn parse_host(host: &str, default_ip: IpAddr) -> Option<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host {
        "" | "?" => Some(default_ip),
        "localhost" => Some(IpAddr::from([127, 0, 0, 1])),
        h => h.parse().ok(),
    }
}

fn text(f: &BytesFrame) -> Option<&[u8]> {
    match f {
        BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => Some(b),
        _ => None,
    }
}

fn int(f: &BytesFrame) -> Option<i64> {
    match f {
        BytesFrame::Integer(i) => Some(*i),
        other => std::str::from_utf8(text(other)?).ok()?.parse().ok(),
    }
}

fn slot_num(f: &BytesFrame) -> Option<u16> {
    u16::try_from(int(f)?).ok().filter(|&s| s < SLOT_COUNT)
}

/// Slot ranges of primaries from a CLUSTER SHARDS reply (Redis 7).
pub fn parse_cluster_shards(
    reply: &BytesFrame,
    seed_ip: IpAddr,
) -> Result<Vec<(u16, u16, SocketAddr)>, String> {
    let BytesFrame::Array(shards) = reply else {
        return Err("CLUSTER SHARDS: not an array".into());
    };
    let mut ranges = Vec::new();
    for shard in shards {
        let BytesFrame::Array(fields) = shard else {
            return Err("CLUSTER SHARDS: shard is not an array".into());
        };
        let mut slots = None;
        let mut nodes = None;
        for pair in fields.chunks(2) {
            if let [k, v] = pair {
                match text(k) {
                    Some(b"slots") => slots = Some(v),
                    Some(b"nodes") => nodes = Some(v),
                    _ => {}
                }
            }
        }
        let (Some(BytesFrame::Array(slots)), Some(BytesFrame::Array(nodes))) = (slots, nodes)
        else {
            return Err("CLUSTER SHARDS: shard without slots or nodes".into());
        };
        if slots.is_empty() {
            continue;
        }
        let primary = nodes.iter().find_map(|n| {
            let BytesFrame::Array(kv) = n else {
                return None;
            };
            let get = |key: &[u8]| {
                kv.chunks(2).find_map(|p| match p {
                    [k, v] if text(k) == Some(key) => Some(v),
                    _ => None,
                })
            };
            if get(b"role").and_then(text) != Some(b"master") {
                return None;
            }
            if get(b"health")
                .and_then(text)
                .is_some_and(|h| h != b"online")
            {
                return None;
            }
            let port = u16::try_from(get(b"port").and_then(int)?).ok()?;
            let host = [b"ip".as_slice(), b"endpoint"].iter().find_map(|k| {
                let h = std::str::from_utf8(get(k).and_then(text)?).ok()?;
                parse_host(h, seed_ip)
            })?;
            Some(SocketAddr::new(host, port))
        });
        let Some(addr) = primary else {
            return Err("CLUSTER SHARDS: a shard with slots has no online primary".into());
        };
        for pair in slots.chunks(2) {
            let [a, b] = pair else {
                return Err("CLUSTER SHARDS: odd slot list".into());
            };
            let (Some(a), Some(b)) = (slot_num(a), slot_num(b)) else {
                return Err("CLUSTER SHARDS: bad slot number".into());
            };
            ranges.push((a, b, addr));
        }
    }
    Ok(ranges)
}

/// Slot ranges from a CLUSTER SLOTS reply: `[[first, last, [ip, port, id, ..], replicas..], ..]`.
pub fn parse_cluster_slots(
    reply: &BytesFrame,
    seed_ip: IpAddr,
) -> Result<Vec<(u16, u16, SocketAddr)>, String> {
    let BytesFrame::Array(entries) = reply else {
        return Err("CLUSTER SLOTS: not an array".into());
    };
    let mut ranges = Vec::new();
    for e in entries {
        let BytesFrame::Array(e) = e else {
            return Err("CLUSTER SLOTS: entry is not an array".into());
        };
        let (Some(a), Some(b), Some(BytesFrame::Array(node))) = (
            e.first().and_then(slot_num),
            e.get(1).and_then(slot_num),
            e.get(2),
        ) else {
            return Err("CLUSTER SLOTS: bad entry".into());
        };
        let host = node
            .first()
            .and_then(text)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| parse_host(h, seed_ip));
        let port = node
            .get(1)
            .and_then(int)
            .and_then(|p| u16::try_from(p).ok());
        let (Some(host), Some(port)) = (host, port) else {
            return Err("CLUSTER SLOTS: bad node address".into());
        };
        ranges.push((a, b, SocketAddr::new(host, port)));
    }
    Ok(ranges)
}

async fn cluster_query(conn: &mut Conn, sub: &[u8]) -> anyhow::Result<Result<BytesFrame, String>> {
    Encoder::default().command(&mut conn.wbuf, &[b"CLUSTER", sub]);
    let (reply, raw) = conn.roundtrip().await?;
    if let Reply::Error(r) = reply {
        return Ok(Err(
            String::from_utf8_lossy(raw.get(r).unwrap_or_default()).into_owned()
        ));
    }
    let mut raw: BytesMut = raw;
    let (frame, _, _) = decode_bytes_mut(&mut raw)
        .map_err(|e| anyhow!("CLUSTER {}: {e:?}", String::from_utf8_lossy(sub)))?
        .context("CLUSTER reply incomplete")?;
    Ok(Ok(frame))
}

/// Reads the slot map from `seed`: CLUSTER SHARDS, or CLUSTER SLOTS where SHARDS is unknown.
/// Fails if a node is outside the allowed addresses or slots are unassigned.
pub async fn fetch_slot_map(
    seed: SocketAddr,
    timeout: Duration,
    auth: Option<&str>,
) -> anyhow::Result<SlotMap> {
    let work = async {
        let mut conn = Conn::connect(seed, timeout, auth)
            .await
            .with_context(|| format!("connecting to cluster seed {seed}"))?;
        let ranges = match cluster_query(&mut conn, b"SHARDS").await? {
            Ok(frame) => parse_cluster_shards(&frame, seed.ip()),
            Err(_) => match cluster_query(&mut conn, b"SLOTS").await? {
                Ok(frame) => parse_cluster_slots(&frame, seed.ip()),
                Err(e) => bail!("{seed} answered CLUSTER SLOTS with -{e}: is it a cluster?"),
            },
        }
        .map_err(|e| anyhow!("{seed}: {e}"))?;
        let map = SlotMap::from_ranges(&ranges).map_err(|e| anyhow!("{seed}: {e}"))?;
        for n in map.nodes() {
            if !address_allowed(seed.ip(), n.ip()) {
                bail!(
                    "cluster node {n} is not on the seed's address {}; refusing to send traffic there",
                    seed.ip()
                );
            }
        }
        Ok(map)
    };
    tokio::time::timeout(timeout * 2, work)
        .await
        .map_err(|_| anyhow!("reading the slot map from {seed} timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn from() -> SocketAddr {
        "127.0.0.1:7000".parse().expect("addr")
    }

    fn bulk(s: &str) -> BytesFrame {
        BytesFrame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn moved_and_ask_are_parsed() {
        let to: SocketAddr = "127.0.0.1:7002".parse().expect("addr");
        let slot = Slot::new(3999).expect("slot");
        assert_eq!(
            redirect_action(b"MOVED 3999 127.0.0.1:7002", from(), 0, 5),
            Action::Moved { slot, addr: to }
        );
        assert_eq!(
            redirect_action(b"ASK 3999 127.0.0.1:7002", from(), 4, 5),
            Action::Ask { slot, addr: to }
        );
        assert_eq!(
            redirect_action(b"MOVED 3999 :7002", from(), 0, 5),
            Action::Moved { slot, addr: to }
        );
        assert_eq!(
            redirect_action(b"MOVED 3999 [::1]:7002", from(), 0, 5),
            Action::Moved {
                slot,
                addr: "[::1]:7002".parse().expect("addr")
            }
        );
    }

    #[test]
    fn other_errors_and_malformed_redirects_fail() {
        for msg in [
            &b"ERR unknown command"[..],
            b"WRONGTYPE Operation against a key",
            b"MOVED 99999 127.0.0.1:7002",
            b"MOVED 12 nowhere:7002",
            b"MOVED 12",
            b"ASK 12 127.0.0.1:70000",
            b"TRYAGAIN Multiple keys request during rehashing of slot",
        ] {
            assert_eq!(redirect_action(msg, from(), 0, 5), Action::Fail, "{msg:?}");
        }
    }

    #[test]
    fn redirects_are_bounded() {
        assert_eq!(
            redirect_action(b"MOVED 1 127.0.0.1:7002", from(), 5, 5),
            Action::TooManyRedirects
        );
    }

    #[test]
    fn only_the_given_addresses_are_allowed() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(address_allowed(lo, "127.0.0.2".parse().expect("ip")));
        assert!(address_allowed(lo, "::1".parse().expect("ip")));
        assert!(!address_allowed(lo, "10.0.0.1".parse().expect("ip")));
        let ext: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(address_allowed(ext, ext));
        assert!(!address_allowed(ext, "192.0.2.2".parse().expect("ip")));
    }

    fn shards_reply() -> BytesFrame {
        let node = |port: i64, role: &str, health: &str| {
            BytesFrame::Array(vec![
                bulk("id"),
                bulk("abc"),
                bulk("port"),
                BytesFrame::Integer(port),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("endpoint"),
                bulk("127.0.0.1"),
                bulk("role"),
                bulk(role),
                bulk("health"),
                bulk(health),
            ])
        };
        let shard = |ranges: &[i64], nodes: Vec<BytesFrame>| {
            BytesFrame::Array(vec![
                bulk("slots"),
                BytesFrame::Array(ranges.iter().map(|&s| BytesFrame::Integer(s)).collect()),
                bulk("nodes"),
                BytesFrame::Array(nodes),
            ])
        };
        BytesFrame::Array(vec![
            shard(
                &[0, 8000],
                vec![
                    node(7001, "replica", "online"),
                    node(7000, "master", "online"),
                ],
            ),
            shard(
                &[8001, 9000, 9001, 16383],
                vec![
                    node(7002, "master", "failed"),
                    node(7003, "master", "online"),
                ],
            ),
        ])
    }

    #[test]
    fn cluster_shards_reply_gives_primaries() {
        let ranges = parse_cluster_shards(&shards_reply(), from().ip()).expect("parse");
        let a: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:7003".parse().expect("addr");
        assert_eq!(
            ranges,
            vec![(0, 8000, a), (8001, 9000, b), (9001, 16383, b)]
        );
        let map = SlotMap::from_ranges(&ranges).expect("map");
        assert_eq!(map.nodes(), &[a, b]);
        assert_eq!(map.unassigned_slots(), 0);
        assert_eq!(map.node_for(Slot::for_key(b"foo")), Some(1)); // 12182
        assert_eq!(map.node_for(Slot::for_key(b"bar")), Some(0)); // 5061
    }

    #[test]
    fn cluster_slots_reply() {
        let entry = |a: i64, b: i64, port: i64| {
            BytesFrame::Array(vec![
                BytesFrame::Integer(a),
                BytesFrame::Integer(b),
                BytesFrame::Array(vec![bulk(""), BytesFrame::Integer(port), bulk("id")]),
                BytesFrame::Array(vec![
                    bulk("127.0.0.1"),
                    BytesFrame::Integer(port + 100),
                    bulk("id2"),
                ]),
            ])
        };
        let reply = BytesFrame::Array(vec![entry(0, 99, 7000), entry(100, 16383, 7001)]);
        let ranges = parse_cluster_slots(&reply, from().ip()).expect("parse");
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            ranges[1],
            (100, 16383, "127.0.0.1:7001".parse().expect("addr"))
        );
        let mut map = SlotMap::from_ranges(&ranges).expect("map");
        let s = Slot::new(5).expect("slot");
        assert_eq!(map.node_for(s), Some(0));
        let n = map.node_index("127.0.0.1:7009".parse().expect("addr"));
        map.set_owner(s, n);
        assert_eq!(map.node_for(s), Some(2));
    }

    #[test]
    fn incomplete_maps_report_unassigned_slots() {
        let map = SlotMap::from_ranges(&[(0, 99, from())]).expect("map");
        assert_eq!(map.unassigned_slots(), 16384 - 100);
        assert_eq!(map.node_for(Slot::new(100).expect("slot")), None);
        assert!(SlotMap::from_ranges(&[]).is_err());
        assert!(SlotMap::from_ranges(&[(5, 2, from())]).is_err());
    }
}
