//! The state every connection and background task of one server shares, built once by
//! `server::run` and handed down (mini-redis's `Db`, pingora's service state). It sits below
//! the code that uses it — connections, commands, observability — and above the pieces it is
//! made of, so state flows one way and nothing imports the accept loop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::blocking::Blocking;
use crate::clients::Clients;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::migrate;
use crate::notify::Notifier;
use crate::pubsub::PubSub;
use crate::slowlog::SlowLog;
use crate::store::Db;
use crate::tracking::Tracking;

/// Server-wide counters for INFO stats.
#[derive(Default)]
pub struct Stats {
    pub conns: telemetry::stats::ConnectionStats,
    pub total_commands: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
}

/// Settings that CONFIG SET changes at run time (the memory ones live in `Db::limits`).
pub struct Runtime {
    pub requirepass: RwLock<Option<Bytes>>,
    pub maxclients: AtomicUsize,
}

/// State shared by all connections of one server.
pub struct Shared {
    pub db: Db,
    pub clock: Clock,
    pub config: Config,
    pub runtime: Runtime,
    pub clients: Clients,
    pub stats: Stats,
    pub local_addr: SocketAddr,
    pub run_id: String,
    /// Cancelled to stop the server (SHUTDOWN or the `shutdown` future).
    pub shutdown: CancellationToken,
    /// Set once in cluster mode.
    pub cluster: OnceLock<Cluster>,
    /// CLIENT TRACKING state (client-side caching invalidations).
    pub tracking: Arc<Tracking>,
    /// Metrics (set once, before clients are accepted, when the admin server runs) and traces.
    pub metrics: OnceLock<Arc<telemetry::Metrics>>,
    pub tracing: Option<Arc<telemetry::Tracing>>,
    /// SLOWLOG: commands slower than `slowlog-log-slower-than`.
    pub slowlog: SlowLog,
    /// Clients blocked on keys (BLPOP and the other blocking commands).
    pub blocking: Blocking,
    /// Keys watched by transactions (WATCH).
    pub watches: Arc<crate::watch::Watches>,
    /// The slot gates in standalone mode (cluster mode uses its migrations' gates).
    pub gates: crate::gates::SlotGates,
    /// Pub/sub subscriptions, and keyspace notifications published through them.
    pub pubsub: Arc<PubSub>,
    pub notify: Arc<Notifier>,
    /// Lua scripts by SHA1 (EVAL, SCRIPT LOAD).
    pub scripts: crate::scripts::Scripts,
    /// Function libraries (FUNCTION LOAD).
    pub functions: crate::functions::Functions,
    /// Scripts and functions running now (`-BUSY`, SCRIPT KILL, FUNCTION KILL).
    pub running: crate::running::Running,
    /// Per-command calls, errors and latency (INFO commandstats and latencystats; the
    /// metrics export the same counters).
    pub commands: Arc<telemetry::stats::CommandStats>,
    /// Error replies by code (INFO errorstats).
    pub errors: crate::errorstats::ErrorStats,
    /// LATENCY: spikes over `latency-monitor-threshold`.
    pub latency: crate::latency::LatencyMonitor,
    /// CLIENT PAUSE.
    pub pause: crate::pause::Pause,
    /// MONITOR clients.
    pub monitors: crate::monitor::Monitors,
    /// Redis parameters CONFIG SET keeps without applying.
    pub params: crate::params::Params,
    /// DEBUG SET-ACTIVE-EXPIRE: whether the background expiry runs.
    pub active_expire: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// The slot gates every keyed command holds (see `crate::gates`).
    #[inline]
    pub fn gates(&self) -> &crate::gates::SlotGates {
        match self.cluster.get() {
            Some(c) => &c.migrations.gates,
            None => &self.gates,
        }
    }

    pub fn requirepass(&self) -> Option<Bytes> {
        self.runtime.requirepass.read().clone()
    }
}

/// The slot-migration tasks see the server through this narrow view: they run below the
/// shared state (which holds their gates) instead of importing it.
impl migrate::Node for Shared {
    fn db(&self) -> &Db {
        &self.db
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn publish(&self, channel: &[u8], message: &[u8]) {
        self.pubsub.publish(channel, message, false);
    }
}
