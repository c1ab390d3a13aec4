//! A client connection's own state: what the planner and the locally answered commands read
//! and change (protocol, authentication, QUIT, writes in flight). The session owns it and lends
//! it down, so this module depends on nothing of the proxy's but the protocol and the pub/sub
//! client state.

use crate::protocol::Proto;

/// Per-connection state the planner and local commands use.
pub struct Session {
    pub id: u64,
    pub proto: Proto,
    pub authed: bool,
    /// Close after the replies queued so far (QUIT, protocol errors).
    pub close: bool,
    /// Writes planned whose replies have not been rendered yet (near cache on): while any is
    /// in flight, the session is not served values kept through a write's fence.
    pub writes: usize,
    /// An open transaction (MULTI ... EXEC).
    pub tx: Option<crate::transaction::Tx>,
    /// WATCH's pinned backend connection, until EXEC, DISCARD, UNWATCH or RESET.
    pub watch: Option<crate::transaction::Watch>,
    /// Its subscriptions and message queue (see `crate::pubsub`).
    pub pubsub: crate::pubsub::ClientSubs,
}
