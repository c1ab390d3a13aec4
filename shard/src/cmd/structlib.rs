//! The `struct` library for scripts: `struct.pack`, `struct.unpack` and `struct.size`, as
//! Redis's bundled lua_struct.c (Roberto Ierusalimschy's struct 0.2 with Redis's changes):
//! `>` `<` endianness (little by default), `!n` alignment, `x` padding, `b B h H l L T i I`
//! integers (`l`, `L`, `T` 8 bytes, `i`/`I` 4 unless sized `in`, up to 32), `f` `d` floats,
//! `s` zero-terminated and `cn` fixed strings (`c0`: the length is the previous value when
//! unpacking, the string's own when packing). Integers are 64 bits wide inside, as C's `long`.

use mlua::{Lua, MultiValue, Table, Value, Variadic};

use super::lua::{number, raise_where};

/// Largest integer size (`MAXINTSIZE`).
const MAX_INT_SIZE: usize = 32;
/// The default of `!` (`MAXALIGN` on x86-64).
const MAX_ALIGN: usize = 8;

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| pack(lua, &args))?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: Variadic<Value>| unpack(lua, &args))?,
    )?;
    t.raw_set(
        "size",
        lua.create_function(|lua, args: Variadic<Value>| size(lua, &args))?,
    )?;
    Ok(t)
}

struct Header {
    little: bool,
    align: usize,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            little: true,
            align: 1,
        }
    }
}

/// A format string being read, with the name of the function reading it (for errors).
struct Format<'a> {
    fmt: &'a [u8],
    pos: usize,
    name: &'static str,
}

impl Format<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.fmt.get(self.pos)?;
        self.pos += 1;
        Some(c)
    }

    /// `getnum`: digits after an option, or `default`.
    fn num(&mut self, lua: &Lua, default: usize) -> mlua::Result<usize> {
        if !self.fmt.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(d) = self.fmt.get(self.pos).filter(|c| c.is_ascii_digit()) {
            let d = usize::from(d - b'0');
            if a > (i32::MAX as usize) / 10 || a * 10 > i32::MAX as usize - d {
                return Err(raise_where(lua, "integral size overflow"));
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a)
    }

    /// `optsize`: the size of option `opt`.
    fn size(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.num(lua, 1)?,
            b'i' | b'I' => {
                let sz = self.num(lua, 4)?;
                if sz > MAX_INT_SIZE {
                    return Err(raise_where(
                        lua,
                        &format!("integral size {sz} is larger than limit of {MAX_INT_SIZE}"),
                    ));
                }
                sz
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is an error.
    fn control(&mut self, lua: &Lua, opt: u8, h: &mut Header) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.num(lua, MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(raise_where(
                        lua,
                        &format!("alignment {a} is not a power of 2"),
                    ));
                }
                h.align = a;
            }
            _ => {
                return Err(arg_error(
                    lua,
                    1,
                    self.name,
                    &format!("invalid format option '{}'", char::from(opt)),
                ));
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an element of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

/// `luaL_argerror`.
fn arg_error(lua: &Lua, arg: usize, name: &str, msg: &str) -> mlua::Error {
    raise_where(lua, &format!("bad argument #{arg} to '{name}' ({msg})"))
}

fn type_error(lua: &Lua, args: &[Value], arg: usize, name: &str, want: &str) -> mlua::Error {
    let got = match args.get(arg - 1) {
        // `pack` pushes a nil after its arguments before reading them.
        None if name == "pack" && arg > 1 && arg == args.len() + 1 => "nil",
        None => "no value",
        Some(v) => v.type_name(),
    };
    arg_error(lua, arg, name, &format!("{want} expected, got {got}"))
}

/// `luaL_checklstring`: a string, or a number as Lua prints it.
fn check_string(lua: &Lua, args: &[Value], arg: usize, name: &str) -> mlua::Result<Vec<u8>> {
    match args.get(arg - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(i)) => Ok(i.to_string().into_bytes()),
        Some(Value::Number(n)) => Ok(super::json::format_g(*n, 14).into_bytes()),
        _ => Err(type_error(lua, args, arg, name, "string")),
    }
}

/// `luaL_checknumber`.
fn check_number(lua: &Lua, args: &[Value], arg: usize, name: &str) -> mlua::Result<f64> {
    args.get(arg - 1)
        .and_then(number)
        .ok_or_else(|| type_error(lua, args, arg, name, "number"))
}

fn pack(lua: &Lua, args: &[Value]) -> mlua::Result<mlua::String> {
    let fmt = check_string(lua, args, 1, "pack")?;
    let mut f = Format {
        fmt: &fmt,
        pos: 0,
        name: "pack",
    };
    let mut h = Header::default();
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(lua, opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, args, arg, "pack")?;
                arg += 1;
                // C's `(unsigned long)(long)n` for negatives, `(unsigned long)n` otherwise
                // (saturating where C is undefined).
                let v = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let bytes: Vec<u8> = (0..size)
                    .map(|i| if i < 8 { (v >> (8 * i)) as u8 } else { 0 })
                    .collect();
                if h.little {
                    out.extend(bytes);
                } else {
                    out.extend(bytes.into_iter().rev());
                }
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(lua, args, arg, "pack")? as f32;
                arg += 1;
                out.extend(if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                let v = check_number(lua, args, arg, "pack")?;
                arg += 1;
                out.extend(if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(lua, args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // Redis reports the argument after the string (its `arg++` came first).
                    return Err(arg_error(lua, arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(lua, opt, &mut h)?,
        }
    }
    lua.create_string(&out)
}

fn unpack(lua: &Lua, args: &[Value]) -> mlua::Result<MultiValue> {
    let fmt = check_string(lua, args, 1, "unpack")?;
    let data = check_string(lua, args, 2, "unpack")?;
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1i64,
        Some(v) => number(v)
            .map(|n| n as i64)
            .ok_or_else(|| type_error(lua, args, 3, "unpack", "number"))?,
    };
    if start == 0 {
        return Err(arg_error(lua, 3, "unpack", "offset must be 1 or greater"));
    }
    // C's `size_t`: a negative offset is huge.
    let mut pos = (start as u64).wrapping_sub(1) as usize;
    let ld = data.len();
    let short = || arg_error(lua, 2, "unpack", "data string too short");
    let mut f = Format {
        fmt: &fmt,
        pos: 0,
        name: "unpack",
    };
    let mut h = Header::default();
    let mut out: Vec<Value> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(lua, opt)?;
        pos = pos.saturating_add(to_align(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                let mut push = |b: u8| l = (l << 8) | u64::from(b);
                if h.little {
                    bytes.iter().rev().for_each(|b| push(*b));
                } else {
                    bytes.iter().for_each(|b| push(*b));
                }
                let v = if opt.is_ascii_lowercase() {
                    let bits = (size * 8).min(64);
                    let shift = 64 - bits;
                    if bits == 0 {
                        0.0
                    } else {
                        ((l << shift) as i64 >> shift) as f64
                    }
                } else {
                    l as f64
                };
                out.push(Value::Number(v));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let Some(prev) = out.last().and_then(number) else {
                        return Err(raise_where(lua, "format 'c0' needs a previous size"));
                    };
                    out.pop();
                    size = if prev < 0.0 {
                        usize::MAX
                    } else {
                        prev as usize
                    };
                    if size > ld || pos > ld - size {
                        return Err(short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(raise_where(lua, "unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + end])?));
                size = end + 1;
            }
            _ => f.control(lua, opt, &mut h)?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_iter(out))
}

fn size(lua: &Lua, args: &[Value]) -> mlua::Result<i64> {
    let fmt = check_string(lua, args, 1, "size")?;
    let mut f = Format {
        fmt: &fmt,
        pos: 0,
        name: "size",
    };
    let mut h = Header::default();
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(lua, opt)?;
        pos += to_align(pos, &h, opt, size);
        if opt == b's' {
            return Err(arg_error(lua, 1, "size", "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(lua, opt, &mut h)?;
        }
        pos += size;
    }
    Ok(pos as i64)
}
