//! Our GatewayClasses and their one parameter: whether routes with no IdentityPolicy
//! at any level are public (`routesWithoutPolicy: allowPublicUnauthenticatedAccess` in
//! a ConfigMap of the controller's namespace, for the conformance suite) or denied
//! (the default, and what a class without parameters does).

use std::collections::BTreeMap;

use super::super::report::ConditionState;
use super::super::{Index, ObjectKey};
use super::{GatewayClassReport, GatewaySettings, SUPPORTED_FEATURES};
use crate::kube::gateway::reasons;

/// The ConfigMap key that decides routes without a policy.
pub const ROUTES_WITHOUT_POLICY_KEY: &str = "routesWithoutPolicy";
/// Its values.
pub const DENY: &str = "deny";
pub const ALLOW_PUBLIC: &str = "allowPublicUnauthenticatedAccess";

/// One of our classes, judged.
#[derive(Debug, Clone)]
pub(super) struct Class {
    pub name: String,
    pub generation: Option<i64>,
    pub accepted: ConditionState,
    /// Routes without any policy are public (conformance runs only).
    pub public_without_policy: bool,
}

#[derive(Debug, Default)]
pub(super) struct Classes {
    by_name: BTreeMap<String, Class>,
}

impl Classes {
    /// Whether Gateways of class `name` are ours to serve: the class is ours and
    /// accepted.
    pub fn serves(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|c| c.accepted.status)
    }

    pub fn get(&self, name: &str) -> Option<&Class> {
        self.by_name.get(name)
    }

    pub fn reports(&self) -> Vec<GatewayClassReport> {
        self.by_name
            .values()
            .map(|c| GatewayClassReport {
                name: c.name.clone(),
                generation: c.generation,
                accepted: c.accepted.clone(),
                supported_features: SUPPORTED_FEATURES.to_vec(),
            })
            .collect()
    }
}

pub(super) fn evaluate(index: &Index, settings: &GatewaySettings) -> Classes {
    let mut out = Classes::default();
    for (key, class) in &index.gateway_classes.items {
        if class.spec.controller_name != settings.controller_name {
            continue;
        }
        let (accepted, public) = match &class.spec.parameters_ref {
            None => (ok(), false),
            Some(p) => match parameters(index, p) {
                Ok(public) => (ok(), public),
                Err(message) => (
                    ConditionState {
                        status: false,
                        reason: reasons::INVALID_PARAMETERS,
                        message,
                    },
                    false,
                ),
            },
        };
        out.by_name.insert(
            key.name.clone(),
            Class {
                name: key.name.clone(),
                generation: class.metadata.generation,
                accepted,
                public_without_policy: public,
            },
        );
    }
    out
}

fn ok() -> ConditionState {
    ConditionState {
        status: true,
        reason: reasons::ACCEPTED,
        message: String::new(),
    }
}

/// Reads the parameters: `Ok(true)` when routes without a policy are public.
fn parameters(
    index: &Index,
    p: &crate::kube::gateway::api::ParametersReference,
) -> Result<bool, String> {
    let controller_ns = &index.settings.tenancy.controller_namespace;
    if !(p.group.is_empty() && p.kind == "ConfigMap") {
        return Err(format!(
            "parametersRef names {}/{}; Portcullis reads only a ConfigMap (group \"\") in its own namespace {controller_ns}",
            p.group, p.kind
        ));
    }
    let ns = p.namespace.as_deref().unwrap_or_default();
    if ns != controller_ns.as_str() {
        return Err(format!(
            "parametersRef must name a ConfigMap in Portcullis's namespace {controller_ns}, not `{ns}`"
        ));
    }
    let Some(cm) = index
        .config_maps
        .get(&ObjectKey::new(controller_ns.as_str(), p.name.as_str()))
    else {
        return Err(format!("ConfigMap {controller_ns}/{} not found", p.name));
    };
    let data = cm.data.clone().unwrap_or_default();
    for k in data.keys() {
        if k != ROUTES_WITHOUT_POLICY_KEY {
            return Err(format!(
                "ConfigMap {controller_ns}/{}: unknown key `{k}` (the only key is {ROUTES_WITHOUT_POLICY_KEY})",
                p.name
            ));
        }
    }
    match data.get(ROUTES_WITHOUT_POLICY_KEY).map(|v| v.trim()) {
        None | Some(DENY) => Ok(false),
        Some(ALLOW_PUBLIC) => Ok(true),
        Some(other) => Err(format!(
            "ConfigMap {controller_ns}/{}: {ROUTES_WITHOUT_POLICY_KEY} is `{other}`; use {DENY} or {ALLOW_PUBLIC}",
            p.name
        )),
    }
}
