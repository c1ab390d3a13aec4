//! Server commands a client or tool expects from one Redis, through the proxy: INFO summed over
//! the shards, CONFIG GET/SET on every shard, MEMORY USAGE / OBJECT / DEBUG OBJECT by key,
//! SLOWLOG merged, RANDOMKEY uniform over the keyspace, CLUSTER as a one-node cluster; and the
//! redis-cli tools that use them (--stat, --bigkeys, --memkeys, --scan, --latency). Over
//! AutoCache shards and over a real Redis Cluster.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use common::redis_cluster::*;
use common::*;
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A CLUSTER SLOTS entry: first, last, (ip, port, id, metadata).
type SlotRange = (i64, i64, (String, i64, String, Vec<String>));

/// `key:value` of an INFO text.
fn field(info: &str, key: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim_end().strip_prefix(&format!("{key}:")))
        .map(str::to_string)
}

fn keys_in(info: &str) -> u64 {
    field(info, "db0")
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("keys="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

async fn info(c: &mut redis::aio::MultiplexedConnection, section: Option<&str>) -> String {
    let mut cmd = redis::cmd("INFO");
    if let Some(s) = section {
        cmd.arg(s);
    }
    cmd.query_async(c).await.expect("info")
}

async fn config_get(c: &mut redis::aio::MultiplexedConnection, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(c)
        .await
        .expect("config get");
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Runs redis-cli against `port` with `args`, bounded by `secs`; its standard output.
async fn redis_cli(port: u16, args: &[&str], secs: u64) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(secs),
        tokio::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("redis-cli {args:?} did not finish in {secs} s"))
    .expect("redis-cli runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `redis-cli --stat`'s first data line (it runs until stopped: killed once the line is read,
/// or after 30 s), split into columns: keys, mem, clients, blocked, requests ...
async fn stat_line(port: u16) -> Vec<String> {
    let mut child = tokio::process::Command::new("stdbuf")
        .args([
            "-oL",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["--stat", "-i", "0.1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("stdbuf redis-cli --stat");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u64>().is_ok())
            {
                return l;
            }
        }
        panic!("redis-cli --stat ended without a data line");
    })
    .await
    .expect("a --stat line in time");
    let _ = child.kill().await;
    line.split_whitespace().map(str::to_string).collect()
}

/// The redis-cli tools through the proxy: --stat shows the summed key count and memory,
/// --bigkeys and --memkeys sample every key, --scan lists them, --latency measures.
async fn redis_cli_tools(port: u16, nkeys: usize) {
    let stat = stat_line(port).await;
    assert_eq!(stat[0], nkeys.to_string(), "--stat keys: {stat:?}");
    assert!(
        !stat[1].starts_with('-') && stat[1] != "0B",
        "--stat mem: {stat:?}"
    );
    assert_eq!(stat[3], "0", "--stat blocked: {stat:?}");

    let big = redis_cli(port, &["--bigkeys"], 60).await;
    assert!(
        big.contains(&format!("Sampled {nkeys} keys in the keyspace!")),
        "{big}"
    );
    assert!(big.contains("Biggest string found"), "{big}");

    let mem = redis_cli(port, &["--memkeys"], 60).await;
    assert!(
        mem.contains(&format!("Sampled {nkeys} keys in the keyspace!")),
        "{mem}"
    );
    assert!(mem.contains("Biggest string found"), "{mem}");
    assert!(!mem.contains("ERR"), "{mem}");

    let scan = redis_cli(port, &["--scan", "--pattern", "*"], 60).await;
    let listed: HashSet<&str> = scan.lines().collect();
    assert_eq!(listed.len(), nkeys, "--scan");

    // Not a terminal: one line `min max avg samples` after the -i interval, then it exits.
    let lat = redis_cli(port, &["--latency", "-i", "0.5"], 30).await;
    let cols: Vec<&str> = lat.split_whitespace().collect();
    assert_eq!(cols.len(), 4, "--latency: {lat}");
    assert!(cols[3].parse::<u64>().is_ok_and(|n| n > 0), "{lat}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_config_memory_and_slowlog_over_autocache_shards() {
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    // No health check during the test: its PINGs would join the shards' slow logs (the
    // threshold goes to 0 below) on a machine slow enough for one to fall in.
    let seeds: Vec<String> = shards.iter().map(|s| s.addr.to_string()).collect();
    let proxy = Proxy::start(proxy::Config {
        health_interval: std::time::Duration::from_secs(3600),
        ..config(&seeds)
    })
    .await;
    let mut c = proxy.redis().await;
    let mut direct = Vec::new();
    for s in &shards {
        direct.push(connect_url(&format!("redis://{}/", s.addr)).await);
    }
    let keys = spread_keys(300);
    for (i, k) in keys.iter().enumerate() {
        if i % 10 == 0 {
            let _: () = c.set_ex(k, "v", 1000).await.expect("setex");
        } else {
            let _: () = c.set(k, "v").await.expect("set");
        }
    }

    // INFO: keyspace and memory summed over the shards, the proxy's own sections.
    let all = info(&mut c, None).await;
    assert_eq!(keys_in(&all), 300, "{all}");
    assert_eq!(
        field(&all, "db0").as_deref(),
        Some("keys=300,expires=30,avg_ttl=0"),
        "{all}"
    );
    let mut used = 0u64;
    for d in &mut direct {
        used += field(&info(d, Some("memory")).await, "used_memory")
            .and_then(|v| v.parse::<u64>().ok())
            .expect("shard used_memory");
    }
    let proxy_used: u64 = field(&all, "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory");
    // The shards' figures move a little between the two reads (clients' buffers).
    assert!(
        proxy_used.abs_diff(used) < used / 10,
        "{proxy_used} vs {used}"
    );
    for f in [
        "used_memory_human",
        "maxmemory_policy",
        "used_cpu_sys",
        "proxy_used_cpu_user",
        "keyspace_hits",
        "total_commands_processed",
    ] {
        assert!(field(&all, f).is_some(), "{f} in {all}");
    }
    assert_eq!(field(&all, "blocked_clients").as_deref(), Some("0"));
    assert_eq!(field(&all, "cluster_enabled").as_deref(), Some("1"));
    assert_eq!(field(&all, "info_shards_answered").as_deref(), Some("3/3"));
    assert_eq!(field(&all, "shards_up").as_deref(), Some("3"));
    let ks = info(&mut c, Some("keyspace")).await;
    assert!(
        ks.starts_with("# Keyspace\r\n") && keys_in(&ks) == 300,
        "{ks}"
    );
    assert!(!ks.contains("# Server"), "{ks}");

    // CONFIG: SET reaches every shard; GET answers from the shards (maxmemory summed) and
    // the proxy's own parameters from the proxy.
    let r: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1mb")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut c)
        .await
        .expect("config set");
    assert_eq!(r, "OK");
    for d in &mut direct {
        assert_eq!(config_get(d, "maxmemory").await.as_deref(), Some("1048576"));
        assert_eq!(
            config_get(d, "maxmemory-policy").await.as_deref(),
            Some("allkeys-lru")
        );
    }
    assert_eq!(
        config_get(&mut c, "maxmemory").await.as_deref(),
        Some("3145728")
    );
    assert_eq!(
        config_get(&mut c, "port").await,
        Some(proxy.addr.port().to_string())
    );
    let pairs: Vec<(String, String)> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory*")
        .query_async(&mut c)
        .await
        .expect("config get");
    let names: HashSet<String> = pairs.into_iter().map(|(k, _)| k).collect();
    // Redis 7.0's five (the shards know every Redis parameter).
    let want: HashSet<String> = [
        "maxmemory",
        "maxmemory-policy",
        "maxmemory-samples",
        "maxmemory-clients",
        "maxmemory-eviction-tenacity",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, want);
    let mut raw = proxy.raw().await;
    assert_eq!(
        raw.text(&["CONFIG", "SET", "maxmemory", "lots"]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value\r\n"
    );
    assert!(
        raw.text(&["CONFIG", "SET", "requirepass", "x"])
            .await
            .starts_with("-ERR CONFIG SET REQUIREPASS is not supported through the proxy: ")
    );
    let info_mem = info(&mut c, Some("memory")).await;
    assert_eq!(field(&info_mem, "maxmemory").as_deref(), Some("3145728"));
    assert_eq!(
        field(&info_mem, "maxmemory_human").as_deref(),
        Some("3.00M")
    );

    // MEMORY USAGE, OBJECT, DEBUG OBJECT: routed by key.
    let usage: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&keys[7])
        .query_async(&mut c)
        .await
        .expect("memory usage");
    assert!(usage.is_some_and(|n| n > keys[7].len() as i64), "{usage:?}");
    let none: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("nope")
        .arg("SAMPLES")
        .arg("0")
        .query_async(&mut c)
        .await
        .expect("memory usage");
    assert_eq!(none, None);
    assert_eq!(
        raw.text(&["OBJECT", "ENCODING", &keys[7]]).await,
        "$6\r\nembstr\r\n",
        "a bulk string, as redis-server 7 answers"
    );
    let dbg = raw.text(&["DEBUG", "OBJECT", &keys[7]]).await;
    assert!(
        dbg.starts_with("+Value at:") && dbg.contains(" encoding:embstr serializedlength:1 "),
        "{dbg}"
    );
    assert_eq!(
        raw.text(&["DEBUG", "OBJECT", "nope"]).await,
        "-ERR no such key\r\n"
    );

    // SLOWLOG: every command logged once the threshold is 0, merged newest first.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg("0")
        .query_async(&mut c)
        .await
        .expect("slowlog threshold");
    assert_eq!(raw.text(&["SLOWLOG", "RESET"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["SLOWLOG", "LEN"]).await, ":0\r\n");
    for k in &keys[..30] {
        let _: Option<String> = c.get(k).await.expect("get");
    }
    let len: i64 = redis::cmd("SLOWLOG")
        .arg("LEN")
        .query_async(&mut c)
        .await
        .expect("slowlog len");
    assert_eq!(len, 30);
    type Entry = (i64, i64, i64, Vec<String>, String, String);
    let entries: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg("20")
        .query_async(&mut c)
        .await
        .expect("slowlog get");
    assert_eq!(entries.len(), 20);
    let ids: HashSet<i64> = entries.iter().map(|e| e.0).collect();
    assert_eq!(ids.len(), 20, "ids unique across shards");
    assert!(entries.windows(2).all(|w| w[0].1 >= w[1].1), "newest first");
    assert!(
        entries
            .iter()
            .all(|e| e.3.first().map(String::as_str) == Some("GET"))
    );
    let default: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .query_async(&mut c)
        .await
        .expect("slowlog get");
    assert_eq!(default.len(), 10);
    let every: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg("-1")
        .query_async(&mut c)
        .await
        .expect("slowlog get");
    assert_eq!(every.len(), 30);
    assert_eq!(
        raw.text(&["SLOWLOG", "GET", "-2"]).await,
        "-ERR count should be greater than or equal to -1\r\n"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg("10000")
        .query_async(&mut c)
        .await
        .expect("slowlog threshold");

    // A shard down: INFO still answers, from the others, and says so.
    let [s0, s1, s2] = shards;
    s2.stop().await;
    let partial = info(&mut c, None).await;
    assert_eq!(
        field(&partial, "info_shards_answered").as_deref(),
        Some("2/3")
    );
    assert!(keys_in(&partial) < 300, "{partial}");
    drop((s0, s1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomkey_is_uniform_over_the_shards() {
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.redis().await;
    // One key on shard 0, 99 on shard 1, none on shard 2: shard 0's key should come up about
    // once in a hundred draws (it came up every time when the first shard's answer was taken).
    let keys = spread_keys(2000);
    let lone = keys
        .iter()
        .find(|k| owner_3(k) == 0)
        .expect("a key on shard 0");
    let many: Vec<&String> = keys.iter().filter(|k| owner_3(k) == 1).take(99).collect();
    let _: () = c.set(lone, "1").await.expect("set");
    for k in &many {
        let _: () = c.set(*k, "1").await.expect("set");
    }
    let mut seen = HashSet::new();
    let mut lone_hits = 0;
    for _ in 0..400 {
        let k: Option<String> = redis::cmd("RANDOMKEY")
            .query_async(&mut c)
            .await
            .expect("randomkey");
        let k = k.expect("a key");
        if &k == lone {
            lone_hits += 1;
        }
        seen.insert(k);
    }
    // Expected 4 of 400; 40 or more has a probability below 1e-20.
    assert!(
        lone_hits < 40,
        "{lone_hits} of 400 draws were shard 0's only key"
    );
    assert!(seen.len() > 50, "{} distinct keys", seen.len());
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut c)
        .await
        .expect("flushall");
    let none: Option<String> = redis::cmd("RANDOMKEY")
        .query_async(&mut c)
        .await
        .expect("randomkey");
    assert_eq!(none, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_commands_present_the_proxy_as_one_node() {
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.redis().await;
    let port = i64::from(proxy.addr.port());

    let slots: Vec<SlotRange> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut c)
        .await
        .expect("cluster slots");
    assert_eq!(slots.len(), 1);
    let (first, last, (ip, p, id, _)) = &slots[0];
    assert_eq!(
        (*first, *last, ip.as_str(), *p),
        (0, 16383, "127.0.0.1", port)
    );
    assert_eq!(id.len(), 40);
    let myid: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut c)
        .await
        .expect("myid");
    assert_eq!(&myid, id);
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut c)
        .await
        .expect("nodes");
    assert_eq!(
        nodes,
        format!("{id} 127.0.0.1:{port}@0 myself,master - 0 0 1 connected 0-16383\n")
    );
    let ci: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut c)
        .await
        .expect("cluster info");
    for want in [
        "cluster_state:ok",
        "cluster_slots_assigned:16384",
        "cluster_known_nodes:1",
        "cluster_size:1",
    ] {
        assert!(ci.contains(want), "{ci}");
    }
    let mut raw = proxy.raw().await;
    let sh = raw.text(&["CLUSTER", "SHARDS"]).await;
    assert!(
        sh.starts_with("*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n"),
        "{sh}"
    );
    assert!(sh.contains(&format!("$4\r\nport\r\n:{port}\r\n")), "{sh}");
    assert_eq!(raw.text(&["CLUSTER", "KEYSLOT", "foo"]).await, ":12182\r\n");
    // COUNTKEYSINSLOT / GETKEYSINSLOT go to the slot's shard.
    let _: () = c.set("foo", "1").await.expect("set");
    assert_eq!(
        raw.text(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]).await,
        ":1\r\n"
    );
    assert_eq!(
        raw.text(&["CLUSTER", "GETKEYSINSLOT", "12182", "10"]).await,
        "*1\r\n$3\r\nfoo\r\n"
    );
    assert_eq!(
        raw.text(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]).await,
        "-ERR Invalid slot\r\n"
    );
    assert_eq!(raw.text(&["READONLY"]).await, "+OK\r\n");

    // A cluster-mode client (redis-py's RedisCluster) pointed at the proxy.
    if let Some(py) = redis_py() {
        let script = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
nodes = rc.get_nodes()
assert len(nodes) == 1, nodes
for i in range(50):
    rc.set("rc:%d" % i, str(i))
# Cross-slot MGET is split by the client itself (mget_nonatomic), as against any cluster.
assert rc.mget_nonatomic(["rc:%d" % i for i in range(50)]) == [str(i).encode() for i in range(50)]
assert rc.delete(*["rc:%d" % i for i in range(50)]) == 50
print("ok")
"#;
        let out = tokio::time::timeout(
            TIMEOUT,
            tokio::process::Command::new(py)
                .args(["-c", script, &proxy.addr.port().to_string()])
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("redis-py in time")
        .expect("python runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_tools_over_autocache_shards() {
    if !tools_present() {
        return;
    }
    let shards = [
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.redis().await;
    let keys = spread_keys(120);
    for k in &keys {
        let _: () = c.set(k, "value").await.expect("set");
    }
    redis_cli_tools(proxy.addr.port(), keys.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_commands_over_a_real_redis_cluster() {
    if !tools_present() {
        return;
    }
    let rc = RedisCluster::start();
    let proxy = Proxy::start(config(&rc.seeds()[..1])).await;
    let mut c = proxy.redis().await;
    let keys = spread_keys(150);
    for k in &keys {
        let _: () = c.set(k, "value").await.expect("set");
    }
    // Which node holds each key.
    let mut node_keys: Vec<HashSet<String>> = Vec::new();
    for p in &rc.ports {
        let listed = cli(*p, &["--scan"]);
        node_keys.push(listed.lines().map(str::to_string).collect());
    }
    assert_eq!(node_keys.iter().map(HashSet::len).sum::<usize>(), 150);

    // RANDOMKEY returns keys of every node.
    let mut hit = [false; 3];
    for _ in 0..200 {
        let k: String = redis::cmd("RANDOMKEY")
            .query_async(&mut c)
            .await
            .expect("randomkey");
        for (i, set) in node_keys.iter().enumerate() {
            if set.contains(&k) {
                hit[i] = true;
            }
        }
    }
    assert_eq!(hit, [true; 3], "RANDOMKEY reached every node");

    // INFO sums the nodes.
    let all = info(&mut c, None).await;
    assert_eq!(keys_in(&all), 150, "{all}");
    assert!(field(&all, "used_memory").is_some() && field(&all, "used_cpu_sys").is_some());
    assert_eq!(field(&all, "info_shards_answered").as_deref(), Some("3/3"));

    // CONFIG SET reaches every node; GET sums maxmemory.
    let r: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10mb")
        .query_async(&mut c)
        .await
        .expect("config set");
    assert_eq!(r, "OK");
    for p in &rc.ports {
        assert_eq!(
            cli(*p, &["CONFIG", "GET", "maxmemory"]),
            "maxmemory\n10485760"
        );
    }
    assert_eq!(
        config_get(&mut c, "maxmemory").await.as_deref(),
        Some("31457280")
    );
    assert_eq!(
        config_get(&mut c, "cluster-enabled").await.as_deref(),
        Some("yes")
    );

    // MEMORY USAGE by key; SLOWLOG merged over the nodes.
    let usage: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .expect("memory usage");
    assert!(usage.is_some_and(|n| n > 0));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg("0")
        .query_async(&mut c)
        .await
        .expect("config set");
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut c)
        .await
        .expect("slowlog reset");
    for k in &keys[..30] {
        let _: Option<String> = c.get(k).await.expect("get");
    }
    type Entry = (i64, i64, i64, Vec<String>, String, String);
    let entries: Vec<Entry> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg("-1")
        .query_async(&mut c)
        .await
        .expect("slowlog get");
    let gets = entries
        .iter()
        .filter(|e| e.3.first().is_some_and(|n| n.eq_ignore_ascii_case("get")))
        .count();
    assert_eq!(gets, 30, "{entries:?}");
    let ids: HashSet<i64> = entries.iter().map(|e| e.0).collect();
    assert_eq!(ids.len(), entries.len());

    // The proxy as one node owning every slot, at its own address.
    let slots: Vec<SlotRange> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut c)
        .await
        .expect("cluster slots");
    assert_eq!(slots.len(), 1);
    let (first, last, (ip, port, _, _)) = &slots[0];
    assert_eq!(
        (*first, *last, ip.as_str(), *port),
        (0, 16383, "127.0.0.1", i64::from(proxy.addr.port()))
    );

    redis_cli_tools(proxy.addr.port(), keys.len()).await;
}

/// Introspection through the proxy: INFO commandstats / errorstats / latencystats from the
/// shards, LATENCY gathered from every shard, MEMORY STATS of one, SELECT as Redis Cluster
/// answers it, and MONITOR showing what the proxy's clients send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_through_the_proxy() {
    let shards = [TestShard::default().await, TestShard::default().await];
    let seeds: Vec<String> = shards.iter().map(|s| s.addr.to_string()).collect();
    let proxy = Proxy::start(proxy::Config {
        health_interval: std::time::Duration::from_secs(3600),
        ..config(&seeds)
    })
    .await;
    let mut c = proxy.raw().await;
    assert_eq!(c.cmd(&["SELECT", "0"]).await, V::s("OK"));
    assert_err(
        &c.cmd(&["SELECT", "1"]).await,
        "ERR SELECT is not allowed in cluster mode",
    );
    assert_err(
        &c.cmd(&["SELECT", "x"]).await,
        "ERR value is not an integer or out of range",
    );

    let mut m = proxy.raw().await;
    assert_eq!(m.cmd(&["MONITOR"]).await, V::s("OK"));
    for k in spread_keys(20) {
        assert_eq!(c.cmd(&["SET", &k, "v"]).await, V::s("OK"));
    }
    assert_eq!(c.cmd(&["LPUSH", "{a}x", "1"]).await, V::Int(1));
    let first = m.read().await;
    let line = first.as_str();
    assert!(line.contains(" [0 127.0.0.1:"), "{line}");
    assert!(line.contains("] \"SET\" "), "{line}");
    for _ in 0..19 {
        assert!(m.read().await.as_str().contains("\"SET\""));
    }
    assert!(m.read().await.as_str().contains("\"LPUSH\" \"{a}x\" \"1\""));

    let all = c.cmd(&["INFO", "all"]).await;
    let set = field(all.as_str(), "cmdstat_set").expect("cmdstat_set");
    assert!(set.starts_with("calls=20,"), "{set}");
    assert!(
        field(all.as_str(), "latency_percentiles_usec_set").is_some(),
        "{all:?}"
    );

    // LATENCY on every shard: DEBUG SLEEP goes to each, each records it.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "20"])
            .await,
        V::s("OK")
    );
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.03"]).await, V::s("OK"));
    let latest = c.cmd(&["LATENCY", "LATEST"]).await;
    assert_eq!(latest.as_arr().len(), 2, "one per shard: {latest:?}");
    assert_eq!(c.cmd(&["LATENCY", "RESET"]).await, V::Int(2));
    let V::Arr(stats) = c.cmd(&["MEMORY", "STATS"]).await else {
        panic!("MEMORY STATS")
    };
    assert!(stats.iter().any(|v| v == &V::s("keys.count")));
    assert_err(
        &c.cmd(&["CLIENT", "REPLY", "OFF"]).await,
        "ERR CLIENT REPLY is not supported through the proxy",
    );
    drop(m);
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
}
