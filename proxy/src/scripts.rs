//! The Lua scripts clients sent through this proxy (EVAL, EVAL_RO, SCRIPT LOAD), by SHA1, so
//! an EVALSHA that a shard answers `-NOSCRIPT` (it restarted, or joined after the SCRIPT
//! LOAD) is healed: the proxy loads the script on that shard and sends the EVALSHA again.
//! SCRIPT FLUSH through the proxy forgets them, so EVALSHA then answers `-NOSCRIPT` as Redis
//! does.
//!
//! Function libraries likewise (FUNCTION LOAD, by library name; FUNCTION DELETE and FLUSH
//! forget them): an FCALL a shard answers `-ERR Function not found` is sent again behind a
//! `FUNCTION LOAD REPLACE` of each library whose code names the function. Libraries that
//! reached the shards by FUNCTION RESTORE are not known here (the payload is opaque).

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use membership::command::{CommandId, CommandSpec};
use membership::frame::Request;
use parking_lot::Mutex;

/// Scripts remembered at most (a client generating scripts must not grow the proxy).
const MAX_SCRIPTS: usize = 10_000;

/// Libraries remembered at most.
const MAX_LIBRARIES: usize = 10_000;

#[derive(Default)]
pub struct Scripts {
    bodies: Mutex<HashMap<String, Bytes>>,
    /// Function libraries' code by library name.
    libraries: Mutex<HashMap<String, Bytes>>,
}

/// The library name in a `#!lua name=<lib>` header.
fn library_name(code: &[u8]) -> Option<String> {
    let line = code.split(|&c| c == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    if !line.starts_with("#!") {
        return None;
    }
    line.split_ascii_whitespace().find_map(|p| {
        p.get(..5)
            .filter(|k| k.eq_ignore_ascii_case("name="))
            .map(|_| p[5..].to_string())
    })
}

/// One command in RESP.
fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

impl Scripts {
    /// Notes a request that caches or flushes scripts on the shards.
    pub fn observe(&self, spec: &CommandSpec, req: &Request) {
        match spec.id {
            CommandId::FunctionLoad if req.argc() > 2 => {
                let code = req.arg(req.argc() - 1);
                let replace =
                    (2..req.argc() - 1).any(|i| req.arg(i).eq_ignore_ascii_case(b"replace"));
                if let Some(name) = library_name(code) {
                    let mut libs = self.libraries.lock();
                    // Without REPLACE an existing library stays (the shards refuse the load).
                    if (replace || !libs.contains_key(&name)) && libs.len() < MAX_LIBRARIES {
                        libs.insert(name, Bytes::copy_from_slice(code));
                    }
                }
                return;
            }
            CommandId::FunctionDelete if req.argc() > 2 => {
                let name = String::from_utf8_lossy(req.arg(2)).into_owned();
                self.libraries.lock().remove(&name);
                return;
            }
            CommandId::FunctionFlush => {
                self.libraries.lock().clear();
                return;
            }
            _ => {}
        }
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
    /// <body>` followed by the request; for an FCALL (or FCALL_RO) whose function is named in
    /// libraries this proxy knows: a `FUNCTION LOAD REPLACE` of each, then the request. What
    /// to send in its place, and how many replies it gets (the request's is the last).
    pub fn reload_then(&self, req: &Bytes) -> Option<(Bytes, usize)> {
        let mut buf = BytesMut::from(&req[..]);
        let parsed = membership::frame::next_request(&mut buf, usize::MAX).ok()??;
        let name = parsed.arg(0);
        if parsed.argc() < 2 {
            return None;
        }
        let mut out = BytesMut::with_capacity(req.len() + 64);
        let loads = if name.eq_ignore_ascii_case(b"evalsha")
            || name.eq_ignore_ascii_case(b"evalsha_ro")
        {
            out = self.load_request(parsed.arg(1))?;
            1
        } else if name.eq_ignore_ascii_case(b"fcall") || name.eq_ignore_ascii_case(b"fcall_ro") {
            let function = String::from_utf8_lossy(parsed.arg(1)).to_ascii_lowercase();
            let libs = self.libraries.lock();
            let mut n = 0;
            for code in libs.values() {
                if String::from_utf8_lossy(code)
                    .to_ascii_lowercase()
                    .contains(&function)
                {
                    command(&mut out, &[b"FUNCTION", b"LOAD", b"REPLACE", code]);
                    n += 1;
                }
            }
            if n == 0 {
                return None;
            }
            n
        } else {
            return None;
        };
        out.put_slice(req);
        Some((out.freeze(), loads + 1))
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
        command(&mut out, &[b"SCRIPT", b"LOAD", &body]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_come_from_the_header() {
        assert_eq!(
            library_name(b"#!lua name=lib1\ncode").as_deref(),
            Some("lib1")
        );
        assert_eq!(library_name(b"#!LUA NAME=x\n").as_deref(), Some("x"));
        assert_eq!(library_name(b"return 1"), None);
    }
}
