//! One entry of `routes:`, read with Pomerium's meaning and turned into a [`RouteSpec`].

use std::sync::Arc;

use crate::policy::{Policy, PolicyError, Shorthands};
use crate::routes::{
    BackendSpec, Balance, EndpointSpec, HostMatch, PathMatch, Reach, RouteOptions, RouteSpec,
    UpstreamHost, UpstreamScheme,
};

use super::error::Problems;
use super::fields::{self, Fields};
use super::yaml::{Node, Origin, Value};
use crate::routes::reserved::reserved_request_header_with;

/// The keys a route may have (Pomerium's names).
pub(crate) const ROUTE_KEYS: &[&str] = &[
    "from",
    "to",
    "prefix",
    "path",
    "regex",
    "policy",
    "allow_public_unauthenticated_access",
    "allow_any_authenticated_user",
    "allowed_users",
    "allowed_domains",
    "allowed_groups",
    "cors_allow_preflight",
    "pass_identity_headers",
    "set_request_headers",
    "remove_request_headers",
    "set_response_headers",
    "preserve_host_header",
    "host_rewrite",
    "prefix_rewrite",
    "timeout",
    "idle_timeout",
    "allow_websockets",
    "tls_skip_verify",
    "tls_server_name",
    "load_balancing_policy",
    "bearer_token_format",
    "path_normalization",
];

/// Identity criteria: a policy using one of these needs a signed-in user.
const IDENTITY_CRITERIA: &[&str] = &["authenticated_user", "email", "domain", "user", "groups"];

/// A validated route from the file: what was written, and the spec it compiles to.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `routes[N]`, also the [`RouteSpec::id`].
    pub id: String,
    /// Line of the route in the file, when known.
    pub line: Option<u32>,
    /// `from` as written.
    pub from: String,
    /// `to` as written, one entry per endpoint.
    pub to: Vec<String>,
    /// The `policy` document as written (converted to JSON), if any.
    pub policy_document: Option<serde_json::Value>,
    pub shorthands: Shorthands,
    /// What the routing table gets.
    pub spec: RouteSpec,
}

impl RouteConfig {
    /// No `policy` and no allow shorthand: the empty union, which denies every request.
    pub fn denies_everyone(&self) -> bool {
        let s = &self.shorthands;
        self.policy_document.is_none()
            && !s.allow_public_unauthenticated_access
            && !s.allow_any_authenticated_user
            && s.allowed_users.is_empty()
            && s.allowed_domains.is_empty()
            && s.allowed_groups.is_empty()
    }

    /// Whether some request on this route could need a signed-in user (so sign-in must
    /// be configured): an identity shorthand, or an identity criterion in the policy.
    pub fn needs_sign_in(&self) -> bool {
        let s = &self.shorthands;
        s.allow_any_authenticated_user
            || !s.allowed_users.is_empty()
            || !s.allowed_domains.is_empty()
            || !s.allowed_groups.is_empty()
            || self.policy_document.as_ref().is_some_and(mentions_identity)
    }
}

fn mentions_identity(doc: &serde_json::Value) -> bool {
    match doc {
        serde_json::Value::Array(items) => items.iter().any(mentions_identity),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
            IDENTITY_CRITERIA.contains(&k.as_str())
                || k.starts_with("claim/")
                || mentions_identity(v)
        }),
        _ => false,
    }
}

/// Settings from the top level that routes inherit or are checked against.
pub(crate) struct Inherited {
    pub pass_identity_headers: bool,
    /// The `authenticate_service_url` host: no route may serve it.
    pub authenticate_host: Option<String>,
    /// `jwt_claims_headers` names: identity headers no route may set or remove.
    pub claim_headers: Vec<String>,
    /// `address`, `http_redirect_address`, `metrics_address`: never an upstream.
    pub own_listeners: Vec<std::net::SocketAddr>,
}

/// The listener of ours `e` names on this host (loopback, `localhost`, or the very
/// address), if any. The proxy refuses these at connect time too, for any local address.
fn own_listener(
    e: &EndpointSpec,
    listeners: &[std::net::SocketAddr],
) -> Option<std::net::SocketAddr> {
    let host = e.host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host.parse() {
        Ok(ip) => crate::routes::reach::canonical(ip),
        Err(_) if host.eq_ignore_ascii_case("localhost") => std::net::Ipv4Addr::LOCALHOST.into(),
        Err(_) => return None,
    };
    listeners.iter().copied().find(|l| {
        let own = crate::routes::reach::canonical(l.ip());
        l.port() == e.port
            && (own == ip
                || ((own.is_unspecified() || own.is_loopback())
                    && (ip.is_loopback() || ip.is_unspecified())))
    })
}

pub(crate) fn read(
    node: &Node,
    index: usize,
    inherited: &Inherited,
    p: &mut Problems,
) -> Option<RouteConfig> {
    let id = format!("routes[{index}]");
    let before = p.list.len();
    let f = Fields::open(node, &id, ROUTE_KEYS, p)?;

    // from: where requests come in.
    let from = match f.get("from") {
        Some(n) => read_from(n, &f.key_path("from"), p).filter(|(_, host, _)| {
            let reserved = matches!((host, &inherited.authenticate_host),
                (HostMatch::Exact(h), Some(a)) if h == a);
            if reserved {
                p.push(
                    &n.origin,
                    &f.key_path("from"),
                    "this is the authenticate_service_url host, which serves sign-in only; no route may serve it",
                );
            }
            !reserved
        }),
        None => {
            p.push(
                &node.origin,
                &id,
                "missing `from` (the https URL this route serves)",
            );
            None
        }
    };

    // to: where they go.
    let (to_text, endpoints) = match f.get("to") {
        Some(n) => read_to(n, &f.key_path("to"), p).unzip(),
        None => {
            p.push(
                &node.origin,
                &id,
                "missing `to` (the upstream URL, or a list of them)",
            );
            (None, None)
        }
    };
    if let (Some(n), Some(endpoints)) = (f.get("to"), &endpoints) {
        for e in endpoints {
            if let Some(listener) = own_listener(e, &inherited.own_listeners) {
                p.push(
                    &n.origin,
                    &f.key_path("to"),
                    format!(
                        "`{}:{}` is Portcullis's own listener {listener}, which is never an upstream",
                        e.host, e.port
                    ),
                );
            }
        }
    }
    let balance = f
        .read("load_balancing_policy", p, read_balance)
        .unwrap_or_default();

    let path = read_path_match(&f, p);

    // Who may pass.
    let shorthands = Shorthands {
        allow_public_unauthenticated_access: f
            .read("allow_public_unauthenticated_access", p, fields::boolean)
            .unwrap_or(false),
        allow_any_authenticated_user: f
            .read("allow_any_authenticated_user", p, fields::boolean)
            .unwrap_or(false),
        cors_allow_preflight: f
            .read("cors_allow_preflight", p, fields::boolean)
            .unwrap_or(false),
        allowed_users: f
            .read("allowed_users", p, fields::one_or_list)
            .unwrap_or_default(),
        allowed_domains: f
            .read("allowed_domains", p, fields::one_or_list)
            .unwrap_or_default(),
        allowed_groups: f
            .read("allowed_groups", p, fields::one_or_list)
            .unwrap_or_default(),
    };
    if shorthands.allow_public_unauthenticated_access
        && (shorthands.allow_any_authenticated_user
            || !shorthands.allowed_users.is_empty()
            || !shorthands.allowed_domains.is_empty()
            || !shorthands.allowed_groups.is_empty())
    {
        // Pomerium refuses this too: the allow lists would mean nothing.
        p.push(
            &f.get("allow_public_unauthenticated_access").map_or(node.origin.clone(), |n| n.origin.clone()),
            &f.key_path("allow_public_unauthenticated_access"),
            "a public route cannot also have allow_any_authenticated_user or allowed_users/domains/groups",
        );
    }
    let (policy_document, policy) = match f.get("policy") {
        Some(n) => read_policy(n, &f.key_path("policy"), p),
        None => (None, None),
    };
    let mut parts = Vec::new();
    parts.extend(policy);
    if shorthands != Shorthands::default() {
        parts.push(Policy::from_shorthands(&shorthands));
    }
    let policy = Policy::union(parts);

    let options = read_options(&f, &path, inherited, p);

    if p.list.len() > before {
        return None;
    }
    let (from_text, host, port) = from?;
    let id_for_source = id.clone();
    Some(RouteConfig {
        id: id.clone(),
        line: match &node.origin {
            Origin::File { line, .. } => Some(*line),
            _ => None,
        },
        from: from_text,
        to: to_text?,
        policy_document,
        shorthands,
        spec: RouteSpec {
            id,
            host,
            port,
            path: path?,
            backend: BackendSpec {
                endpoints: endpoints?,
                balance,
            },
            policy: Arc::new(policy),
            options: {
                let mut o = options?;
                o.policy_source = format!("config file {id_for_source}").into();
                o
            },
        },
    })
}

/// `from`: an https URL whose host is a name or a `*.` wildcard; a port only when written.
fn read_from(
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
fn read_to(node: &Node, path: &str, p: &mut Problems) -> Option<(Vec<String>, Vec<EndpointSpec>)> {
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

fn read_balance(node: &Node, path: &str, p: &mut Problems) -> Option<Balance> {
    let text = fields::string(node, path, p)?;
    crate::routes::options::balance(&text)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}

/// `path` (exact), `prefix` (plain string prefix), `regex` (anchored): at most one.
fn read_path_match(f: &Fields<'_>, p: &mut Problems) -> Option<PathMatch> {
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

fn read_policy(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> (Option<serde_json::Value>, Option<Policy>) {
    let doc = node.to_json();
    match Policy::from_value(&doc) {
        Ok(policy) => (Some(doc), Some(policy)),
        Err(e) => {
            let (origin, full) = locate_policy_error(node, path, &e);
            p.push(&origin, &full, e.message);
            (Some(doc), None)
        }
    }
}

/// Where in the file a policy error is: the policy compiler gives a location inside the
/// document (`[0].allow.and[1]`); we follow it through the YAML tree for a line, and
/// append it to the route's key path.
pub(crate) fn locate_policy_error(node: &Node, path: &str, e: &PolicyError) -> (Origin, String) {
    let location = e.location.trim_start_matches('.');
    let full = match location {
        "" => path.to_string(),
        l if l.starts_with('[') => format!("{path}{l}"),
        l => format!("{path}.{l}"),
    };
    (node.locate(location), full)
}

fn read_options(
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
