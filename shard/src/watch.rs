//! WATCH's registry: per key, the connections watching it. A change to a watched key marks
//! each of them dirty, so its next EXEC fails (a null reply). Changes are reported by the
//! same paths as CLIENT TRACKING's invalidations: a write command's keys, the store's keys
//! that vanish by themselves (expired, evicted, migrated away) and FLUSHALL; a key moving
//! between the RAM and warm tiers is no change.
//!
//! Cost when nobody watches: one relaxed atomic load per write.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::Mutex;
use smallvec::SmallVec;

const TABLE_SHARDS: usize = 64;

/// One connection's dirty flag, shared with the registry.
#[derive(Default)]
pub struct Watcher {
    pub id: u64,
    dirty: AtomicBool,
}

impl Watcher {
    pub fn new(id: u64) -> Arc<Watcher> {
        Arc::new(Watcher {
            id,
            dirty: AtomicBool::new(false),
        })
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Relaxed)
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Relaxed);
    }

    pub fn clear(&self) {
        self.dirty.store(false, Relaxed);
    }
}

type Table = HashMap<Bytes, SmallVec<[Arc<Watcher>; 1]>>;

/// The server's watched keys.
pub struct Watches {
    /// Registrations (key, connection) in the tables.
    count: AtomicUsize,
    tables: Box<[Mutex<Table>]>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            count: AtomicUsize::new(0),
            tables: (0..TABLE_SHARDS)
                .map(|_| Mutex::new(Table::new()))
                .collect(),
        }
    }
}

impl Watches {
    /// Whether any key is watched (changes must then be reported).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    /// Keys watched, for INFO.
    pub fn keys(&self) -> usize {
        self.tables.iter().map(|t| t.lock().len()).sum()
    }

    fn table(&self, key: &[u8]) -> &Mutex<Table> {
        &self.tables[crate::tracking::fnv1a(key) as usize % TABLE_SHARDS]
    }

    /// Registers `w` on `key` (a no-op when it already watches it).
    pub fn watch(&self, key: &Bytes, w: &Arc<Watcher>) {
        let mut t = self.table(key).lock();
        let list = t.entry(key.clone()).or_default();
        if !list.iter().any(|x| Arc::ptr_eq(x, w)) {
            list.push(w.clone());
            self.count.fetch_add(1, Relaxed);
        }
    }

    /// Removes `w` from `keys`.
    pub fn unwatch(&self, keys: &[Bytes], w: &Arc<Watcher>) {
        for key in keys {
            let mut t = self.table(key).lock();
            if let Some(list) = t.get_mut(key.as_ref()) {
                let before = list.len();
                list.retain(|x| !Arc::ptr_eq(x, w));
                self.count.fetch_sub(before - list.len(), Relaxed);
                if list.is_empty() {
                    t.remove(key.as_ref());
                }
            }
        }
    }

    /// `key` changed: everyone watching it is dirty.
    #[inline]
    pub fn touch(&self, key: &[u8]) {
        if !self.is_active() {
            return;
        }
        if let Some(list) = self.table(key).lock().get(key) {
            for w in list {
                w.mark_dirty();
            }
        }
    }

    /// Every watched key for which `exists` says yes is touched (FLUSHALL: a watched key
    /// that did not exist is not changed by it, as in Redis).
    pub fn touch_existing(&self, exists: impl Fn(&[u8]) -> bool) {
        if !self.is_active() {
            return;
        }
        for t in self.tables.iter() {
            for (key, list) in t.lock().iter() {
                if exists(key) {
                    list.iter().for_each(|w| w.mark_dirty());
                }
            }
        }
    }
}

/// Keys that vanish by themselves (expired, evicted, migrated away) dirty their watchers.
impl crate::store::KeyListener for Watches {
    fn listening(&self) -> bool {
        self.is_active()
    }

    fn keys_gone(&self, keys: &[(crate::store::Key, crate::store::Gone)]) {
        for (k, _) in keys {
            self.touch(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_marks_watchers_of_that_key_only() {
        let ws = Watches::default();
        let (a, b) = (Watcher::new(1), Watcher::new(2));
        let k = Bytes::from_static(b"k");
        ws.watch(&k, &a);
        ws.watch(&k, &a);
        ws.watch(&Bytes::from_static(b"other"), &b);
        assert!(ws.is_active());
        ws.touch(b"k");
        assert!(a.is_dirty());
        assert!(!b.is_dirty());
        ws.unwatch(&[k], &a);
        ws.unwatch(&[Bytes::from_static(b"other")], &b);
        assert!(!ws.is_active());
        assert_eq!(ws.keys(), 0);
    }

    #[test]
    fn flush_touches_only_existing_keys() {
        let ws = Watches::default();
        let w = Watcher::new(1);
        ws.watch(&Bytes::from_static(b"missing"), &w);
        ws.touch_existing(|k| k == b"present");
        assert!(!w.is_dirty());
        ws.watch(&Bytes::from_static(b"present"), &w);
        ws.touch_existing(|k| k == b"present");
        assert!(w.is_dirty());
    }
}
