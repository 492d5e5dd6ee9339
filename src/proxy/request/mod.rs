//! One request, in phases over one [`RequestCtx`] (pingora's model; docs/design.md):
//!
//! 1. [`early`]: the canonical request — request ID, host and port, path — and framing
//!    that is refused outright. Every later phase sees only this form.
//! 2. Portcullis's own endpoints (`/.portcullis/…`, the callback, the JWKS).
//! 3. [`lookup`]: the route.
//! 4. [`authorize`]: who is asking (session credential or bearer token) and the
//!    policy's decision, the directory's verdict included.
//! 5. [`forward`]: the upstream request filter (headers, host, path), then the
//!    upstream exchange (peer choice; a retry decided by the error's kind).
//! 6. [`respond`]: the response filter, and the one error renderer.
//! 7. [`log`]: metrics, the access log and the decision log.

mod acme;
mod authorize;
mod early;
mod forward;
mod gateway;
mod log;
mod lookup;
mod respond;

use std::sync::Arc;
use std::time::Instant;

use http::header::HeaderValue;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::{Body, Proxy};
use crate::routes::path::PathError;

pub use acme::may_be_acme;
pub use log::LogFields;

/// A phase's own answer, ending the request early (rare, so boxed: the common path's
/// `Result` stays small).
type Answered = Box<Response<Body>>;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The port assumed when the client's `Host` names none.
    pub default_port: u16,
    /// The connection's client: the source in the load balancer's PROXY header with
    /// `use_proxy_protocol` (when it names one), else the peer's address; IPv4-mapped
    /// IPv6 addresses as IPv4. A request's client is [`ConnInfo::client_ip`].
    pub client: std::net::IpAddr,
    /// `xff_num_trusted_hops`: how many `X-Forwarded-For` entries, from the right,
    /// were written by trusted proxies (see `client_addr::client_ip`).
    pub xff_trusted_hops: u32,
    /// The TLS server name the client sent (lower-case), if any: a request for a host
    /// another certificate would serve is misdirected (421).
    pub sni: Option<Arc<str>>,
    /// Set on a Gateway's socket: requests are looked up in that Gateway's rules.
    pub gateway: Option<GatewayConn>,
    /// The connection is TLS (`X-Forwarded-Proto: https`); plain HTTP on a Gateway's
    /// HTTP listener and for ACME challenges.
    pub tls: bool,
}

/// The Gateway socket a connection came in on.
#[derive(Debug, Clone)]
pub struct GatewayConn {
    /// The socket's local port: the key of its rules in the table.
    pub local_port: u16,
    /// The Gateway port the socket was bound for (`namespace/name:port`): a local port
    /// that has since gone to another Gateway answers nothing on this connection.
    pub id: Arc<str>,
    /// Its certificates, for HTTPS listeners (`None`: plain HTTP).
    pub certs: Option<Arc<arc_swap::ArcSwap<crate::proxy::tls::CertStore>>>,
}

/// One request as the phases see it: decided once, early, and only added to after.
struct RequestCtx {
    pub request_id: HeaderValue,
    pub started: Instant,
    pub now: jiff::Timestamp,
    pub conn: ConnInfo,
    /// This request's client: the connection's, or the trusted `X-Forwarded-For`
    /// entry with `xff_num_trusted_hops` (what `source_ip` and the logs see).
    pub client: std::net::IpAddr,
    pub method: Method,
    /// The client asked for JSON (errors answer in kind).
    pub wants_json: bool,
    /// Canonical host (lower-case, no trailing dot; empty until [`early`] found one).
    pub host: String,
    /// The port the request was addressed to.
    pub port: u16,
    /// The client's authority named its port (the upstream's `Host` keeps it).
    pub explicit_port: bool,
    /// The canonical path, when it differs from the request's own.
    canonical_path: Option<String>,
    /// Why the strict canonical form was refused, when a lenient route may still
    /// take the path (decided by [`lookup`]).
    path_error: Option<PathError>,
    /// The matched route's ID, for logs and metrics.
    pub route: Option<Arc<crate::routes::Route>>,
    /// The path the log phase records (kept only when a log wants it).
    pub log_path: Option<String>,
    /// What the authorization decided, for the decision log.
    pub decision: Option<log::Decided>,
    /// Request headers the access log records (kept only when it is on at info).
    pub access: Option<AccessExtra>,
}

/// What `access_log_fields` may ask for beyond the context.
struct AccessExtra {
    query: String,
    referer: String,
    user_agent: String,
    forwarded_for: String,
}

impl AccessExtra {
    fn of<B>(req: &Request<B>) -> AccessExtra {
        let header = |name: http::header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        AccessExtra {
            query: req.uri().query().unwrap_or("").to_owned(),
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
            forwarded_for: header(http::header::HeaderName::from_static("x-forwarded-for")),
        }
    }
}

impl RequestCtx {
    fn new(req: &Request<Incoming>, conn: ConnInfo) -> RequestCtx {
        let port = conn.default_port;
        let client = conn.client_ip(req.headers());
        RequestCtx {
            request_id: super::headers::request_id(req.headers()),
            started: Instant::now(),
            now: jiff::Timestamp::now(),
            conn,
            client,
            method: req.method().clone(),
            wants_json: super::pages::wants_json(req.headers()),
            host: String::new(),
            port,
            explicit_port: false,
            canonical_path: None,
            path_error: None,
            route: None,
            log_path: None,
            decision: None,
            access: None,
        }
    }

    /// The canonical path of `req` (this context's request).
    fn path<'a, B>(&'a self, req: &'a Request<B>) -> &'a str {
        self.canonical_path
            .as_deref()
            .unwrap_or_else(|| req.uri().path())
    }
}

impl Proxy {
    /// Serves one request from the current routing table, then logs and counts it.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let mut ctx = RequestCtx::new(&req, conn);
        if !self.logs.access.is_empty() {
            ctx.access = Some(AccessExtra::of(&req));
        }
        let resp = self.phases(&mut ctx, req).await;
        self.log(&ctx, &resp);
        resp
    }

    async fn phases(&self, ctx: &mut RequestCtx, req: Request<Incoming>) -> Response<Body> {
        if let Err(resp) = self.early(ctx, &req) {
            return *resp;
        }
        if self.logs_paths() {
            ctx.log_path = Some(ctx.path(&req).to_owned());
        }
        let snapshot = self.table.load_full();
        // Sign-in endpoints need Secure cookies: never on a Gateway's plain-HTTP socket.
        let plain_gateway = ctx.conn.gateway.as_ref().is_some_and(|g| g.certs.is_none());
        if let Some(auth) = &self.auth
            && ctx.path_error.is_none()
            && !plain_gateway
            && auth.is_endpoint(&ctx.host, ctx.port, ctx.path(&req))
        {
            return Box::pin(self.endpoint(auth, ctx, req, &snapshot.table)).await;
        }
        let found = match self.lookup(ctx, &req, &snapshot.table) {
            Ok(found) => found,
            Err(resp) => return *resp,
        };
        ctx.route = Some(found.route.clone());
        let authorized = match self.authorize(ctx, &req, &found.route).await {
            Ok(a) => a,
            Err(resp) => return *resp,
        };
        let route = found.route.clone();
        let backend = match self.gateway_step(ctx, &req, &route, found.matched_len) {
            Ok(backend) => backend,
            Err(mut resp) => {
                crate::auth::endpoints::append_cookies(resp.headers_mut(), authorized.set_cookies);
                return *resp;
            }
        };
        let mut resp = match self.forward(ctx, req, &found, &authorized, backend).await {
            Ok(resp) => self.response_filter(ctx, &route, resp),
            Err(e) => self.upstream_error(ctx, &route, e),
        };
        crate::auth::endpoints::append_cookies(resp.headers_mut(), authorized.set_cookies);
        resp
    }

    /// Portcullis's own endpoints, on the canonical host, port and path.
    async fn endpoint(
        &self,
        auth: &crate::auth::gate::Auth,
        ctx: &RequestCtx,
        req: Request<Incoming>,
        table: &crate::routes::RoutingTable,
    ) -> Response<Body> {
        let path = ctx.path(&req).to_owned();
        let ectx = crate::auth::endpoints::Ctx {
            host: &ctx.host,
            port: ctx.port,
            path: &path,
            table,
            request_id: &ctx.request_id,
            now: ctx.now.as_second(),
            directory: self.directory.as_deref(),
        };
        auth.endpoint(req, &ectx).await
    }
}
