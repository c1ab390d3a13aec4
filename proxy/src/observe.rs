//! The proxy's metrics (read from its counters at scrape time) and the spans of traced
//! commands: one per client command, a child per backend call, redirects as events.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use membership::Slot;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, SpanKind};
use telemetry::trace::{SpanRecord, TraceParent, wall};
use telemetry::{Metrics, Tracing};

use crate::shared::Shared;

pub fn register(m: &Metrics, shared: &Arc<Shared>) {
    let w: Weak<Shared> = Arc::downgrade(shared);
    fn with<T: Default>(w: &Weak<Shared>, f: impl FnOnce(&Shared) -> T) -> T {
        w.upgrade().map(|s| f(&s)).unwrap_or_default()
    }
    register_pubsub(m, &w);
    let s = w.clone();
    m.counter_by(
        "autocache_hotkey_cache_lookups",
        "Reads of hot keys through the near cache, by result (hit: served from the proxy).",
        "result",
        move |emit| {
            if let Some(c) = s.upgrade().and_then(|sh| sh.hotkeys.cache.clone()) {
                emit("hit", c.stats.hits.load(Relaxed));
                emit("miss", c.stats.misses.load(Relaxed));
            }
        },
    );
    let s = w.clone();
    m.gauge_f64_by(
        "autocache_tiered_hit_rate",
        "Fraction of near-cache lookups (reads of hot keys) served by the proxy itself, tier=near; absent without a near cache.",
        "tier",
        move |emit| {
            if let Some(c) = s.upgrade().and_then(|sh| sh.hotkeys.cache.clone()) {
                let hits = c.stats.hits.load(Relaxed);
                let lookups = hits + c.stats.misses.load(Relaxed);
                let rate = if lookups == 0 {
                    0.0
                } else {
                    hits as f64 / lookups as f64
                };
                emit("near", rate);
            }
        },
    );
    let s = w.clone();
    m.counter(
        "autocache_hotkey_invalidations",
        "Near-cache keys dropped because they changed (shard pushes, local writes, flushes).",
        move || {
            with(&s, |sh| {
                sh.hotkeys
                    .cache
                    .as_ref()
                    .map_or(0, |c| c.stats.invalidations.load(Relaxed))
            })
        },
    );
    let s = w.clone();
    m.counter(
        "autocache_hotkey_expirations",
        "Near-cache values dropped because their key's TTL ran out.",
        move || {
            with(&s, |sh| {
                sh.hotkeys
                    .cache
                    .as_ref()
                    .map_or(0, |c| c.stats.expired.load(Relaxed))
            })
        },
    );
    let s = w.clone();
    m.gauge(
        "autocache_hotkeys",
        "Keys currently rated hot.",
        move || {
            with(&s, |sh| {
                sh.hotkeys
                    .detector
                    .as_ref()
                    .map_or(0, |d| d.hot_len() as i64)
            })
        },
    );
    telemetry::metrics::register_connections(
        m,
        shared,
        |sh| &sh.stats.conns,
        |sh| sh.clients.lock().len(),
    );
    let s = w.clone();
    m.histogram(
        "autocache_backend_request_duration_seconds",
        "Round trip of a batch of requests to one shard, by shard address.",
        "backend",
        1e9,
        move |emit| {
            if let Some(sh) = s.upgrade() {
                for b in sh.backends.all() {
                    emit(&b.addr, b.stats().latency.snapshot());
                }
            }
        },
    );
    let s = w.clone();
    m.counter_by2(
        "autocache_backend_errors",
        "Failed backend requests (connect and auth: failed connection attempts), by shard and kind.",
        ("backend", "kind"),
        move |emit| {
            if let Some(sh) = s.upgrade() {
                for b in sh.backends.all() {
                    for (kind, n) in b.stats().errors() {
                        emit(&b.addr, kind.name(), n);
                    }
                }
            }
        },
    );
    let s = w.clone();
    m.counter_by(
        "autocache_redirects",
        "MOVED and ASK redirects followed.",
        "kind",
        move |emit| {
            if let Some(sh) = s.upgrade() {
                emit("moved", sh.stats.moved.load(Relaxed));
                emit("ask", sh.stats.ask.load(Relaxed));
            }
        },
    );
    let s = w.clone();
    m.counter_by(
        "autocache_cluster_retries",
        "Requests the proxy sent again because the cluster said to retry, by reply (tryagain, clusterdown).",
        "kind",
        move |emit| {
            if let Some(sh) = s.upgrade() {
                emit("tryagain", sh.stats.tryagain.load(Relaxed));
                emit("clusterdown", sh.stats.clusterdown.load(Relaxed));
            }
        },
    );
    let s = w.clone();
    m.counter(
        "autocache_topology_refresh_requests",
        "Slot-map refreshes asked for by events (MOVED, CLUSTERDOWN, lost connections, shards down); coalesced, so refreshes are fewer.",
        move || with(&s, |sh| sh.topology.refresh_requests.load(Relaxed)),
    );
    let s = w.clone();
    m.counter_by(
        "autocache_topology_refreshes",
        "Slot map reads from the seeds, by result.",
        "result",
        move |emit| {
            if let Some(sh) = s.upgrade() {
                emit("ok", sh.topology.refreshes.load(Relaxed));
                emit("error", sh.topology.refresh_errors.load(Relaxed));
            }
        },
    );
    let s = w.clone();
    m.histogram(
        "autocache_fanout_width",
        "Shards a fanned-out command (MGET, MSET, DEL, DBSIZE ...) was sent to.",
        "cmd",
        1.0,
        move |emit| {
            if let Some(sh) = s.upgrade() {
                let snap = sh.stats.fanout.snapshot();
                if snap.count > 0 {
                    emit("all", snap);
                }
            }
        },
    );
    let s = w.clone();
    m.gauge("autocache_backends", "Shards in the slot map.", move || {
        with(&s, |sh| {
            sh.topology.load().map_or(0, |t| t.backends.len() as i64)
        })
    });
}

/// A sampled command: its span and one child per backend call.
pub struct CmdTrace {
    pub ids: TraceParent,
    pub keys: usize,
    pub slot: Option<Slot>,
    /// `(span id, chunk group)` per backend call.
    pub children: Vec<(SpanId, u32)>,
}

impl CmdTrace {
    pub fn new() -> Box<CmdTrace> {
        Box::new(CmdTrace {
            ids: TraceParent::random(),
            keys: 0,
            slot: None,
            children: Vec::new(),
        })
    }
}

/// A redirect followed while rendering a traced command.
pub struct Redirect {
    pub kind: &'static str,
    pub slot: u16,
    pub to: String,
    pub at: SystemTime,
}

/// What the writer knows when a traced (or slow) command is answered.
pub struct Finished<'a> {
    pub cmd: &'static str,
    pub start: Instant,
    pub error: Option<String>,
    /// `(backend address, reply arrival)` per chunk group.
    pub groups: &'a [(&'a str, Instant)],
    pub redirects: Vec<Redirect>,
    pub dispatched: Instant,
}

/// Emits the command's span and its backend children (`trace` is `None` for a command traced
/// only because it was slow: its span has no children, the shards were not told).
pub fn emit(t: &Tracing, trace: Option<Box<CmdTrace>>, f: Finished<'_>) {
    let end = SystemTime::now();
    let name = f.cmd.to_ascii_uppercase();
    let (ids, keys, slot, children, slow) = match trace {
        Some(tr) => {
            let tr = *tr;
            (tr.ids, tr.keys, tr.slot, tr.children, false)
        }
        None => (TraceParent::random(), 0, None, Vec::new(), true),
    };
    let mut attributes = vec![
        KeyValue::new("db.system", "redis"),
        KeyValue::new("db.operation.name", name.clone()),
    ];
    if !slow {
        attributes.push(KeyValue::new("autocache.keys", keys as i64));
    }
    if let Some(s) = slot {
        attributes.push(KeyValue::new("autocache.slot", i64::from(s.get())));
    }
    if slow {
        attributes.push(KeyValue::new("autocache.sampled", "slow"));
    }
    let events = f
        .redirects
        .into_iter()
        .map(|r| {
            (
                Cow::Borrowed("redirect"),
                r.at,
                vec![
                    KeyValue::new("autocache.redirect", r.kind),
                    KeyValue::new("autocache.slot", i64::from(r.slot)),
                    KeyValue::new("server.address", r.to),
                ],
            )
        })
        .collect();
    let dispatched = wall(f.dispatched);
    for (span_id, group) in children {
        let Some((addr, done)) = f.groups.get(group as usize) else {
            continue;
        };
        t.emit(SpanRecord {
            name: Cow::Owned(format!("{name} {addr}")),
            kind: SpanKind::Client,
            ids: TraceParent {
                trace_id: ids.trace_id,
                span_id,
            },
            parent: Some((ids.span_id, false)),
            start: dispatched,
            end: wall(*done),
            attributes: vec![
                KeyValue::new("db.system", "redis"),
                KeyValue::new("db.operation.name", name.clone()),
                KeyValue::new("server.address", addr.to_string()),
            ],
            events: Vec::new(),
            error: None,
        });
    }
    t.emit(SpanRecord {
        name: Cow::Owned(name),
        kind: SpanKind::Server,
        ids,
        parent: None,
        start: wall(f.start),
        end,
        attributes,
        events,
        error: f.error,
    });
}

/// The subscription hub's gauges and counters (`crate::pubsub`).
fn register_pubsub(m: &Metrics, w: &Weak<Shared>) {
    type Gauge = fn(&crate::pubsub::hub::Gauges) -> usize;
    let gauges: [(&'static str, &'static str, Gauge); 4] = [
        (
            "autocache_pubsub_upstream_subscriptions",
            "Subscriptions the proxy holds on the nodes for its clients (one per channel, pattern or shard channel and node).",
            |g| g.upstream,
        ),
        (
            "autocache_pubsub_local_subscriptions",
            "Subscriptions of the proxy's clients (one per client and channel, pattern or shard channel).",
            |g| g.local,
        ),
        (
            "autocache_pubsub_subscribers",
            "Clients of the proxy subscribed to anything.",
            |g| g.subscribers,
        ),
        (
            "autocache_pubsub_links",
            "Upstream pub/sub connections up (at most one per node).",
            |g| g.links,
        ),
    ];
    for (name, help, f) in gauges {
        let s = w.clone();
        m.gauge(name, help, move || {
            s.upgrade().map_or(0, |sh| f(&sh.pubsub.gauges()) as i64)
        });
    }
    type Counter = fn(&crate::pubsub::hub::HubStats) -> u64;
    let counters: [(&'static str, &'static str, Counter); 3] = [
        (
            "autocache_pubsub_messages_received",
            "Messages the proxy received from the nodes for its subscribers.",
            |s| s.received.load(Relaxed),
        ),
        (
            "autocache_pubsub_messages_fanned_out",
            "Messages queued to subscribers (one per message and client).",
            |s| s.fanned_out.load(Relaxed),
        ),
        (
            "autocache_pubsub_slow_subscribers_dropped",
            "Subscribers disconnected for client-output-buffer-limit pubsub.",
            |s| s.slow_dropped.load(Relaxed),
        ),
    ];
    for (name, help, f) in counters {
        let s = w.clone();
        m.counter(name, help, move || {
            s.upgrade().map_or(0, |sh| f(&sh.pubsub.stats))
        });
    }
}
