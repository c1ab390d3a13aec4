//! Membership over real QUIC on loopback: three nodes join through a seed and converge; a node
//! with the wrong secret is refused; bulk-data streams work between members. Real time, so
//! every wait polls with a generous limit instead of sleeping a fixed time.

use std::net::SocketAddr;
use std::time::Duration;

use membership::swim::{AgentHandle, ClusterConfig, QuicStreams, QuicTransport, spawn};

const SECRET: &str = "loopback-test-secret";
const LIMIT: Duration = Duration::from_secs(30);

fn start(secret: &str, seeds: Vec<SocketAddr>, port: u16) -> (AgentHandle, QuicStreams) {
    let (t, streams) =
        QuicTransport::bind(SocketAddr::from(([127, 0, 0, 1], 0)), secret).expect("bind");
    let cfg = ClusterConfig {
        client_addr: format!("127.0.0.1:{port}"),
        seeds,
        secret: secret.into(),
        ..Default::default()
    };
    let (h, _task) = spawn(cfg, t).expect("spawn");
    (h, streams)
}

async fn poll(what: &str, mut ok: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_and_strangers_are_refused() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (a, sa) = start(SECRET, vec![], 7001);
    let seed = a.me().cluster_addr;
    let (b, sb) = start(SECRET, vec![seed], 7002);
    let (c, _sc) = start(SECRET, vec![seed], 7003);
    let nodes = [&a, &b, &c];
    let t0 = tokio::time::Instant::now();
    poll("three nodes to converge", || {
        let views: Vec<_> = nodes.iter().map(|h| h.view()).collect();
        views.iter().all(|v| v.live_ids().len() == 3)
            && views
                .iter()
                .all(|v| v.slots.table() == views[0].slots.table())
            && views[0].slots.unowned() == 0
            && views[0].slots.table().owners().len() == 3
    })
    .await;
    println!("QUIC: 3 nodes converged in {:?}", t0.elapsed());
    let map = b.slots().to_slot_map().expect("slot map");
    assert_eq!(map.unowned(), 0);
    assert_eq!(map.nodes().len(), 3);

    // A node with another secret announces to the same seed: its handshakes fail.
    let (stranger, _ss) = start("not-the-secret", vec![seed], 7666);
    let sid = stranger.me().id;
    let t1 = tokio::time::Instant::now();
    while t1.elapsed() < Duration::from_secs(4) {
        for h in nodes {
            assert!(
                !h.view().members.contains_key(&sid),
                "stranger listed by {:?}",
                h.me().id
            );
        }
        assert!(
            stranger.view().members.is_empty(),
            "stranger learned members"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stranger.slots().unowned(),
        16384,
        "stranger learned no claims"
    );

    // Streams between members: b opens, a accepts and echoes.
    let echo = tokio::spawn(async move {
        let mut s = sa.accept_stream().await.expect("incoming stream");
        let data = s.recv.read_to_end(1 << 20).await.expect("read");
        s.send.write_all(&data).await.expect("write");
        s.send.finish().expect("finish");
        s.peer
    });
    let (mut send, mut recv) = sb.open_stream(seed).await.expect("open");
    send.write_all(b"slot 42 payload").await.expect("write");
    send.finish().expect("finish");
    let back = recv.read_to_end(1 << 20).await.expect("read back");
    assert_eq!(back, b"slot 42 payload");
    assert_eq!(echo.await.expect("echo"), b.me().cluster_addr);

    // A leaving node's slots go to the others.
    c.leave().await.expect("leave");
    let cid = c.me().id;
    poll("the leaver's slots to move", || {
        [&a, &b].iter().all(|h| {
            let s = h.slots();
            s.unowned() == 0 && !s.table().owners().contains(&cid)
        })
    })
    .await;
}
