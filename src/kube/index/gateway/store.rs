//! What the index keeps of Gateway API objects (and of Namespaces and ConfigMaps,
//! which `allowedRoutes` selectors and GatewayClass parameters read), and whether a
//! new version changes anything translation reads.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};

use super::super::store::{Content, in_scope};
use super::super::{Malformed, ObjectKey, Settings};
use crate::kube::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};

impl Content for GatewayClass {
    fn same_content(&self, other: &Self) -> bool {
        self.spec == other.spec && self.metadata.generation == other.metadata.generation
    }
}

impl Content for Gateway {
    fn same_content(&self, other: &Self) -> bool {
        self.spec == other.spec
            && self.metadata.generation == other.metadata.generation
            && self.metadata.creation_timestamp == other.metadata.creation_timestamp
    }
}

impl Content for HTTPRoute {
    fn same_content(&self, other: &Self) -> bool {
        self.spec == other.spec
            && self.metadata.generation == other.metadata.generation
            && self.metadata.creation_timestamp == other.metadata.creation_timestamp
    }
}

impl Content for ReferenceGrant {
    fn same_content(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Content for Namespace {
    fn same_content(&self, other: &Self) -> bool {
        self.metadata.labels == other.metadata.labels
    }
}

impl Content for ConfigMap {
    fn same_content(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

pub(in crate::kube::index) fn admit_gateway_class(
    settings: &Settings,
    mut obj: GatewayClass,
) -> Result<(ObjectKey, Option<GatewayClass>), Malformed> {
    let key = ObjectKey::cluster("GatewayClass", &obj.metadata)?;
    let ours = settings
        .gateway
        .as_ref()
        .is_some_and(|g| obj.spec.controller_name == g.controller_name);
    if !ours {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    obj.status = None;
    Ok((key, Some(obj)))
}

pub(in crate::kube::index) fn admit_gateway(
    settings: &Settings,
    mut obj: Gateway,
) -> Result<(ObjectKey, Option<Gateway>), Malformed> {
    let key = ObjectKey::namespaced("Gateway", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    obj.status = None;
    Ok((key, Some(obj)))
}

pub(in crate::kube::index) fn admit_http_route(
    settings: &Settings,
    mut obj: HTTPRoute,
) -> Result<(ObjectKey, Option<HTTPRoute>), Malformed> {
    let key = ObjectKey::namespaced("HTTPRoute", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    // Status is ours to write, but other controllers' parents in it are kept by the
    // writer, which reads it fresh; the index never needs it.
    obj.status = None;
    Ok((key, Some(obj)))
}

pub(in crate::kube::index) fn admit_reference_grant(
    settings: &Settings,
    mut obj: ReferenceGrant,
) -> Result<(ObjectKey, Option<ReferenceGrant>), Malformed> {
    let key = ObjectKey::namespaced("ReferenceGrant", &obj.metadata)?;
    if !in_scope(settings, &key) {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    Ok((key, Some(obj)))
}

/// Namespaces: only their labels (`allowedRoutes.namespaces.selector`).
pub(in crate::kube::index) fn admit_namespace(
    _settings: &Settings,
    obj: Namespace,
) -> Result<(ObjectKey, Option<Namespace>), Malformed> {
    let key = ObjectKey::cluster("Namespace", &obj.metadata)?;
    let kept = Namespace {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: obj.metadata.name,
            labels: obj.metadata.labels,
            ..Default::default()
        },
        ..Namespace::default()
    };
    Ok((key, Some(kept)))
}

/// ConfigMaps of the controller's namespace (GatewayClass parameters); others are not
/// indexed, whoever lists them.
pub(in crate::kube::index) fn admit_config_map(
    settings: &Settings,
    mut obj: ConfigMap,
) -> Result<(ObjectKey, Option<ConfigMap>), Malformed> {
    let key = ObjectKey::namespaced("ConfigMap", &obj.metadata)?;
    let ours = key.namespace == settings.tenancy.controller_namespace;
    if !ours {
        return Ok((key, None));
    }
    obj.metadata.managed_fields = None;
    obj.metadata.annotations = None;
    obj.binary_data = None;
    Ok((key, Some(obj)))
}
