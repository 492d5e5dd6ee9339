//! The data plane: TLS termination with SNI, HTTP/1.1 and HTTP/2, the request phases,
//! and upstream connections. The only room that knows hyper's connection plumbing.

pub mod client_addr;
pub mod conn;
pub mod gateway_sockets;
mod h1pool;
pub mod headers;
pub mod idle;
pub mod reach;
mod request;
pub mod server;
pub mod tls;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub use request::{ConnInfo, GatewayConn, LogFields};
pub use server::{Limits, ServeError, serve_redirect};

use crate::routes::LiveTable;
use crate::telemetry::Metrics;
use tls::CertStore;
use upstream::Upstreams;

pub use crate::reply::{Body, BoxError, empty, pages};

pub fn boxed_incoming(body: Incoming) -> Body {
    body.map_err(BoxError::from).boxed()
}

/// `body`, failing when no data flows for `limit` (zero: no limit).
pub fn with_idle_timeout(body: Body, limit: std::time::Duration) -> Body {
    if limit.is_zero() {
        body
    } else {
        idle::IdleBody::new(body, limit).boxed()
    }
}

/// Shared state of the data plane. Every field is safe to read from any connection.
pub struct Proxy {
    pub table: LiveTable,
    /// Sign-in; `None` when no identity provider is configured (routes that need a
    /// user then deny).
    pub auth: Option<Arc<crate::auth::gate::Auth>>,
    /// Okta directory sync: current groups and account status of signed-in users.
    pub directory: Option<Arc<crate::directory::Directory>>,
    pub certs: Arc<ArcSwap<CertStore>>,
    pub metrics: Arc<Metrics>,
    /// What the decision and access logs record.
    pub logs: LogFields,
    /// The header names `jwt_claims_headers` sets: no client may send them, whether or
    /// not sign-in is configured.
    pub claim_headers: Vec<http::HeaderName>,
    upstreams: Upstreams,
    clock: Instant,
}

impl Proxy {
    pub fn new(
        table: LiveTable,
        certs: Arc<ArcSwap<CertStore>>,
        metrics: Arc<Metrics>,
        auth: Option<Arc<crate::auth::gate::Auth>>,
        directory: Option<Arc<crate::directory::Directory>>,
    ) -> Proxy {
        Proxy {
            table,
            auth,
            directory,
            certs,
            metrics,
            logs: LogFields::default(),
            claim_headers: Vec::new(),
            upstreams: Upstreams::new(),
            clock: Instant::now(),
        }
    }

    /// Checks every upstream connection with `guard` (Portcullis's own listeners, and
    /// what tenant endpoints may not reach).
    pub fn with_upstream_guard(mut self, guard: reach::UpstreamGuard) -> Proxy {
        self.upstreams.set_guard(guard);
        self
    }

    /// Milliseconds on the monotonic clock that endpoint ejection uses.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }
}
