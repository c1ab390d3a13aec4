//! MULTI/EXEC through the proxy. The proxy keeps the transaction itself: after MULTI each
//! command is checked (known, arity, its keys in the transaction's one slot, as Redis
//! Cluster requires) and answered `+QUEUED`; a command that fails a check is answered with
//! its error and makes EXEC answer `-EXECABORT`, as Redis does. EXEC sends `MULTI`, the queued
//! commands and `EXEC` as one batch to the slot's owner: a batch goes out whole on one backend
//! connection, so the shard runs it as one transaction, and a connection lost on the way
//! leaves nothing applied (the shard discards an unfinished MULTI). The client gets the
//! shard's EXEC reply. A queued EVALSHA whose script the proxy has seen is preceded by a
//! `SCRIPT LOAD` of it, ahead of MULTI: inside a transaction a `-NOSCRIPT` cannot be healed.
//!
//! WATCH pins the client to a backend connection of its own on the watched slot's owner
//! ([`crate::backend::Pinned`]): the WATCH goes there, and so does the transaction's batch,
//! since a watch belongs to the connection that set it. EXEC, DISCARD, UNWATCH and RESET
//! let the connection go (closing it, which ends the watch on the shard). The watched keys
//! and the transaction's keys share one slot. Nothing sent on a pinned connection is
//! redirected: an EXEC whose slot moved away answers a null array, as a transaction whose
//! watched keys changed (a slot moving away dirties a watch in Redis Cluster too).

use bytes::{Bytes, BytesMut};
use membership::Slot;
use membership::command::{CommandId, CommandSpec, Route};
use membership::frame::Request;
use membership::resp::{CommandError, Reply};

use std::sync::Arc;

use crate::backend::Pinned;
use crate::client::Session;
use crate::error::CmdError;
use crate::plan::{ChunkBuilder, Conv, Item};
use crate::shared::Shared;
use crate::topology::Topology;

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

/// A client's watch: its pinned connection and the watched keys' slot.
pub struct Watch {
    pin: Arc<Pinned>,
    slot: Slot,
}

/// A client's open transaction.
#[derive(Default)]
pub struct Tx {
    queued: Vec<(&'static CommandSpec, Request)>,
    /// The slot of the keys queued so far.
    slot: Option<Slot>,
    /// A command failed its checks: EXEC answers `-EXECABORT`.
    pub aborted: bool,
}

/// A command inside MULTI (already known, authenticated and of the right arity).
pub fn queue(
    sess: &mut Session,
    spec: &'static CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    let watched = sess.watch.as_ref().map(|w| w.slot);
    let Some(tx) = sess.tx.as_mut() else {
        return;
    };
    if tx.slot.is_none() {
        tx.slot = watched;
    }
    match check(tx, spec, &req) {
        Ok(slot) => {
            if slot.is_some() {
                tx.slot = slot;
            }
            if !tx.aborted {
                tx.queued.push((spec, req));
            }
            chunk.ready(Reply::Simple("QUEUED"));
        }
        Err(e) => {
            tx.aborted = true;
            chunk.ready(e.into());
        }
    }
}

/// Whether a command may join the transaction, and its slot.
fn check(tx: &Tx, spec: &CommandSpec, req: &Request) -> Result<Option<Slot>, CmdError> {
    let unsupported = |reason| CmdError::Unsupported {
        name: spec.name.into(),
        reason,
    };
    match spec.route {
        // Answered by whoever holds the connection: inside a transaction they would run on a
        // backend connection instead (AUTH, HELLO, CLIENT ...).
        Route::Local if !matches!(spec.id, CommandId::Ping | CommandId::Echo) => {
            return Err(unsupported(
                "it is answered by the proxy, not inside a transaction",
            ));
        }
        Route::AllShards(_) => {
            return Err(unsupported("a transaction runs on one shard"));
        }
        _ => {}
    }
    let mut slot = tx.slot;
    for i in spec.key_positions(req.argc(), |i| req.arg(i)) {
        let s = Slot::for_key(req.arg(i));
        match slot {
            Some(prev) if prev != s => return Err(CmdError::CrossSlot),
            _ => slot = Some(s),
        }
    }
    Ok(slot)
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH outside a queue.
pub fn command(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    spec: &'static CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    let reply = match spec.id {
        CommandId::Multi if sess.tx.is_some() => {
            Err(CmdError::err("MULTI calls can not be nested"))
        }
        CommandId::Multi => {
            sess.tx = Some(Tx::default());
            Ok(Reply::Ok)
        }
        CommandId::Discard => match sess.tx.take() {
            Some(_) => {
                sess.watch = None;
                Ok(Reply::Ok)
            }
            None => Err(CmdError::err("DISCARD without MULTI")),
        },
        CommandId::Watch if sess.tx.is_some() => {
            Err(CmdError::err("WATCH inside MULTI is not allowed"))
        }
        CommandId::Watch => return watch(sess, topo, req, chunk),
        CommandId::Unwatch => {
            sess.watch = None;
            Ok(Reply::Ok)
        }
        CommandId::Exec => {
            let watch = sess.watch.take();
            match sess.tx.take() {
                None => {
                    sess.watch = watch;
                    Err(CmdError::err("EXEC without MULTI"))
                }
                Some(tx) if tx.aborted => Err(CmdError::from(CommandError::Raw(
                    "EXECABORT Transaction discarded because of previous errors.".into(),
                ))),
                Some(tx) if tx.queued.is_empty() && watch.is_none() => Ok(Reply::Array(Vec::new())),
                Some(tx) => return exec(sess, shared, topo, tx, watch, chunk),
            }
        }
        _ => Err(CmdError::err("not a transaction command")),
    };
    chunk.ready(match reply {
        Ok(r) => r,
        Err(e) => e.into(),
    });
}

/// WATCH: forwarded on the client's pinned connection (opened for the first WATCH).
fn watch(sess: &mut Session, topo: &Topology, req: Request, chunk: &mut ChunkBuilder) {
    let mut slot = sess.watch.as_ref().map(|w| w.slot);
    for i in 1..req.argc() {
        let s = Slot::for_key(req.arg(i));
        match slot {
            Some(prev) if prev != s => return chunk.ready(CmdError::CrossSlot.into()),
            _ => slot = Some(s),
        }
    }
    let Some(slot) = slot else {
        return chunk.ready(CmdError::err("wrong number of arguments for 'watch' command").into());
    };
    if sess.watch.is_none() {
        let Some(backend) = topo.owner(slot) else {
            return chunk.ready(CmdError::ClusterDown(slot.get()).into());
        };
        sess.watch = Some(Watch {
            pin: Pinned::new(backend.clone()),
            slot,
        });
    }
    if let Some(w) = &sess.watch {
        let part = chunk.add_pinned(&w.pin, req.raw, 1, Some(slot));
        chunk.items.push(Item::Fwd {
            part,
            conv: Conv::Plain,
        });
    }
}

/// Sends `MULTI`, the queue and `EXEC` as one batch to the owner of the transaction's slot
/// (any shard when no command names a key), or on the client's pinned connection after
/// WATCH; only EXEC's reply reaches the client.
fn exec(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    tx: Tx,
    watch: Option<Watch>,
    chunk: &mut ChunkBuilder,
) {
    let mut fences = Vec::new();
    // Scripts of queued EVALSHAs this proxy knows, loaded ahead of MULTI (their replies
    // dropped), so the shard has them whichever shard the client's script first ran on.
    let loads: Vec<Bytes> = tx
        .queued
        .iter()
        .filter_map(|(spec, req)| shared.scripts.load_before_exec(spec, req))
        .collect();
    let mut whole = BytesMut::from(MULTI);
    for (spec, req) in &tx.queued {
        if let Some(f) = shared.hotkeys.on_write(spec, req) {
            fences.extend(f);
        }
        whole.extend_from_slice(&req.raw);
    }
    whole.extend_from_slice(EXEC);
    let replies = u32::try_from(tx.queued.len() + 2).unwrap_or(u32::MAX);
    let part = match &watch {
        Some(w) => {
            // Nothing on a pinned connection is resent: the loads go in the one batch.
            let mut batch = BytesMut::new();
            for load in &loads {
                batch.extend_from_slice(load);
            }
            batch.extend_from_slice(&whole);
            let replies = replies.saturating_add(u32::try_from(loads.len()).unwrap_or(u32::MAX));
            chunk.add_pinned(&w.pin, batch.freeze(), replies, Some(w.slot))
        }
        None => {
            let backend = match tx.slot {
                Some(slot) => topo.owner(slot),
                None => topo.backends.first(),
            };
            let Some(backend) = backend else {
                return chunk.ready(CmdError::ClusterDown(tx.slot.map_or(0, |s| s.get())).into());
            };
            // Sent ahead, outside `whole`: a redirected transaction is resent after ASKING,
            // which must come right before its MULTI.
            for load in loads {
                chunk.add_unanswered(backend, load);
            }
            chunk.add_unanswered(backend, Bytes::from_static(MULTI));
            for (_, req) in &tx.queued {
                chunk.add_unanswered(backend, req.raw.clone());
            }
            chunk.add_exec(
                backend,
                Bytes::from_static(EXEC),
                whole.freeze(),
                replies,
                tx.slot,
            )
        }
    };
    let convs = tx
        .queued
        .iter()
        .map(|(spec, req)| crate::plan::conv_for(spec, req))
        .collect();
    chunk.items.push(Item::Exec { part, convs });
    // The near cache drops what the transaction wrote once its reply is rendered.
    if !fences.is_empty() {
        sess.writes += 1;
        chunk.writes += 1;
        chunk.items.push(Item::Release(fences));
    }
}
