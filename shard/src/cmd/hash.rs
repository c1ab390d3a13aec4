//! Hash commands.

use bytes::Bytes;
use membership::command::CommandId;

use super::args::{eq, long_double, parse_i64, strict_i64};
use super::key::{parse_cursor, scan_opts};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Proto, Reply, format_double};
use crate::store::{Entry, HashValue, SlotMap, Value, scan_fields};
use crate::value::hash::Small;
use membership::resp::CommandError;

/// Runs `f` on the hash at `key`, creating it if absent (for writes).
fn with_hash_mut<R>(
    s: &Session,
    key: &[u8],
    f: impl FnOnce(&mut HashValue) -> Result<R, CmdError>,
) -> Result<R, CmdError> {
    let mut t = s.shared.db.for_key(key);
    if !t.contains(key, s.now) {
        t.insert(key, Entry::new(Value::Hash(HashValue::default()), 0, s.now));
    }
    t.update(key, s.now, |v| match v {
        Value::Hash(h) => f(h),
        _ => Err(CmdError::WrongType),
    })
    .unwrap_or(Err(CmdError::WrongType))
}

/// Reads the hash at `key`: `Ok(None)` when absent.
fn with_hash<R>(
    t: &mut SlotMap,
    key: &[u8],
    now: u64,
    f: impl FnOnce(&HashValue) -> R,
) -> Result<Option<R>, CmdError> {
    match t.lookup(key, now) {
        None => Ok(None),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => Ok(Some(f(h))),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn read<R>(
    s: &Session,
    key: &[u8],
    f: impl FnOnce(&HashValue) -> R,
) -> Result<Option<R>, CmdError> {
    with_hash(&mut s.shared.db.for_key(key), key, s.now, f)
}

pub fn hset(s: &mut Session, a: &Args, legacy: bool) -> CmdResult {
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::from(CommandError::WrongArity(
            if legacy { "hmset" } else { "hset" }.into(),
        )));
    }
    let pairs = a.slice(2);
    let small = Small::of(&s.shared.db.encodings.get());
    let added = with_hash_mut(s, a.get(1), |h| {
        h.reserve(
            pairs.chunks_exact(2).map(|fv| (&fv[0][..], &fv[1][..])),
            small,
        );
        Ok(pairs
            .chunks_exact(2)
            .filter(|fv| h.insert_within(&fv[0], &fv[1], small))
            .count())
    })?;
    Ok(if legacy {
        Reply::Ok
    } else {
        Reply::Int(added as i64)
    })
}

pub fn hsetnx(s: &mut Session, a: &Args) -> CmdResult {
    let (f, v) = (a.get(2), a.get(3));
    let small = Small::of(&s.shared.db.encodings.get());
    let set = with_hash_mut(s, a.get(1), |h| {
        if h.contains_key(f) {
            return Ok(false);
        }
        h.insert_within(f, v, small);
        Ok(true)
    })?;
    Ok(Reply::Int(i64::from(set)))
}

pub fn hget(s: &mut Session, a: &Args) -> CmdResult {
    let v = read(s, a.get(1), |h| h.get(a.get(2)).map(Bytes::copy_from_slice))?.flatten();
    s.hit(v.is_some());
    Ok(Reply::opt_bulk(v))
}

pub fn hmget(s: &mut Session, a: &Args) -> CmdResult {
    let fields = a.slice(2);
    let vals = read(s, a.get(1), |h| {
        fields
            .iter()
            .map(|f| Reply::opt_bulk(h.get(f).map(Bytes::copy_from_slice)))
            .collect()
    })?;
    Ok(Reply::Array(
        vals.unwrap_or_else(|| vec![Reply::Nil; fields.len()]),
    ))
}

pub fn hdel(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let n = t.update(key, s.now, |v| match v {
        Value::Hash(h) => Ok(a.slice(2).iter().filter(|f| h.remove(f)).count()),
        _ => Err(CmdError::WrongType),
    });
    Ok(Reply::Int(n.transpose()?.unwrap_or(0) as i64))
}

pub fn hexists(s: &mut Session, a: &Args) -> CmdResult {
    Ok(Reply::Int(i64::from(
        read(s, a.get(1), |h| h.contains_key(a.get(2)))?.unwrap_or(false),
    )))
}

pub fn hlen(s: &mut Session, a: &Args) -> CmdResult {
    Ok(Reply::Int(
        read(s, a.get(1), |h| h.len() as i64)?.unwrap_or(0),
    ))
}

pub fn hstrlen(s: &mut Session, a: &Args) -> CmdResult {
    Ok(Reply::Int(
        read(s, a.get(1), |h| {
            h.get(a.get(2)).map_or(0, |v| v.len() as i64)
        })?
        .unwrap_or(0),
    ))
}

pub fn hgetall(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let reply = read(s, a.get(1), |h| match id {
        CommandId::Hkeys => Reply::Array(
            h.keys()
                .map(|f| Reply::Bulk(Bytes::copy_from_slice(f)))
                .collect(),
        ),
        CommandId::Hvals => Reply::Array(
            h.values()
                .map(|v| Reply::Bulk(Bytes::copy_from_slice(v)))
                .collect(),
        ),
        _ => Reply::Map(
            h.iter()
                .map(|(f, v)| {
                    (
                        Reply::Bulk(Bytes::copy_from_slice(f)),
                        Reply::Bulk(Bytes::copy_from_slice(v)),
                    )
                })
                .collect(),
        ),
    })?;
    Ok(reply.unwrap_or_else(|| {
        if id == CommandId::Hgetall {
            Reply::Map(vec![])
        } else {
            Reply::Array(vec![])
        }
    }))
}

pub fn hincrby(s: &mut Session, a: &Args) -> CmdResult {
    let by = parse_i64(a.get(3))?;
    let f = a.get(2);
    let small = Small::of(&s.shared.db.encodings.get());
    let new = with_hash_mut(s, a.get(1), |h| {
        let cur = match h.get(f) {
            None => 0,
            Some(v) => strict_i64(v).ok_or(CmdError::HashNotInteger)?,
        };
        let new = cur.checked_add(by).ok_or(CmdError::Overflow)?;
        h.insert_within(f, itoa::Buffer::new().format(new).as_bytes(), small);
        Ok(new)
    })?;
    Ok(Reply::Int(new))
}

pub fn hincrbyfloat(s: &mut Session, a: &Args) -> CmdResult {
    let by = long_double(a.get(3)).ok_or(CmdError::NotFloat)?;
    if by.is_infinite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    let f = a.get(2);
    let small = Small::of(&s.shared.db.encodings.get());
    let new = with_hash_mut(s, a.get(1), |h| {
        let cur = match h.get(f) {
            None => 0.0,
            Some(v) => long_double(v).ok_or(CmdError::HashNotFloat)?,
        };
        let new = cur + by;
        if !new.is_finite() {
            return Err(CmdError::NanOrInfinity);
        }
        let text = Bytes::from(format_double(new));
        h.insert_within(f, &text, small);
        Ok(text)
    })?;
    Ok(Reply::Bulk(new))
}

pub fn hscan(s: &mut Session, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(2))?;
    // Redis answers an absent key, and a key of another type, before it reads the options.
    let (next, pairs) = read(s, a.get(1), |h| {
        let opts = scan_opts(a, 3, false)?;
        Ok::<_, CmdError>(scan_fields(h, cursor, opts.count, opts.pattern))
    })?
    .transpose()?
    .unwrap_or((0, vec![]));
    let flat = pairs
        .into_iter()
        .flat_map(|(f, v)| [Reply::Bulk(f), Reply::Bulk(v)])
        .collect();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(flat),
    ]))
}

pub fn hrandfield(s: &mut Session, a: &Args) -> CmdResult {
    let count = if a.len() >= 3 {
        Some(parse_i64(a.get(2))?)
    } else {
        None
    };
    let withvalues = match a.len() {
        2 | 3 => false,
        4 if eq(a.get(3), "withvalues") => true,
        _ => return Err(CmdError::Syntax),
    };
    if count.is_some_and(|c| c.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err(CmdError::OutOfRange);
    }
    let proto = s.proto;
    let reply = read(s, a.get(1), |h| {
        if h.is_empty() {
            return Reply::Nil;
        }
        let Some(count) = count else {
            // One pick: O(1) in a hashtable (an index into its entries).
            return h
                .nth(fastrand::usize(..h.len()))
                .map_or(Reply::Nil, |(f, _)| Reply::Bulk(Bytes::copy_from_slice(f)));
        };
        let fields: Vec<(&[u8], &[u8])> = h.iter().collect();
        let picks: Vec<(&[u8], &[u8])> = if count >= 0 {
            // Distinct fields: a random subset in random order.
            let mut all = fields;
            fastrand::shuffle(&mut all);
            all.truncate(count as usize);
            all
        } else {
            (0..count.unsigned_abs())
                .map(|_| fields[fastrand::usize(..fields.len())])
                .collect()
        };
        let pair = |(f, v): (&[u8], &[u8])| {
            let (f, v) = (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v));
            match (withvalues, proto) {
                (true, Proto::Resp3) => vec![Reply::Array(vec![
                    Reply::Bulk(f.clone()),
                    Reply::Bulk(v.clone()),
                ])],
                (true, Proto::Resp2) => vec![Reply::Bulk(f.clone()), Reply::Bulk(v.clone())],
                (false, _) => vec![Reply::Bulk(f)],
            }
        };
        Reply::Array(picks.into_iter().flat_map(pair).collect())
    })?;
    Ok(reply.unwrap_or(if count.is_some() {
        Reply::Array(vec![])
    } else {
        Reply::Nil
    }))
}
