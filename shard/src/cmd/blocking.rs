//! The blocking commands (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP; XREAD
//! and XREADGROUP wait through [`block_on`] from `stream.rs`), CLIENT UNBLOCK, and the
//! hook every write runs to serve the clients blocked on its keys (see `crate::blocking`).
//!
//! A blocking command that finds its keys empty leaves a [`Blocked`] in the session: the
//! connection then stops executing its pipeline and waits for the reply, the timeout, CLIENT
//! UNBLOCK, its slot moving away, or its peer closing (`connection.rs`).

use bytes::Bytes;
use membership::command::{CommandId, CommandSpec};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::args::eq;
use super::list::{self, End};
use super::session::Session;
use crate::blocking::{Attempt, Outcome, Served, Wake};
use crate::error::{CmdError, CmdResult};
use crate::notify::class;
use crate::protocol::{Args, Reply};

/// A client waiting in a blocking command.
pub struct Blocked {
    pub reply: oneshot::Receiver<Wake>,
    /// `None`: wait forever (timeout 0).
    pub deadline: Option<Instant>,
    /// The reply when the timeout passes (a null array, as Redis answers every list one).
    pub on_timeout: Reply,
    /// A key it waits on (all share one slot in cluster mode): its slot's owner is watched.
    pub key: Bytes,
}

/// Redis's `getTimeoutFromObjectOrReply` in seconds: a float, rounded up to milliseconds;
/// `None` for 0 (forever).
fn timeout(b: &[u8]) -> Result<Option<std::time::Duration>, CmdError> {
    let not_float = || CmdError::err("timeout is not a float or out of range");
    let text = std::str::from_utf8(b).map_err(|_| not_float())?;
    let f: f64 = text.parse().map_err(|_| not_float())?;
    let spelled_inf = text
        .trim_start_matches(['+', '-'])
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("inf"));
    if f.is_nan() || (f.is_infinite() && !spelled_inf) {
        return Err(not_float());
    }
    let ms = (f * 1000.0).ceil();
    // Redis converts to a 64-bit integer: out of range (infinities included) comes out
    // negative there.
    if !(0.0..9.2e18).contains(&ms) {
        return Err(CmdError::err("timeout is negative"));
    }
    Ok((ms > 0.0).then(|| std::time::Duration::from_millis(ms as u64)))
}

/// Registers the attempt or serves it at once; on blocking, leaves the wait in the session.
pub(super) fn block_on(
    s: &mut Session,
    keys: Vec<Bytes>,
    wait: Option<std::time::Duration>,
    on_timeout: Reply,
    attempt: Attempt,
) -> CmdResult {
    if s.tx.in_exec() {
        // Inside EXEC a blocking command answers at once, as if its timeout had passed.
        let mut attempt = attempt;
        for k in &keys {
            if let Some(served) = attempt(&s.shared.db, s.now, k)? {
                return Ok(served.reply);
            }
        }
        return Ok(on_timeout);
    }
    let first = keys.first().cloned().unwrap_or_default();
    let shared = s.shared.clone();
    match shared
        .blocking
        .try_or_block(s.handle.id, &shared.db, s.now, keys, attempt)?
    {
        Outcome::Served(served) => Ok(served.reply),
        Outcome::Blocked(reply) => {
            s.blocked = Some(Blocked {
                reply,
                deadline: wait.map(|d| Instant::now() + d),
                on_timeout,
                key: first,
            });
            // Not sent: the connection waits for the real reply.
            Ok(Reply::NilArray)
        }
    }
}

/// BLPOP and BRPOP: `key [key ...] timeout`.
pub fn bpop(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let end = if id == CommandId::Blpop {
        End::Left
    } else {
        End::Right
    };
    let wait = timeout(a.get(a.len() - 1))?;
    let keys = (1..a.len() - 1).map(|i| a.bytes(i)).collect();
    let attempt: Attempt = Box::new(move |db, now, key| {
        Ok(list::pop_some(db, now, key, end, 1)?.map(|mut popped| {
            let e = popped.pop().unwrap_or_default();
            let key = Bytes::copy_from_slice(key);
            Served {
                reply: Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(e)]),
                events: pop_events(db, now, &key, class::LIST, list_pop(end)),
                changed: vec![key],
            }
        }))
    });
    block_on(s, keys, wait, Reply::NilArray, attempt)
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count].
pub fn blmpop(s: &mut Session, a: &Args) -> CmdResult {
    let (keys, end, count) = list::parse_mpop(a, 2)?;
    let wait = timeout(a.get(1))?;
    let attempt: Attempt = Box::new(move |db, now, key| {
        Ok(list::pop_some(db, now, key, end, count)?.map(|popped| {
            let key = Bytes::copy_from_slice(key);
            Served {
                reply: list::mpop_reply(key.clone(), popped),
                events: pop_events(db, now, &key, class::LIST, list_pop(end)),
                changed: vec![key],
            }
        }))
    });
    block_on(s, keys, wait, Reply::NilArray, attempt)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout, and BRPOPLPUSH source
/// destination timeout.
pub fn blmove(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let (from, to, wait) = if id == CommandId::Brpoplpush {
        (End::Right, End::Left, timeout(a.get(3))?)
    } else {
        (
            End::parse(a.get(3))?,
            End::parse(a.get(4))?,
            timeout(a.get(5))?,
        )
    };
    let dst = a.bytes(2);
    let attempt: Attempt = Box::new(move |db, now, src| {
        Ok(list::move_element(db, now, src, &dst, from, to)?.map(|e| {
            let src = Bytes::copy_from_slice(src);
            let push = if to == End::Left { "lpush" } else { "rpush" };
            let mut events = vec![(class::LIST, push, dst.clone())];
            events.extend(pop_events(db, now, &src, class::LIST, list_pop(from)));
            Served {
                reply: Reply::Bulk(e),
                changed: vec![src, dst.clone()],
                events,
            }
        }))
    });
    // Redis answers a timed-out BLMOVE with a null array too (RESP2 `*-1`).
    block_on(s, vec![a.bytes(1)], wait, Reply::NilArray, attempt)
}

/// Pops up to `count` members from the sorted set at `key` (`max`: the highest): `None` when
/// absent, `WRONGTYPE` for another type.
fn zpop_some(
    db: &crate::store::Db,
    now: u64,
    key: &[u8],
    max: bool,
    count: usize,
) -> Result<Option<super::zset::Scored>, CmdError> {
    db.for_key(key)
        .update(key, now, |v| match v {
            crate::store::Value::ZSet(z) => Ok(super::zset::pop(z, max, count)),
            _ => Err(CmdError::WrongType),
        })
        .transpose()
}

/// BZPOPMIN and BZPOPMAX: `key [key ...] timeout`; `[key, member, score]`.
pub fn bzpop(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let max = id == CommandId::Bzpopmax;
    let wait = timeout(a.get(a.len() - 1))?;
    let keys = (1..a.len() - 1).map(|i| a.bytes(i)).collect();
    let attempt: Attempt = Box::new(move |db, now, key| {
        Ok(zpop_some(db, now, key, max, 1)?.and_then(|mut popped| {
            let (member, score) = popped.pop()?;
            let key = Bytes::copy_from_slice(key);
            Some(Served {
                reply: Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(member),
                    super::zset::score(score),
                ]),
                events: pop_events(db, now, &key, class::ZSET, zset_pop(max)),
                changed: vec![key],
            })
        }))
    });
    block_on(s, keys, wait, Reply::NilArray, attempt)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count].
pub fn bzmpop(s: &mut Session, a: &Args) -> CmdResult {
    let (keys, max, count) = super::zset_multi::parse_mpop(a, 2)?;
    let wait = timeout(a.get(1))?;
    let attempt: Attempt = Box::new(move |db, now, key| {
        Ok(zpop_some(db, now, key, max, count)?.map(|popped| {
            let key = Bytes::copy_from_slice(key);
            Served {
                reply: Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    super::zset::popped_reply(popped, true),
                ]),
                events: pop_events(db, now, &key, class::ZSET, zset_pop(max)),
                changed: vec![key],
            }
        }))
    });
    block_on(s, keys, wait, Reply::NilArray, attempt)
}

/// CLIENT UNBLOCK client-id [TIMEOUT|ERROR].
pub fn client_unblock(s: &mut Session, a: &Args) -> CmdResult {
    let id = super::args::strict_i64(a.get(2)).ok_or(CmdError::NotInteger)?;
    let error = match a.len() {
        3 => false,
        4 if eq(a.get(3), "timeout") => false,
        4 if eq(a.get(3), "error") => true,
        _ => {
            return Err(CmdError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
    };
    let Ok(id) = u64::try_from(id) else {
        return Ok(Reply::Int(0));
    };
    let reply = if error {
        Wake::Error(Reply::Error(
            "UNBLOCKED client unblocked via CLIENT UNBLOCK".into(),
        ))
    } else {
        Wake::TimedOut
    };
    Ok(Reply::Int(i64::from(s.shared.blocking.unblock(id, reply))))
}

/// After a write: serves the clients blocked on the keys it wrote (one atomic load when
/// nobody is blocked).
#[inline]
pub fn after_write(s: &mut Session, spec: &CommandSpec, a: &Args) {
    if !s.shared.blocking.any() {
        return;
    }
    let keys = spec
        .key_positions(a.len(), |i| a.get(i))
        .map(|i| a.bytes(i));
    if s.tx.defer_written(keys) {
        return;
    }
    let keys = spec
        .key_positions(a.len(), |i| a.get(i))
        .map(|i| a.bytes(i));
    serve_written(s, keys.collect());
}

/// Serves the clients blocked on `keys` (written by this connection), oldest first.
pub fn serve_written(s: &Session, keys: Vec<Bytes>) {
    if keys.is_empty() || !s.shared.blocking.any() {
        return;
    }
    let shared = &s.shared;
    let me = s.handle.id;
    shared.blocking.serve(&shared.db, s.now, keys, |served| {
        for k in &served.changed {
            shared.tracking.invalidate(k, me);
        }
        for (c, event, k) in &served.events {
            shared.notify.event(*c, event, k);
        }
    });
}

/// The keyspace events of a pop from `key`: the pop, then `del` if it emptied the key.
fn pop_events(
    db: &crate::store::Db,
    now: u64,
    key: &Bytes,
    c: u32,
    event: &'static str,
) -> Vec<(u32, &'static str, Bytes)> {
    let mut events = vec![(c, event, key.clone())];
    if !db.for_key(key).contains(key, now) {
        events.push((class::GENERIC, "del", key.clone()));
    }
    events
}

fn list_pop(end: End) -> &'static str {
    if end == End::Left { "lpop" } else { "rpop" }
}

fn zset_pop(max: bool) -> &'static str {
    if max { "zpopmax" } else { "zpopmin" }
}

/// For a blocked client in cluster mode: the error that ends its wait once its slot is no
/// longer this node's (`-MOVED` to the new owner, `-CLUSTERDOWN` when nobody owns it), as
/// Redis Cluster redirects blocked clients. A slot being imported keeps its waiters.
pub fn blocked_redirect(s: &Session, key: &[u8]) -> Option<Reply> {
    let c = s.shared.cluster.get()?;
    let slot = membership::Slot::for_key(key);
    let view = c.handle.load();
    let route = match view.slots.owner(slot) {
        Some(n) if n.id == c.me => return None,
        _ if matches!(
            c.migrations.state(slot),
            crate::cluster::SlotState::Importing { .. }
        ) =>
        {
            return None;
        }
        Some(n) => crate::cluster::Route::Moved(slot, n.client_addr.clone()),
        None => crate::cluster::Route::Down,
    };
    route.into_result().err().map(Reply::from)
}
