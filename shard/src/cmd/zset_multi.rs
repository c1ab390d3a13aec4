//! Sorted-set commands over several keys: ZRANGESTORE, ZUNION/ZINTER/ZDIFF and their STORE
//! forms, ZINTERCARD, and ZMPOP. Their keys are locked together (in slot order), so each runs
//! atomically, as in Redis.

use bytes::Bytes;
use membership::command::CommandId;

use super::args::{eq, mpop_args, parse_i64, ranged};
use super::session::Session;
use super::zset::{RangeCall, Scored, members_reply, parse_range, pop, popped_reply, select};
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Entry, SlotMap, Value};
use crate::value::ZSetValue;
use crate::value::zset::{Small, cmp};

/// A new set holding `items` (any order), in the representation Redis ends up with for them.
fn build(items: &[(Bytes, f64)], small: Small) -> ZSetValue {
    let longest = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    let mut z = ZSetValue::with_hint_within(items.len(), longest, small);
    for (m, s) in items {
        z.insert_within(m, *s, small);
    }
    z
}

/// Stores `items` at `dst` (or deletes `dst` when there are none); the reply is their count.
pub(super) fn store(
    t: &mut SlotMap,
    dst: &[u8],
    items: &[(Bytes, f64)],
    now: u64,
    small: Small,
) -> Reply {
    if items.is_empty() {
        t.remove(dst);
        return Reply::Int(0);
    }
    let z = build(items, small);
    let n = z.len() as i64;
    t.insert(dst, Entry::new(Value::ZSet(z), 0, now));
    Reply::Int(n)
}

/// The sorted set at `key` in a locked table: `Ok(None)` when absent.
pub(super) fn peek_zset<'a>(
    t: &'a mut SlotMap,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a ZSetValue>, CmdError> {
    match t.lookup(key, now) {
        None => Ok(None),
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) => Ok(Some(z)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
pub fn zrangestore(s: &mut Session, a: &Args) -> CmdResult {
    let q = parse_range(
        a,
        &RangeCall {
            start: 2,
            store: true,
            by: None,
            rev: None,
        },
    )?;
    let (dst, src) = (a.get(1), a.get(2));
    let now = s.now;
    let mut g = s.shared.db.lock_keys([dst, src].into_iter());
    let items = match peek_zset(g.table(src), src, now)? {
        None => Vec::new(),
        Some(z) => select(z, &q.range, q.rev, q.offset, q.limit),
    };
    let small = Small::of(&s.shared.db.encodings.get());
    Ok(store(g.table(dst), dst, &items, now, small))
}

/// How ZUNION/ZINTER/ZDIFF combine scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Redis's `zunionInterAggregate`: a sum of opposite infinities is 0.
    fn apply(self, target: &mut f64, v: f64) {
        match self {
            Aggregate::Sum => {
                *target += v;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if v < *target {
                    *target = v
                }
            }
            Aggregate::Max => {
                if v > *target {
                    *target = v
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

/// ZUNION, ZINTER, ZDIFF, ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE and ZINTERCARD (Redis's
/// `zunionInterDiffGenericCommand`).
pub fn zsetop(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    use CommandId::*;
    let (op, dst) = match id {
        Zunion => (SetOp::Union, None),
        Zinter | Zintercard => (SetOp::Inter, None),
        Zdiff => (SetOp::Diff, None),
        Zunionstore => (SetOp::Union, Some(a.get(1))),
        Zinterstore => (SetOp::Inter, Some(a.get(1))),
        _ => (SetOp::Diff, Some(a.get(1))),
    };
    let card_only = id == Zintercard;
    let numkeys_at = if dst.is_some() { 2 } else { 1 };
    let setnum = parse_i64(a.get(numkeys_at))?;
    if setnum < 1 {
        let name = String::from_utf8_lossy(a.get(0)).to_ascii_lowercase();
        return Err(CmdError::err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    if setnum as u64 > (a.len() - numkeys_at - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let first = numkeys_at + 1;
    let keys: Vec<&[u8]> = (first..first + setnum).map(|i| a.get(i)).collect();
    let now = s.now;
    let mut g = s.shared.db.lock_keys(keys.iter().copied().chain(dst));
    // The inputs (Redis reads them, and refuses a wrong type, before the options).
    // Plain sets are inputs too, every member with score 1.
    let mut inputs: Vec<Option<Scored>> = Vec::with_capacity(setnum);
    for k in &keys {
        inputs.push(match g.table(k).lookup(k, now) {
            None => None,
            Some(Entry {
                value: Value::ZSet(z),
                ..
            }) => Some(
                z.iter()
                    .map(|e| (Bytes::copy_from_slice(e.member), e.score))
                    .collect(),
            ),
            Some(Entry {
                value: Value::Set(set),
                ..
            }) => {
                let mut members = Vec::with_capacity(set.len());
                set.for_each(|m| members.push((Bytes::copy_from_slice(m), 1.0)));
                Some(members)
            }
            Some(_) => return Err(CmdError::WrongType),
        });
    }
    let mut weights = vec![1.0f64; setnum];
    let (mut aggregate, mut withscores, mut limit) = (Aggregate::Sum, false, 0usize);
    let mut j = first + setnum;
    while j < a.len() {
        let remaining = a.len() - j;
        let o = a.get(j);
        if op != SetOp::Diff && !card_only && remaining > setnum && eq(o, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = super::zset::weight(a.get(j + 1 + i))?;
            }
            j += 1 + setnum;
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && eq(o, "aggregate") {
            let v = a.get(j + 1);
            aggregate = if eq(v, "sum") {
                Aggregate::Sum
            } else if eq(v, "min") {
                Aggregate::Min
            } else if eq(v, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card_only && eq(o, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq(o, "limit") {
            limit = ranged(a.get(j + 1), 0, i64::MAX, Some("LIMIT can't be negative"))? as usize;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut srcs: Vec<(Scored, f64, usize)> = inputs
        .into_iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (z, w))| (z.unwrap_or_default(), w, i))
        .collect();
    if op != SetOp::Diff {
        // Smallest first (a stable sort, as glibc's qsort is a merge sort).
        srcs.sort_by_key(|(z, _, _)| z.len());
    }
    let mut out: Vec<(Bytes, f64)> = Vec::new();
    let mut cardinality = 0usize;
    match op {
        SetOp::Inter => {
            let lookups: Vec<hashbrown::HashMap<&[u8], f64>> = srcs
                .iter()
                .map(|(z, _, _)| z.iter().map(|(m, s)| (&m[..], *s)).collect())
                .collect();
            if let Some((first_set, w0, _)) = srcs.first() {
                'members: for (m, sc) in first_set {
                    let mut score = w0 * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    for (k, (_, w, _)) in srcs.iter().enumerate().skip(1) {
                        match lookups[k].get(&m[..]) {
                            Some(v) => aggregate.apply(&mut score, v * w),
                            None => continue 'members,
                        }
                    }
                    if card_only {
                        cardinality += 1;
                        if limit != 0 && cardinality >= limit {
                            break;
                        }
                    } else {
                        out.push((m.clone(), score));
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc: hashbrown::HashMap<Bytes, f64> = hashbrown::HashMap::new();
            let mut order: Vec<Bytes> = Vec::new();
            for (z, w, _) in &srcs {
                for (m, sc) in z {
                    let mut score = w * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate.apply(t, score),
                        None => {
                            acc.insert(m.clone(), score);
                            order.push(m.clone());
                        }
                    }
                }
            }
            out = order
                .into_iter()
                .map(|m| {
                    let s = acc.get(&m).copied().unwrap_or(0.0);
                    (m, s)
                })
                .collect();
        }
        SetOp::Diff => {
            if let Some((first_set, _, _)) = srcs.first() {
                let others: Vec<hashbrown::HashSet<&[u8]>> = srcs[1..]
                    .iter()
                    .map(|(z, _, _)| z.iter().map(|(m, _)| &m[..]).collect())
                    .collect();
                out = first_set
                    .iter()
                    .filter(|(m, _)| !others.iter().any(|o| o.contains(&m[..])))
                    .cloned()
                    .collect();
            }
        }
    }
    if card_only {
        return Ok(Reply::Int(cardinality as i64));
    }
    if let Some(dst) = dst {
        let small = Small::of(&s.shared.db.encodings.get());
        return Ok(store(g.table(dst), dst, &out, now, small));
    }
    out.sort_by(|x, y| cmp(x.1, &x.0, y.1, &y.0));
    Ok(members_reply(out, withscores, s.proto))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count].
pub fn zmpop(s: &mut Session, a: &Args) -> CmdResult {
    let (keys, max, count) = parse_mpop(a, 1)?;
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    match pop_first(s, &keys, max, count)? {
        None => Ok(Reply::NilArray),
        Some((key, items)) => Ok(Reply::Array(vec![
            Reply::Bulk(key),
            popped_reply(items, true),
        ])),
    }
}

/// Pops up to `count` members from the first of `keys` that holds a sorted set (a wrong type
/// met first is an error): the key and what was popped, `None` when none holds one. For
/// ZMPOP and the blocking commands.
pub fn pop_first(
    s: &mut Session,
    keys: &[&[u8]],
    max: bool,
    count: usize,
) -> Result<Option<(Bytes, Scored)>, CmdError> {
    for key in keys {
        if let Some(items) = super::zset::update(s, key, |z| pop(z, max, count))? {
            return Ok(Some((Bytes::copy_from_slice(key), items)));
        }
    }
    Ok(None)
}

/// `numkeys key [key ...] MIN|MAX [COUNT count]` from argument `at` (ZMPOP: 1, BZMPOP: 2):
/// the keys, whether MAX, the count.
pub(super) fn parse_mpop(a: &Args, at: usize) -> Result<(Vec<Bytes>, bool, usize), CmdError> {
    mpop_args(a, at, |w| {
        if eq(w, "max") {
            Ok(true)
        } else if eq(w, "min") {
            Ok(false)
        } else {
            Err(CmdError::Syntax)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates() {
        let mut t = f64::INFINITY;
        Aggregate::Sum.apply(&mut t, f64::NEG_INFINITY);
        assert_eq!(t, 0.0);
        Aggregate::Max.apply(&mut t, 2.0);
        assert_eq!(t, 2.0);
        Aggregate::Min.apply(&mut t, -1.0);
        assert_eq!(t, -1.0);
    }
}
