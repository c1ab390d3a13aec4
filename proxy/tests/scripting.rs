//! Lua scripts through the proxy over three shards: EVAL and EVALSHA route by their declared
//! keys to the slot's owner (a keyless one to any shard), SCRIPT LOAD and SCRIPT FLUSH go to
//! every shard, an EVALSHA a shard answers NOSCRIPT for is healed by the proxy (it loads the
//! script there and retries) unless the client flushed the scripts through it, and the redis
//! crate's `Script` (EVALSHA, then EVAL on NOSCRIPT) works. Functions likewise: FUNCTION
//! LOAD / DELETE / FLUSH / RESTORE reach every shard, FCALL routes by its keys, and an FCALL a
//! shard answers `Function not found` for is healed by loading the library there. redis-py's
//! `register_script` and `Lock` work through the proxy.

mod common;

use common::*;
use shard::testing::{TestShard, V};

#[tokio::test]
async fn scripts_route_by_their_keys_through_the_proxy() {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    let keys = spread_keys(30);
    let set = "return redis.call('SET', KEYS[1], ARGV[1])";
    for k in &keys {
        assert_eq!(c.cmd(&["EVAL", set, "1", k, k]).await, V::s("OK"), "{k}");
    }
    for k in &keys {
        // On the owner itself: the script ran there.
        let mut owner = shards[owner_3(k)].raw().await;
        assert_eq!(owner.cmd(&["GET", k]).await, V::s(k), "{k}");
        assert_eq!(
            c.cmd(&["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", k])
                .await,
            V::s(k)
        );
    }
    // Keyless: any shard answers.
    assert_eq!(c.cmd(&["EVAL", "return 1 + 1", "0"]).await, V::Int(2));
    // Declared keys in different slots.
    let e = c.text(&["EVAL", "return 1", "2", "a", "b"]).await;
    assert!(e.starts_with("-CROSSSLOT"), "{e}");
    // Same slot (a hash tag): atomic on one shard.
    assert_eq!(
        c.cmd(&[
            "EVAL",
            "return {redis.call('INCR', KEYS[1]), redis.call('INCR', KEYS[2])}",
            "2",
            "{t}a",
            "{t}b"
        ])
        .await,
        V::Arr(vec![V::Int(1), V::Int(1)])
    );

    // SCRIPT LOAD reaches every shard: EVALSHA works whichever shard the key routes to.
    let get = "return redis.call('GET', KEYS[1])";
    let sha = c.cmd(&["SCRIPT", "LOAD", get]).await;
    let sha = sha.as_str().to_string();
    assert_eq!(sha.len(), 40);
    for s in &shards {
        let mut direct = s.raw().await;
        assert_eq!(
            direct.cmd(&["SCRIPT", "EXISTS", &sha]).await,
            V::Arr(vec![V::Int(1)])
        );
    }
    for k in &keys {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k]).await, V::s(k));
    }
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha, "nope"]).await,
        V::Arr(vec![V::Int(1), V::Int(0)])
    );
    // A shard that lost its scripts (restarted, flushed behind the proxy's back): the proxy
    // loads the script there again and the EVALSHA succeeds.
    let mut first = shards[0].raw().await;
    assert_eq!(first.cmd(&["SCRIPT", "FLUSH"]).await, V::s("OK"));
    for k in keys.iter().filter(|k| owner_3(k) == 0).take(3) {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k]).await, V::s(k));
    }
    assert_eq!(
        first.cmd(&["SCRIPT", "EXISTS", &sha]).await,
        V::Arr(vec![V::Int(1)])
    );
    // A script the proxy never saw stays unknown.
    let unknown = "0123456789012345678901234567890123456789";
    let e = c.text(&["EVALSHA", unknown, "1", &keys[0]]).await;
    assert_eq!(e, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    assert_eq!(c.cmd(&["SCRIPT", "FLUSH"]).await, V::s("OK"));
    let e = c.text(&["EVALSHA", &sha, "1", &keys[0]]).await;
    assert_eq!(e, "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha]).await,
        V::Arr(vec![V::Int(0)])
    );

    // The redis crate's Script: NOSCRIPT from the key's shard, then EVAL.
    let mut con = proxy.redis().await;
    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    for (i, k) in keys.iter().take(6).enumerate() {
        let key = format!("n:{k}");
        let n: i64 = script
            .key(&key)
            .arg(i + 1)
            .invoke_async(&mut con)
            .await
            .expect("script");
        assert_eq!(n, i as i64 + 1);
    }
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

const LIB: &str = "#!lua name=plib
redis.register_function('pset', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
redis.register_function{function_name='pget', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}";

#[tokio::test]
async fn functions_through_the_proxy() {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB]).await, V::s("plib"));
    // Every shard has it.
    for s in &shards {
        let list = s.raw().await.cmd(&["FUNCTION", "LIST"]).await;
        assert_eq!(list.as_arr().len(), 1, "{list:?}");
    }
    // A second LOAD without REPLACE is refused (by every shard alike).
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", LIB]).await,
        V::Err("ERR Library 'plib' already exists".into())
    );
    let keys = spread_keys(30);
    for k in &keys {
        assert_eq!(c.cmd(&["FCALL", "pset", "1", k, k]).await, V::s("OK"));
        let mut owner = shards[owner_3(k)].raw().await;
        assert_eq!(
            owner.cmd(&["GET", k]).await,
            V::s(k),
            "ran on the owner: {k}"
        );
        assert_eq!(c.cmd(&["FCALL_RO", "pget", "1", k]).await, V::s(k));
    }
    let e = c.text(&["FCALL", "pset", "2", "a", "b", "v"]).await;
    assert!(e.starts_with("-CROSSSLOT"), "{e}");
    // FUNCTION LIST, DUMP and STATS come from one shard.
    let list = c.cmd(&["FUNCTION", "LIST"]).await;
    assert_eq!(list.as_arr().len(), 1, "{list:?}");
    let stats = c.text(&["FUNCTION", "STATS"]).await;
    assert!(stats.contains("libraries_count"), "{stats}");

    // A shard that lost its libraries (restarted, flushed behind the proxy's back): the proxy
    // loads them there again and the FCALL succeeds.
    let mut first = shards[0].raw().await;
    assert_eq!(first.cmd(&["FUNCTION", "FLUSH"]).await, V::s("OK"));
    for k in keys.iter().filter(|k| owner_3(k) == 0).take(3) {
        assert_eq!(c.cmd(&["FCALL_RO", "pget", "1", k]).await, V::s(k));
    }
    assert_eq!(first.cmd(&["FUNCTION", "LIST"]).await.as_arr().len(), 1);
    // A function the proxy never saw loaded stays unknown.
    assert_eq!(
        c.cmd(&["FCALL", "nosuch", "1", &keys[0]]).await,
        V::Err("ERR Function not found".into())
    );

    // DUMP from one shard, RESTORE to all.
    c.send(&shard::testing::encode(&["FUNCTION", "DUMP"])).await;
    let bulk = c.reply().await;
    let start = bulk.iter().position(|&b| b == b'\n').expect("bulk header") + 1;
    let dump = bulk[start..bulk.len() - 2].to_vec();
    assert_eq!(c.cmd(&["FUNCTION", "DELETE", "plib"]).await, V::s("OK"));
    for s in &shards {
        assert_eq!(
            s.raw().await.cmd(&["FUNCTION", "LIST"]).await,
            V::Arr(Vec::new())
        );
    }
    // Deleted through the proxy: not healed.
    assert_eq!(
        c.cmd(&["FCALL", "pset", "1", &keys[0], "x"]).await,
        V::Err("ERR Function not found".into())
    );
    c.send(&shard::testing::encode_bytes(&[
        b"FUNCTION",
        b"RESTORE",
        &dump,
    ]))
    .await;
    assert_eq!(c.read().await, V::s("OK"));
    for s in &shards {
        assert_eq!(
            s.raw()
                .await
                .cmd(&["FUNCTION", "LIST"])
                .await
                .as_arr()
                .len(),
            1
        );
    }
    assert_eq!(c.cmd(&["FUNCTION", "FLUSH"]).await, V::s("OK"));
    for s in &shards {
        assert_eq!(
            s.raw().await.cmd(&["FUNCTION", "LIST"]).await,
            V::Arr(Vec::new())
        );
    }

    // SCRIPT EXISTS answers 1 only when every shard has the script.
    let body = "return 'only here'";
    let sha = shards[1].raw().await.cmd(&["SCRIPT", "LOAD", body]).await;
    let sha = sha.as_str().to_string();
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha]).await,
        V::Arr(vec![V::Int(0)])
    );
    assert_eq!(c.cmd(&["SCRIPT", "LOAD", body]).await, V::s(&sha));
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha, "nope"]).await,
        V::Arr(vec![V::Int(1), V::Int(0)])
    );
    // Nothing runs anywhere.
    for kill in [["SCRIPT", "KILL"], ["FUNCTION", "KILL"]] {
        assert_eq!(
            c.cmd(&kill).await,
            V::Err("NOTBUSY No scripts in execution right now.".into())
        );
    }
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_scripts_and_locks_through_the_proxy() {
    let Some(python) = redis_py() else {
        return;
    };
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    run_redis_py_scripts(&python, proxy.addr).await;
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

/// An EVALSHA queued in MULTI on a shard that never saw the script (it ran by EVAL on
/// another): inside EXEC a `-NOSCRIPT` cannot be healed, so the proxy loads the script on the
/// shard ahead of the transaction, with and without WATCH. ioredis's `defineCommand` in
/// `multi()` sends exactly this.
#[tokio::test]
async fn evalsha_inside_multi_runs_on_a_shard_that_never_saw_the_script() {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    let keys = spread_keys(30);
    let on =
        |shard: usize| -> Vec<&String> { keys.iter().filter(|k| owner_3(k) == shard).collect() };
    let (k0, k1, k2) = (on(0)[0], on(1)[0], on(2)[0]);
    let body = "return redis.call('INCR', KEYS[1])";
    assert_eq!(c.cmd(&["EVAL", body, "1", k0]).await, V::Int(1));
    let sha = shards[0].raw().await.cmd(&["SCRIPT", "LOAD", body]).await;
    let sha = sha.as_str().to_string();
    for s in &shards[1..] {
        assert_eq!(
            s.raw().await.cmd(&["SCRIPT", "EXISTS", &sha]).await,
            V::Arr(vec![V::Int(0)])
        );
    }
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k1]).await, V::s("QUEUED"));
    assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k1]).await, V::s("QUEUED"));
    assert_eq!(c.cmd(&["EXEC"]).await, V::Arr(vec![V::Int(1), V::Int(2)]));
    // After WATCH the transaction goes on the client's pinned connection.
    assert_eq!(c.cmd(&["WATCH", k2]).await, V::s("OK"));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k2]).await, V::s("QUEUED"));
    assert_eq!(c.cmd(&["EXEC"]).await, V::Arr(vec![V::Int(1)]));
    // A script the proxy never saw still fails in place, as on Redis.
    let unknown = "0123456789012345678901234567890123456789";
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["EVALSHA", unknown, "1", k1]).await, V::s("QUEUED"));
    assert_eq!(c.cmd(&["GET", k1]).await, V::s("QUEUED"));
    let e = c.text(&["EXEC"]).await;
    assert_eq!(
        e,
        "*2\r\n-NOSCRIPT No matching script. Please use EVAL.\r\n$1\r\n2\r\n"
    );
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}
