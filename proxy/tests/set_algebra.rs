//! Read-only set algebra across slots (SUNION, SINTER, SDIFF, SINTERCARD, ZUNION, ZINTER,
//! ZDIFF, ZINTERCARD), computed by the proxy from the owners' replies: random commands over
//! keys spread across three shards (no hash tags, plus a few tagged keys that share a slot
//! and are forwarded as before), sent to a real `redis-server` and to the proxy, every reply
//! compared (the sorted-set replies byte for byte: their order and score texts are Redis's);
//! then a few explicit cases.
//!
//! Needs `redis-server` on PATH; `AUTOCACHE_SKIP_EXTERNAL=1` skips when it is missing.

mod common;

use common::*;
use shard::testing::{Raw, RedisServer, Step, differential, redis_server};

/// Untagged keys land on all three shards; the tagged ones share a slot; `s` is a string and
/// `l` a list (wrong types); `m` is never written (missing).
const KEYS: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "{t}a", "{t}b", "{t}c", "s", "l", "m",
];

/// The tests of this file run one at a time: `redis_server` picks a port by binding and
/// releasing it, and a shard or proxy of a concurrent test could take it first.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ALGEBRA: &[&str] = &["SUNION", "SINTER", "SDIFF"];

fn key(rng: &mut fastrand::Rng) -> String {
    // Mostly sets; now and then a key of another type or one never written.
    let i = match rng.u8(..40) {
        0 => 9,
        1 => 10,
        2 => 11,
        _ => rng.usize(..9),
    };
    KEYS[i].to_string()
}

fn set_key(rng: &mut fastrand::Rng) -> String {
    KEYS[rng.usize(..9)].to_string()
}

fn member(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..12) {
        0 => String::new(),
        1..=5 => rng.i64(-3..12).to_string(),
        _ => ["x", "y", "z", "w", "v", "u"][rng.usize(..6)].to_string(),
    }
}

fn count(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..12) {
        0 => "abc".into(),
        1 => "-1".into(),
        2 => i64::MAX.to_string(),
        3 => "+1".into(),
        4 => "0".into(),
        _ => rng.i64(1..6).to_string(),
    }
}

/// The next random step: writes (SADD, SREM, DEL, a string, a list), then the algebra reads
/// with wrong types, missing keys and bad options.
fn step(rng: &mut fastrand::Rng) -> Step {
    let exact = Step::exact;
    match rng.u8(..24) {
        0..=4 => {
            let mut c = vec!["SADD".into(), set_key(rng)];
            for _ in 0..rng.usize(1..7) {
                c.push(member(rng));
            }
            exact(c)
        }
        5..=6 => {
            let mut c = vec!["SREM".into(), set_key(rng)];
            for _ in 0..rng.usize(1..4) {
                c.push(member(rng));
            }
            exact(c)
        }
        7 => exact(vec!["DEL".into(), set_key(rng)]),
        8 => exact(vec!["SET".into(), "s".into(), "v".into()]),
        9 if rng.bool() => exact(vec!["RPUSH".into(), "l".into(), member(rng)]),
        // Set replies forwarded from one shard (a set in RESP3 too).
        9 => match rng.u8(..3) {
            0 => Step::unordered(vec!["SMEMBERS".into(), key(rng)]),
            1 => Step::unordered(vec!["SPOP".into(), key(rng), "100000".into()]),
            _ => Step::unordered(vec!["SINTER".into(), key(rng)]),
        },
        10..=17 => {
            let name = ALGEBRA[rng.usize(..ALGEBRA.len())];
            let mut c = vec![name.to_string()];
            for _ in 0..rng.usize(1..6) {
                c.push(key(rng));
            }
            Step::unordered(c)
        }
        18..=22 => {
            let keys: Vec<String> = (0..rng.usize(1..5)).map(|_| key(rng)).collect();
            let mut c = vec!["SINTERCARD".into()];
            c.push(match rng.u8(..14) {
                0 => "0".into(),
                1 => "abc".into(),
                2 => "-1".into(),
                // Too many: an option becomes a key, or the count exceeds the arguments.
                3 => (keys.len() + 1).to_string(),
                4 => (keys.len() + 3).to_string(),
                _ => keys.len().to_string(),
            });
            c.extend(keys);
            match rng.u8(..8) {
                0..=2 => {
                    c.push("LIMIT".into());
                    c.push(count(rng));
                }
                3 => c.push("LIMIT".into()),
                4 => {
                    c.push("bogus".into());
                    c.push("1".into());
                }
                5 => {
                    c.extend(["limit".into(), count(rng), "LIMIT".into(), count(rng)]);
                }
                _ => {}
            }
            exact(c)
        }
        // A wrong arity.
        _ => exact(vec![
            ["SUNION", "SINTER", "SDIFF", "SINTERCARD"][rng.usize(..4)].into(),
        ]),
    }
}

/// Sorted sets: untagged ones on all three shards, two tagged ones sharing a slot; `a` and `b`
/// are plain sets (inputs with score 1), `s` a string, `m` never written.
const ZKEYS: &[&str] = &[
    "za", "zb", "zc", "zd", "ze", "{z}a", "{z}b", "a", "b", "s", "m",
];

fn zkey(rng: &mut fastrand::Rng) -> String {
    let i = match rng.u8(..40) {
        0 => 9,
        1 => 10,
        2..=5 => 7 + rng.usize(..2),
        _ => rng.usize(..7),
    };
    ZKEYS[i].to_string()
}

fn score(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..16) {
        0 => "inf".into(),
        1 => "-inf".into(),
        2 => "0.1".into(),
        3 => "0.2".into(),
        4 => "1.5".into(),
        5 => "-2.25".into(),
        6 => "1e17".into(),
        7 => "3.0000000000000004".into(),
        _ => rng.i64(-5..10).to_string(),
    }
}

fn weight(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..12) {
        0 => "x".into(),
        1 => "nan".into(),
        2 => "0".into(),
        3 => "-1".into(),
        4 => "0.5".into(),
        5 => "inf".into(),
        _ => rng.i64(1..4).to_string(),
    }
}

/// The next random sorted-set step: writes (ZADD, ZREM, DEL, SADD to the plain sets), then
/// ZUNION/ZINTER/ZDIFF/ZINTERCARD with weights, aggregates, WITHSCORES, limits and bad ones.
fn zstep(rng: &mut fastrand::Rng) -> Step {
    let exact = Step::exact;
    match rng.u8(..24) {
        0..=4 => {
            let mut c = vec!["ZADD".into(), ZKEYS[rng.usize(..7)].to_string()];
            for _ in 0..rng.usize(1..5) {
                c.push(score(rng));
                c.push(member(rng));
            }
            exact(c)
        }
        5 => {
            let mut c = vec!["ZREM".into(), ZKEYS[rng.usize(..7)].to_string()];
            c.push(member(rng));
            exact(c)
        }
        6 => exact(vec!["DEL".into(), ZKEYS[rng.usize(..7)].to_string()]),
        7 => {
            let mut c = vec!["SADD".into(), ZKEYS[7 + rng.usize(..2)].to_string()];
            c.push(member(rng));
            c.push(member(rng));
            exact(c)
        }
        8 => exact(vec!["SET".into(), "s".into(), "v".into()]),
        9..=19 => {
            let name = ["ZUNION", "ZINTER", "ZDIFF"][rng.usize(..3)];
            let keys: Vec<String> = (0..rng.usize(1..5)).map(|_| zkey(rng)).collect();
            let mut c = vec![name.to_string()];
            c.push(match rng.u8(..16) {
                0 => "0".into(),
                1 => "abc".into(),
                2 => (keys.len() + 2).to_string(),
                _ => keys.len().to_string(),
            });
            let n = keys.len();
            c.extend(keys);
            for _ in 0..rng.usize(0..3) {
                match rng.u8(..8) {
                    0 | 1 => {
                        c.push("WEIGHTS".into());
                        // Now and then one weight short.
                        let k = if rng.u8(..6) == 0 {
                            n.saturating_sub(1)
                        } else {
                            n
                        };
                        for _ in 0..k {
                            c.push(weight(rng));
                        }
                    }
                    2 | 3 => {
                        c.push("AGGREGATE".into());
                        c.push(["SUM", "min", "MAX", "avg"][rng.usize(..4)].into());
                    }
                    4 | 5 => c.push("WITHSCORES".into()),
                    6 => c.push("AGGREGATE".into()),
                    _ => c.push("bogus".into()),
                }
            }
            if rng.bool() {
                c.push("WITHSCORES".into());
            }
            exact(c)
        }
        _ => {
            let keys: Vec<String> = (0..rng.usize(1..4)).map(|_| zkey(rng)).collect();
            let mut c = vec!["ZINTERCARD".into()];
            c.push(match rng.u8(..12) {
                0 => "0".into(),
                1 => "-1".into(),
                2 => (keys.len() + 1).to_string(),
                _ => keys.len().to_string(),
            });
            c.extend(keys);
            match rng.u8(..6) {
                0 | 1 => {
                    c.push("LIMIT".into());
                    c.push(count(rng));
                }
                2 => c.push("LIMIT".into()),
                3 => c.push("WITHSCORES".into()),
                _ => {}
            }
            exact(c)
        }
    }
}

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

    async fn stop(self) {
        self.proxy.stop().await;
        for s in self.shards {
            s.stop().await;
        }
    }
}

#[test]
fn the_untagged_keys_span_every_shard() {
    for keys in [&KEYS[..6], &ZKEYS[..5]] {
        let mut owners: Vec<usize> = keys.iter().map(|k| owner_3(k)).collect();
        owners.sort_unstable();
        owners.dedup();
        assert_eq!(owners, [0, 1, 2], "{keys:?}");
    }
}

async fn differential_run(
    resp3: bool,
    ops: usize,
    seed: u64,
    next: impl FnMut(&mut fastrand::Rng) -> Step,
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut pair) = Pair::start().await else {
        return;
    };
    if resp3 {
        pair.want.text(&["HELLO", "3"]).await;
        pair.got.text(&["HELLO", "3"]).await;
    }
    let tally = differential(&mut pair.want, &mut pair.got, ops, seed, next).await;
    eprintln!("{ops} set-algebra operations (RESP3: {resp3}): {tally:?}");
    assert!(tally.arrays > ops / 10, "{tally:?}");
    assert!(tally.errors > ops / 50, "{tally:?}");
    pair.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_slot_set_algebra_matches_redis() {
    differential_run(false, 3_000, 0xa1_9eb4a, step).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_slot_set_algebra_matches_redis_over_resp3() {
    differential_run(true, 1_500, 0x3_a19eb4a, step).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_slot_sorted_set_algebra_matches_redis() {
    differential_run(false, 3_000, 0x2_a19eb4a, zstep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_slot_sorted_set_algebra_matches_redis_over_resp3() {
    differential_run(true, 1_500, 0x23_a19eb4a, zstep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_cases() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut pair) = Pair::start().await else {
        return;
    };
    let (want, got) = (&mut pair.want, &mut pair.got);
    for c in [
        &["SADD", "a", "1", "2", "3"][..],
        &["SADD", "b", "2", "3", "4"],
        &["SADD", "c", "3", "x"],
        &["SET", "s", "v"],
    ] {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
    }
    // The keys really are on different shards.
    assert_ne!(owner_3("a"), owner_3("b"));
    let same = |r: &str| {
        let mut v: Vec<&str> = r.split("\r\n").skip(1).collect();
        v.sort_unstable();
        (
            r.split("\r\n").next().unwrap_or("").to_string(),
            v.join(","),
        )
    };
    for c in [
        &["SINTER", "a", "b", "c"][..],
        &["SUNION", "a", "b"],
        &["SDIFF", "a", "b"],
        // A missing key: an empty intersection, an unchanged difference.
        &["SINTER", "a", "m"],
        &["SDIFF", "a", "m"],
        &["SDIFF", "m", "a"],
    ] {
        assert_eq!(same(&got.text(c).await), same(&want.text(c).await), "{c:?}");
    }
    assert_eq!(
        got.text(&["SINTER", "a", "b", "c"]).await,
        "*1\r\n$1\r\n3\r\n"
    );
    assert_eq!(got.text(&["SINTER", "a", "m"]).await, "*0\r\n");
    // A wrong type wins over a missing key, in any position.
    let wt = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    for c in [
        &["SINTER", "m", "s"][..],
        &["SUNION", "a", "s"],
        &["SDIFF", "m", "s"],
        &["SINTERCARD", "3", "m", "a", "s"],
    ] {
        assert_eq!(want.text(c).await, wt, "{c:?}");
        assert_eq!(got.text(c).await, wt, "{c:?}");
    }
    // SINTERCARD: LIMIT, and an option's error before any key is read.
    for c in [
        &["SINTERCARD", "2", "a", "b"][..],
        &["SINTERCARD", "2", "a", "b", "LIMIT", "1"],
        &["SINTERCARD", "2", "a", "b", "LIMIT", "0"],
        &["SINTERCARD", "2", "a", "s", "LIMIT", "-1"],
        &["SINTERCARD", "2", "a", "s", "bogus"],
        &["SINTERCARD", "3", "a", "b"],
        &["SINTERCARD", "3", "a", "b", "LIMIT"],
    ] {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
    }
    assert_eq!(
        got.text(&["SINTERCARD", "2", "a", "b", "LIMIT", "1"]).await,
        ":1\r\n"
    );
    // The STORE forms write: across slots they stay CROSSSLOT.
    for c in [
        &["SINTERSTORE", "d", "a", "b"][..],
        &["SUNIONSTORE", "a", "a", "b"],
        &["SDIFFSTORE", "{t}a", "{t}b", "a"],
    ] {
        assert_eq!(
            got.text(c).await,
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n",
            "{c:?}"
        );
    }
    // One slot: forwarded as before.
    got.text(&["SADD", "{t}a", "1", "2"]).await;
    got.text(&["SADD", "{t}b", "2"]).await;
    assert_eq!(
        got.text(&["SINTERSTORE", "{t}c", "{t}a", "{t}b"]).await,
        ":1\r\n"
    );
    assert_eq!(
        got.text(&["SINTER", "{t}a", "{t}b"]).await,
        "*1\r\n$1\r\n2\r\n"
    );
    // RESP3: a set, as Redis sends it.
    got.text(&["HELLO", "3"]).await;
    want.text(&["HELLO", "3"]).await;
    let r = got.text(&["SUNION", "a", "b"]).await;
    assert!(r.starts_with("~4\r\n"), "{r:?}");
    assert_eq!(same(&r), same(&want.text(&["SUNION", "a", "b"]).await));
    assert_eq!(got.text(&["SINTER", "a", "m"]).await, "~0\r\n");
    assert_eq!(
        got.text(&["SINTERCARD", "2", "a", "b"]).await,
        want.text(&["SINTERCARD", "2", "a", "b"]).await
    );
    pair.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_set_explicit_cases() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut pair) = Pair::start().await else {
        return;
    };
    let (want, got) = (&mut pair.want, &mut pair.got);
    assert_ne!(owner_3("za"), owner_3("zb"));
    for c in [
        &["ZADD", "za", "0.1", "x", "1", "y", "inf", "z"][..],
        &["ZADD", "zb", "0.2", "x", "-inf", "z", "2", "w"],
        &["SADD", "a", "x", "w"],
        &["SET", "s", "v"],
    ] {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
    }
    for c in [
        // 0.1 + 0.2 and inf + -inf (0 in Redis's SUM), in Redis's %.17g.
        &["ZUNION", "2", "za", "zb", "WITHSCORES"][..],
        &["ZINTER", "2", "za", "zb", "WITHSCORES"],
        &["ZINTER", "2", "za", "zb", "AGGREGATE", "MAX", "WITHSCORES"],
        &[
            "ZUNION",
            "3",
            "za",
            "zb",
            "a",
            "WEIGHTS",
            "2",
            "0.5",
            "10",
            "WITHSCORES",
        ],
        &["ZDIFF", "2", "za", "a", "WITHSCORES"],
        &["ZINTERCARD", "3", "za", "zb", "a", "LIMIT", "1"],
        // A missing key, a wrong type (before an option's error), bad options.
        &["ZINTER", "2", "za", "m"],
        &["ZUNION", "2", "za", "s", "WEIGHTS", "x", "1"],
        &["ZUNION", "2", "za", "zb", "WEIGHTS", "x", "1"],
        &["ZUNION", "2", "za", "zb", "AGGREGATE", "avg"],
        &["ZDIFF", "2", "za", "zb", "WEIGHTS", "1", "1"],
        &["ZUNION", "0", "za", "zb"],
        &["ZUNION", "5", "za", "zb"],
        &["ZINTERCARD", "2", "za", "zb", "LIMIT", "-1"],
    ] {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
    }
    assert_eq!(
        got.text(&["ZINTER", "2", "za", "zb", "WITHSCORES"]).await,
        "*4\r\n$1\r\nz\r\n$1\r\n0\r\n$1\r\nx\r\n$19\r\n0.30000000000000004\r\n"
    );
    // RESP3: [member, double] pairs, computed and forwarded alike.
    got.text(&["HELLO", "3"]).await;
    want.text(&["HELLO", "3"]).await;
    for c in [
        &["ZUNION", "2", "za", "zb", "WITHSCORES"][..],
        &["ZUNION", "1", "za", "WITHSCORES"],
        &["ZINTER", "2", "za", "zb"],
    ] {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
    }
    assert!(
        got.text(&["ZUNION", "1", "za", "WITHSCORES"])
            .await
            .starts_with("*3\r\n*2\r\n$1\r\nx\r\n,0.10000000000000001\r\n")
    );
    // The STORE forms stay CROSSSLOT.
    assert_eq!(
        got.text(&["ZUNIONSTORE", "zc", "2", "za", "zb"]).await,
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    pair.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_members_are_refused_not_buffered() {
    let _one = ONE_AT_A_TIME.lock().await;
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let seeds: Vec<String> = shards.iter().map(|s| s.addr.to_string()).collect();
    let proxy = Proxy::start(proxy::Config {
        algebra_max_members: 100,
        ..config(&seeds)
    })
    .await;
    let mut got = proxy.raw().await;
    // Two sets of 60 members: each alone is within the cap, both together are not.
    for k in ["a", "b"] {
        let mut c = vec!["SADD".to_string(), k.to_string()];
        c.extend((0..60).map(|i| format!("{k}{i}")));
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        assert_eq!(got.text(&args).await, ":60\r\n");
    }
    assert_eq!(got.text(&["SINTERCARD", "2", "a", "a"]).await, ":60\r\n");
    assert_eq!(
        got.text(&["SUNION", "a", "b"]).await,
        "-ERR SUNION across slots would read 120 members, more than the proxy computes \
         (algebra-max-members 100); keep the keys in one slot with a hash tag\r\n"
    );
    // The connection still serves, and the keys in one slot are not limited.
    assert_eq!(got.text(&["SCARD", "a"]).await, ":60\r\n");
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}
