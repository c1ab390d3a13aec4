//! Generic keyspace commands: DEL, EXISTS, TTLs, TYPE, RENAME, SCAN, OBJECT.

use bytes::Bytes;
use membership::command::{CommandId, CommandSpec};

use super::args::{eq, parse_i64};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Entry, ScanFilter};

pub fn del(s: &mut Session, a: &Args) -> CmdResult {
    let keys = a.slice(1);
    let mut g = s.shared.db.lock_keys(keys.iter());
    let n = keys
        .iter()
        .filter(|k| g.table(k).peek(k, s.now).is_some() && g.table(k).remove(k).is_some())
        .count();
    Ok(Reply::Int(n as i64))
}

pub fn exists(s: &mut Session, a: &Args, touch: bool) -> CmdResult {
    let keys = a.slice(1);
    let mut g = s.shared.db.lock_keys(keys.iter());
    let n = keys
        .iter()
        .filter(|k| {
            if touch {
                g.table(k).lookup(k, s.now).is_some()
            } else {
                g.table(k).contains(k, s.now)
            }
        })
        .count();
    Ok(Reply::Int(n as i64))
}

pub fn expire(s: &mut Session, spec: &CommandSpec, a: &Args) -> CmdResult {
    let v = parse_i64(a.get(2))?;
    let invalid = CmdError::InvalidExpire(spec.name);
    let when = match spec.id {
        CommandId::Expire => v
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(s.now as i64)),
        CommandId::Pexpire => v.checked_add(s.now as i64),
        CommandId::Expireat => v.checked_mul(1000),
        _ => Some(v),
    }
    .ok_or(invalid)?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for w in a.slice(3) {
        match w.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(CmdError::err(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(w)
                )));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let Some(cur) = t.peek(key, s.now).map(|e| e.expire_at()) else {
        return Ok(Reply::Int(0));
    };
    let when_ms = when.max(0) as u64;
    // No TTL counts as an infinite one for GT/LT.
    let refused = (nx && cur != 0)
        || (xx && cur == 0)
        || (gt && (cur == 0 || when_ms <= cur))
        || (lt && cur != 0 && when_ms >= cur);
    if refused {
        return Ok(Reply::Int(0));
    }
    if when <= s.now as i64 {
        t.remove(key);
    } else {
        t.set_expire(key, when_ms);
    }
    Ok(Reply::Int(1))
}

pub fn ttl(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let Some(at) = s
        .shared
        .db
        .for_key(a.get(1))
        .peek(a.get(1), s.now)
        .map(|e| e.expire_at())
    else {
        return Ok(Reply::Int(-2));
    };
    if at == 0 {
        return Ok(Reply::Int(-1));
    }
    let left = at.saturating_sub(s.now);
    Ok(Reply::Int(match id {
        CommandId::Ttl => (left + 500) / 1000,
        CommandId::Pttl => left,
        CommandId::Expiretime => at / 1000,
        _ => at,
    } as i64))
}

pub fn persist(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let had = t.peek(key, s.now).is_some_and(|e| e.expire_at() != 0);
    if had {
        t.set_expire(key, 0);
    }
    Ok(Reply::Int(i64::from(had)))
}

pub fn type_(s: &mut Session, a: &Args) -> CmdResult {
    let mut t = s.shared.db.for_key(a.get(1));
    Ok(Reply::Simple(
        t.peek(a.get(1), s.now)
            .map_or("none", |e| e.value.type_name()),
    ))
}

pub fn rename(s: &mut Session, a: &Args, nx: bool) -> CmdResult {
    let (src, dst) = (a.bytes(1), a.bytes(2));
    let mut g = s.shared.db.lock_keys([&src, &dst].into_iter());
    if !g.table(&src).contains(&src, s.now) {
        return Err(CmdError::NoSuchKey);
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::Ok });
    }
    if nx && g.table(&dst).contains(&dst, s.now) {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = g.table(&src).remove(&src) else {
        return Err(CmdError::NoSuchKey);
    };
    g.table(&dst).insert(&dst, entry);
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

/// COPY source destination [DB 0] [REPLACE]: the value and its expiry, as Redis 7 checks them
/// (one database here: `DB` other than 0 is out of range).
pub fn copy(s: &mut Session, a: &Args) -> CmdResult {
    let mut replace = false;
    let mut other_db = false;
    let mut j = 3;
    while j < a.len() {
        if eq(a.get(j), "replace") {
            replace = true;
        } else if eq(a.get(j), "db") && j + 1 < a.len() {
            // Redis's 16 databases exist in name: 1 to 15 are refused below, as Redis
            // Cluster refuses them, after the rest of the options are read.
            match super::args::strict_i64(a.get(j + 1)) {
                Some(0) => {}
                Some(1..=15) => other_db = true,
                Some(_) => return Err(CmdError::err("DB index is out of range")),
                None => return Err(CmdError::NotInteger),
            }
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if other_db {
        return Err(CmdError::err(
            "Copying to another database is not allowed in cluster mode",
        ));
    }
    let (src, dst) = (a.get(1), a.get(2));
    if src == dst {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let mut g = s.shared.db.lock_keys([src, dst].into_iter());
    let Some(entry) = g.table(src).lookup(src, s.now) else {
        return Ok(Reply::Int(0));
    };
    let (value, expire_at) = (entry.value.clone(), entry.expire_at());
    let t = g.table(dst);
    if t.contains(dst, s.now) {
        if !replace {
            return Ok(Reply::Int(0));
        }
        t.remove(dst);
    }
    t.insert(dst, Entry::new(value, expire_at, s.now));
    Ok(Reply::Int(1))
}

/// Parses a SCAN/HSCAN cursor: any unsigned 64-bit decimal.
pub fn parse_cursor(b: &[u8]) -> Result<u64, CmdError> {
    std::str::from_utf8(b)
        .ok()
        .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| CmdError::err("invalid cursor"))
}

/// SCAN options: MATCH pattern (None for `*`), COUNT, TYPE.
pub struct ScanOpts<'a> {
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
    pub type_name: Option<String>,
}

/// MATCH / COUNT (/ TYPE when `with_type`) options from index `i`.
pub fn scan_opts(a: &Args, mut i: usize, with_type: bool) -> Result<ScanOpts<'_>, CmdError> {
    let (mut pattern, mut count, mut ty) = (None, 10usize, None);
    while i < a.len() {
        let w = a.get(i);
        if i + 1 >= a.len() {
            return Err(CmdError::Syntax);
        }
        if eq(w, "match") {
            pattern = Some(a.get(i + 1)).filter(|p| *p != b"*");
        } else if eq(w, "count") {
            let n = parse_i64(a.get(i + 1))?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n.min(1 << 20) as usize;
        } else if with_type && eq(w, "type") {
            ty = Some(String::from_utf8_lossy(a.get(i + 1)).into_owned());
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    Ok(ScanOpts {
        pattern,
        count,
        type_name: ty,
    })
}

pub fn scan(s: &mut Session, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(1))?;
    let opts = scan_opts(a, 2, true)?;
    let filter = ScanFilter {
        pattern: opts.pattern,
        type_name: opts.type_name.as_deref(),
    };
    let (next, keys) = s.shared.db.scan(cursor, opts.count, &filter, s.now);
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ]))
}

pub fn object(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    if id == CommandId::ObjectHelp {
        return Ok(super::server::help(
            "OBJECT",
            &[
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
            ],
        ));
    }
    let key = a.get(2);
    let mut t = s.shared.db.for_key(key);
    let Some(e) = t.peek(key, s.now) else {
        return Ok(Reply::Nil);
    };
    Ok(match id {
        // A bulk string, as Redis's `addReplyBulkCString`.
        CommandId::ObjectEncoding => Reply::Bulk(Bytes::from_static(
            e.value.encoding(&s.shared.db.encodings.get()).as_bytes(),
        )),
        CommandId::ObjectFreq => Reply::Int(i64::from(e.freq(s.now))),
        CommandId::ObjectIdletime => Reply::Int((e.idle_ms(s.now) / 1000) as i64),
        _ => Reply::Int(1),
    })
}

/// MEMORY USAGE <key> [SAMPLES <count>]: the bytes the store charges for the key (key, value
/// and per-entry overhead), exact, so SAMPLES is validated and otherwise ignored.
pub fn memory(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    if id == CommandId::MemoryHelp {
        return Ok(super::server::help(
            "MEMORY",
            &[
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        ));
    }
    match a.len() {
        3 => {}
        5 if eq(a.get(3), "samples") => {
            if parse_i64(a.get(4))? < 0 {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    }
    let key = a.get(2);
    let mut t = s.shared.db.for_key(key);
    Ok(match t.peek(key, s.now) {
        Some(e) => Reply::Int(e.memory_usage(key) as i64),
        None => Reply::Nil,
    })
}

/// DEBUG OBJECT <key>, in Redis's format. The store has no stable object address, so `Value
/// at` is 0; `serializedlength` is the value's payload size.
pub fn debug(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    if id == CommandId::DebugHelp {
        return Ok(super::server::help(
            "DEBUG",
            &[
                "OBJECT <key>",
                "    Show low level info about the <key> and associated value.",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not",
                "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                "    default.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
            ],
        ));
    }
    let key = a.get(2);
    let mut t = s.shared.db.for_key(key);
    let Some(e) = t.peek(key, s.now) else {
        return Err(CmdError::err("no such key"));
    };
    let idle_secs = e.idle_ms(s.now) / 1000;
    // Redis's LRU clock: seconds, 24 bits.
    let lru = (s.now / 1000).saturating_sub(idle_secs) & 0xFF_FFFF;
    Ok(Reply::Status(format!(
        "Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:{lru} lru_seconds_idle:{idle_secs}",
        e.value.encoding(&s.shared.db.encodings.get()),
        e.value.payload_bytes(),
    )))
}
