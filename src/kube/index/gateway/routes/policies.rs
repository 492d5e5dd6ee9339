//! Who may pass a route: the IdentityPolicies that target it and its Gateway, compiled,
//! and the route's own with the Gateway's as their baseline.

use std::collections::HashMap;

use crate::kube::gateway::{GROUP, KIND_GATEWAY, KIND_HTTP_ROUTE};
use crate::kube::index::gateway::listeners::GatewayState;
use crate::kube::index::{Index, ObjectKey};
use crate::policy::{Policy, Shorthands};

/// IdentityPolicies by the kind and key of what they target.
pub(super) struct Targets<'a> {
    by_target: HashMap<(&'static str, ObjectKey), Vec<&'a ObjectKey>>,
}

impl<'a> Targets<'a> {
    pub(super) fn new(index: &'a Index) -> Self {
        let mut by_target: HashMap<(&'static str, ObjectKey), Vec<&'a ObjectKey>> = HashMap::new();
        for (key, entry) in &index.policies.items {
            for t in &entry.policy.spec.target_refs {
                let kind = match (t.group.as_str(), t.kind.as_str()) {
                    (GROUP, KIND_HTTP_ROUTE) => KIND_HTTP_ROUTE,
                    (GROUP, KIND_GATEWAY) => KIND_GATEWAY,
                    _ => continue,
                };
                let list = by_target
                    .entry((kind, ObjectKey::new(&key.namespace, t.name.as_str())))
                    .or_default();
                if !list.contains(&key) {
                    list.push(key);
                }
            }
        }
        Targets { by_target }
    }

    pub(super) fn of(&self, kind: &'static str, key: &ObjectKey) -> Vec<ObjectKey> {
        self.by_target
            .get(&(kind, key.clone()))
            .map(|l| l.iter().map(|k| (*k).clone()).collect())
            .unwrap_or_default()
    }
}

/// The union of some IdentityPolicies' rules.
pub(super) struct Policies {
    policy: Policy,
    keys: Vec<ObjectKey>,
    /// Why it denies everyone, when one of them is invalid.
    pub(super) invalid: Option<String>,
}

/// The policies `keys` name, compiled. `None`: no policies.
pub(super) fn compile_policies(index: &Index, keys: &[ObjectKey]) -> Option<Policies> {
    if keys.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for k in keys {
        let Some(entry) = index.policies.get(k) else {
            continue;
        };
        match &entry.rules {
            Ok(p) => parts.push(p.clone()),
            Err(e) => {
                let why = format!("IdentityPolicy {k} has invalid rules: {e}");
                return Some(Policies {
                    policy: Policy::deny_all(why.clone()),
                    keys: keys.to_vec(),
                    invalid: Some(why),
                });
            }
        }
    }
    Some(Policies {
        policy: Policy::union(parts),
        keys: keys.to_vec(),
        invalid: None,
    })
}

/// The route's own policies with the Gateway's as their baseline, and where they come
/// from (for the decision log).
pub(super) fn effective_policy(
    own: Option<&Policies>,
    baseline: Option<&Policies>,
    g: &GatewayState<'_>,
) -> (Policy, String) {
    let names = |keys: &[ObjectKey]| {
        keys.iter()
            .map(|k| format!("IdentityPolicy {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (own, baseline) {
        (Some(o), Some(b)) => (
            o.policy.clone().all_of(b.policy.clone()),
            format!("{}; Gateway {}: {}", names(&o.keys), g.key, names(&b.keys)),
        ),
        (Some(o), None) => (o.policy.clone(), names(&o.keys)),
        (None, Some(b)) => (
            b.policy.clone(),
            format!("Gateway {}: {}", g.key, names(&b.keys)),
        ),
        (None, None) if g.public_without_policy => (
            Policy::from_shorthands(&Shorthands {
                allow_public_unauthenticated_access: true,
                ..Shorthands::default()
            }),
            "GatewayClass parameters: routes without policy are public".to_string(),
        ),
        (None, None) => (Policy::default(), String::new()),
    }
}
