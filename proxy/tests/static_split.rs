//! The proxy over in-process AutoCache shards (standalone servers → static slot split).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use redis::AsyncCommands;

async fn three() -> (Vec<TestShard>, Proxy) {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    (shards, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_mixing_all_shards_returns_in_order() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    let mut req = Vec::new();
    let mut expected: Vec<String> = Vec::new();
    for i in 0..200 {
        let k = format!("key:{i}");
        req.extend(encode(&["SET", &k, &format!("v{i}")]));
        expected.push("+OK\r\n".into());
        req.extend(encode(&["GET", &k]));
        let v = format!("v{i}");
        expected.push(format!("${}\r\n{v}\r\n", v.len()));
        req.extend(encode(&["INCR", &format!("ctr:{}", i % 7)]));
        expected.push(format!(":{}\r\n", i / 7 + 1));
        if i % 10 == 0 {
            req.extend(encode(&["PING"]));
            expected.push("+PONG\r\n".into());
            req.extend(encode(&["GET", &format!("missing:{i}")]));
            expected.push("$-1\r\n".into());
            let a = format!("key:{}", i / 2);
            let b = format!("key:{i}");
            req.extend(encode(&["MGET", &a, &b, "nope"]));
            let va = format!("v{}", i / 2);
            let vb = format!("v{i}");
            expected.push(format!(
                "*3\r\n${}\r\n{va}\r\n${}\r\n{vb}\r\n$-1\r\n",
                va.len(),
                vb.len()
            ));
            req.extend(encode(&["NOSUCHCMD", "x"]));
            expected.push(
                "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' \r\n".into(),
            );
        }
    }
    // One write: the proxy sees large chunks mixing every shard.
    raw.send(&req).await;
    for (n, want) in expected.iter().enumerate() {
        let got = String::from_utf8_lossy(&raw.reply().await).into_owned();
        assert_eq!(&got, want, "reply #{n}");
    }
    // Byte-at-a-time framing keeps order too.
    let small = [
        encode(&["SET", "a", "1"]),
        encode(&["GET", "a"]),
        encode(&["ECHO", "hi"]),
    ]
    .concat();
    for b in &small {
        raw.send(std::slice::from_ref(b)).await;
    }
    assert_eq!(raw.reply().await, b"+OK\r\n");
    assert_eq!(raw.reply().await, b"$1\r\n1\r\n");
    assert_eq!(raw.reply().await, b"$2\r\nhi\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mget_mset_del_exists_of_100_keys_over_3_shards() {
    let (shards, proxy) = three().await;
    let mut c = proxy.redis().await;
    let keys = spread_keys(100);
    let owners: HashSet<usize> = keys.iter().map(|k| owner_3(k)).collect();
    assert_eq!(owners.len(), 3, "keys cover every shard");
    let pairs: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.clone(), format!("val-{k}")))
        .collect();
    let _: () = c.mset(&pairs).await.expect("mset");
    // Interleave missing keys to check key-order reassembly.
    let mut ask = Vec::new();
    for k in &keys {
        ask.push(k.clone());
        ask.push(format!("{k}:missing"));
    }
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&ask)
        .query_async(&mut c)
        .await
        .expect("mget");
    for (i, v) in vals.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(v.as_deref(), Some(format!("val-{}", ask[i]).as_str()));
        } else {
            assert_eq!(v, &None);
        }
    }
    let n: i64 = redis::cmd("EXISTS")
        .arg(&ask)
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(n, 100);
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("dbsize");
    assert_eq!(n, 100);
    // Every shard really holds its part.
    for (i, s) in shards.iter().enumerate() {
        let mut d = connect_url(&format!("redis://{}/", s.addr)).await;
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut d)
            .await
            .expect("dbsize");
        let want = keys.iter().filter(|k| owner_3(k) == i).count() as i64;
        assert_eq!(n, want, "shard {i}");
    }
    let n: i64 = redis::cmd("DEL")
        .arg(&ask)
        .query_async(&mut c)
        .await
        .expect("del");
    assert_eq!(n, 100);
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("dbsize");
    assert_eq!(n, 0);
    // FLUSHALL answers OK from every shard; KEYS concatenates.
    let _: () = c.set("x", 1).await.expect("set");
    let keys_now: Vec<String> = c.keys("*").await.expect("keys");
    assert_eq!(keys_now, vec!["x".to_string()]);
    let ok: String = redis::cmd("FLUSHALL")
        .query_async(&mut c)
        .await
        .expect("flushall");
    assert_eq!(ok, "OK");
    let r: Option<String> = redis::cmd("RANDOMKEY")
        .query_async(&mut c)
        .await
        .expect("randomkey");
    assert_eq!(r, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_multi_key_commands_need_one_slot() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    let cross = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(raw.text(&["MSETNX", "a", "1", "b", "2"]).await, cross);
    assert_eq!(raw.text(&["SET", "a", "1"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["RENAME", "a", "b"]).await, cross);
    assert_eq!(
        raw.text(&["MSETNX", "{t}a", "1", "{t}b", "2"]).await,
        ":1\r\n"
    );
    assert_eq!(raw.text(&["RENAME", "{t}a", "{t}c"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["GET", "{t}c"]).await, "$1\r\n1\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_over_3_shards_and_moves_within_one_slot() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    // Thirty lists land on all three shards.
    for i in 0..30 {
        let k = format!("list:{i}");
        assert_eq!(raw.text(&["RPUSH", &k, "a", "b"]).await, ":2\r\n");
        assert_eq!(raw.text(&["LPUSH", &k, &i.to_string()]).await, ":3\r\n");
    }
    for i in 0..30 {
        let k = format!("list:{i}");
        let n = i.to_string();
        assert_eq!(
            raw.text(&["LRANGE", &k, "0", "-1"]).await,
            format!("*3\r\n${}\r\n{n}\r\n$1\r\na\r\n$1\r\nb\r\n", n.len())
        );
        assert_eq!(
            raw.text(&["LPOP", &k]).await,
            format!("${}\r\n{n}\r\n", n.len())
        );
        assert_eq!(
            raw.text(&["RPOP", &k, "5"]).await,
            "*2\r\n$1\r\nb\r\n$1\r\na\r\n"
        );
        assert_eq!(raw.text(&["EXISTS", &k]).await, ":0\r\n");
    }
    let cross = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(raw.text(&["RPUSH", "a", "x"]).await, ":1\r\n");
    assert_eq!(raw.text(&["LMOVE", "a", "b", "LEFT", "RIGHT"]).await, cross);
    assert_eq!(raw.text(&["RPOPLPUSH", "a", "b"]).await, cross);
    assert_eq!(raw.text(&["RPUSH", "{t}a", "x", "y"]).await, ":2\r\n");
    assert_eq!(
        raw.text(&["LMOVE", "{t}a", "{t}b", "LEFT", "RIGHT"]).await,
        "$1\r\nx\r\n"
    );
    assert_eq!(
        raw.text(&["RPOPLPUSH", "{t}a", "{t}b"]).await,
        "$1\r\ny\r\n"
    );
    assert_eq!(
        raw.text(&["LRANGE", "{t}b", "0", "-1"]).await,
        "*2\r\n$1\r\ny\r\n$1\r\nx\r\n"
    );
    assert_eq!(raw.text(&["EXISTS", "{t}a"]).await, ":0\r\n");
    // Null replies take the client's protocol: a missing list's LPOP with a count is `*-1`
    // in RESP2 and `_` in RESP3.
    assert_eq!(raw.text(&["LPOP", "{t}a", "2"]).await, "*-1\r\n");
    let mut resp3 = proxy.raw().await;
    resp3.text(&["HELLO", "3"]).await;
    assert_eq!(resp3.text(&["LPOP", "{t}a", "2"]).await, "_\r\n");
    assert_eq!(resp3.text(&["RPOP", "{t}a"]).await, "_\r\n");
    assert_eq!(
        resp3.text(&["LPOS", "{t}b", "x", "COUNT", "0"]).await,
        "*1\r\n:1\r\n"
    );
    assert_eq!(
        raw.text(&["GET", "{t}b"]).await,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_over_3_shards_and_multi_key_commands_within_one_slot() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    // Thirty sets land on all three shards.
    for i in 0..30 {
        let k = format!("set:{i}");
        assert_eq!(raw.text(&["SADD", &k, "a", &i.to_string()]).await, ":2\r\n");
        assert_eq!(raw.text(&["SISMEMBER", &k, "a"]).await, ":1\r\n");
        assert_eq!(raw.text(&["SCARD", &k]).await, ":2\r\n");
    }
    let cross = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    // Writes across slots are refused; the read-only algebra is computed by the proxy
    // (`tests/set_algebra.rs`).
    assert_eq!(raw.text(&["SMOVE", "a", "b", "x"]).await, cross);
    assert_eq!(raw.text(&["SUNIONSTORE", "d", "a", "b"]).await, cross);
    assert_eq!(
        raw.text(&["SINTER", "set:1", "set:2"]).await,
        "*1\r\n$1\r\na\r\n"
    );
    assert_eq!(
        raw.text(&["SINTERCARD", "2", "set:1", "set:2"]).await,
        ":1\r\n"
    );
    assert_eq!(raw.text(&["SADD", "{t}a", "x", "y"]).await, ":2\r\n");
    assert_eq!(raw.text(&["SADD", "{t}b", "y", "z"]).await, ":2\r\n");
    assert_eq!(
        raw.text(&["SINTER", "{t}a", "{t}b"]).await,
        "*1\r\n$1\r\ny\r\n"
    );
    assert_eq!(
        raw.text(&["SINTERCARD", "2", "{t}a", "{t}b"]).await,
        ":1\r\n"
    );
    assert_eq!(raw.text(&["SMOVE", "{t}a", "{t}b", "x"]).await, ":1\r\n");
    assert_eq!(
        raw.text(&["SUNIONSTORE", "{t}d", "{t}a", "{t}b"]).await,
        ":3\r\n"
    );
    assert_eq!(raw.text(&["SCARD", "{t}d"]).await, ":3\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_across_shards_returns_every_key_exactly_once() {
    let (_shards, proxy) = three().await;
    let mut c = proxy.redis().await;
    let keys = spread_keys(700);
    for chunk in keys.chunks(100) {
        let pairs: Vec<(&str, i32)> = chunk.iter().map(|k| (k.as_str(), 1)).collect();
        let _: () = c.mset(&pairs).await.expect("mset");
    }
    let mut seen = Vec::new();
    let mut cursor: u64 = 0;
    let mut rounds = 0;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(50)
            .query_async(&mut c)
            .await
            .expect("scan");
        seen.extend(page);
        rounds += 1;
        assert!(rounds < 10_000, "scan does not terminate");
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(unique.len(), keys.len(), "every key");
    // MATCH is forwarded.
    let matched: Vec<String> = {
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("key:1?")
                .query_async(&mut c)
                .await
                .expect("scan");
            out.extend(page);
            if next == 0 {
                break out;
            }
            cursor = next;
        }
    };
    assert_eq!(matched.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_via_hello_3() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    let hello = raw.text(&["HELLO", "3"]).await;
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    assert!(hello.contains("proto\r\n:3"), "{hello}");
    assert_eq!(
        raw.text(&["HSET", "h", "f1", "v1", "f2", "v2"]).await,
        ":2\r\n"
    );
    let all = raw.text(&["HGETALL", "h"]).await;
    assert!(
        all.starts_with("%2\r\n"),
        "HGETALL is a map in RESP3: {all}"
    );
    assert_eq!(raw.text(&["GET", "nope"]).await, "_\r\n");
    assert_eq!(raw.text(&["SET", "k", "v"]).await, "+OK\r\n");
    let m = raw.text(&["MGET", "k", "nope", "key:1", "key:2"]).await;
    assert_eq!(m, "*4\r\n$1\r\nv\r\n_\r\n_\r\n_\r\n");
    // Back to RESP2.
    assert!(raw.text(&["HELLO", "2"]).await.starts_with("*14\r\n"));
    assert_eq!(raw.text(&["GET", "nope"]).await, "$-1\r\n");
    assert!(raw.text(&["HGETALL", "h"]).await.starts_with("*4\r\n"));
    assert_eq!(
        raw.text(&["HELLO", "4"]).await,
        "-NOPROTO unsupported protocol version\r\n"
    );

    // A RESP3 client library end to end.
    let mut c = connect_url(&format!("{}?protocol=resp3", proxy.url())).await;
    let _: () = c
        .hset_multiple("h3", &[("a", "1"), ("b", "2")])
        .await
        .expect("hset");
    let m: std::collections::HashMap<String, String> = c.hgetall("h3").await.expect("hgetall");
    assert_eq!(m.get("a").map(String::as_str), Some("1"));
    let v: Option<String> = c.get("missing").await.expect("get");
    assert_eq!(v, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shard_fails_only_its_slots_and_comes_back() {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let proxy = Proxy::over(&shards).await;
    let mut raw = proxy.raw().await;
    let keys = spread_keys(30);
    for k in &keys {
        assert_eq!(raw.text(&["SET", k, "v"]).await, "+OK\r\n");
    }
    let mut shards = shards;
    let dead = shards.remove(1);
    let dead_addr = dead.addr;
    dead.stop().await;
    // Commands for the dead shard fail fast with a clear error; others keep working.
    let deadline = Instant::now() + Duration::from_secs(20);
    for k in &keys {
        let started = Instant::now();
        let r = raw.text(&["GET", k]).await;
        if owner_3(k) == 1 {
            assert!(
                r.starts_with(&format!("-ERR backend {dead_addr}")),
                "{k}: {r}"
            );
        } else {
            assert_eq!(r, "$1\r\nv\r\n", "{k}");
        }
        assert!(started.elapsed() < Duration::from_secs(10), "failed fast");
    }
    // A fan-out touching the dead shard reports it; one that does not still works.
    let on: Vec<&str> = keys
        .iter()
        .filter(|k| owner_3(k) != 1)
        .map(String::as_str)
        .collect();
    let mut args = vec!["MGET"];
    args.extend(&on);
    assert!(
        raw.text(&args)
            .await
            .starts_with(&format!("*{}\r\n", on.len()))
    );
    loop {
        let info = raw.text(&["INFO", "shards"]).await;
        if info.contains("status=down") {
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Unavailable wording once reconnects have failed.
    let k1 = keys
        .iter()
        .find(|k| owner_3(k) == 1)
        .expect("key on shard 1");
    let r = raw.text(&["GET", k1]).await;
    assert!(r.contains("unavailable") || r.contains("connection"), "{r}");

    // The shard returns on the same port (empty: in-memory); the proxy reconnects.
    let back = TestShard::start_with(&dead_addr.to_string(), |_| {}).await;
    loop {
        let r = raw.text(&["SET", k1, "again"]).await;
        if r == "+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "no reconnect: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(raw.text(&["GET", k1]).await, "$5\r\nagain\r\n");
    back.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_and_local_commands() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    for (cmd, word) in [(vec!["WAIT", "1", "0"], "WAIT")] {
        let r = raw.text(&cmd).await;
        assert!(
            r.starts_with(&format!("-ERR {word} is not supported through the proxy: ")),
            "{r}"
        );
    }
    assert_eq!(
        raw.text(&["GET"]).await,
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(raw.text(&["SELECT", "0"]).await, "+OK\r\n");
    assert!(raw.text(&["SELECT", "1"]).await.starts_with("-ERR"));
    assert_eq!(raw.text(&["CLIENT", "SETNAME", "me"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["CLIENT", "GETNAME"]).await, "$2\r\nme\r\n");
    assert!(raw.text(&["CLIENT", "ID"]).await.starts_with(':'));
    assert!(raw.text(&["CLIENT", "LIST"]).await.contains("name=me"));
    let count = raw.text(&["COMMAND", "COUNT"]).await;
    assert_eq!(
        count,
        format!(":{}\r\n", membership::command::COMMANDS.len())
    );
    let info = raw.text(&["INFO"]).await;
    for s in [
        "# Server",
        "proxy_mode:static",
        "# Shards",
        "shard0:addr=",
        "slots=5461",
    ] {
        assert!(info.contains(s), "{s} in {info}");
    }
    assert_eq!(raw.text(&["QUIT"]).await, "+OK\r\n");
    assert!(raw.is_closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_gates_commands() {
    let shards = [TestShard::default().await];
    let mut cfg = config(&[shards[0].addr.to_string()]);
    cfg.requirepass = Some("s3cret".into());
    let proxy = Proxy::start(cfg).await;
    let mut raw = proxy.raw().await;
    assert_eq!(
        raw.text(&["GET", "k"]).await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert!(raw.text(&["AUTH", "nope"]).await.starts_with("-WRONGPASS"));
    assert_eq!(raw.text(&["AUTH", "s3cret"]).await, "+OK\r\n");
    assert_eq!(raw.text(&["GET", "k"]).await, "$-1\r\n");
    let mut c = connect_url(&format!("redis://:s3cret@{}/", proxy.addr)).await;
    let _: () = c.set("k", "v").await.expect("set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_what_was_read() {
    let (_shards, proxy) = three().await;
    let mut raw = proxy.raw().await;
    let mut req = Vec::new();
    for i in 0..500 {
        req.extend(encode(&["SET", &format!("key:{i}"), "v"]));
    }
    raw.send(&req).await;
    // Once the proxy has read all 500 (its command counter says so; the requests span more
    // than one read), stop it mid-stream.
    assert_eq!(raw.reply().await, b"+OK\r\n");
    let mut other = proxy.raw().await;
    let mut read_all = false;
    for _ in 0..500 {
        let info = other.text(&["INFO", "stats"]).await;
        let n: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if n >= 500 {
            read_all = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(read_all, "the proxy read the pipeline");
    let stopping = tokio::spawn(proxy.stop());
    for _ in 1..500 {
        assert_eq!(raw.reply().await, b"+OK\r\n");
    }
    stopping.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_works_through_the_proxy() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var("AUTOCACHE_SKIP_EXTERNAL").as_deref() == Ok("1") {
            return;
        }
        panic!(
            "redis-cli not found: install it with `apt-get install redis-tools` (or set AUTOCACHE_SKIP_EXTERNAL=1)"
        );
    }
    let (_shards, proxy) = three().await;
    let port = proxy.addr.port().to_string();
    let cli = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &port]).args(args);
        async move {
            let out = tokio::time::timeout(TIMEOUT, cmd.output())
                .await
                .expect("redis-cli in time")
                .expect("redis-cli runs");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    assert_eq!(cli(&["SET", "foo", "bar"]).await, "OK");
    assert_eq!(cli(&["GET", "foo"]).await, "bar");
    assert_eq!(
        cli(&["MSET", "key:1", "a", "key:2", "b", "key:3", "c"]).await,
        "OK"
    );
    assert_eq!(cli(&["MGET", "key:1", "key:2", "key:3"]).await, "a\nb\nc");
    assert_eq!(cli(&["DBSIZE"]).await, "4");
    let mut scanned: Vec<String> = cli(&["--scan"]).await.lines().map(str::to_string).collect();
    scanned.sort();
    assert_eq!(scanned, ["foo", "key:1", "key:2", "key:3"]);
    assert!(
        cli(&["INFO", "server"])
            .await
            .contains("autocache_proxy_version")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_works_through_the_proxy() {
    let Some(python) = redis_py() else {
        return;
    };
    let (_shards, proxy) = three().await;
    run_redis_py(&python, proxy.addr).await;
}

/// redis-py's consumer-group worker loop (XREADGROUP BLOCK, XACK, XAUTOCLAIM) through the
/// proxy over three shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_stream_workers_through_the_proxy() {
    let Some(python) = redis_py() else {
        return;
    };
    let (_shards, proxy) = three().await;
    run_redis_py_script(&python, "redis_py_streams.py", proxy.addr).await;
}

/// ioredis through the proxy over three shards: multi/exec, WATCH retries, defineCommand
/// (EVALSHA, falling back to EVAL), pipelines spread over every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_works_through_the_proxy() {
    let Some(node) = ioredis() else {
        return;
    };
    let (_shards, proxy) = three().await;
    run_ioredis(&node, proxy.addr, IOREDIS_PROXY_FLAGS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_polling_serves_single_and_fanned_out_commands() {
    let shards = vec![
        TestShard::default().await,
        TestShard::default().await,
        TestShard::default().await,
    ];
    let seeds: Vec<String> = shards.iter().map(|s| s.addr.to_string()).collect();
    let proxy = Proxy::start(proxy::Config {
        busy_poll: Duration::from_micros(100),
        ..config(&seeds)
    })
    .await;
    let mut c = proxy.redis().await;
    let keys = spread_keys(60);
    for k in &keys {
        let _: () = c.set(k, format!("v-{k}")).await.expect("set");
        let v: String = c.get(k).await.expect("get");
        assert_eq!(v, format!("v-{k}"));
    }
    let got: Vec<String> = c.mget(&keys).await.expect("mget");
    assert_eq!(
        got,
        keys.iter().map(|k| format!("v-{k}")).collect::<Vec<_>>()
    );
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}
