//! Random stream commands for the differential tests: XADD (with trimming), XRANGE, XREVRANGE,
//! XLEN, XDEL, XTRIM, XSETID, XREAD, the consumer groups (XGROUP, XREADGROUP, XACK, XPENDING,
//! XCLAIM, XAUTOCLAIM), XINFO, mixed with DEL, EXPIRE, RENAME, COPY and other types.
//!
//! IDs are explicit (`ms-seq`, `ms-*`, `ms`) from a counter that moves forward, so both servers
//! compute the same IDs; `*` (the clock's) is left to the targeted tests. Replies that carry
//! times (idle times, delivery and seen times) or Redis's radix-tree node count are compared
//! with their integers masked; claims use minimum idle times far from what a run's duration
//! can reach (0, or half of the 1,000 s a claim's IDLE sets), so who gets what is the same.

use super::super::{Compare, Step};

/// The stream commands the generator sends (their `COMMAND INFO` is compared too; the
/// containers' by subcommand, as Redis lists a container's subcommands in hash order).
pub const COMMANDS: &[&str] = &[
    "xadd",
    "xrange",
    "xrevrange",
    "xlen",
    "xdel",
    "xtrim",
    "xsetid",
    "xread",
    "xreadgroup",
    "xack",
    "xpending",
    "xclaim",
    "xautoclaim",
    "xgroup|create",
    "xgroup|setid",
    "xgroup|destroy",
    "xgroup|createconsumer",
    "xgroup|delconsumer",
    "xgroup|help",
    "xinfo|stream",
    "xinfo|groups",
    "xinfo|consumers",
    "xinfo|help",
];

/// The key names the generator uses (before the tag): streams `s1` `s2` `s3`, a string `x`,
/// a list `l`.
pub const KEYS: &[&str] = &["s1", "s2", "s3", "x", "l"];

/// A seeded stream command generator; its state is the next milliseconds part of the IDs it
/// adds (both servers see the same sequence, so its state needs no reply).
pub struct Gen {
    tag: String,
    ms: u64,
}

impl Gen {
    pub fn new(tag: &str) -> Gen {
        Gen {
            tag: tag.to_string(),
            ms: 1,
        }
    }

    fn key(&self, rng: &mut fastrand::Rng) -> String {
        let name = ["s1", "s1", "s1", "s2", "s2", "s3", "x", "l"][rng.usize(..8)];
        format!("{}{name}", self.tag)
    }

    fn stream(&self, rng: &mut fastrand::Rng) -> String {
        let name = ["s1", "s1", "s2", "s3"][rng.usize(..4)];
        format!("{}{name}", self.tag)
    }

    /// An ID near the ones added so far (or an edge).
    fn id(&self, rng: &mut fastrand::Rng) -> String {
        match rng.u8(..12) {
            0 => "0-0".into(),
            1 => "0".into(),
            2 => format!("{}", rng.u64(0..self.ms + 2)),
            3 => "18446744073709551615-18446744073709551615".into(),
            4 => "bad".into(),
            _ => format!("{}-{}", rng.u64(0..self.ms + 2), rng.u64(0..3)),
        }
    }

    /// A range bound: an ID, `-`, `+`, or an exclusive `(id`.
    fn bound(&self, rng: &mut fastrand::Rng) -> String {
        match rng.u8(..8) {
            0 => "-".into(),
            1 => "+".into(),
            2 => format!("({}", self.id(rng)),
            _ => self.id(rng),
        }
    }

    fn group(rng: &mut fastrand::Rng) -> String {
        ["g1", "g1", "g2", "nog"][rng.usize(..4)].into()
    }

    fn consumer(rng: &mut fastrand::Rng) -> String {
        ["alice", "bob", "carol"][rng.usize(..3)].into()
    }

    fn trim(&self, rng: &mut fastrand::Rng, c: &mut Vec<String>) {
        if rng.bool() {
            c.push("MAXLEN".into());
        } else {
            c.push("MINID".into());
        }
        let min = c.last().is_some_and(|o| o == "MINID");
        let approx = match rng.u8(..3) {
            0 => {
                c.push("~".into());
                true
            }
            1 => {
                c.push("=".into());
                false
            }
            _ => false,
        };
        if min {
            c.push(format!("{}", rng.u64(0..self.ms + 1)));
        } else {
            c.push(["0", "5", "50", "150", "-1"][rng.usize(..5)].into());
        }
        if rng.u8(..4) == 0 {
            c.push("LIMIT".into());
            c.push(["0", "10", "100", "200"][rng.usize(..4)].into());
        } else if !approx && rng.u8(..20) == 0 {
            c.push("LIMIT".into());
            c.push("5".into());
        }
    }

    fn fields(rng: &mut fastrand::Rng, c: &mut Vec<String>) {
        let n = if rng.u8(..6) == 0 { rng.usize(2..4) } else { 1 };
        for _ in 0..n {
            c.push(["f", "g", "h"][rng.usize(..3)].into());
            c.push(format!("v{}", rng.u32(..100)));
        }
    }

    /// The next random command.
    pub fn step(&mut self, rng: &mut fastrand::Rng) -> Step {
        let exact = Step::exact;
        let masked = |args: Vec<String>| Step {
            args,
            compare: Compare::Masked,
        };
        let k = self.key(rng);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        match rng.u8(..100) {
            0..=29 => {
                let mut c = vec!["XADD".into(), k];
                if rng.u8(..10) == 0 {
                    c.push("NOMKSTREAM".into());
                }
                if rng.u8(..4) == 0 {
                    self.trim(rng, &mut c);
                }
                let id = match rng.u8(..20) {
                    0 => self.id(rng),
                    1 => format!("{}-*", self.ms),
                    2 => {
                        self.ms += 1;
                        format!("{}", self.ms)
                    }
                    _ => {
                        self.ms += u64::from(rng.u8(..2));
                        format!("{}-{}", self.ms, rng.u8(..3))
                    }
                };
                c.push(id);
                if rng.u8(..40) == 0 {
                    c.push("f".into());
                } else {
                    Self::fields(rng, &mut c);
                }
                exact(c)
            }
            30..=37 => {
                let rev = rng.bool();
                let mut c = vec![if rev { "XREVRANGE" } else { "XRANGE" }.into(), k];
                c.push(self.bound(rng));
                c.push(self.bound(rng));
                if rng.bool() {
                    c.push("COUNT".into());
                    c.push(["0", "1", "3", "10", "-1"][rng.usize(..5)].into());
                }
                exact(c)
            }
            38..=39 => exact(vec!["XLEN".into(), k]),
            40..=42 => {
                let mut c = vec!["XDEL".into(), k];
                for _ in 0..rng.usize(1..4) {
                    c.push(self.id(rng));
                }
                exact(c)
            }
            43..=44 => {
                let mut c = vec!["XTRIM".into(), k];
                self.trim(rng, &mut c);
                exact(c)
            }
            45 => {
                let mut c = vec!["XSETID".into(), k, format!("{}-9", self.ms)];
                if rng.bool() {
                    c.push("ENTRIESADDED".into());
                    c.push(["0", "1000", "-1"][rng.usize(..3)].into());
                }
                if rng.u8(..3) == 0 {
                    c.push("MAXDELETEDID".into());
                    c.push(format!("{}-0", rng.u64(0..self.ms + 1)));
                }
                exact(c)
            }
            46..=51 => {
                let g = Self::group(rng);
                match rng.u8(..10) {
                    0..=3 => {
                        let from = ["$", "0", "-", "5-0"][rng.usize(..4)].to_string();
                        let mut c = vec!["XGROUP".into(), "CREATE".into(), k, g, from];
                        if rng.bool() {
                            c.push("MKSTREAM".into());
                        }
                        if rng.u8(..5) == 0 {
                            c.push("ENTRIESREAD".into());
                            c.push(["0", "3", "-1", "-5"][rng.usize(..4)].into());
                        }
                        exact(c)
                    }
                    4 => {
                        let to = ["$", "0", "-", "+"][rng.usize(..4)].to_string();
                        exact(vec!["XGROUP".into(), "SETID".into(), k, g, to])
                    }
                    5 => exact(vec!["XGROUP".into(), "DESTROY".into(), k, g]),
                    6 | 7 => exact(vec![
                        "XGROUP".into(),
                        "CREATECONSUMER".into(),
                        k,
                        g,
                        Self::consumer(rng),
                    ]),
                    8 => exact(vec![
                        "XGROUP".into(),
                        "DELCONSUMER".into(),
                        k,
                        g,
                        Self::consumer(rng),
                    ]),
                    _ => exact(s(&["XGROUP", "HELP"])),
                }
            }
            52..=63 => {
                let mut c = vec![
                    "XREADGROUP".into(),
                    "GROUP".into(),
                    Self::group(rng),
                    Self::consumer(rng),
                ];
                if rng.bool() {
                    c.push("COUNT".into());
                    c.push(["1", "2", "5", "0"][rng.usize(..4)].into());
                }
                if rng.u8(..5) == 0 {
                    c.push("NOACK".into());
                }
                c.push("STREAMS".into());
                let two = rng.u8(..4) == 0;
                c.push(k);
                if two {
                    c.push(self.stream(rng));
                }
                for _ in 0..(if two { 2 } else { 1 }) {
                    c.push([">", ">", ">", "0", "$"][rng.usize(..5)].into());
                }
                exact(c)
            }
            64..=67 => {
                let mut c = vec!["XREAD".into()];
                if rng.bool() {
                    c.push("COUNT".into());
                    c.push(["1", "3", "0"][rng.usize(..3)].into());
                }
                c.push("STREAMS".into());
                c.push(k);
                c.push(["$", "0", "0-0"][rng.usize(..3)].into());
                exact(c)
            }
            68..=72 => {
                let mut c = vec!["XACK".into(), k, Self::group(rng)];
                for _ in 0..rng.usize(1..4) {
                    c.push(self.id(rng));
                }
                exact(c)
            }
            73..=74 => exact(vec!["XPENDING".into(), k, Self::group(rng)]),
            75..=77 => {
                let mut c = vec!["XPENDING".into(), k, Self::group(rng)];
                if rng.bool() {
                    c.push("IDLE".into());
                    c.push("500000".into());
                }
                c.push(self.bound(rng));
                c.push(self.bound(rng));
                c.push(["10", "2", "0"][rng.usize(..3)].into());
                if rng.bool() {
                    c.push(Self::consumer(rng));
                }
                masked(c)
            }
            78..=81 => {
                let mut c = vec![
                    "XCLAIM".into(),
                    k,
                    Self::group(rng),
                    Self::consumer(rng),
                    ["0", "500000"][rng.usize(..2)].into(),
                ];
                for _ in 0..rng.usize(1..4) {
                    c.push(self.id(rng));
                }
                for opt in ["IDLE", "JUSTID", "FORCE", "RETRYCOUNT", "LASTID", "TIME"] {
                    if rng.u8(..5) == 0 {
                        c.push(opt.into());
                        match opt {
                            "IDLE" => c.push("1000000".into()),
                            "RETRYCOUNT" => c.push(["0", "7"][rng.usize(..2)].into()),
                            "LASTID" => c.push(self.id(rng)),
                            "TIME" => c.push("0".into()),
                            _ => {}
                        }
                    }
                }
                exact(c)
            }
            82..=84 => {
                let mut c = vec![
                    "XAUTOCLAIM".into(),
                    k,
                    Self::group(rng),
                    Self::consumer(rng),
                    ["0", "500000"][rng.usize(..2)].into(),
                    self.bound(rng),
                ];
                if rng.bool() {
                    c.push("COUNT".into());
                    c.push(["1", "2", "10", "0"][rng.usize(..4)].into());
                }
                if rng.u8(..3) == 0 {
                    c.push("JUSTID".into());
                }
                exact(c)
            }
            85 => exact(vec!["XINFO".into(), "GROUPS".into(), k]),
            86 => masked(vec![
                "XINFO".into(),
                "CONSUMERS".into(),
                k,
                Self::group(rng),
            ]),
            87 => {
                let mut c = vec!["XINFO".into(), "STREAM".into(), k];
                if rng.bool() {
                    c.push("FULL".into());
                    if rng.bool() {
                        c.push("COUNT".into());
                        c.push(["0", "2", "-1"][rng.usize(..3)].into());
                    }
                }
                masked(c)
            }
            88 => exact(vec!["DEL".into(), k]),
            89 => exact(vec!["EXPIRE".into(), k, "1000".into()]),
            // Streams move among the stream keys only (a list renamed onto one would make
            // the rest of the run type errors).
            90 => exact(vec!["RENAME".into(), self.stream(rng), self.stream(rng)]),
            91 => exact(vec![
                "COPY".into(),
                self.stream(rng),
                self.stream(rng),
                "REPLACE".into(),
            ]),
            92 => exact(vec!["TYPE".into(), k]),
            // (Not of the list: Redis 7.0 calls every list `quicklist`.)
            93 => exact(vec!["OBJECT".into(), "ENCODING".into(), self.stream(rng)]),
            94 => exact(vec!["SET".into(), format!("{}x", self.tag), "v".into()]),
            95 => exact(vec!["RPUSH".into(), format!("{}l", self.tag), "e".into()]),
            96 => exact(vec!["GET".into(), k]),
            97 => exact(vec!["EXISTS".into(), k]),
            _ => exact(vec!["TTL".into(), k]),
        }
    }
}
