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
//! Driving it from `kube::runtime::watcher` events: keep one [`Relist`] per watcher (per
//! kind, or per kind and namespace when watching a namespace list) and pass each event to
//! [`Relist::handle`]; rebuild (debounced) when it says `changed`. A namespaced watcher's
//! `Relist` is [`Relist::scoped`] so its re-list replaces only its own namespace's objects.

mod backend;
pub mod gateway;
pub mod ownership;
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
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;

use super::crd::IdentityPolicy;
use super::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::routes::AddressPolicy;

pub use ownership::{HostGrant, HostOwnership, Reserved};
pub use report::{
    ConditionState, IdentityPolicyReport, IngressReport, Note, NoteType, Translation, reasons,
};

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

/// What `store::admit_X` makes of one object: its key, and what is kept of it (`None`:
/// nothing, the object is of no interest).
type Admit<T, E> = fn(&Settings, T) -> Result<(ObjectKey, Option<E>), Malformed>;

/// Admits a re-listed set of objects and resets `store` to it within `scope` (see
/// [`Store::reset_scoped`]).
fn relist<T, E: store::Content>(
    settings: &Settings,
    store: &mut Store<E>,
    admit: Admit<T, E>,
    objs: Vec<T>,
    scope: Option<&str>,
) -> Reset {
    let mut reset = Reset::default();
    let mut entries = BTreeMap::new();
    for obj in objs {
        match admit(settings, obj) {
            Ok((key, Some(entry))) => {
                entries.insert(key, entry);
            }
            Ok((_, None)) => {}
            Err(m) => reset.malformed.push(m),
        }
    }
    reset.changed = store.reset_scoped(entries, scope);
    reset
}

/// `apply_X`, `delete_X`, `reset_X` and `reset_X_scoped` for one namespaced kind: the
/// stores do the bookkeeping, `store::admit_X` decides what is kept of an object.
macro_rules! kind_methods {
    (
        $ty:ty, $store:ident, $admit:path, $apply:ident, $delete:ident, $reset:ident,
        $reset_scoped:ident, $doc:literal
    ) => {
        #[doc = concat!("Adds or replaces ", $doc, ". `Ok(true)` when what translation reads changed.")]
        pub fn $apply(&mut self, obj: $ty) -> Result<bool, Malformed> {
            let (key, entry) = $admit(&self.settings, obj)?;
            Ok(self.$store.apply(key, entry))
        }

        #[doc = concat!("Removes ", $doc, "; `true` when it was indexed.")]
        pub fn $delete(&mut self, namespace: &str, name: &str) -> bool {
            self.$store.delete(&ObjectKey::new(namespace, name))
        }

        #[doc = concat!("Replaces every ", $doc, " with a fresh list (a cluster-wide re-list).")]
        pub fn $reset(&mut self, objs: Vec<$ty>) -> Reset {
            self.$reset_scoped(objs, None)
        }

        #[doc = concat!("Replaces ", $doc, " with a fresh list within `scope`: `None` ")]
        #[doc = "replaces all of them (a cluster-wide re-list), `Some(ns)` only those of"]
        #[doc = "namespace `ns` (that namespace's watcher re-listed); others stay."]
        pub fn $reset_scoped(&mut self, objs: Vec<$ty>, scope: Option<&str>) -> Reset {
            relist(&self.settings, &mut self.$store, $admit, objs, scope)
        }
    };
}

impl Index {
    pub fn new(settings: Settings) -> Self {
        Index {
            settings,
            ..Index::default()
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    kind_methods!(
        Ingress,
        ingresses,
        store::admit_ingress,
        apply_ingress,
        delete_ingress,
        reset_ingresses,
        reset_ingresses_scoped,
        "an Ingress"
    );
    kind_methods!(
        Service,
        services,
        store::admit_service,
        apply_service,
        delete_service,
        reset_services,
        reset_services_scoped,
        "a Service"
    );
    kind_methods!(
        EndpointSlice,
        slices,
        store::admit_endpoint_slice,
        apply_endpoint_slice,
        delete_endpoint_slice,
        reset_endpoint_slices,
        reset_endpoint_slices_scoped,
        "an EndpointSlice"
    );
    kind_methods!(
        Secret,
        secrets,
        store::admit_secret,
        apply_secret,
        delete_secret,
        reset_secrets,
        reset_secrets_scoped,
        "a Secret (only TLS and CA Secrets are kept)"
    );
    kind_methods!(
        IdentityPolicy,
        policies,
        store::admit_identity_policy,
        apply_identity_policy,
        delete_identity_policy,
        reset_identity_policies,
        reset_identity_policies_scoped,
        "an IdentityPolicy"
    );

    kind_methods!(
        Gateway,
        gateways,
        gateway::store::admit_gateway,
        apply_gateway,
        delete_gateway,
        reset_gateways,
        reset_gateways_scoped,
        "a Gateway"
    );
    kind_methods!(
        HTTPRoute,
        http_routes,
        gateway::store::admit_http_route,
        apply_http_route,
        delete_http_route,
        reset_http_routes,
        reset_http_routes_scoped,
        "an HTTPRoute"
    );
    kind_methods!(
        ReferenceGrant,
        reference_grants,
        gateway::store::admit_reference_grant,
        apply_reference_grant,
        delete_reference_grant,
        reset_reference_grants,
        reset_reference_grants_scoped,
        "a ReferenceGrant"
    );
    kind_methods!(
        ConfigMap,
        config_maps,
        gateway::store::admit_config_map,
        apply_config_map,
        delete_config_map,
        reset_config_maps,
        reset_config_maps_scoped,
        "a ConfigMap (only the controller namespace's are kept)"
    );

    /// Adds or replaces a GatewayClass (only ours are kept).
    pub fn apply_gateway_class(&mut self, obj: GatewayClass) -> Result<bool, Malformed> {
        let (key, entry) = gateway::store::admit_gateway_class(&self.settings, obj)?;
        Ok(self.gateway_classes.apply(key, entry))
    }

    /// Removes a GatewayClass (cluster-scoped: by name).
    pub fn delete_gateway_class(&mut self, name: &str) -> bool {
        self.gateway_classes.delete(&ObjectKey::new("", name))
    }

    /// Adds or replaces a Namespace (its labels).
    pub fn apply_namespace(&mut self, obj: Namespace) -> Result<bool, Malformed> {
        let (key, entry) = gateway::store::admit_namespace(&self.settings, obj)?;
        Ok(self.namespaces.apply(key, entry))
    }

    /// Removes a Namespace (by name).
    pub fn delete_namespace(&mut self, name: &str) -> bool {
        self.namespaces.delete(&ObjectKey::new("", name))
    }

    /// Adds or replaces an IngressClass. `Ok(true)` when what translation reads changed.
    pub fn apply_ingress_class(&mut self, obj: IngressClass) -> Result<bool, Malformed> {
        let (key, entry) = store::admit_ingress_class(&self.settings, obj)?;
        Ok(self.classes.apply(key, entry))
    }

    /// Removes an IngressClass (cluster-scoped: by name); `true` when it was indexed.
    pub fn delete_ingress_class(&mut self, name: &str) -> bool {
        self.classes.delete(&ObjectKey::new("", name))
    }

    /// Replaces every IngressClass with a fresh list (a watcher re-list).
    pub fn reset_ingress_classes(&mut self, objs: Vec<IngressClass>) -> Reset {
        relist(
            &self.settings,
            &mut self.classes,
            store::admit_ingress_class,
            objs,
            None,
        )
    }
}

// === impl Indexed ===

/// A kind the index keeps, so one generic [`Relist`] can drive every watcher.
pub trait Indexed: Sized {
    /// The kind, for log lines.
    const KIND: &'static str;
    fn apply_to(index: &mut Index, obj: Self) -> Result<bool, Malformed>;
    fn delete_from(index: &mut Index, obj: &Self) -> bool;
    /// A re-list: replaces this kind's objects within `scope` (`None`: all of them,
    /// `Some(ns)`: those of namespace `ns`).
    fn reset_in(index: &mut Index, objs: Vec<Self>, scope: Option<&str>) -> Reset;
}

macro_rules! indexed {
    ($ty:ty, $kind:literal, $apply:ident, $delete:ident, $reset:ident) => {
        impl Indexed for $ty {
            const KIND: &'static str = $kind;
            fn apply_to(index: &mut Index, obj: Self) -> Result<bool, Malformed> {
                index.$apply(obj)
            }
            fn delete_from(index: &mut Index, obj: &Self) -> bool {
                let m = &obj.metadata;
                index.$delete(
                    m.namespace.as_deref().unwrap_or_default(),
                    m.name.as_deref().unwrap_or_default(),
                )
            }
            fn reset_in(index: &mut Index, objs: Vec<Self>, scope: Option<&str>) -> Reset {
                index.$reset(objs, scope)
            }
        }
    };
}

indexed!(
    Ingress,
    "Ingress",
    apply_ingress,
    delete_ingress,
    reset_ingresses_scoped
);
indexed!(
    Service,
    "Service",
    apply_service,
    delete_service,
    reset_services_scoped
);
indexed!(
    EndpointSlice,
    "EndpointSlice",
    apply_endpoint_slice,
    delete_endpoint_slice,
    reset_endpoint_slices_scoped
);
indexed!(
    Secret,
    "Secret",
    apply_secret,
    delete_secret,
    reset_secrets_scoped
);
indexed!(
    IdentityPolicy,
    "IdentityPolicy",
    apply_identity_policy,
    delete_identity_policy,
    reset_identity_policies_scoped
);

indexed!(
    Gateway,
    "Gateway",
    apply_gateway,
    delete_gateway,
    reset_gateways_scoped
);
indexed!(
    HTTPRoute,
    "HTTPRoute",
    apply_http_route,
    delete_http_route,
    reset_http_routes_scoped
);
indexed!(
    ReferenceGrant,
    "ReferenceGrant",
    apply_reference_grant,
    delete_reference_grant,
    reset_reference_grants_scoped
);
indexed!(
    ConfigMap,
    "ConfigMap",
    apply_config_map,
    delete_config_map,
    reset_config_maps_scoped
);

/// A cluster-scoped kind: applied and deleted by name; a re-list replaces them all.
macro_rules! indexed_cluster {
    ($ty:ty, $kind:literal, $apply:ident, $delete:ident, $store:ident, $admit:path) => {
        impl Indexed for $ty {
            const KIND: &'static str = $kind;
            fn apply_to(index: &mut Index, obj: Self) -> Result<bool, Malformed> {
                index.$apply(obj)
            }
            fn delete_from(index: &mut Index, obj: &Self) -> bool {
                index.$delete(obj.metadata.name.as_deref().unwrap_or_default())
            }
            fn reset_in(index: &mut Index, objs: Vec<Self>, _scope: Option<&str>) -> Reset {
                relist(&index.settings, &mut index.$store, $admit, objs, None)
            }
        }
    };
}

indexed_cluster!(
    GatewayClass,
    "GatewayClass",
    apply_gateway_class,
    delete_gateway_class,
    gateway_classes,
    gateway::store::admit_gateway_class
);
indexed_cluster!(
    Namespace,
    "Namespace",
    apply_namespace,
    delete_namespace,
    namespaces,
    gateway::store::admit_namespace
);

impl Indexed for IngressClass {
    const KIND: &'static str = "IngressClass";
    fn apply_to(index: &mut Index, obj: Self) -> Result<bool, Malformed> {
        index.apply_ingress_class(obj)
    }
    fn delete_from(index: &mut Index, obj: &Self) -> bool {
        index.delete_ingress_class(obj.metadata.name.as_deref().unwrap_or_default())
    }
    /// IngressClasses are cluster-scoped and watched by one cluster-wide watcher: a
    /// re-list always replaces them all.
    fn reset_in(index: &mut Index, objs: Vec<Self>, _scope: Option<&str>) -> Reset {
        index.reset_ingress_classes(objs)
    }
}

// === impl Relist ===

/// Turns one watcher's event stream into index calls: `Apply`/`Delete` go straight
/// through; `Init` … `InitApply`* … `InitDone` is buffered and becomes one `reset`, so
/// objects deleted while the watch was down disappear, and a half-listed set is never
/// translated. A [`Relist::scoped`] tracker feeds a watcher of one namespace: its
/// re-list replaces only that namespace's objects.
#[derive(Debug)]
pub struct Relist<K> {
    buffer: Option<Vec<K>>,
    /// Whether a full list has been applied at least once (for `/readyz`).
    synced: bool,
    /// The namespace this watcher lists; `None`: the whole cluster.
    scope: Option<String>,
}

impl<K> Default for Relist<K> {
    fn default() -> Self {
        Relist {
            buffer: None,
            synced: false,
            scope: None,
        }
    }
}

/// What handling one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// The index changed: schedule a (debounced) translation.
    pub changed: bool,
    pub malformed: Vec<Malformed>,
}

impl<K: Indexed> Relist<K> {
    /// The tracker of a cluster-wide watcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracker of a watcher of namespace `namespace` alone.
    pub fn scoped(namespace: impl Into<String>) -> Self {
        Relist {
            scope: Some(namespace.into()),
            ..Self::default()
        }
    }

    /// The namespace this watcher lists; `None`: the whole cluster.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Whether this kind has completed its first full list.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn handle(&mut self, index: &mut Index, event: watcher::Event<K>) -> Handled {
        let mut out = Handled::default();
        match event {
            watcher::Event::Apply(obj) => match K::apply_to(index, obj) {
                Ok(changed) => out.changed = changed,
                Err(m) => out.malformed.push(m),
            },
            watcher::Event::Delete(obj) => out.changed = K::delete_from(index, &obj),
            watcher::Event::Init => self.buffer = Some(Vec::new()),
            watcher::Event::InitApply(obj) => self.buffer.get_or_insert_with(Vec::new).push(obj),
            watcher::Event::InitDone => {
                let objs = self.buffer.take().unwrap_or_default();
                let reset = K::reset_in(index, objs, self.scope.as_deref());
                self.synced = true;
                out.changed = reset.changed;
                out.malformed = reset.malformed;
            }
        }
        out
    }
}
