//! The function libraries (FUNCTION LOAD), beside the script cache: each library's code and
//! the functions it registered, by name. Like the script cache this keeps text and metadata
//! only; each worker thread compiles a library into its own Lua state the first time one of
//! its functions is called (`cmd::lua`, keyed by the code's SHA1, so a replaced library is
//! recompiled).
//!
//! Redis keeps functions in the RDB file; here, when the shard has a warm tier, the libraries
//! are written to `functions.dump` in its data directory after every change (the FUNCTION DUMP
//! payload, written to a temporary file and renamed) and loaded again at start.
//!
//! The FUNCTION DUMP payload is this project's own format, not Redis's RDB encoding: a
//! payload from one shard restores on another shard, not on Redis (nor Redis's on a shard).
//! Layout: `ACFN`, a version byte (1), the number of libraries (u32, big endian), each
//! library's whole code (`#!lua name=...` included) as a u32 length and the bytes, then the
//! first 8 bytes of the SHA1 of everything before them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;

/// Redis's error for a library or function name that is not `[A-Za-z0-9_]+` (Redis 7.0 gives
/// it for function names too).
pub const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// The function flags, in Redis's order (`scripts_flags_def`), as bits of [`Function::flags`].
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
pub const NO_WRITES: u8 = 1;
pub const ALLOW_OOM: u8 = 2;
pub const NO_CLUSTER: u8 = 8;
pub const ALLOW_CROSS_SLOT: u8 = 16;

const MAGIC: &[u8] = b"ACFN";
const VERSION: u8 = 1;
const FILE: &str = "functions.dump";

/// The bit of a flag named as Redis names it (case-insensitive).
pub fn flag_bit(name: &[u8]) -> Option<u8> {
    FLAG_NAMES
        .iter()
        .position(|f| f.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// Whether a library or function name is valid (`functionsVerifyName`).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub struct Function {
    pub name: String,
    pub description: Option<Bytes>,
    pub flags: u8,
}

pub struct Library {
    pub name: String,
    /// The whole code, `#!lua` line included (FUNCTION LIST WITHCODE, DUMP).
    pub code: Bytes,
    /// SHA1 of [`Library::body`]: the key of the threads' compiled copies.
    pub sha: String,
    /// Sorted by name.
    pub functions: Vec<Function>,
}

impl Library {
    /// The code after the `#!lua` line, its newline kept so line numbers match the text.
    pub fn body(&self) -> &[u8] {
        let at = self
            .code
            .iter()
            .position(|&c| c == b'\n')
            .unwrap_or(self.code.len());
        &self.code[at..]
    }

    /// A function by name (function names are case-insensitive, as in Redis).
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// The library header (`functionExtractLibMetaData`): the engine and the library's name.
pub fn parse_header(code: &[u8]) -> Result<(String, String), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&c| c == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..end]);
    let mut parts = line.split_ascii_whitespace();
    let Some(engine) = parts.next() else {
        return Err("Invalid library metadata".into());
    };
    let engine = engine.trim_start_matches("#!").to_string();
    let mut name = None;
    for part in parts {
        match part.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("name=") => {
                if name.is_some() {
                    return Err(
                        "Invalid metadata value, name argument was given multiple times".into(),
                    );
                }
                name = Some(part[5..].to_string());
            }
            _ => return Err(format!("Invalid metadata value given: {part}")),
        }
    }
    let name = name.ok_or("Library name was not given")?;
    Ok((engine, name))
}

/// Compiles a library's body and returns what it registered (the Lua engine of this thread).
pub type Compile<'a> = dyn FnMut(&[u8]) -> Result<Vec<Function>, String> + 'a;

#[derive(Default)]
struct Registry {
    libraries: BTreeMap<String, Arc<Library>>,
    /// Function name (lower case: names are case-insensitive) to its library's name.
    functions: BTreeMap<String, String>,
}

impl Registry {
    fn link(&mut self, lib: Arc<Library>) {
        for f in &lib.functions {
            self.functions
                .insert(f.name.to_ascii_lowercase(), lib.name.clone());
        }
        self.libraries.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &str) -> Option<Arc<Library>> {
        let lib = self.libraries.remove(name)?;
        for f in &lib.functions {
            self.functions.remove(&f.name.to_ascii_lowercase());
        }
        Some(lib)
    }

    fn collision(&self, lib: &Library) -> Option<String> {
        lib.functions
            .iter()
            .find(|f| self.functions.contains_key(&f.name.to_ascii_lowercase()))
            .map(|f| format!("Function {} already exists", f.name))
    }
}

/// How FUNCTION RESTORE treats the libraries there are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Flush,
    Append,
    Replace,
}

#[derive(Default)]
pub struct Functions {
    registry: RwLock<Registry>,
    /// Where the libraries persist (with a warm tier).
    file: Option<PathBuf>,
}

impl Functions {
    /// The registry; persisted in `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Functions {
        Functions {
            registry: RwLock::default(),
            file: dir.map(|d| d.join(FILE)),
        }
    }

    /// A library by the SHA1-less lookup FCALL does: the function's library.
    pub fn find(&self, function: &str) -> Option<Arc<Library>> {
        let r = self.registry.read();
        let lib = r.functions.get(&function.to_ascii_lowercase())?;
        r.libraries.get(lib).cloned()
    }

    pub fn libraries(&self) -> Vec<Arc<Library>> {
        self.registry.read().libraries.values().cloned().collect()
    }

    /// The library's name from its header, checked as Redis checks it before running it.
    fn checked_name(code: &[u8]) -> Result<String, String> {
        let (engine, name) = parse_header(code)?;
        if !valid_name(name.as_bytes()) {
            return Err(BAD_NAME.into());
        }
        if !engine.eq_ignore_ascii_case("lua") {
            return Err(format!("Engine '{engine}' not found"));
        }
        Ok(name)
    }

    /// Makes a library from its code (header checks, then the engine).
    fn make(code: Bytes, compile: &mut Compile<'_>) -> Result<Library, String> {
        let name = Self::checked_name(&code)?;
        let at = code.iter().position(|&c| c == b'\n').unwrap_or(code.len());
        let body = &code[at..];
        let mut functions = compile(body)?;
        if functions.is_empty() {
            return Err("No functions registered".into());
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Library {
            name,
            sha: crate::scripts::Scripts::sha1hex(body),
            code,
            functions,
        })
    }

    /// FUNCTION LOAD: the library's name, or Redis's error line (code `ERR` unless given).
    pub fn load(
        &self,
        code: Bytes,
        replace: bool,
        compile: &mut Compile<'_>,
    ) -> Result<String, String> {
        let name = Self::checked_name(&code).map_err(err)?;
        if !replace && self.registry.read().libraries.contains_key(&name) {
            return Err(format!("ERR Library '{name}' already exists"));
        }
        let lib = Self::make(code, compile).map_err(err)?;
        let mut r = self.registry.write();
        if r.libraries.contains_key(&lib.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", lib.name));
        }
        let old = r.unlink(&lib.name);
        if let Some(e) = r.collision(&lib) {
            if let Some(old) = old {
                r.link(old);
            }
            return Err(err(e));
        }
        let name = lib.name.clone();
        r.link(Arc::new(lib));
        self.persist(&r);
        Ok(name)
    }

    /// FUNCTION DELETE.
    pub fn delete(&self, name: &str) -> bool {
        let mut r = self.registry.write();
        let found = r.unlink(name).is_some();
        if found {
            self.persist(&r);
        }
        found
    }

    /// FUNCTION FLUSH.
    pub fn flush(&self) {
        let mut r = self.registry.write();
        *r = Registry::default();
        self.persist(&r);
    }

    /// (libraries, functions) for FUNCTION STATS.
    pub fn counts(&self) -> (usize, usize) {
        let r = self.registry.read();
        (r.libraries.len(), r.functions.len())
    }

    /// FUNCTION DUMP's payload.
    pub fn dump(&self) -> Bytes {
        encode(&self.registry.read())
    }

    /// FUNCTION RESTORE.
    pub fn restore(
        &self,
        payload: &[u8],
        policy: Policy,
        compile: &mut Compile<'_>,
    ) -> Result<(), String> {
        let codes = decode(payload).ok_or("ERR DUMP payload version or checksum are wrong")?;
        let mut new = Registry::default();
        for code in codes {
            let lib = Self::make(code, compile).map_err(err)?;
            if new.libraries.contains_key(&lib.name) {
                return Err(format!("ERR Library {} already exists", lib.name));
            }
            if let Some(e) = new.collision(&lib) {
                return Err(err(e));
            }
            new.link(Arc::new(lib));
        }
        let mut r = self.registry.write();
        if policy == Policy::Flush {
            *r = new;
        } else {
            let mut joined = Registry {
                libraries: r.libraries.clone(),
                functions: r.functions.clone(),
            };
            for name in new.libraries.keys() {
                if joined.libraries.contains_key(name) {
                    if policy == Policy::Append {
                        return Err(format!("ERR Library {name} already exists"));
                    }
                    joined.unlink(name);
                }
            }
            for lib in new.libraries.values() {
                if let Some(e) = joined.collision(lib) {
                    return Err(err(e));
                }
            }
            for lib in new.libraries.into_values() {
                joined.link(lib);
            }
            *r = joined;
        }
        self.persist(&r);
        Ok(())
    }

    /// Loads the libraries persisted in the data directory (at start).
    pub fn load_persisted(&self, compile: &mut Compile<'_>) -> Result<usize, String> {
        let Some(file) = &self.file else {
            return Ok(0);
        };
        let payload = match std::fs::read(file) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        self.restore(&payload, Policy::Flush, compile)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(self.counts().0)
    }

    /// Writes the libraries to the data directory (called with the registry locked, so two
    /// changes are written in the order they were made).
    fn persist(&self, r: &Registry) {
        let Some(file) = &self.file else {
            return;
        };
        let tmp = file.with_extension("dump.tmp");
        let written = std::fs::write(&tmp, encode(r)).and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "cannot persist function libraries");
        }
    }
}

/// An error line with Redis's default code.
fn err(e: impl Into<String>) -> String {
    format!("ERR {}", e.into())
}

fn encode(r: &Registry) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(r.libraries.len() as u32);
    for lib in r.libraries.values() {
        out.put_u32(lib.code.len() as u32);
        out.put_slice(&lib.code);
    }
    let digest = sha1_smol::Sha1::from(&out[..]).digest().bytes();
    out.put_slice(&digest[..8]);
    out.freeze()
}

/// The libraries' codes in a payload; `None` when it is not one of ours or is damaged.
fn decode(payload: &[u8]) -> Option<Vec<Bytes>> {
    let (body, sum) = payload.split_at_checked(payload.len().checked_sub(8)?)?;
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    if digest.get(..8)? != sum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (&version, rest) = rest.split_first()?;
    if version != VERSION {
        return None;
    }
    let (count, mut rest) = rest.split_at_checked(4)?;
    let count = u32::from_be_bytes(count.try_into().ok()?);
    let mut codes = Vec::new();
    for _ in 0..count {
        let (len, after) = rest.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (code, after) = after.split_at_checked(len)?;
        codes.push(Bytes::copy_from_slice(code));
        rest = after;
    }
    rest.is_empty().then_some(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(body: &[u8]) -> Result<Vec<Function>, String> {
        // A stand-in engine: one function per line `f <name>`.
        Ok(String::from_utf8_lossy(body)
            .lines()
            .filter_map(|l| l.strip_prefix("f "))
            .map(|n| Function {
                name: n.to_string(),
                description: None,
                flags: 0,
            })
            .collect())
    }

    #[test]
    fn headers_are_checked_as_redis_does() {
        assert_eq!(
            parse_header(b"lua name=x").expect_err("refused"),
            "Missing library metadata"
        );
        assert_eq!(
            parse_header(b"#!lua name=x").expect_err("refused"),
            "Invalid library metadata"
        );
        assert_eq!(
            parse_header(b"#!lua name=a name=b\n").expect_err("refused"),
            "Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(
            parse_header(b"#!lua foo=bar\n").expect_err("refused"),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            parse_header(b"#!lua\n").expect_err("refused"),
            "Library name was not given"
        );
        assert_eq!(
            parse_header(b"#!LUA NAME=lib\n").expect("accepted"),
            ("LUA".to_string(), "lib".to_string())
        );
    }

    #[test]
    fn dump_restores_and_damage_is_refused() {
        let fs = Functions::default();
        fs.load(
            Bytes::from_static(b"#!lua name=a\nf one\nf two"),
            false,
            &mut compile,
        )
        .expect("accepted");
        fs.load(
            Bytes::from_static(b"#!lua name=b\nf three"),
            false,
            &mut compile,
        )
        .expect("accepted");
        let dump = fs.dump();
        let other = Functions::default();
        other
            .restore(&dump, Policy::Append, &mut compile)
            .expect("accepted");
        assert_eq!(other.counts(), (2, 3));
        assert_eq!(
            other
                .restore(&dump, Policy::Append, &mut compile)
                .expect_err("refused"),
            "ERR Library a already exists"
        );
        other
            .restore(&dump, Policy::Replace, &mut compile)
            .expect("accepted");
        assert_eq!(other.counts(), (2, 3));
        for cut in 0..dump.len() {
            assert!(decode(&dump[..cut]).is_none(), "cut at {cut}");
        }
        let mut bad = dump.to_vec();
        bad[6] ^= 1;
        assert!(decode(&bad).is_none());
    }

    #[test]
    fn collisions_leave_the_registry_unchanged() {
        let fs = Functions::default();
        fs.load(
            Bytes::from_static(b"#!lua name=a\nf one"),
            false,
            &mut compile,
        )
        .expect("accepted");
        assert_eq!(
            fs.load(
                Bytes::from_static(b"#!lua name=b\nf one"),
                false,
                &mut compile
            )
            .expect_err("refused"),
            "ERR Function one already exists"
        );
        assert_eq!(
            fs.load(
                Bytes::from_static(b"#!lua name=a\nf x"),
                false,
                &mut compile
            )
            .expect_err("refused"),
            "ERR Library 'a' already exists"
        );
        assert_eq!(
            fs.load(Bytes::from_static(b"#!lua name=a\n"), true, &mut compile)
                .expect_err("refused"),
            "ERR No functions registered"
        );
        assert_eq!(fs.find("one").map(|l| l.name.clone()).as_deref(), Some("a"));
    }
}
