//! A value that takes longer to cross than the health check's and the request timeout's
//! patience goes through, and requests of other clients queued behind it are answered, not
//! failed: deadlines count from the connection's last progress. A large request goes on a
//! connection of its own, so other clients' small requests do not wait behind it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// A shard that reads and writes at most 64 KiB every 10 ms per connection (about 6 MB/s): a
/// 16 MB value takes ~2.5 s to cross either way, longer than the 1 s the proxy gives a PING or
/// a request. Its sockets have small receive buffers, so what it has not read stays with the
/// proxy, whose writer sees it go (the kernel's buffers would otherwise hide megabytes of a
/// transfer from the progress the proxy measures).
async fn slow_reader() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let socket = TcpSocket::new_v4().expect("socket");
    // Accepted connections inherit the listener's receive buffer size.
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(64).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let sets = Arc::new(AtomicUsize::new(0));
    let counted = sets.clone();
    // One value for every key, shared by all connections.
    let stored = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let sets = counted.clone();
            let stored = stored.clone();
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let mut out = Vec::new();
                    while let Ok(Some(req)) = proxy::protocol::next_request(&mut buf, 1 << 30) {
                        let name = String::from_utf8_lossy(req.arg(0)).to_ascii_uppercase();
                        let reply: Vec<u8> = match name.as_str() {
                            "CLUSTER" => {
                                b"-ERR This instance has cluster support disabled\r\n".to_vec()
                            }
                            "COMMAND" => b"*0\r\n".to_vec(),
                            "PING" => b"+PONG\r\n".to_vec(),
                            "SET" => {
                                if let Ok(mut v) = stored.lock() {
                                    *v = req.arg(2).to_vec();
                                }
                                sets.fetch_add(1, Ordering::SeqCst);
                                b"+OK\r\n".to_vec()
                            }
                            "GET" => {
                                let value = stored.lock().map(|v| v.clone()).unwrap_or_default();
                                let mut r = format!("${}\r\n", value.len()).into_bytes();
                                r.extend_from_slice(&value);
                                r.extend_from_slice(b"\r\n");
                                r
                            }
                            _ => b"-ERR slow shard: unexpected command\r\n".to_vec(),
                        };
                        out.extend_from_slice(&reply);
                    }
                    for piece in out.chunks(64 * 1024) {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                        if out.len() > 64 * 1024 {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
    });
    (addr, sets)
}

/// The proxy over [`slow_reader`]: one connection per shard, a 1 s request timeout, health
/// checks every 100 ms; two clients. Also the shard's SET count.
async fn over_a_slow_shard() -> (Proxy, Raw, Raw, Arc<AtomicUsize>) {
    let (addr, sets) = slow_reader().await;
    let cfg = proxy::Config {
        near_cache: false,
        backend_connections: 1,
        backend_timeout: Duration::from_secs(1),
        health_interval: Duration::from_millis(100),
        ..config(&[addr.to_string()])
    };
    let proxy = Proxy::start(cfg).await;
    let (big, small) = (proxy.raw().await, proxy.raw().await);
    (proxy, big, small, sets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_slower_than_the_timeouts_goes_through_and_nobody_fails() {
    let (proxy, mut big, mut small, sets) = over_a_slow_shard().await;
    let value = "x".repeat(16 << 20);
    let started = Instant::now();
    big.send(&encode(&["SET", "big", &value])).await;
    assert_eq!(String::from_utf8_lossy(&big.reply().await), "+OK\r\n");
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(1500),
        "the transfer was meant to outlast the 1 s timeouts (took {took:?})"
    );
    // A large reply, on the clients' shared connection: a small request of another client
    // queued behind it waits for it, and neither fails.
    let started = Instant::now();
    big.send(&encode(&["GET", "big"])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    small.send(&encode(&["SET", "small", "v"])).await;
    let got = big.reply().await;
    assert_eq!(got.len(), value.len() + 13, "the whole value");
    assert!(started.elapsed() > Duration::from_millis(1500));
    assert_eq!(String::from_utf8_lossy(&small.reply().await), "+OK\r\n");
    assert_eq!(
        sets.load(Ordering::SeqCst),
        2,
        "each SET reached the shard once"
    );
    // Nothing was marked down or failed.
    let info = small.text(&["INFO", "shards"]).await;
    assert!(info.contains("status=up"), "{info}");
    assert!(info.contains("failures=0\r\n"), "{info}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_requests_do_not_wait_behind_a_large_one() {
    let (proxy, mut big, mut small, _) = over_a_slow_shard().await;
    let value = "x".repeat(16 << 20);
    let started = Instant::now();
    // The large SET, then a GET of the same client that must see it (its order holds).
    let mut pipeline = encode(&["SET", "big", &value]);
    pipeline.extend(encode(&["GET", "big"]));
    big.send(&pipeline).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    assert_eq!(small.text(&["SET", "small", "v"]).await, "+OK\r\n");
    let small_took = asked.elapsed();
    assert_eq!(String::from_utf8_lossy(&big.reply().await), "+OK\r\n");
    let big_took = started.elapsed();
    assert!(
        big_took > Duration::from_millis(1500),
        "the large SET crosses slowly ({big_took:?})"
    );
    assert!(
        small_took < Duration::from_millis(1000),
        "the small SET was answered while the large one crossed (took {small_took:?})"
    );
    // The client's GET, sent after its large SET was answered (the fake keeps one value for
    // every key; the small SET came earlier): the large value.
    assert_eq!(big.reply().await.len(), value.len() + 13);
    proxy.stop().await;
}
