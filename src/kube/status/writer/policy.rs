//! IdentityPolicy status: the `Accepted` and `ResolvedRefs` conditions, the attached
//! Ingresses and routes, the Gateway ancestors (GEP-713), and a warning Event for each
//! failing condition.

use std::collections::HashSet;

use kube::Api;
use serde_json::{Value, json};

use super::super::events::object_reference;
use super::{NoteId, Writer, apply_status};
use crate::kube::crd::{CONDITION_ACCEPTED, CONDITION_RESOLVED_REFS, IdentityPolicy};
use crate::kube::index::{ConditionState, NoteType, ObjectKey, Translation};

const POLICY_API_VERSION: &str = "portcullis.dev/v1alpha1";

// === impl Writer ===

impl Writer {
    pub(super) async fn write_policies(
        &mut self,
        t: &Translation,
        still_noted: &mut HashSet<NoteId>,
    ) {
        for report in &t.policies {
            let failing = [&report.accepted, &report.resolved_refs]
                .into_iter()
                .filter(|state| !state.status);
            let conditions = [
                self.condition(
                    &report.key,
                    CONDITION_ACCEPTED,
                    &report.accepted,
                    report.generation,
                ),
                self.condition(
                    &report.key,
                    CONDITION_RESOLVED_REFS,
                    &report.resolved_refs,
                    report.generation,
                ),
            ];
            let mut status = json!({
                "attachedIngresses": report.attached_ingresses,
                "conditions": conditions,
            });
            if self.gateway.is_some() {
                status["attachedRoutes"] = json!(report.attached_routes);
                status["ancestors"] = json!(self.ancestors(report));
            }
            if let Some(generation) = report.generation {
                status["observedGeneration"] = generation.into();
            }
            if self.policy_status.get(&report.key) == Some(&status) {
                for state in failing {
                    still_noted.insert((report.key.clone(), state.reason, state.message.clone()));
                }
                continue;
            }
            if !self.gate.open() {
                // Written on the next claim; what was published stands meanwhile.
                for state in failing {
                    still_noted.insert((report.key.clone(), state.reason, state.message.clone()));
                }
                continue;
            }
            let api: Api<IdentityPolicy> =
                Api::namespaced(self.client.clone(), &report.key.namespace);
            let body = json!({
                "apiVersion": POLICY_API_VERSION,
                "kind": "IdentityPolicy",
                "metadata": {"name": report.key.name, "namespace": report.key.namespace},
                "status": status,
            });
            let force = !self
                .applied
                .contains(&("IdentityPolicy", report.key.clone()));
            let obj = match apply_status(&api, &report.key, &self.params, &body, force).await {
                Ok(obj) => obj,
                Err(e) => {
                    tracing::warn!(policy = %report.key, error = %e,
                        "cannot write IdentityPolicy status");
                    continue;
                }
            };
            self.applied.insert(("IdentityPolicy", report.key.clone()));
            self.policy_status.insert(report.key.clone(), status);
            let reference = object_reference(&obj.metadata, POLICY_API_VERSION, "IdentityPolicy");
            for state in failing {
                let id = (report.key.clone(), state.reason, state.message.clone());
                still_noted.insert(id.clone());
                if !self.published.contains(&id) && self.gate.open() {
                    self.published.insert(id);
                    tracing::warn!(policy = %report.key, reason = state.reason, "{}", state.message);
                    self.recorder
                        .publish(NoteType::Warning, state.reason, &state.message, &reference)
                        .await;
                }
            }
        }
    }

    /// A condition, keeping its transition time while its status and reason stand.
    fn condition(
        &mut self,
        key: &ObjectKey,
        type_: &'static str,
        state: &ConditionState,
        generation: Option<i64>,
    ) -> Value {
        self.transitions
            .condition(key, "", type_, state, generation)
    }

    /// A policy's `status.ancestors` (GEP-713): one entry per Gateway it applies under.
    fn ancestors(&mut self, report: &crate::kube::index::IdentityPolicyReport) -> Vec<Value> {
        report
            .ancestors
            .iter()
            .map(|g| {
                let accepted = ConditionState {
                    status: report.accepted.status,
                    reason: if report.accepted.status {
                        "Accepted"
                    } else {
                        "Invalid"
                    },
                    message: report.accepted.message.clone(),
                };
                json!({
                    "ancestorRef": {
                        "group": crate::kube::gateway::GROUP,
                        "kind": crate::kube::gateway::KIND_GATEWAY,
                        "namespace": g.namespace,
                        "name": g.name,
                    },
                    "controllerName": self.controller_name,
                    "conditions": [self.transitions.condition(
                        &report.key,
                        &format!("ancestor/{g}"),
                        CONDITION_ACCEPTED,
                        &accepted,
                        report.generation,
                    )],
                })
            })
            .collect()
    }
}
