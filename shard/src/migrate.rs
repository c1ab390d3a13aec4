//! Online slot migration between cluster nodes.
//!
//! The source (the slot's owner) moves a range of slots to a destination over one QUIC
//! stream of the cluster transport (mutually authenticated by the cluster secret), batch by
//! batch, like Redis's MIGRATE: a batch's keys are taken *out* of the store (both tiers) into
//! an in-flight set, sent, installed by the destination, acknowledged, and forgotten. So a key
//! is always in exactly one place: in the source's store, in flight (clients get `-TRYAGAIN`),
//! or at the destination (clients get `-ASK`, and the destination serves them after `ASKING`).
//! When the range is empty the source claims it for the destination at a new epoch; from then
//! on the source answers `-MOVED`.
//!
//! Per slot, a *gate* (read-write lock) orders the source's batch extraction against the
//! commands of the slot: a command holds the read side from its routing decision to its end,
//! so no command can decide "local" and then find its key gone, or create a key the source
//! already gave away.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use membership::swim::{AgentHandle, ClusterView, MemberState, NodeId, QuicStreams};
use membership::{SLOT_COUNT, Slot};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::cluster::{Presence, SlotState};
use crate::server::Shared;
use crate::store::{Db, Key, Taken, Value, WarmMeta};
use crate::value::{Record, codec};

/// Most keys per batch.
pub const BATCH_KEYS: usize = 512;
/// Batches close once they hold this many accounted bytes (a single larger key still goes).
pub const BATCH_BYTES: usize = 1 << 20;
/// Slots moved per step when rebalancing automatically: each step is one stream and one
/// claim, so the slot table stays a few dozen ranges even after big rebalances.
pub const AUTO_STEP_SLOTS: u16 = 256;
/// Largest frame accepted from a peer.
const MAX_FRAME: usize = 1 << 30;
/// Pause between attempts to reach a destination that is still alive.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long the source waits for its own view to show a claim it made.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

const STATE_STABLE: u8 = 0;
const STATE_MIGRATING: u8 = 1;
const STATE_IMPORTING: u8 = 2;

const FRAME_BEGIN: u8 = 1;
const FRAME_BATCH: u8 = 2;
const FRAME_DONE: u8 = 3;
const REPLY_OK: u8 = 0;
const REPLY_REFUSED: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("the destination refused: {0}")]
    Refused(String),
    #[error("bad frame from peer: {0}")]
    Frame(&'static str),
    #[error("warm tier: {0}")]
    Warm(String),
    #[error("{0}")]
    Aborted(String),
}

fn io(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Transport(e.to_string())
}

/// A range migration the source is running: where to, and which keys are in transfer.
struct Outgoing {
    to: NodeId,
    in_flight: HashSet<Key>,
}

struct Incoming {
    from: NodeId,
    /// The source's migration id (a retried stream of the same migration keeps its keys).
    id: u64,
}

#[derive(Default)]
struct Inner {
    outgoing: HashMap<u16, Outgoing>,
    incoming: HashMap<u16, Incoming>,
}

/// Counters for CLUSTER INFO and INFO cluster.
#[derive(Default)]
pub struct MigrationStats {
    pub keys_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub keys_received: AtomicU64,
    pub slots_moved: AtomicU64,
    pub ranges_done: AtomicU64,
    pub ranges_failed: AtomicU64,
}

/// An operator's request (CLUSTER MIGRATE), run by the source's migration worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub first: u16,
    pub last: u16,
    pub to: NodeId,
}

/// Per-slot migration state, read on every keyed command in cluster mode.
pub struct Migrations {
    states: Box<[AtomicU8]>,
    gates: Box<[RwLock<()>]>,
    inner: Mutex<Inner>,
    pub stats: MigrationStats,
    jobs: mpsc::Sender<Job>,
}

impl Migrations {
    pub fn new() -> (Migrations, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(64);
        (
            Migrations {
                states: (0..SLOT_COUNT).map(|_| AtomicU8::new(0)).collect(),
                gates: (0..SLOT_COUNT).map(|_| RwLock::new(())).collect(),
                inner: Mutex::new(Inner::default()),
                stats: MigrationStats::default(),
                jobs,
            },
            rx,
        )
    }

    /// Held by a command from its routing decision to its end.
    pub fn gate(&self, slot: Slot) -> RwLockReadGuard<'_, ()> {
        self.gates[slot.index()].read()
    }

    /// The slot's state: one atomic load for the (usual) stable slot.
    pub fn state(&self, slot: Slot) -> SlotState {
        match self.states[slot.index()].load(Ordering::Acquire) {
            STATE_STABLE => SlotState::Stable,
            _ => {
                let inner = self.inner.lock();
                if let Some(o) = inner.outgoing.get(&slot.get()) {
                    SlotState::Migrating { to: o.to }
                } else if let Some(i) = inner.incoming.get(&slot.get()) {
                    SlotState::Importing { from: i.from }
                } else {
                    SlotState::Stable
                }
            }
        }
    }

    /// Where `keys` (all of `slot`) are: here, in transfer, or not here.
    pub fn presence<'k>(
        &self,
        db: &Db,
        slot: Slot,
        keys: impl Iterator<Item = &'k [u8]>,
        now: u64,
    ) -> Presence {
        let mut p = Presence::default();
        for k in keys {
            if db.has_key(k, now) {
                p.present += 1;
            } else if self
                .inner
                .lock()
                .outgoing
                .get(&slot.get())
                .is_some_and(|o| o.in_flight.contains(k))
            {
                p.in_flight += 1;
            } else {
                p.missing += 1;
            }
        }
        p
    }

    /// Slots this node is moving out / taking in right now.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.outgoing.len(), inner.incoming.len())
    }

    /// Slots in transfer, in slot order: (slot, outgoing, the other node).
    pub fn open_slots(&self) -> Vec<(u16, bool, NodeId)> {
        let inner = self.inner.lock();
        let mut v: Vec<(u16, bool, NodeId)> = inner
            .outgoing
            .iter()
            .map(|(s, o)| (*s, true, o.to))
            .chain(inner.incoming.iter().map(|(s, i)| (*s, false, i.from)))
            .collect();
        v.sort_unstable_by_key(|(s, out, _)| (*s, !*out));
        v
    }

    /// Queues an operator's migration for the worker.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.jobs
            .try_send(job)
            .map_err(|_| "too many migrations queued; retry later".to_string())
    }

    fn set_state(&self, slot: u16, state: u8) {
        if let Some(s) = self.states.get(usize::from(slot)) {
            s.store(state, Ordering::Release);
        }
    }

    fn begin_outgoing(&self, first: u16, last: u16, to: NodeId) {
        let mut inner = self.inner.lock();
        for s in first..=last {
            inner.outgoing.insert(
                s,
                Outgoing {
                    to,
                    in_flight: HashSet::new(),
                },
            );
            self.set_state(s, STATE_MIGRATING);
        }
    }

    /// Ends the source's side of a range (after the flip or an abort), each slot under its
    /// gate so that no command decides on a state that is changing.
    fn end_outgoing(&self, first: u16, last: u16) {
        for s in first..=last {
            let Some(slot) = Slot::new(s) else { continue };
            let _gate = self.gates[slot.index()].write();
            let mut inner = self.inner.lock();
            inner.outgoing.remove(&s);
            let state = if inner.incoming.contains_key(&s) {
                STATE_IMPORTING
            } else {
                STATE_STABLE
            };
            self.set_state(s, state);
        }
    }

    /// Starts (or, for a retried stream of the same migration, continues) importing the
    /// range. Keys this node still holds for a slot it does not own come from an abandoned
    /// migration and are dropped first: the source's copy is the current one.
    fn begin_incoming(&self, db: &Db, first: u16, last: u16, from: NodeId, id: u64) {
        for s in first..=last {
            let Some(slot) = Slot::new(s) else { continue };
            let _gate = self.gates[slot.index()].write();
            let mut inner = self.inner.lock();
            let same = inner
                .incoming
                .get(&s)
                .is_some_and(|i| i.from == from && i.id == id);
            if same {
                continue;
            }
            inner.incoming.insert(s, Incoming { from, id });
            if !inner.outgoing.contains_key(&s) {
                self.set_state(s, STATE_IMPORTING);
            }
            drop(inner);
            if db.count_in_slot(slot) > 0 {
                let n = db.drop_slot(slot);
                debug!(slot = s, keys = n, "dropped keys of an abandoned import");
            }
        }
    }

    fn importing_from(&self, slot: u16) -> Option<NodeId> {
        self.inner.lock().incoming.get(&slot).map(|i| i.from)
    }

    fn incoming_slots(&self) -> Vec<(u16, NodeId)> {
        self.inner
            .lock()
            .incoming
            .iter()
            .map(|(s, i)| (*s, i.from))
            .collect()
    }

    fn end_incoming(&self, slot: u16) {
        let mut inner = self.inner.lock();
        inner.incoming.remove(&slot);
        if !inner.outgoing.contains_key(&slot) {
            self.set_state(slot, STATE_STABLE);
        }
    }

    /// Takes up to a batch of keys out of the range's slots, from `cursor` on, recording them
    /// as in flight. Returns the slot batches taken.
    fn take_batch(&self, db: &Db, first: u16, last: u16, now: u64) -> Vec<(Slot, Taken)> {
        let (mut keys, mut bytes) = (0usize, 0usize);
        let mut out = Vec::new();
        for s in first..=last {
            if keys >= BATCH_KEYS || bytes >= BATCH_BYTES {
                break;
            }
            let Some(slot) = Slot::new(s) else { continue };
            if db.count_in_slot(slot) == 0 {
                continue;
            }
            let _gate = self.gates[slot.index()].write();
            let taken = db.take_for_migration(slot, BATCH_KEYS - keys, BATCH_BYTES - bytes, now);
            if taken.is_empty() {
                continue;
            }
            keys += taken.len();
            bytes += taken.bytes;
            if let Some(o) = self.inner.lock().outgoing.get_mut(&s) {
                o.in_flight
                    .extend(taken.ram.iter().map(|(k, _, _)| k.clone()));
                o.in_flight
                    .extend(taken.warm.iter().map(|(k, _)| k.clone()));
            }
            out.push((slot, taken));
        }
        out
    }

    fn clear_in_flight(&self, first: u16, last: u16) {
        let mut inner = self.inner.lock();
        for s in first..=last {
            if let Some(o) = inner.outgoing.get_mut(&s) {
                o.in_flight.clear();
            }
        }
    }
}

// ---- wire format ----
//
// Frames, source → destination: `u32 length`, `u8 type`, body:
// * BEGIN: source node id (20 bytes), first slot (u16), last slot (u16);
// * BATCH: record count (u32), then per record: slot (u16), key length (u32), key, record
//   length (u32), record (the warm tier's encoding: expiry in Unix ms, type, value);
// * DONE: first slot, last slot (the range was claimed for the destination).
// Replies, destination → source: `u8 status`, `u32 count` (keys installed), `u16 length`,
// message.

/// One key in transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub slot: Slot,
    pub key: Key,
    pub value: Value,
    pub expire_at: u64,
}

pub fn encode_begin(from: &NodeId, id: u64, first: u16, last: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(37);
    b.extend_from_slice(&33u32.to_be_bytes());
    b.push(FRAME_BEGIN);
    b.extend_from_slice(&from.0);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b
}

pub fn encode_done(first: u16, last: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(9);
    b.extend_from_slice(&5u32.to_be_bytes());
    b.push(FRAME_DONE);
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b
}

pub fn encode_batch(items: &[Item]) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    b.push(FRAME_BATCH);
    b.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for it in items {
        b.extend_from_slice(&it.slot.get().to_be_bytes());
        b.extend_from_slice(&(it.key.len() as u32).to_be_bytes());
        b.extend_from_slice(&it.key);
        b.extend_from_slice(&(codec::encoded_len(&it.value) as u32).to_be_bytes());
        codec::encode_into(&mut b, 0, it.expire_at, &it.value);
    }
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// A decoded frame body.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Begin {
        from: NodeId,
        id: u64,
        first: u16,
        last: u16,
    },
    Batch(Vec<Item>),
    Done {
        first: u16,
        last: u16,
    },
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MigrateError> {
        if self.0.len() < n {
            return Err(MigrateError::Frame("truncated"));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u16(&mut self) -> Result<u16, MigrateError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, MigrateError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn slot_of(n: u16) -> Result<Slot, MigrateError> {
    Slot::new(n).ok_or(MigrateError::Frame("slot out of range"))
}

/// Decodes a frame body (after its length prefix).
pub fn decode_frame(body: &[u8]) -> Result<Frame, MigrateError> {
    let mut c = Cursor(body);
    let kind = c.take(1)?[0];
    let frame = match kind {
        FRAME_BEGIN => {
            let mut id = [0u8; 20];
            id.copy_from_slice(c.take(20)?);
            let mid = c.take(8)?;
            let mid = u64::from_be_bytes([
                mid[0], mid[1], mid[2], mid[3], mid[4], mid[5], mid[6], mid[7],
            ]);
            let (first, last) = (c.u16()?, c.u16()?);
            slot_of(first)?;
            slot_of(last)?;
            if first > last {
                return Err(MigrateError::Frame("empty range"));
            }
            Frame::Begin {
                from: NodeId(id),
                id: mid,
                first,
                last,
            }
        }
        FRAME_BATCH => {
            let n = c.u32()? as usize;
            let mut items = Vec::with_capacity(n.min(BATCH_KEYS * 4));
            for _ in 0..n {
                let slot = slot_of(c.u16()?)?;
                let klen = c.u32()? as usize;
                let key = Key::from_slice(c.take(klen)?);
                if Slot::for_key(&key) != slot {
                    return Err(MigrateError::Frame("key is not in its slot"));
                }
                let rlen = c.u32()? as usize;
                let rec: Record =
                    codec::decode(c.take(rlen)?).map_err(|_| MigrateError::Frame("bad record"))?;
                items.push(Item {
                    slot,
                    key,
                    value: rec.value,
                    expire_at: rec.expire_at,
                });
            }
            Frame::Batch(items)
        }
        FRAME_DONE => Frame::Done {
            first: c.u16()?,
            last: c.u16()?,
        },
        _ => return Err(MigrateError::Frame("unknown frame type")),
    };
    if !c.0.is_empty() {
        return Err(MigrateError::Frame("trailing bytes"));
    }
    Ok(frame)
}

async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<Frame>, MigrateError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(_) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(MigrateError::Frame("frame length"));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(io)?;
    decode_frame(&body).map(Some)
}

async fn write_reply(
    send: &mut quinn::SendStream,
    status: u8,
    count: u32,
    msg: &str,
) -> Result<(), MigrateError> {
    let msg = &msg.as_bytes()[..msg.len().min(1024)];
    let mut b = Vec::with_capacity(7 + msg.len());
    b.push(status);
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    b.extend_from_slice(msg);
    send.write_all(&b).await.map_err(io)
}

async fn read_reply(recv: &mut quinn::RecvStream) -> Result<u32, MigrateError> {
    let mut h = [0u8; 7];
    recv.read_exact(&mut h).await.map_err(io)?;
    let count = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes([h[5], h[6]]))];
    recv.read_exact(&mut msg).await.map_err(io)?;
    match h[0] {
        REPLY_OK => Ok(count),
        _ => Err(MigrateError::Refused(
            String::from_utf8_lossy(&msg).into_owned(),
        )),
    }
}

// ---- the cluster-side context shared by the tasks below ----

/// What the migration tasks need.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub handle: AgentHandle,
    pub me: NodeId,
    pub streams: QuicStreams,
    pub migrations: Arc<Migrations>,
    /// Whether this node migrates the agent's balancing plan by itself.
    pub auto: bool,
}

impl Ctx {
    fn now(&self) -> u64 {
        self.shared.clock.now_ms()
    }
}

/// One open transfer stream to a destination.
struct Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

async fn open(
    ctx: &Ctx,
    peer: SocketAddr,
    id: u64,
    first: u16,
    last: u16,
) -> Result<Stream, MigrateError> {
    let (mut send, mut recv) = ctx.streams.open_stream(peer).await.map_err(io)?;
    send.write_all(&encode_begin(&ctx.me, id, first, last))
        .await
        .map_err(io)?;
    read_reply(&mut recv).await?;
    Ok(Stream { send, recv })
}

async fn exchange(s: &mut Stream, frame: &[u8]) -> Result<u32, MigrateError> {
    s.send.write_all(frame).await.map_err(io)?;
    read_reply(&mut s.recv).await
}

/// Whether the source must give up on the range: the destination is down or gone (its keys
/// are lost with it, as with any node failure), this node no longer owns the range, or it is
/// stopping. A destination that is alive is never given up on once keys went to it:
/// abandoning the range would leave those keys invisible.
fn give_up(ctx: &Ctx, first: u16, last: u16, to: &NodeId) -> Option<String> {
    if ctx.shared.shutdown.is_cancelled() {
        return Some("shutting down".into());
    }
    let view = ctx.handle.load();
    if matches!(view.state_of(to), Some(MemberState::Down) | None) {
        return Some(format!("destination {to} is down"));
    }
    let lost = (first..=last)
        .any(|s| Slot::new(s).is_some_and(|slot| view.slots.owner_id(slot) != Some(ctx.me)));
    lost.then(|| "this node no longer owns the range".into())
}

/// Moves `first..=last` (all owned by this node) with their keys to `to`, then claims the
/// range for it. On failure the keys in flight go back into the store and the range stays here.
pub async fn migrate_range(
    ctx: &Ctx,
    first: u16,
    last: u16,
    to: NodeId,
) -> Result<u64, MigrateError> {
    let view = ctx.handle.view();
    if to == ctx.me {
        return Err(MigrateError::Aborted("the destination is this node".into()));
    }
    let peer = view
        .slots
        .node(&to)
        .map(|n| n.cluster_addr)
        .or_else(|| view.members.get(&to).map(|m| m.info.cluster_addr))
        .ok_or_else(|| MigrateError::Aborted(format!("unknown node {to}")))?;
    for s in first..=last {
        let owned = Slot::new(s).is_some_and(|slot| view.slots.owner_id(slot) == Some(ctx.me));
        if !owned {
            return Err(MigrateError::Aborted(format!(
                "slot {s} is not owned by this node"
            )));
        }
    }
    let m = &ctx.migrations;
    m.begin_outgoing(first, last, to);
    let started = std::time::Instant::now();
    let r = match transfer(ctx, peer, first, last, to).await {
        Ok(keys) => flip(ctx, first, last, to).await.map(|()| keys),
        Err(e) => Err(e),
    };
    m.end_outgoing(first, last);
    match &r {
        Ok(keys) => {
            m.stats.ranges_done.fetch_add(1, Ordering::Relaxed);
            m.stats
                .slots_moved
                .fetch_add(u64::from(last - first) + 1, Ordering::Relaxed);
            info!(first, last, to = %to, keys, ms = started.elapsed().as_millis() as u64, "slots migrated");
        }
        Err(e) => {
            m.stats.ranges_failed.fetch_add(1, Ordering::Relaxed);
            warn!(first, last, to = %to, "slot migration stopped: {e}");
        }
    }
    r
}

/// Streams the range's keys; returns how many moved.
async fn transfer(
    ctx: &Ctx,
    peer: SocketAddr,
    first: u16,
    last: u16,
    to: NodeId,
) -> Result<u64, MigrateError> {
    let (db, m) = (&ctx.shared.db, &ctx.migrations);
    // Names this migration to the destination: a BEGIN with a new id for slots it was
    // importing from an abandoned migration makes it drop those stale keys first.
    let id = fastrand::u64(..);
    let mut stream: Option<Stream> = None;
    let mut sent_any = false;
    let mut moved = 0u64;
    loop {
        let taken = m.take_batch(db, first, last, ctx.now());
        if taken.is_empty() {
            break;
        }
        let items = match read_items(ctx, taken).await {
            Ok(items) => items,
            Err(e) => {
                // The keys are back in place; try again after a pause.
                m.clear_in_flight(first, last);
                warn!(first, last, "migration could not read the warm tier: {e}");
                if let Some(why) = give_up(ctx, first, last, &to) {
                    return Err(MigrateError::Aborted(why));
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        let bytes: u64 = items
            .iter()
            .map(|i| (i.key.len() + i.value.payload_bytes()) as u64)
            .sum();
        let frame = encode_batch(&items);
        // Retried until acknowledged or the destination is gone: installing is idempotent
        // (the destination keeps a key it already has), and while the keys are in flight no
        // client can change them, so a resent batch carries the same values.
        loop {
            let r = match stream.as_mut() {
                Some(s) => {
                    sent_any = true;
                    exchange(s, &frame).await
                }
                None => match open(ctx, peer, id, first, last).await {
                    Ok(mut s) => {
                        sent_any = true;
                        let r = exchange(&mut s, &frame).await;
                        stream = Some(s);
                        r
                    }
                    Err(e) => Err(e),
                },
            };
            let Err(e) = r else { break };
            stream = None;
            let refused_at_start = !sent_any && matches!(e, MigrateError::Refused(_));
            let why =
                give_up(ctx, first, last, &to).or_else(|| refused_at_start.then(|| e.to_string()));
            if let Some(why) = why {
                put_back(ctx, items);
                m.clear_in_flight(first, last);
                return Err(MigrateError::Aborted(why));
            }
            debug!(to = %to, "migration batch not acknowledged, retrying: {e}");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        moved += items.len() as u64;
        m.clear_in_flight(first, last);
        m.stats
            .keys_sent
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        m.stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }
    if let Some(mut s) = stream {
        // Best effort: the destination learns the outcome from the claim anyway.
        let _ = exchange(&mut s, &encode_done(first, last)).await;
        let _ = s.send.finish();
    }
    Ok(moved)
}

/// Turns taken keys into items, reading warm ones off the async workers.
async fn read_items(ctx: &Ctx, taken: Vec<(Slot, Taken)>) -> Result<Vec<Item>, MigrateError> {
    let mut items = Vec::new();
    let mut warm: Vec<(Slot, Vec<(Key, WarmMeta)>)> = Vec::new();
    for (slot, t) in taken {
        items.extend(t.ram.into_iter().map(|(key, value, expire_at)| Item {
            slot,
            key,
            value,
            expire_at,
        }));
        if !t.warm.is_empty() {
            warm.push((slot, t.warm));
        }
    }
    if warm.is_empty() {
        return Ok(items);
    }
    let shared = ctx.shared.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (slot, keys) in &warm {
            match shared.db.read_taken_warm(*slot, keys) {
                Ok(recs) => out.push(recs),
                Err(e) => return (warm, Err(e.to_string())),
            }
        }
        (warm, Ok(out))
    })
    .await
    .map_err(|e| MigrateError::Warm(e.to_string()))?;
    match read {
        (warm, Ok(recs)) => {
            for ((slot, keys), recs) in warm.iter().zip(recs) {
                for ((key, _), rec) in keys.iter().zip(recs) {
                    if let Some(rec) = rec {
                        items.push(Item {
                            slot: *slot,
                            key: key.clone(),
                            value: rec.value,
                            expire_at: rec.expire_at,
                        });
                    }
                }
                ctx.shared.db.forget_warm_records(*slot, keys);
            }
            Ok(items)
        }
        (warm, Err(e)) => {
            for (slot, keys) in warm {
                ctx.shared.db.restore_warm(slot, keys);
            }
            put_back(ctx, items);
            Err(MigrateError::Warm(e))
        }
    }
}

/// Returns keys to the store after a failed transfer (none of them can have changed: they
/// were in flight, so clients got TRYAGAIN).
fn put_back(ctx: &Ctx, items: Vec<Item>) {
    let now = ctx.now();
    for it in items {
        ctx.shared
            .db
            .install_if_absent(it.slot, &it.key, it.value, it.expire_at, now);
    }
}

/// Claims the (now empty) range for `to` and waits until this node's own view shows it, so
/// that leaving the migrating state can never route a command here as the owner.
async fn flip(ctx: &Ctx, first: u16, last: u16, to: NodeId) -> Result<(), MigrateError> {
    let me = ctx.me;
    // The range is empty here and every key is at the destination: the claim must happen, so
    // it is retried for as long as this node runs.
    loop {
        if ctx.handle.claim(first, last, to).await.is_ok() {
            let wait = ctx.handle.wait_for(move |v: &ClusterView| {
                (first..=last)
                    .all(|s| Slot::new(s).is_some_and(|s| v.slots.owner_id(s) != Some(me)))
            });
            if let Ok(Ok(_)) = tokio::time::timeout(CLAIM_WAIT, wait).await {
                return Ok(());
            }
        }
        if ctx.shared.shutdown.is_cancelled() {
            return Err(MigrateError::Aborted(
                "shutting down before the claim".into(),
            ));
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// The source's worker: operators' jobs first, then (in automatic mode) the agent's balancing
/// plan, one range at a time.
pub async fn run_source(ctx: Ctx, mut jobs: mpsc::Receiver<Job>) {
    let stop = ctx.shared.shutdown.clone();
    let mut views = ctx.handle.subscribe();
    loop {
        let job = match jobs.try_recv() {
            Ok(j) => Some(j),
            Err(_) if ctx.auto => next_auto_job(&ctx.handle.load(), &ctx.me),
            Err(_) => None,
        };
        if let Some(j) = job {
            let failed = migrate_range(&ctx, j.first, j.last, j.to).await.is_err();
            if failed {
                // Wait for membership to move on before trying again.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            j = jobs.recv() => match j {
                Some(j) => { let _ = migrate_range(&ctx, j.first, j.last, j.to).await; }
                None => return,
            },
            r = views.changed() => if r.is_err() { return },
        }
    }
}

/// The next step of the balancing plan this node is the source of: the top slots of its
/// first move that it still owns (the plan gives from the top, so the rest of the move stays
/// one range; the published plan may lag the steps already taken by up to a plan period).
pub fn next_auto_job(view: &ClusterView, me: &NodeId) -> Option<Job> {
    let mine = |s: u16| Slot::new(s).is_some_and(|slot| view.slots.owner_id(slot) == Some(*me));
    view.plan
        .iter()
        .filter(|m| m.from == Some(*me) && view.state_of(&m.to) == Some(MemberState::Alive))
        .find_map(|m| {
            let last = (m.first..=m.last).rev().find(|&s| mine(s))?;
            let mut first = last;
            while first > m.first && last - first + 1 < AUTO_STEP_SLOTS && mine(first - 1) {
                first -= 1;
            }
            Some(Job {
                first,
                last,
                to: m.to,
            })
        })
}

// ---- the destination ----

/// Accepts transfer streams from other members and serves each on its own task.
pub async fn run_destination(ctx: Ctx) {
    let stop = ctx.shared.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => return,
            s = ctx.streams.accept_stream() => match s {
                Some(s) => s,
                None => return,
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let peer = incoming.peer;
            if let Err(e) = serve_import(&ctx, incoming).await {
                debug!(%peer, "migration stream ended: {e}");
            }
        });
    }
}

async fn serve_import(ctx: &Ctx, s: membership::swim::IncomingStream) -> Result<(), MigrateError> {
    let (peer, mut send, mut recv) = (s.peer, s.send, s.recv);
    let mut source: Option<(NodeId, u16, u16)> = None;
    while let Some(frame) = read_frame(&mut recv).await? {
        match frame {
            Frame::Begin {
                from,
                id,
                first,
                last,
            } => match accept_begin(ctx, peer, from, id, first, last) {
                Ok(()) => {
                    source = Some((from, first, last));
                    write_reply(&mut send, REPLY_OK, 0, "").await?;
                }
                Err(why) => {
                    write_reply(&mut send, REPLY_REFUSED, 0, &why).await?;
                    return Err(MigrateError::Refused(why));
                }
            },
            Frame::Batch(items) => {
                let Some((from, first, last)) = source else {
                    write_reply(&mut send, REPLY_REFUSED, 0, "batch before begin").await?;
                    return Err(MigrateError::Frame("batch before begin"));
                };
                match install(ctx, from, first, last, items) {
                    Ok(n) => write_reply(&mut send, REPLY_OK, n, "").await?,
                    Err(why) => {
                        write_reply(&mut send, REPLY_REFUSED, 0, &why).await?;
                        return Err(MigrateError::Refused(why));
                    }
                }
            }
            Frame::Done { .. } => write_reply(&mut send, REPLY_OK, 0, "").await?,
        }
    }
    Ok(())
}

/// Accepts a range from `from` if it is a live member talking from its own cluster address
/// and owns the range in our view (or the range is already ours: a retried transfer).
fn accept_begin(
    ctx: &Ctx,
    peer: SocketAddr,
    from: NodeId,
    id: u64,
    first: u16,
    last: u16,
) -> Result<(), String> {
    let view = ctx.handle.load();
    let member = view
        .members
        .get(&from)
        .filter(|m| m.state != MemberState::Down)
        .ok_or_else(|| format!("{from} is not a live member"))?;
    if member.info.cluster_addr != peer {
        return Err(format!("{from} is not at {peer}"));
    }
    for s in first..=last {
        let owner = Slot::new(s).and_then(|slot| view.slots.owner_id(slot));
        if owner != Some(from) {
            return Err(format!("slot {s} is not owned by {from}"));
        }
    }
    ctx.migrations
        .begin_incoming(&ctx.shared.db, first, last, from, id);
    Ok(())
}

/// Installs a batch: each key unless this node already has a value for it.
fn install(
    ctx: &Ctx,
    from: NodeId,
    first: u16,
    last: u16,
    items: Vec<Item>,
) -> Result<u32, String> {
    let (db, m) = (&ctx.shared.db, &ctx.migrations);
    let now = ctx.now();
    let mut n = 0u32;
    for it in items {
        let s = it.slot.get();
        if s < first || s > last {
            return Err(format!("slot {s} is outside the range"));
        }
        let _gate = m.gate(it.slot);
        if m.importing_from(s) != Some(from) {
            return Err(format!("slot {s} is not being imported from {from}"));
        }
        n += u32::from(db.install_if_absent(it.slot, &it.key, it.value, it.expire_at, now));
    }
    m.stats
        .keys_received
        .fetch_add(u64::from(n), Ordering::Relaxed);
    // Migrated keys count against maxmemory like any write: demote or evict as configured.
    let _ = db.make_room(now);
    Ok(n)
}

// ---- keeping the store to the slots this node serves ----

/// On every new view (and once a second): ends imports that are decided (the slot is ours, or
/// the source is gone and the slot went elsewhere) and drops the keys of slots that belong to
/// other nodes and are not being imported.
pub async fn maintain(ctx: Ctx) {
    let stop = ctx.shared.shutdown.clone();
    let mut rx = ctx.handle.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let view: Arc<ClusterView> = rx.borrow_and_update().clone();
        settle(&ctx, &view);
        tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

fn settle(ctx: &Ctx, view: &ClusterView) {
    let (db, m, me) = (&ctx.shared.db, &ctx.migrations, ctx.me);
    for (s, from) in m.incoming_slots() {
        let Some(slot) = Slot::new(s) else { continue };
        let owner = view.slots.owner_id(slot);
        // Decided once the slot is ours (keep the keys) or went to a third node (drop them).
        // A dead source stays the owner until survivors take its slots over.
        if owner == Some(me) || owner != Some(from) {
            let _gate = m.gates[slot.index()].write();
            m.end_incoming(s);
        }
    }
    let mut dropped = 0usize;
    for slot in Slot::all() {
        if db.count_in_slot(slot) == 0 || view.slots.owner_id(slot).is_none_or(|o| o == me) {
            continue;
        }
        let _gate = m.gates[slot.index()].write();
        if matches!(m.state(slot), SlotState::Importing { .. }) {
            continue;
        }
        dropped += db.drop_slot(slot);
    }
    if dropped > 0 {
        info!(
            keys = dropped,
            "dropped keys of slots now owned by other nodes"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn item(key: &str, value: Value, expire_at: u64) -> Item {
        Item {
            slot: Slot::for_key(key.as_bytes()),
            key: Key::from_slice(key.as_bytes()),
            value,
            expire_at,
        }
    }

    #[test]
    fn frames_round_trip() {
        let mut h = crate::store::HashValue::default();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
        let items = vec![
            item("a", Value::Str(Bytes::from_static(b"1")), 0),
            item("{a}b", Value::Hash(Box::new(h)), 123),
            item("", Value::Str(Bytes::new()), 7),
        ];
        let b = encode_batch(&items);
        assert_eq!(
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len() - 4
        );
        assert_eq!(decode_frame(&b[4..]).expect("batch"), Frame::Batch(items));
        let id = NodeId([7; 20]);
        let b = encode_begin(&id, 99, 10, 20);
        assert_eq!(
            decode_frame(&b[4..]).expect("begin"),
            Frame::Begin {
                from: id,
                id: 99,
                first: 10,
                last: 20
            }
        );
        let b = encode_done(1, 2);
        assert_eq!(
            decode_frame(&b[4..]).expect("done"),
            Frame::Done { first: 1, last: 2 }
        );
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let good = encode_batch(&[item("k", Value::Str(Bytes::from_static(b"v")), 0)]);
        for cut in 0..good.len() - 4 {
            assert!(decode_frame(&good[4..4 + cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_slot = good.clone();
        wrong_slot[9] ^= 1;
        assert!(decode_frame(&wrong_slot[4..]).is_err());
        assert!(decode_frame(&[9]).is_err());
        let mut begin = encode_begin(&NodeId([1; 20]), 1, 5, 4);
        assert!(decode_frame(&begin[4..]).is_err(), "empty range");
        begin = encode_begin(&NodeId([1; 20]), 1, 0, 16384);
        assert!(decode_frame(&begin[4..]).is_err(), "slot out of range");
        let mut trailing = encode_done(1, 2);
        trailing.push(0);
        assert!(decode_frame(&trailing[4..]).is_err());
    }

    #[test]
    fn auto_jobs_take_the_top_of_this_nodes_first_move() {
        use membership::swim::{Claim, Member, Move, NodeInfo, SlotOwnership, SlotTable};
        use std::collections::BTreeMap;
        let info = |n: u8| NodeInfo {
            id: NodeId([n; 20]),
            client_addr: format!("127.0.0.1:{}", 7000 + u16::from(n)),
            cluster_addr: SocketAddr::from(([127, 0, 0, 1], 17000 + u16::from(n))),
        };
        let (a, b, c) = (info(1), info(2), info(3));
        let members = BTreeMap::from([
            (
                b.id,
                Member {
                    info: b.clone(),
                    state: MemberState::Alive,
                },
            ),
            (
                c.id,
                Member {
                    info: c.clone(),
                    state: MemberState::Down,
                },
            ),
        ]);
        let mut view = ClusterView {
            me: a.clone(),
            members,
            slots: Arc::new(SlotOwnership::new(
                SlotTable::from_claims(&[
                    Claim {
                        first: 0,
                        last: 16383,
                        owner: a.id,
                        epoch: 1,
                    },
                    // Already moved by an earlier step the plan does not show yet.
                    Claim {
                        first: 8900,
                        last: 8999,
                        owner: b.id,
                        epoch: 2,
                    },
                ]),
                HashMap::new(),
            )),
            plan: vec![
                Move {
                    first: 0,
                    last: 99,
                    from: Some(b.id),
                    to: a.id,
                },
                Move {
                    first: 5000,
                    last: 5999,
                    from: Some(a.id),
                    to: c.id,
                },
                Move {
                    first: 6000,
                    last: 6009,
                    from: Some(a.id),
                    to: b.id,
                },
            ],
            version: 1,
        };
        // The move to the down node is skipped; a short move is taken whole.
        assert_eq!(
            next_auto_job(&view, &a.id),
            Some(Job {
                first: 6000,
                last: 6009,
                to: b.id
            })
        );
        view.plan[2] = Move {
            first: 6000,
            last: 8999,
            from: Some(a.id),
            to: b.id,
        };
        assert_eq!(
            next_auto_job(&view, &a.id),
            Some(Job {
                first: 8900 - AUTO_STEP_SLOTS,
                last: 8899,
                to: b.id
            })
        );
        assert_eq!(next_auto_job(&view, &c.id), None);
    }
}
