//! The rows of the command tables, one per command, readable as a table (see [`super`] for the
//! types). Legend of the short names:
//!
//! - **flags** (`COMMAND INFO` flags): `W` write, `R` readonly, `D` denyoom, `A` admin, `N`
//!   noscript, `L` loading, `S` stale, `F` fast, `B` allow_busy; `CONN` = the connection
//!   commands' `N L S F` + no_auth + allow_busy; `NONE`.
//! - **keys** (first, last, step): `K0` none, `K1` the first argument, `K2` the second, `K12`
//!   the first two, `KN` all from the first, `KN1` all but the last, `KV` every other one
//!   (key, value, ...).
//! - **key use** (Redis 7 key-spec flags): `RO`, `RW`, `OW`, `RM`, then `A` access, `U` update,
//!   `I` insert, `D` delete; `*_KEYS` for commands with notes or one use per key.
//! - **tips** (`COMMAND INFO` tips): `ALL_*` / `NODES_*` `request_policy:all_shards|all_nodes`,
//!   `MULTI*` `request_policy:multi_shard`; `*_OK` all_succeeded, `*_SUM` agg_sum, `*_MIN`
//!   agg_min, `*_SPECIAL` special; `ND_OUT` nondeterministic_output, `ND_ORDER` its `_order`.
//!
//! Key use and tips are Redis 7.0's for every command Redis has (checked against a real
//! server's `COMMAND INFO`); this project's own subcommands (DEBUG OBJECT, CLUSTER MIGRATE) and
//! Redis 7.2's CLIENT SETINFO read their keys (`RO`) and have no tips.

use super::Refusal::*;
use super::Route::*;
use super::{CommandId, CommandId::*, CommandSpec, Flags, KeyPos, KeyUse, Merge, Route};
use crate::keyspec::{BeginSearch, FindKeys, KeySpec};

/// One row. Arguments in the tables' column order.
#[allow(clippy::too_many_arguments)] // the columns of a table row
const fn row(
    name: &'static str,
    id: CommandId,
    arity: i32,
    flags: Flags,
    keys: KeyPos,
    key_use: &'static [KeyUse],
    route: Route,
    tips: &'static [&'static str],
    group: &'static str,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        id,
        arity,
        flags,
        keys,
        route,
        group,
        since,
        summary,
        subcommands: &[],
        specs: &[],
        key_use,
        tips,
    }
}

const F: Flags = Flags::FAST;
const NS: Flags = Flags::NOSCRIPT.union(Flags::STALE);
/// EVAL and EVALSHA (Redis's `may_replicate` is not shown by `COMMAND INFO`).
const SCRIPT: Flags = NS
    .union(Flags::SKIP_MONITOR)
    .union(Flags::NO_MANDATORY_KEYS);
const SCRIPT_RO: Flags = SCRIPT.union(Flags::READONLY);
const N: Flags = Flags::NOSCRIPT;
const R: Flags = Flags::READONLY;
const S: Flags = Flags::STALE;
const W: Flags = Flags::WRITE;
const AN: Flags = Flags::ADMIN.union(Flags::NOSCRIPT);
const LS: Flags = Flags::LOADING.union(Flags::STALE);
const RF: Flags = Flags::READONLY.union(Flags::FAST);
const SF: Flags = Flags::STALE.union(Flags::FAST);
const WD: Flags = Flags::WRITE.union(Flags::DENYOOM);
const WF: Flags = Flags::WRITE.union(Flags::FAST);
const WN: Flags = Flags::WRITE.union(Flags::NOSCRIPT);
const LSF: Flags = Flags::LOADING.union(Flags::STALE).union(Flags::FAST);
const NLS: Flags = Flags::NOSCRIPT.union(Flags::LOADING).union(Flags::STALE);
const NLSK: Flags = NLS.union(Flags::SKIP_SLOWLOG);
const WB: Flags = Flags::WRITE.union(Flags::BLOCKING);
const RB: Flags = Flags::READONLY.union(Flags::BLOCKING);
const WNB: Flags = WN.union(Flags::BLOCKING);
const WDNB: Flags = WDN.union(Flags::BLOCKING);
const WNBF: Flags = WNB.union(Flags::FAST);
const WDF: Flags = Flags::WRITE.union(Flags::DENYOOM).union(Flags::FAST);
const WDN: Flags = Flags::WRITE.union(Flags::DENYOOM).union(Flags::NOSCRIPT);
const ANLS: Flags = Flags::ADMIN
    .union(Flags::NOSCRIPT)
    .union(Flags::LOADING)
    .union(Flags::STALE);
const CONN: Flags = Flags::CONN;
const NONE: Flags = Flags::NONE;
const ANLSB: Flags = Flags::ADMIN
    .union(Flags::NOSCRIPT)
    .union(Flags::LOADING)
    .union(Flags::STALE)
    .union(Flags::ALLOW_BUSY);
/// SCRIPT KILL, FUNCTION KILL, FUNCTION STATS: `noscript allow_busy`.
const NB: Flags = Flags::NOSCRIPT.union(Flags::ALLOW_BUSY);
const NLSFB: Flags = Flags::NOSCRIPT
    .union(Flags::LOADING)
    .union(Flags::STALE)
    .union(Flags::FAST)
    .union(Flags::ALLOW_BUSY);

const fn keys(first: i32, last: i32, step: i32) -> KeyPos {
    KeyPos { first, last, step }
}
const K0: KeyPos = KeyPos::NONE;
const K1: KeyPos = keys(1, 1, 1);
const K2: KeyPos = keys(2, 2, 1);
const K12: KeyPos = keys(1, 2, 1);
const KN: KeyPos = keys(1, -1, 1);
const KN1: KeyPos = keys(1, -2, 1);
const KV: KeyPos = keys(1, -1, 2);
/// BITOP: the destination, then the sources, after the operation.
const KN2: KeyPos = keys(2, -1, 1);

/// EVAL and EVALSHA: `script numkeys key [key ...] arg [arg ...]`, Redis 7's key spec.
const EVAL_SPECS: &[KeySpec] = &[keynum_at(2)];
/// EVAL_RO and EVALSHA_RO: the same keys, read only.
const EVAL_RO_SPECS: &[KeySpec] = &[KeySpec {
    write: false,
    ..keynum_at(2)
}];
const EVAL_KEYS: &[KeyUse] = &[KeyUse::flags(&["RW", "access", "update"])
    .notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE")];
const EVAL_RO_KEYS: &[KeyUse] = &[KeyUse::flags(&["RO", "access"])
    .notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")];

/// `numkeys key [key ...]` from argument 1 (LMPOP, ZMPOP, SINTERCARD, ...).
const KEYNUM_AT_1: &[KeySpec] = &[keynum_at(1)];
/// `timeout numkeys key [key ...]`: from argument 2 (BLMPOP, BZMPOP).
const KEYNUM_AT_2: &[KeySpec] = &[keynum_at(2)];

/// Redis 7's key spec for `numkeys key [key ...]` starting at argument `index`.
const fn keynum_at(index: usize) -> KeySpec {
    KeySpec {
        begin: BeginSearch::Index(index),
        find: FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
        write: true,
        not_key: false,
    }
}

/// `numkeys key [key ...]` from argument 1, read only (ZUNION, ZINTER, ZDIFF, ZINTERCARD).
const KEYNUM_AT_1_RO: &[KeySpec] = &[KeySpec {
    write: false,
    ..keynum_at(1)
}];
/// `destination numkeys key [key ...]` (ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE): the
/// destination, then the sources.
const STORE_KEYNUM_AT_2: &[KeySpec] = &[
    KeySpec {
        begin: BeginSearch::Index(1),
        find: FindKeys::Range {
            lastkey: 0,
            step: 1,
            limit: 0,
        },
        write: true,
        not_key: false,
    },
    KeySpec {
        write: false,
        ..keynum_at(2)
    },
];
/// ZUNIONSTORE and friends: the destination is overwritten, the sources read.
const ZSTORE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["OW", "update"]),
    KeyUse::flags(&["RO", "access"]),
];

const BLMOVE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "delete"]),
    KeyUse::flags(&["RW", "insert"]),
];
/// LMOVE and RPOPLPUSH: the source is read and may be deleted, the destination gets an element.
const LMOVE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "delete"]),
    KeyUse::flags(&["RW", "insert"]),
];
/// SMOVE: the source is read and may be deleted, the destination gets a member.
const SMOVE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "delete"]),
    KeyUse::flags(&["RW", "insert"]),
];
/// SINTERSTORE: the destination is updated from the sources.
const SINTERSTORE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "update"]),
    KeyUse::flags(&["RO", "access"]),
];
/// SUNIONSTORE and SDIFFSTORE: the destination is overwritten from the sources.
const SUNIONSTORE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["OW", "update"]),
    KeyUse::flags(&["RO", "access"]),
];
const BRPOPLPUSH_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "delete"]),
    KeyUse::flags(&["RW", "insert"]),
];
/// ZRANGESTORE: the destination is overwritten, the source read.
const ZRANGESTORE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["OW", "update"]),
    KeyUse::flags(&["RO", "access"]),
];
/// BITOP: the destination is overwritten from the sources.
const BITOP_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["OW", "update"]),
    KeyUse::flags(&["RO", "access"]),
];
const BITFIELD_KEYS: &[KeyUse] = &[KeyUse::flags(&["RW", "access", "update", "variable_flags"])
    .notes("This command allows both access and modification of the key")];
/// PFCOUNT: read-only, but it may rewrite the cached cardinality inside the value.
const PFCOUNT_KEYS: &[KeyUse] = &[KeyUse::flags(&["RW", "access"]).notes(
    "RW because it may change the internal representation of the key, and propagate to replicas",
)];
/// PFMERGE: the destination is read and added to, the sources read.
const PFMERGE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "insert"]),
    KeyUse::flags(&["RO", "access"]),
];
/// LCS: both keys read, in one spec.
const LCS_KEYS: &[KeyUse] = &[KeyUse::flags(&["RO", "access"])];
const GETEX_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "update"]).notes("RW and UPDATE because it changes the TTL")
];
const NOT_KEY: &[KeyUse] = &[KeyUse::flags(&["not_key"])];
const NO_KEYS: &[KeyUse] = &[];
const OW_I: &[KeyUse] = &[KeyUse::flags(&["OW", "insert"])];
const OW_U: &[KeyUse] = &[KeyUse::flags(&["OW", "update"])];
const RENAMENX_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "delete"]),
    KeyUse::flags(&["OW", "insert"]),
];
const RENAME_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RW", "access", "delete"]),
    KeyUse::flags(&["OW", "update"]),
];
const COPY_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RO", "access"]),
    KeyUse::flags(&["OW", "update"]),
];
const RM_D: &[KeyUse] = &[KeyUse::flags(&["RM", "delete"])];
const RO: &[KeyUse] = &[KeyUse::flags(&["RO"])];
const RO_A: &[KeyUse] = &[KeyUse::flags(&["RO", "access"])];
const RW_AD: &[KeyUse] = &[KeyUse::flags(&["RW", "access", "delete"])];
const RW_AU: &[KeyUse] = &[KeyUse::flags(&["RW", "access", "update"])];
const RW_D: &[KeyUse] = &[KeyUse::flags(&["RW", "delete"])];
const RW_I: &[KeyUse] = &[KeyUse::flags(&["RW", "insert"])];
const RW_U: &[KeyUse] = &[KeyUse::flags(&["RW", "update"])];
const SET_KEYS: &[KeyUse] = &[KeyUse::flags(&["RW", "access", "update", "variable_flags"])
    .notes("RW and ACCESS due to the optional `GET` argument")];

/// XADD: updated rather than inserted into, because of its optional trimming.
const XADD_KEYS: &[KeyUse] = &[KeyUse::flags(&["RW", "update"])
    .notes("UPDATE instead of INSERT because of the optional trimming feature")];
/// XREAD and XREADGROUP: the keys after STREAMS, the first half of what follows it.
const XREAD_SPECS: &[KeySpec] = &[streams_after(1)];
const XREADGROUP_SPECS: &[KeySpec] = &[streams_after(4)];

/// Redis 7's key spec of XREAD/XREADGROUP: after the keyword STREAMS (searched from argument
/// `startfrom`), half the remaining arguments are keys.
const fn streams_after(startfrom: i32) -> KeySpec {
    KeySpec {
        begin: BeginSearch::Keyword {
            keyword: "STREAMS",
            startfrom,
        },
        find: FindKeys::Range {
            lastkey: -1,
            step: 1,
            limit: 2,
        },
        write: false,
        not_key: false,
    }
}
/// GEORADIUS and GEORADIUSBYMEMBER (`store_from`: where the options start): the source, and
/// the STORE or STOREDIST destination after its keyword.
const fn georadius_specs(store_from: i32) -> [KeySpec; 3] {
    const RANGE: FindKeys = FindKeys::Range {
        lastkey: 0,
        step: 1,
        limit: 0,
    };
    [
        KeySpec {
            begin: BeginSearch::Index(1),
            find: RANGE,
            write: false,
            not_key: false,
        },
        KeySpec {
            begin: BeginSearch::Keyword {
                keyword: "STORE",
                startfrom: store_from,
            },
            find: RANGE,
            write: true,
            not_key: false,
        },
        KeySpec {
            begin: BeginSearch::Keyword {
                keyword: "STOREDIST",
                startfrom: store_from,
            },
            find: RANGE,
            write: true,
            not_key: false,
        },
    ]
}
const GEORADIUS_SPECS: &[KeySpec] = &georadius_specs(6);
const GEORADIUSBYMEMBER_SPECS: &[KeySpec] = &georadius_specs(5);
const GEORADIUS_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RO", "access"]),
    KeyUse::flags(&["OW", "update"]),
    KeyUse::flags(&["OW", "update"]),
];
/// GEOSEARCHSTORE: the destination is overwritten, the source read.
const GEOSEARCHSTORE_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["OW", "update"]),
    KeyUse::flags(&["RO", "access"]),
];
/// SORT and SORT_RO: the sorted key, then Redis's `unknown` specs for the BY/GET pattern keys
/// and SORT's STORE destination (found by [`super::sort_keys`], as Redis's `sortGetKeys`).
const SORT_INDEX: KeySpec = KeySpec {
    begin: BeginSearch::Index(1),
    find: FindKeys::Range {
        lastkey: 0,
        step: 1,
        limit: 0,
    },
    write: false,
    not_key: false,
};
const UNKNOWN_RO: KeySpec = KeySpec {
    begin: BeginSearch::Unknown,
    find: FindKeys::Unknown,
    write: false,
    not_key: false,
};
const SORT_SPECS: &[KeySpec] = &[
    SORT_INDEX,
    UNKNOWN_RO,
    KeySpec {
        write: true,
        ..UNKNOWN_RO
    },
];
const SORT_RO_SPECS: &[KeySpec] = &[SORT_INDEX, UNKNOWN_RO];
const SORT_PATTERN_USE: KeyUse = KeyUse::flags(&["RO", "access"]).notes(
    "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort",
);
const SORT_KEYS: &[KeyUse] = &[
    KeyUse::flags(&["RO", "access"]),
    SORT_PATTERN_USE,
    KeyUse::flags(&["OW", "update"]).notes(
        "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array",
    ),
];
const SORT_RO_KEYS: &[KeyUse] = &[KeyUse::flags(&["RO", "access"]), SORT_PATTERN_USE];

const ALL_MIN: &[&str] = &["request_policy:all_shards", "response_policy:agg_min"];
const ALL_ND: &[&str] = &["request_policy:all_shards", "nondeterministic_output"];
const ALL_ND_ORDER: &[&str] = &["request_policy:all_shards", "nondeterministic_output_order"];
const ALL_OK: &[&str] = &["request_policy:all_shards", "response_policy:all_succeeded"];
const ALL_SPECIAL_ND: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_shards",
    "response_policy:special",
];
const ALL_SUM: &[&str] = &["request_policy:all_shards", "response_policy:agg_sum"];
const MULTI: &[&str] = &["request_policy:multi_shard"];
const MULTI_MIN: &[&str] = &["request_policy:multi_shard", "response_policy:agg_min"];
const MULTI_OK: &[&str] = &[
    "request_policy:multi_shard",
    "response_policy:all_succeeded",
];
const MULTI_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
const ND_ORDER: &[&str] = &["nondeterministic_output_order"];
const ND_OUT: &[&str] = &["nondeterministic_output"];
const NODES_ND: &[&str] = &["request_policy:all_nodes", "nondeterministic_output"];
const NODES_OK: &[&str] = &["request_policy:all_nodes", "response_policy:all_succeeded"];
const NODES_SUM_ND: &[&str] = &[
    "request_policy:all_nodes",
    "response_policy:agg_sum",
    "nondeterministic_output",
];
const NO_TIPS: &[&str] = &[];
const ALL_AND: &[&str] = &[
    "request_policy:all_shards",
    "response_policy:agg_logical_and",
];
const ALL_ONE_OK: &[&str] = &["request_policy:all_shards", "response_policy:one_succeeded"];
const STATS_TIPS: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_shards",
    "response_policy:special",
];
const SPECIAL_ND: &[&str] = &["nondeterministic_output", "request_policy:special"];

#[rustfmt::skip]
static CLIENT_SUBS: &[CommandSpec] = &[
    //  name            id                  arity flags keys key use  route  tips     group         since    summary
    row("id",           ClientId,              2, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "5.0.0", "Returns the unique client ID of the connection."),
    row("setname",      ClientSetname,         3, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "2.6.9", "Sets the connection name."),
    row("getname",      ClientGetname,         2, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "2.6.9", "Returns the name of the connection."),
    row("setinfo",      ClientSetinfo,         4, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "7.2.0", "Sets information specific to the client or connection."),
    row("info",         ClientInfo,            2, NLS,  K0,  NO_KEYS, Local, ND_OUT,  "connection", "6.2.0", "Returns information about the connection."),
    row("list",         ClientList,           -2, ANLS, K0,  NO_KEYS, Local, ND_OUT,  "connection", "2.4.0", "Lists open connections."),
    row("kill",         ClientKill,           -3, ANLS, K0,  NO_KEYS, Local, NO_TIPS, "connection", "2.4.0", "Terminates open connections."),
    row("unblock",      ClientUnblock,        -3, ANLS, K0,  NO_KEYS, Local, NO_TIPS, "connection", "5.0.0", "Unblocks a client blocked by a blocking command from a different connection."),
    row("no-evict",     ClientNoEvict,         3, ANLS, K0,  NO_KEYS, Local, NO_TIPS, "connection", "7.0.0", "Sets the client eviction mode of the connection."),
    row("tracking",     ClientTracking,       -3, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "6.0.0", "Controls server-assisted client-side caching for the connection."),
    row("caching",      ClientCaching,         3, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "6.0.0", "Instructs the server whether to track the keys in the next request."),
    row("trackinginfo", ClientTrackinginfo,    2, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "6.2.0", "Returns information about server-assisted client-side caching for the connection."),
    row("getredir",     ClientGetredir,        2, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "6.0.0", "Returns the client ID to which the connection's tracking notifications are redirected."),
    row("pause",        ClientPause,          -3, ANLS, K0,  NO_KEYS, AllShards(Merge::AllOk), NO_TIPS, "connection", "3.0.0", "Suspends commands processing."),
    row("unpause",      ClientUnpause,         2, ANLS, K0,  NO_KEYS, AllShards(Merge::AllOk), NO_TIPS, "connection", "6.2.0", "Resumes processing commands from paused clients."),
    row("reply",        ClientReply,           3, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "3.2.0", "Instructs the server whether to reply to commands."),
    row("no-touch",     ClientNoTouch,         3, NLS,  K0,  NO_KEYS, Local, NO_TIPS, "connection", "7.2.0", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys."),
    row("help",         ClientHelp,            2, LS,   K0,  NO_KEYS, Local, NO_TIPS, "connection", "5.0.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static XGROUP_SUBS: &[CommandSpec] = &[
    //  name              id                    arity flags keys key use  route      tips     group     since    summary
    row("create",         XgroupCreate,           -5, WD,   K2,  RW_I,    SingleKey, NO_TIPS, "stream", "5.0.0", "Create a consumer group."),
    row("setid",          XgroupSetid,            -5, W,    K2,  RW_U,    SingleKey, NO_TIPS, "stream", "5.0.0", "Set a consumer group to an arbitrary last delivered ID value."),
    row("destroy",        XgroupDestroy,           4, W,    K2,  RW_D,    SingleKey, NO_TIPS, "stream", "5.0.0", "Destroy a consumer group."),
    row("createconsumer", XgroupCreateconsumer,    5, WD,   K2,  RW_I,    SingleKey, NO_TIPS, "stream", "6.2.0", "Create a consumer in a consumer group."),
    row("delconsumer",    XgroupDelconsumer,       5, W,    K2,  RW_D,    SingleKey, NO_TIPS, "stream", "5.0.0", "Delete a consumer from a consumer group."),
    // HELP: any shard answers it (the proxy has no text of its own for it).
    row("help",           XgroupHelp,              2, LS,   K0,  NO_KEYS, AnyShard,  NO_TIPS, "stream", "5.0.0", "Show helpful text about the different subcommands"),
];

#[rustfmt::skip]
static XINFO_SUBS: &[CommandSpec] = &[
    //  name         id              arity flags keys key use  route      tips     group     since    summary
    row("stream",    XinfoStream,      -3, R,    K2,  RO_A,    SingleKey, NO_TIPS, "stream", "5.0.0", "Get information about a stream"),
    row("groups",    XinfoGroups,       3, R,    K2,  RO_A,    SingleKey, NO_TIPS, "stream", "5.0.0", "List the consumer groups of a stream"),
    row("consumers", XinfoConsumers,    4, R,    K2,  RO_A,    SingleKey, ND_OUT,  "stream", "5.0.0", "List the consumers in a consumer group"),
    row("help",      XinfoHelp,         2, LS,   K0,  NO_KEYS, AnyShard,  NO_TIPS, "stream", "5.0.0", "Show helpful text about the different subcommands"),
];

#[rustfmt::skip]
static COMMAND_SUBS: &[CommandSpec] = &[
    //  name       id              arity flags keys key use  route  tips      group     since     summary
    row("count",   CommandCount,      2, LS,   K0,  NO_KEYS, Local, NO_TIPS,  "server", "2.8.13", "Returns a count of commands."),
    row("info",    CommandInfo,      -2, LS,   K0,  NO_KEYS, Local, ND_ORDER, "server", "2.8.13", "Returns information about one, multiple or all commands."),
    row("docs",    CommandDocs,      -2, LS,   K0,  NO_KEYS, Local, ND_ORDER, "server", "7.0.0",  "Returns documentary information about one, multiple or all commands."),
    row("list",    CommandList,      -2, LS,   K0,  NO_KEYS, Local, ND_ORDER, "server", "7.0.0",  "Returns a list of command names."),
    row("getkeys", CommandGetkeys,   -3, LS,   K0,  NO_KEYS, Local, NO_TIPS,  "server", "2.8.13", "Extracts the key names from an arbitrary command."),
    row("help",    CommandHelp,       2, LS,   K0,  NO_KEYS, Local, NO_TIPS,  "server", "5.0.0",  "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static CONFIG_SUBS: &[CommandSpec] = &[
    //  name         id               arity flags keys key use  route                     tips      group     since    summary
    row("get",       ConfigGet,         -3, ANLS, K0,  NO_KEYS, AllShards(Merge::Config), NO_TIPS,  "server", "2.0.0", "Returns the effective values of configuration parameters."),
    row("set",       ConfigSet,         -4, ANLS, K0,  NO_KEYS, AllShards(Merge::AllOk),  NODES_OK, "server", "2.0.0", "Sets configuration parameters in-flight."),
    row("resetstat", ConfigResetstat,    2, ANLS, K0,  NO_KEYS, AllShards(Merge::AllOk),  NO_TIPS,  "server", "2.0.0", "Resets the server's statistics."),
    row("rewrite",   ConfigRewrite,      2, ANLS, K0,  NO_KEYS, AllShards(Merge::AllOk),  NODES_OK, "server", "2.8.0", "Persists the effective configuration to file."),
    row("help",      ConfigHelp,         2, LS,   K0,  NO_KEYS, Local,                    NO_TIPS,  "server", "5.0.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static MEMORY_SUBS: &[CommandSpec] = &[
    //  name     id           arity flags keys key use  route      tips     group     since    summary
    row("usage", MemoryUsage,   -3, R,    K2,  RO,      SingleKey, NO_TIPS, "server", "4.0.0", "Estimates the memory usage of a key."),
    row("stats",        MemoryStats,        2, NONE, K0, NO_KEYS, AnyShard,                ALL_SPECIAL_ND, "server", "4.0.0", "Returns details about memory usage."),
    row("doctor",       MemoryDoctor,       2, NONE, K0, NO_KEYS, AnyShard,                ALL_SPECIAL_ND, "server", "4.0.0", "Outputs a memory problems report."),
    row("malloc-stats", MemoryMallocStats,  2, NONE, K0, NO_KEYS, AnyShard,                ALL_SPECIAL_ND, "server", "4.0.0", "Returns the allocator statistics."),
    row("purge",        MemoryPurge,        2, NONE, K0, NO_KEYS, AllShards(Merge::AllOk), ALL_OK,         "server", "4.0.0", "Asks the allocator to release memory."),
    row("help",  MemoryHelp,     2, LS,   K0,  NO_KEYS, Local,     NO_TIPS, "server", "4.0.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static DEBUG_SUBS: &[CommandSpec] = &[
    //  name      id           arity flags keys key use  route      tips     group     since    summary
    row("object", DebugObject,    3, ANLS, K2,  RO,      SingleKey, NO_TIPS, "server", "1.0.0", "Returns low-level information about a key."),
    row("sleep",             DebugSleep,           3, ANLS, K0, NO_KEYS, AllShards(Merge::AllOk), NO_TIPS, "server", "1.0.0", "Stops the server for the given number of seconds."),
    row("set-active-expire", DebugSetActiveExpire, 3, ANLS, K0, NO_KEYS, AllShards(Merge::AllOk), NO_TIPS, "server", "1.0.0", "Turns the background expiry of keys off (0) or on (1)."),
    row("help",   DebugHelp,      2, LS,   K0,  NO_KEYS, Local,     NO_TIPS, "server", "1.0.0", "Returns helpful text about the different subcommands."),
];

/// LATENCY LATEST / HISTORY: `nondeterministic_output`, all nodes, special merge.
const NODES_SPECIAL_ND: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_nodes",
    "response_policy:special",
];
const NODES_SUM: &[&str] = &["request_policy:all_nodes", "response_policy:agg_sum"];

#[rustfmt::skip]
static LATENCY_SUBS: &[CommandSpec] = &[
    //  name       id              arity flags keys key use  route                      tips              group     since     summary
    row("latest",  LatencyLatest,     2, ANLS, K0,  NO_KEYS, AllShards(Merge::Concat),  NODES_SPECIAL_ND, "server", "2.8.13", "Returns the latest latency samples for all events."),
    row("history", LatencyHistory,    3, ANLS, K0,  NO_KEYS, AllShards(Merge::Concat),  NODES_SPECIAL_ND, "server", "2.8.13", "Returns timestamp-latency samples for an event."),
    row("reset",   LatencyReset,     -2, ANLS, K0,  NO_KEYS, AllShards(Merge::Sum),     NODES_SUM,        "server", "2.8.13", "Resets the latency data for one or more events."),
    row("doctor",  LatencyDoctor,     2, ANLS, K0,  NO_KEYS, AnyShard,                  NODES_SPECIAL_ND, "server", "2.8.13", "Returns a human-readable latency analysis report."),
    row("help",    LatencyHelp,       2, LS,   K0,  NO_KEYS, Local,                     NO_TIPS,          "server", "2.8.13", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static SLOWLOG_SUBS: &[CommandSpec] = &[
    //  name     id            arity flags keys key use  route                      tips          group     since     summary
    row("get",   SlowlogGet,     -2, ANLS, K0,  NO_KEYS, AllShards(Merge::Slowlog), NODES_ND,     "server", "2.2.12", "Returns the slow log's entries."),
    row("len",   SlowlogLen,      2, ANLS, K0,  NO_KEYS, AllShards(Merge::Sum),     NODES_SUM_ND, "server", "2.2.12", "Returns the number of entries in the slow log."),
    row("reset", SlowlogReset,    2, ANLS, K0,  NO_KEYS, AllShards(Merge::AllOk),   NODES_OK,     "server", "2.2.12", "Clears all entries from the slow log."),
    row("help",  SlowlogHelp,     2, LS,   K0,  NO_KEYS, Local,                     NO_TIPS,      "server", "6.2.0",  "Show helpful text about the different subcommands"),
];

#[rustfmt::skip]
static OBJECT_SUBS: &[CommandSpec] = &[
    //  name        id              arity flags keys key use  route      tips     group      since    summary
    row("encoding", ObjectEncoding,    3, R,    K2,  RO,      SingleKey, ND_OUT,  "generic", "2.2.3", "Returns the internal encoding of a Redis object."),
    row("freq",     ObjectFreq,        3, R,    K2,  RO,      SingleKey, ND_OUT,  "generic", "4.0.0", "Returns the logarithmic access frequency counter of a Redis object."),
    row("idletime", ObjectIdletime,    3, R,    K2,  RO,      SingleKey, ND_OUT,  "generic", "2.2.3", "Returns the time since the last access to a Redis object."),
    row("refcount", ObjectRefcount,    3, R,    K2,  RO,      SingleKey, ND_OUT,  "generic", "2.2.3", "Returns the reference count of a value of a key."),
    row("help",     ObjectHelp,        2, LS,   K0,  NO_KEYS, Local,     NO_TIPS, "generic", "6.2.0", "Returns helpful text about the different subcommands."),
];

#[rustfmt::skip]
static CLUSTER_SUBS: &[CommandSpec] = &[
    //  name               id                      arity flags keys key use  route  tips     group      since    summary
    row("keyslot",         ClusterKeyslot,            3, LS,   K0,  NO_KEYS, Local, NO_TIPS, "cluster", "3.0.0", "Returns the hash slot for a key."),
    row("countkeysinslot", ClusterCountkeysinslot,    3, S,    K0,  NO_KEYS, Local, NO_TIPS, "cluster", "3.0.0", "Returns the number of keys in a hash slot."),
    row("getkeysinslot",   ClusterGetkeysinslot,      4, S,    K0,  NO_KEYS, Local, ND_OUT,  "cluster", "3.0.0", "Returns the key names in a hash slot."),
    row("slots",           ClusterSlots,              2, LS,   K0,  NO_KEYS, Local, ND_OUT,  "cluster", "3.0.0", "Returns the mapping of cluster slots to nodes."),
    row("shards",          ClusterShards,             2, LS,   K0,  NO_KEYS, Local, ND_OUT,  "cluster", "7.0.0", "Returns the mapping of cluster slots to shards."),
    row("nodes",           ClusterNodes,              2, LS,   K0,  NO_KEYS, Local, ND_OUT,  "cluster", "3.0.0", "Returns the cluster configuration for a node."),
    row("info",            ClusterInfo,               2, LS,   K0,  NO_KEYS, Local, ND_OUT,  "cluster", "3.0.0", "Returns information about the state of a node."),
    row("myid",            ClusterMyid,               2, LS,   K0,  NO_KEYS, Local, NO_TIPS, "cluster", "3.0.0", "Returns the ID of a node."),
    row("migrate",         ClusterMigrate,            5, ANLS, K0,  NO_KEYS, Local, NO_TIPS, "cluster", "1.0.0", "Moves a range of hash slots this node owns, with their keys, to another node."),
    row("help",            ClusterHelp,               2, LS,   K0,  NO_KEYS, Local, NO_TIPS, "cluster", "5.0.0", "Returns helpful text about the different subcommands."),
];

/// SUBSCRIBE and the other (un)subscribes: `pubsub noscript loading stale`.
const PNLS: Flags = Flags::PUBSUB.union(NLS);
/// PUBLISH, SPUBLISH: `pubsub loading stale fast`.
const PLSF: Flags = Flags::PUBSUB.union(LSF);
/// The PUBSUB introspection subcommands: `pubsub loading stale`.
const PLS: Flags = Flags::PUBSUB.union(LS);

#[rustfmt::skip]
static PUBSUB_SUBS: &[CommandSpec] = &[
    //  name             id                   arity flags keys key use  route   tips     group     since    summary
    row("channels",      PubsubChannels,        -2, PLS,  K0,  NO_KEYS, Route::PubSub,  NO_TIPS, "pubsub", "2.8.0", "List active channels"),
    row("numpat",        PubsubNumpat,           2, PLS,  K0,  NO_KEYS, Route::PubSub,  NO_TIPS, "pubsub", "2.8.0", "Get the count of unique patterns pattern subscriptions"),
    row("numsub",        PubsubNumsub,          -2, PLS,  K0,  NO_KEYS, Route::PubSub,  NO_TIPS, "pubsub", "2.8.0", "Get the count of subscribers for channels"),
    row("shardchannels", PubsubShardchannels,   -2, PLS,  K0,  NO_KEYS, Route::PubSub,  NO_TIPS, "pubsub", "7.0.0", "List active shard channels"),
    row("shardnumsub",   PubsubShardnumsub,     -2, PLS,  K0,  NO_KEYS, Route::PubSub,  NO_TIPS, "pubsub", "7.0.0", "Get the count of subscribers for shard channels"),
    row("help",          PubsubHelp,             2, LS,   K0,  NO_KEYS, Route::PubSub,  NO_TIPS, "pubsub", "6.2.0", "Show helpful text about the different subcommands"),
];

#[rustfmt::skip]
static SCRIPT_SUBS: &[CommandSpec] = &[
    //  name      id            arity flags keys key use  route                     tips      group        since    summary
    row("load",   ScriptLoad,       3, NS,  K0,  NO_KEYS, AllShards(Merge::Same),   NODES_OK, "scripting", "2.6.0", "Load the specified Lua script into the script cache."),
    row("exists", ScriptExists,    -3, N,   K0,  NO_KEYS, AllShards(Merge::AllAnd), ALL_AND,  "scripting", "2.6.0", "Check existence of scripts in the script cache."),
    row("flush",  ScriptFlush,     -2, N,   K0,  NO_KEYS, AllShards(Merge::AllOk),  NODES_OK, "scripting", "2.6.0", "Remove all the scripts from the script cache."),
    row("help",   ScriptHelp,       2, LS,  K0,  NO_KEYS, AnyShard,                 NO_TIPS,  "scripting", "5.0.0", "Show helpful text about the different subcommands"),
    row("kill",   ScriptKill,       2, NB,  K0,  NO_KEYS, AllShards(Merge::AnyOk),  ALL_ONE_OK, "scripting", "2.6.0", "Kill the script currently in execution."),
];

/// FUNCTION's subcommands: changes go to every shard, reads to one (functions are per node).
#[rustfmt::skip]
static FUNCTION_SUBS: &[CommandSpec] = &[
    //  name       id               arity flags keys key use  route                     tips        group        since    summary
    row("load",    FunctionLoad,      -3, WDN, K0, NO_KEYS, AllShards(Merge::Same),   ALL_OK,     "scripting", "7.0.0", "Create a function with the given arguments (name, code, description)"),
    row("delete",  FunctionDelete,     3, WN,  K0, NO_KEYS, AllShards(Merge::AllOk),  ALL_OK,     "scripting", "7.0.0", "Delete a function by name"),
    row("flush",   FunctionFlush,     -2, WN,  K0, NO_KEYS, AllShards(Merge::AllOk),  ALL_OK,     "scripting", "7.0.0", "Deleting all functions"),
    row("restore", FunctionRestore,   -3, WDN, K0, NO_KEYS, AllShards(Merge::AllOk),  ALL_OK,     "scripting", "7.0.0", "Restore all the functions on the given payload"),
    row("dump",    FunctionDump,       2, N,   K0, NO_KEYS, AnyShard,                 NO_TIPS,    "scripting", "7.0.0", "Dump all functions into a serialized binary payload"),
    row("list",    FunctionList,      -2, N,   K0, NO_KEYS, AnyShard,                 ND_ORDER,   "scripting", "7.0.0", "List information about all the functions"),
    row("stats",   FunctionStats,      2, NB,  K0, NO_KEYS, AnyShard,                 STATS_TIPS, "scripting", "7.0.0", "Return information about the function currently running (name, description, duration)"),
    row("kill",    FunctionKill,       2, NB,  K0, NO_KEYS, AllShards(Merge::AnyOk),  ALL_ONE_OK, "scripting", "7.0.0", "Kill the function currently in execution."),
    row("help",    FunctionHelp,       2, LS,  K0, NO_KEYS, AnyShard,                 NO_TIPS,    "scripting", "7.0.0", "Show helpful text about the different subcommands"),
];

/// What AutoCache serves: the shard executes every row; the proxy routes it by its route.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    //  name            id            arity flags  keys key use        route                     tips            group         since     summary
    row("ping",         Ping,           -1, SF,    K0,  NO_KEYS,       Local,                    ALL_OK,         "connection", "1.0.0",  "Returns the server's liveliness response."),
    row("echo",         Echo,            2, F,     K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "1.0.0",  "Returns the given string."),
    row("hello",        Hello,          -1, CONN,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "6.0.0",  "Handshakes with the Redis server."),
    row("auth",         Auth,           -2, CONN,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "1.0.0",  "Authenticates the connection."),
    row("select",       Select,          2, LSF,   K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "1.0.0",  "Changes the selected database."),
    row("quit",         Quit,           -1, CONN,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "1.0.0",  "Closes the connection."),
    row("reset",        Reset,           1, CONN,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "6.2.0",  "Resets the connection."),
    row("multi",        Multi,        1, NLSFB, K0,  NO_KEYS,         Route::Transaction,      NO_TIPS, "transactions", "1.2.0", "Mark the start of a transaction block."),
    row("exec",         Exec,         1, NLSK,  K0,  NO_KEYS,         Route::Transaction,      NO_TIPS, "transactions", "1.2.0", "Execute all commands issued after MULTI."),
    row("discard",      Discard,      1, NLSFB, K0,  NO_KEYS,         Route::Transaction,      NO_TIPS, "transactions", "2.0.0", "Discard all commands issued after MULTI."),
    row("watch",        Watch,       -2, NLSFB, KN,  RO,              Route::Transaction,      NO_TIPS, "transactions", "2.2.0", "Watch the given keys to determine execution of the MULTI/EXEC block."),
    row("unwatch",      Unwatch,      1, NLSFB, K0,  NO_KEYS,         Route::Transaction,      NO_TIPS, "transactions", "2.2.0", "Forget about all watched keys."),
    row("client",       Client,         -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "connection", "2.4.0",  "A container for client connection commands.").with_subcommands(CLIENT_SUBS),
    row("command",      Command,        -1, LS,    K0,  NO_KEYS,       Local,                    ND_ORDER,       "server",     "2.8.13", "Returns detailed information about all commands.").with_subcommands(COMMAND_SUBS),
    row("info",         Info,           -1, LS,    K0,  NO_KEYS,       AllShards(Merge::Info),   ALL_SPECIAL_ND, "server",     "1.0.0",  "Returns information and statistics about the server."),
    row("dbsize",       Dbsize,          1, RF,    K0,  NO_KEYS,       AllShards(Merge::Sum),    ALL_SUM,        "server",     "1.0.0",  "Returns the number of keys in the database."),
    row("flushdb",      Flushdb,        -1, W,     K0,  NO_KEYS,       AllShards(Merge::AllOk),  ALL_OK,         "server",     "1.0.0",  "Removes all keys from the current database."),
    row("flushall",     Flushall,       -1, W,     K0,  NO_KEYS,       AllShards(Merge::AllOk),  ALL_OK,         "server",     "1.0.0",  "Removes all keys from all databases."),
    row("config",       Config,         -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "2.0.0",  "A container for server configuration commands.").with_subcommands(CONFIG_SUBS),
    row("time",         Time,            1, LSF,   K0,  NO_KEYS,       Local,                    ND_OUT,         "server",     "2.6.0",  "Returns the server time."),
    row("memory",       Memory,         -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "4.0.0",  "A container for memory diagnostics commands.").with_subcommands(MEMORY_SUBS),
    row("debug",        Debug,          -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "1.0.0",  "A container for debugging commands.").with_subcommands(DEBUG_SUBS),
    row("latency",      Latency,        -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "2.8.13", "A container for latency diagnostics commands.").with_subcommands(LATENCY_SUBS),
    row("monitor",      CommandId::Monitor, 1, ANLS,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "1.0.0",  "Listen for all requests received by the server in real time."),
    row("slowlog",      Slowlog,        -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "2.2.12", "A container for slow log commands.").with_subcommands(SLOWLOG_SUBS),
    row("shutdown",     Shutdown,       -1, ANLSB, K0,  NO_KEYS,       Local,                    NO_TIPS,        "server",     "1.0.0",  "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    row("get",          Get,             2, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Returns the string value of a key."),
    row("set",          Set,            -3, WD,    K1,  SET_KEYS,      SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    row("setnx",        Setnx,           3, WDF,   K1,  OW_I,          SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Set the string value of a key only when the key doesn't exist."),
    row("setex",        Setex,           4, WD,    K1,  OW_U,          SingleKey,                NO_TIPS,        "string",     "2.0.0",  "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    row("psetex",       Psetex,          4, WD,    K1,  OW_U,          SingleKey,                NO_TIPS,        "string",     "2.6.0",  "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    row("getset",       Getset,          3, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Returns the previous string value of a key after setting it to a new value."),
    row("getdel",       Getdel,          2, WF,    K1,  RW_AD,         SingleKey,                NO_TIPS,        "string",     "6.2.0",  "Returns the string value of a key after deleting the key."),
    row("getex",        Getex,          -2, WF,    K1,  GETEX_KEYS,    SingleKey,                NO_TIPS,        "string",     "6.2.0",  "Returns the string value of a key after setting its expiration time."),
    row("mget",         Mget,           -2, RF,    KN,  RO_A,          FanOut(Merge::KeyOrder),  MULTI,          "string",     "1.0.0",  "Atomically returns the string values of one or more keys."),
    row("mset",         Mset,           -3, WD,    KV,  OW_U,          FanOut(Merge::AllOk),     MULTI_OK,       "string",     "1.0.1",  "Atomically creates or modifies the string values of one or more keys."),
    row("msetnx",       Msetnx,         -3, WD,    KV,  OW_I,          SameSlot,                 MULTI_MIN,      "string",     "1.0.1",  "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    row("incr",         Incr,            2, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    row("decr",         Decr,            2, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    row("incrby",       Incrby,          3, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    row("decrby",       Decrby,          3, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    row("incrbyfloat",  Incrbyfloat,     3, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "string",     "2.6.0",  "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    row("append",       Append,          3, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "string",     "2.0.0",  "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    row("strlen",       Strlen,          2, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "string",     "2.2.0",  "Returns the length of a string value."),
    row("getrange",     Getrange,        4, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "string",     "2.4.0",  "Returns a substring of the string stored at a key."),
    row("setrange",     Setrange,        4, WD,    K1,  RW_U,          SingleKey,                NO_TIPS,        "string",     "2.2.0",  "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    row("substr",       Substr,          4, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "string",     "1.0.0",  "Returns a substring from a string value."),
    row("lcs",          Lcs,            -3, R,     K12, LCS_KEYS,      SameSlot,                 NO_TIPS,        "string",     "7.0.0",  "Finds the longest common substring."),
    row("setbit",       Setbit,          4, WD,    K1,  RW_AU,         SingleKey,                NO_TIPS,        "bitmap",     "2.2.0",  "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    row("getbit",       Getbit,          3, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "bitmap",     "2.2.0",  "Returns a bit value by offset."),
    row("bitcount",     Bitcount,       -2, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "bitmap",     "2.6.0",  "Counts the number of set bits (population counting) in a string."),
    row("bitpos",       Bitpos,         -3, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "bitmap",     "2.8.7",  "Finds the first set (1) or clear (0) bit in a string."),
    row("bitop",        Bitop,          -4, WD,    KN2, BITOP_KEYS,    SameSlot,                 NO_TIPS,        "bitmap",     "2.6.0",  "Performs bitwise operations on multiple strings, and stores the result."),
    row("bitfield",     Bitfield,       -2, WD,    K1,  BITFIELD_KEYS, SingleKey,                NO_TIPS,        "bitmap",     "3.2.0",  "Performs arbitrary bitfield integer operations on strings."),
    row("bitfield_ro",  BitfieldRo,     -2, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "bitmap",     "6.0.0",  "Performs arbitrary read-only bitfield integer operations on strings."),
    row("pfadd",        Pfadd,          -2, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "hyperloglog", "2.8.9", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."),
    row("pfcount",      Pfcount,        -2, R,     KN,  PFCOUNT_KEYS,  SameSlot,                 NO_TIPS,        "hyperloglog", "2.8.9", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    row("pfmerge",      Pfmerge,        -2, WD,    KN,  PFMERGE_KEYS,  SameSlot,                 NO_TIPS,        "hyperloglog", "2.8.9", "Merges one or more HyperLogLog values into a single key."),
    row("del",          Del,            -2, W,     KN,  RM_D,          FanOut(Merge::Sum),       MULTI_SUM,      "generic",    "1.0.0",  "Deletes one or more keys."),
    row("unlink",       Unlink,         -2, WF,    KN,  RM_D,          FanOut(Merge::Sum),       MULTI_SUM,      "generic",    "4.0.0",  "Asynchronously deletes one or more keys."),
    row("exists",       Exists,         -2, RF,    KN,  RO,            FanOut(Merge::Sum),       MULTI_SUM,      "generic",    "1.0.0",  "Determines whether one or more keys exist."),
    row("touch",        Touch,          -2, RF,    KN,  RO,            FanOut(Merge::Sum),       MULTI_SUM,      "generic",    "3.2.1",  "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    row("expire",       Expire,         -3, WF,    K1,  RW_U,          SingleKey,                NO_TIPS,        "generic",    "1.0.0",  "Sets the expiration time of a key in seconds."),
    row("pexpire",      Pexpire,        -3, WF,    K1,  RW_U,          SingleKey,                NO_TIPS,        "generic",    "2.6.0",  "Sets the expiration time of a key in milliseconds."),
    row("expireat",     Expireat,       -3, WF,    K1,  RW_U,          SingleKey,                NO_TIPS,        "generic",    "1.2.0",  "Sets the expiration time of a key to a Unix timestamp."),
    row("pexpireat",    Pexpireat,      -3, WF,    K1,  RW_U,          SingleKey,                NO_TIPS,        "generic",    "2.6.0",  "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    row("ttl",          Ttl,             2, RF,    K1,  RO_A,          SingleKey,                ND_OUT,         "generic",    "1.0.0",  "Returns the expiration time in seconds of a key."),
    row("pttl",         Pttl,            2, RF,    K1,  RO_A,          SingleKey,                ND_OUT,         "generic",    "2.6.0",  "Returns the expiration time in milliseconds of a key."),
    row("expiretime",   Expiretime,      2, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "generic",    "7.0.0",  "Returns the expiration time of a key as a Unix timestamp."),
    row("pexpiretime",  Pexpiretime,     2, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "generic",    "7.0.0",  "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    row("persist",      Persist,         2, WF,    K1,  RW_U,          SingleKey,                NO_TIPS,        "generic",    "2.2.0",  "Removes the expiration time of a key."),
    row("type",         Type,            2, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "generic",    "1.0.0",  "Determines the type of value stored at a key."),
    row("copy",         Copy,           -3, WD,    K12, COPY_KEYS,     SameSlot,                 NO_TIPS,        "generic",    "6.2.0",  "Copies the value of a key to a new key."),
    row("rename",       Rename,          3, W,     K12, RENAME_KEYS,   SameSlot,                 NO_TIPS,        "generic",    "1.0.0",  "Renames a key and overwrites the destination."),
    row("renamenx",     Renamenx,        3, WF,    K12, RENAMENX_KEYS, SameSlot,                 NO_TIPS,        "generic",    "1.0.0",  "Renames a key only when the target key name doesn't exist."),
    row("keys",         Keys,            2, R,     K0,  NO_KEYS,       AllShards(Merge::Concat), ALL_ND_ORDER,   "generic",    "1.0.0",  "Returns all key names that match a pattern."),
    row("scan",         Scan,           -2, R,     K0,  NO_KEYS,       AllShards(Merge::Cursor), SPECIAL_ND,     "generic",    "2.8.0",  "Iterates over the key names in the database."),
    row("randomkey",    Randomkey,       1, R,     K0,  NO_KEYS,       AllShards(Merge::Random), ALL_ND,         "generic",    "1.0.0",  "Returns a random key name from the database."),
    row("object",       Object,         -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "generic",    "2.2.3",  "A container for object introspection commands.").with_subcommands(OBJECT_SUBS),
    row("cluster",      Cluster,        -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "cluster",    "3.0.0",  "A container for Redis Cluster commands.").with_subcommands(CLUSTER_SUBS),
    row("asking",       Asking,          1, F,     K0,  NO_KEYS,       Local,                    NO_TIPS,        "cluster",    "3.0.0",  "Signals that a cluster client is following an -ASK redirect."),
    row("readonly",     Readonly,        1, LSF,   K0,  NO_KEYS,       Local,                    NO_TIPS,        "cluster",    "3.0.0",  "Enables read-only queries for a connection to a Redis Cluster replica node."),
    row("readwrite",    Readwrite,       1, LSF,   K0,  NO_KEYS,       Local,                    NO_TIPS,        "cluster",    "3.0.0",  "Enables read-write queries for a connection to a Redis Cluster replica node."),
    row("hset",         Hset,           -4, WDF,   K1,  RW_U,          SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Creates or modifies the value of a field in a hash."),
    row("hsetnx",       Hsetnx,          4, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Sets the value of a field in a hash only when the field doesn't exist."),
    row("hget",         Hget,            3, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Returns the value of a field in a hash."),
    row("hmget",        Hmget,          -3, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Returns the values of all fields in a hash."),
    row("hmset",        Hmset,          -4, WDF,   K1,  RW_U,          SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Sets the values of multiple fields."),
    row("hdel",         Hdel,           -3, WF,    K1,  RW_D,          SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    row("hexists",      Hexists,         3, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Determines whether a field exists in a hash."),
    row("hlen",         Hlen,            2, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Returns the number of fields in a hash."),
    row("hkeys",        Hkeys,           2, R,     K1,  RO_A,          SingleKey,                ND_ORDER,       "hash",       "2.0.0",  "Returns all fields in a hash."),
    row("hvals",        Hvals,           2, R,     K1,  RO_A,          SingleKey,                ND_ORDER,       "hash",       "2.0.0",  "Returns all values in a hash."),
    row("hgetall",      Hgetall,         2, R,     K1,  RO_A,          SingleKey,                ND_ORDER,       "hash",       "2.0.0",  "Returns all fields and values in a hash."),
    row("hincrby",      Hincrby,         4, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "hash",       "2.0.0",  "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    row("hincrbyfloat", Hincrbyfloat,    4, WDF,   K1,  RW_AU,         SingleKey,                NO_TIPS,        "hash",       "2.6.0",  "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    row("hstrlen",      Hstrlen,         3, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "hash",       "3.2.0",  "Returns the length of the value of a field."),
    row("hscan",        Hscan,          -3, R,     K1,  RO_A,          SingleKey,                ND_OUT,         "hash",       "2.8.0",  "Iterates over fields and values of a hash."),
    row("hrandfield",   Hrandfield,     -2, R,     K1,  RO_A,          SingleKey,                ND_OUT,         "hash",       "6.2.0",  "Returns one or more random fields from a hash."),
    row("lpush",        Lpush,          -3, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    row("rpush",        Rpush,          -3, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    row("lpushx",       Lpushx,         -3, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "list",       "2.2.0",  "Prepends one or more elements to a list only when the list exists."),
    row("rpushx",       Rpushx,         -3, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "list",       "2.2.0",  "Appends an element to a list only when the list exists."),
    row("lpop",         Lpop,           -2, WF,    K1,  RW_AD,         SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    row("rpop",         Rpop,           -2, WF,    K1,  RW_AD,         SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    row("llen",         Llen,            2, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Returns the length of a list."),
    row("lrange",       Lrange,          4, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Returns a range of elements from a list."),
    row("lindex",       Lindex,          3, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Returns an element from a list by its index."),
    row("lset",         Lset,            4, WD,    K1,  RW_U,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Sets the value of an element in a list by its index."),
    row("lrem",         Lrem,            4, W,     K1,  RW_D,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Removes elements from a list. Deletes the list if the last element was removed."),
    row("ltrim",        Ltrim,           4, W,     K1,  RW_D,          SingleKey,                NO_TIPS,        "list",       "1.0.0",  "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    row("linsert",      Linsert,         5, WD,    K1,  RW_I,          SingleKey,                NO_TIPS,        "list",       "2.2.0",  "Inserts an element before or after another element in a list."),
    row("lpos",         Lpos,           -3, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "list",       "6.0.6",  "Returns the index of matching elements in a list."),
    row("lmove",        Lmove,           5, WD,    K12, LMOVE_KEYS,    SameSlot,                 NO_TIPS,        "list",       "6.2.0",  "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    row("lmpop",        Lmpop,          -4, W,     K0,  RW_AD,         SameSlot,                 NO_TIPS,        "list",       "7.0.0",  "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.").with_specs(KEYNUM_AT_1),
    row("blpop",        Blpop,          -3, WNB,   KN1, RW_AD,         Route::Blocking,          NO_TIPS,        "list",       "2.0.0",  "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    row("brpop",        Brpop,          -3, WNB,   KN1, RW_AD,         Route::Blocking,          NO_TIPS,        "list",       "2.0.0",  "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    row("brpoplpush",   Brpoplpush,      4, WDNB,  K12, BRPOPLPUSH_KEYS, Route::Blocking,        NO_TIPS,        "list",       "2.2.0",  "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    row("blmove",       Blmove,          6, WDNB,  K12, BLMOVE_KEYS,   Route::Blocking,          NO_TIPS,        "list",       "6.2.0",  "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    row("blmpop",       Blmpop,         -5, WB,    K0,  RW_AD,         Route::Blocking,          NO_TIPS,        "list",       "7.0.0",  "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.").with_specs(KEYNUM_AT_2),
    row("rpoplpush",    Rpoplpush,       3, WD,    K12, LMOVE_KEYS,    SameSlot,                 NO_TIPS,        "list",       "1.2.0",  "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    row("sadd",         Sadd,           -3, WDF,   K1,  RW_I,          SingleKey,                NO_TIPS,        "set",        "1.0.0",  "Adds one or more members to a set. Creates the key if it doesn't exist."),
    row("srem",         Srem,           -3, WF,    K1,  RW_D,          SingleKey,                NO_TIPS,        "set",        "1.0.0",  "Removes one or more members from a set. Deletes the set if the last member was removed."),
    row("smembers",     Smembers,        2, R,     K1,  RO_A,          SingleKey,                ND_ORDER,       "set",        "1.0.0",  "Returns all members of a set."),
    row("sismember",    Sismember,       3, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "set",        "1.0.0",  "Determines whether a member belongs to a set."),
    row("smismember",   Smismember,     -3, RF,    K1,  RO_A,          SingleKey,                NO_TIPS,        "set",        "6.2.0",  "Determines whether multiple members belong to a set."),
    row("scard",        Scard,           2, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "set",        "1.0.0",  "Returns the number of members in a set."),
    row("spop",         Spop,           -2, WF,    K1,  RW_AD,         SingleKey,                ND_OUT,         "set",        "1.0.0",  "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    row("srandmember",  Srandmember,    -2, R,     K1,  RO_A,          SingleKey,                ND_OUT,         "set",        "1.0.0",  "Get one or multiple random members from a set"),
    row("smove",        Smove,           4, WF,    K12, SMOVE_KEYS,    SameSlot,                 NO_TIPS,        "set",        "1.0.0",  "Moves a member from one set to another."),
    row("sinter",       Sinter,         -2, R,     KN,  RO_A,          SameSlot,                 ND_ORDER,       "set",        "1.0.0",  "Returns the intersect of multiple sets."),
    row("sintercard",   Sintercard,     -3, R,     K0,  RO_A,          SameSlot,                 NO_TIPS,        "set",        "7.0.0",  "Returns the number of members of the intersect of multiple sets.").with_specs(KEYNUM_AT_1),
    row("sinterstore",  Sinterstore,    -3, WD,    KN,  SINTERSTORE_KEYS, SameSlot,              NO_TIPS,        "set",        "1.0.0",  "Stores the intersect of multiple sets in a key."),
    row("sunion",       Sunion,         -2, R,     KN,  RO_A,          SameSlot,                 ND_ORDER,       "set",        "1.0.0",  "Returns the union of multiple sets."),
    row("sunionstore",  Sunionstore,    -3, WD,    KN,  SUNIONSTORE_KEYS, SameSlot,              NO_TIPS,        "set",        "1.0.0",  "Stores the union of multiple sets in a key."),
    row("sdiff",        Sdiff,          -2, R,     KN,  RO_A,          SameSlot,                 ND_ORDER,       "set",        "1.0.0",  "Returns the difference of multiple sets."),
    row("sdiffstore",   Sdiffstore,     -3, WD,    KN,  SUNIONSTORE_KEYS, SameSlot,              NO_TIPS,        "set",        "1.0.0",  "Stores the difference of multiple sets in a key."),
    row("sscan",        Sscan,          -3, R,     K1,  RO_A,          SingleKey,                ND_OUT,         "set",        "2.8.0",  "Iterates over members of a set."),
    row("zadd",             Zadd,              -4, WDF,  K1,  RW_U,             SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Add one or more members to a sorted set, or update its score if it already exists"),
    row("zincrby",          Zincrby,            4, WDF,  K1,  RW_AU,            SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Increment the score of a member in a sorted set"),
    row("zrem",             Zrem,              -3, WF,   K1,  RW_D,             SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Remove one or more members from a sorted set"),
    row("zcard",            Zcard,              2, RF,   K1,  RO,               SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Get the number of members in a sorted set"),
    row("zscore",           Zscore,             3, RF,   K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Get the score associated with the given member in a sorted set"),
    row("zmscore",          Zmscore,           -3, RF,   K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "6.2.0", "Get the score associated with the given members in a sorted set"),
    row("zrank",            Zrank,              3, RF,   K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.0.0", "Determine the index of a member in a sorted set"),
    row("zrevrank",         Zrevrank,           3, RF,   K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low"),
    row("zcount",           Zcount,             4, RF,   K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.0.0", "Count the members in a sorted set with scores within the given values"),
    row("zlexcount",        Zlexcount,          4, RF,   K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.8.9", "Count the number of members in a sorted set between a given lexicographical range"),
    row("zrange",           Zrange,            -4, R,    K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Return a range of members in a sorted set"),
    row("zrangestore",      Zrangestore,       -5, WD,   K12, ZRANGESTORE_KEYS, SameSlot,                 NO_TIPS,        "sorted-set", "6.2.0", "Store a range of members from sorted set into another key"),
    row("zrevrange",        Zrevrange,         -4, R,    K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low"),
    row("zrangebyscore",    Zrangebyscore,     -4, R,    K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "1.0.5", "Return a range of members in a sorted set, by score"),
    row("zrevrangebyscore", Zrevrangebyscore,  -4, R,    K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low"),
    row("zrangebylex",      Zrangebylex,       -4, R,    K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range"),
    row("zrevrangebylex",   Zrevrangebylex,    -4, R,    K1,  RO_A,             SingleKey,                NO_TIPS,        "sorted-set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings."),
    row("zremrangebyrank",  Zremrangebyrank,    4, W,    K1,  RW_D,             SingleKey,                NO_TIPS,        "sorted-set", "2.0.0", "Remove all members in a sorted set within the given indexes"),
    row("zremrangebyscore", Zremrangebyscore,   4, W,    K1,  RW_D,             SingleKey,                NO_TIPS,        "sorted-set", "1.2.0", "Remove all members in a sorted set within the given scores"),
    row("zremrangebylex",   Zremrangebylex,     4, W,    K1,  RW_D,             SingleKey,                NO_TIPS,        "sorted-set", "2.8.9", "Remove all members in a sorted set between the given lexicographical range"),
    row("zpopmin",          Zpopmin,           -2, WF,   K1,  RW_AD,            SingleKey,                NO_TIPS,        "sorted-set", "5.0.0", "Remove and return members with the lowest scores in a sorted set"),
    row("zpopmax",          Zpopmax,           -2, WF,   K1,  RW_AD,            SingleKey,                NO_TIPS,        "sorted-set", "5.0.0", "Remove and return members with the highest scores in a sorted set"),
    row("zrandmember",      Zrandmember,       -2, R,    K1,  RO_A,             SingleKey,                ND_OUT,         "sorted-set", "6.2.0", "Get one or multiple random elements from a sorted set"),
    row("zscan",            Zscan,             -3, R,    K1,  RO_A,             SingleKey,                ND_OUT,         "sorted-set", "2.8.0", "Incrementally iterate sorted sets elements and associated scores"),
    row("bzpopmin",         Bzpopmin,          -3, WNBF, KN1, RW_AD,            Route::Blocking,          NO_TIPS,        "sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    row("bzpopmax",         Bzpopmax,          -3, WNBF, KN1, RW_AD,            Route::Blocking,          NO_TIPS,        "sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    row("bzmpop",           Bzmpop,            -5, WB,   K0,  RW_AD,            Route::Blocking,          NO_TIPS,        "sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.").with_specs(KEYNUM_AT_2),
    row("zmpop",            Zmpop,             -4, W,    K0,  RW_AD,            SameSlot,                 NO_TIPS,        "sorted-set", "7.0.0", "Remove and return members with scores in a sorted set").with_specs(KEYNUM_AT_1),
    row("zunion",           Zunion,            -3, R,    K0,  RO_A,             SameSlot,                 NO_TIPS,        "sorted-set", "6.2.0", "Add multiple sorted sets").with_specs(KEYNUM_AT_1_RO),
    row("zinter",           Zinter,            -3, R,    K0,  RO_A,             SameSlot,                 NO_TIPS,        "sorted-set", "6.2.0", "Intersect multiple sorted sets").with_specs(KEYNUM_AT_1_RO),
    row("zdiff",            Zdiff,             -3, R,    K0,  RO_A,             SameSlot,                 NO_TIPS,        "sorted-set", "6.2.0", "Subtract multiple sorted sets").with_specs(KEYNUM_AT_1_RO),
    row("zunionstore",      Zunionstore,       -4, WD,   K1,  ZSTORE_KEYS,      SameSlot,                 NO_TIPS,        "sorted-set", "2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key").with_specs(STORE_KEYNUM_AT_2),
    row("zinterstore",      Zinterstore,       -4, WD,   K1,  ZSTORE_KEYS,      SameSlot,                 NO_TIPS,        "sorted-set", "2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key").with_specs(STORE_KEYNUM_AT_2),
    row("zdiffstore",       Zdiffstore,        -4, WD,   K1,  ZSTORE_KEYS,      SameSlot,                 NO_TIPS,        "sorted-set", "6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key").with_specs(STORE_KEYNUM_AT_2),
    row("zintercard",       Zintercard,        -3, R,    K0,  RO_A,             SameSlot,                 NO_TIPS,        "sorted-set", "7.0.0", "Intersect multiple sorted sets and return the cardinality of the result").with_specs(KEYNUM_AT_1_RO),
    row("xadd",         Xadd,           -5, WDF,   K1,  XADD_KEYS,     SingleKey,                ND_OUT,         "stream",     "5.0.0",  "Appends a new entry to a stream"),
    row("xrange",       Xrange,         -4, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "stream",     "5.0.0",  "Return a range of elements in a stream, with IDs matching the specified IDs interval"),
    row("xrevrange",    Xrevrange,      -4, R,     K1,  RO_A,          SingleKey,                NO_TIPS,        "stream",     "5.0.0",  "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE"),
    row("xlen",         Xlen,            2, RF,    K1,  RO,            SingleKey,                NO_TIPS,        "stream",     "5.0.0",  "Return the number of entries in a stream"),
    row("xdel",         Xdel,           -3, WF,    K1,  RW_D,          SingleKey,                NO_TIPS,        "stream",     "5.0.0",  "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist."),
    row("xtrim",        Xtrim,          -4, W,     K1,  RW_D,          SingleKey,                ND_OUT,         "stream",     "5.0.0",  "Trims the stream to (approximately if '~' is passed) a certain size"),
    row("xsetid",       Xsetid,         -3, WDF,   K1,  RW_U,          SingleKey,                NO_TIPS,        "stream",     "5.0.0",  "An internal command for replicating stream values"),
    row("xread",        Xread,          -4, RB,    K0,  RO_A,          Route::Blocking,          NO_TIPS,        "stream",     "5.0.0",  "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block.").with_specs(XREAD_SPECS),
    row("xreadgroup",   Xreadgroup,     -7, WB,    K0,  RO_A,          Route::Blocking,          NO_TIPS,        "stream",     "5.0.0",  "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.").with_specs(XREADGROUP_SPECS),
    row("xack",         Xack,           -4, WF,    K1,  RW_U,          SingleKey,                NO_TIPS,        "stream",     "5.0.0",  "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
    row("xpending",     Xpending,       -3, R,     K1,  RO_A,          SingleKey,                ND_OUT,         "stream",     "5.0.0",  "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged."),
    row("xclaim",       Xclaim,         -6, WF,    K1,  RW_U,          SingleKey,                ND_OUT,         "stream",     "5.0.0",  "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
    row("xautoclaim",   Xautoclaim,     -6, WF,    K1,  RW_D,          SingleKey,                ND_OUT,         "stream",     "6.2.0",  "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer."),
    row("xgroup",       Xgroup,         -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "stream",     "5.0.0",  "A container for consumer groups commands").with_subcommands(XGROUP_SUBS),
    row("xinfo",        Xinfo,          -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "stream",     "5.0.0",  "A container for stream introspection commands").with_subcommands(XINFO_SUBS),
    row("geoadd",               Geoadd,              -5, WD, K1,  RW_U,                SingleKey, NO_TIPS, "geo",     "3.2.0",  "Add one or more geospatial items in the geospatial index represented using a sorted set"),
    row("geodist",              Geodist,             -4, R,  K1,  RO_A,                SingleKey, NO_TIPS, "geo",     "3.2.0",  "Returns the distance between two members of a geospatial index"),
    row("geohash",              Geohash,             -2, R,  K1,  RO_A,                SingleKey, NO_TIPS, "geo",     "3.2.0",  "Returns members of a geospatial index as standard geohash strings"),
    row("geopos",               Geopos,              -2, R,  K1,  RO_A,                SingleKey, NO_TIPS, "geo",     "3.2.0",  "Returns longitude and latitude of members of a geospatial index"),
    row("georadius",            Georadius,           -6, WD, K1,  GEORADIUS_KEYS,      SameSlot,  NO_TIPS, "geo",     "3.2.0",  "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point").with_specs(GEORADIUS_SPECS),
    row("georadius_ro",         GeoradiusRo,         -6, R,  K1,  RO_A,                SingleKey, NO_TIPS, "geo",     "3.2.10", "A read-only variant for GEORADIUS"),
    row("georadiusbymember",    Georadiusbymember,   -5, WD, K1,  GEORADIUS_KEYS,      SameSlot,  NO_TIPS, "geo",     "3.2.0",  "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member").with_specs(GEORADIUSBYMEMBER_SPECS),
    row("georadiusbymember_ro", GeoradiusbymemberRo, -5, R,  K1,  RO_A,                SingleKey, NO_TIPS, "geo",     "3.2.10", "A read-only variant for GEORADIUSBYMEMBER"),
    row("geosearch",            Geosearch,           -7, R,  K1,  RO_A,                SingleKey, NO_TIPS, "geo",     "6.2.0",  "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle."),
    row("geosearchstore",       Geosearchstore,      -8, WD, K12, GEOSEARCHSTORE_KEYS, SameSlot,  NO_TIPS, "geo",     "6.2.0",  "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key."),
    row("sort",                 Sort,                -2, WD, K1,  SORT_KEYS,           SameSlot,  NO_TIPS, "generic", "1.0.0",  "Sort the elements in a list, set or sorted set").with_specs(SORT_SPECS),
    row("sort_ro",              SortRo,              -2, R,  K1,  SORT_RO_KEYS,        SingleKey, NO_TIPS, "generic", "7.0.0",  "Sort the elements in a list, set or sorted set. Read-only variant of SORT.").with_specs(SORT_RO_SPECS),
    row("subscribe",    Subscribe,      -2, PNLS,  K0,  NO_KEYS,       Route::PubSub,             NO_TIPS,        "pubsub",     "2.0.0",  "Listen for messages published to the given channels"),
    row("psubscribe",   Psubscribe,     -2, PNLS,  K0,  NO_KEYS,       Route::PubSub,             NO_TIPS,        "pubsub",     "2.0.0",  "Listen for messages published to channels matching the given patterns"),
    row("ssubscribe",   Ssubscribe,     -2, PNLS,  KN,  NOT_KEY,       Route::PubSub,             NO_TIPS,        "pubsub",     "7.0.0",  "Listen for messages published to the given shard channels"),
    row("unsubscribe",  Unsubscribe,    -1, PNLS,  K0,  NO_KEYS,       Route::PubSub,             NO_TIPS,        "pubsub",     "2.0.0",  "Stop listening for messages posted to the given channels"),
    row("punsubscribe", Punsubscribe,   -1, PNLS,  K0,  NO_KEYS,       Route::PubSub,             NO_TIPS,        "pubsub",     "2.0.0",  "Stop listening for messages posted to channels matching the given patterns"),
    row("sunsubscribe", Sunsubscribe,   -1, PNLS,  KN,  NOT_KEY,       Route::PubSub,             NO_TIPS,        "pubsub",     "7.0.0",  "Stop listening for messages posted to the given shard channels"),
    row("publish",      Publish,         3, PLSF,  K0,  NO_KEYS,       Route::PubSub,             NO_TIPS,        "pubsub",     "2.0.0",  "Post a message to a channel"),
    row("spublish",     Spublish,        3, PLSF,  K1,  NOT_KEY,       SingleKey,                NO_TIPS,        "pubsub",     "7.0.0",  "Post a message to a shard channel"),
    row("pubsub",       Pubsub,         -2, NONE,  K0,  NO_KEYS,       Route::PubSub,             NO_TIPS,        "pubsub",     "2.8.0",  "A container for Pub/Sub commands").with_subcommands(PUBSUB_SUBS),
    // scripting
    row("eval",         Eval,           -3, SCRIPT,    K0, EVAL_KEYS,  SameSlot,                 NO_TIPS,        "scripting",  "2.6.0",  "Execute a Lua script server side").with_specs(EVAL_SPECS),
    row("evalsha",      Evalsha,        -3, SCRIPT,    K0, RW_AU,      SameSlot,                 NO_TIPS,        "scripting",  "2.6.0",  "Execute a Lua script server side").with_specs(EVAL_SPECS),
    row("eval_ro",      EvalRo,         -3, SCRIPT_RO, K0, EVAL_RO_KEYS, SameSlot,               NO_TIPS,        "scripting",  "7.0.0",  "Execute a read-only Lua script server side").with_specs(EVAL_RO_SPECS),
    row("evalsha_ro",   EvalshaRo,      -3, SCRIPT_RO, K0, RO_A,       SameSlot,                 NO_TIPS,        "scripting",  "7.0.0",  "Execute a read-only Lua script server side").with_specs(EVAL_RO_SPECS),
    row("fcall",        Fcall,          -3, SCRIPT,    K0, EVAL_KEYS,  SameSlot,                 NO_TIPS,        "scripting",  "7.0.0",  "Invoke a function").with_specs(EVAL_SPECS),
    row("fcall_ro",     FcallRo,        -3, SCRIPT_RO, K0, EVAL_RO_KEYS, SameSlot,               NO_TIPS,        "scripting",  "7.0.0",  "Invoke a read-only function").with_specs(EVAL_RO_SPECS),
    row("function",     Function,       -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "scripting",  "7.0.0",  "A container for function commands").with_subcommands(FUNCTION_SUBS),
    row("script",       Script,         -2, NONE,  K0,  NO_KEYS,       Local,                    NO_TIPS,        "scripting",  "2.6.0",  "A container for Lua scripts management commands").with_subcommands(SCRIPT_SUBS),
];

/// Commands neither server executes; a proxy refuses each with its reason (`-ERR BLPOP is not
/// supported through the proxy: ...`) instead of calling it unknown. Their arity, flags and keys
/// are Redis's, for the day one gets a real route; commands whose keys move have
/// `K0` until then.
#[rustfmt::skip]
pub static REFUSED: &[CommandSpec] = &[
    //  name            id        arity flags  keys key use          route                    tips     group           since    summary
    row("wait",         Unserved,    3, N,     K0,  NO_KEYS,         Refused(ReplicationAck), ALL_MIN, "generic",      "3.0.0", "Wait for the synchronous replication of all the write commands sent in the context of the current connection."),
    row("waitaof",      Unserved,    4, N,     K0,  NO_KEYS,         Refused(ReplicationAck), ALL_MIN, "generic",      "7.2.0", "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas."),
    row("sync",         Unserved,    1, AN,    K0,  NO_KEYS,         Refused(Replication),    NO_TIPS, "server",       "1.0.0", "Internal command used for replication."),
    row("psync",        Unserved,   -3, AN,    K0,  NO_KEYS,         Refused(Replication),    NO_TIPS, "server",       "2.8.0", "Internal command used for replication."),
    row("move",         Unserved,    3, WF,    K1,  RW_AU,           Refused(OneDatabase),    NO_TIPS, "generic",      "1.0.0", "Move a key to another database."),
    row("swapdb",       Unserved,    3, WF,    K0,  NO_KEYS,         Refused(OneDatabase),    NO_TIPS, "server",       "4.0.0", "Swaps two Redis databases."),
];
