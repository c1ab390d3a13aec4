//! The Lua side of scripting: one sandboxed Lua 5.1 state per worker thread, the `redis`
//! library, and the conversions between Lua values and replies, with Redis 7.0's rules
//! (`script_lua.c`).
//!
//! Each thread keeps its compiled scripts as functions by SHA1, like Redis keeps `f_<sha>` in
//! its one state. A script runs commands only while it runs: `redis.call` reaches the session
//! through a function made in a [`mlua::Lua::scope`], valid for that one run.
//!
//! The sandbox: the base, `string`, `table`, `math`, `bit` and `cjson` libraries, without
//! `dofile`, `loadfile`, `print` or `os`, `io`, `debug`, `package`. A script's globals are a table that
//! refuses new entries (`Attempt to modify a readonly table`) and errors on reading a missing
//! one (`Script attempted to access nonexistent global variable`), as Redis 7.0's read-only
//! global table does; anything a script still manages to put in it (`rawset(_G, ...)`) is
//! removed when the script ends, so no state passes from one script to the next.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic, VmState,
};

use crate::protocol::{Reply, format_g17};
use crate::running::{Run, Stop};
use crate::scripts::Scripts;
use std::sync::Arc;

/// The chunk name Redis gives user scripts: errors read `user_script:1: ...`.
const CHUNK: &str = "@user_script";
/// ... and function libraries (`user_function:2: ...`).
const FUNCTION_CHUNK: &str = "@user_function";
/// The most memory one thread's Lua state may take: checked by the instruction hook, and by
/// `string.rep` before it allocates (one call could otherwise take it all at once).
const MEMORY_LIMIT: usize = 1 << 30;
/// Lua's own text for an allocation that failed.
const NO_MEMORY: &str = "ERR not enough memory";
/// Instructions between two checks of whether the running script was killed.
const CHECK_EVERY: u32 = 1000;
/// How long FUNCTION LOAD may run a library's code (Redis's `LOAD_TIMEOUT_MS`).
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
/// Compiled libraries kept per thread before the cache starts over (a client replacing
/// libraries in a loop must not grow it).
const MAX_LIBRARIES: usize = 1000;
/// Where a Rust function puts the error value it raises (see `raise`): the state's app
/// data, which costs nothing to clear (a registry entry has to be looked up by name).
struct Raised(Value);
/// Nested tables deeper than this are not converted (a table may contain itself).
const MAX_DEPTH: usize = 256;

/// The `redis` library and the sandbox, in Lua; run once per state with the bridge table (the
/// Rust functions) and the scripts' globals table.
const PRELUDE: &str = r#"
local bridge, env, fenv, version, version_num, script_keys, script_argv = ...
local G = _G
local error, type, tostring, select, rawget, setmetatable = error, type, tostring, select, rawget, setmetatable
local raw_getfenv, raw_setfenv, raw_loadstring, raw_load = getfenv, setfenv, loadstring, load

local function pack(...) return {n = select('#', ...), ...} end

-- redis.call and the functions that raise errors are Rust (C) functions, as in
-- Redis: a C function called in tail position (`return redis.call(...)`) keeps the script's
-- frame on the stack, so the error handler finds the script's line.
local redis = {}
redis.sha1hex = bridge.sha1hex
redis.error_reply = bridge.error_reply
redis.status_reply = bridge.status_reply
redis.log = bridge.log
redis.setresp = bridge.setresp
redis.set_repl = bridge.set_repl
function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug() end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = version, version_num
G.redis = redis

-- Library tables are read only to scripts, as Redis 7.0 makes every table reachable from
-- the globals: a script sees a proxy of each (so `pairs(string)` finds nothing).
local protected = {[env] = true}
local function readonly(t)
  local p = setmetatable({}, {
    __index = t,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
  protected[p] = true
  return p
end
G.bit, G.cjson, G.cmsgpack, G.struct = bridge.bit, bridge.cjson, bridge.cmsgpack, bridge.struct
-- What a library's code sees while FUNCTION LOAD runs it (Redis 7.0's library API): only
-- `redis`, with register_function, log and the version.
local load_redis = {
  register_function = bridge.register_function, log = bridge.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = version, REDIS_VERSION_NUM = version_num,
}
local load_redis_view = setmetatable({}, {
  __index = function(_, k)
    local v = load_redis[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
protected[load_redis_view] = true
local load_api = {redis = load_redis_view}
local rep, memory_limit = G.string.rep, bridge.memory_limit
G.string.rep = function(s, n)
  if type(n) == 'number' and (type(s) == 'string' or type(s) == 'number')
      and #tostring(s) * n > memory_limit then
    error('not enough memory', 0)
  end
  -- Not a tail call: argument errors name `rep`, as the library's own do.
  local r = rep(s, n)
  return r
end
for _, name in ipairs({'redis', 'string', 'table', 'math', 'coroutine', 'bit', 'cjson', 'cmsgpack', 'struct'}) do
  if G[name] then G[name] = readonly(G[name]) end
end
local raw_setmetatable = setmetatable
G.setmetatable = function(t, m)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return raw_setmetatable(t, m)
end
local raw_rawset = rawset
G.rawset = function(t, k, v)
  if protected[t] then error('Attempt to modify a readonly table', 0) end
  return raw_rawset(t, k, v)
end
-- Strings' metatable (its __index is the real string library) is seen read only too.
local raw_getmetatable = getmetatable
local string_meta = raw_getmetatable('')
local string_meta_view = readonly({__index = G.string})
G.getmetatable = function(t)
  local m = raw_getmetatable(t)
  if m == string_meta then return string_meta_view end
  return m
end

-- Functions a script loads, and the thread's environment, are the script's globals.
G.loadstring = function(...)
  local f, e = raw_loadstring(...)
  if f then raw_setfenv(f, env) end
  return f, e
end
G.load = function(...)
  local f, e = raw_load(...)
  if f then raw_setfenv(f, env) end
  return f, e
end
G.getfenv = function(f)
  if f == nil then f = 1 end
  if type(f) == 'number' and f > 0 then f = f + 1 end
  local e = raw_getfenv(f)
  if e == G then return env end
  return e
end

local function globals(api)
  return {
    __index = function(_, k)
      local v = rawget(api(), k)
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  }
end
-- A script's KEYS and ARGV are two tables the engine refills for each run (they are not in
-- the globals, so functions, whose globals are `G` too, do not see them).
local script_api = {KEYS = script_keys, ARGV = script_argv}
setmetatable(env, {
  __index = function(_, k)
    local v = rawget(G, k)
    if v == nil then v = script_api[k] end
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
G._G = env
-- Libraries' globals: the library API while FUNCTION LOAD runs their code, the scripts'
-- globals when their functions run (Redis switches its functions state's globals so).
local loading = false
protected[fenv] = true
setmetatable(fenv, globals(function() if loading then return load_api end return G end))

-- An error table raised by a Rust function travels as a marker; the table is kept aside.
local raw_pcall, raw_xpcall, unpack = pcall, xpcall, unpack
G.pcall = function(f, ...)
  local r = pack(raw_pcall(f, ...))
  -- A script past its time limit cannot catch the error that stops it.
  if not r[1] and bridge.stopped() then error(r[2], 0) end
  if not r[1] then
    local raised = bridge.take_raised()
    if raised then r[2] = raised end
    -- As Redis's pcall: an error table's message, not the table.
    if type(r[2]) == 'table' and type(rawget(r[2], 'err')) == 'string' then r[2] = r[2].err end
  end
  return unpack(r, 1, r.n)
end

local function handler(err)
  local raised = bridge.take_raised()
  if raised then err = raised end
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  local line, source = bridge.where()
  if line then
    err.source = source
    err.line = line
  end
  return err
end
G.xpcall = function(f, h)
  local r = pack(raw_xpcall(f, h))
  if not r[1] and bridge.stopped() then error(r[2], 0) end
  return unpack(r, 1, r.n)
end
-- redis.call is a Rust function made for each run (it reaches that run's client); redis.pcall
-- is redis.call with its error returned instead of raised.
local function finish(...)
  redis.call = nil
  return ...
end
redis.pcall = function(...)
  local call = redis.call
  if call == nil then error('Please use redis.pcall only from a script', 2) end
  local ok, r = raw_pcall(call, ...)
  if ok then return r end
  if bridge.stopped() then error(r, 0) end
  local raised = bridge.take_raised()
  if raised then return raised end
  return {err = 'ERR ' .. tostring(r)}
end
-- Runs a script, or a function with its keys and arguments, under Redis's error handler,
-- with `call` as redis.call.
local function run(call, f, ...)
  redis.call = call
  if select('#', ...) == 0 then return finish(raw_xpcall(f, handler)) end
  local args = pack(...)
  return finish(raw_xpcall(function() return f(unpack(args, 1, args.n)) end, handler))
end
-- Runs a library's code for FUNCTION LOAD: nil, or the error line (`luaExtractErrorInformation`).
local function load_library(f)
  loading = true
  local ok, e = raw_pcall(f)
  loading = false
  if ok then return nil end
  local raised = bridge.take_raised()
  if raised then e = raised end
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then return e.err end
  return 'ERR ' .. tostring(e)
end
return run, load_library
"#;

/// One thread's Lua state.
pub struct Engine {
    lua: Lua,
    /// The scripts' globals (see the module's comment).
    env: Table,
    /// The RESP version a script chose with `redis.setresp` (2 at the start of each run).
    resp: Rc<Cell<u8>>,
    /// The script running now (SCRIPT KILL and shutdown stop it), or the deadline of the
    /// library code FUNCTION LOAD runs.
    current: Rc<RefCell<Current>>,
    /// A script's KEYS and ARGV, refilled for each run.
    keys: Table,
    argv: Table,
    /// `xpcall` of a script with Redis's error handler.
    runner: Function,
    /// Runs a library's code for FUNCTION LOAD.
    loader: Function,
    /// Libraries' globals (see the prelude).
    fenv: Table,
    /// What `redis.register_function` collects while FUNCTION LOAD runs a library.
    registering: Rc<RefCell<Option<Vec<Registered>>>>,
    functions: HashMap<String, Function>,
    /// Compiled libraries by the SHA1 of their code: their functions by name.
    libraries: HashMap<String, Rc<HashMap<String, Function>>>,
    /// `Scripts::flushes` when `functions` was last emptied.
    flushes: u64,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's engine, made at first use; `Err` if it cannot be made, or is in
/// use (a script cannot run a script: EVAL is refused inside one).
pub fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> Result<R, String> {
    ENGINE.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| "ERR the Lua engine is busy".to_string())?;
        if slot.is_none() {
            *slot = Some(Engine::new().map_err(|e| format!("ERR Lua engine: {e}"))?);
        }
        match slot.as_mut() {
            Some(engine) => {
                engine.forget_flushed();
                Ok(f(engine))
            }
            None => Err("ERR Lua engine unavailable".into()),
        }
    })
}

/// What the Lua hook checks.
#[derive(Default)]
enum Current {
    #[default]
    Idle,
    Script(Arc<Run>),
    Loading(std::time::Instant),
}

/// A function a library registered: its name, description and flags (the names Redis knows
/// in `scripts_flags_def`, checked).
pub struct Registered {
    pub name: String,
    pub description: Option<Bytes>,
    pub flags: u8,
    function: Function,
}

/// How a script's `redis.call` runs one command: the arguments and the RESP version the
/// script asked for (`redis.setresp`), to the command's reply.
pub type CallFn<'a> = dyn FnMut(Vec<Bytes>, u8) -> Reply + 'a;

impl Engine {
    fn new() -> mlua::Result<Engine> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH,
            LuaOptions::default(),
        )?;
        // A script cannot take the server's memory (Redis has no such limit; a runaway
        // script would otherwise meet the OOM killer). Not with mlua's `set_memory_limit`:
        // under a limit mlua runs every operation that allocates (each string and table made
        // for a script) as a protected call through a new C closure, which doubled the cost of
        // a short script. The hook below checks the state's size instead, and `string.rep`,
        // the one library call that can ask for gigabytes at once, checks before it allocates.
        // A killed script gets an error at every check, so a `pcall` that catches one is left
        // by the next (and the prelude's `pcall` rethrows it).
        let current: Rc<RefCell<Current>> = Rc::default();
        let cur = current.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(CHECK_EVERY),
            move |lua, _| {
                let current = cur.borrow();
                if let Current::Script(run) = &*current {
                    run.check_in();
                }
                if lua.used_memory() > MEMORY_LIMIT {
                    return Err(raise(lua, NO_MEMORY));
                }
                match stop_reason(&current) {
                    Some(line) => Err(raise(lua, line)),
                    None => Ok(VmState::Continue),
                }
            },
        );
        let g = lua.globals();
        for name in [
            "dofile", "loadfile", "print", "require", "module", "package",
        ] {
            g.raw_set(name, Value::Nil)?;
        }
        let bridge = lua.create_table()?;
        let cur = current.clone();
        bridge.raw_set(
            "stopped",
            lua.create_function(move |_, ()| Ok(stop_reason(&cur.borrow()).is_some()))?,
        )?;
        let registering: Rc<RefCell<Option<Vec<Registered>>>> = Rc::default();
        let into = registering.clone();
        bridge.raw_set(
            "register_function",
            lua.create_function(move |lua, args: Variadic<Value>| {
                let reg = register_args(&args).map_err(|e| raise(lua, &format!("ERR {e}")))?;
                let mut into = into.borrow_mut();
                let Some(list) = into.as_mut() else {
                    return Err(raise(
                        lua,
                        "ERR redis.register_function can only be called on FUNCTION LOAD command",
                    ));
                };
                if !crate::functions::valid_name(reg.name.as_bytes()) {
                    return Err(raise(lua, &format!("ERR {}", crate::functions::BAD_NAME)));
                }
                if list.iter().any(|r| r.name.eq_ignore_ascii_case(&reg.name)) {
                    return Err(raise(lua, "ERR Function already exists in the library"));
                }
                list.push(reg);
                Ok(())
            })?,
        )?;
        let resp = Rc::new(Cell::new(2u8));
        let f = |name: &str, func: Function| bridge.raw_set(name, func);
        f(
            "sha1hex",
            lua.create_function(|lua, args: Variadic<Value>| {
                let [v] = args.as_slice() else {
                    return Err(raise(lua, "ERR wrong number of arguments"));
                };
                let text = match v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Integer(i) => i.to_string().into_bytes(),
                    Value::Number(n) => format_g17(*n).into_bytes(),
                    _ => Vec::new(),
                };
                Ok(Scripts::sha1hex(&text))
            })?,
        )?;
        for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
            f(
                name,
                lua.create_function(move |lua, args: Variadic<Value>| {
                    let [Value::String(s)] = args.as_slice() else {
                        return err_table(lua, "ERR wrong number or type of arguments");
                    };
                    if field == "ok" {
                        let t = lua.create_table()?;
                        t.raw_set("ok", s.clone())?;
                        return Ok(t);
                    }
                    let text = String::from_utf8_lossy(&s.as_bytes()).into_owned();
                    err_table(lua, text.strip_prefix('-').unwrap_or(&text))
                })?,
            )?;
        }
        f(
            "log",
            lua.create_function(|lua, args: Variadic<Value>| {
                if args.len() < 2 {
                    return Err(raise(
                        lua,
                        "ERR redis.log() requires two arguments or more.",
                    ));
                }
                let Some(level) = args.first().and_then(number) else {
                    return Err(raise(
                        lua,
                        "ERR First argument must be a number (log level).",
                    ));
                };
                if !(0.0..=3.0).contains(&level) {
                    return Err(raise(lua, "ERR Invalid debug level."));
                }
                let msg: Vec<String> = args
                    .iter()
                    .skip(1)
                    .map(|v| match v {
                        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => format_g17(*n),
                        _ => String::new(),
                    })
                    .collect();
                let msg = msg.join(" ");
                if level >= 3.0 {
                    tracing::warn!(target: "script", "{msg}");
                } else if level >= 2.0 {
                    tracing::info!(target: "script", "{msg}");
                } else {
                    tracing::debug!(target: "script", "{msg}");
                }
                Ok(())
            })?,
        )?;
        let chosen = resp.clone();
        f(
            "setresp",
            lua.create_function(move |lua, args: Variadic<Value>| {
                let [v] = args.as_slice() else {
                    return Err(raise(lua, "ERR redis.setresp() requires one argument."));
                };
                match number(v) {
                    Some(2.0) => chosen.set(2),
                    Some(3.0) => chosen.set(3),
                    _ => return Err(raise(lua, "ERR RESP version must be 2 or 3.")),
                }
                Ok(())
            })?,
        )?;
        f(
            "set_repl",
            lua.create_function(|lua, args: Variadic<Value>| {
                let [v] = args.as_slice() else {
                    return Err(raise(lua, "ERR redis.set_repl() requires two arguments."));
                };
                let flags = number(v).unwrap_or(0.0) as i64;
                if flags & !3 != 0 {
                    return Err(raise(
                        lua,
                        "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                    ));
                }
                Ok(())
            })?,
        )?;
        bridge.raw_set("memory_limit", MEMORY_LIMIT)?;
        bridge.raw_set("bit", bit_library(&lua)?)?;
        bridge.raw_set("cjson", super::json::library(&lua)?)?;
        bridge.raw_set("cmsgpack", super::msgpack::library(&lua)?)?;
        bridge.raw_set("struct", super::structlib::library(&lua)?)?;
        f(
            "take_raised",
            lua.create_function(|lua, ()| {
                Ok(lua.remove_app_data::<Raised>().map_or(Value::Nil, |r| r.0))
            })?,
        )?;
        bridge.raw_set(
            "where",
            lua.create_function(|lua, ()| {
                for level in 1..200 {
                    let Some(frame) = lua.inspect_stack(level) else {
                        break;
                    };
                    let source = frame.source().source;
                    if let Some(src) = source.as_deref()
                        && (src == CHUNK || src == FUNCTION_CHUNK)
                    {
                        return Ok((Some(frame.curr_line()), Some(src.to_string())));
                    }
                }
                Ok((None, None))
            })?,
        )?;
        let env = lua.create_table()?;
        let fenv = lua.create_table()?;
        let version = crate::REDIS_VERSION;
        let num = version
            .split('.')
            .filter_map(|p| p.parse::<i64>().ok())
            .fold(0i64, |acc, p| acc * 256 + p);
        let (keys, argv) = (lua.create_table()?, lua.create_table()?);
        let (runner, loader): (Function, Function) =
            lua.load(PRELUDE).set_name("=autocache").call((
                bridge.clone(),
                env.clone(),
                fenv.clone(),
                version,
                num,
                keys.clone(),
                argv.clone(),
            ))?;
        Ok(Engine {
            lua,
            env,
            resp,
            current,
            keys,
            argv,
            runner,
            loader,
            fenv,
            registering,
            functions: HashMap::new(),
            libraries: HashMap::new(),
            flushes: Scripts::flushes(),
        })
    }

    fn forget_flushed(&mut self) {
        let now = Scripts::flushes();
        if now != self.flushes {
            self.functions.clear();
            self.flushes = now;
        }
    }

    /// The compiled script `sha` (compiling `body` the first time); the compiler's error as
    /// Redis words it.
    pub fn function(&mut self, sha: &str, body: &[u8]) -> Result<Function, String> {
        if let Some(f) = self.functions.get(sha) {
            return Ok(f.clone());
        }
        let f = self
            .lua
            .load(body)
            .set_name(CHUNK)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                format!("ERR Error compiling script (new function): {msg}")
            })?;
        self.functions.insert(sha.to_string(), f.clone());
        Ok(f)
    }

    /// Compiles a library's code (its text after the `#!lua` line) and runs it as FUNCTION
    /// LOAD does: the functions it registers, or the error as Redis words it (without the
    /// `ERR` code).
    pub fn load_library(&mut self, code: &[u8]) -> Result<Vec<Registered>, String> {
        let chunk = self
            .lua
            .load(code)
            .set_name(FUNCTION_CHUNK)
            .set_environment(self.fenv.clone())
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                format!("Error compiling function: {msg}")
            })?;
        *self.registering.borrow_mut() = Some(Vec::new());
        *self.current.borrow_mut() = Current::Loading(std::time::Instant::now() + LOAD_TIMEOUT);
        self.lua.remove_app_data::<Raised>();
        let out = self.loader.call::<Option<mlua::String>>(chunk);
        *self.current.borrow_mut() = Current::Idle;
        let registered = self.registering.borrow_mut().take().unwrap_or_default();
        self.clean();
        match out {
            Ok(None) => Ok(registered),
            Ok(Some(e)) => Err(format!(
                "Error registering functions: {}",
                String::from_utf8_lossy(&e.as_bytes())
            )),
            Err(e) => Err(format!("Error registering functions: ERR {e}")),
        }
    }

    /// Function `name` of the library whose code (after the `#!lua` line) is `code`, whose
    /// SHA1 is `sha`: compiled in this thread's state the first time.
    pub fn library_function(
        &mut self,
        sha: &str,
        code: &[u8],
        name: &str,
    ) -> Result<Function, String> {
        if let Some(lib) = self.libraries.get(sha) {
            return lib
                .get(&name.to_ascii_lowercase())
                .cloned()
                .ok_or_else(|| "Function not found".to_string());
        }
        let registered = self.load_library(code)?;
        if self.libraries.len() >= MAX_LIBRARIES {
            self.libraries.clear();
        }
        let lib: HashMap<String, Function> = registered
            .into_iter()
            .map(|r| (r.name.to_ascii_lowercase(), r.function))
            .collect();
        let f = lib.get(&name.to_ascii_lowercase()).cloned();
        self.libraries.insert(sha.to_string(), Rc::new(lib));
        f.ok_or_else(|| "Function not found".to_string())
    }

    /// Runs a compiled script with its KEYS and ARGV (or a function with its keys and
    /// arguments, when `function`); commands go to `call`. `name` is the script's SHA1 or the
    /// function's name. The reply as Redis makes it from the result or error.
    #[allow(clippy::too_many_arguments)] // one run's whole context
    pub fn run(
        &mut self,
        name: &str,
        f: &Function,
        keys: &[Bytes],
        argv: &[Bytes],
        function: bool,
        running: &Arc<Run>,
        call: &mut CallFn<'_>,
    ) -> Reply {
        *self.current.borrow_mut() = Current::Script(running.clone());
        let out = self.run_inner(name, f, keys, argv, function, call);
        *self.current.borrow_mut() = Current::Idle;
        self.clean();
        match out {
            Ok(r) => r,
            Err(e) => Reply::Error(format!("ERR Error running script {name}, {e}")),
        }
    }

    fn run_inner(
        &mut self,
        sha: &str,
        f: &Function,
        keys: &[Bytes],
        argv: &[Bytes],
        function: bool,
        call: &mut CallFn<'_>,
    ) -> mlua::Result<Reply> {
        let lua = &self.lua;
        // A function gets tables of its own (a library may keep them); a script's KEYS and
        // ARGV are the engine's two tables, refilled (nothing of a run outlives it).
        let args = if function {
            // A library's functions keep the library's globals.
            f.set_environment(self.fenv.clone())?;
            Some((strings(lua, keys)?, strings(lua, argv)?))
        } else {
            refill(lua, &self.keys, keys)?;
            refill(lua, &self.argv, argv)?;
            // A previous run may have changed the function's environment (`setfenv`).
            f.set_environment(self.env.clone())?;
            None
        };
        let resp = &*self.resp;
        resp.set(2);
        lua.remove_app_data::<Raised>();
        let call = RefCell::new(call);
        // `redis.call` reaches this run's client, so it is made in a scope, for this run.
        lua.scope(|scope| {
            let call = scope.create_function(|lua, args: MultiValue| {
                let reply = match command_args(args) {
                    Ok(argv) => match call.try_borrow_mut() {
                        Ok(mut call) => (**call)(argv, resp.get()),
                        Err(_) => Reply::Error("ERR recursive redis.call".into()),
                    },
                    Err(e) => Reply::Error(e.into()),
                };
                if let Reply::Error(line) = &reply {
                    return Err(raise(lua, line));
                }
                to_lua(lua, &reply, resp.get() == 3, 0)
            })?;
            let ran = match args {
                Some((keys, argv)) => self.runner.call((call, f.clone(), keys, argv)),
                None => self.runner.call((call, f.clone())),
            };
            let (ok, v): (bool, Value) = ran?;
            if ok {
                return Ok(from_lua(&v, resp.get(), 0));
            }
            Ok(script_error(sha, &v))
        })
    }

    /// Removes what a script put in its globals (or a library in its), and what the run set.
    fn clean(&self) {
        for env in [&self.env, &self.fenv] {
            let stray: Vec<Value> = env
                .pairs::<Value, Value>()
                .filter_map(|p| p.ok().map(|(k, _)| k))
                .collect();
            for k in stray {
                let _ = env.raw_set(k, Value::Nil);
            }
        }
    }
}

/// The error that stops the running script (or library load) now, if it must stop.
fn stop_reason(current: &Current) -> Option<&'static str> {
    match current {
        Current::Idle => None,
        Current::Script(run) => match run.stop()? {
            Stop::Killed => Some("ERR Script killed by user with SCRIPT KILL..."),
            Stop::Shutdown => Some("ERR Script stopped: the server is shutting down"),
        },
        Current::Loading(deadline) => {
            (std::time::Instant::now() >= *deadline).then_some("ERR FUNCTION LOAD timeout")
        }
    }
}

/// `redis.register_function`'s arguments, both forms (`luaRegisterFunctionReadArgs`); the
/// error text without its code.
fn register_args(args: &[Value]) -> Result<Registered, &'static str> {
    let string = |v: &Value| match v {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        Value::Number(n) => Some(Bytes::from(format_g17(*n))),
        _ => None,
    };
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    match args {
        [name, callback] => {
            let name =
                string(name).ok_or("first argument to redis.register_function must be a string")?;
            let Value::Function(function) = callback else {
                return Err("second argument to redis.register_function must be a function");
            };
            Ok(Registered {
                name: text(name),
                description: None,
                flags: 0,
                function: function.clone(),
            })
        }
        [named] => {
            let Value::Table(t) = named else {
                return Err(
                    "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
                );
            };
            let (mut name, mut description, mut function, mut flags) = (None, None, None, 0u8);
            for pair in t.pairs::<Value, Value>() {
                let Ok((k, v)) = pair else {
                    return Err("unknown argument given to redis.register_function");
                };
                let key = string(&k)
                    .ok_or("named argument key given to redis.register_function is not a string")?;
                match text(key).to_ascii_lowercase().as_str() {
                    "function_name" => {
                        name = Some(string(&v).ok_or("function_name argument given to redis.register_function must be a string")?);
                    }
                    "description" => {
                        description = Some(string(&v).ok_or("description argument given to redis.register_function must be a string")?);
                    }
                    "callback" => match v {
                        Value::Function(f) => function = Some(f),
                        _ => {
                            return Err(
                                "callback argument given to redis.register_function must be a function",
                            );
                        }
                    },
                    "flags" => {
                        let Value::Table(list) = v else {
                            return Err(
                                "flags argument to redis.register_function must be a table representing function flags",
                            );
                        };
                        for i in 1.. {
                            match list.raw_get::<Value>(i) {
                                Ok(Value::Nil) => break,
                                Ok(v) => {
                                    let flag = string(&v).ok_or("unknown flag given")?;
                                    flags |= crate::functions::flag_bit(&flag)
                                        .ok_or("unknown flag given")?;
                                }
                                Err(_) => return Err("unknown flag given"),
                            }
                        }
                    }
                    _ => return Err("unknown argument given to redis.register_function"),
                }
            }
            let name = name.ok_or("redis.register_function must get a function name argument")?;
            let function =
                function.ok_or("redis.register_function must get a callback argument")?;
            Ok(Registered {
                name: text(name),
                description,
                flags,
                function,
            })
        }
        _ => Err("wrong number of arguments to redis.register_function"),
    }
}

/// Raises `{err = line}` from a Rust function: the table waits aside ([`Raised`]) and the
/// error handler (or `pcall`) takes it back; mlua can only raise its own error values.
fn raise(lua: &Lua, line: &str) -> mlua::Error {
    match err_table(lua, line) {
        Ok(t) => {
            lua.set_app_data(Raised(Value::Table(t)));
            mlua::Error::runtime(line)
        }
        Err(e) => e,
    }
}

/// Lua BitOp's `bit` library, as Redis bundles it: 32-bit operations on numbers, results
/// signed.
fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    type Op = fn(&[i32]) -> f64;
    let t = lua.create_table()?;
    // (name, required arguments, whether more may follow, the operation)
    let ops: [(&str, usize, bool, Op); 11] = [
        ("tobit", 1, false, |a| f64::from(a[0])),
        ("bnot", 1, false, |a| f64::from(!a[0])),
        ("band", 1, true, |a| {
            f64::from(a.iter().fold(-1, |x, y| x & y))
        }),
        ("bor", 1, true, |a| {
            f64::from(a.iter().fold(0, |x, y| x | y))
        }),
        ("bxor", 1, true, |a| {
            f64::from(a.iter().fold(0, |x, y| x ^ y))
        }),
        ("lshift", 2, false, |a| {
            f64::from(((a[0] as u32) << (a[1] & 31)) as i32)
        }),
        ("rshift", 2, false, |a| {
            f64::from(((a[0] as u32) >> (a[1] & 31)) as i32)
        }),
        ("arshift", 2, false, |a| f64::from(a[0] >> (a[1] & 31))),
        ("rol", 2, false, |a| {
            f64::from((a[0] as u32).rotate_left((a[1] & 31) as u32) as i32)
        }),
        ("ror", 2, false, |a| {
            f64::from((a[0] as u32).rotate_right((a[1] & 31) as u32) as i32)
        }),
        ("bswap", 1, false, |a| f64::from(a[0].swap_bytes())),
    ];
    for (name, required, more, op) in ops {
        let func = lua.create_function(move |lua, args: Variadic<Value>| {
            let n = if more {
                args.len().max(required)
            } else {
                required
            };
            let mut ints = Vec::with_capacity(n);
            for i in 0..n {
                ints.push(bit_arg(lua, name, &args, i)?);
            }
            Ok(op(&ints))
        })?;
        t.raw_set(name, func)?;
    }
    t.raw_set(
        "tohex",
        lua.create_function(|lua, args: Variadic<Value>| {
            let x = bit_arg(lua, "tohex", &args, 0)? as u32;
            let n = match args.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => bit_arg(lua, "tohex", &args, 1)?,
            };
            let digits = n.unsigned_abs().min(8) as usize;
            let masked = if digits >= 8 {
                x
            } else {
                x & ((1u32 << (4 * digits)) - 1)
            };
            Ok(if n < 0 {
                format!("{masked:0digits$X}")
            } else {
                format!("{masked:0digits$x}")
            })
        })?,
    )?;
    Ok(t)
}

/// Argument `i` of a `bit` function as BitOp's `tobit` makes it (rounded, modulo 2^32), or
/// `luaL_checknumber`'s error, raised as a string with the caller's position.
fn bit_arg(lua: &Lua, name: &str, args: &[Value], i: usize) -> mlua::Result<i32> {
    let v = args.get(i).unwrap_or(&Value::Nil);
    match number(v) {
        Some(x) => Ok(x.round_ties_even().rem_euclid(4_294_967_296.0) as u32 as i32),
        None => {
            let got = match v {
                Value::Nil if i >= args.len() => "no value",
                other => other.type_name(),
            };
            Err(raise_where(
                lua,
                &format!(
                    "bad argument #{} to '{name}' (number expected, got {got})",
                    i + 1
                ),
            ))
        }
    }
}

/// Raises a string error as a C library's `luaL_error` does: prefixed with the position of
/// the Lua code that called the library function.
pub(super) fn raise_where(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1)
        .filter(|f| f.source().what != "C")
        .map(|f| {
            let src = f
                .source()
                .short_src
                .map(|s| s.into_owned())
                .unwrap_or_default();
            format!("{src}:{}: ", f.curr_line())
        })
        .unwrap_or_default();
    let msg = format!("{at}{msg}");
    match lua.create_string(&msg) {
        Ok(s) => {
            lua.set_app_data(Raised(Value::String(s)));
            mlua::Error::runtime(msg)
        }
        Err(e) => e,
    }
}

/// A Lua value as `lua_tonumber` reads it (numbers, and strings that hold one).
pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => std::str::from_utf8(&s.as_bytes()).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    fill(lua, &t, items)?;
    Ok(t)
}

/// Empties `t` (and drops a metatable a script gave it), then fills it with `items`.
/// (Not with mlua's `Table::clear`, which leaves the table on the Lua stack: after some
/// thousand runs, `out of Lua stack`.)
fn refill(lua: &Lua, t: &Table, items: &[Bytes]) -> mlua::Result<()> {
    for i in 1..=t.raw_len() {
        t.raw_set(i, Value::Nil)?;
    }
    if !t.is_empty() {
        // A script stored other keys in it.
        let stray: Vec<Value> = t
            .pairs::<Value, Value>()
            .filter_map(|p| p.ok().map(|(k, _)| k))
            .collect();
        for k in stray {
            t.raw_set(k, Value::Nil)?;
        }
    }
    t.set_metatable(None);
    fill(lua, t, items)
}

fn fill(lua: &Lua, t: &Table, items: &[Bytes]) -> mlua::Result<()> {
    for (i, item) in items.iter().enumerate() {
        // mlua pushes a `&str` straight onto the stack; other bytes go through a handle.
        match std::str::from_utf8(item) {
            Ok(text) => t.raw_set(i + 1, text)?,
            Err(_) => t.raw_set(i + 1, lua.create_string(item)?)?,
        }
    }
    Ok(())
}

/// A `redis.call`'s arguments: strings, and numbers as `%.17g`.
fn command_args(args: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    args.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => Ok(Bytes::from(format_g17(i as f64))),
            Value::Number(n) => Ok(Bytes::from(format_g17(n))),
            _ => Err("ERR Lua redis lib command arguments must be strings or integers"),
        })
        .collect()
}

/// Redis's error table for an error line (`luaPushErrorBuff`): `{err = "CODE message"}`, the
/// code `ERR` when the line has none.
fn err_table(lua: &Lua, line: &str) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", err_text(line))?;
    Ok(t)
}

fn err_text(line: &str) -> String {
    let (code, msg) = match line.split_once(' ') {
        Some((code, msg)) => (code, msg),
        None => ("ERR", line),
    };
    format!("{code} {}", msg.trim_matches(|c| c == '\r' || c == '\n'))
}

/// A reply as the script sees it (RESP2 unless the script called `redis.setresp(3)`).
fn to_lua(lua: &Lua, r: &Reply, resp3: bool, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Ok(Value::Boolean(false));
    }
    let status = |s: &str| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set("ok", s)?;
        Ok(Value::Table(t))
    };
    let seq = |items: &mut dyn Iterator<Item = &Reply>| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for (i, item) in items.enumerate() {
            t.raw_set(i + 1, to_lua(lua, item, resp3, depth + 1)?)?;
        }
        Ok(Value::Table(t))
    };
    let wrapped = |name: &str, inner: Table| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(name, inner)?;
        Ok(Value::Table(t))
    };
    Ok(match r {
        Reply::Ok => status("OK")?,
        Reply::Simple(s) => status(s)?,
        Reply::Status(s) => status(s)?,
        Reply::Error(line) => Value::Table(err_table(lua, line)?),
        Reply::Int(i) => Value::Number(*i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Array(items) => seq(&mut items.iter())?,
        Reply::Set(items) if resp3 => {
            let inner = lua.create_table()?;
            for item in items {
                inner.raw_set(to_lua(lua, item, resp3, depth + 1)?, true)?;
            }
            wrapped("set", inner)?
        }
        Reply::Set(items) => seq(&mut items.iter())?,
        Reply::Map(pairs) if resp3 => {
            let inner = lua.create_table()?;
            for (k, v) in pairs {
                inner.raw_set(
                    to_lua(lua, k, resp3, depth + 1)?,
                    to_lua(lua, v, resp3, depth + 1)?,
                )?;
            }
            wrapped("map", inner)?
        }
        Reply::Map(pairs) => seq(&mut pairs.iter().flat_map(|(k, v)| [k, v]))?,
        Reply::Double(d) | Reply::Human(d) if resp3 => {
            let t = lua.create_table()?;
            t.raw_set("double", *d)?;
            Value::Table(t)
        }
        Reply::Double(d) => Value::String(lua.create_string(format_g17(*d))?),
        Reply::Human(d) => Value::String(lua.create_string(membership::resp::format_human(*d))?),
        Reply::Verbatim(s) => Value::String(lua.create_string(s)?),
        // Pub/sub commands are `noscript`: these do not reach a script; as arrays if they did.
        Reply::Push(items) | Reply::Many(items) => seq(&mut items.iter())?,
    })
}

/// A script's result as a reply (`luaReplyToRedisReply`).
fn from_lua(v: &Value, resp: u8, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::Error("ERR reached lua stack limit".into());
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) => Reply::Int(1),
        // After `redis.setresp(3)` Redis answers a boolean; RESP2 has it as 0 (RESP3 `#f`
        // is not modelled: `:0` there too).
        Value::Boolean(false) if resp == 3 => Reply::Int(0),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(i) => Reply::Int(*i),
        // C's `(long long)` cast truncates; out of range saturates here instead.
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(t) => table_reply(t, resp, depth),
        _ => Reply::Nil,
    }
}

fn table_reply(t: &Table, resp: u8, depth: usize) -> Reply {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        let text = String::from_utf8_lossy(&e.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::Error(text);
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        let text = String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::Status(text);
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return Reply::Double(d),
        Ok(Value::Integer(i)) => return Reply::Double(i as f64),
        _ => {}
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (from_lua(&k, resp, depth + 1), from_lua(&v, resp, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("set") {
        let items = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| from_lua(&k, resp, depth + 1))
            .collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(from_lua(&v, resp, depth + 1)),
        }
    }
    Reply::Array(items)
}

/// The reply to a script that raised an error (`luaCallFunction`): the error's text, then
/// where it happened.
fn script_error(sha: &str, v: &Value) -> Reply {
    let Value::Table(t) = v else {
        let msg = match v {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "execution failure".into(),
        };
        return Reply::Error(format!("ERR Error running script {sha}, {msg}"));
    };
    let msg = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        Ok(Value::Integer(i)) => i.to_string(),
        Ok(Value::Number(n)) => format_g17(n),
        _ => "ERR unknown error".into(),
    };
    let line = match t.raw_get::<Value>("line") {
        Ok(Value::Integer(i)) => Some(i.to_string()),
        Ok(Value::Number(n)) => Some(format_g17(n)),
        Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    };
    let source = match t.raw_get::<Value>("source") {
        Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        _ => None,
    };
    let text = match (line, source) {
        (Some(line), Some(source)) => format!("{msg} script: {sha}, on {source}:{line}."),
        _ => msg,
    };
    Reply::Error(text.replace(['\r', '\n'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_become_redis_error_tables() {
        assert_eq!(err_text("WRONGTYPE Operation"), "WRONGTYPE Operation");
        assert_eq!(err_text("oops"), "ERR oops");
        assert_eq!(err_text("MY bad\r\n"), "MY bad");
    }
}
