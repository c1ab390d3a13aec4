//! Commands the proxy answers itself: connection state (PING, ECHO, HELLO, AUTH, SELECT, QUIT,
//! RESET, CLIENT), COMMAND (from the membership table), INFO (the proxy plus a per-shard
//! summary), CONFIG GET (a few read-only values), TIME.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use membership::command::{COMMANDS, CommandId, CommandSpec, Flags};
use membership::{Mode, lookup};

use crate::REDIS_VERSION;
use crate::backend::State;
use crate::error::CmdError;
use crate::protocol::{Proto, Reply, Request};
use crate::server::Shared;
use crate::session::Session;
use crate::topology::Topology;

pub fn execute(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    spec: &'static CommandSpec,
    req: &Request,
) -> Reply {
    match run(sess, shared, topo, spec, req) {
        Ok(r) => r,
        Err(e) => e.into(),
    }
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    spec: &'static CommandSpec,
    req: &Request,
) -> Result<Reply, CmdError> {
    let argc = req.argc();
    Ok(match spec.id {
        CommandId::Ping => match argc {
            1 => Reply::Status("PONG".into()),
            2 => bulk(req.arg(1)),
            _ => return Err(CmdError::WrongArity("ping".into())),
        },
        CommandId::Echo => bulk(req.arg(1)),
        CommandId::Hello => hello(sess, shared, req)?,
        CommandId::Auth => {
            let (user, pass) = match argc {
                2 => (&b"default"[..], req.arg(1)),
                3 => (req.arg(1), req.arg(2)),
                _ => return Err(CmdError::Raw("ERR syntax error".into())),
            };
            auth(sess, shared, user, pass, argc == 2)?;
            Reply::ok()
        }
        CommandId::Select => match req.arg(1) {
            b"0" => Reply::ok(),
            _ => return Err(CmdError::err("DB index is out of range")),
        },
        CommandId::Quit => {
            sess.close = true;
            Reply::ok()
        }
        CommandId::Reset => {
            sess.proto = Proto::Resp2;
            sess.authed = shared.config.requirepass.is_none();
            update_client(shared, sess.id, |c| {
                c.name.clear();
                c.resp = 2;
            });
            Reply::Status("RESET".into())
        }
        CommandId::ClientId => Reply::Int(sess.id as i64),
        CommandId::ClientSetname => {
            let name = req.arg(2);
            if name.iter().any(|&b| b <= b' ' || b > b'~') {
                return Err(CmdError::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            update_client(shared, sess.id, |c| c.name = lossy(name));
            Reply::ok()
        }
        CommandId::ClientGetname => {
            let name = shared
                .clients
                .lock()
                .get(&sess.id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            if name.is_empty() {
                Reply::Nil
            } else {
                Reply::str(&name)
            }
        }
        CommandId::ClientSetinfo => {
            let value = lossy(req.arg(3));
            match req.arg(2).to_ascii_lowercase().as_slice() {
                b"lib-name" => update_client(shared, sess.id, |c| c.lib_name = value),
                b"lib-ver" => update_client(shared, sess.id, |c| c.lib_ver = value),
                _ => {
                    return Err(CmdError::err(format!(
                        "Unrecognized option '{}'",
                        lossy(req.arg(2))
                    )));
                }
            }
            Reply::ok()
        }
        CommandId::ClientInfo => Reply::Verbatim(client_line(shared, sess.id) + "\n"),
        CommandId::ClientList => {
            let ids: Vec<u64> = shared.clients.lock().keys().copied().collect();
            let mut s = String::new();
            for id in ids {
                s.push_str(&client_line(shared, id));
                s.push('\n');
            }
            Reply::Verbatim(s)
        }
        CommandId::ClientNoEvict => Reply::ok(),
        CommandId::ClientTracking
        | CommandId::ClientCaching
        | CommandId::ClientTrackinginfo
        | CommandId::ClientGetredir => {
            return Err(CmdError::Unsupported {
                name: format!("client {}", spec.name),
                reason: "client-side caching needs a direct connection to the shards",
            });
        }
        CommandId::ClientKill => {
            return Err(CmdError::Unsupported {
                name: "client kill".into(),
                reason: "clients are not addressable across proxies",
            });
        }
        CommandId::ClientHelp => help(
            "CLIENT",
            &[
                "ID",
                "SETNAME <name>",
                "GETNAME",
                "SETINFO <option> <value>",
                "INFO",
                "LIST",
            ],
        ),
        CommandId::Command => Reply::Array(COMMANDS.iter().map(|c| info_entry(c, c)).collect()),
        CommandId::CommandCount => Reply::Int(COMMANDS.len() as i64),
        CommandId::CommandInfo => Reply::Array(if argc == 2 {
            COMMANDS.iter().map(|c| info_entry(c, c)).collect()
        } else {
            req.args()
                .skip(2)
                .map(|n| find(n).map_or(Reply::Nil, |(t, s)| info_entry(t, s)))
                .collect()
        }),
        CommandId::CommandDocs => Reply::Map(if argc == 2 {
            COMMANDS
                .iter()
                .map(|c| (Reply::str(c.name), docs_entry(c)))
                .collect()
        } else {
            req.args()
                .skip(2)
                .filter_map(|n| find(n).map(|(t, s)| (Reply::str(&full_name(t, s)), docs_entry(s))))
                .collect()
        }),
        CommandId::CommandList => {
            Reply::Array(COMMANDS.iter().map(|c| Reply::str(c.name)).collect())
        }
        CommandId::CommandGetkeys => {
            let Some(target) = lookup(req.arg(2)) else {
                return Err(CmdError::err("Invalid command specified"));
            };
            let sub: Vec<&[u8]> = req.args().skip(2).collect();
            let (t, s) = match target.is_container() {
                true => match sub.get(1).and_then(|n| target.subcommand(n)) {
                    Some(s) => (target, s),
                    None => return Err(CmdError::err("Invalid command specified")),
                },
                false => (target, target),
            };
            let _ = t;
            if !s.arity_ok(sub.len()) {
                return Err(CmdError::err(
                    "Invalid number of arguments specified for command",
                ));
            }
            let keys: Vec<Reply> = s
                .keys
                .indices(sub.len())
                .filter_map(|i| sub.get(i))
                .map(|k| bulk(k))
                .collect();
            if keys.is_empty() {
                return Err(CmdError::err("The command has no key arguments"));
            }
            Reply::Array(keys)
        }
        CommandId::CommandHelp => help(
            "COMMAND",
            &[
                "(no subcommand)",
                "COUNT",
                "LIST",
                "INFO [<command-name> ...]",
                "DOCS [<command-name> ...]",
                "GETKEYS <full-command>",
            ],
        ),
        CommandId::Info => Reply::Verbatim(info(shared, topo, req)),
        CommandId::ConfigGet => config_get(shared, req),
        CommandId::ConfigSet => {
            return Err(CmdError::Unsupported {
                name: "config set".into(),
                reason: "configure the proxy through its file, environment or flags",
            });
        }
        CommandId::ConfigResetstat => Reply::ok(),
        CommandId::ConfigHelp => help("CONFIG", &["GET <pattern>", "RESETSTAT"]),
        CommandId::ObjectHelp => help(
            "OBJECT",
            &[
                "ENCODING <key>",
                "FREQ <key>",
                "IDLETIME <key>",
                "REFCOUNT <key>",
            ],
        ),
        CommandId::Time => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Reply::Array(vec![
                Reply::str(&now.as_secs().to_string()),
                Reply::str(&now.subsec_micros().to_string()),
            ])
        }
        CommandId::Asking => {
            return Err(CmdError::Unsupported {
                name: "asking".into(),
                reason: "the proxy follows redirects itself",
            });
        }
        CommandId::Readonly | CommandId::Readwrite => {
            return Err(CmdError::Unsupported {
                name: spec.name.into(),
                reason: "the proxy does not route to replicas",
            });
        }
        CommandId::Shutdown => {
            return Err(CmdError::Unsupported {
                name: "shutdown".into(),
                reason: "stop the proxy or the shards with a signal",
            });
        }
        _ => {
            return Err(CmdError::Unsupported {
                name: spec.name.into(),
                reason: "not routable",
            });
        }
    })
}

fn update_client(shared: &Shared, id: u64, f: impl FnOnce(&mut crate::server::ClientEntry)) {
    if let Some(c) = shared.clients.lock().get_mut(&id) {
        f(c);
    }
}

fn client_line(shared: &Shared, id: u64) -> String {
    let clients = shared.clients.lock();
    let Some(c) = clients.get(&id) else {
        return String::new();
    };
    format!(
        "id={id} addr={} laddr={} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|info user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.addr,
        c.laddr,
        c.name,
        c.created.elapsed().as_secs(),
        c.resp,
        c.lib_name,
        c.lib_ver
    )
}

fn auth(
    sess: &mut Session,
    shared: &Shared,
    user: &[u8],
    pass: &[u8],
    legacy: bool,
) -> Result<(), CmdError> {
    match &shared.config.requirepass {
        None if legacy => Err(CmdError::AuthNotConfigured),
        None => {
            if user == b"default" {
                Ok(())
            } else {
                Err(CmdError::WrongPass)
            }
        }
        Some(p) => {
            if user == b"default" && p.as_bytes() == pass {
                sess.authed = true;
                Ok(())
            } else {
                Err(CmdError::WrongPass)
            }
        }
    }
}

fn hello(sess: &mut Session, shared: &Shared, req: &Request) -> Result<Reply, CmdError> {
    let mut proto = sess.proto;
    let mut i = 1;
    if req.argc() >= 2 {
        proto = match req.arg(1) {
            b"2" => Proto::Resp2,
            b"3" => Proto::Resp3,
            v if std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some() =>
            {
                return Err(CmdError::Raw("NOPROTO unsupported protocol version".into()));
            }
            _ => {
                return Err(CmdError::err(
                    "Protocol version is not an integer or out of range",
                ));
            }
        };
        i = 2;
    }
    let mut name = None;
    while i < req.argc() {
        let opt = req.arg(i).to_ascii_lowercase();
        match opt.as_slice() {
            b"auth" if i + 2 < req.argc() => {
                auth(sess, shared, req.arg(i + 1), req.arg(i + 2), false)?;
                i += 3;
            }
            b"setname" if i + 1 < req.argc() => {
                name = Some(lossy(req.arg(i + 1)));
                i += 2;
            }
            _ => {
                return Err(CmdError::err(format!(
                    "Syntax error in HELLO option '{}'",
                    lossy(req.arg(i))
                )));
            }
        }
    }
    if !sess.authed {
        return Err(CmdError::NoAuth);
    }
    sess.proto = proto;
    let resp = if proto == Proto::Resp3 { 3 } else { 2 };
    update_client(shared, sess.id, |c| {
        c.resp = resp;
        if let Some(n) = name {
            c.name = n;
        }
    });
    Ok(Reply::Map(vec![
        (Reply::str("server"), Reply::str("redis")),
        (Reply::str("version"), Reply::str(REDIS_VERSION)),
        (Reply::str("proto"), Reply::Int(i64::from(resp))),
        (Reply::str("id"), Reply::Int(sess.id as i64)),
        (Reply::str("mode"), Reply::str("standalone")),
        (Reply::str("role"), Reply::str("master")),
        (Reply::str("modules"), Reply::Array(vec![])),
    ]))
}

fn help(container: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Status(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    out.extend(lines.iter().map(|l| Reply::Status((*l).to_string())));
    out.push(Reply::Status("HELP".into()));
    out.push(Reply::Status("    Print this help.".into()));
    Reply::Array(out)
}

fn find(name: &[u8]) -> Option<(&'static CommandSpec, &'static CommandSpec)> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => {
            let top = lookup(&name[..bar])?;
            Some((top, top.subcommand(name.get(bar + 1..)?)?))
        }
        None => lookup(name).map(|c| (c, c)),
    }
}

fn full_name(top: &CommandSpec, spec: &CommandSpec) -> String {
    if std::ptr::eq(top, spec) {
        top.name.to_string()
    } else {
        format!("{}|{}", top.name, spec.name)
    }
}

fn info_entry(top: &'static CommandSpec, spec: &'static CommandSpec) -> Reply {
    let flags: Vec<Reply> = spec
        .flags
        .names()
        .map(|n| Reply::Status(n.into()))
        .collect();
    let subs: Vec<Reply> = if std::ptr::eq(top, spec) {
        spec.subcommands
            .iter()
            .map(|s| info_entry(top, s))
            .collect()
    } else {
        vec![]
    };
    let _ = Flags::NONE;
    Reply::Array(vec![
        Reply::str(&full_name(top, spec)),
        Reply::Int(i64::from(spec.arity)),
        Reply::Array(flags),
        Reply::Int(i64::from(spec.keys.first)),
        Reply::Int(i64::from(spec.keys.last)),
        Reply::Int(i64::from(spec.keys.step)),
        Reply::Array(
            spec.acl_categories()
                .into_iter()
                .map(|c| Reply::Status(c.into()))
                .collect(),
        ),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(subs),
    ])
}

fn docs_entry(spec: &CommandSpec) -> Reply {
    Reply::Map(vec![
        (Reply::str("summary"), Reply::str(spec.summary)),
        (Reply::str("since"), Reply::str(spec.since)),
        (Reply::str("group"), Reply::str(spec.group)),
    ])
}

fn config_get(shared: &Shared, req: &Request) -> Reply {
    let c = &shared.config;
    let values: Vec<(&str, String)> = vec![
        ("port", shared.local_addr.port().to_string()),
        ("bind", c.bind.join(" ")),
        ("maxclients", c.maxclients.to_string()),
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("databases", "1".into()),
        ("proto-max-bulk-len", c.proto_max_bulk_len.to_string()),
        ("cluster-enabled", "no".into()),
        ("backend-connections", c.backend_connections.to_string()),
        ("seeds", c.seeds.join(",")),
    ];
    let mut out = Vec::new();
    for pat in req.args().skip(2) {
        let pat = String::from_utf8_lossy(pat).to_ascii_lowercase();
        for (k, v) in &values {
            if glob(&pat, k)
                && !out
                    .iter()
                    .any(|(o, _): &(Reply, Reply)| *o == Reply::str(k))
            {
                out.push((Reply::str(k), Reply::str(v)));
            }
        }
    }
    Reply::Map(out)
}

/// `*` and `?` glob (enough for CONFIG GET patterns).
fn glob(pat: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pat.as_bytes(), s.as_bytes())
}

fn info(shared: &Shared, topo: &Topology, req: &Request) -> String {
    let section = if req.argc() > 1 {
        String::from_utf8_lossy(req.arg(1)).to_ascii_lowercase()
    } else {
        "default".into()
    };
    let want =
        |s: &str| matches!(section.as_str(), "default" | "all" | "everything") || section == s;
    let mut out = String::new();
    let st = &shared.stats;
    if want("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nautocache_proxy_version:{}\r\nredis_mode:standalone\r\nproxy_mode:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            match topo.mode() {
                Mode::Cluster => "cluster",
                Mode::Static => "static",
            },
            std::process::id(),
            shared.run_id,
            shared.local_addr.port(),
            shared.started.elapsed().as_secs(),
        ));
    }
    if want("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            shared.clients.lock().len(),
            shared.config.maxclients
        ));
    }
    if want("stats") {
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\ntotal_commands_processed:{}\r\nredirects_moved:{}\r\nredirects_ask:{}\r\nretries_tryagain:{}\r\ntopology_refreshes:{}\r\ntopology_epoch:{}\r\n\r\n",
            st.total_connections.load(Relaxed),
            st.rejected_connections.load(Relaxed),
            st.total_commands.load(Relaxed),
            st.moved.load(Relaxed),
            st.ask.load(Relaxed),
            st.tryagain.load(Relaxed),
            shared.topology.refreshes.load(Relaxed),
            topo.epoch,
        ));
    }
    if want("hotkeys") {
        out.push_str(&shared.hotkeys.info());
    }
    if want("shards") {
        out.push_str("# Shards\r\n");
        for (i, b) in topo.backends.iter().enumerate() {
            let (live, total) = b.live();
            let status = match b.state() {
                State::Up => "up",
                State::Down => "down",
                State::Connecting => "connecting",
            };
            out.push_str(&format!(
                "shard{i}:addr={},slots={},status={status},connections={live}/{total},requests={},failures={}",
                b.addr,
                topo.map.slot_count(i),
                b.requests.load(Relaxed),
                b.failures.load(Relaxed),
            ));
            if b.state() == State::Down {
                out.push_str(&format!(
                    ",last_error={}",
                    b.last_error().replace([',', '\r', '\n'], " ")
                ));
            }
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
    }
    out
}
