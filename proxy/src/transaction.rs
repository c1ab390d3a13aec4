//! MULTI/EXEC through the proxy. The proxy keeps the transaction itself: after MULTI each
//! command is checked (known, arity, its keys in the transaction's one slot, as Redis
//! Cluster requires) and answered `+QUEUED`; a command that fails a check is answered with
//! its error and makes EXEC answer `-EXECABORT`, as Redis does. EXEC sends `MULTI`, the queued
//! commands and `EXEC` as one batch to the slot's owner: a batch goes out whole on one backend
//! connection, so the shard runs it as one transaction, and a connection lost on the way
//! leaves nothing applied (the shard discards an unfinished MULTI). The client gets the
//! shard's EXEC reply.
//!
//! WATCH needs the watching connection to be the one that sends EXEC, across the client's
//! round trips; it is refused until the proxy pins backend connections to clients.

use bytes::{Bytes, BytesMut};
use membership::Slot;
use membership::command::{CommandId, CommandSpec, Route};
use membership::frame::Request;
use membership::resp::{CommandError, Reply};

use crate::client::Session;
use crate::error::CmdError;
use crate::plan::{ChunkBuilder, Conv, Item};
use crate::shared::Shared;
use crate::topology::Topology;

const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

/// A client's open transaction.
#[derive(Default)]
pub struct Tx {
    queued: Vec<(&'static CommandSpec, Request)>,
    /// The slot of the keys queued so far.
    slot: Option<Slot>,
    /// A command failed its checks: EXEC answers `-EXECABORT`.
    pub aborted: bool,
}

/// The commands that run at once inside MULTI instead of being queued.
pub fn runs_at_once(id: CommandId) -> bool {
    matches!(
        id,
        CommandId::Exec
            | CommandId::Discard
            | CommandId::Multi
            | CommandId::Watch
            | CommandId::Quit
            | CommandId::Reset
    )
}

/// A command inside MULTI (already known, authenticated and of the right arity).
pub fn queue(
    sess: &mut Session,
    spec: &'static CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    let Some(tx) = sess.tx.as_mut() else {
        return;
    };
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
            Some(_) => Ok(Reply::Ok),
            None => Err(CmdError::err("DISCARD without MULTI")),
        },
        CommandId::Watch if sess.tx.is_some() => {
            Err(CmdError::err("WATCH inside MULTI is not allowed"))
        }
        CommandId::Watch => Err(CmdError::Unsupported {
            name: "WATCH".into(),
            reason: "the watching backend connection would have to send the EXEC; MULTI/EXEC without WATCH works",
        }),
        // No key can be watched through the proxy: nothing to forget. (Inside MULTI it is
        // queued like any command.)
        CommandId::Unwatch => Ok(Reply::Ok),
        CommandId::Exec => match sess.tx.take() {
            None => Err(CmdError::err("EXEC without MULTI")),
            Some(tx) if tx.aborted => Err(CmdError::from(CommandError::Raw(
                "EXECABORT Transaction discarded because of previous errors.".into(),
            ))),
            Some(tx) if tx.queued.is_empty() => Ok(Reply::Array(Vec::new())),
            Some(tx) => return exec(sess, shared, topo, tx, chunk),
        },
        _ => Err(CmdError::err("not a transaction command")),
    };
    chunk.ready(match reply {
        Ok(r) => r,
        Err(e) => e.into(),
    });
}

/// Sends `MULTI`, the queue and `EXEC` as one batch to the owner of the transaction's slot
/// (any shard when no command names a key); only EXEC's reply reaches the client.
fn exec(sess: &mut Session, shared: &Shared, topo: &Topology, tx: Tx, chunk: &mut ChunkBuilder) {
    let backend = match tx.slot {
        Some(slot) => topo.owner(slot),
        None => topo.backends.first(),
    };
    let Some(backend) = backend else {
        return chunk.ready(CmdError::ClusterDown(tx.slot.map_or(0, |s| s.get())).into());
    };
    let mut fences = Vec::new();
    let mut whole = BytesMut::from(MULTI);
    chunk.add_unanswered(backend, Bytes::from_static(MULTI));
    for (spec, req) in &tx.queued {
        if let Some(f) = shared.hotkeys.on_write(spec, req) {
            fences.extend(f);
        }
        whole.extend_from_slice(&req.raw);
        chunk.add_unanswered(backend, req.raw.clone());
    }
    whole.extend_from_slice(EXEC);
    let replies = u32::try_from(tx.queued.len() + 2).unwrap_or(u32::MAX);
    let part = chunk.add_exec(
        backend,
        Bytes::from_static(EXEC),
        whole.freeze(),
        replies,
        tx.slot,
    );
    chunk.items.push(Item::Fwd {
        part,
        conv: Conv::Plain,
    });
    // The near cache drops what the transaction wrote once its reply is rendered.
    if !fences.is_empty() {
        sess.writes += 1;
        chunk.writes += 1;
        chunk.items.push(Item::Release(fences));
    }
}
