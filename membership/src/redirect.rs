//! What to do with a shard's reply: the MOVED/ASK/TRYAGAIN/CLUSTERDOWN decision as a pure
//! function.
//!
//! The proxy (and any cluster-aware client) calls [`decide`] with the raw reply and the number of
//! redirects already followed for this request; it performs I/O according to the [`Action`]. No
//! clock, no sockets: every branch is unit-tested below.

use std::time::Duration;

use crate::slot::Slot;

/// MOVED/ASK redirects followed per request before giving up (redis-rs and Jedis use 5 as
/// well).
pub const MAX_REDIRECTS: u32 = 5;
/// Attempts of any kind per request before giving up on `-TRYAGAIN`: a batch of keys in flight
/// between two shards is retried for about 2.5 s (10 + 20 + 40 + 80 + 160 + 7 × 320 ms) rather
/// than failed, so a slot migration stays invisible to clients of the proxy.
pub const MAX_TRYAGAIN: u32 = 12;

/// First TRYAGAIN back-off; doubles per attempt up to [`TRYAGAIN_MAX_DELAY`].
pub const TRYAGAIN_BASE_DELAY: Duration = Duration::from_millis(10);
pub const TRYAGAIN_MAX_DELAY: Duration = Duration::from_millis(320);

/// Attempts of any kind per request before giving up on `-CLUSTERDOWN`. A cluster that lost a
/// master says CLUSTERDOWN until a replica (or, for AutoCache shards, a surviving shard) takes
/// the slots over, which takes one to three seconds after the failure is detected; the retries
/// (25 + 50 + 100 + 200 + 400 + 400 ms, about 1.2 s) absorb the end of that window, with a
/// slot-map refresh requested on each, and stay short of a typical client timeout.
pub const MAX_CLUSTERDOWN: u32 = 6;
/// First CLUSTERDOWN back-off; doubles per attempt up to [`CLUSTERDOWN_MAX_DELAY`].
pub const CLUSTERDOWN_BASE_DELAY: Duration = Duration::from_millis(25);
pub const CLUSTERDOWN_MAX_DELAY: Duration = Duration::from_millis(400);

/// Pause before a second MOVED/ASK for the same request; doubles per redirect up to
/// [`TRYAGAIN_MAX_DELAY`].
pub const REDIRECT_BASE_DELAY: Duration = Duration::from_millis(10);

/// A parsed `-MOVED` or `-ASK` error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub slot: Slot,
    /// `host:port` of the node to ask.
    pub addr: String,
}

/// What the caller should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The reply is final (including ordinary errors): hand it to the client.
    Done,
    /// The slot has a new owner: resend there and refresh the slot map.
    RetryMoved(Redirect),
    /// The slot is migrating: send `ASKING` and the command to that node; keep the map.
    RetryAsk(Redirect),
    /// The cluster asked us to retry (multi-key command during a migration): resend to the same
    /// owner after this delay.
    TryAgainAfter(Duration),
    /// The cluster cannot serve the slot right now (`-CLUSTERDOWN`: a master failed and its
    /// slots are not taken over yet). Ask for a fresh slot map, then resend to the slot's
    /// owner in that map after this delay.
    RefreshAndRetryAfter(Duration),
    /// Redirect budget exhausted: answer the client with an error.
    GiveUp,
}

/// Decides what to do with `reply` (the raw RESP reply bytes, `-MOVED 3999 127.0.0.1:6381\r\n`
/// for instance), given that `attempt` redirects/retries were already followed for this request.
pub fn decide(reply: &[u8], attempt: u32) -> Action {
    decide_with_limit(reply, attempt, MAX_REDIRECTS)
}

/// [`decide`] with an explicit MOVED/ASK budget (`-TRYAGAIN` keeps [`MAX_TRYAGAIN`], or `max`
/// if that is larger).
pub fn decide_with_limit(reply: &[u8], attempt: u32, max: u32) -> Action {
    match reply.strip_prefix(b"-") {
        Some(line) => decide_error(line, attempt, max),
        None => Action::Done,
    }
}

/// [`decide_with_limit`] for an error reply a client has already parsed: its line without the
/// leading `-` (`MOVED 3999 127.0.0.1:6381`).
pub fn decide_error(line: &[u8], attempt: u32, max: u32) -> Action {
    let line = error_line(line);
    let kind = if line.starts_with(b"MOVED ") {
        Kind::Moved
    } else if line.starts_with(b"ASK ") {
        Kind::Ask
    } else if line.starts_with(b"TRYAGAIN") {
        Kind::TryAgain
    } else if line.starts_with(b"CLUSTERDOWN") {
        Kind::ClusterDown
    } else {
        return Action::Done;
    };
    let limit = match kind {
        Kind::TryAgain => max.max(MAX_TRYAGAIN),
        Kind::ClusterDown => max.max(MAX_CLUSTERDOWN),
        Kind::Moved | Kind::Ask => max,
    };
    if attempt >= limit {
        return Action::GiveUp;
    }
    match kind {
        Kind::TryAgain => Action::TryAgainAfter(tryagain_delay(attempt)),
        Kind::ClusterDown => Action::RefreshAndRetryAfter(clusterdown_delay(attempt)),
        Kind::Moved | Kind::Ask => match parse_redirect(line) {
            Some(r) if kind == Kind::Moved => Action::RetryMoved(r),
            Some(r) => Action::RetryAsk(r),
            // A malformed redirect cannot be followed; pass it on rather than loop.
            None => Action::Done,
        },
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Moved,
    Ask,
    TryAgain,
    ClusterDown,
}

/// The delay before retry number `attempt` (0-based) after `-TRYAGAIN`.
pub fn tryagain_delay(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(16);
    TRYAGAIN_BASE_DELAY
        .saturating_mul(factor)
        .min(TRYAGAIN_MAX_DELAY)
}

/// The delay before retry number `attempt` (0-based) after `-CLUSTERDOWN`.
pub fn clusterdown_delay(attempt: u32) -> Duration {
    CLUSTERDOWN_BASE_DELAY
        .saturating_mul(1u32 << attempt.min(16))
        .min(CLUSTERDOWN_MAX_DELAY)
}

/// The pause before following redirect number `attempt` (0-based) of one request. The first
/// goes at once: the caller's slot map was stale. A further one means the cluster's own view
/// is changing — a slot was handed over and its new owner has not heard yet, so the two answer
/// MOVED to each other — which settles within milliseconds; retrying at once would spend the
/// whole budget inside that window. With [`MAX_REDIRECTS`] the pauses add up to 150 ms.
pub fn redirect_delay(attempt: u32) -> Duration {
    match attempt.checked_sub(1) {
        None => Duration::ZERO,
        Some(n) => REDIRECT_BASE_DELAY
            .saturating_mul(1u32 << n.min(16))
            .min(TRYAGAIN_MAX_DELAY),
    }
}

/// The error line without its trailing CRLF.
fn error_line(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    &line[..end]
}

/// Parses `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>` (without the `-`).
/// An empty host (`MOVED 1 :6380`, sent by nodes that do not know their own IP) is returned as
/// `:port`; the caller substitutes the host it used to reach the node.
pub fn parse_redirect(line: &[u8]) -> Option<Redirect> {
    let line = std::str::from_utf8(error_line(line)).ok()?;
    let mut parts = line.split_ascii_whitespace();
    let _kind = parts.next()?;
    let slot = Slot::parse(parts.next()?.as_bytes())?;
    let addr = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    if host.contains(char::is_whitespace) {
        return None;
    }
    Some(Redirect {
        slot,
        addr: addr.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_redirects_wait_longer_each_time() {
        let waits: Vec<u64> = (0..MAX_REDIRECTS)
            .map(|a| redirect_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [0, 10, 20, 40, 80]);
        assert_eq!(redirect_delay(40), TRYAGAIN_MAX_DELAY);
    }

    use super::*;

    fn slot(n: u16) -> Slot {
        Slot::new(n).expect("slot")
    }

    /// A client that parsed the reply passes the line without `-`: the same decision.
    #[test]
    fn parsed_error_lines_decide_alike() {
        for line in [
            &b"MOVED 3999 127.0.0.1:6381"[..],
            b"ASK 12 :7001",
            b"TRYAGAIN Multiple keys request during rehashing of slot",
            b"CLUSTERDOWN Hash slot not served",
            b"ERR unknown command",
            b"MOVED 99999 127.0.0.1:6381",
        ] {
            let mut reply = b"-".to_vec();
            reply.extend_from_slice(line);
            reply.extend_from_slice(b"\r\n");
            for attempt in [0, 4, 5, 20] {
                assert_eq!(
                    decide_error(line, attempt, 5),
                    decide_with_limit(&reply, attempt, 5),
                    "{line:?} {attempt}"
                );
            }
        }
    }

    #[test]
    fn ordinary_replies_are_done() {
        for r in [
            &b"+OK\r\n"[..],
            b"$3\r\nbar\r\n",
            b":1\r\n",
            b"*-1\r\n",
            b"-ERR unknown command 'foo'\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
            b"",
        ] {
            assert_eq!(
                decide(r, 0),
                Action::Done,
                "{:?}",
                String::from_utf8_lossy(r)
            );
        }
    }

    #[test]
    fn moved_is_followed_and_updates_the_map() {
        assert_eq!(
            decide(b"-MOVED 3999 127.0.0.1:6381\r\n", 0),
            Action::RetryMoved(Redirect {
                slot: slot(3999),
                addr: "127.0.0.1:6381".into()
            })
        );
    }

    #[test]
    fn ask_is_followed_without_a_map_change() {
        assert_eq!(
            decide(b"-ASK 12182 10.0.0.2:7002\r\n", 2),
            Action::RetryAsk(Redirect {
                slot: slot(12182),
                addr: "10.0.0.2:7002".into()
            })
        );
    }

    #[test]
    fn ipv6_and_empty_hosts_parse() {
        assert_eq!(
            parse_redirect(b"MOVED 1 ::1:7000").map(|r| r.addr),
            Some("::1:7000".into())
        );
        assert_eq!(
            parse_redirect(b"MOVED 1 :7000").map(|r| r.addr),
            Some(":7000".into())
        );
    }

    #[test]
    fn tryagain_backs_off_exponentially_and_caps() {
        assert_eq!(
            decide(
                b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
                0
            ),
            Action::TryAgainAfter(Duration::from_millis(10))
        );
        assert_eq!(
            decide(b"-TRYAGAIN\r\n", 3),
            Action::TryAgainAfter(Duration::from_millis(80))
        );
        assert_eq!(tryagain_delay(30), TRYAGAIN_MAX_DELAY);
    }

    #[test]
    fn redirects_are_bounded() {
        let moved = b"-MOVED 1 127.0.0.1:7000\r\n";
        assert!(matches!(
            decide(moved, MAX_REDIRECTS - 1),
            Action::RetryMoved(_)
        ));
        assert_eq!(decide(moved, MAX_REDIRECTS), Action::GiveUp);
        assert_eq!(decide(b"-ASK 1 h:1\r\n", MAX_REDIRECTS), Action::GiveUp);
        assert!(matches!(
            decide(b"-TRYAGAIN\r\n", MAX_REDIRECTS),
            Action::TryAgainAfter(_)
        ));
        assert_eq!(decide(b"-TRYAGAIN\r\n", MAX_TRYAGAIN), Action::GiveUp);
        assert_eq!(decide_with_limit(moved, 0, 0), Action::GiveUp);
    }

    #[test]
    fn clusterdown_refreshes_and_retries_with_a_bounded_back_off() {
        for r in [
            &b"-CLUSTERDOWN The cluster is down\r\n"[..],
            b"-CLUSTERDOWN Hash slot not served\r\n",
            b"-CLUSTERDOWN\r\n",
        ] {
            assert_eq!(
                decide(r, 0),
                Action::RefreshAndRetryAfter(Duration::from_millis(25)),
                "{:?}",
                String::from_utf8_lossy(r)
            );
        }
        let waits: Vec<u64> = (0..MAX_CLUSTERDOWN)
            .map(
                |a| match decide(b"-CLUSTERDOWN The cluster is down\r\n", a) {
                    Action::RefreshAndRetryAfter(d) => d.as_millis() as u64,
                    other => panic!("attempt {a}: {other:?}"),
                },
            )
            .collect();
        assert_eq!(waits, [25, 50, 100, 200, 400, 400]);
        // The whole budget stays well under common client timeouts (2 s and more).
        assert!(waits.iter().sum::<u64>() < 1500);
        assert_eq!(
            decide(b"-CLUSTERDOWN The cluster is down\r\n", MAX_CLUSTERDOWN),
            Action::GiveUp
        );
        // The budget counts every attempt of the request, whatever came before.
        assert!(matches!(
            decide(b"-CLUSTERDOWN\r\n", MAX_REDIRECTS),
            Action::RefreshAndRetryAfter(_)
        ));
        assert_eq!(clusterdown_delay(40), CLUSTERDOWN_MAX_DELAY);
        // Only the error code counts, not a word inside another error.
        assert_eq!(decide(b"-ERR CLUSTERDOWN is a word\r\n", 0), Action::Done);
    }

    #[test]
    fn malformed_redirects_are_passed_through() {
        for r in [
            &b"-MOVED\r\n"[..],
            b"-MOVED abc 127.0.0.1:7000\r\n",
            b"-MOVED 16384 127.0.0.1:7000\r\n",
            b"-MOVED 1 127.0.0.1\r\n",
            b"-MOVED 1 127.0.0.1:notaport\r\n",
            b"-ASK 1 a:1 extra\r\n",
        ] {
            assert_eq!(
                decide(r, 0),
                Action::Done,
                "{:?}",
                String::from_utf8_lossy(r)
            );
        }
    }
}
