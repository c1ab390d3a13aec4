//! One read-write lock per slot, ordering what must not interleave on a slot's keys. Every
//! keyed command holds the read side of its slots' gates while it runs; the write side is
//! held by EXEC for the slots of its queued commands (so no other client's command runs
//! between them) and, in cluster mode, by slot migration while it takes a batch out.
//!
//! Several gates are always taken in ascending slot order, so two holders of overlapping
//! sets cannot deadlock.
//!
//! A gate lives in the store's cell for its slot, beside the slot table's lock
//! (`store::SlotCell`): the command's read of the gate brings in the line its table lookup
//! needs next, so the gate adds two uncontended atomic operations and no cache miss.

use std::sync::Arc;

use membership::Slot;
use parking_lot::{RwLockReadGuard, RwLockWriteGuard};
use smallvec::SmallVec;

use crate::store::SlotCell;

/// A handle to the gates of every slot (cheap to clone: the cells are shared with the store).
#[derive(Clone)]
pub struct SlotGates {
    cells: Arc<[SlotCell]>,
}

/// Read guards of a command's slots (usually one).
pub type Shared<'a> = SmallVec<[RwLockReadGuard<'a, ()>; 1]>;

impl SlotGates {
    /// Over the store's cells (`Db::gates`).
    pub(crate) fn new(cells: Arc<[SlotCell]>) -> SlotGates {
        SlotGates { cells }
    }

    /// The read side of one slot's gate.
    pub fn shared(&self, slot: Slot) -> RwLockReadGuard<'_, ()> {
        self.cells[slot.index()].gate.read()
    }

    /// The read side of several slots' gates (any order, duplicates allowed).
    pub fn shared_many(&self, slots: impl Iterator<Item = Slot>) -> Shared<'_> {
        let mut s: SmallVec<[u16; 4]> = slots.map(|s| s.get()).collect();
        if s.len() > 1 {
            s.sort_unstable();
            s.dedup();
        }
        s.into_iter()
            .map(|i| self.cells[usize::from(i)].gate.read())
            .collect()
    }

    /// The write side of one slot's gate.
    pub fn exclusive(&self, slot: Slot) -> RwLockWriteGuard<'_, ()> {
        self.cells[slot.index()].gate.write()
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
            .map(|i| self.cells[usize::from(i)].gate.write())
            .collect()
    }

    /// The write side of every gate (FLUSHALL: no transaction sees half a flush).
    pub fn exclusive_all(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.cells.iter().map(|c| c.gate.write()).collect()
    }
}
