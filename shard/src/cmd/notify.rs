//! The keyspace events of commands (`notify-keyspace-events`), with Redis 7's event names
//! and order (`t_string.c`, `t_list.c`, `t_set.c`, `t_zset.c`, `t_hash.c`, `db.c`,
//! `expire.c`): each write raises its events after it ran, from its arguments, its reply and
//! what [`before`] saw of its keys (whether a key existed, a sorted set's scores). A key a
//! command empties is followed by its `del` event, as in Redis.
//!
//! Nothing runs while notifications are off or nobody is subscribed (one atomic load each).
//! Blocking pops raise theirs here when they find something at once; a blocked client served
//! later by another client's write raises them from `blocking::after_write` (the events travel
//! in `blocking::Served`). Not covered: `new` and `keymiss`.

use bytes::Bytes;
use membership::command::{CommandId, CommandSpec};

use super::args::eq;
use super::session::Session;
use crate::error::CmdResult;
use crate::notify::class;
use crate::protocol::{Args, Reply};

/// What a command's events depend on that its reply does not tell.
pub struct Seen {
    /// Whether each key named by the command existed before it ran (DEL, stores, LTRIM).
    existed: Vec<bool>,
    /// GETEX: whether the key had a TTL (PERSIST tells only if it had).
    had_ttl: bool,
    /// ZADD, ZINCRBY: the named members' scores before.
    scores: Vec<Option<f64>>,
    /// SETBIT, BITFIELD: the string before (`setbit` is raised only if it changed).
    string: Option<Bytes>,
}

const COMMAND_CLASSES: u32 =
    class::GENERIC | class::STRING | class::LIST | class::SET | class::HASH | class::ZSET;

/// Called before a command runs: `None` unless it is a write whose events someone may hear.
#[inline]
pub fn before(s: &mut Session, spec: &CommandSpec, a: &Args) -> Option<Seen> {
    if !spec.is_write() || !s.shared.notify.wants(COMMAND_CLASSES) {
        return None;
    }
    use CommandId::*;
    let mut seen = Seen {
        existed: Vec::new(),
        had_ttl: false,
        scores: Vec::new(),
        string: None,
    };
    match spec.id {
        Del | Unlink => {
            seen.existed = a.slice(1).iter().map(|k| exists(s, k)).collect();
        }
        Ltrim | Sinterstore | Sunionstore | Sdiffstore | Zunionstore | Zinterstore | Zdiffstore
        | Zrangestore => seen.existed = vec![exists(s, a.get(1))],
        Bitop => seen.existed = vec![exists(s, a.get(2))],
        Setbit | Bitfield => seen.string = string(s, a.get(1)),
        Getex => {
            let key = a.get(1);
            seen.had_ttl = s
                .shared
                .db
                .for_key(key)
                .peek(key, s.now)
                .is_some_and(|e| e.expire_at() != 0);
        }
        Zadd | Zincrby => {
            let members = zadd_members(spec.id, a);
            seen.scores = scores(s, a.get(1), &members);
        }
        Geoadd => {
            let members = super::geo::geoadd_members(a);
            seen.scores = scores(s, a.get(1), &members);
        }
        Georadius | Georadiusbymember | Geosearchstore | Sort => {
            if let Some(k) = store_key(spec, a) {
                seen.existed = vec![exists(s, &k)];
            }
        }
        _ => {}
    }
    Some(seen)
}

/// The string at `key` (a shared handle, not a copy), if it holds one.
fn string(s: &Session, key: &[u8]) -> Option<Bytes> {
    match &s.shared.db.for_key(key).peek(key, s.now)?.value {
        crate::store::Value::Str(b) => Some(b.clone()),
        _ => None,
    }
}

fn exists(s: &Session, key: &[u8]) -> bool {
    s.shared.db.for_key(key).contains(key, s.now)
}

/// The members ZADD (after its options, score/member pairs) or ZINCRBY names.
fn zadd_members(id: CommandId, a: &Args) -> Vec<Bytes> {
    if id == CommandId::Zincrby {
        return vec![a.bytes(3)];
    }
    let opts = ["nx", "xx", "gt", "lt", "ch", "incr"];
    let first = (2..a.len())
        .find(|&i| !opts.iter().any(|o| eq(a.get(i), o)))
        .unwrap_or(a.len());
    (first + 1..a.len())
        .step_by(2)
        .map(|i| a.bytes(i))
        .collect()
}

fn scores(s: &mut Session, key: &[u8], members: &[Bytes]) -> Vec<Option<f64>> {
    super::zset::read(s, key, |z| members.iter().map(|m| z.score(m)).collect())
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![None; members.len()])
}

/// The key a GEORADIUS(BYMEMBER) STORE, a GEOSEARCHSTORE or a SORT STORE writes: the last
/// key its key specs find (the first is the source).
fn store_key(spec: &CommandSpec, a: &Args) -> Option<Bytes> {
    spec.written_key_positions(a.len(), |i| a.get(i))
        .last()
        .map(|i| a.bytes(i))
}

/// Whether any option word among `a[from..]` is one of `words`.
fn has_opt(a: &Args, from: usize, words: &[&str]) -> bool {
    a.slice(from).iter().any(|w| words.iter().any(|o| eq(w, o)))
}

fn nonempty(r: &Reply) -> bool {
    match r {
        Reply::Nil | Reply::NilArray => false,
        Reply::Array(v) | Reply::Set(v) => !v.is_empty(),
        Reply::Int(n) => *n > 0,
        _ => true,
    }
}

/// Raises the events of a command that ran (`r` its result; errors raise none).
pub fn after(s: &mut Session, spec: &CommandSpec, a: &Args, r: &CmdResult, seen: Seen) {
    let Ok(reply) = r else { return };
    if matches!(reply, Reply::Error(_)) {
        return;
    }
    let n = s.shared.notify.clone();
    let ev = |c: u32, e: &str, k: &[u8]| n.event(c, e, k);
    let gone = |k: &[u8]| !exists(s, k);
    // The key emptied by the command: `del` after its own event.
    let del_if_gone = |k: &[u8]| {
        if gone(k) {
            ev(class::GENERIC, "del", k);
        }
    };
    let key = a.get(1);
    let ok = matches!(reply, Reply::Ok);
    let one = matches!(reply, Reply::Int(1));
    use CommandId::*;
    match spec.id {
        Set => {
            let get = has_opt(a, 3, &["get"]);
            let done = if get {
                if has_opt(a, 3, &["nx"]) {
                    matches!(reply, Reply::Nil)
                } else if has_opt(a, 3, &["xx"]) {
                    !matches!(reply, Reply::Nil)
                } else {
                    true
                }
            } else {
                ok
            };
            if done {
                ev(class::STRING, "set", key);
                if has_opt(a, 3, &["ex", "px", "exat", "pxat"]) {
                    ev(class::GENERIC, "expire", key);
                }
            }
        }
        Setnx if one => ev(class::STRING, "set", key),
        Setex | Psetex => {
            ev(class::STRING, "set", key);
            ev(class::GENERIC, "expire", key);
        }
        Getset => ev(class::STRING, "set", key),
        Mset => (1..a.len())
            .step_by(2)
            .for_each(|i| ev(class::STRING, "set", a.get(i))),
        Msetnx if one => (1..a.len())
            .step_by(2)
            .for_each(|i| ev(class::STRING, "set", a.get(i))),
        Getdel if nonempty(reply) => ev(class::GENERIC, "del", key),
        Getex if nonempty(reply) => {
            if has_opt(a, 2, &["ex", "px", "exat", "pxat"]) {
                if gone(key) {
                    ev(class::GENERIC, "del", key);
                } else {
                    ev(class::GENERIC, "expire", key);
                }
            } else if has_opt(a, 2, &["persist"]) && seen.had_ttl {
                ev(class::GENERIC, "persist", key);
            }
        }
        Incr | Decr | Incrby | Decrby => ev(class::STRING, "incrby", key),
        Incrbyfloat => ev(class::STRING, "incrbyfloat", key),
        Append => ev(class::STRING, "append", key),
        Setrange if !a.get(3).is_empty() => ev(class::STRING, "setrange", key),
        // Created, grown or a bit flipped: the string is not what it was.
        Setbit if seen.string != string(s, key) => ev(class::STRING, "setbit", key),
        Bitfield
            if super::bitmap::changed(
                a,
                reply,
                seen.string.as_deref(),
                string(s, key).as_deref(),
            ) =>
        {
            ev(class::STRING, "setbit", key)
        }
        Pfadd if one => ev(class::STRING, "pfadd", key),
        Pfmerge if ok => ev(class::STRING, "pfadd", key),
        Bitop => {
            let dst = a.get(2);
            if !gone(dst) {
                ev(class::STRING, "set", dst);
            } else if seen.existed.first() == Some(&true) {
                ev(class::GENERIC, "del", dst);
            }
        }

        Del | Unlink => {
            let mut told: Vec<&[u8]> = Vec::new();
            for (k, existed) in a.slice(1).iter().zip(seen.existed) {
                if existed && !told.contains(&&k[..]) {
                    told.push(k);
                    ev(class::GENERIC, "del", k);
                }
            }
        }
        Expire | Pexpire | Expireat | Pexpireat if one => {
            if gone(key) {
                ev(class::GENERIC, "del", key);
            } else {
                ev(class::GENERIC, "expire", key);
            }
        }
        Persist if one => ev(class::GENERIC, "persist", key),
        Rename | Renamenx if (ok || one) && key != a.get(2) => {
            ev(class::GENERIC, "rename_from", key);
            ev(class::GENERIC, "rename_to", a.get(2));
        }
        Copy if one => ev(class::GENERIC, "copy_to", a.get(2)),

        Lpush | Lpushx if nonempty(reply) => ev(class::LIST, "lpush", key),
        Rpush | Rpushx if nonempty(reply) => ev(class::LIST, "rpush", key),
        Lpop | Rpop if nonempty(reply) => {
            ev(
                class::LIST,
                if spec.id == Lpop { "lpop" } else { "rpop" },
                key,
            );
            del_if_gone(key);
        }
        Lset if ok => ev(class::LIST, "lset", key),
        Lrem if nonempty(reply) => {
            ev(class::LIST, "lrem", key);
            del_if_gone(key);
        }
        Ltrim if ok && seen.existed.first() == Some(&true) => {
            ev(class::LIST, "ltrim", key);
            del_if_gone(key);
        }
        Linsert if nonempty(reply) => ev(class::LIST, "linsert", key),
        Lmove | Rpoplpush if nonempty(reply) => {
            let (from, to) = if spec.id == Rpoplpush {
                (false, true)
            } else {
                (eq(a.get(3), "left"), eq(a.get(4), "left"))
            };
            ev(class::LIST, if to { "lpush" } else { "rpush" }, a.get(2));
            ev(class::LIST, if from { "lpop" } else { "rpop" }, key);
            del_if_gone(key);
        }
        // The blocking pops, when they found something at once (`v[0]` is the key).
        Blpop | Brpop | Bzpopmin | Bzpopmax => {
            if let Reply::Array(v) = reply
                && let Some(Reply::Bulk(k)) = v.first()
            {
                let (c, name) = match spec.id {
                    Blpop => (class::LIST, "lpop"),
                    Brpop => (class::LIST, "rpop"),
                    Bzpopmin => (class::ZSET, "zpopmin"),
                    _ => (class::ZSET, "zpopmax"),
                };
                ev(c, name, k);
                del_if_gone(k);
            }
        }
        Blmove | Brpoplpush if nonempty(reply) => {
            let (from, to) = if spec.id == Brpoplpush {
                (false, true)
            } else {
                (eq(a.get(3), "left"), eq(a.get(4), "left"))
            };
            ev(class::LIST, if to { "lpush" } else { "rpush" }, a.get(2));
            ev(class::LIST, if from { "lpop" } else { "rpop" }, key);
            del_if_gone(key);
        }
        Bzmpop => {
            if let Reply::Array(v) = reply
                && let Some(Reply::Bulk(k)) = v.first()
            {
                let min = has_opt(a, 3, &["min"]);
                ev(class::ZSET, if min { "zpopmin" } else { "zpopmax" }, k);
                del_if_gone(k);
            }
        }
        Lmpop | Blmpop => {
            if let Reply::Array(v) = reply
                && let Some(Reply::Bulk(k)) = v.first()
            {
                let left = has_opt(a, 2, &["left"]);
                ev(class::LIST, if left { "lpop" } else { "rpop" }, k);
                del_if_gone(k);
            }
        }

        Sadd if nonempty(reply) => ev(class::SET, "sadd", key),
        Srem if nonempty(reply) => {
            ev(class::SET, "srem", key);
            del_if_gone(key);
        }
        Smove if one && key != a.get(2) => {
            ev(class::SET, "srem", key);
            del_if_gone(key);
            ev(class::SET, "sadd", a.get(2));
        }
        Spop if nonempty(reply) => {
            ev(class::SET, "spop", key);
            del_if_gone(key);
        }
        Sinterstore | Sunionstore | Sdiffstore | Zunionstore | Zinterstore | Zdiffstore
        | Zrangestore => {
            let (c, name) = match spec.id {
                Sinterstore => (class::SET, "sinterstore"),
                Sunionstore => (class::SET, "sunionstore"),
                Sdiffstore => (class::SET, "sdiffstore"),
                Zunionstore => (class::ZSET, "zunionstore"),
                Zinterstore => (class::ZSET, "zinterstore"),
                Zdiffstore => (class::ZSET, "zdiffstore"),
                _ => (class::ZSET, "zrangestore"),
            };
            if nonempty(reply) {
                ev(c, name, key);
            } else if seen.existed.first() == Some(&true) {
                ev(class::GENERIC, "del", key);
            }
        }

        // GEOADD runs ZADD, which raises the events.
        Geoadd => {
            let members = super::geo::geoadd_members(a);
            if scores(s, key, &members) != seen.scores {
                n.event(class::ZSET, "zadd", key);
            }
        }
        Georadius | Georadiusbymember | Geosearchstore | Sort => {
            if let Some(k) = store_key(spec, a) {
                let (c, name) = match spec.id {
                    Georadius | Georadiusbymember => (class::ZSET, "georadiusstore"),
                    Geosearchstore => (class::ZSET, "geosearchstore"),
                    _ => (class::LIST, "sortstore"),
                };
                if nonempty(reply) {
                    ev(c, name, &k);
                } else if seen.existed.first() == Some(&true) {
                    ev(class::GENERIC, "del", &k);
                }
            }
        }
        Zadd | Zincrby => {
            let members = zadd_members(spec.id, a);
            if scores(s, key, &members) != seen.scores {
                let incr = spec.id == Zincrby || has_opt(a, 2, &["incr"]);
                n.event(class::ZSET, if incr { "zincr" } else { "zadd" }, key);
            }
        }
        Zrem | Zremrangebyrank | Zremrangebyscore | Zremrangebylex if nonempty(reply) => {
            let name = match spec.id {
                Zrem => "zrem",
                Zremrangebyrank => "zremrangebyrank",
                Zremrangebyscore => "zremrangebyscore",
                _ => "zremrangebylex",
            };
            ev(class::ZSET, name, key);
            del_if_gone(key);
        }
        Zpopmin | Zpopmax if nonempty(reply) => {
            let name = if spec.id == Zpopmin {
                "zpopmin"
            } else {
                "zpopmax"
            };
            ev(class::ZSET, name, key);
            del_if_gone(key);
        }
        Zmpop => {
            if let Reply::Array(v) = reply
                && let Some(Reply::Bulk(k)) = v.first()
            {
                let min = has_opt(a, 2, &["min"]);
                ev(class::ZSET, if min { "zpopmin" } else { "zpopmax" }, k);
                del_if_gone(k);
            }
        }

        Hset | Hmset => ev(class::HASH, "hset", key),
        Hsetnx if one => ev(class::HASH, "hset", key),
        Hdel if nonempty(reply) => {
            ev(class::HASH, "hdel", key);
            del_if_gone(key);
        }
        Hincrby => ev(class::HASH, "hincrby", key),
        Hincrbyfloat => ev(class::HASH, "hincrbyfloat", key),
        _ => {}
    }
}
