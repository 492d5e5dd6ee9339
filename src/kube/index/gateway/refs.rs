//! ReferenceGrant: a Gateway or HTTPRoute may refer to a Secret or Service of another
//! namespace only when that namespace has a ReferenceGrant naming the referrer's kind
//! and namespace (group `gateway.networking.k8s.io`) and the referent's kind (core
//! group) and, if it gives one, name.

use super::super::Index;
use crate::kube::gateway::GROUP;

/// Whether a `from_kind` of `from_ns` may refer to the core-group `to_kind` object
/// `name` of `to_ns`.
pub(super) fn permitted(
    index: &Index,
    (from_kind, from_ns): (&str, &str),
    (to_kind, to_ns): (&str, &str),
    name: &str,
) -> bool {
    if from_ns == to_ns {
        return true;
    }
    index
        .reference_grants
        .items
        .iter()
        .filter(|(k, _)| k.namespace == to_ns)
        .any(|(_, g)| {
            g.spec
                .from
                .iter()
                .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
                && g.spec.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == to_kind
                        && t.name.as_deref().is_none_or(|n| n.is_empty() || n == name)
                })
        })
}
