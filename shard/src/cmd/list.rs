//! List commands (the non-blocking ones), with Redis 7's replies and error texts. Each command
//! checks its arguments in the order Redis does, so a request that is wrong in two ways gets
//! the same error from both.

use bytes::Bytes;
use membership::command::CommandId;
use membership::resp::CommandError;

use super::args::{eq, mpop_args, owned, parse_i64, ranged};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Db, Entry, ListValue, SlotMap, Value};

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Left,
    Right,
}

impl End {
    pub(super) fn parse(b: &[u8]) -> Result<End, CmdError> {
        if eq(b, "left") {
            Ok(End::Left)
        } else if eq(b, "right") {
            Ok(End::Right)
        } else {
            Err(CmdError::Syntax)
        }
    }
}

fn push(l: &mut ListValue, end: End, e: &[u8]) {
    match end {
        End::Left => l.push_front(e),
        End::Right => l.push_back(e),
    }
}

fn pop(l: &mut ListValue, end: End) -> Option<Bytes> {
    match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }
}

/// Redis's `getPositiveLongFromObjectOrReply`.
fn non_negative(b: &[u8], msg: &str) -> Result<usize, CmdError> {
    ranged(b, 0, i64::MAX, Some(msg)).map(|v| v as usize)
}

/// A list index (negative from the tail) as a position, if it is inside a list of `len`.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { index + len } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// LRANGE/LTRIM's clamping: the inclusive range `start..=stop` of a list of `len`, `None`
/// when empty.
fn clamp(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop + len } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

/// Runs `f` on the list at `key`. `Ok(None)` when absent; the store deletes the key if `f`
/// leaves the list empty.
fn update<R>(
    s: &Session,
    key: &[u8],
    f: impl FnOnce(&mut ListValue) -> R,
) -> Result<Option<R>, CmdError> {
    update_in(&s.shared.db, s.now, key, f)
}

/// [`update`] given the store and the time (a blocked client served by another's write).
fn update_in<R>(
    db: &Db,
    now: u64,
    key: &[u8],
    f: impl FnOnce(&mut ListValue) -> R,
) -> Result<Option<R>, CmdError> {
    let mut t = db.for_key(key);
    t.update(key, now, |v| match v {
        Value::List(l) => Ok(f(l)),
        _ => Err(CmdError::WrongType),
    })
    .transpose()
}

/// Reads the list at `key`: `Ok(None)` when absent.
fn read<R>(
    s: &mut Session,
    key: &[u8],
    f: impl FnOnce(&ListValue) -> R,
) -> Result<Option<R>, CmdError> {
    let r = match s.shared.db.for_key(key).lookup(key, s.now) {
        None => None,
        Some(Entry {
            value: Value::List(l),
            ..
        }) => Some(f(l)),
        Some(_) => return Err(CmdError::WrongType),
    };
    s.hit(r.is_some());
    Ok(r)
}

/// The list type of a key in a locked table: `Ok(false)` when absent.
fn is_list(t: &mut SlotMap, key: &[u8], now: u64) -> Result<bool, CmdError> {
    match t.peek(key, now) {
        None => Ok(false),
        Some(Entry {
            value: Value::List(_),
            ..
        }) => Ok(true),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// LPUSH, RPUSH, LPUSHX, RPUSHX.
pub fn push_cmd(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let end = match id {
        CommandId::Lpush | CommandId::Lpushx => End::Left,
        _ => End::Right,
    };
    let only_existing = matches!(id, CommandId::Lpushx | CommandId::Rpushx);
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    if !is_list(&mut t, key, s.now)? {
        if only_existing {
            return Ok(Reply::Int(0));
        }
        t.insert(key, Entry::new(Value::List(Box::default()), 0, s.now));
    }
    // Checked to be a list under this same lock; the type is matched again all the same.
    let len = t.update(key, s.now, |v| match v {
        Value::List(l) => {
            let elements = a.slice(2);
            l.reserve_new(
                end == End::Left,
                elements
                    .iter()
                    .map(|e| crate::value::list::entry_bytes(e))
                    .sum(),
            );
            for e in elements {
                push(l, end, e);
            }
            Ok(l.len())
        }
        _ => Err(CmdError::WrongType),
    });
    Ok(Reply::Int(len.transpose()?.unwrap_or(0) as i64))
}

/// LPOP, RPOP, with or without a count.
pub fn pop_cmd(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let end = if id == CommandId::Lpop {
        End::Left
    } else {
        End::Right
    };
    if a.len() > 3 {
        let name = if end == End::Left { "lpop" } else { "rpop" };
        return Err(CmdError::from(CommandError::WrongArity(name.into())));
    }
    let count = if a.len() == 3 {
        Some(non_negative(
            a.get(2),
            "value is out of range, must be positive",
        )?)
    } else {
        None
    };
    let popped = update(s, a.get(1), |l| match count {
        None => Reply::opt_bulk(pop(l, end)),
        Some(n) => Reply::Array(
            (0..n.min(l.len()))
                .filter_map(|_| pop(l, end).map(Reply::Bulk))
                .collect(),
        ),
    })?;
    Ok(popped.unwrap_or(if count.is_some() {
        Reply::NilArray
    } else {
        Reply::Nil
    }))
}

pub fn llen(s: &mut Session, a: &Args) -> CmdResult {
    Ok(Reply::Int(
        read(s, a.get(1), |l| l.len() as i64)?.unwrap_or(0),
    ))
}

pub fn lrange(s: &mut Session, a: &Args) -> CmdResult {
    let (start, stop) = (parse_i64(a.get(2))?, parse_i64(a.get(3))?);
    let items = read(s, a.get(1), |l| match clamp(start, stop, l.len()) {
        None => vec![],
        Some((from, to)) => bulks(l.range(from..=to)),
    })?;
    Ok(Reply::Array(items.unwrap_or_default()))
}

/// Elements as bulk replies, copied out of the list with one allocation for all of them
/// (each reply a slice of it) rather than one per element.
fn bulks<'a>(elements: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<Reply> {
    let total = elements.clone().map(<[u8]>::len).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    let mut ends = Vec::new();
    for e in elements {
        buf.extend_from_slice(e);
        ends.push(buf.len());
    }
    let all = buf.freeze();
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let r = Reply::Bulk(all.slice(start..end));
            start = end;
            r
        })
        .collect()
}

pub fn lindex(s: &mut Session, a: &Args) -> CmdResult {
    // Redis looks the key up before it parses the index.
    let index = a.get(2);
    let found = read(s, a.get(1), |l| {
        let i = parse_i64(index)?;
        Ok::<_, CmdError>(position(i, l.len()).and_then(|p| l.get(p).map(Bytes::copy_from_slice)))
    })?;
    Ok(Reply::opt_bulk(found.transpose()?.flatten()))
}

pub fn lset(s: &mut Session, a: &Args) -> CmdResult {
    let (index, element) = (a.get(2), a.bytes(3));
    update(s, a.get(1), |l| {
        let i = parse_i64(index)?;
        match position(i, l.len()) {
            Some(p) if l.set(p, owned(&element)) => Ok(Reply::Ok),
            _ => Err(CmdError::err("index out of range")),
        }
    })?
    .unwrap_or(Err(CmdError::NoSuchKey))
}

pub fn lrem(s: &mut Session, a: &Args) -> CmdResult {
    let count = parse_i64(a.get(2))?;
    let element = a.get(3);
    let removed = update(s, a.get(1), |l| {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut removed = 0;
        if count >= 0 {
            l.retain(|e| {
                let hit = removed < limit && e == element;
                removed += usize::from(hit);
                !hit
            });
        } else {
            // From the tail: the last `limit` matches, then one pass that drops them.
            let len = l.len();
            let mut doomed: Vec<usize> = l
                .iter()
                .rev()
                .enumerate()
                .filter(|(_, e)| *e == element)
                .take(limit)
                .map(|(k, _)| len - 1 - k)
                .collect();
            removed = doomed.len();
            doomed.reverse();
            let (mut i, mut next) = (0, 0);
            l.retain(|_| {
                let hit = doomed.get(next) == Some(&i);
                next += usize::from(hit);
                i += 1;
                !hit
            });
        }
        removed as i64
    })?;
    Ok(Reply::Int(removed.unwrap_or(0)))
}

pub fn ltrim(s: &mut Session, a: &Args) -> CmdResult {
    let (start, stop) = (parse_i64(a.get(2))?, parse_i64(a.get(3))?);
    update(s, a.get(1), |l| match clamp(start, stop, l.len()) {
        None => l.clear(),
        Some((from, to)) => l.keep_range(from, to),
    })?;
    Ok(Reply::Ok)
}

pub fn linsert(s: &mut Session, a: &Args) -> CmdResult {
    let after = if eq(a.get(2), "after") {
        true
    } else if eq(a.get(2), "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (pivot, element) = (a.get(3), a.bytes(4));
    let len = update(s, a.get(1), |l| match l.iter().position(|e| e == pivot) {
        None => -1,
        Some(p) => {
            l.insert(p + usize::from(after), owned(&element));
            l.len() as i64
        }
    })?;
    Ok(Reply::Int(len.unwrap_or(0)))
}

pub fn lpos(s: &mut Session, a: &Args) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut j = 3;
    while j < a.len() {
        let (opt, more) = (a.get(j), j + 1 < a.len());
        if eq(opt, "rank") && more {
            rank = ranged(a.get(j + 1), -i64::MAX, i64::MAX, None)?;
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq(opt, "count") && more {
            count = Some(non_negative(a.get(j + 1), "COUNT can't be negative")?);
        } else if eq(opt, "maxlen") && more {
            maxlen = non_negative(a.get(j + 1), "MAXLEN can't be negative")?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 2;
    }
    let element = a.get(2);
    let found = read(s, a.get(1), |l| {
        let len = l.len();
        let scan = if maxlen == 0 { len } else { maxlen.min(len) };
        // A count of 0 means every match; without COUNT, the first one.
        let want = match count {
            Some(0) => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let mut skip = rank.unsigned_abs() - 1;
        let mut hits = Vec::new();
        let walk: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
            Box::new(l.iter().take(scan).enumerate())
        } else {
            Box::new(
                l.iter()
                    .rev()
                    .take(scan)
                    .enumerate()
                    .map(|(k, e)| (len - 1 - k, e)),
            )
        };
        for (i, e) in walk {
            if hits.len() >= want {
                break;
            }
            if e == element {
                if skip > 0 {
                    skip -= 1;
                } else {
                    hits.push(i as i64);
                }
            }
        }
        hits
    })?;
    Ok(match (found, count) {
        (None, Some(_)) => Reply::Array(vec![]),
        (Some(hits), Some(_)) => Reply::Array(hits.into_iter().map(Reply::Int).collect()),
        (found, None) => found
            .and_then(|h| h.first().copied())
            .map_or(Reply::Nil, Reply::Int),
    })
}

/// LMOVE and RPOPLPUSH (`from`/`to` already parsed for the latter).
pub fn lmove(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let (from, to) = if id == CommandId::Rpoplpush {
        (End::Right, End::Left)
    } else {
        (End::parse(a.get(3))?, End::parse(a.get(4))?)
    };
    Ok(Reply::opt_bulk(move_element(
        &s.shared.db,
        s.now,
        a.get(1),
        a.get(2),
        from,
        to,
    )?))
}

/// Moves one element from `src`'s `from` end to `dst`'s `to` end: `None` when `src` is
/// absent; `WRONGTYPE` when either key holds another type.
pub(super) fn move_element(
    db: &Db,
    now: u64,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Bytes>, CmdError> {
    let mut g = db.lock_keys([src, dst].into_iter());
    if !is_list(g.table(src), src, now)? {
        return Ok(None);
    }
    let dst_exists = is_list(g.table(dst), dst, now)?;
    let moved = g.table(src).update(src, now, |v| match v {
        Value::List(l) if src == dst => {
            // Rotation: the element leaves and re-enters the same list, never emptying it.
            let e = pop(l, from);
            if let Some(e) = &e {
                push(l, to, e);
            }
            e
        }
        Value::List(l) => pop(l, from),
        _ => None,
    });
    let Some(e) = moved.flatten() else {
        return Ok(None);
    };
    if src != dst {
        let t = g.table(dst);
        if !dst_exists {
            t.insert(dst, Entry::new(Value::List(Box::default()), 0, now));
        }
        t.update(dst, now, |v| {
            if let Value::List(l) = v {
                push(l, to, &e);
            }
        });
    }
    Ok(Some(e))
}

/// Pops up to `count` elements from `key`'s `end`: `None` when the key is absent (an empty
/// list does not exist), `WRONGTYPE` for another type.
pub(super) fn pop_some(
    db: &Db,
    now: u64,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<Bytes>>, CmdError> {
    update_in(db, now, key, |l| {
        (0..count.min(l.len()))
            .filter_map(|_| pop(l, end))
            .collect()
    })
}

/// The `[key, [elements]]` reply of LMPOP and BLMPOP.
pub(super) fn mpop_reply(key: Bytes, elements: Vec<Bytes>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(key),
        Reply::Array(elements.into_iter().map(Reply::Bulk).collect()),
    ])
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: the first non-empty list's elements.
pub fn lmpop(s: &mut Session, a: &Args) -> CmdResult {
    let (keys, end, count) = parse_mpop(a, 1)?;
    for key in keys {
        if let Some(popped) = pop_some(&s.shared.db, s.now, &key, end, count)? {
            return Ok(mpop_reply(key, popped));
        }
    }
    Ok(Reply::NilArray)
}

/// `numkeys key [key ...] LEFT|RIGHT [COUNT count]` from argument `at` (LMPOP: 1, BLMPOP: 2).
pub(super) fn parse_mpop(a: &Args, at: usize) -> Result<(Vec<Bytes>, End, usize), CmdError> {
    mpop_args(a, at, End::parse)
}
