//! Redis Functions: FCALL, FCALL_RO and FUNCTION LOAD / LIST / DELETE / FLUSH / DUMP /
//! RESTORE / STATS / KILL / HELP, with Redis 7.0's semantics and texts (`functions.c`,
//! `function_lua.c`). The libraries are kept in `crate::functions`; a function runs like an
//! EVAL script (`script::execute`: its declared keys' gates, atomic like EXEC), with its
//! flags: `no-writes` (and FCALL_RO) refuse write commands, `allow-oom` lets it write over
//! maxmemory, `no-cluster` refuses it in cluster mode, `allow-cross-slot-keys` lets it touch
//! keys of other local slots (without their gates: not atomic for those keys).

use bytes::Bytes;
use membership::command::{CommandId, CommandSpec};
use membership::resp::CommandError;

use super::args::eq;
use super::lua;
use super::script::{self, Script};
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::functions::{self, ALLOW_CROSS_SLOT, ALLOW_OOM, FLAG_NAMES, NO_CLUSTER, NO_WRITES};
use crate::protocol::{Args, Reply};
use crate::shared::Shared;

fn raw(line: String) -> CmdError {
    CmdError::from(CommandError::Raw(line))
}

/// This thread's Lua engine as FUNCTION LOAD / RESTORE's compiler.
fn compile(body: &[u8]) -> Result<Vec<functions::Function>, String> {
    let registered = lua::with_engine(|engine| engine.load_library(body))
        .map_err(|e| e.trim_start_matches("ERR ").to_string())??;
    Ok(registered
        .into_iter()
        .map(|r| functions::Function {
            name: r.name,
            description: r.description,
            flags: r.flags,
        })
        .collect())
}

/// Loads the libraries persisted in the data directory (at start); how many.
pub fn load_persisted(shared: &Shared) -> Result<usize, String> {
    shared.functions.load_persisted(&mut compile)
}

/// FCALL, FCALL_RO.
pub fn fcall(s: &mut Session, shared: &Shared, spec: &CommandSpec, a: &Args) -> CmdResult {
    let ro = spec.id == CommandId::FcallRo;
    let name = String::from_utf8_lossy(a.get(1)).into_owned();
    let checked = (|| {
        let lib = shared
            .functions
            .find(&name)
            .ok_or_else(|| CmdError::err("Function not found"))?;
        let numkeys = script::numkeys(a, "Bad number of keys provided")?;
        let flags = lib.function(&name).map_or(0, |f| f.flags);
        // `scriptPrepareForRun`'s checks, in its order.
        if flags & NO_CLUSTER != 0 && shared.cluster.get().is_some() {
            return Err(CmdError::err(
                "Can not run script on cluster, 'no-cluster' flag is set.",
            ));
        }
        if flags & NO_WRITES == 0 {
            if ro {
                return Err(CmdError::err(
                    "Can not execute a script with write flag using *_ro command.",
                ));
            }
            if flags & ALLOW_OOM == 0
                && shared.db.maxmemory() > 0
                && shared.db.make_room(s.now).is_err()
            {
                return Err(raw("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'".into()));
            }
        }
        Ok((lib, numkeys, flags))
    })();
    let (lib, numkeys, flags) = match checked {
        Ok(c) => c,
        Err(e) => {
            s.asking = false;
            return Err(e);
        }
    };
    let run = Script {
        name: name.clone(),
        is_eval: false,
        read_only: ro || flags & NO_WRITES != 0,
        allow_oom: flags & ALLOW_OOM != 0,
        cross_slot: flags & ALLOW_CROSS_SLOT != 0,
    };
    let compile = |engine: &mut lua::Engine| {
        engine
            .library_function(&lib.sha, lib.body(), &name)
            .map_err(|e| format!("ERR {e}"))
    };
    script::execute(s, shared, a, numkeys, run, compile)
}

/// The FUNCTION subcommands.
pub fn function(s: &Session, id: CommandId, a: &Args) -> CmdResult {
    let shared = &*s.shared;
    let fs = &shared.functions;
    match id {
        CommandId::FunctionLoad => {
            let mut replace = false;
            let mut at = 2;
            while at + 1 < a.len() {
                if !eq(a.get(at), "replace") {
                    return Err(CmdError::err(format!(
                        "Unknown option given: {}",
                        String::from_utf8_lossy(a.get(at))
                    )));
                }
                replace = true;
                at += 1;
            }
            if at >= a.len() {
                return Err(CmdError::err("Function code is missing"));
            }
            let name = fs.load(a.bytes(at), replace, &mut compile).map_err(raw)?;
            Ok(Reply::Bulk(Bytes::from(name)))
        }
        CommandId::FunctionList => list(s, a),
        CommandId::FunctionDelete => {
            if fs.delete(&String::from_utf8_lossy(a.get(2))) {
                Ok(Reply::Ok)
            } else {
                Err(CmdError::err("Library not found"))
            }
        }
        CommandId::FunctionFlush => {
            match a.len() {
                2 => {}
                3 if eq(a.get(2), "sync") || eq(a.get(2), "async") => {}
                3 => {
                    return Err(CmdError::err(
                        "FUNCTION FLUSH only supports SYNC|ASYNC option",
                    ));
                }
                _ => return Err(syntax(a)),
            }
            fs.flush();
            Ok(Reply::Ok)
        }
        CommandId::FunctionDump => Ok(Reply::Bulk(fs.dump())),
        CommandId::FunctionRestore => {
            let policy = match a.len() {
                3 => functions::Policy::Append,
                4 if eq(a.get(3), "append") => functions::Policy::Append,
                4 if eq(a.get(3), "replace") => functions::Policy::Replace,
                4 if eq(a.get(3), "flush") => functions::Policy::Flush,
                4 => {
                    return Err(CmdError::err(
                        "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                    ));
                }
                _ => return Err(syntax(a)),
            };
            fs.restore(a.get(2), policy, &mut compile).map_err(raw)?;
            Ok(Reply::Ok)
        }
        CommandId::FunctionStats => stats(shared),
        CommandId::FunctionKill => match shared.running.kill(false) {
            Ok(()) => Ok(Reply::Ok),
            Err(line) => Err(raw(line.into())),
        },
        _ => Ok(Reply::Array(
            FUNCTION_HELP.iter().map(|l| Reply::Simple(l)).collect(),
        )),
    }
}

/// `addReplySubcommandSyntaxError`.
fn syntax(a: &Args) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(a.get(1))
    ))
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE], libraries by name.
fn list(s: &Session, a: &Args) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < a.len() {
        let arg = a.get(i);
        if !with_code && eq(arg, "withcode") {
            with_code = true;
        } else if pattern.is_none() && eq(arg, "libraryname") {
            if i + 1 >= a.len() {
                return Err(CmdError::err("library name argument was not given"));
            }
            i += 1;
            pattern = Some(a.get(i));
        } else {
            return Err(CmdError::err(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(arg)
            )));
        }
        i += 1;
    }
    let libs = s.shared.functions.libraries();
    let items = libs
        .iter()
        .filter(|lib| {
            pattern.is_none_or(|p| crate::store::glob::glob_match(p, lib.name.as_bytes(), false))
        })
        .map(|lib| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (Reply::str("name"), Reply::str(&f.name)),
                        (
                            Reply::str("description"),
                            f.description.clone().map_or(Reply::Nil, Reply::Bulk),
                        ),
                        (
                            Reply::str("flags"),
                            Reply::Set(
                                FLAG_NAMES
                                    .iter()
                                    .enumerate()
                                    .filter(|(i, _)| f.flags & (1 << i) != 0)
                                    .map(|(_, n)| Reply::Simple(n))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect();
            let mut pairs = vec![
                (Reply::str("library_name"), Reply::str(&lib.name)),
                (Reply::str("engine"), Reply::str("LUA")),
                (Reply::str("functions"), Reply::Array(functions)),
            ];
            if with_code {
                pairs.push((Reply::str("library_code"), Reply::Bulk(lib.code.clone())));
            }
            Reply::Map(pairs)
        })
        .collect();
    Ok(Reply::Array(items))
}

/// FUNCTION STATS: the running function (the longest-running one), and the engine's counts.
/// While an EVAL script is slow, Redis answers this `-BUSY` (it is `allow_busy` for functions).
fn stats(shared: &Shared) -> CmdResult {
    let current = shared.running.current();
    if let Some(run) = &current
        && run.is_eval
        && shared.running.busy_for(u64::MAX).is_some()
    {
        return Err(raw(crate::running::BUSY_EVAL.into()));
    }
    let running = match current.filter(|r| !r.is_eval) {
        None => Reply::Nil,
        Some(run) => Reply::Map(vec![
            (Reply::str("name"), Reply::str(&run.name)),
            (
                Reply::str("command"),
                Reply::Array(run.command.iter().cloned().map(Reply::Bulk).collect()),
            ),
            (
                Reply::str("duration_ms"),
                Reply::Int(run.started.elapsed().as_millis() as i64),
            ),
        ]),
    };
    let (libraries, functions) = shared.functions.counts();
    Ok(Reply::Map(vec![
        (Reply::str("running_script"), running),
        (
            Reply::str("engines"),
            Reply::Map(vec![(
                Reply::str("LUA"),
                Reply::Map(vec![
                    (Reply::str("libraries_count"), Reply::Int(libraries as i64)),
                    (Reply::str("functions_count"), Reply::Int(functions as i64)),
                ]),
            )]),
        ),
    ]))
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];
