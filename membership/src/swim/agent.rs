//! The membership agent: one task owns [`Foca`] and the slot table. It selects over commands,
//! incoming datagrams and one ordered timer queue, drains foca's runtime queues after every
//! call, and publishes [`ClusterView`] snapshots (ArcSwap for lock-free reads, `watch` for
//! change notification) plus [`MemberEvent`]s.
//!
//! Wire format of the agent's datagrams: one tag byte, then
//! * [`TAG_FOCA`]: a foca packet (members, probes, claim broadcasts);
//! * [`TAG_DIGEST`]: the sender's slot-table digest (u64), anti-entropy;
//! * [`TAG_CLAIMS`]: a flags byte (bit 0: "send me yours") and whole claims — a table, in as
//!   many datagrams as needed;
//! * [`TAG_RESTART`]: a restart notice: the sender's node id (20 bytes) and the grace in
//!   milliseconds (u64) within which it will be back; until then its slots are not taken over.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{BufMut, Bytes, BytesMut};
use foca::{AccumulatingRuntime, Foca, Identity, OwnedNotification, PostcardCodec, State, Timer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::broadcast::{CLAIM_LEN, Claim, ClaimError, ClaimHandler, SlotOwnership, SlotTable};
use super::config::{ClusterConfig, ConfigError, RebalanceMode};
use super::identity::{NodeId, NodeIdentity, NodeInfo};
use super::rebalance::{self, Move};
use super::scheduler::TimerQueue;
use super::transport::Transport;

pub const TAG_FOCA: u8 = 1;
pub const TAG_DIGEST: u8 = 2;
pub const TAG_CLAIMS: u8 = 3;
pub const TAG_RESTART: u8 = 4;
/// Longest grace a restart notice may ask for; longer ones are cut to it.
pub const MAX_RESTART_GRACE: Duration = Duration::from_secs(3600);
const FLAG_WANT_REPLY: u8 = 1;

/// A member's liveness as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberState {
    Alive,
    Suspect,
    Down,
}

/// Another node, as known to this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub info: NodeInfo,
    pub state: MemberState,
}

/// Membership changes, in the order this node noticed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    Up(NodeInfo),
    Suspect(NodeInfo),
    Down(NodeInfo),
    /// The slot table changed; `config_epoch` is its highest epoch.
    SlotsChanged {
        config_epoch: u64,
    },
}

/// A consistent snapshot of what this node knows.
#[derive(Clone, Debug)]
pub struct ClusterView {
    pub me: NodeInfo,
    /// Every other node ever seen, with its state, by id.
    pub members: BTreeMap<NodeId, Member>,
    pub slots: Arc<SlotOwnership>,
    /// In [`RebalanceMode::Manual`], the moves that would balance the slots (empty when
    /// balanced); the shard migrates them one at a time and claims each when done.
    pub plan: Vec<Move>,
    /// Snapshots published so far (grows by one per change).
    pub version: u64,
}

impl ClusterView {
    /// Ids of live members (alive or suspect) including this node, sorted.
    pub fn live_ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.state != MemberState::Down)
            .map(|(id, _)| *id)
            .collect();
        v.push(self.me.id);
        v.sort();
        v
    }

    pub fn state_of(&self, id: &NodeId) -> Option<MemberState> {
        if *id == self.me.id {
            return Some(MemberState::Alive);
        }
        self.members.get(id).map(|m| m.state)
    }
}

/// Why the agent refused a request.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the membership agent has stopped")]
    Stopped,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

enum Command {
    Join(Vec<SocketAddr>),
    Claim {
        first: u16,
        last: u16,
        owner: NodeId,
        reply: oneshot::Sender<Result<u64, ClaimError>>,
    },
    Leave(oneshot::Sender<()>),
    Restart {
        grace: Duration,
        reply: oneshot::Sender<RestartState>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// What a node stopping for a planned restart should keep for its return (the shard writes it
/// to its data directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartState {
    /// The identity incarnation this node stopped with.
    pub bump: u16,
    /// Cluster addresses of the members it knew alive: extra seeds to announce to on return.
    pub peers: Vec<SocketAddr>,
    /// The slot ranges it owned, with their epochs: claimed again on return, so that a
    /// whole cluster restarted at once comes back with its table instead of bootstrapping.
    pub claims: Vec<Claim>,
}

impl RestartState {
    /// The incarnation to come back with: newer than the one the others remember.
    pub fn next_bump(&self) -> u16 {
        self.bump.wrapping_add(1)
    }
}

/// How the agent is going away.
enum Departure {
    Leave(oneshot::Sender<()>),
    Restart(oneshot::Sender<RestartState>, RestartState),
}

/// The shard's (and tests') handle on a running agent. Cheap to clone.
#[derive(Clone)]
pub struct AgentHandle {
    cmd: mpsc::Sender<Command>,
    view: Arc<ArcSwap<ClusterView>>,
    watch: watch::Receiver<Arc<ClusterView>>,
    events: broadcast::Sender<MemberEvent>,
    me: NodeInfo,
}

impl AgentHandle {
    /// This node.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// The current snapshot; never blocks.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.load_full()
    }

    /// The current snapshot as a guard: no reference-count traffic, for per-request routing
    /// checks on hot paths. Do not hold it across an `.await`.
    pub fn load(&self) -> arc_swap::Guard<Arc<ClusterView>> {
        self.view.load()
    }

    /// The current slot ownership; never blocks.
    pub fn slots(&self) -> Arc<SlotOwnership> {
        self.view.load().slots.clone()
    }

    /// A receiver that wakes on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.watch.clone()
    }

    /// Member events from now on (a slow reader loses the oldest ones).
    pub fn events(&self) -> broadcast::Receiver<MemberEvent> {
        self.events.subscribe()
    }

    /// Waits until `pred` holds for a snapshot, returning it.
    pub async fn wait_for(
        &self,
        mut pred: impl FnMut(&ClusterView) -> bool,
    ) -> Result<Arc<ClusterView>, AgentError> {
        let mut rx = self.watch.clone();
        let v = rx
            .wait_for(|v| pred(v))
            .await
            .map_err(|_| AgentError::Stopped)?;
        Ok(v.clone())
    }

    async fn send(&self, c: Command) -> Result<(), AgentError> {
        self.cmd.send(c).await.map_err(|_| AgentError::Stopped)
    }

    /// Announces to more seeds (in addition to the configured ones).
    pub async fn join(&self, seeds: Vec<SocketAddr>) -> Result<(), AgentError> {
        self.send(Command::Join(seeds)).await
    }

    /// Announces that `first..=last` now belongs to `owner`, at a new config epoch (returned).
    /// The shard calls this after migrating a range of a [`ClusterView::plan`].
    pub async fn claim(&self, first: u16, last: u16, owner: NodeId) -> Result<u64, AgentError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Claim {
            first,
            last,
            owner,
            reply,
        })
        .await?;
        Ok(rx.await.map_err(|_| AgentError::Stopped)??)
    }

    /// Hands this node's slots to the others, tells the cluster it is leaving, and stops the
    /// agent.
    pub async fn leave(&self) -> Result<(), AgentError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Leave(reply)).await?;
        rx.await.map_err(|_| AgentError::Stopped)
    }

    /// A planned restart: tells the live members this node will be back within `grace` (so
    /// they keep its slots for it instead of taking them over), leaves the SWIM group and
    /// stops the agent. Returns what the node needs to rejoin quickly
    /// ([`ClusterConfig::initial_bump`] and extra seeds).
    pub async fn restart(&self, grace: Duration) -> Result<RestartState, AgentError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Restart { grace, reply }).await?;
        rx.await.map_err(|_| AgentError::Stopped)
    }

    /// Stops the agent without telling anyone (the others will detect it as failed).
    pub async fn shutdown(&self) -> Result<(), AgentError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Shutdown(reply)).await?;
        rx.await.map_err(|_| AgentError::Stopped)
    }
}

/// Starts an agent on `transport`. The node's cluster address is the transport's; the node id
/// comes from the config (or is random). Without seeds the node bootstraps a cluster owning
/// every slot; with seeds it announces to them and waits to learn the slot table.
pub fn spawn<T: Transport>(
    config: ClusterConfig,
    transport: T,
) -> Result<(AgentHandle, JoinHandle<()>), AgentError> {
    config.validate()?;
    let info = NodeInfo {
        id: config.node_id().unwrap_or_else(NodeId::random),
        client_addr: config.client_addr.clone(),
        cluster_addr: transport.local_addr(),
    };
    let seed = config.rng_seed.unwrap_or_else(rand::random);
    let bump = config
        .initial_bump
        .unwrap_or_else(|| StdRng::seed_from_u64(seed ^ 0xb0b).random());
    let me = NodeIdentity::new(info.clone(), bump);
    let table = Arc::new(Mutex::new(SlotTable::new()));
    let changed = Arc::new(Mutex::new(false));
    let foca = Foca::with_custom_broadcast(
        me.clone(),
        config.foca_config(transport.max_datagram_size()),
        StdRng::seed_from_u64(seed),
        PostcardCodec,
        ClaimHandler::new(table.clone(), changed.clone()),
    );
    let first = Arc::new(ClusterView {
        me: info.clone(),
        members: BTreeMap::new(),
        slots: Arc::new(SlotOwnership::default()),
        plan: Vec::new(),
        version: 0,
    });
    let view = Arc::new(ArcSwap::from(first.clone()));
    let (watch_tx, watch_rx) = watch::channel(first);
    let (events, _) = broadcast::channel(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let datagram_limit = transport.max_datagram_size();
    let agent = Agent {
        foca,
        rt: AccumulatingRuntime::new(),
        timers: TimerQueue::default(),
        transport,
        cmds: cmd_rx,
        table,
        table_changed: changed,
        seeds: {
            let mut s = config.seeds.clone();
            s.extend(config.rejoin.iter().filter(|a| !config.seeds.contains(a)));
            s
        },
        me,
        members: BTreeMap::new(),
        members_changed: true,
        last_member_change: Instant::now(),
        plan_dirty: true,
        digest: None,
        datagram_limit,
        foca_sized_for: 1,
        bootstrapped: false,
        rng: StdRng::seed_from_u64(seed.wrapping_add(1)),
        plan: Vec::new(),
        view: view.clone(),
        watch: watch_tx,
        events: events.clone(),
        version: 0,
        leaving: None,
        restarting: HashMap::new(),
        hold_unowned_until: None,
        config,
    };
    let task = tokio::spawn(agent.run());
    Ok((
        AgentHandle {
            cmd: cmd_tx,
            view,
            watch: watch_rx,
            events,
            me: info,
        },
        task,
    ))
}

enum Tick {
    Foca(Timer<NodeIdentity>),
    Sync,
    Plan,
    Announce,
    LeaveDone,
    /// A node that bootstrapped the cluster, back from a restart: bootstrap again unless it
    /// learned the table by now.
    Bootstrap,
}

struct Agent<T> {
    foca: Foca<NodeIdentity, PostcardCodec, StdRng, ClaimHandler>,
    rt: AccumulatingRuntime<NodeIdentity>,
    timers: TimerQueue<Tick>,
    transport: T,
    cmds: mpsc::Receiver<Command>,
    /// Shared with foca's [`ClaimHandler`]; both run on this task only.
    table: Arc<Mutex<SlotTable>>,
    table_changed: Arc<Mutex<bool>>,
    config: ClusterConfig,
    me: NodeIdentity,
    seeds: Vec<SocketAddr>,
    members: BTreeMap<NodeId, Member>,
    members_changed: bool,
    /// When a member last changed state (takeover waits for a quiet period after it).
    last_member_change: Instant,
    /// Whether the table or membership changed since the last plan tick.
    plan_dirty: bool,
    /// Cached digest of the table; cleared when it changes.
    digest: Option<u64>,
    datagram_limit: usize,
    /// Cluster size foca's retransmission count was last computed for.
    foca_sized_for: usize,
    /// Whether this node may take over unowned slots: a bootstrapping node from the start, a
    /// joining one once it has learned some of the table (else it would claim everything
    /// before hearing about the existing owners).
    bootstrapped: bool,
    rng: StdRng,
    plan: Vec<Move>,
    view: Arc<ArcSwap<ClusterView>>,
    watch: watch::Sender<Arc<ClusterView>>,
    events: broadcast::Sender<MemberEvent>,
    version: u64,
    leaving: Option<Departure>,
    /// Members that announced a planned restart, with the end of their grace.
    restarting: HashMap<NodeId, Instant>,
    /// Back from a planned restart with its claims: until then, unowned slots are not taken
    /// over (their owners may be on their way back too).
    hold_unowned_until: Option<Instant>,
}

impl<T: Transport> Agent<T> {
    fn table(&self) -> MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run(mut self) {
        let now = Instant::now();
        self.timers.push(now, Tick::Plan);
        self.timers.push(
            now + ClusterConfig::ms(self.config.sync_interval_ms),
            Tick::Sync,
        );
        self.timers.push(now, Tick::Announce);
        if !self.config.restore.is_empty() {
            // Back from a planned restart: the slots this node owned are its own again (at
            // their old epochs, so any newer claim made meanwhile wins).
            info!(node = %self.me.id(), ranges = self.config.restore.len(), "claiming the slots owned before the restart");
            self.bootstrapped = true;
            self.hold_unowned_until = Some(now + ClusterConfig::ms(self.config.restore_hold_ms));
            // Only this node's own claims: a restart file next to another node id (a data
            // directory put together by hand) must not speak for that node.
            let me = self.me.id();
            let restore = self
                .config
                .restore
                .iter()
                .filter(|c| c.owner == me)
                .copied();
            self.announce_claims(restore.collect());
        } else if self.config.seeds.is_empty() {
            if self.config.rejoin.is_empty() {
                self.bootstrap();
            } else {
                let wait = ClusterConfig::ms(self.config.sync_interval_ms) * 4;
                self.timers.push(now + wait, Tick::Bootstrap);
            }
        }
        self.after_call();
        self.publish();
        loop {
            let deadline = self.timers.next_deadline();
            let flow = tokio::select! {
                biased;
                cmd = self.cmds.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => ControlFlow::Break(()),
                },
                pkt = self.transport.recv() => match pkt {
                    Some((from, data)) => {
                        self.on_packet(from, &data);
                        ControlFlow::Continue(())
                    }
                    None => ControlFlow::Break(()),
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => {
                    self.fire_timers()
                }
            };
            self.publish();
            if flow.is_break() {
                break;
            }
        }
        debug!(node = %self.me.id(), "membership agent stopped");
    }

    /// Empties foca's runtime queues: packets out, timers in, notifications handled.
    fn after_call(&mut self) {
        while let Some((to, data)) = self.rt.to_send() {
            let mut buf = BytesMut::with_capacity(1 + data.len());
            buf.put_u8(TAG_FOCA);
            buf.extend_from_slice(&data);
            self.transport.send(to.addr(), buf.freeze());
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.timers.push(now + after, Tick::Foca(timer));
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::Rejoin(id) => {
                    info!(node = %self.me.id(), bump = id.bump, "declared down; rejoined");
                    self.me = id;
                }
                OwnedNotification::Defunct => warn!(node = %self.me.id(), "identity defunct"),
                OwnedNotification::Idle => debug!(node = %self.me.id(), "no live members"),
                _ => {}
            }
            self.members_changed = true;
        }
    }

    fn on_command(&mut self, c: Command) -> ControlFlow<()> {
        match c {
            Command::Join(seeds) => {
                for s in seeds {
                    if !self.seeds.contains(&s) && s != self.me.addr() {
                        self.seeds.push(s);
                    }
                }
                self.announce_to_seeds();
            }
            Command::Claim {
                first,
                last,
                owner,
                reply,
            } => {
                let epoch = self.table().max_epoch() + 1;
                let claim = Claim {
                    first,
                    last,
                    owner,
                    epoch,
                };
                let r = claim.validate().map(|()| {
                    self.announce_claims(vec![claim]);
                    epoch
                });
                let _ = reply.send(r);
            }
            Command::Leave(reply) => {
                self.start_leave();
                self.leaving = Some(Departure::Leave(reply));
            }
            Command::Restart { grace, reply } => {
                let state = self.start_restart(grace);
                self.leaving = Some(Departure::Restart(reply, state));
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn on_packet(&mut self, from: SocketAddr, data: &[u8]) {
        if self.leaving.is_some() {
            // After leaving, answering would make foca rejoin under a new identity.
            return;
        }
        let Some((&tag, body)) = data.split_first() else {
            return;
        };
        match tag {
            TAG_FOCA => {
                if let Err(e) = self.foca.handle_data(body, &mut self.rt) {
                    debug!(node = %self.me.id(), %from, "foca rejected a packet: {e}");
                }
                self.after_call();
                self.refresh_members();
            }
            TAG_DIGEST => {
                let Ok(digest) = <[u8; 8]>::try_from(body).map(u64::from_be_bytes) else {
                    return;
                };
                if digest != self.digest() {
                    self.send_table(from, true);
                }
            }
            TAG_CLAIMS => {
                let Some((&flags, claims)) = body.split_first() else {
                    return;
                };
                let mut changed = 0;
                {
                    let mut t = self.table();
                    for c in claims.chunks(CLAIM_LEN) {
                        match Claim::decode(c) {
                            Ok(c) => changed += t.apply(&c),
                            Err(e) => {
                                debug!(%from, "bad claim in table sync: {e}");
                                break;
                            }
                        }
                    }
                }
                if changed > 0 {
                    self.set_table_changed();
                }
                if flags & FLAG_WANT_REPLY != 0 {
                    self.send_table(from, false);
                }
            }
            TAG_RESTART => {
                let Some((id, grace)) = decode_restart(body) else {
                    debug!(%from, "bad restart notice");
                    return;
                };
                if id != self.me.id() {
                    info!(node = %self.me.id(), peer = %id, ?grace, "peer restarting; keeping its slots");
                    self.restarting.insert(id, Instant::now() + grace);
                    self.plan_dirty = true;
                }
            }
            _ => debug!(%from, tag, "unknown datagram tag"),
        }
    }

    fn set_table_changed(&self) {
        *self
            .table_changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
    }

    fn fire_timers(&mut self) -> ControlFlow<()> {
        let now = Instant::now();
        while let Some(t) = self.timers.pop_due(now) {
            match t {
                Tick::Foca(timer) => {
                    if self.leaving.is_some() {
                        continue;
                    }
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.rt) {
                        debug!(node = %self.me.id(), "foca timer: {e}");
                    }
                    self.after_call();
                    self.refresh_members();
                }
                Tick::Sync => {
                    self.timers.push(
                        now + ClusterConfig::ms(self.config.sync_interval_ms),
                        Tick::Sync,
                    );
                    self.sync_with_random_member();
                }
                Tick::Plan => {
                    self.timers.push(
                        now + ClusterConfig::ms(self.config.plan_interval_ms),
                        Tick::Plan,
                    );
                    if self.leaving.is_none() {
                        self.plan_tick();
                    }
                }
                Tick::Announce => {
                    self.timers.push(
                        now + ClusterConfig::ms(self.config.announce_interval_ms),
                        Tick::Announce,
                    );
                    if self.leaving.is_none() {
                        self.announce_tick();
                    }
                }
                Tick::Bootstrap => {
                    if self.leaving.is_none() && self.table().is_empty() {
                        self.bootstrap();
                    }
                }
                Tick::LeaveDone => {
                    match self.leaving.take() {
                        Some(Departure::Leave(reply)) => {
                            let _ = reply.send(());
                        }
                        Some(Departure::Restart(reply, state)) => {
                            let _ = reply.send(state);
                        }
                        None => {}
                    }
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn bootstrap(&mut self) {
        info!(node = %self.me.id(), "bootstrapping a new cluster");
        self.bootstrapped = true;
        self.announce_claims(vec![rebalance::bootstrap(self.me.id())]);
    }

    /// Announces (addressed by cluster address, which foca accepts whatever the receiver's
    /// current identity) to the seeds when alone, and to one live and up to two down members.
    ///
    /// This heals what foca's own periodic announces, addressed to identities, cannot: after a
    /// partition both sides declare each other down and every node renews its identity at
    /// once, so packets addressed to the old identities are all dropped. An announce carries
    /// our current identity and is answered with the receiver's member list.
    fn announce_tick(&mut self) {
        if self.foca.iter_members().next().is_none() {
            self.announce_to_seeds();
        }
        let mut targets = Vec::new();
        let live: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr()).collect();
        if !live.is_empty() {
            targets.push(live[self.rng.random_range(0..live.len())]);
        }
        let mut down: Vec<SocketAddr> = self
            .members
            .values()
            .filter(|m| m.state == MemberState::Down)
            .map(|m| m.info.cluster_addr)
            .filter(|a| !live.contains(a))
            .collect();
        for _ in 0..2 {
            if down.is_empty() {
                break;
            }
            targets.push(down.swap_remove(self.rng.random_range(0..down.len())));
        }
        for t in targets {
            if let Err(e) = self.foca.announce(NodeIdentity::seed(t), &mut self.rt) {
                debug!("announce to {t}: {e}");
            }
        }
        self.after_call();
    }

    fn announce_to_seeds(&mut self) {
        for s in self.seeds.clone() {
            if let Err(e) = self.foca.announce(NodeIdentity::seed(s), &mut self.rt) {
                debug!("announce to {s}: {e}");
            }
        }
        self.after_call();
    }

    /// Queues our claims as foca broadcasts (which also merges them into our table) and pushes
    /// them out at once.
    fn announce_claims(&mut self, claims: Vec<Claim>) {
        if claims.is_empty() {
            return;
        }
        for c in &claims {
            debug!(node = %self.me.id(), first = c.first, last = c.last, owner = %c.owner, epoch = c.epoch, "claim");
            if let Err(e) = self.foca.add_broadcast(&c.to_broadcast()) {
                warn!("could not queue claim: {e}");
            }
        }
        self.set_table_changed();
        if let Err(e) = self.foca.broadcast(&mut self.rt) {
            debug!("broadcast: {e}");
        }
        self.after_call();
    }

    fn live_members(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.foca.iter_members().map(|m| m.id().id()).collect();
        v.push(self.me.id());
        v.sort();
        v.dedup();
        v
    }

    /// Takeover of orphaned slots (with quorum), else rebalancing.
    fn plan_tick(&mut self) {
        if !self.plan_dirty {
            return;
        }
        // Cleared here, set again below while a takeover waits for quiet or quorum.
        self.plan_dirty = false;
        let me = self.me.id();
        let survivors = self.live_members();
        let shared = self.table.clone();
        let (claims, plan) = {
            let table = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.bootstrapped {
                if table.is_empty() {
                    return;
                }
                self.bootstrapped = true;
            }
            let members = &self.members;
            let restarting = &self.restarting;
            let now = Instant::now();
            let held = std::cell::Cell::new(false);
            let dead = |id: &NodeId| {
                let down = members
                    .get(id)
                    .is_some_and(|m| m.state == MemberState::Down);
                let back_by = restarting.get(id).copied();
                let take = rebalance::may_take_over(down, back_by, now);
                held.set(held.get() || (down && !take));
                take
            };
            let takeover = rebalance::plan_takeover(&table, &survivors, dead);
            if held.get() {
                // A restarting member's grace is running: look again at the next tick.
                self.plan_dirty = true;
            }
            let holding = self.hold_unowned_until.is_some_and(|t| now < t);
            if !takeover.is_empty() && holding && table.unowned() > 0 {
                debug!(node = %me, "unowned slots after a restart; waiting for their owners");
                self.plan_dirty = true;
                return;
            }
            if !takeover.is_empty() {
                // Quorum counts members known alive, not suspects: during a partition the
                // other side turns suspect before it turns down.
                let alive: Vec<NodeId> = members
                    .iter()
                    .filter(|(_, m)| m.state == MemberState::Alive)
                    .map(|(id, _)| *id)
                    .chain([me])
                    .collect();
                if !rebalance::has_quorum(&table, &alive) {
                    debug!(node = %me, "orphaned slots but no quorum; waiting");
                    self.plan_dirty = true;
                    return;
                }
                let quiet = ClusterConfig::ms(self.config.takeover_delay_ms);
                if self.last_member_change.elapsed() < quiet && !table.is_empty() {
                    self.plan_dirty = true;
                    return;
                }
                let epoch = table.max_epoch() + 1;
                let mine: Vec<Claim> = takeover
                    .iter()
                    .filter(|m| m.to == me)
                    .map(|m| m.claim(epoch))
                    .collect();
                (mine, Vec::new())
            } else {
                let plan = rebalance::plan_rebalance(&table, &survivors);
                let coordinator = survivors.first() == Some(&me);
                match self.config.rebalance {
                    RebalanceMode::Auto if coordinator && !plan.is_empty() => {
                        let epoch = table.max_epoch() + 1;
                        (plan.iter().map(|m| m.claim(epoch)).collect(), Vec::new())
                    }
                    RebalanceMode::Auto => (Vec::new(), Vec::new()),
                    RebalanceMode::Manual => (Vec::new(), plan),
                }
            }
        };
        if plan != self.plan {
            self.plan = plan;
            self.members_changed = true;
        }
        if !claims.is_empty() {
            info!(node = %me, n = claims.len(), "claiming slots");
        }
        self.announce_claims(claims);
    }

    fn start_leave(&mut self) {
        let me = self.me.id();
        let members = self.live_members();
        let claims: Vec<Claim> = {
            let table = self.table();
            let epoch = table.max_epoch() + 1;
            rebalance::plan_leave(&table, me, &members)
                .iter()
                .map(|m| m.claim(epoch))
                .collect()
        };
        info!(node = %me, n = claims.len(), "leaving; handing slots over");
        self.announce_claims(claims);
        // Push the whole table to a few members directly too: broadcasts are best effort.
        let mut peers: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr()).collect();
        peers.sort();
        for _ in 0..3 {
            if peers.is_empty() {
                break;
            }
            let i = self.rng.random_range(0..peers.len());
            let p = peers.swap_remove(i);
            self.send_table(p, false);
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            debug!("leave: {e}");
        }
        self.after_call();
        // Linger one probe period so the datagrams above get out before the task ends.
        self.timers.push(
            Instant::now() + ClusterConfig::ms(self.config.probe_period_ms),
            Tick::LeaveDone,
        );
    }

    /// Sends the restart notice to every member foca knows alive (directly: broadcasts are best
    /// effort and this node will not be around to retransmit), leaves the SWIM group so the
    /// others see it down at once, and lingers a probe period so the datagrams get out.
    fn start_restart(&mut self, grace: Duration) -> RestartState {
        let me = self.me.id();
        let grace = grace.min(MAX_RESTART_GRACE);
        let mut peers: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr()).collect();
        peers.sort();
        peers.dedup();
        let mut buf = BytesMut::with_capacity(1 + 20 + 8);
        buf.put_u8(TAG_RESTART);
        buf.extend_from_slice(me.as_bytes());
        buf.put_u64(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
        let notice = buf.freeze();
        info!(node = %me, ?grace, peers = peers.len(), "restarting; keeping slots for the grace");
        for &p in &peers {
            self.transport.send(p, notice.clone());
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            debug!("leave: {e}");
        }
        self.after_call();
        self.timers.push(
            Instant::now() + ClusterConfig::ms(self.config.probe_period_ms),
            Tick::LeaveDone,
        );
        let claims = self
            .table()
            .claims()
            .into_iter()
            .filter(|c| c.owner == me)
            .collect();
        RestartState {
            bump: self.me.bump,
            peers,
            claims,
        }
    }

    fn sync_with_random_member(&mut self) {
        if self.leaving.is_some() {
            return;
        }
        let n = self.foca.iter_members().count();
        if n == 0 {
            return;
        }
        let i = self.rng.random_range(0..n);
        let Some(peer) = self.foca.iter_members().nth(i).map(|m| m.id().addr()) else {
            return;
        };
        let mut buf = BytesMut::with_capacity(9);
        buf.put_u8(TAG_DIGEST);
        let digest = self.digest();
        buf.put_u64(digest);
        self.transport.send(peer, buf.freeze());
    }

    /// Sends our whole table to `to` as claims, split into datagrams.
    fn send_table(&mut self, to: SocketAddr, want_reply: bool) {
        let claims = self.table().claims();
        let per = (self.transport.max_datagram_size().saturating_sub(2) / CLAIM_LEN).max(1);
        let mut first = true;
        let mut chunks = claims.chunks(per).peekable();
        if chunks.peek().is_none() && !want_reply {
            return;
        }
        loop {
            let chunk = chunks.next().unwrap_or(&[]);
            let mut buf = Vec::with_capacity(2 + chunk.len() * CLAIM_LEN);
            buf.push(TAG_CLAIMS);
            buf.push(if first && want_reply {
                FLAG_WANT_REPLY
            } else {
                0
            });
            for c in chunk {
                c.encode(&mut buf);
            }
            self.transport.send(to, Bytes::from(buf));
            first = false;
            if chunks.peek().is_none() {
                break;
            }
        }
    }

    /// Re-reads foca's member list and emits events for state changes. Allocation-free when
    /// nothing changed (it runs after every packet).
    fn refresh_members(&mut self) {
        let me = self.me.id();
        let mut changes: Vec<(NodeInfo, MemberState)> = Vec::new();
        for m in self.foca.iter_membership_state() {
            let state = match m.state() {
                State::Alive => MemberState::Alive,
                State::Suspect => MemberState::Suspect,
                State::Down => MemberState::Down,
            };
            let info = &m.id().info;
            if info.id == me || info.id == NodeId::UNKNOWN {
                continue;
            }
            if self.members.get(&info.id).map(|m| m.state) != Some(state) {
                changes.push((info.clone(), state));
            }
        }
        for (info, state) in changes {
            // A renamed node can briefly be listed under its old identity (down) and its new
            // one (alive): the live identity decides.
            if state == MemberState::Down
                && self.foca.iter_members().any(|m| m.id().id() == info.id)
            {
                continue;
            }
            let event = match state {
                MemberState::Alive => MemberEvent::Up(info.clone()),
                MemberState::Suspect => MemberEvent::Suspect(info.clone()),
                MemberState::Down => MemberEvent::Down(info.clone()),
            };
            debug!(node = %me, peer = %info.id, ?state, "member state");
            if state == MemberState::Alive && self.restarting.remove(&info.id).is_some() {
                info!(node = %me, peer = %info.id, "restarted peer is back");
            }
            let _ = self.events.send(event);
            self.members.insert(info.id, Member { info, state });
            self.members_changed = true;
            self.plan_dirty = true;
            self.last_member_change = Instant::now();
        }
        // Members foca forgot (removed after being down) stay in our directory as down.
        self.resize_foca();
    }

    /// Keeps foca's retransmission count in step with the cluster size (SWIM needs about
    /// log(n) transmissions per update to reach everyone).
    fn resize_foca(&mut self) {
        let n = self.foca.num_members() + 1;
        if n <= self.foca_sized_for && n * 2 > self.foca_sized_for {
            return;
        }
        let cfg = self.config.foca_config_sized(self.datagram_limit, n);
        match self.foca.set_config(cfg) {
            Ok(()) => self.foca_sized_for = n,
            Err(e) => debug!("foca config: {e}"),
        }
    }

    fn publish(&mut self) {
        let table_changed = std::mem::take(
            &mut *self
                .table_changed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if !table_changed && !self.members_changed {
            return;
        }
        let prev = self.view.load_full();
        let nodes = if self.members_changed {
            let mut nodes: HashMap<NodeId, NodeInfo> = self
                .members
                .iter()
                .map(|(id, m)| (*id, m.info.clone()))
                .collect();
            nodes.insert(self.me.id(), self.me.info.clone());
            Arc::new(nodes)
        } else {
            prev.slots.nodes_arc()
        };
        let table = if table_changed {
            self.digest = None;
            self.plan_dirty = true;
            let table = self.table().clone();
            let _ = self.events.send(MemberEvent::SlotsChanged {
                config_epoch: table.max_epoch(),
            });
            Arc::new(table)
        } else {
            prev.slots.table_arc()
        };
        self.members_changed = false;
        self.version += 1;
        let view = Arc::new(ClusterView {
            me: self.me.info.clone(),
            members: self.members.clone(),
            slots: Arc::new(SlotOwnership::from_parts(table, nodes)),
            plan: self.plan.clone(),
            version: self.version,
        });
        self.view.store(view.clone());
        self.watch.send_replace(view);
    }

    fn digest(&mut self) -> u64 {
        match self.digest {
            Some(d) => d,
            None => {
                let d = self.table().digest();
                self.digest = Some(d);
                d
            }
        }
    }
}

/// Parses a restart notice's body: node id and grace (capped at [`MAX_RESTART_GRACE`]).
fn decode_restart(body: &[u8]) -> Option<(NodeId, Duration)> {
    let b = <&[u8; 28]>::try_from(body).ok()?;
    let (id, grace) = b.split_at(20);
    let id = NodeId(id.try_into().ok()?);
    let grace = u64::from_be_bytes(grace.try_into().ok()?);
    (id != NodeId::UNKNOWN).then(|| (id, Duration::from_millis(grace).min(MAX_RESTART_GRACE)))
}
