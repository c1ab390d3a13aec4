//! Per-connection state that commands read and change.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use membership::command::CommandSpec;

use crate::clients::ClientHandle;
use crate::protocol::Proto;
use crate::shared::Shared;

/// Per-connection state that commands read and change.
pub struct Session {
    pub shared: Arc<Shared>,
    pub handle: Arc<ClientHandle>,
    pub proto: Proto,
    pub authenticated: bool,
    pub close_after_reply: bool,
    /// CLIENT TRACKING settings (None: off).
    pub tracking: Option<crate::tracking::Options>,
    /// CLIENT CACHING yes|no, for the next command only.
    pub caching_next: Option<bool>,
    /// Set by ASKING for the next command only (Redis Cluster's one-shot flag).
    pub asking: bool,
    /// Unix ms, fixed for the batch being executed.
    pub now: u64,
    pub(super) hits: u64,
    pub(super) misses: u64,
    pub(super) commands: u64,
    pub(super) last_cmd: &'static str,
    /// The table entry of the command just executed (`None`: unknown command).
    pub last_spec: Option<&'static CommandSpec>,
    /// Trace context for the next command, from `AUTOCACHE.TRACE`.
    pub trace_next: Option<telemetry::TraceParent>,
    /// Set by a blocking command that found nothing: the connection waits before its next
    /// command.
    pub blocked: Option<super::blocking::Blocked>,
    /// MULTI/EXEC/WATCH state.
    pub(crate) tx: super::multi::Tx,
    /// Set when the command just executed was refused before it ran (INFO commandstats'
    /// `rejected_calls`).
    pub rejected: bool,
    /// CLIENT REPLY.
    pub reply_mode: ReplyMode,
    /// CLIENT NO-TOUCH.
    pub no_touch: bool,
    /// MONITOR was sent: this connection receives every command.
    pub monitoring: bool,
}

/// CLIENT REPLY's state: whether replies are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// CLIENT REPLY SKIP was just executed: the next command's reply is dropped.
    SkipNext,
    /// This command's reply is dropped, then replies resume.
    Skip,
}

impl Session {
    /// Whether the reply of the command just executed is written (CLIENT REPLY), advancing
    /// SKIP's state.
    pub fn reply_wanted(&mut self) -> bool {
        match self.reply_mode {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::SkipNext => {
                self.reply_mode = ReplyMode::Skip;
                false
            }
            ReplyMode::Skip => {
                self.reply_mode = ReplyMode::On;
                false
            }
        }
    }
}

impl Session {
    pub fn new(shared: &Arc<Shared>, handle: Arc<ClientHandle>) -> Session {
        Session {
            authenticated: shared.requirepass().is_none(),
            shared: shared.clone(),
            handle,
            proto: Proto::Resp2,
            close_after_reply: false,
            tracking: None,
            caching_next: None,
            asking: false,
            now: 0,
            hits: 0,
            misses: 0,
            commands: 0,
            last_cmd: "",
            last_spec: None,
            trace_next: None,
            blocked: None,
            tx: Default::default(),
            rejected: false,
            reply_mode: ReplyMode::On,
            no_touch: false,
            monitoring: false,
        }
    }

    pub fn begin_batch(&mut self) {
        self.now = self.shared.clock.now_ms();
    }

    /// Publishes the batch's counters: one atomic add per counter per batch, not per command.
    pub fn end_batch(&mut self) {
        let stats = &self.shared.stats;
        if self.commands > 0 {
            stats
                .total_commands
                .fetch_add(std::mem::take(&mut self.commands), Relaxed);
            self.handle.record_activity(self.now, self.last_cmd);
        }
        if self.hits > 0 {
            stats
                .keyspace_hits
                .fetch_add(std::mem::take(&mut self.hits), Relaxed);
        }
        if self.misses > 0 {
            stats
                .keyspace_misses
                .fetch_add(std::mem::take(&mut self.misses), Relaxed);
        }
    }

    /// Keyspace hits and misses of the current batch so far.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Counts a keyspace lookup for INFO's hit/miss statistics.
    pub fn hit(&mut self, found: bool) {
        if found {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }
}
