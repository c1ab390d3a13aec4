//! Lua scripting (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT): a differential test against a
//! real `redis-server` over a fixed corpus of scripts and then randomized small scripts,
//! every reply compared byte for byte (RAM and warm tier); atomicity under concurrent
//! clients; the redis crate's `Script` (EVALSHA, then EVAL on NOSCRIPT); blocked clients
//! served after a script; warm-tier keys loaded for a script.
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`); set
//! `AUTOCACHE_SKIP_EXTERNAL=1` to skip the differential tests when it is missing.

use shard::testing::{Raw, Step, TestShard, V, differential, redis_server};

/// Randomized operations per differential run.
const OPS: usize = 3_000;

/// Scripts and commands with one expected behaviour each, sent in order to both servers.
fn corpus() -> Vec<Vec<&'static str>> {
    let mut c: Vec<Vec<&'static str>> = vec![
        // The rows of the command table.
        vec![
            "COMMAND",
            "INFO",
            "eval",
            "evalsha",
            "eval_ro",
            "evalsha_ro",
        ],
        vec![
            "COMMAND",
            "INFO",
            "script|load",
            "script|exists",
            "script|flush",
            "script|help",
        ],
        vec!["COMMAND", "GETKEYS", "EVAL", "return 1", "2", "a", "b", "c"],
        vec!["SCRIPT", "FLUSH"],
        // Lua to Redis.
        vec!["EVAL", "return 1", "0"],
        vec!["EVAL", "return 3.99", "0"],
        vec!["EVAL", "return -3.99", "0"],
        vec!["EVAL", "return 'text'", "0"],
        vec!["EVAL", "return true", "0"],
        vec!["EVAL", "return false", "0"],
        vec!["EVAL", "return nil", "0"],
        vec!["EVAL", "return", "0"],
        vec!["EVAL", "return {1, 'two', {3, 'four'}, false, 5}", "0"],
        vec!["EVAL", "return {1, 2, nil, 4}", "0"],
        vec!["EVAL", "return {}", "0"],
        vec!["EVAL", "return {ok = 'FINE'}", "0"],
        vec!["EVAL", "return {err = 'MYERR bad thing'}", "0"],
        vec!["EVAL", "return {err = 'no code'}", "0"],
        vec!["EVAL", "return redis.status_reply('GOOD')", "0"],
        vec!["EVAL", "return redis.error_reply('MY bad')", "0"],
        vec!["EVAL", "return redis.error_reply('-X y')", "0"],
        vec!["EVAL", "return redis.error_reply('plain')", "0"],
        vec!["EVAL", "return redis.error_reply(1)", "0"],
        vec!["EVAL", "return redis.status_reply()", "0"],
        vec![
            "EVAL",
            "return {1, {ok = 'nested'}, {err = 'E nested'}}",
            "0",
        ],
        vec!["EVAL", "return 2^53", "0"],
        vec!["EVAL", "return 0/0 ~= 0/0", "0"],
        // KEYS and ARGV.
        vec![
            "EVAL",
            "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}",
            "2",
            "k1",
            "k2",
            "a1",
            "a2",
        ],
        vec!["EVAL", "return {#KEYS, #ARGV}", "0"],
        vec!["EVAL", "return ARGV", "0", "x", "y", "z"],
        // numkeys.
        vec!["EVAL", "return 1", "-1"],
        vec!["EVAL", "return 1", "2", "a"],
        vec!["EVAL", "return 1", "x"],
        vec!["EVAL", "return 1", "1.5", "a"],
        vec!["EVAL", "return 1"],
        vec!["EVALSHA", "abc"],
        // Redis to Lua.
        vec!["SET", "s", "foo"],
        vec!["EVAL", "return redis.call('GET', 's')", "0"],
        vec!["EVAL", "return redis.call('GET', 'missing')", "0"],
        vec!["EVAL", "return redis.call('GET', 'missing') == false", "0"],
        vec!["EVAL", "return type(redis.call('SET', 'x', '1'))", "0"],
        vec!["EVAL", "return redis.call('SET', 'x', '1')", "0"],
        vec!["EVAL", "return redis.call('SET', 'x', '1').ok", "0"],
        vec!["EVAL", "return redis.call('INCR', 'x') + 0.5", "0"],
        vec!["EVAL", "return redis.call('TYPE', 's')", "0"],
        vec!["EVAL", "return redis.call('PING')", "0"],
        vec![
            "EVAL",
            "return redis.call('RPUSH', 'l', 'a', 'b', 'c')",
            "0",
        ],
        vec!["EVAL", "return redis.call('LRANGE', 'l', 0, -1)", "0"],
        vec!["EVAL", "return redis.call('LPOP', 'nolist')", "0"],
        vec!["EVAL", "return redis.call('BLPOP', 'nolist', 0)", "0"],
        vec![
            "EVAL",
            "return redis.call('HSET', 'h', 'a', 1, 'b', 2.5)",
            "0",
        ],
        vec!["EVAL", "return redis.call('HGETALL', 'h')", "0"],
        vec![
            "EVAL",
            "return redis.call('ZADD', 'z', 1.5, 'm', 2, 'n')",
            "0",
        ],
        vec!["EVAL", "return redis.call('ZSCORE', 'z', 'm')", "0"],
        vec![
            "EVAL",
            "return redis.call('ZRANGE', 'z', 0, -1, 'WITHSCORES')",
            "0",
        ],
        vec![
            "EVAL",
            "return redis.call('MGET', 's', 'missing', 'x')",
            "0",
        ],
        vec![
            "EVAL",
            "return redis.call('EXISTS', 's', 'x', 'missing')",
            "0",
        ],
        vec!["EVAL", "return redis.call('SET', 'n', 12345678901234)", "0"],
        vec!["EVAL", "return redis.call('GET', 'n')", "0"],
        vec!["EVAL", "return redis.call('SET', 'f', 0.1)", "0"],
        vec!["EVAL", "return redis.call('GET', 'f')", "0"],
        // Errors from commands: raised by redis.call, returned by redis.pcall.
        vec!["EVAL", "return redis.call('INCR', 's')", "0"],
        vec!["EVAL", "return redis.pcall('INCR', 's')", "0"],
        vec![
            "EVAL",
            "local r = redis.pcall('INCR', 's') return r.err",
            "0",
        ],
        vec!["EVAL", "return redis.pcall('LPUSH', 's', 'x')", "0"],
        vec!["EVAL", "return redis.call('LPUSH', 's', 'x')", "0"],
        vec!["EVAL", "redis.call('LPUSH', 's', 'x')", "0"],
        vec![
            "EVAL",
            "\n\nlocal x = 1\nreturn redis.call('INCR', 's')",
            "0",
        ],
        vec!["EVAL", "return redis.call('NOSUCH')", "0"],
        vec!["EVAL", "return redis.pcall('NOSUCH')", "0"],
        vec!["EVAL", "return redis.call()", "0"],
        vec!["EVAL", "return redis.call('GET', {})", "0"],
        vec!["EVAL", "return redis.call('SET', 'a')", "0"],
        vec!["EVAL", "return redis.call('MULTI')", "0"],
        vec!["EVAL", "return redis.call('EVAL', 'return 1', 0)", "0"],
        vec!["EVAL", "return redis.call('WATCH', 'a')", "0"],
        vec!["EVAL", "return redis.call('CLIENT')", "0"],
        vec!["EVAL", "return redis.call('CLIENT', 'NOSUCH')", "0"],
        vec![
            "EVAL",
            "local ok, e = pcall(redis.call, 'INCR', 's') return {tostring(ok), e.err}",
            "0",
        ],
        vec!["EVAL", "return pcall(error, 'x')", "0"],
        // Errors raised by scripts.
        vec!["EVAL", "return nil + 1", "0"],
        vec!["EVAL", "error('boom')", "0"],
        vec!["EVAL", "error({err = 'TABLE raised'})", "0"],
        vec!["EVAL", "local function f() error('deep') end\nf()", "0"],
        vec!["EVAL", "this is not lua", "0"],
        vec!["EVAL", "return 'unfinished", "0"],
        // The redis library.
        vec!["EVAL", "return redis.sha1hex('')", "0"],
        vec!["EVAL", "return redis.sha1hex('abc')", "0"],
        vec!["EVAL", "return redis.sha1hex()", "0"],
        vec![
            "EVAL",
            "return redis.log(redis.LOG_WARNING, 'from a script', 1)",
            "0",
        ],
        vec!["EVAL", "return redis.log(1)", "0"],
        vec!["EVAL", "return redis.log('x', 'y')", "0"],
        vec!["EVAL", "return redis.log(9, 'y')", "0"],
        vec![
            "EVAL",
            "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
            "0",
        ],
        vec!["EVAL", "return redis.setresp(2)", "0"],
        vec!["EVAL", "return redis.setresp(4)", "0"],
        vec![
            "EVAL",
            "redis.setresp(3) local r = redis.call('HGETALL', 'h') return {r.map.a, r.map.b}",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('HGETALL', 'h')",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) local r = redis.call('ZSCORE', 'z', 'm') return {r.double}",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('ZSCORE', 'z', 'm')",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('GET', 'missing') == nil",
            "0",
        ],
        vec!["EVAL", "redis.setresp(3) return false", "0"],
        vec!["EVAL", "redis.setresp(3) return true", "0"],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('SET', 'x', '1')",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('INCR', 'x')",
            "0",
        ],
        vec![
            "EVAL",
            "redis.setresp(3) return redis.call('LRANGE', 'l', 0, -1)",
            "0",
        ],
        vec!["EVAL", "redis.setresp(3) return {double = 1.5}", "0"],
        vec!["EVAL", "return {map = {a = 1}}", "0"],
        vec!["EVAL", "return redis.setresp()", "0"],
        vec!["EVAL", "return redis.replicate_commands()", "0"],
        vec!["EVAL", "redis.set_repl(redis.REPL_ALL) return 1", "0"],
        vec![
            "EVAL",
            "redis.set_repl(redis.REPL_NONE) return redis.call('SET', 'r', 1)",
            "0",
        ],
        vec!["EVAL", "return redis.set_repl(99)", "0"],
        vec![
            "EVAL",
            "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
            "0",
        ],
        // Libraries.
        vec!["EVAL", "return string.format('%d-%s', 7, 'x')", "0"],
        vec!["EVAL", "return string.rep('ab', 3)", "0"],
        vec!["EVAL", "return ('x'):upper()", "0"],
        vec!["EVAL", "return table.concat({1, 2, 3}, ',')", "0"],
        vec!["EVAL", "return math.floor(7.9)", "0"],
        vec!["EVAL", "return tonumber('42') + 1", "0"],
        vec!["EVAL", "return tostring(12)", "0"],
        vec!["EVAL", "return type(unpack)", "0"],
        vec!["EVAL", "return select('#', 1, 2, 3)", "0"],
        vec![
            "EVAL",
            "local t = {} for i = 1, 5 do t[#t + 1] = i * i end return t",
            "0",
        ],
        vec![
            "EVAL",
            "local f = loadstring('return 1 + 1') return f()",
            "0",
        ],
        vec![
            "EVAL",
            "return {bit.band(0xff, 0x0f, 0x3c), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.bnot(0)}",
            "0",
        ],
        vec![
            "EVAL",
            "return {bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.lshift(1, 33)}",
            "0",
        ],
        vec![
            "EVAL",
            "return {bit.rol(0x12345678, 8), bit.ror(0x12345678, 8), bit.bswap(0x12345678)}",
            "0",
        ],
        vec![
            "EVAL",
            "return {bit.tobit(2^32 + 5), bit.tobit(-1), bit.tobit(2.5), bit.tobit(3.5), bit.band('7', 3)}",
            "0",
        ],
        vec![
            "EVAL",
            "return {bit.tohex(255), bit.tohex(-1, -4), bit.tohex(0x1234, 2), bit.tohex(1, 12)}",
            "0",
        ],
        vec!["EVAL", "return bit.band()", "0"],
        vec!["EVAL", "return bit.band({}, 1)", "0"],
        vec!["EVAL", "local x = bit.bor(1, nil) return x", "0"],
        vec!["EVAL", "bit.band = nil", "0"],
        vec![
            "EVAL",
            "return cjson.encode({1, 2, 'three', {4.5, true, false}})",
            "0",
        ],
        vec!["EVAL", "return cjson.encode({a = 1})", "0"],
        vec!["EVAL", "return cjson.encode({})", "0"],
        vec!["EVAL", r#"return cjson.encode('q"uo/te\\\n\t\1')"#, "0"],
        vec!["EVAL", "return cjson.encode({1, nil, 3})", "0"],
        vec!["EVAL", "return cjson.encode({[1] = 1, [20] = 2})", "0"],
        vec![
            "EVAL",
            "return cjson.encode({0.1, 1/3, 1e20, -2.5, 123456789012345, 1e-7})",
            "0",
        ],
        vec!["EVAL", "return cjson.encode(1/0)", "0"],
        vec!["EVAL", "return cjson.encode(print)", "0"],
        vec!["EVAL", "return cjson.encode(redis.call)", "0"],
        vec!["EVAL", "return cjson.encode()", "0"],
        vec!["EVAL", "return cjson.encode(cjson.null)", "0"],
        vec!["EVAL", "return cjson.encode({[true] = 1})", "0"],
        vec![
            "EVAL",
            "local t = cjson.decode('[1, 2.5, \"x\", [true, false], null]') return {t[1], t[2], t[3], t[4][1], t[4][2], t[5] == cjson.null, #t}",
            "0",
        ],
        vec![
            "EVAL",
            "local t = cjson.decode('{\"a\": {\"b\": [10, 20]}, \"c\": \"d\"}') return {t.a.b[2], t.c}",
            "0",
        ],
        vec!["EVAL", r#"return cjson.decode('"\\u00e9\\/\\n"')"#, "0"],
        vec!["EVAL", "return cjson.decode('12.75')", "0"],
        vec![
            "EVAL",
            "return cjson.encode(cjson.decode('[1,{\"k\":[2,3]}]'))",
            "0",
        ],
        vec!["EVAL", "cjson.encode = nil", "0"],
        // The sandbox.
        vec!["EVAL", "x = 1", "0"],
        vec!["EVAL", "return undefined_thing", "0"],
        vec!["EVAL", "return os", "0"],
        vec!["EVAL", "return io", "0"],
        vec!["EVAL", "return print", "0"],
        vec!["EVAL", "return loadfile", "0"],
        vec!["EVAL", "return dofile", "0"],
        vec!["EVAL", "return require", "0"],
        vec!["EVAL", "return package", "0"],
        vec!["EVAL", "os.exit()", "0"],
        vec!["EVAL", "string.foo = 1", "0"],
        vec!["EVAL", "redis.call = nil", "0"],
        vec!["EVAL", "math.pi = 3", "0"],
        vec!["EVAL", "rawset(_G, 'leak', 1)", "0"],
        vec!["EVAL", "return _G.leak", "0"],
        vec!["EVAL", "local v = 1 return v", "0"],
        vec!["EVAL", "setmetatable(_G, nil)", "0"],
        vec!["EVAL", "getmetatable('').__index.upper = nil", "0"],
        vec!["EVAL", "getmetatable('').x = 1", "0"],
        vec!["EVAL", "return ('abc'):upper()", "0"],
        // The script cache.
        vec!["SCRIPT", "LOAD", "return 'loaded'"],
        vec!["SCRIPT", "LOAD", "not lua at all"],
        vec![
            "SCRIPT",
            "EXISTS",
            "3c7f8a3f2a0bcee0bd5e8a0bfe5ae0b3d48dbfef",
            "ffffffffffffffffffffffffffffffffffffffff",
        ],
        vec!["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
        vec!["EVALSHA", "short", "0"],
        vec!["EVAL", "return 'cached by eval'", "0"],
        vec!["SCRIPT", "FLUSH", "FOO"],
        vec!["SCRIPT", "FLUSH", "ASYNC"],
        vec!["SCRIPT", "FLUSH", "SYNC"],
        vec!["SCRIPT", "FLUSH", "SYNC", "extra"],
        vec!["SCRIPT", "HELP"],
        vec!["SCRIPT"],
        // Read-only scripts.
        vec!["EVAL_RO", "return redis.call('GET', 's')", "0"],
        vec!["EVAL_RO", "return redis.call('SET', 's', 'x')", "0"],
        vec!["EVAL_RO", "return redis.pcall('DEL', 's')", "0"],
        vec!["EVAL_RO", "return 1", "-1"],
        vec![
            "EVALSHA_RO",
            "ffffffffffffffffffffffffffffffffffffffff",
            "0",
        ],
        // Commands scripts may not run, and server-wide ones they may.
        vec!["EVAL", "return redis.call('SHUTDOWN')", "0"],
        vec![
            "EVAL",
            "return redis.call('CONFIG', 'SET', 'maxmemory', '1')",
            "0",
        ],
        vec!["EVAL", "return redis.call('CLIENT', 'ID')", "0"],
        vec!["EVAL", "return redis.call('AUTH', 'x')", "0"],
        vec!["EVAL", "return redis.call('SCRIPT', 'FLUSH')", "0"],
        vec!["EVAL", "return redis.call('DBSIZE')", "0"],
        vec![
            "EVAL",
            "redis.call('SET', KEYS[1], 1) return redis.call('FLUSHALL')",
            "1",
            "gone",
        ],
        vec!["EVAL", "return redis.call('DBSIZE')", "0"],
        // Scripts inside transactions.
        vec!["MULTI"],
        vec!["EVAL", "return redis.call('INCR', KEYS[1])", "1", "tx"],
        vec!["EVAL", "return redis.call('BLPOP', 'nolist', 0)", "0"],
        vec!["EXEC"],
        vec!["GET", "tx"],
    ];
    // EVALSHA of what SCRIPT LOAD and EVAL cached, before and after a flush.
    c.extend([
        vec!["SCRIPT", "LOAD", "return {KEYS[1], ARGV[1]}"],
        vec!["EVALSHA", SHA_KEYS_ARGV, "1", "k", "v"],
        vec!["EVALSHA", SHA_KEYS_ARGV_UPPER, "1", "k", "v"],
        vec!["EVALSHA_RO", SHA_KEYS_ARGV, "1", "k", "v"],
        vec![
            "SCRIPT",
            "EXISTS",
            SHA_KEYS_ARGV,
            SHA_KEYS_ARGV_UPPER,
            "nope",
        ],
        vec!["SCRIPT", "FLUSH"],
        vec!["EVALSHA", SHA_KEYS_ARGV, "1", "k", "v"],
        vec!["SCRIPT", "EXISTS", SHA_KEYS_ARGV],
        vec!["EVAL", "return {KEYS[1], ARGV[1]}", "1", "k", "v"],
        vec!["EVALSHA", SHA_KEYS_ARGV, "1", "k", "v"],
    ]);
    c
}

/// SHA1 of `return {KEYS[1], ARGV[1]}`, in lower and upper case.
const SHA_KEYS_ARGV: &str = "d006f1a90249474274c76f5be725b8f5804a346b";
const SHA_KEYS_ARGV_UPPER: &str = "D006F1A90249474274C76F5BE725B8F5804A346B";

const KEYS: [&str; 4] = ["a", "b", "l", "s"];

/// Small scripts the randomized part draws from: (body, number of keys, number of args).
const SCRIPTS: &[(&str, usize, usize)] = &[
    ("return redis.call('INCR', KEYS[1])", 1, 0),
    ("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, 1),
    ("return redis.pcall('INCRBY', KEYS[1], ARGV[1])", 1, 1),
    (
        "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])",
        1,
        1,
    ),
    ("return redis.call('GET', KEYS[1])", 1, 0),
    ("return redis.call('SET', KEYS[1], ARGV[1])", 1, 1),
    (
        "return redis.call('LPUSH', KEYS[1], ARGV[1], ARGV[2])",
        1,
        2,
    ),
    ("return redis.pcall('LPUSH', KEYS[1], ARGV[1])", 1, 1),
    ("return redis.call('LRANGE', KEYS[1], 0, -1)", 1, 0),
    ("return redis.call('LPOP', KEYS[1])", 1, 0),
    (
        "return {redis.call('INCR', KEYS[1]), redis.call('INCR', KEYS[2])}",
        2,
        0,
    ),
    (
        "local v = redis.call('GET', KEYS[1]) if v then return {v, #v} end return {'none'}",
        1,
        0,
    ),
    ("return redis.call('TYPE', KEYS[1])", 1, 0),
    ("return redis.call('DEL', KEYS[1], KEYS[2])", 2, 0),
    ("return redis.call('EXISTS', KEYS[1])", 1, 0),
    ("local n = redis.call('INCR', KEYS[1]) return n / 3", 1, 0),
    ("return tonumber(ARGV[1]) * 2", 0, 1),
    ("return redis.call('MGET', KEYS[1], KEYS[2])", 2, 0),
    ("return redis.pcall('GET', KEYS[1])", 1, 0),
];

fn random_step(rng: &mut fastrand::Rng) -> Step {
    let (body, nkeys, nargs) = SCRIPTS[rng.usize(..SCRIPTS.len())];
    let ro = rng.u8(..10) == 0;
    let mut args = vec![
        if ro { "EVAL_RO" } else { "EVAL" }.to_string(),
        body.to_string(),
        nkeys.to_string(),
    ];
    for _ in 0..nkeys {
        args.push(KEYS[rng.usize(..KEYS.len())].to_string());
    }
    for _ in 0..nargs {
        args.push(match rng.u8(..4) {
            0 => format!("v{}", rng.u8(..10)),
            1 => format!("-{}", rng.u8(..100)),
            _ => rng.u8(..100).to_string(),
        });
    }
    Step::exact(args)
}

async fn differential_run(srv: TestShard, seed: u64) {
    let Some(redis) = redis_server().await else {
        return;
    };
    let mut want = Raw::connect(redis.addr).await;
    let mut got = srv.raw().await;
    let mut differences = Vec::new();
    for args in corpus() {
        let expected = want.text(&args).await;
        let actual = got.text(&args).await;
        if actual != expected {
            differences.push(format!("{args:?}\n  want {expected:?}\n  got  {actual:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(
        got.text(&["FLUSHALL"]).await,
        want.text(&["FLUSHALL"]).await
    );
    let tally = differential(&mut want, &mut got, OPS, seed, random_step).await;
    assert!(
        tally.errors > 50 && tally.arrays > 100,
        "the scripts reached errors and arrays: {tally:?}"
    );
    for k in KEYS {
        assert_eq!(got.text(&["TYPE", k]).await, want.text(&["TYPE", k]).await);
    }
    srv.stop().await;
}

#[tokio::test]
async fn differential_against_redis_ram() {
    differential_run(TestShard::default().await, 0x5c41).await;
}

#[tokio::test]
async fn differential_against_redis_warm_tier() {
    differential_run(TestShard::tiny_warm().await, 0x5c42).await;
}

/// The declared keys' slots are held for the whole script: a reader never sees `a` and `b`
/// differ while scripts increment both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scripts_are_atomic_against_concurrent_clients() {
    let srv = TestShard::default().await;
    let script =
        redis::Script::new("redis.call('INCR', KEYS[1]) redis.call('INCR', KEYS[2]) return 1");
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut c = srv.redis().await;
        let script = script.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..300 {
                let _: i64 = script
                    .key("a")
                    .key("b")
                    .invoke_async(&mut c)
                    .await
                    .expect("script");
            }
        }));
    }
    let mut reader = srv.redis().await;
    let mut reads = 0;
    while writers.iter().any(|w| !w.is_finished()) && reads < 20_000 {
        let (a, b): (Option<i64>, Option<i64>) = redis::cmd("MGET")
            .arg("a")
            .arg("b")
            .query_async(&mut reader)
            .await
            .expect("mget");
        assert_eq!(a, b, "a reader saw half a script");
        reads += 1;
    }
    for w in writers {
        w.await.expect("writer");
    }
    let (a, b): (i64, i64) = redis::cmd("MGET")
        .arg("a")
        .arg("b")
        .query_async(&mut reader)
        .await
        .expect("mget");
    assert_eq!((a, b), (1200, 1200));
    srv.stop().await;
}

/// The redis crate's `Script`: EVALSHA, then EVAL when the server answers NOSCRIPT (first use,
/// and after SCRIPT FLUSH).
#[tokio::test]
async fn redis_crate_script_loads_on_noscript() {
    let srv = TestShard::default().await;
    let mut c = srv.redis().await;
    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let n: i64 = script
        .key("k")
        .arg(5)
        .invoke_async(&mut c)
        .await
        .expect("first");
    assert_eq!(n, 5);
    let n: i64 = script
        .key("k")
        .arg(2)
        .invoke_async(&mut c)
        .await
        .expect("cached");
    assert_eq!(n, 7);
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(script.get_hash())
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(exists, vec![1]);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .expect("flush");
    let n: i64 = script
        .key("k")
        .arg(1)
        .invoke_async(&mut c)
        .await
        .expect("reloaded");
    assert_eq!(n, 8);
    let mut raw = srv.raw().await;
    let sha = raw.cmd(&["SCRIPT", "LOAD", "return 'x'"]).await;
    assert_eq!(raw.cmd(&["EVALSHA", sha.as_str(), "0"]).await, V::s("x"));
    srv.stop().await;
}

/// A client blocked on a list is served when a script pushes to it, after the script ends.
#[tokio::test]
async fn blocked_clients_are_served_after_a_script() {
    let srv = TestShard::default().await;
    let mut waiter = srv.raw().await;
    let mut c = srv.raw().await;
    waiter
        .send(&shard::testing::encode(&["BLPOP", "q", "0"]))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        c.cmd(&[
            "EVAL",
            "return redis.call('LPUSH', KEYS[1], 'x', 'y')",
            "1",
            "q"
        ])
        .await,
        V::Int(2)
    );
    assert_eq!(waiter.read().await, V::strs(&["q", "y"]));
    srv.stop().await;
}

/// Warm tier: a script's declared keys are loaded into RAM before it runs, and what it writes
/// is kept.
#[tokio::test]
async fn scripts_see_warm_tier_keys() {
    let srv = TestShard::tiny_warm().await;
    let mut c = srv.raw().await;
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(c.cmd(&["SET", &k, &i.to_string()]).await, V::s("OK"));
    }
    assert_eq!(c.cmd(&["RPUSH", "list", "a", "b"]).await, V::Int(2));
    assert_eq!(
        c.cmd(&[
            "EVAL",
            "return {redis.call('GET', KEYS[1]), redis.call('INCR', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, -1)}",
            "3",
            "k3",
            "k7",
            "list"
        ])
        .await,
        V::Arr(vec![V::s("3"), V::Int(8), V::strs(&["a", "b"])])
    );
    assert_eq!(c.cmd(&["GET", "k7"]).await, V::s("8"));
    // A key the script did not declare is read from the warm tier when it is used.
    assert_eq!(
        c.cmd(&["EVAL", "return redis.call('INCR', 'k9')", "0"])
            .await,
        V::Int(10)
    );
    assert_eq!(c.cmd(&["GET", "k9"]).await, V::s("10"));
    assert_eq!(
        c.cmd(&["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "k7"])
            .await,
        V::s("8")
    );
    srv.stop().await;
}

/// Cluster mode: a script's declared keys share one slot; a key it did not declare must be in
/// that slot too (the first one it touches when it declared none), as Redis Cluster says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_keeps_a_script_in_one_slot() {
    let dir = tempfile::tempdir().expect("tmp");
    let srv = TestShard::start(shard::testing::Config {
        dir: dir.path().to_path_buf(),
        cluster_enabled: true,
        cluster_port: Some(0),
        cluster_secret: Some("test-cluster-secret".into()),
        ..shard::testing::Config::default()
    })
    .await;
    let mut c = srv.raw().await;
    for _ in 0..300 {
        let info = c.cmd(&["CLUSTER", "INFO"]).await;
        if info.as_str().contains("cluster_state:ok") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let e = c.text(&["EVAL", "return 1", "2", "a", "b"]).await;
    assert!(e.starts_with("-CROSSSLOT"), "{e}");
    assert_eq!(
        c.cmd(&[
            "EVAL",
            "return {redis.call('INCR', KEYS[1]), redis.call('INCR', KEYS[2]), redis.call('INCR', '{t}c')}",
            "2",
            "{t}a",
            "{t}b"
        ])
        .await,
        V::Arr(vec![V::Int(1), V::Int(1), V::Int(1)])
    );
    let e = c
        .text(&["EVAL", "return redis.call('GET', 'other')", "1", "{t}a"])
        .await;
    assert!(
        e.starts_with(
            "-ERR Script attempted to access keys that do not hash to the same slot script: "
        ),
        "{e}"
    );
    let e = c
        .text(&[
            "EVAL",
            "redis.call('SET', 'x', 1) return redis.call('SET', 'y', 1)",
            "0",
        ])
        .await;
    assert!(
        e.starts_with(
            "-ERR Script attempted to access keys that do not hash to the same slot script: "
        ),
        "{e}"
    );
    assert_eq!(
        c.cmd(&["GET", "x"]).await,
        V::s("1"),
        "the first write stays"
    );
    srv.stop().await;
}

/// Scripts that fail in Lua's own ways (memory, stack, self-containing tables) get error
/// replies; the server goes on serving.
#[tokio::test]
async fn runaway_scripts_get_errors_not_crashes() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let e = c
        .text(&["EVAL", "local s = string.rep('xx', 2^30) return #s", "0"])
        .await;
    assert!(e.starts_with("-ERR") && e.contains("memory"), "{e}");
    let e = c
        .text(&[
            "EVAL",
            "local function f() return 1 + f() end return f()",
            "0",
        ])
        .await;
    assert!(e.starts_with("-ERR") && e.contains("stack overflow"), "{e}");
    let deep = c
        .text(&["EVAL", "local t = {} t[1] = t return t", "0"])
        .await;
    assert!(deep.contains("-ERR reached lua stack limit"), "{deep}");
    let e = c
        .text(&["EVAL", "local c = redis.call string.upper = c", "0"])
        .await;
    assert!(e.starts_with("-ERR"), "{e}");
    assert_eq!(
        c.cmd(&["EVAL", "return 'still here'", "0"]).await,
        V::s("still here")
    );
    assert_eq!(c.cmd(&["PING"]).await, V::s("PONG"));
    srv.stop().await;
}

/// Tens of thousands of runs on one connection leave nothing behind (the engine reuses its
/// KEYS and ARGV tables): what one script did to them (extra entries, a metatable, holes) is
/// gone in the next, and the Lua stack does not grow.
#[tokio::test]
async fn many_runs_leave_nothing_behind() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let tamper = "KEYS[5] = 'x' ARGV.extra = 1 KEYS[1] = nil \
                  setmetatable(ARGV, {__index = function() return 'meta' end}) return 0";
    assert_eq!(
        c.cmd(&["EVAL", tamper, "2", "a", "b", "c"]).await,
        V::Int(0)
    );
    let look = "local n = 0 for _ in pairs(KEYS) do n = n + 1 end \
                for _ in pairs(ARGV) do n = n + 1 end \
                return {n, #KEYS, #ARGV, tostring(getmetatable(ARGV)), tostring(ARGV[9]), KEYS[1]}";
    assert_eq!(
        c.cmd(&["EVAL", look, "1", "k", "v"]).await,
        V::Arr(vec![
            V::Int(2),
            V::Int(1),
            V::Int(1),
            V::s("nil"),
            V::s("nil"),
            V::s("k")
        ])
    );
    let sha = c
        .cmd(&["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"])
        .await
        .as_str()
        .to_string();
    let n = 20_000;
    let mut batch = Vec::new();
    for _ in 0..n {
        batch.extend(shard::testing::encode(&["EVALSHA", &sha, "1", "counter"]));
    }
    c.send(&batch).await;
    for i in 1..=n {
        assert_eq!(c.read().await, V::Int(i), "run {i}");
    }
    assert_eq!(
        c.cmd(&["EVAL", "return #KEYS + #ARGV", "0"]).await,
        V::Int(0)
    );
    srv.stop().await;
}

/// A script that never ends runs until SCRIPT KILL (even one that catches errors with pcall):
/// another slot's keys are served meanwhile, until it has run past `busy-reply-threshold`;
/// then other clients get `-BUSY`, except for SCRIPT KILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_scripts_run_until_killed() {
    let srv = TestShard::default().await;
    let mut c = srv.raw().await;
    let mut other = srv.raw().await;
    for body in [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
    ] {
        set_threshold(&mut other, "60000").await;
        c.send(&shard::testing::encode(&["EVAL", body, "1", "{loop}k"]))
            .await;
        // Another slot's key is served while the script runs below the threshold.
        assert_eq!(other.cmd(&["SET", "elsewhere", "1"]).await, V::s("OK"));
        set_threshold(&mut other, "0").await;
        wait_busy(&mut other, BUSY_EVAL).await;
        assert_eq!(other.cmd(&["SCRIPT", "KILL"]).await, V::s("OK"));
        let e = c.reply().await;
        let e = String::from_utf8_lossy(&e);
        assert!(
            e.starts_with("-ERR Script killed by user with SCRIPT KILL... script: ")
                && e.contains("on @user_script:1."),
            "{e}"
        );
    }
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        V::Err("NOTBUSY No scripts in execution right now.".into())
    );
    assert_eq!(c.cmd(&["SET", "{loop}k", "v"]).await, V::s("OK"));
    srv.stop().await;
}

const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

async fn set_threshold(c: &mut Raw, ms: &str) {
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "busy-reply-threshold", ms]).await,
        V::s("OK")
    );
}

/// PINGs until the reply is `busy` (the script has started and run past the threshold).
async fn wait_busy(c: &mut Raw, busy: &str) {
    let wait = async {
        loop {
            match c.cmd(&["PING"]).await {
                V::Err(e) if e == busy => return,
                V::Str(p) if p == "PONG" => tokio::task::yield_now().await,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(shard::testing::TIMEOUT, wait)
        .await
        .expect("the script makes the server busy");
}
