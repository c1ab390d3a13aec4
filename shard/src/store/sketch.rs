//! How often each key is used, in constant memory: a count-min sketch with 4-bit counters
//! that are halved periodically, as TinyLFU's "frequency sketch" (Einziger, Friedman, Manes:
//! *TinyLFU: A Highly Efficient Cache Admission Policy*, 2017).
//!
//! Every key access increments four counters chosen by the key's hash, all in one 64-byte
//! block of the table (one cache line); the key's frequency is the smallest of the four.
//! Only the smallest of the four are incremented (conservative update), which keeps
//! collisions from inflating rare keys. After `sample` increments every counter is halved, so
//! the sketch forgets old popularity and counts stay below the 4-bit ceiling of 15.
//!
//! Connections share it without locks: counters are updated with compare-and-swap, and an
//! update that races with halving may be lost, which only makes an estimate slightly low.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters per 64-bit word.
const PER_WORD: usize = 16;
/// Words per block (64 bytes).
const BLOCK: usize = 8;
const MAX_COUNT: u64 = 15;
/// Halving mask: drops each counter's low bit before the shift carries it into its neighbour.
const HALF: u64 = 0x7777_7777_7777_7777;
/// The smallest table (32 KiB): tiny budgets still get a sketch that does not halve every few
/// hundred accesses.
const MIN_WORDS: usize = 4096;

pub struct FrequencySketch {
    table: Box<[AtomicU64]>,
    /// Number of blocks - 1 (a power of two minus one).
    block_mask: u64,
    /// Increments since the last halving.
    additions: AtomicU64,
    /// Increments between two halvings.
    sample: u64,
    hasher: foldhash::fast::FixedState,
}

impl FrequencySketch {
    /// A sketch for telling apart the frequencies of about `keys` keys (the number that fit
    /// in the cache it guards): 16 counters per key (at least 64 Ki counters), halving every
    /// 10 accesses per key.
    pub fn new(keys: usize) -> FrequencySketch {
        let words = keys.clamp(MIN_WORDS, 1 << 24).next_power_of_two();
        FrequencySketch {
            table: (0..words).map(|_| AtomicU64::new(0)).collect(),
            block_mask: (words / BLOCK - 1) as u64,
            additions: AtomicU64::new(0),
            sample: 10 * words as u64,
            hasher: foldhash::fast::FixedState::with_seed(fastrand::u64(..)),
        }
    }

    /// Bytes of the counter table.
    pub fn bytes(&self) -> usize {
        self.table.len() * 8
    }

    /// The key's hash, as the other methods take it.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The four counters of `hash`: (word index, bit shift), each in its own pair of words of
    /// the key's block.
    fn counters(&self, hash: u64) -> [(usize, u32); 4] {
        let block = ((hash & self.block_mask) as usize) * BLOCK;
        // The block came from the low bits; spread the high ones for the positions.
        let h = (hash >> 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        std::array::from_fn(|i| {
            let bits = h >> (i * 16 + 1);
            let word = block + i * 2 + (bits & 1) as usize;
            let shift = ((bits >> 1) as u32 % PER_WORD as u32) * 4;
            (word, shift)
        })
    }

    fn count(&self, (word, shift): (usize, u32)) -> u64 {
        (self.table[word].load(Relaxed) >> shift) & MAX_COUNT
    }

    /// Estimated accesses of the key since about the last halving (0..=15).
    pub fn frequency(&self, hash: u64) -> u8 {
        let min = self
            .counters(hash)
            .into_iter()
            .map(|c| self.count(c))
            .min()
            .unwrap_or(0);
        min as u8
    }

    /// Counts one access to the key.
    pub fn increment(&self, hash: u64) {
        let counters = self.counters(hash);
        let counts = counters.map(|c| self.count(c));
        let min = counts.iter().copied().min().unwrap_or(MAX_COUNT);
        if min >= MAX_COUNT {
            return;
        }
        for ((word, shift), count) in counters.into_iter().zip(counts) {
            if count != min {
                continue;
            }
            // Add one unless another access got there first (then this one is counted too).
            let _ = self.table[word].fetch_update(Relaxed, Relaxed, |v| {
                ((v >> shift) & MAX_COUNT == min).then_some(v + (1 << shift))
            });
        }
        if self.additions.fetch_add(1, Relaxed) + 1 == self.sample {
            self.halve();
        }
    }

    /// Halves every counter (only the increment that reached `sample` gets here).
    fn halve(&self) {
        for w in self.table.iter() {
            let _ = w.fetch_update(Relaxed, Relaxed, |v| Some((v >> 1) & HALF));
        }
        self.additions.fetch_sub(self.sample / 2, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accesses_up_to_fifteen() {
        let s = FrequencySketch::new(1024);
        let h = s.hash(b"key");
        assert_eq!(s.frequency(h), 0);
        for i in 1..=20u8 {
            s.increment(h);
            assert_eq!(s.frequency(h), i.min(15));
        }
        assert_eq!(s.frequency(s.hash(b"other")), 0);
    }

    #[test]
    fn halving_ages_old_counts() {
        let s = FrequencySketch::new(0);
        let hot = s.hash(b"hot");
        for _ in 0..12 {
            s.increment(hot);
        }
        assert_eq!(s.frequency(hot), 12);
        // Distinct keys up to the sample size: every counter is halved once.
        for i in 12..s.sample {
            s.increment(s.hash(&i.to_le_bytes()));
        }
        assert_eq!(s.additions.load(Relaxed), s.sample / 2);
        let f = s.frequency(hot);
        assert!(
            (6..=7).contains(&f),
            "12 halved is 6 (+1 if a collision added): {f}"
        );
    }

    #[test]
    fn frequent_keys_stand_out_among_many_rare_ones() {
        // 100 hot keys used 10 times each among 20 000 keys used once, in the smallest table
        // (4096 keys' worth).
        let s = FrequencySketch::new(0);
        let h = |i: u64| s.hash(&i.to_le_bytes());
        for round in 0..10u64 {
            for i in 0..2_000u64 {
                s.increment(h(100 + round * 2_000 + i));
                if i < 100 {
                    s.increment(h(i));
                }
            }
        }
        // No halving yet (21 000 increments < 40 960): a count-min sketch never underestimates.
        assert!((0..100).all(|i| s.frequency(h(i)) >= 10));
        let inflated = (100..20_100).filter(|&i| s.frequency(h(i)) > 2).count();
        assert!(
            inflated < 100,
            "rare keys estimated above 2: {inflated} of 20 000"
        );
    }
}
