//! HyperLogLog: a differential test against a real `redis-server` (every reply compared byte
//! for byte, the HLL strings themselves included, on the RAM tier and through the warm tier),
//! HLLs copied between Redis and a shard counting the same, and CONFIG of
//! `hll-sparse-max-bytes`.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use redis::aio::MultiplexedConnection as Conn;
use shard::testing::{Raw, TestShard, V, connect_url, differential as run, random, redis_server};

/// Operations per differential run.
const OPS: usize = 10_000;

async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    for name in random::hll::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::hll::step(rng, "")
    })
    .await;
    for k in random::hll::KEYS {
        for probe in [["TYPE", k], ["GET", k]] {
            assert_eq!(got.text(&probe).await, want.text(&probe).await, "{probe:?}");
        }
    }
    eprintln!("{OPS} operations: {tally:?}");
    assert!(
        tally.errors > OPS / 50 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x411).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x411411).await;
}

/// An HLL written by Redis, copied to a shard byte for byte (and the other way round), counts
/// the same and keeps growing identically, in the sparse and the dense representation.
#[tokio::test]
async fn hlls_copied_between_redis_and_a_shard_count_the_same() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut r = connect_url(&format!("redis://{}", redis.addr)).await;
    let mut s = srv.redis().await;
    for (n, dense) in [(500u32, false), (20_000, true)] {
        let elements: Vec<String> = (0..n).map(|i| format!("user:{i}")).collect();
        let _: i64 = redis::cmd("PFADD")
            .arg("h")
            .arg(&elements)
            .query_async(&mut r)
            .await
            .expect("PFADD");
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg("h")
            .query_async(&mut r)
            .await
            .expect("GET");
        assert_eq!(bytes[4] == 0, dense, "encoding byte after {n} elements");
        let _: () = redis::cmd("SET")
            .arg("h")
            .arg(&bytes)
            .query_async(&mut s)
            .await
            .expect("SET");
        assert_eq!(count(&mut s).await, count(&mut r).await, "{n} elements");
        let more: Vec<String> = (n..n + 300).map(|i| format!("user:{i}")).collect();
        for c in [&mut r, &mut s] {
            let _: i64 = redis::cmd("PFADD")
                .arg("h")
                .arg(&more)
                .query_async(c)
                .await
                .expect("PFADD");
        }
        assert_eq!(
            get(&mut s).await,
            get(&mut r).await,
            "{n} elements, then 300 more"
        );
        assert_eq!(count(&mut s).await, count(&mut r).await);
        // And back: the shard's bytes in Redis.
        let _: () = redis::cmd("SET")
            .arg("h2")
            .arg(get(&mut s).await)
            .query_async(&mut r)
            .await
            .expect("SET");
        let c2: i64 = redis::cmd("PFCOUNT")
            .arg("h2")
            .query_async(&mut r)
            .await
            .expect("PFCOUNT");
        assert_eq!(c2, count(&mut s).await);
    }
    srv.stop().await;
}

async fn count(c: &mut Conn) -> i64 {
    redis::cmd("PFCOUNT")
        .arg("h")
        .query_async(c)
        .await
        .expect("PFCOUNT")
}

async fn get(c: &mut Conn) -> Vec<u8> {
    redis::cmd("GET")
        .arg("h")
        .query_async(c)
        .await
        .expect("GET")
}

#[tokio::test]
async fn the_sparse_limit_is_a_config_setting() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let get = ["CONFIG", "GET", "hll-sparse-max-bytes"];
    assert_eq!(
        c.cmd(&get).await,
        V::strs(&["hll-sparse-max-bytes", "3000"])
    );
    let set = ["CONFIG", "SET", "hll-sparse-max-bytes", "1kb"];
    assert_eq!(c.cmd(&set).await, V::s("OK"));
    assert_eq!(
        c.cmd(&get).await,
        V::strs(&["hll-sparse-max-bytes", "1024"])
    );
    srv.stop().await;
}
