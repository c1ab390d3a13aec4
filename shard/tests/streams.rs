//! Streams: a differential test against a real `redis-server` (every reply compared, on the
//! RAM tier and through the warm tier), IDs from the shard's clock (paused here), XREAD and
//! XREADGROUP BLOCK (woken by XADD, timing out, ended by a destroyed group or a deleted key),
//! idle times and claims by idle time, accounting, keyspace events.
//!
//! Needs `redis-server` on PATH for the differential part (`AUTOCACHE_SKIP_EXTERNAL=1` skips it
//! when missing).

use std::time::Duration;

use shard::testing::{
    Raw, TestShard, V, differential as run, encode, info_int, random, redis_server,
};

/// Operations per differential run.
const OPS: usize = 10_000;

async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    for name in random::stream::COMMANDS {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let mut g = random::stream::Gen::new("");
    let tally = run(&mut want, &mut got, OPS, seed, |rng| g.step(rng)).await;
    for k in random::stream::KEYS {
        for probe in [
            vec!["TYPE", k],
            vec!["XRANGE", k, "-", "+"],
            vec!["XINFO", "GROUPS", k],
        ] {
            assert_eq!(got.text(&probe).await, want.text(&probe).await, "{probe:?}");
        }
    }
    eprintln!("{OPS} operations: {tally:?}");
    assert!(
        tally.errors > OPS / 50 && tally.errors < OPS / 2,
        "{tally:?}"
    );
    assert!(tally.arrays > OPS / 20, "{tally:?}");
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x0005_72ea).await;
}

#[tokio::test]
async fn differential_against_redis_through_the_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x0057_2ea2).await;
}

/// Waits until the shard counts `n` blocked clients.
async fn blocked(c: &mut Raw, n: u64) {
    for _ in 0..500 {
        let info = c.cmd(&["INFO", "clients"]).await;
        if info_int(info.as_str(), "blocked_clients") == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never {n} blocked clients");
}

fn id_ms(v: &V) -> (u64, u64) {
    let s = v.as_str();
    let (ms, seq) = s.split_once('-').expect("an ID");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

#[tokio::test(start_paused = true)]
async fn automatic_ids_follow_the_shards_clock() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    // Two IDs in one pipeline share the millisecond: the sequence counts.
    c.send(
        &[
            encode(&["XADD", "s", "*", "f", "1"]),
            encode(&["XADD", "s", "*", "f", "2"]),
        ]
        .concat(),
    )
    .await;
    let (a, b) = (id_ms(&c.read().await), id_ms(&c.read().await));
    assert_eq!((b.0, b.1), (a.0, a.1 + 1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = id_ms(&c.cmd(&["XADD", "s", "*", "f", "3"]).await);
    assert_eq!(later, (a.0 + 5000, 0), "five paused seconds later");
    // An ID set in the future holds `*` to its millisecond.
    let future = a.0 + 100_000;
    c.cmd(&["XADD", "s", &format!("{future}-5"), "f", "4"])
        .await;
    assert_eq!(
        id_ms(&c.cmd(&["XADD", "s", "*", "f", "5"]).await),
        (future, 6)
    );
    assert_eq!(
        id_ms(
            &c.cmd(&["XADD", "s", &format!("{future}-*"), "f", "6"])
                .await
        ),
        (future, 7)
    );
    srv.stop().await;
}

fn entry(id: &str, f: &str, v: &str) -> V {
    V::Arr(vec![V::s(id), V::strs(&[f, v])])
}

fn read_reply(key: &str, entries: Vec<V>) -> V {
    V::Arr(vec![V::Arr(vec![V::s(key), V::Arr(entries)])])
}

#[tokio::test]
async fn xread_block_is_woken_by_xadd_and_times_out() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut r = srv.raw().await;
    admin.cmd(&["XADD", "s", "1-1", "f", "old"]).await;
    r.send(&encode(&[
        "XREAD", "BLOCK", "0", "STREAMS", "other", "s", "0", "$",
    ]))
    .await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["XADD", "s", "2-1", "f", "new"]).await;
    assert_eq!(
        r.read().await,
        read_reply("s", vec![entry("2-1", "f", "new")])
    );
    blocked(&mut admin, 0).await;
    // Nothing new before the timeout: a null array.
    assert_eq!(
        r.text(&["XREAD", "BLOCK", "20", "STREAMS", "s", "$"]).await,
        "*-1\r\n"
    );
    r.cmd(&["HELLO", "3"]).await;
    assert_eq!(
        r.text(&["XREAD", "BLOCK", "20", "STREAMS", "s", "$"]).await,
        "_\r\n"
    );
    // Served at once when there is something after the ID, in RESP3 as a map.
    assert_eq!(
        r.cmd(&["XREAD", "BLOCK", "0", "COUNT", "1", "STREAMS", "s", "0"])
            .await,
        V::Map(vec![(V::s("s"), V::Arr(vec![entry("1-1", "f", "old")]))])
    );
    for (args, err) in [
        (
            vec!["XREAD", "BLOCK", "-1", "STREAMS", "s", "$"],
            "-ERR timeout is negative\r\n",
        ),
        (
            vec!["XREAD", "BLOCK", "x", "STREAMS", "s", "$"],
            "-ERR timeout is not an integer or out of range\r\n",
        ),
    ] {
        assert_eq!(admin.text(&args).await, err, "{args:?}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn xreadgroup_block_serves_one_consumer_per_entry() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    admin
        .cmd(&["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"])
        .await;
    let mut a = srv.raw().await;
    let mut b = srv.raw().await;
    let read = |c: &str| {
        encode(&[
            "XREADGROUP",
            "GROUP",
            "g",
            c,
            "BLOCK",
            "0",
            "STREAMS",
            "q",
            ">",
        ])
    };
    a.send(&read("alice")).await;
    blocked(&mut admin, 1).await;
    b.send(&read("bob")).await;
    blocked(&mut admin, 2).await;
    admin.cmd(&["XADD", "q", "1-0", "job", "1"]).await;
    assert_eq!(
        a.read().await,
        read_reply("q", vec![entry("1-0", "job", "1")])
    );
    blocked(&mut admin, 1).await;
    admin.cmd(&["XADD", "q", "2-0", "job", "2"]).await;
    assert_eq!(
        b.read().await,
        read_reply("q", vec![entry("2-0", "job", "2")])
    );
    // Each entry is pending for the consumer that got it.
    assert_eq!(
        admin.text(&["XPENDING", "q", "g"]).await,
        "*4\r\n:2\r\n$3\r\n1-0\r\n$3\r\n2-0\r\n*2\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n*2\r\n$3\r\nbob\r\n$1\r\n1\r\n"
    );
    // NOACK: delivered, not pending.
    a.send(&encode(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "NOACK",
        "BLOCK",
        "0",
        "STREAMS",
        "q",
        ">",
    ]))
    .await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["XADD", "q", "3-0", "job", "3"]).await;
    assert_eq!(
        a.read().await,
        read_reply("q", vec![entry("3-0", "job", "3")])
    );
    assert_eq!(
        admin.cmd(&["XPENDING", "q", "g"]).await.as_arr()[0],
        V::Int(2)
    );
    // A destroyed group and a deleted key end the waits with Redis's errors.
    a.send(&read("alice")).await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["XGROUP", "DESTROY", "q", "g"]).await;
    assert_eq!(
        String::from_utf8_lossy(&a.reply().await),
        "-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
    admin.cmd(&["XGROUP", "CREATE", "q", "g", "$"]).await;
    b.send(&read("bob")).await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["DEL", "q"]).await;
    assert_eq!(
        String::from_utf8_lossy(&b.reply().await),
        "-UNBLOCKED the stream key no longer exists\r\n"
    );
    blocked(&mut admin, 0).await;
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn idle_times_and_claims_follow_the_paused_clock() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"])
        .await;
    for i in 1..=3 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "f", "v"]).await;
    }
    c.cmd(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"])
        .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pending = c.cmd(&["XPENDING", "s", "g", "-", "+", "10"]).await;
    assert_eq!(
        pending.as_arr()[0],
        V::Arr(vec![V::s("1-0"), V::s("alice"), V::Int(10_000), V::Int(1)])
    );
    assert_eq!(
        c.cmd(&["XPENDING", "s", "g", "IDLE", "10001", "-", "+", "10"])
            .await,
        V::Arr(vec![])
    );
    // Claim what has been idle 5 s, two at a time: a cursor to go on from.
    assert_eq!(
        c.cmd(&[
            "XAUTOCLAIM",
            "s",
            "g",
            "bob",
            "5000",
            "0",
            "COUNT",
            "2",
            "JUSTID"
        ])
        .await,
        V::Arr(vec![V::s("3-0"), V::strs(&["1-0", "2-0"]), V::Arr(vec![])])
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Just claimed: idle 1 s, not 5.
    assert_eq!(
        c.cmd(&[
            "XCLAIM", "s", "g", "carol", "5000", "1-0", "2-0", "3-0", "JUSTID"
        ])
        .await,
        V::strs(&["3-0"])
    );
    let consumers = c.cmd(&["XINFO", "CONSUMERS", "s", "g"]).await;
    let idle: Vec<i64> = consumers
        .as_arr()
        .iter()
        .map(|m| match m {
            V::Arr(kv) => kv[5].as_int(),
            V::Map(kv) => kv[2].1.as_int(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(idle, vec![11_000, 1_000, 0], "alice, bob, carol");
    // A deleted entry is dropped from the PEL and reported.
    c.cmd(&["XDEL", "s", "3-0"]).await;
    assert_eq!(
        c.cmd(&["XAUTOCLAIM", "s", "g", "bob", "0", "0"]).await,
        V::Arr(vec![
            V::s("0-0"),
            V::Arr(vec![entry("1-0", "f", "v"), entry("2-0", "f", "v")]),
            V::strs(&["3-0"]),
        ])
    );
    srv.stop().await;
}

#[tokio::test]
async fn memory_is_accounted_and_events_raised() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Et"])
        .await;
    let mut sub = srv.raw().await;
    sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:x*"]).await;
    c.cmd(&["XADD", "s", "1-0", "f", "v"]).await;
    let small = c.cmd(&["MEMORY", "USAGE", "s"]).await.as_int();
    let used0 = info_int(c.cmd(&["INFO", "memory"]).await.as_str(), "used_memory");
    for i in 2..1000 {
        c.cmd(&["XADD", "s", &format!("{i}-0"), "field", &"x".repeat(100)])
            .await;
    }
    let big = c.cmd(&["MEMORY", "USAGE", "s"]).await.as_int();
    assert!(big > small + 100_000, "{small} -> {big}");
    let used1 = info_int(c.cmd(&["INFO", "memory"]).await.as_str(), "used_memory");
    assert!(used1 > used0 + 100_000, "{used0} -> {used1}");
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "s"]).await, V::s("stream"));
    assert_eq!(c.cmd(&["TYPE", "s"]).await, V::s("stream"));
    c.cmd(&["XTRIM", "s", "MAXLEN", "0"]).await;
    let trimmed = c.cmd(&["MEMORY", "USAGE", "s"]).await.as_int();
    assert!(trimmed < small + 200, "{small} -> {trimmed}");
    assert_eq!(
        c.cmd(&["EXISTS", "s"]).await,
        V::Int(1),
        "an empty stream stays"
    );
    c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]).await;
    // 999 XADDs, the XTRIM, XGROUP CREATE.
    let mut events = Vec::new();
    for _ in 0..1001 {
        if let V::Arr(m) = sub.read().await
            && let Some(V::Str(e)) = m.get(2)
        {
            events.push(e.clone());
        }
    }
    let first = events.first().cloned();
    assert_eq!(first.as_deref(), Some("__keyevent@0__:xadd"));
    assert!(
        events.iter().any(|e| e == "__keyevent@0__:xtrim"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("__keyevent@0__:xgroup-create")
    );
    srv.stop().await;
}

/// redis-py's consumer-group worker loop (XREADGROUP BLOCK, XACK, XAUTOCLAIM) directly on a
/// shard (`proxy/tests/clients/redis_py_streams.py`; the proxy's tests run it through the
/// proxy). Skipped with a notice when no Python can `import redis`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_consumer_group_worker_loop() {
    let Some(python) = shard::testing::python::redis_py("redis_py_consumer_group_worker_loop")
    else {
        return;
    };
    let srv = TestShard::default().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proxy/tests/clients/redis_py_streams.py"
    );
    let port = srv.addr.port().to_string();
    shard::testing::python::run_ok(python, &[script, &port]).await;
    srv.stop().await;
}
