//! The warm tier's writer threads: operations queue up in memory and two threads commit them
//! to redb in batches — a background writer at a lowered priority, and a helper at the
//! shard's own priority that takes over when the background writer is starved (see
//! [`helper_writer`]). Batches commit in queue order whichever thread writes them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use redb::Database;

use super::record::{self, ENTRIES, WarmError};
use super::stats::WarmStats;
use crate::store::key::Key;
use crate::value::codec::Record;

pub(super) enum Op {
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
pub(super) struct Queue {
    pub(super) ops: VecDeque<Op>,
    /// Demoted records not yet committed, readable by key.
    pub(super) pending: HashMap<Key, Record>,
    pub(super) pending_bytes: usize,
    pub(super) queued: u64,
    pub(super) committed: u64,
    pub(super) closed: bool,
    /// The writer sleeps on `work` (pushes wake it only then: no syscall per push otherwise).
    pub(super) writer_waiting: bool,
    /// The helper sleeps on `urgent` while nothing is queued (see [`helper_writer`]).
    pub(super) helper_waiting: bool,
    /// Callers of `flush` waiting: the writer stops lingering for them.
    pub(super) flushing: usize,
}

/// The queue and its wake-ups: work for the writer, work for the helper, commits for `flush`.
#[derive(Default)]
pub(super) struct WriteQueue {
    pub(super) queue: Mutex<Queue>,
    pub(super) work: Condvar,
    pub(super) urgent: Condvar,
    pub(super) done: Condvar,
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

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

fn take_batch(ops: &mut VecDeque<Op>) -> Vec<Op> {
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
pub(super) fn background_writer(db: &Database, shared: &WriteQueue, stats: &WarmStats, nice: u8) {
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
        if !write_batch(db, shared, stats, closing, true, None) && closing {
            return;
        }
    }
}

/// A small batch waits up to [`LINGER`] for company: a commit costs about as much as a few
/// hundred operations, and queued records stay readable meanwhile. Pushes do not wake the
/// writer here (no syscall per push); `flush` and `close` do.
fn linger(shared: &WriteQueue) {
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
pub(super) fn helper_writer(db: &Database, shared: &WriteQueue, stats: &WarmStats) {
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
            write_batch(db, shared, stats, false, false, Some(&stats.assists));
            q = lock(&shared.queue);
            if q.closed || q.ops.len() < LINGER_BELOW {
                break;
            }
        }
    }
}

/// Takes the next batch off the queue and commits it (durably when due, closing, or, with
/// `sync_idle`, when the queue is empty but earlier commits were not synced), counting it in
/// `also_count` too before anyone waiting for it wakes. Returns whether it committed anything.
fn write_batch(
    db: &Database,
    shared: &WriteQueue,
    stats: &WarmStats,
    closing: bool,
    sync_idle: bool,
    also_count: Option<&AtomicU64>,
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
    if let Some(c) = also_count {
        c.fetch_add(1, Relaxed);
    }
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
            q.ops = VecDeque::new();
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
                        (record::generation(v) != Some(*generation)).then(|| v.to_vec())
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
}
