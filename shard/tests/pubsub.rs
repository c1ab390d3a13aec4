//! Pub/sub: differential tests against a real `redis-server` (what a subscriber receives,
//! byte for byte, in RESP2 and RESP3: confirmations, messages, subscribed-mode errors, PUBSUB
//! introspection, keyspace notifications), the `redis` crate's pub/sub API (RESP2 and RESP3
//! pushes), redis-py's (skipped with a notice when it is missing), and the output buffer limit
//! that disconnects a subscriber that does not read.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use std::time::Duration;

use futures::StreamExt;
use shard::testing::{Raw, TestShard, V, encode, info_int, redis_server};

/// One server's side of a scenario: a subscriber and a publisher connection.
struct Side {
    sub: Raw,
    publ: Raw,
    marks: usize,
}

impl Side {
    async fn new(addr: std::net::SocketAddr, resp3: bool) -> Side {
        let mut sub = Raw::connect(addr).await;
        if resp3 {
            assert!(matches!(sub.cmd(&["HELLO", "3"]).await, V::Map(_)));
        }
        Side {
            sub,
            publ: Raw::connect(addr).await,
            marks: 0,
        }
    }

    /// Sends `args` on the subscriber, then a `PING` marker, and returns every reply and
    /// message that came before the marker's reply: what the subscriber received for the
    /// command and everything published to it until then.
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

    /// A command on the publisher connection: its reply's bytes.
    async fn publ(&mut self, args: &[&str]) -> String {
        self.publ.text(args).await
    }
}

/// A step of a scenario: a command on the subscriber or the publisher, its replies compared
/// in order or, where Redis's order is a hash table's, as a multiset.
enum Op<'a> {
    Sub(&'a [&'a str]),
    SubUnordered(&'a [&'a str]),
    Pub(&'a [&'a str]),
    PubUnordered(&'a [&'a str]),
}

/// An array reply's elements, sorted (PUBSUB CHANNELS lists a hash table).
fn sorted_elements(reply: &str) -> Vec<String> {
    let mut lines: Vec<String> = reply.split("\r\n").skip(1).map(String::from).collect();
    lines.sort();
    lines
}

async fn run_scenario(ops: &[Op<'_>], resp3: bool) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Side::new(redis.addr, resp3).await;
    let mut got = Side::new(srv.addr, resp3).await;
    for (i, op) in ops.iter().enumerate() {
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
    srv.stop().await;
}

/// Subscriptions of every kind, messages, introspection and the subscribed-mode rules.
const SCENARIO: &[Op] = &[
    Op::Sub(&["SUBSCRIBE", "a", "b", "a"]),
    Op::Pub(&["PUBLISH", "a", "hello"]),
    Op::Pub(&["PUBLISH", "nobody", "x"]),
    Op::Sub(&["PSUBSCRIBE", "h*", "x?[yz]"]),
    Op::Pub(&["PUBLISH", "hello", "world"]),
    Op::Pub(&["PUBLISH", "xay", "pattern"]),
    Op::Pub(&["PUBLISH", "xa", "no match"]),
    Op::Pub(&["PUBLISH", "b", ""]),
    Op::Sub(&["GET", "x"]),
    Op::Sub(&["CLIENT", "GETNAME"]),
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
    // A subscriber that publishes to itself.
    Op::Sub(&["SUBSCRIBE", "self"]),
    Op::Sub(&["PUBLISH", "self", "me"]),
];

#[tokio::test]
async fn differential_against_redis_in_resp2() {
    run_scenario(SCENARIO, false).await;
}

#[tokio::test]
async fn differential_against_redis_in_resp3() {
    run_scenario(SCENARIO, true).await;
}

/// COMMAND INFO of the pub/sub rows, byte for byte.
#[tokio::test]
async fn command_info_matches_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let (mut want, mut got) = (Raw::connect(redis.addr).await, srv.raw().await);
    for name in [
        "subscribe",
        "psubscribe",
        "ssubscribe",
        "unsubscribe",
        "punsubscribe",
        "sunsubscribe",
        "publish",
        "spublish",
        "pubsub|channels",
        "pubsub|numsub",
        "pubsub|numpat",
        "pubsub|shardchannels",
        "pubsub|shardnumsub",
        "pubsub|help",
    ] {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    srv.stop().await;
}

/// Keyspace notifications of a mixed command sequence: every event message a pattern
/// subscriber receives, in order, compared with Redis's.
async fn keyspace_differential(resp3: bool, flags: &str) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Side::new(redis.addr, resp3).await;
    let mut got = Side::new(srv.addr, resp3).await;
    for side in [&mut want, &mut got] {
        let set = side
            .publ(&["CONFIG", "SET", "notify-keyspace-events", flags])
            .await;
        assert_eq!(set, "+OK\r\n");
        side.sub(&["PSUBSCRIBE", "__key*__:*"]).await;
    }
    let commands: &[&[&str]] = &[
        &["SET", "k", "v"],
        &["SET", "k", "v", "NX"],
        &["SET", "k", "w", "XX", "GET"],
        &["SET", "k2", "v", "EX", "100"],
        &["SETNX", "k3", "v"],
        &["SETEX", "k4", "100", "v"],
        &["MSET", "m1", "1", "m2", "2"],
        &["MSETNX", "m1", "1", "m3", "3"],
        &["GETSET", "m1", "5"],
        &["INCR", "n"],
        &["INCRBY", "n", "5"],
        &["DECR", "n"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["APPEND", "k", "x"],
        &["SETRANGE", "k", "1", "yy"],
        &["SETRANGE", "k", "1", ""],
        &["GETEX", "k2", "PERSIST"],
        &["GETEX", "k2", "PERSIST"],
        &["GETEX", "k2", "EX", "50"],
        &["GETDEL", "k3"],
        &["GETDEL", "k3"],
        &["DEL", "k4", "nokey", "k4"],
        &["EXPIRE", "n", "100"],
        &["EXPIRE", "nokey", "100"],
        &["PERSIST", "n"],
        &["RENAME", "n", "n2"],
        &["RENAMENX", "n2", "m1"],
        &["COPY", "n2", "n3"],
        &["PEXPIREAT", "n3", "1"],
        &["LPUSH", "l", "a", "b", "c"],
        &["RPUSH", "l", "d"],
        &["LPUSHX", "nolist", "a"],
        &["LPOP", "l"],
        &["RPOP", "l", "1"],
        &["LSET", "l", "0", "z"],
        &["LINSERT", "l", "BEFORE", "z", "y"],
        &["LREM", "l", "1", "y"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "l", "l2"],
        &["LTRIM", "l2", "0", "0"],
        &["LTRIM", "nolist", "0", "0"],
        &["LMPOP", "2", "nolist", "l2", "LEFT"],
        &["SADD", "s", "a", "b", "c"],
        &["SADD", "s", "a"],
        &["SREM", "s", "a"],
        &["SMOVE", "s", "s2", "b"],
        &["SINTERSTORE", "dst", "s", "s2"],
        &["SUNIONSTORE", "dst", "s", "s2"],
        &["SDIFFSTORE", "dst", "s", "s"],
        &["SPOP", "s"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["ZADD", "z", "1", "a"],
        &["ZADD", "z", "3", "a"],
        &["ZADD", "z", "INCR", "0", "a"],
        &["ZADD", "z", "INCR", "5", "a"],
        &["ZINCRBY", "z", "1", "b"],
        &["ZADD", "z", "5", "c", "6", "d", "7", "e"],
        &["ZREM", "z", "a", "nomember"],
        &["ZREMRANGEBYRANK", "z", "0", "0"],
        &["ZREMRANGEBYSCORE", "z", "5", "5"],
        &["ZUNIONSTORE", "zdst", "1", "z"],
        &["ZRANGESTORE", "zdst2", "z", "0", "-1"],
        &["ZPOPMIN", "z"],
        &["ZMPOP", "1", "z", "MAX"],
        &["ZINTERSTORE", "zdst", "2", "z", "nokey"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["HSETNX", "h", "f", "v"],
        &["HSETNX", "h", "x", "v"],
        &["HINCRBY", "h", "n", "2"],
        &["HINCRBYFLOAT", "h", "n", "0.5"],
        &["HDEL", "h", "f", "g", "x", "n"],
        &["UNLINK", "m2", "m3"],
        &["SETBIT", "bits", "7", "1"],
        &["SETBIT", "bits", "7", "1"],
        &["SETBIT", "bits", "3", "0"],
        &["SETBIT", "bits", "30", "0"],
        &["BITFIELD", "bits", "GET", "u8", "0"],
        &["BITFIELD", "bits", "SET", "u8", "0", "1"],
        &["BITFIELD", "bits", "SET", "u8", "0", "1"],
        &[
            "BITFIELD", "bits", "OVERFLOW", "FAIL", "INCRBY", "u2", "100", "9",
        ],
        &[
            "BITFIELD", "bits2", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "9",
        ],
        &["BITOP", "AND", "bdst", "bits", "bits2"],
        &["BITOP", "OR", "bdst", "nokey"],
        &["PFADD", "hll", "a", "b"],
        &["PFADD", "hll", "a"],
        &["PFCOUNT", "hll"],
        &["PFMERGE", "hll2", "hll"],
        &["BITOP", "OR", "bdst", "nokey"],
        // Geo: GEOADD raises ZADD's events; the STORE forms theirs, or `del` when empty.
        &[
            "GEOADD",
            "geo",
            "13.361389",
            "38.115556",
            "a",
            "15.087269",
            "37.502669",
            "b",
        ],
        &["GEOADD", "geo", "13.361389", "38.115556", "a"],
        &["GEOADD", "geo", "NX", "1", "1", "a"],
        &["GEOADD", "geo", "XX", "CH", "1", "1", "a"],
        &["GEORADIUS", "geo", "15", "37", "200", "km", "STORE", "gdst"],
        &["GEORADIUS", "geo", "15", "37", "1", "m", "STORE", "gdst"],
        &[
            "GEORADIUSBYMEMBER",
            "geo",
            "b",
            "10",
            "km",
            "STOREDIST",
            "gdst",
        ],
        &[
            "GEOSEARCHSTORE",
            "gdst2",
            "geo",
            "FROMMEMBER",
            "b",
            "BYBOX",
            "10",
            "10",
            "km",
        ],
        &[
            "GEOSEARCHSTORE",
            "gdst2",
            "nokey",
            "FROMMEMBER",
            "b",
            "BYBOX",
            "10",
            "10",
            "km",
        ],
        &[
            "GEOSEARCH",
            "geo",
            "FROMMEMBER",
            "b",
            "BYRADIUS",
            "10",
            "km",
        ],
        // SORT STORE: `sortstore`, or `del` when empty.
        &["RPUSH", "sl", "3", "1", "2"],
        &["SORT", "sl", "STORE", "sdst"],
        &["SORT", "sl", "LIMIT", "0", "0", "STORE", "sdst"],
        &["SORT", "sl"],
        // Blocking pops that find something at once.
        &["RPUSH", "bl", "a", "b", "c", "d"],
        &["BLPOP", "bl", "0"],
        &["BRPOP", "nokey", "bl", "0"],
        &["BLMOVE", "bl", "bl2", "RIGHT", "LEFT", "0"],
        &["BRPOPLPUSH", "bl", "bl2", "0"],
        &["BLMPOP", "0", "1", "bl2", "LEFT", "COUNT", "5"],
        &["ZADD", "bz", "1", "a", "2", "b", "3", "c"],
        &["BZPOPMIN", "bz", "0"],
        &["BZPOPMAX", "bz", "0"],
        &["BZMPOP", "0", "1", "bz", "MIN"],
        &["FLUSHALL"],
    ];
    let mut events = 0;
    for args in commands {
        let (w, g) = (want.publ(args).await, got.publ(args).await);
        assert_eq!(g, w, "{args:?}");
        let (w, g) = (want.sub(&["PING"]).await, got.sub(&["PING"]).await);
        assert_eq!(g, w, "events of {args:?} (RESP3: {resp3}, flags {flags})");
        events += w.len();
    }
    assert!(events >= 20, "only {events} events with {flags}");
    // A key that expires: found gone by a lookup (or Redis's expiry cycle), `expired` either way.
    for side in [&mut want, &mut got] {
        side.publ(&["SET", "e", "v", "PX", "20"]).await;
        while side.publ(&["EXISTS", "e"]).await != ":0\r\n" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (w, g) = (want.sub(&["PING"]).await, got.sub(&["PING"]).await);
    assert_eq!(g, w, "expiry events (RESP3: {resp3})");
    srv.stop().await;
}

#[tokio::test]
async fn keyspace_notifications_against_redis() {
    keyspace_differential(false, "KEA").await;
}

#[tokio::test]
async fn keyspace_notifications_against_redis_in_resp3() {
    keyspace_differential(true, "KEA").await;
}

#[tokio::test]
async fn keyspace_notifications_of_some_classes_only() {
    keyspace_differential(false, "Elz").await;
    keyspace_differential(false, "Kg$x").await;
}

/// CONFIG GET/SET of the two pub/sub settings, compared with Redis (validation included).
#[tokio::test]
async fn config_matches_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let (mut want, mut got) = (Raw::connect(redis.addr).await, srv.raw().await);
    let steps: &[&[&str]] = &[
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", "Ex$lm"],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", "KEq"],
        &["CONFIG", "SET", "notify-keyspace-events", ""],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "GET", "client-output-buffer-limit"],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 64mb 16mb 30",
        ],
        &["CONFIG", "GET", "client-output-buffer-limit"],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 1 2 3 pubsub 1kb 0 0",
        ],
        &["CONFIG", "GET", "client-output-buffer-limit"],
        &["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1 2"],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "master 1 2 3",
        ],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub x 2 3",
        ],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1 2 -3",
        ],
        &["CONFIG", "GET", "client-output-buffer-limit"],
    ];
    for args in steps {
        assert_eq!(got.text(args).await, want.text(args).await, "{args:?}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn introspection_in_info_and_client_list() {
    let srv = TestShard::default().await;
    let mut sub = srv.raw().await;
    let mut other = srv.raw().await;
    sub.send(&encode(&["SUBSCRIBE", "a", "b"])).await;
    sub.read().await;
    sub.read().await;
    sub.send(&encode(&["PSUBSCRIBE", "p*"])).await;
    sub.read().await;
    sub.send(&encode(&["SSUBSCRIBE", "s"])).await;
    sub.read().await;
    let info = other.cmd(&["INFO", "stats"]).await;
    assert_eq!(info_int(info.as_str(), "pubsub_channels"), 2);
    assert_eq!(info_int(info.as_str(), "pubsub_patterns"), 1);
    assert_eq!(info_int(info.as_str(), "pubsubshard_channels"), 1);
    let list = other.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]).await;
    let line = list
        .as_str()
        .lines()
        .next()
        .expect("the subscriber")
        .to_string();
    assert!(
        line.contains(" flags=P ") && line.contains(" sub=2 psub=1 ssub=1 "),
        "{line}"
    );
    let normal = other.cmd(&["CLIENT", "LIST", "TYPE", "normal"]).await;
    assert_eq!(normal.as_str().lines().count(), 1, "only the other client");
    drop(sub);
    // The subscriber's connection ends: its subscriptions go with it.
    loop {
        let info = other.cmd(&["INFO", "stats"]).await;
        if info_int(info.as_str(), "pubsub_channels") == 0 {
            assert_eq!(info_int(info.as_str(), "pubsub_patterns"), 0);
            assert_eq!(info_int(info.as_str(), "pubsubshard_channels"), 0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    srv.stop().await;
}

/// The `redis` crate's pub/sub connection (RESP2) and RESP3 push messages on a multiplexed
/// connection.
#[tokio::test]
async fn redis_crate_pubsub() {
    let srv = TestShard::default().await;
    let client = redis::Client::open(srv.url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    pubsub.subscribe("news").await.expect("subscribe");
    pubsub.psubscribe("sport.*").await.expect("psubscribe");
    let mut con = srv.redis().await;
    let n: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 1);
    let n: i64 = redis::cmd("PUBLISH")
        .arg("sport.tennis")
        .arg("ace")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 1);
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
    assert_eq!(n, 0);

    // RESP3: subscribe on a multiplexed connection; messages arrive as pushes.
    let client3 = redis::Client::open(format!("{}?protocol=resp3", srv.url())).expect("url");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut con3 = client3
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("resp3 connection");
    con3.subscribe("ch3").await.expect("subscribe");
    // Any command is allowed in RESP3 while subscribed.
    let pong: String = redis::cmd("PING")
        .query_async(&mut con3)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
    let n: i64 = redis::cmd("PUBLISH")
        .arg("ch3")
        .arg("pushed")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 1);
    loop {
        let push = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a push in time")
            .expect("push channel open");
        if push.kind == redis::PushKind::Message {
            assert_eq!(
                push.data,
                vec![
                    redis::Value::BulkString(b"ch3".to_vec()),
                    redis::Value::BulkString(b"pushed".to_vec())
                ]
            );
            break;
        }
    }
    srv.stop().await;
}

/// redis-py's PubSub against the shard (Debian's python3-redis); skipped with a notice when
/// no Python can `import redis`.
#[tokio::test]
async fn redis_py_pubsub() {
    let Some(python) = shard::testing::python::redis_py("redis_py_pubsub") else {
        return;
    };
    let srv = TestShard::default().await;
    let script = r#"
import sys, redis
port = int(sys.argv[1])
r = redis.Redis(port=port)
p = r.pubsub()
p.subscribe("a")
assert p.get_message(timeout=5)["type"] == "subscribe"
p.psubscribe("b*")
assert p.get_message(timeout=5)["type"] == "psubscribe"
assert r.publish("a", "one") == 1
m = p.get_message(timeout=5)
assert (m["type"], m["channel"], m["data"]) == ("message", b"a", b"one"), m
assert r.publish("bee", "two") == 1
m = p.get_message(timeout=5)
assert (m["type"], m["pattern"], m["channel"], m["data"]) == ("pmessage", b"b*", b"bee", b"two"), m
assert r.pubsub_numsub("a") == [(b"a", 1)]
assert r.pubsub_numpat() == 1
assert r.pubsub_channels() == [b"a"]
got = []
p2 = r.pubsub()
p2.subscribe(**{"c": lambda m: got.append(m["data"])})
p2.get_message(timeout=5)
r.publish("c", "handled")
p2.get_message(timeout=5)
assert got == [b"handled"], got
p.unsubscribe()
p.punsubscribe()
p.close(); p2.close()
print("ok")
"#;
    let port = srv.addr.port().to_string();
    shard::testing::python::run_ok(python, &["-c", script, &port]).await;
    srv.stop().await;
}

/// A subscriber that never reads is disconnected once its queue passes the hard limit; the
/// publisher is never held up and goes on.
#[tokio::test]
async fn a_subscriber_that_does_not_read_is_disconnected_at_the_hard_limit() {
    let srv = TestShard::default().await;
    let mut publ = srv.raw().await;
    assert_eq!(
        publ.cmd(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0"
        ])
        .await,
        V::s("OK")
    );
    let mut sub = srv.raw().await;
    sub.send(&encode(&["SUBSCRIBE", "firehose"])).await;
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("subscribe"), V::s("firehose"), V::Int(1)])
    );
    let payload = "x".repeat(64 * 1024);
    let mut sent = 0;
    // Socket buffers take some megabytes before the queue grows; the limit cuts it off well
    // before this bound.
    while sent < 4096 {
        let n = publ.cmd(&["PUBLISH", "firehose", &payload]).await;
        sent += 1;
        if n == V::Int(0) {
            break;
        }
        assert_eq!(n, V::Int(1));
    }
    assert!(sent < 4096, "the subscriber was never disconnected");
    let info = publ.cmd(&["INFO", "stats"]).await;
    assert_eq!(
        info_int(info.as_str(), "client_output_buffer_limit_disconnections"),
        1
    );
    assert_eq!(info_int(info.as_str(), "pubsub_channels"), 0);
    assert_eq!(
        publ.cmd(&["PING"]).await,
        V::s("PONG"),
        "the publisher goes on"
    );
    assert!(
        sub.closed_after_replies().await,
        "the subscriber's connection is closed"
    );
    srv.stop().await;
}

/// Expired and evicted keys raise `expired` and `evicted` events from the store.
#[tokio::test]
async fn evicted_keys_are_notified() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    for (k, v) in [
        ("notify-keyspace-events", "Ee"),
        ("maxmemory-policy", "allkeys-random"),
    ] {
        assert_eq!(c.cmd(&["CONFIG", "SET", k, v]).await, V::s("OK"));
    }
    let mut sub = srv.raw().await;
    sub.send(&encode(&["SUBSCRIBE", "__keyevent@0__:evicted"]))
        .await;
    sub.read().await;
    let value = "v".repeat(1000);
    for i in 0..200 {
        c.cmd(&["SET", &format!("key{i}"), &value]).await;
    }
    let used = info_int(c.cmd(&["INFO", "memory"]).await.as_str(), "used_memory");
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory", &(used / 2).to_string()])
            .await,
        V::s("OK")
    );
    let msg = sub.read().await;
    let a = msg.as_arr();
    assert_eq!(a.first(), Some(&V::s("message")), "{msg:?}");
    assert_eq!(a.get(1), Some(&V::s("__keyevent@0__:evicted")));
    assert!(
        a.get(2).is_some_and(|k| k.as_str().starts_with("key")),
        "{msg:?}"
    );
    srv.stop().await;
}

/// Cluster mode: shard channels are keyed by their slot (MOVED to the owner, CROSSSLOT across
/// slots, as Redis Cluster); plain channels are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_channels_follow_slot_ownership_in_cluster_mode() {
    use shard::testing::{Config, assert_err, info_field};
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    // Manual rebalancing: slots move only when this test says so.
    let config = |dir: &std::path::Path, seeds: Vec<String>| Config {
        dir: dir.to_path_buf(),
        cluster_enabled: true,
        cluster_port: Some(0),
        cluster_seeds: seeds,
        cluster_secret: Some("pubsub-test-secret".into()),
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..Config::default()
    };
    let a = TestShard::start(config(dirs[0].path(), vec![])).await;
    let seed = a.bus_addr().await;
    let b = TestShard::start(config(dirs[1].path(), vec![seed])).await;
    let mut raw = a.raw().await;
    let field = |info: &V, name: &str| info_field(info.as_str(), name).unwrap_or_default();
    for i in 0.. {
        assert!(i < 600, "b never joined");
        if field(&raw.cmd(&["CLUSTER", "INFO"]).await, "cluster_known_nodes") == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One slot moves to b; every other stays with a.
    let (mine, theirs) = ("mine".to_string(), "{theirs}ch".to_string());
    let slot = membership::Slot::for_key(theirs.as_bytes()).get();
    assert_ne!(membership::Slot::for_key(mine.as_bytes()).get(), slot);
    let b_id = b.raw().await.cmd(&["CLUSTER", "MYID"]).await;
    let s = slot.to_string();
    assert_eq!(
        raw.cmd(&["CLUSTER", "MIGRATE", &s, &s, b_id.as_str()])
            .await,
        V::s("OK")
    );
    let moved = format!("MOVED {slot} 127.0.0.1:{}", b.addr.port());
    for i in 0.. {
        assert!(i < 600, "the slot never moved");
        if raw.cmd(&["SPUBLISH", &theirs, "probe"]).await == V::Err(moved.clone())
            && field(
                &raw.cmd(&["INFO", "cluster"]).await,
                "cluster_slots_migrating",
            ) == "0"
            && field(
                &b.raw().await.cmd(&["INFO", "cluster"]).await,
                "cluster_slots_importing",
            ) == "0"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut sub = a.raw().await;
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &theirs]).await,
        V::Err(moved.clone())
    );
    assert_err(
        &sub.cmd(&["SSUBSCRIBE", &mine, &theirs]).await,
        "CROSSSLOT Keys in request don't hash to the same slot",
    );
    assert_eq!(sub.cmd(&["SUNSUBSCRIBE", &theirs]).await, V::Err(moved));
    sub.send(&encode(&["SSUBSCRIBE", &mine])).await;
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("ssubscribe"), V::s(&mine), V::Int(1)])
    );
    assert_eq!(raw.cmd(&["SPUBLISH", &mine, "hello"]).await, V::Int(1));
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("smessage"), V::s(&mine), V::s("hello")])
    );
    // Plain channels are node-local and never redirected.
    sub.send(&encode(&["SUBSCRIBE", &theirs])).await;
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("subscribe"), V::s(&theirs), V::Int(1)])
    );
    assert_eq!(raw.cmd(&["PUBLISH", &theirs, "local"]).await, V::Int(1));
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("message"), V::s(&theirs), V::s("local")])
    );
    // PUBLISH reaches the other node's subscribers over the cluster bus; its reply counts
    // this node's receivers, as in Redis Cluster.
    let mut on_b = b.raw().await;
    on_b.send(&encode(&["SUBSCRIBE", "news"])).await;
    assert_eq!(
        on_b.read().await,
        V::Arr(vec![V::s("subscribe"), V::s("news"), V::Int(1)])
    );
    for i in 0..3 {
        let payload = format!("from a {i}");
        assert_eq!(raw.cmd(&["PUBLISH", "news", &payload]).await, V::Int(0));
        assert_eq!(
            on_b.read().await,
            V::Arr(vec![V::s("message"), V::s("news"), V::s(&payload)])
        );
    }
    let mut publ_b = b.raw().await;
    assert_eq!(publ_b.cmd(&["PUBLISH", &theirs, "from b"]).await, V::Int(0));
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("message"), V::s(&theirs), V::s("from b")])
    );
    // Shard channels stay on their node.
    assert_eq!(publ_b.cmd(&["SPUBLISH", &theirs, "shard"]).await, V::Int(0));
    // The shard channel's slot moves away: its subscribers are told, as by Redis Cluster.
    let s = membership::Slot::for_key(mine.as_bytes()).get().to_string();
    assert_eq!(
        raw.cmd(&["CLUSTER", "MIGRATE", &s, &s, b_id.as_str()])
            .await,
        V::s("OK")
    );
    assert_eq!(
        sub.read().await,
        V::Arr(vec![V::s("sunsubscribe"), V::s(&mine), V::Int(0)])
    );
    b.stop().await;
    a.stop().await;
}

/// Both settings can come from the configuration (file, environment, flags) too.
#[tokio::test]
async fn settings_from_the_configuration() {
    let srv = TestShard::start(shard::testing::Config {
        notify_keyspace_events: "KEA".into(),
        client_output_buffer_limit: "pubsub 1mb 0 0".into(),
        ..shard::testing::Config::default()
    })
    .await;
    let mut c = srv.raw().await;
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]).await,
        V::Arr(vec![V::s("notify-keyspace-events"), V::s("AKE")])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "client-output-buffer-limit"])
            .await,
        V::Arr(vec![
            V::s("client-output-buffer-limit"),
            V::s("normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 0 0")
        ])
    );
    srv.stop().await;
    let bad = shard::testing::Config {
        notify_keyspace_events: "KEq".into(),
        ..shard::testing::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = shard::run(listener, bad, std::future::pending())
        .await
        .expect_err("an invalid flag is refused");
    assert!(err.to_string().contains("notify-keyspace-events"), "{err}");
}

/// HELLO and subscribed mode, as Redis: over RESP2 HELLO is refused while subscribed; over
/// RESP3 `HELLO 2` is allowed and puts the connection under RESP2's rules.
#[tokio::test]
async fn hello_while_subscribed_matches_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut sides = Vec::new();
    for addr in [redis.addr, srv.addr] {
        let mut resp2 = Side::new(addr, false).await;
        let mut resp3 = Side::new(addr, true).await;
        let mut seen = Vec::new();
        seen.push(resp2.sub(&["SUBSCRIBE", "c"]).await);
        seen.push(resp2.sub(&["HELLO", "3"]).await);
        seen.push(resp2.sub(&["HELLO"]).await);
        seen.push(resp3.sub(&["SUBSCRIBE", "c"]).await);
        // HELLO's own reply names the server and the connection: not compared.
        resp3.sub(&["HELLO", "2"]).await;
        resp3.sub.resp3 = false;
        seen.push(resp3.sub(&["GET", "c"]).await);
        seen.push(resp3.sub(&["UNSUBSCRIBE"]).await);
        seen.push(resp3.sub(&["GET", "c"]).await);
        sides.push(seen);
    }
    assert_eq!(sides[1], sides[0]);
    srv.stop().await;
}

/// A blocked client served by another client's push: the push's event, then the pop's (and
/// `del` when it emptied the key), as in Redis.
#[tokio::test]
async fn events_of_a_blocked_client_served_later_match_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut seen = Vec::new();
    for addr in [redis.addr, srv.addr] {
        let mut side = Side::new(addr, false).await;
        let set = side
            .publ(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
            .await;
        assert_eq!(set, "+OK\r\n");
        side.sub(&["PSUBSCRIBE", "__key*__:*"]).await;
        let mut blocked = Raw::connect(addr).await;
        let mut events = Vec::new();
        for (block, write) in [
            (vec!["BLPOP", "bl", "0"], vec!["RPUSH", "bl", "x"]),
            (vec!["BRPOP", "bl", "0"], vec!["LPUSH", "bl", "y", "z"]),
            (
                vec!["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"],
                vec!["RPUSH", "src", "m"],
            ),
            (vec!["BZPOPMIN", "zs", "0"], vec!["ZADD", "zs", "1", "a"]),
            (
                vec!["BZMPOP", "0", "1", "zs", "MAX", "COUNT", "2"],
                vec!["ZADD", "zs", "1", "a", "2", "b", "3", "c"],
            ),
        ] {
            blocked.send(&encode(&block)).await;
            // Until the client is blocked (its command was read and ran).
            loop {
                let info = side.publ(&["INFO", "clients"]).await;
                if info.contains("blocked_clients:1\r\n") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            side.publ(&write).await;
            events.push(String::from_utf8_lossy(&blocked.reply().await).into_owned());
            events.extend(side.sub(&["PING"]).await);
        }
        seen.push(events);
    }
    assert_eq!(seen[1], seen[0]);
    assert!(seen[0].len() > 15, "{:?}", seen[0]);
    srv.stop().await;
}
