//! Hashes: the representation, accounting, OBJECT ENCODING, HSCAN paging and the codec payload.
//!
//! Two representations, as Redis 7.0 has:
//!
//! - `listpack`: while the hash has at most `hash-max-listpack-entries` (128) fields and every
//!   field and value is at most `hash-max-listpack-value` (64) bytes, one packed buffer of
//!   `varint length, field, varint length, value` entries in insertion order (HGETALL, HKEYS
//!   and HVALS answer in that order, and a value updated in place keeps its position, as in
//!   Redis's listpack). Lookups are linear, as Redis's are.
//! - `hashtable`: a dense `Vec` of entries, each one buffer `varint field length, field,
//!   value` (inline up to 24 bytes, so short fields and values cost no allocation of their
//!   own), plus a `hashbrown::HashTable<u32>` of indices into it keyed by the field, as the
//!   set's hashtable. HGET, HSET and HDEL are O(1); removal swaps the last entry into the hole.
//!
//! A hash converts one way, as Redis does: from the packed buffer to the table when it grows
//! past the entry limit or takes a field or value longer than the value limit, and never back.
//! (A record decoded from the codec re-derives its representation from its contents with the
//! default limits, as Redis does when it loads an RDB file.)

use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::HashTable;
use smallvec::SmallVec;

use crate::store::glob::glob_match;

/// Redis's `hash-max-listpack-entries` default.
pub const LISTPACK_MAX_ENTRIES: usize = 128;
/// Redis's `hash-max-listpack-value` default.
pub const LISTPACK_MAX_VALUE: usize = 64;

/// The limits of the packed representation (`hash-max-listpack-entries` and `-value`).
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
            entries: usize::try_from(l.hash_max_listpack_entries).unwrap_or(0),
            value: usize::try_from(l.hash_max_listpack_value).unwrap_or(0),
        }
    }
}

/// Bytes of an entry kept inline.
const INLINE: usize = 24;

/// One entry of the table: `varint field length, field, value`, inline up to 24 bytes.
type Entry = SmallVec<[u8; INLINE]>;

/// A hash value: field → value. It keeps its variable accounted bytes up to date as it
/// changes, so accounting a write costs O(1) however large the hash is (the store re-accounts
/// a value after every write).
///
/// 32 bytes, so `Value` holds it without a box of its own: a small hash is its packed buffer
/// and nothing else on the heap.
#[derive(Debug, Clone, Default)]
pub struct HashValue {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// `len` and `bytes` (the sum of the fields' and values' lengths) fit in 32 bits: the
    /// buffer is kept under 4 GiB (a hash that would outgrow it becomes a table).
    Packed { buf: Vec<u8>, len: u32, bytes: u32 },
    /// Boxed: a small hash (the common case) pays only the packed variant's size.
    Table(Box<Table>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Packed {
            buf: Vec::new(),
            len: 0,
            bytes: 0,
        }
    }
}

/// Longest packed buffer: its lengths are kept in 32 bits.
const PACKED_MAX: usize = u32::MAX as usize / 2;

#[derive(Clone, Default)]
struct Table {
    /// Indices into `entries`, hashed by the field of the entry they point at.
    index: HashTable<u32>,
    entries: Vec<Entry>,
    /// Sum of the fields' and values' lengths.
    bytes: usize,
    /// Heap bytes of the entries (those longer than the inline 24 bytes).
    heap: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| split(e)))
            .finish()
    }
}

fn hash(b: &[u8]) -> u64 {
    static HASHER: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x6861_7368_6861_7368);
    HASHER.hash_one(b)
}

// Lengths in the packed buffer and the entries: LEB128 (one byte up to 127).

fn put_varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(mut n: usize) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

/// The length at the start of `b` and the bytes after it.
fn get_varint(b: &[u8]) -> (usize, &[u8]) {
    let mut n = 0usize;
    for (i, &x) in b.iter().enumerate() {
        n |= usize::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return (n, b.get(i + 1..).unwrap_or_default());
        }
    }
    (n, &[])
}

/// A table entry's field and value.
fn split(e: &[u8]) -> (&[u8], &[u8]) {
    let (flen, rest) = get_varint(e);
    rest.split_at(flen.min(rest.len()))
}

fn make_entry(f: &[u8], v: &[u8]) -> Entry {
    let mut e = Entry::with_capacity(varint_len(f.len()) + f.len() + v.len());
    let (mut n, mut head) = (f.len(), [0u8; 10]);
    let mut i = 0;
    while n >= 0x80 {
        head[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    head[i] = n as u8;
    e.extend_from_slice(&head[..=i]);
    e.extend_from_slice(f);
    e.extend_from_slice(v);
    e
}

/// Heap bytes of an entry: its length once it spills (by length, not capacity: a clone of
/// an entry may round its capacity differently, and the kept sum must not depend on that).
fn entry_heap(e: &Entry) -> usize {
    if e.len() > INLINE { e.len() } else { 0 }
}

/// Walks a packed buffer: (entry start, field, value, entry end) of each entry.
struct Packed<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Packed<'a> {
    type Item = (usize, &'a [u8], &'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.at;
        let rest = self.buf.get(start..).filter(|r| !r.is_empty())?;
        let (flen, rest) = get_varint(rest);
        let (f, rest) = rest.split_at(flen.min(rest.len()));
        let (vlen, rest) = get_varint(rest);
        let v = rest.get(..vlen).unwrap_or(rest);
        let end = self.buf.len() - (rest.len() - v.len());
        self.at = end;
        Some((start, f, v, end))
    }
}

fn packed(buf: &[u8]) -> Packed<'_> {
    Packed { buf, at: 0 }
}

fn pack(f: &[u8], v: &[u8], out: &mut Vec<u8>) {
    put_varint(f.len(), out);
    out.extend_from_slice(f);
    put_varint(v.len(), out);
    out.extend_from_slice(v);
}

impl Table {
    fn find(&self, f: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash(f), |&i| {
                entries.get(i as usize).is_some_and(|e| split(e).0 == f)
            })
            .map(|&i| i as usize)
    }

    /// Appends an entry for a field known to be absent.
    fn push(&mut self, e: Entry) {
        let entries = &self.entries;
        let i = entries.len() as u32;
        self.index.insert_unique(hash(split(&e).0), i, |&j| {
            entries.get(j as usize).map_or(0, |x| hash(split(x).0))
        });
        self.entries.push(e);
    }

    /// Removes the entry at `i`, moving the last entry into its place.
    fn remove_at(&mut self, i: usize) -> Option<Entry> {
        let e = self.entries.get(i)?;
        let h = hash(split(e).0);
        if let Ok(o) = self.index.find_entry(h, |&j| j as usize == i) {
            o.remove();
        }
        let last = self.entries.len() - 1;
        if i != last {
            // The last entry moves to `i`: repoint its index slot.
            let moved = hash(split(&self.entries[last]).0);
            if let Some(slot) = self.index.find_mut(moved, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        let e = self.entries.swap_remove(i);
        if self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
            let entries = &self.entries;
            self.index.shrink_to(entries.len(), |&j| {
                entries.get(j as usize).map_or(0, |x| hash(split(x).0))
            });
        }
        Some(e)
    }
}

impl HashValue {
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed { len, .. } => *len as usize,
            Repr::Table(t) => t.entries.len(),
        }
    }

    /// Sum of the fields' and values' lengths, kept as the hash changes.
    pub fn bytes(&self) -> usize {
        match &self.repr {
            Repr::Packed { bytes, .. } => *bytes as usize,
            Repr::Table(t) => t.bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes of a table's entries (those longer than the inline 24 bytes).
    #[cfg(test)]
    fn heap(&self) -> usize {
        match &self.repr {
            Repr::Packed { .. } => 0,
            Repr::Table(t) => t.heap,
        }
    }

    /// Whether the hash is in its packed (`listpack`) representation.
    pub fn is_small(&self) -> bool {
        matches!(self.repr, Repr::Packed { .. })
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Packed { buf, .. } => packed(buf).find(|e| e.1 == field).map(|e| e.2),
            Repr::Table(t) => t
                .find(field)
                .and_then(|i| t.entries.get(i))
                .map(|e| split(e).1),
        }
    }

    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value` within the default limits; true if the field is new.
    pub fn insert(&mut self, field: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> bool {
        self.insert_within(field.as_ref(), value.as_ref(), Small::default())
    }

    /// Sets `field` to `value`, leaving the packed representation when the hash would hold
    /// more than `small.entries` fields or a field or value longer than `small.value` bytes;
    /// true if the field is new.
    pub fn insert_within(&mut self, f: &[u8], v: &[u8], small: Small) -> bool {
        if let Repr::Packed { buf, len, bytes } = &mut self.repr {
            if f.len() <= small.value
                && v.len() <= small.value
                && buf.len() + 2 * (f.len() + v.len() + 10) <= PACKED_MAX
            {
                if let Some((start, _, old, end)) = packed(buf).find(|e| e.1 == f) {
                    // In place: the entry keeps its position.
                    *bytes = *bytes + v.len() as u32 - old.len() as u32;
                    let mut e = Vec::with_capacity(end - start);
                    pack(f, v, &mut e);
                    buf.splice(start..end, e);
                    return false;
                }
                if (*len as usize) < small.entries {
                    pack(f, v, buf);
                    *len += 1;
                    *bytes += (f.len() + v.len()) as u32;
                    return true;
                }
            }
            self.convert_to_table();
        }
        let Repr::Table(t) = &mut self.repr else {
            return false;
        };
        let e = make_entry(f, v);
        t.heap += entry_heap(&e);
        match t.find(f) {
            Some(i) => {
                let old = std::mem::replace(&mut t.entries[i], e);
                t.heap -= entry_heap(&old);
                t.bytes = t.bytes + v.len() - split(&old).1.len();
                false
            }
            None => {
                t.push(e);
                t.bytes += f.len() + v.len();
                true
            }
        }
    }

    /// Removes `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed { buf, len, bytes } => match packed(buf).find(|e| e.1 == field) {
                Some((start, f, v, end)) => {
                    *bytes -= (f.len() + v.len()) as u32;
                    buf.drain(start..end);
                    *len -= 1;
                    if buf.len() < buf.capacity() / 2 {
                        buf.shrink_to_fit();
                    }
                    true
                }
                None => false,
            },
            Repr::Table(t) => match t.find(field).and_then(|i| t.remove_at(i)) {
                Some(e) => {
                    t.heap -= entry_heap(&e);
                    let (f, v) = split(&e);
                    t.bytes -= f.len() + v.len();
                    true
                }
                None => false,
            },
        }
    }

    /// Room for `pairs` more (field, value) pairs (HSET reserves for its arguments, so a new
    /// hash of ten fields is allocated once, at its size, not grown 8, 16, 32, 64, 128 bytes).
    pub fn reserve<'a>(&mut self, pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, small: Small) {
        match &mut self.repr {
            Repr::Packed { buf, len, .. } => {
                let (mut n, mut bytes) = (0, 0);
                for (f, v) in pairs {
                    if f.len() > small.value || v.len() > small.value {
                        return;
                    }
                    n += 1;
                    bytes += varint_len(f.len()) + f.len() + varint_len(v.len()) + v.len();
                }
                if *len as usize + n <= small.entries && buf.len() + bytes <= PACKED_MAX {
                    buf.reserve_exact(bytes);
                }
            }
            Repr::Table(t) => {
                let n = pairs.count();
                t.entries.reserve(n);
                let entries = &t.entries;
                t.index.reserve(n, |&j| {
                    entries.get(j as usize).map_or(0, |x| hash(split(x).0))
                });
            }
        }
    }

    /// The packed buffer becomes a table (one way).
    fn convert_to_table(&mut self) {
        let Repr::Packed { buf, len, bytes } = &self.repr else {
            return;
        };
        let len = *len as usize;
        let mut t = Box::<Table>::default();
        t.entries.reserve_exact(len + 1);
        t.index.reserve(len + 1, |_| 0);
        for (_, f, v, _) in packed(buf) {
            let e = make_entry(f, v);
            t.heap += entry_heap(&e);
            t.push(e);
        }
        t.bytes = *bytes as usize;
        self.repr = Repr::Table(t);
    }

    /// Every (field, value), packed hashes in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let (p, t) = match &self.repr {
            Repr::Packed { buf, .. } => (Some(packed(buf)), None),
            Repr::Table(t) => (None, Some(t.entries.iter())),
        };
        p.into_iter()
            .flatten()
            .map(|(_, f, v, _)| (f, v))
            .chain(t.into_iter().flatten().map(|e| split(e)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().map(|(f, _)| f)
    }

    pub fn values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The (field, value) at `i` (`i < len`): O(1) in a table, linear in a packed buffer.
    pub fn nth(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Packed { buf, .. } => packed(buf).nth(i).map(|(_, f, v, _)| (f, v)),
            Repr::Table(t) => t.entries.get(i).map(|e| split(e)),
        }
    }

    /// One HSCAN step. A packed hash is returned whole with cursor 0 (as Redis does for its
    /// compact encoding). A table is walked from its last entry down: an entry that moves when
    /// another is removed moves from the end, which is already visited, so every field present
    /// for the whole iteration is returned at least once, and an unchanged hash returns each
    /// field exactly once. The cursor is how many positions are left to visit.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        pattern: Option<&[u8]>,
    ) -> (u64, Vec<(Bytes, Bytes)>) {
        let keep = |f: &[u8]| pattern.is_none_or(|p| glob_match(p, f, false));
        let copy = |(f, v): (&[u8], &[u8])| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v));
        let t = match &self.repr {
            Repr::Packed { .. } => {
                return (0, self.iter().filter(|(f, _)| keep(f)).map(copy).collect());
            }
            Repr::Table(t) => t,
        };
        let len = t.entries.len();
        let left = if cursor == 0 {
            len
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
        };
        let from = left.saturating_sub(count.max(1));
        let out = t.entries[from..left]
            .iter()
            .rev()
            .map(|e| split(e))
            .filter(|(f, _)| keep(f))
            .map(copy)
            .collect();
        (from as u64, out)
    }
}

impl PartialEq for HashValue {
    /// Same fields and values, whatever the representation or order.
    fn eq(&self, other: &HashValue) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl<F: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(F, V)> for HashValue {
    fn from_iter<I: IntoIterator<Item = (F, V)>>(iter: I) -> HashValue {
        let mut h = HashValue::default();
        for (f, v) in iter {
            h.insert(f, v);
        }
        h
    }
}

/// Accounted bytes of a table entry's slot in the entry vector (inline bytes, length and
/// capacity; longer entries' heap bytes are counted as well).
pub const ENTRY_SLOT: usize = std::mem::size_of::<Entry>();
/// Accounted bytes per slot of the index: a `u32` and a control byte, and the table's
/// spare buckets (it holds at most 7/8 of them).
const INDEX_SLOT: usize = 6;
/// The packed buffer's allocation rounding and header (the value itself is inline in the
/// key's entry).
const HASH_HEADER: usize = 16;
/// The boxed table of a large hash.
const TABLE_HEADER: usize = 64;

/// Accounted bytes of a hash, from its buffers' capacities (so in O(1)): what it allocated,
/// not only what it holds, as the allocator sees it.
#[inline]
pub fn payload_bytes(h: &HashValue) -> usize {
    HASH_HEADER
        + match &h.repr {
            Repr::Packed { buf, .. } => buf.capacity(),
            Repr::Table(t) => {
                TABLE_HEADER
                    + t.entries.capacity() * ENTRY_SLOT
                    + t.index.capacity() * INDEX_SLOT
                    + t.heap
            }
        }
}

/// The encoding Redis reports: `listpack` or `hashtable`, from the representation (the
/// limits decided it as the hash was written).
pub fn encoding(h: &HashValue, _limits: &super::limits::Limits) -> &'static str {
    if h.is_small() {
        "listpack"
    } else {
        "hashtable"
    }
}

// Codec payload: per field, `u32 BE length, field, u32 BE length, value`, in the hash's
// iteration order (decoding does not depend on it), to the end of the record.

pub fn encoded_len(h: &HashValue) -> usize {
    8 * h.len() + h.bytes()
}

pub fn encode(h: &HashValue, out: &mut Vec<u8>) {
    for (f, v) in h.iter() {
        // Lengths are u32 since the format's first version. A field or value of 4 GiB or
        // more (possible only with `proto-max-bulk-len` raised that far) would not round-trip.
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
}

/// `None` when a length runs past the end of the payload (a truncated or corrupt record).
pub fn decode(mut payload: &[u8]) -> Option<HashValue> {
    fn take<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, rest) = p.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let bytes = rest.get(..len)?;
        *p = rest.get(len..)?;
        Some(bytes)
    }
    let mut h = HashValue::default();
    while !payload.is_empty() {
        let f = take(&mut payload)?;
        let v = take(&mut payload)?;
        h.insert(f, v);
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn recount(h: &HashValue) -> (usize, usize) {
        let bytes = h.iter().map(|(f, v)| f.len() + v.len()).sum();
        let heap = match &h.repr {
            Repr::Packed { .. } => 0,
            Repr::Table(t) => t.entries.iter().map(entry_heap).sum(),
        };
        (bytes, heap)
    }

    #[test]
    fn sizes() {
        assert!(std::mem::size_of::<HashValue>() <= 56);
        assert_eq!(ENTRY_SLOT, 32);
    }

    #[test]
    fn kept_bytes_follow_every_change() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let mut h = HashValue::default();
        assert!(h.insert(b("f"), b("vv")));
        assert!(h.insert(b("g"), b("")));
        assert!(!h.insert(b("f"), b("value")));
        assert_eq!(h.get(b"f"), Some(&b"value"[..]));
        assert_eq!((h.bytes(), h.heap()), recount(&h));
        assert!(h.remove(b"f"));
        assert!(!h.remove(b"nope"));
        assert_eq!((h.bytes(), h.heap()), recount(&h));
        let h: HashValue = [(b("a"), b("1")), (b("a"), b("22"))].into_iter().collect();
        assert_eq!((h.len(), h.get(b"a")), (1, Some(&b"22"[..])));
        assert_eq!(encoded_len(&h), 8 + 3);
    }

    /// The hash agrees with a model after every kind of change (a packed one keeps insertion
    /// order, values updated in place), its kept bytes with a recount, and it converts one way.
    #[test]
    fn follows_a_model() {
        for seed in 0..4 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let small = Small {
                entries: [128, 5, 0, 100][seed as usize],
                value: [64, 10, 64, 300][seed as usize],
            };
            let mut h = HashValue::default();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut order: Vec<Vec<u8>> = Vec::new();
            let mut was_table = false;
            for step in 0..20_000 {
                let f: Vec<u8> = match rng.u8(..10) {
                    0 => vec![b'x'; rng.usize(0..200)],
                    _ => format!("f{}", rng.u32(..150)).into_bytes(),
                };
                let v: Vec<u8> = match rng.u8(..8) {
                    0 => vec![b'v'; rng.usize(0..200)],
                    1 => Vec::new(),
                    _ => rng.u64(..).to_string().into_bytes(),
                };
                match rng.u8(..8) {
                    0..=3 => {
                        let new = model.insert(f.clone(), v.clone()).is_none();
                        if new {
                            order.push(f.clone());
                        }
                        assert_eq!(h.insert_within(&f, &v, small), new, "{seed} {step}");
                    }
                    4..=5 => {
                        let was = model.remove(&f).is_some();
                        if was {
                            order.retain(|x| *x != f);
                        }
                        assert_eq!(h.remove(&f), was, "{seed} {step}");
                    }
                    _ => assert_eq!(h.get(&f), model.get(&f).map(|v| &v[..]), "{seed} {step}"),
                }
                assert_eq!(h.len(), model.len());
                assert_eq!((h.bytes(), h.heap()), recount(&h), "{seed} {step}");
                if h.is_small() {
                    assert!(!was_table, "never back to the packed buffer");
                    assert!(h.len() <= small.entries);
                    let keys: Vec<&[u8]> = h.keys().collect();
                    let want: Vec<&[u8]> = order.iter().map(|f| &f[..]).collect();
                    assert_eq!(keys, want, "insertion order {seed} {step}");
                } else {
                    was_table = true;
                }
                if step % 1000 == 0 {
                    let mut e = Vec::new();
                    encode(&h, &mut e);
                    assert_eq!(e.len(), encoded_len(&h));
                    assert_eq!(decode(&e).as_ref(), Some(&h));
                }
            }
            let mut c = h.clone();
            for (f, _) in h.iter() {
                c.insert(f, b"w");
            }
            assert_eq!((c.bytes(), c.heap()), recount(&c), "a clone's kept bytes");
            let all: HashMap<Vec<u8>, Vec<u8>> =
                h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            assert_eq!(all, model);
            assert!(was_table, "seed {seed} reached the table");
        }
    }

    #[test]
    fn converts_one_way_at_redis_limits() {
        let mut h: HashValue = (0..128).map(|i| (format!("f{i}"), "v")).collect();
        assert_eq!(encoding(&h, &Default::default()), "listpack");
        h.insert("f128", "v");
        assert_eq!(encoding(&h, &Default::default()), "hashtable");
        h.remove(b"f128");
        assert_eq!(encoding(&h, &Default::default()), "hashtable", "one way");
        let mut h = HashValue::default();
        h.insert([b'f'; 64], [b'v'; 64]);
        assert!(h.is_small());
        h.insert("g", [b'v'; 65]);
        assert!(!h.is_small());
        assert_eq!(h.get(b"g").map(<[u8]>::len), Some(65));
        let small: HashValue = [("a", "1"), ("b", "2"), ("c", "3")].into_iter().collect();
        assert!(payload_bytes(&small) < HASH_HEADER + 3 * 8, "packed");
    }

    #[test]
    fn scan_visits_every_field_once() {
        let h: HashValue = (0..1000).map(|i| (format!("field{i}"), "v")).collect();
        let (mut cursor, mut seen) = (0, HashSet::new());
        loop {
            let (next, page) = h.scan(cursor, 7, None);
            for (f, _) in page {
                assert!(seen.insert(f));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 1000);
    }
}
