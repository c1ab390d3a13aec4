//! Key and operation generators. Pure: no I/O, no clock; everything random comes from a seeded
//! `SmallRng`, so a seed gives the same request stream every time.

use std::fmt;

use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, Normal, Zipf};

/// How one operation family (SET or GET) picks its keys; memtier's `--key-pattern` letters plus Z.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyPattern {
    /// `R`: uniform over the key range.
    Random,
    /// `S`: each connection walks the range in order, starting at its own offset, wrapping.
    Sequential,
    /// `G`: normal around `--key-median` (default: the middle) with `--key-stddev` (default:
    /// range/6), clamped to the range.
    Gaussian {
        median: Option<f64>,
        stddev: Option<f64>,
    },
    /// `Z`: Zipf with exponent `--key-zipf-exp`; rank 1 is the hottest key. Ranks are spread over
    /// the range by a fixed bijection so hot keys don't sit next to each other (and so don't all
    /// share one hash-tag group).
    Zipf { exponent: f64 },
}

impl KeyPattern {
    pub fn letter(self) -> char {
        match self {
            KeyPattern::Random => 'R',
            KeyPattern::Sequential => 'S',
            KeyPattern::Gaussian { .. } => 'G',
            KeyPattern::Zipf { .. } => 'Z',
        }
    }
}

/// SET:GET weights, memtier's `--ratio`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub set: u32,
    pub get: u32,
}

impl Ratio {
    pub fn parse(s: &str) -> Result<Ratio, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("--ratio {s:?}: expected SET:GET, e.g. 1:10"))?;
        let set = a
            .trim()
            .parse()
            .map_err(|_| format!("--ratio {s:?}: bad SET weight"))?;
        let get = b
            .trim()
            .parse()
            .map_err(|_| format!("--ratio {s:?}: bad GET weight"))?;
        if set == 0 && get == 0 {
            return Err(format!("--ratio {s:?}: both weights are zero"));
        }
        Ok(Ratio { set, get })
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.set, self.get)
    }
}

/// The operation kinds the generator emits. The discriminant indexes per-op statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Set = 0,
    Get = 1,
    Mget = 2,
    /// `MULTI`, one `INCR` per key, `EXEC`: one request, written as one pipelined unit.
    Tx = 3,
}

impl OpKind {
    pub const COUNT: usize = 4;
    pub const ALL: [OpKind; OpKind::COUNT] = [OpKind::Set, OpKind::Get, OpKind::Mget, OpKind::Tx];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Set => "SET",
            OpKind::Get => "GET",
            OpKind::Mget => "MGET",
            OpKind::Tx => "TX",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The key range and its naming: `prefix` + id, or `prefix{group}:id` with hash-tag groups of
/// `group_size` consecutive ids (so they share a cluster slot).
#[derive(Clone, Debug)]
pub struct KeySpace {
    pub prefix: Vec<u8>,
    pub min: u64,
    /// Inclusive.
    pub max: u64,
    /// 0 = no hash tags.
    pub group_size: u64,
}

impl KeySpace {
    /// Number of keys; at least 1 (validated `min <= max`).
    pub fn len(&self) -> u64 {
        self.max.saturating_sub(self.min).saturating_add(1)
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the key for `id` to `out`.
    pub fn write_key(&self, id: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        if let Some(group) = id.checked_div(self.group_size) {
            out.push(b'{');
            push_decimal(out, group);
            out.extend_from_slice(b"}:");
        }
        push_decimal(out, id);
    }

    /// The ids in `id`'s hash-tag group, clipped to the range (inclusive bounds).
    pub fn group_of(&self, id: u64) -> (u64, u64) {
        if self.group_size == 0 {
            return (id, id);
        }
        let lo = (id / self.group_size) * self.group_size;
        let hi = lo.saturating_add(self.group_size - 1);
        (lo.max(self.min), hi.min(self.max))
    }
}

/// Appends `n` in decimal without allocating.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Picks key ids in `[min, max]` following one `KeyPattern`.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    Uniform {
        min: u64,
        max: u64,
    },
    Sequential {
        min: u64,
        len: u64,
        next: u64,
    },
    Gaussian {
        min: u64,
        max: u64,
        normal: Normal<f64>,
    },
    Zipf {
        min: u64,
        len: u64,
        mult: u64,
        zipf: Zipf<f64>,
    },
}

impl KeyChooser {
    /// `conn`/`conns` place a sequential walker's start so connections don't all write the same
    /// key at the same moment.
    pub fn new(
        pattern: KeyPattern,
        min: u64,
        max: u64,
        conn: u64,
        conns: u64,
    ) -> Result<KeyChooser, String> {
        let len = max.saturating_sub(min).saturating_add(1);
        Ok(match pattern {
            KeyPattern::Random => KeyChooser::Uniform { min, max },
            KeyPattern::Sequential => {
                let start = if conns == 0 {
                    0
                } else {
                    ((u128::from(len) * u128::from(conn)) / u128::from(conns)) as u64
                };
                KeyChooser::Sequential {
                    min,
                    len,
                    next: start % len,
                }
            }
            KeyPattern::Gaussian { median, stddev } => {
                let median = median.unwrap_or(min as f64 + (len as f64 - 1.0) / 2.0);
                let stddev = stddev.unwrap_or(len as f64 / 6.0);
                let normal = Normal::new(median, stddev)
                    .map_err(|e| format!("gaussian key pattern: {e}"))?;
                KeyChooser::Gaussian { min, max, normal }
            }
            KeyPattern::Zipf { exponent } => {
                let zipf = Zipf::new(len as f64, exponent)
                    .map_err(|e| format!("--key-zipf-exp {exponent}: {e}"))?;
                KeyChooser::Zipf {
                    min,
                    len,
                    mult: coprime_multiplier(len),
                    zipf,
                }
            }
        })
    }

    pub fn next_id<R: Rng + ?Sized>(&mut self, rng: &mut R) -> u64 {
        match self {
            KeyChooser::Uniform { min, max } => rng.random_range(*min..=*max),
            KeyChooser::Sequential { min, len, next } => {
                let id = *min + *next;
                *next = (*next + 1) % *len;
                id
            }
            KeyChooser::Gaussian { min, max, normal } => {
                let x = normal.sample(rng).round();
                // `as` saturates for out-of-range floats (and maps NaN to 0), then we clamp.
                (x.max(0.0) as u64).clamp(*min, *max)
            }
            KeyChooser::Zipf {
                min,
                len,
                mult,
                zipf,
            } => *min + zipf_rank_to_offset(zipf.sample(rng), *len, *mult),
        }
    }
}

/// Maps a Zipf sample (1..=len, as f64) to an offset in `0..len` through the bijection
/// `r ↦ r·mult mod len` (bijective because `gcd(mult, len) = 1`).
pub fn zipf_rank_to_offset(sample: f64, len: u64, mult: u64) -> u64 {
    let rank0 = (sample as u64).saturating_sub(1).min(len - 1);
    ((u128::from(rank0) * u128::from(mult)) % u128::from(len)) as u64
}

/// An odd multiplier near the golden ratio of `len` that is coprime with `len`.
pub fn coprime_multiplier(len: u64) -> u64 {
    if len <= 2 {
        return 1;
    }
    let mut m = ((len as f64 * 0.618_033_988_75) as u64) | 1;
    while gcd(m, len) != 1 {
        m += 2;
    }
    m % len
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Value sizes: fixed (`min == max`) or uniform in `[min, max]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeRange {
    pub min: usize,
    pub max: usize,
}

impl SizeRange {
    /// memtier's `--data-size-range=MIN-MAX`.
    pub fn parse(s: &str) -> Result<SizeRange, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("--data-size-range {s:?}: expected MIN-MAX"))?;
        let min: usize = a
            .trim()
            .parse()
            .map_err(|_| format!("--data-size-range {s:?}: bad MIN"))?;
        let max: usize = b
            .trim()
            .parse()
            .map_err(|_| format!("--data-size-range {s:?}: bad MAX"))?;
        if min > max {
            return Err(format!("--data-size-range {s:?}: MIN > MAX"));
        }
        Ok(SizeRange { min, max })
    }
}

/// Everything the generator needs; shared by all connections.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub keys: KeySpace,
    pub ratio: Ratio,
    pub set_pattern: KeyPattern,
    pub get_pattern: KeyPattern,
    /// Share of reads sent as MGET, in `[0, 1]`.
    pub mget_ratio: f64,
    pub mget_keys: usize,
    /// Commands per transaction; 0 = no transactions. When set, every request is a
    /// transaction and the SET:GET ratio and MGET share do not apply.
    pub tx_commands: usize,
    pub value_size: SizeRange,
}

/// Per-connection stream of operations. SET vs read follows the ratio exactly in every cycle of
/// `set + get` operations (SETs first, as memtier does); MGETs are spread through the reads by an
/// error accumulator, so their share is exact to within one operation.
#[derive(Debug)]
pub struct OpGen {
    rng: SmallRng,
    set_keys: KeyChooser,
    get_keys: KeyChooser,
    ratio: Ratio,
    cycle_pos: u32,
    mget_ratio: f64,
    mget_acc: f64,
    mget_keys: usize,
    tx_commands: usize,
    space: KeySpace,
    value_size: SizeRange,
}

impl OpGen {
    pub fn new(spec: &WorkloadSpec, seed: u64, conn: u64, conns: u64) -> Result<OpGen, String> {
        let (min, max) = (spec.keys.min, spec.keys.max);
        Ok(OpGen {
            rng: SmallRng::seed_from_u64(seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            set_keys: KeyChooser::new(spec.set_pattern, min, max, conn, conns)?,
            get_keys: KeyChooser::new(spec.get_pattern, min, max, conn, conns)?,
            ratio: spec.ratio,
            cycle_pos: 0,
            mget_ratio: spec.mget_ratio.clamp(0.0, 1.0),
            mget_acc: 0.0,
            mget_keys: spec.mget_keys.max(1),
            tx_commands: spec.tx_commands,
            space: spec.keys.clone(),
            value_size: spec.value_size,
        })
    }

    /// The next operation; fills `keys` with its key ids and returns the value length (SET only,
    /// 0 otherwise).
    pub fn next_op(&mut self, keys: &mut Vec<u64>) -> (OpKind, usize) {
        keys.clear();
        if self.tx_commands > 0 {
            self.fill_tx(keys);
            return (OpKind::Tx, 0);
        }
        let cycle = self.ratio.set + self.ratio.get;
        let is_set = self.cycle_pos < self.ratio.set;
        self.cycle_pos = (self.cycle_pos + 1) % cycle.max(1);
        if is_set {
            keys.push(self.set_keys.next_id(&mut self.rng));
            let len = if self.value_size.min == self.value_size.max {
                self.value_size.min
            } else {
                self.rng
                    .random_range(self.value_size.min..=self.value_size.max)
            };
            return (OpKind::Set, len);
        }
        self.mget_acc += self.mget_ratio;
        if self.mget_acc >= 1.0 - 1e-9 {
            self.mget_acc -= 1.0;
            self.fill_mget(keys);
            return (OpKind::Mget, 0);
        }
        keys.push(self.get_keys.next_id(&mut self.rng));
        (OpKind::Get, 0)
    }

    /// With hash-tag groups, an MGET takes consecutive ids inside one group (wrapping inside it),
    /// starting at a key drawn by the GET pattern: all keys share a slot and are distinct. The
    /// count is capped by the group's size. Without groups, each key is drawn independently.
    fn fill_mget(&mut self, keys: &mut Vec<u64>) {
        let first = self.get_keys.next_id(&mut self.rng);
        if self.space.group_size == 0 {
            keys.push(first);
            for _ in 1..self.mget_keys {
                keys.push(self.get_keys.next_id(&mut self.rng));
            }
            return;
        }
        let (lo, hi) = self.space.group_of(first);
        let span = hi - lo + 1;
        let n = (self.mget_keys as u64).min(span);
        for i in 0..n {
            keys.push(lo + (first - lo + i) % span);
        }
    }

    /// A transaction's keys must share a slot (a Redis Cluster node and the proxy refuse one
    /// that spans slots). With hash-tag groups: consecutive ids inside one group from a key
    /// drawn by the SET pattern, wrapping inside the group (so ids repeat when the group is
    /// smaller than the transaction). Without groups: that one key, once per command.
    fn fill_tx(&mut self, keys: &mut Vec<u64>) {
        let first = self.set_keys.next_id(&mut self.rng);
        let (lo, hi) = self.space.group_of(first);
        let span = hi - lo + 1;
        for i in 0..self.tx_commands as u64 {
            keys.push(lo + (first - lo + i) % span);
        }
    }
}

/// Writes every key of a range once, in order: the prefill phase.
#[derive(Debug)]
pub struct PrefillGen {
    next: u64,
    /// Exclusive.
    end: u64,
    rng: SmallRng,
    value_size: SizeRange,
}

impl PrefillGen {
    /// The `part`-th of `parts` contiguous slices of the key range.
    pub fn new(spec: &WorkloadSpec, seed: u64, part: u64, parts: u64) -> PrefillGen {
        let len = u128::from(spec.keys.len());
        let parts = u128::from(parts.max(1));
        let lo = (len * u128::from(part) / parts) as u64;
        let hi = (len * (u128::from(part) + 1) / parts) as u64;
        PrefillGen {
            next: spec.keys.min + lo,
            end: spec.keys.min + hi,
            rng: SmallRng::seed_from_u64(seed ^ part),
            value_size: spec.value_size,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }

    pub fn next_op(&mut self, keys: &mut Vec<u64>) -> Option<(OpKind, usize)> {
        keys.clear();
        if self.next >= self.end {
            return None;
        }
        keys.push(self.next);
        self.next += 1;
        let len = if self.value_size.min == self.value_size.max {
            self.value_size.min
        } else {
            self.rng
                .random_range(self.value_size.min..=self.value_size.max)
        };
        Some((OpKind::Set, len))
    }
}

/// A value buffer of the largest size, filled with printable pseudo-random bytes; a SET of
/// length `n` sends its first `n` bytes.
pub fn value_bytes(max: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..max)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership::Slot;
    use std::collections::HashMap;

    fn spec(min: u64, max: u64) -> WorkloadSpec {
        WorkloadSpec {
            keys: KeySpace {
                prefix: b"key:".to_vec(),
                min,
                max,
                group_size: 0,
            },
            ratio: Ratio { set: 1, get: 10 },
            set_pattern: KeyPattern::Random,
            get_pattern: KeyPattern::Random,
            mget_ratio: 0.0,
            mget_keys: 10,
            tx_commands: 0,
            value_size: SizeRange { min: 64, max: 64 },
        }
    }

    fn generalized_harmonic(n: u64, s: f64) -> f64 {
        (1..=n).map(|k| (k as f64).powf(-s)).sum()
    }

    #[test]
    fn zipf_top_one_percent_gets_the_expected_share() {
        let n = 10_000u64;
        for s in [0.99, 1.2] {
            let mut sp = spec(0, n - 1);
            sp.get_pattern = KeyPattern::Zipf { exponent: s };
            sp.ratio = Ratio { set: 0, get: 1 };
            let mut g = OpGen::new(&sp, 42, 0, 1).expect("generator");
            let mut counts: HashMap<u64, u64> = HashMap::new();
            let mut keys = Vec::new();
            let samples = 400_000u64;
            for _ in 0..samples {
                let (op, _) = g.next_op(&mut keys);
                assert_eq!(op, OpKind::Get);
                assert!(keys[0] < n);
                *counts.entry(keys[0]).or_default() += 1;
            }
            let mut freq: Vec<u64> = counts.into_values().collect();
            freq.sort_unstable_by(|a, b| b.cmp(a));
            let top: u64 = freq.iter().take((n / 100) as usize).sum();
            let observed = top as f64 / samples as f64;
            let expected = generalized_harmonic(n / 100, s) / generalized_harmonic(n, s);
            assert!(
                (observed - expected).abs() < 0.02,
                "s={s}: top 1% share {observed:.4}, expected {expected:.4}"
            );
        }
    }

    #[test]
    fn zipf_rank_mapping_is_a_bijection() {
        for len in [1u64, 2, 3, 10, 97, 100, 1000, 4096] {
            let m = coprime_multiplier(len);
            let mut seen = vec![false; len as usize];
            for r in 1..=len {
                let off = zipf_rank_to_offset(r as f64, len, m);
                assert!(!seen[off as usize], "len {len}: offset {off} twice");
                seen[off as usize] = true;
            }
        }
    }

    #[test]
    fn ratio_is_exact_per_cycle_and_mget_share_of_reads() {
        let mut sp = spec(0, 999);
        sp.ratio = Ratio { set: 1, get: 10 };
        sp.mget_ratio = 0.2;
        let mut g = OpGen::new(&sp, 7, 0, 1).expect("generator");
        let mut keys = Vec::new();
        let mut n = [0u64; OpKind::COUNT];
        for _ in 0..11_000 {
            let (op, len) = g.next_op(&mut keys);
            n[op.index()] += 1;
            match op {
                OpKind::Set => assert_eq!((keys.len(), len), (1, 64)),
                OpKind::Get => assert_eq!(keys.len(), 1),
                OpKind::Mget => assert_eq!(keys.len(), 10),
                OpKind::Tx => unreachable!("no transactions configured"),
            }
        }
        assert_eq!(n[OpKind::Set.index()], 1_000);
        assert_eq!(n[OpKind::Get.index()] + n[OpKind::Mget.index()], 10_000);
        assert_eq!(n[OpKind::Mget.index()], 2_000);
    }

    #[test]
    fn write_only_and_read_only_ratios() {
        let mut keys = Vec::new();
        let mut sp = spec(0, 9);
        sp.ratio = Ratio { set: 1, get: 0 };
        let mut g = OpGen::new(&sp, 1, 0, 1).expect("generator");
        assert!((0..100).all(|_| g.next_op(&mut keys).0 == OpKind::Set));
        sp.ratio = Ratio { set: 0, get: 3 };
        let mut g = OpGen::new(&sp, 1, 0, 1).expect("generator");
        assert!((0..100).all(|_| g.next_op(&mut keys).0 == OpKind::Get));
    }

    #[test]
    fn mget_in_hash_tag_groups_is_same_slot_and_distinct() {
        let mut sp = spec(0, 99_999);
        sp.keys.group_size = 16;
        sp.ratio = Ratio { set: 0, get: 1 };
        sp.mget_ratio = 1.0;
        sp.mget_keys = 10;
        sp.get_pattern = KeyPattern::Zipf { exponent: 1.0 };
        let mut g = OpGen::new(&sp, 3, 0, 1).expect("generator");
        let mut keys = Vec::new();
        let mut name = Vec::new();
        for _ in 0..2_000 {
            let (op, _) = g.next_op(&mut keys);
            assert_eq!(op, OpKind::Mget);
            assert_eq!(keys.len(), 10);
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 10, "keys are distinct");
            let slots: Vec<Slot> = keys
                .iter()
                .map(|&id| {
                    name.clear();
                    sp.keys.write_key(id, &mut name);
                    Slot::for_key(&name)
                })
                .collect();
            assert!(slots.iter().all(|s| *s == slots[0]), "one slot per MGET");
        }
    }

    #[test]
    fn transactions_keep_their_keys_in_one_slot() {
        let mut sp = spec(0, 99_999);
        sp.tx_commands = 3;
        sp.mget_ratio = 0.5; // ignored: every request is a transaction
        let mut keys = Vec::new();
        let mut name = Vec::new();
        let slots = |sp: &WorkloadSpec, keys: &[u64], name: &mut Vec<u8>| -> Vec<Slot> {
            keys.iter()
                .map(|&id| {
                    name.clear();
                    sp.keys.write_key(id, name);
                    Slot::for_key(name)
                })
                .collect()
        };
        // Without hash-tag groups: one key, once per command.
        let mut g = OpGen::new(&sp, 5, 0, 1).expect("generator");
        for _ in 0..100 {
            assert_eq!(g.next_op(&mut keys), (OpKind::Tx, 0));
            assert_eq!(keys.len(), 3);
            assert!(keys.iter().all(|&k| k == keys[0]), "{keys:?}");
        }
        // With groups: distinct consecutive ids of one group, one slot.
        sp.keys.group_size = 16;
        let mut g = OpGen::new(&sp, 5, 0, 1).expect("generator");
        for _ in 0..1_000 {
            assert_eq!(g.next_op(&mut keys).0, OpKind::Tx);
            let mut d = keys.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 3, "distinct: {keys:?}");
            assert!(keys.iter().all(|&k| k / 16 == keys[0] / 16), "{keys:?}");
            let s = slots(&sp, &keys, &mut name);
            assert!(s.iter().all(|x| *x == s[0]));
        }
        // A group smaller than the transaction: ids repeat, the slot is still one.
        sp.keys.group_size = 2;
        sp.tx_commands = 5;
        let mut g = OpGen::new(&sp, 5, 0, 1).expect("generator");
        g.next_op(&mut keys);
        assert_eq!(keys.len(), 5);
        assert!(keys.iter().all(|&k| k / 2 == keys[0] / 2), "{keys:?}");
    }

    #[test]
    fn mget_key_count_is_capped_by_a_clipped_group() {
        let mut sp = spec(0, 4); // the last group of 8 holds only ids 0..=4
        sp.keys.group_size = 8;
        sp.ratio = Ratio { set: 0, get: 1 };
        sp.mget_ratio = 1.0;
        sp.mget_keys = 6;
        let mut g = OpGen::new(&sp, 3, 0, 1).expect("generator");
        let mut keys = Vec::new();
        g.next_op(&mut keys);
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn key_names() {
        let mut ks = KeySpace {
            prefix: b"memtier-".to_vec(),
            min: 0,
            max: 100,
            group_size: 0,
        };
        let mut out = Vec::new();
        ks.write_key(0, &mut out);
        ks.write_key(1234567890123, &mut out);
        assert_eq!(out, b"memtier-0memtier-1234567890123");
        ks.group_size = 10;
        out.clear();
        ks.write_key(37, &mut out);
        assert_eq!(out, b"memtier-{3}:37");
        out.clear();
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn sequential_walks_and_wraps_from_a_per_connection_offset() {
        let mut c = KeyChooser::new(KeyPattern::Sequential, 10, 19, 1, 2).expect("chooser");
        let mut rng = SmallRng::seed_from_u64(0);
        let ids: Vec<u64> = (0..7).map(|_| c.next_id(&mut rng)).collect();
        assert_eq!(ids, [15, 16, 17, 18, 19, 10, 11]);
    }

    #[test]
    fn uniform_and_gaussian_stay_in_range() {
        let mut rng = SmallRng::seed_from_u64(0);
        for p in [
            KeyPattern::Random,
            KeyPattern::Gaussian {
                median: None,
                stddev: Some(1e6),
            },
        ] {
            let mut c = KeyChooser::new(p, 100, 199, 0, 1).expect("chooser");
            assert!((0..10_000).all(|_| (100..=199).contains(&c.next_id(&mut rng))));
        }
    }

    #[test]
    fn prefill_partitions_cover_the_range_once() {
        let sp = spec(5, 1004);
        let mut seen = vec![0u8; 1000];
        let mut keys = Vec::new();
        for part in 0..7 {
            let mut p = PrefillGen::new(&sp, 1, part, 7);
            while let Some((op, len)) = p.next_op(&mut keys) {
                assert_eq!((op, len), (OpKind::Set, 64));
                seen[(keys[0] - 5) as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    #[test]
    fn size_range_and_ratio_parsing() {
        assert_eq!(
            SizeRange::parse("32-1024"),
            Ok(SizeRange { min: 32, max: 1024 })
        );
        assert!(SizeRange::parse("10-1").is_err());
        assert_eq!(Ratio::parse("1:10"), Ok(Ratio { set: 1, get: 10 }));
        assert!(Ratio::parse("0:0").is_err());
        assert!(Ratio::parse("3").is_err());
    }
}
