//! Tenancy through a listener (docs/security.md): which hosts a route may answer on a
//! listener ([`route_may_use`]), and what the routing table is told so that wildcard
//! and host-less rules stay within the same limits at lookup ([`listener_spec`]).

use super::ListenerState;
use crate::kube::index::ownership::{Owners, Standing};
use crate::routes::HostMatch;
use crate::routes::gateway::ListenerSpec;

/// A listener as the routing table takes it: its rules, and whether the Gateway's
/// namespace (`gw_ns`) owns its hostname (then the routes it admits share the names
/// under it that namespace owns; [`crate::routes::gateway::HostStandings`]).
pub(super) fn listener_spec(l: &ListenerState<'_>, gw_ns: &str, owners: &Owners) -> ListenerSpec {
    ListenerSpec {
        name: l.spec.name.clone(),
        hostname: l.hostname.clone(),
        rules: l.rules.clone(),
        gateway_namespace: gw_ns.to_string(),
        shares_owned_names: l
            .hostname
            .as_ref()
            .is_some_and(|h| owners.owns(gw_ns, &super::ownership_host(h))),
    }
}

/// Whether a route of namespace `route_ns` may answer for `host` on listener `l` of a
/// Gateway in `gw_ns`: its namespace owns `host`, or the Gateway's namespace owns the
/// listener's hostname (which covers `host`), admitted the route, and `host` itself is
/// not another namespace's (an exact host an older Ingress or route named before the
/// listener's wildcard was claimed stays its owner's). Nobody may use a reserved host
/// (the sign-in host, the config file's).
pub(in crate::kube::index::gateway) fn route_may_use(
    owners: &Owners,
    route_ns: &str,
    gw_ns: &str,
    l: &ListenerState<'_>,
    host: &HostMatch,
) -> Result<(), String> {
    match owners.standing(route_ns, host) {
        Standing::Owner | Standing::Delegated { .. } => Ok(()),
        Standing::Refused { reason, message } => {
            // Through the listener: only what the Gateway's namespace owns (a delegate
            // owns nothing, so it passes nothing on).
            let reserved = reason == crate::kube::index::reasons::RESERVED_HOST;
            let owned_elsewhere = owners.owners(host).is_some_and(|o| !o.contains(gw_ns));
            match &l.hostname {
                Some(lh)
                    if !reserved
                        && !owned_elsewhere
                        && owners.owns(gw_ns, &super::ownership_host(lh)) =>
                {
                    Ok(())
                }
                _ => Err(message),
            }
        }
    }
}
