//! Lists: a differential test against a real `redis-server` (every reply compared byte for
//! byte, on the RAM tier and through the warm tier), plus lists across a warm-tier restart and
//! CLIENT TRACKING on list writes.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential test when it is missing.

use std::time::Instant;

use shard::testing::{Raw, TestShard, V, differential as run, random, redis_server, warm_config};

/// Operations per differential run.
const OPS: usize = 10_000;

/// Sends the same seeded random operations to Redis and to `srv`, comparing every reply's
/// bytes, then the final contents.
async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    // The table rows first: arity, flags, key positions, ACL categories and key specs.
    for name in random::list::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let started = Instant::now();
    let tally = run(&mut want, &mut got, OPS, seed, |rng| {
        random::list::step(rng, "")
    })
    .await;
    for k in random::list::KEYS {
        for probe in [vec!["TYPE", k], vec!["LRANGE", k, "0", "-1"]] {
            assert_eq!(got.text(&probe).await, want.text(&probe).await, "{probe:?}");
        }
    }
    eprintln!("{OPS} operations in {:?}: {tally:?}", started.elapsed());
    assert!(
        tally.errors > OPS / 20 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    assert!(tally.arrays > OPS / 20, "{tally:?}");
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x11575).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x5eed).await;
}

#[tokio::test]
async fn list_basics_and_type_errors() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["RPUSH", "l", "a", "b", "c"]).await, V::Int(3));
    assert_eq!(c.cmd(&["TYPE", "l"]).await, V::s("list"));
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "l"]).await, V::s("listpack"));
    assert_eq!(
        c.cmd(&["LRANGE", "l", "0", "-1"]).await,
        V::strs(&["a", "b", "c"])
    );
    assert_eq!(
        c.cmd(&["SCAN", "0", "TYPE", "list"]).await.as_arr()[1],
        V::strs(&["l"])
    );
    assert!(c.cmd(&["MEMORY", "USAGE", "l"]).await.as_int() > 3);
    assert_eq!(
        c.text(&["GET", "l"]).await,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(c.cmd(&["LPOP", "l", "5"]).await, V::strs(&["a", "b", "c"]));
    assert_eq!(
        c.cmd(&["EXISTS", "l"]).await,
        V::Int(0),
        "an empty list is deleted"
    );
    let big: Vec<String> = (0..100).map(|_| "x".repeat(100)).collect();
    let mut args = vec!["RPUSH", "big"];
    args.extend(big.iter().map(String::as_str));
    assert_eq!(c.cmd(&args).await, V::Int(100));
    assert_eq!(
        c.cmd(&["OBJECT", "ENCODING", "big"]).await,
        V::s("quicklist")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_survive_a_warm_tier_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = warm_config(dir.path(), 1);
    let srv = TestShard::start(cfg.clone()).await;
    let mut c = srv.raw().await;
    for i in 0..20 {
        let k = format!("l{i}");
        assert_eq!(
            c.cmd(&["RPUSH", &k, "a", "", &i.to_string()]).await,
            V::Int(3)
        );
    }
    assert_eq!(c.cmd(&["LPUSH", "l0", "head"]).await, V::Int(4));
    drop(c);
    srv.stop().await;

    let srv = TestShard::start(cfg).await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(20));
    assert_eq!(
        c.cmd(&["LRANGE", "l0", "0", "-1"]).await,
        V::strs(&["head", "a", "", "0"])
    );
    assert_eq!(
        c.cmd(&["LRANGE", "l19", "0", "-1"]).await,
        V::strs(&["a", "", "19"])
    );
    assert_eq!(c.cmd(&["TYPE", "l7"]).await, V::s("list"));
    assert_eq!(c.cmd(&["RPOP", "l7"]).await, V::s("7"));
    assert_eq!(c.cmd(&["LLEN", "l7"]).await, V::Int(2));
    srv.stop().await;
}

#[tokio::test]
async fn list_writes_invalidate_tracked_keys() {
    let srv = TestShard::default().await;
    let mut reader = srv.raw().await;
    let hello = reader.cmd(&["HELLO", "3"]).await;
    assert!(matches!(hello, V::Arr(_) | V::Map(_)), "{hello:?}");
    let mut writer = srv.raw().await;
    assert_eq!(reader.cmd(&["CLIENT", "TRACKING", "on"]).await, V::s("OK"));
    assert_eq!(writer.cmd(&["RPUSH", "l", "a"]).await, V::Int(1));
    assert_eq!(
        reader.cmd(&["LRANGE", "l", "0", "-1"]).await,
        V::strs(&["a"])
    );
    assert_eq!(writer.cmd(&["LPUSH", "l", "b"]).await, V::Int(2));
    let invalidate = |k: &str| V::Arr(vec![V::s("invalidate"), V::strs(&[k])]);
    assert_eq!(reader.read().await, invalidate("l"));
    // LMOVE invalidates both of its keys, in one push as Redis 7 batches a command's keys.
    assert_eq!(reader.cmd(&["LLEN", "l"]).await, V::Int(2));
    assert_eq!(reader.cmd(&["LLEN", "m"]).await, V::Int(0));
    assert_eq!(
        writer.cmd(&["LMOVE", "l", "m", "LEFT", "RIGHT"]).await,
        V::s("b")
    );
    assert_eq!(
        reader.read().await,
        V::Arr(vec![V::s("invalidate"), V::strs(&["l", "m"])])
    );
    srv.stop().await;
}
