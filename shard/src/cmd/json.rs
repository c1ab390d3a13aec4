//! The `cjson` library for scripts: `cjson.encode`, `cjson.decode` and `cjson.null`, encoding
//! as Redis's bundled lua-cjson 2.1 does with its defaults (numbers as `%.14g`, `/` escaped,
//! tables with only positive integer keys as arrays, excessively sparse arrays refused, empty
//! tables as `{}`, nesting up to 1000). Decoding parses standard JSON (no `nan`/`inf`/hex
//! numbers) and its error messages are not lua-cjson's.

use std::fmt::Write as _;

use mlua::{LightUserData, Lua, Table, Value, Variadic};

use super::lua::raise_where;

const MAX_DEPTH: usize = 1000;

/// `cjson.null`: a light userdata holding NULL, as lua-cjson's.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(|lua, args: Variadic<Value>| {
            let [v] = args.as_slice() else {
                return Err(raise_where(
                    lua,
                    "bad argument #1 to 'encode' (expected 1 argument)",
                ));
            };
            let mut out = String::new();
            encode(v, 0, &mut out).map_err(|e| raise_where(lua, &e))?;
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, args: Variadic<Value>| {
            let [v] = args.as_slice() else {
                return Err(raise_where(
                    lua,
                    "bad argument #1 to 'decode' (expected 1 argument)",
                ));
            };
            let text = match v {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(i) => i.to_string().into_bytes(),
                Value::Number(n) => format_g(*n, 14).into_bytes(),
                other => {
                    let msg = format!(
                        "bad argument #1 to 'decode' (string expected, got {})",
                        other.type_name()
                    );
                    return Err(raise_where(lua, &msg));
                }
            };
            let parsed: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
                raise_where(
                    lua,
                    &format!(
                        "Expected value but found invalid token at character {}",
                        e.column()
                    ),
                )
            })?;
            to_lua(lua, &parsed)
        })?,
    )?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

fn to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => null(),
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

fn type_error(v: &Value, reason: &str) -> String {
    format!("Cannot serialise {}: {reason}", v.type_name())
}

fn encode(v: &Value, depth: usize, out: &mut String) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::LightUserData(p) if p.0.is_null() => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => number(v, *i as f64, out)?,
        Value::Number(n) => number(v, *n, out)?,
        Value::String(s) => string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            table(v, t, depth, out)?;
        }
        other => return Err(type_error(other, "type not supported")),
    }
    Ok(())
}

fn number(v: &Value, n: f64, out: &mut String) -> Result<(), String> {
    if !n.is_finite() {
        return Err(type_error(v, "must not be NaN or Inf"));
    }
    out.push_str(&format_g(n, 14));
    Ok(())
}

fn string(s: &[u8], out: &mut String) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    bytes.push(b'"');
    for &c in s {
        match c {
            b'"' => bytes.extend_from_slice(b"\\\""),
            b'\\' => bytes.extend_from_slice(b"\\\\"),
            b'/' => bytes.extend_from_slice(b"\\/"),
            8 => bytes.extend_from_slice(b"\\b"),
            9 => bytes.extend_from_slice(b"\\t"),
            10 => bytes.extend_from_slice(b"\\n"),
            12 => bytes.extend_from_slice(b"\\f"),
            13 => bytes.extend_from_slice(b"\\r"),
            0..=31 | 127 => bytes.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => bytes.push(c),
        }
    }
    bytes.push(b'"');
    // Lua strings are bytes: invalid UTF-8 passes through (the reply is bytes again).
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// lua-cjson's `lua_array_length`: the array's length, or `None` for an object.
fn array_length(v: &Value, t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0f64, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let k = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if k.floor() != k || k < 1.0 {
            return Ok(None);
        }
        max = max.max(k);
        items += 1;
    }
    if max > (items * 2) as f64 && max > 10.0 {
        return Err(type_error(v, "excessively sparse array"));
    }
    Ok((max > 0.0).then_some(max as usize))
}

fn table(v: &Value, t: &Table, depth: usize, out: &mut String) -> Result<(), String> {
    if let Some(len) = array_length(v, t)? {
        out.push('[');
        for i in 1..=len {
            if i > 1 {
                out.push(',');
            }
            let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            encode(&item, depth, out)?;
        }
        out.push(']');
        return Ok(());
    }
    out.push('{');
    for (n, pair) in t.pairs::<Value, Value>().enumerate() {
        let (k, item) = pair.map_err(|e| e.to_string())?;
        if n > 0 {
            out.push(',');
        }
        match &k {
            Value::Integer(i) => {
                let _ = write!(out, "\"{}\":", format_g(*i as f64, 14));
            }
            Value::Number(x) => {
                if !x.is_finite() {
                    return Err(type_error(&k, "must not be NaN or Inf"));
                }
                let _ = write!(out, "\"{}\":", format_g(*x, 14));
            }
            Value::String(s) => {
                string(&s.as_bytes(), out);
                out.push(':');
            }
            other => return Err(type_error(other, "table key must be a number or string")),
        }
        encode(&item, depth, out)?;
    }
    out.push('}');
    Ok(())
}

/// C's `%.<precision>g`.
pub(super) fn format_g(d: f64, precision: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:.*e}", precision - 1, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{d:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::format_g;

    #[test]
    fn numbers_format_as_c_g14() {
        assert_eq!(format_g(1.0, 14), "1");
        assert_eq!(format_g(0.1, 14), "0.1");
        assert_eq!(format_g(1.5e300, 14), "1.5e+300");
        assert_eq!(format_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(format_g(0.00001, 14), "1e-05");
        assert_eq!(format_g(-2.5, 14), "-2.5");
        assert_eq!(format_g(1.0 / 3.0, 14), "0.33333333333333");
    }
}
