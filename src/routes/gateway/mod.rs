//! Gateway API routing, pure: what `kube` makes of Gateways and HTTPRoutes, compiled
//! into one table per listening socket and looked up with Gateway API's rules.
//!
//! - A **port** ([`GatewayPortSpec`]) is one Gateway's listeners on one port, served
//!   from a socket of its own (`local_port`): two Gateways never share a socket, so a
//!   route attached to one is never reachable through the other.
//! - A request picks the most specific **listener** whose hostname matches its host
//!   (exact, then the longest wildcard, then a listener without hostname) and only
//!   that listener's rules are candidates (listener isolation).
//! - Among the candidates, host specificity comes first (exact hostname, then longer
//!   wildcards, then rules without hostnames); a request that no rule of one host group
//!   matches falls through to the next, as the spec orders matching rules across
//!   hostnames — except onto another namespace's rules for a host its owner claimed
//!   ([`HostStandings`]). Within a group: Exact path, then
//!   RegularExpression (longer patterns first; the spec leaves regexes to
//!   implementations), then PathPrefix by length, then a method match, more header
//!   matches, more query-parameter matches, then the route's rank (oldest, then
//!   namespace/name) and the rule and match order.
//! - Gateway wildcards (`*.example.com`) cover any number of labels, unlike Ingress'.

mod filters;
pub(crate) mod table;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};

use super::model::{BackendSpec, RouteOptions};
use crate::policy::Policy;

pub use filters::{RedirectTarget, redirect_location, replace_prefix, rewrite_path};
pub use table::{CompiledAction, GatewayRequest, GatewayRoute, GatewayTable, PickedBackend};

/// One Gateway's listeners on one port, and the socket that serves them.
#[derive(Debug, Clone)]
pub struct GatewayPortSpec {
    /// The local port its connections arrive on; requests are looked up by it.
    pub local_port: u16,
    /// `namespace/name:port`, for logs and `/debug/routes`.
    pub id: String,
    /// The Gateway's port, as clients address it (redirects default to it).
    pub port: u16,
    /// HTTPS (TLS terminated by Portcullis) rather than HTTP.
    pub tls: bool,
    pub listeners: Vec<ListenerSpec>,
    /// Who may use which names (shared by every port of a translation).
    pub standings: Arc<HostStandings>,
}

/// One listener: a hostname (or none) and the rules attached to it.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub name: String,
    /// `None`: every host.
    pub hostname: Option<GatewayHost>,
    pub rules: Vec<RuleSpec>,
    /// The Gateway's namespace.
    pub gateway_namespace: String,
    /// The Gateway's namespace owns the listener's hostname: the routes it admits may
    /// answer, through wildcard and host-less rules, names under it that namespace owns
    /// (or no one does). A listener without hostname claims nothing.
    pub shares_owned_names: bool,
}

/// Names with a standing of their own (owned by namespaces, or reserved), from the one
/// ownership decision (docs/security.md, "Host ownership"): a listener's wildcard and
/// host-less rules answer such a name only for a namespace that could name it. A host
/// is looked up exactly, then as the wildcard one label above it, as ownership is
/// decided; a name in neither is limited by nothing but the listener. One map for
/// every Gateway socket of a table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostStandings {
    exact: HashMap<Box<str>, NameStanding>,
    parents: HashMap<Box<str>, NameStanding>,
}

/// Who may use one name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NameStanding {
    /// The sign-in host or the config file's: no route answers it.
    pub reserved: bool,
    /// The namespaces that own it.
    pub owners: Box<[Box<str>]>,
    /// Namespaces an owner let add paths.
    pub delegates: Box<[Box<str>]>,
}

impl HostStandings {
    /// `name`: an exact host, or (`parent`) `corp.example` for the names one label
    /// below it.
    pub fn insert(&mut self, name: &str, parent: bool, standing: NameStanding) {
        let map = if parent {
            &mut self.parents
        } else {
            &mut self.exact
        };
        map.insert(name.into(), standing);
    }

    /// The standing of a lower-case host, if it has one.
    pub fn of(&self, host: &str) -> Option<&NameStanding> {
        self.exact.get(host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            self.parents.get(parent)
        })
    }

    /// How many names have a standing.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.exact.len() + self.parents.len()
    }
}

/// Whose wildcard and host-less rules may answer a name on one listener.
#[derive(Debug, Clone, Copy)]
pub enum Answerers<'a> {
    /// Every namespace the listener admitted.
    Any,
    /// No one (a reserved name).
    Nobody,
    /// Only namespaces the standing lists ([`NameStanding::lists`]).
    Listed(&'a NameStanding),
}

impl NameStanding {
    /// On a listener of a Gateway in `gateway_namespace` (that `shares` its owned
    /// names): the part of the decision that does not depend on the rule, made once
    /// per request.
    pub fn answerers(&self, gateway_namespace: &str, shares: bool) -> Answerers<'_> {
        if self.reserved {
            Answerers::Nobody
        } else if shares && (self.owners.is_empty() || listed(&self.owners, gateway_namespace)) {
            Answerers::Any
        } else {
            Answerers::Listed(self)
        }
    }

    /// `namespace` owns the name or was delegated it.
    pub fn lists(&self, namespace: &str) -> bool {
        listed(&self.owners, namespace) || listed(&self.delegates, namespace)
    }
}

fn listed(list: &[Box<str>], namespace: &str) -> bool {
    list.iter().any(|n| **n == *namespace)
}

/// A hostname as Gateway API writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GatewayHost {
    /// One lower-case host name.
    Exact(String),
    /// `*.example.com` stored as `example.com`: any name ending in `.example.com`.
    Wildcard(String),
}

impl GatewayHost {
    /// `host` (an exact, lower-case name) is one this hostname covers.
    pub fn covers(&self, host: &str) -> bool {
        match self {
            GatewayHost::Exact(h) => h == host,
            GatewayHost::Wildcard(s) => suffix_covers(s, host),
        }
    }
}

/// `host` is one or more labels followed by `.suffix` (a Gateway wildcard's reach,
/// unlike Ingress' one label).
pub fn suffix_covers(suffix: &str, host: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// One rule's match of one HTTPRoute, and what happens to the requests it takes.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    /// `namespace/route/rules[i]/matches[j]`.
    pub id: String,
    /// The route's namespace, for [`HostStandings`].
    pub namespace: String,
    /// Hostnames the rule answers (the route's, intersected with the listener's);
    /// empty: whatever the listener takes.
    pub hostnames: Vec<GatewayHost>,
    pub matches: RequestMatch,
    /// Ties between equally specific matches: the route's rank (oldest first, then
    /// namespace/name), the rule's index, the match's index.
    pub order: (u32, u32, u32),
    pub action: Action,
    pub policy: Arc<Policy>,
    pub options: RouteOptions,
}

/// What a request must look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMatch {
    pub path: PathMatch,
    pub method: Option<Method>,
    /// Header names are lower-case; the first entry for a name counts.
    pub headers: Vec<(HeaderName, ValueMatch)>,
    /// Query parameter names are case-sensitive; the first entry for a name counts.
    pub query: Vec<(String, ValueMatch)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Element-wise on `/`, a trailing `/` in the rule ignored (Ingress' `Prefix`).
    Prefix(String),
    /// An anchored regular expression over the whole path.
    Regex(String),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::Prefix("/".to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    Exact(String),
    /// Anchored: the whole value must match.
    Regex(String),
}

/// What a rule does with a request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Sends it to one of the backends, by weight, through the filters.
    Forward {
        backends: Vec<WeightedBackend>,
        filters: Filters,
    },
    /// Answers with a redirect.
    Redirect {
        redirect: RedirectSpec,
        /// Response headers the rule's ResponseHeaderModifier sets on the redirect.
        response_headers: HeaderModifier,
    },
    /// Answers `500`: the rule could not be made usable (an unsupported filter), and
    /// the spec says such requests get a server error, not another rule.
    Fail { reason: String },
}

/// One backendRef: its endpoints (`None`: the reference is invalid, and its share of
/// requests gets `500`), its weight and its own request header filter.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    pub backend: Option<BackendSpec>,
    pub weight: u32,
    pub request_headers: HeaderModifier,
}

/// The filters of a forwarding rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub request_headers: HeaderModifier,
    pub response_headers: HeaderModifier,
    pub path_rewrite: Option<PathRewrite>,
    /// The upstream's `Host` (URLRewrite `hostname`); also in
    /// [`RouteOptions::upstream_host`].
    pub host_rewrite: Option<String>,
}

/// RequestHeaderModifier and ResponseHeaderModifier: set (replace), add (append),
/// remove — applied in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderModifier {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderModifier {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the modifier to `headers`.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// URLRewrite and RequestRedirect paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    Full(String),
    /// Replaces the part of the path the rule's PathPrefix matched.
    Prefix(String),
}

/// RequestRedirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectSpec {
    /// `http` or `https`; `None`: the listener's.
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathRewrite>,
    pub port: Option<u16>,
    pub status: u16,
}
