//! Stream commands with Redis 7.0's replies and error texts (`t_stream.c`): XADD XRANGE
//! XREVRANGE XLEN XDEL XTRIM XSETID, the consumer groups (XGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM), XINFO, and XREAD / XREADGROUP with BLOCK on the blocked-clients registry
//! (`crate::blocking`). Each command checks its arguments in Redis's order, so a request that
//! is wrong in two ways gets the same error from both. Times (IDs from `*`, delivery and seen
//! times, idle times) come from the shard's clock, so tests can pause it.

use bytes::Bytes;
use membership::command::CommandId;
use membership::resp::CommandError;

use super::args::{eq, parse_i64, strict_i64};
use super::session::Session;
use crate::blocking::{Attempt, Served};
use crate::error::{CmdError, CmdResult};
use crate::notify::class;
use crate::protocol::{Args, Proto, Reply};
use crate::store::{Db, Entry, Value};
use crate::value::StreamValue;
use crate::value::stream::{Fields, Group, INVALID_ENTRIES_READ, Nack, StreamId, Trim};

/// Redis's `STREAM_LISTPACK_MAX_SIZE`: the most bytes of fields and values one entry takes.
const ENTRY_MAX_BYTES: usize = 1 << 30;
/// XREAD/XREADGROUP BLOCK without COUNT serve at most this many entries when woken.
const BLOCKED_DEFAULT_COUNT: usize = 1000;

fn invalid_id() -> CmdError {
    CmdError::err("Invalid stream ID specified as stream command argument")
}

fn raw(line: String) -> CmdError {
    CmdError::from(CommandError::Raw(line))
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Redis's `string2ull`: a strict integer (not negative), or what `strtoull` accepts of the
/// whole string (leading spaces, a sign, leading zeros; a `-` wraps around as in C).
fn string2ull(b: &[u8]) -> Option<u64> {
    if let Some(v) = strict_i64(b) {
        return u64::try_from(v).ok();
    }
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let mut rest = b.get(start..)?;
    let mut neg = false;
    if let Some((&s, r)) = rest.split_first()
        && (s == b'+' || s == b'-')
    {
        neg = s == b'-';
        rest = r;
    }
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in rest {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(if neg { 0u64.wrapping_sub(v) } else { v })
}

/// An ID argument (`streamGenericParseIDOrReply`): `ms-seq`, or `ms` with `missing_seq`;
/// `-` and `+` unless `strict`. With `seq_free`, `ms-*` is accepted: the flag says whether
/// the sequence was given.
fn parse_id_full(
    b: &[u8],
    missing_seq: u64,
    strict: bool,
    seq_free: bool,
) -> Result<(StreamId, bool), CmdError> {
    if b.len() > 127 {
        return Err(invalid_id());
    }
    match b {
        b"-" | b"+" if strict => return Err(invalid_id()),
        b"-" => return Ok((StreamId::MIN, true)),
        b"+" => return Ok((StreamId::MAX, true)),
        _ => {}
    }
    let (ms, seq) = match b.iter().position(|&c| c == b'-') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let ms = string2ull(ms).ok_or_else(invalid_id)?;
    match seq {
        Some(b"*") if seq_free => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((
            StreamId::new(ms, string2ull(seq).ok_or_else(invalid_id)?),
            true,
        )),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

fn parse_id(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    parse_id_full(b, missing_seq, false, false).map(|(id, _)| id)
}

fn parse_strict_id(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    parse_id_full(b, missing_seq, true, false).map(|(id, _)| id)
}

/// A range start (`(` excludes it): the first ID in range.
fn range_start(b: &[u8]) -> Result<StreamId, CmdError> {
    if b.len() > 1 && b[0] == b'(' {
        let id = parse_strict_id(&b[1..], 0)?;
        id.incr()
            .ok_or_else(|| CmdError::err("invalid start ID for the interval"))
    } else {
        parse_id(b, 0)
    }
}

/// A range end (`(` excludes it): the last ID in range.
fn range_end(b: &[u8]) -> Result<StreamId, CmdError> {
    if b.len() > 1 && b[0] == b'(' {
        let id = parse_strict_id(&b[1..], u64::MAX)?;
        id.decr()
            .ok_or_else(|| CmdError::err("invalid end ID for the interval"))
    } else {
        parse_id(b, u64::MAX)
    }
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

fn entry_reply(id: StreamId, fields: Fields<'_>) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(
            fields
                .map(|f| Reply::Bulk(Bytes::copy_from_slice(f)))
                .collect(),
        ),
    ])
}

/// Entries from `start` to `end` (`count` 0: all).
fn range_reply(
    s: &StreamValue,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) -> Vec<Reply> {
    let mut out = Vec::new();
    s.walk(start, end, rev, |id, f| {
        out.push(entry_reply(id, f));
        count == 0 || out.len() < count
    });
    out
}

/// Reads the stream at `key`: `Ok(None)` when absent.
fn read<R>(
    s: &mut Session,
    key: &[u8],
    f: impl FnOnce(&StreamValue) -> R,
) -> Result<Option<R>, CmdError> {
    let r = match s.shared.db.for_key(key).lookup(key, s.now) {
        None => None,
        Some(Entry {
            value: Value::Stream(x),
            ..
        }) => Some(f(x)),
        Some(_) => return Err(CmdError::WrongType),
    };
    s.hit(r.is_some());
    Ok(r)
}

/// Runs `f` on the stream at `key` (`Ok(None)` when absent).
fn update<R>(
    db: &Db,
    now: u64,
    key: &[u8],
    f: impl FnOnce(&mut StreamValue) -> R,
) -> Result<Option<R>, CmdError> {
    db.for_key(key)
        .update(key, now, |v| match v {
            Value::Stream(x) => Ok(f(x)),
            _ => Err(CmdError::WrongType),
        })
        .transpose()
}

fn event(s: &Session, name: &str, key: &[u8]) {
    s.shared.notify.event(class::STREAM, name, key);
}

// ---- XADD and XTRIM -----------------------------------------------------------------------

/// What `streamParseAddOrTrimArgsOrReply` reads.
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    nomkstream: bool,
    /// XADD: the ID (`None`: `*`), whether its sequence was given, and its position.
    id: Option<(StreamId, bool)>,
    id_at: usize,
}

fn parse_trim_args(a: &Args, xadd: bool) -> Result<TrimArgs, CmdError> {
    let mut t = TrimArgs {
        trim: None,
        approx: false,
        limit: 0,
        nomkstream: false,
        id: None,
        id_at: a.len(),
    };
    let mut limit_given = false;
    let mut i = 2;
    let both = || {
        CmdError::err("syntax error, MAXLEN and MINID options at the same time are not compatible")
    };
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = a.get(i);
        if xadd && opt == b"*" {
            break;
        } else if eq(opt, "maxlen") && more > 0 {
            if t.trim.is_some() {
                return Err(both());
            }
            t.approx = false;
            let next = a.get(i + 1);
            if more >= 2 && next == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let max = parse_i64(a.get(i + 1))?;
            if max < 0 {
                return Err(CmdError::err("The MAXLEN argument must be >= 0."));
            }
            i += 1;
            t.trim = Some(Trim::MaxLen(max as u64));
        } else if eq(opt, "minid") && more > 0 {
            if t.trim.is_some() {
                return Err(both());
            }
            t.approx = false;
            let next = a.get(i + 1);
            if more >= 2 && next == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let id = parse_strict_id(a.get(i + 1), 0)?;
            i += 1;
            t.trim = Some(Trim::MinId(id));
        } else if eq(opt, "limit") && more > 0 {
            let limit = parse_i64(a.get(i + 1))?;
            if limit < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            t.limit = limit as u64;
            limit_given = true;
            i += 1;
        } else if xadd && eq(opt, "nomkstream") {
            t.nomkstream = true;
        } else if xadd {
            t.id = Some(parse_id_full(opt, 0, true, true)?);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    t.id_at = i;
    if t.limit != 0 && t.trim.is_none() {
        return Err(CmdError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.trim.is_none() {
        return Err(CmdError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !t.approx {
            return Err(CmdError::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if t.approx {
        t.limit = 100 * crate::value::stream::NODE_MAX_ENTRIES as u64;
    } else {
        t.limit = 0;
    }
    Ok(t)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [...]
pub fn xadd(s: &mut Session, a: &Args) -> CmdResult {
    let t = parse_trim_args(a, true)?;
    let fields_at = t.id_at + 1;
    let n = a.len().saturating_sub(fields_at);
    if n < 2 || !n.is_multiple_of(2) {
        return Err(CmdError::from(CommandError::WrongArity("xadd".into())));
    }
    if let Some((id, true)) = t.id
        && id.is_zero()
    {
        return Err(CmdError::err(
            "The ID specified in XADD must be greater than 0-0",
        ));
    }
    let key = a.get(1);
    let mut table = s.shared.db.for_key(key);
    let exists = match table.peek(key, s.now) {
        Some(Entry {
            value: Value::Stream(_),
            ..
        }) => true,
        Some(_) => return Err(CmdError::WrongType),
        None => false,
    };
    if !exists {
        if t.nomkstream {
            return Ok(Reply::Nil);
        }
        table.insert(key, Entry::new(Value::Stream(Box::default()), 0, s.now));
    }
    let now = s.now;
    let pairs = a.slice(fields_at);
    let total: usize = pairs.iter().map(|p| p.len()).sum();
    let r = table.update(key, now, |v| {
        let Value::Stream(x) = v else {
            return Err(CmdError::WrongType);
        };
        if x.last_id == StreamId::MAX {
            return Err(CmdError::err(
                "The stream has exhausted the last possible ID, unable to add more items",
            ));
        }
        let equal_or_smaller = || {
            CmdError::err(
                "The ID specified in XADD is equal or smaller than the target stream top item",
            )
        };
        let id = match t.id {
            None => x.next_id(now).ok_or_else(equal_or_smaller)?,
            Some((id, true)) => id,
            Some((id, false)) if id.ms == x.last_id.ms => {
                x.last_id.incr().ok_or_else(equal_or_smaller)?
            }
            Some((id, false)) => id,
        };
        if id <= x.last_id {
            return Err(equal_or_smaller());
        }
        if total > ENTRY_MAX_BYTES {
            return Err(CmdError::err("Elements are too large to be stored"));
        }
        x.append(id, pairs);
        let trimmed = match t.trim {
            Some(how) => x.trim(how, t.approx, t.limit),
            None => 0,
        };
        Ok((id, trimmed))
    });
    drop(table);
    let (id, trimmed) = r.transpose()?.ok_or(CmdError::WrongType)?;
    event(s, "xadd", key);
    if trimmed > 0 {
        event(s, "xtrim", key);
    }
    Ok(id_reply(id))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(s: &mut Session, a: &Args) -> CmdResult {
    let t = parse_trim_args(a, false)?;
    let key = a.get(1);
    let Some(how) = t.trim else {
        return Err(CmdError::Syntax);
    };
    let n = update(&s.shared.db, s.now, key, |x| x.trim(how, t.approx, t.limit))?.unwrap_or(0);
    if n > 0 {
        event(s, "xtrim", key);
    }
    Ok(Reply::Int(n as i64))
}

// ---- reads ----------------------------------------------------------------------------------

/// XRANGE key start end [COUNT n], XREVRANGE key end start [COUNT n].
pub fn xrange(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let rev = id == CommandId::Xrevrange;
    let (start, end) = if rev {
        (a.get(3), a.get(2))
    } else {
        (a.get(2), a.get(3))
    };
    let start = range_start(start)?;
    let end = range_end(end)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < a.len() {
        if eq(a.get(j), "count") && j + 1 < a.len() {
            count = parse_i64(a.get(j + 1))?.max(0);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let r = read(s, a.get(1), |x| {
        if count == 0 {
            Reply::NilArray
        } else {
            Reply::Array(range_reply(x, start, end, count.max(0) as usize, rev))
        }
    })?;
    Ok(r.unwrap_or(Reply::Array(Vec::new())))
}

pub fn xlen(s: &mut Session, a: &Args) -> CmdResult {
    Ok(Reply::Int(
        read(s, a.get(1), |x| x.len() as i64)?.unwrap_or(0),
    ))
}

/// XDEL key id [id ...]
pub fn xdel(s: &mut Session, a: &Args) -> CmdResult {
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    match t.peek(key, s.now) {
        None => return Ok(Reply::Int(0)),
        Some(Entry {
            value: Value::Stream(_),
            ..
        }) => {}
        Some(_) => return Err(CmdError::WrongType),
    }
    drop(t);
    let ids = a
        .slice(2)
        .iter()
        .map(|b| parse_strict_id(b, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let n = update(&s.shared.db, s.now, key, |x| {
        ids.iter().filter(|id| x.delete(**id)).count()
    })?
    .unwrap_or(0);
    if n > 0 {
        event(s, "xdel", key);
    }
    Ok(Reply::Int(n as i64))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub fn xsetid(s: &mut Session, a: &Args) -> CmdResult {
    let id = parse_strict_id(a.get(2), 0)?;
    let mut entries_added: i64 = -1;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < a.len() {
        let more = a.len() - 1 - i;
        if eq(a.get(i), "entriesadded") && more > 0 {
            entries_added = parse_i64(a.get(i + 1))?;
            if entries_added < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
        } else if eq(a.get(i), "maxdeletedid") && more > 0 {
            max_deleted = parse_strict_id(a.get(i + 1), 0)?;
            if id < max_deleted {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let key = a.get(1);
    let r = update(&s.shared.db, s.now, key, |x| {
        if !x.is_empty() {
            if x.last_valid_id().is_some_and(|max| id < max) {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the target stream top item",
                ));
            }
            if entries_added != -1 && x.len() > entries_added as u64 {
                return Err(CmdError::err(
                    "The entries_added specified in XSETID is smaller than the target stream length",
                ));
            }
        }
        x.last_id = id;
        if entries_added != -1 {
            x.entries_added = entries_added as u64;
        }
        if !max_deleted.is_zero() {
            x.max_deleted = max_deleted;
        }
        Ok(())
    })?;
    match r {
        None => Err(CmdError::NoSuchKey),
        Some(r) => {
            r?;
            event(s, "xsetid", key);
            Ok(Reply::Ok)
        }
    }
}

// ---- consumer groups ------------------------------------------------------------------------

fn no_group_for_key(group: &[u8], key: &[u8]) -> CmdError {
    raw(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

fn no_key_or_group(key: &[u8], group: &[u8]) -> CmdError {
    raw(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// Whether `key` holds a stream (`Ok(false)`: absent).
fn is_stream(s: &Session, key: &[u8]) -> Result<bool, CmdError> {
    match s.shared.db.for_key(key).peek(key, s.now) {
        None => Ok(false),
        Some(Entry {
            value: Value::Stream(_),
            ..
        }) => Ok(true),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Redis 7.0's `addReplyHelp`, whose last line is "Prints this help.".
fn help(container: &str, lines: &[&str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )));
    out.extend(lines.iter().map(|l| Reply::Status((*l).to_string())));
    out.push(Reply::Simple("HELP"));
    out.push(Reply::Simple("    Prints this help."));
    Reply::Array(out)
}

fn subcommand_syntax(a: &Args, container: &str) -> CmdError {
    CmdError::SubcommandSyntax {
        container: container.into(),
        sub: text(a.get(1)).into_owned(),
    }
}

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP.
pub fn xgroup(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    use CommandId::*;
    if id == XgroupHelp {
        return Ok(help(
            "XGROUP",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        ));
    }
    let (create, setid) = (id == XgroupCreate, id == XgroupSetid);
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut i = 5;
    while i < a.len() {
        if create && eq(a.get(i), "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && eq(a.get(i), "entriesread") && i + 1 < a.len() {
            entries_read = parse_i64(a.get(i + 1))?;
            if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                return Err(CmdError::err(
                    "value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(subcommand_syntax(a, "XGROUP"));
        }
    }
    let (key, group) = (a.get(2), a.get(3));
    let exists = is_stream(s, key)?;
    if !mkstream {
        if !exists {
            return Err(CmdError::err(
                "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            ));
        }
        let has_group = read(s, key, |x| x.groups.contains_key(group))?.unwrap_or(false);
        if !has_group && matches!(id, XgroupSetid | XgroupCreateconsumer | XgroupDelconsumer) {
            return Err(no_group_for_key(group, key));
        }
    }
    let (db, now) = (&s.shared.db, s.now);
    match id {
        XgroupCreate if a.len() <= 8 => {
            let start = if a.get(4) == b"$" {
                None
            } else {
                Some(parse_strict_id(a.get(4), 0)?)
            };
            if !exists {
                db.for_key(key)
                    .insert(key, Entry::new(Value::Stream(Box::default()), 0, now));
            }
            let created = update(db, now, key, |x| {
                let last = start.unwrap_or(x.last_id);
                if x.groups.contains_key(group) {
                    return false;
                }
                x.groups.insert(
                    Bytes::copy_from_slice(group),
                    Group::new(last, entries_read),
                );
                true
            })?
            .unwrap_or(false);
            if !created {
                return Err(raw("BUSYGROUP Consumer Group name already exists".into()));
            }
            event(s, "xgroup-create", key);
            Ok(Reply::Ok)
        }
        XgroupSetid if a.len() == 5 || a.len() == 7 => {
            let to = if a.get(4) == b"$" {
                None
            } else {
                Some(parse_id(a.get(4), 0)?)
            };
            update(db, now, key, |x| {
                let last = to.unwrap_or(x.last_id);
                if let Some(g) = x.groups.get_mut(group) {
                    g.last_id = last;
                    g.entries_read = entries_read;
                }
            })?;
            event(s, "xgroup-setid", key);
            Ok(Reply::Ok)
        }
        XgroupDestroy => {
            let gone = update(db, now, key, |x| x.groups.remove(group).is_some())?.unwrap_or(false);
            if gone {
                event(s, "xgroup-destroy", key);
            }
            Ok(Reply::Int(i64::from(gone)))
        }
        XgroupCreateconsumer => {
            let consumer = a.get(4);
            let created = update(db, now, key, |x| {
                let g = x.groups.get_mut(group)?;
                if g.consumers.contains_key(consumer) {
                    return Some(false);
                }
                g.consumer(consumer, now);
                Some(true)
            })?
            .flatten()
            .unwrap_or(false);
            if created {
                event(s, "xgroup-createconsumer", key);
            }
            Ok(Reply::Int(i64::from(created)))
        }
        XgroupDelconsumer => {
            let consumer = a.get(4);
            let pending = update(db, now, key, |x| {
                let g = x.groups.get_mut(group)?;
                let c = g.consumers.remove(consumer)?;
                for id in &c.pel {
                    g.pel.remove(id);
                }
                Some(c.pel.len())
            })?
            .flatten();
            if pending.is_some() {
                event(s, "xgroup-delconsumer", key);
            }
            Ok(Reply::Int(pending.unwrap_or(0) as i64))
        }
        _ => Err(subcommand_syntax(a, "XGROUP")),
    }
}

/// XACK key group id [id ...]
pub fn xack(s: &mut Session, a: &Args) -> CmdResult {
    let (key, group) = (a.get(1), a.get(2));
    // No key or group: nothing acknowledged, whatever the IDs; otherwise every ID must parse
    // before any is acknowledged.
    let n = update(&s.shared.db, s.now, key, |x| {
        let Some(g) = x.groups.get_mut(group) else {
            return Ok::<usize, CmdError>(0);
        };
        let mut ids = Vec::with_capacity(a.len() - 3);
        for b in a.slice(3) {
            ids.push(parse_strict_id(b, 0)?);
        }
        Ok(ids.into_iter().filter(|id| g.ack(*id)).count())
    })?
    .unwrap_or(Ok(0))?;
    Ok(Reply::Int(n as i64))
}

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
pub fn xpending(s: &mut Session, a: &Args) -> CmdResult {
    let argc = a.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(CmdError::Syntax);
    }
    let mut ext = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if eq(a.get(3), "idle") {
            min_idle = parse_i64(a.get(4))?;
            if argc < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        let count = parse_i64(a.get(at + 2))?.max(0);
        let start = range_start(a.get(at))?;
        let end = range_end(a.get(at + 1))?;
        let consumer = (at + 3 < argc).then(|| a.get(at + 3));
        ext = Some((min_idle, start, end, count, consumer));
    }
    let (key, group) = (a.get(1), a.get(2));
    let now = s.now as i64;
    let r = read(s, key, |x| {
        let g = x.groups.get(group)?;
        let Some((min_idle, start, end, count, consumer)) = ext else {
            if g.pel.is_empty() {
                return Some(Reply::Array(vec![
                    Reply::Int(0),
                    Reply::Nil,
                    Reply::Nil,
                    Reply::NilArray,
                ]));
            }
            let first = g.pel.keys().next().copied().unwrap_or_default();
            let last = g.pel.keys().next_back().copied().unwrap_or_default();
            let owners = g
                .consumers
                .iter()
                .filter(|(_, c)| !c.pel.is_empty())
                .map(|(n, c)| {
                    Reply::Array(vec![
                        Reply::Bulk(n.clone()),
                        Reply::Bulk(Bytes::from(c.pel.len().to_string())),
                    ])
                })
                .collect();
            return Some(Reply::Array(vec![
                Reply::Int(g.pel.len() as i64),
                id_reply(first),
                id_reply(last),
                Reply::Array(owners),
            ]));
        };
        let mut out = Vec::new();
        if start > end || count == 0 {
            return Some(Reply::Array(out));
        }
        let ids: Box<dyn Iterator<Item = StreamId>> = match consumer {
            Some(c) => match g.consumers.get(c) {
                Some(c) => Box::new(c.pel.range(start..=end).copied()),
                None => return Some(Reply::Array(out)),
            },
            None => Box::new(g.pel.range(start..=end).map(|(id, _)| *id)),
        };
        for id in ids {
            let Some(n) = g.pel.get(&id) else { continue };
            let idle = now - n.delivery_time as i64;
            if min_idle != 0 && idle < min_idle {
                continue;
            }
            out.push(Reply::Array(vec![
                id_reply(id),
                Reply::Bulk(n.consumer.clone()),
                Reply::Int(idle.max(0)),
                Reply::Int(n.delivery_count as i64),
            ]));
            if out.len() as i64 >= count {
                break;
            }
        }
        Some(Reply::Array(out))
    })?;
    r.flatten().ok_or_else(|| no_key_or_group(key, group))
}

/// Whether `key` holds a stream with group `group`: `NOGROUP` otherwise (WRONGTYPE first).
fn need_group(s: &mut Session, key: &[u8], group: &[u8]) -> Result<(), CmdError> {
    match read(s, key, |x| x.groups.contains_key(group))? {
        Some(true) => Ok(()),
        _ => Err(no_key_or_group(key, group)),
    }
}

/// Makes `name` a consumer of `g` at `now`; `true` when it was created.
fn touch_consumer(g: &mut Group, name: &[u8], now: u64, created: &mut bool) {
    if g.consumer(name, now) {
        *created = true;
    }
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(s: &mut Session, a: &Args) -> CmdResult {
    let (key, group, name) = (a.get(1), a.get(2), a.get(3));
    need_group(s, key, group)?;
    let min_idle = strict_i64(a.get(4))
        .ok_or_else(|| CmdError::err("Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < a.len() {
        match parse_strict_id(a.get(j), 0) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = s.now as i64;
    let (mut force, mut justid) = (false, false);
    let mut delivery: i64 = -1;
    let mut retrycount: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < a.len() {
        let more = a.len() - 1 - j;
        let opt = a.get(j);
        let num = |at: usize, what: &str| {
            strict_i64(a.get(at))
                .ok_or_else(|| CmdError::err(format!("Invalid {what} option argument for XCLAIM")))
        };
        if eq(opt, "force") {
            force = true;
        } else if eq(opt, "justid") {
            justid = true;
        } else if eq(opt, "idle") && more > 0 {
            j += 1;
            delivery = now.wrapping_sub(num(j, "IDLE")?);
        } else if eq(opt, "time") && more > 0 {
            j += 1;
            delivery = num(j, "TIME")?;
        } else if eq(opt, "retrycount") && more > 0 {
            j += 1;
            retrycount = num(j, "RETRYCOUNT")?;
        } else if eq(opt, "lastid") && more > 0 {
            j += 1;
            last_id = parse_strict_id(a.get(j), 0)?;
        } else {
            return Err(CmdError::err(format!(
                "Unrecognized XCLAIM option '{}'",
                text(opt)
            )));
        }
        j += 1;
    }
    if delivery < 0 || delivery > now {
        delivery = now;
    }
    let mut created = false;
    let out = update(&s.shared.db, s.now, key, |x| {
        let mut out = Vec::new();
        let mut groups = std::mem::take(&mut x.groups);
        let Some(g) = groups.get_mut(group) else {
            x.groups = groups;
            return out;
        };
        if last_id > g.last_id {
            g.last_id = last_id;
        }
        let mut consumer_ready = false;
        for id in &ids {
            let id = *id;
            if !x.contains(id) {
                g.ack(id);
                continue;
            }
            let fresh = if force && !g.pel.contains_key(&id) {
                g.pel.insert(
                    id,
                    Nack {
                        consumer: Bytes::new(),
                        delivery_time: now as u64,
                        delivery_count: 1,
                    },
                );
                true
            } else {
                false
            };
            let Some(n) = g.pel.get(&id) else { continue };
            if !fresh && min_idle != 0 && now - (n.delivery_time as i64) < min_idle {
                continue;
            }
            if !consumer_ready {
                touch_consumer(g, name, now as u64, &mut created);
                consumer_ready = true;
            }
            g.reassign(id, name);
            if let Some(n) = g.pel.get_mut(&id) {
                n.delivery_time = delivery as u64;
                if retrycount >= 0 {
                    n.delivery_count = retrycount as u64;
                } else if !justid {
                    n.delivery_count += 1;
                }
            }
            if justid {
                out.push(id_reply(id));
            } else if let Some(f) = x.get(id) {
                out.push(entry_reply(id, f));
            }
        }
        x.groups = groups;
        out
    })?
    .unwrap_or_default();
    if created {
        event(s, "xgroup-createconsumer", key);
    }
    Ok(Reply::Array(out))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(s: &mut Session, a: &Args) -> CmdResult {
    let (key, group, name) = (a.get(1), a.get(2), a.get(3));
    let min_idle = strict_i64(a.get(4))
        .ok_or_else(|| CmdError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = range_start(a.get(5))?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - 1 - j;
        if eq(a.get(j), "count") && more > 0 {
            count = super::args::ranged(a.get(j + 1), 1, i64::MAX / 16, Some("COUNT must be > 0"))?;
            j += 1;
        } else if eq(a.get(j), "justid") {
            justid = true;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    need_group(s, key, group)?;
    let now = s.now;
    let mut created = false;
    let reply = update(&s.shared.db, now, key, |x| {
        let mut groups = std::mem::take(&mut x.groups);
        let Some(g) = groups.get_mut(group) else {
            x.groups = groups;
            return Reply::NilArray;
        };
        let mut attempts = count.saturating_mul(10);
        let mut claimed = Vec::new();
        let mut deleted = Vec::new();
        let mut cursor = Some(start);
        let mut consumer_ready = false;
        loop {
            if attempts == 0 {
                break;
            }
            attempts -= 1;
            if count == 0 {
                break;
            }
            let Some(at) = cursor else { break };
            let Some(id) = g.pel.range(at..).next().map(|(id, _)| *id) else {
                cursor = None;
                break;
            };
            cursor = id.incr();
            if !x.contains(id) {
                g.ack(id);
                deleted.push(id_reply(id));
                count -= 1;
                continue;
            }
            let Some(n) = g.pel.get(&id) else { continue };
            if min_idle != 0 && (now as i64) - (n.delivery_time as i64) < min_idle {
                continue;
            }
            if !consumer_ready {
                touch_consumer(g, name, now, &mut created);
                consumer_ready = true;
            }
            g.reassign(id, name);
            if let Some(n) = g.pel.get_mut(&id) {
                n.delivery_time = now;
                if !justid {
                    n.delivery_count += 1;
                }
            }
            if justid {
                claimed.push(id_reply(id));
            } else if let Some(f) = x.get(id) {
                claimed.push(entry_reply(id, f));
            }
            count -= 1;
        }
        let next = cursor
            .and_then(|at| g.pel.range(at..).next().map(|(id, _)| *id))
            .unwrap_or(StreamId::MIN);
        x.groups = groups;
        Reply::Array(vec![
            id_reply(next),
            Reply::Array(claimed),
            Reply::Array(deleted),
        ])
    })?
    .unwrap_or(Reply::NilArray);
    if created {
        event(s, "xgroup-createconsumer", key);
    }
    Ok(reply)
}

// ---- XINFO ----------------------------------------------------------------------------------

fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn map(pairs: Vec<(&'static str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect())
}

fn opt_int(v: Option<i64>) -> Reply {
    v.map_or(Reply::Nil, Reply::Int)
}

fn entries_read(g: &Group) -> Reply {
    opt_int((g.entries_read != INVALID_ENTRIES_READ).then_some(g.entries_read))
}

/// Redis's radix tree node count for a stream of `keys` nodes, as Redis 7.0 reports it for
/// IDs appended in order (one node per key plus the shared prefix nodes, approximately).
fn rax_nodes(keys: usize) -> i64 {
    if keys == 0 { 1 } else { keys as i64 + 1 }
}

/// XINFO STREAM|GROUPS|CONSUMERS|HELP.
pub fn xinfo(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    use CommandId::*;
    if id == XinfoHelp {
        return Ok(help(
            "XINFO",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        ));
    }
    let key = a.get(2);
    let now = s.now as i64;
    // Options of STREAM are checked once the key is known to be a stream, as Redis does.
    let r = read(s, key, |x| -> CmdResult {
        match id {
            XinfoConsumers => {
                let group = a.get(3);
                let g = x
                    .groups
                    .get(group)
                    .ok_or_else(|| no_group_for_key(group, key))?;
                Ok(Reply::Array(
                    g.consumers
                        .iter()
                        .map(|(n, c)| {
                            map(vec![
                                ("name", Reply::Bulk(n.clone())),
                                ("pending", Reply::Int(c.pel.len() as i64)),
                                ("idle", Reply::Int((now - c.seen_time as i64).max(0))),
                            ])
                        })
                        .collect(),
                ))
            }
            XinfoGroups => Ok(Reply::Array(
                x.groups
                    .iter()
                    .map(|(n, g)| {
                        map(vec![
                            ("name", Reply::Bulk(n.clone())),
                            ("consumers", Reply::Int(g.consumers.len() as i64)),
                            ("pending", Reply::Int(g.pel.len() as i64)),
                            ("last-delivered-id", id_reply(g.last_id)),
                            ("entries-read", entries_read(g)),
                            ("lag", opt_int(x.lag(g))),
                        ])
                    })
                    .collect(),
            )),
            _ => stream_info(x, a),
        }
    })?;
    r.unwrap_or(Err(CmdError::NoSuchKey))
}

fn stream_info(x: &StreamValue, a: &Args) -> CmdResult {
    let opts = a.slice(3);
    let mut full = false;
    let mut count: i64 = 10;
    if !opts.is_empty() {
        if (opts.len() != 1 && opts.len() != 3) || !eq(&opts[0], "full") {
            return Err(subcommand_syntax(a, "XINFO"));
        }
        full = true;
        if opts.len() == 3 {
            if !eq(&opts[1], "count") {
                return Err(subcommand_syntax(a, "XINFO"));
            }
            count = parse_i64(&opts[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut out = vec![
        ("length", Reply::Int(x.len() as i64)),
        ("radix-tree-keys", Reply::Int(x.node_count() as i64)),
        ("radix-tree-nodes", Reply::Int(rax_nodes(x.node_count()))),
        ("last-generated-id", id_reply(x.last_id)),
        ("max-deleted-entry-id", id_reply(x.max_deleted)),
        ("entries-added", Reply::Int(x.entries_added as i64)),
        ("recorded-first-entry-id", id_reply(x.first_id)),
    ];
    if !full {
        out.push(("groups", Reply::Int(x.groups.len() as i64)));
        out.push((
            "first-entry",
            x.edge(false)
                .map_or(Reply::Nil, |(id, f)| entry_reply(id, f)),
        ));
        out.push((
            "last-entry",
            x.edge(true)
                .map_or(Reply::Nil, |(id, f)| entry_reply(id, f)),
        ));
        return Ok(map(out));
    }
    let limit = count as usize;
    let within = |n: usize| limit == 0 || n < limit;
    out.push((
        "entries",
        Reply::Array(range_reply(x, StreamId::MIN, StreamId::MAX, limit, false)),
    ));
    let groups = x
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .enumerate()
                .take_while(|(i, _)| within(*i))
                .map(|(_, (id, n))| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(n.consumer.clone()),
                        Reply::Int(n.delivery_time as i64),
                        Reply::Int(n.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pending = c
                        .pel
                        .iter()
                        .enumerate()
                        .take_while(|(i, _)| within(*i))
                        .filter_map(|(_, id)| {
                            let n = g.pel.get(id)?;
                            Some(Reply::Array(vec![
                                id_reply(*id),
                                Reply::Int(n.delivery_time as i64),
                                Reply::Int(n.delivery_count as i64),
                            ]))
                        })
                        .collect();
                    map(vec![
                        ("name", Reply::Bulk(cname.clone())),
                        ("seen-time", Reply::Int(c.seen_time as i64)),
                        ("pel-count", Reply::Int(c.pel.len() as i64)),
                        ("pending", Reply::Array(pending)),
                    ])
                })
                .collect();
            map(vec![
                ("name", Reply::Bulk(name.clone())),
                ("last-delivered-id", id_reply(g.last_id)),
                ("entries-read", entries_read(g)),
                ("lag", opt_int(x.lag(g))),
                ("pel-count", Reply::Int(g.pel.len() as i64)),
                ("pending", Reply::Array(pending)),
                ("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    out.push(("groups", Reply::Array(groups)));
    Ok(map(out))
}

// ---- XREAD and XREADGROUP -------------------------------------------------------------------

/// Where a read starts on one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ReadFrom {
    /// After this ID (XREAD, and XREADGROUP's history).
    After(StreamId),
    /// XREADGROUP's `>`: after the group's last delivered ID.
    New,
}

/// XREADGROUP's group, consumer and NOACK.
#[derive(Clone)]
struct ReadGroup {
    group: Bytes,
    consumer: Bytes,
    noack: bool,
}

/// Serves one stream of an XREAD/XREADGROUP: `None` when there is nothing to serve (and, for
/// a group, nothing changed). `wake`: a blocked client woken by a write (Redis serves it if
/// the stream's last ID passed its own, not only its last live entry's).
#[allow(clippy::too_many_arguments)]
fn serve_one(
    db: &Db,
    now: u64,
    key: &[u8],
    from: ReadFrom,
    count: usize,
    rg: Option<&ReadGroup>,
    wake: bool,
    created: &mut bool,
) -> Result<Option<Vec<Reply>>, CmdError> {
    update(db, now, key, |x| {
        let Some(rg) = rg else {
            let ReadFrom::After(after) = from else {
                return Ok(None);
            };
            let ready = if wake {
                x.last_id > after
            } else {
                x.last_valid_id().is_some_and(|m| m > after)
            };
            let Some(start) = after.incr().filter(|_| ready) else {
                return Ok(None);
            };
            return Ok(Some(range_reply(x, start, StreamId::MAX, count, false)));
        };
        // The groups are set aside while one of them reads the stream (no copy, no allocation).
        let mut groups = std::mem::take(&mut x.groups);
        let served = match groups.get_mut(&rg.group[..]) {
            Some(g) => Ok(serve_group(x, g, now, from, count, rg, wake, created)),
            None => Err(raw(
                "NOGROUP the consumer group this client was blocked on no longer exists".into(),
            )),
        };
        x.groups = groups;
        served
    })?
    .unwrap_or(Ok(None))
}

#[allow(clippy::too_many_arguments)]
fn serve_group(
    x: &StreamValue,
    g: &mut Group,
    now: u64,
    from: ReadFrom,
    count: usize,
    rg: &ReadGroup,
    wake: bool,
    created: &mut bool,
) -> Option<Vec<Reply>> {
    let last = g.last_id;
    match from {
        ReadFrom::After(after) => {
            touch_consumer(g, &rg.consumer, now, created);
            let start = after.incr()?;
            let ids: Vec<StreamId> = g
                .consumers
                .get(&rg.consumer[..])
                .map(|c| c.pel.range(start..).copied().collect())
                .unwrap_or_default();
            let mut out = Vec::new();
            for id in ids {
                if count != 0 && out.len() >= count {
                    break;
                }
                match x.get(id) {
                    Some(f) => {
                        out.push(entry_reply(id, f));
                        if let Some(n) = g.pel.get_mut(&id) {
                            n.delivery_time = now;
                            n.delivery_count += 1;
                        }
                    }
                    None => out.push(Reply::Array(vec![id_reply(id), Reply::NilArray])),
                }
            }
            Some(out)
        }
        ReadFrom::New => {
            let ready = if wake {
                x.last_id > last
            } else {
                !x.is_empty() && x.last_valid_id().is_some_and(|m| m > last)
            };
            if !ready {
                return None;
            }
            touch_consumer(g, &rg.consumer, now, created);
            let start = last.incr()?;
            let mut ids = Vec::new();
            let mut out = Vec::new();
            x.walk(start, StreamId::MAX, false, |id, f| {
                out.push(entry_reply(id, f));
                ids.push(id);
                count == 0 || out.len() < count
            });
            let name = g.consumer_name(&rg.consumer);
            for id in ids {
                x.advance_group(g, id);
                if rg.noack {
                    continue;
                }
                match g.pel.get_mut(&id) {
                    Some(n) => {
                        n.delivery_time = now;
                        n.delivery_count = 1;
                    }
                    None => {
                        g.pel.insert(
                            id,
                            Nack {
                                consumer: name.clone(),
                                delivery_time: now,
                                delivery_count: 1,
                            },
                        );
                    }
                }
                g.reassign(id, &name);
            }
            Some(out)
        }
    }
}

/// One stream's part of the reply: `[key, entries]` (RESP2) or a map entry (RESP3), wrapped
/// by [`read_reply`].
fn read_reply(proto: Proto, parts: Vec<(Bytes, Vec<Reply>)>) -> Reply {
    if proto == Proto::Resp2 {
        Reply::Array(
            parts
                .into_iter()
                .map(|(k, e)| Reply::Array(vec![Reply::Bulk(k), Reply::Array(e)]))
                .collect(),
        )
    } else {
        Reply::Map(
            parts
                .into_iter()
                .map(|(k, e)| (Reply::Bulk(k), Reply::Array(e)))
                .collect(),
        )
    }
}

/// XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...], and XREADGROUP GROUP
/// group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS key [key ...] id [id ...].
pub fn xread(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let group_cmd = id == CommandId::Xreadgroup;
    let mut block: Option<u64> = None;
    let mut count: i64 = 0;
    let mut streams_at = 0;
    let mut rg: Option<ReadGroup> = None;
    let mut noack = false;
    let mut i = 1;
    while i < a.len() {
        let more = a.len() - i - 1;
        let o = a.get(i);
        if eq(o, "block") && more > 0 {
            i += 1;
            let ms = strict_i64(a.get(i))
                .ok_or_else(|| CmdError::err("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(CmdError::err("timeout is negative"));
            }
            block = Some(ms as u64);
        } else if eq(o, "count") && more > 0 {
            i += 1;
            count = parse_i64(a.get(i))?.max(0);
        } else if eq(o, "streams") && more > 0 {
            streams_at = i + 1;
            if !(a.len() - streams_at).is_multiple_of(2) {
                return Err(CmdError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            break;
        } else if eq(o, "group") && more >= 2 {
            if !group_cmd {
                return Err(CmdError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            rg = Some(ReadGroup {
                group: a.bytes(i + 1),
                consumer: a.bytes(i + 2),
                noack: false,
            });
            i += 2;
        } else if eq(o, "noack") {
            if !group_cmd {
                return Err(CmdError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if streams_at == 0 {
        return Err(CmdError::Syntax);
    }
    if group_cmd && rg.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    if let Some(rg) = &mut rg {
        rg.noack = noack;
    }
    let n = (a.len() - streams_at) / 2;
    let mut reads: Vec<(Bytes, ReadFrom)> = Vec::with_capacity(n);
    for k in 0..n {
        let key = a.bytes(streams_at + k);
        let arg = a.get(streams_at + n + k);
        let last = read(s, &key, |x| {
            (
                x.last_id,
                rg.as_ref().map(|r| x.groups.contains_key(&r.group)),
            )
        })?;
        if let Some(r) = &rg
            && !matches!(last, Some((_, Some(true))))
        {
            return Err(raw(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                text(&key),
                text(&r.group)
            )));
        }
        let from = if arg == b"$" {
            if group_cmd {
                return Err(CmdError::err(
                    "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ));
            }
            ReadFrom::After(last.map_or(StreamId::MIN, |(id, _)| id))
        } else if arg == b">" {
            if !group_cmd {
                return Err(CmdError::err(
                    "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ));
            }
            ReadFrom::New
        } else {
            match parse_strict_id(arg, 0)? {
                // The largest ID is how Redis marks `>` internally: it reads as `>`.
                StreamId::MAX if group_cmd => ReadFrom::New,
                id => ReadFrom::After(id),
            }
        };
        reads.push((key, from));
    }
    let shared = s.shared.clone();
    let (db, now, proto) = (&shared.db, s.now, s.proto);
    let mut parts = Vec::new();
    let mut created = Vec::new();
    for (key, from) in &reads {
        let mut made = false;
        // A history read is served even when empty; `>` and XREAD only with something new.
        if let Some(entries) = serve_one(
            db,
            now,
            key,
            *from,
            count as usize,
            rg.as_ref(),
            false,
            &mut made,
        )? {
            parts.push((key.clone(), entries));
        }
        if made {
            created.push(key.clone());
        }
    }
    for key in &created {
        event(s, "xgroup-createconsumer", key);
    }
    if !parts.is_empty() {
        return Ok(read_reply(proto, parts));
    }
    let Some(ms) = block else {
        return Ok(Reply::NilArray);
    };
    if s.tx.in_exec() {
        return Ok(Reply::NilArray);
    }
    let keys: Vec<Bytes> = reads.iter().map(|(k, _)| k.clone()).collect();
    let count = if count == 0 {
        BLOCKED_DEFAULT_COUNT
    } else {
        count as usize
    };
    // The first pass over the keys (under the registry's lock, against lost wake-ups) checks
    // them as above; later calls are wake-ups by writes.
    let mut first_pass = keys.len();
    let attempt: Attempt = Box::new(move |db, now, key| {
        let wake = if first_pass > 0 {
            first_pass -= 1;
            false
        } else {
            true
        };
        let Some((_, from)) = reads.iter().find(|(k, _)| &k[..] == key) else {
            return Ok(None);
        };
        let key = Bytes::copy_from_slice(key);
        // A deleted stream (or one replaced by another type) ends a group read.
        if rg.is_some() && wake {
            let gone = db
                .for_key(&key)
                .peek(&key, now)
                .is_none_or(|e| !matches!(e.value, Value::Stream(_)));
            if gone {
                return Ok(Some(error_served(
                    "UNBLOCKED the stream key no longer exists",
                )));
            }
        }
        let mut made = false;
        let served = match serve_one(db, now, &key, *from, count, rg.as_ref(), wake, &mut made) {
            Ok(s) => s,
            Err(CmdError::WrongType) => None,
            Err(e) if wake => return Ok(Some(error_served_reply(Reply::from(e)))),
            Err(e) => return Err(e),
        };
        let Some(entries) = served else {
            return Ok(None);
        };
        let events = if made {
            vec![(class::STREAM, "xgroup-createconsumer", key.clone())]
        } else {
            Vec::new()
        };
        let changed = if rg.is_some() {
            vec![key.clone()]
        } else {
            Vec::new()
        };
        Ok(Some(Served {
            reply: read_reply(proto, vec![(key, entries)]),
            changed,
            events,
        }))
    });
    let wait = (ms > 0).then(|| std::time::Duration::from_millis(ms));
    super::blocking::block_on(s, keys, wait, Reply::NilArray, attempt)
}

fn error_served_reply(reply: Reply) -> Served {
    Served {
        reply,
        changed: Vec::new(),
        events: Vec::new(),
    }
}

fn error_served(line: &str) -> Served {
    error_served_reply(Reply::Error(line.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_does() {
        let p = |s: &str| parse_id(s.as_bytes(), 0).ok();
        assert_eq!(p("1-2"), Some(StreamId::new(1, 2)));
        assert_eq!(p("5"), Some(StreamId::new(5, 0)));
        assert_eq!(p("-"), Some(StreamId::MIN));
        assert_eq!(p("+"), Some(StreamId::MAX));
        assert_eq!(
            p("01-2"),
            Some(StreamId::new(1, 2)),
            "strtoull's leading zero"
        );
        assert_eq!(p("+3"), Some(StreamId::new(3, 0)));
        assert_eq!(p("-1"), None, "split at the first '-': no milliseconds");
        assert_eq!(p("1--1"), None);
        assert_eq!(p("x"), None);
        assert_eq!(p(""), None);
        assert_eq!(
            p("18446744073709551615-1"),
            Some(StreamId::new(u64::MAX, 1))
        );
        assert_eq!(p("18446744073709551616"), None);
        assert!(parse_strict_id(b"-", 0).is_err());
        assert_eq!(
            parse_id_full(b"7-*", 0, true, true).ok(),
            Some((StreamId::new(7, 0), false))
        );
        assert!(parse_id_full(b"7-*", 0, true, false).is_err());
    }
}
