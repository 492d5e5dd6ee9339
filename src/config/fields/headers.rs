//! Header readers: names (lower-cased as `http` keeps them), values, name lists and
//! name-to-value maps, through the shared parsers in `routes::options`.

use http::{HeaderName, HeaderValue};

use super::super::error::Problems;
use super::super::yaml::{Node, Value};
use super::{split_list, string};

/// A header name, lower-cased as `http` keeps it.
pub(crate) fn header_name(node: &Node, path: &str, p: &mut Problems) -> Option<HeaderName> {
    let text = string(node, path, p)?;
    crate::routes::options::header_name(&text)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}

pub(crate) fn header_value(node: &Node, path: &str, p: &mut Problems) -> Option<HeaderValue> {
    let text = string(node, path, p)?;
    crate::routes::options::header_value(&text)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}

/// A mapping of header names to values, in file order.
pub(crate) fn header_map(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let Value::Map(entries) = &node.value else {
        p.push(
            &node.origin,
            path,
            format!(
                "expected a mapping of header names to values, found {}",
                node.kind()
            ),
        );
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (k, v) in entries {
        let name = header_name(k, path, p);
        let label = format!("{path}.{}", k.scalar_text().unwrap_or_default());
        let value = header_value(v, &label, p);
        match (name, value) {
            (Some(n), Some(v)) => out.push((n, v)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A header name list (`remove_request_headers`).
pub(crate) fn header_names(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<HeaderName>> {
    let names = match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| header_name(item, &format!("{path}[{i}]"), p))
            .collect::<Vec<_>>(),
        Value::Str(s) => split_list(s)
            .into_iter()
            .map(|s| {
                let n = Node {
                    value: Value::Str(s),
                    origin: node.origin.clone(),
                };
                header_name(&n, path, p)
            })
            .collect(),
        _ => {
            p.push(
                &node.origin,
                path,
                format!("expected a list of header names, found {}", node.kind()),
            );
            return None;
        }
    };
    names.into_iter().collect()
}
