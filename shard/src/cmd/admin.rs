//! Administration and introspection commands: CLIENT PAUSE / UNPAUSE / REPLY / NO-TOUCH,
//! LATENCY, MEMORY STATS / DOCTOR / MALLOC-STATS / PURGE, DEBUG SLEEP / SET-ACTIVE-EXPIRE,
//! MONITOR and CONFIG REWRITE, with Redis 7's replies and error texts.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use membership::command::CommandId;

use super::args::{eq, parse_i64};
use super::session::{ReplyMode, Session};
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use membership::resp::CommandError;

// ---- CLIENT ----

/// CLIENT PAUSE timeout [WRITE|ALL] and CLIENT UNPAUSE.
pub fn pause(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    if id == CommandId::ClientUnpause {
        s.shared.pause.unpause();
        return Ok(Reply::Ok);
    }
    if a.len() > 4 {
        return Err(CmdError::SubcommandSyntax {
            container: "CLIENT".into(),
            sub: String::from_utf8_lossy(a.get(1)).into_owned(),
        });
    }
    let all = match a.len() {
        4 if eq(a.get(3), "write") => false,
        4 if eq(a.get(3), "all") => true,
        4 => return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
        _ => true,
    };
    let ms = parse_i64(a.get(2))
        .map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let until = tokio::time::Instant::now() + Duration::from_millis(ms.unsigned_abs());
    s.shared.pause.pause(until, all);
    Ok(Reply::Ok)
}

/// CLIENT REPLY ON|OFF|SKIP: OFF and SKIP answer nothing themselves.
pub fn reply(s: &mut Session, a: &Args) -> CmdResult {
    let v = a.get(2);
    if eq(v, "on") {
        s.reply_mode = ReplyMode::On;
        Ok(Reply::Ok)
    } else if eq(v, "off") {
        s.reply_mode = ReplyMode::Off;
        Ok(Reply::Many(Vec::new()))
    } else if eq(v, "skip") {
        if s.reply_mode != ReplyMode::Off {
            s.reply_mode = ReplyMode::SkipNext;
        }
        Ok(Reply::Many(Vec::new()))
    } else {
        Err(CmdError::Syntax)
    }
}

/// CLIENT NO-TOUCH ON|OFF: while on, this client's reads leave keys' LRU/LFU data alone
/// (OBJECT IDLETIME and eviction see the key as untouched); TOUCH still touches.
pub fn no_touch(s: &mut Session, a: &Args) -> CmdResult {
    if eq(a.get(2), "on") {
        s.no_touch = true;
    } else if eq(a.get(2), "off") {
        s.no_touch = false;
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(Reply::Ok)
}

// ---- LATENCY ----

pub fn latency(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let mon = &s.shared.latency;
    match id {
        CommandId::LatencyLatest => Ok(Reply::Array(
            mon.latest()
                .into_iter()
                .map(|(event, time, ms, max)| {
                    Reply::Array(vec![
                        Reply::Bulk(Bytes::from_static(event.as_bytes())),
                        Reply::Int(time as i64),
                        Reply::Int(ms as i64),
                        Reply::Int(max as i64),
                    ])
                })
                .collect(),
        )),
        CommandId::LatencyHistory => Ok(Reply::Array(
            mon.history(a.get(2))
                .into_iter()
                .map(|(t, ms)| Reply::Array(vec![Reply::Int(t as i64), Reply::Int(ms as i64)]))
                .collect(),
        )),
        CommandId::LatencyReset => {
            let events: Vec<&[u8]> = a.slice(2).iter().map(|b| &b[..]).collect();
            Ok(Reply::Int(mon.reset(&events) as i64))
        }
        CommandId::LatencyDoctor => Ok(Reply::Verbatim(mon.doctor())),
        _ => Ok(super::server::help(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
            ],
        )),
    }
}

// ---- MEMORY ----

pub fn memory(s: &mut Session, id: CommandId) -> CmdResult {
    let db = &s.shared.db;
    let used = db.used_memory() as u64;
    match id {
        CommandId::MemoryStats => {
            let keys = db.len() as u64;
            let rss = super::server::rss_bytes();
            let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
            let pct = |n: u64, of: u64| {
                Reply::Double(if of == 0 {
                    0.0
                } else {
                    n as f64 * 100.0 / of as f64
                })
            };
            let pairs: Vec<(&str, Reply)> = vec![
                ("peak.allocated", int(used)),
                ("total.allocated", int(used)),
                ("startup.allocated", int(0)),
                ("replication.backlog", int(0)),
                ("clients.slaves", int(0)),
                ("clients.normal", int(0)),
                ("cluster.links", int(0)),
                ("aof.buffer", int(0)),
                ("lua.caches", int(0)),
                ("functions.caches", int(0)),
                (
                    "db.0",
                    Reply::Map(vec![
                        (Reply::str("overhead.hashtable.main"), int(0)),
                        (Reply::str("overhead.hashtable.expires"), int(0)),
                    ]),
                ),
                ("overhead.total", int(0)),
                ("keys.count", int(keys)),
                (
                    "keys.bytes-per-key",
                    int(used.checked_div(keys).unwrap_or(0)),
                ),
                ("dataset.bytes", int(used)),
                ("dataset.percentage", pct(used, used)),
                ("peak.percentage", pct(used, used)),
                ("allocator.resident", int(rss)),
                ("rss-overhead.bytes", int(rss.saturating_sub(used))),
                (
                    "fragmentation",
                    Reply::Double(if used == 0 {
                        0.0
                    } else {
                        rss as f64 / used as f64
                    }),
                ),
                ("fragmentation.bytes", int(rss.saturating_sub(used))),
                ("warm.keys", int(db.warm_len() as u64)),
                ("warm.bytes", int(db.warm_memory() as u64)),
            ];
            Ok(Reply::Map(
                pairs.into_iter().map(|(k, v)| (Reply::str(k), v)).collect(),
            ))
        }
        CommandId::MemoryDoctor => Ok(Reply::Verbatim(if used < 5 << 20 {
            "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into()
        } else {
            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into()
        })),
        // Redis's reply when it is not built with jemalloc (this server uses the system one).
        CommandId::MemoryMallocStats => {
            Ok(Reply::str("Stats not supported for the current allocator"))
        }
        CommandId::MemoryPurge => Ok(Reply::Ok),
        _ => Ok(super::server::help(
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        )),
    }
}

// ---- DEBUG ----

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try DEBUG HELP.`:
/// DEBUG is one command in Redis, so a wrong subcommand and a wrong count get this one text.
pub fn debug_syntax(a: &Args) -> CmdError {
    CmdError::SubcommandSyntax {
        container: "DEBUG".into(),
        sub: String::from_utf8_lossy(a.get(1)).into_owned(),
    }
}

pub fn debug(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    match id {
        CommandId::DebugSleep => {
            // Redis parses with strtod and no error: junk sleeps 0.
            let secs = std::str::from_utf8(a.get(2))
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f > 0.0)
                .unwrap_or(0.0)
                .min(3600.0);
            sleep_blocking(Duration::from_secs_f64(secs));
            Ok(Reply::Ok)
        }
        _ => {
            // SET-ACTIVE-EXPIRE: Redis's atoi, so anything not a non-zero number means off.
            let on = std::str::from_utf8(a.get(2))
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|n| n != 0);
            s.shared.active_expire.store(on, Relaxed);
            Ok(Reply::Ok)
        }
    }
}

/// Blocks the calling worker, as DEBUG SLEEP blocks Redis (on a multi-threaded runtime the
/// other workers go on serving).
fn sleep_blocking(d: Duration) {
    if d.is_zero() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| std::thread::sleep(d));
        }
        _ => std::thread::sleep(d),
    }
}

// ---- MONITOR, CONFIG REWRITE ----

pub fn monitor(s: &mut Session) -> CmdResult {
    if s.tx.in_multi() || s.tx.in_exec() {
        return Err(CmdError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    if s.monitoring {
        // Redis ignores a second MONITOR without a reply.
        return Ok(Reply::Many(Vec::new()));
    }
    s.shared.monitors.add(s.handle.pubsub.clone());
    s.monitoring = true;
    Ok(Reply::Ok)
}

/// CONFIG REWRITE: this server is configured from TOML, flags and the environment, never
/// from a redis.conf it could rewrite: Redis's answer for a server started without one.
pub fn config_rewrite() -> CmdResult {
    Err(CmdError::from(CommandError::Raw(
        "ERR The server is running without a config file".into(),
    )))
}
