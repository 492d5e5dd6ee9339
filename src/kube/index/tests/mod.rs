//! Index tests: real k8s-openapi objects from JSON literals in, snapshot assertions out.

mod annotations;
mod backends;
mod classes;
mod gateway;
mod index;
mod namespaces;
mod paths;
mod policies;
mod scale;
mod tenancy;
mod tls;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{Value, json};

use super::report::IngressReport;
use super::{Index, NoteType, Settings, Tenancy, Translation};
use crate::kube::crd::IdentityPolicy;
use crate::routes::RouteSpec;

pub(super) fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("test object deserializes")
}

pub(super) fn class(name: &str, controller: &str, default: bool) -> IngressClass {
    let mut meta = json!({"name": name});
    if default {
        meta["annotations"] = json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    from(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": meta,
        "spec": {"controller": controller},
    }))
}

/// An index with our IngressClass `portcullis`, and Service `apps/web` (port 80 `http`)
/// with one ready endpoint.
pub(super) fn index() -> Index {
    index_with(Tenancy::default())
}

/// [`index`] where every namespace may have host-less rules and a default backend.
pub(super) fn catch_all_index() -> Index {
    index_with(Tenancy {
        catch_all_namespaces: vec!["*".into()],
        ..Tenancy::default()
    })
}

/// An index with `settings` and our IngressClass `portcullis`, nothing else.
pub(super) fn classed(settings: Settings) -> Index {
    let mut ix = Index::new(settings);
    ix.apply(class("portcullis", super::CONTROLLER_NAME, false))
        .unwrap();
    ix
}

/// Service `ns/web` (port 80 `http`) with one ready endpoint, 10.0.0.1:8080.
pub(super) fn serve_web(ix: &mut Index, ns: &str) {
    ix.apply(service(ns, "web", json!([{"name": "http", "port": 80}])))
        .unwrap();
    ix.apply(slice(
        ns,
        "web-1",
        "web",
        json!([{"name": "http", "port": 8080}]),
        json!([{"addresses": ["10.0.0.1"]}]),
    ))
    .unwrap();
}

/// [`index`] with other tenancy settings.
pub(super) fn index_with(tenancy: Tenancy) -> Index {
    let mut ix = classed(Settings {
        tenancy,
        ..Settings::default()
    });
    ix.apply(service(
        "apps",
        "web",
        json!([{"name": "http", "port": 80, "targetPort": 8080}]),
    ))
    .unwrap();
    ix.apply(slice(
        "apps",
        "web-abc",
        "web",
        json!([{"name": "http", "port": 8080}]),
        json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}]),
    ))
    .unwrap();
    ix
}

pub(super) fn service(ns: &str, name: &str, ports: Value) -> Service {
    from(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": ports, "selector": {"app": name}},
    }))
}

pub(super) fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    ports: Value,
    endpoints: Value,
) -> EndpointSlice {
    from(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
}

pub(super) fn tls_secret(ns: &str, name: &str) -> Secret {
    from(json!({
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        // "CERT" and "KEY", base64.
        "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"},
    }))
}

pub(super) fn identity_policy(ns: &str, name: &str, spec: Value) -> IdentityPolicy {
    from(json!({
        "apiVersion": "portcullis.dev/v1alpha1", "kind": "IdentityPolicy",
        "metadata": {"name": name, "namespace": ns, "generation": 3},
        "spec": spec,
    }))
}

/// `apps/<name>` of class `portcullis`: `host` → `/` (Prefix) → `web:80`, with annotations.
pub(super) fn ingress(name: &str, host: &str, annotations: Value) -> Ingress {
    from(json!({
        "metadata": {"name": name, "namespace": "apps", "annotations": annotations,
                     "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1},
        "spec": {
            "ingressClassName": "portcullis",
            "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}],
        },
    }))
}

/// An Ingress of class `portcullis` in `apps` with the given spec fields.
pub(super) fn ingress_spec(name: &str, spec: Value) -> Ingress {
    let mut spec = spec;
    spec["ingressClassName"] = json!("portcullis");
    from(json!({
        "metadata": {"name": name, "namespace": "apps", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec,
    }))
}

pub(super) fn route<'a>(t: &'a Translation, id: &str) -> &'a RouteSpec {
    t.model
        .routes
        .iter()
        .chain(t.model.default_backend.iter())
        .find(|r| r.id == id)
        .unwrap_or_else(|| {
            let ids: Vec<&str> = t.model.routes.iter().map(|r| r.id.as_str()).collect();
            panic!("no route {id}; routes: {ids:?}")
        })
}

pub(super) fn report<'a>(t: &'a Translation, key: &str) -> &'a IngressReport {
    t.ingresses
        .iter()
        .find(|r| r.key.to_string() == key)
        .unwrap_or_else(|| panic!("no report for {key}"))
}

/// Whether a route is a fail-closed deny of a rejected Ingress. (The policy stub also
/// uses `deny_all` for shorthands, so look for the rejection's wording.)
pub(super) fn denies(r: &RouteSpec) -> bool {
    r.policy
        .invalid_reason()
        .is_some_and(|why| why.contains("is rejected"))
}

pub(super) fn warnings(r: &IngressReport) -> Vec<&'static str> {
    r.notes
        .iter()
        .filter(|n| n.type_ == NoteType::Warning)
        .map(|n| n.reason)
        .collect()
}
