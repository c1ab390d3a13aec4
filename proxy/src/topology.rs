//! The slot map the router reads: an `ArcSwap` snapshot rebuilt by a background task from the
//! seeds (`CLUSTER SHARDS`, then `CLUSTER SLOTS`), refreshed periodically and after `-MOVED`.
//! A seed that says it is not a cluster switches the proxy to the static mode: the configured
//! seeds, in order, split the 16384 slots evenly (twemproxy-like).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use membership::topology::{Value, is_not_cluster_error};
use membership::{Mode, Slot, SlotMap};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Backends, conn::roundtrip};
use crate::error::TopologyError;
use crate::protocol::{Reply, Request, decode_reply};

/// One consistent view: the map and a backend per node (same index).
pub struct Topology {
    pub map: SlotMap,
    pub backends: Vec<Arc<Backend>>,
    pub epoch: u64,
}

impl Topology {
    pub fn owner(&self, slot: Slot) -> Option<&Arc<Backend>> {
        self.map.owner(slot).and_then(|i| self.backends.get(i))
    }

    pub fn mode(&self) -> Mode {
        self.map.mode()
    }
}

/// The shared, refreshable topology.
pub struct TopologyCell {
    current: ArcSwapOption<Topology>,
    refresh: Notify,
    ready: Notify,
    epoch: AtomicU64,
    pub refreshes: AtomicU64,
    pub refresh_errors: AtomicU64,
}

impl Default for TopologyCell {
    fn default() -> Self {
        TopologyCell {
            current: ArcSwapOption::empty(),
            refresh: Notify::new(),
            ready: Notify::new(),
            epoch: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
        }
    }
}

impl TopologyCell {
    pub fn load(&self) -> Option<Arc<Topology>> {
        self.current.load_full()
    }

    /// Waits until a first map is installed.
    pub async fn wait_ready(&self) -> Arc<Topology> {
        loop {
            let notified = self.ready.notified();
            if let Some(t) = self.load() {
                return t;
            }
            notified.await;
        }
    }

    pub fn install(&self, map: SlotMap, backends: &Backends) {
        let nodes: Vec<Arc<Backend>> = map.nodes().iter().map(|a| backends.get(a)).collect();
        let epoch = self.epoch.fetch_add(1, Relaxed) + 1;
        self.current.store(Some(Arc::new(Topology {
            map,
            backends: nodes,
            epoch,
        })));
        self.ready.notify_waiters();
    }

    /// Applies a `-MOVED` to the snapshot at once and asks for a full refresh.
    pub fn moved(&self, slot: Slot, addr: &str, backends: &Backends) {
        if let Some(t) = self.load()
            && t.map
                .owner(slot)
                .and_then(|i| t.map.nodes().get(i))
                .map(String::as_str)
                != Some(addr)
        {
            self.install(t.map.with_moved(slot, addr), backends);
        }
        self.refresh.notify_one();
    }
}

/// What a seed said.
enum SeedAnswer {
    Map(SlotMap),
    NotCluster,
}

/// Reads the slot map from the first seed that answers.
pub async fn fetch(
    seeds: &[String],
    backends: &Backends,
    timeout: Duration,
) -> Result<SlotMap, TopologyError> {
    let mut errors = Vec::new();
    for addr in seeds {
        match tokio::time::timeout(timeout * 2, query(addr, backends, timeout)).await {
            Ok(Ok(SeedAnswer::Map(m))) => return Ok(m),
            Ok(Ok(SeedAnswer::NotCluster)) => return Ok(SlotMap::split_evenly(seeds)?),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push(format!("seed {addr}: timed out")),
        }
    }
    Err(TopologyError::NoSeed(errors.join("; ")))
}

async fn query(
    addr: &str,
    backends: &Backends,
    timeout: Duration,
) -> Result<SeedAnswer, TopologyError> {
    let seed_err = |reason: String| TopologyError::Seed {
        addr: addr.to_string(),
        reason,
    };
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| seed_err("connect timed out".into()))?
        .map_err(|e| seed_err(e.to_string()))?;
    let s = backends.settings();
    if let Some(pass) = &s.password {
        let auth = match &s.username {
            Some(u) => Request::from_args(&["AUTH", u.as_str(), pass.as_str()]),
            None => Request::from_args(&["AUTH", pass.as_str()]),
        };
        let r = roundtrip(&mut stream, &auth.raw).await.map_err(seed_err)?;
        if !r.starts_with(b"+OK") {
            return Err(seed_err(format!(
                "AUTH failed: {}",
                String::from_utf8_lossy(&r).trim_end()
            )));
        }
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let shards = Request::from_args(&["CLUSTER", "SHARDS"]);
    let reply = roundtrip(&mut stream, &shards.raw)
        .await
        .map_err(seed_err)?;
    match decode_reply(&reply).map_err(|e| seed_err(e.to_string()))? {
        Reply::Error(e) if is_not_cluster_error(&e) => Ok(SeedAnswer::NotCluster),
        Reply::Error(_) => {
            // Older servers: CLUSTER SLOTS.
            let slots = Request::from_args(&["CLUSTER", "SLOTS"]);
            let reply = roundtrip(&mut stream, &slots.raw).await.map_err(seed_err)?;
            match decode_reply(&reply).map_err(|e| seed_err(e.to_string()))? {
                Reply::Error(e) if is_not_cluster_error(&e) => Ok(SeedAnswer::NotCluster),
                Reply::Error(e) => Err(seed_err(e)),
                r => Ok(SeedAnswer::Map(SlotMap::from_cluster_slots(
                    &to_value(r),
                    host,
                )?)),
            }
        }
        r => Ok(SeedAnswer::Map(SlotMap::from_cluster_shards(
            &to_value(r),
            host,
        )?)),
    }
}

fn to_value(r: Reply) -> Value {
    match r {
        Reply::Ok => Value::Str(b"OK".to_vec()),
        Reply::Simple(s) => Value::Str(s.as_bytes().to_vec()),
        Reply::Status(s) | Reply::Verbatim(s) => Value::Str(s.into_bytes()),
        Reply::Error(e) => Value::Error(e),
        Reply::Int(n) => Value::Int(n),
        Reply::Double(d) => Value::Str(membership::resp::format_double(d).into_bytes()),
        Reply::Bulk(b) => Value::Str(b.to_vec()),
        Reply::Nil | Reply::NilArray => Value::Nil,
        Reply::Array(a) | Reply::Set(a) => Value::Array(a.into_iter().map(to_value).collect()),
        Reply::Map(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| (to_value(k), to_value(v)))
                .collect(),
        ),
    }
}

/// Installs a first map (retrying until one seed answers), then keeps it fresh: every
/// `interval`, and soon after a `-MOVED` (at most every 100 ms). Static maps never change.
pub async fn maintain(
    cell: Arc<TopologyCell>,
    backends: Arc<Backends>,
    seeds: Vec<String>,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let static_mode = cell.load().is_some_and(|t| t.mode() == Mode::Static);
        if !static_mode {
            // Nodes we know about are asked too, so a dead seed list does not strand us.
            let mut ask = seeds.clone();
            if let Some(t) = cell.load() {
                for n in t.map.nodes() {
                    if !ask.contains(n) {
                        ask.push(n.clone());
                    }
                }
            }
            match fetch(&ask, &backends, timeout).await {
                Ok(mut map) => {
                    if map.mode() == Mode::Static {
                        // Static mode splits over the configured seeds only.
                        map = SlotMap::split_evenly(&seeds).unwrap_or(map);
                    }
                    if map.unowned() > 0 {
                        tracing::warn!(unowned = map.unowned(), "slot map has unserved slots");
                    }
                    let changed = cell.load().is_none_or(|t| t.map != map);
                    if changed {
                        tracing::info!(mode = ?map.mode(), nodes = ?map.nodes(), "slot map installed");
                        cell.install(map, &backends);
                    }
                    cell.refreshes.fetch_add(1, Relaxed);
                    failures = 0;
                }
                Err(e) => {
                    cell.refresh_errors.fetch_add(1, Relaxed);
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(error = %e, "cannot read the slot map");
                    }
                }
            }
        }
        let wait = if cell.load().is_none() {
            Duration::from_millis(250)
        } else {
            interval
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = cell.refresh.notified() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
