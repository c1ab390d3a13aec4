//! Slow clients cost the proxy a bounded amount of memory: a client that pipelines reads of
//! large values and does not read its replies stops itself (the proxy stops reading its
//! requests), loses nothing once it reads again, and `client-output-buffer-limit` disconnects
//! one past its limits without disturbing anyone else.

mod common;

use std::time::{Duration, Instant};

use common::*;

const VALUE: usize = 100 * 1024;

fn config_with(seeds: &[String], limit: Option<&str>) -> proxy::Config {
    let mut cfg = proxy::Config {
        near_cache: false,
        ..config(seeds)
    };
    if let Some(l) = limit {
        cfg.client_output_buffer_limit
            .apply(l)
            .expect("valid limit");
    }
    cfg
}

/// Sends `n` pipelined GETs of `key` and reads nothing.
async fn flood(addr: std::net::SocketAddr, key: &str, n: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let one = encode(&["GET", key]);
    let mut all = Vec::with_capacity(one.len() * n);
    for _ in 0..n {
        all.extend_from_slice(&one);
    }
    // The requests fit the socket buffers (34 bytes each): the write completes even though
    // the proxy stops reading.
    s.write_all(&all).await.expect("write");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_stops_itself_and_loses_nothing() {
    use tokio::io::AsyncReadExt;
    let shard = TestShard::default().await;
    let proxy = Proxy::start(config_with(&[shard.addr.to_string()], None)).await;
    let mut admin = proxy.raw().await;
    let value = "v".repeat(VALUE);
    assert_eq!(admin.text(&["SET", "big", &value]).await, "+OK\r\n");
    let before = backend_requests(&mut admin).await;

    // 2000 GETs of 100 KB: 200 MB of replies if the proxy read them all.
    const N: usize = 2000;
    let mut slow = flood(proxy.addr, "big", N).await;
    // Let the proxy do what it will with them, then look at what reached the shard.
    let mut last = 0;
    let settle = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = backend_requests(&mut admin).await - before;
        if now == last || Instant::now() > settle {
            break;
        }
        last = now;
    }
    let forwarded = backend_requests(&mut admin).await - before;
    eprintln!("forwarded {forwarded} of {N} requests while the client read nothing");
    // The window for 100 KB replies is 4 MiB / 100 KB = 40 requests; the first chunk is
    // planned with a 16-request window, and the kernel's socket buffers take a few MB more
    // replies before the proxy's writes block. Far from 2000.
    assert!(
        forwarded < 400,
        "the proxy forwarded {forwarded} of {N} requests to a client that reads nothing"
    );
    // Other clients are served meanwhile.
    assert_eq!(admin.text(&["PING"]).await, "+PONG\r\n");

    // The client reads: every reply arrives, in order.
    let reply = format!("${VALUE}\r\n{value}\r\n").into_bytes();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let mut pending: Vec<u8> = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got < N {
        assert!(Instant::now() < deadline, "{got} of {N} replies");
        let n = tokio::time::timeout(TIMEOUT, slow.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "closed after {got} replies");
        pending.extend_from_slice(&buf[..n]);
        let whole = pending.len() / reply.len();
        for i in 0..whole {
            assert_eq!(&pending[i * reply.len()..(i + 1) * reply.len()], &reply[..]);
        }
        got += whole;
        pending.drain(..whole * reply.len());
    }
    assert!(pending.is_empty());
    assert_eq!(
        backend_requests(&mut admin).await - before,
        N as u64,
        "each GET reached the shard once"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_output_buffer_limit_disconnects_only_the_slow_client() {
    let shard = TestShard::default().await;
    let proxy = Proxy::start(config_with(
        &[shard.addr.to_string()],
        Some("normal 2mb 1mb 1"),
    ))
    .await;
    let mut admin = proxy.raw().await;
    let value = "v".repeat(VALUE);
    assert_eq!(admin.text(&["SET", "big", &value]).await, "+OK\r\n");
    let mut slow = Raw::from_stream(flood(proxy.addr, "big", 2000).await);
    // Past the soft limit (1 MB) for a second, or the hard one (2 MB) at once: closed.
    assert!(
        slow.closed_after_replies().await,
        "the slow client was closed"
    );
    let info = admin.text(&["INFO", "stats"]).await;
    assert!(
        info.contains("client_output_buffer_limit_disconnections:1"),
        "{info}"
    );
    // Everyone else goes on.
    assert_eq!(admin.text(&["GET", "big"]).await.len(), VALUE + 11);
    let mut c = proxy.redis().await;
    let v: String = redis::cmd("GET")
        .arg("big")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(v.len(), VALUE);
    proxy.stop().await;
}
