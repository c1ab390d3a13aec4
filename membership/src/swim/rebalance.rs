//! Slot planning as pure functions: who should own which slots after a bootstrap, a join, a
//! death or a graceful leave. No I/O, no clock; the agent turns plans into claims and the shard
//! (later) migrates data along them.

use std::collections::HashMap;

use super::broadcast::{Claim, SlotTable};
use super::identity::NodeId;
use crate::slot::SLOT_COUNT;

/// Moving the inclusive range `first..=last` from `from` (None: nobody owned it) to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub first: u16,
    pub last: u16,
    pub from: Option<NodeId>,
    pub to: NodeId,
}

impl Move {
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The claim announcing this move at `epoch`.
    pub fn claim(&self, epoch: u64) -> Claim {
        Claim {
            first: self.first,
            last: self.last,
            owner: self.to,
            epoch,
        }
    }
}

/// (1) Bootstrap: the first node of a cluster owns every slot, at epoch 1.
pub fn bootstrap(me: NodeId) -> Claim {
    Claim {
        first: 0,
        last: SLOT_COUNT - 1,
        owner: me,
        epoch: 1,
    }
}

/// Balanced targets for `members` sharing `total` slots: everyone gets `total / n`, and the
/// remainder goes to those already holding the most (ties: smaller id) so that fewest slots move.
fn targets(members: &[NodeId], counts: &HashMap<NodeId, usize>, total: usize) -> Vec<usize> {
    let n = members.len();
    let (base, rem) = (total / n, total % n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| {
        (
            std::cmp::Reverse(counts.get(&members[i]).copied().unwrap_or(0)),
            members[i],
        )
    });
    let mut t = vec![base; n];
    for &i in order.iter().take(rem) {
        t[i] += 1;
    }
    t
}

fn sorted_unique(ids: &[NodeId]) -> Vec<NodeId> {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v
}

/// (2) Rebalance after joins: the fewest contiguous ranges to move between `members` so each
/// owns `total / n` slots (±1), where `total` counts the slots `members` already own. Slots
/// owned by non-members (or by nobody) are not touched: that is [`plan_takeover`]'s job.
///
/// Each donor gives from the top of its highest ranges; receivers are filled in id order. Every
/// move is one range, so the shard can migrate one range at a time.
pub fn plan_rebalance(table: &SlotTable, members: &[NodeId]) -> Vec<Move> {
    let members = sorted_unique(members);
    if members.len() < 2 {
        return Vec::new();
    }
    let counts = table.counts();
    let total: usize = members.iter().filter_map(|m| counts.get(m)).sum();
    let target = targets(&members, &counts, total);
    let mut deficits: Vec<(NodeId, usize)> = members
        .iter()
        .zip(&target)
        .filter_map(|(m, &t)| {
            let c = counts.get(m).copied().unwrap_or(0);
            (c < t).then(|| (*m, t - c))
        })
        .collect();
    let mut moves = Vec::new();
    let ranges = table.ranges();
    let mut recv = 0;
    for (m, &t) in members.iter().zip(&target) {
        let c = counts.get(m).copied().unwrap_or(0);
        let mut excess = c.saturating_sub(t);
        // Donor's ranges from the highest slot down.
        for r in ranges.iter().rev().filter(|r| r.owner == *m) {
            let mut top = usize::from(r.last);
            let bottom = usize::from(r.first);
            while excess > 0 && top + 1 > bottom {
                let Some((to, need)) = deficits.get_mut(recv) else {
                    return moves;
                };
                let avail = top + 1 - bottom;
                let n = excess.min(*need).min(avail);
                moves.push(Move {
                    first: (top + 1 - n) as u16,
                    last: top as u16,
                    from: Some(*m),
                    to: *to,
                });
                excess -= n;
                *need -= n;
                if *need == 0 {
                    recv += 1;
                }
                if n == avail {
                    break;
                }
                top -= n;
            }
            if excess == 0 {
                break;
            }
        }
    }
    moves
}

/// Whether `survivors` may take over slots: they must be a strict majority of every node that
/// is either a survivor or still named as an owner. A minority partition therefore never steals
/// slots, so when the partition heals the majority's (higher-epoch) claims stand unopposed.
pub fn has_quorum(table: &SlotTable, survivors: &[NodeId]) -> bool {
    let mut all = sorted_unique(survivors);
    let n_survivors = all.len();
    all.extend(table.owners());
    all.sort();
    all.dedup();
    n_survivors > 0 && n_survivors * 2 > all.len()
}

/// (3) Takeover: the slots that are unowned or owned by a node `is_dead` says is gone, split
/// between `survivors` so that loads even out: each survivor's quota is what brings it toward
/// the balanced target, the orphaned slots are cut in slot order into contiguous pieces, one per
/// survivor in id order. Deterministic: survivors that agree on the table and the survivor set
/// compute the same plan, so no slot is claimed twice and none is left out.
pub fn plan_takeover(
    table: &SlotTable,
    survivors: &[NodeId],
    is_dead: impl Fn(&NodeId) -> bool,
) -> Vec<Move> {
    let survivors = sorted_unique(survivors);
    if survivors.is_empty() {
        return Vec::new();
    }
    // Fast path (this runs on every plan tick): nothing unowned and no dead owner.
    if table.unowned() == 0
        && !table
            .owners()
            .iter()
            .any(|o| is_dead(o) && !survivors.contains(o))
    {
        return Vec::new();
    }
    let orphans: Vec<(u16, Option<NodeId>)> = (0..SLOT_COUNT)
        .filter_map(|s| {
            let owner = crate::slot::Slot::new(s).and_then(|slot| table.owner(slot));
            match owner {
                None => Some((s, None)),
                Some(o) if is_dead(&o) && !survivors.contains(&o) => Some((s, Some(o))),
                Some(_) => None,
            }
        })
        .collect();
    if orphans.is_empty() {
        return Vec::new();
    }
    let counts = table.counts();
    let owned: usize = survivors.iter().filter_map(|m| counts.get(m)).sum();
    let target = targets(&survivors, &counts, owned + orphans.len());
    let mut left = orphans.len();
    let quotas: Vec<usize> = survivors
        .iter()
        .zip(&target)
        .map(|(m, &t)| {
            let want = t
                .saturating_sub(counts.get(m).copied().unwrap_or(0))
                .min(left);
            left -= want;
            want
        })
        .collect();
    debug_assert_eq!(
        left, 0,
        "targets sum to the total, so deficits cover the orphans"
    );
    let mut moves: Vec<Move> = Vec::new();
    let mut next = orphans.iter();
    for (to, q) in survivors.iter().zip(quotas) {
        for &(slot, from) in next.by_ref().take(q) {
            match moves.last_mut() {
                Some(m) if m.to == *to && m.from == from && m.last + 1 == slot => m.last = slot,
                _ => moves.push(Move {
                    first: slot,
                    last: slot,
                    from,
                    to: *to,
                }),
            }
        }
    }
    // Rounding can leave a remainder only if the debug assertion above fails; hand it to the
    // last survivor rather than leave slots unowned.
    if let Some(last) = survivors.last() {
        for &(slot, from) in next {
            moves.push(Move {
                first: slot,
                last: slot,
                from,
                to: *last,
            });
        }
    }
    moves
}

/// Whether a member's slots may be taken over: it is down, and it has not announced a planned
/// restart whose grace is still running (`back_by`: when that grace ends, if it announced one).
/// Generic over the clock so that the agent passes tokio instants and tests plain numbers.
///
/// A restarting node's slots stay reserved for it (unserved, but nobody claims them) until
/// `back_by`; if it is not back by then, they are taken over as for a crash.
pub fn may_take_over<T: PartialOrd>(down: bool, back_by: Option<T>, now: T) -> bool {
    down && back_by.is_none_or(|t| now >= t)
}

/// Graceful leave: `me`'s slots split between the other `members`, as a takeover.
pub fn plan_leave(table: &SlotTable, me: NodeId, members: &[NodeId]) -> Vec<Move> {
    let others: Vec<NodeId> = members.iter().copied().filter(|m| *m != me).collect();
    plan_takeover(table, &others, |id| *id == me)
        .into_iter()
        .filter(|m| m.from == Some(me))
        .collect()
}

/// Applies moves to a copy of the table at `epoch` (used by tests and by the agent to check a
/// plan before announcing it).
pub fn apply(table: &SlotTable, moves: &[Move], epoch: u64) -> SlotTable {
    let mut t = table.clone();
    for m in moves {
        t.apply(&m.claim(epoch));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId([n; 20])
    }

    fn ids(ns: &[u8]) -> Vec<NodeId> {
        ns.iter().map(|&n| id(n)).collect()
    }

    fn balanced(t: &SlotTable, members: &[NodeId]) -> bool {
        let c = t.counts();
        let v: Vec<usize> = members
            .iter()
            .map(|m| c.get(m).copied().unwrap_or(0))
            .collect();
        let (min, max) = (v.iter().min(), v.iter().max());
        t.unowned() == 0 && min.zip(max).is_some_and(|(a, b)| b - a <= 1)
    }

    #[test]
    fn bootstrap_owns_everything() {
        let t = SlotTable::from_claims(&[bootstrap(id(1))]);
        assert_eq!(t.unowned(), 0);
        assert_eq!(t.counts().get(&id(1)), Some(&16384));
        assert_eq!(t.max_epoch(), 1);
    }

    #[test]
    fn rebalance_nothing_for_one_member_or_balanced() {
        let t = SlotTable::from_claims(&[bootstrap(id(1))]);
        assert!(plan_rebalance(&t, &ids(&[1])).is_empty());
        assert!(plan_rebalance(&t, &[]).is_empty());
        let two = apply(&t, &plan_rebalance(&t, &ids(&[1, 2])), 2);
        assert!(plan_rebalance(&two, &ids(&[1, 2])).is_empty());
    }

    #[test]
    fn rebalance_second_node_gets_one_range() {
        let t = SlotTable::from_claims(&[bootstrap(id(1))]);
        let plan = plan_rebalance(&t, &ids(&[1, 2]));
        assert_eq!(
            plan,
            vec![Move {
                first: 8192,
                last: 16383,
                from: Some(id(1)),
                to: id(2)
            }]
        );
    }

    #[test]
    fn rebalance_joins_one_by_one_stay_balanced_and_minimal() {
        let mut t = SlotTable::from_claims(&[bootstrap(id(1))]);
        let mut members = ids(&[1]);
        for n in 2..=10u8 {
            members.push(id(n));
            let plan = plan_rebalance(&t, &members);
            // The newcomer is the only receiver and gets about 1/n of the slots.
            assert!(plan.iter().all(|m| m.to == id(n)), "n={n} {plan:?}");
            let moved: usize = plan.iter().map(Move::len).sum();
            assert_eq!(moved, 16384 / usize::from(n), "n={n}");
            // About one range per donor (a donor whose slots are split over two ranges may
            // give two).
            assert!(plan.len() <= 2 * usize::from(n - 1), "n={n} {}", plan.len());
            t = apply(&t, &plan, u64::from(n));
            assert!(balanced(&t, &members), "n={n} {:?}", t.counts());
        }
    }

    #[test]
    fn rebalance_many_joins_at_once() {
        let t = SlotTable::from_claims(&[bootstrap(id(1))]);
        let members = ids(&[1, 2, 3, 4, 5]);
        let plan = plan_rebalance(&t, &members);
        assert_eq!(plan.len(), 4);
        let t = apply(&t, &plan, 2);
        assert!(balanced(&t, &members));
    }

    #[test]
    fn rebalance_ignores_orphans_and_non_members() {
        // Node 9 owns half but is not a member: its slots are not moved by a rebalance.
        let t = SlotTable::from_claims(&[
            Claim {
                first: 0,
                last: 8191,
                owner: id(1),
                epoch: 1,
            },
            Claim {
                first: 8192,
                last: 16383,
                owner: id(9),
                epoch: 1,
            },
        ]);
        let plan = plan_rebalance(&t, &ids(&[1, 2]));
        assert!(plan.iter().all(|m| m.from == Some(id(1))));
        assert_eq!(plan.iter().map(Move::len).sum::<usize>(), 4096);
    }

    #[test]
    fn quorum() {
        let t = SlotTable::from_claims(&[bootstrap(id(1))]);
        let t = apply(&t, &plan_rebalance(&t, &ids(&[1, 2, 3, 4, 5])), 2);
        assert!(has_quorum(&t, &ids(&[1, 2, 3])));
        assert!(!has_quorum(&t, &ids(&[4, 5])));
        assert!(!has_quorum(&t, &ids(&[1, 2])));
        assert!(!has_quorum(&t, &[]));
        // Members without slots count as well.
        assert!(has_quorum(&t, &ids(&[1, 2, 3, 6, 7])));
        // An empty table: anyone may bootstrap.
        assert!(has_quorum(&SlotTable::new(), &ids(&[1])));
    }

    #[test]
    fn takeover_splits_dead_nodes_slots() {
        let base = SlotTable::from_claims(&[bootstrap(id(1))]);
        let all = ids(&[1, 2, 3, 4]);
        let t = apply(&base, &plan_rebalance(&base, &all), 2);
        let survivors = ids(&[1, 2, 4]);
        let plan = plan_takeover(&t, &survivors, |n| *n == id(3));
        assert!(plan.iter().all(|m| m.from == Some(id(3))));
        assert_eq!(plan.iter().map(Move::len).sum::<usize>(), 4096);
        // Disjoint moves, every survivor gets a piece.
        for s in &survivors {
            assert!(plan.iter().any(|m| m.to == *s), "{plan:?}");
        }
        let after = apply(&t, &plan, 3);
        assert!(balanced(&after, &survivors), "{:?}", after.counts());
        assert!(!after.counts().contains_key(&id(3)));
        // Deterministic: same inputs, same plan, whatever the survivor order.
        let again = plan_takeover(&t, &ids(&[4, 2, 1]), |n| *n == id(3));
        assert_eq!(plan, again);
    }

    #[test]
    fn takeover_fills_unowned_and_ignores_alive_or_unknown_owners() {
        let t = SlotTable::from_claims(&[Claim {
            first: 0,
            last: 99,
            owner: id(7),
            epoch: 1,
        }]);
        // 7 is not known dead (say, not yet heard of): its slots stay; the unowned rest is split.
        let plan = plan_takeover(&t, &ids(&[1, 2]), |_| false);
        assert_eq!(plan.iter().map(Move::len).sum::<usize>(), 16284);
        assert!(plan.iter().all(|m| m.from.is_none() && m.first >= 100));
        // Nothing to do when all owners are alive.
        let full = SlotTable::from_claims(&[bootstrap(id(1))]);
        assert!(plan_takeover(&full, &ids(&[1, 2]), |n| *n == id(2)).is_empty());
        assert!(plan_takeover(&full, &[], |_| true).is_empty());
        // A survivor is never treated as dead even if the predicate says so.
        assert!(plan_takeover(&full, &ids(&[1]), |_| true).is_empty());
    }

    #[test]
    fn takeover_of_two_dead_nodes_never_double_claims() {
        let base = SlotTable::from_claims(&[bootstrap(id(1))]);
        let all = ids(&[1, 2, 3, 4, 5]);
        let t = apply(&base, &plan_rebalance(&base, &all), 2);
        let survivors = ids(&[1, 3, 5]);
        let plan = plan_takeover(&t, &survivors, |n| [id(2), id(4)].contains(n));
        let mut seen = vec![false; 16384];
        for m in &plan {
            for s in m.first..=m.last {
                assert!(!seen[usize::from(s)], "slot {s} planned twice");
                seen[usize::from(s)] = true;
            }
        }
        let after = apply(&t, &plan, 3);
        assert!(balanced(&after, &survivors), "{:?}", after.counts());
    }

    #[test]
    fn restarting_node_keeps_its_slots_until_its_grace_ends() {
        let base = SlotTable::from_claims(&[bootstrap(id(1))]);
        let all = ids(&[1, 2, 3]);
        let t = apply(&base, &plan_rebalance(&base, &all), 2);
        let survivors = ids(&[1, 3]);
        // Node 2 is down and said it would be back by t=30.
        let dead_at = |now: u64| move |n: &NodeId| may_take_over(*n == id(2), Some(30), now);
        assert!(plan_takeover(&t, &survivors, dead_at(0)).is_empty());
        assert!(plan_takeover(&t, &survivors, dead_at(29)).is_empty());
        let late = plan_takeover(&t, &survivors, dead_at(30));
        assert_eq!(
            late.iter().map(Move::len).sum::<usize>(),
            t.counts()[&id(2)]
        );
        assert!(late.iter().all(|m| m.from == Some(id(2))));
        // Without a notice a down node is taken over at once; a live one never.
        assert!(may_take_over(true, None::<u64>, 0));
        assert!(!may_take_over(false, None::<u64>, 100));
        assert!(!may_take_over(false, Some(1), 100));
    }

    #[test]
    fn leave_hands_everything_over() {
        let base = SlotTable::from_claims(&[bootstrap(id(1))]);
        let all = ids(&[1, 2, 3]);
        let t = apply(&base, &plan_rebalance(&base, &all), 2);
        let plan = plan_leave(&t, id(2), &all);
        assert!(plan.iter().all(|m| m.from == Some(id(2)) && m.to != id(2)));
        let after = apply(&t, &plan, 3);
        assert!(balanced(&after, &ids(&[1, 3])));
        // The last node cannot leave its slots to anyone.
        let solo = SlotTable::from_claims(&[bootstrap(id(1))]);
        assert!(plan_leave(&solo, id(1), &ids(&[1])).is_empty());
    }
}
