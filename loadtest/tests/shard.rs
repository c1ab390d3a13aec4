//! End-to-end runs against an in-process AutoCache shard, bounded by request counts.

use std::time::Duration;

use loadtest::Config;
use loadtest::workload::{KeyPattern, Ratio};
use shard::testing::{TestShard, V};
use tokio::net::TcpListener;

fn config(addr: &str) -> Config {
    let mut c = Config {
        targets: vec![addr.to_owned()],
        clients: 4,
        threads: 1,
        requests: Some(500),
        hard_timeout: Some(Duration::from_secs(60)),
        ..Config::default()
    };
    c.workload.keys.max = 1_999;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_then_counted_run_hits_every_get() {
    let shard = TestShard::default().await;
    let mut c = config(&shard.addr.to_string());
    c.prefill = true;
    c.pipeline = 4;
    c.workload.ratio = Ratio { set: 1, get: 3 };
    c.workload.get_pattern = KeyPattern::Zipf { exponent: 1.0 };
    let r = loadtest::run(&c).await.expect("run");
    shard.stop().await;

    let p = r.prefill.as_ref().expect("prefill report");
    assert_eq!((p.keys, p.errors), (2_000, 0));
    assert_eq!(r.requests, 4 * 500);
    assert_eq!(r.requests, r.sets.count + r.gets.count);
    assert_eq!(r.sets.count, 500, "1:3 gives exactly a quarter SETs");
    assert_eq!(r.gets.hits + r.gets.misses, r.gets.count);
    assert_eq!(r.gets.misses, 0, "prefill wrote every key");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(!r.hit_hard_deadline);
    assert!(r.ops_per_sec > 0.0 && r.totals.p99_ms > 0.0);
    assert!(r.totals.p50_ms <= r.totals.p99_ms && r.totals.p99_ms <= r.totals.max_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_keyspace_misses_and_mget_counts_per_key() {
    let shard = TestShard::default().await;
    let mut c = config(&shard.addr.to_string());
    c.pipeline = 8;
    c.workload.ratio = Ratio { set: 0, get: 1 };
    c.workload.mget_ratio = 0.5;
    c.workload.mget_keys = 5;
    c.workload.keys.group_size = 10;
    let r = loadtest::run(&c).await.expect("run");
    shard.stop().await;

    assert_eq!(r.requests, 2_000);
    assert_eq!(r.sets.count, 0);
    assert_eq!(r.gets.count, 1_000);
    assert_eq!(r.mgets.count, 1_000);
    assert_eq!((r.gets.hits, r.gets.misses), (0, 1_000));
    assert_eq!((r.mget_key_hits, r.mget_key_misses), (0, 5 * 1_000));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_to_the_schedule() {
    let shard = TestShard::default().await;
    let mut c = config(&shard.addr.to_string());
    c.clients = 2;
    c.requests = Some(100);
    c.rate = Some(1_000.0); // 500/s per connection: 100 requests take ~0.2 s
    c.workload.ratio = Ratio { set: 1, get: 1 };
    c.expiry = Some(60);
    let r = loadtest::run(&c).await.expect("run");
    shard.stop().await;

    assert_eq!(r.mode, "open-loop");
    assert_eq!(r.requests, 200);
    assert_eq!(r.sets.count, 100);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        (0.15..10.0).contains(&r.duration_secs),
        "paced run took {} s",
        r.duration_secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_cannot_hold_the_run() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let hold = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            socks.push(s);
        }
    });
    let mut c = config(&addr);
    c.clients = 2;
    c.pipeline = 3;
    c.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let r = loadtest::run(&c).await.expect("run");
    hold.abort();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.errors.get("timeout"), Some(&6), "{:?}", r.errors);
    assert_eq!(r.requests, 6);
    assert_eq!(r.totals.errors, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_are_counted_by_kind() {
    let shard = TestShard::start(shard::Config {
        requirepass: Some("sesame".into()),
        ..shard::Config::default()
    })
    .await;
    let mut c = config(&shard.addr.to_string());
    c.clients = 2;
    c.requests = Some(50);
    c.workload.ratio = Ratio { set: 1, get: 1 };
    // No AUTH: every request is refused, and counted under the reply's first word.
    let r = loadtest::run(&c).await.expect("run");
    assert_eq!(r.requests, 100);
    assert_eq!(r.errors.get("NOAUTH"), Some(&100), "{:?}", r.errors);
    assert_eq!((r.sets.errors, r.gets.errors), (50, 50));
    assert_eq!(r.gets.hits + r.gets.misses, 0);
    // With the password the run is clean.
    c.auth = Some("sesame".into());
    let r = loadtest::run(&c).await.expect("run");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // A wrong password fails the run up front.
    c.auth = Some("wrong".into());
    let e = loadtest::run(&c).await.expect_err("bad password");
    assert!(format!("{e:#}").contains("AUTH failed"), "{e:#}");
    // Cluster mode against a non-cluster server fails up front with a clear message.
    c.auth = Some("sesame".into());
    c.cluster_mode = true;
    let e = loadtest::run(&c).await.expect_err("not a cluster");
    shard.stop().await;
    assert!(format!("{e:#}").contains("CLUSTER"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_one_request_each_and_their_errors_are_counted() {
    let shard = TestShard::default().await;
    let mut c = config(&shard.addr.to_string());
    c.pipeline = 8;
    c.requests = Some(250);
    c.workload.keys.max = 99;
    c.workload.keys.group_size = 4;
    c.workload.tx_commands = 3;
    let r = loadtest::run(&c).await.expect("run");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.requests, 4 * 250);
    assert_eq!(r.transactions.count, 4 * 250);
    assert_eq!(r.sets.count + r.gets.count + r.mgets.count, 0);
    assert!(r.transactions.p50_ms > 0.0);
    // Every INCR ran exactly once.
    let mut raw = shard.raw().await;
    let mut sum = 0;
    for id in 0..=99u64 {
        let mut key = Vec::new();
        c.workload.keys.write_key(id, &mut key);
        let key = String::from_utf8(key).expect("ascii key");
        if let V::Str(n) = raw.cmd(&["GET", &key]).await {
            sum += n.parse::<u64>().expect("a counter");
        }
    }
    assert_eq!(sum, 3 * 4 * 250);

    // Keys holding strings: EXEC's array carries INCR's error, the transaction counts as one.
    let mut fill = config(&shard.addr.to_string());
    fill.workload.keys = c.workload.keys.clone();
    fill.prefill = true;
    fill.requests = Some(1);
    loadtest::run(&fill).await.expect("prefill");
    c.requests = Some(20);
    let r = loadtest::run(&c).await.expect("run");
    shard.stop().await;
    assert_eq!(r.transactions.count, 80);
    assert_eq!(r.transactions.errors, 80);
    assert_eq!(r.errors.get("ERR"), Some(&80), "{:?}", r.errors);
}
