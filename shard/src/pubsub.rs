//! Pub/sub: the server's registry of subscriptions and the delivery of messages to subscribers.
//!
//! Three namespaces, as Redis 7 has them: channels (SUBSCRIBE), patterns (PSUBSCRIBE, Redis
//! globs matched against the channel a message is published to) and shard channels
//! (SSUBSCRIBE, keyed by their slot in cluster mode; patterns never see them).
//!
//! Delivery: the publisher appends the message to each receiver's [`Subscriber`] queue and
//! wakes its connection (the same `Notify` CLIENT TRACKING's inbox uses); the connection
//! encodes and writes it in its own task, so a slow subscriber never blocks a publisher. The
//! queue is what Redis calls the client's output buffer: past the pubsub class's hard limit,
//! or past its soft limit for longer than the soft seconds (`client-output-buffer-limit
//! pubsub 32mb 8mb 60`), the client is disconnected and its queue dropped.
//!
//! Locks: a client's own subscription sets, then the registry's maps; a publisher takes a
//! map's read lock, then each receiver's queue. Nothing takes them the other way round.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::protocol::Proto;
use crate::store::glob::glob_match;
use crate::tracking::Inbox;

/// Which of the three namespaces a subscription is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

/// One message waiting in a subscriber's queue, encoded when written (the connection's
/// protocol decides between a RESP2 array and a RESP3 push).
enum Msg {
    /// `message` or `smessage`.
    Message {
        shard: bool,
        channel: Bytes,
        payload: Bytes,
    },
    Pmessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    /// `sunsubscribe <channel> <count>`: the server dropped the subscription (its slot went
    /// to another node).
    Sunsubscribed { channel: Bytes, count: usize },
    /// A MONITOR line, sent as a status reply (`+1339518083.107412 [0 ...] "keys" "*"`).
    Monitor(Bytes),
}

impl Msg {
    /// What the message counts against the output buffer limit: its encoded size.
    fn size(&self) -> usize {
        // Headers: `*3\r\n$7\r\nmessage\r\n` and a `$<len>\r\n...\r\n` per bulk.
        const BULK: usize = 16;
        match self {
            Msg::Message {
                channel, payload, ..
            } => 20 + 2 * BULK + channel.len() + payload.len(),
            Msg::Pmessage {
                pattern,
                channel,
                payload,
            } => 20 + 3 * BULK + pattern.len() + channel.len() + payload.len(),
            Msg::Sunsubscribed { channel, .. } => 40 + BULK + channel.len(),
            Msg::Monitor(line) => 3 + line.len(),
        }
    }

    fn encode(&self, proto: Proto, out: &mut BytesMut) {
        let head = if proto == Proto::Resp3 { b'>' } else { b'*' };
        match self {
            Msg::Message {
                shard,
                channel,
                payload,
            } => {
                membership::resp::put_len(out, head, 3);
                put_bulk(out, if *shard { b"smessage" } else { b"message" });
                put_bulk(out, channel);
                put_bulk(out, payload);
            }
            Msg::Pmessage {
                pattern,
                channel,
                payload,
            } => {
                membership::resp::put_len(out, head, 4);
                put_bulk(out, b"pmessage");
                put_bulk(out, pattern);
                put_bulk(out, channel);
                put_bulk(out, payload);
            }
            Msg::Sunsubscribed { channel, count } => {
                membership::resp::put_len(out, head, 3);
                put_bulk(out, b"sunsubscribe");
                put_bulk(out, channel);
                membership::resp::put_len(out, b':', *count);
            }
            Msg::Monitor(line) => {
                out.put_u8(b'+');
                out.put_slice(line);
                out.put_slice(b"\r\n");
            }
        }
    }
}

fn put_bulk(out: &mut BytesMut, b: &[u8]) {
    membership::resp::put_len(out, b'$', b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// `client-output-buffer-limit` for one client class: bytes (0 = none) and seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

/// The three classes of `client-output-buffer-limit`, in Redis's order. Only the pubsub class
/// is enforced (replies of normal clients are written as they are produced; there are no
/// replicas); the others are kept so CONFIG GET/SET round-trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub normal: Limit,
    pub replica: Limit,
    pub pubsub: Limit,
}

impl Default for Limits {
    /// Redis's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Limits {
        Limits {
            normal: Limit {
                hard: 0,
                soft: 0,
                soft_secs: 0,
            },
            replica: Limit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_secs: 60,
            },
            pubsub: Limit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_secs: 60,
            },
        }
    }
}

impl Limits {
    /// CONFIG GET's rendering: `normal 0 0 0 slave 268435456 67108864 60 pubsub ...`.
    pub fn render(&self) -> String {
        [
            ("normal", self.normal),
            ("slave", self.replica),
            ("pubsub", self.pubsub),
        ]
        .iter()
        .map(|(n, l)| format!("{n} {} {} {}", l.hard, l.soft, l.soft_secs))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// CONFIG SET's syntax: `<class> <hard> <soft> <soft seconds>` repeated; every group is
    /// checked before any applies. Errors are Redis's texts.
    pub fn parse(&self, text: &str) -> Result<Limits, &'static str> {
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        if !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.");
        }
        let mut out = *self;
        for g in words.chunks_exact(4) {
            let [class, hard, soft, secs] = g else {
                continue;
            };
            let class = match class.to_ascii_lowercase().as_str() {
                "normal" => &mut out.normal,
                "slave" | "replica" => &mut out.replica,
                "pubsub" => &mut out.pubsub,
                _ => return Err("Invalid client class specified in buffer limit configuration."),
            };
            let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
            *class = Limit {
                hard: membership::settings::parse_memory(hard).ok_or(bad)?,
                soft: membership::settings::parse_memory(soft).ok_or(bad)?,
                soft_secs: secs.parse::<u64>().map_err(|_| bad)?,
            };
        }
        Ok(out)
    }
}

/// One connection's side of pub/sub: what it is subscribed to, and the messages waiting to be
/// written to it. Created with the connection (it lives in its `ClientHandle`).
pub struct Subscriber {
    pub id: u64,
    subs: Mutex<Subscriptions>,
    /// Subscription counts, for the subscribed-mode check on every command and CLIENT LIST.
    channels: AtomicUsize,
    patterns: AtomicUsize,
    shard: AtomicUsize,
    queue: Mutex<Queue>,
    pending: AtomicBool,
    /// Set once the connection ends or is disconnected for its output buffer: messages are
    /// then dropped.
    closed: AtomicBool,
    /// The connection's wake-up (shared with CLIENT TRACKING's inbox) and its kill switch.
    wake: Arc<Inbox>,
    kill: CancellationToken,
}

#[derive(Default)]
struct Subscriptions {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard: BTreeSet<Bytes>,
}

impl Subscriptions {
    fn set(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }
}

#[derive(Default)]
struct Queue {
    msgs: VecDeque<Msg>,
    bytes: usize,
    /// Since when the queue has been over the soft limit.
    soft_since: Option<Instant>,
}

impl Subscriber {
    pub fn new(id: u64, wake: Arc<Inbox>, kill: CancellationToken) -> Subscriber {
        Subscriber {
            id,
            subs: Mutex::default(),
            channels: AtomicUsize::new(0),
            patterns: AtomicUsize::new(0),
            shard: AtomicUsize::new(0),
            queue: Mutex::default(),
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake,
            kill,
        }
    }

    /// Channels and patterns (the count SUBSCRIBE and PSUBSCRIBE confirmations carry).
    pub fn count(&self) -> usize {
        self.channels.load(Relaxed) + self.patterns.load(Relaxed)
    }

    /// Shard channels (the count of SSUBSCRIBE's confirmations).
    pub fn shard_count(&self) -> usize {
        self.shard.load(Relaxed)
    }

    /// The count a confirmation of `kind` carries.
    pub fn count_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard_count(),
            _ => self.count(),
        }
    }

    /// `(sub, psub, ssub)` for CLIENT LIST.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.channels.load(Relaxed),
            self.patterns.load(Relaxed),
            self.shard.load(Relaxed),
        )
    }

    /// Whether the connection is in subscribed mode (Redis's `CLIENT_PUBSUB` flag).
    #[inline]
    pub fn subscribed(&self) -> bool {
        self.count() + self.shard_count() > 0
    }

    /// The channels (or patterns) of `kind` this connection is subscribed to.
    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        self.subs.lock().set(kind).iter().cloned().collect()
    }

    fn counter(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    #[inline]
    pub fn has_pending(&self) -> bool {
        self.pending.load(Relaxed)
    }

    /// Encodes queued messages into `out` until it holds `max` bytes or more; true when
    /// messages remain.
    pub fn drain_into(&self, proto: Proto, out: &mut BytesMut, max: usize) -> bool {
        let mut q = self.queue.lock();
        while out.len() < max {
            let Some(m) = q.msgs.pop_front() else { break };
            q.bytes = q.bytes.saturating_sub(m.size());
            m.encode(proto, out);
        }
        let more = !q.msgs.is_empty();
        if !more {
            q.soft_since = None;
        }
        self.pending.store(more, Relaxed);
        more
    }

    /// Stops delivery for good (the connection is ending).
    pub fn close(&self) {
        self.closed.store(true, Relaxed);
        let mut q = self.queue.lock();
        q.msgs.clear();
        q.bytes = 0;
    }

    /// Queues a server notice (not subject to the output buffer limit).
    fn notice(&self, msg: Msg) {
        if self.closed.load(Relaxed) {
            return;
        }
        {
            let mut q = self.queue.lock();
            q.bytes += msg.size();
            q.msgs.push_back(msg);
        }
        self.pending.store(true, Relaxed);
        self.wake.notify.notify_one();
    }

    /// Queues a MONITOR line; a monitor that falls behind by more than `limit` is
    /// disconnected (Redis applies the replica class to monitors). True while still open.
    pub fn monitor_line(&self, line: Bytes, limit: Limit, now: Instant) -> bool {
        self.push(Msg::Monitor(line), limit, now);
        !self.closed.load(Relaxed)
    }

    /// Queues `msg`, or disconnects the client when the queue is over its limit.
    fn push(&self, msg: Msg, limit: Limit, now: Instant) {
        if self.closed.load(Relaxed) {
            return;
        }
        let over = {
            let mut q = self.queue.lock();
            q.bytes += msg.size();
            q.msgs.push_back(msg);
            let bytes = q.bytes as u64;
            let hard = limit.hard > 0 && bytes >= limit.hard;
            let soft = limit.soft > 0 && bytes >= limit.soft;
            let soft_expired = match (soft, q.soft_since) {
                (false, _) => {
                    q.soft_since = None;
                    false
                }
                (true, None) => {
                    q.soft_since = Some(now);
                    limit.soft_secs == 0
                }
                (true, Some(t)) => now.duration_since(t).as_secs() >= limit.soft_secs,
            };
            if hard || soft_expired {
                q.msgs.clear();
                q.bytes = 0;
                Some(bytes)
            } else {
                None
            }
        };
        match over {
            Some(bytes) => {
                self.closed.store(true, Relaxed);
                tracing::warn!(
                    client = self.id,
                    bytes,
                    "closing pub/sub client over its output buffer limit (client-output-buffer-limit pubsub)"
                );
                self.kill.cancel();
            }
            None => {
                self.pending.store(true, Relaxed);
                self.wake.notify.notify_one();
            }
        }
    }
}

type Map = HashMap<Bytes, Vec<Arc<Subscriber>>>;

/// The server's subscriptions, shared by all connections.
pub struct PubSub {
    channels: RwLock<Map>,
    patterns: RwLock<Map>,
    shard: RwLock<Map>,
    /// Subscriptions of any kind, server-wide: a publish with none returns at once (keyspace
    /// notifications publish on every write while they are on).
    total: AtomicUsize,
    limits: RwLock<Limits>,
    /// Clients disconnected for their output buffer (INFO `client_output_buffer_limit_disconnections`).
    pub disconnections: AtomicU64,
}

impl Default for PubSub {
    fn default() -> PubSub {
        PubSub {
            channels: RwLock::default(),
            patterns: RwLock::default(),
            shard: RwLock::default(),
            total: AtomicUsize::new(0),
            limits: RwLock::new(Limits::default()),
            disconnections: AtomicU64::new(0),
        }
    }
}

impl PubSub {
    fn map(&self, kind: Kind) -> &RwLock<Map> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    pub fn limits(&self) -> Limits {
        *self.limits.read()
    }

    pub fn set_limits(&self, l: Limits) {
        *self.limits.write() = l;
    }

    /// Subscribes `sub` to `name`; false if it already was.
    pub fn subscribe(&self, sub: &Arc<Subscriber>, kind: Kind, name: &Bytes) -> bool {
        let mut own = sub.subs.lock();
        if !own.set(kind).insert(name.clone()) {
            return false;
        }
        self.map(kind)
            .write()
            .entry(name.clone())
            .or_default()
            .push(sub.clone());
        sub.counter(kind).fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        true
    }

    /// Unsubscribes `sub` from `name`; false if it was not subscribed.
    pub fn unsubscribe(&self, sub: &Subscriber, kind: Kind, name: &[u8]) -> bool {
        let mut own = sub.subs.lock();
        if !own.set(kind).remove(name) {
            return false;
        }
        self.forget(sub, kind, name);
        true
    }

    /// Removes `sub` from the registry's entry for `name` (already gone from its own set).
    fn forget(&self, sub: &Subscriber, kind: Kind, name: &[u8]) {
        let mut map = self.map(kind).write();
        if let Some(list) = map.get_mut(name) {
            list.retain(|s| s.id != sub.id);
            if list.is_empty() {
                map.remove(name);
            }
        }
        sub.counter(kind).fetch_sub(1, Relaxed);
        self.total.fetch_sub(1, Relaxed);
    }

    /// Unsubscribes `sub` from everything of `kind`; returns the names, in order.
    pub fn unsubscribe_all(&self, sub: &Subscriber, kind: Kind) -> Vec<Bytes> {
        let mut own = sub.subs.lock();
        let names = std::mem::take(own.set(kind));
        for n in &names {
            self.forget(sub, kind, n);
        }
        names.into_iter().collect()
    }

    /// The connection ends (or RESET): everything it was subscribed to is dropped.
    pub fn remove_client(&self, sub: &Subscriber) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            self.unsubscribe_all(sub, kind);
        }
    }

    /// Publishes `payload` on `channel` (a shard channel when `shard`); returns how many
    /// clients received it (a client matching through several patterns counts once per
    /// pattern, as in Redis).
    pub fn publish(&self, channel: &[u8], payload: &[u8], shard: bool) -> usize {
        if self.total.load(Relaxed) == 0 {
            return 0;
        }
        let limit = self.limits.read().pubsub;
        let now = Instant::now();
        let mut receivers = 0;
        let (channel_b, payload_b) = (
            Bytes::copy_from_slice(channel),
            Bytes::copy_from_slice(payload),
        );
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        if let Some(list) = self.map(kind).read().get(channel) {
            for s in list {
                self.deliver(
                    s,
                    Msg::Message {
                        shard,
                        channel: channel_b.clone(),
                        payload: payload_b.clone(),
                    },
                    limit,
                    now,
                );
                receivers += 1;
            }
        }
        if shard {
            return receivers;
        }
        for (pattern, list) in self.patterns.read().iter() {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            for s in list {
                self.deliver(
                    s,
                    Msg::Pmessage {
                        pattern: pattern.clone(),
                        channel: channel_b.clone(),
                        payload: payload_b.clone(),
                    },
                    limit,
                    now,
                );
                receivers += 1;
            }
        }
        receivers
    }

    fn deliver(&self, s: &Subscriber, msg: Msg, limit: Limit, now: Instant) {
        let was_closed = s.closed.load(Relaxed);
        s.push(msg, limit, now);
        if !was_closed && s.closed.load(Relaxed) {
            self.disconnections.fetch_add(1, Relaxed);
        }
    }

    /// Drops every subscription to the shard channels `gone` picks (their slot now belongs to
    /// another node), telling each subscriber with a `sunsubscribe` message, as Redis Cluster
    /// does. Returns how many subscriptions were dropped.
    pub fn drop_shard_channels(&self, gone: impl Fn(&[u8]) -> bool) -> usize {
        if self.shard.read().is_empty() {
            return 0;
        }
        // Collected first: a client's own lock is taken before the map's (see the module).
        let doomed: Vec<(Bytes, Vec<Arc<Subscriber>>)> = self
            .shard
            .read()
            .iter()
            .filter(|(c, _)| gone(c))
            .map(|(c, subs)| (c.clone(), subs.clone()))
            .collect();
        let mut dropped = 0;
        for (channel, subs) in doomed {
            for s in subs {
                if self.unsubscribe(&s, Kind::Shard, &channel) {
                    dropped += 1;
                    let count = s.shard_count();
                    s.notice(Msg::Sunsubscribed {
                        channel: channel.clone(),
                        count,
                    });
                }
            }
        }
        dropped
    }

    /// Whether anyone is subscribed to anything (keyspace notifications skip their work
    /// otherwise).
    pub fn is_active(&self) -> bool {
        self.total.load(Relaxed) > 0
    }

    /// Active channels (or shard channels) matching `pattern` (all without one).
    pub fn channel_names(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.map(kind)
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` (patterns excluded), as PUBSUB NUMSUB counts them.
    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.map(kind).read().get(channel).map_or(0, Vec::len)
    }

    /// Distinct channels, patterns or shard channels with a subscriber (INFO, PUBSUB NUMPAT).
    pub fn len(&self, kind: Kind) -> usize {
        self.map(kind).read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> Arc<Subscriber> {
        Arc::new(Subscriber::new(
            id,
            Arc::default(),
            CancellationToken::new(),
        ))
    }

    fn drained(s: &Subscriber, proto: Proto) -> Vec<u8> {
        let mut out = BytesMut::new();
        while s.drain_into(proto, &mut out, usize::MAX) {}
        out.to_vec()
    }

    #[test]
    fn channels_patterns_and_shard_channels_are_apart() {
        let ps = PubSub::default();
        let a = client(1);
        assert!(ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"news")));
        assert!(!ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"news")));
        assert!(ps.subscribe(&a, Kind::Pattern, &Bytes::from_static(b"n*")));
        assert!(ps.subscribe(&a, Kind::Shard, &Bytes::from_static(b"news")));
        assert_eq!((a.count(), a.shard_count()), (2, 1));
        assert_eq!(ps.publish(b"news", b"hi", false), 2);
        assert_eq!(
            drained(&a, Proto::Resp2),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n\
              *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(ps.publish(b"news", b"s", true), 1);
        assert_eq!(
            drained(&a, Proto::Resp3),
            b">3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$1\r\ns\r\n"
        );
        ps.remove_client(&a);
        assert!(!a.subscribed());
        assert_eq!(ps.publish(b"news", b"hi", false), 0);
        assert_eq!(ps.len(Kind::Channel) + ps.len(Kind::Pattern), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_hard_limit_the_client_is_cut_off() {
        let ps = PubSub::default();
        ps.set_limits(Limits {
            // Ten messages of 153 bytes (`*3 $7 message $1 c $100 ...`, as counted).
            pubsub: Limit {
                hard: 1530,
                soft: 0,
                soft_secs: 0,
            },
            ..Limits::default()
        });
        let a = client(1);
        ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"c"));
        for _ in 0..9 {
            ps.publish(b"c", &[b'x'; 100], false);
        }
        assert!(!a.kill.is_cancelled());
        ps.publish(b"c", &[b'x'; 100], false);
        assert!(a.kill.is_cancelled());
        assert_eq!(ps.disconnections.load(Relaxed), 1);
        assert_eq!(drained(&a, Proto::Resp2), b"", "its queue is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_soft_limit_for_too_long_the_client_is_cut_off() {
        let ps = PubSub::default();
        ps.set_limits(Limits {
            pubsub: Limit {
                hard: 0,
                soft: 500,
                soft_secs: 2,
            },
            ..Limits::default()
        });
        let a = client(1);
        ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"c"));
        for _ in 0..6 {
            ps.publish(b"c", &[b'x'; 100], false);
        }
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        ps.publish(b"c", b"x", false);
        assert!(!a.kill.is_cancelled(), "over the soft limit for 1s only");
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        ps.publish(b"c", b"x", false);
        assert!(a.kill.is_cancelled());
    }

    #[test]
    fn limits_parse_and_render_as_redis() {
        let l = Limits::default();
        assert_eq!(
            l.render(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let l2 = l.parse("pubsub 1mb 512kb 5").expect("valid");
        assert_eq!(
            l2.pubsub,
            Limit {
                hard: 1 << 20,
                soft: 512 << 10,
                soft_secs: 5
            }
        );
        assert_eq!(l2.normal, l.normal);
        assert!(l.parse("pubsub 1mb 512kb").is_err());
        assert!(l.parse("master 1 1 1").is_err());
        assert!(l.parse("pubsub x 1 1").is_err());
    }
}
