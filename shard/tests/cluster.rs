//! Cluster mode end to end: three in-process shards form a cluster over QUIC on loopback, a
//! Redis Cluster client reads and writes through MOVED redirects, a node that leaves hands its
//! slots over, a node without the secret cannot join, and a node restarted on its data
//! directory keeps its slots and serves its keys again.

use std::time::Duration;

use shard::config::{ClusterShutdown, Layered as _};
use shard::testing::{Config, TestShard, V, assert_err, info_field};

const SECRET: &str = "test-cluster-secret";

fn cluster_config(dir: &std::path::Path, seeds: Vec<String>, secret: &str) -> Config {
    Config {
        dir: dir.to_path_buf(),
        cluster_enabled: true,
        cluster_port: Some(0),
        cluster_seeds: seeds,
        cluster_secret: Some(secret.into()),
        ..Config::default()
    }
}

async fn cluster_info(srv: &TestShard) -> String {
    srv.raw()
        .await
        .cmd(&["CLUSTER", "INFO"])
        .await
        .as_str()
        .to_string()
}

/// Polls until every node reports `size` masters and all slots served.
async fn converge(nodes: &[&TestShard], size: usize) {
    for _ in 0..600 {
        let mut ok = true;
        for n in nodes {
            let info = cluster_info(n).await;
            ok &= info_field(&info, "cluster_state").as_deref() == Some("ok")
                && info_field(&info, "cluster_size").as_deref() == Some(&size.to_string());
        }
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster of {size} did not converge in 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_form_a_cluster_that_cluster_clients_use() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let a = TestShard::start(cluster_config(dirs[0].path(), vec![], SECRET)).await;
    converge(&[&a], 1).await;
    let seed = a.bus_addr().await;
    let b = TestShard::start(cluster_config(dirs[1].path(), vec![seed.clone()], SECRET)).await;
    let c = TestShard::start(Config {
        // Decommissioned at the end of this test: it hands its slots over.
        cluster_shutdown: ClusterShutdown::Leave,
        ..cluster_config(dirs[2].path(), vec![seed.clone()], SECRET)
    })
    .await;
    converge(&[&a, &b, &c], 3).await;

    // A Redis Cluster client discovers the slots (CLUSTER SLOTS) and routes by itself.
    let client = redis::cluster::ClusterClientBuilder::new(vec![a.url()])
        .response_timeout(Duration::from_secs(30))
        .connection_timeout(Duration::from_secs(30))
        .build()
        .expect("cluster client");
    let mut con = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .expect("set");
    }
    for i in 0..200 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut con)
            .await
            .expect("get");
        assert_eq!(v, i);
    }
    // Keys are spread over the three nodes, each holding only its own slots.
    let mut total = 0;
    for n in [&a, &b, &c] {
        let k = n.raw().await.cmd(&["DBSIZE"]).await.as_int();
        assert!(k > 20, "every node holds a share: {k}");
        total += k;
    }
    assert_eq!(total, 200);

    // A plain client gets Redis Cluster's redirects and errors.
    let mut raw = a.raw().await;
    let slots = raw.cmd(&["CLUSTER", "SLOTS"]).await;
    let foreign = slots
        .as_arr()
        .iter()
        .find(|r| r.as_arr()[2].as_arr()[1] != V::Int(i64::from(a.addr.port())))
        .expect("a range owned by another node")
        .clone();
    let first_slot = foreign.as_arr()[0].as_int();
    let key = (0..100_000).map(|i| format!("k{i}")).find(|k| {
        let s = i64::from(membership::Slot::for_key(k.as_bytes()).get());
        s == first_slot
    });
    let key = key.expect("a key in that slot");
    let port = foreign.as_arr()[2].as_arr()[1].as_int();
    assert_eq!(
        raw.cmd(&["GET", &key]).await,
        V::Err(format!("MOVED {first_slot} 127.0.0.1:{port}"))
    );
    assert_err(
        &raw.cmd(&["MSET", "a", "1", "b", "2"]).await,
        "CROSSSLOT Keys in request don't hash to the same slot",
    );
    let same_slot = raw.cmd(&["MSET", "{t}a", "1", "{t}b", "2"]).await;
    assert!(
        same_slot == V::s("OK") || matches!(&same_slot, V::Err(e) if e.starts_with("MOVED ")),
        "keys of one slot are not CROSSSLOT: {same_slot:?}"
    );
    let myid = raw.cmd(&["CLUSTER", "MYID"]).await;
    assert_eq!(myid.as_str().len(), 40);
    assert_eq!(raw.cmd(&["READONLY"]).await, V::s("OK"));

    // A node holding the wrong secret never becomes part of the cluster.
    let stranger = TestShard::start(cluster_config(
        dirs[3].path(),
        vec![seed.clone()],
        "not-the-secret",
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let info = cluster_info(&a).await;
    assert_eq!(
        info_field(&info, "cluster_known_nodes").as_deref(),
        Some("3"),
        "{info}"
    );
    assert_ne!(
        info_field(&cluster_info(&stranger).await, "cluster_state").as_deref(),
        Some("ok")
    );
    stranger.stop().await;

    // A node that leaves hands its slots over: the cluster serves every slot again.
    c.stop().await;
    converge(&[&a, &b], 2).await;
    let client = redis::cluster::ClusterClientBuilder::new(vec![a.url()])
        .response_timeout(Duration::from_secs(30))
        .build()
        .expect("cluster client");
    let mut con = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .expect("set after leave");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn standalone_shards_say_cluster_support_is_disabled() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    for args in [
        vec!["CLUSTER", "SLOTS"],
        vec!["CLUSTER", "NODES"],
        vec!["ASKING"],
        vec!["READONLY"],
    ] {
        assert_err(
            &c.cmd(&args).await,
            "ERR This instance has cluster support disabled",
        );
    }
    assert!(
        c.cmd(&["INFO", "cluster"])
            .await
            .as_str()
            .contains("cluster_enabled:0")
    );
    srv.stop().await;
}

#[test]
fn cluster_mode_needs_a_secret() {
    let cfg = Config {
        cluster_enabled: true,
        ..Config::default()
    };
    let errs = cfg.validate().expect_err("invalid");
    assert!(errs.to_string().contains("`cluster-secret`"), "{errs}");
}

/// A cluster-mode shard with a warm tier in `dir` (RAM only until a planned shutdown demotes it).
fn warm_cluster_config(dir: &std::path::Path, seeds: Vec<String>, bus_port: u16) -> Config {
    Config {
        warm_tier: true,
        cluster_port: Some(bus_port),
        // A restarted node has this long to come back before its slots are taken over; a
        // loaded test machine must not turn a planned restart into a takeover.
        cluster_restart_grace_ms: 120_000,
        ..cluster_config(dir, seeds, SECRET)
    }
}

async fn cluster_connection(seed: &TestShard) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClientBuilder::new(vec![seed.url()])
        .response_timeout(Duration::from_secs(30))
        .connection_timeout(Duration::from_secs(30))
        .retries(10)
        .build()
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("cluster connection")
}

/// Three warm cluster nodes on `dirs` (the first bootstraps, the others join it), converged,
/// with `keys` keys `key:I` = I written through a cluster client. Also returns the first
/// node's bus address (the others' seed).
async fn three_nodes_with_keys(
    dirs: &[tempfile::TempDir],
    keys: usize,
) -> (TestShard, TestShard, TestShard, String) {
    let a = TestShard::start(warm_cluster_config(dirs[0].path(), vec![], 0)).await;
    converge(&[&a], 1).await;
    let seed = a.bus_addr().await;
    let b = TestShard::start(warm_cluster_config(dirs[1].path(), vec![seed.clone()], 0)).await;
    let c = TestShard::start(warm_cluster_config(dirs[2].path(), vec![seed.clone()], 0)).await;
    converge(&[&a, &b, &c], 3).await;
    let mut con = cluster_connection(&a).await;
    for i in 0..keys {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .expect("set");
    }
    (a, b, c, seed)
}

/// Every key [`three_nodes_with_keys`] wrote reads back through a fresh cluster client.
async fn assert_every_key_reads_back(seed: &TestShard, keys: usize) {
    let mut con = cluster_connection(seed).await;
    for i in 0..keys {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut con)
            .await
            .expect("get");
        assert_eq!(v, Some(i as i64), "key:{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_restart_keeps_slots_and_warm_data() {
    const KEYS: usize = 1500;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let (a, b, c, seed) = three_nodes_with_keys(&dirs, KEYS).await;
    let c_keys = c.raw().await.cmd(&["DBSIZE"]).await.as_int();
    assert!(c_keys > 100, "c holds a share: {c_keys}");
    let myid = c.raw().await.cmd(&["CLUSTER", "MYID"]).await;
    let (c_addr, c_bus) = (c.addr, c.bus_addr().await);
    let slots_before = a.raw().await.cmd(&["CLUSTER", "SLOTS"]).await;

    // A planned shutdown (the default `cluster-shutdown restart`): the others keep its slots.
    c.stop().await;
    assert!(dirs[2].path().join("cluster-restart").exists());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let info = cluster_info(&a).await;
    assert_eq!(
        info_field(&info, "cluster_slots_assigned").as_deref(),
        Some("16384"),
        "{info}"
    );
    assert_eq!(
        a.raw().await.cmd(&["CLUSTER", "SLOTS"]).await,
        slots_before,
        "no slot changed owner while the node was away"
    );

    // Back on the same directory and ports.
    let bus_port: u16 = c_bus
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("bus port");
    let listener = tokio::net::TcpListener::bind(c_addr).await.expect("rebind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let c2 = tokio::spawn(shard::run(
        listener,
        warm_cluster_config(dirs[2].path(), vec![seed.clone()], bus_port),
        async {
            let _ = rx.await;
        },
    ));
    let mut raw = shard::testing::Raw::connect(c_addr).await;
    assert_eq!(raw.cmd(&["CLUSTER", "MYID"]).await, myid);
    // The restarted node learns the table (its own claims still standing) from the others.
    let start = std::time::Instant::now();
    let mut back = false;
    for _ in 0..600 {
        let info = raw.cmd(&["CLUSTER", "INFO"]).await;
        let info = info.as_str();
        if info_field(info, "cluster_state").as_deref() == Some("ok")
            && info_field(info, "cluster_known_nodes").as_deref() == Some("3")
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the restarted node did not rejoin in 30 s");
    println!(
        "restarted node serving its slots {:?} after start",
        start.elapsed()
    );
    converge(&[&a, &b], 3).await;
    assert_eq!(a.raw().await.cmd(&["CLUSTER", "SLOTS"]).await, slots_before);
    assert_eq!(raw.cmd(&["DBSIZE"]).await.as_int(), c_keys);

    assert_every_key_reads_back(&a, KEYS).await;
    drop(raw);
    let _ = tx.send(());
    c2.await.expect("task").expect("restarted shard");
    a.stop().await;
    b.stop().await;
}

/// How many slots a `CLUSTER SLOTS` reply gives the node serving clients at `addr`.
fn slots_of(slots: &V, addr: std::net::SocketAddr) -> usize {
    let V::Arr(ranges) = slots else {
        panic!("CLUSTER SLOTS: {slots:?}")
    };
    ranges
        .iter()
        .filter_map(|r| match r {
            V::Arr(f) => match (&f[0], &f[1], &f[2]) {
                (V::Int(first), V::Int(last), V::Arr(node))
                    if node.get(1) == Some(&V::Int(i64::from(addr.port()))) =>
                {
                    Some((last - first + 1) as usize)
                }
                _ => None,
            },
            _ => None,
        })
        .sum()
}

/// A stopped node's QUIC endpoint closes shortly after its server returns: wait for the port
/// before starting the node again on it (bounded: 10 s).
async fn wait_until_udp_port_is_free(port: u16) {
    for _ in 0..200 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("UDP port {port} still in use 10 s after its node stopped");
}

/// The bus port in a `host:port` bus address.
fn port_of(bus: &str) -> u16 {
    bus.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("bus port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_slots_and_warm_data() {
    const KEYS: usize = 1500;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let (a, b, c, seed) = three_nodes_with_keys(&dirs, KEYS).await;
    let slots_before = a.raw().await.cmd(&["CLUSTER", "SLOTS"]).await;
    let mut places = Vec::new();
    for n in [&a, &b, &c] {
        places.push((n.addr, port_of(&n.bus_addr().await)));
    }

    // Every node stops for a planned restart, the last with nobody left to tell.
    c.stop().await;
    b.stop().await;
    a.stop().await;
    for d in &dirs {
        assert!(d.path().join("cluster-restart").exists());
    }

    // All back on their directories and ports; the first node has no seeds, as before, and
    // is back alone for a while (well past the 300 ms takeover delay): it must not take the
    // others' slots over meanwhile.
    let mut back = Vec::new();
    for (i, (addr, bus_port)) in places.iter().enumerate() {
        wait_until_udp_port_is_free(*bus_port).await;
        let seeds = if i == 0 { vec![] } else { vec![seed.clone()] };
        let cfg = warm_cluster_config(dirs[i].path(), seeds, *bus_port);
        back.push(TestShard::start_at(*addr, cfg).await);
        if i == 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let info = cluster_info(&back[0]).await;
            assert_eq!(
                info_field(&info, "cluster_slots_assigned").as_deref(),
                Some(slots_of(&slots_before, places[0].0).to_string().as_str()),
                "alone, the first node claims only its own slots: {info}"
            );
        }
    }
    converge(&[&back[0], &back[1], &back[2]], 3).await;
    for n in &back {
        assert_eq!(
            n.raw().await.cmd(&["CLUSTER", "SLOTS"]).await,
            slots_before,
            "every node owns what it owned before"
        );
    }
    assert_every_key_reads_back(&back[0], KEYS).await;
    for n in back {
        n.stop().await;
    }
}
