//! The one binary encoding of a value with its expiry: the warm tier's redb records
//! (`store::warm`) and the records inside slot-migration batches (`migrate::wire`) are both
//! exactly this, so a value moves between RAM, disk and other nodes through one codec.
//!
//! Version 1, the only version so far (every field big-endian):
//!
//! ```text
//! offset 0   u8   version = 1
//!        1   u64  generation (warm tier: which demotion wrote it; migration: 0)
//!        9   u64  expiry, Unix ms (0 = no TTL)
//!       17   u8   kind code (`Kind::code`: 0 string, 1 hash, 2 list, 3 set, 4 zset,
//!                 5 stream)
//!       18   ...  payload, to the end of the record, by kind:
//!                 string: the bytes
//!                 hash:   per field: u32 length, field, u32 length, value
//!                 list:   per element, head first: u32 length, element
//!                 set:    per member, any order: u32 length, member (integers as text)
//!                 zset:   u8 representation (0 listpack, 1 skiplist), then per member
//!                         in order: u64 score bits, u32 length, member
//!                 stream: nodes, entries and consumer groups (`stream.rs`)
//! ```
//!
//! These are byte for byte the records the warm tier and migration wrote before this module
//! existed (golden tests below), so existing warm-tier files load and nodes of either build
//! can migrate slots to each other. A new type is a new kind code, not a new version; a new
//! version is only for a change of the header or of an existing kind's payload, and decoding
//! then matches on the version byte. A build that meets a version or kind it does not know
//! fails with an error, never a guess.

use super::{Kind, Value, hash, list, set, stream, string, zset};

/// The version this build writes.
pub const VERSION: u8 = 1;
/// Bytes before the payload: version, generation, expiry, kind.
pub const HEADER_LEN: usize = 18;

/// A value with its expiry and warm-tier generation, as encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub generation: u64,
    /// Absolute Unix ms; 0 = no TTL.
    pub expire_at: u64,
    pub value: Value,
}

/// What a record says about itself without decoding its value (the warm tier indexes every
/// record at start-up from this alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub generation: u64,
    pub expire_at: u64,
    pub kind: Kind,
    /// Bytes after the header.
    pub payload_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record is truncated")]
    Truncated,
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    #[error("unknown value type code {0}")]
    UnknownKind(u8),
}

/// The exact length of `value`'s record.
pub fn encoded_len(value: &Value) -> usize {
    HEADER_LEN
        + match value {
            Value::Str(b) => string::encoded_len(b),
            Value::Hash(h) => hash::encoded_len(h),
            Value::List(l) => list::encoded_len(l),
            Value::Set(s) => set::encoded_len(s),
            Value::ZSet(z) => zset::encoded_len(z),
            Value::Stream(x) => stream::encoded_len(x),
        }
}

pub fn encode(generation: u64, expire_at: u64, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(value));
    encode_into(&mut out, generation, expire_at, value);
    out
}

/// Appends `value`'s record to `out` (migration batches are built this way, with no
/// intermediate buffer per record).
pub fn encode_into(out: &mut Vec<u8>, generation: u64, expire_at: u64, value: &Value) {
    out.push(VERSION);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&expire_at.to_be_bytes());
    out.push(value.kind().code());
    match value {
        Value::Str(b) => string::encode(b, out),
        Value::Hash(h) => hash::encode(h, out),
        Value::List(l) => list::encode(l, out),
        Value::Set(s) => set::encode(s, out),
        Value::ZSet(z) => zset::encode(z, out),
        Value::Stream(x) => stream::encode(x, out),
    }
}

pub fn decode_header(b: &[u8]) -> Result<Header, DecodeError> {
    let (&version, rest) = b.split_first().ok_or(DecodeError::Truncated)?;
    // The only version so far; a second one becomes a `match` here.
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (generation, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(DecodeError::Truncated)?;
    let (expire_at, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(DecodeError::Truncated)?;
    let (&code, payload) = rest.split_first().ok_or(DecodeError::Truncated)?;
    Ok(Header {
        generation: u64::from_be_bytes(*generation),
        expire_at: u64::from_be_bytes(*expire_at),
        kind: Kind::from_code(code).ok_or(DecodeError::UnknownKind(code))?,
        payload_len: payload.len(),
    })
}

pub fn decode(b: &[u8]) -> Result<Record, DecodeError> {
    let h = decode_header(b)?;
    let payload = b.get(HEADER_LEN..).ok_or(DecodeError::Truncated)?;
    let value = match h.kind {
        Kind::String => Value::Str(string::decode(payload)),
        Kind::Hash => Value::Hash(hash::decode(payload).ok_or(DecodeError::Truncated)?),
        Kind::List => Value::List(Box::new(
            list::decode(payload).ok_or(DecodeError::Truncated)?,
        )),
        Kind::Set => Value::Set(Box::new(
            set::decode(payload).ok_or(DecodeError::Truncated)?,
        )),
        Kind::ZSet => Value::ZSet(zset::decode(payload).ok_or(DecodeError::Truncated)?),
        Kind::Stream => Value::Stream(Box::new(
            stream::decode(payload).ok_or(DecodeError::Truncated)?,
        )),
    };
    Ok(Record {
        generation: h.generation,
        expire_at: h.expire_at,
        value,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::value::{HashValue, ListValue, SetValue, ZSetValue};
    use bytes::Bytes;

    fn set(members: &[&'static [u8]]) -> Value {
        Value::Set(Box::new(members.iter().copied().collect()))
    }

    fn list(elements: &[&'static [u8]]) -> Value {
        Value::List(Box::new(
            elements.iter().map(|e| Bytes::from_static(e)).collect(),
        ))
    }

    /// Bytes from a hex string (golden records in tests).
    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn hash(pairs: &[(&'static [u8], &'static [u8])]) -> Value {
        let h: HashValue = pairs
            .iter()
            .map(|(f, v)| (Bytes::from_static(f), Bytes::from_static(v)))
            .collect();
        Value::Hash(h)
    }

    /// Records written by the warm tier's own `encode` before this module existed (captured
    /// from that code), decoded by this one.
    #[test]
    fn golden_records_of_the_original_format_decode() {
        let cases: [(&str, u64, u64, Value); 5] = [
            (
                "0101020304050607080000018bcfe5687b0068656c6c6f",
                0x0102_0304_0506_0708,
                1_700_000_000_123,
                Value::Str(Bytes::from_static(b"hello")),
            ),
            (
                "010000000000000001000000000000000000",
                1,
                0,
                Value::Str(Bytes::new()),
            ),
            (
                "01000000000000002a000000000000000001000000056669656c640000000576616c7565",
                42,
                0,
                hash(&[(b"field", b"value")]),
            ),
            ("010000000000000003000000000000000901", 3, 9, hash(&[])),
            (
                "010000000000000007000000000000006301000000000000000b656d707479206669656c6400000001610000000131",
                7,
                99,
                hash(&[(b"", b"empty field"), (b"a", b"1")]),
            ),
        ];
        for (hex, generation, expire_at, value) in cases {
            let bytes = unhex(hex);
            let rec = decode(&bytes).expect(hex);
            assert_eq!(
                rec,
                Record {
                    generation,
                    expire_at,
                    value: value.clone()
                }
            );
            let h = decode_header(&bytes).expect("header");
            assert_eq!(h.kind, value.kind());
            assert_eq!(h.payload_len, bytes.len() - HEADER_LEN);
            // And this build writes the same bytes (one-field hashes have one order).
            if !matches!(&value, Value::Hash(h) if h.len() > 1) {
                assert_eq!(encode(generation, expire_at, &value), bytes, "{hex}");
            }
        }
    }

    /// The list payload's layout, pinned: a list record written today must decode forever.
    #[test]
    fn golden_list_record() {
        let bytes = unhex("010000000000000005000000000000000002000000016100000000000000026263");
        let rec = decode(&bytes).expect("decodes");
        assert_eq!((rec.generation, rec.expire_at), (5, 0));
        assert_eq!(rec.value, list(&[b"a", b"", b"bc"]));
        assert_eq!(encode(5, 0, &rec.value), bytes);
    }

    /// The set payload's layout, pinned: a set record written today must decode forever.
    #[test]
    fn golden_set_record() {
        let bytes = unhex("010000000000000005000000000000000003000000016100000000000000026263");
        let rec = decode(&bytes).expect("decodes");
        assert_eq!((rec.generation, rec.expire_at), (5, 0));
        assert_eq!(rec.value, set(&[b"a", b"", b"bc"]));
        // A hashtable set writes its members in insertion order (while nothing was removed).
        assert_eq!(encode(5, 0, &rec.value), bytes);
        // An intset writes its members as text, in ascending order.
        let ints = unhex("010000000000000000000000000000000003000000022d3100000001340000000137");
        assert_eq!(encode(0, 0, &set(&[b"7", b"-1", b"4"])), ints);
        assert_eq!(
            decode(&ints).expect("decodes").value,
            set(&[b"4", b"7", b"-1"])
        );
    }

    /// The sorted-set payload's layout, pinned: a small set of `a` 1.5 and `bc` -inf.
    #[test]
    fn golden_zset_record() {
        let bytes = unhex(concat!(
            "010000000000000006000000000000000004",
            "00",
            "fff0000000000000",
            "00000002",
            "6263",
            "3ff8000000000000",
            "00000001",
            "61",
        ));
        let rec = decode(&bytes).expect("decodes");
        assert_eq!((rec.generation, rec.expire_at), (6, 0));
        let z: ZSetValue = [(&b"a"[..], 1.5), (&b"bc"[..], f64::NEG_INFINITY)]
            .into_iter()
            .collect();
        assert_eq!(rec.value, Value::ZSet(z));
        assert_eq!(encode(6, 0, &rec.value), bytes);
        // A large set keeps its representation; a NaN score or an unknown representation byte
        // is corrupt.
        let big = ZSetValue::with_hint(1_000, 0);
        let v = Value::ZSet(big);
        assert_eq!(
            decode(&encode(1, 0, &v))
                .expect("large")
                .value
                .encoding(&Default::default()),
            "skiplist"
        );
        let mut nan = bytes.clone();
        nan[19..27].copy_from_slice(&f64::NAN.to_bits().to_be_bytes());
        assert_eq!(decode(&nan), Err(DecodeError::Truncated));
        let mut repr = bytes.clone();
        repr[18] = 7;
        assert_eq!(decode(&repr), Err(DecodeError::Truncated));
    }

    #[test]
    fn every_kind_round_trips() {
        let mut big = HashValue::default();
        for i in 0..300 {
            big.insert(Bytes::from(format!("f{i}")), Bytes::from(vec![b'x'; i]));
        }
        let mut values = crate::value::tests::one_of_each();
        values.extend([
            Value::Str(Bytes::new()),
            Value::Str(Bytes::from(vec![0u8; 100_000])),
            hash(&[]),
            hash(&[(b"", b""), (b"f", b"")]),
            Value::Hash(big),
            list(&[]),
            list(&[b"", b"a", b"", b"bc"]),
            Value::List(Box::new(
                (0..300)
                    .map(|i| Bytes::from(vec![b'y'; i]))
                    .collect::<ListValue>(),
            )),
            set(&[]),
            set(&[b"", b"a", b"-1", b"bc"]),
            set(&[b"1", b"-9223372036854775808", b"42"]),
            Value::Set(Box::new(
                (0..300)
                    .map(|i| format!("m{i}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|m| m.as_bytes())
                    .collect::<SetValue>(),
            )),
            Value::Set(Box::new(
                (0..600)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|m| m.as_bytes())
                    .collect::<SetValue>(),
            )),
            Value::ZSet(ZSetValue::default()),
            Value::ZSet(
                (0..300)
                    .map(|i: i32| (&[b'z'; 90][..(i % 90) as usize], f64::from(i) - 0.5))
                    .collect::<ZSetValue>(),
            ),
        ]);
        for value in values {
            for (generation, expire_at) in [(0, 0), (7, 99), (u64::MAX, u64::MAX)] {
                let bytes = encode(generation, expire_at, &value);
                assert_eq!(bytes.len(), encoded_len(&value));
                let mut appended = vec![9, 9];
                encode_into(&mut appended, generation, expire_at, &value);
                assert_eq!(&appended[2..], &bytes[..]);
                let rec = decode(&bytes).expect("decodes");
                assert_eq!((rec.generation, rec.expire_at), (generation, expire_at));
                assert_eq!(rec.value, value);
            }
        }
    }

    #[test]
    fn truncated_or_corrupt_records_are_errors_not_panics() {
        let values = [
            Value::Str(Bytes::from_static(b"hello")),
            hash(&[(b"field", b"value"), (b"f2", b"v2")]),
            list(&[b"element", b"e2"]),
            set(&[b"member", b"m2"]),
            Value::ZSet([(&b"m1"[..], 1.0), (&b"m2"[..], 2.0)].into_iter().collect()),
        ];
        for value in &values {
            let good = encode(1, 2, value);
            for cut in 0..HEADER_LEN {
                assert_eq!(
                    decode(&good[..cut]),
                    Err(DecodeError::Truncated),
                    "cut {cut}"
                );
            }
            let mut whole = 0;
            for cut in HEADER_LEN..good.len() {
                match (value, decode(&good[..cut])) {
                    // A string payload has no framing: any prefix is a shorter string.
                    (Value::Str(_), r) => assert!(r.is_ok()),
                    // A hash cut between two fields is a smaller hash; any other cut is caught
                    // by the field lengths.
                    (Value::Hash(_), Ok(r)) => {
                        assert!(
                            matches!(r.value, Value::Hash(h) if h.len() < 2),
                            "cut {cut}"
                        );
                        whole += 1;
                    }
                    // Likewise a list cut between two elements.
                    (Value::List(_), Ok(r)) => {
                        assert!(
                            matches!(r.value, Value::List(l) if l.len() < 2),
                            "cut {cut}"
                        );
                        whole += 1;
                    }
                    // Likewise a set cut between two members.
                    (Value::Set(_), Ok(r)) => {
                        assert!(matches!(r.value, Value::Set(s) if s.len() < 2), "cut {cut}");
                        whole += 1;
                    }
                    // A sorted set likewise, once its representation byte is there.
                    (Value::ZSet(_), Ok(r)) => {
                        assert!(
                            matches!(r.value, Value::ZSet(z) if z.len() < 2),
                            "cut {cut}"
                        );
                        whole += 1;
                    }
                    // A stream's payload counts everything up front: a cut one never decodes.
                    (Value::Stream(_), Ok(_)) => panic!("a cut stream decoded, cut {cut}"),
                    (
                        Value::Hash(_)
                        | Value::List(_)
                        | Value::Set(_)
                        | Value::ZSet(_)
                        | Value::Stream(_),
                        Err(e),
                    ) => {
                        assert_eq!(e, DecodeError::Truncated, "cut {cut}")
                    }
                }
            }
            if !matches!(value, Value::Str(_)) {
                assert_eq!(whole, 2, "cuts after 0 and 1 complete fields");
            }
        }
        // A field length past the end, and one near u32::MAX.
        let mut bad = encode(1, 0, &hash(&[]));
        bad.extend_from_slice(&[0, 0, 0, 9, b'x']);
        assert_eq!(decode(&bad), Err(DecodeError::Truncated));
        let mut huge = encode(1, 0, &hash(&[]));
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, b'x']);
        assert_eq!(decode(&huge), Err(DecodeError::Truncated));
        // A field without its value.
        let mut half = encode(1, 0, &hash(&[]));
        half.extend_from_slice(&[0, 0, 0, 1, b'f']);
        assert_eq!(decode(&half), Err(DecodeError::Truncated));
    }

    #[test]
    fn unknown_versions_and_kinds_are_errors() {
        let good = encode(1, 2, &Value::Str(Bytes::from_static(b"v")));
        for version in [0u8, 2, 255] {
            let mut b = good.clone();
            b[0] = version;
            assert_eq!(decode(&b), Err(DecodeError::UnknownVersion(version)));
            assert_eq!(decode_header(&b), Err(DecodeError::UnknownVersion(version)));
        }
        let mut b = good.clone();
        b[17] = 200;
        assert_eq!(decode(&b), Err(DecodeError::UnknownKind(200)));
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[9, 9, 9]), Err(DecodeError::UnknownVersion(9)));
    }
}
