//! Commands the proxy answers itself: connection state (PING, ECHO, HELLO, AUTH, SELECT, QUIT,
//! RESET, CLIENT), COMMAND (from the membership table), TIME, and CLUSTER as a one-node
//! cluster that owns every slot at the proxy's own address (as predixy and Envoy do), so
//! cluster-mode clients work through it. Also the proxy's own part of INFO and CONFIG GET,
//! which [`crate::aggregate`] merges with the shards' replies.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use membership::Mode;
use membership::command::{CommandId, CommandSpec, help, reply};
use shard::store::glob::glob_match;

use crate::REDIS_VERSION;
use crate::backend::State;
use crate::client::Session;
use crate::error::CmdError;
use crate::protocol::{Proto, Reply, Request};
use crate::shared::{ClientEntry, Shared};
use crate::topology::Topology;
use membership::resp::CommandError;

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
            _ => return Err(CmdError::from(CommandError::WrongArity("ping".into()))),
        },
        CommandId::Echo => bulk(req.arg(1)),
        CommandId::Hello => hello(sess, shared, req)?,
        CommandId::Auth => {
            let (user, pass) = match argc {
                2 => (&b"default"[..], req.arg(1)),
                3 => (req.arg(1), req.arg(2)),
                _ => return Err(CmdError::from(CommandError::Raw("ERR syntax error".into()))),
            };
            auth(sess, shared, user, pass, argc == 2)?;
            Reply::ok()
        }
        // The proxy presents a cluster (`cluster_enabled:1`): Redis Cluster's answers.
        CommandId::Select => match membership::resp::strict_i64(req.arg(1)) {
            Some(0) => Reply::ok(),
            Some(n) if i32::try_from(n).is_ok() => {
                return Err(CmdError::err("SELECT is not allowed in cluster mode"));
            }
            Some(_) => {
                return Err(CmdError::err(
                    "value is out of range, value must between -2147483648 and 2147483647",
                ));
            }
            None => return Err(CmdError::err("value is not an integer or out of range")),
        },
        CommandId::Quit => {
            sess.close = true;
            Reply::ok()
        }
        CommandId::Reset => {
            shared.pubsub.remove_client(&mut sess.pubsub);
            sess.tx = None;
            sess.watch = None;
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
        CommandId::ClientReply => {
            return Err(CmdError::Unsupported {
                name: "client reply".into(),
                reason: "the proxy answers every request in order",
            });
        }
        CommandId::ClientNoTouch => {
            return Err(CmdError::Unsupported {
                name: "client no-touch".into(),
                reason: "the shards' connections are shared by the proxy's clients",
            });
        }
        CommandId::LatencyHelp => help(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return the latency report of one shard.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class of every shard.",
                "LATEST",
                "    Return the latest latency samples for all events of every shard.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes on every shard.",
            ],
        ),
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
        CommandId::Command
        | CommandId::CommandCount
        | CommandId::CommandInfo
        | CommandId::CommandDocs
        | CommandId::CommandList
        | CommandId::CommandGetkeys
        | CommandId::CommandHelp => {
            let argv: Vec<&[u8]> = req.args().collect();
            reply::command(spec.id, &argv, |pattern, name| {
                glob_match(pattern, name, true)
            })
            .map_err(|e| CmdError::err(e.message()))?
        }
        CommandId::ConfigHelp => help(
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value> on every shard.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
            ],
        ),
        CommandId::MemoryHelp => help(
            "MEMORY",
            &[
                "DOCTOR",
                "    Return one shard's memory problems report.",
                "MALLOC-STATS",
                "    Return one shard's allocator statistics.",
                "PURGE",
                "    Purge dirty pages on every shard.",
                "STATS",
                "    Return one shard's memory usage details.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value.",
            ],
        ),
        CommandId::DebugHelp => help(
            "DEBUG",
            &[
                "OBJECT <key>",
                "    Show low level info about the <key> and associated value.",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Turn the background expiry of every shard off (0) or on (1).",
                "SLEEP <seconds>",
                "    Stop every shard for <seconds>. Decimals allowed.",
            ],
        ),
        CommandId::SlowlogHelp => help(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog of every shard (default: 10,",
                "    -1 mean all).",
                "LEN",
                "    Return the length of the slowlog of every shard, summed.",
                "RESET",
                "    Reset the slowlog of every shard.",
            ],
        ),
        CommandId::ClusterInfo => Reply::Verbatim(cluster_info(topo)),
        CommandId::ClusterMyid => Reply::str(&shared.run_id),
        CommandId::ClusterSlots => {
            let (ip, port) = own_addr(shared, sess.id);
            Reply::Array(vec![Reply::Array(vec![
                Reply::Int(0),
                Reply::Int(i64::from(membership::SLOT_COUNT - 1)),
                Reply::Array(vec![
                    Reply::str(&ip),
                    Reply::Int(i64::from(port)),
                    Reply::str(&shared.run_id),
                    Reply::Map(vec![]),
                ]),
            ])])
        }
        CommandId::ClusterShards => {
            let (ip, port) = own_addr(shared, sess.id);
            let node = Reply::Map(vec![
                (Reply::str("id"), Reply::str(&shared.run_id)),
                (Reply::str("port"), Reply::Int(i64::from(port))),
                (Reply::str("ip"), Reply::str(&ip)),
                (Reply::str("endpoint"), Reply::str(&ip)),
                (Reply::str("role"), Reply::str("master")),
                (Reply::str("replication-offset"), Reply::Int(0)),
                (Reply::str("health"), Reply::str(cluster_health(topo))),
            ]);
            Reply::Array(vec![Reply::Map(vec![
                (
                    Reply::str("slots"),
                    Reply::Array(vec![
                        Reply::Int(0),
                        Reply::Int(i64::from(membership::SLOT_COUNT - 1)),
                    ]),
                ),
                (Reply::str("nodes"), Reply::Array(vec![node])),
            ])])
        }
        CommandId::ClusterNodes => {
            let (ip, port) = own_addr(shared, sess.id);
            // No cluster bus: its port is 0, as Redis shows for a node it has no bus address of.
            Reply::Verbatim(format!(
                "{} {}@0 myself,master - 0 0 1 connected 0-{}\n",
                shared.run_id,
                membership::topology::join_host_port(&ip, port),
                membership::SLOT_COUNT - 1
            ))
        }
        CommandId::ClusterKeyslot => {
            Reply::Int(i64::from(membership::Slot::for_key(req.arg(2)).get()))
        }
        CommandId::ClusterHelp => help(
            "CLUSTER",
            &[
                "COUNTKEYSINSLOT <slot>",
                "    Return the number of keys in <slot>.",
                "GETKEYSINSLOT <slot> <count>",
                "    Return key names stored by current node in a slot.",
                "INFO",
                "    Return information about the cluster.",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
                "MYID",
                "    Return the node id.",
                "NODES",
                "    Return cluster configuration seen by node. Output format:",
                "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
                "SHARDS",
                "    Return information about slot range mappings and the nodes associated with them.",
                "SLOTS",
                "    Return information about slots range mappings. Each range is made of:",
                "    start, end, master and replicas IP addresses, ports and ids",
            ],
        ),
        CommandId::ClusterMigrate => {
            return Err(CmdError::Unsupported {
                name: "cluster migrate".into(),
                reason: "send it to the shard that owns the slots",
            });
        }
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
        // The one-node cluster has no replicas: reads go to the shards' masters either way, so
        // a cluster client's READONLY changes nothing and is acknowledged, as a master does.
        CommandId::Readonly | CommandId::Readwrite => Reply::ok(),
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

fn update_client(shared: &Shared, id: u64, f: impl FnOnce(&mut ClientEntry)) {
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
                Err(CmdError::from(CommandError::WrongPass))
            }
        }
        Some(p) => {
            if user == b"default" && p.as_bytes() == pass {
                sess.authed = true;
                Ok(())
            } else {
                Err(CmdError::from(CommandError::WrongPass))
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
                return Err(CmdError::from(CommandError::Raw(
                    "NOPROTO unsupported protocol version".into(),
                )));
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
        return Err(CmdError::from(CommandError::NoAuth));
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
        (Reply::str("mode"), Reply::str("cluster")),
        (Reply::str("role"), Reply::str("master")),
        (Reply::str("modules"), Reply::Array(vec![])),
    ]))
}

/// The parameters the proxy answers for itself in CONFIG GET (its own listener, limits and
/// password, not the shards'), those matching the request's patterns. The shards' own
/// `requirepass` (the proxy's backend password) is never shown through the proxy.
pub fn config_own(shared: &Shared, req: &Request) -> Vec<(String, String)> {
    let c = &shared.config;
    let values: [(&str, String); 9] = [
        ("port", shared.local_addr.port().to_string()),
        ("bind", c.bind.join(" ")),
        ("maxclients", c.maxclients.to_string()),
        ("requirepass", c.requirepass.clone().unwrap_or_default()),
        ("databases", "1".into()),
        ("proto-max-bulk-len", c.proto_max_bulk_len.to_string()),
        ("cluster-enabled", "yes".into()),
        ("backend-connections", c.backend_connections.to_string()),
        ("seeds", c.seeds.join(",")),
    ];
    let patterns: Vec<&[u8]> = req.args().skip(2).collect();
    values
        .into_iter()
        .filter(|(k, _)| patterns.iter().any(|p| glob_match(p, k.as_bytes(), true)))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// CLUSTER INFO of the one-node cluster: every slot is assigned to it once the slot map covers
/// them all; slots of a shard that is down count as failed and the state is then `fail`, as
/// a Redis Cluster reports slots it cannot serve.
fn cluster_info(topo: &Topology) -> String {
    let total = usize::from(membership::SLOT_COUNT);
    let assigned = total - topo.map.unowned();
    let failed: usize = topo
        .backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.state() == State::Down)
        .map(|(i, _)| topo.map.slot_count(i))
        .sum();
    let state = if assigned == total && failed == 0 {
        "ok"
    } else {
        "fail"
    };
    format!(
        "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{failed}\r\ncluster_known_nodes:1\r\ncluster_size:1\r\ncluster_current_epoch:1\r\ncluster_my_epoch:1\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
        assigned - failed.min(assigned),
    )
}

fn cluster_health(topo: &Topology) -> &'static str {
    if topo.backends.iter().any(|b| b.state() == State::Down) {
        "fail"
    } else {
        "online"
    }
}

/// The address this client reached the proxy at (so a proxy bound to 0.0.0.0 advertises an
/// address the client can use), as (ip, port).
fn own_addr(shared: &Shared, id: u64) -> (String, u16) {
    let laddr = shared
        .clients
        .lock()
        .get(&id)
        .map_or(shared.local_addr, |c| c.laddr);
    (laddr.ip().to_string(), laddr.port())
}

/// Sections the proxy answers alone; INFO asking only for these is not sent to the shards.
pub const OWN_SECTIONS: [&str; 7] = [
    "server",
    "clients",
    "replication",
    "cluster",
    "proxy",
    "hotkeys",
    "shards",
];

/// The proxy's own INFO sections for this request, in INFO text: server, clients,
/// replication and cluster describe the proxy as the one server clients see; stats and cpu
/// hold the proxy's client-facing counters, merged over the shards' sums; proxy, hotkeys and
/// shards are the proxy's alone.
pub fn info(shared: &Shared, topo: &Topology, req: &Request) -> String {
    let asked: Vec<String> = req
        .args()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let want = |s: &str| {
        asked.is_empty()
            || asked
                .iter()
                .any(|a| matches!(a.as_str(), "default" | "all" | "everything") || a == s)
    };
    let mut out = String::new();
    let st = &shared.stats;
    let mode = match topo.mode() {
        Mode::Cluster => "cluster",
        Mode::Static => "static",
    };
    if want("server") {
        let uptime = shared.started.elapsed().as_secs();
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nautocache_proxy_version:{}\r\nredis_mode:cluster\r\nproxy_mode:{mode}\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            usize::BITS,
            std::process::id(),
            shared.run_id,
            shared.local_addr.port(),
            uptime / 86400,
        ));
    }
    if want("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
            shared.clients.lock().len(),
            shared.config.maxclients
        ));
    }
    if want("stats") {
        let ps = shared.pubsub.gauges();
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nredirects_moved:{}\r\nredirects_ask:{}\r\nretries_tryagain:{}\r\ntopology_refreshes:{}\r\ntopology_epoch:{}\r\nclient_output_buffer_limit_disconnections:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\npubsub_upstream_subscriptions:{}\r\npubsub_messages_received:{}\r\npubsub_messages_fanned_out:{}\r\npubsub_slow_subscribers_dropped:{}\r\n\r\n",
            st.conns.received.load(Relaxed),
            st.conns.rejected.load(Relaxed),
            st.total_commands.load(Relaxed),
            st.conns.net_input_bytes.load(Relaxed),
            st.conns.net_output_bytes.load(Relaxed),
            st.moved.load(Relaxed),
            st.ask.load(Relaxed),
            st.tryagain.load(Relaxed),
            shared.topology.refreshes.load(Relaxed),
            topo.epoch,
            st.output_buffer_limit_disconnections.load(Relaxed),
            ps.channels,
            ps.patterns,
            ps.shard_channels,
            ps.upstream,
            shared.pubsub.stats.received.load(Relaxed),
            shared.pubsub.stats.fanned_out.load(Relaxed),
            shared.pubsub.stats.slow_dropped.load(Relaxed),
        ));
    }
    if want("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if want("cpu")
        && let Some((sys, user)) = membership::process::cpu_times()
    {
        // Next to the shards' summed used_cpu_sys/used_cpu_user.
        out.push_str(&format!(
            "# CPU\r\nproxy_used_cpu_sys:{sys:.6}\r\nproxy_used_cpu_user:{user:.6}\r\n\r\n"
        ));
    }
    if want("cluster") {
        out.push_str("# Cluster\r\ncluster_enabled:1\r\n\r\n");
    }
    if want("proxy") {
        let up = topo
            .backends
            .iter()
            .filter(|b| b.state() == State::Up)
            .count();
        out.push_str(&format!(
            "# Proxy\r\nproxy_mode:{mode}\r\nshards:{}\r\nshards_up:{up}\r\nslots_unowned:{}\r\n\r\n",
            topo.backends.len(),
            topo.map.unowned(),
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
