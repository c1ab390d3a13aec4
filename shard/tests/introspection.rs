//! Introspection and administration on a shard: INFO's persistence, replication,
//! commandstats, errorstats and latencystats sections; LATENCY with
//! `latency-monitor-threshold`; MEMORY STATS / DOCTOR / MALLOC-STATS / PURGE; MONITOR;
//! CLIENT PAUSE / UNPAUSE / REPLY / NO-TOUCH; DEBUG SLEEP / SET-ACTIVE-EXPIRE and DEBUG's
//! error texts; CONFIG GET/SET of Redis's other parameters and CONFIG REWRITE; SELECT. The
//! differential test compares the deterministic replies with a real redis-server.

use std::time::Duration;

use shard::testing::{
    Compare, Raw, Step, TestShard, V, assert_err, differential, encode, info_field,
    redis_server_with,
};

fn field(info: &V, name: &str) -> String {
    info_field(info.as_str(), name).unwrap_or_else(|| panic!("no {name} in {info:?}"))
}

/// `k=v` items of an INFO value such as `calls=3,usec=10,...`.
fn item(value: &str, key: &str) -> String {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_string()
}

#[tokio::test]
async fn info_has_the_sections_tools_read() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["SET", "s", "v"]).await;
    c.cmd(&["GET", "s"]).await;
    c.cmd(&["GET", "s"]).await;
    assert_err(&c.cmd(&["GET"]).await, "ERR wrong number of arguments");
    assert_err(&c.cmd(&["LPUSH", "s", "x"]).await, "WRONGTYPE");
    assert_err(&c.cmd(&["NOSUCHCMD"]).await, "ERR unknown command");

    let default = c.cmd(&["INFO"]).await;
    for header in ["# Persistence", "# Replication", "# Errorstats", "# CPU"] {
        assert!(default.as_str().contains(header), "{header}: {default:?}");
    }
    for header in ["# Commandstats", "# Latencystats"] {
        assert!(
            !default.as_str().contains(header),
            "not by default: {header}"
        );
    }
    assert_eq!(field(&default, "loading"), "0");
    assert_eq!(field(&default, "rdb_bgsave_in_progress"), "0");
    assert_eq!(field(&default, "aof_rewrite_in_progress"), "0");
    assert_eq!(field(&default, "role"), "master");
    assert_eq!(field(&default, "connected_slaves"), "0");
    assert!(field(&default, "used_cpu_user").parse::<f64>().is_ok());
    assert_eq!(field(&default, "total_error_replies"), "3");
    assert_eq!(field(&default, "errorstat_ERR"), "count=2");
    assert_eq!(field(&default, "errorstat_WRONGTYPE"), "count=1");

    let all = c.cmd(&["INFO", "all"]).await;
    let get = field(&all, "cmdstat_get");
    assert_eq!(item(&get, "calls"), "2", "{get}");
    assert_eq!(item(&get, "rejected_calls"), "1", "{get}");
    assert_eq!(item(&get, "failed_calls"), "0", "{get}");
    assert!(item(&get, "usec_per_call").parse::<f64>().is_ok(), "{get}");
    let lpush = field(&all, "cmdstat_lpush");
    assert_eq!(item(&lpush, "calls"), "1", "{lpush}");
    assert_eq!(item(&lpush, "failed_calls"), "1", "{lpush}");
    assert!(!all.as_str().contains("cmdstat_unknown"), "{all:?}");
    let lat = field(&all, "latency_percentiles_usec_get");
    for p in ["p50", "p99", "p99.9"] {
        let v: f64 = item(&lat, p).parse().expect("a number");
        assert!(v > 0.0, "{lat}");
    }
    let only = c.cmd(&["INFO", "commandstats"]).await;
    assert!(only.as_str().starts_with("# Commandstats\r\n"), "{only:?}");

    // The percentiles follow latency-tracking-info-percentiles.
    c.cmd(&[
        "CONFIG",
        "SET",
        "latency-tracking-info-percentiles",
        "50 90",
    ])
    .await;
    let lat = c.cmd(&["INFO", "latencystats"]).await;
    let get = field(&lat, "latency_percentiles_usec_get");
    assert!(get.starts_with("p50=") && get.contains(",p90="), "{get}");

    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).await, V::s("OK"));
    let after = c.cmd(&["INFO", "all"]).await;
    assert!(!after.as_str().contains("cmdstat_get:"), "{after:?}");
    assert!(!after.as_str().contains("errorstat_"), "{after:?}");
    assert_eq!(field(&after, "total_error_replies"), "0");
    srv.stop().await;
}

#[tokio::test]
async fn latency_monitor_records_spikes_over_the_threshold() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    // Off by default: nothing is recorded.
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.06"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]).await, V::Arr(vec![]));
    assert!(
        c.cmd(&["LATENCY", "DOCTOR"])
            .await
            .as_str()
            .starts_with("I'm sorry, Dave, I can't do that.")
    );

    c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "50"])
        .await;
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "latency-monitor-threshold"]).await,
        V::strs(&["latency-monitor-threshold", "50"])
    );
    assert!(
        c.cmd(&["LATENCY", "DOCTOR"])
            .await
            .as_str()
            .starts_with("Dave, no latency spike was observed")
    );
    c.cmd(&["GET", "fast"]).await;
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.06"]).await, V::s("OK"));
    let latest = c.cmd(&["LATENCY", "LATEST"]).await;
    let [entry] = latest.as_arr() else {
        panic!("one event: {latest:?}")
    };
    let e = entry.as_arr();
    assert_eq!(e[0], V::s("command"));
    let (ms, max) = (e[2].as_int(), e[3].as_int());
    assert!((60..5000).contains(&ms) && max >= ms, "{latest:?}");
    let history = c.cmd(&["LATENCY", "HISTORY", "command"]).await;
    assert_eq!(history.as_arr().len(), 1, "{history:?}");
    assert_eq!(
        c.cmd(&["LATENCY", "HISTORY", "fast-command"]).await,
        V::Arr(vec![])
    );
    assert!(
        c.cmd(&["LATENCY", "DOCTOR"])
            .await
            .as_str()
            .contains("1. command: 1 latency spikes")
    );
    assert_eq!(c.cmd(&["LATENCY", "RESET", "nope"]).await, V::Int(0));
    assert_eq!(c.cmd(&["LATENCY", "RESET"]).await, V::Int(1));
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]).await, V::Arr(vec![]));
    assert!(matches!(c.cmd(&["LATENCY", "HELP"]).await, V::Arr(_)));
    assert_err(
        &c.cmd(&["LATENCY", "NOPE"]).await,
        "ERR unknown subcommand 'NOPE'. Try LATENCY|HELP.",
    );
    srv.stop().await;
}

#[tokio::test]
async fn memory_and_debug_subcommands() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["SET", "k", "v"]).await;
    let V::Arr(stats) = c.cmd(&["MEMORY", "STATS"]).await else {
        panic!("MEMORY STATS is a map")
    };
    let pairs: Vec<(String, V)> = stats
        .chunks(2)
        .map(|kv| (kv[0].as_str().to_string(), kv[1].clone()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("keys.count"), Some(V::Int(1)));
    assert!(get("total.allocated").is_some_and(|v| v.as_int() > 0));
    assert!(get("dataset.bytes").is_some());
    assert!(
        c.cmd(&["MEMORY", "DOCTOR"])
            .await
            .as_str()
            .starts_with("Hi Sam,")
    );
    assert_eq!(
        c.cmd(&["MEMORY", "MALLOC-STATS"]).await,
        V::s("Stats not supported for the current allocator")
    );
    assert_eq!(c.cmd(&["MEMORY", "PURGE"]).await, V::s("OK"));
    assert!(c.cmd(&["MEMORY", "USAGE", "k"]).await.as_int() > 0);

    assert_err(
        &c.cmd(&["DEBUG", "Nope"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'Nope'. Try DEBUG HELP.",
    );
    assert_err(
        &c.cmd(&["DEBUG", "SLEEP"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'SLEEP'. Try DEBUG HELP.",
    );
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "junk"]).await, V::s("OK"));
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn set_active_expire_stops_the_background_expiry() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(
        c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).await,
        V::s("OK")
    );
    for i in 0..50 {
        c.cmd(&["SET", &format!("k{i}"), "v", "PX", "100"]).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(50), "nothing swept");
    assert_eq!(
        c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]).await,
        V::s("OK")
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(0), "swept again");
    srv.stop().await;
}

/// Reads one MONITOR line (a status reply) and returns it.
async fn monitor_line(m: &mut Raw) -> String {
    match tokio::time::timeout(Duration::from_secs(10), m.read()).await {
        Ok(V::Str(line)) => line,
        other => panic!("no monitor line: {other:?}"),
    }
}

#[tokio::test]
async fn monitor_shows_every_command_as_redis_prints_it() {
    let srv = TestShard::default().await;
    let mut m = srv.raw().await;
    assert_eq!(m.cmd(&["MONITOR"]).await, V::s("OK"));
    let mut c = srv.raw().await;
    c.cmd(&["SET", "key", "a \"quoted\"\nvalue"]).await;
    // Admin commands are not shown (Redis leaves them out too).
    c.cmd(&["CONFIG", "GET", "maxmemory"]).await;
    c.cmd(&["get", "key"]).await;
    let set = monitor_line(&mut m).await;
    let (time, rest) = set.split_once(' ').expect("time first");
    let (secs, micros) = time.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{set}");
    assert!(rest.starts_with("[0 127.0.0.1:"), "{set}");
    assert!(
        rest.ends_with(r#"] "SET" "key" "a \"quoted\"\nvalue""#),
        "{set}"
    );
    let get = monitor_line(&mut m).await;
    assert!(get.ends_with(r#"] "get" "key""#), "{get}");
    // A closed monitor is forgotten; commands go on.
    drop(m);
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn client_pause_write_holds_writes_and_lets_reads_through() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut c = srv.raw().await;
    c.cmd(&["SET", "k", "before"]).await;
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]).await,
        V::s("OK")
    );
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("before"), "reads go on");
    c.send(&encode(&["SET", "k", "after"])).await;
    let waited = tokio::time::timeout(Duration::from_secs(30), c.read()).await;
    assert!(waited.is_err(), "the write waits for the pause");
    // CLIENT UNPAUSE is not a write: it runs, and the held write goes through.
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]).await, V::s("OK"));
    assert_eq!(c.read().await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("after"));

    // ALL holds reads too, until the timeout.
    let start = tokio::time::Instant::now();
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "2000"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("after"));
    assert!(start.elapsed() >= Duration::from_millis(2000));

    // A transaction with a write is a write: EXEC waits under WRITE, MULTI/GET do not.
    admin.cmd(&["CLIENT", "PAUSE", "3000", "WRITE"]).await;
    let start = tokio::time::Instant::now();
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("after"));
    assert!(start.elapsed() < Duration::from_millis(3000));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("QUEUED"));
    assert!(start.elapsed() < Duration::from_millis(3000));
    assert_eq!(c.cmd(&["INCR", "n"]).await, V::s("QUEUED"));
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        V::Arr(vec![V::s("after"), V::Int(1)])
    );
    assert!(start.elapsed() >= Duration::from_millis(3000));

    assert_err(
        &admin.cmd(&["CLIENT", "PAUSE", "x"]).await,
        "ERR timeout is not an integer or out of range",
    );
    assert_err(
        &admin.cmd(&["CLIENT", "PAUSE", "-1"]).await,
        "ERR timeout is negative",
    );
    assert_err(
        &admin.cmd(&["CLIENT", "PAUSE", "10", "READ"]).await,
        "ERR CLIENT PAUSE mode must be WRITE or ALL",
    );
    srv.stop().await;
}

#[tokio::test]
async fn client_reply_off_and_skip() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut wire = Vec::new();
    for args in [
        &["CLIENT", "REPLY", "OFF"][..],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["CLIENT", "REPLY", "ON"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "a"],
        &["ECHO", "after"],
    ] {
        wire.extend(encode(args));
    }
    c.send(&wire).await;
    assert_eq!(c.read().await, V::s("OK"), "only CLIENT REPLY ON answers");
    assert_eq!(c.read().await, V::s("after"), "SKIP drops the next reply");
    assert_eq!(c.cmd(&["GET", "a"]).await, V::s("1"), "the write ran");
    assert_err(
        &c.cmd(&["CLIENT", "REPLY", "MAYBE"]).await,
        "ERR syntax error",
    );
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn client_no_touch_leaves_the_idle_time_alone() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["SET", "k", "v"]).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(c.cmd(&["CLIENT", "NO-TOUCH", "ON"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("v"));
    let idle = c.cmd(&["OBJECT", "IDLETIME", "k"]).await.as_int();
    assert!(idle >= 10, "GET did not touch: {idle}");
    // TOUCH touches even so, as in Redis.
    assert_eq!(c.cmd(&["TOUCH", "k"]).await, V::Int(1));
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]).await, V::Int(0));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(c.cmd(&["CLIENT", "NO-TOUCH", "OFF"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("v"));
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]).await, V::Int(0));
    assert_err(
        &c.cmd(&["CLIENT", "NO-TOUCH", "x"]).await,
        "ERR syntax error",
    );
    srv.stop().await;
}

#[tokio::test]
async fn config_takes_redis_parameters() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let V::Arr(all) = c.cmd(&["CONFIG", "GET", "*"]).await else {
        panic!("CONFIG GET * is an array")
    };
    let names: Vec<&str> = all.iter().step_by(2).map(V::as_str).collect();
    assert!(names.len() > 170, "{} parameters", names.len());
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no parameter twice");
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "SET",
            "lfu-log-factor",
            "20",
            "activerehashing",
            "no"
        ])
        .await,
        V::s("OK")
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "lfu-log-factor"]).await,
        V::strs(&["lfu-log-factor", "20"])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slave-read-only", "no"]).await,
        V::s("OK")
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "replica-read-only"]).await,
        V::strs(&["replica-read-only", "no"])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "loglevel", "warning"]).await,
        V::s("OK")
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "loglevel"]).await,
        V::strs(&["loglevel", "warning"])
    );
    // One bad pair: nothing is set.
    assert_err(
        &c.cmd(&[
            "CONFIG",
            "SET",
            "lfu-decay-time",
            "5",
            "lfu-log-factor",
            "x",
        ])
        .await,
        "ERR CONFIG SET failed (possibly related to argument 'lfu-log-factor') - argument couldn't be parsed into an integer",
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "lfu-decay-time"]).await,
        V::strs(&["lfu-decay-time", "1"])
    );
    assert_err(
        &c.cmd(&["CONFIG", "SET", "daemonize", "yes"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config",
    );
    assert_err(
        &c.cmd(&["CONFIG", "REWRITE"]).await,
        "ERR The server is running without a config file",
    );
    srv.stop().await;
}

/// The replies that do not depend on the server's state or build, next to redis-server's.
#[tokio::test]
async fn introspection_matches_redis() {
    let Some(redis) = redis_server_with(&["--enable-debug-command", "yes"]).await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    let script: Vec<Vec<&str>> = vec![
        vec!["SELECT", "0"],
        vec!["SELECT", "16"],
        vec!["SELECT", "-1"],
        vec!["SELECT", "x"],
        vec!["SELECT", "2147483648"],
        vec!["SET", "k", "value"],
        vec!["MEMORY", "USAGE", "k"],
        vec!["MEMORY", "USAGE", "k", "SAMPLES", "0"],
        vec!["MEMORY", "USAGE", "missing"],
        vec!["MEMORY", "USAGE", "k", "SAMPLES", "-1"],
        vec!["MEMORY", "USAGE", "k", "SAMPLES", "x"],
        vec!["MEMORY", "USAGE", "k", "FOO", "1"],
        vec!["MEMORY", "DOCTOR"],
        vec!["MEMORY", "PURGE"],
        vec!["DEBUG", "nope"],
        vec!["DEBUG", "SLEEP"],
        vec!["DEBUG", "SLEEP", "0"],
        vec!["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
        vec!["DEBUG", "OBJECT", "missing"],
        vec!["CLIENT", "PAUSE", "x"],
        vec!["CLIENT", "PAUSE", "-5"],
        vec!["CLIENT", "PAUSE", "0", "READ"],
        vec!["CLIENT", "PAUSE", "0", "WRITE"],
        vec!["CLIENT", "PAUSE", "1", "2", "3"],
        vec!["CLIENT", "UNPAUSE"],
        vec!["CLIENT", "REPLY", "MAYBE"],
        vec!["CLIENT", "REPLY", "ON"],
        vec!["LATENCY", "LATEST"],
        vec!["LATENCY", "HISTORY", "command"],
        vec!["LATENCY", "RESET"],
        vec!["LATENCY", "DOCTOR"],
        vec!["CONFIG", "REWRITE", "x"],
        vec!["CONFIG", "SET", "nosuch", "1"],
        vec!["CONFIG", "SET", "daemonize", "no"],
        vec!["CONFIG", "SET", "dbfilename", "x.rdb"],
        vec!["CONFIG", "SET", "activerehashing", "maybe"],
        vec!["CONFIG", "SET", "lfu-log-factor", "abc"],
        vec!["CONFIG", "SET", "lfu-log-factor", "-1"],
        vec!["CONFIG", "SET", "appendfsync", "sometimes"],
        vec!["CONFIG", "SET", "maxmemory-clients", "200%"],
        vec!["CONFIG", "SET", "maxmemory-clients", "10%"],
        vec!["CONFIG", "GET", "maxmemory-clients"],
        vec!["CONFIG", "SET", "repl-backlog-size", "2mb"],
        vec!["CONFIG", "GET", "repl-backlog-size"],
        vec!["CONFIG", "SET", "lfu-log-factor", "20"],
        vec!["CONFIG", "GET", "lfu-log-factor"],
        vec!["CONFIG", "SET", "latency-monitor-threshold", "abc"],
        vec!["CONFIG", "SET", "latency-monitor-threshold", "-1"],
        vec!["CONFIG", "SET", "latency-monitor-threshold", "0"],
        vec!["CONFIG", "GET", "latency-monitor-threshold"],
        vec!["CONFIG", "SET", "maxclients", "0"],
        vec!["CONFIG", "SET", "unixsocketperm", "700"],
        vec!["CONFIG", "SET", "slave-read-only", "no"],
        vec!["CONFIG", "GET", "slave-read-only"],
        vec!["CONFIG", "GET", "replica-read-only"],
    ];
    let names = [
        "activerehashing",
        "lfu-decay-time",
        "active-expire-effort",
        "tcp-keepalive",
        "timeout",
        "lazyfree-lazy-eviction",
        "list-compress-depth",
        "stream-node-max-bytes",
        "stream-node-max-entries",
        "latency-tracking",
        "latency-tracking-info-percentiles",
        "appendfsync",
        "maxmemory-eviction-tenacity",
        "oom-score-adj-values",
        "cluster-node-timeout",
        "tracking-table-max-keys",
        "replica-priority",
        "slave-priority",
        "hll-sparse-max-bytes",
        "no-such-parameter",
    ];
    // MEMORY USAGE's figure is this store's own accounting: only its type is compared.
    let sized = |s: &[&str]| {
        s.len() >= 3 && s[1] == "USAGE" && s[2] == "k" && (s.len() == 3 || s[4] == "0")
    };
    let mut steps: Vec<Step> = script
        .iter()
        .map(|s| Step {
            args: s.iter().map(|a| a.to_string()).collect(),
            compare: if sized(s) {
                Compare::Shape
            } else {
                Compare::Exact
            },
        })
        .collect();
    for n in names {
        steps.push(Step::exact(vec!["CONFIG".into(), "GET".into(), n.into()]));
    }
    let total = steps.len();
    let mut next = steps.into_iter();
    differential(&mut want, &mut got, total, 0, |_| {
        next.next().expect("a step per op")
    })
    .await;
    srv.stop().await;
}
