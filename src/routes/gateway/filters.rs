//! RequestRedirect's `Location` and the path rewrites, as the spec derives them.

use super::{PathRewrite, RedirectSpec};

/// What a redirect is computed from: the request as the listener saw it.
#[derive(Debug, Clone, Copy)]
pub struct RedirectTarget<'a> {
    /// The listener terminates TLS (its scheme is `https`).
    pub tls: bool,
    /// The canonical request host (no port; IPv6 without brackets).
    pub host: &'a str,
    /// The Gateway listener's port (not the socket's).
    pub listener_port: u16,
    /// The canonical request path, and how much of it the rule's prefix matched.
    pub path: &'a str,
    pub matched_len: usize,
    pub query: Option<&'a str>,
}

/// The `Location` of a RequestRedirect: the scheme, host and path given or the
/// request's; the port given, else the scheme's well-known port when the scheme is
/// given, else the listener's; no port when it is the scheme's default.
pub fn redirect_location(spec: &RedirectSpec, t: &RedirectTarget<'_>) -> String {
    let scheme = spec
        .scheme
        .as_deref()
        .unwrap_or(if t.tls { "https" } else { "http" });
    let well_known = if scheme == "https" { 443 } else { 80 };
    let port = match (spec.port, &spec.scheme) {
        (Some(p), _) => p,
        (None, Some(_)) => well_known,
        (None, None) => t.listener_port,
    };
    let host = spec.hostname.as_deref().unwrap_or(t.host);
    let mut out = String::with_capacity(scheme.len() + host.len() + t.path.len() + 16);
    out.push_str(scheme);
    out.push_str("://");
    if host.contains(':') {
        out.push('[');
        out.push_str(host);
        out.push(']');
    } else {
        out.push_str(host);
    }
    if port != well_known {
        out.push(':');
        out.push_str(&port.to_string());
    }
    match &spec.path {
        Some(rewrite) => out.push_str(&rewrite_path(rewrite, t.path, t.matched_len)),
        None => out.push_str(t.path),
    }
    if let Some(q) = t.query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The path after a rewrite: the full replacement, or the matched prefix replaced.
pub fn rewrite_path(rewrite: &PathRewrite, path: &str, matched_len: usize) -> String {
    match rewrite {
        PathRewrite::Full(p) => p.clone(),
        PathRewrite::Prefix(p) => replace_prefix(p, path, matched_len),
    }
}

/// `replacement` in place of the first `matched_len` bytes of `path`, with one `/`
/// where the two meet and a leading `/` always.
pub fn replace_prefix(replacement: &str, path: &str, matched_len: usize) -> String {
    let rest = path.get(matched_len..).unwrap_or("");
    let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
    out.push_str(replacement);
    if out.ends_with('/') && rest.starts_with('/') {
        out.pop();
    }
    out.push_str(rest);
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}
