//! Random sorted-set commands for the differential tests.

use super::super::{Compare, Step};

/// The sorted-set commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &[
    "zadd",
    "zincrby",
    "zrem",
    "zcard",
    "zscore",
    "zmscore",
    "zrank",
    "zrevrank",
    "zcount",
    "zlexcount",
    "zrange",
    "zrangestore",
    "zrevrange",
    "zrangebyscore",
    "zrevrangebyscore",
    "zrangebylex",
    "zrevrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zremrangebylex",
    "zpopmin",
    "zpopmax",
    "zrandmember",
    "zscan",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "zmpop",
    "zunion",
    "zinter",
    "zdiff",
    "zunionstore",
    "zinterstore",
    "zdiffstore",
    "zintercard",
];

/// The key names the generator uses (before the tag); `s` is now and then a string. `a`, `b`
/// and `c` stay small (listpack); `g` is large (skiplist) with any scores, and gets no lex
/// queries (over differing scores their answer depends on Redis's random skiplist levels);
/// `l` is large or small with every score 0, for the lex queries on a skiplist.
/// `d` is only a destination of the STORE commands (and read).
pub const KEYS: &[&str] = &["a", "b", "c", "s", "g", "l", "d"];

/// The next random sorted-set command, on the keys `KEYS` with `tag` before each (a hash tag
/// such as `{t}` keeps them in one slot, so the multi-key commands work through a proxy too).
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

/// Random arguments, biased towards corner cases: a few keys (one sometimes a string), few
/// distinct members (so updates and removals hit), scores that are small, equal, fractional,
/// infinite, huge, negative zero or not numbers at all, and ranges of every form.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        let name = ["a", "b", "c", "a", "b", "c", "a", "b", "c", "s"][self.rng.usize(..10)];
        format!("{}{name}", self.tag)
    }

    /// A key for score and rank commands: a small one or `g`.
    fn score_key(&mut self) -> String {
        let name = ["a", "b", "c", "g", "g", "s"][self.rng.usize(..6)];
        format!("{}{name}", self.tag)
    }

    /// A key for lex commands: a small one or `l`.
    fn lex_key(&mut self) -> String {
        let name = ["a", "b", "c", "l", "l"][self.rng.usize(..5)];
        format!("{}{name}", self.tag)
    }

    /// Any key, for reads and removals.
    fn any_key(&mut self) -> String {
        let name = ["a", "b", "c", "g", "l", "s", "d"][self.rng.usize(..7)];
        format!("{}{name}", self.tag)
    }

    /// `numkeys key ...` for the multi-key commands: now and then a bad count.
    fn numkeys(&mut self, c: &mut Vec<String>) -> usize {
        let n = self.rng.usize(1..4);
        match self.rng.u8(..25) {
            0 => c.push("0".into()),
            1 => c.push("abc".into()),
            // Too many: the count takes in what follows. Through a proxy the "keys" then span
            // slots (CROSSSLOT, as in Redis Cluster), so only without a tag.
            2 if self.tag.is_empty() => c.push((n + 3).to_string()),
            3 => c.push("-1".into()),
            _ => c.push(n.to_string()),
        }
        for _ in 0..n {
            c.push(self.any_key());
        }
        n
    }

    fn setop_opts(&mut self, c: &mut Vec<String>, n: usize, store: bool) {
        for _ in 0..self.rng.usize(..3) {
            match self.rng.u8(..10) {
                0..=2 => {
                    c.push("WEIGHTS".into());
                    for _ in 0..n {
                        c.push(
                            ["1", "2", "-1", "0", "0.5", "inf", "x"][self.rng.usize(..7)].into(),
                        );
                    }
                }
                3..=5 => {
                    c.push("AGGREGATE".into());
                    c.push(["SUM", "MIN", "MAX", "max", "avg"][self.rng.usize(..5)].into());
                }
                6..=7 if !store => c.push("WITHSCORES".into()),
                8 => c.push("LIMIT".into()),
                _ => {}
            }
        }
    }

    fn member(&mut self) -> String {
        match self.rng.u8(..30) {
            0 => String::new(),
            _ => ["a", "b", "c", "d", "e", "f", "aa", "B"][self.rng.usize(..8)].to_string(),
        }
    }

    fn score(&mut self) -> String {
        match self.rng.u8(..40) {
            0 => "inf".into(),
            1 => "-inf".into(),
            2 => "+inf".into(),
            3 => "1e308".into(),
            4 => "0.1".into(),
            5 => "-0".into(),
            6 => "nan".into(),
            7 => "abc".into(),
            8 => "1.5".into(),
            9 => "(1".into(),
            10 => "-2.25".into(),
            11 => "3e-5".into(),
            12..=20 => "1".into(),
            _ => self.rng.i64(-3..4).to_string(),
        }
    }

    /// A score range bound, mostly valid.
    fn bound(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => "-inf".into(),
            1 => "+inf".into(),
            2 => "(1".into(),
            3 => "(-inf".into(),
            4 => "x".into(),
            5 => "(0.1".into(),
            6 => "nan".into(),
            _ => self.rng.i64(-3..4).to_string(),
        }
    }

    fn lex(&mut self) -> String {
        match self.rng.u8(..12) {
            0 => "-".into(),
            1 => "+".into(),
            2 => "a".into(),
            3 => "[".into(),
            _ => format!(
                "{}{}",
                ["[", "("][self.rng.usize(..2)],
                ["a", "b", "c", "d", "aa", "B", ""][self.rng.usize(..7)]
            ),
        }
    }

    fn int(&mut self) -> String {
        match self.rng.u8(..40) {
            0 => "abc".into(),
            1 => i64::MIN.to_string(),
            2 => i64::MAX.to_string(),
            3 => "1.5".into(),
            4..=8 => self.rng.i64(-20..20).to_string(),
            _ => self.rng.i64(-4..5).to_string(),
        }
    }

    /// ZRANGE-family options after the range.
    fn range_opts(&mut self, c: &mut Vec<String>, store: bool, lex: bool) {
        for _ in 0..self.rng.usize(..3) {
            match self.rng.u8(..12) {
                0..=2 if !store => c.push("WITHSCORES".into()),
                3..=4 => {
                    c.push("LIMIT".into());
                    c.push(self.int());
                    c.push(self.int());
                }
                5 => c.push("REV".into()),
                6 => c.push("BYSCORE".into()),
                7 if lex => c.push("BYLEX".into()),
                8 => c.push("bogus".into()),
                _ => {}
            }
        }
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let mut compare = Compare::Exact;
        let mut c: Vec<String> = match self.rng.u8(..54) {
            0..=6 => {
                let k = if self.rng.u8(..5) == 0 {
                    self.score_key()
                } else {
                    k
                };
                let mut c = vec!["ZADD".into(), k];
                for _ in 0..self.rng.usize(..3) {
                    let o = ["NX", "XX", "GT", "LT", "CH", "INCR", "ch"][self.rng.usize(..7)];
                    c.push(o.into());
                }
                for _ in 0..self.rng.usize(1..4) {
                    c.push(self.score());
                    c.push(self.member());
                }
                c
            }
            7 => {
                // Many members at once: crosses the listpack limits.
                let mut c = vec!["ZADD".into(), format!("{}g", self.tag)];
                for i in 0..self.rng.usize(100..140) {
                    c.push(self.rng.i64(-50..50).to_string());
                    c.push(format!("m{i}"));
                }
                c
            }
            44..=45 => {
                // The lex key: every score 0; many members or a long one make it a skiplist.
                let mut c = vec!["ZADD".into(), format!("{}l", self.tag)];
                if self.rng.bool() {
                    c.push("NX".into());
                }
                let n = if self.rng.u8(..8) == 0 {
                    self.rng.usize(100..140)
                } else {
                    2
                };
                for i in 0..n {
                    c.push("0".into());
                    c.push(match self.rng.u8(..20) {
                        0 => "m".repeat(self.rng.usize(60..70)),
                        1 => format!("n{i}"),
                        _ => self.member(),
                    });
                }
                c
            }
            46..=47 => vec![
                [
                    "ZRANGEBYLEX",
                    "ZREVRANGEBYLEX",
                    "ZLEXCOUNT",
                    "ZREMRANGEBYLEX",
                ][self.rng.usize(..4)]
                .into(),
                format!("{}l", self.tag),
                self.lex(),
                self.lex(),
            ],
            48..=49 => {
                let name = ["ZUNION", "ZINTER", "ZDIFF"][self.rng.usize(..3)];
                let mut c = vec![name.into()];
                let n = self.numkeys(&mut c);
                self.setop_opts(&mut c, n, false);
                c
            }
            50 => {
                // Into `g` or `d` only: a result may be large, with any scores.
                let name = ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"][self.rng.usize(..3)];
                let dst = ["g", "d"][self.rng.usize(..2)];
                let mut c = vec![name.into(), format!("{}{dst}", self.tag)];
                let n = self.numkeys(&mut c);
                self.setop_opts(&mut c, n, true);
                c
            }
            51 => {
                let mut c = vec!["ZINTERCARD".into()];
                self.numkeys(&mut c);
                if self.rng.bool() {
                    c.push("LIMIT".into());
                    c.push(self.int());
                }
                c
            }
            52..=53 => {
                let mut c = vec!["ZMPOP".into()];
                self.numkeys(&mut c);
                c.push(["MIN", "MAX", "min", "mid"][self.rng.usize(..4)].into());
                if self.rng.bool() {
                    c.push("COUNT".into());
                    c.push(self.int());
                }
                c
            }
            8..=9 => {
                let k = if self.rng.u8(..4) == 0 {
                    self.score_key()
                } else {
                    k
                };
                vec!["ZINCRBY".into(), k, self.score(), self.member()]
            }
            10..=11 => {
                let mut c = vec!["ZREM".into(), self.any_key()];
                for _ in 0..self.rng.usize(1..3) {
                    c.push(self.member());
                }
                c
            }
            12 => vec!["ZCARD".into(), self.any_key()],
            13 => vec!["ZSCORE".into(), self.any_key(), self.member()],
            14 => vec![
                "ZMSCORE".into(),
                self.any_key(),
                self.member(),
                self.member(),
            ],
            15 => {
                let name = ["ZRANK", "ZREVRANK"][self.rng.usize(..2)];
                let m = if self.rng.bool() {
                    format!("m{}", self.rng.usize(..140))
                } else {
                    self.member()
                };
                vec![name.into(), self.any_key(), m]
            }
            16 => vec![
                "ZCOUNT".into(),
                self.score_key(),
                self.bound(),
                self.bound(),
            ],
            17 => vec!["ZLEXCOUNT".into(), self.lex_key(), self.lex(), self.lex()],
            18..=20 => {
                // Lex bounds only on the lex keys; BYLEX may come with any bounds, so the
                // options draw no BYLEX for the score key.
                let lexy = self.rng.u8(..3) == 0;
                let k = if lexy { self.lex_key() } else { k };
                let mut c = vec!["ZRANGE".into(), k];
                if lexy {
                    c.push(self.lex());
                    c.push(self.lex());
                    if self.rng.u8(..4) > 0 {
                        c.push("BYLEX".into());
                    }
                } else if self.rng.bool() {
                    c.push(self.int());
                    c.push(self.int());
                } else {
                    c.push(self.bound());
                    c.push(self.bound());
                }
                self.range_opts(&mut c, false, lexy);
                c
            }
            21 => {
                let mut c = vec!["ZRANGESTORE".into(), self.key(), k];
                if self.rng.bool() {
                    c.push(self.int());
                    c.push(self.int());
                } else {
                    c.push(self.bound());
                    c.push(self.bound());
                    c.push("BYSCORE".into());
                }
                self.range_opts(&mut c, true, true);
                c
            }
            22 => {
                let mut c = vec!["ZREVRANGE".into(), self.any_key(), self.int(), self.int()];
                if self.rng.bool() {
                    c.push("WITHSCORES".into());
                }
                c
            }
            23..=24 => {
                let name = ["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"][self.rng.usize(..2)];
                let mut c = vec![name.into(), self.score_key(), self.bound(), self.bound()];
                if self.rng.bool() {
                    c.push("WITHSCORES".into());
                }
                if self.rng.bool() {
                    c.push("LIMIT".into());
                    c.push(self.int());
                    c.push(self.int());
                }
                c
            }
            25 => {
                let name = ["ZRANGEBYLEX", "ZREVRANGEBYLEX"][self.rng.usize(..2)];
                let mut c = vec![name.into(), self.lex_key(), self.lex(), self.lex()];
                if self.rng.bool() {
                    c.push("LIMIT".into());
                    c.push(self.int());
                    c.push(self.int());
                }
                c
            }
            26 => vec![
                "ZREMRANGEBYRANK".into(),
                self.any_key(),
                self.int(),
                self.int(),
            ],
            27 => vec![
                "ZREMRANGEBYSCORE".into(),
                self.score_key(),
                self.bound(),
                self.bound(),
            ],
            28 => vec![
                "ZREMRANGEBYLEX".into(),
                self.lex_key(),
                self.lex(),
                self.lex(),
            ],
            30 if self.rng.u8(..3) == 0 => {
                // Blocking pops that return at once (a ready key, a bad argument) or after a
                // 10 ms timeout.
                let t: String = ["0.01", "0.01", "-1", "x"][self.rng.usize(..4)].into();
                if self.rng.bool() {
                    let name = ["BZPOPMIN", "BZPOPMAX"][self.rng.usize(..2)];
                    vec![name.into(), self.any_key(), self.any_key(), t]
                } else {
                    let mut c = vec!["BZMPOP".into(), t];
                    self.numkeys(&mut c);
                    c.push(["MIN", "MAX", "max", "mid"][self.rng.usize(..4)].into());
                    if self.rng.bool() {
                        c.push("COUNT".into());
                        c.push(self.int());
                    }
                    c
                }
            }
            29..=30 => {
                let name = ["ZPOPMIN", "ZPOPMAX"][self.rng.usize(..2)];
                let mut c = vec![name.into(), self.any_key()];
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
            31 => {
                compare = Compare::Shape;
                let mut c = vec!["ZRANDMEMBER".into(), self.any_key()];
                if self.rng.u8(..4) > 0 {
                    c.push(self.int());
                    if self.rng.bool() {
                        c.push(["WITHSCORES", "withscores", "bogus"][self.rng.usize(..3)].into());
                    }
                }
                c
            }
            32 => {
                // Small sets come whole (cursor 0) and compare exactly; a large set's pages
                // (Redis walks its hash table) are compared as shapes.
                let key = if self.rng.bool() {
                    k
                } else {
                    compare = Compare::Shape;
                    self.any_key()
                };
                let mut c = vec![
                    "ZSCAN".into(),
                    key,
                    ["0", "0", "x"][self.rng.usize(..3)].into(),
                ];
                match self.rng.u8(..4) {
                    0 => c.extend(["MATCH".into(), "a*".into()]),
                    1 => c.extend(["COUNT".into(), self.int()]),
                    _ => {}
                }
                c
            }
            33 if self.rng.bool() => vec!["DEL".into(), k],
            34 if self.rng.bool() => vec!["RENAME".into(), k, self.key()],
            33..=34 => vec![
                "ZRANGE".into(),
                k,
                "0".into(),
                "-1".into(),
                "WITHSCORES".into(),
            ],
            35 => vec!["TYPE".into(), self.any_key()],
            36 if self.rng.bool() => vec!["SET".into(), format!("{}s", self.tag), "x".into()],
            36 => vec!["OBJECT".into(), "ENCODING".into(), self.any_key()],
            37 => vec!["EXPIRE".into(), self.any_key(), "100000".into()],
            38 => vec!["PERSIST".into(), self.any_key()],
            39 => vec!["ZCARD".into(), format!("{}s", self.tag)],
            40 => vec![
                "DEL".into(),
                format!("{}{}", self.tag, ["g", "l"][self.rng.usize(..2)]),
            ],
            _ => vec![
                "ZRANGE".into(),
                self.any_key(),
                "0".into(),
                "-1".into(),
                "WITHSCORES".into(),
            ],
        };
        // Now and then a wrong arity.
        if self.rng.u8(..100) == 0 {
            c.truncate(self.rng.usize(1..c.len().max(2)));
        }
        Step { args: c, compare }
    }
}
