//! Invalidation links: one dedicated RESP3 connection per shard with `CLIENT TRACKING on BCAST`,
//! so every key change on the shard (a write through any proxy or straight to the shard, an
//! expiry, an eviction) arrives here as an `invalidate` push and drops the key from the near
//! cache. This is standard Redis tracking, so it works the same against Redis and Valkey.
//!
//! A link is coherent only between TRACKING's `+OK` and its first failure; the near cache
//! serves and fills a shard's keys only while that shard's link is coherent. When a link drops
//! (or misses a PING deadline) the cache is cleared, and it is cleared again once the link has
//! resubscribed, because changes made meanwhile were never announced. The links follow the
//! slot map: one per current shard; any change of the map clears the cache too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp3::decode::complete::decode_bytes_mut;
use redis_protocol::resp3::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::HotKeys;
use crate::protocol::Request;
use crate::topology::TopologyCell;

/// How often the link set is reconciled with the slot map.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(20);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One shard's link, as INFO reports it.
pub struct LinkState {
    pub addr: String,
    coherent: AtomicBool,
    pub subscribes: AtomicU64,
    pub drops: AtomicU64,
    pub pushes: AtomicU64,
    stop: CancellationToken,
}

impl LinkState {
    pub fn coherent(&self) -> bool {
        self.coherent.load(SeqCst)
    }
}

/// How links connect.
#[derive(Clone, Debug)]
pub struct LinkSettings {
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// PING pace; a PING unanswered for this long (at least a second) drops the link.
    pub health_interval: Duration,
    /// On demand: subscribe once this proxy has hot keys, unsubscribe after this long without
    /// any. `None`: always subscribed.
    pub idle: Option<Duration>,
}

/// How often an unsubscribed on-demand link looks for hot keys.
const DEMAND_POLL: Duration = Duration::from_millis(50);

/// Keeps one link per shard of the current slot map; clears the cache when the map changes.
pub async fn follow(
    hk: Arc<HotKeys>,
    cell: Arc<TopologyCell>,
    settings: LinkSettings,
    stop: CancellationToken,
) {
    let mut seen_epoch: Option<u64> = None;
    let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(topo) = cell.load() else { continue };
        if seen_epoch == Some(topo.epoch) {
            continue;
        }
        if seen_epoch.is_some()
            && let Some(c) = &hk.cache
        {
            tracing::info!("slot map changed; near cache cleared");
            c.clear();
        }
        seen_epoch = Some(topo.epoch);
        let current = hk.links.load_full();
        let mut next: HashMap<String, Arc<LinkState>> = HashMap::new();
        for b in &topo.backends {
            if let Some(l) = current.get(&b.addr) {
                next.insert(b.addr.clone(), l.clone());
                continue;
            }
            let l = Arc::new(LinkState {
                addr: b.addr.clone(),
                coherent: AtomicBool::new(false),
                subscribes: AtomicU64::new(0),
                drops: AtomicU64::new(0),
                pushes: AtomicU64::new(0),
                stop: stop.child_token(),
            });
            tokio::spawn(run(hk.clone(), l.clone(), settings.clone()));
            next.insert(b.addr.clone(), l);
        }
        for (addr, l) in current.iter() {
            if !next.contains_key(addr) {
                l.stop.cancel();
            }
        }
        hk.links.store(Arc::new(next));
    }
    for l in hk.links.load().values() {
        l.stop.cancel();
    }
}

/// One shard's link: subscribe, apply pushes, and on failure clear, back off, resubscribe.
async fn run(hk: Arc<HotKeys>, link: Arc<LinkState>, settings: LinkSettings) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if settings.idle.is_some() {
            // On demand: nothing is cached without hot keys, so no link is needed.
            while !hk.has_hot_keys() {
                tokio::select! {
                    _ = link.stop.cancelled() => return,
                    _ = tokio::time::sleep(DEMAND_POLL) => {}
                }
            }
        }
        let result = session(&hk, &link, &settings).await;
        let was = link.coherent.swap(false, SeqCst);
        if was && let Some(c) = &hk.cache {
            c.clear();
        }
        match result {
            Ok(()) if link.stop.is_cancelled() => break,
            Ok(()) => {
                tracing::debug!(shard = %link.addr, "invalidation link idle: unsubscribed");
                backoff = BACKOFF_MIN;
                continue;
            }
            Err(e) => {
                if was {
                    link.drops.fetch_add(1, Relaxed);
                    backoff = BACKOFF_MIN;
                    tracing::warn!(shard = %link.addr, error = %e, "invalidation link dropped; near cache off for this shard until resubscribed");
                } else {
                    tracing::debug!(shard = %link.addr, error = %e, "invalidation link not up");
                }
            }
        }
        tokio::select! {
            _ = link.stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Reads one RESP3 frame (setup replies).
async fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<BytesFrame, String> {
    loop {
        match decode_bytes_mut(buf) {
            Ok(Some((f, _, _))) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(format!("protocol error: {e:?}")),
        }
        match stream.read_buf(buf).await {
            Ok(0) => return Err("connection closed by server".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn frame_error(f: &BytesFrame) -> Option<String> {
    match f {
        BytesFrame::SimpleError { data, .. } => Some(data.to_string()),
        BytesFrame::BlobError { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}

async fn setup(
    settings: &LinkSettings,
    addr: &str,
    buf: &mut BytesMut,
) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let hello = match &settings.password {
        Some(p) => Request::from_args(&[
            "HELLO",
            "3",
            "AUTH",
            settings.username.as_deref().unwrap_or("default"),
            p.as_str(),
        ]),
        None => Request::from_args(&["HELLO", "3"]),
    };
    s.write_all(&hello.raw).await.map_err(|e| e.to_string())?;
    let f = read_frame(&mut s, buf).await?;
    if let Some(e) = frame_error(&f) {
        return Err(format!("HELLO 3: {e}"));
    }
    let track = Request::from_args(&["CLIENT", "TRACKING", "on", "BCAST"]);
    s.write_all(&track.raw).await.map_err(|e| e.to_string())?;
    match read_frame(&mut s, buf).await? {
        BytesFrame::SimpleString { data, .. } if data.eq_ignore_ascii_case(b"OK") => Ok(s),
        other => Err(format!("CLIENT TRACKING: {other:?}")),
    }
}

async fn session(hk: &HotKeys, link: &LinkState, settings: &LinkSettings) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let connect = setup(settings, &link.addr, &mut buf);
    let mut stream = tokio::select! {
        _ = link.stop.cancelled() => return Ok(()),
        r = tokio::time::timeout(settings.connect_timeout, connect) => {
            r.map_err(|_| "connect timed out".to_string())??
        }
    };
    // Changes made while this shard had no link were never announced.
    if let Some(c) = &hk.cache {
        c.clear();
    }
    link.coherent.store(true, SeqCst);
    link.subscribes.fetch_add(1, Relaxed);
    tracing::debug!(shard = %link.addr, "invalidation link subscribed");
    let ping_every = settings.health_interval;
    let ping_deadline = settings.health_interval.max(Duration::from_secs(1));
    let mut ping_sent: Option<Instant> = None;
    let mut tick = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let ping = Request::from_args(&["PING"]).raw;
    let mut last_hot = Instant::now();
    loop {
        // Frames already buffered (the setup reads may have read past TRACKING's +OK).
        loop {
            match decode_bytes_mut(&mut buf) {
                Ok(Some((f, _, _))) => apply(hk, link, f, &mut ping_sent),
                Ok(None) => break,
                Err(e) => return Err(format!("protocol error: {e:?}")),
            }
        }
        tokio::select! {
            _ = link.stop.cancelled() => return Ok(()),
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => return Err("connection closed by server".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            },
            _ = tick.tick() => {
                if let Some(idle) = settings.idle {
                    if hk.has_hot_keys() {
                        last_hot = Instant::now();
                    } else if last_hot.elapsed() >= idle {
                        // Unsubscribing drops the cache (the caller clears it).
                        return Ok(());
                    }
                }
                if let Some(t) = ping_sent {
                    if t.elapsed() >= ping_deadline {
                        return Err("PING unanswered".into());
                    }
                } else {
                    stream.write_all(&ping).await.map_err(|e| e.to_string())?;
                    ping_sent = Some(Instant::now());
                }
            }
        }
    }
}

fn apply(hk: &HotKeys, link: &LinkState, f: BytesFrame, ping_sent: &mut Option<Instant>) {
    match f {
        BytesFrame::Push { data, .. } => {
            let mut it = data.into_iter();
            let is_invalidate = matches!(
                it.next(),
                Some(BytesFrame::BlobString { data, .. }) if data.eq_ignore_ascii_case(b"invalidate")
            );
            if !is_invalidate {
                return;
            }
            link.pushes.fetch_add(1, Relaxed);
            let Some(cache) = &hk.cache else { return };
            match it.next() {
                Some(BytesFrame::Array { data: keys, .. }) => {
                    for k in keys {
                        match k {
                            BytesFrame::BlobString { data, .. } => cache.invalidate(&data),
                            BytesFrame::SimpleString { data, .. } => cache.invalidate(&data),
                            _ => {}
                        }
                    }
                }
                // A null key list: the shard was flushed.
                _ => cache.clear(),
            }
        }
        BytesFrame::SimpleString { data, .. } if data.eq_ignore_ascii_case(b"PONG") => {
            *ping_sent = None;
        }
        _ => {}
    }
}
