//! Moving keys between the RAM tier and the warm tier.
//!
//! Demotion: `make_room` picks victims by the eviction policy and moves them to the warm
//! index; the warm tier's writer persists them in batches.
//!
//! Promotion: before a command runs, every key it names that lives in the warm tier is loaded
//! (off the async workers) and installed in RAM marked with its warm generation, so all
//! commands run against RAM only and behave the same whichever tier held the key. After the
//! command, the key either stays in RAM or, for a read under the second-access policy, goes
//! back to the warm index untouched (its warm copy is still exact). A key that stays in RAM
//! after a read keeps its warm record as a clean copy until it changes; after a write the copy
//! is deleted.

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

/// `key`'s warm-tier entry if it has one and no RAM entry: expired ones are deleted (as a RAM
/// lookup would), and with `forget` the warm copy is dropped rather than returned.
fn warm_key(
    g: &mut super::SlotMap,
    slot: Slot,
    key: &Bytes,
    forget: bool,
    now: u64,
) -> Option<WarmKey> {
    if g.warm_len() == 0 || g.map.contains_key(&key[..]) {
        return None;
    }
    let meta = g.warm_meta(key).copied()?;
    if forget || meta.is_expired(now) {
        g.warm_remove(key);
        g.stale.push((Key::from_slice(key), meta.generation));
        g.expired += u64::from(!forget && meta.is_expired(now));
        return None;
    }
    Some(WarmKey {
        slot,
        key: key.clone(),
        generation: meta.generation,
        last_access: meta.last_access,
    })
}

impl Db {
    /// Demotes one RAM entry chosen by the caller. Returns false if it was gone, or pinned
    /// since it was chosen (the victim is picked under one lock and demoted under another: a
    /// command that pinned the key meanwhile must still find it in RAM).
    pub(super) fn demote(&self, slot: Slot, key: &[u8]) -> bool {
        let Some(w) = &self.warm else { return false };
        let mut g = self.slot(slot);
        if g.is_pinned(key) {
            return false;
        }
        let Some((e, generation, write)) = g.demote(key, || w.next_generation()) else {
            return false;
        };
        if write {
            w.put(slot, key, generation, e.expire_at, e.value);
        }
        true
    }

    /// Keeps `keys` in RAM (no demotion) until `unpin`: a command's keys must not move to
    /// disk between being loaded and being used. Returns the keys that live in the warm tier
    /// (to load before the command), in the same pass (one slot lock per key). With `blind`
    /// (the command overwrites its keys whatever their old values) their warm copies are
    /// dropped instead: no disk read on a blind write.
    pub fn pin(&self, keys: &[Bytes], blind: bool, now: u64) -> Vec<WarmKey> {
        let mut out: Vec<WarmKey> = Vec::new();
        for key in keys {
            if let Some(sk) = &self.sketch {
                sk.increment(sk.hash(key));
            }
            let slot = Slot::for_key(key);
            let mut g = self.slot(slot);
            *g.pins.entry(Key::from_slice(key)).or_insert(0) += 1;
            if let Some(wk) = warm_key(&mut g, slot, key, blind, now)
                && !out.iter().any(|w| w.key == wk.key)
            {
                out.push(wk);
            }
        }
        out
    }

    /// Releases `pin`. After a write command, a RAM entry of these keys no longer counts as
    /// identical to a warm copy it was promoted from: that copy is deleted (whatever path the
    /// command took to change the entry).
    pub fn unpin(&self, keys: &[Bytes], wrote: bool) {
        for k in keys {
            let mut g = self.for_key(k);
            if wrote && let Some(e) = g.map.get_mut(&k[..]) {
                let had = std::mem::take(&mut e.warm_copy);
                g.drop_warm_copy(k, had);
            }
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
            if let Some(wk) = warm_key(&mut self.slot(slot), slot, key, false, now)
                && !out.iter().any(|w| w.key == wk.key)
            {
                out.push(wk);
            }
        }
        out
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
            e.warm_copy = true;
            g.warm_copies
                .insert(Key::from_slice(&wk.key), wk.generation);
        }
        if let Some(w) = &self.warm {
            w.stats.hits.fetch_add(1, Relaxed);
        }
        true
    }

    /// After the command: promote the key for good, or put it back in the warm index.
    /// Returns whether a read promoted it (RAM may then be over budget).
    pub fn settle(&self, wk: &WarmKey, wrote: bool, now: u64) -> bool {
        let Some(w) = &self.warm else { return false };
        let mut g = self.slot(wk.slot);
        let Some(e) = g.map.get(&wk.key[..]) else {
            return false;
        };
        if g.warm_copy_of(&wk.key, e) != Some(wk.generation) {
            // Changed or replaced: the stale copy was already queued for deletion.
            return false;
        }
        let promote = wrote
            || match self.promotion {
                Promotion::Always => true,
                Promotion::SecondAccess(window) => {
                    wk.last_access != 0 && now.saturating_sub(wk.last_access) <= window
                }
                Promotion::Frequency => self.admits(&wk.key),
            };
        if promote {
            if wrote {
                if let Some(e) = g.map.get_mut(&wk.key[..]) {
                    e.warm_copy = false;
                }
                g.drop_warm_copy(&wk.key, true);
            }
            // A key promoted by a read keeps its warm record as a clean copy: demoting it
            // again unchanged writes nothing, and any change deletes the copy (`unpin`, and
            // every path that replaces, removes or expires an entry). Under a read-mostly load
            // that spares the writer a delete at promotion and a put at the next demotion.
            w.stats.promotions.fetch_add(1, Relaxed);
            return !wrote;
        } else if let Some(e) = g.remove_raw(&wk.key) {
            g.warm_copies.remove(&wk.key[..]);
            let size = Entry::cost(&wk.key, &e.value) as u32;
            let meta = WarmMeta {
                generation: wk.generation,
                expire_at: e.expire_at,
                size,
                kind: e.value.kind(),
                last_access: now.max(1),
            };
            g.warm_insert(&wk.key, meta);
        }
        false
    }

    /// TinyLFU admission: whether a warm key just read earns its place in RAM. It does while
    /// RAM has room (it is already loaded), else when it is used more often than the keys
    /// RAM demoted lately: promoting it will demote one of those.
    fn admits(&self, key: &[u8]) -> bool {
        let Some(sk) = &self.sketch else { return true };
        !self.over_limit() || u32::from(sk.frequency(sk.hash(key))) * 16 > self.admission_bar()
    }

    /// What a warm key's sketch frequency must exceed to be promoted, times 16.
    pub fn admission_bar(&self) -> u32 {
        self.victim_freq.load(Relaxed)
    }

    /// Folds a demoted key's sketch frequency into the admission bar (weight 1/8).
    pub(super) fn note_victim(&self, key: &[u8]) {
        let Some(sk) = &self.sketch else { return };
        let f = u32::from(sk.frequency(sk.hash(key))) * 16;
        let old = self.victim_freq.load(Relaxed);
        self.victim_freq.store(old - old / 8 + f / 8, Relaxed);
    }

    /// Bytes of the frequency sketch (0 without one).
    pub fn sketch_bytes(&self) -> usize {
        self.sketch.as_ref().map_or(0, |s| s.bytes())
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
                g.note_gone_as(&k, super::Gone::Evicted);
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
