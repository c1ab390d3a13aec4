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
    let info = raw.cmd(&["INFO"]).await;
    assert!(info.contains("proxy_mode:cluster"), "{info}");
    assert_eq!(info.matches("slots=").count(), 3, "{info}");

    // Ordered pipeline over every node.
    let mut req = Vec::new();
    let mut expected = Vec::new();
    for i in 0..150 {
        let k = format!("key:{i}");
        req.extend(resp(&["SET", &k, &i.to_string()]));
        expected.push("+OK\r\n".to_string());
        req.extend(resp(&["GET", &k]));
        expected.push(format!("${}\r\n{i}\r\n", i.to_string().len()));
        if i % 15 == 0 {
            req.extend(resp(&["MGET", &k, "nope", &format!("key:{}", i / 2)]));
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
    assert_eq!(raw.cmd(&["FLUSHALL"]).await, "+OK\r\n");

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
    assert_eq!(raw.cmd(&["MSETNX", "a", "1", "b", "2"]).await, cross);
    assert_eq!(
        raw.cmd(&["MSETNX", "{t}a", "1", "{t}b", "2"]).await,
        ":1\r\n"
    );
    assert_eq!(raw.cmd(&["RENAME", "{t}a", "{t}c"]).await, "+OK\r\n");

    // RESP3 for the client while the backends speak RESP2.
    let mut r3 = proxy.raw().await;
    assert!(r3.cmd(&["HELLO", "3"]).await.starts_with('%'));
    assert_eq!(r3.cmd(&["HSET", "h", "f", "v"]).await, ":1\r\n");
    assert_eq!(
        r3.cmd(&["HGETALL", "h"]).await,
        "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(r3.cmd(&["GET", "nope"]).await, "_\r\n");

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
    assert_eq!(raw.cmd(&["SET", key, "after-move"]).await, "+OK\r\n");
    assert_eq!(cli(target_port, &["GET", key]), "after-move");
    assert_eq!(raw.cmd(&["GET", key]).await, "$10\r\nafter-move\r\n");
    let stats = raw.cmd(&["INFO", "stats"]).await;
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
            .cmd(&["INFO", "hotkeys"])
            .await
            .contains("near_cache_links_coherent:3/3")
        {
            assert!(Instant::now() < deadline, "links never subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for (i, key) in ["hot:a", "hot:b", "hot:c"].iter().enumerate() {
        let v = format!("v{i}");
        assert_eq!(rb.cmd(&["SET", key, &v]).await, "+OK\r\n");
        // Hot, then served from A's memory.
        let want = format!("${}\r\n{v}\r\n", v.len());
        loop {
            let before = hits(&ra.cmd(&["INFO", "hotkeys"]).await);
            for _ in 0..10 {
                assert_eq!(ra.cmd(&["GET", key]).await, want);
            }
            if hits(&ra.cmd(&["INFO", "hotkeys"]).await) > before {
                break;
            }
            assert!(Instant::now() < deadline, "{key} never cached");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A write through B, then one straight to the owning node (found by trying: the
        // others answer MOVED).
        for (n, v) in ["via-b", "direct"].iter().enumerate() {
            if n == 0 {
                assert_eq!(rb.cmd(&["SET", key, v]).await, "+OK\r\n");
            } else {
                let done = rc.ports.iter().any(|p| cli(*p, &["SET", key, v]) == "OK");
                assert!(done, "no node took the write");
            }
            let want = format!("${}\r\n{v}\r\n", v.len());
            let start = Instant::now();
            while ra.cmd(&["GET", key]).await != want {
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
        assert_eq!(ra.cmd(&["SET", "hot:a", &v]).await, "+OK\r\n");
        assert_eq!(
            ra.cmd(&["GET", "hot:a"]).await,
            format!("${}\r\n{v}\r\n", v.len())
        );
    }
    let info = ra.cmd(&["INFO", "hotkeys"]).await;
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
