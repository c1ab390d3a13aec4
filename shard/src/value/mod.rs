//! The value model: one [`Value`] variant per Redis type, its [`Kind`] (the stable type tag
//! on disk and on the wire, and the name TYPE answers), the encoding OBJECT ENCODING reports,
//! the bytes the store accounts for it, and the one binary [`codec`] the warm tier and slot
//! migration both use.
//!
//! Adding a type is a variant here, a variant of [`Kind`] with a new code, a file like
//! `string.rs` with its accounting, encoding and payload codec, and its command module; every
//! decision below is an exhaustive `match`, so the compiler lists each place the new type must
//! be handled (no arm falls back to "string").

pub mod codec;
pub mod geohash;
pub mod hash;
pub mod limits;
pub mod list;
pub mod set;
pub mod stream;
pub mod string;
pub mod zset;

use bytes::Bytes;

pub use hash::HashValue;
pub use list::{ELEMENT_OVERHEAD, ListValue};
pub use set::SetValue;
pub use stream::StreamValue;
pub use zset::ZSetValue;

/// A key's value, in RAM.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
    /// Inline: a `HashValue` is no larger than the string's handle (a small hash is its packed
    /// buffer alone; a large one boxes its table itself).
    Hash(HashValue),
    /// Boxed: a list is larger than the string's handle, and the enum (in every key's entry)
    /// stays the size of that handle plus the tag.
    List(Box<ListValue>),
    /// Boxed for the same reason as `List`.
    Set(Box<SetValue>),
    /// Inline, as `Hash`.
    ZSet(ZSetValue),
    /// Boxed, as `List`.
    Stream(Box<StreamValue>),
}

/// A value's Redis type. Its [`Kind::code`] is part of the warm tier's on-disk records and of
/// the slot-migration wire format, so codes are never changed or reused; a new type takes the
/// next free code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    String,
    Hash,
    List,
    Set,
    ZSet,
    Stream,
}

impl Kind {
    /// Every kind, in code order (tests walk it; the compiler does not check it is complete,
    /// `kind_codes_are_stable_and_distinct` does).
    pub const ALL: [Kind; 6] = [
        Kind::String,
        Kind::Hash,
        Kind::List,
        Kind::Set,
        Kind::ZSet,
        Kind::Stream,
    ];

    /// The stable one-byte code in records and migration frames.
    pub const fn code(self) -> u8 {
        match self {
            Kind::String => 0,
            Kind::Hash => 1,
            Kind::List => 2,
            Kind::Set => 3,
            Kind::ZSet => 4,
            Kind::Stream => 5,
        }
    }

    /// The kind of a stored code; `None` for a code this build does not know (a record written
    /// by a newer build, or corruption).
    pub const fn from_code(code: u8) -> Option<Kind> {
        match code {
            0 => Some(Kind::String),
            1 => Some(Kind::Hash),
            2 => Some(Kind::List),
            3 => Some(Kind::Set),
            4 => Some(Kind::ZSet),
            5 => Some(Kind::Stream),
            _ => None,
        }
    }

    /// The TYPE reply (and SCAN's TYPE filter).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }
}

impl Value {
    #[inline]
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::String,
            Value::Hash(_) => Kind::Hash,
            Value::List(_) => Kind::List,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
            Value::Stream(_) => Kind::Stream,
        }
    }

    /// The TYPE reply.
    #[inline]
    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// The encoding Redis would use for this value (OBJECT ENCODING, DEBUG OBJECT) under
    /// these thresholds.
    pub fn encoding(&self, limits: &limits::Limits) -> &'static str {
        match self {
            Value::Str(b) => string::encoding(b),
            Value::Hash(h) => hash::encoding(h, limits),
            Value::List(l) => list::encoding(l, limits),
            Value::Set(s) => set::encoding(s),
            Value::ZSet(z) => zset::encoding(z),
            Value::Stream(x) => stream::encoding(x),
        }
    }

    /// Accounted bytes of the value (the store adds the key and a per-entry overhead). On the
    /// SET path, so a plain match with no allocation.
    #[inline]
    pub fn payload_bytes(&self) -> usize {
        match self {
            Value::Str(b) => string::payload_bytes(b),
            Value::Hash(h) => hash::payload_bytes(h),
            Value::List(l) => list::payload_bytes(l),
            Value::Set(s) => set::payload_bytes(s),
            Value::ZSet(z) => zset::payload_bytes(z),
            Value::Stream(x) => stream::payload_bytes(x),
        }
    }

    /// Whether the value is an aggregate with no elements left: Redis never keeps one, so the
    /// store deletes the key. A string is never empty in this sense (`""` is a value).
    #[inline]
    pub fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // Redis keeps an empty stream (its last ID and groups live on).
            Value::Stream(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use limits::Limits;

    /// One value of every kind (a new variant fails to compile here until it has one).
    pub(crate) fn one_of_each() -> Vec<Value> {
        Kind::ALL
            .iter()
            .map(|k| match k {
                Kind::String => Value::Str(Bytes::from_static(b"v")),
                Kind::Hash => {
                    let mut h = HashValue::default();
                    h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
                    Value::Hash(h)
                }
                Kind::List => Value::List(Box::new(ListValue::from([Bytes::from_static(b"e")]))),
                Kind::Set => Value::Set(Box::new(SetValue::from_iter([&b"m"[..]]))),
                Kind::ZSet => Value::ZSet([(&b"m"[..], 1.5)].into_iter().collect()),
                Kind::Stream => {
                    let mut s = StreamValue::new();
                    s.append(stream::StreamId::new(1, 1), &[&b"f"[..], b"v"]);
                    Value::Stream(Box::new(s))
                }
            })
            .collect()
    }

    #[test]
    fn kind_codes_are_stable_and_distinct() {
        // On disk and on the wire since the first warm-tier format: never change these.
        assert_eq!(Kind::String.code(), 0);
        assert_eq!(Kind::Hash.code(), 1);
        assert_eq!(Kind::List.code(), 2);
        assert_eq!(Kind::Set.code(), 3);
        assert_eq!(Kind::ZSet.code(), 4);
        assert_eq!(Kind::Stream.code(), 5);
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(usize::from(k.code()), i, "ALL is in code order");
            assert_eq!(Kind::from_code(k.code()), Some(*k));
        }
        assert_eq!(Kind::from_code(Kind::ALL.len() as u8), None);
        assert_eq!(Kind::from_code(255), None);
        // ALL names every kind: each value's kind is in it.
        for v in one_of_each() {
            assert!(Kind::ALL.contains(&v.kind()));
        }
    }

    #[test]
    fn type_names_and_encodings_match_redis() {
        let s = |b: &'static [u8]| Value::Str(Bytes::from_static(b));
        assert_eq!(s(b"x").type_name(), "string");
        assert_eq!(s(b"12345").encoding(&Limits::default()), "int");
        assert_eq!(
            s(b"-9223372036854775808").encoding(&Limits::default()),
            "int"
        );
        assert_eq!(
            s(b"012").encoding(&Limits::default()),
            "embstr",
            "not a canonical integer"
        );
        assert_eq!(s(&[b'a'; 44]).encoding(&Limits::default()), "embstr");
        assert_eq!(s(&[b'a'; 45]).encoding(&Limits::default()), "raw");
        let mut h = HashValue::default();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
        let small = Value::Hash(h.clone());
        assert_eq!(
            (small.type_name(), small.encoding(&Limits::default())),
            ("hash", "listpack")
        );
        h.insert(Bytes::from(vec![b'f'; 65]), Bytes::new());
        assert_eq!(Value::Hash(h).encoding(&Limits::default()), "hashtable");
        let many: HashValue = (0..129)
            .map(|i| (Bytes::from(format!("f{i}")), Bytes::new()))
            .collect();
        assert_eq!(Value::Hash(many).encoding(&Limits::default()), "hashtable");
        let small: ListValue = (0..100).map(|i| Bytes::from(format!("e{i}"))).collect();
        let small = Value::List(Box::new(small));
        assert_eq!(
            (small.type_name(), small.encoding(&Limits::default())),
            ("list", "listpack")
        );
        let big: ListValue = (0..100).map(|_| Bytes::from(vec![b'x'; 100])).collect();
        assert_eq!(
            Value::List(Box::new(big)).encoding(&Limits::default()),
            "quicklist"
        );
    }

    #[test]
    fn accounting() {
        assert_eq!(Value::Str(Bytes::from_static(b"abc")).payload_bytes(), 3);
        let mut h = HashValue::default();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"vv"));
        h.insert(Bytes::from_static(b""), Bytes::from_static(b""));
        let packed = hash::payload_bytes(&h);
        let v = Value::Hash(h);
        assert_eq!(v.payload_bytes(), packed);
        assert!(!v.is_empty_aggregate());
        assert!(Value::Hash(HashValue::default()).is_empty_aggregate());
        assert!(!Value::Str(Bytes::new()).is_empty_aggregate());
        let l = Value::List(Box::new(ListValue::from([Bytes::from_static(b"ab")])));
        assert_eq!(
            l.payload_bytes(),
            2 + ELEMENT_OVERHEAD + list::NODE_OVERHEAD
        );
        assert!(!l.is_empty_aggregate());
        assert!(Value::List(Box::default()).is_empty_aggregate());
        let s = Value::Set(Box::new(SetValue::from_iter([&b"ab"[..], b"1"])));
        assert_eq!(
            (s.type_name(), s.encoding(&Limits::default())),
            ("set", "hashtable")
        );
        let mut long = SetValue::from_iter([&b"ab"[..], b"1"]);
        // Past the 22 bytes a member keeps inline.
        long.insert(&[b'x'; 23]);
        let long = Value::Set(Box::new(long));
        assert!(long.payload_bytes() >= s.payload_bytes() + 23);
        let ints = Value::Set(Box::new(SetValue::from_iter([&b"1"[..], b"-5"])));
        assert_eq!(ints.encoding(&Limits::default()), "intset");
        assert!(ints.payload_bytes() < s.payload_bytes());
        assert!(Value::Set(Box::default()).is_empty_aggregate());
    }
}
