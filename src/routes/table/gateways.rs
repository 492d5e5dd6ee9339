//! The Gateway API side of a routing table: one compiled socket per Gateway port
//! (local port → [`GatewayTable`]), its lookup, and the hosts its rules name, which
//! [`RoutingTable::knows_host`] counts beside the Ingress side's.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::gateway::table::compile;
use super::super::gateway::{
    CompiledAction, GatewayHost, GatewayPortSpec, GatewayRequest, GatewayRoute, GatewayTable,
    PathMatch as RulePath, RuleSpec,
};
use super::super::model::*;
use super::{Diagnostic, MAX_HOST_LEN, Match, Route, RoutingTable, normalize_host};

/// Exact hosts and wildcard suffixes of Gateway API rules, for
/// [`RoutingTable::knows_host`].
#[derive(Debug, Default)]
pub(super) struct GatewayHosts {
    exact: HashSet<Box<str>>,
    suffixes: Vec<Box<str>>,
}

impl GatewayHosts {
    /// Takes in the hostnames of every rule of one Gateway port.
    fn add(&mut self, spec: &GatewayPortSpec) {
        for l in &spec.listeners {
            for r in &l.rules {
                for h in &r.hostnames {
                    match h {
                        GatewayHost::Exact(h) => {
                            self.exact.insert(h.as_str().into());
                        }
                        GatewayHost::Wildcard(s) => self.suffixes.push(s.as_str().into()),
                    }
                }
            }
        }
    }

    /// Whether a rule names `host` (normalized), exactly or under a wildcard.
    pub(super) fn knows(&self, host: &str) -> bool {
        self.exact.contains(host)
            || self
                .suffixes
                .iter()
                .any(|s| crate::routes::gateway::suffix_covers(s, host))
    }
}

// === impl RoutingTable ===

impl RoutingTable {
    /// Finds the Gateway API rule for a request that came in on `local_port`, a socket
    /// bound for Gateway port `id` (`namespace/name:port`). `None`: no such socket, the
    /// local port now another Gateway's (a connection accepted before it changed
    /// hands never sees that Gateway's rules), or no rule matches. Nothing answers on
    /// the authenticate host here either.
    pub fn lookup_gateway(
        &self,
        local_port: u16,
        id: &str,
        req: &GatewayRequest<'_>,
    ) -> Option<Match<'_>> {
        let socket = self.gateways.get(&local_port).filter(|t| *t.id == *id)?;
        let mut buf = [0u8; MAX_HOST_LEN];
        let host = normalize_host(req.host, &mut buf)?;
        if self
            .authenticate_host
            .as_ref()
            .is_some_and(|a| a.host == host)
        {
            return None;
        }
        let req = GatewayRequest { host, ..*req };
        socket.lookup(&req)
    }

    /// The Gateway API socket for `local_port`, if the table has one.
    pub fn gateway(&self, local_port: u16) -> Option<&GatewayTable> {
        self.gateways.get(&local_port)
    }

    /// Compiles one Gateway API socket. A second spec for the same local port is
    /// refused: two Gateways never share a socket.
    pub(super) fn add_gateway(
        &mut self,
        spec: &GatewayPortSpec,
        previous: Option<&RoutingTable>,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        if let Some(other) = self.gateways.get(&spec.local_port) {
            diagnostics.push(Diagnostic {
                route_id: spec.id.clone(),
                message: format!(
                    "local port {} is already {}'s; left out",
                    spec.local_port, other.id
                ),
            });
            return;
        }
        let mut routes: Vec<Arc<Route>> = Vec::new();
        let mut found: Vec<(String, String)> = Vec::new();
        let empty = BackendSpec {
            endpoints: Vec::new(),
            balance: Balance::RoundRobin,
        };
        let compiled = {
            let this = std::cell::RefCell::new(&mut *self);
            let mut route = |r: &RuleSpec, gateway: GatewayRoute| -> Arc<Route> {
                let first = match &gateway.action {
                    CompiledAction::Forward { backends, .. } => {
                        backends.iter().find_map(|(b, _, _)| b.clone())
                    }
                    _ => None,
                };
                let backend = first.unwrap_or_else(|| this.borrow_mut().backend(&empty, previous));
                let route = Arc::new(Route {
                    id: r.id.as_str().into(),
                    host: match r.hostnames.first() {
                        Some(GatewayHost::Exact(h)) => HostMatch::Exact(h.clone()),
                        Some(GatewayHost::Wildcard(h)) => HostMatch::Wildcard(h.clone()),
                        None => HostMatch::Any,
                    },
                    port: None,
                    path: match &r.matches.path {
                        RulePath::Exact(p) => PathMatch::Exact(p.clone()),
                        RulePath::Prefix(p) => PathMatch::SegmentPrefix(p.clone()),
                        RulePath::Regex(p) => PathMatch::Regex(p.clone()),
                    },
                    backend,
                    policy: r.policy.clone(),
                    options: r.options.clone(),
                    gateway: Some(Box::new(gateway)),
                });
                routes.push(route.clone());
                route
            };
            let mut backend = |b: &BackendSpec| this.borrow_mut().backend(b, previous);
            let mut regex = |p: &str| this.borrow_mut().regex(p, previous);
            compile(spec, &mut route, &mut backend, &mut regex, &mut found)
        };
        self.gateway_hosts.add(spec);
        diagnostics.extend(
            found
                .into_iter()
                .map(|(route_id, message)| Diagnostic { route_id, message }),
        );
        self.routes.extend(routes);
        self.gateways.insert(spec.local_port, compiled);
    }
}
