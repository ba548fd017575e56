//! One row in the form both sides of an export agree on: each value as the canonical
//! text of its kind (integers in decimal, times as RFC 3339 UTC milliseconds, booleans
//! `t`/`f`, arrays and JSON re-serialised by serde_json, NULL as none), its SHA-256, and
//! its CSV line for `COPY (FORMAT csv)`.

use std::fmt::Write as _;

use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};

use super::tables::{Kind, Table};

/// A SQLite value in the canonical text of its kind (None for NULL).
pub(super) fn sqlite_cell(v: ValueRef<'_>, kind: Kind) -> Result<Option<String>, String> {
    let text = |v: ValueRef<'_>| -> Result<String, String> {
        match v {
            ValueRef::Text(t) => String::from_utf8(t.to_vec()).map_err(|_| "not UTF-8".into()),
            ValueRef::Integer(i) => Ok(i.to_string()),
            ValueRef::Real(f) => Ok(f.to_string()),
            ValueRef::Blob(_) => Err("a blob where text was expected".into()),
            ValueRef::Null => Ok(String::new()),
        }
    };
    if v == ValueRef::Null {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Int => match v {
            ValueRef::Integer(i) => i.to_string(),
            other => return Err(format!("{other:?} is not an integer")),
        },
        Kind::Text => text(v)?,
        Kind::Bool => match v {
            ValueRef::Integer(0) => "f".into(),
            ValueRef::Integer(1) => "t".into(),
            other => return Err(format!("{other:?} is not 0 or 1")),
        },
        Kind::Time => {
            let t = text(v)?;
            match crate::clock::parse(&t) {
                Some(p) => crate::clock::format(p),
                None => return Err(format!("`{t}` is not an RFC 3339 time")),
            }
        }
        Kind::TextArray | Kind::Json => canonical_json(&text(v)?, kind)?,
    }))
}

/// JSON re-serialised (keys sorted, no spaces), so both sides' texts compare.
pub(super) fn canonical_json(t: &str, kind: Kind) -> Result<String, String> {
    if kind == Kind::TextArray {
        let v: Vec<String> =
            serde_json::from_str(t).map_err(|e| format!("not a JSON array of text: {e}"))?;
        return serde_json::to_string(&v).map_err(|e| e.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(t).map_err(|e| format!("not JSON: {e}"))?;
    serde_json::to_string(&v).map_err(|e| e.to_string())
}

pub(super) fn key_text(t: &Table, key_at: &[usize], cells: &[Option<String>]) -> String {
    let mut s = String::new();
    for (n, &i) in key_at.iter().enumerate() {
        if n > 0 {
            s.push_str(", ");
        }
        let _ = write!(
            s,
            "{}={}",
            t.columns[i].name,
            cells[i].as_deref().unwrap_or("NULL")
        );
    }
    s
}

pub(super) fn row_hash(cells: &[Option<String>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in cells {
        match c {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// One row as a CSV line for `COPY (FORMAT csv)`: NULL unquoted and empty, every value
/// quoted; arrays as PostgreSQL array literals.
pub(super) fn csv_row(buf: &mut Vec<u8>, t: &Table, cells: &[Option<String>]) {
    for (i, (c, cell)) in t.columns.iter().zip(cells).enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let Some(v) = cell else { continue };
        let literal;
        let v = if c.kind == Kind::TextArray {
            let items: Vec<String> = serde_json::from_str(v).unwrap_or_default();
            literal = array_literal(&items);
            literal.as_str()
        } else {
            v.as_str()
        };
        buf.push(b'"');
        for b in v.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    }
    buf.push(b'\n');
}

/// `{"a","b \"c\""}`: every element quoted, `"` and `\` escaped.
fn array_literal(items: &[String]) -> String {
    let mut s = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for ch in item.chars() {
            if ch == '"' || ch == '\\' {
                s.push('\\');
            }
            s.push(ch);
        }
        s.push('"');
    }
    s.push('}');
    s
}
