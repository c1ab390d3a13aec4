//! The wire protocol seen through raw bytes: framing of partial, pipelined, inline and
//! malformed requests, big values, and the exact RESP2/RESP3 encodings of replies.

use shard::testing::{Raw, TestShard, V, encode, encode_bytes};

/// Writes `bytes` one byte per write, yielding between writes so the server sees (and must
/// buffer) every partial prefix.
async fn send_byte_by_byte(c: &mut Raw, bytes: &[u8]) {
    for b in bytes {
        c.send(std::slice::from_ref(b)).await;
        tokio::task::yield_now().await;
    }
}

/// Asserts that the server has sent nothing yet (a reply to an incomplete request is a bug).
fn assert_nothing_received(c: &mut Raw, what: &str) {
    assert_eq!(c.buffered(), 0, "{what}: unexpected buffered reply");
    let mut b = [0u8; 64];
    match c.stream.try_read(&mut b) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(n) => panic!(
            "{what}: server replied early: {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) => panic!("{what}: read error {e}"),
    }
}

#[tokio::test]
async fn request_delivered_one_byte_at_a_time_gets_one_reply() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;

    // A multibulk whose value contains CR LF, so only the length prefix can frame it.
    let set = encode_bytes(&[b"SET", b"slow", b"a\r\nb\r\n$3\r\n"]);
    let (head, last) = set.split_at(set.len() - 1);
    send_byte_by_byte(&mut c, head).await;
    assert_nothing_received(&mut c, "SET minus its last byte");
    send_byte_by_byte(&mut c, last).await;
    assert_eq!(c.reply().await, b"+OK\r\n");

    send_byte_by_byte(&mut c, &encode(&["GET", "slow"])).await;
    assert_eq!(c.reply().await, b"$10\r\na\r\nb\r\n$3\r\n\r\n");

    // An inline request, byte by byte.
    let inline = b"ECHO \"x y\"\r\n";
    send_byte_by_byte(&mut c, &inline[..inline.len() - 1]).await;
    assert_nothing_received(&mut c, "inline request minus its newline");
    send_byte_by_byte(&mut c, b"\n").await;
    assert_eq!(c.reply().await, b"$3\r\nx y\r\n");

    // Exactly one reply each: the next reply is the PING's.
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    assert_eq!(c.buffered(), 0);
    srv.stop().await;
}

#[tokio::test]
async fn pipeline_of_1000_commands_in_one_write_is_answered_in_order() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut counter = 0;
    for i in 0..1000 {
        match i % 4 {
            0 => {
                wire.extend(encode(&["SET", &format!("key:{i}"), &format!("value-{i}")]));
                expected.push(V::s("OK"));
            }
            1 => {
                wire.extend(encode(&["GET", &format!("key:{}", i - 1)]));
                expected.push(V::Str(format!("value-{}", i - 1)));
            }
            2 => {
                wire.extend(encode(&["INCR", "counter"]));
                counter += 1;
                expected.push(V::Int(counter));
            }
            _ => {
                // Reads a key the SET four commands later will create: order matters.
                wire.extend(encode(&["GET", &format!("key:{}", i + 1)]));
                expected.push(V::Nil);
            }
        }
    }
    c.send(&wire).await;
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&c.read().await, want, "reply {i}");
    }
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"), "no extra replies");
    assert_eq!(c.cmd(&["GET", "counter"]).await, V::s("250"));
    assert_eq!(c.cmd(&["DBSIZE"]).await, V::Int(251));
    srv.stop().await;
}

#[tokio::test]
async fn inline_commands() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.send(b"PING\r\n").await;
    assert_eq!(c.reply().await, b"+PONG\r\n");
    c.send(b"SET k \"a b\"\r\n").await;
    assert_eq!(c.reply().await, b"+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]).await, V::s("a b"));
    c.send(b"ECHO 'it\\'s'\r\n").await;
    assert_eq!(c.reply().await, b"$4\r\nit's\r\n");
    // Double quotes take C escapes; a bare LF ends a line too; blank lines are ignored.
    c.send(b"\r\n\r\n   \r\nSET e \"x\\ty\\x41\\n\"\n\nGET e\r\n")
        .await;
    assert_eq!(c.reply().await, b"+OK\r\n");
    assert_eq!(c.reply().await, b"$5\r\nx\tyA\n\r\n");
    // Inline and multibulk requests mix in one pipeline, answered in order.
    let mut mixed = b"INCR n\r\n".to_vec();
    mixed.extend(encode(&["INCR", "n"]));
    mixed.extend(b"  INCR   n  \r\n");
    c.send(&mixed).await;
    assert_eq!(c.read().await, V::Int(1));
    assert_eq!(c.read().await, V::Int(2));
    assert_eq!(c.read().await, V::Int(3));
    // The blank lines produced no replies.
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    assert_eq!(c.buffered(), 0);
    srv.stop().await;
}

/// Sends `request` on a fresh connection, expects exactly `-ERR Protocol error: {message}` and
/// a closed connection, and checks the server still serves an existing and a new connection.
async fn expect_protocol_error(srv: &TestShard, request: &[u8], message: &str) {
    let mut bystander = srv.raw().await;
    assert_eq!(bystander.cmd(&["PING"]).await, V::s("PONG"));
    let mut c = srv.raw().await;
    c.send(request).await;
    let reply = c.reply().await;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!("-ERR Protocol error: {message}\r\n"),
        "reply to {:?}",
        String::from_utf8_lossy(&request[..request.len().min(40)])
    );
    assert!(
        c.is_closed().await,
        "connection must be closed after a protocol error ({message})"
    );
    assert_eq!(
        bystander.cmd(&["ECHO", "still here"]).await,
        V::s("still here"),
        "another connection survives ({message})"
    );
    let mut fresh = srv.raw().await;
    assert_eq!(
        fresh.cmd(&["PING"]).await,
        V::s("PONG"),
        "new connections are served after ({message})"
    );
}

#[tokio::test]
async fn unbalanced_quotes_close_only_that_connection() {
    let srv = TestShard::default().await;
    expect_protocol_error(&srv, b"SET k \"abc\r\n", "unbalanced quotes in request").await;
    expect_protocol_error(&srv, b"ECHO 'abc\r\n", "unbalanced quotes in request").await;
    expect_protocol_error(&srv, b"ECHO \"a\"b\r\n", "unbalanced quotes in request").await;
    let mut c = srv.raw().await;
    assert_eq!(c.cmd(&["EXISTS", "k"]).await, V::Int(0));
    srv.stop().await;
}

#[tokio::test]
async fn malformed_multibulk_is_a_protocol_error() {
    let srv = TestShard::default().await;
    expect_protocol_error(&srv, b"*1\r\n:5\r\n", "expected '$', got ':'").await;
    expect_protocol_error(&srv, b"*1\r\n$536870913\r\n", "invalid bulk length").await;
    expect_protocol_error(&srv, b"*1\r\n$-3\r\n", "invalid bulk length").await;
    expect_protocol_error(&srv, b"*99999999\r\n", "invalid multibulk length").await;
    expect_protocol_error(&srv, b"*abc\r\n", "invalid multibulk length").await;
    expect_protocol_error(&srv, b"*2\r\n$4\r\nECHO\r\n*1\r\n", "expected '$', got '*'").await;
    srv.stop().await;
}

#[tokio::test]
async fn requests_before_a_protocol_error_run_and_those_after_do_not() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut wire = encode(&["SET", "before", "1"]);
    wire.extend(b"*1\r\n:5\r\n");
    wire.extend(encode(&["SET", "after", "1"]));
    c.send(&wire).await;
    assert_eq!(c.read().await, V::s("OK"));
    assert_eq!(
        c.read().await,
        V::Err("ERR Protocol error: expected '$', got ':'".into())
    );
    assert!(c.is_closed().await);
    let mut d = srv.raw().await;
    assert_eq!(d.cmd(&["EXISTS", "before", "after"]).await, V::Int(1));
    assert_eq!(d.cmd(&["EXISTS", "after"]).await, V::Int(0));
    srv.stop().await;
}

#[tokio::test]
async fn one_mebibyte_binary_value_round_trips() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    // Every byte value, CR and LF included, in a pattern that is not periodic in 256.
    let value: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    c.send(&encode_bytes(&[b"SET", b"big", &value])).await;
    assert_eq!(c.reply().await, b"+OK\r\n");
    assert_eq!(c.cmd(&["STRLEN", "big"]).await, V::Int(1 << 20));
    c.send(&encode(&["GET", "big"])).await;
    let reply = c.reply().await;
    let header = b"$1048576\r\n";
    assert_eq!(&reply[..header.len()], header);
    assert_eq!(reply.len(), header.len() + value.len() + 2);
    let body = &reply[header.len()..reply.len() - 2];
    if let Some(i) = body.iter().zip(&value).position(|(a, b)| a != b) {
        panic!("value differs first at byte {i}");
    }
    assert_eq!(&reply[reply.len() - 2..], b"\r\n");
    // The same value pipelined twice with a GET in between, in one write.
    let mut wire = encode_bytes(&[b"APPEND", b"big", b"!"]);
    wire.extend(encode(&["STRLEN", "big"]));
    c.send(&wire).await;
    assert_eq!(c.read().await, V::Int((1 << 20) + 1));
    assert_eq!(c.read().await, V::Int((1 << 20) + 1));
    srv.stop().await;
}

#[tokio::test]
async fn resp3_encodings_are_exact() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.send(&encode(&["HELLO", "3"])).await;
    c.resp3 = true;
    let hello = c.reply().await;
    assert!(
        hello.starts_with(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "HELLO 3 is a map: {:?}",
        String::from_utf8_lossy(&hello)
    );

    c.send(&encode(&["GET", "missing"])).await;
    assert_eq!(c.reply().await, b"_\r\n");
    c.send(&encode(&["MGET", "missing"])).await;
    assert_eq!(c.reply().await, b"*1\r\n_\r\n");

    c.send(&encode(&["HSET", "h", "f", "v"])).await;
    assert_eq!(c.reply().await, b":1\r\n");
    c.send(&encode(&["HGETALL", "h"])).await;
    assert_eq!(c.reply().await, b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    c.send(&encode(&["HGETALL", "nohash"])).await;
    assert_eq!(c.reply().await, b"%0\r\n");

    c.send(&encode(&["COMMAND", "INFO", "get"])).await;
    let info = c.reply().await;
    let text = String::from_utf8_lossy(&info);
    assert!(
        text.starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n"),
        "COMMAND INFO get: name, arity, then the flags as a set: {text:?}"
    );
    let flags_start = "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n".len();
    let flags = &text[flags_start..];
    assert!(
        flags.starts_with("+readonly\r\n+fast\r\n") || flags.starts_with("+fast\r\n+readonly\r\n"),
        "flags of GET: {flags:?}"
    );

    c.send(&encode(&["INFO", "server"])).await;
    let info = c.reply().await;
    assert_eq!(info[0], b'=', "INFO is a verbatim string in RESP3");
    let nl = info.iter().position(|&b| b == b'\n').expect("header line");
    let len: usize = std::str::from_utf8(&info[1..nl - 1])
        .expect("ascii")
        .parse()
        .expect("length");
    let body = &info[nl + 1..];
    assert_eq!(body.len(), len + 2, "declared length matches the payload");
    assert!(body.starts_with(b"txt:# Server\r\n"));
    assert!(body.ends_with(b"\r\n"));
    assert!(
        String::from_utf8_lossy(body).contains("redis_version:"),
        "INFO body"
    );
    srv.stop().await;
}

#[tokio::test]
async fn resp2_encodings_are_exact() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    c.send(&encode(&["GET", "missing"])).await;
    assert_eq!(c.reply().await, b"$-1\r\n");
    c.send(&encode(&["MGET", "missing", "missing2"])).await;
    assert_eq!(c.reply().await, b"*2\r\n$-1\r\n$-1\r\n");
    c.send(&encode(&["HSET", "h", "f", "v"])).await;
    assert_eq!(c.reply().await, b":1\r\n");
    c.send(&encode(&["HGETALL", "h"])).await;
    assert_eq!(c.reply().await, b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    c.send(&encode(&["INFO", "server"])).await;
    let info = c.reply().await;
    assert_eq!(info[0], b'$', "INFO is a bulk string in RESP2");
    assert!(
        !String::from_utf8_lossy(&info).contains("txt:"),
        "no verbatim prefix in RESP2"
    );
    c.send(&encode(&["COMMAND", "INFO", "get"])).await;
    let info = c.reply().await;
    assert!(
        info.starts_with(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n"),
        "sets are arrays in RESP2: {:?}",
        String::from_utf8_lossy(&info)
    );
    // HELLO 2 after HELLO 3 goes back to RESP2 encodings.
    assert!(matches!(c.cmd(&["HELLO", "3"]).await, V::Map(_)));
    assert!(matches!(c.cmd(&["HELLO", "2"]).await, V::Arr(_)));
    c.send(&encode(&["GET", "missing"])).await;
    assert_eq!(c.reply().await, b"$-1\r\n");
    srv.stop().await;
}

#[tokio::test]
async fn quit_replies_ok_then_closes_without_running_the_rest() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut wire = encode(&["SET", "before", "1"]);
    wire.extend(encode(&["QUIT"]));
    wire.extend(encode(&["SET", "after", "1"]));
    c.send(&wire).await;
    assert_eq!(c.reply().await, b"+OK\r\n");
    assert_eq!(c.reply().await, b"+OK\r\n");
    assert!(c.is_closed().await, "QUIT closes the connection");
    let mut d = srv.raw().await;
    assert_eq!(d.cmd(&["EXISTS", "before"]).await, V::Int(1));
    assert_eq!(d.cmd(&["EXISTS", "after"]).await, V::Int(0));
    // Inline QUIT too.
    d.send(b"QUIT\r\n").await;
    assert_eq!(d.reply().await, b"+OK\r\n");
    assert!(d.is_closed().await);
    srv.stop().await;
}

#[tokio::test]
async fn overlong_count_lines_use_redis_error_texts() {
    let srv = TestShard::default().await;
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(std::iter::repeat_n(b'1', 70_000));
    expect_protocol_error(&srv, &bulk, "too big bulk count string").await;
    let mut multibulk = b"*".to_vec();
    multibulk.extend(std::iter::repeat_n(b'1', 70_000));
    expect_protocol_error(&srv, &multibulk, "too big mbulk count string").await;
    srv.stop().await;
}

#[tokio::test]
async fn non_canonical_length_headers_are_protocol_errors() {
    let srv = TestShard::default().await;
    expect_protocol_error(&srv, b"*+1\r\n$4\r\nPING\r\n", "invalid multibulk length").await;
    expect_protocol_error(&srv, b"*01\r\n$4\r\nPING\r\n", "invalid multibulk length").await;
    expect_protocol_error(&srv, b"*1\r\n$+4\r\nPING\r\n", "invalid bulk length").await;
    expect_protocol_error(&srv, b"*1\r\n$04\r\nPING\r\n", "invalid bulk length").await;
    srv.stop().await;
}
