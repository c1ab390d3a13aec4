//! Hot-path counters: per-command call counts and latency histograms kept in preallocated
//! atomics indexed by the static command table, plus a small per-connection accumulator so a
//! pipelined batch costs a few atomic adds per distinct command instead of several per command.
//! Nothing here allocates or locks after start-up; the exporter reads the atomics at scrape time.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use membership::command::{COMMANDS, CommandId, CommandSpec};

/// What every client-facing server counts about its connections (INFO stats and the
/// `autocache_connections_*` and `autocache_network_bytes` metrics).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections accepted (`total_connections_received`).
    pub received: AtomicU64,
    /// Connections refused for `maxclients` (`rejected_connections`).
    pub rejected: AtomicU64,
    /// Bytes read from clients (`total_net_input_bytes`).
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients (`total_net_output_bytes`).
    pub net_output_bytes: AtomicU64,
}

/// Upper bounds (nanoseconds) of the command latency buckets: 10 µs to 1 s.
pub const LATENCY_BOUNDS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];
/// Buckets including +Inf.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// Upper bounds of the fan-out width histogram (shards per fanned-out command).
pub const WIDTH_BOUNDS: [u64; 8] = [1, 2, 3, 4, 6, 8, 16, 64];

/// Which bucket of `bounds` a value falls into (`bounds.len()` = +Inf). Linear: most values
/// land in the first few buckets.
#[inline]
pub fn bucket(bounds: &[u64], v: u64) -> usize {
    bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len())
}

/// A histogram in atomics: non-cumulative bucket counts and a sum, in integer units
/// (nanoseconds for durations).
pub struct AtomicHistogram {
    pub bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// A consistent-enough copy for export: cumulative counts per bound, then the total.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)` per finite bound.
    pub buckets: Vec<(u64, u64)>,
    pub count: u64,
    pub sum: u64,
}

impl HistogramSnapshot {
    /// An estimate of the `q` quantile (0..=1): the bucket holding it, interpolated linearly
    /// between its bounds; values past the last bound are reported as that bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0);
        let (mut lower, mut below) = (0u64, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank {
                let inside = (cumulative - below).max(1) as f64;
                let fraction = (rank - below as f64) / inside;
                return Some(lower as f64 + (bound - lower) as f64 * fraction);
            }
            lower = bound;
            below = cumulative;
        }
        Some(lower as f64)
    }
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [u64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn record(&self, v: u64) {
        if let Some(c) = self.counts.get(bucket(self.bounds, v)) {
            c.fetch_add(1, Relaxed);
        }
        self.sum.fetch_add(v, Relaxed);
    }

    pub fn record_duration(&self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds pre-aggregated bucket counts (same bounds) and their sum.
    fn add(&self, counts: &[u32], sum: u64) {
        for (c, &n) in self.counts.iter().zip(counts) {
            if n > 0 {
                c.fetch_add(u64::from(n), Relaxed);
            }
        }
        self.sum.fetch_add(sum, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Forgets everything recorded (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Relaxed);
        }
        self.sum.store(0, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (b, c) in self.bounds.iter().zip(self.counts.iter()) {
            acc += c.load(Relaxed);
            buckets.push((*b, acc));
        }
        let inf = self.counts.last().map_or(0, |c| c.load(Relaxed));
        HistogramSnapshot {
            buckets,
            count: acc + inf,
            sum: self.sum.load(Relaxed),
        }
    }
}

/// Counters of one command, on their own cache lines so commands served by different cores do
/// not share lines.
#[repr(align(64))]
pub struct CommandCounters {
    pub ok: AtomicU64,
    /// Error replies, rejected ones included.
    pub err: AtomicU64,
    /// Error replies given before the command ran (arity, authentication, redirection, OOM):
    /// Redis's `rejected_calls`; `err - rejected` is its `failed_calls`.
    pub rejected: AtomicU64,
    pub latency: AtomicHistogram,
}

/// The `cmd` label of every slot: `get`, `client|setname` (Redis's commandstats names), and
/// `unknown` for names not in the table.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names = vec![String::new(); slots()];
    for top in COMMANDS {
        if let Some(n) = names.get_mut(top.id as usize) {
            *n = top.name.to_string();
        }
        for sub in top.subcommands {
            if let Some(n) = names.get_mut(sub.id as usize) {
                *n = format!("{}|{}", top.name, sub.name);
            }
        }
    }
    let n = names.len();
    if let Some(other) = names.get_mut(n.saturating_sub(2)) {
        *other = "other".into();
    }
    if let Some(last) = names.last_mut() {
        *last = "unknown".into();
    }
    names
});

fn slots() -> usize {
    let max = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
        .map(|c| c.id as usize)
        .max()
        .unwrap_or(0);
    // One more for commands learned from backends (`other`), one for unknown names.
    max + 3
}

/// The slot of a command in [`CommandStats`]; `None` (unknown command) maps to the last slot.
#[inline]
pub fn slot_of(id: Option<CommandId>) -> usize {
    match id {
        // Neither kind has a row of its own: learned commands are `other`; no server runs a
        // refused one.
        Some(CommandId::Learned | CommandId::Unserved) => NAMES.len() - 2,
        Some(id) => id as usize,
        None => NAMES.len() - 1,
    }
}

/// The `cmd` label of the command `spec` (a subcommand is named `container|sub`).
pub fn label_of(spec: &CommandSpec) -> &'static str {
    NAMES
        .get(slot_of(Some(spec.id)))
        .map_or("unknown", String::as_str)
}

/// The `cmd` label of a slot (see [`slot_of`]).
pub fn label_at(slot: usize) -> &'static str {
    NAMES.get(slot).map_or("unknown", String::as_str)
}

/// Calls, errors and latency of every command of the static table.
pub struct CommandStats {
    slots: Box<[CommandCounters]>,
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            slots: (0..NAMES.len())
                .map(|_| CommandCounters {
                    ok: AtomicU64::new(0),
                    err: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                    latency: AtomicHistogram::new(&LATENCY_BOUNDS_NS),
                })
                .collect(),
        }
    }
}

impl CommandStats {
    /// Records one command directly (paths that are not batched).
    pub fn record(&self, slot: usize, ok: bool, latency: Option<Duration>) {
        if let Some(c) = self.slots.get(slot) {
            if ok {
                c.ok.fetch_add(1, Relaxed);
            } else {
                c.err.fetch_add(1, Relaxed);
            }
            if let Some(d) = latency {
                c.latency.record_duration(d);
            }
        }
    }

    /// Zeroes every command's counters (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for c in self.slots.iter() {
            c.ok.store(0, Relaxed);
            c.err.store(0, Relaxed);
            c.rejected.store(0, Relaxed);
            c.latency.reset();
        }
    }

    /// Every command that ran at least once: `(cmd label, counters)`.
    pub fn used(&self) -> impl Iterator<Item = (&'static str, &CommandCounters)> {
        self.slots
            .iter()
            .zip(NAMES.iter())
            .filter(|(c, _)| c.ok.load(Relaxed) + c.err.load(Relaxed) > 0)
            .map(|(c, n)| (n.as_str(), c))
    }

    pub fn get(&self, label: &str) -> Option<&CommandCounters> {
        NAMES
            .iter()
            .position(|n| n == label)
            .and_then(|i| self.slots.get(i))
    }
}

/// How a command ended, for [`LocalStats::record_outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The command ran and replied with an error.
    Failed,
    /// Refused before it ran (arity, authentication, redirection, OOM ...).
    Rejected,
}

struct LocalEntry {
    slot: u16,
    ok: u32,
    err: u32,
    rejected: u32,
    sum: u64,
    counts: [u32; LATENCY_BUCKETS],
}

/// Per-connection accumulator, flushed into [`CommandStats`] once per batch.
#[derive(Default)]
pub struct LocalStats {
    entries: Vec<LocalEntry>,
}

/// Distinct commands kept before an early flush (a batch rarely mixes more).
const LOCAL_ENTRIES: usize = 8;

impl LocalStats {
    #[inline]
    pub fn record(&mut self, global: &CommandStats, slot: usize, ok: bool, ns: Option<u64>) {
        let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
        self.record_outcome(global, slot, outcome, ns);
    }

    #[inline]
    pub fn record_outcome(
        &mut self,
        global: &CommandStats,
        slot: usize,
        outcome: Outcome,
        ns: Option<u64>,
    ) {
        let slot16 = slot as u16;
        let i = match self.entries.iter().position(|e| e.slot == slot16) {
            Some(i) => i,
            None => {
                if self.entries.len() >= LOCAL_ENTRIES {
                    self.flush(global);
                }
                self.entries.push(LocalEntry {
                    slot: slot16,
                    ok: 0,
                    err: 0,
                    rejected: 0,
                    sum: 0,
                    counts: [0; LATENCY_BUCKETS],
                });
                self.entries.len() - 1
            }
        };
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        match outcome {
            Outcome::Ok => e.ok += 1,
            Outcome::Failed => e.err += 1,
            Outcome::Rejected => {
                e.err += 1;
                e.rejected += 1;
            }
        }
        if let Some(ns) = ns
            && let Some(c) = e.counts.get_mut(bucket(&LATENCY_BOUNDS_NS, ns))
        {
            *c += 1;
            e.sum += ns;
        }
        if e.ok + e.err >= u32::MAX / 2 {
            self.flush(global);
        }
    }

    /// Publishes what was accumulated: a few atomic adds per distinct command.
    pub fn flush(&mut self, global: &CommandStats) {
        for e in self.entries.drain(..) {
            let Some(c) = global.slots.get(usize::from(e.slot)) else {
                continue;
            };
            if e.ok > 0 {
                c.ok.fetch_add(u64::from(e.ok), Relaxed);
            }
            if e.err > 0 {
                c.err.fetch_add(u64::from(e.err), Relaxed);
            }
            if e.rejected > 0 {
                c.rejected.fetch_add(u64::from(e.rejected), Relaxed);
            }
            c.latency.add(&e.counts, e.sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use membership::command::lookup;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket(&LATENCY_BOUNDS_NS, 0), 0);
        assert_eq!(bucket(&LATENCY_BOUNDS_NS, 10_000), 0);
        assert_eq!(bucket(&LATENCY_BOUNDS_NS, 10_001), 1);
        assert_eq!(bucket(&LATENCY_BOUNDS_NS, 2_000_000_000), 16);
        let h = AtomicHistogram::new(&WIDTH_BOUNDS);
        for w in [2, 3, 3, 100] {
            h.record(w);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.sum, 108);
        assert_eq!(s.buckets[0], (1, 0));
        assert_eq!(s.buckets[1], (2, 1));
        assert_eq!(s.buckets[2], (3, 3));
        assert_eq!(s.buckets[7], (64, 3));
    }

    #[test]
    fn local_batches_add_up() {
        let g = CommandStats::default();
        let get = slot_of(lookup(b"get").map(|c| c.id));
        let set = slot_of(lookup(b"SET").map(|c| c.id));
        let mut l = LocalStats::default();
        for i in 0..10 {
            l.record(&g, get, i % 5 != 0, Some(20_000));
        }
        l.record(&g, set, true, None);
        l.record(&g, slot_of(None), false, Some(1));
        assert_eq!(g.used().count(), 0, "nothing published before the flush");
        l.flush(&g);
        let c = g.get("get").expect("get");
        assert_eq!((c.ok.load(Relaxed), c.err.load(Relaxed)), (8, 2));
        let snap = c.latency.snapshot();
        assert_eq!(snap.count, 10);
        assert_eq!(snap.buckets[0].1, 0);
        assert_eq!(snap.buckets[1].1, 10);
        assert_eq!(g.get("set").map(|c| c.latency.count()), Some(0));
        assert_eq!(g.get("unknown").map(|c| c.err.load(Relaxed)), Some(1));
        let labels: Vec<_> = g.used().map(|(n, _)| n).collect();
        assert_eq!(labels, ["get", "set", "unknown"]);
    }

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let h = AtomicHistogram::new(&LATENCY_BOUNDS_NS);
        assert_eq!(h.snapshot().quantile(0.5), None);
        for _ in 0..100 {
            h.record(15_000);
        }
        let s = h.snapshot();
        // All 100 in (10 µs, 25 µs]: the median is halfway, p99 near the top.
        assert_eq!(s.quantile(0.5), Some(17_500.0));
        assert_eq!(s.quantile(0.99), Some(24_850.0));
        h.record(5_000_000_000);
        assert_eq!(h.snapshot().quantile(1.0), Some(1_000_000_000.0));
        h.reset();
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn rejected_calls_count_as_errors_too() {
        let g = CommandStats::default();
        let get = slot_of(lookup(b"get").map(|c| c.id));
        let mut l = LocalStats::default();
        l.record_outcome(&g, get, Outcome::Rejected, None);
        l.record_outcome(&g, get, Outcome::Failed, None);
        l.record_outcome(&g, get, Outcome::Ok, None);
        l.flush(&g);
        let c = g.get("get").expect("get");
        let counts = [&c.ok, &c.err, &c.rejected].map(|a| a.load(Relaxed));
        assert_eq!(counts, [1, 2, 1]);
        g.reset();
        assert_eq!(g.used().count(), 0);
    }

    #[test]
    fn subcommands_carry_their_container() {
        let client = lookup(b"client").expect("client");
        let setname = client.subcommand(b"setname").expect("setname");
        assert_eq!(label_of(setname), "client|setname");
        assert_eq!(label_of(client), "client");
    }
}
