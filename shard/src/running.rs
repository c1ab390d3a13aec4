//! The scripts and functions running now, for `busy-reply-threshold` (`-BUSY`), SCRIPT KILL,
//! FUNCTION KILL and FUNCTION STATS (Redis's `curr_run_ctx`, `script.c`).
//!
//! Redis runs one script at a time on its one thread; here a script runs on the worker thread
//! of its connection while other connections go on being served on the other threads, so
//! several may run at once (on different slots). Each registers a [`Run`] here for its
//! duration. Once any of them has run longer than the threshold, other clients' commands are
//! refused with `-BUSY` (except the `allow_busy` ones), as Redis refuses them while a slow
//! script runs, and a KILL marks the runs that may be killed; the Lua hook of the script's
//! state sees the mark and raises the error that ends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Redis's reply to commands while a slow EVAL runs.
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// ... and while a slow FCALL runs.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// Redis's default `busy-reply-threshold` (its `lua-time-limit`), in milliseconds.
pub const DEFAULT_THRESHOLD_MS: u64 = 5000;

/// A script that has run this long gives its worker thread's runtime duties away.
const HAND_OFF_AFTER: Duration = Duration::from_millis(10);

/// How long [`hand_off`] waits for another worker to show it is awake.
const WAKE_WAIT: Duration = Duration::from_millis(100);

/// Hands this worker thread's share of the runtime (its queued tasks, and the I/O driver it
/// may be the one to poll) to another thread, so that other connections go on being served
/// while this thread stays busy in synchronous code: a slow script, or a command waiting for
/// its gate. Cheap enough to do once a script has run for a while, too dear for every script.
/// Nothing on a current-thread runtime (there is no other thread to hand to).
///
/// `block_in_place` alone is not enough: when its closure returns before the thread it spawned
/// has taken this worker's core, the core comes back here, and with it the duty to poll the
/// I/O driver, which a thread that never parks does not do: every connection stalls (seen as
/// a shutdown that never reached a spinning script). So the closure waits until a task it
/// spawns has run on another worker: that worker then parks on the driver.
pub fn hand_off() {
    if let Ok(h) = tokio::runtime::Handle::try_current()
        && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            h.spawn(async move {
                let _ = tx.send(());
            });
            // Every other worker may be as busy: then go on without.
            let _ = rx.recv_timeout(WAKE_WAIT);
        });
    }
}

/// One script or function while it runs.
pub struct Run {
    /// The connection that runs it (its own later commands are not refused).
    pub client: u64,
    pub started: Instant,
    /// EVAL and friends (`true`) or FCALL (`false`): which KILL stops it, which `-BUSY` text.
    pub is_eval: bool,
    /// The function's name, or the script's SHA1.
    pub name: String,
    /// The command that runs it (FUNCTION STATS shows it).
    pub command: Vec<Bytes>,
    /// Set by the first write command the script runs: it can no longer be killed.
    pub wrote: AtomicBool,
    killed: AtomicBool,
    handed_off: AtomicBool,
    shutdown: CancellationToken,
}

/// Why a running script must stop now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Killed,
    Shutdown,
}

impl Run {
    /// Called from the script's thread now and then: once it has run a while, hand its
    /// runtime duties off ([`hand_off`]).
    pub fn check_in(&self) {
        if !self.handed_off.load(Relaxed) && self.started.elapsed() >= HAND_OFF_AFTER {
            self.handed_off.store(true, Relaxed);
            hand_off();
        }
    }

    /// Whether it must stop: killed, or the server is shutting down (SHUTDOWN NOSAVE ends even
    /// a script that wrote, as in Redis, where the process exits).
    pub fn stop(&self) -> Option<Stop> {
        if self.killed.load(Relaxed) {
            Some(Stop::Killed)
        } else if self.shutdown.is_cancelled() {
            Some(Stop::Shutdown)
        } else {
            None
        }
    }
}

pub struct Running {
    runs: Mutex<Vec<Arc<Run>>>,
    /// How many runs there are: commands read only this while none runs.
    count: AtomicUsize,
    threshold_ms: AtomicU64,
    shutdown: CancellationToken,
}

/// Removes its run from the registry when the script ends (however it ends).
pub struct RunGuard<'a> {
    running: &'a Running,
    pub run: Arc<Run>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut runs = self.running.runs.lock();
        runs.retain(|r| !Arc::ptr_eq(r, &self.run));
        self.running.count.store(runs.len(), Relaxed);
    }
}

impl Running {
    pub fn new(threshold_ms: u64, shutdown: CancellationToken) -> Running {
        Running {
            runs: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            threshold_ms: AtomicU64::new(threshold_ms),
            shutdown,
        }
    }

    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Relaxed)
    }

    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Relaxed);
    }

    /// Registers a script that starts now.
    pub fn start(
        &self,
        client: u64,
        is_eval: bool,
        name: String,
        command: Vec<Bytes>,
    ) -> RunGuard<'_> {
        let run = Arc::new(Run {
            client,
            started: Instant::now(),
            is_eval,
            name,
            command,
            wrote: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            handed_off: AtomicBool::new(false),
            shutdown: self.shutdown.clone(),
        });
        let mut runs = self.runs.lock();
        runs.push(run.clone());
        self.count.store(runs.len(), Relaxed);
        RunGuard { running: self, run }
    }

    /// The `-BUSY` line for a command of `client`, when another client's script has run past
    /// the threshold.
    #[inline]
    pub fn busy_for(&self, client: u64) -> Option<&'static str> {
        if self.count.load(Relaxed) == 0 {
            return None;
        }
        self.busy_for_slow(client)
    }

    #[cold]
    fn busy_for_slow(&self, client: u64) -> Option<&'static str> {
        let threshold = Duration::from_millis(self.threshold_ms());
        let runs = self.runs.lock();
        runs.iter()
            .find(|r| r.client != client && r.started.elapsed() >= threshold)
            .map(|r| if r.is_eval { BUSY_EVAL } else { BUSY_FUNCTION })
    }

    /// The longest-running script, for FUNCTION STATS.
    pub fn current(&self) -> Option<Arc<Run>> {
        if self.count.load(Relaxed) == 0 {
            return None;
        }
        self.runs.lock().iter().min_by_key(|r| r.started).cloned()
    }

    /// SCRIPT KILL (`is_eval`) or FUNCTION KILL: marks every running script of that kind that
    /// has not written. The error line when none can be killed, with Redis's precedence:
    /// nothing runs, it wrote, it is of the other kind.
    pub fn kill(&self, is_eval: bool) -> Result<(), &'static str> {
        let runs = self.runs.lock();
        if runs.is_empty() {
            return Err(NOTBUSY);
        }
        let mut error = None;
        let mut killed = false;
        for r in runs.iter() {
            if r.wrote.load(Relaxed) {
                error.get_or_insert(UNKILLABLE);
            } else if r.is_eval != is_eval {
                error.get_or_insert(if r.is_eval { BUSY_EVAL } else { BUSY_FUNCTION });
            } else {
                r.killed.store(true, Relaxed);
                killed = true;
            }
        }
        match (killed, error) {
            (true, _) | (false, None) => Ok(()),
            (false, Some(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_follows_redis_precedence() {
        let running = Running::new(0, CancellationToken::new());
        assert_eq!(running.kill(true), Err(NOTBUSY));
        let g = running.start(1, false, "f".into(), Vec::new());
        assert_eq!(running.kill(true), Err(BUSY_FUNCTION));
        assert_eq!(running.busy_for(1), None);
        assert_eq!(running.busy_for(2), Some(BUSY_FUNCTION));
        g.run.wrote.store(true, Relaxed);
        assert_eq!(running.kill(false), Err(UNKILLABLE));
        drop(g);
        assert_eq!(running.busy_for(2), None);
        let g = running.start(1, true, "sha".into(), Vec::new());
        assert_eq!(g.run.stop(), None);
        assert_eq!(running.kill(true), Ok(()));
        assert_eq!(g.run.stop(), Some(Stop::Killed));
    }

    #[test]
    fn below_the_threshold_nobody_is_refused() {
        let running = Running::new(60_000, CancellationToken::new());
        let _g = running.start(1, true, "sha".into(), Vec::new());
        assert_eq!(running.busy_for(2), None);
    }
}
