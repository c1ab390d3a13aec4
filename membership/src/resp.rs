//! The RESP vocabulary shared by the shard, the proxy and the load generator: the reply type
//! (RESP3's types, downgraded for RESP2 clients in one place), its encoder, Redis's strict
//! integer syntax and inline-command splitting.

use bytes::{BufMut, Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame;

/// Splits a line into arguments like Redis's `sdssplitargs`: whitespace separates, `"..."`
/// takes C escapes (`\n`, `\xHH`, ...), `'...'` takes only `\'`. `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            if in_dq {
                match c? {
                    b'\\'
                        if line.get(i + 1) == Some(&b'x')
                            && line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                            && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        let hex = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                        cur.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 3;
                    }
                    b'\\' if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    b'"' => {
                        // A closing quote must be followed by a space or the end.
                        if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    other => cur.push(other),
                }
            } else if in_sq {
                match c? {
                    b'\\' if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    b'\'' => {
                        if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    other => cur.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b) if b.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(b) => cur.push(b),
                }
            }
            i += 1;
        }
        out.push(Bytes::from(cur));
    }
    Some(out)
}

/// Parses an integer the way Redis's `string2ll` does: optional `-`, no `+`, no leading zeros,
/// no spaces, within i64. Used for protocol headers and command arguments alike.
pub fn strict_i64(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if (digits.len() > 1 && digits[0] == b'0') || b == b"-0" {
        return None;
    }
    // Accumulated negative so that i64::MIN parses; the checks catch overflow.
    let mut acc: i64 = 0;
    for &d in digits {
        acc = acc.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if digits.len() == b.len() {
        acc.checked_neg()
    } else {
        Some(acc)
    }
}

/// Protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Resp2,
    Resp3,
}

/// A reply in RESP3's vocabulary; encoding downgrades it for RESP2 clients.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    Simple(&'static str),
    Status(String),
    /// A full error line without the leading `-`, e.g. `ERR syntax error`.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// RESP2 `$-1`, RESP3 `_`.
    Nil,
    /// RESP2 `*-1`, RESP3 `_`.
    NilArray,
    Array(Vec<Reply>),
    /// RESP2: a flat array of key, value, ...
    Map(Vec<(Reply, Reply)>),
    /// RESP2: an array.
    Set(Vec<Reply>),
    /// RESP2: a bulk string.
    Double(f64),
    /// A double in Redis's "human" form (`%.17Lf` without trailing zeros: GEOPOS's
    /// coordinates): a bulk string in RESP2, a double in RESP3.
    Human(f64),
    /// RESP2: a bulk string (text).
    Verbatim(String),
    /// An out-of-band message (pub/sub): RESP3 `>`, RESP2 an array.
    Push(Vec<Reply>),
    /// Several replies to one command, back to back (SUBSCRIBE confirms each channel).
    Many(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Ok
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn opt_bulk(b: Option<Bytes>) -> Reply {
        b.map_or(Reply::Nil, Reply::Bulk)
    }
}

fn put_int_line(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut b = itoa::Buffer::new();
    let s = b.format(n);
    out.reserve(s.len() + 3);
    out.put_u8(prefix);
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes an aggregate or bulk header such as `*3\r\n` or `$5\r\n`.
pub fn put_len(out: &mut BytesMut, prefix: u8, n: usize) {
    put_int_line(out, prefix, n as i64);
}

fn put_line(out: &mut BytesMut, prefix: u8, s: &[u8]) {
    out.reserve(s.len() + 3);
    out.put_u8(prefix);
    // Simple strings and errors cannot carry newlines.
    out.extend(
        s.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, b: &[u8]) {
    put_len(out, b'$', b.len());
    out.reserve(b.len() + 2);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// Formats a double the way Redis prints them in replies (shortest round-trip form).
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    let s = d.to_string();
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Formats a double as C's `%.17g`, which Redis 7.0 uses for every double reply (ZSCORE,
/// ZRANGE ... WITHSCORES, RESP3 doubles): 17 significant digits, trailing zeros dropped,
/// exponent form below 1e-4 and from 1e17; `inf`, `-inf`, `nan`.
pub fn format_g17(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Integers below 1e17 print all their digits: the common case, without float formatting.
    if d.fract() == 0.0 && d.abs() < 1e17 {
        return itoa::Buffer::new().format(d as i64).to_string();
    }
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (16 - exp) as usize;
        trim(&format!("{d:.decimals$}"))
    }
}

/// Redis's `ld2string(.., LD_STR_HUMAN)` of a double: 17 decimals, trailing zeros (and a
/// bare point) dropped, `-0` as `0`, infinities as `inf`/`-inf`.
pub fn format_human(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    let s = format!("{d:.17}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Appends the encoding of `reply` in protocol `proto` to `out`.
pub fn encode(reply: &Reply, proto: Proto, out: &mut BytesMut) {
    let v3 = proto == Proto::Resp3;
    match reply {
        Reply::Ok => out.put_slice(b"+OK\r\n"),
        Reply::Simple(s) => put_line(out, b'+', s.as_bytes()),
        Reply::Status(s) => put_line(out, b'+', s.as_bytes()),
        Reply::Error(e) => put_line(out, b'-', e.as_bytes()),
        Reply::Int(n) => put_int_line(out, b':', *n),
        Reply::Bulk(b) => put_bulk(out, b),
        Reply::Nil if v3 => out.put_slice(b"_\r\n"),
        Reply::Nil => out.put_slice(b"$-1\r\n"),
        Reply::NilArray if v3 => out.put_slice(b"_\r\n"),
        Reply::NilArray => out.put_slice(b"*-1\r\n"),
        Reply::Array(items) => {
            put_len(out, b'*', items.len());
            items.iter().for_each(|r| encode(r, proto, out));
        }
        Reply::Set(items) => {
            put_len(out, if v3 { b'~' } else { b'*' }, items.len());
            items.iter().for_each(|r| encode(r, proto, out));
        }
        Reply::Map(pairs) => {
            if v3 {
                put_len(out, b'%', pairs.len());
            } else {
                put_len(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Double(d) if v3 => put_line(out, b',', format_g17(*d).as_bytes()),
        Reply::Double(d) => put_bulk(out, format_g17(*d).as_bytes()),
        Reply::Human(d) if v3 => put_line(out, b',', format_human(*d).as_bytes()),
        Reply::Human(d) => put_bulk(out, format_human(*d).as_bytes()),
        Reply::Verbatim(s) if v3 => {
            put_len(out, b'=', s.len() + 4);
            out.put_slice(b"txt:");
            out.put_slice(s.as_bytes());
            out.put_slice(b"\r\n");
        }
        Reply::Verbatim(s) => put_bulk(out, s.as_bytes()),
        Reply::Push(items) => {
            put_len(out, if v3 { b'>' } else { b'*' }, items.len());
            items.iter().for_each(|r| encode(r, proto, out));
        }
        Reply::Many(replies) => replies.iter().for_each(|r| encode(r, proto, out)),
    }
}

impl Reply {
    /// Converts a decoded RESP2 reply (from a backend).
    pub fn from_frame(f: BytesFrame) -> Reply {
        match f {
            BytesFrame::SimpleString(s) => Reply::Status(String::from_utf8_lossy(&s).into_owned()),
            BytesFrame::Error(e) => Reply::Error(e.to_string()),
            BytesFrame::Integer(n) => Reply::Int(n),
            BytesFrame::BulkString(b) => Reply::Bulk(b),
            BytesFrame::Array(items) => {
                Reply::Array(items.into_iter().map(Reply::from_frame).collect())
            }
            BytesFrame::Null => Reply::Nil,
        }
    }
}

/// Encodes `reply` into a fresh buffer.
pub fn encode_to_bytes(reply: &Reply, proto: Proto) -> Bytes {
    let mut out = BytesMut::new();
    encode(reply, proto, &mut out);
    out.freeze()
}

/// Redis's error lines shared by every server that answers clients (without the leading `-`).
/// The errors every Redis server answers alike, whatever the command; each server's own error
/// type wraps it. [`CommandError::to_line`] gives Redis's exact text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command")]
    UnknownCommand { name: String, args: Vec<String> },
    #[error("unknown subcommand")]
    UnknownSubcommand { container: String, sub: String },
    #[error("wrong number of arguments for '{0}'")]
    WrongArity(String),
    #[error("authentication required")]
    NoAuth,
    #[error("wrong password")]
    WrongPass,
    /// An `ERR` error with a message specific to one command.
    #[error("{0}")]
    Err(String),
    /// An error line with its own prefix (`NOPROTO ...`, `MOVED ...`).
    #[error("{0}")]
    Raw(String),
}

impl CommandError {
    /// The error line as Redis writes it (without the leading `-`).
    pub fn to_line(&self) -> String {
        match self {
            CommandError::UnknownCommand { name, args } => errors::unknown_command(name, args),
            CommandError::UnknownSubcommand { container, sub } => {
                errors::unknown_subcommand(container, sub)
            }
            CommandError::WrongArity(name) => errors::wrong_arity(name),
            CommandError::NoAuth => errors::NOAUTH.into(),
            CommandError::WrongPass => errors::WRONGPASS.into(),
            CommandError::Err(m) => format!("ERR {m}"),
            CommandError::Raw(m) => m.clone(),
        }
    }
}

pub mod errors {
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
    pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
    pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the \
                                           default user. Are you sure your configuration is correct?";
    pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    /// Redis quotes at most 128 characters of user input in error messages.
    pub fn clip(s: &str) -> String {
        s.chars().take(128).collect()
    }

    pub fn unknown_command(name: &str, args: &[String]) -> String {
        let mut s = format!(
            "ERR unknown command '{}', with args beginning with: ",
            clip(name)
        );
        for a in args.iter().take(20) {
            s.push('\'');
            s.push_str(&clip(a));
            s.push_str("' ");
        }
        s
    }

    pub fn unknown_subcommand(container: &str, sub: &str) -> String {
        format!(
            "ERR unknown subcommand '{}'. Try {}|HELP.",
            clip(sub),
            container.to_ascii_uppercase()
        )
    }

    pub fn wrong_arity(name: &str) -> String {
        format!("ERR wrong number of arguments for '{name}' command")
    }
}

/// Redis's `bytesToHuman` (INFO's `*_human` fields): B, then K, M, G, T, P with two decimals.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    match UNITS.get(u) {
        Some(unit) if u > 0 => format!("{v:.2}{unit}"),
        _ => format!("{bytes}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_read_as_redis_writes_them() {
        let unknown = CommandError::UnknownCommand {
            name: "foo".into(),
            args: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            unknown.to_line(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            CommandError::WrongArity("get".into()).to_line(),
            "ERR wrong number of arguments for 'get' command"
        );
        let sub = CommandError::UnknownSubcommand {
            container: "client".into(),
            sub: "foo".into(),
        };
        assert_eq!(
            sub.to_line(),
            "ERR unknown subcommand 'foo'. Try CLIENT|HELP."
        );
        assert_eq!(CommandError::Err("x".into()).to_line(), "ERR x");
        assert_eq!(CommandError::Raw("NOPROTO y".into()).to_line(), "NOPROTO y");
    }

    #[test]
    fn integers_parse_like_string2ll() {
        for (s, want) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("-7", Some(-7)),
            ("1234567890", Some(1_234_567_890)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("99999999999999999999", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("1a", None),
            ("--1", None),
        ] {
            assert_eq!(strict_i64(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn inline_quoting() {
        let split =
            |s: &[u8]| split_args(s).map(|v| v.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
        assert_eq!(
            split(b"set  k  v"),
            Some(vec![b"set".to_vec(), b"k".to_vec(), b"v".to_vec()])
        );
        assert_eq!(
            split(b"set k \"a b\\n\\x41\""),
            Some(vec![b"set".to_vec(), b"k".to_vec(), b"a b\nA".to_vec()])
        );
        assert_eq!(
            split(b"echo 'it\\'s'"),
            Some(vec![b"echo".to_vec(), b"it's".to_vec()])
        );
        assert_eq!(split(b"echo \"a\"b"), None);
        assert_eq!(split(b"   "), Some(vec![]));
    }

    #[test]
    fn encodes_resp2_and_resp3() {
        let enc = |r: &Reply, p| {
            let mut b = BytesMut::new();
            encode(r, p, &mut b);
            String::from_utf8(b.to_vec()).expect("utf8")
        };
        let map = Reply::Map(vec![(Reply::str("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, Proto::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Proto::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Nil, Proto::Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Proto::Resp3), "_\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Proto::Resp3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Double(2.0), Proto::Resp2), "$1\r\n2\r\n");
        // Redis 7.0's `%.17g`.
        for (d, s) in [
            (0.1, "0.10000000000000001"),
            (1e308, "1e+308"),
            (1.2345678901234567e19, "1.2345678901234567e+19"),
            (3.00001, "3.0000100000000001"),
            (1e16, "10000000000000000"),
            (-99999999999999999.0, "-1e+17"),
            (12345.0, "12345"),
            (-7.0, "-7"),
            (1e17, "1e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-0.0, "-0"),
            (-2.5, "-2.5"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(format_g17(d), s, "{d}");
        }
        assert_eq!(
            enc(&Reply::Verbatim("x".into()), Proto::Resp3),
            "=5\r\ntxt:x\r\n"
        );
        assert_eq!(
            enc(&Reply::Error("ERR a\r\nb".into()), Proto::Resp2),
            "-ERR a  b\r\n"
        );
    }
}
