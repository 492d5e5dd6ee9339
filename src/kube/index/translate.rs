//! The translation: indexed objects → routing model, certificates and reports.
//!
//! Order: Ingresses are translated oldest first (creationTimestamp, then
//! namespace/name), which is the model order, so on an identical host and path the
//! established Ingress keeps the traffic and the newcomer is told (`RouteConflict`), and
//! the oldest `defaultBackend` wins. Reports are sorted by namespace/name.
//!
//! Tenancy (docs/security.md): host ownership is decided first ([`Owners`]); a rule on
//! a host its namespace neither owns nor was delegated, a rule without a host or a
//! `defaultBackend` outside the admin's catch-all namespaces, a refused upstream or a
//! reserved header rejects the Ingress, and the offending routes are left out rather
//! than made to deny, so they cannot cover another namespace's paths. Owners' routes go
//! before delegates', so an owner's route wins an identical path.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend, IngressSpec};

use super::backend::{Resolution, Services, Upstream};
use super::ownership::{Claim, Owners, Standing};
use super::report::{
    ConditionState, IdentityPolicyReport, IngressReport, Note, NoteType, Translation, reasons,
};
use super::selector::Selector;
use super::store::{CA_KEY, IngressEntry, TLS_CERT_KEY, TLS_KEY_KEY, TLS_SECRET_TYPE};
use super::upstreams::UpstreamRules;
use super::{DEFAULT_CLASS_ANNOTATION, Index, LEGACY_CLASS_ANNOTATION, ObjectKey};
use crate::kube::annotations::{AnnotationErrorKind, IngressAnnotations};
use crate::kube::crd::{
    REASON_INVALID_KIND, REASON_INVALID_RULES, REASON_REFS_RESOLVED, REASON_TARGET_NOT_FOUND,
    REASON_VALID,
};
use crate::policy::Policy;
use crate::routes::certs::{PemPair, ScopedPair};
use crate::routes::reserved::reserved_request_header_with;
use crate::routes::{BackendSpec, HostMatch, Model, PathMatch, RouteOptions, RouteSpec};

// === impl Index ===

impl Index {
    /// Translates everything indexed into one snapshot. Pure and deterministic.
    pub fn translate(&self) -> Translation {
        let rules = self.upstream_rules();
        Translator::new(self, &rules).run()
    }

    /// The namespaces and ClusterIPs the upstream checks compare against.
    fn upstream_rules(&self) -> UpstreamRules<'_> {
        let namespaces: BTreeSet<&str> = (self.ingresses.items.keys())
            .chain(self.http_routes.items.keys())
            .chain(self.gateways.items.keys())
            .chain(self.services.items.keys())
            .chain(self.slices.items.keys())
            .chain(self.secrets.items.keys())
            .chain(self.policies.items.keys())
            .map(|k| k.namespace.as_str())
            .collect();
        let mut cluster_ips: HashMap<IpAddr, &ObjectKey> = HashMap::new();
        for (key, svc) in &self.services.items {
            let spec = svc.spec.as_ref();
            let ips = spec
                .and_then(|s| s.cluster_ips.as_deref())
                .unwrap_or_default()
                .iter()
                .chain(spec.and_then(|s| s.cluster_ip.as_ref()));
            for ip in ips.filter_map(|ip| ip.parse().ok()) {
                cluster_ips.insert(ip, key);
            }
        }
        UpstreamRules::new(
            &self.settings.tenancy,
            &self.settings.cluster_domain,
            namespaces,
            cluster_ips,
        )
    }

    /// Whether an Ingress belongs to this controller (docs/design.md): its
    /// `ingressClassName` names one of our IngressClasses; or, with no class name, the
    /// legacy annotation names our class; or, with neither, one of our classes is the
    /// cluster default.
    pub fn is_ours(&self, ingress: &Ingress) -> bool {
        let class_name = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref());
        if let Some(class) = class_name {
            return self
                .classes
                .get(&ObjectKey::new("", class))
                .is_some_and(|c| self.is_our_class(c));
        }
        let legacy = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
        if let Some(legacy) = legacy {
            return *legacy == self.settings.class_name;
        }
        self.classes.items.values().any(|c| {
            self.is_our_class(c)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        })
    }

    fn is_our_class(&self, class: &k8s_openapi::api::networking::v1::IngressClass) -> bool {
        class.spec.as_ref().and_then(|s| s.controller.as_deref())
            == Some(self.settings.controller_name.as_str())
    }
}

// === impl Translator ===

/// Lookups built once per translation.
struct Translator<'a> {
    index: &'a Index,
    services: Services<'a>,
    /// `(namespace, ingress name)` → policies naming it in `targetRefs`.
    by_target: HashMap<(&'a str, &'a str), Vec<&'a ObjectKey>>,
    /// namespace → policies with a usable `ingressSelector`.
    by_selector: HashMap<&'a str, Vec<(&'a ObjectKey, &'a Selector)>>,
}

/// One Ingress, translated.
struct IngressOut<'a> {
    report: IngressReport,
    /// Routes on hosts its namespace owns (or without a host).
    routes: Vec<RouteSpec>,
    /// Routes on hosts another namespace delegated.
    delegated_routes: Vec<RouteSpec>,
    default_backend: Option<RouteSpec>,
    /// TLS Secrets, with the names each may serve.
    certificates: Vec<(ObjectKey, PemPair, Vec<String>)>,
    attached: BTreeSet<&'a ObjectKey>,
}

/// A Service backend as written: name, port number, port name.
type BackendRef<'a> = (&'a str, Option<i32>, Option<&'a str>);

/// A route before its backend and policy are known.
struct Draft<'a> {
    id: String,
    host: HostMatch,
    path: PathMatch,
    backend: &'a IngressBackend,
    /// On a host another namespace owns and delegated.
    delegated: bool,
}

impl<'a> Translator<'a> {
    fn new(index: &'a Index, rules: &'a UpstreamRules<'a>) -> Self {
        let mut by_target: HashMap<(&str, &str), Vec<&ObjectKey>> = HashMap::new();
        let mut by_selector: HashMap<&str, Vec<(&ObjectKey, &Selector)>> = HashMap::new();
        for (key, entry) in &index.policies.items {
            for t in &entry.policy.spec.target_refs {
                if t.is_ingress() {
                    let list = by_target
                        .entry((key.namespace.as_str(), t.name.as_str()))
                        .or_default();
                    if !list.contains(&key) {
                        list.push(key);
                    }
                }
            }
            if let Ok(Some(selector)) = &entry.selector {
                by_selector
                    .entry(key.namespace.as_str())
                    .or_default()
                    .push((key, selector));
            }
        }
        Translator {
            index,
            services: Services::new(
                &index.services,
                &index.slices,
                &index.settings.cluster_domain,
                rules,
            ),
            by_target,
            by_selector,
        }
    }

    fn run(self) -> Translation {
        let mut ours: Vec<(&ObjectKey, &IngressEntry)> = self
            .index
            .ingresses
            .items
            .iter()
            .filter(|(_, e)| self.index.is_ours(&e.ingress))
            .collect();
        ours.sort_by(|(ka, a), (kb, b)| {
            let age = |e: &IngressEntry| {
                let t = e.ingress.metadata.creation_timestamp.as_ref().map(|t| t.0);
                (t.is_none(), t)
            };
            age(a).cmp(&age(b)).then_with(|| ka.cmp(kb))
        });

        let tenancy = &self.index.settings.tenancy;
        // One ownership decision for Ingress rules, HTTPRoute and listener hostnames,
        // oldest claim first (an Ingress before a route of the same age).
        let route_claims = super::gateway::claims(self.index);
        let mut aged: Vec<((bool, Option<jiff::Timestamp>), Claim<'_>)> = ours
            .iter()
            .map(|(k, e)| (super::gateway::age(&e.ingress.metadata), claim(k, e)))
            .collect();
        aged.extend(route_claims.iter().map(|c| (c.age, c.claim())));
        aged.sort_by_key(|(age, _)| *age);
        let claims: Vec<Claim<'_>> = aged.into_iter().map(|(_, c)| c).collect();
        let owners = Owners::decide(&tenancy.hosts, &tenancy.reserved, &claims);
        let mut outs: Vec<IngressOut<'_>> = ours
            .iter()
            .map(|(k, e)| self.ingress(k, e, &owners))
            .collect();

        let mut model = Model {
            exclusive_hosts: owners.exclusive_hosts(),
            ..Model::default()
        };
        let mut claimed: HashMap<(HostMatch, PathMatch), String> = HashMap::new();
        let mut default_owner: Option<ObjectKey> = None;
        // Owners' routes first: on an identical host and path the owner wins.
        let mut order: Vec<(usize, RouteSpec)> = Vec::new();
        for (i, out) in outs.iter_mut().enumerate() {
            order.extend(std::mem::take(&mut out.routes).into_iter().map(|r| (i, r)));
        }
        for (i, out) in outs.iter_mut().enumerate() {
            order.extend(
                std::mem::take(&mut out.delegated_routes)
                    .into_iter()
                    .map(|r| (i, r)),
            );
        }
        for (i, route) in order {
            let out = &mut outs[i];
            match claimed.get(&(route.host.clone(), route.path.clone())) {
                Some(first) => push_note(
                    &mut out.report.notes,
                    NoteType::Warning,
                    reasons::ROUTE_CONFLICT,
                    format!(
                        "route {} is shadowed by {first}, which has the same host and path and goes first (it is older, or its namespace owns the host)",
                        route.id
                    ),
                ),
                None => {
                    claimed.insert((route.host.clone(), route.path.clone()), route.id.clone());
                }
            }
            out.report.routes.push(route.id.clone());
            model.routes.push(route);
        }
        for out in &mut outs {
            if let Some(route) = out.default_backend.take() {
                match &default_owner {
                    Some(owner) => push_note(
                        &mut out.report.notes,
                        NoteType::Warning,
                        reasons::DEFAULT_BACKEND_CONFLICT,
                        format!(
                            "spec.defaultBackend is ignored: Ingress {owner} is older and provides the default backend"
                        ),
                    ),
                    None => {
                        default_owner = Some(out.report.key.clone());
                        out.report.serves_default_backend = true;
                        out.report.routes.push(route.id.clone());
                        model.default_backend = Some(route);
                    }
                }
            }
        }

        // One entry per Secret, serving the union of the names its Ingresses may give it.
        let mut certificates: BTreeMap<ObjectKey, ScopedPair> = BTreeMap::new();
        let mut attached_count: HashMap<&ObjectKey, i32> = HashMap::new();
        for out in &mut outs {
            for (key, pair, names) in out.certificates.drain(..) {
                let entry = certificates.entry(key).or_insert_with(|| ScopedPair {
                    pair,
                    names: Vec::new(),
                });
                for n in names {
                    if !entry.names.contains(&n) {
                        entry.names.push(n);
                    }
                }
            }
            for key in &out.attached {
                *attached_count.entry(key).or_default() += 1;
            }
        }
        for c in certificates.values_mut() {
            c.names.sort();
        }
        let default_certificate_hosts = pinned_hosts(&certificates, &claims, &owners);
        let gateway = super::gateway::translate(self.index, &self.services, &owners);
        model.gateways = gateway.ports.clone();
        let policies = self.policy_reports(&ours, &attached_count, &gateway);

        let mut ingresses: Vec<IngressReport> = outs.into_iter().map(|o| o.report).collect();
        ingresses.sort_by(|a, b| a.key.cmp(&b.key));
        Translation {
            model,
            certificates: certificates.into_values().collect(),
            default_certificate_hosts,
            ingresses,
            policies,
            gateway,
        }
    }

    fn ingress(&self, key: &ObjectKey, entry: &'a IngressEntry, owners: &Owners) -> IngressOut<'a> {
        let ingress = &entry.ingress;
        let ann = &entry.annotations.values;
        let ns = key.namespace.as_str();
        let tenancy = &self.index.settings.tenancy;
        static NO_SPEC: IngressSpec = IngressSpec {
            default_backend: None,
            ingress_class_name: None,
            rules: None,
            tls: None,
        };
        let spec = ingress.spec.as_ref().unwrap_or(&NO_SPEC);

        // Problems that reject the Ingress, and warnings that do not.
        let mut rejections: Vec<Note> = Vec::new();
        let mut notes: Vec<Note> = Vec::new();
        let mut reject = |reason: &'static str, message: String| {
            push_note(&mut rejections, NoteType::Warning, reason, message)
        };
        for e in &entry.annotations.errors {
            let reason = match e.kind {
                AnnotationErrorKind::Unknown => reasons::UNKNOWN_ANNOTATION,
                AnnotationErrorKind::Invalid => reasons::INVALID_ANNOTATION,
            };
            reject(reason, e.to_string());
        }
        let header_names = (ann.options.set_request_headers.iter().map(|(n, _)| n))
            .map(|n| ("set-request-headers", n))
            .chain(
                ann.options
                    .remove_request_headers
                    .iter()
                    .map(|n| ("remove-request-headers", n)),
            );
        for (annotation, name) in header_names {
            if let Some(why) = reserved_request_header_with(name.as_str(), &tenancy.claim_headers) {
                reject(
                    reasons::RESERVED_HEADER,
                    format!("annotation {annotation}: `{name}` is {why}"),
                );
            }
        }
        if let Some(why) = &entry.regexes.over_budget {
            reject(reasons::PATH_REGEX_LIMIT, format!("spec.rules: {why}"));
        }

        // IdentityPolicies: by targetRefs, by ingressSelector, by annotation.
        let mut attached: BTreeSet<&ObjectKey> = BTreeSet::new();
        if let Some(keys) = self.by_target.get(&(ns, key.name.as_str())) {
            attached.extend(keys.iter().copied());
        }
        let labels = ingress.metadata.labels.as_ref();
        for (pkey, selector) in self.by_selector.get(ns).into_iter().flatten() {
            if selector.matches(labels) {
                attached.insert(pkey);
            }
        }
        for name in &ann.identity_policies {
            match self
                .index
                .policies
                .items
                .get_key_value(&ObjectKey::new(ns, name))
            {
                Some((pkey, _)) => {
                    attached.insert(pkey);
                }
                None => reject(
                    reasons::IDENTITY_POLICY_NOT_FOUND,
                    format!("IdentityPolicy {ns}/{name} (annotation identity-policy) not found"),
                ),
            }
        }
        let mut parts: Vec<Policy> = Vec::new();
        for pkey in &attached {
            let p = &self.index.policies.items[*pkey];
            match (&p.rules, &p.selector) {
                (Err(e), _) => reject(
                    reasons::IDENTITY_POLICY_INVALID,
                    format!("IdentityPolicy {pkey} has invalid rules: {e}"),
                ),
                (_, Err(e)) => reject(
                    reasons::IDENTITY_POLICY_INVALID,
                    format!("IdentityPolicy {pkey} has an invalid ingressSelector: {e}"),
                ),
                (Ok(rules), Ok(_)) => parts.push(rules.clone()),
            }
        }

        // Upstream CA bundle.
        let mut options = ann.options.clone();
        if let Some(name) = &ann.tls_custom_ca_secret {
            let secret = self.index.secrets.get(&ObjectKey::new(ns, name));
            let ca = secret.and_then(|s| s.data.as_ref()?.get(CA_KEY));
            match (secret, ca) {
                (None, _) => reject(
                    reasons::CA_SECRET_NOT_FOUND,
                    format!(
                        "Secret {ns}/{name} (annotation tls-custom-ca-secret) not found, or it holds no `{CA_KEY}`"
                    ),
                ),
                (Some(_), Some(ca)) if !ca.0.is_empty() => {
                    options.tls.ca_pem = Some(Arc::from(ca.0.as_slice()));
                }
                (Some(_), _) => reject(
                    reasons::CA_SECRET_INVALID,
                    format!(
                        "Secret {ns}/{name} (annotation tls-custom-ca-secret) has no `{CA_KEY}`"
                    ),
                ),
            }
        }

        // Routes: host × path, and rules without paths to this Ingress' defaultBackend.
        // Rules on hosts the namespace may not use are left out altogether.
        let may_catch_all = tenancy.may_catch_all(ns);
        let mut drafts: Vec<Draft<'a>> = Vec::new();
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let (host, delegated) = match rule.host.as_deref().filter(|h| !h.is_empty()) {
                None if !may_catch_all => {
                    reject(
                        reasons::CATCH_ALL_NOT_ALLOWED,
                        format!(
                            "spec.rules[{i}] has no host, so it would answer every host no Ingress names; only namespaces the cluster admin designates (--catch-all-namespace) may have such rules"
                        ),
                    );
                    continue;
                }
                None => (HostMatch::Any, false),
                Some(h) => match HostMatch::parse(h) {
                    Ok(m) => {
                        hosts.insert(h.trim().to_ascii_lowercase());
                        match owners.standing(ns, &m) {
                            Standing::Owner => (m, false),
                            Standing::Delegated { .. } => (m, true),
                            Standing::Refused { reason, message } => {
                                reject(reason, format!("spec.rules[{i}]: {message}"));
                                continue;
                            }
                        }
                    }
                    Err(why) => {
                        reject(
                            reasons::INVALID_HOST,
                            format!("spec.rules[{i}].host: {why}"),
                        );
                        continue;
                    }
                },
            };
            let Some(http) = &rule.http else {
                // Kubernetes: a rule without paths sends its host to the default backend.
                if let Some(b) = &spec.default_backend {
                    drafts.push(Draft {
                        id: format!("{key}/rules[{i}]"),
                        host,
                        path: PathMatch::Any,
                        backend: b,
                        delegated,
                    });
                }
                continue;
            };
            for (j, p) in http.paths.iter().enumerate() {
                let path = match path_match(p, ann, entry.regexes.errors.get(&(i, j))) {
                    Ok(m) => m,
                    Err(why) => {
                        reject(
                            reasons::INVALID_PATH,
                            format!("spec.rules[{i}].http.paths[{j}]: {why}"),
                        );
                        // The deny route takes what the path would have: the whole host.
                        PathMatch::Any
                    }
                };
                drafts.push(Draft {
                    id: format!("{key}/rules[{i}]/paths[{j}]"),
                    host: host.clone(),
                    path,
                    backend: &p.backend,
                    delegated,
                });
            }
        }
        let default_draft = match &spec.default_backend {
            Some(_) if !may_catch_all => {
                reject(
                    reasons::CATCH_ALL_NOT_ALLOWED,
                    "spec.defaultBackend would answer unmatched paths of every host, other namespaces' included; only namespaces the cluster admin designates (--catch-all-namespace) may have one (route `/` of your own host instead)".to_string(),
                );
                None
            }
            Some(b) => Some(Draft {
                id: format!("{key}/defaultBackend"),
                host: HostMatch::Any,
                path: PathMatch::Any,
                backend: b,
                delegated: false,
            }),
            None => None,
        };
        for d in drafts.iter().chain(default_draft.iter()) {
            if let Err(why) = check_backend(d.backend) {
                reject(reasons::UNSUPPORTED_BACKEND, format!("{}: {why}", d.id));
            }
        }

        // Backends, resolved once per distinct service and port; a refused upstream
        // rejects the Ingress.
        let upstream = Upstream {
            scheme: ann.backend_protocol,
            service_upstream: ann.service_upstream,
        };
        let mut resolved: HashMap<BackendRef<'_>, Resolution> = HashMap::new();
        for d in drafts.iter().chain(default_draft.iter()) {
            let Some(svc) = &d.backend.service else {
                continue;
            };
            let port = svc.port.as_ref();
            let k = (
                svc.name.as_str(),
                port.and_then(|p| p.number),
                port.and_then(|p| p.name.as_deref()),
            );
            if resolved.contains_key(&k) {
                continue;
            }
            let r = self.services.resolve(ns, svc, upstream);
            if let Some((reason, message)) = &r.refusal {
                reject(reason, message.clone());
            }
            if let Some((reason, message)) = &r.warning {
                push_note(&mut notes, NoteType::Warning, reason, message.clone());
            }
            resolved.insert(k, r);
        }

        // Who may pass: the union of every source, or nobody when anything failed.
        let accepted = rejections.is_empty();
        let has_shorthands = ann.shorthands != Default::default();
        let policy = if accepted {
            parts.extend(ann.policy.clone());
            if has_shorthands {
                parts.push(Policy::from_shorthands(&ann.shorthands));
            }
            if parts.is_empty() {
                push_note(
                    &mut notes,
                    NoteType::Warning,
                    reasons::NO_POLICY,
                    "no IdentityPolicy, policy or allow annotation applies: every request is denied"
                        .to_string(),
                );
            }
            Policy::union(parts)
        } else {
            let why: Vec<&str> = rejections.iter().map(|n| n.message.as_str()).collect();
            Policy::deny_all(format!("Ingress {key} is rejected: {}", why.join("; ")))
        };
        let policy = Arc::new(policy);

        let route = |d: Draft<'a>| -> (RouteSpec, bool) {
            let (endpoints, options) = match (accepted, &d.backend.service) {
                (true, Some(svc)) => {
                    let port = svc.port.as_ref();
                    let k = (
                        svc.name.as_str(),
                        port.and_then(|p| p.number),
                        port.and_then(|p| p.name.as_deref()),
                    );
                    let endpoints = resolved
                        .get(&k)
                        .map(|r| r.endpoints.clone())
                        .unwrap_or_default();
                    (endpoints, options.clone())
                }
                _ => (Vec::new(), RouteOptions::default()),
            };
            let spec = RouteSpec {
                id: d.id,
                host: d.host,
                port: None,
                path: d.path,
                backend: BackendSpec {
                    endpoints,
                    balance: ann.load_balancing,
                },
                policy: policy.clone(),
                options,
            };
            (spec, d.delegated)
        };
        let mut routes = Vec::new();
        let mut delegated_routes = Vec::new();
        for (r, delegated) in drafts.into_iter().map(route) {
            if delegated {
                delegated_routes.push(r);
            } else {
                routes.push(r);
            }
        }
        let default_backend = default_draft.map(|d| route(d).0);

        // Certificates: a Secret serves the `spec.tls[].hosts` its namespace owns. A
        // missing or unusable Secret is a warning, not a rejection.
        let mut certificates = Vec::new();
        for (i, tls) in spec.tls.iter().flatten().enumerate() {
            let Some(name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let skey = ObjectKey::new(ns, name);
            let mut names = Vec::new();
            for host in tls.hosts.iter().flatten() {
                let host = host.trim().to_ascii_lowercase();
                match HostMatch::parse(&host) {
                    Ok(m @ (HostMatch::Exact(_) | HostMatch::Wildcard(_)))
                        if owners.owns(ns, &m) =>
                    {
                        names.push(host)
                    }
                    _ => push_note(
                        &mut notes,
                        NoteType::Warning,
                        reasons::TLS_HOST_NOT_OWNED,
                        format!(
                            "spec.tls[{i}]: namespace {ns} does not own host `{host}`; Secret {skey} is not served for it"
                        ),
                    ),
                }
            }
            if names.is_empty() {
                if tls.hosts.as_ref().is_none_or(Vec::is_empty) {
                    push_note(
                        &mut notes,
                        NoteType::Warning,
                        reasons::TLS_HOST_NOT_OWNED,
                        format!(
                            "spec.tls[{i}] lists no hosts, so Secret {skey} serves none; list the hosts it is for"
                        ),
                    );
                }
                continue;
            }
            match self.index.secrets.get(&skey).map(tls_pair) {
                None => push_note(
                    &mut notes,
                    NoteType::Warning,
                    reasons::TLS_SECRET_NOT_FOUND,
                    format!(
                        "spec.tls[{i}]: Secret {skey} not found; the default certificate is served"
                    ),
                ),
                Some(Err(why)) => push_note(
                    &mut notes,
                    NoteType::Warning,
                    reasons::TLS_SECRET_INVALID,
                    format!(
                        "spec.tls[{i}]: Secret {skey} {why}; the default certificate is served"
                    ),
                ),
                Some(Ok((cert, key_pem))) => certificates.push((
                    skey.clone(),
                    PemPair {
                        source_name: format!("secret {skey}"),
                        cert_pem: cert.to_vec(),
                        key_pem: key_pem.to_vec(),
                    },
                    names,
                )),
            }
        }

        if accepted {
            push_note(
                &mut notes,
                NoteType::Normal,
                reasons::ACCEPTED,
                format!(
                    "serving {} route(s) for {}",
                    routes.len() + delegated_routes.len() + usize::from(default_backend.is_some()),
                    if hosts.is_empty() {
                        "any host".to_string()
                    } else {
                        hosts.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            );
        }
        rejections.extend(notes);

        IngressOut {
            report: IngressReport {
                key: key.clone(),
                generation: ingress.metadata.generation,
                accepted,
                notes: rejections,
                hosts: hosts.into_iter().collect(),
                routes: Vec::new(),
                serves_default_backend: false,
                identity_policies: attached.iter().map(|k| (*k).clone()).collect(),
                policy_annotation: ann.policy.is_some(),
                shorthand_annotations: has_shorthands,
            },
            routes,
            delegated_routes,
            default_backend,
            certificates,
            attached,
        }
    }

    fn policy_reports(
        &self,
        ours: &[(&ObjectKey, &IngressEntry)],
        attached: &HashMap<&ObjectKey, i32>,
        gateway: &super::gateway::GatewayTranslation,
    ) -> Vec<IdentityPolicyReport> {
        let our_keys: HashSet<&ObjectKey> = ours.iter().map(|(k, _)| *k).collect();
        self.index
            .policies
            .items
            .iter()
            .map(|(key, entry)| {
                let accepted = match (&entry.rules, &entry.selector) {
                    (Err(e), _) => ConditionState {
                        status: false,
                        reason: REASON_INVALID_RULES,
                        message: e.to_string(),
                    },
                    (_, Err(e)) => ConditionState {
                        status: false,
                        reason: reasons::INVALID_SELECTOR,
                        message: e.clone(),
                    },
                    _ => ConditionState {
                        status: true,
                        reason: REASON_VALID,
                        message: String::new(),
                    },
                };

                let mut reason = REASON_REFS_RESOLVED;
                let mut problems = Vec::new();
                let reached = gateway.policies.get(key);
                for (i, t) in entry.policy.spec.target_refs.iter().enumerate() {
                    let target = ObjectKey::new(&key.namespace, &t.name);
                    if let Some(kind) = t.gateway_kind() {
                        let found = reached
                            .is_some_and(|r| r.targets.iter().any(|(k, tk)| *k == kind && *tk == target));
                        if !found {
                            if reason == REASON_REFS_RESOLVED {
                                reason = REASON_TARGET_NOT_FOUND;
                            }
                            problems.push(format!(
                                "targetRefs[{i}]: {kind} {target} not found, or not attached to a Gateway of a Portcullis GatewayClass"
                            ));
                        }
                    } else if !t.is_ingress() {
                        reason = REASON_INVALID_KIND;
                        problems.push(format!(
                            "targetRefs[{i}]: {}/{} is not networking.k8s.io/Ingress",
                            t.group, t.kind
                        ));
                    } else if !our_keys.contains(&target) {
                        if reason == REASON_REFS_RESOLVED {
                            reason = REASON_TARGET_NOT_FOUND;
                        }
                        let why = if self.index.ingresses.get(&target).is_some() {
                            "is not of a Portcullis IngressClass"
                        } else {
                            "not found"
                        };
                        problems.push(format!("targetRefs[{i}]: Ingress {target} {why}"));
                    }
                }
                IdentityPolicyReport {
                    key: key.clone(),
                    generation: entry.policy.metadata.generation,
                    attached_ingresses: attached.get(key).copied().unwrap_or(0),
                    attached_routes: reached.map_or(0, |r| r.routes),
                    ancestors: reached.map(|r| r.ancestors.clone()).unwrap_or_default(),
                    accepted,
                    resolved_refs: ConditionState {
                        status: problems.is_empty(),
                        reason,
                        message: problems.join("; "),
                    },
                }
            })
            .collect()
    }
}

/// Adds a note unless an equal one is there already (several paths, one Service).
pub(super) fn push_note(
    notes: &mut Vec<Note>,
    type_: NoteType,
    reason: &'static str,
    message: String,
) {
    if !notes
        .iter()
        .any(|n| n.reason == reason && n.message == message)
    {
        notes.push(Note {
            type_,
            reason,
            message,
        });
    }
}

/// An Ingress path with Kubernetes' meaning; `ImplementationSpecific` is a prefix, or an
/// anchored regex with `path-regex`.
/// `regex_error` is what admission found compiling this path's regex, if anything.
fn path_match(
    p: &HTTPIngressPath,
    ann: &IngressAnnotations,
    regex_error: Option<&String>,
) -> Result<PathMatch, String> {
    let path = p.path.as_deref().unwrap_or_default();
    let m = match p.path_type.as_str() {
        "Exact" => PathMatch::Exact(path.to_string()),
        "Prefix" => PathMatch::SegmentPrefix(path.to_string()),
        "ImplementationSpecific" if path.is_empty() => PathMatch::Any,
        "ImplementationSpecific" if ann.path_regex => PathMatch::Regex(path.to_string()),
        "ImplementationSpecific" => PathMatch::SegmentPrefix(path.to_string()),
        other => {
            return Err(format!(
                "unknown pathType `{other}`; use Exact, Prefix or ImplementationSpecific"
            ));
        }
    };
    match (&m, regex_error) {
        (PathMatch::Regex(_), Some(why)) => Err(format!("invalid path regex: {why}")),
        // Compiled once at admission; not again on every translation.
        (PathMatch::Regex(_), None) => Ok(m),
        _ => m.validate().map(|()| m),
    }
}

/// What an Ingress says about hosts, for [`Owners::decide`]. Delegations count only
/// from an Ingress whose annotations are all valid.
fn claim<'e>(key: &'e ObjectKey, entry: &'e IngressEntry) -> Claim<'e> {
    let rules = entry.ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
    let hosts = rules
        .into_iter()
        .flatten()
        .filter_map(|r| r.host.as_deref())
        .filter_map(|h| match HostMatch::parse(h) {
            Ok(HostMatch::Any) | Err(_) => None,
            Ok(m) => Some(m),
        })
        .collect();
    let delegates: &[String] = if entry.annotations.errors.is_empty() {
        &entry.annotations.values.delegates
    } else {
        &[]
    };
    Claim {
        namespace: &key.namespace,
        hosts,
        delegates,
    }
}

/// Exact hosts that must get the default certificate rather than a wildcard Secret of
/// a namespace that does not own them.
fn pinned_hosts(
    certificates: &BTreeMap<ObjectKey, ScopedPair>,
    claims: &[Claim<'_>],
    owners: &Owners,
) -> Vec<String> {
    // Wildcard parent → namespaces whose Secrets serve `*.parent`.
    let mut wildcards: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (key, c) in certificates {
        for n in &c.names {
            if let Some(parent) = n.strip_prefix("*.") {
                wildcards
                    .entry(parent)
                    .or_default()
                    .insert(key.namespace.as_str());
            }
        }
    }
    let exact = claims
        .iter()
        .flat_map(|c| c.hosts.iter())
        .filter_map(|h| match h {
            HostMatch::Exact(h) => Some(h.clone()),
            _ => None,
        })
        .chain(owners.exclusive_hosts());
    let mut pinned: BTreeSet<String> = BTreeSet::new();
    for host in exact {
        let Some((_, parent)) = host.split_once('.') else {
            continue;
        };
        let Some(namespaces) = wildcards.get(parent) else {
            continue;
        };
        let m = HostMatch::Exact(host.clone());
        if namespaces.iter().any(|ns| !owners.owns(ns, &m)) {
            pinned.insert(host);
        }
    }
    pinned.into_iter().collect()
}

fn check_backend(b: &IngressBackend) -> Result<(), String> {
    match (&b.service, &b.resource) {
        (Some(_), None) => Ok(()),
        (_, Some(r)) => Err(format!(
            "resource backends ({}) are not supported; use a Service",
            r.kind
        )),
        (None, None) => Err("the backend names no Service".to_string()),
    }
}

/// The certificate and key of a TLS Secret.
pub(super) fn tls_pair(s: &k8s_openapi::api::core::v1::Secret) -> Result<(&[u8], &[u8]), String> {
    if s.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(format!(
            "is of type {}, not {TLS_SECRET_TYPE}",
            s.type_.as_deref().unwrap_or("Opaque")
        ));
    }
    let get = |k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
    };
    match (get(TLS_CERT_KEY), get(TLS_KEY_KEY)) {
        (Some(c), Some(k)) => Ok((c, k)),
        _ => Err(format!("lacks `{TLS_CERT_KEY}` or `{TLS_KEY_KEY}`")),
    }
}
