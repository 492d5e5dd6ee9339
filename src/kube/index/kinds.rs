//! The kinds the index keeps. A kind is one [`Indexed`] impl: where its objects are
//! stored in the [`Index`] and how one object is admitted (its key, and what is kept of
//! it); [`Index::apply`], [`Index::delete`], [`Index::reset_scoped`] and [`Relist`]
//! do the rest, the same for every kind.
//!
//! [`Relist`]: super::Relist

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Resource;

use super::store::{self, Content, IngressEntry, PolicyEntry, Store};
use super::{Index, Malformed, ObjectKey, Settings, gateway};
use crate::kube::crd::IdentityPolicy;
use crate::kube::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};

/// What admitting one object gives: its key, and what is kept of it (`None`: nothing,
/// the object is of no interest).
pub type Admitted<E> = Result<(ObjectKey, Option<E>), Malformed>;

/// A kind the index keeps, so the index's methods and one generic [`Relist`] serve
/// every kind.
///
/// [`Relist`]: super::Relist
pub trait Indexed: Resource + Sized {
    /// The kind, for log lines.
    const KIND: &'static str;
    /// A cluster-scoped kind is keyed and deleted by name alone, and listed by one
    /// cluster-wide watcher, whose re-list replaces every object of the kind.
    const CLUSTER_SCOPED: bool = false;
    /// What the index keeps of one object.
    type Entry: Content;

    /// Where `index` keeps this kind's objects.
    fn store(index: &mut Index) -> &mut Store<Self::Entry>;

    /// Decides what is kept of `obj` (`store::admit_*`).
    fn admit(settings: &Settings, obj: Self) -> Admitted<Self::Entry>;
}

/// An Ingress, with its annotations parsed and its path regexes checked.
impl Indexed for Ingress {
    const KIND: &'static str = "Ingress";
    type Entry = IngressEntry;

    fn store(index: &mut Index) -> &mut Store<IngressEntry> {
        &mut index.ingresses
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<IngressEntry> {
        store::admit_ingress(settings, obj)
    }
}

/// An IngressClass (cluster-scoped).
impl Indexed for IngressClass {
    const KIND: &'static str = "IngressClass";
    const CLUSTER_SCOPED: bool = true;
    type Entry = IngressClass;

    fn store(index: &mut Index) -> &mut Store<IngressClass> {
        &mut index.classes
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<IngressClass> {
        store::admit_ingress_class(settings, obj)
    }
}

/// A Service.
impl Indexed for Service {
    const KIND: &'static str = "Service";
    type Entry = Service;

    fn store(index: &mut Index) -> &mut Store<Service> {
        &mut index.services
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<Service> {
        store::admit_service(settings, obj)
    }
}

/// An EndpointSlice.
impl Indexed for EndpointSlice {
    const KIND: &'static str = "EndpointSlice";
    type Entry = EndpointSlice;

    fn store(index: &mut Index) -> &mut Store<EndpointSlice> {
        &mut index.slices
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<EndpointSlice> {
        store::admit_endpoint_slice(settings, obj)
    }
}

/// A Secret: only TLS and CA Secrets are kept.
impl Indexed for Secret {
    const KIND: &'static str = "Secret";
    type Entry = Secret;

    fn store(index: &mut Index) -> &mut Store<Secret> {
        &mut index.secrets
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<Secret> {
        store::admit_secret(settings, obj)
    }
}

/// An IdentityPolicy, with its rules compiled and its selector checked.
impl Indexed for IdentityPolicy {
    const KIND: &'static str = "IdentityPolicy";
    type Entry = PolicyEntry;

    fn store(index: &mut Index) -> &mut Store<PolicyEntry> {
        &mut index.policies
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<PolicyEntry> {
        store::admit_identity_policy(settings, obj)
    }
}

/// A GatewayClass (cluster-scoped): only ours are kept.
impl Indexed for GatewayClass {
    const KIND: &'static str = "GatewayClass";
    const CLUSTER_SCOPED: bool = true;
    type Entry = GatewayClass;

    fn store(index: &mut Index) -> &mut Store<GatewayClass> {
        &mut index.gateway_classes
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<GatewayClass> {
        gateway::store::admit_gateway_class(settings, obj)
    }
}

/// A Gateway.
impl Indexed for Gateway {
    const KIND: &'static str = "Gateway";
    type Entry = Gateway;

    fn store(index: &mut Index) -> &mut Store<Gateway> {
        &mut index.gateways
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<Gateway> {
        gateway::store::admit_gateway(settings, obj)
    }
}

/// An HTTPRoute.
impl Indexed for HTTPRoute {
    const KIND: &'static str = "HTTPRoute";
    type Entry = HTTPRoute;

    fn store(index: &mut Index) -> &mut Store<HTTPRoute> {
        &mut index.http_routes
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<HTTPRoute> {
        gateway::store::admit_http_route(settings, obj)
    }
}

/// A ReferenceGrant.
impl Indexed for ReferenceGrant {
    const KIND: &'static str = "ReferenceGrant";
    type Entry = ReferenceGrant;

    fn store(index: &mut Index) -> &mut Store<ReferenceGrant> {
        &mut index.reference_grants
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<ReferenceGrant> {
        gateway::store::admit_reference_grant(settings, obj)
    }
}

/// A Namespace (cluster-scoped): its labels, for `allowedRoutes` selectors.
impl Indexed for Namespace {
    const KIND: &'static str = "Namespace";
    const CLUSTER_SCOPED: bool = true;
    type Entry = Namespace;

    fn store(index: &mut Index) -> &mut Store<Namespace> {
        &mut index.namespaces
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<Namespace> {
        gateway::store::admit_namespace(settings, obj)
    }
}

/// A ConfigMap: only the controller namespace's are kept (GatewayClass parameters).
impl Indexed for ConfigMap {
    const KIND: &'static str = "ConfigMap";
    type Entry = ConfigMap;

    fn store(index: &mut Index) -> &mut Store<ConfigMap> {
        &mut index.config_maps
    }

    fn admit(settings: &Settings, obj: Self) -> Admitted<ConfigMap> {
        gateway::store::admit_config_map(settings, obj)
    }
}
