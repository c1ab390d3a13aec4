//! Pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB, and the rules
//! of a RESP2 connection in subscribed mode (Redis 7's `pubsub.c` and `processCommand`).
//!
//! Confirmations are push messages (RESP3 `>3`, RESP2 `*3`), one per channel, each with the
//! connection's subscription count after it; shard channels count apart from channels and
//! patterns. Messages themselves go through `crate::pubsub`.

use bytes::Bytes;
use membership::command::{self, CommandId, CommandSpec};

use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Proto, Reply};
use crate::pubsub::Kind;

/// Refuses what a RESP2 connection in subscribed mode may not run; RESP3 runs anything.
#[inline]
pub fn check_context(s: &Session, spec: &'static CommandSpec) -> Result<(), CmdError> {
    if s.proto == Proto::Resp3 || !s.handle.pubsub.subscribed() {
        return Ok(());
    }
    use CommandId::*;
    match spec.id {
        Ping | Subscribe | Ssubscribe | Psubscribe | Unsubscribe | Sunsubscribe | Punsubscribe
        | Quit | Reset => Ok(()),
        _ => {
            let name = match command::lookup(s.last_cmd.as_bytes()) {
                Some(top) => command::full_name(top, spec),
                None => spec.name.to_string(),
            };
            Err(CmdError::PubsubContext(name))
        }
    }
}

/// PING: in subscribed RESP2 mode a `pong` message (`*2 $4 pong $0 ""`), else PONG.
pub fn ping(s: &Session, a: &Args) -> CmdResult {
    if s.proto == Proto::Resp3 || !s.handle.pubsub.subscribed() || a.len() > 2 {
        return super::connection::ping(a);
    }
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(b"pong")),
        Reply::Bulk(a.bytes(1)),
    ]))
}

fn confirmation(kind: Kind, subscribe: bool, name: Option<Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::Bulk(Bytes::from_static(kind.confirmation(subscribe).as_bytes())),
        name.map_or(Reply::Nil, Reply::Bulk),
        Reply::Int(count as i64),
    ])
}

/// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: one confirmation per argument (repeated names too).
pub fn subscribe(s: &mut Session, kind: Kind, a: &Args) -> CmdResult {
    let (ps, me) = (&s.shared.pubsub, &s.handle.pubsub);
    let replies = a
        .slice(1)
        .iter()
        .map(|name| {
            ps.subscribe(me, kind, name);
            confirmation(kind, true, Some(name.clone()), me.count_for(kind))
        })
        .collect();
    Ok(Reply::Many(replies))
}

/// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE: the names given, or everything of the kind; with
/// nothing to drop, one confirmation with a nil name.
pub fn unsubscribe(s: &mut Session, kind: Kind, a: &Args) -> CmdResult {
    let (ps, me) = (&s.shared.pubsub, &s.handle.pubsub);
    let mut replies = Vec::new();
    if a.len() > 1 {
        for name in a.slice(1) {
            ps.unsubscribe(me, kind, name);
            replies.push(confirmation(
                kind,
                false,
                Some(name.clone()),
                me.count_for(kind),
            ));
        }
    } else {
        // Each confirmation carries the count left after it, as Redis drops them one by one.
        let names = ps.unsubscribe_all(me, kind);
        let after = me.count_for(kind);
        let n = names.len();
        for (i, name) in names.into_iter().enumerate() {
            replies.push(confirmation(kind, false, Some(name), after + (n - 1 - i)));
        }
        if replies.is_empty() {
            replies.push(confirmation(kind, false, None, after));
        }
    }
    Ok(Reply::Many(replies))
}

/// PUBLISH and SPUBLISH: the number of clients of this node that received the message. In
/// cluster mode PUBLISH goes to the other nodes' subscribers too (`migrate::publish`).
pub fn publish(s: &mut Session, a: &Args, shard: bool) -> CmdResult {
    let n = s.shared.pubsub.publish(a.get(1), a.get(2), shard);
    if !shard && let Some(c) = s.shared.cluster.get() {
        c.publish.forward(a.get(1), a.get(2));
    }
    Ok(Reply::Int(n as i64))
}

/// The PUBSUB introspection subcommands.
pub fn pubsub(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    let ps = &s.shared.pubsub;
    let names = |kind| -> CmdResult {
        if a.len() > 3 {
            return Err(syntax(a));
        }
        let pattern = (a.len() == 3).then(|| a.get(2));
        Ok(Reply::Array(
            ps.channel_names(kind, pattern)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ))
    };
    let numsub = |kind| {
        Reply::Array(
            a.slice(2)
                .iter()
                .flat_map(|c| {
                    [
                        Reply::Bulk(c.clone()),
                        Reply::Int(ps.numsub(kind, c) as i64),
                    ]
                })
                .collect(),
        )
    };
    match id {
        CommandId::PubsubChannels => names(Kind::Channel),
        CommandId::PubsubShardchannels => names(Kind::Shard),
        CommandId::PubsubNumsub => Ok(numsub(Kind::Channel)),
        CommandId::PubsubShardnumsub => Ok(numsub(Kind::Shard)),
        CommandId::PubsubNumpat => Ok(Reply::Int(ps.len(Kind::Pattern) as i64)),
        _ => Ok(super::server::help(
            "PUBSUB",
            &[
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
            ],
        )),
    }
}

/// Redis's `addReplySubcommandSyntaxError`.
fn syntax(a: &Args) -> CmdError {
    CmdError::SubcommandSyntax {
        container: String::from_utf8_lossy(a.get(0)).to_ascii_uppercase(),
        sub: String::from_utf8_lossy(a.get(1)).into_owned(),
    }
}

/// RESET, and the end of the connection: every subscription dropped, without confirmations.
pub fn off(s: &Session) {
    s.shared.pubsub.remove_client(&s.handle.pubsub);
}
