//! Command dispatch: look the command up in the shared table, check arity, authentication and
//! memory, then run its handler. Handlers live one file per command family and return
//! `Result<Reply, CmdError>`; errors become replies in `error.rs`.

mod cluster;
mod connection;
mod hash;
mod key;
mod server;
mod string;
mod tracking;

pub use tracking::off as tracking_off;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use membership::command::{self, CommandId, CommandSpec, Flags};

use crate::clients::ClientHandle;
use crate::error::{CmdError, CmdResult};
pub use crate::protocol::strict_i64;
use crate::protocol::{Args, Proto, Reply};
use crate::shared::Shared;
use crate::store::WarmKey;

/// Per-connection state that commands read and change.
pub struct Session {
    pub shared: Arc<Shared>,
    pub handle: Arc<ClientHandle>,
    pub proto: Proto,
    pub authenticated: bool,
    pub close_after_reply: bool,
    /// CLIENT TRACKING settings (None: off).
    pub tracking: Option<crate::tracking::Options>,
    /// CLIENT CACHING yes|no, for the next command only.
    pub caching_next: Option<bool>,
    /// Set by ASKING for the next command only (Redis Cluster's one-shot flag).
    pub asking: bool,
    /// Unix ms, fixed for the batch being executed.
    pub now: u64,
    hits: u64,
    misses: u64,
    commands: u64,
    last_cmd: &'static str,
    /// The table entry of the command just executed (`None`: unknown command).
    pub last_spec: Option<&'static CommandSpec>,
    /// Trace context for the next command, from `AUTOCACHE.TRACE`.
    pub trace_next: Option<telemetry::TraceParent>,
}

impl Session {
    pub fn new(shared: &Arc<Shared>, handle: Arc<ClientHandle>) -> Session {
        Session {
            authenticated: shared.requirepass().is_none(),
            shared: shared.clone(),
            handle,
            proto: Proto::Resp2,
            close_after_reply: false,
            tracking: None,
            caching_next: None,
            asking: false,
            now: 0,
            hits: 0,
            misses: 0,
            commands: 0,
            last_cmd: "",
            last_spec: None,
            trace_next: None,
        }
    }

    pub fn begin_batch(&mut self) {
        self.now = self.shared.clock.now_ms();
    }

    /// Publishes the batch's counters: one atomic add per counter per batch, not per command.
    pub fn end_batch(&mut self) {
        let stats = &self.shared.stats;
        if self.commands > 0 {
            stats
                .total_commands
                .fetch_add(std::mem::take(&mut self.commands), Relaxed);
            self.handle.record_activity(self.now, self.last_cmd);
        }
        if self.hits > 0 {
            stats
                .keyspace_hits
                .fetch_add(std::mem::take(&mut self.hits), Relaxed);
        }
        if self.misses > 0 {
            stats
                .keyspace_misses
                .fetch_add(std::mem::take(&mut self.misses), Relaxed);
        }
    }

    /// Keyspace hits and misses of the current batch so far.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Counts a keyspace lookup for INFO's hit/miss statistics.
    pub fn hit(&mut self, found: bool) {
        if found {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }
}

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
    if spec.keys.is_none() || !spec.arity_ok(args.len()) {
        return None;
    }
    let all = args.slice(0);
    Some((
        spec.is_write(),
        spec.keys
            .indices(args.len())
            .filter_map(move |i| all.get(i)),
    ))
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
    let (wrote, keys) = request_keys(args)?;
    let pinned: Vec<Bytes> = keys.cloned().collect();
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
        match request_keys(args) {
            Some((_, keys)) => todo = s.shared.db.warm_keys(keys, s.now),
            None => return Ok(()),
        }
        if todo.is_empty() {
            return Ok(());
        }
    }
    Err(CmdError::Raw(
        "TRYAGAIN keys kept moving between tiers; retry the command".into(),
    ))
}

/// Reads `keys` from the warm tier (blocking), timing the reads for the choice above.
fn read_warm(
    w: &crate::store::WarmStore,
    keys: &[WarmKey],
) -> Result<Vec<Option<crate::store::warm::Record>>, CmdError> {
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

/// Executes one request and returns its reply.
pub fn execute(s: &mut Session, args: Args) -> Reply {
    s.last_spec = None;
    // Two clock reads per command while the slow log is on (Redis's default), as in Redis.
    let started = s.shared.slowlog.enabled().then(std::time::Instant::now);
    let reply = match dispatch(s, &args) {
        Ok(r) => r,
        Err(e) => e.into(),
    };
    // SLOWLOG itself is not logged (Redis leaves it out too: it would fill the log with itself).
    if let (Some(t), Some(spec)) = (started, s.last_spec)
        && !matches!(
            spec.id,
            CommandId::SlowlogGet
                | CommandId::SlowlogLen
                | CommandId::SlowlogReset
                | CommandId::SlowlogHelp
        )
    {
        let h = &s.handle;
        s.shared
            .slowlog
            .record(t.elapsed(), args.slice(0), s.now, h.addr, || h.name());
    }
    reply
}

fn dispatch(s: &mut Session, args: &Args) -> CmdResult {
    let name = args.get(0);
    let Some((top, sub)) = command::resolve(name, args.len().gt(&1).then(|| args.get(1))) else {
        return Err(CmdError::UnknownCommand {
            name: String::from_utf8_lossy(name).into_owned(),
            args: args
                .slice(1)
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        });
    };
    let spec = match (top.is_container(), sub) {
        (false, _) => top,
        (true, Some(sub)) => sub,
        // COMMAND alone is valid; CLIENT alone is not.
        (true, None) if args.len() < 2 && top.arity_ok(1) => top,
        (true, None) if args.len() < 2 => return Err(CmdError::WrongArity(top.name.into())),
        (true, None) if top.id == CommandId::Cluster && s.shared.cluster.get().is_none() => {
            return Err(cluster::disabled());
        }
        (true, None) => {
            return Err(CmdError::UnknownSubcommand {
                container: top.name,
                sub: String::from_utf8_lossy(args.get(1)).into_owned(),
            });
        }
    };
    s.commands += 1;
    s.last_cmd = top.name;
    s.last_spec = Some(spec);
    if !spec.arity_ok(args.len()) {
        return Err(CmdError::WrongArity(full_name(top, spec)));
    }
    if !s.authenticated && !spec.flags.contains(Flags::NO_AUTH) {
        return Err(CmdError::NoAuth);
    }
    let asking = std::mem::take(&mut s.asking);
    if s.shared.cluster.get().is_some() && !spec.keys.is_none() {
        return dispatch_cluster(s, spec, args, asking);
    }
    if spec.flags.contains(Flags::DENYOOM) && s.shared.db.make_room(s.now).is_err() {
        return Err(CmdError::Oom);
    }
    run_tracked(s, spec, args)
}

/// Runs the command between CLIENT TRACKING's bookkeeping: keys a tracking connection reads
/// are remembered before, keys a write names are invalidated after.
fn run_tracked(s: &mut Session, spec: &'static CommandSpec, args: &Args) -> CmdResult {
    tracking::before(s, spec, args);
    let r = run(s, spec, args);
    tracking::after(s, spec, args, r.is_ok());
    r
}

/// A keyed command in cluster mode: routed by slot ownership and migration state, and run
/// holding the slot's migration gate so a migration cannot move its keys meanwhile.
fn dispatch_cluster(
    s: &mut Session,
    spec: &'static CommandSpec,
    args: &Args,
    asking: bool,
) -> CmdResult {
    let shared = s.shared.clone();
    let Some(c) = shared.cluster.get() else {
        return run_tracked(s, spec, args);
    };
    let keys = || spec.keys.indices(args.len()).map(|i| args.get(i));
    let first = keys().next().map(membership::Slot::for_key);
    let _gate = first.map(|slot| c.migrations.gate(slot));
    {
        let view = c.handle.load();
        let (db, now) = (&shared.db, s.now);
        crate::cluster::route(
            &view.slots,
            &c.me,
            keys().map(membership::Slot::for_key),
            |slot| c.migrations.state(slot),
            asking,
            || match first {
                Some(slot) => c.migrations.presence(db, slot, keys(), now),
                None => crate::migrate::Presence::default(),
            },
        )
        .into_result()?;
    }
    if spec.flags.contains(Flags::DENYOOM) && s.shared.db.make_room(s.now).is_err() {
        return Err(CmdError::Oom);
    }
    run_tracked(s, spec, args)
}

/// `client|setname` style name for subcommands, as Redis reports them.
pub fn full_name(top: &CommandSpec, spec: &CommandSpec) -> String {
    if std::ptr::eq(top, spec) {
        top.name.to_string()
    } else {
        format!("{}|{}", top.name, spec.name)
    }
}

fn run(s: &mut Session, spec: &'static CommandSpec, a: &Args) -> CmdResult {
    use CommandId::*;
    match spec.id {
        Ping => connection::ping(a),
        Echo => Ok(Reply::Bulk(a.bytes(1))),
        Hello => connection::hello(s, a),
        Auth => connection::auth(s, a),
        Select => connection::select(a),
        Quit => {
            s.close_after_reply = true;
            Ok(Reply::Ok)
        }
        Reset => connection::reset(s),
        ClientId | ClientSetname | ClientGetname | ClientSetinfo | ClientInfo | ClientList
        | ClientKill | ClientNoEvict | ClientHelp => connection::client(s, spec.id, a),
        ClientTracking | ClientCaching | ClientTrackinginfo | ClientGetredir => {
            tracking::client(s, spec.id, a)
        }

        CommandCount | CommandInfo | CommandDocs | CommandList | CommandGetkeys | CommandHelp
        | Command => server::command(spec.id, a),
        Info => server::info(s, a),
        Dbsize => Ok(Reply::Int(s.shared.db.len() as i64)),
        Flushdb | Flushall => server::flush(s, a),
        ConfigGet | ConfigSet | ConfigResetstat | ConfigHelp => server::config(s, spec.id, a),
        Time => server::time(),
        Shutdown => server::shutdown(s, a),

        Get => string::get(s, a),
        Set => string::set(s, a),
        Setnx => string::setnx(s, a),
        Setex | Psetex => string::setex(s, a, spec.id == Psetex),
        Getset => string::getset(s, a),
        Getdel => string::getdel(s, a),
        Getex => string::getex(s, a),
        Mget => string::mget(s, a),
        Mset => string::mset(s, a, false),
        Msetnx => string::mset(s, a, true),
        Incr => string::incr_by(s, a.get(1), 1),
        Decr => string::incr_by(s, a.get(1), -1),
        Incrby => string::incr_by(s, a.get(1), parse_i64(a.get(2))?),
        Decrby => {
            let by = parse_i64(a.get(2))?
                .checked_neg()
                .ok_or(CmdError::Overflow)?;
            string::incr_by(s, a.get(1), by)
        }
        Incrbyfloat => string::incr_by_float(s, a),
        Append => string::append(s, a),
        Strlen => string::strlen(s, a),
        Getrange => string::getrange(s, a),
        Setrange => string::setrange(s, a),

        Del | Unlink => key::del(s, a),
        Exists => key::exists(s, a, false),
        Touch => key::exists(s, a, true),
        Expire | Pexpire | Expireat | Pexpireat => key::expire(s, spec, a),
        Ttl | Pttl | Expiretime | Pexpiretime => key::ttl(s, spec.id, a),
        Persist => key::persist(s, a),
        Type => key::type_(s, a),
        Rename => key::rename(s, a, false),
        Renamenx => key::rename(s, a, true),
        Keys => Ok(Reply::Array(
            s.shared
                .db
                .keys(a.get(1), s.now)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        )),
        Scan => key::scan(s, a),
        Randomkey => Ok(Reply::opt_bulk(s.shared.db.random_key(s.now))),
        ObjectEncoding | ObjectFreq | ObjectIdletime | ObjectRefcount | ObjectHelp => {
            key::object(s, spec.id, a)
        }
        MemoryUsage | MemoryHelp => key::memory(s, spec.id, a),
        DebugObject | DebugHelp => key::debug(s, spec.id, a),
        SlowlogGet | SlowlogLen | SlowlogReset | SlowlogHelp => server::slowlog(s, spec.id, a),

        Hset | Hmset => hash::hset(s, a, spec.id == Hmset),
        Hsetnx => hash::hsetnx(s, a),
        Hget => hash::hget(s, a),
        Hmget => hash::hmget(s, a),
        Hdel => hash::hdel(s, a),
        Hexists => hash::hexists(s, a),
        Hlen => hash::hlen(s, a),
        Hkeys | Hvals | Hgetall => hash::hgetall(s, spec.id, a),
        Hincrby => hash::hincrby(s, a),
        Hincrbyfloat => hash::hincrbyfloat(s, a),
        Hstrlen => hash::hstrlen(s, a),
        Hscan => hash::hscan(s, a),
        Hrandfield => hash::hrandfield(s, a),

        ClusterKeyslot
        | ClusterCountkeysinslot
        | ClusterGetkeysinslot
        | ClusterHelp
        | ClusterSlots
        | ClusterShards
        | ClusterNodes
        | ClusterInfo
        | ClusterMyid
        | ClusterMigrate
        | Readonly
        | Readwrite => cluster::cluster(s, spec.id, a),
        Asking => {
            if s.shared.cluster.get().is_none() {
                return Err(cluster::disabled());
            }
            s.asking = true;
            Ok(Reply::Ok)
        }
        Client | Config | Object | Cluster | Memory | Debug | Slowlog => {
            Err(CmdError::WrongArity(spec.name.into()))
        }
        // Only a proxy learns commands; the shard's lookup never yields one.
        Learned => Err(CmdError::UnknownCommand {
            name: spec.name.into(),
            args: Vec::new(),
        }),
    }
}

// ---- argument parsing shared by the command families ----

/// Parses an integer the way Redis's `string2ll` does: optional `-`, no `+`, no leading zeros,
/// no spaces, within i64.
pub fn parse_i64(b: &[u8]) -> Result<i64, CmdError> {
    strict_i64(b).ok_or(CmdError::NotInteger)
}

/// Parses a finite float like Redis's `string2ld`: no spaces, no NaN or infinity.
pub fn parse_f64(b: &[u8]) -> Result<f64, CmdError> {
    strict_f64(b).ok_or(CmdError::NotFloat)
}

pub fn strict_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty()
        || s.starts_with(|c: char| c.is_whitespace())
        || s.ends_with(|c: char| c.is_whitespace())
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

pub fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Copies a key or value out of the request buffer so the store never pins a whole read
/// buffer for one small slice of it.
pub fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(strict_i64(b"0"), Some(0));
        assert_eq!(strict_i64(b"-12"), Some(-12));
        assert_eq!(strict_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"+1"[..],
            b"01",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"-0",
            b"9223372036854775808",
            b"1.0",
            b"0x10",
        ] {
            assert_eq!(strict_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_are_finite() {
        assert_eq!(strict_f64(b"1.5"), Some(1.5));
        assert_eq!(strict_f64(b"-.5"), Some(-0.5));
        assert_eq!(strict_f64(b"1e3"), Some(1000.0));
        for bad in [&b"inf"[..], b"-inf", b"nan", b" 1", b"", b"abc", b"1e400"] {
            assert_eq!(strict_f64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
