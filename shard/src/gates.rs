//! One read-write lock per slot, ordering what must not interleave on a slot's keys. Every
//! keyed command holds the read side of its slots' gates while it runs; the write side is
//! held by EXEC for the slots of its queued commands (so no other client's command runs
//! between them) and, in cluster mode, by slot migration while it takes a batch out.
//!
//! Several gates are always taken in ascending slot order, so two holders of overlapping
//! sets cannot deadlock.

use membership::{SLOT_COUNT, Slot};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use smallvec::SmallVec;

pub struct SlotGates {
    gates: Box<[RwLock<()>]>,
}

/// Read guards of a command's slots (usually one).
pub type Shared<'a> = SmallVec<[RwLockReadGuard<'a, ()>; 1]>;

impl Default for SlotGates {
    fn default() -> Self {
        SlotGates {
            gates: (0..SLOT_COUNT).map(|_| RwLock::new(())).collect(),
        }
    }
}

impl SlotGates {
    /// The read side of one slot's gate.
    pub fn shared(&self, slot: Slot) -> RwLockReadGuard<'_, ()> {
        self.gates[slot.index()].read()
    }

    /// The read side of several slots' gates (any order, duplicates allowed).
    pub fn shared_many(&self, slots: impl Iterator<Item = Slot>) -> Shared<'_> {
        let mut s: SmallVec<[u16; 4]> = slots.map(|s| s.get()).collect();
        if s.len() > 1 {
            s.sort_unstable();
            s.dedup();
        }
        s.into_iter()
            .map(|i| self.gates[usize::from(i)].read())
            .collect()
    }

    /// The write side of one slot's gate.
    pub fn exclusive(&self, slot: Slot) -> RwLockWriteGuard<'_, ()> {
        self.gates[slot.index()].write()
    }

    /// The write side of several slots' gates (any order, duplicates allowed).
    pub fn exclusive_many(
        &self,
        slots: impl Iterator<Item = Slot>,
    ) -> Vec<RwLockWriteGuard<'_, ()>> {
        let mut s: Vec<u16> = slots.map(|s| s.get()).collect();
        s.sort_unstable();
        s.dedup();
        s.into_iter()
            .map(|i| self.gates[usize::from(i)].write())
            .collect()
    }

    /// The write side of every gate (FLUSHALL: no transaction sees half a flush).
    pub fn exclusive_all(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.gates.iter().map(|g| g.write()).collect()
    }
}
