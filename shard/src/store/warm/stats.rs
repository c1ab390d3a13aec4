//! The warm tier's counters (INFO tiering, metrics) and the read-timing policy that decides
//! whether reads run on the async worker or on tokio's blocking pool.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}
