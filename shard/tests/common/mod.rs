//! In-process shard servers and a raw RESP client for the integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::{DecodedFrame, OwnedFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use shard::Config;

/// A shard running in this process on 127.0.0.1:0; stopped (gracefully) on `stop` or drop.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), shard::Error>>>,
    /// The data directory of a server with a warm tier (removed on drop).
    pub dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        TestServer::start_at("127.0.0.1:0".parse().expect("addr"), config).await
    }

    /// A server on `addr` (a restarted node comes back where it was).
    pub async fn start_at(addr: SocketAddr, config: Config) -> TestServer {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(shard::run(listener, config, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            stop: Some(tx),
            task: Some(task),
            dir: None,
        }
    }

    /// A server with a warm tier and a RAM budget so small that every key goes through redb:
    /// each write first demotes everything in RAM, and a key read once goes back to disk.
    pub async fn tiny_warm() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut srv = TestServer::start(warm_config(dir.path(), 1)).await;
        srv.dir = Some(dir);
        srv
    }

    pub async fn default() -> TestServer {
        TestServer::start(Config::default()).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A `redis` crate connection (generous timeouts: CI machines are slow in debug builds).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("client");
        let cfg = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(60)))
            .set_connection_timeout(Some(Duration::from_secs(60)));
        client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .expect("connect")
    }

    pub async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }
}

/// A configuration with the warm tier on in `dir` and the given RAM budget.
pub fn warm_config(dir: &std::path::Path, maxmemory: u64) -> Config {
    Config {
        dir: dir.to_path_buf(),
        warm_tier: true,
        maxmemory,
        ..Config::default()
    }
}

/// A reply simplified for assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Str(String),
    Err(String),
    Int(i64),
    Dbl(f64),
    Nil,
    Arr(Vec<V>),
    Map(Vec<(V, V)>),
}

impl V {
    pub fn s(x: &str) -> V {
        V::Str(x.to_string())
    }

    pub fn strs(xs: &[&str]) -> V {
        V::Arr(xs.iter().map(|x| V::s(x)).collect())
    }

    pub fn as_str(&self) -> &str {
        match self {
            V::Str(s) | V::Err(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    pub fn as_arr(&self) -> &[V] {
        match self {
            V::Arr(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }

    pub fn as_int(&self) -> i64 {
        match self {
            V::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    fn from_resp2(f: Frame2) -> V {
        let text = |d: Vec<u8>| String::from_utf8_lossy(&d).into_owned();
        match f {
            Frame2::SimpleString(d) | Frame2::BulkString(d) => V::Str(text(d)),
            Frame2::Error(e) => V::Err(e),
            Frame2::Integer(i) => V::Int(i),
            Frame2::Null => V::Nil,
            Frame2::Array(a) => V::Arr(a.into_iter().map(V::from_resp2).collect()),
        }
    }

    fn from_frame(f: OwnedFrame) -> V {
        let text = |d: Vec<u8>| String::from_utf8_lossy(&d).into_owned();
        match f {
            OwnedFrame::BlobString { data, .. } | OwnedFrame::SimpleString { data, .. } => {
                V::Str(text(data))
            }
            OwnedFrame::VerbatimString { data, .. } => V::Str(text(data)),
            OwnedFrame::SimpleError { data, .. } => V::Err(data),
            OwnedFrame::BlobError { data, .. } => V::Err(text(data)),
            OwnedFrame::Number { data, .. } => V::Int(data),
            OwnedFrame::Double { data, .. } => V::Dbl(data),
            OwnedFrame::Boolean { data, .. } => V::Int(i64::from(data)),
            OwnedFrame::Null => V::Nil,
            OwnedFrame::Array { data, .. } | OwnedFrame::Push { data, .. } => {
                V::Arr(data.into_iter().map(V::from_frame).collect())
            }
            OwnedFrame::Set { data, .. } => V::Arr(data.into_iter().map(V::from_frame).collect()),
            OwnedFrame::Map { data, .. } => V::Map(
                data.into_iter()
                    .map(|(k, v)| (V::from_frame(k), V::from_frame(v)))
                    .collect(),
            ),
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// A raw RESP connection: send exact bytes, read decoded replies.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    /// Decode replies as RESP3 (after a successful `HELLO 3`).
    pub resp3: bool,
}

/// Encodes a command as a RESP multibulk.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next reply, or `None` if the server closed the connection.
    pub async fn try_read(&mut self) -> Option<V> {
        loop {
            if let Some((v, n)) = self.decode_one() {
                let _ = self.buf.split_to(n);
                return Some(v);
            }
            let n =
                tokio::time::timeout(Duration::from_secs(60), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("reply within 60s")
                    .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Decodes one reply with an independent decoder (redis-protocol's), so the server's
    /// encoder is checked too.
    fn decode_one(&self) -> Option<(V, usize)> {
        if self.resp3 {
            match redis_protocol::resp3::decode::streaming::decode(&self.buf)
                .expect("server sent invalid RESP3")?
            {
                (DecodedFrame::Complete(f), n) => Some((V::from_frame(f), n)),
                (DecodedFrame::Streaming(_), _) => panic!("server sent a streamed frame"),
            }
        } else {
            let (f, n) = redis_protocol::resp2::decode::decode(&self.buf)
                .expect("server sent invalid RESP2")?;
            Some((V::from_resp2(f), n))
        }
    }

    pub async fn read(&mut self) -> V {
        self.try_read()
            .await
            .expect("connection closed before a reply")
    }

    /// Raw bytes of the next `n` bytes of output (for checking exact encodings).
    pub async fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let r = self.stream.read_buf(&mut self.buf).await.expect("read");
            assert!(r > 0, "closed early");
        }
        self.buf.split_to(n).to_vec()
    }

    pub async fn cmd(&mut self, args: &[&str]) -> V {
        self.send(&encode(args)).await;
        let hello = args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("hello"))
            && args.len() > 1;
        let before = self.resp3;
        if hello {
            // HELLO's own reply already uses the requested protocol; errors look alike in both.
            self.resp3 = args[1] == "3";
        }
        let v = self.read().await;
        if hello && matches!(v, V::Err(_)) {
            self.resp3 = before;
        }
        v
    }

    /// True once the server has closed the connection (reads return EOF).
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(60), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Asserts that a reply is an error starting with `prefix`.
#[track_caller]
pub fn assert_err(v: &V, prefix: &str) {
    match v {
        V::Err(e) => assert!(
            e.starts_with(prefix),
            "error {e:?} does not start with {prefix:?}"
        ),
        other => panic!("expected error {prefix:?}, got {other:?}"),
    }
}

/// Encodes a command with binary arguments as a RESP multibulk.
pub fn encode_bytes(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Raw {
    /// The exact bytes of the next complete reply (its length found by the independent decoder,
    /// RESP2 or RESP3 per `resp3`).
    pub async fn read_reply_bytes(&mut self) -> Vec<u8> {
        loop {
            if let Some((_, n)) = self.decode_one() {
                return self.buf.split_to(n).to_vec();
            }
            let n =
                tokio::time::timeout(Duration::from_secs(60), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("reply within 60s")
                    .expect("read");
            assert!(n > 0, "connection closed before a complete reply");
        }
    }

    /// Bytes received but not yet consumed as replies.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The value of `field` in an INFO text (`field:value` lines).
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim_end().to_string())
}

impl TestServer {
    /// A `redis` crate connection speaking RESP3 (`HELLO 3` on connect); same timeouts as
    /// [`TestServer::redis`].
    pub async fn redis_resp3(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("{}?protocol=resp3", self.url())).expect("client");
        let cfg = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(60)))
            .set_connection_timeout(Some(Duration::from_secs(60)));
        client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .expect("connect")
    }
}
