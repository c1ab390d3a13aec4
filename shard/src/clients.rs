//! The registry of connected clients behind CLIENT LIST / KILL / INFO and INFO clients.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// What the server knows about one connection; shared between its task and CLIENT commands.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    created_ms: u64,
    last_active_ms: AtomicU64,
    resp: AtomicU8,
    meta: Mutex<ClientMeta>,
    /// Cancelled by CLIENT KILL (and, as a child of the server token, by shutdown).
    pub kill: CancellationToken,
    /// Invalidation messages (CLIENT TRACKING) waiting to be written to this connection.
    pub inbox: Arc<crate::tracking::Inbox>,
    /// Its pub/sub subscriptions and the messages waiting for it (woken through `inbox`).
    pub pubsub: Arc<crate::pubsub::Subscriber>,
}

#[derive(Default)]
struct ClientMeta {
    name: Bytes,
    lib_name: Bytes,
    lib_ver: Bytes,
    last_cmd: &'static str,
}

impl ClientHandle {
    pub fn name(&self) -> Bytes {
        self.meta.lock().name.clone()
    }

    pub fn set_name(&self, name: Bytes) {
        self.meta.lock().name = name;
    }

    pub fn set_lib(&self, name: Option<Bytes>, ver: Option<Bytes>) {
        let mut m = self.meta.lock();
        if let Some(n) = name {
            m.lib_name = n;
        }
        if let Some(v) = ver {
            m.lib_ver = v;
        }
    }

    /// Records activity after a batch of commands (one lock per batch, not per command).
    pub fn record_activity(&self, now_ms: u64, last_cmd: &'static str) {
        self.last_active_ms.store(now_ms, Relaxed);
        self.meta.lock().last_cmd = last_cmd;
    }

    pub fn set_resp(&self, v: u8) {
        self.resp.store(v, Relaxed);
    }

    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms) / 1000
    }

    /// One `CLIENT LIST` line (without the trailing newline).
    pub fn info_line(&self, now_ms: u64) -> String {
        let m = self.meta.lock();
        let (sub, psub, ssub) = self.pubsub.counts();
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db=0 sub={sub} psub={psub} ssub={ssub} multi=-1 \
             watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 \
             events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            String::from_utf8_lossy(&m.name),
            self.age_secs(now_ms),
            now_ms.saturating_sub(self.last_active_ms.load(Relaxed)) / 1000,
            // `P`: subscribed to something (Redis's CLIENT_PUBSUB), else `N`: no flags.
            if self.pubsub.subscribed() { "P" } else { "N" },
            if m.last_cmd.is_empty() {
                "NULL"
            } else {
                m.last_cmd
            },
            self.resp.load(Relaxed),
            String::from_utf8_lossy(&m.lib_name),
            String::from_utf8_lossy(&m.lib_ver),
        );
        s
    }
}

/// All connected clients, by id.
#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

impl Clients {
    /// Registers a connection unless `maxclients` are already connected.
    pub fn register(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        now_ms: u64,
        max: usize,
        parent: &CancellationToken,
    ) -> Option<Arc<ClientHandle>> {
        let mut map = self.map.lock();
        if map.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let inbox: Arc<crate::tracking::Inbox> = Arc::default();
        let kill = parent.child_token();
        let pubsub = Arc::new(crate::pubsub::Subscriber::new(
            id,
            inbox.clone(),
            kill.clone(),
        ));
        let h = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            created_ms: now_ms,
            last_active_ms: AtomicU64::new(now_ms),
            resp: AtomicU8::new(2),
            meta: Mutex::new(ClientMeta::default()),
            kill,
            inbox,
            pubsub,
        });
        map.insert(id, h.clone());
        Some(h)
    }

    pub fn unregister(&self, id: u64) {
        self.map.lock().remove(&id);
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.map.lock().get(&id).cloned()
    }

    pub fn count(&self) -> usize {
        self.map.lock().len()
    }

    pub fn snapshot(&self) -> Vec<Arc<ClientHandle>> {
        self.map.lock().values().cloned().collect()
    }
}
