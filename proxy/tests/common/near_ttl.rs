//! The near cache and TTLs: every way Redis sets or changes a key's TTL, applied through the
//! proxy or straight to the key's node, with the key cached before and after; the proxy must
//! never answer from its memory once the key has expired, whatever the backend announces.
//!
//! Shards announce an expiry only when their sweep or a read finds the key, so each key is read
//! right after its own deadline: a cache that relied on the announcement would still serve it.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Raw, TIMEOUT, bulk, config};

/// A proxy whose near cache is on and coherent from the start, and fills on any read.
pub fn near_cache_config(seeds: &[String]) -> proxy::Config {
    proxy::Config {
        hotkey_threshold: 20,
        hotkey_window: Duration::from_millis(100),
        hotkey_sample: 1,
        near_cache_link_idle: Duration::ZERO,
        ..config(seeds)
    }
}

/// Waits until the proxy's invalidation links to `n` backends are subscribed.
pub async fn until_coherent(proxy: &mut Raw, n: usize) {
    let want = format!("near_cache_links_coherent:{n}/{n}");
    let deadline = Instant::now() + TIMEOUT;
    while !proxy.text(&["INFO", "hotkeys"]).await.contains(&want) {
        assert!(Instant::now() < deadline, "links never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `key` through the proxy until one read is answered from the near cache.
pub async fn until_cached(proxy: &mut Raw, key: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = super::info_int(&proxy.text(&["INFO", "hotkeys"]).await, "near_cache_hits");
        assert_eq!(proxy.text(&["GET", key]).await, bulk(want), "{key}");
        assert_eq!(proxy.text(&["GET", key]).await, bulk(want), "{key}");
        let after = super::info_int(&proxy.text(&["INFO", "hotkeys"]).await, "near_cache_hits");
        if after > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never served from the near cache"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Where a way's command goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Proxy,
    Node,
}

/// When the key is gone at the latest.
enum Life {
    /// This long after the command's reply.
    Ms(u64),
    /// At the Unix time the command's `@MS` (milliseconds) or `@S` (seconds) argument names.
    At,
    Forever,
}

struct Way {
    name: &'static str,
    via: Via,
    /// Run on a key holding "v" (persistent, cached), makes it hold `value` with a TTL.
    cmds: Vec<Vec<String>>,
    value: &'static str,
    life: Life,
}

fn way(name: &'static str, via: Via, cmds: &[&[&str]], value: &'static str, life: Life) -> Way {
    Way {
        name,
        via,
        cmds: cmds
            .iter()
            .map(|c| c.iter().map(|a| a.to_string()).collect())
            .collect(),
        value,
        life,
    }
}

/// The scenario. `owner` gives the node that holds a key; `restore`: the backend has
/// DUMP/RESTORE (Redis, Valkey).
pub async fn every_ttl_way_expires_in_the_near_cache(
    proxy: &mut Raw,
    owner: &dyn Fn(&str) -> SocketAddr,
    restore: bool,
) {
    // TTLs long enough to fill and hit the cache first, short enough for a quick test.
    // Absolute times are filled in when the command is sent: `@MS` is now + MS in Unix
    // milliseconds, `@S` two seconds from now in Unix seconds.
    const MS: u64 = 1200;
    let ms = MS.to_string();
    use Via::*;
    let mut ways = vec![
        way(
            "set-px",
            Proxy,
            &[&["SET", "K", "w", "PX", &ms]],
            "w",
            Life::Ms(MS),
        ),
        way(
            "set-ex",
            Node,
            &[&["SET", "K", "w", "EX", "1"]],
            "w",
            Life::Ms(1000),
        ),
        way(
            "set-exat",
            Proxy,
            &[&["SET", "K", "w", "EXAT", "@S"]],
            "w",
            Life::At,
        ),
        way(
            "set-pxat",
            Node,
            &[&["SET", "K", "w", "PXAT", "@MS"]],
            "w",
            Life::At,
        ),
        way(
            "set-keepttl",
            Proxy,
            &[&["PEXPIRE", "K", &ms], &["SET", "K", "w", "KEEPTTL"]],
            "w",
            Life::Ms(MS),
        ),
        way(
            "setex",
            Node,
            &[&["SETEX", "K", "1", "w"]],
            "w",
            Life::Ms(1000),
        ),
        way(
            "psetex",
            Proxy,
            &[&["PSETEX", "K", &ms, "w"]],
            "w",
            Life::Ms(MS),
        ),
        way(
            "expire",
            Proxy,
            &[&["EXPIRE", "K", "1"]],
            "v",
            Life::Ms(1000),
        ),
        way(
            "expire-nx",
            Node,
            &[&["EXPIRE", "K", "1", "NX"]],
            "v",
            Life::Ms(1000),
        ),
        way(
            "pexpire",
            Node,
            &[&["PEXPIRE", "K", &ms]],
            "v",
            Life::Ms(MS),
        ),
        way("expireat", Node, &[&["EXPIREAT", "K", "@S"]], "v", Life::At),
        way(
            "pexpireat",
            Proxy,
            &[&["PEXPIREAT", "K", "@MS"]],
            "v",
            Life::At,
        ),
        way(
            "pexpire-lt",
            Proxy,
            &[&["PEXPIRE", "K", "100000"], &["PEXPIRE", "K", &ms, "LT"]],
            "v",
            Life::Ms(MS),
        ),
        way(
            "getex-px",
            Proxy,
            &[&["GETEX", "K", "PX", &ms]],
            "v",
            Life::Ms(MS),
        ),
        way(
            "getex-ex",
            Node,
            &[&["GETEX", "K", "EX", "1"]],
            "v",
            Life::Ms(1000),
        ),
        way(
            "getex-pxat",
            Node,
            &[&["GETEX", "K", "PXAT", "@MS"]],
            "v",
            Life::At,
        ),
        way(
            "persist",
            Proxy,
            &[&["PEXPIRE", "K", &ms], &["PERSIST", "K"]],
            "v",
            Life::Forever,
        ),
        way(
            "persist-node",
            Node,
            &[&["PEXPIRE", "K", &ms], &["PERSIST", "K"]],
            "v",
            Life::Forever,
        ),
        way(
            "getex-persist",
            Proxy,
            &[&["PEXPIRE", "K", &ms], &["GETEX", "K", "PERSIST"]],
            "v",
            Life::Forever,
        ),
    ];
    if restore {
        // The payload of "r" comes from DUMP on the node at run time.
        ways.push(way(
            "restore",
            Node,
            &[&["RESTORE", "K", &ms, "DUMP", "REPLACE"]],
            "r",
            Life::Ms(MS),
        ));
        ways.push(way(
            "restore-absttl",
            Node,
            &[&["RESTORE", "K", "@MS", "DUMP", "REPLACE", "ABSTTL"]],
            "r",
            Life::At,
        ));
    }
    let key = |w: &Way| format!("ttl:{}", w.name);
    let mut dump = None;
    if restore {
        let addr = owner("ttl:dump-source");
        let mut node = Raw::connect(addr).await;
        assert_eq!(node.text(&["SET", "ttl:dump-source", "r"]).await, "+OK\r\n");
        node.send(&super::encode(&["DUMP", "ttl:dump-source"]))
            .await;
        let reply = node.reply().await;
        // `$N\r\n<payload>\r\n`
        let start = reply.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
        dump = Some(reply[start..reply.len() - 2].to_vec());
    }

    // 1. Every key persistent and cached.
    for w in &ways {
        let k = key(w);
        assert_eq!(proxy.text(&["SET", &k, "v"]).await, "+OK\r\n");
        until_cached(proxy, &k, "v").await;
    }
    // 2. The TTL set or changed; the key cached again, now with its TTL.
    let mut checks: Vec<(Instant, String, &Way)> = Vec::new();
    for w in &ways {
        let k = key(w);
        let mut node = match w.via {
            Via::Node => Some(Raw::connect(owner(&k)).await),
            Via::Proxy => None,
        };
        let mut at_ms = None;
        for c in &w.cmds {
            let mut args: Vec<Vec<u8>> = Vec::new();
            for a in c {
                let a = match a.as_str() {
                    "K" => k.clone(),
                    "@MS" => {
                        let t = unix_ms() + u128::from(MS);
                        at_ms = Some(t);
                        t.to_string()
                    }
                    "@S" => {
                        let t = unix_ms() / 1000 + 2;
                        at_ms = Some(t * 1000);
                        t.to_string()
                    }
                    _ => a.clone(),
                };
                args.push(a.into_bytes());
            }
            for a in &mut args {
                if a == b"DUMP"
                    && let Some(d) = &dump
                {
                    a.clone_from(d);
                }
            }
            let mut req = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a);
                req.extend_from_slice(b"\r\n");
            }
            let reply = match node.as_mut() {
                Some(n) => {
                    n.send(&req).await;
                    n.reply().await
                }
                None => {
                    proxy.send(&req).await;
                    proxy.reply().await
                }
            };
            let reply = String::from_utf8_lossy(&reply).into_owned();
            assert!(!reply.starts_with('-'), "{} {:?}: {reply}", w.name, c);
        }
        let answered = Instant::now();
        let gone = match w.life {
            Life::Ms(ms) => answered + Duration::from_millis(ms),
            Life::At => {
                let left = at_ms.unwrap_or_default().saturating_sub(unix_ms());
                answered + Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
            }
            // Read after every other key's deadline.
            Life::Forever => answered + Duration::from_millis(2500),
        };
        until_cached(proxy, &k, w.value).await;
        checks.push((gone, k, w));
    }
    // 3. Each key read right after its deadline (a few ms late, for the clocks' rounding).
    checks.sort_by_key(|c| c.0);
    let expired_before = super::info_int(
        &proxy.text(&["INFO", "hotkeys"]).await,
        "near_cache_expired",
    );
    let mut expiring = 0;
    for (gone, k, w) in &checks {
        let at = *gone + Duration::from_millis(3);
        tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
        let got = proxy.text(&["GET", k]).await;
        match w.life {
            Life::Forever => assert_eq!(got, bulk(w.value), "{}: the TTL was removed", w.name),
            _ => {
                expiring += 1;
                assert_eq!(
                    got,
                    "$-1\r\n",
                    "{}: read {:?} after its TTL",
                    w.name,
                    at.elapsed()
                );
            }
        }
    }
    let expired = super::info_int(
        &proxy.text(&["INFO", "hotkeys"]).await,
        "near_cache_expired",
    );
    assert!(
        expired > expired_before,
        "expired values were dropped by their deadline ({expiring} keys expired)"
    );
}
