//! Blocking commands through the proxy: each waits on a backend connection of its own, so
//! other clients' requests never queue behind it; its own client's later requests do (as on
//! Redis); `blocking-connections` bounds them with a clear error; a client that goes away
//! ends its wait on the shard.

mod common;

use std::time::Duration;

use common::*;

/// Waits until `shard` counts `n` blocked clients.
async fn blocked_on(shard: &TestShard, n: u64) {
    let mut c = shard.raw().await;
    for _ in 0..1000 {
        let info = c.cmd(&["INFO", "clients"]).await;
        if info_int(info.as_str(), "blocked_clients") == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the shard never had {n} blocked clients");
}

fn kv(k: &str, v: &str) -> V {
    V::strs(&[k, v])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_holds_up_no_one_else() {
    let shard = TestShard::default().await;
    let proxy = Proxy::over(std::slice::from_ref(&shard)).await;
    let mut waiter = proxy.raw().await;
    waiter.send(&encode(&["BLPOP", "q", "0"])).await;
    blocked_on(&shard, 1).await;
    // Other clients' pipelines go through while it waits.
    let mut other = proxy.raw().await;
    let mut req = Vec::new();
    for i in 0..100 {
        req.extend(encode(&["SET", &format!("k{i}"), "v"]));
        req.extend(encode(&["GET", &format!("k{i}")]));
    }
    other.send(&req).await;
    for _ in 0..100 {
        assert_eq!(other.read().await, V::s("OK"));
        assert_eq!(other.read().await, V::s("v"));
    }
    assert_eq!(other.cmd(&["RPUSH", "q", "x"]).await, V::Int(1));
    assert_eq!(waiter.read().await, kv("q", "x"));
    assert_eq!(waiter.cmd(&["PING"]).await, V::s("PONG"));
    proxy.stop().await;
    shard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_pipeline_stays_in_order_around_a_blocking_command() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    let mut req = encode(&["RPUSH", "{t}q", "a"]);
    req.extend(encode(&["BLPOP", "{t}q", "0"]));
    req.extend(encode(&["BLMOVE", "{t}q", "{t}d", "LEFT", "RIGHT", "0.05"]));
    req.extend(encode(&["RPUSH", "{t}q", "b"]));
    req.extend(encode(&["BRPOPLPUSH", "{t}q", "{t}d", "0"]));
    req.extend(encode(&["LRANGE", "{t}d", "0", "-1"]));
    c.send(&req).await;
    assert_eq!(c.read().await, V::Int(1));
    assert_eq!(
        c.read().await,
        kv("{t}q", "a"),
        "the push before it ran first"
    );
    assert_eq!(
        c.read().await,
        V::Nil,
        "timed out: the push after it had not run"
    );
    assert_eq!(c.read().await, V::Int(1));
    assert_eq!(c.read().await, V::s("b"));
    assert_eq!(c.read().await, V::strs(&["b"]));
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_connections_are_bounded_and_released() {
    let shard = TestShard::default().await;
    let seeds = vec![shard.addr.to_string()];
    let proxy = Proxy::start(proxy::Config {
        blocking_connections: 1,
        ..config(&seeds)
    })
    .await;
    let mut first = proxy.raw().await;
    first.send(&encode(&["BRPOP", "q", "0"])).await;
    blocked_on(&shard, 1).await;
    let mut second = proxy.raw().await;
    assert_eq!(
        second.text(&["BLPOP", "q", "0"]).await,
        "-ERR 1 clients already wait in blocking commands through this proxy \
         (blocking-connections)\r\n"
    );
    // A client that goes away ends its wait on the shard and frees its connection.
    drop(first);
    blocked_on(&shard, 0).await;
    let mut got = None;
    for _ in 0..200 {
        let r = second.text(&["BLPOP", "q", "0.01"]).await;
        if !r.starts_with('-') {
            got = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(got.as_deref(), Some("*-1\r\n"), "the permit came back");
    assert_eq!(second.cmd(&["RPUSH", "q", "kept"]).await, V::Int(1));
    assert_eq!(
        second.cmd(&["LLEN", "q"]).await,
        V::Int(1),
        "nothing was taken"
    );
    proxy.stop().await;
    shard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_commands_across_slots_answer_crossslot() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::over(&shards).await;
    let mut c = proxy.raw().await;
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(c.text(&["BLPOP", "a", "b", "0"]).await, crossslot);
    assert_eq!(
        c.text(&["BLMOVE", "a", "b", "LEFT", "LEFT", "0"]).await,
        crossslot
    );
    assert_eq!(
        c.text(&["BLMPOP", "0", "2", "a", "b", "LEFT"]).await,
        crossslot
    );
    assert_eq!(
        c.text(&["BLMPOP", "0", "0", "a", "LEFT"]).await,
        "-ERR numkeys should be greater than 0\r\n"
    );
    assert_eq!(
        c.text(&["LMPOP", "2", "{x}a", "{x}b", "LEFT"]).await,
        "*-1\r\n"
    );
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}

/// XREAD and XREADGROUP through the proxy: with BLOCK on a connection of their own, woken by
/// an XADD from another client; without it, plain reads of one slot; several streams only in
/// one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_block_through_the_proxy() {
    let shards = vec![TestShard::default().await, TestShard::default().await];
    let proxy = Proxy::over(&shards).await;
    let mut admin = proxy.raw().await;
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(
        admin.text(&["XREAD", "STREAMS", "a", "b", "0", "0"]).await,
        crossslot
    );
    assert_eq!(
        admin
            .text(&["XREAD", "BLOCK", "0", "STREAMS", "a", "b", "0", "0"])
            .await,
        crossslot
    );
    assert_eq!(
        admin
            .text(&["XREAD", "STREAMS", "{s}a", "{s}b", "0", "0"])
            .await,
        "*-1\r\n"
    );
    admin
        .cmd(&["XGROUP", "CREATE", "{s}q", "g", "$", "MKSTREAM"])
        .await;
    let mut reader = proxy.raw().await;
    reader
        .send(&encode(&[
            "XREAD", "BLOCK", "0", "STREAMS", "{s}a", "{s}q", "$", "$",
        ]))
        .await;
    let mut worker = proxy.raw().await;
    worker
        .send(&encode(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "w1",
            "BLOCK",
            "0",
            "STREAMS",
            "{s}q",
            ">",
        ]))
        .await;
    // Both wait on the shard that owns the slot, on connections of their own.
    let mut waiting = 0;
    for _ in 0..1000 {
        waiting = 0;
        for s in &shards {
            let info = s.raw().await.cmd(&["INFO", "clients"]).await;
            waiting += info_int(info.as_str(), "blocked_clients");
        }
        if waiting == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(waiting, 2);
    assert_eq!(
        admin.text(&["XADD", "{s}q", "7-1", "job", "x"]).await,
        "$3\r\n7-1\r\n"
    );
    let entry = V::Arr(vec![V::s("7-1"), V::strs(&["job", "x"])]);
    let want = V::Arr(vec![V::Arr(vec![V::s("{s}q"), V::Arr(vec![entry])])]);
    assert_eq!(reader.read().await, want);
    assert_eq!(worker.read().await, want);
    assert_eq!(worker.cmd(&["XACK", "{s}q", "g", "7-1"]).await, V::Int(1));
    assert_eq!(
        reader
            .text(&["XREAD", "BLOCK", "10", "STREAMS", "{s}q", "$"])
            .await,
        "*-1\r\n"
    );
    proxy.stop().await;
    for s in shards {
        s.stop().await;
    }
}
