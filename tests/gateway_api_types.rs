//! The hand-written Gateway API types (src/kube/gateway/api/) against the CRDs they
//! read (crds/gateway-api/, the standard channel of the pinned release), both ways:
//! every field we model exists in the CRD with the same JSON type, and every CRD field
//! we do not model is listed below with what Portcullis does about it. A new release's
//! CRDs fail this test until each new field is either read or named here.

use std::collections::BTreeMap;

use kube::CustomResourceExt;
use portcullis::api::kube::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use serde_json::Value;

/// CRD fields the types leave out, by path prefix, with why that is safe.
const UNMODELLED: &[(&str, &str)] = &[
    // Gateway.
    (
        "gateways.spec.allowedListeners",
        "ListenerSets are not supported: none is ever attached",
    ),
    (
        "gateways.status.attachedListenerSets",
        "never written: no ListenerSet attaches",
    ),
    // HTTPRoute filters: the `type` discriminates; types we do not apply make the rule
    // unusable (500 with UnsupportedValue), so their fields are never needed.
    (
        "httproutes.spec.rules[].filters[].requestMirror",
        "filter type RequestMirror refused by type",
    ),
    (
        "httproutes.spec.rules[].filters[].extensionRef",
        "filter type ExtensionRef refused by type",
    ),
    (
        "httproutes.spec.rules[].filters[].cors",
        "filter type CORS refused by type",
    ),
    (
        "httproutes.spec.rules[].backendRefs[].filters[].requestMirror",
        "filter type RequestMirror refused by type",
    ),
    (
        "httproutes.spec.rules[].backendRefs[].filters[].extensionRef",
        "filter type ExtensionRef refused by type",
    ),
    (
        "httproutes.spec.rules[].backendRefs[].filters[].cors",
        "filter type CORS refused by type",
    ),
];

/// Kubernetes fields every object has; not ours to check.
fn skipped(path: &str) -> bool {
    path.ends_with(".metadata")
        || path.contains(".metadata.")
        || path.ends_with(".apiVersion")
        || path.ends_with(".kind") && path.matches('.').count() == 1
}

fn committed(file: &str) -> Value {
    let path = format!(
        "{}/crds/gateway-api/gateway.networking.k8s.io_{file}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The openAPIV3Schema of `version` in a CRD.
fn schema_of(crd: &Value, version: &str) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("no version {version}"))["schema"]["openAPIV3Schema"]
        .clone()
}

/// Every property path under `schema` with its JSON type (`None`: untyped, opaque).
fn paths(schema: &Value, at: &str, out: &mut BTreeMap<String, Option<String>>) {
    let type_ = schema["type"].as_str().map(str::to_owned);
    out.insert(at.to_owned(), type_);
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            paths(v, &format!("{at}.{k}"), out);
        }
    }
    if schema.get("items").is_some() {
        paths(&schema["items"], &format!("{at}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        paths(extra, &format!("{at}{{}}"), out);
    }
}

fn check(name: &str, ours: Value, crd: Value, version: &str) {
    let mut mine = BTreeMap::new();
    paths(&schema_of(&ours, version), name, &mut mine);
    let mut theirs = BTreeMap::new();
    paths(&schema_of(&crd, version), name, &mut theirs);

    let mut problems = Vec::new();
    for (path, type_) in &mine {
        if skipped(path) {
            continue;
        }
        match theirs.get(path) {
            None => problems.push(format!("{path}: modelled but not in the CRD")),
            // Opaque on our side: the whole subtree is read as a value.
            Some(_) if type_.is_none() => {}
            Some(t) if t != type_ => {
                problems.push(format!("{path}: type {type_:?} here, {t:?} in the CRD"))
            }
            Some(_) => {}
        }
    }
    for path in theirs.keys() {
        if skipped(path) || mine.contains_key(path) {
            continue;
        }
        // Under a field we read as one opaque value, or listed with a reason.
        let opaque = mine
            .iter()
            .any(|(p, t)| t.is_none() && path.len() > p.len() && path.starts_with(p.as_str()));
        let listed = UNMODELLED.iter().any(|(p, _)| path.starts_with(p));
        if !opaque && !listed {
            problems.push(format!(
                "{path}: in the CRD but neither modelled nor listed in UNMODELLED"
            ));
        }
    }
    for (p, why) in UNMODELLED {
        if p.starts_with(&format!("{name}.")) && !theirs.keys().any(|k| k.starts_with(p)) {
            problems.push(format!("UNMODELLED `{p}` ({why}) names nothing in the CRD"));
        }
    }
    assert!(
        problems.is_empty(),
        "{name} types and CRD differ:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn gateway_classes_match_the_crd() {
    check(
        "gatewayclasses",
        serde_json::to_value(GatewayClass::crd()).unwrap(),
        committed("gatewayclasses"),
        "v1",
    );
}

#[test]
fn gateways_match_the_crd() {
    check(
        "gateways",
        serde_json::to_value(Gateway::crd()).unwrap(),
        committed("gateways"),
        "v1",
    );
}

#[test]
fn http_routes_match_the_crd() {
    check(
        "httproutes",
        serde_json::to_value(HTTPRoute::crd()).unwrap(),
        committed("httproutes"),
        "v1",
    );
}

#[test]
fn reference_grants_match_the_crd() {
    check(
        "referencegrants",
        serde_json::to_value(ReferenceGrant::crd()).unwrap(),
        committed("referencegrants"),
        "v1beta1",
    );
}

#[test]
fn the_committed_crds_are_the_pinned_release() {
    for file in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
    ] {
        let crd = committed(file);
        let annotations = &crd["metadata"]["annotations"];
        assert_eq!(
            annotations["gateway.networking.k8s.io/bundle-version"],
            portcullis::api::kube::gateway::BUNDLE_VERSION,
            "{file}"
        );
        assert_eq!(
            annotations["gateway.networking.k8s.io/channel"], "standard",
            "{file}"
        );
    }
}

/// The check itself: a field the CRD lacks, and a CRD field nobody listed, both fail.
#[test]
fn the_check_catches_drift() {
    let ours = serde_json::json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "invented": {"type": "string"}}}}}}}]}});
    let crd = serde_json::json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "unread": {"type": "string"}}}}}}}]}});
    let result = std::panic::catch_unwind(|| check("widgets", ours, crd, "v1"));
    let message = result
        .expect_err("drift must fail")
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(
        message.contains("widgets.spec.invented: modelled but not in the CRD"),
        "{message}"
    );
    assert!(
        message.contains("widgets.spec.unread: in the CRD but neither"),
        "{message}"
    );
}
