//! The warm tier: entries demoted from RAM live in a redb database on disk, laid out by slot
//! (`slot (u16 BE) ++ key`) so a slot's keys are one contiguous range.
//!
//! All redb writes happen off the async workers: a dedicated thread at the lowest CPU
//! priority batches queued operations into few write transactions, and a helper at normal
//! priority writes the next batch whenever that thread is starved. Until its batch commits, a
//! demoted entry stays readable from the pending map, so there is no window in which a key is
//! in neither tier. Reads share one read
//! snapshot per commit; they run on the async worker while they are served from memory and on
//! tokio's blocking pool once they turn slow (see `cmd::load_warm`).
//!
//! Each stored record carries a generation number. A key demoted again gets a new generation,
//! and a delete only removes the record of the generation it names, so operations that race
//! across threads cannot delete a newer copy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use membership::Slot;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

use super::{HashValue, Key, Value};

const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const FORMAT: u8 = 1;
const KIND_STR: u8 = 0;
const KIND_HASH: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("warm tier database: {0}")]
    Db(#[from] redb::DatabaseError),
    #[error("warm tier transaction: {0}")]
    Txn(#[from] redb::TransactionError),
    #[error("warm tier table: {0}")]
    Table(#[from] redb::TableError),
    #[error("warm tier storage: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("warm tier commit: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("warm tier record for a key is corrupt")]
    Corrupt,
}

/// What the RAM index knows about a warm key (the value itself is on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmMeta {
    pub generation: u64,
    /// Absolute Unix ms; 0 = no TTL.
    pub expire_at: u64,
    /// Accounted bytes of key and value.
    pub size: u32,
    pub kind: u8,
    /// Unix ms of the last access that did not promote (for second-access promotion); 0 = none.
    pub last_access: u64,
}

impl WarmMeta {
    pub fn type_name(&self) -> &'static str {
        if self.kind == KIND_HASH {
            "hash"
        } else {
            "string"
        }
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }
}

/// A record as stored: generation, expiry and value.
#[derive(Debug, Clone)]
pub struct Record {
    pub generation: u64,
    pub expire_at: u64,
    pub value: Value,
}

enum Op {
    Put {
        db_key: Vec<u8>,
        bytes: Vec<u8>,
        key: Key,
        generation: u64,
    },
    Delete {
        db_key: Vec<u8>,
        generation: u64,
    },
    Clear,
}

#[derive(Default)]
struct Queue {
    ops: std::collections::VecDeque<Op>,
    /// Demoted records not yet committed, readable by key.
    pending: HashMap<Key, Record>,
    pending_bytes: usize,
    queued: u64,
    committed: u64,
    closed: bool,
    /// The writer sleeps on `work` (pushes wake it only then: no syscall per push otherwise).
    writer_waiting: bool,
    /// The helper sleeps on `urgent` while nothing is queued (see [`helper_writer`]).
    helper_waiting: bool,
    /// Callers of `flush` waiting: the writer stops lingering for them.
    flushing: usize,
}

/// The queue and its wake-ups: work for the writer, work for the helper, commits for `flush`.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    urgent: Condvar,
    done: Condvar,
    /// Held from taking a batch off the queue until it is committed, so that batches commit
    /// in queue order whichever thread writes them.
    writing: Mutex<WriterState>,
}

struct WriterState {
    last_durable: std::time::Instant,
}

impl Default for WriterState {
    fn default() -> Self {
        WriterState {
            last_durable: std::time::Instant::now(),
        }
    }
}

/// Counters for INFO tiering.
#[derive(Default)]
pub struct WarmStats {
    pub promotions: AtomicU64,
    pub demotions: AtomicU64,
    pub hits: AtomicU64,
    pub evictions: AtomicU64,
    pub write_errors: AtomicU64,
    pub commits: AtomicU64,
    /// Batches the normal-priority helper wrote because the background writer stalled.
    pub assists: AtomicU64,
    /// Commits that were fsynced, and non-durable commits since the last one (what a crash
    /// right now would lose).
    pub durable_commits: AtomicU64,
    pub unsynced_commits: AtomicU64,
    /// Moving average of one read's duration in nanoseconds (for INFO).
    pub read_ns: AtomicU64,
    /// Moving share of reads slower than [`INLINE_READ_NS`], in 1/65536 (decides where reads
    /// run).
    pub slow_reads: AtomicU64,
    /// Reads served on the async worker itself vs handed to the blocking pool.
    pub inline_reads: AtomicU64,
    pub pooled_reads: AtomicU64,
    /// Woken after every commit: writers held back by a full queue wait on it.
    pub committed: tokio::sync::Notify,
}

/// While most reads take less than this (the file's pages are in memory), reads run on the
/// worker that needs them: a hand-off to the blocking pool and back costs more than the read.
/// Once most are slower (the disk is really read), they go to the pool so they never stall
/// other connections. "Most", not the average: on a busy machine a worker preempted in the
/// middle of a read makes that one read look milliseconds long, and an average of wall times
/// then sent a tenth to half of all reads to the pool (measured), each paying two thread
/// wake-ups for nothing.
pub const INLINE_READ_NS: u64 = 50_000;

const SHARE_ONE: u64 = 1 << 16;

impl WarmStats {
    /// Whether the next reads should run inline (see [`INLINE_READ_NS`]).
    pub fn reads_are_fast(&self) -> bool {
        self.slow_reads.load(Relaxed) < SHARE_ONE / 2
    }

    /// Folds one read's duration into the moving average and the moving share of slow reads
    /// (weight 1/16 each).
    pub fn record_read(&self, ns: u64) {
        let old = self.read_ns.load(Relaxed);
        self.read_ns.store(old - old / 16 + ns / 16, Relaxed);
        let slow = if ns > INLINE_READ_NS { SHARE_ONE } else { 0 };
        let old = self.slow_reads.load(Relaxed);
        self.slow_reads.store(old - old / 16 + slow / 16, Relaxed);
    }
}

/// The entries table as of one commit of the writer.
type Snapshot = Arc<ReadOnlyTable<&'static [u8], &'static [u8]>>;

pub struct WarmStore {
    db: Arc<Database>,
    queue: Arc<Shared>,
    writers: Mutex<Vec<JoinHandle<()>>>,
    next_generation: AtomicU64,
    pub stats: Arc<WarmStats>,
    /// The read snapshot key reads share until the writer commits again, tagged with
    /// `stats.commits` as it was before the snapshot was taken.
    snapshot: Mutex<Option<(u64, Snapshot)>>,
}

fn db_key(slot: Slot, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len());
    k.extend_from_slice(&slot.get().to_be_bytes());
    k.extend_from_slice(key);
    k
}

pub fn encode(generation: u64, expire_at: u64, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + value.payload_bytes());
    out.push(FORMAT);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&expire_at.to_be_bytes());
    match value {
        Value::Str(b) => {
            out.push(KIND_STR);
            out.extend_from_slice(b);
        }
        Value::Hash(h) => {
            out.push(KIND_HASH);
            for (f, v) in h.iter() {
                out.extend_from_slice(&(f.len() as u32).to_be_bytes());
                out.extend_from_slice(f);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn header(b: &[u8]) -> Option<(u64, u64, u8)> {
    if b.len() < 18 || b[0] != FORMAT {
        return None;
    }
    let generation = u64::from_be_bytes(b[1..9].try_into().ok()?);
    let expire_at = u64::from_be_bytes(b[9..17].try_into().ok()?);
    Some((generation, expire_at, b[17]))
}

pub fn decode(b: &[u8]) -> Option<Record> {
    let (generation, expire_at, kind) = header(b)?;
    let payload = &b[18..];
    let value = match kind {
        KIND_STR => Value::Str(Bytes::copy_from_slice(payload)),
        KIND_HASH => {
            let mut h = HashValue::default();
            let mut p = payload;
            let take = |p: &mut &[u8]| -> Option<Bytes> {
                let len = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
                let v = Bytes::copy_from_slice(p.get(4..4 + len)?);
                *p = &p[4 + len..];
                Some(v)
            };
            while !p.is_empty() {
                let f = take(&mut p)?;
                let v = take(&mut p)?;
                h.insert(f, v);
            }
            Value::Hash(Box::new(h))
        }
        _ => return None,
    };
    Some(Record {
        generation,
        expire_at,
        value,
    })
}

/// A warm key found on disk at start-up.
pub struct Loaded {
    pub slot: Slot,
    pub key: Key,
    pub meta: WarmMeta,
}

impl WarmStore {
    /// Opens (or creates) the warm tier at `path` and returns it with the index of what it
    /// holds. Records that fail to decode are reported and dropped, never served.
    pub fn open(
        path: &Path,
        now: u64,
        cache_bytes: usize,
        writer_nice: u8,
    ) -> Result<(Arc<WarmStore>, Vec<Loaded>), WarmError> {
        Self::open_with(path, now, cache_bytes, Some(writer_nice))
    }

    /// [`WarmStore::open`], starting the background writer at `background`'s nice value, or
    /// (`None`, tests of the helper) only the helper.
    fn open_with(
        path: &Path,
        now: u64,
        cache_bytes: usize,
        background: Option<u8>,
    ) -> Result<(Arc<WarmStore>, Vec<Loaded>), WarmError> {
        // redb's page cache is RAM the shard's budget does not see; keep it bounded.
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let mut loaded = Vec::new();
        let mut max_generation = 0;
        let mut corrupt = Vec::new();
        let mut expired = Vec::new();
        {
            let wtx = db.begin_write()?;
            wtx.open_table(ENTRIES)?;
            wtx.commit()?;
        }
        {
            let rtx = db.begin_read()?;
            let table = rtx.open_table(ENTRIES)?;
            for item in table.iter()? {
                let (k, v) = item?;
                let (k, v) = (k.value(), v.value());
                let parsed = header(v).filter(|_| k.len() >= 2);
                let Some((generation, expire_at, kind)) = parsed else {
                    corrupt.push(k.to_vec());
                    continue;
                };
                max_generation = max_generation.max(generation);
                if expire_at != 0 && expire_at <= now {
                    expired.push(k.to_vec());
                    continue;
                }
                let slot = Slot::new(u16::from_be_bytes([k[0], k[1]])).ok_or(WarmError::Corrupt)?;
                let key = Key::from_slice(&k[2..]);
                let size = (key.len() + v.len() - 18 + super::ENTRY_OVERHEAD) as u32;
                loaded.push(Loaded {
                    slot,
                    key,
                    meta: WarmMeta {
                        generation,
                        expire_at,
                        size,
                        kind,
                        last_access: 0,
                    },
                });
            }
        }
        if !corrupt.is_empty() {
            tracing::error!(
                records = corrupt.len(),
                "dropping undecodable warm-tier records"
            );
        }
        if !corrupt.is_empty() || !expired.is_empty() {
            let wtx = db.begin_write()?;
            {
                let mut t = wtx.open_table(ENTRIES)?;
                for k in corrupt.iter().chain(&expired) {
                    t.remove(k.as_slice())?;
                }
            }
            wtx.commit()?;
        }
        let store = Arc::new(WarmStore {
            db: Arc::new(db),
            queue: Arc::new(Shared::default()),
            writers: Mutex::new(Vec::new()),
            next_generation: AtomicU64::new(max_generation + 1),
            stats: Arc::new(WarmStats::default()),
            snapshot: Mutex::new(None),
        });
        let mut threads = vec![("warm-helper", None)];
        if let Some(nice) = background {
            threads.push(("warm-writer", Some(nice)));
        }
        for (name, writer) in threads {
            let (db, queue, stats) = (store.db.clone(), store.queue.clone(), store.stats.clone());
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || match writer {
                    Some(nice) => background_writer(&db, &queue, &stats, nice),
                    None => helper_writer(&db, &queue, &stats),
                })
                .map_err(|e| WarmError::Storage(redb::StorageError::Io(e)));
            match handle {
                Ok(h) => lock(&store.writers).push(h),
                Err(e) => {
                    store.close();
                    return Err(e);
                }
            }
        }
        tracing::info!(path = %path.display(), keys = loaded.len(), "warm tier opened");
        Ok((store, loaded))
    }

    pub fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Relaxed)
    }

    fn push(&self, op: Op, pending: Option<(Key, Record, usize)>) {
        let mut q = lock(&self.queue.queue);
        if let Some((key, rec, bytes)) = pending {
            q.pending_bytes += bytes;
            if let Some(old) = q.pending.insert(key, rec) {
                q.pending_bytes = q.pending_bytes.saturating_sub(old.value.payload_bytes());
            }
        }
        q.ops.push_back(op);
        q.queued += 1;
        if q.writer_waiting {
            self.queue.work.notify_one();
        }
        if q.helper_waiting {
            self.queue.urgent.notify_one();
        }
    }

    /// Queues a demoted entry for writing; it stays readable from memory until committed.
    pub fn put(&self, slot: Slot, key: &[u8], generation: u64, expire_at: u64, value: Value) {
        let bytes = encode(generation, expire_at, &value);
        let size = value.payload_bytes();
        let key = Key::from_slice(key);
        let op = Op::Put {
            db_key: db_key(slot, &key),
            bytes,
            key: key.clone(),
            generation,
        };
        self.push(
            op,
            Some((
                key,
                Record {
                    generation,
                    expire_at,
                    value,
                },
                size,
            )),
        );
        self.stats.demotions.fetch_add(1, Relaxed);
    }

    /// Queues removal of the record of `generation` (a newer record of the key is kept).
    pub fn delete(&self, slot: Slot, key: &[u8], generation: u64) {
        self.push(
            Op::Delete {
                db_key: db_key(slot, key),
                generation,
            },
            None,
        );
        let mut q = lock(&self.queue.queue);
        if q.pending
            .get(key)
            .is_some_and(|r| r.generation == generation)
            && let Some(r) = q.pending.remove(key)
        {
            q.pending_bytes = q.pending_bytes.saturating_sub(r.value.payload_bytes());
        }
    }

    /// Queues removal of everything.
    pub fn clear(&self) {
        {
            let mut q = lock(&self.queue.queue);
            q.pending.clear();
            q.pending_bytes = 0;
        }
        self.push(Op::Clear, None);
    }

    /// Bytes of demoted values waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        lock(&self.queue.queue).pending_bytes
    }

    /// Queued operations not yet committed.
    pub fn pending_ops(&self) -> u64 {
        let q = lock(&self.queue.queue);
        q.queued - q.committed
    }

    /// Reads the record of `key` at `generation` (blocking: call from a blocking thread).
    /// `Ok(None)` if that generation is gone (the key changed meanwhile).
    pub fn read(
        &self,
        slot: Slot,
        key: &[u8],
        generation: u64,
    ) -> Result<Option<Record>, WarmError> {
        if let Some(r) = lock(&self.queue.queue).pending.get(key)
            && r.generation == generation
        {
            return Ok(Some(r.clone()));
        }
        let table = self.snapshot()?;
        let Some(v) = table.get(db_key(slot, key).as_slice())? else {
            return Ok(None);
        };
        let rec = decode(v.value()).ok_or(WarmError::Corrupt)?;
        Ok((rec.generation == generation).then_some(rec))
    }

    /// A read snapshot that contains every commit made before the caller looked at the
    /// pending map. The writer counts a commit (`stats.commits`) before it drops the batch's
    /// records from the pending map, so a record missing from the pending map is in every
    /// snapshot tagged with the count read afterwards. One snapshot serves all reads until the
    /// next commit: a read transaction and the table lookup cost as much as the key lookup.
    fn snapshot(&self) -> Result<Snapshot, WarmError> {
        let commits = self.stats.commits.load(Acquire);
        let mut cached = lock(&self.snapshot);
        if let Some((at, table)) = cached.as_ref()
            && *at == commits
        {
            return Ok(table.clone());
        }
        let table = Arc::new(self.db.begin_read()?.open_table(ENTRIES)?);
        *cached = Some((commits, table.clone()));
        Ok(table)
    }

    /// Like [`WarmStore::read`] for many keys of one slot, in one read transaction (slot
    /// migration reads whole batches). Blocking.
    pub fn read_many<'k>(
        &self,
        slot: Slot,
        keys: impl Iterator<Item = (&'k [u8], u64)>,
    ) -> Result<Vec<Option<Record>>, WarmError> {
        // Pending (uncommitted) records first, then one transaction begun afterwards: a record
        // committed in between is then in the transaction's snapshot.
        let mut out: Vec<(&[u8], u64, Option<Record>)> = {
            let q = lock(&self.queue.queue);
            keys.map(|(key, generation)| {
                let r = q.pending.get(key).filter(|r| r.generation == generation);
                (key, generation, r.cloned())
            })
            .collect()
        };
        let rtx = self.db.begin_read()?;
        let table = rtx.open_table(ENTRIES)?;
        for (key, generation, rec) in out.iter_mut() {
            if rec.is_some() {
                continue;
            }
            if let Some(v) = table.get(db_key(slot, key).as_slice())? {
                let r = decode(v.value()).ok_or(WarmError::Corrupt)?;
                *rec = (r.generation == *generation).then_some(r);
            }
        }
        Ok(out.into_iter().map(|(_, _, r)| r).collect())
    }

    /// Every committed record of `slot`, in key order: one range scan, since keys are laid out
    /// by slot (what slot migration streams). Blocking.
    pub fn slot_records(&self, slot: Slot) -> Result<Vec<(Key, Record)>, WarmError> {
        let (lo, hi) = (
            slot.get().to_be_bytes(),
            (u32::from(slot.get()) + 1).to_be_bytes(),
        );
        let rtx = self.db.begin_read()?;
        let table = rtx.open_table(ENTRIES)?;
        let mut out = Vec::new();
        let start: &[u8] = &lo;
        let range = if slot.get() == membership::SLOT_COUNT - 1 {
            table.range(start..)?
        } else {
            let end: &[u8] = &hi[2..];
            table.range(start..end)?
        };
        for item in range {
            let (k, v) = item?;
            let rec = decode(v.value()).ok_or(WarmError::Corrupt)?;
            out.push((Key::from_slice(&k.value()[2..]), rec));
        }
        Ok(out)
    }

    /// Blocks until everything queued so far is committed.
    pub fn flush(&self) {
        let mut q = lock(&self.queue.queue);
        let target = q.queued;
        q.flushing += 1;
        self.queue.work.notify_all();
        while q.committed < target && !q.closed {
            q = self
                .queue
                .done
                .wait_timeout(q, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        q.flushing -= 1;
    }

    /// Flushes and stops the writer threads.
    pub fn close(&self) {
        self.flush();
        lock(&self.queue.queue).closed = true;
        self.queue.work.notify_all();
        self.queue.urgent.notify_all();
        self.queue.done.notify_all();
        for h in std::mem::take(&mut *lock(&self.writers)) {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How stale the durable state may get under constant load: batches commit without fsync, and
/// a durable commit follows at least this often. A crash loses at most this much of the newest
/// demotions and never leaves a torn record (redb recovers to its last durable commit).
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// After this long without new work, the writer makes its non-durable commits durable (an
/// empty durable commit), so a shard that goes quiet is soon fully on disk. Syncing as soon as
/// the queue drained instead made almost every commit an fsync at moderate load (a few
/// operations per batch), which cost about a millisecond of the writer's CPU per batch.
const DURABLE_WHEN_IDLE: Duration = Duration::from_millis(50);

/// At most this many operations per write transaction, so that under a backlog commits keep
/// coming (each one releases writes waiting for the backlog to shrink) instead of one huge
/// transaction taking seconds.
const MAX_BATCH: usize = 8_192;

fn take_batch(ops: &mut std::collections::VecDeque<Op>) -> Vec<Op> {
    let n = ops.len().min(MAX_BATCH);
    ops.drain(..n).collect()
}

/// Batches smaller than this wait [`LINGER`] for more operations before they commit. Queued
/// records stay readable from the pending map meanwhile, and durability is set by
/// [`DURABLE_EVERY`], so lingering costs nothing but the batch's memory for that long. In
/// steady state (a few hundred demotions a second) 5 ms batches held 3–5 operations and
/// commits took 5% of the shard's CPU; 20 ms batches cut the commits by two thirds.
const LINGER_BELOW: usize = 256;
const LINGER: Duration = Duration::from_millis(20);

/// If nothing commits for this long while operations are queued, the helper (at the shard's
/// own priority) takes over until the backlog is small: a machine kept busy by other work may
/// leave a nice-19 thread almost no CPU, and then demotions would pile up until writes wait
/// for them. Well above [`LINGER`] plus a normal batch, so it stays idle in steady state.
const STALL: Duration = Duration::from_millis(500);

/// Adds `nice` to the calling thread's nice value (Linux; `warm-writer-nice`). The writer's
/// B-tree work and commits come in bursts of a few milliseconds of CPU; at the workers'
/// priority a burst delays the requests of whichever worker shares its core by up to a
/// scheduler slice, which made the warm tier's p99. At nice 19 a woken worker runs first.
#[cfg(target_os = "linux")]
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    // Lowering one's own thread's priority needs no privilege.
    let tid = rustix::thread::gettid();
    let result = rustix::process::getpriority_process(Some(tid)).and_then(|current| {
        rustix::process::setpriority_process(Some(tid), (current + i32::from(nice)).min(19))
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not lower the warm-tier writer's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: u8) {}

/// Writes the queue in batches at a lowered priority, lingering for small batches and
/// syncing non-durable commits once the queue goes idle.
fn background_writer(db: &Database, shared: &Shared, stats: &WarmStats, nice: u8) {
    lower_priority(nice);
    loop {
        let (backlog, closing) = {
            let mut q = lock(&shared.queue);
            loop {
                if !q.ops.is_empty() || q.closed {
                    break;
                }
                q.writer_waiting = true;
                if stats.unsynced_commits.load(Relaxed) == 0 {
                    q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.writer_waiting = false;
                    continue;
                }
                let (g, timeout) = shared
                    .work
                    .wait_timeout(q, DURABLE_WHEN_IDLE)
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
                q.writer_waiting = false;
                if timeout.timed_out() && q.ops.is_empty() {
                    break; // idle: sync what the non-durable commits left
                }
            }
            (q.ops.len(), q.closed)
        };
        if backlog > 0 && backlog < LINGER_BELOW && !closing {
            linger(shared);
        }
        if !write_batch(db, shared, stats, closing, true) && closing {
            return;
        }
    }
}

/// A small batch waits up to [`LINGER`] for company: a commit costs about as much as a few
/// hundred operations, and queued records stay readable meanwhile. Pushes do not wake the
/// writer here (no syscall per push); `flush` and `close` do.
fn linger(shared: &Shared) {
    let deadline = std::time::Instant::now() + LINGER;
    let mut q = lock(&shared.queue);
    while q.ops.len() < LINGER_BELOW && !q.closed && q.flushing == 0 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        q = shared
            .work
            .wait_timeout(q, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// Stands by at normal priority and writes whenever operations have been queued for [`STALL`]
/// without a commit (the background writer is starved of CPU, or busy with a long batch),
/// then goes on writing until the backlog is down to a small batch. Counted in
/// `stats.assists` (batches it wrote).
fn helper_writer(db: &Database, shared: &Shared, stats: &WarmStats) {
    let mut q = lock(&shared.queue);
    loop {
        if q.closed {
            return; // the background writer commits what is left
        }
        if q.ops.is_empty() {
            q.helper_waiting = true;
            q = shared.urgent.wait(q).unwrap_or_else(|e| e.into_inner());
            q.helper_waiting = false;
            continue;
        }
        let before = q.committed;
        q = shared
            .urgent
            .wait_timeout(q, STALL)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
        if q.closed || q.committed != before || q.ops.is_empty() {
            continue;
        }
        loop {
            drop(q);
            if write_batch(db, shared, stats, false, false) {
                stats.assists.fetch_add(1, Relaxed);
            }
            q = lock(&shared.queue);
            if q.closed || q.ops.len() < LINGER_BELOW {
                break;
            }
        }
    }
}

/// Takes the next batch off the queue and commits it (durably when due, closing, or, with
/// `sync_idle`, when the queue is empty but earlier commits were not synced). Returns whether
/// it committed anything.
fn write_batch(
    db: &Database,
    shared: &Shared,
    stats: &WarmStats,
    closing: bool,
    sync_idle: bool,
) -> bool {
    let mut state = lock(&shared.writing);
    let ops = take_batch(&mut lock(&shared.queue).ops);
    if ops.is_empty() && (!sync_idle || stats.unsynced_commits.load(Relaxed) == 0) {
        return false;
    }
    let durable = ops.is_empty() || closing || state.last_durable.elapsed() >= DURABLE_EVERY;
    // Retry until the batch commits: demoted data exists nowhere else.
    let mut backoff = Duration::from_millis(10);
    while let Err(e) = apply(db, &ops, durable) {
        stats.write_errors.fetch_add(1, Relaxed);
        tracing::error!(error = %e, ops = ops.len(), "warm tier write failed; retrying");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    // Counted before the batch leaves the pending map: see `WarmStore::snapshot`.
    stats.commits.fetch_add(1, Release);
    if durable {
        state.last_durable = std::time::Instant::now();
        stats.unsynced_commits.store(0, Relaxed);
        stats.durable_commits.fetch_add(1, Relaxed);
    } else {
        stats.unsynced_commits.fetch_add(1, Relaxed);
    }
    let mut q = lock(&shared.queue);
    for op in &ops {
        if let Op::Put {
            key, generation, ..
        } = op
            && q.pending
                .get(key)
                .is_some_and(|r| r.generation == *generation)
            && let Some(r) = q.pending.remove(key)
        {
            q.pending_bytes = q.pending_bytes.saturating_sub(r.value.payload_bytes());
        }
    }
    q.committed += ops.len() as u64;
    if q.ops.is_empty() {
        // A burst (a bulk load outrunning the disk) can queue millions of operations; do
        // not keep that much capacity once it has drained.
        if q.ops.capacity() > 4 * MAX_BATCH {
            q.ops = std::collections::VecDeque::new();
        }
        if q.pending.capacity() > 4 * MAX_BATCH && q.pending.len() < MAX_BATCH {
            q.pending.shrink_to(2 * MAX_BATCH);
        }
    }
    shared.done.notify_all();
    drop(q);
    drop(state);
    stats.committed.notify_waiters();
    true
}

/// The batch in key order (a stable sort, so one key's operations keep their order; a
/// `Clear` stays a barrier), so that neighbouring operations can share the B-tree pages they
/// copy and the cache's branch pages. Measured under a bulk load, the drain rate moved within
/// noise (4.7 → 5.0 MB/s of demotions): with random keys a batch rarely hits a page twice.
fn in_key_order(ops: &[Op]) -> Vec<&Op> {
    let mut out: Vec<&Op> = Vec::with_capacity(ops.len());
    for run in ops.split(|op| matches!(op, Op::Clear)) {
        let start = out.len();
        out.extend(run);
        out[start..].sort_by_key(|op| op_key(op));
        if out.len() < ops.len() {
            out.push(&ops[out.len()]); // the Clear that ended this run
        }
    }
    out
}

fn op_key(op: &Op) -> &[u8] {
    match op {
        Op::Put { db_key, .. } | Op::Delete { db_key, .. } => db_key,
        Op::Clear => &[],
    }
}

fn apply(db: &Database, ops: &[Op], durable: bool) -> Result<(), WarmError> {
    let mut wtx = db.begin_write()?;
    if !durable {
        // Only fails with persistent savepoints, which the warm tier never creates.
        let _ = wtx.set_durability(redb::Durability::None);
    }
    {
        let mut t = wtx.open_table(ENTRIES)?;
        for op in in_key_order(ops) {
            match op {
                Op::Put { db_key, bytes, .. } => {
                    t.insert(db_key.as_slice(), bytes.as_slice())?;
                }
                Op::Delete { db_key, generation } => {
                    // One descent: remove, and put back the rare newer record.
                    let newer = t.remove(db_key.as_slice())?.and_then(|v| {
                        let v = v.value();
                        (header(v).map(|h| h.0) != Some(*generation)).then(|| v.to_vec())
                    });
                    if let Some(v) = newer {
                        t.insert(db_key.as_slice(), v.as_slice())?;
                    }
                }
                Op::Clear => {
                    t.retain(|_, _| false)?;
                }
            }
        }
    }
    wtx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_move_to_the_pool_when_most_are_slow_and_back_when_fast() {
        let st = WarmStats::default();
        assert!(st.reads_are_fast(), "inline until a read is measured");
        for _ in 0..100 {
            st.record_read(5_000); // served from the page cache
        }
        // A preempted read now and then (one in five, each 5 ms) keeps reads inline.
        for i in 0..200 {
            st.record_read(if i % 5 == 0 { 5_000_000 } else { 5_000 });
            assert!(st.reads_are_fast(), "read {i}");
        }
        // The disk is really read: most reads are slow.
        let mut n = 0;
        while st.reads_are_fast() {
            st.record_read(200_000);
            n += 1;
            assert!(n < 20, "still inline after {n} slow reads");
        }
        for _ in 0..20 {
            st.record_read(5_000); // back in the page cache
        }
        assert!(st.reads_are_fast());
    }

    #[test]
    fn batches_apply_in_key_order_keeping_each_keys_order_and_clear_barriers() {
        let put = |k: &str, generation| Op::Put {
            db_key: k.as_bytes().to_vec(),
            bytes: Vec::new(),
            key: Key::from_slice(k.as_bytes()),
            generation,
        };
        let del = |k: &str, generation| Op::Delete {
            db_key: k.as_bytes().to_vec(),
            generation,
        };
        let ops = [
            put("b", 1),
            put("a", 2),
            del("b", 1),
            put("b", 3),
            Op::Clear,
            put("d", 4),
            put("c", 5),
        ];
        let order: Vec<(String, u64)> = in_key_order(&ops)
            .into_iter()
            .map(|op| match op {
                Op::Put { generation, .. } => {
                    (format!("put {}", op_key(op)[0] as char), *generation)
                }
                Op::Delete { generation, .. } => {
                    (format!("del {}", op_key(op)[0] as char), *generation)
                }
                Op::Clear => ("clear".into(), 0),
            })
            .collect();
        let expected = [
            ("put a", 2),
            ("put b", 1),
            ("del b", 1),
            ("put b", 3),
            ("clear", 0),
            ("put c", 5),
            ("put d", 4),
        ];
        assert_eq!(order, expected.map(|(o, g)| (o.to_string(), g)).to_vec());
    }

    #[test]
    fn the_helper_commits_what_a_stalled_background_writer_leaves() {
        let dir = tempfile::tempdir().expect("tmp");
        // No background writer at all: the most starved it can be.
        let (w, _) =
            WarmStore::open_with(&dir.path().join("warm.redb"), 0, 1 << 20, None).expect("open");
        let slot = Slot::for_key(b"k");
        w.put(slot, b"k", 1, 0, Value::Str(Bytes::from_static(b"v")));
        // `flush` returns once a commit took the put off the queue; without a helper it would
        // never return, so it runs on a thread and the test fails after a bound instead.
        let (tx, rx) = std::sync::mpsc::channel();
        let flusher = {
            let w = w.clone();
            std::thread::spawn(move || {
                w.flush();
                let _ = tx.send(());
            })
        };
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the helper committed within 10 s");
        flusher.join().expect("flusher");
        assert_eq!((w.pending_ops(), w.pending_bytes()), (0, 0));
        assert_eq!(w.stats.assists.load(Relaxed), 1);
        assert!(w.read(slot, b"k", 1).expect("read").is_some());
        w.close();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_background_writer_runs_at_the_configured_nice_value() {
        let dir = tempfile::tempdir().expect("tmp");
        let nice_in = |task: &std::path::Path| -> Option<i64> {
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            // Fields after the parenthesised name; nice is the 19th field overall.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(16)?.parse().ok()
        };
        let nice_of = |name: &str| -> Vec<i64> {
            let tasks = std::fs::read_dir("/proc/self/task").expect("tasks");
            tasks
                .filter_map(|t| {
                    let t = t.ok()?.path();
                    let comm = std::fs::read_to_string(t.join("comm")).ok()?;
                    (comm.trim() == name).then(|| nice_in(&t))?
                })
                .collect()
        };
        let base = nice_in(std::path::Path::new("/proc/thread-self")).expect("own nice");
        let low = (base + 19).min(19);
        let (w, _) = WarmStore::open(&dir.path().join("warm.redb"), 0, 1 << 20, 19).expect("open");
        // The writer lowers its priority as it starts; give it a moment (other tests' stores
        // may run writers of their own, all at the same nice value).
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen = nice_of("warm-writer");
            if !seen.is_empty() && seen.iter().all(|n| *n == low) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !seen.is_empty() && seen.iter().all(|n| *n == low),
            "{seen:?}"
        );
        assert!(nice_of("warm-helper").iter().all(|n| *n == base));
        w.close();
    }

    #[test]
    fn records_round_trip() {
        let mut h = HashValue::default();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
        h.insert(Bytes::from_static(b""), Bytes::from_static(b"empty field"));
        for value in [
            Value::Str(Bytes::from_static(b"hello")),
            Value::Str(Bytes::new()),
            Value::Hash(Box::new(h)),
        ] {
            let rec = decode(&encode(7, 99, &value)).expect("decodes");
            assert_eq!((rec.generation, rec.expire_at), (7, 99));
            assert_eq!(rec.value, value);
        }
        assert!(decode(&[9, 9, 9]).is_none());
        let mut bad = encode(1, 0, &Value::Hash(Box::default()));
        bad.extend_from_slice(&[0, 0, 0, 9, b'x']);
        assert!(
            decode(&bad).is_none(),
            "truncated field is corrupt, not a panic"
        );
    }

    #[test]
    fn reads_see_every_commit_made_before_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let (w, _) = WarmStore::open(&dir.path().join("warm.redb"), 0, 1 << 20, 19).expect("open");
        let (a, b) = (Slot::for_key(b"a"), Slot::for_key(b"b"));
        w.put(a, b"a", 1, 0, Value::Str(Bytes::from_static(b"va")));
        w.flush();
        // This read takes the shared snapshot.
        assert!(w.read(a, b"a", 1).expect("read").is_some());
        // "b" is committed and leaves the pending map: the next read must not use the old
        // snapshot, or the key would be in neither place.
        w.put(b, b"b", 2, 0, Value::Str(Bytes::from_static(b"vb")));
        w.flush();
        assert_eq!(w.pending_bytes(), 0);
        let rec = w.read(b, b"b", 2).expect("read").expect("committed record");
        assert_eq!(rec.value, Value::Str(Bytes::from_static(b"vb")));
        // Deletes commit the same way.
        w.delete(a, b"a", 1);
        w.flush();
        assert!(w.read(a, b"a", 1).expect("read").is_none());
        w.close();
    }

    #[test]
    fn put_read_delete_by_generation_and_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("warm.redb");
        let slot = Slot::for_key(b"k");
        {
            let (w, loaded) = WarmStore::open(&path, 0, 1 << 20, 19).expect("open");
            assert!(loaded.is_empty());
            w.put(slot, b"k", 1, 0, Value::Str(Bytes::from_static(b"v1")));
            // Readable before the writer commits, and after.
            assert!(w.read(slot, b"k", 1).expect("read").is_some());
            w.flush();
            assert_eq!(w.pending_bytes(), 0);
            assert!(w.read(slot, b"k", 1).expect("read").is_some());
            assert!(
                w.read(slot, b"k", 2).expect("read").is_none(),
                "other generation"
            );
            w.put(slot, b"k", 2, 0, Value::Str(Bytes::from_static(b"v2")));
            w.delete(slot, b"k", 1); // stale delete: must not remove generation 2
            w.put(
                Slot::for_key(b"gone"),
                b"gone",
                3,
                0,
                Value::Str(Bytes::from_static(b"x")),
            );
            w.delete(Slot::for_key(b"gone"), b"gone", 3);
            w.close();
        }
        let (w, loaded) = WarmStore::open(&path, 0, 1 << 20, 19).expect("reopen");
        assert_eq!(loaded.len(), 1);
        let in_slot = w.slot_records(slot).expect("range");
        assert_eq!(in_slot.len(), 1);
        assert_eq!(&in_slot[0].0[..], b"k");
        assert!(
            w.slot_records(Slot::new(slot.get() ^ 1).expect("slot"))
                .expect("range")
                .is_empty()
        );
        assert_eq!(loaded[0].meta.generation, 2);
        let rec = w.read(slot, b"k", 2).expect("read").expect("present");
        assert_eq!(rec.value, Value::Str(Bytes::from_static(b"v2")));
        assert!(w.next_generation() > 2);
        w.close();
    }
}
