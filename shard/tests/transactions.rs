//! MULTI/EXEC/DISCARD/WATCH/UNWATCH: a differential test against a real `redis-server` with
//! two connections per server (one runs transactions, the other changes watched keys), then
//! atomicity under concurrent clients, the redis crate's WATCH retry loop, blocked clients
//! served after EXEC, and transactions on warm-tier keys.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential test when it is missing.

use std::time::Duration;

use shard::testing::{Raw, TestShard, V, redis_server};

/// Operations per differential run.
const OPS: usize = 10_000;

const KEYS: [&str; 5] = ["a", "b", "c", "l", "s"];

/// One random step: which connection sends it (false: the transaction's), and the command.
fn step(rng: &mut fastrand::Rng, n: usize) -> (bool, Vec<String>) {
    let mut key = || KEYS[rng.usize(..KEYS.len())].to_string();
    let (k, k2) = (key(), key());
    let v = format!("v{n}");
    let m = format!("m{}", rng.u8(..4));
    let (choice, watch_two, flush) = (rng.u8(..100), rng.bool(), rng.u8(..10) == 0);
    let other = rng.u8(..100) < 20;
    let s = |x: &[&str]| x.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let args = match choice {
        0..=9 => s(&["MULTI"]),
        10..=17 => s(&["EXEC"]),
        18..=19 => s(&["DISCARD"]),
        20..=25 if watch_two => vec!["WATCH".into(), k, k2],
        20..=25 => vec!["WATCH".into(), k],
        26 => s(&["UNWATCH"]),
        27..=34 => vec!["SET".into(), k, v],
        35..=40 => vec!["GET".into(), k],
        41..=46 => vec!["INCR".into(), k],
        47..=50 => vec!["DEL".into(), k],
        51..=56 => vec!["LPUSH".into(), k, v],
        57..=60 => vec!["LPOP".into(), k],
        61..=65 => vec!["SADD".into(), k, m],
        66..=68 => vec!["SCARD".into(), k],
        69..=72 => vec!["HSET".into(), k, "f".into(), v],
        73..=75 => vec!["EXISTS".into(), k, k2],
        76..=78 => vec!["MGET".into(), k, k2],
        79..=80 => vec!["SET".into(), k],
        81 => s(&["NOSUCHCOMMAND", "x"]),
        82..=84 => vec!["EXPIRE".into(), k, "100".into()],
        85..=86 => vec!["TTL".into(), k],
        87..=88 => vec!["APPEND".into(), k, "x".into()],
        89..=90 => vec!["RENAME".into(), k, k2],
        91..=92 => vec!["SREM".into(), k, m],
        93..=94 => vec!["BLPOP".into(), k, "0".into()],
        95 if flush => s(&["FLUSHALL"]),
        95..=96 => vec!["LRANGE".into(), k, "0".into(), "-1".into()],
        _ => vec!["TYPE".into(), k],
    };
    // The other connection never blocks (it is not in a transaction) and never sends
    // transaction commands: it only changes keys.
    let blocking = args[0] == "BLPOP";
    let tx = ["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"].contains(&args[0].as_str());
    (other && !tx && !blocking, args)
}

/// What the transaction's connection may send without blocking: BLPOP only inside MULTI.
fn sendable(in_multi: bool, args: &[String]) -> bool {
    args[0] != "BLPOP" || in_multi
}

async fn differential(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let (mut want, mut want_other) = (
        Raw::connect(redis.addr).await,
        Raw::connect(redis.addr).await,
    );
    let (mut got, mut got_other) = (srv.raw().await, srv.raw().await);
    for name in ["multi", "exec", "discard", "watch", "unwatch"] {
        let info = ["COMMAND", "INFO", name];
        assert_eq!(got.text(&info).await, want.text(&info).await, "{info:?}");
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut history: std::collections::VecDeque<String> = Default::default();
    let (mut in_multi, mut execs, mut nulls, mut aborts) = (false, 0, 0, 0);
    let mut i = 0;
    while i < OPS {
        let (other, args) = step(&mut rng, i);
        if !other && !sendable(in_multi, &args) {
            continue;
        }
        i += 1;
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (w, g) = if other {
            (&mut want_other, &mut got_other)
        } else {
            (&mut want, &mut got)
        };
        let expected = w.text(&a).await;
        let actual = g.text(&a).await;
        history.push_back(format!(
            "{} {a:?} -> {expected:?}",
            if other { "other" } else { "tx   " }
        ));
        if history.len() > 40 {
            history.pop_front();
        }
        assert_eq!(
            actual,
            expected,
            "op {i} (seed {seed:#x}) differs; the last operations:\n{}",
            history.iter().cloned().collect::<Vec<_>>().join("\n")
        );
        if !other {
            match a[0] {
                "MULTI" => in_multi = true,
                "EXEC" | "DISCARD" if in_multi => {
                    in_multi = false;
                    if a[0] == "EXEC" {
                        execs += 1;
                        nulls += usize::from(expected == "*-1\r\n");
                        aborts += usize::from(expected.starts_with("-EXECABORT"));
                    }
                }
                _ => {}
            }
        }
    }
    eprintln!("{OPS} operations: {execs} EXECs, {nulls} failed on a watched key, {aborts} aborted");
    assert!(
        execs > OPS / 50 && nulls > 10 && aborts > 10,
        "{execs} {nulls} {aborts}"
    );
    for k in KEYS {
        assert_eq!(got.text(&["TYPE", k]).await, want.text(&["TYPE", k]).await);
    }
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential(TestShard::default().await, 0x7a11).await;
}

#[tokio::test]
async fn differential_against_redis_warm_tier() {
    differential(TestShard::tiny_warm().await, 0x7a12).await;
}

/// No other client's command runs between a transaction's commands: a reader never sees
/// `a` and `b` differ while writers increment both in transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_is_atomic_against_concurrent_clients() {
    let srv = TestShard::default().await;
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut c = srv.redis().await;
        writers.push(tokio::spawn(async move {
            for _ in 0..300 {
                let (_, _): (i64, i64) = redis::pipe()
                    .atomic()
                    .incr("a", 1)
                    .incr("b", 1)
                    .query_async(&mut c)
                    .await
                    .expect("transaction");
            }
        }));
    }
    let mut reader = srv.redis().await;
    let mut reads = 0;
    while writers.iter().any(|w| !w.is_finished()) && reads < 20_000 {
        let (a, b): (Option<i64>, Option<i64>) = redis::cmd("MGET")
            .arg("a")
            .arg("b")
            .query_async(&mut reader)
            .await
            .expect("mget");
        assert_eq!(a, b, "a reader saw half a transaction");
        reads += 1;
    }
    for w in writers {
        w.await.expect("writer");
    }
    let (a, b): (i64, i64) = redis::cmd("MGET")
        .arg("a")
        .arg("b")
        .query_async(&mut reader)
        .await
        .expect("mget");
    assert_eq!((a, b), (1200, 1200));
    srv.stop().await;
}

/// The redis crate's optimistic-locking helper (WATCH, read, MULTI/EXEC, retry on a null
/// EXEC) counts exactly under contention.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_retry_loop_counts_exactly() {
    let srv = TestShard::default().await;
    let url = srv.url();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let client = redis::Client::open(url).expect("client");
            let mut con = client.get_connection().expect("connect");
            let mut retries = 0u32;
            for _ in 0..100 {
                let _: () = redis::transaction(&mut con, &["counter"], |con, pipe| {
                    let n: Option<i64> = redis::cmd("GET").arg("counter").query(con)?;
                    let r: Option<()> = pipe
                        .set("counter", n.unwrap_or(0) + 1)
                        .ignore()
                        .query(con)?;
                    if r.is_none() {
                        retries += 1;
                    }
                    Ok(r)
                })
                .expect("transaction");
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.expect("task");
    }
    let mut c = srv.redis().await;
    let n: i64 = redis::cmd("GET")
        .arg("counter")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(n, 400, "{retries} retries");
    srv.stop().await;
}

/// A client blocked on a key a transaction pushes to and pops from is served after EXEC (with
/// what is left), as in Redis; a blocking command inside EXEC does not block.
#[tokio::test]
async fn blocked_clients_are_served_after_exec() {
    let srv = TestShard::default().await;
    let mut waiter = srv.raw().await;
    waiter
        .send(&shard::testing::encode(&["BLPOP", "q", "0"]))
        .await;
    let mut c = srv.raw().await;
    // Wait until the shard has registered the waiter.
    for _ in 0..200 {
        let info = c.text(&["INFO", "clients"]).await;
        if shard::testing::info_int(&info, "blocked_clients") == 1 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    for cmd in [
        &["RPUSH", "q", "x", "y"][..],
        &["LPOP", "q"],
        &["BLPOP", "empty", "0"],
    ] {
        assert_eq!(c.cmd(cmd).await, V::s("QUEUED"));
    }
    assert_eq!(
        c.text(&["EXEC"]).await,
        "*3\r\n:2\r\n$1\r\nx\r\n*-1\r\n",
        "the transaction pops first; BLPOP inside EXEC answers at once"
    );
    assert_eq!(waiter.read().await, V::strs(&["q", "y"]));
    srv.stop().await;
}

/// WATCH: a change by another client fails EXEC with a null array, FLUSHALL only when the key
/// existed, a key moving to the warm tier and back is no change, and the slot moving away is.
#[tokio::test]
async fn watch_sees_changes_but_not_tier_moves() {
    // maxmemory 1 byte: every key is demoted to the warm tier as soon as it is released.
    let srv = TestShard::tiny_warm().await;
    let mut c = srv.raw().await;
    let mut other = srv.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "1"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["WATCH", "k"]).await, V::s("OK"));
    // Reading `k` loads it into RAM and returns it to the warm tier.
    assert_eq!(other.cmd(&["GET", "k"]).await, V::s("1"));
    assert_eq!(other.cmd(&["SET", "unrelated", "x"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["INCR", "k"]).await, V::s("QUEUED"));
    assert_eq!(
        c.text(&["EXEC"]).await,
        "*1\r\n:2\r\n",
        "tier moves are no change"
    );

    assert_eq!(c.cmd(&["WATCH", "k", "missing"]).await, V::s("OK"));
    assert_eq!(other.cmd(&["DEL", "missing"]).await, V::Int(0));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("QUEUED"));
    assert_eq!(
        c.text(&["EXEC"]).await,
        "*1\r\n$1\r\n2\r\n",
        "deleting a missing key is no change"
    );

    assert_eq!(c.cmd(&["WATCH", "k"]).await, V::s("OK"));
    assert_eq!(other.cmd(&["INCR", "k"]).await, V::Int(3));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["INCR", "k"]).await, V::s("QUEUED"));
    assert_eq!(c.text(&["EXEC"]).await, "*-1\r\n");

    assert_eq!(c.cmd(&["WATCH", "nothing"]).await, V::s("OK"));
    assert_eq!(other.cmd(&["FLUSHALL"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(
        c.text(&["EXEC"]).await,
        "*0\r\n",
        "FLUSHALL left a missing key alone"
    );
    assert_eq!(c.cmd(&["SET", "k", "1"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["WATCH", "k"]).await, V::s("OK"));
    assert_eq!(other.cmd(&["FLUSHALL"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.text(&["EXEC"]).await, "*-1\r\n");

    // Expiry is a change.
    assert_eq!(c.cmd(&["SET", "t", "1", "PX", "30"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["WATCH", "t"]).await, V::s("OK"));
    while other.cmd(&["EXISTS", "t"]).await == V::Int(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(c.text(&["EXEC"]).await, "*-1\r\n");
    srv.stop().await;
}
