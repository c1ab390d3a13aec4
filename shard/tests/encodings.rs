//! Redis's encoding thresholds: CONFIG GET/SET under their names and old aliases, and OBJECT
//! ENCODING following them, compared with a real redis-server (`AUTOCACHE_SKIP_EXTERNAL=1`
//! skips when it is missing).

use shard::testing::{Raw, TestShard, redis_server};

/// Sends the same commands to both, comparing the replies byte for byte.
async fn same(want: &mut Raw, got: &mut Raw, cmds: &[&[&str]]) {
    for c in cmds {
        assert_eq!(got.text(c).await, want.text(c).await, "{c:?}");
    }
}

#[tokio::test]
async fn thresholds_are_configurable_as_in_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let (mut want, mut got) = (Raw::connect(redis.addr).await, srv.raw().await);
    // redis-server without a config file starts hash-max-listpack-entries at 512 (its
    // redis.conf and Redis 7.2 say 128, as this shard): set it for the comparison.
    same(
        &mut want,
        &mut got,
        &[
            &["CONFIG", "SET", "hash-max-listpack-entries", "128"],
            &["CONFIG", "GET", "hash-max-listpack-entries"],
            &["CONFIG", "GET", "hash-max-ziplist-entries"],
            &["CONFIG", "GET", "zset-max-ziplist-value"],
            &["CONFIG", "GET", "list-max-ziplist-size"],
            &["CONFIG", "GET", "list-max-listpack-size"],
            &["CONFIG", "GET", "set-max-intset-entries"],
            &["CONFIG", "SET", "hash-max-ziplist-entries", "2"],
            &["CONFIG", "GET", "hash-max-listpack-entries"],
            &["CONFIG", "SET", "hash-max-listpack-value", "1kb"],
            &["CONFIG", "GET", "hash-max-listpack-value"],
            &["CONFIG", "SET", "hash-max-listpack-entries", "-1"],
            &["CONFIG", "SET", "list-max-listpack-size", "abc"],
            &["CONFIG", "SET", "hash-max-listpack-value", "lots"],
            &["CONFIG", "SET", "set-max-intset-entries", "3"],
            &["HSET", "h", "a", "1", "b", "2"],
            &["OBJECT", "ENCODING", "h"],
            &["HSET", "h", "c", "3"],
            &["OBJECT", "ENCODING", "h"],
            &["SADD", "s", "1", "2", "3"],
            &["OBJECT", "ENCODING", "s"],
            &["SADD", "s", "4"],
            &["OBJECT", "ENCODING", "s"],
            &["SREM", "s", "4", "3"],
            &["OBJECT", "ENCODING", "s"],
            &["CONFIG", "SET", "set-max-intset-entries", "512"],
            &["SADD", "t", "1", "2", "3", "4"],
            &["OBJECT", "ENCODING", "t"],
            &["CONFIG", "SET", "set-max-intset-entries", "0"],
            &["SADD", "u", "1"],
            &["OBJECT", "ENCODING", "u"],
            &["CONFIG", "SET", "zset-max-ziplist-entries", "2"],
            &["ZADD", "z", "1", "a", "2", "b"],
            &["OBJECT", "ENCODING", "z"],
            &["ZADD", "z", "3", "c"],
            &["OBJECT", "ENCODING", "z"],
            &["CONFIG", "SET", "zset-max-listpack-value", "3"],
            &["ZADD", "y", "1", "abc"],
            &["OBJECT", "ENCODING", "y"],
            &["ZADD", "x", "1", "abcd"],
            &["OBJECT", "ENCODING", "x"],
            &["CONFIG", "SET", "zset-max-listpack-value", "200"],
            &["CONFIG", "SET", "zset-max-listpack-entries", "128"],
            &["ZADD", "w", "1", &"m".repeat(150)],
            &["OBJECT", "ENCODING", "w"],
            &["ZUNIONSTORE", "v", "2", "z", "y"],
            &["OBJECT", "ENCODING", "v"],
            &["CONFIG", "GET", "zset-max-listpack-value"],
        ],
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn list_encoding_follows_list_max_listpack_size() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.text(&["RPUSH", "l", "a", "b", "c"]).await;
    assert_eq!(
        c.text(&["OBJECT", "ENCODING", "l"]).await,
        "$8\r\nlistpack\r\n"
    );
    assert_eq!(
        c.text(&["CONFIG", "SET", "list-max-ziplist-size", "2"])
            .await,
        "+OK\r\n"
    );
    assert_eq!(
        c.text(&["OBJECT", "ENCODING", "l"]).await,
        "$9\r\nquicklist\r\n"
    );
    c.text(&["CONFIG", "SET", "list-max-listpack-size", "-1"])
        .await;
    assert_eq!(
        c.text(&["OBJECT", "ENCODING", "l"]).await,
        "$8\r\nlistpack\r\n"
    );
    let big = "x".repeat(5000);
    c.text(&["RPUSH", "l", &big]).await;
    assert_eq!(
        c.text(&["OBJECT", "ENCODING", "l"]).await,
        "$9\r\nquicklist\r\n",
        "over 4 KB"
    );
    srv.stop().await;
}
