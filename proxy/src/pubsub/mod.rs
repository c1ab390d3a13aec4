//! Pub/sub through the proxy: a subscription hub.
//!
//! The proxy subscribes upstream on its clients' behalf and fans the messages out to them, so
//! however many clients of this proxy listen to a channel, the shards see one subscription on
//! one connection per node ([`hub`]). Upstream links ([`link`]) are one RESP2 connection per
//! node in subscribed mode:
//!
//! - classic channels and patterns on ONE node, the *designated* node: in a cluster every
//!   PUBLISH reaches every node, and in the static split PUBLISH is routed to that node too;
//!   when it dies, another is designated and everything is subscribed there again;
//! - keyspace-notification channels (`__keyspace@…`, `__keyevent@…`), and patterns that may
//!   match them, on EVERY node (these events are node-local); from the other nodes only
//!   keyspace channels are passed on, so a published message still arrives once;
//! - shard channels on the owner of their slot, moved when the slot moves (a new slot map, the
//!   node's `sunsubscribe` push, or a `-MOVED` to SSUBSCRIBE).
//!
//! A client's side ([`ClientSubs`], [`Subscriber`]): its own subscription sets (its
//! confirmations carry its own counts, as Redis's do) and a queue of encoded messages, bounded
//! in bytes by `client-output-buffer-limit pubsub` (past the hard limit, or above the soft one
//! for its seconds, the client is disconnected, as Redis does).

pub mod hub;
mod link;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outbuf::Limit;
use crate::protocol::Proto;

pub use hub::Hub;
pub use link::LinkSettings;

/// Queued bytes a subscriber may hold when `client-output-buffer-limit pubsub` sets no hard
/// limit: the proxy still bounds what one slow client may cost it.
pub const CEILING: usize = 256 << 20;

/// Which of Redis's three namespaces a subscription is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    /// The confirmation a (un)subscribe sends: `subscribe`, `punsubscribe`, ...
    pub fn confirmation(self, subscribe: bool) -> &'static str {
        match (self, subscribe) {
            (Kind::Channel, true) => "subscribe",
            (Kind::Channel, false) => "unsubscribe",
            (Kind::Pattern, true) => "psubscribe",
            (Kind::Pattern, false) => "punsubscribe",
            (Kind::Shard, true) => "ssubscribe",
            (Kind::Shard, false) => "sunsubscribe",
        }
    }

    /// The command that (un)subscribes upstream.
    fn command(self, subscribe: bool) -> &'static str {
        match (self, subscribe) {
            (Kind::Channel, true) => "SUBSCRIBE",
            (Kind::Channel, false) => "UNSUBSCRIBE",
            (Kind::Pattern, true) => "PSUBSCRIBE",
            (Kind::Pattern, false) => "PUNSUBSCRIBE",
            (Kind::Shard, true) => "SSUBSCRIBE",
            (Kind::Shard, false) => "SUNSUBSCRIBE",
        }
    }

    /// The kind and direction of a confirmation's name, as a node sends it.
    fn of_confirmation(word: &[u8]) -> Option<(Kind, bool)> {
        Some(match word.to_ascii_lowercase().as_slice() {
            b"subscribe" => (Kind::Channel, true),
            b"unsubscribe" => (Kind::Channel, false),
            b"psubscribe" => (Kind::Pattern, true),
            b"punsubscribe" => (Kind::Pattern, false),
            b"ssubscribe" => (Kind::Shard, true),
            b"sunsubscribe" => (Kind::Shard, false),
            _ => return None,
        })
    }
}

/// A subscription: its namespace and name.
pub type Key = (Kind, Bytes);

const KEYSPACE_PREFIXES: [&[u8]; 2] = [b"__keyspace@", b"__keyevent@"];

/// Whether a channel is a keyspace-notification channel (node-local events).
pub fn is_keyspace_channel(ch: &[u8]) -> bool {
    KEYSPACE_PREFIXES.iter().any(|p| ch.starts_with(p))
}

/// Whether a glob may match a keyspace-notification channel: its literal prefix (up to the
/// first special character) and one of the prefixes agree as far as both go. Conservative: `*`
/// may.
pub fn pattern_may_match_keyspace(pattern: &[u8]) -> bool {
    let lit_end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    let lit = &pattern[..lit_end];
    KEYSPACE_PREFIXES.iter().any(|p| {
        let n = lit.len().min(p.len());
        lit[..n] == p[..n]
    })
}

/// Whether a subscription goes to every node (keyspace notifications), rather than to one.
pub fn every_node(kind: Kind, name: &[u8]) -> bool {
    match kind {
        Kind::Channel => is_keyspace_channel(name),
        Kind::Pattern => pattern_may_match_keyspace(name),
        Kind::Shard => false,
    }
}

/// A client's message queue, as the hub sees it.
pub struct Subscriber {
    pub id: u64,
    resp3: AtomicBool,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued and not yet written to the client.
    queued: AtomicUsize,
    /// Since when `queued` has been above the soft limit.
    soft_since: Mutex<Option<Instant>>,
    /// Cancelled when the client overcame its output buffer limit: its session closes it.
    pub kill: CancellationToken,
}

impl Subscriber {
    pub fn set_proto(&self, proto: Proto) {
        self.resp3.store(proto == Proto::Resp3, Relaxed);
    }

    pub fn resp3(&self) -> bool {
        self.resp3.load(Relaxed)
    }

    /// Queues one encoded message; false when the client is (now) over its limit and must go.
    fn push(&self, msg: Bytes, limit: Limit, now: Instant) -> bool {
        if self.kill.is_cancelled() {
            return false;
        }
        let queued = self.queued.fetch_add(msg.len(), Relaxed) + msg.len();
        let hard = if limit.hard > 0 {
            usize::try_from(limit.hard).unwrap_or(usize::MAX)
        } else {
            CEILING
        };
        if queued > hard {
            return false;
        }
        if limit.soft > 0 && queued as u64 > limit.soft {
            let mut since = self.soft_since.lock();
            match *since {
                None => *since = Some(now),
                Some(t) if now.duration_since(t).as_secs() >= limit.soft_seconds => return false,
                Some(_) => {}
            }
        }
        self.tx.send(msg).is_ok()
    }

    /// Queues a line that is not a pub/sub message (MONITOR); false when the client must go.
    pub fn push_line(&self, line: Bytes, limit: Limit, now: Instant) -> bool {
        self.push(line, limit, now)
    }

    /// `n` bytes were written to the client.
    pub fn written(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Relaxed);
        let left = before.saturating_sub(n);
        if left == 0 {
            *self.soft_since.lock() = None;
        }
    }

    /// Bytes queued for the client (CLIENT LIST's `omem`, tests).
    pub fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }
}

/// A client connection's pub/sub state (owned by its session).
#[derive(Default)]
pub struct ClientSubs {
    pub handle: Option<std::sync::Arc<Subscriber>>,
    pub rx: Option<mpsc::UnboundedReceiver<Bytes>>,
    pub channels: BTreeSet<Bytes>,
    pub patterns: BTreeSet<Bytes>,
    pub shard: BTreeSet<Bytes>,
    /// Subscribe confirmations planned and not yet written: messages wait until they are (a
    /// client reads its confirmation before the channel's messages).
    pub unconfirmed: usize,
}

impl ClientSubs {
    /// Channels and patterns (the count SUBSCRIBE and PSUBSCRIBE confirmations carry).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// The count a confirmation of `kind` carries.
    pub fn count_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.count(),
        }
    }

    /// Redis's `CLIENT_PUBSUB`: subscribed to anything.
    pub fn subscribed(&self) -> bool {
        self.count() + self.shard.len() > 0
    }

    pub fn set(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The queue, created on the first subscription (or MONITOR).
    pub fn handle(&mut self, id: u64, proto: Proto) -> std::sync::Arc<Subscriber> {
        if let Some(h) = &self.handle {
            return h.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let h = std::sync::Arc::new(Subscriber {
            id,
            resp3: AtomicBool::new(proto == Proto::Resp3),
            tx,
            queued: AtomicUsize::new(0),
            soft_since: Mutex::new(None),
            kill: CancellationToken::new(),
        });
        self.handle = Some(h.clone());
        self.rx = Some(rx);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_classification() {
        assert!(is_keyspace_channel(b"__keyspace@0__:foo"));
        assert!(is_keyspace_channel(b"__keyevent@0__:set"));
        assert!(!is_keyspace_channel(b"news"));
        for p in [
            &b"*"[..],
            b"__key*",
            b"__keyspace@*",
            b"__keyevent@0__:*",
            b"_*",
            b"?",
            b"[_]*",
        ] {
            assert!(pattern_may_match_keyspace(p), "{p:?}");
        }
        for p in [&b"news.*"[..], b"__keyz*", b"a?", b"__keyspace"] {
            // `__keyspace` alone has no glob: it matches only itself, not `__keyspace@...`.
            if p == b"__keyspace" {
                continue;
            }
            assert!(!pattern_may_match_keyspace(p), "{p:?}");
        }
        assert!(every_node(Kind::Channel, b"__keyevent@0__:del"));
        assert!(!every_node(Kind::Shard, b"__keyevent@0__:del"));
    }

    #[test]
    fn a_subscriber_over_its_limits_must_go() {
        let mut c = ClientSubs::default();
        let h = c.handle(1, Proto::Resp2);
        let limit = Limit {
            hard: 100,
            soft: 50,
            soft_seconds: 10,
        };
        let t0 = Instant::now();
        assert!(h.push(Bytes::from(vec![0u8; 40]), limit, t0));
        // Above the soft limit: allowed for its seconds.
        assert!(h.push(Bytes::from(vec![0u8; 20]), limit, t0));
        assert!(h.push(Bytes::new(), limit, t0 + std::time::Duration::from_secs(9)));
        assert!(!h.push(Bytes::new(), limit, t0 + std::time::Duration::from_secs(10)));
        // Written out: the soft clock starts again.
        h.written(60);
        assert_eq!(h.queued(), 0);
        assert!(h.push(
            Bytes::from(vec![0u8; 60]),
            limit,
            t0 + std::time::Duration::from_secs(20)
        ));
        // Past the hard limit: at once.
        assert!(!h.push(
            Bytes::from(vec![0u8; 41]),
            limit,
            t0 + std::time::Duration::from_secs(20)
        ));
    }
}
