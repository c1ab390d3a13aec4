//! Hashes: accounting, OBJECT ENCODING, and the codec payload.

use std::borrow::Borrow;
use std::hash::Hash;

use bytes::Bytes;
use hashbrown::HashMap;

/// A hash value: field → value. It keeps its fields' and values' bytes up to date as it
/// changes, so accounting a write costs O(1) however large the hash is (the store re-accounts
/// a value after every write).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashValue {
    map: HashMap<Bytes, Bytes>,
    /// Sum of the fields' and values' lengths.
    bytes: usize,
}

impl HashValue {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, field: &Q) -> Option<&Bytes>
    where
        Bytes: Borrow<Q>,
    {
        self.map.get(field)
    }

    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, field: &Q) -> bool
    where
        Bytes: Borrow<Q>,
    {
        self.map.contains_key(field)
    }

    /// Sets `field` to `value`; the previous value, if any.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> Option<Bytes> {
        let added = field.len() + value.len();
        let flen = field.len();
        let old = self.map.insert(field, value);
        self.bytes += added;
        if let Some(old) = &old {
            // The field was there already: its name is counted once.
            self.bytes -= flen + old.len();
        }
        old
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, field: &Q) -> Option<Bytes>
    where
        Bytes: Borrow<Q>,
    {
        let (f, v) = self.map.remove_entry(field)?;
        self.bytes -= f.len() + v.len();
        Some(v)
    }

    pub fn iter(&self) -> hashbrown::hash_map::Iter<'_, Bytes, Bytes> {
        self.map.iter()
    }

    pub fn keys(&self) -> hashbrown::hash_map::Keys<'_, Bytes, Bytes> {
        self.map.keys()
    }

    pub fn values(&self) -> hashbrown::hash_map::Values<'_, Bytes, Bytes> {
        self.map.values()
    }
}

impl FromIterator<(Bytes, Bytes)> for HashValue {
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(iter: I) -> HashValue {
        let mut h = HashValue::default();
        for (f, v) in iter {
            h.insert(f, v);
        }
        h
    }
}

/// Accounted bytes per hash field beyond field and value bytes (table slot, two `Bytes`
/// headers, allocation rounding).
pub const FIELD_OVERHEAD: usize = 48;

/// Accounted bytes of a hash: each field's and value's bytes plus [`FIELD_OVERHEAD`].
#[inline]
pub fn payload_bytes(h: &HashValue) -> usize {
    h.bytes + h.len() * FIELD_OVERHEAD
}

/// The encoding Redis would pick: `listpack` while the hash is within
/// `hash-max-listpack-entries` and every field and value within `hash-max-listpack-value`,
/// else `hashtable` (from the current contents: Redis never converts back, this does).
pub fn encoding(h: &HashValue, limits: &super::limits::Limits) -> &'static str {
    let max_len = usize::try_from(limits.hash_max_listpack_value).unwrap_or(usize::MAX);
    let small = h.len() as i64 <= limits.hash_max_listpack_entries
        && h.iter()
            .all(|(f, v)| f.len() <= max_len && v.len() <= max_len);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_bytes_follow_every_change() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let recount = |h: &HashValue| {
            h.iter()
                .map(|(f, v)| f.len() + v.len() + FIELD_OVERHEAD)
                .sum::<usize>()
        };
        let mut h = HashValue::default();
        assert_eq!(h.insert(b("f"), b("vv")), None);
        assert_eq!(h.insert(b("g"), b("")), None);
        assert_eq!(h.insert(b("f"), b("value")), Some(b("vv")));
        assert_eq!(payload_bytes(&h), recount(&h));
        assert_eq!(h.remove(&b"f"[..]), Some(b("value")));
        assert_eq!(h.remove(&b"nope"[..]), None);
        assert_eq!(payload_bytes(&h), recount(&h));
        let h: HashValue = [(b("a"), b("1")), (b("a"), b("22"))].into_iter().collect();
        assert_eq!((h.len(), payload_bytes(&h)), (1, 3 + FIELD_OVERHEAD));
    }
}
