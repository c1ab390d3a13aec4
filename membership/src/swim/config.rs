//! Cluster membership configuration: addresses, seeds, secret and SWIM timings.

use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::broadcast::Claim;
use super::identity::NodeId;

/// What the agent does when members join and the slots are out of balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RebalanceMode {
    /// The coordinator (the live member with the smallest node id) announces the balancing
    /// moves itself; moved slots start empty on their new owner (fine for a cache).
    #[default]
    Auto,
    /// Plans are only published ([`super::ClusterView::plan`]); the shard migrates each range
    /// and then announces it with [`super::AgentHandle::claim`]. AutoCache shards always run
    /// their agent in this mode, so moved slots keep their keys.
    Manual,
}

/// Membership settings. Every field has a default (`#[serde(default)]`); durations are in
/// milliseconds so the shard can expose them as plain flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id as 40 hex characters; empty: a random one (the shard persists it).
    pub node_id: String,
    /// Address clients and proxies use for this node (`host:port`, as in MOVED redirects).
    pub client_addr: String,
    /// Where the cluster transport listens (`--cluster-port`).
    pub cluster_addr: SocketAddr,
    /// Cluster addresses of nodes to join (`--cluster-seeds`). Empty: this node bootstraps a
    /// new cluster and owns all slots.
    pub seeds: Vec<SocketAddr>,
    /// The shared cluster secret (`--cluster-secret`): only nodes holding it can connect.
    pub secret: String,
    /// SWIM probe period.
    pub probe_period_ms: u64,
    /// Time to wait for a direct probe's ack before asking others to probe indirectly.
    pub probe_rtt_ms: u64,
    /// How long a suspect member has to refute before it is declared down.
    pub suspect_timeout_ms: u64,
    /// Period of foca's piggy-back gossip to a few random members.
    pub gossip_interval_ms: u64,
    /// Period of the anti-entropy exchange of slot tables with one random member.
    pub sync_interval_ms: u64,
    /// Period of the takeover/rebalance check.
    pub plan_interval_ms: u64,
    /// Membership must have been unchanged this long before survivors take over a dead
    /// node's slots: while a partition is being detected node by node, a minority could
    /// otherwise briefly look like a majority.
    pub takeover_delay_ms: u64,
    /// Period of re-announcing to seeds (when alone) and to members declared down (so that
    /// healed partitions merge).
    pub announce_interval_ms: u64,
    /// How long down members are remembered before they may rejoin with the same identity.
    pub remove_down_after_ms: u64,
    /// Largest SWIM packet; 0: the transport's datagram limit.
    pub max_packet_size: usize,
    /// Expected cluster size, used to size gossip fan-out.
    pub cluster_size_hint: u32,
    pub rebalance: RebalanceMode,
    /// Seed for the protocol's random choices; `None`: from the OS (tests pin it).
    pub rng_seed: Option<u64>,
    /// Starting incarnation ("bump") of this node's identity; `None`: a random one. A node
    /// coming back from a planned restart passes the bump it left with plus one
    /// ([`super::RestartState::next_bump`]), so the others accept the new incarnation at once
    /// instead of ignoring it as an older one until they forget the old (`remove_down_after_ms`).
    pub initial_bump: Option<u16>,
    /// Cluster addresses of members this node knew before a planned restart: announced to like
    /// seeds. A node without `seeds` (it bootstrapped the cluster) that has some waits a few
    /// anti-entropy rounds to learn the table from them, and bootstraps only if nobody has
    /// one (the whole cluster restarted).
    pub rejoin: Vec<SocketAddr>,
    /// The claims this node held before a planned restart (`RestartState::claims`), announced
    /// again at start. A node with some neither bootstraps nor waits to learn its slots.
    #[serde(skip)]
    pub restore: Vec<Claim>,
    /// With `restore`: for this long after start, slots nobody claims are left alone instead
    /// of taken over, since the nodes that owned them may be restarting too (a whole cluster
    /// coming back in any order). The shard passes its `cluster-restart-grace`.
    pub restore_hold_ms: u64,
}

impl Default for ClusterConfig {
    /// LAN defaults: a dead node is probed within ~0.5 s, suspected after the probe round and
    /// declared down 1 s later; survivors claim its slots at the next plan tick (0.2 s). The
    /// simulation measures about 2 s from kill to takeover (see docs/membership.md).
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            client_addr: "127.0.0.1:6379".into(),
            cluster_addr: SocketAddr::from(([0, 0, 0, 0], 16379)),
            seeds: Vec::new(),
            secret: String::new(),
            probe_period_ms: 500,
            probe_rtt_ms: 200,
            suspect_timeout_ms: 1000,
            gossip_interval_ms: 200,
            sync_interval_ms: 500,
            plan_interval_ms: 200,
            takeover_delay_ms: 300,
            announce_interval_ms: 2000,
            remove_down_after_ms: 60_000,
            max_packet_size: 0,
            cluster_size_hint: 16,
            rebalance: RebalanceMode::Auto,
            rng_seed: None,
            initial_bump: None,
            rejoin: Vec::new(),
            restore: Vec::new(),
            restore_hold_ms: 30_000,
        }
    }
}

/// Every problem found by [`ClusterConfig::validate`], reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cluster config: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

/// Smallest packet foca can work with (its header plus a few updates).
pub const MIN_PACKET_SIZE: usize = 256;

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if !self.node_id.is_empty() && self.node_id.parse::<NodeId>().is_err() {
            errs.push(format!(
                "node_id {:?} is not 40 hex characters",
                self.node_id
            ));
        }
        if self.node_id.parse::<NodeId>() == Ok(NodeId::UNKNOWN) {
            errs.push("node_id must not be all zeroes".into());
        }
        if self.client_addr.is_empty() {
            errs.push("client_addr is empty".into());
        }
        if self.secret.len() < 8 {
            errs.push("secret must be at least 8 bytes".into());
        }
        for (name, v) in [
            ("probe_period_ms", self.probe_period_ms),
            ("probe_rtt_ms", self.probe_rtt_ms),
            ("suspect_timeout_ms", self.suspect_timeout_ms),
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("sync_interval_ms", self.sync_interval_ms),
            ("plan_interval_ms", self.plan_interval_ms),
            ("announce_interval_ms", self.announce_interval_ms),
            ("remove_down_after_ms", self.remove_down_after_ms),
        ] {
            if v == 0 {
                errs.push(format!("{name} must be positive"));
            }
        }
        if self.probe_rtt_ms >= self.probe_period_ms {
            errs.push("probe_rtt_ms must be shorter than probe_period_ms".into());
        }
        if self.max_packet_size != 0 && self.max_packet_size < MIN_PACKET_SIZE {
            errs.push(format!(
                "max_packet_size must be at least {MIN_PACKET_SIZE}"
            ));
        }
        if self.seeds.contains(&self.cluster_addr) {
            errs.push("seeds must not contain this node's own cluster_addr".into());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errs))
        }
    }

    pub fn node_id(&self) -> Option<NodeId> {
        self.node_id.parse().ok()
    }

    pub(crate) fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// The foca configuration for a transport whose datagrams hold `datagram_limit` bytes
    /// (one of which the agent uses for its message tag).
    pub(crate) fn foca_config(&self, datagram_limit: usize) -> foca::Config {
        self.foca_config_sized(datagram_limit, 1)
    }

    /// [`ClusterConfig::foca_config`] for a cluster of `members` nodes: only the number of
    /// times an update is retransmitted depends on it (4·log10(n+1), as foca computes it).
    pub(crate) fn foca_config_sized(&self, datagram_limit: usize, members: usize) -> foca::Config {
        let n = u32::try_from(members)
            .unwrap_or(u32::MAX)
            .max(self.cluster_size_hint);
        let hint = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let mut c = foca::Config::new_lan(hint);
        c.probe_period = Self::ms(self.probe_period_ms);
        c.probe_rtt = Self::ms(self.probe_rtt_ms);
        c.suspect_to_down_after = Self::ms(self.suspect_timeout_ms);
        c.remove_down_after = Some(Self::ms(self.remove_down_after_ms));
        let limit = datagram_limit.saturating_sub(1);
        let size = match self.max_packet_size {
            0 => limit,
            n => n.min(limit),
        };
        c.max_packet_size =
            NonZeroUsize::new(size.max(MIN_PACKET_SIZE)).unwrap_or(NonZeroUsize::MIN);
        c.max_transmissions = c
            .max_transmissions
            .max(NonZeroU8::new(4).unwrap_or(NonZeroU8::MIN));
        let three = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        c.periodic_gossip = Some(foca::PeriodicParams {
            frequency: Self::ms(self.gossip_interval_ms),
            num_members: three,
        });
        // Announcing to a random member returns its member list: anti-entropy for membership
        // updates that ran out of retransmissions before reaching everyone.
        c.periodic_announce = Some(foca::PeriodicParams {
            frequency: Self::ms(self.announce_interval_ms),
            num_members: NonZeroUsize::MIN,
        });
        c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Self::ms(self.announce_interval_ms),
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_a_secret() {
        let c = ClusterConfig {
            secret: "s3cret-s3cret".into(),
            ..Default::default()
        };
        assert_eq!(c.validate(), Ok(()));
        let f = c.foca_config(1150);
        assert_eq!(f.max_packet_size.get(), 1149);
        assert_eq!(f.probe_period, Duration::from_millis(500));
    }

    #[test]
    fn reports_every_problem() {
        let c = ClusterConfig {
            node_id: "xyz".into(),
            client_addr: String::new(),
            probe_period_ms: 0,
            max_packet_size: 10,
            ..Default::default()
        };
        let Err(ConfigError(errs)) = c.validate() else {
            panic!("must fail");
        };
        assert_eq!(errs.len(), 6, "{errs:?}");
    }

    #[test]
    fn serde_defaults_fill_missing_fields() {
        let c: ClusterConfig =
            serde_json::from_str(r#"{"secret":"abcdefgh","seeds":["127.0.0.1:7000"]}"#)
                .expect("parse");
        assert_eq!(c.probe_period_ms, 500);
        assert_eq!(c.seeds.len(), 1);
        assert!(serde_json::from_str::<ClusterConfig>(r#"{"bogus":1}"#).is_err());
    }
}
