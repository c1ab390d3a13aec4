//! ioredis (Node.js) directly on shards: `proxy/tests/clients/ioredis.js` with multi/exec,
//! WATCH retries, defineCommand (EVALSHA falling back to EVAL), pipelines and pub/sub on one
//! shard, and ioredis's own `Redis.Cluster` client over three shards in cluster mode.
//! Skipped with a NOTICE when node or ioredis is missing (`npm ci` in proxy/tests/clients).

use std::time::Duration;

use shard::testing::{Config, TestShard, info_field, ioredis, run_ioredis, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_on_a_shard() {
    let Some(node) = ioredis() else {
        return;
    };
    let srv = TestShard::default().await;
    run_ioredis(&node, srv.addr, &["--pubsub"]).await;
    srv.stop().await;
}

fn cluster_config(tag: &str, seeds: Vec<String>) -> Config {
    Config {
        dir: temp_dir(tag),
        cluster_enabled: true,
        cluster_port: Some(0),
        cluster_seeds: seeds,
        cluster_secret: Some("ioredis-test-secret".into()),
        ..Config::default()
    }
}

/// Polls until every node reports `size` masters and all slots served.
async fn converge(nodes: &[&TestShard], size: usize) {
    for _ in 0..600 {
        let mut ok = true;
        for n in nodes {
            let info = n.raw().await.cmd(&["CLUSTER", "INFO"]).await;
            let info = info.as_str();
            ok &= info_field(info, "cluster_state").as_deref() == Some("ok")
                && info_field(info, "cluster_size").as_deref() == Some(&size.to_string());
        }
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster of {size} did not converge in 60 s");
}

/// Polls until no slot is migrating or importing and the slot map (CLUSTER NODES' node ids and
/// slot ranges) is the same twice 300 ms apart: joining shards take their slots over online,
/// after `cluster_size` already counts them, and a transaction on a moving slot is aborted.
async fn settled(node: &TestShard) {
    let map = || async {
        let nodes = node.raw().await.cmd(&["CLUSTER", "NODES"]).await;
        let mut lines: Vec<String> = nodes
            .as_str()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let mut kept = f.first().map(|s| s.to_string()).unwrap_or_default();
                for r in f.iter().skip(8) {
                    kept.push(' ');
                    kept.push_str(r);
                }
                kept
            })
            .collect();
        lines.sort();
        lines.join("\n")
    };
    let mut last = String::new();
    for _ in 0..200 {
        let now = map().await;
        if now == last && !now.contains('[') {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("the slot map did not settle in 60 s:\n{last}");
}

/// ioredis's Redis.Cluster reads CLUSTER SLOTS from a seed and routes each command (and each
/// single-slot pipeline, transaction and script) to the slot's owner among our shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_cluster_client_on_a_shard_cluster() {
    let Some(node) = ioredis() else {
        return;
    };
    let a = TestShard::start(cluster_config("io-a", vec![])).await;
    converge(&[&a], 1).await;
    let seed = a.bus_addr().await;
    let b = TestShard::start(cluster_config("io-b", vec![seed.clone()])).await;
    let c = TestShard::start(cluster_config("io-c", vec![seed])).await;
    converge(&[&a, &b, &c], 3).await;
    settled(&a).await;
    run_ioredis(&node, a.addr, &["--cluster"]).await;
    for s in [a, b, c] {
        s.stop().await;
    }
}
