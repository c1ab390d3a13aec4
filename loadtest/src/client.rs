//! One RESP connection: requests are encoded straight into a reused write buffer, replies are
//! skimmed (classified without building frames) out of a reused read buffer.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::workload::push_decimal;

/// What a reply says, as far as a load generator cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+...`
    Status,
    /// `:n`
    Int,
    /// `$n` with n >= 0.
    Bulk,
    /// `$-1` or `*-1`.
    Nil,
    /// `-...`: the message's byte range in the skimmed buffer (without `-` and CRLF).
    Error(Range<usize>),
    /// `*n`: element count, how many elements were nil (MGET misses), how many were errors
    /// (commands that failed inside EXEC) and the first error's message range.
    Array {
        len: usize,
        nils: usize,
        errors: usize,
        first_error: Option<Range<usize>>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RESP protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

const MAX_DEPTH: usize = 8;

/// Skims one RESP2 reply at the start of `buf`. `Ok(None)`: incomplete, read more.
pub fn skim(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    skim_at(buf, 0, 0)
}

fn skim_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(line_end) = find_crlf(buf, pos + 1)? else {
        return Ok(None);
    };
    let line = pos + 1..line_end;
    let next = line_end + 2;
    match kind {
        b'+' => Ok(Some((Reply::Status, next))),
        b'-' => Ok(Some((Reply::Error(line), next))),
        b':' => Ok(Some((Reply::Int, next))),
        b'$' => {
            let n = parse_len(&buf[line])?;
            let Ok(n) = usize::try_from(n) else {
                return Ok(Some((Reply::Nil, next)));
            };
            let end = next.checked_add(n).ok_or(ProtocolError("bulk too long"))?;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not followed by CRLF"));
            }
            Ok(Some((Reply::Bulk, end + 2)))
        }
        b'*' => {
            let n = parse_len(&buf[line])?;
            let Ok(len) = usize::try_from(n) else {
                return Ok(Some((Reply::Nil, next)));
            };
            if depth >= MAX_DEPTH {
                return Err(ProtocolError("arrays nested too deep"));
            }
            let mut at = next;
            let mut nils = 0;
            let mut errors = 0;
            let mut first_error = None;
            for _ in 0..len {
                match skim_at(buf, at, depth + 1)? {
                    None => return Ok(None),
                    Some((r, end)) => {
                        match r {
                            Reply::Nil => nils += 1,
                            Reply::Error(range) => {
                                errors += 1;
                                first_error.get_or_insert(range);
                            }
                            _ => {}
                        }
                        at = end;
                    }
                }
            }
            Ok(Some((
                Reply::Array {
                    len,
                    nils,
                    errors,
                    first_error,
                },
                at,
            )))
        }
        _ => Err(ProtocolError("unknown reply type byte")),
    }
}

/// The index of the CR of the first CRLF at or after `from`; a bare LF is a protocol error.
fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(rest) = buf.get(from..) else {
        return Ok(None);
    };
    match rest.iter().position(|&b| b == b'\n') {
        None => Ok(None),
        Some(i) if i > 0 && rest.get(i - 1) == Some(&b'\r') => Ok(Some(from + i - 1)),
        Some(_) => Err(ProtocolError("line not terminated by CRLF")),
    }
}

fn parse_len(s: &[u8]) -> Result<i64, ProtocolError> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(ProtocolError("bad length"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ProtocolError("bad length"));
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Ok(if neg { -n } else { n })
}

/// The first word of an error message (`ERR`, `MOVED`, `WRONGTYPE`, ...), at most 32 bytes.
pub fn error_kind(msg: &[u8]) -> &[u8] {
    let word = msg.split(|&b| b == b' ').next().unwrap_or(msg);
    &word[..word.len().min(32)]
}

fn put_uint(buf: &mut BytesMut, n: usize, scratch: &mut Vec<u8>) {
    scratch.clear();
    push_decimal(scratch, n as u64);
    buf.put_slice(scratch);
}

/// Encodes RESP2 arrays of bulk strings into a buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    digits: Vec<u8>,
}

impl Encoder {
    pub fn array_header(&mut self, buf: &mut BytesMut, n: usize) {
        buf.put_u8(b'*');
        put_uint(buf, n, &mut self.digits);
        buf.put_slice(b"\r\n");
    }

    pub fn bulk(&mut self, buf: &mut BytesMut, b: &[u8]) {
        buf.put_u8(b'$');
        put_uint(buf, b.len(), &mut self.digits);
        buf.put_slice(b"\r\n");
        buf.put_slice(b);
        buf.put_slice(b"\r\n");
    }

    pub fn command(&mut self, buf: &mut BytesMut, args: &[&[u8]]) {
        self.array_header(buf, args.len());
        for a in args {
            self.bulk(buf, a);
        }
    }

    pub fn bulk_uint(&mut self, buf: &mut BytesMut, n: u64) {
        let mut d = std::mem::take(&mut self.digits);
        d.clear();
        push_decimal(&mut d, n);
        self.bulk(buf, &d);
        self.digits = d;
    }
}

/// What a reply in a connection's FIFO answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A whole request (SET, GET, one MGET part): its reply completes the part.
    Command,
    /// An `ASKING` sent before a redirected command; its `+OK` is skipped.
    Asking,
    /// A transaction's `MULTI` or one of its queued commands: `+OK` / `+QUEUED` expected.
    Queued,
    /// A transaction's `EXEC`: its reply completes the transaction.
    Exec,
}

impl Role {
    /// Whether this reply completes (a part of) its logical request.
    pub fn completes(self) -> bool {
        matches!(self, Role::Command | Role::Exec)
    }
}

/// A reply expected on one connection, in order.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    /// Index into the client's table of logical requests.
    pub logical: u32,
    /// For MGET split by slot: the key positions this sub-request carries.
    pub keys: (u16, u16),
    pub role: Role,
}

/// A connection with its buffers and the FIFO of sub-requests in flight.
#[derive(Debug)]
pub struct Conn {
    pub addr: SocketAddr,
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    pub inflight: VecDeque<Pending>,
    /// When this connection last got a reply or went from idle to busy (request watchdog).
    pub active_at: Instant,
}

impl Conn {
    /// Connects (bounded by `timeout`), sets TCP_NODELAY, authenticates if asked.
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        auth: Option<&str>,
    ) -> io::Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            addr,
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(64 * 1024),
            inflight: VecDeque::with_capacity(64),
            active_at: Instant::now(),
        };
        if let Some(pw) = auth {
            let mut enc = Encoder::default();
            enc.command(&mut conn.wbuf, &[b"AUTH", pw.as_bytes()]);
            let reply = tokio::time::timeout(timeout, conn.roundtrip())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "AUTH timed out"))??;
            if let (Reply::Error(r), raw) = &reply {
                let msg = String::from_utf8_lossy(raw.get(r.clone()).unwrap_or_default());
                return Err(io::Error::other(format!("AUTH failed: {msg}")));
            }
        }
        Ok(conn)
    }

    /// Writes the write buffer and reads exactly one reply (setup and control commands only).
    /// Returns the reply and its raw bytes.
    pub async fn roundtrip(&mut self) -> io::Result<(Reply, BytesMut)> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        loop {
            match skim(&self.rbuf) {
                Ok(Some((reply, n))) => return Ok((reply, self.rbuf.split_to(n))),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            self.rbuf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Writes what the socket takes now, without waiting. Returns whether the buffer is empty.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        // Keep the allocation: `clear` after `advance` to the end lets `reserve` reuse it.
        self.wbuf.clear();
        Ok(true)
    }

    /// Reads what the socket has now. `Ok(false)`: nothing yet (spurious readiness).
    pub fn try_fill(&mut self) -> io::Result<bool> {
        if self.rbuf.capacity() - self.rbuf.len() < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use redis_protocol::resp2::decode::decode_bytes_mut;
    use redis_protocol::resp2::encode::extend_encode;
    use redis_protocol::resp2::types::BytesFrame;

    fn array(len: usize, nils: usize) -> Reply {
        Reply::Array {
            len,
            nils,
            errors: 0,
            first_error: None,
        }
    }

    fn skim_all(b: &[u8]) -> Reply {
        let (r, n) = skim(b).expect("valid").expect("complete");
        assert_eq!(
            n,
            b.len(),
            "consumed all of {:?}",
            String::from_utf8_lossy(b)
        );
        r
    }

    #[test]
    fn skims_each_reply_type() {
        assert_eq!(skim_all(b"+OK\r\n"), Reply::Status);
        assert_eq!(skim_all(b":-12\r\n"), Reply::Int);
        assert_eq!(skim_all(b"$3\r\nfoo\r\n"), Reply::Bulk);
        assert_eq!(skim_all(b"$0\r\n\r\n"), Reply::Bulk);
        assert_eq!(skim_all(b"$-1\r\n"), Reply::Nil);
        assert_eq!(skim_all(b"*-1\r\n"), Reply::Nil);
        assert_eq!(skim_all(b"*3\r\n$1\r\na\r\n$-1\r\n$-1\r\n"), array(3, 2));
        assert_eq!(skim_all(b"*2\r\n*1\r\n:1\r\n+x\r\n"), array(2, 0));
        let b = b"-MOVED 3999 127.0.0.1:6381\r\n";
        let Reply::Error(r) = skim_all(b) else {
            panic!("not an error")
        };
        assert_eq!(&b[r.clone()], b"MOVED 3999 127.0.0.1:6381");
        assert_eq!(error_kind(&b[r]), b"MOVED");
        // A bulk string may contain CR and LF.
        assert_eq!(skim_all(b"$4\r\na\r\nb\r\n"), Reply::Bulk);
    }

    #[test]
    fn skims_a_transactions_replies() {
        let b: &[u8] = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n-ERR not an integer\r\n";
        let (r, n) = skim(b).expect("valid").expect("complete");
        assert_eq!((r, n), (Reply::Status, 5));
        let (r, m) = skim(&b[n..]).expect("valid").expect("complete");
        assert_eq!((r, m), (Reply::Status, 9));
        let exec = &b[n + 2 * m..];
        let Reply::Array {
            len: 2,
            nils: 0,
            errors: 1,
            first_error: Some(e),
        } = skim_all(exec)
        else {
            panic!("not EXEC's array with one error");
        };
        assert_eq!(&exec[e.clone()], b"ERR not an integer");
        assert_eq!(error_kind(&exec[e]), b"ERR");
        // A command error before an incomplete element: still incomplete.
        assert_eq!(skim(&exec[..exec.len() - 1]), Ok(None));
    }

    #[test]
    fn incomplete_replies_ask_for_more() {
        let full = b"*2\r\n$3\r\nfoo\r\n$-1\r\n";
        for cut in 0..full.len() {
            assert_eq!(skim(&full[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(skim(b"!oops\r\n").is_err());
        assert!(skim(b"$x\r\n").is_err());
        assert!(skim(b"$3\r\nfooXY").is_err());
    }

    #[test]
    fn agrees_with_redis_protocol_on_encoded_frames() {
        let frames = [
            BytesFrame::SimpleString(Bytes::from_static(b"OK")),
            BytesFrame::Integer(42),
            BytesFrame::BulkString(Bytes::from_static(b"hello\r\nworld")),
            BytesFrame::Null,
            BytesFrame::Array(vec![
                BytesFrame::BulkString(Bytes::from_static(b"v")),
                BytesFrame::Null,
                BytesFrame::Array(vec![BytesFrame::Integer(1)]),
            ]),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            extend_encode(&mut buf, f, false).expect("encode");
        }
        let mut copy = buf.clone();
        let mut at = 0;
        for f in &frames {
            let (reply, n) = skim(&buf[at..]).expect("valid").expect("complete");
            let (decoded, m, _) = decode_bytes_mut(&mut copy)
                .expect("valid")
                .expect("complete");
            assert_eq!(n, m);
            assert_eq!(&decoded, f);
            let want = match f {
                BytesFrame::SimpleString(_) => Reply::Status,
                BytesFrame::Integer(_) => Reply::Int,
                BytesFrame::BulkString(_) => Reply::Bulk,
                BytesFrame::Null => Reply::Nil,
                BytesFrame::Array(v) => array(
                    v.len(),
                    v.iter().filter(|e| **e == BytesFrame::Null).count(),
                ),
                BytesFrame::Error(_) => unreachable!(),
            };
            assert_eq!(reply, want);
            at += n;
        }
    }

    #[test]
    fn encodes_commands() {
        let mut enc = Encoder::default();
        let mut buf = BytesMut::new();
        enc.command(&mut buf, &[b"GET", b"k"]);
        enc.array_header(&mut buf, 2);
        enc.bulk(&mut buf, b"EX");
        enc.bulk_uint(&mut buf, 30);
        assert_eq!(
            &buf[..],
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$2\r\nEX\r\n$2\r\n30\r\n"
        );
    }
}
