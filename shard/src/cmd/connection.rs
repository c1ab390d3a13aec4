//! Connection commands: PING, HELLO, AUTH, SELECT, RESET and CLIENT.

use bytes::Bytes;
use membership::command::CommandId;

use super::args::{eq, parse_i64};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Proto, Reply};
use membership::resp::CommandError;

pub fn ping(a: &Args) -> CmdResult {
    match a.len() {
        1 => Ok(Reply::Simple("PONG")),
        2 => Ok(Reply::Bulk(a.bytes(1))),
        _ => Err(CmdError::from(CommandError::WrongArity("ping".into()))),
    }
}

/// Compares secrets in time independent of where they differ.
fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a username/password pair against `requirepass` (the only user is `default`).
fn check_password(s: &Session, user: Option<&[u8]>, pass: &[u8]) -> bool {
    if user.is_some_and(|u| u != b"default") {
        return false;
    }
    match s.shared.requirepass() {
        Some(p) => secret_eq(&p, pass),
        // Without requirepass the default user has no password: any password is accepted.
        None => true,
    }
}

pub fn auth(s: &mut Session, a: &Args) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if a.len() == 2 && s.shared.requirepass().is_none() {
        return Err(CmdError::from(CommandError::Raw(
            membership::resp::errors::AUTH_NOT_CONFIGURED.into(),
        )));
    }
    let (user, pass) = if a.len() == 3 {
        (Some(a.get(1)), a.get(2))
    } else {
        (None, a.get(1))
    };
    if check_password(s, user, pass) {
        s.authenticated = true;
        Ok(Reply::Ok)
    } else {
        tracing::debug!(client = s.handle.id, "failed AUTH");
        Err(CmdError::from(CommandError::WrongPass))
    }
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

pub fn hello(s: &mut Session, a: &Args) -> CmdResult {
    let mut proto = s.proto;
    if a.len() >= 2 {
        proto = match strict_version(a.get(1))? {
            2 => Proto::Resp2,
            3 => Proto::Resp3,
            _ => {
                return Err(CmdError::from(CommandError::Raw(
                    "NOPROTO unsupported protocol version".into(),
                )));
            }
        };
    }
    let (mut auth, mut name) = (None, None);
    let mut i = 2;
    while i < a.len() {
        let w = a.get(i);
        if eq(w, "auth") && i + 2 < a.len() {
            auth = Some((a.get(i + 1), a.get(i + 2)));
            i += 3;
        } else if eq(w, "setname") && i + 1 < a.len() {
            name = Some(a.bytes(i + 1));
            i += 2;
        } else {
            return Err(CmdError::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(w)
            )));
        }
    }
    if let Some((user, pass)) = auth {
        if !check_password(s, Some(user), pass) {
            return Err(CmdError::from(CommandError::WrongPass));
        }
        s.authenticated = true;
    }
    if !s.authenticated {
        return Err(CmdError::from(CommandError::Raw(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
             AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
             version at the same time"
                .into(),
        )));
    }
    if let Some(n) = name {
        if !valid_name(&n) {
            return Err(CmdError::err(
                "Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        s.handle.set_name(n);
    }
    s.proto = proto;
    s.handle.set_resp(if proto == Proto::Resp3 { 3 } else { 2 });
    Ok(Reply::Map(vec![
        (Reply::str("server"), Reply::str("redis")),
        (Reply::str("version"), Reply::str(crate::REDIS_VERSION)),
        (
            Reply::str("proto"),
            Reply::Int(if proto == Proto::Resp3 { 3 } else { 2 }),
        ),
        (Reply::str("id"), Reply::Int(s.handle.id as i64)),
        (Reply::str("mode"), Reply::str("standalone")),
        (Reply::str("role"), Reply::str("master")),
        (Reply::str("modules"), Reply::Array(vec![])),
    ]))
}

fn strict_version(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64(b).map_err(|_| CmdError::err("Protocol version is not an integer or out of range"))
}

/// SELECT: database 0 only. In cluster mode any other index is refused as Redis Cluster
/// refuses it; a standalone shard answers as a Redis with `databases 1`.
pub fn select(s: &Session, a: &Args) -> CmdResult {
    let db = parse_i64(a.get(1))?;
    if i32::try_from(db).is_err() {
        // Redis's `getIntFromObjectOrReply`.
        return Err(CmdError::err(
            "value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    match db {
        0 => Ok(Reply::Ok),
        _ if s.shared.cluster.get().is_some() => {
            Err(CmdError::err("SELECT is not allowed in cluster mode"))
        }
        _ => Err(CmdError::err("DB index is out of range")),
    }
}

pub fn reset(s: &mut Session) -> CmdResult {
    super::tracking::off(s);
    super::multi::reset(s);
    super::pubsub::off(s);
    s.proto = Proto::Resp2;
    s.handle.set_resp(2);
    s.handle.set_name(Bytes::new());
    s.authenticated = s.shared.requirepass().is_none();
    Ok(Reply::Simple("RESET"))
}

pub fn client(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    // Listings show this connection's current command, as Redis does.
    s.handle.record_activity(s.now, "client");
    match id {
        CommandId::ClientId => Ok(Reply::Int(s.handle.id as i64)),
        CommandId::ClientSetname => {
            if !valid_name(a.get(2)) {
                return Err(CmdError::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            s.handle.set_name(a.bytes(2));
            Ok(Reply::Ok)
        }
        CommandId::ClientGetname => {
            let n = s.handle.name();
            Ok(if n.is_empty() {
                Reply::Nil
            } else {
                Reply::Bulk(n)
            })
        }
        CommandId::ClientSetinfo => {
            let v = a.bytes(3);
            if !v.iter().all(|&c| (b'!'..=b'~').contains(&c)) {
                return Err(CmdError::err(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(a.get(2)).to_ascii_uppercase()
                )));
            }
            if eq(a.get(2), "lib-name") {
                s.handle.set_lib(Some(v), None);
            } else if eq(a.get(2), "lib-ver") {
                s.handle.set_lib(None, Some(v));
            } else {
                return Err(CmdError::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(a.get(2))
                )));
            }
            Ok(Reply::Ok)
        }
        CommandId::ClientInfo => Ok(Reply::Verbatim(format!("{}\n", s.handle.info_line(s.now)))),
        CommandId::ClientList => client_list(s, a),
        CommandId::ClientKill => client_kill(s, a),
        CommandId::ClientNoEvict => {
            if eq(a.get(2), "on") || eq(a.get(2), "off") {
                Ok(Reply::Ok)
            } else {
                Err(CmdError::Syntax)
            }
        }
        _ => Ok(super::server::help(
            "CLIENT",
            &[
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>,",
                "    USER <username>, SKIPME (YES|NO), MAXAGE <seconds>.",
                "LIST [TYPE normal] [ID <id> ...]",
                "    Return information about client connections.",
                "NO-TOUCH (ON|OFF)",
                "    Will not touch LRU/LFU stats when this mode is on.",
                "PAUSE <timeout> [WRITE|ALL]",
                "    Suspend all, or just write, clients for <timeout> milliseconds.",
                "REPLY (ON|OFF|SKIP)",
                "    Control the replies sent to the current connection.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "UNPAUSE",
                "    Stop the current client pause, resuming traffic.",
            ],
        )),
    }
}

fn client_list(s: &mut Session, a: &Args) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<bool> = None;
    let mut i = 2;
    while i < a.len() {
        if eq(a.get(i), "type") && i + 1 < a.len() {
            let t = a.get(i + 1);
            if !["normal", "master", "replica", "slave", "pubsub"]
                .iter()
                .any(|n| eq(t, n))
            {
                return Err(CmdError::err(format!(
                    "Unknown client type '{}'",
                    String::from_utf8_lossy(t)
                )));
            }
            // Subscribed clients are of type pubsub, the others normal (no replicas here).
            kind = match () {
                _ if eq(t, "normal") => Some(false),
                _ if eq(t, "pubsub") => Some(true),
                _ => return Ok(Reply::Verbatim(String::new())),
            };
            i += 2;
        } else if eq(a.get(i), "id") && i + 1 < a.len() {
            let mut v = Vec::new();
            i += 1;
            while i < a.len() {
                v.push(
                    parse_i64(a.get(i))
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| CmdError::err("Invalid client ID"))?
                        as u64,
                );
                i += 1;
            }
            ids = Some(v);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut out = String::new();
    for c in s.shared.clients.snapshot() {
        if ids.as_ref().is_none_or(|v| v.contains(&c.id))
            && kind.is_none_or(|p| p == c.pubsub.subscribed())
        {
            out.push_str(&c.info_line(s.now));
            out.push('\n');
        }
    }
    Ok(Reply::Verbatim(out))
}

fn client_kill(s: &mut Session, a: &Args) -> CmdResult {
    let clients = s.shared.clients.snapshot();
    if a.len() == 3 {
        let addr = String::from_utf8_lossy(a.get(2));
        let target = clients
            .iter()
            .find(|c| c.addr.to_string() == addr)
            .ok_or_else(|| CmdError::err("No such client"))?;
        target.kill.cancel();
        if target.id == s.handle.id {
            s.close_after_reply = true;
        }
        return Ok(Reply::Ok);
    }
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let (mut id, mut addr, mut laddr, mut skipme, mut maxage) = (None, None, None, true, None);
    for kv in a.slice(2).chunks_exact(2) {
        let (k, v) = (&kv[0][..], &kv[1][..]);
        let text = String::from_utf8_lossy(v).into_owned();
        if eq(k, "id") {
            id = Some(
                parse_i64(v)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CmdError::err("client-id should be greater than 0"))?
                    as u64,
            );
        } else if eq(k, "addr") {
            addr = Some(text);
        } else if eq(k, "laddr") {
            laddr = Some(text);
        } else if eq(k, "skipme") {
            skipme = if eq(v, "yes") {
                true
            } else if eq(v, "no") {
                false
            } else {
                return Err(CmdError::Syntax);
            };
        } else if eq(k, "maxage") {
            maxage = Some(parse_i64(v)?);
        } else if eq(k, "user") {
            if v != b"default" {
                return Err(CmdError::err(format!("No such user '{text}'")));
            }
        } else if eq(k, "type") {
            if !eq(v, "normal") {
                return Ok(Reply::Int(0));
            }
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut killed = 0;
    for c in clients {
        let matches = id.is_none_or(|i| i == c.id)
            && addr.as_ref().is_none_or(|x| *x == c.addr.to_string())
            && laddr.as_ref().is_none_or(|x| *x == c.laddr.to_string())
            && maxage.is_none_or(|m| c.age_secs(s.now) as i64 >= m)
            && !(skipme && c.id == s.handle.id);
        if matches {
            c.kill.cancel();
            if c.id == s.handle.id {
                s.close_after_reply = true;
            }
            killed += 1;
        }
    }
    Ok(Reply::Int(killed))
}
