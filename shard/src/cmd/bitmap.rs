//! Bitmap commands on string values: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD
//! BITFIELD_RO, with Redis 7.0's replies and error texts (`bitops.c`): arguments and key
//! types are checked in Redis's order, so a request wrong in two ways gets the same error.
//!
//! Bits are numbered from the most significant bit of the first byte; a string is an endless
//! run of zero bits past its end. Writes grow the string with zero bytes to the farthest bit
//! they touch, in place when the stored buffer is not shared.

use bytes::BytesMut;

use super::args::{eq, parse_i64, strict_i64};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::store::{Entry, Value};

const OFFSET_ERR: &str = "bit offset is not an integer or out of range";
const BIT_ERR: &str = "bit is not an integer or out of range";
const TYPE_ERR: &str =
    "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// A bit offset argument: a non-negative integer whose byte lies below `proto-max-bulk-len`.
/// With `hash_bits`, BITFIELD's `#n` form means `n` times the field's width.
fn bit_offset(s: &Session, arg: &[u8], hash_bits: Option<u32>) -> Result<u64, CmdError> {
    let err = || CmdError::err(OFFSET_ERR);
    let (digits, times) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], i64::from(bits)),
        _ => (arg, 1),
    };
    let n = strict_i64(digits)
        .and_then(|n| n.checked_mul(times))
        .ok_or_else(err)?;
    if n < 0 || (n as u64 >> 3) >= s.shared.config.proto_max_bulk_len {
        return Err(err());
    }
    Ok(n as u64)
}

/// Runs `f` on the string at `key` (counted as an access): `Ok(None)` when absent.
fn read<R>(
    s: &mut Session,
    key: &[u8],
    f: impl FnOnce(&[u8]) -> Result<R, CmdError>,
) -> Result<Option<R>, CmdError> {
    let mut t = s.shared.db.for_key(key);
    // Under the lock: no reference-count traffic on the stored buffer per read.
    let r = match t.lookup(key, s.now) {
        None => None,
        Some(Entry {
            value: Value::Str(b),
            ..
        }) => Some(f(b)),
        Some(_) => return Err(CmdError::WrongType),
    };
    drop(t);
    s.hit(r.is_some());
    r.transpose()
}

/// Makes the string at `key` (created if absent) long enough to hold bit `max_bit`, then runs
/// `f` on its bytes; `f`'s flag says whether the string was created or grew (Redis's
/// `dirty`). WRONGTYPE, before anything changes, for another type.
fn write<R>(
    s: &mut Session,
    key: &[u8],
    max_bit: u64,
    f: impl FnOnce(&mut [u8], bool) -> R,
) -> Result<R, CmdError> {
    let need = (max_bit >> 3) as usize + 1;
    let now = s.now;
    let mut t = s.shared.db.for_key(key);
    let mut f = Some(f);
    // One lookup for an existing string: changed in place when this is the only reference
    // to its buffer, else copied once.
    let done = t.update(key, now, |v| {
        let Value::Str(b) = v else { return None };
        let f = f.take()?;
        let mut buf = BytesMut::from(std::mem::take(b));
        let grew = buf.len() < need;
        if grew {
            buf.resize(need, 0);
        }
        let r = f(&mut buf, grew);
        *b = buf.freeze();
        Some(r)
    });
    match (done, f) {
        (Some(Some(r)), _) => Ok(r),
        (None, Some(f)) => {
            let mut buf = BytesMut::zeroed(need);
            let r = f(&mut buf, true);
            t.insert(key, Entry::new(Value::Str(buf.freeze()), 0, now));
            Ok(r)
        }
        _ => Err(CmdError::WrongType),
    }
}

pub fn setbit(s: &mut Session, a: &Args) -> CmdResult {
    let offset = bit_offset(s, a.get(2), None)?;
    let on = strict_i64(a.get(3)).ok_or_else(|| CmdError::err(BIT_ERR))?;
    if on & !1 != 0 {
        return Err(CmdError::err(BIT_ERR));
    }
    let (byte, shift) = ((offset >> 3) as usize, 7 - (offset & 7) as u32);
    let old = write(s, a.get(1), offset, |p, _| {
        let b = &mut p[byte];
        let old = (*b >> shift) & 1;
        *b = (*b & !(1 << shift)) | ((on as u8) << shift);
        old
    })?;
    Ok(Reply::Int(i64::from(old)))
}

pub fn getbit(s: &mut Session, a: &Args) -> CmdResult {
    let offset = bit_offset(s, a.get(2), None)?;
    let (byte, shift) = ((offset >> 3) as usize, 7 - (offset & 7) as u32);
    let bit = read(s, a.get(1), |p| {
        Ok(p.get(byte).map_or(0, |b| (b >> shift) & 1))
    })?;
    Ok(Reply::Int(i64::from(bit.unwrap_or(0))))
}

/// BIT or BYTE, as BITCOUNT and BITPOS take it.
fn is_bit_unit(w: &[u8]) -> Result<bool, CmdError> {
    if eq(w, "bit") {
        Ok(true)
    } else if eq(w, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// A range over a string of `len` bytes in BITCOUNT's and BITPOS's terms, normalised as
/// Redis does: negative indexes from the end, clamped to the string. In bit units the bounds
/// become bytes plus masks of the bits of the first and last byte outside the range.
struct Span {
    start: i64,
    end: i64,
    /// Bits of the first byte before the range (high bits).
    first_out: u8,
    /// Bits of the last byte after the range (low bits).
    last_out: u8,
}

fn span(len: usize, mut start: i64, mut end: i64, bits: bool) -> Span {
    let mut total = len as i64;
    if bits {
        total <<= 3;
    }
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0).min(total - 1);
    let (mut first_out, mut last_out) = (0, 0);
    if bits && start <= end {
        first_out = !((1u16 << (8 - (start & 7))) - 1) as u8;
        last_out = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Span {
        start,
        end,
        first_out,
        last_out,
    }
}

fn popcount(p: &[u8]) -> i64 {
    let (words, tail) = p.as_chunks::<8>();
    let n: u32 = words
        .iter()
        .map(|w| u64::from_ne_bytes(*w).count_ones())
        .sum::<u32>()
        + tail.iter().map(|b| b.count_ones()).sum::<u32>();
    i64::from(n)
}

pub fn bitcount(s: &mut Session, a: &Args) -> CmdResult {
    let n = read(s, a.get(1), |p| {
        let sp = match a.len() {
            2 => Span {
                start: 0,
                end: p.len() as i64 - 1,
                first_out: 0,
                last_out: 0,
            },
            4 | 5 => {
                let (start, end) = (parse_i64(a.get(2))?, parse_i64(a.get(3))?);
                if start < 0 && end < 0 && start > end {
                    return Ok(0);
                }
                let bits = a.len() == 5 && is_bit_unit(a.get(4))?;
                span(p.len(), start, end, bits)
            }
            _ => return Err(CmdError::Syntax),
        };
        if sp.start > sp.end {
            return Ok(0);
        }
        let (start, end) = (sp.start as usize, sp.end as usize);
        let edges = [p[start] & sp.first_out, p[end] & sp.last_out];
        Ok(popcount(&p[start..=end]) - popcount(&edges))
    })?;
    Ok(Reply::Int(n.unwrap_or(0)))
}

/// Redis's `redisBitpos`: the position of the first `bit` in `p`, which is followed by
/// zeros: -1 when looking for a 1 and there is none, `8 * p.len()` when looking for a 0.
fn first_bit(p: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0x00 } else { 0xff };
    match p.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = p[i];
            let within = if bit {
                b.leading_zeros()
            } else {
                b.leading_ones()
            };
            i as i64 * 8 + i64::from(within)
        }
        None if bit => -1,
        None => p.len() as i64 * 8,
    }
}

pub fn bitpos(s: &mut Session, a: &Args) -> CmdResult {
    let bit = parse_i64(a.get(2))?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::err("The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    let pos = read(s, a.get(1), |p| {
        let len = p.len() as i64;
        let (sp, end_given) = match a.len() {
            3 => (
                Span {
                    start: 0,
                    end: len - 1,
                    first_out: 0,
                    last_out: 0,
                },
                false,
            ),
            4..=6 => {
                let start = parse_i64(a.get(3))?;
                let bits = a.len() == 6 && is_bit_unit(a.get(5))?;
                let (end, given) = if a.len() >= 5 {
                    (parse_i64(a.get(4))?, true)
                } else if bits {
                    ((len << 3) + 7, false)
                } else {
                    (len - 1, false)
                };
                (span(p.len(), start, end, bits), given)
            }
            _ => return Err(CmdError::Syntax),
        };
        Ok(bitpos_in(p, bit, &sp, end_given))
    })?;
    Ok(Reply::Int(pos.unwrap_or(if bit { -1 } else { 0 })))
}

/// BITPOS over a normalised span, Redis's way: the first byte and the last through their
/// masks, the bytes between as a whole; a 0 past an explicit end does not count.
fn bitpos_in(p: &[u8], bit: bool, sp: &Span, end_given: bool) -> i64 {
    if sp.start > sp.end {
        return -1;
    }
    let (mut start, end) = (sp.start as usize, sp.end as usize);
    let mut bytes = end - start + 1;
    // A byte with the bits outside the range forced to the value not looked for.
    let masked = |b: u8, out: u8| if bit { b & !out } else { b | out };
    let pos = 'found: {
        if sp.first_out != 0 {
            let mut b = masked(p[start], sp.first_out);
            if sp.last_out != 0 && bytes == 1 {
                b = masked(b, sp.last_out);
            }
            let pos = first_bit(&[b], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let whole = bytes - usize::from(sp.last_out != 0);
        if whole > 0 {
            let pos = first_bit(&p[start..start + whole], bit);
            if bytes == whole || (pos != -1 && pos != whole as i64 * 8) {
                break 'found pos;
            }
            start += whole;
            bytes -= whole;
        }
        first_bit(&[masked(p[end], sp.last_out)], bit)
    };
    if end_given && !bit && pos == bytes as i64 * 8 {
        return -1;
    }
    if pos == -1 {
        -1
    } else {
        pos + start as i64 * 8
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

pub fn bitop(s: &mut Session, a: &Args) -> CmdResult {
    let w = a.get(1);
    let op = if eq(w, "and") {
        BitOp::And
    } else if eq(w, "or") {
        BitOp::Or
    } else if eq(w, "xor") {
        BitOp::Xor
    } else if eq(w, "not") {
        BitOp::Not
    } else {
        return Err(CmdError::Syntax);
    };
    if op == BitOp::Not && a.len() != 4 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let (dst, srcs) = (a.get(2), a.slice(3));
    let now = s.now;
    let mut g = s
        .shared
        .db
        .lock_keys(std::iter::once(dst).chain(srcs.iter().map(|k| k.as_ref())));
    let mut values = Vec::with_capacity(srcs.len());
    for k in srcs {
        values.push(match g.table(k).lookup(k, now) {
            None => bytes::Bytes::new(),
            Some(Entry {
                value: Value::Str(b),
                ..
            }) => b.clone(),
            Some(_) => return Err(CmdError::WrongType),
        });
    }
    let max = values.iter().map(|v| v.len()).max().unwrap_or(0);
    let t = g.table(dst);
    if max == 0 {
        t.remove(dst);
        return Ok(Reply::Int(0));
    }
    let mut out = BytesMut::zeroed(max);
    if let Some((first, rest)) = values.split_first() {
        out[..first.len()].copy_from_slice(first);
        match op {
            BitOp::Not => out.iter_mut().for_each(|b| *b = !*b),
            BitOp::And => {
                for v in rest {
                    out.iter_mut()
                        .zip(v.iter().chain(std::iter::repeat(&0)))
                        .for_each(|(o, b)| *o &= b);
                }
            }
            BitOp::Or => rest.iter().for_each(|v| {
                out.iter_mut().zip(v.iter()).for_each(|(o, b)| *o |= b);
            }),
            BitOp::Xor => rest.iter().for_each(|v| {
                out.iter_mut().zip(v.iter()).for_each(|(o, b)| *o ^= b);
            }),
        }
    }
    t.insert(dst, Entry::new(Value::Str(out.freeze()), 0, now));
    Ok(Reply::Int(max as i64))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set,
    Incrby,
}

/// One BITFIELD operation.
#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    /// SET's value or INCRBY's increment.
    arg: i64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63`.
fn field_type(w: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = || CmdError::err(TYPE_ERR);
    let signed = match w.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let bits = strict_i64(&w[1..]).ok_or_else(err)?;
    if bits < 1 || bits > if signed { 64 } else { 63 } {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

/// BITFIELD and BITFIELD_RO (`read_only`: only GET is allowed).
pub fn bitfield(s: &mut Session, a: &Args, read_only: bool) -> CmdResult {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut highest = 0u64;
    let mut writes = false;
    let mut j = 2;
    while j < a.len() {
        let rest = a.len() - j - 1;
        let w = a.get(j);
        let op = if eq(w, "get") && rest >= 2 {
            FieldOp::Get
        } else if eq(w, "set") && rest >= 3 {
            FieldOp::Set
        } else if eq(w, "incrby") && rest >= 3 {
            FieldOp::Incrby
        } else if eq(w, "overflow") && rest >= 1 {
            let t = a.get(j + 1);
            overflow = if eq(t, "wrap") {
                Overflow::Wrap
            } else if eq(t, "sat") {
                Overflow::Sat
            } else if eq(t, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(a.get(j + 1))?;
        let offset = bit_offset(s, a.get(j + 2), Some(bits))?;
        let mut arg = 0;
        if op != FieldOp::Get {
            writes = true;
            highest = highest.max(offset + u64::from(bits) - 1);
            arg = parse_i64(a.get(j + 3))?;
        }
        ops.push(Field {
            op,
            signed,
            bits,
            offset,
            arg,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    if !writes {
        let replies = read(s, a.get(1), |p| {
            Ok(ops.iter().map(|f| Reply::Int(get_field(p, f))).collect())
        })?;
        return Ok(Reply::Array(replies.unwrap_or_else(|| {
            ops.iter().map(|f| Reply::Int(get_field(&[], f))).collect()
        })));
    }
    if read_only {
        return Err(CmdError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let replies = write(s, a.get(1), highest, |p, _| {
        ops.iter().map(|f| apply_field(p, f)).collect()
    })?;
    Ok(Reply::Array(replies))
}

/// Whether a BITFIELD that answered `reply` changed its string from `before` to `after`
/// as Redis counts changes: a SET or INCRBY that was not refused (OVERFLOW FAIL) and either
/// changed bits or found the string created or grown. A string grown for a refused write
/// alone is no change (Redis creates or grows it all the same).
pub fn changed(a: &Args, reply: &Reply, before: Option<&[u8]>, after: Option<&[u8]>) -> bool {
    let (Reply::Array(replies), Some(after)) = (reply, after) else {
        return false;
    };
    let before = before.unwrap_or_default();
    let grew = before.len() < after.len();
    let bits_changed = after
        .iter()
        .zip(before.iter().chain(std::iter::repeat(&0)))
        .any(|(x, y)| x != y);
    // The operations in order, GETs included (one reply each); OVERFLOW takes none.
    let mut writes = Vec::with_capacity(replies.len());
    let mut j = 2;
    while j < a.len() {
        let w = a.get(j);
        if eq(w, "overflow") {
            j += 2;
        } else if eq(w, "get") {
            writes.push(false);
            j += 3;
        } else {
            writes.push(true);
            j += 4;
        }
    }
    let done = writes
        .iter()
        .zip(replies)
        .any(|(&w, r)| w && !matches!(r, Reply::Nil));
    done && (grew || bits_changed)
}

/// The field at `f` of `p` (zero past its end), sign-extended for a signed type.
fn get_field(p: &[u8], f: &Field) -> i64 {
    let raw = read_bits(p, f.offset, f.bits);
    if f.signed {
        sign_extend(raw, f.bits)
    } else {
        raw as i64
    }
}

fn sign_extend(raw: u64, bits: u32) -> i64 {
    if bits < 64 && raw & (1 << (bits - 1)) != 0 {
        (raw | (u64::MAX << bits)) as i64
    } else {
        raw as i64
    }
}

fn read_bits(p: &[u8], offset: u64, bits: u32) -> u64 {
    (offset..offset + u64::from(bits)).fold(0, |v, at| {
        let byte = p.get((at >> 3) as usize).copied().unwrap_or(0);
        (v << 1) | u64::from((byte >> (7 - (at & 7))) & 1)
    })
}

/// Writes the low `bits` of `value` at `offset`; `p` holds them (grown beforehand).
fn write_bits(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let on = (value >> (u64::from(bits) - 1 - j)) & 1;
        let at = offset + j;
        let shift = 7 - (at & 7);
        let b = &mut p[(at >> 3) as usize];
        *b = (*b & !(1 << shift)) | ((on as u8) << shift);
    }
}

/// SET or INCRBY: the reply (the old value for SET, the new one for INCRBY, nil when
/// OVERFLOW FAIL refuses), writing unless refused.
fn apply_field(p: &mut [u8], f: &Field) -> Reply {
    if f.op == FieldOp::Get {
        return Reply::Int(get_field(p, f));
    }
    let raw_old = read_bits(p, f.offset, f.bits);
    let (reply, new) = if f.signed {
        let old = sign_extend(raw_old, f.bits);
        let (value, incr) = match f.op {
            FieldOp::Incrby => (old, f.arg),
            _ => (f.arg, 0),
        };
        let new = match signed_overflow(value, incr, f.bits, f.overflow) {
            Some(None) => return Reply::Nil,
            Some(Some(limit)) => limit,
            None => value.wrapping_add(incr),
        };
        let reply = if f.op == FieldOp::Incrby { new } else { old };
        (reply, new as u64)
    } else {
        let (value, incr) = match f.op {
            FieldOp::Incrby => (raw_old, f.arg),
            _ => (f.arg as u64, 0),
        };
        let new = match unsigned_overflow(value, incr, f.bits, f.overflow) {
            Some(None) => return Reply::Nil,
            Some(Some(limit)) => limit,
            None => value.wrapping_add(incr as u64),
        };
        let reply = if f.op == FieldOp::Incrby {
            new as i64
        } else {
            raw_old as i64
        };
        (reply, new)
    };
    write_bits(p, f.offset, f.bits, new);
    Reply::Int(reply)
}

/// Redis's `checkUnsignedBitfieldOverflow`: `None` when `value + incr` fits in `bits`
/// unsigned bits, else what to store (`Some(None)`: refuse, under OVERFLOW FAIL).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, how: Overflow) -> Option<Option<u64>> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & max;
    if value > max || (incr > 0 && incr > max_incr) {
        Some(match how {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        })
    } else if incr < 0 && incr < min_incr {
        Some(match how {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(0),
            Overflow::Fail => None,
        })
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow`, as [`unsigned_overflow`] for signed fields (with
/// Redis's wrapping arithmetic in its bounds, so even extreme arguments answer the same).
fn signed_overflow(value: i64, incr: i64, bits: u32, how: Overflow) -> Option<Option<i64>> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let c = (value as u64).wrapping_add(incr as u64);
        let c = if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c | mask
            } else {
                c & !mask
            }
        } else {
            c
        };
        c as i64
    };
    let over = value > max
        || (bits != 64 && incr > max_incr)
        || (value >= 0 && incr > 0 && incr > max_incr);
    let under = value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr);
    if over {
        Some(match how {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(max),
            Overflow::Fail => None,
        })
    } else if under {
        Some(match how {
            Overflow::Wrap => Some(wrap()),
            Overflow::Sat => Some(min),
            Overflow::Fail => None,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bit_follows_redis() {
        assert_eq!(first_bit(&[], true), -1);
        assert_eq!(first_bit(&[], false), 0);
        assert_eq!(first_bit(&[0xff, 0xf0], false), 12);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0, 0, 0x01], true), 23);
        assert_eq!(first_bit(&[0, 0], true), -1);
    }

    #[test]
    fn fields_round_trip() {
        let mut p = [0u8; 9];
        write_bits(&mut p, 5, 13, 0x1abc);
        assert_eq!(read_bits(&p, 5, 13), 0x1abc);
        write_bits(&mut p, 7, 64, u64::MAX - 5);
        assert_eq!(read_bits(&p, 7, 64), u64::MAX - 5);
        assert_eq!(sign_extend(0b1000, 4), -8);
        assert_eq!(sign_extend(0b0111, 4), 7);
    }

    #[test]
    fn overflow_matches_redis() {
        // u8: 250 + 10 wraps to 4, saturates at 255, fails.
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(Some(4)));
        assert_eq!(
            unsigned_overflow(250, 10, 8, Overflow::Sat),
            Some(Some(255))
        );
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Fail), Some(None));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(Some(0)));
        assert_eq!(unsigned_overflow(5, -3, 8, Overflow::Sat), None);
        // i8: 120 + 10 wraps to -126; -120 - 10 saturates at -128.
        assert_eq!(
            signed_overflow(120, 10, 8, Overflow::Wrap),
            Some(Some(-126))
        );
        assert_eq!(
            signed_overflow(-120, -10, 8, Overflow::Sat),
            Some(Some(-128))
        );
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            Some(Some(i64::MIN))
        );
        assert_eq!(signed_overflow(3, 4, 64, Overflow::Fail), None);
    }

    #[test]
    fn spans_normalise_like_redis() {
        let sp = span(3, 1, 13, true);
        assert_eq!(
            (sp.start, sp.end, sp.first_out, sp.last_out),
            (0, 1, 0x80, 0x03)
        );
        let sp = span(3, -100, 100, false);
        assert_eq!((sp.start, sp.end), (0, 2));
    }
}
