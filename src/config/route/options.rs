//! The per-route options of a route entry, each absent one keeping its default, and
//! `host_rewrite`.

use crate::routes::reserved::reserved_request_header_with;
use crate::routes::{HostMatch, PathMatch, RouteOptions, UpstreamHost};

use super::super::error::Problems;
use super::super::fields::{self, Fields};
use super::super::yaml::Node;
use super::Inherited;

pub(super) fn read_options(
    f: &Fields<'_>,
    path: &Option<PathMatch>,
    inherited: &Inherited,
    p: &mut Problems,
) -> Option<RouteOptions> {
    let before = p.list.len();
    let mut o = RouteOptions::default();

    // Timeouts, as Pomerium: websockets turn both off unless set; an `idle_timeout`
    // without a `timeout` turns the route timeout off. Zero means no limit.
    let timeout = f.read("timeout", p, fields::duration);
    let idle = f.read("idle_timeout", p, fields::duration);
    let websockets = f
        .read("allow_websockets", p, fields::boolean)
        .unwrap_or(false);
    o.set_timeouts(timeout, idle, websockets);

    o.set_request_headers = f
        .read("set_request_headers", p, fields::header_map)
        .unwrap_or_default();
    o.remove_request_headers = f
        .read("remove_request_headers", p, fields::header_names)
        .unwrap_or_default();
    o.set_response_headers = f
        .read("set_response_headers", p, fields::header_map)
        .unwrap_or_default();
    let named = [
        (
            "set_request_headers",
            o.set_request_headers
                .iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
        ),
        (
            "remove_request_headers",
            o.remove_request_headers.iter().collect(),
        ),
    ];
    for (key, names) in named {
        for name in names {
            if let Some(why) = reserved_request_header_with(name.as_str(), &inherited.claim_headers)
            {
                let n = f.get(key).expect("present when it names headers");
                p.push(&n.origin, &f.key_path(key), format!("`{name}` is {why}"));
            }
        }
    }
    for (name, _) in &o.set_response_headers {
        if let Some(why) = crate::routes::reserved::reserved_response_header(name.as_str()) {
            let n = f
                .get("set_response_headers")
                .expect("present when it names headers");
            p.push(
                &n.origin,
                &f.key_path("set_response_headers"),
                format!("`{name}` is {why}"),
            );
        }
    }
    o.pass_identity_headers = f
        .read("pass_identity_headers", p, fields::boolean)
        .unwrap_or(inherited.pass_identity_headers);
    o.bearer_format = f.read("bearer_token_format", p, fields::bearer_format);
    o.lenient_paths = f
        .read("path_normalization", p, fields::path_normalization)
        .unwrap_or(false);

    // The Host header the upstream sees: Pomerium's file-mode default is the `to` host.
    let preserve = f
        .read("preserve_host_header", p, fields::boolean)
        .unwrap_or(false);
    let rewrite = f.read("host_rewrite", p, read_host_rewrite);
    o.upstream_host = match (preserve, rewrite) {
        (true, Some(_)) => {
            let n = f.get("host_rewrite").expect("present");
            p.push(
                &n.origin,
                &f.key_path("host_rewrite"),
                "cannot be used with `preserve_host_header: true`; pick one",
            );
            UpstreamHost::Original
        }
        (true, None) => UpstreamHost::Original,
        (false, Some(h)) => UpstreamHost::Rewrite(h),
        (false, None) => UpstreamHost::Endpoint,
    };

    o.prefix_rewrite = f.read("prefix_rewrite", p, |n, path, p| {
        let s = fields::string(n, path, p)?;
        if !s.starts_with('/') {
            p.push(&n.origin, path, format!("`{s}` must start with `/`"));
            return None;
        }
        Some(s)
    });
    if o.prefix_rewrite.is_some() && matches!(path, Some(PathMatch::Regex(_))) {
        let n = f.get("prefix_rewrite").expect("present");
        p.push(
            &n.origin,
            &f.key_path("prefix_rewrite"),
            "cannot be used with `regex` (there is no prefix to replace)",
        );
    }

    o.tls.skip_verify = f
        .read("tls_skip_verify", p, fields::boolean)
        .unwrap_or(false);
    o.tls.server_name = f.read("tls_server_name", p, |n, path, p| {
        let s = fields::nonempty(n, path, p)?;
        match HostMatch::parse(&s) {
            Ok(HostMatch::Exact(name)) => Some(name),
            _ => {
                p.push(&n.origin, path, format!("`{s}` is not a valid server name"));
                None
            }
        }
    });

    (p.list.len() == before).then_some(o)
}

/// `host_rewrite`: a host (optionally with a port) for the upstream's `Host` header.
fn read_host_rewrite(node: &Node, path: &str, p: &mut Problems) -> Option<String> {
    let s = fields::nonempty(node, path, p)?;
    crate::routes::options::host_rewrite(&s)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}
