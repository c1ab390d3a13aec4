//! Set commands, with Redis 7.0's replies and error texts. Each command checks its arguments
//! and its keys' types in the order Redis's `t_set.c` does, so a request that is wrong in two
//! ways gets the same error from both.

use bytes::Bytes;
use membership::command::CommandId;

use super::args::{eq, strict_i64};
use super::key::{parse_cursor, scan_opts};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Entry, MultiGuard, SetValue, SlotMap, Value};

/// Reads the set at `key`: `Ok(None)` when absent.
fn read<R>(
    s: &mut Session,
    key: &[u8],
    f: impl FnOnce(&SetValue) -> R,
) -> Result<Option<R>, CmdError> {
    let r = lookup(&mut s.shared.db.for_key(key), key, s.now, f)?;
    s.hit(r.is_some());
    Ok(r)
}

/// The set at `key` in a locked table, counted as an access: `Ok(None)` when absent.
fn lookup<R>(
    t: &mut SlotMap,
    key: &[u8],
    now: u64,
    f: impl FnOnce(&SetValue) -> R,
) -> Result<Option<R>, CmdError> {
    match t.lookup(key, now) {
        None => Ok(None),
        Some(Entry {
            value: Value::Set(set),
            ..
        }) => Ok(Some(f(set))),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Runs `f` on the set at `key`. `Ok(None)` when absent; the store deletes the key if `f`
/// leaves the set empty.
fn update<R>(
    s: &Session,
    key: &[u8],
    f: impl FnOnce(&mut SetValue) -> R,
) -> Result<Option<R>, CmdError> {
    s.shared
        .db
        .for_key(key)
        .update(key, s.now, |v| match v {
            Value::Set(set) => Ok(f(set)),
            _ => Err(CmdError::WrongType),
        })
        .transpose()
}

/// The set type of a key in a locked table: `Ok(false)` when absent.
fn is_set(t: &mut SlotMap, key: &[u8], now: u64) -> Result<bool, CmdError> {
    match t.peek(key, now) {
        None => Ok(false),
        Some(Entry {
            value: Value::Set(_),
            ..
        }) => Ok(true),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn bulks(members: Vec<Bytes>) -> Vec<Reply> {
    members.into_iter().map(Reply::Bulk).collect()
}

pub fn sadd(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    if !is_set(&mut t, key, s.now)? {
        t.insert(key, Entry::new(Value::Set(Box::default()), 0, s.now));
    }
    let intset_max = s.shared.db.encodings.get().intset_max();
    // Checked to be a set under this same lock; the type is matched again all the same.
    let added = t.update(key, s.now, |v| match v {
        Value::Set(set) => {
            set.reserve(a.len() - 2);
            Ok(a.slice(2)
                .iter()
                .filter(|m| set.insert_within(m, intset_max))
                .count())
        }
        _ => Err(CmdError::WrongType),
    });
    Ok(Reply::Int(added.transpose()?.unwrap_or(0) as i64))
}

pub fn srem(s: &mut Session, a: &Args) -> CmdResult {
    let members = a.slice(2);
    let removed = update(s, a.get(1), |set| {
        members.iter().filter(|m| set.remove(m)).count() as i64
    })?;
    Ok(Reply::Int(removed.unwrap_or(0)))
}

pub fn smembers(s: &mut Session, a: &Args) -> CmdResult {
    let members = read(s, a.get(1), SetValue::members)?;
    Ok(Reply::Set(bulks(members.unwrap_or_default())))
}

pub fn sismember(s: &mut Session, a: &Args) -> CmdResult {
    let m = a.get(2);
    let found = read(s, a.get(1), |set| set.contains(m))?;
    Ok(Reply::Int(i64::from(found.unwrap_or(false))))
}

pub fn smismember(s: &mut Session, a: &Args) -> CmdResult {
    let members = a.slice(2);
    let found = read(s, a.get(1), |set| {
        members
            .iter()
            .map(|m| Reply::Int(i64::from(set.contains(m))))
            .collect::<Vec<_>>()
    })?;
    Ok(Reply::Array(found.unwrap_or_else(|| {
        members.iter().map(|_| Reply::Int(0)).collect()
    })))
}

pub fn scard(s: &mut Session, a: &Args) -> CmdResult {
    let n = read(s, a.get(1), SetValue::len)?;
    Ok(Reply::Int(n.unwrap_or(0) as i64))
}

pub fn spop(s: &mut Session, a: &Args) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let mut rng = fastrand::Rng::new();
    if a.len() == 2 {
        let popped = update(s, a.get(1), |set| set.pop_random(&mut rng))?;
        return Ok(Reply::opt_bulk(popped.flatten()));
    }
    let count = match strict_i64(a.get(2)) {
        Some(n) if n >= 0 => n as usize,
        _ => return Err(CmdError::err("value is out of range, must be positive")),
    };
    let popped = update(s, a.get(1), |set| {
        if count >= set.len() {
            // The whole set: the store deletes the emptied key.
            std::mem::take(set).members()
        } else {
            (0..count)
                .filter_map(|_| set.pop_random(&mut rng))
                .collect()
        }
    })?;
    Ok(Reply::Set(bulks(popped.unwrap_or_default())))
}

pub fn srandmember(s: &mut Session, a: &Args) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let mut rng = fastrand::Rng::new();
    if a.len() == 2 {
        let m = read(s, a.get(1), |set| set.random(&mut rng))?;
        return Ok(Reply::opt_bulk(m.flatten()));
    }
    let count = match strict_i64(a.get(2)) {
        None => return Err(CmdError::NotInteger),
        Some(i64::MIN) => {
            return Err(CmdError::err(format!(
                "value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            )));
        }
        Some(n) => n,
    };
    let picks = read(s, a.get(1), |set| {
        if count >= 0 {
            set.sample(count as usize, &mut rng)
        } else {
            // With repetitions: `-count` independent picks.
            (0..count.unsigned_abs())
                .filter_map(|_| set.random(&mut rng))
                .collect()
        }
    })?;
    Ok(Reply::Array(bulks(picks.unwrap_or_default())))
}

pub fn smove(s: &mut Session, a: &Args) -> CmdResult {
    let (src, dst, member) = (a.get(1), a.get(2), a.bytes(3));
    let now = s.now;
    let mut g = s.shared.db.lock_keys([src, dst].into_iter());
    // The source's existence first, then both types, as Redis checks them.
    let src_exists = match g.table(src).peek(src, now) {
        None => return Ok(Reply::Int(0)),
        Some(Entry {
            value: Value::Set(_),
            ..
        }) => true,
        Some(_) => return Err(CmdError::WrongType),
    };
    let dst_exists = is_set(g.table(dst), dst, now)?;
    if src == dst {
        let found = lookup(g.table(src), src, now, |set| set.contains(&member))?;
        return Ok(Reply::Int(i64::from(found.unwrap_or(false))));
    }
    let removed = src_exists
        && g.table(src)
            .update(src, now, |v| match v {
                Value::Set(set) => set.remove(&member),
                _ => false,
            })
            .unwrap_or(false);
    if !removed {
        return Ok(Reply::Int(0));
    }
    let t = g.table(dst);
    if !dst_exists {
        t.insert(dst, Entry::new(Value::Set(Box::default()), 0, now));
    }
    t.update(dst, now, |v| {
        if let Value::Set(set) = v {
            set.insert(&member);
        }
    });
    Ok(Reply::Int(1))
}

/// SINTER, SUNION, SDIFF and their STORE forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// Computes `op` over the sets at `keys` (absent keys are empty sets). Every key's type is
/// checked before anything is computed, as Redis does.
fn combine(
    g: &mut MultiGuard<'_>,
    keys: &[Bytes],
    op: Op,
    now: u64,
    intset_max: usize,
) -> Result<SetValue, CmdError> {
    let mut lens = Vec::with_capacity(keys.len());
    for k in keys {
        lens.push(lookup(g.table(k), k, now, SetValue::len)?);
    }
    let mut out = SetValue::new();
    match op {
        Op::Union => {
            for k in keys {
                lookup(g.table(k), k, now, |set| {
                    set.for_each(|m| {
                        out.insert_within(m, intset_max);
                    })
                })?;
            }
        }
        Op::Inter => {
            if lens.iter().any(Option::is_none) {
                return Ok(out);
            }
            // Walk the smallest set, keeping what every other set has.
            let Some(smallest) = (0..keys.len()).min_by_key(|&i| lens[i]) else {
                return Ok(out);
            };
            let mut candidates = Vec::new();
            lookup(g.table(&keys[smallest]), &keys[smallest], now, |set| {
                candidates = set.members();
            })?;
            for (i, k) in keys.iter().enumerate() {
                if i == smallest || candidates.is_empty() {
                    continue;
                }
                lookup(g.table(k), k, now, |set| {
                    candidates.retain(|m| set.contains(m));
                })?;
            }
            for m in &candidates {
                out.insert_within(m, intset_max);
            }
        }
        Op::Diff => {
            let mut candidates = Vec::new();
            if let Some(first) = keys.first() {
                lookup(g.table(first), first, now, |set| candidates = set.members())?;
            }
            for k in keys.iter().skip(1) {
                if candidates.is_empty() {
                    break;
                }
                lookup(g.table(k), k, now, |set| {
                    candidates.retain(|m| !set.contains(m));
                })?;
            }
            for m in &candidates {
                out.insert_within(m, intset_max);
            }
        }
    }
    Ok(out)
}

fn op_of(id: CommandId) -> Op {
    match id {
        CommandId::Sinter | CommandId::Sinterstore => Op::Inter,
        CommandId::Sunion | CommandId::Sunionstore => Op::Union,
        _ => Op::Diff,
    }
}

/// SINTER, SUNION, SDIFF.
pub fn combine_cmd(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let keys = a.slice(1);
    let now = s.now;
    let mut g = s.shared.db.lock_keys(keys.iter());
    let set = combine(
        &mut g,
        keys,
        op_of(id),
        now,
        s.shared.db.encodings.get().intset_max(),
    )?;
    drop(g);
    Ok(Reply::Set(bulks(set.members())))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]: the intersection's size, counting stops at
/// a non-zero limit.
pub fn sintercard(s: &mut Session, a: &Args) -> CmdResult {
    let numkeys = match strict_i64(a.get(1)) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(CmdError::err("numkeys should be greater than 0")),
    };
    let Some(end) = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|&end| end <= a.len())
    else {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    };
    let mut limit = 0usize;
    let mut j = end;
    while j < a.len() {
        if eq(a.get(j), "limit") && j + 1 < a.len() {
            limit = match strict_i64(a.get(j + 1)) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(CmdError::err("LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keys = &a.slice(2)[..end - 2];
    let now = s.now;
    let mut g = s.shared.db.lock_keys(keys.iter());
    let set = combine(
        &mut g,
        keys,
        Op::Inter,
        now,
        s.shared.db.encodings.get().intset_max(),
    )?;
    let n = if limit == 0 {
        set.len()
    } else {
        set.len().min(limit)
    };
    Ok(Reply::Int(n as i64))
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: the result replaces the destination (whatever its
/// type, and without its TTL); an empty result deletes it.
pub fn store_cmd(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let (dst, keys) = (a.get(1), a.slice(2));
    let now = s.now;
    let mut g = s
        .shared
        .db
        .lock_keys(std::iter::once(dst).chain(keys.iter().map(|k| k.as_ref())));
    let set = combine(
        &mut g,
        keys,
        op_of(id),
        now,
        s.shared.db.encodings.get().intset_max(),
    )?;
    let n = set.len();
    let t = g.table(dst);
    if n == 0 {
        t.remove(dst);
    } else {
        t.insert(dst, Entry::new(Value::Set(Box::new(set)), 0, now));
    }
    Ok(Reply::Int(n as i64))
}

pub fn sscan(s: &mut Session, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(2))?;
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let page = match t.lookup(key, s.now) {
        // Redis answers an absent key before it reads the options.
        None => None,
        Some(Entry {
            value: Value::Set(set),
            ..
        }) => {
            let opts = scan_opts(a, 3, false)?;
            Some(set.scan(cursor, opts.count, opts.pattern))
        }
        Some(_) => return Err(CmdError::WrongType),
    };
    drop(t);
    s.hit(page.is_some());
    let (next, members) = page.unwrap_or((0, Vec::new()));
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(bulks(members)),
    ]))
}
