//! The hub: which local clients listen to what, which node each subscription is held on, and
//! the fan-out of the nodes' messages to the clients.
//!
//! Reference counted: the first local subscriber of a channel (pattern, shard channel) makes
//! the hub subscribe upstream, the last one leaving unsubscribes it. A background task follows
//! the slot map and the links' health: on a new map, a designated node gone or down, or a shard
//! channel dropped by its node, it recomputes where every subscription belongs and each link
//! sends the difference.
//!
//! Locks: the hub's state, then a link's; a link's task takes the hub's state only without
//! holding its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use membership::Slot;
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::link::{self, Link, LinkSettings};
use super::{ClientSubs, Key, Kind, Subscriber, every_node, is_keyspace_channel};
use crate::backend::{Backend, Backends, State as BackendState};
use crate::outbuf::Limit;
use crate::protocol::Proto;
use crate::topology::{Topology, TopologyCell};

/// How often the hub looks at the slot map and the links when nothing woke it.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);
/// Connections failed in a row after which a designated node is replaced.
const FAILURES_TO_REPLACE: u32 = 2;

/// Counters for INFO and the metrics.
#[derive(Default)]
pub struct HubStats {
    /// Messages received from the nodes (those of other nodes than the designated one that
    /// the hub does not pass on excepted).
    pub received: AtomicU64,
    /// Messages queued to clients (one per client per message).
    pub fanned_out: AtomicU64,
    /// Clients disconnected for `client-output-buffer-limit pubsub`.
    pub slow_dropped: AtomicU64,
    /// Recomputations of where subscriptions belong (new maps, failovers, moved slots).
    pub recomputes: AtomicU64,
}

/// A (un)subscribe's confirmations (encoded for the client's protocol), and the nodes'
/// answers they wait for.
#[derive(Default)]
pub struct Answer {
    pub reply: BytesMut,
    pub waits: Vec<oneshot::Receiver<()>>,
}

/// What the hub holds, at one moment.
#[derive(Default, Debug, Clone, Copy)]
pub struct Gauges {
    /// Distinct channels, patterns and shard channels this proxy's clients listen to.
    pub channels: usize,
    pub patterns: usize,
    pub shard_channels: usize,
    /// Local subscriptions (one per client and channel, pattern or shard channel).
    pub local: usize,
    /// Clients with at least one subscription.
    pub subscribers: usize,
    /// Subscriptions held on the nodes (one per channel and node).
    pub upstream: usize,
    /// Upstream links connected.
    pub links: usize,
}

#[derive(Default)]
struct State {
    subs: HashMap<Key, HashMap<u64, Arc<Subscriber>>>,
    links: HashMap<String, Arc<Link>>,
    /// The node classic channels and patterns are subscribed on (and PUBLISH goes to).
    designated: Option<String>,
}

pub struct Hub {
    state: Mutex<State>,
    cell: Arc<TopologyCell>,
    backends: Arc<Backends>,
    settings: LinkSettings,
    limit: Limit,
    stop: CancellationToken,
    /// Wakes the follower: something suggests subscriptions belong elsewhere now.
    dirty: Notify,
    pub stats: HubStats,
    /// The hub itself, for the link tasks it starts (they stop with `stop`).
    me: Weak<Hub>,
}

impl Hub {
    pub fn new(
        cell: Arc<TopologyCell>,
        backends: Arc<Backends>,
        settings: LinkSettings,
        limit: Limit,
        stop: CancellationToken,
    ) -> Arc<Hub> {
        Arc::new_cyclic(|me| Hub {
            me: me.clone(),
            state: Mutex::new(State::default()),
            cell,
            backends,
            settings,
            limit,
            stop,
            dirty: Notify::new(),
            stats: HubStats::default(),
        })
    }

    /// Starts the task that follows the slot map and the links.
    pub fn start(self: &Arc<Hub>) {
        tokio::spawn(self.clone().follow());
    }

    /// Subscribes a client to `names` of `kind`; the client's confirmations, which wait for
    /// the nodes' confirmations of the subscriptions this made new.
    pub fn subscribe(
        &self,
        c: &mut ClientSubs,
        id: u64,
        proto: Proto,
        kind: Kind,
        names: impl Iterator<Item = Bytes>,
    ) -> Answer {
        let mut answer = Answer::default();
        let (out, waits) = (&mut answer.reply, &mut answer.waits);
        let sub = c.handle(id, proto);
        let topo = self.cell.load();
        let mut st = self.state.lock();
        for name in names {
            if c.set(kind).insert(name.clone()) {
                let key = (kind, name.clone());
                let entry = st.subs.entry(key.clone()).or_default();
                entry.insert(id, sub.clone());
                let targets = match &topo {
                    Some(t) => self.targets(&mut st, t, &key),
                    None => Vec::new(),
                };
                for addr in targets {
                    let l = self.link(&mut st, &addr);
                    if let Some(w) = l.want(&key) {
                        waits.push(w);
                    }
                }
            }
            confirmation(out, proto, kind, true, Some(&name), c.count_for(kind));
        }
        answer
    }

    /// Unsubscribes a client from `names` (all of `kind` when `None`); its confirmations,
    /// which wait for the nodes' answers to the unsubscribes this made (after them, PUBLISH
    /// no longer counts this proxy's subscription).
    pub fn unsubscribe(
        &self,
        c: &mut ClientSubs,
        proto: Proto,
        kind: Kind,
        names: Option<Vec<Bytes>>,
    ) -> Answer {
        let mut answer = Answer::default();
        let (out, waits) = (&mut answer.reply, &mut answer.waits);
        let id = c.handle.as_ref().map(|h| h.id);
        let mut st = self.state.lock();
        match names {
            Some(names) => {
                for name in names {
                    if c.set(kind).remove(&name)
                        && let Some(id) = id
                    {
                        self.forget(&mut st, id, (kind, name.clone()), waits);
                    }
                    confirmation(out, proto, kind, false, Some(&name), c.count_for(kind));
                }
            }
            None => {
                let all = std::mem::take(c.set(kind));
                if all.is_empty() {
                    confirmation(out, proto, kind, false, None, c.count_for(kind));
                }
                let after = c.count_for(kind);
                let n = all.len();
                // Each confirmation carries the count left after it, as Redis drops them one
                // by one.
                for (i, name) in all.into_iter().enumerate() {
                    if let Some(id) = id {
                        self.forget(&mut st, id, (kind, name.clone()), waits);
                    }
                    confirmation(out, proto, kind, false, Some(&name), after + (n - 1 - i));
                }
            }
        }
        answer
    }

    /// The client is gone (or RESET): every subscription dropped, without confirmations.
    pub fn remove_client(&self, c: &mut ClientSubs) {
        if let Some(h) = c.handle.take() {
            let mut st = self.state.lock();
            for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
                for name in std::mem::take(c.set(kind)) {
                    self.forget(&mut st, h.id, (kind, name), &mut Vec::new());
                }
            }
        }
        c.rx = None;
        c.unconfirmed = 0;
    }

    fn forget(&self, st: &mut State, id: u64, key: Key, waits: &mut Vec<oneshot::Receiver<()>>) {
        let Some(entry) = st.subs.get_mut(&key) else {
            return;
        };
        entry.remove(&id);
        if entry.is_empty() {
            st.subs.remove(&key);
            for l in st.links.values() {
                waits.extend(l.unwant(&key));
            }
        }
    }

    /// Where PUBLISH goes: the designated node, whose subscribers (this hub's included) see
    /// it in the static split too; in a cluster it reaches every node anyway.
    pub fn publish_target(&self, topo: &Topology) -> Option<Arc<Backend>> {
        let mut st = self.state.lock();
        let addr = self.designate(&mut st, topo)?;
        topo.backends.iter().find(|b| b.addr == addr).cloned()
    }

    /// For PUBSUB NUMSUB / SHARDNUMSUB / NUMPAT: (this proxy's clients of `key`, nodes that
    /// hold `key` for this proxy).
    pub fn counts(&self, key: &Key) -> (usize, usize) {
        let st = self.state.lock();
        let local = st.subs.get(key).map_or(0, HashMap::len);
        let held = st.links.values().filter(|l| l.holds(key)).count();
        (local, held)
    }

    /// For PUBSUB NUMPAT: (this proxy's distinct patterns, pattern subscriptions its links
    /// hold).
    pub fn pattern_counts(&self) -> (usize, usize) {
        let st = self.state.lock();
        let local = st.subs.keys().filter(|k| k.0 == Kind::Pattern).count();
        let held = st
            .subs
            .keys()
            .filter(|k| k.0 == Kind::Pattern)
            .map(|k| st.links.values().filter(|l| l.holds(k)).count())
            .sum();
        (local, held)
    }

    /// What the hub holds now (INFO, metrics).
    pub fn gauges(&self) -> Gauges {
        let st = self.state.lock();
        let mut g = Gauges::default();
        for (key, subs) in &st.subs {
            match key.0 {
                Kind::Channel => g.channels += 1,
                Kind::Pattern => g.patterns += 1,
                Kind::Shard => g.shard_channels += 1,
            }
            g.local += subs.len();
        }
        let mut clients = HashSet::new();
        for subs in st.subs.values() {
            clients.extend(subs.keys().copied());
        }
        g.subscribers = clients.len();
        for l in st.links.values() {
            g.upstream += l.held();
            if l.up.load(Relaxed) {
                g.links += 1;
            }
        }
        g
    }

    /// A message from node `from`, for subscribers of `(kind, name)`; `raw` is the node's RESP2
    /// frame, which is what a RESP2 client gets.
    pub(super) fn deliver(&self, from: &str, kind: Kind, name: &Bytes, channel: &[u8], raw: Bytes) {
        let st = self.state.lock();
        // Only the designated node's classic messages are passed on; other nodes contribute
        // their keyspace notifications (a PUBLISH in a cluster reaches them all).
        if kind != Kind::Shard
            && st.designated.as_deref() != Some(from)
            && !is_keyspace_channel(channel)
        {
            return;
        }
        let Some(entry) = st.subs.get(&(kind, name.clone())) else {
            self.stats.received.fetch_add(1, Relaxed);
            return;
        };
        let mut resp3: Option<Bytes> = None;
        let now = Instant::now();
        let mut n = 0u64;
        for sub in entry.values() {
            let msg = if sub.resp3() {
                resp3
                    .get_or_insert_with(|| {
                        let mut b = BytesMut::with_capacity(raw.len());
                        b.put_u8(b'>');
                        b.put_slice(raw.get(1..).unwrap_or_default());
                        b.freeze()
                    })
                    .clone()
            } else {
                raw.clone()
            };
            if sub.push(msg, self.limit, now) {
                n += 1;
            } else if !sub.kill.is_cancelled() {
                sub.kill.cancel();
                self.stats.slow_dropped.fetch_add(1, Relaxed);
                tracing::warn!(
                    client = sub.id,
                    queued = sub.queued(),
                    "closing subscriber that overcame its output buffer limits (client-output-buffer-limit pubsub)"
                );
            }
        }
        self.stats.fanned_out.fetch_add(n, Relaxed);
        // Counted once queued: whoever saw the count grow finds the message in the queues.
        self.stats.received.fetch_add(1, Relaxed);
    }

    /// A link failed or came back: the designated node may change.
    pub(super) fn link_trouble(&self) {
        self.dirty.notify_one();
    }

    /// A node dropped a shard channel (its slot moved): the map is refreshed and the channel
    /// subscribed again where the slot went.
    pub(super) fn slot_moved(&self) {
        self.cell.request_refresh();
        self.dirty.notify_one();
    }

    /// A node refused a subscription: a `-MOVED` updates the map at once; anything else is
    /// retried after a refresh.
    pub(super) fn refused(&self, error: &str) {
        let mut words = error.split_whitespace();
        if words.next() == Some("MOVED")
            && let (Some(slot), Some(addr)) = (words.next(), words.next())
            && let Some(slot) = slot.parse::<u16>().ok().and_then(Slot::new)
        {
            self.cell.moved(slot, addr, &self.backends);
            self.dirty.notify_one();
            return;
        }
        self.cell.request_refresh();
    }

    fn link(&self, st: &mut State, addr: &str) -> Arc<Link> {
        if let Some(l) = st.links.get(addr) {
            return l.clone();
        }
        let l = Link::new(addr.to_string(), self.stop.child_token());
        st.links.insert(addr.to_string(), l.clone());
        if let Some(hub) = self.me.upgrade() {
            tokio::spawn(link::run(hub, l.clone(), self.settings.clone()));
        }
        l
    }

    /// The node classic subscriptions live on: kept while it is in the map, not down and its
    /// link not failing; else the first node that is.
    fn designate(&self, st: &mut State, topo: &Topology) -> Option<String> {
        let usable = |b: &Backend| {
            b.state() != BackendState::Down
                && st
                    .links
                    .get(&b.addr)
                    .is_none_or(|l| l.failures.load(Relaxed) < FAILURES_TO_REPLACE)
        };
        if let Some(d) = &st.designated
            && topo.backends.iter().any(|b| &b.addr == d && usable(b))
        {
            return Some(d.clone());
        }
        let pick = topo
            .backends
            .iter()
            .find(|b| usable(b))
            .or_else(|| topo.backends.first())
            .map(|b| b.addr.clone());
        if pick != st.designated {
            tracing::info!(node = ?pick, was = ?st.designated, "pub/sub designated node");
        }
        st.designated = pick.clone();
        pick
    }

    /// The nodes `key` is subscribed on.
    fn targets(&self, st: &mut State, topo: &Topology, key: &Key) -> Vec<String> {
        let (kind, name) = key;
        if *kind == Kind::Shard {
            return topo
                .owner(Slot::for_key(name))
                .map(|b| vec![b.addr.clone()])
                .unwrap_or_default();
        }
        if every_node(*kind, name) {
            return topo.backends.iter().map(|b| b.addr.clone()).collect();
        }
        self.designate(st, topo).into_iter().collect()
    }

    /// Where every subscription belongs now; each link is told, links no longer needed stop.
    fn recompute(&self, st: &mut State, topo: &Topology) {
        self.stats.recomputes.fetch_add(1, Relaxed);
        let keys: Vec<Key> = st.subs.keys().cloned().collect();
        let mut wanted: HashMap<String, HashSet<Key>> = HashMap::new();
        for key in keys {
            for addr in self.targets(st, topo, &key) {
                wanted.entry(addr).or_default().insert(key.clone());
            }
        }
        let gone: Vec<String> = st
            .links
            .keys()
            .filter(|a| !wanted.contains_key(*a))
            .cloned()
            .collect();
        for a in gone {
            if let Some(l) = st.links.remove(&a) {
                l.set_wanted(HashSet::new());
                l.stop.cancel();
            }
        }
        for (addr, keys) in wanted {
            self.link(st, &addr).set_wanted(keys);
        }
    }

    async fn follow(self: Arc<Hub>) {
        let mut seen: Option<(u64, Option<String>)> = None;
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tick.tick() => false,
                _ = self.dirty.notified() => true,
            };
            let Some(topo) = self.cell.load() else {
                continue;
            };
            let mut st = self.state.lock();
            let d = self.designate(&mut st, &topo);
            let now = (topo.epoch, d);
            if !forced && seen.as_ref() == Some(&now) {
                continue;
            }
            seen = Some(now);
            self.recompute(&mut st, &topo);
        }
        for l in self.state.lock().links.values() {
            l.stop.cancel();
        }
    }
}

/// `subscribe <name> <count>` and the rest, as Redis writes them: RESP3 pushes, RESP2 arrays.
fn confirmation(
    out: &mut BytesMut,
    proto: Proto,
    kind: Kind,
    subscribe: bool,
    name: Option<&[u8]>,
    count: usize,
) {
    let head = if proto == Proto::Resp3 { b'>' } else { b'*' };
    membership::resp::put_len(out, head, 3);
    let word = kind.confirmation(subscribe);
    membership::resp::put_len(out, b'$', word.len());
    out.put_slice(word.as_bytes());
    out.put_slice(b"\r\n");
    match name {
        Some(n) => {
            membership::resp::put_len(out, b'$', n.len());
            out.put_slice(n);
            out.put_slice(b"\r\n");
        }
        None if proto == Proto::Resp3 => out.put_slice(b"_\r\n"),
        None => out.put_slice(b"$-1\r\n"),
    }
    membership::resp::put_len(out, b':', count);
}
