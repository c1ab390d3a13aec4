//! The store's side of slot migration: taking a batch of a slot's keys out of both tiers
//! (the source), putting them back if the transfer fails, and installing migrated keys (the
//! destination). Callers serialise these with the commands of the slot (see `crate::migrate`).

use membership::Slot;

use super::warm::{Record, WarmError};
use super::{Db, Entry, Key, Value, WarmMeta};

/// Keys taken out of one slot: RAM entries with their values, warm keys still to be read.
#[derive(Default)]
pub struct Taken {
    pub ram: Vec<(Key, Value, u64)>,
    pub warm: Vec<(Key, WarmMeta)>,
    /// Accounted bytes of what was taken (both tiers).
    pub bytes: usize,
}

impl Taken {
    pub fn len(&self) -> usize {
        self.ram.len() + self.warm.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Db {
    /// Removes up to `max_keys` live keys (about `max_bytes`) of `slot` from both tiers. Expired
    /// keys met on the way are deleted, not taken. Warm keys leave the index but keep their
    /// record on disk until [`Db::forget_warm_records`], so they can still be read.
    pub fn take_for_migration(
        &self,
        slot: Slot,
        max_keys: usize,
        max_bytes: usize,
        now: u64,
    ) -> Taken {
        let mut out = Taken::default();
        let mut g = self.slot(slot);
        g.purge_expired(now);
        let ram: Vec<Key> = g.map.keys().take(max_keys).cloned().collect();
        for k in ram {
            if out.bytes >= max_bytes {
                break;
            }
            if let Some(e) = g.remove(&k) {
                // The key leaves this node: client-side caches fed from here must drop it.
                g.note_gone(&k);
                out.bytes += Entry::cost(&k, &e.value);
                out.ram.push((k, e.value, e.expire_at));
            }
        }
        let room = max_keys.saturating_sub(out.ram.len());
        if room > 0 && out.bytes < max_bytes {
            let warm: Vec<Key> = g.warm.keys().take(room).cloned().collect();
            for k in warm {
                if out.bytes >= max_bytes {
                    break;
                }
                if let Some(m) = g.warm_remove(&k) {
                    g.note_gone(&k);
                    out.bytes += m.size as usize;
                    out.warm.push((k, m));
                }
            }
        }
        out
    }

    /// Reads the records of warm keys taken by [`Db::take_for_migration`] (blocking).
    /// A record that is gone (e.g. FLUSHALL raced) reads as `None`.
    pub fn read_taken_warm(
        &self,
        slot: Slot,
        keys: &[(Key, WarmMeta)],
    ) -> Result<Vec<Option<Record>>, WarmError> {
        match &self.warm {
            Some(w) => w.read_many(slot, keys.iter().map(|(k, m)| (&k[..], m.generation))),
            None => Ok(vec![None; keys.len()]),
        }
    }

    /// Deletes the disk records of warm keys that were taken (their values are in memory now).
    pub fn forget_warm_records(&self, slot: Slot, keys: &[(Key, WarmMeta)]) {
        if let Some(w) = &self.warm {
            for (k, m) in keys {
                w.delete(slot, k, m.generation);
            }
        }
    }

    /// Returns warm keys to the index after their records could not be read; a key that got a
    /// value meanwhile keeps that value (and the old record is deleted).
    pub fn restore_warm(&self, slot: Slot, keys: Vec<(Key, WarmMeta)>) {
        let mut g = self.slot(slot);
        for (k, m) in keys {
            if g.map.contains_key(&k[..]) || g.warm.contains_key(&k[..]) {
                g.stale.push((k, m.generation));
            } else {
                g.warm_insert(&k, m);
            }
        }
    }

    /// Puts a key back in RAM unless it has a value again (a failed transfer's undo), or
    /// installs a key migrated from another node unless this node already has a value for it
    /// (written here after the source gave the key up, so newer). Expired values are dropped.
    /// Returns whether it was stored.
    pub fn install_if_absent(
        &self,
        slot: Slot,
        key: &[u8],
        value: Value,
        expire_at: u64,
        now: u64,
    ) -> bool {
        if expire_at != 0 && expire_at <= now {
            return false;
        }
        let mut g = self.slot(slot);
        if g.contains(key, now) {
            return false;
        }
        if let Some(m) = g.warm_meta(key).copied() {
            if !m.is_expired(now) {
                return false;
            }
            g.warm_remove(key);
            g.stale.push((Key::from_slice(key), m.generation));
        }
        g.insert(key, Entry::new(value, expire_at, now));
        // A reader here may have cached the key's absence (e.g. a GET after ASKING).
        g.note_gone(key);
        true
    }

    /// Whether `key` has a live value in either tier (expired ones are removed on the way).
    pub fn has_key(&self, key: &[u8], now: u64) -> bool {
        let mut g = self.for_key(key);
        if g.contains(key, now) {
            return true;
        }
        match g.warm_meta(key).copied() {
            Some(m) if m.is_expired(now) => {
                g.warm_remove(key);
                g.stale.push((Key::from_slice(key), m.generation));
                g.expired += 1;
                false
            }
            Some(_) => true,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Policy;
    use bytes::Bytes;

    fn s(v: &str) -> Value {
        Value::Str(Bytes::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn take_then_install_moves_keys_once() {
        let (a, b) = (
            Db::new(0, Policy::NoEviction, 5),
            Db::new(0, Policy::NoEviction, 5),
        );
        let slot = Slot::for_key(b"{t}1");
        for i in 0..10 {
            let k = format!("{{t}}{i}");
            a.slot(slot).insert(
                k.as_bytes(),
                Entry::new(s("v"), if i == 0 { 5 } else { 0 }, 0),
            );
        }
        let taken = a.take_for_migration(slot, 4, usize::MAX, 10);
        assert_eq!(taken.len(), 4);
        // The expired key was purged, not taken: 10 - 1 - 4 remain.
        assert_eq!(a.count_in_slot(slot), 5);
        b.slot(slot)
            .insert(taken.ram[0].0.as_slice(), Entry::new(s("newer"), 0, 0));
        let names: Vec<Key> = taken.ram.iter().map(|(k, _, _)| k.clone()).collect();
        let installed = taken
            .ram
            .into_iter()
            .filter(|(k, v, e)| b.install_if_absent(slot, k, v.clone(), *e, 10))
            .count();
        assert_eq!(
            installed, 3,
            "a key written at the destination is not overwritten"
        );
        assert!(
            !b.install_if_absent(slot, b"{t}x", s("old"), 9, 10),
            "expired"
        );
        assert!(names.iter().all(|k| b.has_key(k, 10) && !a.has_key(k, 10)));
        let newer = b.slot(slot).peek(&names[0], 10).map(|e| e.value.clone());
        assert_eq!(newer, Some(s("newer")));
        let rest = a.take_for_migration(slot, 100, usize::MAX, 10);
        assert_eq!(rest.len(), 5);
        assert_eq!(a.count_in_slot(slot), 0);
    }

    #[test]
    fn byte_bound_limits_a_batch() {
        let db = Db::new(0, Policy::NoEviction, 5);
        let slot = Slot::for_key(b"{t}1");
        for i in 0..10 {
            db.slot(slot).insert(
                format!("{{t}}{i}").as_bytes(),
                Entry::new(Value::Str(Bytes::from(vec![0u8; 1000])), 0, 0),
            );
        }
        let taken = db.take_for_migration(slot, 100, 2500, 0);
        assert_eq!(taken.len(), 3, "stops once the byte budget is reached");
    }
}
