//! Lists: accounting, OBJECT ENCODING, and the codec payload.

use std::collections::VecDeque;

use bytes::Bytes;

/// A list value: elements in order, head first. A ring buffer gives O(1) pushes and pops at
/// both ends, which is what every list command but LINSERT/LREM/LSET-by-middle needs; Redis's
/// quicklist trades that same O(1) for compactness, which the accounting below approximates.
pub type ListValue = VecDeque<Bytes>;

/// Accounted bytes per list element beyond its bytes: its `Bytes` header in the ring buffer
/// (four words) plus the allocation's rounding and the buffer's amortised spare capacity.
pub const ELEMENT_OVERHEAD: usize = 40;

/// Redis's default `list-max-listpack-size -2`: one listpack node of at most 8 KB.
const LISTPACK_MAX_BYTES: usize = 8 * 1024;
/// A listpack's own header and terminator.
const LISTPACK_HEADER: usize = 7;

/// Accounted bytes of a list: each element's bytes plus [`ELEMENT_OVERHEAD`].
#[inline]
pub fn payload_bytes(l: &ListValue) -> usize {
    l.iter().map(|e| e.len() + ELEMENT_OVERHEAD).sum()
}

/// The encoding Redis 7.2+ would report with its defaults: `listpack` while the whole list
/// fits one 8 KB listpack, else `quicklist`. Approximations, stated: an element's listpack
/// entry is counted as its bytes plus 2 (encoding byte and back-length, exact for short
/// strings, a few bytes short for long ones and for integers stored as text), and Redis's
/// hysteresis (a quicklist turns back into a listpack only once it has shrunk to half the
/// limit) is not modelled: the answer depends only on the current contents. Redis 7.0 answers
/// `quicklist` for every list.
pub fn encoding(l: &ListValue) -> &'static str {
    let mut size = LISTPACK_HEADER;
    for e in l {
        size += e.len() + 2;
        if size > LISTPACK_MAX_BYTES {
            return "quicklist";
        }
    }
    "listpack"
}

// Codec payload: per element, `u32 BE length, element`, head to tail, to the end of the record.

pub fn encoded_len(l: &ListValue) -> usize {
    l.iter().map(|e| 4 + e.len()).sum()
}

pub fn encode(l: &ListValue, out: &mut Vec<u8>) {
    for e in l {
        // u32 lengths as in the hash payload: an element of 4 GiB or more would not round-trip.
        out.extend_from_slice(&(e.len() as u32).to_be_bytes());
        out.extend_from_slice(e);
    }
}

/// `None` when a length runs past the end of the payload (a truncated or corrupt record).
pub fn decode(mut payload: &[u8]) -> Option<ListValue> {
    let mut l = ListValue::new();
    while !payload.is_empty() {
        let (len, rest) = payload.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        l.push_back(Bytes::copy_from_slice(rest.get(..len)?));
        payload = rest.get(len..)?;
    }
    Some(l)
}
