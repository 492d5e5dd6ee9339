//! The OpenID Connect provider (Okta, or any OIDC issuer): discovery, the
//! authorization-code + PKCE flow, token refresh, ID and bearer token verification, and
//! the end-session URL. Discovery is lazy and cached; an unknown signing key refetches
//! the provider's keys once before a token is refused.
//!
//! `discovery` fetches and caches the provider's document and keys, `signin` runs the
//! code flow and refresh, `bearer` reads bearer tokens, `health` revocation,
//! end-session and reachability.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreTokenResponse};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutProviderMetadata,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse,
};
use serde_json::{Map, Value};

use crate::telemetry::error_chain;

/// Timeout for every call to the provider.
const IDP_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents (and keys) are refetched at least this often.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(3600);
/// A refetch forced by an unknown key is not repeated sooner than this.
const MIN_FORCED_REFRESH: Duration = Duration::from_secs(30);
/// How long a reachability probe's answer is reused.
const REACHABILITY_FOR: Duration = Duration::from_secs(5);
/// A reachability probe gives up after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Discovery fields beyond OpenID Connect Discovery's core that we use.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct ExtraMetadata {
    /// RFC 7009 token revocation (Okta lists it).
    #[serde(default)]
    revocation_endpoint: Option<String>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    LogoutProviderMetadata<ExtraMetadata>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// How `Authorization: Bearer` tokens are read (`bearer_token_format`, Pomerium's key).
mod bearer;
mod discovery;
mod health;
mod signin;

use self::discovery::http_client;

pub use crate::routes::BearerFormat;
pub use bearer::{access_token_client, unverified_exp};

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How to reach and identify with the provider.
#[derive(Clone)]
pub struct ProviderSettings {
    /// `idp_provider_url`: an Okta org (`https://x.okta.com`), an Okta authorization
    /// server (`https://x.okta.com/oauth2/default`) or any OIDC issuer; compared exactly
    /// with the issuer that discovery returns.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    /// `https://<authenticate host>/oauth2/callback`, as registered with the provider.
    pub redirect_url: String,
    /// Extra trusted roots for the provider's TLS (PEM, `idp_ca_file`).
    pub ca_pem: Option<Vec<u8>>,
    /// `idp_access_token_allowed_audiences`: the `aud` values a bearer access token
    /// may carry (Okta's default authorization server issues `api://default`). Empty:
    /// access tokens are refused.
    pub access_token_audiences: Vec<String>,
    /// `idp_access_token_allowed_clients`: clients (`cid`, `client_id` or `azp`) whose
    /// access tokens are accepted besides our own `client_id`.
    pub access_token_clients: Vec<String>,
}

/// Why talking to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered nonsense: transient.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the grant (`invalid_grant`: revoked, expired, reused).
    #[error("the identity provider refused the grant: {0}")]
    InvalidGrant(String),
    /// A token failed verification.
    #[error("token rejected: {0}")]
    InvalidToken(String),
    #[error("identity provider settings: {0}")]
    Config(String),
}

/// Tokens and the identity they carry, after verification. `Debug` leaves the tokens
/// out.
#[derive(Clone)]
pub struct Tokens {
    pub id_token: String,
    pub refresh_token: Option<String>,
    /// When the ID token (or, when sooner, the access token) expires: refresh before.
    pub expires_at: i64,
    /// Claims of the verified ID token, merged with userinfo (ID token wins).
    pub claims: Map<String, Value>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the browser must carry through the provider round trip. `Debug` leaves the
/// secrets out.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingAuth {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl std::fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingAuth([redacted])")
    }
}

struct Discovered {
    client: Client,
    end_session: Option<String>,
    revocation: Option<String>,
    fetched: Instant,
}

/// One configured provider.
pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    discovered: ArcSwapOption<Discovered>,
    refetch: tokio::sync::Mutex<()>,
    /// The last reachability answer and when it was had.
    reachable: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// Unix seconds since when the provider has been seen unreachable (0: reachable).
    down_since: std::sync::atomic::AtomicI64,
}

impl Provider {
    pub fn new(settings: ProviderSettings) -> Result<Provider, ProviderError> {
        IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| ProviderError::Config(format!("idp_provider_url: {e}")))?;
        RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| ProviderError::Config(format!("authenticate_service_url: {e}")))?;
        let http = http_client(settings.ca_pem.as_deref())?;
        Ok(Provider {
            settings,
            http,
            discovered: ArcSwapOption::empty(),
            refetch: tokio::sync::Mutex::new(()),
            reachable: tokio::sync::Mutex::new(None),
            down_since: std::sync::atomic::AtomicI64::new(0),
        })
    }
}

/// The JSON claims of a compact JWS (only after its signature is verified, or to read
/// `aud` before verifying it).
fn payload(raw: &str) -> Result<Map<String, Value>, ProviderError> {
    let part = raw
        .split('.')
        .nth(1)
        .ok_or_else(|| ProviderError::InvalidToken("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| ProviderError::InvalidToken(format!("payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::InvalidToken(format!("payload: {e}")))
}
