//! Active expiry: a background sweep reclaims expired keys nobody reads, so they do not pile
//! up in memory. Each call examines a bounded number of slot tables, resuming where the
//! previous call stopped; slots without TTL keys cost one lock and a counter check.

use std::sync::atomic::Ordering::Relaxed;

use membership::{SLOT_COUNT, Slot};

use super::Db;

impl Db {
    /// Sweeps up to `max_slots` slot tables for expired keys; returns the number removed.
    pub fn active_expire(&self, now: u64, max_slots: usize) -> usize {
        if self.volatile_len() == 0 && self.warm_volatile_len() == 0 {
            return 0;
        }
        let start = self.expire_cursor.load(Relaxed);
        let mut removed = 0;
        for i in 0..max_slots.min(usize::from(SLOT_COUNT)) {
            let idx = (start + i) % usize::from(SLOT_COUNT);
            if self.lens[idx].load(Relaxed) == 0 {
                continue;
            }
            if let Some(slot) = Slot::new(idx as u16) {
                removed += self.slot(slot).purge_expired(now);
            }
        }
        self.expire_cursor
            .store((start + max_slots) % usize::from(SLOT_COUNT), Relaxed);
        removed
    }
}
