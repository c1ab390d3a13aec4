//! Hot keys: detection ([`detect`]), the near cache that serves their values from the proxy's
//! memory ([`cache`]), and the invalidation links that keep it coherent ([`link`]).
//!
//! The router calls two hooks: [`HotKeys::on_write`] before forwarding any write (it fences the
//! written keys until the write is answered, and their cached values are dropped then, so a
//! client reads its own writes), and [`HotKeys::on_read`] for single-key commands (it counts the
//! key and, for GET, HGET and HGETALL of a key that is hot or was read again lately, or of any
//! key while the cache is nearly empty, answers from the cache, waits for a fill already in
//! flight, or turns the read into a fill; other cached keys are answered from the cache too). A cold key costs one sketch update, one lookup in an `ArcSwap` snapshot of
//! the hot set, and, while the cache is not empty, one cache lookup.

pub mod cache;
pub mod detect;
pub mod link;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use membership::Slot;
use membership::command::{CommandId, CommandSpec};
use tokio_util::sync::CancellationToken;

pub use cache::{Fence, Fill, FillState, Lookup, NearCache, Ttl, Variant};
pub use detect::{Detector, KeyRate};
pub use link::{LinkSettings, LinkState};

use crate::config::Config;
use crate::protocol::Request;
use crate::topology::{Topology, TopologyCell};

/// Keys INFO lists at most.
const INFO_KEYS: usize = 32;

pub struct HotKeys {
    /// `None` when detection is off (then the near cache is off too).
    pub detector: Option<Detector>,
    /// `None` when the near cache is off.
    pub cache: Option<Arc<NearCache>>,
    links: ArcSwap<HashMap<String, Arc<LinkState>>>,
    hide_names: bool,
    threshold: u64,
    /// How long a miss waits for another client's fill of the same key.
    pub wait: Duration,
}

/// What the read hook decided.
pub enum ReadHook {
    /// Forward the read; with a fill ticket, its reply fills the cache.
    Forward(Option<Fill>),
    Hit(Bytes),
    Wait(tokio::sync::watch::Receiver<FillState>, Slot),
}

/// Which cached reply a cacheable read asks for.
fn variant_of(spec: &CommandSpec, req: &Request) -> Variant {
    match spec.id {
        CommandId::Hgetall => Variant::Hgetall,
        CommandId::Hget => Variant::Hget(Bytes::copy_from_slice(req.arg(2))),
        _ => Variant::Get,
    }
}

/// Share of the byte budget that keys which are not hot may fill: above it they are
/// dropped at every window, the longest-cached first, so that hot keys always find room.
const SPARE_SHARE: (usize, usize) = (3, 4);

fn spare_limit(c: &NearCache) -> usize {
    c.budget() / SPARE_SHARE.1 * SPARE_SHARE.0
}

/// Share of the byte budget below which any read fills the cache, even of a key not seen
/// before: with that much room there is nothing to protect from keys read once, and a key's
/// second read is then a hit instead of a fill. Above it, only keys read before (or hot ones)
/// are admitted, so keys read once cannot churn the cache.
const OPEN_SHARE: usize = 4;

fn open_limit(c: &NearCache) -> usize {
    c.budget() / OPEN_SHARE
}

impl HotKeys {
    pub fn new(cfg: &Config) -> HotKeys {
        let detector = cfg.hotkey_enabled.then(|| {
            Detector::new(
                cfg.hotkey_capacity,
                cfg.hotkey_sample,
                cfg.hotkey_max_samples,
                cfg.hotkey_window,
                cfg.hotkey_threshold as f64,
            )
        });
        let cache = (cfg.hotkey_enabled && cfg.near_cache)
            .then(|| Arc::new(NearCache::new(cfg.near_cache_bytes as usize)));
        HotKeys {
            detector,
            cache,
            links: ArcSwap::from_pointee(HashMap::new()),
            hide_names: cfg.hotkey_hide_names,
            threshold: cfg.hotkey_threshold,
            wait: cfg.near_cache_wait,
        }
    }

    /// Starts the window ticker and (with the near cache) the invalidation links.
    pub fn start(
        self: &Arc<Self>,
        cell: Arc<TopologyCell>,
        links: LinkSettings,
        stop: CancellationToken,
    ) {
        if let Some(d) = &self.detector {
            let hk = self.clone();
            let stop = stop.clone();
            let window = d.window();
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + window, window);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let Some(d) = &hk.detector else { break };
                    d.tick();
                    if let Some(c) = &hk.cache {
                        c.shrink(spare_limit(c), |k| d.is_hot(k));
                    }
                }
            });
        }
        if self.cache.is_some() {
            tokio::spawn(link::follow(self.clone(), cell, links, stop));
        }
    }

    /// Whether the shard at `addr` has a subscribed invalidation link.
    /// Whether the detector rates any key hot now.
    pub fn has_hot_keys(&self) -> bool {
        self.detector.as_ref().is_some_and(|d| d.hot_len() > 0)
    }

    pub fn coherent(&self, addr: &str) -> bool {
        self.links.load().get(addr).is_some_and(|l| l.coherent())
    }

    /// Before a write is forwarded: fences the keys it writes until the write has been answered
    /// (the caller keeps the fences in the reply queue; dropping one drops the key's cached
    /// value).
    pub fn on_write(&self, spec: &CommandSpec, req: &Request) -> Option<Vec<Fence>> {
        let cache = self.cache.as_ref()?;
        // A script (EVAL: not flagged `write`) may write the keys its key spec says it may.
        if !spec.is_write() && !spec.specs.iter().any(|k| k.write) {
            return None;
        }
        if matches!(spec.id, CommandId::Flushall | CommandId::Flushdb) {
            return Some(vec![cache.write_all()]);
        }
        let fences: Vec<Fence> = spec
            .key_positions(req.argc(), |i| req.arg(i))
            .map(|i| cache.write(req.arg(i)))
            .collect();
        (!fences.is_empty()).then_some(fences)
    }

    /// A single-key command: counts its key; for cacheable reads it admits (see the module
    /// doc), consults the near cache. `writing`: the session has a write in flight (see [`NearCache::lookup`]).
    #[inline]
    pub fn on_read(
        &self,
        topo: &Topology,
        spec: &CommandSpec,
        req: &Request,
        writing: bool,
    ) -> ReadHook {
        let Some(d) = &self.detector else {
            return ReadHook::Forward(None);
        };
        let Some(i) = spec.keys.indices(req.argc()).next() else {
            return ReadHook::Forward(None);
        };
        let key = req.arg(i);
        let again = d.record(key);
        let Some(cache) = &self.cache else {
            return ReadHook::Forward(None);
        };
        let cacheable = matches!(spec.id, CommandId::Get | CommandId::Hgetall)
            || (spec.id == CommandId::Hget && req.argc() == 3);
        if !cacheable {
            return ReadHook::Forward(None);
        }
        // TinyLFU's admission: a hot key, or one the doorkeeper has seen before while the
        // cache has room to spare (a key read once is not worth a fill), or any key while the
        // cache is nearly empty.
        let bytes = cache.bytes();
        let admit =
            d.is_hot(key) || (bytes < spare_limit(cache) && (again || bytes < open_limit(cache)));
        if !admit {
            // A key that is no longer hot may still be cached (and is kept coherent). The
            // cache is looked at first: most cold keys are not in it.
            if cache.keys() > 0
                && let Some(v) = cache.peek(key, &variant_of(spec, req), writing)
                && let Some(owner) = topo.owner(Slot::for_key(key))
                && self.coherent(&owner.addr)
            {
                cache.stats.hits.fetch_add(1, Relaxed);
                return ReadHook::Hit(v);
            }
            return ReadHook::Forward(None);
        }
        let variant = variant_of(spec, req);
        let slot = Slot::for_key(key);
        let Some(owner) = topo.owner(slot) else {
            return ReadHook::Forward(None);
        };
        if !self.coherent(&owner.addr) {
            return ReadHook::Forward(None);
        }
        match cache.lookup(key, variant, writing) {
            Lookup::Hit(v) => ReadHook::Hit(v),
            Lookup::Wait(rx) => ReadHook::Wait(rx, slot),
            Lookup::Fill(f) => ReadHook::Forward(Some(f)),
            Lookup::Bypass => ReadHook::Forward(None),
        }
    }

    fn show(&self, key: &[u8]) -> String {
        if self.hide_names {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in key {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            return format!("#{h:016x}");
        }
        String::from_utf8_lossy(key)
            .chars()
            .map(|c| if c.is_control() || c == ',' { '?' } else { c })
            .collect()
    }

    /// The `# Hotkeys` INFO section.
    pub fn info(&self) -> String {
        let mut out = String::from("# Hotkeys\r\n");
        let Some(d) = &self.detector else {
            out.push_str("hotkey_detection:off\r\nnear_cache:off\r\n\r\n");
            return out;
        };
        let _ = write!(
            out,
            "hotkey_detection:on\r\nhotkey_threshold:{}\r\nhotkey_window_ms:{}\r\nhotkey_sample:{}\r\nhotkeys:{}\r\n",
            self.threshold,
            d.window().as_millis(),
            d.sample(),
            d.hot_len(),
        );
        match &self.cache {
            None => out.push_str("near_cache:off\r\n"),
            Some(c) => {
                let s = &c.stats;
                let links = self.links.load();
                let coherent = links.values().filter(|l| l.coherent()).count();
                let _ = write!(
                    out,
                    "near_cache:on\r\nnear_cache_keys:{}\r\nnear_cache_bytes:{}\r\nnear_cache_max_bytes:{}\r\nnear_cache_hits:{}\r\nnear_cache_misses:{}\r\nnear_cache_invalidations:{}\r\nnear_cache_clears:{}\r\nnear_cache_fills:{}\r\nnear_cache_fills_discarded:{}\r\nnear_cache_coalesced:{}\r\nnear_cache_rejected:{}\r\nnear_cache_expired:{}\r\nnear_cache_links_coherent:{coherent}/{}\r\n",
                    c.keys(),
                    c.bytes(),
                    c.budget(),
                    s.hits.load(Relaxed),
                    s.misses.load(Relaxed),
                    s.invalidations.load(Relaxed),
                    s.clears.load(Relaxed),
                    s.fills.load(Relaxed),
                    s.fills_discarded.load(Relaxed),
                    s.coalesced.load(Relaxed),
                    s.rejected.load(Relaxed),
                    s.expired.load(Relaxed),
                    links.len(),
                );
                let mut ls: Vec<_> = links.values().collect();
                ls.sort_by(|a, b| a.addr.cmp(&b.addr));
                for (i, l) in ls.iter().enumerate() {
                    let _ = write!(
                        out,
                        "link{i}:addr={},status={},subscribes={},drops={},pushes={}\r\n",
                        l.addr,
                        if l.coherent() { "coherent" } else { "down" },
                        l.subscribes.load(Relaxed),
                        l.drops.load(Relaxed),
                        l.pushes.load(Relaxed),
                    );
                }
            }
        }
        for (i, k) in d.top(INFO_KEYS).iter().enumerate() {
            let _ = write!(
                out,
                "key{i}:name={},rate={:.0},hot={}\r\n",
                self.show(&k.key),
                k.rate,
                u8::from(k.hot)
            );
        }
        out.push_str("\r\n");
        out
    }
}
