//! The index: every cluster object routing depends on, kept by key, and the pure
//! translation of them into the plain [`crate::routes::Model`] plus the reports the
//! status writer turns into Ingress events and IdentityPolicy conditions.
//!
//! The linkerd2 policy-controller habit: watchers `apply`, `delete` and `reset` (on every
//! re-list, which reconciles deletions missed while a watch was down) objects here; the
//! caller then asks for a [`Translation`] snapshot. No I/O, no async, no clock: the same
//! objects always give the same translation. A malformed object is skipped and reported
//! as [`Malformed`], never a panic, so one bad object cannot stop a watch.
//!
//! Every kind is kept the same way: [`Index::apply`], [`Index::delete`] and
//! [`Index::reset_scoped`] work for any [`Indexed`] kind, and a kind says only where its
//! objects are stored and what is kept of one ([`kinds`]).
//!
//! Driving it from `kube::runtime::watcher` events: keep one [`Relist`] per watcher (per
//! kind, or per kind and namespace when watching a namespace list) and pass each event to
//! [`Relist::handle`]; rebuild (debounced) when it says `changed`. A namespaced watcher's
//! `Relist` is [`Relist::scoped`] so its re-list replaces only its own namespace's objects.

mod backend;
pub mod gateway;
mod kinds;
pub mod ownership;
mod relist;
mod report;
mod selector;
mod store;
mod translate;
mod upstreams;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::routes::AddressPolicy;

pub use kinds::Indexed;
pub use ownership::{HostGrant, HostOwnership, Reserved};
pub use relist::Relist;
pub use report::{ConditionState, IdentityPolicyReport, NoteType, Translation, reasons};

use store::{IngressEntry, PolicyEntry, Store};

/// `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER_NAME: &str = "portcullis.dev/ingress-controller";
/// Name of our IngressClass unless configured otherwise.
pub const DEFAULT_CLASS_NAME: &str = "portcullis";
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The legacy class annotation, read when `spec.ingressClassName` is not set.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks an IngressClass as the default for Ingresses that name none.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// Label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the index serves and how it names things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `spec.controller` of our IngressClasses.
    pub controller_name: String,
    /// The class name the legacy `kubernetes.io/ingress.class` annotation must carry.
    pub class_name: String,
    /// When not empty, only namespaced objects of these namespaces are indexed.
    pub namespaces: Vec<String>,
    /// Suffix of Service DNS names for `service-upstream`.
    pub cluster_domain: String,
    /// What one namespace's Ingresses may reach (docs/security.md).
    pub tenancy: Tenancy,
    /// Gateway API (`--gateway-api`); `None`: its objects are not watched.
    pub gateway: Option<gateway::GatewaySettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            controller_name: CONTROLLER_NAME.to_string(),
            class_name: DEFAULT_CLASS_NAME.to_string(),
            namespaces: Vec::new(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            tenancy: Tenancy::default(),
            gateway: None,
        }
    }
}

/// The boundaries between namespaces that the cluster admin sets (controller flags and
/// Helm values). The defaults are the safe ones: first-come host ownership, no
/// catch-all rules or default backend anywhere, no ExternalName Services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// Who owns a host (`--host-owner`, `--shared-hosts`).
    pub hosts: HostOwnership,
    /// Namespaces whose Ingresses may have rules without a host and `defaultBackend`
    /// (`--catch-all-namespace`; `*`: every namespace).
    pub catch_all_namespaces: Vec<String>,
    /// Hosts no Ingress may name: the `authenticate_service_url` host and the config
    /// file's route hosts.
    pub reserved: Reserved,
    /// Header names of `jwt_claims_headers`: identity headers no annotation may set.
    pub claim_headers: Vec<String>,
    /// `--allow-external-name-services`: follow ExternalName Services (and FQDN
    /// EndpointSlices). Even then, the address rules apply.
    pub allow_external_names: bool,
    /// Addresses backends may not reach (`--blocked-upstream-cidr`, and the test-only
    /// loopback flag).
    pub upstreams: AddressPolicy,
    /// Ports of Portcullis's own listeners, refused on loopback even with the test flag.
    pub own_ports: Vec<u16>,
    /// The controller's own namespace: short names resolve there.
    pub controller_namespace: String,
}

/// Every namespace, in `--catch-all-namespace`.
pub const ANY_NAMESPACE: &str = "*";

impl Tenancy {
    /// Whether Ingresses of `namespace` may have host-less rules and `defaultBackend`.
    pub fn may_catch_all(&self, namespace: &str) -> bool {
        self.catch_all_namespaces
            .iter()
            .any(|n| n == namespace || n == ANY_NAMESPACE)
    }
}

/// `namespace/name` of an object; cluster-scoped objects have an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a namespaced object.
    pub fn namespaced(kind: &'static str, meta: &ObjectMeta) -> Result<Self, Malformed> {
        let name = meta.name.as_deref().filter(|n| !n.is_empty());
        let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
        match (namespace, name) {
            (Some(ns), Some(n)) => Ok(ObjectKey::new(ns, n)),
            (_, None) => Err(Malformed::new(kind, meta, "has no metadata.name")),
            (None, _) => Err(Malformed::new(kind, meta, "has no metadata.namespace")),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(kind: &'static str, meta: &ObjectMeta) -> Result<Self, Malformed> {
        match meta.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => Ok(ObjectKey::new("", n)),
            None => Err(Malformed::new(kind, meta, "has no metadata.name")),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// An object the index skipped because it lacks what every object must have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skipped malformed {kind} {name}: {reason}")]
pub struct Malformed {
    pub kind: &'static str,
    /// Whatever name the object has, for the log line.
    pub name: String,
    pub reason: String,
}

impl Malformed {
    fn new(kind: &'static str, meta: &ObjectMeta, reason: &str) -> Self {
        Malformed {
            kind,
            name: format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or("?"),
                meta.name.as_deref().unwrap_or("?")
            ),
            reason: reason.to_string(),
        }
    }
}

/// What a re-list did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reset {
    /// The indexed set differs from before (something added, changed or removed).
    pub changed: bool,
    /// Objects skipped as malformed.
    pub malformed: Vec<Malformed>,
}

/// Every object translation reads, by kind and key.
#[derive(Debug, Clone, Default)]
pub struct Index {
    settings: Settings,
    ingresses: Store<IngressEntry>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    policies: Store<PolicyEntry>,
    gateway_classes: Store<GatewayClass>,
    gateways: Store<Gateway>,
    http_routes: Store<HTTPRoute>,
    reference_grants: Store<ReferenceGrant>,
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
}

// === impl Index ===

impl Index {
    pub fn new(settings: Settings) -> Self {
        Index {
            settings,
            ..Index::default()
        }
    }

    /// Adds or replaces an object (what is kept of it is the kind's business; see
    /// [`kinds`]). `Ok(true)` when what translation reads changed.
    pub fn apply<K: Indexed>(&mut self, obj: K) -> Result<bool, Malformed> {
        let (key, entry) = K::admit(&self.settings, obj)?;
        Ok(K::store(self).apply(key, entry))
    }

    /// Removes the object `namespace/name` (of a cluster-scoped kind: `name`, whatever
    /// `namespace` says); `true` when it was indexed.
    pub fn delete<K: Indexed>(&mut self, namespace: &str, name: &str) -> bool {
        let namespace = if K::CLUSTER_SCOPED { "" } else { namespace };
        K::store(self).delete(&ObjectKey::new(namespace, name))
    }

    /// Replaces every object of a kind with a fresh list (a cluster-wide re-list).
    #[cfg(test)]
    pub fn reset<K: Indexed>(&mut self, objs: Vec<K>) -> Reset {
        self.reset_scoped(objs, None)
    }

    /// Replaces the objects of a kind with a fresh list within `scope`: `None` replaces
    /// all of them (a cluster-wide re-list), `Some(ns)` only those of namespace `ns`
    /// (that namespace's watcher re-listed); others stay. A cluster-scoped kind is
    /// listed by one cluster-wide watcher: its re-list always replaces them all.
    pub fn reset_scoped<K: Indexed>(&mut self, objs: Vec<K>, scope: Option<&str>) -> Reset {
        let scope = if K::CLUSTER_SCOPED { None } else { scope };
        let mut reset = Reset::default();
        let mut entries = BTreeMap::new();
        for obj in objs {
            match K::admit(&self.settings, obj) {
                Ok((key, Some(entry))) => {
                    entries.insert(key, entry);
                }
                Ok((_, None)) => {}
                Err(m) => reset.malformed.push(m),
            }
        }
        reset.changed = K::store(self).reset_scoped(entries, scope);
        reset
    }
}
