//! The latency monitor (Redis's `latency.c`): events slower than `latency-monitor-threshold`
//! milliseconds (0 = off, the default) are kept per event class, one sample per second (the
//! worst of that second), the last 160 of them, with the worst ever seen. Event classes here:
//! `command` and `fast-command` (a command's execution) and `expire-cycle` (one pass of the
//! active expiry).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES: usize = 160;

#[derive(Default)]
pub struct Series {
    /// `(unix seconds, milliseconds)`, oldest first.
    pub samples: VecDeque<(u64, u64)>,
    pub max: u64,
}

#[derive(Default)]
pub struct LatencyMonitor {
    /// Milliseconds; 0: off.
    pub threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl LatencyMonitor {
    /// Whether anything is recorded (one atomic load on the command path).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.threshold_ms.load(Relaxed) > 0
    }

    /// Records `ms` for `event` at `now_secs` if it reaches the threshold.
    pub fn add_if_needed(&self, event: &'static str, ms: u64, now_secs: u64) {
        let threshold = self.threshold_ms.load(Relaxed);
        if threshold == 0 || ms < threshold {
            return;
        }
        let mut events = self.events.lock();
        let s = events.entry(event).or_default();
        s.max = s.max.max(ms);
        match s.samples.back_mut() {
            Some((t, worst)) if *t == now_secs => *worst = (*worst).max(ms),
            _ => {
                if s.samples.len() == SAMPLES {
                    s.samples.pop_front();
                }
                s.samples.push_back((now_secs, ms));
            }
        }
    }

    /// `(event, time of the latest sample, its latency, the worst)` for every event.
    pub fn latest(&self) -> Vec<(&'static str, u64, u64, u64)> {
        self.events
            .lock()
            .iter()
            .filter_map(|(e, s)| s.samples.back().map(|(t, ms)| (*e, *t, *ms, s.max)))
            .collect()
    }

    pub fn history(&self, event: &[u8]) -> Vec<(u64, u64)> {
        self.events
            .lock()
            .iter()
            .find(|(e, _)| e.as_bytes() == event)
            .map(|(_, s)| s.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets `events` (all when empty); how many there were.
    pub fn reset(&self, events: &[&[u8]]) -> usize {
        let mut all = self.events.lock();
        if events.is_empty() {
            let n = all.len();
            all.clear();
            return n;
        }
        let before = all.len();
        all.retain(|e, _| !events.contains(&e.as_bytes()));
        before - all.len()
    }

    /// LATENCY DOCTOR's report: Redis's wording for the no-monitor and no-spike cases, then
    /// one paragraph per event.
    pub fn doctor(&self) -> String {
        let events = self.latest();
        if events.is_empty() {
            if !self.enabled() {
                return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
            }
            return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".into();
        }
        let mut out = String::from(
            "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
        );
        let all = self.events.lock();
        for (i, (event, s)) in all.iter().enumerate() {
            let n = s.samples.len().max(1) as u64;
            let avg = s.samples.iter().map(|(_, ms)| ms).sum::<u64>() / n;
            let dev = s
                .samples
                .iter()
                .map(|(_, ms)| ms.abs_diff(avg))
                .sum::<u64>()
                / n;
            let span = match (s.samples.front(), s.samples.back()) {
                (Some((first, _)), Some((last, _))) => last.saturating_sub(*first),
                _ => 0,
            };
            out.push_str(&format!(
                "{}. {event}: {} latency spikes (average {avg}ms, mean deviation {dev}ms, period {:.2} sec). Worst all time event {}ms.\n",
                i + 1,
                s.samples.len(),
                span as f64 / n as f64,
                s.max
            ));
        }
        out.push_str(
            "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_the_worst() {
        let m = LatencyMonitor::default();
        m.add_if_needed("command", 500, 10);
        assert!(m.latest().is_empty(), "off by default");
        m.threshold_ms.store(100, Relaxed);
        m.add_if_needed("command", 50, 10);
        m.add_if_needed("command", 150, 10);
        m.add_if_needed("command", 120, 10);
        m.add_if_needed("command", 110, 11);
        assert_eq!(m.history(b"command"), vec![(10, 150), (11, 110)]);
        assert_eq!(m.latest(), vec![("command", 11, 110, 150)]);
        for t in 0..200 {
            m.add_if_needed("fast-command", 100, 100 + t);
        }
        assert_eq!(m.history(b"fast-command").len(), SAMPLES);
        assert_eq!(m.reset(&[b"command", b"nope"]), 1);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.doctor().starts_with("Dave, no latency spike"));
    }
}
