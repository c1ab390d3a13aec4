//! Hashes: accounting, OBJECT ENCODING, and the codec payload.

use bytes::Bytes;
use hashbrown::HashMap;

/// A hash value: field → value.
pub type HashValue = HashMap<Bytes, Bytes>;

/// Accounted bytes per hash field beyond field and value bytes (table slot, two `Bytes`
/// headers, allocation rounding).
pub const FIELD_OVERHEAD: usize = 48;

/// Redis's `hash-max-listpack-entries` and `hash-max-listpack-value` defaults.
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;

/// Accounted bytes of a hash: each field's and value's bytes plus [`FIELD_OVERHEAD`].
#[inline]
pub fn payload_bytes(h: &HashValue) -> usize {
    h.iter()
        .map(|(f, v)| f.len() + v.len() + FIELD_OVERHEAD)
        .sum()
}

/// The encoding Redis would pick with its default limits: `listpack` while small, else
/// `hashtable`.
pub fn encoding(h: &HashValue) -> &'static str {
    let small = h.len() <= LISTPACK_MAX_ENTRIES
        && h.iter()
            .all(|(f, v)| f.len() <= LISTPACK_MAX_VALUE && v.len() <= LISTPACK_MAX_VALUE);
    if small { "listpack" } else { "hashtable" }
}

// Codec payload: per field, `u32 BE length, field, u32 BE length, value`, in the table's
// iteration order (decoding does not depend on it), to the end of the record.

pub fn encoded_len(h: &HashValue) -> usize {
    h.iter().map(|(f, v)| 8 + f.len() + v.len()).sum()
}

pub fn encode(h: &HashValue, out: &mut Vec<u8>) {
    for (f, v) in h.iter() {
        // Lengths are u32 since the format's first version. A field or value of 4 GiB or
        // more (possible only with `proto-max-bulk-len` raised that far) would not round-trip.
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
}

/// `None` when a length runs past the end of the payload (a truncated or corrupt record).
pub fn decode(mut payload: &[u8]) -> Option<HashValue> {
    fn take(p: &mut &[u8]) -> Option<Bytes> {
        let (len, rest) = p.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let bytes = rest.get(..len)?;
        *p = rest.get(len..)?;
        Some(Bytes::copy_from_slice(bytes))
    }
    let mut h = HashValue::default();
    while !payload.is_empty() {
        let f = take(&mut payload)?;
        let v = take(&mut payload)?;
        h.insert(f, v);
    }
    Some(h)
}
