//! The per-slot migration state every keyed command in cluster mode consults: a *gate* per
//! slot (read-write lock) ordering the source's batch extraction against the slot's commands,
//! the slot's state (stable, migrating, importing), and the keys in flight. A command holds the
//! read side from its routing decision to its end (`cmd::dispatch_cluster`), so no command
//! can decide "local" and then find its key gone, or create a key the source already gave away.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, Ordering::Relaxed};

use membership::swim::NodeId;
use membership::{SLOT_COUNT, Slot};
use parking_lot::{Mutex, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::mpsc;
use tracing::debug;

use crate::store::{Db, Key, Taken};

/// Most keys per batch.
pub const BATCH_KEYS: usize = 512;
/// Batches close once they hold this many accounted bytes (a single larger key still goes).
pub const BATCH_BYTES: usize = 1 << 20;

const STATE_STABLE: u8 = 0;
const STATE_MIGRATING: u8 = 1;
const STATE_IMPORTING: u8 = 2;

/// A slot's migration state on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    Stable,
    /// This node owns the slot and is moving its keys to `to`.
    Migrating {
        to: NodeId,
    },
    /// Another node is moving the slot's keys here.
    Importing {
        from: NodeId,
    },
}

/// Where a migrating command's keys are (counted by the caller, under the slot's gate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// Keys with a value here.
    pub present: usize,
    /// Keys taken out and in transfer to the destination.
    pub in_flight: usize,
    /// Keys with no value here.
    pub missing: usize,
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
    pub gates: crate::gates::SlotGates,
    inner: Mutex<Inner>,
    pub stats: MigrationStats,
    jobs: mpsc::Sender<Job>,
}

impl Migrations {
    /// Over the store's slot gates (`Db::gates`).
    pub fn new(gates: crate::gates::SlotGates) -> (Migrations, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(64);
        (
            Migrations {
                states: (0..SLOT_COUNT).map(|_| AtomicU8::new(0)).collect(),
                gates,
                inner: Mutex::new(Inner::default()),
                stats: MigrationStats::default(),
                jobs,
            },
            rx,
        )
    }

    /// Held by a command from its routing decision to its end.
    pub fn gate(&self, slot: Slot) -> RwLockReadGuard<'_, ()> {
        self.gates.shared(slot)
    }

    /// Excludes the slot's commands while its state or keys change under the holder.
    pub(super) fn exclusive(&self, slot: Slot) -> RwLockWriteGuard<'_, ()> {
        self.gates.exclusive(slot)
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

    pub(super) fn begin_outgoing(&self, first: u16, last: u16, to: NodeId) {
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
    pub(super) fn end_outgoing(&self, first: u16, last: u16) {
        for s in first..=last {
            let Some(slot) = Slot::new(s) else { continue };
            let _gate = self.exclusive(slot);
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
    pub(super) fn begin_incoming(&self, db: &Db, first: u16, last: u16, from: NodeId, id: u64) {
        for s in first..=last {
            let Some(slot) = Slot::new(s) else { continue };
            let _gate = self.exclusive(slot);
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

    pub(super) fn importing_from(&self, slot: u16) -> Option<NodeId> {
        self.inner.lock().incoming.get(&slot).map(|i| i.from)
    }

    pub(super) fn incoming_slots(&self) -> Vec<(u16, NodeId)> {
        self.inner
            .lock()
            .incoming
            .iter()
            .map(|(s, i)| (*s, i.from))
            .collect()
    }

    pub(super) fn end_incoming(&self, slot: u16) {
        let mut inner = self.inner.lock();
        inner.incoming.remove(&slot);
        if !inner.outgoing.contains_key(&slot) {
            self.set_state(slot, STATE_STABLE);
        }
    }

    /// Takes up to a batch of keys out of the range's slots, from `cursor` on, recording them
    /// as in flight. Returns the slot batches taken.
    pub(super) fn take_batch(
        &self,
        db: &Db,
        first: u16,
        last: u16,
        now: u64,
    ) -> Vec<(Slot, Taken)> {
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
            let _gate = self.exclusive(slot);
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

    pub(super) fn clear_in_flight(&self, first: u16, last: u16) {
        let mut inner = self.inner.lock();
        for s in first..=last {
            if let Some(o) = inner.outgoing.get_mut(&s) {
                o.in_flight.clear();
            }
        }
    }
}

/// Migration lines of CLUSTER INFO and INFO cluster.
pub fn migration_lines(m: &Migrations, eol: &str) -> String {
    let (migrating, importing) = m.counts();
    let st = &m.stats;
    let kb = st.bytes_sent.load(Relaxed);
    [
        ("cluster_slots_migrating", migrating as u64),
        ("cluster_slots_importing", importing as u64),
        ("cluster_migrated_slots", st.slots_moved.load(Relaxed)),
        ("cluster_migrated_keys", st.keys_sent.load(Relaxed)),
        ("cluster_migrated_bytes", kb),
        ("cluster_imported_keys", st.keys_received.load(Relaxed)),
        ("cluster_migrations_done", st.ranges_done.load(Relaxed)),
        ("cluster_migrations_failed", st.ranges_failed.load(Relaxed)),
    ]
    .iter()
    .map(|(k, v)| format!("{k}:{v}{eol}"))
    .collect()
}
