//! Clients blocked on keys (BLPOP, BLMOVE, BLMPOP, BZPOPMIN, ...), served as Redis serves
//! them: first come, first served, by the write that makes a key ready, before any other
//! command can take the data.
//!
//! A blocking command that finds nothing registers a [`Waiter`]: its keys, and an `attempt`
//! that tries the command's work on one key that may have become ready. After every write, the
//! writing connection calls [`Blocking::serve`] with the keys it wrote; for each key with
//! waiters, the oldest waiter's attempt runs, on the writer's task and under the registry's
//! lock, and its reply goes to the waiting connection through a oneshot channel. A waiter that
//! gives up (timeout, CLIENT UNBLOCK, a slot moving away, its connection closing) removes
//! itself with [`Blocking::cancel`] under the same lock, so each waiter ends exactly once:
//! served, or cancelled.
//!
//! Lost wake-ups: a blocking command counts itself in `waiting` before it first tries its keys
//! (under the lock), and a writer reads `waiting` after its write. Either the try sees the
//! write, or the writer sees the count and then waits for the lock until the waiter is
//! registered.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::CmdError;
use crate::protocol::Reply;
use crate::store::Db;

/// What a successful attempt produced: the reply for the waiting client, and the keys it
/// changed (the popped key, BLMOVE's destination): they are invalidated for CLIENT TRACKING
/// and may make other waiters ready.
pub struct Served {
    pub reply: Reply,
    pub changed: Vec<Bytes>,
    /// Its keyspace events in Redis's order (class, event, key; `crate::notify`), raised when
    /// a blocked client is served by another client's write.
    pub events: Vec<(u32, &'static str, Bytes)>,
}

/// Tries a blocked command's work on one key (`db`, the time in Unix ms, the key): `None`
/// while the key is not ready (absent, or empty). An error (`WRONGTYPE`) is the command's
/// reply on its first try, as in Redis; once blocked, a key of another type is only not
/// ready yet.
pub type Attempt = Box<dyn FnMut(&Db, u64, &[u8]) -> Result<Option<Served>, CmdError> + Send>;

/// How a wait ends from outside the waiting connection.
#[derive(Debug)]
pub enum Wake {
    /// Served: the command's reply.
    Reply(Reply),
    /// CLIENT UNBLOCK (TIMEOUT): as if the timeout passed.
    TimedOut,
    /// CLIENT UNBLOCK ERROR, or another error ending the wait.
    Error(Reply),
}

/// A blocked client.
pub struct Waiter {
    /// The keys it waits on, in the command's order (each at most once).
    pub keys: Vec<Bytes>,
    pub attempt: Attempt,
    reply: oneshot::Sender<Wake>,
}

#[derive(Default)]
struct Registry {
    /// Per key, the ids of the clients waiting on it, oldest first.
    by_key: HashMap<Bytes, VecDeque<u64>>,
    waiters: HashMap<u64, Waiter>,
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        for k in &w.keys {
            if let Some(q) = self.by_key.get_mut(k) {
                q.retain(|&x| x != id);
                if q.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
        Some(w)
    }
}

/// The server's blocked clients.
#[derive(Default)]
pub struct Blocking {
    /// Registered waiters, plus blocking commands between their first try and registration:
    /// writers skip the lock while it is zero.
    waiting: AtomicUsize,
    registry: Mutex<Registry>,
}

/// Whether a blocking command was served at once or now waits.
pub enum Outcome {
    Served(Served),
    /// Registered: the reply arrives on this channel (or the waiter cancels itself).
    Blocked(oneshot::Receiver<Wake>),
}

impl Blocking {
    /// Number of blocked clients (INFO's `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.registry.lock().waiters.len()
    }

    /// Tries `attempt` on each key in order; if none is ready, registers client `id` as
    /// waiting on them.
    pub fn try_or_block(
        &self,
        id: u64,
        db: &Db,
        now: u64,
        keys: Vec<Bytes>,
        mut attempt: Attempt,
    ) -> Result<Outcome, CmdError> {
        self.waiting.fetch_add(1, SeqCst);
        let mut reg = self.registry.lock();
        for k in &keys {
            let done = match attempt(db, now, k) {
                Ok(None) => continue,
                Ok(Some(served)) => Ok(Outcome::Served(served)),
                Err(e) => Err(e),
            };
            drop(reg);
            self.waiting.fetch_sub(1, SeqCst);
            return done;
        }
        let (tx, rx) = oneshot::channel();
        let mut unique: Vec<Bytes> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.contains(&k) {
                reg.by_key.entry(k.clone()).or_default().push_back(id);
                unique.push(k);
            }
        }
        // A client blocks once at a time; a stale entry (never expected) is replaced.
        if let Some(old) = reg.remove(id) {
            self.waiting.fetch_sub(1, SeqCst);
            drop(old);
        }
        reg.waiters.insert(
            id,
            Waiter {
                keys: unique,
                attempt,
                reply: tx,
            },
        );
        Ok(Outcome::Blocked(rx))
    }

    /// Removes client `id`'s waiter, if it is still waiting; `false` when it was already
    /// served (its reply is then in its channel).
    pub fn cancel(&self, id: u64) -> bool {
        let removed = self.registry.lock().remove(id).is_some();
        if removed {
            self.waiting.fetch_sub(1, SeqCst);
        }
        removed
    }

    /// Ends client `id`'s wait (CLIENT UNBLOCK); `false` if it was not blocked.
    pub fn unblock(&self, id: u64, reply: Wake) -> bool {
        let w = self.registry.lock().remove(id);
        match w {
            Some(w) => {
                self.waiting.fetch_sub(1, SeqCst);
                let _ = w.reply.send(reply);
                true
            }
            None => false,
        }
    }

    /// Whether any client is blocked (or about to be): the writers' fast check.
    #[inline]
    pub fn any(&self) -> bool {
        self.waiting.load(SeqCst) > 0
    }

    /// Serves the clients blocked on `written` keys, oldest first, while each key stays
    /// ready; keys a served attempt changes are served next (BLMOVE's destination). Calls
    /// `changed` for every key a served attempt changed.
    pub fn serve(
        &self,
        db: &Db,
        now: u64,
        written: impl IntoIterator<Item = Bytes>,
        mut on_served: impl FnMut(&Served),
    ) {
        let mut reg = self.registry.lock();
        let mut ready: VecDeque<Bytes> = written
            .into_iter()
            .filter(|k| reg.by_key.contains_key(k))
            .collect();
        while let Some(key) = ready.pop_front() {
            while let Some(id) = reg.by_key.get(&key).and_then(|q| q.front().copied()) {
                let Some(w) = reg.waiters.get_mut(&id) else {
                    // Not expected: a queue entry without its waiter. Drop it and go on.
                    if let Some(q) = reg.by_key.get_mut(&key) {
                        q.pop_front();
                    }
                    continue;
                };
                let Ok(Some(served)) = (w.attempt)(db, now, &key) else {
                    break;
                };
                on_served(&served);
                if let Some(w) = reg.remove(id) {
                    self.waiting.fetch_sub(1, SeqCst);
                    // A waiter whose connection is gone drops its receiver: the data it took
                    // is lost as in Redis (a client that disconnects after being served).
                    let _ = w.reply.send(Wake::Reply(served.reply));
                }
                for k in served.changed {
                    if k != key && reg.by_key.contains_key(&k) && !ready.contains(&k) {
                        ready.push_back(k);
                    }
                }
            }
        }
    }
}
