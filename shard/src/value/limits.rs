//! Redis's encoding thresholds (`hash-max-listpack-entries`, `list-max-listpack-size`,
//! `set-max-intset-entries`, `zset-max-listpack-entries`, ... and their old `*-ziplist-*`
//! names), settable at run time with CONFIG SET. They decide what OBJECT ENCODING reports and
//! when a set leaves its intset or a sorted set its listpack; as in Redis, a new limit applies
//! to a value the next time it is written, and a value never converts back.

use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::Relaxed;

/// One snapshot of the thresholds, read once per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub hash_max_listpack_entries: i64,
    pub hash_max_listpack_value: i64,
    /// Positive: elements per listpack node; -1..-5: 4, 8, 16, 32 or 64 KB per node.
    pub list_max_listpack_size: i64,
    pub set_max_intset_entries: i64,
    pub set_max_listpack_entries: i64,
    pub set_max_listpack_value: i64,
    pub zset_max_listpack_entries: i64,
    pub zset_max_listpack_value: i64,
    /// The largest a HyperLogLog's sparse representation grows before it turns dense.
    pub hll_sparse_max_bytes: i64,
}

impl Default for Limits {
    /// Redis 7's defaults.
    fn default() -> Limits {
        Limits {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            list_max_listpack_size: -2,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            hll_sparse_max_bytes: 3000,
        }
    }
}

impl Limits {
    /// The largest a list may be and still be one listpack: (elements, bytes).
    pub fn list_listpack(&self) -> (usize, usize) {
        match self.list_max_listpack_size {
            n if n > 0 => (n as usize, usize::MAX),
            n => (usize::MAX, 4096 << (n.clamp(-5, -1).unsigned_abs() - 1)),
        }
    }

    /// `set-max-intset-entries` as a count.
    pub fn intset_max(&self) -> usize {
        usize::try_from(self.set_max_intset_entries).unwrap_or(0)
    }
}

/// Every CONFIG name, its old alias if any, and the field it sets.
pub const NAMES: [(&str, Option<&str>); 9] = [
    (
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
    ),
    ("hash-max-listpack-value", Some("hash-max-ziplist-value")),
    ("list-max-listpack-size", Some("list-max-ziplist-size")),
    ("set-max-intset-entries", None),
    ("set-max-listpack-entries", None),
    ("set-max-listpack-value", None),
    (
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
    ),
    ("zset-max-listpack-value", Some("zset-max-ziplist-value")),
    ("hll-sparse-max-bytes", None),
];

/// The thresholds of one server, changed by CONFIG SET.
#[derive(Debug)]
pub struct EncodingLimits([AtomicI64; 9]);

impl Default for EncodingLimits {
    fn default() -> EncodingLimits {
        let d = Limits::default();
        EncodingLimits(
            [
                d.hash_max_listpack_entries,
                d.hash_max_listpack_value,
                d.list_max_listpack_size,
                d.set_max_intset_entries,
                d.set_max_listpack_entries,
                d.set_max_listpack_value,
                d.zset_max_listpack_entries,
                d.zset_max_listpack_value,
                d.hll_sparse_max_bytes,
            ]
            .map(AtomicI64::new),
        )
    }
}

impl EncodingLimits {
    pub fn get(&self) -> Limits {
        let v = |i: usize| self.0[i].load(Relaxed);
        Limits {
            hash_max_listpack_entries: v(0),
            hash_max_listpack_value: v(1),
            list_max_listpack_size: v(2),
            set_max_intset_entries: v(3),
            set_max_listpack_entries: v(4),
            set_max_listpack_value: v(5),
            zset_max_listpack_entries: v(6),
            zset_max_listpack_value: v(7),
            hll_sparse_max_bytes: v(8),
        }
    }

    /// The index of a CONFIG name (or its alias), case-insensitively.
    pub fn index(name: &str) -> Option<usize> {
        NAMES.iter().position(|(n, alias)| {
            n.eq_ignore_ascii_case(name) || alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
        })
    }

    pub fn value(&self, index: usize) -> i64 {
        self.0[index].load(Relaxed)
    }

    /// Checks a CONFIG SET value for the threshold at `index`: Redis's ranges and messages.
    pub fn check(index: usize, v: i64) -> Result<i64, String> {
        let (min, max) = if NAMES[index].0 == "list-max-listpack-size" {
            (i64::from(i32::MIN), i64::from(i32::MAX))
        } else {
            (0, i64::MAX)
        };
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "argument must be between {min} and {max} inclusive"
            ))
        }
    }

    pub fn set(&self, index: usize, v: i64) {
        self.0[index].store(v, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_list_sizes() {
        let l = EncodingLimits::default();
        assert_eq!(l.get(), Limits::default());
        let i = EncodingLimits::index("HASH-MAX-ZIPLIST-ENTRIES").expect("alias");
        assert_eq!(NAMES[i].0, "hash-max-listpack-entries");
        l.set(i, 5);
        assert_eq!(l.get().hash_max_listpack_entries, 5);
        assert_eq!(Limits::default().list_listpack(), (usize::MAX, 8192));
        let sized = |n| Limits {
            list_max_listpack_size: n,
            ..Limits::default()
        };
        assert_eq!(sized(-5).list_listpack(), (usize::MAX, 65536));
        assert_eq!(sized(-9).list_listpack(), (usize::MAX, 65536));
        assert_eq!(sized(0).list_listpack(), (usize::MAX, 4096));
        assert_eq!(sized(3).list_listpack(), (3, usize::MAX));
        assert!(EncodingLimits::check(0, -1).is_err());
        assert_eq!(EncodingLimits::index("nope"), None);
    }
}
