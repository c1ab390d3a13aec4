//! Bitmaps: a differential test against a real `redis-server` (every reply compared byte for
//! byte, on the RAM tier and through the warm tier, then the strings themselves), and bitmap
//! writes invalidating tracked keys.
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
    for name in random::bitmap::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::bitmap::step(rng, "")
    })
    .await;
    for k in random::bitmap::KEYS {
        for probe in [["TYPE", k], ["GET", k], ["STRLEN", k]] {
            assert_eq!(got.text(&probe).await, want.text(&probe).await, "{probe:?}");
        }
    }
    eprintln!("{OPS} operations: {tally:?}");
    assert!(
        tally.errors > OPS / 50 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    assert!(tally.arrays > OPS / 20, "{tally:?}");
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0xb17).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0xb17b17).await;
}

/// Bitmap writes invalidate a client's tracked copy (BITOP its destination only, as Redis
/// does); reads such as BITFIELD_RO do not.
#[tokio::test]
async fn bitmap_writes_invalidate_tracked_keys() {
    let srv = TestShard::default().await;
    let mut reader = srv.raw().await;
    let hello = reader.cmd(&["HELLO", "3"]).await;
    assert!(matches!(hello, V::Arr(_) | V::Map(_)), "{hello:?}");
    let mut writer = srv.raw().await;
    assert_eq!(reader.cmd(&["CLIENT", "TRACKING", "on"]).await, V::s("OK"));
    let invalidate = |k: &[&str]| V::Arr(vec![V::s("invalidate"), V::strs(k)]);
    assert_eq!(writer.cmd(&["SETBIT", "bm", "3", "1"]).await, V::Int(0));
    assert_eq!(reader.cmd(&["GETBIT", "bm", "3"]).await, V::Int(1));
    let ro = writer.cmd(&["BITFIELD_RO", "bm", "GET", "u4", "0"]).await;
    assert_eq!(ro, V::Arr(vec![V::Int(1)]));
    // Nothing pending: the reply to PING comes first.
    assert_eq!(reader.cmd(&["PING"]).await, V::s("PONG"));
    assert_eq!(writer.cmd(&["SETBIT", "bm", "4", "1"]).await, V::Int(0));
    assert_eq!(reader.read().await, invalidate(&["bm"]));
    assert_eq!(reader.cmd(&["BITCOUNT", "bm"]).await, V::Int(2));
    assert_eq!(reader.cmd(&["BITCOUNT", "dst"]).await, V::Int(0));
    assert_eq!(writer.cmd(&["BITOP", "NOT", "dst", "bm"]).await, V::Int(1));
    assert_eq!(reader.read().await, invalidate(&["dst"]));
    let bf = writer
        .cmd(&["BITFIELD", "bm", "INCRBY", "u8", "0", "1"])
        .await;
    assert_eq!(bf, V::Arr(vec![V::Int(25)]));
    assert_eq!(reader.read().await, invalidate(&["bm"]));
    srv.stop().await;
}
