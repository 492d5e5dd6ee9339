//! The sign-in sections: the IdP, the cookie, the 32-byte secrets and the signing key,
//! how bearer tokens are read, `jwt_claims_headers` and `allowed_return_domains`.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use super::super::error::Problems;
use super::super::fields::{self, Fields};
use super::super::yaml::{Node, Value};
use super::super::*;

/// The identity provider (`idp_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpSettings {
    pub provider: Option<IdpProvider>,
    /// The issuer: an Okta org (`https://x.okta.com`) or authorization server
    /// (`https://x.okta.com/oauth2/default`), or any OpenID Connect issuer.
    pub provider_url: Option<http::Uri>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    pub scopes: Vec<String>,
    /// Extra CA (PEM) to trust when talking to the provider.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpProvider {
    Okta,
    Oidc,
}

/// The session cookie (`cookie_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    pub name: String,
    /// 32 bytes (written base64). When absent, sessions can't outlive the process.
    pub secret: Option<Secret<[u8; 32]>>,
    pub domain: Option<String>,
    pub expire: Duration,
    pub same_site: SameSite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    Strict,
    /// What browsers assume when the attribute is missing; our default.
    #[default]
    Lax,
    None,
}

/// Keys that sign and bind things (`shared_secret`, `signing_key`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigningSettings {
    /// 32 bytes (written base64).
    pub shared_secret: Option<Secret<[u8; 32]>>,
    /// A PEM private key (written base64, or as PEM) for the upstream JWT (ES256).
    pub signing_key: Option<Secret<Vec<u8>>>,
}

/// `bearer_token_format`, `idp_access_token_allowed_audiences` (Pomerium's keys) and
/// `idp_access_token_allowed_clients` (ours).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BearerSettings {
    pub format: crate::routes::BearerFormat,
    pub audiences: Vec<String>,
    pub clients: Vec<String>,
}

pub(crate) fn read_idp(f: &Fields<'_>, p: &mut Problems) -> IdpSettings {
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

pub(crate) fn read_cookie(f: &Fields<'_>, p: &mut Problems) -> CookieSettings {
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
pub(crate) fn secret_bytes(node: &Node, path: &str, p: &mut Problems) -> Option<[u8; 32]> {
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

pub(crate) fn read_signing_key(
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

pub(crate) fn read_claim_headers(
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

/// `allowed_return_domains`: host names (`corp.example.com`) or `*.` wildcards
/// (`*.corp.example.com`, any depth).
pub(crate) fn read_return_domains(
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
