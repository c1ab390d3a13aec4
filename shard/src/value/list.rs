//! Lists: a packed representation, accounting, OBJECT ENCODING, and the codec payload.

use std::collections::VecDeque;

use bytes::Bytes;

/// A list value, head first, packed the way Redis's quicklist packs one: a deque of nodes of
/// at most [`NODE_MAX`] bytes, each holding its elements back to back as `length, bytes,
/// length backwards` (a listpack's layout: the trailing length lets a node be walked from its
/// end). Per element that is its bytes plus 2 for elements under 128 bytes, instead of a
/// pointer-sized header and an allocation each. Pushes and pops at both ends are O(1) but for
/// moving at most one node's bytes; access by index walks nodes by their counts from the
/// nearer end, then entries within one node. The list keeps its element bytes up to date as it
/// changes, so accounting a write is O(1).
#[derive(Debug, Clone, Default)]
pub struct ListValue {
    nodes: VecDeque<Node>,
    len: usize,
    /// Sum of the elements' lengths.
    bytes: usize,
}

/// One node: entries in `buf[head..]` (popping from the front only moves `head`; the space is
/// reclaimed when it is half the buffer).
#[derive(Debug, Clone, Default)]
struct Node {
    buf: Vec<u8>,
    head: usize,
    count: usize,
}

/// Largest node, as Redis's default `list-max-listpack-size -2` (8 KB); an element larger than
/// this gets a node of its own.
const NODE_MAX: usize = 8 * 1024;

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The bytes an element takes in a list's node (its bytes and two lengths).
pub fn entry_bytes(e: &[u8]) -> usize {
    entry_len(e)
}

fn entry_len(e: &[u8]) -> usize {
    e.len() + 2 * varint_len(e.len())
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends one entry: length, bytes, then the length's bytes in reverse order.
fn put_entry(out: &mut Vec<u8>, e: &[u8]) {
    put_varint(out, e.len());
    out.extend_from_slice(e);
    let at = out.len();
    put_varint(out, e.len());
    out[at..].reverse();
}

/// The entry starting at `pos`: (data start, data end, next entry's start).
fn read_fwd(buf: &[u8], pos: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, pos);
    loop {
        let b = buf[i];
        n |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = i + n;
    (i, end, end + varint_len(n))
}

/// The entry ending at `end`: (entry start, data start, data end).
fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = buf[i];
        n |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let data_end = i;
    let data_start = data_end - n;
    (data_start - varint_len(n), data_start, data_end)
}

impl Node {
    fn with(e: &[u8]) -> Node {
        let mut buf = Vec::with_capacity(entry_len(e));
        put_entry(&mut buf, e);
        Node {
            buf,
            head: 0,
            count: 1,
        }
    }

    fn size(&self) -> usize {
        self.buf.len() - self.head
    }

    fn fits(&self, e: &[u8]) -> bool {
        self.size() + entry_len(e) <= NODE_MAX
    }

    fn push_back(&mut self, e: &[u8]) {
        put_entry(&mut self.buf, e);
        self.count += 1;
    }

    fn push_front(&mut self, e: &[u8]) {
        let len = entry_len(e);
        if self.head < len {
            // Room at the front: what the node holds, plus as much again (at most a node).
            let room = len + self.size().min(NODE_MAX / 2);
            let mut buf = Vec::with_capacity(room + self.size());
            buf.resize(room, 0);
            buf.extend_from_slice(&self.buf[self.head..]);
            self.buf = buf;
            self.head = room;
        }
        let mut entry = Vec::with_capacity(len);
        put_entry(&mut entry, e);
        self.head -= len;
        self.buf[self.head..self.head + len].copy_from_slice(&entry);
        self.count += 1;
    }

    fn pop_front(&mut self) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        let (start, end, next) = read_fwd(&self.buf, self.head);
        let e = Bytes::copy_from_slice(&self.buf[start..end]);
        self.head = next;
        self.count -= 1;
        if self.head * 2 > self.buf.len() && self.buf.len() > 64 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        Some(e)
    }

    fn pop_back(&mut self) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        let (entry, start, end) = read_back(&self.buf, self.buf.len());
        let e = Bytes::copy_from_slice(&self.buf[start..end]);
        self.buf.truncate(entry);
        self.count -= 1;
        Some(e)
    }

    fn iter(&self) -> NodeIter<'_> {
        NodeIter {
            buf: &self.buf,
            front: self.head,
            back: self.buf.len(),
            left: self.count,
        }
    }

    /// Rebuilds the node from its elements with one edit applied (a node is at most 8 KB, so
    /// this is bounded); returns a removed element.
    fn rebuild(&mut self, edit: Edit<'_>) -> Option<Bytes> {
        let mut removed = None;
        let (buf, count) = {
            let mut items: Vec<&[u8]> = self.iter().collect();
            match edit {
                Edit::Set(at, e) => items[at] = e,
                Edit::Insert(at, e) => items.insert(at, e),
                Edit::Remove(at) => removed = Some(Bytes::copy_from_slice(items.remove(at))),
                Edit::Retain(keep) => items.retain(|e| keep(e)),
            }
            let mut buf = Vec::with_capacity(items.iter().map(|e| entry_len(e)).sum());
            for e in &items {
                put_entry(&mut buf, e);
            }
            (buf, items.len())
        };
        self.count = count;
        self.buf = buf;
        self.head = 0;
        removed
    }
}

/// One change to a node's elements (see [`Node::rebuild`]).
enum Edit<'a> {
    Set(usize, &'a [u8]),
    Insert(usize, &'a [u8]),
    Remove(usize),
    Retain(&'a mut dyn FnMut(&[u8]) -> bool),
}

/// The entries of one node, from both ends.
#[derive(Clone)]
struct NodeIter<'a> {
    buf: &'a [u8],
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (start, end, next) = read_fwd(self.buf, self.front);
        self.front = next;
        self.left -= 1;
        Some(&self.buf[start..end])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for NodeIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (entry, start, end) = read_back(self.buf, self.back);
        self.back = entry;
        self.left -= 1;
        Some(&self.buf[start..end])
    }
}

/// A list's elements in order (both ends), as byte slices.
#[derive(Clone)]
pub struct Iter<'a> {
    nodes: std::collections::vec_deque::Iter<'a, Node>,
    front: Option<NodeIter<'a>>,
    back: Option<NodeIter<'a>>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.front.as_mut().and_then(Iterator::next) {
                self.left -= 1;
                return Some(e);
            }
            match self.nodes.next() {
                Some(n) => self.front = Some(n.iter()),
                None => {
                    // The rest is in the node the back end started on.
                    let e = self.back.as_mut().and_then(Iterator::next);
                    self.left -= usize::from(e.is_some());
                    return e;
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(e) = self.back.as_mut().and_then(DoubleEndedIterator::next_back) {
                self.left -= 1;
                return Some(e);
            }
            match self.nodes.next_back() {
                Some(n) => self.back = Some(n.iter()),
                None => {
                    let e = self.front.as_mut().and_then(DoubleEndedIterator::next_back);
                    self.left -= usize::from(e.is_some());
                    return e;
                }
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl ListValue {
    pub fn new() -> ListValue {
        ListValue::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            nodes: self.nodes.iter(),
            front: None,
            back: None,
            left: self.len,
        }
    }

    /// The node holding element `i` and `i`'s index in it, found from the nearer end.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        if i < self.len / 2 {
            let mut i = i;
            for (n, node) in self.nodes.iter().enumerate() {
                if i < node.count {
                    return Some((n, i));
                }
                i -= node.count;
            }
        } else {
            let mut from_end = self.len - 1 - i;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if from_end < node.count {
                    return Some((n, node.count - 1 - from_end));
                }
                from_end -= node.count;
            }
        }
        None
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (n, at) = self.locate(i)?;
        let node = &self.nodes[n];
        if at < node.count / 2 {
            node.iter().nth(at)
        } else {
            node.iter().nth_back(node.count - 1 - at)
        }
    }

    /// Elements `from..=to` (in range: LRANGE clamps first), starting at the right node.
    pub fn range(&self, r: std::ops::RangeInclusive<usize>) -> impl Iterator<Item = &[u8]> + Clone {
        let (from, to) = (*r.start(), *r.end());
        let take = (to + 1)
            .saturating_sub(from)
            .min(self.len.saturating_sub(from));
        let (n, at) = self.locate(from).unwrap_or((self.nodes.len(), 0));
        let mut it = Iter {
            nodes: self.nodes.range(n.min(self.nodes.len())..),
            front: None,
            back: None,
            left: self.len - from.min(self.len),
        };
        if let Some(node) = it.nodes.next() {
            let mut ni = node.iter();
            if at > 0 {
                ni.nth(at - 1);
            }
            it.front = Some(ni);
        }
        it.take(take)
    }

    /// Sizes a new list for the elements about to be pushed at one end (`elements`' bytes as
    /// [`entry_bytes`] counts them), so a list created by one LPUSH/RPUSH holds no spare room.
    /// Does nothing to a list that has elements.
    pub fn reserve_new(&mut self, front: bool, bytes: usize) {
        if !self.nodes.is_empty() {
            return;
        }
        let bytes = bytes.min(NODE_MAX);
        self.nodes.reserve_exact(1);
        self.nodes.push_back(if front {
            Node {
                buf: vec![0; bytes],
                head: bytes,
                count: 0,
            }
        } else {
            Node {
                buf: Vec::with_capacity(bytes),
                head: 0,
                count: 0,
            }
        });
    }

    pub fn push_front(&mut self, e: &[u8]) {
        self.bytes += e.len();
        self.len += 1;
        match self.nodes.front_mut() {
            Some(n) if n.fits(e) => n.push_front(e),
            _ => {
                if let Some(n) = self.nodes.front_mut() {
                    n.buf.shrink_to_fit();
                }
                self.nodes.push_front(Node::with(e));
            }
        }
    }

    pub fn push_back(&mut self, e: &[u8]) {
        self.bytes += e.len();
        self.len += 1;
        match self.nodes.back_mut() {
            Some(n) if n.fits(e) => n.push_back(e),
            _ => {
                if let Some(n) = self.nodes.back_mut() {
                    n.buf.shrink_to_fit();
                }
                if self.nodes.is_empty() {
                    // Most lists are one node: no spare slots for more.
                    self.nodes.reserve_exact(1);
                }
                self.nodes.push_back(Node::with(e));
            }
        }
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        let node = self.nodes.front_mut()?;
        let e = node.pop_front()?;
        if node.count == 0 {
            self.nodes.pop_front();
        }
        self.popped(&e);
        Some(e)
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        let node = self.nodes.back_mut()?;
        let e = node.pop_back()?;
        if node.count == 0 {
            self.nodes.pop_back();
        }
        self.popped(&e);
        Some(e)
    }

    fn popped(&mut self, e: &[u8]) {
        self.len -= 1;
        self.bytes -= e.len();
    }

    /// Replaces element `i`; `false` when out of range.
    pub fn set(&mut self, i: usize, e: Bytes) -> bool {
        let Some((n, at)) = self.locate(i) else {
            return false;
        };
        let old = self.get(i).map_or(0, <[u8]>::len);
        self.nodes[n].rebuild(Edit::Set(at, &e));
        self.bytes = self.bytes - old + e.len();
        true
    }

    /// Inserts `e` before element `i` (at the end when `i == len`).
    pub fn insert(&mut self, i: usize, e: Bytes) {
        if i == 0 {
            return self.push_front(&e);
        }
        if i >= self.len {
            return self.push_back(&e);
        }
        let Some((n, at)) = self.locate(i) else {
            return;
        };
        self.nodes[n].rebuild(Edit::Insert(at, &e));
        self.bytes += e.len();
        self.len += 1;
        self.split_if_large(n);
    }

    /// Splits node `n` in two when an insertion took it past the node size.
    fn split_if_large(&mut self, n: usize) {
        let node = &self.nodes[n];
        if node.size() <= NODE_MAX || node.count < 2 {
            return;
        }
        let items: Vec<&[u8]> = node.iter().collect();
        let half = items.len() / 2;
        let mut first = Node::default();
        let mut second = Node::default();
        for e in &items[..half] {
            first.push_back(e);
        }
        for e in &items[half..] {
            second.push_back(e);
        }
        self.nodes[n] = first;
        self.nodes.insert(n + 1, second);
    }

    pub fn remove(&mut self, i: usize) -> Option<Bytes> {
        let (n, at) = self.locate(i)?;
        let removed = self.nodes[n].rebuild(Edit::Remove(at)).unwrap_or_default();
        if self.nodes[n].count == 0 {
            self.nodes.remove(n);
        }
        self.popped(&removed);
        Some(removed)
    }

    /// Keeps the elements `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let (mut len, mut bytes) = (0, 0);
        for node in &mut self.nodes {
            node.rebuild(Edit::Retain(&mut keep));
            len += node.count;
            bytes += node.iter().map(<[u8]>::len).sum::<usize>();
        }
        self.nodes.retain(|n| n.count > 0);
        self.len = len;
        self.bytes = bytes;
    }

    /// Keeps elements `from..=to` only (LTRIM): the cost is that of the elements removed.
    pub fn keep_range(&mut self, from: usize, to: usize) {
        let drop_back = self.len.saturating_sub(to + 1);
        for _ in 0..drop_back {
            self.pop_back();
        }
        for _ in 0..from.min(self.len) {
            self.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.len = 0;
        self.bytes = 0;
    }

    /// Sum of the elements' lengths, kept as the list changes.
    pub fn element_bytes(&self) -> usize {
        self.bytes
    }
}

impl PartialEq for ListValue {
    /// Same elements in the same order, however they are split into nodes.
    fn eq(&self, other: &ListValue) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl FromIterator<Bytes> for ListValue {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> ListValue {
        let mut l = ListValue::new();
        for e in iter {
            l.push_back(&e);
        }
        l
    }
}

impl<'a> IntoIterator for &'a ListValue {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<const N: usize> From<[Bytes; N]> for ListValue {
    fn from(items: [Bytes; N]) -> ListValue {
        items.into_iter().collect()
    }
}

/// Accounted bytes per list element beyond its bytes: its two lengths in the node (one byte
/// each below 128 bytes).
pub const ELEMENT_OVERHEAD: usize = 2;
/// Accounted bytes per node: its place in the deque and its buffer's allocation.
pub const NODE_OVERHEAD: usize = 48;

/// Accounted bytes of a list: each element's bytes plus [`ELEMENT_OVERHEAD`], and
/// [`NODE_OVERHEAD`] per node. O(1): the counts are kept as the list changes.
#[inline]
pub fn payload_bytes(l: &ListValue) -> usize {
    l.element_bytes() + l.len() * ELEMENT_OVERHEAD + l.nodes.len() * NODE_OVERHEAD
}

/// The encoding Redis 7.2+ would report with its defaults: `listpack` while the list is one
/// node (at most 8 KB, Redis's `list-max-listpack-size -2`), else `quicklist`. Like Redis's,
/// it depends on the list's history: a list that grew past one node and shrank back stays
/// `quicklist` until it is one node again. Redis 7.0 answers `quicklist` for every list.
pub fn encoding(l: &ListValue, limits: &super::limits::Limits) -> &'static str {
    let (max_len, max_bytes) = limits.list_listpack();
    if limits.list_max_listpack_size == -2 {
        // The default: exactly the node size the list is packed with.
        return if l.nodes.len() <= 1 {
            "listpack"
        } else {
            "quicklist"
        };
    }
    // Other sizes: from the contents, a listpack's header and each entry's two lengths.
    if l.len() <= max_len && l.element_bytes() + 2 * l.len() + 7 <= max_bytes {
        "listpack"
    } else {
        "quicklist"
    }
}

// Codec payload: per element, `u32 BE length, element`, head to tail, to the end of the record.

pub fn encoded_len(l: &ListValue) -> usize {
    4 * l.len() + l.element_bytes()
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
        l.push_back(rest.get(..len)?);
        payload = rest.get(len..)?;
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation against a plain deque of the same elements: contents, lengths, kept
    /// bytes, access by index and ranges from both ends, with elements from empty to larger
    /// than a node (so lists span many nodes, split and merge).
    #[test]
    fn behaves_as_a_deque_across_nodes() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut l = ListValue::new();
        let mut model: VecDeque<Bytes> = VecDeque::new();
        for step in 0..20_000 {
            let size = match rng.u8(0..20) {
                0 => rng.usize(0..12_000),
                1..=3 => rng.usize(100..400),
                _ => rng.usize(0..20),
            };
            let e = Bytes::from(vec![b'a' + (step % 26) as u8; size]);
            let at = rng.usize(0..=l.len());
            match rng.u8(0..12) {
                0 | 1 => {
                    if l.is_empty() && rng.bool() {
                        l.reserve_new(step % 2 == 0, entry_bytes(&e) * 3);
                    }
                    l.push_front(&e);
                    model.push_front(e);
                }
                2 | 3 => {
                    l.push_back(&e);
                    model.push_back(e);
                }
                4 => assert_eq!(l.pop_front(), model.pop_front()),
                5 => assert_eq!(l.pop_back(), model.pop_back()),
                6 => {
                    let ok = l.set(at, e.clone());
                    assert_eq!(ok, at < model.len());
                    if ok {
                        model[at] = e;
                    }
                }
                7 => {
                    l.insert(at, e.clone());
                    model.insert(at, e);
                }
                8 => assert_eq!(l.remove(at), model.remove(at)),
                9 if rng.u8(0..10) == 0 => {
                    let odd = |x: &[u8]| x.len() % 7 == 3;
                    l.retain(|x| !odd(x));
                    model.retain(|x| !odd(x));
                }
                10 if !l.is_empty() && rng.u8(0..10) == 0 => {
                    let from = rng.usize(0..l.len());
                    let to = rng.usize(from..l.len());
                    l.keep_range(from, to);
                    model.truncate(to + 1);
                    model.drain(..from);
                }
                _ => {
                    if !model.is_empty() {
                        let i = rng.usize(0..model.len());
                        assert_eq!(l.get(i), Some(&model[i][..]));
                        let j = rng.usize(i..model.len());
                        assert!(l.range(i..=j).eq(model.range(i..=j).map(|e| &e[..])));
                    }
                    assert_eq!(l.get(model.len()), None);
                }
            }
            assert_eq!(l.len(), model.len());
            assert_eq!(
                l.element_bytes(),
                model.iter().map(Bytes::len).sum::<usize>()
            );
            if step % 97 == 0 {
                assert!(l.iter().eq(model.iter().map(|e| &e[..])));
                assert!(l.iter().rev().eq(model.iter().rev().map(|e| &e[..])));
                assert!(l.nodes.iter().all(|n| n.count > 0));
                assert_eq!(l.nodes.iter().map(|n| n.count).sum::<usize>(), l.len());
            }
        }
    }
}
