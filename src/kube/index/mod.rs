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
//! Driving it from `kube::runtime::watcher` events: keep one [`Relist`] per watched kind
//! and pass each event to [`Relist::handle`]; rebuild (debounced) when it says `changed`.

mod backend;
mod report;
mod selector;
mod store;
mod translate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;

use super::crd::IdentityPolicy;

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
    /// When set, only namespaced objects of this namespace are indexed.
    pub namespace: Option<String>,
    /// Suffix of Service DNS names for `service-upstream`.
    pub cluster_domain: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            controller_name: CONTROLLER_NAME.to_string(),
            class_name: DEFAULT_CLASS_NAME.to_string(),
            namespace: None,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
        }
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
}

// === impl Index ===

/// `apply_X`, `delete_X` and `reset_X` for one kind: the stores do the bookkeeping,
/// `store::admit_X` decides what is kept of an object.
macro_rules! kind_methods {
    ($ty:ty, $store:ident, $admit:path, $apply:ident, $delete:ident, $reset:ident, $doc:literal) => {
        #[doc = concat!("Adds or replaces ", $doc, ". `Ok(true)` when what translation reads changed.")]
        pub fn $apply(&mut self, obj: $ty) -> Result<bool, Malformed> {
            let (key, entry) = $admit(&self.settings, obj)?;
            Ok(self.$store.apply(key, entry))
        }

        #[doc = concat!("Removes ", $doc, "; `true` when it was indexed.")]
        pub fn $delete(&mut self, namespace: &str, name: &str) -> bool {
            self.$store.delete(&ObjectKey::new(namespace, name))
        }

        #[doc = concat!("Replaces every ", $doc, " with a fresh list (a watcher re-list).")]
        pub fn $reset(&mut self, objs: Vec<$ty>) -> Reset {
            let mut reset = Reset::default();
            let mut entries = BTreeMap::new();
            for obj in objs {
                match $admit(&self.settings, obj) {
                    Ok((key, Some(entry))) => {
                        entries.insert(key, entry);
                    }
                    Ok((_, None)) => {}
                    Err(m) => reset.malformed.push(m),
                }
            }
            reset.changed = self.$store.reset(entries);
            reset
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
        "an Ingress"
    );
    kind_methods!(
        Service,
        services,
        store::admit_service,
        apply_service,
        delete_service,
        reset_services,
        "a Service"
    );
    kind_methods!(
        EndpointSlice,
        slices,
        store::admit_endpoint_slice,
        apply_endpoint_slice,
        delete_endpoint_slice,
        reset_endpoint_slices,
        "an EndpointSlice"
    );
    kind_methods!(
        Secret,
        secrets,
        store::admit_secret,
        apply_secret,
        delete_secret,
        reset_secrets,
        "a Secret (only TLS and CA Secrets are kept)"
    );
    kind_methods!(
        IdentityPolicy,
        policies,
        store::admit_identity_policy,
        apply_identity_policy,
        delete_identity_policy,
        reset_identity_policies,
        "an IdentityPolicy"
    );

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
        let mut reset = Reset::default();
        let mut entries = BTreeMap::new();
        for obj in objs {
            match store::admit_ingress_class(&self.settings, obj) {
                Ok((key, Some(entry))) => {
                    entries.insert(key, entry);
                }
                Ok((_, None)) => {}
                Err(m) => reset.malformed.push(m),
            }
        }
        reset.changed = self.classes.reset(entries);
        reset
    }
}

// === impl Indexed ===

/// A kind the index keeps, so one generic [`Relist`] can drive every watcher.
pub trait Indexed: Sized {
    /// The kind, for log lines.
    const KIND: &'static str;
    fn apply_to(index: &mut Index, obj: Self) -> Result<bool, Malformed>;
    fn delete_from(index: &mut Index, obj: &Self) -> bool;
    fn reset_in(index: &mut Index, objs: Vec<Self>) -> Reset;
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
            fn reset_in(index: &mut Index, objs: Vec<Self>) -> Reset {
                index.$reset(objs)
            }
        }
    };
}

indexed!(
    Ingress,
    "Ingress",
    apply_ingress,
    delete_ingress,
    reset_ingresses
);
indexed!(
    Service,
    "Service",
    apply_service,
    delete_service,
    reset_services
);
indexed!(
    EndpointSlice,
    "EndpointSlice",
    apply_endpoint_slice,
    delete_endpoint_slice,
    reset_endpoint_slices
);
indexed!(Secret, "Secret", apply_secret, delete_secret, reset_secrets);
indexed!(
    IdentityPolicy,
    "IdentityPolicy",
    apply_identity_policy,
    delete_identity_policy,
    reset_identity_policies
);

impl Indexed for IngressClass {
    const KIND: &'static str = "IngressClass";
    fn apply_to(index: &mut Index, obj: Self) -> Result<bool, Malformed> {
        index.apply_ingress_class(obj)
    }
    fn delete_from(index: &mut Index, obj: &Self) -> bool {
        index.delete_ingress_class(obj.metadata.name.as_deref().unwrap_or_default())
    }
    fn reset_in(index: &mut Index, objs: Vec<Self>) -> Reset {
        index.reset_ingress_classes(objs)
    }
}

// === impl Relist ===

/// Turns one watcher's event stream into index calls: `Apply`/`Delete` go straight
/// through; `Init` … `InitApply`* … `InitDone` is buffered and becomes one `reset`, so
/// objects deleted while the watch was down disappear, and a half-listed set is never
/// translated.
#[derive(Debug)]
pub struct Relist<K> {
    buffer: Option<Vec<K>>,
    /// Whether a full list has been applied at least once (for `/readyz`).
    synced: bool,
}

impl<K> Default for Relist<K> {
    fn default() -> Self {
        Relist {
            buffer: None,
            synced: false,
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
    pub fn new() -> Self {
        Self::default()
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
                let reset = K::reset_in(index, self.buffer.take().unwrap_or_default());
                self.synced = true;
                out.changed = reset.changed;
                out.malformed = reset.malformed;
            }
        }
        out
    }
}
