//! The destination of a migration: accepts transfer streams from live members that own the
//! range, and installs each batch's keys (a key this node already has a value for is kept:
//! it was written here after the source gave it up, so it is newer).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use membership::Slot;
use membership::swim::{MemberState, NodeId};
use tracing::debug;

use super::context::{Ctx, MigrateError};
use super::wire::{Frame, Item, REPLY_OK, REPLY_REFUSED, read_frame, write_reply};

/// Accepts transfer streams from other members and serves each on its own task.
pub async fn run_destination(ctx: Ctx) {
    let stop = ctx.stopping().clone();
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => return,
            s = ctx.streams.accept_stream() => match s {
                Some(s) => s,
                None => return,
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let peer = incoming.peer;
            if let Err(e) = serve_import(&ctx, incoming).await {
                debug!(%peer, "migration stream ended: {e}");
            }
        });
    }
}

async fn serve_import(ctx: &Ctx, s: membership::swim::IncomingStream) -> Result<(), MigrateError> {
    let (peer, mut send, mut recv) = (s.peer, s.send, s.recv);
    let mut source: Option<(NodeId, u16, u16)> = None;
    while let Some(frame) = read_frame(&mut recv).await? {
        match frame {
            Frame::Begin {
                from,
                id,
                first,
                last,
            } => match accept_begin(ctx, peer, from, id, first, last) {
                Ok(()) => {
                    source = Some((from, first, last));
                    write_reply(&mut send, REPLY_OK, 0, "").await?;
                }
                Err(why) => {
                    write_reply(&mut send, REPLY_REFUSED, 0, &why).await?;
                    return Err(MigrateError::Refused(why));
                }
            },
            Frame::Batch(items) => {
                let Some((from, first, last)) = source else {
                    write_reply(&mut send, REPLY_REFUSED, 0, "batch before begin").await?;
                    return Err(MigrateError::Frame("batch before begin"));
                };
                match install(ctx, from, first, last, items) {
                    Ok(n) => write_reply(&mut send, REPLY_OK, n, "").await?,
                    Err(why) => {
                        write_reply(&mut send, REPLY_REFUSED, 0, &why).await?;
                        return Err(MigrateError::Refused(why));
                    }
                }
            }
            Frame::Done { .. } => write_reply(&mut send, REPLY_OK, 0, "").await?,
            // Cluster-wide PUBLISH: delivered here, never answered.
            Frame::Publish { channel, message } => ctx.node.publish(&channel, &message),
        }
    }
    Ok(())
}

/// Accepts a range from `from` if it is a live member talking from its own cluster address
/// and owns the range in our view (or the range is already ours: a retried transfer).
fn accept_begin(
    ctx: &Ctx,
    peer: SocketAddr,
    from: NodeId,
    id: u64,
    first: u16,
    last: u16,
) -> Result<(), String> {
    let view = ctx.handle.load();
    let member = view
        .members
        .get(&from)
        .filter(|m| m.state != MemberState::Down)
        .ok_or_else(|| format!("{from} is not a live member"))?;
    if member.info.cluster_addr != peer {
        return Err(format!("{from} is not at {peer}"));
    }
    for s in first..=last {
        let owner = Slot::new(s).and_then(|slot| view.slots.owner_id(slot));
        if owner != Some(from) {
            return Err(format!("slot {s} is not owned by {from}"));
        }
    }
    ctx.migrations
        .begin_incoming(ctx.db(), first, last, from, id);
    Ok(())
}

/// Installs a batch: each key unless this node already has a value for it.
fn install(
    ctx: &Ctx,
    from: NodeId,
    first: u16,
    last: u16,
    items: Vec<Item>,
) -> Result<u32, String> {
    let (db, m) = (ctx.db(), &ctx.migrations);
    let now = ctx.now();
    let mut n = 0u32;
    for it in items {
        let s = it.slot.get();
        if s < first || s > last {
            return Err(format!("slot {s} is outside the range"));
        }
        let _gate = m.gate(it.slot);
        if m.importing_from(s) != Some(from) {
            return Err(format!("slot {s} is not being imported from {from}"));
        }
        n += u32::from(db.install_if_absent(it.slot, &it.key, it.value, it.expire_at, now));
    }
    m.stats
        .keys_received
        .fetch_add(u64::from(n), Ordering::Relaxed);
    // Migrated keys count against maxmemory like any write: demote or evict as configured.
    let _ = db.make_room(now);
    Ok(n)
}
