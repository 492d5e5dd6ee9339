//! Per-kind storage: what is kept of each object, and whether a new version changes
//! anything translation reads (status writes, resync and `resourceVersion` bumps do not).
//! Work that depends on one object alone (annotations, policy rules) is done here, once
//! per change, rather than on every translation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use super::selector::Selector;
use super::{Malformed, ObjectKey, Settings};
use crate::kube::annotations::{self, Parsed};
use crate::kube::crd::IdentityPolicy;
use crate::policy::{Policy, PolicyError};

/// Secret keys we read.
pub(super) const TLS_CERT_KEY: &str = "tls.crt";
pub(super) const TLS_KEY_KEY: &str = "tls.key";
pub(super) const CA_KEY: &str = "ca.crt";
pub(super) const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// How an entry tells whether a new version matters.
pub trait Content {
    fn same_content(&self, other: &Self) -> bool;
}

/// One kind's objects by key, in key order (so iteration is deterministic).
#[derive(Debug, Clone)]
pub struct Store<E> {
    pub items: BTreeMap<ObjectKey, E>,
}

impl<E> Default for Store<E> {
    fn default() -> Self {
        Store {
            items: BTreeMap::new(),
        }
    }
}

impl<E: Content> Store<E> {
    /// Stores `entry` under `key`, or forgets the key when the object is no longer of
    /// interest (`None`). Returns whether anything translation reads changed.
    pub fn apply(&mut self, key: ObjectKey, entry: Option<E>) -> bool {
        match entry {
            Some(entry) => {
                let changed = self
                    .items
                    .get(&key)
                    .is_none_or(|old| !old.same_content(&entry));
                self.items.insert(key, entry);
                changed
            }
            None => self.items.remove(&key).is_some(),
        }
    }

    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        self.items.remove(key).is_some()
    }

    /// Replaces the entries of one watcher's scope with its fresh list: `None` replaces
    /// everything, `Some(ns)` only the keys of namespace `ns` (another namespace's
    /// watcher owns the rest, and its re-list is not this one's to judge). Entries
    /// outside the scope are ignored. Returns whether anything translation reads changed.
    pub fn reset_scoped(
        &mut self,
        mut entries: BTreeMap<ObjectKey, E>,
        scope: Option<&str>,
    ) -> bool {
        let Some(ns) = scope else {
            let changed = entries.len() != self.items.len() || self.differs(&entries);
            self.items = entries;
            return changed;
        };
        entries.retain(|k, _| k.namespace == ns);
        let before = self.items.keys().filter(|k| k.namespace == ns).count();
        // Every fresh key is in `ns`: equal counts and no new or different entry mean
        // the same set.
        let changed = before != entries.len() || self.differs(&entries);
        self.items
            .retain(|k, _| k.namespace != ns || entries.contains_key(k));
        self.items.extend(entries);
        changed
    }

    /// Whether any of `entries` is new or reads differently from what is stored.
    fn differs(&self, entries: &BTreeMap<ObjectKey, E>) -> bool {
        entries
            .iter()
            .any(|(k, e)| self.items.get(k).is_none_or(|old| !old.same_content(e)))
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&E> {
        self.items.get(key)
    }
}

// === entries ===

/// An Ingress and its annotations, read once per change.
#[derive(Debug, Clone)]
pub struct IngressEntry {
    pub ingress: Ingress,
    pub annotations: Parsed,
    /// Its path regexes, compiled once per change to check their size.
    pub regexes: PathRegexes,
}

/// Path regexes (`ImplementationSpecific` paths with `path-regex`) one Ingress may have.
pub(super) const MAX_PATH_REGEXES: usize = 32;
/// What all path regexes of one Ingress may hold once compiled, together.
pub(super) const MAX_PATH_REGEX_BYTES: usize = 256 * 1024;

/// What checking an Ingress' path regexes found.
#[derive(Debug, Clone, Default)]
pub struct PathRegexes {
    /// `(rule, path)` → why that regex cannot be used.
    pub errors: BTreeMap<(usize, usize), String>,
    /// A limit the Ingress as a whole exceeds.
    pub over_budget: Option<String>,
    /// The compiled patterns, held so that the table build takes them from the shared
    /// memo instead of compiling them again.
    pub compiled: Vec<std::sync::Arc<regex_automata::meta::Regex>>,
}

/// Compiles each distinct path regex of `ingress` once (with the table's size limits)
/// and adds up their size against the per-Ingress budget.
fn check_path_regexes(ingress: &Ingress, path_regex: bool) -> PathRegexes {
    let mut out = PathRegexes::default();
    if !path_regex {
        return out;
    }
    let mut sizes: BTreeMap<&str, Result<usize, String>> = BTreeMap::new();
    let mut count = 0;
    let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        for (j, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            let pattern = p.path.as_deref().unwrap_or_default();
            if p.path_type != "ImplementationSpecific" || pattern.is_empty() {
                continue;
            }
            count += 1;
            let size = sizes.entry(pattern).or_insert_with(|| {
                crate::routes::shared_path_regex(pattern).map(|(re, _)| {
                    let size = crate::routes::path_regex_memory(&re);
                    out.compiled.push(re);
                    size
                })
            });
            if let Err(why) = size {
                out.errors.insert((i, j), why.clone());
            }
        }
    }
    let total: usize = sizes.values().filter_map(|s| s.as_ref().ok()).sum();
    out.over_budget = regex_budget("path regexes", "an Ingress", count, total);
    out
}

/// Why `count` regexes (`kind`: "path regexes") compiling to `total` bytes are more
/// than one object (`what`: "an Ingress") may have, if they are.
pub(super) fn regex_budget(kind: &str, what: &str, count: usize, total: usize) -> Option<String> {
    if count > MAX_PATH_REGEXES {
        Some(format!(
            "{count} {kind}; {what} may have {MAX_PATH_REGEXES}"
        ))
    } else if total > MAX_PATH_REGEX_BYTES {
        Some(format!(
            "its {kind} compile to {} KiB together; {what} may use {} KiB (prefer ASCII classes such as [a-z0-9_] to \\w and \\d)",
            total / 1024,
            MAX_PATH_REGEX_BYTES / 1024
        ))
    } else {
        None
    }
}

/// An IdentityPolicy with its rules compiled and its selector checked, once per change.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    pub policy: IdentityPolicy,
    pub rules: Result<Policy, PolicyError>,
    /// `None`: no `ingressSelector` (matches nothing); `Err`: a selector we cannot use.
    pub selector: Result<Option<Selector>, String>,
}

impl Content for IngressEntry {
    fn same_content(&self, other: &Self) -> bool {
        let (a, b) = (&self.ingress, &other.ingress);
        a.spec == b.spec
            && a.metadata.labels == b.metadata.labels
            && a.metadata.annotations == b.metadata.annotations
            && a.metadata.creation_timestamp == b.metadata.creation_timestamp
            && a.metadata.generation == b.metadata.generation
    }
}

impl Content for PolicyEntry {
    fn same_content(&self, other: &Self) -> bool {
        self.policy.spec == other.policy.spec
            && self.policy.metadata.generation == other.policy.metadata.generation
    }
}

impl Content for IngressClass {
    fn same_content(&self, other: &Self) -> bool {
        self.spec == other.spec && self.metadata.annotations == other.metadata.annotations
    }
}

impl Content for Service {
    fn same_content(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Content for EndpointSlice {
    fn same_content(&self, other: &Self) -> bool {
        self.metadata.labels == other.metadata.labels
            && self.address_type == other.address_type
            && self.endpoints == other.endpoints
            && self.ports == other.ports
    }
}

impl Content for Secret {
    fn same_content(&self, other: &Self) -> bool {
        self.type_ == other.type_ && self.data == other.data
    }
}

// === admission ===

/// With a namespace list, objects of other namespaces are not indexed.
pub(super) fn in_scope(settings: &Settings, key: &ObjectKey) -> bool {
    settings.namespaces.is_empty() || settings.namespaces.contains(&key.namespace)
}

pub(super) fn admit_ingress(
    settings: &Settings,
    mut obj: Ingress,
) -> Result<(ObjectKey, Option<IngressEntry>), Malformed> {
    let key = ObjectKey::namespaced("Ingress", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    // Managed fields are large and never read; status is ours to write, not to read.
    obj.metadata.managed_fields = None;
    obj.status = None;
    let annotations = annotations::parse(
        obj.metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    );
    let regexes = check_path_regexes(&obj, annotations.values.path_regex);
    Ok((
        key,
        Some(IngressEntry {
            ingress: obj,
            annotations,
            regexes,
        }),
    ))
}

pub(super) fn admit_ingress_class(
    _settings: &Settings,
    mut obj: IngressClass,
) -> Result<(ObjectKey, Option<IngressClass>), Malformed> {
    let key = ObjectKey::cluster("IngressClass", &obj.metadata)?;
    obj.metadata.managed_fields = None;
    Ok((key, Some(obj)))
}

pub(super) fn admit_service(
    settings: &Settings,
    mut obj: Service,
) -> Result<(ObjectKey, Option<Service>), Malformed> {
    let key = ObjectKey::namespaced("Service", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    obj.status = None;
    Ok((key, Some(obj)))
}

pub(super) fn admit_endpoint_slice(
    settings: &Settings,
    mut obj: EndpointSlice,
) -> Result<(ObjectKey, Option<EndpointSlice>), Malformed> {
    let key = ObjectKey::namespaced("EndpointSlice", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    Ok((key, Some(obj)))
}

/// Only Secrets an Ingress could use are kept (TLS pairs and CA bundles): a cluster has
/// many others (tokens, Helm releases) whose churn must not trigger rebuilds.
pub(super) fn admit_secret(
    settings: &Settings,
    mut obj: Secret,
) -> Result<(ObjectKey, Option<Secret>), Malformed> {
    let key = ObjectKey::namespaced("Secret", &obj.metadata)?;
    let data = obj.data.as_ref();
    let useful = obj.type_.as_deref() == Some(TLS_SECRET_TYPE)
        || data.is_some_and(|d| d.contains_key(CA_KEY) || d.contains_key(TLS_CERT_KEY));
    if !in_scope(settings, &key) || !useful {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    obj.metadata.annotations = None;
    obj.string_data = None;
    Ok((key, Some(obj)))
}

pub(super) fn admit_identity_policy(
    settings: &Settings,
    mut obj: IdentityPolicy,
) -> Result<(ObjectKey, Option<PolicyEntry>), Malformed> {
    let key = ObjectKey::namespaced("IdentityPolicy", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    obj.status = None;
    let rules = Policy::from_value(&obj.spec.rules_document());
    let selector = match &obj.spec.ingress_selector {
        None => Ok(None),
        Some(s) => Selector::compile(s).map(Some),
    };
    Ok((
        key,
        Some(PolicyEntry {
            policy: obj,
            rules,
            selector,
        }),
    ))
}
