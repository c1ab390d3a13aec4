//! Server-assisted client-side caching: `CLIENT TRACKING`, as Redis 6+ implements it.
//!
//! Default mode remembers, per key, the connections that read it since its last change; the
//! first change of the key sends each of them one `invalidate` message and forgets them (they
//! must read the key again to be told again). BCAST mode instead sends every change of a key
//! under one of the connection's prefixes. Messages go to the connection itself as RESP3
//! `>2 invalidate [keys]` pushes, or to the connection named by `REDIRECT`. A `null` key list
//! means "everything" (FLUSHALL, or a queue that grew too long to send key by key).
//!
//! Cost when nobody tracks: one relaxed atomic load per write command.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;
use tokio::sync::Notify;

use crate::protocol::Proto;

const TABLE_SHARDS: usize = 64;
/// Keys queued for one connection beyond which the queue collapses into "invalidate all".
const INBOX_MAX_KEYS: usize = 16 * 1024;

/// What one connection is told, waiting for its task to write it.
#[derive(Default)]
pub struct Inbox {
    state: Mutex<InboxState>,
    /// Cheap check on the connection's hot path.
    pending: AtomicBool,
    /// Set when the connection ends; redirecting connections learn their target is gone.
    closed: AtomicBool,
    pub notify: Notify,
}

#[derive(Default)]
struct InboxState {
    keys: Vec<Bytes>,
    all: bool,
    redir_broken: bool,
}

impl Inbox {
    pub fn has_pending(&self) -> bool {
        self.pending.load(Relaxed)
    }

    pub fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    fn push(&self, key: Option<&[u8]>) -> bool {
        if self.closed.load(Relaxed) {
            return false;
        }
        {
            let mut st = self.state.lock();
            match key {
                Some(_) if st.all => {}
                Some(k) if st.keys.len() < INBOX_MAX_KEYS => {
                    st.keys.push(Bytes::copy_from_slice(k))
                }
                _ => {
                    st.keys.clear();
                    st.all = true;
                }
            }
        }
        self.wake();
        true
    }

    fn redir_broken(&self) {
        self.state.lock().redir_broken = true;
        self.wake();
    }

    fn wake(&self) {
        self.pending.store(true, Relaxed);
        self.notify.notify_one();
    }

    /// Encodes everything queued as push messages (RESP3) into `out`. A RESP2 connection
    /// cannot receive pushes: what it was sent is dropped, as Redis does.
    pub fn drain_into(&self, proto: Proto, out: &mut BytesMut) {
        self.pending.store(false, Relaxed);
        let st = std::mem::take(&mut *self.state.lock());
        if proto != Proto::Resp3 {
            return;
        }
        if st.redir_broken {
            out.put_slice(b">1\r\n$21\r\ntracking-redir-broken\r\n");
        }
        if st.all {
            out.put_slice(b">2\r\n$10\r\ninvalidate\r\n_\r\n");
        } else if !st.keys.is_empty() {
            out.put_slice(b">2\r\n$10\r\ninvalidate\r\n");
            membership::resp::put_len(out, b'*', st.keys.len());
            for k in &st.keys {
                membership::resp::put_len(out, b'$', k.len());
                out.put_slice(k);
                out.put_slice(b"\r\n");
            }
        }
    }
}

/// One connection's `CLIENT TRACKING` settings.
#[derive(Clone, Default)]
pub struct Options {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// Client id receiving the messages; 0 = the connection itself.
    pub redirect: u64,
    pub prefixes: Vec<Bytes>,
}

struct Subscriber {
    opts: Options,
    /// Where messages go (the redirect target's inbox, or the connection's own).
    target: Arc<Inbox>,
    /// The connection's own inbox (told when its redirect target is gone).
    own: Arc<Inbox>,
}

impl Subscriber {
    fn send(&self, key: Option<&[u8]>) {
        if !self.target.push(key) && self.opts.redirect != 0 {
            self.own.redir_broken();
        }
    }
}

type Table = HashMap<Bytes, SmallVec<[u64; 2]>>;

/// The server's tracking state, shared by all connections.
pub struct Tracking {
    /// Connections with tracking on.
    active: AtomicUsize,
    subs: RwLock<HashMap<u64, Arc<Subscriber>>>,
    /// Default mode: key → connections to tell on its next change.
    tables: Box<[Mutex<Table>]>,
    table_keys: AtomicUsize,
    /// Most keys remembered in default mode (0 = unlimited); beyond it keys are invalidated
    /// early to make room (`tracking-table-max-keys`).
    pub max_keys: AtomicU64,
    /// BCAST registrations: (prefix, connection).
    bcast: RwLock<Vec<(Bytes, u64)>>,
    pub invalidations: AtomicU64,
}

impl Tracking {
    pub fn new(max_keys: u64) -> Tracking {
        Tracking {
            active: AtomicUsize::new(0),
            subs: RwLock::new(HashMap::new()),
            tables: (0..TABLE_SHARDS)
                .map(|_| Mutex::new(Table::new()))
                .collect(),
            table_keys: AtomicUsize::new(0),
            max_keys: AtomicU64::new(max_keys),
            bcast: RwLock::new(Vec::new()),
            invalidations: AtomicU64::new(0),
        }
    }

    /// True when some connection tracks keys (writes must then invalidate).
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed) > 0
    }

    pub fn tracked_keys(&self) -> usize {
        self.table_keys.load(Relaxed)
    }

    pub fn clients(&self) -> usize {
        self.active.load(Relaxed)
    }

    fn table(&self, key: &[u8]) -> &Mutex<Table> {
        let h = fnv1a(key) as usize % TABLE_SHARDS;
        &self.tables[h]
    }

    /// Turns tracking on (or changes its options) for connection `id`.
    pub fn enable(&self, id: u64, opts: Options, own: Arc<Inbox>, target: Arc<Inbox>) {
        let mut bcast = self.bcast.write();
        bcast.retain(|(_, c)| *c != id);
        if opts.bcast {
            if opts.prefixes.is_empty() {
                bcast.push((Bytes::new(), id));
            }
            for p in &opts.prefixes {
                bcast.push((p.clone(), id));
            }
        }
        let sub = Arc::new(Subscriber { opts, target, own });
        if self.subs.write().insert(id, sub).is_none() {
            self.active.fetch_add(1, Relaxed);
        }
    }

    /// Turns tracking off for `id` (also when the connection closes). Keys it read stay in
    /// the table until they change; their messages then find no subscriber and are dropped.
    pub fn disable(&self, id: u64) {
        if self.subs.write().remove(&id).is_some() {
            self.active.fetch_sub(1, Relaxed);
            self.bcast.write().retain(|(_, c)| *c != id);
        }
    }

    pub fn options(&self, id: u64) -> Option<Options> {
        self.subs.read().get(&id).map(|s| s.opts.clone())
    }

    /// Remembers that connection `id` read `keys` (default mode).
    pub fn remember<'a>(&self, id: u64, keys: impl Iterator<Item = &'a [u8]>) {
        let max = self.max_keys.load(Relaxed) as usize;
        for key in keys {
            let added = {
                let mut t = self.table(key).lock();
                match t.get_mut(key) {
                    Some(ids) => {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                        false
                    }
                    None => {
                        t.insert(Bytes::copy_from_slice(key), SmallVec::from_elem(id, 1));
                        true
                    }
                }
            };
            if added && self.table_keys.fetch_add(1, Relaxed) + 1 > max && max > 0 {
                self.make_room(key);
            }
        }
    }

    /// Over the key limit: forget another key, telling its readers as if it had changed.
    fn make_room(&self, keep: &[u8]) {
        let start = fnv1a(keep) as usize;
        for i in 0..TABLE_SHARDS {
            let victim = {
                let mut t = self.tables[(start + i) % TABLE_SHARDS].lock();
                let k = t.keys().find(|k| k.as_ref() != keep).cloned();
                k.and_then(|k| t.remove(&k).map(|ids| (k, ids)))
            };
            if let Some((k, ids)) = victim {
                self.table_keys.fetch_sub(1, Relaxed);
                self.notify(&k, &ids, 0);
                return;
            }
        }
    }

    /// `key` changed (by connection `origin`, 0 for the server itself): tell whoever tracks it.
    pub fn invalidate(&self, key: &[u8], origin: u64) {
        if !self.is_active() {
            return;
        }
        let ids = self.table(key).lock().remove(key);
        if let Some(ids) = ids {
            self.table_keys.fetch_sub(1, Relaxed);
            self.notify(key, &ids, origin);
        }
        let bcast = self.bcast.read();
        if bcast.is_empty() {
            return;
        }
        let subs = self.subs.read();
        for (prefix, id) in bcast.iter() {
            if key.starts_with(prefix)
                && let Some(s) = subs.get(id)
                && !(s.opts.noloop && *id == origin)
            {
                s.send(Some(key));
                self.invalidations.fetch_add(1, Relaxed);
            }
        }
    }

    fn notify(&self, key: &[u8], ids: &[u64], origin: u64) {
        let subs = self.subs.read();
        for id in ids {
            if let Some(s) = subs.get(id)
                && !s.opts.bcast
                && !(s.opts.noloop && *id == origin)
            {
                s.send(Some(key));
                self.invalidations.fetch_add(1, Relaxed);
            }
        }
    }

    /// Everything changed (FLUSHALL/FLUSHDB): every tracking connection gets a null message.
    pub fn invalidate_all(&self) {
        for t in self.tables.iter() {
            let mut t = t.lock();
            self.table_keys.fetch_sub(t.len(), Relaxed);
            t.clear();
        }
        for s in self.subs.read().values() {
            s.send(None);
        }
    }
}

impl crate::store::KeyListener for Tracking {
    fn listening(&self) -> bool {
        self.is_active()
    }

    fn keys_gone(&self, keys: &[(crate::store::Key, crate::store::Gone)]) {
        for (k, _) in keys {
            self.invalidate(k, 0);
        }
    }
}

/// FNV-1a: spreads keys over the table shards (no need for a strong hash here).
pub(crate) fn fnv1a(key: &[u8]) -> u32 {
    key.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(inbox: &Inbox) -> Vec<u8> {
        let mut out = BytesMut::new();
        inbox.drain_into(Proto::Resp3, &mut out);
        out.to_vec()
    }

    fn sub(t: &Tracking, id: u64, opts: Options) -> Arc<Inbox> {
        let inbox = Arc::new(Inbox::default());
        t.enable(id, opts, inbox.clone(), inbox.clone());
        inbox
    }

    #[test]
    fn default_mode_tells_readers_once() {
        let t = Tracking::new(0);
        let a = sub(&t, 1, Options::default());
        t.remember(1, [b"k".as_slice()].into_iter());
        assert_eq!(t.tracked_keys(), 1);
        t.invalidate(b"other", 0);
        assert!(!a.has_pending());
        t.invalidate(b"k", 0);
        assert_eq!(drained(&a), b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
        t.invalidate(b"k", 0);
        assert!(!a.has_pending(), "one message per read");
        assert_eq!(t.tracked_keys(), 0);
    }

    #[test]
    fn noloop_skips_own_writes() {
        let t = Tracking::new(0);
        let a = sub(
            &t,
            1,
            Options {
                noloop: true,
                ..Options::default()
            },
        );
        t.remember(1, [b"k".as_slice()].into_iter());
        t.invalidate(b"k", 1);
        assert!(!a.has_pending());
    }

    #[test]
    fn bcast_prefixes() {
        let t = Tracking::new(0);
        let a = sub(
            &t,
            1,
            Options {
                bcast: true,
                prefixes: vec![Bytes::from_static(b"user:")],
                ..Options::default()
            },
        );
        t.invalidate(b"order:1", 0);
        assert!(!a.has_pending());
        t.invalidate(b"user:1", 0);
        t.invalidate(b"user:2", 0);
        assert_eq!(
            drained(&a),
            b">2\r\n$10\r\ninvalidate\r\n*2\r\n$6\r\nuser:1\r\n$6\r\nuser:2\r\n"
        );
    }

    #[test]
    fn redirect_to_closed_target_is_reported() {
        let t = Tracking::new(0);
        let own = Arc::new(Inbox::default());
        let target = Arc::new(Inbox::default());
        t.enable(
            1,
            Options {
                redirect: 2,
                ..Options::default()
            },
            own.clone(),
            target.clone(),
        );
        t.remember(1, [b"k".as_slice()].into_iter());
        target.close();
        t.invalidate(b"k", 0);
        assert_eq!(drained(&own), b">1\r\n$21\r\ntracking-redir-broken\r\n");
    }

    #[test]
    fn table_limit_invalidates_early_and_flush_tells_everyone() {
        let t = Tracking::new(2);
        let a = sub(&t, 1, Options::default());
        for k in [b"a", b"b", b"c", b"d"] {
            t.remember(1, [k.as_slice()].into_iter());
        }
        assert!(t.tracked_keys() <= 2);
        assert!(a.has_pending());
        let _ = drained(&a);
        t.invalidate_all();
        assert_eq!(drained(&a), b">2\r\n$10\r\ninvalidate\r\n_\r\n");
        assert_eq!(t.tracked_keys(), 0);
    }

    #[test]
    fn long_queue_collapses_to_invalidate_all() {
        let t = Tracking::new(0);
        let a = sub(
            &t,
            1,
            Options {
                bcast: true,
                ..Options::default()
            },
        );
        for i in 0..INBOX_MAX_KEYS + 5 {
            t.invalidate(format!("k{i}").as_bytes(), 0);
        }
        assert_eq!(drained(&a), b">2\r\n$10\r\ninvalidate\r\n_\r\n");
    }
}
