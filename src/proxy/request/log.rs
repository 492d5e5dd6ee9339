//! Phase 7: metrics for every request, the access log, and the decision log — one
//! structured record per authorization (allow, deny and sign-in alike), under the
//! `portcullis::decision` target. Pomerium's `authorize_log_fields` and
//! `access_log_fields` choose the fields (docs/operations.md lists them).

use std::sync::Arc;

use http::{Response, StatusCode};

use super::RequestCtx;
use crate::auth::gate::Identified;
use crate::policy::{Decision, Identity, Outcome};
use crate::proxy::{Body, Proxy};

/// A field of the decision log (Pomerium's `authorize_log_fields` names, plus ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionField {
    RequestId,
    Method,
    Host,
    Path,
    Ip,
    User,
    Email,
    RouteId,
    /// Which policy decided: the route's policy sources.
    Policy,
    /// `allow`, `deny` or `sign-in`.
    Decision,
    /// The reasons, Pomerium's names (`groups-ok`, `user-unauthenticated`, …).
    Reasons,
    Duration,
    Status,
}

impl DecisionField {
    const ALL: [(&str, DecisionField); 13] = [
        ("request-id", DecisionField::RequestId),
        ("method", DecisionField::Method),
        ("host", DecisionField::Host),
        ("path", DecisionField::Path),
        ("ip", DecisionField::Ip),
        ("user", DecisionField::User),
        ("email", DecisionField::Email),
        ("route-id", DecisionField::RouteId),
        ("policy", DecisionField::Policy),
        ("decision", DecisionField::Decision),
        ("reasons", DecisionField::Reasons),
        ("duration", DecisionField::Duration),
        ("status", DecisionField::Status),
    ];

    /// The names accepted in `authorize_log_fields`.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|(n, _)| *n)
    }

    pub fn parse(name: &str) -> Option<DecisionField> {
        let name = name.trim().to_ascii_lowercase();
        // Pomerium's names for the same things.
        let name = match name.as_str() {
            "allow" | "deny" => "decision",
            "allow-why-true" | "allow-why-false" | "deny-why-true" | "deny-why-false" => "reasons",
            "envoy-route-id" => "route-id",
            other => other,
        };
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}

/// Which fields the decision log has; none turns it off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionFields(u16);

impl DecisionFields {
    /// What the decision log records unless `authorize_log_fields` says otherwise.
    pub fn defaults() -> DecisionFields {
        DecisionFields::of(DecisionField::ALL.iter().map(|(_, f)| *f))
    }

    pub fn of(fields: impl IntoIterator<Item = DecisionField>) -> DecisionFields {
        DecisionFields(fields.into_iter().fold(0, |acc, f| acc | 1 << f as u16))
    }

    pub fn has(&self, f: DecisionField) -> bool {
        self.0 & (1 << f as u16) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// The decision log's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionLog {
    pub fields: DecisionFields,
}

impl Default for DecisionLog {
    fn default() -> DecisionLog {
        DecisionLog {
            fields: DecisionFields::defaults(),
        }
    }
}

/// What an authorization decided, kept until the log phase.
pub(super) struct Decided {
    outcome: &'static str,
    reasons: String,
    identity: Option<Arc<Identity>>,
}

impl Decided {
    pub fn policy(decision: &Decision, identified: &Identified) -> Decided {
        Decided {
            outcome: match decision.outcome {
                Outcome::Allow => "allow",
                Outcome::Deny => "deny",
                Outcome::SignIn => "sign-in",
            },
            reasons: decision.reasons.to_string(),
            identity: identified.identity.clone(),
        }
    }

    pub fn directory(identified: &Identified, reason: &str) -> Decided {
        Decided {
            outcome: "deny",
            reasons: format!("directory: {reason}"),
            identity: identified.identity.clone(),
        }
    }
}

impl Proxy {
    /// Whether a log phase needs the request's path kept.
    pub(super) fn logs_paths(&self) -> bool {
        self.decision_log.fields.has(DecisionField::Path)
            || tracing::enabled!(target: "portcullis::access", tracing::Level::DEBUG)
    }

    pub(super) fn log(&self, ctx: &RequestCtx, resp: &Response<Body>) {
        let elapsed = ctx.started.elapsed();
        let route = ctx.route.as_ref().map(|r| &r.id);
        self.metrics
            .request(route, resp.status().as_u16(), elapsed.as_secs_f64());
        let path = ctx.log_path.as_deref().unwrap_or("");
        tracing::debug!(
            target: "portcullis::access",
            route = route.map(|r| &**r),
            method = %ctx.method, host = %ctx.host, path, status = resp.status().as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = ctx.request_id.to_str().unwrap_or(""),
        );
        if let Some(decided) = &ctx.decision {
            self.log_decision(ctx, decided, resp.status(), elapsed);
        }
    }

    fn log_decision(
        &self,
        ctx: &RequestCtx,
        d: &Decided,
        status: StatusCode,
        elapsed: std::time::Duration,
    ) {
        let f = &self.decision_log.fields;
        if f.is_empty() {
            return;
        }
        let on = |field| f.has(field);
        let id = d.identity.as_deref();
        let route = ctx.route.as_ref();
        tracing::info!(
            target: "portcullis::decision",
            request_id = on(DecisionField::RequestId).then(|| ctx.request_id.to_str().unwrap_or("")),
            method = on(DecisionField::Method).then(|| ctx.method.as_str()),
            host = on(DecisionField::Host).then_some(ctx.host.as_str()),
            path = on(DecisionField::Path).then(|| ctx.log_path.as_deref().unwrap_or("")),
            ip = on(DecisionField::Ip).then(|| tracing::field::display(ctx.conn.peer.ip())),
            user = on(DecisionField::User).then(|| id.map_or("", |i| i.user.as_str())),
            email = on(DecisionField::Email).then(|| id.map_or("", |i| i.email.as_str())),
            route = on(DecisionField::RouteId).then(|| route.map_or("", |r| &*r.id)),
            policy = on(DecisionField::Policy).then(|| route.map_or("", |r| &*r.options.policy_source)),
            decision = on(DecisionField::Decision).then_some(d.outcome),
            reasons = on(DecisionField::Reasons).then_some(d.reasons.as_str()),
            status = on(DecisionField::Status).then_some(status.as_u16()),
            duration_ms = on(DecisionField::Duration).then_some(elapsed.as_secs_f64() * 1000.0),
            "authorization",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_name() {
        for (name, want) in [
            ("request-id", Some(DecisionField::RequestId)),
            ("Email", Some(DecisionField::Email)),
            ("allow", Some(DecisionField::Decision)),
            ("deny-why-false", Some(DecisionField::Reasons)),
            ("envoy-route-id", Some(DecisionField::RouteId)),
            ("impersonate-email", None),
            ("", None),
        ] {
            assert_eq!(DecisionField::parse(name), want, "{name}");
        }
        let f = DecisionFields::of([DecisionField::User, DecisionField::Path]);
        assert!(f.has(DecisionField::User) && f.has(DecisionField::Path));
        assert!(!f.has(DecisionField::Email));
        assert!(DecisionFields::default().is_empty());
        assert!(
            DecisionField::names()
                .all(|n| DecisionFields::defaults().has(DecisionField::parse(n).unwrap()))
        );
    }
}
