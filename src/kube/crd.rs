//! The `IdentityPolicy` custom resource (`identitypolicies.portcullis.dev/v1alpha1`) and
//! the CRD generated from it.
//!
//! The Rust types are the source of truth: doc comments become `kubectl explain` text,
//! and [`crd_yaml`] prints the CRD committed at `crds/identitypolicies.portcullis.dev.yaml`
//! (`portcullis crd`; `tests/crd.rs` fails when the two drift apart).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the CRD object (`<plural>.<group>`).
pub const CRD_NAME: &str = "identitypolicies.portcullis.dev";

/// Default `group` of a [`TargetRef`]: the Ingress API group.
pub const INGRESS_GROUP: &str = "networking.k8s.io";
/// `kind` of an Ingress target.
pub const INGRESS_KIND: &str = "Ingress";

/// Condition type: the rules parsed and compiled (status `True`), or did not (`False`).
pub const CONDITION_ACCEPTED: &str = "Accepted";
/// Condition type: every `targetRefs` entry names an Ingress that exists (`True`), or not.
pub const CONDITION_RESOLVED_REFS: &str = "ResolvedRefs";

/// `Accepted=True`: the rules are a valid policy document.
pub const REASON_VALID: &str = "Valid";
/// `Accepted=False`: the rules do not parse; the message carries the error and its location.
pub const REASON_INVALID_RULES: &str = "InvalidRules";
/// `ResolvedRefs=True`: every target exists (also when there are no `targetRefs`).
pub const REASON_REFS_RESOLVED: &str = "RefsResolved";
/// `ResolvedRefs=False`: a `targetRefs` entry names an Ingress that does not exist.
pub const REASON_TARGET_NOT_FOUND: &str = "TargetNotFound";
/// `ResolvedRefs=False`: a `targetRefs` entry names a group/kind other than
/// `networking.k8s.io/Ingress` (the CRD schema refuses those; this covers objects
/// stored under an older schema).
pub const REASON_INVALID_KIND: &str = "InvalidKind";

/// Access rules for Ingresses and Gateway API routes served by Portcullis.
///
/// An IdentityPolicy attaches to Ingresses in its own namespace in three ways, which
/// add up: by name (`targetRefs`), by labels (`ingressSelector`), or from the Ingress
/// side with the annotation `portcullis.dev/identity-policy: <name>[,<name>...]`.
/// A route's effective policy is the union of the rules of every policy attached to
/// it plus its annotation shorthands; a route with no policy at all denies everyone.
/// Invalid rules never open a route: the policy is reported `Accepted=False` and the
/// Ingresses it is attached to deny access.
///
/// With Gateway API, `targetRefs` may name HTTPRoutes and Gateways of its namespace.
/// A Gateway's policies are a baseline for every route attached to it: a request
/// passes only if they allow it and the route's own policies (their union) allow it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "portcullis.dev",
    version = "v1alpha1",
    kind = "IdentityPolicy",
    plural = "identitypolicies",
    singular = "identitypolicy",
    shortname = "idpol",
    category = "portcullis",
    namespaced,
    status = "IdentityPolicyStatus",
    derive = "PartialEq",
    label("gateway.networking.k8s.io/policy", "inherited"),
    doc = "IdentityPolicy holds identity-aware access rules (Pomerium policy language) \
           for Ingresses served by Portcullis in the same namespace.",
    printcolumn(
        name = "Accepted",
        type_ = "string",
        description = "Whether the rules are a valid policy document",
        json_path = r#".status.conditions[?(@.type=="Accepted")].status"#
    ),
    printcolumn(
        name = "Ingresses",
        type_ = "integer",
        description = "Number of Ingresses this policy is attached to",
        json_path = ".status.attachedIngresses"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityPolicySpec {
    /// Ingresses, HTTPRoutes and Gateways in this namespace that this policy applies
    /// to, by name. Adds to the Ingresses picked by `ingressSelector`. A name that does
    /// not exist is reported in the `ResolvedRefs` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,

    /// Applies this policy to every Ingress in this namespace whose labels match.
    /// Adds to `targetRefs`. An empty selector (`{}`) matches every Ingress in the
    /// namespace; leaving the field out matches none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_selector: Option<LabelSelector>,

    /// The policy document, in Pomerium's policy language (PPL): a list of rules, each
    /// an object holding `allow` and/or `deny`, which hold the operators `and`, `or`,
    /// `not`, `nor` over criteria such as `email`, `domain`, `groups`, `claim/<name>`,
    /// `http_method`, `http_path`, `source_ip`, `date`, `day_of_week`, `time_of_day`.
    /// Example: `[{allow: {and: [{groups: {has: admin}}]}}]`. Any matching `deny` wins
    /// over every `allow`; nothing matching denies. Portcullis validates the rules and
    /// reports errors, with their location, in the `Accepted` condition.
    #[schemars(schema_with = "rules_schema")]
    pub rules: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// An object this policy applies to, by name, in the policy's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API group of the target: `networking.k8s.io` (the default) for an Ingress,
    /// `gateway.networking.k8s.io` for an HTTPRoute or a Gateway.
    #[serde(default = "default_target_group")]
    #[schemars(extend("enum" = [INGRESS_GROUP, crate::kube::gateway::GROUP]))]
    pub group: String,

    /// Kind of the target: `Ingress`, `HTTPRoute` or `Gateway`.
    #[schemars(extend("enum" = [INGRESS_KIND, crate::kube::gateway::KIND_HTTP_ROUTE, crate::kube::gateway::KIND_GATEWAY]))]
    pub kind: String,

    /// Name of the target, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What Portcullis last observed about this policy. Written by the elected leader only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityPolicyStatus {
    /// The `metadata.generation` this status describes. When it is behind
    /// `metadata.generation`, Portcullis has not yet processed the latest change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Number of Ingresses this policy is attached to, by `targetRefs`,
    /// `ingressSelector` or the `portcullis.dev/identity-policy` annotation.
    #[serde(default)]
    pub attached_ingresses: i32,

    /// Current state of the policy. `Accepted`: the rules are valid (reasons `Valid`,
    /// `InvalidRules`). `ResolvedRefs`: every `targetRefs` entry names an existing
    /// Ingress, HTTPRoute or Gateway (reasons `RefsResolved`, `TargetNotFound`,
    /// `InvalidKind`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,

    /// Number of HTTPRoutes this policy decides: those it names, and those attached
    /// to a Gateway it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_routes: Option<i32>,

    /// Gateway API policy status (GEP-713): one entry per Gateway this policy applies
    /// under (the Gateway it names, or the Gateways of the HTTPRoutes it names), with
    /// an `Accepted` condition (reasons `Accepted`, `Invalid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// The policy's status with respect to one Gateway (GEP-713 `PolicyAncestorStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The Gateway.
    pub ancestor_ref: crate::kube::gateway::api::ParentReference,
    /// `portcullis.dev/gateway-controller`.
    pub controller_name: String,
    /// `Accepted`: whether the policy applies there.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

// === impl IdentityPolicySpec ===

impl IdentityPolicySpec {
    /// The rules as one policy document, ready for [`crate::policy::Policy::from_value`].
    pub fn rules_document(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.rules
                .iter()
                .cloned()
                .map(serde_json::Value::Object)
                .collect(),
        )
    }
}

// === impl TargetRef ===

impl TargetRef {
    /// A reference to the Ingress `name`.
    pub fn ingress(name: impl Into<String>) -> Self {
        TargetRef {
            group: INGRESS_GROUP.to_owned(),
            kind: INGRESS_KIND.to_owned(),
            name: name.into(),
        }
    }

    /// Whether this names an Ingress.
    pub fn is_ingress(&self) -> bool {
        self.group == INGRESS_GROUP && self.kind == INGRESS_KIND
    }

    /// The Gateway API kind this names (`HTTPRoute` or `Gateway`), if it names one.
    pub fn gateway_kind(&self) -> Option<&'static str> {
        use crate::kube::gateway::{GROUP, KIND_GATEWAY, KIND_HTTP_ROUTE};
        match (self.group.as_str(), self.kind.as_str()) {
            (GROUP, KIND_HTTP_ROUTE) => Some(KIND_HTTP_ROUTE),
            (GROUP, KIND_GATEWAY) => Some(KIND_GATEWAY),
            _ => None,
        }
    }
}

fn default_target_group() -> String {
    INGRESS_GROUP.to_owned()
}

// === schemas ===

/// Rules are free-form objects: the policy engine validates them (with locations in
/// its errors), so the apiserver only checks that each item is an object. This keeps
/// the schema structural, which a typed PPL schema (untagged unions) could not be.
fn rules_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// Conditions as a list map keyed by `type`, so server-side apply merges a writer's
/// condition instead of replacing the whole list (the Kubernetes API conventions).
fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".to_owned(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".to_owned(),
        serde_json::json!(["type"]),
    );
    schema
}

/// First line of [`crd_yaml`]: tells a reader of the committed file where it comes from.
const GENERATED_HEADER: &str =
    "# Generated by `portcullis crd` from src/kube/crd.rs. Do not edit by hand.\n";

/// The CRD as YAML, exactly as `portcullis crd` prints it and as committed at
/// `crds/identitypolicies.portcullis.dev.yaml`. Deterministic: the same types always
/// give the same bytes.
pub fn crd_yaml() -> String {
    // Through serde_json::Value, whose maps are sorted: key order never follows field order.
    let value = serde_json::to_value(IdentityPolicy::crd()).expect("a CRD serializes to JSON");
    let body = serde_saphyr::to_string(&value).expect("a CRD serializes to YAML");
    format!("{GENERATED_HEADER}{body}")
}
