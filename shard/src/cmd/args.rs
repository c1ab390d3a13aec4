//! Argument parsing shared by the command families, with Redis's strictness.

use bytes::Bytes;

use crate::error::CmdError;
pub use crate::protocol::strict_i64;

/// Parses an integer the way Redis's `string2ll` does: optional `-`, no `+`, no leading zeros,
/// no spaces, within i64.
pub fn parse_i64(b: &[u8]) -> Result<i64, CmdError> {
    strict_i64(b).ok_or(CmdError::NotInteger)
}

/// Redis's `string2ld` as far as a double can follow it: the whole argument a number, no
/// leading space, infinities accepted, NaN and out-of-range values refused.
pub fn long_double(b: &[u8]) -> Option<f64> {
    if b.first()
        .is_none_or(|c| c.is_ascii_whitespace() || *c == 0x0b)
    {
        return None;
    }
    match membership::double::strtod(b)? {
        (v, false) if !v.is_nan() => Some(v),
        _ => None,
    }
}

pub fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Copies a key or value out of the request buffer so the store never pins a whole read
/// buffer for one small slice of it.
pub fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// Redis's `getRangeLongFromObjectOrReply`: an integer in `min..=max`, else `msg` (or Redis's
/// generic texts when there is none).
pub fn ranged(b: &[u8], min: i64, max: i64, msg: Option<&str>) -> Result<i64, CmdError> {
    match strict_i64(b) {
        None => Err(msg.map_or(CmdError::NotInteger, CmdError::err)),
        Some(v) if v < min || v > max => Err(match msg {
            Some(m) => CmdError::err(m),
            None => CmdError::err(format!(
                "value is out of range, value must between {min} and {max}"
            )),
        }),
        Some(v) => Ok(v),
    }
}

/// The arguments of the MPOP family from argument `at`: `numkeys key [key ...] <side> [COUNT
/// count]`, checked in Redis's order (the key count, the side as `side` parses it, the
/// options); the keys, the side, the count (1 by default).
pub fn mpop_args<W>(
    a: &crate::protocol::Args,
    at: usize,
    side: impl FnOnce(&[u8]) -> Result<W, CmdError>,
) -> Result<(Vec<Bytes>, W, usize), CmdError> {
    let numkeys = ranged(
        a.get(at),
        1,
        i64::MAX,
        Some("numkeys should be greater than 0"),
    )?;
    let side_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(at + 1))
        .filter(|&i| i < a.len())
        .ok_or(CmdError::Syntax)?;
    let side = side(a.get(side_at))?;
    let mut count = None;
    let mut j = side_at + 1;
    while j < a.len() {
        if count.is_none() && eq(a.get(j), "count") && j + 1 < a.len() {
            count = Some(ranged(
                a.get(j + 1),
                1,
                i64::MAX,
                Some("count should be greater than 0"),
            )? as usize);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keys = (at + 1..side_at).map(|i| a.bytes(i)).collect();
    Ok((keys, side, count.unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(strict_i64(b"0"), Some(0));
        assert_eq!(strict_i64(b"-12"), Some(-12));
        assert_eq!(strict_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"+1"[..],
            b"01",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"-0",
            b"9223372036854775808",
            b"1.0",
            b"0x10",
        ] {
            assert_eq!(strict_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn long_doubles_as_string2ld() {
        assert_eq!(long_double(b"1.5"), Some(1.5));
        assert_eq!(long_double(b"-.5"), Some(-0.5));
        assert_eq!(long_double(b"1e3"), Some(1000.0));
        assert_eq!(long_double(b"inf"), Some(f64::INFINITY));
        assert_eq!(long_double(b"-inf"), Some(f64::NEG_INFINITY));
        for bad in [&b"nan"[..], b" 1", b"1 ", b"", b"abc", b"1e400"] {
            assert_eq!(long_double(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
