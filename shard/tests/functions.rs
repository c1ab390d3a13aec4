//! Redis Functions (FUNCTION *, FCALL, FCALL_RO), `busy-reply-threshold` with FUNCTION KILL,
//! and the `cmsgpack` and `struct` Lua libraries: a differential test against a real
//! `redis-server` (a fixed corpus, then randomized cmsgpack and struct calls, every reply
//! compared byte for byte), FUNCTION DUMP / RESTORE between two shards, libraries kept across
//! a restart with a warm tier, and a slow function killed.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential test when it is missing.

use shard::testing::{Raw, Step, TestShard, V, differential, redis_server};

const LIB1: &str = "#!lua name=lib1
redis.register_function('f1', function(keys, args) return redis.call('set', keys[1], args[1]) end)
redis.register_function{function_name='f2', callback=function(keys, args) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}
redis.register_function{function_name='f2w', callback=function(keys, args) return redis.call('set', keys[1], 'x') end, flags={'no-writes', 'allow-oom'}}";

const LIB3: &str = "#!LUA name=lib3
redis.register_function('f3', function(keys, args) error('oops') end)
redis.register_function('f4', function(keys, args) return redis.call('nosuch') end)
redis.register_function('f5', function(keys, args) return {keys[1], args[1], #keys, #args} end)
redis.register_function('f6', function(keys, args) return redis.register_function end)
redis.register_function('f7', function(keys, args) return KEYS end)
redis.register_function('f8', function(keys, args) return redis.pcall('nosuch') end)
local function helper(x) return redis.call('incrby', x, 2) end
redis.register_function('f9', function(keys, args) return helper(keys[1]) end)
redis.register_function('f10', function(keys, args) return cmsgpack.unpack(cmsgpack.pack({1, 2, 'a'})) end)
redis.register_function('f11', function(keys, args) return {err = 'MY own error'} end)
redis.register_function('f12', function(keys, args) return redis.error_reply('E2 two') end)";

/// Library codes FUNCTION LOAD refuses, each with its own error.
const BAD_LIBRARIES: &[&str] = &[
    "#!lua name=lib1\nredis.register_function('f1', function() end)",
    "#!lua name=lib2\nredis.register_function('f1', function() end)",
    "#!lua name=lib2\nlocal x = string.len('a')",
    "#!lua name=lib2\nredis.register_function('f3')",
    "#!lua name=lib2\nredis.register_function('f-3', function() end)",
    "#!lua name=lib2\nredis.register_function{function_name='f3', callback=function() end, flags={'bogus'}}",
    "#!lua name=lib2\nredis.register_function{function_name='f3', callback=function() end, foo=1}",
    "#!lua name=lib2\nredis.register_function{function_name='f3'}",
    "#!lua name=lib2\nredis.register_function{callback=function() end}",
    "#!lua name=lib2\nredis.register_function{function_name=function() end, callback=function() end}",
    "#!lua name=lib2\nredis.register_function{function_name='f3', callback=1}",
    "#!lua name=lib2\nredis.register_function{function_name='f3', callback=function() end, flags='no-writes'}",
    "#!lua name=lib2\nredis.register_function(1,2,3)",
    "#!lua name=lib2\nredis.register_function('x', 2)",
    "#!lua name=lib2\nredis.register_function('a', function() end) redis.register_function('a', function() end)",
    "#!lua name=lib2\nreturn 1",
    "#!lua name=lib2\nx = 1",
    "#!lua name=lib2\nredis.call('ping')",
    "#!lua name=lib2\nerror('boom')",
    "#!lua name=lib2\nlocal function",
    "#!lua name=lib2\nlocal a = nil + 1",
    "#!lua name=lib2\nwhile true do end",
    "#!lua",
    "#!lua name=a name=b\n",
    "#!lua foo=bar\n",
    "#!py name=x\n",
    "lua name=x",
    "#!lua name=x",
    "#!lua name=a-b\n",
    "#!lua name=\n",
];

fn corpus() -> Vec<Vec<String>> {
    let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut c = vec![
        s(&["FUNCTION", "FLUSH"]),
        s(&[
            "COMMAND",
            "INFO",
            "fcall",
            "fcall_ro",
            "function|load",
            "function|delete",
            "function|flush",
            "function|restore",
            "function|dump",
            "function|list",
            "function|stats",
            "function|kill",
            "function|help",
            "script|kill",
        ]),
        s(&["COMMAND", "GETKEYS", "FCALL", "f", "2", "a", "b", "c"]),
        s(&["FUNCTION", "LOAD", LIB1]),
        s(&["FCALL", "f1", "1", "k", "v"]),
        s(&["FCALL_RO", "f2", "1", "k"]),
        s(&["FCALL_RO", "f1", "1", "k", "v"]),
        s(&["FCALL", "f2w", "1", "k"]),
        s(&["FCALL", "F1", "1", "k", "v"]),
        s(&["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "l*"]),
        s(&["FUNCTION", "LIST", "LIBRARYNAME", "nomatch*"]),
    ];
    for code in BAD_LIBRARIES {
        c.push(s(&["FUNCTION", "LOAD", code]));
    }
    c.extend([
        s(&["FUNCTION", "LOAD", LIB3]),
        s(&["FCALL", "f3", "0"]),
        s(&["FCALL", "f4", "0"]),
        s(&["FCALL", "f5", "1", "a", "b"]),
        s(&["FCALL", "f6", "0"]),
        s(&["FCALL", "f7", "0"]),
        s(&["FCALL", "f8", "0"]),
        s(&["FCALL", "f9", "1", "n"]),
        s(&["FCALL", "f9", "1", "n"]),
        s(&["FCALL", "f10", "0"]),
        s(&["FCALL", "f11", "0"]),
        s(&["FCALL", "f12", "0"]),
        s(&["FCALL", "nosuch", "0"]),
        s(&["FCALL", "f5", "x"]),
        s(&["FCALL", "f5", "2", "a"]),
        s(&["FCALL", "f5", "-1", "a"]),
        s(&["FUNCTION", "LOAD", "REPLACEX", "#!lua name=lib3\n"]),
        s(&["FUNCTION", "LOAD", "REPLACE"]),
        s(&[
            "FUNCTION",
            "LOAD",
            "REPLACE",
            "#!lua name=lib3\nredis.register_function('f3', function() return 'new' end)",
        ]),
        s(&["FCALL", "f3", "0"]),
        s(&["FCALL", "f4", "0"]),
        s(&["FUNCTION", "DELETE", "nosuch"]),
        s(&["FUNCTION", "FLUSH", "bogus"]),
        s(&["FUNCTION", "FLUSH", "SYNC", "x"]),
        s(&["FUNCTION", "RESTORE", "abc"]),
        s(&["FUNCTION", "RESTORE", "abc", "BOGUS"]),
        s(&["FUNCTION", "LIST", "bogus"]),
        s(&["FUNCTION", "LIST", "LIBRARYNAME"]),
        s(&["FUNCTION", "STATS"]),
        s(&["FUNCTION", "KILL"]),
        s(&["SCRIPT", "KILL"]),
        s(&["FUNCTION", "HELP"]),
        s(&["FUNCTION", "DELETE", "lib3"]),
        s(&["FCALL", "f3", "0"]),
        s(&["FUNCTION", "STATS"]),
        s(&["FUNCTION", "FLUSH", "ASYNC"]),
        s(&["FUNCTION", "LIST"]),
        s(&["CONFIG", "GET", "busy-reply-threshold"]),
        s(&["CONFIG", "GET", "lua-time-limit"]),
        s(&["CONFIG", "SET", "lua-time-limit", "-1"]),
        s(&["CONFIG", "SET", "busy-reply-threshold", "x"]),
        s(&["CONFIG", "SET", "busy-reply-threshold", "4000"]),
        s(&["CONFIG", "GET", "lua-time-limit"]),
        s(&["CONFIG", "SET", "busy-reply-threshold", "5000"]),
    ]);
    // cmsgpack and struct, fixed cases (errors included).
    for body in [
        "return cmsgpack.pack(1, -1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649)",
        "return cmsgpack.pack(0.5, 0.1, -1.5, 1e300, 1/0, -1/0)",
        "return cmsgpack.pack(nil, true, false, 'abc', string.rep('x', 31), string.rep('y', 32), string.rep('z', 300), string.rep('w', 70000))",
        "return cmsgpack.pack({}, {1, 2, 3}, {a = 1}, {[1] = 'a', [3] = 'c'}, {1, {2, {3}}}, {[1.5] = 1})",
        "local t = {} for i = 1, 20 do t[i] = i end return cmsgpack.pack(t)",
        "local t = {} for i = 1, 70000 do t[i] = i % 7 end return #cmsgpack.pack(t)",
        "local t = {} t[1] = t return cmsgpack.pack(t)",
        "return cmsgpack.pack(print or redis.call)",
        "return cmsgpack.pack()",
        "return {cmsgpack.unpack(cmsgpack.pack(1, 'a', {1, 2}, {x = 'y'}, true))}",
        "return cmsgpack.unpack(cmsgpack.pack({b = {c = {1, 2, 3}}})).b.c[3]",
        "return {cmsgpack.unpack('\\202\\064\\073\\015\\219')}",
        "return {cmsgpack.unpack('\\196\\002hi\\217\\001x\\218\\000\\001y')}",
        "return cmsgpack.unpack('\\193')",
        "return cmsgpack.unpack('\\205\\001')",
        "return cmsgpack.unpack('\\212\\001\\001')",
        "return cmsgpack.unpack()",
        "return cmsgpack.unpack({})",
        "return {cmsgpack.unpack('')}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1), 0)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 2)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1), 9)}",
        "return cmsgpack._VERSION",
        "return struct.pack('>i', 1)",
        "return struct.pack('<h H b B l L T I3 i7', -2, 65535, -1, 255, -3, 2^40, 7, 70000, -9)",
        "return struct.pack('!4 b i b d', 1, 2, 3, 4.5)",
        "return struct.pack('> d f', 1.1, 2.5)",
        "return struct.pack('s c3 c0 x', 'ab', 'xyz', 'q')",
        "return struct.pack('c5', 'ab')",
        "return struct.pack('i', 'x')",
        "return struct.pack('i')",
        "return struct.pack('z', 1)",
        "return struct.pack('!3 i', 1)",
        "return struct.pack('i40', 1)",
        "return struct.pack()",
        "return struct.pack('s', 12)",
        "return {struct.unpack('>i <h', struct.pack('>i <h', -5, 300))}",
        "return {struct.unpack('!4 b i b d', struct.pack('!4 b i b d', 1, 2, 3, 4.5))}",
        "return {struct.unpack('b c0', struct.pack('b', 3) .. 'abcdef')}",
        "return {struct.unpack('s B', 'hello\\0\\7')}",
        "return {struct.unpack('i', 'abcdefgh', 5)}",
        "return {struct.unpack('i', 'abc')}",
        "return {struct.unpack('i', 'abcd', 0)}",
        "return {struct.unpack('i', 'abcd', 2)}",
        "return {struct.unpack('c0', 'abc')}",
        "return {struct.unpack('s', 'abc')}",
        "return {struct.unpack('> f d', struct.pack('> f d', 0.25, -2.75))}",
        "return {struct.unpack('I3 i3', struct.pack('I3 i3', 70000, -70000))}",
        "return struct.size('>!4 b i h d')",
        "return struct.size('s')",
        "return struct.size('c0')",
        "return struct.size('i40')",
        "return struct.size('q')",
        "return {struct.unpack('x b', 'ab')}",
    ] {
        c.push(s(&["EVAL", body, "0"]));
    }
    c
}

/// A random Lua value, as source text, nested at most `depth` deep.
fn lua_value(rng: &mut fastrand::Rng, depth: usize) -> String {
    match rng.u8(..if depth == 0 { 6 } else { 8 }) {
        0 => rng.i64(-70_000..70_000).to_string(),
        1 => match rng.u8(..4) {
            0 => rng.i64(..).to_string(),
            1 => format!("{}", rng.u32(..) as i64 - 2_147_483_648),
            2 => format!("{}.5", rng.i32(-1000..1000)),
            _ => format!("{:e}", rng.f64() * 1e10),
        },
        2 => format!("'{}'", "s".repeat(rng.usize(..40))),
        3 => ["true", "false", "nil"][rng.usize(..3)].to_string(),
        4 => format!("string.rep('r', {})", rng.usize(250..70_000)),
        5 => format!("{}/3", rng.i32(-100..100)),
        6 => {
            let items: Vec<String> = (0..rng.usize(..20))
                .map(|_| lua_value(rng, depth - 1))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        _ => {
            let items: Vec<String> = (0..rng.usize(..5))
                .map(|i| format!("k{i} = {}", lua_value(rng, depth - 1)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Struct formats the randomized part draws from, with Lua expressions for their values.
const STRUCTS: &[(&str, &str)] = &[
    ("<i >i", "v, -v"),
    ("b B", "v % 128, v % 256"),
    ("h H", "v % 32768, v % 65536"),
    ("l L", "v * 1000003, v"),
    ("I5 i6", "v * 1001, -v * 7"),
    ("!8 b d", "1, v / 7"),
    ("> f d", "v / 4, v / 3"),
    ("s c4", "tostring(v), 'abcd'"),
    ("!2 b h x i", "1, v % 1000, v"),
];

fn random_step(rng: &mut fastrand::Rng) -> Step {
    let body = match rng.u8(..3) {
        0 => format!("return cmsgpack.pack({})", lua_value(rng, 3)),
        1 => format!(
            "return {{cmsgpack.unpack(cmsgpack.pack({}, {}))}}",
            lua_value(rng, 2),
            lua_value(rng, 2)
        ),
        _ => {
            let (fmt, values) = STRUCTS[rng.usize(..STRUCTS.len())];
            let v = rng.i64(0..100_000);
            format!(
                "local v = {v} local s = struct.pack('{fmt}', {values}) \
                 return {{s, struct.size('{fmt}'), struct.unpack('{fmt}', s)}}"
            )
        }
    };
    // Nested tables of mixed keys: Redis and this Lua 5.1 iterate them alike.
    Step::exact(vec!["EVAL".into(), body, "0".into()])
}

#[tokio::test]
async fn differential_against_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let srv = TestShard::default().await;
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    let mut differences = Vec::new();
    for args in corpus() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let expected = want.text(&args).await;
        let actual = got.text(&args).await;
        // FUNCTION LIST's functions come in Redis's hash order: compared as sets.
        let same = if args.get(1).is_some_and(|a| a.eq_ignore_ascii_case("list")) {
            sorted_lines(&actual) == sorted_lines(&expected)
        } else {
            actual == expected
        };
        if !same {
            differences.push(format!(
                "{:?}\n  want {expected:?}\n  got  {actual:?}",
                args
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    let tally = differential(&mut want, &mut got, 1_500, 0xf0c, random_step).await;
    assert!(tally.arrays > 300, "the scripts returned tables: {tally:?}");
    srv.stop().await;
}

fn sorted_lines(reply: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = reply.split("\r\n").collect();
    lines.sort_unstable();
    lines
}

/// FUNCTION DUMP's payload restores on another shard (all three policies), and a damaged one
/// is refused.
#[tokio::test]
async fn dump_restores_on_another_shard() {
    let a = TestShard::default().await;
    let b = TestShard::default().await;
    let mut ca = a.redis().await;
    let mut cb = b.redis().await;
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB1)
        .query_async(&mut ca)
        .await
        .expect("load");
    assert_eq!(name, "lib1");
    let dump: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query_async(&mut ca)
        .await
        .expect("dump");
    let restore = |policy: Option<&str>, payload: Vec<u8>| {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("RESTORE").arg(payload);
        if let Some(p) = policy {
            cmd.arg(p);
        }
        cmd
    };
    let ok: String = restore(None, dump.clone())
        .query_async(&mut cb)
        .await
        .expect("restore");
    assert_eq!(ok, "OK");
    let e = restore(Some("APPEND"), dump.clone())
        .query_async::<String>(&mut cb)
        .await
        .expect_err("collision");
    assert!(e.to_string().contains("Library lib1 already exists"), "{e}");
    let _: String = restore(Some("REPLACE"), dump.clone())
        .query_async(&mut cb)
        .await
        .expect("replace");
    let _: String = restore(Some("FLUSH"), dump.clone())
        .query_async(&mut cb)
        .await
        .expect("flush");
    let mut damaged = dump.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let e = restore(None, damaged)
        .query_async::<String>(&mut cb)
        .await
        .expect_err("damaged");
    assert!(
        e.to_string()
            .contains("DUMP payload version or checksum are wrong"),
        "{e}"
    );
    let _: String = redis::cmd("FCALL")
        .arg("f1")
        .arg(1)
        .arg("k")
        .arg("v")
        .query_async(&mut cb)
        .await
        .expect("fcall");
    let v: String = redis::cmd("FCALL_RO")
        .arg("f2")
        .arg(1)
        .arg("k")
        .query_async(&mut cb)
        .await
        .expect("fcall_ro");
    assert_eq!(v, "v");
    a.stop().await;
    b.stop().await;
}

/// With a warm tier the libraries are written to the data directory and loaded at start;
/// without one a restarted shard has none (as Redis without persistence).
#[tokio::test]
async fn libraries_survive_a_restart_with_a_warm_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    for warm in [true, false] {
        let config = || shard::Config {
            dir: dir.path().join(if warm { "warm" } else { "ram" }),
            warm_tier: warm,
            ..shard::Config::default()
        };
        let srv = TestShard::start(config()).await;
        let mut c = srv.raw().await;
        assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIB1]).await, V::s("lib1"));
        srv.stop().await;
        let srv = TestShard::start(config()).await;
        let mut c = srv.raw().await;
        let reply = c.cmd(&["FCALL", "f1", "1", "k", "v"]).await;
        if warm {
            assert_eq!(reply, V::s("OK"));
            assert_eq!(c.cmd(&["FUNCTION", "DELETE", "lib1"]).await, V::s("OK"));
        } else {
            assert_eq!(reply, V::Err("ERR Function not found".into()));
        }
        srv.stop().await;
        if warm {
            // The deletion persisted too.
            let srv = TestShard::start(config()).await;
            let mut c = srv.raw().await;
            assert_eq!(c.cmd(&["FUNCTION", "LIST"]).await, V::Arr(Vec::new()));
            srv.stop().await;
        }
    }
}

const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// A slow function: other clients get `-BUSY` (FUNCTION KILL's text) once it has run past the
/// threshold, FUNCTION STATS shows it, SCRIPT KILL refuses it, FUNCTION KILL ends it; one that
/// wrote cannot be killed, and ends when the server shuts down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_functions_are_busy_and_killable() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut other = srv.raw().await;
    let lib = "#!lua name=slow
redis.register_function('spin', function(keys, args) while true do end end)
redis.register_function('spinw', function(keys, args) redis.call('set', keys[1], 1) while true do end end)";
    assert_eq!(other.cmd(&["FUNCTION", "LOAD", lib]).await, V::s("slow"));
    assert_eq!(
        other
            .cmd(&["CONFIG", "SET", "busy-reply-threshold", "0"])
            .await,
        V::s("OK")
    );
    c.send(&shard::testing::encode(&["FCALL", "spin", "1", "k"]))
        .await;
    wait_busy(&mut other).await;
    assert_eq!(other.cmd(&["GET", "x"]).await, V::Err(BUSY_FUNCTION.into()));
    let stats = other.cmd(&["FUNCTION", "STATS"]).await;
    let running = format!("{stats:?}");
    assert!(
        running.contains("spin") && running.contains("duration_ms"),
        "{running}"
    );
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        V::Err(BUSY_FUNCTION.into())
    );
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]).await, V::s("OK"));
    let e = String::from_utf8_lossy(&c.reply().await).into_owned();
    assert!(
        e.starts_with(
            "-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."
        ),
        "{e}"
    );
    assert_eq!(other.cmd(&["GET", "x"]).await, V::Nil);

    c.send(&shard::testing::encode(&["FCALL", "spinw", "1", "k"]))
        .await;
    wait_busy(&mut other).await;
    assert!(matches!(
        other.cmd(&["FUNCTION", "KILL"]).await,
        V::Err(e) if e.starts_with("UNKILLABLE Sorry the script already executed write commands")
    ));
    // The shutdown ends it.
    srv.stop().await;
    let e = String::from_utf8_lossy(&c.reply().await).into_owned();
    assert!(e.contains("the server is shutting down"), "{e}");
}

/// PINGs until the reply is `-BUSY` (the function has started and run past the threshold).
async fn wait_busy(c: &mut Raw) {
    let wait = async {
        loop {
            match c.cmd(&["PING"]).await {
                V::Err(e) if e == BUSY_FUNCTION => return,
                V::Str(p) if p == "PONG" => tokio::task::yield_now().await,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(shard::testing::TIMEOUT, wait)
        .await
        .expect("the function makes the server busy");
}

/// redis-py's `register_script` and `Lock`, and functions through it, directly on a shard
/// (tests/clients/redis_py_scripts.py; the proxy's tests run the same script through it).
/// Skipped with a notice when no Python can `import redis`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_scripts_and_locks() {
    let Some(python) = shard::testing::python::redis_py("redis_py_scripts_and_locks") else {
        return;
    };
    let srv = TestShard::default().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_scripts.py"
    );
    let port = srv.addr.port().to_string();
    shard::testing::python::run_ok(python, &[script, &port]).await;
    srv.stop().await;
}
