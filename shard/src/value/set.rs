//! Sets: the representation, accounting, OBJECT ENCODING, SSCAN paging and the codec payload.
//!
//! Two representations, as Redis 7.0 has (`set-max-intset-entries 512`; 7.0 has no listpack
//! sets, 7.2 does):
//!
//! - `intset`: every member a canonical integer (`string2ll`'s rules) and at most 512 of
//!   them, kept as a sorted `Vec<i64>` (SMEMBERS answers in ascending order, as Redis's
//!   intset does).
//! - `hashtable`: a dense `Vec` of members (each inline up to 22 bytes in a 24-byte slot, so
//!   short members cost no allocation of their own and comparing one touches no other cache
//!   line) plus a `hashbrown::HashTable<u32>` of indices into it, as
//!   `indexmap` lays a map out. Membership is O(1); a random member (SPOP, SRANDMEMBER) is a
//!   uniform pick of an index; removal swaps the last member into the hole. For a million
//!   ~10-byte members this is ~36 bytes a member (measured: RSS and accounting agree), where
//!   Redis 7.0's dict of sds strings takes ~48 by MEMORY USAGE and ~56 by `used_memory`.
//!
//! A set converts one way, as Redis does: an intset becomes a hashtable when a non-integer
//! member arrives or it grows past 512, and never turns back when members leave. (A record
//! decoded from the codec re-derives its encoding from its members, as Redis does when it
//! loads an RDB file.)

use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::protocol::strict_i64;
use crate::store::glob::glob_match;

/// Redis's `set-max-intset-entries` default.
pub const INTSET_MAX_ENTRIES: usize = 512;

/// Bytes a hashtable member keeps inline.
const INLINE: usize = 22;

/// A member of a hashtable-encoded set: inline up to [`INLINE`] bytes, else a boxed slice of
/// exactly its length. 24 bytes either way (a `SmallVec<[u8; 16]>` is as big and holds 6
/// bytes less inline: redis-benchmark's `element:000000012345`, 20 bytes, spilled, and each
/// SADD of it paid a malloc and each lookup a second cache miss).
#[derive(Clone)]
enum Member {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Member {
    fn from_slice(m: &[u8]) -> Member {
        match u8::try_from(m.len()) {
            Ok(len) if m.len() <= INLINE => {
                let mut buf = [0; INLINE];
                if let Some(to) = buf.get_mut(..m.len()) {
                    to.copy_from_slice(m);
                }
                Member::Inline { len, buf }
            }
            _ => Member::Heap(m.into()),
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Member::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Member::Heap(b) => b,
        }
    }
}

impl std::ops::Deref for Member {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// A set value. It keeps its accounted bytes' variable part as it changes, so accounting a
/// write is O(1) however large the set is (the store re-accounts a value after every write).
#[derive(Debug, Clone, Default)]
pub struct SetValue {
    repr: Repr,
    /// Heap bytes of the members (hashtable members longer than the inline 16 bytes).
    heap: usize,
}

#[derive(Debug, Clone)]
enum Repr {
    Ints(IntSet),
    Table(Table),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Ints(IntSet::default())
    }
}

#[derive(Clone, Default)]
struct Table {
    /// Indices into `members`, hashed by the member they point at.
    index: HashTable<u32>,
    members: Vec<Member>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.members.iter()).finish()
    }
}

fn hash(b: &[u8]) -> u64 {
    static HASHER: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x7365_7473_6574_7321);
    HASHER.hash_one(b)
}

fn heap_len(m: &[u8]) -> usize {
    if m.len() > INLINE { m.len() } else { 0 }
}

/// Redis's intset: sorted integers, each stored in the narrowest width (2, 4 or 8 bytes,
/// little-endian) that fits every member, so a set of small integers takes 2 bytes a member.
/// Adding a wider integer re-encodes the whole set at the new width, as Redis does.
#[derive(Debug, Clone)]
struct IntSet {
    width: usize,
    data: Vec<u8>,
}

impl Default for IntSet {
    fn default() -> IntSet {
        IntSet {
            width: 2,
            data: Vec::new(),
        }
    }
}

fn width_of(n: i64) -> usize {
    if i16::try_from(n).is_ok() {
        2
    } else if i32::try_from(n).is_ok() {
        4
    } else {
        8
    }
}

/// An intset member from its `width` bytes (chunks of the set's own width, always).
fn decode_int(b: &[u8]) -> i64 {
    match b.len() {
        2 => b.try_into().map_or(0, |a| i64::from(i16::from_le_bytes(a))),
        4 => b.try_into().map_or(0, |a| i64::from(i32::from_le_bytes(a))),
        _ => b.try_into().map_or(0, i64::from_le_bytes),
    }
}

fn encode_int(n: i64, width: usize, out: &mut [u8]) {
    // `n` fits `width` bytes: the low bytes of its two's complement are the narrower value.
    out.copy_from_slice(n.to_le_bytes().get(..width).unwrap_or_default());
}

impl IntSet {
    fn len(&self) -> usize {
        self.data.len() / self.width
    }

    /// Capacity in members at the current width.
    fn capacity(&self) -> usize {
        self.data.capacity() / self.width
    }

    fn heap_bytes(&self) -> usize {
        self.data.capacity()
    }

    fn get(&self, i: usize) -> Option<i64> {
        let w = self.width;
        self.data.get(i * w..i * w + w).map(decode_int)
    }

    fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.data.chunks_exact(self.width).map(decode_int)
    }

    fn binary_search(&self, n: &i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).map(|x| x.cmp(n)) {
                Some(std::cmp::Ordering::Less) => lo = mid + 1,
                Some(std::cmp::Ordering::Greater) => hi = mid,
                Some(std::cmp::Ordering::Equal) => return Ok(mid),
                None => return Err(lo),
            }
        }
        Err(lo)
    }

    fn insert(&mut self, at: usize, n: i64) {
        let need = width_of(n);
        if need > self.width {
            let mut wider = Vec::with_capacity((self.len() + 1) * need);
            let mut slot = [0u8; 8];
            for x in self.iter() {
                let slot = &mut slot[..need];
                encode_int(x, need, slot);
                wider.extend_from_slice(slot);
            }
            self.data = wider;
            self.width = need;
        }
        let w = self.width;
        let mut slot = [0u8; 8];
        let slot = &mut slot[..w];
        encode_int(n, w, slot);
        let at = (at * w).min(self.data.len());
        self.data.splice(at..at, slot.iter().copied());
    }

    fn remove(&mut self, at: usize) -> Option<i64> {
        let n = self.get(at)?;
        let w = self.width;
        self.data.drain(at * w..at * w + w);
        Some(n)
    }

    fn reserve(&mut self, additional: usize) {
        self.data.reserve(additional * self.width);
    }
}

impl Table {
    fn find(&self, m: &[u8]) -> Option<usize> {
        let members = &self.members;
        self.index
            .find(hash(m), |&i| {
                members.get(i as usize).is_some_and(|x| x.as_slice() == m)
            })
            .map(|&i| i as usize)
    }

    /// Adds `m` if absent; true if added. One probe of the index either way.
    fn insert(&mut self, m: &[u8]) -> bool {
        let members = &self.members;
        let i = members.len() as u32;
        match self.index.entry(
            hash(m),
            |&j| members.get(j as usize).is_some_and(|x| x.as_slice() == m),
            |&j| members.get(j as usize).map_or(0, |x| hash(x)),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(i);
                self.members.push(Member::from_slice(m));
                true
            }
        }
    }

    /// Removes the member at `i`, moving the last member into its place.
    fn remove_at(&mut self, i: usize) -> Option<Member> {
        let m = self.members.get(i)?;
        let h = hash(m);
        if let Ok(e) = self.index.find_entry(h, |&j| j as usize == i) {
            e.remove();
        }
        let last = self.members.len() - 1;
        if i != last {
            // The last member moves to `i`: repoint its index entry.
            let moved = hash(&self.members[last]);
            if let Some(slot) = self.index.find_mut(moved, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        let m = self.members.swap_remove(i);
        if self.members.len() < self.members.capacity() / 4 {
            self.members.shrink_to(self.members.len() * 2);
            self.index.shrink_to(self.members.len(), |&j| {
                self.members.get(j as usize).map_or(0, |x| hash(x))
            });
        }
        Some(m)
    }
}

impl SetValue {
    pub fn new() -> SetValue {
        SetValue::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(t) => t.members.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => strict_i64(m).is_some_and(|n| v.binary_search(&n).is_ok()),
            Repr::Table(t) => t.find(m).is_some(),
        }
    }

    /// Adds `m`; true if it was not a member.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        self.insert_within(m, INTSET_MAX_ENTRIES)
    }

    /// Adds `m`, leaving the intset once it would hold more than `intset_max` members
    /// (`set-max-intset-entries`); true if it was not a member.
    pub fn insert_within(&mut self, m: &[u8], intset_max: usize) -> bool {
        if let Repr::Ints(v) = &mut self.repr
            && let Some(n) = strict_i64(m)
        {
            return match v.binary_search(&n) {
                Ok(_) => false,
                Err(_) if v.len() >= intset_max => {
                    self.convert_to_table();
                    self.insert(m)
                }
                Err(at) => {
                    v.insert(at, n);
                    true
                }
            };
        }
        if self.is_intset() {
            self.convert_to_table();
        }
        let Repr::Table(t) = &mut self.repr else {
            return false;
        };
        let added = t.insert(m);
        if added {
            self.heap += heap_len(m);
        }
        added
    }

    /// Removes `m`; true if it was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match strict_i64(m).map(|n| v.binary_search(&n)) {
                Some(Ok(at)) => v.remove(at).is_some(),
                _ => false,
            },
            Repr::Table(t) => match t.find(m).and_then(|i| t.remove_at(i)) {
                Some(x) => {
                    self.heap -= heap_len(&x);
                    true
                }
                None => false,
            },
        }
    }

    /// The intset becomes a hashtable (one way).
    fn convert_to_table(&mut self) {
        let Repr::Ints(v) = &self.repr else {
            return;
        };
        let mut t = Table::default();
        // What SADD reserved for the intset (see `reserve`) carries over.
        let want = v.capacity().max(v.len()) + 1;
        t.members.reserve_exact(want);
        t.index.reserve(want, |_| 0);
        let mut buf = itoa::Buffer::new();
        let mut heap = 0;
        for n in v.iter() {
            let m = buf.format(n).as_bytes();
            heap += heap_len(m);
            t.insert(m);
        }
        self.repr = Repr::Table(t);
        self.heap = heap;
    }

    /// Room for `additional` more members (SADD reserves for its arguments, so a new set of
    /// ten members is allocated once, at its size, not grown 4, 8, 16).
    pub fn reserve(&mut self, additional: usize) {
        match &mut self.repr {
            Repr::Ints(v) => v.reserve(additional.min(INTSET_MAX_ENTRIES)),
            Repr::Table(t) => {
                t.members.reserve(additional);
                let members = &t.members;
                t.index.reserve(additional, |&j| {
                    members.get(j as usize).map_or(0, |x| hash(x))
                });
            }
        }
    }

    /// The member at `i` (`i < len`), in the representation's order.
    fn nth(&self, i: usize) -> Option<Bytes> {
        match &self.repr {
            Repr::Ints(v) => v.get(i).map(|n| Bytes::from(n.to_string())),
            Repr::Table(t) => t.members.get(i).map(|m| Bytes::copy_from_slice(m)),
        }
    }

    /// A uniformly random member.
    pub fn random(&self, rng: &mut fastrand::Rng) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        self.nth(rng.usize(..self.len()))
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, rng: &mut fastrand::Rng) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        let i = rng.usize(..self.len());
        match &mut self.repr {
            Repr::Ints(v) => v.remove(i).map(|n| Bytes::from(n.to_string())),
            Repr::Table(t) => {
                let m = t.remove_at(i)?;
                self.heap -= heap_len(&m);
                Some(Bytes::copy_from_slice(&m))
            }
        }
    }

    /// `count` distinct random members (all of them, shuffled, when `count >= len`).
    pub fn sample(&self, count: usize, rng: &mut fastrand::Rng) -> Vec<Bytes> {
        let len = self.len();
        if count >= len {
            let mut all = self.members();
            rng.shuffle(&mut all);
            return all;
        }
        if count.saturating_mul(3) > len {
            let mut idx: Vec<usize> = (0..len).collect();
            rng.shuffle(&mut idx);
            idx.truncate(count);
            return idx.into_iter().filter_map(|i| self.nth(i)).collect();
        }
        let mut picked = hashbrown::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = rng.usize(..len);
            if picked.insert(i)
                && let Some(m) = self.nth(i)
            {
                out.push(m);
            }
        }
        out
    }

    /// Every member, as `Bytes` (intsets in ascending order).
    pub fn members(&self) -> Vec<Bytes> {
        (0..self.len()).filter_map(|i| self.nth(i)).collect()
    }

    /// Calls `f` on every member's bytes, without copying hashtable members.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        match &self.repr {
            Repr::Ints(v) => {
                let mut buf = itoa::Buffer::new();
                for n in v.iter() {
                    f(buf.format(n).as_bytes());
                }
            }
            Repr::Table(t) => t.members.iter().for_each(|m| f(m)),
        }
    }

    /// Bytes the members take beyond their fixed per-member cost (see [`payload_bytes`]).
    pub fn heap_bytes(&self) -> usize {
        self.heap
    }

    /// One SSCAN step. An intset is returned whole with cursor 0 (as Redis does for its
    /// compact encodings). A hashtable is walked from its last index down: a member that moves
    /// when another is removed moves from the end, which is already visited, so every member
    /// present for the whole iteration is returned at least once, and an unchanged set returns
    /// each member exactly once. The cursor is how many positions are left to visit.
    pub fn scan(&self, cursor: u64, count: usize, pattern: Option<&[u8]>) -> (u64, Vec<Bytes>) {
        let keep = |m: &[u8]| pattern.is_none_or(|p| glob_match(p, m, false));
        let t = match &self.repr {
            Repr::Ints(_) => {
                let mut out = Vec::new();
                self.for_each(|m| {
                    if keep(m) {
                        out.push(Bytes::copy_from_slice(m));
                    }
                });
                return (0, out);
            }
            Repr::Table(t) => t,
        };
        let len = t.members.len();
        let left = if cursor == 0 {
            len
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
        };
        let from = left.saturating_sub(count.max(1));
        let out = t.members[from..left]
            .iter()
            .rev()
            .filter(|m| keep(m))
            .map(|m| Bytes::copy_from_slice(m))
            .collect();
        (from as u64, out)
    }
}

impl PartialEq for SetValue {
    /// Same members, whatever the representation or order.
    fn eq(&self, other: &SetValue) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut same = true;
        self.for_each(|m| same &= other.contains(m));
        same
    }
}

impl<'a> FromIterator<&'a [u8]> for SetValue {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> SetValue {
        let mut s = SetValue::new();
        for m in iter {
            s.insert(m);
        }
        s
    }
}

/// Accounted bytes of a hashtable member's slot in the member vector (inline bytes and
/// length; longer members' heap bytes are counted as well).
pub const MEMBER_SLOT: usize = std::mem::size_of::<Member>();
/// Accounted bytes per slot of the index: a `u32` and a control byte, and the table's
/// spare buckets (it holds at most 7/8 of them).
const INDEX_SLOT: usize = 6;
/// The boxed `SetValue` itself and its allocations' headers.
const SET_HEADER: usize = 96;

/// Accounted bytes of a set, from its vectors' capacities (so in O(1)): what it allocated,
/// not only what it holds, as the allocator sees it.
#[inline]
pub fn payload_bytes(s: &SetValue) -> usize {
    SET_HEADER
        + match &s.repr {
            Repr::Ints(v) => v.heap_bytes(),
            Repr::Table(t) => {
                t.members.capacity() * MEMBER_SLOT + t.index.capacity() * INDEX_SLOT + s.heap
            }
        }
}

/// The encoding Redis 7.0 reports: `intset` or `hashtable`.
pub fn encoding(s: &SetValue) -> &'static str {
    if s.is_intset() { "intset" } else { "hashtable" }
}

// Codec payload: per member, `u32 BE length, member`, to the end of the record (intset
// members as their decimal text).

pub fn encoded_len(s: &SetValue) -> usize {
    let mut n = 0;
    s.for_each(|m| n += 4 + m.len());
    n
}

pub fn encode(s: &SetValue, out: &mut Vec<u8>) {
    s.for_each(|m| {
        // u32 lengths as in the other payloads: a member of 4 GiB or more would not round-trip.
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    });
}

/// `None` when a length runs past the end of the payload (a truncated or corrupt record).
pub fn decode(mut payload: &[u8]) -> Option<SetValue> {
    let mut s = SetValue::new();
    while !payload.is_empty() {
        let (len, rest) = payload.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        s.insert(rest.get(..len)?);
        payload = rest.get(len..)?;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn recount(s: &SetValue) -> usize {
        let mut heap = 0;
        s.for_each(|m| heap += heap_len(m));
        if s.is_intset() { 0 } else { heap }
    }

    /// The set agrees with a model after every kind of change, its kept heap bytes with a
    /// recount, and it converts one way.
    #[test]
    fn follows_a_model() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut s = SetValue::new();
        let mut model: HashSet<Vec<u8>> = HashSet::new();
        let mut was_table = false;
        for step in 0..20_000 {
            let m: Vec<u8> = match rng.u8(..10) {
                0 => vec![b'x'; rng.usize(0..40)],
                1 => format!("m{}", rng.u32(..50)).into_bytes(),
                2 => format!("-9223372036854775{:03}", rng.u32(..40)).into_bytes(),
                _ => rng.i64(-300..700).to_string().into_bytes(),
            };
            match rng.u8(..7) {
                0..=2 => assert_eq!(s.insert(&m), model.insert(m.clone()), "{step}"),
                3..=4 => assert_eq!(s.remove(&m), model.remove(&m), "{step}"),
                5 => {
                    if let Some(p) = s.pop_random(&mut rng) {
                        assert!(model.remove(p.as_ref()), "{step}");
                    }
                }
                _ => assert_eq!(s.contains(&m), model.contains(&m)),
            }
            assert_eq!(s.len(), model.len());
            assert_eq!(s.heap_bytes(), recount(&s));
            if !s.is_intset() {
                was_table = true;
            }
            assert!(!(was_table && s.is_intset()), "never back to an intset");
        }
        let members: HashSet<Vec<u8>> = s.members().iter().map(|b| b.to_vec()).collect();
        assert_eq!(members, model);
    }

    #[test]
    fn members_are_inline_up_to_22_bytes() {
        assert_eq!(MEMBER_SLOT, 24);
        for n in [0, 1, 16, 17, 22, 23, 64] {
            let m = vec![b'x'; n];
            let member = Member::from_slice(&m);
            assert_eq!(member.as_slice(), &m[..]);
            assert_eq!(matches!(member, Member::Heap(_)), n > INLINE);
            assert_eq!(heap_len(&m), if n > INLINE { n } else { 0 });
        }
    }

    #[test]
    fn encodings_follow_redis_7_0() {
        let ints: SetValue = (0..512)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        assert_eq!(encoding(&ints), "intset");
        let mut more = ints.clone();
        more.insert(b"512");
        assert_eq!(encoding(&more), "hashtable");
        more.remove(b"512");
        assert_eq!(encoding(&more), "hashtable", "one way");
        let mut s = SetValue::new();
        s.insert(b"1");
        s.insert(b"01");
        assert_eq!(encoding(&s), "hashtable", "01 is not canonical");
        assert!(s.contains(b"1") && s.contains(b"01") && !s.contains(b"2"));
        let ordered: SetValue = [&b"3"[..], b"-1", b"2"].into_iter().collect();
        assert_eq!(
            ordered.members(),
            [&b"-1"[..], b"2", b"3"].map(Bytes::from_static)
        );
    }

    /// Members are kept at the narrowest width that fits them all, in order.
    #[test]
    fn intset_widths() {
        let mut s = SetValue::new();
        let wanted = [-5_000_000_000i64, -70_000, -1, 0, 7, 40_000, i64::MAX];
        for (i, n) in [7i64, -1, 40_000, 0, -70_000, i64::MAX, -5_000_000_000]
            .iter()
            .enumerate()
        {
            assert!(s.insert(n.to_string().as_bytes()));
            assert!(!s.insert(n.to_string().as_bytes()));
            assert_eq!(s.len(), i + 1);
        }
        assert_eq!(encoding(&s), "intset");
        let members: Vec<Bytes> = wanted.iter().map(|n| Bytes::from(n.to_string())).collect();
        assert_eq!(s.members(), members);
        for n in wanted {
            assert!(s.contains(n.to_string().as_bytes()));
        }
        assert!(!s.contains(b"8"));
        assert!(s.remove(b"-70000"));
        assert!(!s.contains(b"-70000"));
        assert_eq!(s.len(), 6);
        let small: SetValue = [&b"1"[..], b"2", b"3"].into_iter().collect();
        assert!(
            payload_bytes(&small) < SET_HEADER + 3 * 8,
            "two bytes a member"
        );
    }

    #[test]
    fn scan_visits_every_member_once() {
        let s: SetValue = (0..1000)
            .map(|i| format!("member{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(|m| m.as_bytes())
            .collect();
        let (mut cursor, mut seen) = (0, HashSet::new());
        loop {
            let (next, page) = s.scan(cursor, 7, None);
            for m in page {
                assert!(seen.insert(m));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 1000);
    }
}
