//! One route's rules, built once whatever its parents: for each rule its timeouts,
//! filters ([`super::filters`]) and backends ([`super::backends`]), then one rule per
//! match, and the problems that make the route unaccepted or its references
//! unresolved.

use std::time::Duration;

use http::{HeaderName, Method};

use super::backends::backend;
use super::filters::apply_filter;
use crate::kube::gateway::api::{HTTPRoute, HTTPRouteMatch, HTTPRouteRule};
use crate::kube::gateway::reasons;
use crate::kube::index::backend::Services;
use crate::kube::index::report::{ConditionState, Note};
use crate::kube::index::{Index, ObjectKey};
use crate::routes::gateway::{
    Action, Filters, PathMatch, RedirectSpec, RequestMatch, ValueMatch, WeightedBackend,
};
use crate::routes::{RouteOptions, UpstreamHost};

/// One route's rules, made once whatever its parents.
pub(super) struct BuiltRoute {
    /// Accepted=False for every parent: `(reason, message)`.
    pub unsupported: Option<(&'static str, String)>,
    pub resolved: ConditionState,
    pub rules: Vec<BuiltRule>,
    pub notes: Vec<Note>,
}

pub(super) struct BuiltRule {
    pub id: String,
    pub rule: usize,
    pub matched: usize,
    pub matches: RequestMatch,
    pub action: Action,
    pub options: RouteOptions,
}

/// What problems a route's rules have.
#[derive(Default)]
pub(super) struct Problems {
    unsupported: Option<(&'static str, String)>,
    unresolved: Option<(&'static str, String)>,
}

impl Problems {
    pub(super) fn unsupported(&mut self, reason: &'static str, message: String) {
        self.unsupported.get_or_insert((reason, message));
    }

    pub(super) fn unresolved(&mut self, reason: &'static str, message: String) {
        self.unresolved.get_or_insert((reason, message));
    }
}

pub(super) fn build_route(
    index: &Index,
    services: &Services<'_>,
    key: &ObjectKey,
    route: &HTTPRoute,
) -> BuiltRoute {
    let mut problems = Problems::default();
    let default_rule = [HTTPRouteRule {
        name: None,
        matches: None,
        filters: Vec::new(),
        backend_refs: Vec::new(),
        timeouts: None,
    }];
    let rules: &[HTTPRouteRule] = route.spec.rules.as_deref().unwrap_or(&default_rule);
    let claim_headers = &index.settings.tenancy.claim_headers;
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let mut options = RouteOptions {
            allow_websockets: true,
            ..RouteOptions::default()
        };
        if let Some(t) = &rule.timeouts {
            match timeouts(t) {
                Ok(Some(limit)) => options.timeout = limit,
                Ok(None) => {}
                Err(why) => problems
                    .unsupported(reasons::UNSUPPORTED_VALUE, format!("{at}.timeouts: {why}")),
            }
        }
        let mut filters = Filters::default();
        let mut redirect: Option<RedirectSpec> = None;
        for (f, filter) in rule.filters.iter().enumerate() {
            let at = format!("{at}.filters[{f}]");
            match apply_filter(filter, &mut filters, &mut redirect, claim_headers) {
                Ok(()) => {}
                Err(why) => {
                    problems.unsupported(reasons::UNSUPPORTED_VALUE, format!("{at}: {why}"))
                }
            }
        }
        if let Some(h) = &filters.host_rewrite {
            options.upstream_host = UpstreamHost::Rewrite(h.clone());
        }
        let backends: Vec<WeightedBackend> = rule
            .backend_refs
            .iter()
            .enumerate()
            .map(|(b, r)| {
                backend(
                    index,
                    services,
                    key,
                    r,
                    &format!("{at}.backendRefs[{b}]"),
                    &mut problems,
                    claim_headers,
                )
            })
            .collect();
        let action = match redirect {
            Some(redirect) => Action::Redirect {
                redirect,
                response_headers: filters.response_headers.clone(),
            },
            None => Action::Forward { backends, filters },
        };
        let default_match = [HTTPRouteMatch::default()];
        let matches: &[HTTPRouteMatch] = match rule.matches.as_deref() {
            None | Some([]) => &default_match,
            Some(m) => m,
        };
        for (j, m) in matches.iter().enumerate() {
            match request_match(m) {
                Ok(matches) => out.push(BuiltRule {
                    id: format!("{key}/rules[{i}]/matches[{j}]"),
                    rule: i,
                    matched: j,
                    matches,
                    action: action.clone(),
                    options: options.clone(),
                }),
                Err(why) => problems.unsupported(
                    reasons::UNSUPPORTED_VALUE,
                    format!("{at}.matches[{j}]: {why}"),
                ),
            }
        }
    }
    if let Some(why) = regex_budget(&out) {
        problems.unsupported(reasons::UNSUPPORTED_VALUE, why);
    }
    let resolved = match &problems.unresolved {
        Some((reason, message)) => ConditionState {
            status: false,
            reason,
            message: message.clone(),
        },
        None => ConditionState {
            status: true,
            reason: reasons::RESOLVED_REFS,
            message: String::new(),
        },
    };
    BuiltRoute {
        unsupported: problems.unsupported,
        resolved,
        rules: out,
        notes: Vec::new(),
    }
}

fn request_match(m: &HTTPRouteMatch) -> Result<RequestMatch, String> {
    let path = m.path.clone().unwrap_or_default();
    let value = path.value.clone().unwrap_or_else(|| "/".to_string());
    let path = match path.type_.as_deref().unwrap_or("PathPrefix") {
        "Exact" if value.starts_with('/') => PathMatch::Exact(value),
        "PathPrefix" if value.starts_with('/') => PathMatch::Prefix(value),
        "RegularExpression" => {
            regex_ok(&value)?;
            PathMatch::Regex(value)
        }
        "Exact" | "PathPrefix" => return Err(format!("path `{value}` must start with `/`")),
        other => return Err(format!("path type {other} is not supported")),
    };
    let method = match m.method.as_deref() {
        None => None,
        Some(name) => Some(
            Method::from_bytes(name.as_bytes())
                .map_err(|_| format!("method `{name}` is not an HTTP method"))?,
        ),
    };
    let value_match = |type_: Option<&str>, value: &str| -> Result<ValueMatch, String> {
        match type_.unwrap_or("Exact") {
            "Exact" => Ok(ValueMatch::Exact(value.to_string())),
            "RegularExpression" => {
                regex_ok(value)?;
                Ok(ValueMatch::Regex(value.to_string()))
            }
            other => Err(format!("match type {other} is not supported")),
        }
    };
    let mut headers = Vec::new();
    for h in &m.headers {
        let name = HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{}` is not a header name", h.name))?;
        headers.push((name, value_match(h.type_.as_deref(), &h.value)?));
    }
    let mut query = Vec::new();
    for q in &m.query_params {
        query.push((q.name.clone(), value_match(q.type_.as_deref(), &q.value)?));
    }
    Ok(RequestMatch {
        path,
        method,
        headers,
        query,
    })
}

/// The budget an Ingress has for its path regexes, for all of a route's regexes (path,
/// header and query matches alike): a route author cannot make the table hold more.
fn regex_budget(rules: &[BuiltRule]) -> Option<String> {
    let mut patterns: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut count = 0;
    for r in rules {
        let m = &r.matches;
        let path = match &m.path {
            PathMatch::Regex(p) => Some(p.as_str()),
            _ => None,
        };
        let values = m
            .headers
            .iter()
            .map(|(_, v)| v)
            .chain(m.query.iter().map(|(_, v)| v));
        for p in path.into_iter().chain(values.filter_map(|v| match v {
            ValueMatch::Regex(p) => Some(p.as_str()),
            ValueMatch::Exact(_) => None,
        })) {
            count += 1;
            patterns.insert(p);
        }
    }
    let total = patterns
        .into_iter()
        .filter_map(|p| crate::routes::shared_path_regex(p).ok())
        .map(|(re, _)| crate::routes::path_regex_memory(&re))
        .sum();
    crate::kube::index::store::regex_budget("regexes", "an HTTPRoute", count, total)
}

/// Regexes compile with the table's limits (and are kept for the build to reuse).
fn regex_ok(pattern: &str) -> Result<(), String> {
    crate::routes::shared_path_regex(pattern).map(|_| ())
}

/// Gateway API durations (GEP-2257): up to four `<n><unit>` terms, units h, m, s, ms.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration such as 10s, 1m30s or 500ms");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    let mut terms = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += unit * n as u32;
        terms += 1;
        if terms > 4 {
            return Err(bad());
        }
    }
    Ok(total)
}

/// The time the upstream has to answer: the shorter of `request` and
/// `backendRequest`; zero means no limit. `None`: neither given.
fn timeouts(t: &crate::kube::gateway::api::HTTPRouteTimeouts) -> Result<Option<Duration>, String> {
    let request = t.request.as_deref().map(parse_duration).transpose()?;
    let backend = t
        .backend_request
        .as_deref()
        .map(parse_duration)
        .transpose()?;
    if let (Some(r), Some(b)) = (request, backend)
        && !r.is_zero()
        && (b.is_zero() || b > r)
    {
        return Err("backendRequest must not be longer than request".to_string());
    }
    Ok(match (request, backend) {
        (None, None) => None,
        (Some(r), None) => Some(r),
        (None, Some(b)) => Some(b),
        (Some(r), Some(b)) if r.is_zero() => Some(b),
        (Some(r), Some(b)) => Some(r.min(b)),
    })
}
