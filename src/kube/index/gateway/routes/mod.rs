//! HTTPRoutes, oldest first: each one's rules are built once ([`rules`], with its
//! filters in [`filters`] and backends in [`backends`]), then attached to every parent
//! that accepts it ([`mod@attach`]: `parentRefs` by name, section and port;
//! `allowedRoutes` kinds and namespaces; hostname intersection ([`hostnames`]); host
//! ownership), under the policy that decides who may pass ([`policies`]: the route's
//! IdentityPolicies, the Gateway's as a baseline). This file is that loop, and the
//! reports it writes.

mod attach;
mod backends;
mod filters;
mod hostnames;
mod policies;
mod rules;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::listeners::GatewayState;
use super::{ParentReport, PolicyAttachment, RouteReport, age};
use crate::kube::gateway::api::{HTTPRoute, ParentReference};
use crate::kube::gateway::{GROUP, KIND_GATEWAY, KIND_HTTP_ROUTE, conditions, reasons};
use crate::kube::index::backend::Services;
use crate::kube::index::ownership::Owners;
use crate::kube::index::report::{ConditionState, NoteType};
use crate::kube::index::translate::push_note;
use crate::kube::index::{Index, ObjectKey};
use crate::routes::RouteOptions;
use crate::routes::gateway::{GatewayHost, RuleSpec};
use attach::attach_parent;
use policies::{Policies, Targets, compile_policies, effective_policy};
use rules::build_route;

pub(super) use attach::parent_gateway;
pub(super) use hostnames::parse_hostname;

/// What attaching every route produced.
pub(super) struct Attached {
    pub reports: Vec<RouteReport>,
    pub policies: BTreeMap<ObjectKey, PolicyAttachment>,
}

/// Attaches every HTTPRoute with a parentRef to one of `gateways`: their listeners
/// take its rules, and each route gets its report.
pub(super) fn attach(
    index: &Index,
    services: &Services<'_>,
    owners: &Owners,
    gateways: &mut [GatewayState<'_>],
) -> Attached {
    let by_key: HashMap<ObjectKey, usize> = gateways
        .iter()
        .enumerate()
        .map(|(i, g)| (g.key.clone(), i))
        .collect();
    let targets = Targets::new(index);
    let mut policies: BTreeMap<ObjectKey, PolicyAttachment> = BTreeMap::new();
    // The Gateways' baselines.
    let mut baselines: Vec<Option<Policies>> = Vec::new();
    for g in gateways.iter() {
        let keys = targets.of(KIND_GATEWAY, g.key);
        for k in &keys {
            let a = policies.entry(k.clone()).or_default();
            a.targets.push((KIND_GATEWAY, g.key.clone()));
            push_unique(&mut a.ancestors, g.key.clone());
        }
        baselines.push(compile_policies(index, &keys));
    }

    let mut routes: Vec<(&ObjectKey, &HTTPRoute)> = index.http_routes.items.iter().collect();
    routes.sort_by(|(ka, a), (kb, b)| {
        age(&a.metadata)
            .cmp(&age(&b.metadata))
            .then_with(|| ka.cmp(kb))
    });
    let mut reports = Vec::new();
    for (rank, (key, route)) in routes.into_iter().enumerate() {
        let parents: Vec<(usize, &ParentReference, usize)> = route
            .spec
            .parent_refs
            .iter()
            .enumerate()
            .filter_map(|(k, p)| {
                let gk = parent_gateway(key, p)?;
                by_key.get(&gk).map(|&gi| (k, p, gi))
            })
            .collect();
        if parents.is_empty() {
            continue;
        }
        let built = build_route(index, services, key, route);
        let own_keys = targets.of(KIND_HTTP_ROUTE, key);
        let own = compile_policies(index, &own_keys);
        let mut notes = built.notes.clone();
        if let Some(Policies {
            invalid: Some(why), ..
        }) = &own
        {
            push_note(
                &mut notes,
                NoteType::Warning,
                "IdentityPolicyInvalid",
                why.clone(),
            );
        }
        // A hostname that is no host name is left out and said; a route whose every
        // hostname is one answers nothing (never every host, as no hostnames would).
        let mut hostnames: Vec<GatewayHost> = Vec::new();
        let mut bad: Vec<String> = Vec::new();
        for h in &route.spec.hostnames {
            match parse_hostname(h) {
                Ok(h) => hostnames.push(h),
                Err(why) => bad.push(why),
            }
        }
        let mut unsupported = built.unsupported.clone();
        if !bad.is_empty() {
            let message = format!("spec.hostnames: not host names: {}", bad.join("; "));
            if hostnames.is_empty() {
                unsupported.get_or_insert((reasons::UNSUPPORTED_VALUE, message));
            } else {
                push_note(
                    &mut notes,
                    NoteType::Warning,
                    reasons::UNSUPPORTED_VALUE,
                    message,
                );
            }
        }
        let mut parent_reports = Vec::new();
        let mut accepted_by: Vec<ObjectKey> = Vec::new();
        for (_, p, gi) in parents {
            let g = &mut gateways[gi];
            let (accepted, attached) = attach_parent(index, owners, key, &hostnames, p, g);
            let accepted = match (&unsupported, accepted) {
                (Some((reason, message)), a) if a.status => ConditionState {
                    status: false,
                    reason,
                    message: message.clone(),
                },
                (_, a) => a,
            };
            if !accepted.status {
                push_note(
                    &mut notes,
                    NoteType::Warning,
                    accepted.reason,
                    accepted.message.clone(),
                );
            }
            // Rules go in only for an accepted parent.
            if accepted.status {
                push_unique(&mut accepted_by, g.key.clone());
                let baseline = &baselines[gi];
                let (policy, source) = effective_policy(own.as_ref(), baseline.as_ref(), g);
                if policy.is_empty() && policy.invalid_reason().is_none() {
                    push_note(
                        &mut notes,
                        NoteType::Warning,
                        "NoPolicy",
                        format!(
                            "no IdentityPolicy applies to this route or to Gateway {}: every request through it is denied",
                            g.key
                        ),
                    );
                }
                let policy = Arc::new(policy);
                for (li, hosts) in &attached {
                    let l = &mut g.listeners[*li];
                    for r in &built.rules {
                        l.rules.push(RuleSpec {
                            id: r.id.clone(),
                            namespace: key.namespace.clone(),
                            hostnames: hosts.clone(),
                            matches: r.matches.clone(),
                            order: (rank as u32, r.rule as u32, r.matched as u32),
                            action: r.action.clone(),
                            policy: policy.clone(),
                            options: RouteOptions {
                                policy_source: Arc::from(source.as_str()),
                                ..r.options.clone()
                            },
                        });
                    }
                }
            }
            for (li, _) in &attached {
                g.listeners[*li].attached += 1;
            }
            parent_reports.push(ParentReport {
                parent_ref: ParentReference {
                    group: Some(p.group.clone().unwrap_or_else(|| GROUP.to_string())),
                    kind: Some(p.kind.clone().unwrap_or_else(|| KIND_GATEWAY.to_string())),
                    ..p.clone()
                },
                conditions: vec![
                    (conditions::ACCEPTED, accepted),
                    (conditions::RESOLVED_REFS, built.resolved.clone()),
                ],
            });
        }
        if !built.resolved.status {
            push_note(
                &mut notes,
                NoteType::Warning,
                built.resolved.reason,
                built.resolved.message.clone(),
            );
        }
        for k in &own_keys {
            let a = policies.entry(k.clone()).or_default();
            a.targets.push((KIND_HTTP_ROUTE, key.clone()));
            for g in &accepted_by {
                push_unique(&mut a.ancestors, g.clone());
            }
            if !accepted_by.is_empty() {
                a.routes += 1;
            }
        }
        for g in &accepted_by {
            for k in targets.of(KIND_GATEWAY, g) {
                policies.entry(k).or_default().routes += 1;
            }
        }
        reports.push(RouteReport {
            key: key.clone(),
            uid: route.metadata.uid.clone(),
            generation: route.metadata.generation,
            parents: parent_reports,
            notes,
        });
    }
    reports.sort_by(|a, b| a.key.cmp(&b.key));
    Attached { reports, policies }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}
