//! Cluster-wide PUBLISH, as Redis Cluster propagates it: a message published on one node
//! reaches the subscribers of every node. The PUBLISH command queues it here without waiting
//! (a full queue drops it for the other nodes: a publisher is never held up by the cluster
//! bus); one task writes it to every live member over a long-lived QUIC stream per member, as
//! a PUBLISH frame (`wire`), which the member's `run_destination` hands to its subscribers.
//!
//! Delivery to other nodes is best effort and at most once, in publishing order per member: a
//! member that is unreachable or whose stream fails misses what was sent meanwhile. PUBLISH's
//! reply counts this node's receivers only, as in Redis Cluster. Shard channels (SPUBLISH)
//! are not forwarded: a shard channel lives on the node that owns its slot.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use membership::swim::MemberState;
use tokio::sync::mpsc;
use tracing::debug;

use super::context::Ctx;
use super::wire::encode_publish;

/// Messages waiting for the bus; beyond this, PUBLISH drops them for the other nodes.
const QUEUE: usize = 4096;

/// The PUBLISH side of the forwarding task.
pub struct Forwarder {
    tx: mpsc::Sender<(Bytes, Bytes)>,
    /// Messages not forwarded because the queue was full.
    pub dropped: AtomicU64,
}

/// Messages for [`run_forwarder`].
pub type Outbox = mpsc::Receiver<(Bytes, Bytes)>;

impl Forwarder {
    pub fn new() -> (Forwarder, Outbox) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Forwarder {
                tx,
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Queues a PUBLISH for the other nodes (never waits).
    pub fn forward(&self, channel: &[u8], message: &[u8]) {
        let m = (
            Bytes::copy_from_slice(channel),
            Bytes::copy_from_slice(message),
        );
        if self.tx.try_send(m).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Writes queued messages to every live member until the server stops.
pub async fn run_forwarder(ctx: Ctx, mut outbox: Outbox) {
    let mut streams: HashMap<SocketAddr, quinn::SendStream> = HashMap::new();
    loop {
        let (channel, message) = tokio::select! {
            _ = ctx.stopping().cancelled() => return,
            m = outbox.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let frame = encode_publish(&channel, &message);
        let peers: Vec<SocketAddr> = ctx
            .handle
            .load()
            .members
            .values()
            .filter(|m| m.state != MemberState::Down)
            .map(|m| m.info.cluster_addr)
            .collect();
        streams.retain(|addr, _| peers.contains(addr));
        for peer in peers {
            let send = match streams.entry(peer) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => match ctx.streams.open_stream(peer).await {
                    // The receive side is unused: PUBLISH frames are not answered.
                    Ok((send, _)) => v.insert(send),
                    Err(e) => {
                        debug!(%peer, "cannot forward PUBLISH: {e}");
                        continue;
                    }
                },
            };
            if let Err(e) = send.write_all(&frame).await {
                debug!(%peer, "PUBLISH stream failed: {e}");
                streams.remove(&peer);
            }
        }
    }
}
