//! Redis's glob-style pattern matching (`KEYS`, `SCAN MATCH`, `CONFIG GET`): `*`, `?`,
//! `[abc]`, `[^a]`, `[a-z]` and `\` escapes.

pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut i) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, string index).
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        let mut matched = false;
        let mut next_p = p;
        if let Some(&pc) = pattern.get(p) {
            match pc {
                b'*' => {
                    while pattern.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    matched = true;
                    next_p = p + 1;
                }
                b'[' => {
                    if let Some((hit, end)) = class_match(pattern, p + 1, s[i], nocase) {
                        matched = hit;
                        next_p = end;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    matched = eq(pattern[p + 1], s[i]);
                    next_p = p + 2;
                }
                c => {
                    matched = eq(c, s[i]);
                    next_p = p + 1;
                }
            }
        }
        if matched {
            p = next_p;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting after `[` at `start`. Returns (matched, index after
/// the closing `]`); an unterminated class runs to the end of the pattern, as in Redis.
fn class_match(pattern: &[u8], start: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let norm = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    let c = norm(c);
    let mut p = start;
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                hit |= norm(pattern[p + 1]) == c;
                p += 2;
            }
            Some(&lo)
                if pattern.get(p + 1) == Some(&b'-')
                    && p + 2 < pattern.len()
                    && pattern[p + 2] != b']' =>
            {
                let (mut a, mut b) = (norm(lo), norm(pattern[p + 2]));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                hit |= (a..=b).contains(&c);
                p += 3;
            }
            Some(&x) => {
                hit |= norm(x) == c;
                p += 1;
            }
        }
    }
    Some((hit != negate, p))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_glob_cases() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", "anything"));
        assert!(m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("key:*:x", "key:12:x"));
        assert!(!m("key:*:x", "key:12:y"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("abc", "abcd"));
        assert!(glob_match(b"MAX*", b"maxmemory", true));
    }
}
