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
        shares_owned_names: shares_owned_names(l, gw_ns, owners),
    }
}

/// The Gateway's namespace (`gw_ns`) owns listener `l`'s hostname: the routes `l`
/// admits may use the names under it that namespace owns (or no one does). One answer
/// for attachment ([`route_may_use`]) and lookup ([`listener_spec`]).
pub(in crate::kube::index::gateway) fn shares_owned_names(
    l: &ListenerState<'_>,
    gw_ns: &str,
    owners: &Owners,
) -> bool {
    l.hostname
        .as_ref()
        .is_some_and(|h| owners.owns(gw_ns, &super::ownership_host(h)))
}

/// Whether a route of namespace `route_ns` may answer for `host` on a listener of a
/// Gateway in `gw_ns`: its namespace owns `host`, or the Gateway's namespace owns the
/// listener's hostname (`shares`, [`shares_owned_names`]; it covers `host`), admitted
/// the route, and `host` itself is
/// not another namespace's (an exact host an older Ingress or route named before the
/// listener's wildcard was claimed stays its owner's). Nobody may use a reserved host
/// (the sign-in host, the config file's).
pub(in crate::kube::index::gateway) fn route_may_use(
    owners: &Owners,
    route_ns: &str,
    gw_ns: &str,
    shares: bool,
    host: &HostMatch,
) -> Result<(), String> {
    match owners.standing(route_ns, host) {
        Standing::Owner | Standing::Delegated { .. } => Ok(()),
        Standing::Refused { reason, message } => {
            // Through the listener: only what the Gateway's namespace owns (a delegate
            // owns nothing, so it passes nothing on).
            let reserved = reason == crate::kube::index::reasons::RESERVED_HOST;
            let owned_elsewhere = owners.owners(host).is_some_and(|o| !o.contains(gw_ns));
            if shares && !reserved && !owned_elsewhere {
                Ok(())
            } else {
                Err(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rule is stated twice: at attachment ([`route_may_use`]: may a route that
    //! names a host answer it) and at lookup ([`crate::routes::gateway::HostStandings`]:
    //! may a wildcard or host-less rule answer it). For every name with a standing,
    //! every rule and Gateway namespace and both listener kinds, the two must agree.
    use super::*;
    use crate::kube::index::ownership::tests::{claim, h};
    use crate::kube::index::ownership::{HostGrant, HostOwnership, Reserved};
    use crate::routes::gateway::{Answerers, HostStandings};

    /// What the lookup decides for a rule of `rule_ns`; `None`: the name has no
    /// standing (only the listener limits it; a route naming it claims it).
    fn at_lookup(
        standings: &HostStandings,
        host: &str,
        rule_ns: &str,
        gw_ns: &str,
        shares: bool,
    ) -> Option<bool> {
        Some(match standings.of(host)?.answerers(gw_ns, shares) {
            Answerers::Any => true,
            Answerers::Nobody => false,
            Answerers::Listed(s) => s.lists(rule_ns),
        })
    }

    #[test]
    fn attachment_and_lookup_state_one_rule() {
        let (to_b, to_gw, to_d) = (
            vec!["b".to_string()],
            vec!["gw".to_string()],
            vec!["d".to_string()],
        );
        let claims = vec![
            claim("a", &["x.example.test"], &to_b),
            claim("gw", &["*.apps.example.test", "*.x.example.test"], &to_d),
            claim("b", &["y.example.test", "*.b.example.test"], &to_gw),
            claim("d", &["*.example.test"], &[]),
            claim("a", &["w.apps.example.test", "z.b.example.test"], &to_b),
            claim("b", &["file.example.test", "sign.example.test"], &[]),
        ];
        let grant = |t: &str| HostGrant::parse(t).unwrap();
        let modes = [
            ("first come", HostOwnership::FirstCome),
            (
                "assigned",
                HostOwnership::Assigned(vec![
                    grant("a=x.example.test"),
                    grant("gw=*.example.test"),
                    grant("b=*.b.example.test"),
                    grant("gw=y.example.test"),
                    grant("b=y.example.test"),
                    grant("d=*.apps.example.test"),
                    grant("a=w.apps.example.test"),
                ]),
            ),
            ("shared", HostOwnership::Shared),
        ];
        let reserved = Reserved {
            sign_in: vec!["sign.example.test".into()],
            operator: vec![h("file.example.test"), h("*.op.example.test")],
        };
        let hosts = [
            "x.example.test",
            "y.example.test",
            "free.example.test",
            "q.apps.example.test",
            "w.apps.example.test",
            "deep.x.example.test",
            "z.b.example.test",
            "n.b.example.test",
            "sign.example.test",
            "file.example.test",
            "m.op.example.test",
            "nobody.test",
        ];
        let namespaces = ["a", "b", "gw", "d", "e"];
        let mut checked = 0;
        for (mode, ownership) in &modes {
            let owners = Owners::decide(ownership, &reserved, &claims);
            let standings = owners.standings();
            for host in hosts {
                for rule_ns in namespaces {
                    for gw_ns in namespaces {
                        for shares in [false, true] {
                            let Some(lookup) = at_lookup(&standings, host, rule_ns, gw_ns, shares)
                            else {
                                continue;
                            };
                            let attach =
                                route_may_use(&owners, rule_ns, gw_ns, shares, &h(host)).is_ok();
                            assert_eq!(
                                attach, lookup,
                                "{mode}: {host}, a rule of {rule_ns} on a listener of Gateway \
                                 namespace {gw_ns} (shares owned names: {shares}): attachment \
                                 says {attach}, lookup {lookup}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        // Most names have a standing in every mode but shared (reserved names only).
        assert!(checked > 1000, "only {checked} cases had a standing");
    }
}
