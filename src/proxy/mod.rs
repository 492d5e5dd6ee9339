//! The data plane: TLS termination with SNI, HTTP/1.1 and HTTP/2, the request phases,
//! and upstream connections. The only room that knows hyper's connection plumbing.

pub mod client_addr;
pub mod conn;
mod h1pool;
mod handler;
pub mod headers;
pub mod idle;
pub mod pages;
pub mod server;
pub mod tls;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

pub use handler::ConnInfo;
pub use server::{Limits, serve_https, serve_redirect};

use crate::routes::LiveTable;
use crate::telemetry::Metrics;
use tls::CertStore;
use upstream::Upstreams;

/// Errors of bodies in flight (upstream or client I/O, idle timeouts).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body Portcullis sends: upstream bodies passed through, or its own pages.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

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
            upstreams: Upstreams::new(),
            clock: Instant::now(),
        }
    }

    /// Milliseconds on the monotonic clock that endpoint ejection uses.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }
}
