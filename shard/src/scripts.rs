//! The script cache: Lua script bodies by the SHA1 of their text, filled by EVAL and SCRIPT
//! LOAD, read by EVALSHA, emptied by SCRIPT FLUSH. Only the text is kept here; each worker
//! thread compiles a script once into its own Lua state (`cmd::lua`), and drops its compiled
//! functions when it sees that a flush happened since ([`Scripts::flushes`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::RwLock;

/// Flushes of any server's cache in this process: a thread's compiled functions are kept only
/// while this has not moved.
static FLUSHES: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
pub struct Scripts {
    bodies: RwLock<HashMap<String, Bytes>>,
}

impl Scripts {
    /// The lower-case hex SHA1 of a script body, as Redis names scripts.
    pub fn sha1hex(body: &[u8]) -> String {
        sha1_smol::Sha1::from(body).digest().to_string()
    }

    pub fn get(&self, sha: &str) -> Option<Bytes> {
        self.bodies.read().get(sha).cloned()
    }

    pub fn contains(&self, sha: &[u8]) -> bool {
        let Ok(sha) = std::str::from_utf8(sha) else {
            return false;
        };
        let lower = sha.to_ascii_lowercase();
        self.bodies.read().contains_key(&lower)
    }

    pub fn insert(&self, sha: String, body: Bytes) {
        self.bodies.write().entry(sha).or_insert(body);
    }

    pub fn flush(&self) {
        self.bodies.write().clear();
        FLUSHES.fetch_add(1, Relaxed);
    }

    /// How many flushes happened in this process so far.
    pub fn flushes() -> u64 {
        FLUSHES.load(Relaxed)
    }
}
