//! The core suite against a real Redis Cluster: 3 `redis-server --cluster-enabled yes` on free
//! loopback ports, created with `redis-cli --cluster create`, killed by a Drop guard.
//! Needs redis-server and redis-cli (`apt-get install redis-server redis-tools`); set
//! AUTOCACHE_SKIP_EXTERNAL=1 to skip when they are missing.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::redis_cluster::*;
use common::*;
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_suite_against_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let rc = RedisCluster::start();
    // One seed is enough: the rest comes from CLUSTER SHARDS.
    let proxy = Proxy::start(config(&rc.seeds()[..1])).await;
    let mut raw = proxy.raw().await;
    let info = raw.text(&["INFO"]).await;
    assert!(info.contains("proxy_mode:cluster"), "{info}");
    assert_eq!(info.matches("slots=").count(), 3, "{info}");

    // Ordered pipeline over every node.
    let mut req = Vec::new();
    let mut expected = Vec::new();
    for i in 0..150 {
        let k = format!("key:{i}");
        req.extend(encode(&["SET", &k, &i.to_string()]));
        expected.push("+OK\r\n".to_string());
        req.extend(encode(&["GET", &k]));
        expected.push(format!("${}\r\n{i}\r\n", i.to_string().len()));
        if i % 15 == 0 {
            req.extend(encode(&["MGET", &k, "nope", &format!("key:{}", i / 2)]));
            let h = (i / 2).to_string();
            expected.push(format!(
                "*3\r\n${}\r\n{i}\r\n$-1\r\n${}\r\n{h}\r\n",
                i.to_string().len(),
                h.len()
            ));
        }
    }
    raw.send(&req).await;
    for (n, want) in expected.iter().enumerate() {
        let got = String::from_utf8_lossy(&raw.reply().await).into_owned();
        assert_eq!(&got, want, "reply #{n}");
    }
    assert_eq!(raw.text(&["FLUSHALL"]).await, "+OK\r\n");

    // 100-key MSET/MGET/EXISTS/DEL (split per slot: the cluster refuses cross-slot).
    let mut c = proxy.redis().await;
    let keys = spread_keys(100);
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let _: () = c.mset(&pairs).await.expect("mset");
    let vals: Vec<Option<String>> = c.mget(&keys).await.expect("mget");
    for (k, v) in keys.iter().zip(&vals) {
        assert_eq!(v.as_deref(), Some(format!("v-{k}").as_str()));
    }
    let n: i64 = redis::cmd("EXISTS")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(n, 100);
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("dbsize");
    assert_eq!(n, 100);
    for p in &rc.ports {
        let n: i64 = cli(*p, &["DBSIZE"]).parse().expect("dbsize");
        assert!(n > 10, "node {p} holds part of the keys ({n})");
    }

    // SCAN walks node after node; every key exactly once.
    let mut seen = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(7)
            .query_async(&mut c)
            .await
            .expect("scan");
        seen.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((unique.len(), seen.len()), (100, 100));
    let n: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .expect("del");
    assert_eq!(n, 100);

    // CROSSSLOT for atomic multi-key commands; same-slot works.
    let cross = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(raw.text(&["MSETNX", "a", "1", "b", "2"]).await, cross);
    assert_eq!(
        raw.text(&["MSETNX", "{t}a", "1", "{t}b", "2"]).await,
        ":1\r\n"
    );
    assert_eq!(raw.text(&["RENAME", "{t}a", "{t}c"]).await, "+OK\r\n");

    // RESP3 for the client while the backends speak RESP2.
    let mut r3 = proxy.raw().await;
    assert!(r3.text(&["HELLO", "3"]).await.starts_with('%'));
    assert_eq!(r3.text(&["HSET", "h", "f", "v"]).await, ":1\r\n");
    assert_eq!(
        r3.text(&["HGETALL", "h"]).await,
        "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(r3.text(&["GET", "nope"]).await, "_\r\n");

    // MOVED: move an empty slot to another node behind the proxy's back.
    let key = "moved-key";
    let slot = membership::Slot::for_key(key.as_bytes()).get().to_string();
    let owner_port = rc
        .ports
        .iter()
        .copied()
        .find(|p| {
            cli(*p, &["CLUSTER", "COUNTKEYSINSLOT", &slot]) == "0"
                && cli(*p, &["GET", key]).is_empty()
                && !cli(*p, &["SET", key, "x"]).starts_with("MOVED")
        })
        .expect("owner");
    let _ = cli(owner_port, &["DEL", key]);
    let target_port = *rc.ports.iter().find(|p| **p != owner_port).expect("target");
    let target_id = cli(target_port, &["CLUSTER", "MYID"]);
    for p in &rc.ports {
        let r = cli(*p, &["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
        assert_eq!(r, "OK", "setslot on {p}");
    }
    assert_eq!(raw.text(&["SET", key, "after-move"]).await, "+OK\r\n");
    assert_eq!(cli(target_port, &["GET", key]), "after-move");
    assert_eq!(raw.text(&["GET", key]).await, "$10\r\nafter-move\r\n");
    let stats = raw.text(&["INFO", "stats"]).await;
    assert!(!stats.contains("redirects_moved:0"), "{stats}");

    // redis-cli through the proxy.
    let port = proxy.addr.port();
    assert_eq!(cli(port, &["SET", "cli", "works"]), "OK");
    assert_eq!(cli(port, &["GET", "cli"]), "works");

    proxy.stop().await;
    drop(rc);
}

/// The near cache in front of a real Redis Cluster: its nodes' CLIENT TRACKING keeps two
/// proxies' copies coherent, for writes through the other proxy and straight to a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_in_front_of_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let rc = RedisCluster::start();
    let hot = |seeds: &[String]| proxy::Config {
        hotkey_threshold: 20,
        hotkey_window: Duration::from_millis(100),
        hotkey_sample: 1,
        near_cache_link_idle: Duration::ZERO,
        ..config(seeds)
    };
    let a = Proxy::start(hot(&rc.seeds()[..1])).await;
    let b = Proxy::start(hot(&rc.seeds()[1..2])).await;
    let mut ra = a.raw().await;
    let mut rb = b.raw().await;
    let hits = |info: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("near_cache_hits:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no near_cache_hits in {info}"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for r in [&mut ra, &mut rb] {
        while !r
            .text(&["INFO", "hotkeys"])
            .await
            .contains("near_cache_links_coherent:3/3")
        {
            assert!(Instant::now() < deadline, "links never subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for (i, key) in ["hot:a", "hot:b", "hot:c"].iter().enumerate() {
        let v = format!("v{i}");
        assert_eq!(rb.text(&["SET", key, &v]).await, "+OK\r\n");
        // Hot, then served from A's memory.
        let want = format!("${}\r\n{v}\r\n", v.len());
        loop {
            let before = hits(&ra.text(&["INFO", "hotkeys"]).await);
            for _ in 0..10 {
                assert_eq!(ra.text(&["GET", key]).await, want);
            }
            if hits(&ra.text(&["INFO", "hotkeys"]).await) > before {
                break;
            }
            assert!(Instant::now() < deadline, "{key} never cached");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A write through B, then one straight to the owning node (found by trying: the
        // others answer MOVED).
        for (n, v) in ["via-b", "direct"].iter().enumerate() {
            if n == 0 {
                assert_eq!(rb.text(&["SET", key, v]).await, "+OK\r\n");
            } else {
                let done = rc.ports.iter().any(|p| cli(*p, &["SET", key, v]) == "OK");
                assert!(done, "no node took the write");
            }
            let want = format!("${}\r\n{v}\r\n", v.len());
            let start = Instant::now();
            while ra.text(&["GET", key]).await != want {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "{key} never became {v} through A"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    // Read-your-writes through A itself.
    for i in 0..50 {
        let v = format!("ryw{i}");
        assert_eq!(ra.text(&["SET", "hot:a", &v]).await, "+OK\r\n");
        assert_eq!(
            ra.text(&["GET", "hot:a"]).await,
            format!("${}\r\n{v}\r\n", v.len())
        );
    }
    let info = ra.text(&["INFO", "hotkeys"]).await;
    assert!(hits(&info) > 0, "{info}");
    a.stop().await;
    b.stop().await;
    drop(rc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_through_the_proxy_over_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let Some(python) = redis_py() else {
        return;
    };
    let rc = RedisCluster::start();
    let proxy = Proxy::start(config(&rc.seeds()[..1])).await;
    run_redis_py(&python, proxy.addr).await;
}

/// redis-py's `register_script`, `Lock` and FCALL through the proxy in front of a real Redis
/// Cluster: FUNCTION LOAD reaches every master, FCALL routes by key, SCRIPT EXISTS is the AND
/// of the masters' answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_scripts_and_locks_over_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let Some(python) = redis_py() else {
        return;
    };
    let rc = RedisCluster::start();
    let proxy = Proxy::start(config(&rc.seeds()[..1])).await;
    run_redis_py_scripts(&python, proxy.addr).await;
    // A master that lost its libraries behind the proxy's back gets them again.
    let mut c = proxy.raw().await;
    let lib = "#!lua name=rc\nredis.register_function('rc_get', function(keys) return redis.call('GET', keys[1]) end)";
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", lib]).await,
        shard::testing::V::s("rc")
    );
    for seed in rc.seeds() {
        let addr: std::net::SocketAddr = seed.parse().expect("seed address");
        let mut direct = shard::testing::Raw::connect(addr).await;
        assert_eq!(
            direct.cmd(&["FUNCTION", "FLUSH"]).await,
            shard::testing::V::s("OK")
        );
    }
    for i in 0..20 {
        let k = format!("rc:{i}");
        assert_eq!(
            c.cmd(&["FCALL", "rc_get", "1", &k]).await,
            shard::testing::V::Nil
        );
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_through_the_proxy_over_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let Some(node) = ioredis() else {
        return;
    };
    let rc = RedisCluster::start();
    let proxy = Proxy::start(config(&rc.seeds()[..1])).await;
    run_ioredis(&node, proxy.addr, IOREDIS_PROXY_FLAGS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_never_serves_a_key_past_its_ttl_over_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let rc = RedisCluster::start();
    // Without active expiry a node deletes (and announces) an expired key only when it is
    // read: a cache that waited for the announcement would serve the key forever.
    for p in &rc.ports {
        assert_eq!(cli(*p, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "OK");
    }
    let proxy = Proxy::start(near_ttl::near_cache_config(&rc.seeds()[..1])).await;
    let mut raw = proxy.raw().await;
    near_ttl::until_coherent(&mut raw, 3).await;
    near_ttl::every_ttl_way_expires_in_the_near_cache(&mut raw, &|k| rc.owner(k), true).await;
}

/// Commands outside AutoCache's own table are routed by what the cluster's `COMMAND` says of
/// them: lists, sets, sorted sets, streams, bitmaps, HyperLogLog, scripts, key specs with key
/// counts and keywords, same-slot multi-key commands, and refusals that say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_the_cluster_knows_is_routed_by_its_keys() {
    if !tools_present() {
        return;
    }
    let rc = RedisCluster::start();
    // The near cache on and coherent: learned writes must fence what they write.
    let proxy = Proxy::start(near_ttl::near_cache_config(&rc.seeds()[..1])).await;
    let mut raw = proxy.raw().await;
    near_ttl::until_coherent(&mut raw, 3).await;
    let mut checks: Vec<(Vec<&str>, &str)> = vec![
        // Lists.
        (vec!["RPUSH", "list", "a", "b", "c"], ":3\r\n"),
        (vec!["LPUSH", "list", "z"], ":4\r\n"),
        (
            vec!["LRANGE", "list", "0", "-1"],
            "*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
        (vec!["LPOP", "list", "2"], "*2\r\n$1\r\nz\r\n$1\r\na\r\n"),
        (vec!["LLEN", "list"], ":2\r\n"),
        (
            vec!["LMOVE", "{l}src", "{l}dst", "LEFT", "RIGHT"],
            "$-1\r\n",
        ),
        // Sets, with a same-slot multi-key command.
        (vec!["SADD", "{s}a", "1", "2", "3"], ":3\r\n"),
        (vec!["SADD", "{s}b", "2", "3", "4"], ":3\r\n"),
        (vec!["SINTERCARD", "2", "{s}a", "{s}b"], ":2\r\n"),
        (vec!["SISMEMBER", "{s}a", "1"], ":1\r\n"),
        // Across slots the read-only algebra is computed by the proxy from the nodes' replies
        // (here on two different nodes); the STORE forms stay CROSSSLOT.
        (vec!["SADD", "other", "3", "5"], ":2\r\n"),
        (vec!["SINTER", "{s}a", "other"], "*1\r\n$1\r\n3\r\n"),
        (vec!["SINTERCARD", "3", "{s}a", "{s}b", "other"], ":1\r\n"),
        (vec!["SDIFF", "other", "{s}b"], "*1\r\n$1\r\n5\r\n"),
        (
            vec!["SINTERSTORE", "{s}c", "{s}a", "other"],
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n",
        ),
        // Sorted sets: key counts (ZUNIONSTORE) found from the key specs.
        (vec!["ZADD", "{z}a", "1", "x", "2", "y"], ":2\r\n"),
        (vec!["ZADD", "{z}b", "3", "x"], ":1\r\n"),
        (
            vec![
                "ZUNIONSTORE",
                "{z}d",
                "2",
                "{z}a",
                "{z}b",
                "WEIGHTS",
                "1",
                "1",
            ],
            ":2\r\n",
        ),
        (vec!["ZSCORE", "{z}d", "x"], "$1\r\n4\r\n"),
        (
            vec!["ZRANGE", "{z}d", "0", "-1", "WITHSCORES"],
            "*4\r\n$1\r\ny\r\n$1\r\n2\r\n$1\r\nx\r\n$1\r\n4\r\n",
        ),
        (
            vec!["ZUNIONSTORE", "d", "2", "a", "b"],
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n",
        ),
        // Across nodes the read-only forms are computed by the proxy.
        (vec!["ZADD", "zother", "5", "x"], ":1\r\n"),
        (
            vec!["ZUNION", "2", "{z}a", "zother", "WITHSCORES"],
            "*4\r\n$1\r\ny\r\n$1\r\n2\r\n$1\r\nx\r\n$1\r\n6\r\n",
        ),
        (vec!["ZINTERCARD", "2", "{z}a", "zother"], ":1\r\n"),
        // Streams, a container (XINFO, XGROUP) whose subcommands carry keys.
        (vec!["XADD", "stream", "1-1", "f", "v"], "$3\r\n1-1\r\n"),
        (vec!["XLEN", "stream"], ":1\r\n"),
        (vec!["XGROUP", "CREATE", "stream", "g", "0"], "+OK\r\n"),
        (vec!["XACK", "stream", "g", "1-1"], ":0\r\n"),
        // Bitmaps and HyperLogLog.
        (vec!["SETBIT", "{b}x", "7", "1"], ":0\r\n"),
        (vec!["SETBIT", "{b}y", "7", "1"], ":0\r\n"),
        (vec!["BITOP", "AND", "{b}d", "{b}x", "{b}y"], ":1\r\n"),
        (vec!["BITCOUNT", "{b}d"], ":1\r\n"),
        (vec!["GETBIT", "{b}d", "7"], ":1\r\n"),
        (vec!["PFADD", "hll", "a", "b", "c"], ":1\r\n"),
        (vec!["PFCOUNT", "hll"], ":3\r\n"),
        // Scripts: keys from the key count; SCRIPT LOAD reaches every node.
        (vec!["SET", "k", "v"], "+OK\r\n"),
        (
            vec!["EVAL", "return redis.call('GET', KEYS[1])", "1", "k"],
            "$1\r\nv\r\n",
        ),
        (vec!["EVAL", "return 1", "0"], ":1\r\n"),
        // Keyless commands go to one node.
        (vec!["LOLWUT", "VERSION", "5", "1", "1", "1"], ""),
        // Blocking: on a connection of its own, here timing out.
        (vec!["BLPOP", "nosuchlist", "0.01"], "*-1\r\n"),
        // XREAD BLOCK too, timing out.
        (vec!["XREAD", "BLOCK", "10", "STREAMS", "s", "$"], "*-1\r\n"),
        // Refused, with the reason.
        (
            vec!["BGSAVE"],
            "-ERR BGSAVE is not supported through the proxy: it administers a single server; send it to the shard itself\r\n",
        ),
        (
            vec!["NOSUCHCOMMAND", "x"],
            "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' \r\n",
        ),
    ];
    for (args, want) in checks.drain(..) {
        let got = raw.text(&args).await;
        if want.is_empty() {
            assert!(!got.starts_with('-'), "{args:?}: {got}");
        } else {
            assert_eq!(got, want, "{args:?}");
        }
    }
    // XINFO STREAM (a container's subcommand) routed by its key.
    assert!(
        raw.text(&["XINFO", "STREAM", "stream"])
            .await
            .contains("length")
    );
    // SCRIPT LOAD goes to every node, so EVALSHA works whichever node a key lives on.
    let sha = raw.text(&["SCRIPT", "LOAD", "return KEYS[1]"]).await;
    let sha = sha.lines().nth(1).expect("digest").to_string();
    for i in 0..30 {
        let k = format!("key:{i}");
        assert_eq!(
            raw.text(&["EVALSHA", &sha, "1", &k]).await,
            format!("${}\r\n{k}\r\n", k.len())
        );
    }
    // A learned write (EVAL is not even flagged `write`) fences its keys in the near cache: the
    // client's pipelined read right behind it sees what the script wrote.
    assert_eq!(raw.text(&["SET", "cached", "old"]).await, "+OK\r\n");
    near_ttl::until_cached(&mut raw, "cached", "old").await;
    let mut pipeline = encode(&[
        "EVAL",
        "return redis.call('SET', KEYS[1], 'new')",
        "1",
        "cached",
    ]);
    pipeline.extend(encode(&["GET", "cached"]));
    raw.send(&pipeline).await;
    assert_eq!(String::from_utf8_lossy(&raw.reply().await), "+OK\r\n");
    assert_eq!(String::from_utf8_lossy(&raw.reply().await), "$3\r\nnew\r\n");
    // The `redis` crate sees the same.
    let mut c = proxy.redis().await;
    let n: i64 = redis::cmd("SCARD")
        .arg("{s}a")
        .query_async(&mut c)
        .await
        .expect("scard");
    assert_eq!(n, 3);
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("{z}d")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .expect("zrange");
    assert_eq!(members, ["y", "x"]);
}
