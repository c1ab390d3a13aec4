//! Cluster mode: this shard as one node of a cluster whose membership and slot ownership come
//! from SWIM over QUIC (`membership::swim`). Routing checks are pure functions of the current
//! ownership snapshot; a background task drops the data of slots this node no longer owns.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use membership::Slot;
use membership::swim::{
    self, AgentHandle, ClusterConfig, ClusterView, NodeId, QuicTransport, SlotOwnership,
};

use crate::config::Config;
use crate::error::CmdError;
use crate::server::Shared;

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
}

/// The outcome of checking a keyed command against slot ownership.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local,
    /// `-MOVED slot host:port`.
    Moved(Slot, String),
    /// Nobody serves the slot (yet).
    Down,
    CrossSlot,
}

/// Where a command on `slots` must run, given the ownership snapshot. Pure.
pub fn route(
    ownership: &SlotOwnership,
    me: &NodeId,
    mut slots: impl Iterator<Item = Slot>,
) -> Route {
    let Some(first) = slots.next() else {
        return Route::Local;
    };
    if slots.any(|s| s != first) {
        return Route::CrossSlot;
    }
    match ownership.owner(first) {
        Some(n) if n.id == *me => Route::Local,
        Some(n) => Route::Moved(first, n.client_addr.clone()),
        None => Route::Down,
    }
}

impl Route {
    pub fn into_result(self) -> Result<(), CmdError> {
        match self {
            Route::Local => Ok(()),
            Route::Moved(slot, addr) => Err(CmdError::Raw(format!("MOVED {slot} {addr}"))),
            Route::Down => Err(CmdError::Raw("CLUSTERDOWN Hash slot not served".into())),
            Route::CrossSlot => Err(CmdError::Raw(membership::resp::errors::CROSSSLOT.into())),
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

/// Joins (or bootstraps) the cluster and starts the task that drops data of lost slots.
pub async fn start(
    config: &Config,
    client: SocketAddr,
    shared: Arc<Shared>,
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
    let (transport, _streams) = QuicTransport::bind(bus, &secret)
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
    let announce = config
        .cluster_announce_ip
        .clone()
        .unwrap_or_else(|| client.ip().to_string());
    let cfg = ClusterConfig {
        node_id: node_id(&config.dir)?,
        client_addr: format!("{announce}:{}", client.port()),
        cluster_addr: bus_addr,
        seeds,
        secret,
        ..ClusterConfig::default()
    };
    let (handle, _task) =
        swim::spawn(cfg, transport).map_err(|e| ClusterError::Agent(e.to_string()))?;
    let me = handle.me().id;
    tracing::info!(node = %me, bus = %bus_addr, "cluster membership started");
    tokio::spawn(drop_lost_slots(handle.clone(), me, shared));
    Ok(Cluster {
        handle,
        me,
        bus_addr,
    })
}

/// Keeps the store to the slots this node owns: when ownership moves away, the slot's keys
/// (both tiers) are dropped, so they neither answer nor take memory.
async fn drop_lost_slots(handle: AgentHandle, me: NodeId, shared: Arc<Shared>) {
    let (db, stop) = (&shared.db, shared.shutdown.clone());
    let mut rx = handle.subscribe();
    loop {
        let view: Arc<ClusterView> = rx.borrow_and_update().clone();
        let mut dropped = 0usize;
        for slot in Slot::all() {
            if db.count_in_slot(slot) > 0 && view.slots.owner_id(slot).is_some_and(|o| o != me) {
                dropped += db.drop_slot(slot);
            }
        }
        if dropped > 0 {
            tracing::info!(
                keys = dropped,
                "dropped keys of slots now owned by other nodes"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
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

    #[test]
    fn routing_decisions() {
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
        let s = |n: u16| Slot::new(n).expect("slot");
        assert_eq!(route(&own, &a.id, [s(5)].into_iter()), Route::Local);
        assert_eq!(route(&own, &a.id, std::iter::empty()), Route::Local);
        assert_eq!(
            route(&own, &a.id, [s(9000)].into_iter()),
            Route::Moved(s(9000), "127.0.0.1:7002".into())
        );
        assert_eq!(route(&own, &a.id, [s(16383)].into_iter()), Route::Down);
        assert_eq!(
            route(&own, &a.id, [s(5), s(6)].into_iter()),
            Route::CrossSlot
        );
        assert_eq!(route(&own, &a.id, [s(5), s(5)].into_iter()), Route::Local);
        let moved = Route::Moved(s(9000), "127.0.0.1:7002".into())
            .into_result()
            .expect_err("err")
            .to_line();
        assert_eq!(moved, "MOVED 9000 127.0.0.1:7002");
    }
}
