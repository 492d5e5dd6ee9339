//! The sign-in gate the proxy asks on every request: who is this (bearer token, or the
//! credential bound to this host), how to send them to sign in, and what identity to
//! hand the upstream. The authenticate host's own session (refresh token included)
//! never leaves it; see [`super::binding`] for how route credentials are bound.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::binding::{Binding, CookieNames, OwnedBinding};
use super::cookies::{SameSite, strip_family};
use super::handoff::{HandoffCodec, ReplayGuard};
use super::jwt::{Assertion, SigningKey};
use super::keys::CookieSecret;
use super::provider::{BearerFormat, Provider, ProviderError, ProviderSettings};
use super::seal::Sealer;
use super::session::{
    RouteCredential, RouteLoaded, Session, Store, StoreError, claim_text, groups_claim,
};
use crate::policy::Identity;

mod bearer;
mod credential;
mod refresh;
mod upstream;

use bearer::{BearerRefused, bearer, identity_from_claims};
use credential::Remembered;
use refresh::Flight;
use upstream::Signed;

/// The flow cookie (PKCE verifier, nonce, state, return URL) lives this long.
pub const SIGN_IN_FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// A refresh result is shared with concurrent requests of the same session this long.
const REFRESH_SHARE_SECS: i64 = 30;
/// How long a request waits for another replica's refresh (Redis lock) before using
/// the session as it is.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// A decoded credential is reused this long. With Redis, a sign-out on another replica
/// therefore takes effect here within this many seconds.
const DECODED_FOR_SECS: i64 = 5;
/// Decoded credentials kept at most.
const DECODED_ENTRIES: usize = 10_000;
/// An assertion is reused this long (it is valid for five minutes).
const ASSERTION_REUSE_SECS: i64 = 60;
/// Assertions kept for reuse at most.
const ASSERTION_CACHE_ENTRIES: usize = 10_000;
/// Handoff tokens remembered against replay (each lives 60 s).
const REPLAY_CAPACITY: usize = 100_000;
/// While the provider cannot be reached, route credentials handed out are valid this
/// long (within the session's own end), and browsers come back for another then.
pub const OUTAGE_GRACE_SECS: i64 = 300;

/// Everything sign-in needs, from the config file (or `portcullis dev`).
pub struct AuthSettings {
    /// `authenticate_service_url`, e.g. `https://authenticate.example.com` (no path).
    pub authenticate_url: String,
    pub provider: ProviderSettings,
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    pub cookie_expire: Duration,
    pub cookie_same_site: SameSite,
    pub cookie_secret: CookieSecret,
    pub signing_key: SigningKey,
    /// Redis for server-side sessions; `None` keeps them in the cookie.
    pub session_store: Option<super::store::StoreSettings>,
    /// Default for routes: also send `X-Portcullis-Claim-*` and `X-Forwarded-*` headers.
    pub jwt_claims_headers: Vec<(HeaderName, String)>,
    /// `allowed_return_domains`: when not empty, sign-in returns only to hosts matching
    /// one of these (`example.com` exactly, `*.example.com` any subdomain), besides
    /// needing a route.
    pub allowed_return_domains: Vec<String>,
    /// `bearer_token_format` for routes that don't set their own.
    pub bearer_format: BearerFormat,
}

/// Why sign-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthStartError {
    #[error("authenticate_service_url: {0}")]
    AuthenticateUrl(#[source] http::uri::InvalidUri),
    #[error("authenticate_service_url has no host")]
    AuthenticateHost,
    #[error("cookie_name or cookie_domain: {0}")]
    Cookie(#[from] super::CookieError),
    #[error("session store: {0}")]
    Store(#[from] super::store::StoreError),
    #[error("identity provider: {0}")]
    Provider(#[from] ProviderError),
}

/// The sign-in machinery, shared by every connection.
pub struct Auth {
    pub(super) authenticate_url: String,
    pub(super) authenticate_host: String,
    /// The port written in `authenticate_service_url`, if any (else any port).
    pub(super) authenticate_port: Option<u16>,
    pub(super) provider: Provider,
    pub(super) sealer: Sealer,
    pub(super) handoff: HandoffCodec,
    pub(super) replay: ReplayGuard,
    pub(super) csrf: super::csrf::Csrf,
    pub(super) names: CookieNames,
    pub(super) lifetime: Duration,
    pub(super) store: Store,
    pub(super) signer: SigningKey,
    pub(super) return_domains: Vec<String>,
    bearer_format: BearerFormat,
    claims_headers: Vec<(HeaderName, String)>,
    flights: Mutex<HashMap<String, Flight>>,
    /// Recently signed assertions by a keyed hash of identity and route host; each
    /// entry keeps what it was signed for, compared on a hit.
    assertions: Mutex<HashMap<u64, Signed>>,
    assertion_keys: std::hash::RandomState,
    /// Recently decoded route credentials by [`Auth::cookie_key`], each with the exact
    /// cookie value and binding it was decoded from (decrypting and parsing on every
    /// request costs more than the rest of the request).
    decoded: Mutex<HashMap<u64, Remembered>>,
    decoded_keys: std::hash::RandomState,
    /// ID tokens of signed-out sessions (SHA-256 → expiry): sign-out hands the last one
    /// to the provider in a URL (`id_token_hint`), so it must not work as a bearer.
    signed_out_tokens: Mutex<HashMap<[u8; 32], i64>>,
}

/// Who a request comes from, and cookies to set on the response.
#[derive(Default)]
pub struct Identified {
    /// The identity for policies: from this host's credential or a bearer token.
    pub identity: Option<Arc<Identity>>,
    /// The credential's session, when the identity comes from one.
    pub known: Option<Arc<Known>>,
    /// `Set-Cookie` values: clearing an ended credential.
    pub set_cookies: Vec<HeaderValue>,
    /// The session store could not be read: answer 503, never guess.
    pub store_error: Option<StoreError>,
    /// The credential is due for renewal: send browsers through the authenticate host
    /// for a fresh one (API clients are served until it expires).
    pub renew: bool,
}

/// A route credential as decoded: who, which session, and until when.
#[derive(Debug)]
pub struct Known {
    pub identity: Arc<Identity>,
    /// The session ID (sign-out and CSRF tokens are bound to it).
    pub sid: String,
    pub name: String,
    /// Served without another look until then (unix seconds).
    valid_until: i64,
    /// Browsers are sent for a fresh credential from then (unix seconds).
    renew_at: i64,
    /// When the session ends whatever happens (unix seconds).
    pub session_expires: i64,
}

/// The authenticate host's own session, as a request there finds it.
#[derive(Default)]
pub(super) struct AuthSession {
    pub session: Option<Session>,
    /// `Set-Cookie` values: the refreshed session, or clearing an ended one.
    pub set_cookies: Vec<HeaderValue>,
    pub store_error: Option<StoreError>,
    /// The provider could not be reached to refresh the session.
    pub outage: bool,
}

impl Auth {
    /// Builds the gate; connects to Redis when configured.
    pub async fn new(settings: AuthSettings) -> Result<Auth, AuthStartError> {
        let authenticate: http::Uri = settings
            .authenticate_url
            .parse()
            .map_err(AuthStartError::AuthenticateUrl)?;
        let authenticate_host = authenticate
            .host()
            .ok_or(AuthStartError::AuthenticateHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let keys = settings.cookie_secret.derive();
        let names = CookieNames::new(
            &settings.cookie_name,
            settings.cookie_domain.as_deref(),
            settings.cookie_same_site,
        )?;
        let store = Store::start(settings.session_store)?;
        Ok(Auth {
            authenticate_url: settings.authenticate_url.trim_end_matches('/').to_string(),
            authenticate_host,
            authenticate_port: authenticate.port_u16(),
            provider: Provider::new(settings.provider)?,
            sealer: Sealer::new(&keys.session),
            handoff: HandoffCodec::new(&keys.handoff),
            replay: ReplayGuard::new(REPLAY_CAPACITY),
            csrf: super::csrf::Csrf::new(&keys.csrf),
            names,
            lifetime: settings.cookie_expire,
            store,
            signer: settings.signing_key,
            return_domains: settings
                .allowed_return_domains
                .iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            bearer_format: settings.bearer_format,
            claims_headers: settings.jwt_claims_headers,
            flights: Mutex::new(HashMap::new()),
            assertions: Mutex::new(HashMap::new()),
            assertion_keys: std::hash::RandomState::new(),
            decoded: Mutex::new(HashMap::new()),
            decoded_keys: std::hash::RandomState::new(),
            signed_out_tokens: Mutex::new(HashMap::new()),
        })
    }

    /// With Redis, a flag that turns true once the store has answered (`/readyz`).
    pub fn store_answered(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.store.answered()
    }

    /// Adds the session store's metrics to `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.store.register_metrics(registry);
    }

    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// The base name of every Portcullis cookie (what upstreams never see).
    pub fn cookie_base(&self) -> &str {
        self.names.base()
    }

    /// Finds the caller of a request to `host:port` (canonical): a bearer token read as
    /// `format` says (`None`: the global `bearer_token_format`), else the credential
    /// bound to this host.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        host: &str,
        port: u16,
        format: Option<BearerFormat>,
        now: i64,
    ) -> Identified {
        // The paths that talk to the provider or the session store are boxed: they are
        // rare (a cache miss, a refresh, a bearer token) and their futures are large,
        // and an unboxed one would make every request's future as large.
        if let Some(token) = bearer(headers) {
            let format = format.unwrap_or(self.bearer_format);
            return match Box::pin(self.verify_bearer(token, format, now)).await {
                Ok(claims) => Identified {
                    identity: Some(Arc::new(identity_from_claims(&claims))),
                    ..Identified::default()
                },
                // Whether the token was signed out is unknown: 503, not a guess.
                Err(BearerRefused::Store(e)) => {
                    tracing::warn!(error = %e, "session store unavailable");
                    Identified {
                        store_error: Some(e),
                        ..Identified::default()
                    }
                }
                Err(BearerRefused::Provider(e)) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    Identified::default()
                }
            };
        }
        self.credential(headers, host, port, now).await
    }

    /// Whether `host:port` (canonical) is the authenticate service's.
    pub fn is_authenticate_host(&self, host: &str, port: u16) -> bool {
        host == self.authenticate_host && self.authenticate_port.is_none_or(|p| p == port)
    }
}

/// The first characters of a session ID, enough to follow it in logs.
pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::upstream::Signed;
    use super::*;

    #[test]
    fn bearer_identities() {
        let map = |v: Value| v.as_object().unwrap().clone();
        for (claims, user, email) in [
            // Okta access token for a user: `uid` is the user, `sub` the login.
            (
                serde_json::json!({"uid": "00u1", "sub": "ada@example.com", "cid": "app"}),
                "00u1",
                "ada@example.com",
            ),
            // ID token.
            (
                serde_json::json!({"sub": "00u1", "email": "ada@example.com", "aud": "app"}),
                "00u1",
                "ada@example.com",
            ),
            // client_credentials: the subject is the client itself: no user.
            (serde_json::json!({"sub": "svc", "cid": "svc"}), "", ""),
            (
                serde_json::json!({"sub": "svc", "client_id": "svc"}),
                "",
                "",
            ),
            (serde_json::json!({"sub": "svc@x", "azp": "svc@x"}), "", ""),
            (
                serde_json::json!({"sub": "abc@clients", "azp": "abc", "gty": "client-credentials"}),
                "",
                "",
            ),
            (
                serde_json::json!({"sub": "a1b2", "oid": "a1b2", "idtyp": "app"}),
                "",
                "",
            ),
        ] {
            let id = identity_from_claims(&map(claims.clone()));
            assert_eq!(
                (id.user.as_str(), id.email.as_str()),
                (user, email),
                "{claims}"
            );
        }
    }

    #[test]
    fn cached_assertions_are_checked_on_a_hit() {
        let id = Identity {
            user: "u".into(),
            email: "e".into(),
            groups: vec!["g".into()],
            claims: Default::default(),
        };
        let s = Signed {
            host: "app".into(),
            user: "u".into(),
            email: "e".into(),
            groups: vec!["g".into()],
            value: HeaderValue::from_static("x"),
            until: 0,
        };
        assert!(s.is_for("app", &id));
        assert!(!s.is_for("evil", &id));
        let other = Identity {
            groups: vec!["admins".into()],
            ..id.clone()
        };
        assert!(!s.is_for("app", &other));
    }
}
