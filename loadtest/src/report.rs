//! Per-connection statistics (merged at the end), the final report, its table and its JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use tokio::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::OpKind;

/// A latency histogram in microseconds, 3 significant figures, growing as needed (a connection
/// that only ever sees 50 µs replies keeps a small one).
pub fn new_histogram() -> Histogram<u64> {
    let mut h =
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
    h.auto(true);
    h
}

/// What one connection (or one run, once merged) counted.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency of successful requests, per `OpKind::index()`.
    pub hist: [Histogram<u64>; OpKind::COUNT],
    /// Completed requests (successful or not), per kind.
    pub count: [u64; OpKind::COUNT],
    /// Requests that ended in an error, per kind.
    pub failed: [u64; OpKind::COUNT],
    pub get_hits: u64,
    pub get_misses: u64,
    pub mget_key_hits: u64,
    pub mget_key_misses: u64,
    /// Cluster redirects followed.
    pub moved: u64,
    pub asked: u64,
    /// Open loop: how late requests were sent against their schedule (µs).
    pub lag_sum_us: u64,
    pub lag_n: u64,
    pub lag_max_us: u64,
    /// By the first word of the error reply, or `io`, `timeout`, `protocol`.
    pub errors: BTreeMap<String, u64>,
    pub first_send: Option<Instant>,
    pub last_completion: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            hist: std::array::from_fn(|_| new_histogram()),
            count: [0; OpKind::COUNT],
            failed: [0; OpKind::COUNT],
            get_hits: 0,
            get_misses: 0,
            mget_key_hits: 0,
            mget_key_misses: 0,
            moved: 0,
            asked: 0,
            lag_sum_us: 0,
            lag_n: 0,
            lag_max_us: 0,
            errors: BTreeMap::new(),
            first_send: None,
            last_completion: None,
        }
    }
}

impl Stats {
    pub fn record_ok(&mut self, op: OpKind, latency_us: u64) {
        let i = op.index();
        self.count[i] += 1;
        let h = &mut self.hist[i];
        // `record` grows an auto-resizing histogram; `saturating_record` would clip instead.
        if h.record(latency_us.max(1)).is_err() {
            h.saturating_record(latency_us.max(1));
        }
    }

    pub fn record_lag(&mut self, us: u64) {
        self.lag_sum_us += us;
        self.lag_n += 1;
        self.lag_max_us = self.lag_max_us.max(us);
    }

    pub fn record_failed(&mut self, op: OpKind, kind: &str) {
        let i = op.index();
        self.count[i] += 1;
        self.failed[i] += 1;
        self.count_error(kind, 1);
    }

    pub fn count_error(&mut self, kind: &str, n: u64) {
        match self.errors.get_mut(kind) {
            Some(c) => *c += n,
            None => {
                self.errors.insert(kind.to_owned(), n);
            }
        }
    }

    pub fn total_count(&self) -> u64 {
        self.count.iter().sum()
    }

    pub fn merge(&mut self, other: &Stats) {
        for i in 0..OpKind::COUNT {
            if let Err(e) = self.hist[i].add(&other.hist[i]) {
                // Cannot happen with auto-resizing histograms; don't lose the count if it does.
                self.count_error(&format!("histogram:{e:?}"), 1);
            }
            self.count[i] += other.count[i];
            self.failed[i] += other.failed[i];
        }
        self.get_hits += other.get_hits;
        self.get_misses += other.get_misses;
        self.mget_key_hits += other.mget_key_hits;
        self.mget_key_misses += other.mget_key_misses;
        self.moved += other.moved;
        self.asked += other.asked;
        self.lag_sum_us += other.lag_sum_us;
        self.lag_n += other.lag_n;
        self.lag_max_us = self.lag_max_us.max(other.lag_max_us);
        for (k, v) in &other.errors {
            self.count_error(k, *v);
        }
        self.first_send = match (self.first_send, other.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_completion = self.last_completion.max(other.last_completion);
    }

    /// All kinds in one histogram.
    pub fn total_histogram(&self) -> Histogram<u64> {
        let mut t = new_histogram();
        for h in &self.hist {
            if t.add(h).is_err() {
                unreachable!("auto-resizing histograms always add");
            }
        }
        t
    }
}

/// Latency summary of one operation type, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct OpReport {
    pub count: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    pub hits: u64,
    pub misses: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// `(percentile, ms)` at 0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100.
    pub percentiles: Vec<(f64, f64)>,
}

const PERCENTILES: [f64; 11] = [
    0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl OpReport {
    pub fn from_histogram(
        h: &Histogram<u64>,
        count: u64,
        errors: u64,
        secs: f64,
        hits: u64,
        misses: u64,
    ) -> OpReport {
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(p / 100.0))
            }
        };
        OpReport {
            count,
            errors,
            ops_per_sec: if secs > 0.0 { count as f64 / secs } else { 0.0 },
            hits,
            misses,
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            p50_ms: q(50.0),
            p90_ms: q(90.0),
            p99_ms: q(99.0),
            p999_ms: q(99.9),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            percentiles: PERCENTILES.iter().map(|&p| (p, q(p))).collect(),
        }
    }
}

/// One second of the run, as sampled by the progress ticker.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TimelinePoint {
    /// End of the interval, seconds since the start.
    pub t_secs: f64,
    pub ops_per_sec: f64,
    pub set_per_sec: f64,
    pub get_per_sec: f64,
    pub mget_per_sec: f64,
    pub tx_per_sec: f64,
    pub errors: u64,
    pub mean_latency_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PrefillReport {
    pub keys: u64,
    pub errors: u64,
    pub duration_secs: f64,
    pub ops_per_sec: f64,
}

/// The result of one run against one target.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub cluster_nodes: Vec<String>,
    pub mode: &'static str,
    pub connections: usize,
    pub pipeline: usize,
    pub duration_secs: f64,
    /// Completed requests of every kind, failed ones included (an MGET is one request, and so
    /// is a transaction).
    pub requests: u64,
    pub ops_per_sec: f64,
    pub sets: OpReport,
    pub gets: OpReport,
    pub mgets: OpReport,
    /// `MULTI`, N commands, `EXEC`: latency from MULTI's send to EXEC's reply.
    pub transactions: OpReport,
    pub totals: OpReport,
    /// GET hits plus MGET keys found.
    pub hits: u64,
    pub misses: u64,
    pub mget_key_hits: u64,
    pub mget_key_misses: u64,
    /// Cluster mode: -MOVED and -ASK redirects followed.
    pub redirects_moved: u64,
    pub redirects_ask: u64,
    /// Open loop: the target rate, and how late the client sent against its schedule (the part
    /// not caused by a full in-flight window; not counted as latency).
    pub target_rate: Option<f64>,
    pub send_lag_mean_ms: f64,
    pub send_lag_max_ms: f64,
    pub errors: BTreeMap<String, u64>,
    pub errors_total: u64,
    /// Set when the run was cut at its hard deadline with requests still unanswered.
    pub hit_hard_deadline: bool,
    pub timeline: Vec<TimelinePoint>,
    pub prefill: Option<PrefillReport>,
    #[serde(skip)]
    pub histograms: Option<Box<HistogramSet>>,
}

/// The merged histograms behind a report, kept for the plots.
#[derive(Clone, Debug)]
pub struct HistogramSet {
    pub per_op: [Histogram<u64>; OpKind::COUNT],
    pub total: Histogram<u64>,
}

/// Run facts that aren't statistics.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub target: String,
    pub cluster_nodes: Vec<String>,
    pub open_loop: bool,
    pub target_rate: Option<f64>,
    pub connections: usize,
    pub pipeline: usize,
    pub duration_secs: f64,
    pub hit_hard_deadline: bool,
}

impl Report {
    pub fn build(
        info: RunInfo,
        stats: &Stats,
        timeline: Vec<TimelinePoint>,
        prefill: Option<PrefillReport>,
    ) -> Report {
        let secs = info.duration_secs;
        let op = |k: OpKind, hits: u64, misses: u64| {
            let i = k.index();
            OpReport::from_histogram(
                &stats.hist[i],
                stats.count[i],
                stats.failed[i],
                secs,
                hits,
                misses,
            )
        };
        let total = stats.total_histogram();
        let requests = stats.total_count();
        let hits = stats.get_hits + stats.mget_key_hits;
        let misses = stats.get_misses + stats.mget_key_misses;
        let failed: u64 = stats.failed.iter().sum();
        Report {
            target: info.target,
            cluster_nodes: info.cluster_nodes,
            mode: if info.open_loop {
                "open-loop"
            } else {
                "closed-loop"
            },
            connections: info.connections,
            pipeline: info.pipeline,
            duration_secs: secs,
            requests,
            ops_per_sec: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            sets: op(OpKind::Set, 0, 0),
            gets: op(OpKind::Get, stats.get_hits, stats.get_misses),
            mgets: op(OpKind::Mget, stats.mget_key_hits, stats.mget_key_misses),
            transactions: op(OpKind::Tx, 0, 0),
            totals: OpReport::from_histogram(&total, requests, failed, secs, hits, misses),
            hits,
            misses,
            mget_key_hits: stats.mget_key_hits,
            mget_key_misses: stats.mget_key_misses,
            redirects_moved: stats.moved,
            redirects_ask: stats.asked,
            target_rate: info.target_rate,
            send_lag_mean_ms: if stats.lag_n > 0 {
                stats.lag_sum_us as f64 / stats.lag_n as f64 / 1000.0
            } else {
                0.0
            },
            send_lag_max_ms: ms(stats.lag_max_us),
            errors_total: stats.errors.values().sum(),
            errors: stats.errors.clone(),
            hit_hard_deadline: info.hit_hard_deadline,
            timeline,
            prefill,
            histograms: Some(Box::new(HistogramSet {
                per_op: stats.hist.clone(),
                total,
            })),
        }
    }

    /// The memtier-like results table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} ({}, {} connections, pipeline {}): {} requests in {:.2} s",
            self.target,
            self.mode,
            self.connections,
            self.pipeline,
            self.requests,
            self.duration_secs
        );
        if let Some(p) = &self.prefill {
            let _ = writeln!(
                s,
                "prefill: {} keys in {:.2} s ({:.0} ops/s), {} errors",
                p.keys, p.duration_secs, p.ops_per_sec, p.errors
            );
        }
        let _ = writeln!(s, "{}", "=".repeat(118));
        let _ = writeln!(
            s,
            "{:<7} {:>11} {:>12} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "Type",
            "Ops",
            "Ops/sec",
            "Hits",
            "Misses",
            "Errors",
            "Avg ms",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "Max ms"
        );
        let _ = writeln!(s, "{}", "-".repeat(118));
        for (name, r) in [
            ("SETs", &self.sets),
            ("GETs", &self.gets),
            ("MGETs", &self.mgets),
            ("TXs", &self.transactions),
            ("Totals", &self.totals),
        ] {
            if r.count == 0 && name != "Totals" {
                continue;
            }
            let _ = writeln!(
                s,
                "{:<7} {:>11} {:>12.2} {:>10} {:>10} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name,
                r.count,
                r.ops_per_sec,
                r.hits,
                r.misses,
                r.errors,
                r.mean_ms,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms
            );
        }
        if self.mgets.count > 0 {
            let _ = writeln!(
                s,
                "MGET keys: {} hits, {} misses",
                self.mget_key_hits, self.mget_key_misses
            );
        }
        if let Some(rate) = self.target_rate {
            let _ = writeln!(
                s,
                "open loop: target {rate:.0} req/s, achieved {:.0}; send lag behind schedule mean {:.3} ms, max {:.3} ms",
                self.ops_per_sec, self.send_lag_mean_ms, self.send_lag_max_ms
            );
        }
        if self.redirects_moved + self.redirects_ask > 0 {
            let _ = writeln!(
                s,
                "redirects followed: {} MOVED, {} ASK",
                self.redirects_moved, self.redirects_ask
            );
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "errors by kind: {}", list.join(", "));
        }
        if self.hit_hard_deadline {
            let _ = writeln!(
                s,
                "WARNING: stopped at the hard deadline with requests unanswered (counted as timeout)"
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RunInfo {
        RunInfo {
            target: "127.0.0.1:1".into(),
            cluster_nodes: vec![],
            open_loop: false,
            target_rate: None,
            connections: 2,
            pipeline: 1,
            duration_secs: 2.0,
            hit_hard_deadline: false,
        }
    }

    #[test]
    fn percentiles_counts_and_merge() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        // 1..=1000 µs for GET spread over two connections; SETs constant 5 ms.
        for us in 1..=1000u64 {
            let s = if us % 2 == 0 { &mut a } else { &mut b };
            s.record_ok(OpKind::Get, us);
        }
        a.get_hits = 600;
        b.get_misses = 400;
        for _ in 0..10 {
            b.record_ok(OpKind::Set, 5_000);
        }
        b.record_failed(OpKind::Set, "ERR");
        a.record_failed(OpKind::Get, "timeout");
        a.record_failed(OpKind::Get, "ERR");
        a.merge(&b);
        let r = Report::build(info(), &a, vec![], None);
        assert_eq!(r.requests, 1000 + 11 + 2);
        assert_eq!(r.gets.count, 1002);
        assert_eq!(r.gets.errors, 2);
        assert_eq!(r.sets.count, 11);
        assert_eq!((r.gets.hits, r.gets.misses), (600, 400));
        assert_eq!(r.errors.get("ERR"), Some(&2));
        assert_eq!(r.errors.get("timeout"), Some(&1));
        assert_eq!(r.errors_total, 3);
        assert!((r.ops_per_sec - 1013.0 / 2.0).abs() < 1e-9);
        // HDR precision is 3 significant figures.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(r.gets.p50_ms, 0.5), "p50 {}", r.gets.p50_ms);
        assert!(close(r.gets.p90_ms, 0.9), "p90 {}", r.gets.p90_ms);
        assert!(close(r.gets.p99_ms, 0.99), "p99 {}", r.gets.p99_ms);
        assert!(close(r.gets.p999_ms, 0.999), "p99.9 {}", r.gets.p999_ms);
        assert!(close(r.gets.max_ms, 1.0), "max {}", r.gets.max_ms);
        assert!(close(r.gets.mean_ms, 0.5005), "mean {}", r.gets.mean_ms);
        assert!(close(r.sets.p50_ms, 5.0), "sets p50 {}", r.sets.p50_ms);
        // Totals: 1010 successful samples; the top 10 are the 5 ms SETs.
        assert_eq!(r.totals.count, 1013);
        assert!(
            close(r.totals.p99_ms, 1.0),
            "totals p99 {}",
            r.totals.p99_ms
        );
        assert!(close(r.totals.max_ms, 5.0));
        assert_eq!(
            r.mgets,
            OpReport::from_histogram(&new_histogram(), 0, 0, 2.0, 0, 0)
        );
        let table = r.table();
        assert!(table.contains("GETs"), "{table}");
        assert!(!table.contains("MGETs"), "{table}");
        assert!(
            table.contains("errors by kind: ERR=2, timeout=1"),
            "{table}"
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["gets"]["hits"], 600);
        assert_eq!(json["totals"]["count"], 1013);
        assert!(json.get("histograms").is_none());
    }

    #[test]
    fn empty_histograms_report_zeros() {
        let r = Report::build(info(), &Stats::default(), vec![], None);
        assert_eq!(r.totals.p99_ms, 0.0);
        assert_eq!(r.requests, 0);
    }
}
