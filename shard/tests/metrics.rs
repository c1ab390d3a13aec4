//! The admin HTTP server of an in-process shard: exact metric values after known traffic,
//! `/health` and `/ready`.

use redis::AsyncCommands;
use shard::testing::{TIMEOUT, TestShard, known_traffic, metric_value, temp_dir};
use telemetry::admin::http_get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic_exactly() {
    let s = TestShard::start_with_admin(shard::Config {
        dir: temp_dir("counts"),
        ..shard::Config::default()
    })
    .await;
    let client = redis::Client::open(format!("redis://{}/", s.addr)).expect("client");
    let mut con = tokio::time::timeout(TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .expect("in time")
        .expect("connect");
    known_traffic(&mut con).await;
    let _: Option<String> = redis::cmd("NOSUCHCOMMAND")
        .query_async(&mut con)
        .await
        .ok()
        .flatten();

    let (status, text) = http_get(s.admin.expect("admin"), "/metrics")
        .await
        .expect("scrape");
    assert_eq!(status, 200, "{text}");
    for (series, want) in [
        ("autocache_commands_total{cmd=\"set\",status=\"ok\"}", 7.0),
        (
            "autocache_commands_total{cmd=\"set\",status=\"error\"}",
            0.0,
        ),
        ("autocache_commands_total{cmd=\"get\",status=\"ok\"}", 8.0),
        (
            "autocache_commands_total{cmd=\"get\",status=\"error\"}",
            1.0,
        ),
        (
            "autocache_commands_total{cmd=\"unknown\",status=\"error\"}",
            1.0,
        ),
        ("autocache_command_duration_seconds_count{cmd=\"set\"}", 7.0),
        ("autocache_command_duration_seconds_count{cmd=\"get\"}", 9.0),
        (
            "autocache_command_duration_seconds_bucket{cmd=\"get\",le=\"+Inf\"}",
            9.0,
        ),
        ("autocache_cache_hits_total", 5.0),
        ("autocache_cache_misses_total", 3.0),
        ("autocache_keys_total", 7.0),
        ("autocache_tiered_keys{tier=\"ram\"}", 7.0),
        ("autocache_tiered_keys{tier=\"warm\"}", 0.0),
        ("autocache_tier_hits_total{tier=\"ram\"}", 5.0),
        // 5 hits of 8 lookups, all in RAM.
        ("autocache_tiered_hit_rate{tier=\"ram\"}", 0.625),
        ("autocache_tiered_hit_rate{tier=\"warm\"}", 0.0),
        ("autocache_connections", 1.0),
        ("autocache_connections_received_total", 1.0),
        ("autocache_connections_rejected_total", 0.0),
        ("autocache_cluster_state", 1.0),
        ("autocache_cluster_slots_assigned", 16384.0),
        ("autocache_memory_bytes{type=\"maxmemory\"}", 0.0),
    ] {
        assert_eq!(
            metric_value(&text, series),
            Some(want),
            "{series} in\n{text}"
        );
    }
    for series in [
        "autocache_network_bytes_total{direction=\"in\"}",
        "autocache_network_bytes_total{direction=\"out\"}",
        "autocache_memory_bytes{type=\"used\"}",
        "autocache_uptime_seconds",
        "autocache_command_duration_seconds_sum{cmd=\"get\"}",
    ] {
        assert!(
            metric_value(&text, series).is_some_and(|v| v > 0.0),
            "{series} in\n{text}"
        );
    }
    // The named byte counters are the direction-labelled ones.
    for (named, labelled) in [
        ("autocache_network_bytes_received_total", "in"),
        ("autocache_network_bytes_sent_total", "out"),
    ] {
        let dir = format!("autocache_network_bytes_total{{direction=\"{labelled}\"}}");
        assert_eq!(
            metric_value(&text, named),
            metric_value(&text, &dir),
            "{named} in\n{text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with("autocache_info{")
            && l.contains("role=\"shard\"")
            && l.ends_with(" 1")),
        "{text}"
    );
    assert!(!text.contains("otel_scope"), "{text}");

    assert_eq!(
        http_get(s.admin.expect("admin"), "/health")
            .await
            .expect("health")
            .0,
        200
    );
    assert_eq!(
        http_get(s.admin.expect("admin"), "/ready")
            .await
            .expect("ready")
            .0,
        200
    );
    assert_eq!(
        http_get(s.admin.expect("admin"), "/nope")
            .await
            .expect("404")
            .0,
        404
    );
    drop(con);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_tracking_off_keeps_counts_without_timings() {
    let mut cfg = shard::Config {
        dir: temp_dir("nolatency"),
        ..shard::Config::default()
    };
    cfg.telemetry.latency_tracking = false;
    let s = TestShard::start_with_admin(cfg).await;
    let client = redis::Client::open(format!("redis://{}/", s.addr)).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for _ in 0..4 {
        let _: () = con.set("a", "1").await.expect("set");
    }
    let (_, text) = http_get(s.admin.expect("admin"), "/metrics")
        .await
        .expect("scrape");
    assert_eq!(
        metric_value(&text, "autocache_commands_total{cmd=\"set\",status=\"ok\"}"),
        Some(4.0),
        "{text}"
    );
    assert!(
        !text.contains("autocache_command_duration_seconds"),
        "{text}"
    );
    drop(con);
    s.stop().await;
}
