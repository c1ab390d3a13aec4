//! MONITOR: every command the server runs, as Redis prints it to its monitors
//! (`+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`), queued on each monitoring client's
//! message queue. With no monitor the cost per command is one atomic load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::pubsub::{Limit, Subscriber};

#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: RwLock<Vec<Arc<Subscriber>>>,
}

impl Monitors {
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    pub fn add(&self, sub: Arc<Subscriber>) {
        let mut l = self.list.write();
        if !l.iter().any(|s| s.id == sub.id) {
            l.push(sub);
            self.count.store(l.len(), Relaxed);
        }
    }

    pub fn remove(&self, id: u64) {
        let mut l = self.list.write();
        l.retain(|s| s.id != id);
        self.count.store(l.len(), Relaxed);
    }

    /// Sends one executed command to every monitor; monitors over `limit` are dropped.
    pub fn feed(&self, addr: SocketAddr, args: &[Bytes], limit: Limit) {
        let line = Bytes::from(line(SystemTime::now(), &addr.to_string(), args));
        let now = Instant::now();
        let mut gone = Vec::new();
        for m in self.list.read().iter() {
            if !m.monitor_line(line.clone(), limit, now) {
                gone.push(m.id);
            }
        }
        for id in gone {
            self.remove(id);
        }
    }
}

/// One monitor line without the leading `+`: time, `[db client]`, the arguments quoted.
pub fn line(at: SystemTime, client: &str, args: &[Bytes]) -> String {
    let t = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = format!("{}.{:06} [0 {client}]", t.as_secs(), t.subsec_micros());
    for a in args {
        out.push(' ');
        repr(a, &mut out);
    }
    out
}

/// Redis's `sdscatrepr`: a double-quoted string with C escapes.
pub fn repr(b: &[u8], out: &mut String) {
    out.push('"');
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_look_like_redis() {
        let at = UNIX_EPOCH + Duration::from_micros(1_339_518_083_107_412);
        let args = [
            Bytes::from_static(b"set"),
            Bytes::from_static(b"k \"q\"\n\x01"),
        ];
        assert_eq!(
            line(at, "127.0.0.1:60866", &args),
            r#"1339518083.107412 [0 127.0.0.1:60866] "set" "k \"q\"\n\x01""#
        );
    }
}
