//! The wire layer.
//!
//! Requests: a header scan checks Redis's limits and records argument offsets in one pass, then
//! the request's bytes are split off the input buffer unchanged (`Request::raw`), so the proxy
//! forwards exactly what the client sent. An incomplete frame is not an error. Inline commands
//! (telnet) are re-encoded as multibulk.
//!
//! Replies: backends speak RESP2; [`reply_len`] finds reply boundaries without decoding, so
//! replies to RESP2 clients are copied through byte for byte. Merged and RESP3 replies go through
//! [`Reply`] and [`encode`].

use bytes::{BufMut, Bytes, BytesMut};
pub use membership::resp::{
    Proto, Reply, encode, encode_to_bytes, put_len, split_args, strict_i64,
};

/// Redis's limit on the element count of one request.
const MAX_MULTIBULK: usize = 1024 * 1024;
/// Redis's limit on an inline request and on a header line.
const MAX_INLINE: usize = 64 * 1024;
/// Deepest nesting accepted in a backend reply.
const MAX_DEPTH: usize = 64;

/// A protocol violation: the client gets `-ERR Protocol error: ...` and is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn proto_err(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// One request: its original bytes and where each argument sits in them.
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

    pub fn args(&self) -> impl Iterator<Item = &[u8]> {
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

/// Takes the next complete request off the front of `buf`; `Ok(None)` = need more bytes.
/// Empty requests (`*0`, blank lines) are skipped.
pub fn next_request(buf: &mut BytesMut, max_bulk: usize) -> Result<Option<Request>, ProtocolError> {
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
            if len < 0 || len as u64 > max_bulk as u64 {
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

/// Reads a `\r\n`-terminated integer line starting at `at`; returns it and the offset after it.
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

/// Length of the complete reply at the front of `buf` (RESP2 and RESP3 types), or `None` if
/// more bytes are needed. Does not allocate.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    // Pending element counts of the enclosing aggregates.
    let mut stack: [u64; MAX_DEPTH] = [0; MAX_DEPTH];
    let mut depth = 0usize;
    let mut pos = 0usize;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line_end = pos + nl + 1;
        let body = buf.get(pos + 1..pos + nl).unwrap_or(&[]);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let mut children: u64 = 0;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => pos = line_end,
            b'$' | b'=' | b'!' => {
                let n = strict_i64(body).ok_or_else(|| proto_err("bad bulk length"))?;
                pos = if n < 0 {
                    line_end
                } else {
                    let end = line_end + n as usize + 2;
                    if end > buf.len() {
                        return Ok(None);
                    }
                    end
                };
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = strict_i64(body).ok_or_else(|| proto_err("bad aggregate length"))?;
                pos = line_end;
                if n > 0 {
                    children = n as u64 * if matches!(kind, b'%' | b'|') { 2 } else { 1 };
                }
            }
            other => {
                return Err(proto_err(format!(
                    "unexpected reply type byte {:?}",
                    other as char
                )));
            }
        }
        if kind == b'|' {
            // An attribute precedes the real reply: one more element follows it.
            children += 1;
        }
        if children > 0 {
            if depth == MAX_DEPTH {
                return Err(proto_err("reply nested too deeply"));
            }
            stack[depth] = children;
            depth += 1;
            continue;
        }
        // One element finished: pop completed aggregates.
        loop {
            if depth == 0 {
                return Ok(Some(pos));
            }
            stack[depth - 1] -= 1;
            if stack[depth - 1] > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

/// Decodes one complete RESP2 reply (as cut by [`reply_len`]).
pub fn decode_reply(raw: &Bytes) -> Result<Reply, ProtocolError> {
    // `*-1` decodes to Null as well; keep the distinction for RESP2 clients.
    if raw.as_ref() == b"*-1\r\n" {
        return Ok(Reply::NilArray);
    }
    match redis_protocol::resp2::decode::decode_bytes(raw) {
        Ok(Some((f, _))) => Ok(Reply::from_frame(f)),
        Ok(None) => Err(proto_err("incomplete backend reply")),
        Err(e) => Err(proto_err(e.details().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(r: &Request) -> Vec<String> {
        r.args()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn multibulk_partial_then_complete_keeps_raw_bytes() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert!(
                next_request(&mut buf, 1 << 20).expect("ok").is_none(),
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut);
        }
        let mut buf = BytesMut::from(&full[..]);
        buf.extend_from_slice(b"PING\r\n");
        let r = next_request(&mut buf, 1 << 20).expect("ok").expect("req");
        assert_eq!(argv(&r), ["GET", "k"]);
        assert_eq!(&r.raw[..], &full[..]);
        let p = next_request(&mut buf, 1 << 20).expect("ok").expect("req");
        assert_eq!(&p.raw[..], b"*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn argument_spans_are_the_encoded_arguments() {
        let mut parsed = BytesMut::from(&b"*3\r\n$4\r\nMGET\r\n$0\r\n\r\n$2\r\nk1\r\n"[..]);
        let parsed = next_request(&mut parsed, 1 << 20)
            .expect("ok")
            .expect("req");
        let inline = next_request(&mut BytesMut::from(&b"MGET \"\" k1\r\n"[..]), 1 << 20)
            .expect("ok")
            .expect("req");
        for r in [parsed, inline] {
            assert_eq!(r.arg_span(0), b"$4\r\nMGET\r\n");
            assert_eq!(r.arg_span(1), b"$0\r\n\r\n");
            assert_eq!(r.arg_span(2), b"$2\r\nk1\r\n");
            assert_eq!(r.arg_span(3), b"");
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        for bad in [
            &b"*1\r\n:1\r\n"[..],
            b"*x\r\n",
            b"*1\r\n$-5\r\n",
            b"\"unbalanced\r\n",
        ] {
            assert!(
                next_request(&mut BytesMut::from(bad), 1 << 20).is_err(),
                "{bad:?}"
            );
        }
        assert!(next_request(&mut BytesMut::from(&b"*1\r\n$100\r\n"[..]), 10).is_err());
    }

    #[test]
    fn reply_boundaries() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":12\r\n",
            b"$-1\r\n",
            b"$3\r\nfoo\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n",
            b"%1\r\n+a\r\n:1\r\n",
            b"_\r\n",
        ];
        for c in cases {
            for cut in 0..c.len() {
                assert_eq!(reply_len(&c[..cut]), Ok(None), "{c:?} cut {cut}");
            }
            let mut two = c.to_vec();
            two.extend_from_slice(b"+next\r\n");
            assert_eq!(reply_len(&two), Ok(Some(c.len())), "{c:?}");
        }
        assert!(reply_len(b"?\r\n").is_err());
    }

    #[test]
    fn encodes_nil_and_maps_per_protocol() {
        let m = Reply::Map(vec![(Reply::str("a"), Reply::Int(1))]);
        assert_eq!(
            &encode_to_bytes(&m, Proto::Resp2)[..],
            b"*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(
            &encode_to_bytes(&m, Proto::Resp3)[..],
            b"%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(&encode_to_bytes(&Reply::Nil, Proto::Resp3)[..], b"_\r\n");
        assert_eq!(
            decode_reply(&Bytes::from_static(b"*2\r\n$1\r\na\r\n$-1\r\n")),
            Ok(Reply::Array(vec![Reply::str("a"), Reply::Nil]))
        );
    }
}
