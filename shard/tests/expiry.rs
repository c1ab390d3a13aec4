//! Key expiry under a paused tokio clock: the shard's clock follows tokio's, so these tests
//! move time by sleeping. A paused runtime also auto-advances to the next timer whenever every
//! task is idle (the server's 100 ms background tick included), so every bound below keeps
//! margins of seconds.

use std::time::Duration;

use shard::testing::{Raw, TestShard, V, encode, info_field};

async fn sleep_secs(s: u64) {
    tokio::time::sleep(Duration::from_secs(s)).await;
}

async fn info_stat(c: &mut Raw, field: &str) -> String {
    let info = c.cmd(&["INFO", "stats"]).await;
    info_field(info.as_str(), field).unwrap_or_else(|| panic!("INFO stats has no {field}"))
}

#[tokio::test(start_paused = true)]
async fn expired_keys_disappear_for_readers() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", "5000"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["SET", "forever", "v"]).await, V::s("OK"));
    sleep_secs(1).await;
    assert_eq!(
        c.cmd(&["GET", "k"]).await,
        V::s("v"),
        "alive before the deadline"
    );
    let pttl = c.cmd(&["PTTL", "k"]).await.as_int();
    assert!((2_000..=4_000).contains(&pttl), "PTTL after 1s: {pttl}");
    sleep_secs(10).await;
    assert_eq!(c.cmd(&["GET", "k"]).await, V::Nil);
    assert_eq!(c.cmd(&["TTL", "k"]).await, V::Int(-2));
    assert_eq!(c.cmd(&["PTTL", "k"]).await, V::Int(-2));
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, V::Int(0));
    assert_eq!(c.cmd(&["TYPE", "k"]).await, V::s("none"));
    assert_eq!(c.cmd(&["STRLEN", "k"]).await, V::Int(0));
    assert_eq!(c.cmd(&["KEYS", "*"]).await, V::strs(&["forever"]));
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(1));
    assert_eq!(c.cmd(&["INCR", "k"]).await, V::Int(1), "a fresh key");
    assert_eq!(
        c.cmd(&["TTL", "k"]).await,
        V::Int(-1),
        "without the old TTL"
    );
    assert_eq!(info_stat(&mut c, "expired_keys").await, "1");
    drop(c);
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn active_expiry_reclaims_keys_nobody_reads() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut wire = Vec::new();
    for i in 0..2000 {
        wire.extend(encode(&["SET", &format!("short:{i}"), "v", "EX", "2"]));
    }
    for i in 0..10 {
        wire.extend(encode(&["SET", &format!("persistent:{i}"), "v"]));
        wire.extend(encode(&["SET", &format!("long:{i}"), "v", "EX", "1000"]));
    }
    c.send(&wire).await;
    for i in 0..2020 {
        assert_eq!(c.read().await, V::s("OK"), "reply {i}");
    }
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(2020));
    let keyspace = c.cmd(&["INFO", "keyspace"]).await;
    assert!(
        keyspace.as_str().contains("db0:keys=2020,expires=2010,"),
        "{keyspace:?}"
    );

    sleep_secs(10).await;
    // DBSIZE counts keys still stored (expired or not): only the background sweep, never a
    // read, can have removed the 2000 short-lived keys.
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(20));
    assert_eq!(info_stat(&mut c, "expired_keys").await, "2000");
    let keyspace = c.cmd(&["INFO", "keyspace"]).await;
    assert!(
        keyspace.as_str().contains("db0:keys=20,expires=10,"),
        "{keyspace:?}"
    );
    assert_eq!(
        c.cmd(&["EXISTS", "persistent:3", "long:7"]).await,
        V::Int(2)
    );
    assert_eq!(c.cmd(&["EXISTS", "short:0", "short:1999"]).await, V::Int(0));
    drop(c);
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn expire_in_the_past_deletes_immediately() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    for k in ["a", "b", "c", "d", "keep"] {
        assert_eq!(c.cmd(&["SET", k, "v"]).await, V::s("OK"));
    }
    assert_eq!(c.cmd(&["EXPIREAT", "a", "1"]).await, V::Int(1));
    assert_eq!(c.cmd(&["PEXPIREAT", "b", "1000"]).await, V::Int(1));
    assert_eq!(c.cmd(&["EXPIRE", "c", "-10"]).await, V::Int(1));
    assert_eq!(c.cmd(&["PEXPIRE", "d", "0"]).await, V::Int(1));
    // Deleted, not merely hidden: DBSIZE counts stored keys.
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(1));
    assert_eq!(c.cmd(&["EXISTS", "a", "b", "c", "d"]).await, V::Int(0));
    assert_eq!(c.cmd(&["EXPIREAT", "missing", "1"]).await, V::Int(0));
    // A deadline a long way ahead (as a Unix time) keeps the key.
    let now_s: i64 = c.cmd(&["TIME"]).await.as_arr()[0]
        .as_str()
        .parse()
        .expect("TIME seconds");
    let at = (now_s + 100).to_string();
    assert_eq!(c.cmd(&["EXPIREAT", "keep", &at]).await, V::Int(1));
    let ttl = c.cmd(&["TTL", "keep"]).await.as_int();
    assert!(
        (95..=100).contains(&ttl),
        "TTL after EXPIREAT now+100: {ttl}"
    );
    sleep_secs(120).await;
    assert_eq!(c.cmd(&["EXISTS", "keep"]).await, V::Int(0));
    drop(c);
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ttl_decreases_as_time_passes() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "100"]).await, V::s("OK"));
    assert!((99..=100).contains(&c.cmd(&["TTL", "k"]).await.as_int()));
    let p0 = c.cmd(&["PTTL", "k"]).await.as_int();
    assert!((98_000..=100_000).contains(&p0), "PTTL at start: {p0}");
    sleep_secs(30).await;
    let t1 = c.cmd(&["TTL", "k"]).await.as_int();
    assert!((67..=70).contains(&t1), "TTL after 30s: {t1}");
    let p1 = c.cmd(&["PTTL", "k"]).await.as_int();
    assert!(p1 <= p0 - 30_000, "PTTL {p1} vs {p0}");
    sleep_secs(60).await;
    let t2 = c.cmd(&["TTL", "k"]).await.as_int();
    assert!((7..=10).contains(&t2), "TTL after 90s: {t2}");
    let e = c.cmd(&["EXPIRETIME", "k"]).await.as_int();
    let pe = c.cmd(&["PEXPIRETIME", "k"]).await.as_int();
    assert_eq!(e, pe / 1000, "EXPIRETIME does not move");
    sleep_secs(15).await;
    assert_eq!(c.cmd(&["TTL", "k"]).await, V::Int(-2));
    drop(c);
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn set_keepttl_keeps_the_deadline() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v1", "EX", "100"]).await, V::s("OK"));
    let deadline = c.cmd(&["PEXPIRETIME", "k"]).await.as_int();
    sleep_secs(40).await;
    assert_eq!(c.cmd(&["SET", "k", "v2", "KEEPTTL"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, V::Int(deadline));
    let ttl = c.cmd(&["TTL", "k"]).await.as_int();
    assert!((57..=60).contains(&ttl), "TTL after KEEPTTL at 40s: {ttl}");
    // INCR/APPEND keep TTLs too; a plain SET clears it.
    assert_eq!(c.cmd(&["APPEND", "k", "!"]).await, V::Int(3));
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, V::Int(deadline));
    assert_eq!(c.cmd(&["SET", "other", "x", "EX", "100"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["SET", "other", "y"]).await, V::s("OK"));
    sleep_secs(70).await;
    assert_eq!(
        c.cmd(&["GET", "k"]).await,
        V::Nil,
        "expired at the old deadline"
    );
    assert_eq!(
        c.cmd(&["GET", "other"]).await,
        V::s("y"),
        "plain SET persisted"
    );
    // KEEPTTL on a key without a TTL keeps it persistent.
    assert_eq!(c.cmd(&["SET", "other", "z", "KEEPTTL"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["TTL", "other"]).await, V::Int(-1));
    drop(c);
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn getex_changes_the_deadline() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "100"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["SET", "p", "v", "EX", "5"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GETEX", "k", "PX", "5000"]).await, V::s("v"));
    let pttl = c.cmd(&["PTTL", "k"]).await.as_int();
    assert!(
        (3_000..=5_000).contains(&pttl),
        "PTTL after GETEX PX 5000: {pttl}"
    );
    assert_eq!(
        c.cmd(&["GETEX", "k"]).await,
        V::s("v"),
        "no option: TTL kept"
    );
    assert!(c.cmd(&["PTTL", "k"]).await.as_int() <= 5_000);
    assert_eq!(c.cmd(&["GETEX", "p", "PERSIST"]).await, V::s("v"));
    assert_eq!(c.cmd(&["TTL", "p"]).await, V::Int(-1));
    sleep_secs(10).await;
    assert_eq!(
        c.cmd(&["GET", "k"]).await,
        V::Nil,
        "expired after GETEX PX 5000"
    );
    assert_eq!(
        c.cmd(&["GET", "p"]).await,
        V::s("v"),
        "GETEX PERSIST kept it"
    );
    assert_eq!(c.cmd(&["GETEX", "p", "EX", "100"]).await, V::s("v"));
    sleep_secs(50).await;
    let ttl = c.cmd(&["TTL", "p"]).await.as_int();
    assert!(
        (47..=50).contains(&ttl),
        "TTL 50s after GETEX EX 100: {ttl}"
    );
    drop(c);
    srv.stop().await;
}
