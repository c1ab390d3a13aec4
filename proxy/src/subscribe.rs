//! Plans the pub/sub commands ([`Route::PubSub`](membership::command::Route)) against the
//! subscription hub ([`crate::pubsub`]), and the rules of a RESP2 connection in subscribed
//! mode (Redis 7's `processCommand`).
//!
//! - (P|S)SUBSCRIBE: the client is registered in the hub at once; its confirmations (one per
//!   name, with its own subscription count) are written once the nodes confirmed the
//!   subscriptions this made new, so a message published after the client read its
//!   confirmation reaches it.
//! - (P|S)UNSUBSCRIBE: answered once the nodes answered the unsubscribes this made (so a
//!   PUBLISH after it no longer counts this proxy's subscription).
//! - PUBLISH: to the hub's designated node; the reply is that node's count of receivers (the
//!   hub's one connection counts once, however many clients of this proxy listen).
//! - PUBSUB CHANNELS / SHARDCHANNELS: the union of every node's answer. NUMSUB / SHARDNUMSUB /
//!   NUMPAT: the nodes' counts summed, with this proxy's upstream subscriptions replaced by its
//!   own clients' (other proxies' hubs still count once each).

use bytes::Bytes;
use membership::command::{CommandId, CommandSpec, full_name, lookup_any};

use crate::aggregate::Gather;
use crate::client::Session;
use crate::error::CmdError;
use crate::plan::{ChunkBuilder, Conv, Item};
use crate::protocol::{Proto, Reply, Request};
use crate::pubsub::Kind;
use crate::shared::Shared;
use crate::topology::Topology;

/// In RESP2 subscribed mode, the error for anything but (P|S)(UN)SUBSCRIBE, PING, QUIT and
/// RESET; `None` when the command may run.
pub fn refuse_in_context(
    sess: &Session,
    spec: &'static CommandSpec,
    req: &Request,
) -> Option<CmdError> {
    if sess.proto == Proto::Resp3 || !sess.pubsub.subscribed() {
        return None;
    }
    use CommandId::*;
    if matches!(
        spec.id,
        Ping | Subscribe
            | Ssubscribe
            | Psubscribe
            | Unsubscribe
            | Sunsubscribe
            | Punsubscribe
            | Quit
            | Reset
    ) {
        return None;
    }
    let name = match lookup_any(req.arg(0)) {
        Some(top) => full_name(top, spec),
        None => spec.name.to_string(),
    };
    Some(CmdError::err(format!(
        "Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )))
}

/// Whether the command (un)subscribes.
pub fn subscribes(spec: &CommandSpec) -> bool {
    use CommandId::*;
    matches!(
        spec.id,
        Subscribe | Ssubscribe | Psubscribe | Unsubscribe | Sunsubscribe | Punsubscribe
    )
}

/// PING in RESP2 subscribed mode: `*2 $4 pong <message or "">`.
pub fn subscribed_ping(sess: &Session, req: &Request) -> Option<Reply> {
    if sess.proto == Proto::Resp3 || !sess.pubsub.subscribed() || req.argc() > 2 {
        return None;
    }
    let msg = if req.argc() == 2 { req.arg(1) } else { &[][..] };
    Some(Reply::Array(vec![
        Reply::str("pong"),
        Reply::Bulk(Bytes::copy_from_slice(msg)),
    ]))
}

fn names(req: &Request) -> impl Iterator<Item = Bytes> + '_ {
    req.args().skip(1).map(Bytes::copy_from_slice)
}

pub fn route(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    spec: &'static CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    let hub = &shared.pubsub;
    let kind = match spec.id {
        CommandId::Subscribe | CommandId::Unsubscribe => Kind::Channel,
        CommandId::Psubscribe | CommandId::Punsubscribe => Kind::Pattern,
        _ => Kind::Shard,
    };
    match spec.id {
        CommandId::Subscribe | CommandId::Psubscribe | CommandId::Ssubscribe => {
            let a = hub.subscribe(&mut sess.pubsub, sess.id, sess.proto, kind, names(&req));
            sess.pubsub.unconfirmed += 1;
            chunk.subscribes += 1;
            chunk.items.push(Item::Subscribed {
                waits: a.waits,
                reply: a.reply.freeze(),
            });
        }
        CommandId::Unsubscribe | CommandId::Punsubscribe | CommandId::Sunsubscribe => {
            let which = (req.argc() > 1).then(|| names(&req).collect());
            let a = hub.unsubscribe(&mut sess.pubsub, sess.proto, kind, which);
            chunk.items.push(Item::Subscribed {
                waits: a.waits,
                reply: a.reply.freeze(),
            });
        }
        CommandId::Publish => match hub.publish_target(topo) {
            Some(b) => {
                let part = chunk.add(&b, req.raw, None);
                chunk.items.push(Item::Fwd {
                    part,
                    conv: Conv::Plain,
                });
            }
            None => chunk.ready(CmdError::ClusterDown(0).into()),
        },
        CommandId::PubsubChannels
        | CommandId::PubsubShardchannels
        | CommandId::PubsubNumsub
        | CommandId::PubsubShardnumsub
        | CommandId::PubsubNumpat => {
            if topo.backends.is_empty() {
                return chunk.ready(CmdError::ClusterDown(0).into());
            }
            let adjust = match spec.id {
                CommandId::PubsubNumsub | CommandId::PubsubShardnumsub => {
                    let kind = if spec.id == CommandId::PubsubNumsub {
                        Kind::Channel
                    } else {
                        Kind::Shard
                    };
                    req.args()
                        .skip(2)
                        .map(|ch| {
                            let (local, held) = hub.counts(&(kind, Bytes::copy_from_slice(ch)));
                            local as i64 - held as i64
                        })
                        .collect()
                }
                CommandId::PubsubNumpat => {
                    let (local, held) = hub.pattern_counts();
                    vec![local as i64 - held as i64]
                }
                _ => Vec::new(),
            };
            let parts = topo
                .backends
                .iter()
                .map(|b| chunk.add(b, req.raw.clone(), None))
                .collect();
            chunk.items.push(Item::Gather {
                parts,
                how: Gather::Pubsub {
                    numbers: matches!(
                        spec.id,
                        CommandId::PubsubNumsub
                            | CommandId::PubsubShardnumsub
                            | CommandId::PubsubNumpat
                    ),
                    adjust,
                },
            });
        }
        // PUBSUB HELP: any node's text is Redis's.
        _ => match topo.backends.first() {
            Some(b) => {
                let part = chunk.add(b, req.raw, None);
                chunk.items.push(Item::Fwd {
                    part,
                    conv: Conv::Plain,
                });
            }
            None => chunk.ready(CmdError::ClusterDown(0).into()),
        },
    }
}
