//! A key as the store holds it, and what an entry costs beyond its key and value: shared by
//! the RAM tables and the warm tier (which sits below them and does not import them).

/// Accounted bytes per key beyond key and value bytes: table slot, entry header, allocations.
pub const ENTRY_OVERHEAD: usize = 96;

/// A key as stored: keys up to 24 bytes live inline in the table bucket, so a lookup compares
/// them without chasing a pointer (one cache miss fewer per command on typical keys).
pub type Key = smallvec::SmallVec<[u8; 24]>;
