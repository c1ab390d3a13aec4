//! The static command table shared by the shard and the proxy: arity, flags, key positions and
//! how a command routes across shards. One row per command; containers (CLIENT, CONFIG, COMMAND)
//! carry their subcommands. Names are matched case-insensitively without allocating.

use std::collections::HashMap;
use std::sync::LazyLock;

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
    /// Connection-level commands that are always answered by whoever holds the client
    /// connection (never forwarded).
    const CONN: Flags = Flags(
        Self::NOSCRIPT.0
            | Self::LOADING.0
            | Self::STALE.0
            | Self::FAST.0
            | Self::NO_AUTH.0
            | Self::ALLOW_BUSY.0,
    );

    const NAMES: [(Flags, &'static str); 10] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::LOADING, "loading"),
        (Flags::STALE, "stale"),
        (Flags::FAST, "fast"),
        (Flags::NO_AUTH, "no_auth"),
        (Flags::ALLOW_BUSY, "allow_busy"),
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
    Renamenx,
    Keys,
    Scan,
    Randomkey,
    Object,
    Cluster,
    Asking,
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
    // subcommands
    ClientId,
    ClientSetname,
    ClientGetname,
    ClientSetinfo,
    ClientInfo,
    ClientList,
    ClientKill,
    ClientNoEvict,
    ClientTracking,
    ClientCaching,
    ClientTrackinginfo,
    ClientGetredir,
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
    MemoryHelp,
    DebugObject,
    DebugHelp,
    SlowlogGet,
    SlowlogLen,
    SlowlogReset,
    SlowlogHelp,
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
    /// Redis 7 key specs, when the keys are not a plain `keys` range (learned commands:
    /// `ZUNIONSTORE`, `XREAD`, `EVAL`, ...); empty for this table's rows.
    pub specs: &'static [crate::keyspec::KeySpec],
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
        let mut found = Vec::new();
        crate::keyspec::find(self.specs, argc, arg, &mut found);
        KeyPositions::Found(found.into_iter())
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
        if self.flags.contains(Flags::READONLY) {
            cats.push("@read");
        }
        cats.push(match self.group {
            "string" => "@string",
            "hash" => "@hash",
            "generic" => "@keyspace",
            "connection" => "@connection",
            _ => "@admin",
        });
        if self.flags.contains(Flags::DANGEROUS) || self.flags.contains(Flags::ADMIN) {
            cats.push("@dangerous");
        }
        cats.push(if self.flags.contains(Flags::FAST) {
            "@fast"
        } else {
            "@slow"
        });
        cats
    }
}

const W: Flags = Flags::WRITE;
const R: Flags = Flags::READONLY;
const D: Flags = Flags::DENYOOM;
const F: Flags = Flags::FAST;
const A: Flags = Flags::ADMIN
    .union(Flags::NOSCRIPT)
    .union(Flags::LOADING)
    .union(Flags::STALE);
const C: Flags = Flags::CONN;
const N: Flags = Flags::NONE;
const K0: KeyPos = KeyPos::NONE;
const K1: KeyPos = KeyPos {
    first: 1,
    last: 1,
    step: 1,
};
const KN: KeyPos = KeyPos {
    first: 1,
    last: -1,
    step: 1,
};
const KV: KeyPos = KeyPos {
    first: 1,
    last: -1,
    step: 2,
};
const K12: KeyPos = KeyPos {
    first: 1,
    last: 2,
    step: 1,
};

macro_rules! spec {
    ($id:ident, $name:literal, $arity:expr, $flags:expr, $keys:expr, $route:expr, $group:literal, $since:literal, $summary:literal) => {
        spec!(
            $id,
            $name,
            $arity,
            $flags,
            $keys,
            $route,
            $group,
            $since,
            $summary,
            &[]
        )
    };
    ($id:ident, $name:literal, $arity:expr, $flags:expr, $keys:expr, $route:expr, $group:literal, $since:literal, $summary:literal, $subs:expr) => {
        CommandSpec {
            name: $name,
            id: CommandId::$id,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            route: $route,
            group: $group,
            since: $since,
            summary: $summary,
            subcommands: $subs,
            specs: &[],
        }
    };
}

use Merge::*;
use Route::*;

static CLIENT_SUBS: &[CommandSpec] = &[
    spec!(
        ClientId,
        "id",
        2,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "5.0.0",
        "Returns the unique client ID of the connection."
    ),
    spec!(
        ClientSetname,
        "setname",
        3,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "2.6.9",
        "Sets the connection name."
    ),
    spec!(
        ClientGetname,
        "getname",
        2,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "2.6.9",
        "Returns the name of the connection."
    ),
    spec!(
        ClientSetinfo,
        "setinfo",
        4,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "7.2.0",
        "Sets information specific to the client or connection."
    ),
    spec!(
        ClientInfo,
        "info",
        2,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "6.2.0",
        "Returns information about the connection."
    ),
    spec!(
        ClientList,
        "list",
        -2,
        A,
        K0,
        Local,
        "connection",
        "2.4.0",
        "Lists open connections."
    ),
    spec!(
        ClientKill,
        "kill",
        -3,
        A,
        K0,
        Local,
        "connection",
        "2.4.0",
        "Terminates open connections."
    ),
    spec!(
        ClientNoEvict,
        "no-evict",
        3,
        A,
        K0,
        Local,
        "connection",
        "7.0.0",
        "Sets the client eviction mode of the connection."
    ),
    spec!(
        ClientTracking,
        "tracking",
        -3,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "6.0.0",
        "Controls server-assisted client-side caching for the connection."
    ),
    spec!(
        ClientCaching,
        "caching",
        3,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "6.0.0",
        "Instructs the server whether to track the keys in the next request."
    ),
    spec!(
        ClientTrackinginfo,
        "trackinginfo",
        2,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "6.2.0",
        "Returns information about server-assisted client-side caching for the connection."
    ),
    spec!(
        ClientGetredir,
        "getredir",
        2,
        N.union(Flags::NOSCRIPT)
            .union(Flags::LOADING)
            .union(Flags::STALE),
        K0,
        Local,
        "connection",
        "6.0.0",
        "Returns the client ID to which the connection's tracking notifications are redirected."
    ),
    spec!(
        ClientHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "connection",
        "5.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

static COMMAND_SUBS: &[CommandSpec] = &[
    spec!(
        CommandCount,
        "count",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "2.8.13",
        "Returns a count of commands."
    ),
    spec!(
        CommandInfo,
        "info",
        -2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "2.8.13",
        "Returns information about one, multiple or all commands."
    ),
    spec!(
        CommandDocs,
        "docs",
        -2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "7.0.0",
        "Returns documentary information about one, multiple or all commands."
    ),
    spec!(
        CommandList,
        "list",
        -2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "7.0.0",
        "Returns a list of command names."
    ),
    spec!(
        CommandGetkeys,
        "getkeys",
        -3,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command."
    ),
    spec!(
        CommandHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

static CONFIG_SUBS: &[CommandSpec] = &[
    spec!(
        ConfigGet,
        "get",
        -3,
        A,
        K0,
        AllShards(Config),
        "server",
        "2.0.0",
        "Returns the effective values of configuration parameters."
    ),
    spec!(
        ConfigSet,
        "set",
        -4,
        A,
        K0,
        AllShards(AllOk),
        "server",
        "2.0.0",
        "Sets configuration parameters in-flight."
    ),
    spec!(
        ConfigResetstat,
        "resetstat",
        2,
        A,
        K0,
        AllShards(AllOk),
        "server",
        "2.0.0",
        "Resets the server's statistics."
    ),
    spec!(
        ConfigHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

static OBJECT_SUBS: &[CommandSpec] = &[
    spec!(
        ObjectEncoding,
        "encoding",
        3,
        R,
        K12_OBJ,
        SingleKey,
        "generic",
        "2.2.3",
        "Returns the internal encoding of a Redis object."
    ),
    spec!(
        ObjectFreq,
        "freq",
        3,
        R,
        K12_OBJ,
        SingleKey,
        "generic",
        "4.0.0",
        "Returns the logarithmic access frequency counter of a Redis object."
    ),
    spec!(
        ObjectIdletime,
        "idletime",
        3,
        R,
        K12_OBJ,
        SingleKey,
        "generic",
        "2.2.3",
        "Returns the time since the last access to a Redis object."
    ),
    spec!(
        ObjectRefcount,
        "refcount",
        3,
        R,
        K12_OBJ,
        SingleKey,
        "generic",
        "2.2.3",
        "Returns the reference count of a value of a key."
    ),
    spec!(
        ObjectHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "generic",
        "6.2.0",
        "Returns helpful text about the different subcommands."
    ),
];

/// CLUSTER subcommands a standalone shard answers (the rest arrive with cluster mode).
static CLUSTER_SUBS: &[CommandSpec] = &[
    spec!(
        ClusterKeyslot,
        "keyslot",
        3,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns the hash slot for a key."
    ),
    spec!(
        ClusterCountkeysinslot,
        "countkeysinslot",
        3,
        N.union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns the number of keys in a hash slot."
    ),
    spec!(
        ClusterGetkeysinslot,
        "getkeysinslot",
        4,
        N.union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns the key names in a hash slot."
    ),
    spec!(
        ClusterSlots,
        "slots",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns the mapping of cluster slots to nodes."
    ),
    spec!(
        ClusterShards,
        "shards",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "7.0.0",
        "Returns the mapping of cluster slots to shards."
    ),
    spec!(
        ClusterNodes,
        "nodes",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns the cluster configuration for a node."
    ),
    spec!(
        ClusterInfo,
        "info",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns information about the state of a node."
    ),
    spec!(
        ClusterMyid,
        "myid",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Returns the ID of a node."
    ),
    spec!(
        ClusterMigrate,
        "migrate",
        5,
        A,
        K0,
        Local,
        "cluster",
        "1.0.0",
        "Moves a range of hash slots this node owns, with their keys, to another node."
    ),
    spec!(
        ClusterHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "5.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

/// OBJECT subcommands take their key as argv\[2\].
const K12_OBJ: KeyPos = KeyPos {
    first: 2,
    last: 2,
    step: 1,
};

/// MEMORY subcommands: USAGE takes its key as argv\[2\].
static MEMORY_SUBS: &[CommandSpec] = &[
    spec!(
        MemoryUsage,
        "usage",
        -3,
        R,
        K12_OBJ,
        SingleKey,
        "server",
        "4.0.0",
        "Estimates the memory usage of a key."
    ),
    spec!(
        MemoryHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "4.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

/// DEBUG subcommands: only OBJECT, which inspects one key (argv\[2\]).
static DEBUG_SUBS: &[CommandSpec] = &[
    spec!(
        DebugObject,
        "object",
        3,
        A,
        K12_OBJ,
        SingleKey,
        "server",
        "1.0.0",
        "Returns low-level information about a key."
    ),
    spec!(
        DebugHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "1.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

static SLOWLOG_SUBS: &[CommandSpec] = &[
    spec!(
        SlowlogGet,
        "get",
        -2,
        A,
        K0,
        AllShards(Slowlog),
        "server",
        "2.2.12",
        "Returns the slow log's entries."
    ),
    spec!(
        SlowlogLen,
        "len",
        2,
        A,
        K0,
        AllShards(Sum),
        "server",
        "2.2.12",
        "Returns the number of entries in the slow log."
    ),
    spec!(
        SlowlogReset,
        "reset",
        2,
        A,
        K0,
        AllShards(AllOk),
        "server",
        "2.2.12",
        "Clears all entries from the slow log."
    ),
    spec!(
        SlowlogHelp,
        "help",
        2,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "6.2.0",
        "Show helpful text about the different subcommands"
    ),
];

/// Every top-level command, in `COMMAND` order.
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    spec!(
        Ping,
        "ping",
        -1,
        F.union(Flags::STALE),
        K0,
        Local,
        "connection",
        "1.0.0",
        "Returns the server's liveliness response."
    ),
    spec!(
        Echo,
        "echo",
        2,
        F,
        K0,
        Local,
        "connection",
        "1.0.0",
        "Returns the given string."
    ),
    spec!(
        Hello,
        "hello",
        -1,
        C,
        K0,
        Local,
        "connection",
        "6.0.0",
        "Handshakes with the Redis server."
    ),
    spec!(
        Auth,
        "auth",
        -2,
        C,
        K0,
        Local,
        "connection",
        "1.0.0",
        "Authenticates the connection."
    ),
    spec!(
        Select,
        "select",
        2,
        F.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "connection",
        "1.0.0",
        "Changes the selected database."
    ),
    spec!(
        Quit,
        "quit",
        -1,
        C,
        K0,
        Local,
        "connection",
        "1.0.0",
        "Closes the connection."
    ),
    spec!(
        Reset,
        "reset",
        1,
        C,
        K0,
        Local,
        "connection",
        "6.2.0",
        "Resets the connection."
    ),
    spec!(
        Client,
        "client",
        -2,
        N,
        K0,
        Local,
        "connection",
        "2.4.0",
        "A container for client connection commands.",
        CLIENT_SUBS
    ),
    // server
    spec!(
        Command,
        "command",
        -1,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
        COMMAND_SUBS
    ),
    spec!(
        Info,
        "info",
        -1,
        N.union(Flags::LOADING).union(Flags::STALE),
        K0,
        AllShards(Info),
        "server",
        "1.0.0",
        "Returns information and statistics about the server."
    ),
    spec!(
        Dbsize,
        "dbsize",
        1,
        R.union(F),
        K0,
        AllShards(Sum),
        "server",
        "1.0.0",
        "Returns the number of keys in the database."
    ),
    spec!(
        Flushdb,
        "flushdb",
        -1,
        W,
        K0,
        AllShards(AllOk),
        "server",
        "1.0.0",
        "Removes all keys from the current database."
    ),
    spec!(
        Flushall,
        "flushall",
        -1,
        W,
        K0,
        AllShards(AllOk),
        "server",
        "1.0.0",
        "Removes all keys from all databases."
    ),
    spec!(
        Config,
        "config",
        -2,
        N,
        K0,
        Local,
        "server",
        "2.0.0",
        "A container for server configuration commands.",
        CONFIG_SUBS
    ),
    spec!(
        Time,
        "time",
        1,
        F.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "server",
        "2.6.0",
        "Returns the server time."
    ),
    spec!(
        Memory,
        "memory",
        -2,
        N,
        K0,
        Local,
        "server",
        "4.0.0",
        "A container for memory diagnostics commands.",
        MEMORY_SUBS
    ),
    spec!(
        Debug,
        "debug",
        -2,
        N,
        K0,
        Local,
        "server",
        "1.0.0",
        "A container for debugging commands.",
        DEBUG_SUBS
    ),
    spec!(
        Slowlog,
        "slowlog",
        -2,
        N,
        K0,
        Local,
        "server",
        "2.2.12",
        "A container for slow log commands.",
        SLOWLOG_SUBS
    ),
    spec!(
        Shutdown,
        "shutdown",
        -1,
        A.union(Flags::ALLOW_BUSY),
        K0,
        Local,
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk and shuts down the Redis server."
    ),
    // strings
    spec!(
        Get,
        "get",
        2,
        R.union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Returns the string value of a key."
    ),
    spec!(
        Set,
        "set",
        -3,
        W.union(D),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."
    ),
    spec!(
        Setnx,
        "setnx",
        3,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Set the string value of a key only when the key doesn't exist."
    ),
    spec!(
        Setex,
        "setex",
        4,
        W.union(D),
        K1,
        SingleKey,
        "string",
        "2.0.0",
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."
    ),
    spec!(
        Psetex,
        "psetex",
        4,
        W.union(D),
        K1,
        SingleKey,
        "string",
        "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."
    ),
    spec!(
        Getset,
        "getset",
        3,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Returns the previous string value of a key after setting it to a new value."
    ),
    spec!(
        Getdel,
        "getdel",
        2,
        W.union(F),
        K1,
        SingleKey,
        "string",
        "6.2.0",
        "Returns the string value of a key after deleting the key."
    ),
    spec!(
        Getex,
        "getex",
        -2,
        W.union(F),
        K1,
        SingleKey,
        "string",
        "6.2.0",
        "Returns the string value of a key after setting its expiration time."
    ),
    spec!(
        Mget,
        "mget",
        -2,
        R.union(F),
        KN,
        FanOut(KeyOrder),
        "string",
        "1.0.0",
        "Atomically returns the string values of one or more keys."
    ),
    spec!(
        Mset,
        "mset",
        -3,
        W.union(D),
        KV,
        FanOut(AllOk),
        "string",
        "1.0.1",
        "Atomically creates or modifies the string values of one or more keys."
    ),
    spec!(
        Msetnx,
        "msetnx",
        -3,
        W.union(D),
        KV,
        SameSlot,
        "string",
        "1.0.1",
        "Atomically modifies the string values of one or more keys only when all keys don't exist."
    ),
    spec!(
        Incr,
        "incr",
        2,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."
    ),
    spec!(
        Decr,
        "decr",
        2,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."
    ),
    spec!(
        Incrby,
        "incrby",
        3,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."
    ),
    spec!(
        Decrby,
        "decrby",
        3,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "1.0.0",
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."
    ),
    spec!(
        Incrbyfloat,
        "incrbyfloat",
        3,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "2.6.0",
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."
    ),
    spec!(
        Append,
        "append",
        3,
        W.union(D).union(F),
        K1,
        SingleKey,
        "string",
        "2.0.0",
        "Appends a string to the value of a key. Creates the key if it doesn't exist."
    ),
    spec!(
        Strlen,
        "strlen",
        2,
        R.union(F),
        K1,
        SingleKey,
        "string",
        "2.2.0",
        "Returns the length of a string value."
    ),
    spec!(
        Getrange,
        "getrange",
        4,
        R,
        K1,
        SingleKey,
        "string",
        "2.4.0",
        "Returns a substring of the string stored at a key."
    ),
    spec!(
        Setrange,
        "setrange",
        4,
        W.union(D),
        K1,
        SingleKey,
        "string",
        "2.2.0",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."
    ),
    // generic
    spec!(
        Del,
        "del",
        -2,
        W,
        KN,
        FanOut(Sum),
        "generic",
        "1.0.0",
        "Deletes one or more keys."
    ),
    spec!(
        Unlink,
        "unlink",
        -2,
        W.union(F),
        KN,
        FanOut(Sum),
        "generic",
        "4.0.0",
        "Asynchronously deletes one or more keys."
    ),
    spec!(
        Exists,
        "exists",
        -2,
        R.union(F),
        KN,
        FanOut(Sum),
        "generic",
        "1.0.0",
        "Determines whether one or more keys exist."
    ),
    spec!(
        Touch,
        "touch",
        -2,
        R.union(F),
        KN,
        FanOut(Sum),
        "generic",
        "3.2.1",
        "Returns the number of existing keys out of those specified after updating the time they were last accessed."
    ),
    spec!(
        Expire,
        "expire",
        -3,
        W.union(F),
        K1,
        SingleKey,
        "generic",
        "1.0.0",
        "Sets the expiration time of a key in seconds."
    ),
    spec!(
        Pexpire,
        "pexpire",
        -3,
        W.union(F),
        K1,
        SingleKey,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key in milliseconds."
    ),
    spec!(
        Expireat,
        "expireat",
        -3,
        W.union(F),
        K1,
        SingleKey,
        "generic",
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp."
    ),
    spec!(
        Pexpireat,
        "pexpireat",
        -3,
        W.union(F),
        K1,
        SingleKey,
        "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp."
    ),
    spec!(
        Ttl,
        "ttl",
        2,
        R.union(F),
        K1,
        SingleKey,
        "generic",
        "1.0.0",
        "Returns the expiration time in seconds of a key."
    ),
    spec!(
        Pttl,
        "pttl",
        2,
        R.union(F),
        K1,
        SingleKey,
        "generic",
        "2.6.0",
        "Returns the expiration time in milliseconds of a key."
    ),
    spec!(
        Expiretime,
        "expiretime",
        2,
        R.union(F),
        K1,
        SingleKey,
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp."
    ),
    spec!(
        Pexpiretime,
        "pexpiretime",
        2,
        R.union(F),
        K1,
        SingleKey,
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp."
    ),
    spec!(
        Persist,
        "persist",
        2,
        W.union(F),
        K1,
        SingleKey,
        "generic",
        "2.2.0",
        "Removes the expiration time of a key."
    ),
    spec!(
        Type,
        "type",
        2,
        R.union(F),
        K1,
        SingleKey,
        "generic",
        "1.0.0",
        "Determines the type of value stored at a key."
    ),
    spec!(
        Rename,
        "rename",
        3,
        W,
        K12,
        SameSlot,
        "generic",
        "1.0.0",
        "Renames a key and overwrites the destination."
    ),
    spec!(
        Renamenx,
        "renamenx",
        3,
        W.union(F),
        K12,
        SameSlot,
        "generic",
        "1.0.0",
        "Renames a key only when the target key name doesn't exist."
    ),
    spec!(
        Keys,
        "keys",
        2,
        R,
        K0,
        AllShards(Concat),
        "generic",
        "1.0.0",
        "Returns all key names that match a pattern."
    ),
    spec!(
        Scan,
        "scan",
        -2,
        R,
        K0,
        AllShards(Cursor),
        "generic",
        "2.8.0",
        "Iterates over the key names in the database."
    ),
    spec!(
        Randomkey,
        "randomkey",
        1,
        R,
        K0,
        AllShards(Random),
        "generic",
        "1.0.0",
        "Returns a random key name from the database."
    ),
    spec!(
        Object,
        "object",
        -2,
        N,
        K0,
        Local,
        "generic",
        "2.2.3",
        "A container for object introspection commands.",
        OBJECT_SUBS
    ),
    spec!(
        Cluster,
        "cluster",
        -2,
        N,
        K0,
        Local,
        "cluster",
        "3.0.0",
        "A container for Redis Cluster commands.",
        CLUSTER_SUBS
    ),
    spec!(
        Asking,
        "asking",
        1,
        F,
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Signals that a cluster client is following an -ASK redirect."
    ),
    spec!(
        Readonly,
        "readonly",
        1,
        F.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Enables read-only queries for a connection to a Redis Cluster replica node."
    ),
    spec!(
        Readwrite,
        "readwrite",
        1,
        F.union(Flags::LOADING).union(Flags::STALE),
        K0,
        Local,
        "cluster",
        "3.0.0",
        "Enables read-write queries for a connection to a Redis Cluster replica node."
    ),
    // hashes
    spec!(
        Hset,
        "hset",
        -4,
        W.union(D).union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Creates or modifies the value of a field in a hash."
    ),
    spec!(
        Hsetnx,
        "hsetnx",
        4,
        W.union(D).union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Sets the value of a field in a hash only when the field doesn't exist."
    ),
    spec!(
        Hget,
        "hget",
        3,
        R.union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Returns the value of a field in a hash."
    ),
    spec!(
        Hmget,
        "hmget",
        -3,
        R.union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Returns the values of all fields in a hash."
    ),
    spec!(
        Hmset,
        "hmset",
        -4,
        W.union(D).union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Sets the values of multiple fields."
    ),
    spec!(
        Hdel,
        "hdel",
        -3,
        W.union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."
    ),
    spec!(
        Hexists,
        "hexists",
        3,
        R.union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Determines whether a field exists in a hash."
    ),
    spec!(
        Hlen,
        "hlen",
        2,
        R.union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Returns the number of fields in a hash."
    ),
    spec!(
        Hkeys,
        "hkeys",
        2,
        R,
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Returns all fields in a hash."
    ),
    spec!(
        Hvals,
        "hvals",
        2,
        R,
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Returns all values in a hash."
    ),
    spec!(
        Hgetall,
        "hgetall",
        2,
        R,
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Returns all fields and values in a hash."
    ),
    spec!(
        Hincrby,
        "hincrby",
        4,
        W.union(D).union(F),
        K1,
        SingleKey,
        "hash",
        "2.0.0",
        "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."
    ),
    spec!(
        Hincrbyfloat,
        "hincrbyfloat",
        4,
        W.union(D).union(F),
        K1,
        SingleKey,
        "hash",
        "2.6.0",
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."
    ),
    spec!(
        Hstrlen,
        "hstrlen",
        3,
        R.union(F),
        K1,
        SingleKey,
        "hash",
        "3.2.0",
        "Returns the length of the value of a field."
    ),
    spec!(
        Hscan,
        "hscan",
        -3,
        R,
        K1,
        SingleKey,
        "hash",
        "2.8.0",
        "Iterates over fields and values of a hash."
    ),
    spec!(
        Hrandfield,
        "hrandfield",
        -2,
        R,
        K1,
        SingleKey,
        "hash",
        "6.2.0",
        "Returns one or more random fields from a hash."
    ),
];

/// Longest command name in the table; longer input cannot match.
const MAX_NAME: usize = 16;

static BY_NAME: LazyLock<HashMap<&'static [u8], &'static CommandSpec>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// Finds a top-level command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(&*lower).copied()
}

/// Resolves a command and, for containers, its subcommand from the first two arguments.
/// Returns the container itself when the subcommand is missing or unknown.
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

/// Commands a stateless proxy cannot serve, with the reason it gives (`-ERR <name> is not
/// supported through the proxy: <reason>`). They are not in [`COMMANDS`]; this list only lets a
/// proxy say why instead of "unknown command".
pub static PROXY_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "blpop",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "brpop",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "brpoplpush",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "blmove",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "blmpop",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "bzpopmin",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "bzpopmax",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "bzmpop",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "xread",
        "blocking commands would hold a shared backend connection",
    ),
    (
        "xreadgroup",
        "blocking commands would hold a shared backend connection",
    ),
    ("subscribe", "pub/sub needs a dedicated connection"),
    ("psubscribe", "pub/sub needs a dedicated connection"),
    ("ssubscribe", "pub/sub needs a dedicated connection"),
    ("unsubscribe", "pub/sub needs a dedicated connection"),
    ("punsubscribe", "pub/sub needs a dedicated connection"),
    ("sunsubscribe", "pub/sub needs a dedicated connection"),
    ("publish", "pub/sub needs a dedicated connection"),
    ("spublish", "pub/sub needs a dedicated connection"),
    ("multi", "transactions need a dedicated connection"),
    ("exec", "transactions need a dedicated connection"),
    ("discard", "transactions need a dedicated connection"),
    ("watch", "transactions need a dedicated connection"),
    ("unwatch", "transactions need a dedicated connection"),
    (
        "wait",
        "replication acknowledgements are per backend connection",
    ),
    (
        "waitaof",
        "replication acknowledgements are per backend connection",
    ),
    ("monitor", "it needs a dedicated connection"),
    ("sync", "replication is between shards"),
    ("psync", "replication is between shards"),
    ("move", "there is only database 0"),
    ("swapdb", "there is only database 0"),
];

/// The reason a proxy cannot serve `name` (case-insensitive), if it is one of
/// [`PROXY_UNSUPPORTED`].
pub fn proxy_unsupported(name: &[u8]) -> Option<&'static str> {
    PROXY_UNSUPPORTED
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_fit() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.name.len() <= MAX_NAME);
            for s in c.subcommands {
                assert!(s.arity.unsigned_abs() >= 2, "{} {}", c.name, s.name);
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

    #[test]
    fn unsupported_commands_are_not_in_the_table() {
        for (name, _) in PROXY_UNSUPPORTED {
            assert!(lookup(name.as_bytes()).is_none(), "{name}");
        }
        assert!(proxy_unsupported(b"BLPOP").is_some());
        assert!(proxy_unsupported(b"get").is_none());
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
        assert_eq!(del.acl_categories(), vec!["@write", "@keyspace", "@slow"]);
    }
}
