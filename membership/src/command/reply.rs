//! `COMMAND` and its subcommands (COUNT, INFO, DOCS, LIST, GETKEYS, HELP), built from the
//! table, so the shard and the proxy describe the commands alike and as Redis 7 does: the same
//! reply types (sets in RESP3), key specs with Redis's flags, tips, subcommands.
//!
//! Only served commands are described ([`COMMANDS`]): a refused row is unknown to `COMMAND`
//! as to the servers.

use bytes::Bytes;

use super::{COMMANDS, CommandId, CommandSpec, KeyUse, full_name, lookup, lookup_full};
use crate::keyspec::{BeginSearch, FindKeys, KeySpec};
use crate::resp::Reply;

/// Why a `COMMAND` subcommand fails; [`CommandError::message`] is Redis's text after `ERR `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// `COMMAND LIST` with a filter it does not know.
    Syntax,
    /// `COMMAND GETKEYS` of an unknown command or subcommand.
    InvalidCommand,
    /// `COMMAND GETKEYS` of a keyless command.
    NoKeys,
    /// `COMMAND GETKEYS` with an argument count the command's arity refuses.
    InvalidArgCount,
}

impl CommandError {
    pub const fn message(self) -> &'static str {
        match self {
            CommandError::Syntax => "syntax error",
            CommandError::InvalidCommand => "Invalid command specified",
            CommandError::NoKeys => "The command has no key arguments",
            CommandError::InvalidArgCount => "Invalid number of arguments specified for command",
        }
    }
}

/// The reply to `COMMAND ...` (`argv[0]` is `COMMAND`; `id` is the resolved subcommand, or
/// [`CommandId::Command`] alone). `glob(pattern, name)` matches `COMMAND LIST FILTERBY
/// PATTERN`, case-insensitively as Redis does. Any other id gets the help.
pub fn command(
    id: CommandId,
    argv: &[&[u8]],
    glob: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<Reply, CommandError> {
    let names = argv.get(2..).unwrap_or(&[]);
    Ok(match id {
        CommandId::Command => Reply::Array(COMMANDS.iter().map(|c| info(c, c)).collect()),
        CommandId::CommandCount => Reply::Int(COMMANDS.len() as i64),
        CommandId::CommandInfo if names.is_empty() => {
            Reply::Array(COMMANDS.iter().map(|c| info(c, c)).collect())
        }
        CommandId::CommandInfo => Reply::Array(
            names
                .iter()
                .map(|n| lookup_full(n).map_or(Reply::Nil, |(t, s)| info(t, s)))
                .collect(),
        ),
        CommandId::CommandDocs if names.is_empty() => Reply::Map(
            COMMANDS
                .iter()
                .map(|c| (Reply::str(c.name), docs(c, c)))
                .collect(),
        ),
        CommandId::CommandDocs => Reply::Map(
            names
                .iter()
                .filter_map(|n| lookup_full(n))
                .map(|(t, s)| (Reply::str(&full_name(t, s)), docs(t, s)))
                .collect(),
        ),
        CommandId::CommandList => list(argv, glob)?,
        CommandId::CommandGetkeys => getkeys(names)?,
        _ => help(
            "COMMAND",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "GETKEYS <full-command>",
                "    Return the keys from a full Redis command.",
            ],
        ),
    })
}

/// A container's `HELP` reply: the header line, the lines, and the closing HELP entry.
pub fn help(container: &str, lines: &[&str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )));
    out.extend(lines.iter().map(|l| Reply::Status((*l).to_string())));
    out.push(Reply::Simple("HELP"));
    out.push(Reply::Simple("    Print this help."));
    Reply::Array(out)
}

fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn map(pairs: impl IntoIterator<Item = (&'static str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect())
}

/// One `COMMAND INFO` entry: name, arity, flags, first, last, step, ACL categories, tips, key
/// specs, subcommands. Flags, categories and tips are sets, as Redis sends them. Key specs and
/// subcommands are arrays: Redis 7 sends the key specs as a set of maps (and no subcommands as
/// an empty set), which RESP3 decoders that hash set members reject (the `redis-protocol`
/// crate does); an array of maps decodes everywhere.
fn info(top: &'static CommandSpec, spec: &'static CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::str(&full_name(top, spec)),
        Reply::Int(i64::from(spec.arity)),
        Reply::Set(spec.flags.names().map(Reply::Simple).collect()),
        Reply::Int(i64::from(spec.keys.first)),
        Reply::Int(i64::from(spec.keys.last)),
        Reply::Int(i64::from(spec.keys.step)),
        Reply::Set(
            spec.acl_categories()
                .into_iter()
                .map(Reply::Simple)
                .collect(),
        ),
        Reply::Set(spec.tips.iter().map(|t| bulk(t)).collect()),
        Reply::Array(key_specs(spec)),
        Reply::Array(spec.subcommands.iter().map(|s| info(top, s)).collect()),
    ])
}

/// Key specs from the key positions and the key use: one `range` spec over all the keys, or,
/// with one use per key, one spec per key (RENAME: the source, then the destination), the last
/// of which spans the remaining keys when the range is open-ended (SINTERSTORE: the
/// destination, then every source).
fn key_specs(spec: &CommandSpec) -> Vec<Reply> {
    if !spec.specs.is_empty() {
        return spec
            .specs
            .iter()
            .zip(spec.key_use)
            .map(|(k, u)| key_spec(u, k))
            .collect();
    }
    let keys = spec.keys;
    if keys.is_none() {
        return Vec::new();
    }
    let one = spec.key_use.len() == 1;
    spec.key_use
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (index, lastkey, keystep) = if one {
                let lastkey = if keys.last < 0 {
                    keys.last
                } else {
                    keys.last - keys.first
                };
                (keys.first, lastkey, keys.step)
            } else if i + 1 == spec.key_use.len() && keys.last < 0 {
                // The last use covers the rest of the keys (SINTERSTORE's sources).
                (
                    keys.first + i as i32 * keys.step.max(1),
                    keys.last,
                    keys.step,
                )
            } else {
                (keys.first + i as i32 * keys.step.max(1), 0, 1)
            };
            let find = FindKeys::Range {
                lastkey,
                step: keystep.max(0) as usize,
                limit: 0,
            };
            let begin = BeginSearch::Index(index.max(0) as usize);
            key_spec(
                u,
                &KeySpec {
                    begin,
                    find,
                    write: false,
                    not_key: false,
                },
            )
        })
        .collect()
}

/// One key spec as `COMMAND INFO` shows it: notes, flags, `begin_search`, `find_keys`.
fn key_spec(u: &KeyUse, k: &KeySpec) -> Reply {
    let int = |n: i64| Reply::Int(n);
    let mut fields = Vec::with_capacity(4);
    if !u.notes.is_empty() {
        fields.push(("notes", bulk(u.notes)));
    }
    fields.push((
        "flags",
        Reply::Set(u.flags.iter().map(|f| Reply::Simple(f)).collect()),
    ));
    let begin = match &k.begin {
        BeginSearch::Index(i) => map([
            ("type", bulk("index")),
            ("spec", map([("index", int(*i as i64))])),
        ]),
        BeginSearch::Keyword { keyword, startfrom } => map([
            ("type", bulk("keyword")),
            (
                "spec",
                map([
                    ("keyword", bulk(keyword)),
                    ("startfrom", int(i64::from(*startfrom))),
                ]),
            ),
        ]),
        BeginSearch::Unknown => map([("type", bulk("unknown")), ("spec", map([]))]),
    };
    fields.push(("begin_search", begin));
    let find = match &k.find {
        FindKeys::Range {
            lastkey,
            step,
            limit,
        } => map([
            ("type", bulk("range")),
            (
                "spec",
                map([
                    ("lastkey", int(i64::from(*lastkey))),
                    ("keystep", int(*step as i64)),
                    ("limit", int(*limit as i64)),
                ]),
            ),
        ]),
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            step,
        } => map([
            ("type", bulk("keynum")),
            (
                "spec",
                map([
                    ("keynumidx", int(*keynumidx as i64)),
                    ("firstkey", int(*firstkey as i64)),
                    ("keystep", int(*step as i64)),
                ]),
            ),
        ]),
        FindKeys::Unknown => map([("type", bulk("unknown")), ("spec", map([]))]),
    };
    fields.push(("find_keys", find));
    map(fields)
}

/// One `COMMAND DOCS` entry: summary, since, group, and a container's subcommands.
fn docs(top: &'static CommandSpec, spec: &'static CommandSpec) -> Reply {
    let mut m = vec![
        ("summary", Reply::str(spec.summary)),
        ("since", Reply::str(spec.since)),
        ("group", Reply::str(spec.group)),
    ];
    if std::ptr::eq(top, spec) && spec.is_container() {
        let subs = spec
            .subcommands
            .iter()
            .map(|s| (Reply::str(&full_name(top, s)), docs(top, s)))
            .collect();
        m.push(("subcommands", Reply::Map(subs)));
    }
    map(m)
}

/// What `COMMAND LIST [FILTERBY ...]` keeps.
enum Filter {
    All,
    /// No module commands here.
    Module,
    /// An ACL category, `@`-prefixed and lower-case.
    AclCat(String),
    Pattern(Vec<u8>),
}

/// `COMMAND LIST`: every command and subcommand by full name.
fn list(argv: &[&[u8]], glob: impl Fn(&[u8], &[u8]) -> bool) -> Result<Reply, CommandError> {
    let eq = |i: usize, s: &str| {
        argv.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    };
    let arg = |i: usize| argv.get(i).copied().unwrap_or_default();
    let filter = match argv.len() {
        2 => Filter::All,
        5 if eq(2, "filterby") => {
            if eq(3, "module") {
                Filter::Module
            } else if eq(3, "aclcat") {
                Filter::AclCat(format!(
                    "@{}",
                    String::from_utf8_lossy(arg(4)).to_ascii_lowercase()
                ))
            } else if eq(3, "pattern") {
                Filter::Pattern(arg(4).to_vec())
            } else {
                return Err(CommandError::Syntax);
            }
        }
        _ => return Err(CommandError::Syntax),
    };
    let keep = |top: &CommandSpec, spec: &CommandSpec| match &filter {
        Filter::All => true,
        Filter::Module => false,
        Filter::AclCat(cat) => spec.acl_categories().contains(&cat.as_str()),
        Filter::Pattern(p) => glob(p, full_name(top, spec).as_bytes()),
    };
    Ok(Reply::Array(
        COMMANDS
            .iter()
            .flat_map(|c| std::iter::once((c, c)).chain(c.subcommands.iter().map(move |s| (c, s))))
            .filter(|(t, s)| keep(t, s))
            .map(|(t, s)| Reply::str(&full_name(t, s)))
            .collect(),
    ))
}

/// `COMMAND GETKEYS <command> <args...>`, checked in Redis's order: the command (a
/// container's subcommand when one is named), then whether it has keys, then its arity.
fn getkeys(argv: &[&[u8]]) -> Result<Reply, CommandError> {
    let top = argv
        .first()
        .and_then(|n| lookup(n))
        .ok_or(CommandError::InvalidCommand)?;
    let spec = match argv.get(1) {
        Some(sub) if top.is_container() => {
            top.subcommand(sub).ok_or(CommandError::InvalidCommand)?
        }
        _ => top,
    };
    if !spec.has_keys() {
        return Err(CommandError::NoKeys);
    }
    if !spec.arity_ok(argv.len()) {
        return Err(CommandError::InvalidArgCount);
    }
    Ok(Reply::Array(
        spec.key_positions(argv.len(), |i| argv.get(i).copied().unwrap_or_default())
            .filter_map(|i| argv.get(i))
            .map(|k| Reply::Bulk(Bytes::copy_from_slice(k)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Proto, encode_to_bytes};

    fn run(args: &[&str]) -> Result<Reply, CommandError> {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let sub = argv.get(1).and_then(|s| lookup(b"command")?.subcommand(s));
        let id = sub.map_or(CommandId::Command, |s| s.id);
        command(id, &argv, |p, n| p.eq_ignore_ascii_case(n))
    }

    fn wire(args: &[&str], proto: Proto) -> String {
        let r = run(args).expect("reply");
        String::from_utf8(encode_to_bytes(&r, proto).to_vec()).expect("utf8")
    }

    /// `redis-cli COMMAND INFO get mget set` against redis-server 7.0.15, byte for byte.
    #[test]
    fn info_of_get_mget_set_is_redis_7s() {
        let get = "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        let mget = "*10\r\n$4\r\nmget\r\n:-2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:-1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*1\r\n$26\r\nrequest_policy:multi_shard\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        let set = "*10\r\n$3\r\nset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@slow\r\n*0\r\n*1\r\n*8\r\n$5\r\nnotes\r\n$48\r\nRW and ACCESS due to the optional `GET` argument\r\n$5\r\nflags\r\n*4\r\n+RW\r\n+access\r\n+update\r\n+variable_flags\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        assert_eq!(
            wire(&["COMMAND", "INFO", "get", "mget", "set"], Proto::Resp2),
            format!("*3\r\n{get}{mget}{set}")
        );
        // RESP3: Redis's, but for the arrays of key specs and subcommands (see `info`).
        let mget3 = "*1\r\n*10\r\n$4\r\nmget\r\n:-2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:-1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~1\r\n$26\r\nrequest_policy:multi_shard\r\n*1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        assert_eq!(wire(&["COMMAND", "INFO", "mget"], Proto::Resp3), mget3);
    }

    #[test]
    fn info_of_unknown_refused_and_sub_commands() {
        let Ok(Reply::Array(entries)) = run(&["COMMAND", "INFO", "nosuch", "wait", "client|id"])
        else {
            panic!("array");
        };
        assert_eq!(entries.first(), Some(&Reply::Nil));
        assert_eq!(
            entries.get(1),
            Some(&Reply::Nil),
            "refused rows are not described"
        );
        let Some(Reply::Array(id)) = entries.get(2) else {
            panic!("client|id");
        };
        assert_eq!(id.first(), Some(&Reply::str("client|id")));
        // RENAME: one key spec per key, as Redis has them.
        let rename = wire(&["COMMAND", "INFO", "rename"], Proto::Resp2);
        assert!(rename.contains("*2\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n"));
        assert!(rename.contains("+OW\r\n+update\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:2\r\n"));
        // A container lists its subcommands; a plain command none.
        let config = wire(&["COMMAND", "INFO", "config"], Proto::Resp3);
        assert!(config.ends_with("~0\r\n*0\r\n*0\r\n"), "{config}");
        assert!(config.contains("config|get"));
    }

    #[test]
    fn count_list_and_docs() {
        assert_eq!(
            run(&["COMMAND", "COUNT"]),
            Ok(Reply::Int(COMMANDS.len() as i64))
        );
        let Ok(Reply::Array(all)) = run(&["COMMAND", "LIST"]) else {
            panic!("list");
        };
        assert!(all.contains(&Reply::str("client|setname")) && all.contains(&Reply::str("get")));
        assert!(!all.contains(&Reply::str("wait")));
        assert!(all.contains(&Reply::str("blpop")) && all.contains(&Reply::str("xread")));
        let Ok(Reply::Array(hash)) = run(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "HASH"]) else {
            panic!("list");
        };
        assert!(hash.contains(&Reply::str("hget")) && !hash.contains(&Reply::str("get")));
        assert_eq!(
            run(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "GET"]),
            Ok(Reply::Array(vec![Reply::str("get")]))
        );
        assert_eq!(
            run(&["COMMAND", "LIST", "FILTERBY", "NOPE", "x"]),
            Err(CommandError::Syntax)
        );
        let docs = wire(&["COMMAND", "DOCS", "client", "nosuch"], Proto::Resp3);
        assert!(docs.starts_with("%1\r\n$6\r\nclient\r\n%4\r\n"), "{docs}");
        assert!(docs.contains("$11\r\nsubcommands\r\n%18\r\n$9\r\nclient|id\r\n"));
    }

    /// Redis 7.2's `getKeysSubcommandImpl`: command, then keys, then arity.
    #[test]
    fn getkeys_checks_in_redis_order() {
        let keys = |args: &[&str]| run(&[&["COMMAND", "GETKEYS"], args].concat());
        assert_eq!(
            keys(&["MSET", "a", "1", "b", "2"]),
            Ok(Reply::Array(vec![Reply::str("a"), Reply::str("b")]))
        );
        assert_eq!(
            keys(&["memory", "usage", "k"]),
            Ok(Reply::Array(vec![Reply::str("k")]))
        );
        assert_eq!(keys(&["nosuch", "a"]), Err(CommandError::InvalidCommand));
        assert_eq!(keys(&["wait", "1", "0"]), Err(CommandError::InvalidCommand));
        assert_eq!(
            keys(&["xread", "count", "2", "streams", "a", "b", "0", "0"]),
            Ok(Reply::Array(vec![Reply::str("a"), Reply::str("b")])),
            "the keys after STREAMS"
        );
        assert_eq!(
            keys(&["lmpop", "2", "a", "b", "left"]),
            Ok(Reply::Array(vec![Reply::str("a"), Reply::str("b")])),
            "keys found by the key spec"
        );
        assert_eq!(
            keys(&["client", "nosuch"]),
            Err(CommandError::InvalidCommand)
        );
        assert_eq!(keys(&["config"]), Err(CommandError::NoKeys));
        assert_eq!(keys(&["memory"]), Err(CommandError::NoKeys));
        assert_eq!(keys(&["ping"]), Err(CommandError::NoKeys));
        assert_eq!(keys(&["echo", "a", "b"]), Err(CommandError::NoKeys));
        assert_eq!(keys(&["get"]), Err(CommandError::InvalidArgCount));
    }

    #[test]
    fn help_is_redis_text() {
        let Ok(Reply::Array(lines)) = run(&["COMMAND", "HELP"]) else {
            panic!("help");
        };
        assert_eq!(
            lines.first(),
            Some(&Reply::Status(
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into()
            ))
        );
        assert_eq!(lines.len(), 19);
        assert_eq!(lines.last(), Some(&Reply::Simple("    Print this help.")));
    }
}
