//! MULTI/EXEC through the proxy over three shards: a differential test against a real
//! `redis-server` (every reply compared byte for byte), cross-slot transactions aborted with
//! Redis Cluster's error, the redis crate's atomic pipeline, and atomicity against
//! concurrent clients.
//!
//! Needs `redis-server` on PATH for the differential test (`AUTOCACHE_SKIP_EXTERNAL=1` skips
//! it when missing).

mod common;

use common::*;
use shard::testing::{Raw, Step, V, differential, redis_server};

const OPS: usize = 10_000;

/// Keys in one slot (the transaction's), as a Redis Cluster client must use.
const KEYS: [&str; 4] = ["{t}a", "{t}b", "{t}l", "{t}s"];

fn step(rng: &mut fastrand::Rng) -> Step {
    let mut key = || KEYS[rng.usize(..KEYS.len())].to_string();
    let (k, k2) = (key(), key());
    let v = format!("v{}", rng.u16(..1000));
    let m = format!("m{}", rng.u8(..4));
    let s = |x: &[&str]| x.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let args = match rng.u8(..100) {
        0..=11 => s(&["MULTI"]),
        12..=21 => s(&["EXEC"]),
        22..=23 => s(&["DISCARD"]),
        24 => s(&["UNWATCH"]),
        25..=34 => vec!["SET".into(), k, v],
        35..=42 => vec!["GET".into(), k],
        43..=49 => vec!["INCR".into(), k],
        50..=53 => vec!["DEL".into(), k],
        54..=59 => vec!["LPUSH".into(), k, v],
        60..=63 => vec!["LPOP".into(), k],
        64..=68 => vec!["SADD".into(), k, m],
        69..=71 => vec!["SMEMBERS".into(), k],
        72..=75 => vec!["HSET".into(), k, "f".into(), v],
        76..=78 => vec!["MGET".into(), k, k2],
        79..=80 => vec!["SET".into(), k],
        81 => s(&["NOSUCHCOMMAND", "x"]),
        82..=84 => vec!["EXPIRE".into(), k, "100".into()],
        85..=87 => vec!["APPEND".into(), k, "x".into()],
        88..=89 => vec!["RENAME".into(), k, k2],
        90..=91 => vec!["PING".into()],
        92..=93 => vec!["LRANGE".into(), k, "0".into(), "-1".into()],
        _ => vec!["TYPE".into(), k],
    };
    // Sets come back in either order.
    if args[0] == "SMEMBERS" {
        Step::unordered(args)
    } else {
        Step::exact(args)
    }
}

#[tokio::test]
async fn transactions_match_redis_through_the_proxy() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut got = proxy.raw().await;
    let tally = differential(&mut want, &mut got, OPS, 0x7e11, step).await;
    eprintln!("{OPS} operations through the proxy: {tally:?}");
    assert!(tally.arrays > OPS / 20, "{tally:?}");
    // Leave MULTI (if open) the same way on both.
    assert_eq!(got.text(&["DISCARD"]).await, want.text(&["DISCARD"]).await);
    for k in KEYS {
        assert_eq!(got.text(&["TYPE", k]).await, want.text(&["TYPE", k]).await);
    }
}

/// A transaction's keys share one slot: a command whose keys hash elsewhere is answered
/// `-CROSSSLOT` and the transaction is aborted (nothing of it runs).
#[tokio::test]
async fn cross_slot_transactions_abort() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["SET", "a", "1"]).await, V::s("QUEUED"));
    let e = c.text(&["SET", "b", "2"]).await;
    assert!(e.starts_with("-CROSSSLOT"), "{e}");
    let e = c.text(&["EXEC"]).await;
    assert!(e.starts_with("-EXECABORT"), "{e}");
    assert_eq!(c.text(&["GET", "a"]).await, "$-1\r\n", "nothing ran");
    // Commands the proxy answers itself, or that span shards, are refused inside MULTI.
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    for refused in [
        &["CLIENT", "SETNAME", "x"][..],
        &["DBSIZE"],
        &["AUTH", "pw"],
    ] {
        let e = c.text(refused).await;
        assert!(e.starts_with("-ERR"), "{refused:?}: {e}");
    }
    assert_eq!(c.cmd(&["DISCARD"]).await, V::s("OK"));
    // Watched keys and the transaction's share a slot too.
    assert_eq!(c.cmd(&["WATCH", "a"]).await, V::s("OK"));
    let e = c.text(&["WATCH", "b"]).await;
    assert!(e.starts_with("-CROSSSLOT"), "{e}");
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    let e = c.text(&["SET", "b", "1"]).await;
    assert!(e.starts_with("-CROSSSLOT"), "{e}");
    assert_eq!(c.cmd(&["DISCARD"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["UNWATCH"]).await, V::s("OK"));
}

/// WATCH through the proxy, with a second client changing watched keys: every reply of both
/// connections compared with redis-server's.
#[tokio::test]
async fn watch_matches_redis_through_the_proxy() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let (mut want, mut want_other) = (
        Raw::connect(redis.addr).await,
        Raw::connect(redis.addr).await,
    );
    let (mut got, mut got_other) = (proxy.raw().await, proxy.raw().await);
    let mut rng = fastrand::Rng::with_seed(0x7e12);
    let mut history: std::collections::VecDeque<String> = Default::default();
    let (mut execs, mut nulls) = (0, 0);
    for i in 0..OPS / 2 {
        let k = KEYS[rng.usize(..KEYS.len())];
        let other = rng.u8(..100) < 25;
        let args: Vec<String> = match rng.u8(..100) {
            _ if other => vec!["INCR".into(), k.into()],
            0..=14 => vec!["WATCH".into(), k.into()],
            15..=24 => vec!["MULTI".into()],
            25..=39 => vec!["EXEC".into()],
            40..=44 => vec!["UNWATCH".into()],
            45..=49 => vec!["DISCARD".into()],
            50..=74 => vec!["INCR".into(), k.into()],
            _ => vec!["GET".into(), k.into()],
        };
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (w, g) = if other {
            (&mut want_other, &mut got_other)
        } else {
            (&mut want, &mut got)
        };
        let expected = w.text(&a).await;
        let actual = g.text(&a).await;
        history.push_back(format!(
            "{} {a:?} -> {expected:?}",
            if other { "other" } else { "tx   " }
        ));
        if history.len() > 24 {
            history.pop_front();
        }
        assert_eq!(
            actual,
            expected,
            "op {i} differs; the last operations:\n{}",
            history.iter().cloned().collect::<Vec<_>>().join("\n")
        );
        if a[0] == "EXEC" && !expected.starts_with('-') {
            execs += 1;
            nulls += usize::from(expected == "*-1\r\n");
        }
    }
    eprintln!("{execs} EXECs, {nulls} failed on a watched key");
    assert!(execs > 100 && nulls > 20, "{execs} {nulls}");
}

/// The redis crate's atomic pipeline, from several clients at once: no reader sees half a
/// transaction, and every increment lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atomic_pipelines_through_the_proxy() {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut c = proxy.redis().await;
        writers.push(tokio::spawn(async move {
            for _ in 0..200 {
                let (_, _): (i64, i64) = redis::pipe()
                    .atomic()
                    .incr("{x}a", 1)
                    .incr("{x}b", 1)
                    .query_async(&mut c)
                    .await
                    .expect("transaction");
            }
        }));
    }
    let mut reader = proxy.redis().await;
    let mut reads = 0;
    while writers.iter().any(|w| !w.is_finished()) && reads < 20_000 {
        let (a, b): (Option<i64>, Option<i64>) = redis::cmd("MGET")
            .arg("{x}a")
            .arg("{x}b")
            .query_async(&mut reader)
            .await
            .expect("mget");
        assert_eq!(a, b, "a reader saw half a transaction");
        reads += 1;
    }
    for w in writers {
        w.await.expect("writer");
    }
    let n: i64 = redis::cmd("GET")
        .arg("{x}a")
        .query_async(&mut reader)
        .await
        .expect("get");
    assert_eq!(n, 800);
}

/// A RESP3 client gets each reply inside EXEC shaped as that command's own reply (maps,
/// sets, doubles), as from redis-server.
#[tokio::test]
async fn exec_replies_in_resp3_match_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::over(&shards).await;
    let mut want = Raw::connect(redis.addr).await;
    let mut got = proxy.raw().await;
    for c in [&mut want, &mut got] {
        let hello = c.text(&["HELLO", "3"]).await;
        assert!(hello.starts_with('%'), "{hello}");
    }
    let script: [&[&str]; 11] = [
        &["MULTI"],
        &["HSET", "{r}h", "f", "v", "g", "w"],
        &["HGETALL", "{r}h"],
        &["ZADD", "{r}z", "1.5", "m", "2", "n"],
        &["ZSCORE", "{r}z", "m"],
        &["ZRANGE", "{r}z", "0", "-1", "WITHSCORES"],
        &["ZPOPMIN", "{r}z"],
        &["SADD", "{r}s", "a"],
        &["SMEMBERS", "{r}s"],
        &["GET", "{r}missing"],
        &["EXEC"],
    ];
    for cmd in script {
        assert_eq!(got.text(cmd).await, want.text(cmd).await, "{cmd:?}");
    }
}
