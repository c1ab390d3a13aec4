//! Blocking list commands: clients served first come first served by the write that makes a
//! key ready, timeouts, CLIENT UNBLOCK, pipelines behind a blocked command, type changes and
//! disconnects while waiting.

use std::time::Duration;

use shard::testing::{Raw, TestShard, V, encode, info_int};

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

fn kv(k: &str, v: &str) -> V {
    V::strs(&[k, v])
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut c = srv.raw().await;
        c.send(&encode(&["BLPOP", "q", "0"])).await;
        blocked(&mut admin, i + 1).await;
        waiters.push(c);
    }
    // One push of two elements serves the two oldest waiters, in order, before anyone else.
    assert_eq!(
        admin.cmd(&["RPUSH", "q", "a", "b"]).await,
        V::Int(2),
        "RPUSH replies with the length it made"
    );
    assert_eq!(waiters[0].read().await, kv("q", "a"));
    assert_eq!(waiters[1].read().await, kv("q", "b"));
    assert_eq!(admin.cmd(&["LLEN", "q"]).await, V::Int(0));
    blocked(&mut admin, 1).await;
    assert_eq!(admin.cmd(&["LPUSH", "q", "c"]).await, V::Int(1));
    assert_eq!(waiters[2].read().await, kv("q", "c"));
    blocked(&mut admin, 0).await;
    srv.stop().await;
}

#[tokio::test]
async fn the_ready_key_among_several_is_served() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut w = srv.raw().await;
    w.send(&encode(&["BRPOP", "a", "b", "0"])).await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["RPUSH", "b", "1", "2"]).await;
    assert_eq!(w.read().await, kv("b", "2"));
    // Ready at once: the first non-empty key in argument order.
    admin.cmd(&["RPUSH", "a", "x"]).await;
    assert_eq!(
        w.cmd(&["BLPOP", "nothing", "b", "a", "0"]).await,
        kv("b", "1")
    );
    assert_eq!(
        w.cmd(&["BLMPOP", "0", "2", "nothing", "a", "RIGHT", "COUNT", "5"])
            .await,
        V::Arr(vec![V::s("a"), V::strs(&["x"])])
    );
    srv.stop().await;
}

#[tokio::test]
async fn blmove_chains_to_the_clients_waiting_on_its_destination() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut mover = srv.raw().await;
    mover
        .send(&encode(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]))
        .await;
    blocked(&mut admin, 1).await;
    let mut popper = srv.raw().await;
    popper.send(&encode(&["BLPOP", "dst", "0"])).await;
    blocked(&mut admin, 2).await;
    admin.cmd(&["RPUSH", "src", "e"]).await;
    assert_eq!(mover.read().await, V::s("e"));
    assert_eq!(popper.read().await, kv("dst", "e"));
    assert_eq!(admin.cmd(&["EXISTS", "src", "dst"]).await, V::Int(0));
    srv.stop().await;
}

#[tokio::test]
async fn timeouts_reply_null_in_the_clients_protocol() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    assert_eq!(c.text(&["BLPOP", "k", "0.01"]).await, "*-1\r\n");
    assert_eq!(
        c.text(&["BLMPOP", "0.01", "1", "k", "LEFT"]).await,
        "*-1\r\n"
    );
    assert_eq!(
        c.text(&["BLMOVE", "k", "d", "LEFT", "LEFT", "0.01"]).await,
        "*-1\r\n",
        "a null array, as Redis 7 answers"
    );
    assert_eq!(c.text(&["BRPOPLPUSH", "k", "d", "0.01"]).await, "*-1\r\n");
    c.cmd(&["HELLO", "3"]).await;
    assert_eq!(c.text(&["BRPOP", "k", "0.01"]).await, "_\r\n");
    assert_eq!(c.text(&["BRPOPLPUSH", "k", "d", "0.01"]).await, "_\r\n");
    for (t, e) in [
        ("-1", "-ERR timeout is negative\r\n"),
        ("abc", "-ERR timeout is not a float or out of range\r\n"),
        ("nan", "-ERR timeout is not a float or out of range\r\n"),
    ] {
        assert_eq!(c.text(&["BLPOP", "k", t]).await, e, "{t}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn client_unblock_ends_a_wait_as_a_timeout_or_an_error() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut w = srv.raw().await;
    let id = w.cmd(&["CLIENT", "ID"]).await.as_int().to_string();
    w.send(&encode(&["BLPOP", "k", "0"])).await;
    blocked(&mut admin, 1).await;
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).await, V::Int(1));
    assert_eq!(
        w.text(&["PING"]).await,
        "*-1\r\n",
        "the timeout reply first"
    );
    assert_eq!(w.read().await, V::s("PONG"));
    w.send(&encode(&["BLMOVE", "k", "d", "LEFT", "LEFT", "0"]))
        .await;
    blocked(&mut admin, 1).await;
    assert_eq!(
        admin.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]).await,
        V::Int(1)
    );
    assert_eq!(
        w.read().await,
        V::Err("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
    );
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).await, V::Int(0));
    assert_eq!(
        admin.text(&["CLIENT", "UNBLOCK", &id, "LATER"]).await,
        "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_pipeline_behind_a_blocked_command_waits_for_it() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut w = srv.raw().await;
    let mut req = encode(&["BLPOP", "k", "0"]);
    req.extend(encode(&["LLEN", "k"]));
    req.extend(encode(&["PING"]));
    w.send(&req).await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["RPUSH", "k", "1", "2"]).await;
    assert_eq!(w.read().await, kv("k", "1"));
    assert_eq!(w.read().await, V::Int(1), "LLEN ran after the pop");
    assert_eq!(w.read().await, V::s("PONG"));
    srv.stop().await;
}

#[tokio::test]
async fn type_changes_and_disconnects_while_waiting() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    admin.cmd(&["SET", "s", "x"]).await;
    let mut w = srv.raw().await;
    assert_eq!(
        w.text(&["BLPOP", "s", "0"]).await,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        "a key of another type is an error at once"
    );
    w.send(&encode(&["BLPOP", "k", "0"])).await;
    blocked(&mut admin, 1).await;
    // Another type under the key: the client keeps waiting (Redis 7.0).
    admin.cmd(&["SET", "k", "string"]).await;
    admin.cmd(&["DEL", "k"]).await;
    blocked(&mut admin, 1).await;
    admin.cmd(&["RPUSH", "k", "v"]).await;
    assert_eq!(w.read().await, kv("k", "v"));
    // A waiter that disconnects takes nothing with it.
    let mut gone = srv.raw().await;
    gone.send(&encode(&["BLPOP", "k2", "0"])).await;
    blocked(&mut admin, 1).await;
    drop(gone);
    blocked(&mut admin, 0).await;
    admin.cmd(&["RPUSH", "k2", "kept"]).await;
    assert_eq!(
        admin.cmd(&["LRANGE", "k2", "0", "-1"]).await,
        V::strs(&["kept"])
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_served_pop_invalidates_tracked_keys() {
    let srv = TestShard::default().await;
    let mut reader = srv.raw().await;
    reader.cmd(&["HELLO", "3"]).await;
    reader.cmd(&["CLIENT", "TRACKING", "on"]).await;
    let mut admin = srv.raw().await;
    let mut w = srv.raw().await;
    w.send(&encode(&["BLPOP", "k", "0"])).await;
    blocked(&mut admin, 1).await;
    assert_eq!(reader.cmd(&["LLEN", "k"]).await, V::Int(0));
    admin.cmd(&["RPUSH", "k", "v"]).await;
    assert_eq!(w.read().await, kv("k", "v"));
    assert_eq!(
        reader.read().await,
        V::Arr(vec![V::s("invalidate"), V::strs(&["k"])])
    );
    srv.stop().await;
}

#[tokio::test]
async fn sorted_set_pops_block_until_a_zadd() {
    let srv = TestShard::default().await;
    let mut admin = srv.raw().await;
    let mut min = srv.raw().await;
    min.send(&encode(&["BZPOPMIN", "z", "0"])).await;
    blocked(&mut admin, 1).await;
    let mut multi = srv.raw().await;
    multi.cmd(&["HELLO", "3"]).await;
    multi
        .send(&encode(&[
            "BZMPOP", "0", "2", "y", "z", "MAX", "COUNT", "5",
        ]))
        .await;
    blocked(&mut admin, 2).await;
    // One ZADD: the oldest waiter takes the lowest member, the next one what is left.
    assert_eq!(
        admin
            .cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c"])
            .await,
        V::Int(3)
    );
    assert_eq!(min.read().await, V::strs(&["z", "a", "1"]));
    assert_eq!(
        multi.read().await,
        V::Arr(vec![
            V::s("z"),
            V::Arr(vec![
                V::Arr(vec![V::s("c"), V::Dbl(3.0)]),
                V::Arr(vec![V::s("b"), V::Dbl(2.0)]),
            ]),
        ]),
        "a RESP3 client gets doubles"
    );
    assert_eq!(admin.cmd(&["EXISTS", "z"]).await, V::Int(0));
    assert_eq!(admin.text(&["BZPOPMAX", "z", "0.01"]).await, "*-1\r\n");
    srv.stop().await;
}
