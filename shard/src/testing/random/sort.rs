//! Random SORT / SORT_RO commands for the differential tests.

use super::super::Step;

/// The commands the generator is about (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &["sort", "sort_ro"];

/// The key names the generator uses (before the tag): a list `l`, a set `s`, a sorted set
/// `z`, a string `x`, the STORE destination `d`; weights are `w_<element>` strings and
/// `h_<element>` hashes.
pub const KEYS: &[&str] = &["l", "s", "z", "x", "d"];

/// The next random SORT command, on the keys `KEYS` with `tag` before each.
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

/// Random arguments, biased towards corner cases: numeric and word elements (numeric sorts
/// of words fail), weights that are missing, equal, not numbers or hash fields, every LIMIT
/// form, GET `#` and missing keys, BY a constant (no sorting), STORE over any type.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

const ELEMENTS: &[&str] = &[
    "1", "2", "3", "10", "-3", "2.5", "1e3", "07", "20", "11", "5", "8", "apple", "b", "c10", "B",
];

impl Gen<'_> {
    fn pick<'s>(&mut self, xs: &[&'s str]) -> &'s str {
        xs[self.rng.usize(..xs.len())]
    }

    /// Mostly numbers (numeric sorts succeed), now and then a word.
    fn element(&mut self, words: bool) -> &'static str {
        if words {
            self.pick(ELEMENTS)
        } else {
            self.pick(&ELEMENTS[..12])
        }
    }

    fn k(&self, name: &str) -> String {
        format!("{}{name}", self.tag)
    }

    fn command(&mut self) -> Step {
        let exact = Step::exact;
        let words = self.rng.u8(..6) == 0;
        match self.rng.u8(..30) {
            0..=2 => {
                let mut c = vec!["RPUSH".into(), self.k("l")];
                for _ in 0..self.rng.usize(1..5) {
                    c.push(self.element(words).into());
                }
                exact(c)
            }
            3 | 4 => {
                let mut c = vec!["SADD".into(), self.k("s")];
                for _ in 0..self.rng.usize(1..5) {
                    c.push(self.element(words).into());
                }
                exact(c)
            }
            5 | 6 => {
                let score = self.pick(&["1", "2", "0", "-1", "5"]);
                exact(vec![
                    "ZADD".into(),
                    self.k("z"),
                    score.into(),
                    self.element(words).into(),
                ])
            }
            7..=9 => {
                let e = self.element(true);
                let v = self.pick(&["1", "2", "30", "-4", "2.5", "x", "", " 7", "inf", "1e30"]);
                exact(vec!["SET".into(), self.k(&format!("w_{e}")), v.into()])
            }
            10 => {
                let e = self.element(true);
                let v = self.pick(&["1", "9", "-2", "zz", "aa"]);
                exact(vec![
                    "HSET".into(),
                    self.k(&format!("h_{e}")),
                    "f".into(),
                    v.into(),
                ])
            }
            11 => exact(vec!["LRANGE".into(), self.k("d"), "0".into(), "-1".into()]),
            12 => {
                let name = self.pick(&["l", "s", "z", "d"]);
                exact(vec!["DEL".into(), self.k(name)])
            }
            13 => exact(vec!["SET".into(), self.k("x"), "v".into()]),
            14 => exact(vec!["TYPE".into(), self.k("d")]),
            _ => self.sort(),
        }
    }

    fn sort(&mut self) -> Step {
        let ro = self.rng.u8(..4) == 0;
        let name = self.pick(&["l", "l", "s", "z", "z", "x", "missing"]);
        let key = self.k(name);
        let mut c = vec![if ro { "SORT_RO" } else { "SORT" }.to_string(), key];
        let (mut by, mut alpha, mut limit, mut store) = (None, false, false, false);
        let tag = self.tag.to_string();
        let mut opts: Vec<Vec<String>> = Vec::new();
        if self.rng.u8(..3) == 0 {
            let p = self.pick(&["w_*", "h_*->f", "nosort", "nope_*", "h_*->", "w_*"]);
            by = Some(p);
            opts.push(vec!["BY".into(), format!("{tag}{p}")]);
        }
        if self.rng.u8(..3) == 0 {
            limit = true;
            let o = self.pick(&["0", "1", "3", "-1", "100", "x"]);
            let n = self.pick(&["0", "1", "2", "5", "-1", "-5"]);
            opts.push(vec!["LIMIT".into(), o.into(), n.into()]);
        }
        for _ in 0..self.rng.usize(0..3) {
            let p = self.pick(&["#", "w_*", "h_*->f", "nostar"]);
            let p = if p == "#" {
                "#".into()
            } else {
                format!("{tag}{p}")
            };
            opts.push(vec!["GET".into(), p]);
        }
        if self.rng.bool() {
            opts.push(vec![self.pick(&["ASC", "DESC", "desc"]).into()]);
        }
        if self.rng.u8(..3) == 0 {
            alpha = true;
            opts.push(vec!["ALPHA".into()]);
        }
        if !ro && self.rng.u8(..4) == 0 {
            store = true;
            opts.push(vec!["STORE".into(), self.k("d")]);
        }
        if self.rng.u8(..40) == 0 {
            opts.push(vec!["BOGUS".into()]);
        }
        self.rng.shuffle(&mut opts);
        c.extend(opts.into_iter().flatten());
        // Where Redis's order is its own hash table's (a set's members unsorted; ties of
        // ALPHA BY among a set's or a sorted set's elements), compare as multisets, and take
        // no LIMIT or STORE of it.
        let own_order = (name == "s" && by == Some("nosort") && !store)
            || (alpha && by.is_some_and(|p| p != "nosort") && (name == "s" || name == "z"));
        if own_order {
            if limit || store {
                return Step::exact(vec!["TYPE".into(), self.k(name)]);
            }
            return Step::unordered(c);
        }
        Step::exact(c)
    }
}
