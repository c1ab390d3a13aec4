//! Optional busy polling (`busy-poll-us`): for that long after client traffic, a task keeps
//! the runtime polling for I/O with a zero timeout instead of letting its worker sleep in
//! `epoll_wait`. A sleeping worker must be woken for the shard's reply and again for the
//! client's next request; on a virtual machine each wake-up of an idle CPU can cost tens of
//! microseconds, which is most of what the hop through the proxy adds for a lone client. The
//! price is CPU: the worker spins through every gap shorter than the window. One task spins
//! per proxy, so with several runtime threads it keeps one of them polling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct BusyPoll {
    epoch: Instant,
    /// Nanoseconds since `epoch` of the last client traffic.
    last: AtomicU64,
    window: u64,
    wake: Notify,
}

impl BusyPoll {
    pub fn new(window: Duration) -> Arc<BusyPoll> {
        Arc::new(BusyPoll {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            window: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            wake: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Client traffic: poll busily for the next `window`.
    pub fn note(&self) {
        self.last.store(self.now(), Relaxed);
        self.wake.notify_one();
    }

    /// Whether traffic was seen within the window.
    fn active(&self) -> bool {
        self.now().saturating_sub(self.last.load(Relaxed)) < self.window
    }

    /// Spins (yielding to every other task, with the runtime polling I/O between) while
    /// traffic is recent; sleeps until the next traffic otherwise.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if self.active() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spins_only_within_the_window_after_traffic() {
        let b = BusyPoll::new(Duration::from_micros(50));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!b.active(), "no traffic yet");
        b.note();
        assert!(b.active());
        tokio::time::advance(Duration::from_micros(40)).await;
        assert!(b.active());
        tokio::time::advance(Duration::from_micros(20)).await;
        assert!(!b.active(), "window over");
        let stop = CancellationToken::new();
        let task = tokio::spawn(b.clone().run(stop.clone()));
        b.note(); // wakes the sleeping task, which spins until the window is over
        tokio::time::advance(Duration::from_micros(60)).await;
        stop.cancel();
        task.await.expect("stops when cancelled");
    }
}
