//! The `IdentityPolicy` CRD: the committed YAML matches the Rust types, the schema is
//! one a kube-apiserver accepts (structural), and the documented example reads back.

use portcullis::api::kube::crd::{
    CONDITION_ACCEPTED, CRD_NAME, IdentityPolicy, IdentityPolicySpec, REASON_VALID, TargetRef,
    crd_yaml,
};
use serde_json::{Value, json};

const COMMITTED: &str = include_str!("../crds/identitypolicies.portcullis.dev.yaml");
const REGENERATE: &str = "run `cargo run -- crd > crds/identitypolicies.portcullis.dev.yaml`";

// === the committed file ===

#[test]
fn committed_crd_is_current() {
    assert!(
        COMMITTED == crd_yaml(),
        "crds/identitypolicies.portcullis.dev.yaml is out of date with src/kube/crd.rs: {REGENERATE}"
    );
}

/// The YAML says exactly what the typed CRD says (no lossy quoting or folding).
#[test]
fn crd_yaml_reads_back_as_the_typed_crd() {
    let parsed: Value = serde_saphyr::from_str(&crd_yaml()).expect("crd_yaml() is valid YAML");
    let typed = serde_json::to_value(<IdentityPolicy as kube::CustomResourceExt>::crd()).unwrap();
    assert_eq!(parsed, typed);
}

#[test]
fn crd_names_and_columns() {
    let crd = crd_value();
    assert_eq!(crd["metadata"]["name"], CRD_NAME);
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "portcullis.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "IdentityPolicy");
    assert_eq!(spec["names"]["plural"], "identitypolicies");
    assert_eq!(spec["names"]["shortNames"], json!(["idpol"]));

    let versions = spec["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(v["served"], true);
    assert_eq!(v["storage"], true);
    assert_eq!(v["subresources"], json!({"status": {}}));

    let columns: Vec<(&str, &str, &str)> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["jsonPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            (
                "Accepted",
                "string",
                r#".status.conditions[?(@.type=="Accepted")].status"#
            ),
            ("Ingresses", "integer", ".status.attachedIngresses"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
}

// === structural schema ===

/// Keys a structural schema node may carry (apiextensions.k8s.io/v1 JSONSchemaProps,
/// minus `$ref`, `definitions`, `dependencies`, `patternProperties`, `id`, `$schema`,
/// which a structural schema must not use).
const ALLOWED_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "default",
    "nullable",
    "enum",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "example",
    "externalDocs",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Formats the apiserver knows; others are dropped with a warning.
const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "duration",
    "password",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
];

/// Keys that must not appear inside `allOf`/`anyOf`/`oneOf`/`not` (value validation
/// only; the structure is declared outside them).
const FORBIDDEN_IN_JUNCTORS: &[&str] = &[
    "type",
    "description",
    "default",
    "additionalProperties",
    "nullable",
    "title",
];

#[test]
fn schema_is_structural() {
    let crd = crd_value();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(schema.is_object(), "no openAPIV3Schema");
    let mut problems = Vec::new();
    check_node(schema, "openAPIV3Schema", false, &mut problems);
    assert!(
        problems.is_empty(),
        "the CRD schema is not structural:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_field_is_documented() {
    let crd = crd_value();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut undocumented = Vec::new();
    walk_properties(schema, "", &mut |path, node| {
        if node["description"].as_str().is_none_or(str::is_empty) {
            undocumented.push(path.to_owned());
        }
    });
    assert!(
        undocumented.is_empty(),
        "fields without a description (kubectl explain shows nothing): {undocumented:?}"
    );
}

/// The parts of the schema the controller and users rely on, pinned.
#[test]
fn schema_shapes() {
    let crd = crd_value();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let spec = &root["properties"]["spec"];
    assert_eq!(spec["required"], json!(["rules"]));

    let rules = &spec["properties"]["rules"];
    assert_eq!(rules["type"], "array");
    assert_eq!(
        rules["items"],
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
    );

    let target = &spec["properties"]["targetRefs"]["items"];
    assert_eq!(target["required"], json!(["kind", "name"]));
    assert_eq!(
        target["properties"]["group"]["default"],
        "networking.k8s.io"
    );
    assert_eq!(
        target["properties"]["kind"]["enum"],
        json!(["Ingress", "HTTPRoute", "Gateway"])
    );
    assert_eq!(
        target["properties"]["group"]["enum"],
        json!(["networking.k8s.io", "gateway.networking.k8s.io"])
    );
    // A Gateway API policy whose effect reaches routes through their Gateway (GEP-713).
    assert_eq!(
        crd["metadata"]["labels"]["gateway.networking.k8s.io/policy"],
        "inherited"
    );

    let selector = &spec["properties"]["ingressSelector"]["properties"];
    assert_eq!(selector["matchLabels"]["type"], "object");
    assert_eq!(selector["matchExpressions"]["type"], "array");

    let status = &root["properties"]["status"]["properties"];
    assert_eq!(status["observedGeneration"]["type"], "integer");
    assert_eq!(status["attachedIngresses"]["type"], "integer");
    let conditions = &status["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    let condition = &conditions["items"];
    for key in [
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    ] {
        assert!(
            condition["properties"][key].is_object(),
            "condition lacks {key}"
        );
    }
}

/// The checker itself: each of these is a mistake schemars or a hand edit can make.
#[test]
fn structural_check_catches_known_mistakes() {
    let bad = [
        json!({"type": "object", "properties": {"a": {"description": "no type"}}}),
        json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}}),
        json!({"type": ["string", "null"]}),
        json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
        json!({"type": "object", "additionalProperties": true}),
        json!({"type": "array"}),
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}),
        json!({"type": "object", "oneOf": [{"properties": {"x": {"minLength": 1}}}]}),
        json!({"type": "integer", "format": "uint32"}),
        json!({"type": "array", "x-kubernetes-list-type": "map",
               "x-kubernetes-list-map-keys": ["name"],
               "items": {"type": "object", "properties": {"name": {"type": "string"}}}}),
    ];
    for schema in bad {
        let mut problems = Vec::new();
        check_node(&schema, "s", false, &mut problems);
        assert!(!problems.is_empty(), "not caught: {schema}");
    }
    let good = json!({
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": true,
                     "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    });
    let mut problems = Vec::new();
    check_node(&good, "s", false, &mut problems);
    assert_eq!(problems, Vec::<String>::new());
}

fn check_node(node: &Value, path: &str, in_junctor: bool, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: a schema must be an object, found {node}"));
        return;
    };
    for key in obj.keys() {
        if !ALLOWED_KEYS.contains(&key.as_str()) {
            problems.push(format!("{path}: key `{key}` is not allowed"));
        }
    }
    let flag = |k: &str| obj.get(k) == Some(&Value::Bool(true));
    let preserve_unknown = flag("x-kubernetes-preserve-unknown-fields");
    let int_or_string = flag("x-kubernetes-int-or-string");

    if in_junctor {
        for key in FORBIDDEN_IN_JUNCTORS {
            if obj.contains_key(*key) {
                problems.push(format!(
                    "{path}: `{key}` inside allOf/anyOf/oneOf/not is not structural"
                ));
            }
        }
    } else {
        match obj.get("type").and_then(Value::as_str) {
            Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
            Some(other) => problems.push(format!("{path}: unknown type `{other}`")),
            None if obj.get("type").is_some() => {
                problems.push(format!("{path}: `type` must be a single string"))
            }
            None if preserve_unknown || int_or_string => {}
            None => problems.push(format!("{path}: no `type`")),
        }
    }
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        problems.push(format!(
            "{path}: x-kubernetes-preserve-unknown-fields: false"
        ));
    }
    if let Some(format) = obj.get("format").and_then(Value::as_str)
        && !KNOWN_FORMATS.contains(&format)
    {
        problems.push(format!("{path}: unknown format `{format}`"));
    }

    // int-or-string is the one allowed use of anyOf/oneOf with types inside.
    let int_or_string_pattern = json!([{"type": "integer"}, {"type": "string"}]);
    for junctor in ["allOf", "anyOf", "oneOf"] {
        let Some(branches) = obj.get(junctor) else {
            continue;
        };
        if int_or_string && *branches == int_or_string_pattern {
            continue;
        }
        match branches.as_array() {
            Some(branches) => {
                for (i, branch) in branches.iter().enumerate() {
                    check_node(branch, &format!("{path}.{junctor}[{i}]"), true, problems);
                    check_junctor_fields_declared(
                        branch,
                        obj,
                        &format!("{path}.{junctor}[{i}]"),
                        problems,
                    );
                }
            }
            None => problems.push(format!("{path}: `{junctor}` must be a list")),
        }
    }
    if let Some(not) = obj.get("not") {
        check_node(not, &format!("{path}.not"), true, problems);
    }

    if let Some(props) = obj.get("properties") {
        if obj.contains_key("additionalProperties") {
            problems.push(format!(
                "{path}: `properties` and `additionalProperties` together"
            ));
        }
        if !in_junctor && obj.get("type").and_then(Value::as_str) != Some("object") {
            problems.push(format!("{path}: `properties` on a non-object"));
        }
        for (name, prop) in props.as_object().into_iter().flatten() {
            check_node(prop, &format!("{path}.{name}"), in_junctor, problems);
        }
    }
    match obj.get("additionalProperties") {
        None => {}
        Some(Value::Bool(_)) => problems.push(format!(
            "{path}: boolean `additionalProperties` (use a schema, or preserve-unknown-fields)"
        )),
        Some(schema) => check_node(schema, &format!("{path}.*"), in_junctor, problems),
    }
    match obj.get("items") {
        None if !in_junctor && obj.get("type").and_then(Value::as_str) == Some("array") => {
            problems.push(format!("{path}: array without `items`"))
        }
        None => {}
        Some(items @ Value::Object(_)) => {
            check_node(items, &format!("{path}[]"), in_junctor, problems)
        }
        Some(_) => problems.push(format!("{path}: `items` must be one schema")),
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        for name in required {
            let name = name.as_str().unwrap_or_default();
            if !in_junctor && obj["properties"].get(name).is_none() {
                problems.push(format!("{path}: required `{name}` is not a property"));
            }
        }
    }
    if let Some(keys) = obj.get("x-kubernetes-list-map-keys") {
        if obj.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
            problems.push(format!("{path}: list-map-keys without list-type map"));
        }
        let item = &obj["items"];
        for key in keys.as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            let required = item["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|k| k == key));
            let defaulted = item["properties"][key].get("default").is_some();
            if !required && !defaulted {
                problems.push(format!(
                    "{path}: list map key `{key}` must be required or defaulted"
                ));
            }
        }
    }
}

/// Every property or item named inside a junctor must also be declared outside it.
fn check_junctor_fields_declared(
    branch: &Value,
    outer: &serde_json::Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    for name in branch["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if outer.get("properties").and_then(|p| p.get(name)).is_none() {
            problems.push(format!(
                "{path}: property `{name}` is not declared outside the junctor"
            ));
        }
    }
    if branch.get("items").is_some() && !outer.contains_key("items") {
        problems.push(format!("{path}: `items` not declared outside the junctor"));
    }
}

/// Calls `f` with the path and schema of every named property under `node`.
fn walk_properties(node: &Value, path: &str, f: &mut impl FnMut(&str, &Value)) {
    for (name, prop) in node["properties"].as_object().into_iter().flatten() {
        let here = format!("{path}.{name}");
        f(&here, prop);
        walk_properties(prop, &here, f);
    }
    if let Some(items) = node.get("items") {
        walk_properties(items, &format!("{path}[]"), f);
    }
    if let Some(Value::Object(_)) = node.get("additionalProperties") {
        walk_properties(&node["additionalProperties"], &format!("{path}.*"), f);
    }
}

fn crd_value() -> Value {
    serde_json::to_value(<IdentityPolicy as kube::CustomResourceExt>::crd()).unwrap()
}

// === the documented example ===

/// The IdentityPolicy example of the design contract (README.md, docs/policy.md), with `lastTransitionTime` added: the apiserver
/// requires it on every condition (metav1.Condition), so real objects always carry it.
const DESIGN_EXAMPLE: &str = r#"
apiVersion: portcullis.dev/v1alpha1
kind: IdentityPolicy
metadata: {name: admins, namespace: apps}
spec:
  targetRefs:                 # Ingresses in this namespace this policy applies to
    - {kind: Ingress, name: grafana}
  ingressSelector:            # or: every Ingress in this namespace matching labels
    matchLabels: {team: ops}
  rules:                      # a policy document (section 5)
    - allow:
        and:
          - groups: {has: admin}
    - deny:
        or:
          - http_method: {is: DELETE}
status:
  observedGeneration: 3
  attachedIngresses: 2
  conditions:                 # Accepted (rules valid), ResolvedRefs (targets exist)
    - {type: Accepted, status: "True", reason: Valid, message: "", lastTransitionTime: "2025-01-01T00:00:00Z"}
"#;

#[test]
fn design_example_reads_back() {
    let policy: IdentityPolicy =
        serde_saphyr::from_str(DESIGN_EXAMPLE).expect("the contract example deserializes");
    assert_eq!(policy.metadata.name.as_deref(), Some("admins"));
    assert_eq!(policy.metadata.namespace.as_deref(), Some("apps"));

    let spec: &IdentityPolicySpec = &policy.spec;
    // `group` was left out: it defaults to the Ingress API group.
    assert_eq!(spec.target_refs, [TargetRef::ingress("grafana")]);
    assert!(spec.target_refs[0].is_ingress());
    let selector = spec.ingress_selector.as_ref().unwrap();
    assert_eq!(
        selector
            .match_labels
            .as_ref()
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("ops")
    );
    assert!(selector.match_expressions.is_none());
    assert_eq!(
        spec.rules_document(),
        json!([
            {"allow": {"and": [{"groups": {"has": "admin"}}]}},
            {"deny": {"or": [{"http_method": {"is": "DELETE"}}]}},
        ])
    );

    let status = policy.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.attached_ingresses, 2);
    assert_eq!(status.conditions.len(), 1);
    let accepted = &status.conditions[0];
    assert_eq!(accepted.type_, CONDITION_ACCEPTED);
    assert_eq!(accepted.status, "True");
    assert_eq!(accepted.reason, REASON_VALID);
    assert_eq!(accepted.message, "");

    // And back: what we write is what we read.
    let json = serde_json::to_value(&policy).unwrap();
    let again: IdentityPolicy = serde_json::from_value(json).unwrap();
    assert_eq!(again, policy);
}

#[test]
fn minimal_policy_needs_only_rules() {
    let policy: IdentityPolicy = serde_saphyr::from_str(
        "apiVersion: portcullis.dev/v1alpha1\nkind: IdentityPolicy\nmetadata: {name: p}\nspec:\n  rules: []\n",
    )
    .unwrap();
    assert!(policy.spec.target_refs.is_empty());
    assert!(policy.spec.ingress_selector.is_none());
    assert!(policy.spec.rules.is_empty());
    assert!(policy.status.is_none());
    // Empty optional fields stay out of what we send.
    assert_eq!(
        serde_json::to_value(&policy.spec).unwrap(),
        json!({"rules": []})
    );
}

#[test]
fn rules_must_be_objects() {
    let err = serde_saphyr::from_str::<IdentityPolicy>(
        "apiVersion: portcullis.dev/v1alpha1\nkind: IdentityPolicy\nmetadata: {name: p}\nspec:\n  rules: [allow]\n",
    );
    assert!(err.is_err(), "a bare string is not a rule");
}
