//! Redis 7.0's configuration parameters (its `config.c` table): every name, alias, type,
//! bounds and default, so `CONFIG GET` answers any name tools ask for and `CONFIG SET`
//! validates a value as Redis does (same error texts) before storing it. The few parameters
//! this server applies are handled in `cmd::server` first; the rest are accepted, kept in
//! [`Params`] and reported back.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::config::parse_memory;

/// How a parameter's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// Any string.
    Str,
    /// One of these names.
    Enum(&'static [&'static str]),
    /// An integer within bounds.
    Num(Num),
    /// A parameter with its own syntax (save, bind, ...): any string is kept.
    Special,
}

/// A numeric parameter: Redis's bounds (`unsigned` ones are compared and printed as unsigned),
/// and which spellings it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num {
    pub lo: i64,
    pub hi: u64,
    pub unsigned: bool,
    pub syntax: Syntax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Plain,
    /// `1gb`, `100mb`, ... or a plain number.
    Memory,
    /// A memory value, or `N%` (stored negative, as Redis).
    MemoryOrPercent,
    Octal,
}

pub const NONE: u8 = 0;
pub const IMMUTABLE: u8 = 1;
/// Redis refuses these unless `enable-protected-configs` (immutable, `no` by default).
pub const PROTECTED: u8 = 2;
/// Matched by exact name only, not by a `CONFIG GET` pattern.
pub const HIDDEN: u8 = 4;

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub flags: u8,
    pub kind: Kind,
    pub default: &'static str,
}

impl Param {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    }

    /// Both names (the alias too), as `CONFIG GET` lists them.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.alias)
    }
}

const S: bool = false;
const U: bool = true;
const PLAIN: Syntax = Syntax::Plain;
const MEM: Syntax = Syntax::Memory;
const MEM_PCT: Syntax = Syntax::MemoryOrPercent;
const OCT: Syntax = Syntax::Octal;
use Kind::{Bool, Enum, Special, Str};

const fn num(lo: i64, hi: u64, unsigned: bool, syntax: Syntax) -> Kind {
    Kind::Num(Num {
        lo,
        hi,
        unsigned,
        syntax,
    })
}

const fn p(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u8,
    kind: Kind,
    default: &'static str,
) -> Param {
    Param {
        name,
        alias,
        flags,
        kind,
        default,
    }
}

/// Redis 7.0.15's parameters, in its table's order (TLS ones included: Debian builds with TLS).
#[rustfmt::skip]
pub static PARAMS: &[Param] = &[
    p("rdbchecksum",                              None,                                IMMUTABLE,             Bool, "yes"),
    p("daemonize",                                None,                                IMMUTABLE,             Bool, "no"),
    p("io-threads-do-reads",                      None,                                IMMUTABLE,             Bool, "no"),
    p("always-show-logo",                         None,                                IMMUTABLE,             Bool, "no"),
    p("protected-mode",                           None,                                NONE,                  Bool, "yes"),
    p("rdbcompression",                           None,                                NONE,                  Bool, "yes"),
    p("rdb-del-sync-files",                       None,                                NONE,                  Bool, "no"),
    p("activerehashing",                          None,                                NONE,                  Bool, "yes"),
    p("stop-writes-on-bgsave-error",              None,                                NONE,                  Bool, "yes"),
    p("set-proc-title",                           None,                                IMMUTABLE,             Bool, "yes"),
    p("dynamic-hz",                               None,                                NONE,                  Bool, "yes"),
    p("lazyfree-lazy-eviction",                   None,                                NONE,                  Bool, "no"),
    p("lazyfree-lazy-expire",                     None,                                NONE,                  Bool, "no"),
    p("lazyfree-lazy-server-del",                 None,                                NONE,                  Bool, "no"),
    p("lazyfree-lazy-user-del",                   None,                                NONE,                  Bool, "no"),
    p("lazyfree-lazy-user-flush",                 None,                                NONE,                  Bool, "no"),
    p("repl-disable-tcp-nodelay",                 None,                                NONE,                  Bool, "no"),
    p("repl-diskless-sync",                       None,                                NONE,                  Bool, "yes"),
    p("aof-rewrite-incremental-fsync",            None,                                NONE,                  Bool, "yes"),
    p("no-appendfsync-on-rewrite",                None,                                NONE,                  Bool, "no"),
    p("cluster-require-full-coverage",            None,                                NONE,                  Bool, "yes"),
    p("rdb-save-incremental-fsync",               None,                                NONE,                  Bool, "yes"),
    p("aof-load-truncated",                       None,                                NONE,                  Bool, "yes"),
    p("aof-use-rdb-preamble",                     None,                                NONE,                  Bool, "yes"),
    p("aof-timestamp-enabled",                    None,                                NONE,                  Bool, "no"),
    p("cluster-replica-no-failover",              Some("cluster-slave-no-failover"),   NONE,                  Bool, "no"),
    p("replica-lazy-flush",                       Some("slave-lazy-flush"),            NONE,                  Bool, "no"),
    p("replica-serve-stale-data",                 Some("slave-serve-stale-data"),      NONE,                  Bool, "yes"),
    p("replica-read-only",                        Some("slave-read-only"),             NONE,                  Bool, "yes"),
    p("replica-ignore-maxmemory",                 Some("slave-ignore-maxmemory"),      NONE,                  Bool, "yes"),
    p("jemalloc-bg-thread",                       None,                                NONE,                  Bool, "yes"),
    p("activedefrag",                             None,                                NONE,                  Bool, "no"),
    p("syslog-enabled",                           None,                                IMMUTABLE,             Bool, "no"),
    p("cluster-enabled",                          None,                                IMMUTABLE,             Bool, "no"),
    p("appendonly",                               None,                                NONE,                  Bool, "no"),
    p("cluster-allow-reads-when-down",            None,                                NONE,                  Bool, "no"),
    p("cluster-allow-pubsubshard-when-down",      None,                                NONE,                  Bool, "yes"),
    p("crash-log-enabled",                        None,                                NONE,                  Bool, "yes"),
    p("crash-memcheck-enabled",                   None,                                NONE,                  Bool, "yes"),
    p("use-exit-on-panic",                        None,                                HIDDEN,                Bool, "no"),
    p("disable-thp",                              None,                                IMMUTABLE,             Bool, "yes"),
    p("cluster-allow-replica-migration",          None,                                NONE,                  Bool, "yes"),
    p("replica-announced",                        None,                                NONE,                  Bool, "yes"),
    p("latency-tracking",                         None,                                NONE,                  Bool, "yes"),
    p("aof-disable-auto-gc",                      None,                                NONE,                  Bool, "no"),
    p("replica-ignore-disk-write-errors",         None,                                NONE,                  Bool, "no"),
    p("aclfile",                                  None,                                IMMUTABLE,             Str, ""),
    p("unixsocket",                               None,                                IMMUTABLE,             Str, ""),
    p("pidfile",                                  None,                                IMMUTABLE,             Str, ""),
    p("replica-announce-ip",                      Some("slave-announce-ip"),           NONE,                  Str, ""),
    p("masteruser",                               None,                                NONE,                  Str, ""),
    p("cluster-announce-ip",                      None,                                NONE,                  Str, ""),
    p("cluster-config-file",                      None,                                IMMUTABLE,             Str, "nodes.conf"),
    p("cluster-announce-hostname",                None,                                NONE,                  Str, ""),
    p("syslog-ident",                             None,                                IMMUTABLE,             Str, "redis"),
    p("dbfilename",                               None,                                PROTECTED,             Str, "dump.rdb"),
    p("appendfilename",                           None,                                IMMUTABLE,             Str, "appendonly.aof"),
    p("appenddirname",                            None,                                IMMUTABLE,             Str, "appendonlydir"),
    p("server_cpulist",                           None,                                IMMUTABLE,             Str, ""),
    p("bio_cpulist",                              None,                                IMMUTABLE,             Str, ""),
    p("aof_rewrite_cpulist",                      None,                                IMMUTABLE,             Str, ""),
    p("bgsave_cpulist",                           None,                                IMMUTABLE,             Str, ""),
    p("ignore-warnings",                          None,                                NONE,                  Str, ""),
    p("proc-title-template",                      None,                                NONE,                  Str, "{title} {listen-addr} {server-mode}"),
    p("bind-source-addr",                         None,                                NONE,                  Str, ""),
    p("logfile",                                  None,                                IMMUTABLE,             Str, ""),
    p("masterauth",                               None,                                NONE,                  Str, ""),
    p("requirepass",                              None,                                NONE,                  Str, ""),
    p("supervised",                               None,                                IMMUTABLE,             Enum(&["upstart", "systemd", "auto", "no"]), "no"),
    p("syslog-facility",                          None,                                IMMUTABLE,             Enum(&["user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]), "local0"),
    p("repl-diskless-load",                       None,                                NONE,                  Enum(&["disabled", "on-empty-db", "swapdb"]), "disabled"),
    p("loglevel",                                 None,                                NONE,                  Enum(&["debug", "verbose", "notice", "warning"]), "notice"),
    p("maxmemory-policy",                         None,                                NONE,                  Enum(&["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"]), "noeviction"),
    p("appendfsync",                              None,                                NONE,                  Enum(&["everysec", "always", "no"]), "everysec"),
    p("oom-score-adj",                            None,                                NONE,                  Enum(&["no", "yes", "relative", "absolute"]), "no"),
    p("acl-pubsub-default",                       None,                                NONE,                  Enum(&["allchannels", "resetchannels"]), "resetchannels"),
    p("sanitize-dump-payload",                    None,                                NONE,                  Enum(&["no", "yes", "clients"]), "no"),
    p("enable-protected-configs",                 None,                                IMMUTABLE,             Enum(&["no", "yes", "local"]), "no"),
    p("enable-debug-command",                     None,                                IMMUTABLE,             Enum(&["no", "yes", "local"]), "no"),
    p("enable-module-command",                    None,                                IMMUTABLE,             Enum(&["no", "yes", "local"]), "no"),
    p("cluster-preferred-endpoint-type",          None,                                NONE,                  Enum(&["ip", "hostname", "unknown-endpoint"]), "ip"),
    p("propagation-error-behavior",               None,                                NONE,                  Enum(&["ignore", "panic", "panic-on-replicas"]), "ignore"),
    p("shutdown-on-sigint",                       None,                                NONE,                  Enum(&["default", "save", "nosave", "now", "force"]), "default"),
    p("shutdown-on-sigterm",                      None,                                NONE,                  Enum(&["default", "save", "nosave", "now", "force"]), "default"),
    p("databases",                                None,                                IMMUTABLE,             num(1, 2147483647, S, PLAIN), "16"),
    p("port",                                     None,                                NONE,                  num(0, 65535, S, PLAIN), "6379"),
    p("io-threads",                               None,                                IMMUTABLE,             num(1, 128, S, PLAIN), "1"),
    p("auto-aof-rewrite-percentage",              None,                                NONE,                  num(0, 2147483647, S, PLAIN), "100"),
    p("cluster-replica-validity-factor",          Some("cluster-slave-validity-factor"), NONE,                  num(0, 2147483647, S, PLAIN), "10"),
    p("list-max-listpack-size",                   Some("list-max-ziplist-size"),       NONE,                  num(-2147483648, 2147483647, S, PLAIN), "-2"),
    p("tcp-keepalive",                            None,                                NONE,                  num(0, 2147483647, S, PLAIN), "300"),
    p("cluster-migration-barrier",                None,                                NONE,                  num(0, 2147483647, S, PLAIN), "1"),
    p("active-defrag-cycle-min",                  None,                                NONE,                  num(1, 99, S, PLAIN), "1"),
    p("active-defrag-cycle-max",                  None,                                NONE,                  num(1, 99, S, PLAIN), "25"),
    p("active-defrag-threshold-lower",            None,                                NONE,                  num(0, 1000, S, PLAIN), "10"),
    p("active-defrag-threshold-upper",            None,                                NONE,                  num(0, 1000, S, PLAIN), "100"),
    p("lfu-log-factor",                           None,                                NONE,                  num(0, 2147483647, S, PLAIN), "10"),
    p("lfu-decay-time",                           None,                                NONE,                  num(0, 2147483647, S, PLAIN), "1"),
    p("replica-priority",                         Some("slave-priority"),              NONE,                  num(0, 2147483647, S, PLAIN), "100"),
    p("repl-diskless-sync-delay",                 None,                                NONE,                  num(0, 2147483647, S, PLAIN), "5"),
    p("maxmemory-samples",                        None,                                NONE,                  num(1, 2147483647, S, PLAIN), "5"),
    p("maxmemory-eviction-tenacity",              None,                                NONE,                  num(0, 100, S, PLAIN), "10"),
    p("timeout",                                  None,                                NONE,                  num(0, 2147483647, S, PLAIN), "0"),
    p("replica-announce-port",                    Some("slave-announce-port"),         NONE,                  num(0, 65535, S, PLAIN), "0"),
    p("tcp-backlog",                              None,                                IMMUTABLE,             num(0, 2147483647, S, PLAIN), "511"),
    p("cluster-port",                             None,                                IMMUTABLE,             num(0, 65535, S, PLAIN), "0"),
    p("cluster-announce-bus-port",                None,                                NONE,                  num(0, 65535, S, PLAIN), "0"),
    p("cluster-announce-port",                    None,                                NONE,                  num(0, 65535, S, PLAIN), "0"),
    p("cluster-announce-tls-port",                None,                                NONE,                  num(0, 65535, S, PLAIN), "0"),
    p("repl-timeout",                             None,                                NONE,                  num(1, 2147483647, S, PLAIN), "60"),
    p("repl-ping-replica-period",                 Some("repl-ping-slave-period"),      NONE,                  num(1, 2147483647, S, PLAIN), "10"),
    p("list-compress-depth",                      None,                                NONE,                  num(0, 2147483647, S, PLAIN), "0"),
    p("rdb-key-save-delay",                       None,                                HIDDEN,                num(-2147483648, 2147483647, S, PLAIN), "0"),
    p("key-load-delay",                           None,                                HIDDEN,                num(-2147483648, 2147483647, S, PLAIN), "0"),
    p("active-expire-effort",                     None,                                NONE,                  num(1, 10, S, PLAIN), "1"),
    p("hz",                                       None,                                NONE,                  num(0, 2147483647, S, PLAIN), "10"),
    p("min-replicas-to-write",                    Some("min-slaves-to-write"),         NONE,                  num(0, 2147483647, S, PLAIN), "0"),
    p("min-replicas-max-lag",                     Some("min-slaves-max-lag"),          NONE,                  num(0, 2147483647, S, PLAIN), "10"),
    p("watchdog-period",                          None,                                HIDDEN,                num(0, 2147483647, S, PLAIN), "0"),
    p("shutdown-timeout",                         None,                                NONE,                  num(0, 2147483647, S, PLAIN), "10"),
    p("repl-diskless-sync-max-replicas",          None,                                NONE,                  num(0, 2147483647, S, PLAIN), "0"),
    p("maxclients",                               None,                                NONE,                  num(1, 4294967295, U, PLAIN), "10000"),
    p("unixsocketperm",                           None,                                IMMUTABLE,             num(0, 511, U, OCT), "0"),
    p("socket-mark-id",                           None,                                IMMUTABLE,             num(0, 4294967295, U, PLAIN), "0"),
    p("active-defrag-max-scan-fields",            None,                                NONE,                  num(1, 9223372036854775807, S, PLAIN), "1000"),
    p("slowlog-max-len",                          None,                                NONE,                  num(0, 9223372036854775807, S, PLAIN), "128"),
    p("acllog-max-len",                           None,                                NONE,                  num(0, 9223372036854775807, S, PLAIN), "128"),
    p("busy-reply-threshold",                     Some("lua-time-limit"),              NONE,                  num(0, 9223372036854775807, S, PLAIN), "5000"),
    p("cluster-node-timeout",                     None,                                NONE,                  num(0, 9223372036854775807, S, PLAIN), "15000"),
    p("slowlog-log-slower-than",                  None,                                NONE,                  num(-1, 9223372036854775807, S, PLAIN), "10000"),
    p("latency-monitor-threshold",                None,                                NONE,                  num(0, 9223372036854775807, S, PLAIN), "0"),
    p("proto-max-bulk-len",                       None,                                NONE,                  num(1048576, 9223372036854775807, S, MEM), "536870912"),
    p("stream-node-max-entries",                  None,                                NONE,                  num(0, 9223372036854775807, S, PLAIN), "100"),
    p("repl-backlog-size",                        None,                                NONE,                  num(1, 9223372036854775807, S, MEM), "1048576"),
    p("maxmemory",                                None,                                NONE,                  num(0, 18446744073709551615, U, MEM), "0"),
    p("cluster-link-sendbuf-limit",               None,                                NONE,                  num(0, 18446744073709551615, U, MEM), "0"),
    p("hash-max-listpack-entries",                Some("hash-max-ziplist-entries"),    NONE,                  num(0, 9223372036854775807, U, PLAIN), "512"),
    p("set-max-intset-entries",                   None,                                NONE,                  num(0, 9223372036854775807, U, PLAIN), "512"),
    p("zset-max-listpack-entries",                Some("zset-max-ziplist-entries"),    NONE,                  num(0, 9223372036854775807, U, PLAIN), "128"),
    p("active-defrag-ignore-bytes",               None,                                NONE,                  num(1, 9223372036854775807, U, MEM), "104857600"),
    p("hash-max-listpack-value",                  Some("hash-max-ziplist-value"),      NONE,                  num(0, 9223372036854775807, U, MEM), "64"),
    p("stream-node-max-bytes",                    None,                                NONE,                  num(0, 9223372036854775807, U, MEM), "4096"),
    p("zset-max-listpack-value",                  Some("zset-max-ziplist-value"),      NONE,                  num(0, 9223372036854775807, U, MEM), "64"),
    p("hll-sparse-max-bytes",                     None,                                NONE,                  num(0, 9223372036854775807, U, MEM), "3000"),
    p("tracking-table-max-keys",                  None,                                NONE,                  num(0, 9223372036854775807, U, PLAIN), "1000000"),
    p("client-query-buffer-limit",                None,                                NONE,                  num(1048576, 9223372036854775807, U, MEM), "1073741824"),
    p("maxmemory-clients",                        None,                                NONE,                  num(-100, 9223372036854775807, S, MEM_PCT), "0"),
    p("repl-backlog-ttl",                         None,                                NONE,                  num(0, 9223372036854775807, S, PLAIN), "3600"),
    p("auto-aof-rewrite-min-size",                None,                                NONE,                  num(0, 9223372036854775807, S, MEM), "67108864"),
    p("loading-process-events-interval-bytes",    None,                                HIDDEN,                num(1024, 2147483647, S, PLAIN), "2097152"),
    p("tls-port",                                 None,                                NONE,                  num(0, 65535, S, PLAIN), "0"),
    p("tls-session-cache-size",                   None,                                NONE,                  num(0, 2147483647, S, PLAIN), "20480"),
    p("tls-session-cache-timeout",                None,                                NONE,                  num(0, 2147483647, S, PLAIN), "300"),
    p("tls-cluster",                              None,                                NONE,                  Bool, "no"),
    p("tls-replication",                          None,                                NONE,                  Bool, "no"),
    p("tls-auth-clients",                         None,                                NONE,                  Enum(&["no", "yes", "optional"]), "yes"),
    p("tls-prefer-server-ciphers",                None,                                NONE,                  Bool, "no"),
    p("tls-session-caching",                      None,                                NONE,                  Bool, "yes"),
    p("tls-cert-file",                            None,                                NONE,                  Str, ""),
    p("tls-key-file",                             None,                                NONE,                  Str, ""),
    p("tls-key-file-pass",                        None,                                NONE,                  Str, ""),
    p("tls-client-cert-file",                     None,                                NONE,                  Str, ""),
    p("tls-client-key-file",                      None,                                NONE,                  Str, ""),
    p("tls-client-key-file-pass",                 None,                                NONE,                  Str, ""),
    p("tls-dh-params-file",                       None,                                NONE,                  Str, ""),
    p("tls-ca-cert-file",                         None,                                NONE,                  Str, ""),
    p("tls-ca-cert-dir",                          None,                                NONE,                  Str, ""),
    p("tls-protocols",                            None,                                NONE,                  Str, ""),
    p("tls-ciphers",                              None,                                NONE,                  Str, ""),
    p("tls-ciphersuites",                         None,                                NONE,                  Str, ""),
    p("dir",                                      None,                                NONE,                  Special, ""),
    p("save",                                     None,                                NONE,                  Special, "3600 1 300 100 60 10000"),
    p("client-output-buffer-limit",               None,                                NONE,                  Special, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
    p("oom-score-adj-values",                     None,                                NONE,                  Special, "0 200 800"),
    p("notify-keyspace-events",                   None,                                NONE,                  Special, ""),
    p("bind",                                     None,                                NONE,                  Special, "* -::*"),
    p("replicaof",                                Some("slaveof"),                     IMMUTABLE,             Special, ""),
    p("latency-tracking-info-percentiles",        None,                                NONE,                  Special, "50 99 99.9"),
];

/// The parameter named `name` (or its alias), case-insensitively.
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.is(name))
}

/// Checks `value` for `p` as Redis's `CONFIG SET` does and returns the text to keep (numbers in
/// their canonical form, as `CONFIG GET` shows them). The error is Redis's reason, without the
/// `CONFIG SET failed (possibly related to argument ...)` prefix.
pub fn validate(p: &Param, value: &[u8]) -> Result<String, String> {
    if p.flags & IMMUTABLE != 0 {
        return Err("can't set immutable config".into());
    }
    if p.flags & PROTECTED != 0 {
        return Err("can't set protected config".into());
    }
    let text = String::from_utf8_lossy(value);
    match p.kind {
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Str | Kind::Special => Ok(text.into_owned()),
        Kind::Enum(names) => names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(&text))
            .map(|n| (*n).to_string())
            .ok_or_else(|| {
                format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )
            }),
        Kind::Num(n) => {
            let v = parse_number(n, &text)?;
            check_bounds(n, v)?;
            Ok(render_number(n, v))
        }
    }
}

/// Redis's `numericParseString`.
fn parse_number(n: Num, text: &str) -> Result<i128, String> {
    match n.syntax {
        Syntax::Memory | Syntax::MemoryOrPercent => {
            if let Some(v) = memtoull(text) {
                return Ok(i128::from(v));
            }
            if n.syntax == Syntax::MemoryOrPercent
                && let Some(pct) = text.strip_suffix('%')
                && let Ok(v) = pct.parse::<i64>()
                && v >= 0
                && !pct.starts_with('+')
            {
                return Ok(-i128::from(v));
            }
            Err(if n.syntax == Syntax::MemoryOrPercent {
                "argument must be a memory or percent value".into()
            } else {
                "argument must be a memory value".into()
            })
        }
        Syntax::Octal => i64::from_str_radix(text, 8)
            .map(i128::from)
            .map_err(|_| "argument couldn't be parsed as an octal number".into()),
        Syntax::Plain => string2ll(text)
            .map(i128::from)
            .ok_or_else(|| "argument couldn't be parsed into an integer".into()),
    }
}

/// Redis's `memtoull`: digits with an optional unit (b, k, kb, m, mb, g, gb).
fn memtoull(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    parse_memory(text)
}

/// Redis's `string2ll`: an optional `-`, digits, no leading zeros or `+`.
fn string2ll(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    canonical.then(|| text.parse().ok()).flatten()
}

/// Redis's `numericBoundaryCheck`.
fn check_bounds(n: Num, v: i128) -> Result<(), String> {
    if n.unsigned {
        // Redis compares the value as an unsigned 64-bit number (so -1 is huge).
        let u = if v < 0 {
            i128::from(u64::MAX) + 1 + v
        } else {
            v
        };
        if u > i128::from(n.hi) || u < i128::from(n.lo) {
            return Err(if n.syntax == Syntax::Octal {
                format!(
                    "argument must be between {:o} and {:o} inclusive",
                    n.lo, n.hi
                )
            } else {
                format!("argument must be between {} and {} inclusive", n.lo, n.hi)
            });
        }
        return Ok(());
    }
    if n.syntax == Syntax::MemoryOrPercent && v < 0 {
        if v < i128::from(n.lo) {
            return Err(format!(
                "percentage argument must be less or equal to {}",
                -n.lo
            ));
        }
        return Ok(());
    }
    if v > i128::from(n.hi) || v < i128::from(n.lo) {
        return Err(format!(
            "argument must be between {} and {} inclusive",
            n.lo, n.hi
        ));
    }
    Ok(())
}

fn render_number(n: Num, v: i128) -> String {
    match n.syntax {
        Syntax::MemoryOrPercent if v < 0 => format!("{}%", -v),
        Syntax::Octal => format!("{v:o}"),
        _ => v.to_string(),
    }
}

/// Values set with `CONFIG SET` for parameters this server keeps without applying.
#[derive(Default)]
pub struct Params {
    set: Mutex<HashMap<&'static str, String>>,
}

impl Params {
    /// The value of `p`: the one set, else Redis's default.
    pub fn get(&self, p: &Param) -> String {
        self.set
            .lock()
            .get(p.name)
            .cloned()
            .unwrap_or_else(|| p.default.to_string())
    }

    /// The value set for `p`, if any.
    pub fn get_set(&self, p: &Param) -> Option<String> {
        self.set.lock().get(p.name).cloned()
    }

    pub fn set(&self, p: &'static Param, value: String) {
        self.set.lock().insert(p.name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, v: &str) -> Result<String, String> {
        validate(find(name).expect(name), v.as_bytes())
    }

    #[test]
    fn validates_as_redis() {
        assert_eq!(set("activerehashing", "NO"), Ok("no".into()));
        assert_eq!(
            set("activerehashing", "1"),
            Err("argument must be 'yes' or 'no'".into())
        );
        assert_eq!(set("lfu-log-factor", "20"), Ok("20".into()));
        assert_eq!(
            set("lfu-log-factor", "-1"),
            Err("argument must be between 0 and 2147483647 inclusive".into())
        );
        assert_eq!(
            set("lfu-log-factor", "x"),
            Err("argument couldn't be parsed into an integer".into())
        );
        assert_eq!(set("repl-backlog-size", "1mb"), Ok("1048576".into()));
        assert_eq!(set("maxmemory-clients", "10%"), Ok("10%".into()));
        assert_eq!(
            set("maxmemory-clients", "200%"),
            Err("percentage argument must be less or equal to 100".into())
        );
        assert_eq!(
            set("appendfsync", "sometimes"),
            Err("argument(s) must be one of the following: everysec, always, no".into())
        );
        assert_eq!(
            set("daemonize", "yes"),
            Err("can't set immutable config".into())
        );
        assert_eq!(
            set("dbfilename", "x.rdb"),
            Err("can't set protected config".into())
        );
        assert_eq!(set("slave-read-only", "no"), Ok("no".into()));
        assert_eq!(
            set("maxclients", "0"),
            Err("argument must be between 1 and 4294967295 inclusive".into())
        );
        assert!(find("no-such-param").is_none());
    }

    #[test]
    fn every_default_validates() {
        for p in PARAMS
            .iter()
            .filter(|p| p.flags & (IMMUTABLE | PROTECTED) == 0)
        {
            if matches!(p.kind, Kind::Num(_) | Kind::Bool | Kind::Enum(_)) {
                assert_eq!(
                    validate(p, p.default.as_bytes()).as_deref(),
                    Ok(p.default),
                    "{}",
                    p.name
                );
            }
        }
    }
}
