//! Phase 3, route lookup on the canonical host, port and path. A path the strict form
//! refused for its encoded slashes or `;` parameters is looked up as written
//! ([`path::lenient`]) and taken only by a route with `path_normalization: lenient` —
//! and only when an upstream that decodes those forms ([`path::interpreted`]) would land
//! on the same route; otherwise two phases (or two routes) would read it differently.

use std::sync::Arc;

use http::{Request, StatusCode};

use super::{Answered, RequestCtx, early, respond};
use crate::proxy::Proxy;
use crate::routes::path;
use crate::routes::{Route, RoutingTable};

/// The route a request goes to, and how much of its path the rule matched.
pub(super) struct Found {
    pub route: Arc<Route>,
    pub matched_len: usize,
}

impl Proxy {
    pub(super) fn lookup<B>(
        &self,
        ctx: &mut RequestCtx,
        req: &Request<B>,
        table: &RoutingTable,
    ) -> Result<Found, Answered> {
        let not_found = |ctx: &RequestCtx| {
            Box::new(respond::error(
                ctx,
                StatusCode::NOT_FOUND,
                "No route matches this host and path.",
            ))
        };
        if let Some(gateway) = &ctx.conn.gateway {
            // Gateway API rules take the strict canonical path only.
            if let Some(e) = ctx.path_error {
                return Err(Box::new(early::ambiguous(ctx, e)));
            }
            let greq = crate::routes::gateway::GatewayRequest {
                host: &ctx.host,
                method: req.method(),
                path: ctx.path(req),
                query: req.uri().query(),
                headers: req.headers(),
            };
            let m = table
                .lookup_gateway(gateway.local_port, &gateway.id, &greq)
                .ok_or_else(|| not_found(ctx))?;
            return Ok(Found {
                route: m.route.clone(),
                matched_len: m.matched_len,
            });
        }
        let Some(strict_error) = ctx.path_error else {
            let m = table
                .lookup(&ctx.host, ctx.port, ctx.path(req))
                .ok_or_else(|| not_found(ctx))?;
            return Ok(Found {
                route: m.route.clone(),
                matched_len: m.matched_len,
            });
        };
        let lenient =
            path::lenient(req.uri().path()).map_err(|e| Box::new(early::ambiguous(ctx, e)))?;
        let m = table
            .lookup(&ctx.host, ctx.port, &lenient)
            .ok_or_else(|| not_found(ctx))?;
        let same_for_decoders = || {
            let read = path::interpreted(&lenient);
            table
                .lookup(&ctx.host, ctx.port, &read)
                .is_some_and(|other| Arc::ptr_eq(other.route, m.route))
        };
        if !m.route.options.lenient_paths || !same_for_decoders() {
            return Err(Box::new(early::ambiguous(ctx, strict_error)));
        }
        let found = Found {
            route: m.route.clone(),
            matched_len: m.matched_len,
        };
        ctx.canonical_path = Some(lenient.into_owned());
        ctx.path_error = None;
        if ctx.log_path.is_some() {
            ctx.log_path = ctx.canonical_path.clone();
        }
        Ok(found)
    }
}
