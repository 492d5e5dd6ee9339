//! The config file in Pomerium's format (same key names and meaning where Pomerium has
//! the key), environment overrides (`COOKIE_SECRET=...` beats the file, as in Pomerium),
//! validation with errors that name the file, line and key path, and conversion into the
//! plain routing [`Model`](crate::routes::Model). See docs/design.md.
//!
//! Reading is in two steps: [`yaml`] parses the text into a tree that remembers where
//! each node was written; the readers here and in [`route`] walk that tree, refusing
//! unknown keys and invalid values, and collect every problem before giving up.
//!
//! Here: [`Config`], its top-level keys and the reader that calls the others. Each
//! section's settings type sits beside its reader in `settings` (sign-in, the session
//! store, directory sync, certificates and client connections) and is re-exported here;
//! `check` is `portcullis check`.

mod check;
mod error;
pub(crate) mod fields;
mod route;
mod secret;
mod settings;
mod store_url;
mod yaml;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::HeaderName;

use crate::routes::{HostPort, Model};

pub use crate::telemetry::LogFormat;
pub use check::check;
pub use error::ConfigError;
pub use route::RouteConfig;
pub use secret::Secret;
pub use settings::{
    BearerSettings, CertificateFiles, ConnectionSettings, CookieSettings, DirectoryProvider,
    DirectorySettings, IdpProvider, IdpSettings, SameSite, SessionStore, SigningSettings,
};
pub use store_url::{StoreUrl, Topology};

use error::Problems;
use fields::Fields;
use settings::{
    read_certificates, read_claim_headers, read_cookie, read_directory, read_idp,
    read_session_store_settings, read_signing_key, secret_bytes,
};
use yaml::{Node, Origin, Value};

/// Pomerium's defaults (and ours where Pomerium has none).
pub const DEFAULT_ADDRESS: &str = ":443";
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_COOKIE_NAME: &str = "_portcullis";
pub const DEFAULT_COOKIE_EXPIRE: Duration = Duration::from_secs(14 * 60 * 60);
pub const DEFAULT_IDP_SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];
pub const DEFAULT_DIRECTORY_REFRESH: Duration = Duration::from_secs(10 * 60);
/// The header a claim named in list-form `jwt_claims_headers` goes out as (plus the name).
pub const CLAIM_HEADER_PREFIX: &str = "x-portcullis-claim-";

/// Top-level keys. All but `certificates`, `directory` and `routes` may also come from
/// the environment, upper-cased.
const TOP_KEYS: &[&str] = &[
    "authenticate_service_url",
    "idp_provider",
    "idp_provider_url",
    "idp_client_id",
    "idp_client_secret",
    "idp_scopes",
    "idp_ca_file",
    "idp_access_token_allowed_audiences",
    "idp_access_token_allowed_clients",
    "bearer_token_format",
    "allowed_return_domains",
    "authorize_log_fields",
    "access_log_fields",
    "address",
    "http_redirect_address",
    "certificates",
    "cookie_name",
    "cookie_secret",
    "cookie_domain",
    "cookie_expire",
    "cookie_same_site",
    "shared_secret",
    "signing_key",
    "session_store",
    "session_store_password",
    "session_store_ca_file",
    "session_store_cert_file",
    "session_store_key_file",
    "directory",
    "pass_identity_headers",
    "jwt_claims_headers",
    "metrics_address",
    "use_proxy_protocol",
    "xff_num_trusted_hops",
    "timeout_header_read",
    "timeout_idle",
    "max_connections_per_worker",
    "max_concurrent_requests_per_connection",
    "http2_max_concurrent_streams",
    "log_level",
    "log_format",
    "routes",
];
const NOT_FROM_ENV: &[&str] = &["certificates", "directory", "routes"];
const DIRECTORY_KEYS: &[&str] = &["provider", "url", "api_token", "refresh_interval"];
const CERTIFICATE_KEYS: &[&str] = &["cert", "key"];
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// A validated config file. Everything in here has been checked; [`Config::model`]
/// cannot fail.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the proxy listens for HTTPS (`address`, default `:443`).
    pub address: SocketAddr,
    /// Where plain HTTP is answered with a redirect to HTTPS.
    pub http_redirect_address: Option<SocketAddr>,
    pub certificates: Vec<CertificateFiles>,
    /// The admin port: `/metrics`, `/healthz`, `/readyz`, `/debug/routes`.
    pub metrics_address: Option<SocketAddr>,
    /// `trace`, `debug`, `info` (default), `warn` or `error`.
    pub log_level: String,
    pub log_format: LogFormat,
    /// The sign-in host (`/oauth2/callback` lives here). https, no path.
    pub authenticate_service_url: Option<http::Uri>,
    pub idp: IdpSettings,
    pub cookie: CookieSettings,
    pub session_store: SessionStore,
    pub signing: SigningSettings,
    pub directory: Option<DirectorySettings>,
    /// Default for routes that don't set `pass_identity_headers`.
    pub pass_identity_headers: bool,
    /// Extra upstream headers carrying JWT claims: (header, claim name).
    pub jwt_claims_headers: Vec<(HeaderName, String)>,
    /// How bearer tokens are read, and which access tokens are accepted.
    pub bearer: BearerSettings,
    /// `allowed_return_domains`: hosts sign-in may return to besides needing a route
    /// (`example.com` exactly, `*.example.com` any subdomain); empty: any routed host.
    pub allowed_return_domains: Vec<String>,
    /// Client connections: PROXY protocol, trusted hops, deadlines and limits.
    pub connections: ConnectionSettings,
    /// `authorize_log_fields`: the decision log's fields (all by default; `[]` off).
    pub authorize_log_fields:
        crate::telemetry::fields::Fields<crate::telemetry::fields::DecisionField>,
    /// `access_log_fields`: the access log's fields (none by default: debug level only).
    pub access_log_fields: crate::telemetry::fields::Fields<crate::telemetry::fields::AccessField>,
    pub routes: Vec<RouteConfig>,
}

// === impl Config ===

impl Config {
    /// Reads the file at `path`, with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::single(&origin, &Origin::Unknown, "", format!("cannot read: {e}"))
        })?;
        Config::parse(&text, &origin, &|var| std::env::var(var).ok())
    }

    /// Parses and validates `text`; `origin` names it in errors; `env` looks up
    /// environment variables (empty values count as unset).
    pub fn parse(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let root = yaml::parse(text)
            .map_err(|(at, message)| ConfigError::single(origin, &at, "", message))?;
        let mut p = Problems::new(origin);
        let config = read_config(&root, env, &mut p);
        match config {
            Some(c) => p.into_result(c),
            None => {
                // `read_config` only fails after reporting why.
                debug_assert!(!p.list.is_empty());
                Err(ConfigError { problems: p.list })
            }
        }
    }

    /// The plain routing model. Infallible: `parse` validated everything.
    pub fn model(&self) -> Model {
        Model {
            routes: self.routes.iter().map(|r| r.spec.clone()).collect(),
            default_backend: None,
            authenticate_host: self.authenticate_host(),
            exclusive_hosts: Vec::new(),
            gateways: Vec::new(),
        }
    }

    /// The `authenticate_service_url` host, and its port only when written.
    pub fn authenticate_host(&self) -> Option<HostPort> {
        let uri = self.authenticate_service_url.as_ref()?;
        let host = uri.host()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(HostPort {
            host: host.to_ascii_lowercase(),
            port: uri.port_u16(),
        })
    }

    /// Whether any route may need a signed-in user.
    pub fn needs_sign_in(&self) -> bool {
        self.routes.iter().any(RouteConfig::needs_sign_in)
    }
}

fn env_var(key: &str) -> String {
    key.to_ascii_uppercase()
}

fn read_config(
    root: &Node,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<Config> {
    let mut f = Fields::open(root, "", TOP_KEYS, p)?;
    for key in TOP_KEYS.iter().filter(|k| !NOT_FROM_ENV.contains(k)) {
        let var = env_var(key);
        if let Some(value) = env(&var).filter(|v| !v.is_empty()) {
            f.override_with(key, &var, value);
        }
    }

    let address = f
        .read("address", p, fields::socket_addr)
        .or_else(|| fields::parse_socket_addr(DEFAULT_ADDRESS).ok());
    let http_redirect_address = f.read("http_redirect_address", p, fields::socket_addr);
    let metrics_address = f.read("metrics_address", p, fields::socket_addr);
    let certificates = f
        .read("certificates", p, read_certificates)
        .unwrap_or_default();

    let log_level = f
        .read("log_level", p, |n, path, p| {
            let s = fields::string(n, path, p)?.trim().to_ascii_lowercase();
            let s = if s == "warning" {
                "warn".to_string()
            } else {
                s
            };
            if LOG_LEVELS.contains(&s.as_str()) {
                Some(s)
            } else {
                p.push(
                    &n.origin,
                    path,
                    format!(
                        "`{s}` is not a log level; use one of {}",
                        LOG_LEVELS.join(", ")
                    ),
                );
                None
            }
        })
        .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string());
    let log_format = f
        .read("log_format", p, |n, path, p| {
            let s = fields::string(n, path, p)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "text" | "console" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => {
                    p.push(
                        &n.origin,
                        path,
                        format!("`{s}` is not a log format; use text or json"),
                    );
                    None
                }
            }
        })
        .unwrap_or_default();

    let authenticate_service_url = f.read("authenticate_service_url", p, |n, path, p| {
        fields::origin_url(n, path, &["https"], false, p)
    });
    let idp = read_idp(&f, p);
    let cookie = read_cookie(&f, p);
    let session_store = read_session_store_settings(&f, p);
    let signing = SigningSettings {
        shared_secret: f.read("shared_secret", p, |n, path, p| {
            secret_bytes(n, path, p).map(Secret::new)
        }),
        signing_key: f.read("signing_key", p, read_signing_key),
    };
    let directory = read_directory(&f, env, idp.provider_url.as_ref(), p);

    let pass_identity_headers = f
        .read("pass_identity_headers", p, fields::boolean)
        .unwrap_or(false);
    let jwt_claims_headers = f
        .read("jwt_claims_headers", p, read_claim_headers)
        .unwrap_or_default();

    let bearer = BearerSettings {
        format: f
            .read("bearer_token_format", p, fields::bearer_format)
            .unwrap_or_default(),
        audiences: f
            .read("idp_access_token_allowed_audiences", p, fields::one_or_list)
            .unwrap_or_default(),
        clients: f
            .read("idp_access_token_allowed_clients", p, fields::one_or_list)
            .unwrap_or_default(),
    };
    let allowed_return_domains = f
        .read("allowed_return_domains", p, settings::read_return_domains)
        .unwrap_or_default();
    let connections = settings::read_connections(&f, p);
    let authorize_log_fields = f
        .read("authorize_log_fields", p, settings::read_log_fields)
        .unwrap_or_else(crate::telemetry::fields::Fields::all);
    let access_log_fields = f
        .read("access_log_fields", p, settings::read_log_fields)
        .unwrap_or(crate::telemetry::fields::Fields::NONE);

    let inherited = route::Inherited {
        pass_identity_headers,
        authenticate_host: authenticate_service_url
            .as_ref()
            .and_then(|u| u.host())
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
        claim_headers: jwt_claims_headers
            .iter()
            .map(|(name, _): &(HeaderName, String)| name.to_string())
            .collect(),
        own_listeners: [address, http_redirect_address, metrics_address]
            .into_iter()
            .flatten()
            .collect(),
    };
    let routes = match f.get("routes") {
        None => Vec::new(),
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| route::read(n, i, &inherited, p))
            .collect(),
        Some(n) => {
            p.push(
                &n.origin,
                "routes",
                format!("expected a list of routes, found {}", n.kind()),
            );
            Vec::new()
        }
    };

    let wants_access_tokens = bearer.format == crate::routes::BearerFormat::IdpAccessToken
        || routes.iter().any(|r| {
            r.spec.options.bearer_format == Some(crate::routes::BearerFormat::IdpAccessToken)
        });
    if wants_access_tokens && bearer.audiences.is_empty() {
        let origin = f
            .get("bearer_token_format")
            .map_or(root.origin.clone(), |n| n.origin.clone());
        p.push(
            &origin,
            "idp_access_token_allowed_audiences",
            "bearer_token_format idp_access_token needs the audiences to accept: Portcullis \
             verifies access tokens as JWTs against the provider's keys (Okta's default \
             authorization server issues `api://default`)",
        );
    }

    Some(Config {
        address: address?,
        http_redirect_address,
        certificates,
        metrics_address,
        log_level,
        log_format,
        authenticate_service_url,
        idp,
        cookie,
        session_store,
        signing,
        directory,
        pass_identity_headers,
        jwt_claims_headers,
        bearer,
        allowed_return_domains,
        connections,
        authorize_log_fields,
        access_log_fields,
        routes,
    })
}
