//! Gateway API objects → the routing model's Gateway ports, and the reports the status
//! writer turns into GatewayClass, Gateway and HTTPRoute status. Pure, like the rest
//! of the index.
//!
//! In order: our GatewayClasses ([`classes`]); their Gateways and listeners, each
//! checked as the spec defines ([`listeners`]); the local ports and Services that give
//! Gateways their addresses ([`ports`]); HTTPRoutes attached to listeners by
//! `parentRefs`, `allowedRoutes` and hostname intersection, with their rules, filters
//! and backends ([`routes`]); ReferenceGrants for every reference across namespaces
//! ([`refs`]).
//!
//! Tenancy (docs/security.md) through Gateway API's own model: a listener admits the
//! namespaces its `allowedRoutes` names; a Secret or Service of another namespace needs
//! that namespace's ReferenceGrant; HTTPRoute hostnames and listener hostnames claim
//! hosts like Ingress rules do (one [`Owners`] decision for both), and a route may use
//! a hostname its namespace owns, or one its Gateway's namespace owns and names on the
//! listener the route attached to.

mod classes;
mod listeners;
pub mod ports;
mod refs;
mod routes;
pub(super) mod store;

use std::collections::BTreeMap;

use super::ObjectKey;
use super::ownership::{Claim, Owners};
use super::report::{ConditionState, Note};
use crate::kube::gateway::api::ParentReference;
use crate::routes::HostMatch;
use crate::routes::certs::PemPair;
use crate::routes::gateway::GatewayPortSpec;

pub use ports::service_name;

/// What the Gateway side serves, and how it names things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// `GatewayClass.spec.controllerName` of our classes.
    pub controller_name: String,
    /// Local ports Gateways' sockets take (inclusive).
    pub local_ports: (u16, u16),
    /// Labels of the Portcullis Pods: the selector of provisioned Services.
    pub pod_selector: BTreeMap<String, String>,
    /// `spec.type` of provisioned Services (`ClusterIP`, `NodePort`, `LoadBalancer`).
    pub service_type: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            controller_name: crate::kube::gateway::CONTROLLER_NAME.to_string(),
            local_ports: DEFAULT_LOCAL_PORTS,
            pod_selector: BTreeMap::new(),
            service_type: "ClusterIP".to_string(),
        }
    }
}

/// `--gateway-port-range` unless given: away from the well-known ports, ephemeral
/// ports (32768+) and NodePorts (30000-32767).
pub const DEFAULT_LOCAL_PORTS: (u16, u16) = (20000, 29999);

/// The Extended features our GatewayClasses claim in `status.supportedFeatures`, and
/// the conformance suite runs.
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

// === reports ===

/// The Gateway side of one translation.
#[derive(Debug, Clone, Default)]
pub struct GatewayTranslation {
    /// Our GatewayClasses, by name.
    pub classes: Vec<GatewayClassReport>,
    /// Gateways of our classes, by key.
    pub gateways: Vec<GatewayReport>,
    /// HTTPRoutes with a parentRef to one of our Gateways, by key.
    pub routes: Vec<RouteReport>,
    /// The Services that give our Gateways their addresses.
    pub services: Vec<GatewayService>,
    /// Certificates per TLS socket, by local port.
    pub certificates: Vec<SocketCertificates>,
    /// The Gateway ports to serve (also in the model).
    pub ports: Vec<GatewayPortSpec>,
    /// IdentityPolicies attached to HTTPRoutes or Gateways: policy → what it reached.
    pub policies: BTreeMap<ObjectKey, PolicyAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayClassReport {
    pub name: String,
    pub generation: Option<i64>,
    pub accepted: ConditionState,
    pub supported_features: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayReport {
    pub key: ObjectKey,
    /// `metadata.uid`: a Gateway deleted and made again under its name is another object.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// `(type, state)`: Accepted, Programmed, ResolvedRefs.
    pub conditions: Vec<(&'static str, ConditionState)>,
    pub listeners: Vec<ListenerReport>,
    /// `(type, value)`: `IPAddress` or `Hostname`.
    pub addresses: Vec<(&'static str, String)>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerReport {
    pub name: String,
    pub attached_routes: i32,
    /// `(group, kind)`.
    pub supported_kinds: Vec<(String, String)>,
    /// Accepted, Programmed, ResolvedRefs, Conflicted.
    pub conditions: Vec<(&'static str, ConditionState)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteReport {
    pub key: ObjectKey,
    /// `metadata.uid`: a route deleted and made again under its name is another object.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub parents: Vec<ParentReport>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentReport {
    /// As the route wrote it, with group and kind spelt out.
    pub parent_ref: ParentReference,
    /// Accepted and ResolvedRefs.
    pub conditions: Vec<(&'static str, ConditionState)>,
}

/// A Service Portcullis provisions for a Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayService {
    pub name: String,
    pub gateway: ObjectKey,
    /// `(Gateway port, local port)`.
    pub ports: Vec<(u16, u16)>,
}

/// The certificates of one TLS socket: `(listener hostname, pair)`; a listener
/// without hostname gives the socket's default certificate.
#[derive(Clone)]
pub struct SocketCertificates {
    pub local_port: u16,
    pub pairs: Vec<(Option<String>, PemPair)>,
}

impl std::fmt::Debug for SocketCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: key material never reaches a log line.
        let names: Vec<(&Option<String>, &str)> = self
            .pairs
            .iter()
            .map(|(h, p)| (h, p.source_name.as_str()))
            .collect();
        f.debug_struct("SocketCertificates")
            .field("local_port", &self.local_port)
            .field("pairs", &names)
            .finish()
    }
}

/// What one IdentityPolicy reached on the Gateway side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyAttachment {
    /// HTTPRoutes and Gateways it names that exist, by kind and key.
    pub targets: Vec<(&'static str, ObjectKey)>,
    /// Gateways it applies under (its Gateway, or its routes' Gateways), for the
    /// policy's `status.ancestors`.
    pub ancestors: Vec<ObjectKey>,
    /// HTTPRoutes it decides (directly, or as their Gateway's baseline).
    pub routes: i32,
}

/// A claim on hosts by an HTTPRoute or a Gateway, with its age for ordering.
#[derive(Debug, Clone)]
pub struct OwnedClaim {
    pub namespace: String,
    pub hosts: Vec<HostMatch>,
    /// `(missing last, creation time)`, then the object's kind and key, for a stable
    /// order with Ingresses.
    pub age: (bool, Option<jiff::Timestamp>),
    pub key: ObjectKey,
}

impl OwnedClaim {
    pub fn claim(&self) -> Claim<'_> {
        Claim {
            namespace: &self.namespace,
            hosts: self.hosts.clone(),
            delegates: &[],
        }
    }
}

/// `(missing last, creation time)` of an object, the order claims and routes go in.
pub(super) fn age(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (bool, Option<jiff::Timestamp>) {
    let t = meta.creation_timestamp.as_ref().map(|t| t.0);
    (t.is_none(), t)
}

/// A Gateway API hostname as the ownership rules read it: `*.x` as the wildcard on
/// `x` (which, for ownership, covers the names one label below; deeper names under a
/// Gateway wildcard are checked one by one where they are exact).
pub(super) fn ownership_host(h: &crate::routes::gateway::GatewayHost) -> HostMatch {
    match h {
        crate::routes::gateway::GatewayHost::Exact(h) => HostMatch::Exact(h.clone()),
        crate::routes::gateway::GatewayHost::Wildcard(s) => HostMatch::Wildcard(s.clone()),
    }
}

/// Translates the Gateway side; `owners` must come from [`claims`] merged with the
/// Ingress claims.
pub(super) fn translate(
    index: &super::Index,
    services: &super::backend::Services<'_>,
    owners: &Owners,
) -> GatewayTranslation {
    let Some(settings) = index.settings.gateway.as_ref() else {
        return GatewayTranslation::default();
    };
    let classes = classes::evaluate(index, settings);
    let mut gateways = listeners::evaluate(index, settings, &classes);
    let routes = routes::attach(index, services, owners, &mut gateways);
    let mut out = GatewayTranslation {
        classes: classes.reports(),
        ..GatewayTranslation::default()
    };
    out.routes = routes.reports;
    out.policies = routes.policies;
    listeners::finish(index, settings, owners, gateways, &mut out);
    out
}

/// Host claims of HTTPRoutes and Gateway listeners of our classes, oldest first.
pub(super) fn claims(index: &super::Index) -> Vec<OwnedClaim> {
    let Some(settings) = index.settings.gateway.as_ref() else {
        return Vec::new();
    };
    let classes = classes::evaluate(index, settings);
    let mut out = Vec::new();
    let mut claim = |key: &ObjectKey, meta, hostnames: Vec<&str>| {
        let hosts: Vec<HostMatch> = hostnames
            .into_iter()
            .filter_map(|h| routes::parse_hostname(h).ok())
            .map(|h| ownership_host(&h))
            .collect();
        if !hosts.is_empty() {
            out.push(OwnedClaim {
                namespace: key.namespace.clone(),
                hosts,
                age: age(meta),
                key: key.clone(),
            });
        }
    };
    for (key, gw) in &index.gateways.items {
        if classes.serves(&gw.spec.gateway_class_name) {
            let hostnames = gw
                .spec
                .listeners
                .iter()
                .filter_map(|l| l.hostname.as_deref());
            claim(key, &gw.metadata, hostnames.collect());
        }
    }
    for (key, route) in &index.http_routes.items {
        let ours = route.spec.parent_refs.iter().any(|p| {
            routes::parent_gateway(key, p).is_some_and(|gk| {
                index
                    .gateways
                    .get(&gk)
                    .is_some_and(|g| classes.serves(&g.spec.gateway_class_name))
            })
        });
        if ours {
            let hostnames = route.spec.hostnames.iter().map(String::as_str);
            claim(key, &route.metadata, hostnames.collect());
        }
    }
    out.sort_by(|a, b| a.age.cmp(&b.age).then_with(|| a.key.cmp(&b.key)));
    out
}
