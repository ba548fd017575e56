//! Field validation shared by every input: [`FieldError`] (a field named as the client
//! sent it, and what is wrong with it) and readers of a `serde_json::Value` that collect
//! every error instead of stopping at the first.

use serde::Serialize;
use serde_json::{Map, Value};

/// A field that failed validation, named as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Longest field name an error repeats (a longer one, e.g. an unknown key of a megabyte,
/// is cut to a prefix).
const MAX_FIELD_CHARS: usize = 64;
/// Longest message an error carries.
const MAX_MESSAGE_CHARS: usize = 300;

impl FieldError {
    /// A field error. The field name is what the client sent, so it is repeated only as a
    /// short escaped prefix ([`excerpt`]); the message is cut to 300 characters.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        FieldError {
            field: if field.chars().count() > MAX_FIELD_CHARS || has_control(&field) {
                excerpt(&field, MAX_FIELD_CHARS)
            } else {
                field
            },
            message: if message.chars().count() > MAX_MESSAGE_CHARS {
                excerpt(&message, MAX_MESSAGE_CHARS)
            } else {
                message
            },
        }
    }
}

/// A value from a client as an error may repeat it: at most `max` characters, control
/// characters escaped, and when cut an ellipsis and the full length.
pub fn excerpt(value: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut whole = true;
    for c in value.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if shown + n > max {
            whole = false;
            break;
        }
        out.push_str(&piece);
        shown += n;
    }
    if whole {
        out
    } else {
        format!("{out}… ({} bytes)", value.len())
    }
}

/// A serde data error (JSON body or query string) at `path` as a field error that names
/// the field and what it must be, never repeating the value: serde's own messages quote
/// the value (`invalid type: string "…", expected u32`).
pub fn from_serde(path: &str, message: &str) -> FieldError {
    let path = if path == "." { "" } else { path };
    let field = |name: &str| match (path, name) {
        ("", n) => n.to_string(),
        (p, "") => p.to_string(),
        (p, n) if p.ends_with(n) => p.to_string(),
        (p, n) => format!("{p}.{n}"),
    };
    let quoted = |m: &str, prefix: &str| -> Option<String> {
        let rest = m.strip_prefix(prefix)?.strip_prefix('`')?;
        rest.split_once('`').map(|(k, _)| k.to_string())
    };
    let expected = |m: &str| m.rsplit_once(", expected ").map(|(_, e)| e.to_string());
    if let Some(key) = quoted(message, "unknown field ") {
        let allowed = expected(message).unwrap_or_default();
        let allowed = allowed.trim_start_matches("one of ").replace('`', "");
        return FieldError::new(field(&key), format!("unknown field; allowed: {allowed}"));
    }
    if let Some(key) = quoted(message, "missing field ") {
        return FieldError::new(field(&key), "is required");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let got = rest.split([' ', ',', '`', '"']).next().unwrap_or("value");
        let got = if rest.starts_with("floating point") {
            "number"
        } else {
            got
        };
        let want = expected(message).unwrap_or_else(|| "another type".into());
        return FieldError::new(field(""), format!("must be {} (got {got})", plain(&want)));
    }
    if message.starts_with("unknown variant ") || message.starts_with("invalid value: ") {
        let want = expected(message).unwrap_or_else(|| "another value".into());
        return FieldError::new(field(""), format!("must be {}", plain(&want)));
    }
    if message.starts_with("invalid length ") {
        let want = expected(message).unwrap_or_default();
        return FieldError::new(field(""), format!("has the wrong length (expected {want})"));
    }
    if message.contains("invalid digit") || message.contains("number too large") {
        return FieldError::new(field(""), "must be a whole number in range");
    }
    if message.starts_with("provided string was not `true` or `false`") {
        return FieldError::new(field(""), "must be true or false");
    }
    FieldError::new(field(""), "is not valid here")
}

/// Rust type names in serde's expectations as words a client understands.
fn plain(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        // A unit enum read from a JSON value expects "string or map".
        "a string" | "string" | "string or map" => "a string".into(),
        other => other.replace('`', ""),
    }
}

pub fn object<'a>(
    v: &'a Value,
    prefix: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match v.as_object() {
        Some(o) => Some(o),
        None => {
            errs.push(FieldError::new(
                prefix.trim_end_matches('.'),
                "expected a JSON object",
            ));
            None
        }
    }
}

pub fn unknown_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
    errs: &mut Vec<FieldError>,
) {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            errs.push(FieldError::new(
                format!("{prefix}{key}"),
                format!("unknown field; allowed: {}", allowed.join(", ")),
            ));
        }
    }
}

/// A present, non-null value.
pub fn opt<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

pub fn string<'a>(v: &'a Value, field: &str, errs: &mut Vec<FieldError>) -> Option<&'a str> {
    match v.as_str() {
        Some(s) => Some(s),
        None => {
            errs.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

pub fn short_text(
    v: &Value,
    field: &str,
    max: usize,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    let s = string(v, field, errs)?.trim();
    let n = s.chars().count();
    if n == 0 || n > max {
        errs.push(FieldError::new(
            field,
            format!("must be 1 to {max} characters (got {n})"),
        ));
        return None;
    }
    if has_control(s) {
        errs.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
        return None;
    }
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_never_repeated_whole() {
        let huge = "x".repeat(1_100_000);
        let e = FieldError::new(huge.clone(), "unknown field");
        assert!(
            e.field.len() < 100 && e.field.contains("1100000 bytes"),
            "{}",
            e.field
        );
        let e = FieldError::new("a\nb\u{7}", "m");
        assert_eq!(e.field, "a\\nb\\u{7}");
        assert_eq!(excerpt("short", 10), "short");
    }

    #[test]
    fn serde_messages_name_the_field_and_type_not_the_value() {
        let e = from_serde("role", "invalid type: integer `12345`, expected a string");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("role", "must be a string (got integer)")
        );
        let secret = "hunter2 hunter2";
        let e = from_serde(
            "limit",
            &format!("invalid type: string \"{secret}\", expected u32"),
        );
        assert!(!e.message.contains(secret), "{}", e.message);
        assert_eq!(e.message, "must be a whole number, 0 or more (got string)");
        let e = from_serde(
            ".",
            "unknown field `colour`, expected one of `body`, `title`",
        );
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("colour", "unknown field; allowed: body, title")
        );
        let e = from_serde(
            "role",
            "unknown variant `boss`, expected one of `admin`, `editor`",
        );
        assert_eq!(e.message, "must be one of admin, editor");
        assert!(!e.message.contains("boss"));
        let e = from_serde(".", "missing field `email`");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("email", "is required")
        );
    }
}
