//! Random geo commands for the differential tests.

use super::super::Step;

/// The geo commands the generator sends (their `COMMAND INFO` is compared too).
pub const COMMANDS: &[&str] = &[
    "geoadd",
    "geodist",
    "geohash",
    "geopos",
    "georadius",
    "georadius_ro",
    "georadiusbymember",
    "georadiusbymember_ro",
    "geosearch",
    "geosearchstore",
];

/// The key names the generator uses (before the tag): `a` and `b` are geo sets (`b` grows
/// past the small encoding), `z` a sorted set with scores no GEOADD writes, `s` now and then a
/// string, `d` a STORE destination.
pub const KEYS: &[&str] = &["a", "b", "z", "s", "d"];

/// The next random geo command, on the keys `KEYS` with `tag` before each.
pub fn step(rng: &mut fastrand::Rng, tag: &str) -> Step {
    Gen { rng, tag }.command()
}

/// Places members cluster around (so searches find some), near the poles' limits and the
/// antimeridian (where cells wrap and the step estimate changes).
const CENTRES: &[(f64, f64)] = &[
    (13.361389, 38.115556),
    (-73.985, 40.758),
    (0.0, 0.0),
    (179.5, 84.5),
    (-179.8, -84.9),
    (2.35, 48.85),
];

/// Random arguments, biased towards what finds corner cases: few members (updates hit), a
/// few centres with members scattered around each, every unit, radii from 0 to thousands of
/// kilometres, every option order, invalid coordinates, radii and units, and values of the
/// wrong type.
struct Gen<'a> {
    rng: &'a mut fastrand::Rng,
    tag: &'a str,
}

impl Gen<'_> {
    fn key(&mut self) -> String {
        let name = ["a", "b", "a", "b", "a", "b", "z", "s"][self.rng.usize(..8)];
        format!("{}{name}", self.tag)
    }

    fn member(&mut self) -> String {
        format!("m{}", self.rng.usize(..24))
    }

    fn pick<'s>(&mut self, xs: &[&'s str]) -> &'s str {
        xs[self.rng.usize(..xs.len())]
    }

    /// A position near one of the centres (6 decimals, as clients send), rarely off the map.
    fn lon_lat(&mut self) -> (String, String) {
        if self.rng.u8(..40) == 0 {
            let bad = [
                ("181", "0"),
                ("0", "85.06"),
                ("-180.0000001", "10"),
                ("x", "1"),
                ("1", ""),
                ("inf", "0"),
                ("180", "85.05112878"),
                ("-180", "-85.05112878"),
            ];
            let (a, b) = bad[self.rng.usize(..bad.len())];
            return (a.into(), b.into());
        }
        let (lon, lat) = CENTRES[self.rng.usize(..CENTRES.len())];
        let spread = [0.01, 0.5, 3.0][self.rng.usize(..3)];
        let lon = (lon + (self.rng.f64() * 2.0 - 1.0) * spread).clamp(-180.0, 180.0);
        let lat = (lat + (self.rng.f64() * 2.0 - 1.0) * spread).clamp(-85.05, 85.05);
        (format!("{lon:.6}"), format!("{lat:.6}"))
    }

    fn unit(&mut self) -> String {
        self.pick(&["m", "km", "KM", "mi", "ft", "m", "km", "yd"])
            .into()
    }

    /// A radius in the unit about to be picked; mostly tens of kilometres.
    fn radius(&mut self) -> String {
        match self.rng.u8(..20) {
            0 => "0".into(),
            1 => "-1".into(),
            2 => "abc".into(),
            3 => "5000000".into(),
            4 => "1".into(),
            _ => format!("{}", self.rng.u32(1..400_000)),
        }
    }

    /// Options of a search: `store` allows STORE/STOREDIST (GEORADIUS forms), `stored` the
    /// lone STOREDIST (GEOSEARCHSTORE), `with` the WITH* options.
    fn options(&mut self, c: &mut Vec<String>, store: bool, stored: bool, with: bool) {
        for _ in 0..self.rng.usize(0..4) {
            match self.rng.u8(..12) {
                0 if with => c.push("WITHDIST".into()),
                1 if with => c.push("WITHCOORD".into()),
                2 if with => c.push("WITHHASH".into()),
                3 => c.push(self.pick(&["ASC", "DESC", "asc"]).into()),
                4 | 5 => {
                    c.push("COUNT".into());
                    c.push(self.pick(&["1", "3", "10", "0", "-2", "x"]).into());
                    if self.rng.u8(..3) == 0 {
                        c.push("ANY".into());
                    }
                }
                6 if store => {
                    c.push(self.pick(&["STORE", "STOREDIST"]).into());
                    c.push(format!("{}d", self.tag));
                }
                7 if stored => c.push("STOREDIST".into()),
                8 if self.rng.u8(..8) == 0 => c.push("ANY".into()),
                9 if self.rng.u8(..8) == 0 => c.push("BOGUS".into()),
                _ => {}
            }
        }
    }

    /// FROMMEMBER / FROMLONLAT and BYRADIUS / BYBOX, in either order, rarely missing or
    /// doubled.
    fn origin_and_area(&mut self, c: &mut Vec<String>) {
        let mut from = if self.rng.bool() {
            vec!["FROMMEMBER".to_string(), self.member()]
        } else {
            let (lon, lat) = self.lon_lat();
            vec!["FROMLONLAT".to_string(), lon, lat]
        };
        let mut by = if self.rng.bool() {
            vec!["BYRADIUS".to_string(), self.radius(), self.unit()]
        } else {
            let w = format!("{}", self.rng.u32(0..600_000));
            let h = format!("{}", self.rng.u32(0..600_000));
            let (w, h) = match self.rng.u8(..30) {
                0 => ("-3".to_string(), h),
                1 => (w, "x".to_string()),
                _ => (w, h),
            };
            vec!["BYBOX".to_string(), w, h, self.unit()]
        };
        match self.rng.u8(..30) {
            0 => from.clear(),
            1 => by.clear(),
            2 => from.extend(from.clone()),
            _ => {}
        }
        if self.rng.bool() {
            c.extend(from);
            c.extend(by);
        } else {
            c.extend(by);
            c.extend(from);
        }
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let exact = Step::exact;
        match self.rng.u8(..40) {
            0..=9 => {
                let mut c = vec!["GEOADD".into(), k];
                for _ in 0..self.rng.usize(0..3) {
                    c.push(self.pick(&["NX", "XX", "CH", "ch"]).into());
                }
                for _ in 0..self.rng.usize(1..6) {
                    let (lon, lat) = self.lon_lat();
                    c.extend([lon, lat, self.member()]);
                }
                if self.rng.u8(..30) == 0 {
                    c.pop();
                }
                exact(c)
            }
            10..=11 => {
                let mut c = vec!["GEODIST".into(), k, self.member(), self.member()];
                match self.rng.u8(..4) {
                    0 => {}
                    1 => c.extend([self.unit(), "extra".into()]),
                    _ => c.push(self.unit()),
                }
                exact(c)
            }
            12 => {
                let mut c = vec!["GEOHASH".into(), k];
                for _ in 0..self.rng.usize(0..4) {
                    c.push(self.member());
                }
                exact(c)
            }
            13 => {
                let mut c = vec!["GEOPOS".into(), k];
                for _ in 0..self.rng.usize(0..4) {
                    c.push(self.member());
                }
                exact(c)
            }
            14..=17 => {
                let ro = self.rng.u8(..3) == 0;
                let name = if ro { "GEORADIUS_RO" } else { "GEORADIUS" };
                let (lon, lat) = self.lon_lat();
                let mut c = vec![name.into(), k, lon, lat, self.radius(), self.unit()];
                let store = !ro && self.rng.u8(..3) == 0;
                let with = !store || self.rng.u8(..8) == 0;
                self.options(&mut c, true, false, with);
                exact(c)
            }
            18..=20 => {
                let ro = self.rng.u8(..3) == 0;
                let name = if ro {
                    "GEORADIUSBYMEMBER_RO"
                } else {
                    "GEORADIUSBYMEMBER"
                };
                let mut c = vec![name.into(), k, self.member(), self.radius(), self.unit()];
                let store = !ro && self.rng.u8(..3) == 0;
                let with = !store || self.rng.u8(..8) == 0;
                self.options(&mut c, true, false, with);
                exact(c)
            }
            21..=26 => {
                let mut c = vec!["GEOSEARCH".into(), k];
                self.origin_and_area(&mut c);
                self.options(&mut c, false, false, true);
                exact(c)
            }
            27..=29 => {
                let mut c = vec!["GEOSEARCHSTORE".into(), format!("{}d", self.tag), k];
                self.origin_and_area(&mut c);
                let with = self.rng.u8(..8) == 0;
                self.options(&mut c, false, true, with);
                exact(c)
            }
            30 | 31 => exact(vec![
                "ZRANGE".into(),
                format!("{}d", self.tag),
                "0".into(),
                "-1".into(),
                "WITHSCORES".into(),
            ]),
            32 => {
                // Scores no GEOADD writes: out of range, negative, fractional.
                let score = self.pick(&["-1", "1e17", "3.5", "4503599627370495", "0", "inf"]);
                exact(vec![
                    "ZADD".into(),
                    format!("{}z", self.tag),
                    score.into(),
                    self.member(),
                ])
            }
            33 => exact(vec!["ZREM".into(), k, self.member()]),
            34 => exact(vec!["DEL".into(), k]),
            35 => exact(vec!["SET".into(), format!("{}s", self.tag), "x".into()]),
            36 => {
                let to = self.pick(&["a", "b", "z"]);
                exact(vec!["RENAME".into(), k, format!("{}{to}", self.tag)])
            }
            37 => exact(vec!["EXPIRE".into(), k, "1000".into()]),
            38 => exact(vec!["ZCARD".into(), k]),
            _ => exact(vec!["TYPE".into(), format!("{}d", self.tag)]),
        }
    }
}
