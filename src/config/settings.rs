//! Readers for the top-level settings sections: certificates, the IdP, the cookie,
//! secrets, the session store, claim headers and directory sync.

use std::path::PathBuf;

use http::HeaderName;

use super::error::Problems;
use super::fields::{self, Fields};
use super::yaml::{Node, Value};
use super::*;

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

pub(super) fn read_idp(f: &Fields<'_>, p: &mut Problems) -> IdpSettings {
    IdpSettings {
        provider: f.read("idp_provider", p, |n, path, p| {
            let s = fields::string(n, path, p)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "okta" => Some(IdpProvider::Okta),
                "oidc" => Some(IdpProvider::Oidc),
                _ => {
                    p.push(
                        &n.origin,
                        path,
                        format!(
                            "`{s}` is not supported; use okta or oidc (any OpenID Connect provider)"
                        ),
                    );
                    None
                }
            }
        }),
        provider_url: f.read("idp_provider_url", p, |n, path, p| {
            fields::origin_url(n, path, &["https", "http"], true, p)
        }),
        client_id: f.read("idp_client_id", p, fields::nonempty),
        client_secret: f
            .read("idp_client_secret", p, fields::secret_string)
            .map(Secret::new),
        scopes: f
            .read("idp_scopes", p, fields::string_list)
            .unwrap_or_else(|| DEFAULT_IDP_SCOPES.iter().map(|s| s.to_string()).collect()),
        ca_file: f
            .read("idp_ca_file", p, fields::nonempty)
            .map(PathBuf::from),
    }
}

pub(super) fn read_cookie(f: &Fields<'_>, p: &mut Problems) -> CookieSettings {
    CookieSettings {
        name: f
            .read("cookie_name", p, |n, path, p| {
                let s = fields::nonempty(n, path, p)?;
                // A cookie name is an RFC 9110 token.
                let token = s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !token {
                    p.push(&n.origin, path, format!("`{s}` is not a valid cookie name"));
                    return None;
                }
                Some(s)
            })
            .unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_string()),
        secret: f.read("cookie_secret", p, |n, path, p| {
            secret_bytes(n, path, p).map(Secret::new)
        }),
        domain: f.read("cookie_domain", p, |n, path, p| {
            let s = fields::nonempty(n, path, p)?;
            match crate::routes::HostMatch::parse(s.trim_start_matches('.')) {
                Ok(crate::routes::HostMatch::Exact(_)) => Some(s.to_ascii_lowercase()),
                _ => {
                    p.push(&n.origin, path, format!("`{s}` is not a domain name"));
                    None
                }
            }
        }),
        expire: f
            .read("cookie_expire", p, fields::duration)
            .unwrap_or(DEFAULT_COOKIE_EXPIRE),
        same_site: f
            .read("cookie_same_site", p, |n, path, p| {
                let s = fields::string(n, path, p)?;
                match s.trim().to_ascii_lowercase().as_str() {
                    "strict" => Some(SameSite::Strict),
                    "lax" | "" => Some(SameSite::Lax),
                    "none" => Some(SameSite::None),
                    _ => {
                        p.push(
                            &n.origin,
                            path,
                            format!("`{s}` is not a SameSite mode; use strict, lax or none"),
                        );
                        None
                    }
                }
            })
            .unwrap_or_default(),
    }
}

/// A 32-byte key written base64 (`head -c32 /dev/urandom | base64`). Never quoted in errors.
pub(super) fn secret_bytes(node: &Node, path: &str, p: &mut Problems) -> Option<[u8; 32]> {
    let text = fields::secret_string(node, path, p)?;
    match secret::decode_base64(&text) {
        Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(key) => Some(key),
            Err(_) => {
                p.push(
                    &node.origin,
                    path,
                    format!(
                        "must be 32 bytes written base64 (got {} bytes); make one with `head -c32 /dev/urandom | base64`",
                        bytes.len()
                    ),
                );
                None
            }
        },
        Err(why) => {
            p.push(
                &node.origin,
                path,
                format!("{why}; make one with `head -c32 /dev/urandom | base64`"),
            );
            None
        }
    }
}

pub(super) fn read_signing_key(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<Secret<Vec<u8>>> {
    let text = fields::secret_string(node, path, p)?;
    let pem = if text.starts_with("-----BEGIN") {
        text.into_bytes()
    } else {
        secret::decode_base64(&text).unwrap_or_default()
    };
    if !pem.starts_with(b"-----BEGIN") || !pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        p.push(
            &node.origin,
            path,
            "must be a PEM private key, written base64 (as Pomerium's `signing_key`) or as PEM",
        );
        return None;
    }
    Some(Secret::new(pem))
}

pub(super) fn read_session_store(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<SessionStore> {
    let text = fields::secret_string(node, path, p)?;
    if text == "cookie" {
        return Some(SessionStore::Cookie);
    }
    // The URL may carry a password: the parser's errors never quote it.
    match super::store_url::parse(&text) {
        Ok(url) => Some(SessionStore::Redis(Box::new(RedisSettings {
            url,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }))),
        Err(e) if !text.contains("://") || e.contains("unknown scheme") => {
            p.push(
                &node.origin,
                path,
                "must be `cookie` or a `redis://` / `rediss://` URL (or redis+sentinel://, \
                 rediss+sentinel://, redis+cluster://, rediss+cluster://)",
            );
            None
        }
        Err(e) => {
            p.push(&node.origin, path, format!("the URL {e}"));
            None
        }
    }
}

/// `session_store` and the keys beside it: the password (when not in the URL) and the
/// TLS files for `rediss…://` URLs.
pub(super) fn read_session_store_settings(f: &Fields<'_>, p: &mut Problems) -> SessionStore {
    let store = f
        .read("session_store", p, read_session_store)
        .unwrap_or_default();
    let password = f.read("session_store_password", p, |n, path, p| {
        fields::secret_string(n, path, p).map(Secret::new)
    });
    let file = |key: &str, p: &mut Problems| f.read(key, p, fields::nonempty).map(PathBuf::from);
    let ca_file = file("session_store_ca_file", p);
    let cert_file = file("session_store_cert_file", p);
    let key_file = file("session_store_key_file", p);
    let SessionStore::Redis(mut redis) = store else {
        for key in [
            "session_store_password",
            "session_store_ca_file",
            "session_store_cert_file",
            "session_store_key_file",
        ] {
            if let Some(n) = f.get(key) {
                p.push(&n.origin, key, "needs a Redis `session_store`");
            }
        }
        return store;
    };
    if let Some(pw) = password {
        redis.url.password = Some(pw);
    }
    if !redis.url.tls {
        for key in [
            "session_store_ca_file",
            "session_store_cert_file",
            "session_store_key_file",
        ] {
            if let Some(n) = f.get(key) {
                p.push(
                    &n.origin,
                    key,
                    "needs a TLS session_store URL (rediss://, rediss+sentinel:// or \
                     rediss+cluster://)",
                );
            }
        }
    }
    if cert_file.is_some() != key_file.is_some() {
        let (given, missing) = if cert_file.is_some() {
            ("session_store_cert_file", "session_store_key_file")
        } else {
            ("session_store_key_file", "session_store_cert_file")
        };
        if let Some(n) = f.get(given) {
            p.push(&n.origin, given, format!("needs {missing} too"));
        }
    }
    redis.ca_file = ca_file;
    redis.cert_file = cert_file;
    redis.key_file = key_file;
    SessionStore::Redis(redis)
}

pub(super) fn read_claim_headers(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<Vec<(HeaderName, String)>> {
    match &node.value {
        // Pomerium's map form: `X-Email: email`.
        Value::Map(entries) => {
            let mut out = Vec::new();
            for (k, v) in entries {
                let header = fields::header_name(k, path, p);
                let claim = fields::nonempty(
                    v,
                    &format!("{path}.{}", k.scalar_text().unwrap_or_default()),
                    p,
                );
                out.push((header?, claim?));
            }
            Some(out)
        }
        // List form: `[email, groups]` or `email,groups` → `X-Portcullis-Claim-Email`, ...
        _ => {
            let claims = fields::string_list(node, path, p)?;
            let mut out = Vec::new();
            for claim in claims {
                match HeaderName::from_bytes(format!("{CLAIM_HEADER_PREFIX}{claim}").as_bytes()) {
                    Ok(h) => out.push((h, claim)),
                    Err(_) => {
                        p.push(&node.origin, path, format!("claim `{claim}` cannot be a header name; use the map form `Header-Name: {claim}`"));
                        return None;
                    }
                }
            }
            Some(out)
        }
    }
}

pub(super) fn read_directory(
    top: &Fields<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    idp_url: Option<&http::Uri>,
    p: &mut Problems,
) -> Option<DirectorySettings> {
    let overrides: Vec<(&str, String, String)> = DIRECTORY_KEYS
        .iter()
        .filter_map(|k| {
            let var = format!("DIRECTORY_{}", k.to_ascii_uppercase());
            env(&var).filter(|v| !v.is_empty()).map(|v| (*k, var, v))
        })
        .collect();
    let mut f = match top.get("directory") {
        Some(node) => Fields::open(node, "directory", DIRECTORY_KEYS, p)?,
        None if overrides.is_empty() => return None,
        None => Fields::empty("directory"),
    };
    for (key, var, value) in overrides {
        f.override_with(key, &var, value);
    }
    let before = p.list.len();
    let provider = match f.get("provider") {
        Some(_) => f.read("provider", p, |n, path, p| {
            let s = fields::string(n, path, p)?;
            if s.trim().eq_ignore_ascii_case("okta") {
                Some(DirectoryProvider::Okta)
            } else {
                p.push(&n.origin, path, format!("`{s}` is not supported; use okta"));
                None
            }
        }),
        None => {
            p.push(&f.origin, "directory", "missing `provider` (okta)");
            None
        }
    };
    let url = match f.get("url") {
        Some(_) => f.read("url", p, |n, path, p| {
            fields::origin_url(n, path, &["https", "http"], false, p)
        }),
        None => {
            match idp_url.and_then(|u| {
                let origin = format!("{}://{}", u.scheme_str()?, u.authority()?);
                origin.parse::<http::Uri>().ok()
            }) {
                Some(u) => Some(u),
                None => {
                    p.push(&f.origin, "directory", "missing `url` (the Okta org URL; defaults to the origin of idp_provider_url)");
                    None
                }
            }
        }
    };
    let api_token = match f.get("api_token") {
        Some(_) => f
            .read("api_token", p, fields::secret_string)
            .map(Secret::new),
        None => {
            p.push(
                &f.origin,
                "directory",
                "missing `api_token` (an Okta API token, or set DIRECTORY_API_TOKEN)",
            );
            None
        }
    };
    let refresh_interval = f
        .read("refresh_interval", p, |n, path, p| {
            let d = fields::duration(n, path, p)?;
            if d.is_zero() {
                p.push(&n.origin, path, "must be greater than zero");
                return None;
            }
            Some(d)
        })
        .unwrap_or(DEFAULT_DIRECTORY_REFRESH);
    if p.list.len() > before {
        return None;
    }
    Some(DirectorySettings {
        provider: provider?,
        url: url?,
        api_token: api_token?,
        refresh_interval,
    })
}

/// `allowed_return_domains`: host names (`corp.example.com`) or `*.` wildcards
/// (`*.corp.example.com`, any depth).
pub(super) fn read_return_domains(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<Vec<String>> {
    let list = fields::one_or_list(node, path, p)?;
    let mut out = Vec::new();
    for d in list {
        let d = d.trim().to_ascii_lowercase();
        let name = d.strip_prefix("*.").unwrap_or(&d);
        match crate::routes::HostMatch::parse(name) {
            Ok(crate::routes::HostMatch::Exact(_)) => out.push(d),
            _ => p.push(
                &node.origin,
                path,
                format!("`{d}` is not a host name or a `*.` wildcard"),
            ),
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
