//! What the migration tasks share: their context, the node they run in, and their error.

use std::sync::Arc;

use membership::swim::{AgentHandle, NodeId, QuicStreams};
use tokio_util::sync::CancellationToken;

use super::gate::Migrations;
use crate::store::Db;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("the destination refused: {0}")]
    Refused(String),
    #[error("bad frame from peer: {0}")]
    Frame(&'static str),
    #[error("warm tier: {0}")]
    Warm(String),
    #[error("{0}")]
    Aborted(String),
}

pub(super) fn io(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Transport(e.to_string())
}

/// What the migration tasks use of the node they run in. `crate::shared::Shared` is the one
/// implementation; the tasks see it through this trait so that migration sits below the shared
/// state (which holds the migration gates) rather than importing it back. Not on any command's
/// path: called per batch and per view change.
pub trait Node: Send + Sync + 'static {
    fn db(&self) -> &Db;
    /// Unix ms by the server's clock (`crate::clock`).
    fn now_ms(&self) -> u64;
    /// Cancelled when the server stops.
    fn shutdown(&self) -> &CancellationToken;
    /// A PUBLISH made on another node of the cluster: delivered to this node's subscribers.
    fn publish(&self, channel: &[u8], message: &[u8]);
}

/// What the migration tasks need.
#[derive(Clone)]
pub struct Ctx {
    pub node: Arc<dyn Node>,
    pub handle: AgentHandle,
    pub me: NodeId,
    pub streams: QuicStreams,
    pub migrations: Arc<Migrations>,
    /// Whether this node migrates the agent's balancing plan by itself.
    pub auto: bool,
}

impl Ctx {
    pub(super) fn db(&self) -> &Db {
        self.node.db()
    }

    pub(super) fn now(&self) -> u64 {
        self.node.now_ms()
    }

    pub(super) fn stopping(&self) -> &CancellationToken {
        self.node.shutdown()
    }
}
