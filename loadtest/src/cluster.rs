//! Redis Cluster routing for the load generator: the slot map and the MOVED/ASK decision are
//! membership's (the proxy's); this module adds what a load generator needs on top: node
//! addresses as socket addresses, and the rule that keeps traffic on the addresses the user
//! gave.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use membership::redirect::{self, decide_error};
use membership::resp::Reply as Frame;
use membership::topology::{Value, join_host_port};
use membership::{SLOT_COUNT, Slot};
use redis_protocol::resp2::decode::decode_bytes_mut;

use crate::client::{Conn, Encoder, Reply};

/// Which node owns each slot ([`membership::SlotMap`]), with each node's socket address.
/// Invariant: `addrs[i]` is the address of node `i` of `map`; node indices are stable (nodes
/// are only ever appended).
#[derive(Clone, Debug)]
pub struct SlotMap {
    map: membership::SlotMap,
    addrs: Vec<SocketAddr>,
}

impl SlotMap {
    /// Every slot sent to one node (plain, non-cluster mode).
    pub fn single(addr: SocketAddr) -> Result<SlotMap, String> {
        SlotMap::from_ranges(&[(0, SLOT_COUNT - 1, addr)])
    }

    /// From `(first, last, node)` slot ranges, inclusive.
    pub fn from_ranges(ranges: &[(u16, u16, SocketAddr)]) -> Result<SlotMap, String> {
        let named: Vec<(u16, u16, String)> = ranges
            .iter()
            .map(|&(a, b, addr)| (a, b, addr_string(addr)))
            .collect();
        let map = membership::SlotMap::from_ranges(&named).map_err(|e| e.to_string())?;
        // Membership orders the nodes (by first slot); each is one of the given addresses.
        let addrs = map
            .nodes()
            .iter()
            .map(|n| ranges.iter().map(|r| r.2).find(|a| addr_string(*a) == *n))
            .collect::<Option<Vec<_>>>()
            .ok_or("a node of the map is none of the given addresses")?;
        Ok(SlotMap { map, addrs })
    }

    pub fn nodes(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn unassigned_slots(&self) -> usize {
        self.map.unowned()
    }

    pub fn node_for(&self, slot: Slot) -> Option<usize> {
        self.map.owner(slot)
    }

    /// The node's index, appending it if new (`u16::MAX` when the map holds no more nodes, an
    /// index no slot is given).
    pub fn node_index(&mut self, addr: SocketAddr) -> u16 {
        if let Some(i) = self.addrs.iter().position(|a| *a == addr) {
            return i as u16;
        }
        match self.map.node_index(&addr_string(addr)) {
            Some(i) => {
                self.addrs.push(addr);
                debug_assert_eq!(i + 1, self.addrs.len());
                i as u16
            }
            None => u16::MAX,
        }
    }

    pub fn set_owner(&mut self, slot: Slot, node: u16) {
        if let Some(addr) = self.addrs.get(usize::from(node)) {
            self.map.move_slot(slot, &addr_string(*addr));
        }
    }
}

/// A node's name in the membership map: `ip:port` (IPv6 unbracketed, as Redis writes it).
fn addr_string(addr: SocketAddr) -> String {
    join_host_port(&addr.ip().to_string(), addr.port())
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

/// The redirect decision ([`membership::redirect`]'s) for a load generator, pure. `msg` is the
/// error text without `-`; `from` answers for an empty host (`-MOVED 12 :7001`). `redirects` is
/// how many this request has followed so far. TRYAGAIN and CLUSTERDOWN are not retried: they
/// count as errors of their kind, like a redirect to a host that is not an IP address.
pub fn redirect_action(msg: &[u8], from: SocketAddr, redirects: u32, max: u32) -> Action {
    let follow = |r: redirect::Redirect, ask: bool| {
        let Some(addr) = parse_node_addr(r.addr.as_bytes(), from.ip()) else {
            return Action::Fail;
        };
        let slot = r.slot;
        if ask {
            Action::Ask { slot, addr }
        } else {
            Action::Moved { slot, addr }
        }
    };
    match decide_error(msg, redirects, max) {
        redirect::Action::RetryMoved(r) => follow(r, false),
        redirect::Action::RetryAsk(r) => follow(r, true),
        redirect::Action::GiveUp if msg.starts_with(b"MOVED ") || msg.starts_with(b"ASK ") => {
            Action::TooManyRedirects
        }
        _ => Action::Fail,
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

/// `CLUSTER <sub>`: the decoded reply, or the error line.
async fn cluster_query(conn: &mut Conn, sub: &[u8]) -> anyhow::Result<Result<Value, String>> {
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
    Ok(Ok(Value::from(Frame::from_frame(frame))))
}

/// A membership map's nodes as socket addresses: IP addresses as they are, names (a node whose
/// preferred endpoint is a hostname) resolved once, here, so that redirects compare addresses.
async fn resolve_nodes(map: &membership::SlotMap, seed_ip: IpAddr) -> anyhow::Result<SlotMap> {
    let mut ranges = Vec::new();
    for (i, n) in map.nodes().iter().enumerate() {
        let addr = match parse_node_addr(n.as_bytes(), seed_ip) {
            Some(a) => a,
            None => tokio::net::lookup_host(n.as_str())
                .await
                .ok()
                .and_then(|mut a| a.next())
                .with_context(|| format!("cluster node {n} does not resolve"))?,
        };
        ranges.extend(map.ranges_of(i).into_iter().map(|(a, b)| (a, b, addr)));
    }
    SlotMap::from_ranges(&ranges).map_err(|e| anyhow!(e))
}

/// Reads the slot map from `seed`: CLUSTER SHARDS, or CLUSTER SLOTS where SHARDS is unknown.
/// Fails if a node is outside the allowed addresses.
pub async fn fetch_slot_map(
    seed: SocketAddr,
    timeout: Duration,
    auth: Option<&str>,
) -> anyhow::Result<SlotMap> {
    let work = async {
        let mut conn = Conn::connect(seed, timeout, auth)
            .await
            .with_context(|| format!("connecting to cluster seed {seed}"))?;
        let seed_host = seed.ip().to_string();
        let map = match cluster_query(&mut conn, b"SHARDS").await? {
            Ok(v) => membership::SlotMap::from_cluster_shards(&v, &seed_host),
            Err(_) => match cluster_query(&mut conn, b"SLOTS").await? {
                Ok(v) => membership::SlotMap::from_cluster_slots(&v, &seed_host),
                Err(e) => bail!("{seed} answered CLUSTER SLOTS with -{e}: is it a cluster?"),
            },
        }
        .map_err(|e| anyhow!("{seed}: {e}"))?;
        let map = resolve_nodes(&map, seed.ip())
            .await
            .map_err(|e| anyhow!("{seed}: {e}"))?;
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

    fn from() -> SocketAddr {
        "127.0.0.1:7000".parse().expect("addr")
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
            b"CLUSTERDOWN Hash slot not served",
        ] {
            assert_eq!(redirect_action(msg, from(), 0, 5), Action::Fail, "{msg:?}");
        }
        // Out of budget, only a redirect is a redirect error.
        assert_eq!(redirect_action(b"TRYAGAIN x", from(), 20, 5), Action::Fail);
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

    /// Node names from CLUSTER SHARDS/SLOTS (parsed by membership) become socket addresses: an
    /// empty host is the seed's, `localhost` is loopback, IPv6 comes unbracketed.
    #[tokio::test]
    async fn membership_maps_get_socket_addresses() {
        let ranges = |nodes: &[&str]| -> Vec<(u16, u16, String)> {
            let n = nodes.len() as u16;
            let per = SLOT_COUNT / n;
            nodes
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let i = i as u16;
                    let last = if i + 1 == n {
                        SLOT_COUNT - 1
                    } else {
                        (i + 1) * per - 1
                    };
                    (i * per, last, a.to_string())
                })
                .collect()
        };
        let seed: IpAddr = "10.0.0.5".parse().expect("ip");
        let map =
            membership::SlotMap::from_ranges(&ranges(&[":7000", "localhost:7001", "::1:7002"]))
                .expect("map");
        let m = resolve_nodes(&map, seed).await.expect("addresses");
        let want: Vec<SocketAddr> = ["10.0.0.5:7000", "127.0.0.1:7001", "[::1]:7002"]
            .iter()
            .map(|a| a.parse().expect("addr"))
            .collect();
        assert_eq!(m.nodes(), want.as_slice());
        assert_eq!(m.node_for(Slot::for_key(b"foo")), Some(2)); // 12182
        assert_eq!(m.node_for(Slot::for_key(b"bar")), Some(0)); // 5061
    }

    #[test]
    fn moved_slots_and_new_nodes() {
        let a: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
        let mut map = SlotMap::from_ranges(&[(0, 99, a), (100, 16383, b)]).expect("map");
        let s = Slot::new(5).expect("slot");
        assert_eq!(map.node_for(s), Some(0));
        let n = map.node_index("127.0.0.1:7009".parse().expect("addr"));
        assert_eq!(n, 2);
        assert_eq!(map.node_index(b), 1, "known nodes keep their index");
        map.set_owner(s, n);
        assert_eq!(map.node_for(s), Some(2));
        assert_eq!(map.nodes().len(), 3);
    }

    #[test]
    fn incomplete_maps_report_unassigned_slots() {
        let map = SlotMap::from_ranges(&[(0, 99, from())]).expect("map");
        assert_eq!(map.unassigned_slots(), 16384 - 100);
        assert_eq!(map.node_for(Slot::new(100).expect("slot")), None);
        assert!(SlotMap::from_ranges(&[]).is_err());
        assert!(SlotMap::from_ranges(&[(5, 2, from())]).is_err());
        assert_eq!(SlotMap::single(from()).map(|m| m.unassigned_slots()), Ok(0));
    }
}
