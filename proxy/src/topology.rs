//! The slot map the router reads: an `ArcSwap` snapshot rebuilt by a background task from the
//! seeds (`CLUSTER SHARDS`, then `CLUSTER SLOTS`). A seed that says it is not a cluster switches
//! the proxy to the static mode: the configured seeds, in order, split the 16384 slots evenly
//! (twemproxy-like).
//!
//! Refreshes run in one task, so at most one is ever in flight. Besides the periodic one, a
//! refresh is requested by anything that suggests the map is stale: a `-MOVED`, a
//! `-CLUSTERDOWN`, a lost backend connection, a failed health check, a shard going down.
//! Requests made during a refresh are coalesced into one more refresh after it, and
//! [`Pacer`] spaces refreshes out (50 ms at least, backing off to 500 ms while the map keeps
//! routing to a shard that is down), so a failover is picked up within half a second of the
//! cluster announcing it, and a flapping shard cannot make the proxy hammer the seeds.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use membership::topology::{Value, is_not_cluster_error};
use membership::{Mode, Slot, SlotMap};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Backends, State, conn::roundtrip};
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

    /// Whether clients can be served everywhere: every slot has an owner and no owner is down.
    /// While not, the refresher polls the seeds quickly (a failover is expected).
    pub fn healthy(&self) -> bool {
        self.map.unowned() == 0 && self.backends.iter().all(|b| b.state() != State::Down)
    }
}

/// The shared, refreshable topology.
pub struct TopologyCell {
    current: ArcSwapOption<Topology>,
    /// Refresh requests; one stored permit coalesces every request made during a refresh.
    refresh: Arc<Notify>,
    ready: Notify,
    epoch: AtomicU64,
    /// Why the last refresh failed, when the seeds refused the proxy's credentials (cleared by
    /// the next successful refresh). Without a map, clients are answered with this error.
    auth_error: Mutex<Option<String>>,
    pub refreshes: AtomicU64,
    pub refresh_errors: AtomicU64,
    /// Refreshes requested by events (MOVED, CLUSTERDOWN, lost connections, ...).
    pub refresh_requests: AtomicU64,
}

impl Default for TopologyCell {
    fn default() -> Self {
        TopologyCell {
            current: ArcSwapOption::empty(),
            refresh: Arc::new(Notify::new()),
            ready: Notify::new(),
            epoch: AtomicU64::new(0),
            auth_error: Mutex::new(None),
            refreshes: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
            refresh_requests: AtomicU64::new(0),
        }
    }
}

/// Why the proxy serves clients: a slot map, or the seeds' refusal of its credentials (every
/// request is then answered with that error rather than left waiting).
pub enum Serving {
    Map(Arc<Topology>),
    AuthFailed(String),
}

impl TopologyCell {
    pub fn load(&self) -> Option<Arc<Topology>> {
        self.current.load_full()
    }

    /// Waits until a first map is installed, or until the seeds refuse the proxy's credentials.
    pub async fn wait_serving(&self) -> Serving {
        loop {
            let notified = self.ready.notified();
            if let Some(t) = self.load() {
                return Serving::Map(t);
            }
            if let Some(e) = self.auth_error() {
                return Serving::AuthFailed(e);
            }
            notified.await;
        }
    }

    /// The seeds' authentication error, while the last refresh failed with one.
    pub fn auth_error(&self) -> Option<String> {
        self.auth_error.lock().clone()
    }

    fn set_auth_error(&self, e: Option<String>) {
        let was = std::mem::replace(&mut *self.auth_error.lock(), e.clone());
        if was.is_none() && e.is_some() {
            self.ready.notify_waiters();
        }
    }

    /// The signal backends raise when a connection is lost or a shard goes down.
    pub fn refresh_signal(&self) -> Arc<Notify> {
        self.refresh.clone()
    }

    /// Asks the refresher for a refresh soon (see [`Pacer`]); never blocks, never piles up.
    pub fn request_refresh(&self) {
        self.refresh_requests.fetch_add(1, Relaxed);
        self.refresh.notify_one();
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
        self.request_refresh();
    }
}

/// Least time between two refreshes: a burst of triggers (every connection to a dead shard
/// closing, many clients' MOVED for one slot) costs one refresh.
pub const REFRESH_MIN_GAP: Duration = Duration::from_millis(50);
/// Most time between two refreshes while the map is not [healthy](Topology::healthy): the
/// failover of a shard is seen at most this long after the cluster has made it (the target is
/// one second from the cluster covering the slots to clients being served again).
pub const REFRESH_URGENT_MAX: Duration = Duration::from_millis(500);

/// When the next refresh may and must happen; no clock, no I/O.
///
/// After a refresh that leaves the proxy healthy, the next one is due after the periodic
/// `interval`, or [`REFRESH_MIN_GAP`] after a trigger. Each refresh in a row that leaves it
/// unhealthy (failed, slots without owner, an owner down) doubles the gap, from 100 ms up to
/// [`REFRESH_URGENT_MAX`], and the refresh then runs at that pace whether triggered or not.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    /// Refreshes in a row that left the proxy unhealthy.
    streak: u32,
}

impl Pacer {
    pub fn new(interval: Duration) -> Pacer {
        Pacer {
            interval,
            streak: 0,
        }
    }

    /// Records the outcome of a refresh.
    pub fn record(&mut self, healthy: bool) {
        self.streak = if healthy {
            0
        } else {
            self.streak.saturating_add(1)
        };
    }

    /// How long after the last refresh a triggered one may start.
    pub fn earliest(&self) -> Duration {
        REFRESH_MIN_GAP
            .saturating_mul(1u32 << self.streak.min(16))
            .min(REFRESH_URGENT_MAX)
    }

    /// How long after the last refresh the next one starts without a trigger.
    pub fn latest(&self) -> Duration {
        if self.streak == 0 {
            self.interval.max(self.earliest())
        } else {
            self.earliest()
        }
    }
}

/// Runs `refresh` (which says whether the proxy is healthy afterwards) now and then as
/// `pacer` says, until `stop`. One refresh at a time; notifications of `trigger` that arrive
/// meanwhile leave one permit, i.e. one more refresh, however many there were.
pub async fn paced<F, Fut>(
    pacer: &mut Pacer,
    trigger: &Notify,
    stop: &CancellationToken,
    mut refresh: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let healthy = tokio::select! {
            _ = stop.cancelled() => return,
            h = refresh() => h,
        };
        pacer.record(healthy);
        let done = Instant::now();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = trigger.notified() => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(done + pacer.earliest()) => {}
                }
            }
            _ = tokio::time::sleep_until(done + pacer.latest()) => {}
        }
    }
}

/// The nodes to ask for the map, in order: the configured seeds, then the nodes of the
/// current map; nodes known to be down go last, so a dead seed costs a refresh nothing while
/// another node can answer (a dead host can take the whole connect timeout to fail).
pub fn ask_order(seeds: &[String], nodes: &[String], down: impl Fn(&str) -> bool) -> Vec<String> {
    let mut all: Vec<String> = Vec::with_capacity(seeds.len() + nodes.len());
    for n in seeds.iter().chain(nodes) {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    // Stable: the configured order holds within each group.
    all.sort_by_key(|n| down(n));
    all
}

/// What a seed said.
enum SeedAnswer {
    Map(SlotMap),
    NotCluster,
}

/// Reads the slot map from the first seed that answers. When none does and one of them refused
/// the proxy's credentials, that is the error: it is the one an operator must fix.
pub async fn fetch(
    seeds: &[String],
    backends: &Backends,
    timeout: Duration,
) -> Result<SlotMap, TopologyError> {
    let mut errors = Vec::new();
    let mut auth = None;
    for addr in seeds {
        match tokio::time::timeout(timeout * 2, query(addr, backends, timeout)).await {
            Ok(Ok(SeedAnswer::Map(m))) => return Ok(m),
            Ok(Ok(SeedAnswer::NotCluster)) => return Ok(SlotMap::split_evenly(seeds)?),
            Ok(Err(e @ TopologyError::Auth { .. })) => {
                errors.push(e.to_string());
                auth.get_or_insert(e);
            }
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push(format!("seed {addr}: timed out")),
        }
    }
    Err(auth.unwrap_or_else(|| TopologyError::NoSeed(errors.join("; "))))
}

/// Whether a seed's error reply means the proxy's credentials are missing or wrong.
fn is_auth_error(e: &str) -> bool {
    ["NOAUTH", "WRONGPASS", "NOPERM"]
        .iter()
        .any(|code| e.starts_with(code))
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
    let auth_err = |reason: &str| TopologyError::Auth {
        addr: addr.to_string(),
        reason: reason.trim_end().to_string(),
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
            let text = String::from_utf8_lossy(&r);
            return Err(auth_err(text.strip_prefix('-').unwrap_or(&text)));
        }
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let shards = Request::from_args(&["CLUSTER", "SHARDS"]);
    let reply = roundtrip(&mut stream, &shards.raw)
        .await
        .map_err(seed_err)?;
    match decode_reply(&reply).map_err(|e| seed_err(e.to_string()))? {
        // A server that wants a password (none configured) says so before anything else.
        Reply::Error(e) if is_auth_error(&e) => Err(auth_err(&e)),
        Reply::Error(e) if is_not_cluster_error(&e) => Ok(SeedAnswer::NotCluster),
        Reply::Error(_) => {
            // Older servers: CLUSTER SLOTS.
            let slots = Request::from_args(&["CLUSTER", "SLOTS"]);
            let reply = roundtrip(&mut stream, &slots.raw).await.map_err(seed_err)?;
            match decode_reply(&reply).map_err(|e| seed_err(e.to_string()))? {
                Reply::Error(e) if is_auth_error(&e) => Err(auth_err(&e)),
                Reply::Error(e) if is_not_cluster_error(&e) => Ok(SeedAnswer::NotCluster),
                Reply::Error(e) => Err(seed_err(e)),
                r => Ok(SeedAnswer::Map(SlotMap::from_cluster_slots(
                    &Value::from(r),
                    host,
                )?)),
            }
        }
        r => Ok(SeedAnswer::Map(SlotMap::from_cluster_shards(
            &Value::from(r),
            host,
        )?)),
    }
}

/// Installs a first map (retrying until one seed answers), then keeps it fresh: every
/// `interval`, and soon after a refresh is requested, as [`Pacer`] says. Static maps never
/// change.
pub async fn maintain(
    cell: Arc<TopologyCell>,
    backends: Arc<Backends>,
    seeds: Vec<String>,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let failures = AtomicU64::new(0);
    let trigger = cell.refresh_signal();
    let mut pacer = Pacer::new(interval);
    paced(&mut pacer, &trigger, &stop, || {
        refresh_once(&cell, &backends, &seeds, timeout, &failures)
    })
    .await;
}

/// One refresh; true when the proxy is healthy afterwards.
async fn refresh_once(
    cell: &TopologyCell,
    backends: &Backends,
    seeds: &[String],
    timeout: Duration,
    failures: &AtomicU64,
) -> bool {
    let current = cell.load();
    if current.as_ref().is_some_and(|t| t.mode() == Mode::Static) {
        return true;
    }
    // Nodes we know about are asked too, so a dead seed list does not strand us.
    let nodes = current.as_ref().map_or(&[][..], |t| t.map.nodes());
    let ask = ask_order(seeds, nodes, |a| {
        backends.peek(a).is_some_and(|b| b.state() == State::Down)
    });
    match fetch(&ask, backends, timeout).await {
        Ok(mut map) => {
            if map.mode() == Mode::Static {
                // Static mode splits over the configured seeds only.
                map = SlotMap::split_evenly(seeds).unwrap_or(map);
            }
            if map.unowned() > 0 {
                tracing::warn!(unowned = map.unowned(), "slot map has unserved slots");
            }
            let changed = cell.load().is_none_or(|t| t.map != map);
            if changed {
                tracing::info!(mode = ?map.mode(), nodes = ?map.nodes(), "slot map installed");
                cell.install(map, backends);
            }
            cell.set_auth_error(None);
            cell.refreshes.fetch_add(1, Relaxed);
            failures.store(0, Relaxed);
        }
        Err(e) => {
            cell.refresh_errors.fetch_add(1, Relaxed);
            let n = failures.fetch_add(1, Relaxed) + 1;
            if let TopologyError::Auth { .. } = e {
                if n == 1 || n.is_multiple_of(100) {
                    tracing::error!(error = %e, "the shards refuse the proxy's credentials (backend-user, backend-password); clients get this error");
                }
                cell.set_auth_error(Some(e.to_string()));
            } else if n == 1 || n.is_multiple_of(20) {
                tracing::warn!(error = %e, "cannot read the slot map");
            }
        }
    }
    cell.load().is_some_and(|t| t.healthy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pacer_backs_off_while_unhealthy_and_relaxes_once_healthy() {
        let mut p = Pacer::new(ms(10_000));
        assert_eq!((p.earliest(), p.latest()), (ms(50), ms(10_000)));
        let mut gaps = Vec::new();
        for _ in 0..6 {
            p.record(false);
            assert_eq!(
                p.earliest(),
                p.latest(),
                "unhealthy: polled at the back-off pace"
            );
            gaps.push(p.latest().as_millis() as u64);
        }
        assert_eq!(gaps, [100, 200, 400, 500, 500, 500]);
        for _ in 0..1000 {
            p.record(false);
        }
        assert_eq!(
            p.latest(),
            REFRESH_URGENT_MAX,
            "capped, however long it lasts"
        );
        p.record(true);
        assert_eq!((p.earliest(), p.latest()), (ms(50), ms(10_000)));
        // An interval shorter than the minimum gap does not make the refresher spin.
        assert_eq!(Pacer::new(Duration::ZERO).latest(), REFRESH_MIN_GAP);
    }

    #[test]
    fn nodes_known_down_are_asked_last() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let order = ask_order(&s(&["a:1", "b:1"]), &s(&["b:1", "c:1", "d:1"]), |n| {
            n == "a:1" || n == "c:1"
        });
        assert_eq!(order, s(&["b:1", "d:1", "a:1", "c:1"]));
    }

    #[test]
    fn auth_errors_are_recognised() {
        assert!(is_auth_error("NOAUTH Authentication required."));
        assert!(is_auth_error(
            "WRONGPASS invalid username-password pair or user is disabled."
        ));
        assert!(!is_auth_error("ERR unknown command 'CLUSTER'"));
        assert!(!is_auth_error(
            "ERR This instance has cluster support disabled"
        ));
    }

    /// Many triggers during a slow refresh make one more refresh, never a second one at the
    /// same time; while unhealthy the refreshes back off; once healthy they relax.
    #[tokio::test(start_paused = true)]
    async fn refreshes_are_single_flight_coalesced_and_paced() {
        let trigger = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let running = AtomicUsize::new(0);
        let max_running = AtomicUsize::new(0);
        let starts: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
        let t0 = Instant::now();
        let mut pacer = Pacer::new(ms(10_000));
        let hammer = {
            let trigger = trigger.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                // A trigger every millisecond for 3 s (say, every request to a dead shard).
                for _ in 0..3000 {
                    trigger.notify_one();
                    tokio::time::sleep(ms(1)).await;
                }
                tokio::time::sleep(ms(20_000)).await;
                stop.cancel();
            })
        };
        paced(&mut pacer, &trigger, &stop, || async {
            let n = running.fetch_add(1, Relaxed) + 1;
            max_running.fetch_max(n, Relaxed);
            let at = t0.elapsed();
            starts.lock().push(at);
            // Each refresh takes 30 ms; the proxy is unhealthy for the first 2 s.
            tokio::time::sleep(ms(30)).await;
            running.fetch_sub(1, Relaxed);
            at >= ms(2000)
        })
        .await;
        let _ = hammer.await;
        assert_eq!(max_running.load(Relaxed), 1, "one refresh at a time");
        let starts = starts.into_inner();
        let gaps: Vec<u64> = starts
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .collect();
        // Unhealthy: 30 ms of refresh + 100, 200, 400, then 500 ms gaps.
        assert_eq!(gaps.get(..4), Some(&[130, 230, 430, 530][..]), "{gaps:?}");
        // 2000 triggers while unhealthy, yet 6 refreshes: coalesced and backed off.
        let unhealthy = starts.iter().filter(|s| **s < ms(2000)).count();
        assert_eq!(unhealthy, 6, "{starts:?}");
        // Healthy but still triggered: one refresh per 30 + 50 ms at most.
        assert!(gaps.iter().all(|g| *g >= 80), "{gaps:?}");
        // Healthy and untriggered: back to the periodic interval.
        assert_eq!(gaps.last(), Some(&10_030), "{gaps:?}");
    }
}
