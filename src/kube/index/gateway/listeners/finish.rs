//! After routes are attached: local ports for the Gateways' ports, the addresses their
//! Services give, the Gateway and listener reports, the Services to provision, and the
//! sockets to serve with their certificates.

use std::collections::{BTreeMap, BTreeSet};

use super::tenancy::listener_spec;
use super::{GatewayState, ListenerState, describe_host, state};
use crate::kube::gateway::{conditions, reasons};
use crate::kube::index::gateway::{
    GatewayReport, GatewayService, GatewaySettings, GatewayTranslation, ListenerReport,
    SocketCertificates, ports,
};
use crate::kube::index::ownership::Owners;
use crate::kube::index::report::{Note, NoteType};
use crate::kube::index::{Index, ObjectKey};
use crate::routes::certs::PemPair;
use crate::routes::gateway::GatewayPortSpec;

/// Allocates ports, decides addresses, and writes the Gateway reports, the Services
/// to provision, the sockets to serve and their certificates into `out`.
pub(in crate::kube::index::gateway) fn finish(
    index: &Index,
    settings: &GatewaySettings,
    owners: &Owners,
    gateways: Vec<GatewayState<'_>>,
    out: &mut GatewayTranslation,
) {
    // Ports of served Gateways, oldest Gateway first (so an older one keeps its port).
    let mut wanted: Vec<(ObjectKey, u16)> = Vec::new();
    for g in gateways.iter().filter(|g| g.refused.is_none()) {
        let ports: BTreeSet<u16> = g
            .listeners
            .iter()
            .filter(|l| l.usable())
            .filter_map(|l| u16::try_from(l.spec.port).ok())
            .collect();
        wanted.extend(ports.into_iter().map(|p| (g.key.clone(), p)));
    }
    let controller_ns = index.settings.tenancy.controller_namespace.as_str();
    let allocated = ports::allocate(
        settings.local_ports,
        &wanted,
        &ports::held(index, controller_ns),
    );
    // Who may use which names: once, for every socket.
    let standings = std::sync::Arc::new(if wanted.is_empty() {
        Default::default()
    } else {
        owners.standings()
    });

    for g in gateways {
        let generation = g.gateway.metadata.generation;
        let mut notes: Vec<Note> = Vec::new();
        let port_of = |p: i32| -> Option<u16> {
            let p = u16::try_from(p).ok()?;
            allocated.get(&(g.key.clone(), p)).copied().flatten()
        };
        // The Service and the address it gives.
        let name = ports::service_name(g.key);
        let mut service_ports: Vec<(u16, u16)> = Vec::new();
        if g.refused.is_none() {
            for l in g.listeners.iter().filter(|l| l.usable()) {
                if let (Ok(p), Some(q)) = (u16::try_from(l.spec.port), port_of(l.spec.port))
                    && !service_ports.contains(&(p, q))
                {
                    service_ports.push((p, q));
                }
            }
            service_ports.sort();
        }
        let provisioned = index
            .services
            .get(&ObjectKey::new(controller_ns, name.as_str()));
        let addresses: Vec<(&'static str, String)> = provisioned
            .and_then(|s| s.spec.as_ref())
            .map(|spec| {
                let mut ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
                if ips.is_empty() {
                    ips.extend(spec.cluster_ip.clone());
                }
                ips.retain(|ip| !ip.is_empty() && ip != "None");
                ips.into_iter().map(|ip| ("IPAddress", ip)).collect()
            })
            .unwrap_or_default();
        // A Gateway port is live when the Service maps it onto its local port.
        let live = |p: u16, q: u16| {
            provisioned
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| s.ports.as_ref())
                .is_some_and(|ports| {
                    ports.iter().any(|sp| {
                        sp.port == i32::from(p)
                            && match &sp.target_port {
                                Some(
                                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                                        t,
                                    ),
                                ) => *t == i32::from(q),
                                _ => false,
                            }
                    })
                })
        };

        // Listener reports, and the ports to serve.
        let mut listener_reports = Vec::new();
        let mut by_port: BTreeMap<u16, Vec<&ListenerState<'_>>> = BTreeMap::new();
        for l in &g.listeners {
            let local = port_of(l.spec.port);
            let port = u16::try_from(l.spec.port).unwrap_or(0);
            let mut conds = vec![(conditions::ACCEPTED, l.accepted.clone())];
            let programmed = if g.refused.is_some() {
                state(false, reasons::INVALID, "the Gateway is not accepted")
            } else if !l.accepted.status {
                state(false, reasons::INVALID, l.accepted.message.clone())
            } else if let Some((_, why)) = &l.conflicted {
                state(false, reasons::INVALID, why.clone())
            } else if l.tls && l.certificates.is_empty() {
                state(
                    false,
                    reasons::INVALID,
                    format!("no usable certificate: {}", l.resolved_refs.message),
                )
            } else if local.is_none() {
                state(
                    false,
                    reasons::PENDING,
                    "no local port is free in --gateway-port-range",
                )
            } else if !local.is_some_and(|q| live(port, q)) {
                state(
                    false,
                    reasons::PENDING,
                    format!("waiting for Service {controller_ns}/{name} to map port {port}"),
                )
            } else {
                state(true, reasons::PROGRAMMED, "")
            };
            conds.push((conditions::PROGRAMMED, programmed));
            conds.push((conditions::RESOLVED_REFS, l.resolved_refs.clone()));
            conds.push((
                conditions::CONFLICTED,
                match &l.conflicted {
                    Some((reason, message)) => state(true, reason, message.clone()),
                    None => state(false, reasons::NO_CONFLICTS, ""),
                },
            ));
            listener_reports.push(ListenerReport {
                name: l.spec.name.clone(),
                attached_routes: l.attached,
                supported_kinds: l.supported_kinds.clone(),
                conditions: conds,
            });
            if g.refused.is_none() && l.servable() {
                by_port.entry(port).or_default().push(l);
            }
        }
        for (port, listeners) in &by_port {
            let Some(local) = port_of(i32::from(*port)) else {
                continue;
            };
            let tls = listeners[0].tls;
            out.ports.push(GatewayPortSpec {
                local_port: local,
                id: format!("{}:{port}", g.key),
                port: *port,
                tls,
                listeners: listeners
                    .iter()
                    .map(|l| listener_spec(l, &g.key.namespace, owners))
                    .collect(),
                standings: standings.clone(),
            });
            if tls {
                // A listener without hostname gives the default certificate.
                let mut pairs: Vec<(Option<String>, PemPair)> = Vec::new();
                for l in listeners {
                    let host = l.hostname.as_ref().map(describe_host);
                    for c in &l.certificates {
                        pairs.push((host.clone(), c.clone()));
                    }
                }
                pairs.sort_by_key(|(h, _)| h.is_some());
                out.certificates.push(SocketCertificates {
                    local_port: local,
                    pairs,
                });
            }
        }

        // Gateway conditions.
        let any_invalid = g.listeners.iter().any(|l| !l.accepted.status);
        let any_valid = g.listeners.iter().any(|l| l.accepted.status);
        let accepted = match &g.refused {
            Some((reason, message)) => state(false, reason, message.clone()),
            None if !any_valid => {
                state(false, reasons::LISTENERS_NOT_VALID, "no listener is valid")
            }
            None if any_invalid => state(
                true,
                reasons::LISTENERS_NOT_VALID,
                "some listeners are not valid; the others are served",
            ),
            None => state(true, reasons::ACCEPTED, ""),
        };
        let programmed = if !accepted.status {
            state(false, reasons::INVALID, accepted.message.clone())
        } else if addresses.is_empty() {
            state(
                false,
                reasons::ADDRESS_NOT_ASSIGNED,
                format!("waiting for Service {controller_ns}/{name} to get an address"),
            )
        } else {
            state(true, reasons::PROGRAMMED, "")
        };
        let unresolved: Vec<&str> = g
            .listeners
            .iter()
            .filter(|l| !l.resolved_refs.status)
            .map(|l| l.spec.name.as_str())
            .collect();
        let resolved = if unresolved.is_empty() {
            state(true, reasons::RESOLVED_REFS, "")
        } else {
            state(
                false,
                reasons::LISTENERS_NOT_RESOLVED,
                format!(
                    "listeners with unresolved references: {}",
                    unresolved.join(", ")
                ),
            )
        };
        for (_, c) in [("", &accepted), ("", &programmed)] {
            if !c.status && c.reason != reasons::ADDRESS_NOT_ASSIGNED {
                notes.push(Note {
                    type_: NoteType::Warning,
                    reason: c.reason,
                    message: c.message.clone(),
                });
            }
        }
        if !service_ports.is_empty() {
            // `spec.infrastructure` labels and annotations are not copied: the Service
            // lives in the controller's namespace, where other controllers (external-dns,
            // load balancers) would take a Gateway author's word for another's host.
            out.services.push(GatewayService {
                name: name.clone(),
                gateway: g.key.clone(),
                ports: service_ports,
            });
        }
        out.gateways.push(GatewayReport {
            key: g.key.clone(),
            uid: g.gateway.metadata.uid.clone(),
            generation,
            conditions: vec![
                (conditions::ACCEPTED, accepted),
                (conditions::PROGRAMMED, programmed),
                (conditions::RESOLVED_REFS, resolved),
            ],
            listeners: listener_reports,
            addresses,
            notes,
        });
    }
    out.gateways.sort_by(|a, b| a.key.cmp(&b.key));
    out.ports.sort_by_key(|p| p.local_port);
}
