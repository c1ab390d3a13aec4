//! The warm tier's work around one request, run by the connection before and after
//! `cmd::execute`: the keys a request names are pinned in RAM while it runs, those found on
//! disk are loaded first, and afterwards promoted for good or returned to the warm tier.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use membership::command::{self, Flags};

use super::args::eq;
use super::session::Session;
use crate::error::CmdError;
use crate::protocol::Args;
use crate::store::{WarmKey, WarmStore};
use crate::value::codec::Record;
use membership::resp::CommandError;

/// Warm-tier work around one request: its keys are pinned in RAM while it runs, and those
/// found on disk are loaded first.
pub struct WarmPlan {
    pinned: Vec<Bytes>,
    keys: Vec<WarmKey>,
    wrote: bool,
}

fn request_keys(args: &Args) -> Option<(bool, impl Iterator<Item = &Bytes>)> {
    let (top, sub) = command::resolve(args.get(0), (args.len() > 1).then(|| args.get(1)))?;
    let spec = sub.unwrap_or(top);
    if !spec.has_keys() || !spec.arity_ok(args.len()) {
        return None;
    }
    let all = args.slice(0);
    // A script's keys are written if its key spec says it may write them (EVAL, not EVAL_RO).
    let writes = spec.is_write() || spec.specs.iter().any(|k| k.write);
    Some((
        writes,
        spec.key_positions(args.len(), |i| args.get(i))
            .filter_map(move |i| all.get(i)),
    ))
}

/// The keys a request needs in RAM, and whether it writes: its own, or for EXEC those of the
/// queued commands (a command being queued needs none).
fn planned_keys(s: &Session, args: &Args) -> Option<(bool, Vec<Bytes>)> {
    if s.tx.in_multi() {
        if !eq(args.get(0), "exec") {
            return None;
        }
        let (mut wrote, mut keys) = (false, Vec::new());
        for a in s.tx.queued() {
            if let Some((w, k)) = request_keys(a) {
                wrote |= w;
                keys.extend(k.cloned());
            }
        }
        return (!keys.is_empty()).then_some((wrote, keys));
    }
    request_keys(args).map(|(w, k)| (w, k.cloned().collect()))
}

/// How long a write waits for a lagging warm-tier writer before it may get `-OOM`.
const WARM_WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Back-pressure by latency: when RAM is full and the warm tier's writer lags behind, a write
/// waits for it (bounded) instead of failing at once. Reads never wait.
pub async fn pace_writes(s: &Session, args: &Args) {
    let db = &s.shared.db;
    if db.warm().is_none() || !db.over_limit() {
        return;
    }
    let Some((top, sub)) = command::resolve(args.get(0), (args.len() > 1).then(|| args.get(1)))
    else {
        return;
    };
    if sub.unwrap_or(top).flags.contains(Flags::DENYOOM) {
        db.wait_for_warm_writer(WARM_WRITER_WAIT).await;
    }
}

/// Which keys of this request must be loaded from the warm tier (None: nothing to do, the
/// common case, decided without locking when the warm tier is empty or off).
pub fn warm_plan(s: &Session, args: &Args) -> Option<WarmPlan> {
    let db = &s.shared.db;
    db.warm()?;
    let (wrote, pinned) = planned_keys(s, args)?;
    let keys = db.pin(&pinned, blind_overwrite(args), s.now);
    Some(WarmPlan {
        pinned,
        keys,
        wrote,
    })
}

impl WarmPlan {
    /// Whether the request needed keys from the warm tier.
    pub fn loaded_any(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// Commands whose effect and reply do not depend on the old values of their keys.
fn blind_overwrite(args: &Args) -> bool {
    let name = args.get(0);
    if eq(name, "setex") || eq(name, "psetex") || eq(name, "mset") {
        return true;
    }
    eq(name, "set")
        && !args
            .slice(3)
            .iter()
            .any(|o| ["nx", "xx", "get", "keepttl"].iter().any(|w| eq(o, w)))
}

/// Loads the planned keys on the blocking pool and installs them in RAM. A key demoted again
/// while it was being read is planned and loaded again (bounded).
pub async fn load_warm(s: &Session, args: &Args, plan: &WarmPlan) -> Result<(), CmdError> {
    let mut todo = plan.keys.clone();
    if todo.is_empty() {
        return Ok(());
    }
    let w = s
        .shared
        .db
        .warm()
        .ok_or_else(|| CmdError::err("warm tier is not enabled"))?
        .clone();
    for _ in 0..4 {
        // Reads served from memory (redb's cache or the OS page cache) run right here; the
        // blocking pool's hand-off would cost more than they do. Once reads turn slow (the
        // disk is really read), they go to the pool and no longer hold up this worker.
        let records = if w.stats.reads_are_fast() {
            w.stats.inline_reads.fetch_add(1, Relaxed);
            read_warm(&w, &todo)?
        } else {
            w.stats.pooled_reads.fetch_add(1, Relaxed);
            let (w, keys) = (w.clone(), todo.clone());
            tokio::task::spawn_blocking(move || read_warm(&w, &keys))
                .await
                .map_err(|e| CmdError::err(format!("warm tier read failed: {e}")))??
        };
        for (k, rec) in todo.iter().zip(records) {
            s.shared.db.install(k, rec, s.now);
        }
        match planned_keys(s, args) {
            Some((_, keys)) => todo = s.shared.db.warm_keys(keys.iter(), s.now),
            None => return Ok(()),
        }
        if todo.is_empty() {
            return Ok(());
        }
    }
    Err(CmdError::from(CommandError::Raw(
        "TRYAGAIN keys kept moving between tiers; retry the command".into(),
    )))
}

/// [`load_warm`] for a command a script runs: the script holds its worker until it ends, so
/// the warm tier is read right here.
pub fn load_warm_now(s: &Session, args: &Args, plan: &WarmPlan) -> Result<(), CmdError> {
    let mut todo = plan.keys.clone();
    if todo.is_empty() {
        return Ok(());
    }
    let w = s
        .shared
        .db
        .warm()
        .ok_or_else(|| CmdError::err("warm tier is not enabled"))?
        .clone();
    for _ in 0..4 {
        let records = read_warm(&w, &todo)?;
        for (k, rec) in todo.iter().zip(records) {
            s.shared.db.install(k, rec, s.now);
        }
        match planned_keys(s, args) {
            Some((_, keys)) => todo = s.shared.db.warm_keys(keys.iter(), s.now),
            None => return Ok(()),
        }
        if todo.is_empty() {
            return Ok(());
        }
    }
    Err(CmdError::from(CommandError::Raw(
        "TRYAGAIN keys kept moving between tiers; retry the command".into(),
    )))
}

/// Loads `key` from the warm tier into RAM now (a blocking read) if it is there: for keys a
/// command finds only while it runs (SORT's BY and GET pattern keys).
pub(super) fn load_key_now(s: &Session, key: &[u8]) -> Result<(), CmdError> {
    let Some(w) = s.shared.db.warm() else {
        return Ok(());
    };
    let key = Bytes::copy_from_slice(key);
    let todo = s.shared.db.warm_keys(std::iter::once(&key), s.now);
    if todo.is_empty() {
        return Ok(());
    }
    let w = w.clone();
    for (k, rec) in todo.iter().zip(read_warm(&w, &todo)?) {
        s.shared.db.install(k, rec, s.now);
    }
    Ok(())
}

/// Reads `keys` from the warm tier (blocking), timing the reads for the choice above.
fn read_warm(w: &WarmStore, keys: &[WarmKey]) -> Result<Vec<Option<Record>>, CmdError> {
    let start = std::time::Instant::now();
    let records = keys
        .iter()
        .map(|k| w.read(k.slot, &k.key, k.generation))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CmdError::err(format!("warm tier read failed: {e}")))?;
    let per_read = start.elapsed().as_nanos() / keys.len().max(1) as u128;
    w.stats
        .record_read(u64::try_from(per_read).unwrap_or(u64::MAX));
    Ok(records)
}

/// After the command: promote what it touched, or return read-only keys to the warm tier.
pub fn settle_warm(s: &Session, plan: WarmPlan) {
    let db = &s.shared.db;
    let mut promoted = false;
    for k in &plan.keys {
        promoted |= db.settle(k, plan.wrote, s.now);
    }
    db.unpin(&plan.pinned, plan.wrote);
    // A read that promoted grew RAM: demote to the budget now, not at the next write (a
    // read-only load would otherwise keep growing it).
    if promoted {
        let _ = db.make_room(s.now);
    }
}
