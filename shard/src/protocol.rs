//! The wire layer: request framing (shared with the proxy: [`membership::frame`]) and reply
//! encoding for RESP2 and RESP3.
//!
//! Requests are checked before they are cut: a header scan enforces Redis's limits (multibulk
//! length, bulk length, inline size) and records where each argument sits; the arguments are
//! then slices of the request's own bytes, never copies. An incomplete frame is not an error.

use bytes::{Bytes, BytesMut};
pub use membership::frame::ProtocolError;
use membership::frame::Request;
pub use membership::resp::{
    Proto, Reply, encode, format_double, format_g17, split_args, strict_i64,
};

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

impl From<Vec<Bytes>> for Args {
    fn from(v: Vec<Bytes>) -> Args {
        Args(v)
    }
}

impl From<&Request> for Args {
    /// The request's arguments as slices of its bytes (reference counts, no copies).
    fn from(req: &Request) -> Args {
        Args((0..req.argc()).map(|i| req.arg_bytes(i)).collect())
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
    Ok(membership::frame::next_request(buf, limits.max_bulk_len)?.map(|req| Args::from(&req)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
    };

    /// The framing itself is tested in `membership::frame`; here, that the arguments the
    /// commands see are the request's, inline and multibulk alike, and share its buffer.
    #[test]
    fn arguments_are_slices_of_the_request() {
        let mut buf =
            BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nECHO 'a b'\r\n"[..]);
        let set = next_request(&mut buf, LIMITS).expect("ok").expect("req");
        assert_eq!(set.len(), 3);
        assert_eq!(
            (set.get(0), set.get(1), set.get(2)),
            (&b"SET"[..], &b"k"[..], &b""[..])
        );
        assert_eq!(set.get(3), b"", "absent arguments are empty");
        assert_eq!(set.slice(1).len(), 2);
        let echo = next_request(&mut buf, LIMITS).expect("ok").expect("req");
        assert_eq!(
            echo.slice(0),
            [Bytes::from_static(b"ECHO"), Bytes::from_static(b"a b")]
        );
        assert_eq!(
            next_request(&mut buf, LIMITS).map(|a| a.is_none()),
            Ok(true)
        );
        let err = next_request(&mut BytesMut::from(&b"*1\r\n$-2\r\n"[..]), LIMITS)
            .expect_err("bad length");
        assert_eq!(err.to_string(), "Protocol error: invalid bulk length");
    }
}
