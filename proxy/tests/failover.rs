//! Failover behind the proxy: a master of a real Redis Cluster is killed (`kill -9`) while a
//! client keeps writing through the proxy. The proxy must notice (lost connections, the shard
//! down, CLUSTERDOWN) and re-read the slot map at once, not at its periodic refresh (10 s), so
//! clients stop getting errors soon after the cluster has promoted a replica.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_cluster::{RedisCluster, cli, tools_present};
use common::*;
use parking_lot::Mutex;

/// The target: errors stop within 1 s of the cluster covering the slots again.
const TARGET: Duration = Duration::from_secs(1);
/// What the assertion allows on top, for a loaded 2-core CI machine running six redis-servers,
/// the proxy and the client: scheduling delays of the refresher (one refresh every 500 ms at
/// most while a shard is down) and of the observer that timestamps the coverage.
const CI_MARGIN: Duration = Duration::from_millis(1500);

/// When a reply arrived, and its error if it was one.
type Outcome = (Instant, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_stop_within_a_second_of_a_failover() {
    if !tools_present() {
        return;
    }
    // A replica is promoted about 1-2 s after its master dies with a 1 s node timeout.
    let mut rc = RedisCluster::start_with(3, 1, &["--cluster-node-timeout", "1000"]);
    let first = rc.ports[0];
    let nodes = rc.nodes(first);
    let masters: Vec<&(u16, String, String)> = nodes.iter().filter(|n| n.2 == "-").collect();
    assert_eq!(masters.len(), 3, "{nodes:?}");
    let victim = masters[0].0;
    let victim_id = masters[0].1.clone();
    let replica = nodes
        .iter()
        .find(|n| n.2 == victim_id)
        .map(|n| n.0)
        .expect("the victim has a replica");
    let survivors: Vec<u16> = rc.ports.iter().copied().filter(|p| *p != victim).collect();

    // Default settings (10 s periodic refresh, 1 s health checks): anything faster comes from
    // the failure itself.
    let proxy = Proxy::start(proxy::Config {
        seeds: rc.seeds(),
        ..proxy::Config::default()
    })
    .await;
    let mut con = proxy.redis().await;
    let keys: Vec<String> = (0..64).map(|i| format!("fo:{i}")).collect();
    for k in &keys {
        let () = redis::cmd("SET")
            .arg(k)
            .arg(0)
            .query_async(&mut con)
            .await
            .expect("SET before the failure");
    }

    // The client: sequential SETs over keys on every master, each reply timestamped.
    let log: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let client = {
        let (log, stop, keys) = (log.clone(), stop.clone(), keys.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.is_cancelled() {
                let k = &keys[i % keys.len()];
                i += 1;
                let r: Result<redis::RedisResult<()>, _> = tokio::time::timeout(
                    Duration::from_secs(5),
                    redis::cmd("SET").arg(k).arg(i).query_async(&mut con),
                )
                .await;
                let err = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("client timeout (5 s)".into()),
                };
                log.lock().push((Instant::now(), err));
                // Keep the log small and leave CPU to the cluster: ~500 requests per second.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = Instant::now();
    rc.kill(victim);

    // The observer: the slots are covered again once the replica is a master and every
    // surviving node says the cluster is ok.
    let covered = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let promoted = cli(replica, &["ROLE"]).starts_with("master");
            if promoted
                && survivors
                    .iter()
                    .all(|p| cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "no failover within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("observer");

    // Let the client run on until it has seen 3 s without an error (bounded: 30 s).
    let calm = Duration::from_secs(3);
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last_error = log
            .lock()
            .iter()
            .rev()
            .find(|(_, e)| e.is_some())
            .map(|(t, _)| *t);
        let quiet_since = last_error.unwrap_or(covered).max(covered);
        if quiet_since.elapsed() >= calm || Instant::now() > give_up {
            break;
        }
    }
    stop.cancel();
    let _ = client.await;

    let log = std::mem::take(&mut *log.lock());
    let errors: Vec<&Outcome> = log.iter().filter(|(_, e)| e.is_some()).collect();
    let ms = |d: Duration| d.as_millis();
    let last = errors.last().map(|(t, _)| *t);
    let after_cover = last.map_or(Duration::ZERO, |t| t.saturating_duration_since(covered));
    let window = match (errors.first(), last) {
        (Some((f, _)), Some(l)) => l.saturating_duration_since(*f),
        _ => Duration::ZERO,
    };
    let kinds: std::collections::BTreeSet<String> = errors
        .iter()
        .filter_map(|(_, e)| e.as_deref())
        .map(|e| e.chars().take(40).collect())
        .collect();
    eprintln!(
        "failover: slots covered {} ms after the kill; {} of {} requests failed over {} ms; last error {} ms after coverage (target {} ms); errors: {kinds:?}",
        ms(covered - killed),
        errors.len(),
        log.len(),
        ms(window),
        ms(after_cover),
        ms(TARGET),
    );
    assert!(
        log.iter().rev().take(100).all(|(_, e)| e.is_none()),
        "the proxy serves again after the failover"
    );
    assert!(
        after_cover <= TARGET + CI_MARGIN,
        "errors went on {} ms after the cluster covered the slots again (target {} ms, allowed {} ms)",
        ms(after_cover),
        ms(TARGET),
        ms(TARGET + CI_MARGIN)
    );
    proxy.stop().await;
}
