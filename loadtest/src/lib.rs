//! AutoCache's load generator: memtier_benchmark's workload model (connections x threads,
//! pipelining, SET:GET ratio, key patterns including Zipf, value sizes) plus MGET, hash-tag
//! groups, TTLs, a prefill phase, an open-loop rate mode without coordinated omission, a Redis
//! Cluster client mode, and an A/B compare mode.
//!
//! `run(&config)` measures one target and returns a `Report`; `compare::run_compare` alternates
//! between targets. The binary is a thin wrapper.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod cluster;
pub mod compare;
pub mod driver;
pub mod plot;
pub mod report;
pub mod workload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use cli::{Args, Config};
pub use compare::{CompareReport, run_compare};
pub use report::Report;

use cluster::SlotMap;
use driver::{Counters, Params, Source, run_phase};
use report::{PrefillReport, RunInfo};
use workload::{OpGen, PrefillGen, value_bytes};

/// Resolves `host:port`; the first address wins.
pub async fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(target)
        .await
        .with_context(|| format!("resolving {target}"))?
        .next()
        .with_context(|| format!("{target} resolves to no address"))
}

/// A target, resolved, with its slot map (a single node outside cluster mode).
pub struct Endpoint {
    pub name: String,
    pub addr: SocketAddr,
    pub map: SlotMap,
}

impl Endpoint {
    pub async fn open(config: &Config, target: &str) -> anyhow::Result<Endpoint> {
        let addr = resolve(target).await?;
        let map = if config.cluster_mode {
            cluster::fetch_slot_map(addr, config.timeout, config.auth.as_deref()).await?
        } else {
            SlotMap::single(addr).map_err(|e| anyhow::anyhow!("{addr}: {e}"))?
        };
        Ok(Endpoint {
            name: target.to_owned(),
            addr,
            map,
        })
    }
}

fn params(config: &Config, ep: &Endpoint, prefill: bool) -> Params {
    let conns = config.connections();
    Params {
        cluster: config.cluster_mode,
        seed_addr: ep.addr,
        keys: config.workload.keys.clone(),
        value: value_bytes(config.workload.value_size.max, config.seed).into(),
        expiry: config.expiry,
        window: if prefill {
            config.pipeline.max(64)
        } else if config.rate.is_some() {
            config.max_inflight
        } else {
            config.pipeline
        },
        interval: match (prefill, config.rate) {
            // `validate` keeps this under an hour; the fallback only guards direct callers.
            (false, Some(r)) => Some(
                Duration::try_from_secs_f64(conns as f64 / r).unwrap_or(Duration::from_secs(3600)),
            ),
            _ => None,
        },
        limit: if prefill { None } else { config.requests },
        timeout: config.timeout,
        max_redirects: config.max_redirects,
        auth: config.auth.clone(),
        counters: Arc::new(Counters::default()),
    }
}

/// Writes every key of the range once, spread over the configured connections.
pub async fn prefill(config: &Config, ep: &Endpoint) -> anyhow::Result<PrefillReport> {
    let conns = config.connections() as u64;
    let parts = conns.min(config.workload.keys.len()).max(1);
    let sources = (0..parts)
        .map(|i| Source::Prefill(PrefillGen::new(&config.workload, config.seed, i, parts)))
        .collect();
    let label = config.progress.then(|| format!("prefill {}", ep.name));
    let cap = config.hard_timeout.unwrap_or(Duration::from_secs(600));
    let p = Arc::new(params(config, ep, true));
    let out = run_phase(p, &ep.map, sources, None, cap, label).await?;
    let secs = out.duration.as_secs_f64();
    let keys = out.stats.total_count();
    Ok(PrefillReport {
        keys,
        errors: out.stats.failed.iter().sum(),
        duration_secs: secs,
        ops_per_sec: if secs > 0.0 { keys as f64 / secs } else { 0.0 },
    })
}

/// One measured run against `ep` (no prefill).
pub async fn measure(config: &Config, ep: &Endpoint, label: &str) -> anyhow::Result<Report> {
    let conns = config.connections() as u64;
    let sources = (0..conns)
        .map(|i| {
            OpGen::new(&config.workload, config.seed, i, conns)
                .map(|g| Source::Workload(Box::new(g)))
                .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let p = Arc::new(params(config, ep, false));
    let out = run_phase(
        p,
        &ep.map,
        sources,
        config.test_time,
        config.hard_cap(),
        config.progress.then(|| label.to_owned()),
    )
    .await?;
    let info = RunInfo {
        target: ep.name.clone(),
        cluster_nodes: if config.cluster_mode {
            ep.map.nodes().iter().map(ToString::to_string).collect()
        } else {
            Vec::new()
        },
        open_loop: config.rate.is_some(),
        target_rate: config.rate,
        connections: config.connections(),
        pipeline: config.pipeline,
        duration_secs: out.duration.as_secs_f64(),
        hit_hard_deadline: out.hit_hard_deadline,
    };
    Ok(Report::build(info, &out.stats, out.timeline, None))
}

/// Measures the first target: prefill (if asked), then the run.
pub async fn run(config: &Config) -> anyhow::Result<Report> {
    if let Err(errs) = config.validate() {
        anyhow::bail!("invalid configuration: {}", errs.join("; "));
    }
    let target = config.targets.first().context("no target")?;
    let ep = Endpoint::open(config, target).await?;
    let pre = if config.prefill {
        Some(prefill(config, &ep).await?)
    } else {
        None
    };
    let mut report = measure(config, &ep, target).await?;
    report.prefill = pre;
    Ok(report)
}
