//! Sets: a differential test against a real `redis-server` (every reply compared, byte for
//! byte or as a multiset where Redis's order is arbitrary, on the RAM tier and through the warm
//! tier), plus encodings, sets across a warm-tier restart and CLIENT TRACKING on set writes.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use std::time::Instant;

use shard::testing::{Raw, TestShard, V, differential as run, random, redis_server, warm_config};

/// Operations per differential run.
const OPS: usize = 10_000;

/// Sorted members of a set reply.
fn sorted(v: V) -> Vec<V> {
    let mut m = v.as_arr().to_vec();
    m.sort_by_key(|x| format!("{x:?}"));
    m
}

/// Sends the same seeded random operations to Redis and to `srv`, comparing every reply, then
/// the final contents.
async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    // The table rows first: arity, flags, key positions, ACL categories and key specs.
    for name in random::set::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let started = Instant::now();
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::set::step(rng, "")
    })
    .await;
    for k in random::set::KEYS {
        assert_eq!(got.text(&["TYPE", k]).await, want.text(&["TYPE", k]).await);
        if got.cmd(&["TYPE", k]).await == V::s("set") {
            let probe = ["SMEMBERS", k];
            assert_eq!(
                sorted(got.cmd(&probe).await),
                sorted(want.cmd(&probe).await)
            );
        }
    }
    eprintln!("{OPS} operations in {:?}: {tally:?}", started.elapsed());
    assert!(
        tally.errors > OPS / 50 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    assert!(tally.arrays > OPS / 20, "{tally:?}");
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x5e75).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x5eed5).await;
}

/// Errors and replies the differential run compares only by shape (SRANDMEMBER's), and
/// RESP3's set replies, compared byte for byte where they are deterministic.
#[tokio::test]
async fn errors_and_resp3_replies_match_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    let cases: &[&[&str]] = &[
        &["SADD", "s", "1", "2", "3"],
        &["SET", "str", "v"],
        &["SRANDMEMBER", "s", "abc"],
        &["SRANDMEMBER", "s", "-9223372036854775808"],
        &["SRANDMEMBER", "s", "1", "2"],
        &["SRANDMEMBER", "nokey", "abc"],
        &["SRANDMEMBER", "nokey", "5"],
        &["SRANDMEMBER", "nokey"],
        &["SRANDMEMBER", "s", "0"],
        &["SRANDMEMBER", "str"],
        &["SPOP", "s", "-1"],
        &["SPOP", "nokey", "-1"],
        &["SPOP", "nokey", "3"],
        &["SPOP", "nokey"],
        &["SSCAN", "nokey", "0", "COUNT", "0"],
        &["SSCAN", "s", "0", "COUNT", "0"],
        &["SSCAN", "s", "abc"],
        &["SSCAN", "str", "0", "COUNT", "0"],
        &["SSCAN", "s", "0", "MATCH", "[12]"],
        &["SMOVE", "nokey", "str", "m"],
        &["SMOVE", "str", "nokey", "m"],
        &["SMOVE", "s", "str", "1"],
        &["SMOVE", "s", "s", "1"],
        &["SINTER", "s", "nokey", "str"],
        &["SINTERSTORE", "str", "s", "nokey"],
        &["TYPE", "str"],
        &["SMEMBERS", "s"],
        &["SMEMBERS", "s"],
        &["SMEMBERS", "nokey"],
        &["SINTER", "s", "nokey"],
        &["SUNION", "nokey"],
        &["SPOP", "nokey", "2"],
        &["SPOP", "s", "0"],
        &["SRANDMEMBER", "s", "0"],
        &["SRANDMEMBER", "nokey", "2"],
        &["SMISMEMBER", "s", "1", "9"],
        &["SSCAN", "s", "0"],
        &["SPOP", "s", "10"],
        &["EXISTS", "s"],
    ];
    for c in cases {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
        if c[0] == "TYPE" {
            // The rest in RESP3 (HELLO's own reply names each server's version).
            assert!(matches!(got.cmd(&["HELLO", "3"]).await, V::Map(_)));
            assert!(matches!(want.cmd(&["HELLO", "3"]).await, V::Map(_)));
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn encodings_and_generic_commands() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["SADD", "s", "3", "1", "2"]).await, V::Int(3));
    assert_eq!(c.cmd(&["TYPE", "s"]).await, V::s("set"));
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "s"]).await, V::s("intset"));
    assert_eq!(c.cmd(&["SMEMBERS", "s"]).await, V::strs(&["1", "2", "3"]));
    assert_eq!(
        c.cmd(&["SCAN", "0", "TYPE", "set"]).await.as_arr()[1],
        V::strs(&["s"])
    );
    assert!(c.cmd(&["MEMORY", "USAGE", "s"]).await.as_int() > 3);
    let debug = c.cmd(&["DEBUG", "OBJECT", "s"]).await;
    assert!(
        format!("{debug:?}").contains("encoding:intset"),
        "{debug:?}"
    );
    assert_eq!(
        c.text(&["GET", "s"]).await,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    // 512 integers stay an intset; the 513th makes a hashtable, for good.
    let ints: Vec<String> = (0..512).map(|i| i.to_string()).collect();
    let mut args = vec!["SADD", "big"];
    args.extend(ints.iter().map(String::as_str));
    assert_eq!(c.cmd(&args).await, V::Int(512));
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "big"]).await, V::s("intset"));
    assert_eq!(c.cmd(&["SADD", "big", "512"]).await, V::Int(1));
    assert_eq!(
        c.cmd(&["OBJECT", "ENCODING", "big"]).await,
        V::s("hashtable")
    );
    assert_eq!(c.cmd(&["SREM", "big", "512"]).await, V::Int(1));
    assert_eq!(
        c.cmd(&["OBJECT", "ENCODING", "big"]).await,
        V::s("hashtable")
    );
    // A non-integer converts at once.
    assert_eq!(c.cmd(&["SADD", "s", "x"]).await, V::Int(1));
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "s"]).await, V::s("hashtable"));
    // The emptied set is deleted; RENAME and EXPIRE are generic.
    assert_eq!(c.cmd(&["RENAME", "s", "t"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["EXPIRE", "t", "100"]).await, V::Int(1));
    assert_eq!(c.cmd(&["SPOP", "t", "10"]).await.as_arr().len(), 4);
    assert_eq!(c.cmd(&["EXISTS", "t"]).await, V::Int(0));
    // SSCAN pages a large set and returns each member once.
    let (mut cursor, mut seen) = ("0".to_string(), std::collections::HashSet::new());
    loop {
        let r = c.cmd(&["SSCAN", "big", &cursor, "COUNT", "50"]).await;
        let r = r.as_arr();
        for m in r[1].as_arr() {
            assert!(seen.insert(format!("{m:?}")), "{m:?} twice");
        }
        cursor = match &r[0] {
            V::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 512);
    srv.stop().await;
}

/// Redis 7.0's thresholds, checked against the installed server.
#[tokio::test]
async fn encodings_match_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    let ints: Vec<String> = (0..513).map(|i| i.to_string()).collect();
    let mut steps: Vec<Vec<&str>> = vec![
        vec!["SADD", "a", "1", "2"],
        vec!["OBJECT", "ENCODING", "a"],
        vec!["SADD", "a", "-0"],
        vec!["OBJECT", "ENCODING", "a"],
        vec!["SADD", "b", "x"],
        vec!["OBJECT", "ENCODING", "b"],
        vec!["SINTERSTORE", "c", "a", "a"],
        vec!["OBJECT", "ENCODING", "c"],
        vec!["SREM", "a", "-0"],
        vec!["OBJECT", "ENCODING", "a"],
        vec!["SUNIONSTORE", "d", "a"],
        vec!["OBJECT", "ENCODING", "d"],
    ];
    let mut big = vec!["SADD", "big"];
    big.extend(ints[..512].iter().map(String::as_str));
    steps.push(big);
    steps.push(vec!["OBJECT", "ENCODING", "big"]);
    steps.push(vec!["SADD", "big", &ints[512]]);
    steps.push(vec!["OBJECT", "ENCODING", "big"]);
    // Compared as values: OBJECT ENCODING is a status line here, a bulk string in Redis.
    for s in &steps {
        assert_eq!(got.cmd(s).await, want.cmd(s).await, "{s:?}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_survive_a_warm_tier_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = warm_config(dir.path(), 1);
    let srv = TestShard::start(cfg.clone()).await;
    let mut c = srv.raw().await;
    for i in 0..20 {
        let k = format!("s{i}");
        assert_eq!(
            c.cmd(&["SADD", &k, "a", "", &i.to_string()]).await,
            V::Int(3)
        );
    }
    assert_eq!(c.cmd(&["SADD", "n", "5", "-3", "7"]).await, V::Int(3));
    drop(c);
    srv.stop().await;

    let srv = TestShard::start(cfg).await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(21));
    assert_eq!(
        sorted(c.cmd(&["SMEMBERS", "s0"]).await),
        sorted(V::strs(&["a", "", "0"]))
    );
    assert_eq!(c.cmd(&["TYPE", "s7"]).await, V::s("set"));
    assert_eq!(c.cmd(&["SISMEMBER", "s7", "7"]).await, V::Int(1));
    assert_eq!(c.cmd(&["SREM", "s7", "a"]).await, V::Int(1));
    assert_eq!(c.cmd(&["SCARD", "s7"]).await, V::Int(2));
    assert_eq!(c.cmd(&["SMEMBERS", "n"]).await, V::strs(&["-3", "5", "7"]));
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "n"]).await, V::s("intset"));
    srv.stop().await;
}

#[tokio::test]
async fn set_writes_invalidate_tracked_keys() {
    let srv = TestShard::default().await;
    let mut reader = srv.raw().await;
    let hello = reader.cmd(&["HELLO", "3"]).await;
    assert!(matches!(hello, V::Arr(_) | V::Map(_)), "{hello:?}");
    let mut writer = srv.raw().await;
    assert_eq!(reader.cmd(&["CLIENT", "TRACKING", "on"]).await, V::s("OK"));
    assert_eq!(writer.cmd(&["SADD", "s", "a"]).await, V::Int(1));
    assert_eq!(reader.cmd(&["SISMEMBER", "s", "a"]).await, V::Int(1));
    assert_eq!(writer.cmd(&["SADD", "s", "b"]).await, V::Int(1));
    let invalidate = |k: &[&str]| V::Arr(vec![V::s("invalidate"), V::strs(k)]);
    assert_eq!(reader.read().await, invalidate(&["s"]));
    // SMOVE invalidates both of its keys, in one push as Redis 7 batches a command's keys.
    assert_eq!(reader.cmd(&["SCARD", "s"]).await, V::Int(2));
    assert_eq!(reader.cmd(&["SCARD", "t"]).await, V::Int(0));
    assert_eq!(writer.cmd(&["SMOVE", "s", "t", "a"]).await, V::Int(1));
    assert_eq!(reader.read().await, invalidate(&["s", "t"]));
    // SUNIONSTORE invalidates its destination only, as Redis does (the sources are read).
    assert_eq!(reader.cmd(&["SCARD", "u"]).await, V::Int(0));
    assert_eq!(writer.cmd(&["SUNIONSTORE", "u", "s", "t"]).await, V::Int(2));
    assert_eq!(reader.read().await, invalidate(&["u"]));
    srv.stop().await;
}
