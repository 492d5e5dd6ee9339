//! The OpenID Connect provider (Okta, or any OIDC issuer): discovery, the
//! authorization-code + PKCE flow, token refresh, ID and bearer token verification, and
//! the end-session URL. Discovery is lazy and cached; an unknown signing key refetches
//! the provider's keys once before a token is refused.

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
mod health;

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

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The discovered provider, fetching it when missing, stale, or when `force` (an
    /// unknown key) and the last fetch is not very recent.
    async fn discovered(&self, force: bool) -> Result<Arc<Discovered>, ProviderError> {
        let fresh = |d: &Discovered| {
            let age = d.fetched.elapsed();
            age < DISCOVERY_MAX_AGE && !(force && age > MIN_FORCED_REFRESH)
        };
        if let Some(d) = self.discovered.load_full().filter(|d| fresh(d)) {
            return Ok(d);
        }
        let _one_at_a_time = self.refetch.lock().await;
        if let Some(d) = self.discovered.load_full().filter(|d| fresh(d)) {
            return Ok(d);
        }
        match self.discover().await {
            Ok(d) => {
                let d = Arc::new(d);
                self.discovered.store(Some(d.clone()));
                tracing::info!(issuer = %self.settings.issuer, "identity provider discovered");
                Ok(d)
            }
            // A stale document beats none while the provider is down.
            Err(e) => match self.discovered.load_full() {
                Some(d) if !force => {
                    tracing::warn!(error = %e, "rediscovery failed; keeping the previous document");
                    Ok(d)
                }
                _ => Err(e),
            },
        }
    }

    async fn discover(&self) -> Result<Discovered, ProviderError> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| ProviderError::Config(e.to_string()))?;
        let metadata = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery: {}", error_chain(&e))))?;
        let end_session = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().to_string());
        let revocation = metadata
            .additional_metadata()
            .additional_metadata
            .revocation_endpoint
            .clone()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.settings.redirect_url.clone())
                .map_err(|e| ProviderError::Config(e.to_string()))?,
        );
        Ok(Discovered {
            client,
            end_session,
            revocation,
            fetched: Instant::now(),
        })
    }

    /// Where to send the browser to sign in, and what to remember until it returns.
    pub async fn authorize_url(&self) -> Result<(String, PendingAuth), ProviderError> {
        let d = self.discovered(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = d.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            PendingAuth {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges an authorization code and verifies the ID token against `pending`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pending: &PendingAuth,
    ) -> Result<Tokens, ProviderError> {
        let d = self.discovered(false).await?;
        let response = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let nonce = Nonce::new(pending.nonce.clone());
        self.finish(response, Some(&nonce), None).await
    }

    /// Uses a refresh token. `InvalidGrant` means the session must end.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ProviderError> {
        let d = self.discovered(false).await?;
        let response = d
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        self.finish(response, None, Some(refresh_token)).await
    }

    async fn finish(
        &self,
        response: CoreTokenResponse,
        nonce: Option<&Nonce>,
        previous_refresh: Option<&str>,
    ) -> Result<Tokens, ProviderError> {
        let id_token = response.id_token().ok_or_else(|| {
            ProviderError::InvalidToken("no id_token in the token response".into())
        })?;
        let raw = id_token.to_string();
        let mut claims = self.verify_id_token(&raw, nonce).await?;
        let now = jiff::Timestamp::now().as_second();
        let mut expires_at = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        if let Some(lifetime) = response.expires_in() {
            expires_at = expires_at.min(now + lifetime.as_secs() as i64);
        }
        if let Some(info) = self.userinfo(response.access_token().secret()).await {
            let same_subject = info.get("sub") == claims.get("sub");
            if same_subject {
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            } else {
                tracing::warn!("userinfo answered for a different subject; ignoring it");
            }
        }
        Ok(Tokens {
            id_token: raw,
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or(previous_refresh.map(str::to_string)),
            expires_at,
            claims,
        })
    }

    /// Verifies an ID token (signature, issuer, audience, expiry, nonce when given) and
    /// returns all its claims.
    async fn verify_id_token(
        &self,
        raw: &str,
        nonce: Option<&Nonce>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let token: CoreIdToken = raw
            .parse()
            .map_err(|e| ProviderError::InvalidToken(format!("malformed: {e}")))?;
        let check = |d: &Discovered| {
            let verifier = d.client.id_token_verifier();
            match nonce {
                Some(n) => token.claims(&verifier, n).map(|_| ()),
                // Refreshed ID tokens carry no nonce (or the original one).
                None => token
                    .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                    .map(|_| ()),
            }
        };
        self.with_key_refresh(check).await?;
        payload(raw)
    }

    /// Runs a verification; when it fails for want of a key, refetches the provider's
    /// keys once and tries again.
    async fn with_key_refresh<F>(&self, check: F) -> Result<(), ProviderError>
    where
        F: Fn(&Discovered) -> Result<(), openidconnect::ClaimsVerificationError>,
    {
        let d = self.discovered(false).await?;
        match check(&d) {
            Ok(()) => Ok(()),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(e)) => {
                tracing::info!(error = %e, "token signed with an unknown key; refetching keys");
                let d = self.discovered(true).await?;
                check(&d).map_err(|e| ProviderError::InvalidToken(e.to_string()))
            }
            Err(e) => Err(ProviderError::InvalidToken(e.to_string())),
        }
    }

    async fn userinfo(&self, access_token: &str) -> Option<Map<String, Value>> {
        let d = self.discovered(false).await.ok()?;
        let url = d.client.user_info_url()?.url().clone();
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            tracing::debug!(status = %resp.status(), "userinfo refused; using ID token claims only");
            return None;
        }
        resp.json::<Map<String, Value>>().await.ok()
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

fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> ProviderError {
    match &e {
        RequestTokenError::ServerResponse(r)
            if *r.error() == openidconnect::core::CoreErrorResponseType::InvalidGrant =>
        {
            ProviderError::InvalidGrant(
                r.error_description()
                    .cloned()
                    .unwrap_or_else(|| "invalid_grant".into()),
            )
        }
        RequestTokenError::ServerResponse(r) => ProviderError::InvalidToken(format!(
            "{}: {}",
            r.error().as_ref(),
            r.error_description().map(String::as_str).unwrap_or("")
        )),
        _ => ProviderError::Unavailable(error_chain(&e)),
    }
}

/// A reqwest client for the provider: never follows redirects, times out, trusts the
/// system roots plus `idp_ca_file`.
fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, ProviderError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ProviderError::Config(format!("idp_ca_file: {e}")))?;
        if certs.is_empty() {
            return Err(ProviderError::Config(
                "idp_ca_file holds no certificate".into(),
            ));
        }
        roots.add_parsable_certificates(certs);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ProviderError::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(IDP_TIMEOUT)
        .connect_timeout(IDP_TIMEOUT)
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Config(e.to_string()))
}
