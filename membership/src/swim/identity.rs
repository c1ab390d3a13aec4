//! Node identity: a Redis-Cluster-style 40-hex node id, the addresses a node is reached at, and
//! a bump counter so that a node declared down can rejoin under a fresh foca identity.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A node id: 20 random bytes, shown as 40 lowercase hex characters (like `CLUSTER MYID`).
/// Chosen at first start; the shard persists it so a restart keeps its slots.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// A fresh random id.
    pub fn random() -> NodeId {
        NodeId(rand::random())
    }

    /// The placeholder used when announcing to a seed whose id is not known yet (foca accepts an
    /// announce addressed to any identity with the receiver's address).
    pub const UNKNOWN: NodeId = NodeId([0; 20]);

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight characters are enough to tell nodes apart in logs.
        let s = self.to_string();
        f.write_str(s.get(..8).unwrap_or(&s))
    }
}

/// Error parsing a [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 40 hex characters")]
pub struct BadNodeId;

impl FromStr for NodeId {
    type Err = BadNodeId;

    fn from_str(s: &str) -> Result<NodeId, BadNodeId> {
        let b = s.as_bytes();
        if b.len() != 40 {
            return Err(BadNodeId);
        }
        let mut out = [0u8; 20];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| BadNodeId)?;
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| BadNodeId)?;
        }
        Ok(NodeId(out))
    }
}

/// What other nodes and the proxies need to know about a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Where clients and proxies connect (`host:port`, as written in MOVED redirects).
    pub client_addr: String,
    /// Where the cluster transport (QUIC) listens; unique per live node.
    pub cluster_addr: SocketAddr,
}

/// The foca identity: the node's info plus a bump, incremented by [`foca::Identity::renew`]
/// whenever the cluster declared this node down, so it can rejoin without waiting for the
/// others to forget it.
///
/// Foca's `Addr` is the cluster address: it is what seeds are known by (an announce to a seed
/// carries [`NodeId::UNKNOWN`]), and two identities at one address are the same node, the one
/// with the higher bump winning.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub info: NodeInfo,
    pub bump: u16,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}@{}#{}",
            self.info.id, self.info.cluster_addr, self.bump
        )
    }
}

impl NodeIdentity {
    /// A new identity with starting bump `bump`. Pass a random one (the agent derives it from
    /// its RNG): a node restarted at the same address with the same id must not be mistaken
    /// for its previous (possibly declared down) incarnation.
    pub fn new(info: NodeInfo, bump: u16) -> NodeIdentity {
        NodeIdentity { info, bump }
    }

    /// The identity used to announce to a seed we only know by address.
    pub fn seed(cluster_addr: SocketAddr) -> NodeIdentity {
        NodeIdentity {
            info: NodeInfo {
                id: NodeId::UNKNOWN,
                client_addr: String::new(),
                cluster_addr,
            },
            bump: 0,
        }
    }

    pub fn id(&self) -> NodeId {
        self.info.id
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeIdentity {
            info: self.info.clone(),
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.info.cluster_addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Serial-number comparison so that wrapping past u16::MAX still counts as newer.
        let newer = self.bump.wrapping_sub(adversary.bump);
        newer != 0 && newer < u16::MAX / 2 || (newer == 0 && self.info.id > adversary.info.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn ident(bump: u16) -> NodeIdentity {
        NodeIdentity {
            info: NodeInfo {
                id: NodeId([7; 20]),
                client_addr: "127.0.0.1:7000".into(),
                cluster_addr: "127.0.0.1:17000".parse().expect("addr"),
            },
            bump,
        }
    }

    #[test]
    fn node_id_hex_round_trip() {
        let id = NodeId::random();
        let s = id.to_string();
        assert_eq!(s.len(), 40);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(s.parse::<NodeId>(), Ok(id));
        assert!("abc".parse::<NodeId>().is_err());
        assert!("zz".repeat(20).parse::<NodeId>().is_err());
        assert_ne!(NodeId::random(), NodeId::random());
    }

    #[test]
    fn renew_bumps_and_wins() {
        let a = ident(u16::MAX);
        let b = a.renew().expect("renew");
        assert_eq!(b.bump, 0);
        assert_eq!(a.addr(), b.addr());
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
        assert!(ident(5).win_addr_conflict(&ident(4)));
        assert!(!ident(4).win_addr_conflict(&ident(4)));
    }
}
