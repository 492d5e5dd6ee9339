//! Phase 6: the response filter (what the client gets from the upstream), and the one
//! renderer for every answer Portcullis gives itself — HTML for browsers, JSON for
//! clients that ask for it (`Accept: application/json`), whatever the status.

use std::sync::Arc;

use http::{Response, StatusCode, header};

use super::RequestCtx;
use super::forward::UpstreamError;
use crate::proxy::pages::ErrorPage;
use crate::proxy::{Body, Proxy, headers};
use crate::routes::Route;

impl Proxy {
    pub(super) fn response_filter(
        &self,
        ctx: &RequestCtx,
        route: &Arc<Route>,
        mut resp: Response<Body>,
    ) -> Response<Body> {
        // A body that came chunked is passed on without its length: a stale
        // `Content-Length` next to `Transfer-Encoding` would cut it (RFC 9112 §6.3).
        if resp.headers().contains_key(header::TRANSFER_ENCODING) {
            resp.headers_mut().remove(header::CONTENT_LENGTH);
        }
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        headers::strip_hop_by_hop(resp.headers_mut(), switching);
        // Framing headers never get here: the config reader, the Ingress index and
        // the HTTPRoute filters refuse them (routes::reserved::reserved_response_header).
        for (name, value) in &route.options.set_response_headers {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        if let Some(modifier) = super::gateway::response_headers(route) {
            modifier.apply(resp.headers_mut());
        }
        // Last, so that neither the upstream nor the route's own response headers (an
        // Ingress annotation, an HTTPRoute filter: a tenant's words) can set or clear
        // Portcullis's cookies, which other hosts' sessions may share.
        if let Some(auth) = &self.auth {
            let dropped = headers::drop_set_cookies(resp.headers_mut(), auth.cookie_base());
            if dropped > 0 {
                self.metrics.upstream_cookies_dropped(dropped);
                tracing::warn!(route = %route.id, dropped,
                    request_id = ctx.request_id.to_str().unwrap_or(""),
                    "the upstream or the route's response headers tried to set Portcullis cookies; dropped");
            }
        }
        resp
    }

    pub(super) fn upstream_error(
        &self,
        ctx: &RequestCtx,
        route: &Route,
        e: UpstreamError,
    ) -> Response<Body> {
        let (status, kind, detail) = match &e {
            UpstreamError::NoEndpoints => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no_endpoints",
                "The route has no upstream endpoints.",
            ),
            UpstreamError::Connect(_) => (
                StatusCode::BAD_GATEWAY,
                "connect",
                "The upstream could not be reached.",
            ),
            UpstreamError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "The upstream did not answer in time.",
            ),
            UpstreamError::Other(_) => (
                StatusCode::BAD_GATEWAY,
                "protocol",
                "The upstream connection failed.",
            ),
            UpstreamError::UnaskedUpgrade => (
                StatusCode::BAD_GATEWAY,
                "unasked_upgrade",
                "The upstream switched protocols on a request that asked for no upgrade.",
            ),
        };
        self.metrics.upstream_error(kind);
        let cause = match &e {
            UpstreamError::Connect(c) | UpstreamError::Other(c) => c.as_str(),
            _ => "",
        };
        tracing::warn!(route = %route.id, request_id = ctx.request_id.to_str().unwrap_or(""), kind, cause,
            "upstream failed");
        error(ctx, status, detail)
    }
}

/// Portcullis's own answer with `status`: the route and request ID named, in HTML or
/// JSON as the client asked.
pub(super) fn error(ctx: &RequestCtx, status: StatusCode, detail: &str) -> Response<Body> {
    ErrorPage {
        status,
        title: status.canonical_reason().unwrap_or("Error"),
        detail,
        route: ctx.route.as_ref().map(|r| &*r.id),
        request_id: &ctx.request_id,
    }
    .render(ctx.wants_json)
}
