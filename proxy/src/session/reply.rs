//! Reply rendering: turns an answered chunk into the bytes the client reads, in request order —
//! backend replies copied through (converted for RESP3 clients), fan-outs merged
//! ([`super::merge`]), MOVED/ASK/TRYAGAIN/CLUSTERDOWN followed — records the chunk's metrics and
//! traces, and writes it with one syscall, within the client's output-buffer limit.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use membership::command::Merge;
use membership::redirect::{self, Action};
use parking_lot::Mutex;
use telemetry::Metrics;
use telemetry::stats::LocalStats;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use super::chunk::Chunk;
use super::merge::{decoded, merge_all, merge_fan, merge_scan, splice_key_order};
use crate::backend::{Backend, BatchResult, State};
use crate::error::{BackendError, CmdError};
use crate::hotkey;
use crate::observe::{self, Finished, Redirect};
use crate::plan::{Conv, Item, Part};
use crate::protocol::{Proto, Reply, decode_reply, encode, encode_to_bytes};
use crate::shared::Shared;

/// The output buffer's first allocation per busy period: most chunks' replies fit.
const OUT_RESERVE: usize = 16 * 1024;

/// Renders answered chunks and writes them to the client.
pub(super) struct Replier {
    shared: Arc<Shared>,
    w: OwnedWriteHalf,
    hint: usize,
    out: BytesMut,
    metrics: Option<Arc<Metrics>>,
    local: LocalStats,
    /// Per item of the current chunk: whether its reply is an error (metrics on).
    errors: Vec<bool>,
    /// Bytes written for the last chunk answered.
    pub last_bytes: usize,
}

impl Replier {
    pub(super) fn new(shared: Arc<Shared>, w: OwnedWriteHalf, hint: usize) -> Replier {
        let metrics = shared.metrics.get().cloned();
        Replier {
            shared,
            w,
            hint,
            out: BytesMut::new(),
            metrics,
            local: LocalStats::default(),
            errors: Vec::new(),
            last_bytes: 0,
        }
    }

    /// Nothing left to answer: the output buffer is given back (an idle client holds none).
    pub(super) fn idle(&mut self) {
        if self.out.capacity() > 0 {
            self.out = BytesMut::new();
        }
    }

    /// Writes queued pub/sub messages; false when the client is gone or must go (`kill`: it
    /// overcame its output buffer limit meanwhile).
    pub(super) async fn push(
        &mut self,
        buf: &[u8],
        kill: &tokio_util::sync::CancellationToken,
    ) -> bool {
        self.shared
            .stats
            .conns
            .net_output_bytes
            .fetch_add(buf.len() as u64, Relaxed);
        tokio::select! {
            r = self.w.write_all(buf) => r.is_ok(),
            _ = kill.cancelled() => false,
        }
    }

    pub(super) async fn finish(mut self) {
        let _ = self.w.shutdown().await;
    }

    /// Answers one chunk whose batches all have replies. False when the session must end
    /// (the client is gone, or the chunk closes it).
    pub(super) async fn answer(&mut self, mut chunk: Chunk) -> bool {
        let shared = &*self.shared;
        // One allocation for the chunk's replies (given back when the session goes idle), not
        // a chain of them as the replies are appended.
        if self.out.capacity() == 0 {
            self.out.reserve(OUT_RESERVE);
        }
        let (out, errors, local) = (&mut self.out, &mut self.errors, &mut self.local);
        let metrics = &self.metrics;
        let hint = self.hint;
        let traced = chunk.meta.iter().any(|m| m.trace.is_some());
        let mut results: Vec<(Arc<Backend>, BatchResult)> = Vec::with_capacity(chunk.groups.len());
        let mut arrivals: Vec<Instant> = Vec::new();
        for g in chunk.groups {
            let (r, at) = g.result.unwrap_or_else(|| {
                let e = BackendError::Lost {
                    addr: g.backend.addr.clone(),
                    reason: "request dropped".into(),
                };
                (Err(e), Instant::now())
            });
            if traced {
                arrivals.push(at);
            }
            results.push((g.backend, r));
        }
        let ctx = Ctx {
            shared,
            hint,
            results: &results,
            proto: chunk.proto,
            redirects: traced.then(|| Mutex::new(Vec::new())),
        };
        let mut finished: Vec<(usize, Option<String>, Vec<Redirect>)> = Vec::new();
        errors.clear();
        for (i, item) in chunk.items.into_iter().enumerate() {
            let start = out.len();
            if let Some(r) = &ctx.redirects {
                r.lock().clear();
            }
            ctx.render(item, out).await;
            let error = matches!(out.get(start), Some(b'-' | b'!'));
            if chunk.started.is_some() {
                errors.push(error);
            }
            if chunk.meta.get(i).is_some_and(|m| m.trace.is_some()) {
                let text = error.then(|| error_line(&out[start..]));
                let redirects = ctx
                    .redirects
                    .as_ref()
                    .map(|r| std::mem::take(&mut *r.lock()))
                    .unwrap_or_default();
                finished.push((i, text, redirects));
            }
        }
        if let Some(started) = chunk.started {
            let took = started.elapsed();
            let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            if let Some(m) = &metrics {
                let ns = m.latency.then_some(ns);
                for (meta, error) in chunk.meta.iter().zip(errors.iter()) {
                    if meta.counted {
                        local.record(&m.commands, meta.stat, !error, ns);
                    }
                }
                local.flush(&m.commands);
            }
            if let Some(t) = &shared.tracing {
                let groups: Vec<(&str, Instant)> = results
                    .iter()
                    .zip(arrivals.iter())
                    .map(|((b, _), at)| (b.addr.as_str(), *at))
                    .collect();
                if t.is_slow(took) {
                    // Slow but not sampled: the command's span alone.
                    for (meta, error) in chunk.meta.iter().zip(errors.iter()) {
                        if meta.counted && meta.trace.is_none() {
                            observe::emit(
                                t,
                                None,
                                Finished {
                                    cmd: telemetry::stats::label_at(meta.stat),
                                    start: started,
                                    error: error.then(|| "error reply".to_string()),
                                    groups: &[],
                                    redirects: Vec::new(),
                                    dispatched: started,
                                },
                            );
                        }
                    }
                }
                for (i, error, redirects) in finished {
                    let Some(meta) = chunk.meta.get_mut(i) else {
                        continue;
                    };
                    let trace = meta.trace.take();
                    observe::emit(
                        t,
                        trace,
                        Finished {
                            cmd: telemetry::stats::label_at(meta.stat),
                            start: started,
                            error,
                            groups: &groups,
                            redirects,
                            dispatched: started,
                        },
                    );
                }
            }
        }
        // The shards' replies are all copied into `out`: let them go before a write that may
        // wait for a slow client.
        drop(ctx);
        drop(results);
        self.last_bytes = out.len();
        if !out.is_empty() {
            shared
                .stats
                .conns
                .net_output_bytes
                .fetch_add(out.len() as u64, Relaxed);
            let limit = shared.config.client_output_buffer_limit.normal;
            let written = match limit.patience(out.len()) {
                None => self.w.write_all(out).await.is_ok(),
                Some(wait) => match tokio::time::timeout(wait, self.w.write_all(out)).await {
                    Ok(r) => r.is_ok(),
                    Err(_) => {
                        shared
                            .stats
                            .output_buffer_limit_disconnections
                            .fetch_add(1, Relaxed);
                        tracing::warn!(
                            client = hint,
                            unsent = out.len(),
                            "closing client that overcame its output buffer limits (client-output-buffer-limit normal)"
                        );
                        false
                    }
                },
            };
            if !written {
                return false;
            }
            out.clear();
            if out.capacity() > 1 << 20 {
                *out = BytesMut::new();
            }
        }
        !chunk.close
    }
}

fn err_bytes(e: CmdError) -> Bytes {
    encode_to_bytes(&e.into(), Proto::Resp2)
}

struct Ctx<'a> {
    shared: &'a Shared,
    hint: usize,
    results: &'a [(Arc<Backend>, BatchResult)],
    proto: Proto,
    /// Redirects followed for the item being rendered (chunks with traced items only).
    redirects: Option<Mutex<Vec<Redirect>>>,
}

/// The first line of an error reply, without its type byte.
fn error_line(reply: &[u8]) -> String {
    let line = reply.split(|&b| b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line.get(1..).unwrap_or_default()).into_owned()
}

impl Ctx<'_> {
    fn note_redirect(&self, kind: &'static str, slot: u16, to: &str) {
        if let Some(r) = &self.redirects {
            r.lock().push(Redirect {
                kind,
                slot,
                to: to.to_string(),
                at: std::time::SystemTime::now(),
            });
        }
    }

    /// The final reply to one part, after following redirects.
    async fn part_reply(&self, part: &Part) -> Bytes {
        let raw = match self.results.get(part.group as usize) {
            Some((_, Ok(replies))) => match replies.get(part.idx as usize) {
                Some(r) => r.clone(),
                None => return err_bytes(CmdError::err("internal error: missing reply")),
            },
            Some((b, Err(e))) => match self.resend_unsent(part, b, e).await {
                Some(r) => r,
                None => return err_bytes(e.clone().into()),
            },
            None => return err_bytes(CmdError::err("internal error: missing batch")),
        };
        if raw.first() == Some(&b'-') && part.pinned {
            // The watch lives on the pinned connection: nothing is resent elsewhere. An EXEC
            // redirected there (its slot moved) failed as a watched transaction fails.
            if part.replies > 1 && redirect::decide(&raw, 0) != Action::Done {
                Bytes::from_static(b"*-1\r\n")
            } else {
                raw
            }
        } else if raw.first() == Some(&b'-') {
            self.follow(part, raw).await
        } else {
            raw
        }
    }

    /// A request that was never sent (its shard was down when it was planned) goes once to the
    /// slot's owner in the current map, if a refresh has moved the slot to a shard that is not
    /// down: during a failover, requests planned just before the new map are not failed for
    /// nothing. Nothing that may have reached a shard is resent (it may not be idempotent).
    async fn resend_unsent(
        &self,
        part: &Part,
        sent_to: &Arc<Backend>,
        e: &BackendError,
    ) -> Option<Bytes> {
        if part.pinned || !matches!(e, BackendError::Unavailable { .. }) {
            return None;
        }
        let owner = self.shared.topology.load()?.owner(part.slot?)?.clone();
        if Arc::ptr_eq(&owner, sent_to) || owner.state() == State::Down {
            return None;
        }
        match self
            .call(part, &owner, part.req.clone(), part.replies as usize)
            .await
        {
            Ok(mut v) => v.pop(),
            Err(e) => Some(err_bytes(e.into())),
        }
    }

    /// An EVALSHA a shard did not know the script of, sent again behind a SCRIPT LOAD of the
    /// script (when this proxy saw it), or an FCALL behind FUNCTION LOADs of the libraries
    /// naming its function; the request's new reply.
    async fn reload_script(&self, part: &Part) -> Option<Bytes> {
        // A pinned connection (WATCH ... EXEC) is not the pool's: not resent there.
        if part.replies != 1 || part.pinned {
            return None;
        }
        let (req, replies) = self.shared.scripts.reload_then(&part.req)?;
        let to = self.results.get(part.group as usize)?.0.clone();
        self.call(part, &to, req, replies).await.ok()?.pop()
    }

    /// Sends a redirected request: a blocking command again on a connection of its own.
    async fn call(
        &self,
        part: &Part,
        to: &Backend,
        req: Bytes,
        count: usize,
    ) -> crate::backend::BatchResult {
        if part.dedicated {
            to.call_dedicated(req, count).await
        } else {
            to.call(self.hint, req, count).await
        }
    }

    /// Follows MOVED/ASK/TRYAGAIN/CLUSTERDOWN as [`redirect::decide`] says, within its budgets.
    async fn follow(&self, part: &Part, mut reply: Bytes) -> Bytes {
        let shared = self.shared;
        if (reply.starts_with(b"-NOSCRIPT") || reply.starts_with(b"-ERR Function not found"))
            && let Some(healed) = self.reload_script(part).await
        {
            reply = healed;
        }
        let mut attempt = 0;
        loop {
            let action = redirect::decide(&reply, attempt);
            let pause = redirect::redirect_delay(attempt);
            attempt += 1;
            if matches!(action, Action::RetryMoved(_) | Action::RetryAsk(_)) && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let result = match action {
                Action::Done => return reply,
                // A cluster still down after the retries: its own error says it best.
                Action::GiveUp if reply.starts_with(b"-CLUSTERDOWN") => return reply,
                Action::GiveUp => {
                    let line = String::from_utf8_lossy(&reply)
                        .trim()
                        .trim_start_matches('-')
                        .to_string();
                    return err_bytes(CmdError::TooManyRedirects(line));
                }
                Action::RetryMoved(r) => {
                    shared.stats.moved.fetch_add(1, Relaxed);
                    self.note_redirect("moved", r.slot.get(), &r.addr);
                    shared.topology.moved(r.slot, &r.addr, &shared.backends);
                    let to = shared.backends.get(&r.addr);
                    self.call(part, &to, part.req.clone(), part.replies as usize)
                        .await
                }
                Action::RetryAsk(r) => {
                    shared.stats.ask.fetch_add(1, Relaxed);
                    self.note_redirect("ask", r.slot.get(), &r.addr);
                    let mut b = BytesMut::from(&b"*1\r\n$6\r\nASKING\r\n"[..]);
                    b.extend_from_slice(&part.req);
                    let to = shared.backends.get(&r.addr);
                    self.call(part, &to, b.freeze(), part.replies as usize + 1)
                        .await
                }
                Action::RefreshAndRetryAfter(delay) => {
                    shared.stats.clusterdown.fetch_add(1, Relaxed);
                    shared.topology.request_refresh();
                    tokio::time::sleep(delay).await;
                    let owner = part
                        .slot
                        .map(|s| shared.topology.load().and_then(|t| t.owner(s).cloned()));
                    let target = match owner {
                        Some(Some(b)) => b,
                        // The slot has no owner in the map (yet): the cluster is still down
                        // for it; the next decision waits longer or gives up.
                        Some(None) => continue,
                        // A keyless part goes back where it was sent.
                        None => match self.results.get(part.group as usize) {
                            Some((b, _)) => b.clone(),
                            None => return reply,
                        },
                    };
                    self.call(part, &target, part.req.clone(), part.replies as usize)
                        .await
                }
                Action::TryAgainAfter(delay) => {
                    shared.stats.tryagain.fetch_add(1, Relaxed);
                    tokio::time::sleep(delay).await;
                    let target = part
                        .slot
                        .and_then(|s| shared.topology.load().and_then(|t| t.owner(s).cloned()))
                        .or_else(|| {
                            self.results
                                .get(part.group as usize)
                                .map(|(b, _)| b.clone())
                        });
                    match target {
                        Some(b) => {
                            self.call(part, &b, part.req.clone(), part.replies as usize)
                                .await
                        }
                        None => return reply,
                    }
                }
            };
            reply = match result {
                // The command's reply is the last one (after ASKING's +OK).
                Ok(mut v) => match v.pop() {
                    Some(r) => r,
                    None => return err_bytes(CmdError::err("internal error: empty reply")),
                },
                Err(e) => return err_bytes(e.into()),
            };
        }
    }

    async fn render(&self, item: Item, out: &mut BytesMut) {
        match item {
            Item::Ready(b) => out.extend_from_slice(&b),
            Item::Fwd { part, conv } => {
                let r = self.part_reply(&part).await;
                self.forward(&r, conv, out);
            }
            Item::Exec { part, convs } => {
                let r = self.part_reply(&part).await;
                if self.proto == Proto::Resp2 {
                    out.extend_from_slice(&r);
                } else {
                    // Each queued command's reply reshaped as it would be alone.
                    let reply = match decode_reply(&r) {
                        Ok(Reply::Array(items)) if items.len() == convs.len() => Reply::Array(
                            items
                                .into_iter()
                                .zip(convs)
                                .map(|(item, conv)| convert(conv, item))
                                .collect(),
                        ),
                        Ok(other) => other,
                        Err(e) => Reply::Error(format!("ERR backend {e}")),
                    };
                    encode(&reply, self.proto, out);
                }
            }
            Item::Fan {
                parts,
                order,
                nkeys,
                merge,
            } => {
                let mut replies = Vec::with_capacity(parts.len());
                for (p, range) in parts {
                    let positions = order
                        .get(range.start as usize..range.end as usize)
                        .unwrap_or_default();
                    replies.push((self.part_reply(&p).await, positions));
                }
                if matches!(merge, Merge::KeyOrder)
                    && splice_key_order(&replies, nkeys, self.proto, out)
                {
                    return;
                }
                let merged = merge_fan(&replies, nkeys, merge);
                encode(&merged, self.proto, out);
            }
            Item::All { parts, merge } => {
                let mut replies = Vec::with_capacity(parts.len());
                for p in parts {
                    replies.push(self.part_reply(&p).await);
                }
                let merged = merge_all(&replies, merge);
                encode(&merged, self.proto, out);
            }
            Item::Gather { parts, how } => {
                let mut replies = Vec::with_capacity(parts.len());
                for p in parts {
                    replies.push(decoded(&self.part_reply(&p).await));
                }
                let merged = crate::aggregate::gather(how, replies, fastrand::u64(..));
                encode(&merged, self.proto, out);
            }
            Item::Algebra { parts, job } => {
                let mut replies = Vec::with_capacity(parts.len());
                for p in &parts {
                    replies.push(self.part_reply(p).await);
                }
                let max = self.shared.config.algebra_max_members;
                encode(
                    &crate::algebra::compute(&job, &replies, max, self.proto),
                    self.proto,
                    out,
                );
            }
            Item::Scan {
                part,
                shard,
                nshards,
            } => {
                let r = self.part_reply(&part).await;
                encode(&merge_scan(&r, shard, nshards), self.proto, out);
            }
            // Hot keys (crate::hotkey).
            Item::Cached { reply, conv } => self.forward(&reply, conv, out),
            Item::Fill {
                part,
                ttl,
                conv,
                fill,
            } => {
                let r = self.part_reply(&part).await;
                // The TTL is taken as answered, never followed: after a redirect it is an
                // error, and the value is served but not cached.
                let t = match self.results.get(part.group as usize) {
                    Some((_, Ok(replies))) => replies.get(ttl as usize),
                    _ => None,
                };
                fill.complete(&r, hotkey::Ttl::parse(t.map(|b| &b[..])));
                self.forward(&r, conv, out);
            }
            Item::Wait {
                rx,
                req,
                slot,
                conv,
            } => {
                let r = match hotkey::cache::wait_fill(rx, self.shared.hotkeys.wait).await {
                    Some(r) => r,
                    None => self.read(req, slot).await,
                };
                self.forward(&r, conv, out);
            }
            Item::Unowned { req, slot, conv } => {
                let r = self.read(req, slot).await;
                self.forward(&r, conv, out);
            }
            Item::Release(fences) => drop(fences),
            Item::Subscribed { waits, reply } => {
                let deadline = tokio::time::Instant::now() + self.shared.config.backend_timeout;
                for w in waits {
                    // A node that does not confirm in time: the client is answered anyway (the
                    // hub keeps trying), as Redis's SUBSCRIBE never fails.
                    let _ = tokio::time::timeout_at(deadline, w).await;
                }
                out.extend_from_slice(&reply);
            }
        }
    }

    /// Sends one request to its slot's owner now (a coalesced read whose fill failed, a request
    /// planned while its slot had no owner).
    async fn read(&self, req: Bytes, slot: membership::Slot) -> Bytes {
        let part = Part {
            dedicated: false,
            pinned: false,
            replies: 1,
            group: u32::MAX,
            idx: 0,
            req,
            slot: Some(slot),
        };
        let Some(b) = self
            .shared
            .topology
            .load()
            .and_then(|t| t.owner(slot).cloned())
        else {
            // No owner in the map (a failover in progress): refreshed and retried like a
            // shard's own CLUSTERDOWN, within its budget.
            let down = err_bytes(CmdError::ClusterDown(slot.get()));
            return self.follow(&part, down).await;
        };
        let raw = match b.call(self.hint, part.req.clone(), 1).await {
            Ok(mut v) => match v.pop() {
                Some(r) => r,
                None => return err_bytes(CmdError::err("internal error: empty reply")),
            },
            Err(e) => return err_bytes(e.into()),
        };
        if raw.first() == Some(&b'-') {
            self.follow(&part, raw).await
        } else {
            raw
        }
    }

    /// Copies a backend reply through; RESP3 clients get nulls, maps, pairs and doubles
    /// converted.
    fn forward(&self, r: &Bytes, conv: Conv, out: &mut BytesMut) {
        if self.proto == Proto::Resp2 {
            out.extend_from_slice(r);
            return;
        }
        let simple = match r.first() {
            Some(b'+' | b'-' | b':') => true,
            Some(b'$') => !r.starts_with(b"$-1") && conv != Conv::Double,
            _ => false,
        };
        if simple {
            out.extend_from_slice(r);
            return;
        }
        let reply = match decode_reply(r) {
            Ok(rep) => rep,
            Err(e) => Reply::Error(format!("ERR backend {e}")),
        };
        let reply = convert(conv, reply);
        encode(&reply, self.proto, out);
    }
}

/// A RESP2 backend reply reshaped for a RESP3 client as `conv` says.
fn convert(conv: Conv, reply: Reply) -> Reply {
    match (conv, reply) {
        (Conv::Map, Reply::Array(items)) if items.len() % 2 == 0 => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        (Conv::Pairs, Reply::Array(items)) if items.len() % 2 == 0 => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push(Reply::Array(vec![k, v]));
            }
            Reply::Array(pairs)
        }
        (Conv::Set, Reply::Array(items)) => Reply::Set(items),
        (Conv::Scored, Reply::Array(items)) if items.len() % 2 == 0 => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                pairs.push(Reply::Array(vec![m, double(s)]));
            }
            Reply::Array(pairs)
        }
        (Conv::Double, r) => double(r),
        (Conv::Doubles, Reply::Array(items)) => {
            Reply::Array(items.into_iter().map(double).collect())
        }
        (Conv::FlatScored, Reply::Array(items)) => Reply::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, r)| if i % 2 == 1 { double(r) } else { r })
                .collect(),
        ),
        (Conv::KeyPairs, Reply::Array(mut items)) if items.len() == 2 => {
            if let Some(Reply::Array(pairs)) = items.pop() {
                let pairs = pairs
                    .into_iter()
                    .map(|p| match p {
                        Reply::Array(mut ms) if ms.len() == 2 => {
                            let s = ms.pop().map(double);
                            ms.extend(s);
                            Reply::Array(ms)
                        }
                        other => other,
                    })
                    .collect();
                items.push(Reply::Array(pairs));
            }
            Reply::Array(items)
        }
        (Conv::KeyMap, Reply::Array(items)) => Reply::Map(
            items
                .into_iter()
                .map(|kv| match kv {
                    Reply::Array(mut kv) if kv.len() == 2 => {
                        let v = kv.pop().unwrap_or(Reply::Nil);
                        let k = kv.pop().unwrap_or(Reply::Nil);
                        (k, v)
                    }
                    other => (other, Reply::Nil),
                })
                .collect(),
        ),
        (Conv::Maps, Reply::Array(items)) => {
            Reply::Array(items.into_iter().map(|m| convert(Conv::Map, m)).collect())
        }
        (Conv::KeyScore, Reply::Array(mut items)) if items.len() == 3 => {
            let s = items.pop().map(double);
            items.extend(s);
            Reply::Array(items)
        }
        (_, r) => r,
    }
}

/// A score sent as a bulk string (RESP2) as the double a RESP3 client gets; anything else
/// (a null, an error) as it is.
fn double(r: Reply) -> Reply {
    let score = match &r {
        Reply::Bulk(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map(Reply::Double),
        _ => None,
    };
    score.unwrap_or(r)
}
