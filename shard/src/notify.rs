//! Keyspace notifications (`notify-keyspace-events`): changes to keys published on
//! `__keyspace@0__:<key>` (the event as message) and `__keyevent@0__:<event>` (the key as
//! message), as Redis does. Which classes are on is a set of Redis's flag letters; the events
//! of commands are raised by `cmd::notify`, those of keys that vanish by themselves (expired,
//! evicted) by the store through [`KeyListener`].
//!
//! Cost while off (Redis's default): one relaxed atomic load per write command.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::pubsub::PubSub;
use crate::store::{Gone, Key, KeyListener};

/// Redis's notification classes (`server.h` `NOTIFY_*`, same bits).
pub mod class {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 13;
    pub const NEW: u32 = 1 << 14;
    /// `A`: every class but key misses and new keys.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// Redis's error for a bad flag letter (CONFIG SET's reason).
pub const INVALID_FLAGS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parses Redis's flag letters (`notify-keyspace-events`); `None` for a letter Redis refuses.
pub fn parse_flags(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |flags, c| {
        Some(
            flags
                | match c {
                    b'A' => class::ALL,
                    b'g' => class::GENERIC,
                    b'$' => class::STRING,
                    b'l' => class::LIST,
                    b's' => class::SET,
                    b'h' => class::HASH,
                    b'z' => class::ZSET,
                    b'x' => class::EXPIRED,
                    b'e' => class::EVICTED,
                    b'K' => class::KEYSPACE,
                    b'E' => class::KEYEVENT,
                    b't' => class::STREAM,
                    b'm' => class::KEY_MISS,
                    b'd' => class::MODULE,
                    b'n' => class::NEW,
                    _ => return None,
                },
        )
    })
}

/// The flags as CONFIG GET shows them (Redis's `keyspaceEventsFlagsToString`).
pub fn render_flags(flags: u32) -> String {
    let mut s = String::new();
    if flags & class::ALL == class::ALL {
        s.push('A');
    } else {
        for (f, c) in [
            (class::GENERIC, 'g'),
            (class::STRING, '$'),
            (class::LIST, 'l'),
            (class::SET, 's'),
            (class::HASH, 'h'),
            (class::ZSET, 'z'),
            (class::EXPIRED, 'x'),
            (class::EVICTED, 'e'),
            (class::STREAM, 't'),
            (class::MODULE, 'd'),
            (class::NEW, 'n'),
        ] {
            if flags & f != 0 {
                s.push(c);
            }
        }
    }
    for (f, c) in [
        (class::KEYSPACE, 'K'),
        (class::KEYEVENT, 'E'),
        (class::KEY_MISS, 'm'),
    ] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s
}

/// The server's keyspace-notification settings and the registry they publish to.
pub struct Notifier {
    flags: AtomicU32,
    pubsub: Arc<PubSub>,
}

impl Notifier {
    pub fn new(pubsub: Arc<PubSub>) -> Notifier {
        Notifier {
            flags: AtomicU32::new(0),
            pubsub,
        }
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    pub fn set_flags(&self, flags: u32) {
        self.flags.store(flags, Relaxed);
    }

    /// Whether events of `class` are published at all: the class is on, one of the two
    /// channel kinds is, and someone is subscribed to something.
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        let f = self.flags.load(Relaxed);
        f & class != 0 && f & (class::KEYSPACE | class::KEYEVENT) != 0 && self.pubsub.is_active()
    }

    /// Publishes `event` on `key` (Redis's `notifyKeyspaceEvent`, database 0).
    pub fn event(&self, class: u32, event: &str, key: &[u8]) {
        let f = self.flags.load(Relaxed);
        if f & class == 0 {
            return;
        }
        if f & class::KEYSPACE != 0 {
            let mut ch = Vec::with_capacity(15 + key.len());
            ch.extend_from_slice(b"__keyspace@0__:");
            ch.extend_from_slice(key);
            self.pubsub.publish(&ch, event.as_bytes(), false);
        }
        if f & class::KEYEVENT != 0 {
            let ch = format!("__keyevent@0__:{event}");
            self.pubsub.publish(ch.as_bytes(), key, false);
        }
    }
}

impl KeyListener for Notifier {
    fn listening(&self) -> bool {
        self.wants(class::EXPIRED | class::EVICTED)
    }

    fn keys_gone(&self, keys: &[(Key, Gone)]) {
        for (k, why) in keys {
            match why {
                Gone::Expired => self.event(class::EXPIRED, "expired", k),
                Gone::Evicted => self.event(class::EVICTED, "evicted", k),
                Gone::Dropped => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_redis_renders_them() {
        for (set, shown) in [
            ("", ""),
            ("KEA", "AKE"),
            ("Kx", "xK"),
            ("E$lgsh", "g$lshE"),
            ("Am", "Am"),
            ("gzxetdnK", "gzxetdnK"),
            ("AKEmn", "AKEm"),
        ] {
            let f = parse_flags(set.as_bytes()).expect("valid");
            assert_eq!(render_flags(f), shown, "{set}");
        }
        assert_eq!(parse_flags(b"KEq"), None);
        assert_eq!(parse_flags(b"a"), None);
    }
}
