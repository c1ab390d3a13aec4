//! Redis Cluster key slots: CRC16/XMODEM of the key (or of its hash tag) modulo 16384.

use std::fmt;

/// Number of hash slots in a Redis Cluster keyspace.
pub const SLOT_COUNT: u16 = 16384;

/// A Redis Cluster hash slot, always in `0..SLOT_COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Slot(u16);

impl Slot {
    /// The slot a key hashes to, honouring hash tags: if the key contains `{...}` with at least
    /// one byte between the first `{` and the next `}`, only that part is hashed.
    pub fn for_key(key: &[u8]) -> Slot {
        let hashed = hash_tag(key).unwrap_or(key);
        Slot(crc16::State::<crc16::XMODEM>::calculate(hashed) & (SLOT_COUNT - 1))
    }

    /// A slot from its number; `None` when out of range.
    pub fn new(n: u16) -> Option<Slot> {
        (n < SLOT_COUNT).then_some(Slot(n))
    }

    /// Parses a slot number as clients send it (decimal ASCII).
    pub fn parse(s: &[u8]) -> Option<Slot> {
        let s = std::str::from_utf8(s).ok()?;
        Slot::new(s.parse().ok()?)
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// All slots in order.
    pub fn all() -> impl DoubleEndedIterator<Item = Slot> + ExactSizeIterator {
        (0..SLOT_COUNT).map(Slot)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The hash tag of a key: the bytes between the first `{` and the first `}` after it, if that
/// span is non-empty (Redis Cluster specification, "Hash tags").
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = key.get(open + 1..)?;
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_xmodem_check_value() {
        assert_eq!(
            crc16::State::<crc16::XMODEM>::calculate(b"123456789"),
            0x31C3
        );
    }

    #[test]
    fn golden_vectors_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.
        let cases: &[(&[u8], u16)] = &[
            (b"foo", 12182),
            (b"bar", 5061),
            (b"hello", 866),
            (b"key:000000000001", 8924),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"user1000", 3443),
            (b"", 0),
            (b"{}", 15257),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
        ];
        for (key, slot) in cases {
            assert_eq!(
                Slot::for_key(key).get(),
                *slot,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{a}b"), Some(&b"a"[..]));
        assert_eq!(hash_tag(b"a{}b"), None);
        assert_eq!(hash_tag(b"a{b"), None);
        assert_eq!(hash_tag(b"}a{b}"), Some(&b"b"[..]));
    }

    #[test]
    fn parse_bounds() {
        assert_eq!(Slot::parse(b"16383").map(Slot::get), Some(16383));
        assert_eq!(Slot::parse(b"16384"), None);
        assert_eq!(Slot::parse(b"-1"), None);
        assert_eq!(Slot::parse(b"x"), None);
    }
}
