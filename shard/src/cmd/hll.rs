//! HyperLogLog: PFADD PFCOUNT PFMERGE, in Redis's own representation byte for byte (its
//! `hyperloglog.c`, format version 7): a string with a 16-byte header (`HYLL`, the encoding,
//! three zero bytes, a cached cardinality whose top bit marks it stale) and 16384 six-bit
//! registers, either dense (12288 bytes) or sparse (run-length opcodes ZERO, XZERO and VAL,
//! turned dense past `hll-sparse-max-bytes` or a register above 32). The same hash
//! (MurmurHash64A, seed 0xadc83b19) and the same estimator (Ertl's), so an HLL copied from
//! Redis counts the same here and the other way round, and every write leaves the very bytes
//! Redis would.

use bytes::Bytes;

use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Entry, Value};
use membership::resp::CommandError;

const HDR: usize = 16;
const P: u32 = 14;
const Q: u32 = 64 - P;
const REGISTERS: usize = 1 << P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// A sparse representation that does not add up to 16384 registers.
#[derive(Debug, PartialEq, Eq)]
struct Corrupt;

fn corrupt(_: Corrupt) -> CmdError {
    CmdError::from(CommandError::Raw(CORRUPT.into()))
}

fn not_hll() -> CmdError {
    CmdError::from(CommandError::Raw(NOT_HLL.into()))
}

/// MurmurHash2, 64-bit, as Redis modified it to read little-endian on every machine.
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let (words, tail) = key.as_chunks::<8>();
    for w in words {
        let mut k = u64::from_le_bytes(*w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element hashes to and the length of its `000..1` pattern (1..=51).
fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc8_3b19);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---- dense ----

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let (byte, fb) = (i * BITS / 8, (i * BITS) & 7);
    let b0 = u16::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) as u8) & REGISTER_MAX
}

fn dense_put(regs: &mut [u8], i: usize, v: u8) {
    let (byte, fb) = (i * BITS / 8, (i * BITS) & 7);
    let (max, v) = (u32::from(REGISTER_MAX), u32::from(v));
    if let Some(b) = regs.get_mut(byte) {
        *b = ((u32::from(*b) & !(max << fb)) | (v << fb)) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = ((u32::from(*b) & !(max >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Every register of a dense HLL in order, four from each three bytes.
fn dense_registers(regs: &[u8]) -> impl Iterator<Item = u8> + '_ {
    regs.chunks_exact(3).flat_map(|c| {
        let w = u32::from(c[0]) | (u32::from(c[1]) << 8) | (u32::from(c[2]) << 16);
        [0, 6, 12, 18].map(|shift| ((w >> shift) & 63) as u8)
    })
}

/// Raises register `i` to `count` if lower; whether it changed.
fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

// ---- sparse ----

/// One sparse opcode: its run of registers, their value, and its length in bytes.
#[derive(Clone, Copy)]
struct Op {
    run: usize,
    value: u8,
    len: usize,
    xzero: bool,
}

fn op_at(v: &[u8], p: usize) -> Op {
    let b = v[p];
    if b & 0xc0 == 0 {
        Op {
            run: usize::from(b & 0x3f) + 1,
            value: 0,
            len: 1,
            xzero: false,
        }
    } else if b & 0x80 != 0 {
        Op {
            run: usize::from(b & 0x3) + 1,
            value: ((b >> 2) & 0x1f) + 1,
            len: 1,
            xzero: false,
        }
    } else {
        let lo = v.get(p + 1).copied().unwrap_or(0);
        Op {
            run: ((usize::from(b & 0x3f) << 8) | usize::from(lo)) + 1,
            value: 0,
            len: 2,
            xzero: true,
        }
    }
}

fn val_op(value: u8, run: usize) -> u8 {
    ((value - 1) << 2) | (run as u8 - 1) | 0x80
}

/// ZERO or XZERO for a run of zero registers.
fn push_zeros(seq: &mut Vec<u8>, run: usize) {
    if run > ZERO_MAX_LEN {
        let l = run - 1;
        seq.push((l >> 8) as u8 | 0x40);
        seq.push((l & 0xff) as u8);
    } else {
        seq.push(run as u8 - 1);
    }
}

/// Every register of a sparse representation in order, as (run, value).
fn sparse_runs(v: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut p = HDR;
    std::iter::from_fn(move || {
        (p < v.len()).then(|| {
            let op = op_at(v, p);
            p += op.len;
            (op.run, op.value)
        })
    })
}

/// The dense form of a sparse HLL (header kept: magic and cached cardinality).
fn sparse_to_dense(v: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&v[..HDR]);
    dense[4] = DENSE;
    let mut idx = 0;
    for (run, value) in sparse_runs(v) {
        if value != 0 {
            if idx + run > REGISTERS {
                break;
            }
            for i in idx..idx + run {
                dense_put(&mut dense[HDR..], i, value);
            }
        }
        idx += run;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    Ok(dense)
}

/// Redis's `hllSparseSet`: raises register `index` to `count` in a sparse HLL, splitting the
/// opcode that covers it and merging equal neighbours the way Redis does (so the bytes
/// match), or turns the HLL dense when the value or the size calls for it.
fn sparse_set(v: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Step 1: the opcode covering the register.
    let (mut p, mut first, mut prev, mut found) = (HDR, 0, None, None);
    while p < v.len() {
        let op = op_at(v, p);
        if index < first + op.run {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.len;
        first += op.run;
    }
    let Some(op) = found else {
        return Err(Corrupt);
    };
    // Step 2: the trivial updates in place.
    if op.value != 0 {
        if op.value >= count {
            return Ok(false);
        }
        if op.run == 1 {
            v[p] = val_op(count, 1);
            merge_neighbours(v, prev);
            return Ok(true);
        }
    }
    if op.value == 0 && !op.xzero && op.run == 1 {
        v[p] = val_op(count, 1);
        merge_neighbours(v, prev);
        return Ok(true);
    }
    // Step 3: split the opcode around the register.
    let last = first + op.run - 1;
    let mut seq = Vec::with_capacity(5);
    if op.value == 0 {
        if index != first {
            push_zeros(&mut seq, index - first);
        }
        seq.push(val_op(count, 1));
        if index != last {
            push_zeros(&mut seq, last - index);
        }
    } else {
        if index != first {
            seq.push(val_op(op.value, index - first));
        }
        seq.push(val_op(count, 1));
        if index != last {
            seq.push(val_op(op.value, last - index));
        }
    }
    if seq.len() > op.len && v.len() + seq.len() - op.len > max_bytes {
        return promote(v, index, count);
    }
    v.splice(p..p + op.len, seq);
    merge_neighbours(v, prev);
    Ok(true)
}

/// Step 4 of `hllSparseSet`: from the opcode before the changed one, up to five opcodes
/// along, adjacent VAL opcodes of one value merge while their run fits; then the cached
/// cardinality is marked stale.
fn merge_neighbours(v: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let op = op_at(v, p);
        if op.value == 0 {
            p += op.len;
            continue;
        }
        if let Some(&b) = v.get(p + 1)
            && b & 0x80 != 0
        {
            let next = op_at(v, p + 1);
            if next.value == op.value && op.run + next.run <= VAL_MAX_LEN {
                v[p + 1] = val_op(op.value, op.run + next.run);
                v.remove(p);
                continue;
            }
        }
        p += 1;
    }
    invalidate_cache(v);
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    *v = sparse_to_dense(v)?;
    let changed = dense_set(&mut v[HDR..], index, count);
    invalidate_cache(v);
    Ok(changed)
}

fn invalidate_cache(v: &mut [u8]) {
    v[15] |= 0x80;
}

/// A new, empty HLL: sparse, all registers in XZERO opcodes.
fn empty() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.extend_from_slice(&[SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_zeros(&mut v, run);
        left -= run;
    }
    v
}

/// Redis's `isHLLObjectOrReply`: a string with the header of a known encoding (and a dense
/// one of the exact size).
fn is_hll(v: &[u8]) -> bool {
    v.len() >= HDR
        && &v[..4] == b"HYLL"
        && v[4] <= SPARSE
        && (v[4] != DENSE || v.len() == DENSE_SIZE)
}

/// Adds one element; whether a register changed.
fn add(v: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(ele);
    if v[4] == DENSE {
        Ok(dense_set(&mut v[HDR..], index, count))
    } else {
        sparse_set(v, index, count, max_bytes)
    }
}

/// Raises `max` to the registers of `v`.
fn merge_into(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), Corrupt> {
    if v[4] == DENSE {
        for (m, r) in max.iter_mut().zip(dense_registers(&v[HDR..])) {
            *m = (*m).max(r);
        }
        return Ok(());
    }
    let mut i = 0;
    for (run, value) in sparse_runs(v) {
        if value != 0 {
            if i + run > REGISTERS {
                break;
            }
            for m in &mut max[i..i + run] {
                *m = (*m).max(value);
            }
        }
        i += run;
    }
    if i == REGISTERS { Ok(()) } else { Err(Corrupt) }
}

/// Ertl's estimator over a histogram of register values (Redis's `hllCount`).
fn estimate(histogram: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histogram[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histogram[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The cardinality of one HLL.
fn count(v: &[u8]) -> Result<u64, Corrupt> {
    let mut h = [0u32; 64];
    if v[4] == DENSE {
        for r in dense_registers(&v[HDR..]) {
            h[usize::from(r)] += 1;
        }
    } else {
        let mut idx = 0;
        for (run, value) in sparse_runs(v) {
            idx += run;
            h[usize::from(value)] += run as u32;
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&h))
}

fn count_registers(max: &[u8; REGISTERS]) -> u64 {
    let mut h = [0u32; 64];
    for &r in max {
        h[usize::from(r & 63)] += 1;
    }
    estimate(&h)
}

fn max_bytes(s: &Session) -> usize {
    usize::try_from(s.shared.db.encodings.get().hll_sparse_max_bytes).unwrap_or(usize::MAX)
}

pub fn pfadd(s: &mut Session, a: &Args) -> CmdResult {
    let (key, now, limit) = (a.get(1), s.now, max_bytes(s));
    let mut t = s.shared.db.for_key(key);
    match t.lookup(key, now) {
        None => {
            let mut v = empty();
            for ele in a.slice(2) {
                // A new HLL is valid: adding to it cannot find it corrupt.
                add(&mut v, ele, limit).map_err(corrupt)?;
            }
            invalidate_cache(&mut v);
            t.insert(key, Entry::new(Value::Str(Bytes::from(v)), 0, now));
            return Ok(Reply::Int(1));
        }
        Some(Entry {
            value: Value::Str(b),
            ..
        }) if is_hll(b) => {}
        Some(Entry {
            value: Value::Str(_),
            ..
        }) => return Err(not_hll()),
        Some(_) => return Err(CmdError::WrongType),
    }
    // In place, as Redis: without a copy when this is the only reference to the buffer. What
    // elements before a corrupt spot changed stays (with no event, the cache as it was).
    let r = t.update(key, now, |value| {
        let Value::Str(b) = value else {
            return Ok(false);
        };
        let mut v = Vec::from(bytes::BytesMut::from(std::mem::take(b)));
        let mut changed = false;
        let mut r = Ok(());
        for ele in a.slice(2) {
            match add(&mut v, ele, limit) {
                Ok(c) => changed |= c,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        if changed && r.is_ok() {
            invalidate_cache(&mut v);
        }
        *b = Bytes::from(v);
        r.map(|()| changed)
    });
    let changed = r.unwrap_or(Ok(false)).map_err(corrupt)?;
    Ok(Reply::Int(i64::from(changed)))
}

/// Writes an HLL back: a new key without TTL, an existing one keeping its TTL.
fn store(t: &mut crate::store::SlotMap, key: &[u8], v: Vec<u8>, created: bool, now: u64) {
    if created {
        t.insert(key, Entry::new(Value::Str(Bytes::from(v)), 0, now));
    } else {
        t.update(key, now, |old| *old = Value::Str(Bytes::from(v)));
    }
}

pub fn pfcount(s: &mut Session, a: &Args) -> CmdResult {
    let now = s.now;
    if a.len() > 2 {
        let keys = a.slice(1);
        let mut g = s.shared.db.lock_keys(keys.iter());
        let mut max = [0u8; REGISTERS];
        for k in keys {
            match g.table(k).lookup(k, now) {
                None => {}
                Some(Entry {
                    value: Value::Str(b),
                    ..
                }) if is_hll(b) => merge_into(&mut max, b).map_err(corrupt)?,
                Some(Entry {
                    value: Value::Str(_),
                    ..
                }) => return Err(not_hll()),
                Some(_) => return Err(CmdError::WrongType),
            }
        }
        return Ok(Reply::Int(count_registers(&max) as i64));
    }
    let key = a.get(1);
    let mut t = s.shared.db.for_key(key);
    let v = match t.lookup(key, now) {
        None => return Ok(Reply::Int(0)),
        Some(Entry {
            value: Value::Str(b),
            ..
        }) if is_hll(b) => b.clone(),
        Some(Entry {
            value: Value::Str(_),
            ..
        }) => return Err(not_hll()),
        Some(_) => return Err(CmdError::WrongType),
    };
    if v[15] & 0x80 == 0 {
        let mut card = [0u8; 8];
        card.copy_from_slice(&v[8..16]);
        return Ok(Reply::Int(u64::from_le_bytes(card) as i64));
    }
    let card = count(&v).map_err(corrupt)?;
    // The cached cardinality is part of the value, as in Redis, which signals the key as
    // modified: trackers (a proxy's near cache holding its GET) and WATCH see the new bytes.
    let mut v = v.to_vec();
    v[8..16].copy_from_slice(&card.to_le_bytes());
    store(&mut t, key, v, false, now);
    drop(t);
    s.shared.tracking.invalidate(key, s.handle.id);
    s.shared.watches.touch(key);
    Ok(Reply::Int(card as i64))
}

pub fn pfmerge(s: &mut Session, a: &Args) -> CmdResult {
    let (dst, now, limit) = (a.get(1), s.now, max_bytes(s));
    let keys = a.slice(1);
    let mut g = s.shared.db.lock_keys(keys.iter());
    let mut max = [0u8; REGISTERS];
    let mut dense = false;
    let mut current = None;
    for (j, k) in keys.iter().enumerate() {
        match g.table(k).lookup(k, now) {
            None => {}
            Some(Entry {
                value: Value::Str(b),
                ..
            }) if is_hll(b) => {
                dense |= b[4] == DENSE;
                merge_into(&mut max, b).map_err(corrupt)?;
                if j == 0 {
                    current = Some(b.clone());
                }
            }
            Some(Entry {
                value: Value::Str(_),
                ..
            }) => return Err(not_hll()),
            Some(_) => return Err(CmdError::WrongType),
        }
    }
    let created = current.is_none();
    let mut v = current.map_or_else(empty, |b| b.to_vec());
    if dense && v[4] == SPARSE {
        v = sparse_to_dense(&v).map_err(corrupt)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if v[4] == DENSE {
            dense_set(&mut v[HDR..], i, m);
        } else {
            // The destination was validated as a source: this cannot find it corrupt (and
            // Redis ignores the outcome here too).
            let _ = sparse_set(&mut v, i, m, limit);
        }
    }
    invalidate_cache(&mut v);
    store(g.table(dst), dst, v, created, now);
    Ok(Reply::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_hll_is_redis_s() {
        let v = empty();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[16..], &[0x7f, 0xff]);
        assert!(is_hll(&v));
        assert_eq!(count(&v), Ok(0));
    }

    #[test]
    fn registers_round_trip_in_both_representations() {
        let mut v = empty();
        for i in 0..3000u32 {
            add(&mut v, &i.to_le_bytes(), usize::MAX).expect("valid");
        }
        assert_eq!(v[4], SPARSE);
        let sparse_count = count(&v).expect("valid");
        let dense = sparse_to_dense(&v).expect("valid");
        assert_eq!(dense.len(), DENSE_SIZE);
        assert_eq!(count(&dense), Ok(sparse_count));
        // Within HLL's error of the truth.
        assert!((2900..3100).contains(&sparse_count), "{sparse_count}");
        let mut max = [0u8; REGISTERS];
        merge_into(&mut max, &v).expect("valid");
        assert_eq!(count_registers(&max), sparse_count);
    }

    #[test]
    fn corrupt_sparse_data_is_reported() {
        let mut v = empty();
        v.truncate(17);
        assert_eq!(count(&v), Err(Corrupt));
        assert_eq!(sparse_to_dense(&v), Err(Corrupt));
    }
}
