//! `portcullis dev`: a zero-setup local trial on loopback — the proxy, a demo echo
//! upstream and demo routes under `*.localhost`. Never for production: it serves a
//! self-signed certificate and demo routes only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::app::{self, Settings};
use crate::policy::{Policy, Shorthands};
use crate::proxy::Limits;
use crate::routes::{
    BackendSpec, Balance, EndpointSpec, HostMatch, Model, PathMatch, RouteOptions, RouteSpec,
    UpstreamScheme,
};

/// Largest request body the echo upstream reads back.
const ECHO_MAX_BODY: usize = 64 * 1024;

/// Where `portcullis dev` listens.
#[derive(Debug, Clone, Copy)]
pub struct DevOptions {
    pub https_port: u16,
    pub metrics_port: u16,
}

/// Runs the trial until interrupted.
pub async fn run(opts: DevOptions) -> anyhow::Result<()> {
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    tokio::spawn(serve_echo(echo, "demo-app"));
    let model = demo_model(echo_addr);
    let settings = Settings {
        address: SocketAddr::from(([127, 0, 0, 1], opts.https_port)),
        http_redirect_address: None,
        metrics_address: Some(SocketAddr::from(([127, 0, 0, 1], opts.metrics_port))),
        certificates: Vec::new(),
        limits: Limits {
            drain_timeout: Duration::from_secs(2),
            ..Limits::default()
        },
        redirect_https_port: None,
        auth: None,
    };
    let running = app::start(settings, &model).await?;
    let port = running.https_addr.port();
    let admin = running
        .admin_addr
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!(
        "\n  PORTCULLIS DEV MODE: for trying Portcullis on this machine, NEVER for production.\n  \
         (self-signed certificate: your browser will warn; demo routes only)\n\n  \
         Open:\n    \
         https://app.localhost:{port}/      public demo app (echoes your request)\n    \
         https://admin.localhost:{port}/    members of group `admin` only: denied until you sign in\n  \
         Admin: http://{admin}/debug/routes  (also /metrics, /healthz, /readyz)\n  \
         With curl: curl -k --resolve app.localhost:{port}:127.0.0.1 https://app.localhost:{port}/\n\n  \
         Ctrl-C stops.\n"
    );
    app::Running::stop_signal().await;
    tracing::info!("stopping");
    running.shutdown().await;
    Ok(())
}

/// The demo routes: a public app and an admins-only one.
pub fn demo_model(upstream: SocketAddr) -> Model {
    let backend = BackendSpec {
        endpoints: vec![EndpointSpec {
            scheme: UpstreamScheme::Http,
            host: upstream.ip().to_string(),
            port: upstream.port(),
        }],
        balance: Balance::RoundRobin,
    };
    let public = Policy::from_shorthands(&Shorthands {
        allow_public_unauthenticated_access: true,
        ..Shorthands::default()
    });
    let admins = Policy::from_shorthands(&Shorthands {
        allowed_groups: vec!["admin".into()],
        ..Shorthands::default()
    });
    let route = |id: &str, host: &str, policy: Policy| RouteSpec {
        id: id.into(),
        host: HostMatch::Exact(host.into()),
        port: None,
        path: PathMatch::Any,
        backend: backend.clone(),
        policy: Arc::new(policy),
        options: RouteOptions {
            allow_websockets: true,
            ..RouteOptions::default()
        },
    };
    Model {
        routes: vec![
            route("demo/app", "app.localhost", public),
            route("demo/admin", "admin.localhost", admins),
        ],
        ..Model::default()
    }
}

/// Serves an upstream that answers every request with a JSON echo of it, tagged with
/// `name`: method, path, headers and body. `/status/NNN` answers with that status.
pub async fn serve_echo(listener: TcpListener, name: &'static str) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(echo(name, req).await)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn echo(name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, ECHO_MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().into(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let status = parts
        .uri
        .path()
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let json = serde_json::json!({
        "upstream": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("", |p| p.as_str()),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let body = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    // A hop-by-hop header, which a proxy must not pass on (the tests check).
    h.insert("keep-alive", header::HeaderValue::from_static("timeout=60"));
    resp
}
