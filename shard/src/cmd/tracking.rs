//! CLIENT TRACKING, CACHING, TRACKINGINFO and GETREDIR (server-assisted client-side caching).
//! The invalidation machinery lives in `crate::tracking`; this file parses the commands and
//! keeps the connection's settings, with Redis's replies and error texts.

use bytes::Bytes;
use membership::command::{CommandId, CommandSpec, Flags};

use super::args::{eq, parse_i64};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Reply};
use crate::tracking::Options;

pub fn client(s: &mut Session, id: CommandId, a: &Args) -> CmdResult {
    match id {
        CommandId::ClientTracking => tracking(s, a),
        CommandId::ClientCaching => caching(s, a),
        CommandId::ClientGetredir => Ok(Reply::Int(match &s.tracking {
            None => -1,
            Some(o) => o.redirect as i64,
        })),
        _ => Ok(info(s)),
    }
}

fn tracking(s: &mut Session, a: &Args) -> CmdResult {
    let on = if eq(a.get(2), "on") {
        true
    } else if eq(a.get(2), "off") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let mut o = Options::default();
    let mut i = 3;
    while i < a.len() {
        let opt = a.get(i);
        if eq(opt, "redirect") && i + 1 < a.len() {
            if o.redirect != 0 {
                return Err(CmdError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            i += 1;
            o.redirect = u64::try_from(parse_i64(a.get(i))?)
                .map_err(|_| CmdError::err("The client ID you want redirect to does not exist"))?;
        } else if eq(opt, "bcast") {
            o.bcast = true;
        } else if eq(opt, "optin") {
            o.optin = true;
        } else if eq(opt, "optout") {
            o.optout = true;
        } else if eq(opt, "noloop") {
            o.noloop = true;
        } else if eq(opt, "prefix") && i + 1 < a.len() {
            i += 1;
            o.prefixes.push(a.bytes(i));
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if !on {
        off(s);
        return Ok(Reply::Ok);
    }
    if !o.prefixes.is_empty() && !o.bcast {
        return Err(CmdError::err(
            "PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if let Some(cur) = &s.tracking {
        if cur.bcast != o.bcast {
            return Err(CmdError::err(
                "You can't switch BCAST mode on/off before disabling tracking for this client, \
                 and then re-enabling it with a different mode.",
            ));
        }
        if (cur.optin && o.optout) || (cur.optout && o.optin) {
            return Err(CmdError::err(
                "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, \
                 and then re-enabling it with a different mode.",
            ));
        }
    }
    if o.optin && o.optout {
        return Err(CmdError::err(
            "You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if o.bcast && (o.optin || o.optout) {
        return Err(CmdError::err(
            "OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    // Prefixes accumulate over calls, as in Redis; none may cover another.
    let mut prefixes: Vec<Bytes> = s
        .tracking
        .as_ref()
        .map(|c| c.prefixes.clone())
        .unwrap_or_default();
    for p in &o.prefixes {
        if let Some(q) = prefixes
            .iter()
            .find(|q| q.starts_with(p) || p.starts_with(q))
            .filter(|q| *q != p)
        {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client \
                 must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(q)
            )));
        }
        if !prefixes.contains(p) {
            prefixes.push(p.clone());
        }
    }
    o.prefixes = prefixes;
    if let Some(cur) = &s.tracking {
        o.optin |= cur.optin;
        o.optout |= cur.optout;
        o.noloop |= cur.noloop;
    }
    let own = s.handle.inbox.clone();
    let target = if o.redirect == 0 {
        own.clone()
    } else {
        s.shared
            .clients
            .get(o.redirect)
            .map(|h| h.inbox.clone())
            .ok_or_else(|| CmdError::err("The client ID you want redirect to does not exist"))?
    };
    s.shared
        .tracking
        .enable(s.handle.id, o.clone(), own, target);
    s.tracking = Some(o);
    Ok(Reply::Ok)
}

/// Turns tracking off for the connection (CLIENT TRACKING off, RESET, disconnect).
pub fn off(s: &mut Session) {
    if s.tracking.take().is_some() {
        s.shared.tracking.disable(s.handle.id);
    }
    s.caching_next = None;
}

fn caching(s: &mut Session, a: &Args) -> CmdResult {
    let Some(t) = &s.tracking else {
        return Err(caching_misuse());
    };
    if !t.optin && !t.optout {
        return Err(caching_misuse());
    }
    if eq(a.get(2), "yes") {
        if !t.optin {
            return Err(CmdError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
        s.caching_next = Some(true);
    } else if eq(a.get(2), "no") {
        if !t.optout {
            return Err(CmdError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
        s.caching_next = Some(false);
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(Reply::Ok)
}

fn caching_misuse() -> CmdError {
    CmdError::err(
        "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or \
         OPTOUT mode enabled",
    )
}

fn info(s: &Session) -> Reply {
    let status = |v: &'static str| Reply::Bulk(Bytes::from_static(v.as_bytes()));
    let (flags, redirect, prefixes) = match &s.tracking {
        None => (vec![status("off")], -1, Vec::new()),
        Some(t) => {
            let mut f = vec![status("on")];
            for (set, name) in [
                (t.bcast, "bcast"),
                (t.optin, "optin"),
                (t.optout, "optout"),
                (s.caching_next == Some(true), "caching-yes"),
                (s.caching_next == Some(false), "caching-no"),
                (t.noloop, "noloop"),
            ] {
                if set {
                    f.push(status(name));
                }
            }
            if t.redirect != 0 && s.shared.clients.get(t.redirect).is_none() {
                f.push(status("broken_redirect"));
            }
            let p = t.prefixes.iter().cloned().map(Reply::Bulk).collect();
            (f, t.redirect as i64, p)
        }
    };
    Reply::Map(vec![
        (status("flags"), Reply::Set(flags)),
        (status("redirect"), Reply::Int(redirect)),
        (status("prefixes"), Reply::Array(prefixes)),
    ])
}

/// Before a command runs: a tracking connection in default mode registers interest in the
/// keys it reads. Registering BEFORE the read means a write racing with it always sends an
/// invalidation after the value the reader may cache (never a stale value left untracked).
#[inline]
pub fn before(s: &mut Session, spec: &CommandSpec, a: &Args) {
    let caching = s.caching_next.take();
    let Some(t) = &s.tracking else { return };
    if t.bcast || !spec.has_keys() || !spec.flags.contains(Flags::READONLY) {
        return;
    }
    let wanted = if t.optin {
        caching == Some(true)
    } else if t.optout {
        caching != Some(false)
    } else {
        true
    };
    if wanted {
        s.shared.tracking.remember(
            s.handle.id,
            spec.key_positions(a.len(), |i| a.get(i)).map(|i| a.get(i)),
        );
    }
}

/// After a command ran: the keys a write names are invalidated for every tracker.
#[inline]
pub fn after(s: &Session, spec: &CommandSpec, a: &Args, ok: bool) {
    let t = &s.shared.tracking;
    if !t.is_active() {
        return;
    }
    if matches!(spec.id, CommandId::Flushall | CommandId::Flushdb) {
        if ok {
            t.invalidate_all();
        }
    } else if spec.flags.contains(Flags::WRITE) {
        // Only the keys the write may change, as Redis signals (not SUNIONSTORE's sources).
        for i in spec.written_key_positions(a.len(), |i| a.get(i)) {
            t.invalidate(a.get(i), s.handle.id);
        }
    }
}
