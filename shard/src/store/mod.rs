//! The RAM tier: 16384 slot tables, one per Redis Cluster slot, each behind its own lock.
//!
//! Partitioning by slot serves three needs at once: connections on different cores rarely
//! contend (no global lock), a slot's keys can be listed and moved as a unit (cluster
//! migration, warm-tier layout), and `COUNTKEYSINSLOT` is a counter read. Global counters (keys,
//! keys with a TTL, accounted bytes) are kept exact by `SlotGuard`, which applies each table's
//! change when its lock is released, so no mutation can forget the bookkeeping.

mod evict;
mod expire;
pub mod glob;
mod key;
mod migrate;
mod scan;
pub mod sketch;
mod table;
mod tiering;
pub mod warm;

/// The value model lives in `crate::value`; these paths are the store's public names for it.
pub use crate::value::{HashValue, Kind, ListValue, SetValue, Value};
pub use evict::Policy;
pub use key::{ENTRY_OVERHEAD, Key};
pub use migrate::Taken;
pub use scan::{ScanFilter, scan_fields};
pub use tiering::WarmKey;
pub use warm::{WarmMeta, WarmStore};

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use hashbrown::HashMap;
use membership::{SLOT_COUNT, Slot};
use parking_lot::{Mutex, MutexGuard, RwLock};

thread_local! {
    /// Set while a CLIENT NO-TOUCH client's command runs on this thread: lookups then leave
    /// the entries' access time and LFU counter alone.
    static NO_TOUCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with lookups not counting as accesses when `on` (CLIENT NO-TOUCH).
pub fn no_touch<T>(on: bool, f: impl FnOnce() -> T) -> T {
    if !on {
        return f();
    }
    NO_TOUCH.set(true);
    let r = f();
    NO_TOUCH.set(false);
    r
}

/// Redis's initial LFU counter for new keys.
const LFU_INIT: u8 = 5;
const LFU_LOG_FACTOR: u32 = 10;
const LFU_DECAY_MS: u32 = 60_000;

/// One key's entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 = no TTL.
    expire_at: u64,
    /// Whether the warm tier still holds an identical copy of this entry (the key was loaded
    /// from it and has not changed since); its generation is in `SlotMap::warm_copies`, out
    /// of line because few entries have one. Any change clears it and deletes that copy, so a
    /// key never has two differing values.
    warm_copy: bool,
    /// Last access, Unix milliseconds truncated to 32 bits (compared with wrapping arithmetic).
    last_access: u32,
    /// Redis-style logarithmic access counter.
    freq: u8,
}

impl Entry {
    pub fn new(value: Value, expire_at: u64, now: u64) -> Entry {
        Entry {
            value,
            expire_at,
            warm_copy: false,
            last_access: now as u32,
            freq: LFU_INIT,
        }
    }

    pub fn expire_at(&self) -> u64 {
        self.expire_at
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }

    /// Milliseconds since the last access.
    pub fn idle_ms(&self, now: u64) -> u64 {
        u64::from((now as u32).wrapping_sub(self.last_access))
    }

    /// The LFU counter after decay for the time since the last access.
    pub fn freq(&self, now: u64) -> u8 {
        let periods = (now as u32).wrapping_sub(self.last_access) / LFU_DECAY_MS;
        self.freq.saturating_sub(periods.min(255) as u8)
    }

    fn touch(&mut self, now: u64) {
        let mut f = self.freq(now);
        if f < 255 {
            let base = u32::from(f.saturating_sub(LFU_INIT));
            // Increment with probability 1 / (base * factor + 1), as Redis does.
            if fastrand::u32(..base * LFU_LOG_FACTOR + 1) == 0 {
                f += 1;
            }
        }
        self.freq = f;
        self.last_access = now as u32;
    }

    /// The bytes the store charges for this entry under `key` (what MEMORY USAGE reports).
    pub fn memory_usage(&self, key: &[u8]) -> usize {
        Self::cost(key, &self.value)
    }

    fn cost(key: &[u8], value: &Value) -> usize {
        key.len() + value.payload_bytes() + ENTRY_OVERHEAD
    }
}

/// The keys of one slot: the RAM tier's entries and the index of the slot's warm keys.
#[derive(Default)]
pub struct SlotMap {
    map: table::KeyTable,
    warm: HashMap<Key, WarmMeta>,
    volatile: usize,
    bytes: usize,
    warm_bytes: usize,
    warm_volatile: usize,
    expired: u64,
    /// Warm copies made stale by a change, to delete when the lock is released.
    stale: Vec<(Key, u64)>,
    /// The warm-copy generation of each RAM entry whose `warm_copy` is set.
    warm_copies: HashMap<Key, u64>,
    /// Keys named by commands in flight (warm tier only): never demoted until released.
    pins: HashMap<Key, u32>,
    /// Keys that vanished by themselves (expired, evicted, dropped) while a key listener
    /// wants to hear of it; reported when the lock is released.
    gone: Vec<(Key, Gone)>,
    track_gone: bool,
}

impl SlotMap {
    /// Keys in the RAM tier.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn warm_len(&self) -> usize {
        self.warm.len()
    }

    /// Records that `key` vanished without a command naming it (see [`KeyListener`]).
    pub fn note_gone(&mut self, key: &[u8]) {
        self.note_gone_as(key, Gone::Dropped);
    }

    /// Records that `key` vanished for `why` (keyspace notifications tell expiry and eviction
    /// apart).
    pub fn note_gone_as(&mut self, key: &[u8], why: Gone) {
        if self.track_gone {
            self.gone.push((Key::from_slice(key), why));
        }
    }

    /// Forgets the warm copy of `key` (if `had` one) and queues its deletion: the entry it
    /// mirrored changed or left.
    #[inline]
    fn drop_warm_copy(&mut self, key: &[u8], had: bool) {
        if had && let Some(generation) = self.warm_copies.remove(key) {
            self.stale.push((Key::from_slice(key), generation));
        }
    }

    /// The generation of the warm copy of `key`'s entry `e`, if it has one.
    fn warm_copy_of(&self, key: &[u8], e: &Entry) -> Option<u64> {
        if e.warm_copy {
            self.warm_copies.get(key).copied()
        } else {
            None
        }
    }

    /// The live entry for `key`, counting it as an access (unless the running command's
    /// client set CLIENT NO-TOUCH, see [`no_touch`]). An expired entry is removed.
    pub fn lookup(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        // One hash lookup on the hot path. Only fields disjoint from `map` are touched while
        // the entry is borrowed.
        match self.map.get_or_remove(key, |e| e.is_expired(now)) {
            table::Lookup::Absent => None,
            table::Lookup::Removed(k, e) => {
                self.bytes = self.bytes.saturating_sub(Entry::cost(&k, &e.value));
                self.volatile -= usize::from(e.expire_at != 0);
                self.expired += 1;
                // Fields only: `map` stays borrowed for the live arm's return.
                if e.warm_copy
                    && let Some(generation) = self.warm_copies.remove(&k[..])
                {
                    self.stale.push((k.clone(), generation));
                }
                if self.track_gone {
                    self.gone.push((k, Gone::Expired));
                }
                None
            }
            table::Lookup::Live(e) => {
                if !NO_TOUCH.get() {
                    e.touch(now);
                }
                Some(e)
            }
        }
    }

    /// Like `lookup` without counting an access (TTL, TYPE, OBJECT, SCAN).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        if self.map.get(key)?.is_expired(now) {
            self.remove(key);
            self.note_gone_as(key, Gone::Expired);
            self.expired += 1;
            return None;
        }
        self.map.get(key)
    }

    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.peek(key, now).is_some()
    }

    /// Inserts or replaces `key`, returning the previous entry (expired or not).
    pub fn insert(&mut self, key: &[u8], mut entry: Entry) -> Option<Entry> {
        // Only `install` marks an entry as having a warm copy (of this very key): an entry
        // moved here from elsewhere (RENAME) has none.
        entry.warm_copy = false;
        self.bytes += Entry::cost(key, &entry.value);
        self.volatile += usize::from(entry.expire_at != 0);
        let old = self.map.insert(key, entry);
        if let Some(o) = &old {
            self.unaccount(key, o);
            self.drop_warm_copy(key, o.warm_copy);
        }
        old
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.remove_raw(key)?;
        self.drop_warm_copy(key, e.warm_copy);
        Some(e)
    }

    /// Removes an entry without touching its warm copy (demotion and un-installing; the caller
    /// settles `warm_copies`).
    fn remove_raw(&mut self, key: &[u8]) -> Option<Entry> {
        let (k, e) = self.map.remove_entry(key)?;
        self.unaccount(&k, &e);
        Some(e)
    }

    fn unaccount(&mut self, key: &[u8], e: &Entry) {
        self.bytes = self.bytes.saturating_sub(Entry::cost(key, &e.value));
        self.volatile -= usize::from(e.expire_at != 0);
    }

    /// Sets or clears (0) the TTL of a live key. Returns false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let Some(e) = self.map.get_mut(key) else {
            return false;
        };
        self.volatile = self.volatile + usize::from(expire_at != 0) - usize::from(e.expire_at != 0);
        e.expire_at = expire_at;
        let had = std::mem::take(&mut e.warm_copy);
        self.drop_warm_copy(key, had);
        true
    }

    /// Runs `f` on the live entry's value and re-accounts its size afterwards. If the value
    /// ends up an empty aggregate, the key is deleted (Redis never keeps one).
    pub fn update<R>(
        &mut self,
        key: &[u8],
        now: u64,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Option<R> {
        let e = self.lookup(key, now)?;
        let before = e.value.payload_bytes();
        let r = f(&mut e.value);
        let after = e.value.payload_bytes();
        let empty = e.value.is_empty_aggregate();
        let had = std::mem::take(&mut e.warm_copy);
        self.drop_warm_copy(key, had);
        self.bytes = (self.bytes + after).saturating_sub(before);
        if empty {
            self.remove(key);
        }
        Some(r)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.map.iter()
    }

    /// Live keys of both tiers with their type name.
    pub fn all_keys(&self, now: u64) -> impl Iterator<Item = (&Key, &'static str)> {
        let hot = self
            .map
            .iter()
            .filter(move |(_, e)| !e.is_expired(now))
            .map(|(k, e)| (k, e.value.type_name()));
        let warm = self
            .warm
            .iter()
            .filter(move |(_, m)| !m.is_expired(now))
            .map(|(k, m)| (k, m.type_name()));
        hot.chain(warm)
    }

    /// Removes every expired entry of both tiers; returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        if self.volatile == 0 && self.warm_volatile == 0 {
            return 0;
        }
        let expired: Vec<Key> = self
            .map
            .iter()
            .filter(|(_, e)| e.is_expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.remove(k);
            self.note_gone_as(k, Gone::Expired);
        }
        let warm_expired: Vec<Key> = self
            .warm
            .iter()
            .filter(|(_, m)| m.is_expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &warm_expired {
            if let Some(m) = self.warm_remove(k) {
                self.stale.push((k.clone(), m.generation));
                self.note_gone_as(k, Gone::Expired);
            }
        }
        let n = expired.len() + warm_expired.len();
        self.expired += n as u64;
        n
    }

    /// A pseudo-random sample of up to `n` entries (for eviction and RANDOMKEY).
    pub fn sample(&self, n: usize) -> impl Iterator<Item = (&Key, &Entry)> {
        let skip = if self.map.len() > n {
            fastrand::usize(..self.map.len().min(64))
        } else {
            0
        };
        self.map
            .iter()
            .cycle()
            .skip(skip)
            .take(n.min(self.map.len()))
    }

    /// Whether a command in flight needs this key in RAM.
    pub fn is_pinned(&self, key: &[u8]) -> bool {
        !self.pins.is_empty() && self.pins.contains_key(key)
    }

    // ---- the warm index ----

    pub fn warm_meta(&self, key: &[u8]) -> Option<&WarmMeta> {
        self.warm.get(key)
    }

    fn warm_insert(&mut self, key: &[u8], meta: WarmMeta) {
        self.warm_bytes += meta.size as usize;
        self.warm_volatile += usize::from(meta.expire_at != 0);
        if let Some(old) = self.warm.insert(Key::from_slice(key), meta) {
            self.warm_bytes = self.warm_bytes.saturating_sub(old.size as usize);
            self.warm_volatile -= usize::from(old.expire_at != 0);
        }
    }

    fn warm_remove(&mut self, key: &[u8]) -> Option<WarmMeta> {
        let m = self.warm.remove(key)?;
        self.warm_bytes = self.warm_bytes.saturating_sub(m.size as usize);
        self.warm_volatile -= usize::from(m.expire_at != 0);
        Some(m)
    }

    /// Moves a RAM entry to the warm index. Returns the entry and whether the warm tier must
    /// write it (false when it already holds an identical copy).
    fn demote(
        &mut self,
        key: &[u8],
        generation: impl FnOnce() -> u64,
    ) -> Option<(Entry, u64, bool)> {
        let e = self.remove_raw(key)?;
        let copy = e.warm_copy.then(|| self.warm_copies.remove(key)).flatten();
        let (generation, write) = match copy {
            Some(g) => (g, false),
            None => (generation(), true),
        };
        let size = Entry::cost(key, &e.value) as u32;
        self.warm_insert(
            key,
            WarmMeta {
                generation,
                expire_at: e.expire_at,
                size,
                kind: e.value.kind(),
                last_access: 0,
            },
        );
        Some((e, generation, write))
    }
}

/// Told of keys that vanish without a command naming them (expiry, eviction, a slot given
/// away), so client-side caches hear of it like of any change.
pub trait KeyListener: Send + Sync {
    /// Whether anyone listens now (checked once per slot lock).
    fn listening(&self) -> bool;
    fn keys_gone(&self, keys: &[(Key, Gone)]);
}

/// Why a key vanished without a command naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// Its TTL passed (found by a lookup or the expiry cycle).
    Expired,
    /// Evicted under `maxmemory`.
    Evicted,
    /// It left this node (its slot was given away or migrated) or was replaced by a migration.
    Dropped,
}

/// Several listeners told in turn (CLIENT TRACKING, keyspace notifications).
pub struct Listeners(pub Vec<Arc<dyn KeyListener>>);

impl KeyListener for Listeners {
    fn listening(&self) -> bool {
        self.0.iter().any(|l| l.listening())
    }

    fn keys_gone(&self, keys: &[(Key, Gone)]) {
        for l in &self.0 {
            if l.listening() {
                l.keys_gone(keys);
            }
        }
    }
}

/// Counters the INFO command reports.
#[derive(Default)]
pub struct DbStats {
    pub expired_keys: AtomicU64,
    pub evicted_keys: AtomicU64,
}

/// Memory limits, changeable at run time with CONFIG SET.
pub struct MemoryLimits {
    pub maxmemory: AtomicU64,
    pub policy: AtomicU8,
    pub samples: AtomicU32,
    /// Warm-tier budget in bytes; 0 = unlimited.
    pub warm_maxbytes: AtomicU64,
}

/// When a warm key read by a command moves back to RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// On every access.
    Always,
    /// On a second read within this many milliseconds of the first (writes always promote).
    SecondAccess(u64),
    /// When the key is used more often than the keys RAM has been demoting lately, by a
    /// frequency sketch of all keys (TinyLFU admission); RAM's victims are then the least
    /// frequently used of the sampled keys.
    Frequency,
}

/// Bytes of RAM budget per key the frequency sketch is sized for (a small entry).
const SKETCH_BYTES_PER_KEY: u64 = 256;

/// One slot's table lock and the slot's gate (`crate::gates`) side by side: every keyed
/// command takes the gate's read side and then the table's lock, so both sit at the start of
/// one 64-byte line (with the table's header) and the gate costs no cache miss of its own.
#[repr(align(64))]
pub struct SlotCell {
    pub(crate) gate: RwLock<()>,
    table: Mutex<SlotMap>,
}

impl Default for SlotCell {
    fn default() -> SlotCell {
        SlotCell {
            gate: RwLock::new(()),
            table: Mutex::new(SlotMap::default()),
        }
    }
}

/// The whole keyspace: the RAM tier and, when enabled, the warm tier's index.
pub struct Db {
    /// Shared with the slot gates (`Db::gates`), which live in the same cells.
    slots: Arc<[SlotCell]>,
    /// Keys per slot, both tiers.
    lens: Box<[AtomicU32]>,
    keys: AtomicUsize,
    warm_keys: AtomicUsize,
    volatile: AtomicUsize,
    used: AtomicUsize,
    warm_used: AtomicUsize,
    warm_volatile: AtomicUsize,
    expire_cursor: AtomicUsize,
    pub stats: DbStats,
    pub limits: MemoryLimits,
    /// Redis's encoding thresholds (CONFIG SET `*-max-listpack-*`, `set-max-intset-entries`).
    pub encodings: crate::value::limits::EncodingLimits,
    warm: Option<Arc<WarmStore>>,
    promotion: Promotion,
    /// Access frequencies of all keys, both tiers (with `Promotion::Frequency`).
    sketch: Option<sketch::FrequencySketch>,
    /// Moving average of the sketch frequency of demoted keys, times 16: what a warm key must
    /// beat to be promoted.
    victim_freq: AtomicU32,
    listener: std::sync::OnceLock<Arc<dyn KeyListener>>,
}

impl Db {
    pub fn new(maxmemory: u64, policy: Policy, samples: u32) -> Db {
        Db {
            slots: (0..SLOT_COUNT).map(|_| SlotCell::default()).collect(),
            lens: (0..SLOT_COUNT).map(|_| AtomicU32::new(0)).collect(),
            keys: AtomicUsize::new(0),
            warm_keys: AtomicUsize::new(0),
            volatile: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
            warm_used: AtomicUsize::new(0),
            warm_volatile: AtomicUsize::new(0),
            expire_cursor: AtomicUsize::new(0),
            stats: DbStats::default(),
            encodings: Default::default(),
            limits: MemoryLimits {
                maxmemory: AtomicU64::new(maxmemory),
                policy: AtomicU8::new(policy as u8),
                samples: AtomicU32::new(samples),
                warm_maxbytes: AtomicU64::new(0),
            },
            warm: None,
            promotion: Promotion::Always,
            sketch: None,
            victim_freq: AtomicU32::new(0),
            listener: std::sync::OnceLock::new(),
        }
    }

    /// Attaches a warm tier and the index of what it already holds.
    pub fn with_warm(
        mut self,
        store: Arc<WarmStore>,
        loaded: Vec<warm::Loaded>,
        maxbytes: u64,
        promotion: Promotion,
    ) -> Db {
        self.limits.warm_maxbytes.store(maxbytes, Relaxed);
        self.promotion = promotion;
        if promotion == Promotion::Frequency {
            let keys = self.maxmemory() / SKETCH_BYTES_PER_KEY;
            self.sketch = Some(sketch::FrequencySketch::new(
                usize::try_from(keys).unwrap_or(usize::MAX),
            ));
        }
        for l in loaded {
            self.slot(l.slot).warm_insert(&l.key, l.meta);
        }
        self.warm = Some(store);
        self
    }

    /// Sets the listener told of keys that vanish by themselves (once; later calls are ignored).
    pub fn set_key_listener(&self, l: Arc<dyn KeyListener>) {
        let _ = self.listener.set(l);
    }

    pub fn warm(&self) -> Option<&Arc<WarmStore>> {
        self.warm.as_ref()
    }

    /// The slot gates over this keyspace's slots (a handle to the same cells).
    pub fn gates(&self) -> crate::gates::SlotGates {
        crate::gates::SlotGates::new(self.slots.clone())
    }

    /// Locks the table of `slot`.
    pub fn slot(&self, slot: Slot) -> SlotGuard<'_> {
        let guard = self.slots[slot.index()].table.lock();
        SlotGuard::new(self, slot, guard)
    }

    /// Locks the table that holds `key`.
    pub fn for_key(&self, key: &[u8]) -> SlotGuard<'_> {
        self.slot(Slot::for_key(key))
    }

    /// Locks the tables of all `keys` in slot order (the one global lock order, so multi-key
    /// commands cannot deadlock) and gives out a view over them.
    pub fn lock_keys<'a, K: AsRef<[u8]>>(
        &'a self,
        keys: impl Iterator<Item = K>,
    ) -> MultiGuard<'a> {
        let mut slots: Vec<Slot> = keys.map(|k| Slot::for_key(k.as_ref())).collect();
        slots.sort_unstable();
        slots.dedup();
        MultiGuard {
            guards: slots.into_iter().map(|s| self.slot(s)).collect(),
        }
    }

    /// Keys in both tiers.
    pub fn len(&self) -> usize {
        self.keys.load(Relaxed) + self.warm_keys.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn hot_len(&self) -> usize {
        self.keys.load(Relaxed)
    }

    pub fn warm_len(&self) -> usize {
        self.warm_keys.load(Relaxed)
    }

    /// Keys with a TTL in the RAM tier.
    pub fn volatile_len(&self) -> usize {
        self.volatile.load(Relaxed)
    }

    /// Keys with a TTL in the warm tier.
    pub fn warm_volatile_len(&self) -> usize {
        self.warm_volatile.load(Relaxed)
    }

    /// Accounted bytes of RAM-tier entries.
    pub fn used_memory(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Accounted bytes of warm-tier entries.
    pub fn warm_memory(&self) -> usize {
        self.warm_used.load(Relaxed)
    }

    /// Keys in `slot`, both tiers.
    pub fn count_in_slot(&self, slot: Slot) -> usize {
        self.lens[slot.index()].load(Relaxed) as usize
    }

    /// Up to `count` live keys of `slot`, both tiers.
    pub fn keys_in_slot(&self, slot: Slot, count: usize, now: u64) -> Vec<Bytes> {
        let g = self.slot(slot);
        g.all_keys(now)
            .take(count)
            .map(|(k, _)| Bytes::copy_from_slice(k))
            .collect()
    }

    /// Removes every key of both tiers.
    pub fn flush(&self) {
        if let Some(w) = &self.warm {
            w.clear();
        }
        for s in Slot::all() {
            if self.lens[s.index()].load(Relaxed) == 0 {
                continue;
            }
            let mut g = self.slot(s);
            let m: &mut SlotMap = &mut g;
            *m = SlotMap {
                expired: m.expired,
                ..SlotMap::default()
            };
        }
    }

    /// A random live key, or `None` when the keyspace is empty.
    pub fn random_key(&self, now: u64) -> Option<Bytes> {
        for _ in 0..100 {
            let slot = self.random_nonempty_slot()?;
            let g = self.slot(slot);
            let live: Vec<&Key> = g.all_keys(now).take(64).map(|(k, _)| k).collect();
            if !live.is_empty() {
                return Some(Bytes::copy_from_slice(live[fastrand::usize(..live.len())]));
            }
        }
        None
    }

    /// A slot with at least one key, chosen at random (probing, then a scan from a random
    /// start so a sparse keyspace still finds its keys).
    fn random_nonempty_slot(&self) -> Option<Slot> {
        if self.is_empty() {
            return None;
        }
        for _ in 0..32 {
            let s = fastrand::u16(..SLOT_COUNT);
            if self.lens[usize::from(s)].load(Relaxed) > 0 {
                return Slot::new(s);
            }
        }
        let start = usize::from(fastrand::u16(..SLOT_COUNT));
        (0..usize::from(SLOT_COUNT))
            .map(|i| (start + i) % usize::from(SLOT_COUNT))
            .find(|&i| self.lens[i].load(Relaxed) > 0)
            .and_then(|i| Slot::new(i as u16))
    }

    /// All live keys matching `pattern`, both tiers.
    pub fn keys(&self, pattern: &[u8], now: u64) -> Vec<Bytes> {
        let all = pattern == b"*";
        let mut out = Vec::new();
        for s in Slot::all() {
            if self.lens[s.index()].load(Relaxed) == 0 {
                continue;
            }
            let g = self.slot(s);
            out.extend(
                g.all_keys(now)
                    .filter(|(k, _)| all || glob::glob_match(pattern, k, false))
                    .map(|(k, _)| Bytes::copy_from_slice(k)),
            );
        }
        out
    }
}

/// A locked slot table. Dereferences to `SlotMap`; on release it publishes the table's change
/// in key counts, TTL count and bytes to the database-wide counters, and queues deletion of
/// warm copies the change made stale.
pub struct SlotGuard<'a> {
    db: &'a Db,
    slot: Slot,
    guard: MutexGuard<'a, SlotMap>,
    len0: usize,
    warm_len0: usize,
    volatile0: usize,
    bytes0: usize,
    warm_bytes0: usize,
    warm_volatile0: usize,
    expired0: u64,
}

impl<'a> SlotGuard<'a> {
    fn new(db: &'a Db, slot: Slot, mut guard: MutexGuard<'a, SlotMap>) -> Self {
        guard.track_gone = db.listener.get().is_some_and(|l| l.listening());
        SlotGuard {
            db,
            slot,
            len0: guard.len(),
            warm_len0: guard.warm.len(),
            volatile0: guard.volatile,
            bytes0: guard.bytes,
            warm_bytes0: guard.warm_bytes,
            warm_volatile0: guard.warm_volatile,
            expired0: guard.expired,
            guard,
        }
    }
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = SlotMap;
    fn deref(&self) -> &SlotMap {
        &self.guard
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut SlotMap {
        &mut self.guard
    }
}

fn apply_delta(counter: &AtomicUsize, before: usize, after: usize) {
    if after > before {
        counter.fetch_add(after - before, Relaxed);
    } else if before > after {
        counter.fetch_sub(before - after, Relaxed);
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let db = self.db;
        let g = &mut self.guard;
        let (len, warm_len) = (g.len(), g.warm.len());
        if len != self.len0 || warm_len != self.warm_len0 {
            apply_delta(&db.keys, self.len0, len);
            apply_delta(&db.warm_keys, self.warm_len0, warm_len);
            db.lens[self.slot.index()].store((len + warm_len) as u32, Relaxed);
        }
        apply_delta(&db.volatile, self.volatile0, g.volatile);
        apply_delta(&db.used, self.bytes0, g.bytes);
        apply_delta(&db.warm_used, self.warm_bytes0, g.warm_bytes);
        apply_delta(&db.warm_volatile, self.warm_volatile0, g.warm_volatile);
        if g.expired != self.expired0 {
            db.stats
                .expired_keys
                .fetch_add(g.expired - self.expired0, Relaxed);
        }
        if !g.gone.is_empty() {
            let gone = std::mem::take(&mut g.gone);
            if let Some(l) = db.listener.get() {
                l.keys_gone(&gone);
            }
        }
        if !g.stale.is_empty() {
            let stale = std::mem::take(&mut g.stale);
            if let Some(w) = &db.warm {
                for (k, generation) in stale {
                    w.delete(self.slot, &k, generation);
                }
            }
        }
    }
}

/// Several slot tables locked together for an atomic multi-key command.
pub struct MultiGuard<'a> {
    guards: Vec<SlotGuard<'a>>,
}

impl<'a> MultiGuard<'a> {
    /// The table holding `key` (which must have been among the locked keys).
    pub fn table(&mut self, key: &[u8]) -> &mut SlotMap {
        let slot = Slot::for_key(key);
        let i = self
            .guards
            .binary_search_by_key(&slot, |g| g.slot)
            .unwrap_or_else(|_| {
                unreachable!("key's slot was locked by lock_keys");
            });
        &mut self.guards[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(Bytes::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn counters_follow_mutations() {
        let db = Db::new(0, Policy::NoEviction, 5);
        {
            let mut g = db.for_key(b"a");
            g.insert(b"a", Entry::new(s("1"), 0, 0));
            g.insert(b"a", Entry::new(s("22"), 50, 0));
        }
        assert_eq!(db.len(), 1);
        assert_eq!(db.volatile_len(), 1);
        assert_eq!(db.used_memory(), 1 + 2 + ENTRY_OVERHEAD);
        assert_eq!(db.count_in_slot(Slot::for_key(b"a")), 1);
        {
            let mut g = db.for_key(b"a");
            assert!(g.lookup(b"a", 100).is_none(), "expired on access");
        }
        assert_eq!((db.len(), db.volatile_len(), db.used_memory()), (0, 0, 0));
        assert_eq!(db.stats.expired_keys.load(Relaxed), 1);
    }

    #[test]
    fn multi_guard_locks_in_slot_order() {
        let db = Db::new(0, Policy::NoEviction, 5);
        let keys: Vec<&[u8]> = vec![b"foo", b"bar", b"foo", b"{foo}x"];
        let mut m = db.lock_keys(keys.iter());
        for k in &keys {
            m.table(k).insert(k, Entry::new(s("v"), 0, 0));
        }
        drop(m);
        assert_eq!(db.len(), 3);
    }
}
