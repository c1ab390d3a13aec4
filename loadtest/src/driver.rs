//! The request loop. Each virtual client is one task owning one connection per node (one in
//! total outside cluster mode). It keeps up to `window` logical requests in flight — closed loop:
//! a new one as soon as one completes; open loop: one per schedule tick, latency measured from
//! the tick — and multiplexes its connections with readiness polling, so there is no per-request
//! channel, task or allocation.
//!
//! Every loop is bounded: by the request count or the end of the test time, and always by the
//! hard deadline, at which whatever is still unanswered counts as a timeout.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use membership::Slot;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{Conn, Encoder, Pending, Reply, Role, error_kind, skim};
use crate::cluster::{Action, SlotMap, address_allowed, redirect_action};
use crate::report::{Stats, TimelinePoint};
use crate::workload::{KeySpace, OpGen, OpKind, PrefillGen};

/// Live totals for the progress line and the timeline; clients add to them once per batch.
#[derive(Debug, Default)]
pub struct Counters {
    pub ops: [AtomicU64; OpKind::COUNT],
    pub errors: AtomicU64,
    pub latency_us_sum: AtomicU64,
    pub latency_n: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct LocalCounts {
    ops: [u64; OpKind::COUNT],
    errors: u64,
    latency_us_sum: u64,
    latency_n: u64,
}

impl LocalCounts {
    fn publish(&mut self, c: &Counters) {
        if self.ops == [0; OpKind::COUNT] && self.errors == 0 {
            return;
        }
        for (a, n) in c.ops.iter().zip(self.ops) {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
        if self.errors > 0 {
            c.errors.fetch_add(self.errors, Ordering::Relaxed);
        }
        if self.latency_n > 0 {
            c.latency_us_sum
                .fetch_add(self.latency_us_sum, Ordering::Relaxed);
            c.latency_n.fetch_add(self.latency_n, Ordering::Relaxed);
        }
        *self = LocalCounts::default();
    }
}

/// Where a client's operations come from.
#[derive(Debug)]
pub enum Source {
    Workload(Box<OpGen>),
    Prefill(PrefillGen),
}

impl Source {
    fn next_op(&mut self, keys: &mut Vec<u64>) -> Option<(OpKind, usize)> {
        match self {
            Source::Workload(g) => Some(g.next_op(keys)),
            Source::Prefill(p) => p.next_op(keys),
        }
    }
}

/// What every client of one phase shares.
#[derive(Debug)]
pub struct Params {
    pub cluster: bool,
    pub seed_addr: SocketAddr,
    pub keys: KeySpace,
    pub value: Arc<[u8]>,
    pub expiry: Option<u64>,
    /// Logical requests in flight per client.
    pub window: usize,
    /// Open loop: time between sends per client.
    pub interval: Option<Duration>,
    /// Per client.
    pub limit: Option<u64>,
    pub timeout: Duration,
    pub max_redirects: u32,
    pub auth: Option<String>,
    pub counters: Arc<Counters>,
}

/// When a client stops: no new requests after `stop_at`; everything ends at `hard_deadline`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub stop_at: Option<Instant>,
    pub hard_deadline: Instant,
    /// Open loop: this client's first send (staggered between clients).
    pub first_due: Instant,
}

#[derive(Debug)]
pub struct ClientResult {
    pub stats: Stats,
    pub hit_hard_deadline: bool,
}

#[derive(Debug)]
struct Logical {
    op: OpKind,
    keys: Vec<u64>,
    value_len: usize,
    intended: Instant,
    remaining: u32,
    hits: u32,
    misses: u32,
    redirects: u32,
    error: Option<String>,
    /// A transaction's queued command was redirected: the node aborts it at EXEC, and the
    /// whole transaction is then resent where this points.
    tx_redirect: Option<Action>,
}

enum Event {
    Readable(usize),
    Writable(usize),
    Failed(usize, io::Error),
}

pub struct Client {
    p: Arc<Params>,
    map: SlotMap,
    conns: Vec<Option<Conn>>,
    table: Vec<Logical>,
    free: Vec<u32>,
    outstanding: usize,
    enc: Encoder,
    key_buf: Vec<u8>,
    err_buf: Vec<u8>,
    slot_buf: Vec<(u16, u64)>,
    source: Source,
    issued: u64,
    exhausted: bool,
    stats: Stats,
    local: LocalCounts,
    poll_from: usize,
    /// When the window last went from full to having a free slot (open loop).
    unblocked_at: Instant,
}

/// Encodes one command for `keys` into `wbuf`.
#[allow(clippy::too_many_arguments)]
fn encode(
    enc: &mut Encoder,
    key_buf: &mut Vec<u8>,
    space: &KeySpace,
    value: &[u8],
    expiry: Option<u64>,
    wbuf: &mut BytesMut,
    op: OpKind,
    keys: &[u64],
    value_len: usize,
) {
    let mut key = |enc: &mut Encoder, wbuf: &mut BytesMut, id: u64| {
        key_buf.clear();
        space.write_key(id, key_buf);
        enc.bulk(wbuf, key_buf);
    };
    match op {
        OpKind::Set => {
            enc.array_header(wbuf, if expiry.is_some() { 5 } else { 3 });
            enc.bulk(wbuf, b"SET");
            key(enc, wbuf, keys.first().copied().unwrap_or_default());
            enc.bulk(wbuf, value.get(..value_len).unwrap_or(value));
            if let Some(ex) = expiry {
                enc.bulk(wbuf, b"EX");
                enc.bulk_uint(wbuf, ex);
            }
        }
        OpKind::Get => {
            enc.array_header(wbuf, 2);
            enc.bulk(wbuf, b"GET");
            key(enc, wbuf, keys.first().copied().unwrap_or_default());
        }
        OpKind::Mget => {
            enc.array_header(wbuf, 1 + keys.len());
            enc.bulk(wbuf, b"MGET");
            for &id in keys {
                key(enc, wbuf, id);
            }
        }
        OpKind::Tx => {
            enc.command(wbuf, &[b"MULTI"]);
            for &id in keys {
                enc.array_header(wbuf, 2);
                enc.bulk(wbuf, b"INCR");
                key(enc, wbuf, id);
            }
            enc.command(wbuf, &[b"EXEC"]);
        }
    }
}

/// How a transaction's EXEC reply ends it.
#[derive(Debug, PartialEq, Eq)]
enum ExecVerdict {
    /// An array with one reply per queued command, none an error.
    Done,
    /// `-EXECABORT ...` and the like, or an array holding a command's error: the message (of
    /// the first error) is the error's kind.
    ErrorReply,
    /// Anything else, counted under this kind: a null array (a WATCHed key changed; this
    /// workload watches none), an array of the wrong length, or not an array.
    Failed(&'static str),
}

fn exec_verdict(reply: &Reply, commands: usize) -> ExecVerdict {
    match reply {
        Reply::Array { len, .. } if *len != commands => ExecVerdict::Failed("exec-length"),
        Reply::Array { errors: 0, .. } => ExecVerdict::Done,
        Reply::Array { .. } | Reply::Error(_) => ExecVerdict::ErrorReply,
        Reply::Nil => ExecVerdict::Failed("exec-nil"),
        Reply::Status | Reply::Int | Reply::Bulk => ExecVerdict::Failed("exec-not-array"),
    }
}

fn poll_io(conns: &[Option<Conn>], from: usize, cx: &mut Context<'_>) -> Poll<Event> {
    let n = conns.len();
    for k in 0..n {
        let i = (from + k) % n;
        let Some(Some(c)) = conns.get(i) else {
            continue;
        };
        if !c.wbuf.is_empty() {
            match c.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Event::Writable(i)),
                Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(i, e)),
                Poll::Pending => {}
            }
        }
        if !c.inflight.is_empty() {
            match c.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Event::Readable(i)),
                Poll::Ready(Err(e)) => return Poll::Ready(Event::Failed(i, e)),
                Poll::Pending => {}
            }
        }
    }
    Poll::Pending
}

impl Client {
    /// Connects to every node of `map` (bounded by the request timeout).
    pub async fn connect(p: Arc<Params>, map: SlotMap, source: Source) -> io::Result<Client> {
        let mut conns = Vec::with_capacity(map.nodes().len());
        for &addr in map.nodes() {
            conns.push(Some(
                Conn::connect(addr, p.timeout, p.auth.as_deref()).await?,
            ));
        }
        let table = (0..p.window)
            .map(|_| Logical {
                op: OpKind::Get,
                keys: Vec::new(),
                value_len: 0,
                intended: Instant::now(),
                remaining: 0,
                hits: 0,
                misses: 0,
                redirects: 0,
                error: None,
                tx_redirect: None,
            })
            .collect();
        Ok(Client {
            free: (0..p.window as u32).rev().collect(),
            p,
            map,
            conns,
            table,
            outstanding: 0,
            enc: Encoder::default(),
            key_buf: Vec::with_capacity(64),
            err_buf: Vec::with_capacity(128),
            slot_buf: Vec::new(),
            source,
            issued: 0,
            exhausted: false,
            stats: Stats::default(),
            local: LocalCounts::default(),
            poll_from: 0,
            unblocked_at: Instant::now(),
        })
    }

    /// Runs until the count is done or the stop time has passed and every reply is in (or the
    /// hard deadline).
    pub async fn run(mut self, sched: Schedule) -> ClientResult {
        let mut next_due = sched.first_due;
        let mut stopping = false;
        let mut hit_hard = false;
        let watchdog_period = (self.p.timeout / 4).max(Duration::from_millis(10));
        let mut watchdog_at = sched.start + watchdog_period;
        let sleep = tokio::time::sleep_until(sched.hard_deadline);
        tokio::pin!(sleep);
        let mut sleep_at = sched.hard_deadline;
        let mut publish_at = sched.start;
        loop {
            let now = Instant::now();
            if now >= sched.hard_deadline {
                hit_hard = self.outstanding > 0;
                self.fail_everything("timeout", now);
                break;
            }
            if !stopping && sched.stop_at.is_some_and(|s| now >= s) {
                stopping = true;
            }
            if now >= watchdog_at {
                self.check_timeouts(now);
                watchdog_at = now + watchdog_period;
            }
            // Issue what is allowed now.
            while !stopping && !self.exhausted && !self.free.is_empty() {
                let intended = match self.p.interval {
                    None => now,
                    Some(iv) => {
                        if next_due > now {
                            break;
                        }
                        let due = next_due;
                        next_due += iv;
                        // Coordinated omission: the time a due request waited for a free slot
                        // (replies the server owed us) counts as latency. The client's own
                        // lateness (timer granularity is 1 ms) does not; it is reported apart
                        // as the send lag.
                        let blocked = self.unblocked_at.saturating_duration_since(due);
                        let lag = now.saturating_duration_since(due).saturating_sub(blocked);
                        self.stats.record_lag(lag.as_micros() as u64);
                        now.checked_sub(blocked).unwrap_or(due).max(due)
                    }
                };
                if self.stats.first_send.is_none() {
                    self.stats.first_send = Some(now);
                }
                self.issue(intended, now);
            }
            self.flush_all(now);
            // Batched so the shared counters' cache line isn't bounced on every reply.
            if now >= publish_at {
                self.local.publish(&self.p.counters);
                publish_at = now + Duration::from_millis(20);
            }
            if self.outstanding == 0 && (stopping || self.exhausted || self.all_conns_dead()) {
                break;
            }
            let mut wake = sched.hard_deadline.min(watchdog_at);
            if !stopping {
                if let Some(s) = sched.stop_at {
                    wake = wake.min(s);
                }
                if self.p.interval.is_some() && !self.free.is_empty() && !self.exhausted {
                    wake = wake.min(next_due);
                }
            }
            if wake != sleep_at {
                sleep.as_mut().reset(wake);
                sleep_at = wake;
            }
            let from = self.poll_from;
            let event = tokio::select! {
                biased;
                ev = poll_fn(|cx| poll_io(&self.conns, from, cx)) => Some(ev),
                () = &mut sleep => None,
            };
            self.poll_from = self.poll_from.wrapping_add(1);
            match event {
                // A completed `Sleep` stays ready: force a reset before it is polled again.
                None => sleep_at = sched.start,
                Some(Event::Writable(i)) => {
                    if let Some(Some(c)) = self.conns.get_mut(i)
                        && let Err(e) = c.try_flush()
                    {
                        self.fail_conn(i, io_kind(&e), Instant::now());
                    }
                }
                Some(Event::Readable(i)) => self.on_readable(i).await,
                Some(Event::Failed(i, e)) => self.fail_conn(i, io_kind(&e), Instant::now()),
            }
        }
        self.local.publish(&self.p.counters);
        ClientResult {
            stats: self.stats,
            hit_hard_deadline: hit_hard,
        }
    }

    fn all_conns_dead(&self) -> bool {
        self.conns.iter().all(Option::is_none)
    }

    fn flush_all(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let failed = match self.conns.get_mut(i) {
                Some(Some(c)) if !c.wbuf.is_empty() => c.try_flush().err(),
                _ => None,
            };
            if let Some(e) = failed {
                self.fail_conn(i, io_kind(&e), now);
            }
        }
    }

    /// Starts one logical request: route it, encode its sub-requests.
    fn issue(&mut self, intended: Instant, now: Instant) {
        let Some(idx) = self.free.pop() else {
            return;
        };
        let Some(l) = self.table.get_mut(idx as usize) else {
            return;
        };
        let Some((op, value_len)) = self.source.next_op(&mut l.keys) else {
            self.exhausted = true;
            self.free.push(idx);
            return;
        };
        l.op = op;
        l.value_len = value_len;
        l.intended = intended;
        l.remaining = 0;
        l.hits = 0;
        l.misses = 0;
        l.redirects = 0;
        l.error = None;
        l.tx_redirect = None;
        self.issued += 1;
        self.outstanding += 1;
        if self.p.limit.is_some_and(|n| self.issued >= n) {
            self.exhausted = true;
        }
        let nkeys = l.keys.len() as u16;
        if !self.p.cluster {
            l.remaining = 1;
            self.send(idx, (0, nkeys), 0, false, now);
            return;
        }
        if op == OpKind::Tx {
            // Never split: the generator keeps a transaction's keys in one slot, and if they
            // were not, the node's CROSSSLOT is the answer to count.
            l.remaining = 1;
            self.key_buf.clear();
            self.p.keys.write_key(
                l.keys.first().copied().unwrap_or_default(),
                &mut self.key_buf,
            );
            match self.map.node_for(Slot::for_key(&self.key_buf)) {
                Some(node) => self.send(idx, (0, nkeys), node, false, now),
                None => self.sub_failed(idx, "unassigned-slot", now),
            }
            return;
        }
        // Cluster: group keys by slot (an MGET whose keys span slots becomes one MGET per slot).
        self.slot_buf.clear();
        for &id in &l.keys {
            self.key_buf.clear();
            self.p.keys.write_key(id, &mut self.key_buf);
            self.slot_buf.push((Slot::for_key(&self.key_buf).get(), id));
        }
        let single = self.slot_buf.windows(2).all(|w| w[0].0 == w[1].0);
        if !single {
            self.slot_buf.sort_unstable();
            for (k, (_, id)) in l.keys.iter_mut().zip(&self.slot_buf) {
                *k = *id;
            }
        }
        let n = self.slot_buf.len();
        l.remaining = 1 + self
            .slot_buf
            .windows(2)
            .filter(|w| w[0].0 != w[1].0)
            .count() as u32;
        let mut start = 0usize;
        for end in 1..=n {
            let slot = self.slot_buf[start].0;
            if end < n && self.slot_buf[end].0 == slot {
                continue;
            }
            match Slot::new(slot).and_then(|s| self.map.node_for(s)) {
                Some(node) => self.send(idx, (start as u16, end as u16), node, false, now),
                None => self.sub_failed(idx, "unassigned-slot", now),
            }
            start = end;
        }
    }

    /// Encodes the sub-request `keys` of logical `idx` onto `node`'s connection.
    fn send(&mut self, idx: u32, keys: (u16, u16), node: usize, asking: bool, now: Instant) {
        let Some(l) = self.table.get(idx as usize) else {
            return;
        };
        let Some(Some(c)) = self.conns.get_mut(node) else {
            self.sub_failed(idx, "io", now);
            return;
        };
        if c.inflight.is_empty() {
            c.active_at = now;
        }
        if asking {
            // Before a transaction it covers the whole of it, as in Redis.
            self.enc.command(&mut c.wbuf, &[b"ASKING"]);
            c.inflight.push_back(Pending {
                logical: idx,
                keys,
                role: Role::Asking,
            });
        }
        let ks = l
            .keys
            .get(usize::from(keys.0)..usize::from(keys.1))
            .unwrap_or_default();
        encode(
            &mut self.enc,
            &mut self.key_buf,
            &self.p.keys,
            &self.p.value,
            self.p.expiry,
            &mut c.wbuf,
            l.op,
            ks,
            l.value_len,
        );
        if l.op == OpKind::Tx {
            // MULTI's +OK and one +QUEUED per command, then EXEC's array.
            for _ in 0..=ks.len() {
                c.inflight.push_back(Pending {
                    logical: idx,
                    keys,
                    role: Role::Queued,
                });
            }
            c.inflight.push_back(Pending {
                logical: idx,
                keys,
                role: Role::Exec,
            });
        } else {
            c.inflight.push_back(Pending {
                logical: idx,
                keys,
                role: Role::Command,
            });
        }
    }

    async fn on_readable(&mut self, i: usize) {
        let filled = match self.conns.get_mut(i) {
            Some(Some(c)) => c.try_fill(),
            _ => return,
        };
        match filled {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.fail_conn(i, io_kind(&e), Instant::now());
                return;
            }
        }
        let now = Instant::now();
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            let (reply, n) = match skim(&c.rbuf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    self.fail_conn(i, "protocol", now);
                    return;
                }
            };
            if let Reply::Error(r)
            | Reply::Array {
                first_error: Some(r),
                ..
            } = &reply
            {
                self.err_buf.clear();
                self.err_buf
                    .extend_from_slice(c.rbuf.get(r.clone()).unwrap_or_default());
            }
            bytes::Buf::advance(&mut c.rbuf, n);
            c.active_at = now;
            let Some(pending) = c.inflight.pop_front() else {
                // A reply nobody asked for: the stream is out of step.
                self.fail_conn(i, "protocol", now);
                return;
            };
            self.on_reply(i, pending, reply, now).await;
        }
    }

    async fn on_reply(&mut self, conn: usize, p: Pending, reply: Reply, now: Instant) {
        match p.role {
            // The ASKING's own +OK; an error there shows up on the command after it.
            Role::Asking => return,
            Role::Queued => return self.on_queued(conn, p.logical, &reply),
            Role::Exec => return self.on_exec(conn, p, &reply, now).await,
            Role::Command => {}
        }
        let idx = p.logical;
        if let Reply::Error(_) = reply {
            if self.p.cluster {
                let action = self.redirect_for(conn, idx);
                if self.follow(idx, p.keys, action, now).await {
                    return;
                }
            }
            self.fail_with_err_buf(idx);
            return self.sub_done(idx, now);
        }
        let Some(l) = self.table.get_mut(idx as usize) else {
            return;
        };
        match reply {
            Reply::Nil if l.op == OpKind::Get => l.misses += 1,
            Reply::Bulk if l.op == OpKind::Get => l.hits += 1,
            Reply::Array { len, nils, .. } if l.op == OpKind::Mget => {
                l.hits += (len - nils) as u32;
                l.misses += nils as u32;
            }
            _ => {}
        }
        self.sub_done(idx, now);
    }

    /// A reply to a transaction's MULTI or queued command: `+OK`/`+QUEUED`, or an error that
    /// makes EXEC abort. A redirect is kept and followed once EXEC has answered.
    fn on_queued(&mut self, conn: usize, idx: u32, reply: &Reply) {
        let action = match reply {
            Reply::Status => return,
            Reply::Error(_) if self.p.cluster => self.redirect_for(conn, idx),
            Reply::Error(_) => Action::Fail,
            _ => {
                // The server ran the command instead of queueing it.
                if let Some(l) = self.table.get_mut(idx as usize) {
                    l.error.get_or_insert_with(|| "tx-not-queued".to_owned());
                }
                return;
            }
        };
        match action {
            Action::Moved { .. } | Action::Ask { .. } => {
                if let Some(l) = self.table.get_mut(idx as usize) {
                    l.tx_redirect.get_or_insert(action);
                }
            }
            Action::TooManyRedirects => {
                if let Some(l) = self.table.get_mut(idx as usize) {
                    l.error
                        .get_or_insert_with(|| "too-many-redirects".to_owned());
                }
            }
            Action::Fail => self.fail_with_err_buf(idx),
        }
    }

    /// EXEC's reply ends a transaction, unless it or a queued command was redirected: then the
    /// whole transaction goes again to the node named.
    async fn on_exec(&mut self, conn: usize, p: Pending, reply: &Reply, now: Instant) {
        let idx = p.logical;
        let Some(l) = self.table.get_mut(idx as usize) else {
            return;
        };
        let queued_redirect = l.tx_redirect.take();
        let commands = l.keys.len();
        if self.p.cluster {
            // EXEC itself is redirected when a slot moved after queueing (Redis checks the
            // queued keys again at EXEC).
            if let Reply::Error(_) = reply {
                let action = self.redirect_for(conn, idx);
                if self.follow(idx, p.keys, action, now).await {
                    return;
                }
            }
            if let Some(action) = queued_redirect
                && self.follow(idx, p.keys, action, now).await
            {
                return;
            }
        }
        match exec_verdict(reply, commands) {
            ExecVerdict::Done => {}
            ExecVerdict::ErrorReply => self.fail_with_err_buf(idx),
            ExecVerdict::Failed(kind) => {
                if let Some(l) = self.table.get_mut(idx as usize) {
                    l.error.get_or_insert_with(|| kind.to_owned());
                }
            }
        }
        self.sub_done(idx, now);
    }

    /// The redirect decision for the error reply in `err_buf`, received on `conn` for `idx`.
    fn redirect_for(&self, conn: usize, idx: u32) -> Action {
        let from = self
            .conns
            .get(conn)
            .and_then(|c| c.as_ref())
            .map_or(self.p.seed_addr, |c| c.addr);
        let redirects = self.table.get(idx as usize).map_or(0, |l| l.redirects);
        redirect_action(&self.err_buf, from, redirects, self.p.max_redirects)
    }

    /// Acts on a redirect for the part `keys` of `idx`: resends it (MOVED also updates the
    /// map) or fails it. `false` for `Action::Fail`: the error is the caller's to count.
    async fn follow(&mut self, idx: u32, keys: (u16, u16), action: Action, now: Instant) -> bool {
        let (slot, addr, ask) = match action {
            Action::Moved { slot, addr } => (slot, addr, false),
            Action::Ask { slot, addr } => (slot, addr, true),
            Action::TooManyRedirects => {
                self.sub_failed(idx, "too-many-redirects", now);
                return true;
            }
            Action::Fail => return false,
        };
        if let Some(l) = self.table.get_mut(idx as usize) {
            l.redirects += 1;
        }
        if ask {
            self.stats.asked += 1;
        } else {
            self.stats.moved += 1;
        }
        match self.node_for_addr(addr).await {
            Some(node) => {
                if !ask {
                    self.map.set_owner(slot, node as u16);
                }
                self.send(idx, keys, node, ask, now);
            }
            None => self.sub_failed(idx, "redirect-refused", now),
        }
        true
    }

    /// Records the error reply in `err_buf`, by its first word, as `idx`'s error (the first
    /// one a request meets is the one counted).
    fn fail_with_err_buf(&mut self, idx: u32) {
        if let Some(l) = self.table.get_mut(idx as usize)
            && l.error.is_none()
        {
            l.error = Some(String::from_utf8_lossy(error_kind(&self.err_buf)).into_owned());
        }
    }

    /// The node index for a redirect target, connecting if it is new. `None` if the address is
    /// not allowed or unreachable.
    async fn node_for_addr(&mut self, addr: SocketAddr) -> Option<usize> {
        if let Some(i) = self.map.nodes().iter().position(|a| *a == addr) {
            return self.conns.get(i).and_then(|c| c.as_ref()).map(|_| i);
        }
        if !address_allowed(self.p.seed_addr.ip(), addr.ip()) {
            return None;
        }
        let conn = Conn::connect(addr, self.p.timeout, self.p.auth.as_deref())
            .await
            .ok()?;
        let i = usize::from(self.map.node_index(addr));
        while self.conns.len() <= i {
            self.conns.push(None);
        }
        if let Some(slot) = self.conns.get_mut(i) {
            *slot = Some(conn);
        }
        Some(i)
    }

    fn sub_failed(&mut self, idx: u32, kind: &str, now: Instant) {
        if let Some(l) = self.table.get_mut(idx as usize) {
            l.error.get_or_insert_with(|| kind.to_owned());
        }
        self.sub_done(idx, now);
    }

    fn sub_done(&mut self, idx: u32, now: Instant) {
        let Some(l) = self.table.get_mut(idx as usize) else {
            return;
        };
        l.remaining = l.remaining.saturating_sub(1);
        if l.remaining > 0 {
            return;
        }
        let op = l.op;
        match l.error.take() {
            Some(kind) => {
                self.stats.record_failed(op, &kind);
                self.local.errors += 1;
            }
            None => {
                let us = now.saturating_duration_since(l.intended).as_micros() as u64;
                self.stats.record_ok(op, us);
                match op {
                    OpKind::Get => {
                        self.stats.get_hits += u64::from(l.hits);
                        self.stats.get_misses += u64::from(l.misses);
                    }
                    OpKind::Mget => {
                        self.stats.mget_key_hits += u64::from(l.hits);
                        self.stats.mget_key_misses += u64::from(l.misses);
                    }
                    OpKind::Set | OpKind::Tx => {}
                }
                self.local.latency_us_sum += us;
                self.local.latency_n += 1;
            }
        }
        self.local.ops[op.index()] += 1;
        self.stats.last_completion = Some(now);
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.free.is_empty() {
            self.unblocked_at = now;
        }
        self.free.push(idx);
    }

    /// Closes connection `i` and fails everything in flight on it. The client then stops
    /// issuing (as memtier's clients do): re-issuing into a dead connection would spin on
    /// instant failures. Its other connections drain.
    fn fail_conn(&mut self, i: usize, kind: &str, now: Instant) {
        let Some(slot) = self.conns.get_mut(i) else {
            return;
        };
        let Some(conn) = slot.take() else {
            return;
        };
        self.exhausted = true;
        for p in conn.inflight {
            if p.role.completes() {
                self.sub_failed(p.logical, kind, now);
            }
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let stale = match self.conns.get(i) {
                Some(Some(c)) => {
                    !c.inflight.is_empty()
                        && now.saturating_duration_since(c.active_at) >= self.p.timeout
                }
                _ => false,
            };
            if stale {
                self.fail_conn(i, "timeout", now);
            }
        }
    }

    fn fail_everything(&mut self, kind: &str, now: Instant) {
        for i in 0..self.conns.len() {
            let busy = matches!(self.conns.get(i), Some(Some(c)) if !c.inflight.is_empty());
            if busy {
                self.fail_conn(i, kind, now);
            }
        }
    }
}

fn io_kind(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::InvalidData => "protocol",
        _ => "io",
    }
}

/// The outcome of one phase (prefill or measurement) over all clients.
#[derive(Debug)]
pub struct PhaseOutcome {
    pub stats: Stats,
    pub duration: Duration,
    pub hit_hard_deadline: bool,
    pub timeline: Vec<TimelinePoint>,
}

/// Runs one client per source: all connect first, then start together. `stop_after` ends
/// sending (time runs); `hard_cap` ends everything. `label` prefixes the progress line (`None`:
/// no progress line).
pub async fn run_phase(
    params: Arc<Params>,
    map: &SlotMap,
    sources: Vec<Source>,
    stop_after: Option<Duration>,
    hard_cap: Duration,
    label: Option<String>,
) -> anyhow::Result<PhaseOutcome> {
    let n = sources.len();
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(n.max(1));
    let (start_tx, start_rx) = watch::channel::<Option<(Instant, Option<Instant>, Instant)>>(None);
    let mut handles = Vec::with_capacity(n);
    for (i, source) in sources.into_iter().enumerate() {
        let p = Arc::clone(&params);
        let map = map.clone();
        let ready = ready_tx.clone();
        let mut start = start_rx.clone();
        handles.push(tokio::spawn(async move {
            let client = match Client::connect(Arc::clone(&p), map, source).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string())).await;
                    return None;
                }
            };
            if ready.send(Ok(())).await.is_err() {
                return None;
            }
            drop(ready);
            let (t0, stop_at, hard) = loop {
                if let Some(s) = *start.borrow_and_update() {
                    break s;
                }
                if start.changed().await.is_err() {
                    return None;
                }
            };
            let first_due = match p.interval {
                Some(iv) => t0 + iv.mul_f64(i as f64 / n as f64),
                None => t0,
            };
            let sched = Schedule {
                start: t0,
                stop_at,
                hard_deadline: hard,
                first_due,
            };
            Some(client.run(sched).await)
        }));
    }
    drop(ready_tx);
    let abort_all = |handles: &[tokio::task::JoinHandle<Option<ClientResult>>]| {
        for h in handles {
            h.abort();
        }
    };
    let connect_deadline = Instant::now() + params.timeout * 2 + Duration::from_secs(1);
    for _ in 0..n {
        match tokio::time::timeout_at(connect_deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                abort_all(&handles);
                anyhow::bail!("connecting: {e}");
            }
            Ok(None) => {
                abort_all(&handles);
                anyhow::bail!("a client task ended before connecting");
            }
            Err(_) => {
                abort_all(&handles);
                anyhow::bail!("connecting {n} clients timed out");
            }
        }
    }
    let t0 = Instant::now();
    let hard = t0 + hard_cap;
    let stop_at = stop_after.map(|d| t0 + d);
    let (done_tx, done_rx) = watch::channel(false);
    let ticker = tokio::spawn(ticker(
        Arc::clone(&params.counters),
        t0,
        done_rx,
        label,
        params.limit.map(|l| l * n as u64),
        stop_after,
    ));
    let _ = start_tx.send(Some((t0, stop_at, hard)));
    let mut stats = Stats::default();
    let mut hit_hard = false;
    for h in handles {
        // A client task cannot outlive `hard` by more than one reply batch; the extra second
        // bounds a task that is stuck in a connect to a redirect target.
        match tokio::time::timeout_at(hard + params.timeout + Duration::from_secs(1), h).await {
            Ok(Ok(Some(r))) => {
                stats.merge(&r.stats);
                hit_hard |= r.hit_hard_deadline;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => stats.count_error(&format!("task:{e}"), 1),
            Err(_) => {
                hit_hard = true;
                stats.count_error("timeout", 1);
            }
        }
    }
    let end = stats.last_completion.unwrap_or_else(Instant::now).max(t0);
    let _ = done_tx.send(true);
    let timeline = ticker.await.unwrap_or_default();
    Ok(PhaseOutcome {
        stats,
        duration: end - t0,
        hit_hard_deadline: hit_hard,
        timeline,
    })
}

/// Samples the counters once a second: the timeline, and the progress line on stderr.
async fn ticker(
    counters: Arc<Counters>,
    t0: Instant,
    mut done: watch::Receiver<bool>,
    label: Option<String>,
    total: Option<u64>,
    test_time: Option<Duration>,
) -> Vec<TimelinePoint> {
    let mut timeline = Vec::new();
    let mut last = [0u64; OpKind::COUNT];
    let mut last_err = 0;
    let mut last_lat = (0u64, 0u64);
    let mut last_t = t0;
    let mut tick = tokio::time::interval_at(t0 + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        let finished = tokio::select! {
            _ = tick.tick() => false,
            _ = done.changed() => true,
        };
        let now = Instant::now();
        let ops: [u64; OpKind::COUNT] =
            std::array::from_fn(|i| counters.ops[i].load(Ordering::Relaxed));
        let err = counters.errors.load(Ordering::Relaxed);
        let lat = (
            counters.latency_us_sum.load(Ordering::Relaxed),
            counters.latency_n.load(Ordering::Relaxed),
        );
        let dt = now.saturating_duration_since(last_t).as_secs_f64();
        if dt > 0.05 || !finished {
            let rate = |i: usize| (ops[i] - last[i]) as f64 / dt.max(1e-9);
            let n = lat.1 - last_lat.1;
            let point = TimelinePoint {
                t_secs: now.saturating_duration_since(t0).as_secs_f64(),
                ops_per_sec: (0..OpKind::COUNT).map(rate).sum(),
                set_per_sec: rate(OpKind::Set.index()),
                get_per_sec: rate(OpKind::Get.index()),
                mget_per_sec: rate(OpKind::Mget.index()),
                tx_per_sec: rate(OpKind::Tx.index()),
                errors: err - last_err,
                mean_latency_ms: if n > 0 {
                    (lat.0 - last_lat.0) as f64 / n as f64 / 1000.0
                } else {
                    0.0
                },
            };
            if let Some(label) = &label {
                let done_n: u64 = ops.iter().sum();
                let pct = match (total, test_time) {
                    (Some(t), _) if t > 0 => {
                        format!(" {:.0}%", 100.0 * done_n as f64 / t as f64)
                    }
                    (_, Some(tt)) => format!(
                        " {:.0}%",
                        (100.0 * point.t_secs / tt.as_secs_f64()).min(100.0)
                    ),
                    _ => String::new(),
                };
                let mix = if ops[OpKind::Tx.index()] > 0 {
                    format!("TX {:.0}", point.tx_per_sec)
                } else {
                    format!(
                        "SET {:.0}, GET {:.0}, MGET {:.0}",
                        point.set_per_sec, point.get_per_sec, point.mget_per_sec
                    )
                };
                eprintln!(
                    "[{label}{pct} {:.0}s] {:.0} ops/s ({mix}), {} requests, {} errors, avg {:.3} ms",
                    point.t_secs, point.ops_per_sec, done_n, err, point.mean_latency_ms
                );
            }
            timeline.push(point);
        }
        last = ops;
        last_err = err;
        last_lat = lat;
        last_t = now;
        if finished {
            return timeline;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_protocol::resp2::decode::decode_bytes_mut;
    use redis_protocol::resp2::types::BytesFrame;

    fn space() -> KeySpace {
        KeySpace {
            prefix: b"k:".to_vec(),
            min: 0,
            max: 99,
            group_size: 10,
        }
    }

    /// The commands in `buf`, each as its arguments.
    fn commands(mut buf: BytesMut) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        while let Some((frame, _, _)) = decode_bytes_mut(&mut buf).expect("valid RESP") {
            let BytesFrame::Array(parts) = frame else {
                panic!("not a command: {frame:?}");
            };
            out.push(
                parts
                    .iter()
                    .map(|p| match p {
                        BytesFrame::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        other => panic!("not a bulk string: {other:?}"),
                    })
                    .collect(),
            );
        }
        assert!(buf.is_empty(), "trailing bytes");
        out
    }

    fn encoded(op: OpKind, keys: &[u64]) -> Vec<Vec<String>> {
        let mut wbuf = BytesMut::new();
        encode(
            &mut Encoder::default(),
            &mut Vec::new(),
            &space(),
            b"vvvv",
            None,
            &mut wbuf,
            op,
            keys,
            2,
        );
        commands(wbuf)
    }

    #[test]
    fn encodes_each_kind() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(encoded(OpKind::Set, &[7]), [v(&["SET", "k:{0}:7", "vv"])]);
        assert_eq!(encoded(OpKind::Get, &[17]), [v(&["GET", "k:{1}:17"])]);
        assert_eq!(
            encoded(OpKind::Mget, &[20, 21]),
            [v(&["MGET", "k:{2}:20", "k:{2}:21"])]
        );
        assert_eq!(
            encoded(OpKind::Tx, &[35, 36, 37]),
            [
                v(&["MULTI"]),
                v(&["INCR", "k:{3}:35"]),
                v(&["INCR", "k:{3}:36"]),
                v(&["INCR", "k:{3}:37"]),
                v(&["EXEC"]),
            ]
        );
    }

    #[test]
    fn exec_replies_are_judged() {
        let judge = |b: &[u8]| {
            let (r, n) = skim(b).expect("valid").expect("complete");
            assert_eq!(n, b.len());
            exec_verdict(&r, 3)
        };
        assert_eq!(judge(b"*3\r\n:1\r\n:1\r\n:2\r\n"), ExecVerdict::Done);
        assert_eq!(
            judge(b"*3\r\n:1\r\n-ERR value is not an integer or out of range\r\n:2\r\n"),
            ExecVerdict::ErrorReply
        );
        assert_eq!(
            judge(b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
            ExecVerdict::ErrorReply
        );
        assert_eq!(judge(b"*-1\r\n"), ExecVerdict::Failed("exec-nil"));
        assert_eq!(
            judge(b"*2\r\n:1\r\n:1\r\n"),
            ExecVerdict::Failed("exec-length")
        );
        assert_eq!(judge(b"+OK\r\n"), ExecVerdict::Failed("exec-not-array"));
    }
}
