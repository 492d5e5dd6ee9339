//! Gateway API (`gateway.networking.k8s.io`): the objects Portcullis reads ([`api`]),
//! the names and versions it speaks, and the conditions and reasons the spec defines.
//! The translation into the routing model lives in `kube::index::gateway`; status
//! and the Services that give Gateways their addresses in [`status`].

pub mod api;
pub mod status;

/// API group of every Gateway API kind.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The Gateway API release whose CRDs, types and conformance suite Portcullis pins.
pub const BUNDLE_VERSION: &str = "v1.6.3";
/// `GatewayClass.spec.controllerName` of the classes Portcullis serves.
pub const CONTROLLER_NAME: &str = "portcullis.dev/gateway-controller";

/// Kinds, as references and `supportedKinds` spell them.
pub const KIND_GATEWAY: &str = "Gateway";
pub const KIND_HTTP_ROUTE: &str = "HTTPRoute";
pub const KIND_SERVICE: &str = "Service";
pub const KIND_SECRET: &str = "Secret";

/// Condition types.
pub mod conditions {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const CONFLICTED: &str = "Conflicted";
}

/// Condition reasons, as the spec names them (and a few of Portcullis's own, for the
/// tenancy rules the spec leaves to implementations).
pub mod reasons {
    // Shared.
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const INVALID: &str = "Invalid";
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const PENDING: &str = "Pending";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";

    // Gateway.
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const LISTENERS_NOT_RESOLVED: &str = "ListenersNotResolved";
    pub const UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";

    // Listener.
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";

    // Route parent.
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const UNSUPPORTED_PROTOCOL_BACKEND: &str = "UnsupportedProtocol";
    /// Portcullis's own: every hostname the route names is another namespace's
    /// (host ownership, docs/security.md) or Portcullis's sign-in host.
    pub const HOST_NOT_OWNED: &str = "HostNotOwned";
}
