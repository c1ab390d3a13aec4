//! Errors per layer, and the one place where they become Redis error replies.

use crate::protocol::Reply;
use membership::resp::{CommandError, errors};

/// Backend (shard connection) failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No live connection to the shard; `reason` is the last connect error.
    #[error("backend {addr} unavailable: {reason}")]
    Unavailable { addr: String, reason: String },
    /// The connection broke while the request was in flight.
    #[error("backend {addr} connection lost: {reason}")]
    Lost { addr: String, reason: String },
    #[error("backend {addr} timed out after {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error("backend {addr} rejected authentication: {reason}")]
    Auth { addr: String, reason: String },
    #[error("backend {addr} protocol error: {reason}")]
    Protocol { addr: String, reason: String },
}

/// Topology (slot map) failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("no seed answered ({0})")]
    NoSeed(String),
    #[error(transparent)]
    Map(#[from] membership::topology::TopologyError),
    #[error("seed {addr}: {reason}")]
    Seed { addr: String, reason: String },
    /// The seed refused the proxy's credentials (or wants some and none are configured).
    #[error("backend {addr} refused the proxy's credentials: {reason}")]
    Auth { addr: String, reason: String },
}

/// Errors answered to a client for one command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("unsupported through the proxy")]
    Unsupported { name: String, reason: &'static str },
    #[error("keys in different slots")]
    CrossSlot,
    #[error("slot {0} not served")]
    ClusterDown(u16),
    #[error("AUTH without a password configured")]
    AuthNotConfigured,
    #[error("too many redirects")]
    TooManyRedirects(String),
    #[error("{0}")]
    Backend(#[from] BackendError),
}

impl CmdError {
    pub fn err(msg: impl Into<String>) -> CmdError {
        CmdError::Command(CommandError::Err(msg.into()))
    }

    /// The error line as Redis writes it (without the leading `-`).
    pub fn to_line(&self) -> String {
        match self {
            CmdError::Command(e) => e.to_line(),
            CmdError::Unsupported { name, reason } => format!(
                "ERR {} is not supported through the proxy: {reason}",
                errors::clip(&name.to_ascii_uppercase())
            ),
            CmdError::CrossSlot => errors::CROSSSLOT.into(),
            CmdError::ClusterDown(slot) => format!("CLUSTERDOWN Hash slot {slot} not served"),
            CmdError::AuthNotConfigured => errors::AUTH_NOT_CONFIGURED.into(),
            CmdError::TooManyRedirects(last) => {
                format!(
                    "ERR too many cluster redirects (last: {})",
                    errors::clip(last)
                )
            }
            CmdError::Backend(e) => format!("ERR {e}"),
        }
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        Reply::Error(e.to_line())
    }
}

impl From<BackendError> for Reply {
    fn from(e: BackendError) -> Reply {
        CmdError::Backend(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(
            CmdError::CrossSlot.to_line(),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
        let e = CmdError::Backend(BackendError::Unavailable {
            addr: "127.0.0.1:7001".into(),
            reason: "Connection refused (os error 111)".into(),
        });
        assert_eq!(
            e.to_line(),
            "ERR backend 127.0.0.1:7001 unavailable: Connection refused (os error 111)"
        );
        assert_eq!(
            CmdError::Unsupported {
                name: "blpop".into(),
                reason: "why"
            }
            .to_line(),
            "ERR BLPOP is not supported through the proxy: why"
        );
    }
}
