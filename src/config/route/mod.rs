//! One entry of `routes:`, read with Pomerium's meaning and turned into a [`RouteSpec`].
//!
//! `endpoints` reads what a route serves and where it sends it (`from`, the path match,
//! `to`, load balancing); `options` reads the per-route options (headers, timeouts,
//! TLS to the upstream, identity headers); this file reads the route as a whole and its
//! policy.

use std::sync::Arc;

use crate::policy::{Policy, PolicyError, Shorthands};
use crate::routes::{BackendSpec, EndpointSpec, HostMatch, RouteSpec};

use super::error::Problems;
use super::fields::{self, Fields};
use super::yaml::{Node, Origin};

mod endpoints;
mod options;

use self::endpoints::{read_balance, read_from, read_path_match, read_to};
use self::options::read_options;

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
