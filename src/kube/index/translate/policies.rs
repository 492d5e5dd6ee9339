//! IdentityPolicy reports: `Accepted` (its rules and selector compile), `ResolvedRefs`
//! (each `targetRefs` entry names an Ingress of ours, or a Gateway API object attached
//! to one of our Gateways), and what it is attached to.

use std::collections::{HashMap, HashSet};

use super::super::ObjectKey;
use super::super::gateway::GatewayTranslation;
use super::super::report::{ConditionState, IdentityPolicyReport, reasons};
use super::super::store::IngressEntry;
use super::Translator;
use crate::kube::crd::{
    REASON_INVALID_KIND, REASON_INVALID_RULES, REASON_REFS_RESOLVED, REASON_TARGET_NOT_FOUND,
    REASON_VALID,
};

// === impl Translator ===

impl Translator<'_> {
    pub(super) fn policy_reports(
        &self,
        ours: &[(&ObjectKey, &IngressEntry)],
        attached: &HashMap<&ObjectKey, i32>,
        gateway: &GatewayTranslation,
    ) -> Vec<IdentityPolicyReport> {
        let our_keys: HashSet<&ObjectKey> = ours.iter().map(|(k, _)| *k).collect();
        self.index
            .policies
            .items
            .iter()
            .map(|(key, entry)| {
                let accepted = match (&entry.rules, &entry.selector) {
                    (Err(e), _) => ConditionState {
                        status: false,
                        reason: REASON_INVALID_RULES,
                        message: e.to_string(),
                    },
                    (_, Err(e)) => ConditionState {
                        status: false,
                        reason: reasons::INVALID_SELECTOR,
                        message: e.clone(),
                    },
                    _ => ConditionState {
                        status: true,
                        reason: REASON_VALID,
                        message: String::new(),
                    },
                };

                let mut reason = REASON_REFS_RESOLVED;
                let mut problems = Vec::new();
                let reached = gateway.policies.get(key);
                for (i, t) in entry.policy.spec.target_refs.iter().enumerate() {
                    let target = ObjectKey::new(&key.namespace, &t.name);
                    if let Some(kind) = t.gateway_kind() {
                        let found = reached
                            .is_some_and(|r| r.targets.iter().any(|(k, tk)| *k == kind && *tk == target));
                        if !found {
                            if reason == REASON_REFS_RESOLVED {
                                reason = REASON_TARGET_NOT_FOUND;
                            }
                            problems.push(format!(
                                "targetRefs[{i}]: {kind} {target} not found, or not attached to a Gateway of a Portcullis GatewayClass"
                            ));
                        }
                    } else if !t.is_ingress() {
                        reason = REASON_INVALID_KIND;
                        problems.push(format!(
                            "targetRefs[{i}]: {}/{} is not networking.k8s.io/Ingress",
                            t.group, t.kind
                        ));
                    } else if !our_keys.contains(&target) {
                        if reason == REASON_REFS_RESOLVED {
                            reason = REASON_TARGET_NOT_FOUND;
                        }
                        let why = if self.index.ingresses.get(&target).is_some() {
                            "is not of a Portcullis IngressClass"
                        } else {
                            "not found"
                        };
                        problems.push(format!("targetRefs[{i}]: Ingress {target} {why}"));
                    }
                }
                IdentityPolicyReport {
                    key: key.clone(),
                    generation: entry.policy.metadata.generation,
                    attached_ingresses: attached.get(key).copied().unwrap_or(0),
                    attached_routes: reached.map_or(0, |r| r.routes),
                    ancestors: reached.map(|r| r.ancestors.clone()).unwrap_or_default(),
                    accepted,
                    resolved_refs: ConditionState {
                        status: problems.is_empty(),
                        reason,
                        message: problems.join("; "),
                    },
                }
            })
            .collect()
    }
}
