//! One client connection, served by one task that frames and routes requests and answers them
//! in request order.
//!
//! Each client read becomes one chunk: its requests are planned into a FIFO of [`Item`]s, and
//! the requests bound for each backend are sent as one batch (so requests to different shards
//! proceed in parallel). Chunks wait in a bounded queue; when the oldest one's batches are all
//! answered, the task renders every item (merging fan-outs, following redirects) and writes the
//! whole chunk with one syscall. A full queue stops reading: a slow client stops itself, not
//! the proxy. Reading and answering in the same task keeps an unpipelined request to two
//! wake-ups of this task (its read and its backend reply).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use membership::command::Merge;
use membership::redirect::{self, Action};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use parking_lot::Mutex;
use telemetry::Metrics;
use telemetry::stats::LocalStats;

use crate::backend::{Backend, Batch, BatchResult, State};
use crate::error::{BackendError, CmdError};
use crate::hotkey;
use crate::observe::{self, CmdTrace, Finished, Redirect};
use crate::outbuf;
use crate::plan::{self, ChunkBuilder, Conv, Item, Meta, Part};
use crate::protocol::{Proto, Reply, decode_reply, encode, encode_to_bytes, next_request};
use crate::server::{ClientEntry, Shared};

/// Requests planned per chunk before it is dispatched (bounds memory per client read).
const MAX_CHUNK_ITEMS: usize = 1024;
/// Chunks planned and sent but not yet answered, per client.
const CHUNK_QUEUE: usize = 32;
const READ_CHUNK: usize = 16 * 1024;
/// Requests to one shard this large (a big value) go on the shard's bulk connection, so other
/// clients' small requests do not queue behind the transfer. The session sends such a chunk
/// only when nothing else of its own is in flight, and nothing after it until it is answered:
/// its commands stay in order.
const LARGE_BATCH: usize = 1 << 20;

/// Per-connection state the planner and local commands use.
pub struct Session {
    pub id: u64,
    pub proto: Proto,
    pub authed: bool,
    /// Close after the replies queued so far (QUIT, protocol errors).
    pub close: bool,
    /// Writes planned whose replies have not been rendered yet (near cache on): while any is
    /// in flight, the session is not served values kept through a write's fence.
    pub writes: usize,
}

struct GroupRx {
    backend: Arc<Backend>,
    rx: oneshot::Receiver<BatchResult>,
    /// The batch's replies once they arrived, and when (for traces).
    result: Option<(BatchResult, Instant)>,
}

struct Chunk {
    items: Vec<Item>,
    meta: Vec<Meta>,
    started: Option<Instant>,
    groups: Vec<GroupRx>,
    proto: Proto,
    close: bool,
    /// Writes in it that fence near-cache keys.
    writes: usize,
}

pub async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let id = shared.next_client_id.fetch_add(1, Relaxed);
    let laddr = stream.local_addr().unwrap_or(shared.local_addr);
    shared.clients.lock().insert(
        id,
        ClientEntry {
            addr,
            laddr,
            created: Instant::now(),
            name: String::new(),
            lib_name: String::new(),
            lib_ver: String::new(),
            resp: 2,
        },
    );
    let (mut r, w) = stream.into_split();
    let mut replier = Replier::new(shared.clone(), w, id as usize);
    let mut queue: VecDeque<Chunk> = VecDeque::with_capacity(4);
    let mut sess = Session {
        id,
        proto: Proto::Resp2,
        authed: shared.config.requirepass.is_none(),
        close: false,
        writes: 0,
    };
    let max_bulk = usize::try_from(shared.config.proto_max_bulk_len).unwrap_or(usize::MAX);
    let query_limit = max_bulk.saturating_mul(2).max(1 << 20);
    // Empty while the client is idle: a waiting session holds no read buffer.
    let mut input = BytesMut::new();
    let observing = shared.metrics.get().is_some() || shared.tracing.is_some();
    // False once the client closed, the proxy drains or the session must close: what is queued
    // is still answered.
    let mut reading = true;
    // Requests planned and not yet written to the client, and the reply size per request the
    // window of such requests is sized by (see `crate::outbuf`).
    let mut in_flight = 0usize;
    let mut estimate = outbuf::FIRST_ESTIMATE;
    // `input` holds requests read but not planned yet (the window was full).
    let mut pending = false;
    // A chunk with a large batch, waiting for the chunks before it to be answered; then sent
    // alone (see `LARGE_BATCH`).
    let mut deferred: Option<ChunkBuilder> = None;
    let mut bulk_in_flight = false;
    loop {
        if sess.close {
            // Requests after the one that closes the session are not answered.
            pending = false;
        }
        if !reading && !pending && queue.is_empty() && deferred.is_none() {
            break;
        }
        if queue.is_empty() {
            bulk_in_flight = false;
            if let Some(chunk) = deferred.take() {
                in_flight += dispatch(&mut queue, chunk, id as usize, sess.close, true).await;
                bulk_in_flight = true;
                continue;
            }
        }
        let waiting = !queue.is_empty();
        let room = queue.len() < CHUNK_QUEUE
            && in_flight < outbuf::window(estimate)
            && deferred.is_none()
            && !bulk_in_flight;
        let wake = if pending && room {
            Wake::Pending
        } else {
            tokio::select! {
                biased;
                () = head_answered(&mut queue), if waiting => Wake::Answered,
                _ = shared.drain.cancelled(), if reading => {
                    reading = false;
                    continue;
                }
                r = read_some(&mut r, &mut input), if reading && room && !pending => Wake::Read(r),
            }
        };
        match wake {
            Wake::Answered => {
                let Some(chunk) = queue.pop_front() else {
                    continue;
                };
                // Its writes' fences are lowered as it is rendered, before anything else is
                // planned.
                sess.writes = sess.writes.saturating_sub(chunk.writes);
                in_flight = in_flight.saturating_sub(chunk.items.len());
                let items = chunk.items.len();
                if !replier.answer(chunk).await {
                    break;
                }
                estimate = outbuf::next_estimate(estimate, replier.last_bytes, items);
                if queue.is_empty() {
                    replier.idle();
                }
                if let Some(b) = &shared.busy {
                    b.note();
                }
                continue;
            }
            Wake::Read(Ok(0) | Err(_)) => {
                reading = false;
                continue;
            }
            Wake::Read(Ok(n)) => {
                shared.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
                if let Some(b) = &shared.busy {
                    b.note();
                }
            }
            Wake::Pending => {}
        }
        pending = false;
        let Some(topo) = shared.topology.load() else {
            // Serving without a slot map happens only when the shards refuse the proxy's
            // credentials: every request is answered with that at once, in order.
            in_flight +=
                answer_without_map(&shared, &mut sess, &mut input, max_bulk, &mut queue).await;
            if sess.close {
                reading = false;
            }
            continue;
        };
        let window = outbuf::window(estimate);
        let started = observing.then(Instant::now);
        let mut chunk = ChunkBuilder::new(sess.proto, started);
        let mut commands = 0u64;
        loop {
            if in_flight + chunk.items.len() >= window {
                // The rest waits in `input` until replies have been written.
                pending = !input.is_empty();
                break;
            }
            match next_request(&mut input, max_bulk) {
                Ok(Some(req)) => {
                    commands += 1;
                    if sess.proto != chunk.proto {
                        let next = ChunkBuilder::new(sess.proto, started);
                        let done = std::mem::replace(&mut chunk, next);
                        in_flight += dispatch(&mut queue, done, id as usize, false, false).await;
                    }
                    if let Some(t) = &shared.tracing
                        && t.sample()
                    {
                        chunk.trace = Some(CmdTrace::new());
                    }
                    plan::plan(&mut sess, &shared, &topo, req, &mut chunk);
                    if observing {
                        chunk.note();
                    }
                    if chunk.groups.iter().any(|g| g.buf.len() >= LARGE_BATCH) {
                        // It goes alone: what follows waits in `input`.
                        pending = !input.is_empty();
                        break;
                    }
                    if sess.close {
                        break;
                    }
                    if chunk.items.len() >= MAX_CHUNK_ITEMS {
                        let next = ChunkBuilder::new(sess.proto, started);
                        let done = std::mem::replace(&mut chunk, next);
                        in_flight += dispatch(&mut queue, done, id as usize, false, false).await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = id, error = %e, "closing client after protocol error");
                    chunk.items.push(Item::Ready(encode_to_bytes(
                        &Reply::Error(format!("ERR {e}")),
                        sess.proto,
                    )));
                    sess.close = true;
                    break;
                }
            }
        }
        shared.stats.total_commands.fetch_add(commands, Relaxed);
        if !sess.close && !pending && input.len() > query_limit {
            tracing::warn!(
                client = id,
                "closing client that reached max query buffer length"
            );
            sess.close = true;
        }
        if chunk.groups.iter().any(|g| g.buf.len() >= LARGE_BATCH) {
            deferred = Some(chunk);
            if sess.close {
                reading = false;
            }
            continue;
        }
        in_flight += dispatch(&mut queue, chunk, id as usize, sess.close, false).await;
        if sess.close {
            reading = false;
        }
    }
    replier.finish().await;
    shared.clients.lock().remove(&id);
}

/// Answers every complete request in `input` with the reason the proxy has no slot map;
/// returns the items queued.
async fn answer_without_map(
    shared: &Shared,
    sess: &mut Session,
    input: &mut BytesMut,
    max_bulk: usize,
    queue: &mut VecDeque<Chunk>,
) -> usize {
    let reason = shared
        .topology
        .auth_error()
        .unwrap_or_else(|| "no slot map yet".into());
    let reply = encode_to_bytes(&Reply::Error(format!("ERR {reason}")), sess.proto);
    let mut chunk = ChunkBuilder::new(sess.proto, None);
    loop {
        match next_request(input, max_bulk) {
            Ok(Some(_)) => chunk.items.push(Item::Ready(reply.clone())),
            Ok(None) => break,
            Err(e) => {
                chunk.items.push(Item::Ready(encode_to_bytes(
                    &Reply::Error(format!("ERR {e}")),
                    sess.proto,
                )));
                sess.close = true;
                break;
            }
        }
    }
    dispatch(queue, chunk, sess.id as usize, sess.close, false).await
}

/// What the session's loop woke up for.
enum Wake {
    /// The oldest chunk's batches are answered.
    Answered,
    /// The client sent something (or closed).
    Read(std::io::Result<usize>),
    /// Requests read before, held back by the reply window, may now be planned.
    Pending,
}

/// Sends the chunk's backend batches, then queues the chunk to be answered; returns its items.
async fn dispatch(
    queue: &mut VecDeque<Chunk>,
    chunk: ChunkBuilder,
    hint: usize,
    close: bool,
    bulk: bool,
) -> usize {
    if chunk.items.is_empty() && !close {
        return 0;
    }
    let items = chunk.items.len();
    let mut groups = Vec::with_capacity(chunk.groups.len());
    for g in chunk.groups {
        let (done, rx) = oneshot::channel();
        let large = bulk && g.buf.len() >= LARGE_BATCH;
        let batch = Batch {
            bytes: g.buf.freeze(),
            count: g.count as usize,
            done,
        };
        if large {
            g.backend.send_bulk(batch).await;
        } else {
            g.backend.send(hint, batch).await;
        }
        groups.push(GroupRx {
            backend: g.backend,
            rx,
            result: None,
        });
    }
    queue.push_back(Chunk {
        items: chunk.items,
        meta: chunk.meta,
        started: chunk.started,
        groups,
        proto: chunk.proto,
        close,
        writes: chunk.writes,
    });
    items
}

/// Reads what the client sent. While nothing is buffered the session holds no read buffer:
/// it waits for readiness first and allocates only then (an idle client costs its socket and
/// task, not 16 KiB of buffer). Cancel-safe: nothing is read before the final, synchronous
/// `try_read_buf`.
async fn read_some(r: &mut OwnedReadHalf, input: &mut BytesMut) -> std::io::Result<usize> {
    loop {
        if input.is_empty() {
            if input.capacity() > 0 {
                *input = BytesMut::new();
            }
            r.readable().await?;
        }
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        match r.try_read_buf(input) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !input.is_empty() {
                    r.readable().await?;
                }
            }
            other => return other,
        }
    }
}

/// Completes when every batch of the oldest queued chunk has its replies. Cancel-safe: a reply
/// that arrived is kept in its group.
async fn head_answered(queue: &mut VecDeque<Chunk>) {
    let Some(chunk) = queue.front_mut() else {
        return;
    };
    for g in &mut chunk.groups {
        if g.result.is_none() {
            let r = (&mut g.rx).await.unwrap_or_else(|_| {
                Err(BackendError::Lost {
                    addr: g.backend.addr.clone(),
                    reason: "request dropped".into(),
                })
            });
            g.result = Some((r, Instant::now()));
        }
    }
}

/// Renders answered chunks and writes them to the client.
struct Replier {
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
    fn new(shared: Arc<Shared>, w: OwnedWriteHalf, hint: usize) -> Replier {
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
    fn idle(&mut self) {
        if self.out.capacity() > 0 {
            self.out = BytesMut::new();
        }
    }

    async fn finish(mut self) {
        let _ = self.w.shutdown().await;
    }

    /// Answers one chunk whose batches all have replies. False when the session must end
    /// (the client is gone, or the chunk closes it).
    async fn answer(&mut self, mut chunk: Chunk) -> bool {
        let shared = &*self.shared;
        // One allocation for the chunk's replies (given back when the session goes idle), not
        // a chain of them as the replies are appended.
        if self.out.capacity() == 0 {
            self.out.reserve(READ_CHUNK);
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
        if raw.first() == Some(&b'-') {
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
        if !matches!(e, BackendError::Unavailable { .. }) {
            return None;
        }
        let owner = self.shared.topology.load()?.owner(part.slot?)?.clone();
        if Arc::ptr_eq(&owner, sent_to) || owner.state() == State::Down {
            return None;
        }
        match owner.call(self.hint, part.req.clone(), 1).await {
            Ok(mut v) => v.pop(),
            Err(e) => Some(err_bytes(e.into())),
        }
    }

    /// Follows MOVED/ASK/TRYAGAIN/CLUSTERDOWN as [`redirect::decide`] says, within its budgets.
    async fn follow(&self, part: &Part, mut reply: Bytes) -> Bytes {
        let shared = self.shared;
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
                    shared
                        .backends
                        .get(&r.addr)
                        .call(self.hint, part.req.clone(), 1)
                        .await
                }
                Action::RetryAsk(r) => {
                    shared.stats.ask.fetch_add(1, Relaxed);
                    self.note_redirect("ask", r.slot.get(), &r.addr);
                    let mut b = BytesMut::from(&b"*1\r\n$6\r\nASKING\r\n"[..]);
                    b.extend_from_slice(&part.req);
                    shared
                        .backends
                        .get(&r.addr)
                        .call(self.hint, b.freeze(), 2)
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
                    target.call(self.hint, part.req.clone(), 1).await
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
                        Some(b) => b.call(self.hint, part.req.clone(), 1).await,
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
        }
    }

    /// Sends one request to its slot's owner now (a coalesced read whose fill failed, a request
    /// planned while its slot had no owner).
    async fn read(&self, req: Bytes, slot: membership::Slot) -> Bytes {
        let part = Part {
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

    /// Copies a backend reply through; RESP3 clients get nulls, maps and pairs converted.
    fn forward(&self, r: &Bytes, conv: Conv, out: &mut BytesMut) {
        if self.proto == Proto::Resp2 {
            out.extend_from_slice(r);
            return;
        }
        let simple = match r.first() {
            Some(b'+' | b'-' | b':') => true,
            Some(b'$') => !r.starts_with(b"$-1"),
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
        let reply = match (conv, reply) {
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
            (_, r) => r,
        };
        encode(&reply, self.proto, out);
    }
}

/// MGET's merge without decoding: every part's reply is an array of bulk strings (or nils)
/// whose raw elements are copied to their keys' positions. Writes nothing and returns false
/// when a reply is anything else (an error, say), for the decoding merge to handle.
fn splice_key_order(
    replies: &[(Bytes, &[u32])],
    nkeys: usize,
    proto: Proto,
    out: &mut BytesMut,
) -> bool {
    let mut at: Vec<&[u8]> = vec![&[]; nkeys];
    for (r, positions) in replies {
        let Some(head_end) = r.iter().position(|&b| b == b'\n') else {
            return false;
        };
        let count = r
            .get(..head_end.saturating_sub(1))
            .and_then(|h| h.strip_prefix(b"*"))
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok());
        if count != Some(positions.len()) {
            return false;
        }
        let mut rest = &r[head_end + 1..];
        for &p in positions.iter() {
            let Ok(Some(n)) = crate::protocol::reply_len(rest) else {
                return false;
            };
            let (elem, tail) = rest.split_at(n);
            if elem.first() != Some(&b'$') {
                return false;
            }
            match at.get_mut(p as usize) {
                Some(slot) => *slot = elem,
                None => return false,
            }
            rest = tail;
        }
        if !rest.is_empty() {
            return false;
        }
    }
    if at.iter().any(|e| e.is_empty()) {
        return false;
    }
    membership::resp::put_len(out, b'*', nkeys);
    for e in at {
        if proto == Proto::Resp3 && e == b"$-1\r\n" {
            out.extend_from_slice(b"_\r\n");
        } else {
            out.extend_from_slice(e);
        }
    }
    true
}

fn decoded(r: &Bytes) -> Reply {
    decode_reply(r).unwrap_or_else(|e| Reply::Error(format!("ERR backend {e}")))
}

/// Merges a split multi-key command. Any part's error becomes the whole reply (all-or-nothing,
/// like the command on a single server).
fn merge_fan(replies: &[(Bytes, &[u32])], nkeys: usize, merge: Merge) -> Reply {
    match merge {
        Merge::KeyOrder => {
            let mut values = vec![Reply::Nil; nkeys];
            for (r, positions) in replies {
                match decoded(r) {
                    Reply::Array(items) if items.len() == positions.len() => {
                        for (v, &p) in items.into_iter().zip(positions.iter()) {
                            if let Some(slot) = values.get_mut(p as usize) {
                                *slot = v;
                            }
                        }
                    }
                    e @ Reply::Error(_) => return e,
                    other => {
                        return Reply::Error(format!(
                            "ERR unexpected backend reply to a split command: {other:?}"
                        ));
                    }
                }
            }
            Reply::Array(values)
        }
        other => merge_all(replies.iter().map(|(r, _)| r), other),
    }
}

fn merge_all<'a>(replies: impl IntoIterator<Item = &'a Bytes>, merge: Merge) -> Reply {
    let mut sum = 0i64;
    let mut concat = Vec::new();
    let mut first = None;
    for r in replies {
        let r = decoded(r);
        if let Reply::Error(_) = r {
            return r;
        }
        match (merge, r) {
            (Merge::Same, r) => {
                if first.is_none() {
                    first = Some(r);
                }
            }
            (Merge::Sum, Reply::Int(n)) => sum = sum.saturating_add(n),
            (Merge::AllOk, Reply::Status(s)) if s == "OK" => {}
            (Merge::Concat | Merge::KeyOrder, Reply::Array(items)) => concat.extend(items),
            (_, other) => {
                return Reply::Error(format!(
                    "ERR unexpected backend reply to a fanned-out command: {other:?}"
                ));
            }
        }
    }
    match merge {
        Merge::Sum => Reply::Int(sum),
        Merge::AllOk => Reply::ok(),
        Merge::Concat | Merge::KeyOrder => Reply::Array(concat),
        Merge::Same => first.unwrap_or(Reply::Nil),
        // Planned as their own items (Item::Scan, Item::Gather), never merged here.
        Merge::Cursor | Merge::Random | Merge::Info | Merge::Config | Merge::Slowlog => {
            Reply::Error(format!("ERR internal error: {merge:?} merge"))
        }
    }
}

/// Rewrites a shard's SCAN reply cursor into the proxy cursor.
fn merge_scan(r: &Bytes, shard: u64, nshards: u64) -> Reply {
    let reply = decoded(r);
    let Reply::Array(mut items) = reply else {
        return reply;
    };
    let (Some(keys), Some(Reply::Bulk(c))) = (items.pop(), items.pop()) else {
        return Reply::Error("ERR unexpected backend reply to SCAN".into());
    };
    let Some(c) = std::str::from_utf8(&c)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::Error("ERR unexpected backend SCAN cursor".into());
    };
    let next = if c != 0 {
        match c.checked_mul(nshards).and_then(|v| v.checked_add(shard)) {
            Some(v) => v,
            None => {
                return Reply::Error(format!(
                    "ERR SCAN cursor {c} of shard {shard} does not fit the proxy cursor"
                ));
            }
        }
    } else if shard + 1 < nshards {
        shard + 1
    } else {
        0
    };
    Reply::Array(vec![Reply::str(&next.to_string()), keys])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part<'a>(raw: &str, positions: &'a [u32]) -> (Bytes, &'a [u32]) {
        (Bytes::from(raw.to_string()), positions)
    }

    #[test]
    fn mget_parts_are_spliced_in_key_order() {
        // Keys 0 and 2 on one shard, key 1 (missing) on another.
        let replies = [
            part("*2\r\n$1\r\na\r\n$3\r\nccc\r\n", &[0, 2]),
            part("*1\r\n$-1\r\n", &[1]),
        ];
        let mut out = BytesMut::new();
        assert!(splice_key_order(&replies, 3, Proto::Resp2, &mut out));
        assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n$-1\r\n$3\r\nccc\r\n");
        let mut out = BytesMut::new();
        assert!(splice_key_order(&replies, 3, Proto::Resp3, &mut out));
        assert_eq!(&out[..], b"*3\r\n$1\r\na\r\n_\r\n$3\r\nccc\r\n");
        // The spliced bytes are what the decoding merge encodes.
        let merged = merge_fan(&replies, 3, Merge::KeyOrder);
        let mut enc = BytesMut::new();
        encode(&merged, Proto::Resp2, &mut enc);
        let mut out = BytesMut::new();
        assert!(splice_key_order(&replies, 3, Proto::Resp2, &mut out));
        assert_eq!(out, enc);
    }

    #[test]
    fn anything_but_arrays_of_bulk_strings_is_left_to_the_decoding_merge() {
        for bad in [
            part("-MOVED 1 127.0.0.1:1\r\n", &[0]),
            part("*2\r\n$1\r\na\r\n", &[0]),
            part("*1\r\n:1\r\n", &[0]),
            part("*1\r\n$5\r\nab", &[0]),
            part("*1\r\n$1\r\na\r\n$1\r\nb\r\n", &[0]),
            part("*1\r\n$1\r\na\r\n", &[7]),
        ] {
            let mut out = BytesMut::new();
            assert!(
                !splice_key_order(std::slice::from_ref(&bad), 1, Proto::Resp2, &mut out),
                "{bad:?}"
            );
            assert!(out.is_empty());
        }
        // A key no part answered.
        let mut out = BytesMut::new();
        assert!(!splice_key_order(
            &[part("*1\r\n$1\r\na\r\n", &[0])],
            2,
            Proto::Resp2,
            &mut out
        ));
    }
}
