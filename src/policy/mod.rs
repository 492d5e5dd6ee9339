//! The policy engine: Pomerium's policy language (PPL), parsed once into a compiled
//! form and evaluated per request. Pure: no I/O, no async, no wall clock.
//!
//! CONTRACT STUB — the public API below is fixed; bodies are filled in by the policy work.

pub mod cli;

use std::fmt;
use std::net::IpAddr;

/// A compiled policy: the union of allow and deny rules of one or more documents.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    invalid: Option<String>,
}

/// Route shorthands (`allowed_users`, ...), compiled into the same form as a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shorthands {
    pub allow_public_unauthenticated_access: bool,
    pub allow_any_authenticated_user: bool,
    pub cors_allow_preflight: bool,
    pub allowed_users: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub allowed_groups: Vec<String>,
}

/// Why a document was refused, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct PolicyError {
    /// A path into the document, such as `[1].allow.and[0].groups`.
    pub location: String,
    pub message: String,
}

/// Who is asking. `groups` holds names and IDs.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub user: String,
    pub email: String,
    pub groups: Vec<String>,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// What is asked.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub source_ip: Option<IpAddr>,
    pub cors_preflight: bool,
}

/// Everything a decision may depend on; `now` comes from the caller, never the clock.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub identity: Option<&'a Identity>,
    pub request: Request<'a>,
    pub now: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    SignIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::SignIn => "sign-in",
        })
    }
}

impl Policy {
    pub fn from_yaml(_text: &str) -> Result<Policy, PolicyError> {
        Ok(Policy::default())
    }
    pub fn from_value(_doc: &serde_json::Value) -> Result<Policy, PolicyError> {
        Ok(Policy::default())
    }
    pub fn from_shorthands(s: &Shorthands) -> Policy {
        if s.allow_public_unauthenticated_access {
            Policy { invalid: None }
        } else {
            Policy::deny_all("no rules")
        }
    }
    pub fn deny_all(reason: impl Into<String>) -> Policy {
        Policy {
            invalid: Some(reason.into()),
        }
    }
    pub fn union(parts: impl IntoIterator<Item = Policy>) -> Policy {
        parts.into_iter().next().unwrap_or_default()
    }
    pub fn invalid_reason(&self) -> Option<&str> {
        self.invalid.as_deref()
    }
    pub fn evaluate(&self, _input: &Input<'_>) -> Decision {
        Decision {
            outcome: if self.invalid.is_some() {
                Outcome::Deny
            } else {
                Outcome::Allow
            },
        }
    }
}
