//! Ingress annotations (docs/annotations.md): `portcullis.dev/<key>`, and the same keys
//! under Pomerium's prefix with underscores (`ingress.pomerium.io/allowed_users`), read
//! into typed values with the meaning the config file gives the matching route keys.
//!
//! Pure and self-contained: names of other objects (IdentityPolicies, the CA Secret) are
//! only read here; the index resolves them. Every problem is collected, not just the
//! first, so one Event can list them all. An unknown key under either prefix is an error:
//! a typo must never silently drop a restriction.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::policy::{Policy, PolicyError, Shorthands};
use crate::routes::options;
use crate::routes::{Balance, HostMatch, RouteOptions, UpstreamHost, UpstreamScheme};

/// Our annotation prefix; keys are written with `-`.
pub const PREFIX: &str = "portcullis.dev/";
/// Pomerium's ingress controller prefix; keys are written with `_`.
pub const POMERIUM_PREFIX: &str = "ingress.pomerium.io/";

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

/// Longest annotation value read (Kubernetes allows 256 KiB for all of an object's
/// annotations together): every value is parsed on every change, policies and header
/// maps as YAML, so one Ingress cannot make that work large.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// Pomerium's own names for keys we spell differently. Its values mean the same:
/// `secure_upstream: "true"` is `backend-protocol: https`, `service_proxy_upstream` is
/// `service-upstream`, and `load_balancing_policy` takes `ROUND_ROBIN`/`LEAST_REQUEST`.
const POMERIUM_KEYS: &[(&str, Key)] = &[
    ("secure_upstream", Key::BackendProtocol),
    ("service_proxy_upstream", Key::ServiceUpstream),
    ("load_balancing_policy", Key::LoadBalancing),
];

/// Pomerium's name for `backend-protocol: https` (a boolean, not a protocol name).
const POMERIUM_SECURE_UPSTREAM: &str = "secure_upstream";

/// The typed values of an Ingress' annotations. Absent keys keep Ingress defaults.
#[derive(Debug, Clone, Default)]
pub struct IngressAnnotations {
    /// The `policy` document as written, and compiled.
    pub policy_text: Option<String>,
    pub policy: Option<Policy>,
    /// `identity-policy`: IdentityPolicy names in the Ingress' namespace.
    pub identity_policies: Vec<String>,
    pub shorthands: Shorthands,
    /// `path-regex`: `ImplementationSpecific` paths are anchored regular expressions.
    pub path_regex: bool,
    pub backend_protocol: UpstreamScheme,
    pub service_upstream: bool,
    pub load_balancing: Balance,
    /// `tls-custom-ca-secret`: a Secret in the Ingress' namespace holding `ca.crt`.
    pub tls_custom_ca_secret: Option<String>,
    /// Route options, except `tls.ca_pem` (the index fills it from the Secret).
    pub options: RouteOptions,
    /// `allow-paths-from-namespaces`: namespaces that may add paths to this Ingress'
    /// hosts (when its namespace owns them).
    pub delegates: Vec<String>,
}

/// One annotation that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationError {
    /// The annotation as written, with its prefix.
    pub annotation: String,
    pub kind: AnnotationErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationErrorKind {
    /// Not a key we know under our prefix or Pomerium's.
    Unknown,
    /// A known key with a value we cannot use.
    Invalid,
}

/// What [`parse`] read: the values (best effort: a key in error keeps its default) and
/// every problem. The Ingress is usable only when `errors` is empty.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub values: IngressAnnotations,
    pub errors: Vec<AnnotationError>,
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {}: {}", self.annotation, self.message)
    }
}

/// Which annotation, under which prefix, says what.
fn classify(annotation: &str) -> Option<Result<Key, String>> {
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

fn unknown_message(name: &str, separator: char) -> String {
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
fn similar(a: &str, b: &str) -> bool {
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

/// Reads every annotation under our prefix and Pomerium's. Other annotations are ignored.
pub fn parse(annotations: &BTreeMap<String, String>) -> Parsed {
    let mut errors = Vec::new();
    // Key -> (annotation as written, value). Both spellings of one key must agree.
    let mut given: BTreeMap<Key, (&str, String)> = BTreeMap::new();
    for (annotation, value) in annotations {
        let key = match classify(annotation) {
            None => continue,
            Some(Ok(key)) => key,
            Some(Err(message)) => {
                errors.push(AnnotationError {
                    annotation: annotation.clone(),
                    kind: AnnotationErrorKind::Unknown,
                    message,
                });
                continue;
            }
        };
        if value.len() > MAX_VALUE_BYTES {
            errors.push(invalid(
                annotation,
                format!(
                    "the value is {} bytes long; the limit is {MAX_VALUE_BYTES}",
                    value.len()
                ),
            ));
            continue;
        }
        let mut value = value.trim().to_string();
        if annotation.strip_prefix(POMERIUM_PREFIX) == Some(POMERIUM_SECURE_UPSTREAM) {
            match boolean(&value) {
                Ok(true) => value = "https".into(),
                Ok(false) => continue,
                Err(message) => {
                    errors.push(invalid(annotation, message));
                    continue;
                }
            }
        }
        match given.get(&key) {
            Some((first, v)) if *v != value => errors.push(invalid(
                annotation,
                format!("conflicts with {first}, which says the same thing differently"),
            )),
            Some(_) => {}
            None => {
                given.insert(key, (annotation.as_str(), value));
            }
        }
    }

    let mut r = Reader {
        given: &given,
        errors,
    };
    let values = r.values();
    Parsed {
        values,
        errors: r.errors,
    }
}

fn invalid(annotation: &str, message: impl Into<String>) -> AnnotationError {
    AnnotationError {
        annotation: annotation.to_string(),
        kind: AnnotationErrorKind::Invalid,
        message: message.into(),
    }
}

// === impl Reader ===

struct Reader<'a> {
    given: &'a BTreeMap<Key, (&'a str, String)>,
    errors: Vec<AnnotationError>,
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

    fn values(&mut self) -> IngressAnnotations {
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

// === value readers ===

/// The shared parsers ([`crate::routes::options`]) with this module's error type.
pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    options::boolean(v).map_err(|e| e.0)
}

fn duration(v: &str) -> Result<Duration, String> {
    options::duration(v).map_err(|e| e.0)
}

/// A YAML or JSON value (`["a", "b"]`, `{X-A: "1"}`, a block list or mapping).
fn yaml(v: &str) -> Result<serde_json::Value, String> {
    serde_saphyr::from_str::<serde_json::Value>(v).map_err(|e| {
        let options = serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        };
        format!(
            "not valid YAML: {}",
            e.without_snippet().render_with_options(options)
        )
    })
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a value is written as a YAML/JSON list rather than comma-separated text.
fn looks_like_list(v: &str) -> bool {
    let v = v.trim_start();
    v.starts_with('[') || v.starts_with("- ") || v.starts_with("-\n")
}

/// A YAML/JSON list of strings, or comma-separated items (spaces inside items kept:
/// group names have them).
fn list(v: &str) -> Result<Vec<String>, String> {
    if looks_like_list(v) {
        let serde_json::Value::Array(items) = yaml(v)? else {
            return Err("expected a list of strings".into());
        };
        items
            .iter()
            .map(|item| match scalar_text(item) {
                Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(format!(
                    "list items must be non-empty strings, found `{item}`"
                )),
            })
            .collect()
    } else {
        Ok(v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// A Kubernetes object name (DNS subdomain).
fn object_name(v: &str) -> Result<&str, String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(v)
    } else {
        Err(format!("`{v}` is not a valid object name"))
    }
}

fn object_names(v: &str) -> Result<Vec<String>, String> {
    let names = list(v)?;
    if names.is_empty() {
        return Err("expected one or more IdentityPolicy names".into());
    }
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            object_name(&n)?;
            out.push(n);
        }
    }
    Ok(out)
}

/// Namespace names (DNS labels), comma-separated or as a list, without duplicates.
fn namespace_names(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for n in list(v)? {
        let ok = n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!("`{n}` is not a namespace name"));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    options::header_name(name).map_err(|e| e.0)
}

/// A YAML/JSON mapping of header names to values, in name order. A name given twice
/// (header names ignore case) is refused rather than one silently winning.
fn header_map(v: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    let serde_json::Value::Object(map) = yaml(v)? else {
        return Err("expected a mapping of header names to values, such as {X-Team: ops}".into());
    };
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(map.len());
    for (k, val) in &map {
        let text = scalar_text(val)
            .ok_or_else(|| format!("the value of `{k}` must be a string, found {val}"))?;
        let value = options::header_value(&text).map_err(|e| e.0)?;
        let name = header_name(k)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("header `{name}` is given twice"));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn header_names(v: &str) -> Result<Vec<HeaderName>, String> {
    list(v)?.iter().map(|n| header_name(n)).collect()
}

fn host_rewrite(v: &str) -> Result<String, String> {
    options::host_rewrite(v).map_err(|e| e.0)
}

fn backend_protocol(v: &str) -> Result<UpstreamScheme, String> {
    options::backend_protocol(v).map_err(|e| e.0)
}

fn load_balancing(v: &str) -> Result<Balance, String> {
    options::balance(v).map_err(|e| e.0)
}
