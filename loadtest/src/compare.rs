//! Compare mode: the targets are measured in alternation (A B A B ..), each pair of runs gives a
//! throughput ratio and a p99 ratio, and the medians of those ratios are the verdict. Pairing
//! adjacent runs cancels most of a noisy machine's drift; the median discards outlier pairs.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::Config;
use crate::report::{PrefillReport, Report};
use crate::{Endpoint, measure, prefill};

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub targets: Vec<String>,
    pub prefill: Vec<Option<PrefillReport>>,
    /// `rounds[r][t]`: round r, target t.
    pub rounds: Vec<Vec<Report>>,
    /// Every target after the first against the first.
    pub pairs: Vec<PairStats>,
}

/// Candidate vs baseline over the rounds. Ratios are candidate / baseline: throughput > 1 and
/// p99 < 1 mean the candidate is better.
#[derive(Debug, Serialize, PartialEq)]
pub struct PairStats {
    pub baseline: String,
    pub candidate: String,
    pub throughput_ratios: Vec<f64>,
    pub p99_ratios: Vec<f64>,
    pub median_throughput_ratio: f64,
    pub median_p99_ratio: f64,
    pub median_baseline_ops_per_sec: f64,
    pub median_candidate_ops_per_sec: f64,
    pub median_baseline_p99_ms: f64,
    pub median_candidate_p99_ms: f64,
}

/// Median; the mean of the middle two for an even count; NaN-free input assumed (NaNs sort last).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 { b / a } else { 0.0 }
}

/// Pairs run `r` of the baseline with run `r` of the candidate. Inputs: `(ops_per_sec, p99_ms)`.
pub fn pair_stats(
    baseline: &str,
    candidate: &str,
    base: &[(f64, f64)],
    cand: &[(f64, f64)],
) -> PairStats {
    let thr: Vec<f64> = base
        .iter()
        .zip(cand)
        .map(|(a, b)| ratio(a.0, b.0))
        .collect();
    let p99: Vec<f64> = base
        .iter()
        .zip(cand)
        .map(|(a, b)| ratio(a.1, b.1))
        .collect();
    let col =
        |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    PairStats {
        baseline: baseline.to_owned(),
        candidate: candidate.to_owned(),
        median_throughput_ratio: median(&thr),
        median_p99_ratio: median(&p99),
        throughput_ratios: thr,
        p99_ratios: p99,
        median_baseline_ops_per_sec: col(base, |x| x.0),
        median_candidate_ops_per_sec: col(cand, |x| x.0),
        median_baseline_p99_ms: col(base, |x| x.1),
        median_candidate_p99_ms: col(cand, |x| x.1),
    }
}

/// Prefills each target once (if asked), then runs `config.rounds` rounds of every target.
pub async fn run_compare(config: &Config) -> anyhow::Result<CompareReport> {
    if let Err(errs) = config.validate() {
        anyhow::bail!("invalid configuration: {}", errs.join("; "));
    }
    let mut eps = Vec::new();
    for t in &config.targets {
        eps.push(Endpoint::open(config, t).await?);
    }
    let mut pre = Vec::new();
    for ep in &eps {
        pre.push(if config.prefill {
            Some(prefill(config, ep).await?)
        } else {
            None
        });
    }
    let mut rounds = Vec::new();
    for r in 0..config.rounds {
        let mut runs = Vec::new();
        for (i, ep) in eps.iter().enumerate() {
            let label = format!(
                "round {}/{} {} {}",
                r + 1,
                config.rounds,
                target_letter(i),
                ep.name
            );
            runs.push(measure(config, ep, &label).await?);
        }
        rounds.push(runs);
    }
    let summary = |t: usize| -> Vec<(f64, f64)> {
        rounds
            .iter()
            .filter_map(|runs: &Vec<Report>| runs.get(t))
            .map(|r| (r.ops_per_sec, r.totals.p99_ms))
            .collect()
    };
    let pairs = (1..eps.len())
        .map(|t| pair_stats(&eps[0].name, &eps[t].name, &summary(0), &summary(t)))
        .collect();
    Ok(CompareReport {
        targets: config.targets.clone(),
        prefill: pre,
        rounds,
        pairs,
    })
}

pub fn target_letter(i: usize) -> char {
    char::from(b'A' + (i % 26) as u8)
}

impl CompareReport {
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (i, t) in self.targets.iter().enumerate() {
            let _ = writeln!(s, "{} = {t}", target_letter(i));
        }
        let _ = writeln!(
            s,
            "{:<6} {:<3} {:>13} {:>9} {:>9} {:>9} {:>8}",
            "Round", "", "Ops/sec", "p50 ms", "p99 ms", "Max ms", "Errors"
        );
        for (r, runs) in self.rounds.iter().enumerate() {
            for (i, rep) in runs.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "{:<6} {:<3} {:>13.2} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                    r + 1,
                    target_letter(i),
                    rep.ops_per_sec,
                    rep.totals.p50_ms,
                    rep.totals.p99_ms,
                    rep.totals.max_ms,
                    rep.errors_total
                );
            }
        }
        for (k, p) in self.pairs.iter().enumerate() {
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = writeln!(
                s,
                "{} vs A: throughput ratio per pair [{}] median {:.3} ({:.0} vs {:.0} ops/s); p99 ratio per pair [{}] median {:.3} ({:.3} vs {:.3} ms)",
                target_letter(k + 1),
                fmt(&p.throughput_ratios),
                p.median_throughput_ratio,
                p.median_candidate_ops_per_sec,
                p.median_baseline_ops_per_sec,
                fmt(&p.p99_ratios),
                p.median_p99_ratio,
                p.median_candidate_p99_ms,
                p.median_baseline_p99_ms,
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn pair_ratios_are_candidate_over_baseline() {
        let base = [(100.0, 1.0), (200.0, 2.0), (100.0, 1.0)];
        let cand = [(110.0, 0.5), (180.0, 2.0), (300.0, 1.0)];
        let p = pair_stats("a", "b", &base, &cand);
        assert_eq!(p.throughput_ratios, vec![1.1, 0.9, 3.0]);
        assert_eq!(p.p99_ratios, vec![0.5, 1.0, 1.0]);
        assert_eq!(p.median_throughput_ratio, 1.1);
        assert_eq!(p.median_p99_ratio, 1.0);
        assert_eq!(p.median_baseline_ops_per_sec, 100.0);
        assert_eq!(p.median_candidate_ops_per_sec, 180.0);
    }
}
