//! A chunk: the requests of one client read, planned, their batches sent to the backends, and
//! the batches' replies as they arrive. The session keeps chunks in a FIFO and answers the
//! oldest once all its batches are answered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::backend::{Backend, Batch, BatchResult};
use crate::error::BackendError;
use crate::plan::{ChunkBuilder, Item, Meta};
use crate::protocol::Proto;

/// Requests to one shard this large (a big value) go on the shard's bulk connection, so other
/// clients' small requests do not queue behind the transfer. The session sends such a chunk
/// only when nothing else of its own is in flight, and nothing after it until it is answered:
/// its commands stay in order.
pub(super) const LARGE_BATCH: usize = 1 << 20;

/// One backend batch of a chunk.
pub(super) struct GroupRx {
    pub(super) backend: Arc<Backend>,
    rx: oneshot::Receiver<BatchResult>,
    /// The batch's replies once they arrived, and when (for traces).
    pub(super) result: Option<(BatchResult, Instant)>,
    /// A pinned connection stays open at least until this batch is answered.
    _pin: Option<Arc<crate::backend::Pinned>>,
}

/// A chunk sent to the backends, waiting to be answered. Invariant: `meta` is empty or
/// parallel to `items`.
pub(super) struct Chunk {
    pub(super) items: Vec<Item>,
    pub(super) meta: Vec<Meta>,
    pub(super) started: Option<Instant>,
    pub(super) groups: Vec<GroupRx>,
    pub(super) proto: Proto,
    pub(super) close: bool,
    /// Writes in it that fence near-cache keys.
    pub(super) writes: usize,
    /// It holds a blocking command (on a connection of its own).
    pub(super) blocking: bool,
    /// (P|S)SUBSCRIBE items in it.
    pub(super) subscribes: usize,
}

/// Sends the chunk's backend batches, then queues the chunk to be answered; returns its items.
pub(super) async fn dispatch(
    queue: &mut VecDeque<Chunk>,
    chunk: ChunkBuilder,
    hint: usize,
    close: bool,
    bulk: bool,
) -> usize {
    if chunk.items.is_empty() && !close {
        return 0;
    }
    let items = chunk.items.len();
    let mut groups = Vec::with_capacity(chunk.groups.len());
    let mut blocking = false;
    for g in chunk.groups {
        let (done, rx) = oneshot::channel();
        let large = bulk && g.buf.len() >= LARGE_BATCH;
        let batch = Batch {
            bytes: g.buf.freeze(),
            count: g.count as usize,
            done,
        };
        if let Some(pin) = &g.pinned {
            pin.send(batch).await;
        } else if let Some(permit) = g.dedicated {
            blocking = true;
            g.backend.send_dedicated(batch, permit);
        } else if large {
            g.backend.send_bulk(batch).await;
        } else {
            g.backend.send(hint, batch).await;
        }
        groups.push(GroupRx {
            backend: g.backend,
            rx,
            result: None,
            _pin: g.pinned,
        });
    }
    queue.push_back(Chunk {
        items: chunk.items,
        meta: chunk.meta,
        started: chunk.started,
        groups,
        proto: chunk.proto,
        close,
        writes: chunk.writes,
        blocking,
        subscribes: chunk.subscribes,
    });
    items
}

/// Completes when every batch of the oldest queued chunk has its replies. Cancel-safe: a reply
/// that arrived is kept in its group.
pub(super) async fn head_answered(queue: &mut VecDeque<Chunk>) {
    let Some(chunk) = queue.front_mut() else {
        return;
    };
    for g in &mut chunk.groups {
        if g.result.is_none() {
            let r = (&mut g.rx).await.unwrap_or_else(|_| {
                Err(BackendError::Lost {
                    addr: g.backend.addr.clone(),
                    reason: "request dropped".into(),
                })
            });
            g.result = Some((r, Instant::now()));
        }
    }
}
