//! Phase 4: who is asking, and what the route's policy says. One phase, one decision:
//! the directory's verdict (unknown, not yet synced, or not ACTIVE) is part of it — such
//! a user stays identified, a route that would let anyone in lets them in as anyone,
//! and every other route answers 403 with the reason (never a sign-in loop).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};

use super::{Answered, RequestCtx, log, respond};
use crate::auth::endpoints::{append_cookies, is_navigation};
use crate::auth::gate::Identified;
use crate::policy::{self, Identity, Outcome};
use crate::proxy::{Body, Proxy};
use crate::routes::Route;

/// What the upstream phases need from authorization.
pub(super) struct Authorized {
    /// The identity sent upstream (`None`: anonymous).
    pub identity: Option<Arc<Identity>>,
    /// `Set-Cookie` values for the response (a cleared credential).
    pub set_cookies: Vec<http::HeaderValue>,
}

impl Proxy {
    pub(super) async fn authorize<B>(
        &self,
        ctx: &mut RequestCtx,
        req: &Request<B>,
        route: &Arc<Route>,
    ) -> Result<Authorized, Answered> {
        let mut identified = match &self.auth {
            Some(auth) => {
                auth.identify(
                    req.headers(),
                    &ctx.host,
                    ctx.port,
                    route.options.bearer_format,
                    ctx.now.as_second(),
                )
                .await
            }
            None => Identified::default(),
        };
        let with_cookies = |mut resp: Response<Body>, identified: Identified| {
            append_cookies(resp.headers_mut(), identified.set_cookies);
            Box::new(resp)
        };
        if identified.store_error.is_some() {
            let resp = respond::error(
                ctx,
                StatusCode::SERVICE_UNAVAILABLE,
                "Sessions cannot be read right now. Try again shortly.",
            );
            return Err(Box::new(resp));
        }
        let target = || req.uri().path_and_query().map_or("/", |p| p.as_str());
        // A credential due for renewal: browsers go through the authenticate host for a
        // fresh one (the cookie store's route credentials expire with the tokens).
        if let Some(auth) = &self.auth
            && identified.renew
            && is_navigation(req.method(), req.headers())
        {
            let resp = auth.sign_in_response(
                req.headers(),
                &ctx.host,
                ctx.port,
                target(),
                &ctx.request_id,
            );
            return Err(with_cookies(resp, identified));
        }
        // With directory sync, groups and account status come from the directory.
        let mut directory_denial = None;
        if let (Some(directory), Some(identity)) = (&self.directory, identified.identity.as_mut()) {
            directory_denial = directory.apply(Arc::make_mut(identity)).deny_reason();
        }
        let (mut decision, anonymous) = {
            let request = policy::Request {
                method: req.method().as_str(),
                path: ctx.path(req),
                host: &ctx.host,
                source_ip: Some(ctx.client),
                cors_preflight: is_cors_preflight(req),
            };
            let evaluate = |identity: Option<&Identity>| {
                route.policy.evaluate(&policy::Input {
                    identity,
                    request,
                    now: ctx.now,
                })
            };
            let decision = evaluate(identified.identity.as_deref());
            // A user the directory refuses counts as anyone.
            let anonymous = directory_denial.is_some().then(|| evaluate(None));
            (decision, anonymous)
        };
        if let (Some(reason), Some(anonymous)) = (&directory_denial, anonymous) {
            if anonymous.outcome == Outcome::Allow {
                decision = anonymous;
                identified.identity = None;
            } else {
                if self.logs_decisions() {
                    ctx.decision = Some(log::Decided::directory(&identified, reason));
                }
                tracing::info!(route = %route.id, %reason, "request denied by the directory");
                let resp = respond::error(ctx, StatusCode::FORBIDDEN, reason);
                return Err(with_cookies(resp, identified));
            }
        }
        if self.logs_decisions() {
            ctx.decision = Some(log::Decided::policy(&decision, &identified));
        }
        match (decision.outcome, &self.auth) {
            (Outcome::Allow, _) => Ok(Authorized {
                identity: identified.identity,
                set_cookies: identified.set_cookies,
            }),
            // Sign-in sets Secure cookies: a Gateway's plain-HTTP listener cannot.
            (Outcome::SignIn, Some(_))
                if ctx.conn.gateway.as_ref().is_some_and(|g| g.certs.is_none()) =>
            {
                let resp = respond::error(
                    ctx,
                    StatusCode::FORBIDDEN,
                    "This route needs a signed-in user, and sign-in works over HTTPS only;                      use the Gateway's HTTPS listener for this host.",
                );
                Err(with_cookies(resp, identified))
            }
            (Outcome::SignIn, Some(auth)) => {
                let resp = auth.sign_in_response(
                    req.headers(),
                    &ctx.host,
                    ctx.port,
                    target(),
                    &ctx.request_id,
                );
                Err(with_cookies(resp, identified))
            }
            (outcome, _) => {
                let detail = match (outcome, route.policy.invalid_reason()) {
                    (_, Some(_)) => {
                        "This route's policy could not be loaded, so it denies everyone."
                    }
                    (Outcome::SignIn, None) => {
                        "This route needs a signed-in user, and sign-in is not configured."
                    }
                    _ => "The route's policy does not allow this request.",
                };
                let resp = respond::error(ctx, StatusCode::FORBIDDEN, detail);
                Err(with_cookies(resp, identified))
            }
        }
    }
}

fn is_cors_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_needs_origin_and_method() {
        let req = Request::builder()
            .method(Method::OPTIONS)
            .header("origin", "https://a.example")
            .header("access-control-request-method", "POST")
            .body(())
            .unwrap();
        assert!(is_cors_preflight(&req));
        let req = Request::builder().method(Method::OPTIONS).body(()).unwrap();
        assert!(!is_cors_preflight(&req));
    }
}
