//! The compiled Gateway API table of one socket (see the module docs for the order):
//! what it holds, and the weighted choice of a forwarding rule's backend. Rules are
//! sorted once, at build ([`build`]); a lookup walks one listener's host groups in
//! order and takes the first rule that matches ([`lookup`]).

mod build;
mod lookup;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, Method};
use regex_automata::meta::Regex;

use super::{Filters, GatewayHost, HeaderModifier, HostStandings, RedirectSpec};
use crate::routes::table::{Backend, Route};

pub(crate) use build::compile;

/// Steps through the weight slots so that consecutive requests spread over the
/// backends (a prime: coprime with every total weight it does not divide).
const WEIGHT_STRIDE: u64 = 7919;

/// One socket's listeners, compiled.
#[derive(Debug)]
pub struct GatewayTable {
    pub id: Arc<str>,
    /// The Gateway's port.
    pub port: u16,
    pub tls: bool,
    /// Most specific hostname first; a listener without hostname last.
    listeners: Vec<Listener>,
    standings: Arc<HostStandings>,
}

#[derive(Debug)]
struct Listener {
    hostname: Option<GatewayHost>,
    exact: HashMap<Box<str>, Vec<Arc<Rule>>>,
    /// By suffix, longest first.
    wildcard: Vec<(Box<str>, Vec<Arc<Rule>>)>,
    any: Vec<Arc<Rule>>,
    gateway_namespace: Box<str>,
    /// [`super::ListenerSpec::shares_owned_names`].
    shares: bool,
}

#[derive(Debug)]
struct Rule {
    route: Arc<Route>,
    namespace: Box<str>,
    path: Path,
    method: Option<Method>,
    headers: Vec<(HeaderName, Value)>,
    query: Vec<(Box<str>, Value)>,
}

#[derive(Debug)]
enum Path {
    Exact(Box<str>),
    /// Without its trailing `/` (so `/` is ``).
    Prefix(Box<str>),
    Regex(Arc<Regex>),
}

#[derive(Debug)]
enum Value {
    Exact(Box<str>),
    Regex(Arc<Regex>),
}

/// What a Gateway API route does, beside what every [`Route`] has.
#[derive(Debug)]
pub struct GatewayRoute {
    /// The Gateway listener's port and scheme, for redirects.
    pub listener_port: u16,
    pub tls: bool,
    pub action: CompiledAction,
}

#[derive(Debug)]
pub enum CompiledAction {
    Forward {
        /// Backends with weight above zero; `None` for an invalid reference.
        backends: Vec<(Option<Arc<Backend>>, u64, HeaderModifier)>,
        total_weight: u64,
        next: AtomicU64,
        filters: Filters,
    },
    Redirect {
        redirect: RedirectSpec,
        response_headers: HeaderModifier,
    },
    Fail {
        reason: String,
    },
}

/// The backend a forwarded request goes to.
#[derive(Debug)]
pub enum PickedBackend<'r> {
    Backend {
        backend: &'r Arc<Backend>,
        request_headers: &'r HeaderModifier,
    },
    /// An invalid backendRef's share, or no backend with weight: `500`.
    Invalid,
}

/// A request as the Gateway lookup reads it (canonical host and path).
#[derive(Debug, Clone, Copy)]
pub struct GatewayRequest<'a> {
    pub host: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

// === impl GatewayRoute ===

impl GatewayRoute {
    /// The backend for the next request, by weight.
    pub fn pick(&self) -> Option<PickedBackend<'_>> {
        let CompiledAction::Forward {
            backends,
            total_weight,
            next,
            ..
        } = &self.action
        else {
            return None;
        };
        if *total_weight == 0 {
            return Some(PickedBackend::Invalid);
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        let stride = if total_weight % WEIGHT_STRIDE == 0 {
            1
        } else {
            WEIGHT_STRIDE
        };
        let mut slot = n.wrapping_mul(stride) % total_weight;
        for (backend, weight, headers) in backends {
            if slot < *weight {
                return Some(match backend {
                    Some(backend) => PickedBackend::Backend {
                        backend,
                        request_headers: headers,
                    },
                    None => PickedBackend::Invalid,
                });
            }
            slot -= weight;
        }
        Some(PickedBackend::Invalid)
    }

    /// The forwarding rule's filters, if it forwards.
    pub fn filters(&self) -> Option<&Filters> {
        match &self.action {
            CompiledAction::Forward { filters, .. } => Some(filters),
            _ => None,
        }
    }
}
