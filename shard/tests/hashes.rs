//! Hashes: a differential test against a real `redis-server` (every reply compared, byte for
//! byte or as a multiset where Redis's order is arbitrary, on the RAM tier and through the warm
//! tier), plus the listpack's insertion order and the encodings, compared with Redis.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use std::time::Instant;

use shard::testing::{Raw, TestShard, V, differential as run, random, redis_server};

/// Operations per differential run.
const OPS: usize = 10_000;

/// Sorted elements of an array reply.
fn sorted(v: V) -> Vec<V> {
    let mut m = v.as_arr().to_vec();
    m.sort_by_key(|x| format!("{x:?}"));
    m
}

/// redis-server started without a config file says `hash-max-listpack-entries 512`; the
/// shard's default (and Redis's redis.conf) is 128.
async fn redis_limits(want: &mut Raw) {
    let set = ["CONFIG", "SET", "hash-max-listpack-entries", "128"];
    assert_eq!(want.cmd(&set).await, V::s("OK"));
}

/// Sends the same seeded random operations to Redis and to `srv`, comparing every reply, then
/// the final contents.
async fn differential(srv: TestShard, seed: u64, encodings: bool) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    redis_limits(&mut want).await;
    // The table rows first: arity, flags, key positions, ACL categories and key specs.
    for name in random::hash::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let started = Instant::now();
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::hash::step_with(rng, "", encodings)
    })
    .await;
    for k in random::hash::KEYS {
        assert_eq!(got.text(&["TYPE", k]).await, want.text(&["TYPE", k]).await);
        if got.cmd(&["TYPE", k]).await == V::s("hash") {
            let probe = ["HGETALL", k];
            assert_eq!(
                sorted(got.cmd(&probe).await),
                sorted(want.cmd(&probe).await)
            );
            let probe = ["OBJECT", "ENCODING", k];
            if encodings {
                assert_eq!(got.cmd(&probe).await, want.cmd(&probe).await);
            }
        }
    }
    eprintln!("{OPS} operations in {:?}: {tally:?}", started.elapsed());
    assert!(
        tally.errors > OPS / 100 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    assert!(tally.arrays > OPS / 20, "{tally:?}");
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x4a54, true).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    // A hash read back from the warm tier re-derives its encoding: not compared there.
    differential(TestShard::tiny_warm().await, 0x4a5eed, false).await;
}

/// A listpack hash answers in insertion order, an updated value keeping its place, as Redis's
/// does; conversions follow Redis's limits, one way.
#[tokio::test]
async fn insertion_order_and_encodings_match_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    redis_limits(&mut want).await;
    let long = "f".repeat(65);
    let fields: Vec<String> = (0..129).map(|i| format!("n{i}")).collect();
    let mut steps: Vec<Vec<&str>> = vec![
        vec!["HSET", "h", "c", "1", "a", "2", "b", "3"],
        vec!["HSET", "h", "a", "9", "d", "4"],
        vec!["HDEL", "h", "c"],
        vec!["HSET", "h", "c", "5"],
        vec!["HINCRBY", "h", "b", "10"],
        vec!["HINCRBYFLOAT", "h", "e", "1.5"],
        vec!["HSETNX", "h", "f", ""],
        vec!["HGETALL", "h"],
        vec!["HKEYS", "h"],
        vec!["HVALS", "h"],
        vec!["HSCAN", "h", "0"],
        vec!["OBJECT", "ENCODING", "h"],
        vec!["HINCRBY", "i", &long, "1"],
        vec!["OBJECT", "ENCODING", "i"],
        vec!["HSETNX", "j", "f", &long],
        vec!["OBJECT", "ENCODING", "j"],
        vec!["HSET", "k", "f", &long[..64]],
        vec!["OBJECT", "ENCODING", "k"],
    ];
    let mut big = vec!["HSET", "big"];
    for f in &fields[..128] {
        big.extend([f.as_str(), "v"]);
    }
    steps.push(big);
    steps.push(vec!["OBJECT", "ENCODING", "big"]);
    steps.push(vec!["HSET", "big", &fields[128], "v"]);
    steps.push(vec!["OBJECT", "ENCODING", "big"]);
    steps.push(vec!["HDEL", "big", &fields[128], &fields[0]]);
    steps.push(vec!["OBJECT", "ENCODING", "big"]);
    for s in &steps {
        assert_eq!(got.text(s).await, want.text(s).await, "{s:?}");
    }
    // HSCAN pages a hashtable and returns each field once.
    let (mut cursor, mut seen) = ("0".to_string(), std::collections::HashSet::new());
    loop {
        let r = got.cmd(&["HSCAN", "big", &cursor, "COUNT", "10"]).await;
        let r = r.as_arr();
        for f in r[1].as_arr().chunks(2) {
            assert!(seen.insert(format!("{:?}", f[0])), "{:?} twice", f[0]);
        }
        cursor = match &r[0] {
            V::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 127);
    srv.stop().await;
}
