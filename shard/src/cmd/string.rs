//! String commands.

use bytes::{Bytes, BytesMut};

use super::args::{eq, long_double, owned, parse_i64, strict_i64};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply, format_double};
use crate::store::{Entry, SlotMap, Value};
use membership::resp::CommandError;

/// A TTL option as SET and GETEX take it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Leave as the command's default (SET clears, GETEX keeps).
    Unset,
    /// Absolute Unix ms.
    At(u64),
    Keep,
    Persist,
}

/// Parses the value after EX/PX/EXAT/PXAT into an absolute Unix ms time.
pub fn expire_at(unit: &[u8], arg: &[u8], now: u64, cmd: &'static str) -> Result<u64, CmdError> {
    let v = parse_i64(arg)?;
    if v <= 0 {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let ms = if eq(unit, "ex") || eq(unit, "exat") {
        v.checked_mul(1000)
    } else {
        Some(v)
    };
    let relative = eq(unit, "ex") || eq(unit, "px");
    let ms = ms.and_then(|ms| {
        if relative {
            ms.checked_add(now as i64)
        } else {
            Some(ms)
        }
    });
    ms.map(|ms| ms as u64).ok_or(CmdError::InvalidExpire(cmd))
}

/// Parses trailing EX/PX/EXAT/PXAT/KEEPTTL/PERSIST options starting at `i`; `other` handles the
/// command's own flags (returning false for an unknown word).
fn parse_ttl_opts(
    a: &Args,
    mut i: usize,
    now: u64,
    cmd: &'static str,
    allow: &[&str],
    mut other: impl FnMut(&[u8]) -> Result<bool, CmdError>,
) -> Result<Ttl, CmdError> {
    let mut ttl = Ttl::Unset;
    while i < a.len() {
        let w = a.get(i);
        if ["ex", "px", "exat", "pxat"].iter().any(|u| eq(w, u)) {
            if ttl != Ttl::Unset || i + 1 >= a.len() {
                return Err(CmdError::Syntax);
            }
            ttl = Ttl::At(expire_at(w, a.get(i + 1), now, cmd)?);
            i += 2;
            continue;
        }
        if allow.iter().any(|o| eq(w, o)) {
            if ttl != Ttl::Unset {
                return Err(CmdError::Syntax);
            }
            ttl = if eq(w, "keepttl") {
                Ttl::Keep
            } else {
                Ttl::Persist
            };
        } else if !other(w)? {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(ttl)
}

/// Stores a value; an expiry already in the past deletes the key instead (as Redis does).
pub fn put(t: &mut SlotMap, key: &Bytes, value: Value, expire_at: u64, now: u64) {
    if expire_at != 0 && expire_at <= now {
        t.remove(key);
    } else {
        t.insert(key, Entry::new(value, expire_at, now));
    }
}

/// The string at `key`: `Ok(None)` if absent, WRONGTYPE if another type.
fn get_str(t: &mut SlotMap, key: &[u8], now: u64) -> Result<Option<Bytes>, CmdError> {
    match t.lookup(key, now) {
        None => Ok(None),
        Some(Entry {
            value: Value::Str(b),
            ..
        }) => Ok(Some(share(b))),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// A reply's copy of a stored value. Small values are copied: a fresh thread-local allocation
/// is cheaper than touching the stored buffer's shared reference count (another cache miss,
/// and an atomic operation that two cores contend on for hot keys). Large values share.
pub fn share(b: &Bytes) -> Bytes {
    if b.len() <= 4096 {
        Bytes::copy_from_slice(b)
    } else {
        b.clone()
    }
}

pub fn get(s: &mut Session, a: &Args) -> CmdResult {
    let v = get_str(&mut s.shared.db.for_key(a.get(1)), a.get(1), s.now)?;
    s.hit(v.is_some());
    Ok(Reply::opt_bulk(v))
}

pub fn set(s: &mut Session, a: &Args) -> CmdResult {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let ttl = parse_ttl_opts(a, 3, s.now, "set", &["keepttl"], |w| {
        if eq(w, "nx") && !xx {
            nx = true;
        } else if eq(w, "xx") && !nx {
            xx = true;
        } else if eq(w, "get") {
            get = true;
        } else {
            return Ok(false);
        }
        Ok(true)
    })?;
    let key = a.bytes(1);
    let mut t = s.shared.db.for_key(&key);
    let old = t
        .lookup(&key, s.now)
        .map(|e| (e.value.clone(), e.expire_at()));
    let old_str = match &old {
        Some((Value::Str(b), _)) => Some(b.clone()),
        Some(_) if get => return Err(CmdError::WrongType),
        _ => None,
    };
    let reply = if get {
        Reply::opt_bulk(old_str)
    } else {
        Reply::Ok
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return Ok(if get { reply } else { Reply::Nil });
    }
    let expire = match ttl {
        Ttl::At(at) => at,
        Ttl::Keep => old.map_or(0, |(_, e)| e),
        Ttl::Unset | Ttl::Persist => 0,
    };
    put(&mut t, &key, Value::Str(owned(&a.bytes(2))), expire, s.now);
    Ok(reply)
}

pub fn setnx(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.bytes(1);
    let mut t = s.shared.db.for_key(&key);
    if t.contains(&key, s.now) {
        return Ok(Reply::Int(0));
    }
    put(&mut t, &key, Value::Str(owned(&a.bytes(2))), 0, s.now);
    Ok(Reply::Int(1))
}

pub fn setex(s: &mut Session, a: &Args, millis: bool) -> CmdResult {
    let (unit, cmd) = if millis {
        ("px", "psetex")
    } else {
        ("ex", "setex")
    };
    let at = expire_at(unit.as_bytes(), a.get(2), s.now, cmd)?;
    let key = a.bytes(1);
    put(
        &mut s.shared.db.for_key(&key),
        &key,
        Value::Str(owned(&a.bytes(3))),
        at,
        s.now,
    );
    Ok(Reply::Ok)
}

pub fn getset(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.bytes(1);
    let mut t = s.shared.db.for_key(&key);
    let old = get_str(&mut t, &key, s.now)?;
    put(&mut t, &key, Value::Str(owned(&a.bytes(2))), 0, s.now);
    Ok(Reply::opt_bulk(old))
}

pub fn getdel(s: &mut Session, a: &Args) -> CmdResult {
    let mut t = s.shared.db.for_key(a.get(1));
    let old = get_str(&mut t, a.get(1), s.now)?;
    if old.is_some() {
        t.remove(a.get(1));
    }
    drop(t);
    s.hit(old.is_some());
    Ok(Reply::opt_bulk(old))
}

pub fn getex(s: &mut Session, a: &Args) -> CmdResult {
    let ttl = parse_ttl_opts(a, 2, s.now, "getex", &["persist"], |_| Ok(false))?;
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let v = get_str(&mut t, key, s.now)?;
    if v.is_some() {
        match ttl {
            Ttl::At(at) if at <= s.now => {
                t.remove(key);
            }
            Ttl::At(at) => {
                t.set_expire(key, at);
            }
            Ttl::Persist => {
                t.set_expire(key, 0);
            }
            Ttl::Unset | Ttl::Keep => {}
        }
    }
    drop(t);
    s.hit(v.is_some());
    Ok(Reply::opt_bulk(v))
}

pub fn mget(s: &mut Session, a: &Args) -> CmdResult {
    let keys = a.slice(1);
    let mut g = s.shared.db.lock_keys(keys.iter());
    let mut out = Vec::with_capacity(keys.len());
    let (mut hits, mut misses) = (0, 0);
    for k in keys {
        match g.table(k).lookup(k, s.now) {
            Some(Entry {
                value: Value::Str(b),
                ..
            }) => {
                hits += 1;
                out.push(Reply::Bulk(b.clone()));
            }
            _ => {
                misses += 1;
                out.push(Reply::Nil);
            }
        }
    }
    drop(g);
    (0..hits).for_each(|_| s.hit(true));
    (0..misses).for_each(|_| s.hit(false));
    Ok(Reply::Array(out))
}

pub fn mset(s: &mut Session, a: &Args, nx: bool) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Err(CmdError::from(CommandError::WrongArity(
            if nx { "msetnx" } else { "mset" }.into(),
        )));
    }
    let pairs = a.slice(1);
    let mut g = s.shared.db.lock_keys(pairs.iter().step_by(2));
    if nx
        && pairs
            .iter()
            .step_by(2)
            .any(|k| g.table(k).contains(k, s.now))
    {
        return Ok(Reply::Int(0));
    }
    for kv in pairs.chunks_exact(2) {
        put(g.table(&kv[0]), &kv[0], Value::Str(owned(&kv[1])), 0, s.now);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

/// Replaces a string's value while keeping its TTL (INCR, APPEND, SETRANGE do not touch TTLs).
fn replace_keep_ttl(t: &mut SlotMap, key: &[u8], value: Bytes, now: u64) {
    let expire = t.peek(key, now).map_or(0, |e| e.expire_at());
    put(
        t,
        &Bytes::copy_from_slice(key),
        Value::Str(value),
        expire,
        now,
    );
}

pub fn incr_by(s: &mut Session, key: &[u8], by: i64) -> CmdResult {
    let mut t = s.shared.db.for_key(key);
    let cur = match get_str(&mut t, key, s.now)? {
        None => 0,
        Some(b) => strict_i64(&b).ok_or(CmdError::NotInteger)?,
    };
    let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    let mut buf = itoa::Buffer::new();
    replace_keep_ttl(
        &mut t,
        key,
        Bytes::copy_from_slice(buf.format(new).as_bytes()),
        s.now,
    );
    Ok(Reply::Int(new))
}

pub fn incr_by_float(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    // Redis's order: the key's type, its value, then the increment (infinities parse, and
    // their sum is refused below, as Redis's `string2ld` and check do).
    let mut t = s.shared.db.for_key(key);
    let cur = match get_str(&mut t, key, s.now)? {
        None => 0.0,
        Some(b) => long_double(&b).ok_or(CmdError::NotFloat)?,
    };
    let by = long_double(a.get(2)).ok_or(CmdError::NotFloat)?;
    let new = cur + by;
    if !new.is_finite() {
        return Err(CmdError::NanOrInfinity);
    }
    let text = Bytes::from(format_double(new));
    replace_keep_ttl(&mut t, key, text.clone(), s.now);
    Ok(Reply::Bulk(text))
}

pub fn append(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let cur = get_str(&mut t, key, s.now)?.unwrap_or_default();
    let total = cur.len() + a.get(2).len();
    if total as u64 > s.shared.config.proto_max_bulk_len {
        return Err(CmdError::StringTooLong);
    }
    let mut v = BytesMut::with_capacity(total);
    v.extend_from_slice(&cur);
    v.extend_from_slice(a.get(2));
    replace_keep_ttl(&mut t, key, v.freeze(), s.now);
    Ok(Reply::Int(total as i64))
}

pub fn strlen(s: &mut Session, a: &Args) -> CmdResult {
    let v = get_str(&mut s.shared.db.for_key(a.get(1)), a.get(1), s.now)?;
    Ok(Reply::Int(v.map_or(0, |b| b.len() as i64)))
}

pub fn getrange(s: &mut Session, a: &Args) -> CmdResult {
    let (start, end) = (parse_i64(a.get(2))?, parse_i64(a.get(3))?);
    let v = get_str(&mut s.shared.db.for_key(a.get(1)), a.get(1), s.now)?.unwrap_or_default();
    let len = v.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (norm(start), norm(end).min(len - 1));
    if start > end {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    Ok(Reply::Bulk(v.slice(start as usize..=end as usize)))
}

pub fn setrange(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    let offset = parse_i64(a.get(2))?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let patch = a.get(3);
    let mut t = s.shared.db.for_key(key);
    let cur = get_str(&mut t, key, s.now)?;
    if patch.is_empty() {
        return Ok(Reply::Int(cur.map_or(0, |c| c.len() as i64)));
    }
    let offset = offset as u64;
    if offset + patch.len() as u64 > s.shared.config.proto_max_bulk_len {
        return Err(CmdError::StringTooLong);
    }
    let cur = cur.unwrap_or_default();
    let (offset, total) = (
        offset as usize,
        (offset as usize + patch.len()).max(cur.len()),
    );
    let mut v = BytesMut::zeroed(total);
    v[..cur.len()].copy_from_slice(&cur);
    v[offset..offset + patch.len()].copy_from_slice(patch);
    replace_keep_ttl(&mut t, key, v.freeze(), s.now);
    Ok(Reply::Int(total as i64))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: Redis 7.0's dynamic programme,
/// its ranges emitted as `t_string.c` walks back (a match that does not extend the current
/// range closes that range and starts none), and its limits and texts.
pub fn lcs(s: &mut Session, a: &Args) -> CmdResult {
    let (ka, kb) = (a.get(1), a.get(2));
    let mut g = s.shared.db.lock_keys([ka, kb].into_iter());
    let mut read = |k: &[u8]| match g.table(k).lookup(k, s.now) {
        None => Ok(Bytes::new()),
        Some(Entry {
            value: Value::Str(b),
            ..
        }) => Ok(b.clone()),
        Some(_) => Err(CmdError::err(
            "The specified keys must contain string values",
        )),
    };
    let (x, y) = (read(ka), read(kb));
    drop(g);
    let (x, y) = (x?, y?);
    let (mut get_len, mut get_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut j = 3;
    while j < a.len() {
        let o = a.get(j);
        if eq(o, "idx") {
            get_idx = true;
        } else if eq(o, "len") {
            get_len = true;
        } else if eq(o, "withmatchlen") {
            with_len = true;
        } else if eq(o, "minmatchlen") && j + 1 < a.len() {
            min_len = parse_i64(a.get(j + 1))?.max(0);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if get_len && get_idx {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (n, m) = (x.len(), y.len());
    let cells = (n as u64 + 1) * (m as u64 + 1);
    if cells.saturating_mul(4) > s.shared.config.proto_max_bulk_len {
        return Err(CmdError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let w = m + 1;
    let mut t = vec![0u32; (n + 1) * w];
    for i in 1..=n {
        for k in 1..=m {
            t[i * w + k] = if x[i - 1] == y[k - 1] {
                t[(i - 1) * w + k - 1] + 1
            } else {
                t[(i - 1) * w + k].max(t[i * w + k - 1])
            };
        }
    }
    let total = t[n * w + m];
    if get_len {
        return Ok(Reply::Int(i64::from(total)));
    }
    let mut common = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let (mut i, mut k, mut left) = (n, m, total as usize);
    // The current range: (a_start, a_end, b_start, b_end); None between ranges.
    let mut range: Option<(usize, usize, usize, usize)> = None;
    while i > 0 && k > 0 {
        let mut emit = false;
        if x[i - 1] == y[k - 1] {
            common[left - 1] = x[i - 1];
            match &mut range {
                None => range = Some((i - 1, i - 1, k - 1, k - 1)),
                Some((a0, _, b0, _)) if *a0 == i && *b0 == k => {
                    *a0 -= 1;
                    *b0 -= 1;
                }
                Some(_) => emit = true,
            }
            if range.is_some_and(|(a0, _, b0, _)| a0 == 0 || b0 == 0) {
                emit = true;
            }
            left -= 1;
            i -= 1;
            k -= 1;
        } else {
            if t[(i - 1) * w + k] > t[i * w + k - 1] {
                i -= 1;
            } else {
                k -= 1;
            }
            emit = range.is_some();
        }
        if emit && let Some((a0, a1, b0, b1)) = range.take() {
            let len = (a1 - a0 + 1) as i64;
            if get_idx && (min_len == 0 || len >= min_len) {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a0 as i64), Reply::Int(a1 as i64)]),
                    Reply::Array(vec![Reply::Int(b0 as i64), Reply::Int(b1 as i64)]),
                ];
                if with_len {
                    m.push(Reply::Int(len));
                }
                matches.push(Reply::Array(m));
            }
        }
    }
    if get_idx {
        return Ok(Reply::Map(vec![
            (
                Reply::Bulk(Bytes::from_static(b"matches")),
                Reply::Array(matches),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"len")),
                Reply::Int(i64::from(total)),
            ),
        ]));
    }
    Ok(Reply::Bulk(Bytes::from(common)))
}
