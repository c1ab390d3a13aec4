//! SORT and SORT_RO: a differential test against a real `redis-server` (numeric and ALPHA
//! sorts, BY weights and hash fields, BY a constant, LIMIT, GET patterns, STORE), on the RAM
//! tier and through the warm tier, and the cluster-mode rule for patterns.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use shard::testing::{Raw, TestShard, V, differential as run, random, redis_server};

/// Operations per differential run.
const OPS: usize = 10_000;

async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    for name in random::sort::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::sort::step(rng, "")
    })
    .await;
    let probe = ["LRANGE", "d", "0", "-1"];
    assert_eq!(got.text(&probe).await, want.text(&probe).await);
    eprintln!("{OPS} operations: {tally:?}");
    assert!(
        tally.errors > OPS / 50 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    assert!(tally.arrays > OPS / 10, "{tally:?}");
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x5027).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x5027_5027).await;
}

#[tokio::test]
async fn sort_examples() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["RPUSH", "l", "3", "1", "2"]).await;
    for (k, v) in [("w_1", "30"), ("w_2", "10"), ("w_3", "20")] {
        c.cmd(&["SET", k, v]).await;
    }
    assert_eq!(c.cmd(&["SORT", "l"]).await, V::strs(&["1", "2", "3"]));
    assert_eq!(
        c.cmd(&["SORT", "l", "BY", "w_*"]).await,
        V::strs(&["2", "3", "1"])
    );
    assert_eq!(
        c.cmd(&[
            "SORT", "l", "BY", "w_*", "GET", "#", "GET", "w_*", "LIMIT", "0", "1"
        ])
        .await,
        V::strs(&["2", "10"])
    );
    assert_eq!(c.cmd(&["SORT", "l", "DESC", "STORE", "d"]).await, V::Int(3));
    assert_eq!(
        c.cmd(&["LRANGE", "d", "0", "-1"]).await,
        V::strs(&["3", "2", "1"])
    );
    c.cmd(&["RPUSH", "words", "b", "a"]).await;
    assert_eq!(
        c.text(&["SORT", "words"]).await,
        "-ERR One or more scores can't be converted into double\r\n"
    );
    assert_eq!(
        c.cmd(&["SORT", "words", "ALPHA"]).await,
        V::strs(&["a", "b"])
    );
    assert_eq!(
        c.text(&["SORT_RO", "l", "STORE", "d"]).await,
        "-ERR syntax error\r\n"
    );
    srv.stop().await;
}
