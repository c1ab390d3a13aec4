//! The accept loop and graceful shutdown: builds the [`Shared`] state, starts the background
//! tasks (slot map, backends, hot keys, learning, admin server) and hands each client to a
//! [`session`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use telemetry::{Admin, Identity, Metrics, Tracing};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendSettings, Backends};
use crate::config::{Config, ConfigErrors, Layered as _};
use crate::hotkey::{HotKeys, LinkSettings};
use crate::session;
use crate::shared::{Shared, Stats};
use crate::topology::{self, Serving, TopologyCell};

/// How long shutdown waits for sessions to deliver replies already in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("no seeds configured")]
    NoSeeds,
    #[error("{0}")]
    Trace(#[from] telemetry::trace::TraceError),
    #[error("{0}")]
    Metrics(#[from] telemetry::metrics::MetricsError),
}

/// Serves until `shutdown` resolves, then stops accepting, lets sessions deliver replies to
/// the requests they already read (up to 5 s), and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    run_with_ready(listener, config, shutdown, || {}).await
}

/// [`run`], calling `ready` once a slot map is installed and clients are being served.
pub async fn run_with_ready(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
    ready: impl FnOnce() + Send,
) -> Result<(), Error> {
    run_with_admin(listener, None, config, shutdown, ready).await
}

/// [`run_with_ready`], plus the admin HTTP server (`/metrics`, `/health`, `/ready`) on `admin`
/// when given, from the start (`/ready` answers 503 until a slot map is installed); per-command
/// metrics are kept only then. Traces are exported when the configuration names an endpoint.
pub async fn run_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
    ready: impl FnOnce() + Send,
) -> Result<(), Error> {
    config.validate()?;
    if config.seeds.is_empty() {
        return Err(Error::NoSeeds);
    }
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let local_addr = listener.local_addr()?;
    let tracing = Tracing::start(&config.telemetry, "autocache-proxy")?;
    let stop = CancellationToken::new();
    let cell = Arc::new(TopologyCell::default());
    let backends = Arc::new(Backends::new(
        BackendSettings {
            connections: config.backend_connections,
            username: config.backend_user.clone(),
            password: config.backend_password.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.backend_timeout,
            health_interval: config.health_interval,
            queue: 1024,
            timed: admin.is_some() && config.telemetry.latency_tracking,
            detect_autocache: tracing.is_some(),
            on_trouble: Some(cell.refresh_signal()),
        },
        stop.child_token(),
    ));
    let hotkeys = Arc::new(HotKeys::new(&config));
    hotkeys.start(
        cell.clone(),
        LinkSettings {
            username: config.backend_user.clone(),
            password: config.backend_password.clone(),
            connect_timeout: config.connect_timeout,
            health_interval: config.health_interval,
            idle: (!config.near_cache_link_idle.is_zero()).then_some(config.near_cache_link_idle),
        },
        stop.child_token(),
    );
    let shared = Arc::new(Shared {
        topology: cell.clone(),
        backends: backends.clone(),
        clients: Mutex::new(BTreeMap::new()),
        next_client_id: AtomicU64::new(1),
        stats: Stats::default(),
        started: Instant::now(),
        run_id: run_id(),
        local_addr,
        drain: CancellationToken::new(),
        hotkeys,
        metrics: OnceLock::new(),
        tracing,
        blocking: Arc::new(tokio::sync::Semaphore::new(config.blocking_connections)),
        busy: (!config.busy_poll.is_zero()).then(|| crate::busy::BusyPoll::new(config.busy_poll)),
        learned: Arc::new(ArcSwap::from_pointee(Default::default())),
        scripts: Default::default(),
        pubsub: crate::pubsub::Hub::new(
            cell.clone(),
            backends.clone(),
            crate::pubsub::LinkSettings {
                username: config.backend_user.clone(),
                password: config.backend_password.clone(),
                connect_timeout: config.connect_timeout,
                health_interval: config.health_interval,
            },
            config.client_output_buffer_limit.pubsub,
            stop.child_token(),
        ),
        monitors: Default::default(),
        config,
    });
    shared.pubsub.start();
    if let Some(b) = &shared.busy {
        tokio::spawn(b.clone().run(stop.child_token()));
    }
    let admin_task = match admin {
        Some(l) => {
            let metrics = Arc::new(Metrics::new(
                Identity {
                    role: "proxy",
                    version: env!("CARGO_PKG_VERSION"),
                    node_id: shared.run_id.clone(),
                },
                shared.config.telemetry.latency_tracking,
            )?);
            crate::observe::register(&metrics, &shared);
            let _ = shared.metrics.set(metrics.clone());
            let cell = cell.clone();
            let state = Arc::new(Admin {
                metrics: Some(metrics),
                ready: Box::new(move || readiness(&cell)),
                idle_timeout: shared.config.telemetry.admin_idle_timeout,
            });
            Some(tokio::spawn(telemetry::admin::serve(
                l,
                state,
                stop.child_token(),
            )))
        }
        None => None,
    };
    let refresher = tokio::spawn(topology::maintain(
        cell.clone(),
        backends,
        shared.config.seeds.clone(),
        shared.config.refresh_interval,
        shared.config.connect_timeout,
        stop.child_token(),
    ));

    tokio::pin!(shutdown);
    // Serve only once a slot map exists; connections wait in the listen backlog meanwhile.
    tokio::select! {
        _ = &mut shutdown => {
            stop.cancel();
            let _ = refresher.await;
            finish(&shared, admin_task).await;
            return Ok(());
        }
        serving = cell.wait_serving() => match serving {
            Serving::Map(t) => {
                tracing::info!(addr = %local_addr, mode = ?t.mode(), shards = t.map.nodes().len(), "proxy serving");
            }
            // Clients are accepted to be told what is wrong, rather than left hanging.
            Serving::AuthFailed(e) => {
                tracing::error!(addr = %local_addr, error = %e, "proxy serving without a slot map: every command fails until the shards accept the proxy's credentials");
            }
        }
    }
    // The backends' own commands, before the first client is served (bounded by the connect
    // timeout; a backend that does not answer yet is asked again in the background).
    let mut learning = tokio::spawn(crate::learned::learn(
        cell.clone(),
        shared.config.connect_timeout,
        shared.learned.clone(),
        stop.child_token(),
    ));
    // On timeout the handle is dropped and the task goes on by itself.
    let _ = tokio::time::timeout(shared.config.connect_timeout, &mut learning).await;
    ready();

    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => accept(&shared, &mut tasks, stream, addr),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(clients = tasks.len(), "shutting down; draining sessions");
    // Sessions stop reading new requests but deliver the replies to those they have read;
    // backends stay up until they are done.
    shared.drain.cancel();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("sessions did not drain in time; aborting them");
        tasks.shutdown().await;
    }
    stop.cancel();
    let _ = refresher.await;
    finish(&shared, admin_task).await;
    Ok(())
}

/// `/ready`: a slot map is installed and the shards accept the proxy's credentials.
fn readiness(cell: &TopologyCell) -> Result<(), String> {
    let Some(t) = cell.load() else {
        return Err(match cell.auth_error() {
            Some(e) => format!("no slot map: {e}"),
            None => "no slot map yet".into(),
        });
    };
    if let Some(b) = t.backends.iter().find(|b| b.auth_failed()) {
        return Err(format!(
            "backend {} refuses the proxy's credentials: {}",
            b.addr,
            b.last_error()
        ));
    }
    if let Some(e) = cell.auth_error() {
        return Err(e);
    }
    Ok(())
}

/// Stops the admin server and flushes traces.
async fn finish(shared: &Shared, admin: Option<tokio::task::JoinHandle<std::io::Result<()>>>) {
    if let Some(t) = admin
        && let Ok(Err(e)) = t.await
    {
        tracing::error!(error = %e, "admin server failed");
    }
    if let Some(m) = shared.metrics.get() {
        m.shutdown();
    }
    if let Some(t) = shared.tracing.clone() {
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
}

fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:040x}", t ^ (u128::from(std::process::id()) << 64))
}

fn accept(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    shared.stats.conns.received.fetch_add(1, Relaxed);
    if tasks.len() >= shared.config.maxclients {
        shared.stats.conns.rejected.fetch_add(1, Relaxed);
        tasks.spawn(async move {
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        });
        return;
    }
    let shared = shared.clone();
    tasks.spawn(async move {
        session::serve(shared, stream, addr).await;
    });
}
