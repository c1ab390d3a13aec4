//! What a client's unsent replies may cost the proxy.
//!
//! Two mechanisms, as in Redis:
//! - **Backpressure** (always on): a session plans new requests only while the replies it holds
//!   for the client — planned, answered by the shards and not yet written — are estimated to
//!   stay within [`REPLY_WINDOW`] bytes. The estimate is the largest recent reply size per
//!   request, so a client that pipelines GETs of 100 KB values and never reads costs the proxy
//!   a few MB, not its whole pipeline's worth: it stops itself.
//! - **`client-output-buffer-limit`** (Redis's syntax: `<class> <hard> <soft> <soft-seconds>`,
//!   classes `normal` and `pubsub`): a client whose unsent replies exceed the hard limit, or stay
//!   above the soft limit for the soft time, is disconnected and its memory given back.

use std::time::Duration;

use membership::settings::parse_memory;

/// Bytes of replies a session aims to hold for its client at most.
pub const REPLY_WINDOW: usize = 4 << 20;

/// A new session's reply size estimate: its first requests are planned in a small window until
/// the shards' replies show how large they are.
pub const FIRST_ESTIMATE: usize = REPLY_WINDOW / 16;

/// Requests a session may have planned and not yet written to its client, for a reply size
/// estimate (at least one, so a client with huge replies still progresses one at a time).
pub fn window(estimate: usize) -> usize {
    (REPLY_WINDOW / estimate.max(1)).max(1)
}

/// The next estimate after a chunk of `items` requests was answered with `bytes`: up at once
/// to a larger average (a switch to large values must shrink the window before it fills),
/// down by an eighth per chunk (small replies widen it again over a few round trips).
pub fn next_estimate(estimate: usize, bytes: usize, items: usize) -> usize {
    let avg = bytes / items.max(1);
    avg.max(estimate - estimate / 8).max(16)
}

/// One class's limits (0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl Limit {
    /// How long unsent bytes may stay queued before the client is dropped: `None` when they may
    /// wait as long as the client takes, `Some(ZERO)` past the hard limit.
    pub fn patience(&self, unsent: usize) -> Option<Duration> {
        let unsent = unsent as u64;
        if self.hard > 0 && unsent > self.hard {
            return Some(Duration::ZERO);
        }
        if self.soft > 0 && unsent > self.soft {
            return Some(Duration::from_secs(self.soft_seconds));
        }
        None
    }
}

/// `client-output-buffer-limit` for the classes a proxy has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub normal: Limit,
    pub pubsub: Limit,
}

impl Default for OutputLimits {
    /// Redis's defaults.
    fn default() -> Self {
        OutputLimits {
            normal: Limit::default(),
            pubsub: Limit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputLimits {
    /// Applies Redis's syntax, `<class> <hard> <soft> <soft-seconds>` repeated: the classes
    /// named change, the others stay. `replica` is accepted for compatibility (a proxy has no
    /// replicas).
    pub fn apply(&mut self, s: &str) -> Result<(), String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("expected `<class> <hard> <soft> <soft-seconds>` groups".into());
        }
        for g in words.chunks_exact(4) {
            let size =
                |w: &str| parse_memory(w).ok_or_else(|| format!("`{w}` is not a size (e.g. 32mb)"));
            let limit = Limit {
                hard: size(g[1])?,
                soft: size(g[2])?,
                soft_seconds: g[3]
                    .parse()
                    .map_err(|_| format!("`{}` is not a number of seconds", g[3]))?,
            };
            match g[0].to_ascii_lowercase().as_str() {
                "normal" => self.normal = limit,
                "pubsub" => self.pubsub = limit,
                "replica" | "slave" => {}
                other => return Err(format!("unknown client class `{other}`")),
            }
        }
        Ok(())
    }

    /// Redis's `CONFIG GET client-output-buffer-limit` form.
    pub fn render(&self) -> String {
        let f = |c: &str, l: &Limit| format!("{c} {} {} {}", l.hard, l.soft, l.soft_seconds);
        format!(
            "{} slave 268435456 67108864 60 {}",
            f("normal", &self.normal),
            f("pubsub", &self.pubsub)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_syntax() {
        let mut l = OutputLimits::default();
        l.apply("normal 10mb 5mb 30 pubsub 0 0 0").expect("valid");
        assert_eq!(
            l.normal,
            Limit {
                hard: 10 << 20,
                soft: 5 << 20,
                soft_seconds: 30
            }
        );
        assert_eq!(l.pubsub, Limit::default());
        l.apply("replica 256mb 64mb 60").expect("replica accepted");
        assert!(l.apply("normal 10mb 5mb").is_err());
        assert!(l.apply("clients 1 1 1").is_err());
        assert!(l.apply("normal lots 1 1").is_err());
        assert_eq!(
            OutputLimits::default().render(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
    }

    #[test]
    fn patience_follows_the_limits() {
        let l = Limit {
            hard: 1000,
            soft: 100,
            soft_seconds: 5,
        };
        assert_eq!(l.patience(50), None);
        assert_eq!(l.patience(500), Some(Duration::from_secs(5)));
        assert_eq!(l.patience(1001), Some(Duration::ZERO));
        assert_eq!(Limit::default().patience(usize::MAX), None);
    }

    #[test]
    fn the_window_shrinks_at_once_and_widens_slowly() {
        let mut e = FIRST_ESTIMATE;
        assert_eq!(window(e), 16);
        // Small replies: the window widens by an eighth per chunk.
        for _ in 0..100 {
            e = next_estimate(e, 16 * 20, 16);
        }
        assert!(window(e) > 10_000, "{}", window(e));
        // A switch to 100 KB values closes it after one chunk.
        e = next_estimate(e, 16 * 100_000, 16);
        assert_eq!(window(e), REPLY_WINDOW / 100_000);
        assert_eq!(window(usize::MAX), 1);
    }
}
