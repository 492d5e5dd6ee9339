//! Phase 1, the early filter: the canonical request. The host is the URI's authority
//! (HTTP/2 `:authority`, or an absolute-form target, RFC 9112 §3.2.2) or else the one
//! `Host` header, lower-cased, without a trailing dot, its port split off once; the
//! path is [`crate::routes::path::canonical`]. Framing no phase could serve is refused
//! here, before anything looks at the request.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};

use super::{Answered, RequestCtx, respond};
use crate::proxy::{Body, Proxy};
use crate::routes::authority;
use crate::routes::path::{self, PathError};

impl Proxy {
    pub(super) fn early<B>(&self, ctx: &mut RequestCtx, req: &Request<B>) -> Result<(), Answered> {
        let refuse = |ctx: &RequestCtx, status: StatusCode, detail: &str| {
            Box::new(respond::error(ctx, status, detail))
        };
        if req.method() == Method::CONNECT {
            let mut resp = refuse(
                ctx,
                StatusCode::METHOD_NOT_ALLOWED,
                "Portcullis does not tunnel CONNECT requests.",
            );
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
            return Err(resp);
        }
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Err(refuse(
                ctx,
                StatusCode::BAD_REQUEST,
                "The request has more than one Host header.",
            ));
        }
        let authority = match (req.uri().authority(), host_header) {
            (Some(a), Some(h)) if req.version() == Version::HTTP_2 => {
                // RFC 9113 §8.3.1: both present, they must say the same.
                if !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) {
                    return Err(refuse(
                        ctx,
                        StatusCode::BAD_REQUEST,
                        "The request's host header and :authority differ.",
                    ));
                }
                a.as_str()
            }
            // Absolute-form: the target's authority is the host; `Host` is ignored.
            (Some(a), _) => a.as_str(),
            (None, Some(h)) => h.to_str().unwrap_or(""),
            (None, None) => "",
        };
        let Some(canonical) = authority::canonical(authority, ctx.conn.default_port) else {
            return Err(refuse(
                ctx,
                StatusCode::BAD_REQUEST,
                "The request names no valid host.",
            ));
        };
        ctx.explicit_port = has_port(authority);
        ctx.port = canonical.port;
        ctx.host = canonical.host.into_owned();
        // A host the connection's certificate would not serve was sent here by mistake
        // (or on purpose): HTTP/2 coalescing is fine only where one certificate
        // covers both names (RFC 9110 §15.5.20).
        if let Some(sni) = &ctx.conn.sni
            && **sni != *ctx.host
        {
            let store = match ctx.conn.gateway.as_ref().and_then(|g| g.certs.as_ref()) {
                Some(certs) => certs.load(),
                None => self.certs.load(),
            };
            if !std::sync::Arc::ptr_eq(&store.pick(Some(sni)), &store.pick(Some(&ctx.host))) {
                return Err(refuse(
                    ctx,
                    StatusCode::MISDIRECTED_REQUEST,
                    "This connection's certificate is not the one for this host; connect \
                     again for it.",
                ));
            }
        }
        match path::canonical(req.uri().path()) {
            Ok(std::borrow::Cow::Borrowed(_)) => {}
            Ok(std::borrow::Cow::Owned(p)) => ctx.canonical_path = Some(p),
            // The route decides (phase 3) whether it takes such paths as written.
            Err(e) if e.lenient_keeps() => ctx.path_error = Some(e),
            Err(e) => return Err(Box::new(ambiguous(ctx, e))),
        }
        Ok(())
    }
}

/// The 400 for a path that cannot be made unambiguous.
pub(super) fn ambiguous(ctx: &RequestCtx, e: PathError) -> Response<Body> {
    tracing::debug!(host = %ctx.host, request_id = ctx.request_id.to_str().unwrap_or(""),
        error = %e, "ambiguous request path refused");
    respond::error(
        ctx,
        StatusCode::BAD_REQUEST,
        &format!(
            "The request path cannot be read unambiguously: {e}. Applications read such \
             paths differently, so Portcullis refuses them."
        ),
    )
}

/// Whether `authority` names a port after its host.
fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(']') {
        Some((_, after)) => after.starts_with(':'),
        None => authority.contains(':'),
    }
}
