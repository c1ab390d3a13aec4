//! Membership over the simulated network, under a paused clock: joins, graceful leave, a
//! crash, a partition and its heal, and a 100-node cluster. Every scenario ends with all nodes
//! holding the same slot table, every slot owned by exactly one live node.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use membership::swim::{
    AgentHandle, ClusterConfig, MemberState, NodeId, SimConfig, SimNetwork, spawn,
};
use tokio::time::Instant;

/// `SIM_SEED=n` reruns every scenario with other random choices.
fn sim_seed() -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 7000))
}

fn node_id(i: usize) -> NodeId {
    format!("{:08x}{:032x}", i + 1, 0).parse().expect("id")
}

fn config(i: usize, seeds: Vec<SocketAddr>) -> ClusterConfig {
    ClusterConfig {
        node_id: node_id(i).to_string(),
        client_addr: format!("10.0.0.{}:6379", i + 1),
        seeds,
        secret: "test-secret".into(),
        rng_seed: Some(i as u64 + 100 + 1000 * sim_seed()),
        ..Default::default()
    }
}

struct Cluster {
    net: SimNetwork,
    nodes: Vec<Option<AgentHandle>>,
}

impl Cluster {
    fn new() -> Cluster {
        // RUST_LOG=membership=debug shows the agents' decisions.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        Cluster {
            net: SimNetwork::new(SimConfig {
                seed: sim_seed() + 1,
                ..SimConfig::default()
            }),
            nodes: Vec::new(),
        }
    }

    /// Starts node `i`: the first bootstraps, the others join through node 0.
    fn start(&mut self, cfg: ClusterConfig) {
        let i = self.nodes.len();
        let (h, _task) = spawn(cfg, self.net.endpoint(addr(i))).expect("spawn");
        self.nodes.push(Some(h));
    }

    fn start_n(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.nodes.len();
            let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
            self.start(config(i, seeds));
        }
    }

    fn handle(&self, i: usize) -> &AgentHandle {
        self.nodes[i].as_ref().expect("running")
    }

    fn running(&self, which: &[usize]) -> Vec<&AgentHandle> {
        which.iter().map(|&i| self.handle(i)).collect()
    }
}

/// What "converged" means for the nodes `which`, expecting exactly `live` to be alive: every
/// one sees the same live set and the same slot table, in which every slot is owned by a live
/// node and loads differ by at most one slot.
fn converged(handles: &[&AgentHandle], live: &BTreeSet<NodeId>) -> Result<(), String> {
    let views: Vec<_> = handles.iter().map(|h| h.view()).collect();
    let first = views[0].slots.table();
    for v in &views {
        let seen: BTreeSet<NodeId> = v.live_ids().into_iter().collect();
        if &seen != live {
            return Err(format!("{:?} sees live {seen:?}", v.me.id));
        }
        if v.slots.table() != first {
            return Err(format!(
                "{:?} has a different table: {:?}\nvs {:?} {:?}",
                v.me.id,
                v.slots.table(),
                views[0].me.id,
                first
            ));
        }
    }
    if first.unowned() != 0 {
        return Err(format!("{} slots unowned", first.unowned()));
    }
    let counts = first.counts();
    if let Some(o) = counts.keys().find(|o| !live.contains(o)) {
        return Err(format!("slots owned by non-live {o:?}"));
    }
    let sizes: Vec<usize> = live
        .iter()
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .collect();
    let (min, max) = (sizes.iter().min(), sizes.iter().max());
    if min.zip(max).is_none_or(|(a, b)| b - a > 1) {
        return Err(format!("unbalanced {sizes:?}"));
    }
    Ok(())
}

/// Every node can route every slot to a node whose addresses it knows.
fn routable(handles: &[&AgentHandle]) -> Result<(), String> {
    for v in handles.iter().map(|h| h.view()) {
        if let Err(e) = v.slots.to_slot_map().map(|m| m.unowned()).and_then(|u| {
            if u == 0 {
                Ok(())
            } else {
                Err(membership::topology::TopologyError::NoNodes)
            }
        }) {
            return Err(format!("{:?} cannot route all slots: {e}", v.me.id));
        }
    }
    Ok(())
}

/// Polls (in simulated time) until `which` converge on `live`; returns the time it took.
async fn wait_converged(
    handles: &[&AgentHandle],
    live: &BTreeSet<NodeId>,
    limit: Duration,
) -> Duration {
    // Checking is O(nodes x slots): poll large clusters less often.
    let every = Duration::from_millis(if handles.len() > 20 { 250 } else { 20 });
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        match converged(handles, live).and_then(|()| routable(handles)) {
            Ok(()) => return start.elapsed(),
            Err(e) => last = e,
        }
        tokio::time::sleep(every).await;
    }
    panic!("no convergence within {limit:?}: {last}");
}

fn ids(which: &[usize]) -> BTreeSet<NodeId> {
    which.iter().map(|&i| node_id(i)).collect()
}

#[tokio::test(start_paused = true)]
async fn bootstrap_node_owns_everything() {
    let mut c = Cluster::new();
    c.start_n(1);
    let t = wait_converged(&c.running(&[0]), &ids(&[0]), Duration::from_secs(1)).await;
    assert!(t < Duration::from_millis(100));
    let slots = c.handle(0).slots();
    assert_eq!(slots.table().counts().get(&node_id(0)), Some(&16384));
    assert_eq!(slots.config_epoch(), 1);
}

#[tokio::test(start_paused = true)]
async fn five_nodes_join_and_converge() {
    let mut c = Cluster::new();
    c.start_n(1);
    wait_converged(&c.running(&[0]), &ids(&[0]), Duration::from_secs(1)).await;
    let all = [0, 1, 2, 3, 4];
    c.start_n(4);
    let t = wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(20)).await;
    println!("5-node join converged in {t:?}");
    // Every node agrees on each slot's owner, and that owner's addresses.
    let views: Vec<_> = all.iter().map(|&i| c.handle(i).view()).collect();
    for slot in [0u16, 5000, 12182, 16383] {
        let slot = membership::Slot::new(slot).expect("slot");
        let owners: BTreeSet<_> = views
            .iter()
            .map(|v| v.slots.owner(slot).map(|n| n.client_addr.clone()))
            .collect();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert!(owners.iter().all(Option::is_some));
    }
}

#[tokio::test(start_paused = true)]
async fn graceful_leave_hands_slots_over() {
    let mut c = Cluster::new();
    c.start_n(4);
    let all = [0, 1, 2, 3];
    wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(20)).await;
    let mut events = c.handle(0).events();
    let start = Instant::now();
    c.handle(3).leave().await.expect("leave");
    c.nodes[3] = None;
    let rest = [0, 1, 2];
    let t = wait_converged(&c.running(&rest), &ids(&rest), Duration::from_secs(10)).await;
    println!("leave converged in {:?}", start.elapsed().max(t));
    assert_eq!(
        c.handle(0).view().state_of(&node_id(3)),
        Some(MemberState::Down)
    );
    let mut saw_down = false;
    while let Ok(e) = events.try_recv() {
        saw_down |= matches!(e, membership::swim::MemberEvent::Down(ref n) if n.id == node_id(3));
    }
    assert!(saw_down, "node 0 emitted a Down event for node 3");
}

#[tokio::test(start_paused = true)]
async fn killed_node_is_detected_and_its_slots_taken_over_within_3s() {
    let mut c = Cluster::new();
    c.start_n(5);
    let all = [0, 1, 2, 3, 4];
    wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(20)).await;
    // Let the cluster settle so the measurement starts from a quiet state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let victim = 2;
    let epoch_before = c.handle(0).slots().config_epoch();
    let start = Instant::now();
    c.net.kill(addr(victim));
    let rest = [0, 1, 3, 4];
    // Time to detection: every survivor sees the victim down.
    let mut detected = None;
    let mut taken = None;
    while start.elapsed() < Duration::from_secs(10) && (detected.is_none() || taken.is_none()) {
        if detected.is_none()
            && rest
                .iter()
                .all(|&i| c.handle(i).view().state_of(&node_id(victim)) == Some(MemberState::Down))
        {
            detected = Some(start.elapsed());
        }
        if taken.is_none() && converged(&c.running(&rest), &ids(&rest)).is_ok() {
            taken = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (detected, taken) = (detected.expect("detected"), taken.expect("taken over"));
    println!(
        "failure detected by all survivors in {detected:?}; slots taken over everywhere in {taken:?}"
    );
    assert!(taken < Duration::from_secs(3), "takeover took {taken:?}");
    assert!(c.handle(0).slots().config_epoch() > epoch_before);
}

#[tokio::test(start_paused = true)]
async fn partition_minority_keeps_quiet_then_learns_new_owners_on_heal() {
    let mut c = Cluster::new();
    c.start_n(5);
    let all = [0, 1, 2, 3, 4];
    wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(20)).await;
    let (major, minor) = ([0, 1, 2], [3, 4]);
    let before = c.handle(3).slots().table().clone();
    let minority_slot = (0..16384u16)
        .map(|s| membership::Slot::new(s).expect("slot"))
        .find(|&s| before.owner(s) == Some(node_id(4)))
        .expect("node 4 owns a slot");

    c.net.partition(&major.map(addr), &minor.map(addr));
    let t = wait_converged(&c.running(&major), &ids(&major), Duration::from_secs(10)).await;
    println!("majority took over in {t:?}");
    // The minority has no quorum: it must not have claimed anything new.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in minor {
        let slots = c.handle(i).slots();
        assert_eq!(
            slots.config_epoch(),
            before.max_epoch(),
            "node {i} claimed without quorum: {:?} before {before:?}",
            slots.table()
        );
        assert_eq!(slots.owner_id(minority_slot), Some(node_id(4)));
    }

    let new_owner = c.handle(0).slots().owner_id(minority_slot).expect("owned");
    assert!(major.iter().any(|&i| node_id(i) == new_owner));

    c.net.heal();
    let t = wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(30)).await;
    println!("healed cluster converged in {t:?}");
    // Node 4 learned that its slot was taken at a higher epoch (it may since have been
    // rebalanced again, at a still higher epoch).
    let s4 = c.handle(4).slots();
    assert!(s4.epoch(minority_slot) > before.epoch(minority_slot));
    assert_eq!(
        s4.owner_id(minority_slot),
        c.handle(0).slots().owner_id(minority_slot)
    );
}

#[tokio::test(start_paused = true)]
async fn hundred_nodes_converge() {
    const N: usize = 100;
    let mut c = Cluster::new();
    c.start_n(1);
    let t0 = Instant::now();
    // Everyone joins through node 0 within the first second.
    for _ in 1..N {
        c.start_n(1);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all: Vec<usize> = (0..N).collect();
    let limit = Duration::from_secs(120);
    wait_converged(&c.running(&all), &ids(&all), limit).await;
    let join_time = t0.elapsed();

    // Steady-state traffic over 10 s.
    let before = c.net.total_stats();
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let after = c.net.total_stats();
    let pkts = (after.sent_packets - before.sent_packets) as f64 / N as f64 / window.as_secs_f64();
    let bytes = (after.sent_bytes - before.sent_bytes) as f64 / N as f64 / window.as_secs_f64();
    converged(&c.running(&all), &ids(&all)).expect("still converged");

    // Kill one node and time the takeover.
    let start = Instant::now();
    c.net.kill(addr(37));
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != 37).collect();
    let takeover = wait_converged(&c.running(&rest), &ids(&rest), Duration::from_secs(30)).await;
    let takeover = takeover.max(start.elapsed());
    println!(
        "{N} nodes: joined and converged in {join_time:?} (simulated); steady state \
         {pkts:.1} datagrams and {bytes:.0} bytes per node per second; one node killed: \
         taken over everywhere in {takeover:?}"
    );
    assert!(pkts < 100.0, "{pkts} datagrams per node per second");
}

/// Converges `n` nodes and lets them settle.
async fn settled(n: usize) -> Cluster {
    let mut c = Cluster::new();
    c.start_n(n);
    let all: Vec<usize> = (0..n).collect();
    wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    c
}

/// Node `v` of three stops for a planned restart, stays away 10 s and comes back on the same
/// address with the same id: nobody claims its slots meanwhile, and it rejoins with them.
async fn planned_restart_of(v: usize) {
    let mut c = settled(3).await;
    let all = [0, 1, 2];
    let rest: Vec<usize> = all.into_iter().filter(|&i| i != v).collect();
    let before = c.handle(0).slots().table().clone();
    let mine = before.counts()[&node_id(v)];
    let state = c
        .handle(v)
        .restart(Duration::from_secs(30))
        .await
        .expect("restart");
    c.nodes[v] = None;
    assert_eq!(state.peers.len(), 2, "{state:?}");
    // Away for 10 s: the others see it down but keep its slots reserved (no new claim).
    tokio::time::sleep(Duration::from_secs(10)).await;
    for &i in &rest {
        let view = c.handle(i).view();
        assert_eq!(view.state_of(&node_id(v)), Some(MemberState::Down));
        assert_eq!(view.slots.table(), &before, "node {i} kept the table");
    }
    // Back with its configured seeds (none for node 0, which bootstrapped the cluster) plus
    // the peers it knew, and the next incarnation.
    let seeds = if v == 0 { vec![] } else { vec![addr(0)] };
    let mut cfg = config(v, seeds);
    cfg.rejoin = state.peers.clone();
    cfg.initial_bump = Some(state.next_bump());
    cfg.rng_seed = Some(9_999);
    let (h, _task) = spawn(cfg, c.net.endpoint(addr(v))).expect("spawn");
    c.nodes[v] = Some(h);
    let start = Instant::now();
    let t = wait_converged(&c.running(&all), &ids(&all), Duration::from_secs(10)).await;
    println!(
        "restarted node {v} rejoined in {:?}",
        start.elapsed().max(t)
    );
    assert!(t < Duration::from_secs(3), "rejoin took {t:?}");
    for i in all {
        assert_eq!(c.handle(i).slots().table(), &before, "node {i}");
    }
    assert_eq!(c.handle(v).slots().table().counts()[&node_id(v)], mine);
    // The notice is spent: a crash now is taken over after the usual failure detection (about
    // 2-3 s), not held for the 30 s grace.
    c.net.kill(addr(v));
    let t = wait_converged(&c.running(&rest), &ids(&rest), Duration::from_secs(10)).await;
    assert!(
        t < Duration::from_secs(5),
        "takeover after a crash took {t:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn planned_restart_keeps_slots_and_rejoins_quickly() {
    planned_restart_of(2).await;
}

#[tokio::test(start_paused = true)]
async fn planned_restart_of_the_bootstrap_node_keeps_its_slots() {
    planned_restart_of(0).await;
}

#[tokio::test(start_paused = true)]
async fn restarting_node_that_does_not_return_is_taken_over_after_its_grace() {
    let mut c = settled(3).await;
    let before = c.handle(0).slots().table().clone();
    let start = Instant::now();
    c.handle(2)
        .restart(Duration::from_secs(8))
        .await
        .expect("restart");
    c.nodes[2] = None;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(c.handle(0).slots().table(), &before, "grace still running");
    assert_eq!(c.handle(1).slots().table(), &before, "grace still running");
    let rest = [0, 1];
    wait_converged(&c.running(&rest), &ids(&rest), Duration::from_secs(10)).await;
    let took = start.elapsed();
    println!("slots of a node that did not return taken over after {took:?}");
    assert!(took >= Duration::from_secs(8), "{took:?}");
    assert!(took < Duration::from_secs(11), "{took:?}");
}
