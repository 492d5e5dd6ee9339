//! One route's attachment to one parentRef: the Gateway it names, the listeners that
//! parentRef selects (`sectionName`, `port`) and that admit the route (`allowedRoutes`
//! kinds and namespaces), the hostnames it has in common with each, and of those the
//! ones its namespace may use ([`route_may_use`]).

use super::hostnames::intersect;
use crate::kube::gateway::api::ParentReference;
use crate::kube::gateway::{GROUP, KIND_GATEWAY, reasons};
use crate::kube::index::gateway::listeners::{
    GatewayState, ListenerState, route_may_use, shares_owned_names,
};
use crate::kube::index::gateway::ownership_host;
use crate::kube::index::ownership::Owners;
use crate::kube::index::report::ConditionState;
use crate::kube::index::selector::Selector;
use crate::kube::index::{Index, ObjectKey};
use crate::routes::gateway::GatewayHost;

/// The Gateway a parentRef names, when it names one.
pub(in crate::kube::index::gateway) fn parent_gateway(
    route: &ObjectKey,
    p: &ParentReference,
) -> Option<ObjectKey> {
    let group = p.group.as_deref().unwrap_or(GROUP);
    let kind = p.kind.as_deref().unwrap_or(KIND_GATEWAY);
    (group == GROUP && kind == KIND_GATEWAY).then(|| {
        ObjectKey::new(
            p.namespace.as_deref().unwrap_or(&route.namespace),
            p.name.as_str(),
        )
    })
}

/// A route's standing with one parentRef: its Accepted condition, and the listeners
/// it attached to with the hostnames it has on each.
pub(super) fn attach_parent(
    index: &Index,
    owners: &Owners,
    key: &ObjectKey,
    hostnames: &[GatewayHost],
    p: &ParentReference,
    g: &GatewayState<'_>,
) -> (ConditionState, Vec<(usize, Vec<GatewayHost>)>) {
    let refuse = |reason: &'static str, message: String| {
        (
            ConditionState {
                status: false,
                reason,
                message,
            },
            Vec::new(),
        )
    };
    if let Some((_, why)) = &g.refused {
        return refuse(
            reasons::NO_MATCHING_PARENT,
            format!("Gateway {} is not accepted: {why}", g.key),
        );
    }
    let named: Vec<usize> = g
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            p.section_name.as_ref().is_none_or(|s| *s == l.spec.name)
                && p.port.is_none_or(|port| port == l.spec.port)
        })
        .map(|(i, _)| i)
        .collect();
    if named.is_empty() {
        let what = match (&p.section_name, p.port) {
            (Some(s), Some(port)) => format!("a listener `{s}` on port {port}"),
            (Some(s), None) => format!("a listener `{s}`"),
            (None, Some(port)) => format!("a listener on port {port}"),
            (None, None) => "any listener".to_string(),
        };
        return refuse(
            reasons::NO_MATCHING_PARENT,
            format!("Gateway {} has no {what}", g.key),
        );
    }
    let allowed: Vec<usize> = named
        .into_iter()
        .filter(|&i| {
            let l = &g.listeners[i];
            l.usable() && l.allows_http_routes() && admits(index, l, g.key, &key.namespace)
        })
        .collect();
    if allowed.is_empty() {
        return refuse(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no listener of Gateway {} that this parentRef names admits HTTPRoutes from namespace {}",
                g.key, key.namespace
            ),
        );
    }
    let mut attached = Vec::new();
    let mut not_owned: Vec<String> = Vec::new();
    for i in allowed {
        let l = &g.listeners[i];
        let Some(hosts) = intersect(l.hostname.as_ref(), hostnames) else {
            continue;
        };
        let mut kept = Vec::new();
        let shares = shares_owned_names(l, &g.key.namespace, owners);
        for h in hosts {
            match route_may_use(
                owners,
                &key.namespace,
                &g.key.namespace,
                shares,
                &ownership_host(&h),
            ) {
                Ok(()) => kept.push(h),
                Err(why) => not_owned.push(why),
            }
        }
        if kept.is_empty() && !(l.hostname.is_none() && hostnames.is_empty()) {
            continue;
        }
        attached.push((i, kept));
    }
    if attached.is_empty() {
        return if not_owned.is_empty() {
            refuse(
                reasons::NO_MATCHING_LISTENER_HOSTNAME,
                format!(
                    "no listener of Gateway {} has a hostname in common with the route",
                    g.key
                ),
            )
        } else {
            not_owned.dedup();
            refuse(reasons::HOST_NOT_OWNED, not_owned.join("; "))
        };
    }
    (
        ConditionState {
            status: true,
            reason: reasons::ACCEPTED,
            message: String::new(),
        },
        attached,
    )
}

/// Whether a listener's `allowedRoutes.namespaces` admits routes of `ns`.
fn admits(index: &Index, l: &ListenerState<'_>, gw: &ObjectKey, ns: &str) -> bool {
    let spec = l
        .spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match spec.and_then(|s| s.from.as_deref()).unwrap_or("Same") {
        "Same" => ns == gw.namespace,
        "All" => true,
        "Selector" => {
            let Some(selector) = spec
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| Selector::compile(s).ok())
            else {
                return false;
            };
            index
                .namespaces
                .get(&ObjectKey::new("", ns))
                .is_some_and(|n| selector.matches(n.metadata.labels.as_ref()))
        }
        _ => false,
    }
}
