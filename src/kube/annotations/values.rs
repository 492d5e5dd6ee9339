//! The value readers: one annotation value to a typed value, through the shared parsers
//! ([`crate::routes::options`]) with this module's error type (a message).

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::routes::options;
use crate::routes::{Balance, UpstreamScheme};

/// The shared parsers ([`crate::routes::options`]) with this module's error type.
pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    options::boolean(v).map_err(|e| e.0)
}

pub(super) fn duration(v: &str) -> Result<Duration, String> {
    options::duration(v).map_err(|e| e.0)
}

/// A YAML or JSON value (`["a", "b"]`, `{X-A: "1"}`, a block list or mapping).
pub(super) fn yaml(v: &str) -> Result<serde_json::Value, String> {
    serde_saphyr::from_str::<serde_json::Value>(v).map_err(|e| {
        let options = serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        };
        format!(
            "not valid YAML: {}",
            e.without_snippet().render_with_options(options)
        )
    })
}

pub(super) fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a value is written as a YAML/JSON list rather than comma-separated text.
pub(super) fn looks_like_list(v: &str) -> bool {
    let v = v.trim_start();
    v.starts_with('[') || v.starts_with("- ") || v.starts_with("-\n")
}

/// A YAML/JSON list of strings, or comma-separated items (spaces inside items kept:
/// group names have them).
pub(super) fn list(v: &str) -> Result<Vec<String>, String> {
    if looks_like_list(v) {
        let serde_json::Value::Array(items) = yaml(v)? else {
            return Err("expected a list of strings".into());
        };
        items
            .iter()
            .map(|item| match scalar_text(item) {
                Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(format!(
                    "list items must be non-empty strings, found `{item}`"
                )),
            })
            .collect()
    } else {
        Ok(v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// A Kubernetes object name (DNS subdomain).
pub(super) fn object_name(v: &str) -> Result<&str, String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(v)
    } else {
        Err(format!("`{v}` is not a valid object name"))
    }
}

pub(super) fn object_names(v: &str) -> Result<Vec<String>, String> {
    let names = list(v)?;
    if names.is_empty() {
        return Err("expected one or more IdentityPolicy names".into());
    }
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            object_name(&n)?;
            out.push(n);
        }
    }
    Ok(out)
}

/// Namespace names (DNS labels), comma-separated or as a list, without duplicates.
pub(super) fn namespace_names(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for n in list(v)? {
        let ok = n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!("`{n}` is not a namespace name"));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub(super) fn header_name(name: &str) -> Result<HeaderName, String> {
    options::header_name(name).map_err(|e| e.0)
}

/// A YAML/JSON mapping of header names to values, in name order. A name given twice
/// (header names ignore case) is refused rather than one silently winning.
pub(super) fn header_map(v: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    let serde_json::Value::Object(map) = yaml(v)? else {
        return Err("expected a mapping of header names to values, such as {X-Team: ops}".into());
    };
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(map.len());
    for (k, val) in &map {
        let text = scalar_text(val)
            .ok_or_else(|| format!("the value of `{k}` must be a string, found {val}"))?;
        let value = options::header_value(&text).map_err(|e| e.0)?;
        let name = header_name(k)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("header `{name}` is given twice"));
        }
        out.push((name, value));
    }
    Ok(out)
}

pub(super) fn header_names(v: &str) -> Result<Vec<HeaderName>, String> {
    list(v)?.iter().map(|n| header_name(n)).collect()
}

pub(super) fn host_rewrite(v: &str) -> Result<String, String> {
    options::host_rewrite(v).map_err(|e| e.0)
}

pub(super) fn backend_protocol(v: &str) -> Result<UpstreamScheme, String> {
    options::backend_protocol(v).map_err(|e| e.0)
}

pub(super) fn load_balancing(v: &str) -> Result<Balance, String> {
    options::balance(v).map_err(|e| e.0)
}
