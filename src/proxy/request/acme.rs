//! The one thing the plain-HTTP listener serves besides redirects: ACME HTTP-01
//! challenges (cert-manager's solver Ingresses), publicly, under the same host
//! ownership as every route. A request is served here only when its canonical path is
//! under `/.well-known/acme-challenge/` and the route it finds was written for exactly
//! such paths; anything else is redirected to HTTPS as before.

use http::{Request, Response};
use hyper::body::Incoming;

use super::authorize::Authorized;
use super::{ConnInfo, RequestCtx};
use crate::proxy::{Body, Proxy};
use crate::routes::PathMatch;

/// Where ACME HTTP-01 challenges live (RFC 8555 §8.3).
pub const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// Whether a request path (as received) may be an ACME challenge; the canonical path
/// decides ([`Proxy::serve_acme`]).
pub fn may_be_acme(path: &str) -> bool {
    path.starts_with("/.well-known/") || path.contains('%')
}

/// Whether a route's rule is an ACME challenge rule: its path itself under the prefix.
fn is_acme_rule(path: &PathMatch) -> bool {
    match path {
        PathMatch::Exact(p) | PathMatch::StrPrefix(p) | PathMatch::SegmentPrefix(p) => {
            p.starts_with(ACME_PREFIX) && p.len() > ACME_PREFIX.len()
        }
        PathMatch::Any | PathMatch::Regex(_) => false,
    }
}

impl Proxy {
    /// Serves an ACME challenge over plain HTTP, or hands the request back (`Err`) to
    /// be redirected.
    pub async fn serve_acme(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Result<Response<Body>, Request<Incoming>> {
        let mut ctx = RequestCtx::new(&req, conn);
        if self.early(&mut ctx, &req).is_err() || ctx.path_error.is_some() {
            return Err(req);
        }
        if !ctx.path(&req).starts_with(ACME_PREFIX) {
            return Err(req);
        }
        let snapshot = self.table.load_full();
        let found = match self.lookup(&mut ctx, &req, &snapshot.table) {
            Ok(f) if is_acme_rule(&f.route.path) => f,
            _ => return Err(req),
        };
        ctx.route = Some(found.route.clone());
        ctx.log_path = Some(ctx.path(&req).to_owned());
        let anonymous = Authorized {
            identity: None,
            set_cookies: Vec::new(),
        };
        let route = found.route.clone();
        let resp = match self.forward(&ctx, req, &found, &anonymous, None).await {
            Ok(resp) => self.response_filter(&ctx, &route, resp),
            Err(e) => self.upstream_error(&ctx, &route, e),
        };
        self.log(&ctx, &resp);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_rules() {
        for (path, acme) in [
            (
                PathMatch::Exact("/.well-known/acme-challenge/tok".into()),
                true,
            ),
            (
                PathMatch::SegmentPrefix("/.well-known/acme-challenge/tok".into()),
                true,
            ),
            (
                PathMatch::StrPrefix("/.well-known/acme-challenge/".into()),
                false,
            ),
            (PathMatch::SegmentPrefix("/.well-known/".into()), false),
            (PathMatch::SegmentPrefix("/".into()), false),
            (PathMatch::Any, false),
            (
                PathMatch::Regex("/.well-known/acme-challenge/.*".into()),
                false,
            ),
        ] {
            assert_eq!(is_acme_rule(&path), acme, "{path:?}");
        }
        assert!(may_be_acme("/.well-known/acme-challenge/x"));
        assert!(may_be_acme("/%2ewell-known/acme-challenge/x"));
        assert!(!may_be_acme("/app"));
    }
}
