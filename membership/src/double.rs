//! Doubles as Redis reads them from arguments: C's `strtod` (glibc's forms) and
//! `getDoubleFromObject`'s rules. Shared by the shard (scores, weights) and the proxy (the
//! WEIGHTS of a cross-slot ZUNION/ZINTER it computes itself).

/// C's `strtod` on the whole of `s` (no leading spaces: callers skip or refuse them): the
/// value and whether it was out of range (`ERANGE`: an overflow to infinity, or an underflow
/// to zero). `None` when `s` is not entirely a number. Accepts what glibc does: a sign,
/// `inf`/`infinity`/`nan`, decimal and hexadecimal forms.
pub fn strtod(s: &[u8]) -> Option<(f64, bool)> {
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let lower = rest.to_ascii_lowercase();
    if lower == b"inf" || lower == b"infinity" {
        return Some((sign * f64::INFINITY, false));
    }
    if lower == b"nan" || (lower.starts_with(b"nan(") && lower.ends_with(b")")) {
        return Some((f64::NAN, false));
    }
    if lower.starts_with(b"0x") {
        return hex_float(&lower[2..]).map(|(v, r)| (sign * v, r));
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one mantissa digit.
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while rest.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        start..*i
    };
    let int = digits(&mut i);
    let mut frac = i..i;
    if rest.get(i) == Some(&b'.') {
        i += 1;
        frac = digits(&mut i);
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exp = 0..0;
    let mut exp_neg = false;
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        match rest.get(j) {
            Some(b'-') => {
                exp_neg = true;
                j += 1
            }
            Some(b'+') => j += 1,
            _ => {}
        }
        let e = digits(&mut j);
        if !e.is_empty() {
            exp = e;
            i = j;
        }
    }
    if i != rest.len() {
        return None;
    }
    let text = |r: std::ops::Range<usize>| std::str::from_utf8(&rest[r]).unwrap_or("0");
    let int_s = if int.is_empty() {
        "0"
    } else {
        text(int.clone())
    };
    let frac_s = if frac.is_empty() {
        "0"
    } else {
        text(frac.clone())
    };
    let exp_s = if exp.is_empty() { "0" } else { text(exp) };
    let norm = format!("{int_s}.{frac_s}e{}{exp_s}", if exp_neg { "-" } else { "" });
    let v: f64 = norm.parse().ok()?;
    let nonzero = rest[int].iter().chain(&rest[frac]).any(|&d| d != b'0');
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    Some((sign * v, erange))
}

/// The part of a hexadecimal float after `0x` (lower case): hex digits, an optional point and
/// fraction, an optional binary exponent `p[sign]digits`.
fn hex_float(s: &[u8]) -> Option<(f64, bool)> {
    let (mut v, mut scale, mut any, mut i) = (0.0f64, 0i64, false, 0);
    let mut point = false;
    while let Some(&c) = s.get(i) {
        if c == b'.' && !point {
            point = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            v = v * 16.0 + f64::from(d);
            any = true;
            if point {
                scale -= 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if s.get(i) == Some(&b'p') {
        let e = std::str::from_utf8(&s[i + 1..]).ok()?;
        if e.is_empty() || e.starts_with('+') && e.len() == 1 {
            return None;
        }
        scale += e.parse::<i64>().ok()?;
        i = s.len();
    }
    if i != s.len() {
        return None;
    }
    let v = v * 2f64.powi(scale.clamp(-2000, 2000) as i32);
    Some((
        v,
        v.is_infinite() || (v == 0.0 && s.iter().any(|c| c.is_ascii_hexdigit() && *c != b'0')),
    ))
}

/// Redis's `getDoubleFromObject`: the whole argument a number, no leading space, not out of
/// range, not NaN (infinities are fine).
pub fn parse(b: &[u8]) -> Option<f64> {
    if b.first()
        .is_none_or(|c| c.is_ascii_whitespace() || *c == 0x0b)
    {
        return None;
    }
    match strtod(b)? {
        (v, false) if !v.is_nan() => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_get_double_from_object() {
        assert_eq!(parse(b"1.5"), Some(1.5));
        assert_eq!(parse(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse(b"0x10"), Some(16.0));
        assert_eq!(parse(b"-0").map(f64::is_sign_negative), Some(true));
        for bad in [&b""[..], b" 1", b"nan", b"1e999", b"abc", b"1x"] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
