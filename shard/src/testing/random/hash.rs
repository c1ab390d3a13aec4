//! Random hash commands for the differential tests.

use super::super::{Compare, Step};

/// The hash commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &[
    "hset",
    "hsetnx",
    "hget",
    "hmget",
    "hmset",
    "hdel",
    "hexists",
    "hlen",
    "hkeys",
    "hvals",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hstrlen",
    "hscan",
    "hrandfield",
];

/// The key names the generator uses (before the tag); `s` is now and then a string.
pub const KEYS: &[&str] = &["a", "b", "c", "d", "s"];

/// The next random hash command, on the keys `KEYS` with `tag` before each.
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    step_with(rng, tag, true)
}

/// As [`step`]; without `OBJECT ENCODING` when `encodings` is false (through the warm tier,
/// where a hash read back re-derives its encoding from its contents, as Redis loading an RDB
/// file does, so a hashtable that shrank comes back a listpack).
pub fn step_with(rng: &mut fastrand::Rng, tag: &str, encodings: bool) -> Step {
    Gen {
        rng,
        tag,
        encodings,
    }
    .command()
}

/// Random arguments, biased towards what finds corner cases: a few keys (one that is
/// sometimes a string), few distinct fields, values that are integers, floats or text, now
/// and then a field or value past `hash-max-listpack-value` or a run of fields past
/// `hash-max-listpack-entries` (so hashes convert), and odd counts.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
    encodings: bool,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        let name = ["a", "b", "c", "d", "a", "b", "c", "d", "a", "s"][self.rng.usize(..10)];
        format!("{}{name}", self.tag)
    }

    fn field(&mut self) -> String {
        match self.rng.u8(..30) {
            0 => String::new(),
            1 => "f".repeat(self.rng.usize(60..70)),
            2..=5 => format!("n{}", self.rng.u32(..200)),
            _ => ["x", "y", "z", "w", "v", "i", "j"][self.rng.usize(..7)].to_string(),
        }
    }

    fn value(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => String::new(),
            1 => "v".repeat(self.rng.usize(60..70)),
            2 => "1.5".into(),
            3 => "12345678".into(),
            4 => "abc".into(),
            5..=11 => self.rng.i64(-5..15).to_string(),
            _ => ["p", "q", "r"][self.rng.usize(..3)].to_string(),
        }
    }

    fn count(&mut self) -> String {
        match self.rng.u8(..30) {
            0 => "abc".into(),
            1 => i64::MIN.to_string(),
            2 => "-7".into(),
            3..=8 => self.rng.i64(-20..30).to_string(),
            _ => self.rng.i64(-3..6).to_string(),
        }
    }

    fn fields(&mut self, c: &mut Vec<String>, most: usize) {
        for _ in 0..self.rng.usize(1..most) {
            c.push(self.field());
        }
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let exact = |c: Vec<String>| Step::exact(c);
        let mut step = match self.rng.u8(..34) {
            0..=5 => {
                let name = if self.rng.u8(..4) == 0 {
                    "HMSET"
                } else {
                    "HSET"
                };
                let mut c = vec![name.into(), k];
                for _ in 0..self.rng.usize(1..5) {
                    c.push(self.field());
                    c.push(self.value());
                }
                exact(c)
            }
            6 => {
                // A run of fields that may cross hash-max-listpack-entries (128).
                let from = self.rng.u32(0..200);
                let mut c = vec!["HSET".into(), k];
                for i in from..from + self.rng.u32(1..100) {
                    c.push(format!("n{i}"));
                    c.push(i.to_string());
                }
                exact(c)
            }
            7 => exact(vec!["HSETNX".into(), k, self.field(), self.value()]),
            8..=9 => exact(vec!["HGET".into(), k, self.field()]),
            10 => {
                let mut c = vec!["HMGET".into(), k];
                self.fields(&mut c, 4);
                exact(c)
            }
            11..=13 => {
                let mut c = vec!["HDEL".into(), k];
                self.fields(&mut c, 4);
                exact(c)
            }
            14 => exact(vec!["HEXISTS".into(), k, self.field()]),
            15 => exact(vec!["HLEN".into(), k]),
            16 => Step::unordered(vec!["HKEYS".into(), k]),
            17 => Step::unordered(vec!["HVALS".into(), k]),
            18..=19 => Step::unordered(vec!["HGETALL".into(), k]),
            20 => {
                // Overflow on a field of its own: HINCRBYFLOAT of a value past 2^53 differs
                // in its last digits (Redis adds in long double).
                let (f, by) = match self.rng.u8(..6) {
                    0 => (self.field(), "abc".into()),
                    1 => ("max".into(), i64::MAX.to_string()),
                    _ => (self.field(), self.rng.i64(-10..10).to_string()),
                };
                exact(vec!["HINCRBY".into(), k, f, by])
            }
            21 => {
                let by = ["1.5", "-0.25", "abc", "3", "1e5", "0", "inf", "-inf", "nan"]
                    [self.rng.usize(..9)];
                exact(vec!["HINCRBYFLOAT".into(), k, self.field(), by.into()])
            }
            22 => exact(vec!["HSTRLEN".into(), k, self.field()]),
            23 => {
                // Compared when the whole hash comes back in one reply (a large COUNT).
                let mut c = vec!["HSCAN".into(), k, "0".into()];
                if self.rng.bool() {
                    c.push("MATCH".into());
                    c.push(["*", "n1*", "x", "[xy]"][self.rng.usize(..4)].into());
                }
                c.push("COUNT".into());
                c.push(["100000", "0", "abc"][self.rng.usize(..3)].into());
                Step::unordered(c)
            }
            24..=25 => {
                let mut c = vec!["HRANDFIELD".into(), k];
                match self.rng.u8(..4) {
                    0 => {}
                    1 => {
                        c.push(self.count());
                        c.push("WITHVALUES".into());
                    }
                    _ => c.push(self.count()),
                }
                if c.get(2).is_some_and(|n| *n == i64::MIN.to_string()) {
                    c[2] = "-5".into();
                }
                Step {
                    args: c,
                    compare: Compare::Shape,
                }
            }
            26 if self.encodings => exact(vec!["OBJECT".into(), "ENCODING".into(), k]),
            26 => exact(vec!["HLEN".into(), k]),
            27 if self.rng.bool() => exact(vec!["DEL".into(), k]),
            27 => exact(vec!["RENAME".into(), k, self.key()]),
            28 => exact(vec!["EXPIRE".into(), k, "100000".into()]),
            29 => exact(vec!["TYPE".into(), k]),
            30 if self.rng.bool() => {
                exact(vec!["SET".into(), format!("{}s", self.tag), "v".into()])
            }
            30 => exact(vec!["GET".into(), k]),
            31 => exact(vec!["EXISTS".into(), k]),
            32 => exact(vec!["HLEN".into(), format!("{}s", self.tag)]),
            _ => Step::unordered(vec!["HGETALL".into(), k]),
        };
        // Now and then a wrong arity (never for HSCAN: a shortened one pages with COUNT 10,
        // in each server's own order).
        if self.rng.u8(..100) == 0 && step.args[0] != "HSCAN" {
            let n = self.rng.usize(1..step.args.len().max(2));
            step.args.truncate(n);
        }
        step
    }
}
