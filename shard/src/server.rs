//! The accept loop: builds the shared state (`crate::shared`), starts cluster membership and
//! the admin server, accepts connections until shutdown, then drains them and stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clients::Clients;
use crate::clock::Clock;
use crate::config::Layered as _;
use crate::config::{ClusterShutdown, Config, WarmPromotion};
use crate::connection;
use crate::shared::{Runtime, Shared, Stats};
use crate::store::{Db, Promotion, WarmStore};

/// How long shutdown waits for connections to finish the batch they are executing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Warm(#[from] crate::store::warm::WarmError),
    #[error("{0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Trace(#[from] telemetry::trace::TraceError),
    #[error("{0}")]
    Metrics(#[from] telemetry::metrics::MetricsError),
    #[error("cannot create data directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// Serves the Redis protocol on `listener` until `shutdown` resolves (or a client sends
/// SHUTDOWN), then stops accepting, lets connections finish their current batch, and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    run_with_admin(listener, None, config, shutdown).await
}

/// [`run`], plus the admin HTTP server (`/metrics`, `/health`, `/ready`) on `admin` when given;
/// per-command metrics are kept only then. Traces are exported when the configuration names an
/// OTLP endpoint.
pub async fn run_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    config.validate()?;
    let local_addr = listener.local_addr()?;
    let tracing = telemetry::Tracing::start(&config.telemetry, "autocache-shard")?;
    let clock = Clock::new();
    let db = open_db(&config, clock.now_ms()).await?;
    let tracking = Arc::new(crate::tracking::Tracking::new(
        config.tracking_table_max_keys,
    ));
    let pubsub = Arc::new(crate::pubsub::PubSub::default());
    // Both were checked by `validate`.
    if let Ok(limits) = pubsub.limits().parse(&config.client_output_buffer_limit) {
        pubsub.set_limits(limits);
    }
    let notify = Arc::new(crate::notify::Notifier::new(pubsub.clone()));
    notify.set_flags(
        crate::notify::parse_flags(config.notify_keyspace_events.as_bytes()).unwrap_or(0),
    );
    let watches = Arc::new(crate::watch::Watches::default());
    // Keys the store drops by itself (expiry, eviction, lost slots) invalidate trackers,
    // dirty the transactions watching them, and raise `expired` / `evicted` keyspace
    // notifications.
    db.set_key_listener(Arc::new(crate::store::Listeners(vec![
        tracking.clone(),
        watches.clone(),
        notify.clone(),
    ])));
    let stopping = CancellationToken::new();
    let functions = crate::functions::Functions::new(config.warm_tier.then(|| config.dir.clone()));
    let gates = db.gates();
    let shared = Arc::new(Shared {
        running: crate::running::Running::new(config.busy_reply_threshold_ms, stopping.clone()),
        functions,
        db,
        clock,
        runtime: Runtime {
            requirepass: RwLock::new(config.requirepass.clone().map(Bytes::from)),
            maxclients: AtomicUsize::new(config.maxclients),
        },
        config,
        clients: Clients::default(),
        stats: Stats::default(),
        local_addr,
        run_id: format!(
            "{:016x}{:016x}{:08x}",
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u32(..)
        ),
        shutdown: stopping,
        cluster: std::sync::OnceLock::new(),
        tracking,
        watches,
        gates,
        scripts: Default::default(),
        metrics: std::sync::OnceLock::new(),
        tracing,
        slowlog: crate::slowlog::SlowLog::default(),
        blocking: crate::blocking::Blocking::default(),
        pubsub,
        notify,
        commands: Default::default(),
        errors: Default::default(),
        latency: Default::default(),
        pause: Default::default(),
        monitors: Default::default(),
        params: Default::default(),
        active_expire: std::sync::atomic::AtomicBool::new(true),
    });
    match crate::cmd::load_persisted_functions(&shared) {
        Ok(0) => {}
        Ok(n) => tracing::info!(libraries = n, "function libraries loaded"),
        Err(e) => tracing::warn!(error = %e, "function libraries not loaded"),
    }
    if shared.config.cluster_enabled {
        let c = crate::cluster::start(&shared.config, local_addr, shared.clone()).await?;
        let _ = shared.cluster.set(c);
    }
    tracing::info!(addr = %local_addr, "shard listening");

    let mut tasks = JoinSet::new();
    tasks.spawn(background(shared.clone()));
    if shared.cluster.get().is_some() {
        tasks.spawn(drop_lost_shard_channels(shared.clone()));
    }
    if let Some(admin) = admin {
        let node_id = match shared.cluster.get() {
            Some(c) => c.me.to_string(),
            None => shared.run_id.clone(),
        };
        let metrics = Arc::new(telemetry::Metrics::with_commands(
            telemetry::Identity {
                role: "shard",
                version: env!("CARGO_PKG_VERSION"),
                node_id,
            },
            shared.config.telemetry.latency_tracking,
            shared.commands.clone(),
        )?);
        crate::observe::register(&metrics, &shared);
        let _ = shared.metrics.set(metrics.clone());
        let weak = Arc::downgrade(&shared);
        let state = Arc::new(telemetry::Admin {
            metrics: Some(metrics),
            ready: Box::new(move || match weak.upgrade() {
                Some(sh) => crate::observe::ready(&sh),
                None => Err("stopped".into()),
            }),
            idle_timeout: shared.config.telemetry.admin_idle_timeout,
        });
        let stop = shared.shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = telemetry::admin::serve(admin, state, stop).await {
                tracing::error!(error = %e, "admin server failed");
            }
        });
    }
    // Tasks that live as long as the server (the rest are connections).
    let background_tasks = tasks.len();
    let stop = shared.shutdown.clone();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => accept(&shared, &mut tasks, stream, addr),
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if tasks.len() > background_tasks => {}
        }
    }
    drop(listener);
    shared.shutdown.cancel();
    tracing::info!(clients = shared.clients.count(), "shutting down");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections did not finish in time; aborting them");
        tasks.shutdown().await;
    }
    if let Some(c) = shared.cluster.get() {
        leave_or_pause(&shared.config, &c.handle).await;
    }
    if let Some(m) = shared.metrics.get() {
        m.shutdown();
    }
    if let Some(t) = shared.tracing.clone() {
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    if shared.db.warm().is_some() {
        let sh = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if sh.config.warm_demote_on_shutdown {
                sh.db.demote_all();
            }
            if let Some(w) = sh.db.warm() {
                w.close();
            }
        })
        .await;
    }
    Ok(())
}

/// The keyspace, with the warm tier opened (and its index rebuilt) when configured.
async fn open_db(config: &Config, now: u64) -> Result<Db, Error> {
    let db = Db::new(
        config.maxmemory,
        config.maxmemory_policy,
        config.maxmemory_samples,
    );
    if !config.warm_tier {
        return Ok(db);
    }
    let dir = config.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| Error::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join("warm.redb");
    let cache = usize::try_from(config.warm_cache_bytes).unwrap_or(usize::MAX);
    let nice = config.warm_writer_nice;
    let (store, loaded) =
        tokio::task::spawn_blocking(move || WarmStore::open(&path, now, cache, nice))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let promotion = match config.warm_promotion {
        WarmPromotion::Always => Promotion::Always,
        WarmPromotion::SecondAccess => Promotion::SecondAccess(config.warm_promotion_window_ms),
        WarmPromotion::Frequency => Promotion::Frequency,
    };
    Ok(db.with_warm(store, loaded, config.warm_maxbytes, promotion))
}

fn accept(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    shared.stats.conns.received.fetch_add(1, Relaxed);
    let now = shared.clock.now_ms();
    let max = shared.runtime.maxclients.load(Relaxed);
    let laddr = stream.local_addr().unwrap_or(shared.local_addr);
    match shared
        .clients
        .register(addr, laddr, now, max, &shared.shutdown)
    {
        Some(handle) => {
            let shared = shared.clone();
            tasks.spawn(async move {
                connection::serve(&shared, stream, &handle).await;
                shared.clients.unregister(handle.id);
            });
        }
        None => {
            shared.stats.conns.rejected.fetch_add(1, Relaxed);
            tasks.spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
        }
    }
}

/// Periodic work: active expiry `hz` times a second.
async fn background(shared: Arc<Shared>) {
    let period = Duration::from_millis(1000 / u64::from(shared.config.hz.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Sweep the whole keyspace about once a second.
    let per_tick = (usize::from(membership::SLOT_COUNT) / shared.config.hz.max(1) as usize).max(1);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => {
                if !shared.active_expire.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                let started = std::time::Instant::now();
                let now = shared.clock.now_ms();
                shared.db.active_expire(now, per_tick);
                if shared.latency.enabled() {
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    shared.latency.add_if_needed("expire-cycle", ms, now / 1000);
                }
            }
        }
    }
}

/// A planned shutdown in cluster mode: either keep this node's slots reserved for its return
/// (the default; the warm tier keeps its keys) or hand them over and leave.
async fn leave_or_pause(config: &Config, handle: &membership::swim::AgentHandle) {
    const TIMEOUT: Duration = Duration::from_secs(5);
    match config.cluster_shutdown {
        ClusterShutdown::Leave => {
            // Hand this node's slots to the others before going away.
            if tokio::time::timeout(TIMEOUT, handle.leave()).await.is_err() {
                tracing::warn!("leaving the cluster timed out");
            }
        }
        ClusterShutdown::Restart => {
            let grace = Duration::from_millis(config.cluster_restart_grace_ms);
            match tokio::time::timeout(TIMEOUT, handle.restart(grace)).await {
                Ok(Ok(state)) => {
                    if let Err(e) = crate::cluster::save_restart_state(&config.dir, &state) {
                        tracing::warn!(error = %e, "could not save the restart state; the return will be slower");
                    }
                    tracing::info!(
                        ?grace,
                        "stopped for a restart; the cluster keeps this node's slots"
                    );
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "restart notice failed"),
                Err(_) => tracing::warn!("restart notice timed out"),
            }
        }
    }
}

/// Cluster mode: subscriptions to shard channels whose slot went to another node are dropped
/// (the subscriber gets `sunsubscribe`), as Redis Cluster does when a node loses a slot.
async fn drop_lost_shard_channels(shared: Arc<Shared>) {
    let Some(c) = shared.cluster.get() else {
        return;
    };
    let mut views = c.handle.subscribe();
    loop {
        {
            let view = views.borrow_and_update().clone();
            let me = c.me;
            let n = shared.pubsub.drop_shard_channels(|ch| {
                view.slots.owner_id(membership::Slot::for_key(ch)) != Some(me)
            });
            if n > 0 {
                tracing::debug!(subscriptions = n, "dropped shard channels of lost slots");
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = views.changed() => if r.is_err() { return },
        }
    }
}
