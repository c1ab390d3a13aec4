//! Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH, with Redis 7's semantics.
//!
//! After MULTI, commands are checked (name, arity, authentication, in cluster mode their
//! slot) and queued; one that fails a check is answered with its error and makes EXEC answer
//! `-EXECABORT`. EXEC runs the queue holding the write side of the gates of every slot its
//! commands name (`crate::gates`), so no other client's keyed command runs in between;
//! errors of single commands are returned in place. Blocking commands do not block inside
//! EXEC, and clients blocked on keys the transaction wrote are served when it ends, as Redis
//! serves them after EXEC.
//!
//! WATCH registers the connection on its keys (`crate::watch`); any change to one of them
//! before EXEC — a write, expiry, eviction, FLUSHALL, its slot migrating away — makes EXEC
//! answer a null array. A write command dirties its watchers whether or not it changed the
//! value (Redis skips writes that change nothing, such as `SADD` of a present member): a
//! transaction can fail where Redis's would have run, never the reverse.

use std::sync::Arc;

use bytes::Bytes;
use membership::Slot;
use membership::command::{CommandId, CommandSpec, Flags};
use membership::resp::CommandError;

use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::shared::Shared;
use crate::watch::Watcher;

/// One connection's transaction state.
#[derive(Default)]
pub struct Tx {
    /// The queued commands, while in MULTI.
    queue: Option<Vec<(&'static CommandSpec, Args)>>,
    /// A command failed its checks while queueing: EXEC answers `-EXECABORT`.
    aborted: bool,
    /// Watched keys, and this connection's dirty flag (made at its first WATCH).
    watched: Vec<Bytes>,
    watcher: Option<Arc<Watcher>>,
    /// While EXEC runs: the keys its writes named, to serve blocked clients afterwards.
    exec_writes: Option<Vec<Bytes>>,
}

impl Tx {
    #[inline]
    pub fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// Whether EXEC is running its queue (blocking commands then answer at once).
    #[inline]
    pub fn in_exec(&self) -> bool {
        self.exec_writes.is_some()
    }

    /// A command was refused while queueing (Redis's `flagTransaction`).
    #[inline]
    pub fn flag(&mut self) {
        if self.queue.is_some() {
            self.aborted = true;
        }
    }

    /// The queued commands' arguments.
    pub fn queued(&self) -> impl Iterator<Item = &Args> {
        self.queue.iter().flatten().map(|(_, a)| a)
    }

    /// A script starts: like EXEC, its commands do not block and the clients blocked on the
    /// keys it writes are served when it ends. `false` when already inside EXEC (the
    /// transaction ends it).
    pub fn begin_script(&mut self) -> bool {
        if self.exec_writes.is_some() {
            return false;
        }
        self.exec_writes = Some(Vec::new());
        true
    }

    /// The script begun by [`Tx::begin_script`] ended: the keys its writes named.
    pub fn end_script(&mut self) -> Vec<Bytes> {
        self.exec_writes.take().unwrap_or_default()
    }

    /// Keys a write inside EXEC named; `false` outside EXEC (serve blocked clients now).
    pub fn defer_written(&mut self, keys: impl Iterator<Item = Bytes>) -> bool {
        match &mut self.exec_writes {
            Some(w) => {
                w.extend(keys);
                true
            }
            None => false,
        }
    }
}

pub fn multi(s: &mut Session) -> CmdResult {
    if s.tx.in_multi() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    s.tx.queue = Some(Vec::new());
    Ok(Reply::Ok)
}

pub fn discard(s: &mut Session) -> CmdResult {
    if !s.tx.in_multi() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    reset(s);
    Ok(Reply::Ok)
}

/// Leaves MULTI and forgets the watched keys (DISCARD, EXEC, RESET, disconnect).
pub fn reset(s: &mut Session) {
    s.tx.queue = None;
    s.tx.aborted = false;
    unwatch_all(s);
}

pub fn watch(s: &mut Session, a: &Args) -> CmdResult {
    if s.tx.in_multi() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let w =
        s.tx.watcher
            .get_or_insert_with(|| Watcher::new(s.handle.id))
            .clone();
    // No point in watching once dirty: EXEC fails anyway.
    if w.is_dirty() {
        return Ok(Reply::Ok);
    }
    for k in a.slice(1) {
        if s.tx.watched.contains(k) {
            continue;
        }
        // An expired key is deleted first: its deletion is then no change for this watch.
        s.shared.db.has_key(k, s.now);
        s.shared.watches.watch(k, &w);
        s.tx.watched.push(k.clone());
    }
    Ok(Reply::Ok)
}

pub fn unwatch(s: &mut Session) -> CmdResult {
    unwatch_all(s);
    Ok(Reply::Ok)
}

fn unwatch_all(s: &mut Session) {
    if let Some(w) = &s.tx.watcher {
        if !s.tx.watched.is_empty() {
            s.shared.watches.unwatch(&s.tx.watched, w);
            s.tx.watched.clear();
        }
        w.clear();
    }
}

/// A command inside MULTI: checked, then queued (`+QUEUED`) or refused (and the transaction
/// marked to abort).
pub fn queue(s: &mut Session, shared: &Shared, spec: &'static CommandSpec, a: &Args) -> CmdResult {
    if let Err(e) = admit(s, shared, spec, a) {
        s.tx.aborted = true;
        return Err(e);
    }
    if !s.tx.aborted
        && let Some(q) = &mut s.tx.queue
    {
        q.push((spec, a.clone()));
    }
    Ok(Reply::Simple("QUEUED"))
}

/// The checks a command passes before it is queued, beyond those of every command.
fn admit(s: &mut Session, shared: &Shared, spec: &CommandSpec, a: &Args) -> Result<(), CmdError> {
    if spec.id == CommandId::Shutdown {
        return Err(CmdError::err("Command not allowed inside a transaction"));
    }
    if let Some(c) = shared.cluster.get()
        && spec.has_keys()
    {
        let asking = s.asking;
        let keys = || spec.key_positions(a.len(), |i| a.get(i)).map(|i| a.get(i));
        let view = c.handle.load();
        crate::cluster::route(
            &view.slots,
            &c.me,
            keys().map(Slot::for_key),
            |slot| c.migrations.state(slot),
            asking,
            || match keys().next() {
                Some(k) => c
                    .migrations
                    .presence(&shared.db, Slot::for_key(k), keys(), s.now),
                None => crate::migrate::Presence::default(),
            },
        )
        .into_result()?;
    }
    // Queueing could take unbounded memory: refused when over maxmemory, as in Redis.
    if shared.db.make_room(s.now).is_err() {
        return Err(CmdError::Oom);
    }
    Ok(())
}

/// EXEC: runs the queue atomically, or answers why not.
pub fn exec(s: &mut Session, shared: &Shared) -> CmdResult {
    let Some(queue) = s.tx.queue.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    let keys: Vec<&[u8]> = queue
        .iter()
        .flat_map(|(spec, a)| spec.key_positions(a.len(), |i| a.get(i)).map(|i| a.get(i)))
        .collect();
    let _gates = shared
        .gates()
        .exclusive_many(keys.iter().map(|k| Slot::for_key(k)));
    if let Some(c) = shared.cluster.get() {
        let asking = std::mem::take(&mut s.asking);
        let view = c.handle.load();
        let routed = crate::cluster::route(
            &view.slots,
            &c.me,
            keys.iter().map(|k| Slot::for_key(k)),
            |slot| c.migrations.state(slot),
            asking,
            || match keys.first() {
                Some(k) => {
                    c.migrations
                        .presence(&shared.db, Slot::for_key(k), keys.iter().copied(), s.now)
                }
                None => crate::migrate::Presence::default(),
            },
        );
        if let Err(e) = routed.into_result() {
            reset(s);
            return Err(e);
        }
    }
    let denyoom = queue
        .iter()
        .any(|(spec, _)| spec.flags.contains(Flags::DENYOOM));
    if denyoom && shared.db.make_room(s.now).is_err() {
        // As Redis: the transaction stays open, and can only be discarded now.
        s.tx.queue = Some(queue);
        s.tx.aborted = true;
        return Err(CmdError::Oom);
    }
    // A watched key that expired since WATCH is a change (the lookup deletes it, which
    // dirties the watch).
    for k in &s.tx.watched {
        shared.db.has_key(k, s.now);
    }
    let dirty = s.tx.watcher.as_ref().is_some_and(|w| w.is_dirty());
    let aborted = s.tx.aborted;
    reset(s);
    if aborted {
        return Err(CmdError::from(CommandError::Raw(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        )));
    }
    if dirty {
        return Ok(Reply::NilArray);
    }
    s.tx.exec_writes = Some(Vec::new());
    let mut replies = Vec::with_capacity(queue.len());
    for (spec, a) in &queue {
        s.commands += 1;
        replies.push(match super::run_tracked(s, shared, spec, a) {
            Ok(r) => r,
            Err(e) => e.into(),
        });
    }
    let written = s.tx.exec_writes.take().unwrap_or_default();
    drop(_gates);
    super::blocking::serve_written(s, written);
    Ok(Reply::Array(replies))
}

/// After a write: its keys' watchers are dirty. A key the command only reads (SUNIONSTORE's
/// sources) is no change, when its key use says so; nor is a write whose reply says it did
/// nothing (`DEL` of a missing key: 0; `LPOP` of one: nil), as Redis only signals real
/// changes.
#[inline]
pub fn touch_written(shared: &Shared, spec: &CommandSpec, a: &Args, reply: &Reply) {
    let w = &shared.watches;
    if !w.is_active() || changed_nothing(spec.id, reply) {
        return;
    }
    // RENAME k k: nothing moves.
    if matches!(spec.id, CommandId::Rename | CommandId::Renamenx) && a.get(1) == a.get(2) {
        return;
    }
    for i in spec.written_key_positions(a.len(), |i| a.get(i)) {
        w.touch(a.get(i));
    }
}

/// Whether a write's reply means it changed nothing.
fn changed_nothing(id: CommandId, reply: &Reply) -> bool {
    use CommandId::*;
    match reply {
        Reply::Int(0) => matches!(
            id,
            Del | Unlink
                | Srem
                | Sadd
                | Hdel
                | Hsetnx
                | Zrem
                | Lrem
                | Lpushx
                | Rpushx
                | Expire
                | Pexpire
                | Expireat
                | Pexpireat
                | Persist
                | Setnx
                | Renamenx
                | Msetnx
                | Smove
        ),
        // SET ... GET answers the old value (nil for a new key) after setting it.
        Reply::Nil | Reply::NilArray => id != Set,
        Reply::Array(a) => a.is_empty() && matches!(id, Zpopmin | Zpopmax | Spop),
        _ => false,
    }
}
