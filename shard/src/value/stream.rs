//! Streams: the value, its consumer groups, its accounting, OBJECT ENCODING (`stream`) and the
//! codec payload.
//!
//! Entries live in nodes as Redis keeps them in the listpacks of its radix tree: a node is
//! keyed by the ID of the first entry appended to it, holds up to
//! [`NODE_MAX_ENTRIES`] entries (live and deleted) or about [`NODE_MAX_BYTES`] bytes, and
//! packs its entries' fields and values into one buffer. A deleted entry leaves its bytes in
//! the buffer (a tombstone, as in Redis) until its whole node goes. Keeping Redis's node
//! boundaries is what makes approximate trimming (`MAXLEN ~`, `MINID ~`, which only drops
//! whole nodes) remove exactly the entries Redis removes. Finding an ID is a B-tree descent to
//! its node then a binary search inside it (O(log n)); appending is O(1) at the last node.
//!
//! Consumer groups keep Redis's structures: a group's pending entries list (PEL) by ID, each
//! pending entry naming its consumer, and per consumer the IDs it owns.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

/// Redis's `stream-node-max-entries` and `stream-node-max-bytes` defaults.
pub const NODE_MAX_ENTRIES: usize = 100;
pub const NODE_MAX_BYTES: usize = 4096;

/// Accounted bytes of a stream beyond its nodes (the value's allocation).
const STREAM_OVERHEAD: usize = 96;
/// Per node: its B-tree slot, its two vectors' headers and allocations' rounding.
const NODE_OVERHEAD: usize = 96;
/// Per live entry beyond its packed bytes: its ID and offset in the node.
const ITEM_BYTES: usize = std::mem::size_of::<Item>();
/// Per group, per pending entry and per consumer (B-tree slots and allocations).
const GROUP_OVERHEAD: usize = 128;
const NACK_OVERHEAD: usize = 64;
const CONSUMER_OVERHEAD: usize = 96;
const CONSUMER_PEL_OVERHEAD: usize = 24;

/// A stream entry ID, `ms-seq`; ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (`streamIncrID`); `None` past the last possible one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (`streamDecrID`); `None` before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// `ms-seq`, as replies write it.
    pub fn to_bytes(self) -> Bytes {
        let mut a = itoa::Buffer::new();
        let mut b = itoa::Buffer::new();
        let (ms, seq) = (a.format(self.ms), b.format(self.seq));
        let mut out = Vec::with_capacity(ms.len() + 1 + seq.len());
        out.extend_from_slice(ms.as_bytes());
        out.push(b'-');
        out.extend_from_slice(seq.as_bytes());
        Bytes::from(out)
    }

    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ms.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
    }

    fn take(b: &mut &[u8]) -> Option<StreamId> {
        let ms = take_u64(b)?;
        let seq = take_u64(b)?;
        Some(StreamId::new(ms, seq))
    }
}

/// A live entry of a node: its ID and where its fields start in the node's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Item {
    id: StreamId,
    off: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    /// Live entries, in ID order.
    items: Vec<Item>,
    /// Every entry ever appended here, packed: a varint pair count, then per field and value
    /// a varint length and the bytes.
    data: Vec<u8>,
    /// Entries deleted from this node (tombstones).
    deleted: u32,
    /// The last ID appended (possibly deleted since).
    last: StreamId,
}

impl Node {
    fn find(&self, id: StreamId) -> Result<usize, usize> {
        self.items.binary_search_by(|i| i.id.cmp(&id))
    }

    fn fields(&self, off: u32) -> Fields<'_> {
        Fields::new(self.data.get(off as usize..).unwrap_or_default())
    }

    /// Roughly what Redis's listpack of this node weighs (the header, per entry its flags, ID
    /// deltas and lengths): compared with `stream-node-max-bytes` to open a new node.
    fn lp_bytes(&self) -> usize {
        16 + self.data.len() + 5 * (self.items.len() + self.deleted as usize)
    }
}

/// An entry's field/value pairs, read from its packed bytes.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Fields<'a> {
    fn new(mut b: &'a [u8]) -> Fields<'a> {
        let n = take_varint(&mut b).unwrap_or(0) as usize;
        Fields {
            rest: b,
            left: n.saturating_mul(2),
        }
    }

    /// Fields and values counted one each.
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let len = take_varint(&mut self.rest)? as usize;
        let (v, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(v)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn take_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn take_u64(b: &mut &[u8]) -> Option<u64> {
    let (v, rest) = b.split_first_chunk::<8>()?;
    *b = rest;
    Some(u64::from_be_bytes(*v))
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    let (v, rest) = b.split_first_chunk::<4>()?;
    *b = rest;
    Some(u32::from_be_bytes(*v))
}

fn take_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_u32(b)? as usize;
    let (v, rest) = b.split_at_checked(len)?;
    *b = rest;
    Some(v)
}

fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

/// A pending entry of a group: who has it, when it was last delivered, how many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    pub consumer: Bytes,
    pub delivery_time: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consumer {
    pub seen_time: u64,
    pub pel: BTreeSet<StreamId>,
}

/// `entries_read` when unknown (Redis's `SCG_INVALID_ENTRIES_READ`).
pub const INVALID_ENTRIES_READ: i64 = -1;

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer named `name`, created (at `now`) if absent; `true` when created. Its seen
    /// time becomes `now` either way (`streamLookupConsumer` without `SLC_NO_REFRESH`).
    pub fn consumer(&mut self, name: &[u8], now: u64) -> bool {
        match self.consumers.get_mut(name) {
            Some(c) => {
                c.seen_time = now;
                false
            }
            None => {
                self.consumers.insert(
                    Bytes::copy_from_slice(name),
                    Consumer {
                        seen_time: now,
                        pel: BTreeSet::new(),
                    },
                );
                true
            }
        }
    }

    /// The shared handle of a consumer's name (the pending entries name it with it).
    pub fn consumer_name(&self, name: &[u8]) -> Bytes {
        self.consumers
            .get_key_value(name)
            .map_or_else(|| Bytes::copy_from_slice(name), |(k, _)| k.clone())
    }

    /// Removes a pending entry from the group and its consumer.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Gives pending entry `id` to `consumer` (which exists): moves it between consumers'
    /// lists when the owner changes.
    pub fn reassign(&mut self, id: StreamId, consumer: &[u8]) {
        let name = self.consumer_name(consumer);
        let Some(n) = self.pel.get_mut(&id) else {
            return;
        };
        if n.consumer != name {
            if let Some(old) = self.consumers.get_mut(&n.consumer) {
                old.pel.remove(&id);
            }
            n.consumer = name.clone();
        }
        if let Some(c) = self.consumers.get_mut(&name) {
            c.pel.insert(id);
        }
    }

    fn bytes(&self, name: &[u8]) -> usize {
        GROUP_OVERHEAD
            + name.len()
            + self.pel.len() * NACK_OVERHEAD
            + self
                .consumers
                .iter()
                .map(|(n, c)| CONSUMER_OVERHEAD + n.len() + c.pel.len() * CONSUMER_PEL_OVERHEAD)
                .sum::<usize>()
    }
}

/// How XADD and XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamValue {
    /// Nodes by the ID of their first appended entry.
    nodes: BTreeMap<StreamId, Node>,
    len: u64,
    pub last_id: StreamId,
    /// The first live entry's ID (0-0 when empty), as Redis records it.
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Bytes, Group>,
    /// Packed bytes of every node plus their live items.
    entry_bytes: usize,
}

impl StreamValue {
    pub fn new() -> StreamValue {
        StreamValue::default()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Radix-tree keys in Redis's terms: the number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The ID `*` gives at `now_ms` (`streamNextID`); `None` when the last possible ID is taken.
    pub fn next_id(&self, now_ms: u64) -> Option<StreamId> {
        if now_ms > self.last_id.ms {
            Some(StreamId::new(now_ms, 0))
        } else {
            self.last_id.incr()
        }
    }

    /// Appends an entry with an ID greater than the last one (checked by the caller).
    /// `pairs` alternate field and value.
    pub fn append<T: AsRef<[u8]>>(&mut self, id: StreamId, pairs: &[T]) {
        let total: usize = pairs.iter().map(|p| p.as_ref().len()).sum();
        let open = match self.nodes.last_key_value() {
            Some((_, node)) => {
                node.lp_bytes() + total < NODE_MAX_BYTES
                    && node.items.len() + (node.deleted as usize) < NODE_MAX_ENTRIES
            }
            None => false,
        };
        if !open {
            self.entry_bytes += NODE_OVERHEAD;
            self.nodes.insert(id, Node::default());
        }
        let mut packed = 0;
        if let Some(mut last) = self.nodes.last_entry() {
            let node = last.get_mut();
            let off = node.data.len();
            put_varint(&mut node.data, (pairs.len() / 2) as u64);
            for p in pairs {
                let p = p.as_ref();
                put_varint(&mut node.data, p.len() as u64);
                node.data.extend_from_slice(p);
            }
            packed = node.data.len() - off;
            node.items.push(Item {
                id,
                off: off as u32,
            });
            node.last = id;
        }
        self.entry_bytes += packed + ITEM_BYTES;
        if self.len == 0 {
            self.first_id = id;
        }
        self.len += 1;
        self.last_id = id;
        self.entries_added += 1;
    }

    /// The node holding `id`, if any could.
    fn node_of(&self, id: StreamId) -> Option<(&StreamId, &Node)> {
        self.nodes.range(..=id).next_back()
    }

    /// The fields of the live entry `id`.
    pub fn get(&self, id: StreamId) -> Option<Fields<'_>> {
        let (_, node) = self.node_of(id)?;
        let i = node.find(id).ok()?;
        node.items.get(i).map(|it| node.fields(it.off))
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.node_of(id)
            .is_some_and(|(_, node)| node.find(id).is_ok())
    }

    /// Calls `f` on the live entries from `start` to `end` inclusive, ascending (or
    /// descending with `rev`), while it returns `true`.
    pub fn walk<'s>(
        &'s self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(StreamId, Fields<'s>) -> bool,
    ) {
        if start > end {
            return;
        }
        if !rev {
            let from = self.node_of(start).map_or(start, |(k, _)| *k);
            for (_, node) in self.nodes.range(from..) {
                let at = match node.find(start) {
                    Ok(i) | Err(i) => i,
                };
                for it in node.items.get(at..).unwrap_or_default() {
                    if it.id > end || !f(it.id, node.fields(it.off)) {
                        return;
                    }
                }
            }
        } else {
            for (_, node) in self.nodes.range(..=end).rev() {
                let upto = match node.find(end) {
                    Ok(i) => i + 1,
                    Err(i) => i,
                };
                for it in node.items.get(..upto).unwrap_or_default().iter().rev() {
                    if it.id < start || !f(it.id, node.fields(it.off)) {
                        return;
                    }
                }
            }
        }
    }

    /// The first (or last) live entry.
    pub fn edge(&self, last: bool) -> Option<(StreamId, Fields<'_>)> {
        let mut out = None;
        self.walk(StreamId::MIN, StreamId::MAX, last, |id, f| {
            out = Some((id, f));
            false
        });
        out
    }

    /// The last live entry's ID (`streamLastValidID`).
    pub fn last_valid_id(&self) -> Option<StreamId> {
        self.edge(true).map(|(id, _)| id)
    }

    fn refresh_first_id(&mut self) {
        self.first_id = self.edge(false).map_or(StreamId::MIN, |(id, _)| id);
    }

    /// Deletes entry `id` (`streamDeleteItem`): its node goes when it was the node's last live
    /// entry, otherwise it leaves a tombstone. Keeps `first_id` and `max_deleted` as XDEL does.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(key) = self.node_of(id).map(|(k, _)| *k) else {
            return false;
        };
        let Some(node) = self.nodes.get_mut(&key) else {
            return false;
        };
        let Ok(i) = node.find(id) else {
            return false;
        };
        if node.items.len() == 1 {
            let data = node.data.len();
            self.nodes.remove(&key);
            self.entry_bytes = self
                .entry_bytes
                .saturating_sub(data + ITEM_BYTES + NODE_OVERHEAD);
        } else {
            node.items.remove(i);
            node.deleted += 1;
            self.entry_bytes = self.entry_bytes.saturating_sub(ITEM_BYTES);
        }
        self.len -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.refresh_first_id();
        }
        true
    }

    /// `streamTrim`: removes entries from the head by length or minimum ID; `approx` removes
    /// whole nodes only; `limit` (0: none) caps the entries removed. Returns how many went.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted: u64 = 0;
        loop {
            if let Trim::MaxLen(max) = how
                && self.len <= max
            {
                break;
            }
            let Some(mut first) = self.nodes.first_entry() else {
                break;
            };
            let node = first.get_mut();
            let entries = node.items.len() as u64;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => self.len - entries >= max,
                Trim::MinId(min) => node.last < min,
            };
            if remove_node {
                let data = node.data.len();
                first.remove();
                self.entry_bytes = self
                    .entry_bytes
                    .saturating_sub(data + NODE_OVERHEAD + entries as usize * ITEM_BYTES);
                self.len -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let cut = match how {
                Trim::MaxLen(max) => (self.len - max).min(entries) as usize,
                Trim::MinId(min) => node.items.partition_point(|it| it.id < min),
            };
            node.items.drain(..cut);
            node.deleted += cut as u32;
            self.entry_bytes = self.entry_bytes.saturating_sub(cut * ITEM_BYTES);
            self.len -= cut as u64;
            deleted += cut as u64;
            break;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.refresh_first_id();
        }
        deleted
    }

    /// The first ID Redis reports after an approximate trim (`streamGetEdgeID` with
    /// tombstones): the first node's first appended ID.
    pub fn first_node_id(&self) -> Option<StreamId> {
        self.nodes.keys().next().copied()
    }

    /// Whether a tombstone lies in `start..=end` (`streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() || self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted && self.max_deleted <= end
    }

    /// `streamEstimateDistanceFromFirstEverEntry`: the read counter of `id`, if it can be
    /// known.
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.len == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.len),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.len + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// A group's lag (`streamReplyWithCGLag`); `None` when it cannot be known.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ
            && !self.range_has_tombstones(g.last_id, StreamId::MAX)
        {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        self.estimate_distance(g.last_id)
            .map(|read| self.entries_added as i64 - read as i64)
    }

    /// Moves a group's last delivered ID forward to `id` while it reads, keeping its read
    /// counter as `streamReplyWithRange` does.
    pub fn advance_group(&self, g: &mut Group, id: StreamId) {
        if id <= g.last_id {
            return;
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(id, StreamId::MAX) {
            g.entries_read += 1;
        } else if self.entries_added != 0 {
            g.entries_read = self
                .estimate_distance(id)
                .map_or(INVALID_ENTRIES_READ, |d| d as i64);
        }
        g.last_id = id;
    }

    fn group_bytes(&self) -> usize {
        self.groups.iter().map(|(n, g)| g.bytes(n)).sum()
    }
}

pub fn payload_bytes(s: &StreamValue) -> usize {
    STREAM_OVERHEAD + s.entry_bytes + s.group_bytes()
}

pub fn encoding(_: &StreamValue) -> &'static str {
    "stream"
}

// Codec payload (every integer big-endian):
//   last id, first id, max deleted id (16 bytes each: ms, seq), u64 entries added,
//   u32 node count, per node: its key (first appended id), u32 tombstones, last id, u32 live entries, per entry:
//     id, u32 length, packed fields (the node's own format: varint count, varint lengths);
//   u32 group count, per group: u32 length, name, last id, i64 entries read,
//     u32 consumers, per consumer: u32 length, name, u64 seen time;
//     u32 pending entries, per entry: id, u32 length, consumer name, u64 delivery time,
//     u64 delivery count.
// Node boundaries survive the warm tier and migration (approximate trims stay Redis's); a
// node's tombstones' bytes do not.

fn packed_len(node: &Node, off: u32) -> usize {
    let start = off as usize;
    let mut b = node.data.get(start..).unwrap_or_default();
    let before = b.len();
    let n = take_varint(&mut b).unwrap_or(0);
    for _ in 0..n.saturating_mul(2) {
        let Some(len) = take_varint(&mut b) else {
            break;
        };
        b = b.get(len as usize..).unwrap_or_default();
    }
    before - b.len()
}

pub fn encoded_len(s: &StreamValue) -> usize {
    let mut v = Vec::new();
    encode(s, &mut v);
    v.len()
}

pub fn encode(s: &StreamValue, out: &mut Vec<u8>) {
    s.last_id.put(out);
    s.first_id.put(out);
    s.max_deleted.put(out);
    out.extend_from_slice(&s.entries_added.to_be_bytes());
    out.extend_from_slice(&(s.nodes.len() as u32).to_be_bytes());
    for (key, node) in &s.nodes {
        key.put(out);
        out.extend_from_slice(&node.deleted.to_be_bytes());
        node.last.put(out);
        out.extend_from_slice(&(node.items.len() as u32).to_be_bytes());
        for it in &node.items {
            it.id.put(out);
            let len = packed_len(node, it.off);
            let start = it.off as usize;
            put_bytes(out, node.data.get(start..start + len).unwrap_or_default());
        }
    }
    out.extend_from_slice(&(s.groups.len() as u32).to_be_bytes());
    for (name, g) in &s.groups {
        put_bytes(out, name);
        g.last_id.put(out);
        out.extend_from_slice(&g.entries_read.to_be_bytes());
        out.extend_from_slice(&(g.consumers.len() as u32).to_be_bytes());
        for (cname, c) in &g.consumers {
            put_bytes(out, cname);
            out.extend_from_slice(&c.seen_time.to_be_bytes());
        }
        out.extend_from_slice(&(g.pel.len() as u32).to_be_bytes());
        for (id, n) in &g.pel {
            id.put(out);
            put_bytes(out, &n.consumer);
            out.extend_from_slice(&n.delivery_time.to_be_bytes());
            out.extend_from_slice(&n.delivery_count.to_be_bytes());
        }
    }
}

/// `None` when the payload is truncated or corrupt.
pub fn decode(mut b: &[u8]) -> Option<StreamValue> {
    let b = &mut b;
    let mut s = StreamValue {
        last_id: StreamId::take(b)?,
        first_id: StreamId::take(b)?,
        max_deleted: StreamId::take(b)?,
        entries_added: take_u64(b)?,
        ..StreamValue::default()
    };
    let nodes = take_u32(b)?;
    for _ in 0..nodes {
        let key = StreamId::take(b)?;
        let deleted = take_u32(b)?;
        let last = StreamId::take(b)?;
        let count = take_u32(b)?;
        let mut node = Node {
            deleted,
            last,
            ..Node::default()
        };
        for _ in 0..count {
            let id = StreamId::take(b)?;
            let packed = take_bytes(b)?;
            if node.items.last().is_some_and(|l| l.id >= id) {
                return None;
            }
            node.items.push(Item {
                id,
                off: node.data.len() as u32,
            });
            node.data.extend_from_slice(packed);
        }
        if node.items.first().is_some_and(|f| f.id < key) {
            return None;
        }
        s.len += u64::from(count);
        s.entry_bytes += NODE_OVERHEAD + node.data.len() + node.items.len() * ITEM_BYTES;
        s.nodes.insert(key, node);
    }
    let groups = take_u32(b)?;
    for _ in 0..groups {
        let name = Bytes::copy_from_slice(take_bytes(b)?);
        let mut g = Group::new(StreamId::take(b)?, take_u64(b)? as i64);
        let consumers = take_u32(b)?;
        for _ in 0..consumers {
            let cname = Bytes::copy_from_slice(take_bytes(b)?);
            let seen_time = take_u64(b)?;
            g.consumers.insert(
                cname,
                Consumer {
                    seen_time,
                    pel: BTreeSet::new(),
                },
            );
        }
        let pending = take_u32(b)?;
        for _ in 0..pending {
            let id = StreamId::take(b)?;
            let cname = take_bytes(b)?;
            let delivery_time = take_u64(b)?;
            let delivery_count = take_u64(b)?;
            let consumer = g.consumers.get_key_value(cname)?.0.clone();
            if let Some(c) = g.consumers.get_mut(cname) {
                c.pel.insert(id);
            }
            g.pel.insert(
                id,
                Nack {
                    consumer,
                    delivery_time,
                    delivery_count,
                },
            );
        }
        s.groups.insert(name, g);
    }
    b.is_empty().then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut StreamValue, ms: u64, v: &str) {
        let id = StreamId::new(ms, 0);
        s.append(id, &[&b"f"[..], v.as_bytes()]);
    }

    fn ids(s: &StreamValue, rev: bool) -> Vec<u64> {
        let mut out = Vec::new();
        s.walk(StreamId::MIN, StreamId::MAX, rev, |id, _| {
            out.push(id.ms);
            true
        });
        out
    }

    #[test]
    fn ids_order_and_step() {
        assert!(StreamId::new(1, 5) < StreamId::new(2, 0));
        assert_eq!(StreamId::new(1, u64::MAX).incr(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(StreamId::new(2, 0).decr(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.decr(), None);
        assert_eq!(&StreamId::new(12, 3).to_bytes()[..], b"12-3");
    }

    #[test]
    fn append_walk_delete_across_nodes() {
        let mut s = StreamValue::new();
        for ms in 1..=250 {
            add(&mut s, ms, &format!("v{ms}"));
        }
        assert_eq!(s.len(), 250);
        assert_eq!(s.node_count(), 3);
        assert_eq!(ids(&s, false), (1..=250).collect::<Vec<_>>());
        assert_eq!(ids(&s, true), (1..=250).rev().collect::<Vec<_>>());
        let f: Vec<&[u8]> = s.get(StreamId::new(150, 0)).expect("entry").collect();
        assert_eq!(f, vec![&b"f"[..], b"v150"]);
        assert!(s.delete(StreamId::new(1, 0)));
        assert!(!s.delete(StreamId::new(1, 0)));
        assert_eq!(s.first_id, StreamId::new(2, 0));
        assert_eq!(s.max_deleted, StreamId::new(1, 0));
        let mut part = Vec::new();
        s.walk(
            StreamId::new(99, 0),
            StreamId::new(102, 0),
            false,
            |id, _| {
                part.push(id.ms);
                true
            },
        );
        assert_eq!(part, vec![99, 100, 101, 102]);
        // Approximate trimming drops whole nodes only.
        assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 99);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.first_id, StreamId::new(131, 0));
        assert_eq!(s.trim(Trim::MinId(StreamId::new(200, 0)), false, 0), 69);
        assert_eq!(s.first_id, StreamId::new(200, 0));
    }

    #[test]
    fn codec_round_trips() {
        let mut s = StreamValue::new();
        for ms in 1..=150 {
            add(&mut s, ms, "x");
        }
        s.delete(StreamId::new(5, 0));
        let mut g = Group::new(StreamId::new(3, 0), 3);
        g.consumer(b"alice", 7);
        g.consumer(b"bob", 8);
        g.pel.insert(
            StreamId::new(2, 0),
            Nack {
                consumer: g.consumer_name(b"alice"),
                delivery_time: 9,
                delivery_count: 2,
            },
        );
        g.reassign(StreamId::new(2, 0), b"alice");
        s.groups.insert(Bytes::from_static(b"g"), g);
        let mut out = Vec::new();
        encode(&s, &mut out);
        assert_eq!(out.len(), encoded_len(&s));
        let d = decode(&out).expect("decodes");
        assert_eq!(ids(&d, false), ids(&s, false));
        assert_eq!(d.groups, s.groups);
        assert_eq!(d.node_count(), s.node_count());
        assert_eq!(
            payload_bytes(&d),
            payload_bytes(&s) - 5 /* the tombstone's bytes */
        );
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_none(), "cut {cut}");
        }
    }
}
