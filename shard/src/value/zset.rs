//! Sorted sets: the value, its accounting, OBJECT ENCODING, and the codec payload.
//!
//! Two representations, as in Redis:
//!
//! - **small** (`listpack`): one packed byte buffer of `(score, length, member)` entries
//!   sorted by score then member, 3 to 10 bytes of overhead per member (an integral score
//!   takes 1, 2 or 4 bytes, as Redis's listpack stores it as an integer; others 8). A member lookup is a linear
//!   scan, as in Redis's listpack, bounded by the limits below (128 entries, members of at
//!   most 64 bytes).
//! - **large** (`skiplist`): a member → score hash map for O(1) ZSCORE, plus an
//!   order-statistic list for rank and range queries. The list is a two-level structure of
//!   sorted chunks of at most [`CHUNK_MAX`] entries with a Fenwick tree over the chunk sizes:
//!   locating an entry is a binary search over the chunks' last entries then inside one chunk
//!   (O(log n)), its rank is a Fenwick prefix sum (O(log n)), and the entry of a given rank a
//!   Fenwick descent (O(log n)). An insert or removal moves at most `CHUNK_MAX` entries inside
//!   its chunk (a bounded memmove); splitting a full chunk or dropping an empty one rebuilds
//!   the Fenwick tree, O(n / CHUNK_MAX), once every `CHUNK_MAX / 2` writes at most. No
//!   maintained crate offers an order-statistic map keyed by `(f64, bytes)` with this
//!   compactness (a list entry is a 16-byte pointer and its score, in chunks, with no per-node
//!   allocation), hence our own. The map is a `hashbrown::HashTable` of the same pointers: a
//!   member's score and bytes are one allocation shared by both.
//!
//! Conversion is one-way, small to large, as Redis's: a large set that shrinks stays large.
//! The value keeps the sum of its members' lengths as it changes, so accounting a write is
//! O(1).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

/// Redis's `zset-max-listpack-entries` and `zset-max-listpack-value` defaults.
pub const LISTPACK_MAX_ENTRIES: usize = 128;
pub const LISTPACK_MAX_VALUE: usize = 64;
/// The longest member the packed representation holds (its length is one byte), whatever
/// `zset-max-listpack-value` says.
const SMALL_MEMBER_MAX: usize = 255;

/// The limits of the packed representation (`zset-max-listpack-entries` and `-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Small {
    pub entries: usize,
    pub value: usize,
}

impl Default for Small {
    fn default() -> Small {
        Small {
            entries: LISTPACK_MAX_ENTRIES,
            value: LISTPACK_MAX_VALUE,
        }
    }
}

impl Small {
    /// From the server's thresholds.
    pub fn of(l: &super::limits::Limits) -> Small {
        Small {
            entries: usize::try_from(l.zset_max_listpack_entries).unwrap_or(0),
            value: usize::try_from(l.zset_max_listpack_value).unwrap_or(0),
        }
    }

    /// The longest member packed.
    fn value(self) -> usize {
        self.value.min(SMALL_MEMBER_MAX)
    }
}

/// Entries per chunk of the large representation before it splits in two.
const CHUNK_MAX: usize = 256;

/// Accounted bytes of a small set beyond its packed buffer's capacity: the allocation's
/// header and rounding (the value itself is inline in the key's entry).
pub const SMALL_OVERHEAD: usize = 16;
/// Accounted bytes per member of a large set beyond its bytes: its allocation (reference
/// counts, score, rounding), a hash-table slot at the table's average load, and a list slot in
/// a partly full chunk (24 bytes: the node and its score). Measured: a million `element:N`
/// members with scores 0-999 grow RSS by ~127 bytes a member (~113 beyond the bytes).
pub const LARGE_OVERHEAD: usize = 108;

/// One member with its score, borrowed from the set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryRef<'a> {
    pub score: f64,
    pub member: &'a [u8],
}

/// Redis's order: by score, then by member bytes. Scores are never NaN.
#[inline]
pub fn cmp(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

/// A member of a large set: one shared allocation holding the score (8 bytes, native order)
/// then the member's bytes, referenced from the hash table and from the ordered list (a
/// 16-byte pointer in each), so the bytes are stored once. A score change allocates a new
/// one (it moves in the order anyway).
#[derive(Debug, Clone)]
struct Node(Arc<[u8]>);

impl Node {
    fn new(member: &[u8], score: f64) -> Node {
        let mut buf = Vec::with_capacity(8 + member.len());
        buf.extend_from_slice(&score.to_ne_bytes());
        buf.extend_from_slice(member);
        Node(Arc::from(buf))
    }

    #[inline]
    fn score(&self) -> f64 {
        let (s, _) = self.0.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        f64::from_ne_bytes(*s)
    }

    #[inline]
    fn member(&self) -> &[u8] {
        self.0.get(8..).unwrap_or_default()
    }

    #[inline]
    fn entry(&self) -> EntryRef<'_> {
        EntryRef {
            score: self.score(),
            member: self.member(),
        }
    }
}

/// A sorted set value: 32 bytes, so `Value` holds it without a box of its own (a small set
/// is its packed buffer and nothing else on the heap).
#[derive(Debug, Clone, Default)]
pub struct ZSetValue {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// Packed entries in order, each `score code (1 byte), score (1, 2 or 4 bytes of a
    /// little-endian integer, or 8 of an f64 in native order), length (1 byte), member` (a
    /// small set's members are at most 255 bytes), like Redis's listpack. `len` and
    /// `bytes` (the sum of the members' lengths) fit in 32 bits: the buffer is kept under
    /// [`PACKED_MAX`] (a set that would outgrow it converts).
    Small {
        buf: Vec<u8>,
        len: u32,
        bytes: u32,
    },
    Large(Box<Large>),
}

/// Longest packed buffer: its lengths are kept in 32 bits.
const PACKED_MAX: usize = u32::MAX as usize / 2;

impl Default for Repr {
    fn default() -> Repr {
        Repr::Small {
            buf: Vec::new(),
            len: 0,
            bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Large {
    hasher: foldhash::fast::RandomState,
    map: HashTable<Node>,
    list: ChunkList,
    /// Sum of the members' lengths.
    bytes: usize,
}

impl Large {
    fn find(&self, member: &[u8]) -> Option<&Node> {
        let h = self.hasher.hash_one(member);
        self.map.find(h, |n| n.member() == member)
    }
}

/// Score codes of a packed entry: an integral score that fits in 8, 16 or 32 bits is stored
/// in that many bytes; any other score as its 8 bytes.
const SCORE_I8: u8 = 0;
const SCORE_I16: u8 = 1;
const SCORE_I32: u8 = 2;
const SCORE_F64: u8 = 3;

/// The longest packed entry.
const PACKED_ENTRY_MAX: usize = 10 + SMALL_MEMBER_MAX;

/// The code and width of `score` in a packed entry.
#[inline]
fn score_code(score: f64) -> (u8, usize) {
    if score.fract() == 0.0 && score >= f64::from(i32::MIN) && score <= f64::from(i32::MAX) {
        let i = score as i32;
        if i8::try_from(i).is_ok() {
            (SCORE_I8, 1)
        } else if i16::try_from(i).is_ok() {
            (SCORE_I16, 2)
        } else {
            (SCORE_I32, 4)
        }
    } else {
        (SCORE_F64, 8)
    }
}

/// Bytes of the packed entry of `score` and a member of `len` bytes.
#[inline]
fn packed_len(score: f64, len: usize) -> usize {
    2 + score_code(score).1 + len
}

/// Writes the packed entry of `(score, member)` (a member of at most `SMALL_MEMBER_MAX`
/// bytes) to the front of `out`; returns its length.
fn put_packed(score: f64, member: &[u8], out: &mut [u8; PACKED_ENTRY_MAX]) -> usize {
    let (code, w) = score_code(score);
    out[0] = code;
    match code {
        SCORE_I8 => out[1] = (score as i8) as u8,
        SCORE_I16 => out[1..3].copy_from_slice(&(score as i16).to_le_bytes()),
        SCORE_I32 => out[1..5].copy_from_slice(&(score as i32).to_le_bytes()),
        _ => out[1..9].copy_from_slice(&score.to_ne_bytes()),
    }
    out[1 + w] = member.len() as u8;
    out[2 + w..2 + w + member.len()].copy_from_slice(member);
    2 + w + member.len()
}

/// Decodes the packed entry at `at` of a small set's buffer: the entry and the next offset.
#[inline]
fn packed_at(buf: &[u8], at: usize) -> Option<(EntryRef<'_>, usize)> {
    let (&code, rest) = buf.get(at..)?.split_first()?;
    let (score, w) = match code {
        SCORE_I8 => (f64::from(*rest.first()? as i8), 1),
        SCORE_I16 => (f64::from(i16::from_le_bytes(*rest.first_chunk()?)), 2),
        SCORE_I32 => (f64::from(i32::from_le_bytes(*rest.first_chunk()?)), 4),
        _ => (f64::from_ne_bytes(*rest.first_chunk()?), 8),
    };
    let (&len, rest) = rest.get(w..)?.split_first()?;
    let member = rest.get(..usize::from(len))?;
    Some((EntryRef { score, member }, at + 2 + w + usize::from(len)))
}

/// An entry of the ordered list: the node and, beside it, its score, so the binary searches
/// compare scores inside the chunk's own memory and read a node (a cache miss each: nodes are
/// scattered over the heap) only on a tie.
#[derive(Debug, Clone)]
struct Slot {
    score: f64,
    node: Node,
}

impl Slot {
    fn new(node: Node) -> Slot {
        Slot {
            score: node.score(),
            node,
        }
    }

    /// [`cmp`] of this entry against `(score, member)`.
    #[inline]
    fn cmp_to(&self, score: f64, member: &[u8]) -> Ordering {
        match self.score.partial_cmp(&score) {
            Some(Ordering::Equal) | None => self.node.member().cmp(member),
            Some(o) => o,
        }
    }
}

/// A chunk: a ring buffer, so removing at either end (ZPOPMIN, ZPOPMAX) moves nothing and an
/// insert or removal inside moves the shorter side.
type Chunk = VecDeque<Slot>;

/// Room for one more entry in `chunk`: capacity doubles as a `Vec`'s does but stops at
/// `CHUNK_MAX + 1` (a chunk never holds more), so full chunks do not carry twice the room.
fn grow(chunk: &mut Chunk, need: usize) {
    if chunk.capacity() < need {
        let want = (chunk.capacity() * 2).clamp(4, CHUNK_MAX + 1).max(need);
        chunk.reserve_exact(want - chunk.len());
    }
}

/// Sorted chunks with a Fenwick tree over their lengths (see the module comment).
#[derive(Debug, Clone, Default)]
struct ChunkList {
    chunks: Vec<Chunk>,
    /// Fenwick tree (1-based, stored 0-based) of `chunks[i].len()`.
    tree: Vec<usize>,
    /// The score of each chunk's last entry: the search for a chunk reads this dense array
    /// and goes to a chunk's memory only on a tie.
    lasts: Vec<f64>,
    len: usize,
}

impl ChunkList {
    /// Recomputes `lasts` and the Fenwick tree (after many chunks changed at once).
    fn rebuild_all(&mut self) {
        self.lasts.clear();
        self.lasts.extend(
            self.chunks
                .iter()
                .map(|c| c.back().map_or(0.0, |e| e.score)),
        );
        self.rebuild();
    }

    /// Recomputes the Fenwick tree after chunks came or went (O(chunks), reading only their
    /// lengths).
    fn rebuild(&mut self) {
        let n = self.chunks.len();
        self.tree.clear();
        self.tree.extend(self.chunks.iter().map(VecDeque::len));
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
        let lasts = &self.lasts;
        // Chunks `..lo` end below `score`, chunks `lo..hi` at `score` exactly: those are told
        // apart by their last member (a binary search again: many members may share a score).
        let lo = lasts.partition_point(|&last| last < score);
        let hi = lo
            + lasts
                .get(lo..)
                .map_or(0, |l| l.partition_point(|&last| last <= score));
        let i = lo
            + self.chunks.get(lo..hi).map_or(0, |cs| {
                cs.partition_point(|c| c.back().is_some_and(|e| e.node.member() < member))
            });
        i.min(self.chunks.len().saturating_sub(1))
    }

    /// Keeps `lasts[ci]` after a change to chunk `ci` that left it non-empty.
    fn fix_last(&mut self, ci: usize) {
        if let (Some(last), Some(e)) = (
            self.lasts.get_mut(ci),
            self.chunks.get(ci).and_then(VecDeque::back),
        ) {
            *last = e.score;
        }
    }

    fn insert(&mut self, e: Node) {
        self.len += 1;
        let e = Slot::new(e);
        if self.chunks.is_empty() {
            let mut c = Chunk::new();
            grow(&mut c, 1);
            c.push_back(e);
            self.chunks.push(c);
            self.rebuild_all();
            return;
        }
        let ci = self.chunk_for(e.score, e.node.member());
        let chunk = &mut self.chunks[ci];
        let at = chunk.partition_point(|x| x.cmp_to(e.score, e.node.member()) == Ordering::Less);
        grow(chunk, chunk.len() + 1);
        chunk.insert(at, e);
        if chunk.len() > CHUNK_MAX {
            let mut tail = Chunk::with_capacity(chunk.len() - chunk.len() / 2);
            tail.extend(chunk.drain(chunk.len() / 2..));
            // The tail keeps the chunk's last entry; the head ends at a new one.
            let head_last = chunk.back().map_or(0.0, |e| e.score);
            self.chunks.insert(ci + 1, tail);
            self.lasts.insert(ci, head_last);
            self.rebuild();
        } else {
            if at + 1 == chunk.len() {
                self.fix_last(ci);
            }
            self.add(ci, 1);
        }
    }

    /// Where `(score, member)` is, if present: its chunk and offset.
    fn find(&self, score: f64, member: &[u8]) -> Option<(usize, usize)> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_for(score, member);
        let at = self.chunks[ci]
            .binary_search_by(|x| x.cmp_to(score, member))
            .ok()?;
        Some((ci, at))
    }

    /// The rank of `(score, member)`, if present.
    fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let (ci, at) = self.find(score, member)?;
        Some(self.prefix(ci) + at)
    }

    fn remove(&mut self, score: f64, member: &[u8]) -> Option<Node> {
        let (ci, at) = self.find(score, member)?;
        self.remove_at(ci, at)
    }

    /// Removes the entry of rank `r`.
    fn remove_rank(&mut self, r: usize) -> Option<Node> {
        if r >= self.len {
            return None;
        }
        let (ci, at) = self.locate(r);
        self.remove_at(ci, at)
    }

    fn remove_at(&mut self, ci: usize, at: usize) -> Option<Node> {
        let chunk = self.chunks.get_mut(ci)?;
        let e = chunk.remove(at)?;
        let left = chunk.len();
        self.len -= 1;
        if left == 0 {
            self.chunks.remove(ci);
            self.lasts.remove(ci);
            self.rebuild();
        } else if left < CHUNK_MAX / 8
            && ci + 1 < self.chunks.len()
            && self.chunks[ci + 1].len() + left <= CHUNK_MAX
        {
            // Merge a small chunk into its successor now and then, so chunks stay dense.
            let next = self.chunks.remove(ci + 1);
            let chunk = &mut self.chunks[ci];
            grow(chunk, left + next.len());
            chunk.extend(next);
            // The merged chunk ends where its successor did.
            self.lasts.remove(ci);
            self.rebuild();
        } else {
            if at == left {
                self.fix_last(ci);
            }
            self.add(ci, -1);
        }
        Some(e.node)
    }

    fn get(&self, r: usize) -> Option<&Node> {
        if r >= self.len {
            return None;
        }
        let (ci, off) = self.locate(r);
        self.chunks.get(ci)?.get(off).map(|e| &e.node)
    }

    /// The invariants: chunks non-empty, sorted and at most `CHUNK_MAX` long; `lasts` and the
    /// tree agree with them.
    #[cfg(test)]
    fn check(&self) {
        let lasts: Vec<f64> = self
            .chunks
            .iter()
            .filter_map(|c| c.back())
            .map(|e| e.score)
            .collect();
        assert_eq!(lasts, self.lasts);
        let mut prev: Option<&Slot> = None;
        for (i, c) in self.chunks.iter().enumerate() {
            assert!(!c.is_empty() && c.len() <= CHUNK_MAX);
            assert!(c.capacity() <= CHUNK_MAX + 1 || c.capacity() <= 2 * c.len());
            assert_eq!(self.prefix(i + 1) - self.prefix(i), c.len());
            for e in c {
                assert_eq!(e.score.to_bits(), e.node.score().to_bits());
                if let Some(p) = prev {
                    assert_eq!(p.cmp_to(e.score, e.node.member()), Ordering::Less);
                }
                prev = Some(e);
            }
        }
        assert_eq!(self.prefix(self.chunks.len()), self.len);
    }

    /// The first rank whose entry fails `pred` (`pred` holds for a prefix of the order).
    fn partition_point(&self, pred: impl Fn(EntryRef<'_>) -> bool) -> usize {
        let ci = self
            .chunks
            .partition_point(|c| c.back().is_some_and(|e| pred(e.node.entry())));
        match self.chunks.get(ci) {
            None => self.len,
            Some(c) => self.prefix(ci) + c.partition_point(|e| pred(e.node.entry())),
        }
    }
}

/// Entries in order from a rank on.
pub struct Iter<'a>(IterInner<'a>);

enum IterInner<'a> {
    Small {
        buf: &'a [u8],
        at: usize,
    },
    Large {
        chunks: &'a [Chunk],
        ci: usize,
        off: usize,
    },
}

impl<'a> Iterator for Iter<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        match &mut self.0 {
            IterInner::Small { buf, at } => {
                let (e, next) = packed_at(buf, *at)?;
                *at = next;
                Some(e)
            }
            IterInner::Large { chunks, ci, off } => loop {
                let chunk = chunks.get(*ci)?;
                if let Some(e) = chunk.get(*off) {
                    *off += 1;
                    return Some(e.node.entry());
                }
                *ci += 1;
                *off = 0;
            },
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
        ZSetValue::with_hint_within(size_hint, max_len, Small::default())
    }

    /// [`ZSetValue::with_hint`] under these listpack limits.
    pub fn with_hint_within(size_hint: usize, max_len: usize, small: Small) -> ZSetValue {
        let mut z = ZSetValue::new();
        if size_hint > small.entries || max_len > small.value() {
            z.convert();
        } else {
            z.reserve(size_hint, max_len);
        }
        z
    }

    /// Room in a small set for `n` more members of at most `max_len` bytes (one allocation
    /// for what a ZADD brings rather than one per member); nothing for a large set or beyond
    /// the small limits.
    pub fn reserve(&mut self, n: usize, max_len: usize) {
        if let Repr::Small { buf, .. } = &mut self.repr
            && n <= LISTPACK_MAX_ENTRIES
            && max_len <= LISTPACK_MAX_VALUE
        {
            buf.reserve_exact(n * (10 + max_len));
        }
    }

    /// Room in a small set for these new `(score, member)` entries, exactly (ZADD sizes a
    /// new set for its arguments: one allocation, no spare room); nothing for a large set or
    /// beyond the default small limits.
    pub fn reserve_entries<'a>(&mut self, items: impl ExactSizeIterator<Item = (f64, &'a [u8])>) {
        if let Repr::Small { buf, .. } = &mut self.repr
            && items.len() <= LISTPACK_MAX_ENTRIES
        {
            let mut need = 0;
            for (score, m) in items {
                if m.len() > LISTPACK_MAX_VALUE {
                    return;
                }
                need += packed_len(score, m.len());
            }
            buf.reserve_exact(need);
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small { len, .. } => *len as usize,
            Repr::Large(l) => l.list.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_small(&self) -> bool {
        matches!(self.repr, Repr::Small { .. })
    }

    /// Sum of the members' lengths, kept as the set changes.
    pub fn member_bytes(&self) -> usize {
        match &self.repr {
            Repr::Small { bytes, .. } => *bytes as usize,
            Repr::Large(l) => l.bytes,
        }
    }

    /// Turns a small set into a large one (one way).
    fn convert(&mut self) {
        if let Repr::Small { buf, len, bytes } = &self.repr {
            let len = *len as usize;
            let mut large = Large {
                bytes: *bytes as usize,
                ..Large::default()
            };
            large
                .map
                .reserve(len, |n| large.hasher.hash_one(n.member()));
            let mut chunk = Chunk::new();
            grow(&mut chunk, len);
            let mut at = 0;
            while let Some((e, next)) = packed_at(buf, at) {
                let node = Node::new(e.member, e.score);
                let h = large.hasher.hash_one(e.member);
                let hasher = &large.hasher;
                large
                    .map
                    .insert_unique(h, node.clone(), |n| hasher.hash_one(n.member()));
                chunk.push_back(Slot::new(node));
                at = next;
            }
            large.list.len = chunk.len();
            if !chunk.is_empty() {
                large.list.chunks.push(chunk);
            }
            large.list.rebuild_all();
            self.repr = Repr::Large(Box::new(large));
        }
    }

    /// The offset of `member`'s packed entry in a small set's buffer.
    /// Its offset, the next entry's offset and its score.
    fn small_find(buf: &[u8], member: &[u8]) -> Option<(usize, usize, f64)> {
        let mut at = 0;
        while let Some((e, next)) = packed_at(buf, at) {
            if e.member == member {
                return Some((at, next, e.score));
            }
            at = next;
        }
        None
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Small { buf, .. } => Self::small_find(buf, member).map(|(_, _, s)| s),
            Repr::Large(l) => l.find(member).map(Node::score),
        }
    }

    /// Sets `member`'s score, adding it if new; returns the previous score. The caller has
    /// checked the score is not NaN.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        self.insert_within(member, score, Small::default())
    }

    /// [`ZSetValue::insert`], leaving the packed representation past these limits
    /// (`zset-max-listpack-entries` and `-value`).
    pub fn insert_within(&mut self, member: &[u8], score: f64, small: Small) -> Option<f64> {
        if let Repr::Small { buf, len, .. } = &self.repr
            && (member.len() > small.value()
                || buf.len() + PACKED_ENTRY_MAX > PACKED_MAX
                || (*len as usize >= small.entries && Self::small_find(buf, member).is_none()))
        {
            self.convert();
        }
        match &mut self.repr {
            Repr::Small { buf, len, bytes } => {
                // A listpack keeps -0 as the integer 0.
                let score = if score == 0.0 { 0.0 } else { score };
                let old = Self::small_find(buf, member).map(|(at, next, old)| {
                    buf.drain(at..next);
                    old
                });
                if old.is_none() {
                    *bytes += member.len() as u32;
                    *len += 1;
                }
                // The first entry not below the new one.
                let mut at = 0;
                while let Some((e, next)) = packed_at(buf, at) {
                    if cmp(e.score, e.member, score, member) != Ordering::Less {
                        break;
                    }
                    at = next;
                }
                let mut packed = [0u8; PACKED_ENTRY_MAX];
                let n = put_packed(score, member, &mut packed);
                buf.reserve_exact(n);
                buf.splice(at..at, packed[..n].iter().copied());
                old
            }
            Repr::Large(l) => {
                let h = l.hasher.hash_one(member);
                let node = Node::new(member, score);
                let hasher = &l.hasher;
                match l
                    .map
                    .entry(h, |n| n.member() == member, |n| hasher.hash_one(n.member()))
                {
                    hashbrown::hash_table::Entry::Occupied(mut o) => {
                        let old = o.get().score();
                        *o.get_mut() = node.clone();
                        l.list.remove(old, member);
                        l.list.insert(node);
                        Some(old)
                    }
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        v.insert(node.clone());
                        l.list.insert(node);
                        l.bytes += member.len();
                        None
                    }
                }
            }
        }
    }

    /// Removes `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = match &mut self.repr {
            Repr::Small { buf, len, bytes } => {
                let (at, next, score) = Self::small_find(buf, member)?;
                buf.drain(at..next);
                *len -= 1;
                *bytes -= member.len() as u32;
                score
            }
            Repr::Large(l) => {
                let h = l.hasher.hash_one(member);
                let (node, _) = l.map.find_entry(h, |n| n.member() == member).ok()?.remove();
                let score = node.score();
                l.list.remove(score, member);
                l.bytes -= member.len();
                score
            }
        };
        Some(score)
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Small { .. } => self.iter().position(|e| e.member == member),
            Repr::Large(l) => {
                let score = l.find(member)?.score();
                l.list.rank(score, member)
            }
        }
    }

    /// The entry of rank `r` (O(r) in a small set, O(log n) in a large one).
    pub fn get(&self, r: usize) -> Option<EntryRef<'_>> {
        match &self.repr {
            Repr::Small { .. } => self.iter().nth(r),
            Repr::Large(l) => l.list.get(r).map(Node::entry),
        }
    }

    /// The first rank whose entry fails `pred`, which must hold for a prefix of the order.
    pub fn partition_point(&self, pred: impl Fn(EntryRef<'_>) -> bool) -> usize {
        match &self.repr {
            Repr::Small { .. } => self.iter().position(|e| !pred(e)).unwrap_or(self.len()),
            Repr::Large(l) => l.list.partition_point(pred),
        }
    }

    /// Entries in ascending order from rank `r`.
    pub fn iter_from(&self, r: usize) -> Iter<'_> {
        match &self.repr {
            Repr::Small { buf, .. } => {
                let mut it = Iter(IterInner::Small { buf, at: 0 });
                for _ in 0..r {
                    if it.next().is_none() {
                        break;
                    }
                }
                it
            }
            Repr::Large(l) => {
                if r >= l.list.len {
                    return Iter(IterInner::Small { buf: &[], at: 0 });
                }
                let (ci, off) = l.list.locate(r);
                Iter(IterInner::Large {
                    chunks: &l.list.chunks,
                    ci,
                    off,
                })
            }
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Removes the entries of ranks `from..to`, returning them in order.
    pub fn remove_ranks(&mut self, from: usize, to: usize) -> Vec<(Bytes, f64)> {
        let to = to.min(self.len());
        if from >= to {
            return Vec::new();
        }
        // A few at a time (ZPOPMIN and the like) one by one, taken by rank: no search, no
        // rebuild of the counts.
        if let Repr::Large(l) = &mut self.repr
            && to - from <= 16
        {
            let mut gone = Vec::with_capacity(to - from);
            for _ in from..to {
                let Some(n) = l.list.remove_rank(from) else {
                    break;
                };
                let h = l.hasher.hash_one(n.member());
                if let Ok(e) = l.map.find_entry(h, |x| Arc::ptr_eq(&x.0, &n.0)) {
                    e.remove();
                }
                l.bytes -= n.member().len();
                gone.push((Bytes::copy_from_slice(n.member()), n.score()));
            }
            return gone;
        }
        if self.is_small() {
            let gone: Vec<(Bytes, f64)> = self
                .iter_from(from)
                .take(to - from)
                .map(|e| (Bytes::copy_from_slice(e.member), e.score))
                .collect();
            for (m, _) in &gone {
                self.remove(m);
            }
            return gone;
        }
        // A run of ranks is drained chunk by chunk: O(log n + m), one rebuild of the counts,
        // rather than m single removals.
        let Repr::Large(l) = &mut self.repr else {
            return Vec::new();
        };
        let (mut ci, mut off) = l.list.locate(from);
        let mut left = to - from;
        let mut nodes = Vec::with_capacity(left);
        while left > 0 && ci < l.list.chunks.len() {
            let chunk = &mut l.list.chunks[ci];
            let take = left.min(chunk.len().saturating_sub(off));
            nodes.extend(chunk.drain(off..off + take).map(|e| e.node));
            left -= take;
            ci += 1;
            off = 0;
        }
        l.list.chunks.retain(|c| !c.is_empty());
        l.list.len -= nodes.len();
        l.list.rebuild_all();
        for n in &nodes {
            let h = l.hasher.hash_one(n.member());
            if let Ok(e) = l.map.find_entry(h, |x| Arc::ptr_eq(&x.0, &n.0)) {
                e.remove();
            }
        }
        let gone: Vec<(Bytes, f64)> = nodes
            .iter()
            .map(|n| (Bytes::copy_from_slice(n.member()), n.score()))
            .collect();
        l.bytes -= gone.iter().map(|(m, _)| m.len()).sum::<usize>();
        gone
    }
}

impl<'a> FromIterator<(&'a [u8], f64)> for ZSetValue {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], f64)>>(iter: I) -> ZSetValue {
        let mut z = ZSetValue::new();
        for (m, s) in iter {
            z.insert(m, s);
        }
        z
    }
}

/// Accounted bytes of a sorted set, O(1): a small set's packed buffer as allocated, a large
/// set's members' bytes plus a per-member overhead.
#[inline]
pub fn payload_bytes(z: &ZSetValue) -> usize {
    match &z.repr {
        Repr::Small { buf, .. } => SMALL_OVERHEAD + buf.capacity(),
        Repr::Large(_) => z.member_bytes() + z.len() * LARGE_OVERHEAD,
    }
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
        out.extend_from_slice(e.member);
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
        z.insert(rest.get(..len)?, score);
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

    /// Against a model (a sorted vector): a set that stays small, and one that converts and
    /// goes through many chunk splits and merges.
    #[test]
    fn matches_a_sorted_vector_model() {
        for (members, steps, scores) in [(100, 5_000, 50), (3_000, 40_000, 50), (3_000, 20_000, 1)]
        {
            model_run(members, steps, |rng| f64::from(rng.i32(-scores..scores)));
        }
    }

    /// Scores at the edges of every packed width (integers of 8, 16 and 32 bits, one past
    /// each, fractions, infinities, -0), in a set that stays small and one that converts.
    #[test]
    fn packed_scores_of_every_width_match_the_model() {
        const EDGES: [f64; 20] = [
            0.0,
            -0.0,
            127.0,
            -128.0,
            128.0,
            -129.0,
            32767.0,
            -32768.0,
            32768.0,
            -32769.0,
            2147483647.0,
            -2147483648.0,
            2147483648.0,
            -2147483649.0,
            0.5,
            -1.5,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ];
        for (score, want) in EDGES.iter().zip([1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8]) {
            assert_eq!(score_code(*score).1, want, "{score}");
            let mut out = [0u8; PACKED_ENTRY_MAX];
            let n = put_packed(*score, b"m", &mut out);
            let (e, next) = packed_at(&out[..n], 0).unwrap_or_else(|| panic!("{score}"));
            assert_eq!((e.score, e.member, next), (*score, &b"m"[..], n));
        }
        for members in [100, 3_000] {
            model_run(members, 10_000, |rng| {
                let e = EDGES[rng.usize(..EDGES.len())];
                if rng.bool() {
                    e
                } else {
                    e + f64::from(rng.i8(..))
                }
            });
        }
    }

    /// Scores come from `score` (drawn from `-1..1` every score is 0 or -1, so chunks end at
    /// equal scores and are told apart by member).
    fn model_run(members: usize, steps: usize, score: impl Fn(&mut fastrand::Rng) -> f64) {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut z = ZSetValue::new();
        let mut model: Vec<(f64, Bytes)> = Vec::new();
        for step in 0..steps {
            let m = b(&format!("m{}", rng.usize(..members)));
            let score = score(&mut rng);
            if rng.u8(..20) == 0 && !model.is_empty() {
                // ZPOPMIN / ZPOPMAX of a few.
                model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
                let n = rng.usize(1..4).min(model.len());
                let from = if rng.bool() { 0 } else { model.len() - n };
                let want: Vec<(Bytes, f64)> =
                    model.drain(from..from + n).map(|(s, m)| (m, s)).collect();
                assert_eq!(z.remove_ranks(from, from + n), want, "{step}");
            } else if rng.u8(..3) > 0 {
                let old = z.insert(&m, score);
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
            if step % 97 == 0 {
                if let Repr::Large(l) = &z.repr {
                    l.list.check();
                }
                model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
                let got: Vec<(f64, Bytes)> = z
                    .iter()
                    .map(|e| (e.score, Bytes::copy_from_slice(e.member)))
                    .collect();
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
                    assert_eq!(z.iter_from(r).next().map(|e| e.member), Some(&m[..]));
                }
            }
        }
        assert_eq!(z.is_small(), members <= LISTPACK_MAX_ENTRIES);
        model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
        let n = z.len();
        let gone = z.remove_ranks(10, 50);
        let want: Vec<(Bytes, f64)> = model.drain(10..50).map(|(s, m)| (m, s)).collect();
        assert_eq!(gone, want);
        assert_eq!(z.len(), n - 40);
        assert_eq!(z.iter().count(), n - 40);
        assert_eq!(
            z.member_bytes(),
            model.iter().map(|(_, m)| m.len()).sum::<usize>()
        );
        for (r, (_, m)) in model.iter().enumerate().step_by(7) {
            assert_eq!(z.rank(m), Some(r));
            assert_eq!(z.score(&gone[r % 40].0), None);
        }
        let rest = z.len();
        assert_eq!(z.remove_ranks(0, rest).len(), rest);
        assert!(z.is_empty());
        assert_eq!(z.member_bytes(), 0);
    }

    #[test]
    fn conversion_thresholds() {
        let names: Vec<String> = (0..128).map(|i| format!("m{i}")).collect();
        let mut z: ZSetValue = names.iter().map(|m| (m.as_bytes(), 1.0)).collect();
        assert_eq!(encoding(&z), "listpack");
        z.insert(b"m0", 2.0);
        assert_eq!(encoding(&z), "listpack");
        z.insert(b"new", 2.0);
        assert_eq!(encoding(&z), "skiplist");
        z.remove(b"new");
        assert_eq!(encoding(&z), "skiplist", "one way");
        let mut z = ZSetValue::new();
        z.insert(&[b'x'; 64], 1.0);
        assert_eq!(encoding(&z), "listpack");
        z.insert(&[b'x'; 65], 1.0);
        assert_eq!(encoding(&z), "skiplist");
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p autocache-shard --lib zset_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn zset_timing() {
        let name = |i: u64| format!("element:{i:012}");
        let mut rng = fastrand::Rng::with_seed(5);
        let mut z = ZSetValue::new();
        for _ in 0..400_000 {
            let m = name(rng.u64(..100_000));
            z.insert(m.as_bytes(), rng.u64(..100_000) as f64);
        }
        let t = std::time::Instant::now();
        let n = 1_000_000;
        for _ in 0..n {
            let m = name(rng.u64(..100_000));
            let sc = rng.u64(..100_000) as f64;
            let _ = z.score(m.as_bytes());
            z.insert(m.as_bytes(), sc);
        }
        eprintln!("zadd {:?}/op len {}", t.elapsed() / n, z.len());
        let t = std::time::Instant::now();
        let mut k = 0;
        while !z.is_empty() {
            k += z.remove_ranks(0, 1).len();
        }
        eprintln!("zpopmin {:?}/op", t.elapsed() / k as u32);
    }
}
