//! Errors a command can produce, and the one place where they become Redis error replies with
//! Redis's wording.

use crate::protocol::Reply;
use membership::resp::{CommandError, errors};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("wrong type")]
    WrongType,
    #[error("not an integer")]
    NotInteger,
    #[error("not a float")]
    NotFloat,
    #[error("hash value is not an integer")]
    HashNotInteger,
    #[error("hash value is not a float")]
    HashNotFloat,
    #[error("syntax error")]
    Syntax,
    #[error("overflow")]
    Overflow,
    #[error("no such key")]
    NoSuchKey,
    #[error("invalid expire time")]
    InvalidExpire(&'static str),
    #[error("out of memory")]
    Oom,
    #[error("string too long")]
    StringTooLong,
    #[error("NaN or Infinity")]
    NanOrInfinity,
    #[error("out of range")]
    OutOfRange,
    /// A command a RESP2 connection in subscribed mode may not run (its full name).
    #[error("not allowed in subscribed mode")]
    PubsubContext(String),
    /// A known container's subcommand with arguments it does not take (`PUBSUB CHANNELS a b`).
    #[error("subcommand syntax")]
    SubcommandSyntax { container: String, sub: String },
}

pub type CmdResult = Result<Reply, CmdError>;

impl CmdError {
    pub fn err(msg: impl Into<String>) -> CmdError {
        CmdError::Command(CommandError::Err(msg.into()))
    }

    /// The error line as Redis writes it (without the leading `-`).
    pub fn to_line(&self) -> String {
        match self {
            CmdError::Command(e) => e.to_line(),
            CmdError::WrongType => errors::WRONGTYPE.into(),
            CmdError::NotInteger => "ERR value is not an integer or out of range".into(),
            CmdError::NotFloat => "ERR value is not a valid float".into(),
            CmdError::HashNotInteger => "ERR hash value is not an integer".into(),
            CmdError::HashNotFloat => "ERR hash value is not a float".into(),
            CmdError::Syntax => "ERR syntax error".into(),
            CmdError::Overflow => "ERR increment or decrement would overflow".into(),
            CmdError::NoSuchKey => "ERR no such key".into(),
            CmdError::InvalidExpire(cmd) => format!("ERR invalid expire time in '{cmd}' command"),
            CmdError::Oom => "OOM command not allowed when used memory > 'maxmemory'.".into(),
            CmdError::StringTooLong => {
                "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into()
            }
            CmdError::NanOrInfinity => "ERR increment would produce NaN or Infinity".into(),
            CmdError::OutOfRange => "ERR value is out of range".into(),
            CmdError::PubsubContext(name) => format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ),
            CmdError::SubcommandSyntax { container, sub } => format!(
                "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {container} HELP."
            ),
        }
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        Reply::Error(e.to_line())
    }
}
