//! Sorted sets: the value, its accounting, OBJECT ENCODING, and the codec payload.
//!
//! Two representations, as in Redis:
//!
//! - **small** (`listpack`): one vector of `(score, member)` sorted by score then member. A
//!   member lookup is a linear scan, as in Redis's listpack, and is bounded by the limits
//!   below (128 entries, members of at most 64 bytes).
//! - **large** (`skiplist`): a member → score hash map for O(1) ZSCORE, plus an
//!   order-statistic list for rank and range queries. The list is a two-level structure of
//!   sorted chunks of at most [`CHUNK_MAX`] entries with a Fenwick tree over the chunk sizes:
//!   locating an entry is a binary search over the chunks' last entries then inside one chunk
//!   (O(log n)), its rank is a Fenwick prefix sum (O(log n)), and the entry of a given rank a
//!   Fenwick descent (O(log n)). An insert or removal moves at most `CHUNK_MAX` entries inside
//!   its chunk (a bounded memmove); splitting a full chunk or dropping an empty one rebuilds
//!   the Fenwick tree, O(n / CHUNK_MAX), once every `CHUNK_MAX / 2` writes at most. No
//!   maintained crate offers an order-statistic map keyed by `(f64, bytes)` with this
//!   compactness (an entry is 40 bytes, in chunks, with no per-node allocation), hence our own.
//!   The member's bytes are shared by the map and the list (`Bytes` clones of one allocation).
//!
//! Conversion is one-way, small to large, as Redis's: a large set that shrinks stays large.
//! The value keeps the sum of its members' lengths as it changes, so accounting a write is
//! O(1).

use std::cmp::Ordering;

use bytes::Bytes;
use hashbrown::HashMap;

/// Redis's `zset-max-listpack-entries` and `zset-max-listpack-value` defaults.
pub const LISTPACK_MAX_ENTRIES: usize = 128;
pub const LISTPACK_MAX_VALUE: usize = 64;

/// Entries per chunk of the large representation before it splits in two.
const CHUNK_MAX: usize = 256;

/// Accounted bytes per member of a small set beyond its bytes: its 40-byte entry and the
/// vector's spare capacity.
pub const SMALL_OVERHEAD: usize = 48;
/// Accounted bytes per member of a large set beyond its bytes: a map slot (member header and
/// score, control byte, load factor), a list entry in a partly full chunk, and the shared
/// allocation header of the member's bytes.
pub const LARGE_OVERHEAD: usize = 128;

/// One member with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub score: f64,
    pub member: Bytes,
}

/// Redis's order: by score, then by member bytes. Scores are never NaN.
#[inline]
pub fn cmp(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

impl Entry {
    #[inline]
    fn cmp_to(&self, score: f64, member: &[u8]) -> Ordering {
        cmp(self.score, &self.member, score, member)
    }
}

/// A sorted set value.
#[derive(Debug, Clone, Default)]
pub struct ZSetValue {
    repr: Repr,
    /// Sum of the members' lengths.
    bytes: usize,
}

#[derive(Debug, Clone)]
enum Repr {
    Small(Vec<Entry>),
    Large(Box<Large>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Small(Vec::new())
    }
}

#[derive(Debug, Clone, Default)]
struct Large {
    map: HashMap<Bytes, f64>,
    list: ChunkList,
}

/// Sorted chunks with a Fenwick tree over their lengths (see the module comment).
#[derive(Debug, Clone, Default)]
struct ChunkList {
    chunks: Vec<Vec<Entry>>,
    /// Fenwick tree (1-based, stored 0-based) of `chunks[i].len()`.
    tree: Vec<usize>,
    len: usize,
}

impl ChunkList {
    fn rebuild(&mut self) {
        let n = self.chunks.len();
        self.tree.clear();
        self.tree.extend(self.chunks.iter().map(Vec::len));
        for i in 0..n {
            let parent = i | (i + 1);
            if parent < n {
                self.tree[parent] += self.tree[i];
            }
        }
    }

    fn add(&mut self, mut i: usize, delta: isize) {
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i |= i + 1;
        }
    }

    /// Entries in chunks `..i`.
    fn prefix(&self, i: usize) -> usize {
        let (mut sum, mut i) = (0, i);
        while i > 0 {
            sum += self.tree[i - 1];
            i &= i - 1;
        }
        sum
    }

    /// The chunk and offset of rank `r` (`r < len`).
    fn locate(&self, mut r: usize) -> (usize, usize) {
        let n = self.tree.len();
        let mut pos = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next - 1] <= r {
                pos = next;
                r -= self.tree[next - 1];
            }
            step >>= 1;
        }
        (pos, r)
    }

    /// The chunk an entry `(score, member)` belongs in: the first whose last entry is not
    /// below it (the last chunk if none).
    fn chunk_for(&self, score: f64, member: &[u8]) -> usize {
        let i = self.chunks.partition_point(|c| {
            c.last()
                .is_some_and(|e| e.cmp_to(score, member) == Ordering::Less)
        });
        i.min(self.chunks.len().saturating_sub(1))
    }

    fn insert(&mut self, e: Entry) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(vec![e]);
            self.rebuild();
            return;
        }
        let ci = self.chunk_for(e.score, &e.member);
        let chunk = &mut self.chunks[ci];
        let at = chunk.partition_point(|x| x.cmp_to(e.score, &e.member) == Ordering::Less);
        chunk.insert(at, e);
        if chunk.len() > CHUNK_MAX {
            let tail = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(ci + 1, tail);
            self.rebuild();
        } else {
            self.add(ci, 1);
        }
    }

    /// The rank of `(score, member)`, if present.
    fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_for(score, member);
        let at = self.chunks[ci]
            .binary_search_by(|x| x.cmp_to(score, member))
            .ok()?;
        Some(self.prefix(ci) + at)
    }

    fn remove(&mut self, score: f64, member: &[u8]) -> Option<Entry> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_for(score, member);
        let chunk = &mut self.chunks[ci];
        let at = chunk.binary_search_by(|x| x.cmp_to(score, member)).ok()?;
        let e = chunk.remove(at);
        let left = chunk.len();
        self.len -= 1;
        if left == 0 {
            self.chunks.remove(ci);
            self.rebuild();
        } else {
            // Merge a small chunk into its successor now and then, so chunks stay dense.
            if left < CHUNK_MAX / 8
                && ci + 1 < self.chunks.len()
                && self.chunks[ci + 1].len() + left <= CHUNK_MAX
            {
                let next = self.chunks.remove(ci + 1);
                self.chunks[ci].extend(next);
                self.chunks[ci].shrink_to_fit();
                self.rebuild();
            } else {
                self.add(ci, -1);
            }
        }
        Some(e)
    }

    fn get(&self, r: usize) -> Option<&Entry> {
        if r >= self.len {
            return None;
        }
        let (ci, off) = self.locate(r);
        self.chunks.get(ci)?.get(off)
    }

    /// The first rank whose entry fails `pred` (`pred` holds for a prefix of the order).
    fn partition_point(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| c.last().is_some_and(&pred));
        match self.chunks.get(ci) {
            None => self.len,
            Some(c) => self.prefix(ci) + c.partition_point(&pred),
        }
    }

    fn iter_from(&self, r: usize) -> Iter<'_> {
        if r >= self.len {
            return Iter {
                chunks: &[],
                ci: 0,
                off: 0,
            };
        }
        let (ci, off) = self.locate(r);
        Iter {
            chunks: &self.chunks,
            ci,
            off,
        }
    }
}

/// Entries in order from a rank on.
pub struct Iter<'a> {
    chunks: &'a [Vec<Entry>],
    ci: usize,
    off: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        loop {
            let chunk = self.chunks.get(self.ci)?;
            if let Some(e) = chunk.get(self.off) {
                self.off += 1;
                return Some(e);
            }
            self.ci += 1;
            self.off = 0;
        }
    }
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &ZSetValue) -> bool {
        self.len() == other.len()
            && self.is_small() == other.is_small()
            && self
                .iter()
                .zip(other.iter())
                .all(|(a, b)| a.member == b.member && a.score.to_bits() == b.score.to_bits())
    }
}

impl ZSetValue {
    pub fn new() -> ZSetValue {
        ZSetValue::default()
    }

    /// An empty set in the representation Redis's `zsetTypeCreate` picks for `size_hint`
    /// members of at most `max_len` bytes.
    pub fn with_hint(size_hint: usize, max_len: usize) -> ZSetValue {
        let mut z = ZSetValue::new();
        if size_hint > LISTPACK_MAX_ENTRIES || max_len > LISTPACK_MAX_VALUE {
            z.convert();
        }
        z
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => v.len(),
            Repr::Large(l) => l.list.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_small(&self) -> bool {
        matches!(self.repr, Repr::Small(_))
    }

    /// Sum of the members' lengths, kept as the set changes.
    pub fn member_bytes(&self) -> usize {
        self.bytes
    }

    /// Turns a small set into a large one (one way).
    fn convert(&mut self) {
        if let Repr::Small(v) = &mut self.repr {
            let v = std::mem::take(v);
            let mut large = Large::default();
            large.map.reserve(v.len());
            for e in &v {
                large.map.insert(e.member.clone(), e.score);
            }
            large.list.len = v.len();
            if !v.is_empty() {
                large.list.chunks.push(v);
            }
            large.list.rebuild();
            self.repr = Repr::Large(Box::new(large));
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Small(v) => v.iter().find(|e| e.member == member).map(|e| e.score),
            Repr::Large(l) => l.map.get(member).copied(),
        }
    }

    /// Sets `member`'s score, adding it if new; returns the previous score. The caller has
    /// checked the score is not NaN.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        if let Repr::Small(v) = &self.repr
            && (member.len() > LISTPACK_MAX_VALUE
                || (v.len() >= LISTPACK_MAX_ENTRIES && !v.iter().any(|e| e.member == member)))
        {
            self.convert();
        }
        match &mut self.repr {
            Repr::Small(v) => {
                // A listpack keeps -0 as the integer 0.
                let score = if score == 0.0 { 0.0 } else { score };
                let old = v
                    .iter()
                    .position(|e| e.member == member)
                    .map(|i| v.remove(i));
                if old.is_none() {
                    self.bytes += member.len();
                }
                let at = v.partition_point(|x| x.cmp_to(score, &member) == Ordering::Less);
                v.insert(at, Entry { score, member });
                old.map(|e| e.score)
            }
            Repr::Large(l) => match l.map.get_mut(&member[..]) {
                Some(s) => {
                    let old = *s;
                    *s = score;
                    let e = l.list.remove(old, &member);
                    let member = e.map_or(member, |e| e.member);
                    l.list.insert(Entry { score, member });
                    Some(old)
                }
                None => {
                    self.bytes += member.len();
                    l.map.insert(member.clone(), score);
                    l.list.insert(Entry { score, member });
                    None
                }
            },
        }
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = match &mut self.repr {
            Repr::Small(v) => {
                let i = v.iter().position(|e| e.member == member)?;
                v.remove(i).score
            }
            Repr::Large(l) => {
                let score = l.map.remove(member)?;
                l.list.remove(score, member);
                score
            }
        };
        self.bytes -= member.len();
        Some(score)
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Small(v) => v.iter().position(|e| e.member == member),
            Repr::Large(l) => {
                let score = *l.map.get(member)?;
                l.list.rank(score, member)
            }
        }
    }

    /// The entry of rank `r`.
    pub fn get(&self, r: usize) -> Option<&Entry> {
        match &self.repr {
            Repr::Small(v) => v.get(r),
            Repr::Large(l) => l.list.get(r),
        }
    }

    /// The first rank whose entry fails `pred`, which must hold for a prefix of the order.
    pub fn partition_point(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        match &self.repr {
            Repr::Small(v) => v.partition_point(pred),
            Repr::Large(l) => l.list.partition_point(pred),
        }
    }

    /// Entries in ascending order from rank `r`.
    pub fn iter_from(&self, r: usize) -> Iter<'_> {
        match &self.repr {
            Repr::Small(v) => Iter {
                chunks: std::slice::from_ref(v),
                ci: 0,
                off: r,
            },
            Repr::Large(l) => l.list.iter_from(r),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Removes the entries of ranks `from..to`, returning them in order.
    pub fn remove_ranks(&mut self, from: usize, to: usize) -> Vec<Entry> {
        let to = to.min(self.len());
        if from >= to {
            return Vec::new();
        }
        let removed: Vec<Entry> = match &mut self.repr {
            Repr::Small(v) => v.drain(from..to).collect(),
            Repr::Large(_) => {
                let gone: Vec<Entry> = self.iter_from(from).take(to - from).cloned().collect();
                if let Repr::Large(l) = &mut self.repr {
                    for e in &gone {
                        l.map.remove(&e.member[..]);
                        l.list.remove(e.score, &e.member);
                    }
                }
                gone
            }
        };
        self.bytes -= removed.iter().map(|e| e.member.len()).sum::<usize>();
        removed
    }
}

impl FromIterator<(Bytes, f64)> for ZSetValue {
    fn from_iter<I: IntoIterator<Item = (Bytes, f64)>>(iter: I) -> ZSetValue {
        let mut z = ZSetValue::new();
        for (m, s) in iter {
            z.insert(m, s);
        }
        z
    }
}

/// Accounted bytes of a sorted set: its members' bytes plus a per-member overhead. O(1).
#[inline]
pub fn payload_bytes(z: &ZSetValue) -> usize {
    let per = if z.is_small() {
        SMALL_OVERHEAD
    } else {
        LARGE_OVERHEAD
    };
    z.member_bytes() + z.len() * per
}

/// `listpack` or `skiplist`, as Redis 7.0 reports with its default limits.
pub fn encoding(z: &ZSetValue) -> &'static str {
    if z.is_small() { "listpack" } else { "skiplist" }
}

// Codec payload: one byte, 0 small / 1 large (the representation survives the warm tier and
// migration, as the encoding survives an RDB load in Redis); then per member, in ascending
// order, `u64 BE score bits, u32 BE length, member`, to the end of the record.

pub fn encoded_len(z: &ZSetValue) -> usize {
    1 + z.iter().map(|e| 12 + e.member.len()).sum::<usize>()
}

pub fn encode(z: &ZSetValue, out: &mut Vec<u8>) {
    out.push(u8::from(!z.is_small()));
    for e in z.iter() {
        out.extend_from_slice(&e.score.to_bits().to_be_bytes());
        out.extend_from_slice(&(e.member.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.member);
    }
}

/// `None` when the payload is truncated or corrupt (a length past the end, a NaN score, an
/// unknown representation byte).
pub fn decode(payload: &[u8]) -> Option<ZSetValue> {
    let (&large, mut payload) = payload.split_first()?;
    let mut z = match large {
        0 => ZSetValue::new(),
        1 => ZSetValue::with_hint(usize::MAX, 0),
        _ => return None,
    };
    while !payload.is_empty() {
        let (score, rest) = payload.split_first_chunk::<8>()?;
        let score = f64::from_bits(u64::from_be_bytes(*score));
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if score.is_nan() {
            return None;
        }
        z.insert(Bytes::copy_from_slice(rest.get(..len)?), score);
        payload = rest.get(len..)?;
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Against a model (a sorted vector), through conversions and many chunk splits.
    #[test]
    fn matches_a_sorted_vector_model() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut z = ZSetValue::new();
        let mut model: Vec<(f64, Bytes)> = Vec::new();
        for step in 0..40_000 {
            let m = b(&format!("m{}", rng.usize(..3_000)));
            let score = f64::from(rng.i32(-50..50));
            if rng.u8(..3) > 0 {
                let old = z.insert(m.clone(), score);
                let pos = model.iter().position(|(_, x)| *x == m);
                assert_eq!(old, pos.map(|p| model[p].0));
                if let Some(p) = pos {
                    model.remove(p);
                }
                model.push((score, m));
            } else {
                let pos = model.iter().position(|(_, x)| *x == m);
                assert_eq!(z.remove(&m), pos.map(|p| model.remove(p).0));
            }
            if step % 997 == 0 {
                model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
                let got: Vec<(f64, Bytes)> =
                    z.iter().map(|e| (e.score, e.member.clone())).collect();
                assert_eq!(got, model);
                assert_eq!(z.len(), model.len());
                assert_eq!(
                    z.member_bytes(),
                    model.iter().map(|(_, m)| m.len()).sum::<usize>()
                );
                for (r, (s, m)) in model.iter().enumerate().step_by(37) {
                    assert_eq!(z.rank(m), Some(r));
                    assert_eq!(z.get(r).map(|e| e.score), Some(*s));
                    assert_eq!(z.score(m), Some(*s));
                    assert_eq!(z.partition_point(|e| e.score < *s), {
                        model.partition_point(|(x, _)| x < s)
                    });
                    assert_eq!(z.iter_from(r).next().map(|e| &e.member), Some(m));
                }
            }
        }
        assert!(!z.is_small());
        let n = z.len();
        let gone = z.remove_ranks(10, 500);
        assert_eq!(gone.len(), 490);
        assert_eq!(z.len(), n - 490);
        assert_eq!(z.iter().count(), n - 490);
    }

    #[test]
    fn conversion_thresholds() {
        let mut z: ZSetValue = (0..128).map(|i| (b(&format!("m{i}")), 1.0)).collect();
        assert_eq!(encoding(&z), "listpack");
        z.insert(b("m0"), 2.0);
        assert_eq!(encoding(&z), "listpack");
        z.insert(b("new"), 2.0);
        assert_eq!(encoding(&z), "skiplist");
        z.remove(b"new");
        assert_eq!(encoding(&z), "skiplist", "one way");
        let mut z = ZSetValue::new();
        z.insert(Bytes::from(vec![b'x'; 64]), 1.0);
        assert_eq!(encoding(&z), "listpack");
        z.insert(Bytes::from(vec![b'x'; 65]), 1.0);
        assert_eq!(encoding(&z), "skiplist");
    }
}
