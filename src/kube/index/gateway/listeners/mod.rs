//! Gateways and their listeners, checked as the spec defines: protocol, hostname, route
//! kinds, conflicts between listeners on one port, and TLS certificate references
//! ([`mod@certificates`], with ReferenceGrants across namespaces). Once routes are
//! attached, [`mod@finish`] gives the Gateway ports to serve, the Services that give them
//! addresses, and every condition of the status. Which names a route may answer through
//! a listener is decided in [`tenancy`].

mod certificates;
mod finish;
mod tenancy;

use std::collections::{BTreeMap, BTreeSet};

use super::classes::Classes;
// `ownership_host` for `tenancy`, which names it `super::ownership_host`.
use super::{GatewaySettings, age, ownership_host, routes};
use crate::kube::gateway::api::{Gateway, Listener};
use crate::kube::gateway::{GROUP, KIND_HTTP_ROUTE, reasons};
use crate::kube::index::report::ConditionState;
use crate::kube::index::{Index, ObjectKey};
use crate::routes::certs::PemPair;
use crate::routes::gateway::{GatewayHost, RuleSpec};
use certificates::certificates;

pub(super) use finish::finish;
pub(super) use tenancy::{route_may_use, shares_owned_names};

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
