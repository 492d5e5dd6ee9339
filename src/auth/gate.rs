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

/// Why a bearer token was not accepted.
enum BearerRefused {
    Provider(ProviderError),
    /// The session store could not say whether it was signed out.
    Store(StoreError),
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
    pub async fn new(settings: AuthSettings) -> anyhow::Result<Auth> {
        let authenticate: http::Uri = settings
            .authenticate_url
            .parse()
            .map_err(|e| anyhow::anyhow!("authenticate_service_url: {e}"))?;
        let authenticate_host = authenticate
            .host()
            .ok_or_else(|| anyhow::anyhow!("authenticate_service_url has no host"))?
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

    /// A bearer token the provider issued, unless its session signed out.
    async fn verify_bearer(
        &self,
        token: &str,
        format: BearerFormat,
        now: i64,
    ) -> Result<serde_json::Map<String, Value>, BearerRefused> {
        let claims = self
            .provider
            .verify_bearer(token, format)
            .await
            .map_err(BearerRefused::Provider)?;
        let digest = token_digest(token);
        let in_memory = {
            let mut revoked = self
                .signed_out_tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            revoked.retain(|_, exp| *exp > now);
            revoked.contains_key(&digest)
        };
        // With Redis, every replica knows; an unreadable store fails closed.
        let signed_out = in_memory
            || self
                .store
                .is_token_signed_out(&digest)
                .await
                .map_err(BearerRefused::Store)?;
        if signed_out {
            return Err(BearerRefused::Provider(ProviderError::InvalidToken(
                "the token's session has signed out".into(),
            )));
        }
        Ok(claims)
    }

    /// Refuses `id_token` as a bearer from now until it expires (sign-out).
    pub(super) async fn sign_out_token(&self, id_token: &str, now: i64) {
        let exp = super::provider::unverified_exp(id_token).unwrap_or(now + 3600);
        if exp <= now {
            return;
        }
        let digest = token_digest(id_token);
        self.signed_out_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, exp);
        if let Err(e) = self.store.sign_out_token(&digest, (exp - now) as u64).await {
            tracing::warn!(error = %e, "could not record the signed-out ID token in the store");
        }
    }

    /// The credential bound to `host:port` that the request carries, if any.
    pub(super) async fn credential(
        &self,
        headers: &HeaderMap,
        host: &str,
        port: u16,
        now: i64,
    ) -> Identified {
        let binding = self.names.binding(host, port);
        let name = self.names.route_name(&binding);
        let Some(pieces) = super::cookies::Pieces::of_unique(headers, &name) else {
            return Identified::default();
        };
        // The common case: the same cookie was decoded a moment ago for this same
        // binding. Compared and hashed in place, without joining its chunks.
        let (last, filled) = pieces.tail::<COOKIE_KEY_TAIL>();
        let key = self.cookie_key(pieces.len(), &last[COOKIE_KEY_TAIL - filled..]);
        if let Some(known) = self.recall(key, |seen| pieces.eq_bytes(seen), &binding, now) {
            return Identified {
                identity: Some(known.identity.clone()),
                renew: now >= known.renew_at,
                known: Some(known),
                ..Identified::default()
            };
        }
        match pieces.value() {
            Some(value) => Box::pin(self.load_credential(value, key, binding, now)).await,
            None => Identified::default(),
        }
    }

    /// Decodes (and with Redis, refreshes) a route credential; ended ones come back as
    /// clearing cookies.
    async fn load_credential(
        &self,
        value: String,
        key: u64,
        binding: Binding<'_>,
        now: i64,
    ) -> Identified {
        let cookie = self.names.route(&binding);
        let loaded = match self
            .store
            .load_route(&self.sealer, &value, &binding.aad(), now)
            .await
        {
            Ok(Some(l)) => l,
            Ok(None) => {
                return Identified {
                    set_cookies: cookie.clear(),
                    ..Identified::default()
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable");
                return Identified {
                    store_error: Some(e),
                    ..Identified::default()
                };
            }
        };
        let known = match loaded {
            RouteLoaded::Credential(c) if now < c.exp => known_from_credential(c),
            // Expired: renewal goes through the authenticate host — unless the provider
            // is down, when the session outlives its tokens (as the authenticate host's
            // does), until its own end.
            RouteLoaded::Credential(c) => {
                // Only credentials still valid shortly before the outage was noticed,
                // and only for a grace: an old copied credential is not revived.
                let since = match self.provider.outage_since().await {
                    Some(since) => since,
                    None => return Identified::default(),
                };
                if c.exp < since - OUTAGE_GRACE_SECS || now >= c.exp + OUTAGE_GRACE_SECS {
                    return Identified::default();
                }
                let mut known = known_from_credential(c);
                known.valid_until = now + 1;
                known.renew_at = i64::MAX;
                return Identified {
                    identity: Some(known.identity.clone()),
                    known: Some(Arc::new(known)),
                    ..Identified::default()
                };
            }
            RouteLoaded::Session(session) => {
                match self.live(session, now).await {
                    Ok(s) => known_from_session(&s),
                    // The provider refused the grant: the session is over.
                    Err(()) => {
                        return Identified {
                            set_cookies: cookie.clear(),
                            ..Identified::default()
                        };
                    }
                }
            }
        };
        let known = Arc::new(known);
        self.remember(key, &value, &binding, &known, now);
        Identified {
            identity: Some(known.identity.clone()),
            renew: now >= known.renew_at,
            known: Some(known),
            ..Identified::default()
        }
    }

    /// `session`, refreshed when due. `Err`: the provider refused the grant (the session
    /// was deleted). A provider outage keeps the session as it is.
    async fn live(&self, session: Session, now: i64) -> Result<Session, ()> {
        if !session.needs_refresh(now) {
            return Ok(session);
        }
        match self.refresh(session.clone(), now).await {
            Ok(Some(fresh)) => Ok(fresh),
            Ok(None) => Ok(session),
            Err(()) => {
                let _ = self.store.delete(&session.id).await;
                self.forget_decoded(&session.id);
                Err(())
            }
        }
    }

    /// The authenticate host's session on `port`, refreshed when due.
    pub(super) async fn auth_session(
        &self,
        headers: &HeaderMap,
        port: u16,
        now: i64,
    ) -> AuthSession {
        let cookie = self.names.authenticate(port);
        let Some(value) = cookie.read_unique(headers) else {
            return AuthSession::default();
        };
        let session = match self.store.load(&self.sealer, &value, now).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return AuthSession {
                    set_cookies: cookie.clear(),
                    ..AuthSession::default()
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable");
                return AuthSession {
                    store_error: Some(e),
                    ..AuthSession::default()
                };
            }
        };
        if !session.needs_refresh(now) {
            return AuthSession {
                session: Some(session),
                ..AuthSession::default()
            };
        }
        match self.refresh(session.clone(), now).await {
            Ok(Some(fresh)) => {
                // Redis: the cookie names the session, which `refresh` stored. Cookie
                // store: the cookie is the session.
                let set_cookies = if self.store.is_redis() {
                    Vec::new()
                } else {
                    match self.store.save(&self.sealer, &fresh, now).await {
                        Ok(v) => self.session_cookie(port, &v, &fresh, now),
                        Err(_) => Vec::new(),
                    }
                };
                AuthSession {
                    session: Some(fresh),
                    set_cookies,
                    ..AuthSession::default()
                }
            }
            Ok(None) => AuthSession {
                session: Some(session),
                outage: true,
                ..AuthSession::default()
            },
            Err(()) => {
                let _ = self.store.delete(&session.id).await;
                self.forget_decoded(&session.id);
                AuthSession {
                    set_cookies: cookie.clear(),
                    ..AuthSession::default()
                }
            }
        }
    }

    fn recall(
        &self,
        key: u64,
        same: impl Fn(&[u8]) -> bool,
        binding: &Binding<'_>,
        now: i64,
    ) -> Option<Arc<Known>> {
        let cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(&key)?;
        (same(entry.value.as_bytes())
            && entry.binding.is(binding)
            && now - entry.at < DECODED_FOR_SECS
            && now < entry.known.valid_until)
            .then(|| entry.known.clone())
    }

    fn remember(&self, key: u64, value: &str, binding: &Binding<'_>, known: &Arc<Known>, now: i64) {
        let mut cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= DECODED_ENTRIES {
            cache.retain(|_, e| now - e.at < DECODED_FOR_SECS);
            if cache.len() >= DECODED_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Remembered {
                value: value.into(),
                binding: binding.to_owned(),
                known: known.clone(),
                at: now,
            },
        );
    }

    /// The cache key of a cookie value: a keyed hash of its length and last bytes,
    /// where a sealed value ends in its authentication tag. Hashing kilobytes on every
    /// request would cost more than the lookup; the entry keeps the whole value and its
    /// binding and [`Auth::recall`] compares both, so two values with one key only miss.
    fn cookie_key(&self, len: usize, tail: &[u8]) -> u64 {
        self.decoded_keys.hash_one((len, tail))
    }

    /// Forgets decoded credentials of a session (sign-out).
    pub(super) fn forget_decoded(&self, session_id: &str) {
        let mut cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, e| e.known.sid != session_id);
    }

    /// Refreshes once per session at a time (with Redis: in the whole cluster, and the
    /// result is stored before the lock is released, so the next holder sees it).
    /// `Ok(None)`: provider unreachable (keep the old session); `Err`: the grant is gone
    /// (end the session).
    async fn refresh(&self, session: Session, now: i64) -> Result<Option<Session>, ()> {
        let id = session.id.clone();
        let slot = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.try_lock().is_err());
            flights.entry(session.id.clone()).or_default().clone()
        };
        let mut shared = slot.lock().await;
        if let Some((fresh, at)) = &*shared
            && now - at < REFRESH_SHARE_SECS
            && fresh.token_expires > session.token_expires
        {
            return Ok(Some(fresh.clone()));
        }
        let lock = match self.store.lock_refresh(&session.id).await {
            Ok(Some(lock)) => Some(lock),
            // Another replica is refreshing the same session: wait for its result.
            Ok(None) => {
                let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Ok(Some(s)) = self.store.load_id(&self.sealer, &session.id, now).await
                        && s.token_expires > session.token_expires
                    {
                        return Ok(Some(s));
                    }
                }
                return Ok(None);
            }
            // Redis unreachable: don't refresh (a rotated refresh token whose successor
            // can't be stored would end the session); keep the session as it is, as in a
            // provider outage — its tokens are still valid for a while.
            Err(_) if self.store.is_redis() => return Ok(None),
            Err(_) => None,
        };
        let result = self.refresh_holding(session, now).await;
        if let Some(lock) = &lock {
            self.store.unlock_refresh(&id, lock).await;
        }
        if let Ok(Some(fresh)) = &result {
            *shared = Some((fresh.clone(), now));
        }
        result
    }

    /// The refresh itself, with the lock held (when there is one).
    async fn refresh_holding(&self, mut session: Session, now: i64) -> Result<Option<Session>, ()> {
        if self.store.is_redis() {
            // Another replica may have refreshed (and rotated the refresh token) just
            // before this one took the lock. Use its result rather than the old token.
            match self.store.load_id(&self.sealer, &session.id, now).await {
                Ok(Some(s)) if s.token_expires > session.token_expires => return Ok(Some(s)),
                Ok(Some(s)) => session = s,
                Ok(None) => return Err(()),
                Err(_) => {}
            }
        }
        let refresh_token = session.refresh_token.clone().unwrap_or_default();
        let refreshed = tokio::time::timeout(
            super::session::REFRESH_LIMIT,
            self.provider.refresh(&refresh_token),
        )
        .await
        .unwrap_or_else(|_| Err(ProviderError::Unavailable("the refresh timed out".into())));
        let tokens = match refreshed {
            Ok(tokens) => tokens,
            // Only an outage keeps a session its provider did not renew: any answer
            // refusing the refresh (a revoked grant, a user an access policy no longer
            // admits, tokens that fail verification) ends it.
            Err(e @ ProviderError::Unavailable(_)) => {
                self.provider.record_outage().await;
                tracing::warn!(error = %e, "refresh failed; keeping the session for now");
                return Ok(None);
            }
            Err(e) => {
                tracing::info!(session = %short(&session.id), reason = %e,
                    "the provider refused the refresh; ending the session");
                return Err(());
            }
        };
        session.update(tokens);
        tracing::debug!(session = %short(&session.id), "tokens refreshed");
        match self.store.save_refreshed(&self.sealer, &session, now).await {
            Ok(true) => {}
            // Signed out while the refresh ran: it stays signed out.
            Ok(false) => return Err(()),
            Err(e) => tracing::warn!(error = %e, "could not store the refreshed session"),
        }
        Ok(Some(session))
    }

    /// `Set-Cookie` values storing the authenticate host's session `value` on `port`
    /// until the session ends.
    pub(super) fn session_cookie(
        &self,
        port: u16,
        value: &str,
        session: &Session,
        now: i64,
    ) -> Vec<HeaderValue> {
        set_until(&self.names.authenticate(port), value, session.expires, now)
    }

    /// `Set-Cookie` values storing `credential` for `host:port`.
    pub(super) fn route_cookie(
        &self,
        host: &str,
        port: u16,
        credential: &RouteCredential,
        now: i64,
    ) -> Vec<HeaderValue> {
        let binding = self.names.binding(host, port);
        let value = self
            .store
            .route_value(&self.sealer, credential, &binding.aad());
        set_until(
            &self.names.route(&binding),
            &value,
            credential.session_expires,
            now,
        )
    }

    /// `Set-Cookie` values clearing the credential of `host:port`.
    pub(super) fn clear_route_cookie(&self, host: &str, port: u16) -> Vec<HeaderValue> {
        self.names.route(&self.names.binding(host, port)).clear()
    }

    /// Adds the identity headers for the upstream and removes Portcullis cookies.
    pub fn decorate_upstream(
        &self,
        headers: &mut HeaderMap,
        identity: Option<&Identity>,
        route_host: &str,
        pass_identity_headers: bool,
        now: jiff::Timestamp,
    ) {
        strip_family(headers, self.names.base());
        let Some(id) = identity else {
            return;
        };
        if let Some(v) = self.assertion(id, route_host, now) {
            headers.insert(ASSERTION_HEADER, v);
        }
        if pass_identity_headers {
            let groups = id.groups.join(",");
            for (names, value) in [
                (
                    ["x-portcullis-claim-email", "x-forwarded-email"],
                    id.email.as_str(),
                ),
                (
                    ["x-portcullis-claim-user", "x-forwarded-user"],
                    id.user.as_str(),
                ),
                (
                    ["x-portcullis-claim-groups", "x-forwarded-groups"],
                    groups.as_str(),
                ),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    for name in names {
                        headers.insert(HeaderName::from_static(name), v.clone());
                    }
                }
            }
        }
        for (name, claim) in &self.claims_headers {
            let value = match claim.as_str() {
                "email" => Value::String(id.email.clone()),
                "sub" | "user" => Value::String(id.user.clone()),
                "groups" => Value::String(id.groups.join(",")),
                other => id.claims.get(other).cloned().unwrap_or(Value::Null),
            };
            let text = match value {
                Value::String(s) => s,
                Value::Null => continue,
                Value::Array(list) => list
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&text) {
                headers.insert(name.clone(), v);
            }
        }
    }

    /// The signed assertion for `id` at `route_host`. Signing costs tens of
    /// microseconds, so one assertion (valid five minutes) is reused for a minute — for
    /// exactly the same host and identity, compared in full on every hit.
    fn assertion(
        &self,
        id: &Identity,
        route_host: &str,
        now: jiff::Timestamp,
    ) -> Option<HeaderValue> {
        let key = self
            .assertion_keys
            .hash_one((route_host, &id.user, &id.email, &id.groups));
        let now_s = now.as_second();
        {
            let cache = self.assertions.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = cache.get(&key)
                && now_s < s.until
                && s.is_for(route_host, id)
            {
                return Some(s.value.clone());
            }
        }
        let mut assertion = Assertion::new(&self.authenticate_url, route_host, &id.user, now)
            .with_groups(id.groups.iter().cloned());
        if !id.email.is_empty() {
            assertion = assertion.with_email(id.email.clone());
        }
        let value = HeaderValue::from_str(&self.signer.sign(&assertion.claims())).ok()?;
        let mut cache = self.assertions.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ASSERTION_CACHE_ENTRIES {
            cache.retain(|_, s| now_s < s.until);
            if cache.len() >= ASSERTION_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Signed {
                host: route_host.into(),
                user: id.user.clone(),
                email: id.email.clone(),
                groups: id.groups.clone(),
                value: value.clone(),
                until: now_s + ASSERTION_REUSE_SECS,
            },
        );
        Some(value)
    }

    /// Whether `host:port` (canonical) is the authenticate service's.
    pub fn is_authenticate_host(&self, host: &str, port: u16) -> bool {
        host == self.authenticate_host && self.authenticate_port.is_none_or(|p| p == port)
    }
}

/// `Set-Cookie` values storing `value` in `cookie` until `until` (unix seconds).
fn set_until(
    cookie: &super::cookies::SessionCookie,
    value: &str,
    until: i64,
    now: i64,
) -> Vec<HeaderValue> {
    let max_age = Duration::from_secs((until - now).max(0) as u64);
    match cookie.set(value, Some(max_age)) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "session cookie too large; use session_store: redis://…");
            Vec::new()
        }
    }
}

/// A decoded credential in the cache, with what it was decoded from.
struct Remembered {
    value: Box<str>,
    binding: OwnedBinding,
    known: Arc<Known>,
    /// When it was decoded (unix seconds).
    at: i64,
}

/// A signed assertion in the cache, with what it was signed for.
struct Signed {
    host: Box<str>,
    user: String,
    email: String,
    groups: Vec<String>,
    value: HeaderValue,
    until: i64,
}

impl Signed {
    fn is_for(&self, host: &str, id: &Identity) -> bool {
        *self.host == *host
            && self.user == id.user
            && self.email == id.email
            && self.groups == id.groups
    }
}

fn known_from_credential(c: RouteCredential) -> Known {
    let identity = Arc::new(c.identity());
    Known {
        identity,
        sid: c.sid,
        name: c.name,
        valid_until: c.exp,
        renew_at: c.renew_at,
        session_expires: c.session_expires,
    }
}

fn known_from_session(s: &Session) -> Known {
    // With Redis the session refreshes here; look again when a refresh is due.
    let valid_until = if s.refresh_token.is_some() {
        s.token_expires - super::session::REFRESH_BEFORE
    } else {
        s.token_expires
    };
    Known {
        identity: Arc::new(s.identity()),
        sid: s.id.clone(),
        name: s.name.clone(),
        valid_until: valid_until.min(s.expires),
        renew_at: i64::MAX,
        session_expires: s.expires,
    }
}

/// How many of a cookie value's last bytes key the decoded-credential cache: a sealed
/// value ends in its authentication tag.
const COOKIE_KEY_TAIL: usize = 32;

/// One session's refresh in progress: its result and when it was obtained, shared
/// with requests that waited for it.
type Flight = Arc<tokio::sync::Mutex<Option<(Session, i64)>>>;

/// The signed identity header for upstreams.
pub const ASSERTION_HEADER: HeaderName = HeaderName::from_static("x-portcullis-jwt-assertion");

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && token.matches('.').count() == 2)
        .then_some(token.trim())
}

/// The identity a verified bearer token stands for. A token with no user — the
/// `client_credentials` grant, whose subject is the client itself — gets an empty user:
/// no identity criterion allows it, only its claims (e.g. `claim/cid`) can.
fn identity_from_claims(claims: &serde_json::Map<String, Value>) -> Identity {
    let text = |k: &str| claim_text(claims, k);
    let client = super::provider::access_token_client(claims);
    // Tokens a client got for itself (Auth0 `gty`, Entra `idtyp`, or a subject that is
    // the client): no user.
    let for_a_client = client.is_some_and(|c| c == text("sub"))
        || text("gty").split(' ').any(|g| g == "client-credentials")
        || text("idtyp") == "app";
    // Okta access tokens name the user in `uid` and the login in `sub`.
    let user = match text("uid") {
        u if !u.is_empty() => u,
        _ if for_a_client => String::new(),
        _ => text("sub"),
    };
    let email = match text("email") {
        e if e.is_empty() && !user.is_empty() && text("sub").contains('@') => text("sub"),
        e => e,
    };
    Identity {
        user,
        email,
        groups: groups_claim(claims.get("groups")),
        claims: claims.clone(),
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The first characters of a session ID, enough to follow it in logs.
pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

#[cfg(test)]
mod tests {
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
