//! The Lua scripts clients sent through this proxy (EVAL, EVAL_RO, SCRIPT LOAD), by SHA1, so
//! an EVALSHA that a shard answers `-NOSCRIPT` (it restarted, or joined after the SCRIPT
//! LOAD) is healed: the proxy loads the script on that shard and sends the EVALSHA again.
//! SCRIPT FLUSH through the proxy forgets them, so EVALSHA then answers `-NOSCRIPT` as Redis
//! does.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use membership::command::{CommandId, CommandSpec};
use membership::frame::Request;
use parking_lot::Mutex;

/// Scripts remembered at most (a client generating scripts must not grow the proxy).
const MAX_SCRIPTS: usize = 10_000;

#[derive(Default)]
pub struct Scripts {
    bodies: Mutex<HashMap<String, Bytes>>,
}

impl Scripts {
    /// Notes a request that caches or flushes scripts on the shards.
    pub fn observe(&self, spec: &CommandSpec, req: &Request) {
        let body = match spec.id {
            CommandId::Eval | CommandId::EvalRo if req.argc() > 1 => req.arg(1),
            CommandId::ScriptLoad if req.argc() > 2 => req.arg(2),
            CommandId::ScriptFlush => {
                self.bodies.lock().clear();
                return;
            }
            _ => return,
        };
        let sha = sha1_smol::Sha1::from(body).digest().to_string();
        let mut bodies = self.bodies.lock();
        if bodies.len() < MAX_SCRIPTS && !bodies.contains_key(&sha) {
            bodies.insert(sha, Bytes::copy_from_slice(body));
        }
    }

    /// For an EVALSHA (or EVALSHA_RO) request whose script this proxy knows: `SCRIPT LOAD
    /// <body>` followed by the request, to send in its place.
    pub fn reload_then(&self, req: &Bytes) -> Option<Bytes> {
        let mut buf = BytesMut::from(&req[..]);
        let parsed = membership::frame::next_request(&mut buf, usize::MAX).ok()??;
        let name = parsed.arg(0);
        if !(name.eq_ignore_ascii_case(b"evalsha") || name.eq_ignore_ascii_case(b"evalsha_ro"))
            || parsed.argc() < 2
        {
            return None;
        }
        let mut out = self.load_request(parsed.arg(1))?;
        out.put_slice(req);
        Some(out.freeze())
    }

    /// For a queued EVALSHA (or EVALSHA_RO) whose script this proxy knows: `SCRIPT LOAD
    /// <body>`, to send before the transaction. Inside MULTI a `-NOSCRIPT` comes back in EXEC's
    /// reply, too late to heal, so the script is loaded on the shard first.
    pub fn load_before_exec(&self, spec: &CommandSpec, req: &Request) -> Option<Bytes> {
        match spec.id {
            CommandId::Evalsha | CommandId::EvalshaRo if req.argc() > 1 => {
                Some(self.load_request(req.arg(1))?.freeze())
            }
            _ => None,
        }
    }

    /// `SCRIPT LOAD <body>` of a known script.
    fn load_request(&self, sha: &[u8]) -> Option<BytesMut> {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        let body = self.bodies.lock().get(&sha)?.clone();
        let mut out = BytesMut::with_capacity(body.len() + 40);
        out.put_slice(b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$");
        out.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(&body);
        out.put_slice(b"\r\n");
        Some(out)
    }
}
