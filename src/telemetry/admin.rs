//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/debug/routes`. Plain HTTP
//! on its own address (keep it off the public network).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Metrics;

/// What the admin endpoints read.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// Set once the first full configuration is in the routing table.
    pub ready: Arc<AtomicBool>,
    /// With the Redis session store: true once it has answered (ready waits for it).
    pub session_store: Option<Arc<AtomicBool>>,
    /// Renders the live routing table (no secrets).
    pub debug_routes: Box<dyn Fn() -> serde_json::Value + Send + Sync>,
}

/// Serves the admin endpoints until `shutdown` flips to true, with the same header-read
/// timeout and drain as every listener ([`crate::server::serve_plain`]).
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().ok();
    tracing::info!(address = ?addr, "admin listener (metrics, health, debug) ready");
    let limits = crate::server::Limits {
        drain_timeout: std::time::Duration::from_secs(5),
        ..crate::server::Limits::default()
    };
    crate::server::serve_plain(
        listener,
        "admin",
        limits,
        move |req| {
            let state = state.clone();
            async move { answer(&state, &req) }
        },
        shutdown,
    )
    .await;
}

fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz"
            if state
                .session_store
                .as_ref()
                .is_some_and(|s| !s.load(Ordering::Acquire)) =>
        {
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: the session store has not answered yet\n".into(),
            )
        }
        "/readyz" if state.ready.load(Ordering::Acquire) => {
            reply(StatusCode::OK, "text/plain", "ready\n".into())
        }
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: waiting for the first full configuration\n".into(),
        ),
        "/debug/routes" => {
            let body = serde_json::to_string_pretty(&(state.debug_routes)())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            reply(StatusCode::OK, "application/json", body + "\n")
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics, /healthz, /readyz or /debug/routes\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Binds the admin address, with a message that names it when that fails.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::server::BindError> {
    crate::server::bind(addr, "metrics_address").await
}
