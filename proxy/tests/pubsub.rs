//! Pub/sub through the proxy's subscription hub: what a subscriber receives through the proxy
//! against what it receives from a real `redis-server` (byte for byte, RESP2 and RESP3), the
//! `redis` crate and redis-py, one upstream subscription for thousands of local subscribers,
//! keyspace notifications of every shard, a subscriber that does not read, a designated node
//! that dies, and SSUBSCRIBE following a slot migration in a shard cluster.
//!
//! Needs `redis-server` (differential) and redis-py (`python3-redis`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip those parts when they are missing.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures::StreamExt;

/// The proxy's own INFO field (`INFO stats`).
async fn proxy_stat(raw: &mut Raw, field: &str) -> u64 {
    info_int(&raw.text(&["INFO", "stats"]).await, field)
}

/// One side of a scenario: a subscriber and a publisher connection. Through the proxy, a
/// publish step waits until the hub has queued the messages the node reported sending it (the
/// node's PUBLISH reply counts them), so the next step sees them as a client of Redis would.
struct Side {
    sub: Raw,
    publ: Raw,
    /// The proxy's own connection for its INFO (None: a redis-server).
    hub: Option<Raw>,
    marks: usize,
}

impl Side {
    async fn new(addr: SocketAddr, resp3: bool, proxy: bool) -> Side {
        let mut sub = Raw::connect(addr).await;
        if resp3 {
            assert!(matches!(sub.cmd(&["HELLO", "3"]).await, V::Map(_)));
        }
        let hub = match proxy {
            true => Some(Raw::connect(addr).await),
            false => None,
        };
        Side {
            sub,
            publ: Raw::connect(addr).await,
            hub,
            marks: 0,
        }
    }

    /// Sends `args` on the subscriber, then a `PING` marker; every reply and message before
    /// the marker's reply.
    async fn sub(&mut self, args: &[&str]) -> Vec<String> {
        self.marks += 1;
        let mark = format!("mark-{}", self.marks);
        let mut bytes = encode(args);
        bytes.extend(encode(&["PING", &mark]));
        self.sub.send(&bytes).await;
        let mut got = Vec::new();
        loop {
            let r = String::from_utf8_lossy(&self.sub.reply().await).into_owned();
            if r.contains(&mark) {
                return got;
            }
            got.push(r);
        }
    }

    async fn publ(&mut self, args: &[&str]) -> String {
        let before = match &mut self.hub {
            Some(h) => proxy_stat(h, "pubsub_messages_received").await,
            None => 0,
        };
        let reply = self.publ.text(args).await;
        if let Some(h) = &mut self.hub
            && args[0].ends_with("PUBLISH")
            && let Some(n) = reply
                .strip_prefix(':')
                .and_then(|n| n.trim().parse::<u64>().ok())
        {
            let mut polls = 0;
            while proxy_stat(h, "pubsub_messages_received").await < before + n {
                polls += 1;
                assert!(polls < 1000, "the hub never received {n} messages");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        reply
    }
}

enum Op<'a> {
    Sub(&'a [&'a str]),
    SubUnordered(&'a [&'a str]),
    Pub(&'a [&'a str]),
    PubUnordered(&'a [&'a str]),
}

fn sorted_elements(reply: &str) -> Vec<String> {
    let mut lines: Vec<String> = reply.split("\r\n").skip(1).map(String::from).collect();
    lines.sort();
    lines
}

/// The shard's pub/sub scenario, through the proxy (over one shard) against redis-server.
const SCENARIO: &[Op] = &[
    Op::Sub(&["SUBSCRIBE", "a", "b", "a"]),
    Op::Pub(&["PUBLISH", "a", "hello"]),
    Op::Pub(&["PUBLISH", "nobody", "x"]),
    Op::Sub(&["PSUBSCRIBE", "h*", "x?[yz]"]),
    Op::Pub(&["PUBLISH", "hello", "world"]),
    Op::Pub(&["PUBLISH", "xay", "pattern"]),
    Op::Pub(&["PUBLISH", "xa", "no match"]),
    Op::Pub(&["PUBLISH", "b", ""]),
    Op::Pub(&["PUBLISH", "a", "twice"]),
    Op::Sub(&["GET", "x"]),
    Op::Sub(&["CLIENT", "GETNAME"]),
    Op::Sub(&["CONFIG", "GET", "maxmemory"]),
    Op::Sub(&["PING"]),
    Op::Sub(&["PING", "arg"]),
    Op::Sub(&["PING", "a", "b"]),
    Op::Sub(&["NOSUCHCOMMAND"]),
    Op::Sub(&["SUBSCRIBE"]),
    Op::Pub(&["PUBSUB", "NUMSUB", "a", "b", "c"]),
    Op::Pub(&["PUBSUB", "NUMSUB"]),
    Op::Pub(&["PUBSUB", "NUMPAT"]),
    Op::PubUnordered(&["PUBSUB", "CHANNELS"]),
    Op::Pub(&["PUBSUB", "CHANNELS", "[a]"]),
    Op::Pub(&["PUBSUB", "CHANNELS", "a", "b"]),
    Op::Pub(&["PUBSUB"]),
    Op::Sub(&["UNSUBSCRIBE", "a", "never"]),
    Op::Pub(&["PUBLISH", "a", "gone"]),
    Op::Sub(&["UNSUBSCRIBE"]),
    Op::SubUnordered(&["PUNSUBSCRIBE"]),
    Op::Sub(&["PUNSUBSCRIBE"]),
    Op::Sub(&["UNSUBSCRIBE"]),
    Op::Sub(&["GET", "x"]),
    Op::Sub(&["SSUBSCRIBE", "s1", "s2"]),
    Op::Pub(&["SPUBLISH", "s1", "shard"]),
    Op::Pub(&["PUBLISH", "s1", "not shard"]),
    Op::Pub(&["PUBSUB", "SHARDNUMSUB", "s1", "s3"]),
    Op::PubUnordered(&["PUBSUB", "SHARDCHANNELS"]),
    Op::Pub(&["PUBSUB", "SHARDCHANNELS", "*2"]),
    Op::Sub(&["SUBSCRIBE", "c"]),
    Op::Sub(&["SUNSUBSCRIBE", "s2"]),
    Op::Sub(&["SET", "k", "v"]),
    Op::Sub(&["RESET"]),
    Op::Pub(&["PUBSUB", "NUMSUB", "c"]),
    Op::Pub(&["PUBSUB", "SHARDNUMSUB", "s1"]),
    Op::Sub(&["GET", "k"]),
];

async fn differential(resp3: bool) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let shard = TestShard::default().await;
    let proxy = Proxy::over(std::slice::from_ref(&shard)).await;
    let mut want = Side::new(redis.addr, resp3, false).await;
    let mut got = Side::new(proxy.addr, resp3, true).await;
    for (i, op) in SCENARIO.iter().enumerate() {
        match op {
            Op::Sub(args) => {
                let (w, g) = (want.sub(args).await, got.sub(args).await);
                assert_eq!(g, w, "step {i}: subscriber {args:?} (RESP3: {resp3})");
            }
            Op::SubUnordered(args) => {
                let (mut w, mut g) = (want.sub(args).await, got.sub(args).await);
                w.sort();
                g.sort();
                assert_eq!(g, w, "step {i}: subscriber {args:?} (RESP3: {resp3})");
            }
            Op::Pub(args) => {
                let (w, g) = (want.publ(args).await, got.publ(args).await);
                assert_eq!(g, w, "step {i}: publisher {args:?} (RESP3: {resp3})");
            }
            Op::PubUnordered(args) => {
                let (w, g) = (want.publ(args).await, got.publ(args).await);
                assert_eq!(
                    sorted_elements(&g),
                    sorted_elements(&w),
                    "step {i}: publisher {args:?} (RESP3: {resp3})"
                );
            }
        }
    }
    proxy.stop().await;
    shard.stop().await;
}

#[tokio::test]
async fn differential_against_redis_in_resp2() {
    differential(false).await;
}

#[tokio::test]
async fn differential_against_redis_in_resp3() {
    differential(true).await;
}

/// Reads replies until `want` (or fails after a bounded number of them).
async fn read_until(raw: &mut Raw, want: &V) {
    for _ in 0..10_000 {
        if &raw.read().await == want {
            return;
        }
    }
    panic!("never got {want:?}");
}

fn message(ch: &str, payload: &str) -> V {
    V::Arr(vec![V::s("message"), V::s(ch), V::s(payload)])
}

/// The `redis` crate's pub/sub connection and RESP3 pushes on a multiplexed connection,
/// through the proxy over a static split of three shards.
#[tokio::test]
async fn redis_crate_pubsub() {
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let client = redis::Client::open(proxy.url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    pubsub.subscribe("news").await.expect("subscribe");
    pubsub.psubscribe("sport.*").await.expect("psubscribe");
    let mut con = proxy.redis().await;
    for (ch, payload) in [("news", "hello"), ("sport.tennis", "ace")] {
        let n: i64 = redis::cmd("PUBLISH")
            .arg(ch)
            .arg(payload)
            .query_async(&mut con)
            .await
            .expect("publish");
        assert_eq!(n, 1);
    }
    {
        let mut messages = pubsub.on_message();
        let m = messages.next().await.expect("a message");
        assert_eq!(m.get_channel_name(), "news");
        assert_eq!(m.get_payload::<String>().expect("text"), "hello");
        let m = messages.next().await.expect("a message");
        assert_eq!(m.get_channel_name(), "sport.tennis");
        assert_eq!(m.get_pattern::<String>().expect("pattern"), "sport.*");
        assert_eq!(m.get_payload::<String>().expect("text"), "ace");
    }
    pubsub.unsubscribe("news").await.expect("unsubscribe");
    pubsub.punsubscribe("sport.*").await.expect("punsubscribe");
    let n: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("again")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 0, "the hub unsubscribed upstream before confirming");

    // RESP3: any command while subscribed, messages as pushes.
    let client3 = redis::Client::open(format!("{}?protocol=resp3", proxy.url())).expect("url");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut con3 = client3
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("resp3 connection");
    con3.subscribe("ch3").await.expect("subscribe");
    let pong: String = redis::cmd("PING")
        .query_async(&mut con3)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con3)
        .await
        .expect("set while subscribed");
    let n: i64 = redis::cmd("PUBLISH")
        .arg("ch3")
        .arg("pushed")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 1);
    loop {
        let push = tokio::time::timeout(TIMEOUT, rx.recv())
            .await
            .expect("a push in time")
            .expect("push channel open");
        if push.kind == redis::PushKind::Message {
            let bulk = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
            assert_eq!(push.data, vec![bulk("ch3"), bulk("pushed")]);
            break;
        }
    }
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

/// 2,000 clients of the proxy listen to one channel: the shard sees one subscriber, and each
/// client gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_cost_one_upstream_subscription() {
    let shard = TestShard::default().await;
    let proxy = Proxy::start_with_admin(config(&[shard.addr.to_string()])).await;
    const N: usize = 2000;
    let mut subs = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = proxy.raw().await;
        s.send(&encode(&["SUBSCRIBE", "hot"])).await;
        subs.push(s);
    }
    for s in &mut subs {
        assert_eq!(
            s.read().await,
            V::Arr(vec![V::s("subscribe"), V::s("hot"), V::Int(1)])
        );
    }
    let mut on_shard = shard.raw().await;
    assert_eq!(
        on_shard.cmd(&["PUBSUB", "NUMSUB", "hot"]).await,
        V::Arr(vec![V::s("hot"), V::Int(1)])
    );
    let clients = on_shard.text(&["CLIENT", "LIST"]).await;
    assert_eq!(
        clients.lines().filter(|l| l.contains(" sub=1 ")).count(),
        1,
        "{clients}"
    );
    let mut publ = proxy.raw().await;
    // The node counts the hub's one connection; PUBSUB NUMSUB through the proxy counts its
    // clients.
    assert_eq!(publ.cmd(&["PUBLISH", "hot", "m1"]).await, V::Int(1));
    assert_eq!(
        publ.cmd(&["PUBSUB", "NUMSUB", "hot"]).await,
        V::Arr(vec![V::s("hot"), V::Int(N as i64)])
    );
    assert_eq!(publ.cmd(&["PUBLISH", "hot", "m2"]).await, V::Int(1));
    for s in &mut subs {
        assert_eq!(s.read().await, message("hot", "m1"));
        assert_eq!(s.read().await, message("hot", "m2"));
    }
    let info = publ.text(&["INFO", "stats"]).await;
    assert_eq!(
        info_int(&info, "pubsub_upstream_subscriptions"),
        1,
        "{info}"
    );
    assert_eq!(info_int(&info, "pubsub_channels"), 1, "{info}");
    assert_eq!(
        info_int(&info, "pubsub_messages_fanned_out"),
        2 * N as u64,
        "{info}"
    );
    let metrics = reqwest_metrics(proxy.admin.expect("admin")).await;
    assert_eq!(
        metric_value(&metrics, "autocache_pubsub_upstream_subscriptions"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "autocache_pubsub_subscribers"),
        Some(N as f64),
        "{metrics}"
    );
    // The last subscriber leaving unsubscribes upstream.
    drop(subs);
    let mut polls = 0;
    while on_shard.cmd(&["PUBSUB", "NUMSUB", "hot"]).await != V::Arr(vec![V::s("hot"), V::Int(0)]) {
        polls += 1;
        assert!(polls < 1000, "the hub never unsubscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.stop().await;
    shard.stop().await;
}

/// `/metrics` of the admin server.
async fn reqwest_metrics(admin: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.expect("admin");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("response");
    body
}

/// redis-py through the proxy (over three shards) and straight on a shard: the same script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pubsub_through_the_proxy_and_on_a_shard() {
    let Some(python) = redis_py() else {
        return;
    };
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    run_redis_py_script(&python, "redis_py_pubsub.py", proxy.addr).await;
    run_redis_py_script(&python, "redis_py_pubsub.py", shards[0].addr).await;
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

/// Keyspace notifications are node-local: through the proxy, one subscription sees the events
/// of every shard, each once; a PUBLISH still arrives once.
#[tokio::test]
async fn keyspace_notifications_of_every_shard() {
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
            .await,
        V::s("OK")
    );
    let mut sub = proxy.raw().await;
    sub.send(&encode(&["PSUBSCRIBE", "*"])).await;
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("psubscribe"), V::s("*"), V::Int(1)])
    );
    let keys = spread_keys(30);
    assert!((0..3).all(|s| keys.iter().any(|k| owner_3(k) == s)));
    for k in &keys {
        assert_eq!(c.cmd(&["SET", k, "v"]).await, V::s("OK"));
    }
    assert_eq!(c.cmd(&["PUBLISH", "plain", "once"]).await, V::Int(1));
    assert_eq!(c.cmd(&["PUBLISH", "end", "."]).await, V::Int(1));
    let mut events = std::collections::BTreeMap::<String, usize>::new();
    let mut plain = 0;
    loop {
        let V::Arr(m) = sub.read().await else {
            panic!("not a message")
        };
        let (ch, data) = (m[2].as_str().to_string(), m[3].as_str().to_string());
        match ch.as_str() {
            "end" => break,
            "plain" => plain += 1,
            "__keyevent@0__:set" => *events.entry(data).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(plain, 1);
    // Every key's event, once, though the shards ran them; `end` came after them all only
    // if the designated node's events were also in order; the others may lag: wait for them.
    while events.len() < keys.len() {
        let V::Arr(m) = sub.read().await else {
            panic!("not a message")
        };
        if m[2].as_str() == "__keyevent@0__:set" {
            *events.entry(m[3].as_str().to_string()).or_default() += 1;
        }
    }
    let want: std::collections::BTreeMap<String, usize> =
        keys.iter().map(|k| (k.clone(), 1)).collect();
    assert_eq!(events, want);
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

/// A subscriber that never reads is disconnected once its queue passes the pubsub class's
/// hard limit; the other subscriber and the publisher go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_disconnected() {
    let shard = TestShard::default().await;
    let mut cfg = config(&[shard.addr.to_string()]);
    cfg.client_output_buffer_limit
        .apply("pubsub 1mb 0 0")
        .expect("limit");
    let proxy = Proxy::start(cfg).await;
    let mut idle = proxy.raw().await;
    assert_eq!(
        idle.cmd(&["SUBSCRIBE", "flood"]).await,
        V::Arr(vec![V::s("subscribe"), V::s("flood"), V::Int(1)])
    );
    // Keep the kernel's buffers small: the queue must grow in the proxy.
    let mut reader = proxy.raw().await;
    assert_eq!(
        reader.cmd(&["SUBSCRIBE", "flood"]).await,
        V::Arr(vec![V::s("subscribe"), V::s("flood"), V::Int(1)])
    );
    let mut publ = proxy.raw().await;
    let payload = "x".repeat(100_000);
    let mut sent = 0;
    let mut info = String::new();
    while sent < 1000 {
        assert_eq!(publ.cmd(&["PUBLISH", "flood", &payload]).await, V::Int(1));
        sent += 1;
        assert_eq!(reader.read().await, message("flood", &payload));
        info = publ.text(&["INFO", "stats"]).await;
        if info_int(&info, "pubsub_slow_subscribers_dropped") == 1 {
            break;
        }
    }
    assert_eq!(
        info_int(&info, "pubsub_slow_subscribers_dropped"),
        1,
        "{info}"
    );
    assert!(idle.closed_after_replies().await);
    assert_eq!(publ.cmd(&["PUBLISH", "flood", "after"]).await, V::Int(1));
    assert_eq!(reader.read().await, message("flood", "after"));
    proxy.stop().await;
    shard.stop().await;
}

/// The designated node dies: another one is designated, the hub subscribes there again, and
/// PUBLISH goes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_subscriptions_move_when_the_designated_node_dies() {
    let shards = [TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::over(&shards).await;
    let [a, b] = shards;
    let mut sub = proxy.raw().await;
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "news"]).await,
        V::Arr(vec![V::s("subscribe"), V::s("news"), V::Int(1)])
    );
    let mut publ = proxy.raw().await;
    assert_eq!(publ.cmd(&["PUBLISH", "news", "m0"]).await, V::Int(1));
    assert_eq!(sub.read().await, message("news", "m0"));
    // The first node of the map is the designated one.
    let mut on_a = a.raw().await;
    assert_eq!(
        on_a.cmd(&["PUBSUB", "NUMSUB", "news"]).await,
        V::Arr(vec![V::s("news"), V::Int(1)])
    );
    a.stop().await;
    let mut i = 0;
    while publ.cmd(&["PUBLISH", "news", "probe"]).await != V::Int(1) {
        i += 1;
        assert!(i < 600, "the hub never subscribed on the other node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    read_until(&mut sub, &message("news", "probe")).await;
    assert_eq!(publ.cmd(&["PUBLISH", "news", "m1"]).await, V::Int(1));
    assert_eq!(sub.read().await, message("news", "m1"));
    proxy.stop().await;
    b.stop().await;
}

/// SSUBSCRIBE through the proxy follows its slot when the shard cluster migrates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_channels_follow_a_slot_migration() {
    let dirs: Vec<_> = (0..2).map(|i| temp_dir(&format!("ps-mig-{i}"))).collect();
    let config_of = |dir: &std::path::Path, seeds: Vec<String>| Config {
        dir: dir.to_path_buf(),
        cluster_enabled: true,
        cluster_port: Some(0),
        cluster_seeds: seeds,
        cluster_secret: Some("pubsub-proxy-secret".into()),
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..Config::default()
    };
    let a = TestShard::start(config_of(&dirs[0], vec![])).await;
    let seed = a.bus_addr().await;
    let b = TestShard::start(config_of(&dirs[1], vec![seed])).await;
    let mut on_a = a.raw().await;
    for i in 0.. {
        assert!(i < 600, "b never joined");
        let info = on_a.cmd(&["CLUSTER", "INFO"]).await;
        if info_field(info.as_str(), "cluster_known_nodes").as_deref() == Some("2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let proxy = Proxy::start(common::config(&[a.addr.to_string()])).await;
    let ch = "{follow}ch";
    let slot = membership::Slot::for_key(ch.as_bytes()).get().to_string();
    let mut sub = proxy.raw().await;
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", ch]).await,
        V::Arr(vec![V::s("ssubscribe"), V::s(ch), V::Int(1)])
    );
    let mut publ = proxy.raw().await;
    assert_eq!(publ.cmd(&["SPUBLISH", ch, "before"]).await, V::Int(1));
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("smessage"), V::s(ch), V::s("before")])
    );
    let b_id = b.raw().await.cmd(&["CLUSTER", "MYID"]).await;
    assert_eq!(
        on_a.cmd(&["CLUSTER", "MIGRATE", &slot, &slot, b_id.as_str()])
            .await,
        V::s("OK")
    );
    // Once b owns the slot, the hub holds the channel there: SPUBLISH (routed to b) reaches
    // the subscriber, which never saw the node's `sunsubscribe`.
    let mut on_b = b.raw().await;
    let mut i = 0;
    loop {
        i += 1;
        assert!(i < 600, "the subscription never followed the slot");
        if on_b.cmd(&["PUBSUB", "SHARDNUMSUB", ch]).await == V::Arr(vec![V::s(ch), V::Int(1)]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publ.cmd(&["SPUBLISH", ch, "after"]).await, V::Int(1));
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("smessage"), V::s(ch), V::s("after")])
    );
    assert_eq!(
        on_a.cmd(&["PUBSUB", "SHARDNUMSUB", ch]).await,
        V::Arr(vec![V::s(ch), V::Int(0)])
    );
    proxy.stop().await;
    b.stop().await;
    a.stop().await;
}

/// In front of a real Redis Cluster: channels, patterns and shard channels on every node,
/// messages published straight on a node, keyspace notifications, and redis-py's script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_in_front_of_a_real_redis_cluster() {
    use common::redis_cluster::{RedisCluster, cli, tools_present};
    if !tools_present() {
        return;
    }
    let rc = RedisCluster::start();
    let proxy = Proxy::start(config(&rc.seeds()[..1])).await;
    let mut sub = proxy.raw().await;
    let mut publ = proxy.raw().await;
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "news"]).await,
        V::Arr(vec![V::s("subscribe"), V::s("news"), V::Int(1)])
    );
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "sport.*"]).await,
        V::Arr(vec![V::s("psubscribe"), V::s("sport.*"), V::Int(2)])
    );
    // Shard channels whose slots are on different nodes.
    let channels: Vec<String> = (0..30).map(|i| format!("sch:{i}")).collect();
    let mut owners = std::collections::HashSet::new();
    for (i, ch) in channels.iter().enumerate() {
        assert_eq!(
            sub.cmd(&["SSUBSCRIBE", ch]).await,
            V::Arr(vec![V::s("ssubscribe"), V::s(ch), V::Int(i as i64 + 1)])
        );
        owners.insert(rc.owner(ch));
    }
    assert_eq!(owners.len(), 3, "shard channels on every node");
    assert_eq!(publ.cmd(&["PUBLISH", "news", "n1"]).await, V::Int(1));
    assert_eq!(sub.read().await, message("news", "n1"));
    assert_eq!(publ.cmd(&["PUBLISH", "sport.golf", "g"]).await, V::Int(1));
    assert_eq!(
        sub.read().await,
        V::Arr(vec![
            V::s("pmessage"),
            V::s("sport.*"),
            V::s("sport.golf"),
            V::s("g")
        ])
    );
    for ch in &channels {
        assert_eq!(publ.cmd(&["SPUBLISH", ch, "s"]).await, V::Int(1), "{ch}");
        assert_eq!(
            sub.read().await,
            V::Arr(vec![V::s("smessage"), V::s(ch), V::s("s")])
        );
    }
    // Published straight on each node: the cluster bus brings it to the hub's node; it
    // arrives once.
    for p in &rc.ports {
        cli(*p, &["PUBLISH", "news", &format!("from {p}")]);
        assert_eq!(sub.read().await, message("news", &format!("from {p}")));
    }
    assert_eq!(
        publ.cmd(&["PUBSUB", "NUMSUB", "news"]).await,
        V::Arr(vec![V::s("news"), V::Int(1)])
    );
    assert_eq!(publ.cmd(&["PUBSUB", "NUMPAT"]).await, V::Int(1));
    assert_eq!(sub.cmd(&["RESET"]).await, V::s("RESET"));
    let Some(python) = redis_py() else {
        return;
    };
    run_redis_py_script(&python, "redis_py_pubsub.py", proxy.addr).await;
    proxy.stop().await;
}

/// SUBSCRIBE inside MULTI would run on a shared backend connection: refused, and the
/// transaction aborts; PUBLISH inside MULTI runs.
#[tokio::test]
async fn subscribing_inside_multi_is_refused() {
    let shard = TestShard::default().await;
    let proxy = Proxy::over(std::slice::from_ref(&shard)).await;
    let mut c = proxy.raw().await;
    assert_eq!(c.text(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(
        c.text(&["SUBSCRIBE", "x"]).await,
        "-ERR SUBSCRIBE is not supported through the proxy: subscriptions inside MULTI are not supported\r\n"
    );
    assert!(c.text(&["EXEC"]).await.starts_with("-EXECABORT"));
    assert_eq!(c.text(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(c.text(&["PUBLISH", "x", "y"]).await, "+QUEUED\r\n");
    assert_eq!(c.text(&["EXEC"]).await, "*1\r\n:0\r\n");
    // The shared connections are not subscribed: plain commands still work.
    assert_eq!(c.text(&["SET", "k", "v"]).await, "+OK\r\n");
    proxy.stop().await;
    shard.stop().await;
}
