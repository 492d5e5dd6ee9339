//! When each condition last changed, so `lastTransitionTime` moves only when a
//! condition's status or reason does; shared by the Ingress, IdentityPolicy and Gateway
//! API status writers.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::kube::index::{ConditionState, ObjectKey};

// === impl Transitions ===

/// When each condition of each object last changed, with the state it changed to, so
/// `lastTransitionTime` moves only when status or reason does.
#[derive(Default)]
pub(crate) struct Transitions {
    /// (object, scope within it — a listener, a parent, an ancestor —, type).
    since: HashMap<(ObjectKey, String, &'static str), (String, String, jiff::Timestamp)>,
}

impl Transitions {
    /// The condition as JSON, keeping its transition time while its status and reason
    /// stand.
    pub(crate) fn condition(
        &mut self,
        key: &ObjectKey,
        scope: &str,
        type_: &'static str,
        state: &ConditionState,
        generation: Option<i64>,
    ) -> Value {
        let status = state.status_str().to_string();
        let entry = self
            .since
            .entry((key.clone(), scope.to_string(), type_))
            .or_insert_with(|| {
                (
                    status.clone(),
                    state.reason.to_string(),
                    jiff::Timestamp::now(),
                )
            });
        if entry.0 != status || entry.1 != state.reason {
            *entry = (
                status.clone(),
                state.reason.to_string(),
                jiff::Timestamp::now(),
            );
        }
        let since = entry.2.round(jiff::Unit::Second).unwrap_or(entry.2);
        let mut condition = json!({
            "type": type_,
            "status": status,
            "reason": state.reason,
            "message": state.message,
            "lastTransitionTime": since.to_string(),
        });
        if let Some(generation) = generation {
            condition["observedGeneration"] = generation.into();
        }
        condition
    }
}
