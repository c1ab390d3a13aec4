//! The `cmsgpack` library for scripts: `cmsgpack.pack`, `cmsgpack.unpack`,
//! `cmsgpack.unpack_one` and `cmsgpack.unpack_limit`, as Redis's bundled lua-cmsgpack 0.4.0
//! encodes and decodes: numbers that are whole (and fit an int64) as the smallest integer
//! format, other numbers as float32 when that is exact, else float64; strings as str8/16/32
//! (fixstr when short); a table whose keys are exactly 1..n as an array, any other as a map;
//! tables nested deeper than 16 as nil; functions and other values as nil. Decoding reads
//! the types lua-cmsgpack 0.4.0 reads (not bin nor the extension types: "Bad data format"),
//! numbers as Lua numbers.

use mlua::{Lua, MultiValue, Table, Value, Variadic};

use super::lua::raise_where;

/// Tables nested deeper than this are encoded as nil (`LUACMSGPACK_MAX_NESTING`).
const MAX_NESTING: usize = 16;

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("_NAME", "lua-cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.is_empty() {
                return Err(raise_where(
                    lua,
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)",
                ));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(v, 0, &mut out);
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: Variadic<Value>| unpack(lua, &args, "unpack", 0, 0, true))?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, args: Variadic<Value>| {
            let offset = opt_int(lua, &args, 1, "unpack_one")?;
            unpack(lua, &args, "unpack_one", 1, offset, false)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, args: Variadic<Value>| {
            let limit = opt_int(lua, &args, 1, "unpack_limit")?;
            let offset = opt_int(lua, &args, 2, "unpack_limit")?;
            unpack(lua, &args, "unpack_limit", limit, offset, false)
        })?,
    )?;
    Ok(t)
}

/// `luaL_optinteger`: argument `i` (0-based), 0 when absent.
fn opt_int(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<i64> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(0),
        Some(v) => match super::lua::number(v) {
            Some(n) => Ok(n as i64),
            None => Err(raise_where(
                lua,
                &format!(
                    "bad argument #{} to '{name}' (number expected, got {})",
                    i + 1,
                    v.type_name()
                ),
            )),
        },
    }
}

fn encode(v: &Value, level: usize, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(*i, out),
        Value::Number(n) => encode_number(*n, out),
        Value::Table(t) if level < MAX_NESTING => encode_table(t, level, out),
        _ => out.push(0xc0),
    }
}

/// A Lua number: whole and within int64 as an integer, else float32 when exact, else float64.
fn encode_number(n: f64, out: &mut Vec<u8>) {
    // C's `(int64_t)x == x` (saturating here, where C is undefined out of range).
    if n.is_finite() && (n as i64) as f64 == n {
        return encode_int(n as i64, out);
    }
    let f = n as f32;
    if f64::from(f) == n {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A table whose keys are exactly 1..n is an array (`table_is_an_array`).
fn is_array(t: &Table) -> bool {
    let (mut count, mut max) = (0f64, 0f64);
    for pair in t.clone().pairs::<Value, Value>() {
        let Ok((k, _)) = pair else {
            return false;
        };
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return false,
        };
        if n <= 0.0 || n.fract() != 0.0 || n > f64::from(i32::MAX) {
            return false;
        }
        max = f64::max(max, n);
        count += 1.0;
    }
    max == count
}

fn encode_table(t: &Table, level: usize, out: &mut Vec<u8>) {
    if is_array(t) {
        let len = t.raw_len();
        header(len, 0x90, 0xdc, 0xdd, out);
        for i in 1..=len {
            let v = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
            encode(&v, level + 1, out);
        }
    } else {
        let pairs: Vec<(Value, Value)> = t
            .clone()
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .collect();
        header(pairs.len(), 0x80, 0xde, 0xdf, out);
        for (k, v) in &pairs {
            encode(k, level + 1, out);
            encode(v, level + 1, out);
        }
    }
}

/// An array's or map's header: the fix form below 16, else 16 or 32 bits of length.
fn header(len: usize, fix: u8, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if len < 16 {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    let len = b.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// Why decoding stopped.
enum Bad {
    /// `Missing bytes in input.`
    Eof,
    /// `Bad data format in input.`
    Format,
    Lua(mlua::Error),
}

impl From<mlua::Error> for Bad {
    fn from(e: mlua::Error) -> Bad {
        Bad::Lua(e)
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self.pos.checked_add(n).ok_or(Bad::Eof)?;
        let bytes = self.data.get(self.pos..end).ok_or(Bad::Eof)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len(&mut self, width: usize) -> Result<usize, Bad> {
        Ok(match width {
            1 => usize::from(self.byte()?),
            2 => usize::from(u16::from_be_bytes(self.be()?)),
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }
}

fn decode(lua: &Lua, c: &mut Cursor<'_>) -> Result<Value, Bad> {
    let b = c.byte()?;
    let num = |n: f64| Ok(Value::Number(n));
    match b {
        0x00..=0x7f => num(f64::from(b)),
        0xe0..=0xff => num(f64::from(b as i8)),
        0xa0..=0xbf => string(lua, c, usize::from(b & 0x1f)),
        0x90..=0x9f => array(lua, c, usize::from(b & 0x0f)),
        0x80..=0x8f => map(lua, c, usize::from(b & 0x0f)),
        0xc0 => Ok(Value::Nil),
        0xc2 => Ok(Value::Boolean(false)),
        0xc3 => Ok(Value::Boolean(true)),
        0xcc => num(f64::from(c.byte()?)),
        0xcd => num(f64::from(u16::from_be_bytes(c.be()?))),
        0xce => num(f64::from(u32::from_be_bytes(c.be()?))),
        0xcf => num(u64::from_be_bytes(c.be()?) as f64),
        0xd0 => num(f64::from(c.byte()? as i8)),
        0xd1 => num(f64::from(i16::from_be_bytes(c.be()?))),
        0xd2 => num(f64::from(i32::from_be_bytes(c.be()?))),
        0xd3 => num(i64::from_be_bytes(c.be()?) as f64),
        0xca => num(f64::from(f32::from_be_bytes(c.be()?))),
        0xcb => num(f64::from_be_bytes(c.be()?)),
        0xd9 => {
            let n = c.len(1)?;
            string(lua, c, n)
        }
        0xda => {
            let n = c.len(2)?;
            string(lua, c, n)
        }
        0xdb => {
            let n = c.len(4)?;
            string(lua, c, n)
        }
        0xdc => {
            let n = c.len(2)?;
            array(lua, c, n)
        }
        0xdd => {
            let n = c.len(4)?;
            array(lua, c, n)
        }
        0xde => {
            let n = c.len(2)?;
            map(lua, c, n)
        }
        0xdf => {
            let n = c.len(4)?;
            map(lua, c, n)
        }
        _ => Err(Bad::Format),
    }
}

fn string(lua: &Lua, c: &mut Cursor<'_>, n: usize) -> Result<Value, Bad> {
    Ok(Value::String(lua.create_string(c.take(n)?)?))
}

fn array(lua: &Lua, c: &mut Cursor<'_>, n: usize) -> Result<Value, Bad> {
    let t = lua.create_table()?;
    for i in 1..=n {
        let v = decode(lua, c)?;
        t.raw_set(i, v)?;
    }
    Ok(Value::Table(t))
}

fn map(lua: &Lua, c: &mut Cursor<'_>, n: usize) -> Result<Value, Bad> {
    let t = lua.create_table()?;
    for _ in 0..n {
        let k = decode(lua, c)?;
        let v = decode(lua, c)?;
        // Lua refuses a nil (or NaN) key: so does Redis's decoder, with Lua's error.
        t.raw_set(k, v)?;
    }
    Ok(Value::Table(t))
}

/// `mp_unpack_full`: every object of the input (`decode_all`), or `limit` of them from
/// `offset` followed by the offset of what is left (-1 when nothing is).
fn unpack(
    lua: &Lua,
    args: &[Value],
    name: &str,
    limit: i64,
    offset: i64,
    decode_all: bool,
) -> mlua::Result<MultiValue> {
    let data = match args.first() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(Value::Integer(i)) => i.to_string().into_bytes(),
        Some(Value::Number(n)) => super::json::format_g(*n, 14).into_bytes(),
        other => {
            let got = match other {
                None => "no value",
                Some(v) => v.type_name(),
            };
            return Err(raise_where(
                lua,
                &format!("bad argument #1 to '{name}' (string expected, got {got})"),
            ));
        }
    };
    if offset < 0 || limit < 0 {
        return Err(raise_where(
            lua,
            &format!(
                "Invalid request to unpack with offset of {offset} and limit of {}.",
                data.len()
            ),
        ));
    }
    let offset = offset as usize;
    if offset > data.len() {
        return Err(raise_where(
            lua,
            &format!(
                "Start offset {offset} greater than input length {}.",
                data.len()
            ),
        ));
    }
    let limit = if decode_all {
        usize::MAX
    } else {
        limit as usize
    };
    let mut c = Cursor {
        data: &data,
        pos: offset,
    };
    let mut out = Vec::new();
    while c.pos < data.len() && out.len() < limit {
        match decode(lua, &mut c) {
            Ok(v) => out.push(v),
            Err(Bad::Eof) => return Err(raise_where(lua, "Missing bytes in input.")),
            Err(Bad::Format) => return Err(raise_where(lua, "Bad data format in input.")),
            Err(Bad::Lua(e)) => return Err(e),
        }
    }
    if !decode_all {
        let next = if c.pos >= data.len() {
            -1
        } else {
            c.pos as i64
        };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_iter(out))
}
