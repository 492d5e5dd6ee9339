//! The compiled routing table and its lookup: host (exact, then one-label wildcard, then
//! any host), then path (exact, then the longest prefix, then regexes in order, then the
//! host's catch-all), then the default backend. Lookups never allocate.
//!
//! Path regexes are compiled with bounded sizes ([`compile_path_regex`]) once per
//! distinct pattern, and carried from one table to the next like the backends, so a
//! rebuild compiles only patterns it has not seen.
//!
//! A table also holds the Gateway API sockets, one per Gateway port, each looked up on
//! its own ([`gateways`]): [`RoutingTable::lookup`] never answers with their rules.

use std::collections::HashMap;
use std::sync::Arc;

use regex_automata::meta::Regex;

use super::gateway::GatewayTable;
use super::model::*;
use crate::policy::Policy;

mod backend;
mod gateways;
mod regex;

use gateways::GatewayHosts;

pub use backend::{Backend, Endpoint};
pub use regex::{compile_path_regex, path_regex_memory, shared_path_regex};

/// Longest host name a lookup considers (DNS caps names at 253).
const MAX_HOST_LEN: usize = 255;

// === impl RoutingTable ===

/// An immutable routing table. Rebuilt whole and swapped atomically by its owner.
#[derive(Debug, Default)]
pub struct RoutingTable {
    exact: HashMap<Box<str>, HostRoutes>,
    wildcard: HashMap<Box<str>, HostRoutes>,
    any: Option<HostRoutes>,
    default_backend: Option<Arc<Route>>,
    authenticate_host: Option<HostPort>,
    /// Every route in model order, for dumps and metrics.
    routes: Vec<Arc<Route>>,
    /// Live backends by spec, so a rebuild keeps balancing and ejection state.
    backends: HashMap<BackendSpec, Arc<Backend>>,
    /// Compiled path regexes by pattern, so a rebuild reuses them.
    regexes: HashMap<Box<str>, Arc<Regex>>,
    /// Path regexes this build compiled, and those it took from the previous table.
    regex_stats: RegexStats,
    /// Gateway API sockets by local port.
    pub(super) gateways: HashMap<u16, GatewayTable>,
    /// Exact hosts and wildcard suffixes of Gateway API rules, for [`Self::knows_host`].
    gateway_hosts: GatewayHosts,
}

/// How a build came by its path regexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegexStats {
    /// Compiled by this build.
    pub compiled: usize,
    /// Taken from the previous table.
    pub reused: usize,
    /// Compiled before, by someone who still holds them (the index's size check).
    pub shared: usize,
}

/// A route as served: its spec plus the shared, stateful backend.
#[derive(Debug)]
pub struct Route {
    pub id: Arc<str>,
    pub host: HostMatch,
    pub port: Option<u16>,
    pub path: PathMatch,
    pub backend: Arc<Backend>,
    pub policy: Arc<Policy>,
    pub options: RouteOptions,
    /// Gateway API rules: weighted backends, filters, redirects (boxed: the Ingress
    /// side never has one).
    pub gateway: Option<Box<super::gateway::GatewayRoute>>,
}

/// A lookup result: the route and how much of the path its rule matched.
#[derive(Debug, Clone, Copy)]
pub struct Match<'t> {
    pub route: &'t Arc<Route>,
    /// Length of the matched prefix (the whole path for exact and regex matches).
    pub matched_len: usize,
}

/// Something the builder could not use as written, attributed to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub route_id: String,
    pub message: String,
}

#[derive(Debug, Default)]
struct HostRoutes {
    exact: Vec<(Box<str>, Arc<Route>)>,
    /// Longest first; equal lengths keep model order.
    prefixes: Vec<Prefix>,
    regexes: Vec<(Arc<Regex>, Arc<Route>)>,
    catch_all: Vec<Arc<Route>>,
}

#[derive(Debug)]
struct Prefix {
    /// Normalized: segment prefixes lose their trailing `/` (so `/` becomes ``).
    prefix: Box<str>,
    segment: bool,
    route: Arc<Route>,
}

/// Builds a table from the model. Routes that cannot be served (a regex that does not
/// compile, a rule shadowed by an identical earlier one) are left out and reported; the
/// rest of the table is unaffected. `previous` lends its backends so balancing and
/// ejection state survive the swap.
pub fn build(model: &Model, previous: Option<&RoutingTable>) -> (RoutingTable, Vec<Diagnostic>) {
    let mut table = RoutingTable {
        authenticate_host: model.authenticate_host.clone(),
        ..RoutingTable::default()
    };
    let mut diagnostics = Vec::new();
    let mut seen: HashMap<(&HostMatch, Option<u16>, &PathMatch), &str> = HashMap::new();

    for spec in &model.routes {
        if let Some(first) = seen.get(&(&spec.host, spec.port, &spec.path)) {
            diagnostics.push(Diagnostic {
                route_id: spec.id.clone(),
                message: format!("shadowed by `{first}`, which has the same host and path"),
            });
            continue;
        }
        let regex = match &spec.path {
            PathMatch::Regex(r) => match table.regex(r, previous) {
                Ok(re) => Some(re),
                Err(e) => {
                    diagnostics.push(Diagnostic {
                        route_id: spec.id.clone(),
                        message: format!("invalid path regex: {e}"),
                    });
                    continue;
                }
            },
            _ => None,
        };
        seen.insert((&spec.host, spec.port, &spec.path), &spec.id);
        let route = table.route(spec, previous);
        let host = match &spec.host {
            HostMatch::Any => table.any.get_or_insert_with(HostRoutes::default),
            HostMatch::Exact(h) => table.exact.entry(h.as_str().into()).or_default(),
            HostMatch::Wildcard(h) => table.wildcard.entry(h.as_str().into()).or_default(),
        };
        host.insert(route.clone(), regex);
        table.routes.push(route);
    }
    if let Some(spec) = &model.default_backend {
        table.default_backend = Some(table.route(spec, previous));
    }
    for spec in &model.gateways {
        table.add_gateway(spec, previous, &mut diagnostics);
    }
    // An exact entry, even an empty one, keeps a host from wildcard and catch-all routes.
    for host in &model.exclusive_hosts {
        table.exact.entry(host.as_str().into()).or_default();
    }
    for host in table
        .exact
        .values_mut()
        .chain(table.wildcard.values_mut())
        .chain(table.any.iter_mut())
    {
        // Stable: among equal lengths, model order stands.
        host.prefixes
            .sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
    }
    (table, diagnostics)
}

impl RoutingTable {
    /// Finds the route for a request. `host` may carry any case and a trailing dot;
    /// `port` is the port the request was addressed to; `path` excludes the query.
    /// Nothing answers on the authenticate host: its origin holds the sign-in cookie.
    pub fn lookup(&self, host: &str, port: u16, path: &str) -> Option<Match<'_>> {
        let mut buf = [0u8; MAX_HOST_LEN];
        let normalized = normalize_host(host, &mut buf);
        if let (Some(a), Some(h)) = (&self.authenticate_host, normalized)
            && a.host == h
        {
            return None;
        }
        let hosts = match normalized {
            Some(host) => self
                .exact
                .get(host)
                .or_else(|| {
                    let (_, parent) = host.split_once('.')?;
                    self.wildcard.get(parent)
                })
                .or(self.any.as_ref()),
            None => self.any.as_ref(),
        };
        if let Some(m) = hosts.and_then(|h| h.lookup(port, path)) {
            return Some(m);
        }
        self.default_backend.as_ref().map(|route| Match {
            route,
            matched_len: 0,
        })
    }

    /// Whether `host` (as sent by the client) is the authenticate service's host.
    pub fn is_authenticate_host(&self, host: &str, port: u16) -> bool {
        let mut buf = [0u8; MAX_HOST_LEN];
        match (&self.authenticate_host, normalize_host(host, &mut buf)) {
            (Some(a), Some(h)) => a.host == h && a.port.is_none_or(|p| p == port),
            _ => false,
        }
    }

    /// Whether any route could answer for `host` (used to validate sign-in return URLs).
    pub fn knows_host(&self, host: &str) -> bool {
        let mut buf = [0u8; MAX_HOST_LEN];
        let Some(host) = normalize_host(host, &mut buf) else {
            return false;
        };
        let ingress = match self.exact.get(host) {
            Some(routes) => !routes.is_empty(),
            None => host
                .split_once('.')
                .is_some_and(|(_, parent)| self.wildcard.contains_key(parent)),
        };
        ingress || self.gateway_hosts.knows(host)
    }

    /// Every route in model order (the default backend last, if any).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter().chain(self.default_backend.iter())
    }

    pub fn len(&self) -> usize {
        self.routes.len() + usize::from(self.default_backend.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How this build came by its path regexes.
    pub fn regex_stats(&self) -> RegexStats {
        self.regex_stats
    }

    /// The compiled `pattern`: this build's, the previous table's, or a new one.
    fn regex(
        &mut self,
        pattern: &str,
        previous: Option<&RoutingTable>,
    ) -> Result<Arc<Regex>, String> {
        if let Some(re) = self.regexes.get(pattern) {
            return Ok(re.clone());
        }
        let re = match previous.and_then(|p| p.regexes.get(pattern)) {
            Some(re) => {
                self.regex_stats.reused += 1;
                re.clone()
            }
            None => {
                let (re, fresh) = shared_path_regex(pattern)?;
                if fresh {
                    self.regex_stats.compiled += 1;
                } else {
                    self.regex_stats.shared += 1;
                }
                re
            }
        };
        self.regexes.insert(pattern.into(), re.clone());
        Ok(re)
    }

    fn route(&mut self, spec: &RouteSpec, previous: Option<&RoutingTable>) -> Arc<Route> {
        let backend = self.backend(&spec.backend, previous);
        Arc::new(Route {
            id: spec.id.as_str().into(),
            host: spec.host.clone(),
            port: spec.port,
            path: spec.path.clone(),
            backend,
            policy: spec.policy.clone(),
            options: spec.options.clone(),
            gateway: None,
        })
    }

    /// A live backend for `spec`: this build's, the previous table's, or a new one.
    fn backend(&mut self, spec: &BackendSpec, previous: Option<&RoutingTable>) -> Arc<Backend> {
        let backend = self
            .backends
            .get(spec)
            .or_else(|| previous.and_then(|p| p.backends.get(spec)))
            .cloned()
            .unwrap_or_else(|| Arc::new(Backend::new(spec)));
        self.backends.insert(spec.clone(), backend.clone());
        backend
    }
}

/// Lower-cases `host` into `buf` when needed and drops one trailing dot. `None` for
/// names no route can have.
fn normalize_host<'b>(host: &'b str, buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

// === impl HostRoutes ===

impl HostRoutes {
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.prefixes.is_empty()
            && self.regexes.is_empty()
            && self.catch_all.is_empty()
    }

    fn insert(&mut self, route: Arc<Route>, regex: Option<Arc<Regex>>) {
        match &route.path {
            PathMatch::Any => self.catch_all.push(route),
            PathMatch::Exact(p) => self.exact.push((p.as_str().into(), route)),
            PathMatch::StrPrefix(p) => self.prefixes.push(Prefix {
                prefix: p.as_str().into(),
                segment: false,
                route,
            }),
            PathMatch::SegmentPrefix(p) => self.prefixes.push(Prefix {
                prefix: p.trim_end_matches('/').into(),
                segment: true,
                route,
            }),
            PathMatch::Regex(_) => {
                if let Some(re) = regex {
                    self.regexes.push((re, route));
                }
            }
        }
    }

    fn lookup(&self, port: u16, path: &str) -> Option<Match<'_>> {
        let on_port = |r: &Arc<Route>| r.port.is_none_or(|p| p == port);
        let whole = |route| Match {
            route,
            matched_len: path.len(),
        };
        if let Some((_, r)) = self.exact.iter().find(|(p, r)| **p == *path && on_port(r)) {
            return Some(whole(r));
        }
        if let Some(p) = self
            .prefixes
            .iter()
            .find(|p| p.matches(path) && on_port(&p.route))
        {
            return Some(Match {
                route: &p.route,
                matched_len: p.prefix.len(),
            });
        }
        if let Some((_, r)) = self
            .regexes
            .iter()
            .find(|(re, r)| on_port(r) && re.is_match(path))
        {
            return Some(whole(r));
        }
        self.catch_all
            .iter()
            .find(|r| on_port(r))
            .map(|route| Match {
                route,
                matched_len: 0,
            })
    }
}

impl Prefix {
    fn matches(&self, path: &str) -> bool {
        if !path.starts_with(&*self.prefix) {
            return false;
        }
        // Element-wise: the prefix must end at a `/` boundary of the path.
        !self.segment
            || path.len() == self.prefix.len()
            || path.as_bytes()[self.prefix.len()] == b'/'
    }
}

impl Match<'_> {
    /// The path to send upstream after `prefix_rewrite` (or a Gateway API URLRewrite),
    /// or `None` when it is unchanged.
    pub fn rewritten_path(&self, path: &str) -> Option<String> {
        if let Some(rewrite) = (self.route.gateway.as_ref())
            .and_then(|g| g.filters())
            .and_then(|f| f.path_rewrite.as_ref())
        {
            return Some(super::gateway::rewrite_path(
                rewrite,
                path,
                self.matched_len,
            ));
        }
        let rewrite = self.route.options.prefix_rewrite.as_deref()?;
        Some(super::gateway::replace_prefix(
            rewrite,
            path,
            self.matched_len,
        ))
    }
}

#[cfg(test)]
mod tests;
