//! Merging the replies of a command split over shards (pure functions of the replies): MGET's
//! key order, sums, all-OK, concatenation, SCAN cursors. Any part's error becomes the reply.

use bytes::{Bytes, BytesMut};
use membership::command::Merge;

use crate::protocol::{Proto, Reply, decode_reply, reply_len};

/// MGET's merge without decoding: every part's reply is an array of bulk strings (or nils)
/// whose raw elements are copied to their keys' positions. Writes nothing and returns false
/// when a reply is anything else (an error, say), for the decoding merge to handle.
pub(super) fn splice_key_order(
    replies: &[(Bytes, &[u32])],
    nkeys: usize,
    proto: Proto,
    out: &mut BytesMut,
) -> bool {
    let mut at: Vec<&[u8]> = vec![&[]; nkeys];
    for (r, positions) in replies {
        let Some(head_end) = r.iter().position(|&b| b == b'\n') else {
            return false;
        };
        let count = r
            .get(..head_end.saturating_sub(1))
            .and_then(|h| h.strip_prefix(b"*"))
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok());
        if count != Some(positions.len()) {
            return false;
        }
        let mut rest = &r[head_end + 1..];
        for &p in positions.iter() {
            let Ok(Some(n)) = reply_len(rest) else {
                return false;
            };
            let (elem, tail) = rest.split_at(n);
            if elem.first() != Some(&b'$') {
                return false;
            }
            match at.get_mut(p as usize) {
                Some(slot) => *slot = elem,
                None => return false,
            }
            rest = tail;
        }
        if !rest.is_empty() {
            return false;
        }
    }
    if at.iter().any(|e| e.is_empty()) {
        return false;
    }
    membership::resp::put_len(out, b'*', nkeys);
    for e in at {
        if proto == Proto::Resp3 && e == b"$-1\r\n" {
            out.extend_from_slice(b"_\r\n");
        } else {
            out.extend_from_slice(e);
        }
    }
    true
}

/// A backend reply decoded; an undecodable one becomes an error reply.
pub(super) fn decoded(r: &Bytes) -> Reply {
    decode_reply(r).unwrap_or_else(|e| Reply::Error(format!("ERR backend {e}")))
}

/// Merges a split multi-key command. Any part's error becomes the whole reply (all-or-nothing,
/// like the command on a single server).
pub(super) fn merge_fan(replies: &[(Bytes, &[u32])], nkeys: usize, merge: Merge) -> Reply {
    match merge {
        Merge::KeyOrder => {
            let mut values = vec![Reply::Nil; nkeys];
            for (r, positions) in replies {
                match decoded(r) {
                    Reply::Array(items) if items.len() == positions.len() => {
                        for (v, &p) in items.into_iter().zip(positions.iter()) {
                            if let Some(slot) = values.get_mut(p as usize) {
                                *slot = v;
                            }
                        }
                    }
                    e @ Reply::Error(_) => return e,
                    other => {
                        return Reply::Error(format!(
                            "ERR unexpected backend reply to a split command: {other:?}"
                        ));
                    }
                }
            }
            Reply::Array(values)
        }
        other => merge_all(replies.iter().map(|(r, _)| r), other),
    }
}

pub(super) fn merge_all<'a>(replies: impl IntoIterator<Item = &'a Bytes>, merge: Merge) -> Reply {
    match merge {
        Merge::AllAnd => return merge_and(replies),
        Merge::AnyOk => return merge_any_ok(replies),
        _ => {}
    }
    let mut sum = 0i64;
    let mut concat = Vec::new();
    let mut first = None;
    for r in replies {
        let r = decoded(r);
        if let Reply::Error(_) = r {
            return r;
        }
        match (merge, r) {
            (Merge::Same, r) => {
                if first.is_none() {
                    first = Some(r);
                }
            }
            (Merge::Sum, Reply::Int(n)) => sum = sum.saturating_add(n),
            (Merge::AllOk, Reply::Status(s)) if s == "OK" => {}
            (Merge::Concat | Merge::KeyOrder, Reply::Array(items)) => concat.extend(items),
            (_, other) => {
                return Reply::Error(format!(
                    "ERR unexpected backend reply to a fanned-out command: {other:?}"
                ));
            }
        }
    }
    match merge {
        Merge::Sum => Reply::Int(sum),
        Merge::AllOk => Reply::ok(),
        Merge::Concat | Merge::KeyOrder => Reply::Array(concat),
        Merge::Same => first.unwrap_or(Reply::Nil),
        Merge::AllAnd | Merge::AnyOk => {
            Reply::Error(format!("ERR internal error: {merge:?} merge"))
        }
        // Planned as their own items (Item::Scan, Item::Gather), never merged here.
        Merge::Cursor | Merge::Random | Merge::Info | Merge::Config | Merge::Slowlog => {
            Reply::Error(format!("ERR internal error: {merge:?} merge"))
        }
    }
}

/// Arrays of 0/1 (SCRIPT EXISTS) combined position by position: 1 only where every shard
/// said 1.
fn merge_and<'a>(replies: impl IntoIterator<Item = &'a Bytes>) -> Reply {
    let mut combined: Option<Vec<i64>> = None;
    for r in replies {
        match decoded(r) {
            Reply::Array(items) => {
                let ints: Vec<i64> = items
                    .iter()
                    .map(|i| match i {
                        Reply::Int(n) => *n,
                        _ => 0,
                    })
                    .collect();
                combined = Some(match combined {
                    None => ints,
                    Some(c) if c.len() == ints.len() => c
                        .iter()
                        .zip(&ints)
                        .map(|(a, b)| i64::from(*a != 0 && *b != 0))
                        .collect(),
                    Some(_) => {
                        return Reply::Error(
                            "ERR shards answered arrays of different lengths".into(),
                        );
                    }
                });
            }
            e @ Reply::Error(_) => return e,
            other => {
                return Reply::Error(format!(
                    "ERR unexpected backend reply to a fanned-out command: {other:?}"
                ));
            }
        }
    }
    Reply::Array(
        combined
            .unwrap_or_default()
            .into_iter()
            .map(Reply::Int)
            .collect(),
    )
}

/// SCRIPT KILL, FUNCTION KILL: `+OK` when any shard killed its script, else the most telling
/// error (`-NOTBUSY` only when every shard said so).
fn merge_any_ok<'a>(replies: impl IntoIterator<Item = &'a Bytes>) -> Reply {
    let mut error = None;
    for r in replies {
        match decoded(r) {
            Reply::Status(s) if s == "OK" => return Reply::ok(),
            Reply::Error(e) => {
                if error
                    .as_ref()
                    .is_none_or(|old: &String| old.starts_with("NOTBUSY"))
                {
                    error = Some(e);
                }
            }
            other => {
                return Reply::Error(format!(
                    "ERR unexpected backend reply to a fanned-out command: {other:?}"
                ));
            }
        }
    }
    Reply::Error(error.unwrap_or_else(|| "NOTBUSY No scripts in execution right now.".into()))
}

/// Rewrites a shard's SCAN reply cursor into the proxy cursor.
pub(super) fn merge_scan(r: &Bytes, shard: u64, nshards: u64) -> Reply {
    let reply = decoded(r);
    let Reply::Array(mut items) = reply else {
        return reply;
    };
    let (Some(keys), Some(Reply::Bulk(c))) = (items.pop(), items.pop()) else {
        return Reply::Error("ERR unexpected backend reply to SCAN".into());
    };
    let Some(c) = std::str::from_utf8(&c)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::Error("ERR unexpected backend SCAN cursor".into());
    };
    let next = if c != 0 {
        match c.checked_mul(nshards).and_then(|v| v.checked_add(shard)) {
            Some(v) => v,
            None => {
                return Reply::Error(format!(
                    "ERR SCAN cursor {c} of shard {shard} does not fit the proxy cursor"
                ));
            }
        }
    } else if shard + 1 < nshards {
        shard + 1
    } else {
        0
    };
    Reply::Array(vec![Reply::str(&next.to_string()), keys])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part<'a>(raw: &str, positions: &'a [u32]) -> (Bytes, &'a [u32]) {
        (Bytes::from(raw.to_string()), positions)
    }

    #[test]
    fn mget_parts_are_spliced_in_key_order() {
        // Keys 0 and 2 on one shard, key 1 (missing) on another.
        let replies = [
            part("*2\r\n$1\r\na\r\n$3\r\nccc\r\n", &[0, 2]),
            part("*1\r\n$-1\r\n", &[1]),
        ];
        let mut out = BytesMut::new();
        assert!(splice_key_order(&replies, 3, Proto::Resp2, &mut out));
        assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n$-1\r\n$3\r\nccc\r\n");
        let mut out = BytesMut::new();
        assert!(splice_key_order(&replies, 3, Proto::Resp3, &mut out));
        assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n_\r\n$3\r\nccc\r\n");
        // The spliced bytes are what the decoding merge encodes.
        let merged = merge_fan(&replies, 3, Merge::KeyOrder);
        let mut enc = BytesMut::new();
        crate::protocol::encode(&merged, Proto::Resp2, &mut enc);
        let mut out = BytesMut::new();
        assert!(splice_key_order(&replies, 3, Proto::Resp2, &mut out));
        assert_eq!(out, enc);
    }

    #[test]
    fn anything_but_arrays_of_bulk_strings_is_left_to_the_decoding_merge() {
        for bad in [
            part("-MOVED 1 127.0.0.1:1\r\n", &[0]),
            part("*2\r\n$1\r\na\r\n", &[0]),
            part("*1\r\n:1\r\n", &[0]),
            part("*1\r\n$5\r\nab", &[0]),
            part("*1\r\n$1\r\na\r\n$1\r\nb\r\n", &[0]),
            part("*1\r\n$1\r\na\r\n", &[7]),
        ] {
            let mut out = BytesMut::new();
            assert!(
                !splice_key_order(std::slice::from_ref(&bad), 1, Proto::Resp2, &mut out),
                "{bad:?}"
            );
            assert!(out.is_empty());
        }
        // A key no part answered.
        let mut out = BytesMut::new();
        assert!(!splice_key_order(
            &[part("*1\r\n$1\r\na\r\n", &[0])],
            2,
            Proto::Resp2,
            &mut out
        ));
    }
    #[test]
    fn script_exists_is_the_and_of_the_shards() {
        let a = Bytes::from_static(b"*3\r\n:1\r\n:1\r\n:0\r\n");
        let b = Bytes::from_static(b"*3\r\n:1\r\n:0\r\n:0\r\n");
        assert_eq!(
            merge_all([&a, &b], Merge::AllAnd),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0), Reply::Int(0)])
        );
        let short = Bytes::from_static(b"*1\r\n:1\r\n");
        assert!(matches!(
            merge_all([&a, &short], Merge::AllAnd),
            Reply::Error(_)
        ));
    }

    #[test]
    fn a_kill_succeeds_when_any_shard_killed() {
        let ok = Bytes::from_static(b"+OK\r\n");
        let notbusy = Bytes::from_static(b"-NOTBUSY No scripts in execution right now.\r\n");
        let unkillable = Bytes::from_static(b"-UNKILLABLE Sorry\r\n");
        assert_eq!(
            merge_all([&notbusy, &ok, &notbusy], Merge::AnyOk),
            Reply::ok()
        );
        assert_eq!(
            merge_all([&notbusy, &unkillable], Merge::AnyOk),
            Reply::Error("UNKILLABLE Sorry".into())
        );
        assert_eq!(
            merge_all([&notbusy, &notbusy], Merge::AnyOk),
            Reply::Error("NOTBUSY No scripts in execution right now.".into())
        );
    }
}
