//! One client connection: read whatever bytes are available, execute every complete request
//! in them, encode all replies into one buffer, write it once. Pipelines are answered in order
//! with one write per batch read.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clients::ClientHandle;
use crate::cmd::{self, Session};
use crate::protocol::{self, Limits, Reply};
use crate::server::Shared;

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
        let mut fatal = false;
        loop {
            match protocol::next_request(&mut input, limits) {
                Ok(Some(args)) => {
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
                    if let Some(plan) = plan {
                        cmd::settle_warm(&session, plan);
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
