//! INCRBYFLOAT, COPY and OBJECT ENCODING of strings: a differential test against a real
//! `redis-server` (every reply compared byte for byte), on the RAM tier and through the warm
//! tier, and COPY to another database refused as Redis Cluster refuses it.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use shard::testing::{Raw, TestShard, differential as run, random, redis_server};

const OPS: usize = 10_000;

async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::keys::step(rng, "")
    })
    .await;
    for k in random::keys::KEYS {
        let probe = ["TYPE", k];
        assert_eq!(got.text(&probe).await, want.text(&probe).await, "{probe:?}");
    }
    eprintln!("{OPS} operations: {tally:?}");
    assert!(
        tally.errors > OPS / 20 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0xc0b7).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0xc0b7_c0b7).await;
}

#[tokio::test]
async fn copy_to_another_database_is_refused_as_in_redis_cluster() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["SET", "a", "1"]).await;
    assert_eq!(
        c.text(&["COPY", "a", "b", "DB", "3"]).await,
        "-ERR Copying to another database is not allowed in cluster mode\r\n"
    );
    // The other options are read first.
    assert_eq!(
        c.text(&["COPY", "a", "b", "DB", "3", "BOGUS"]).await,
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.text(&["COPY", "a", "b", "DB", "16"]).await,
        "-ERR DB index is out of range\r\n"
    );
    srv.stop().await;
}
