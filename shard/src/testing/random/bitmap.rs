//! Random bitmap commands for the differential tests.

use super::super::Step;

/// The bitmap commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &[
    "setbit",
    "getbit",
    "bitcount",
    "bitpos",
    "bitop",
    "bitfield",
    "bitfield_ro",
    "lcs",
    "substr",
];

/// The key names the generator uses (before the tag); `l` is now and then a list, `x` and
/// `y` hold short strings for LCS.
pub const KEYS: &[&str] = &["a", "b", "c", "d", "l", "x", "y"];

/// The next random bitmap command, on the keys `KEYS` with `tag` before each.
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

/// Random arguments, biased towards corner cases: offsets near byte and word edges and past
/// the end, ranges that are negative, reversed or in bits, fields of every width signed and
/// unsigned (and the invalid `u64`, `i65`), values that overflow under each OVERFLOW mode,
/// and arguments that are not numbers at all.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        let name = ["a", "b", "c", "d", "a", "b", "c", "a", "b", "l"][self.rng.usize(..10)];
        format!("{}{name}", self.tag)
    }

    fn offset(&mut self) -> String {
        match self.rng.u8(..40) {
            0 => "-1".into(),
            1 => "abc".into(),
            2 => "4294967296".into(),
            3 => "+5".into(),
            4 => self.rng.u32(..100_000).to_string(),
            5..=9 => self.rng.u32(..64).to_string(),
            _ => self.rng.u32(..200).to_string(),
        }
    }

    fn index(&mut self) -> String {
        match self.rng.u8(..30) {
            0 => "x".into(),
            1 => i64::MIN.to_string(),
            2 => i64::MAX.to_string(),
            3..=8 => self.rng.i64(-40..0).to_string(),
            9..=12 => self.rng.i64(0..200).to_string(),
            _ => self.rng.i64(-5..30).to_string(),
        }
    }

    fn unit(&mut self, c: &mut Vec<String>) {
        match self.rng.u8(..6) {
            0 | 1 => c.push("BIT".into()),
            2 => c.push("byte".into()),
            3 => c.push("bits".into()),
            _ => {}
        }
    }

    fn field_type(&mut self) -> String {
        match self.rng.u8(..30) {
            0 => "u64".into(),
            1 => "i65".into(),
            2 => "i0".into(),
            3 => "x8".into(),
            4 => "I8".into(),
            5 => "i64".into(),
            6 => "u63".into(),
            7..=18 => format!("u{}", self.rng.u32(1..64)),
            _ => format!("i{}", self.rng.u32(1..65)),
        }
    }

    fn field_offset(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => format!("#{}", self.rng.u32(..20)),
            1 => "#x".into(),
            2 => "-3".into(),
            _ => self.rng.u32(..150).to_string(),
        }
    }

    fn value(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => i64::MIN.to_string(),
            1 => i64::MAX.to_string(),
            2 => "1.5".into(),
            3 => self.rng.i64(-300..300).to_string(),
            4 => self.rng.i64(..).to_string(),
            _ => self.rng.i64(-10..10).to_string(),
        }
    }

    fn bitfield(&mut self, read_only: bool) -> Vec<String> {
        let mut c = vec![
            if read_only { "BITFIELD_RO" } else { "BITFIELD" }.into(),
            self.key(),
        ];
        for _ in 0..self.rng.usize(0..5) {
            match self.rng.u8(..12) {
                0..=3 => {
                    c.push("GET".into());
                    c.push(self.field_type());
                    c.push(self.field_offset());
                }
                4..=6 if !read_only || self.rng.u8(..8) == 0 => {
                    c.push("SET".into());
                    c.push(self.field_type());
                    c.push(self.field_offset());
                    c.push(self.value());
                }
                7..=9 if !read_only || self.rng.u8(..8) == 0 => {
                    c.push("INCRBY".into());
                    c.push(self.field_type());
                    c.push(self.field_offset());
                    c.push(self.value());
                }
                10 => {
                    c.push("OVERFLOW".into());
                    c.push(["WRAP", "sat", "FAIL", "fail", "bogus"][self.rng.usize(..5)].into());
                }
                11 => {
                    // A truncated operation: a syntax error.
                    c.push(["GET", "SET", "INCRBY", "OVERFLOW"][self.rng.usize(..4)].into());
                }
                _ => {
                    c.push("GET".into());
                    c.push(self.field_type());
                    c.push(self.field_offset());
                }
            }
        }
        c
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let exact = Step::exact;
        match self.rng.u8(..43) {
            40 => {
                // Short strings for LCS, whose table is the product of the two lengths.
                let text: String = (0..self.rng.usize(0..30))
                    .map(|_| ['a', 'b', 'c'][self.rng.usize(..3)])
                    .collect();
                let x = ["x", "y"][self.rng.usize(..2)];
                exact(vec!["SET".into(), format!("{}{x}", self.tag), text])
            }
            41 => {
                let x = ["x", "y"][self.rng.usize(..2)];
                let other = if self.rng.bool() {
                    format!("{}{}", self.tag, ["x", "y"][self.rng.usize(..2)])
                } else {
                    k
                };
                let mut c = vec!["LCS".into(), format!("{}{x}", self.tag), other];
                for _ in 0..self.rng.usize(0..3) {
                    match self.rng.u8(..6) {
                        0 => c.push("LEN".into()),
                        1 | 2 => c.push("IDX".into()),
                        3 => c.push("WITHMATCHLEN".into()),
                        4 => {
                            c.push("MINMATCHLEN".into());
                            c.push(self.index());
                        }
                        _ => c.push("bogus".into()),
                    }
                }
                exact(c)
            }
            42 => exact(vec!["SUBSTR".into(), k, self.index(), self.index()]),
            0..=7 => {
                let bit = match self.rng.u8(..12) {
                    0 => "2".into(),
                    1 => "x".into(),
                    2 => "-1".into(),
                    n => (n % 2).to_string(),
                };
                exact(vec!["SETBIT".into(), k, self.offset(), bit])
            }
            8..=10 => exact(vec!["GETBIT".into(), k, self.offset()]),
            11..=14 => {
                let mut c = vec!["BITCOUNT".into(), k];
                match self.rng.u8(..6) {
                    0 => {}
                    1 => c.push(self.index()),
                    _ => {
                        c.push(self.index());
                        c.push(self.index());
                        self.unit(&mut c);
                    }
                }
                exact(c)
            }
            15..=18 => {
                let bit = match self.rng.u8(..10) {
                    0 => "2".into(),
                    1 => "y".into(),
                    n => (n % 2).to_string(),
                };
                let mut c = vec!["BITPOS".into(), k, bit];
                match self.rng.u8(..5) {
                    0 => {}
                    1 => c.push(self.index()),
                    2 => {
                        c.push(self.index());
                        c.push(self.index());
                    }
                    _ => {
                        c.push(self.index());
                        c.push(self.index());
                        self.unit(&mut c);
                    }
                }
                exact(c)
            }
            19..=22 => {
                let op = ["AND", "or", "XOR", "NOT", "not", "nand"][self.rng.usize(..6)];
                let mut c = vec!["BITOP".into(), op.into(), k, self.key()];
                for _ in 0..self.rng.usize(0..3) {
                    c.push(self.key());
                }
                exact(c)
            }
            23..=28 => exact(self.bitfield(false)),
            29..=30 => exact(self.bitfield(true)),
            31 => {
                let v = ["", "a", "\u{7f}", "foobar", "12345", "\u{1}\u{2}"][self.rng.usize(..6)];
                exact(vec!["SET".into(), k, v.into()])
            }
            32 => exact(vec!["APPEND".into(), k, "xyz".into()]),
            33 => exact(vec![
                "SETRANGE".into(),
                k,
                self.rng.u32(..40).to_string(),
                "\u{ff}".into(),
            ]),
            34..=35 => exact(vec!["GET".into(), k]),
            36 => exact(vec!["DEL".into(), k]),
            37 => exact(vec!["STRLEN".into(), k]),
            38 => exact(vec!["RPUSH".into(), format!("{}l", self.tag), "x".into()]),
            _ => exact(vec!["EXPIRE".into(), k, "1000".into()]),
        }
    }
}
