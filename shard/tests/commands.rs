//! Command semantics against an in-process shard, with Redis 7's replies and error texts.

/// Runs each listed suite twice: against the RAM tier alone, and with a warm tier and a RAM
/// budget so small that every key goes through redb. Both must answer identically.
macro_rules! both_tiers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn ram() {
                super::$name(shard::testing::TestShard::default().await).await
            }
            #[tokio::test]
            async fn warm() {
                super::$name(shard::testing::TestShard::tiny_warm().await).await
            }
        }
    )*};
}

both_tiers!(
    strings,
    keys_and_ttls,
    scan_walks_everything_once_with_filters,
    hashes,
    wrongtype_arity_and_unknown_commands,
    server_and_connection_commands,
    command_introspection
);

use shard::testing::{TestShard, V, assert_err};

async fn strings(srv: TestShard) {
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("v"));
    assert_eq!(c.cmd(&["SET", "k", "w", "NX"]).await, V::Nil);
    assert_eq!(c.cmd(&["SET", "new", "w", "XX"]).await, V::Nil);
    assert_eq!(c.cmd(&["SET", "k", "w", "XX", "GET"]).await, V::s("v"));
    assert_eq!(c.cmd(&["SET", "k", "x", "NX", "GET"]).await, V::s("w"));
    assert_err(
        &c.cmd(&["SET", "k", "x", "NX", "XX"]).await,
        "ERR syntax error",
    );
    assert_err(
        &c.cmd(&["SET", "k", "x", "EX", "0"]).await,
        "ERR invalid expire time in 'set' command",
    );
    assert_err(
        &c.cmd(&["SET", "k", "x", "EX", "1", "PX", "5"]).await,
        "ERR syntax error",
    );
    assert_err(
        &c.cmd(&["SET", "k", "x", "EX", "abc"]).await,
        "ERR value is not an integer or out of range",
    );
    assert_eq!(c.cmd(&["SET", "t", "1", "EX", "100"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["SET", "t", "2", "KEEPTTL"]).await, V::s("OK"));
    assert!((99..=100).contains(&c.cmd(&["TTL", "t"]).await.as_int()));
    assert_eq!(c.cmd(&["SET", "t", "3"]).await, V::s("OK"));
    assert_eq!(
        c.cmd(&["TTL", "t"]).await,
        V::Int(-1),
        "plain SET clears the TTL"
    );

    assert_eq!(c.cmd(&["SETNX", "k", "y"]).await, V::Int(0));
    assert_eq!(c.cmd(&["SETNX", "k2", "y"]).await, V::Int(1));
    assert_eq!(c.cmd(&["SETEX", "se", "10", "v"]).await, V::s("OK"));
    assert!((9_000..=10_000).contains(&c.cmd(&["PTTL", "se"]).await.as_int()));
    assert_err(
        &c.cmd(&["SETEX", "se", "-1", "v"]).await,
        "ERR invalid expire time in 'setex' command",
    );
    assert_eq!(c.cmd(&["PSETEX", "pse", "10000", "v"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GETSET", "k2", "z"]).await, V::s("y"));
    assert_eq!(c.cmd(&["GETDEL", "k2"]).await, V::s("z"));
    assert_eq!(c.cmd(&["EXISTS", "k2"]).await, V::Int(0));
    assert_eq!(
        c.cmd(&["GETEX", "k", "EX", "50"]).await,
        V::s("w"),
        "SET NX did not overwrite"
    );
    assert_eq!(c.cmd(&["TTL", "k"]).await, V::Int(50));
    assert_eq!(c.cmd(&["GETEX", "k", "PERSIST"]).await, V::s("w"));
    assert_eq!(c.cmd(&["TTL", "k"]).await, V::Int(-1));

    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]).await, V::s("OK"));
    assert_err(
        &c.cmd(&["MSET", "a", "1", "b"]).await,
        "ERR wrong number of arguments for 'mset' command",
    );
    assert_eq!(
        c.cmd(&["MGET", "a", "nope", "b"]).await,
        V::Arr(vec![V::s("1"), V::Nil, V::s("2")])
    );
    assert_eq!(c.cmd(&["MSETNX", "a", "9", "c", "3"]).await, V::Int(0));
    assert_eq!(
        c.cmd(&["EXISTS", "c"]).await,
        V::Int(0),
        "MSETNX is all or nothing"
    );
    assert_eq!(c.cmd(&["MSETNX", "c", "3", "d", "4"]).await, V::Int(1));

    assert_eq!(c.cmd(&["INCR", "n"]).await, V::Int(1));
    assert_eq!(c.cmd(&["INCRBY", "n", "41"]).await, V::Int(42));
    assert_eq!(c.cmd(&["DECR", "n"]).await, V::Int(41));
    assert_eq!(c.cmd(&["DECRBY", "n", "1"]).await, V::Int(40));
    assert_err(
        &c.cmd(&["INCR", "k"]).await,
        "ERR value is not an integer or out of range",
    );
    assert_eq!(
        c.cmd(&["SET", "big", "9223372036854775807"]).await,
        V::s("OK")
    );
    assert_err(
        &c.cmd(&["INCR", "big"]).await,
        "ERR increment or decrement would overflow",
    );
    assert_err(
        &c.cmd(&["DECRBY", "n", "-9223372036854775808"]).await,
        "ERR increment or decrement would overflow",
    );
    assert_eq!(c.cmd(&["SET", "f", "10.5"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "0.1"]).await, V::s("10.6"));
    assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "-5.6"]).await, V::s("5"));
    assert_err(
        &c.cmd(&["INCRBYFLOAT", "f", "nan"]).await,
        "ERR value is not a valid float",
    );
    assert_err(
        &c.cmd(&["INCRBYFLOAT", "k", "1"]).await,
        "ERR value is not a valid float",
    );

    assert_eq!(c.cmd(&["APPEND", "s", "Hello"]).await, V::Int(5));
    assert_eq!(c.cmd(&["APPEND", "s", " World"]).await, V::Int(11));
    assert_eq!(c.cmd(&["STRLEN", "s"]).await, V::Int(11));
    assert_eq!(c.cmd(&["STRLEN", "nope"]).await, V::Int(0));
    assert_eq!(c.cmd(&["GETRANGE", "s", "0", "4"]).await, V::s("Hello"));
    assert_eq!(c.cmd(&["GETRANGE", "s", "-5", "-1"]).await, V::s("World"));
    assert_eq!(c.cmd(&["GETRANGE", "s", "5", "2"]).await, V::s(""));
    assert_eq!(
        c.cmd(&["GETRANGE", "s", "0", "100"]).await,
        V::s("Hello World")
    );
    assert_eq!(c.cmd(&["SETRANGE", "s", "6", "Redis"]).await, V::Int(11));
    assert_eq!(c.cmd(&["GET", "s"]).await, V::s("Hello Redis"));
    assert_eq!(c.cmd(&["SETRANGE", "pad", "3", "x"]).await, V::Int(4));
    assert_eq!(c.cmd(&["GET", "pad"]).await, V::s("\0\0\0x"));
    assert_err(
        &c.cmd(&["SETRANGE", "pad", "-1", "x"]).await,
        "ERR offset is out of range",
    );
    assert_err(
        &c.cmd(&["SETRANGE", "pad", "536870912", "x"]).await,
        "ERR string exceeds maximum allowed size",
    );
    srv.stop().await;
}

async fn keys_and_ttls(srv: TestShard) {
    let mut c = srv.raw().await;
    c.cmd(&["MSET", "a", "1", "b", "2", "c", "3"]).await;
    assert_eq!(c.cmd(&["EXISTS", "a", "a", "x"]).await, V::Int(2));
    assert_eq!(c.cmd(&["TOUCH", "a", "b", "x"]).await, V::Int(2));
    assert_eq!(c.cmd(&["DEL", "a", "x", "b"]).await, V::Int(2));
    assert_eq!(c.cmd(&["UNLINK", "c"]).await, V::Int(1));
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(0));

    c.cmd(&["SET", "k", "v"]).await;
    assert_eq!(c.cmd(&["TTL", "k"]).await, V::Int(-1));
    assert_eq!(c.cmd(&["TTL", "missing"]).await, V::Int(-2));
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "XX"]).await, V::Int(0));
    assert_eq!(
        c.cmd(&["EXPIRE", "k", "100", "GT"]).await,
        V::Int(0),
        "no TTL counts as infinite"
    );
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "NX"]).await, V::Int(1));
    assert_eq!(c.cmd(&["EXPIRE", "k", "200", "NX"]).await, V::Int(0));
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "GT"]).await, V::Int(0));
    assert_eq!(c.cmd(&["EXPIRE", "k", "200", "GT"]).await, V::Int(1));
    assert_eq!(c.cmd(&["EXPIRE", "k", "300", "LT"]).await, V::Int(0));
    assert_eq!(c.cmd(&["PEXPIRE", "k", "150000", "LT"]).await, V::Int(1));
    assert_eq!(c.cmd(&["TTL", "k"]).await, V::Int(150));
    assert_err(
        &c.cmd(&["EXPIRE", "k", "1", "NX", "XX"]).await,
        "ERR NX and XX, GT or LT options at the same time are not compatible",
    );
    assert_err(
        &c.cmd(&["EXPIRE", "k", "1", "GT", "LT"]).await,
        "ERR GT and LT options at the same time are not compatible",
    );
    assert_err(
        &c.cmd(&["EXPIRE", "k", "1", "FOO"]).await,
        "ERR Unsupported option FOO",
    );
    assert_err(
        &c.cmd(&["EXPIRE", "k", "9223372036854775807"]).await,
        "ERR invalid expire time in 'expire' command",
    );
    assert_eq!(c.cmd(&["EXPIREAT", "k", "4102444800"]).await, V::Int(1));
    assert_eq!(c.cmd(&["EXPIRETIME", "k"]).await, V::Int(4102444800));
    assert_eq!(c.cmd(&["PEXPIRETIME", "k"]).await, V::Int(4102444800000));
    assert_eq!(c.cmd(&["EXPIRETIME", "missing"]).await, V::Int(-2));
    assert_eq!(c.cmd(&["PERSIST", "k"]).await, V::Int(1));
    assert_eq!(c.cmd(&["PERSIST", "k"]).await, V::Int(0));
    assert_eq!(c.cmd(&["EXPIRETIME", "k"]).await, V::Int(-1));
    assert_eq!(
        c.cmd(&["EXPIRE", "k", "-1"]).await,
        V::Int(1),
        "a past expiry deletes"
    );
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, V::Int(0));
    assert_eq!(c.cmd(&["EXPIRE", "missing", "10"]).await, V::Int(0));

    c.cmd(&["SET", "s", "v"]).await;
    c.cmd(&["HSET", "h", "f", "v"]).await;
    assert_eq!(c.cmd(&["TYPE", "s"]).await, V::s("string"));
    assert_eq!(c.cmd(&["TYPE", "h"]).await, V::s("hash"));
    assert_eq!(c.cmd(&["TYPE", "nope"]).await, V::s("none"));

    c.cmd(&["SET", "src", "v", "EX", "100"]).await;
    assert_eq!(c.cmd(&["RENAME", "src", "dst"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["GET", "dst"]).await, V::s("v"));
    assert_eq!(
        c.cmd(&["TTL", "dst"]).await,
        V::Int(100),
        "RENAME keeps the TTL"
    );
    assert_err(&c.cmd(&["RENAME", "src", "dst"]).await, "ERR no such key");
    assert_eq!(c.cmd(&["RENAME", "dst", "dst"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["RENAMENX", "dst", "s"]).await, V::Int(0));
    assert_eq!(c.cmd(&["RENAMENX", "dst", "fresh"]).await, V::Int(1));

    let mut keys: Vec<String> = c
        .cmd(&["KEYS", "*"])
        .await
        .as_arr()
        .iter()
        .map(|v| v.as_str().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["fresh", "h", "s"]);
    assert_eq!(c.cmd(&["KEYS", "f*"]).await, V::strs(&["fresh"]));
    assert_eq!(c.cmd(&["KEYS", "[hs]"]).await.as_arr().len(), 2);
    let rk = c.cmd(&["RANDOMKEY"]).await;
    assert!(keys.contains(&rk.as_str().to_string()));
    c.cmd(&["FLUSHALL"]).await;
    assert_eq!(c.cmd(&["RANDOMKEY"]).await, V::Nil);
    srv.stop().await;
}

/// Runs a full SCAN iteration with `opts`; returns the keys and the number of calls.
async fn scan_all(addr: std::net::SocketAddr, opts: &[&str]) -> (Vec<String>, usize) {
    let mut c = shard::testing::Raw::connect(addr).await;
    let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend(opts.iter().copied());
        let r = c.cmd(&args).await;
        let parts = r.as_arr().to_vec();
        seen.extend(parts[1].as_arr().iter().map(|v| v.as_str().to_string()));
        cursor = parts[0].as_str().to_string();
        calls += 1;
        if cursor == "0" {
            return (seen, calls);
        }
    }
}

async fn scan_walks_everything_once_with_filters(srv: TestShard) {
    let mut c = srv.raw().await;
    let mut mset = vec!["MSET".to_string()];
    for i in 0..1000 {
        mset.push(format!("key:{i}"));
        mset.push("v".into());
    }
    let refs: Vec<&str> = mset.iter().map(String::as_str).collect();
    c.cmd(&refs).await;
    for i in 0..50 {
        c.cmd(&["HSET", &format!("hash:{i}"), "f", "v"]).await;
    }
    let (all, calls) = scan_all(srv.addr, &[]).await;
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 1050);
    assert_eq!(unique.len(), 1050, "every key exactly once");
    assert!(calls > 50, "COUNT 10 pages: {calls} calls");
    let (hashes, _) = scan_all(srv.addr, &["TYPE", "hash"]).await;
    assert_eq!(hashes.len(), 50);
    let (matched, _) = scan_all(srv.addr, &["MATCH", "key:1??", "COUNT", "100"]).await;
    assert_eq!(matched.len(), 100);
    assert_err(&c.cmd(&["SCAN", "abc"]).await, "ERR invalid cursor");
    assert_err(
        &c.cmd(&["SCAN", "0", "COUNT", "0"]).await,
        "ERR syntax error",
    );
    assert_err(&c.cmd(&["SCAN", "0", "MATCH"]).await, "ERR syntax error");
    srv.stop().await;
}

async fn hashes(srv: TestShard) {
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["HSET", "h", "a", "1", "b", "2"]).await, V::Int(2));
    assert_eq!(c.cmd(&["HSET", "h", "a", "10", "c", "3"]).await, V::Int(1));
    assert_err(
        &c.cmd(&["HSET", "h", "a"]).await,
        "ERR wrong number of arguments for 'hset' command",
    );
    assert_eq!(c.cmd(&["HMSET", "h", "d", "4"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["HSETNX", "h", "a", "x"]).await, V::Int(0));
    assert_eq!(c.cmd(&["HSETNX", "h", "e", "5"]).await, V::Int(1));
    assert_eq!(c.cmd(&["HGET", "h", "a"]).await, V::s("10"));
    assert_eq!(c.cmd(&["HGET", "h", "zz"]).await, V::Nil);
    assert_eq!(
        c.cmd(&["HMGET", "h", "a", "zz", "b"]).await,
        V::Arr(vec![V::s("10"), V::Nil, V::s("2")])
    );
    assert_eq!(c.cmd(&["HMGET", "nohash", "a"]).await, V::Arr(vec![V::Nil]));
    assert_eq!(c.cmd(&["HLEN", "h"]).await, V::Int(5));
    assert_eq!(c.cmd(&["HEXISTS", "h", "a"]).await, V::Int(1));
    assert_eq!(c.cmd(&["HSTRLEN", "h", "a"]).await, V::Int(2));
    assert_eq!(c.cmd(&["HINCRBY", "h", "a", "5"]).await, V::Int(15));
    assert_eq!(c.cmd(&["HINCRBY", "h", "new", "-3"]).await, V::Int(-3));
    assert_eq!(
        c.cmd(&["HINCRBYFLOAT", "h", "fl", "2.5"]).await,
        V::s("2.5")
    );
    c.cmd(&["HSET", "h", "word", "abc"]).await;
    assert_err(
        &c.cmd(&["HINCRBY", "h", "word", "1"]).await,
        "ERR hash value is not an integer",
    );
    assert_err(
        &c.cmd(&["HINCRBYFLOAT", "h", "word", "1"]).await,
        "ERR hash value is not a float",
    );
    let mut fields: Vec<String> = c
        .cmd(&["HKEYS", "h"])
        .await
        .as_arr()
        .iter()
        .map(|v| v.as_str().to_string())
        .collect();
    fields.sort();
    assert_eq!(fields, vec!["a", "b", "c", "d", "e", "fl", "new", "word"]);
    assert_eq!(c.cmd(&["HVALS", "h"]).await.as_arr().len(), 8);
    assert_eq!(
        c.cmd(&["HGETALL", "h"]).await.as_arr().len(),
        16,
        "RESP2 flattens the map"
    );
    let (_, page) = match c.cmd(&["HSCAN", "h", "0", "MATCH", "[ab]"]).await {
        V::Arr(v) => (v[0].clone(), v[1].clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(page.as_arr().len(), 4);
    let rf = c.cmd(&["HRANDFIELD", "h"]).await;
    assert!(fields.contains(&rf.as_str().to_string()));
    assert_eq!(c.cmd(&["HRANDFIELD", "h", "3"]).await.as_arr().len(), 3);
    assert_eq!(
        c.cmd(&["HRANDFIELD", "h", "100"]).await.as_arr().len(),
        8,
        "positive count: distinct fields"
    );
    assert_eq!(
        c.cmd(&["HRANDFIELD", "h", "-20"]).await.as_arr().len(),
        20,
        "negative count may repeat"
    );
    assert_eq!(
        c.cmd(&["HRANDFIELD", "h", "2", "WITHVALUES"])
            .await
            .as_arr()
            .len(),
        4
    );
    assert_eq!(c.cmd(&["HRANDFIELD", "nohash"]).await, V::Nil);
    assert_eq!(c.cmd(&["HDEL", "h", "a", "zz"]).await, V::Int(1));
    let all: Vec<&str> = vec!["HDEL", "h", "b", "c", "d", "e", "fl", "new", "word"];
    assert_eq!(c.cmd(&all).await, V::Int(7));
    assert_eq!(
        c.cmd(&["EXISTS", "h"]).await,
        V::Int(0),
        "a hash with no fields is deleted"
    );
    srv.stop().await;
}

async fn wrongtype_arity_and_unknown_commands(srv: TestShard) {
    let mut c = srv.raw().await;
    c.cmd(&["SET", "s", "v"]).await;
    c.cmd(&["HSET", "h", "f", "v"]).await;
    for args in [
        vec!["GET", "h"],
        vec!["APPEND", "h", "x"],
        vec!["INCR", "h"],
        vec!["STRLEN", "h"],
        vec!["GETDEL", "h"],
        vec!["SET", "h", "x", "GET"],
        vec!["HGET", "s", "f"],
        vec!["HSET", "s", "f", "v"],
        vec!["HGETALL", "s"],
        vec!["HLEN", "s"],
        vec!["HINCRBY", "s", "f", "1"],
    ] {
        assert_err(
            &c.cmd(&args).await,
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        );
    }
    assert_eq!(
        c.cmd(&["MGET", "s", "h"]).await,
        V::Arr(vec![V::s("v"), V::Nil]),
        "MGET answers nil for non-strings"
    );
    assert_eq!(
        c.cmd(&["SET", "h", "now-a-string"]).await,
        V::s("OK"),
        "SET overwrites any type"
    );
    assert_err(
        &c.cmd(&["GET"]).await,
        "ERR wrong number of arguments for 'get' command",
    );
    assert_err(
        &c.cmd(&["GET", "a", "b"]).await,
        "ERR wrong number of arguments for 'get' command",
    );
    assert_err(
        &c.cmd(&["CLIENT", "SETNAME"]).await,
        "ERR wrong number of arguments for 'client|setname' command",
    );
    assert_err(
        &c.cmd(&["CLIENT"]).await,
        "ERR wrong number of arguments for 'client' command",
    );
    assert_err(
        &c.cmd(&["CLIENT", "BOGUS"]).await,
        "ERR unknown subcommand 'BOGUS'. Try CLIENT|HELP.",
    );
    assert_eq!(
        c.cmd(&["FOO", "bar", "baz"]).await,
        V::Err("ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ".into())
    );
    assert_eq!(
        c.cmd(&["PING"]).await,
        V::s("PONG"),
        "the connection lives on"
    );
    srv.stop().await;
}

async fn server_and_connection_commands(srv: TestShard) {
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["PING", "hi"]).await, V::s("hi"));
    assert_eq!(c.cmd(&["ECHO", "x y"]).await, V::s("x y"));
    assert_eq!(c.cmd(&["SELECT", "0"]).await, V::s("OK"));
    assert_err(
        &c.cmd(&["SELECT", "1"]).await,
        "ERR DB index is out of range",
    );
    let time = c.cmd(&["TIME"]).await;
    assert!(time.as_arr()[0].as_str().parse::<u64>().expect("secs") > 1_700_000_000);

    let id = c.cmd(&["CLIENT", "ID"]).await.as_int();
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, V::Nil);
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "worker-1"]).await, V::s("OK"));
    assert_err(
        &c.cmd(&["CLIENT", "SETNAME", "bad name"]).await,
        "ERR Client names cannot contain spaces",
    );
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "mylib"]).await,
        V::s("OK")
    );
    assert_err(
        &c.cmd(&["CLIENT", "SETINFO", "COLOUR", "red"]).await,
        "ERR Unrecognized option 'COLOUR'",
    );
    let info = c.cmd(&["CLIENT", "INFO"]).await;
    assert!(info.as_str().contains(&format!("id={id} ")), "{info:?}");
    assert!(info.as_str().contains("name=worker-1 ") && info.as_str().contains("lib-name=mylib"));

    let mut other = srv.raw().await;
    let other_id = other.cmd(&["CLIENT", "ID"]).await.as_int();
    let list = c.cmd(&["CLIENT", "LIST"]).await;
    assert_eq!(list.as_str().lines().count(), 2);
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &other_id.to_string()])
            .await,
        V::Int(1)
    );
    assert!(other.is_closed().await, "killed client is disconnected");
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]).await,
        V::Int(0),
        "SKIPME defaults to yes"
    );
    assert_err(
        &c.cmd(&["CLIENT", "KILL", "1.2.3.4:5"]).await,
        "ERR No such client",
    );

    c.cmd(&["SET", "a", "1"]).await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(1));
    let info = c.cmd(&["INFO"]).await;
    for field in [
        "# Server",
        "redis_version:7.2.4",
        "tcp_port:",
        "# Clients",
        "connected_clients:1",
        "# Memory",
        "used_memory:",
        "maxmemory_policy:noeviction",
        "# Stats",
        "total_commands_processed:",
        "keyspace_hits:",
        "# Keyspace",
        "db0:keys=1,expires=0",
    ] {
        assert!(
            info.as_str().contains(field),
            "INFO lacks {field}:\n{}",
            info.as_str()
        );
    }
    let mem = c.cmd(&["INFO", "memory"]).await;
    assert!(mem.as_str().starts_with("# Memory") && !mem.as_str().contains("# Server"));
    assert_eq!(c.cmd(&["FLUSHDB", "ASYNC"]).await, V::s("OK"));
    assert_err(&c.cmd(&["FLUSHALL", "LATER"]).await, "ERR syntax error");
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(0));

    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory-policy"]).await,
        V::strs(&["maxmemory-policy", "noeviction"])
    );
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "SET",
            "maxmemory",
            "10mb",
            "maxmemory-policy",
            "allkeys-lru"
        ])
        .await,
        V::s("OK")
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory"]).await,
        V::strs(&["maxmemory", "10485760"])
    );
    assert_err(
        &c.cmd(&["CONFIG", "SET", "maxmemory", "lots"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory')",
    );
    assert_err(
        &c.cmd(&["CONFIG", "SET", "port", "1"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config",
    );
    assert_err(
        &c.cmd(&["CONFIG", "SET", "nosuch", "1"]).await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'",
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]).await,
        V::strs(&["save", ""])
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory-policy"]).await,
        V::strs(&["maxmemory-policy", "allkeys-lru"]),
        "failed SET changed nothing"
    );
    srv.stop().await;
}

async fn command_introspection(srv: TestShard) {
    let mut c = srv.raw().await;
    let count = c.cmd(&["COMMAND", "COUNT"]).await.as_int();
    assert!(count >= 70, "{count}");
    assert_eq!(c.cmd(&["COMMAND"]).await.as_arr().len() as i64, count);
    let info = c.cmd(&["COMMAND", "INFO", "get", "mset", "nosuch"]).await;
    let get = info.as_arr()[0].as_arr();
    assert_eq!(get[0], V::s("get"));
    assert_eq!(get[1], V::Int(2));
    assert_eq!(&get[3..6], &[V::Int(1), V::Int(1), V::Int(1)]);
    let mset = info.as_arr()[1].as_arr();
    assert_eq!(&mset[3..6], &[V::Int(1), V::Int(-1), V::Int(2)]);
    assert_eq!(info.as_arr()[2], V::Nil);
    let client = c.cmd(&["COMMAND", "INFO", "client"]).await;
    assert!(
        client.as_arr()[0].as_arr()[9].as_arr().len() >= 7,
        "CLIENT lists its subcommands"
    );
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"])
            .await,
        V::strs(&["a", "b"])
    );
    assert_err(
        &c.cmd(&["COMMAND", "GETKEYS", "PING"]).await,
        "ERR The command has no key arguments",
    );
    assert_err(
        &c.cmd(&["COMMAND", "GETKEYS", "GET"]).await,
        "ERR Invalid number of arguments specified for command",
    );
    let docs = c.cmd(&["COMMAND", "DOCS", "get"]).await;
    assert!(format!("{docs:?}").contains("Returns the string value of a key."));
    let list = c
        .cmd(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "h*"])
        .await;
    assert!(list.as_arr().contains(&V::s("hgetall")) && !list.as_arr().contains(&V::s("get")));
    let hashcat = c
        .cmd(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "hash"])
        .await;
    assert_eq!(hashcat.as_arr().len(), 16);
    srv.stop().await;
}

#[tokio::test]
async fn requirepass_and_hello() {
    let srv = TestShard::start(shard::testing::Config {
        requirepass: Some("s3cret".into()),
        ..Default::default()
    })
    .await;
    let mut c = srv.raw().await;
    assert_err(
        &c.cmd(&["GET", "k"]).await,
        "NOAUTH Authentication required.",
    );
    assert_err(
        &c.cmd(&["HELLO", "3"]).await,
        "NOAUTH HELLO must be called with the client already authenticated",
    );
    assert_err(
        &c.cmd(&["AUTH", "wrong"]).await,
        "WRONGPASS invalid username-password pair or user is disabled.",
    );
    assert_err(&c.cmd(&["AUTH", "alice", "s3cret"]).await, "WRONGPASS");
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, V::s("OK"));
    assert_eq!(c.cmd(&["RESET"]).await, V::s("RESET"));
    assert_err(&c.cmd(&["GET", "k"]).await, "NOAUTH");

    let mut h = srv.raw().await;
    let hello = h
        .cmd(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "n1"])
        .await;
    let V::Map(pairs) = hello else {
        panic!("HELLO 3 answers a RESP3 map, got {hello:?}")
    };
    assert!(pairs.contains(&(V::s("proto"), V::Int(3))));
    assert!(pairs.contains(&(V::s("server"), V::s("redis"))));
    assert_eq!(h.cmd(&["CLIENT", "GETNAME"]).await, V::s("n1"));
    assert_err(
        &h.cmd(&["HELLO", "4"]).await,
        "NOPROTO unsupported protocol version",
    );
    assert_err(
        &h.cmd(&["HELLO", "x"]).await,
        "ERR Protocol version is not an integer or out of range",
    );

    // The real client library authenticates through the URL.
    let client = redis::Client::open(format!("redis://:s3cret@{}/", srv.addr)).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect with password");
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .expect("get");
    assert_eq!(v, "v");

    let none = TestShard::default().await;
    let mut n = none.raw().await;
    assert_err(
        &n.cmd(&["AUTH", "x"]).await,
        "ERR AUTH <password> called without any password configured",
    );
    srv.stop().await;
    none.stop().await;
}

#[tokio::test]
async fn maxmemory_noeviction_refuses_writes_but_serves_reads() {
    let srv = TestShard::start(shard::testing::Config {
        maxmemory: 20_000,
        ..Default::default()
    })
    .await;
    let mut c = srv.raw().await;
    let value = "x".repeat(1000);
    let mut refused = None;
    for i in 0..100 {
        if let V::Err(e) = c.cmd(&["SET", &format!("k{i}"), &value]).await {
            refused = Some((i, e));
            break;
        }
    }
    let (at, err) = refused.expect("writes are refused past maxmemory");
    assert!((15..=25).contains(&at), "refused at key {at}");
    assert_eq!(
        err,
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(
        c.cmd(&["GET", "k0"]).await,
        V::s(&value),
        "reads still work"
    );
    assert_eq!(
        c.cmd(&["DEL", "k0", "k1", "k2"]).await,
        V::Int(3),
        "deletes still work"
    );
    srv.stop().await;
}

#[tokio::test]
async fn maxmemory_allkeys_lru_evicts_cold_keys() {
    let cfg = shard::testing::Config {
        maxmemory: 200_000,
        maxmemory_policy: shard::store::Policy::AllKeysLru,
        ..Default::default()
    };
    let srv = TestShard::start(cfg).await;
    let mut c = srv.raw().await;
    let value = "x".repeat(1000);
    for i in 0..1000 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), &value]).await, V::s("OK"));
    }
    let keys = c.cmd(&["DBSIZE"]).await.as_int();
    assert!(
        (150..=200).contains(&keys),
        "{keys} keys kept under a 200kB budget"
    );
    let info = c.cmd(&["INFO", "memory"]).await;
    let used: u64 = info
        .as_str()
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    // Like Redis, eviction runs before each write, so one write may overshoot by its own size.
    assert!(used <= 200_000 + 1200, "used {used}");
    let stats = c.cmd(&["INFO", "stats"]).await;
    assert!(
        stats
            .as_str()
            .contains(&format!("evicted_keys:{}", 1000 - keys)),
        "{}",
        stats.as_str()
    );
    srv.stop().await;
}

#[tokio::test]
async fn maxclients_rejects_extra_connections() {
    let srv = TestShard::start(shard::testing::Config {
        maxclients: 2,
        ..Default::default()
    })
    .await;
    let mut a = srv.raw().await;
    let mut b = srv.raw().await;
    assert_eq!(a.cmd(&["PING"]).await, V::s("PONG"));
    assert_eq!(b.cmd(&["PING"]).await, V::s("PONG"));
    let mut third = srv.raw().await;
    assert_eq!(
        third.read().await,
        V::Err("ERR max number of clients reached".into())
    );
    assert!(third.is_closed().await);
    drop(a);
    // The slot frees once the server notices the disconnect.
    let mut ok = false;
    for _ in 0..200 {
        let mut d = srv.raw().await;
        d.send(&shard::testing::encode(&["PING"])).await;
        if d.read().await == V::s("PONG") {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(ok, "a new client gets in after one leaves");
    drop(b);
    srv.stop().await;
}
