//! Gateways and their listeners, checked as the spec defines: protocol, route kinds,
//! TLS certificate references (ReferenceGrant across namespaces), conflicts between
//! listeners on one port; then, once routes are attached, the Gateway ports to serve,
//! the Services that give them addresses, and every condition of the status.

use std::collections::{BTreeMap, BTreeSet};

use super::super::report::{ConditionState, Note};
use super::super::store::TLS_SECRET_TYPE;
use super::super::{Index, ObjectKey};
use super::classes::Classes;
use super::refs::permitted;
use super::{
    GatewayReport, GatewayService, GatewaySettings, GatewayTranslation, ListenerReport,
    SocketCertificates, age, ports, routes,
};
use crate::kube::gateway::api::{Gateway, Listener};
use crate::kube::gateway::{
    GROUP, KIND_GATEWAY, KIND_HTTP_ROUTE, KIND_SECRET, conditions, reasons,
};
use crate::kube::index::ownership::{Owners, Standing};
use crate::routes::HostMatch;
use crate::routes::certs::PemPair;
use crate::routes::gateway::{GatewayHost, GatewayPortSpec, ListenerSpec, RuleSpec};

/// A Gateway of one of our classes, judged.
pub(super) struct GatewayState<'a> {
    pub key: &'a ObjectKey,
    pub gateway: &'a Gateway,
    /// Routes without any policy are public (the class's parameter).
    pub public_without_policy: bool,
    /// Why the Gateway as a whole is not accepted: `(reason, message)`.
    pub refused: Option<(&'static str, String)>,
    pub listeners: Vec<ListenerState<'a>>,
}

pub(super) struct ListenerState<'a> {
    pub spec: &'a Listener,
    pub hostname: Option<GatewayHost>,
    pub tls: bool,
    pub accepted: ConditionState,
    pub resolved_refs: ConditionState,
    /// `(reason, message)` when another listener of the port conflicts with this one.
    pub conflicted: Option<(&'static str, String)>,
    pub supported_kinds: Vec<(String, String)>,
    pub certificates: Vec<PemPair>,
    pub attached: i32,
    pub rules: Vec<RuleSpec>,
}

impl ListenerState<'_> {
    /// Routes may attach: accepted and not conflicted.
    pub fn usable(&self) -> bool {
        self.accepted.status && self.conflicted.is_none()
    }

    /// Admits HTTPRoutes (its kinds).
    pub fn allows_http_routes(&self) -> bool {
        self.supported_kinds
            .iter()
            .any(|(g, k)| g == GROUP && k == KIND_HTTP_ROUTE)
    }

    /// Can carry traffic: usable, and with a certificate when it is HTTPS.
    fn servable(&self) -> bool {
        self.usable() && (!self.tls || !self.certificates.is_empty())
    }
}

fn state(status: bool, reason: &'static str, message: impl Into<String>) -> ConditionState {
    ConditionState {
        status,
        reason,
        message: message.into(),
    }
}

/// Every Gateway of our classes, oldest first, with its listeners judged.
pub(super) fn evaluate<'a>(
    index: &'a Index,
    _settings: &GatewaySettings,
    classes: &Classes,
) -> Vec<GatewayState<'a>> {
    let mut out: Vec<GatewayState<'a>> = Vec::new();
    for (key, gw) in &index.gateways.items {
        let Some(class) = classes.get(&gw.spec.gateway_class_name) else {
            continue;
        };
        let refused = if !class.accepted.status {
            Some((
                reasons::INVALID,
                format!(
                    "GatewayClass {} is not accepted: {}",
                    class.name, class.accepted.message
                ),
            ))
        } else if !gw.spec.addresses.is_empty() {
            Some((
                reasons::UNSUPPORTED_ADDRESS,
                "spec.addresses is not supported: Portcullis gives each Gateway the address of a Service it provisions".to_string(),
            ))
        } else if gw.spec.tls.is_some() {
            Some((
                reasons::INVALID,
                "spec.tls (client certificate validation, backend client certificates) is not supported; a Gateway that asks for it is not served without it".to_string(),
            ))
        } else if gw
            .spec
            .infrastructure
            .as_ref()
            .is_some_and(|i| i.parameters_ref.is_some())
        {
            Some((
                reasons::INVALID_PARAMETERS,
                "spec.infrastructure.parametersRef: Portcullis defines no Gateway parameters"
                    .to_string(),
            ))
        } else {
            None
        };
        let mut listeners: Vec<ListenerState<'a>> = gw
            .spec
            .listeners
            .iter()
            .map(|l| listener(index, key, l))
            .collect();
        mark_conflicts(&mut listeners);
        out.push(GatewayState {
            key,
            gateway: gw,
            public_without_policy: class.public_without_policy,
            refused,
            listeners,
        });
    }
    out.sort_by(|a, b| {
        age(&a.gateway.metadata)
            .cmp(&age(&b.gateway.metadata))
            .then_with(|| a.key.cmp(b.key))
    });
    out
}

fn listener<'a>(index: &'a Index, gw: &ObjectKey, l: &'a Listener) -> ListenerState<'a> {
    let tls = l.protocol == "HTTPS";
    let mut s = ListenerState {
        spec: l,
        hostname: None,
        tls,
        accepted: state(true, reasons::ACCEPTED, ""),
        resolved_refs: state(true, reasons::RESOLVED_REFS, ""),
        conflicted: None,
        supported_kinds: Vec::new(),
        certificates: Vec::new(),
        attached: 0,
        rules: Vec::new(),
    };
    if !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") {
        s.accepted = state(
            false,
            reasons::UNSUPPORTED_PROTOCOL,
            format!(
                "protocol {} is not supported; Portcullis serves HTTP and HTTPS",
                l.protocol
            ),
        );
        return s;
    }
    if let Some(h) = l.hostname.as_deref() {
        match routes::parse_hostname(h) {
            Ok(h) => s.hostname = Some(h),
            Err(why) => {
                s.accepted = state(
                    false,
                    reasons::UNSUPPORTED_VALUE,
                    format!("hostname: {why}"),
                );
                return s;
            }
        }
    }
    // Route kinds: given ones must be HTTPRoute; none given means HTTPRoute.
    let kinds = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.kinds.as_ref())
        .filter(|k| !k.is_empty());
    match kinds {
        None => s
            .supported_kinds
            .push((GROUP.to_string(), KIND_HTTP_ROUTE.to_string())),
        Some(kinds) => {
            let mut invalid = Vec::new();
            for k in kinds {
                let group = k.group.as_deref().unwrap_or(GROUP);
                if group == GROUP && k.kind == KIND_HTTP_ROUTE {
                    if s.supported_kinds.is_empty() {
                        s.supported_kinds
                            .push((GROUP.to_string(), KIND_HTTP_ROUTE.to_string()));
                    }
                } else {
                    invalid.push(format!("{group}/{}", k.kind));
                }
            }
            if !invalid.is_empty() {
                s.resolved_refs = state(
                    false,
                    reasons::INVALID_ROUTE_KINDS,
                    format!(
                        "allowedRoutes.kinds: {} not supported on {} listeners (HTTPRoute is)",
                        invalid.join(", "),
                        l.protocol
                    ),
                );
            }
        }
    }
    if tls {
        certificates(index, gw, l, &mut s);
    }
    s
}

/// HTTPS: certificates from `tls.certificateRefs` (Secrets; another namespace's with
/// its ReferenceGrant). Problems make ResolvedRefs false; a listener left without a
/// certificate is not programmed.
fn certificates(index: &Index, gw: &ObjectKey, l: &Listener, s: &mut ListenerState<'_>) {
    let Some(tls) = &l.tls else {
        s.resolved_refs = state(
            false,
            reasons::INVALID_CERTIFICATE_REF,
            "an HTTPS listener needs tls.certificateRefs",
        );
        return;
    };
    if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
        s.accepted = state(
            false,
            reasons::UNSUPPORTED_VALUE,
            "tls.mode Passthrough is not supported on HTTPS listeners",
        );
        return;
    }
    if tls.options.as_ref().is_some_and(|o| !o.is_empty()) {
        s.accepted = state(
            false,
            reasons::UNSUPPORTED_VALUE,
            "tls.options: Portcullis defines no TLS options",
        );
        return;
    }
    let mut problem: Option<(&'static str, String)> = None;
    let mut note = |reason: &'static str, message: String| {
        // RefNotPermitted says the most: it wins over a missing or invalid Secret.
        if problem.is_none() || reason == reasons::REF_NOT_PERMITTED {
            problem = Some((reason, message));
        }
    };
    if tls.certificate_refs.is_empty() {
        note(
            reasons::INVALID_CERTIFICATE_REF,
            "tls.certificateRefs is empty".to_string(),
        );
    }
    for (i, r) in tls.certificate_refs.iter().enumerate() {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or(KIND_SECRET);
        let ns = r.namespace.as_deref().unwrap_or(&gw.namespace);
        let at = format!("tls.certificateRefs[{i}]");
        if !group.is_empty() || kind != KIND_SECRET {
            note(
                reasons::INVALID_CERTIFICATE_REF,
                format!("{at}: {group}/{kind} is not supported; name a Secret"),
            );
            continue;
        }
        if !permitted(
            index,
            (KIND_GATEWAY, &gw.namespace),
            (KIND_SECRET, ns),
            &r.name,
        ) {
            note(
                reasons::REF_NOT_PERMITTED,
                format!(
                    "{at}: Secret {ns}/{} is in another namespace and no ReferenceGrant there permits it",
                    r.name
                ),
            );
            continue;
        }
        let key = ObjectKey::new(ns, r.name.as_str());
        let Some(secret) = index.secrets.get(&key) else {
            note(
                reasons::INVALID_CERTIFICATE_REF,
                format!("{at}: Secret {key} not found (or not of type {TLS_SECRET_TYPE})"),
            );
            continue;
        };
        let pair = match super::super::translate::tls_pair(secret) {
            Ok((cert, key_pem)) => PemPair {
                source_name: format!("secret {key}"),
                cert_pem: cert.to_vec(),
                key_pem: key_pem.to_vec(),
            },
            Err(why) => {
                note(
                    reasons::INVALID_CERTIFICATE_REF,
                    format!("{at}: Secret {key} {why}"),
                );
                continue;
            }
        };
        match crate::routes::certs::load(&pair) {
            Ok(_) => s.certificates.push(pair),
            Err(e) => note(
                reasons::INVALID_CERTIFICATE_REF,
                format!("{at}: Secret {key}: {e}"),
            ),
        }
    }
    if let Some((reason, message)) = problem {
        s.resolved_refs = state(false, reason, message);
    }
}

/// Listeners on one port must agree on the protocol, and differ in hostname.
fn mark_conflicts(listeners: &mut [ListenerState<'_>]) {
    let mut by_port: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        if l.accepted.status {
            by_port.entry(l.spec.port).or_default().push(i);
        }
    }
    for (port, idx) in by_port {
        let protocols: BTreeSet<&str> = idx
            .iter()
            .map(|&i| listeners[i].spec.protocol.as_str())
            .collect();
        if protocols.len() > 1 {
            let list = protocols.into_iter().collect::<Vec<_>>().join(" and ");
            for &i in &idx {
                listeners[i].conflicted = Some((
                    reasons::PROTOCOL_CONFLICT,
                    format!("listeners on port {port} ask for {list}; one port takes one protocol"),
                ));
            }
            continue;
        }
        let mut seen: BTreeMap<Option<GatewayHost>, Vec<usize>> = BTreeMap::new();
        for &i in &idx {
            seen.entry(listeners[i].hostname.clone())
                .or_default()
                .push(i);
        }
        for (host, same) in seen {
            if same.len() < 2 {
                continue;
            }
            let name = host.map_or_else(|| "no hostname".to_string(), |h| describe_host(&h));
            for &i in &same {
                listeners[i].conflicted = Some((
                    reasons::HOSTNAME_CONFLICT,
                    format!("{} listeners on port {port} have {name}", same.len()),
                ));
            }
        }
    }
}

pub(super) fn describe_host(h: &GatewayHost) -> String {
    match h {
        GatewayHost::Exact(h) => h.clone(),
        GatewayHost::Wildcard(s) => format!("*.{s}"),
    }
}

/// Allocates ports, decides addresses, and writes the Gateway reports, the Services
/// to provision, the sockets to serve and their certificates into `out`.
pub(super) fn finish(
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
                    type_: super::super::report::NoteType::Warning,
                    reason: c.reason,
                    message: c.message.clone(),
                });
            }
        }
        if !service_ports.is_empty() {
            let infra = g.gateway.spec.infrastructure.as_ref();
            out.services.push(GatewayService {
                name: name.clone(),
                gateway: g.key.clone(),
                ports: service_ports,
                labels: infra.and_then(|i| i.labels.clone()).unwrap_or_default(),
                annotations: infra
                    .and_then(|i| i.annotations.clone())
                    .unwrap_or_default(),
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

/// A listener as the routing table takes it: its rules, and whether the Gateway's
/// namespace (`gw_ns`) owns its hostname (then the routes it admits share the names
/// under it that namespace owns; [`crate::routes::gateway::HostStandings`]).
fn listener_spec(l: &ListenerState<'_>, gw_ns: &str, owners: &Owners) -> ListenerSpec {
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
pub(super) fn route_may_use(
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
