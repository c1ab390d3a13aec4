//! Keeping the store to the slots this node serves: imports end once decided, and keys of
//! slots that belong to other nodes (and are not being imported) are dropped.

use std::sync::Arc;
use std::time::Duration;

use membership::Slot;
use membership::swim::ClusterView;
use tracing::info;

use super::context::Ctx;
use super::gate::SlotState;

/// On every new view (and once a second): ends imports that are decided (the slot is ours, or
/// the source is gone and the slot went elsewhere) and drops the keys of slots that belong to
/// other nodes and are not being imported.
pub async fn maintain(ctx: Ctx) {
    let stop = ctx.stopping().clone();
    let mut rx = ctx.handle.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let view: Arc<ClusterView> = rx.borrow_and_update().clone();
        settle(&ctx, &view);
        tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

fn settle(ctx: &Ctx, view: &ClusterView) {
    let (db, m, me) = (ctx.db(), &ctx.migrations, ctx.me);
    for (s, from) in m.incoming_slots() {
        let Some(slot) = Slot::new(s) else { continue };
        let owner = view.slots.owner_id(slot);
        // Decided once the slot is ours (keep the keys) or went to a third node (drop them).
        // A dead source stays the owner until survivors take its slots over.
        if owner == Some(me) || owner != Some(from) {
            let _gate = m.exclusive(slot);
            m.end_incoming(s);
        }
    }
    let mut dropped = 0usize;
    for slot in Slot::all() {
        if db.count_in_slot(slot) == 0 || view.slots.owner_id(slot).is_none_or(|o| o == me) {
            continue;
        }
        let _gate = m.exclusive(slot);
        if matches!(m.state(slot), SlotState::Importing { .. }) {
            continue;
        }
        dropped += db.drop_slot(slot);
    }
    if dropped > 0 {
        info!(
            keys = dropped,
            "dropped keys of slots now owned by other nodes"
        );
    }
}
