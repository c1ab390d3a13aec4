//! The wire layer: request framing (RESP multibulk via `redis-protocol`, plus inline commands)
//! and reply encoding for RESP2 and RESP3.
//!
//! Requests are checked before they are parsed: a header scan enforces Redis's limits (multibulk
//! length, bulk length, inline size, nesting) so the decoder only ever sees a complete, bounded
//! array of bulk strings. An incomplete frame is not an error.

use bytes::{Bytes, BytesMut};
pub use membership::resp::{Proto, Reply, encode, format_double, split_args, strict_i64};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;

/// Redis's limit on the element count of one request.
const MAX_MULTIBULK: usize = 1024 * 1024;
/// Redis's limit on an inline request and on a header line.
const MAX_INLINE: usize = 64 * 1024;

/// A protocol violation: the connection gets `-ERR Protocol error: ...` and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn proto_err(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// The arguments of one request; `argv[0]` is the command name.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<Bytes>);

impl Args {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Argument `i` as bytes; empty when absent (callers check arity first).
    pub fn get(&self, i: usize) -> &[u8] {
        self.0.get(i).map(|b| &b[..]).unwrap_or(&[])
    }

    /// Argument `i` as a cheaply cloned `Bytes`.
    pub fn bytes(&self, i: usize) -> Bytes {
        self.0.get(i).cloned().unwrap_or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.0.iter()
    }

    pub fn slice(&self, from: usize) -> &[Bytes] {
        self.0.get(from..).unwrap_or(&[])
    }
}

/// Limits applied while framing requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bulk_len: usize,
}

/// Takes the next complete request off the front of `buf`.
/// `Ok(None)` means more bytes are needed. Empty requests (`*0`, blank inline lines) are skipped.
pub fn next_request(buf: &mut BytesMut, limits: Limits) -> Result<Option<Args>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let args = if first == b'*' {
            match scan_multibulk(buf, limits)? {
                Scan::Incomplete => return Ok(None),
                Scan::Empty(consumed) => {
                    let _ = buf.split_to(consumed);
                    continue;
                }
                Scan::Complete => decode_multibulk(buf)?,
            }
        } else {
            match parse_inline(buf)? {
                None => return Ok(None),
                Some(args) if args.is_empty() => continue,
                Some(args) => args,
            }
        };
        return Ok(Some(args));
    }
}

enum Scan {
    Incomplete,
    /// `*0` or `*-1`: nothing to execute; this many bytes to drop.
    Empty(usize),
    Complete,
}

/// Reads a `\r\n`-terminated header line starting at `at` (after the type byte) as an integer.
/// Returns the value and the offset after the line, or `None` if the line is incomplete.
fn header_int(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = buf.get(at..).unwrap_or(&[]);
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        if rest.len() > MAX_INLINE {
            return Err(proto_err(format!("too big {what} count string")));
        }
        return Ok(None);
    };
    let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
    let n = strict_i64(line);
    match n {
        Some(n) => Ok(Some((n, at + nl + 1))),
        None if what == "mbulk" => Err(proto_err("invalid multibulk length")),
        None => Err(proto_err(format!("invalid {what} length"))),
    }
}

/// Checks the headers of the multibulk at the front of `buf` against the limits without
/// copying anything.
fn scan_multibulk(buf: &[u8], limits: Limits) -> Result<Scan, ProtocolError> {
    let Some((count, mut pos)) = header_int(buf, 1, "mbulk")? else {
        return Ok(Scan::Incomplete);
    };
    if count <= 0 {
        return Ok(Scan::Empty(pos));
    }
    if count as usize > MAX_MULTIBULK {
        return Err(proto_err("invalid multibulk length"));
    }
    for _ in 0..count {
        let Some(&kind) = buf.get(pos) else {
            return Ok(Scan::Incomplete);
        };
        if kind != b'$' {
            return Err(proto_err(format!("expected '$', got '{}'", kind as char)));
        }
        let Some((len, body)) = header_int(buf, pos + 1, "bulk")? else {
            return Ok(Scan::Incomplete);
        };
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(proto_err("invalid bulk length"));
        }
        pos = body + len as usize + 2;
        if pos > buf.len() {
            return Ok(Scan::Incomplete);
        }
    }
    Ok(Scan::Complete)
}

/// Decodes a multibulk already checked by `scan_multibulk` into its arguments.
fn decode_multibulk(buf: &mut BytesMut) -> Result<Args, ProtocolError> {
    match decode_bytes_mut(buf) {
        Ok(Some((BytesFrame::Array(items), _, _))) => items
            .into_iter()
            .map(|f| match f {
                BytesFrame::BulkString(b) => Ok(b),
                _ => Err(proto_err("expected '$'")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Args),
        Ok(Some(_)) => Err(proto_err("invalid multibulk length")),
        Ok(None) => Err(proto_err("incomplete frame after header check")),
        Err(e) => Err(proto_err(e.details().to_string())),
    }
}

/// Parses one inline command line (`PING\r\n` from telnet), with Redis's quoting rules.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Args>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(proto_err("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let line = line[..nl].strip_suffix(b"\r").unwrap_or(&line[..nl]);
    split_args(line)
        .map(|v| Some(Args(v)))
        .ok_or_else(|| proto_err("unbalanced quotes in request"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
    };

    fn args(buf: &mut BytesMut) -> Result<Option<Vec<String>>, ProtocolError> {
        next_request(buf, LIMITS).map(|o| {
            o.map(|a| {
                a.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
        })
    }

    #[test]
    fn multibulk_complete_and_partial() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(args(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed on partial input");
        }
        let mut buf = BytesMut::from(&full[..]);
        assert_eq!(args(&mut buf), Ok(Some(vec!["GET".into(), "k".into()])));
        assert!(buf.is_empty());
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let mut buf = BytesMut::from(
            &b"*1\r\n$4\r\nPING\r\n*0\r\nPING\r\n\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"[..],
        );
        assert_eq!(args(&mut buf), Ok(Some(vec!["PING".into()])));
        assert_eq!(args(&mut buf), Ok(Some(vec!["PING".into()])));
        assert_eq!(args(&mut buf), Ok(Some(vec!["ECHO".into(), "hi".into()])));
        assert_eq!(args(&mut buf), Ok(None));
    }

    #[test]
    fn limits_and_malformed_input() {
        let err = |b: &[u8]| args(&mut BytesMut::from(b)).expect_err("must fail").0;
        assert_eq!(err(b"*2\r\n$3\r\nGET\r\n:1\r\n"), "expected '$', got ':'");
        assert_eq!(err(b"*1\r\n*1\r\n$1\r\na\r\n"), "expected '$', got '*'");
        assert_eq!(err(b"*x\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*99999999\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1\r\n$-5\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$536870913\r\n"), "invalid bulk length");
        assert_eq!(err(b"SET k \"abc\r\n"), "unbalanced quotes in request");
        let big = vec![b'a'; MAX_INLINE + 1];
        assert_eq!(err(&big), "too big inline request");
    }

    fn encode_args(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Random pipelines cut into random pieces parse to exactly what was sent, whatever the
    /// bytes inside the arguments (CR, LF, `*`, `$`, NUL).
    #[test]
    fn random_pipelines_survive_any_chunking() {
        let mut rng = fastrand::Rng::with_seed(0xA11CE);
        for _ in 0..300 {
            let cmds: Vec<Vec<Vec<u8>>> = (0..rng.usize(1..20))
                .map(|_| {
                    (0..rng.usize(1..6))
                        .map(|_| {
                            let alphabet = b"ab\r\n*$:-+0 \x00";
                            (0..rng.usize(0..40))
                                .map(|_| alphabet[rng.usize(..alphabet.len())])
                                .collect()
                        })
                        .collect()
                })
                .collect();
            let wire: Vec<u8> = cmds.iter().flat_map(|c| encode_args(c)).collect();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < wire.len() {
                let n = rng.usize(1..=64).min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..pos + n]);
                pos += n;
                while let Some(args) = next_request(&mut buf, LIMITS).expect("valid input") {
                    got.push(args.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
                }
            }
            assert!(buf.is_empty());
            assert_eq!(got, cmds);
        }
    }

    /// Corrupted input never panics and never makes the parser consume nothing while
    /// claiming progress: each call either yields, waits for more, or reports an error.
    #[test]
    fn corrupted_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0xBAD);
        let limits = Limits {
            max_bulk_len: 1 << 20,
        };
        for _ in 0..3000 {
            let mut wire = encode_args(&[
                b"SET".to_vec(),
                b"key".to_vec(),
                vec![b'v'; rng.usize(0..50)],
            ]);
            wire.extend(encode_args(&[b"GET".to_vec(), b"key".to_vec()]));
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(..wire.len());
                wire[i] = rng.u8(..);
            }
            if rng.bool() {
                wire.truncate(rng.usize(..wire.len()));
            }
            let mut buf = BytesMut::from(&wire[..]);
            for _ in 0..wire.len() + 1 {
                let before = buf.len();
                match next_request(&mut buf, limits) {
                    Ok(Some(_)) => assert!(buf.len() < before, "a request consumes input"),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
