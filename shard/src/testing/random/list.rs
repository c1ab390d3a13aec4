//! Random list commands for the differential tests.

use super::super::Step;

/// The list commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &[
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "lpop",
    "rpop",
    "llen",
    "lrange",
    "lindex",
    "lset",
    "lrem",
    "ltrim",
    "linsert",
    "lpos",
    "lmove",
    "rpoplpush",
];

/// The next random list command, on the keys `KEYS` with `tag` before each (a hash tag such as
/// `{t}` keeps them in one slot, so the multi-key commands work through a proxy too).
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Step::exact(Gen { rng, tag }.command())
}

/// The key names the generator uses (before the tag); `s` is now and then a string.
pub const KEYS: &[&str] = &["a", "b", "c", "s"];

/// Random arguments, biased towards what finds corner cases: a few keys (one that is
/// sometimes a string), few distinct elements (so LREM/LPOS/LINSERT match), and integers
/// that are small, negative, out of range, extreme or not integers at all.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        // "s" is set as a string now and then; RENAME carries strings to the others too.
        let name = ["a", "b", "c", "a", "b", "c", "a", "b", "c", "s"][self.rng.usize(..10)];
        format!("{}{name}", self.tag)
    }

    fn element(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => String::new(),
            1 => "x".repeat(self.rng.usize(1..200)),
            2 => "-1".into(),
            _ => ["x", "y", "z", "w"][self.rng.usize(..4)].to_string(),
        }
    }

    fn int(&mut self) -> String {
        match self.rng.u8(..60) {
            0 => "abc".into(),
            1 => i64::MIN.to_string(),
            2 => i64::MAX.to_string(),
            3 => "-9223372036854775807".into(),
            4 => "99999999999999999999".into(),
            5 => "+1".into(),
            6 => String::new(),
            7 => "1.5".into(),
            8..=12 => self.rng.i64(-100..100).to_string(),
            _ => self.rng.i64(-6..7).to_string(),
        }
    }

    fn end(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => "up".into(),
            1 => "Left".into(),
            _ => ["LEFT", "RIGHT", "left", "right"][self.rng.usize(..4)].to_string(),
        }
    }

    /// LMPOP with a key count that is right, too large, zero or not a number.
    fn mpop(&mut self) -> Vec<String> {
        let n = self.rng.usize(1..4);
        let mut c = vec!["LMPOP".into()];
        c.push(match self.rng.u8(..12) {
            0 => "0".into(),
            // Beyond the arguments: no key spec applies (a count that reaches into the
            // options would name them as keys, and a cluster answers -CROSSSLOT for them).
            1 => (n + 10).to_string(),
            2 => "x".into(),
            _ => n.to_string(),
        });
        for _ in 0..n {
            c.push(self.key());
        }
        c.push(self.end());
        if self.rng.bool() {
            c.push(["COUNT", "count", "LIMIT"][self.rng.usize(..3)].into());
            c.push(self.int());
        }
        c
    }

    /// A blocking command that returns at once (a ready key, or a bad argument) or after a
    /// 10 ms timeout (so a run stays short).
    fn blocking(&mut self) -> Vec<String> {
        let t = match self.rng.u8(..10) {
            0 => "-1".into(),
            1 => "x".into(),
            _ => "0.01".into(),
        };
        match self.rng.u8(..4) {
            0 => vec![
                ["BLPOP", "BRPOP"][self.rng.usize(..2)].into(),
                self.key(),
                self.key(),
                t,
            ],
            1 => vec!["BRPOPLPUSH".into(), self.key(), self.key(), t],
            2 => vec![
                "BLMOVE".into(),
                self.key(),
                self.key(),
                self.end(),
                self.end(),
                t,
            ],
            _ => {
                let mut c = self.mpop();
                c[0] = "BLMPOP".into();
                c.insert(1, t);
                c
            }
        }
    }

    pub(super) fn command(&mut self) -> Vec<String> {
        let k = self.key();
        let mut c: Vec<String> = match self.rng.u8(..30) {
            0..=3 => {
                let mut c = vec![["LPUSH", "RPUSH"][self.rng.usize(..2)].into(), k];
                for _ in 0..self.rng.usize(1..5) {
                    c.push(self.element());
                }
                c
            }
            4 => {
                let mut c = vec![["LPUSHX", "RPUSHX"][self.rng.usize(..2)].into(), k];
                for _ in 0..self.rng.usize(1..3) {
                    c.push(self.element());
                }
                c
            }
            5..=6 => {
                let mut c = vec![["LPOP", "RPOP"][self.rng.usize(..2)].into(), k];
                match self.rng.u8(..6) {
                    0..=2 => {}
                    3 => {
                        c.push(self.int());
                        c.push(self.int());
                    }
                    _ => c.push(self.int()),
                }
                c
            }
            7 => vec!["LLEN".into(), k],
            8..=9 => vec!["LRANGE".into(), k, self.int(), self.int()],
            10 => vec!["LRANGE".into(), k, "0".into(), "-1".into()],
            11 => vec!["LINDEX".into(), k, self.int()],
            12 => vec!["LSET".into(), k, self.int(), self.element()],
            13 => vec!["LREM".into(), k, self.int(), self.element()],
            14 => vec!["LTRIM".into(), k, self.int(), self.int()],
            15 => {
                let at = ["BEFORE", "after", "middle"][self.rng.usize(..3)].into();
                vec!["LINSERT".into(), k, at, self.element(), self.element()]
            }
            16..=17 => {
                let mut c = vec!["LPOS".into(), k, self.element()];
                for _ in 0..self.rng.usize(..3) {
                    let opt = ["RANK", "COUNT", "MAXLEN", "rank", "bogus"][self.rng.usize(..5)];
                    c.push(opt.into());
                    if self.rng.u8(..10) > 0 {
                        let mut n = self.int();
                        // Redis 7.0 takes RANK i64::MIN and negates it (undefined behaviour
                        // in C); 7.2 and this shard refuse it as out of range.
                        if n == i64::MIN.to_string() && opt.eq_ignore_ascii_case("rank") {
                            n = "-3".into();
                        }
                        c.push(n);
                    }
                }
                c
            }
            18..=19 => vec!["LMOVE".into(), k, self.key(), self.end(), self.end()],
            20 => vec!["RPOPLPUSH".into(), k, self.key()],
            21 if self.rng.bool() => vec!["DEL".into(), k],
            22 if self.rng.bool() => vec!["RENAME".into(), k, self.key()],
            21..=22 => vec!["LRANGE".into(), k, self.int(), "-1".into()],
            23 => vec!["TYPE".into(), k],
            24 if self.rng.bool() => vec!["SET".into(), format!("{}s", self.tag), self.element()],
            24 => vec!["LRANGE".into(), k, "0".into(), "-1".into()],
            25 => vec!["GET".into(), k],
            26 => vec!["EXISTS".into(), k],
            27 if self.rng.bool() => self.mpop(),
            27 => self.blocking(),
            28 => {
                let mut c = vec!["COPY".into(), k, self.key()];
                match self.rng.u8(..6) {
                    0 => c.push("REPLACE".into()),
                    1 => c.extend(["DB".into(), "0".into(), "replace".into()]),
                    2 => c.push("BOGUS".into()),
                    _ => {}
                }
                c
            }
            _ => vec!["LLEN".into(), format!("{}s", self.tag)],
        };
        // Now and then a wrong arity.
        if self.rng.u8(..100) == 0 {
            c.truncate(self.rng.usize(1..c.len().max(2)));
        }
        c
    }
}
