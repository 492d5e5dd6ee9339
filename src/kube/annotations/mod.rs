//! Ingress annotations (docs/annotations.md): `portcullis.dev/<key>`, and the same keys
//! under Pomerium's prefix with underscores (`ingress.pomerium.io/allowed_users`), read
//! into typed values with the meaning the config file gives the matching route keys.
//!
//! Pure and self-contained: names of other objects (IdentityPolicies, the CA Secret) are
//! only read here; the index resolves them. Every problem is collected, not just the
//! first, so one Event can list them all. An unknown key under either prefix is an error:
//! a typo must never silently drop a restriction.
//!
//! `keys` names the keys under both prefixes, `values` parses one value, `reader` turns
//! the values given into [`IngressAnnotations`]; this file checks the whole map.

use std::collections::BTreeMap;
use std::fmt;

use crate::policy::{Policy, Shorthands};
use crate::routes::{Balance, RouteOptions, UpstreamScheme};

/// Our annotation prefix; keys are written with `-`.
pub const PREFIX: &str = "portcullis.dev/";
/// Pomerium's ingress controller prefix; keys are written with `_`.
pub const POMERIUM_PREFIX: &str = "ingress.pomerium.io/";

mod keys;
mod reader;
mod values;

pub use self::keys::Key;
use self::keys::{POMERIUM_SECURE_UPSTREAM, classify};
use self::reader::Reader;
use self::values::boolean;

/// Longest annotation value read (Kubernetes allows 256 KiB for all of an object's
/// annotations together): every value is parsed on every change, policies and header
/// maps as YAML, so one Ingress cannot make that work large.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

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
