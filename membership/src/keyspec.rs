//! Redis 7 key specifications: where a command's keys are in its arguments, as `COMMAND INFO`
//! describes them (`begin_search` + `find_keys`). A proxy learns them from the backends for
//! commands its own table does not carry, so any keyed command a backend supports is routed by
//! its keys — `ZUNIONSTORE dst 2 a b`, `XREAD ... STREAMS s1 s2 0 0`, `EVAL script 1 k` included.
//!
//! [`find`] follows Redis's `getKeysUsingKeySpecs` with partial results: a spec that does not
//! apply to the given arguments (a keyword that is absent, a bad key count) adds no keys,
//! and the backend answers the command's own syntax error.

use crate::resp::Reply;

/// Where the search for a spec's keys starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index.
    Index(usize),
    /// After the first argument equal (case-insensitively) to `keyword`, searching from
    /// `startfrom` (negative: from the end, backwards).
    Keyword {
        keyword: &'static str,
        startfrom: i32,
    },
    /// Redis's `unknown`: the keys cannot be found from the arguments alone (SORT's BY/GET
    /// pattern keys); [`find`] adds none.
    Unknown,
}

/// How the keys are found once the search has begun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// From the start up to `lastkey` (relative to the start; negative: from the end; with a
    /// `limit`, the first 1/limit of the remaining arguments), every `step` arguments.
    Range {
        lastkey: i32,
        step: usize,
        limit: usize,
    },
    /// Argument `keynumidx` (relative to the start) holds the key count; the keys begin
    /// `firstkey` arguments after the start, every `step` arguments.
    Keynum {
        keynumidx: usize,
        firstkey: usize,
        step: usize,
    },
    /// Redis's `unknown` (see [`BeginSearch::Unknown`]).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub begin: BeginSearch,
    pub find: FindKeys,
    /// Written (`RW`, `OW`, `RM`, or `insert`/`update`/`delete`) rather than only read.
    pub write: bool,
    /// `not_key`: the argument names something that is not a key (a channel, say).
    pub not_key: bool,
}

/// Appends the positions of the keys `specs` find in an argument vector of `argc` arguments
/// (`arg(i)` is argument `i`; `0` is the command name).
pub fn find<'a>(
    specs: &[KeySpec],
    argc: usize,
    arg: impl Fn(usize) -> &'a [u8],
    out: &mut Vec<usize>,
) {
    for spec in specs {
        if spec.not_key {
            continue;
        }
        let first = match &spec.begin {
            BeginSearch::Unknown => continue,
            BeginSearch::Index(i) => *i,
            BeginSearch::Keyword { keyword, startfrom } => {
                let found = if *startfrom > 0 {
                    (*startfrom as usize..argc)
                        .find(|&i| arg(i).eq_ignore_ascii_case(keyword.as_bytes()))
                } else {
                    let from = argc as i64 + i64::from(*startfrom);
                    // Redis stops before argument 1 going backwards, like before the last going
                    // forwards: a keyword there has no keys after it.
                    (2..argc)
                        .rev()
                        .filter(|&i| i as i64 <= from)
                        .find(|&i| arg(i).eq_ignore_ascii_case(keyword.as_bytes()))
                };
                match found {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
        };
        if first == 0 || first >= argc {
            continue;
        }
        let (first, last, step) = match &spec.find {
            FindKeys::Unknown => continue,
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                let last = if *lastkey >= 0 {
                    first as i64 + i64::from(*lastkey)
                } else if *limit == 0 {
                    argc as i64 + i64::from(*lastkey)
                } else {
                    first as i64 + ((argc - first) / limit) as i64 + i64::from(*lastkey)
                };
                (first as i64, last, *step)
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                let Some(n) = first
                    .checked_add(*keynumidx)
                    .filter(|&i| i < argc)
                    .and_then(|i| crate::resp::strict_i64(arg(i)))
                    .filter(|&n| n >= 0)
                else {
                    continue;
                };
                let first = (first + firstkey) as i64;
                let step = (*step).max(1);
                let last = first.saturating_add((n - 1).saturating_mul(step as i64));
                (first, last, step)
            }
        };
        if last >= argc as i64 || last < first || first >= argc as i64 {
            continue;
        }
        let mut i = first;
        while i <= last {
            out.push(i as usize);
            i += step.max(1) as i64;
        }
    }
}

/// A field of a RESP3 map or of its RESP2 form (a flat array of name, value, ...).
pub fn field<'r>(map: &'r Reply, name: &str) -> Option<&'r Reply> {
    match map {
        Reply::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).is_some_and(|t| t.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v),
        Reply::Array(items) => items
            .chunks_exact(2)
            .find(|kv| text(&kv[0]).is_some_and(|t| t.eq_ignore_ascii_case(name)))
            .map(|kv| &kv[1]),
        _ => None,
    }
}

/// The strings of an array (or set) reply; empty for anything else.
pub fn strings(r: Option<&Reply>) -> Vec<&str> {
    match r {
        Some(Reply::Array(a) | Reply::Set(a)) => a.iter().filter_map(text).collect(),
        _ => Vec::new(),
    }
}

/// A simple or bulk string reply as text.
pub fn text(r: &Reply) -> Option<&str> {
    match r {
        Reply::Status(s) | Reply::Verbatim(s) => Some(s),
        Reply::Simple(s) => Some(s),
        Reply::Bulk(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// An integer reply (or an integer in text) as `i64`.
pub fn int(r: Option<&Reply>) -> Option<i64> {
    match r? {
        Reply::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// Parses one key spec of `COMMAND INFO` (a map); `None` for a spec Redis calls `unknown`
/// (its keys cannot be found from the arguments) or one this parser does not understand.
/// `intern` turns a keyword into a `'static` string (the caller owns the storage).
pub fn parse(spec: &Reply, intern: &mut dyn FnMut(&str) -> &'static str) -> Option<KeySpec> {
    let flags = strings(field(spec, "flags"));
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let bs = field(spec, "begin_search")?;
    let bs_spec = field(bs, "spec")?;
    let begin = match text(field(bs, "type")?)? {
        "index" => BeginSearch::Index(usize::try_from(int(field(bs_spec, "index"))?).ok()?),
        "keyword" => BeginSearch::Keyword {
            keyword: intern(text(field(bs_spec, "keyword")?)?),
            startfrom: i32::try_from(int(field(bs_spec, "startfrom"))?).ok()?,
        },
        _ => return None,
    };
    let fk = field(spec, "find_keys")?;
    let fk_spec = field(fk, "spec")?;
    let count = |name: &str| usize::try_from(int(field(fk_spec, name))?).ok();
    let find = match text(field(fk, "type")?)? {
        "range" => FindKeys::Range {
            lastkey: i32::try_from(int(field(fk_spec, "lastkey"))?).ok()?,
            step: count("keystep")?.max(1),
            limit: count("limit")?,
        },
        "keynum" => FindKeys::Keynum {
            keynumidx: count("keynumidx")?,
            firstkey: count("firstkey")?,
            step: count("keystep")?.max(1),
        },
        _ => return None,
    };
    Some(KeySpec {
        begin,
        find,
        write: ["RW", "OW", "RM", "insert", "update", "delete"]
            .iter()
            .any(|f| has(f)),
        not_key: has("not_key"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(specs: &[KeySpec], args: &[&str]) -> Vec<usize> {
        let mut out = Vec::new();
        find(specs, args.len(), |i| args[i].as_bytes(), &mut out);
        out
    }

    fn range(first: usize, lastkey: i32, step: usize, limit: usize) -> KeySpec {
        KeySpec {
            begin: BeginSearch::Index(first),
            find: FindKeys::Range {
                lastkey,
                step,
                limit,
            },
            write: false,
            not_key: false,
        }
    }

    fn keynum(begin: BeginSearch, keynumidx: usize, firstkey: usize) -> KeySpec {
        KeySpec {
            begin,
            find: FindKeys::Keynum {
                keynumidx,
                firstkey,
                step: 1,
            },
            write: false,
            not_key: false,
        }
    }

    #[test]
    fn ranges_as_redis_describes_its_commands() {
        // LPUSH key elem...: index 1, range 0.
        assert_eq!(keys(&[range(1, 0, 1, 0)], &["LPUSH", "l", "a", "b"]), [1]);
        // LMOVE src dst LEFT RIGHT: two specs.
        assert_eq!(
            keys(
                &[range(1, 0, 1, 0), range(2, 0, 1, 0)],
                &["LMOVE", "a", "b", "LEFT", "RIGHT"]
            ),
            [1, 2]
        );
        // SINTER key key ...: index 1, range -1.
        assert_eq!(
            keys(&[range(1, -1, 1, 0)], &["SINTER", "a", "b", "c"]),
            [1, 2, 3]
        );
        // MSETNX k v k v: step 2.
        assert_eq!(
            keys(&[range(1, -1, 2, 0)], &["MSETNX", "a", "1", "b", "2"]),
            [1, 3]
        );
        // BLPOP k k timeout: lastkey -2.
        assert_eq!(
            keys(&[range(1, -2, 1, 0)], &["BLPOP", "a", "b", "0"]),
            [1, 2]
        );
    }

    #[test]
    fn keywords_and_key_counts() {
        // ZUNIONSTORE dst numkeys k...: dst at 1; keynum at 2, keys after it.
        let zu = [range(1, 0, 1, 0), keynum(BeginSearch::Index(2), 0, 1)];
        assert_eq!(
            keys(
                &zu,
                &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]
            ),
            [1, 3, 4]
        );
        // A bad key count adds no keys from that spec (the backend answers the error).
        assert_eq!(keys(&zu, &["ZUNIONSTORE", "d", "x", "a"]), [1]);
        assert_eq!(keys(&zu, &["ZUNIONSTORE", "d", "5", "a"]), [1]);
        // EVAL script numkeys k... arg...
        let eval = [keynum(BeginSearch::Index(2), 0, 1)];
        assert_eq!(
            keys(&eval, &["EVAL", "return 1", "2", "a", "b", "x"]),
            [3, 4]
        );
        assert!(keys(&eval, &["EVAL", "return 1", "0", "x"]).is_empty());
        // XREAD [COUNT n] STREAMS k... id...: keyword STREAMS from index 1, range -1 limit 2.
        let xread = [KeySpec {
            begin: BeginSearch::Keyword {
                keyword: "STREAMS",
                startfrom: 1,
            },
            find: FindKeys::Range {
                lastkey: -1,
                step: 1,
                limit: 2,
            },
            write: false,
            not_key: false,
        }];
        assert_eq!(
            keys(
                &xread,
                &["XREAD", "COUNT", "2", "streams", "s1", "s2", "0", "0"]
            ),
            [4, 5]
        );
        assert!(keys(&xread, &["XREAD", "COUNT", "2"]).is_empty());
        // MIGRATE ... KEYS k...: keyword KEYS searched from the end (startfrom -2).
        let migrate = [KeySpec {
            begin: BeginSearch::Keyword {
                keyword: "KEYS",
                startfrom: -2,
            },
            find: FindKeys::Range {
                lastkey: -1,
                step: 1,
                limit: 0,
            },
            write: true,
            not_key: false,
        }];
        assert_eq!(
            keys(
                &migrate,
                &["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"]
            ),
            [7, 8]
        );
        // Not keys are skipped.
        let mut ch = range(1, 0, 1, 0);
        ch.not_key = true;
        assert!(keys(&[ch], &["SPUBLISH", "c", "m"]).is_empty());
    }

    #[test]
    fn parses_commands_key_specs_in_resp2_form() {
        let s = |t: &str| Reply::Status(t.to_string());
        let b = |t: &str| Reply::Bulk(bytes::Bytes::copy_from_slice(t.as_bytes()));
        // ZUNIONSTORE's second spec as redis-server 7 sends it over RESP2.
        let spec = Reply::Array(vec![
            b("flags"),
            Reply::Array(vec![s("RO"), s("access")]),
            b("begin_search"),
            Reply::Array(vec![
                b("type"),
                b("index"),
                b("spec"),
                Reply::Array(vec![b("index"), Reply::Int(2)]),
            ]),
            b("find_keys"),
            Reply::Array(vec![
                b("type"),
                b("keynum"),
                b("spec"),
                Reply::Array(vec![
                    b("keynumidx"),
                    Reply::Int(0),
                    b("firstkey"),
                    Reply::Int(1),
                    b("keystep"),
                    Reply::Int(1),
                ]),
            ]),
        ]);
        let parsed = parse(&spec, &mut |k| Box::leak(k.to_string().into_boxed_str()));
        assert_eq!(parsed, Some(keynum(BeginSearch::Index(2), 0, 1)));
        // An unknown begin_search: no spec.
        let unknown = Reply::Array(vec![
            b("begin_search"),
            Reply::Array(vec![
                b("type"),
                b("unknown"),
                b("spec"),
                Reply::Array(vec![]),
            ]),
        ]);
        assert_eq!(parse(&unknown, &mut |_| ""), None);
    }
}
