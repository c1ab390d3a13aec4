//! MONITOR through the proxy: every command a client of this proxy sends, as the proxy
//! received it, in Redis's line format (`+1339518083.107412 [0 127.0.0.1:60866] "get" "k"`,
//! the address being the proxy's client). Lines go through the monitoring client's pub/sub
//! message queue. With no monitor the cost per command is one atomic load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::time::Instant;

use crate::outbuf::Limit;
use crate::pubsub::Subscriber;

/// A monitor that falls this far behind is disconnected (Redis's replica class, which its
/// monitors belong to: 256 MB hard, 64 MB for 60 s).
const LIMIT: Limit = Limit {
    hard: 256 << 20,
    soft: 64 << 20,
    soft_seconds: 60,
};

#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: RwLock<Vec<Arc<Subscriber>>>,
}

impl Monitors {
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    pub fn add(&self, sub: Arc<Subscriber>) {
        let mut l = self.list.write();
        if !l.iter().any(|s| s.id == sub.id) {
            l.push(sub);
        }
        self.count.store(l.len(), Relaxed);
    }

    pub fn remove(&self, id: u64) {
        let mut l = self.list.write();
        l.retain(|s| s.id != id);
        self.count.store(l.len(), Relaxed);
    }

    /// Sends one command to every monitor; those over their limit are dropped (and closed).
    pub fn feed<'a>(&self, client: SocketAddr, args: impl Iterator<Item = &'a [u8]>) {
        let args: Vec<Bytes> = args.map(Bytes::copy_from_slice).collect();
        let text = shard::monitor_line(SystemTime::now(), &client.to_string(), &args);
        let mut line = Vec::with_capacity(text.len() + 3);
        line.push(b'+');
        line.extend_from_slice(text.as_bytes());
        line.extend_from_slice(b"\r\n");
        let line = Bytes::from(line);
        let now = Instant::now();
        let mut gone = Vec::new();
        for m in self.list.read().iter() {
            if !m.push_line(line.clone(), LIMIT, now) {
                m.kill.cancel();
                gone.push(m.id);
            }
        }
        for id in gone {
            self.remove(id);
        }
    }
}
