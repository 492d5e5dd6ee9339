//! One Ingress → its routes, policy, certificates and report, in named steps:
//! [`checks`](Translator::checks) (annotations, reserved headers, the regex budget),
//! [`attached_policies`](Translator::attached_policies),
//! [`upstream_ca`](Translator::upstream_ca), the drafts and their backends
//! (`rules.rs`), the policy, the routes, and the certificates (`tls.rs`). Any
//! rejection turns the policy into deny-all.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::IngressSpec;

use super::super::ObjectKey;
use super::super::ownership::Owners;
use super::super::report::{IngressReport, Note, NoteType, reasons};
use super::super::store::{CA_KEY, IngressEntry};
use super::rules::{Draft, Drafts, backend_ref};
use super::{IngressOut, Translator, push_note};
use crate::kube::annotations::{AnnotationErrorKind, IngressAnnotations};
use crate::policy::Policy;
use crate::routes::reserved::reserved_request_header_with;
use crate::routes::{BackendSpec, RouteOptions, RouteSpec};

/// What the steps found: problems that reject the Ingress, and warnings that do not.
#[derive(Default)]
pub(super) struct Findings {
    rejections: Vec<Note>,
    notes: Vec<Note>,
}

impl Findings {
    pub(super) fn reject(&mut self, reason: &'static str, message: String) {
        push_note(&mut self.rejections, NoteType::Warning, reason, message);
    }

    pub(super) fn warn(&mut self, reason: &'static str, message: String) {
        push_note(&mut self.notes, NoteType::Warning, reason, message);
    }
}

static NO_SPEC: IngressSpec = IngressSpec {
    default_backend: None,
    ingress_class_name: None,
    rules: None,
    tls: None,
};

impl<'a> Translator<'a> {
    pub(super) fn ingress(
        &self,
        key: &ObjectKey,
        entry: &'a IngressEntry,
        owners: &Owners,
    ) -> IngressOut<'a> {
        let ingress = &entry.ingress;
        let ann = &entry.annotations.values;
        let spec = ingress.spec.as_ref().unwrap_or(&NO_SPEC);
        let mut found = Findings::default();

        self.checks(entry, &mut found);
        let (attached, mut parts) = self.attached_policies(key, entry, &mut found);
        let mut options = ann.options.clone();
        self.upstream_ca(&key.namespace, ann, &mut options, &mut found);
        let drafts = self.drafts(key, entry, spec, owners, &mut found);
        let resolved = self.resolve_backends(&key.namespace, ann, &drafts, &mut found);

        // Who may pass: the union of every source, or nobody when anything failed.
        let accepted = found.rejections.is_empty();
        let has_shorthands = ann.shorthands != Default::default();
        let policy = if accepted {
            parts.extend(ann.policy.clone());
            if has_shorthands {
                parts.push(Policy::from_shorthands(&ann.shorthands));
            }
            if parts.is_empty() {
                found.warn(
                    reasons::NO_POLICY,
                    "no IdentityPolicy, policy or allow annotation applies: every request is denied"
                        .to_string(),
                );
            }
            Policy::union(parts)
        } else {
            let why: Vec<&str> = found
                .rejections
                .iter()
                .map(|n| n.message.as_str())
                .collect();
            Policy::deny_all(format!("Ingress {key} is rejected: {}", why.join("; ")))
        };
        let policy = Arc::new(policy);

        let route = |d: Draft<'a>| -> (RouteSpec, bool) {
            let (endpoints, options) = match (accepted, &d.backend.service) {
                (true, Some(svc)) => {
                    let endpoints = resolved
                        .get(&backend_ref(svc))
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
        let Drafts {
            rules,
            default,
            hosts,
        } = drafts;
        let mut routes = Vec::new();
        let mut delegated_routes = Vec::new();
        for (r, delegated) in rules.into_iter().map(route) {
            if delegated {
                delegated_routes.push(r);
            } else {
                routes.push(r);
            }
        }
        let default_backend = default.map(|d| route(d).0);

        let certificates = self.tls_pairs(&key.namespace, spec, owners, &mut found);

        let Findings {
            mut rejections,
            mut notes,
        } = found;
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

    /// Annotation errors, headers the Ingress may not set or remove, and the path-regex
    /// budget: each rejects the Ingress.
    fn checks(&self, entry: &IngressEntry, found: &mut Findings) {
        let ann = &entry.annotations.values;
        let tenancy = &self.index.settings.tenancy;
        for e in &entry.annotations.errors {
            let reason = match e.kind {
                AnnotationErrorKind::Unknown => reasons::UNKNOWN_ANNOTATION,
                AnnotationErrorKind::Invalid => reasons::INVALID_ANNOTATION,
            };
            found.reject(reason, e.to_string());
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
                found.reject(
                    reasons::RESERVED_HEADER,
                    format!("annotation {annotation}: `{name}` is {why}"),
                );
            }
        }
        for (name, _) in &ann.options.set_response_headers {
            if let Some(why) = crate::routes::reserved::reserved_response_header(name.as_str()) {
                found.reject(
                    reasons::RESERVED_HEADER,
                    format!("annotation set-response-headers: `{name}` is {why}"),
                );
            }
        }
        if let Some(why) = &entry.regexes.over_budget {
            found.reject(reasons::PATH_REGEX_LIMIT, format!("spec.rules: {why}"));
        }
    }

    /// IdentityPolicies by targetRefs, by ingressSelector and by annotation, and the
    /// rules of those that are valid. A named policy that is missing or invalid rejects.
    fn attached_policies(
        &self,
        key: &ObjectKey,
        entry: &'a IngressEntry,
        found: &mut Findings,
    ) -> (BTreeSet<&'a ObjectKey>, Vec<Policy>) {
        let ns = key.namespace.as_str();
        let mut attached: BTreeSet<&ObjectKey> = BTreeSet::new();
        if let Some(keys) = self.by_target.get(&(ns, key.name.as_str())) {
            attached.extend(keys.iter().copied());
        }
        let labels = entry.ingress.metadata.labels.as_ref();
        for (pkey, selector) in self.by_selector.get(ns).into_iter().flatten() {
            if selector.matches(labels) {
                attached.insert(pkey);
            }
        }
        for name in &entry.annotations.values.identity_policies {
            match self
                .index
                .policies
                .items
                .get_key_value(&ObjectKey::new(ns, name))
            {
                Some((pkey, _)) => {
                    attached.insert(pkey);
                }
                None => found.reject(
                    reasons::IDENTITY_POLICY_NOT_FOUND,
                    format!("IdentityPolicy {ns}/{name} (annotation identity-policy) not found"),
                ),
            }
        }
        let mut parts: Vec<Policy> = Vec::new();
        for pkey in &attached {
            let p = &self.index.policies.items[*pkey];
            match (&p.rules, &p.selector) {
                (Err(e), _) => found.reject(
                    reasons::IDENTITY_POLICY_INVALID,
                    format!("IdentityPolicy {pkey} has invalid rules: {e}"),
                ),
                (_, Err(e)) => found.reject(
                    reasons::IDENTITY_POLICY_INVALID,
                    format!("IdentityPolicy {pkey} has an invalid ingressSelector: {e}"),
                ),
                (Ok(rules), Ok(_)) => parts.push(rules.clone()),
            }
        }
        (attached, parts)
    }

    /// The upstream CA bundle of `tls-custom-ca-secret`, from the Ingress' namespace.
    fn upstream_ca(
        &self,
        ns: &str,
        ann: &IngressAnnotations,
        options: &mut RouteOptions,
        found: &mut Findings,
    ) {
        let Some(name) = &ann.tls_custom_ca_secret else {
            return;
        };
        let secret = self.index.secrets.get(&ObjectKey::new(ns, name));
        let ca = secret.and_then(|s| s.data.as_ref()?.get(CA_KEY));
        match (secret, ca) {
            (None, _) => found.reject(
                reasons::CA_SECRET_NOT_FOUND,
                format!(
                    "Secret {ns}/{name} (annotation tls-custom-ca-secret) not found, or it holds no `{CA_KEY}`"
                ),
            ),
            (Some(_), Some(ca)) if !ca.0.is_empty() => {
                options.tls.ca_pem = Some(Arc::from(ca.0.as_slice()));
            }
            (Some(_), _) => found.reject(
                reasons::CA_SECRET_INVALID,
                format!("Secret {ns}/{name} (annotation tls-custom-ca-secret) has no `{CA_KEY}`"),
            ),
        }
    }
}
