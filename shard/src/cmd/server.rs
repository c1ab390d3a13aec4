//! Server commands: COMMAND, INFO, CONFIG, FLUSH*, TIME, SHUTDOWN.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use membership::command::{CommandId, reply};

use super::args::{eq, parse_i64};
use super::session::Session;
use crate::config::parse_memory;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Policy, glob::glob_match};
use crate::value::limits::{EncodingLimits, NAMES};
use membership::resp::CommandError;

pub use membership::command::help;

// ---- COMMAND ----

/// COMMAND and its subcommands, as the proxy answers them too (`membership::command::reply`).
pub fn command(id: CommandId, a: &Args) -> CmdResult {
    let argv: Vec<&[u8]> = a.iter().map(|b| &b[..]).collect();
    reply::command(id, &argv, |pattern, name| glob_match(pattern, name, true))
        .map_err(|e| CmdError::err(e.message()))
}

// ---- INFO ----

pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// INFO's sections in Redis's order (`tiering` is this server's), and whether plain `INFO`
/// (or `INFO default`) includes each: commandstats and latencystats only come with `all`,
/// `everything` or their name, as in Redis.
const SECTIONS: [(&str, bool); 13] = [
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("tiering", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
];

pub fn info(s: &mut Session, a: &Args) -> CmdResult {
    let wanted: Vec<String> = a
        .slice(1)
        .iter()
        .map(|w| String::from_utf8_lossy(w).to_ascii_lowercase())
        .collect();
    let all = wanted.iter().any(|w| w == "all" || w == "everything");
    let default = wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let mut out = String::with_capacity(2048);
    for (section, in_default) in SECTIONS {
        if all || (default && in_default) || wanted.iter().any(|w| w == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            info_section(s, section, &mut out);
        }
    }
    Ok(Reply::Verbatim(out))
}

fn info_section(s: &Session, section: &str, out: &mut String) {
    let sh = &s.shared;
    let db = &sh.db;
    let st = &sh.stats;
    let header = match section {
        "server" => "# Server",
        "clients" => "# Clients",
        "memory" => "# Memory",
        "persistence" => "# Persistence",
        "stats" => "# Stats",
        "replication" => "# Replication",
        "cpu" => "# CPU",
        "tiering" => "# Tiering",
        "commandstats" => "# Commandstats",
        "errorstats" => "# Errorstats",
        "latencystats" => "# Latencystats",
        "cluster" => "# Cluster",
        _ => "# Keyspace",
    };
    out.push_str(header);
    out.push_str("\r\n");
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match section {
        "server" => {
            let uptime = sh.clock.uptime_secs();
            line("redis_version", &crate::REDIS_VERSION);
            line("autocache_version", &env!("CARGO_PKG_VERSION"));
            line("redis_mode", &"standalone");
            line("os", &std::env::consts::OS);
            line("arch_bits", &(usize::BITS));
            line("multiplexing_api", &"epoll");
            line("process_id", &std::process::id());
            line("run_id", &sh.run_id);
            line("tcp_port", &sh.local_addr.port());
            line("uptime_in_seconds", &uptime);
            line("uptime_in_days", &(uptime / 86400));
            line("hz", &sh.config.hz);
            line(
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        }
        "clients" => {
            line("connected_clients", &sh.clients.count());
            line("maxclients", &sh.runtime.maxclients.load(Relaxed));
            line("blocked_clients", &sh.blocking.blocked_clients());
            line("tracking_clients", &sh.tracking.clients());
        }
        "persistence" => {
            // No RDB or AOF: the warm tier (see # Tiering) is this server's persistence.
            // The fields tools read (redis-cli --stat's SAVE/AOF/LOAD column) are all 0.
            let started = (sh.clock.now_ms() / 1000).saturating_sub(sh.clock.uptime_secs());
            for (k, v) in [
                ("loading", "0"),
                ("async_loading", "0"),
                ("current_cow_peak", "0"),
                ("current_cow_size", "0"),
                ("current_cow_size_age", "0"),
                ("current_fork_perc", "0.00"),
                ("current_save_keys_processed", "0"),
                ("current_save_keys_total", "0"),
                ("rdb_changes_since_last_save", "0"),
                ("rdb_bgsave_in_progress", "0"),
            ] {
                line(k, &v);
            }
            line("rdb_last_save_time", &started);
            for (k, v) in [
                ("rdb_last_bgsave_status", "ok"),
                ("rdb_last_bgsave_time_sec", "-1"),
                ("rdb_current_bgsave_time_sec", "-1"),
                ("rdb_saves", "0"),
                ("rdb_last_cow_size", "0"),
                ("rdb_last_load_keys_expired", "0"),
                ("rdb_last_load_keys_loaded", "0"),
                ("aof_enabled", "0"),
                ("aof_rewrite_in_progress", "0"),
                ("aof_rewrite_scheduled", "0"),
                ("aof_last_rewrite_time_sec", "-1"),
                ("aof_current_rewrite_time_sec", "-1"),
                ("aof_last_bgrewrite_status", "ok"),
                ("aof_rewrites", "0"),
                ("aof_rewrites_consecutive_failures", "0"),
                ("aof_last_write_status", "ok"),
                ("aof_last_cow_size", "0"),
                ("module_fork_in_progress", "0"),
                ("module_fork_last_cow_size", "0"),
            ] {
                line(k, &v);
            }
        }
        "replication" => {
            // No replicas (yet): a master with none, as a lone Redis reports itself.
            line("role", &"master");
            line("connected_slaves", &0);
            line("master_failover_state", &"no-failover");
            line("master_replid", &format_args!("{:0<40}", &sh.run_id));
            line(
                "master_replid2",
                &"0000000000000000000000000000000000000000",
            );
            line("master_repl_offset", &0);
            line("second_repl_offset", &-1);
            line("repl_backlog_active", &0);
            line("repl_backlog_size", &1_048_576);
            line("repl_backlog_first_byte_offset", &0);
            line("repl_backlog_histlen", &0);
        }
        "commandstats" => {
            for (name, c) in sh.commands.used() {
                if matches!(name, "unknown" | "other") {
                    continue;
                }
                let (ok, err, rejected) = (
                    c.ok.load(Relaxed),
                    c.err.load(Relaxed),
                    c.rejected.load(Relaxed),
                );
                let failed = err.saturating_sub(rejected);
                let calls = ok + failed;
                let usec = c.latency.snapshot().sum / 1000;
                let per_call = if calls == 0 {
                    0.0
                } else {
                    usec as f64 / calls as f64
                };
                line(
                    &format!("cmdstat_{name}"),
                    &format_args!(
                        "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
                    ),
                );
            }
        }
        "errorstats" => {
            for (code, n) in sh.errors.snapshot() {
                line(&format!("errorstat_{code}"), &format_args!("count={n}"));
            }
        }
        "latencystats" => {
            let percentiles = latency_percentiles(s);
            for (name, c) in sh.commands.used() {
                let snap = c.latency.snapshot();
                if snap.count == 0 || matches!(name, "unknown" | "other") {
                    continue;
                }
                let mut v = String::new();
                for (i, p) in percentiles.iter().enumerate() {
                    let us = snap.quantile(p / 100.0).unwrap_or(0.0) / 1000.0;
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(v, "{sep}p{}={us:.3}", trim_float(*p));
                }
                line(&format!("latency_percentiles_usec_{name}"), &v);
            }
        }
        "memory" => {
            let used = db.used_memory() as u64;
            line("used_memory", &used);
            line("used_memory_human", &membership::resp::human_bytes(used));
            line("used_memory_rss", &rss_bytes());
            line("maxmemory", &db.maxmemory());
            line(
                "maxmemory_human",
                &membership::resp::human_bytes(db.maxmemory()),
            );
            line("maxmemory_policy", &db.policy().name());
            line("mem_allocator", &"libc");
        }
        "stats" => {
            line(
                "total_connections_received",
                &st.conns.received.load(Relaxed),
            );
            line("total_commands_processed", &st.total_commands.load(Relaxed));
            line(
                "total_net_input_bytes",
                &st.conns.net_input_bytes.load(Relaxed),
            );
            line(
                "total_net_output_bytes",
                &st.conns.net_output_bytes.load(Relaxed),
            );
            line("rejected_connections", &st.conns.rejected.load(Relaxed));
            line(
                "client_output_buffer_limit_disconnections",
                &sh.pubsub.disconnections.load(Relaxed),
            );
            line("total_error_replies", &sh.errors.total.load(Relaxed));
            line("expired_keys", &db.stats.expired_keys.load(Relaxed));
            line("evicted_keys", &db.stats.evicted_keys.load(Relaxed));
            line("keyspace_hits", &st.keyspace_hits.load(Relaxed));
            line("keyspace_misses", &st.keyspace_misses.load(Relaxed));
            line(
                "pubsub_channels",
                &sh.pubsub.len(crate::pubsub::Kind::Channel),
            );
            line(
                "pubsub_patterns",
                &sh.pubsub.len(crate::pubsub::Kind::Pattern),
            );
            line(
                "pubsubshard_channels",
                &sh.pubsub.len(crate::pubsub::Kind::Shard),
            );
            line("tracking_total_keys", &sh.tracking.tracked_keys());
            line(
                "tracking_invalidations",
                &sh.tracking.invalidations.load(Relaxed),
            );
        }
        "cpu" => {
            if let Some((sys, user)) = membership::process::cpu_times() {
                line("used_cpu_sys", &format_args!("{sys:.6}"));
                line("used_cpu_user", &format_args!("{user:.6}"));
            }
        }
        "cluster" => {
            line("cluster_enabled", &u8::from(sh.cluster.get().is_some()));
            if let Some(c) = sh.cluster.get() {
                out.push_str(&crate::migrate::migration_lines(&c.migrations, "\r\n"));
            }
        }
        "tiering" => {
            line(
                "warm_tier",
                &if db.warm().is_some() {
                    "enabled"
                } else {
                    "disabled"
                },
            );
            line("hot_keys", &db.hot_len());
            line("hot_bytes", &db.used_memory());
            line("warm_keys", &db.warm_len());
            line("warm_bytes", &db.warm_memory());
            line("warm_maxbytes", &db.limits.warm_maxbytes.load(Relaxed));
            if let Some(w) = db.warm() {
                let ws = &w.stats;
                line("promotions", &ws.promotions.load(Relaxed));
                line("demotions", &ws.demotions.load(Relaxed));
                line("warm_hits", &ws.hits.load(Relaxed));
                line(
                    "hot_hits",
                    &st.keyspace_hits
                        .load(Relaxed)
                        .saturating_sub(ws.hits.load(Relaxed)),
                );
                line("warm_evictions", &ws.evictions.load(Relaxed));
                line("warm_pending_ops", &w.pending_ops());
                line("warm_pending_bytes", &w.pending_bytes());
                line("warm_commits", &ws.commits.load(Relaxed));
                line("warm_durable_commits", &ws.durable_commits.load(Relaxed));
                line("warm_unsynced_commits", &ws.unsynced_commits.load(Relaxed));
                line("warm_write_errors", &ws.write_errors.load(Relaxed));
                line("warm_writer_assists", &ws.assists.load(Relaxed));
                line("warm_reads_inline", &ws.inline_reads.load(Relaxed));
                line("warm_reads_pooled", &ws.pooled_reads.load(Relaxed));
                line("warm_read_avg_us", &(ws.read_ns.load(Relaxed) / 1000));
                if db.sketch_bytes() > 0 {
                    line("frequency_sketch_bytes", &db.sketch_bytes());
                    line(
                        "admission_frequency",
                        &format_args!("{:.2}", f64::from(db.admission_bar()) / 16.0),
                    );
                }
            }
        }
        _ => {
            if !db.is_empty() {
                line(
                    "db0",
                    &format_args!(
                        "keys={},expires={},avg_ttl=0",
                        db.len(),
                        db.volatile_len() + db.warm_volatile_len()
                    ),
                );
            }
        }
    }
}

/// `latency-tracking-info-percentiles` (Redis's default `50 99 99.9`).
fn latency_percentiles(s: &Session) -> Vec<f64> {
    let text = crate::params::find("latency-tracking-info-percentiles")
        .map(|p| s.shared.params.get(p))
        .unwrap_or_default();
    text.split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .collect()
}

/// `99.9` as `99.9`, `50.0` as `50` (Redis's `%f` trimmed of trailing zeros).
fn trim_float(f: f64) -> String {
    let t = format!("{f:.6}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ---- CONFIG ----

/// The parameters this server applies (or reports from its own state); every other Redis
/// parameter is validated and kept by `crate::params`.
const PARAMS: [&str; 23] = [
    "bind",
    "port",
    "dir",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "requirepass",
    "maxclients",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "hz",
    "loglevel",
    "save",
    "appendonly",
    "databases",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "notify-keyspace-events",
    "client-output-buffer-limit",
    "busy-reply-threshold",
    "lua-time-limit",
    "latency-monitor-threshold",
    "latency-tracking",
];

fn config_value(s: &Session, name: &str) -> String {
    let sh = &s.shared;
    let c = &sh.config;
    match name {
        "bind" => c.bind.join(" "),
        "port" => sh.local_addr.port().to_string(),
        "dir" => c.dir.display().to_string(),
        "maxmemory" => sh.db.maxmemory().to_string(),
        "maxmemory-policy" => sh.db.policy().name().to_string(),
        "maxmemory-samples" => sh.db.limits.samples.load(Relaxed).to_string(),
        "requirepass" => sh
            .requirepass()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default(),
        "maxclients" => sh.runtime.maxclients.load(Relaxed).to_string(),
        "proto-max-bulk-len" => c.proto_max_bulk_len.to_string(),
        "client-query-buffer-limit" => c.client_query_buffer_limit.to_string(),
        "hz" => c.hz.to_string(),
        "loglevel" | "save" => crate::params::find(name)
            .and_then(|p| sh.params.get_set(p))
            .unwrap_or_else(|| {
                if name == "save" {
                    String::new()
                } else {
                    c.loglevel.clone()
                }
            }),
        "latency-monitor-threshold" => sh.latency.threshold_ms.load(Relaxed).to_string(),
        "latency-tracking" => if c.telemetry.latency_tracking {
            "yes"
        } else {
            "no"
        }
        .into(),
        "appendonly" => "no".into(),
        "databases" => "1".into(),
        "slowlog-log-slower-than" => sh.slowlog.slower_than_us.load(Relaxed).to_string(),
        "slowlog-max-len" => sh.slowlog.max_len.load(Relaxed).to_string(),
        "notify-keyspace-events" => crate::notify::render_flags(sh.notify.flags()),
        "client-output-buffer-limit" => sh.pubsub.limits().render(),
        "busy-reply-threshold" | "lua-time-limit" => sh.running.threshold_ms().to_string(),
        _ => String::new(),
    }
}

/// A validated CONFIG SET assignment, applied only once every pair has validated.
enum Assign {
    Maxmemory(u64),
    Policy(Policy),
    Samples(u32),
    Maxclients(usize),
    Requirepass(Option<Bytes>),
    SlowlogSlowerThan(i64),
    SlowlogMaxLen(usize),
    /// An encoding threshold: its index in `value::limits::NAMES`, and the value.
    Encoding(usize, i64),
    NotifyFlags(u32),
    OutputBufferLimits(crate::pubsub::Limits),
    BusyReplyThreshold(u64),
    LatencyThreshold(u64),
    /// A Redis parameter kept without effect here, with its canonical value.
    Param(&'static crate::params::Param, String),
}

fn parse_assign(s: &Session, name: &str, v: &[u8]) -> Result<Assign, String> {
    let text = String::from_utf8_lossy(v);
    let bad =
        |why: &str| format!("CONFIG SET failed (possibly related to argument '{name}') - {why}");
    match name {
        "maxmemory" => parse_memory(&text).map(Assign::Maxmemory).ok_or_else(|| bad("argument must be a memory value")),
        "maxmemory-policy" => Policy::parse(&text).map(Assign::Policy).ok_or_else(|| bad("argument(s) must be one of the following: volatile-lru, allkeys-lru, volatile-lfu, allkeys-lfu, volatile-random, allkeys-random, volatile-ttl, noeviction")),
        "maxmemory-samples" => parse_i64(v)
            .ok()
            .filter(|n| (1..=64).contains(n))
            .map(|n| Assign::Samples(n as u32))
            .ok_or_else(|| bad("argument must be between 1 and 64 inclusive")),
        "maxclients" => match parse_i64(v) {
            Err(_) => Err(bad("argument couldn't be parsed into an integer")),
            Ok(n) if (1..=i64::from(u32::MAX)).contains(&n) => Ok(Assign::Maxclients(n as usize)),
            Ok(_) => Err(bad("argument must be between 1 and 4294967295 inclusive")),
        },
        "slowlog-log-slower-than" => parse_i64(v)
            .ok()
            .filter(|n| *n >= -1)
            .map(Assign::SlowlogSlowerThan)
            .ok_or_else(|| bad("argument must be between -1 and 9223372036854775807 inclusive")),
        "slowlog-max-len" => parse_i64(v)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .map(Assign::SlowlogMaxLen)
            .ok_or_else(|| bad("argument must be between 0 and 9223372036854775807 inclusive")),
        "busy-reply-threshold" | "lua-time-limit" => match parse_i64(v) {
            Err(_) => Err(bad("argument couldn't be parsed into an integer")),
            Ok(n) => u64::try_from(n)
                .map(Assign::BusyReplyThreshold)
                .map_err(|_| bad("argument must be between 0 and 9223372036854775807 inclusive")),
        },
        "latency-monitor-threshold" => match parse_i64(v) {
            Err(_) => Err(bad("argument couldn't be parsed into an integer")),
            Ok(n) => u64::try_from(n)
                .map(Assign::LatencyThreshold)
                .map_err(|_| bad("argument must be between 0 and 9223372036854775807 inclusive")),
        },
        // Kept and reported: logging is configured at start-up, snapshots do not exist here.
        "loglevel" | "save" => {
            let p = crate::params::find(name).ok_or_else(|| bad("can't set immutable config"))?;
            crate::params::validate(p, v).map(|v| Assign::Param(p, v)).map_err(|e| bad(&e))
        }
        "requirepass" => Ok(Assign::Requirepass((!v.is_empty()).then(|| Bytes::copy_from_slice(v)))),
        "notify-keyspace-events" => crate::notify::parse_flags(v).map(Assign::NotifyFlags).ok_or_else(|| bad(crate::notify::INVALID_FLAGS)),
        "client-output-buffer-limit" => s.shared.pubsub.limits().parse(&text).map(Assign::OutputBufferLimits).map_err(bad),
        _ if let Some(i) = EncodingLimits::index(name) => {
            let n = if NAMES[i].0.ends_with("-value") || NAMES[i].0 == "hll-sparse-max-bytes" {
                parse_memory(&text)
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| bad("argument must be a memory value"))?
            } else {
                parse_i64(v).map_err(|_| bad("argument couldn't be parsed into an integer"))?
            };
            EncodingLimits::check(i, n).map(|n| Assign::Encoding(i, n)).map_err(|e| bad(&e))
        }
        _ if PARAMS.contains(&name) => Err(bad("can't set immutable config")),
        _ if let Some(p) = crate::params::find(name) => {
            crate::params::validate(p, v).map(|v| Assign::Param(p, v)).map_err(|e| bad(&e))
        }
        _ => Err(format!("Unknown option or number of arguments for CONFIG SET - '{name}'")),
    }
}

pub fn config(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    match id {
        CommandId::ConfigGet => {
            let mut pairs: Vec<(Reply, Reply)> = Vec::new();
            for p in PARAMS {
                if a.slice(2)
                    .iter()
                    .any(|pat| glob_match(pat, p.as_bytes(), true))
                {
                    pairs.push((Reply::str(p), Reply::str(&config_value(s, p))));
                }
            }
            // The encoding thresholds, under their names and their old aliases, as Redis.
            for (i, (name, alias)) in NAMES.iter().enumerate() {
                for n in std::iter::once(*name).chain(*alias) {
                    if a.slice(2)
                        .iter()
                        .any(|pat| glob_match(pat, n.as_bytes(), true))
                    {
                        let v = s.shared.db.encodings.value(i).to_string();
                        pairs.push((Reply::str(n), Reply::str(&v)));
                    }
                }
            }
            // Every other Redis parameter, kept (or defaulted) by `crate::params`.
            for p in crate::params::PARAMS {
                if p.names()
                    .any(|n| PARAMS.contains(&n) || EncodingLimits::index(n).is_some())
                {
                    continue;
                }
                for n in p.names() {
                    let hit = a.slice(2).iter().any(|pat| {
                        if p.flags & crate::params::HIDDEN != 0 {
                            pat.eq_ignore_ascii_case(n.as_bytes())
                        } else {
                            glob_match(pat, n.as_bytes(), true)
                        }
                    });
                    if hit {
                        pairs.push((Reply::str(n), Reply::str(&s.shared.params.get(p))));
                    }
                }
            }
            Ok(Reply::Map(pairs))
        }
        CommandId::ConfigSet => {
            if !a.len().is_multiple_of(2) {
                return Err(CmdError::from(CommandError::WrongArity(
                    "config|set".into(),
                )));
            }
            let mut assigns = Vec::new();
            for kv in a.slice(2).chunks_exact(2) {
                let name = String::from_utf8_lossy(&kv[0]).to_ascii_lowercase();
                assigns.push(parse_assign(s, &name, &kv[1]).map_err(CmdError::err)?);
            }
            let sh = &s.shared;
            for asg in assigns {
                match asg {
                    Assign::Maxmemory(m) => sh.db.limits.maxmemory.store(m, Relaxed),
                    Assign::Policy(p) => sh.db.limits.policy.store(p as u8, Relaxed),
                    Assign::Samples(n) => sh.db.limits.samples.store(n, Relaxed),
                    Assign::Maxclients(n) => sh.runtime.maxclients.store(n, Relaxed),
                    Assign::Requirepass(p) => *sh.runtime.requirepass.write() = p,
                    Assign::SlowlogSlowerThan(n) => sh.slowlog.slower_than_us.store(n, Relaxed),
                    Assign::Encoding(i, n) => sh.db.encodings.set(i, n),
                    Assign::NotifyFlags(f) => sh.notify.set_flags(f),
                    Assign::OutputBufferLimits(l) => sh.pubsub.set_limits(l),
                    Assign::BusyReplyThreshold(ms) => sh.running.set_threshold_ms(ms),
                    Assign::LatencyThreshold(ms) => sh.latency.threshold_ms.store(ms, Relaxed),
                    Assign::Param(p, v) => sh.params.set(p, v),
                    Assign::SlowlogMaxLen(n) => {
                        sh.slowlog.max_len.store(n, Relaxed);
                        sh.slowlog.trim();
                    }
                }
            }
            // Lowering maxmemory takes effect now, not at the next write.
            let _ = sh.db.make_room(s.now);
            Ok(Reply::Ok)
        }
        CommandId::ConfigResetstat => {
            let st = &s.shared.stats;
            for c in [
                &st.total_commands,
                &st.keyspace_hits,
                &st.keyspace_misses,
                &st.conns.rejected,
            ] {
                c.store(0, Relaxed);
            }
            for c in [
                &st.conns.net_input_bytes,
                &st.conns.net_output_bytes,
                &st.conns.received,
            ] {
                c.store(0, Relaxed);
            }
            s.shared.db.stats.expired_keys.store(0, Relaxed);
            s.shared.db.stats.evicted_keys.store(0, Relaxed);
            s.shared.commands.reset();
            s.shared.errors.reset();
            Ok(Reply::Ok)
        }
        _ => Ok(help(
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        )),
    }
}

// ---- SLOWLOG ----

/// SLOWLOG GET [count] | LEN | RESET | HELP. An entry is `[id, unix time, microseconds,
/// [args], client address, client name]`, as in Redis.
pub fn slowlog(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let log = &s.shared.slowlog;
    match id {
        CommandId::SlowlogGet => {
            let count = match a.len() {
                2 => Some(10),
                3 => match parse_i64(a.get(2)) {
                    Ok(-1) => None,
                    Ok(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    _ => {
                        return Err(CmdError::err("count should be greater than or equal to -1"));
                    }
                },
                _ => {
                    return Err(CmdError::from(CommandError::WrongArity(
                        "slowlog|get".into(),
                    )));
                }
            };
            Ok(Reply::Array(log.newest(count, |e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time as i64),
                    Reply::Int(i64::try_from(e.micros).unwrap_or(i64::MAX)),
                    Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                    Reply::str(&e.addr.to_string()),
                    Reply::Bulk(e.name.clone()),
                ])
            })))
        }
        CommandId::SlowlogLen => Ok(Reply::Int(log.len() as i64)),
        CommandId::SlowlogReset => {
            log.reset();
            Ok(Reply::Ok)
        }
        _ => Ok(help(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        )),
    }
}

// ---- the rest ----

pub fn flush(s: &mut Session, a: &Args) -> CmdResult {
    match a.len() {
        1 => {}
        2 if eq(a.get(1), "async") || eq(a.get(1), "sync") => {}
        _ => return Err(CmdError::Syntax),
    }
    let shared = &s.shared;
    // No transaction sees half a flush (inside EXEC the transaction's own gates are held).
    let _gates = (!s.tx.in_exec()).then(|| shared.gates().exclusive_all());
    shared
        .watches
        .touch_existing(|k| shared.db.has_key(k, s.now));
    shared.db.flush();
    Ok(Reply::Ok)
}

pub fn time() -> CmdResult {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(d.as_secs().to_string())),
        Reply::Bulk(Bytes::from(d.subsec_micros().to_string())),
    ]))
}

pub fn shutdown(s: &mut Session, a: &Args) -> CmdResult {
    for w in a.slice(1) {
        if !["nosave", "save", "now", "force", "abort"]
            .iter()
            .any(|o| eq(w, o))
        {
            return Err(CmdError::Syntax);
        }
        if eq(w, "abort") {
            return Err(CmdError::err("No shutdown in progress."));
        }
    }
    tracing::info!(client = s.handle.id, "SHUTDOWN requested by client");
    s.shared.shutdown.cancel();
    s.close_after_reply = true;
    Ok(Reply::Ok)
}
