//! Random set commands for the differential tests.

use super::super::{Compare, Step};

/// The set commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &[
    "sadd",
    "srem",
    "smembers",
    "sismember",
    "smismember",
    "scard",
    "spop",
    "srandmember",
    "smove",
    "sinter",
    "sintercard",
    "sinterstore",
    "sunion",
    "sunionstore",
    "sdiff",
    "sdiffstore",
    "sscan",
];

/// The key names the generator uses (before the tag); `s` is now and then a string.
pub const KEYS: &[&str] = &["a", "b", "c", "d", "s"];

/// The next random set command, on the keys `KEYS` with `tag` before each (a hash tag such as
/// `{t}` keeps them in one slot, so the multi-key commands work through a proxy too).
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

/// Random arguments, biased towards what finds corner cases: a few keys (one that is
/// sometimes a string), few distinct members, half of them integers (so sets start as
/// intsets and convert), now and then a long run of integers past the intset limit, and
/// counts that are small, negative, out of range or not integers at all.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        let name = ["a", "b", "c", "d", "a", "b", "c", "d", "a", "s"][self.rng.usize(..10)];
        format!("{}{name}", self.tag)
    }

    fn member(&mut self) -> String {
        match self.rng.u8(..24) {
            0 => String::new(),
            1 => "x".repeat(self.rng.usize(1..100)),
            2 => "-0".into(),
            3 => "007".into(),
            4 => i64::MIN.to_string(),
            5..=13 => self.rng.i64(-5..15).to_string(),
            _ => ["x", "y", "z", "w", "v"][self.rng.usize(..5)].to_string(),
        }
    }

    fn count(&mut self) -> String {
        match self.rng.u8(..40) {
            0 => "abc".into(),
            1 => i64::MIN.to_string(),
            2 => i64::MAX.to_string(),
            3 => "+1".into(),
            4 => String::new(),
            5 => "1.5".into(),
            6..=10 => self.rng.i64(-20..30).to_string(),
            _ => self.rng.i64(-3..6).to_string(),
        }
    }

    fn keys(&mut self, c: &mut Vec<String>) {
        for _ in 0..self.rng.usize(1..4) {
            c.push(self.key());
        }
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let exact = |c: Vec<String>| Step::exact(c);
        let mut step = match self.rng.u8(..33) {
            0..=4 => {
                let mut c = vec!["SADD".into(), k];
                for _ in 0..self.rng.usize(1..6) {
                    c.push(self.member());
                }
                exact(c)
            }
            5 => {
                // A run of integers that may cross the intset limit (512).
                let from = self.rng.i64(0..600);
                let mut c = vec!["SADD".into(), k];
                c.extend((from..from + self.rng.i64(1..300)).map(|i| i.to_string()));
                exact(c)
            }
            6..=7 => {
                let mut c = vec!["SREM".into(), k];
                for _ in 0..self.rng.usize(1..4) {
                    c.push(self.member());
                }
                exact(c)
            }
            8..=9 => Step::unordered(vec!["SMEMBERS".into(), k]),
            10 => exact(vec!["SISMEMBER".into(), k, self.member()]),
            11 => {
                let mut c = vec!["SMISMEMBER".into(), k];
                for _ in 0..self.rng.usize(1..4) {
                    c.push(self.member());
                }
                exact(c)
            }
            12 => exact(vec!["SCARD".into(), k]),
            13 => {
                // SPOP keeps both sides identical only when it takes everything (or fails).
                let mut c = vec!["SPOP".into(), k];
                match self.rng.u8(..5) {
                    0 => c.push("100000".into()),
                    1 => c.push("-1".into()),
                    2 => c.push("abc".into()),
                    3 => {
                        c.push("1".into());
                        c.push("2".into());
                    }
                    _ => c.push("0".into()),
                }
                Step::unordered(c)
            }
            14..=15 => {
                let mut c = vec!["SRANDMEMBER".into(), k];
                match self.rng.u8(..8) {
                    0 => {}
                    1 => {
                        c.push(self.count());
                        c.push(self.count());
                    }
                    _ => {
                        let mut n = self.count();
                        // A huge negative count asks for that many picks: keep it small.
                        if n.starts_with('-') && n.len() > 4 && n != i64::MIN.to_string() {
                            n = "-7".into();
                        }
                        c.push(n);
                    }
                }
                Step {
                    args: c,
                    compare: Compare::Shape,
                }
            }
            16..=17 => exact(vec!["SMOVE".into(), k, self.key(), self.member()]),
            18..=19 => {
                let name = ["SINTER", "SUNION", "SDIFF"][self.rng.usize(..3)];
                let mut c = vec![name.into(), k];
                self.keys(&mut c);
                Step::unordered(c)
            }
            20..=21 => {
                let name = ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"][self.rng.usize(..3)];
                let mut c = vec![name.into(), k, self.key()];
                self.keys(&mut c);
                exact(c)
            }
            30 => {
                let mut c = vec!["SINTERCARD".into()];
                let mut keys = vec![k];
                self.keys(&mut keys);
                c.push(match self.rng.u8(..12) {
                    0 => "0".into(),
                    1 => "abc".into(),
                    // One key too many makes an option a key: through a proxy (or a Redis
                    // cluster) that is a CROSSSLOT error, so only without a tag.
                    2 if self.tag.is_empty() => (keys.len() + 1).to_string(),
                    _ => keys.len().to_string(),
                });
                c.extend(keys);
                match self.rng.u8(..6) {
                    0 => {
                        c.push("LIMIT".into());
                        c.push(self.count());
                    }
                    1 => c.push("LIMIT".into()),
                    2 => {
                        c.push("bogus".into());
                        c.push("1".into());
                    }
                    _ => {}
                }
                exact(c)
            }
            22 => {
                // Compared when the whole set comes back in one reply (a large COUNT).
                let mut c = vec!["SSCAN".into(), k, "0".into()];
                if self.rng.bool() {
                    c.push("MATCH".into());
                    c.push(["*", "x*", "1*", "[xy]"][self.rng.usize(..4)].into());
                }
                c.push("COUNT".into());
                c.push(["100000", "0", "abc"][self.rng.usize(..3)].into());
                if self.rng.u8(..8) == 0 {
                    c.push("bogus".into());
                }
                Step::unordered(c)
            }
            23 if self.rng.bool() => exact(vec!["DEL".into(), k]),
            23 => exact(vec!["RENAME".into(), k, self.key()]),
            24 => exact(vec!["EXPIRE".into(), k, "100000".into()]),
            25 => exact(vec!["PERSIST".into(), k]),
            26 => exact(vec!["TYPE".into(), k]),
            27 if self.rng.bool() => {
                exact(vec!["SET".into(), format!("{}s", self.tag), "v".into()])
            }
            27 => exact(vec!["GET".into(), k]),
            28 => exact(vec!["EXISTS".into(), k]),
            29 => exact(vec!["SCARD".into(), format!("{}s", self.tag)]),
            _ => Step::unordered(vec!["SMEMBERS".into(), k]),
        };
        // Now and then a wrong arity (never for SPOP: a shortened one pops a random member).
        if self.rng.u8(..100) == 0 && step.args[0] != "SPOP" {
            let n = self.rng.usize(1..step.args.len().max(2));
            step.args.truncate(n);
        }
        step
    }
}
