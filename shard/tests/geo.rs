//! Geo commands: a differential test against a real `redis-server` (every reply compared byte
//! for byte: scores, distances, GEOHASH strings, coordinates, the order of unsorted results,
//! errors), on the RAM tier and through the warm tier, and the keyspace events of GEOADD and
//! the STORE forms.
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
    for name in random::geo::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::geo::step(rng, "")
    })
    .await;
    for k in random::geo::KEYS {
        let range = ["ZRANGE", k, "0", "-1", "WITHSCORES"];
        assert_eq!(got.text(&range).await, want.text(&range).await, "{range:?}");
    }
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
    differential(TestShard::default().await, 0x6e0).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x6e0_6e0).await;
}

/// Redis's documented example, in RESP2 and RESP3 (coordinates are doubles there).
#[tokio::test]
async fn the_documented_example_in_both_protocols() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let add = [
        "GEOADD",
        "Sicily",
        "13.361389",
        "38.115556",
        "Palermo",
        "15.087269",
        "37.502669",
        "Catania",
    ];
    assert_eq!(c.cmd(&add).await, V::Int(2));
    assert_eq!(
        c.text(&["GEODIST", "Sicily", "Palermo", "Catania", "km"])
            .await,
        "$8\r\n166.2742\r\n"
    );
    assert_eq!(
        c.text(&["GEOPOS", "Sicily", "Palermo"]).await,
        "*1\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n"
    );
    assert_eq!(
        c.text(&["GEOHASH", "Sicily", "Palermo", "nope"]).await,
        "*2\r\n$11\r\nsqc8b49rny0\r\n$-1\r\n"
    );
    let near = [
        "GEOSEARCH",
        "Sicily",
        "FROMLONLAT",
        "15",
        "37",
        "BYRADIUS",
        "200",
        "km",
        "ASC",
    ];
    assert_eq!(c.cmd(&near).await, V::strs(&["Catania", "Palermo"]));
    c.cmd(&["HELLO", "3"]).await;
    assert_eq!(
        c.text(&["GEOPOS", "Sicily", "Palermo"]).await,
        "*1\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n"
    );
    srv.stop().await;
}
