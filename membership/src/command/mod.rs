//! The static command table shared by the shard and the proxy: arity, flags, key positions, how
//! the keys are used, and how a command routes across shards. The types are here; the rows are in
//! [`table`] (one row per command; containers such as CLIENT, CONFIG and COMMAND carry their
//! subcommands); [`reply`] builds `COMMAND`'s replies from them. Names are matched
//! case-insensitively without allocating.
//!
//! Two tables: [`COMMANDS`], what AutoCache serves (the shard executes every row, the proxy
//! routes it by its [`Route`]), and [`REFUSED`], commands neither server executes, whose route
//! is [`Route::Refused`] with the reason a proxy gives. Giving one a real route later means
//! moving its row to [`COMMANDS`] with that route (and an implementation).

use std::collections::HashMap;
use std::sync::LazyLock;

pub mod reply;
mod table;

pub use reply::help;
pub use table::{COMMANDS, REFUSED};

/// Command flags, as `COMMAND INFO` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u32);

impl Flags {
    pub const NONE: Flags = Flags(0);
    pub const WRITE: Flags = Flags(1);
    pub const READONLY: Flags = Flags(1 << 1);
    pub const DENYOOM: Flags = Flags(1 << 2);
    pub const ADMIN: Flags = Flags(1 << 3);
    pub const NOSCRIPT: Flags = Flags(1 << 4);
    pub const LOADING: Flags = Flags(1 << 5);
    pub const STALE: Flags = Flags(1 << 6);
    pub const FAST: Flags = Flags(1 << 7);
    pub const NO_AUTH: Flags = Flags(1 << 8);
    pub const ALLOW_BUSY: Flags = Flags(1 << 9);
    pub const DANGEROUS: Flags = Flags(1 << 10);
    /// Blocks the client until a key is ready (`BLPOP`, `BZPOPMIN`, ...).
    pub const BLOCKING: Flags = Flags(1 << 11);
    /// The keys are found by key specs, not the `first, last, step` range alone (`LMPOP
    /// numkeys ...`, `ZUNIONSTORE dst numkeys ...`): set by [`CommandSpec::with_specs`].
    pub const MOVABLEKEYS: Flags = Flags(1 << 12);
    /// Left out of the slow log (EXEC: its commands are logged one by one).
    pub const SKIP_SLOWLOG: Flags = Flags(1 << 13);
    /// Pub/sub commands (and the `@pubsub` ACL category).
    pub const PUBSUB: Flags = Flags(1 << 14);
    /// Not shown to MONITOR (EVAL and friends: their commands are shown instead).
    pub const SKIP_MONITOR: Flags = Flags(1 << 15);
    /// May name no keys although it has key specs (EVAL with `numkeys` 0).
    pub const NO_MANDATORY_KEYS: Flags = Flags(1 << 16);
    /// Connection-level commands that are always answered by whoever holds the client
    /// connection (never forwarded).
    pub(crate) const CONN: Flags = Flags(
        Self::NOSCRIPT.0
            | Self::LOADING.0
            | Self::STALE.0
            | Self::FAST.0
            | Self::NO_AUTH.0
            | Self::ALLOW_BUSY.0,
    );

    const NAMES: [(Flags, &'static str); 16] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::PUBSUB, "pubsub"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::BLOCKING, "blocking"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::SKIP_MONITOR, "skip_monitor"),
        (Flags::SKIP_SLOWLOG, "skip_slowlog"),
        (Flags::FAST, "fast"),
        (Flags::NO_AUTH, "no_auth"),
        (Flags::NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (Flags::ALLOW_BUSY, "allow_busy"),
        (Flags::MOVABLEKEYS, "movablekeys"),
    ];

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Flag names in `COMMAND INFO` order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

/// Where a command's keys sit in its argument vector (argv\[0\] is the command name), in the
/// legacy `first, last, step` form: `last == -1` means "up to the last argument".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPos {
    pub first: i32,
    pub last: i32,
    pub step: i32,
}

impl KeyPos {
    pub const NONE: KeyPos = KeyPos {
        first: 0,
        last: 0,
        step: 0,
    };

    pub fn is_none(self) -> bool {
        self.first == 0
    }

    /// Indices of the key arguments in an argv of length `argc` (arity already checked).
    pub fn indices(self, argc: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
        let (first, step) = (self.first.max(0) as usize, self.step.max(1) as usize);
        let last = if self.last < 0 {
            (argc as i64 + i64::from(self.last)).max(0) as usize
        } else {
            self.last as usize
        };
        let end = if first == 0 {
            0
        } else {
            last.min(argc.saturating_sub(1)) + 1
        };
        (first..end.max(first)).step_by(step)
    }
}

/// How a command uses its keys, as one Redis 7 key spec of `COMMAND INFO` says: its flags
/// (`RO`/`RW`/`OW`/`RM`, then `access`, `update`, `insert`, `delete`, ...) and notes. The
/// positions come from [`KeyPos`]: one `KeyUse` covers the whole key range; several describe
/// one key each, in order (RENAME's source and destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUse {
    pub flags: &'static [&'static str],
    pub notes: &'static str,
}

impl KeyUse {
    pub const fn flags(flags: &'static [&'static str]) -> KeyUse {
        KeyUse { flags, notes: "" }
    }

    pub const fn notes(self, notes: &'static str) -> KeyUse {
        KeyUse { notes, ..self }
    }
}

/// How a proxy routes a command across shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Answered by the node that holds the client connection (PING, HELLO, CLIENT ...).
    Local,
    /// One key; goes to the shard that owns its slot.
    SingleKey,
    /// Several keys that must share a slot (atomic multi-key commands: MSETNX, RENAME).
    SameSlot,
    /// Independent keys: split by shard and merged in key order.
    FanOut(Merge),
    /// Sent to every shard and merged.
    AllShards(Merge),
    /// Sent to any one shard.
    AnyShard,
    /// Blocks until a key is ready (BLPOP, BLMOVE, BZPOPMIN, ...): one slot, like `SameSlot`,
    /// on a backend connection of its own while it waits.
    Blocking,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH: a transaction's commands run on one backend
    /// connection, in one slot.
    Transaction,
    /// (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, PUBSUB: a proxy serves them from its
    /// subscription hub (one upstream subscription per channel, fanned out to its clients).
    PubSub,
    /// Not served through a proxy, for this reason. Checked before arity: the client learns
    /// why, whatever its arguments.
    Refused(Refusal),
}

/// Why a proxy refuses a command; [`Refusal::reason`] is the text after `-ERR <NAME> is not
/// supported through the proxy: `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// BLPOP, XREAD ...: would hold a pooled backend connection while it waits.
    Blocking,
    /// A learned pub/sub command the proxy's hub does not know.
    PubSub,
    /// MULTI, EXEC, WATCH ...: a transaction's commands must share one backend connection.
    Transaction,
    /// WAIT, WAITAOF: they count acknowledgements of the writes of one backend connection.
    ReplicationAck,
    /// SYNC, PSYNC: replication runs between shards.
    Replication,
    /// MOVE, SWAPDB: there is no database but 0.
    OneDatabase,
    /// A learned keyless admin command (BGSAVE, ...): it is about one server.
    KeylessAdmin,
    /// A learned command whose keys move and that has no key specs to find them.
    KeysNotFound,
}

impl Refusal {
    pub const fn reason(self) -> &'static str {
        match self {
            Refusal::Blocking => "blocking commands would hold a shared backend connection",
            Refusal::PubSub => "the proxy's pub/sub hub does not know this command",
            Refusal::Transaction => "transactions need a dedicated connection",
            Refusal::ReplicationAck => "replication acknowledgements are per backend connection",
            Refusal::Replication => "replication is between shards",
            Refusal::OneDatabase => "there is only database 0",
            Refusal::KeylessAdmin => "it administers a single server; send it to the shard itself",
            Refusal::KeysNotFound => "its keys cannot be found from the backends' COMMAND reply",
        }
    }
}

/// How fanned-out replies are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Arrays reassembled in the client's key order (MGET).
    KeyOrder,
    /// Integer replies summed (DEL, EXISTS, DBSIZE).
    Sum,
    /// `+OK` when every part said OK (MSET, FLUSHALL).
    AllOk,
    /// Arrays concatenated (KEYS).
    Concat,
    /// A cursor that walks shard after shard (SCAN).
    Cursor,
    /// One shard's answer, the shard picked with probability proportional to its DBSIZE, so
    /// that every key of the whole keyspace is equally likely (RANDOMKEY). The proxy asks each
    /// shard for `DBSIZE` and the command in one batch.
    Random,
    /// INFO text: per-shard sections summed (keyspace, memory, stats, cpu), the proxy's own
    /// sections (server, clients, cluster, proxy) in place of any shard's.
    Info,
    /// CONFIG GET pairs: the union by name, the first shard's value (maxmemory summed), with
    /// the proxy's own parameters (port, bind, requirepass ...) answered by the proxy.
    Config,
    /// SLOWLOG GET entries of every shard, newest first, cut to the requested count.
    Slowlog,
    /// Every shard answers alike (`SCRIPT LOAD`'s digest, `+OK`): the first reply, unless
    /// one is an error.
    Same,
    /// Arrays of 0/1 combined position by position with a logical AND (SCRIPT EXISTS: a
    /// script exists when every shard has it).
    AllAnd,
    /// `+OK` when any shard said OK, else the first error (SCRIPT KILL, FUNCTION KILL: the
    /// shard running the script answers OK, the others `-NOTBUSY`).
    AnyOk,
}

/// Identity of every command this project implements, so dispatch is a `match`, not string
/// comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandId {
    // connection
    Ping,
    Echo,
    Hello,
    Auth,
    Select,
    Quit,
    Reset,
    Client,
    // server
    Command,
    Info,
    Dbsize,
    Flushdb,
    Flushall,
    Config,
    Time,
    Shutdown,
    // strings
    Get,
    Set,
    Setnx,
    Setex,
    Psetex,
    Getset,
    Getdel,
    Getex,
    Mget,
    Mset,
    Msetnx,
    Incr,
    Decr,
    Incrby,
    Decrby,
    Incrbyfloat,
    Append,
    Strlen,
    Getrange,
    Setrange,
    Substr,
    Lcs,
    // bitmaps
    Setbit,
    Getbit,
    Bitcount,
    Bitpos,
    Bitop,
    Bitfield,
    BitfieldRo,
    // hyperloglog
    Pfadd,
    Pfcount,
    Pfmerge,
    // generic
    Del,
    Unlink,
    Exists,
    Touch,
    Expire,
    Pexpire,
    Expireat,
    Pexpireat,
    Ttl,
    Pttl,
    Expiretime,
    Pexpiretime,
    Persist,
    Type,
    Rename,
    Copy,
    Renamenx,
    Keys,
    Scan,
    Randomkey,
    Object,
    Cluster,
    Asking,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Readonly,
    Readwrite,
    Memory,
    Debug,
    Slowlog,
    // hashes
    Hset,
    Hsetnx,
    Hget,
    Hmget,
    Hmset,
    Hdel,
    Hexists,
    Hlen,
    Hkeys,
    Hvals,
    Hgetall,
    Hincrby,
    Hincrbyfloat,
    Hstrlen,
    Hscan,
    Hrandfield,
    // lists
    Lpush,
    Rpush,
    Lpushx,
    Rpushx,
    Lpop,
    Rpop,
    Llen,
    Lrange,
    Lindex,
    Lset,
    Lrem,
    Ltrim,
    Linsert,
    Lpos,
    Lmove,
    Rpoplpush,
    Lmpop,
    Blpop,
    Brpop,
    Brpoplpush,
    Blmove,
    Blmpop,
    // sets
    Sadd,
    Srem,
    Smembers,
    Sismember,
    Smismember,
    Scard,
    Spop,
    Srandmember,
    Smove,
    Sinter,
    Sintercard,
    Sinterstore,
    Sunion,
    Sunionstore,
    Sdiff,
    Sdiffstore,
    Sscan,
    // sorted sets
    Zadd,
    Zincrby,
    Zrem,
    Zcard,
    Zscore,
    Zmscore,
    Zrank,
    Zrevrank,
    Zcount,
    Zlexcount,
    Zrange,
    Zrangestore,
    Zrevrange,
    Zrangebyscore,
    Zrevrangebyscore,
    Zrangebylex,
    Zrevrangebylex,
    Zremrangebyrank,
    Zremrangebyscore,
    Zremrangebylex,
    Zpopmin,
    Zpopmax,
    Zrandmember,
    Zscan,
    Zmpop,
    Bzpopmin,
    Bzpopmax,
    Bzmpop,
    Zunion,
    Zinter,
    Zdiff,
    Zunionstore,
    Zinterstore,
    Zdiffstore,
    Zintercard,
    // streams
    Xadd,
    Xrange,
    Xrevrange,
    Xlen,
    Xdel,
    Xtrim,
    Xsetid,
    Xread,
    Xreadgroup,
    Xack,
    Xpending,
    Xclaim,
    Xautoclaim,
    Xgroup,
    XgroupCreate,
    XgroupSetid,
    XgroupDestroy,
    XgroupCreateconsumer,
    XgroupDelconsumer,
    XgroupHelp,
    Xinfo,
    XinfoStream,
    XinfoGroups,
    XinfoConsumers,
    XinfoHelp,
    // geo
    Geoadd,
    Geodist,
    Geohash,
    Geopos,
    Georadius,
    GeoradiusRo,
    Georadiusbymember,
    GeoradiusbymemberRo,
    Geosearch,
    Geosearchstore,
    // sorting
    Sort,
    SortRo,
    // subcommands
    ClientId,
    ClientSetname,
    ClientGetname,
    ClientSetinfo,
    ClientInfo,
    ClientList,
    ClientKill,
    ClientUnblock,
    ClientNoEvict,
    ClientTracking,
    ClientCaching,
    ClientTrackinginfo,
    ClientGetredir,
    ClientPause,
    ClientUnpause,
    ClientReply,
    ClientNoTouch,
    ClientHelp,
    CommandCount,
    CommandInfo,
    CommandDocs,
    CommandList,
    CommandGetkeys,
    CommandHelp,
    ConfigGet,
    ConfigSet,
    ConfigResetstat,
    ConfigRewrite,
    ConfigHelp,
    ObjectEncoding,
    ObjectFreq,
    ObjectIdletime,
    ObjectRefcount,
    ObjectHelp,
    ClusterKeyslot,
    ClusterCountkeysinslot,
    ClusterGetkeysinslot,
    ClusterHelp,
    ClusterSlots,
    ClusterShards,
    ClusterNodes,
    ClusterInfo,
    ClusterMyid,
    ClusterMigrate,
    MemoryUsage,
    MemoryStats,
    MemoryDoctor,
    MemoryMallocStats,
    MemoryPurge,
    MemoryHelp,
    DebugObject,
    DebugSleep,
    DebugSetActiveExpire,
    DebugHelp,
    Latency,
    LatencyLatest,
    LatencyHistory,
    LatencyReset,
    LatencyDoctor,
    LatencyHelp,
    Monitor,
    SlowlogGet,
    SlowlogLen,
    SlowlogReset,
    SlowlogHelp,
    // pub/sub
    Subscribe,
    Unsubscribe,
    Psubscribe,
    Punsubscribe,
    Ssubscribe,
    Sunsubscribe,
    Publish,
    Spublish,
    Pubsub,
    PubsubChannels,
    PubsubNumsub,
    PubsubNumpat,
    PubsubShardchannels,
    PubsubShardnumsub,
    PubsubHelp,
    // scripting
    Eval,
    Evalsha,
    EvalRo,
    EvalshaRo,
    Script,
    ScriptLoad,
    ScriptExists,
    ScriptFlush,
    ScriptHelp,
    ScriptKill,
    Fcall,
    FcallRo,
    Function,
    FunctionLoad,
    FunctionList,
    FunctionDelete,
    FunctionFlush,
    FunctionDump,
    FunctionRestore,
    FunctionStats,
    FunctionKill,
    FunctionHelp,
    /// A row of [`REFUSED`]: a command this project knows but neither server executes.
    Unserved,
    /// A command a proxy learned from its backends' `COMMAND` (not in [`COMMANDS`]); keep it
    /// the last variant.
    Learned,
}

/// One row of the command table.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name (for subcommands: the subcommand alone, e.g. `setname`).
    pub name: &'static str,
    pub id: CommandId,
    /// Redis arity: positive = exact argc, negative = at least `-arity`.
    pub arity: i32,
    pub flags: Flags,
    pub keys: KeyPos,
    pub route: Route,
    /// `COMMAND DOCS` group: string, generic, hash, connection, server.
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub subcommands: &'static [CommandSpec],
    /// Redis 7 key specs, when the keys are not a plain `keys` range (`LMPOP numkeys ...`,
    /// `ZUNIONSTORE dst numkeys ...`, and learned commands: `XREAD`, `EVAL`, ...); empty when
    /// the range says where the keys are. With specs, `key_use[i]` is spec `i`'s use.
    pub specs: &'static [crate::keyspec::KeySpec],
    /// How the keys are used (`COMMAND INFO`'s key specs); empty for keyless commands.
    pub key_use: &'static [KeyUse],
    /// `COMMAND INFO`'s tips (`request_policy:multi_shard`, `nondeterministic_output`, ...).
    pub tips: &'static [&'static str],
}

/// Positions of a command's key arguments (see [`CommandSpec::key_positions`]).
pub enum KeyPositions {
    Range(std::iter::StepBy<std::ops::Range<usize>>),
    Found(std::vec::IntoIter<usize>),
}

impl Iterator for KeyPositions {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        match self {
            KeyPositions::Range(r) => r.next(),
            KeyPositions::Found(f) => f.next(),
        }
    }
}

impl CommandSpec {
    /// The same row with these subcommands (the table's containers).
    pub const fn with_subcommands(self, subcommands: &'static [CommandSpec]) -> CommandSpec {
        CommandSpec {
            subcommands,
            ..self
        }
    }

    /// The same row with its keys found by these key specs (and `movablekeys`).
    pub const fn with_specs(self, specs: &'static [crate::keyspec::KeySpec]) -> CommandSpec {
        CommandSpec {
            specs,
            flags: self.flags.union(Flags::MOVABLEKEYS),
            ..self
        }
    }

    /// Whether the command names keys (by its range or its key specs).
    #[inline]
    pub fn has_keys(&self) -> bool {
        !self.keys.is_none() || !self.specs.is_empty()
    }

    /// Whether a proxy refuses the command, and why.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.route {
            Route::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// Whether `argc` (including the command name) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(Flags::WRITE)
    }

    /// Positions of the key arguments in an argv of `argc` arguments (`arg(i)` is argument
    /// `i`): the `keys` range, or what the key specs find (see [`crate::keyspec::find`]).
    #[inline]
    pub fn key_positions<'a>(&self, argc: usize, arg: impl Fn(usize) -> &'a [u8]) -> KeyPositions {
        if self.specs.is_empty() {
            return KeyPositions::Range(self.keys.indices(argc));
        }
        if self.id == CommandId::Sort {
            return KeyPositions::Found(sort_keys(argc, arg).into_iter());
        }
        let mut found = Vec::new();
        crate::keyspec::find(self.specs, argc, arg, &mut found);
        KeyPositions::Found(found.into_iter())
    }

    /// Positions of the keys a write may change: [`Self::key_positions`] without those its
    /// key use marks read-only (SUNIONSTORE's and BITOP's sources, COPY's source). The last
    /// of several uses covers the rest of an open-ended range; with key specs (EVAL) every
    /// key counts.
    pub fn written_key_positions<'a>(
        &'a self,
        argc: usize,
        arg: impl Fn(usize) -> &'a [u8],
    ) -> impl Iterator<Item = usize> + 'a {
        let read_only = |u: &KeyUse| u.flags.first() == Some(&"RO");
        // With key specs: the keys of the specs that write (GEORADIUS's STORE destination,
        // not its source).
        let mut written = Vec::new();
        if self.id == CommandId::Sort {
            written = sort_keys(argc, &arg);
            written.retain(|&i| i != 1);
        } else if self.specs.iter().any(|k| !k.write) {
            for k in self.specs.iter().filter(|k| k.write) {
                crate::keyspec::find(std::slice::from_ref(k), argc, &arg, &mut written);
            }
            written.sort_unstable();
            written.dedup();
        }
        let only = self.specs.iter().any(|k| !k.write).then_some(written);
        let uses = if self.specs.is_empty() {
            self.key_use
        } else {
            &[]
        };
        self.key_positions(argc, arg)
            .enumerate()
            .filter(move |&(n, i)| match uses {
                _ if only.is_some() => only.as_ref().is_some_and(|w| w.contains(&i)),
                [] => true,
                [one] => !read_only(one),
                _ => !uses.get(n).or(uses.last()).is_some_and(read_only),
            })
            .map(|(_, i)| i)
    }

    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// A subcommand by name, case-insensitively.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands
            .iter()
            .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
    }

    /// ACL categories derived from group and flags, as `COMMAND INFO` lists them.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let mut cats = Vec::with_capacity(4);
        if self.flags.contains(Flags::WRITE) {
            cats.push("@write");
        }
        // Redis leaves scripting commands (EVAL_RO ...) out of @read.
        if self.flags.contains(Flags::READONLY) && self.group != "scripting" {
            cats.push("@read");
        }
        // Pub/sub's category comes from its flag (PUBSUB HELP, in the group, has neither); a
        // container has none but `@slow` (Redis: `xgroup`, `object`, `client` ...). SORT reads
        // lists, sets and sorted sets, and its patterns any key.
        if matches!(self.id, CommandId::Sort | CommandId::SortRo) {
            cats.extend(["@set", "@sortedset", "@list", "@dangerous"]);
        } else if let Some(c) = match self.group {
            _ if self.is_container() => None,
            "string" => Some("@string"),
            "geo" => Some("@geo"),
            "bitmap" => Some("@bitmap"),
            "hyperloglog" => Some("@hyperloglog"),
            "hash" => Some("@hash"),
            "list" => Some("@list"),
            "set" => Some("@set"),
            "sorted-set" => Some("@sortedset"),
            "stream" => Some("@stream"),
            "generic" => Some("@keyspace"),
            "connection" => Some("@connection"),
            "transactions" => Some("@transaction"),
            "scripting" => Some("@scripting"),
            "pubsub" => None,
            _ => Some("@admin"),
        } {
            cats.push(c);
        }
        if self.flags.contains(Flags::PUBSUB) {
            cats.push("@pubsub");
        }
        if self.flags.contains(Flags::ADMIN) && !cats.contains(&"@admin") {
            cats.push("@admin");
        }
        if self.flags.contains(Flags::DANGEROUS) || self.flags.contains(Flags::ADMIN) {
            cats.push("@dangerous");
        }
        cats.push(if self.flags.contains(Flags::FAST) {
            "@fast"
        } else {
            "@slow"
        });
        if self.flags.contains(Flags::BLOCKING) {
            cats.push("@blocking");
        }
        // Redis lists them in its category order.
        cats.sort_by_key(|c| ACL_ORDER.iter().position(|o| o == c));
        cats
    }
}

/// SORT's keys as Redis's `sortGetKeys` finds them: the sorted key, and the argument after
/// the last `STORE` (LIMIT's two arguments and BY's and GET's one are skipped).
pub fn sort_keys<'a>(argc: usize, arg: impl Fn(usize) -> &'a [u8]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut store = None;
    let mut i = 2;
    while i < argc {
        let a = arg(i);
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < argc {
            store = Some(i + 1);
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

/// The commands that run at once while a client is in MULTI; every other command is queued
/// for EXEC (Redis's `processCommand`). Shared by the shard and the proxy's own queue.
pub fn runs_at_once_in_multi(id: CommandId) -> bool {
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

/// Redis's ACL categories in the order `COMMAND INFO` lists them.
const ACL_ORDER: [&str; 21] = [
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

/// Longest command name in the tables; longer input cannot match.
const MAX_NAME: usize = 20;

/// Every row of both tables by name, with whether it is served (a row of [`COMMANDS`]).
static BY_NAME: LazyLock<HashMap<&'static [u8], (&'static CommandSpec, bool)>> =
    LazyLock::new(|| {
        let served = COMMANDS.iter().map(|c| (c, true));
        let refused = REFUSED.iter().map(|c| (c, false));
        served
            .chain(refused)
            .map(|(c, served)| (c.name.as_bytes(), (c, served)))
            .collect()
    });

/// Finds a row of either table by name, case-insensitively, without allocating.
fn find(name: &[u8]) -> Option<(&'static CommandSpec, bool)> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(&*lower).copied()
}

/// Finds a command AutoCache serves (a row of [`COMMANDS`]) by name, case-insensitively,
/// without allocating. Rows of [`REFUSED`] are not found: to a server they are unknown.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(name).and_then(|(c, served)| served.then_some(c))
}

/// Finds a row of either table: what a proxy plans with (a refused row says why).
pub fn lookup_any(name: &[u8]) -> Option<&'static CommandSpec> {
    find(name).map(|(c, _)| c)
}

/// Resolves a served command and, for containers, its subcommand from the first two
/// arguments. Returns the container itself when the subcommand is missing or unknown.
pub fn resolve(
    argv0: &[u8],
    argv1: Option<&[u8]>,
) -> Option<(&'static CommandSpec, Option<&'static CommandSpec>)> {
    let top = lookup(argv0)?;
    let sub = if top.is_container() {
        argv1.and_then(|n| top.subcommand(n))
    } else {
        None
    };
    Some((top, sub))
}

/// Finds a served command by its full name, `name` or `container|sub` (as `COMMAND INFO` and
/// `COMMAND DOCS` take them), as (container or command, the row itself).
pub fn lookup_full(name: &[u8]) -> Option<(&'static CommandSpec, &'static CommandSpec)> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => {
            let top = lookup(name.get(..bar)?)?;
            Some((top, top.subcommand(name.get(bar + 1..)?)?))
        }
        None => lookup(name).map(|c| (c, c)),
    }
}

/// The name Redis reports for `spec`: `get`, or `client|setname` for a subcommand of `top`.
pub fn full_name(top: &CommandSpec, spec: &CommandSpec) -> String {
    if std::ptr::eq(top, spec) {
        top.name.to_string()
    } else {
        format!("{}|{}", top.name, spec.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_row() -> impl Iterator<Item = (&'static CommandSpec, &'static CommandSpec)> {
        COMMANDS
            .iter()
            .chain(REFUSED)
            .flat_map(|c| std::iter::once((c, c)).chain(c.subcommands.iter().map(move |s| (c, s))))
    }

    #[test]
    fn names_are_unique_lowercase_and_fit() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS.iter().chain(REFUSED) {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.name.len() <= MAX_NAME);
            for s in c.subcommands {
                assert!(s.arity.unsigned_abs() >= 2, "{} {}", c.name, s.name);
            }
        }
    }

    /// A served row is routed somewhere; a refused row says why and is executed by no one.
    #[test]
    fn route_kinds_follow_the_tables() {
        for (top, c) in COMMANDS
            .iter()
            .flat_map(|c| std::iter::once((c, c)).chain(c.subcommands.iter().map(move |s| (c, s))))
        {
            assert_eq!(c.refusal(), None, "{}", full_name(top, c));
            assert_ne!(c.id, CommandId::Unserved, "{}", full_name(top, c));
        }
        for c in REFUSED {
            assert!(c.refusal().is_some(), "{}", c.name);
            assert_eq!(c.id, CommandId::Unserved, "{}", c.name);
            assert!(c.subcommands.is_empty(), "{}", c.name);
        }
        let refusal = |n: &[u8]| lookup_any(n).and_then(CommandSpec::refusal);
        assert_eq!(refusal(b"XREAD"), None, "served on a connection of its own");
        assert_eq!(refusal(b"BLPOP"), None, "served on a connection of its own");
        assert_eq!(refusal(b"subscribe"), None, "served by the proxy's hub");
        assert_eq!(refusal(b"Multi"), None, "served on a connection of its own");
        assert_eq!(refusal(b"wait"), Some(Refusal::ReplicationAck));
        assert_eq!(refusal(b"move"), Some(Refusal::OneDatabase));
        assert_eq!(refusal(b"get"), None);
        assert_eq!(
            Refusal::Blocking.reason(),
            "blocking commands would hold a shared backend connection"
        );
    }

    /// Keyed rows say how they use their keys (what `COMMAND INFO` reports); keyless rows
    /// have no key use. Several key uses describe one key each.
    #[test]
    fn key_use_matches_key_positions() {
        for (top, c) in every_row() {
            let name = full_name(top, c);
            if !c.specs.is_empty() {
                assert_eq!(
                    c.key_use.len(),
                    c.specs.len(),
                    "{name}: one use per key spec"
                );
                continue;
            }
            if c.keys.is_none() {
                assert!(c.key_use.is_empty(), "{name}");
                continue;
            }
            assert!(!c.key_use.is_empty(), "{name}");
            // Several uses: one key each, the last one possibly a range to the end
            // (SINTERSTORE's destination, then its sources).
            if c.key_use.len() > 1 && c.keys.last >= 0 {
                assert_eq!(
                    c.keys.last,
                    c.keys.first + c.key_use.len() as i32 - 1,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").map(|c| c.id), Some(CommandId::Get));
        assert_eq!(
            lookup(b"hincrbyfloat").map(|c| c.id),
            Some(CommandId::Hincrbyfloat)
        );
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"a-very-long-name-that-cannot-be-a-command").is_none());
        let (top, sub) = resolve(b"client", Some(b"SETNAME")).expect("client");
        assert_eq!(top.id, CommandId::Client);
        assert_eq!(sub.map(|s| s.id), Some(CommandId::ClientSetname));
    }

    /// A server does not find a refused row: it answers it as an unknown command.
    #[test]
    fn refused_rows_are_not_served() {
        for c in REFUSED {
            assert!(lookup(c.name.as_bytes()).is_none(), "{}", c.name);
            assert!(resolve(c.name.as_bytes(), None).is_none(), "{}", c.name);
            assert!(lookup_full(c.name.as_bytes()).is_none(), "{}", c.name);
            assert!(lookup_any(c.name.as_bytes()).is_some(), "{}", c.name);
        }
    }

    #[test]
    fn full_names() {
        let (top, sub) = lookup_full(b"CLIENT|SetName").expect("client|setname");
        assert_eq!(full_name(top, sub), "client|setname");
        let (top, same) = lookup_full(b"get").expect("get");
        assert_eq!(full_name(top, same), "get");
        assert!(lookup_full(b"client|nosuch").is_none());
        assert!(lookup_full(b"get|x").is_none());
        assert!(lookup_full(b"|").is_none());
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").expect("get");
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").expect("set");
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }

    #[test]
    fn key_positions() {
        let idx = |name: &[u8], argc| {
            lookup(name)
                .expect("cmd")
                .keys
                .indices(argc)
                .collect::<Vec<_>>()
        };
        assert_eq!(idx(b"get", 2), vec![1]);
        assert_eq!(idx(b"mget", 4), vec![1, 2, 3]);
        assert_eq!(idx(b"mset", 5), vec![1, 3]);
        assert_eq!(idx(b"rename", 3), vec![1, 2]);
        assert_eq!(idx(b"ping", 1), Vec::<usize>::new());
        assert_eq!(idx(b"hset", 4), vec![1]);
    }

    #[test]
    fn acl_categories_follow_flags() {
        let get = lookup(b"get").expect("get");
        assert_eq!(get.acl_categories(), vec!["@read", "@string", "@fast"]);
        let del = lookup(b"del").expect("del");
        assert_eq!(del.acl_categories(), vec!["@keyspace", "@write", "@slow"]);
    }
}
