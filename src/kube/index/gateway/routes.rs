//! HTTPRoutes: attachment to listeners (`parentRefs` by name, section and port;
//! `allowedRoutes` kinds and namespaces; hostname intersection; host ownership), the
//! rules each route gives (matches, filters, weighted backends, timeouts) and who may
//! pass them (the route's IdentityPolicies, the Gateway's as a baseline).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use k8s_openapi::api::networking::v1::{IngressServiceBackend, ServiceBackendPort};

use super::super::backend::{Services, Upstream};
use super::super::report::{ConditionState, Note, NoteType};
use super::super::selector::Selector;
use super::super::translate::push_note;
use super::super::{Index, ObjectKey};
use super::listeners::{GatewayState, ListenerState, route_may_use};
use super::refs::permitted;
use super::{ParentReport, PolicyAttachment, RouteReport, age};
use crate::kube::gateway::api::{
    HTTPBackendRef, HTTPHeaderFilter, HTTPPathModifier, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch,
    HTTPRouteRule, ParentReference,
};
use crate::kube::gateway::{
    GROUP, KIND_GATEWAY, KIND_HTTP_ROUTE, KIND_SERVICE, conditions, reasons,
};
use crate::kube::index::ownership::Owners;
use crate::policy::{Policy, Shorthands};
use crate::routes::gateway::{
    Action, Filters, GatewayHost, HeaderModifier, PathMatch, PathRewrite, RedirectSpec,
    RequestMatch, RuleSpec, ValueMatch, WeightedBackend,
};
use crate::routes::reserved::reserved_request_header_with;
use crate::routes::{RouteOptions, UpstreamHost, UpstreamScheme};

/// What attaching every route produced.
pub(super) struct Attached {
    pub reports: Vec<RouteReport>,
    pub policies: BTreeMap<ObjectKey, PolicyAttachment>,
}

// === hostnames ===

/// A hostname as Gateway API writes it: lower-case labels, maybe `*.` in front.
pub(super) fn parse_hostname(h: &str) -> Result<GatewayHost, String> {
    let h = h.trim().to_ascii_lowercase();
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("`{h}` is not a host name or `*.` wildcard"));
    }
    if !wild && name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("`{h}` is an IP address; hostnames must be names"));
    }
    Ok(if wild {
        GatewayHost::Wildcard(name.to_string())
    } else {
        GatewayHost::Exact(name.to_string())
    })
}

/// `host` (an exact name) is one `pattern` covers.
pub(super) fn host_covers(pattern: &GatewayHost, host: &str) -> bool {
    match pattern {
        GatewayHost::Exact(h) => h == host,
        GatewayHost::Wildcard(s) => {
            host.len() > s.len() + 1
                && host.ends_with(s.as_str())
                && host.as_bytes()[host.len() - s.len() - 1] == b'.'
        }
    }
}

/// The hostnames a listener and a route have in common: `None` when they have none.
fn intersect(listener: Option<&GatewayHost>, route: &[GatewayHost]) -> Option<Vec<GatewayHost>> {
    let Some(l) = listener else {
        return Some(route.to_vec());
    };
    if route.is_empty() {
        return Some(vec![l.clone()]);
    }
    let both: Vec<GatewayHost> = route.iter().filter_map(|r| intersect_one(l, r)).collect();
    (!both.is_empty()).then_some(both)
}

fn intersect_one(l: &GatewayHost, r: &GatewayHost) -> Option<GatewayHost> {
    use GatewayHost::{Exact, Wildcard};
    match (l, r) {
        (Exact(a), Exact(b)) => (a == b).then(|| r.clone()),
        (Wildcard(_), Exact(h)) => host_covers(l, h).then(|| r.clone()),
        (Exact(h), Wildcard(_)) => host_covers(r, h).then(|| l.clone()),
        (Wildcard(a), Wildcard(b)) => {
            if a == b || host_covers(l, b) {
                Some(r.clone())
            } else if host_covers(r, a) {
                Some(l.clone())
            } else {
                None
            }
        }
    }
}

/// The Gateway a parentRef names, when it names one.
pub(super) fn parent_gateway(route: &ObjectKey, p: &ParentReference) -> Option<ObjectKey> {
    let group = p.group.as_deref().unwrap_or(GROUP);
    let kind = p.kind.as_deref().unwrap_or(KIND_GATEWAY);
    (group == GROUP && kind == KIND_GATEWAY).then(|| {
        ObjectKey::new(
            p.namespace.as_deref().unwrap_or(&route.namespace),
            p.name.as_str(),
        )
    })
}

// === attach ===

pub(super) fn attach(
    index: &Index,
    services: &Services<'_>,
    owners: &Owners,
    gateways: &mut [GatewayState<'_>],
) -> Attached {
    let by_key: HashMap<ObjectKey, usize> = gateways
        .iter()
        .enumerate()
        .map(|(i, g)| (g.key.clone(), i))
        .collect();
    let targets = Targets::new(index);
    let mut policies: BTreeMap<ObjectKey, PolicyAttachment> = BTreeMap::new();
    // The Gateways' baselines.
    let mut baselines: Vec<Option<Policies>> = Vec::new();
    for g in gateways.iter() {
        let keys = targets.of(KIND_GATEWAY, g.key);
        for k in &keys {
            let a = policies.entry(k.clone()).or_default();
            a.targets.push((KIND_GATEWAY, g.key.clone()));
            push_unique(&mut a.ancestors, g.key.clone());
        }
        baselines.push(compile_policies(index, &keys));
    }

    let mut routes: Vec<(&ObjectKey, &HTTPRoute)> = index.http_routes.items.iter().collect();
    routes.sort_by(|(ka, a), (kb, b)| {
        age(&a.metadata)
            .cmp(&age(&b.metadata))
            .then_with(|| ka.cmp(kb))
    });
    let mut reports = Vec::new();
    for (rank, (key, route)) in routes.into_iter().enumerate() {
        let parents: Vec<(usize, &ParentReference, usize)> = route
            .spec
            .parent_refs
            .iter()
            .enumerate()
            .filter_map(|(k, p)| {
                let gk = parent_gateway(key, p)?;
                by_key.get(&gk).map(|&gi| (k, p, gi))
            })
            .collect();
        if parents.is_empty() {
            continue;
        }
        let built = build_route(index, services, key, route);
        let own_keys = targets.of(KIND_HTTP_ROUTE, key);
        let own = compile_policies(index, &own_keys);
        let mut notes = built.notes.clone();
        if let Some(Policies {
            invalid: Some(why), ..
        }) = &own
        {
            push_note(
                &mut notes,
                NoteType::Warning,
                "IdentityPolicyInvalid",
                why.clone(),
            );
        }
        // A hostname that is no host name is left out and said; a route whose every
        // hostname is one answers nothing (never every host, as no hostnames would).
        let mut hostnames: Vec<GatewayHost> = Vec::new();
        let mut bad: Vec<String> = Vec::new();
        for h in &route.spec.hostnames {
            match parse_hostname(h) {
                Ok(h) => hostnames.push(h),
                Err(why) => bad.push(why),
            }
        }
        let mut unsupported = built.unsupported.clone();
        if !bad.is_empty() {
            let message = format!("spec.hostnames: not host names: {}", bad.join("; "));
            if hostnames.is_empty() {
                unsupported.get_or_insert((reasons::UNSUPPORTED_VALUE, message));
            } else {
                push_note(
                    &mut notes,
                    NoteType::Warning,
                    reasons::UNSUPPORTED_VALUE,
                    message,
                );
            }
        }
        let mut parent_reports = Vec::new();
        let mut accepted_by: Vec<ObjectKey> = Vec::new();
        for (_, p, gi) in parents {
            let g = &mut gateways[gi];
            let (accepted, attached) = attach_parent(index, owners, key, &hostnames, p, g);
            let accepted = match (&unsupported, accepted) {
                (Some((reason, message)), a) if a.status => ConditionState {
                    status: false,
                    reason,
                    message: message.clone(),
                },
                (_, a) => a,
            };
            if !accepted.status {
                push_note(
                    &mut notes,
                    NoteType::Warning,
                    accepted.reason,
                    accepted.message.clone(),
                );
            }
            // Rules go in only for an accepted parent.
            if accepted.status {
                push_unique(&mut accepted_by, g.key.clone());
                let baseline = &baselines[gi];
                let (policy, source) = effective_policy(own.as_ref(), baseline.as_ref(), g);
                if policy.is_empty() && policy.invalid_reason().is_none() {
                    push_note(
                        &mut notes,
                        NoteType::Warning,
                        "NoPolicy",
                        format!(
                            "no IdentityPolicy applies to this route or to Gateway {}: every request through it is denied",
                            g.key
                        ),
                    );
                }
                let policy = Arc::new(policy);
                for (li, hosts) in &attached {
                    let l = &mut g.listeners[*li];
                    for r in &built.rules {
                        l.rules.push(RuleSpec {
                            id: r.id.clone(),
                            namespace: key.namespace.clone(),
                            hostnames: hosts.clone(),
                            matches: r.matches.clone(),
                            order: (rank as u32, r.rule as u32, r.matched as u32),
                            action: r.action.clone(),
                            policy: policy.clone(),
                            options: RouteOptions {
                                policy_source: Arc::from(source.as_str()),
                                ..r.options.clone()
                            },
                        });
                    }
                }
            }
            for (li, _) in &attached {
                g.listeners[*li].attached += 1;
            }
            parent_reports.push(ParentReport {
                parent_ref: ParentReference {
                    group: Some(p.group.clone().unwrap_or_else(|| GROUP.to_string())),
                    kind: Some(p.kind.clone().unwrap_or_else(|| KIND_GATEWAY.to_string())),
                    ..p.clone()
                },
                conditions: vec![
                    (conditions::ACCEPTED, accepted),
                    (conditions::RESOLVED_REFS, built.resolved.clone()),
                ],
            });
        }
        if !built.resolved.status {
            push_note(
                &mut notes,
                NoteType::Warning,
                built.resolved.reason,
                built.resolved.message.clone(),
            );
        }
        for k in &own_keys {
            let a = policies.entry(k.clone()).or_default();
            a.targets.push((KIND_HTTP_ROUTE, key.clone()));
            for g in &accepted_by {
                push_unique(&mut a.ancestors, g.clone());
            }
            if !accepted_by.is_empty() {
                a.routes += 1;
            }
        }
        for g in &accepted_by {
            for k in targets.of(KIND_GATEWAY, g) {
                policies.entry(k).or_default().routes += 1;
            }
        }
        reports.push(RouteReport {
            key: key.clone(),
            uid: route.metadata.uid.clone(),
            generation: route.metadata.generation,
            parents: parent_reports,
            notes,
        });
    }
    reports.sort_by(|a, b| a.key.cmp(&b.key));
    Attached { reports, policies }
}

/// A route's standing with one parentRef: its Accepted condition, and the listeners
/// it attached to with the hostnames it has on each.
fn attach_parent(
    index: &Index,
    owners: &Owners,
    key: &ObjectKey,
    hostnames: &[GatewayHost],
    p: &ParentReference,
    g: &GatewayState<'_>,
) -> (ConditionState, Vec<(usize, Vec<GatewayHost>)>) {
    let refuse = |reason: &'static str, message: String| {
        (
            ConditionState {
                status: false,
                reason,
                message,
            },
            Vec::new(),
        )
    };
    if let Some((_, why)) = &g.refused {
        return refuse(
            reasons::NO_MATCHING_PARENT,
            format!("Gateway {} is not accepted: {why}", g.key),
        );
    }
    let named: Vec<usize> = g
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            p.section_name.as_ref().is_none_or(|s| *s == l.spec.name)
                && p.port.is_none_or(|port| port == l.spec.port)
        })
        .map(|(i, _)| i)
        .collect();
    if named.is_empty() {
        let what = match (&p.section_name, p.port) {
            (Some(s), Some(port)) => format!("a listener `{s}` on port {port}"),
            (Some(s), None) => format!("a listener `{s}`"),
            (None, Some(port)) => format!("a listener on port {port}"),
            (None, None) => "any listener".to_string(),
        };
        return refuse(
            reasons::NO_MATCHING_PARENT,
            format!("Gateway {} has no {what}", g.key),
        );
    }
    let allowed: Vec<usize> = named
        .into_iter()
        .filter(|&i| {
            let l = &g.listeners[i];
            l.usable() && l.allows_http_routes() && admits(index, l, g.key, &key.namespace)
        })
        .collect();
    if allowed.is_empty() {
        return refuse(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no listener of Gateway {} that this parentRef names admits HTTPRoutes from namespace {}",
                g.key, key.namespace
            ),
        );
    }
    let mut attached = Vec::new();
    let mut not_owned: Vec<String> = Vec::new();
    for i in allowed {
        let l = &g.listeners[i];
        let Some(hosts) = intersect(l.hostname.as_ref(), hostnames) else {
            continue;
        };
        let mut kept = Vec::new();
        for h in hosts {
            match route_may_use(
                owners,
                &key.namespace,
                &g.key.namespace,
                l,
                &super::ownership_host(&h),
            ) {
                Ok(()) => kept.push(h),
                Err(why) => not_owned.push(why),
            }
        }
        if kept.is_empty() && !(l.hostname.is_none() && hostnames.is_empty()) {
            continue;
        }
        attached.push((i, kept));
    }
    if attached.is_empty() {
        return if not_owned.is_empty() {
            refuse(
                reasons::NO_MATCHING_LISTENER_HOSTNAME,
                format!(
                    "no listener of Gateway {} has a hostname in common with the route",
                    g.key
                ),
            )
        } else {
            not_owned.dedup();
            refuse(reasons::HOST_NOT_OWNED, not_owned.join("; "))
        };
    }
    (
        ConditionState {
            status: true,
            reason: reasons::ACCEPTED,
            message: String::new(),
        },
        attached,
    )
}

/// Whether a listener's `allowedRoutes.namespaces` admits routes of `ns`.
fn admits(index: &Index, l: &ListenerState<'_>, gw: &ObjectKey, ns: &str) -> bool {
    let spec = l
        .spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match spec.and_then(|s| s.from.as_deref()).unwrap_or("Same") {
        "Same" => ns == gw.namespace,
        "All" => true,
        "Selector" => {
            let Some(selector) = spec
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| Selector::compile(s).ok())
            else {
                return false;
            };
            index
                .namespaces
                .get(&ObjectKey::new("", ns))
                .is_some_and(|n| selector.matches(n.metadata.labels.as_ref()))
        }
        _ => false,
    }
}

// === policies ===

/// IdentityPolicies by the kind and key of what they target.
struct Targets<'a> {
    by_target: HashMap<(&'static str, ObjectKey), Vec<&'a ObjectKey>>,
}

impl<'a> Targets<'a> {
    fn new(index: &'a Index) -> Self {
        let mut by_target: HashMap<(&'static str, ObjectKey), Vec<&'a ObjectKey>> = HashMap::new();
        for (key, entry) in &index.policies.items {
            for t in &entry.policy.spec.target_refs {
                let kind = match (t.group.as_str(), t.kind.as_str()) {
                    (GROUP, KIND_HTTP_ROUTE) => KIND_HTTP_ROUTE,
                    (GROUP, KIND_GATEWAY) => KIND_GATEWAY,
                    _ => continue,
                };
                let list = by_target
                    .entry((kind, ObjectKey::new(&key.namespace, t.name.as_str())))
                    .or_default();
                if !list.contains(&key) {
                    list.push(key);
                }
            }
        }
        Targets { by_target }
    }

    fn of(&self, kind: &'static str, key: &ObjectKey) -> Vec<ObjectKey> {
        self.by_target
            .get(&(kind, key.clone()))
            .map(|l| l.iter().map(|k| (*k).clone()).collect())
            .unwrap_or_default()
    }
}

/// The union of some IdentityPolicies' rules.
struct Policies {
    policy: Policy,
    keys: Vec<ObjectKey>,
    /// Why it denies everyone, when one of them is invalid.
    invalid: Option<String>,
}

/// The policies `keys` name, compiled. `None`: no policies.
fn compile_policies(index: &Index, keys: &[ObjectKey]) -> Option<Policies> {
    if keys.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for k in keys {
        let Some(entry) = index.policies.get(k) else {
            continue;
        };
        match &entry.rules {
            Ok(p) => parts.push(p.clone()),
            Err(e) => {
                let why = format!("IdentityPolicy {k} has invalid rules: {e}");
                return Some(Policies {
                    policy: Policy::deny_all(why.clone()),
                    keys: keys.to_vec(),
                    invalid: Some(why),
                });
            }
        }
    }
    Some(Policies {
        policy: Policy::union(parts),
        keys: keys.to_vec(),
        invalid: None,
    })
}

/// The route's own policies with the Gateway's as their baseline, and where they come
/// from (for the decision log).
fn effective_policy(
    own: Option<&Policies>,
    baseline: Option<&Policies>,
    g: &GatewayState<'_>,
) -> (Policy, String) {
    let names = |keys: &[ObjectKey]| {
        keys.iter()
            .map(|k| format!("IdentityPolicy {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (own, baseline) {
        (Some(o), Some(b)) => (
            o.policy.clone().all_of(b.policy.clone()),
            format!("{}; Gateway {}: {}", names(&o.keys), g.key, names(&b.keys)),
        ),
        (Some(o), None) => (o.policy.clone(), names(&o.keys)),
        (None, Some(b)) => (
            b.policy.clone(),
            format!("Gateway {}: {}", g.key, names(&b.keys)),
        ),
        (None, None) if g.public_without_policy => (
            Policy::from_shorthands(&Shorthands {
                allow_public_unauthenticated_access: true,
                ..Shorthands::default()
            }),
            "GatewayClass parameters: routes without policy are public".to_string(),
        ),
        (None, None) => (Policy::default(), String::new()),
    }
}

// === rules ===

/// One route's rules, made once whatever its parents.
struct BuiltRoute {
    /// Accepted=False for every parent: `(reason, message)`.
    unsupported: Option<(&'static str, String)>,
    resolved: ConditionState,
    rules: Vec<BuiltRule>,
    notes: Vec<Note>,
}

struct BuiltRule {
    id: String,
    rule: usize,
    matched: usize,
    matches: RequestMatch,
    action: Action,
    options: RouteOptions,
}

/// What problems a route's rules have.
#[derive(Default)]
struct Problems {
    unsupported: Option<(&'static str, String)>,
    unresolved: Option<(&'static str, String)>,
}

impl Problems {
    fn unsupported(&mut self, reason: &'static str, message: String) {
        self.unsupported.get_or_insert((reason, message));
    }

    fn unresolved(&mut self, reason: &'static str, message: String) {
        self.unresolved.get_or_insert((reason, message));
    }
}

fn build_route(
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

/// Applies a rule-level filter; `Err` for a filter Portcullis does not apply (the
/// route is then not accepted: UnsupportedValue, never silently ignored).
fn apply_filter(
    f: &HTTPRouteFilter,
    filters: &mut Filters,
    redirect: &mut Option<RedirectSpec>,
    claim_headers: &[String],
) -> Result<(), String> {
    match f.type_.as_str() {
        "RequestHeaderModifier" => {
            let spec = f
                .request_header_modifier
                .as_ref()
                .ok_or("requestHeaderModifier is missing")?;
            filters.request_headers = header_modifier(spec, Direction::Request, claim_headers)?;
        }
        "ResponseHeaderModifier" => {
            let spec = f
                .response_header_modifier
                .as_ref()
                .ok_or("responseHeaderModifier is missing")?;
            filters.response_headers = header_modifier(spec, Direction::Response, claim_headers)?;
        }
        "RequestRedirect" => {
            let spec = f
                .request_redirect
                .as_ref()
                .ok_or("requestRedirect is missing")?;
            let status = spec.status_code.unwrap_or(302);
            if ![301, 302, 303, 307, 308].contains(&status) {
                return Err(format!("statusCode {status} is not a redirect"));
            }
            let scheme = match spec.scheme.as_deref() {
                None => None,
                Some(s @ ("http" | "https")) => Some(s.to_string()),
                Some(other) => return Err(format!("scheme `{other}`: use http or https")),
            };
            let hostname = match spec.hostname.as_deref() {
                None => None,
                Some(h) => match parse_hostname(h)? {
                    GatewayHost::Exact(h) => Some(h),
                    GatewayHost::Wildcard(_) => {
                        return Err(format!("hostname `{h}`: a redirect needs one name"));
                    }
                },
            };
            *redirect = Some(RedirectSpec {
                scheme,
                hostname,
                path: spec.path.as_ref().map(path_modifier).transpose()?,
                port: spec
                    .port
                    .map(|p| u16::try_from(p).map_err(|_| format!("port {p} is out of range")))
                    .transpose()?,
                status: status as u16,
            });
        }
        "URLRewrite" => {
            let spec = f.url_rewrite.as_ref().ok_or("urlRewrite is missing")?;
            if let Some(h) = spec.hostname.as_deref() {
                match parse_hostname(h)? {
                    GatewayHost::Exact(h) => filters.host_rewrite = Some(h),
                    GatewayHost::Wildcard(_) => {
                        return Err(format!("hostname `{h}`: a rewrite needs one name"));
                    }
                }
            }
            filters.path_rewrite = spec.path.as_ref().map(path_modifier).transpose()?;
        }
        other => {
            return Err(format!(
                "filter type {other} is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect and URLRewrite are)"
            ));
        }
    }
    Ok(())
}

fn path_modifier(p: &HTTPPathModifier) -> Result<PathRewrite, String> {
    match (
        p.type_.as_str(),
        &p.replace_full_path,
        &p.replace_prefix_match,
    ) {
        ("ReplaceFullPath", Some(v), _) if v.starts_with('/') => Ok(PathRewrite::Full(v.clone())),
        ("ReplacePrefixMatch", _, Some(v)) if v.starts_with('/') || v.is_empty() => {
            Ok(PathRewrite::Prefix(v.clone()))
        }
        (t, _, _) => Err(format!(
            "path modifier {t} needs its value, starting with `/`"
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// A header modifier with names and values checked: requests may not be given
/// identity or framing headers (`routes::reserved`), responses no `Set-Cookie`
/// (Portcullis's cookies are its own).
fn header_modifier(
    spec: &HTTPHeaderFilter,
    direction: Direction,
    claim_headers: &[String],
) -> Result<HeaderModifier, String> {
    let name = |n: &str| -> Result<HeaderName, String> {
        let parsed = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{n}` is not a header name"))?;
        match direction {
            Direction::Request => {
                if let Some(why) = reserved_request_header_with(n, claim_headers) {
                    return Err(format!("`{n}` is {why}"));
                }
            }
            Direction::Response => {}
        }
        Ok(parsed)
    };
    let pair =
        |h: &crate::kube::gateway::api::HTTPHeader| -> Result<(HeaderName, HeaderValue), String> {
            let n = name(&h.name)?;
            if direction == Direction::Response && n == http::header::SET_COOKIE {
                return Err("Set-Cookie may not be set or added by a filter".to_string());
            }
            let v = HeaderValue::from_str(&h.value)
                .map_err(|_| format!("the value of `{}` is not a header value", h.name))?;
            Ok((n, v))
        };
    Ok(HeaderModifier {
        set: spec.set.iter().map(&pair).collect::<Result<_, _>>()?,
        add: spec.add.iter().map(&pair).collect::<Result<_, _>>()?,
        remove: spec
            .remove
            .iter()
            .map(|n| name(n))
            .collect::<Result<_, _>>()?,
    })
}

/// One backendRef: its endpoints, or `None` (its share of requests gets 500) with the
/// reason in `problems`.
fn backend(
    index: &Index,
    services: &Services<'_>,
    route: &ObjectKey,
    r: &HTTPBackendRef,
    at: &str,
    problems: &mut Problems,
    claim_headers: &[String],
) -> WeightedBackend {
    let weight = u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0);
    let mut out = WeightedBackend {
        backend: None,
        weight,
        request_headers: HeaderModifier::default(),
    };
    for (f, filter) in r.filters.iter().enumerate() {
        let at = format!("{at}.filters[{f}]");
        let spec = match (filter.type_.as_str(), &filter.request_header_modifier) {
            ("RequestHeaderModifier", Some(spec)) => spec,
            (other, _) => {
                problems.unsupported(
                    reasons::UNSUPPORTED_VALUE,
                    format!("{at}: filter type {other} is not supported on a backendRef (RequestHeaderModifier is)"),
                );
                return out;
            }
        };
        match header_modifier(spec, Direction::Request, claim_headers) {
            Ok(m) => out.request_headers = m,
            Err(why) => {
                problems.unsupported(reasons::UNSUPPORTED_VALUE, format!("{at}: {why}"));
                return out;
            }
        }
    }
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or(KIND_SERVICE);
    if !group.is_empty() || kind != KIND_SERVICE {
        problems.unresolved(
            reasons::INVALID_KIND,
            format!("{at}: {group}/{kind} is not a backend Portcullis can use (a Service is)"),
        );
        return out;
    }
    let ns = r.namespace.as_deref().unwrap_or(&route.namespace);
    if !permitted(
        index,
        (KIND_HTTP_ROUTE, &route.namespace),
        (KIND_SERVICE, ns),
        &r.name,
    ) {
        problems.unresolved(
            reasons::REF_NOT_PERMITTED,
            format!(
                "{at}: Service {ns}/{} is in another namespace and no ReferenceGrant there permits it",
                r.name
            ),
        );
        return out;
    }
    let Some(port) = r.port.filter(|p| (1..=65535).contains(p)) else {
        problems.unresolved(
            reasons::BACKEND_NOT_FOUND,
            format!("{at}: a Service backend needs a port"),
        );
        return out;
    };
    // The Service port's appProtocol decides how to speak to it.
    let svc_key = ObjectKey::new(ns, r.name.as_str());
    let app_protocol = index
        .services
        .get(&svc_key)
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port))
        .and_then(|p| p.app_protocol.clone());
    let scheme = match app_protocol.as_deref() {
        None | Some("http") | Some("kubernetes.io/ws") => UpstreamScheme::Http,
        Some("kubernetes.io/h2c") => UpstreamScheme::H2c,
        Some(other) => {
            problems.unresolved(
                reasons::UNSUPPORTED_PROTOCOL_BACKEND,
                format!("{at}: Service {svc_key} port {port} speaks appProtocol {other}, which Portcullis does not"),
            );
            return out;
        }
    };
    let resolution = services.resolve(
        ns,
        &IngressServiceBackend {
            name: r.name.clone(),
            port: Some(ServiceBackendPort {
                name: None,
                number: Some(port),
            }),
        },
        Upstream {
            scheme,
            service_upstream: false,
        },
    );
    if let Some((_, message)) = &resolution.refusal {
        problems.unresolved(reasons::REF_NOT_PERMITTED, format!("{at}: {message}"));
        return out;
    }
    match &resolution.warning {
        Some((reason, message))
            if *reason == crate::kube::index::reasons::SERVICE_NOT_FOUND
                || *reason == crate::kube::index::reasons::SERVICE_PORT_NOT_FOUND =>
        {
            problems.unresolved(reasons::BACKEND_NOT_FOUND, format!("{at}: {message}"));
            return out;
        }
        // No ready endpoints: a valid backend that answers 503 until it has some.
        _ => {}
    }
    out.backend = Some(crate::routes::BackendSpec {
        endpoints: resolution.endpoints,
        balance: crate::routes::Balance::RoundRobin,
    });
    out
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}
