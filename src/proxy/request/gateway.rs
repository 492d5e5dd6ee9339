//! Between authorize and forward, for Gateway API rules: a RequestRedirect answers
//! here, a rule that could not be made usable answers 500, and a forwarding rule picks
//! its backend by weight (an invalid backendRef's share answers 500, as the spec says).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};

use super::{Answered, RequestCtx, respond};
use crate::proxy::{Proxy, empty};
use crate::routes::Backend;
use crate::routes::gateway::{
    CompiledAction, HeaderModifier, PickedBackend, RedirectTarget, redirect_location,
};
use crate::routes::{Route, gateway::Filters};

/// The backend a Gateway API rule picked, and the filters on the way there.
#[derive(Clone, Copy)]
pub(super) struct Picked<'r> {
    pub backend: &'r Arc<Backend>,
    filters: &'r Filters,
    backend_headers: &'r HeaderModifier,
}

impl Picked<'_> {
    /// The rule's RequestHeaderModifier, then the backendRef's.
    pub fn filter_request(&self, headers: &mut HeaderMap) {
        self.filters.request_headers.apply(headers);
        self.backend_headers.apply(headers);
    }
}

impl Proxy {
    /// `Ok(None)` for an Ingress route; `Ok(Some(_))` for a Gateway rule that forwards;
    /// `Err` with the answer for a redirect, an unusable rule or an invalid backend.
    pub(super) fn gateway_step<'r, B>(
        &self,
        ctx: &RequestCtx,
        req: &Request<B>,
        route: &'r Route,
        matched_len: usize,
    ) -> Result<Option<Picked<'r>>, Answered> {
        let Some(g) = route.gateway.as_deref() else {
            return Ok(None);
        };
        let server_error = |detail: &str| {
            Box::new(respond::error(
                ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                detail,
            ))
        };
        match &g.action {
            CompiledAction::Redirect {
                redirect,
                response_headers,
            } => {
                let target = RedirectTarget {
                    tls: g.tls,
                    host: &ctx.host,
                    listener_port: g.listener_port,
                    path: ctx.path(req),
                    matched_len,
                    query: req.uri().query(),
                };
                let location = redirect_location(redirect, &target);
                let mut resp = Response::new(empty());
                *resp.status_mut() =
                    StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::FOUND);
                match HeaderValue::from_str(&location) {
                    Ok(v) => {
                        resp.headers_mut().insert(header::LOCATION, v);
                    }
                    Err(_) => return Err(server_error("The redirect target is not a valid URL.")),
                }
                response_headers.apply(resp.headers_mut());
                Err(Box::new(resp))
            }
            CompiledAction::Fail { reason } => {
                tracing::warn!(route = %route.id, %reason, "rule cannot be served");
                Err(server_error("This route's rule cannot be served."))
            }
            CompiledAction::Forward { filters, .. } => match g.pick() {
                Some(PickedBackend::Backend {
                    backend,
                    request_headers,
                }) => Ok(Some(Picked {
                    backend,
                    filters,
                    backend_headers: request_headers,
                })),
                _ => Err(server_error(
                    "This route's backend is not valid (see the HTTPRoute's status).",
                )),
            },
        }
    }
}

/// The rule's ResponseHeaderModifier, for the response filter.
pub(super) fn response_headers(route: &Route) -> Option<&HeaderModifier> {
    route
        .gateway
        .as_deref()
        .and_then(|g| g.filters())
        .map(|f| &f.response_headers)
        .filter(|m| !m.is_empty())
}
