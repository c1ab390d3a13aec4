//! The wire layer.
//!
//! Requests: framed by [`membership::frame`] (shared with the shard): a header scan checks
//! Redis's limits and records argument offsets in one pass, then the request's bytes are split
//! off the input buffer unchanged (`Request::raw`), so the proxy forwards exactly what the
//! client sent. An incomplete frame is not an error. Inline commands (telnet) are re-encoded as
//! multibulk.
//!
//! Replies: backends speak RESP2; [`reply_len`] finds reply boundaries without decoding, so
//! replies to RESP2 clients are copied through byte for byte. Merged and RESP3 replies go through
//! [`Reply`] and [`encode`].

use bytes::Bytes;
pub use membership::frame::{ProtocolError, Request};
pub use membership::resp::{Proto, Reply, encode, encode_to_bytes, put_len, strict_i64};

/// Takes the next complete request off the front of `buf`; `Ok(None)` = need more bytes.
/// Empty requests (`*0`, blank lines) are skipped. See [`membership::frame::next_request`].
#[inline]
pub fn next_request(
    buf: &mut bytes::BytesMut,
    max_bulk: usize,
) -> Result<Option<Request>, ProtocolError> {
    membership::frame::next_request(buf, max_bulk)
}

/// Deepest nesting accepted in a backend reply.
const MAX_DEPTH: usize = 64;

fn proto_err(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
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
