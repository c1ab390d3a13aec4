//! How the warm tier lays entries out in redb: one table whose keys are `slot (u16 BE) ++ key`,
//! so a slot's keys are one contiguous range, and whose values are records of the value codec
//! (`crate::value::codec`), the same bytes slot migration sends; and the errors of using it.

use membership::{SLOT_COUNT, Slot};
use redb::TableDefinition;

use crate::value::Value;
use crate::value::codec::{self, Header, Record};

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("warm tier database: {0}")]
    Db(#[from] redb::DatabaseError),
    #[error("warm tier transaction: {0}")]
    Txn(#[from] redb::TransactionError),
    #[error("warm tier table: {0}")]
    Table(#[from] redb::TableError),
    #[error("warm tier storage: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("warm tier commit: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("warm tier record for a key is corrupt")]
    Corrupt,
}

pub(super) const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");

/// Bytes of the slot prefix of a table key.
const SLOT_PREFIX: usize = 2;

pub(super) fn db_key(slot: Slot, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(SLOT_PREFIX + key.len());
    k.extend_from_slice(&slot.get().to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The slot number and key of a table key; `None` if it is shorter than the prefix. The slot
/// number is not checked against the slot count here.
pub(super) fn split_db_key(k: &[u8]) -> Option<(u16, &[u8])> {
    let (slot, key) = k.split_first_chunk::<SLOT_PREFIX>()?;
    Some((u16::from_be_bytes(*slot), key))
}

/// The table keys of `slot`: from its prefix up to the next slot's prefix (`None` for the last
/// slot: to the end of the table).
pub(super) fn slot_bounds(slot: Slot) -> ([u8; SLOT_PREFIX], Option<[u8; SLOT_PREFIX]>) {
    let next = (slot.get() < SLOT_COUNT - 1).then(|| (slot.get() + 1).to_be_bytes());
    (slot.get().to_be_bytes(), next)
}

pub(super) fn encode(generation: u64, expire_at: u64, value: &Value) -> Vec<u8> {
    codec::encode(generation, expire_at, value)
}

pub(super) fn decode(v: &[u8]) -> Result<Record, WarmError> {
    codec::decode(v).map_err(|e| {
        tracing::debug!(error = %e, "undecodable warm-tier record");
        WarmError::Corrupt
    })
}

/// What the index needs of a record at start-up, without decoding its value.
pub(super) fn header(v: &[u8]) -> Option<Header> {
    codec::decode_header(v).ok()
}

/// The generation a record was written under (`None` if it cannot be read).
pub(super) fn generation(v: &[u8]) -> Option<u64> {
    header(v).map(|h| h.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keys_group_by_slot() {
        let s = |n| Slot::new(n).expect("slot");
        assert_eq!(db_key(s(0x0102), b"k"), vec![1, 2, b'k']);
        assert_eq!(split_db_key(&[1, 2, b'k']), Some((0x0102, &b"k"[..])));
        assert_eq!(split_db_key(&[1, 2]), Some((0x0102, &b""[..])));
        assert_eq!(split_db_key(&[1]), None);
        assert_eq!(slot_bounds(s(7)), ([0, 7], Some([0, 8])));
        assert_eq!(slot_bounds(s(255)), ([0, 255], Some([1, 0])));
        assert_eq!(slot_bounds(s(SLOT_COUNT - 1)), ([0x3f, 0xff], None));
    }
}
