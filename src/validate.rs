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

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
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
