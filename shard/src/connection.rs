//! One client connection, a batch at a time. [`serve`] reads as the pipeline it runs:
//!
//! 1. **read** whatever bytes the socket has ([`Conn::read`]); pushed invalidations, pub/sub
//!    messages and a kill (CLIENT KILL, shutdown, the pub/sub output buffer limit) wake the
//!    same wait;
//! 2. **parse** every complete request in the buffer (`protocol::next_request`); an incomplete
//!    one waits for more bytes, a malformed one ends the connection after its error reply;
//! 3. **load** the warm-tier keys the request names into RAM, pacing writes while the warm
//!    tier's writer lags ([`Conn::load_keys`]);
//! 4. **execute** it (`cmd::execute`): command lookup, arity, authentication, then in cluster
//!    mode the ownership check under the slot's migration gate (MOVED / ASK / TRYAGAIN),
//!    memory admission, the command itself, and CLIENT TRACKING's bookkeeping;
//! 5. **observe** it: per-command metrics, and a span when traced or slow ([`Conn::observe`]);
//! 6. **reply**: encode the reply, then the invalidations it caused (a value read before a
//!    change is always followed by the change's message);
//! 7. **write** the batch's replies with one write ([`Conn::write_replies`]), and loop.
//!
//! Pipelines are answered in order with one write per batch read.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use telemetry::stats::{CommandStats, LocalStats, Outcome, label_of, slot_of};
use telemetry::trace::{TRACE_COMMAND, TraceParent};

use crate::blocking::Wake;
use crate::clients::ClientHandle;
use crate::cmd::{self, Session, WarmPlan};
use crate::observe::{Tier, Traced, emit_span};
use crate::protocol::{self, Args, Limits, Reply};
use crate::shared::Shared;

const READ_CHUNK: usize = 16 * 1024;
/// Pub/sub messages taken from a subscriber's queue per write.
const PUSH_CHUNK: usize = 64 * 1024;

pub async fn serve(shared: &Arc<Shared>, stream: TcpStream, handle: &Arc<ClientHandle>) {
    let mut conn = Conn::new(shared, stream, handle);
    'read: loop {
        match conn.read().await {
            Input::Requests => {}
            Input::Pushed => {
                if conn.write_pushed().await.is_err() {
                    break;
                }
                continue;
            }
            Input::Closed => break,
        }
        loop {
            let end = conn.execute_batch().await;
            if conn.write_replies().await.is_err() || end == End::Close {
                break 'read;
            }
            if conn.session.blocked.is_none() {
                break;
            }
            // A blocking command waits; the rest of its pipeline runs after it.
            if !conn.wait_blocked().await || conn.write_replies().await.is_err() {
                break 'read;
            }
        }
    }
    conn.close().await;
}

/// What woke the connection.
enum Input {
    /// Request bytes arrived.
    Requests,
    /// Invalidation messages are waiting (another client changed a tracked key).
    Pushed,
    /// The peer closed, the read failed, or the client was killed.
    Closed,
}

/// What ended one wait of a blocked client's select.
enum Event {
    Woken(Option<Wake>),
    TimedOut,
    Closed,
    Pushed,
    Input,
    Tick,
}

/// Whether the connection goes on after this batch.
#[derive(PartialEq, Eq)]
enum End {
    Continue,
    /// QUIT, a protocol error, or an oversized query buffer: reply, then close.
    Close,
}

/// A connection's buffers and per-connection state.
struct Conn<'a> {
    shared: &'a Arc<Shared>,
    handle: &'a Arc<ClientHandle>,
    stream: TcpStream,
    session: Session,
    input: BytesMut,
    output: BytesMut,
    limits: Limits,
    query_limit: usize,
    /// Per-command statistics (INFO commandstats, the metrics), published once per batch.
    commands: Arc<CommandStats>,
    local: LocalStats,
    /// Whether each command is timed for the latency histogram (`latency-tracking`).
    timed: bool,
    /// Whether the clock is read per command at all (latency histogram or slow-command traces).
    clocked: bool,
    /// The end of the previous command (or of the read), while `clocked`: each command's time
    /// runs from there to the end of its own execution, one clock read per command.
    mark: Option<Instant>,
}

impl<'a> Conn<'a> {
    fn new(shared: &'a Arc<Shared>, stream: TcpStream, handle: &'a Arc<ClientHandle>) -> Self {
        let timed = shared.config.telemetry.latency_tracking;
        Conn {
            session: Session::new(shared, handle.clone()),
            shared,
            handle,
            stream,
            input: BytesMut::with_capacity(READ_CHUNK),
            output: BytesMut::with_capacity(READ_CHUNK),
            limits: Limits {
                max_bulk_len: usize::try_from(shared.config.proto_max_bulk_len)
                    .unwrap_or(usize::MAX),
            },
            query_limit: usize::try_from(shared.config.client_query_buffer_limit)
                .unwrap_or(usize::MAX),
            commands: shared.commands.clone(),
            local: LocalStats::default(),
            timed,
            clocked: timed || shared.tracing.as_ref().is_some_and(|t| t.traces_slow()),
            mark: None,
        }
    }

    /// Step 1: waits for request bytes, pushed invalidations, or the end.
    async fn read(&mut self) -> Input {
        if self.input.capacity() - self.input.len() < READ_CHUNK / 4 {
            self.input.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            _ = self.handle.kill.cancelled() => return Input::Closed,
            _ = self.handle.inbox.notify.notified() => return Input::Pushed,
            r = self.stream.read_buf(&mut self.input) => r,
        };
        match read {
            Ok(0) | Err(_) => Input::Closed,
            Ok(n) => {
                self.shared
                    .stats
                    .conns
                    .net_input_bytes
                    .fetch_add(n as u64, Relaxed);
                Input::Requests
            }
        }
    }

    /// Delivers invalidations and pub/sub messages that arrived while the client sent
    /// nothing. Messages are written a chunk at a time: those not yet taken stay in the
    /// subscriber's queue, where they count against its output buffer limit, and a kill (that
    /// limit, CLIENT KILL) ends a write the peer is not reading.
    async fn write_pushed(&mut self) -> std::io::Result<()> {
        self.handle
            .inbox
            .drain_into(self.session.proto, &mut self.output);
        loop {
            let more = self.handle.pubsub.has_pending()
                && self
                    .handle
                    .pubsub
                    .drain_into(self.session.proto, &mut self.output, PUSH_CHUNK);
            if self.output.is_empty() {
                return Ok(());
            }
            tokio::select! {
                biased;
                _ = self.handle.kill.cancelled() => {
                    return Err(std::io::ErrorKind::ConnectionAborted.into());
                }
                r = self.stream.write_all(&self.output) => r?,
            }
            self.output.clear();
            if !more {
                return Ok(());
            }
        }
    }

    /// Steps 2 to 6 for every complete request in the input buffer.
    async fn execute_batch(&mut self) -> End {
        self.session.begin_batch();
        self.mark = self.clocked.then(Instant::now);
        let mut end = End::Continue;
        loop {
            match protocol::next_request(&mut self.input, self.limits) {
                Ok(Some(args)) if is_trace_command(&args) => {
                    let reply = trace_command(&mut self.session, &args);
                    self.encode(&reply);
                }
                Ok(Some(args)) => {
                    if self.shared.pause.active() {
                        self.wait_unpaused(&args).await;
                    }
                    let sampled = self.sampled();
                    // Without a warm tier there is nothing to load, and no future is built for
                    // it: the rest of a request is synchronous (a GET's whole path).
                    let loaded = match self.shared.db.warm() {
                        Some(_) => self.load_keys(&args).await,
                        None => Loaded::NOTHING,
                    };
                    self.request(args, sampled, loaded);
                    if self.session.close_after_reply || self.session.blocked.is_some() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = self.handle.id, error = %e, "closing client after protocol error");
                    self.encode(&Reply::Error(format!("ERR {e}")));
                    end = End::Close;
                    break;
                }
            }
        }
        if end == End::Continue && self.input.len() > self.query_limit {
            tracing::warn!(
                client = self.handle.id,
                bytes = self.input.len(),
                "closing client that reached max query buffer length"
            );
            end = End::Close;
        }
        self.session.end_batch();
        self.local.flush(&self.commands);
        if self.session.close_after_reply {
            end = End::Close;
        }
        end
    }

    /// One request whose warm keys are loaded: execute, observe, encode the reply and what
    /// followed it. Inlined into the batch loop, where it was written before it had a name
    /// (one call site; as a call it cost every request a few dozen instructions).
    #[inline(always)]
    fn request(&mut self, args: Args, sampled: Option<Sampled>, plan: Loaded) {
        let reply = match plan.loaded {
            Ok(()) => cmd::execute(&mut self.session, self.shared, args),
            Err(e) => Reply::from(e),
        };
        let from_warm = plan.plan.as_ref().is_some_and(WarmPlan::loaded_any);
        if let Some(p) = plan.plan {
            cmd::settle_warm(&self.session, p);
        }
        if self.session.blocked.is_some() {
            // The reply comes when the wait ends (`wait_blocked`).
            return;
        }
        self.observe(&reply, sampled, from_warm);
        // Messages published before the reply (by this command too) come before it, as in
        // Redis.
        if self.handle.pubsub.has_pending() {
            self.handle
                .pubsub
                .drain_into(self.session.proto, &mut self.output, usize::MAX);
        }
        if self.session.reply_wanted() {
            self.encode(&reply);
        }
        if self.handle.inbox.has_pending() {
            self.handle
                .inbox
                .drain_into(self.session.proto, &mut self.output);
        }
    }

    /// CLIENT PAUSE: the replies so far are written, then the request waits while the pause
    /// holds it (every request under ALL, those that may write under WRITE), or until the
    /// client goes away.
    async fn wait_unpaused(&mut self, args: &Args) {
        let write = cmd::may_write(&self.session, args);
        if self.shared.pause.blocks(write).is_none() {
            return;
        }
        if self.write_replies().await.is_err() {
            return;
        }
        tokio::select! {
            _ = self.handle.kill.cancelled() => {}
            _ = self.shared.pause.wait(write) => {}
        }
        self.session.begin_batch();
        self.mark = self.clocked.then(Instant::now);
    }

    /// A blocking command's wait: until it is served, its timeout passes, CLIENT UNBLOCK, its
    /// slot moves away (cluster mode, checked every 100 ms), or the client goes away (`false`:
    /// close). Invalidations are delivered meanwhile; requests that arrive are buffered, as
    /// Redis buffers a blocked client's input.
    async fn wait_blocked(&mut self) -> bool {
        let Some(mut blocked) = self.session.blocked.take() else {
            return true;
        };
        let id = self.handle.id;
        let blocking = &self.shared.blocking;
        let clustered = self.shared.cluster.get().is_some();
        let wake = loop {
            let deadline = blocked.deadline;
            let timeout = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                biased;
                _ = self.handle.kill.cancelled() => Event::Closed,
                w = &mut blocked.reply => Event::Woken(w.ok()),
                _ = timeout => Event::TimedOut,
                _ = self.handle.inbox.notify.notified() => Event::Pushed,
                r = self.stream.read_buf(&mut self.input) => match r {
                    Ok(0) | Err(_) => Event::Closed,
                    Ok(_) => Event::Input,
                },
                _ = tokio::time::sleep(Duration::from_millis(100)), if clustered => Event::Tick,
            };
            match event {
                Event::Woken(w) => break w,
                Event::Closed => {
                    blocking.cancel(id);
                    return false;
                }
                Event::TimedOut if blocking.cancel(id) => break Some(Wake::TimedOut),
                Event::Pushed => {
                    if self.write_pushed().await.is_err() {
                        blocking.cancel(id);
                        return false;
                    }
                }
                Event::Tick => {
                    if let Some(e) = cmd::blocked_redirect(&self.session, &blocked.key)
                        && blocking.cancel(id)
                    {
                        break Some(Wake::Error(e));
                    }
                }
                Event::Input if self.input.len() > self.query_limit => {
                    tracing::warn!(
                        client = id,
                        bytes = self.input.len(),
                        "closing blocked client that reached max query buffer length"
                    );
                    blocking.cancel(id);
                    return false;
                }
                // Served meanwhile: the reply is in the channel. New input waits its turn.
                Event::TimedOut | Event::Input => {}
            }
        };
        let reply = match wake {
            Some(Wake::Reply(r) | Wake::Error(r)) => r,
            Some(Wake::TimedOut) | None => blocked.on_timeout,
        };
        self.session.begin_batch();
        self.observe(&reply, None, false);
        self.encode(&reply);
        if self.handle.inbox.has_pending() {
            self.handle
                .inbox
                .drain_into(self.session.proto, &mut self.output);
        }
        true
    }

    /// Step 3: keys this request names that live in the warm tier are loaded into RAM first
    /// (off the async workers); the command then runs against RAM only.
    async fn load_keys(&mut self, args: &Args) -> Loaded {
        cmd::pace_writes(&self.session, args).await;
        let plan = cmd::warm_plan(&self.session, args);
        let loaded = match &plan {
            Some(p) => cmd::load_warm(&self.session, args, p).await,
            None => Ok(()),
        };
        Loaded { plan, loaded }
    }

    /// Whether this command is traced from its start (before its warm keys load): it
    /// continues a trace the client named (`AUTOCACHE.TRACE`), or the sampler picked it.
    #[inline]
    fn sampled(&mut self) -> Option<Sampled> {
        let t = self.shared.tracing.as_ref()?;
        let parent = self.session.trace_next.take();
        (parent.is_some() || t.sample()).then(|| Sampled {
            traced: Traced {
                parent,
                start: self.mark.unwrap_or_else(Instant::now),
            },
            lookups: self.session.lookups(),
        })
    }

    /// Step 5: the command's metrics, and its span if it was sampled or turned out slow.
    fn observe(&mut self, reply: &Reply, sampled: Option<Sampled>, from_warm: bool) {
        let error = match reply {
            Reply::Error(e) => Some(e.as_str()),
            _ => None,
        };
        let began = self.mark;
        let took = self.lap();
        let ns = took
            .filter(|_| self.timed)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let slot = slot_of(self.session.last_spec.map(|s| s.id));
        let outcome = match error {
            None => Outcome::Ok,
            Some(line) => {
                self.shared.errors.record(line);
                if self.session.rejected {
                    Outcome::Rejected
                } else {
                    Outcome::Failed
                }
            }
        };
        self.local.record_outcome(&self.commands, slot, outcome, ns);
        let Some(t) = &self.shared.tracing else {
            return;
        };
        let (traced, before) = match sampled {
            Some(s) => (Some(s.traced), Some(s.lookups)),
            None => (None, None),
        };
        // Not sampled but slow: traced after the fact (without tier: no lookups were counted
        // for it).
        let traced = traced.or_else(|| {
            let (took, began) = (took?, began?);
            t.is_slow(took).then_some(Traced {
                parent: None,
                start: began,
            })
        });
        let Some(traced) = traced else { return };
        let (hits, misses) = before.unwrap_or((u64::MAX, u64::MAX));
        let (h, m) = self.session.lookups();
        let tier = if from_warm {
            Some(Tier::Warm)
        } else if h > hits {
            Some(Tier::Ram)
        } else if m > misses {
            Some(Tier::Miss)
        } else {
            None
        };
        let cmd = self.session.last_spec.map_or("unknown", label_of);
        emit_span(t, traced, cmd, tier, error);
    }

    /// The time since the previous mark, moving the mark to now (`None` while not clocked).
    fn lap(&mut self) -> Option<Duration> {
        let prev = self.mark?;
        let now = Instant::now();
        self.mark = Some(now);
        Some(now.duration_since(prev))
    }

    fn encode(&mut self, reply: &Reply) {
        protocol::encode(reply, self.session.proto, &mut self.output);
    }

    /// Step 7: the batch's replies, with one write.
    async fn write_replies(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        self.shared
            .stats
            .conns
            .net_output_bytes
            .fetch_add(self.output.len() as u64, Relaxed);
        self.stream.write_all(&self.output).await?;
        self.output.clear();
        if self.output.capacity() > 1 << 20 {
            // Do not keep a huge buffer around after one large reply.
            self.output = BytesMut::with_capacity(READ_CHUNK);
        }
        Ok(())
    }

    async fn close(mut self) {
        if self.session.monitoring {
            self.shared.monitors.remove(self.handle.id);
        }
        self.handle.inbox.close();
        self.handle.pubsub.close();
        cmd::pubsub_off(&self.session);
        cmd::tracking_off(&mut self.session);
        cmd::transaction_reset(&mut self.session);
        let _ = self.stream.shutdown().await;
    }
}

/// A command traced from its start, with the session's lookup counts then (the counts after
/// it tell which tier answered).
struct Sampled {
    traced: Traced,
    lookups: (u64, u64),
}

/// The warm-tier work around one request (step 3) and whether its loads succeeded.
struct Loaded {
    plan: Option<WarmPlan>,
    loaded: Result<(), crate::error::CmdError>,
}

impl Loaded {
    /// No warm tier: nothing pinned, nothing loaded.
    const NOTHING: Loaded = Loaded {
        plan: None,
        loaded: Ok(()),
    };
}

/// `AUTOCACHE.TRACE`, matched without allocating (a length check first: the common case).
fn is_trace_command(args: &Args) -> bool {
    let name = args.get(0);
    name.len() == TRACE_COMMAND.len() && name.eq_ignore_ascii_case(TRACE_COMMAND.as_bytes())
}

/// `AUTOCACHE.TRACE <traceparent>`: the next command on this connection continues that trace
/// (a proxy sends it; ignored when this shard exports no traces).
fn trace_command(session: &mut Session, args: &Args) -> Reply {
    if args.len() != 2 {
        return Reply::Error(format!(
            "ERR wrong number of arguments for '{}' command",
            TRACE_COMMAND.to_ascii_lowercase()
        ));
    }
    match TraceParent::parse(args.get(1)) {
        Some(p) => {
            if session.shared.tracing.is_some() {
                session.trace_next = Some(p);
            }
            Reply::Ok
        }
        None => Reply::Error("ERR invalid traceparent".into()),
    }
}
