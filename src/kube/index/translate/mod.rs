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
//!
//! Here: the order, ownership and conflicts across Ingresses. One Ingress is translated
//! in [`ingress`] (its rules in [`rules`], its certificates in [`tls`]); IdentityPolicy
//! reports in [`policies`]; Gateway API objects in `kube::index::gateway`.

mod ingress;
mod policies;
mod rules;
mod tls;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::Ingress;

use super::backend::Services;
use super::ownership::{Claim, Owners};
use super::report::{IngressReport, Note, NoteType, Translation, reasons};
use super::selector::Selector;
use super::store::IngressEntry;
use super::upstreams::UpstreamRules;
use super::{DEFAULT_CLASS_ANNOTATION, Index, LEGACY_CLASS_ANNOTATION, ObjectKey};
use crate::routes::certs::{PemPair, ScopedPair};
use crate::routes::{HostMatch, Model, PathMatch, RouteSpec};
use tls::pinned_hosts;

pub(super) use tls::tls_pair;

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
