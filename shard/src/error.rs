//! Errors a command can produce, and the one place where they become Redis error replies with
//! Redis's wording.

use crate::protocol::Reply;
use membership::resp::errors;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("unknown command")]
    UnknownCommand { name: String, args: Vec<String> },
    #[error("unknown subcommand")]
    UnknownSubcommand {
        container: &'static str,
        sub: String,
    },
    #[error("wrong number of arguments")]
    WrongArity(String),
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
    #[error("authentication required")]
    NoAuth,
    #[error("wrong password")]
    WrongPass,
    #[error("string too long")]
    StringTooLong,
    #[error("NaN or Infinity")]
    NanOrInfinity,
    #[error("out of range")]
    OutOfRange,
    /// An `ERR` error with a message specific to one command.
    #[error("{0}")]
    Err(String),
    /// An error with its own prefix, e.g. `NOPROTO ...`.
    #[error("{0}")]
    Raw(String),
}

pub type CmdResult = Result<Reply, CmdError>;

impl CmdError {
    pub fn err(msg: impl Into<String>) -> CmdError {
        CmdError::Err(msg.into())
    }

    /// The error line as Redis writes it (without the leading `-`).
    pub fn to_line(&self) -> String {
        match self {
            CmdError::UnknownCommand { name, args } => errors::unknown_command(name, args),
            CmdError::UnknownSubcommand { container, sub } => {
                errors::unknown_subcommand(container, sub)
            }
            CmdError::WrongArity(name) => errors::wrong_arity(name),
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
            CmdError::NoAuth => errors::NOAUTH.into(),
            CmdError::WrongPass => errors::WRONGPASS.into(),
            CmdError::StringTooLong => {
                "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into()
            }
            CmdError::NanOrInfinity => "ERR increment would produce NaN or Infinity".into(),
            CmdError::OutOfRange => "ERR value is out of range".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording_matches_redis() {
        let unknown = CmdError::UnknownCommand {
            name: "foo".into(),
            args: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            unknown.to_line(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            CmdError::WrongArity("get".into()).to_line(),
            "ERR wrong number of arguments for 'get' command"
        );
        let sub = CmdError::UnknownSubcommand {
            container: "client",
            sub: "foo".into(),
        };
        assert_eq!(
            sub.to_line(),
            "ERR unknown subcommand 'foo'. Try CLIENT|HELP."
        );
    }
}
