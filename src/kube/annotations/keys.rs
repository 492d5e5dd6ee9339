//! The annotation keys: our names, Pomerium's names for the same meanings, and which
//! key an annotation is (with a typo hint for an unknown one).

use super::{POMERIUM_PREFIX, PREFIX};

/// One meaning an annotation can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Policy,
    IdentityPolicy,
    AllowedUsers,
    AllowedDomains,
    AllowedGroups,
    AllowPublicUnauthenticatedAccess,
    AllowAnyAuthenticatedUser,
    CorsAllowPreflight,
    PassIdentityHeaders,
    SetRequestHeaders,
    RemoveRequestHeaders,
    SetResponseHeaders,
    PreserveHostHeader,
    HostRewrite,
    PrefixRewrite,
    PathRegex,
    Timeout,
    IdleTimeout,
    AllowWebsockets,
    BackendProtocol,
    TlsSkipVerify,
    TlsServerName,
    TlsCustomCaSecret,
    ServiceUpstream,
    LoadBalancing,
    AllowPathsFromNamespaces,
    BearerTokenFormat,
    PathNormalization,
}

/// Our key names (after [`PREFIX`]), as docs/annotations.md lists them.
const KEYS: &[(&str, Key)] = &[
    ("policy", Key::Policy),
    ("identity-policy", Key::IdentityPolicy),
    ("allowed-users", Key::AllowedUsers),
    ("allowed-domains", Key::AllowedDomains),
    ("allowed-groups", Key::AllowedGroups),
    (
        "allow-public-unauthenticated-access",
        Key::AllowPublicUnauthenticatedAccess,
    ),
    (
        "allow-any-authenticated-user",
        Key::AllowAnyAuthenticatedUser,
    ),
    ("cors-allow-preflight", Key::CorsAllowPreflight),
    ("pass-identity-headers", Key::PassIdentityHeaders),
    ("set-request-headers", Key::SetRequestHeaders),
    ("remove-request-headers", Key::RemoveRequestHeaders),
    ("set-response-headers", Key::SetResponseHeaders),
    ("preserve-host-header", Key::PreserveHostHeader),
    ("host-rewrite", Key::HostRewrite),
    ("prefix-rewrite", Key::PrefixRewrite),
    ("path-regex", Key::PathRegex),
    ("timeout", Key::Timeout),
    ("idle-timeout", Key::IdleTimeout),
    ("allow-websockets", Key::AllowWebsockets),
    ("backend-protocol", Key::BackendProtocol),
    ("tls-skip-verify", Key::TlsSkipVerify),
    ("tls-server-name", Key::TlsServerName),
    ("tls-custom-ca-secret", Key::TlsCustomCaSecret),
    ("service-upstream", Key::ServiceUpstream),
    ("load-balancing", Key::LoadBalancing),
    ("allow-paths-from-namespaces", Key::AllowPathsFromNamespaces),
    ("bearer-token-format", Key::BearerTokenFormat),
    ("path-normalization", Key::PathNormalization),
];

/// Pomerium's own names for keys we spell differently. Its values mean the same:
/// `secure_upstream: "true"` is `backend-protocol: https`, `service_proxy_upstream` is
/// `service-upstream`, and `load_balancing_policy` takes `ROUND_ROBIN`/`LEAST_REQUEST`.
const POMERIUM_KEYS: &[(&str, Key)] = &[
    ("secure_upstream", Key::BackendProtocol),
    ("service_proxy_upstream", Key::ServiceUpstream),
    ("load_balancing_policy", Key::LoadBalancing),
];

/// Pomerium's name for `backend-protocol: https` (a boolean, not a protocol name).
pub(super) const POMERIUM_SECURE_UPSTREAM: &str = "secure_upstream";

/// Which annotation, under which prefix, says what.
pub(super) fn classify(annotation: &str) -> Option<Result<Key, String>> {
    if let Some(name) = annotation.strip_prefix(PREFIX) {
        return Some(match KEYS.iter().find(|(k, _)| *k == name) {
            Some((_, key)) => Ok(*key),
            None => Err(unknown_message(name, '-')),
        });
    }
    let name = annotation.strip_prefix(POMERIUM_PREFIX)?;
    let found = POMERIUM_KEYS.iter().find(|(k, _)| *k == name).or_else(|| {
        // The same keys with `_`; a `-` under Pomerium's prefix is not Pomerium's spelling.
        (!name.contains('-'))
            .then(|| KEYS.iter().find(|(k, _)| k.replace('-', "_") == name))
            .flatten()
    });
    Some(match found {
        Some((_, key)) => Ok(*key),
        None => Err(unknown_message(name, '_')),
    })
}

pub(super) fn unknown_message(name: &str, separator: char) -> String {
    let spelled = |k: &str| k.replace('-', &separator.to_string());
    let hint = KEYS
        .iter()
        .map(|(k, _)| spelled(k))
        .find(|k| similar(name, k))
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    format!(
        "unknown key `{name}` (the Ingress is refused so that a typo cannot open a route){hint}"
    )
}

/// Same letters give or take a couple of edits (the config file's typo hint, simplified).
pub(super) fn similar(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}
