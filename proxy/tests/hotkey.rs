//! Hot keys and the near cache over in-process AutoCache shards: detection, serving from the
//! proxy's memory, invalidation by writes through another proxy or straight to a shard, the
//! read-vs-invalidate race, read-your-writes, and a link that drops and resubscribes.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A low threshold and a short window so tests make keys hot quickly.
fn hot_config(seeds: &[String]) -> proxy::Config {
    proxy::Config {
        hotkey_threshold: 20,
        hotkey_window: Duration::from_millis(100),
        hotkey_sample: 1,
        // Tests hold a shard's reply for a while (the race tests); the health check's PING
        // queues behind it on the same connection and must not time out on a slow machine.
        health_interval: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(10),
        // Links subscribed from the start (the on-demand mode has its own test).
        near_cache_link_idle: Duration::ZERO,
        ..config(seeds)
    }
}

fn seeds(shards: &[TestShard]) -> Vec<String> {
    shards.iter().map(|s| s.addr.to_string()).collect()
}

/// The shard that owns `key` in the proxy's static split of `shards`.
fn owner(shards: &[TestShard], key: &str) -> std::net::SocketAddr {
    let map = membership::SlotMap::split_evenly(&seeds(shards)).expect("map");
    let i = map
        .owner(membership::Slot::for_key(key.as_bytes()))
        .expect("owned");
    shards[i].addr
}

/// Reads `cmd` until the proxy answers it from the near cache (bounded in count and time).
async fn until_cached(raw: &mut Raw, cmd: &[&str], want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..20_000 {
        let before = info_int(&raw.text(&["INFO", "hotkeys"]).await, "near_cache_hits");
        for _ in 0..10 {
            assert_eq!(raw.text(cmd).await, want);
        }
        let after = info_int(&raw.text(&["INFO", "hotkeys"]).await, "near_cache_hits");
        if after > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} never served from the near cache"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{cmd:?} never served from the near cache");
}

/// Reads `key` through `raw` until it is `want` (bounded); returns how long that took.
async fn until_value(raw: &mut Raw, key: &str, want: &str) -> Duration {
    let start = Instant::now();
    let want = bulk(want);
    loop {
        if raw.text(&["GET", key]).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{key} never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn coherent_links(raw: &mut Raw) -> String {
    let info = raw.text(&["INFO", "hotkeys"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("near_cache_links_coherent:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn until_links(raw: &mut Raw, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while coherent_links(raw).await != want {
        assert!(Instant::now() < deadline, "links never {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_is_detected_and_served_from_the_near_cache() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::start(hot_config(&seeds(&shards))).await;
    let mut raw = proxy.raw().await;
    until_links(&mut raw, "2/2").await;
    assert_eq!(raw.text(&["SET", "hot", "v1"]).await, "+OK\r\n");
    // One field: HGETALL's field order is the shard's hash order.
    assert_eq!(raw.text(&["HSET", "h", "f", "x"]).await, ":1\r\n");
    for i in 0..50 {
        raw.text(&["SET", &format!("cold:{i}"), "c"]).await;
    }
    until_cached(&mut raw, &["GET", "hot"], &bulk("v1")).await;

    // Served without touching a shard.
    let sent = backend_requests(&mut raw).await;
    for _ in 0..200 {
        assert_eq!(raw.text(&["GET", "hot"]).await, bulk("v1"));
    }
    assert_eq!(
        backend_requests(&mut raw).await,
        sent,
        "GETs were forwarded"
    );

    // The admin view lists it with its rate once a window has ended (the cache takes a key
    // read twice in a window before that); a cold key is not hot.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (info, line) = loop {
        assert_eq!(raw.text(&["GET", "hot"]).await, bulk("v1"));
        let info = raw.text(&["INFO", "hotkeys"]).await;
        let line = info
            .lines()
            .find(|l| l.contains("name=hot,"))
            .unwrap_or_else(|| panic!("hot key not listed: {info}"))
            .to_string();
        if line.ends_with("hot=1") {
            break (info, line);
        }
        assert!(Instant::now() < deadline, "never hot: {line}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let rate: f64 = line
        .split("rate=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|r| r.parse().ok())
        .expect("rate");
    assert!(rate >= 20.0, "{line}");
    assert!(!info.contains("name=cold:1,"), "{info}");
    assert!(info_int(&info, "near_cache_keys") >= 1, "{info}");

    // Hashes: HGET and HGETALL, RESP2 and RESP3 shapes from the same cached reply.
    until_cached(&mut raw, &["HGET", "h", "f"], &bulk("x")).await;
    let all = "*2\r\n$1\r\nf\r\n$1\r\nx\r\n";
    until_cached(&mut raw, &["HGETALL", "h"], all).await;
    let mut r3 = proxy.raw().await;
    assert!(r3.text(&["HELLO", "3"]).await.starts_with('%'));
    for _ in 0..20 {
        assert_eq!(
            r3.text(&["HGETALL", "h"]).await,
            "%1\r\n$1\r\nf\r\n$1\r\nx\r\n"
        );
    }
    // A cached miss is a null in each protocol.
    until_cached(&mut raw, &["GET", "absent"], "$-1\r\n").await;
    assert_eq!(r3.text(&["GET", "absent"]).await, "_\r\n");

    // Writes through this proxy are read back at once (read-your-writes), by every command
    // that writes: SET, HSET, DEL, MSET (fanned out), FLUSHALL.
    assert_eq!(raw.text(&["SET", "hot", "v2"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["GET", "hot"]).await, bulk("v2"));
    assert_eq!(raw.text(&["HSET", "h", "f", "z"]).await, ":0\r\n");
    assert_eq!(raw.text(&["HGET", "h", "f"]).await, bulk("z"));
    until_cached(&mut raw, &["GET", "hot"], &bulk("v2")).await;
    assert_eq!(
        raw.text(&["MSET", "hot", "v3", "cold:1", "c", "cold:2", "c"])
            .await,
        "+OK\r\n"
    );
    assert_eq!(raw.text(&["GET", "hot"]).await, bulk("v3"));
    until_cached(&mut raw, &["GET", "hot"], &bulk("v3")).await;
    assert_eq!(raw.text(&["DEL", "hot"]).await, ":1\r\n");
    assert_eq!(raw.text(&["GET", "hot"]).await, "$-1\r\n");
    assert_eq!(raw.text(&["SET", "hot", "v4"]).await, "+OK\r\n");
    until_cached(&mut raw, &["GET", "hot"], &bulk("v4")).await;
    assert_eq!(raw.text(&["FLUSHALL"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["GET", "hot"]).await, "$-1\r\n");

    // Pipelined: a write and the read after it in one batch.
    assert_eq!(raw.text(&["SET", "hot", "p0"]).await, "+OK\r\n");
    until_cached(&mut raw, &["GET", "hot"], &bulk("p0")).await;
    let mut req = Vec::new();
    for i in 1..=50 {
        req.extend(encode(&["SET", "hot", &format!("p{i}")]));
        req.extend(encode(&["GET", "hot"]));
    }
    raw.send(&req).await;
    for i in 1..=50 {
        assert_eq!(String::from_utf8_lossy(&raw.reply().await), "+OK\r\n");
        assert_eq!(
            String::from_utf8_lossy(&raw.reply().await),
            bulk(&format!("p{i}"))
        );
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_names_can_be_hidden() {
    let shard = TestShard::default().await;
    let cfg = proxy::Config {
        hotkey_hide_names: true,
        ..hot_config(&[shard.addr.to_string()])
    };
    let proxy = Proxy::start(cfg).await;
    let mut raw = proxy.raw().await;
    until_links(&mut raw, "1/1").await;
    until_cached(&mut raw, &["GET", "secret-name"], "$-1\r\n").await;
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert!(!info.contains("secret-name"), "{info}");
    assert!(info.contains("key0:name=#"), "{info}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_another_proxy_or_a_shard_invalidate_the_copy() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let a = Proxy::start(hot_config(&seeds(&shards))).await;
    let b = Proxy::start(hot_config(&seeds(&shards))).await;
    let mut ra = a.raw().await;
    let mut rb = b.raw().await;
    until_links(&mut ra, "2/2").await;
    until_links(&mut rb, "2/2").await;
    for key in ["k1", "k2", "{x}k3"] {
        assert_eq!(rb.text(&["SET", key, "old"]).await, "+OK\r\n");
        until_cached(&mut ra, &["GET", key], &bulk("old")).await;
        // Through proxy B.
        assert_eq!(rb.text(&["SET", key, "new"]).await, "+OK\r\n");
        let took = until_value(&mut ra, key, "new").await;
        assert!(took < Duration::from_secs(2), "{key}: {took:?}");
        // Cached again, then straight to the shard that owns it.
        until_cached(&mut ra, &["GET", key], &bulk("new")).await;
        let mut direct = Raw::connect(owner(&shards, key)).await;
        assert_eq!(direct.text(&["SET", key, "direct"]).await, "+OK\r\n");
        until_value(&mut ra, key, "direct").await;
        // Expiry on the shard invalidates too.
        until_cached(&mut ra, &["GET", key], &bulk("direct")).await;
        assert_eq!(rb.text(&["PEXPIRE", key, "30"]).await, ":1\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while ra.text(&["GET", key]).await != "$-1\r\n" {
            assert!(Instant::now() < deadline, "{key} never expired through A");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let info = ra.text(&["INFO", "hotkeys"]).await;
    assert!(info_int(&info, "near_cache_invalidations") >= 6, "{info}");
    a.stop().await;
    b.stop().await;
}

/// Fills started (completed or discarded by a racing invalidation) so far.
async fn fills_started(raw: &mut Raw) -> u64 {
    let info = raw.text(&["INFO", "hotkeys"]).await;
    info_int(&info, "near_cache_fills") + info_int(&info, "near_cache_fills_discarded")
}

/// A key read again is cached while the cache has room, although it is far from the hot
/// threshold (while the cache is nearly empty, a key read once is); it is kept coherent like a
/// hot key, and the cache keeps to its budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_read_again_are_cached_within_budget_and_kept_coherent() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let cold = |seeds: &[String]| proxy::Config {
        hotkey_threshold: 1_000_000,
        near_cache_bytes: 8 * 1024,
        ..hot_config(seeds)
    };
    let a = Proxy::start(cold(&seeds(&shards))).await;
    let b = Proxy::start(cold(&seeds(&shards))).await;
    let mut ra = a.raw().await;
    let mut rb = b.raw().await;
    until_links(&mut ra, "2/2").await;
    assert_eq!(rb.text(&["SET", "k", "old"]).await, "+OK\r\n");
    until_cached(&mut ra, &["GET", "k"], &bulk("old")).await;
    let info = ra.text(&["INFO", "hotkeys"]).await;
    assert_eq!(info_int(&info, "hotkeys"), 0, "{info}");
    // Under a quarter of the budget in use: a first read fills.
    assert!(info_int(&info, "near_cache_bytes") < 2 * 1024, "{info}");
    let before = fills_started(&mut ra).await;
    assert_eq!(ra.text(&["GET", "first"]).await, "$-1\r\n");
    assert_eq!(fills_started(&mut ra).await, before + 1);
    assert_eq!(rb.text(&["SET", "k", "new"]).await, "+OK\r\n");
    until_value(&mut ra, "k", "new").await;
    until_cached(&mut ra, &["GET", "k"], &bulk("new")).await;
    let mut direct = Raw::connect(owner(&shards, "k")).await;
    assert_eq!(direct.text(&["SET", "k", "direct"]).await, "+OK\r\n");
    until_value(&mut ra, "k", "direct").await;

    // 400 keys of ~100 B each read twice: far more than 8 KiB. Over a few windows the
    // cache drops the oldest down to 3/4 of its budget.
    let value = "x".repeat(100);
    for i in 0..400 {
        let key = format!("many:{i}");
        assert_eq!(rb.text(&["SET", &key, &value]).await, "+OK\r\n");
        for _ in 0..2 {
            assert_eq!(ra.text(&["GET", &key]).await, bulk(&value));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = ra.text(&["INFO", "hotkeys"]).await;
        let bytes = info_int(&info, "near_cache_bytes");
        assert!(bytes <= 8 * 1024, "{info}");
        if bytes < 6 * 1024 && info_int(&info, "near_cache_keys") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "cache never shrank: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Over a quarter of the budget in use (and under 3/4): a first read does not fill, a
    // second one does.
    let info = ra.text(&["INFO", "hotkeys"]).await;
    assert!(info_int(&info, "near_cache_bytes") >= 2 * 1024, "{info}");
    let before = fills_started(&mut ra).await;
    assert_eq!(ra.text(&["GET", "once"]).await, "$-1\r\n");
    assert_eq!(fills_started(&mut ra).await, before);
    // The doorkeeper skips a read while the window's tick holds the sketch: a few tries.
    let mut filled = false;
    for _ in 0..20 {
        assert_eq!(ra.text(&["GET", "once"]).await, "$-1\r\n");
        if fills_started(&mut ra).await == before + 1 {
            filled = true;
            break;
        }
    }
    let info = ra.text(&["INFO", "hotkeys"]).await;
    assert!(filled, "a key read again was not cached: {info}");
    // The newest keys are the ones kept.
    until_cached(&mut ra, &["GET", "many:399"], &bulk(&value)).await;
    a.stop().await;
    b.stop().await;
}

/// Readers on proxy A race a writer on proxy B over a few hot keys. Fills and invalidations
/// interleave freely; after every write, A must reach the written value and never fall back to
/// an older one (a stale fill cached after its invalidation would pin the old value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_reads_and_invalidations_never_leave_a_stale_value() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let a = Proxy::start(hot_config(&seeds(&shards))).await;
    let b = Proxy::start(hot_config(&seeds(&shards))).await;
    let mut ra = a.raw().await;
    let mut rb = b.raw().await;
    until_links(&mut ra, "2/2").await;
    until_links(&mut rb, "2/2").await;
    let keys = ["r0", "r1", "r2"];
    for k in keys {
        assert_eq!(rb.text(&["SET", k, "0"]).await, "+OK\r\n");
        until_cached(&mut ra, &["GET", k], &bulk("0")).await;
    }
    // Background readers keep fills racing with the invalidations (bounded by a flag and
    // a count).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for n in 0..4 {
        let stop = stop.clone();
        let addr = a.addr;
        readers.push(tokio::spawn(async move {
            let mut r = Raw::connect(addr).await;
            let mut req = Vec::new();
            for k in keys {
                req.extend(encode(&["GET", k]));
            }
            for _ in 0..200_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                r.send(&req).await;
                for _ in keys {
                    r.reply().await;
                }
                if n == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for round in 1..=150 {
        let k = keys[round % keys.len()];
        let v = round.to_string();
        assert_eq!(rb.text(&["SET", k, &v]).await, "+OK\r\n");
        until_value(&mut ra, k, &v).await;
        for _ in 0..20 {
            assert_eq!(
                ra.text(&["GET", k]).await,
                bulk(&v),
                "round {round}: {k} went stale"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    let info = ra.text(&["INFO", "hotkeys"]).await;
    assert!(info_int(&info, "near_cache_hits") > 1000, "{info}");
    a.stop().await;
    b.stop().await;
}

/// By default a proxy subscribes its invalidation links only while it has hot keys, and drops
/// them (and the cache) after `near-cache-link-idle-ms` without any: uniform traffic costs the
/// shards no invalidation pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_subscribed_on_demand_and_dropped_when_idle() {
    let shard = TestShard::default().await;
    let cfg = proxy::Config {
        near_cache_link_idle: Duration::from_millis(300),
        ..hot_config(&[shard.addr.to_string()])
    };
    let proxy = Proxy::start(cfg).await;
    let mut raw = proxy.raw().await;
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert!(
        !info.contains("subscribes=1"),
        "no hot key, no link: {info}"
    );
    assert_eq!(raw.text(&["SET", "k", "v1"]).await, "+OK\r\n");
    // Reading k makes it hot: the link comes up and k is served from the cache.
    until_cached(&mut raw, &["GET", "k"], &bulk("v1")).await;
    assert_eq!(coherent_links(&mut raw).await, "1/1");
    // No reads: k cools down, and after the idle time the link is dropped with the cache.
    until_links(&mut raw, "0/1").await;
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert_eq!(info_int(&info, "near_cache_keys"), 0, "{info}");
    // A write straight to the shard while unsubscribed is never served stale.
    let mut direct = Raw::connect(shard.addr).await;
    assert_eq!(direct.text(&["SET", "k", "v2"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["GET", "k"]).await, bulk("v2"));
    until_cached(&mut raw, &["GET", "k"], &bulk("v2")).await;
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert!(info.contains("subscribes=2"), "{info}");
    assert!(
        info.contains("drops=0"),
        "an idle unsubscribe is not a drop: {info}"
    );
    // Coherent again once resubscribed.
    assert_eq!(direct.text(&["SET", "k", "v3"]).await, "+OK\r\n");
    until_value(&mut raw, "k", "v3").await;
    proxy.stop().await;
    shard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_stops_the_cache_until_resubscribed() {
    let shard = TestShard::default().await;
    let addr = shard.addr;
    let proxy = Proxy::start(hot_config(&[addr.to_string()])).await;
    let mut raw = proxy.raw().await;
    until_links(&mut raw, "1/1").await;
    assert_eq!(raw.text(&["SET", "k", "before"]).await, "+OK\r\n");
    until_cached(&mut raw, &["GET", "k"], &bulk("before")).await;

    // The shard goes away: the link drops and the cache is emptied, not served.
    shard.stop().await;
    until_links(&mut raw, "0/1").await;
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert_eq!(info_int(&info, "near_cache_keys"), 0, "{info}");
    assert!(info.contains("drops=1"), "{info}");
    let r = raw.text(&["GET", "k"]).await;
    assert!(r.starts_with('-'), "served {r:?} with the shard down");

    // A new shard on the same address, written to directly (unannounced to the proxy).
    let shard = TestShard::start_with(&addr.to_string(), |_| {}).await;
    let mut direct = Raw::connect(addr).await;
    assert_eq!(direct.text(&["SET", "k", "after"]).await, "+OK\r\n");
    until_links(&mut raw, "1/1").await;
    until_value(&mut raw, "k", "after").await;
    until_cached(&mut raw, &["GET", "k"], &bulk("after")).await;
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert!(info.contains("subscribes=2"), "{info}");
    // Coherent again: a direct write is seen.
    assert_eq!(direct.text(&["SET", "k", "again"]).await, "+OK\r\n");
    until_value(&mut raw, "k", "again").await;
    proxy.stop().await;
    shard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_off_forwards_every_read() {
    let shard = TestShard::default().await;
    let cfg = proxy::Config {
        near_cache: false,
        ..hot_config(&[shard.addr.to_string()])
    };
    let proxy = Proxy::start(cfg).await;
    let mut raw = proxy.raw().await;
    assert_eq!(raw.text(&["SET", "k", "v"]).await, "+OK\r\n");
    let sent = backend_requests(&mut raw).await;
    for _ in 0..300 {
        assert_eq!(raw.text(&["GET", "k"]).await, bulk("v"));
    }
    assert_eq!(backend_requests(&mut raw).await, sent + 300);
    let info = raw.text(&["INFO", "hotkeys"]).await;
    assert!(info.contains("near_cache:off"), "{info}");
    // Detection still runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw.text(&["INFO", "hotkeys"]).await.contains("name=k,") {
        assert!(Instant::now() < deadline, "k never listed");
        for _ in 0..20 {
            raw.text(&["GET", "k"]).await;
        }
    }
    proxy.stop().await;
}

/// A scripted standalone shard for the race: it answers HELLO / CLIENT TRACKING like a real
/// one, sends `invalidate` pushes when told to, and can hold the reply to a GET it has already
/// read, so a test can interleave "read at the shard" and "invalidation" exactly.
struct Scripted {
    addr: std::net::SocketAddr,
    st: std::sync::Arc<ScriptState>,
    task: tokio::task::JoinHandle<()>,
}

/// A held GET: the value it read, and the trigger that lets its reply go.
type Held = (String, tokio::sync::oneshot::Sender<()>);
type Link = (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    tokio_util::sync::CancellationToken,
);

#[derive(Default)]
struct ScriptState {
    value: parking_lot::Mutex<String>,
    gets: std::sync::atomic::AtomicUsize,
    /// Hold the next GET's reply: (value read, release) goes to the test.
    hold: parking_lot::Mutex<Option<tokio::sync::mpsc::Sender<Held>>>,
    links: parking_lot::Mutex<Vec<Link>>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start() -> Scripted {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let st: std::sync::Arc<ScriptState> = std::sync::Arc::default();
        let st2 = st.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let st = st2.clone();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
                    let writer = tokio::spawn(async move {
                        while let Some(b) = rx.recv().await {
                            if w.write_all(&b).await.is_err() {
                                return;
                            }
                        }
                    });
                    let mut buf = bytes::BytesMut::new();
                    let closed = tokio_util::sync::CancellationToken::new();
                    loop {
                        let read = tokio::select! {
                            _ = closed.cancelled() => break,
                            read = r.read_buf(&mut buf) => read,
                        };
                        match read {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        while let Ok(Some(req)) = proxy::protocol::next_request(&mut buf, 1 << 20) {
                            let argv: Vec<String> = req
                                .args()
                                .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
                                .collect();
                            let reply = match argv[0].as_str() {
                                "CLUSTER" => {
                                    "-ERR This instance has cluster support disabled\r\n".into()
                                }
                                "HELLO" => "%1\r\n+server\r\n+scripted\r\n".into(),
                                "CLIENT" if argv.get(1).map(String::as_str) == Some("TRACKING") => {
                                    st.links.lock().push((tx.clone(), closed.clone()));
                                    "+OK\r\n".into()
                                }
                                "PING" => "+PONG\r\n".into(),
                                // The near cache's fills read the TTL behind the value.
                                "PTTL" => ":-1\r\n".into(),
                                "GET" => {
                                    st.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    let v = st.value.lock().clone();
                                    let hold = st.hold.lock().take();
                                    if let Some(h) = hold {
                                        let (rel_tx, rel_rx) = tokio::sync::oneshot::channel();
                                        let _ = h.send((v.clone(), rel_tx)).await;
                                        let _ = rel_rx.await;
                                    }
                                    bulk(&v)
                                }
                                _ => "-ERR scripted shard: unexpected command\r\n".into(),
                            };
                            if tx.send(reply.into_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                    writer.abort();
                });
            }
        });
        Scripted { addr, st, task }
    }

    fn set(&self, v: &str) {
        *self.st.value.lock() = v.to_string();
    }

    /// A write at the shard: the value changes and every tracking link gets the push.
    async fn write(&self, key: &str, v: &str) {
        self.set(v);
        let push = format!(">2\r\n$10\r\ninvalidate\r\n*1\r\n{}", bulk(key));
        let links = self.st.links.lock().clone();
        for (l, _) in links {
            let _ = l.send(push.clone().into_bytes()).await;
        }
    }

    /// Closes every tracking link's connection.
    fn drop_links(&self) {
        for (_, closed) in self.st.links.lock().drain(..) {
            closed.cancel();
        }
    }

    fn hold_next_get(&self) -> tokio::sync::mpsc::Receiver<Held> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        *self.st.hold.lock() = Some(tx);
        rx
    }

    fn gets(&self) -> usize {
        self.st.gets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn until_field(raw: &mut Raw, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_int(&raw.text(&["INFO", "hotkeys"]).await, name) < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The race, step by step: a fill's read happens at the shard, then the key changes and its
/// invalidation arrives, then the old reply reaches the proxy. The old value goes to the client
/// that asked (its read began before the write) but is not cached: the next read gets the new
/// value. A coalesced waiter on that fill reads for itself. Same with a link drop instead of a
/// push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overtaken_by_an_invalidation_is_not_cached() {
    let shard = Scripted::start().await;
    let proxy = Proxy::start(hot_config(&[shard.addr.to_string()])).await;
    let mut raw = proxy.raw().await;
    until_links(&mut raw, "1/1").await;
    shard.set("v0");
    until_cached(&mut raw, &["GET", "k"], &bulk("v0")).await;

    for round in 1..=5u64 {
        let old = format!("v{}", 2 * round - 2);
        let new = format!("v{}", 2 * round - 1);
        // Drop the cached copy (a write of the same value), so the next read is a fill.
        let inv = info_int(
            &raw.text(&["INFO", "hotkeys"]).await,
            "near_cache_invalidations",
        );
        shard.write("k", &old).await;
        until_field(&mut raw, "near_cache_invalidations", inv + 1).await;

        let mut held = shard.hold_next_get();
        let mut filler = proxy.raw().await;
        filler.send(&encode(&["GET", "k"])).await;
        let (read, release) = held.recv().await.expect("held read");
        assert_eq!(read, old);
        // A second client misses too and waits for that fill.
        let mut waiter = proxy.raw().await;
        let coalesced = info_int(
            &raw.text(&["INFO", "hotkeys"]).await,
            "near_cache_coalesced",
        );
        waiter.send(&encode(&["GET", "k"])).await;
        until_field(&mut raw, "near_cache_coalesced", coalesced + 1).await;

        // The key changes (push, or on odd rounds the link drops) before the old reply lands.
        let inv = info_int(
            &raw.text(&["INFO", "hotkeys"]).await,
            "near_cache_invalidations",
        );
        let clears = info_int(&raw.text(&["INFO", "hotkeys"]).await, "near_cache_clears");
        if round % 2 == 1 {
            shard.write("k", &new).await;
            until_field(&mut raw, "near_cache_invalidations", inv + 1).await;
        } else {
            shard.set(&new);
            shard.drop_links();
            until_field(&mut raw, "near_cache_clears", clears + 1).await;
        }
        // The waiter was sent to read for itself: it sees the new value.
        assert_eq!(String::from_utf8_lossy(&waiter.reply().await), bulk(&new));
        let discarded = info_int(
            &raw.text(&["INFO", "hotkeys"]).await,
            "near_cache_fills_discarded",
        );
        let _ = release.send(());
        assert_eq!(String::from_utf8_lossy(&filler.reply().await), bulk(&old));
        until_field(&mut raw, "near_cache_fills_discarded", discarded + 1).await;
        if round % 2 == 0 {
            until_links(&mut raw, "1/1").await;
        }
        // Never the old value again; the new one is cached afresh.
        let gets = shard.gets();
        assert_eq!(raw.text(&["GET", "k"]).await, bulk(&new), "round {round}");
        assert!(
            shard.gets() > gets,
            "round {round}: the stale reply was cached"
        );
        until_cached(&mut raw, &["GET", "k"], &bulk(&new)).await;
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_never_serves_a_key_past_its_ttl() {
    // hz 1: the shards' sweep finds an expired key up to a second or more late, and only then
    // announces it; the proxy must not need the announcement.
    let mut shards = Vec::new();
    for _ in 0..3 {
        shards.push(TestShard::start_with("127.0.0.1:0", |c| c.hz = 1).await);
    }
    let proxy = Proxy::start(near_ttl::near_cache_config(&seeds(&shards))).await;
    let mut raw = proxy.raw().await;
    near_ttl::until_coherent(&mut raw, 3).await;
    near_ttl::every_ttl_way_expires_in_the_near_cache(&mut raw, &|k| owner(&shards, k), false)
        .await;
}
