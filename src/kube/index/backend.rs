//! Ingress service backends to upstream addresses: ready EndpointSlice addresses, an
//! ExternalName, or the Service's own DNS name (`service-upstream`).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::api::networking::v1::IngressServiceBackend;

use super::report::reasons;
use super::store::Store;
use super::{ObjectKey, SERVICE_NAME_LABEL};
use crate::routes::{EndpointSpec, UpstreamScheme};

/// `spec.type` of a Service that is a DNS alias.
const EXTERNAL_NAME: &str = "ExternalName";

/// Services and their EndpointSlices, grouped once per translation.
pub(super) struct Services<'a> {
    services: &'a Store<Service>,
    /// `(namespace, service name)` → its slices, in slice-name order.
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    cluster_domain: &'a str,
}

/// How the upstream of one backend is reached.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upstream {
    pub scheme: UpstreamScheme,
    pub service_upstream: bool,
}

impl<'a> Services<'a> {
    pub fn new(
        services: &'a Store<Service>,
        slices: &'a Store<EndpointSlice>,
        cluster_domain: &'a str,
    ) -> Self {
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for (key, slice) in &slices.items {
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(service) = service {
                by_service
                    .entry((key.namespace.as_str(), service.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        Services {
            services,
            slices: by_service,
            cluster_domain,
        }
    }

    /// The endpoints of `backend` in `namespace`, sorted. A warning (reason, message) when
    /// there are none to be had; the route is still made and answers 503.
    pub fn resolve(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
        up: Upstream,
    ) -> (Vec<EndpointSpec>, Option<(&'static str, String)>) {
        let name = &backend.name;
        let Some(service) = self.services.get(&ObjectKey::new(namespace, name)) else {
            return (
                Vec::new(),
                Some((
                    reasons::SERVICE_NOT_FOUND,
                    format!("Service {namespace}/{name} not found"),
                )),
            );
        };
        let spec = service.spec.as_ref();
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let wanted = backend.port.as_ref();
        let by_number = wanted.and_then(|p| p.number);
        let by_name = wanted
            .and_then(|p| p.name.as_deref())
            .filter(|n| !n.is_empty());
        let service_port: Option<&ServicePort> = match (by_number, by_name) {
            (Some(n), _) => ports.iter().find(|p| p.port == n),
            (None, Some(n)) => ports.iter().find(|p| p.name.as_deref() == Some(n)),
            (None, None) => None,
        };
        let port_text = match (by_number, by_name) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => format!("`{n}`"),
            (None, None) => "(none given)".to_string(),
        };
        let port_missing = || {
            (
                Vec::new(),
                Some((
                    reasons::SERVICE_PORT_NOT_FOUND,
                    format!("Service {namespace}/{name} has no port {port_text}"),
                )),
            )
        };

        // A DNS name with a port: the Service's port, or the number as written.
        let dns_endpoint = |host: String| {
            let port = service_port.map(|p| p.port).or(by_number);
            port.and_then(|p| u16::try_from(p).ok())
                .map(|port| EndpointSpec {
                    scheme: up.scheme,
                    host,
                    port,
                })
        };

        let external = spec.and_then(|s| {
            (s.type_.as_deref() == Some(EXTERNAL_NAME))
                .then(|| s.external_name.clone())
                .flatten()
        });
        if let Some(external) = external {
            return match dns_endpoint(external.trim_end_matches('.').to_ascii_lowercase()) {
                Some(e) => (vec![e], None),
                None => port_missing(),
            };
        }
        if up.service_upstream {
            let host = format!("{name}.{namespace}.svc.{}", self.cluster_domain);
            return match dns_endpoint(host) {
                Some(e) => (vec![e], None),
                None => port_missing(),
            };
        }

        let Some(service_port) = service_port else {
            return port_missing();
        };
        // Slices name their ports as the Service does; an unnamed port is "".
        let port_name = service_port.name.as_deref().unwrap_or_default();
        let mut addresses: BTreeSet<(&str, u16)> = BTreeSet::new();
        for slice in self
            .slices
            .get(&(namespace, name.as_str()))
            .into_iter()
            .flatten()
        {
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            let Some(port) = port else { continue };
            for endpoint in slice.endpoints.iter().filter(|e| ready(e)) {
                for address in &endpoint.addresses {
                    addresses.insert((address.as_str(), port));
                }
            }
        }
        if addresses.is_empty() {
            return (
                Vec::new(),
                Some((
                    reasons::NO_READY_ENDPOINTS,
                    format!("Service {namespace}/{name} port {port_text} has no ready endpoints"),
                )),
            );
        }
        let endpoints = addresses
            .into_iter()
            .map(|(host, port)| EndpointSpec {
                scheme: up.scheme,
                host: host.to_string(),
                port,
            })
            .collect();
        (endpoints, None)
    }
}

/// Ready, or readiness unknown (Kubernetes says to treat unset as ready), and not
/// terminating.
fn ready(e: &Endpoint) -> bool {
    let c = e.conditions.as_ref();
    c.and_then(|c| c.ready) != Some(false) && c.and_then(|c| c.terminating) != Some(true)
}
