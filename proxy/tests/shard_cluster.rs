//! The proxy in front of AutoCache shards running in cluster mode: it learns the slot map from
//! the shards' own `CLUSTER SHARDS` (not a static split) and fans commands out to the owners.

mod common;

use std::time::Duration;

use common::*;

/// A shard in cluster mode (its bus on an ephemeral port) that joins `seeds`.
async fn cluster_shard(tag: &str, seeds: Vec<String>) -> TestShard {
    TestShard::start_with("127.0.0.1:0", |cfg| {
        cfg.dir = temp_dir(tag);
        cfg.cluster_enabled = true;
        cfg.cluster_port = Some(0);
        cfg.cluster_seeds = seeds;
        cfg.cluster_secret = Some("proxy-test-secret".into());
    })
    .await
}

/// Extra views of a cluster-mode shard.
trait ClusterView {
    async fn cmd(&self, args: &[&str]) -> String;
    async fn own_slots(&self) -> usize;
}

impl ClusterView for TestShard {
    async fn cmd(&self, args: &[&str]) -> String {
        let mut con = connect_url(&format!("redis://{}/", self.addr)).await;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut con).await.expect("cluster command")
    }

    /// How many slots the node serves, from its `CLUSTER NODES` "myself" line.
    async fn own_slots(&self) -> usize {
        let nodes = self.cmd(&["CLUSTER", "NODES"]).await;
        let Some(line) = nodes.lines().find(|l| l.contains("myself")) else {
            return 0;
        };
        line.split_whitespace()
            .skip(8)
            .filter(|r| !r.starts_with('['))
            .map(|r| match r.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                    (b + 1).saturating_sub(a)
                }
                None => 1,
            })
            .sum()
    }
}

async fn converged(nodes: &[&TestShard], size: usize) {
    for _ in 0..600 {
        let mut ok = true;
        for n in nodes {
            let info = n.cmd(&["CLUSTER", "INFO"]).await;
            ok &= info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_size:{size}\r"));
        }
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("shard cluster did not converge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_routes_by_the_shards_own_slot_map() {
    let a = cluster_shard("sc-a", vec![]).await;
    converged(&[&a], 1).await;
    let seed = a.bus_addr().await;
    let b = cluster_shard("sc-b", vec![seed.clone()]).await;
    let c = cluster_shard("sc-c", vec![seed]).await;
    converged(&[&a, &b, &c], 3).await;

    let proxy = Proxy::start(config(&[a.addr.to_string()])).await;
    let info: String = redis::cmd("INFO")
        .query_async(&mut proxy.redis().await)
        .await
        .expect("info");
    assert!(
        info.contains("proxy_mode:cluster"),
        "the proxy read CLUSTER SHARDS:\n{info}"
    );

    let mut con = proxy.redis().await;
    let keys: Vec<String> = (0..100).map(|i| format!("user:{i}")).collect();
    let mut mset = redis::cmd("MSET");
    for (i, k) in keys.iter().enumerate() {
        mset.arg(k).arg(i);
    }
    let () = mset
        .query_async(&mut con)
        .await
        .expect("MSET across shards");
    let vals: Vec<Option<i64>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut con)
        .await
        .expect("MGET");
    assert_eq!(vals, (0..100).map(Some).collect::<Vec<_>>());
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(n, 100);
    // Each shard holds only its own slots' keys.
    for s in [&a, &b, &c] {
        let mut sc = connect_url(&format!("redis://{}/", s.addr)).await;
        let k: i64 = redis::cmd("DBSIZE")
            .query_async(&mut sc)
            .await
            .expect("dbsize");
        assert!((10..=60).contains(&k), "{k}");
    }
    let deleted: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut con)
        .await
        .expect("DEL");
    assert_eq!(deleted, 100);
    proxy.stop().await;
}

/// A shard joins while clients work through the proxy: slots migrate online with their keys,
/// and the proxy follows the shards' ASK, TRYAGAIN and MOVED redirects without losing a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_follows_an_online_slot_migration() {
    let a = cluster_shard("sm-a", vec![]).await;
    converged(&[&a], 1).await;
    let seed = a.bus_addr().await;
    let b = cluster_shard("sm-b", vec![seed.clone()]).await;
    converged(&[&a, &b], 2).await;
    let proxy = Proxy::start(config(&[a.addr.to_string()])).await;
    let mut con = proxy.redis().await;
    for i in 0..3000 {
        let () = redis::cmd("SET")
            .arg(format!("m:{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .expect("load");
    }
    let c = cluster_shard("sm-c", vec![seed]).await;
    // Overwrite every key (bounded: one pass) while C takes its share.
    for i in 0..3000 {
        let () = redis::cmd("SET")
            .arg(format!("m:{i}"))
            .arg(i + 1)
            .query_async(&mut con)
            .await
            .expect("write during migration");
    }
    converged(&[&a, &b, &c], 3).await;
    // Done: C serves its share and no node has a slot in transfer (a poll between two
    // migration steps would see nothing in transfer).
    let mut migrating = true;
    for _ in 0..600 {
        let mut busy = c.own_slots().await < 5461;
        for s in [&a, &b, &c] {
            let info = s.cmd(&["CLUSTER", "INFO"]).await;
            busy |= !info.contains("cluster_slots_migrating:0\r")
                || !info.contains("cluster_slots_importing:0\r");
        }
        if !busy {
            migrating = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!migrating, "migrations did not finish");
    for i in 0..3000 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("m:{i}"))
            .query_async(&mut con)
            .await
            .expect("read after migration");
        assert_eq!(v, i + 1, "m:{i}");
    }
    let mut sc = connect_url(&format!("redis://{}/", c.addr)).await;
    let k: i64 = redis::cmd("DBSIZE")
        .query_async(&mut sc)
        .await
        .expect("dbsize");
    assert!(k > 500, "C holds migrated keys: {k}");
    proxy.stop().await;
}
