//! SCAN and HSCAN cursors.
//!
//! A keyspace cursor is `slot << 48 | position`, where a key's position is a fixed 48-bit hash
//! of the key. Within a slot, keys are returned in position order, so a key that exists for the
//! whole iteration is returned exactly once however the tables grow or shrink in between —
//! stronger than Redis's "at least once". Keys that share a position are never split across
//! pages. `COUNT` is a hint: large slots are paged at least 1/64th at a time, bounding the total
//! work of a full iteration.

use std::hash::BuildHasher;

use bytes::Bytes;
use membership::{SLOT_COUNT, Slot};

use super::{Db, HashValue, glob::glob_match};

const POS_BITS: u32 = 48;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

fn position(key: &[u8]) -> u64 {
    static HASHER: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x6175_746f_6361_6368);
    HASHER.hash_one(key) & POS_MASK
}

/// What SCAN keeps of the keys it visits.
pub struct ScanFilter<'a> {
    pub pattern: Option<&'a [u8]>,
    pub type_name: Option<&'a str>,
}

impl ScanFilter<'_> {
    fn keeps(&self, key: &[u8], type_name: &str) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, key, false))
            && self
                .type_name
                .is_none_or(|t| t.eq_ignore_ascii_case(type_name))
    }
}

/// Takes the next page from `(position, item)` pairs at or after `from`: at least `want`
/// items (more to finish a run of equal positions). Returns the page and the next position,
/// or `None` when the items are exhausted.
fn page<T>(mut items: Vec<(u64, T)>, want: usize) -> (Vec<T>, Option<u64>) {
    items.sort_unstable_by_key(|(p, _)| *p);
    let mut cut = want.min(items.len());
    while cut > 0 && cut < items.len() && items[cut].0 == items[cut - 1].0 {
        cut += 1;
    }
    let next = items.get(cut).map(|(p, _)| *p);
    items.truncate(cut);
    (items.into_iter().map(|(_, t)| t).collect(), next)
}

impl Db {
    /// One SCAN step: the next cursor (0 when done) and the keys of this page.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        filter: &ScanFilter<'_>,
        now: u64,
    ) -> (u64, Vec<Bytes>) {
        let (mut slot, mut from) = ((cursor >> POS_BITS) as usize, cursor & POS_MASK);
        let mut out = Vec::new();
        let mut taken = 0;
        while slot < usize::from(SLOT_COUNT) {
            if self.lens[slot].load(std::sync::atomic::Ordering::Relaxed) > 0 {
                let Some(s) = Slot::new(slot as u16) else {
                    break;
                };
                let g = self.slot(s);
                let items: Vec<(u64, (Bytes, bool))> = g
                    .all_keys(now)
                    .map(|(k, t)| (position(k), (Bytes::copy_from_slice(k), filter.keeps(k, t))))
                    .filter(|(p, _)| *p >= from)
                    .collect();
                let want = (count - taken).max((g.len() + g.warm_len()) / 64).max(1);
                drop(g);
                let (keys, next) = page(items, want);
                taken += keys.len();
                out.extend(keys.into_iter().filter(|(_, keep)| *keep).map(|(k, _)| k));
                if let Some(p) = next {
                    return ((slot as u64) << POS_BITS | p, out);
                }
            }
            slot += 1;
            from = 0;
            if taken >= count {
                let next = if slot >= usize::from(SLOT_COUNT) {
                    0
                } else {
                    (slot as u64) << POS_BITS
                };
                return (next, out);
            }
        }
        (0, out)
    }
}

/// One HSCAN step over a hash: next cursor and the (field, value) pairs of this page. Small
/// hashes are returned whole with cursor 0, as Redis does for its compact encoding.
pub fn scan_fields(
    hash: &HashValue,
    cursor: u64,
    count: usize,
    pattern: Option<&[u8]>,
) -> (u64, Vec<(Bytes, Bytes)>) {
    hash.scan(cursor, count, pattern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Entry, Policy, Value};
    use std::collections::HashSet;

    fn db_with(n: usize) -> Db {
        let db = Db::new(0, Policy::NoEviction, 5);
        for i in 0..n {
            let k = Bytes::from(format!("k{i}"));
            db.for_key(&k)
                .insert(&k, Entry::new(Value::Str(Bytes::new()), 0, 0));
        }
        db
    }

    fn full_scan(db: &Db, count: usize, mut between: impl FnMut(usize)) -> Vec<Bytes> {
        let filter = ScanFilter {
            pattern: None,
            type_name: None,
        };
        let (mut cursor, mut all, mut calls) = (0, Vec::new(), 0);
        loop {
            let (next, keys) = db.scan(cursor, count, &filter, 0);
            all.extend(keys);
            calls += 1;
            between(calls);
            if next == 0 {
                return all;
            }
            cursor = next;
        }
    }

    #[test]
    fn returns_every_key_exactly_once() {
        let db = db_with(5000);
        let keys = full_scan(&db, 10, |_| {});
        let set: HashSet<_> = keys.iter().collect();
        assert_eq!(keys.len(), 5000);
        assert_eq!(set.len(), 5000);
    }

    #[test]
    fn keys_present_throughout_survive_concurrent_growth_and_deletes() {
        let db = db_with(2000);
        let keys = full_scan(&db, 7, |call| {
            // Add keys and delete others between calls; the original k0..k999 stay.
            for j in 0..20 {
                let k = Bytes::from(format!("new{call}:{j}"));
                db.for_key(&k)
                    .insert(&k, Entry::new(Value::Str(Bytes::new()), 0, 0));
            }
            let victim = format!("k{}", 1000 + call % 1000);
            db.for_key(victim.as_bytes()).remove(victim.as_bytes());
        });
        let set: HashSet<_> = keys.iter().cloned().collect();
        for i in 0..1000 {
            assert!(set.contains(&Bytes::from(format!("k{i}"))), "k{i} missing");
        }
        assert_eq!(set.len(), keys.len(), "no duplicates");
    }

    #[test]
    fn hscan_pages_large_hashes() {
        let mut h = HashValue::default();
        for i in 0..1000 {
            h.insert(Bytes::from(format!("f{i}")), Bytes::from_static(b"v"));
        }
        let (mut cursor, mut seen) = (0, HashSet::new());
        loop {
            let (next, page) = scan_fields(&h, cursor, 10, None);
            for (f, _) in page {
                assert!(seen.insert(f));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 1000);
    }
}
