//! Redirect handling against scripted fake cluster nodes: tiny TCP servers that answer
//! CLUSTER SHARDS with a map we control and reply MOVED/ASK/TRYAGAIN as scripted.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use membership::Slot;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a fake node sees: the request and whether ASKING preceded it on this connection.
type Script = Arc<dyn Fn(&[String], bool) -> String + Send + Sync>;

struct Fake {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    async fn start(listener: TcpListener, script: Script) -> Fake {
        let addr = listener.local_addr().expect("addr");
        let log: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let l2 = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (script, log) = (script.clone(), l2.clone());
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    let mut asking = false;
                    loop {
                        match s.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let mut out = Vec::new();
                        while let Ok(Some(req)) = proxy::protocol::next_request(&mut buf, 1 << 20) {
                            let argv: Vec<String> = req
                                .args()
                                .map(|a| String::from_utf8_lossy(a).into_owned())
                                .collect();
                            let name = argv[0].to_ascii_uppercase();
                            let reply = match name.as_str() {
                                "PING" => "+PONG\r\n".to_string(),
                                "ASKING" => {
                                    asking = true;
                                    "+OK\r\n".to_string()
                                }
                                _ => {
                                    if name != "CLUSTER" {
                                        log.lock().push(argv.clone());
                                    }
                                    let r = script(&argv, asking);
                                    asking = false;
                                    r
                                }
                            };
                            out.extend(reply.into_bytes());
                        }
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Fake { addr, log, task }
    }

    fn commands(&self, name: &str) -> usize {
        self.log
            .lock()
            .iter()
            .filter(|a| a[0].eq_ignore_ascii_case(name))
            .count()
    }
}

/// A CLUSTER SHARDS reply: each range owned by a master on 127.0.0.1:port.
fn shards_reply(ranges: &[(u16, u16, u16)]) -> String {
    let mut out = format!("*{}\r\n", ranges.len());
    for (a, b, port) in ranges {
        out += "*4\r\n";
        out += &bulk("slots");
        out += &format!("*2\r\n:{a}\r\n:{b}\r\n");
        out += &bulk("nodes");
        out += "*1\r\n*10\r\n";
        for (k, v) in [
            ("id", "x"),
            ("ip", "127.0.0.1"),
            ("endpoint", "127.0.0.1"),
            ("role", "master"),
        ] {
            out += &bulk(k);
            out += &bulk(v);
        }
        out += &bulk("port");
        out += &format!(":{port}\r\n");
    }
    out
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let p = l.local_addr().expect("addr").port();
    (l, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_is_followed_and_the_map_updated() {
    let (la, pa) = listener().await;
    let (lb, pb) = listener().await;
    let slot = Slot::for_key(b"foo").get();
    // After the MOVED, A's map says B owns the slot.
    let moved = Arc::new(AtomicUsize::new(0));
    let m2 = moved.clone();
    let a = Fake::start(
        la,
        Arc::new(move |argv, _| {
            if argv[0].eq_ignore_ascii_case("cluster") {
                return if m2.load(Ordering::SeqCst) == 0 {
                    shards_reply(&[(0, 16383, pa)])
                } else {
                    shards_reply(&[(0, slot - 1, pa), (slot, slot, pb), (slot + 1, 16383, pa)])
                };
            }
            m2.fetch_add(1, Ordering::SeqCst);
            format!("-MOVED {slot} 127.0.0.1:{pb}\r\n")
        }),
    )
    .await;
    let b = Fake::start(lb, Arc::new(|_argv, _| bulk("from-b"))).await;
    let proxy = Proxy::start(config(&[a.addr.to_string()])).await;
    let mut raw = proxy.raw().await;
    assert_eq!(raw.text(&["GET", "foo"]).await, bulk("from-b"));
    assert_eq!(a.commands("GET"), 1);
    assert_eq!(b.commands("GET"), 1);
    // The slot now routes straight to B.
    assert_eq!(raw.text(&["GET", "foo"]).await, bulk("from-b"));
    assert_eq!(a.commands("GET"), 1, "no second MOVED");
    assert_eq!(b.commands("GET"), 2);
    let info = raw.text(&["INFO", "stats"]).await;
    assert!(info.contains("redirects_moved:1"), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_sends_asking_then_the_command_and_keeps_the_map() {
    let (la, pa) = listener().await;
    let (lb, pb) = listener().await;
    let slot = Slot::for_key(b"foo").get();
    let a = Fake::start(
        la,
        Arc::new(move |argv, _| {
            if argv[0].eq_ignore_ascii_case("cluster") {
                return shards_reply(&[(0, 16383, pa)]);
            }
            format!("-ASK {slot} 127.0.0.1:{pb}\r\n")
        }),
    )
    .await;
    let b = Fake::start(
        lb,
        Arc::new(|_argv, asking| {
            if asking {
                bulk("migrated")
            } else {
                "-ERR expected ASKING first\r\n".into()
            }
        }),
    )
    .await;
    let proxy = Proxy::start(config(&[a.addr.to_string()])).await;
    let mut raw = proxy.raw().await;
    assert_eq!(raw.text(&["GET", "foo"]).await, bulk("migrated"));
    assert_eq!(raw.text(&["GET", "foo"]).await, bulk("migrated"));
    assert_eq!(a.commands("GET"), 2, "ASK does not change the map");
    assert_eq!(b.commands("GET"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryagain_is_retried_with_backoff() {
    let (la, pa) = listener().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let a = Fake::start(
        la,
        Arc::new(move |argv, _| {
            if argv[0].eq_ignore_ascii_case("cluster") {
                return shards_reply(&[(0, 16383, pa)]);
            }
            // The proxy reads COMMAND at start-up: only GETs count.
            if !argv[0].eq_ignore_ascii_case("get") {
                return "*0\r\n".into();
            }
            if c2.fetch_add(1, Ordering::SeqCst) < 2 {
                "-TRYAGAIN Multiple keys request during rehashing of slot\r\n".into()
            } else {
                bulk("ok-now")
            }
        }),
    )
    .await;
    // The fake counts every command it gets; the near cache's invalidation link would send
    // its own (HELLO, CLIENT TRACKING).
    let cfg = proxy::Config {
        near_cache: false,
        ..config(&[a.addr.to_string()])
    };
    let proxy = Proxy::start(cfg).await;
    let mut raw = proxy.raw().await;
    let started = Instant::now();
    assert_eq!(raw.text(&["GET", "foo"]).await, bulk("ok-now"));
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "10 ms + 20 ms back-off"
    );
    assert_eq!(a.commands("GET"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_are_bounded() {
    let (la, pa) = listener().await;
    let (lb, pb) = listener().await;
    let slot = Slot::for_key(b"foo").get();
    let a = Fake::start(
        la,
        Arc::new(move |argv, _| {
            if argv[0].eq_ignore_ascii_case("cluster") {
                return shards_reply(&[(0, 16383, pa)]);
            }
            format!("-MOVED {slot} 127.0.0.1:{pb}\r\n")
        }),
    )
    .await;
    let b = Fake::start(
        lb,
        Arc::new(move |_argv, _| format!("-MOVED {slot} 127.0.0.1:{pa}\r\n")),
    )
    .await;
    let proxy = Proxy::start(config(&[a.addr.to_string()])).await;
    let mut raw = proxy.raw().await;
    let r = raw.text(&["GET", "foo"]).await;
    assert!(r.starts_with("-ERR too many cluster redirects"), "{r}");
    let total = a.commands("GET") + b.commands("GET");
    assert_eq!(total, 1 + membership::redirect::MAX_REDIRECTS as usize);
    // The connection still works afterwards.
    assert_eq!(raw.text(&["PING"]).await, "+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_parts_follow_redirects_individually() {
    let (la, pa) = listener().await;
    let (lb, pb) = listener().await;
    let foo = Slot::for_key(b"foo").get();
    let a = Fake::start(
        la,
        Arc::new(move |argv, _| {
            if argv[0].eq_ignore_ascii_case("cluster") {
                return shards_reply(&[(0, 16383, pa)]);
            }
            // Sub-commands are per slot against a cluster: one key each here.
            if argv[1] == "foo" {
                format!("-MOVED {foo} 127.0.0.1:{pb}\r\n")
            } else {
                format!("*1\r\n{}", bulk(&format!("a-{}", argv[1])))
            }
        }),
    )
    .await;
    let _b = Fake::start(
        lb,
        Arc::new(|argv, _| format!("*1\r\n{}", bulk(&format!("b-{}", argv[1])))),
    )
    .await;
    let proxy = Proxy::start(config(&[a.addr.to_string()])).await;
    let mut raw = proxy.raw().await;
    let r = raw.text(&["MGET", "bar", "foo", "baz"]).await;
    assert_eq!(
        r,
        format!("*3\r\n{}{}{}", bulk("a-bar"), bulk("b-foo"), bulk("a-baz"))
    );
}

/// A request for a slot the map has no owner for (a failover in progress) waits for the map to
/// cover it, within the CLUSTERDOWN budget, instead of failing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_an_unowned_slot_waits_for_the_refresh() {
    let (la, pa) = listener().await;
    let maps = Arc::new(AtomicUsize::new(0));
    let m2 = maps.clone();
    let a = Fake::start(
        la,
        Arc::new(move |argv, _| {
            if argv[0].eq_ignore_ascii_case("cluster") {
                // The first map leaves "foo" (slot 12182) without an owner.
                return if m2.fetch_add(1, Ordering::SeqCst) == 0 {
                    shards_reply(&[(0, 8000, pa)])
                } else {
                    shards_reply(&[(0, 16383, pa)])
                };
            }
            if argv[0].eq_ignore_ascii_case("get") {
                return bulk("bar");
            }
            "*0\r\n".into()
        }),
    )
    .await;
    assert_eq!(Slot::for_key(b"foo").get(), 12182);
    let cfg = proxy::Config {
        near_cache: false,
        // No periodic refresh in the test's time: only the request's own.
        refresh_interval: Duration::from_secs(3600),
        ..config(&[a.addr.to_string()])
    };
    let proxy = Proxy::start(cfg).await;
    let mut raw = proxy.raw().await;
    assert_eq!(raw.text(&["GET", "foo"]).await, bulk("bar"));
    assert!(maps.load(Ordering::SeqCst) >= 2, "the map was read again");
    assert_eq!(a.commands("GET"), 1);
    proxy.stop().await;
}
