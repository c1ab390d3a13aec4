//! The types' differential tests through the proxy: the same seeded random command sequences
//! the shard's tests send (`shard::testing::random`), sent to a real `redis-server` and to the
//! proxy over three shards, every reply compared. The keys carry one hash tag, so the
//! multi-key commands stay within one slot (cross-slot ones are `static_split.rs`'s).
//!
//! Needs `redis-server` on PATH; `AUTOCACHE_SKIP_EXTERNAL=1` skips when it is missing.

mod common;

use common::*;
use shard::testing::{Raw, RedisServer, Step, differential, redis_server};

const OPS: usize = 10_000;
const TAG: &str = "{t}";

/// A reference redis-server and the proxy over three shards.
struct Pair {
    want: Raw,
    got: Raw,
    _redis: RedisServer,
    shards: Vec<TestShard>,
    proxy: Proxy,
}

impl Pair {
    async fn start() -> Option<Pair> {
        let redis = redis_server().await?;
        let want = Raw::connect(redis.addr).await;
        let shards = vec![
            TestShard::default().await,
            TestShard::default().await,
            TestShard::default().await,
        ];
        let proxy = Proxy::over(&shards).await;
        let got = proxy.raw().await;
        Some(Pair {
            want,
            got,
            _redis: redis,
            shards,
            proxy,
        })
    }

    /// Runs `OPS` steps of `next`, then compares `probes` of each key.
    async fn run(
        self,
        seed: u64,
        next: impl FnMut(&mut fastrand::Rng) -> Step,
        probes: &[&[&str]],
    ) {
        self.run_expecting(seed, next, probes, OPS / 20).await;
    }

    /// [`Self::run`] for a type whose replies include at least `arrays` non-empty arrays
    /// (none for HyperLogLogs).
    async fn run_expecting(
        mut self,
        seed: u64,
        next: impl FnMut(&mut fastrand::Rng) -> Step,
        probes: &[&[&str]],
        arrays: usize,
    ) {
        let tally = differential(&mut self.want, &mut self.got, OPS, seed, next).await;
        for probe in probes {
            assert_eq!(
                self.got.text(probe).await,
                self.want.text(probe).await,
                "{probe:?}"
            );
        }
        eprintln!("{OPS} operations through the proxy: {tally:?}");
        assert!(tally.arrays >= arrays, "{tally:?}");
        self.proxy.stop().await;
        for s in self.shards {
            s.stop().await;
        }
    }
}

fn tagged(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| format!("{TAG}{k}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_through_the_proxy_match_redis() {
    use shard::testing::random::list;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(list::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| {
            [
                vec!["TYPE", k.as_str()],
                vec!["LRANGE", k.as_str(), "0", "-1"],
            ]
        })
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0x9_1157, |rng| list::step(rng, TAG), &probes)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitmaps_through_the_proxy_match_redis() {
    use shard::testing::random::bitmap;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(bitmap::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| [vec!["TYPE", k.as_str()], vec!["GET", k.as_str()]])
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0xb_17, |rng| bitmap::step(rng, TAG), &probes)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyperloglogs_through_the_proxy_match_redis() {
    use shard::testing::random::hll;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(hll::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| [vec!["TYPE", k.as_str()], vec!["GET", k.as_str()]])
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run_expecting(0x4_11, |rng| hll::step(rng, TAG), &probes, 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_through_the_proxy_match_redis() {
    use shard::testing::random::set;
    let Some(pair) = Pair::start().await else {
        return;
    };
    // Members come back in each server's own order: compare the sizes and types here (the
    // run compares the members of every SMEMBERS as a multiset).
    let keys = tagged(set::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| [vec!["TYPE", k.as_str()], vec!["SCARD", k.as_str()]])
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0x5_e75, |rng| set::step(rng, TAG), &probes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsets_through_the_proxy_match_redis() {
    use shard::testing::random::zset;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(zset::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| {
            [
                vec!["TYPE", k.as_str()],
                vec!["ZRANGE", k.as_str(), "0", "-1", "WITHSCORES"],
            ]
        })
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0x9_25e7, |rng| zset::step(rng, TAG), &probes)
        .await;
}

/// Sorted sets through the proxy to a RESP3 client: the proxy talks RESP2 to the shards and
/// must turn scores into doubles and member/score lists into pairs as Redis 7 answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsets_through_the_proxy_in_resp3_match_redis() {
    use shard::testing::random::zset;
    let Some(mut pair) = Pair::start().await else {
        return;
    };
    let hello = ["HELLO", "3"];
    pair.want.cmd(&hello).await;
    pair.got.cmd(&hello).await;
    let keys = tagged(zset::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .map(|k| vec!["ZRANGE", k.as_str(), "0", "-1", "WITHSCORES"])
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(
        0x3_25e7,
        |rng| {
            let mut step = zset::step(rng, TAG);
            // The test client's RESP3 decoder refuses a double with an exponent (`,1e+308`).
            for a in &mut step.args {
                if a == "1e308" {
                    *a = "1e15".into();
                }
            }
            step
        },
        &probes,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_through_the_proxy_match_redis() {
    use shard::testing::random::hash;
    let Some(mut pair) = Pair::start().await else {
        return;
    };
    // redis-server without a config file says hash-max-listpack-entries 512 (the shards and
    // Redis 7.2: 128).
    pair.want
        .cmd(&["CONFIG", "SET", "hash-max-listpack-entries", "128"])
        .await;
    let keys = tagged(hash::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| [vec!["TYPE", k.as_str()], vec!["HLEN", k.as_str()]])
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0x9_4a54, |rng| hash::step(rng, TAG), &probes)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_through_the_proxy_match_redis() {
    use shard::testing::random::stream;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(stream::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| {
            [
                vec!["TYPE", k.as_str()],
                vec!["XRANGE", k.as_str(), "-", "+"],
                vec!["XINFO", "GROUPS", k.as_str()],
            ]
        })
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    let mut g = stream::Gen::new(TAG);
    pair.run(0x0057_2ea3, move |rng| g.step(rng), &probes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_through_the_proxy_matches_redis() {
    use shard::testing::random::geo;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(geo::KEYS);
    let probes: Vec<Vec<&str>> = keys
        .iter()
        .flat_map(|k| {
            [
                vec!["TYPE", k.as_str()],
                vec!["ZRANGE", k.as_str(), "0", "-1", "WITHSCORES"],
            ]
        })
        .collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0x6e07, |rng| geo::step(rng, TAG), &probes).await;
}

/// SORT's BY and GET patterns carry the keys' hash tag, so they name keys of the sorted
/// key's slot: a shard cluster accepts them as Redis Cluster does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_through_the_proxy_matches_redis() {
    use shard::testing::random::sort;
    let Some(pair) = Pair::start().await else {
        return;
    };
    let keys = tagged(sort::KEYS);
    let probes: Vec<Vec<&str>> = keys.iter().map(|k| vec!["TYPE", k.as_str()]).collect();
    let probes: Vec<&[&str]> = probes.iter().map(Vec::as_slice).collect();
    pair.run(0x5_0277, |rng| sort::step(rng, TAG), &probes)
        .await;
}
