//! Read-only set algebra across slots, computed by the proxy: `SUNION`, `SINTER`, `SDIFF` and
//! `SINTERCARD` whose keys hash to more than one slot. A single Redis (or a Redis Cluster node,
//! within one slot) computes them itself; across slots the proxy reads every key from its
//! owner (`SMEMBERS`, one read per distinct key, pipelined in the owners' batches) and
//! combines the members here, so the client gets the reply one Redis would give. Writes (the
//! `*STORE` forms) are not computed: they stay `-CROSSSLOT`.
//!
//! Pure functions of the request's arguments ([`parse`]) and the shards' raw replies
//! ([`compute`]), unit-tested without servers; `plan` sends the reads and `session` renders.
//!
//! Redis's order of checks is kept: options are parsed before any key is read (their errors
//! win), then every key's type is checked in key order (a `WRONGTYPE` wins over a missing
//! key), then the result is computed. Memory stays bounded: the members the shards declare
//! are counted before anything is decoded, and more than `algebra-max-members` (default
//! [`MAX_MEMBERS`]) in all refuses the command with an error.

use std::collections::HashSet;

use bytes::{BufMut, Bytes, BytesMut};
use membership::command::CommandId;

use crate::protocol::{Reply, strict_i64};

/// Members (all reads together) a cross-slot command may fetch by default
/// (`algebra-max-members`); more is refused with an error rather than held in the proxy's
/// memory.
pub const MAX_MEMBERS: usize = 1_000_000;

type FastSet<'a> = HashSet<&'a [u8], foldhash::fast::RandomState>;

/// Whether the proxy computes `id` itself when its keys span slots.
pub fn computes(id: CommandId) -> bool {
    matches!(
        id,
        CommandId::Sunion | CommandId::Sinter | CommandId::Sdiff | CommandId::Sintercard
    )
}

/// Which operation combines the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Union,
    Inter,
    Diff,
}

/// What the reply is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// SUNION, SINTER, SDIFF: the members (a set in RESP3).
    Members(Op),
    /// SINTERCARD: the intersection's size, counting no further than `limit` (0: no limit).
    Card { limit: u64 },
}

/// A parsed cross-slot command: what to compute, and which read answers each key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The command's name, upper-case (for the cap's error).
    pub name: &'static str,
    pub query: Query,
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
        _ => return Err(Reply::Error("ERR internal error: not set algebra".into())),
    };
    let keys = keys.unwrap_or_default();
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
    Ok((
        Job {
            name,
            query,
            inputs,
        },
        distinct,
    ))
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

/// The read that fetches one key's contents: `SMEMBERS key`.
pub fn read_request(key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(key.len() + 32);
    out.put_slice(b"*2\r\n$8\r\nSMEMBERS\r\n");
    membership::resp::put_len(&mut out, b'$', key.len());
    out.put_slice(key);
    out.put_slice(b"\r\n");
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

/// The reply to `job` from the reads' raw replies (one per distinct key, in [`parse`]'s
/// order), reading at most `max` members in all. Members are sliced out of the replies,
/// never copied.
pub fn compute(job: &Job, raws: &[Bytes], max: usize) -> Reply {
    let total = raws
        .iter()
        .fold(0usize, |a, r| a.saturating_add(declared(r)));
    if total > max {
        return Reply::Error(format!(
            "ERR {} across slots would read {total} members, more than the proxy computes \
             (algebra-max-members {max}); keep the keys in one slot with a hash tag",
            job.name
        ));
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
    let out = |ms: Vec<&[u8]>| {
        Reply::Set(
            ms.into_iter()
                .map(|m| Reply::Bulk(slice_of(raws, m)))
                .collect(),
        )
    };
    match job.query {
        Query::Members(Op::Union) => out(union(&sets)),
        Query::Members(Op::Inter) => out(inter(&sets, 0)),
        Query::Members(Op::Diff) => out(diff(&sets)),
        Query::Card { limit } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Reply::Int(i64::try_from(inter(&sets, limit).len()).unwrap_or(i64::MAX))
        }
    }
}

/// The `Bytes` of a member, sliced from the reply it was split out of.
fn slice_of(raws: &[Bytes], m: &[u8]) -> Bytes {
    let base = m.as_ptr() as usize;
    raws.iter()
        .find(|r| {
            let start = r.as_ptr() as usize;
            base >= start && base + m.len() <= start + r.len()
        })
        .map_or_else(|| Bytes::copy_from_slice(m), |r| r.slice_ref(m))
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
                compute(&job, replies, MAX_MEMBERS)
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
}
