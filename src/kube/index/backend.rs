//! Ingress service backends to upstream addresses: ready EndpointSlice addresses, an
//! ExternalName, or the Service's own DNS name (`service-upstream`). Every address and
//! name goes through [`UpstreamRules`]; a refused one refuses the backend.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::api::networking::v1::IngressServiceBackend;

use super::report::reasons;
use super::store::Store;
use super::upstreams::UpstreamRules;
use super::{ObjectKey, SERVICE_NAME_LABEL};
use crate::routes::{EndpointSpec, Reach, UpstreamScheme};

/// `spec.type` of a Service that is a DNS alias.
const EXTERNAL_NAME: &str = "ExternalName";
/// `addressType` of EndpointSlices whose addresses are DNS names.
const FQDN: &str = "FQDN";

/// A backend's endpoints, or why there are none.
#[derive(Debug, Default)]
pub(super) struct Resolution {
    pub endpoints: Vec<EndpointSpec>,
    /// Nothing to route to (yet): a warning; the route is made and answers 503.
    pub warning: Option<(&'static str, String)>,
    /// An upstream the namespace may not use: the Ingress is rejected.
    pub refusal: Option<(&'static str, String)>,
}

impl Resolution {
    fn warn(reason: &'static str, message: String) -> Self {
        Resolution {
            warning: Some((reason, message)),
            ..Resolution::default()
        }
    }

    fn refuse(reason: &'static str, message: String) -> Self {
        Resolution {
            refusal: Some((reason, message)),
            ..Resolution::default()
        }
    }
}

/// Services and their EndpointSlices, grouped once per translation.
pub(super) struct Services<'a> {
    services: &'a Store<Service>,
    /// `(namespace, service name)` → its slices, in slice-name order.
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    cluster_domain: &'a str,
    rules: &'a UpstreamRules<'a>,
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
        rules: &'a UpstreamRules<'a>,
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
            rules,
        }
    }

    /// The endpoints of `backend` in `namespace`, sorted, or why there are none.
    pub fn resolve(
        &self,
        namespace: &str,
        backend: &IngressServiceBackend,
        up: Upstream,
    ) -> Resolution {
        let name = &backend.name;
        let Some(service) = self.services.get(&ObjectKey::new(namespace, name)) else {
            return Resolution::warn(
                reasons::SERVICE_NOT_FOUND,
                format!("Service {namespace}/{name} not found"),
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
            Resolution::warn(
                reasons::SERVICE_PORT_NOT_FOUND,
                format!("Service {namespace}/{name} has no port {port_text}"),
            )
        };
        let endpoint = |host: String, port: u16| EndpointSpec {
            scheme: up.scheme,
            host,
            port,
            reach: Reach::Tenant,
        };
        // A DNS name with a port: the Service's port, or the number as written.
        let dns_port = service_port
            .map(|p| p.port)
            .or(by_number)
            .and_then(|p| u16::try_from(p).ok());

        let external = spec.and_then(|s| {
            (s.type_.as_deref() == Some(EXTERNAL_NAME))
                .then(|| s.external_name.clone())
                .flatten()
        });
        if let Some(external) = external {
            let what = format!("Service {namespace}/{name} (ExternalName `{external}`)");
            if !self.rules.tenancy.allow_external_names {
                return Resolution::refuse(
                    reasons::EXTERNAL_NAME_NOT_ALLOWED,
                    format!(
                        "{what} is not followed: ExternalName Services are off unless the controller runs with --allow-external-name-services"
                    ),
                );
            }
            let Some(port) = dns_port else {
                return port_missing();
            };
            let host = external.trim_end_matches('.').to_ascii_lowercase();
            if let Err(why) = self.rules.check_name(&host, port, namespace) {
                return Resolution::refuse(reasons::UPSTREAM_REFUSED, format!("{what}: {why}"));
            }
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            return Resolution {
                endpoints: vec![endpoint(host, port)],
                ..Resolution::default()
            };
        }
        if up.service_upstream {
            let host = format!("{name}.{namespace}.svc.{}", self.cluster_domain);
            return match dns_port {
                Some(port) => Resolution {
                    endpoints: vec![endpoint(host, port)],
                    ..Resolution::default()
                },
                None => port_missing(),
            };
        }

        let Some(service_port) = service_port else {
            return port_missing();
        };
        // Slices name their ports as the Service does; an unnamed port is "".
        let port_name = service_port.name.as_deref().unwrap_or_default();
        let mut addresses: BTreeSet<(String, u16)> = BTreeSet::new();
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
            let slice_name = slice.metadata.name.as_deref().unwrap_or_default();
            let fqdn = slice.address_type == FQDN;
            if fqdn && !self.rules.tenancy.allow_external_names {
                return Resolution::refuse(
                    reasons::EXTERNAL_NAME_NOT_ALLOWED,
                    format!(
                        "EndpointSlice {namespace}/{slice_name} holds DNS names (addressType FQDN), followed only with --allow-external-name-services"
                    ),
                );
            }
            for endpoint in slice.endpoints.iter().filter(|e| ready(e)) {
                for address in &endpoint.addresses {
                    let address = address.trim().to_ascii_lowercase();
                    let checked = if fqdn {
                        self.rules.check_name(&address, port, namespace)
                    } else {
                        match address.parse() {
                            Ok(ip) => self.rules.check_ip(ip, port, namespace),
                            Err(_) => Err(format!("`{address}` is not an IP address")),
                        }
                    };
                    if let Err(why) = checked {
                        return Resolution::refuse(
                            reasons::UPSTREAM_REFUSED,
                            format!(
                                "Service {namespace}/{name}: EndpointSlice {namespace}/{slice_name} address {why}"
                            ),
                        );
                    }
                    addresses.insert((address, port));
                }
            }
        }
        if addresses.is_empty() {
            return Resolution::warn(
                reasons::NO_READY_ENDPOINTS,
                format!("Service {namespace}/{name} port {port_text} has no ready endpoints"),
            );
        }
        Resolution {
            endpoints: addresses
                .into_iter()
                .map(|(host, port)| endpoint(host, port))
                .collect(),
            ..Resolution::default()
        }
    }
}

/// Ready, or readiness unknown (Kubernetes says to treat unset as ready), and not
/// terminating.
fn ready(e: &Endpoint) -> bool {
    let c = e.conditions.as_ref();
    c.and_then(|c| c.ready) != Some(false) && c.and_then(|c| c.terminating) != Some(true)
}
