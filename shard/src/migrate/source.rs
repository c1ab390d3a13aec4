//! The source of a migration: takes a batch of the range's keys out of the store (under the
//! slots' gates), reads the warm ones, streams the batch until the destination acknowledges
//! it, and once the range is empty claims it for the destination. On failure the keys go back.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use membership::Slot;
use membership::swim::{ClusterView, MemberState, NodeId};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::context::{Ctx, MigrateError, io};
use super::gate::Job;
use super::wire::{self, Item, encode_batch, encode_begin, encode_done};
use crate::store::{Key, Taken, WarmMeta};

/// Slots moved per step when rebalancing automatically: each step is one stream and one
/// claim, so the slot table stays a few dozen ranges even after big rebalances.
pub const AUTO_STEP_SLOTS: u16 = 256;
/// Pause between attempts to reach a destination that is still alive.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long the source waits for its own view to show a claim it made.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// One open transfer stream to a destination.
struct Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

async fn open(
    ctx: &Ctx,
    peer: SocketAddr,
    id: u64,
    first: u16,
    last: u16,
) -> Result<Stream, MigrateError> {
    let (mut send, mut recv) = ctx.streams.open_stream(peer).await.map_err(io)?;
    send.write_all(&encode_begin(&ctx.me, id, first, last))
        .await
        .map_err(io)?;
    wire::read_reply(&mut recv).await?;
    Ok(Stream { send, recv })
}

async fn exchange(s: &mut Stream, frame: &[u8]) -> Result<u32, MigrateError> {
    s.send.write_all(frame).await.map_err(io)?;
    wire::read_reply(&mut s.recv).await
}

/// Whether the source must give up on the range: the destination is down or gone (its keys
/// are lost with it, as with any node failure), this node no longer owns the range, or it is
/// stopping. A destination that is alive is never given up on once keys went to it:
/// abandoning the range would leave those keys invisible.
fn give_up(ctx: &Ctx, first: u16, last: u16, to: &NodeId) -> Option<String> {
    if ctx.stopping().is_cancelled() {
        return Some("shutting down".into());
    }
    let view = ctx.handle.load();
    if matches!(view.state_of(to), Some(MemberState::Down) | None) {
        return Some(format!("destination {to} is down"));
    }
    let lost = (first..=last)
        .any(|s| Slot::new(s).is_some_and(|slot| view.slots.owner_id(slot) != Some(ctx.me)));
    lost.then(|| "this node no longer owns the range".into())
}

/// Moves `first..=last` (all owned by this node) with their keys to `to`, then claims the
/// range for it. On failure the keys in flight go back into the store and the range stays here.
pub async fn migrate_range(
    ctx: &Ctx,
    first: u16,
    last: u16,
    to: NodeId,
) -> Result<u64, MigrateError> {
    let view = ctx.handle.view();
    if to == ctx.me {
        return Err(MigrateError::Aborted("the destination is this node".into()));
    }
    let peer = view
        .slots
        .node(&to)
        .map(|n| n.cluster_addr)
        .or_else(|| view.members.get(&to).map(|m| m.info.cluster_addr))
        .ok_or_else(|| MigrateError::Aborted(format!("unknown node {to}")))?;
    for s in first..=last {
        let owned = Slot::new(s).is_some_and(|slot| view.slots.owner_id(slot) == Some(ctx.me));
        if !owned {
            return Err(MigrateError::Aborted(format!(
                "slot {s} is not owned by this node"
            )));
        }
    }
    let m = &ctx.migrations;
    m.begin_outgoing(first, last, to);
    let started = std::time::Instant::now();
    let r = match transfer(ctx, peer, first, last, to).await {
        Ok(keys) => flip(ctx, first, last, to).await.map(|()| keys),
        Err(e) => Err(e),
    };
    m.end_outgoing(first, last);
    match &r {
        Ok(keys) => {
            m.stats.ranges_done.fetch_add(1, Ordering::Relaxed);
            m.stats
                .slots_moved
                .fetch_add(u64::from(last - first) + 1, Ordering::Relaxed);
            info!(first, last, to = %to, keys, ms = started.elapsed().as_millis() as u64, "slots migrated");
        }
        Err(e) => {
            m.stats.ranges_failed.fetch_add(1, Ordering::Relaxed);
            warn!(first, last, to = %to, "slot migration stopped: {e}");
        }
    }
    r
}

/// Streams the range's keys; returns how many moved.
async fn transfer(
    ctx: &Ctx,
    peer: SocketAddr,
    first: u16,
    last: u16,
    to: NodeId,
) -> Result<u64, MigrateError> {
    let (db, m) = (ctx.db(), &ctx.migrations);
    // Names this migration to the destination: a BEGIN with a new id for slots it was
    // importing from an abandoned migration makes it drop those stale keys first.
    let id = fastrand::u64(..);
    let mut stream: Option<Stream> = None;
    let mut sent_any = false;
    let mut moved = 0u64;
    loop {
        let taken = m.take_batch(db, first, last, ctx.now());
        if taken.is_empty() {
            break;
        }
        let items = match read_items(ctx, taken).await {
            Ok(items) => items,
            Err(e) => {
                // The keys are back in place; try again after a pause.
                m.clear_in_flight(first, last);
                warn!(first, last, "migration could not read the warm tier: {e}");
                if let Some(why) = give_up(ctx, first, last, &to) {
                    return Err(MigrateError::Aborted(why));
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        let bytes: u64 = items
            .iter()
            .map(|i| (i.key.len() + i.value.payload_bytes()) as u64)
            .sum();
        let frame = encode_batch(&items);
        // Retried until acknowledged or the destination is gone: installing is idempotent
        // (the destination keeps a key it already has), and while the keys are in flight no
        // client can change them, so a resent batch carries the same values.
        loop {
            let r = match stream.as_mut() {
                Some(s) => {
                    sent_any = true;
                    exchange(s, &frame).await
                }
                None => match open(ctx, peer, id, first, last).await {
                    Ok(mut s) => {
                        sent_any = true;
                        let r = exchange(&mut s, &frame).await;
                        stream = Some(s);
                        r
                    }
                    Err(e) => Err(e),
                },
            };
            let Err(e) = r else { break };
            stream = None;
            let refused_at_start = !sent_any && matches!(e, MigrateError::Refused(_));
            let why =
                give_up(ctx, first, last, &to).or_else(|| refused_at_start.then(|| e.to_string()));
            if let Some(why) = why {
                put_back(ctx, items);
                m.clear_in_flight(first, last);
                return Err(MigrateError::Aborted(why));
            }
            debug!(to = %to, "migration batch not acknowledged, retrying: {e}");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        moved += items.len() as u64;
        m.clear_in_flight(first, last);
        m.stats
            .keys_sent
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        m.stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }
    if let Some(mut s) = stream {
        // Best effort: the destination learns the outcome from the claim anyway.
        let _ = exchange(&mut s, &encode_done(first, last)).await;
        let _ = s.send.finish();
    }
    Ok(moved)
}

/// Turns taken keys into items, reading warm ones off the async workers.
async fn read_items(ctx: &Ctx, taken: Vec<(Slot, Taken)>) -> Result<Vec<Item>, MigrateError> {
    let mut items = Vec::new();
    let mut warm: Vec<(Slot, Vec<(Key, WarmMeta)>)> = Vec::new();
    for (slot, t) in taken {
        items.extend(t.ram.into_iter().map(|(key, value, expire_at)| Item {
            slot,
            key,
            value,
            expire_at,
        }));
        if !t.warm.is_empty() {
            warm.push((slot, t.warm));
        }
    }
    if warm.is_empty() {
        return Ok(items);
    }
    let node = ctx.node.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (slot, keys) in &warm {
            match node.db().read_taken_warm(*slot, keys) {
                Ok(recs) => out.push(recs),
                Err(e) => return (warm, Err(e.to_string())),
            }
        }
        (warm, Ok(out))
    })
    .await
    .map_err(|e| MigrateError::Warm(e.to_string()))?;
    match read {
        (warm, Ok(recs)) => {
            for ((slot, keys), recs) in warm.iter().zip(recs) {
                for ((key, _), rec) in keys.iter().zip(recs) {
                    if let Some(rec) = rec {
                        items.push(Item {
                            slot: *slot,
                            key: key.clone(),
                            value: rec.value,
                            expire_at: rec.expire_at,
                        });
                    }
                }
                ctx.db().forget_warm_records(*slot, keys);
            }
            Ok(items)
        }
        (warm, Err(e)) => {
            for (slot, keys) in warm {
                ctx.db().restore_warm(slot, keys);
            }
            put_back(ctx, items);
            Err(MigrateError::Warm(e))
        }
    }
}

/// Returns keys to the store after a failed transfer (none of them can have changed: they
/// were in flight, so clients got TRYAGAIN).
fn put_back(ctx: &Ctx, items: Vec<Item>) {
    let now = ctx.now();
    for it in items {
        ctx.db()
            .install_if_absent(it.slot, &it.key, it.value, it.expire_at, now);
    }
}

/// Claims the (now empty) range for `to` and waits until this node's own view shows it, so
/// that leaving the migrating state can never route a command here as the owner.
async fn flip(ctx: &Ctx, first: u16, last: u16, to: NodeId) -> Result<(), MigrateError> {
    let me = ctx.me;
    // The range is empty here and every key is at the destination: the claim must happen, so
    // it is retried for as long as this node runs.
    loop {
        if ctx.handle.claim(first, last, to).await.is_ok() {
            let wait = ctx.handle.wait_for(move |v: &ClusterView| {
                (first..=last)
                    .all(|s| Slot::new(s).is_some_and(|s| v.slots.owner_id(s) != Some(me)))
            });
            if let Ok(Ok(_)) = tokio::time::timeout(CLAIM_WAIT, wait).await {
                return Ok(());
            }
        }
        if ctx.stopping().is_cancelled() {
            return Err(MigrateError::Aborted(
                "shutting down before the claim".into(),
            ));
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// The source's worker: operators' jobs first, then (in automatic mode) the agent's balancing
/// plan, one range at a time.
pub async fn run_source(ctx: Ctx, mut jobs: mpsc::Receiver<Job>) {
    let stop = ctx.stopping().clone();
    let mut views = ctx.handle.subscribe();
    loop {
        let job = match jobs.try_recv() {
            Ok(j) => Some(j),
            Err(_) if ctx.auto => next_auto_job(&ctx.handle.load(), &ctx.me),
            Err(_) => None,
        };
        if let Some(j) = job {
            let failed = migrate_range(&ctx, j.first, j.last, j.to).await.is_err();
            if failed {
                // Wait for membership to move on before trying again.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            j = jobs.recv() => match j {
                Some(j) => { let _ = migrate_range(&ctx, j.first, j.last, j.to).await; }
                None => return,
            },
            r = views.changed() => if r.is_err() { return },
        }
    }
}

/// The next step of the balancing plan this node is the source of: the top slots of its
/// first move that it still owns (the plan gives from the top, so the rest of the move stays
/// one range; the published plan may lag the steps already taken by up to a plan period).
pub fn next_auto_job(view: &ClusterView, me: &NodeId) -> Option<Job> {
    let mine = |s: u16| Slot::new(s).is_some_and(|slot| view.slots.owner_id(slot) == Some(*me));
    view.plan
        .iter()
        .filter(|m| m.from == Some(*me) && view.state_of(&m.to) == Some(MemberState::Alive))
        .find_map(|m| {
            let last = (m.first..=m.last).rev().find(|&s| mine(s))?;
            let mut first = last;
            while first > m.first && last - first + 1 < AUTO_STEP_SLOTS && mine(first - 1) {
                first -= 1;
            }
            Some(Job {
                first,
                last,
                to: m.to,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Arc;

    #[test]
    fn auto_jobs_take_the_top_of_this_nodes_first_move() {
        use membership::swim::{Claim, Member, Move, NodeInfo, SlotOwnership, SlotTable};
        use std::collections::BTreeMap;
        let info = |n: u8| NodeInfo {
            id: NodeId([n; 20]),
            client_addr: format!("127.0.0.1:{}", 7000 + u16::from(n)),
            cluster_addr: SocketAddr::from(([127, 0, 0, 1], 17000 + u16::from(n))),
        };
        let (a, b, c) = (info(1), info(2), info(3));
        let members = BTreeMap::from([
            (
                b.id,
                Member {
                    info: b.clone(),
                    state: MemberState::Alive,
                },
            ),
            (
                c.id,
                Member {
                    info: c.clone(),
                    state: MemberState::Down,
                },
            ),
        ]);
        let mut view = ClusterView {
            me: a.clone(),
            members,
            slots: Arc::new(SlotOwnership::new(
                SlotTable::from_claims(&[
                    Claim {
                        first: 0,
                        last: 16383,
                        owner: a.id,
                        epoch: 1,
                    },
                    // Already moved by an earlier step the plan does not show yet.
                    Claim {
                        first: 8900,
                        last: 8999,
                        owner: b.id,
                        epoch: 2,
                    },
                ]),
                HashMap::new(),
            )),
            plan: vec![
                Move {
                    first: 0,
                    last: 99,
                    from: Some(b.id),
                    to: a.id,
                },
                Move {
                    first: 5000,
                    last: 5999,
                    from: Some(a.id),
                    to: c.id,
                },
                Move {
                    first: 6000,
                    last: 6009,
                    from: Some(a.id),
                    to: b.id,
                },
            ],
            version: 1,
        };
        // The move to the down node is skipped; a short move is taken whole.
        assert_eq!(
            next_auto_job(&view, &a.id),
            Some(Job {
                first: 6000,
                last: 6009,
                to: b.id
            })
        );
        view.plan[2] = Move {
            first: 6000,
            last: 8999,
            from: Some(a.id),
            to: b.id,
        };
        assert_eq!(
            next_auto_job(&view, &a.id),
            Some(Job {
                first: 8900 - AUTO_STEP_SLOTS,
                last: 8899,
                to: b.id
            })
        );
        assert_eq!(next_auto_job(&view, &c.id), None);
    }
}
