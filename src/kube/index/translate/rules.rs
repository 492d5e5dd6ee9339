//! An Ingress' rules and defaultBackend as routes still without backends and policy
//! (only on hosts the namespace may use), and the Services they name, resolved once.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::networking::v1::{HTTPIngressPath, IngressBackend, IngressSpec};

use super::super::ObjectKey;
use super::super::backend::{Resolution, Upstream};
use super::super::ownership::{Owners, Standing};
use super::super::report::reasons;
use super::super::store::IngressEntry;
use super::Translator;
use super::ingress::Findings;
use crate::kube::annotations::IngressAnnotations;
use crate::routes::{HostMatch, PathMatch};

/// A Service backend as written: name, port number, port name.
pub(super) type BackendRef<'a> = (&'a str, Option<i32>, Option<&'a str>);

/// A route before its backend and policy are known.
pub(super) struct Draft<'a> {
    pub(super) id: String,
    pub(super) host: HostMatch,
    pub(super) path: PathMatch,
    pub(super) backend: &'a IngressBackend,
    /// On a host another namespace owns and delegated.
    pub(super) delegated: bool,
}

/// The rules' routes, the defaultBackend's, and the hosts named.
pub(super) struct Drafts<'a> {
    pub(super) rules: Vec<Draft<'a>>,
    pub(super) default: Option<Draft<'a>>,
    pub(super) hosts: BTreeSet<String>,
}

impl<'a> Drafts<'a> {
    fn all(&self) -> impl Iterator<Item = &Draft<'a>> {
        self.rules.iter().chain(self.default.iter())
    }
}

impl<'a> Translator<'a> {
    /// Routes: host × path, and rules without paths to this Ingress' defaultBackend.
    /// Rules on hosts the namespace may not use are left out altogether.
    pub(super) fn drafts(
        &self,
        key: &ObjectKey,
        entry: &'a IngressEntry,
        spec: &'a IngressSpec,
        owners: &Owners,
        found: &mut Findings,
    ) -> Drafts<'a> {
        let ns = key.namespace.as_str();
        let ann = &entry.annotations.values;
        let may_catch_all = self.index.settings.tenancy.may_catch_all(ns);
        let mut drafts: Vec<Draft<'a>> = Vec::new();
        let mut hosts: BTreeSet<String> = BTreeSet::new();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let (host, delegated) = match rule.host.as_deref().filter(|h| !h.is_empty()) {
                None if !may_catch_all => {
                    found.reject(
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
                                found.reject(reason, format!("spec.rules[{i}]: {message}"));
                                continue;
                            }
                        }
                    }
                    Err(why) => {
                        found.reject(
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
                        found.reject(
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
        let default = match &spec.default_backend {
            Some(_) if !may_catch_all => {
                found.reject(
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
        let drafts = Drafts {
            rules: drafts,
            default,
            hosts,
        };
        for d in drafts.all() {
            if let Err(why) = check_backend(d.backend) {
                found.reject(reasons::UNSUPPORTED_BACKEND, format!("{}: {why}", d.id));
            }
        }
        drafts
    }

    /// Backends, resolved once per distinct Service and port; a refused upstream
    /// rejects the Ingress.
    pub(super) fn resolve_backends(
        &self,
        ns: &str,
        ann: &IngressAnnotations,
        drafts: &Drafts<'a>,
        found: &mut Findings,
    ) -> HashMap<BackendRef<'a>, Resolution> {
        let upstream = Upstream {
            scheme: ann.backend_protocol,
            service_upstream: ann.service_upstream,
        };
        let mut resolved: HashMap<BackendRef<'a>, Resolution> = HashMap::new();
        for d in drafts.all() {
            let Some(svc) = &d.backend.service else {
                continue;
            };
            let k = backend_ref(svc);
            if resolved.contains_key(&k) {
                continue;
            }
            let r = self.services.resolve(ns, svc, upstream);
            if let Some((reason, message)) = &r.refusal {
                found.reject(reason, message.clone());
            }
            if let Some((reason, message)) = &r.warning {
                found.warn(reason, message.clone());
            }
            resolved.insert(k, r);
        }
        resolved
    }
}

/// The key a Service backend is resolved under.
pub(super) fn backend_ref(
    svc: &k8s_openapi::api::networking::v1::IngressServiceBackend,
) -> BackendRef<'_> {
    let port = svc.port.as_ref();
    (
        svc.name.as_str(),
        port.and_then(|p| p.number),
        port.and_then(|p| p.name.as_deref()),
    )
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
