//! Geo commands (Redis's `geo.c`): a geo set is a sorted set whose scores are 52-bit
//! geohashes ([`crate::value::geohash`]). GEOADD is ZADD with computed scores; the searches
//! (GEORADIUS, GEORADIUSBYMEMBER, their `_RO` forms, GEOSEARCH, GEOSEARCHSTORE) scan the 9
//! cells Redis scans, in its order, keep what is inside the shape, then sort by distance
//! (stably, as glibc's `qsort` does), with Redis's argument checks in Redis's order.

use std::cmp::Ordering;

use bytes::Bytes;
use membership::command::CommandId;
use membership::double::parse as double;

use super::args::{eq, strict_i64};
use super::session::Session;
use super::zset;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::value::ZSetValue;
use crate::value::geohash::{self, Shape, ShapeKind};
use crate::value::zset::Small;

/// A longitude, latitude pair (`extractLongLatOrReply`).
fn lon_lat(a: &Args, at: usize) -> Result<(f64, f64), CmdError> {
    let lon = coordinate(a.get(at)).ok_or(CmdError::NotFloat)?;
    let lat = coordinate(a.get(at + 1)).ok_or(CmdError::NotFloat)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(CmdError::err(format!(
            "invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Meters per unit (`extractUnitOrReply`).
fn unit(b: &[u8]) -> Result<f64, CmdError> {
    Ok(if eq(b, "m") {
        1.0
    } else if eq(b, "km") {
        1000.0
    } else if eq(b, "ft") {
        0.3048
    } else if eq(b, "mi") {
        1609.34
    } else {
        return Err(CmdError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        ));
    })
}

/// `radius unit` (`extractDistanceOrReply`): the radius and meters per unit.
fn radius(a: &Args, at: usize) -> Result<(f64, f64), CmdError> {
    let r = double(a.get(at)).ok_or_else(|| CmdError::err("need numeric radius"))?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((r, unit(a.get(at + 1))?))
}

/// `width height unit` (`extractBoxOrReply`).
fn dimensions(a: &Args, at: usize) -> Result<(f64, f64, f64), CmdError> {
    let w = double(a.get(at)).ok_or_else(|| CmdError::err("need numeric width"))?;
    let h = double(a.get(at + 1)).ok_or_else(|| CmdError::err("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    Ok((w, h, unit(a.get(at + 2))?))
}

/// A member's position, if the set has it.
fn position(z: &ZSetValue, member: &[u8]) -> Option<(f64, f64)> {
    z.score(member).map(geohash::decode)
}

/// GEOADD key [NX|XX] [CH] longitude latitude member ...: ZADD with the members' geohashes
/// as scores.
pub fn geoadd(s: &mut Session, a: &Args) -> CmdResult {
    let (mut xx, mut nx) = (false, false);
    let mut first = 2;
    while first < a.len() {
        let o = a.get(first);
        if eq(o, "nx") {
            nx = true;
        } else if eq(o, "xx") {
            xx = true;
        } else if !eq(o, "ch") {
            break;
        }
        first += 1;
    }
    if !(a.len() - first).is_multiple_of(3) || (xx && nx) {
        return Err(CmdError::Syntax);
    }
    let ch = (2..first).any(|i| eq(a.get(i), "ch"));
    let mut pairs = Vec::with_capacity((a.len() - first) / 3);
    for i in (first..a.len()).step_by(3) {
        let (lon, lat) = lon_lat(a, i)?;
        pairs.push((geohash::score(lon, lat), a.bytes(i + 2)));
    }
    zset::geoadd_pairs(s, a.get(1), (nx, xx, ch), pairs)
}

/// A coordinate: plain decimals (what clients send) parsed directly, correctly rounded as
/// `strtod` does; anything else through the general parser.
fn coordinate(b: &[u8]) -> Option<f64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let plain = !digits.is_empty()
        && digits.len() < 32
        && digits.first().is_some_and(u8::is_ascii_digit)
        && digits.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && digits.iter().filter(|c| **c == b'.').count() <= 1;
    if plain {
        std::str::from_utf8(b).ok()?.parse().ok()
    } else {
        double(b)
    }
}

/// The members GEOADD names (after its options), for the keyspace events.
pub fn geoadd_members(a: &Args) -> Vec<Bytes> {
    let first = (2..a.len())
        .find(|&i| !["nx", "xx", "ch"].iter().any(|o| eq(a.get(i), o)))
        .unwrap_or(a.len());
    (first + 2..a.len())
        .step_by(3)
        .map(|i| a.bytes(i))
        .collect()
}

/// GEODIST key member1 member2 [unit].
pub fn geodist(s: &mut Session, a: &Args) -> CmdResult {
    let to_meter = match a.len() {
        5 => unit(a.get(4))?,
        n if n > 5 => return Err(CmdError::Syntax),
        _ => 1.0,
    };
    let (m1, m2) = (a.get(2), a.get(3));
    let d = zset::read(s, a.get(1), |z| match (position(z, m1), position(z, m2)) {
        (Some(p1), Some(p2)) => Some(geohash::distance(p1.0, p1.1, p2.0, p2.1)),
        _ => None,
    })?
    .flatten();
    Ok(d.map_or(Reply::Nil, |d| distance_reply(d / to_meter)))
}

fn distance_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(geohash::format_distance(d)))
}

/// GEOHASH key member ...
pub fn geohash_cmd(s: &mut Session, a: &Args) -> CmdResult {
    let members = a.slice(2);
    let found = zset::read(s, a.get(1), |z| {
        members
            .iter()
            .map(|m| z.score(m).map(geohash::geohash_string))
            .collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| vec![None; members.len()]);
    Ok(Reply::Array(
        found
            .into_iter()
            .map(|h| h.map_or(Reply::Nil, |h| Reply::Bulk(Bytes::copy_from_slice(&h))))
            .collect(),
    ))
}

/// GEOPOS key member ...
pub fn geopos(s: &mut Session, a: &Args) -> CmdResult {
    let members = a.slice(2);
    let found = zset::read(s, a.get(1), |z| {
        members.iter().map(|m| position(z, m)).collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| vec![None; members.len()]);
    Ok(Reply::Array(
        found
            .into_iter()
            .map(|p| {
                p.map_or(Reply::NilArray, |(lon, lat)| {
                    Reply::Array(vec![Reply::Human(lon), Reply::Human(lat)])
                })
            })
            .collect(),
    ))
}

/// Which search command runs (Redis's `georadiusGeneric` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GEORADIUS(_RO): around coordinates.
    Coords,
    /// GEORADIUSBYMEMBER(_RO): around a member.
    Member,
    Search,
    SearchStore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// One point found.
struct Point {
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
    member: Bytes,
}

/// A search's outcome before it is replied or stored.
struct Found {
    points: Vec<Point>,
    /// Meters per unit of the shape.
    conversion: f64,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    /// The key to store into, and whether distances (rather than geohashes) are stored.
    store: Option<(Bytes, bool)>,
    /// The source key was missing.
    missing: bool,
}

/// The whole of `georadiusGeneric` up to the reply: `z` is the source set (`None`: absent).
fn search(z: Option<&ZSetValue>, a: &Args, kind: Kind, nostore: bool) -> Result<Found, CmdError> {
    let mut store: Option<Bytes> = None;
    let mut storedist = false;
    let mut center = (0.0, 0.0);
    let mut shape_kind = ShapeKind::Radius(0.0);
    let mut conversion = 0.0;
    let base = match kind {
        Kind::Coords => {
            center = lon_lat(a, 2)?;
            let (r, c) = radius(a, 4)?;
            (shape_kind, conversion) = (ShapeKind::Radius(r), c);
            6
        }
        Kind::Member => {
            if let Some(z) = z {
                center = position(z, a.get(2))
                    .ok_or_else(|| CmdError::err("could not decode requested zset member"))?;
                let (r, c) = radius(a, 3)?;
                (shape_kind, conversion) = (ShapeKind::Radius(r), c);
            }
            5
        }
        Kind::Search => 2,
        Kind::SearchStore => {
            store = Some(a.bytes(1));
            3
        }
    };
    let searching = matches!(kind, Kind::Search | Kind::SearchStore);
    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let remaining = a.len().saturating_sub(base);
    let mut i = 0;
    while i < remaining {
        let arg = a.get(base + i);
        let at = base + i + 1;
        if eq(arg, "withdist") {
            withdist = true;
        } else if eq(arg, "withhash") {
            withhash = true;
        } else if eq(arg, "withcoord") {
            withcoord = true;
        } else if eq(arg, "any") {
            any = true;
        } else if eq(arg, "asc") {
            sort = Sort::Asc;
        } else if eq(arg, "desc") {
            sort = Sort::Desc;
        } else if eq(arg, "count") && i + 1 < remaining {
            count = strict_i64(a.get(at)).ok_or(CmdError::NotInteger)?;
            if count <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            i += 1;
        } else if (eq(arg, "store") || eq(arg, "storedist"))
            && i + 1 < remaining
            && !nostore
            && !searching
        {
            store = Some(a.bytes(at));
            storedist = eq(arg, "storedist");
            i += 1;
        } else if eq(arg, "storedist") && kind == Kind::SearchStore {
            storedist = true;
        } else if eq(arg, "frommember") && i + 1 < remaining && searching && !fromloc {
            if let Some(z) = z {
                center = position(z, a.get(at))
                    .ok_or_else(|| CmdError::err("could not decode requested zset member"))?;
            }
            frommember = true;
            i += 1;
        } else if eq(arg, "fromlonlat") && i + 2 < remaining && searching && !frommember {
            center = lon_lat(a, at)?;
            fromloc = true;
            i += 2;
        } else if eq(arg, "byradius") && i + 2 < remaining && searching && !bybox {
            let (r, c) = radius(a, at)?;
            (shape_kind, conversion) = (ShapeKind::Radius(r), c);
            byradius = true;
            i += 2;
        } else if eq(arg, "bybox") && i + 3 < remaining && searching && !byradius {
            let (width, height, c) = dimensions(a, at)?;
            (shape_kind, conversion) = (ShapeKind::Box { width, height }, c);
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        let who = if kind == Kind::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CmdError::err(format!(
            "{who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = || String::from_utf8_lossy(a.get(0)).into_owned();
    if searching && !(frommember || fromloc) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        )));
    }
    if searching && !(byradius || bybox) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {}",
            name()
        )));
    }
    if any && count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    let mut found = Found {
        points: Vec::new(),
        conversion,
        withdist,
        withhash,
        withcoord,
        store: store.map(|k| (k, storedist)),
        missing: z.is_none(),
    };
    let Some(z) = z else {
        return Ok(found);
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape {
        lon: center.0,
        lat: center.1,
        conversion,
        kind: shape_kind,
    };
    let limit = if any { count as usize } else { 0 };
    collect(z, &shape, limit, &mut found.points);
    // `sort_gp_asc`: greater, equal, else less.
    let asc = |x: &Point, y: &Point| {
        if x.dist > y.dist {
            Ordering::Greater
        } else if x.dist == y.dist {
            Ordering::Equal
        } else {
            Ordering::Less
        }
    };
    let returned = match usize::try_from(count) {
        Ok(c) if c > 0 && c < found.points.len() => c,
        _ => found.points.len(),
    };
    if sort != Sort::None {
        let desc = sort == Sort::Desc;
        let cmp = |x: &Point, y: &Point| {
            let c = asc(x, y);
            if desc { c.reverse() } else { c }
        };
        // Redis: glibc's qsort (a stable merge sort) for the whole result, its partial
        // quicksort when COUNT keeps fewer.
        if returned == found.points.len() {
            found.points.sort_by(cmp);
        } else {
            super::pqsort::pqsort(&mut found.points, cmp, 0, returned as i64 - 1);
        }
    }
    if count > 0 && found.points.len() > count as usize {
        found.points.truncate(count as usize);
    }
    Ok(found)
}

/// `membersOfAllNeighbors`: the points of the 9 cells inside the shape, cell by cell in
/// score order, stopping at `limit` (0: none). A cell equal to the last one scanned is
/// skipped (Redis's check, which never compares with the centre cell).
fn collect(z: &ZSetValue, shape: &Shape, limit: usize, out: &mut Vec<Point>) {
    let cells = shape.boxes();
    let mut last = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        if geohash::is_skipped(*cell) {
            continue;
        }
        if last != 0 && cells[last] == *cell {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        let (min, max) = geohash::box_scores(*cell);
        let from = z.partition_point(|e| e.score < min);
        for e in z.iter_from(from) {
            if e.score >= max {
                break;
            }
            let (lon, lat) = geohash::decode(e.score);
            if let Some(dist) = shape.distance_if_within(lon, lat) {
                out.push(Point {
                    lon,
                    lat,
                    dist,
                    score: e.score,
                    member: Bytes::copy_from_slice(e.member),
                });
            }
            if !out.is_empty() && limit != 0 && out.len() >= limit {
                break;
            }
        }
        last = i;
    }
}

/// The reply to a search without STORE.
fn reply(f: Found) -> Reply {
    let options = usize::from(f.withdist) + usize::from(f.withhash) + usize::from(f.withcoord);
    Reply::Array(
        f.points
            .into_iter()
            .map(|p| {
                if options == 0 {
                    return Reply::Bulk(p.member);
                }
                let mut item = Vec::with_capacity(options + 1);
                item.push(Reply::Bulk(p.member));
                if f.withdist {
                    item.push(distance_reply(p.dist / f.conversion));
                }
                if f.withhash {
                    item.push(Reply::Int(p.score as i64));
                }
                if f.withcoord {
                    item.push(Reply::Array(vec![Reply::Human(p.lon), Reply::Human(p.lat)]));
                }
                Reply::Array(item)
            })
            .collect(),
    )
}

/// The STORE (or STOREDIST) destination as Redis's option loop ends up with it, found
/// before the keys are locked; `None` for the read-only forms.
fn store_key(a: &Args, kind: Kind, nostore: bool) -> Option<Bytes> {
    let base = match kind {
        Kind::SearchStore => return Some(a.bytes(1)),
        Kind::Search => return None,
        _ if nostore => return None,
        Kind::Coords => 6,
        Kind::Member => 5,
    };
    let remaining = a.len().saturating_sub(base);
    let (mut i, mut key) = (0, None);
    while i < remaining {
        let arg = a.get(base + i);
        if (eq(arg, "store") || eq(arg, "storedist")) && i + 1 < remaining {
            key = Some(a.bytes(base + i + 1));
            i += 1;
        } else if eq(arg, "count") && i + 1 < remaining {
            i += 1;
        }
        i += 1;
    }
    key
}

/// GEORADIUS, GEORADIUSBYMEMBER, their `_RO` forms, GEOSEARCH and GEOSEARCHSTORE.
pub fn search_cmd(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    use CommandId::*;
    let (kind, nostore) = match id {
        Georadius => (Kind::Coords, false),
        GeoradiusRo => (Kind::Coords, true),
        Georadiusbymember => (Kind::Member, false),
        GeoradiusbymemberRo => (Kind::Member, true),
        Geosearchstore => (Kind::SearchStore, false),
        _ => (Kind::Search, true),
    };
    let src_at = if kind == Kind::SearchStore { 2 } else { 1 };
    let src = a.get(src_at);
    let Some(dst) = store_key(a, kind, nostore) else {
        let found = match zset::read(s, src, |z| search(Some(z), a, kind, nostore))? {
            Some(r) => r?,
            None => search(None, a, kind, nostore)?,
        };
        return Ok(if found.store.is_some() {
            // Not reached: a destination is always found before.
            Reply::Int(0)
        } else {
            reply(found)
        });
    };
    let now = s.now;
    let small = Small::of(&s.shared.db.encodings.get());
    let mut g = s.shared.db.lock_keys([&dst[..], src].into_iter());
    let found = {
        let z = super::zset_multi::peek_zset(g.table(src), src, now)?;
        search(z, a, kind, nostore)?
    };
    let Some((key, storedist)) = found.store.clone() else {
        return Ok(reply(found));
    };
    if key != dst {
        return Err(CmdError::err(
            "internal error: STORE key moved while parsing",
        ));
    }
    if found.missing {
        g.table(&key).remove(&key);
        return Ok(Reply::Int(0));
    }
    let items: Vec<(Bytes, f64)> = found
        .points
        .into_iter()
        .map(|p| {
            let v = if storedist {
                p.dist / found.conversion
            } else {
                p.score
            };
            (p.member, v)
        })
        .collect();
    Ok(super::zset_multi::store(
        g.table(&key),
        &key,
        &items,
        now,
        small,
    ))
}
