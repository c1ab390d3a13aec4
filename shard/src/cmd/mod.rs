//! Command dispatch: look the command up in the shared table, check arity, authentication,
//! cluster ownership and memory, then run its handler. Handlers live one file per command
//! family and return `Result<Reply, CmdError>`; errors become replies in `error.rs`. The
//! families use `session.rs` (per-connection state) and `args.rs` (argument parsing), never
//! this file; `warm.rs` is the warm-tier work the connection does around each request.

mod admin;
mod args;
mod bitmap;
mod blocking;
mod cluster;
mod connection;
mod function;
mod geo;
mod hash;
mod hll;
mod json;
mod key;
mod list;
mod lua;
mod msgpack;
mod multi;
mod notify;
mod pqsort;
mod pubsub;
mod script;
mod server;
mod session;
mod set;
mod sort;
mod stream;
mod string;
mod structlib;
mod tracking;
mod warm;
mod zset;
mod zset_multi;

pub use blocking::blocked_redirect;
pub use function::load_persisted as load_persisted_functions;
pub use multi::reset as transaction_reset;
pub use pubsub::off as pubsub_off;
pub use session::Session;
pub use tracking::off as tracking_off;
pub use warm::{WarmPlan, load_warm, pace_writes, settle_warm, warm_plan};

use membership::command::{self, CommandId, CommandSpec, Flags};

use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::shared::Shared;
use args::parse_i64;
use membership::resp::CommandError;

/// Executes one request and returns its reply. `shared` is the session's own server state,
/// passed apart so the slot gates can be held while the session is borrowed mutably.
pub fn execute(s: &mut Session, shared: &Shared, args: Args) -> Reply {
    s.last_spec = None;
    s.rejected = false;
    // Two clock reads per command while the slow log is on (Redis's default), as in Redis.
    let started =
        (shared.slowlog.enabled() || shared.latency.enabled()).then(std::time::Instant::now);
    let touch = s.no_touch && !is_touch(&args);
    let reply = match crate::store::no_touch(touch, || dispatch(s, shared, &args)) {
        Ok(r) => r,
        Err(e) => e.into(),
    };
    if let (Some(t), Some(spec)) = (started, s.last_spec)
        && shared.latency.enabled()
        && !s.rejected
    {
        // Redis's `command` / `fast-command` events (blocking commands' waits are not in it).
        let event = if spec.flags.contains(Flags::FAST) {
            "fast-command"
        } else {
            "command"
        };
        let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        shared.latency.add_if_needed(event, ms, s.now / 1000);
    }
    if shared.monitors.any()
        && let Some(spec) = s.last_spec
        && !s.rejected
        && !spec.flags.contains(Flags::ADMIN)
        && !spec.flags.contains(Flags::SKIP_MONITOR)
    {
        let limit = shared.pubsub.limits().replica;
        shared.monitors.feed(s.handle.addr, args.slice(0), limit);
    }
    // SLOWLOG itself is not logged (Redis leaves it out too: it would fill the log with itself).
    if let (Some(t), Some(spec)) = (started, s.last_spec)
        && !spec.flags.contains(Flags::SKIP_SLOWLOG)
        && !matches!(
            spec.id,
            CommandId::SlowlogGet
                | CommandId::SlowlogLen
                | CommandId::SlowlogReset
                | CommandId::SlowlogHelp
        )
    {
        let h = &s.handle;
        shared
            .slowlog
            .record(t.elapsed(), args.slice(0), s.now, h.addr, || h.name());
    }
    reply
}

/// TOUCH counts as an access even for a CLIENT NO-TOUCH client, as in Redis.
fn is_touch(args: &Args) -> bool {
    args.get(0).eq_ignore_ascii_case(b"touch")
}

fn dispatch(s: &mut Session, shared: &Shared, args: &Args) -> CmdResult {
    let spec = match admit(s, args).and_then(|spec| busy(s, shared, spec)) {
        Ok(spec) => spec,
        Err(e) => {
            // Refused while queueing: the transaction will abort.
            s.tx.flag();
            s.rejected = true;
            return Err(e);
        }
    };

    if s.tx.in_multi() && !command::runs_at_once_in_multi(spec.id) {
        return multi::queue(s, shared, spec, args);
    }
    // ASKING holds for a whole transaction (Redis keeps the flag while in MULTI).
    let asking = if matches!(spec.id, CommandId::Multi | CommandId::Exec) {
        s.asking
    } else {
        std::mem::take(&mut s.asking)
    };
    if script::takes_own_gates(spec.id) {
        // A script routes its declared keys itself, with the ASKING flag.
        s.asking = asking;
    } else if spec.has_keys() {
        let keys = || {
            spec.key_positions(args.len(), |i| args.get(i))
                .map(|i| args.get(i))
        };
        let gates = match shared.cluster.get() {
            Some(c) => cluster_route(s, shared, c, keys, asking).map(|g| g.into_iter().collect()),
            None => shared
                .gates
                .shared_many_or(keys().map(membership::Slot::for_key), &gave_up(s, shared))
                .ok_or_else(|| busy_error(s, shared)),
        };
        let _gates: crate::gates::Shared<'_> = match gates {
            Ok(g) => g,
            Err(e) => {
                s.rejected = true;
                return Err(e);
            }
        };
        if spec.flags.contains(Flags::DENYOOM) && shared.db.make_room(s.now).is_err() {
            s.rejected = true;
            return Err(CmdError::Oom);
        }
        return run_tracked(s, shared, spec, args);
    }
    if spec.flags.contains(Flags::DENYOOM) && shared.db.make_room(s.now).is_err() {
        s.rejected = true;
        return Err(CmdError::Oom);
    }
    run_tracked(s, shared, spec, args)
}

/// While another client's script has run past `busy-reply-threshold`, only `allow_busy`
/// commands run (Redis's `processCommand`).
#[inline]
fn busy(
    s: &Session,
    shared: &Shared,
    spec: &'static CommandSpec,
) -> Result<&'static CommandSpec, CmdError> {
    match shared.running.busy_for(s.handle.id) {
        Some(line) if !spec.flags.contains(Flags::ALLOW_BUSY) => {
            Err(CmdError::from(CommandError::Raw(line.into())))
        }
        _ => Ok(spec),
    }
}

/// When a command waiting for a slot's gate gives up: a script has run past the threshold.
fn gave_up<'a>(s: &'a Session, shared: &'a Shared) -> impl Fn() -> bool + 'a {
    let id = s.handle.id;
    move || shared.running.busy_for(id).is_some()
}

/// The `-BUSY` error for a command that gave up waiting.
fn busy_error(s: &Session, shared: &Shared) -> CmdError {
    let line = shared
        .running
        .busy_for(s.handle.id)
        .unwrap_or(crate::running::BUSY_EVAL);
    CmdError::from(CommandError::Raw(line.into()))
}

/// The checks every command passes: it exists, its arity, authentication.
fn admit(s: &mut Session, args: &Args) -> Result<&'static CommandSpec, CmdError> {
    let name = args.get(0);
    let Some((top, sub)) = command::resolve(name, args.len().gt(&1).then(|| args.get(1))) else {
        return Err(CmdError::from(CommandError::UnknownCommand {
            name: String::from_utf8_lossy(name).into_owned(),
            args: args
                .slice(1)
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        }));
    };
    let spec = match (top.is_container(), sub) {
        (false, _) => top,
        (true, Some(sub)) => sub,
        // COMMAND alone is valid; CLIENT alone is not.
        (true, None) if args.len() < 2 && top.arity_ok(1) => top,
        (true, None) if args.len() < 2 => {
            return Err(CmdError::from(CommandError::WrongArity(top.name.into())));
        }
        (true, None) if top.id == CommandId::Cluster && s.shared.cluster.get().is_none() => {
            return Err(cluster::disabled());
        }
        (true, None) if top.id == CommandId::Debug => return Err(admin::debug_syntax(args)),
        (true, None) => {
            return Err(CmdError::from(CommandError::UnknownSubcommand {
                container: top.name.into(),
                sub: String::from_utf8_lossy(args.get(1)).into_owned(),
            }));
        }
    };
    s.commands += 1;
    s.last_cmd = top.name;
    s.last_spec = Some(spec);
    if !spec.arity_ok(args.len()) {
        if top.id == CommandId::Debug {
            return Err(admin::debug_syntax(args));
        }
        return Err(CmdError::from(CommandError::WrongArity(
            command::full_name(top, spec),
        )));
    }
    if !s.authenticated && !spec.flags.contains(Flags::NO_AUTH) {
        return Err(CmdError::from(CommandError::NoAuth));
    }
    Ok(spec)
}

/// Runs the command between CLIENT TRACKING's bookkeeping: keys a tracking connection reads
/// are remembered before, keys a write names are invalidated after (and their watchers and
/// blocked clients told). `#[inline]` here and on `tracking::before`/`after`: they are on
/// every command's path and must stay inlinable whichever codegen unit the caller lands in
/// (called out of line, a pipelined GET ran ~90 more instructions under callgrind).
#[inline]
fn run_tracked(
    s: &mut Session,
    shared: &Shared,
    spec: &'static CommandSpec,
    args: &Args,
) -> CmdResult {
    pubsub::check_context(s, spec)?;
    tracking::before(s, spec, args);
    let seen = notify::before(s, spec, args);
    let r = run(s, shared, spec, args);
    if let Some(seen) = seen {
        notify::after(s, spec, args, &r, seen);
    }
    tracking::after(s, spec, args, r.is_ok());
    if let Ok(reply) = &r
        && spec.is_write()
    {
        multi::touch_written(shared, spec, args, reply);
        blocking::after_write(s, spec, args);
    }
    r
}

/// A keyed command in cluster mode: routed by slot ownership and migration state. The gate
/// of its slot is returned, to hold from the routing decision to the command's end, so a
/// migration cannot move its keys meanwhile.
fn cluster_route<'g, 'k, I: Iterator<Item = &'k [u8]>>(
    s: &Session,
    shared: &'g Shared,
    c: &'g crate::cluster::Cluster,
    keys: impl Fn() -> I,
    asking: bool,
) -> Result<Option<parking_lot::RwLockReadGuard<'g, ()>>, CmdError> {
    let first = keys().next().map(membership::Slot::for_key);
    let gate = match first {
        Some(slot) => Some(
            c.migrations
                .gates
                .shared_or(slot, &gave_up(s, shared))
                .ok_or_else(|| busy_error(s, shared))?,
        ),
        None => None,
    };
    let view = c.handle.load();
    crate::cluster::route(
        &view.slots,
        &c.me,
        keys().map(membership::Slot::for_key),
        |slot| c.migrations.state(slot),
        asking,
        || match first {
            Some(slot) => c.migrations.presence(&shared.db, slot, keys(), s.now),
            None => crate::migrate::Presence::default(),
        },
    )
    .into_result()?;
    Ok(gate)
}

fn run(s: &mut Session, shared: &Shared, spec: &'static CommandSpec, a: &Args) -> CmdResult {
    use CommandId::*;
    match spec.id {
        Ping => pubsub::ping(s, a),
        Echo => Ok(Reply::Bulk(a.bytes(1))),
        Hello => connection::hello(s, a),
        Auth => connection::auth(s, a),
        Select => connection::select(s, a),
        Quit => {
            s.close_after_reply = true;
            Ok(Reply::Ok)
        }
        Reset => connection::reset(s),
        Multi => multi::multi(s),
        Exec => multi::exec(s, shared),
        Discard => multi::discard(s),
        Watch => multi::watch(s, a),
        Unwatch => multi::unwatch(s),
        ClientId | ClientSetname | ClientGetname | ClientSetinfo | ClientInfo | ClientList
        | ClientKill | ClientNoEvict | ClientHelp => connection::client(s, spec.id, a),
        ClientPause | ClientUnpause => admin::pause(s, spec.id, a),
        ClientReply => admin::reply(s, a),
        ClientNoTouch => admin::no_touch(s, a),
        ClientUnblock => blocking::client_unblock(s, a),
        ClientTracking | ClientCaching | ClientTrackinginfo | ClientGetredir => {
            tracking::client(s, spec.id, a)
        }

        CommandCount | CommandInfo | CommandDocs | CommandList | CommandGetkeys | CommandHelp
        | Command => server::command(spec.id, a),
        Info => server::info(s, a),
        Dbsize => Ok(Reply::Int(s.shared.db.len() as i64)),
        Flushdb | Flushall => server::flush(s, a),
        ConfigGet | ConfigSet | ConfigResetstat | ConfigHelp => server::config(s, spec.id, a),
        ConfigRewrite => admin::config_rewrite(),
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
        Getrange | Substr => string::getrange(s, a),
        Lcs => string::lcs(s, a),
        Setrange => string::setrange(s, a),

        Setbit => bitmap::setbit(s, a),
        Getbit => bitmap::getbit(s, a),
        Bitcount => bitmap::bitcount(s, a),
        Bitpos => bitmap::bitpos(s, a),
        Bitop => bitmap::bitop(s, a),
        Bitfield => bitmap::bitfield(s, a, false),
        BitfieldRo => bitmap::bitfield(s, a, true),

        Pfadd => hll::pfadd(s, a),
        Pfcount => hll::pfcount(s, a),
        Pfmerge => hll::pfmerge(s, a),

        Del | Unlink => key::del(s, a),
        Exists => key::exists(s, a, false),
        Touch => key::exists(s, a, true),
        Expire | Pexpire | Expireat | Pexpireat => key::expire(s, spec, a),
        Ttl | Pttl | Expiretime | Pexpiretime => key::ttl(s, spec.id, a),
        Persist => key::persist(s, a),
        Type => key::type_(s, a),
        Rename => key::rename(s, a, false),
        Copy => key::copy(s, a),
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
        MemoryUsage => key::memory(s, spec.id, a),
        MemoryStats | MemoryDoctor | MemoryMallocStats | MemoryPurge | MemoryHelp => {
            admin::memory(s, spec.id)
        }
        DebugObject | DebugHelp => key::debug(s, spec.id, a),
        DebugSleep | DebugSetActiveExpire => admin::debug(s, spec.id, a),
        LatencyLatest | LatencyHistory | LatencyReset | LatencyDoctor | LatencyHelp => {
            admin::latency(s, spec.id, a)
        }
        Monitor => admin::monitor(s),
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

        Lpush | Rpush | Lpushx | Rpushx => list::push_cmd(s, spec.id, a),
        Lpop | Rpop => list::pop_cmd(s, spec.id, a),
        Llen => list::llen(s, a),
        Lrange => list::lrange(s, a),
        Lindex => list::lindex(s, a),
        Lset => list::lset(s, a),
        Lrem => list::lrem(s, a),
        Ltrim => list::ltrim(s, a),
        Linsert => list::linsert(s, a),
        Lpos => list::lpos(s, a),
        Lmove | Rpoplpush => list::lmove(s, spec.id, a),
        Lmpop => list::lmpop(s, a),
        Blpop | Brpop => blocking::bpop(s, spec.id, a),
        Blmpop => blocking::blmpop(s, a),
        Blmove | Brpoplpush => blocking::blmove(s, spec.id, a),

        Sadd => set::sadd(s, a),
        Srem => set::srem(s, a),
        Smembers => set::smembers(s, a),
        Sismember => set::sismember(s, a),
        Smismember => set::smismember(s, a),
        Scard => set::scard(s, a),
        Spop => set::spop(s, a),
        Srandmember => set::srandmember(s, a),
        Smove => set::smove(s, a),
        Sinter | Sunion | Sdiff => set::combine_cmd(s, spec.id, a),
        Sintercard => set::sintercard(s, a),
        Sinterstore | Sunionstore | Sdiffstore => set::store_cmd(s, spec.id, a),
        Sscan => set::sscan(s, a),

        Zadd | Zincrby => zset::zadd(s, spec.id, a),
        Zrem => zset::zrem(s, a),
        Zcard => zset::zcard(s, a),
        Zscore => zset::zscore(s, a),
        Zmscore => zset::zmscore(s, a),
        Zrank | Zrevrank => zset::zrank(s, spec.id, a),
        Zcount | Zlexcount => zset::zcount(s, spec.id, a),
        Zrange | Zrevrange | Zrangebyscore | Zrevrangebyscore | Zrangebylex | Zrevrangebylex => {
            zset::zrange(s, spec.id, a)
        }
        Zrangestore => zset_multi::zrangestore(s, a),
        Zremrangebyrank | Zremrangebyscore | Zremrangebylex => zset::zremrange(s, spec.id, a),
        Zpopmin | Zpopmax => zset::zpop(s, spec.id, a),
        Zrandmember => zset::zrandmember(s, a),
        Zscan => zset::zscan(s, a),
        Zmpop => zset_multi::zmpop(s, a),
        Bzpopmin | Bzpopmax => blocking::bzpop(s, spec.id, a),
        Bzmpop => blocking::bzmpop(s, a),
        Zunion | Zinter | Zdiff | Zunionstore | Zinterstore | Zdiffstore | Zintercard => {
            zset_multi::zsetop(s, spec.id, a)
        }

        Xadd => stream::xadd(s, a),
        Xrange | Xrevrange => stream::xrange(s, spec.id, a),
        Xlen => stream::xlen(s, a),
        Xdel => stream::xdel(s, a),
        Xtrim => stream::xtrim(s, a),
        Xsetid => stream::xsetid(s, a),
        Xread | Xreadgroup => stream::xread(s, spec.id, a),
        Xack => stream::xack(s, a),
        Xpending => stream::xpending(s, a),
        Xclaim => stream::xclaim(s, a),
        Xautoclaim => stream::xautoclaim(s, a),
        XgroupCreate | XgroupSetid | XgroupDestroy | XgroupCreateconsumer | XgroupDelconsumer
        | XgroupHelp => stream::xgroup(s, spec.id, a),
        XinfoStream | XinfoGroups | XinfoConsumers | XinfoHelp => stream::xinfo(s, spec.id, a),
        Geoadd => geo::geoadd(s, a),
        Geodist => geo::geodist(s, a),
        Geohash => geo::geohash_cmd(s, a),
        Geopos => geo::geopos(s, a),
        Georadius | GeoradiusRo | Georadiusbymember | GeoradiusbymemberRo | Geosearch
        | Geosearchstore => geo::search_cmd(s, spec.id, a),
        Sort | SortRo => sort::sort(s, a, spec.id == SortRo),

        Subscribe => pubsub::subscribe(s, crate::pubsub::Kind::Channel, a),
        Psubscribe => pubsub::subscribe(s, crate::pubsub::Kind::Pattern, a),
        Ssubscribe => pubsub::subscribe(s, crate::pubsub::Kind::Shard, a),
        Unsubscribe => pubsub::unsubscribe(s, crate::pubsub::Kind::Channel, a),
        Punsubscribe => pubsub::unsubscribe(s, crate::pubsub::Kind::Pattern, a),
        Sunsubscribe => pubsub::unsubscribe(s, crate::pubsub::Kind::Shard, a),
        Publish => pubsub::publish(s, a, false),
        Spublish => pubsub::publish(s, a, true),
        PubsubChannels | PubsubNumsub | PubsubNumpat | PubsubShardchannels | PubsubShardnumsub
        | PubsubHelp => pubsub::pubsub(s, spec.id, a),

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
        Eval | Evalsha | EvalRo | EvalshaRo => script::eval(s, shared, spec, a),
        ScriptLoad | ScriptExists | ScriptFlush | ScriptHelp | ScriptKill => {
            script::script(s, spec.id, a)
        }
        Fcall | FcallRo => function::fcall(s, shared, spec, a),
        FunctionLoad | FunctionList | FunctionDelete | FunctionFlush | FunctionDump
        | FunctionRestore | FunctionStats | FunctionKill | FunctionHelp => {
            function::function(s, spec.id, a)
        }

        Client | Config | Object | Cluster | Memory | Debug | Latency | Slowlog | Pubsub
        | Script | Function | Xgroup | Xinfo => {
            Err(CmdError::from(CommandError::WrongArity(spec.name.into())))
        }
        // Only a proxy learns commands, and no server runs a refused one: the shard's lookup
        // yields neither.
        Learned | Unserved => Err(CmdError::from(CommandError::UnknownCommand {
            name: spec.name.into(),
            args: Vec::new(),
        })),
    }
}

/// Whether a request may write, for CLIENT PAUSE WRITE (Redis's `write` and `may_replicate`
/// commands: writes, scripts, PUBLISH, PFCOUNT, and EXEC of a transaction holding any).
pub fn may_write(s: &Session, args: &Args) -> bool {
    let Some((top, sub)) = command::resolve(args.get(0), args.len().gt(&1).then(|| args.get(1)))
    else {
        return false;
    };
    let spec = match (top.is_container(), sub) {
        (true, Some(sub)) => sub,
        _ => top,
    };
    if spec.id == CommandId::Exec {
        return s.tx.queued().any(|q| may_write(s, q));
    }
    spec.is_write()
        || matches!(
            spec.id,
            CommandId::Eval
                | CommandId::Evalsha
                | CommandId::Fcall
                | CommandId::Publish
                | CommandId::Spublish
                | CommandId::Pfcount
                | CommandId::ScriptLoad
                | CommandId::ScriptFlush
                | CommandId::FunctionLoad
                | CommandId::FunctionDelete
                | CommandId::FunctionFlush
                | CommandId::FunctionRestore
        )
}
