//! The slow log: commands whose execution took at least `slowlog-log-slower-than` microseconds,
//! newest first, at most `slowlog-max-len` of them (Redis's defaults: 10000 µs and 128).
//!
//! Only the command's own execution is timed (from dispatch to its reply), as in Redis: the time
//! a request waited in the connection's batch or for the network is not in it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

/// Redis keeps at most this many arguments of a logged command...
const MAX_ARGS: usize = 32;
/// ... and at most this many bytes of each.
const MAX_ARG_LEN: usize = 128;

pub struct Entry {
    pub id: u64,
    /// Unix seconds when the command ran.
    pub time: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub addr: SocketAddr,
    pub name: Bytes,
}

pub struct SlowLog {
    /// Negative: logging off; 0: every command.
    pub slower_than_us: AtomicI64,
    pub max_len: AtomicUsize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Default for SlowLog {
    fn default() -> SlowLog {
        SlowLog {
            slower_than_us: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }
}

impl SlowLog {
    /// Whether commands are timed at all.
    pub fn enabled(&self) -> bool {
        self.slower_than_us.load(Relaxed) >= 0
    }

    /// Logs a command that took `took`, if that is slow enough. The arguments are only copied
    /// (and cut to Redis's limits) for a command that is logged.
    pub fn record(
        &self,
        took: Duration,
        args: &[Bytes],
        now_ms: u64,
        addr: SocketAddr,
        name: impl FnOnce() -> Bytes,
    ) {
        let threshold = self.slower_than_us.load(Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if threshold < 0 || micros < threshold.unsigned_abs() {
            return;
        }
        let max_len = self.max_len.load(Relaxed);
        if max_len == 0 {
            return;
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Relaxed),
            time: now_ms / 1000,
            micros,
            args: trim_args(args),
            addr,
            name: name(),
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// Applies a lowered `slowlog-max-len` now rather than at the next slow command.
    pub fn trim(&self) {
        let max_len = self.max_len.load(Relaxed);
        self.entries.lock().truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// The newest `count` entries (all with `None`), newest first.
    pub fn newest<T>(&self, count: Option<usize>, f: impl Fn(&Entry) -> T) -> Vec<T> {
        let entries = self.entries.lock();
        entries
            .iter()
            .take(count.unwrap_or(usize::MAX))
            .map(f)
            .collect()
    }
}

/// Redis's cut: at most 32 arguments, the last of them saying how many more there were, and
/// each argument at most 128 bytes, with how many more bytes it had.
fn trim_args(args: &[Bytes]) -> Vec<Bytes> {
    let keep = if args.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        args.len()
    };
    let mut out: Vec<Bytes> = args
        .iter()
        .take(keep)
        .map(|a| {
            if a.len() > MAX_ARG_LEN {
                let mut v = a.slice(..MAX_ARG_LEN).to_vec();
                v.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                );
                Bytes::from(v)
            } else {
                a.clone()
            }
        })
        .collect();
    if args.len() > MAX_ARGS {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            args.len() - keep
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn keeps_slow_commands_newest_first_within_max_len() {
        let log = SlowLog::default();
        log.slower_than_us.store(100, Relaxed);
        log.max_len.store(2, Relaxed);
        let args = [Bytes::from_static(b"GET"), Bytes::from_static(b"k")];
        log.record(Duration::from_micros(99), &args, 5000, addr(), Bytes::new);
        assert!(log.is_empty());
        for us in [100, 200, 300] {
            log.record(Duration::from_micros(us), &args, 5000, addr(), Bytes::new);
        }
        assert_eq!(
            log.newest(None, |e| (e.id, e.micros, e.time)),
            vec![(2, 300, 5), (1, 200, 5)]
        );
        log.max_len.store(1, Relaxed);
        log.trim();
        assert_eq!(log.len(), 1);
        log.slower_than_us.store(-1, Relaxed);
        log.record(Duration::from_secs(1), &args, 5000, addr(), Bytes::new);
        assert_eq!(log.newest(Some(5), |e| e.id), vec![2]);
        log.reset();
        assert!(log.is_empty());
    }

    #[test]
    fn arguments_are_cut_like_redis() {
        let args: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("a{i}"))).collect();
        let cut = trim_args(&args);
        assert_eq!(cut.len(), 32);
        assert_eq!(&cut[31][..], b"... (9 more arguments)");
        let long = [Bytes::from(vec![b'x'; 130])];
        let cut = trim_args(&long);
        assert!(cut[0].ends_with(b"... (2 more bytes)"));
        assert_eq!(cut[0].len(), 128 + "... (2 more bytes)".len());
    }
}
