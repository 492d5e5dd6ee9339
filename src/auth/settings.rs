//! Sign-in settings from the config file: which keys must come together, the secrets
//! they need, and the files they name, read once at start-up.

use std::path::{Path, PathBuf};

use crate::config::{Config, SessionStore};

use super::gate::AuthSettings;
use super::provider::ProviderSettings;
use super::store::StoreSettings;
use super::{CookieSecret, KeyError, SigningKey, SigningKeyError};

/// Why the config's sign-in keys cannot start sign-in.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("sign-in is partly configured; also set {}", .missing.join(", "))]
    Partial { missing: Vec<&'static str> },
    #[error(
        "cookie_secret is required with sign-in (32 random bytes, base64): \
         head -c32 /dev/urandom | base64"
    )]
    NoCookieSecret,
    #[error("{0}")]
    CookieSecret(#[source] KeyError),
    #[error("signing_key: {0}")]
    SigningKey(#[source] SigningKeyError),
    #[error("reading {key} {}: {source}", .path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AuthSettings {
    /// Sign-in settings from `config`, or `None` when no identity provider is
    /// configured (routes that need sign-in then deny everyone, and a warning says so).
    /// Refuses a partial provider configuration and a missing or weak `cookie_secret`.
    pub fn from_config(config: &Config) -> Result<Option<AuthSettings>, AuthConfigError> {
        let idp = &config.idp;
        let given = [
            ("idp_provider_url", idp.provider_url.is_some()),
            ("idp_client_id", idp.client_id.is_some()),
            ("idp_client_secret", idp.client_secret.is_some()),
            (
                "authenticate_service_url",
                config.authenticate_service_url.is_some(),
            ),
        ];
        // `authenticate_service_url` alone (a chart default, say) configures nothing.
        if !given[..3].iter().any(|(_, set)| *set) {
            if config.needs_sign_in() {
                tracing::warn!(
                    "routes need sign-in but no identity provider is configured: they deny everyone"
                );
            }
            return Ok(None);
        }
        let missing: Vec<&'static str> = given
            .iter()
            .filter(|(_, set)| !set)
            .map(|(k, _)| *k)
            .collect();
        let (Some(provider_url), Some(client_id), Some(client_secret), Some(authenticate)) = (
            &idp.provider_url,
            &idp.client_id,
            &idp.client_secret,
            &config.authenticate_service_url,
        ) else {
            return Err(AuthConfigError::Partial { missing });
        };
        let secret = config
            .cookie
            .secret
            .as_ref()
            .ok_or(AuthConfigError::NoCookieSecret)?;
        let cookie_secret =
            CookieSecret::from_bytes(*secret.expose()).map_err(AuthConfigError::CookieSecret)?;
        let signing_key = match &config.signing.signing_key {
            Some(pem) => SigningKey::from_pem(pem.expose()).map_err(AuthConfigError::SigningKey)?,
            None => {
                tracing::warn!(
                    "signing_key is not set: X-Portcullis-Jwt-Assertion is signed with a key \
                     made at start-up, so each replica and each restart has its own; set \
                     signing_key for production"
                );
                SigningKey::generate()
            }
        };
        let ca_pem = idp
            .ca_file
            .as_deref()
            .map(|p| read("idp_ca_file", p))
            .transpose()?;
        let authenticate_url = issuer_string(authenticate);
        Ok(Some(AuthSettings {
            provider: ProviderSettings {
                issuer: issuer_string(provider_url),
                client_id: client_id.clone(),
                client_secret: client_secret.expose().clone(),
                scopes: idp.scopes.clone(),
                redirect_url: format!("{authenticate_url}/oauth2/callback"),
                ca_pem,
                access_token_audiences: config.bearer.audiences.clone(),
                access_token_clients: config.bearer.clients.clone(),
            },
            authenticate_url,
            cookie_name: config.cookie.name.clone(),
            cookie_domain: config.cookie.domain.clone(),
            cookie_expire: config.cookie.expire,
            cookie_same_site: config.cookie.same_site,
            cookie_secret,
            signing_key,
            session_store: store_settings(&config.session_store)?,
            jwt_claims_headers: config.jwt_claims_headers.clone(),
            allowed_return_domains: config.allowed_return_domains.clone(),
            bearer_format: config.bearer.format,
        }))
    }
}

/// The Redis session store's settings with its TLS files read; `None`: the cookie store.
fn store_settings(store: &SessionStore) -> Result<Option<StoreSettings>, AuthConfigError> {
    let SessionStore::Redis(redis) = store else {
        return Ok(None);
    };
    let ca_pem = redis
        .ca_file
        .as_deref()
        .map(|p| read("session_store_ca_file", p))
        .transpose()?;
    let client_cert = match (&redis.cert_file, &redis.key_file) {
        (Some(cert), Some(key)) => Some((
            read("session_store_cert_file", cert)?,
            read("session_store_key_file", key)?,
        )),
        _ => None,
    };
    Ok(Some(StoreSettings {
        url: redis.url.clone(),
        ca_pem,
        client_cert,
    }))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|source| AuthConfigError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// A URL as written, without the trailing `/` that `Uri` adds to a bare authority
/// (Okta's issuers have none, and issuers are compared exactly).
fn issuer_string(uri: &http::Uri) -> String {
    let text = uri.to_string();
    match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("/") => text.trim_end_matches('/').to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, "config.yaml", &|_| None).expect("config parses")
    }

    const KEY32: &str = "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY=";

    #[test]
    fn which_keys_configure_sign_in() {
        let idp = "idp_provider_url: https://example.okta.com\nidp_client_id: c\n\
                   idp_client_secret: s\n";
        let auth = "authenticate_service_url: https://authenticate.example.com\n";
        let secret = format!("cookie_secret: {KEY32}\n");
        let cases: Vec<(String, Result<bool, &str>)> = vec![
            (String::new(), Ok(false)),
            (auth.to_string(), Ok(false)),
            (
                format!("{idp}{secret}"),
                Err("also set authenticate_service_url"),
            ),
            (
                format!("idp_client_id: c\n{auth}{secret}"),
                Err("also set idp_provider_url, idp_client_secret"),
            ),
            (format!("{idp}{auth}"), Err("cookie_secret is required")),
            (
                format!("{idp}{auth}cookie_secret: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),
                Err("cookie_secret is too weak"),
            ),
            (format!("{idp}{auth}{secret}"), Ok(true)),
            (
                format!("{idp}{auth}{secret}idp_ca_file: /nonexistent/ca.pem\n"),
                Err("reading idp_ca_file /nonexistent/ca.pem"),
            ),
        ];
        for (text, want) in cases {
            let got = AuthSettings::from_config(&config(&text));
            match (got, want) {
                (Ok(s), Ok(configured)) => assert_eq!(s.is_some(), configured, "{text}"),
                (Err(e), Err(needle)) => {
                    assert!(e.to_string().contains(needle), "{text}: {e}")
                }
                (Ok(s), Err(needle)) => panic!("{text}: want {needle}, got {:?}", s.is_some()),
                (Err(e), Ok(_)) => panic!("{text}: {e}"),
            }
        }
    }

    #[test]
    fn issuers_and_the_callback_keep_their_written_form() {
        let text = format!(
            "idp_provider_url: https://example.okta.com/oauth2/default\nidp_client_id: c\n\
             idp_client_secret: s\nauthenticate_service_url: https://auth.example.com\n\
             cookie_secret: {KEY32}\n"
        );
        let s = AuthSettings::from_config(&config(&text))
            .expect("valid")
            .expect("configured");
        assert_eq!(s.provider.issuer, "https://example.okta.com/oauth2/default");
        assert_eq!(s.authenticate_url, "https://auth.example.com");
        assert_eq!(
            s.provider.redirect_url,
            "https://auth.example.com/oauth2/callback"
        );
        for (uri, want) in [
            ("https://a.example.com", "https://a.example.com"),
            ("https://a.example.com/", "https://a.example.com"),
            ("https://a.example.com/x/", "https://a.example.com/x/"),
        ] {
            assert_eq!(issuer_string(&uri.parse().unwrap()), want);
        }
    }
}
