//! Routing: turns each request into an [`Item`] of the client's reply queue, appending what must
//! go to shards to per-backend groups of the current chunk (one batch per backend per chunk).
//! The command table in `membership` decides everything: arity, key positions, route, merge.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use membership::command::{
    CommandId, CommandSpec, Flags, Merge, Refusal, Route, full_name, lookup_any,
};
use membership::{Mode, Slot};
use tokio::sync::watch;

use std::time::Instant;

use telemetry::stats::slot_of;
use telemetry::trace::{TRACE_COMMAND, TraceParent, new_span_id};

use crate::backend::Backend;
use crate::client::Session;
use crate::error::CmdError;
use crate::hotkey::{self, ReadHook};
use crate::local;
use crate::observe::CmdTrace;
use crate::protocol::{Proto, Reply, Request, encode_to_bytes};
use crate::shared::Shared;
use crate::topology::Topology;
use membership::resp::CommandError;

/// Where one request's reply comes from: request `idx` of chunk group `group`.
pub struct Part {
    pub group: u32,
    pub idx: u32,
    /// The bytes sent, kept to resend on MOVED/ASK/TRYAGAIN.
    pub req: Bytes,
    pub slot: Option<Slot>,
    /// A blocking command on a connection of its own: redirects are followed on new ones.
    pub dedicated: bool,
    /// Sent on a client's pinned connection (WATCH ... EXEC): never redirected elsewhere.
    pub pinned: bool,
    /// Requests in `req`, whose last reply is the part's (a transaction's `MULTI ... EXEC`
    /// is resent whole).
    pub replies: u32,
}

/// How a RESP2 backend reply is shaped for a RESP3 client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    Plain,
    /// Flat field/value array → map (HGETALL).
    Map,
    /// Flat field/value array → array of pairs (HRANDFIELD ... WITHVALUES).
    Pairs,
    /// Array → set (SMEMBERS, SINTER, SUNION, SDIFF, SPOP with a count).
    Set,
    /// Flat member/score array → array of `[member, double]` pairs (ZRANGE ... WITHSCORES,
    /// ZUNION, ZINTER, ZDIFF ... WITHSCORES, ZPOPMIN with a count, ZRANDMEMBER ... WITHSCORES).
    Scored,
    /// A score as a bulk string → a double (ZSCORE, ZINCRBY, ZADD ... INCR).
    Double,
    /// Every bulk string of an array → a double (ZMSCORE; ZPOPMIN/ZPOPMAX without a count,
    /// whose members are never numbers' places: only odd positions are scores).
    Doubles,
    /// Flat `member, score` kept flat, scores → doubles (ZPOPMIN/ZPOPMAX without a count).
    FlatScored,
    /// `[key, [[member, score], ...]]` → scores as doubles (ZMPOP, BZMPOP).
    KeyPairs,
    /// `[key, member, score]` → the score as a double (BZPOPMIN, BZPOPMAX).
    KeyScore,
    /// An array of `[key, value]` pairs → a map (XREAD, XREADGROUP).
    KeyMap,
    /// An array of flat field/value arrays → an array of maps (XINFO GROUPS, CONSUMERS).
    Maps,
}

/// One entry of a client's reply queue.
pub enum Item {
    /// Answered by the proxy (already encoded for the client's protocol).
    Ready(Bytes),
    /// Forwarded to one shard.
    Fwd { part: Part, conv: Conv },
    /// A transaction's EXEC: its array's elements shaped for RESP3 one by one, as the queued
    /// commands' own replies would be.
    Exec { part: Part, convs: Vec<Conv> },
    /// Split by shard (or slot). A part's `Range` indexes `order`, which lists key ordinals
    /// (positions in the client's reply) part by part: the part's i-th key is key
    /// `order[range.start + i]`.
    Fan {
        parts: Vec<(Part, std::ops::Range<u32>)>,
        order: Vec<u32>,
        nkeys: usize,
        merge: Merge,
    },
    /// Sent to every shard.
    All { parts: Vec<Part>, merge: Merge },
    /// Sent to every shard; the decoded replies are combined as `how` says (INFO, CONFIG GET,
    /// SLOWLOG GET, RANDOMKEY).
    Gather {
        parts: Vec<Part>,
        how: crate::aggregate::Gather,
    },
    /// Read-only set algebra across slots (SUNION ...): one read per distinct key, to its
    /// owner; the proxy computes the reply from theirs ([`crate::algebra`]).
    Algebra {
        parts: Vec<Part>,
        job: crate::algebra::Job,
    },
    /// SCAN on shard `shard` of `nshards`.
    Scan {
        part: Part,
        shard: u64,
        nshards: u64,
    },
    // Hot keys (crate::hotkey).
    /// Served from the near cache: a backend reply, shaped like `Fwd`'s.
    Cached { reply: Bytes, conv: Conv },
    /// Forwarded, with the key's `PTTL` right behind it in the same group (request `ttl`);
    /// the reply fills the near cache until the key's deadline, unless the key changed
    /// meanwhile.
    Fill {
        part: Part,
        ttl: u32,
        conv: Conv,
        fill: hotkey::Fill,
    },
    /// Waits for another client's fill of the same key; reads itself if that fails.
    Wait {
        rx: watch::Receiver<hotkey::FillState>,
        req: Bytes,
        slot: Slot,
        conv: Conv,
    },
    /// Planned while its slot had no owner (a failover in progress): sent once the map has
    /// one, within the CLUSTERDOWN retry budget, else answered with CLUSTERDOWN.
    Unowned { req: Bytes, slot: Slot, conv: Conv },
    /// Lowers the fences of the writes before it, once they have been answered.
    Release(Vec<hotkey::Fence>),
    /// (P|S)SUBSCRIBE's confirmations, written once the nodes confirmed the subscriptions
    /// they made new (each wait ends then, or when it is given up), within the backend
    /// timeout.
    Subscribed {
        waits: Vec<tokio::sync::oneshot::Receiver<()>>,
        reply: Bytes,
    },
}

/// Requests for one backend in this chunk.
pub struct GroupBuf {
    pub backend: Arc<Backend>,
    pub buf: BytesMut,
    pub count: u32,
    /// A blocking command's group: sent on a connection of its own, holding this permit
    /// (`blocking-connections`).
    pub dedicated: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A group for a client's pinned connection (WATCH ... EXEC).
    pub pinned: Option<Arc<crate::backend::Pinned>>,
}

/// What the metrics and traces need to know about one item (kept only while observing).
pub struct Meta {
    /// The command's slot in the command statistics.
    pub stat: usize,
    pub trace: Option<Box<CmdTrace>>,
    /// False for an item a request adds after its own (a hot-key fence release): the
    /// request is counted once.
    pub counted: bool,
}

/// The items and backend groups of one client read.
pub struct ChunkBuilder {
    pub items: Vec<Item>,
    pub groups: Vec<GroupBuf>,
    pub proto: Proto,
    /// Parallel to `items` while metrics or traces are on (else empty).
    pub meta: Vec<Meta>,
    /// When the client's bytes were read (metrics or traces on).
    pub started: Option<Instant>,
    /// The command being planned, once known.
    pub cur: Option<&'static CommandSpec>,
    /// The trace of the command being planned, when it is sampled.
    pub trace: Option<Box<CmdTrace>>,
    /// Writes planned that fence near-cache keys (see [`crate::client::Session::writes`]).
    pub writes: usize,
    /// (P|S)SUBSCRIBE items in it (see `crate::pubsub::ClientSubs::unconfirmed`).
    pub subscribes: usize,
}

impl ChunkBuilder {
    pub fn new(proto: Proto, started: Option<Instant>) -> ChunkBuilder {
        ChunkBuilder {
            items: Vec::new(),
            groups: Vec::new(),
            proto,
            meta: Vec::new(),
            started,
            cur: None,
            trace: None,
            writes: 0,
            subscribes: 0,
        }
    }

    /// Closes the metadata of the request just planned (its first item is the request's
    /// reply; a write may add a fence release after it).
    pub fn note(&mut self) {
        let mut first = true;
        while self.meta.len() < self.items.len() {
            self.meta.push(Meta {
                stat: slot_of(self.cur.map(|s| s.id)),
                trace: self.trace.take(),
                counted: std::mem::take(&mut first),
            });
        }
        self.cur = None;
        self.trace = None;
    }

    pub fn add(&mut self, backend: &Arc<Backend>, req: Bytes, slot: Option<Slot>) -> Part {
        let group = match self.groups.iter().position(|g| {
            Arc::ptr_eq(&g.backend, backend) && g.dedicated.is_none() && g.pinned.is_none()
        }) {
            Some(g) => g,
            None => {
                self.groups.push(GroupBuf {
                    backend: backend.clone(),
                    buf: BytesMut::new(),
                    count: 0,
                    dedicated: None,
                    pinned: None,
                });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[group];
        if let Some(t) = self.trace.as_mut() {
            let span = new_span_id();
            if backend.speaks_trace() {
                // The shard continues the trace from this call's span; its +OK is not
                // referenced by any part, so the client never sees it.
                let tp = TraceParent {
                    trace_id: t.ids.trace_id,
                    span_id: span,
                }
                .encode();
                g.buf.extend_from_slice(&encode_args(
                    [TRACE_COMMAND.as_bytes(), tp.as_bytes()].into_iter(),
                ));
                g.count += 1;
            }
            t.children.push((span, group as u32));
        }
        g.buf.extend_from_slice(&req);
        g.count += 1;
        Part {
            group: group as u32,
            idx: g.count - 1,
            req,
            slot,
            dedicated: false,
            pinned: false,
            replies: 1,
        }
    }

    /// A request on a client's pinned connection (one group per pin, in order).
    pub fn add_pinned(
        &mut self,
        pin: &Arc<crate::backend::Pinned>,
        req: Bytes,
        replies: u32,
        slot: Option<Slot>,
    ) -> Part {
        let group = match self
            .groups
            .iter()
            .position(|g| g.pinned.as_ref().is_some_and(|p| Arc::ptr_eq(p, pin)))
        {
            Some(g) => g,
            None => {
                self.groups.push(GroupBuf {
                    backend: pin.backend().clone(),
                    buf: BytesMut::new(),
                    count: 0,
                    dedicated: None,
                    pinned: Some(pin.clone()),
                });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[group];
        g.buf.extend_from_slice(&req);
        g.count += replies;
        Part {
            group: group as u32,
            idx: g.count - 1,
            req,
            slot,
            dedicated: false,
            pinned: true,
            replies,
        }
    }

    /// A request whose reply nobody reads (a transaction's MULTI and queued commands).
    pub fn add_unanswered(&mut self, backend: &Arc<Backend>, req: Bytes) {
        let trace = self.trace.take();
        self.add(backend, req, None);
        self.trace = trace;
    }

    /// A transaction's EXEC, after its MULTI and queued commands in the same group: on a
    /// redirect the whole transaction (`whole`, `replies` requests) is resent.
    pub fn add_exec(
        &mut self,
        backend: &Arc<Backend>,
        exec: Bytes,
        whole: Bytes,
        replies: u32,
        slot: Option<Slot>,
    ) -> Part {
        Part {
            req: whole,
            replies,
            ..self.add(backend, exec, slot)
        }
    }

    /// A blocking command: a group of its own, sent on a connection of its own.
    fn add_dedicated(
        &mut self,
        backend: &Arc<Backend>,
        req: Bytes,
        slot: Slot,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Part {
        self.groups.push(GroupBuf {
            backend: backend.clone(),
            buf: BytesMut::from(&req[..]),
            count: 1,
            dedicated: Some(permit),
            pinned: None,
        });
        Part {
            group: self.groups.len() as u32 - 1,
            idx: 0,
            req,
            slot: Some(slot),
            dedicated: true,
            pinned: false,
            replies: 1,
        }
    }

    /// Whether the chunk is sent alone, once everything before it is answered, with nothing
    /// after it until it is answered: a large request (see `session::chunk::LARGE_BATCH`), or
    /// a blocking command (its client's later requests wait behind it, as on Redis).
    pub fn blocking(&self) -> bool {
        self.groups.iter().any(|g| g.dedicated.is_some())
    }

    pub fn alone(&self, large: usize) -> bool {
        self.groups
            .iter()
            .any(|g| g.buf.len() >= large || g.dedicated.is_some())
    }

    /// Appends a request whose reply no client sees (the proxy reads it) right after the
    /// group's last one; returns its index in the group.
    fn append_internal(&mut self, group: u32, req: &[u8]) -> Option<u32> {
        let g = self.groups.get_mut(group as usize)?;
        g.buf.extend_from_slice(req);
        g.count += 1;
        Some(g.count - 1)
    }

    pub fn ready(&mut self, r: Reply) {
        self.items
            .push(Item::Ready(encode_to_bytes(&r, self.proto)));
    }
}

fn err(chunk: &mut ChunkBuilder, e: CmdError) {
    chunk.ready(e.into());
}

/// Queues a refusal's error; `None` for [`admit`].
fn fail(chunk: &mut ChunkBuilder, e: CmdError) -> Option<&'static CommandSpec> {
    err(chunk, e);
    None
}

/// Encodes `*N` + the given arguments.
fn encode_args<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    let mut n = itoa::Buffer::new();
    out.put_u8(b'*');
    out.put_slice(n.format(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        out.put_u8(b'$');
        out.put_slice(n.format(a.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// The checks every request passes: a known command (or one the backends taught), not
/// refused, authenticated, of the right arity. On failure the error is queued.
fn admit(
    sess: &Session,
    shared: &Shared,
    req: &Request,
    chunk: &mut ChunkBuilder,
) -> Option<&'static CommandSpec> {
    let name = req.arg(0);
    // The table's rows first, served or refused; then what the backends taught.
    let top = lookup_any(name).or_else(|| shared.learned.load().get(name));
    // Unknown and refused commands count as `unknown` in the statistics (no `chunk.cur`).
    let top = match top {
        Some(top) if top.refusal().is_none() => top,
        found => {
            if !sess.authed {
                return fail(chunk, CmdError::from(CommandError::NoAuth));
            }
            let name = String::from_utf8_lossy(name).into_owned();
            let e = match found.and_then(CommandSpec::refusal) {
                Some(refusal) => CmdError::Unsupported {
                    name,
                    reason: refusal.reason(),
                },
                None => CmdError::from(CommandError::UnknownCommand {
                    name,
                    args: req
                        .args()
                        .skip(1)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                }),
            };
            return fail(chunk, e);
        }
    };
    chunk.cur = Some(top);
    if !sess.authed
        && !matches!(
            top.id,
            CommandId::Auth | CommandId::Hello | CommandId::Quit | CommandId::Reset
        )
    {
        return fail(chunk, CmdError::from(CommandError::NoAuth));
    }
    // COMMAND alone is valid (the whole table); CLIENT alone is not.
    let spec = if top.is_container() && !(req.argc() < 2 && top.arity_ok(1)) {
        if req.argc() < 2 {
            return fail(
                chunk,
                CmdError::from(CommandError::WrongArity(top.name.into())),
            );
        }
        match top.subcommand(req.arg(1)) {
            Some(s) => s,
            None => {
                return fail(
                    chunk,
                    CmdError::from(CommandError::UnknownSubcommand {
                        container: top.name.into(),
                        sub: String::from_utf8_lossy(req.arg(1)).into_owned(),
                    }),
                );
            }
        }
    } else {
        top
    };
    chunk.cur = Some(spec);
    // A refused subcommand of a learned container (MODULE LIST): the reason, whatever the
    // arguments.
    if let Some(refusal) = spec.refusal() {
        return fail(chunk, refused(top, spec, refusal));
    }
    if !spec.arity_ok(req.argc()) {
        return fail(
            chunk,
            CmdError::from(CommandError::WrongArity(full_name(top, spec))),
        );
    }
    Some(spec)
}

/// Plans one request.
pub fn plan(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    let Some(spec) = admit(sess, shared, &req, chunk) else {
        // Refused while queueing: the transaction will abort.
        if let Some(tx) = sess.tx.as_mut() {
            tx.aborted = true;
        }
        return;
    };
    if shared.monitors.any()
        && !spec.flags.contains(Flags::ADMIN)
        && !spec.flags.contains(Flags::SKIP_MONITOR)
    {
        let addr = shared.clients.lock().get(&sess.id).map(|c| c.addr);
        if let Some(addr) = addr {
            shared.monitors.feed(addr, req.args());
        }
    }
    if let Some(e) = crate::subscribe::refuse_in_context(sess, spec, &req) {
        return err(chunk, e);
    }
    if spec.id == CommandId::Monitor {
        return monitor(sess, shared, chunk);
    }
    if sess.tx.is_some() && crate::subscribe::subscribes(spec) {
        // Queued, it would run on a shared backend connection and leave it subscribed.
        if let Some(tx) = sess.tx.as_mut() {
            tx.aborted = true;
        }
        return err(
            chunk,
            CmdError::Unsupported {
                name: spec.name.into(),
                reason: "subscriptions inside MULTI are not supported",
            },
        );
    }
    if sess.tx.is_some() && !membership::command::runs_at_once_in_multi(spec.id) {
        return crate::transaction::queue(sess, spec, req, chunk);
    }
    if spec.id == CommandId::Ping
        && let Some(pong) = crate::subscribe::subscribed_ping(sess, &req)
    {
        return chunk.ready(pong);
    }
    shared.scripts.observe(spec, &req);
    // Hot keys: a write fences its keys in the near cache until its reply has been rendered.
    let fences = shared.hotkeys.on_write(spec, &req);
    route(sess, shared, topo, spec, req, chunk);
    if let Some(f) = fences {
        sess.writes += 1;
        chunk.writes += 1;
        chunk.items.push(Item::Release(f));
    }
}

fn route(
    sess: &mut Session,
    shared: &Shared,
    topo: &Topology,
    spec: &'static CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    if let Some(t) = chunk.trace.as_mut() {
        let mut keys = spec.key_positions(req.argc(), |i| req.arg(i));
        t.slot = keys.next().map(|i| Slot::for_key(req.arg(i)));
        t.keys = usize::from(t.slot.is_some()) + keys.count();
    }
    match spec.route {
        Route::Local
            if matches!(
                spec.id,
                CommandId::ClusterCountkeysinslot | CommandId::ClusterGetkeysinslot
            ) =>
        {
            by_slot_argument(topo, req, chunk)
        }
        Route::Local => {
            let reply = local::execute(sess, shared, topo, spec, &req);
            // HELLO may have switched protocols: its reply uses the new one (the session
            // starts a new chunk for what follows).
            chunk
                .items
                .push(Item::Ready(encode_to_bytes(&reply, sess.proto)));
        }
        Route::SameSlot if crate::algebra::computes(spec.id) && spans_slots(spec, &req) => {
            algebra(shared, topo, spec, &req, chunk)
        }
        Route::SingleKey | Route::SameSlot => {
            match shared.hotkeys.on_read(topo, spec, &req, sess.writes > 0) {
                ReadHook::Forward(fill) => single(topo, spec, req, chunk, fill),
                ReadHook::Hit(reply) => chunk.items.push(Item::Cached {
                    reply,
                    conv: conv_for(spec, &req),
                }),
                ReadHook::Wait(rx, slot) => chunk.items.push(Item::Wait {
                    rx,
                    conv: conv_for(spec, &req),
                    req: req.raw,
                    slot,
                }),
            }
        }
        Route::FanOut(merge) => {
            fan(topo, spec, req, merge, chunk);
            if let Some(Item::Fan { parts, .. }) = chunk.items.last() {
                let mut shards: Vec<u32> = parts.iter().map(|(p, _)| p.group).collect();
                shards.sort_unstable();
                shards.dedup();
                shared.stats.fanout.record(shards.len() as u64);
            }
        }
        Route::AllShards(Merge::Cursor) => scan(topo, req, chunk),
        Route::AllShards(
            merge @ (Merge::Info | Merge::Config | Merge::Slowlog | Merge::Random),
        ) => gather(shared, topo, req, merge, chunk),
        Route::AllShards(_) if spec.id == CommandId::ConfigSet && !config_set_allowed(&req) => err(
            chunk,
            CmdError::Unsupported {
                name: "config set requirepass".into(),
                reason: "it would lock the proxy out of the shards (their password is its backend-password); change both outside the proxy",
            },
        ),
        Route::AllShards(merge) => {
            let parts: Vec<Part> = topo
                .backends
                .iter()
                .map(|b| chunk.add(b, req.raw.clone(), None))
                .collect();
            shared.stats.fanout.record(parts.len() as u64);
            chunk.items.push(Item::All { parts, merge });
        }
        // Refusals are answered before the arity check (`plan`); a refused row never gets here.
        Route::Refused(refusal) => err(chunk, refused(spec, spec, refusal)),
        Route::Blocking if !waits(spec, &req) => single(topo, spec, req, chunk, None),
        Route::Blocking => blocking(shared, topo, spec, req, chunk),
        Route::PubSub => crate::subscribe::route(sess, shared, topo, spec, req, chunk),
        Route::Transaction => crate::transaction::command(sess, shared, topo, spec, req, chunk),
        Route::AnyShard => match topo.backends.first() {
            Some(b) => {
                let part = chunk.add(b, req.raw.clone(), None);
                chunk.items.push(Item::Fwd {
                    part,
                    conv: Conv::Plain,
                });
            }
            None => err(chunk, CmdError::ClusterDown(0)),
        },
    }
}

/// `-ERR CONTAINER SUB is not supported through the proxy: <reason>`.
fn refused(top: &CommandSpec, spec: &CommandSpec, refusal: Refusal) -> CmdError {
    CmdError::Unsupported {
        name: full_name(top, spec).replace('|', " "),
        reason: refusal.reason(),
    }
}

pub fn conv_for(spec: &CommandSpec, req: &Request) -> Conv {
    match spec.id {
        CommandId::Hgetall => Conv::Map,
        CommandId::Hrandfield if req.argc() == 4 => Conv::Pairs,
        CommandId::Smembers | CommandId::Sinter | CommandId::Sunion | CommandId::Sdiff => Conv::Set,
        CommandId::Spop if req.argc() == 3 => Conv::Set,
        CommandId::Zscore | CommandId::Zincrby => Conv::Double,
        CommandId::Zadd if req.args().skip(2).any(|a| a.eq_ignore_ascii_case(b"incr")) => {
            Conv::Double
        }
        CommandId::Zmscore => Conv::Doubles,
        CommandId::Zpopmin | CommandId::Zpopmax if req.argc() == 3 => Conv::Scored,
        CommandId::Zpopmin | CommandId::Zpopmax => Conv::FlatScored,
        CommandId::Zmpop | CommandId::Bzmpop => Conv::KeyPairs,
        CommandId::Bzpopmin | CommandId::Bzpopmax => Conv::KeyScore,
        CommandId::Xread | CommandId::Xreadgroup => Conv::KeyMap,
        CommandId::XinfoGroups | CommandId::XinfoConsumers => Conv::Maps,
        CommandId::XinfoStream => Conv::Map,
        CommandId::Zrange
        | CommandId::Zrevrange
        | CommandId::Zrangebyscore
        | CommandId::Zrevrangebyscore
        | CommandId::Zrandmember
            if req
                .args()
                .skip(2)
                .any(|a| a.eq_ignore_ascii_case(b"withscores")) =>
        {
            Conv::Scored
        }
        CommandId::Zunion | CommandId::Zinter | CommandId::Zdiff => {
            let args: Vec<&[u8]> = req.args().collect();
            match crate::algebra::parse(spec.id, &args) {
                Ok((
                    crate::algebra::Job {
                        query: crate::algebra::Query::Scored(q),
                        deferred: None,
                        ..
                    },
                    _,
                )) if q.withscores => Conv::Scored,
                _ => Conv::Plain,
            }
        }
        _ => Conv::Plain,
    }
}

/// Whether a request is a blocking command (it starts a chunk of its own).
pub fn blocks(req: &Request) -> bool {
    lookup_any(req.arg(0)).is_some_and(|s| s.route == Route::Blocking && waits(s, req))
}

/// Whether a blocking command may wait: XREAD and XREADGROUP only with BLOCK (before
/// STREAMS); without it they are plain reads of one slot.
fn waits(spec: &CommandSpec, req: &Request) -> bool {
    match spec.id {
        CommandId::Xread | CommandId::Xreadgroup => req
            .args()
            .skip(1)
            .take_while(|a| !a.eq_ignore_ascii_case(b"streams"))
            .any(|a| a.eq_ignore_ascii_case(b"block")),
        _ => true,
    }
}

/// A blocking command: to its slot's owner on a connection of its own, within
/// `blocking-connections`.
fn blocking(
    shared: &Shared,
    topo: &Topology,
    spec: &CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
) {
    let mut slot: Option<Slot> = None;
    for i in spec.key_positions(req.argc(), |i| req.arg(i)) {
        let s = Slot::for_key(req.arg(i));
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return err(chunk, CmdError::CrossSlot),
            Some(_) => {}
        }
    }
    // No key found (BLMPOP with a bad key count): any shard answers the syntax error.
    let slot = slot.unwrap_or(Slot::for_key(b""));
    let Some(backend) = topo.owner(slot) else {
        return err(chunk, CmdError::ClusterDown(slot.get()));
    };
    let Ok(permit) = shared.blocking.clone().try_acquire_owned() else {
        return err(
            chunk,
            CmdError::err(format!(
                "{} clients already wait in blocking commands through this proxy \
                 (blocking-connections)",
                shared.config.blocking_connections
            )),
        );
    };
    let conv = conv_for(spec, &req);
    let part = chunk.add_dedicated(backend, req.raw, slot, permit);
    chunk.items.push(Item::Fwd { part, conv });
}

fn single(
    topo: &Topology,
    spec: &CommandSpec,
    req: Request,
    chunk: &mut ChunkBuilder,
    fill: Option<hotkey::Fill>,
) {
    let mut slot: Option<Slot> = None;
    for i in spec.key_positions(req.argc(), |i| req.arg(i)) {
        let s = Slot::for_key(req.arg(i));
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return err(chunk, CmdError::CrossSlot),
            Some(_) => {}
        }
    }
    let backend = match slot {
        Some(s) => topo.owner(s),
        None => topo.backends.first(),
    };
    let conv = conv_for(spec, &req);
    let Some(backend) = backend else {
        return match slot {
            Some(slot) => chunk.items.push(Item::Unowned {
                req: req.raw,
                slot,
                conv,
            }),
            None => err(chunk, CmdError::ClusterDown(0)),
        };
    };
    // A fill reads the key's TTL right behind its value (see `hotkey::cache`).
    let pttl = fill
        .is_some()
        .then(|| spec.keys.indices(req.argc()).next())
        .flatten()
        .map(|i| encode_args([&b"PTTL"[..], req.arg(i)].into_iter()));
    let part = chunk.add(backend, req.raw, slot);
    let ttl = pttl.and_then(|p| chunk.append_internal(part.group, &p));
    chunk.items.push(match (fill, ttl) {
        (Some(fill), Some(ttl)) => Item::Fill {
            part,
            ttl,
            conv,
            fill,
        },
        _ => Item::Fwd { part, conv },
    });
}

/// Whether the request's keys hash to more than one slot.
fn spans_slots(spec: &CommandSpec, req: &Request) -> bool {
    let mut keys = spec.key_positions(req.argc(), |i| req.arg(i));
    let Some(first) = keys.next().map(|i| Slot::for_key(req.arg(i))) else {
        return false;
    };
    keys.any(|i| Slot::for_key(req.arg(i)) != first)
}

/// Read-only set algebra whose keys span slots: parsed here as Redis parses it (its errors are
/// answered at once), then one read per distinct key to the key's owner; the reply is
/// computed when they are answered ([`crate::algebra`]).
fn algebra(
    shared: &Shared,
    topo: &Topology,
    spec: &CommandSpec,
    req: &Request,
    chunk: &mut ChunkBuilder,
) {
    let args: Vec<&[u8]> = req.args().collect();
    let (job, keys) = match crate::algebra::parse(spec.id, &args) {
        Ok(parsed) => parsed,
        Err(e) => return chunk.ready(e),
    };
    // Every owner is found before anything is added to the chunk's batches.
    let mut owners = Vec::with_capacity(keys.len());
    for &k in &keys {
        let slot = Slot::for_key(k);
        match topo.owner(slot) {
            Some(b) => owners.push((b, slot)),
            None => return err(chunk, CmdError::ClusterDown(slot.get())),
        }
    }
    let mut parts = Vec::with_capacity(keys.len() * 2);
    let mut shards: Vec<u32> = Vec::with_capacity(keys.len());
    for (&k, (b, slot)) in keys.iter().zip(owners) {
        for read in crate::algebra::read_requests(&job, k) {
            let part = chunk.add(b, read, Some(slot));
            shards.push(part.group);
            parts.push(part);
        }
    }
    shards.sort_unstable();
    shards.dedup();
    shared.stats.fanout.record(shards.len() as u64);
    chunk.items.push(Item::Algebra { parts, job });
}

/// Splits a multi-key command: one sub-command per shard (per slot against a real cluster,
/// which refuses cross-slot multi-key commands even on one node). The sub-commands are copied
/// from the request's encoded arguments into one buffer: a handful of allocations per command
/// however many parts it has.
fn fan(topo: &Topology, spec: &CommandSpec, req: Request, merge: Merge, chunk: &mut ChunkBuilder) {
    let step = spec.keys.step.max(1) as usize;
    let argc = req.argc();
    if !(argc - 1).is_multiple_of(step) {
        return err(
            chunk,
            CmdError::from(CommandError::WrongArity(spec.name.into())),
        );
    }
    let per_slot = topo.mode() == Mode::Cluster;
    // (owner index, slot when split per slot, keys); per key ordinal: (group, argument index).
    let mut groups: Vec<(usize, Option<Slot>, u32)> = Vec::new();
    let mut keys: Vec<(u32, u32)> = Vec::with_capacity(argc / step);
    let mut index: std::collections::HashMap<(usize, Option<Slot>), usize> =
        std::collections::HashMap::new();
    for i in spec.keys.indices(argc) {
        let slot = Slot::for_key(req.arg(i));
        let Some(owner) = topo.map.owner(slot) else {
            return err(chunk, CmdError::ClusterDown(slot.get()));
        };
        let key = (owner, per_slot.then_some(slot));
        // Linear search while small; an index once the group count grows.
        let g = if groups.len() <= 16 {
            groups.iter().position(|g| (g.0, g.1) == key)
        } else {
            if index.is_empty() {
                for (n, g) in groups.iter().enumerate() {
                    index.insert((g.0, g.1), n);
                }
            }
            index.get(&key).copied()
        };
        let g = match g {
            Some(g) => g,
            None => {
                groups.push((key.0, key.1, 0));
                if !index.is_empty() {
                    index.insert(key, groups.len() - 1);
                }
                groups.len() - 1
            }
        };
        groups[g].2 += 1;
        keys.push((g as u32, i as u32));
    }
    let nkeys = keys.len();
    if groups.len() <= 1 {
        // Everything on one shard: forward the request unchanged; the reply needs no merge.
        let Some(&(owner, slot, _)) = groups.first() else {
            return err(
                chunk,
                CmdError::from(CommandError::WrongArity(spec.name.into())),
            );
        };
        let Some(b) = topo.backends.get(owner) else {
            return err(chunk, CmdError::ClusterDown(slot.map_or(0, Slot::get)));
        };
        let slot = slot.or_else(|| {
            keys.first()
                .map(|&(_, i)| Slot::for_key(req.arg(i as usize)))
        });
        let part = chunk.add(b, req.raw, slot);
        chunk.items.push(Item::Fwd {
            part,
            conv: Conv::Plain,
        });
        return;
    }
    // Key ordinals grouped part by part (a counting sort): `ends[g]` starts as the offset of
    // group g in `order` and ends as the offset of group g + 1.
    let mut ends: Vec<u32> = Vec::with_capacity(groups.len());
    let mut at = 0u32;
    for g in &groups {
        ends.push(at);
        at += g.2;
    }
    let mut order = vec![0u32; nkeys];
    for (ordinal, &(g, _)) in keys.iter().enumerate() {
        let end = &mut ends[g as usize];
        order[*end as usize] = ordinal as u32;
        *end += 1;
    }
    let name = req.arg_span(0);
    let mut subs = BytesMut::with_capacity(req.raw.len() + groups.len() * (name.len() + 16));
    let mut parts = Vec::with_capacity(groups.len());
    let mut start = 0u32;
    for (&(owner, slot, count), &end) in groups.iter().zip(&ends) {
        let Some(b) = topo.backends.get(owner) else {
            return err(chunk, CmdError::ClusterDown(slot.map_or(0, Slot::get)));
        };
        let mine = &order[start as usize..end as usize];
        membership::resp::put_len(&mut subs, b'*', 1 + count as usize * step);
        subs.put_slice(name);
        for &ordinal in mine {
            let arg = keys[ordinal as usize].1 as usize;
            for k in 0..step {
                subs.put_slice(req.arg_span(arg + k));
            }
        }
        let sub = subs.split().freeze();
        let first_slot = slot.or_else(|| {
            mine.first()
                .map(|&o| Slot::for_key(req.arg(keys[o as usize].1 as usize)))
        });
        parts.push((chunk.add(b, sub, first_slot), start..end));
        start = end;
    }
    chunk.items.push(Item::Fan {
        parts,
        order,
        nkeys,
        merge,
    });
}

/// MONITOR: this client gets a line for every command the proxy's clients send from now on.
fn monitor(sess: &mut Session, shared: &Shared, chunk: &mut ChunkBuilder) {
    if sess.tx.is_some() {
        return err(
            chunk,
            CmdError::err("MONITOR isn't allowed for DENY BLOCKING client"),
        );
    }
    let h = sess.pubsub.handle(sess.id, sess.proto);
    shared.monitors.add(h);
    chunk.ready(Reply::ok());
}

/// SCAN: the proxy cursor is `shard_cursor * nshards + shard`; shards are walked in map order.
fn scan(topo: &Topology, req: Request, chunk: &mut ChunkBuilder) {
    let n = topo.backends.len() as u64;
    let cursor = std::str::from_utf8(req.arg(1))
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let Some(cursor) = cursor else {
        return err(chunk, CmdError::err("invalid cursor"));
    };
    if n == 0 {
        return err(chunk, CmdError::ClusterDown(0));
    }
    let (shard, shard_cursor) = (cursor % n, cursor / n);
    let Some(b) = topo.backends.get(shard as usize) else {
        return err(chunk, CmdError::err("invalid cursor"));
    };
    let c = shard_cursor.to_string();
    let args = req
        .args()
        .enumerate()
        .map(|(i, a)| if i == 1 { c.as_bytes() } else { a })
        .collect::<Vec<&[u8]>>();
    let sub = encode_args(args.into_iter());
    let part = chunk.add(b, sub, None);
    chunk.items.push(Item::Scan {
        part,
        shard,
        nshards: n,
    });
}

/// Commands whose replies are combined from every shard's ([`crate::aggregate`]). RANDOMKEY
/// asks each shard for `DBSIZE` too, in the same batch, to weigh the shards' keys.
fn gather(shared: &Shared, topo: &Topology, req: Request, merge: Merge, chunk: &mut ChunkBuilder) {
    use crate::aggregate::{Gather, slowlog_count};
    // INFO of the proxy's own sections only (`INFO hotkeys`, `INFO shards`) does not bother
    // the shards; and INFO answers (with the proxy's sections) even with no shard at all.
    let own_only = req.argc() > 1
        && req.args().skip(1).all(|a| {
            local::OWN_SECTIONS
                .iter()
                .any(|s| s.as_bytes().eq_ignore_ascii_case(a))
        });
    if merge == Merge::Info && (own_only || topo.backends.is_empty()) {
        let text = local::info(shared, topo, &req);
        return chunk.ready(Reply::Verbatim(text));
    }
    if topo.backends.is_empty() {
        return err(chunk, CmdError::ClusterDown(0));
    }
    let how = match merge {
        Merge::Info => Gather::Info {
            own: local::info(shared, topo, &req),
        },
        Merge::Config => Gather::Config {
            own: local::config_own(shared, &req),
        },
        Merge::Slowlog => Gather::Slowlog {
            count: slowlog_count((req.argc() > 2).then(|| req.arg(2))),
        },
        _ => Gather::Random,
    };
    let mut parts = Vec::with_capacity(topo.backends.len() * 2);
    for b in &topo.backends {
        if matches!(how, Gather::Random) {
            parts.push(chunk.add(b, Bytes::from_static(b"*1\r\n$6\r\nDBSIZE\r\n"), None));
        }
        parts.push(chunk.add(b, req.raw.clone(), None));
    }
    shared.stats.fanout.record(topo.backends.len() as u64);
    chunk.items.push(Item::Gather { parts, how });
}

/// CONFIG SET of `requirepass` is refused: the shards' password is what the proxy
/// authenticates with, so changing it through the proxy would cut the proxy off.
fn config_set_allowed(req: &Request) -> bool {
    !req.args()
        .skip(2)
        .step_by(2)
        .any(|name| name.eq_ignore_ascii_case(b"requirepass"))
}

/// CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT: forwarded to the shard that owns the slot.
fn by_slot_argument(topo: &Topology, req: Request, chunk: &mut ChunkBuilder) {
    let slot = std::str::from_utf8(req.arg(2))
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(Slot::new);
    let Some(slot) = slot else {
        return err(chunk, CmdError::err("Invalid slot"));
    };
    let Some(b) = topo.owner(slot) else {
        return err(chunk, CmdError::ClusterDown(slot.get()));
    };
    let part = chunk.add(b, req.raw, Some(slot));
    chunk.items.push(Item::Fwd {
        part,
        conv: Conv::Plain,
    });
}
