//! What one translation produces: the model, the certificates, and per-object reports
//! the status writer turns into Events and conditions. Everything is sorted by
//! namespace/name, so the same objects always give equal output.

use std::fmt;

use crate::routes::Model;
use crate::routes::certs::ScopedPair;

use super::ObjectKey;

/// One snapshot of the index, ready for `routes::build` and the status writer.
#[derive(Clone, Default)]
pub struct Translation {
    pub model: Model,
    /// TLS pairs from `spec.tls[].secretName` of our Ingresses, named `secret ns/name`,
    /// deduplicated, in name order, each with the names it may serve: the
    /// `spec.tls[].hosts` its namespace owns.
    pub certificates: Vec<ScopedPair>,
    /// Exact hosts a wildcard Secret of another namespace covers: they get the default
    /// certificate unless their owner's Secret names them.
    pub default_certificate_hosts: Vec<String>,
    /// One per Ingress of our class, by key. Ingresses of other classes have none.
    pub ingresses: Vec<IngressReport>,
    /// One per IdentityPolicy, by key.
    pub policies: Vec<IdentityPolicyReport>,
    /// Gateway API: class, Gateway and HTTPRoute reports, Services to provision,
    /// sockets and their certificates.
    pub gateway: super::gateway::GatewayTranslation,
}

impl fmt::Debug for Translation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Certificates by name only: key material never reaches a log line.
        let certificates: Vec<&str> = self
            .certificates
            .iter()
            .map(|c| c.pair.source_name.as_str())
            .collect();
        f.debug_struct("Translation")
            .field("model", &self.model)
            .field("certificates", &certificates)
            .field("default_certificate_hosts", &self.default_certificate_hosts)
            .field("ingresses", &self.ingresses)
            .field("policies", &self.policies)
            .field("gateway", &self.gateway)
            .finish()
    }
}

/// How one Ingress was translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressReport {
    pub key: ObjectKey,
    pub generation: Option<i64>,
    /// `false`: rejected. Its routes exist but deny every request (fail closed).
    pub accepted: bool,
    /// Things worth an Event: warnings first seen here, and one `Normal` on acceptance.
    pub notes: Vec<Note>,
    /// Rule hosts as written (lower-case, sorted, without duplicates).
    pub hosts: Vec<String>,
    /// Ids of the routes this Ingress contributed, in model order.
    pub routes: Vec<String>,
    /// Whether this Ingress' `defaultBackend` is the cluster default backend.
    pub serves_default_backend: bool,
    /// IdentityPolicies attached (by `targetRefs`, `ingressSelector` or annotation).
    pub identity_policies: Vec<ObjectKey>,
    /// Whether the `policy` annotation, the shorthand annotations, took part.
    pub policy_annotation: bool,
    pub shorthand_annotations: bool,
}

/// A line for an Event: `Normal` or `Warning`, a CamelCase reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub type_: NoteType,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteType {
    Normal,
    Warning,
}

impl NoteType {
    /// The Event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteType::Normal => "Normal",
            NoteType::Warning => "Warning",
        }
    }
}

/// How one IdentityPolicy was read; becomes its `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPolicyReport {
    pub key: ObjectKey,
    /// `metadata.generation`, for `status.observedGeneration` and the conditions.
    pub generation: Option<i64>,
    /// Ingresses of our class it is attached to, however attached.
    pub attached_ingresses: i32,
    /// HTTPRoutes it decides: its own targets, and the routes of a Gateway it targets.
    pub attached_routes: i32,
    /// Gateways it applies under, for `status.ancestors` (GEP-713).
    pub ancestors: Vec<ObjectKey>,
    /// `Accepted`: `Valid`, `InvalidRules` (the PolicyError text) or `InvalidSelector`.
    pub accepted: ConditionState,
    /// `ResolvedRefs`: `RefsResolved`, `TargetNotFound` or `InvalidKind`.
    pub resolved_refs: ConditionState,
}

/// The parts of a `metav1.Condition` the translation decides (the writer adds the
/// type, observed generation and transition time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionState {
    /// `"True"` or `"False"`, as conditions spell it.
    pub fn status_str(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }
}

/// Event reasons (CamelCase, as Kubernetes writes them).
pub mod reasons {
    /// Normal: the Ingress is served.
    pub const ACCEPTED: &str = "Accepted";

    // Warnings that reject the Ingress (its routes deny every request).
    pub const UNKNOWN_ANNOTATION: &str = "UnknownAnnotation";
    pub const INVALID_ANNOTATION: &str = "InvalidAnnotation";
    pub const IDENTITY_POLICY_NOT_FOUND: &str = "IdentityPolicyNotFound";
    pub const IDENTITY_POLICY_INVALID: &str = "IdentityPolicyInvalid";
    pub const CA_SECRET_NOT_FOUND: &str = "CustomCASecretNotFound";
    pub const CA_SECRET_INVALID: &str = "CustomCASecretInvalid";
    pub const UNSUPPORTED_BACKEND: &str = "UnsupportedBackend";
    pub const INVALID_HOST: &str = "InvalidHost";
    pub const INVALID_PATH: &str = "InvalidPath";
    /// Tenancy (docs/security.md): what a namespace may not do.
    pub const RESERVED_HOST: &str = "ReservedHost";
    pub const HOST_OWNED_ELSEWHERE: &str = "HostOwnedElsewhere";
    pub const HOST_NOT_ASSIGNED: &str = "HostNotAssigned";
    pub const CATCH_ALL_NOT_ALLOWED: &str = "CatchAllNotAllowed";
    pub const EXTERNAL_NAME_NOT_ALLOWED: &str = "ExternalNameNotAllowed";
    pub const UPSTREAM_REFUSED: &str = "UpstreamRefused";
    pub const RESERVED_HEADER: &str = "ReservedHeader";
    pub const PATH_REGEX_LIMIT: &str = "PathRegexLimit";

    // Warnings that leave the Ingress served.
    pub const NO_POLICY: &str = "NoPolicy";
    pub const TLS_SECRET_NOT_FOUND: &str = "TLSSecretNotFound";
    pub const TLS_SECRET_INVALID: &str = "TLSSecretInvalid";
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    pub const SERVICE_PORT_NOT_FOUND: &str = "ServicePortNotFound";
    pub const NO_READY_ENDPOINTS: &str = "NoReadyEndpoints";
    pub const DEFAULT_BACKEND_CONFLICT: &str = "DefaultBackendConflict";
    pub const ROUTE_CONFLICT: &str = "RouteConflict";
    /// A `spec.tls[].hosts` name the namespace does not own: its Secret is not served
    /// for it.
    pub const TLS_HOST_NOT_OWNED: &str = "TLSHostNotOwned";

    /// IdentityPolicy `Accepted=False`: `ingressSelector` cannot be evaluated (an
    /// unknown operator, `In` without values, ...). It then selects no Ingress.
    pub const INVALID_SELECTOR: &str = "InvalidSelector";
}
