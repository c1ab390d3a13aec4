//! The proxy's state, shared by every session: configuration, the slot map and backends,
//! connected clients, counters, hot keys, learned commands. Built once by [`crate::server`] and
//! handed down to the sessions and what they call; nothing here calls up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use telemetry::stats::{AtomicHistogram, WIDTH_BOUNDS};
use telemetry::{Metrics, Tracing};
use tokio_util::sync::CancellationToken;

use crate::backend::Backends;
use crate::busy::BusyPoll;
use crate::config::Config;
use crate::hotkey::HotKeys;
use crate::learned::LearnedTable;
use crate::topology::TopologyCell;

/// Proxy-wide counters for INFO and the metrics.
pub struct Stats {
    pub conns: telemetry::stats::ConnectionStats,
    pub total_commands: AtomicU64,
    pub moved: AtomicU64,
    pub ask: AtomicU64,
    pub tryagain: AtomicU64,
    /// `-CLUSTERDOWN` replies retried.
    pub clusterdown: AtomicU64,
    /// Shards per fanned-out command.
    pub fanout: AtomicHistogram,
    /// Clients closed for `client-output-buffer-limit`.
    pub output_buffer_limit_disconnections: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            conns: Default::default(),
            total_commands: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            ask: AtomicU64::new(0),
            tryagain: AtomicU64::new(0),
            clusterdown: AtomicU64::new(0),
            fanout: AtomicHistogram::new(&WIDTH_BOUNDS),
            output_buffer_limit_disconnections: AtomicU64::new(0),
        }
    }
}

/// A connected client, for CLIENT LIST.
#[derive(Clone)]
pub struct ClientEntry {
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub resp: u8,
}

pub struct Shared {
    pub config: Config,
    pub topology: Arc<TopologyCell>,
    pub backends: Arc<Backends>,
    pub clients: Mutex<BTreeMap<u64, ClientEntry>>,
    pub next_client_id: AtomicU64,
    pub stats: Stats,
    pub started: Instant,
    pub run_id: String,
    pub local_addr: SocketAddr,
    /// Cancelled when the proxy stops: sessions stop reading and drain.
    pub drain: CancellationToken,
    /// Hot-key detection and the near cache.
    pub hotkeys: Arc<HotKeys>,
    /// Metrics (set once before clients are served, when the admin server runs) and traces.
    pub metrics: OnceLock<Arc<Metrics>>,
    pub tracing: Option<Arc<Tracing>>,
    /// Permits for clients waiting in blocking commands (`blocking-connections`).
    pub blocking: Arc<tokio::sync::Semaphore>,
    /// Busy polling after client traffic (`busy-poll-us`), when on.
    pub busy: Option<Arc<BusyPoll>>,
    /// Commands learned from the backends' `COMMAND` (empty until a backend answered).
    pub learned: Arc<ArcSwap<LearnedTable>>,
    /// Scripts sent through the proxy, to heal `-NOSCRIPT` (see `crate::scripts`).
    pub scripts: crate::scripts::Scripts,
    /// The subscription hub (pub/sub).
    pub pubsub: Arc<crate::pubsub::Hub>,
    /// MONITOR clients.
    pub monitors: crate::monitor::Monitors,
}
