//! How the agent's datagrams travel: the [`Transport`] trait, a simulated in-memory network for
//! tests ([`SimNetwork`]), and QUIC for real clusters ([`super::quic::QuicTransport`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

/// An unreliable datagram transport between cluster addresses (UDP-like: best effort, no
/// ordering). Owned by the agent task.
pub trait Transport: Send + 'static {
    /// Queues `data` for `to`; never blocks. Datagrams may be lost.
    fn send(&mut self, to: SocketAddr, data: Bytes);

    /// The next datagram and who sent it; `None` once the transport is closed. Must be
    /// cancel-safe (the agent polls it in `select!`).
    fn recv(&mut self) -> impl Future<Output = Option<(SocketAddr, Bytes)>> + Send;

    /// The largest datagram `send` can carry.
    fn max_datagram_size(&self) -> usize;

    /// This node's cluster address.
    fn local_addr(&self) -> SocketAddr;
}

/// Link behaviour of a [`SimNetwork`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// One-way delay of every datagram.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Datagram size limit (QUIC's is about 1162 bytes).
    pub max_datagram_size: usize,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            delay: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
            loss: 0.0,
            max_datagram_size: 1150,
            seed: 1,
        }
    }
}

/// Traffic counters of one simulated node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped: u64,
}

struct SimInner {
    config: SimConfig,
    rng: StdRng,
    nodes: HashMap<SocketAddr, mpsc::Sender<(SocketAddr, Bytes)>>,
    /// Directed links that drop everything (partitions).
    cut: HashSet<(SocketAddr, SocketAddr)>,
    /// Nodes whose traffic is dropped both ways (killed).
    dead: HashSet<SocketAddr>,
    stats: HashMap<SocketAddr, SimStats>,
}

/// A simulated network in one process. Deterministic under a paused tokio clock on a
/// current-thread runtime: delivery times come from the seeded RNG and tokio's timer.
#[derive(Clone)]
pub struct SimNetwork {
    inner: Arc<Mutex<SimInner>>,
}

impl SimNetwork {
    pub fn new(config: SimConfig) -> SimNetwork {
        SimNetwork {
            inner: Arc::new(Mutex::new(SimInner {
                rng: StdRng::seed_from_u64(config.seed),
                config,
                nodes: HashMap::new(),
                cut: HashSet::new(),
                dead: HashSet::new(),
                stats: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A transport for a node at `addr` (replacing any previous one at that address).
    pub fn endpoint(&self, addr: SocketAddr) -> SimTransport {
        let (tx, rx) = mpsc::channel(4096);
        let mut inner = self.lock();
        inner.nodes.insert(addr, tx);
        inner.dead.remove(&addr);
        SimTransport {
            net: self.clone(),
            addr,
            rx,
            max: inner.config.max_datagram_size,
        }
    }

    /// Drops all traffic between the two sets, both ways, until [`SimNetwork::heal`].
    pub fn partition(&self, a: &[SocketAddr], b: &[SocketAddr]) {
        let mut inner = self.lock();
        for &x in a {
            for &y in b {
                inner.cut.insert((x, y));
                inner.cut.insert((y, x));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// Stops delivering to and from `addr` (a crash, as far as the others can tell).
    pub fn kill(&self, addr: SocketAddr) {
        self.lock().dead.insert(addr);
    }

    pub fn revive(&self, addr: SocketAddr) {
        self.lock().dead.remove(&addr);
    }

    pub fn set_loss(&self, loss: f64) {
        self.lock().config.loss = loss;
    }

    pub fn stats(&self, addr: SocketAddr) -> SimStats {
        self.lock().stats.get(&addr).copied().unwrap_or_default()
    }

    pub fn total_stats(&self) -> SimStats {
        self.lock()
            .stats
            .values()
            .fold(SimStats::default(), |a, s| SimStats {
                sent_packets: a.sent_packets + s.sent_packets,
                sent_bytes: a.sent_bytes + s.sent_bytes,
                dropped: a.dropped + s.dropped,
            })
    }

    fn send(&self, from: SocketAddr, to: SocketAddr, data: Bytes) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let stats = inner.stats.entry(from).or_default();
        stats.sent_packets += 1;
        stats.sent_bytes += data.len() as u64;
        let lost = inner.config.loss > 0.0 && inner.rng.random_bool(inner.config.loss.min(1.0));
        let blocked = inner.dead.contains(&from)
            || inner.dead.contains(&to)
            || inner.cut.contains(&(from, to))
            || data.len() > inner.config.max_datagram_size;
        let Some(tx) = inner.nodes.get(&to).filter(|_| !lost && !blocked).cloned() else {
            stats.dropped += 1;
            return;
        };
        let jitter = inner.config.jitter.as_micros() as u64;
        let extra = if jitter > 0 {
            inner.rng.random_range(0..=jitter)
        } else {
            0
        };
        let delay = inner.config.delay + Duration::from_micros(extra);
        let net = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // A node killed while the datagram was in flight does not receive it.
            let deliver = {
                let inner = net.lock();
                !inner.dead.contains(&to) && !inner.dead.contains(&from)
            };
            if deliver {
                // A full queue drops the datagram, as a UDP socket buffer would.
                let _ = tx.try_send((from, data));
            }
        });
    }
}

/// One node's end of a [`SimNetwork`].
pub struct SimTransport {
    net: SimNetwork,
    addr: SocketAddr,
    rx: mpsc::Receiver<(SocketAddr, Bytes)>,
    max: usize,
}

impl Transport for SimTransport {
    fn send(&mut self, to: SocketAddr, data: Bytes) {
        self.net.send(self.addr, to, data);
    }

    fn recv(&mut self) -> impl Future<Output = Option<(SocketAddr, Bytes)>> + Send {
        self.rx.recv()
    }

    fn max_datagram_size(&self) -> usize {
        self.max
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 7000))
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_after_delay_and_honours_partitions_and_kills() {
        let net = SimNetwork::new(SimConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            ..Default::default()
        });
        let mut a = net.endpoint(addr(1));
        let mut b = net.endpoint(addr(2));
        let t0 = tokio::time::Instant::now();
        a.send(addr(2), Bytes::from_static(b"hi"));
        assert_eq!(b.recv().await, Some((addr(1), Bytes::from_static(b"hi"))));
        assert_eq!(t0.elapsed(), Duration::from_millis(5));

        net.partition(&[addr(1)], &[addr(2)]);
        a.send(addr(2), Bytes::from_static(b"lost"));
        b.send(addr(1), Bytes::from_static(b"lost"));
        net.heal();
        a.send(addr(2), Bytes::from_static(b"after"));
        assert_eq!(
            b.recv().await.map(|p| p.1),
            Some(Bytes::from_static(b"after"))
        );

        net.kill(addr(2));
        a.send(addr(2), Bytes::from_static(b"dead"));
        net.revive(addr(2));
        a.send(addr(2), Bytes::from_static(b"alive"));
        assert_eq!(
            b.recv().await.map(|p| p.1),
            Some(Bytes::from_static(b"alive"))
        );
        assert_eq!(net.stats(addr(1)).dropped, 2);
        assert_eq!(net.stats(addr(2)).dropped, 1);

        let big = Bytes::from(vec![0u8; 2000]);
        a.send(addr(2), big);
        assert_eq!(net.stats(addr(1)).dropped, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn loss_is_seeded() {
        let run = || async {
            let net = SimNetwork::new(SimConfig {
                loss: 0.5,
                seed: 42,
                ..Default::default()
            });
            let mut a = net.endpoint(addr(1));
            let _b = net.endpoint(addr(2));
            for _ in 0..100 {
                a.send(addr(2), Bytes::from_static(b"x"));
            }
            net.stats(addr(1)).dropped
        };
        let (x, y) = (run().await, run().await);
        assert_eq!(x, y);
        assert!((20..80).contains(&x), "{x}");
    }
}
