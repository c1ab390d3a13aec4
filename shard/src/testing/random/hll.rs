//! Random HyperLogLog commands for the differential tests.

use super::super::Step;

/// The HyperLogLog commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &["pfadd", "pfcount", "pfmerge"];

/// The key names the generator uses (before the tag); `s` is now and then a plain or a
/// corrupt string, `l` a list.
pub const KEYS: &[&str] = &["a", "b", "c", "s", "l"];

/// The next random HyperLogLog command, on the keys `KEYS` with `tag` before each.
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

/// Random arguments, biased towards what finds corner cases: batches large enough to turn a
/// sparse HLL dense (and a lowered `hll-sparse-max-bytes` that makes it sooner), merges of
/// sparse and dense ones, strings that only look like HLLs (a valid header over too few
/// registers, a dense header of the wrong size) and values of other types.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        let name = ["a", "b", "c", "a", "b", "c", "a", "s", "l"][self.rng.usize(..9)];
        format!("{}{name}", self.tag)
    }

    fn keys(&mut self, c: &mut Vec<String>, most: usize) {
        for _ in 0..self.rng.usize(0..most) {
            c.push(self.key());
        }
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let exact = Step::exact;
        match self.rng.u8(..30) {
            0..=9 => {
                let mut c = vec!["PFADD".into(), k];
                let n = match self.rng.u8(..10) {
                    0 => 0,
                    1 => self.rng.usize(100..400),
                    _ => self.rng.usize(1..8),
                };
                let universe = if self.rng.bool() { 50 } else { 20_000 };
                for _ in 0..n {
                    c.push(format!("e{}", self.rng.u32(..universe)));
                }
                exact(c)
            }
            10..=15 => {
                let mut c = vec!["PFCOUNT".into(), k];
                self.keys(&mut c, 3);
                exact(c)
            }
            16..=19 => {
                let mut c = vec!["PFMERGE".into(), k];
                self.keys(&mut c, 4);
                exact(c)
            }
            20..=21 => exact(vec!["GET".into(), k]),
            22 => {
                let v = [
                    "plain",
                    // A sparse header (cached count valid: 0) over 128 registers only.
                    "HYLL\u{1}\0\0\0\0\0\0\0\0\0\0\0\u{3f}\u{3f}",
                    // The same with the cache marked stale: counting finds it corrupt.
                    "HYLL\u{1}\0\0\0\0\0\0\0\0\0\0\u{7f}\u{3f}\u{3f}",
                    // A dense header of the wrong size.
                    "HYLL\0\0\0\0\0\0\0\0\0\0\0\0",
                    "HYL",
                ][self.rng.usize(..5)];
                exact(vec!["SET".into(), format!("{}s", self.tag), v.into()])
            }
            23 => exact(vec!["APPEND".into(), k, "\u{1}".into()]),
            24 => exact(vec!["RPUSH".into(), format!("{}l", self.tag), "x".into()]),
            25 => exact(vec!["DEL".into(), k]),
            26 => exact(vec!["STRLEN".into(), k]),
            27 => {
                let v = ["3000", "40", "200", "0", "-1"][self.rng.usize(..5)];
                exact(vec![
                    "CONFIG".into(),
                    "SET".into(),
                    "hll-sparse-max-bytes".into(),
                    v.into(),
                ])
            }
            28 => exact(vec!["EXPIRE".into(), k, "1000".into()]),
            _ => exact(vec!["TTL".into(), k]),
        }
    }
}
