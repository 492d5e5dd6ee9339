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

pub use crate::telemetry::fields::{AccessField, DecisionField, Fields};

/// Which fields the decision log and the access log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFields {
    /// `authorize_log_fields`: every field unless said otherwise; none turns it off.
    pub decision: Fields<DecisionField>,
    /// `access_log_fields`: none (the default) keeps the access log at debug level
    /// with its usual fields; any turns it on at info with those.
    pub access: Fields<AccessField>,
}

impl Default for LogFields {
    fn default() -> LogFields {
        LogFields {
            decision: Fields::all(),
            access: Fields::NONE,
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
        self.logs.decision.has(DecisionField::Path)
            || self.logs.access.has(AccessField::Path)
            || tracing::enabled!(target: "portcullis::access", tracing::Level::DEBUG)
    }

    pub(super) fn log(&self, ctx: &RequestCtx, resp: &Response<Body>) {
        let elapsed = ctx.started.elapsed();
        let route = ctx.route.as_ref().map(|r| &r.id);
        self.metrics
            .request(route, resp.status().as_u16(), elapsed.as_secs_f64());
        let path = ctx.log_path.as_deref().unwrap_or("");
        let a = &self.logs.access;
        if a.is_empty() {
            tracing::debug!(
                target: "portcullis::access",
                route = route.map(|r| &**r),
                method = %ctx.method, host = %ctx.host, path, status = resp.status().as_u16(),
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                request_id = ctx.request_id.to_str().unwrap_or(""),
            );
        } else {
            let on = |f| a.has(f);
            let extra = ctx.access.as_ref();
            let text = |get: fn(&super::AccessExtra) -> &str| extra.map_or("", get);
            tracing::info!(
                target: "portcullis::access",
                authority = on(AccessField::Authority).then_some(ctx.host.as_str()),
                duration_ms = on(AccessField::Duration).then_some(elapsed.as_secs_f64() * 1000.0),
                forwarded_for = on(AccessField::ForwardedFor).then(|| text(|e| &e.forwarded_for)),
                ip = on(AccessField::Ip).then(|| tracing::field::display(ctx.client)),
                method = on(AccessField::Method).then(|| ctx.method.as_str()),
                path = on(AccessField::Path).then_some(path),
                query = on(AccessField::Query).then(|| text(|e| &e.query)),
                referer = on(AccessField::Referer).then(|| text(|e| &e.referer)),
                request_id = on(AccessField::RequestId).then(|| ctx.request_id.to_str().unwrap_or("")),
                response_code = on(AccessField::ResponseCode).then_some(resp.status().as_u16()),
                route = on(AccessField::RouteId).then(|| route.map_or("", |r| &**r)),
                user_agent = on(AccessField::UserAgent).then(|| text(|e| &e.user_agent)),
                "request",
            );
        }
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
        let f = &self.logs.decision;
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
            ip = on(DecisionField::Ip).then(|| tracing::field::display(ctx.client)),
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
