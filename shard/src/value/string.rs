//! Strings: accounting, OBJECT ENCODING, and the codec payload (the bytes themselves).

use bytes::Bytes;

use crate::protocol::strict_i64;

/// Accounted bytes of a string value: its length (the entry overhead covers the rest).
#[inline]
pub fn payload_bytes(b: &Bytes) -> usize {
    b.len()
}

/// Redis's choice: `int` for a canonical 64-bit integer, `embstr` up to 44 bytes, else `raw`.
pub fn encoding(b: &Bytes) -> &'static str {
    if b.len() <= 20 && strict_i64(b).is_some() {
        "int"
    } else if b.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

/// Codec payload: the bytes, unframed (the record ends where the string does).
pub fn encoded_len(b: &Bytes) -> usize {
    b.len()
}

pub fn encode(b: &Bytes, out: &mut Vec<u8>) {
    out.extend_from_slice(b);
}

/// Every byte of the payload is the string; no payload is malformed.
pub fn decode(payload: &[u8]) -> Bytes {
    Bytes::copy_from_slice(payload)
}
