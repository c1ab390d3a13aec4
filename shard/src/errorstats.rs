//! INFO errorstats: error replies counted by their code (the first word: `ERR`, `WRONGTYPE`,
//! `MOVED` ...), at most 128 codes as Redis (later new codes are counted in the total only).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

const MAX_CODES: usize = 128;

#[derive(Default)]
pub struct ErrorStats {
    /// Every error reply (INFO stats `total_error_replies`).
    pub total: AtomicU64,
    codes: Mutex<Vec<(String, u64)>>,
}

impl ErrorStats {
    /// Counts one error reply (`line` without the leading `-`).
    pub fn record(&self, line: &str) {
        self.total.fetch_add(1, Relaxed);
        let code = line.split(' ').next().unwrap_or("ERR");
        let mut codes = self.codes.lock();
        if let Some((_, n)) = codes.iter_mut().find(|(c, _)| c == code) {
            *n += 1;
        } else if codes.len() < MAX_CODES {
            codes.push((code.to_string(), 1));
        }
    }

    /// `(code, count)`, sorted by code.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut v = self.codes.lock().clone();
        v.sort();
        v
    }

    pub fn reset(&self) {
        self.total.store(0, Relaxed);
        self.codes.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_code() {
        let e = ErrorStats::default();
        e.record("ERR syntax error");
        e.record("WRONGTYPE Operation against a key holding the wrong kind of value");
        e.record("ERR value is not an integer or out of range");
        assert_eq!(e.total.load(Relaxed), 3);
        assert_eq!(
            e.snapshot(),
            vec![("ERR".to_string(), 2), ("WRONGTYPE".to_string(), 1)]
        );
        e.reset();
        assert!(e.snapshot().is_empty());
    }
}
