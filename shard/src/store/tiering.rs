//! Moving keys between the RAM tier and the warm tier.
//!
//! Demotion: `make_room` picks victims by the eviction policy and moves them to the warm
//! index; the warm tier's writer persists them in batches.
//!
//! Promotion: before a command runs, every key it names that lives in the warm tier is loaded
//! (off the async workers) and installed in RAM marked with its warm generation, so all
//! commands run against RAM only and behave the same whichever tier held the key. After the
//! command, the key either stays in RAM (its warm copy is deleted) or, for a read under the
//! second-access policy, goes back to the warm index untouched (its warm copy is still exact).

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use membership::Slot;

use super::warm::Record;
use super::{Db, Entry, Key, Promotion, WarmMeta};

/// A warm key a command needs in RAM.
#[derive(Debug, Clone)]
pub struct WarmKey {
    pub slot: Slot,
    pub key: Bytes,
    pub generation: u64,
    /// Unix ms of the previous non-promoting access (second-access policy), 0 = none.
    pub last_access: u64,
}

impl Db {
    /// Demotes one RAM entry chosen by the caller. Returns false if it was gone.
    pub(super) fn demote(&self, slot: Slot, key: &[u8]) -> bool {
        let Some(w) = &self.warm else { return false };
        let mut g = self.slot(slot);
        let Some((e, generation, write)) = g.demote(key, || w.next_generation()) else {
            return false;
        };
        if write {
            w.put(slot, key, generation, e.expire_at, e.value);
        }
        true
    }

    /// Keeps `keys` in RAM (no demotion) until `unpin`: a command's keys must not move to
    /// disk between being loaded and being used.
    pub fn pin(&self, keys: &[Bytes]) {
        for k in keys {
            *self.for_key(k).pins.entry(Key::from_slice(k)).or_insert(0) += 1;
        }
    }

    pub fn unpin(&self, keys: &[Bytes]) {
        for k in keys {
            let mut g = self.for_key(k);
            if let Some(n) = g.pins.get_mut(&k[..]) {
                *n -= 1;
                if *n == 0 {
                    g.pins.remove(&k[..]);
                }
            }
        }
    }

    /// Which of `keys` live in the warm tier (to load before the command). Expired warm keys
    /// are deleted on the way, as a RAM lookup would.
    pub fn warm_keys<'k>(&self, keys: impl Iterator<Item = &'k Bytes>, now: u64) -> Vec<WarmKey> {
        if self.warm.is_none() || self.warm_len() == 0 {
            return Vec::new();
        }
        let mut out: Vec<WarmKey> = Vec::new();
        for key in keys {
            let slot = Slot::for_key(key);
            let mut g = self.slot(slot);
            if g.map.contains_key(&key[..]) {
                continue;
            }
            let Some(meta) = g.warm_meta(key).copied() else {
                continue;
            };
            if meta.is_expired(now) {
                g.warm_remove(key);
                g.stale.push((Key::from_slice(key), meta.generation));
                g.expired += 1;
                continue;
            }
            if !out.iter().any(|w| w.key == *key) {
                out.push(WarmKey {
                    slot,
                    key: key.clone(),
                    generation: meta.generation,
                    last_access: meta.last_access,
                });
            }
        }
        out
    }

    /// Drops the warm copies of `keys` without reading them, for commands that overwrite a
    /// key regardless of its old value (plain SET, SETEX, MSET): no disk read on a blind write.
    pub fn forget_warm<'k>(&self, keys: impl Iterator<Item = &'k Bytes>) {
        if self.warm.is_none() || self.warm_len() == 0 {
            return;
        }
        for key in keys {
            let mut g = self.for_key(key);
            if g.map.contains_key(&key[..]) {
                continue;
            }
            if let Some(meta) = g.warm_remove(key) {
                g.stale.push((Key::from_slice(key), meta.generation));
            }
        }
    }

    /// Installs a loaded record in RAM if the key is still warm at that generation.
    pub fn install(&self, wk: &WarmKey, record: Option<Record>, now: u64) -> bool {
        let mut g = self.slot(wk.slot);
        let current = g.warm_meta(&wk.key).map(|m| m.generation);
        if current != Some(wk.generation) || g.map.contains_key(&wk.key[..]) {
            return false;
        }
        let Some(rec) = record else {
            // The record is gone (e.g. a FLUSHALL raced the load): the key no longer exists.
            g.warm_remove(&wk.key);
            return false;
        };
        g.warm_remove(&wk.key);
        g.insert(&wk.key, Entry::new(rec.value, rec.expire_at, now));
        if let Some(e) = g.map.get_mut(&wk.key[..]) {
            e.warm_generation = wk.generation;
        }
        if let Some(w) = &self.warm {
            w.stats.hits.fetch_add(1, Relaxed);
        }
        true
    }

    /// After the command: promote the key for good, or put it back in the warm index.
    pub fn settle(&self, wk: &WarmKey, wrote: bool, now: u64) {
        let Some(w) = &self.warm else { return };
        let mut g = self.slot(wk.slot);
        let Some(e) = g.map.get_mut(&wk.key[..]) else {
            return;
        };
        if e.warm_generation != wk.generation {
            // Changed or replaced: the stale copy was already queued for deletion.
            return;
        }
        let promote = wrote
            || match self.promotion {
                Promotion::Always => true,
                Promotion::SecondAccess(window) => {
                    wk.last_access != 0 && now.saturating_sub(wk.last_access) <= window
                }
            };
        if promote {
            e.warm_generation = 0;
            g.stale.push((Key::from_slice(&wk.key), wk.generation));
            w.stats.promotions.fetch_add(1, Relaxed);
        } else if let Some(e) = g.remove_raw(&wk.key) {
            let kind = if matches!(e.value, super::Value::Hash(_)) {
                1
            } else {
                0
            };
            let size = Entry::cost(&wk.key, &e.value) as u32;
            let meta = WarmMeta {
                generation: wk.generation,
                expire_at: e.expire_at,
                size,
                kind,
                last_access: now.max(1),
            };
            g.warm_insert(&wk.key, meta);
        }
    }

    /// Evicts warm keys while the warm tier is over `warm-maxbytes` (sampled: the least
    /// recently demoted or read go first).
    pub(super) fn trim_warm(&self) {
        let (Some(w), max) = (&self.warm, self.limits.warm_maxbytes.load(Relaxed)) else {
            return;
        };
        if max == 0 {
            return;
        }
        let mut rounds = 0;
        while self.warm_memory() as u64 > max && rounds < 100_000 {
            rounds += 1;
            let Some(slot) = self.random_nonempty_slot() else {
                return;
            };
            let mut g = self.slot(slot);
            let victim = g
                .warm
                .iter()
                .take(8)
                .min_by_key(|(_, m)| m.last_access)
                .map(|(k, m)| (k.clone(), m.generation));
            if let Some((k, generation)) = victim {
                g.warm_remove(&k);
                g.note_gone(&k);
                w.delete(slot, &k, generation);
                w.stats.evictions.fetch_add(1, Relaxed);
                self.stats.evicted_keys.fetch_add(1, Relaxed);
            }
        }
    }

    /// Removes every key of `slot` from both tiers (the slot now belongs to another node).
    pub fn drop_slot(&self, slot: Slot) -> usize {
        let mut g = self.slot(slot);
        let n = g.len() + g.warm_len();
        let keys: Vec<Key> = g.map.keys().cloned().collect();
        for k in keys {
            g.remove(&k);
            g.note_gone(&k);
        }
        let warm: Vec<(Key, u64)> = g
            .warm
            .iter()
            .map(|(k, m)| (k.clone(), m.generation))
            .collect();
        for (k, generation) in warm {
            g.warm_remove(&k);
            g.note_gone(&k);
            g.stale.push((k, generation));
        }
        n
    }

    /// Moves every RAM entry to the warm tier (planned shutdown), then waits for the writes.
    pub fn demote_all(&self) {
        let Some(w) = &self.warm else { return };
        let mut moved = 0usize;
        for slot in Slot::all() {
            let keys: Vec<Key> = self.slot(slot).map.keys().cloned().collect();
            for k in keys {
                moved += usize::from(self.demote(slot, &k));
            }
        }
        w.flush();
        tracing::info!(keys = moved, "RAM tier demoted to the warm tier");
    }
}
