//! Cluster mode: this shard as one node of a cluster whose membership and slot ownership come
//! from SWIM over QUIC (`membership::swim`). Routing checks are pure functions of the current
//! ownership snapshot and the slot's migration state; background tasks migrate slots
//! (`crate::migrate`) and drop the data of slots this node no longer owns.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use membership::Slot;
use membership::swim::{
    self, AgentHandle, Claim, ClusterConfig, NodeId, QuicTransport, RebalanceMode, RestartState,
    SlotOwnership,
};

use crate::config::{Config, Rebalance};
use crate::error::CmdError;
use crate::migrate::{self, Migrations, Node};
/// Migration state, defined beside migration; `route` decides on it.
pub use crate::migrate::{Presence, SlotState};
use membership::resp::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster address {0}: {1}")]
    Addr(String, String),
    #[error("cluster membership: {0}")]
    Agent(String),
    #[error("node id file {path}: {source}")]
    NodeId {
        path: String,
        source: std::io::Error,
    },
}

/// This node's membership agent.
pub struct Cluster {
    pub handle: AgentHandle,
    pub me: NodeId,
    pub bus_addr: SocketAddr,
    pub migrations: Arc<Migrations>,
    /// PUBLISH's way to the other nodes (`migrate::publish`).
    pub publish: migrate::Forwarder,
}

/// The outcome of checking a keyed command against slot ownership.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local,
    /// `-MOVED slot host:port`.
    Moved(Slot, String),
    /// `-ASK slot host:port`: the slot is migrating and this key has already left.
    Ask(Slot, String),
    /// `-TRYAGAIN`: a key is being transferred right now (or a multi-key command's keys are
    /// split between the two nodes of a migration).
    TryAgain,
    /// Nobody serves the slot (yet).
    Down,
    CrossSlot,
}

/// Where a command on `slots` must run, given the ownership snapshot, the slot's migration
/// state, whether the client sent ASKING just before, and (asked only for a migrating or
/// importing slot) where its keys are. Pure; follows Redis Cluster's rules:
///
/// * owner, migrating: all keys here → local; a key in transfer → TRYAGAIN; no key here → ASK
///   to the destination; some here, some gone → TRYAGAIN;
/// * importing, after ASKING: local, except a multi-key command missing keys → TRYAGAIN;
/// * otherwise the owner serves it (MOVED elsewhere).
pub fn route(
    ownership: &SlotOwnership,
    me: &NodeId,
    mut slots: impl Iterator<Item = Slot>,
    state: impl FnOnce(Slot) -> SlotState,
    asking: bool,
    presence: impl FnOnce() -> Presence,
) -> Route {
    let Some(first) = slots.next() else {
        return Route::Local;
    };
    if slots.any(|s| s != first) {
        return Route::CrossSlot;
    }
    match (ownership.owner(first), state(first)) {
        (Some(n), SlotState::Migrating { to }) if n.id == *me => {
            let p = presence();
            if p.in_flight > 0 || (p.present > 0 && p.missing > 0) {
                Route::TryAgain
            } else if p.missing == 0 {
                Route::Local
            } else {
                match ownership.node(&to) {
                    Some(dest) => Route::Ask(first, dest.client_addr.clone()),
                    // The destination is unknown here: wait for membership to catch up.
                    None => Route::TryAgain,
                }
            }
        }
        (Some(n), _) if n.id == *me => Route::Local,
        (_, SlotState::Importing { .. }) if asking => {
            let p = presence();
            if p.missing > 0 && p.present + p.missing + p.in_flight > 1 {
                Route::TryAgain
            } else {
                Route::Local
            }
        }
        (Some(n), _) => Route::Moved(first, n.client_addr.clone()),
        (None, _) => Route::Down,
    }
}

impl Route {
    pub fn into_result(self) -> Result<(), CmdError> {
        match self {
            Route::Local => Ok(()),
            Route::Moved(slot, addr) => Err(CmdError::from(CommandError::Raw(format!(
                "MOVED {slot} {addr}"
            )))),
            Route::Ask(slot, addr) => Err(CmdError::from(CommandError::Raw(format!(
                "ASK {slot} {addr}"
            )))),
            Route::TryAgain => Err(CmdError::from(CommandError::Raw(
                "TRYAGAIN Multiple keys request during rehashing of slot".into(),
            ))),
            Route::Down => Err(CmdError::from(CommandError::Raw(
                "CLUSTERDOWN Hash slot not served".into(),
            ))),
            Route::CrossSlot => Err(CmdError::from(CommandError::Raw(
                membership::resp::errors::CROSSSLOT.into(),
            ))),
        }
    }
}

/// The node id, kept in `dir/node-id` so a restarted node is the same node.
fn node_id(dir: &Path) -> Result<String, ClusterError> {
    let path = dir.join("node-id");
    let err = |source| ClusterError::NodeId {
        path: path.display().to_string(),
        source,
    };
    if let Ok(s) = std::fs::read_to_string(&path)
        && s.trim().parse::<NodeId>().is_ok()
    {
        return Ok(s.trim().to_string());
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let id = NodeId::random().to_string();
    std::fs::write(&path, &id).map_err(err)?;
    Ok(id)
}

/// Name of the file under `dir` where a node stopping for a planned restart keeps what it
/// needs to rejoin quickly: its identity incarnation and the members it knew.
const RESTART_STATE: &str = "cluster-restart";

/// Writes `state` to `dir` (atomically: a crash leaves the old file or the new one).
pub fn save_restart_state(dir: &Path, state: &RestartState) -> std::io::Result<()> {
    let mut text = format!("bump {}\n", state.bump);
    for p in &state.peers {
        text.push_str(&format!("peer {p}\n"));
    }
    for c in &state.claims {
        text.push_str(&format!(
            "claim {} {} {} {}\n",
            c.first, c.last, c.epoch, c.owner
        ));
    }
    let tmp = dir.join(format!("{RESTART_STATE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(RESTART_STATE))
}

/// Reads and removes the state a planned restart left in `dir`: it is good for one return
/// only (after a later crash, the incarnation in it would be stale). Unreadable lines are
/// skipped: the node then rejoins as after a crash, only more slowly.
fn take_restart_state(dir: &Path) -> Option<RestartState> {
    let path = dir.join(RESTART_STATE);
    let text = std::fs::read_to_string(&path).ok()?;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the restart state");
    }
    parse_restart_state(&text)
}

fn parse_restart_state(text: &str) -> Option<RestartState> {
    let mut bump = None;
    let mut peers = Vec::new();
    let mut claims = Vec::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("bump", b)) => bump = b.trim().parse().ok(),
            Some(("peer", p)) => peers.extend(p.trim().parse::<SocketAddr>().ok()),
            Some(("claim", c)) => claims.extend(parse_claim(c)),
            _ => {}
        }
    }
    Some(RestartState {
        bump: bump?,
        peers,
        claims,
    })
}

/// `FIRST LAST EPOCH OWNER` (a valid slot range).
fn parse_claim(text: &str) -> Option<Claim> {
    let mut it = text.split_whitespace();
    let first: u16 = it.next()?.parse().ok()?;
    let last: u16 = it.next()?.parse().ok()?;
    let epoch: u64 = it.next()?.parse().ok()?;
    let owner: NodeId = it.next()?.parse().ok()?;
    (first <= last && last < membership::SLOT_COUNT).then_some(Claim {
        first,
        last,
        owner,
        epoch,
    })
}

/// Joins (or bootstraps) the cluster and starts the task that drops data of lost slots.
pub async fn start(
    config: &Config,
    client: SocketAddr,
    node: Arc<dyn Node>,
) -> Result<Cluster, ClusterError> {
    let bind_ip = client.ip();
    // Like Redis: the bus listens on the client port + 10000 unless told otherwise; any free
    // port when that does not fit (other nodes learn it through gossip; only seeds must be known).
    let port = config.cluster_port.unwrap_or_else(|| {
        client
            .port()
            .checked_add(10000)
            .filter(|_| client.port() != 0)
            .unwrap_or(0)
    });
    let bus = SocketAddr::new(bind_ip, port);
    let secret = config.cluster_secret.clone().unwrap_or_default();
    let (transport, streams) = QuicTransport::bind(bus, &secret)
        .map_err(|e| ClusterError::Addr(bus.to_string(), e.to_string()))?;
    let bus_addr = membership::swim::Transport::local_addr(&transport);
    let mut seeds = Vec::new();
    for s in &config.cluster_seeds {
        let addr = tokio::net::lookup_host(s.as_str())
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ClusterError::Addr(s.clone(), "cannot resolve".into()))?;
        seeds.push(addr);
    }
    // Back from a planned restart: announce to the members we knew as well (a node that
    // bootstrapped the cluster learns the table from them rather than claiming every slot
    // again), with an incarnation the others take as newer than the one they saw leave.
    let restart = take_restart_state(&config.dir);
    let mut rejoin = Vec::new();
    if let Some(r) = &restart {
        rejoin.extend(r.peers.iter().filter(|p| **p != bus_addr));
        tracing::info!(
            bump = r.bump,
            peers = r.peers.len(),
            "back from a planned restart"
        );
    }
    let announce = config
        .cluster_announce_ip
        .clone()
        .unwrap_or_else(|| client.ip().to_string());
    // Peers reach the bus at the announced IP too: a shard bound to 0.0.0.0 (containers)
    // announces its routable address instead of the wildcard.
    let announced_bus = match announce.parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_unspecified() => SocketAddr::new(ip, bus_addr.port()),
        _ => bus_addr,
    };
    if announced_bus.ip().is_unspecified() {
        tracing::warn!(
            bus = %announced_bus,
            "cluster mode on a wildcard address without cluster-announce-ip: peers and clients \
             cannot reach this node; set cluster-announce-ip"
        );
    }
    let cfg = ClusterConfig {
        node_id: node_id(&config.dir)?,
        client_addr: format!("{announce}:{}", client.port()),
        cluster_addr: announced_bus,
        seeds,
        secret,
        // The agent only publishes the balancing plan; this shard moves the data and claims
        // each range when it is empty (`crate::migrate`). The agent's own instant claims would
        // start moved slots empty.
        rebalance: RebalanceMode::Manual,
        initial_bump: restart.as_ref().map(RestartState::next_bump),
        rejoin,
        restore: restart.map(|r| r.claims).unwrap_or_default(),
        restore_hold_ms: config.cluster_restart_grace_ms,
        ..ClusterConfig::default()
    };
    let (handle, _task) =
        swim::spawn(cfg, transport).map_err(|e| ClusterError::Agent(e.to_string()))?;
    let me = handle.me().id;
    tracing::info!(node = %me, bus = %bus_addr, "cluster membership started");
    let (migrations, jobs) = Migrations::new(node.db().gates());
    let migrations = Arc::new(migrations);
    let ctx = migrate::Ctx {
        node,
        handle: handle.clone(),
        me,
        streams,
        migrations: migrations.clone(),
        auto: config.cluster_rebalance == Rebalance::Auto,
    };
    let (publish, outbox) = migrate::Forwarder::new();
    tokio::spawn(migrate::run_forwarder(ctx.clone(), outbox));
    tokio::spawn(migrate::maintain(ctx.clone()));
    tokio::spawn(migrate::run_destination(ctx.clone()));
    tokio::spawn(migrate::run_source(ctx, jobs));
    Ok(Cluster {
        handle,
        me,
        bus_addr,
        migrations,
        publish,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership::swim::{Claim, NodeInfo, SlotTable};
    use std::collections::HashMap;

    fn node(n: u8, port: u16) -> NodeInfo {
        NodeInfo {
            id: NodeId([n; 20]),
            client_addr: format!("127.0.0.1:{port}"),
            cluster_addr: format!("127.0.0.1:{}", port + 10000).parse().expect("addr"),
        }
    }

    fn two_nodes() -> (NodeInfo, NodeInfo, SlotOwnership) {
        let (a, b) = (node(1, 7001), node(2, 7002));
        let table = SlotTable::from_claims(&[
            Claim {
                first: 0,
                last: 8191,
                owner: a.id,
                epoch: 1,
            },
            Claim {
                first: 8192,
                last: 16000,
                owner: b.id,
                epoch: 1,
            },
        ]);
        let own = SlotOwnership::new(table, HashMap::from([(a.id, a.clone()), (b.id, b.clone())]));
        (a, b, own)
    }

    fn s(n: u16) -> Slot {
        Slot::new(n).expect("slot")
    }

    fn p(present: usize, in_flight: usize, missing: usize) -> Presence {
        Presence {
            present,
            in_flight,
            missing,
        }
    }

    /// Routes one command on `slots` in `state`, with keys found as `presence`; panics if the
    /// presence is consulted for a stable slot (it costs a lock there).
    fn r(
        own: &SlotOwnership,
        me: &NodeId,
        slots: &[u16],
        state: SlotState,
        asking: bool,
        presence: Presence,
    ) -> Route {
        route(
            own,
            me,
            slots.iter().map(|&n| s(n)),
            |_| state,
            asking,
            || {
                assert_ne!(state, SlotState::Stable, "presence asked for a stable slot");
                presence
            },
        )
    }

    #[test]
    fn restart_state_round_trips_and_is_taken_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let owner = NodeId::random();
        let state = RestartState {
            bump: 65535,
            peers: vec![
                "127.0.0.1:17001".parse().expect("addr"),
                "[::1]:17002".parse().expect("addr"),
            ],
            claims: vec![
                Claim {
                    first: 0,
                    last: 5460,
                    owner,
                    epoch: 1,
                },
                Claim {
                    first: 16383,
                    last: 16383,
                    owner,
                    epoch: 7,
                },
            ],
        };
        save_restart_state(dir.path(), &state).expect("save");
        assert_eq!(take_restart_state(dir.path()), Some(state));
        assert_eq!(take_restart_state(dir.path()), None);
        assert_eq!(
            parse_restart_state(&format!(
                "peer nonsense\nbump 7\nclaim 5 4 1 {owner}\nclaim 0 16384 1 {owner}\nclaim 1 2 3 xyz\n"
            )),
            Some(RestartState {
                bump: 7,
                peers: vec![],
                claims: vec![],
            }),
            "bad lines are skipped"
        );
        assert_eq!(parse_restart_state("peer 127.0.0.1:1\n"), None);
    }

    #[test]
    fn routing_decisions() {
        let (a, _, own) = two_nodes();
        let st = SlotState::Stable;
        let none = Presence::default();
        assert_eq!(r(&own, &a.id, &[5], st, false, none), Route::Local);
        assert_eq!(r(&own, &a.id, &[], st, false, none), Route::Local);
        assert_eq!(
            r(&own, &a.id, &[9000], st, false, none),
            Route::Moved(s(9000), "127.0.0.1:7002".into())
        );
        // ASKING alone does not make a stable foreign slot local.
        assert_eq!(
            r(&own, &a.id, &[9000], st, true, none),
            Route::Moved(s(9000), "127.0.0.1:7002".into())
        );
        assert_eq!(r(&own, &a.id, &[16383], st, false, none), Route::Down);
        assert_eq!(r(&own, &a.id, &[5, 6], st, false, none), Route::CrossSlot);
        assert_eq!(r(&own, &a.id, &[5, 5], st, false, none), Route::Local);
        let moved = Route::Moved(s(9000), "127.0.0.1:7002".into())
            .into_result()
            .expect_err("err")
            .to_line();
        assert_eq!(moved, "MOVED 9000 127.0.0.1:7002");
    }

    #[test]
    fn routing_at_the_source_of_a_migration() {
        let (a, b, own) = two_nodes();
        let mig = SlotState::Migrating { to: b.id };
        let ask = Route::Ask(s(5), "127.0.0.1:7002".into());
        // Single key: here, in transfer, gone.
        assert_eq!(r(&own, &a.id, &[5], mig, false, p(1, 0, 0)), Route::Local);
        assert_eq!(
            r(&own, &a.id, &[5], mig, false, p(0, 1, 0)),
            Route::TryAgain
        );
        assert_eq!(r(&own, &a.id, &[5], mig, false, p(0, 0, 1)), ask);
        // ASKING changes nothing at the source.
        assert_eq!(r(&own, &a.id, &[5], mig, true, p(0, 0, 1)), ask);
        // Multi-key: all here, split, one in transfer, none here.
        assert_eq!(
            r(&own, &a.id, &[5, 5], mig, false, p(2, 0, 0)),
            Route::Local
        );
        assert_eq!(
            r(&own, &a.id, &[5, 5], mig, false, p(1, 0, 1)),
            Route::TryAgain
        );
        assert_eq!(
            r(&own, &a.id, &[5, 5], mig, false, p(1, 1, 0)),
            Route::TryAgain
        );
        assert_eq!(r(&own, &a.id, &[5, 5], mig, false, p(0, 0, 2)), ask);
        // Once the claim flipped ownership, the owner's MOVED wins over the stale state.
        assert_eq!(
            r(&own, &a.id, &[9000], mig, false, p(0, 0, 1)),
            Route::Moved(s(9000), "127.0.0.1:7002".into())
        );
        // A destination this node does not know (yet): retry rather than redirect nowhere.
        let ghost = SlotState::Migrating {
            to: NodeId([9; 20]),
        };
        assert_eq!(
            r(&own, &a.id, &[5], ghost, false, p(0, 0, 1)),
            Route::TryAgain
        );
        let line = |r: Route| r.into_result().expect_err("err").to_line();
        assert_eq!(line(ask), "ASK 5 127.0.0.1:7002");
        assert!(line(Route::TryAgain).starts_with("TRYAGAIN "));
    }

    #[test]
    fn routing_at_the_destination_of_a_migration() {
        let (a, b, own) = two_nodes();
        let imp = SlotState::Importing { from: a.id };
        let moved = Route::Moved(s(5), "127.0.0.1:7001".into());
        // Without ASKING the owner (the source) is named.
        assert_eq!(r(&own, &b.id, &[5], imp, false, p(1, 0, 0)), moved);
        // After ASKING: served, found or not.
        assert_eq!(r(&own, &b.id, &[5], imp, true, p(1, 0, 0)), Route::Local);
        assert_eq!(r(&own, &b.id, &[5], imp, true, p(0, 0, 1)), Route::Local);
        // A multi-key command missing keys waits for the migration, as in Redis.
        assert_eq!(
            r(&own, &b.id, &[5, 5], imp, true, p(1, 0, 1)),
            Route::TryAgain
        );
        assert_eq!(r(&own, &b.id, &[5, 5], imp, true, p(2, 0, 0)), Route::Local);
        // Once the slot is ours, importing state or not, it is local.
        assert_eq!(
            r(&own, &b.id, &[9000], imp, false, p(0, 0, 1)),
            Route::Local
        );
        assert_eq!(
            r(&own, &b.id, &[9000], SlotState::Stable, true, p(0, 0, 0)),
            Route::Local
        );
    }
}
