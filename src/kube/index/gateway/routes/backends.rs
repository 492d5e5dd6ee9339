//! One backendRef: its filters, the Service it names (another namespace's with a
//! ReferenceGrant), the port and the protocol it speaks, and its endpoints.

use k8s_openapi::api::networking::v1::{IngressServiceBackend, ServiceBackendPort};

use super::filters::{Direction, header_modifier};
use super::rules::Problems;
use crate::kube::gateway::api::HTTPBackendRef;
use crate::kube::gateway::{KIND_HTTP_ROUTE, KIND_SERVICE, reasons};
use crate::kube::index::backend::{Services, Upstream};
use crate::kube::index::gateway::refs::permitted;
use crate::kube::index::{Index, ObjectKey};
use crate::routes::UpstreamScheme;
use crate::routes::gateway::{HeaderModifier, WeightedBackend};

/// One backendRef: its endpoints, or `None` (its share of requests gets 500) with the
/// reason in `problems`.
pub(super) fn backend(
    index: &Index,
    services: &Services<'_>,
    route: &ObjectKey,
    r: &HTTPBackendRef,
    at: &str,
    problems: &mut Problems,
    claim_headers: &[String],
) -> WeightedBackend {
    let weight = u32::try_from(r.weight.unwrap_or(1)).unwrap_or(0);
    let mut out = WeightedBackend {
        backend: None,
        weight,
        request_headers: HeaderModifier::default(),
    };
    for (f, filter) in r.filters.iter().enumerate() {
        let at = format!("{at}.filters[{f}]");
        let spec = match (filter.type_.as_str(), &filter.request_header_modifier) {
            ("RequestHeaderModifier", Some(spec)) => spec,
            (other, _) => {
                problems.unsupported(
                    reasons::UNSUPPORTED_VALUE,
                    format!("{at}: filter type {other} is not supported on a backendRef (RequestHeaderModifier is)"),
                );
                return out;
            }
        };
        match header_modifier(spec, Direction::Request, claim_headers) {
            Ok(m) => out.request_headers = m,
            Err(why) => {
                problems.unsupported(reasons::UNSUPPORTED_VALUE, format!("{at}: {why}"));
                return out;
            }
        }
    }
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or(KIND_SERVICE);
    if !group.is_empty() || kind != KIND_SERVICE {
        problems.unresolved(
            reasons::INVALID_KIND,
            format!("{at}: {group}/{kind} is not a backend Portcullis can use (a Service is)"),
        );
        return out;
    }
    let ns = r.namespace.as_deref().unwrap_or(&route.namespace);
    if !permitted(
        index,
        (KIND_HTTP_ROUTE, &route.namespace),
        (KIND_SERVICE, ns),
        &r.name,
    ) {
        problems.unresolved(
            reasons::REF_NOT_PERMITTED,
            format!(
                "{at}: Service {ns}/{} is in another namespace and no ReferenceGrant there permits it",
                r.name
            ),
        );
        return out;
    }
    let Some(port) = r.port.filter(|p| (1..=65535).contains(p)) else {
        problems.unresolved(
            reasons::BACKEND_NOT_FOUND,
            format!("{at}: a Service backend needs a port"),
        );
        return out;
    };
    // The Service port's appProtocol decides how to speak to it.
    let svc_key = ObjectKey::new(ns, r.name.as_str());
    let app_protocol = index
        .services
        .get(&svc_key)
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port))
        .and_then(|p| p.app_protocol.clone());
    let scheme = match app_protocol.as_deref() {
        None | Some("http") | Some("kubernetes.io/ws") => UpstreamScheme::Http,
        Some("kubernetes.io/h2c") => UpstreamScheme::H2c,
        Some(other) => {
            problems.unresolved(
                reasons::UNSUPPORTED_PROTOCOL_BACKEND,
                format!("{at}: Service {svc_key} port {port} speaks appProtocol {other}, which Portcullis does not"),
            );
            return out;
        }
    };
    let resolution = services.resolve(
        ns,
        &IngressServiceBackend {
            name: r.name.clone(),
            port: Some(ServiceBackendPort {
                name: None,
                number: Some(port),
            }),
        },
        Upstream {
            scheme,
            service_upstream: false,
        },
    );
    if let Some((_, message)) = &resolution.refusal {
        problems.unresolved(reasons::REF_NOT_PERMITTED, format!("{at}: {message}"));
        return out;
    }
    match &resolution.warning {
        Some((reason, message))
            if *reason == crate::kube::index::reasons::SERVICE_NOT_FOUND
                || *reason == crate::kube::index::reasons::SERVICE_PORT_NOT_FOUND =>
        {
            problems.unresolved(reasons::BACKEND_NOT_FOUND, format!("{at}: {message}"));
            return out;
        }
        // No ready endpoints: a valid backend that answers 503 until it has some.
        _ => {}
    }
    out.backend = Some(crate::routes::BackendSpec {
        endpoints: resolution.endpoints,
        balance: crate::routes::Balance::RoundRobin,
    });
    out
}
