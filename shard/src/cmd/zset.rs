//! Sorted-set commands on one key (the non-blocking ones), with Redis 7.0's replies and error
//! texts; the commands over several sets (ZRANGESTORE, ZUNION, ZINTER, ZDIFF and their STORE
//! forms, ZINTERCARD, ZMPOP) are in `zset_multi.rs`. Each command checks its arguments in the
//! order Redis does (most parse their ranges before they look the key up), so a request that
//! is wrong in two ways gets the same error from both.
//!
//! Scores are parsed like Redis's `strtod`-based helpers and printed like its `%.17g`
//! (`Reply::Double`: a bulk string in RESP2, a double in RESP3).

use bytes::Bytes;
use membership::command::CommandId;

use super::args::{eq, ranged, strict_i64};
use super::key::{parse_cursor, scan_opts};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Proto, Reply, format_g17};
use crate::store::glob::glob_match;
use crate::store::{Entry, Value};
use crate::value::ZSetValue;
use crate::value::zset::{EntryRef, Small};
use membership::double::{parse as double, strtod};

// ---- parsing ----------------------------------------------------------------------------

/// A score argument: `ERR value is not a valid float` otherwise.
fn score_arg(b: &[u8]) -> Result<f64, CmdError> {
    match small_integer(b) {
        Some(d) => Ok(d),
        None => double(b).ok_or_else(|| CmdError::err("value is not a valid float")),
    }
}

/// The common case of a score, an optional sign and 1 to 15 decimal digits, without
/// `strtod`'s general path (which allocates): such an integer is below 2^53, so it converts
/// to `f64` exactly and the result is `strtod`'s (leading zeros and `-0` included).
fn small_integer(b: &[u8]) -> Option<f64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    let d = n as f64;
    Some(if neg { -d } else { d })
}

/// A WEIGHTS argument: `ERR weight value is not a float` otherwise.
pub(super) fn weight(b: &[u8]) -> Result<f64, CmdError> {
    double(b).ok_or_else(|| CmdError::err("weight value is not a float"))
}

/// One end of a score range as `zslParseRange` reads it: `strtod` after an optional `(`,
/// leading spaces allowed, the empty string 0, NaN refused.
fn range_bound(b: &[u8]) -> Option<(f64, bool)> {
    let (ex, b) = match b.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, b),
    };
    if b.is_empty() {
        return Some((0.0, ex));
    }
    let start = b
        .iter()
        .position(|c| !(c.is_ascii_whitespace() || *c == 0x0b))?;
    let (v, _) = strtod(&b[start..])?;
    (!v.is_nan()).then_some((v, ex))
}

/// A score range (`zrangespec`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    pub(super) fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
        let bad = || CmdError::err("min or max is not a float");
        let (min, minex) = range_bound(min).ok_or_else(bad)?;
        let (max, maxex) = range_bound(max).ok_or_else(bad)?;
        Ok(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }

    fn gte_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn lte_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    /// `zslIsInRange`: false when no entry of `z` can be in range.
    fn may_hit(&self, z: &ZSetValue) -> bool {
        if self.min > self.max || (self.min == self.max && (self.minex || self.maxex)) {
            return false;
        }
        let (Some(first), Some(last)) = (z.get(0), z.get(z.len().wrapping_sub(1))) else {
            return false;
        };
        self.gte_min(last.score) && self.lte_max(first.score)
    }
}

/// One end of a lex range.
#[derive(Debug, Clone, PartialEq)]
enum Lex {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

impl Lex {
    fn parse(b: &[u8]) -> Option<Lex> {
        match b.split_first()? {
            (b'+', []) => Some(Lex::Max),
            (b'-', []) => Some(Lex::Min),
            (b'(', rest) => Some(Lex::Excl(Bytes::copy_from_slice(rest))),
            (b'[', rest) => Some(Lex::Incl(Bytes::copy_from_slice(rest))),
            _ => None,
        }
    }
}

/// A lex range (`zlexrangespec`).
#[derive(Debug, Clone)]
pub(super) struct LexRange {
    min: Lex,
    max: Lex,
}

impl LexRange {
    pub(super) fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, CmdError> {
        match (Lex::parse(min), Lex::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(CmdError::err("min or max not valid string range item")),
        }
    }

    fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            Lex::Min => true,
            Lex::Max => false,
            Lex::Incl(x) => m >= &x[..],
            Lex::Excl(x) => m > &x[..],
        }
    }

    fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            Lex::Min => false,
            Lex::Max => true,
            Lex::Incl(x) => m <= &x[..],
            Lex::Excl(x) => m < &x[..],
        }
    }

    /// `zzlIsInLexRange`: false when no entry of `z` can be in range.
    fn may_hit(&self, z: &ZSetValue) -> bool {
        use std::cmp::Ordering::*;
        let (cmp, either_ex) = match (&self.min, &self.max) {
            (Lex::Min, Lex::Min) | (Lex::Max, Lex::Max) => (Equal, true),
            (Lex::Max, _) | (_, Lex::Min) => (Greater, false),
            (Lex::Min, _) | (_, Lex::Max) => (Less, false),
            (a, b) => {
                let (x, xe) = match a {
                    Lex::Incl(x) => (x, false),
                    Lex::Excl(x) => (x, true),
                    _ => return false,
                };
                let (y, ye) = match b {
                    Lex::Incl(y) => (y, false),
                    Lex::Excl(y) => (y, true),
                    _ => return false,
                };
                (x.cmp(y), xe || ye)
            }
        };
        if cmp == Greater || (cmp == Equal && either_ex) {
            return false;
        }
        let (Some(first), Some(last)) = (z.get(0), z.get(z.len().wrapping_sub(1))) else {
            return false;
        };
        self.gte_min(last.member) && self.lte_max(first.member)
    }

    /// The rank of the first entry at or above the minimum: a walk from the head for a
    /// small set (Redis's listpack walk, which is what answers when the scores differ), a
    /// binary search for a large one.
    fn first(&self, z: &ZSetValue) -> usize {
        if z.is_small() {
            z.iter()
                .position(|e| self.gte_min(e.member))
                .unwrap_or(z.len())
        } else {
            z.partition_point(|e| !self.gte_min(e.member))
        }
    }

    /// The rank of the last entry at or below the maximum, if any.
    fn last(&self, z: &ZSetValue) -> Option<usize> {
        if z.is_small() {
            (0..z.len())
                .rev()
                .find(|&r| z.get(r).is_some_and(|e| self.lte_max(e.member)))
        } else {
            z.partition_point(|e| self.lte_max(e.member)).checked_sub(1)
        }
    }
}

fn long(b: &[u8]) -> Result<i64, CmdError> {
    strict_i64(b).ok_or(CmdError::NotInteger)
}

// ---- access ---------------------------------------------------------------------------

/// Reads the sorted set at `key`: `Ok(None)` when absent.
pub(super) fn read<R>(
    s: &mut Session,
    key: &[u8],
    f: impl FnOnce(&ZSetValue) -> R,
) -> Result<Option<R>, CmdError> {
    let r = match s.shared.db.for_key(key).lookup(key, s.now) {
        None => None,
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) => Some(f(z)),
        Some(_) => return Err(CmdError::WrongType),
    };
    s.hit(r.is_some());
    Ok(r)
}

/// Runs `f` on the sorted set at `key`: `Ok(None)` when absent. The store deletes the key if
/// `f` leaves the set empty.
pub(super) fn update<R>(
    s: &Session,
    key: &[u8],
    f: impl FnOnce(&mut ZSetValue) -> R,
) -> Result<Option<R>, CmdError> {
    let mut t = s.shared.db.for_key(key);
    t.update(key, s.now, |v| match v {
        Value::ZSet(z) => Ok(f(z)),
        _ => Err(CmdError::WrongType),
    })
    .transpose()
}

/// A score reply: `%.17g` as a bulk string (RESP2) or a double (RESP3).
pub(super) fn score(d: f64) -> Reply {
    Reply::Double(d)
}

/// Members in order, with their scores if asked: flat in RESP2, `[member, score]` pairs in
/// RESP3.
pub(super) fn members_reply(items: Vec<(Bytes, f64)>, withscores: bool, proto: Proto) -> Reply {
    Reply::Array(match (withscores, proto) {
        (false, _) => items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect(),
        (true, Proto::Resp2) => items
            .into_iter()
            .flat_map(|(m, s)| [Reply::Bulk(m), score(s)])
            .collect(),
        (true, Proto::Resp3) => items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), score(s)]))
            .collect(),
    })
}

// ---- ranges -------------------------------------------------------------------------------

/// What a range query selects.
#[derive(Debug, Clone)]
pub(super) enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Entries of `z` in `range`, in reply order (`rev`: from the top), after skipping `offset`
/// and taking at most `limit` (negative: all) for score and lex ranges.
pub(super) fn select(
    z: &ZSetValue,
    range: &Range,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(Bytes, f64)> {
    let len = z.len();
    let pick = |e: EntryRef<'_>| (Bytes::copy_from_slice(e.member), e.score);
    match range {
        Range::Rank(start, end) => {
            let Some((from, to)) = clamp(*start, *end, len) else {
                return Vec::new();
            };
            if rev {
                // Ranks counted from the top.
                (len - 1 - to..=len - 1 - from)
                    .rev()
                    .filter_map(|r| z.get(r).map(pick))
                    .collect()
            } else {
                z.iter_from(from).take(to - from + 1).map(pick).collect()
            }
        }
        _ if offset < 0 || limit == 0 => Vec::new(),
        Range::Score(r) => {
            if !r.may_hit(z) {
                return Vec::new();
            }
            let take = usize::try_from(limit).unwrap_or(usize::MAX);
            let skip = offset as usize;
            if rev {
                let Some(top) = z.partition_point(|e| r.lte_max(e.score)).checked_sub(1) else {
                    return Vec::new();
                };
                (0..=top)
                    .rev()
                    .skip(skip)
                    .map_while(|i| z.get(i).filter(|e| r.gte_min(e.score)).map(pick))
                    .take(take)
                    .collect()
            } else {
                let from = z.partition_point(|e| !r.gte_min(e.score));
                z.iter_from(from)
                    .skip(skip)
                    .take_while(|e| r.lte_max(e.score))
                    .take(take)
                    .map(pick)
                    .collect()
            }
        }
        Range::Lex(r) => {
            if !r.may_hit(z) {
                return Vec::new();
            }
            let take = usize::try_from(limit).unwrap_or(usize::MAX);
            let skip = offset as usize;
            if rev {
                // Redis's `zzlLastInLexRange`: the entry found must be in range itself.
                let Some(top) = r
                    .last(z)
                    .filter(|&t| z.get(t).is_some_and(|e| r.gte_min(e.member)))
                else {
                    return Vec::new();
                };
                (0..=top)
                    .rev()
                    .skip(skip)
                    .map_while(|i| z.get(i).filter(|e| r.gte_min(e.member)).map(pick))
                    .take(take)
                    .collect()
            } else {
                // Redis's `zzlFirstInLexRange`: the entry found must be in range itself.
                let from = r.first(z);
                if !z.get(from).is_some_and(|e| r.lte_max(e.member)) {
                    return Vec::new();
                }
                z.iter_from(from)
                    .skip(skip)
                    .take_while(|e| r.lte_max(e.member))
                    .take(take)
                    .map(pick)
                    .collect()
            }
        }
    }
}

/// Redis's rank clamping (`start..=end`, negative from the end): `None` when empty.
fn clamp(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// Ranks `from..to` (ascending) of the entries a score or lex range covers, walking as Redis
/// does (for counting and removal).
fn covered(z: &ZSetValue, range: &Range) -> (usize, usize) {
    match range {
        Range::Rank(start, end) => match clamp(*start, *end, z.len()) {
            None => (0, 0),
            Some((a, b)) => (a, b + 1),
        },
        Range::Score(r) => {
            if !r.may_hit(z) {
                return (0, 0);
            }
            let from = z.partition_point(|e| !r.gte_min(e.score));
            let n = z.iter_from(from).take_while(|e| r.lte_max(e.score)).count();
            (from, from + n)
        }
        Range::Lex(r) => {
            if !r.may_hit(z) {
                return (0, 0);
            }
            let from = r.first(z);
            let n = z
                .iter_from(from)
                .take_while(|e| r.lte_max(e.member))
                .count();
            (from, from + n)
        }
    }
}

// ---- commands -----------------------------------------------------------------------------

/// ZADD's options.
#[derive(Debug, Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What `zset_add` did.
#[derive(Debug, PartialEq)]
enum Outcome {
    Added(f64),
    Updated(f64),
    /// An existing member whose score stays as it was (still "processed": ZINCRBY by 0
    /// answers the score).
    Same(f64),
    /// Nothing: NX on an existing member, XX on a new one, GT/LT refusing the new score.
    Nop,
    Nan,
}

/// Redis's `zsetAdd` for one member.
fn zset_add(
    z: &mut ZSetValue,
    member: &Bytes,
    mut score: f64,
    f: AddFlags,
    small: Small,
) -> Outcome {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return Outcome::Nop;
            }
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return Outcome::Nan;
                }
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return Outcome::Nop;
            }
            if score != cur {
                z.insert_within(member, score, small);
                Outcome::Updated(score)
            } else {
                Outcome::Same(score)
            }
        }
        None if f.xx => Outcome::Nop,
        None => {
            z.insert_within(member, score, small);
            Outcome::Added(score)
        }
    }
}

/// ZADD and ZINCRBY.
pub fn zadd(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let small = Small::of(&s.shared.db.encodings.get());
    let mut f = AddFlags::default();
    let mut i = 2;
    if id == CommandId::Zincrby {
        f.incr = true;
    } else {
        while i < a.len() {
            let o = a.get(i);
            if eq(o, "nx") {
                f.nx = true;
            } else if eq(o, "xx") {
                f.xx = true;
            } else if eq(o, "ch") {
                f.ch = true;
            } else if eq(o, "incr") {
                f.incr = true;
            } else if eq(o, "gt") {
                f.gt = true;
            } else if eq(o, "lt") {
                f.lt = true;
            } else {
                break;
            }
            i += 1;
        }
    }
    let elements = a.len() - i;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let elements = elements / 2;
    if f.nx && f.xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && elements > 1 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(elements);
    for j in 0..elements {
        pairs.push((score_arg(a.get(i + 2 * j))?, a.bytes(i + 2 * j + 1)));
    }
    add_pairs(s, a.get(1), f, small, pairs)
}

/// GEOADD's ZADD: `pairs` (score, member) with NX, XX and CH as GEOADD parsed them; at
/// least one pair (else ZADD's syntax error).
pub(super) fn geoadd_pairs(
    s: &mut Session,
    key: &[u8],
    (nx, xx, ch): (bool, bool, bool),
    pairs: Vec<(f64, Bytes)>,
) -> CmdResult {
    if pairs.is_empty() {
        return Err(CmdError::Syntax);
    }
    let small = Small::of(&s.shared.db.encodings.get());
    let f = AddFlags {
        nx,
        xx,
        ch,
        ..AddFlags::default()
    };
    add_pairs(s, key, f, small, pairs)
}

/// ZADD after its arguments are checked: adds or updates `pairs` at `key`.
fn add_pairs(
    s: &mut Session,
    key: &[u8],
    f: AddFlags,
    small: Small,
    pairs: Vec<(f64, Bytes)>,
) -> CmdResult {
    let nothing = || Ok(if f.incr { Reply::Nil } else { Reply::Int(0) });
    let mut t = s.shared.db.for_key(key);
    match t.peek(key, s.now) {
        None if f.xx => return nothing(),
        None => {
            // Redis 7.0 picks the encoding from the first member alone (a skiplist when it is
            // over 64 bytes); the set converts as members come.
            let first = pairs.first().map_or(0, |(_, m)| m.len());
            let mut z = ZSetValue::with_hint_within(0, first, small);
            z.reserve_entries(pairs.iter().map(|(score, m)| (*score, &m[..])));
            t.insert(key, Entry::new(Value::ZSet(z), 0, s.now));
        }
        Some(Entry {
            value: Value::ZSet(_),
            ..
        }) => {}
        Some(_) => return Err(CmdError::WrongType),
    }
    let r = t.update(key, s.now, |v| {
        let Value::ZSet(z) = v else {
            return Err(CmdError::WrongType);
        };
        let (mut added, mut updated, mut last) = (0, 0, None);
        for (sc, m) in &pairs {
            match zset_add(z, m, *sc, f, small) {
                Outcome::Added(n) => {
                    added += 1;
                    last = Some(n);
                }
                Outcome::Updated(n) => {
                    updated += 1;
                    last = Some(n);
                }
                Outcome::Same(n) => last = Some(n),
                Outcome::Nop => {}
                Outcome::Nan => return Err(CmdError::err("resulting score is not a number (NaN)")),
            }
        }
        Ok(if f.incr {
            last.map_or(Reply::Nil, score)
        } else if f.ch {
            Reply::Int(added + updated)
        } else {
            Reply::Int(added)
        })
    });
    r.unwrap_or_else(nothing)
}

pub fn zrem(s: &mut Session, a: &Args) -> CmdResult {
    let n = update(s, a.get(1), |z| {
        a.slice(2).iter().filter(|m| z.remove(m).is_some()).count() as i64
    })?;
    Ok(Reply::Int(n.unwrap_or(0)))
}

pub fn zcard(s: &mut Session, a: &Args) -> CmdResult {
    Ok(Reply::Int(
        read(s, a.get(1), |z| z.len() as i64)?.unwrap_or(0),
    ))
}

pub fn zscore(s: &mut Session, a: &Args) -> CmdResult {
    let m = a.get(2);
    Ok(read(s, a.get(1), |z| z.score(m))?
        .flatten()
        .map_or(Reply::Nil, score))
}

pub fn zmscore(s: &mut Session, a: &Args) -> CmdResult {
    let members = a.slice(2);
    let scores = read(s, a.get(1), |z| {
        members.iter().map(|m| z.score(m)).collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| vec![None; members.len()]);
    Ok(Reply::Array(
        scores
            .into_iter()
            .map(|x| x.map_or(Reply::Nil, score))
            .collect(),
    ))
}

/// ZRANK and ZREVRANK.
pub fn zrank(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let m = a.get(2);
    let rank = read(s, a.get(1), |z| {
        z.rank(m).map(|r| {
            if id == CommandId::Zrevrank {
                z.len() - 1 - r
            } else {
                r
            }
        })
    })?
    .flatten();
    Ok(rank.map_or(Reply::Nil, |r| Reply::Int(r as i64)))
}

/// ZCOUNT and ZLEXCOUNT: the range first, then the key.
pub fn zcount(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let range = if id == CommandId::Zlexcount {
        Range::Lex(LexRange::parse(a.get(2), a.get(3))?)
    } else {
        Range::Score(ScoreRange::parse(a.get(2), a.get(3))?)
    };
    let n = read(s, a.get(1), |z| {
        let (from, to) = covered(z, &range);
        (to - from) as i64
    })?;
    Ok(Reply::Int(n.unwrap_or(0)))
}

/// How a ZRANGE-family command was called: its first argument after the name, and the
/// range type and direction the command itself fixes (`None`: chosen by options).
pub(super) struct RangeCall {
    pub start: usize,
    pub store: bool,
    pub by: Option<By>,
    pub rev: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
pub(super) struct RangeQuery {
    pub range: Range,
    pub rev: bool,
    pub withscores: bool,
    pub offset: i64,
    pub limit: i64,
}

/// Redis's `zrangeGenericCommand` steps 1 and 2: options, conflicts, then the range.
pub(super) fn parse_range(a: &Args, call: &RangeCall) -> Result<RangeQuery, CmdError> {
    let (mut by, mut rev) = (call.by, call.rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = call.start + 3;
    while j < a.len() {
        let left = a.len() - j - 1;
        let o = a.get(j);
        if !call.store && eq(o, "withscores") {
            withscores = true;
        } else if eq(o, "limit") && left >= 2 {
            offset = long(a.get(j + 1))?;
            limit = long(a.get(j + 2))?;
            j += 2;
        } else if call.rev.is_none() && rev.is_none() && eq(o, "rev") {
            rev = Some(true);
        } else if call.by.is_none() && by.is_none() && eq(o, "bylex") {
            by = Some(By::Lex);
        } else if call.by.is_none() && by.is_none() && eq(o, "byscore") {
            by = Some(By::Score);
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    let by = by.unwrap_or(By::Rank);
    if limit != -1 && by == By::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by == By::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (a.get(call.start + 1), a.get(call.start + 2));
    if rev && by != By::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let range = match by {
        By::Rank => Range::Rank(long(lo)?, long(hi)?),
        By::Score => Range::Score(ScoreRange::parse(lo, hi)?),
        By::Lex => Range::Lex(LexRange::parse(lo, hi)?),
    };
    Ok(RangeQuery {
        range,
        rev,
        withscores,
        offset,
        limit,
    })
}

/// ZRANGE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX.
pub fn zrange(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    use CommandId::*;
    let (by, rev) = match id {
        Zrange => (None, None),
        Zrevrange => (Some(By::Rank), Some(true)),
        Zrangebyscore => (Some(By::Score), Some(false)),
        Zrevrangebyscore => (Some(By::Score), Some(true)),
        Zrangebylex => (Some(By::Lex), Some(false)),
        _ => (Some(By::Lex), Some(true)),
    };
    let q = parse_range(
        a,
        &RangeCall {
            start: 1,
            store: false,
            by,
            rev,
        },
    )?;
    let items = read(s, a.get(1), |z| {
        select(z, &q.range, q.rev, q.offset, q.limit)
    })?
    .unwrap_or_default();
    Ok(members_reply(items, q.withscores, s.proto))
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX: the range first, then the key.
pub fn zremrange(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let (lo, hi) = (a.get(2), a.get(3));
    let range = match id {
        CommandId::Zremrangebyrank => Range::Rank(long(lo)?, long(hi)?),
        CommandId::Zremrangebyscore => Range::Score(ScoreRange::parse(lo, hi)?),
        _ => Range::Lex(LexRange::parse(lo, hi)?),
    };
    let n = update(s, a.get(1), |z| {
        let (from, to) = covered(z, &range);
        z.remove_ranks(from, to).len() as i64
    })?;
    Ok(Reply::Int(n.unwrap_or(0)))
}

/// Removes up to `count` members from the bottom (`max` false) or the top of `z`, in the
/// order they are popped. For ZPOPMIN, ZPOPMAX, ZMPOP and the blocking variants.
pub fn pop(z: &mut ZSetValue, max: bool, count: usize) -> Vec<(Bytes, f64)> {
    let len = z.len();
    let n = count.min(len);
    if max {
        let mut v = z.remove_ranks(len - n, len);
        v.reverse();
        v
    } else {
        z.remove_ranks(0, n)
    }
}

/// Members with their scores, in order.
pub type Scored = Vec<(Bytes, f64)>;

/// Popped members as ZPOPMIN/ZPOPMAX reply: flat `member, score, ...` unless `nested`
/// (`[member, score]` pairs: RESP3 with a count, and ZMPOP).
pub fn popped_reply(items: Vec<(Bytes, f64)>, nested: bool) -> Reply {
    Reply::Array(if nested {
        items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), score(s)]))
            .collect()
    } else {
        items
            .into_iter()
            .flat_map(|(m, s)| [Reply::Bulk(m), score(s)])
            .collect()
    })
}

/// ZPOPMIN and ZPOPMAX.
pub fn zpop(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = if a.len() == 3 {
        Some(ranged(
            a.get(2),
            0,
            i64::MAX,
            Some("value is out of range, must be positive"),
        )? as usize)
    } else {
        None
    };
    let nested = s.proto == Proto::Resp3 && count.is_some();
    let max = id == CommandId::Zpopmax;
    let key = a.get(1);
    if count == Some(0) {
        // Redis checks the type, then answers an empty array without touching the set.
        read(s, key, |_| ())?;
        return Ok(Reply::Array(vec![]));
    }
    let items = update(s, key, |z| pop(z, max, count.unwrap_or(1)))?.unwrap_or_default();
    Ok(popped_reply(items, nested))
}

/// ZRANDMEMBER.
pub fn zrandmember(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    if a.len() < 3 {
        // (A stored set is never empty; `max(1)` keeps the draw defined all the same.)
        let m = read(s, key, |z| {
            z.get(fastrand::usize(..z.len().max(1)))
                .map(|e| Bytes::copy_from_slice(e.member))
        })?;
        return Ok(Reply::opt_bulk(m.flatten()));
    }
    let count = ranged(a.get(2), -i64::MAX, i64::MAX, None)?;
    let withscores = match a.len() {
        3 => false,
        4 if eq(a.get(3), "withscores") => true,
        _ => return Err(CmdError::Syntax),
    };
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::err("value is out of range"));
    }
    let proto = s.proto;
    let items = read(s, key, |z| {
        let len = z.len();
        if count == 0 || len == 0 {
            return Vec::new();
        }
        let at = |r: usize| {
            z.get(r)
                .map(|e| (Bytes::copy_from_slice(e.member), e.score))
        };
        if count < 0 {
            (0..count.unsigned_abs())
                .filter_map(|_| at(fastrand::usize(..len)))
                .collect()
        } else if count as usize >= len {
            let mut all: Vec<_> = (0..len).filter_map(at).collect();
            fastrand::shuffle(&mut all);
            all
        } else {
            // Distinct members: a partial Fisher-Yates over the ranks.
            let n = count as usize;
            let mut ranks: Vec<usize> = (0..len).collect();
            for i in 0..n {
                let j = fastrand::usize(i..len);
                ranks.swap(i, j);
            }
            ranks[..n].iter().filter_map(|&r| at(r)).collect()
        }
    })?
    .unwrap_or_default();
    Ok(members_reply(items, withscores, proto))
}

/// A member's place in a large set's ZSCAN order: a fixed 48-bit hash (never 0 past the first
/// page, which the cursor 0 would mistake for the end: 0 maps to 1).
fn scan_position(member: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static HASHER: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x7a73_6574_7363_616e);
    (HASHER.hash_one(member) & ((1 << 48) - 1)).max(1)
}

/// ZSCAN: a small set whole with cursor 0 (as Redis answers for a listpack); a large one in
/// hash order (as Redis walks its hash table), see `scan_position`.
pub fn zscan(s: &mut Session, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(2))?;
    let key = a.get(1);
    // Redis looks the key up before it reads the options.
    let exists = read(s, key, |_| ())?.is_some();
    if !exists {
        return Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"0")),
            Reply::Array(vec![]),
        ]));
    }
    let opts = scan_opts(a, 3, false)?;
    let (pattern, count) = (opts.pattern, opts.count);
    let keep = |m: &[u8]| pattern.is_none_or(|p| glob_match(p, m, false));
    let (next, items) = read(s, key, |z| {
        if z.is_small() {
            let all = z
                .iter()
                .map(|e| (Bytes::copy_from_slice(e.member), e.score));
            return (0, all.collect());
        }
        // Members in the order of a fixed hash, from the cursor's position on, at least
        // COUNT (and 1/64th of the set) at a time, never splitting a run of equal positions:
        // a member present for the whole iteration is returned exactly once, however the set
        // changes in between.
        let mut found: Vec<(u64, EntryRef<'_>)> = z
            .iter()
            .map(|e| (scan_position(e.member), e))
            .filter(|(p, _)| *p >= cursor)
            .collect();
        found.sort_unstable_by_key(|(p, _)| *p);
        let mut cut = count.max(z.len() / 64).max(1).min(found.len());
        while cut > 0 && cut < found.len() && found[cut].0 == found[cut - 1].0 {
            cut += 1;
        }
        let next = found.get(cut).map_or(0, |(p, _)| *p);
        let page = found[..cut]
            .iter()
            .map(|(_, e)| (Bytes::copy_from_slice(e.member), e.score));
        (next, page.collect())
    })?
    .unwrap_or((0, vec![]));
    let flat = items
        .into_iter()
        .filter(|(m, _)| keep(m))
        .flat_map(|(m, sc)| [Reply::Bulk(m), Reply::Bulk(Bytes::from(format_g17(sc)))])
        .collect();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(flat),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_integer_scores_match_strtod() {
        for t in [
            "0",
            "-0",
            "+0",
            "7",
            "-7",
            "+7",
            "000000012345",
            "-000000099999",
            "999999999999999",
            "-999999999999999",
            "1000000000000000",
            "",
            "-",
            "+",
            "1a",
            "1.5",
            "1e3",
            " 1",
            "--1",
            "0x10",
            "1 ",
        ] {
            let b = t.as_bytes();
            if let Some(d) = small_integer(b) {
                let want = double(b).map(f64::to_bits);
                assert_eq!(Some(d.to_bits()), want, "{t:?}");
            }
            assert_eq!(
                score_arg(b).ok().map(f64::to_bits),
                double(b).map(f64::to_bits),
                "{t:?}"
            );
        }
        assert!(small_integer(b"000000012345").is_some());
        assert!(small_integer(b"1000000000000000").is_none());
    }

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(double(b"1.5"), Some(1.5));
        assert_eq!(double(b"+inf"), Some(f64::INFINITY));
        assert_eq!(double(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(double(b"0x10"), Some(16.0));
        assert_eq!(double(b"1e308"), Some(1e308));
        assert_eq!(double(b".5"), Some(0.5));
        assert_eq!(double(b"5."), Some(5.0));
        assert_eq!(double(b"-0").map(f64::is_sign_negative), Some(true));
        for bad in [
            &b"nan"[..],
            b"",
            b" 1",
            b"1 ",
            b"abc",
            b"1e400",
            b"1e-400",
            b"e5",
            b".",
        ] {
            assert_eq!(double(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let r = |a: &[u8]| range_bound(a);
        assert_eq!(r(b"(1"), Some((1.0, true)));
        assert_eq!(r(b""), Some((0.0, false)));
        assert_eq!(r(b" 2"), Some((2.0, false)));
        assert_eq!(r(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(r(b"nan"), None);
        assert_eq!(r(b"(x"), None);
    }
}
