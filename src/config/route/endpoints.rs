//! What a route serves and where it sends it: `from` (host and port), the path match
//! (`path`, `prefix`, `regex`), `to` (one endpoint or a load-balanced list) and
//! `load_balancing_policy`.

use crate::routes::{Balance, EndpointSpec, HostMatch, PathMatch, Reach, UpstreamScheme};

use super::super::error::Problems;
use super::super::fields::{self, Fields};
use super::super::yaml::{Node, Value};

/// `from`: an https URL whose host is a name or a `*.` wildcard; a port only when written.
pub(super) fn read_from(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<(String, HostMatch, Option<u16>)> {
    let text = fields::string(node, path, p)?;
    let url = match fields::split_url(&text) {
        Ok(u) => u,
        Err(why) => {
            p.push(&node.origin, path, why);
            return None;
        }
    };
    if url.scheme != "https" {
        p.push(
            &node.origin,
            path,
            format!("`{text}`: `from` must be an https:// URL (plain http is redirected to https)"),
        );
        return None;
    }
    if !url.has_no_path() {
        p.push(
            &node.origin,
            path,
            format!(
                "`{text}`: `from` must not have a path; match paths with `prefix`, `path` or `regex`"
            ),
        );
        return None;
    }
    match HostMatch::parse(&url.host) {
        Ok(host) => Some((text.trim().to_string(), host, url.port)),
        Err(why) => {
            p.push(&node.origin, path, why);
            None
        }
    }
}

/// `to`: one URL or a list (load-balanced); http, https or h2c; no path.
pub(super) fn read_to(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<(Vec<String>, Vec<EndpointSpec>)> {
    let items: Vec<(Node, String)> = match &node.value {
        Value::Seq(items) if items.is_empty() => {
            p.push(&node.origin, path, "needs at least one upstream URL");
            return None;
        }
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), format!("{path}[{i}]")))
            .collect(),
        _ => vec![(node.clone(), path.to_string())],
    };
    let mut texts = Vec::new();
    let mut endpoints = Vec::new();
    let mut ok = true;
    for (n, path) in &items {
        match read_endpoint(n, path, p) {
            Some((t, e)) => {
                texts.push(t);
                endpoints.push(e);
            }
            None => ok = false,
        }
    }
    ok.then_some((texts, endpoints))
}

fn read_endpoint(node: &Node, path: &str, p: &mut Problems) -> Option<(String, EndpointSpec)> {
    let text = fields::string(node, path, p)?;
    let url = match fields::split_url(&text) {
        Ok(u) => u,
        Err(why) => {
            p.push(&node.origin, path, why);
            return None;
        }
    };
    let (scheme, default_port) = match url.scheme.as_str() {
        "http" => (UpstreamScheme::Http, 80),
        "https" => (UpstreamScheme::Https, 443),
        "h2c" => (UpstreamScheme::H2c, 80),
        other => {
            p.push(
                &node.origin,
                path,
                format!(
                    "`{text}`: upstream scheme `{other}` is not supported; use http, https or h2c"
                ),
            );
            return None;
        }
    };
    if !url.has_no_path() {
        p.push(
            &node.origin,
            path,
            format!(
                "`{text}`: a path in `to` is not supported; use `prefix_rewrite` to change the path"
            ),
        );
        return None;
    }
    if url.host.contains('*') {
        p.push(
            &node.origin,
            path,
            format!("`{text}`: an upstream host cannot be a wildcard"),
        );
        return None;
    }
    Some((
        text.trim().to_string(),
        EndpointSpec {
            scheme,
            host: url.host,
            port: url.port.unwrap_or(default_port),
            reach: Reach::Operator,
        },
    ))
}

pub(super) fn read_balance(node: &Node, path: &str, p: &mut Problems) -> Option<Balance> {
    let text = fields::string(node, path, p)?;
    crate::routes::options::balance(&text)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}

/// `path` (exact), `prefix` (plain string prefix), `regex` (anchored): at most one.
pub(super) fn read_path_match(f: &Fields<'_>, p: &mut Problems) -> Option<PathMatch> {
    let given: Vec<&str> = ["path", "prefix", "regex"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    if given.len() > 1 {
        let second = f.get(given[1]).expect("present");
        p.push(
            &second.origin,
            &f.path,
            format!(
                "`{}` and `{}` cannot be used together; pick one",
                given[0], given[1]
            ),
        );
        return None;
    }
    let Some(&key) = given.first() else {
        return Some(PathMatch::Any);
    };
    let node = f.get(key).expect("present");
    let text = fields::string(node, &f.key_path(key), p)?;
    let m = match key {
        "path" => PathMatch::Exact(text),
        "prefix" => PathMatch::StrPrefix(text),
        _ => PathMatch::Regex(text),
    };
    match m.validate() {
        Ok(()) => Some(m),
        Err(why) => {
            p.push(&node.origin, &f.key_path(key), why);
            None
        }
    }
}
