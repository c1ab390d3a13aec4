//! SORT and SORT_RO (Redis's `sort.c`): the elements of a list, set or sorted set, sorted as
//! numbers or (ALPHA) as strings, by themselves or by the values of other keys (`BY
//! weight_*`, `BY h_*->field`), with LIMIT, DESC, `GET` patterns (`#`: the element) and
//! STORE into a list.
//!
//! The elements are copied out of the sorted key first; pattern keys are then read one at a
//! time (each under its own slot's lock), and the destination written last, so no two slot
//! locks are ever held together. In cluster mode a BY or GET pattern must name keys of the
//! sorted key's slot (Redis 7.2's rule: its hash tag, or the whole pattern when it has no
//! wildcard); ALPHA compares bytes, as Redis does under the C locale.

use std::cmp::Ordering;

use bytes::Bytes;
use membership::Slot;

use super::args::{eq, strict_i64};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Entry, Value};
use crate::value::ListValue;

/// One element to sort, with what it is compared by.
struct Item {
    obj: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

/// The slot a pattern's keys all fall in, if one (`patternHashSlot`).
fn pattern_slot(p: &[u8]) -> Option<Slot> {
    let mut open: Option<usize> = None;
    let mut braces = true;
    for (i, &c) in p.iter().enumerate() {
        match c {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if open.is_none() && braces => open = Some(i),
            b'}' if braces => {
                if let Some(s) = open {
                    if i == s + 1 {
                        braces = false;
                    } else {
                        return Some(Slot::for_key(&p[s..=i]));
                    }
                }
            }
            _ => {}
        }
    }
    Some(Slot::for_key(p))
}

/// `lookupKeyByPattern`: the value a pattern names for element `subst`, `None` when there is
/// none (or the key holds the wrong type).
fn by_pattern(s: &mut Session, pattern: &[u8], subst: &[u8]) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(Bytes::copy_from_slice(subst));
    }
    // C strings: the pattern ends at its first NUL.
    let pattern = pattern.split(|&c| c == 0).next().unwrap_or(&[]);
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&f| f + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(f) => (&after[..f], Some(&after[f + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(postfix);
    let now = s.now;
    if super::warm::load_key_now(s, &key).is_err() {
        return None;
    }
    let found = match s.shared.db.for_key(&key).lookup(&key, now) {
        Some(Entry {
            value: Value::Str(b),
            ..
        }) if field.is_none() => Some(b.clone()),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => field.and_then(|f| h.get(f).map(Bytes::copy_from_slice)),
        _ => None,
    };
    s.hit(found.is_some());
    found
}

/// Redis's numeric reading of a weight: `strtod` (leading spaces skipped, an empty string
/// is 0) over the whole C string; `None` when something follows, it overflows or is NaN.
fn weight(b: &[u8]) -> Option<f64> {
    let b = b.split(|&c| c == 0).next().unwrap_or(&[]);
    let start = b
        .iter()
        .position(|c| !(c.is_ascii_whitespace() || *c == 0x0b))
        .unwrap_or(b.len());
    let b = &b[start..];
    if b.is_empty() {
        return Some(0.0);
    }
    match membership::double::strtod(b)? {
        (v, false) if !v.is_nan() => Some(v),
        _ => None,
    }
}

/// `strcoll` in the C locale: bytes up to the first NUL.
fn collate(a: &[u8], b: &[u8]) -> Ordering {
    let c = |x: &[u8]| -> usize { x.iter().position(|&c| c == 0).unwrap_or(x.len()) };
    a[..c(a)].cmp(&b[..c(b)])
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination], and SORT_RO (no STORE).
pub fn sort(s: &mut Session, a: &Args, readonly: bool) -> CmdResult {
    let key = a.get(1);
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count): (i64, i64) = (0, -1);
    let mut sortby: Option<Bytes> = None;
    let mut store: Option<Bytes> = None;
    let mut gets: Vec<Bytes> = Vec::new();
    let cluster = s.shared.cluster.get().is_some();
    let same_slot = |p: &[u8]| pattern_slot(p) == Some(Slot::for_key(key));
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let o = a.get(j);
        if eq(o, "asc") {
            desc = false;
        } else if eq(o, "desc") {
            desc = true;
        } else if eq(o, "alpha") {
            alpha = true;
        } else if eq(o, "limit") && left >= 2 {
            limit_start = strict_i64(a.get(j + 1)).ok_or(CmdError::NotInteger)?;
            limit_count = strict_i64(a.get(j + 2)).ok_or(CmdError::NotInteger)?;
            j += 2;
        } else if !readonly && eq(o, "store") && left >= 1 {
            store = Some(a.bytes(j + 1));
            j += 1;
        } else if eq(o, "by") && left >= 1 {
            let p = a.bytes(j + 1);
            if !p.contains(&b'*') {
                dontsort = true;
            } else if cluster && !same_slot(&p) {
                return Err(CmdError::err(
                    "BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.",
                ));
            }
            sortby = Some(p);
            j += 1;
        } else if eq(o, "get") && left >= 1 {
            let p = a.bytes(j + 1);
            if cluster && !same_slot(&p) {
                return Err(CmdError::err(
                    "GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.",
                ));
            }
            gets.push(p);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }

    // What the sorted key holds: its type, then its elements (a range of them when nothing
    // is sorted and the type has an order).
    #[derive(PartialEq)]
    enum Kind {
        List,
        Set,
        ZSet,
    }
    let now = s.now;
    let (kind, len) = match s.shared.db.for_key(key).lookup(key, now) {
        None => (Kind::List, 0),
        Some(e) => match &e.value {
            Value::List(l) => (Kind::List, l.len()),
            Value::Set(x) => (Kind::Set, x.len()),
            Value::ZSet(z) => (Kind::ZSet, z.len()),
            _ => return Err(CmdError::WrongType),
        },
    };
    if dontsort && kind == Kind::Set && store.is_some() {
        // A set's own order is not deterministic: sort it when storing (Redis also does
        // for scripts).
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    let vlen = len as i64;
    let mut start = limit_start.max(0).min(vlen);
    let limit_count = limit_count.max(-1).min(vlen);
    let mut end = if limit_count < 0 {
        vlen - 1
    } else {
        start + limit_count - 1
    };
    if start >= vlen {
        start = vlen - 1;
        end = vlen - 2;
    }
    if end >= vlen {
        end = vlen - 1;
    }
    let ranged = kind != Kind::Set && dontsort;
    let objs: Vec<Bytes> = {
        let mut t = s.shared.db.for_key(key);
        match t.lookup(key, now).map(|e| &e.value) {
            Some(Value::List(l)) if ranged => {
                if end >= start && len > 0 {
                    let (from, to) = (start as usize, end as usize);
                    if desc {
                        (len - 1 - to..=len - 1 - from)
                            .rev()
                            .filter_map(|i| l.get(i).map(Bytes::copy_from_slice))
                            .collect()
                    } else {
                        l.range(from..=to).map(Bytes::copy_from_slice).collect()
                    }
                } else {
                    Vec::new()
                }
            }
            Some(Value::List(l)) => l.iter().map(Bytes::copy_from_slice).collect(),
            Some(Value::Set(x)) => x.members(),
            Some(Value::ZSet(z)) if ranged => {
                if end >= start && len > 0 {
                    let (from, to) = (start as usize, end as usize);
                    if desc {
                        (len - 1 - to..=len - 1 - from)
                            .rev()
                            .filter_map(|i| z.get(i).map(|e| Bytes::copy_from_slice(e.member)))
                            .collect()
                    } else {
                        z.iter_from(from)
                            .take(to - from + 1)
                            .map(|e| Bytes::copy_from_slice(e.member))
                            .collect()
                    }
                } else {
                    Vec::new()
                }
            }
            Some(Value::ZSet(z)) => z.iter().map(|e| Bytes::copy_from_slice(e.member)).collect(),
            _ => Vec::new(),
        }
    };
    s.hit(len > 0);
    if ranged && end >= start {
        end -= start;
        start = 0;
    }
    let mut items: Vec<Item> = objs
        .into_iter()
        .map(|obj| Item {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();

    let mut bad_score = false;
    if !dontsort {
        for it in &mut items {
            let byval = match &sortby {
                Some(p) => match by_pattern(s, p, &it.obj) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match weight(&byval) {
                    Some(v) => it.score = v,
                    None => bad_score = true,
                }
            }
        }
        let by = sortby.is_some();
        let storing = store.is_some();
        let compare = |x: &Item, y: &Item| -> Ordering {
            let c = if !alpha {
                match x.score.partial_cmp(&y.score) {
                    Some(Ordering::Equal) | None => x.obj.cmp(&y.obj),
                    Some(o) => o,
                }
            } else if by {
                match (&x.cmp, &y.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(p), Some(q)) if storing => p.cmp(q),
                    (Some(p), Some(q)) => collate(p, q),
                }
            } else if storing {
                x.obj.cmp(&y.obj)
            } else {
                collate(&x.obj, &y.obj)
            };
            if desc { c.reverse() } else { c }
        };
        // Redis's choice: a partial quicksort for BY with a range (ties in its order), else
        // glibc's qsort, a stable merge sort.
        if by && (start != 0 || end != vlen - 1) {
            super::pqsort::pqsort(&mut items, compare, start, end);
        } else {
            items.sort_by(compare);
        }
    }

    if bad_score {
        return Err(CmdError::err(
            "One or more scores can't be converted into double",
        ));
    }
    let picked = if end >= start {
        items
            .get(start.max(0) as usize..=end as usize)
            .unwrap_or(&[])
    } else {
        &[]
    };
    let mut out: Vec<Option<Bytes>> = Vec::new();
    for it in picked {
        if gets.is_empty() {
            out.push(Some(it.obj.clone()));
        }
        for p in &gets {
            out.push(by_pattern(s, p, &it.obj));
        }
    }
    let Some(dst) = store else {
        return Ok(Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                .collect(),
        ));
    };
    let n = out.len() as i64;
    let mut t = s.shared.db.for_key(&dst);
    if out.is_empty() {
        t.remove(&dst);
    } else {
        let mut l = ListValue::new();
        for v in &out {
            l.push_back(v.as_deref().unwrap_or(&[]));
        }
        t.insert(&dst, Entry::new(Value::List(Box::new(l)), 0, now));
    }
    Ok(Reply::Int(n))
}
