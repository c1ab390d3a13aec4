//! CLIENT PAUSE: until a deadline, commands of every client (ALL) or only those that may
//! write (WRITE: writes, scripts, PUBLISH, EXEC of a transaction with writes) wait before
//! they run; CLIENT UNPAUSE ends it. A second pause keeps the stricter mode and the later
//! deadline, as Redis.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
pub struct Pause {
    active: AtomicBool,
    /// The deadline, and whether reads are paused too.
    state: Mutex<Option<(Instant, bool)>>,
    changed: Notify,
}

impl Pause {
    /// Whether a pause may be in force (one atomic load on the command path).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    pub fn pause(&self, until: Instant, all: bool) {
        let mut st = self.state.lock();
        let next = match *st {
            Some((end, was_all)) => (end.max(until), was_all || all),
            None => (until, all),
        };
        *st = Some(next);
        self.active.store(true, Relaxed);
        drop(st);
        self.changed.notify_waiters();
    }

    pub fn unpause(&self) {
        *self.state.lock() = None;
        self.active.store(false, Relaxed);
        self.changed.notify_waiters();
    }

    /// The deadline a command must wait for (`write`: it may write), if any; a pause whose
    /// deadline has passed ends here.
    pub fn blocks(&self, write: bool) -> Option<Instant> {
        let mut st = self.state.lock();
        let (end, all) = (*st)?;
        if Instant::now() >= end {
            *st = None;
            self.active.store(false, Relaxed);
            return None;
        }
        (all || write).then_some(end)
    }

    /// Waits until a command of this kind may run.
    pub async fn wait(&self, write: bool) {
        loop {
            let changed = self.changed.notified();
            let Some(end) = self.blocks(write) else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(end) => {}
                _ = changed => {}
            }
        }
    }
}
