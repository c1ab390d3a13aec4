//! Read-only set algebra across slots, computed by the proxy: `SUNION`, `SINTER`, `SDIFF`,
//! `SINTERCARD`, `ZUNION`, `ZINTER`, `ZDIFF` and `ZINTERCARD` whose keys hash to more than one
//! slot. A single Redis (or a Redis Cluster node, within one slot) computes them itself;
//! across slots the proxy reads every distinct key from its owner (`SMEMBERS`; for the sorted
//! set commands `ZRANGE key 0 -1 WITHSCORES` and `SMEMBERS`, since Redis takes plain sets as
//! inputs with score 1: whichever type the key holds, one of the two answers and the other
//! is a cheap `WRONGTYPE`), pipelined in the owners' batches, and combines them here, so the
//! client gets the reply one Redis would give. Writes (the `*STORE` forms) are not computed:
//! they stay `-CROSSSLOT`.
//!
//! Pure functions of the request's arguments ([`parse`]) and the shards' raw replies
//! ([`compute`]), unit-tested without servers; `plan` sends the reads and `session` renders.
//!
//! Redis's order of checks is kept: `SINTERCARD`'s options are parsed before any key is read
//! (their errors win); the sorted-set commands check the key count first, then every key's
//! type, then their options (an option's error is kept in the [`Job`] until the reads show no
//! `WRONGTYPE`); a `WRONGTYPE` wins over a missing key. Scores are combined as Redis does:
//! inputs ordered by size (a stable sort), weights multiplied, `SUM` of opposite infinities
//! 0, the result ordered by score then member.
//!
//! Memory stays bounded: the members the shards' replies declare are counted before anything
//! is decoded or computed, and more than `algebra-max-members` (default [`MAX_MEMBERS`]) in
//! all refuses the command with an error. (The replies themselves arrive like any backend
//! reply, within `proto-max-bulk-len` per element; the count bounds the index and result
//! built from them.)

use std::collections::HashSet;

use bytes::{BufMut, Bytes, BytesMut};
use membership::command::CommandId;

use crate::protocol::{Proto, Reply, strict_i64};

/// Members (all reads together) a cross-slot command may fetch by default
/// (`algebra-max-members`); more is refused with an error rather than held in the proxy's
/// memory.
pub const MAX_MEMBERS: usize = 1_000_000;

type FastSet<'a> = HashSet<&'a [u8], foldhash::fast::RandomState>;

/// A sorted set's members with their scores, sliced from a reply.
type ScoredSlice<'s, 'a> = &'s [(&'a [u8], f64)];

/// Whether the proxy computes `id` itself when its keys span slots.
pub fn computes(id: CommandId) -> bool {
    matches!(
        id,
        CommandId::Sunion
            | CommandId::Sinter
            | CommandId::Sdiff
            | CommandId::Sintercard
            | CommandId::Zunion
            | CommandId::Zinter
            | CommandId::Zdiff
            | CommandId::Zintercard
    )
}

/// Which operation combines the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Union,
    Inter,
    Diff,
}

/// How ZUNION and ZINTER combine a member's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
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
            Aggregate::Min if v < *target => *target = v,
            Aggregate::Max if v > *target => *target = v,
            Aggregate::Min | Aggregate::Max => {}
        }
    }
}

/// ZUNION, ZINTER, ZDIFF's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub op: Op,
    /// One per key, in key order.
    pub weights: Vec<f64>,
    pub aggregate: Aggregate,
    pub withscores: bool,
}

/// What the reply is.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// SUNION, SINTER, SDIFF: the members (a set in RESP3).
    Members(Op),
    /// SINTERCARD: the intersection's size, counting no further than `limit` (0: no limit).
    Card { limit: u64 },
    /// ZUNION, ZINTER, ZDIFF: the members by score, with their scores if asked.
    Scored(Scored),
    /// ZINTERCARD: the intersection's size, counting no further than `limit` (0: no limit).
    ScoredCard { limit: u64 },
}

impl Query {
    fn sorted_sets(&self) -> bool {
        matches!(self, Query::Scored(_) | Query::ScoredCard { .. })
    }
}

/// A parsed cross-slot command: what to compute, and which read answers each key.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The command's name, upper-case (for the cap's error).
    pub name: &'static str,
    pub query: Query,
    /// An option's error that Redis answers only once every key's type is checked (the
    /// sorted-set commands read their keys before their options).
    pub deferred: Option<Reply>,
    /// For each key of the command, in order, the index of its read among the distinct keys
    /// [`parse`] returns.
    pub inputs: Vec<usize>,
}

fn syntax() -> Reply {
    Reply::Error("ERR syntax error".into())
}

/// Parses a command [`computes`] says is computed here (argv\[0\] is the name; the arity is
/// already checked), as Redis does: the job and the distinct keys to read, in first-seen
/// order; or the error reply Redis would give.
pub fn parse<'a>(id: CommandId, args: &[&'a [u8]]) -> Result<(Job, Vec<&'a [u8]>), Reply> {
    let (name, query, keys) = match id {
        CommandId::Sunion => ("SUNION", Query::Members(Op::Union), args.get(1..)),
        CommandId::Sinter => ("SINTER", Query::Members(Op::Inter), args.get(1..)),
        CommandId::Sdiff => ("SDIFF", Query::Members(Op::Diff), args.get(1..)),
        CommandId::Sintercard => {
            let (keys, limit) = sintercard(args)?;
            ("SINTERCARD", Query::Card { limit }, Some(keys))
        }
        CommandId::Zunion | CommandId::Zinter | CommandId::Zdiff | CommandId::Zintercard => {
            return zparse(id, args);
        }
        _ => return Err(Reply::Error("ERR internal error: not set algebra".into())),
    };
    Ok(job(name, query, None, keys.unwrap_or_default()))
}

/// The job over `keys`, with the distinct keys to read.
fn job<'a>(
    name: &'static str,
    query: Query,
    deferred: Option<Reply>,
    keys: &[&'a [u8]],
) -> (Job, Vec<&'a [u8]>) {
    let mut distinct: Vec<&'a [u8]> = Vec::with_capacity(keys.len());
    let mut inputs = Vec::with_capacity(keys.len());
    for &k in keys {
        // Few keys per command: a linear search beats hashing.
        let at = match distinct.iter().position(|&d| d == k) {
            Some(at) => at,
            None => {
                distinct.push(k);
                distinct.len() - 1
            }
        };
        inputs.push(at);
    }
    (
        Job {
            name,
            query,
            deferred,
            inputs,
        },
        distinct,
    )
}

/// `ZUNION|ZINTER|ZDIFF numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
/// [WITHSCORES]` and `ZINTERCARD numkeys key [key ...] [LIMIT limit]`, as Redis's
/// `zunionInterDiffGenericCommand` reads them: the key count's errors at once, the options'
/// deferred until the keys are read.
fn zparse<'a>(id: CommandId, args: &[&'a [u8]]) -> Result<(Job, Vec<&'a [u8]>), Reply> {
    let (name, op, card) = match id {
        CommandId::Zunion => ("ZUNION", Op::Union, false),
        CommandId::Zinter => ("ZINTER", Op::Inter, false),
        CommandId::Zdiff => ("ZDIFF", Op::Diff, false),
        _ => ("ZINTERCARD", Op::Inter, true),
    };
    let numkeys = args
        .get(1)
        .and_then(|n| strict_i64(n))
        .ok_or_else(|| Reply::Error("ERR value is not an integer or out of range".into()))?;
    if numkeys < 1 {
        return Err(Reply::Error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            name.to_ascii_lowercase()
        )));
    }
    let setnum = usize::try_from(numkeys)
        .ok()
        .filter(|&n| n <= args.len().saturating_sub(2))
        .ok_or_else(syntax)?;
    let keys = args.get(2..2 + setnum).unwrap_or_default();
    let mut weights = vec![1.0f64; setnum];
    let (mut aggregate, mut withscores, mut limit) = (Aggregate::Sum, false, 0u64);
    let mut deferred = None;
    let mut j = 2 + setnum;
    while let Some(&o) = args.get(j) {
        let remaining = args.len() - j;
        let next = args.get(j + 1).copied().unwrap_or_default();
        if op != Op::Diff && !card && remaining > setnum && o.eq_ignore_ascii_case(b"weights") {
            let parsed: Option<Vec<f64>> = (0..setnum)
                .map(|i| {
                    args.get(j + 1 + i)
                        .and_then(|w| membership::double::parse(w))
                })
                .collect();
            match parsed {
                Some(w) => weights = w,
                None => {
                    deferred = Some(Reply::Error("ERR weight value is not a float".into()));
                    break;
                }
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card && remaining >= 2 && o.eq_ignore_ascii_case(b"aggregate")
        {
            aggregate = if next.eq_ignore_ascii_case(b"sum") {
                Aggregate::Sum
            } else if next.eq_ignore_ascii_case(b"min") {
                Aggregate::Min
            } else if next.eq_ignore_ascii_case(b"max") {
                Aggregate::Max
            } else {
                deferred = Some(syntax());
                break;
            };
            j += 2;
        } else if !card && o.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && o.eq_ignore_ascii_case(b"limit") {
            match strict_i64(next).and_then(|n| u64::try_from(n).ok()) {
                Some(n) => limit = n,
                None => {
                    deferred = Some(Reply::Error("ERR LIMIT can't be negative".into()));
                    break;
                }
            }
            j += 2;
        } else {
            deferred = Some(syntax());
            break;
        }
    }
    let query = if card {
        Query::ScoredCard { limit }
    } else {
        Query::Scored(Scored {
            op,
            weights,
            aggregate,
            withscores,
        })
    };
    Ok(job(name, query, deferred, keys))
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`: the keys and the limit.
fn sintercard<'s, 'a>(args: &'s [&'a [u8]]) -> Result<(&'s [&'a [u8]], u64), Reply> {
    let numkeys = args
        .get(1)
        .and_then(|n| strict_i64(n))
        .filter(|&n| n >= 1)
        .ok_or_else(|| Reply::Error("ERR numkeys should be greater than 0".into()))?;
    let end = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|&end| end <= args.len())
        .ok_or_else(|| {
            Reply::Error("ERR Number of keys can't be greater than number of args".into())
        })?;
    let mut limit = 0u64;
    let mut j = end;
    while let Some(opt) = args.get(j) {
        match args.get(j + 1) {
            Some(n) if opt.eq_ignore_ascii_case(b"limit") => {
                limit = strict_i64(n)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| Reply::Error("ERR LIMIT can't be negative".into()))?;
                j += 2;
            }
            _ => return Err(syntax()),
        }
    }
    Ok((args.get(2..end).unwrap_or_default(), limit))
}

/// The reads that fetch one key's contents, in order: `SMEMBERS key`; for the sorted-set
/// commands `ZRANGE key 0 -1 WITHSCORES` then `SMEMBERS key` (a plain set is an input too).
pub fn read_requests(job: &Job, key: &[u8]) -> Vec<Bytes> {
    let mut reads = Vec::with_capacity(2);
    if job.query.sorted_sets() {
        reads.push(command(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]));
    }
    reads.push(command(&[b"SMEMBERS", key]));
    reads
}

/// How many reads [`read_requests`] makes per key.
fn reads_per_key(job: &Job) -> usize {
    if job.query.sorted_sets() { 2 } else { 1 }
}

fn command(args: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::with_capacity(args.iter().map(|a| a.len() + 16).sum::<usize>() + 8);
    membership::resp::put_len(&mut out, b'*', args.len());
    for a in args {
        membership::resp::put_len(&mut out, b'$', a.len());
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// One read's reply, as far as the algebra cares.
enum Input<'a> {
    Members(Vec<&'a [u8]>),
    Error(Reply),
}

/// The element count an array reply declares (0 for anything else).
fn declared(raw: &[u8]) -> usize {
    let Some(rest) = raw.strip_prefix(b"*").or_else(|| raw.strip_prefix(b"~")) else {
        return 0;
    };
    let line = rest.split(|&b| b == b'\r').next().unwrap_or_default();
    strict_i64(line)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// Splits a reply to `SMEMBERS` (an array or set of bulk strings) into its members without
/// copying; an error reply is kept as the error.
fn members(raw: &[u8]) -> Input<'_> {
    if raw.first() == Some(&b'-') {
        let line = raw.split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line.get(1..).unwrap_or_default()).into_owned();
        return Input::Error(Reply::Error(line));
    }
    let unexpected = || {
        Input::Error(Reply::Error(format!(
            "ERR unexpected backend reply to SMEMBERS: {:?}",
            String::from_utf8_lossy(raw.get(..raw.len().min(64)).unwrap_or_default())
        )))
    };
    let n = declared(raw);
    let Some(nl) = raw.iter().position(|&b| b == b'\n') else {
        return unexpected();
    };
    if !matches!(raw.first(), Some(b'*' | b'~')) {
        return unexpected();
    }
    let mut rest = raw.get(nl + 1..).unwrap_or_default();
    // Each member takes at least `$0\r\n\r\n`: the capacity never exceeds what was read.
    let mut out = Vec::with_capacity(n.min(rest.len() / 6));
    for _ in 0..n {
        let Some(body) = rest.strip_prefix(b"$") else {
            return unexpected();
        };
        let Some(nl) = body.iter().position(|&b| b == b'\n') else {
            return unexpected();
        };
        let len = body
            .get(..nl.saturating_sub(1))
            .and_then(strict_i64)
            .and_then(|l| usize::try_from(l).ok());
        let Some(len) = len else {
            return unexpected();
        };
        let (Some(m), Some(b"\r\n")) = (
            body.get(nl + 1..nl + 1 + len),
            body.get(nl + 1 + len..nl + 3 + len),
        ) else {
            return unexpected();
        };
        out.push(m);
        rest = body.get(nl + 3 + len..).unwrap_or_default();
    }
    Input::Members(out)
}

/// The reply to `job` from the reads' raw replies (the [`read_requests`] of every distinct
/// key, in [`parse`]'s order), reading at most `max` members in all; `proto` is the client's
/// (a RESP3 client gets WITHSCORES pairs). Members are sliced out of the replies, never
/// copied.
pub fn compute(job: &Job, raws: &[Bytes], max: usize, proto: Proto) -> Reply {
    let per = reads_per_key(job);
    // A WITHSCORES reply declares two elements per member.
    let total = raws.iter().enumerate().fold(0usize, |a, (i, r)| {
        let n = declared(r);
        a.saturating_add(if per == 2 && i % 2 == 0 { n / 2 } else { n })
    });
    if total > max {
        return Reply::Error(format!(
            "ERR {} across slots would read {total} members, more than the proxy computes \
             (algebra-max-members {max}); keep the keys in one slot with a hash tag",
            job.name
        ));
    }
    let slices = Slices::new(raws);
    if job.query.sorted_sets() {
        let mut decoded = Vec::with_capacity(raws.len() / 2);
        for pair in raws.chunks(2) {
            decoded.push(scored_input(pair));
        }
        // Every key's type is checked in key order before the options' errors, as Redis does.
        let mut inputs: Vec<&[(&[u8], f64)]> = Vec::with_capacity(job.inputs.len());
        for &i in &job.inputs {
            match decoded.get(i) {
                Some(Ok(z)) => inputs.push(z),
                Some(Err(e)) => return e.clone(),
                None => return Reply::Error("ERR internal error: missing read".into()),
            }
        }
        if let Some(e) = &job.deferred {
            return e.clone();
        }
        return match &job.query {
            Query::Scored(q) => {
                let out = zcombine(q.op, q.aggregate, &inputs, &q.weights, 0);
                scored_reply(&slices, out, q.withscores, proto)
            }
            Query::ScoredCard { limit } => {
                let limit = usize::try_from(*limit).unwrap_or(usize::MAX);
                let n = zcombine(Op::Inter, Aggregate::Sum, &inputs, &[], limit).len();
                Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }
            _ => Reply::Error("ERR internal error: not a sorted-set command".into()),
        };
    }
    let mut decoded = Vec::with_capacity(raws.len());
    for r in raws {
        decoded.push(members(r));
    }
    // Every key is checked in key order before anything is computed, as Redis does.
    let mut sets: Vec<&[&[u8]]> = Vec::with_capacity(job.inputs.len());
    for &i in &job.inputs {
        match decoded.get(i) {
            Some(Input::Members(m)) => sets.push(m),
            Some(Input::Error(e)) => return e.clone(),
            None => return Reply::Error("ERR internal error: missing read".into()),
        }
    }
    if let Some(e) = &job.deferred {
        return e.clone();
    }
    let out =
        |ms: Vec<&[u8]>| Reply::Set(ms.into_iter().map(|m| Reply::Bulk(slices.of(m))).collect());
    match job.query {
        Query::Members(Op::Union) => out(union(&sets)),
        Query::Members(Op::Inter) => out(inter(&sets, 0)),
        Query::Members(Op::Diff) => out(diff(&sets)),
        Query::Card { limit } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Reply::Int(i64::try_from(inter(&sets, limit).len()).unwrap_or(i64::MAX))
        }
        _ => Reply::Error("ERR internal error: not a set command".into()),
    }
}

/// Finds the reply a member was sliced from (by address), to share its bytes.
struct Slices<'r> {
    /// (start address, reply), by address.
    by_start: Vec<(usize, &'r Bytes)>,
}

impl<'r> Slices<'r> {
    fn new(raws: &'r [Bytes]) -> Slices<'r> {
        let mut by_start: Vec<(usize, &Bytes)> =
            raws.iter().map(|r| (r.as_ptr() as usize, r)).collect();
        by_start.sort_unstable_by_key(|&(a, _)| a);
        Slices { by_start }
    }

    /// The `Bytes` of `m`, sharing the reply's (a copy if it is not in one).
    fn of(&self, m: &[u8]) -> Bytes {
        let at = m.as_ptr() as usize;
        let i = self.by_start.partition_point(|&(start, _)| start <= at);
        match i.checked_sub(1).and_then(|i| self.by_start.get(i)) {
            Some(&(start, r)) if at + m.len() <= start + r.len() => r.slice_ref(m),
            _ => Bytes::copy_from_slice(m),
        }
    }
}

/// One key's input to a sorted-set command from its two reads (`ZRANGE ... WITHSCORES`, then
/// `SMEMBERS`): its members and scores; a plain set's members with score 1; the error (a
/// `WRONGTYPE` when the key is neither).
fn scored_input(pair: &[Bytes]) -> Result<Vec<(&[u8], f64)>, Reply> {
    let (Some(z), Some(set)) = (pair.first(), pair.get(1)) else {
        return Err(Reply::Error("ERR internal error: missing read".into()));
    };
    match members(z) {
        Input::Members(flat) => {
            let mut out = Vec::with_capacity(flat.len() / 2);
            for p in flat.chunks(2) {
                let score = p
                    .get(1)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.parse::<f64>().ok());
                match (p.first(), score) {
                    (Some(&m), Some(score)) => out.push((m, score)),
                    _ => {
                        return Err(Reply::Error(
                            "ERR unexpected backend reply to ZRANGE WITHSCORES".into(),
                        ));
                    }
                }
            }
            Ok(out)
        }
        Input::Error(Reply::Error(e)) if e.starts_with("WRONGTYPE") => match members(set) {
            Input::Members(ms) => Ok(ms.into_iter().map(|m| (m, 1.0)).collect()),
            Input::Error(_) => Err(Reply::Error(e)),
        },
        Input::Error(e) => Err(e),
    }
}

/// Redis's `zunionInterDiffGenericCommand` over decoded inputs (key order, with their
/// weights; missing weights are 1): the members with their combined scores, by score then
/// member. An intersection stops at `limit` members (0: none), for ZINTERCARD.
fn zcombine<'a>(
    op: Op,
    aggregate: Aggregate,
    inputs: &[ScoredSlice<'_, 'a>],
    weights: &[f64],
    limit: usize,
) -> Vec<(&'a [u8], f64)> {
    let mut srcs: Vec<(ScoredSlice<'_, 'a>, f64)> = inputs
        .iter()
        .enumerate()
        .map(|(i, z)| (*z, weights.get(i).copied().unwrap_or(1.0)))
        .collect();
    if op != Op::Diff {
        // Smallest first, a stable sort as Redis's qsort (the order scores are summed in).
        srcs.sort_by_key(|(z, _)| z.len());
    }
    let weighted = |w: f64, s: f64| {
        let v = w * s;
        if v.is_nan() { 0.0 } else { v }
    };
    let mut out: Vec<(&'a [u8], f64)> = Vec::new();
    match op {
        Op::Inter => {
            let Some(((first, w0), rest)) = srcs.split_first() else {
                return out;
            };
            let lookups: Vec<std::collections::HashMap<&[u8], f64, foldhash::fast::RandomState>> =
                rest.iter()
                    .map(|(z, _)| z.iter().copied().collect())
                    .collect();
            'members: for &(m, sc) in first.iter() {
                let mut score = weighted(*w0, sc);
                for ((_, w), l) in rest.iter().zip(&lookups) {
                    match l.get(m) {
                        Some(v) => aggregate.apply(&mut score, v * w),
                        None => continue 'members,
                    }
                }
                out.push((m, score));
                if out.len() == limit {
                    break;
                }
            }
        }
        Op::Union => {
            let mut at: std::collections::HashMap<&[u8], usize, foldhash::fast::RandomState> =
                Default::default();
            for (z, w) in &srcs {
                for &(m, sc) in z.iter() {
                    let score = weighted(*w, sc);
                    match at.get(m).and_then(|&i| out.get_mut(i)) {
                        Some((_, t)) => aggregate.apply(t, score),
                        None => {
                            at.insert(m, out.len());
                            out.push((m, score));
                        }
                    }
                }
            }
        }
        Op::Diff => {
            if let Some(((first, _), rest)) = srcs.split_first() {
                let mut drop = FastSet::default();
                for (z, _) in rest {
                    drop.extend(z.iter().map(|&(m, _)| m));
                }
                out = first
                    .iter()
                    .copied()
                    .filter(|(m, _)| !drop.contains(m))
                    .collect();
            }
        }
    }
    out.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(b.0))
    });
    out
}

/// ZUNION/ZINTER/ZDIFF's reply: the members; WITHSCORES, member and score flat in RESP2,
/// `[member, score]` pairs in RESP3.
fn scored_reply(
    slices: &Slices<'_>,
    out: Vec<(&[u8], f64)>,
    withscores: bool,
    proto: Proto,
) -> Reply {
    let member = |m: &[u8]| Reply::Bulk(slices.of(m));
    Reply::Array(match (withscores, proto) {
        (false, _) => out.into_iter().map(|(m, _)| member(m)).collect(),
        (true, Proto::Resp2) => out
            .into_iter()
            .flat_map(|(m, s)| [member(m), Reply::Double(s)])
            .collect(),
        (true, Proto::Resp3) => out
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![member(m), Reply::Double(s)]))
            .collect(),
    })
}

/// Members of any input, in first-seen order.
fn union<'a>(sets: &[&[&'a [u8]]]) -> Vec<&'a [u8]> {
    let mut seen = FastSet::default();
    let mut out = Vec::new();
    for set in sets {
        for &m in set.iter() {
            if seen.insert(m) {
                out.push(m);
            }
        }
    }
    out
}

/// Members of every input (none if one is missing, that is empty), in the smallest input's
/// order; at most `limit` of them (0: all).
fn inter<'a>(sets: &[&[&'a [u8]]], limit: usize) -> Vec<&'a [u8]> {
    let Some(smallest) = (0..sets.len()).min_by_key(|&i| sets.get(i).map_or(0, |s| s.len())) else {
        return Vec::new();
    };
    let Some(first) = sets.get(smallest) else {
        return Vec::new();
    };
    let others: Vec<FastSet<'_>> = sets
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != smallest)
        .map(|(_, s)| s.iter().copied().collect())
        .collect();
    let mut out = Vec::new();
    for &m in first.iter() {
        if others.iter().all(|o| o.contains(m)) {
            out.push(m);
            if out.len() == limit {
                break;
            }
        }
    }
    out
}

/// The first input's members that no other input has.
fn diff<'a>(sets: &[&[&'a [u8]]]) -> Vec<&'a [u8]> {
    let Some((first, rest)) = sets.split_first() else {
        return Vec::new();
    };
    let mut drop = FastSet::default();
    for set in rest {
        drop.extend(set.iter().copied());
    }
    first
        .iter()
        .copied()
        .filter(|m| !drop.contains(m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong_type() -> Reply {
        Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
    }

    fn args<'a>(a: &[&'a str]) -> Vec<&'a [u8]> {
        a.iter().map(|s| s.as_bytes()).collect()
    }

    fn smembers(ms: &[&str]) -> Bytes {
        let mut out = BytesMut::new();
        membership::resp::put_len(&mut out, b'*', ms.len());
        for m in ms {
            membership::resp::put_len(&mut out, b'$', m.len());
            out.put_slice(m.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.freeze()
    }

    fn sorted(r: Reply) -> Vec<String> {
        let Reply::Set(items) = r else {
            panic!("not a set: {r:?}");
        };
        let mut v: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    fn run(cmd: &[&str], replies: &[Bytes]) -> Reply {
        let a = args(cmd);
        let id = membership::command::lookup_any(a[0]).expect("command").id;
        match parse(id, &a) {
            Ok((job, keys)) => {
                assert_eq!(keys.len(), replies.len(), "{cmd:?}");
                compute(&job, replies, MAX_MEMBERS, Proto::Resp2)
            }
            Err(e) => e,
        }
    }

    #[test]
    fn union_inter_diff() {
        let a = smembers(&["1", "2", "3"]);
        let b = smembers(&["2", "3", "4"]);
        let none = smembers(&[]);
        assert_eq!(
            sorted(run(&["sunion", "a", "b"], &[a.clone(), b.clone()])),
            ["1", "2", "3", "4"]
        );
        assert_eq!(
            sorted(run(&["sinter", "a", "b"], &[a.clone(), b.clone()])),
            ["2", "3"]
        );
        assert_eq!(
            sorted(run(&["sdiff", "a", "b"], &[a.clone(), b.clone()])),
            ["1"]
        );
        // A missing key reads as empty: the intersection is empty, the difference unchanged.
        assert!(sorted(run(&["sinter", "a", "m"], &[a.clone(), none.clone()])).is_empty());
        assert_eq!(
            sorted(run(&["sdiff", "a", "m"], &[a.clone(), none.clone()])),
            ["1", "2", "3"]
        );
        // A key named twice is read once.
        assert_eq!(
            sorted(run(&["sdiff", "a", "b", "a"], &[a.clone(), b.clone()])),
            Vec::<String>::new()
        );
        assert_eq!(
            sorted(run(&["sinter", "a", "a"], std::slice::from_ref(&a))),
            ["1", "2", "3"]
        );
    }

    #[test]
    fn wrong_type_wins_over_a_missing_key() {
        let wt = Bytes::from_static(
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        );
        let none = smembers(&[]);
        for cmd in ["sinter", "sunion", "sdiff"] {
            assert_eq!(
                run(&[cmd, "m", "s"], &[none.clone(), wt.clone()]),
                wrong_type()
            );
        }
        assert_eq!(
            run(&["sintercard", "2", "m", "s"], &[none, wt]),
            wrong_type()
        );
    }

    #[test]
    fn sintercard_options_in_redis_order() {
        let a = smembers(&["1", "2", "3"]);
        let b = smembers(&["2", "3", "4"]);
        let ab = [a.clone(), b.clone()];
        let e = |s: &str| Reply::Error(s.into());
        assert_eq!(run(&["sintercard", "2", "a", "b"], &ab), Reply::Int(2));
        assert_eq!(
            run(&["sintercard", "2", "a", "b", "LIMIT", "1"], &ab),
            Reply::Int(1)
        );
        assert_eq!(
            run(&["sintercard", "2", "a", "b", "limit", "0"], &ab),
            Reply::Int(2)
        );
        assert_eq!(
            run(
                &["sintercard", "2", "a", "b", "limit", "5", "limit", "1"],
                &ab
            ),
            Reply::Int(1)
        );
        for (cmd, want) in [
            (
                &["sintercard", "0", "a"][..],
                "ERR numkeys should be greater than 0",
            ),
            (
                &["sintercard", "abc", "a"],
                "ERR numkeys should be greater than 0",
            ),
            (
                &["sintercard", "-1", "a"],
                "ERR numkeys should be greater than 0",
            ),
            (
                &["sintercard", "3", "a", "b"],
                "ERR Number of keys can't be greater than number of args",
            ),
            (&["sintercard", "2", "a", "b", "limit"], "ERR syntax error"),
            (
                &["sintercard", "2", "a", "b", "bogus", "1"],
                "ERR syntax error",
            ),
            (
                &["sintercard", "2", "a", "b", "limit", "-1"],
                "ERR LIMIT can't be negative",
            ),
            (
                &["sintercard", "2", "a", "b", "limit", "abc"],
                "ERR LIMIT can't be negative",
            ),
        ] {
            assert_eq!(run(cmd, &ab), e(want), "{cmd:?}");
        }
        // An option's error wins over a key's type: nothing is read.
        let a = args(&["sintercard", "2", "a", "s", "limit", "-1"]);
        assert!(parse(CommandId::Sintercard, &a).is_err());
        // `LIMIT` counted among the keys is a key.
        let a = args(&["sintercard", "3", "a", "b", "limit"]);
        let (_, keys) = parse(CommandId::Sintercard, &a).expect("parses");
        assert_eq!(keys, args(&["a", "b", "limit"]));
    }

    #[test]
    fn too_many_members_is_refused_before_decoding() {
        let huge = Bytes::from(format!("*{}\r\n", MAX_MEMBERS + 1));
        let r = run(&["sunion", "a", "b"], &[huge, smembers(&[])]);
        assert!(
            matches!(&r, Reply::Error(e) if e.starts_with("ERR SUNION across slots would read")),
            "{r:?}"
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for bad in [
            &b"*2\r\n$1\r\na\r\n"[..],
            b"*1\r\n$5\r\nab",
            b"*1\r\n:1\r\n",
            b"+OK\r\n",
            b"*1\r\n$-1\r\n",
            b"*1",
        ] {
            let r = run(&["sunion", "a", "b"], &[Bytes::from(bad), smembers(&[])]);
            assert!(matches!(r, Reply::Error(_)), "{bad:?}: {r:?}");
        }
    }

    #[test]
    fn members_are_slices_of_the_replies() {
        let a = smembers(&["xyz"]);
        let r = run(&["sunion", "a", "b"], &[a.clone(), smembers(&[])]);
        let Reply::Set(items) = r else { panic!() };
        let Some(Reply::Bulk(m)) = items.first() else {
            panic!()
        };
        assert_eq!(&m[..], b"xyz");
        let start = a.as_ptr() as usize;
        assert!((start..start + a.len()).contains(&(m.as_ptr() as usize)));
    }

    fn zrange(items: &[(&str, &str)]) -> Bytes {
        let flat: Vec<&str> = items.iter().flat_map(|(m, s)| [*m, *s]).collect();
        smembers(&flat)
    }

    fn wt() -> Bytes {
        Bytes::from_static(
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        )
    }

    #[test]
    fn sorted_sets_combine_as_redis() {
        let za = zrange(&[("x", "0.10000000000000001"), ("y", "1"), ("z", "inf")]);
        let zb = zrange(&[("z", "-inf"), ("x", "0.20000000000000001"), ("w", "2")]);
        let set = smembers(&["x", "w"]);
        let reads = |z: &Bytes| [z.clone(), wt()];
        let all: Vec<Bytes> = reads(&za).into_iter().chain(reads(&zb)).collect();
        let run3 = |cmd: &[&str], raws: &[Bytes], proto| {
            let a = args(cmd);
            let id = membership::command::lookup_any(a[0]).expect("command").id;
            let (job, _) = parse(id, &a).expect("parses");
            compute(&job, raws, MAX_MEMBERS, proto)
        };
        let m = |s: &str| Reply::Bulk(Bytes::from(s.to_string()));
        // inf + -inf is 0; 0.1 + 0.2 keeps its rounding; by score then member.
        assert_eq!(
            run3(&["zinter", "2", "a", "b", "WITHSCORES"], &all, Proto::Resp2),
            Reply::Array(vec![
                m("z"),
                Reply::Double(0.0),
                m("x"),
                Reply::Double(0.1 + 0.2)
            ])
        );
        assert_eq!(
            run3(
                &["zunion", "2", "a", "b", "aggregate", "min"],
                &all,
                Proto::Resp2
            ),
            Reply::Array(vec![m("z"), m("x"), m("y"), m("w")])
        );
        assert_eq!(
            run3(&["zunion", "1", "a", "WITHSCORES"], &all[..2], Proto::Resp3),
            Reply::Array(vec![
                Reply::Array(vec![m("x"), Reply::Double(0.1)]),
                Reply::Array(vec![m("y"), Reply::Double(1.0)]),
                Reply::Array(vec![m("z"), Reply::Double(f64::INFINITY)]),
            ])
        );
        // A plain set is an input with score 1; weights multiply (0 × inf is 0).
        let with_set = [za.clone(), wt(), wt(), set.clone()];
        assert_eq!(
            run3(
                &["zunion", "2", "a", "s", "weights", "0", "3", "withscores"],
                &with_set,
                Proto::Resp2
            ),
            Reply::Array(vec![
                m("y"),
                Reply::Double(0.0),
                m("z"),
                Reply::Double(0.0),
                m("w"),
                Reply::Double(3.0),
                m("x"),
                Reply::Double(3.0),
            ])
        );
        assert_eq!(
            run3(&["zdiff", "2", "a", "s"], &with_set, Proto::Resp2),
            Reply::Array(vec![m("y"), m("z")])
        );
        assert_eq!(
            run3(
                &["zintercard", "2", "a", "b", "limit", "1"],
                &all,
                Proto::Resp2
            ),
            Reply::Int(1)
        );
        // A key of neither type: WRONGTYPE, before an option's error.
        let bad = [za, wt(), wt(), wt()];
        assert_eq!(
            run3(
                &["zunion", "2", "a", "s", "weights", "x", "1"],
                &bad,
                Proto::Resp2
            ),
            wrong_type()
        );
        assert_eq!(
            run3(
                &["zunion", "2", "a", "b", "weights", "x", "1"],
                &all,
                Proto::Resp2
            ),
            Reply::Error("ERR weight value is not a float".into())
        );
    }

    #[test]
    fn sorted_set_key_counts_fail_before_any_read() {
        let e = |s: &str| Err(Reply::Error(s.into()));
        let p = |cmd: &[&str]| {
            let a = args(cmd);
            let id = membership::command::lookup_any(a[0]).expect("command").id;
            parse(id, &a).map(|_| ())
        };
        assert_eq!(
            p(&["zunion", "0", "a"]),
            e("ERR at least 1 input key is needed for 'zunion' command")
        );
        assert_eq!(
            p(&["ZINTERCARD", "-1", "a"]),
            e("ERR at least 1 input key is needed for 'zintercard' command")
        );
        assert_eq!(
            p(&["zinter", "x", "a"]),
            e("ERR value is not an integer or out of range")
        );
        assert_eq!(p(&["zdiff", "3", "a", "b"]), e("ERR syntax error"));
        // Options' errors wait for the reads.
        assert!(p(&["zdiff", "2", "a", "b", "weights", "1", "1"]).is_ok());
    }
}
