//! Compiling one socket's spec: listeners by hostname specificity, each listener's
//! rules by precedence (see the module docs) and grouped by hostname, patterns compiled
//! with the table's limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::HeaderName;
use regex_automata::meta::Regex;

use super::super::{
    Action, GatewayHost, GatewayPortSpec, HeaderModifier, ListenerSpec, PathMatch, RuleSpec,
    ValueMatch,
};
use super::{CompiledAction, GatewayRoute, GatewayTable, Listener, Path, Rule, Value};
use crate::routes::table::{Backend, Route};

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
