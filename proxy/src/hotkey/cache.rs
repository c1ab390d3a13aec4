//! The near cache: replies to reads of popular keys, with the fill tickets and write fences
//! that keep it coherent, bounded in bytes.
//!
//! Invariants (each enforced under the lock of the key's map shard):
//! - A value is inserted only by the fill whose ticket is still registered, in the epoch it was
//!   registered in. Every invalidation of the key (a shard's push, a write through this proxy,
//!   a flush, a link drop, a slot-map change) removes the key's tickets and values, so a reply
//!   read before a change can never be cached after the change's invalidation.
//! - No ticket is registered for a key while a write to it through this proxy is in flight (its
//!   fence is up from planning the write until its reply has been rendered). A read sent before
//!   such a write reaches the shard could otherwise be cached after the write's local
//!   invalidation and before the shard's push, and the writer's next read would see the old
//!   value (read-your-writes).
//! - While a write through this proxy is in flight, the key's cached value stays and is served
//!   to reads that are concurrent with the write (either value is right for them), but never to
//!   a session with a write of its own in flight (its pipelined read must see its write). The
//!   value is dropped when the fence is lowered, before the write's reply goes out: a read that
//!   starts after the write was acknowledged never sees the old value.
//! - A value is never served at or past the key's expiry. The fill reads the key's `PTTL`
//!   right after the value, in the same batch on the same connection, and the value's deadline
//!   is the ticket's time plus that TTL: the TTL was measured after the ticket was taken, so the
//!   deadline can only be early. Shards announce an expiry only when their sweep or a read finds
//!   the key (Redis and Valkey alike), so without the deadline a value would outlive its TTL by
//!   up to the sweep's period.
//! - `live` counts map entries; a writer that increments a fence and then sees `live == 0`
//!   knows no ticket can slip in unseen (the filler checks the fence after raising `live`; both
//!   sides use `SeqCst`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

const SHARDS: usize = 64;
const FENCES: usize = 4096;
/// Distinct HGET fields cached per key (bounds one key's entries).
const MAX_VARIANTS: usize = 16;
/// Per-entry bookkeeping charged against the byte budget besides key and value.
const ENTRY_OVERHEAD: usize = 64;

/// Which read of the key a cached reply answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Get,
    Hget(Bytes),
    Hgetall,
}

impl Variant {
    fn size(&self) -> usize {
        match self {
            Variant::Hget(f) => f.len(),
            _ => 0,
        }
    }
}

/// What a pending fill ends with, for coalesced readers.
#[derive(Clone, Debug)]
pub enum FillState {
    Pending,
    Done(Bytes),
    /// Invalidated (or failed): waiters read for themselves.
    Cancelled,
}

struct Entry {
    variant: Variant,
    value: Option<Bytes>,
    /// When the key expires on its shard (`None`: it has no TTL).
    expires: Option<Instant>,
    fill: Option<(u64, watch::Sender<FillState>)>,
}

impl Entry {
    /// The cached value, unless the key has expired by `now` (read lazily: only values with
    /// a deadline look at the clock).
    fn live_value(&self, now: &mut Option<Instant>) -> Option<&Bytes> {
        let v = self.value.as_ref()?;
        match self.expires {
            None => Some(v),
            Some(d) => (*now.get_or_insert_with(Instant::now) < d).then_some(v),
        }
    }

    fn expired(&self, now: &mut Option<Instant>) -> bool {
        self.value.is_some() && self.live_value(now).is_none()
    }
}

/// The key's time to live as the shard reported it right after the fill's read (its `PTTL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// `-1`: the key has no expiry.
    Persistent,
    /// `-2`: the key does not exist.
    Missing,
    /// Milliseconds left.
    Millis(u64),
    /// No usable answer (an error, a redirect, a lost connection): the value is not cached.
    Unknown,
}

impl Ttl {
    /// Parses a RESP integer reply to `PTTL`.
    pub fn parse(reply: Option<&[u8]>) -> Ttl {
        let n = reply
            .and_then(|r| r.strip_prefix(b":"))
            .and_then(|r| r.strip_suffix(b"\r\n"))
            .and_then(|r| std::str::from_utf8(r).ok())
            .and_then(|r| r.parse::<i64>().ok());
        match n {
            Some(-1) => Ttl::Persistent,
            Some(-2) => Ttl::Missing,
            Some(ms) if ms >= 0 => Ttl::Millis(ms as u64),
            _ => Ttl::Unknown,
        }
    }
}

/// A reply that says the key (or the field) is not there.
fn is_empty_reply(r: &[u8]) -> bool {
    matches!(r, b"$-1\r\n" | b"*-1\r\n" | b"*0\r\n" | b"_\r\n")
}

#[derive(Default)]
struct KeyEntries {
    entries: Vec<Entry>,
    bytes: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Bytes, KeyEntries, foldhash::fast::RandomState>,
}

/// Counters for INFO and metrics (`autocache_hotkey_cache_*`).
#[derive(Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Keys dropped because they changed (pushes, local writes, flushes).
    pub invalidations: AtomicU64,
    /// Whole-cache clears (link drops, resubscriptions, slot-map changes).
    pub clears: AtomicU64,
    pub fills: AtomicU64,
    /// Fills whose ticket was gone when the reply arrived (the race the tickets close).
    pub fills_discarded: AtomicU64,
    /// Misses that waited for another client's fill instead of reading.
    pub coalesced: AtomicU64,
    /// Fills refused because the byte budget was full.
    pub rejected: AtomicU64,
    /// Values dropped because their key's TTL ran out.
    pub expired: AtomicU64,
}

pub struct NearCache {
    shards: Box<[Mutex<Shard>]>,
    fences: Box<[AtomicU32]>,
    /// Raised while a FLUSHALL/FLUSHDB through this proxy is in flight.
    fence_all: AtomicU32,
    live: AtomicUsize,
    bytes: AtomicUsize,
    budget: usize,
    epoch: AtomicU64,
    next_ticket: AtomicU64,
    /// Keys in the order their values were cached (with stale names of keys since dropped),
    /// for [`NearCache::shrink`].
    order: Mutex<VecDeque<Bytes>>,
    pub stats: CacheStats,
}

/// Result of looking a hot key up.
pub enum Lookup {
    Hit(Bytes),
    /// Another fill is in flight: wait for it.
    Wait(watch::Receiver<FillState>),
    /// This request fills the cache.
    Fill(Fill),
    /// Not cacheable now (a write is in flight, or the key has too many variants): forward.
    Bypass,
}

/// A fill ticket: completing it caches the reply if nothing invalidated the key meanwhile.
/// Dropped without completing (client gone, error), it cancels itself.
pub struct Fill {
    cache: Arc<NearCache>,
    key: Bytes,
    variant: Variant,
    id: u64,
    epoch: u64,
    /// When the ticket was taken, before the read was sent: the origin of the value's deadline.
    at: Instant,
}

/// A write's fence: lowered when dropped (after the write's reply was rendered), which drops
/// the key's cached value first.
pub struct Fence {
    cache: Arc<NearCache>,
    /// The fence slot and the written key (`None` when nothing was cached at all: then nothing
    /// can be cached for the key while the fence is up either); `None`: the flush-all fence.
    slot: Option<(usize, Option<Bytes>)>,
}

impl Drop for Fence {
    fn drop(&mut self) {
        match &self.slot {
            Some((i, key)) => {
                // Dropped while still fenced: no fill can slip in between.
                if let Some(key) = key {
                    self.cache.invalidate(key);
                }
                if let Some(f) = self.cache.fences.get(*i) {
                    f.fetch_sub(1, SeqCst);
                }
            }
            None => {
                self.cache.fence_all.fetch_sub(1, SeqCst);
            }
        }
    }
}

fn hash(key: &[u8]) -> u64 {
    // FNV-1a: only spreads keys over shards and fences, needs no DoS resistance (the maps
    // inside use foldhash with a random seed).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl NearCache {
    pub fn new(budget: usize) -> NearCache {
        NearCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            fences: (0..FENCES).map(|_| AtomicU32::new(0)).collect(),
            fence_all: AtomicU32::new(0),
            live: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            budget,
            epoch: AtomicU64::new(0),
            next_ticket: AtomicU64::new(1),
            order: Mutex::new(VecDeque::new()),
            stats: CacheStats::default(),
        }
    }

    fn shard(&self, h: u64) -> &Mutex<Shard> {
        let i = (h as usize) % SHARDS;
        // `shards` has SHARDS entries; the modulo keeps `i` in range.
        &self.shards[i]
    }

    fn fence_slot(h: u64) -> usize {
        ((h >> 32) as usize) % FENCES
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    pub fn keys(&self) -> usize {
        self.live.load(Relaxed)
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Whether a write through this proxy to `key` (or to a key sharing its fence) is in flight.
    fn fenced(&self, h: u64) -> bool {
        self.fences
            .get(Self::fence_slot(h))
            .is_some_and(|f| f.load(SeqCst) > 0)
            || self.fence_all.load(SeqCst) > 0
    }

    /// Looks up a read of a hot key. `writing`: the reading session has a write in flight,
    /// so a value kept through a write's fence is not for it.
    pub fn lookup(self: &Arc<Self>, key: &[u8], variant: Variant, writing: bool) -> Lookup {
        let h = hash(key);
        let mut shard = self.shard(h).lock();
        let mut now = None;
        let mut expired = false;
        if let Some(ke) = shard.map.get(key)
            && let Some(e) = ke.entries.iter().find(|e| e.variant == variant)
        {
            if let Some(v) = e.live_value(&mut now) {
                if writing && self.fenced(h) {
                    return Lookup::Bypass;
                }
                self.stats.hits.fetch_add(1, Relaxed);
                return Lookup::Hit(v.clone());
            }
            if let Some((_, tx)) = &e.fill {
                self.stats.coalesced.fetch_add(1, Relaxed);
                return Lookup::Wait(tx.subscribe());
            }
            expired = e.expired(&mut now);
        }
        if expired {
            // The key's TTL ran out: every value of it is gone on the shard too.
            self.drop_key(&mut shard, key);
            self.stats.expired.fetch_add(1, Relaxed);
        }
        self.stats.misses.fetch_add(1, Relaxed);
        // Register first (raising `live`), then check the fences: see the module invariants.
        let created = !shard.map.contains_key(key);
        if created {
            self.live.fetch_add(1, SeqCst);
        }
        let fenced = self.fenced(h);
        let ke = shard.map.entry(Bytes::copy_from_slice(key)).or_default();
        if fenced || ke.entries.len() >= MAX_VARIANTS {
            if created {
                shard.map.remove(key);
                self.live.fetch_sub(1, SeqCst);
            }
            return Lookup::Bypass;
        }
        let id = self.next_ticket.fetch_add(1, Relaxed);
        let (tx, _) = watch::channel(FillState::Pending);
        ke.entries.push(Entry {
            variant: variant.clone(),
            value: None,
            expires: None,
            fill: Some((id, tx)),
        });
        Lookup::Fill(Fill {
            cache: self.clone(),
            key: Bytes::copy_from_slice(key),
            variant,
            id,
            epoch: self.epoch(),
            at: Instant::now(),
        })
    }

    /// The cached reply to a read, if there is one (a key that cooled down but was kept);
    /// never starts a fill and counts nothing: the caller counts the hit if it serves it.
    /// `writing` as for [`NearCache::lookup`].
    pub fn peek(&self, key: &[u8], variant: &Variant, writing: bool) -> Option<Bytes> {
        let h = hash(key);
        let mut shard = self.shard(h).lock();
        let e = shard
            .map
            .get(key)?
            .entries
            .iter()
            .find(|e| e.variant == *variant)?;
        let mut now = None;
        if e.expired(&mut now) {
            self.drop_key(&mut shard, key);
            self.stats.expired.fetch_add(1, Relaxed);
            return None;
        }
        let v = e.live_value(&mut now)?.clone();
        (!(writing && self.fenced(h))).then_some(v)
    }

    /// Removes a key's values and cancels its fills, under its shard's lock.
    fn drop_key(&self, shard: &mut Shard, key: &[u8]) {
        if let Some(ke) = shard.map.remove(key) {
            self.live.fetch_sub(1, SeqCst);
            self.bytes.fetch_sub(ke.bytes, Relaxed);
            for e in ke.entries {
                if let Some((_, tx)) = e.fill {
                    let _ = tx.send(FillState::Cancelled);
                }
            }
        }
    }

    /// Whether anything is cached (or being filled) for `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.shard(hash(key)).lock().map.contains_key(key)
    }

    /// A write through this proxy to `key`: fences it and cancels its fills in flight (their
    /// reads may reach the shard before or after the write). The cached value stays for
    /// concurrent readers until the fence is dropped.
    pub fn write(self: &Arc<Self>, key: &[u8]) -> Fence {
        let h = hash(key);
        let slot = Self::fence_slot(h);
        if let Some(f) = self.fences.get(slot) {
            f.fetch_add(1, SeqCst);
        }
        // With the fence up, `live == 0` means no value and no ticket for the key, now or
        // until the fence is dropped (see the module invariants).
        let cached = self.live.load(SeqCst) > 0;
        if cached {
            self.cancel_fills(key, h);
        }
        Fence {
            cache: self.clone(),
            slot: Some((slot, cached.then(|| Bytes::copy_from_slice(key)))),
        }
    }

    fn cancel_fills(&self, key: &[u8], h: u64) {
        let mut s = self.shard(h).lock();
        let Some(ke) = s.map.get_mut(key) else {
            return;
        };
        ke.entries.retain_mut(|e| match e.fill.take() {
            Some((_, tx)) => {
                let _ = tx.send(FillState::Cancelled);
                false
            }
            None => true,
        });
        if ke.entries.is_empty() {
            s.map.remove(key);
            self.live.fetch_sub(1, SeqCst);
        }
    }

    /// FLUSHALL/FLUSHDB through this proxy.
    pub fn write_all(self: &Arc<Self>) -> Fence {
        self.fence_all.fetch_add(1, SeqCst);
        self.clear();
        Fence {
            cache: self.clone(),
            slot: None,
        }
    }

    /// The key changed: drops its values and cancels its fills.
    pub fn invalidate(&self, key: &[u8]) {
        self.invalidate_hashed(key, hash(key));
    }

    fn invalidate_hashed(&self, key: &[u8], h: u64) {
        if self.live.load(SeqCst) == 0 {
            return;
        }
        let mut s = self.shard(h).lock();
        if s.map.contains_key(key) {
            self.drop_key(&mut s, key);
            self.stats.invalidations.fetch_add(1, Relaxed);
        }
    }

    /// Drops everything and starts a new epoch: fills registered before cannot insert.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.stats.clears.fetch_add(1, Relaxed);
        for s in self.shards.iter() {
            let drained: Vec<KeyEntries> = {
                let mut s = s.lock();
                let n = s.map.len();
                if n == 0 {
                    continue;
                }
                self.live.fetch_sub(n, SeqCst);
                s.map.drain().map(|(_, v)| v).collect()
            };
            for ke in drained {
                self.bytes.fetch_sub(ke.bytes, Relaxed);
                for e in ke.entries {
                    if let Some((_, tx)) = e.fill {
                        let _ = tx.send(FillState::Cancelled);
                    }
                }
            }
        }
    }

    /// Drops cached keys, oldest first, until the cache holds at most `limit` bytes; keys
    /// `keep` says to keep (the hot ones) go to the back instead.
    pub fn shrink(&self, limit: usize, keep: impl Fn(&[u8]) -> bool) {
        // `order` is never held while a shard's lock is taken (fills push under no shard lock
        // either): keys are taken out a batch at a time.
        let mut left = self.order.lock().len();
        while self.bytes() > limit && left > 0 {
            let batch: Vec<Bytes> = {
                let mut order = self.order.lock();
                let n = left.min(256).min(order.len());
                order.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            left -= batch.len();
            let mut kept = Vec::new();
            let mut rest = batch.into_iter();
            for k in rest.by_ref() {
                if keep(&k) {
                    kept.push(k);
                } else {
                    self.evict(&k);
                    if self.bytes() <= limit {
                        break;
                    }
                }
            }
            let mut order = self.order.lock();
            // Not looked at: still the oldest.
            for k in rest.rev() {
                order.push_front(k);
            }
            order.extend(kept);
        }
        // Names of keys dropped since (invalidated, cleared) pile up: keep the list at most
        // about twice the number of cached keys.
        let names = self.order.lock().len();
        if names > 2 * self.keys() + 1024 {
            let all: VecDeque<Bytes> = std::mem::take(&mut *self.order.lock());
            let live: Vec<Bytes> = all.into_iter().filter(|k| self.contains(k)).collect();
            let mut order = self.order.lock();
            // Fills made meanwhile went to the (emptied) list: they stay the newest.
            let newer = std::mem::take(&mut *order);
            order.extend(live);
            order.extend(newer);
        }
    }

    /// Drops a key (to make room), unless a fill for it is in flight.
    pub fn evict(&self, key: &[u8]) {
        let h = hash(key);
        let mut s = self.shard(h).lock();
        let idle = s
            .map
            .get(key)
            .is_some_and(|ke| ke.entries.iter().all(|e| e.fill.is_none()));
        if idle && let Some(ke) = s.map.remove(key) {
            self.live.fetch_sub(1, SeqCst);
            self.bytes.fetch_sub(ke.bytes, Relaxed);
        }
    }

    fn finish(&self, f: &Fill, reply: Option<&Bytes>, expires: Option<Instant>) {
        let h = hash(&f.key);
        let mut s = self.shard(h).lock();
        let Some(ke) = s.map.get_mut(&f.key) else {
            if reply.is_some() {
                self.stats.fills_discarded.fetch_add(1, Relaxed);
            }
            return;
        };
        let Some(pos) = ke
            .entries
            .iter()
            .position(|e| e.variant == f.variant && e.fill.as_ref().is_some_and(|t| t.0 == f.id))
        else {
            if reply.is_some() {
                self.stats.fills_discarded.fetch_add(1, Relaxed);
            }
            return;
        };
        let current = self.epoch.load(SeqCst) == f.epoch;
        let size = reply.map_or(0, |r| {
            r.len() + f.key.len() + f.variant.size() + ENTRY_OVERHEAD
        });
        let fits = self.bytes.load(Relaxed) + size <= self.budget;
        let value = match reply {
            Some(r) if current && fits => Some(r.clone()),
            Some(_) if !current => {
                self.stats.fills_discarded.fetch_add(1, Relaxed);
                None
            }
            Some(_) => {
                self.stats.rejected.fetch_add(1, Relaxed);
                None
            }
            None => None,
        };
        let Some(entry) = ke.entries.get_mut(pos) else {
            return;
        };
        let tx = entry.fill.take().map(|t| t.1);
        match value {
            Some(v) => {
                self.stats.fills.fetch_add(1, Relaxed);
                entry.value = Some(v.clone());
                entry.expires = expires;
                ke.bytes += size;
                self.bytes.fetch_add(size, Relaxed);
                // Never under a shard's lock: `shrink` takes the shard locks after `order`.
                drop(s);
                self.order.lock().push_back(f.key.clone());
                if let Some(tx) = tx {
                    let _ = tx.send(FillState::Done(v));
                }
            }
            None => {
                ke.entries.remove(pos);
                if ke.entries.is_empty() {
                    s.map.remove(&f.key);
                    self.live.fetch_sub(1, SeqCst);
                }
                if let Some(tx) = tx {
                    let _ = tx.send(FillState::Cancelled);
                }
            }
        }
    }
}

impl Fill {
    /// The backend's reply to the fill's read and the key's `PTTL` read right after it:
    /// cached if still valid and cacheable, until the key's deadline.
    pub fn complete(self, reply: &Bytes, ttl: Ttl) {
        let cacheable = matches!(reply.first(), Some(b'$' | b'*' | b'_'));
        let expires = match ttl {
            Ttl::Persistent => Some(None),
            // Gone by the time PTTL ran: only an answer that it is not there is still right
            // (a value that expired between the two reads is not announced by every shard).
            Ttl::Missing => is_empty_reply(reply).then_some(None),
            // PTTL's milliseconds are whole: one more is taken off so the deadline cannot be
            // late by the shard's rounding.
            Ttl::Millis(ms) => (ms > 1).then(|| Some(self.at + Duration::from_millis(ms - 1))),
            Ttl::Unknown => None,
        };
        match expires {
            Some(expires) if cacheable => self.cache.finish(&self, Some(reply), expires),
            _ => self.cache.finish(&self, None, None),
        }
        // `self` is dropped here; its ticket is gone, so the drop cancels nothing.
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        self.cache.finish(self, None, None);
    }
}

/// Waits (at most `limit`) for another client's fill; `None` when it was cancelled, failed, or
/// took too long: the caller reads for itself.
pub async fn wait_fill(mut rx: watch::Receiver<FillState>, limit: Duration) -> Option<Bytes> {
    let r = tokio::time::timeout(limit, rx.wait_for(|s| !matches!(s, FillState::Pending))).await;
    match r {
        Ok(Ok(s)) => match &*s {
            FillState::Done(v) => Some(v.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(c: &Arc<NearCache>, key: &[u8]) -> Fill {
        match c.lookup(key, Variant::Get, false) {
            Lookup::Fill(f) => f,
            _ => panic!("expected a fill ticket"),
        }
    }

    fn hit(c: &Arc<NearCache>, key: &[u8]) -> Option<Bytes> {
        match c.lookup(key, Variant::Get, false) {
            Lookup::Hit(v) => Some(v),
            Lookup::Fill(_) | Lookup::Bypass | Lookup::Wait(_) => None,
        }
    }

    #[test]
    fn shrink_drops_the_oldest_keys_it_need_not_keep() {
        let c = Arc::new(NearCache::new(1 << 20));
        for i in 0..100 {
            fill(&c, format!("k{i:02}").as_bytes())
                .complete(&Bytes::from_static(b"$1\r\nv\r\n"), Ttl::Persistent);
        }
        let per_key = c.bytes() / 100;
        // Keep k00..k09 whatever their age; drop the oldest others down to 50 keys.
        c.shrink(50 * per_key, |k| k.starts_with(b"k0"));
        assert_eq!(c.keys(), 50);
        assert!((0..10).all(|i| hit(&c, format!("k{i:02}").as_bytes()).is_some()));
        assert!(hit(&c, b"k10").is_none());
        assert!((60..100).all(|i| hit(&c, format!("k{i:02}").as_bytes()).is_some()));
        // Names of keys invalidated since do not pile up.
        for i in 60..100 {
            c.invalidate(format!("k{i:02}").as_bytes());
        }
        for i in 0..2000 {
            let k = format!("n{i}");
            fill(&c, k.as_bytes()).complete(&Bytes::from_static(b"$1\r\nv\r\n"), Ttl::Persistent);
            c.invalidate(k.as_bytes());
        }
        c.shrink(usize::MAX, |_| false);
        assert!(c.order.lock().len() <= 2 * c.keys() + 1024);
    }

    #[test]
    fn fills_and_shrinks_on_two_threads_do_not_deadlock() {
        let c = Arc::new(NearCache::new(64 * 1024));
        let filler = {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let k = format!("k{}", i % 3000);
                    if let Lookup::Fill(f) = c.lookup(k.as_bytes(), Variant::Get, false) {
                        f.complete(&Bytes::from_static(b"$3\r\nval\r\n"), Ttl::Persistent);
                    }
                }
            })
        };
        for _ in 0..2_000 {
            c.shrink(16 * 1024, |k| k.ends_with(b"7"));
        }
        assert!(filler.join().is_ok());
        c.shrink(16 * 1024, |_| false);
        assert!(c.bytes() <= 16 * 1024);
    }

    #[test]
    fn fill_then_hit_then_invalidate() {
        let c = Arc::new(NearCache::new(1 << 20));
        fill(&c, b"k").complete(&Bytes::from_static(b"$1\r\nv\r\n"), Ttl::Persistent);
        assert_eq!(hit(&c, b"k").as_deref(), Some(&b"$1\r\nv\r\n"[..]));
        c.invalidate(b"k");
        assert_eq!(c.keys(), 0);
        assert_eq!(c.bytes(), 0);
        assert!(hit(&c, b"k").is_none());
    }

    #[test]
    fn a_read_before_an_invalidation_is_not_cached_after_it() {
        let c = Arc::new(NearCache::new(1 << 20));
        let f = fill(&c, b"k");
        c.invalidate(b"k");
        f.complete(&Bytes::from_static(b"$3\r\nold\r\n"), Ttl::Persistent);
        assert_eq!(c.stats.fills_discarded.load(Relaxed), 1);
        assert!(hit(&c, b"k").is_none(), "the stale reply was not cached");
        // A clear (link drop) does the same through the epoch.
        let f = fill(&c, b"j");
        c.clear();
        f.complete(&Bytes::from_static(b"$3\r\nold\r\n"), Ttl::Persistent);
        assert!(hit(&c, b"j").is_none());
    }

    #[test]
    fn a_write_in_flight_fences_its_key() {
        let c = Arc::new(NearCache::new(1 << 20));
        let fence = c.write(b"k");
        assert!(matches!(
            c.lookup(b"k", Variant::Get, false),
            Lookup::Bypass
        ));
        drop(fence);
        assert!(matches!(
            c.lookup(b"k", Variant::Get, false),
            Lookup::Fill(_)
        ));
        let all = c.write_all();
        assert!(matches!(
            c.lookup(b"x", Variant::Get, false),
            Lookup::Bypass
        ));
        drop(all);
        assert_eq!(
            c.keys(),
            0,
            "bypassed and dropped fills leave nothing behind"
        );
    }

    #[test]
    fn a_value_stays_for_concurrent_readers_until_the_write_is_answered() {
        let c = Arc::new(NearCache::new(1 << 20));
        fill(&c, b"k").complete(&Bytes::from_static(b"$3\r\nold\r\n"), Ttl::Persistent);
        let pending = fill(&c, b"other");
        let fence = c.write(b"k");
        // Another session's read, concurrent with the write, may see the old value ...
        assert_eq!(hit(&c, b"k").as_deref(), Some(&b"$3\r\nold\r\n"[..]));
        assert!(c.peek(b"k", &Variant::Get, false).is_some());
        // ... the writer's own read may not: it goes to the shard, after the write.
        assert!(matches!(c.lookup(b"k", Variant::Get, true), Lookup::Bypass));
        assert!(c.peek(b"k", &Variant::Get, true).is_none());
        // Once the write is answered, nobody sees the old value and the key can be filled again.
        drop(fence);
        assert!(c.peek(b"k", &Variant::Get, false).is_none());
        assert!(matches!(
            c.lookup(b"k", Variant::Get, false),
            Lookup::Fill(_)
        ));
        // A fill in flight when the write is planned is cancelled: its read may be answered
        // from before or after the write.
        let f = fill(&c, b"j");
        let fence = c.write(b"j");
        f.complete(&Bytes::from_static(b"$3\r\nold\r\n"), Ttl::Persistent);
        drop(fence);
        assert!(hit(&c, b"j").is_none());
        drop(pending);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_wait_for_one_fill() {
        let c = Arc::new(NearCache::new(1 << 20));
        let f = fill(&c, b"k");
        let Lookup::Wait(rx) = c.lookup(b"k", Variant::Get, false) else {
            panic!("second miss should wait");
        };
        let waiter = tokio::spawn(wait_fill(rx, Duration::from_secs(1)));
        f.complete(&Bytes::from_static(b"$1\r\nv\r\n"), Ttl::Persistent);
        assert_eq!(
            waiter.await.ok().flatten().as_deref(),
            Some(&b"$1\r\nv\r\n"[..])
        );
        // A cancelled fill sends its waiters to read for themselves.
        c.invalidate(b"k");
        let f = fill(&c, b"k");
        let Lookup::Wait(rx) = c.lookup(b"k", Variant::Get, false) else {
            panic!("second miss should wait");
        };
        let waiter = tokio::spawn(wait_fill(rx, Duration::from_secs(1)));
        c.invalidate(b"k");
        assert_eq!(waiter.await.ok().flatten(), None);
        drop(f);
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_is_never_served_at_or_past_its_keys_expiry() {
        let c = Arc::new(NearCache::new(1 << 20));
        let v = Bytes::from_static(b"$1\r\nv\r\n");
        let f = fill(&c, b"k");
        // The reply arrives 30 ms after the ticket; the TTL counts from the ticket.
        tokio::time::advance(Duration::from_millis(30)).await;
        f.complete(&v, Ttl::Millis(100));
        assert!(hit(&c, b"k").is_some());
        assert!(c.peek(b"k", &Variant::Get, false).is_some());
        tokio::time::advance(Duration::from_millis(68)).await;
        assert!(
            hit(&c, b"k").is_some(),
            "98 ms after the ticket: still live"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            c.peek(b"k", &Variant::Get, false).is_none(),
            "99 ms: the deadline (TTL minus PTTL's rounding)"
        );
        assert_eq!(c.keys(), 0, "an expired value is dropped when looked at");
        assert_eq!(c.bytes(), 0);
        assert!(matches!(
            c.lookup(b"k", Variant::Get, false),
            Lookup::Fill(_)
        ));
        assert_eq!(c.stats.expired.load(Relaxed), 1);
        // An expired value found by `lookup` turns the read into a fill.
        fill(&c, b"j").complete(&v, Ttl::Millis(10));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(matches!(
            c.lookup(b"j", Variant::Get, false),
            Lookup::Fill(_)
        ));
        // No TTL: kept until invalidated.
        fill(&c, b"p").complete(&v, Ttl::Persistent);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(hit(&c, b"p").is_some());
    }

    #[test]
    fn fills_whose_ttl_is_unknown_or_inconsistent_are_not_cached() {
        let c = Arc::new(NearCache::new(1 << 20));
        let v = Bytes::from_static(b"$1\r\nv\r\n");
        // A redirect or error instead of PTTL's integer.
        fill(&c, b"a").complete(&v, Ttl::parse(Some(b"-MOVED 1 127.0.0.1:1\r\n")));
        // A value read, then the key gone before PTTL ran (it expired in between).
        fill(&c, b"b").complete(&v, Ttl::Missing);
        // Expiring now.
        fill(&c, b"c").complete(&v, Ttl::Millis(1));
        assert_eq!(c.keys(), 0);
        // A missing key is cached as missing (its creation is announced like any write).
        fill(&c, b"d").complete(&Bytes::from_static(b"$-1\r\n"), Ttl::Missing);
        fill(&c, b"e").complete(&Bytes::from_static(b"*0\r\n"), Ttl::Missing);
        assert_eq!(c.keys(), 2);
        assert_eq!(Ttl::parse(Some(b":-1\r\n")), Ttl::Persistent);
        assert_eq!(Ttl::parse(Some(b":-2\r\n")), Ttl::Missing);
        assert_eq!(Ttl::parse(Some(b":1500\r\n")), Ttl::Millis(1500));
        assert_eq!(Ttl::parse(Some(b":-3\r\n")), Ttl::Unknown);
        assert_eq!(Ttl::parse(Some(b"$2\r\n10\r\n")), Ttl::Unknown);
        assert_eq!(Ttl::parse(None), Ttl::Unknown);
    }

    #[test]
    fn budget_and_errors() {
        let c = Arc::new(NearCache::new(100));
        fill(&c, b"big").complete(&Bytes::from(vec![b'$'; 200]), Ttl::Persistent);
        assert!(hit(&c, b"big").is_none());
        assert_eq!(c.stats.rejected.load(Relaxed), 1);
        fill(&c, b"e").complete(&Bytes::from_static(b"-WRONGTYPE x\r\n"), Ttl::Persistent);
        assert!(hit(&c, b"e").is_none());
        assert_eq!(c.keys(), 0);
        assert_eq!(c.bytes(), 0);
    }
}
