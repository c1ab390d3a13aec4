//! Hot-key detection: a SpaceSaving top-k of key popularity with constant memory.
//!
//! Requests are sampled 1-in-`sample` (a thread-local counter, no shared write per request);
//! a sampled key is counted with `try_lock`, so a contended table drops the sample instead of
//! making a request wait. Every window the counts halve, so for a key seen at a steady rate
//! `r` the count settles at `2 · r · window / sample`; the estimated rate is therefore
//! `count · sample / (2 · window)`. A key whose estimate reaches the threshold is hot; the hot
//! set is republished (an `ArcSwap` snapshot readers never lock) at every window.
//!
//! SpaceSaving keeps at most `capacity` keys: a new key replaces the one with the smallest
//! count and inherits that count (its overestimate), so a truly frequent key is never missed
//! and a rare one can only be overestimated by the smallest count in the table.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;

thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// One key's rate as [`Detector::top`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRate {
    pub key: Bytes,
    /// Estimated operations per second.
    pub rate: f64,
    pub hot: bool,
}

struct Table {
    index: HashMap<Bytes, usize>,
    keys: Vec<Bytes>,
    /// Parallel to `keys`, kept apart so the minimum search scans plain integers.
    counts: Vec<u32>,
    /// The count each key inherited when it took its slot: its possible overestimate.
    errors: Vec<u32>,
}

impl Table {
    fn count(&mut self, key: &[u8], capacity: usize) {
        if let Some(&i) = self.index.get(key) {
            if let Some(c) = self.counts.get_mut(i) {
                *c = c.saturating_add(1);
            }
            return;
        }
        let key = Bytes::copy_from_slice(key);
        if self.keys.len() < capacity {
            self.index.insert(key.clone(), self.keys.len());
            self.keys.push(key);
            self.counts.push(1);
            self.errors.push(0);
            return;
        }
        let Some((i, &min)) = self.counts.iter().enumerate().min_by_key(|(_, c)| **c) else {
            return;
        };
        if let Some(old) = self.keys.get_mut(i) {
            self.index.remove(old);
            self.index.insert(key.clone(), i);
            *old = key;
        }
        if let Some(c) = self.counts.get_mut(i) {
            *c = min.saturating_add(1);
        }
        if let Some(e) = self.errors.get_mut(i) {
            *e = min;
        }
    }

    /// Counts a key has certainly reached (count minus its inherited overestimate).
    fn guaranteed(&self) -> impl Iterator<Item = (&Bytes, u32)> {
        self.keys
            .iter()
            .zip(self.counts.iter().zip(self.errors.iter()))
            .map(|(k, (c, e))| (k, c.saturating_sub(*e)))
    }
}

pub struct Detector {
    sample: u32,
    capacity: usize,
    window: Duration,
    /// Count at which a key is hot (the threshold converted to the steady-state count).
    hot_count: f64,
    table: Mutex<Table>,
    hot: ArcSwap<HashSet<Bytes>>,
}

impl Detector {
    pub fn new(capacity: usize, sample: u32, window: Duration, threshold: f64) -> Detector {
        let sample = sample.max(1);
        let capacity = capacity.max(1);
        Detector {
            sample,
            capacity,
            window,
            hot_count: threshold * 2.0 * window.as_secs_f64() / f64::from(sample),
            table: Mutex::new(Table {
                index: HashMap::with_capacity(capacity),
                keys: Vec::with_capacity(capacity),
                counts: Vec::with_capacity(capacity),
                errors: Vec::with_capacity(capacity),
            }),
            hot: ArcSwap::from_pointee(HashSet::new()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one access to `key` (sampled; never blocks).
    #[inline]
    pub fn record(&self, key: &[u8]) {
        if self.sample > 1 {
            let take = TICK.with(|t| {
                let n = t.get().wrapping_add(1);
                t.set(n);
                n.is_multiple_of(self.sample)
            });
            if !take {
                return;
            }
        }
        if let Some(mut t) = self.table.try_lock() {
            t.count(key, self.capacity);
        }
    }

    /// Whether `key` is in the current hot set.
    #[inline]
    pub fn is_hot(&self, key: &[u8]) -> bool {
        let hot = self.hot.load();
        !hot.is_empty() && hot.contains(key)
    }

    pub fn hot_len(&self) -> usize {
        self.hot.load().len()
    }

    fn rate(&self, count: u32) -> f64 {
        let w = self.window.as_secs_f64();
        if w <= 0.0 {
            return 0.0;
        }
        f64::from(count) * f64::from(self.sample) / (2.0 * w)
    }

    /// Ends a window: republishes the hot set, then halves every count. Returns the keys that
    /// stopped being hot.
    pub fn tick(&self) -> Vec<Bytes> {
        let mut t = self.table.lock();
        let mut hot = HashSet::new();
        for (k, c) in t.guaranteed() {
            if f64::from(c) >= self.hot_count {
                hot.insert(k.clone());
            }
        }
        let table = &mut *t;
        for c in table.counts.iter_mut().chain(table.errors.iter_mut()) {
            *c /= 2;
        }
        drop(t);
        let old = self.hot.swap(Arc::new(hot));
        let now = self.hot.load();
        old.iter().filter(|k| !now.contains(*k)).cloned().collect()
    }

    /// The `n` most popular keys with their estimated rates, highest first.
    pub fn top(&self, n: usize) -> Vec<KeyRate> {
        let mut v: Vec<(Bytes, u32)> = {
            let t = self.table.lock();
            t.guaranteed()
                .filter(|(_, c)| *c > 0)
                .map(|(k, c)| (k.clone(), c))
                .collect()
        };
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        let hot = self.hot.load();
        v.into_iter()
            .map(|(key, c)| KeyRate {
                hot: hot.contains(&key),
                rate: self.rate(c),
                key,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_keys_survive_a_long_tail() {
        let d = Detector::new(8, 1, Duration::from_secs(1), 100.0);
        // 667 accesses of "hot" spread among 2,000 distinct cold keys, which churn through
        // the other 7 entries and inherit counts of about 280 each.
        for i in 0..2000u32 {
            d.record(format!("cold{i}").as_bytes());
            if i % 3 == 0 {
                d.record(b"hot");
            }
        }
        assert!(d.tick().is_empty());
        let top = d.top(3);
        assert_eq!(top.first().map(|k| k.key.as_ref()), Some(&b"hot"[..]));
        assert!(d.is_hot(b"hot"));
        assert!(!d.is_hot(b"cold5"));
        // Memory stays bounded by the capacity.
        assert!(d.table.lock().keys.len() <= 8);
    }

    #[test]
    fn rate_follows_the_window_and_decays() {
        let d = Detector::new(16, 1, Duration::from_secs(1), 1000.0);
        for _ in 0..1500 {
            d.record(b"k");
        }
        d.tick();
        assert!(!d.is_hot(b"k"), "1500 counts < 2000 needed for 1000/s");
        for _ in 0..1500 {
            d.record(b"k");
        }
        d.tick();
        // 750 + 1500 = 2250 → 1125/s before halving.
        assert!(d.is_hot(b"k"));
        let r = d.top(1).first().map(|k| k.rate).unwrap_or_default();
        assert!((r - 562.5).abs() < 1.0, "after halving {r}");
        // Silence: the key cools down and is reported as such.
        let gone = d.tick();
        assert_eq!(gone, vec![Bytes::from_static(b"k")]);
        assert!(!d.is_hot(b"k"));
    }

    #[test]
    fn sampling_scales_the_estimate() {
        let d = Detector::new(16, 4, Duration::from_secs(1), 10.0);
        for _ in 0..4000 {
            d.record(b"k");
        }
        let r = d.top(1).first().map(|k| k.rate).unwrap_or_default();
        // 1000 sampled counts × 4 / 2 s-equivalent.
        assert!((r - 2000.0).abs() < 5.0, "{r}");
    }
}
