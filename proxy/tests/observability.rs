//! The proxy's admin server and traces: exact metric values after known traffic, `/ready`
//! before and after the slot map, and an OTLP receiver that gets a trace in which an MGET over
//! three shards has one child span per shard, continued inside each shard.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::{Proxy, TestShard, known_traffic, metric_value, temp_dir};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use redis::AsyncCommands;
use telemetry::admin::http_get;
use tokio::net::TcpListener;

fn shard_config(tag: &str) -> shard::Config {
    shard::Config {
        dir: temp_dir(tag),
        ..shard::Config::default()
    }
}

fn proxy_config(seeds: Vec<String>) -> proxy::Config {
    proxy::Config {
        seeds,
        health_interval: Duration::from_millis(200),
        ..proxy::Config::default()
    }
}

/// Three keys, each owned by a different one of three statically split shards.
fn keys_on_three_shards() -> [String; 3] {
    // Static split of 16384 slots over 3 seeds: [0, 5461], [5462, 10922], [10923, 16383].
    let mut found: [Option<String>; 3] = [None, None, None];
    for i in 0..1000 {
        let k = format!("key:{i}");
        let slot = membership::Slot::for_key(k.as_bytes()).get();
        let shard = match slot {
            0..=5461 => 0,
            5462..=10922 => 1,
            _ => 2,
        };
        if found[shard].is_none() {
            found[shard] = Some(k);
        }
    }
    found.map(|k| k.expect("a key per shard"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_metrics_and_readiness() {
    // The seed's port is held by a listener that never answers: no slot map yet.
    let l1 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let l2 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let seeds = vec![
        l1.local_addr().expect("addr").to_string(),
        l2.local_addr().expect("addr").to_string(),
    ];
    let mut p = Proxy::spawn(proxy_config(seeds), true).await;
    let admin = p.admin.expect("admin");
    let (status, body) = http_get(admin, "/ready").await.expect("ready");
    assert_eq!(status, 503, "{body}");
    assert_eq!(http_get(admin, "/health").await.expect("health").0, 200);

    let a = TestShard::on_listener(l1, None, shard_config("pa"));
    let b = TestShard::on_listener(l2, None, shard_config("pb"));
    p.wait_ready().await;
    assert_eq!(http_get(admin, "/ready").await.expect("ready").0, 200);

    let mut con = common::connect_url(&p.url()).await;
    known_traffic(&mut con).await;
    // Keys on both shards: fanned out to 2.
    let vals: Vec<Option<String>> = con
        .mget(&["k0", "k1", "k2", "k3", "k4", "k5"])
        .await
        .expect("mget");
    assert_eq!(vals.len(), 6);

    let (status, text) = http_get(admin, "/metrics").await.expect("scrape");
    assert_eq!(status, 200);
    for (series, want) in [
        ("autocache_commands_total{cmd=\"set\",status=\"ok\"}", 7.0),
        ("autocache_commands_total{cmd=\"get\",status=\"ok\"}", 8.0),
        (
            "autocache_commands_total{cmd=\"get\",status=\"error\"}",
            1.0,
        ),
        ("autocache_commands_total{cmd=\"mget\",status=\"ok\"}", 1.0),
        ("autocache_command_duration_seconds_count{cmd=\"get\"}", 9.0),
        ("autocache_command_duration_seconds_count{cmd=\"set\"}", 7.0),
        ("autocache_connections", 1.0),
        ("autocache_connections_received_total", 1.0),
        ("autocache_backends", 2.0),
        ("autocache_fanout_width_count{cmd=\"all\"}", 1.0),
        ("autocache_fanout_width_bucket{cmd=\"all\",le=\"1\"}", 0.0),
        ("autocache_fanout_width_bucket{cmd=\"all\",le=\"2\"}", 1.0),
        ("autocache_redirects_total{kind=\"moved\"}", 0.0),
    ] {
        assert_eq!(
            metric_value(&text, series),
            Some(want),
            "{series} in\n{text}"
        );
    }
    // The near cache's series exist from the start (no hot key yet: no hits).
    assert_eq!(
        metric_value(
            &text,
            "autocache_hotkey_cache_lookups_total{result=\"hit\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("autocache_hotkey_invalidations_total"),
        "{text}"
    );
    // No near-cache lookup yet: its hit rate is 0. The byte counters under their own names.
    assert_eq!(
        metric_value(&text, "autocache_tiered_hit_rate{tier=\"near\"}"),
        Some(0.0),
        "{text}"
    );
    for series in [
        "autocache_network_bytes_received_total",
        "autocache_network_bytes_sent_total",
    ] {
        assert!(
            metric_value(&text, series).is_some_and(|v| v > 0.0),
            "{series} in\n{text}"
        );
    }
    // Every forwarded command's round trip is timed, per shard.
    let backend_calls: f64 = [a.addr, b.addr]
        .iter()
        .map(|addr| {
            metric_value(
                &text,
                &format!("autocache_backend_request_duration_seconds_count{{backend=\"{addr}\"}}"),
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(backend_calls >= 16.0, "{backend_calls} in\n{text}");
    assert!(
        metric_value(&text, "autocache_topology_refreshes_total{result=\"ok\"}")
            .is_some_and(|v| v >= 1.0)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("autocache_info{") && l.contains("role=\"proxy\"")),
        "{text}"
    );
    drop(con);
    p.stop().await;
    a.stop().await;
    b.stop().await;
}

/// Spans received by the in-test OTLP/HTTP collector.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

async fn receive(State(c): State<Collector>, body: Bytes) -> Vec<u8> {
    if let Ok(req) = ExportTraceServiceRequest::decode(body) {
        let mut spans = c.spans.lock().expect("lock");
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(
                    |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    },
                )
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((service.clone(), s));
                }
            }
        }
    }
    Vec::new()
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mget_over_three_shards_is_one_trace_with_a_child_per_shard() {
    let collector = Collector::default();
    let otlp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", otlp.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(collector.clone());
    let server = tokio::spawn(async move { axum::serve(otlp, app).await });

    let mut shards = Vec::new();
    let mut seeds = Vec::new();
    for tag in ["ta", "tb", "tc"] {
        let mut cfg = shard_config(tag);
        cfg.telemetry.otel_endpoint = Some(endpoint.clone());
        // Shards start no traces of their own; they continue the proxy's.
        cfg.telemetry.otel_sample_ratio = 0.0;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        seeds.push(l.local_addr().expect("addr").to_string());
        shards.push(TestShard::on_listener(l, None, cfg));
    }
    let mut cfg = proxy_config(seeds.clone());
    cfg.telemetry.otel_endpoint = Some(endpoint);
    cfg.telemetry.otel_sample_ratio = 1.0;
    let mut p = Proxy::spawn(cfg, true).await;
    p.wait_ready().await;

    let keys = keys_on_three_shards();
    let mut con = common::connect_url(&p.url()).await;
    for k in &keys[..2] {
        let _: () = con.set(k, "v").await.expect("set");
    }
    // A connection learns whether its server is an AutoCache shard when it opens; DBSIZE goes
    // to every shard, so once it is answered every shard has a connection and is known.
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("dbsize");
    assert_eq!(n, 2);
    let vals: Vec<Option<String>> = con.mget(&keys).await.expect("mget");
    assert_eq!(vals, vec![Some("v".into()), Some("v".into()), None]);
    drop(con);
    p.stop().await;
    for s in shards {
        s.stop().await;
    }
    server.abort();

    let spans = collector.spans.lock().expect("lock").clone();
    let root = spans
        .iter()
        .find(|(svc, s)| {
            svc == "autocache-proxy" && s.name == "MGET" && s.parent_span_id.is_empty()
        })
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| panic!("no MGET span from the proxy in {:?}", names(&spans)));
    assert_eq!(attr(&root, "db.system").as_deref(), Some("redis"));
    assert_eq!(attr(&root, "db.operation.name").as_deref(), Some("MGET"));
    assert_eq!(attr(&root, "autocache.keys").as_deref(), Some("3"));
    let children: Vec<&Span> = spans
        .iter()
        .filter(|(svc, s)| svc == "autocache-proxy" && s.parent_span_id == root.span_id)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(children.len(), 3, "{:?}", names(&spans));
    let mut addrs: Vec<String> = children
        .iter()
        .filter_map(|c| attr(c, "server.address"))
        .collect();
    addrs.sort();
    let mut want = seeds.clone();
    want.sort();
    assert_eq!(addrs, want);
    for c in &children {
        assert_eq!(c.trace_id, root.trace_id);
        let inside: Vec<&Span> = spans
            .iter()
            .filter(|(svc, s)| svc == "autocache-shard" && s.parent_span_id == c.span_id)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            inside.len(),
            1,
            "shard span under {}: {:?}",
            c.name,
            names(&spans)
        );
        let s = inside[0];
        assert_eq!(s.trace_id, root.trace_id);
        assert_eq!(s.name, "MGET");
        let tier = attr(s, "autocache.tier");
        assert!(
            matches!(tier.as_deref(), Some("ram" | "miss")),
            "tier {tier:?}"
        );
    }
    // Values never reach a span: no attribute carries a key or a value.
    for (_, s) in &spans {
        for kv in &s.attributes {
            let v = format!("{:?}", kv.value);
            assert!(
                !keys.iter().any(|k| v.contains(k.as_str())),
                "{} = {v}",
                kv.key
            );
        }
    }
}

fn names(spans: &[(String, Span)]) -> Vec<String> {
    spans
        .iter()
        .map(|(svc, s)| format!("{svc}:{}", s.name))
        .collect()
}
