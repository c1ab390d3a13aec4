//! CLIENT TRACKING (server-assisted client-side caching), checked against Redis's behaviour:
//! with a raw RESP3 connection (exact push frames) and with the `redis` crate's RESP3 push
//! channel, in every mode, through both tiers, and for keys that vanish by themselves.

use std::time::Duration;

use shard::testing::{Raw, TestShard, V};

fn invalidate(keys: &[&str]) -> V {
    V::Arr(vec![V::s("invalidate"), V::strs(keys)])
}

async fn resp3(srv: &TestShard) -> Raw {
    let mut c = srv.raw().await;
    let hello = c.cmd(&["HELLO", "3"]).await;
    assert!(matches!(hello, V::Arr(_) | V::Map(_)), "{hello:?}");
    c
}

/// The reply after pushes: pushes come after the reply of the command that caused them.
async fn expect_push(c: &mut Raw, want: V) {
    assert_eq!(c.read().await, want);
}

#[tokio::test]
async fn default_mode_invalidates_once_per_read() {
    let srv = TestShard::default().await;
    let mut reader = resp3(&srv).await;
    let mut writer = srv.raw().await;
    assert_eq!(reader.cmd(&["CLIENT", "TRACKING", "on"]).await, V::s("OK"));
    writer.cmd(&["SET", "k", "1"]).await;
    assert_eq!(reader.cmd(&["GET", "k"]).await, V::s("1"));
    let info = writer.cmd(&["INFO"]).await;
    assert_eq!(
        shard::testing::info_field(info.as_str(), "tracking_clients").as_deref(),
        Some("1")
    );
    assert_eq!(
        shard::testing::info_field(info.as_str(), "tracking_total_keys").as_deref(),
        Some("1")
    );
    // A key never read is not tracked.
    writer.cmd(&["SET", "other", "x"]).await;
    writer.cmd(&["SET", "k", "2"]).await;
    expect_push(&mut reader, invalidate(&["k"])).await;
    // Told once: the next change is silent until the key is read again.
    writer.cmd(&["SET", "k", "3"]).await;
    assert_eq!(reader.cmd(&["PING"]).await, V::s("PONG"));
    assert_eq!(
        reader.cmd(&["MGET", "k", "other"]).await,
        V::strs(&["3", "x"])
    );
    writer.cmd(&["DEL", "k", "other"]).await;
    let push = reader.read().await;
    let keys = match &push {
        V::Arr(a) if a.len() == 2 && a[0] == V::s("invalidate") => a[1].as_arr().to_vec(),
        other => panic!("not an invalidation: {other:?}"),
    };
    let mut keys: Vec<&str> = keys.iter().map(V::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["k", "other"]);
    srv.stop().await;
}

#[tokio::test]
async fn own_writes_are_invalidated_unless_noloop() {
    let srv = TestShard::default().await;
    let mut c = resp3(&srv).await;
    c.cmd(&["CLIENT", "TRACKING", "on"]).await;
    c.cmd(&["GET", "k"]).await;
    // The write's reply comes first, then the message about the key it changed.
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, V::s("OK"));
    expect_push(&mut c, invalidate(&["k"])).await;

    let mut n = resp3(&srv).await;
    n.cmd(&["CLIENT", "TRACKING", "on", "NOLOOP"]).await;
    n.cmd(&["GET", "k"]).await;
    n.cmd(&["SET", "k", "w"]).await;
    assert_eq!(
        n.cmd(&["PING"]).await,
        V::s("PONG"),
        "no message for own write"
    );
    srv.stop().await;
}

#[tokio::test]
async fn bcast_prefixes_and_flush() {
    let srv = TestShard::default().await;
    let mut c = resp3(&srv).await;
    let mut w = srv.raw().await;
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"])
            .await,
        V::s("OK")
    );
    w.cmd(&["SET", "order:1", "x"]).await;
    w.cmd(&["HSET", "user:1", "f", "v"]).await;
    expect_push(&mut c, invalidate(&["user:1"])).await;
    w.cmd(&["FLUSHALL"]).await;
    expect_push(&mut c, V::Arr(vec![V::s("invalidate"), V::Nil])).await;
    srv.stop().await;
}

#[tokio::test]
async fn optin_tracks_only_after_caching_yes() {
    let srv = TestShard::default().await;
    let mut c = resp3(&srv).await;
    let mut w = srv.raw().await;
    c.cmd(&["CLIENT", "TRACKING", "on", "OPTIN"]).await;
    c.cmd(&["GET", "a"]).await;
    assert_eq!(c.cmd(&["CLIENT", "CACHING", "yes"]).await, V::s("OK"));
    c.cmd(&["GET", "b"]).await;
    c.cmd(&["GET", "c"]).await; // the flag covered one command only
    w.cmd(&["MSET", "a", "1", "b", "2", "c", "3"]).await;
    expect_push(&mut c, invalidate(&["b"])).await;
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    srv.stop().await;
}

#[tokio::test]
async fn redirect_to_another_connection_and_broken_redirect() {
    let srv = TestShard::default().await;
    let mut inv = resp3(&srv).await;
    let id = inv.cmd(&["CLIENT", "ID"]).await.as_int().to_string();
    let mut data = srv.raw().await; // RESP2 data connection, as client-side caches use
    assert_eq!(
        data.cmd(&["CLIENT", "TRACKING", "on", "REDIRECT", &id])
            .await,
        V::s("OK")
    );
    assert_eq!(
        data.cmd(&["CLIENT", "GETREDIR"]).await.as_int().to_string(),
        id
    );
    data.cmd(&["GET", "k"]).await;
    data.cmd(&["SET", "k", "1"]).await;
    expect_push(&mut inv, invalidate(&["k"])).await;
    assert_eq!(
        data.cmd(&["CLIENT", "TRACKING", "on", "REDIRECT", "999999"])
            .await,
        V::Err("ERR The client ID you want redirect to does not exist".into())
    );

    // When the target goes away, a RESP3 tracking connection is told.
    let mut inv2 = resp3(&srv).await;
    let id2 = inv2.cmd(&["CLIENT", "ID"]).await.as_int().to_string();
    let mut c = resp3(&srv).await;
    c.cmd(&["CLIENT", "TRACKING", "on", "REDIRECT", &id2]).await;
    c.cmd(&["GET", "z"]).await;
    inv2.cmd(&["QUIT"]).await;
    assert!(inv2.try_read().await.is_none());
    srv.raw().await.cmd(&["SET", "z", "1"]).await;
    expect_push(&mut c, V::Arr(vec![V::s("tracking-redir-broken")])).await;
    srv.stop().await;
}

#[tokio::test]
async fn option_errors_match_redis() {
    let srv = TestShard::default().await;
    let mut c = resp3(&srv).await;
    let err = |s: &str| V::Err(format!("ERR {s}"));
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "on", "PREFIX", "a"]).await,
        err("PREFIX option requires BCAST mode to be enabled")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"])
            .await,
        err("You can't specify both OPTIN mode and OPTOUT mode")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]).await,
        err("OPTIN and OPTOUT are not compatible with BCAST")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "maybe"]).await,
        V::Err("ERR syntax error".into())
    );
    assert_eq!(
        c.cmd(&["CLIENT", "CACHING", "yes"]).await,
        err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"
        )
    );
    c.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab"])
        .await;
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "abc"])
            .await,
        err(
            "Prefix 'abc' overlaps with an existing prefix 'ab'. Prefixes for a single client must not overlap."
        )
    );
    assert_eq!(
        c.cmd(&["CLIENT", "TRACKING", "on"]).await,
        err(
            "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."
        )
    );
    let info = c.cmd(&["CLIENT", "TRACKINGINFO"]).await;
    let text = format!("{info:?}");
    assert!(text.contains("bcast") && text.contains("ab"), "{text}");
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "off"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["CLIENT", "GETREDIR"]).await, V::Int(-1));
    // The connection lives on after every error.
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    srv.stop().await;
}

#[tokio::test]
async fn keys_in_the_warm_tier() {
    let srv = TestShard::tiny_warm().await;
    let mut c = resp3(&srv).await;
    let mut w = srv.raw().await;
    c.cmd(&["CLIENT", "TRACKING", "on"]).await;
    w.cmd(&["SET", "cold", "v"]).await;
    w.cmd(&["SET", "push-it-down", "v"]).await;
    assert_eq!(c.cmd(&["GET", "cold"]).await, V::s("v"));
    // Demotion to the warm tier is not a change; a write to the warm key is.
    w.cmd(&["SET", "more", "v"]).await;
    w.cmd(&["APPEND", "cold", "w"]).await;
    expect_push(&mut c, invalidate(&["cold"])).await;
    srv.stop().await;
}

/// A key that expires by itself is invalidated too, by the background expiry cycle (no
/// command names it). The shard's clock follows tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn keys_that_expire_by_themselves() {
    let srv = TestShard::default().await;
    let mut c = resp3(&srv).await;
    let mut w = srv.raw().await;
    c.cmd(&["CLIENT", "TRACKING", "on"]).await;
    w.cmd(&["SET", "ttl", "v", "EX", "5"]).await;
    assert_eq!(c.cmd(&["GET", "ttl"]).await, V::s("v"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    expect_push(&mut c, invalidate(&["ttl"])).await;
    assert_eq!(w.cmd(&["DBSIZE"]).await, V::Int(0));
    srv.stop().await;
}

#[tokio::test]
async fn redis_crate_receives_pushes() {
    let srv = TestShard::default().await;
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", srv.addr)).expect("url");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cfg = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut con = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("connect");
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("on")
        .query_async(&mut con)
        .await
        .expect("tracking on");
    let _: Option<String> = redis::cmd("GET")
        .arg("hot")
        .query_async(&mut con)
        .await
        .expect("get");
    let mut other = srv.redis().await;
    let _: () = redis::cmd("SET")
        .arg("hot")
        .arg("1")
        .query_async(&mut other)
        .await
        .expect("set");
    let push = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("push within 30 s")
        .expect("channel open");
    assert_eq!(push.kind, redis::PushKind::Invalidate);
    assert_eq!(
        push.data,
        vec![redis::Value::Array(vec![redis::Value::BulkString(
            b"hot".to_vec()
        )])]
    );
    srv.stop().await;
}

/// PFCOUNT that refreshes an HLL's cached cardinality rewrites the value's bytes: as in Redis,
/// trackers of the key are told (a near cache holding its GET must drop it), and a WATCH of it
/// fails the transaction. A PFCOUNT answered from a valid cache changes nothing.
#[tokio::test]
async fn pfcount_cache_refresh_is_a_change() {
    let srv = TestShard::default().await;
    let mut reader = resp3(&srv).await;
    let mut writer = srv.raw().await;
    assert_eq!(reader.cmd(&["CLIENT", "TRACKING", "on"]).await, V::s("OK"));
    assert_eq!(writer.cmd(&["PFADD", "h", "a", "b"]).await, V::Int(1));
    let before = reader.cmd(&["GET", "h"]).await;
    assert_eq!(writer.cmd(&["PFCOUNT", "h"]).await, V::Int(2));
    expect_push(&mut reader, invalidate(&["h"])).await;
    assert_ne!(
        reader.cmd(&["GET", "h"]).await,
        before,
        "the cache bytes changed"
    );
    // Cached now: PFCOUNT again leaves the value (and the tracker) alone.
    assert_eq!(writer.cmd(&["PFCOUNT", "h"]).await, V::Int(2));
    assert_eq!(reader.cmd(&["PING"]).await, V::s("PONG"));

    assert_eq!(writer.cmd(&["PFADD", "h", "c"]).await, V::Int(1));
    assert_eq!(writer.cmd(&["WATCH", "h"]).await, V::s("OK"));
    let mut other = srv.raw().await;
    assert_eq!(other.cmd(&["PFCOUNT", "h"]).await, V::Int(3));
    assert_eq!(writer.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(writer.cmd(&["PING"]).await, V::s("QUEUED"));
    assert_eq!(writer.cmd(&["EXEC"]).await, V::Nil);
    srv.stop().await;
}
