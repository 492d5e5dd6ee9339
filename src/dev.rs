//! `portcullis dev`: a zero-setup local trial on loopback — the proxy, a development
//! OpenID provider with demo users, a demo echo upstream and demo routes under
//! `*.localhost`. Never for production: self-signed certificate, throwaway keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::app::{self, Settings};
use crate::auth::gate::{Auth, AuthSettings};
use crate::auth::provider::ProviderSettings;
use crate::auth::{CookieSecret, SigningKey};
use crate::devidp::{self, DevClient, DevIdpConfig, DevUser};
use crate::policy::{Policy, Shorthands};
use crate::routes::{
    BackendSpec, Balance, EndpointSpec, HostMatch, HostPort, Model, PathMatch, RouteOptions,
    RouteSpec, UpstreamScheme,
};
use crate::server::Limits;

/// Largest request body the echo upstream reads back.
const ECHO_MAX_BODY: usize = 64 * 1024;

/// Where `portcullis dev` listens.
#[derive(Debug, Clone, Copy)]
pub struct DevOptions {
    pub https_port: u16,
    pub metrics_port: u16,
    /// The development identity provider's port (0 = any free port).
    pub idp_port: u16,
}

/// Client ID `portcullis dev` registers with its own provider.
const DEV_CLIENT_ID: &str = "portcullis-dev";

/// Why the trial could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot start the demo app on 127.0.0.1")]
    DemoApp(#[source] std::io::Error),
    #[error("cannot listen on 127.0.0.1:{port} (free the port, or choose another with --port)")]
    Https {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot start the development identity provider (choose another --idp-port, or 0 \
         for any free one)"
    )]
    Idp(#[from] devidp::DevIdpError),
    #[error("the config file's defaults do not parse (a bug: please report it)")]
    Defaults(#[source] crate::config::ConfigError),
    #[error("cannot start sign-in with the development identity provider")]
    SignIn(#[from] crate::auth::gate::AuthStartError),
    #[error("cannot start the proxy")]
    Start(#[from] app::AppError),
}

/// Runs the trial until interrupted.
pub async fn run(opts: DevOptions) -> Result<(), DevError> {
    let echo = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DevError::DemoApp)?;
    let echo_addr = echo.local_addr().map_err(DevError::DemoApp)?;
    tokio::spawn(serve_echo(echo, "demo-app"));

    // The HTTPS port must be known before the provider registers the redirect URI.
    let https_error = |source| DevError::Https {
        port: opts.https_port,
        source,
    };
    let https = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], opts.https_port)))
        .map_err(https_error)?;
    let port = https.local_addr().map_err(https_error)?.port();
    drop(https);
    let authenticate_url = format!("https://authenticate.localhost:{port}");
    let client_secret = random_secret();
    let mut client = DevClient::new(
        DEV_CLIENT_ID,
        &client_secret,
        format!("{authenticate_url}/oauth2/callback"),
    );
    client
        .post_logout_redirect_uris
        .push(format!("{authenticate_url}/.portcullis/signed_out"));
    let users = DevUser::demo_users();
    let idp = devidp::start(DevIdpConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], opts.idp_port)),
        clients: vec![client],
        users: users.clone(),
        ..DevIdpConfig::default()
    })
    .await?;

    // Everything not specific to the trial takes the config file's defaults.
    let defaults = crate::config::Config::parse("", "(portcullis dev)", &|_| None)
        .map_err(DevError::Defaults)?;
    let auth = Auth::new(AuthSettings {
        authenticate_url: authenticate_url.clone(),
        provider: ProviderSettings {
            issuer: idp.issuer(),
            client_id: DEV_CLIENT_ID.into(),
            client_secret,
            scopes: defaults.idp.scopes.clone(),
            redirect_url: format!("{authenticate_url}/oauth2/callback"),
            ca_pem: None,
            access_token_audiences: defaults.bearer.audiences.clone(),
            access_token_clients: defaults.bearer.clients.clone(),
        },
        cookie_name: defaults.cookie.name.clone(),
        cookie_domain: None,
        cookie_expire: defaults.cookie.expire,
        cookie_same_site: defaults.cookie.same_site,
        // Sessions and assertion keys live as long as the trial.
        cookie_secret: CookieSecret::generate(),
        signing_key: SigningKey::generate(),
        session_store: None,
        jwt_claims_headers: defaults.jwt_claims_headers.clone(),
        allowed_return_domains: Vec::new(),
        bearer_format: defaults.bearer.format,
    })
    .await?;

    let mut model = demo_model(echo_addr);
    model.authenticate_host = Some(HostPort {
        host: "authenticate.localhost".into(),
        port: None,
    });
    let settings = Settings {
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        http_redirect_address: None,
        metrics_address: Some(SocketAddr::from(([127, 0, 0, 1], opts.metrics_port))),
        certificates: Vec::new(),
        limits: Limits {
            // A trial stops at once when asked.
            drain_timeout: Duration::from_secs(2),
            ..app::limits(&defaults.connections)
        },
        redirect_https_port: None,
        auth: Some(Arc::new(auth)),
        directory: None,
        ready_on_start: true,
        upstream_policy: Default::default(),
        gateway_ports: None,
        workers: 0,
        logs: crate::proxy::LogFields {
            decision: defaults.authorize_log_fields,
            access: defaults.access_log_fields,
        },
        claim_headers: Vec::new(),
    };
    let running = app::start(settings, &model).await?;
    let admin = running
        .admin_addr
        .map(|a| a.to_string())
        .unwrap_or_default();
    let people: String = users
        .iter()
        .map(|u| {
            let groups = if u.groups.is_empty() {
                "no groups".to_string()
            } else {
                u.groups.join(", ")
            };
            format!("    {:<20} {groups}\n", u.email)
        })
        .collect();
    println!(
        "\n  PORTCULLIS DEV MODE: for trying Portcullis on this machine, NEVER for production.\n  \
         (self-signed certificate: your browser will warn; a development identity provider\n  \
         with demo users; nothing is kept when you stop it)\n\n  \
         Open:\n    \
         https://app.localhost:{port}/       any signed-in user (the demo app echoes your request)\n    \
         https://admin.localhost:{port}/     members of group `admin` only\n    \
         https://public.localhost:{port}/    everyone, signed in or not\n    \
         https://app.localhost:{port}/.portcullis/   who you are signed in as\n\n  \
         Sign in as any demo user (no password):\n{people}\n  \
         Identity provider: {issuer}\n  \
         Admin: http://{admin}/debug/routes  (also /metrics, /healthz, /readyz)\n  \
         With curl: curl -k --resolve public.localhost:{port}:127.0.0.1 https://public.localhost:{port}/\n\n  \
         Ctrl-C stops.\n",
        issuer = idp.issuer(),
    );
    app::Running::stop_signal().await;
    tracing::info!("stopping");
    running.shutdown().await;
    idp.shutdown().await;
    Ok(())
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The demo routes: an app for any signed-in user, an admins-only one, a public one.
pub fn demo_model(upstream: SocketAddr) -> Model {
    let backend = BackendSpec {
        endpoints: vec![EndpointSpec {
            scheme: UpstreamScheme::Http,
            host: upstream.ip().to_string(),
            port: upstream.port(),
            reach: crate::routes::Reach::Operator,
        }],
        balance: Balance::RoundRobin,
    };
    let shorthand = |s: Shorthands| Policy::from_shorthands(&s);
    let route = |id: &str, host: &str, policy: Policy| RouteSpec {
        id: id.into(),
        host: HostMatch::Exact(host.into()),
        port: None,
        path: PathMatch::Any,
        backend: backend.clone(),
        policy: Arc::new(policy),
        options: RouteOptions {
            allow_websockets: true,
            pass_identity_headers: true,
            ..RouteOptions::default()
        },
    };
    Model {
        routes: vec![
            route(
                "demo/app",
                "app.localhost",
                shorthand(Shorthands {
                    allow_any_authenticated_user: true,
                    ..Shorthands::default()
                }),
            ),
            route(
                "demo/admin",
                "admin.localhost",
                shorthand(Shorthands {
                    allowed_groups: vec!["admin".into()],
                    ..Shorthands::default()
                }),
            ),
            route(
                "demo/public",
                "public.localhost",
                shorthand(Shorthands {
                    allow_public_unauthenticated_access: true,
                    ..Shorthands::default()
                }),
            ),
        ],
        ..Model::default()
    }
}

/// Serves an upstream that answers every request with a JSON echo of it, tagged with
/// `name`: method, path, headers and body. `/status/NNN` answers with that status.
pub async fn serve_echo(listener: TcpListener, name: &'static str) {
    // Runs until the process ends: a shutdown signal nobody sends.
    let (_keep, never) = tokio::sync::watch::channel(false);
    crate::server::serve_plain(
        listener,
        "demo app",
        crate::server::Limits::default(),
        move |req| echo(name, req),
        never,
    )
    .await;
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
