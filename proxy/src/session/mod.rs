//! One client connection, served by one task that frames and routes requests and answers them
//! in request order.
//!
//! Each client read becomes one chunk ([`chunk`]): its requests are planned into a FIFO of
//! [`Item`]s, and the requests bound for each backend are sent as one batch (so requests to
//! different shards proceed in parallel). Chunks wait in a bounded queue; when the oldest one's
//! batches are all answered, the task renders every item ([`reply`]: merging fan-outs, following
//! redirects) and writes the whole chunk with one syscall. A full queue stops reading: a slow
//! client stops itself, not the proxy. Reading and answering in the same task keeps an
//! unpipelined request to two wake-ups of this task (its read and its backend reply).

mod chunk;
mod merge;
mod reply;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use chunk::{Chunk, LARGE_BATCH, dispatch, head_answered};
use reply::Replier;

use crate::client::Session;
use crate::observe::CmdTrace;
use crate::outbuf;
use crate::plan::{self, ChunkBuilder, Item};
use crate::protocol::{Proto, Reply, encode_to_bytes, next_request};
use crate::shared::{ClientEntry, Shared};

/// Requests planned per chunk before it is dispatched (bounds memory per client read).
const MAX_CHUNK_ITEMS: usize = 1024;
/// Chunks planned and sent but not yet answered, per client.
const CHUNK_QUEUE: usize = 32;
const READ_CHUNK: usize = 16 * 1024;

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
        tx: None,
        watch: None,
        pubsub: Default::default(),
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
        // While a blocking command waits, the client's input is still read (and held, as
        // Redis holds a blocked client's input), so a client that goes away is noticed.
        let blocked = queue.front().is_some_and(|c| c.blocking) && input.len() < query_limit;
        // Messages wait while a subscribe confirmation is planned and not yet written.
        let pushing = sess.pubsub.rx.is_some() && sess.pubsub.unconfirmed == 0;
        let subscriber = sess.pubsub.handle.clone();
        let wake = if pending && room {
            Wake::Pending
        } else {
            tokio::select! {
                biased;
                () = killed(subscriber.as_deref()), if subscriber.is_some() => Wake::Killed,
                () = head_answered(&mut queue), if waiting => Wake::Answered,
                Some(msg) = next_push(&mut sess.pubsub.rx), if pushing => Wake::Push(msg),
                _ = shared.drain.cancelled(), if reading => {
                    reading = false;
                    continue;
                }
                r = read_some(&mut r, &mut input), if reading && ((room && !pending) || blocked) => Wake::Read(r),
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
                let subscribes = chunk.subscribes;
                if !replier.answer(chunk).await {
                    break;
                }
                sess.pubsub.unconfirmed = sess.pubsub.unconfirmed.saturating_sub(subscribes);
                estimate = outbuf::next_estimate(estimate, replier.last_bytes, items);
                if queue.is_empty() {
                    replier.idle();
                }
                if let Some(b) = &shared.busy {
                    b.note();
                }
                continue;
            }
            Wake::Killed => {
                shared
                    .stats
                    .output_buffer_limit_disconnections
                    .fetch_add(1, Relaxed);
                break;
            }
            Wake::Push(first) => {
                let Some(sub) = subscriber else { continue };
                if !write_pushes(&mut replier, &mut sess.pubsub, &sub, first).await {
                    break;
                }
                if queue.is_empty() {
                    replier.idle();
                }
                continue;
            }
            Wake::Read(Ok(0) | Err(_)) => {
                reading = false;
                // A client gone while it waits in a blocking command: nobody will read the
                // answer, so stop waiting (dropping the chunk closes its dedicated connection,
                // which ends the wait on the shard).
                if queue.iter().any(|c| c.blocking)
                    || deferred.as_ref().is_some_and(ChunkBuilder::blocking)
                {
                    queue.clear();
                    deferred = None;
                    pending = false;
                }
                continue;
            }
            Wake::Read(Ok(n)) => {
                shared
                    .stats
                    .conns
                    .net_input_bytes
                    .fetch_add(n as u64, Relaxed);
                if let Some(b) = &shared.busy {
                    b.note();
                }
                if !room {
                    // Read behind a blocking command: planned once it is answered.
                    pending = true;
                    continue;
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
                    // A blocking command starts a chunk of its own: what its client sent
                    // before it is answered first, on the shared connections.
                    if sess.proto != chunk.proto || (plan::blocks(&req) && !chunk.items.is_empty())
                    {
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
                    if chunk.alone(LARGE_BATCH) {
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
        if chunk.alone(LARGE_BATCH) {
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
        if let Some(h) = &sess.pubsub.handle {
            // HELLO may have switched protocols: messages are encoded for the new one.
            h.set_proto(sess.proto);
        }
    }
    shared.pubsub.remove_client(&mut sess.pubsub);
    shared.monitors.remove(id);
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

/// Bytes of queued messages written to a subscriber at once.
const PUSH_BATCH: usize = 64 * 1024;

/// The next queued message (never completes without a queue).
async fn next_push(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>>,
) -> Option<bytes::Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes when the subscriber overcame its output buffer limit.
async fn killed(sub: Option<&crate::pubsub::Subscriber>) {
    match sub {
        Some(s) => s.kill.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Writes `first` and what else is queued (up to [`PUSH_BATCH`]) with one syscall.
async fn write_pushes(
    replier: &mut Replier,
    subs: &mut crate::pubsub::ClientSubs,
    sub: &crate::pubsub::Subscriber,
    first: bytes::Bytes,
) -> bool {
    let mut total = first.len();
    let mut more = Vec::new();
    if let Some(rx) = subs.rx.as_mut() {
        while total < PUSH_BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    total += m.len();
                    more.push(m);
                }
                Err(_) => break,
            }
        }
    }
    let ok = if more.is_empty() {
        replier.push(&first, &sub.kill).await
    } else {
        let mut buf = BytesMut::with_capacity(total);
        buf.extend_from_slice(&first);
        for m in &more {
            buf.extend_from_slice(m);
        }
        replier.push(&buf, &sub.kill).await
    };
    sub.written(total);
    ok
}

/// What the session's loop woke up for.
enum Wake {
    /// A queued pub/sub message.
    Push(bytes::Bytes),
    /// The subscriber overcame its output buffer limit.
    Killed,
    /// The oldest chunk's batches are answered.
    Answered,
    /// The client sent something (or closed).
    Read(std::io::Result<usize>),
    /// Requests read before, held back by the reply window, may now be planned.
    Pending,
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
