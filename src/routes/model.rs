//! The plain model both `config` (file mode) and `kube` (controller mode) produce.
//! No I/O and no Kubernetes types: just what a route is.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::reach::Reach;
use crate::policy::Policy;

/// Everything the routing table is built from.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Routes in source order; order only breaks ties between equally specific matches.
    pub routes: Vec<RouteSpec>,
    /// Served when no host rule matches, or a host's rules match no path.
    pub default_backend: Option<RouteSpec>,
    /// The `authenticate_service_url` host, if sign-in is configured. No route, wildcard,
    /// catch-all or default backend ever answers on it (whatever the port: cookies do
    /// not tell ports apart).
    pub authenticate_host: Option<HostPort>,
    /// Lower-case exact host names that only their own exact routes may answer: no
    /// wildcard and no catch-all rule (the default backend still answers their
    /// unmatched paths). Hosts an admin assigned to a namespace that has no route on
    /// them yet.
    pub exclusive_hosts: Vec<String>,
    /// Gateway API: one entry per Gateway port, each served from its own socket.
    pub gateways: Vec<super::gateway::GatewayPortSpec>,
}

/// A host name and an optional port a request must have arrived on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Lower-case host name, without port.
    pub host: String,
    pub port: Option<u16>,
}

/// One route: which requests it takes, where they go and who may pass.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Stable, human-readable name: `routes[3]` in file mode, `ns/ingress/rules[0]/paths[1]` in
    /// controller mode. Shown in logs, metrics, `/debug/routes` and the 403 page.
    pub id: String,
    pub host: HostMatch,
    /// When set, the request must have arrived on this port.
    pub port: Option<u16>,
    pub path: PathMatch,
    pub backend: BackendSpec,
    /// The effective policy; build a `Policy::deny_all(reason)` when it could not be made.
    pub policy: Arc<Policy>,
    pub options: RouteOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Any host (an Ingress rule without `host`).
    Any,
    /// One lower-case host name.
    Exact(String),
    /// `*.foo.com` stored as `foo.com`: exactly one more label in front.
    Wildcard(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// The whole path, case-sensitive (Pomerium `path`, Ingress `Exact`).
    Exact(String),
    /// A plain string prefix: `/foo` matches `/foobar` (Pomerium `prefix`).
    StrPrefix(String),
    /// Element-wise on `/`: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`; a trailing
    /// `/` in the rule is ignored (Ingress `Prefix`).
    SegmentPrefix(String),
    /// An anchored regular expression over the path (Pomerium `regex`, `path-regex`).
    Regex(String),
}

/// Where a route sends requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendSpec {
    pub endpoints: Vec<EndpointSpec>,
    pub balance: Balance,
}

/// One upstream address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointSpec {
    pub scheme: UpstreamScheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Who chose it: which addresses it may connect to.
    pub reach: Reach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpstreamScheme {
    #[default]
    Http,
    Https,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastRequest,
}

/// Which `Host` header the upstream sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum UpstreamHost {
    /// The client's original `Host` (Ingress default, `preserve_host_header`).
    #[default]
    Original,
    /// The endpoint's own host (Pomerium's file-mode default).
    Endpoint,
    /// A fixed value (`host_rewrite`).
    Rewrite(String),
}

/// TLS settings towards the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UpstreamTls {
    pub skip_verify: bool,
    pub server_name: Option<String>,
    /// Extra trusted roots (PEM), e.g. from `tls-custom-ca-secret`.
    pub ca_pem: Option<Arc<[u8]>>,
}

/// Per-route behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOptions {
    /// Time allowed for the upstream to answer with response headers.
    pub timeout: Duration,
    /// Time a request or response body, or an upgraded connection, may sit idle.
    pub idle_timeout: Duration,
    pub set_request_headers: Vec<(HeaderName, HeaderValue)>,
    pub remove_request_headers: Vec<HeaderName>,
    pub set_response_headers: Vec<(HeaderName, HeaderValue)>,
    pub upstream_host: UpstreamHost,
    /// Replaces the matched prefix (or the whole path for exact matches) before forwarding.
    pub prefix_rewrite: Option<String>,
    pub allow_websockets: bool,
    pub pass_identity_headers: bool,
    pub tls: UpstreamTls,
    /// `bearer_token_format` for this route; `None` takes the global setting.
    pub bearer_format: Option<BearerFormat>,
    /// `path_normalization: lenient`: encoded slashes, repeated slashes and `;` are kept
    /// as written (and routed) rather than refused (see [`crate::routes::path`]).
    pub lenient_paths: bool,
    /// Where the route's policy comes from, for the decision log (e.g.
    /// `IdentityPolicy apps/admins, annotations`).
    pub policy_source: std::sync::Arc<str>,
}

/// `path_normalization` (config key and annotation): `strict` (the default) or
/// `lenient`; `Ok(true)` for lenient.
pub fn parse_path_normalization(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "strict" => Ok(false),
        "lenient" => Ok(true),
        _ => Err(format!(
            "`{text}` is not a path normalization; use strict or lenient"
        )),
    }
}

/// How `Authorization: Bearer` tokens are read (Pomerium's `bearer_token_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BearerFormat {
    /// Ours: ID tokens for our client, and access tokens when
    /// `idp_access_token_allowed_audiences` is set. (Pomerium's `default` passes bearer
    /// tokens through uninterpreted instead.)
    #[default]
    Default,
    /// Only the identity provider's access tokens.
    IdpAccessToken,
    /// Only the identity provider's ID tokens.
    IdpIdentityToken,
}

impl BearerFormat {
    pub const NAMES: &str = "default, idp_access_token, idp_identity_token";

    pub fn parse(text: &str) -> Result<BearerFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "default" | "" => Ok(BearerFormat::Default),
            "idp_access_token" => Ok(BearerFormat::IdpAccessToken),
            "idp_identity_token" => Ok(BearerFormat::IdpIdentityToken),
            _ => Err(format!(
                "`{text}` is not a bearer token format; use one of {}",
                BearerFormat::NAMES
            )),
        }
    }
}

/// Pomerium's defaults.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            timeout: DEFAULT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            set_request_headers: Vec::new(),
            remove_request_headers: Vec::new(),
            set_response_headers: Vec::new(),
            upstream_host: UpstreamHost::Original,
            prefix_rewrite: None,
            allow_websockets: false,
            pass_identity_headers: false,
            tls: UpstreamTls::default(),
            bearer_format: None,
            lenient_paths: false,
            policy_source: std::sync::Arc::from(""),
        }
    }
}

impl RouteOptions {
    /// Pomerium's timeout rules: an explicit value wins; WebSocket routes default to no
    /// limit on either; setting only `idle_timeout` turns the route `timeout` off.
    pub fn set_timeouts(
        &mut self,
        timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
        allow_websockets: bool,
    ) {
        self.allow_websockets = allow_websockets;
        self.timeout = match (timeout, idle_timeout, allow_websockets) {
            (Some(t), _, _) => t,
            (None, Some(_), _) | (None, None, true) => Duration::ZERO,
            (None, None, false) => DEFAULT_TIMEOUT,
        };
        self.idle_timeout = match (idle_timeout, allow_websockets) {
            (Some(i), _) => i,
            (None, true) => Duration::ZERO,
            (None, false) => DEFAULT_IDLE_TIMEOUT,
        };
    }
}

impl HostMatch {
    /// Parses a host pattern as written in a `from` URL or an Ingress rule.
    pub fn parse(pattern: &str) -> Result<HostMatch, String> {
        let p = pattern.trim().to_ascii_lowercase();
        if p.is_empty() || p == "*" {
            return Ok(HostMatch::Any);
        }
        let (wild, name) = match p.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, p.clone()),
        };
        if name.is_empty()
            || name.contains('*')
            || name.starts_with('.')
            || name.ends_with('.')
            || name.contains("..")
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(format!(
                "`{pattern}` is not a valid host name or `*.` wildcard"
            ));
        }
        Ok(if wild {
            HostMatch::Wildcard(name)
        } else {
            HostMatch::Exact(name)
        })
    }
}

impl PathMatch {
    /// Checks what `build` would otherwise reject: paths start with `/`, regexes compile.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            PathMatch::Any => Ok(()),
            PathMatch::Exact(p) | PathMatch::StrPrefix(p) | PathMatch::SegmentPrefix(p) => {
                if p.starts_with('/') {
                    Ok(())
                } else {
                    Err(format!("path `{p}` must start with `/`"))
                }
            }
            PathMatch::Regex(r) => super::table::compile_path_regex(r)
                .map(|_| ())
                .map_err(|e| format!("invalid path regex: {e}")),
        }
    }
}
