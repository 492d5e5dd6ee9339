//! Reads each key's value, given once, into the typed [`IngressAnnotations`],
//! recording a problem against the annotation as written.

use std::collections::BTreeMap;

use crate::policy::{Policy, PolicyError};
use crate::routes::{HostMatch, RouteOptions, UpstreamHost};

use super::values::*;
use super::{AnnotationError, IngressAnnotations, Key, invalid};

pub(super) struct Reader<'a> {
    pub(super) given: &'a BTreeMap<Key, (&'a str, String)>,
    pub(super) errors: Vec<AnnotationError>,
}

impl Reader<'_> {
    /// Reads `key` with `parse`, recording an error against the annotation as written.
    fn read<T>(&mut self, key: Key, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let (annotation, value) = self.given.get(&key)?;
        match parse(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.errors.push(invalid(annotation, message));
                None
            }
        }
    }

    fn fail(&mut self, key: Key, message: &str) {
        if let Some((annotation, _)) = self.given.get(&key) {
            self.errors.push(invalid(annotation, message));
        }
    }

    pub(super) fn values(&mut self) -> IngressAnnotations {
        let mut a = IngressAnnotations::default();

        // Who may pass.
        if let Some((text, policy)) = self.read(Key::Policy, |v| {
            Policy::from_yaml(v)
                .map(|p| (v.to_string(), p))
                .map_err(|e: PolicyError| format!("invalid policy: {e}"))
        }) {
            a.policy_text = Some(text);
            a.policy = Some(policy);
        }
        a.identity_policies = self
            .read(Key::IdentityPolicy, object_names)
            .unwrap_or_default();
        let s = &mut a.shorthands;
        s.allowed_users = self.read(Key::AllowedUsers, list).unwrap_or_default();
        s.allowed_domains = self.read(Key::AllowedDomains, list).unwrap_or_default();
        s.allowed_groups = self.read(Key::AllowedGroups, list).unwrap_or_default();
        s.allow_public_unauthenticated_access = self
            .read(Key::AllowPublicUnauthenticatedAccess, boolean)
            .unwrap_or(false);
        s.allow_any_authenticated_user = self
            .read(Key::AllowAnyAuthenticatedUser, boolean)
            .unwrap_or(false);
        s.cors_allow_preflight = self.read(Key::CorsAllowPreflight, boolean).unwrap_or(false);
        if s.allow_public_unauthenticated_access
            && (s.allow_any_authenticated_user
                || !s.allowed_users.is_empty()
                || !s.allowed_domains.is_empty()
                || !s.allowed_groups.is_empty())
        {
            // Pomerium refuses this too: the allow lists would mean nothing.
            self.fail(
                Key::AllowPublicUnauthenticatedAccess,
                "a public route cannot also have allow-any-authenticated-user or allowed-users/domains/groups",
            );
        }

        // Backend choice.
        a.path_regex = self.read(Key::PathRegex, boolean).unwrap_or(false);
        a.backend_protocol = self
            .read(Key::BackendProtocol, backend_protocol)
            .unwrap_or_default();
        a.service_upstream = self.read(Key::ServiceUpstream, boolean).unwrap_or(false);
        a.load_balancing = self
            .read(Key::LoadBalancing, load_balancing)
            .unwrap_or_default();
        a.tls_custom_ca_secret = self.read(Key::TlsCustomCaSecret, |v| {
            object_name(v.trim()).map(str::to_string)
        });

        a.delegates = self
            .read(Key::AllowPathsFromNamespaces, namespace_names)
            .unwrap_or_default();

        a.options = self.options();
        a
    }

    /// Route options, with the config file's rules for timeouts and websockets but the
    /// Ingress convention for the `Host` header (the client's, unless told otherwise).
    fn options(&mut self) -> RouteOptions {
        let mut o = RouteOptions::default();
        let timeout = self.read(Key::Timeout, duration);
        let idle = self.read(Key::IdleTimeout, duration);
        let websockets = self.read(Key::AllowWebsockets, boolean).unwrap_or(false);
        o.set_timeouts(timeout, idle, websockets);

        o.set_request_headers = self
            .read(Key::SetRequestHeaders, header_map)
            .unwrap_or_default();
        o.remove_request_headers = self
            .read(Key::RemoveRequestHeaders, header_names)
            .unwrap_or_default();
        o.set_response_headers = self
            .read(Key::SetResponseHeaders, header_map)
            .unwrap_or_default();
        o.pass_identity_headers = self
            .read(Key::PassIdentityHeaders, boolean)
            .unwrap_or(false);
        o.bearer_format = self.read(Key::BearerTokenFormat, crate::routes::BearerFormat::parse);
        o.lenient_paths = self
            .read(
                Key::PathNormalization,
                crate::routes::parse_path_normalization,
            )
            .unwrap_or(false);

        let preserve = self.read(Key::PreserveHostHeader, boolean);
        let rewrite = self.read(Key::HostRewrite, host_rewrite);
        o.upstream_host = match (preserve, rewrite) {
            (Some(true), Some(_)) => {
                self.fail(
                    Key::HostRewrite,
                    "cannot be used with preserve-host-header: \"true\"; pick one",
                );
                UpstreamHost::Original
            }
            (_, Some(h)) => UpstreamHost::Rewrite(h),
            (Some(false), None) => UpstreamHost::Endpoint,
            (Some(true) | None, None) => UpstreamHost::Original,
        };
        o.prefix_rewrite = self.read(Key::PrefixRewrite, |v| {
            let v = v.trim();
            if v.starts_with('/') {
                Ok(v.to_string())
            } else {
                Err(format!("`{v}` must start with `/`"))
            }
        });
        let path_regex = self.given.get(&Key::PathRegex).map(|(_, v)| boolean(v));
        if o.prefix_rewrite.is_some() && path_regex == Some(Ok(true)) {
            self.fail(
                Key::PrefixRewrite,
                "cannot be used with path-regex (there is no prefix to replace)",
            );
        }

        o.tls.skip_verify = self.read(Key::TlsSkipVerify, boolean).unwrap_or(false);
        o.tls.server_name = self.read(Key::TlsServerName, |v| match HostMatch::parse(v) {
            Ok(HostMatch::Exact(name)) => Ok(name),
            _ => Err(format!("`{v}` is not a valid server name")),
        });
        o
    }
}
