//! The top-level settings sections, each beside the type it is read into:
//! certificates, the IdP, the cookie, secrets, the session store, claim headers and
//! directory sync.
//!
//! `identity` holds the sign-in sections (IdP, cookie, secrets and signing key, bearer
//! tokens, claim headers, return domains), `store` the session store, `directory`
//! directory sync; this file the listeners' certificates, client-connection limits and
//! log fields.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Problems;
use super::fields::{self, Fields};
use super::yaml::{Node, Value};
use super::*;

mod directory;
mod identity;
mod store;

pub(super) use self::directory::read_directory;
pub use self::directory::{DirectoryProvider, DirectorySettings};
pub use self::identity::{
    BearerSettings, CookieSettings, IdpProvider, IdpSettings, SameSite, SigningSettings,
};
pub(super) use self::identity::{
    read_claim_headers, read_cookie, read_idp, read_return_domains, read_signing_key, secret_bytes,
};
pub use self::store::SessionStore;
pub(super) use self::store::read_session_store_settings;

/// One `certificates` entry: a PEM certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The client side of the listeners (`use_proxy_protocol`, `xff_num_trusted_hops`,
/// `timeout_idle` as in Pomerium; the others ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Every connection to the HTTPS and HTTP listeners starts with a PROXY protocol
    /// header (v1 or v2); one without is closed.
    pub use_proxy_protocol: bool,
    /// Trusted proxies in front that append to `X-Forwarded-For`.
    pub xff_num_trusted_hops: u32,
    /// From the TLS handshake to the first request's headers; for HTTP/1.1 also from
    /// one response to the next request's headers. Zero: none.
    pub timeout_header_read: Duration,
    /// A connection with no request in flight is closed after this. Zero: never.
    pub timeout_idle: Duration,
    pub max_connections_per_worker: usize,
    pub max_concurrent_requests_per_connection: usize,
    pub http2_max_concurrent_streams: u32,
}

impl Default for ConnectionSettings {
    /// The data plane's own defaults (one source: `server::Limits`).
    fn default() -> Self {
        let l = crate::server::Limits::default();
        ConnectionSettings {
            use_proxy_protocol: l.proxy_protocol,
            xff_num_trusted_hops: l.xff_num_trusted_hops,
            timeout_header_read: l.header_read_timeout,
            timeout_idle: l.idle_timeout,
            max_connections_per_worker: l.max_connections_per_worker,
            max_concurrent_requests_per_connection: l.max_concurrent_requests_per_connection,
            http2_max_concurrent_streams: l.http2_max_concurrent_streams,
        }
    }
}

pub(super) fn read_certificates(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<Vec<CertificateFiles>> {
    let Value::Seq(items) = &node.value else {
        p.push(
            &node.origin,
            path,
            format!(
                "expected a list of {{cert, key}} entries, found {}",
                node.kind()
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(f) = Fields::open(item, &at, CERTIFICATE_KEYS, p) else {
            continue;
        };
        let cert = f.read("cert", p, fields::nonempty);
        let key = f.read("key", p, fields::nonempty);
        match (cert, key) {
            (Some(cert), Some(key)) => out.push(CertificateFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (c, k) => {
                for (missing, name) in [(c.is_none(), "cert"), (k.is_none(), "key")] {
                    if missing && f.get(name).is_none() {
                        p.push(
                            &item.origin,
                            &at,
                            format!("missing `{name}` (a PEM file path)"),
                        );
                    }
                }
            }
        }
    }
    Some(out)
}

/// The client-connection keys; each absent one keeps its default.
pub(super) fn read_connections(f: &Fields<'_>, p: &mut Problems) -> ConnectionSettings {
    let d = ConnectionSettings::default();
    let count = |key: &str, min: u64, max: u64, p: &mut Problems| {
        f.read(key, p, |n, path, p| fields::count(n, path, min, max, p))
    };
    ConnectionSettings {
        use_proxy_protocol: f
            .read("use_proxy_protocol", p, fields::boolean)
            .unwrap_or(d.use_proxy_protocol),
        xff_num_trusted_hops: count("xff_num_trusted_hops", 0, u64::from(u32::MAX), p)
            .map_or(d.xff_num_trusted_hops, |n| n as u32),
        timeout_header_read: f
            .read("timeout_header_read", p, fields::duration)
            .unwrap_or(d.timeout_header_read),
        timeout_idle: f
            .read("timeout_idle", p, fields::duration)
            .unwrap_or(d.timeout_idle),
        max_connections_per_worker: count("max_connections_per_worker", 1, 1_000_000, p)
            .map_or(d.max_connections_per_worker, |n| n as usize),
        max_concurrent_requests_per_connection: count(
            "max_concurrent_requests_per_connection",
            1,
            100_000,
            p,
        )
        .map_or(d.max_concurrent_requests_per_connection, |n| n as usize),
        http2_max_concurrent_streams: count("http2_max_concurrent_streams", 1, 100_000, p)
            .map_or(d.http2_max_concurrent_streams, |n| n as u32),
    }
}

/// `authorize_log_fields` / `access_log_fields`: a list of field names (`[]`: none).
pub(super) fn read_log_fields<F: crate::telemetry::fields::Field>(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<crate::telemetry::fields::Fields<F>> {
    let list = match &node.value {
        Value::Seq(items) if items.is_empty() => Vec::new(),
        _ => fields::one_or_list(node, path, p)?,
    };
    crate::telemetry::fields::Fields::parse(list.iter().map(String::as_str))
        .map_err(|e| p.push(&node.origin, path, e))
        .ok()
}
