//! The shard's notion of "now" for expiry: wall-clock milliseconds anchored once at start-up and
//! advanced by tokio's monotonic clock. Expiry therefore survives wall-clock jumps (a clock set
//! back does not resurrect keys; set forward does not mass-expire them), and tests with a
//! paused tokio clock control time exactly.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    anchor_unix_ms: u64,
    anchor: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let anchor_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            anchor_unix_ms,
            anchor: Instant::now(),
        }
    }

    /// Unix time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.anchor_unix_ms + self.anchor.elapsed().as_millis() as u64
    }

    /// Seconds since the clock was created (uptime).
    pub fn uptime_secs(&self) -> u64 {
        self.anchor.elapsed().as_secs()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
