//! One client connection: read whatever bytes are available, execute every complete request
//! in them, encode all replies into one buffer, write it once. Pipelines are answered in order
//! with one write per batch read.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use telemetry::stats::{LocalStats, label_of, slot_of};
use telemetry::trace::{TRACE_COMMAND, TraceParent};

use crate::clients::ClientHandle;
use crate::cmd::{self, Session};
use crate::observe::{Tier, Traced, emit_span};
use crate::protocol::{self, Args, Limits, Reply};
use crate::shared::Shared;

const READ_CHUNK: usize = 16 * 1024;

pub async fn serve(shared: &Arc<Shared>, mut stream: TcpStream, handle: &Arc<ClientHandle>) {
    let mut session = Session::new(shared, handle.clone());
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    let limits = Limits {
        max_bulk_len: usize::try_from(shared.config.proto_max_bulk_len).unwrap_or(usize::MAX),
    };
    let query_limit =
        usize::try_from(shared.config.client_query_buffer_limit).unwrap_or(usize::MAX);
    // Per-command statistics, published once per batch.
    let metrics = shared.metrics.get().cloned();
    let timed = metrics.as_ref().is_some_and(|m| m.latency);
    // The clock is read per command for the latency histogram or to catch slow commands.
    let clocked = timed || shared.tracing.as_ref().is_some_and(|t| t.traces_slow());
    let mut local = LocalStats::default();

    loop {
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            _ = handle.kill.cancelled() => break,
            _ = handle.inbox.notify.notified() => {
                handle.inbox.drain_into(session.proto, &mut output);
                if !output.is_empty() {
                    if stream.write_all(&output).await.is_err() {
                        break;
                    }
                    output.clear();
                }
                continue;
            }
            r = stream.read_buf(&mut input) => r,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        shared.stats.net_input_bytes.fetch_add(n as u64, Relaxed);

        session.begin_batch();
        // One clock read per command: each command's time runs from the end of the previous
        // one (or the end of the read) to the end of its own execution.
        let mut mark = clocked.then(Instant::now);
        let mut fatal = false;
        loop {
            match protocol::next_request(&mut input, limits) {
                Ok(Some(args)) => {
                    if is_trace_command(&args) {
                        let reply = trace_command(&mut session, &args);
                        protocol::encode(&reply, session.proto, &mut output);
                        continue;
                    }
                    let traced = shared.tracing.as_ref().and_then(|t| {
                        let parent = session.trace_next.take();
                        (parent.is_some() || t.sample()).then(|| Traced {
                            parent,
                            start: mark.unwrap_or_else(Instant::now),
                        })
                    });
                    let before = traced.as_ref().map(|_| session.lookups());
                    // Keys this command names that live in the warm tier are loaded into RAM
                    // first (off the async workers); the command then runs against RAM only.
                    cmd::pace_writes(&session, &args).await;
                    let plan = cmd::warm_plan(&session, &args);
                    let loaded = match &plan {
                        Some(p) => cmd::load_warm(&session, &args, p).await,
                        None => Ok(()),
                    };
                    let reply = match loaded {
                        Ok(()) => cmd::execute(&mut session, args),
                        Err(e) => Reply::from(e),
                    };
                    let from_warm = plan.as_ref().is_some_and(cmd::WarmPlan::loaded_any);
                    if let Some(plan) = plan {
                        cmd::settle_warm(&session, plan);
                    }
                    let error = match &reply {
                        Reply::Error(e) => Some(e.as_str()),
                        _ => None,
                    };
                    let began = mark;
                    let took = mark.map(|prev| {
                        let now = Instant::now();
                        mark = Some(now);
                        now.duration_since(prev)
                    });
                    if let Some(m) = &metrics {
                        let ns = took
                            .filter(|_| timed)
                            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                        let slot = slot_of(session.last_spec.map(|s| s.id));
                        local.record(&m.commands, slot, error.is_none(), ns);
                    }
                    // Not sampled but slow: traced after the fact (without tier: no lookups
                    // were counted for it).
                    let traced = traced.or_else(|| {
                        let t = shared.tracing.as_ref()?;
                        let (took, began) = (took?, began?);
                        t.is_slow(took).then_some(Traced {
                            parent: None,
                            start: began,
                        })
                    });
                    if let (Some(t), Some(traced)) = (&shared.tracing, traced) {
                        let (hits, misses) = before.unwrap_or((u64::MAX, u64::MAX));
                        let (h, m) = session.lookups();
                        let tier = if from_warm {
                            Some(Tier::Warm)
                        } else if h > hits {
                            Some(Tier::Ram)
                        } else if m > misses {
                            Some(Tier::Miss)
                        } else {
                            None
                        };
                        let cmd = session.last_spec.map_or("unknown", label_of);
                        emit_span(t, traced, cmd, tier, error);
                    }
                    protocol::encode(&reply, session.proto, &mut output);
                    // Invalidations go after the reply: a value read before a change is then
                    // always followed by the change's message.
                    if handle.inbox.has_pending() {
                        handle.inbox.drain_into(session.proto, &mut output);
                    }
                    if session.close_after_reply {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = handle.id, error = %e, "closing client after protocol error");
                    protocol::encode(
                        &Reply::Error(format!("ERR {e}")),
                        session.proto,
                        &mut output,
                    );
                    fatal = true;
                    break;
                }
            }
        }
        if !fatal && input.len() > query_limit {
            tracing::warn!(
                client = handle.id,
                bytes = input.len(),
                "closing client that reached max query buffer length"
            );
            fatal = true;
        }
        session.end_batch();
        if let Some(m) = &metrics {
            local.flush(&m.commands);
        }

        if !output.is_empty() {
            shared
                .stats
                .net_output_bytes
                .fetch_add(output.len() as u64, Relaxed);
            if stream.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
            if output.capacity() > 1 << 20 {
                // Do not keep a huge buffer around after one large reply.
                output = BytesMut::with_capacity(READ_CHUNK);
            }
        }
        if fatal || session.close_after_reply {
            break;
        }
    }
    handle.inbox.close();
    cmd::tracking_off(&mut session);
    let _ = stream.shutdown().await;
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
