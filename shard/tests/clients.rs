//! The shard through the real `redis` crate client: typed round trips, pipelines, concurrent
//! connections, and a seeded model-based test of the string and hash commands.

use std::collections::{BTreeMap, HashMap};

use redis::aio::MultiplexedConnection;
use shard::testing::TestShard;

#[tokio::test]
async fn typed_round_trips() {
    let srv = TestShard::default().await;
    let mut con = srv.redis().await;

    let () = redis::cmd("SET")
        .arg("s")
        .arg("hello")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    let s: String = redis::cmd("GET")
        .arg("s")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(s, "hello");
    let missing: Option<String> = redis::cmd("GET")
        .arg("missing")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(missing, None);

    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let () = redis::cmd("SET")
        .arg("bin")
        .arg(&binary[..])
        .query_async(&mut con)
        .await
        .expect("redis reply");
    let back: Vec<u8> = redis::cmd("GET")
        .arg("bin")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(back, binary);

    let () = redis::cmd("SET")
        .arg("n")
        .arg(41)
        .query_async(&mut con)
        .await
        .expect("redis reply");
    let n: i64 = redis::cmd("INCR")
        .arg("n")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(n, 42);
    let n: u32 = redis::cmd("GET")
        .arg("n")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(n, 42);
    let n: i64 = redis::cmd("DECRBY")
        .arg("n")
        .arg(100)
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(n, -58);
    let f: f64 = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg(2.5)
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(f, 2.5);

    let added: i64 = redis::cmd("HSET")
        .arg("h")
        .arg(&[("a", "1"), ("b", "2"), ("c", "3")])
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(added, 3);
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    let want: HashMap<String, String> = [("a", "1"), ("b", "2"), ("c", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(all, want);
    let nums: BTreeMap<String, i64> = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(nums.values().sum::<i64>(), 6);
    let none: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("nohash")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert!(none.is_empty());
    let fields: Vec<Option<String>> = redis::cmd("HMGET")
        .arg("h")
        .arg("a")
        .arg("zz")
        .arg("c")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(fields, vec![Some("1".into()), None, Some("3".into())]);
    let len: usize = redis::cmd("HLEN")
        .arg("h")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(len, 3);

    let () = redis::cmd("MSET")
        .arg("m1")
        .arg("x")
        .arg("m2")
        .arg("y")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["m1", "nope", "m2", "h"])
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(
        got,
        vec![Some("x".into()), None, Some("y".into()), None],
        "MGET gives nil for missing keys and for non-strings"
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg("m1")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert!(exists);

    let err = redis::cmd("INCR")
        .arg("h")
        .query_async::<i64>(&mut con)
        .await
        .expect_err("INCR on a hash");
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
    let err = redis::cmd("INCR")
        .arg("s")
        .query_async::<i64>(&mut con)
        .await
        .expect_err("INCR on text");
    assert_eq!(
        err.detail(),
        Some("value is not an integer or out of range"),
        "{err:?}"
    );
    // The connection is still usable after errors.
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(pong, "PONG");
    srv.stop().await;
}

#[tokio::test]
async fn resp3_client_round_trips() {
    let srv = TestShard::default().await;
    let mut con = srv.redis_resp3().await;
    let added: i64 = redis::cmd("HSET")
        .arg("h")
        .arg(&[("a", "1"), ("b", "2")])
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(added, 2);
    let raw: redis::Value = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert!(
        matches!(&raw, redis::Value::Map(m) if m.len() == 2),
        "HGETALL is a map in RESP3: {raw:?}"
    );
    let all: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(all.get("b"), Some(&2));
    let nil: redis::Value = redis::cmd("GET")
        .arg("missing")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(nil, redis::Value::Nil);
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert!(info.contains("redis_version:"), "{info:?}");
    let hello: HashMap<String, redis::Value> = redis::cmd("HELLO")
        .arg(3)
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(hello.get("proto"), Some(&redis::Value::Int(3)));
    srv.stop().await;
}

#[tokio::test]
async fn pipeline_of_1000_commands_returns_in_order() {
    let srv = TestShard::default().await;
    let mut con = srv.redis().await;
    let mut pipe = redis::pipe();
    let mut want = Vec::new();
    for i in 0..1000 {
        match i % 3 {
            0 => {
                pipe.cmd("SET").arg(format!("k{i}")).arg(format!("v{i}"));
                want.push(redis::Value::Okay);
            }
            1 => {
                pipe.cmd("GET").arg(format!("k{}", i - 1));
                want.push(redis::Value::BulkString(format!("v{}", i - 1).into_bytes()));
            }
            _ => {
                pipe.cmd("INCR").arg("ctr");
                want.push(redis::Value::Int(i64::from(i / 3 + 1)));
            }
        }
    }
    let got: Vec<redis::Value> = pipe.query_async(&mut con).await.expect("redis reply");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "reply {i}");
    }
    let ctr: i64 = redis::cmd("GET")
        .arg("ctr")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(ctr, 333);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incr_is_atomic() {
    const CONNECTIONS: usize = 20;
    const PER_CONNECTION: usize = 200;
    let srv = TestShard::default().await;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut con = srv.redis().await;
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(PER_CONNECTION);
            for _ in 0..PER_CONNECTION {
                let v: i64 = redis::cmd("INCR")
                    .arg("shared")
                    .query_async(&mut con)
                    .await
                    .expect("redis reply");
                seen.push(v);
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seen = t.await.expect("task");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "one connection's INCRs are ordered"
        );
        all.extend(seen);
    }
    all.sort_unstable();
    let want: Vec<i64> = (1..=(CONNECTIONS * PER_CONNECTION) as i64).collect();
    assert!(all == want, "every INCR saw a distinct value 1..=4000");
    let mut con = srv.redis().await;
    let total: i64 = redis::cmd("GET")
        .arg("shared")
        .query_async(&mut con)
        .await
        .expect("redis reply");
    assert_eq!(total, (CONNECTIONS * PER_CONNECTION) as i64);
    srv.stop().await;
}

// ---- model-based test ----

/// A reply reduced to what the model predicts.
#[derive(Debug, Clone, PartialEq)]
enum R {
    Ok,
    Nil,
    Int(i64),
    Bulk(String),
    Arr(Vec<R>),
    /// `CODE detail`, e.g. `WRONGTYPE Operation against a key holding the wrong kind of value`.
    Err(String),
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const NO_SUCH_KEY: &str = "ERR no such key";

fn wrongtype() -> R {
    R::Err(WRONGTYPE.into())
}

fn to_r(v: redis::Value) -> R {
    match v {
        redis::Value::Okay => R::Ok,
        redis::Value::SimpleString(s) if s == "OK" => R::Ok,
        redis::Value::SimpleString(s) => R::Bulk(s),
        redis::Value::Nil => R::Nil,
        redis::Value::Int(i) => R::Int(i),
        redis::Value::BulkString(b) => R::Bulk(String::from_utf8(b).expect("utf8 value")),
        redis::Value::Array(a) => R::Arr(a.into_iter().map(to_r).collect()),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn result_to_r(r: redis::RedisResult<redis::Value>) -> R {
    match r {
        Ok(v) => to_r(v),
        Err(e) => R::Err(format!(
            "{} {}",
            e.code().unwrap_or("?"),
            e.detail().unwrap_or("")
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum M {
    Str(String),
    Hash(BTreeMap<String, String>),
}

/// Redis's `string2ll`: an optional `-`, digits without leading zeros, within i64.
fn redis_int(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    let mut bytes = digits.bytes();
    if !matches!(bytes.next(), Some(b'1'..=b'9')) || !bytes.all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The expected state and replies.
#[derive(Default)]
struct Model {
    keys: HashMap<String, M>,
}

impl Model {
    /// Applies one command to the model and returns the reply Redis would give.
    fn apply(&mut self, args: &[String]) -> R {
        let a = |i: usize| args[i].clone();
        match args[0].as_str() {
            "SET" => {
                self.keys.insert(a(1), M::Str(a(2)));
                R::Ok
            }
            "GET" => match self.keys.get(&args[1]) {
                None => R::Nil,
                Some(M::Str(s)) => R::Bulk(s.clone()),
                Some(M::Hash(_)) => wrongtype(),
            },
            "DEL" => R::Int(
                args[1..]
                    .iter()
                    .filter(|k| self.keys.remove(*k).is_some())
                    .count() as i64,
            ),
            "APPEND" => match self.keys.get_mut(&args[1]) {
                None => {
                    self.keys.insert(a(1), M::Str(a(2)));
                    R::Int(args[2].len() as i64)
                }
                Some(M::Str(s)) => {
                    s.push_str(&args[2]);
                    R::Int(s.len() as i64)
                }
                Some(M::Hash(_)) => wrongtype(),
            },
            "INCR" => {
                let cur = match self.keys.get(&args[1]) {
                    None => 0,
                    Some(M::Str(s)) => match redis_int(s) {
                        Some(n) => n,
                        None => return R::Err(NOT_INT.into()),
                    },
                    Some(M::Hash(_)) => return wrongtype(),
                };
                match cur.checked_add(1) {
                    Some(n) => {
                        self.keys.insert(a(1), M::Str(n.to_string()));
                        R::Int(n)
                    }
                    None => R::Err(OVERFLOW.into()),
                }
            }
            "EXISTS" => R::Int(
                args[1..]
                    .iter()
                    .filter(|k| self.keys.contains_key(*k))
                    .count() as i64,
            ),
            "MSET" => {
                for kv in args[1..].chunks(2) {
                    self.keys.insert(kv[0].clone(), M::Str(kv[1].clone()));
                }
                R::Ok
            }
            "MGET" => R::Arr(
                args[1..]
                    .iter()
                    .map(|k| match self.keys.get(k) {
                        Some(M::Str(s)) => R::Bulk(s.clone()),
                        _ => R::Nil,
                    })
                    .collect(),
            ),
            "GETDEL" => match self.keys.get(&args[1]) {
                None => R::Nil,
                Some(M::Hash(_)) => wrongtype(),
                Some(M::Str(_)) => match self.keys.remove(&args[1]) {
                    Some(M::Str(s)) => R::Bulk(s),
                    _ => unreachable!(),
                },
            },
            "RENAME" => match self.keys.remove(&args[1]) {
                None => R::Err(NO_SUCH_KEY.into()),
                Some(v) => {
                    self.keys.insert(a(2), v);
                    R::Ok
                }
            },
            "HSET" => {
                let h = match self
                    .keys
                    .entry(a(1))
                    .or_insert_with(|| M::Hash(BTreeMap::new()))
                {
                    M::Hash(h) => h,
                    M::Str(_) => return wrongtype(),
                };
                R::Int(
                    args[2..]
                        .chunks(2)
                        .filter(|fv| h.insert(fv[0].clone(), fv[1].clone()).is_none())
                        .count() as i64,
                )
            }
            "HGET" => match self.keys.get(&args[1]) {
                None => R::Nil,
                Some(M::Hash(h)) => h.get(&args[2]).map_or(R::Nil, |v| R::Bulk(v.clone())),
                Some(M::Str(_)) => wrongtype(),
            },
            "HDEL" => match self.keys.get_mut(&args[1]) {
                None => R::Int(0),
                Some(M::Str(_)) => wrongtype(),
                Some(M::Hash(h)) => {
                    let n = args[2..].iter().filter(|f| h.remove(*f).is_some()).count();
                    if h.is_empty() {
                        self.keys.remove(&args[1]);
                    }
                    R::Int(n as i64)
                }
            },
            "HLEN" => match self.keys.get(&args[1]) {
                None => R::Int(0),
                Some(M::Hash(h)) => R::Int(h.len() as i64),
                Some(M::Str(_)) => wrongtype(),
            },
            "STRLEN" => match self.keys.get(&args[1]) {
                None => R::Int(0),
                Some(M::Str(s)) => R::Int(s.len() as i64),
                Some(M::Hash(_)) => wrongtype(),
            },
            other => unreachable!("model has no {other}"),
        }
    }
}

struct Gen {
    rng: fastrand::Rng,
    strs: Vec<String>,
    nums: Vec<String>,
    hashes: Vec<String>,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
            strs: (0..25).map(|i| format!("str:{i}")).collect(),
            nums: (0..10).map(|i| format!("num:{i}")).collect(),
            hashes: (0..15).map(|i| format!("hash:{i}")).collect(),
        }
    }

    fn all_keys(&self) -> Vec<String> {
        [&self.strs[..], &self.nums[..], &self.hashes[..]].concat()
    }

    /// A key of the given class, or (one time in ten) any key, to exercise WRONGTYPE.
    fn key(&mut self, class: usize) -> String {
        let pool = match (self.rng.u8(..10), class) {
            (0, _) => self.rng.usize(..3),
            (_, c) => c,
        };
        let pool = match pool {
            0 => &self.strs,
            1 => &self.nums,
            _ => &self.hashes,
        };
        pool[self.rng.usize(..pool.len())].clone()
    }

    /// A text or numeric key (mostly).
    fn string_key(&mut self) -> String {
        let c = self.rng.usize(..2);
        self.key(c)
    }

    fn any_key(&mut self) -> String {
        let c = self.rng.usize(..3);
        self.key(c)
    }

    fn text(&mut self) -> String {
        let len = self.rng.usize(..8);
        (0..len)
            .map(|_| b"abcxyz0123 -"[self.rng.usize(..12)] as char)
            .collect()
    }

    fn number(&mut self) -> String {
        const SPECIAL: [&str; 12] = [
            "0",
            "-1",
            "9223372036854775806",
            "9223372036854775807",
            "-9223372036854775808",
            "007",
            "-0",
            "+5",
            " 7",
            "1.5",
            "",
            "abc",
        ];
        if self.rng.u8(..4) == 0 {
            SPECIAL[self.rng.usize(..SPECIAL.len())].to_string()
        } else {
            self.rng.i64(-1000..1000).to_string()
        }
    }

    fn value_for(&mut self, key: &str) -> String {
        if key.starts_with("num:") {
            self.number()
        } else {
            self.text()
        }
    }

    fn field(&mut self) -> String {
        format!("f{}", self.rng.u8(..6))
    }

    /// The next random command.
    fn command(&mut self) -> Vec<String> {
        let s = |x: &str| x.to_string();
        match self.rng.u8(..16) {
            0 | 1 => {
                let k = self.string_key();
                let v = self.value_for(&k);
                vec![s("SET"), k, v]
            }
            2 => vec![s("GET"), self.key(0)],
            3 => {
                let n = self.rng.usize(1..4);
                let mut v = vec![s("DEL")];
                v.extend((0..n).map(|_| self.any_key()));
                v
            }
            4 => {
                let k = self.key(0);
                let v = if self.rng.bool() {
                    self.rng.u8(..10).to_string()
                } else {
                    self.text()
                };
                vec![s("APPEND"), k, v]
            }
            5 | 6 => vec![s("INCR"), self.key(1)],
            7 => {
                let n = self.rng.usize(1..4);
                let mut v = vec![s("EXISTS")];
                v.extend((0..n).map(|_| self.any_key()));
                v
            }
            8 => {
                let n = self.rng.usize(1..4);
                let mut v = vec![s("MSET")];
                for _ in 0..n {
                    let k = self.string_key();
                    let val = self.value_for(&k);
                    v.extend([k, val]);
                }
                v
            }
            9 => {
                let n = self.rng.usize(1..5);
                let mut v = vec![s("MGET")];
                v.extend((0..n).map(|_| self.any_key()));
                v
            }
            10 => vec![s("GETDEL"), self.string_key()],
            11 => {
                let c = self.rng.usize(..3);
                let src = self.key(c);
                let dst = if self.rng.u8(..8) == 0 {
                    src.clone()
                } else {
                    self.key(c)
                };
                vec![s("RENAME"), src, dst]
            }
            12 => {
                let n = self.rng.usize(1..3);
                let mut v = vec![s("HSET"), self.key(2)];
                for _ in 0..n {
                    let (f, val) = (self.field(), self.text());
                    v.extend([f, val]);
                }
                v
            }
            13 => vec![s("HGET"), self.key(2), self.field()],
            14 => {
                let n = self.rng.usize(1..3);
                let mut v = vec![s("HDEL"), self.key(2)];
                v.extend((0..n).map(|_| self.field()));
                v
            }
            _ => {
                if self.rng.bool() {
                    vec![s("HLEN"), self.key(2)]
                } else {
                    vec![s("STRLEN"), self.any_key()]
                }
            }
        }
    }
}

async fn run(con: &mut MultiplexedConnection, args: &[String]) -> R {
    let mut cmd = redis::cmd(&args[0]);
    for a in &args[1..] {
        cmd.arg(a);
    }
    result_to_r(cmd.query_async::<redis::Value>(con).await)
}

/// Compares the server's whole keyspace with the model.
async fn assert_same_state(con: &mut MultiplexedConnection, model: &Model, keys: &[String]) {
    for k in keys {
        let ty = run(con, &["TYPE".into(), k.clone()]).await;
        match model.keys.get(k) {
            None => assert_eq!(ty, R::Bulk("none".into()), "TYPE {k}"),
            Some(M::Str(s)) => {
                assert_eq!(ty, R::Bulk("string".into()), "TYPE {k}");
                let v = run(con, &["GET".into(), k.clone()]).await;
                assert_eq!(v, R::Bulk(s.clone()), "GET {k}");
            }
            Some(M::Hash(h)) => {
                assert_eq!(ty, R::Bulk("hash".into()), "TYPE {k}");
                let all: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(k)
                    .query_async(con)
                    .await
                    .expect("redis reply");
                assert_eq!(&all, h, "HGETALL {k}");
            }
        }
    }
    let n = run(con, &["DBSIZE".into()]).await;
    assert_eq!(n, R::Int(model.keys.len() as i64), "DBSIZE");
}

#[tokio::test]
async fn random_operations_match_a_model() {
    model_run(TestShard::default().await).await;
}

/// The same model run with a warm tier and a RAM budget so small that every key goes through
/// redb between operations.
#[tokio::test]
async fn random_operations_match_a_model_through_the_warm_tier() {
    model_run(TestShard::tiny_warm().await).await;
}

/// Again with frequency admission and a budget of a few keys: reads promote some warm keys and
/// leave others on disk, by the sketch's counts.
#[tokio::test]
async fn random_operations_match_a_model_with_frequency_admission() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = shard::Config {
        warm_promotion: shard::config::WarmPromotion::Frequency,
        ..shard::testing::warm_config(dir.path(), 2_000)
    };
    model_run(TestShard::start(cfg).await).await;
}

async fn model_run(srv: TestShard) {
    // AUTOCACHE_MODEL_SEED=<n> explores other sequences; the default keeps CI reproducible.
    let seed: u64 = std::env::var("AUTOCACHE_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAC4E);
    const OPS: usize = 3000;
    let mut con = srv.redis().await;
    let mut g = Gen::new(seed);
    let mut model = Model::default();
    let mut history: Vec<String> = Vec::new();
    let mut errors = 0;
    for i in 0..OPS {
        let args = g.command();
        let want = model.apply(&args);
        let got = run(&mut con, &args).await;
        history.push(format!("{args:?} -> {got:?}"));
        if got != want {
            let from = history.len().saturating_sub(10);
            panic!(
                "op {i} (seed {seed}) {args:?}: server {got:?}, model {want:?}\nlast ops:\n{}",
                history[from..].join("\n")
            );
        }
        errors += usize::from(matches!(got, R::Err(_)));
        if i % 500 == 499 {
            assert_same_state(&mut con, &model, &g.all_keys()).await;
        }
    }
    // The run exercised the error paths, and not only them.
    assert!(
        (OPS / 50..OPS / 3).contains(&errors),
        "{errors} errors in {OPS} ops"
    );
    assert_same_state(&mut con, &model, &g.all_keys()).await;
    srv.stop().await;
}
