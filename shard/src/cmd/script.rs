//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT LOAD / EXISTS / FLUSH / HELP,
//! with Redis 7.0's semantics (`eval.c`, `script.c`). The Lua side is in `lua.rs`.
//!
//! A script runs like EXEC: it holds the write side of the gates of its declared keys' slots
//! (`crate::gates`), so no other client's command on those slots runs in between; its commands
//! go through the normal dispatch path (`run_tracked`: tracking, WATCH, blocked clients) with
//! the calling connection, and blocking commands answer at once. A script that declares no
//! key holds the gate of the first slot it touches. A key in another slot than the declared
//! ones is refused in cluster mode, as Redis Cluster refuses it; in standalone mode it is
//! served without that slot's gate (another client's command on it may interleave).

use std::sync::Arc;

use bytes::Bytes;
use membership::Slot;
use membership::command::{self, CommandId, CommandSpec, Flags};
use membership::resp::CommandError;
use parking_lot::RwLockWriteGuard;

use super::lua;
use super::session::Session;
use crate::error::{CmdError, CmdResult};
use crate::protocol::{Args, Proto, Reply};
use crate::scripts::Scripts;
use crate::shared::Shared;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// The script commands take their slots' gates themselves (the write side), instead of the
/// read side dispatch takes for keyed commands.
pub fn takes_own_gates(id: CommandId) -> bool {
    matches!(
        id,
        CommandId::Eval
            | CommandId::Evalsha
            | CommandId::EvalRo
            | CommandId::EvalshaRo
            | CommandId::Fcall
            | CommandId::FcallRo
    )
}

/// What one run of a script knows while its commands run.
struct Run<'g> {
    read_only: bool,
    /// A function with `allow-oom`: its write commands run over maxmemory.
    allow_oom: bool,
    /// A function with `allow-cross-slot-keys`: its commands may touch other local slots.
    cross_slot: bool,
    /// The slot the script's keys are in (declared, or the first one touched).
    slot: Option<Slot>,
    /// Whether it may take a slot's gate when it first touches one (it holds none yet and
    /// is not inside EXEC).
    may_gate: bool,
    gate: Option<RwLockWriteGuard<'g, ()>>,
    wrote: bool,
    running: Arc<crate::running::Run>,
}

/// A script or function about to run.
pub(super) struct Script {
    /// The script's SHA1, or the function's name.
    pub name: String,
    pub is_eval: bool,
    pub read_only: bool,
    pub allow_oom: bool,
    pub cross_slot: bool,
}

/// The number of keys of an EVAL or FCALL (`numkeys` at argument 2), with Redis's errors.
pub(super) fn numkeys(a: &Args, bad: &'static str) -> Result<usize, CmdError> {
    let numkeys = super::args::parse_i64(a.get(2)).map_err(|e| match bad {
        "" => e,
        text => CmdError::err(text),
    })?;
    let rest = a.len().saturating_sub(3);
    if numkeys > rest as i64 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    usize::try_from(numkeys).map_err(|_| CmdError::err("Number of keys can't be negative"))
}

/// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO.
pub fn eval(s: &mut Session, shared: &Shared, spec: &CommandSpec, a: &Args) -> CmdResult {
    let by_sha = matches!(spec.id, CommandId::Evalsha | CommandId::EvalshaRo);
    let read_only = matches!(spec.id, CommandId::EvalRo | CommandId::EvalshaRo);
    let numkeys = match numkeys(a, "") {
        Ok(n) => n,
        Err(e) => {
            s.asking = false;
            return Err(e);
        }
    };
    let (sha, body) = if by_sha {
        let sha = String::from_utf8_lossy(a.get(1)).to_ascii_lowercase();
        match shared.scripts.get(&sha) {
            Some(body) if sha.len() == 40 => (sha, body),
            _ => {
                s.asking = false;
                return Err(CmdError::from(CommandError::Raw(NOSCRIPT.into())));
            }
        }
    } else {
        (Scripts::sha1hex(a.get(1)), a.bytes(1))
    };
    let script = Script {
        name: sha.clone(),
        is_eval: true,
        read_only,
        allow_oom: false,
        cross_slot: false,
    };
    let compile = |engine: &mut lua::Engine| engine.function(&sha, &body);
    let reply = execute(s, shared, a, numkeys, script, compile)?;
    if !by_sha {
        shared.scripts.insert(sha.clone(), body.clone());
    }
    Ok(reply)
}

/// Runs a script or function: routes and gates its declared keys (the ASKING flag is one-shot,
/// like every command's: dispatch left it to this), compiles it (`compile`, in this thread's
/// Lua state) and runs it, registered as running (`-BUSY`, KILL).
pub(super) fn execute(
    s: &mut Session,
    shared: &Shared,
    a: &Args,
    numkeys: usize,
    script: Script,
    compile: impl FnOnce(&mut lua::Engine) -> Result<mlua::Function, String>,
) -> CmdResult {
    let asking = std::mem::take(&mut s.asking);
    let args = a.slice(3);
    let (keys, argv) = args.split_at(numkeys.min(args.len()));

    let in_exec = s.tx.in_exec();
    let slots = || keys.iter().map(|k| Slot::for_key(k));
    // Inside EXEC the transaction already holds these gates.
    let _gates = match in_exec {
        true => None,
        false => Some(
            shared
                .gates()
                .exclusive_many_or(slots(), &super::gave_up(s, shared))
                .ok_or_else(|| super::busy_error(s, shared))?,
        ),
    };
    // Inside EXEC the transaction routed them already (and took the ASKING flag).
    if let Some(c) = shared.cluster.get()
        && !keys.is_empty()
        && !in_exec
    {
        let view = c.handle.load();
        let first = slots().next();
        crate::cluster::route(
            &view.slots,
            &c.me,
            slots(),
            |slot| c.migrations.state(slot),
            asking,
            || match first {
                Some(slot) => {
                    c.migrations
                        .presence(&shared.db, slot, keys.iter().map(|k| &k[..]), s.now)
                }
                None => crate::migrate::Presence::default(),
            },
        )
        .into_result()?;
    }

    let compiled = lua::with_engine(compile)
        .and_then(|r| r)
        .map_err(|e| CmdError::from(CommandError::Raw(e)))?;

    let guard = shared.running.start(
        s.handle.id,
        script.is_eval,
        script.name.clone(),
        a.slice(0).to_vec(),
    );
    let mut run = Run {
        read_only: script.read_only,
        allow_oom: script.allow_oom,
        cross_slot: script.cross_slot,
        slot: slots().next(),
        may_gate: keys.is_empty() && !in_exec,
        gate: None,
        wrote: false,
        running: guard.run.clone(),
    };
    let started = s.tx.begin_script();
    let running = guard.run.clone();
    let reply = lua::with_engine(|engine| {
        let mut call = |argv: Vec<Bytes>, resp: u8| call(s, shared, &mut run, argv, resp);
        engine.run(
            &script.name,
            &compiled,
            keys,
            argv,
            !script.is_eval,
            &running,
            &mut call,
        )
    });
    drop(guard);
    if started {
        let written = s.tx.end_script();
        drop(run);
        drop(_gates);
        super::blocking::serve_written(s, written);
    }
    reply.map_err(|e| CmdError::from(CommandError::Raw(e)))
}

/// One `redis.call` / `redis.pcall`: Redis's checks for commands from scripts, then the
/// command through the normal path. Errors are replies (the script decides to raise).
fn call<'g>(
    s: &mut Session,
    shared: &'g Shared,
    run: &mut Run<'g>,
    argv: Vec<Bytes>,
    resp: u8,
) -> Reply {
    let a = Args::from(argv);
    match call_checked(s, shared, run, &a, resp) {
        Ok(r) => r,
        Err(e) => e.into(),
    }
}

fn call_checked<'g>(
    s: &mut Session,
    shared: &'g Shared,
    run: &mut Run<'g>,
    a: &Args,
    resp: u8,
) -> CmdResult {
    let unknown = || CmdError::err("Unknown Redis command called from script");
    let (top, sub) =
        command::resolve(a.get(0), (a.len() > 1).then(|| a.get(1))).ok_or_else(unknown)?;
    let spec = match (top.is_container(), sub) {
        (false, _) => top,
        (true, Some(sub)) => sub,
        (true, None) if a.len() < 2 && top.arity_ok(1) => top,
        (true, None) if a.len() < 2 => {
            return Err(CmdError::err(
                "Wrong number of args calling Redis command from script",
            ));
        }
        (true, None) => return Err(unknown()),
    };
    if !spec.arity_ok(a.len()) {
        return Err(CmdError::err(
            "Wrong number of args calling Redis command from script",
        ));
    }
    if spec.flags.contains(Flags::NOSCRIPT) {
        return Err(CmdError::err(
            "This Redis command is not allowed from script",
        ));
    }
    if run.read_only && spec.is_write() {
        return Err(CmdError::err(
            "Write commands are not allowed from read-only scripts.",
        ));
    }
    // As Redis: a script that already wrote may go on writing over maxmemory.
    if spec.flags.contains(Flags::DENYOOM)
        && !run.wrote
        && !run.allow_oom
        && shared.db.make_room(s.now).is_err()
    {
        return Err(CmdError::Oom);
    }
    if spec.is_write() {
        run.wrote = true;
        run.running
            .wrote
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if spec.has_keys() {
        let slots: Vec<Slot> = spec
            .key_positions(a.len(), |i| a.get(i))
            .map(|i| Slot::for_key(a.get(i)))
            .collect();
        if let Some(c) = shared.cluster.get() {
            let view = c.handle.load();
            let local = crate::cluster::route(
                &view.slots,
                &c.me,
                slots.iter().copied(),
                |slot| c.migrations.state(slot),
                false,
                crate::migrate::Presence::default,
            );
            if !matches!(local, crate::cluster::Route::Local) {
                return Err(CmdError::err(
                    "Script attempted to access a non local key in a cluster node",
                ));
            }
            if let (Some(first), Some(declared)) = (slots.first(), run.slot)
                && *first != declared
                && !run.cross_slot
            {
                return Err(CmdError::err(
                    "Script attempted to access keys that do not hash to the same slot",
                ));
            }
        }
        if let Some(&first) = slots.first()
            && run.slot.is_none()
        {
            run.slot = Some(first);
            if run.may_gate && slots.iter().all(|s| *s == first) {
                let give_up = super::gave_up(s, shared);
                run.gate = Some(
                    shared
                        .gates()
                        .exclusive_or(first, &give_up)
                        .ok_or_else(|| super::busy_error(s, shared))?,
                );
            }
        }
    }
    let saved = std::mem::replace(
        &mut s.proto,
        if resp == 3 {
            Proto::Resp3
        } else {
            Proto::Resp2
        },
    );
    s.commands += 1;
    // Keys the script did not declare may still be in the warm tier.
    let plan = super::warm_plan(s, a);
    let loaded = match &plan {
        Some(p) => super::warm::load_warm_now(s, a, p),
        None => Ok(()),
    };
    let r = loaded.and_then(|()| super::run_tracked(s, shared, spec, a));
    if let Some(p) = plan {
        super::settle_warm(s, p);
    }
    s.proto = saved;
    r
}

/// SCRIPT LOAD, EXISTS, FLUSH, HELP.
pub fn script(s: &Session, id: CommandId, a: &Args) -> CmdResult {
    let scripts = &s.shared.scripts;
    match id {
        CommandId::ScriptLoad => {
            let body = a.bytes(2);
            let sha = Scripts::sha1hex(&body);
            lua::with_engine(|engine| engine.function(&sha, &body).map(|_| ()))
                .and_then(|r| r)
                .map_err(|e| CmdError::from(CommandError::Raw(e)))?;
            scripts.insert(sha.clone(), body);
            Ok(Reply::Bulk(Bytes::from(sha)))
        }
        CommandId::ScriptExists => Ok(Reply::Array(
            a.slice(2)
                .iter()
                .map(|sha| Reply::Int(i64::from(scripts.contains(sha))))
                .collect(),
        )),
        CommandId::ScriptFlush => {
            match a.len() {
                2 => {}
                3 if super::args::eq(a.get(2), "sync") || super::args::eq(a.get(2), "async") => {}
                _ => return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
            }
            scripts.flush();
            Ok(Reply::Ok)
        }
        CommandId::ScriptKill => match s.shared.running.kill(true) {
            Ok(()) => Ok(Reply::Ok),
            Err(line) => Err(CmdError::from(CommandError::Raw(line.into()))),
        },
        // Redis's SCRIPT HELP ends with "Prints this help.", not the usual "Print".
        _ => Ok(Reply::Array(
            SCRIPT_HELP.iter().map(|l| Reply::Simple(l)).collect(),
        )),
    }
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];
