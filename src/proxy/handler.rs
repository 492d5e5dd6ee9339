//! One request, in phases: early filter (request ID, host) → route lookup →
//! authorization → upstream request → response filter → logging and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::headers::{self, X_REQUEST_ID};
use super::pages::{ErrorPage, wants_json};
use super::{Body, Proxy};
use crate::auth::endpoints::Ctx as EndpointCtx;
use crate::auth::gate::Identified;
use crate::policy::{self, Outcome};
use crate::routes::{Endpoint, Route, UpstreamHost, UpstreamScheme};
use crate::telemetry::error_chain;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The port assumed when the client's `Host` names none.
    pub default_port: u16,
    /// The connection's client: the source in the load balancer's PROXY header with
    /// `use_proxy_protocol` (when it names one), else the peer's address; IPv4-mapped
    /// IPv6 addresses as IPv4. A request's client is [`ConnInfo::client_ip`].
    pub client: std::net::IpAddr,
    /// `xff_num_trusted_hops`: how many `X-Forwarded-For` entries, from the right,
    /// were written by trusted proxies (see `client_addr::client_ip`).
    pub xff_trusted_hops: u32,
}

/// Why the upstream exchange failed.
enum UpstreamError {
    NoEndpoints,
    Connect(String),
    Timeout,
    Other(String),
}

impl Proxy {
    /// Serves one request from the current routing table, then logs and counts it.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let request_id = headers::request_id(req.headers());
        let method = req.method().clone();
        // The path is only for the access log (debug level).
        let path = tracing::enabled!(target: "portcullis::access", tracing::Level::DEBUG)
            .then(|| req.uri().path().to_owned());
        let host = request_host(&req, conn.default_port);
        let (resp, route) = match &host {
            Some((host, port)) => self.route(req, host, *port, conn, &request_id).await,
            None => {
                let resp = self.error(
                    &req,
                    &request_id,
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "The request names no host.",
                    None,
                );
                (resp, None)
            }
        };
        let host = host.as_ref().map_or("", |(h, _)| h.as_str());
        self.record(
            route.as_ref(),
            &method,
            host,
            path.as_deref().unwrap_or(""),
            resp.status(),
            started,
            &request_id,
        );
        resp
    }

    /// The phases after the early filter: Portcullis's own endpoints, route lookup,
    /// identification, authorization, then the upstream.
    async fn route(
        &self,
        req: Request<Incoming>,
        host: &str,
        port: u16,
        conn: ConnInfo,
        request_id: &HeaderValue,
    ) -> (Response<Body>, Option<Arc<Route>>) {
        let snapshot = self.table.load_full();
        let now = jiff::Timestamp::now();
        if let Some(auth) = &self.auth
            && auth.is_endpoint(host, port, req.uri().path())
        {
            let ctx = EndpointCtx {
                host,
                port,
                table: &snapshot.table,
                request_id,
                now: now.as_second(),
                directory: self.directory.as_deref(),
            };
            return (Box::pin(auth.endpoint(req, &ctx)).await, None);
        }
        let Some(found) = snapshot.table.lookup(host, port, req.uri().path()) else {
            let resp = self.error(
                &req,
                request_id,
                StatusCode::NOT_FOUND,
                "Not found",
                "No route matches this host and path.",
                None,
            );
            return (resp, None);
        };
        let route = found.route.clone();
        let rewritten = found.rewritten_path(req.uri().path());

        // Identification: a session cookie or bearer token, refreshed when due.
        let mut identified = match &self.auth {
            Some(auth) => {
                auth.identify(
                    req.headers(),
                    host,
                    port,
                    route.options.bearer_format,
                    now.as_second(),
                )
                .await
            }
            None => Identified::default(),
        };
        // A credential due for renewal: browsers go through the authenticate host for a
        // fresh one (the cookie store's route credentials expire with the tokens).
        if let Some(auth) = &self.auth
            && identified.renew
            && crate::auth::endpoints::is_navigation(req.method(), req.headers())
        {
            let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let resp = auth.sign_in_response(req.headers(), host, port, target, request_id);
            return (resp, Some(route));
        }
        // With directory sync, groups and account status come from the directory.
        if let (Some(directory), Some(identity)) = (&self.directory, identified.identity.as_mut())
            && let Some(reason) = directory.apply(Arc::make_mut(identity)).deny_reason()
        {
            tracing::info!(route = %route.id, user = %identity.user, %reason, "request denied");
            let mut resp = self.error(
                &req,
                request_id,
                StatusCode::FORBIDDEN,
                "Forbidden",
                &reason,
                Some(&route.id),
            );
            crate::auth::endpoints::append_cookies(resp.headers_mut(), identified.set_cookies);
            return (resp, Some(route));
        }
        if identified.store_error.is_some() {
            let resp = self.error(
                &req,
                request_id,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                "Sessions cannot be read right now. Try again shortly.",
                Some(&route.id),
            );
            return (resp, Some(route));
        }
        // Authorization.
        let decision = route.policy.evaluate(&policy::Input {
            identity: identified.identity.as_deref(),
            request: policy::Request {
                method: req.method().as_str(),
                path: req.uri().path(),
                host,
                source_ip: Some(conn.client_ip(req.headers())),
                cors_preflight: is_cors_preflight(&req),
            },
            now,
        });
        let mut resp = match (decision.outcome, &self.auth) {
            (Outcome::Allow, _) => {
                match self
                    .forward(
                        req,
                        &route,
                        rewritten,
                        host,
                        conn,
                        request_id,
                        &identified,
                        now,
                    )
                    .await
                {
                    Ok(mut resp) => {
                        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
                        headers::strip_hop_by_hop(resp.headers_mut(), switching);
                        if let Some(auth) = &self.auth {
                            let dropped =
                                headers::drop_set_cookies(resp.headers_mut(), auth.cookie_base());
                            if dropped > 0 {
                                self.metrics.upstream_cookies_dropped(dropped);
                                tracing::warn!(route = %route.id, dropped,
                                    "the upstream tried to set Portcullis cookies; dropped");
                            }
                        }
                        for (name, value) in &route.options.set_response_headers {
                            resp.headers_mut().insert(name.clone(), value.clone());
                        }
                        resp
                    }
                    Err(e) => self.upstream_error(&route, request_id, e),
                }
            }
            (Outcome::SignIn, Some(auth)) => {
                let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
                auth.sign_in_response(req.headers(), host, port, target, request_id)
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
                tracing::info!(route = %route.id, request_id = request_id.to_str().unwrap_or(""),
                    outcome = %decision.outcome, reasons = %decision.reasons,
                    user = identified.identity.as_ref().map_or("", |i| i.user.as_str()),
                    "request denied");
                self.error(
                    &req,
                    request_id,
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    detail,
                    Some(&route.id),
                )
            }
        };
        crate::auth::endpoints::append_cookies(resp.headers_mut(), identified.set_cookies);
        (resp, Some(route))
    }

    /// Sends the request to one of the route's endpoints. A request without a body is
    /// retried once on another endpoint when the first could not be connected to.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        req: Request<Incoming>,
        route: &Arc<Route>,
        rewritten: Option<String>,
        host: &str,
        conn: ConnInfo,
        request_id: &HeaderValue,
        identified: &Identified,
        now: jiff::Timestamp,
    ) -> Result<Response<Body>, UpstreamError> {
        let (mut parts, body) = req.into_parts();
        let upgrade = headers::is_upgrade_request(&parts.headers) && route.options.allow_websockets;
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::strip_identity_headers(&mut parts.headers);
        if let Some(auth) = &self.auth {
            auth.decorate_upstream(
                &mut parts.headers,
                identified.identity.as_deref(),
                host,
                route.options.pass_identity_headers,
                now,
            );
        }
        let client_host = original_host(&parts).unwrap_or_else(|| HeaderValue::from_static(""));
        // Appended as Envoy does: the connection's client (PROXY source or peer); the
        // trusted client among the entries is what `source_ip` saw.
        headers::set_forwarded(&mut parts.headers, conn.client, host);
        parts.headers.insert(X_REQUEST_ID, request_id.clone());
        for name in &route.options.remove_request_headers {
            parts.headers.remove(name);
        }
        for (name, value) in &route.options.set_request_headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        let path_and_query = upstream_path(&parts.uri, rewritten.as_deref());
        parts.version = http::Version::HTTP_11;

        let body_empty = hyper::body::Body::is_end_stream(&body);
        let may_retry = body_empty && !upgrade && route.backend.endpoints.len() > 1;
        // The HTTP/1.1 pool hands an unsent request back; only the general clients
        // need a copy kept in case the first endpoint cannot be reached.
        let all_plain = route
            .backend
            .endpoints
            .iter()
            .all(|e| e.spec.scheme == UpstreamScheme::Http);
        let retry_head = (may_retry && !all_plain).then(|| parts.clone_head());
        let mut body = Some(body);
        let mut head = Some(parts);
        for attempt in 0..2 {
            let now_ms = self.now_ms();
            let endpoint = route
                .backend
                .pick(now_ms)
                .ok_or(UpstreamError::NoEndpoints)?;
            let mut parts = match (attempt, head.take(), &retry_head) {
                (_, Some(p), _) => p,
                (_, None, Some(h)) => h.clone_head(),
                (_, None, None) => break,
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
                &client_host,
            );
            let body = match body.take() {
                Some(b) if !body_empty => {
                    super::with_idle_timeout(b.boxed_body(), route.options.idle_timeout)
                }
                _ => super::empty(),
            };
            let _inflight = endpoint.start();
            let req = Request::from_parts(parts, body);
            let idle = route.options.idle_timeout;
            let result = if upgrade {
                let clients = self.upstreams.clients(&route.options.tls);
                Box::pin(self.upgrade(req, endpoint, &clients, route)).await
            } else if plain {
                let send = super::h1pool::send(&endpoint.authority, req);
                match with_timeout(route.options.timeout, send).await {
                    Ok(Ok(resp)) => Ok(resp.map(|b| super::with_idle_timeout(b, idle))),
                    Ok(Err(failed)) => {
                        head = failed.unsent.map(|r| r.into_parts().0);
                        match failed.error {
                            e @ super::h1pool::Error::Connect { .. } => {
                                Err(UpstreamError::Connect(error_chain(&e)))
                            }
                            e => Err(UpstreamError::Other(error_chain(&e))),
                        }
                    }
                    Err(_) => Err(UpstreamError::Timeout),
                }
            } else {
                // HTTPS and h2c: this worker's general clients for the route's TLS.
                let clients = self.upstreams.clients(&route.options.tls);
                let send = clients.for_scheme(endpoint.spec.scheme).request(req);
                match with_timeout(route.options.timeout, send).await {
                    Ok(Ok(resp)) => {
                        Ok(resp.map(|b| super::with_idle_timeout(super::boxed_incoming(b), idle)))
                    }
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

    /// Forwards an upgrade request on a fresh connection and, when the upstream
    /// switches protocols, splices the two upgraded connections together.
    async fn upgrade(
        &self,
        mut req: Request<Body>,
        endpoint: &Endpoint,
        clients: &super::upstream::Clients,
        route: &Arc<Route>,
    ) -> Result<Response<Body>, UpstreamError> {
        let client_side = req
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| UpstreamError::Other("the client connection cannot upgrade".into()))?;
        let connect = clients.connect_for_upgrade(req.uri().clone());
        let io = match with_timeout(super::upstream::CONNECT_TIMEOUT, connect).await {
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
            let route_id = route.id.clone();
            let metrics = self.metrics.clone();
            let span = tracing::debug_span!("upgrade", route = %route_id);
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
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
                    match tokio::time::timeout(idle_or_forever(idle), copy).await {
                        Ok(Ok((up, down))) => {
                            tracing::debug!(up, down, "upgraded connection closed")
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "upgraded connection failed"),
                        Err(_) => tracing::debug!("upgraded connection reached its time limit"),
                    }
                }
                .instrument(span),
            );
        }
        endpoint.report(true, self.now_ms());
        Ok(resp.map(super::boxed_incoming))
    }

    fn upstream_error(
        &self,
        route: &Route,
        request_id: &HeaderValue,
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
        };
        self.metrics.upstream_error(kind);
        let cause = match &e {
            UpstreamError::Connect(c) | UpstreamError::Other(c) => c.as_str(),
            _ => "",
        };
        tracing::warn!(route = %route.id, request_id = request_id.to_str().unwrap_or(""), kind, cause,
            "upstream failed");
        ErrorPage {
            status,
            title: status.canonical_reason().unwrap_or("Error"),
            detail,
            route: Some(&route.id),
            request_id,
        }
        .render(false)
    }

    fn error(
        &self,
        req: &Request<Incoming>,
        request_id: &HeaderValue,
        status: StatusCode,
        title: &str,
        detail: &str,
        route: Option<&str>,
    ) -> Response<Body> {
        ErrorPage {
            status,
            title,
            detail,
            route,
            request_id,
        }
        .render(wants_json(req.headers()))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        route: Option<&Arc<Route>>,
        method: &Method,
        host: &str,
        path: &str,
        status: StatusCode,
        started: Instant,
        request_id: &HeaderValue,
    ) {
        let elapsed = started.elapsed();
        self.metrics
            .request(route.map(|r| &r.id), status.as_u16(), elapsed.as_secs_f64());
        tracing::debug!(
            target: "portcullis::access",
            route = route.map(|r| &*r.id),
            %method, host, path, status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = request_id.to_str().unwrap_or(""),
        );
    }
}

/// The host and port the client addressed, canonical: the URI authority (HTTP/2,
/// absolute-form) or the `Host` header.
fn request_host<B>(req: &Request<B>, default_port: u16) -> Option<(String, u16)> {
    let authority = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    let c = crate::routes::authority::canonical(authority, default_port)?;
    Some((c.host.into_owned(), c.port))
}

fn original_host(parts: &http::request::Parts) -> Option<HeaderValue> {
    parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
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

fn upstream_path(uri: &Uri, rewritten: Option<&str>) -> PathAndQuery {
    match (rewritten, uri.query()) {
        (None, _) => uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        (Some(p), None) => p.parse().unwrap_or_else(|_| PathAndQuery::from_static("/")),
        (Some(p), Some(q)) => format!("{p}?{q}")
            .parse()
            .unwrap_or_else(|_| PathAndQuery::from_static("/")),
    }
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

fn is_cors_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

async fn with_timeout<F: std::future::Future>(
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

trait CloneHead {
    fn clone_head(&self) -> http::request::Parts;
}

impl CloneHead for http::request::Parts {
    /// Copies method, URI, version and headers (not extensions).
    fn clone_head(&self) -> http::request::Parts {
        let mut req = Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req.into_parts().0
    }
}

trait BoxedBody {
    fn boxed_body(self) -> Body;
}

impl BoxedBody for Incoming {
    fn boxed_body(self) -> Body {
        super::boxed_incoming(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_survives_rewrites() {
        let uri: Uri = "/api/users?page=2".parse().unwrap();
        assert_eq!(upstream_path(&uri, None).as_str(), "/api/users?page=2");
        assert_eq!(
            upstream_path(&uri, Some("/v2/users")).as_str(),
            "/v2/users?page=2"
        );
    }

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
