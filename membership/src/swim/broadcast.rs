//! Slot-ownership claims and the slot table they build.
//!
//! A [`Claim`] says "slots `first..=last` belong to `owner` as of config epoch `epoch`". Every
//! node keeps, per slot, the greatest claim it has seen, ordered by `(epoch, owner id)`: the
//! highest epoch wins and equal epochs are broken by the larger node id. That merge is
//! commutative, associative and idempotent, so nodes that have seen the same claims hold the
//! same table whatever the order they arrived in (a last-writer-wins register per slot).
//!
//! Claims travel two ways: as foca custom broadcasts ([`ClaimHandler`], fast, bounded number of
//! transmissions) and by the agent's anti-entropy exchange (complete, catches nodes that missed
//! broadcasts during a partition).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use foca::{BroadcastHandler, Invalidates};

use super::identity::{NodeId, NodeInfo};
use crate::slot::{SLOT_COUNT, Slot};
use crate::topology::{SlotMap, TopologyError};

const NO_OWNER: u16 = u16::MAX;

/// Encoded size of one claim: first, last (u16), epoch (u64), owner (20 bytes).
pub const CLAIM_LEN: usize = 2 + 2 + 8 + 20;
/// Version byte in front of each broadcast item, so the format can change.
const BROADCAST_VERSION: u8 = 1;

/// Ownership of an inclusive slot range at a config epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    pub first: u16,
    pub last: u16,
    pub owner: NodeId,
    pub epoch: u64,
}

/// Why claim bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim item has the wrong length ({0} bytes)")]
    Length(usize),
    #[error("unknown claim format version {0}")]
    Version(u8),
    #[error("bad slot range {0}-{1}")]
    Range(u16, u16),
    #[error("claim without an owner")]
    NoOwner,
}

impl Claim {
    /// The ordering key of the merge rule.
    fn rank(&self) -> (u64, NodeId) {
        (self.epoch, self.owner)
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn validate(&self) -> Result<(), ClaimError> {
        if self.first > self.last || self.last >= SLOT_COUNT {
            return Err(ClaimError::Range(self.first, self.last));
        }
        if self.owner == NodeId::UNKNOWN {
            return Err(ClaimError::NoOwner);
        }
        Ok(())
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.last.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(self.owner.as_bytes());
    }

    pub fn decode(b: &[u8]) -> Result<Claim, ClaimError> {
        let Ok(b) = <&[u8; CLAIM_LEN]>::try_from(b) else {
            return Err(ClaimError::Length(b.len()));
        };
        let (first, rest) = b.split_at(2);
        let (last, rest) = rest.split_at(2);
        let (epoch, owner) = rest.split_at(8);
        let claim = Claim {
            first: u16::from_be_bytes([first[0], first[1]]),
            last: u16::from_be_bytes([last[0], last[1]]),
            epoch: u64::from_be_bytes(epoch.try_into().map_err(|_| ClaimError::Length(0))?),
            owner: NodeId(owner.try_into().map_err(|_| ClaimError::Length(0))?),
        };
        claim.validate()?;
        Ok(claim)
    }

    /// The bytes of a foca broadcast item carrying this claim.
    pub fn to_broadcast(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + CLAIM_LEN);
        out.push(BROADCAST_VERSION);
        self.encode(&mut out);
        out
    }

    pub fn from_broadcast(b: &[u8]) -> Result<Claim, ClaimError> {
        match b.split_first() {
            Some((&BROADCAST_VERSION, rest)) => Claim::decode(rest),
            Some((&v, _)) => Err(ClaimError::Version(v)),
            None => Err(ClaimError::Length(0)),
        }
    }
}

/// A contiguous run of slots with one owner and one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRange {
    pub first: u16,
    pub last: u16,
    pub owner: NodeId,
    pub epoch: u64,
}

/// The merged claims: owner and epoch of every slot.
#[derive(Clone)]
pub struct SlotTable {
    /// Interned owner ids; `owner` holds indexes into it.
    ids: Vec<NodeId>,
    owner: Box<[u16]>,
    epoch: Box<[u64]>,
}

/// Equal when every slot has the same owner and epoch (however the owners were interned).
impl PartialEq for SlotTable {
    fn eq(&self, other: &Self) -> bool {
        if self.epoch != other.epoch {
            return false;
        }
        // Translate our owner indexes into the other table's once, then compare slot by slot.
        let map: Vec<u16> = self
            .ids
            .iter()
            .map(|id| {
                other
                    .ids
                    .iter()
                    .position(|o| o == id)
                    .map_or(NO_OWNER - 1, |i| i as u16)
            })
            .collect();
        self.owner.iter().zip(other.owner.iter()).all(|(&a, &b)| {
            if a == NO_OWNER {
                b == NO_OWNER
            } else {
                map.get(usize::from(a)) == Some(&b) && b != NO_OWNER - 1
            }
        })
    }
}

impl Eq for SlotTable {}

impl Default for SlotTable {
    fn default() -> Self {
        SlotTable::new()
    }
}

impl std::fmt::Debug for SlotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.ranges()
                    .iter()
                    .map(|r| format!("{}-{} {:?} e{}", r.first, r.last, r.owner, r.epoch)),
            )
            .finish()
    }
}

impl SlotTable {
    /// No slot owned.
    pub fn new() -> SlotTable {
        SlotTable {
            ids: Vec::new(),
            owner: vec![NO_OWNER; usize::from(SLOT_COUNT)].into_boxed_slice(),
            epoch: vec![0; usize::from(SLOT_COUNT)].into_boxed_slice(),
        }
    }

    /// A table built from claims (in any order).
    pub fn from_claims(claims: &[Claim]) -> SlotTable {
        let mut t = SlotTable::new();
        for c in claims {
            t.apply(c);
        }
        t
    }

    fn intern(&mut self, id: NodeId) -> u16 {
        match self.ids.iter().position(|&i| i == id) {
            Some(i) => i as u16,
            None => {
                // More than 65535 distinct owners over a table's life is not a real cluster;
                // the last index is reused rather than overflowing into NO_OWNER.
                if self.ids.len() >= usize::from(NO_OWNER) {
                    return NO_OWNER - 1;
                }
                self.ids.push(id);
                (self.ids.len() - 1) as u16
            }
        }
    }

    /// Merges a claim; returns how many slots changed owner or epoch.
    pub fn apply(&mut self, c: &Claim) -> usize {
        if c.validate().is_err() {
            return 0;
        }
        let mut idx = None;
        let mut changed = 0;
        for s in usize::from(c.first)..=usize::from(c.last) {
            let cur = self.owner[s];
            let cur_rank = (cur != NO_OWNER).then(|| (self.epoch[s], self.ids[usize::from(cur)]));
            if cur_rank.is_none_or(|r| c.rank() > r) {
                let i = *idx.get_or_insert_with(|| self.intern(c.owner));
                self.owner[s] = i;
                self.epoch[s] = c.epoch;
                changed += 1;
            }
        }
        changed
    }

    pub fn owner(&self, slot: Slot) -> Option<NodeId> {
        self.owner_at(slot.index())
    }

    fn owner_at(&self, s: usize) -> Option<NodeId> {
        match self.owner.get(s) {
            Some(&NO_OWNER) | None => None,
            Some(&i) => self.ids.get(usize::from(i)).copied(),
        }
    }

    pub fn epoch(&self, slot: Slot) -> u64 {
        self.epoch.get(slot.index()).copied().unwrap_or(0)
    }

    /// The highest epoch of any slot (0 when nothing is owned).
    pub fn max_epoch(&self) -> u64 {
        self.epoch.iter().copied().max().unwrap_or(0)
    }

    pub fn unowned(&self) -> usize {
        self.owner.iter().filter(|&&o| o == NO_OWNER).count()
    }

    pub fn is_empty(&self) -> bool {
        self.unowned() == usize::from(SLOT_COUNT)
    }

    /// Slots owned per node.
    pub fn counts(&self) -> HashMap<NodeId, usize> {
        let mut per_idx = vec![0usize; self.ids.len()];
        for &o in self.owner.iter() {
            if let Some(c) = per_idx.get_mut(usize::from(o)) {
                *c += 1;
            }
        }
        self.ids
            .iter()
            .zip(per_idx)
            .filter(|(_, c)| *c > 0)
            .map(|(&id, c)| (id, c))
            .collect()
    }

    /// Distinct owners, sorted.
    pub fn owners(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.counts().into_keys().collect();
        v.sort();
        v
    }

    /// Maximal runs of slots with the same owner and epoch, in slot order (unowned slots are
    /// left out).
    pub fn ranges(&self) -> Vec<SlotRange> {
        let mut out: Vec<SlotRange> = Vec::new();
        for s in 0..usize::from(SLOT_COUNT) {
            let Some(owner) = self.owner_at(s) else {
                continue;
            };
            let epoch = self.epoch[s];
            let s = s as u16;
            match out.last_mut() {
                Some(r) if r.last + 1 == s && r.owner == owner && r.epoch == epoch => r.last = s,
                _ => out.push(SlotRange {
                    first: s,
                    last: s,
                    owner,
                    epoch,
                }),
            }
        }
        out
    }

    /// The table as claims (one per range): replaying them elsewhere rebuilds this table.
    pub fn claims(&self) -> Vec<Claim> {
        self.ranges()
            .into_iter()
            .map(|r| Claim {
                first: r.first,
                last: r.last,
                owner: r.owner,
                epoch: r.epoch,
            })
            .collect()
    }

    /// A 64-bit FNV-1a digest of the ranges, compared by the anti-entropy exchange.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut buf = Vec::with_capacity(CLAIM_LEN);
        for c in self.claims() {
            buf.clear();
            c.encode(&mut buf);
            for &b in &buf {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

/// The key foca keeps per queued broadcast: a newer claim covering an older one replaces it in
/// the queue (the older one could no longer change anything).
#[derive(Debug, Clone)]
pub struct ClaimKey(Claim);

impl Invalidates for ClaimKey {
    fn invalidates(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.first <= b.first && b.last <= a.last && a.rank() >= b.rank()
    }
}

/// Foca's broadcast handler: merges received claims into the shared table and asks foca to keep
/// spreading those that changed something.
///
/// The table sits behind a mutex shared with the agent because foca owns the handler; both live
/// on the agent task, so the lock is never contended. Readers elsewhere use snapshots.
pub struct ClaimHandler {
    table: Arc<Mutex<SlotTable>>,
    changed: Arc<Mutex<bool>>,
}

impl ClaimHandler {
    pub fn new(table: Arc<Mutex<SlotTable>>, changed: Arc<Mutex<bool>>) -> ClaimHandler {
        ClaimHandler { table, changed }
    }
}

impl<T> BroadcastHandler<T> for ClaimHandler {
    type Key = ClaimKey;
    type Error = ClaimError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&T>,
    ) -> Result<Option<ClaimKey>, ClaimError> {
        let claim = Claim::from_broadcast(data)?;
        let n = self
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&claim);
        if n > 0 {
            *self.changed.lock().unwrap_or_else(PoisonError::into_inner) = true;
        }
        // Our own claims (no sender) are always queued; others' only while they are news, so a
        // claim stops travelling once everyone has it.
        Ok((n > 0 || sender.is_none()).then_some(ClaimKey(claim)))
    }
}

/// A read-only snapshot of slot ownership with node addresses, for routing and for rendering
/// `CLUSTER SLOTS` / `CLUSTER SHARDS`.
///
/// Both parts are shared between successive snapshots when only the other one changed.
#[derive(Clone, Debug, Default)]
pub struct SlotOwnership {
    table: Arc<SlotTable>,
    nodes: Arc<HashMap<NodeId, NodeInfo>>,
}

/// One range of [`SlotOwnership::ranges`] with the owner's addresses (when known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRange<'a> {
    pub first: u16,
    pub last: u16,
    pub epoch: u64,
    pub owner: NodeId,
    pub node: Option<&'a NodeInfo>,
}

impl SlotOwnership {
    pub fn new(table: SlotTable, nodes: HashMap<NodeId, NodeInfo>) -> SlotOwnership {
        SlotOwnership {
            table: Arc::new(table),
            nodes: Arc::new(nodes),
        }
    }

    pub(crate) fn from_parts(
        table: Arc<SlotTable>,
        nodes: Arc<HashMap<NodeId, NodeInfo>>,
    ) -> SlotOwnership {
        SlotOwnership { table, nodes }
    }

    pub(crate) fn table_arc(&self) -> Arc<SlotTable> {
        self.table.clone()
    }

    pub(crate) fn nodes_arc(&self) -> Arc<HashMap<NodeId, NodeInfo>> {
        self.nodes.clone()
    }

    pub fn table(&self) -> &SlotTable {
        &self.table
    }

    /// The node serving `slot`, if the slot is owned and the owner's addresses are known (a
    /// claim can arrive before the membership news about its owner).
    pub fn owner(&self, slot: Slot) -> Option<&NodeInfo> {
        self.nodes.get(&self.table.owner(slot)?)
    }

    pub fn owner_id(&self, slot: Slot) -> Option<NodeId> {
        self.table.owner(slot)
    }

    pub fn epoch(&self, slot: Slot) -> u64 {
        self.table.epoch(slot)
    }

    /// The cluster's current config epoch (the highest of any slot).
    pub fn config_epoch(&self) -> u64 {
        self.table.max_epoch()
    }

    pub fn unowned(&self) -> usize {
        self.table.unowned()
    }

    pub fn node(&self, id: &NodeId) -> Option<&NodeInfo> {
        self.nodes.get(id)
    }

    /// Ranges in slot order, ready to render `CLUSTER SLOTS`.
    pub fn ranges(&self) -> Vec<OwnedRange<'_>> {
        self.table
            .ranges()
            .into_iter()
            .map(|r| OwnedRange {
                first: r.first,
                last: r.last,
                epoch: r.epoch,
                owner: r.owner,
                node: self.nodes.get(&r.owner),
            })
            .collect()
    }

    /// Per owner, its ranges (merged across epochs), ready to render `CLUSTER SHARDS`; owners
    /// sorted by their first slot.
    pub fn shards(&self) -> Vec<(NodeId, Vec<(u16, u16)>)> {
        let mut per: Vec<(NodeId, Vec<(u16, u16)>)> = Vec::new();
        for r in self.table.ranges() {
            let i = match per.iter().position(|(id, _)| *id == r.owner) {
                Some(i) => i,
                None => {
                    per.push((r.owner, Vec::new()));
                    per.len() - 1
                }
            };
            let ranges = &mut per[i].1;
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == r.first => *last = r.last,
                _ => ranges.push((r.first, r.last)),
            }
        }
        per
    }

    /// The proxy's routing type ([`SlotMap`], cluster mode) keyed by client address. Ranges of
    /// owners whose address is not known yet are left unowned.
    pub fn to_slot_map(&self) -> Result<SlotMap, TopologyError> {
        let ranges: Vec<(u16, u16, String)> = self
            .ranges()
            .into_iter()
            .filter_map(|r| Some((r.first, r.last, r.node?.client_addr.clone())))
            .collect();
        SlotMap::from_ranges(&ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId([n; 20])
    }

    fn claim(first: u16, last: u16, owner: u8, epoch: u64) -> Claim {
        Claim {
            first,
            last,
            owner: id(owner),
            epoch,
        }
    }

    #[test]
    fn encode_decode() {
        let c = claim(10, 20, 3, 99);
        assert_eq!(Claim::from_broadcast(&c.to_broadcast()), Ok(c));
        assert!(Claim::from_broadcast(&[]).is_err());
        assert!(Claim::from_broadcast(&[2; 33]).is_err());
        let mut bad = claim(20, 10, 3, 1).to_broadcast();
        assert_eq!(Claim::from_broadcast(&bad), Err(ClaimError::Range(20, 10)));
        bad.pop();
        assert!(Claim::from_broadcast(&bad).is_err());
        assert!(Claim::from_broadcast(&claim(0, 16384, 1, 1).to_broadcast()).is_err());
        assert_eq!(
            Claim::from_broadcast(&claim(0, 1, 0, 1).to_broadcast()),
            Err(ClaimError::NoOwner)
        );
    }

    #[test]
    fn highest_epoch_wins_then_node_id() {
        let mut t = SlotTable::new();
        assert_eq!(t.apply(&claim(0, 16383, 1, 1)), 16384);
        assert_eq!(
            t.apply(&claim(0, 99, 2, 1)),
            100,
            "same epoch, larger id wins"
        );
        assert_eq!(
            t.apply(&claim(0, 99, 1, 1)),
            0,
            "same epoch, smaller id loses"
        );
        assert_eq!(t.apply(&claim(50, 149, 1, 2)), 100, "higher epoch wins");
        assert_eq!(t.apply(&claim(50, 149, 3, 1)), 0, "lower epoch loses");
        assert_eq!(t.owner(Slot::new(0).expect("slot")), Some(id(2)));
        assert_eq!(t.owner(Slot::new(60).expect("slot")), Some(id(1)));
        assert_eq!(t.epoch(Slot::new(60).expect("slot")), 2);
        assert_eq!(t.max_epoch(), 2);
        assert_eq!(t.unowned(), 0);
        assert_eq!(t.ranges().len(), 3);
    }

    #[test]
    fn merge_is_order_independent() {
        let claims = [
            claim(0, 16383, 1, 1),
            claim(0, 8000, 2, 2),
            claim(4000, 12000, 3, 2),
            claim(100, 200, 4, 3),
            claim(7000, 7001, 1, 3),
        ];
        let a = SlotTable::from_claims(&claims);
        let mut rev = claims;
        rev.reverse();
        let b = SlotTable::from_claims(&rev);
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
        // Replaying a table's own claims rebuilds it exactly.
        assert_eq!(SlotTable::from_claims(&a.claims()), a);
        assert_ne!(a.digest(), SlotTable::new().digest());
    }

    #[test]
    fn invalidation_and_handler() {
        let newer = ClaimKey(claim(0, 100, 1, 2));
        assert!(newer.invalidates(&ClaimKey(claim(10, 20, 2, 1))));
        assert!(!newer.invalidates(&ClaimKey(claim(10, 200, 2, 1))));
        assert!(!ClaimKey(claim(10, 20, 2, 1)).invalidates(&newer));

        let table = Arc::new(Mutex::new(SlotTable::new()));
        let changed = Arc::new(Mutex::new(false));
        let mut h = ClaimHandler::new(table.clone(), changed.clone());
        let item = claim(0, 10, 1, 1).to_broadcast();
        let peer = 7u32;
        let r = BroadcastHandler::<u32>::receive_item(&mut h, &item, Some(&peer));
        assert!(matches!(r, Ok(Some(_))));
        assert!(*changed.lock().expect("lock"));
        let r = BroadcastHandler::<u32>::receive_item(&mut h, &item, Some(&peer));
        assert!(matches!(r, Ok(None)), "old news is not re-broadcast");
        let r = BroadcastHandler::<u32>::receive_item(&mut h, &item, None);
        assert!(matches!(r, Ok(Some(_))), "own claims are always queued");
        assert!(BroadcastHandler::<u32>::receive_item(&mut h, b"x", None).is_err());
    }

    #[test]
    fn snapshot_renders_ranges_and_slot_map() {
        let t = SlotTable::from_claims(&[claim(0, 16383, 1, 1), claim(8192, 16383, 2, 2)]);
        let info = |n: u8, port: u16| NodeInfo {
            id: id(n),
            client_addr: format!("127.0.0.1:{port}"),
            cluster_addr: format!("127.0.0.1:{}", port + 10000).parse().expect("addr"),
        };
        let nodes = [(id(1), info(1, 7001)), (id(2), info(2, 7002))].into();
        let snap = SlotOwnership::new(t, nodes);
        let slot = Slot::for_key(b"foo"); // 12182
        assert_eq!(snap.owner(slot).map(|n| n.id), Some(id(2)));
        assert_eq!(snap.epoch(slot), 2);
        assert_eq!(snap.config_epoch(), 2);
        let r = snap.ranges();
        assert_eq!((r[0].first, r[0].last, r[0].epoch), (0, 8191, 1));
        assert_eq!(
            snap.shards(),
            vec![(id(1), vec![(0, 8191)]), (id(2), vec![(8192, 16383)])]
        );
        let map = snap.to_slot_map().expect("map");
        assert_eq!(map.nodes(), ["127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(map.owner(slot), Some(1));
    }
}
