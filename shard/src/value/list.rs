//! Lists: accounting, OBJECT ENCODING, and the codec payload.

use std::collections::VecDeque;

use bytes::Bytes;

/// A list value: elements in order, head first. A ring buffer gives O(1) pushes and pops at
/// both ends and O(1) access by index; Redis's quicklist trades some of that for compactness,
/// which the accounting below approximates. The list keeps its element bytes up to date as it
/// changes, so accounting a write costs O(1) however long the list is (the store re-accounts a
/// value after every write).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListValue {
    items: VecDeque<Bytes>,
    /// Sum of the elements' lengths.
    bytes: usize,
}

impl ListValue {
    pub fn new() -> ListValue {
        ListValue::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, Bytes> {
        self.items.iter()
    }

    pub fn get(&self, i: usize) -> Option<&Bytes> {
        self.items.get(i)
    }

    pub fn range(
        &self,
        r: std::ops::RangeInclusive<usize>,
    ) -> std::collections::vec_deque::Iter<'_, Bytes> {
        self.items.range(r)
    }

    pub fn push_front(&mut self, e: Bytes) {
        self.bytes += e.len();
        self.items.push_front(e);
    }

    pub fn push_back(&mut self, e: Bytes) {
        self.bytes += e.len();
        self.items.push_back(e);
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        let e = self.items.pop_front()?;
        self.bytes -= e.len();
        Some(e)
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        let e = self.items.pop_back()?;
        self.bytes -= e.len();
        Some(e)
    }

    /// Replaces element `i`; `false` when out of range.
    pub fn set(&mut self, i: usize, e: Bytes) -> bool {
        let Some(slot) = self.items.get_mut(i) else {
            return false;
        };
        self.bytes = self.bytes - slot.len() + e.len();
        *slot = e;
        true
    }

    pub fn insert(&mut self, i: usize, e: Bytes) {
        self.bytes += e.len();
        self.items.insert(i, e);
    }

    pub fn remove(&mut self, i: usize) -> Option<Bytes> {
        let e = self.items.remove(i)?;
        self.bytes -= e.len();
        Some(e)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Bytes) -> bool) {
        let mut removed = 0;
        self.items.retain(|e| {
            let k = keep(e);
            if !k {
                removed += e.len();
            }
            k
        });
        self.bytes -= removed;
    }

    /// Keeps elements `from..=to` only (LTRIM): the cost is that of the elements removed.
    pub fn keep_range(&mut self, from: usize, to: usize) {
        self.bytes -= self.items.range(to + 1..).map(Bytes::len).sum::<usize>();
        self.items.truncate(to + 1);
        let from = from.min(self.items.len());
        self.bytes -= self.items.range(..from).map(Bytes::len).sum::<usize>();
        self.items.drain(..from);
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// Sum of the elements' lengths, kept as the list changes.
    pub fn element_bytes(&self) -> usize {
        self.bytes
    }
}

impl FromIterator<Bytes> for ListValue {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> ListValue {
        let mut l = ListValue::new();
        for e in iter {
            l.push_back(e);
        }
        l
    }
}

impl<'a> IntoIterator for &'a ListValue {
    type Item = &'a Bytes;
    type IntoIter = std::collections::vec_deque::Iter<'a, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<const N: usize> From<[Bytes; N]> for ListValue {
    fn from(items: [Bytes; N]) -> ListValue {
        items.into_iter().collect()
    }
}

/// Accounted bytes per list element beyond its bytes: its `Bytes` header in the ring buffer
/// (four words) plus the allocation's rounding and the buffer's amortised spare capacity.
pub const ELEMENT_OVERHEAD: usize = 40;

/// Redis's default `list-max-listpack-size -2`: one listpack node of at most 8 KB.
const LISTPACK_MAX_BYTES: usize = 8 * 1024;
/// A listpack's own header and terminator.
const LISTPACK_HEADER: usize = 7;

/// Accounted bytes of a list: each element's bytes plus [`ELEMENT_OVERHEAD`].
#[inline]
pub fn payload_bytes(l: &ListValue) -> usize {
    l.element_bytes() + l.len() * ELEMENT_OVERHEAD
}

/// The encoding Redis 7.2+ would report with its defaults: `listpack` while the whole list
/// fits one 8 KB listpack, else `quicklist`. Approximations, stated: an element's listpack
/// entry is counted as its bytes plus 2 (encoding byte and back-length, exact for short
/// strings, a few bytes short for long ones and for integers stored as text), and Redis's
/// hysteresis (a quicklist turns back into a listpack only once it has shrunk to half the
/// limit) is not modelled: the answer depends only on the current contents. Redis 7.0 answers
/// `quicklist` for every list.
pub fn encoding(l: &ListValue) -> &'static str {
    let mut size = LISTPACK_HEADER;
    for e in l {
        size += e.len() + 2;
        if size > LISTPACK_MAX_BYTES {
            return "quicklist";
        }
    }
    "listpack"
}

// Codec payload: per element, `u32 BE length, element`, head to tail, to the end of the record.

pub fn encoded_len(l: &ListValue) -> usize {
    l.iter().map(|e| 4 + e.len()).sum()
}

pub fn encode(l: &ListValue, out: &mut Vec<u8>) {
    for e in l {
        // u32 lengths as in the hash payload: an element of 4 GiB or more would not round-trip.
        out.extend_from_slice(&(e.len() as u32).to_be_bytes());
        out.extend_from_slice(e);
    }
}

/// `None` when a length runs past the end of the payload (a truncated or corrupt record).
pub fn decode(mut payload: &[u8]) -> Option<ListValue> {
    let mut l = ListValue::new();
    while !payload.is_empty() {
        let (len, rest) = payload.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        l.push_back(Bytes::copy_from_slice(rest.get(..len)?));
        payload = rest.get(len..)?;
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept element bytes equal a recount after every kind of change.
    #[test]
    fn element_bytes_follow_every_change() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut l = ListValue::new();
        for _ in 0..5_000 {
            let e = Bytes::from(vec![b'x'; rng.usize(0..20)]);
            match rng.u8(0..9) {
                0 => l.push_front(e),
                1 => l.push_back(e),
                2 => drop(l.pop_front()),
                3 => drop(l.pop_back()),
                4 => drop(l.set(rng.usize(0..=l.len()), e)),
                5 => l.insert(rng.usize(0..=l.len()), e),
                6 => drop(l.remove(rng.usize(0..=l.len()))),
                7 => l.retain(|x| x.len() % 3 != 0),
                _ if !l.is_empty() => {
                    let from = rng.usize(0..l.len());
                    l.keep_range(from, rng.usize(from..l.len()));
                }
                _ => l.clear(),
            }
            assert_eq!(l.element_bytes(), l.iter().map(Bytes::len).sum::<usize>());
        }
    }
}
