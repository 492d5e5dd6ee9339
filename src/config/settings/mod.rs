//! Readers for the top-level settings sections: certificates, the IdP, the cookie,
//! secrets, the session store, claim headers and directory sync.
//!
//! `identity` reads the sign-in sections (IdP, cookie, secrets and signing key, claim
//! headers, return domains), `store` the session store, `directory` directory sync; this
//! file the listeners' certificates, client-connection limits and log fields.

use super::error::Problems;
use super::fields::{self, Fields};
use super::yaml::{Node, Value};
use super::*;

mod directory;
mod identity;
mod store;

pub(super) use self::directory::read_directory;
pub(super) use self::identity::{
    read_claim_headers, read_cookie, read_idp, read_return_domains, read_signing_key, secret_bytes,
};
pub(super) use self::store::read_session_store_settings;

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
