//! The policy engine: Pomerium's policy language (PPL), parsed once into a compiled
//! form and evaluated per request. Pure: no I/O, no async, no wall clock.
//!
//! Evaluation follows Pomerium's generated rego: every criterion yields a value and a
//! reason, operators merge them, and a `user-unauthenticated` reason anywhere in the
//! final allow or deny result means the caller must sign in first (docs/policy.md).

pub mod cli;
mod criteria;
mod matchers;
mod node;
mod parse;
mod reason;
#[cfg(test)]
mod tests;
mod time;

pub use reason::{Reason, Reasons};

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use criteria::{Criterion, Verdict};
use matchers::{ListMatcher, StringMatcher};
use node::{Node, Op, merge_or};

/// A compiled policy: the union of allow and deny rules of one or more documents.
///
/// Cheap to clone (one `Arc`); immutable; `Send + Sync`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    inner: Arc<Compiled>,
}

#[derive(Debug, Default)]
struct Compiled {
    /// One term per operator of every `allow` rule; the policy allows when any is true.
    allow: Box<[Node]>,
    /// Likewise for `deny`.
    deny: Box<[Node]>,
    /// Set for a fail-closed placeholder: everyone is denied.
    invalid: Option<String>,
    /// A policy that must allow too ([`Policy::all_of`]): a Gateway's baseline.
    also: Option<Policy>,
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

/// The outcome and the reasons that decided it (the deny reasons for a deny by rule,
/// the allow reasons otherwise). Copy, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reasons: Reasons,
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
    /// Parses YAML (or JSON, which is YAML) and compiles it.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        let doc: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| PolicyError {
            location: "$".to_owned(),
            message: format!("invalid YAML: {e}"),
        })?;
        Policy::from_value(&doc)
    }

    /// Compiles an already-parsed document (from a config file or a CRD).
    pub fn from_value(doc: &serde_json::Value) -> Result<Policy, PolicyError> {
        let rules = parse::compile_document(doc)?;
        Ok(Policy::from_terms(rules.allow, rules.deny))
    }

    /// The route shorthands as one `allow` rule with an `or` of their criteria, as
    /// Pomerium builds it. No shorthand set gives a policy with no rules (denies all).
    pub fn from_shorthands(s: &Shorthands) -> Policy {
        let mut any: Vec<Node> = Vec::new();
        let mut push = |c: Criterion| any.push(Node::Criterion(c));
        if s.allow_public_unauthenticated_access {
            push(Criterion::Accept);
        }
        if s.cors_allow_preflight {
            push(Criterion::CorsPreflight);
        }
        if s.allow_any_authenticated_user {
            push(Criterion::AuthenticatedUser);
        }
        for d in &s.allowed_domains {
            push(Criterion::Domain(StringMatcher::is(d)));
        }
        for g in &s.allowed_groups {
            push(Criterion::Groups(ListMatcher::has(g)));
        }
        for u in &s.allowed_users {
            push(Criterion::User(StringMatcher::is(u)));
            push(Criterion::Email(StringMatcher::is(u)));
        }
        if any.is_empty() {
            return Policy::default();
        }
        Policy::from_terms(vec![Node::Op(Op::Or, any.into_boxed_slice())], Vec::new())
    }

    /// A fail-closed placeholder for a policy that could not be loaded: denies everyone,
    /// and [`Policy::invalid_reason`] says why.
    pub fn deny_all(reason: impl Into<String>) -> Policy {
        Policy {
            inner: Arc::new(Compiled {
                invalid: Some(reason.into()),
                ..Compiled::default()
            }),
        }
    }

    /// The union of the rules of several policies. A `deny_all` part makes the whole
    /// union deny everyone, keeping the first such reason. No parts: denies everyone.
    pub fn union(parts: impl IntoIterator<Item = Policy>) -> Policy {
        let (mut allow, mut deny) = (Vec::new(), Vec::new());
        for part in parts {
            if part.inner.invalid.is_some() {
                return part;
            }
            if part.inner.also.is_some() {
                // A conjunction cannot be spread into a union; never widen it.
                return Policy::deny_all("a baseline policy cannot be part of a union");
            }
            allow.extend(part.inner.allow.iter().cloned());
            deny.extend(part.inner.deny.iter().cloned());
        }
        Policy::from_terms(allow, deny)
    }

    /// `self`, and `baseline` too: a request passes only when both allow it. A deny
    /// from either denies; otherwise a sign-in either asks for comes first. (A
    /// Gateway's IdentityPolicies are the baseline of each route's own.)
    pub fn all_of(self, baseline: Policy) -> Policy {
        if self.inner.invalid.is_some() {
            return self;
        }
        if baseline.inner.invalid.is_some() {
            return baseline;
        }
        let also = match &self.inner.also {
            // Nested baselines chain: every one of them must allow.
            Some(inner) => inner.clone().all_of(baseline),
            None => baseline,
        };
        Policy {
            inner: Arc::new(Compiled {
                allow: self.inner.allow.clone(),
                deny: self.inner.deny.clone(),
                invalid: None,
                also: Some(also),
            }),
        }
    }

    pub fn invalid_reason(&self) -> Option<&str> {
        self.inner.invalid.as_deref()
    }

    /// True when the policy has no rules at all (and so denies everyone).
    pub fn is_empty(&self) -> bool {
        self.inner.allow.is_empty() && self.inner.deny.is_empty() && self.inner.also.is_none()
    }

    /// Decides. Does not allocate.
    pub fn evaluate(&self, input: &Input<'_>) -> Decision {
        if self.inner.invalid.is_some() {
            return Decision {
                outcome: Outcome::Deny,
                reasons: Reasons::one(Reason::InvalidPolicy),
            };
        }
        let allow = evaluate_terms(&self.inner.allow, input);
        let deny = evaluate_terms(&self.inner.deny, input);
        let (outcome, reasons) = if allow.reasons.has(Reason::UserUnauthenticated)
            || deny.reasons.has(Reason::UserUnauthenticated)
        {
            (Outcome::SignIn, Reasons::one(Reason::UserUnauthenticated))
        } else if deny.value {
            (Outcome::Deny, deny.reasons)
        } else if allow.value {
            (Outcome::Allow, allow.reasons)
        } else {
            (Outcome::Deny, allow.reasons)
        };
        let own = Decision { outcome, reasons };
        match &self.inner.also {
            None => own,
            Some(also) => {
                let other = also.evaluate(input);
                match (own.outcome, other.outcome) {
                    (Outcome::Deny, _) => own,
                    (_, Outcome::Deny) => other,
                    (Outcome::SignIn, _) => own,
                    (_, Outcome::SignIn) => other,
                    (Outcome::Allow, Outcome::Allow) => own,
                }
            }
        }
    }

    fn from_terms(allow: Vec<Node>, deny: Vec<Node>) -> Policy {
        Policy {
            inner: Arc::new(Compiled {
                allow: allow.into_boxed_slice(),
                deny: deny.into_boxed_slice(),
                invalid: None,
                also: None,
            }),
        }
    }
}

/// Pomerium's top-level `allow`/`deny`: an `or` over every operator of every rule.
fn evaluate_terms(terms: &[Node], input: &Input<'_>) -> Verdict {
    merge_or(terms.iter().map(|t| t.evaluate(input)))
}
