//! One upstream link: a RESP2 connection to one node in subscribed mode, holding the hub's
//! subscriptions on that node and handing the node's messages to the hub.
//!
//! The hub says what the link should be subscribed to (`wanted`); the link's task sends the
//! difference (one channel per command, so every command has exactly one reply, matched in
//! order), marks a subscription confirmed on its node's confirmation (clients waiting in
//! SUBSCRIBE are answered then), and on a new connection subscribes everything again. Messages
//! published while a link was down are lost, as they are for a Redis client that reconnects.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hub::Hub;
use super::{Key, Kind};
use crate::backend::conn::roundtrip;
use crate::protocol::{Request, reply_len};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How the link connects.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// PING pace; a PING unanswered for this long (at least a second) drops the link.
    pub health_interval: Duration,
}

#[derive(Default)]
struct State {
    wanted: HashSet<Key>,
    /// Subscribed on the current connection (SUBSCRIBE sent, no UNSUBSCRIBE since).
    sent: HashSet<Key>,
    /// `sent`, and the node confirmed it with nothing newer in flight.
    confirmed: HashSet<Key>,
    /// Keys whose `wanted` and `sent` may differ.
    changed: HashSet<Key>,
    /// (Un)subscribes sent per key and not answered yet.
    inflight: HashMap<Key, u32>,
    /// Clients waiting until the node has answered the last (un)subscribe of a key.
    waiters: HashMap<Key, Vec<oneshot::Sender<()>>>,
}

impl State {
    /// Nothing in flight or to send for `key`: whoever waits for it is released.
    fn release_if_settled(&mut self, key: &Key) {
        if !self.inflight.contains_key(key) && !self.changed.contains(key) {
            self.waiters.remove(key);
        }
    }
}

pub(super) struct Link {
    pub addr: String,
    state: Mutex<State>,
    wake: Notify,
    /// Connected and subscribed.
    pub up: AtomicBool,
    /// Connections failed in a row.
    pub failures: AtomicU32,
    pub stop: CancellationToken,
}

impl Link {
    pub fn new(addr: String, stop: CancellationToken) -> Arc<Link> {
        Arc::new(Link {
            addr,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            up: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            stop,
        })
    }

    /// Subscribes to `key` here; a receiver that completes once the node confirmed it (or the
    /// subscription is given up), or `None` if it is confirmed already.
    pub fn want(&self, key: &Key) -> Option<oneshot::Receiver<()>> {
        let mut st = self.state.lock();
        if st.wanted.insert(key.clone()) {
            st.changed.insert(key.clone());
            self.wake.notify_one();
        }
        if st.confirmed.contains(key) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let waiting = st.waiters.entry(key.clone()).or_default();
        // Clients that gave up waiting (a node down past the backend timeout) are let go.
        waiting.retain(|w| !w.is_closed());
        waiting.push(tx);
        Some(rx)
    }

    /// Unsubscribes from `key` here; a receiver that completes once the node answered the
    /// UNSUBSCRIBE (so PUBLISH no longer counts this proxy), or `None` if nothing was held.
    pub fn unwant(&self, key: &Key) -> Option<oneshot::Receiver<()>> {
        let mut st = self.state.lock();
        if !st.wanted.remove(key) {
            return None;
        }
        st.waiters.remove(key);
        if !st.sent.contains(key) && !st.inflight.contains_key(key) {
            st.changed.remove(key);
            return None;
        }
        st.changed.insert(key.clone());
        self.wake.notify_one();
        let (tx, rx) = oneshot::channel();
        st.waiters.entry(key.clone()).or_default().push(tx);
        Some(rx)
    }

    /// Replaces what the link should hold (the hub's full recomputation).
    pub fn set_wanted(&self, wanted: HashSet<Key>) {
        let mut st = self.state.lock();
        let st = &mut *st;
        for k in st.wanted.symmetric_difference(&wanted) {
            st.changed.insert(k.clone());
        }
        // Subscriptions a node dropped (`sunsubscribe`, an error) are retried.
        for k in wanted.difference(&st.sent) {
            st.changed.insert(k.clone());
        }
        st.waiters.retain(|k, _| wanted.contains(k));
        st.wanted = wanted;
        if !st.changed.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Whether the node holds `key` for this proxy now.
    pub fn holds(&self, key: &Key) -> bool {
        self.state.lock().sent.contains(key)
    }

    /// Subscriptions held on the node.
    pub fn held(&self) -> usize {
        self.state.lock().sent.len()
    }

    /// The commands that bring `sent` to `wanted`, with what each expects back.
    fn changes(&self, fifo: &mut VecDeque<Expect>) -> BytesMut {
        let mut out = BytesMut::new();
        let mut st = self.state.lock();
        let st = &mut *st;
        let changed: Vec<Key> = st.changed.drain().collect();
        for key in changed {
            let want = st.wanted.contains(&key);
            if want == st.sent.contains(&key) {
                st.release_if_settled(&key);
                continue;
            }
            if want {
                st.sent.insert(key.clone());
            } else {
                st.sent.remove(&key);
                st.confirmed.remove(&key);
            }
            encode(&mut out, key.0.command(want), &key.1);
            *st.inflight.entry(key.clone()).or_default() += 1;
            fifo.push_back(Expect::Cmd(key, want));
        }
        out
    }

    /// A new connection holds nothing: everything wanted is sent again.
    fn reset(&self) {
        let mut st = self.state.lock();
        let st = &mut *st;
        st.sent.clear();
        st.confirmed.clear();
        st.inflight.clear();
        st.changed = st.wanted.clone();
        // Unsubscribes waited for are done: the old connection is gone.
        let waiting: Vec<Key> = st.waiters.keys().cloned().collect();
        for k in waiting {
            st.release_if_settled(&k);
        }
    }

    /// The node answered a (un)subscribe for `key`.
    fn answered(&self, key: &Key) {
        let mut st = self.state.lock();
        match st.inflight.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                return;
            }
            _ => {
                st.inflight.remove(key);
            }
        }
        if st.sent.contains(key) {
            st.confirmed.insert(key.clone());
        }
        st.release_if_settled(key);
    }

    /// The node dropped `key` (or refused it): no longer held; retried when the hub
    /// recomputes.
    fn lost(&self, key: &Key) {
        let mut st = self.state.lock();
        st.sent.remove(key);
        st.confirmed.remove(key);
        st.release_if_settled(key);
    }
}

fn encode(out: &mut BytesMut, cmd: &str, arg: &[u8]) {
    out.put_slice(b"*2\r\n");
    membership::resp::put_len(out, b'$', cmd.len());
    out.put_slice(cmd.as_bytes());
    out.put_slice(b"\r\n");
    membership::resp::put_len(out, b'$', arg.len());
    out.put_slice(arg);
    out.put_slice(b"\r\n");
}

/// What a command sent on the link expects back, in order.
enum Expect {
    Cmd(Key, bool),
    Ping,
}

/// The link's task: connects, keeps the subscriptions, reconnects with backoff.
pub(super) async fn run(hub: Arc<Hub>, link: Arc<Link>, settings: LinkSettings) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let result = connection(&hub, &link, &settings).await;
        link.up.store(false, Relaxed);
        if link.stop.is_cancelled() {
            break;
        }
        if let Err(e) = result {
            let n = link.failures.fetch_add(1, Relaxed) + 1;
            if n == 1 {
                tracing::warn!(node = %link.addr, error = %e, "pub/sub link lost; resubscribing");
            } else {
                tracing::debug!(node = %link.addr, error = %e, "pub/sub link not up");
            }
            hub.link_trouble();
        }
        if link.failures.load(Relaxed) <= 1 {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = link.stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn open(settings: &LinkSettings, addr: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    if let Some(pass) = &settings.password {
        let auth = match &settings.username {
            Some(user) => Request::from_args(&["AUTH", user.as_str(), pass.as_str()]),
            None => Request::from_args(&["AUTH", pass.as_str()]),
        };
        let reply = roundtrip(&mut s, &auth.raw).await?;
        if !reply.starts_with(b"+OK") {
            return Err(format!(
                "AUTH: {}",
                String::from_utf8_lossy(&reply).trim_end()
            ));
        }
    }
    Ok(s)
}

async fn connection(hub: &Arc<Hub>, link: &Link, settings: &LinkSettings) -> Result<(), String> {
    let mut stream = tokio::select! {
        _ = link.stop.cancelled() => return Ok(()),
        r = tokio::time::timeout(settings.connect_timeout, open(settings, &link.addr)) => {
            r.map_err(|_| "connect timed out".to_string())??
        }
    };
    link.reset();
    link.up.store(true, Relaxed);
    if link.failures.swap(0, Relaxed) > 0 {
        hub.link_trouble();
    }
    tracing::debug!(node = %link.addr, "pub/sub link up");
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut fifo: VecDeque<Expect> = VecDeque::new();
    let ping_every = settings.health_interval;
    let ping_deadline = settings.health_interval.max(Duration::from_secs(1));
    let mut ping_sent: Option<Instant> = None;
    let mut tick = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let ping = Request::from_args(&["PING"]).raw;
    loop {
        let out = link.changes(&mut fifo);
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
        }
        loop {
            match reply_len(&buf) {
                Ok(Some(n)) => {
                    let raw = buf.split_to(n).freeze();
                    handle(hub, link, raw, &mut fifo, &mut ping_sent)?;
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        tokio::select! {
            _ = link.stop.cancelled() => return Ok(()),
            _ = link.wake.notified() => {}
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => return Err("connection closed by server".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            },
            _ = tick.tick() => {
                if let Some(t) = ping_sent {
                    if t.elapsed() >= ping_deadline {
                        return Err("PING unanswered".into());
                    }
                } else {
                    stream.write_all(&ping).await.map_err(|e| e.to_string())?;
                    fifo.push_back(Expect::Ping);
                    ping_sent = Some(Instant::now());
                }
            }
        }
    }
}

fn bulk(f: Option<&BytesFrame>) -> Option<&Bytes> {
    match f {
        Some(BytesFrame::BulkString(b)) => Some(b),
        _ => None,
    }
}

/// One frame from the node: a message (to the hub), a reply to what the link sent, or a
/// `sunsubscribe` the node sent by itself (the slot moved away).
fn handle(
    hub: &Arc<Hub>,
    link: &Link,
    raw: Bytes,
    fifo: &mut VecDeque<Expect>,
    ping_sent: &mut Option<Instant>,
) -> Result<(), String> {
    let frame = match redis_protocol::resp2::decode::decode_bytes(&raw) {
        Ok(Some((f, _))) => f,
        Ok(None) => return Err("incomplete frame".into()),
        Err(e) => return Err(e.details().to_string()),
    };
    match frame {
        BytesFrame::Array(items) => {
            let Some(word) = bulk(items.first()) else {
                return Ok(());
            };
            match word.as_ref() {
                b"message" | b"smessage" => {
                    if let (Some(ch), 3) = (bulk(items.get(1)), items.len()) {
                        let kind = if word.as_ref() == b"message" {
                            Kind::Channel
                        } else {
                            Kind::Shard
                        };
                        hub.deliver(&link.addr, kind, ch, ch, raw.clone());
                    }
                }
                b"pmessage" => {
                    if let (Some(pat), Some(ch), 4) =
                        (bulk(items.get(1)), bulk(items.get(2)), items.len())
                    {
                        hub.deliver(&link.addr, Kind::Pattern, pat, ch, raw.clone());
                    }
                }
                b"pong" => {
                    if matches!(fifo.front(), Some(Expect::Ping)) {
                        fifo.pop_front();
                    }
                    *ping_sent = None;
                }
                w => {
                    let (Some((kind, sub)), Some(name)) =
                        (Kind::of_confirmation(w), bulk(items.get(1)))
                    else {
                        return Ok(());
                    };
                    let key = (kind, name.clone());
                    let ours =
                        matches!(fifo.front(), Some(Expect::Cmd(k, s)) if *k == key && *s == sub);
                    if ours {
                        fifo.pop_front();
                        link.answered(&key);
                    } else if kind == Kind::Shard && !sub {
                        // The node dropped the shard channel: its slot moved. Subscribed again
                        // at the slot's new owner once the map says who that is.
                        tracing::debug!(node = %link.addr, channel = %String::from_utf8_lossy(name), "shard channel moved away; following it");
                        link.lost(&key);
                        hub.slot_moved();
                    }
                }
            }
        }
        BytesFrame::SimpleString(s) if s.eq_ignore_ascii_case(b"PONG") => {
            if matches!(fifo.front(), Some(Expect::Ping)) {
                fifo.pop_front();
            }
            *ping_sent = None;
        }
        BytesFrame::Error(e) => match fifo.pop_front() {
            Some(Expect::Cmd(key, sub)) => {
                link.answered(&key);
                if sub {
                    link.lost(&key);
                    tracing::debug!(node = %link.addr, error = %e, "subscription refused; retried after a map refresh");
                    hub.refused(&e);
                }
            }
            Some(Expect::Ping) => *ping_sent = None,
            None => {}
        },
        _ => {}
    }
    Ok(())
}
