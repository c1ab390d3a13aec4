//! Cluster mode against scripted fake nodes: the slot map comes from CLUSTER SHARDS, a -MOVED
//! updates it, an -ASK is followed by ASKING + the command on the named node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use loadtest::Config;
use loadtest::workload::Ratio;
use membership::Slot;
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a fake node does with a command: `argv` and whether ASKING came just before.
type Script = dyn Fn(&[Bytes], bool) -> BytesFrame + Send + Sync;

fn bulk(s: &str) -> BytesFrame {
    BytesFrame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: String) -> BytesFrame {
    BytesFrame::Error(s.into())
}

async fn serve(stream: TcpStream, script: Arc<Script>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    let mut asking = false;
    loop {
        while let Ok(Some((frame, _, _))) = decode_bytes_mut(&mut buf) {
            let BytesFrame::Array(parts) = frame else {
                return;
            };
            let argv: Vec<Bytes> = parts
                .into_iter()
                .filter_map(|p| match p {
                    BytesFrame::BulkString(b) => Some(b),
                    _ => None,
                })
                .collect();
            let reply = if argv
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"ASKING"))
            {
                asking = true;
                BytesFrame::SimpleString(Bytes::from_static(b"OK"))
            } else {
                let r = script(&argv, asking);
                asking = false;
                r
            };
            extend_encode(&mut out, &reply, false).expect("encode");
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn node(script: Arc<Script>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, Arc::clone(&script)));
        }
    });
    addr
}

fn shards_reply(addr: SocketAddr) -> BytesFrame {
    BytesFrame::Array(vec![BytesFrame::Array(vec![
        bulk("slots"),
        BytesFrame::Array(vec![BytesFrame::Integer(0), BytesFrame::Integer(16383)]),
        bulk("nodes"),
        BytesFrame::Array(vec![BytesFrame::Array(vec![
            bulk("id"),
            bulk("a"),
            bulk("port"),
            BytesFrame::Integer(i64::from(addr.port())),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk("master"),
            bulk("health"),
            bulk("online"),
        ])]),
    ])])
}

fn slot_of(argv: &[Bytes]) -> u16 {
    Slot::for_key(argv.get(1).map_or(&b""[..], |k| k)).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_moved_and_ask() {
    // C answers only after ASKING.
    let c = node(Arc::new(|_: &[Bytes], asking: bool| {
        if asking {
            bulk("from-c")
        } else {
            err("ERR expected ASKING".into())
        }
    }))
    .await;
    // B owns everything but sends key 0 on to C with ASK.
    let b = node(Arc::new(move |argv: &[Bytes], _| {
        if argv.get(1).is_some_and(|k| k.as_ref() == b"k:0") {
            err(format!("ASK {} {c}", slot_of(argv)))
        } else {
            bulk("from-b")
        }
    }))
    .await;
    // A claims every slot in CLUSTER SHARDS but MOVEs every key to B.
    let a_addr = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    let a_seen = Arc::clone(&a_addr);
    let a = node(Arc::new(move |argv: &[Bytes], _| {
        if argv
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"CLUSTER"))
        {
            shards_reply(*a_seen.get().expect("own address"))
        } else {
            err(format!("MOVED {} {b}", slot_of(argv)))
        }
    }))
    .await;
    a_addr.set(a).expect("set once");

    let mut cfg = Config {
        targets: vec![a.to_string()],
        clients: 1,
        threads: 1,
        pipeline: 4,
        requests: Some(200),
        cluster_mode: true,
        hard_timeout: Some(Duration::from_secs(30)),
        ..Config::default()
    };
    cfg.workload.keys.prefix = b"k:".to_vec();
    cfg.workload.keys.max = 7;
    cfg.workload.ratio = Ratio { set: 0, get: 1 };
    let r = loadtest::run(&cfg).await.expect("run");

    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.requests, 200);
    assert_eq!(r.gets.hits, 200, "every GET reached B or C");
    // Each of the 8 keys' slots moves once (the map is updated), unless two land in flight
    // together; key 0 is ASKed every time it is read (the map is not updated by ASK).
    assert!(
        (8..=8 + 4).contains(&r.redirects_moved),
        "{}",
        r.redirects_moved
    );
    assert!(r.redirects_ask >= 1, "{}", r.redirects_ask);
    assert_eq!(r.cluster_nodes, vec![a.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loops_are_bounded_and_counted() {
    // A node that MOVEs every key to itself.
    let me = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    let seen = Arc::clone(&me);
    let a = node(Arc::new(move |argv: &[Bytes], _| {
        let own = *seen.get().expect("own address");
        if argv
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"CLUSTER"))
        {
            shards_reply(own)
        } else {
            err(format!("MOVED {} {own}", slot_of(argv)))
        }
    }))
    .await;
    me.set(a).expect("set once");
    let mut cfg = Config {
        targets: vec![a.to_string()],
        clients: 1,
        threads: 1,
        requests: Some(10),
        cluster_mode: true,
        max_redirects: 3,
        hard_timeout: Some(Duration::from_secs(30)),
        ..Config::default()
    };
    cfg.workload.ratio = Ratio { set: 1, get: 1 };
    let r = loadtest::run(&cfg).await.expect("run");
    assert_eq!(
        r.errors.get("too-many-redirects"),
        Some(&10),
        "{:?}",
        r.errors
    );
    assert_eq!(r.redirects_moved, 30);
}

fn is(argv: &[Bytes], name: &str) -> bool {
    argv.first()
        .is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes()))
}

fn status(s: &'static str) -> BytesFrame {
    BytesFrame::SimpleString(Bytes::from_static(s.as_bytes()))
}

/// EXEC's reply for three queued INCRs.
fn three_counts() -> BytesFrame {
    BytesFrame::Array(vec![BytesFrame::Integer(1); 3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_transaction_is_resent_whole() {
    // C queues only in a transaction opened right after ASKING.
    let c = node(Arc::new(|argv: &[Bytes], asking: bool| {
        if is(argv, "MULTI") {
            if asking {
                status("OK")
            } else {
                err("ERR expected ASKING before MULTI".into())
            }
        } else if is(argv, "EXEC") {
            three_counts()
        } else {
            status("QUEUED")
        }
    }))
    .await;
    // B owns everything but sends key 0 on to C with ASK, which aborts the transaction (one
    // client, so one connection to B: the flag is that connection's).
    let b_aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b = node(Arc::new(move |argv: &[Bytes], _| {
        use std::sync::atomic::Ordering::Relaxed;
        if is(argv, "MULTI") {
            status("OK")
        } else if is(argv, "EXEC") {
            if b_aborted.swap(false, Relaxed) {
                err("EXECABORT Transaction discarded because of previous errors.".into())
            } else {
                three_counts()
            }
        } else if argv.get(1).is_some_and(|k| k.as_ref() == b"k:0") {
            b_aborted.store(true, Relaxed);
            err(format!("ASK {} {c}", slot_of(argv)))
        } else {
            status("QUEUED")
        }
    }))
    .await;
    // A claims every slot but MOVEs every key to B, and aborts at EXEC.
    let a_addr = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    let a_seen = Arc::clone(&a_addr);
    let a = node(Arc::new(move |argv: &[Bytes], _| {
        if is(argv, "CLUSTER") {
            shards_reply(*a_seen.get().expect("own address"))
        } else if is(argv, "MULTI") {
            status("OK")
        } else if is(argv, "EXEC") {
            err("EXECABORT Transaction discarded because of previous errors.".into())
        } else {
            err(format!("MOVED {} {b}", slot_of(argv)))
        }
    }))
    .await;
    a_addr.set(a).expect("set once");

    let mut cfg = Config {
        targets: vec![a.to_string()],
        clients: 1,
        threads: 1,
        pipeline: 4,
        requests: Some(100),
        cluster_mode: true,
        hard_timeout: Some(Duration::from_secs(30)),
        ..Config::default()
    };
    cfg.workload.keys.prefix = b"k:".to_vec();
    cfg.workload.keys.max = 7;
    cfg.workload.tx_commands = 3;
    let r = loadtest::run(&cfg).await.expect("run");

    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.requests, r.transactions.count), (100, 100));
    // Each key's slot moves once (unless transactions on it were in flight together); every
    // transaction on key 0 is ASKed.
    assert!(
        (8..=8 + 4).contains(&r.redirects_moved),
        "{}",
        r.redirects_moved
    );
    assert!(r.redirects_ask >= 1, "{}", r.redirects_ask);
}
