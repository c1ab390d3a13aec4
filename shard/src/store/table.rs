//! A slot's RAM table: a hash table of pointers, each to one allocation holding a key and its
//! entry (Redis's `dict` of `dictEntry`s has the same shape).
//!
//! 16384 small tables (about 61 keys each at a million keys) sit anywhere between 44% and
//! 87% full, so the bucket array's size is paid about twice per key. With the key and entry
//! inline in the bucket that was ~97 bytes × 2; a pointer bucket pays 9 bytes × 2 and the key
//! with its entry is one exactly-sized allocation. A lookup reads the bucket array (control
//! bytes filter 127 of 128 non-matching buckets) and then the one node it compares.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::{Entry, Key};

/// One key with its entry, owned by the table.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) key: Key,
    pub(super) entry: Entry,
}

/// Key → entry, with a `HashMap`-like interface over boxed nodes.
#[derive(Default)]
pub(super) struct KeyTable {
    table: HashTable<Box<Node>>,
    /// Seeded per table, as `HashMap`'s default is (keys are client input).
    hasher: foldhash::fast::RandomState,
}

impl KeyTable {
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    #[inline]
    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.table
            .find(self.hasher.hash_one(key), |n| n.key[..] == *key)
            .map(|n| &n.entry)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.table
            .find_mut(self.hasher.hash_one(key), |n| n.key[..] == *key)
            .map(|n| &mut n.entry)
    }

    #[inline]
    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the previous entry.
    pub(super) fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        let h = &self.hasher;
        match self.table.entry(
            h.hash_one(key),
            |n| n.key[..] == *key,
            |n| h.hash_one(&n.key[..]),
        ) {
            TableEntry::Occupied(mut o) => Some(std::mem::replace(&mut o.get_mut().entry, entry)),
            TableEntry::Vacant(v) => {
                v.insert(Box::new(Node {
                    key: Key::from_slice(key),
                    entry,
                }));
                None
            }
        }
    }

    pub(super) fn remove_entry(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let o = self
            .table
            .find_entry(self.hasher.hash_one(key), |n| n.key[..] == *key)
            .ok()?;
        let (n, _) = o.remove();
        let Node { key, entry } = *n;
        Some((key, entry))
    }

    /// The entry for `key`, or it removed when `expired` says so (one probe either way).
    #[inline]
    pub(super) fn get_or_remove(
        &mut self,
        key: &[u8],
        expired: impl FnOnce(&Entry) -> bool,
    ) -> Lookup<'_> {
        match self
            .table
            .find_entry(self.hasher.hash_one(key), |n| n.key[..] == *key)
        {
            Err(_) => Lookup::Absent,
            Ok(o) if expired(&o.get().entry) => {
                let (n, _) = o.remove();
                let Node { key, entry } = *n;
                Lookup::Removed(key, entry)
            }
            Ok(o) => Lookup::Live(&mut o.into_mut().entry),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> + Clone {
        self.table.iter().map(|n| (&n.key, &n.entry))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.table.iter().map(|n| &n.key)
    }

    /// Bytes the table itself holds on the heap: its bucket array and the nodes (not what
    /// the entries' values point to).
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        let buckets = if self.table.capacity() == 0 {
            0
        } else {
            (self.table.capacity() * 8 / 7).next_power_of_two()
        };
        buckets * (std::mem::size_of::<Box<Node>>() + 1)
            + self.table.len() * std::mem::size_of::<Node>()
    }
}

/// What [`KeyTable::get_or_remove`] found.
pub(super) enum Lookup<'a> {
    Absent,
    Removed(Key, Entry),
    Live(&'a mut Entry),
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::*;
    use crate::value::Value;

    fn e(v: u64) -> Entry {
        Entry::new(Value::Str(Bytes::from(v.to_string())), 0, 0)
    }

    fn val(e: &Entry) -> Vec<u8> {
        match &e.value {
            Value::Str(b) => b.to_vec(),
            _ => unreachable!("only strings here"),
        }
    }

    /// Random inserts, replacements, removals and lookups against a `HashMap`.
    #[test]
    fn model() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut t = KeyTable::default();
        let mut m: HashMap<Vec<u8>, u64> = HashMap::new();
        for _ in 0..50_000 {
            // Short keys stay inline in `Key`; long ones spill.
            let len = if rng.bool() { 4 } else { 40 };
            let k: Vec<u8> = format!("{:0len$}", rng.u32(..600)).into_bytes();
            match rng.u8(..5) {
                0 | 1 => {
                    let v = rng.u64(..);
                    let old = t.insert(&k, e(v)).map(|o| val(&o));
                    assert_eq!(
                        old,
                        m.insert(k.clone(), v).map(|o| o.to_string().into_bytes())
                    );
                }
                2 => {
                    let got = t.remove_entry(&k).map(|(kk, o)| (kk.to_vec(), val(&o)));
                    let want = m
                        .remove(&k)
                        .map(|o| (k.clone(), o.to_string().into_bytes()));
                    assert_eq!(got, want);
                }
                3 => {
                    let drop_it = rng.bool();
                    match t.get_or_remove(&k, |_| drop_it) {
                        Lookup::Absent => assert!(!m.contains_key(&k)),
                        Lookup::Removed(kk, o) => {
                            assert_eq!(kk.to_vec(), k);
                            assert_eq!(
                                Some(val(&o)),
                                m.remove(&k).map(|v| v.to_string().into_bytes())
                            );
                        }
                        Lookup::Live(o) => {
                            assert_eq!(Some(val(o)), m.get(&k).map(|v| v.to_string().into_bytes()))
                        }
                    }
                }
                _ => {
                    assert_eq!(
                        t.get(&k).map(val),
                        m.get(&k).map(|v| v.to_string().into_bytes())
                    );
                    assert_eq!(t.contains_key(&k), m.contains_key(&k));
                }
            }
            assert_eq!(t.len(), m.len());
        }
        let mut keys: Vec<Vec<u8>> = t.keys().map(|k| k.to_vec()).collect();
        keys.sort();
        let mut want: Vec<Vec<u8>> = m.keys().cloned().collect();
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(t.iter().count(), m.len());
        assert_eq!(t.is_empty(), m.is_empty());
    }

    /// The table's own cost per key at the fill a slot has at a million keys (61 keys):
    /// well under the 97-byte buckets of a table holding keys and entries inline.
    #[test]
    fn cost_per_key() {
        let mut t = KeyTable::default();
        for i in 0..61 {
            t.insert(format!("small:{i}").as_bytes(), e(i));
        }
        let per_key = t.heap_bytes() / t.len();
        assert!(
            per_key <= std::mem::size_of::<Node>() + 20,
            "{per_key} B per key"
        );
    }
}
