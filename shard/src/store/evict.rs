//! `maxmemory` enforcement: sampled eviction as Redis does it (pick a few random keys, evict
//! the best candidate by policy, repeat until under the limit).

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use membership::Slot;

use super::{Db, WarmStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction = 0,
    AllKeysLru = 1,
    AllKeysLfu = 2,
    VolatileLru = 3,
    VolatileTtl = 4,
    AllKeysRandom = 5,
    VolatileLfu = 6,
    VolatileRandom = 7,
}

impl Policy {
    pub const ALL: [Policy; 8] = [
        Policy::NoEviction,
        Policy::AllKeysLru,
        Policy::AllKeysLfu,
        Policy::VolatileLru,
        Policy::VolatileTtl,
        Policy::AllKeysRandom,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileTtl => "volatile-ttl",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    fn from_u8(v: u8) -> Policy {
        Policy::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Policy::NoEviction)
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileTtl
                | Policy::VolatileLfu
                | Policy::VolatileRandom
        )
    }
}

/// The write could not be admitted: over `maxmemory` and nothing can be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// Upper bound on evictions made to admit one command, so a pathological state cannot stall a
/// connection.
const MAX_EVICTIONS_PER_CALL: usize = 100_000;

impl Db {
    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.limits.policy.load(Relaxed))
    }

    pub fn maxmemory(&self) -> u64 {
        self.limits.maxmemory.load(Relaxed)
    }

    pub fn over_limit(&self) -> bool {
        let max = self.maxmemory();
        max != 0 && self.used_memory() as u64 > max
    }

    /// How many bytes of demotions not yet written the shard lets pile up in memory beyond
    /// `maxmemory`: an eighth of it, at least 8 MiB. Each is held twice until written (the
    /// value readers see and its encoded record), and the heap keeps the peak as fragments
    /// after the queue drains: with the earlier bound (`maxmemory`, at least 64 MiB) a bulk
    /// load into a 64 MiB shard peaked at 463 MiB resident and stayed there.
    fn warm_backlog_bound(&self) -> u64 {
        (self.maxmemory() / 8).max(8 << 20)
    }

    /// Whether demotions not yet written exceed the backlog bound: writes then wait for the
    /// disk writer.
    pub fn warm_backlogged(&self, w: &WarmStore) -> bool {
        w.pending_bytes() as u64 > self.warm_backlog_bound()
    }

    /// Whether unwritten demotions reached twice that: the writer is stalled rather than
    /// behind (writes that waited for it in vain went ahead meanwhile), and writes that need
    /// room get `-OOM` instead of growing memory without limit.
    fn warm_overflowing(&self, w: &WarmStore) -> bool {
        w.pending_bytes() as u64 > self.warm_backlog_bound().saturating_mul(2)
    }

    /// With a warm tier whose writer lags behind, waits (up to `limit`) until its queue is
    /// below the back-pressure threshold, so a fast bulk load slows down instead of failing.
    pub async fn wait_for_warm_writer(&self, limit: std::time::Duration) {
        let Some(w) = self.warm() else { return };
        if !self.over_limit() {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let committed = w.stats.committed.notified();
            if !self.warm_backlogged(w) {
                return;
            }
            if tokio::time::timeout_at(deadline, committed).await.is_err() {
                return;
            }
        }
    }

    /// Evicts until accounted memory is within `maxmemory`. Must be called without holding any
    /// slot lock.
    ///
    /// With a warm tier, victims are demoted to disk instead of evicted (under `noeviction`
    /// they are chosen as by `allkeys-lru`), and the warm tier is then trimmed to its budget.
    pub fn make_room(&self, now: u64) -> Result<(), OutOfMemory> {
        let mut policy = self.policy();
        let warm = self.warm();
        if warm.is_some() && policy == Policy::NoEviction {
            policy = Policy::AllKeysLru;
        }
        let mut demoted = false;
        let result = (|| {
            for _ in 0..MAX_EVICTIONS_PER_CALL {
                if !self.over_limit() {
                    return Ok(());
                }
                if policy == Policy::NoEviction {
                    return Err(OutOfMemory);
                }
                if let Some(w) = warm {
                    // Back-pressure: do not let unwritten demotions pile up without bound.
                    if self.warm_overflowing(w) {
                        return Err(OutOfMemory);
                    }
                }
                let Some((slot, key)) = self.pick_victim(policy, now) else {
                    // With a warm tier, what is left in RAM is pinned by commands in flight:
                    // admit the write (it overshoots by its own size, as in Redis).
                    return if warm.is_some() {
                        Ok(())
                    } else {
                        Err(OutOfMemory)
                    };
                };
                if warm.is_some() {
                    self.note_victim(&key);
                    demoted |= self.demote(slot, &key);
                } else {
                    let mut g = self.slot(slot);
                    if g.remove(&key).is_some() {
                        g.note_gone_as(&key, super::Gone::Evicted);
                        self.stats.evicted_keys.fetch_add(1, Relaxed);
                    }
                }
            }
            if self.over_limit() {
                Err(OutOfMemory)
            } else {
                Ok(())
            }
        })();
        if demoted {
            self.trim_warm();
        }
        result
    }

    /// Samples `maxmemory-samples` keys and returns the best one to evict under `policy`.
    fn pick_victim(&self, policy: Policy, now: u64) -> Option<(Slot, Bytes)> {
        if policy.volatile_only() && self.volatile_len() == 0 {
            return None;
        }
        let samples = self.limits.samples.load(Relaxed).clamp(1, 64) as usize;
        let mut best: Option<(u64, Slot, Bytes)> = None;
        let mut attempts = 0;
        let mut taken = 0;
        while taken < samples && attempts < samples * 16 {
            attempts += 1;
            let slot = self.random_nonempty_slot()?;
            let g = self.slot(slot);
            for (key, e) in g.sample(samples) {
                if (policy.volatile_only() && e.expire_at() == 0) || g.is_pinned(key) {
                    continue;
                }
                taken += 1;
                // Higher score = better victim.
                let score = match (policy, &self.sketch) {
                    // TinyLFU: the least frequently used by the sketch, then the least
                    // recently used.
                    (
                        Policy::AllKeysLru
                        | Policy::VolatileLru
                        | Policy::AllKeysLfu
                        | Policy::VolatileLfu,
                        Some(sk),
                    ) => {
                        let rare = u64::from(15 - sk.frequency(sk.hash(key)).min(15));
                        rare << 40 | e.idle_ms(now).min((1 << 40) - 1)
                    }
                    (Policy::AllKeysLru | Policy::VolatileLru, None) => e.idle_ms(now),
                    (Policy::AllKeysLfu | Policy::VolatileLfu, None) => {
                        u64::from(255 - e.freq(now))
                    }
                    (Policy::VolatileTtl, _) => u64::MAX - e.expire_at(),
                    _ => fastrand::u64(..),
                };
                if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                    best = Some((score, slot, Bytes::copy_from_slice(key)));
                }
                if taken >= samples {
                    break;
                }
            }
        }
        best.map(|(_, s, k)| (s, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ENTRY_OVERHEAD, Entry, Value};

    fn fill(db: &Db, n: usize, ttl: bool, now: u64) {
        for i in 0..n {
            let key = Bytes::from(format!("key:{i}"));
            let exp = if ttl && i % 2 == 0 {
                now + 1_000_000 + i as u64
            } else {
                0
            };
            db.for_key(&key).insert(
                &key,
                Entry::new(Value::Str(Bytes::from_static(b"v")), exp, now),
            );
        }
    }

    #[test]
    fn a_victim_pinned_after_it_was_chosen_stays_in_ram() {
        let dir = tempfile::tempdir().expect("tmp");
        let (w, loaded) =
            crate::store::WarmStore::open(&dir.path().join("warm.redb"), 0, 1 << 20, 19)
                .expect("open");
        let db = Db::new(1, Policy::AllKeysLru, 5).with_warm(
            w.clone(),
            loaded,
            0,
            crate::store::Promotion::Always,
        );
        fill(&db, 1, false, 0);
        let key = Bytes::from_static(b"key:0");
        let slot = Slot::for_key(&key);
        // make_room chose the key under one lock; a command pins it before the demotion.
        let (chosen, picked) = db.pick_victim(Policy::AllKeysLru, 0).expect("a victim");
        assert_eq!((chosen, &picked[..]), (slot, &key[..]));
        assert!(db.pin(std::slice::from_ref(&key), false, 0).is_empty());
        assert!(!db.demote(slot, &key), "pinned keys are not demoted");
        assert!(db.slot(slot).contains(&key, 0));
        db.unpin(std::slice::from_ref(&key), false);
        assert!(db.demote(slot, &key));
        assert!(!db.slot(slot).contains(&key, 0));
        w.close();
    }

    #[test]
    fn policy_names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.name()), Some(p));
            assert_eq!(Policy::from_u8(p as u8), p);
        }
        assert_eq!(Policy::parse("ALLKEYS-LRU"), Some(Policy::AllKeysLru));
        assert_eq!(Policy::parse("lru"), None);
    }

    #[test]
    fn noeviction_refuses_and_allkeys_evicts_to_the_limit() {
        let per_key = 5 + 1 + ENTRY_OVERHEAD; // "key:N" has 5 bytes for N < 10
        let db = Db::new((per_key * 5) as u64, Policy::NoEviction, 5);
        fill(&db, 8, false, 0);
        assert_eq!(db.make_room(0), Err(OutOfMemory));
        db.limits.policy.store(Policy::AllKeysLru as u8, Relaxed);
        assert_eq!(db.make_room(0), Ok(()));
        assert!(db.used_memory() <= per_key * 5);
        assert!(db.stats.evicted_keys.load(Relaxed) >= 3);
    }

    #[test]
    fn lru_prefers_idle_keys() {
        let db = Db::new(0, Policy::AllKeysLru, 5);
        fill(&db, 1000, false, 0);
        // Even keys are hot: touched later than the odd (cold) ones.
        for i in (0..1000).step_by(2) {
            let k = format!("key:{i}");
            db.for_key(k.as_bytes()).lookup(k.as_bytes(), 100_000);
        }
        db.limits
            .maxmemory
            .store(db.used_memory() as u64 / 2, Relaxed);
        db.make_room(100_000).expect("room");
        let alive = |parity: usize| {
            (parity..1000)
                .step_by(2)
                .filter(|i| {
                    let k = format!("key:{i}");
                    db.for_key(k.as_bytes()).contains(k.as_bytes(), 100_000)
                })
                .count()
        };
        let (hot, cold) = (alive(0), alive(1));
        // With 5 samples per eviction a hot key goes only when all 5 samples are hot, so
        // nearly all of the half evicted is cold (the margins are many standard deviations).
        assert!(
            hot >= 350 && cold <= 150,
            "hot kept {hot}/500, cold kept {cold}/500"
        );
    }

    #[test]
    fn volatile_policies_only_touch_keys_with_ttl() {
        let db = Db::new(1, Policy::VolatileTtl, 5);
        fill(&db, 20, true, 0);
        assert_eq!(
            db.make_room(0),
            Err(OutOfMemory),
            "cannot reach 1 byte with volatile keys only"
        );
        assert_eq!(
            db.len(),
            10,
            "all 10 volatile keys evicted, persistent ones kept"
        );
        assert_eq!(db.volatile_len(), 0);
    }
}
