//! Online slot migration end to end: a node joining a loaded cluster gets its share of the
//! slots with their keys (both tiers) while a writer runs, and no acknowledged write is lost;
//! an operator's CLUSTER MIGRATE moves one slot key by key; and the redirects of a migration
//! in progress (ASK, TRYAGAIN, ASKING) seen by a plain connection, with a scripted peer node
//! on the other end of the transfer so the migration can be held mid-way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use membership::Slot;
use membership::swim::{self, AgentHandle, ClusterConfig, NodeId, QuicStreams, QuicTransport};
use shard::migrate::{Frame, Item, decode_frame, encode_batch, encode_begin};
use shard::store::{Key, Value};
use shard::testing::{Config, TestShard, V, assert_err, info_field};

const SECRET: &str = "test-cluster-secret";

fn node_config(dir: &std::path::Path, seeds: Vec<String>) -> Config {
    Config {
        dir: dir.to_path_buf(),
        cluster_enabled: true,
        cluster_port: Some(0),
        cluster_seeds: seeds,
        cluster_secret: Some(SECRET.into()),
        ..Config::default()
    }
}

/// A node whose RAM budget is tiny, so most of its keys live in the warm tier.
fn warm_node_config(dir: &std::path::Path, seeds: Vec<String>) -> Config {
    Config {
        warm_tier: true,
        maxmemory: 256 * 1024,
        ..node_config(dir, seeds)
    }
}

async fn cmd(srv: &TestShard, args: &[&str]) -> V {
    srv.raw().await.cmd(args).await
}

async fn info(srv: &TestShard) -> String {
    cmd(srv, &["CLUSTER", "INFO"]).await.as_str().to_string()
}

fn field(info: &str, name: &str) -> i64 {
    info_field(info, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {info}"))
}

/// Polls `cond` every 50 ms for at most `secs` seconds.
async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// Slots each node owns according to `srv`'s CLUSTER SLOTS, by client port.
async fn slot_counts(srv: &TestShard) -> HashMap<i64, i64> {
    let mut out = HashMap::new();
    for r in cmd(srv, &["CLUSTER", "SLOTS"]).await.as_arr() {
        let r = r.as_arr();
        let port = r[2].as_arr()[1].as_int();
        *out.entry(port).or_insert(0) += r[1].as_int() - r[0].as_int() + 1;
    }
    out
}

async fn owner_port(srv: &TestShard, slot: i64) -> Option<i64> {
    cmd(srv, &["CLUSTER", "SLOTS"])
        .await
        .as_arr()
        .iter()
        .map(|r| r.as_arr())
        .find(|r| r[0].as_int() <= slot && slot <= r[1].as_int())
        .map(|r| r[2].as_arr()[1].as_int())
}

fn cluster_client(seed: &TestShard) -> redis::cluster::ClusterClient {
    redis::cluster::ClusterClientBuilder::new(vec![seed.url()])
        .response_timeout(Duration::from_secs(30))
        .connection_timeout(Duration::from_secs(30))
        .retries(30)
        .build()
        .expect("cluster client")
}

/// Loaded key `i` reads back with its value (and its TTL for the ones that have one).
async fn check_loaded(con: &mut redis::cluster_async::ClusterConnection, i: usize) {
    let key = format!("key:{i}");
    match i % 4 {
        0 => {
            let f: String = redis::cmd("HGET")
                .arg(&key)
                .arg("f")
                .query_async(con)
                .await
                .expect("hget");
            assert_eq!(f, i.to_string(), "{key}");
        }
        k => {
            let v: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(con)
                .await
                .expect("get");
            assert_eq!(v.as_deref(), Some(format!("v{i}").as_str()), "{key}");
            if k == 1 {
                let ttl: i64 = redis::cmd("PTTL")
                    .arg(&key)
                    .query_async(con)
                    .await
                    .expect("pttl");
                assert!(ttl > 0 && ttl <= 600_000, "{key} kept its TTL: {ttl}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_its_share_online_and_no_acknowledged_write_is_lost() {
    let t0 = Instant::now();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let a = TestShard::start(warm_node_config(dirs[0].path(), vec![])).await;
    let seed = a.bus_addr().await;
    let b = TestShard::start(warm_node_config(dirs[1].path(), vec![seed.clone()])).await;
    wait_until(60, "two balanced nodes", || async {
        let c = slot_counts(&a).await;
        c.len() == 2 && c.values().all(|&n| n == 8192)
    })
    .await;

    // 20k keys: strings, some with a TTL, and hashes; most of them end up in the warm tier.
    let client = cluster_client(&a);
    let con = client.get_async_connection().await.expect("cluster conn");
    const KEYS: usize = 20_000;
    const TASKS: usize = 8;
    // Eight concurrent loaders over the multiplexed cluster connection.
    let mut loaders = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let mut con = con.clone();
        loaders.spawn(async move {
            for i in (t..KEYS).step_by(TASKS) {
                let key = format!("key:{i}");
                let c = match i % 4 {
                    0 => redis::cmd("HSET")
                        .arg(&key)
                        .arg("f")
                        .arg(i)
                        .arg("g")
                        .arg("x")
                        .to_owned(),
                    1 => redis::cmd("SET")
                        .arg(&key)
                        .arg(format!("v{i}"))
                        .arg("PX")
                        .arg(600_000)
                        .to_owned(),
                    _ => redis::cmd("SET").arg(&key).arg(format!("v{i}")).to_owned(),
                };
                let _: () = c.query_async(&mut con).await.expect("load");
            }
        });
    }
    while let Some(r) = loaders.join_next().await {
        r.expect("loader");
    }
    eprintln!("{:?} loaded", t0.elapsed());
    let warm_before: i64 = {
        let mut n = 0;
        for s in [&a, &b] {
            let t = cmd(s, &["INFO", "tiering"]).await;
            n += field(t.as_str(), "warm_keys");
        }
        n
    };
    assert!(
        warm_before > 1000,
        "keys are in the warm tier: {warm_before}"
    );

    // A third node joins while a writer keeps overwriting 500 keys.
    let c = TestShard::start(warm_node_config(dirs[2].path(), vec![seed.clone()])).await;
    let writer_client = cluster_client(&a);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut con = writer_client
                .get_async_connection()
                .await
                .expect("writer conn");
            // Per key: the last acknowledged value, and later attempts whose outcome is unknown.
            let mut acked: HashMap<String, (i64, Vec<i64>)> = HashMap::new();
            let deadline = Instant::now() + Duration::from_secs(40);
            let (mut errors, mut writes) = (0, 0);
            for i in 0..200_000i64 {
                if Instant::now() > deadline {
                    break;
                }
                let key = format!("w:{}", i % 500);
                // At least two full rounds over the 500 keys, however fast the rebalance is.
                if i >= 1000 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&key)
                    .arg(i)
                    .query_async(&mut con)
                    .await;
                let e = acked.entry(key).or_insert((-1, Vec::new()));
                match r {
                    Ok(()) => {
                        writes += 1;
                        *e = (i, Vec::new());
                    }
                    Err(_) => {
                        errors += 1;
                        e.1.push(i);
                    }
                }
            }
            (acked, errors, writes)
        })
    };

    // Balanced: 16384 = 5462 + 5461 + 5461, every node agreeing, nothing in transfer.
    let nodes = [&a, &b, &c];
    wait_until(60, "the new node's share", || async {
        for n in nodes {
            let counts = slot_counts(n).await;
            if counts.len() != 3 || counts.values().any(|&k| !(5461..=5462).contains(&k)) {
                return false;
            }
            let i = info(n).await;
            if field(&i, "cluster_slots_migrating") != 0
                || field(&i, "cluster_slots_importing") != 0
            {
                return false;
            }
        }
        true
    })
    .await;
    eprintln!("{:?} balanced", t0.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, errors, writes) = writer.await.expect("writer");
    assert!(acked.len() == 500, "the writer ran: {} keys", acked.len());

    // Every node's table agrees, and node C holds keys it did not have before.
    let reference = cmd(&a, &["CLUSTER", "SLOTS"]).await;
    for n in [&b, &c] {
        let mut x = cmd(n, &["CLUSTER", "SLOTS"]).await.as_arr().to_vec();
        let mut y = reference.as_arr().to_vec();
        x.sort_by_key(|r| r.as_arr()[0].as_int());
        y.sort_by_key(|r| r.as_arr()[0].as_int());
        assert_eq!(x, y, "all nodes agree on the owners");
    }
    let c_keys = cmd(&c, &["DBSIZE"]).await.as_int();
    assert!(c_keys > 5000, "node C received its share: {c_keys}");
    let moved: i64 = {
        let mut n = 0;
        for s in [&a, &b] {
            n += field(&info(s).await, "cluster_migrated_keys");
        }
        n
    };
    assert!(moved >= c_keys - 500, "moved {moved}, C holds {c_keys}");

    eprintln!("{:?} checking", t0.elapsed());
    // Every loaded key reads back, TTLs kept; every write acknowledged reads back.
    let mut con = cluster_client(&a)
        .get_async_connection()
        .await
        .expect("cluster conn");
    let mut total = 0;
    for n in nodes {
        total += cmd(n, &["DBSIZE"]).await.as_int();
    }
    // Keys whose every write failed may or may not exist; all others exactly once.
    let written = acked.values().filter(|(last, _)| *last >= 0).count();
    assert!(
        ((KEYS + written) as i64..=(KEYS + 500) as i64).contains(&total),
        "no key lost or duplicated: {total}"
    );
    let mut checkers = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let mut con = con.clone();
        checkers.spawn(async move {
            for i in (t..KEYS).step_by(TASKS) {
                check_loaded(&mut con, i).await;
            }
        });
    }
    while let Some(r) = checkers.join_next().await {
        r.expect("checker");
    }
    for (key, (last, unknown)) in &acked {
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut con)
            .await
            .expect("get");
        let v = v.unwrap_or(-1);
        assert!(
            v == *last || unknown.contains(&v),
            "{key}: read {v}, last acknowledged {last} (unacknowledged later: {unknown:?})"
        );
    }
    eprintln!(
        "writer: {writes} writes acknowledged over {} keys, {errors} errors; migrated {moved} keys",
        acked.len()
    );
    for n in [a, b, c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_migrate_moves_one_slot_with_its_keys() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let manual = |dir, seeds| Config {
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..warm_node_config(dir, seeds)
    };
    let a = TestShard::start(manual(dirs[0].path(), vec![])).await;
    let b = TestShard::start(manual(dirs[1].path(), vec![a.bus_addr().await])).await;
    wait_until(30, "two members", || async {
        field(&info(&a).await, "cluster_known_nodes") == 2
    })
    .await;
    // Manual mode: the new node gets nothing by itself.
    assert_eq!(slot_counts(&a).await.len(), 1);
    let b_id = cmd(&b, &["CLUSTER", "MYID"]).await.as_str().to_string();

    let slot = Slot::for_key(b"{mig}").get();
    let mut ra = a.raw().await;
    for i in 0..700 {
        let k = format!("{{mig}}:{i}");
        let r = match i % 6 {
            0 => ra.cmd(&["HSET", &k, "a", &i.to_string(), "b", "2"]).await,
            1 => ra.cmd(&["SET", &k, &i.to_string(), "EX", "1000"]).await,
            3 => ra.cmd(&["RPUSH", &k, &i.to_string(), "", "tail"]).await,
            4 => {
                ra.cmd(&["SADD", &k, &i.to_string(), "", "m"]).await;
                ra.cmd(&["EXPIRE", &k, "1000"]).await
            }
            // Sorted sets, every 42nd a large one (skiplist).
            5 if i % 7 == 0 => {
                let mut args = vec!["ZADD".to_string(), k.clone()];
                for j in 0..200 {
                    args.extend([j.to_string(), format!("m{j}")]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ra.cmd(&args).await
            }
            5 => {
                ra.cmd(&["ZADD", &k, &i.to_string(), "m", "-inf", "", "0.5", "h"])
                    .await
            }
            // Streams with a consumer group and a pending entry.
            2 if i % 4 == 2 => {
                ra.cmd(&["XADD", &k, "1-1", "f", &i.to_string()]).await;
                ra.cmd(&["XADD", &k, "2-1", "f", "two"]).await;
                ra.cmd(&["XGROUP", "CREATE", &k, "g", "0"]).await;
                ra.cmd(&[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "COUNT",
                    "1",
                    "STREAMS",
                    &k,
                    ">",
                ])
                .await;
                ra.cmd(&["XGROUP", "CREATECONSUMER", &k, "g", "idle"]).await
            }
            _ => ra.cmd(&["SET", &k, &i.to_string()]).await,
        };
        assert!(matches!(r, V::Int(_)) || r == V::s("OK"), "{r:?}");
    }
    let s = slot.to_string();
    assert_eq!(
        ra.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s]).await,
        V::Int(700)
    );

    // Bad requests get errors; the right one is accepted.
    assert_err(
        &ra.cmd(&["CLUSTER", "MIGRATE", &s, &s, "nonsense"]).await,
        "ERR Invalid node id",
    );
    assert_err(
        &ra.cmd(&["CLUSTER", "MIGRATE", "9", "3", &b_id]).await,
        "ERR Invalid slot range",
    );
    assert_err(
        &ra.cmd(&["CLUSTER", "MIGRATE", &s, "16384", &b_id]).await,
        "ERR Invalid slot",
    );
    let mut rb = b.raw().await;
    assert_err(
        &rb.cmd(&["CLUSTER", "MIGRATE", &s, &s, &b_id]).await,
        "ERR The destination is this node",
    );
    let a_id = cmd(&a, &["CLUSTER", "MYID"]).await.as_str().to_string();
    assert_err(
        &rb.cmd(&["CLUSTER", "MIGRATE", &s, &s, &a_id]).await,
        "ERR Slot",
    );
    assert_eq!(
        ra.cmd(&["CLUSTER", "MIGRATE", &s, &s, &b_id]).await,
        V::s("OK")
    );
    let b_port = i64::from(b.addr.port());
    wait_until(30, "the slot to move", || async {
        owner_port(&a, i64::from(slot)).await == Some(b_port)
            && owner_port(&b, i64::from(slot)).await == Some(b_port)
            && field(&info(&a).await, "cluster_slots_migrating") == 0
            && field(&info(&b).await, "cluster_slots_importing") == 0
    })
    .await;

    assert_eq!(ra.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s]).await, V::Int(0));
    assert_eq!(
        rb.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s]).await,
        V::Int(700)
    );
    let listed = rb.cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "1000"]).await;
    assert_eq!(listed.as_arr().len(), 700);
    for i in 0..700 {
        let k = format!("{{mig}}:{i}");
        assert_eq!(
            ra.cmd(&["GET", &k]).await,
            V::Err(format!("MOVED {slot} 127.0.0.1:{b_port}")),
            "the source redirects"
        );
        match i % 6 {
            2 if i % 4 == 2 => {
                assert_eq!(
                    rb.cmd(&["XRANGE", &k, "-", "+", "COUNT", "1"]).await,
                    V::Arr(vec![V::Arr(vec![
                        V::s("1-1"),
                        V::strs(&["f", &i.to_string()])
                    ])])
                );
                assert_eq!(
                    rb.text(&["XPENDING", &k, "g"]).await,
                    "*4\r\n:1\r\n$3\r\n1-1\r\n$3\r\n1-1\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n1\r\n"
                );
                assert_eq!(
                    rb.cmd(&["XINFO", "CONSUMERS", &k, "g"])
                        .await
                        .as_arr()
                        .len(),
                    2
                );
                assert_eq!(rb.cmd(&["TYPE", &k]).await, V::s("stream"));
            }
            4 => {
                assert_eq!(rb.cmd(&["SCARD", &k]).await, V::Int(3));
                assert_eq!(
                    rb.cmd(&["SMISMEMBER", &k, &i.to_string(), "", "m", "x"])
                        .await,
                    V::Arr(vec![V::Int(1), V::Int(1), V::Int(1), V::Int(0)])
                );
                let ttl = rb.cmd(&["TTL", &k]).await.as_int();
                assert!((900..=1000).contains(&ttl), "TTL kept: {ttl}");
            }
            0 => {
                assert_eq!(rb.cmd(&["HGET", &k, "a"]).await, V::s(&i.to_string()));
                assert_eq!(rb.cmd(&["HLEN", &k]).await, V::Int(2));
            }
            5 if i % 7 == 0 => {
                assert_eq!(rb.cmd(&["ZCARD", &k]).await, V::Int(200));
                assert_eq!(rb.cmd(&["ZRANK", &k, "m150"]).await, V::Int(150));
                assert_eq!(rb.cmd(&["OBJECT", "ENCODING", &k]).await, V::s("skiplist"));
            }
            5 => {
                assert_eq!(
                    rb.cmd(&["ZRANGE", &k, "0", "-1", "WITHSCORES"]).await,
                    V::strs(&["", "-inf", "h", "0.5", "m", &i.to_string()])
                );
                assert_eq!(rb.cmd(&["OBJECT", "ENCODING", &k]).await, V::s("listpack"));
            }
            3 => {
                assert_eq!(
                    rb.cmd(&["LRANGE", &k, "0", "-1"]).await,
                    V::strs(&[&i.to_string(), "", "tail"])
                );
                assert_eq!(rb.cmd(&["TTL", &k]).await, V::Int(-1));
            }
            1 => {
                assert_eq!(rb.cmd(&["GET", &k]).await, V::s(&i.to_string()));
                let ttl = rb.cmd(&["TTL", &k]).await.as_int();
                assert!((900..=1000).contains(&ttl), "TTL kept: {ttl}");
            }
            _ => {
                assert_eq!(rb.cmd(&["GET", &k]).await, V::s(&i.to_string()));
                assert_eq!(rb.cmd(&["TTL", &k]).await, V::Int(-1));
            }
        }
    }
    let ia = info(&a).await;
    assert_eq!(field(&ia, "cluster_migrated_keys"), 700);
    assert_eq!(field(&ia, "cluster_migrated_slots"), 1);
    assert_eq!(field(&info(&b).await, "cluster_imported_keys"), 700);
    let section = ra.cmd(&["INFO", "cluster"]).await;
    assert!(
        section.as_str().contains("cluster_migrated_keys:700"),
        "{section:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// A cluster member scripted by the test: a membership agent plus the transfer streams, so
/// the test can play either end of a migration and stop it half-way.
struct FakeNode {
    handle: AgentHandle,
    streams: QuicStreams,
    id: NodeId,
    client_addr: String,
    _listener: tokio::net::TcpListener,
}

impl FakeNode {
    async fn join(seed: &str) -> FakeNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client_addr = listener.local_addr().expect("addr").to_string();
        let (transport, streams) =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), SECRET).expect("quic");
        let cfg = ClusterConfig {
            client_addr: client_addr.clone(),
            seeds: vec![seed.parse::<SocketAddr>().expect("seed")],
            secret: SECRET.into(),
            rebalance: swim::RebalanceMode::Manual,
            ..ClusterConfig::default()
        };
        let (handle, _task) = swim::spawn(cfg, transport).expect("agent");
        let id = handle.me().id;
        FakeNode {
            handle,
            streams,
            id,
            client_addr,
            _listener: listener,
        }
    }
}

async fn read_frame(recv: &mut quinn::RecvStream) -> Frame {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.expect("frame length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    recv.read_exact(&mut body).await.expect("frame body");
    decode_frame(&body).expect("frame")
}

async fn ack(send: &mut quinn::SendStream, n: u32) {
    let mut b = vec![0u8];
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    send.write_all(&b).await.expect("ack");
}

async fn read_ack(recv: &mut quinn::RecvStream) -> (u8, u32) {
    let mut h = [0u8; 7];
    recv.read_exact(&mut h).await.expect("reply");
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes([h[5], h[6]]))];
    recv.read_exact(&mut msg).await.expect("reply message");
    (h[0], u32::from_be_bytes([h[1], h[2], h[3], h[4]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_answers_ask_and_tryagain_while_a_batch_is_in_flight() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = TestShard::start(Config {
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..node_config(dir.path(), vec![])
    })
    .await;
    let fake = FakeNode::join(&a.bus_addr().await).await;
    wait_until(30, "the scripted node to join", || async {
        field(&info(&a).await, "cluster_known_nodes") == 2
    })
    .await;

    // 600 keys in one slot: the first batch takes 512 of them, 88 stay.
    let slot = Slot::for_key(b"{s}").get();
    let mut ra = a.raw().await;
    for i in 0..600 {
        assert_eq!(
            ra.cmd(&["SET", &format!("{{s}}{i}"), &i.to_string()]).await,
            V::s("OK")
        );
    }
    let s = slot.to_string();
    let fake_id = fake.id.to_string();
    assert_eq!(
        ra.cmd(&["CLUSTER", "MIGRATE", &s, &s, &fake_id]).await,
        V::s("OK")
    );
    let incoming = fake
        .streams
        .accept_stream()
        .await
        .expect("a transfer stream");
    let (mut send, mut recv) = (incoming.send, incoming.recv);
    let Frame::Begin {
        from, first, last, ..
    } = read_frame(&mut recv).await
    else {
        panic!("BEGIN first");
    };
    assert_eq!((first, last), (slot, slot));
    assert_eq!(
        from.to_string(),
        cmd(&a, &["CLUSTER", "MYID"]).await.as_str()
    );
    ack(&mut send, 0).await;
    let Frame::Batch(batch) = read_frame(&mut recv).await else {
        panic!("a batch");
    };
    assert_eq!(batch.len(), 512);
    let inflight: Vec<String> = batch
        .iter()
        .map(|i| String::from_utf8(i.key.to_vec()).expect("utf8"))
        .collect();
    let stayed = (0..600)
        .map(|i| format!("{{s}}{i}"))
        .find(|k| !inflight.contains(k))
        .expect("a key not in the batch");
    assert_eq!(field(&info(&a).await, "cluster_slots_migrating"), 1);
    let nodes = cmd(&a, &["CLUSTER", "NODES"]).await;
    assert!(
        nodes.as_str().contains(&format!("[{slot}->-{fake_id}]")),
        "CLUSTER NODES shows the open slot: {nodes:?}"
    );

    // Held mid-batch: keys still here are served, keys in flight get TRYAGAIN, unknown keys
    // (and new ones) are asked of the destination, mixed multi-key commands get TRYAGAIN.
    let ask = format!("ASK {slot} {}", fake.client_addr);
    assert_ne!(ra.cmd(&["GET", &stayed]).await, V::Nil);
    assert_err(&ra.cmd(&["GET", &inflight[0]]).await, "TRYAGAIN");
    assert_err(&ra.cmd(&["SET", &inflight[0], "x"]).await, "TRYAGAIN");
    assert_eq!(ra.cmd(&["GET", "{s}new"]).await, V::Err(ask.clone()));
    assert_eq!(ra.cmd(&["SET", "{s}new", "1"]).await, V::Err(ask.clone()));
    assert_err(&ra.cmd(&["MGET", &stayed, "{s}new"]).await, "TRYAGAIN");
    assert_err(&ra.cmd(&["MGET", &stayed, &inflight[1]]).await, "TRYAGAIN");
    assert_eq!(
        ra.cmd(&["DEL", "{s}new", "{s}new2"]).await,
        V::Err(ask.clone())
    );
    // Other slots are untouched.
    assert_eq!(ra.cmd(&["SET", "other", "1"]).await, V::s("OK"));

    // Acknowledged: the batch's keys are now the destination's.
    ack(&mut send, 512).await;
    wait_until(10, "the batch to be forgotten", || async {
        cmd(&a, &["GET", &inflight[0]]).await == V::Err(ask.clone())
    })
    .await;
    let Frame::Batch(rest) = read_frame(&mut recv).await else {
        panic!("the rest");
    };
    assert_eq!(rest.len(), 88);
    ack(&mut send, 88).await;
    let Frame::Done { first, last } = read_frame(&mut recv).await else {
        panic!("DONE");
    };
    assert_eq!((first, last), (slot, slot));
    ack(&mut send, 0).await;
    // The source claimed the slot for the destination: MOVED from now on.
    // (The migration counter is cleared by the migrating task just after the claim.)
    wait_until(10, "MOVED", || async {
        cmd(&a, &["GET", &stayed]).await == V::Err(format!("MOVED {slot} {}", fake.client_addr))
            && field(&info(&a).await, "cluster_slots_migrating") == 0
    })
    .await;
    assert_eq!(
        cmd(&a, &["CLUSTER", "COUNTKEYSINSLOT", &s]).await,
        V::Int(0)
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_serves_an_importing_slot_only_after_asking() {
    let dir = tempfile::tempdir().expect("tmp");
    let b = TestShard::start(Config {
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..node_config(dir.path(), vec![])
    })
    .await;
    let fake = FakeNode::join(&b.bus_addr().await).await;
    wait_until(30, "the scripted node to join", || async {
        field(&info(&b).await, "cluster_known_nodes") == 2
    })
    .await;
    // The scripted node takes one slot (empty) and then migrates it, with keys, to B.
    let slot = Slot::for_key(b"{d}");
    let b_id: NodeId = cmd(&b, &["CLUSTER", "MYID"])
        .await
        .as_str()
        .parse()
        .expect("id");
    fake.handle
        .claim(slot.get(), slot.get(), fake.id)
        .await
        .expect("claim");
    let fake_port = fake
        .client_addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<i64>().ok())
        .expect("port");
    wait_until(10, "B to see the claim", || async {
        owner_port(&b, i64::from(slot.get())).await == Some(fake_port)
    })
    .await;
    let peer: SocketAddr = b.bus_addr().await.parse().expect("bus");
    let (mut send, mut recv) = fake.streams.open_stream(peer).await.expect("stream");
    send.write_all(&encode_begin(&fake.id, 1, slot.get(), slot.get()))
        .await
        .expect("begin");
    assert_eq!(read_ack(&mut recv).await.0, 0, "BEGIN accepted");
    let item = |k: &str, v: &str| Item {
        slot,
        key: Key::from_slice(k.as_bytes()),
        value: Value::Str(Bytes::copy_from_slice(v.as_bytes())),
        expire_at: 0,
    };
    // B already has a newer value for one key (written after ASK): it is kept.
    let mut rb = b.raw().await;
    rb.send(&shard::testing::encode(&["ASKING"])).await;
    rb.send(&shard::testing::encode(&["SET", "{d}newer", "client"]))
        .await;
    assert_eq!(rb.read().await, V::s("OK"));
    assert_eq!(rb.read().await, V::s("OK"));
    send.write_all(&encode_batch(&[
        item("{d}1", "one"),
        item("{d}newer", "migrated"),
    ]))
    .await
    .expect("batch");
    assert_eq!(read_ack(&mut recv).await, (0, 1), "one key installed");
    assert_eq!(field(&info(&b).await, "cluster_slots_importing"), 1);
    let nodes = cmd(&b, &["CLUSTER", "NODES"]).await;
    assert!(
        nodes
            .as_str()
            .contains(&format!("[{}-<-{}]", slot.get(), fake.id)),
        "CLUSTER NODES shows the open slot: {nodes:?}"
    );

    let moved = V::Err(format!("MOVED {} {}", slot.get(), fake.client_addr));
    assert_eq!(rb.cmd(&["GET", "{d}1"]).await, moved, "no ASKING: MOVED");
    assert_eq!(rb.cmd(&["ASKING"]).await, V::s("OK"));
    assert_eq!(rb.cmd(&["GET", "{d}1"]).await, V::s("one"));
    assert_eq!(
        rb.cmd(&["GET", "{d}1"]).await,
        moved,
        "ASKING holds for one command"
    );
    assert_eq!(rb.cmd(&["ASKING"]).await, V::s("OK"));
    assert_eq!(rb.cmd(&["GET", "{d}newer"]).await, V::s("client"));
    assert_eq!(rb.cmd(&["ASKING"]).await, V::s("OK"));
    assert_eq!(rb.cmd(&["GET", "{d}absent"]).await, V::Nil);
    assert_eq!(rb.cmd(&["ASKING"]).await, V::s("OK"));
    assert_err(&rb.cmd(&["MGET", "{d}1", "{d}absent"]).await, "TRYAGAIN");
    // ASKING does not open slots that are not being imported.
    assert_eq!(rb.cmd(&["ASKING"]).await, V::s("OK"));
    let other = Slot::for_key(b"elsewhere");
    assert!(other != slot);

    // A batch for a slot outside the announced range is refused.
    let mut wrong = item("elsewhere", "x");
    wrong.slot = other;
    send.write_all(&encode_batch(&[wrong]))
        .await
        .expect("batch");
    assert_eq!(read_ack(&mut recv).await.0, 1, "refused");

    // The source claims the slot for B: B serves it without ASKING and stops importing.
    fake.handle
        .claim(slot.get(), slot.get(), b_id)
        .await
        .expect("claim");
    wait_until(10, "B to own the slot", || async {
        cmd(&b, &["GET", "{d}1"]).await == V::s("one")
            && field(&info(&b).await, "cluster_slots_importing") == 0
    })
    .await;
    assert_eq!(cmd(&b, &["GET", "{d}newer"]).await, V::s("client"));
    b.stop().await;
}

/// Migration throughput: one node holding `MIGRATION_BENCH_KEYS` keys (default 200 000) of
/// `MIGRATION_BENCH_VALUE` bytes (default 100) moves every slot to a second node with one
/// CLUSTER MIGRATE; `MIGRATION_BENCH_WARM=1` keeps most keys in the warm tier first. Run in a
/// release build:
/// `cargo test --release -p autocache-shard --test migration -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly in a release build"]
async fn migration_throughput() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (keys, size, warm) = (
        env("MIGRATION_BENCH_KEYS", 200_000),
        env("MIGRATION_BENCH_VALUE", 100),
        env("MIGRATION_BENCH_WARM", 0) == 1,
    );
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let cfg = |dir, seeds| {
        let base = if warm {
            warm_node_config(dir, seeds)
        } else {
            node_config(dir, seeds)
        };
        Config {
            cluster_rebalance: shard::config::Rebalance::Manual,
            ..base
        }
    };
    let a = TestShard::start(cfg(dirs[0].path(), vec![])).await;
    let b = TestShard::start(cfg(dirs[1].path(), vec![a.bus_addr().await])).await;
    wait_until(30, "two members", || async {
        field(&info(&a).await, "cluster_known_nodes") == 2
    })
    .await;
    let value = "x".repeat(size);
    let mut ra = a.raw().await;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut buf = Vec::new();
        for i in chunk {
            buf.extend_from_slice(&shard::testing::encode(&[
                "SET",
                &format!("bench:{i}"),
                &value,
            ]));
        }
        ra.send(&buf).await;
        for _ in chunk {
            assert_eq!(ra.read().await, V::s("OK"));
        }
    }
    let warm_keys = field(cmd(&a, &["INFO", "tiering"]).await.as_str(), "warm_keys");
    let b_id = cmd(&b, &["CLUSTER", "MYID"]).await.as_str().to_string();
    let b_port = i64::from(b.addr.port());
    let started = Instant::now();
    assert_eq!(
        ra.cmd(&["CLUSTER", "MIGRATE", "0", "16383", &b_id]).await,
        V::s("OK")
    );
    wait_until(600, "every slot to move", || async {
        owner_port(&a, 0).await == Some(b_port) && slot_counts(&a).await.len() == 1
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let ia = info(&a).await;
    let (moved, bytes) = (
        field(&ia, "cluster_migrated_keys"),
        field(&ia, "cluster_migrated_bytes"),
    );
    assert_eq!(moved as usize, keys);
    assert_eq!(cmd(&b, &["DBSIZE"]).await.as_int() as usize, keys);
    println!(
        "migrated {moved} keys ({warm_keys} from the warm tier), {:.1} MB in {secs:.2} s: \
         {:.0} keys/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        moved as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_dies_mid_batch_gets_its_keys_put_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = TestShard::start(Config {
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..node_config(dir.path(), vec![])
    })
    .await;
    let fake = FakeNode::join(&a.bus_addr().await).await;
    wait_until(30, "the scripted node to join", || async {
        field(&info(&a).await, "cluster_known_nodes") == 2
    })
    .await;
    let slot = Slot::for_key(b"{dead}").get();
    let mut ra = a.raw().await;
    for i in 0..50 {
        assert_eq!(
            ra.cmd(&["SET", &format!("{{dead}}{i}"), &i.to_string()])
                .await,
            V::s("OK")
        );
    }
    let s = slot.to_string();
    assert_eq!(
        ra.cmd(&["CLUSTER", "MIGRATE", &s, &s, &fake.id.to_string()])
            .await,
        V::s("OK")
    );
    let incoming = fake.streams.accept_stream().await.expect("stream");
    let (mut send, mut recv) = (incoming.send, incoming.recv);
    assert!(matches!(read_frame(&mut recv).await, Frame::Begin { .. }));
    ack(&mut send, 0).await;
    let Frame::Batch(batch) = read_frame(&mut recv).await else {
        panic!("a batch");
    };
    assert_eq!(batch.len(), 50);
    assert_err(&ra.cmd(&["GET", "{dead}0"]).await, "TRYAGAIN");
    // The destination dies without acknowledging; once the cluster declares it down, the
    // source puts the batch back and keeps the slot.
    fake.handle.shutdown().await.expect("shutdown");
    drop((send, recv));
    wait_until(30, "the migration to be abandoned", || async {
        field(&info(&a).await, "cluster_migrations_failed") == 1
    })
    .await;
    assert_eq!(field(&info(&a).await, "cluster_slots_migrating"), 0);
    for i in 0..50 {
        assert_eq!(
            ra.cmd(&["GET", &format!("{{dead}}{i}")]).await,
            V::s(&i.to_string())
        );
    }
    assert_eq!(
        ra.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s]).await,
        V::Int(50)
    );
    assert_eq!(
        owner_port(&a, i64::from(slot)).await,
        Some(i64::from(a.addr.port()))
    );
    a.stop().await;
}

async fn blocked(srv: &TestShard) -> i64 {
    let info = cmd(srv, &["INFO", "clients"]).await;
    field(info.as_str(), "blocked_clients")
}

/// A client blocked on a key whose slot migrates away gets `-MOVED` to the new owner, as Redis
/// Cluster redirects blocked clients; one blocked on another slot keeps waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_is_redirected_when_its_slot_moves() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let manual = |dir, seeds| Config {
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..node_config(dir, seeds)
    };
    let a = TestShard::start(manual(dirs[0].path(), vec![])).await;
    let b = TestShard::start(manual(dirs[1].path(), vec![a.bus_addr().await])).await;
    wait_until(30, "two members", || async {
        field(&info(&a).await, "cluster_known_nodes") == 2
    })
    .await;
    let b_id = cmd(&b, &["CLUSTER", "MYID"]).await.as_str().to_string();
    let slot = Slot::for_key(b"{blk}q").get();
    let mut moving = a.raw().await;
    moving
        .send(&shard::testing::encode(&["BLPOP", "{blk}q", "0"]))
        .await;
    let mut staying = a.raw().await;
    staying
        .send(&shard::testing::encode(&["BLPOP", "{other}q", "0"]))
        .await;
    wait_until(30, "two blocked clients", || async {
        blocked(&a).await == 2
    })
    .await;
    let s = slot.to_string();
    assert_eq!(
        cmd(&a, &["CLUSTER", "MIGRATE", &s, &s, &b_id]).await,
        V::s("OK")
    );
    assert_eq!(
        moving.read().await,
        V::Err(format!("MOVED {slot} 127.0.0.1:{}", b.addr.port()))
    );
    assert_eq!(blocked(&a).await, 1);
    assert_eq!(cmd(&a, &["RPUSH", "{other}q", "v"]).await, V::Int(1));
    assert_eq!(staying.read().await, V::strs(&["{other}q", "v"]));
    a.stop().await;
    b.stop().await;
}

/// Transactions in cluster mode: keys of one transaction share a slot (EXEC answers
/// `-CROSSSLOT` otherwise), a queued command on a slot the node lost is `-MOVED` and aborts
/// the transaction, and a slot migrating away dirties a WATCH on its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_follow_slot_ownership() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let manual = |dir, seeds| Config {
        cluster_rebalance: shard::config::Rebalance::Manual,
        ..node_config(dir, seeds)
    };
    let a = TestShard::start(manual(dirs[0].path(), vec![])).await;
    let b = TestShard::start(manual(dirs[1].path(), vec![a.bus_addr().await])).await;
    wait_until(30, "two members", || async {
        field(&info(&a).await, "cluster_known_nodes") == 2
    })
    .await;
    let mut ra = a.raw().await;
    assert_eq!(ra.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(ra.cmd(&["SET", "{x}1", "1"]).await, V::s("QUEUED"));
    assert_eq!(ra.cmd(&["SET", "{y}1", "1"]).await, V::s("QUEUED"));
    assert_err(&ra.cmd(&["EXEC"]).await, "CROSSSLOT");
    assert_eq!(ra.cmd(&["GET", "{x}1"]).await, V::Nil, "nothing ran");

    let slot = Slot::for_key(b"{tx}").get().to_string();
    assert_eq!(ra.cmd(&["SET", "{tx}k", "1"]).await, V::s("OK"));
    assert_eq!(ra.cmd(&["WATCH", "{tx}k"]).await, V::s("OK"));
    let b_id = cmd(&b, &["CLUSTER", "MYID"]).await.as_str().to_string();
    assert_eq!(
        ra.cmd(&["CLUSTER", "MIGRATE", &slot, &slot, &b_id]).await,
        V::s("OK")
    );
    let b_port = i64::from(b.addr.port());
    let n: i64 = slot.parse().expect("slot");
    wait_until(30, "the slot to move", || async {
        owner_port(&a, n).await == Some(b_port)
            && field(&info(&a).await, "cluster_slots_migrating") == 0
    })
    .await;
    assert_eq!(ra.cmd(&["MULTI"]).await, V::s("OK"));
    assert_eq!(
        ra.text(&["EXEC"]).await,
        "*-1\r\n",
        "the slot moving away is a change"
    );
    assert_eq!(ra.cmd(&["MULTI"]).await, V::s("OK"));
    assert_err(&ra.cmd(&["SET", "{tx}k", "2"]).await, "MOVED");
    assert_err(&ra.cmd(&["EXEC"]).await, "EXECABORT");
    assert_eq!(
        b.raw().await.cmd(&["GET", "{tx}k"]).await,
        V::s("1"),
        "the key moved with its slot, unchanged"
    );
}
