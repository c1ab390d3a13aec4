//! Request framing, shared by the shard and the proxy: the hottest path of both servers.
//!
//! A request is checked, then cut: one pass over its headers checks Redis's limits (multibulk
//! length, bulk length, header and inline sizes) and records where each argument sits; then the
//! request's bytes are split off the input buffer unchanged ([`Request::raw`]). Nothing is
//! copied and the one allocation per request is the argument offsets, so the proxy forwards
//! exactly the bytes the client sent and the shard takes its arguments as slices of them.
//!
//! An incomplete frame is not an error: [`next_request`] answers `Ok(None)` and consumes
//! nothing until the rest arrives. Inline commands (`PING` typed into telnet) are split with
//! Redis's quoting rules and re-encoded as a multibulk, so every [`Request`] has the same shape.
//! Errors carry Redis's wording (`Protocol error: invalid bulk length`); the server answers
//! them as `-ERR ...` and closes the connection, as Redis does.

use bytes::{BufMut, Bytes, BytesMut};

use crate::resp::{put_len, split_args, strict_i64};

/// Redis's limit on the element count of one request.
pub const MAX_MULTIBULK: usize = 1024 * 1024;
/// Redis's limit on an inline request and on a header line.
pub const MAX_INLINE: usize = 64 * 1024;

/// A protocol violation: the client gets `-ERR Protocol error: ...` and is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn proto_err(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// One request: its bytes as received (or as built) and where each argument sits in them.
///
/// Invariant: `raw` is a multibulk (`*<n>\r\n` then `n` bulk strings, contiguous), and
/// `args[i]` is the body of bulk `i` (without its `$<len>\r\n` header and trailing CRLF).
/// Offsets are `u32`: [`next_request`] refuses a request of 4 GiB or more.
#[derive(Debug, Clone)]
pub struct Request {
    pub raw: Bytes,
    args: Vec<(u32, u32)>,
}

impl Request {
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` (argv\[0\] is the name); empty when absent.
    pub fn arg(&self, i: usize) -> &[u8] {
        self.args
            .get(i)
            .and_then(|&(s, e)| self.raw.get(s as usize..e as usize))
            .unwrap_or(&[])
    }

    /// Argument `i` as a `Bytes` sharing the request's buffer (no copy); empty when absent.
    pub fn arg_bytes(&self, i: usize) -> Bytes {
        self.args
            .get(i)
            .filter(|&&(s, e)| s <= e && e as usize <= self.raw.len())
            .map_or_else(Bytes::new, |&(s, e)| self.raw.slice(s as usize..e as usize))
    }

    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.argc()).map(|i| self.arg(i))
    }

    /// Argument `i` as encoded in the request (`$<len>\r\n<bytes>\r\n`), ready to be copied
    /// into a sub-command; empty when absent. Arguments are contiguous after the `*<n>` header
    /// in parsed and built requests alike.
    pub fn arg_span(&self, i: usize) -> &[u8] {
        let Some(&(_, end)) = self.args.get(i) else {
            return &[];
        };
        let start = match i.checked_sub(1).and_then(|p| self.args.get(p)) {
            Some(&(_, prev_end)) => prev_end as usize + 2,
            None => self
                .raw
                .iter()
                .position(|&b| b == b'\n')
                .map_or(0, |n| n + 1),
        };
        self.raw.get(start..end as usize + 2).unwrap_or(&[])
    }

    /// Builds a request from arguments (sub-commands, inline requests, tests).
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Request {
        let mut out = BytesMut::new();
        let mut offs = Vec::with_capacity(args.len());
        put_len(&mut out, b'*', args.len());
        for a in args {
            let a = a.as_ref();
            put_len(&mut out, b'$', a.len());
            let start = out.len() as u32;
            out.put_slice(a);
            offs.push((start, out.len() as u32));
            out.put_slice(b"\r\n");
        }
        Request {
            raw: out.freeze(),
            args: offs,
        }
    }
}

/// Takes the next complete request off the front of `buf`; `Ok(None)` = need more bytes (and
/// nothing was consumed). Empty requests (`*0`, `*-1`, blank lines) are skipped, as Redis
/// skips them. `max_bulk_len` is Redis's `proto-max-bulk-len`.
pub fn next_request(
    buf: &mut BytesMut,
    max_bulk_len: usize,
) -> Result<Option<Request>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != b'*' {
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                if buf.len() > MAX_INLINE {
                    return Err(proto_err("too big inline request"));
                }
                return Ok(None);
            };
            let line = buf.split_to(nl + 1);
            let line = line[..nl].strip_suffix(b"\r").unwrap_or(&line[..nl]);
            let args = split_args(line).ok_or_else(|| proto_err("unbalanced quotes in request"))?;
            if args.is_empty() {
                continue;
            }
            return Ok(Some(Request::from_args(&args)));
        }
        let Some((count, mut pos)) = header_int(buf, 1, "mbulk")? else {
            return Ok(None);
        };
        if count <= 0 {
            let _ = buf.split_to(pos);
            continue;
        }
        if count as usize > MAX_MULTIBULK {
            return Err(proto_err("invalid multibulk length"));
        }
        let mut args = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let Some(&kind) = buf.get(pos) else {
                return Ok(None);
            };
            if kind != b'$' {
                return Err(proto_err(format!("expected '$', got '{}'", kind as char)));
            }
            let Some((len, body)) = header_int(buf, pos + 1, "bulk")? else {
                return Ok(None);
            };
            if len < 0 || len as u64 > max_bulk_len as u64 {
                return Err(proto_err("invalid bulk length"));
            }
            let end = body + len as usize;
            pos = end + 2;
            if pos > buf.len() {
                return Ok(None);
            }
            if u32::try_from(pos).is_err() {
                return Err(proto_err("request too large"));
            }
            args.push((body as u32, end as u32));
        }
        let raw = buf.split_to(pos).freeze();
        return Ok(Some(Request { raw, args }));
    }
}

/// Reads a `\r\n`-terminated integer line starting at `at` (after the type byte); returns it
/// and the offset after the line, or `None` while the line is incomplete.
fn header_int(buf: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = buf.get(at..).unwrap_or(&[]);
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        if rest.len() > MAX_INLINE {
            return Err(proto_err(format!("too big {what} count string")));
        }
        return Ok(None);
    };
    let line = &rest[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match strict_i64(line) {
        Some(n) => Ok(Some((n, at + nl + 1))),
        None if what == "mbulk" => Err(proto_err("invalid multibulk length")),
        None => Err(proto_err(format!("invalid {what} length"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_BULK: usize = 512 * 1024 * 1024;

    fn argv(r: &Request) -> Vec<String> {
        r.args()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    fn next(buf: &mut BytesMut) -> Result<Option<Vec<String>>, ProtocolError> {
        next_request(buf, MAX_BULK).map(|r| r.as_ref().map(argv))
    }

    /// The multibulk encoding of `args` (the inline test checks `from_args` byte for byte).
    fn encode_args(args: &[Vec<u8>]) -> Vec<u8> {
        Request::from_args(args).raw.to_vec()
    }

    #[test]
    fn an_incomplete_frame_is_not_an_error_and_consumes_nothing() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(next(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed on partial input");
        }
        // An inline line without its newline waits too.
        let mut buf = BytesMut::from(&b"PIN"[..]);
        assert_eq!(next(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"PIN");
    }

    #[test]
    fn a_complete_request_keeps_its_bytes() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let mut buf = BytesMut::from(&full[..]);
        buf.extend_from_slice(b"PING\r\n");
        let r = next_request(&mut buf, MAX_BULK).expect("ok").expect("req");
        assert_eq!(argv(&r), ["GET", "k"]);
        assert_eq!(&r.raw[..], &full[..]);
        assert_eq!(&r.arg_bytes(1)[..], b"k");
        assert!(r.arg_bytes(2).is_empty());
        let p = next_request(&mut buf, MAX_BULK).expect("ok").expect("req");
        assert_eq!(&p.raw[..], b"*1\r\n$4\r\nPING\r\n");
        assert!(buf.is_empty());
    }

    #[test]
    fn pipelined_requests_come_out_in_order_and_empty_ones_are_skipped() {
        let mut buf = BytesMut::from(
            &b"*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\nPING\r\n\r\n  \r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"
                [..],
        );
        assert_eq!(next(&mut buf), Ok(Some(vec!["PING".into()])));
        assert_eq!(next(&mut buf), Ok(Some(vec!["PING".into()])));
        assert_eq!(next(&mut buf), Ok(Some(vec!["ECHO".into(), "hi".into()])));
        assert_eq!(next(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn inline_commands_are_split_with_quotes_and_reencoded() {
        let mut buf = BytesMut::from(&b"SET k \"a b\\n\"\r\nGET 'k'\n"[..]);
        let set = next_request(&mut buf, MAX_BULK).expect("ok").expect("req");
        assert_eq!(argv(&set), ["SET", "k", "a b\n"]);
        assert_eq!(
            &set.raw[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na b\n\r\n"
        );
        let get = next_request(&mut buf, MAX_BULK).expect("ok").expect("req");
        assert_eq!(argv(&get), ["GET", "k"], "a bare LF ends a line too");
        assert!(buf.is_empty());
    }

    #[test]
    fn argument_spans_are_the_encoded_arguments() {
        let mut parsed = BytesMut::from(&b"*3\r\n$4\r\nMGET\r\n$0\r\n\r\n$2\r\nk1\r\n"[..]);
        let parsed = next_request(&mut parsed, MAX_BULK)
            .expect("ok")
            .expect("req");
        let inline = next_request(&mut BytesMut::from(&b"MGET \"\" k1\r\n"[..]), MAX_BULK)
            .expect("ok")
            .expect("req");
        for r in [parsed, inline] {
            assert_eq!(r.arg_span(0), b"$4\r\nMGET\r\n");
            assert_eq!(r.arg_span(1), b"$0\r\n\r\n");
            assert_eq!(r.arg_span(2), b"$2\r\nk1\r\n");
            assert_eq!(r.arg_span(3), b"");
        }
    }

    /// The error texts are Redis's (`networking.c`), after `Protocol error: `.
    #[test]
    fn bad_lengths_and_malformed_input_give_redis_errors() {
        let err = |b: &[u8], max: usize| {
            next_request(&mut BytesMut::from(b), max)
                .expect_err("must fail")
                .to_string()
        };
        for (bad, want) in [
            (&b"*2\r\n$3\r\nGET\r\n:1\r\n"[..], "expected '$', got ':'"),
            (b"*1\r\n*1\r\n$1\r\na\r\n", "expected '$', got '*'"),
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1x\r\n", "invalid multibulk length"),
            (b"*99999999\r\n", "invalid multibulk length"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$x\r\n", "invalid bulk length"),
            (b"*1\r\n$01\r\n", "invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "invalid bulk length"),
            (b"SET k \"abc\r\n", "unbalanced quotes in request"),
        ] {
            assert_eq!(
                err(bad, MAX_BULK),
                format!("Protocol error: {want}"),
                "{bad:?}"
            );
        }
        assert_eq!(
            err(b"*1\r\n$100\r\n", 10),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            err(&vec![b'a'; MAX_INLINE + 1], MAX_BULK),
            "Protocol error: too big inline request"
        );
        let mut long_header = b"*1\r\n$".to_vec();
        long_header.extend(vec![b'1'; MAX_INLINE + 1]);
        assert_eq!(
            err(&long_header, MAX_BULK),
            "Protocol error: too big bulk count string"
        );
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
                while let Some(r) = next_request(&mut buf, MAX_BULK).expect("valid input") {
                    got.push(r.args().map(<[u8]>::to_vec).collect::<Vec<_>>());
                }
            }
            assert!(buf.is_empty());
            assert_eq!(got, cmds);
        }
    }

    /// Corrupted input never panics, and a request always consumes input: each call yields,
    /// waits for more, or reports an error.
    #[test]
    fn corrupted_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0xBAD);
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
                match next_request(&mut buf, 1 << 20) {
                    Ok(Some(_)) => assert!(buf.len() < before, "a request consumes input"),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
