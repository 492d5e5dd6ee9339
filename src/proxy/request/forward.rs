//! Phase 5: the upstream request filter (what the upstream sees: canonical path and
//! host, Portcullis's forwarding and identity headers and nothing a client forged), then
//! the exchange — peer choice, one retry on another endpoint for a bodyless request
//! that could not connect, WebSocket upgrades on a fresh connection.

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::RequestCtx;
use super::authorize::Authorized;
use super::lookup::Found;
use crate::proxy::headers::{self, X_REQUEST_ID};
use crate::proxy::{Body, Proxy};
use crate::routes::{Endpoint, Route, UpstreamHost, UpstreamScheme};
use crate::telemetry::error_chain;

/// `HTTP2-Settings` goes with any refused `h2c` upgrade.
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Where a request goes: its route (options, TLS) and the backend chosen for it (the
/// route's, or a Gateway API rule's by weight).
#[derive(Clone, Copy)]
struct Target<'a> {
    route: &'a Arc<Route>,
    backend: &'a crate::routes::Backend,
}

/// Why the upstream exchange failed.
pub(super) enum UpstreamError {
    NoEndpoints,
    Connect(String),
    Timeout,
    Other(String),
    /// The upstream switched protocols on a request that asked for no upgrade.
    UnaskedUpgrade,
}

impl Proxy {
    /// Sends the request to one of the route's endpoints. A request without a body is
    /// retried once on another endpoint when the first could not be connected to.
    pub(super) async fn forward(
        &self,
        ctx: &RequestCtx,
        req: Request<Incoming>,
        found: &Found,
        authorized: &Authorized,
        gateway: Option<super::gateway::Picked<'_>>,
    ) -> Result<Response<Body>, UpstreamError> {
        let route = &found.route;
        let path = ctx.path(&req);
        let rewritten = crate::routes::Match {
            route,
            matched_len: found.matched_len,
        }
        .rewritten_path(path);
        let path_and_query = upstream_path(path, rewritten.as_deref(), req.uri().query());
        let (mut parts, body) = req.into_parts();
        let asked_upgrade = headers::is_upgrade_request(&parts.headers);
        // Only WebSocket is tunnelled; any other `Upgrade` (h2c smuggling) becomes a
        // plain request.
        let upgrade = asked_upgrade
            && route.options.allow_websockets
            && headers::upgrade_is_websocket(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        parts.headers.remove(HTTP2_SETTINGS);
        headers::strip_identity_headers_and(&mut parts.headers, &self.claim_headers);
        if let Some(auth) = &self.auth {
            auth.decorate_upstream(
                &mut parts.headers,
                authorized.identity.as_deref(),
                &ctx.host,
                route.options.pass_identity_headers,
                ctx.now,
            );
        }
        let client_host = client_authority(ctx, &parts.headers);
        // X-Forwarded-For gets the connection's client appended, as Envoy does;
        // X-Real-IP is the request's client.
        headers::set_forwarded(&mut parts.headers, ctx.conn.client, &ctx.host, ctx.conn.tls);
        headers::set_forwarded_port_and_ip(&mut parts.headers, ctx.port, ctx.client);
        parts.headers.insert(X_REQUEST_ID, ctx.request_id.clone());
        for name in &route.options.remove_request_headers {
            parts.headers.remove(name);
        }
        for (name, value) in &route.options.set_request_headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        if let Some(picked) = &gateway {
            picked.filter_request(&mut parts.headers);
        }
        let backend = gateway.map_or(&route.backend, |p| p.backend);
        parts.version = http::Version::HTTP_11;
        let result = self
            .exchange(
                Target { route, backend },
                parts,
                body,
                path_and_query,
                &client_host,
                upgrade,
            )
            .await?;
        if result.status() == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
            return Err(UpstreamError::UnaskedUpgrade);
        }
        Ok(result)
    }

    async fn exchange(
        &self,
        Target { route, backend }: Target<'_>,
        parts: http::request::Parts,
        body: Incoming,
        path_and_query: PathAndQuery,
        client_host: &HeaderValue,
        upgrade: bool,
    ) -> Result<Response<Body>, UpstreamError> {
        let body_empty = hyper::body::Body::is_end_stream(&body);
        let may_retry = body_empty && !upgrade && backend.endpoints.len() > 1;
        // The HTTP/1.1 pool hands an unsent request back; only the general clients
        // need a copy kept in case the first endpoint cannot be reached.
        let all_plain = backend
            .endpoints
            .iter()
            .all(|e| e.spec.scheme == UpstreamScheme::Http);
        let retry_head = (may_retry && !all_plain).then(|| clone_head(&parts));
        let mut body = Some(body);
        let mut head = Some(parts);
        for attempt in 0..2 {
            let now_ms = self.now_ms();
            let endpoint = backend.pick(now_ms).ok_or(UpstreamError::NoEndpoints)?;
            let mut parts = match (head.take(), &retry_head) {
                (Some(p), _) => p,
                (None, Some(h)) => clone_head(h),
                (None, None) => break,
            };
            // Plain-HTTP endpoints go through this worker's own HTTP/1.1 pool.
            let plain = !upgrade && endpoint.spec.scheme == UpstreamScheme::Http;
            parts.uri = if plain {
                Uri::from(path_and_query.clone())
            } else {
                upstream_uri(endpoint, &path_and_query)
            };
            set_host(
                &mut parts,
                &route.options.upstream_host,
                endpoint,
                client_host,
            );
            let body = match body.take() {
                Some(b) if !body_empty => crate::proxy::with_idle_timeout(
                    crate::proxy::boxed_incoming(b),
                    route.options.idle_timeout,
                ),
                _ => crate::proxy::empty(),
            };
            let _inflight = endpoint.start();
            let req = Request::from_parts(parts, body);
            let idle = route.options.idle_timeout;
            let result = if upgrade {
                let clients = self
                    .upstreams
                    .clients(&route.options.tls, endpoint.spec.reach);
                Box::pin(self.upgrade(req, endpoint, &clients, route)).await
            } else if plain {
                let (reach, guard) = (endpoint.spec.reach, self.upstreams.guard());
                let send = crate::proxy::h1pool::send(&endpoint.authority, reach, guard, req);
                match with_timeout(route.options.timeout, send).await {
                    Ok(Ok(resp)) => Ok(resp.map(|b| crate::proxy::with_idle_timeout(b, idle))),
                    Ok(Err(failed)) => {
                        head = failed.unsent.map(|r| r.into_parts().0);
                        match failed.error {
                            e @ crate::proxy::h1pool::Error::Connect { .. } => {
                                Err(UpstreamError::Connect(error_chain(&e)))
                            }
                            e => Err(UpstreamError::Other(error_chain(&e))),
                        }
                    }
                    Err(_) => Err(UpstreamError::Timeout),
                }
            } else {
                // HTTPS and h2c: this worker's general clients for the route's TLS.
                let clients = self
                    .upstreams
                    .clients(&route.options.tls, endpoint.spec.reach);
                let send = clients.for_scheme(endpoint.spec.scheme).request(req);
                match with_timeout(route.options.timeout, send).await {
                    Ok(Ok(resp)) => Ok(resp.map(|b| {
                        crate::proxy::with_idle_timeout(crate::proxy::boxed_incoming(b), idle)
                    })),
                    Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(error_chain(&e))),
                    Ok(Err(e)) => Err(UpstreamError::Other(error_chain(&e))),
                    Err(_) => Err(UpstreamError::Timeout),
                }
            };
            match result {
                Ok(resp) => {
                    // The attempt's start time: exact enough for ejection windows,
                    // and one clock read fewer per request.
                    endpoint.report(true, now_ms);
                    return Ok(resp);
                }
                Err(UpstreamError::Connect(e)) if attempt == 0 && may_retry => {
                    endpoint.report(false, self.now_ms());
                    self.metrics.upstream_error("connect");
                    tracing::debug!(route = %route.id, endpoint = %endpoint.authority, error = %e,
                        "connect failed; retrying on another endpoint");
                }
                Err(e) => {
                    if !matches!(e, UpstreamError::Other(_)) {
                        endpoint.report(false, self.now_ms());
                    }
                    return Err(e);
                }
            }
        }
        Err(UpstreamError::Other("no endpoint answered".into()))
    }

    /// Forwards a WebSocket upgrade on a fresh connection and, when the upstream
    /// switches protocols, splices the two upgraded connections together.
    async fn upgrade(
        &self,
        mut req: Request<Body>,
        endpoint: &Endpoint,
        clients: &crate::proxy::upstream::Clients,
        route: &Arc<Route>,
    ) -> Result<Response<Body>, UpstreamError> {
        let client_side = req
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| UpstreamError::Other("the client connection cannot upgrade".into()))?;
        let connect = clients.connect_for_upgrade(req.uri().clone());
        let io = match with_timeout(crate::proxy::upstream::CONNECT_TIMEOUT, connect).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(UpstreamError::Connect(e.to_string())),
            Err(_) => return Err(UpstreamError::Timeout),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended with an error");
            }
        });
        // Origin-form on a direct connection.
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
        let mut resp = with_timeout(route.options.timeout, sender.send_request(req))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|e| UpstreamError::Other(e.to_string()))?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_side = hyper::upgrade::on(&mut resp);
            let idle = route.options.idle_timeout;
            let metrics = self.metrics.clone();
            let span = tracing::debug_span!("upgrade", route = %route.id);
            tokio::spawn(
                async move {
                    let (client, upstream) = match tokio::try_join!(client_side, upstream_side) {
                        Ok(pair) => pair,
                        Err(e) => {
                            metrics.upstream_error("upgrade");
                            tracing::debug!(error = %e, "upgrade did not complete");
                            return;
                        }
                    };
                    let (client, upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    // idle_timeout is for a quiet connection, not a long one.
                    match crate::proxy::idle::tunnel(client, upstream, idle).await {
                        Ok(crate::proxy::idle::TunnelEnd::Closed(up, down)) => {
                            tracing::debug!(up, down, "upgraded connection closed")
                        }
                        Ok(crate::proxy::idle::TunnelEnd::Idle) => {
                            tracing::debug!(?idle, "upgraded connection idle; closed")
                        }
                        Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
                    }
                }
                .instrument(span),
            );
        }
        endpoint.report(true, self.now_ms());
        Ok(resp.map(crate::proxy::boxed_incoming))
    }
}

/// The authority the client addressed, canonical: what the upstream's `Host` is unless
/// the route rewrites it (for an absolute-form target, the target's, RFC 9112 §3.2.2).
fn client_authority(ctx: &RequestCtx, headers: &http::HeaderMap) -> HeaderValue {
    authority_value(
        headers.get(header::HOST),
        &ctx.host,
        ctx.port,
        ctx.explicit_port,
    )
}

/// `host` (`[`…`]` for IPv6) with `:port` when the client named one. The client's own
/// `Host` value when it spells exactly that (the usual case: shared, not copied).
fn authority_value(
    client: Option<&HeaderValue>,
    host: &str,
    port: u16,
    explicit_port: bool,
) -> HeaderValue {
    if let Some(v) = client
        && spells_authority(v.as_bytes(), host, port, explicit_port)
    {
        return v.clone();
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let text = if explicit_port {
        format!("{host}:{port}")
    } else {
        host
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn spells_authority(value: &[u8], host: &str, port: u16, explicit_port: bool) -> bool {
    if host.contains(':') {
        return false; // IPv6: written in brackets
    }
    match value.strip_prefix(host.as_bytes()) {
        Some([]) => !explicit_port,
        Some([b':', digits @ ..]) => {
            explicit_port
                && !digits.is_empty()
                && digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || digits.len() == 1)
                && digits
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
                    == u32::from(port)
        }
        _ => false,
    }
}

fn set_host(
    parts: &mut http::request::Parts,
    mode: &UpstreamHost,
    endpoint: &Endpoint,
    client_host: &HeaderValue,
) {
    let value = match mode {
        UpstreamHost::Original => client_host.clone(),
        UpstreamHost::Endpoint => {
            let default = match endpoint.spec.scheme {
                UpstreamScheme::Https => 443,
                _ => 80,
            };
            let host = if endpoint.spec.port == default {
                endpoint.authority.host().to_owned()
            } else {
                endpoint.authority.as_str().to_owned()
            };
            match HeaderValue::from_str(&host) {
                Ok(v) => v,
                Err(_) => return,
            }
        }
        UpstreamHost::Rewrite(h) => match HeaderValue::from_str(h) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    parts.headers.insert(header::HOST, value);
}

/// The canonical path (after any rewrite) with the client's query.
fn upstream_path(path: &str, rewritten: Option<&str>, query: Option<&str>) -> PathAndQuery {
    let path = rewritten.unwrap_or(path);
    let parsed = match query {
        None => PathAndQuery::try_from(path),
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")),
    };
    parsed.unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

fn upstream_uri(endpoint: &Endpoint, path: &PathAndQuery) -> Uri {
    let scheme = match endpoint.spec.scheme {
        UpstreamScheme::Https => Scheme::HTTPS,
        UpstreamScheme::Http | UpstreamScheme::H2c => Scheme::HTTP,
    };
    Uri::builder()
        .scheme(scheme)
        .authority(endpoint.authority.clone())
        .path_and_query(path.clone())
        .build()
        .expect("scheme, authority and path are each valid")
}

pub(super) async fn with_timeout<F: std::future::Future>(
    limit: std::time::Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(idle_or_forever(limit), fut).await
}

/// Zero means no limit (as in Pomerium); a century stands in for forever.
fn idle_or_forever(limit: std::time::Duration) -> std::time::Duration {
    if limit.is_zero() {
        std::time::Duration::from_secs(100 * 365 * 24 * 3600)
    } else {
        limit
    }
}

/// Copies method, URI, version and headers (not extensions).
fn clone_head(parts: &http::request::Parts) -> http::request::Parts {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req.into_parts().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_survives_rewrites() {
        assert_eq!(
            upstream_path("/api/users", None, Some("page=2")).as_str(),
            "/api/users?page=2"
        );
        assert_eq!(
            upstream_path("/api/users", Some("/v2/users"), Some("page=2")).as_str(),
            "/v2/users?page=2"
        );
        assert_eq!(upstream_path("/a", None, None).as_str(), "/a");
    }

    #[test]
    fn the_clients_host_is_reused_only_when_it_is_the_canonical_authority() {
        let cases = [
            // (Host header, canonical host, port, explicit port, upstream Host)
            (
                "app.example.com",
                "app.example.com",
                443,
                false,
                "app.example.com",
            ),
            (
                "app.example.com:8443",
                "app.example.com",
                8443,
                true,
                "app.example.com:8443",
            ),
            (
                "APP.example.com",
                "app.example.com",
                443,
                false,
                "app.example.com",
            ),
            (
                "app.example.com.",
                "app.example.com",
                443,
                false,
                "app.example.com",
            ),
            (
                "app.example.com:08443",
                "app.example.com",
                8443,
                true,
                "app.example.com:8443",
            ),
            (
                "app.example.com:443",
                "app.example.com",
                443,
                true,
                "app.example.com:443",
            ),
            (
                "app.example.com:",
                "app.example.com",
                443,
                false,
                "app.example.com",
            ),
            (
                "other.example",
                "app.example.com",
                443,
                false,
                "app.example.com",
            ),
            (
                "app.example.com:8443",
                "app.example.com",
                9443,
                true,
                "app.example.com:9443",
            ),
            ("[::1]:8443", "::1", 8443, true, "[::1]:8443"),
            ("127.0.0.1:0", "127.0.0.1", 0, true, "127.0.0.1:0"),
        ];
        for (client, host, port, explicit, want) in cases {
            let client = HeaderValue::from_static(client);
            assert_eq!(
                authority_value(Some(&client), host, port, explicit),
                want,
                "{client:?}"
            );
            assert_eq!(
                authority_value(None, host, port, explicit),
                want,
                "{client:?}"
            );
        }
    }
}
