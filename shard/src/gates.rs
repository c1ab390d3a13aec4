//! One read-write lock per slot, ordering what must not interleave on a slot's keys. Every
//! keyed command holds the read side of its slots' gates while it runs; the write side is
//! held by EXEC for the slots of its queued commands (so no other client's command runs
//! between them) and, in cluster mode, by slot migration while it takes a batch out.
//!
//! Several gates are always taken in ascending slot order, so two holders of overlapping
//! sets cannot deadlock.
//!
//! A script holds the write side of its slots' gates for as long as it runs, which may be
//! long: commands wait for a gate with [`SlotGates::shared_many_or`] and friends, in slices,
//! and give up when the caller says so (a script has run past `busy-reply-threshold`: the
//! command is answered `-BUSY`), so waiting commands do not hold worker threads forever.
//!
//! A gate lives in the store's cell for its slot, beside the slot table's lock
//! (`store::SlotCell`): the command's read of the gate brings in the line its table lookup
//! needs next, so the gate adds two uncontended atomic operations and no cache miss.

use std::sync::Arc;
use std::time::Duration;

use membership::Slot;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use smallvec::SmallVec;

use crate::store::SlotCell;

/// How long a waiting command sleeps between two checks of whether to give up.
const SLICE: Duration = Duration::from_millis(5);

/// A lock taken at once if free (`take(None)`: no clock read, no slow path), else in slices
/// (`take(Some(slice))`) until `give_up`.
fn patiently<G>(
    mut take: impl FnMut(Option<Duration>) -> Option<G>,
    give_up: &dyn Fn() -> bool,
) -> Option<G> {
    if let Some(g) = take(None) {
        return Some(g);
    }
    let mut take = |d| take(Some(d));
    // A transaction or a migration batch lets go soon; a slow script may not: past the first
    // slice this thread may wait long, so the runtime's other work goes to another thread.
    if let Some(g) = take(SLICE) {
        return Some(g);
    }
    crate::running::hand_off();
    loop {
        if let Some(g) = take(SLICE) {
            return Some(g);
        }
        if give_up() {
            return None;
        }
    }
}

/// How [`patiently`] takes a gate's read side.
fn reader<'a>(
    gate: &'a RwLock<()>,
) -> impl FnMut(Option<Duration>) -> Option<RwLockReadGuard<'a, ()>> + 'a {
    move |d| match d {
        None => gate.try_read(),
        Some(d) => gate.try_read_for(d),
    }
}

/// How [`patiently`] takes a gate's write side.
fn writer<'a>(
    gate: &'a RwLock<()>,
) -> impl FnMut(Option<Duration>) -> Option<RwLockWriteGuard<'a, ()>> + 'a {
    move |d| match d {
        None => gate.try_write(),
        Some(d) => gate.try_write_for(d),
    }
}

/// Distinct slots in ascending order: the order every multi-slot taker locks in (no
/// deadlock between two of them).
fn in_order(slots: impl Iterator<Item = Slot>) -> SmallVec<[u16; 4]> {
    let mut s: SmallVec<[u16; 4]> = slots.map(|s| s.get()).collect();
    if s.len() > 1 {
        s.sort_unstable();
        s.dedup();
    }
    s
}

/// A handle to the gates of every slot (cheap to clone: the cells are shared with the store).
#[derive(Clone)]
pub struct SlotGates {
    cells: Arc<[SlotCell]>,
}

/// Read guards of a command's slots (usually one).
pub type Shared<'a> = SmallVec<[RwLockReadGuard<'a, ()>; 1]>;
/// Write guards of a script's or transaction's slots (usually one).
pub type Exclusive<'a> = SmallVec<[RwLockWriteGuard<'a, ()>; 1]>;

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
        in_order(slots)
            .into_iter()
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
        in_order(slots)
            .into_iter()
            .map(|i| self.cells[usize::from(i)].gate.write())
            .collect()
    }

    /// [`SlotGates::shared`], or `None` once `give_up` says so while waiting.
    pub fn shared_or(
        &self,
        slot: Slot,
        give_up: &dyn Fn() -> bool,
    ) -> Option<RwLockReadGuard<'_, ()>> {
        let gate = &self.cells[slot.index()].gate;
        patiently(reader(gate), give_up)
    }

    /// [`SlotGates::shared_many`], or `None` once `give_up` says so while waiting.
    pub fn shared_many_or(
        &self,
        slots: impl Iterator<Item = Slot>,
        give_up: &dyn Fn() -> bool,
    ) -> Option<Shared<'_>> {
        in_order(slots)
            .into_iter()
            .map(|i| {
                let gate = &self.cells[usize::from(i)].gate;
                patiently(reader(gate), give_up)
            })
            .collect()
    }

    /// [`SlotGates::exclusive`], or `None` once `give_up` says so while waiting.
    pub fn exclusive_or(
        &self,
        slot: Slot,
        give_up: &dyn Fn() -> bool,
    ) -> Option<RwLockWriteGuard<'_, ()>> {
        let gate = &self.cells[slot.index()].gate;
        patiently(writer(gate), give_up)
    }

    /// [`SlotGates::exclusive_many`], or `None` once `give_up` says so while waiting.
    pub fn exclusive_many_or(
        &self,
        slots: impl Iterator<Item = Slot>,
        give_up: &dyn Fn() -> bool,
    ) -> Option<Exclusive<'_>> {
        in_order(slots)
            .into_iter()
            .map(|i| {
                let gate = &self.cells[usize::from(i)].gate;
                patiently(writer(gate), give_up)
            })
            .collect()
    }

    /// The write side of every gate (FLUSHALL: no transaction sees half a flush).
    pub fn exclusive_all(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.cells.iter().map(|c| c.gate.write()).collect()
    }
}
