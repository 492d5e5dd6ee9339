//! The compiled Gateway API table of one socket and its lookup (see the module docs
//! for the order). Rules are sorted once, at build; a lookup walks one listener's host
//! groups in order and takes the first rule that matches.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, Method};
use regex_automata::meta::Regex;

use super::{
    Action, Filters, GatewayHost, GatewayPortSpec, HeaderModifier, HostStandings, ListenerSpec,
    NameStanding, PathMatch, RedirectSpec, RuleSpec, ValueMatch,
};
use crate::routes::table::{Backend, Match, Route};

/// Steps through the weight slots so that consecutive requests spread over the
/// backends (a prime: coprime with every total weight it does not divide).
const WEIGHT_STRIDE: u64 = 7919;

/// One socket's listeners, compiled.
#[derive(Debug)]
pub struct GatewayTable {
    pub id: Arc<str>,
    /// The Gateway's port.
    pub port: u16,
    pub tls: bool,
    /// Most specific hostname first; a listener without hostname last.
    listeners: Vec<Listener>,
    standings: Arc<HostStandings>,
}

#[derive(Debug)]
struct Listener {
    hostname: Option<GatewayHost>,
    exact: HashMap<Box<str>, Vec<Arc<Rule>>>,
    /// By suffix, longest first.
    wildcard: Vec<(Box<str>, Vec<Arc<Rule>>)>,
    any: Vec<Arc<Rule>>,
    gateway_namespace: Box<str>,
    /// [`super::ListenerSpec::shares_owned_names`].
    shares: bool,
}

#[derive(Debug)]
struct Rule {
    route: Arc<Route>,
    namespace: Box<str>,
    path: Path,
    method: Option<Method>,
    headers: Vec<(HeaderName, Value)>,
    query: Vec<(Box<str>, Value)>,
}

#[derive(Debug)]
enum Path {
    Exact(Box<str>),
    /// Without its trailing `/` (so `/` is ``).
    Prefix(Box<str>),
    Regex(Arc<Regex>),
}

#[derive(Debug)]
enum Value {
    Exact(Box<str>),
    Regex(Arc<Regex>),
}

/// What a Gateway API route does, beside what every [`Route`] has.
#[derive(Debug)]
pub struct GatewayRoute {
    /// The Gateway listener's port and scheme, for redirects.
    pub listener_port: u16,
    pub tls: bool,
    pub action: CompiledAction,
}

#[derive(Debug)]
pub enum CompiledAction {
    Forward {
        /// Backends with weight above zero; `None` for an invalid reference.
        backends: Vec<(Option<Arc<Backend>>, u64, HeaderModifier)>,
        total_weight: u64,
        next: AtomicU64,
        filters: Filters,
    },
    Redirect {
        redirect: RedirectSpec,
        response_headers: HeaderModifier,
    },
    Fail {
        reason: String,
    },
}

/// The backend a forwarded request goes to.
#[derive(Debug)]
pub enum PickedBackend<'r> {
    Backend {
        backend: &'r Arc<Backend>,
        request_headers: &'r HeaderModifier,
    },
    /// An invalid backendRef's share, or no backend with weight: `500`.
    Invalid,
}

/// A request as the Gateway lookup reads it (canonical host and path).
#[derive(Debug, Clone, Copy)]
pub struct GatewayRequest<'a> {
    pub host: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

// === build ===

/// Compiles one socket's spec. `route` turns a rule into the shared [`Route`] (the
/// caller's backend and regex caches); `regex` compiles a pattern with the table's
/// limits. Rules whose patterns do not compile are left out and reported.
pub(crate) fn compile(
    spec: &GatewayPortSpec,
    route: &mut dyn FnMut(&RuleSpec, GatewayRoute) -> Arc<Route>,
    backend: &mut dyn FnMut(&crate::routes::BackendSpec) -> Arc<Backend>,
    regex: &mut dyn FnMut(&str) -> Result<Arc<Regex>, String>,
    diagnostics: &mut Vec<(String, String)>,
) -> GatewayTable {
    let mut listeners: Vec<Listener> = spec
        .listeners
        .iter()
        .map(|l| compile_listener(spec, l, route, backend, regex, diagnostics))
        .collect();
    // Stable: equal hostnames keep spec order.
    listeners.sort_by_key(|l| specificity(l.hostname.as_ref()));
    GatewayTable {
        id: spec.id.as_str().into(),
        port: spec.port,
        tls: spec.tls,
        listeners,
        standings: spec.standings.clone(),
    }
}

/// Sort key of a hostname: exact first, then wildcards by length, then none.
fn specificity(h: Option<&GatewayHost>) -> (u8, std::cmp::Reverse<usize>) {
    match h {
        Some(GatewayHost::Exact(_)) => (0, std::cmp::Reverse(0)),
        Some(GatewayHost::Wildcard(s)) => (1, std::cmp::Reverse(s.len())),
        None => (2, std::cmp::Reverse(0)),
    }
}

fn compile_listener(
    port: &GatewayPortSpec,
    spec: &ListenerSpec,
    route: &mut dyn FnMut(&RuleSpec, GatewayRoute) -> Arc<Route>,
    backend: &mut dyn FnMut(&crate::routes::BackendSpec) -> Arc<Backend>,
    regex: &mut dyn FnMut(&str) -> Result<Arc<Regex>, String>,
    diagnostics: &mut Vec<(String, String)>,
) -> Listener {
    let mut rules: Vec<(SortKey, &RuleSpec, Arc<Rule>)> = Vec::new();
    for r in &spec.rules {
        match compile_rule(port, r, route, backend, regex) {
            Ok(rule) => rules.push((sort_key(r), r, Arc::new(rule))),
            Err(why) => diagnostics.push((r.id.clone(), why)),
        }
    }
    rules.sort_by_key(|r| r.0);
    let mut listener = Listener {
        hostname: spec.hostname.clone(),
        exact: HashMap::new(),
        wildcard: Vec::new(),
        any: Vec::new(),
        gateway_namespace: spec.gateway_namespace.as_str().into(),
        shares: spec.shares_owned_names,
    };
    for (_, spec, rule) in rules {
        if spec.hostnames.is_empty() {
            listener.any.push(rule.clone());
        }
        for h in &spec.hostnames {
            match h {
                GatewayHost::Exact(h) => listener
                    .exact
                    .entry(h.as_str().into())
                    .or_default()
                    .push(rule.clone()),
                GatewayHost::Wildcard(s) => {
                    match listener.wildcard.iter_mut().find(|(k, _)| **k == **s) {
                        Some((_, list)) => list.push(rule.clone()),
                        None => listener
                            .wildcard
                            .push((s.as_str().into(), vec![rule.clone()])),
                    }
                }
            }
        }
    }
    listener
        .wildcard
        .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    listener
}

/// Precedence within a host group, smallest first.
type SortKey = (
    u8,
    std::cmp::Reverse<usize>,
    u8,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
    (u32, u32, u32),
);

fn sort_key(r: &RuleSpec) -> SortKey {
    let m = &r.matches;
    let (class, len) = match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::Regex(p) => (1, p.len()),
        PathMatch::Prefix(p) => (2, p.trim_end_matches('/').len()),
    };
    (
        class,
        std::cmp::Reverse(len),
        u8::from(m.method.is_none()),
        std::cmp::Reverse(m.headers.len()),
        std::cmp::Reverse(m.query.len()),
        r.order,
    )
}

fn compile_rule(
    port: &GatewayPortSpec,
    spec: &RuleSpec,
    route: &mut dyn FnMut(&RuleSpec, GatewayRoute) -> Arc<Route>,
    backend: &mut dyn FnMut(&crate::routes::BackendSpec) -> Arc<Backend>,
    regex: &mut dyn FnMut(&str) -> Result<Arc<Regex>, String>,
) -> Result<Rule, String> {
    let m = &spec.matches;
    let path = match &m.path {
        PathMatch::Exact(p) => Path::Exact(p.as_str().into()),
        PathMatch::Prefix(p) => Path::Prefix(p.trim_end_matches('/').into()),
        PathMatch::Regex(p) => {
            Path::Regex(regex(p).map_err(|e| format!("invalid path regex: {e}"))?)
        }
    };
    let mut value = |v: &ValueMatch, what: &str| -> Result<Value, String> {
        Ok(match v {
            ValueMatch::Exact(s) => Value::Exact(s.as_str().into()),
            ValueMatch::Regex(r) => {
                Value::Regex(regex(r).map_err(|e| format!("invalid {what} regex: {e}"))?)
            }
        })
    };
    let mut headers: Vec<(HeaderName, Value)> = Vec::new();
    for (name, v) in &m.headers {
        // The first entry for a name counts.
        if !headers.iter().any(|(n, _)| n == name) {
            headers.push((name.clone(), value(v, "header")?));
        }
    }
    let mut query: Vec<(Box<str>, Value)> = Vec::new();
    for (name, v) in &m.query {
        if !query.iter().any(|(n, _)| **n == **name) {
            query.push((name.as_str().into(), value(v, "query parameter")?));
        }
    }
    let action = match &spec.action {
        Action::Forward { backends, filters } => {
            let backends: Vec<(Option<Arc<Backend>>, u64, HeaderModifier)> = backends
                .iter()
                .filter(|b| b.weight > 0)
                .map(|b| {
                    (
                        b.backend.as_ref().map(&mut *backend),
                        u64::from(b.weight),
                        b.request_headers.clone(),
                    )
                })
                .collect();
            CompiledAction::Forward {
                total_weight: backends.iter().map(|(_, w, _)| w).sum(),
                backends,
                next: AtomicU64::new(0),
                filters: filters.clone(),
            }
        }
        Action::Redirect {
            redirect,
            response_headers,
        } => CompiledAction::Redirect {
            redirect: redirect.clone(),
            response_headers: response_headers.clone(),
        },
        Action::Fail { reason } => CompiledAction::Fail {
            reason: reason.clone(),
        },
    };
    let gateway = GatewayRoute {
        listener_port: port.port,
        tls: port.tls,
        action,
    };
    Ok(Rule {
        route: route(spec, gateway),
        namespace: spec.namespace.as_str().into(),
        path,
        method: m.method.clone(),
        headers,
        query,
    })
}

// === lookup ===

impl GatewayTable {
    /// The rule for a request, and how much of its path the rule's prefix matched.
    pub fn lookup(&self, req: &GatewayRequest<'_>) -> Option<Match<'_>> {
        let host = req.host;
        let listener = self
            .listeners
            .iter()
            .find(|l| l.hostname.as_ref().is_none_or(|h| host_matches(h, host)))?;
        let mut query: Option<Vec<(String, String)>> = None;
        if let Some(m) = listener
            .exact
            .get(host)
            .and_then(|rules| first_match(rules, req, &mut query, None))
        {
            return Some(m);
        }
        // Onto wildcard and host-less rules: for a name with a standing, only the
        // rules of namespaces that could name it.
        let limit = self.standings.of(host).map(|s| (s, listener));
        for (suffix, rules) in &listener.wildcard {
            if suffix_matches(suffix, host)
                && let Some(m) = first_match(rules, req, &mut query, limit)
            {
                return Some(m);
            }
        }
        first_match(&listener.any, req, &mut query, limit)
    }

    /// Every route of this socket, in no particular order, once each.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        let mut seen = std::collections::HashSet::new();
        self.listeners
            .iter()
            .flat_map(|l| {
                l.exact
                    .values()
                    .flatten()
                    .chain(l.wildcard.iter().flat_map(|(_, r)| r))
                    .chain(&l.any)
            })
            .filter(move |r| seen.insert(Arc::as_ptr(&r.route)))
            .map(|r| &r.route)
    }
}

fn first_match<'t>(
    rules: &'t [Arc<Rule>],
    req: &GatewayRequest<'_>,
    query: &mut Option<Vec<(String, String)>>,
    limit: Option<(&NameStanding, &Listener)>,
) -> Option<Match<'t>> {
    rules.iter().find_map(|r| {
        if let Some((standing, l)) = limit
            && !standing.admits(&r.namespace, &l.gateway_namespace, l.shares)
        {
            return None;
        }
        r.matches(req, query).map(|matched_len| Match {
            route: &r.route,
            matched_len,
        })
    })
}

fn host_matches(pattern: &GatewayHost, host: &str) -> bool {
    match pattern {
        GatewayHost::Exact(h) => h == host,
        GatewayHost::Wildcard(s) => suffix_matches(s, host),
    }
}

/// `host` is one or more labels followed by `.suffix`.
fn suffix_matches(suffix: &str, host: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

impl Rule {
    /// The matched prefix length when the request matches.
    fn matches(
        &self,
        req: &GatewayRequest<'_>,
        query: &mut Option<Vec<(String, String)>>,
    ) -> Option<usize> {
        let path = req.path;
        let matched = match &self.path {
            Path::Exact(p) => (**p == *path).then_some(path.len()),
            Path::Prefix(p) => (path.starts_with(&**p)
                && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/'))
                .then_some(p.len()),
            Path::Regex(re) => re.is_match(path).then_some(path.len()),
        }?;
        if self.method.as_ref().is_some_and(|m| m != req.method) {
            return None;
        }
        for (name, want) in &self.headers {
            let mut values = req.headers.get_all(name).iter();
            let first = values.next()?;
            // Repeated headers are read as one comma-joined value (RFC 9110 §5.3).
            let joined;
            let value = match values.next() {
                None => first.to_str().ok()?,
                Some(second) => {
                    let mut all = vec![first.to_str().ok()?, second.to_str().ok()?];
                    for v in values {
                        all.push(v.to_str().ok()?);
                    }
                    joined = all.join(",");
                    joined.as_str()
                }
            };
            if !want.matches(value) {
                return None;
            }
        }
        if !self.query.is_empty() {
            let pairs = query.get_or_insert_with(|| parse_query(req.query.unwrap_or("")));
            for (name, want) in &self.query {
                // A repeated parameter: its first value counts.
                let value = pairs.iter().find(|(n, _)| n == &**name).map(|(_, v)| v)?;
                if !want.matches(value) {
                    return None;
                }
            }
        }
        Some(matched)
    }
}

impl Value {
    fn matches(&self, value: &str) -> bool {
        match self {
            Value::Exact(v) => **v == *value,
            Value::Regex(re) => re.is_match(value),
        }
    }
}

/// `a=1&b=%20` as decoded pairs; a name without `=` has an empty value.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(n), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// === impl GatewayRoute ===

impl GatewayRoute {
    /// The backend for the next request, by weight.
    pub fn pick(&self) -> Option<PickedBackend<'_>> {
        let CompiledAction::Forward {
            backends,
            total_weight,
            next,
            ..
        } = &self.action
        else {
            return None;
        };
        if *total_weight == 0 {
            return Some(PickedBackend::Invalid);
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        let stride = if total_weight % WEIGHT_STRIDE == 0 {
            1
        } else {
            WEIGHT_STRIDE
        };
        let mut slot = n.wrapping_mul(stride) % total_weight;
        for (backend, weight, headers) in backends {
            if slot < *weight {
                return Some(match backend {
                    Some(backend) => PickedBackend::Backend {
                        backend,
                        request_headers: headers,
                    },
                    None => PickedBackend::Invalid,
                });
            }
            slot -= weight;
        }
        Some(PickedBackend::Invalid)
    }

    /// The forwarding rule's filters, if it forwards.
    pub fn filters(&self) -> Option<&Filters> {
        match &self.action {
            CompiledAction::Forward { filters, .. } => Some(filters),
            _ => None,
        }
    }
}
