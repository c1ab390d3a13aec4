//! Hot-key detection: a count-min sketch of key popularity with constant memory, and a
//! bounded table of the keys whose estimate reached the threshold.
//!
//! One request in `sample` is counted (a thread-local counter, no shared write per request),
//! each counted request weighing `sample`, so counts stay in requests whatever the sampling.
//! The sample is adaptive: at every window it is set (a power of two, at least the configured
//! minimum) so that at most `max_samples` requests per second are counted, which bounds the
//! detector's cost at high request rates (the sketch and the doorkeeper miss the CPU caches:
//! about 5% of the proxy's CPU each when every request is counted at 300k requests per
//! second). A key is counted with `try_lock`, so a contended detector drops the sample
//! instead of making a request wait.
//! Every window all counts halve, so for a key seen at a steady rate `r` the count settles at
//! `2 · r · window`; the estimated rate is therefore `count / (2 · window)`. A key whose estimate reaches the threshold enters the
//! table (at most `capacity` keys; a full table gives up its least popular key for a more
//! popular one) and is hot while its estimate stays there; the hot set is republished (an
//! `ArcSwap` snapshot readers never lock) at every window.
//!
//! The sketch (`256 · capacity` 32-bit counters, 1 MiB for 1024 keys, in 64-byte blocks: a key
//! updates two counters in each of two blocks, two cache lines; conservative update) only ever
//! overestimates, and by little: a long tail of rare keys cannot push a frequent key out, as it
//! can in a top-k table that every new key enters, and every key above the threshold is found
//! however many rare keys there are. A doorkeeper bit set (128 KiB) tells keys seen before
//! from new ones, for the near cache's admission.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
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

/// Counters a key updates in the count-min sketch: two in each of two 64-byte blocks, so that
/// counting a key touches two cache lines.
const ROWS: usize = 4;

/// Sixteen counters on one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Block([u32; 16]);

/// Bits of the doorkeeper (128 KiB). It is cleared once `DOOR_BITS / 8` keys have been
/// added, which keeps its false positives near 1.5% (two bits per key).
const DOOR_BITS: usize = 1 << 20;

struct Table {
    /// The counters, `mask + 1` blocks of 16.
    sketch: Vec<Block>,
    mask: usize,
    hasher: foldhash::fast::FixedState,
    /// Keys whose estimate reached the hot count, with their latest estimate.
    keys: HashMap<Bytes, u32, foldhash::fast::RandomState>,
    /// A lower bound of the smallest estimate in `keys` when it is full: a key at or below
    /// it cannot take a place, and is turned away without scanning the table.
    floor: u32,
    /// TinyLFU's doorkeeper: a bit set of keys seen once (two bits in one word per key).
    door: Vec<u64>,
    door_keys: usize,
    /// Requests the sketch counted this window (one per sample).
    counted: u64,
}

impl Table {
    fn new(capacity: usize) -> Table {
        let counters = (capacity * 256).clamp(1 << 16, 1 << 24).next_power_of_two();
        Table {
            sketch: vec![Block::default(); counters / 16],
            mask: counters / 16 - 1,
            hasher: foldhash::fast::FixedState::with_seed(fastrand::u64(..)),
            keys: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            floor: 0,
            door: vec![0; DOOR_BITS / 64],
            door_keys: 0,
            counted: 0,
        }
    }

    /// Marks the key (hash `h`) as seen; returns whether it had been seen before.
    fn door(&mut self, h: u64) -> bool {
        let word = (h >> 40) as usize % (DOOR_BITS / 64);
        let m = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63));
        let Some(w) = self.door.get_mut(word) else {
            return false;
        };
        let again = *w & m == m;
        *w |= m;
        if !again {
            self.door_keys += 1;
            if self.door_keys >= DOOR_BITS / 8 {
                self.door.fill(0);
                self.door_keys = 0;
            }
        }
        again
    }

    /// Counts `weight` accesses (conservative update: only the smallest counters grow) and
    /// returns the key's new estimate.
    fn increment(&mut self, h: u64, weight: u32) -> u32 {
        // Two blocks, two counters in each (in different quarters): a rare key shares all four
        // counters with a frequent key only if it shares both blocks, so frequent keys make
        // no false hot keys of their neighbours.
        let blocks = [
            (h >> 12) as usize & self.mask,
            (h >> 36) as usize & self.mask,
        ];
        let cells: [(usize, usize); ROWS] = std::array::from_fn(|i| {
            let block = blocks.get(i / 2).copied().unwrap_or(0);
            (block, i * 4 + ((h >> (2 * i)) & 3) as usize)
        });
        let get = |sketch: &[Block], (b, i): (usize, usize)| {
            sketch
                .get(b)
                .and_then(|Block(c)| c.get(i))
                .copied()
                .unwrap_or(0)
        };
        let min = cells
            .iter()
            .map(|&c| get(&self.sketch, c))
            .min()
            .unwrap_or(0);
        let est = min.saturating_add(weight);
        for (b, i) in cells {
            if let Some(c) = self.sketch.get_mut(b).and_then(|Block(c)| c.get_mut(i)) {
                *c = (*c).max(est);
            }
        }
        est
    }

    /// Counts `weight` accesses; returns whether the doorkeeper had seen the key before.
    fn count(&mut self, key: &[u8], weight: u32, capacity: usize, hot_count: u32) -> bool {
        let h = self.hasher.hash_one(key);
        self.counted += 1;
        let est = self.increment(h, weight);
        let again = self.door(h);
        if let Some(c) = self.keys.get_mut(key) {
            *c = est;
            return again;
        }
        if est < hot_count {
            return again;
        }
        if self.keys.len() >= capacity {
            // More keys above the threshold than places: scan only when this key may beat the
            // least popular one (estimates in the table only grow between windows, so the
            // smallest one seen stays a lower bound).
            if est <= self.floor {
                return again;
            }
            let Some((least, &c)) = self.keys.iter().min_by_key(|(_, c)| **c) else {
                return again;
            };
            self.floor = c;
            if c >= est {
                return again;
            }
            let least = least.clone();
            self.keys.remove(&least);
        }
        self.keys.insert(Bytes::copy_from_slice(key), est);
        again
    }

    /// Ends a window: halves every count and forgets keys that went quiet.
    fn halve(&mut self) {
        for Block(b) in &mut self.sketch {
            for c in b {
                *c /= 2;
            }
        }
        self.keys.retain(|_, c| {
            *c /= 2;
            *c > 0
        });
        self.floor /= 2;
    }
}

pub struct Detector {
    /// The sketch counts one request in this many (adaptive, see the module doc).
    sample: AtomicU32,
    min_sample: u32,
    /// Requests per second the sketch counts at most (0: no cap, `sample` stays the minimum).
    max_samples: u64,
    capacity: usize,
    window: Duration,
    /// Count at which a key is hot (the threshold converted to the steady-state count).
    hot_count: u32,
    table: Mutex<Table>,
    hot: ArcSwap<HashSet<Bytes, foldhash::fast::RandomState>>,
}

/// The largest sample: the sketch counts at least one request in this many.
pub const MAX_SAMPLE: u32 = 1024;

impl Detector {
    /// `sample`: the smallest sample (1 = count every request while the rate is at most
    /// `max_samples` per second; 0 = no cap).
    pub fn new(
        capacity: usize,
        sample: u32,
        max_samples: u64,
        window: Duration,
        threshold: f64,
    ) -> Detector {
        let sample = sample.clamp(1, MAX_SAMPLE);
        let capacity = capacity.max(1);
        Detector {
            sample: AtomicU32::new(sample),
            min_sample: sample,
            max_samples,
            capacity,
            window,
            hot_count: (threshold * 2.0 * window.as_secs_f64())
                .ceil()
                .clamp(1.0, f64::from(u32::MAX)) as u32,
            table: Mutex::new(Table::new(capacity)),
            hot: ArcSwap::from_pointee(HashSet::default()),
        }
    }

    /// The current sample: one request in this many is counted.
    pub fn sample(&self) -> u32 {
        self.sample.load(Relaxed)
    }

    /// The sample for the next window, from the requests counted in the last one (`counted`
    /// samples at `sample`): the smallest power of two, at least the minimum, that keeps the
    /// sketch at `max_samples` per second or fewer.
    fn next_sample(&self, counted: u64, sample: u32) -> u32 {
        let secs = self.window.as_secs_f64();
        if self.max_samples == 0 || secs <= 0.0 {
            return self.min_sample;
        }
        let requests = counted as f64 * f64::from(sample);
        let need = (requests / (self.max_samples as f64 * secs)).ceil();
        let need = need.clamp(1.0, f64::from(MAX_SAMPLE)) as u32;
        need.next_power_of_two().clamp(self.min_sample, MAX_SAMPLE)
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one access to `key` (sampled; never blocks). Returns whether the key was counted
    /// before, since the doorkeeper was last cleared (a horizon of about `DOOR_BITS / 8`
    /// distinct keys, far longer than a window); false when this access was not counted.
    #[inline]
    pub fn record(&self, key: &[u8]) -> bool {
        let sample = self.sample.load(Relaxed);
        if sample > 1 {
            let take = TICK.with(|t| {
                let n = t.get().wrapping_add(1);
                t.set(n);
                n.is_multiple_of(sample)
            });
            if !take {
                return false;
            }
        }
        self.table
            .try_lock()
            .is_some_and(|mut t| t.count(key, sample, self.capacity, self.hot_count))
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
        f64::from(count) / (2.0 * w)
    }

    /// Ends a window: republishes the hot set, halves every count and sets the next window's
    /// sample.
    pub fn tick(&self) {
        let mut t = self.table.lock();
        let counted = std::mem::take(&mut t.counted);
        self.sample.store(
            self.next_sample(counted, self.sample.load(Relaxed)),
            Relaxed,
        );
        let hot: HashSet<Bytes, _> = t
            .keys
            .iter()
            .filter(|(_, c)| **c >= self.hot_count)
            .map(|(k, _)| k.clone())
            .collect();
        t.halve();
        drop(t);
        self.hot.store(Arc::new(hot));
    }

    /// The `n` most popular keys with their estimated rates, highest first.
    pub fn top(&self, n: usize) -> Vec<KeyRate> {
        let mut v: Vec<(Bytes, u32)> = {
            let t = self.table.lock();
            t.keys.iter().map(|(k, c)| (k.clone(), *c)).collect()
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
        let d = Detector::new(8, 1, 0, Duration::from_secs(1), 100.0);
        // 667 accesses of "hot" spread among 2,000 distinct cold keys, which churn through
        // the other 7 entries and inherit counts of about 280 each.
        for i in 0..2000u32 {
            d.record(format!("cold{i}").as_bytes());
            if i % 3 == 0 {
                d.record(b"hot");
            }
        }
        d.tick();
        let top = d.top(3);
        assert_eq!(top.first().map(|k| k.key.as_ref()), Some(&b"hot"[..]));
        assert!(d.is_hot(b"hot"));
        assert!(!d.is_hot(b"cold5"));
        // Memory stays bounded by the capacity.
        assert!(d.table.lock().keys.len() <= 8);
    }

    #[test]
    fn every_key_above_the_threshold_is_found_among_many_rare_ones() {
        // 100 keys at 40 counts each, interleaved with 100 000 keys seen once: in a top-k table
        // of 1024 entries that every new key enters, the smallest count soon exceeds 40 and the
        // 100 are churned out; the sketch keeps them.
        let d = Detector::new(1024, 1, 0, Duration::from_secs(1), 15.0);
        let mut rare = 0u32;
        for round in 0..40 {
            for k in 0..100 {
                d.record(format!("warm{k}").as_bytes());
                for _ in 0..25 {
                    d.record(format!("rare{rare}").as_bytes());
                    rare += 1;
                }
            }
            assert!(round < 29 || d.table.lock().keys.len() == 100);
        }
        d.tick();
        assert_eq!(d.hot_len(), 100);
        assert!((0..100).all(|k| d.is_hot(format!("warm{k}").as_bytes())));
        // Memory is the sketch plus at most `capacity` keys, whatever the number of keys seen.
        assert_eq!(d.table.lock().sketch.len() * 16, 4 * 65536);
    }

    #[test]
    fn a_full_table_keeps_the_most_popular_keys() {
        // Ten keys above the threshold, four places: the four most popular end up there.
        let d = Detector::new(4, 1, 0, Duration::from_secs(1), 1.0);
        for round in 0..100 {
            for i in 0..10 {
                if round < (i + 1) * 10 {
                    d.record(format!("k{i}").as_bytes());
                }
            }
        }
        let mut top: Vec<_> = d.top(10).into_iter().map(|k| k.key).collect();
        top.sort();
        assert_eq!(
            top,
            ["k6", "k7", "k8", "k9"].map(|k| Bytes::from_static(k.as_bytes()))
        );
    }

    #[test]
    fn the_doorkeeper_knows_keys_seen_before_until_it_is_cleared() {
        let d = Detector::new(16, 1, 0, Duration::from_secs(1), 1000.0);
        let again = |k: &[u8]| d.record(k);
        assert!(!again(b"a"));
        // Windows pass: the counts halve, the doorkeeper remembers.
        d.tick();
        d.tick();
        assert!(again(b"a"));
        let fresh = (0..1000)
            .filter(|i| !again(format!("k{i}").as_bytes()))
            .count();
        assert!(fresh >= 990, "{fresh} of 1000 new keys taken as new");
        // After DOOR_BITS / 8 new keys it starts over.
        let mut i = 0;
        while d.table.lock().door_keys > 0 {
            d.record(format!("fill{i}").as_bytes());
            i += 1;
        }
        assert!((DOOR_BITS / 8 - 1001..DOOR_BITS / 7).contains(&i), "{i}");
        assert!(!again(b"a"));
    }

    #[test]
    fn rate_follows_the_window_and_decays() {
        let d = Detector::new(16, 1, 0, Duration::from_secs(1), 1000.0);
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
        d.tick();
        assert!(!d.is_hot(b"k"));
    }

    #[test]
    fn sampling_scales_the_estimate() {
        let d = Detector::new(16, 4, 0, Duration::from_secs(1), 10.0);
        for _ in 0..4000 {
            d.record(b"k");
        }
        let r = d.top(1).first().map(|k| k.rate).unwrap_or_default();
        // 1000 sampled counts × 4 / 2 s-equivalent.
        assert!((r - 2000.0).abs() < 5.0, "{r}");
    }

    #[test]
    fn the_sample_follows_the_request_rate_and_counts_stay_in_requests() {
        // At most 1000 counted requests per second.
        let d = Detector::new(16, 1, 1000, Duration::from_secs(1), 100.0);
        for _ in 0..10_000 {
            d.record(b"k");
        }
        assert_eq!(d.table.lock().counted, 10_000);
        d.tick();
        // 10 000 requests in the window: one in 16 (the power of two at or above 10).
        assert_eq!(d.sample(), 16);
        for _ in 0..1600 {
            d.record(b"k");
        }
        // 100 counted, each weighing 16: 5000 (halved) + 1600 counts, 3300 per second.
        assert_eq!(d.table.lock().counted, 100);
        let r = d.top(1).first().map(|k| k.rate).unwrap_or_default();
        assert!((r - 3300.0).abs() < 1.0, "{r}");
        assert!(d.is_hot(b"k"));
        d.tick();
        assert_eq!(d.sample(), 2, "1600 requests in the window");
        d.tick();
        assert_eq!(d.sample(), 1, "quiet: back to the minimum");
        assert!(!d.record(b"new"));
        assert!(d.record(b"new"));
        // Without a cap the sample stays at the configured minimum.
        let fixed = Detector::new(16, 4, 0, Duration::from_secs(1), 100.0);
        for _ in 0..100_000 {
            fixed.record(b"k");
        }
        fixed.tick();
        assert_eq!(fixed.sample(), 4);
    }
}
