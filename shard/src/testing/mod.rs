//! Test fixtures shared by every crate's integration tests (feature `test-util`): an in-process
//! shard on a loopback listener, a `redis` crate connection with generous timeouts, and a raw
//! RESP connection that checks the server's bytes with an independent decoder
//! (redis-protocol's).
//!
//! Fixtures panic on failure: they are test code, and a panic with a message is the clearest
//! test failure.

pub mod node;
pub mod python;
pub mod random;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::{DecodedFrame, OwnedFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::Config;
pub use node::{ioredis, run_ioredis};

/// How long a fixture waits for anything (CI machines are slow in debug builds).
pub const TIMEOUT: Duration = Duration::from_secs(60);

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty directory under the system temp dir (left behind for post-mortems).
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!(
        "autocache-test-{}-{tag}-{n}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A shard running in this process on a loopback listener; stopped gracefully on
/// [`TestShard::stop`] (which checks that it stopped cleanly), or told to stop on drop.
pub struct TestShard {
    pub addr: SocketAddr,
    /// The admin HTTP server (`/metrics`, `/health`, `/ready`), when started with one.
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), crate::Error>>>,
    /// The data directory of a server with a warm tier (removed on drop).
    pub dir: Option<tempfile::TempDir>,
}

impl TestShard {
    /// A shard on 127.0.0.1:0 with `config` as given.
    pub async fn start(config: Config) -> TestShard {
        TestShard::start_at("127.0.0.1:0".parse().expect("addr"), config).await
    }

    /// A shard on 127.0.0.1:0 with the default configuration, its own data directory and its
    /// port in the configuration.
    pub async fn default() -> TestShard {
        TestShard::start_with("127.0.0.1:0", |_| {}).await
    }

    /// A shard on `addr` (a restarted node comes back where it was).
    pub async fn start_at(addr: SocketAddr, config: Config) -> TestShard {
        let listener = TcpListener::bind(addr).await.expect("bind shard");
        TestShard::on_listener(listener, None, config)
    }

    /// A shard on `addr` (`host:port`, port 0 for any) with its own data directory and its
    /// port in the configuration, adjusted by `tune`.
    pub async fn start_with(addr: &str, tune: impl FnOnce(&mut Config)) -> TestShard {
        let listener = TcpListener::bind(addr).await.expect("bind shard");
        let mut config = Config {
            port: listener.local_addr().expect("addr").port(),
            dir: temp_dir("shard"),
            ..Config::default()
        };
        tune(&mut config);
        TestShard::on_listener(listener, None, config)
    }

    /// [`TestShard::start`] with an admin server on 127.0.0.1:0 ([`TestShard::admin`]).
    pub async fn start_with_admin(config: Config) -> TestShard {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind shard");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        TestShard::on_listener(listener, Some(admin), config)
    }

    /// A shard with a warm tier and a RAM budget so small that every key goes through redb:
    /// each write first demotes everything in RAM, and a key read once goes back to disk.
    pub async fn tiny_warm() -> TestShard {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut srv = TestShard::start(warm_config(dir.path(), 1)).await;
        srv.dir = Some(dir);
        srv
    }

    /// A shard on a listener bound beforehand (its address is known before it serves), with
    /// an admin server on `admin` when given.
    pub fn on_listener(
        listener: TcpListener,
        admin: Option<TcpListener>,
        config: Config,
    ) -> TestShard {
        let addr = listener.local_addr().expect("addr");
        let admin_addr = admin.as_ref().map(|l| l.local_addr().expect("admin addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::run_with_admin(listener, admin, config, async {
            let _ = rx.await;
        }));
        TestShard {
            addr,
            admin: admin_addr,
            stop: Some(tx),
            task: Some(task),
            dir: None,
        }
    }

    /// Stops the shard and waits until it has: it must stop cleanly within [`TIMEOUT`].
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(TIMEOUT, t)
                .await
                .expect("shard stops in time")
                .expect("shard task")
                .expect("shard stops cleanly");
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A `redis` crate connection (RESP2).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        connect_url(&self.url()).await
    }

    /// A `redis` crate connection speaking RESP3 (`HELLO 3` on connect).
    pub async fn redis_resp3(&self) -> redis::aio::MultiplexedConnection {
        connect_url(&format!("{}?protocol=resp3", self.url())).await
    }

    pub async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    /// The cluster-bus address of this node, from its `CLUSTER NODES` "myself" line.
    pub async fn bus_addr(&self) -> String {
        let nodes = self.raw().await.cmd(&["CLUSTER", "NODES"]).await;
        let line = nodes
            .as_str()
            .lines()
            .find(|l| l.contains("myself"))
            .expect("myself line")
            .to_string();
        let field = line.split(' ').nth(1).expect("addr field");
        let (ip_port, bus) = field.split_once('@').expect("@busport");
        let ip = ip_port.rsplit_once(':').expect("ip:port").0;
        format!("{ip}:{bus}")
    }
}

impl Drop for TestShard {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
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

/// A `redis` crate connection to `url` with [`TIMEOUT`] for connecting and for each response.
pub async fn connect_url(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("client");
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(TIMEOUT))
        .set_connection_timeout(Some(TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("connect")
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

    fn from_resp3(f: OwnedFrame) -> V {
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
                V::Arr(data.into_iter().map(V::from_resp3).collect())
            }
            OwnedFrame::Set { data, .. } => V::Arr(data.into_iter().map(V::from_resp3).collect()),
            OwnedFrame::Map { data, .. } => V::Map(
                data.into_iter()
                    .map(|(k, v)| (V::from_resp3(k), V::from_resp3(v)))
                    .collect(),
            ),
            other => panic!("unexpected frame {other:?}"),
        }
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

/// Encodes a command as a RESP multibulk.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    encode_bytes(&args)
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

/// The RESP bulk string of `v`, as text (for comparing exact replies).
pub fn bulk(v: &str) -> String {
    format!("${}\r\n{v}\r\n", v.len())
}

/// The value of `field` in an INFO text (`field:value` lines).
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim_end().to_string())
}

/// An integer field of an INFO text; panics when it is missing.
#[track_caller]
pub fn info_int(info: &str, field: &str) -> u64 {
    info_field(info, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no integer {field} in {info}"))
}

/// A raw RESP connection: send exact bytes, read whole replies as bytes, text or [`V`].
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    /// Decode replies as RESP3 (after a successful `HELLO 3` sent with [`Raw::cmd`] or
    /// [`Raw::text`]).
    pub resp3: bool,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a command and returns its reply, decoded.
    pub async fn cmd(&mut self, args: &[&str]) -> V {
        let hello = self.send_command(args).await;
        let v = self.read().await;
        self.after_hello(hello, matches!(v, V::Err(_)));
        v
    }

    /// Sends a command and returns the exact bytes of its reply as text.
    pub async fn text(&mut self, args: &[&str]) -> String {
        let hello = self.send_command(args).await;
        let bytes = self.reply().await;
        self.after_hello(hello, bytes.first() == Some(&b'-'));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Sends `args`; returns the protocol a `HELLO` asks for and the one before it. HELLO's
    /// own reply already uses the requested protocol.
    async fn send_command(&mut self, args: &[&str]) -> Option<bool> {
        self.send(&encode(args)).await;
        let hello = args.len() > 1 && args[0].eq_ignore_ascii_case("hello");
        let before = self.resp3;
        if hello {
            self.resp3 = args[1] == "3";
        }
        hello.then_some(before)
    }

    /// A failed HELLO leaves the protocol as it was (its error looks alike in both).
    fn after_hello(&mut self, before: Option<bool>, failed: bool) {
        if let Some(before) = before
            && failed
        {
            self.resp3 = before;
        }
    }

    /// The next reply, or `None` if the server closed the connection first.
    pub async fn try_read(&mut self) -> Option<V> {
        loop {
            if let Some((v, n)) = self.decode_one() {
                let _ = self.buf.split_to(n);
                return Some(v);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next reply, decoded.
    pub async fn read(&mut self) -> V {
        self.try_read()
            .await
            .expect("connection closed before a reply")
    }

    /// The exact bytes of the next complete reply.
    pub async fn reply(&mut self) -> Vec<u8> {
        loop {
            if let Some((_, n)) = self.decode_one() {
                return self.buf.split_to(n).to_vec();
            }
            assert!(
                self.fill().await,
                "connection closed before a complete reply; buffered {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads more bytes; false on EOF or a reset.
    async fn fill(&mut self) -> bool {
        tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.buf))
            .await
            .expect("reply in time")
            .unwrap_or(0)
            > 0
    }

    /// Decodes one reply with redis-protocol's decoder, so the server's encoder is checked
    /// too: RESP3 after `HELLO 3`, else RESP2, and RESP3 for a reply RESP2 cannot have (a
    /// `HELLO 3` sent as raw bytes).
    fn decode_one(&self) -> Option<(V, usize)> {
        if !self.resp3 {
            match redis_protocol::resp2::decode::decode(&self.buf) {
                Ok(r) => return r.map(|(f, n)| (V::from_resp2(f), n)),
                Err(e) => {
                    let first = self.buf.first().copied().unwrap_or(b'?');
                    assert!(
                        !b"+-:$*".contains(&first),
                        "server sent invalid RESP2: {e:?}"
                    );
                }
            }
        }
        match redis_protocol::resp3::decode::streaming::decode(&self.buf)
            .expect("server sent invalid RESP3")?
        {
            (DecodedFrame::Complete(f), n) => Some((V::from_resp3(f), n)),
            (DecodedFrame::Streaming(_), _) => panic!("server sent a streamed frame"),
        }
    }

    /// The next `n` bytes of output (for checking exact encodings).
    pub async fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "closed early");
        }
        self.buf.split_to(n).to_vec()
    }

    /// Bytes received but not yet consumed as replies.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True once the server has closed the connection (the next read is EOF or an error),
    /// waiting at most [`TIMEOUT`].
    pub async fn is_closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Reads and drops whatever arrives until the server closes the connection; true if it
    /// did within [`TIMEOUT`].
    pub async fn closed_after_replies(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            self.buf.clear();
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// The value of the Prometheus sample whose name and labels are exactly `series`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Traffic whose metrics tests know exactly: 7 SETs of `k0..k6`, 5 GETs that hit, 3 that
/// miss, and one GET without a key (an arity error).
pub async fn known_traffic(con: &mut redis::aio::MultiplexedConnection) {
    use redis::AsyncCommands;
    for i in 0..7 {
        let _: () = con.set(format!("k{i}"), "v").await.expect("set");
    }
    for i in 0..5 {
        let v: Option<String> = con.get(format!("k{i}")).await.expect("get");
        assert_eq!(v.as_deref(), Some("v"));
    }
    for i in 0..3 {
        let v: Option<String> = con.get(format!("missing{i}")).await.expect("get");
        assert_eq!(v, None);
    }
    let e = redis::cmd("GET")
        .query_async::<Option<String>>(con)
        .await
        .expect_err("arity error");
    assert!(e.to_string().contains("wrong number"), "{e}");
}

/// A `redis-server` on a free local port (no persistence), killed on drop: the reference the
/// differential tests compare against.
pub struct RedisServer {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Starts `redis-server`. `None` (after a notice) only when it is missing and
/// `AUTOCACHE_SKIP_EXTERNAL=1`; missing otherwise, it panics with how to install it.
pub async fn redis_server() -> Option<RedisServer> {
    redis_server_with(&[]).await
}

/// [`redis_server`] with extra command-line options (`["--enable-debug-command", "yes"]`).
pub async fn redis_server_with(extra: &[&str]) -> Option<RedisServer> {
    if !on_path("redis-server") {
        if std::env::var("AUTOCACHE_SKIP_EXTERNAL").is_ok_and(|v| v == "1") {
            eprintln!(
                "NOTICE: skipping a differential test: redis-server not found on PATH \
                 (AUTOCACHE_SKIP_EXTERNAL=1)"
            );
            return None;
        }
        panic!(
            "redis-server not found on PATH. Install it with `apt-get install redis-server` \
             (Debian/Ubuntu), or set AUTOCACHE_SKIP_EXTERNAL=1 to skip this test"
        );
    }
    // A free port: bound, read, released, then taken by redis-server. Another listener (a
    // shard of a test running alongside) may take it in between: then redis-server exits, or
    // what answers is not a redis-server, and another port is tried.
    for _ in 0..10 {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut server = RedisServer { child, addr };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if server.child.try_wait().ok().flatten().is_some() {
                break; // it exited: the port was taken
            }
            if TcpStream::connect(addr).await.is_ok() {
                let mut probe = Raw::connect(addr).await;
                probe.send(&encode(&["INFO", "server"])).await;
                let info = probe.try_read().await;
                if matches!(&info, Some(V::Str(t)) if t.contains("redis_version") && !t.contains("autocache_version"))
                {
                    return Some(server);
                }
                break; // someone else's server on the port, or one that went away
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("redis-server could not get a free port in 10 attempts");
}

/// How a differential step's replies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Byte for byte.
    Exact,
    /// As multisets: the elements of an array (or RESP3 set) in any order, at every level
    /// (SMEMBERS, SUNION, SSCAN's `[cursor, members]`); anything else byte for byte.
    Unordered,
    /// Only the reply's shape: its type, and an array's length (SRANDMEMBER, SPOP with a
    /// count that leaves members behind: random by design).
    Shape,
    /// Byte for byte but for the integers, whatever their values (replies that carry times:
    /// XPENDING's idle times, XINFO's seen and delivery times).
    Masked,
}

/// One generated command and how to compare its replies.
#[derive(Debug, Clone)]
pub struct Step {
    pub args: Vec<String>,
    pub compare: Compare,
}

impl Step {
    pub fn exact(args: Vec<String>) -> Step {
        Step {
            args,
            compare: Compare::Exact,
        }
    }

    pub fn unordered(args: Vec<String>) -> Step {
        Step {
            args,
            compare: Compare::Unordered,
        }
    }
}

/// What a differential run saw: how many replies were errors and how many non-empty arrays
/// (a generator must reach populated values, not only error paths).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub errors: usize,
    pub arrays: usize,
}

/// Sends `ops` generated steps to the reference (`want`, a redis-server) and to `got`,
/// comparing every reply as the step says; panics with the last operations on the first
/// difference. `next` draws from the seeded generator, so a failure names a reproducible seed.
pub async fn differential(
    want: &mut Raw,
    got: &mut Raw,
    ops: usize,
    seed: u64,
    mut next: impl FnMut(&mut fastrand::Rng) -> Step,
) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut history: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for i in 0..ops {
        let step = next(&mut rng);
        let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
        let expected = want.text(&args).await;
        let actual = got.text(&args).await;
        tally.errors += usize::from(expected.starts_with('-'));
        tally.arrays += usize::from(
            (expected.starts_with('*') || expected.starts_with('~'))
                && !expected.starts_with("*0\r\n")
                && !expected.starts_with("~0\r\n"),
        );
        history.push_back(format!("{args:?} -> {expected:?}"));
        if history.len() > 12 {
            history.pop_front();
        }
        let same = match step.compare {
            Compare::Exact => actual == expected,
            Compare::Unordered => unordered(&actual) == unordered(&expected),
            Compare::Shape => shape(&actual) == shape(&expected),
            Compare::Masked => masked(&actual) == masked(&expected),
        };
        assert!(
            same,
            "op {i} (seed {seed:#x}) {args:?} differs ({:?}):\n  want {expected:?}\n  got  {actual:?}\n\
             the last operations:\n{}",
            step.compare,
            history.iter().cloned().collect::<Vec<_>>().join("\n")
        );
    }
    tally
}

/// A reply's bytes, split into its header line and its elements' bytes, sorted (nested arrays
/// normalised the same way).
fn unordered(reply: &str) -> (String, Vec<String>) {
    let bytes = reply.as_bytes();
    if !matches!(bytes.first(), Some(b'*' | b'~')) {
        return (reply.to_string(), Vec::new());
    }
    let Some(header_end) = reply.find("\r\n") else {
        return (reply.to_string(), Vec::new());
    };
    let mut rest = &bytes[header_end + 2..];
    let mut elements = Vec::new();
    // RESP3's decoder reads RESP2 too (a subset).
    loop {
        // RESP2's nulls, which the RESP3 decoder refuses.
        let n = if rest.starts_with(b"$-1\r\n") || rest.starts_with(b"*-1\r\n") {
            5
        } else if let Ok(Some((DecodedFrame::Complete(_), n))) =
            redis_protocol::resp3::decode::streaming::decode(rest)
        {
            n
        } else {
            break;
        };
        let element = String::from_utf8_lossy(&rest[..n]).into_owned();
        elements.push(if matches!(rest.first(), Some(b'*' | b'~')) {
            format!("{:?}", unordered(&element))
        } else {
            element
        });
        rest = &rest[n..];
    }
    assert!(rest.is_empty(), "undecodable reply {reply:?}");
    elements.sort();
    (reply[..header_end].to_string(), elements)
}

/// A reply with every integer (a line starting with `:`) replaced by `:#`.
fn masked(reply: &str) -> String {
    reply
        .split("\r\n")
        .map(|l| if l.starts_with(':') { ":#" } else { l })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A reply's type byte, and an array's length.
fn shape(reply: &str) -> String {
    match reply.as_bytes().first() {
        Some(b'*' | b'~' | b'%') => reply.split("\r\n").next().unwrap_or("").to_string(),
        Some(c) => (*c as char).to_string(),
        None => String::new(),
    }
}
