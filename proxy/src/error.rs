//! Errors per layer, and the one place where they become Redis error replies.

use crate::protocol::Reply;

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
}

/// Errors answered to a client for one command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("unknown command")]
    UnknownCommand { name: String, args: Vec<String> },
    #[error("unknown subcommand")]
    UnknownSubcommand { container: String, sub: String },
    #[error("wrong number of arguments for '{0}'")]
    WrongArity(String),
    #[error("unsupported through the proxy")]
    Unsupported { name: String, reason: &'static str },
    #[error("keys in different slots")]
    CrossSlot,
    #[error("slot {0} not served")]
    ClusterDown(u16),
    #[error("authentication required")]
    NoAuth,
    #[error("wrong password")]
    WrongPass,
    #[error("AUTH without a password configured")]
    AuthNotConfigured,
    #[error("too many redirects")]
    TooManyRedirects(String),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Err(String),
    /// An error line with its own prefix (`NOPROTO ...`).
    #[error("{0}")]
    Raw(String),
}

impl CmdError {
    pub fn err(msg: impl Into<String>) -> CmdError {
        CmdError::Err(msg.into())
    }

    /// The error line as Redis writes it (without the leading `-`).
    pub fn to_line(&self) -> String {
        match self {
            CmdError::UnknownCommand { name, args } => {
                let mut s = format!(
                    "ERR unknown command '{}', with args beginning with: ",
                    clip(name)
                );
                for a in args.iter().take(20) {
                    s.push('\'');
                    s.push_str(&clip(a));
                    s.push_str("' ");
                }
                s
            }
            CmdError::UnknownSubcommand { container, sub } => format!(
                "ERR unknown subcommand '{}'. Try {}|HELP.",
                clip(sub),
                container.to_ascii_uppercase()
            ),
            CmdError::WrongArity(name) => {
                format!("ERR wrong number of arguments for '{name}' command")
            }
            CmdError::Unsupported { name, reason } => format!(
                "ERR {} is not supported through the proxy: {reason}",
                clip(&name.to_ascii_uppercase())
            ),
            CmdError::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            CmdError::ClusterDown(slot) => format!("CLUSTERDOWN Hash slot {slot} not served"),
            CmdError::NoAuth => "NOAUTH Authentication required.".into(),
            CmdError::WrongPass => {
                "WRONGPASS invalid username-password pair or user is disabled.".into()
            }
            CmdError::AuthNotConfigured => "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into(),
            CmdError::TooManyRedirects(last) => {
                format!("ERR too many cluster redirects (last: {})", clip(last))
            }
            CmdError::Backend(e) => format!("ERR {e}"),
            CmdError::Err(m) => format!("ERR {m}"),
            CmdError::Raw(m) => m.clone(),
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

/// Redis quotes at most 128 characters of user input in error messages.
fn clip(s: &str) -> String {
    s.chars().take(128).collect()
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
