//! The shard's observability: its metrics (read from the server's counters at scrape time),
//! readiness for the admin server, and the spans of traced commands.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Instant;

use membership::swim::MemberState;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use telemetry::trace::{SpanRecord, TraceParent, wall};
use telemetry::{Metrics, Tracing};

use crate::shared::Shared;

/// The shard's observability handles; both absent unless configured.
#[derive(Default)]
pub struct Obs {
    /// Present while the admin server runs: per-command statistics are kept.
    pub metrics: Option<Arc<Metrics>>,
    /// Present when an OTLP endpoint is configured.
    pub tracing: Option<Arc<Tracing>>,
}

/// Whether the shard serves: standalone, or a cluster member that owns slots or is about to
/// import some.
pub fn ready(sh: &Shared) -> Result<(), String> {
    let Some(c) = sh.cluster.get() else {
        return Ok(());
    };
    let view = c.handle.load();
    let owns = view
        .slots
        .table()
        .counts()
        .get(&c.me)
        .is_some_and(|n| *n > 0);
    let importing = view.plan.iter().any(|m| m.to == c.me);
    if owns || importing {
        Ok(())
    } else {
        Err("this node owns no slots yet".into())
    }
}

/// Registers the shard's instruments; they read `shared` (weakly: the registry must not keep a
/// stopped server alive).
pub fn register(m: &Metrics, shared: &Arc<Shared>) {
    let w = Arc::downgrade(shared);
    // Each callback reads the live server, or reports nothing once it is gone.
    fn with<T: Default>(w: &Weak<Shared>, f: impl FnOnce(&Shared) -> T) -> T {
        w.upgrade().map(|s| f(&s)).unwrap_or_default()
    }
    telemetry::metrics::register_connections(
        m,
        shared,
        |sh| &sh.stats.conns,
        |sh| sh.clients.count(),
    );
    let s = w.clone();
    m.counter(
        "autocache_cache_hits",
        "Key lookups that found the key (either tier).",
        move || with(&s, |sh| sh.stats.keyspace_hits.load(Relaxed)),
    );
    let s = w.clone();
    m.counter(
        "autocache_cache_misses",
        "Key lookups that found nothing.",
        move || with(&s, |sh| sh.stats.keyspace_misses.load(Relaxed)),
    );
    let s = w.clone();
    m.gauge(
        "autocache_keys_total",
        "Keys stored (both tiers).",
        move || with(&s, |sh| sh.db.len() as i64),
    );
    let s = w.clone();
    m.counter(
        "autocache_keys_expired",
        "Keys removed because their TTL passed.",
        move || with(&s, |sh| sh.db.stats.expired_keys.load(Relaxed)),
    );
    let s = w.clone();
    m.counter(
        "autocache_keys_evicted",
        "Keys evicted to stay within maxmemory (or the warm tier's budget).",
        move || {
            with(&s, |sh| {
                sh.db.stats.evicted_keys.load(Relaxed)
                    + sh.db.warm().map_or(0, |w| w.stats.evictions.load(Relaxed))
            })
        },
    );
    let s = w.clone();
    m.gauge_by(
        "autocache_memory_bytes",
        "RAM: used by the RAM tier, the maxmemory budget (0 = unlimited), the warm tier's page cache.",
        "type",
        move |emit| {
            if let Some(sh) = s.upgrade() {
                emit("used", sh.db.used_memory() as i64);
                emit("maxmemory", sh.db.maxmemory() as i64);
                let cache = if sh.db.warm().is_some() {
                    sh.config.warm_cache_bytes as i64
                } else {
                    0
                };
                emit("warm_cache", cache);
            }
        },
    );
    register_cluster(m, &w);
    register_tiers(m, &w);
}

fn register_cluster(m: &Metrics, w: &Weak<Shared>) {
    let s = w.clone();
    m.gauge(
        "autocache_cluster_state",
        "1 when every slot is served (always 1 standalone), else 0.",
        move || {
            let Some(sh) = s.upgrade() else { return 0 };
            match sh.cluster.get() {
                None => 1,
                Some(c) => i64::from(c.handle.load().slots.unowned() == 0),
            }
        },
    );
    let s = w.clone();
    m.gauge_by(
        "autocache_cluster_nodes",
        "Cluster nodes by liveness as this node sees them (itself included, as alive).",
        "state",
        move |emit| {
            let Some(sh) = s.upgrade() else { return };
            let Some(c) = sh.cluster.get() else { return };
            let view = c.handle.load();
            let (mut alive, mut suspect, mut down) = (1, 0, 0);
            for m in view.members.values() {
                match m.state {
                    MemberState::Alive => alive += 1,
                    MemberState::Suspect => suspect += 1,
                    MemberState::Down => down += 1,
                }
            }
            emit("alive", alive);
            emit("suspect", suspect);
            emit("down", down);
        },
    );
    let s = w.clone();
    m.gauge(
        "autocache_cluster_slots_assigned",
        "Slots with an owner, cluster-wide (16384 standalone).",
        move || {
            let Some(sh) = s.upgrade() else { return 0 };
            let all = i64::from(membership::SLOT_COUNT);
            match sh.cluster.get() {
                None => all,
                Some(c) => all - c.handle.load().slots.unowned() as i64,
            }
        },
    );
    let s = w.clone();
    m.gauge(
        "autocache_cluster_slots_migrating",
        "Slots this node still has to hand over or take in under the current rebalance plan.",
        move || {
            let Some(sh) = s.upgrade() else { return 0 };
            let Some(c) = sh.cluster.get() else { return 0 };
            let view = c.handle.load();
            view.plan
                .iter()
                .filter(|mv| mv.to == c.me || mv.from == Some(c.me))
                .map(|mv| mv.len() as i64)
                .sum()
        },
    );
}

fn register_tiers(m: &Metrics, w: &Weak<Shared>) {
    let s = w.clone();
    m.gauge_by(
        "autocache_tiered_keys",
        "Keys per tier (ram, warm).",
        "tier",
        move |emit| {
            if let Some(sh) = s.upgrade() {
                emit("ram", sh.db.hot_len() as i64);
                emit("warm", sh.db.warm_len() as i64);
            }
        },
    );
    let s = w.clone();
    m.gauge_by(
        "autocache_tiered_bytes",
        "Bytes per tier (ram, warm).",
        "tier",
        move |emit| {
            if let Some(sh) = s.upgrade() {
                emit("ram", sh.db.used_memory() as i64);
                emit("warm", sh.db.warm_memory() as i64);
            }
        },
    );
    let s = w.clone();
    m.counter_by(
        "autocache_tiered_migrations",
        "Keys moved between tiers: promote (warm to RAM), demote (RAM to warm).",
        "direction",
        move |emit| {
            let Some(sh) = s.upgrade() else { return };
            let (p, d) = sh.db.warm().map_or((0, 0), |w| {
                (
                    w.stats.promotions.load(Relaxed),
                    w.stats.demotions.load(Relaxed),
                )
            });
            emit("promote", p);
            emit("demote", d);
        },
    );
    let s = w.clone();
    m.gauge_f64_by(
        "autocache_tiered_hit_rate",
        "Fraction of key lookups since start (or CONFIG RESETSTAT) answered by each tier; ram + warm is the overall hit rate.",
        "tier",
        move |emit| {
            let Some(sh) = s.upgrade() else { return };
            let (ram, warm) = tier_hit_rates(&sh);
            emit("ram", ram);
            emit("warm", warm);
        },
    );
    let s = w.clone();
    m.counter_by(
        "autocache_tier_hits",
        "Key lookups that found the key, by the tier that held it.",
        "tier",
        move |emit| {
            let Some(sh) = s.upgrade() else { return };
            let warm = sh.db.warm().map_or(0, |w| w.stats.hits.load(Relaxed));
            let all = sh.stats.keyspace_hits.load(Relaxed);
            emit("ram", all.saturating_sub(warm));
            emit("warm", warm);
        },
    );
}

/// The RAM and warm tiers' shares of all key lookups (hits in the tier over hits plus
/// misses); both 0 before the first lookup.
pub fn tier_hit_rates(sh: &Shared) -> (f64, f64) {
    let hits = sh.stats.keyspace_hits.load(Relaxed);
    let lookups = hits + sh.stats.keyspace_misses.load(Relaxed);
    if lookups == 0 {
        return (0.0, 0.0);
    }
    let warm = sh
        .db
        .warm()
        .map_or(0, |w| w.stats.hits.load(Relaxed))
        .min(hits);
    let ram = hits - warm;
    (ram as f64 / lookups as f64, warm as f64 / lookups as f64)
}

/// Which tier answered a traced command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Ram,
    Warm,
    Miss,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Ram => "ram",
            Tier::Warm => "warm",
            Tier::Miss => "miss",
        }
    }
}

/// A command being traced: the context it joins (from `AUTOCACHE.TRACE`) or a new trace.
pub struct Traced {
    pub parent: Option<TraceParent>,
    pub start: Instant,
}

/// Emits the span of one traced command.
pub fn emit_span(
    t: &Tracing,
    traced: Traced,
    cmd: &'static str,
    tier: Option<Tier>,
    error: Option<&str>,
) {
    let ids = match traced.parent {
        Some(p) => p.child(),
        None => TraceParent::random(),
    };
    let mut attributes = vec![
        KeyValue::new("db.system", "redis"),
        KeyValue::new("db.operation.name", cmd.to_ascii_uppercase()),
    ];
    if let Some(tier) = tier {
        attributes.push(KeyValue::new("autocache.tier", tier.name()));
    }
    t.emit(SpanRecord {
        name: Cow::Owned(cmd.to_ascii_uppercase()),
        kind: SpanKind::Server,
        ids,
        parent: traced.parent.map(|p| (p.span_id, true)),
        start: wall(traced.start),
        end: std::time::SystemTime::now(),
        attributes,
        events: Vec::new(),
        error: error.map(str::to_string),
    });
}
