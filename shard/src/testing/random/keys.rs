//! Random string and key commands for the differential tests: INCRBYFLOAT's parsing and its
//! NaN/Infinity errors, COPY of every type with its options, OBJECT ENCODING of strings
//! written whole (SET, MSET, INCR, INCRBYFLOAT).

use super::super::Step;

/// The key names the generator uses (before the tag): `a`..`c` hold any type, `f` a float,
/// `e` only strings written whole (its OBJECT ENCODING is compared).
pub const KEYS: &[&str] = &["a", "b", "c", "f", "e"];

/// The next random command, on the keys `KEYS` with `tag` before each.
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn pick<'s>(&mut self, xs: &[&'s str]) -> &'s str {
        xs[self.rng.usize(..xs.len())]
    }

    fn k(&self, name: &str) -> String {
        format!("{}{name}", self.tag)
    }

    fn any_key(&mut self) -> String {
        let name = self.pick(&["a", "b", "c", "missing"]);
        self.k(name)
    }

    /// A value to SET: integers (shared and not, canonical and not), strings around
    /// embstr's 44-byte limit, floats and infinities.
    fn value(&mut self) -> String {
        match self.rng.u8(..12) {
            0 => "12".into(),
            1 => "-7".into(),
            2 => "9223372036854775807".into(),
            3 => "9223372036854775808".into(),
            4 => "007".into(),
            5 => "x".repeat(44),
            6 => "x".repeat(45),
            7 => "1.5".into(),
            8 => "inf".into(),
            9 => " 3".into(),
            10 => "".into(),
            _ => format!("v{}", self.rng.u32(..100)),
        }
    }

    fn command(&mut self) -> Step {
        let exact = Step::exact;
        match self.rng.u8(..24) {
            0..=2 => {
                let k = self.any_key();
                exact(vec!["SET".into(), k, self.value()])
            }
            3 => {
                let k = self.any_key();
                exact(vec!["RPUSH".into(), k, "x".into(), "y".into()])
            }
            4 => {
                let k = self.any_key();
                exact(vec!["SADD".into(), k, "1".into(), "2".into()])
            }
            5 => {
                let k = self.any_key();
                exact(vec!["ZADD".into(), k, "1".into(), "m".into()])
            }
            6 => {
                let k = self.any_key();
                exact(vec!["HSET".into(), k, "f".into(), "v".into()])
            }
            7..=10 => {
                // `f` holds small floats (or a non-number): sums of increments exact in binary
                // are the same in a double as in Redis's long double; other keys give their
                // type errors.
                if self.rng.u8(..4) == 0 {
                    // Other keys (anything, large integers included): only increments that
                    // fail whatever the value.
                    let k = self.any_key();
                    let by = self.pick(&["inf", "-inf", "nan", "abc"]);
                    return exact(vec!["INCRBYFLOAT".into(), k, by.into()]);
                }
                let k = self.k("f");
                let by = self.pick(&[
                    "1.5", "-0.25", "3", "0x10", "inf", "-inf", "nan", "abc", " 1", "1 ", "",
                    "+inf",
                ]);
                exact(vec!["INCRBYFLOAT".into(), k, by.into()])
            }
            11 => {
                let v = self.pick(&["inf", "-inf", "nan", "1.5", "x", "2"]);
                exact(vec!["SET".into(), self.k("f"), v.into()])
            }
            12..=15 => {
                let src = if self.rng.u8(..5) == 0 {
                    self.k("f")
                } else {
                    self.any_key()
                };
                let dst = self.any_key();
                let mut c = vec!["COPY".into(), src, dst];
                for _ in 0..self.rng.usize(0..3) {
                    match self.rng.u8(..8) {
                        0..=2 => c.push("REPLACE".into()),
                        3 => c.extend(["DB".into(), "0".into()]),
                        4 => c.extend(["DB".into(), "16".into()]),
                        5 => c.extend(["DB".into(), "-1".into()]),
                        6 => c.extend(["DB".into(), "x".into()]),
                        _ => c.push(self.pick(&["DB", "BOGUS"]).into()),
                    }
                }
                exact(c)
            }
            16 => {
                let k = self.any_key();
                exact(vec!["TYPE".into(), k])
            }
            17 => {
                let k = self.any_key();
                exact(vec!["GET".into(), k])
            }
            18 => {
                let k = self.any_key();
                exact(vec!["DEL".into(), k])
            }
            19 => exact(vec!["SET".into(), self.k("e"), self.value()]),
            20 => {
                let v = self.value();
                exact(vec!["MSET".into(), self.k("e"), v, self.k("a"), "1".into()])
            }
            21 => exact(vec!["INCR".into(), self.k("e")]),
            22 => exact(vec!["OBJECT".into(), "ENCODING".into(), self.k("e")]),
            _ => {
                let k = self.any_key();
                exact(vec!["EXPIRE".into(), k, "100".into()])
            }
        }
    }
}
