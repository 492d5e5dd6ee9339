//! The sign-in gate the proxy asks on every request: who is this (session cookie or
//! bearer token, refreshed when due), how to send them to sign in, and what identity
//! to hand the upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::cookies::{SameSite, SessionCookie};
use super::handoff::{HandoffCodec, ReplayGuard};
use super::jwt::{Assertion, SigningKey};
use super::keys::CookieSecret;
use super::provider::{Provider, ProviderError, ProviderSettings};
use super::seal::Sealer;
use super::session::{Session, Store, StoreError, claim_text, groups_claim};
use crate::policy::Identity;

/// The flow cookie (PKCE verifier, nonce, state, return URL) lives this long.
pub const SIGN_IN_FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// A refresh result is shared with concurrent requests of the same session this long.
const REFRESH_SHARE_SECS: i64 = 30;
/// How long a request waits for another replica's refresh (Redis lock) before using
/// the session as it is.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// A decoded session is reused this long. With Redis, a sign-out on another replica
/// therefore takes effect here within this many seconds.
const DECODED_FOR_SECS: i64 = 5;
/// Decoded sessions kept at most.
const DECODED_ENTRIES: usize = 10_000;
/// An assertion is reused this long (it is valid for five minutes).
const ASSERTION_REUSE_SECS: i64 = 60;
/// Assertions kept for reuse at most.
const ASSERTION_CACHE_ENTRIES: usize = 10_000;
/// Handoff tokens remembered against replay (each lives 60 s).
const REPLAY_CAPACITY: usize = 100_000;

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
    /// `redis://…` for server-side sessions; `None` keeps them in the cookie.
    pub session_store: Option<String>,
    /// Default for routes: also send `X-Portcullis-Claim-*` and `X-Forwarded-*` headers.
    pub jwt_claims_headers: Vec<(HeaderName, String)>,
}

/// The sign-in machinery, shared by every connection.
pub struct Auth {
    pub(super) authenticate_url: String,
    pub(super) authenticate_host: String,
    pub(super) provider: Provider,
    pub(super) sealer: Sealer,
    pub(super) handoff: HandoffCodec,
    pub(super) replay: ReplayGuard,
    pub(super) csrf: super::csrf::Csrf,
    pub(super) cookie: SessionCookie,
    pub(super) flow_cookie: SessionCookie,
    pub(super) lifetime: Duration,
    pub(super) store: Store,
    pub(super) signer: SigningKey,
    claims_headers: Vec<(HeaderName, String)>,
    flights: Mutex<HashMap<String, Flight>>,
    /// Recently signed assertions by identity and route host.
    assertions: Mutex<HashMap<u64, (HeaderValue, i64)>>,
    /// Recently decoded sessions by [`Auth::cookie_key`], each with the exact cookie
    /// value it was decoded from (decrypting and parsing a session on every request
    /// costs more than the rest of the request).
    decoded: Mutex<HashMap<u64, (Box<str>, Decoded)>>,
    decoded_keys: std::hash::RandomState,
}

/// Who a request comes from, and cookies to set on the response.
#[derive(Default)]
pub struct Identified {
    pub session: Option<Arc<Session>>,
    /// The identity for policies: from the session or a verified bearer token.
    pub identity: Option<Arc<Identity>>,
    /// `Set-Cookie` values: a refreshed session, or clearing an ended one.
    pub set_cookies: Vec<HeaderValue>,
    /// The session store could not be read: answer 503, never guess.
    pub store_error: Option<StoreError>,
    /// The cookie value that refers to `session` (new when it was refreshed).
    pub cookie_value: Option<String>,
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
            .to_ascii_lowercase();
        let keys = settings.cookie_secret.derive();
        let mut cookie =
            SessionCookie::new(&settings.cookie_name)?.with_same_site(settings.cookie_same_site);
        if let Some(domain) = &settings.cookie_domain {
            cookie = cookie.with_domain(domain)?;
        }
        // The flow cookie must survive the provider's top-level redirect back: Lax.
        let flow_cookie = SessionCookie::new(&format!("{}_flow", settings.cookie_name))?
            .with_same_site(SameSite::Lax);
        let store = Store::connect(settings.session_store.as_deref()).await?;
        Ok(Auth {
            authenticate_url: settings.authenticate_url.trim_end_matches('/').to_string(),
            authenticate_host,
            provider: Provider::new(settings.provider)?,
            sealer: Sealer::new(&keys.session),
            handoff: HandoffCodec::new(&keys.handoff),
            replay: ReplayGuard::new(REPLAY_CAPACITY),
            csrf: super::csrf::Csrf::new(&keys.csrf),
            cookie,
            flow_cookie,
            lifetime: settings.cookie_expire,
            store,
            signer: settings.signing_key,
            claims_headers: settings.jwt_claims_headers,
            flights: Mutex::new(HashMap::new()),
            assertions: Mutex::new(HashMap::new()),
            decoded: Mutex::new(HashMap::new()),
            decoded_keys: std::hash::RandomState::new(),
        })
    }

    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Finds the caller: a bearer token from our provider, else the session cookie
    /// (refreshing the provider's tokens when they are due).
    pub async fn identify(&self, headers: &HeaderMap, now: i64) -> Identified {
        // The paths that talk to the provider or the session store are boxed: they are
        // rare (a cache miss, a refresh, a bearer token) and their futures are large,
        // and an unboxed one would make every request's future as large.
        if let Some(token) = bearer(headers) {
            return match Box::pin(self.provider.verify_bearer(token)).await {
                Ok(claims) => Identified {
                    identity: Some(Arc::new(identity_from_claims(&claims))),
                    ..Identified::default()
                },
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    Identified::default()
                }
            };
        }
        let Some(pieces) = self.cookie.pieces(headers) else {
            return Identified::default();
        };
        // The common case: the same cookie was decoded a moment ago. Compared and hashed
        // in place, without joining its chunks.
        if let Some((session, identity)) = self.recall_pieces(&pieces, now) {
            return Identified {
                identity: Some(identity),
                session: Some(session),
                ..Identified::default()
            };
        }
        match pieces.value() {
            Some(value) => Box::pin(self.live_session(value, now)).await,
            None => Identified::default(),
        }
    }

    /// The live session a cookie value refers to, refreshed when due; ended sessions
    /// come back as clearing cookies.
    pub(super) async fn live_session(&self, value: String, now: i64) -> Identified {
        if let Some((session, identity)) = self.recall(&value, now) {
            return Identified {
                identity: Some(identity),
                session: Some(session),
                cookie_value: Some(value),
                ..Identified::default()
            };
        }
        let session = match self.store.load(&self.sealer, &value, now).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Identified {
                    set_cookies: self.cookie.clear(),
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
        if !session.needs_refresh(now) {
            let identity = Arc::new(session.identity());
            let session = Arc::new(session);
            self.remember(&value, &session, &identity, now);
            return Identified {
                identity: Some(identity),
                session: Some(session),
                cookie_value: Some(value),
                ..Identified::default()
            };
        }
        match self.refresh(session.clone(), now).await {
            Ok(Some(fresh)) => {
                let (set_cookies, value) = match self.store.save(&self.sealer, &fresh, now).await {
                    Ok(v) => (self.session_cookie(&v, &fresh, now), v),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not store the refreshed session");
                        (Vec::new(), value)
                    }
                };
                Identified {
                    identity: Some(Arc::new(fresh.identity())),
                    session: Some(Arc::new(fresh)),
                    cookie_value: Some(value),
                    set_cookies,
                    store_error: None,
                }
            }
            // The provider is unreachable: keep the session until it expires.
            Ok(None) => Identified {
                identity: Some(Arc::new(session.identity())),
                session: Some(Arc::new(session)),
                cookie_value: Some(value),
                ..Identified::default()
            },
            Err(()) => {
                let _ = self.store.delete(&session.id).await;
                Identified {
                    set_cookies: self.cookie.clear(),
                    ..Identified::default()
                }
            }
        }
    }

    /// A session decoded from this exact cookie value in the last few seconds, still
    /// live and not due for a refresh.
    fn recall(&self, value: &str, now: i64) -> Option<(Arc<Session>, Arc<Identity>)> {
        let key = self.cookie_key(value.len(), tail(value.as_bytes()));
        self.recall_by(key, |seen| seen == value.as_bytes(), now)
    }

    fn recall_pieces(
        &self,
        pieces: &crate::auth::cookies::Pieces<'_>,
        now: i64,
    ) -> Option<(Arc<Session>, Arc<Identity>)> {
        let (last, filled) = pieces.tail::<COOKIE_KEY_TAIL>();
        let key = self.cookie_key(pieces.len(), &last[COOKIE_KEY_TAIL - filled..]);
        self.recall_by(key, |seen| pieces.eq_bytes(seen), now)
    }

    fn recall_by(
        &self,
        key: u64,
        same: impl Fn(&[u8]) -> bool,
        now: i64,
    ) -> Option<(Arc<Session>, Arc<Identity>)> {
        let cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, (session, identity, at)) = cache.get(&key)?;
        (same(seen.as_bytes())
            && now - at < DECODED_FOR_SECS
            && session.is_live(now)
            && !session.needs_refresh(now))
        .then(|| (session.clone(), identity.clone()))
    }

    fn remember(&self, value: &str, session: &Arc<Session>, identity: &Arc<Identity>, now: i64) {
        let key = self.cookie_key(value.len(), tail(value.as_bytes()));
        let mut cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= DECODED_ENTRIES {
            cache.retain(|_, (_, (_, _, at))| now - *at < DECODED_FOR_SECS);
            if cache.len() >= DECODED_ENTRIES {
                cache.clear();
            }
        }
        let entry = (session.clone(), identity.clone(), now);
        cache.insert(key, (value.into(), entry));
    }

    /// The cache key of a cookie value: a keyed hash of its length and last bytes,
    /// where a sealed value ends in its authentication tag. Hashing kilobytes on every
    /// request would cost more than the lookup; the entry keeps the whole value and
    /// [`Auth::recall`] compares it, so two values with one key only miss.
    fn cookie_key(&self, len: usize, tail: &[u8]) -> u64 {
        std::hash::BuildHasher::hash_one(&self.decoded_keys, (len, tail))
    }

    /// Forgets decoded sessions (sign-out).
    pub(super) fn forget_decoded(&self, session_id: &str) {
        let mut cache = self.decoded.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (_, (s, _, _))| s.id != session_id);
    }

    /// Refreshes once per session at a time. `Ok(None)`: provider unreachable (keep
    /// the old session); `Err`: the grant is gone (end the session).
    async fn refresh(&self, mut session: Session, now: i64) -> Result<Option<Session>, ()> {
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
        // Another replica may be refreshing the same Redis session: wait for its result.
        if self.store.is_redis() && !self.store.lock_refresh(&session.id).await.unwrap_or(true) {
            let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(Some(s)) = self.reload(&session.id, now).await
                    && s.token_expires > session.token_expires
                {
                    return Ok(Some(s));
                }
            }
            return Ok(None);
        }
        let refresh_token = session.refresh_token.clone().unwrap_or_default();
        let result = self.provider.refresh(&refresh_token).await;
        self.store.unlock_refresh(&session.id).await;
        match result {
            Ok(tokens) => {
                session.update(tokens);
                tracing::debug!(session = %short(&session.id), "tokens refreshed");
                *shared = Some((session.clone(), now));
                Ok(Some(session))
            }
            Err(ProviderError::InvalidGrant(e)) => {
                tracing::info!(session = %short(&session.id), reason = %e,
                    "the provider refused the refresh token; ending the session");
                Err(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "refresh failed; keeping the session for now");
                Ok(None)
            }
        }
    }

    /// Reads a Redis session by ID (after another replica refreshed it).
    async fn reload(&self, id: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let value = self.store_ref(id);
        self.store.load(&self.sealer, &value, now).await
    }

    fn store_ref(&self, id: &str) -> String {
        self.sealer.seal(super::session::SESSION_REF, id.as_bytes())
    }

    /// `Set-Cookie` values storing `value` until the session ends.
    pub(super) fn session_cookie(
        &self,
        value: &str,
        session: &Session,
        now: i64,
    ) -> Vec<HeaderValue> {
        let max_age = Duration::from_secs((session.expires - now).max(0) as u64);
        match self.cookie.set(value, Some(max_age)) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "session cookie too large; use session_store: redis://…");
                Vec::new()
            }
        }
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
        self.cookie.strip(headers);
        self.flow_cookie.strip(headers);
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
    /// microseconds, so one assertion (valid five minutes) is reused for a minute.
    fn assertion(
        &self,
        id: &Identity,
        route_host: &str,
        now: jiff::Timestamp,
    ) -> Option<HeaderValue> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (route_host, &id.user, &id.email, &id.groups).hash(&mut h);
        let key = h.finish();
        let now_s = now.as_second();
        {
            let cache = self.assertions.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((v, until)) = cache.get(&key)
                && now_s < *until
            {
                return Some(v.clone());
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
            cache.retain(|_, (_, until)| now_s < *until);
            if cache.len() >= ASSERTION_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (value.clone(), now_s + ASSERTION_REUSE_SECS));
        Some(value)
    }

    /// Whether `host` is the authenticate service's.
    pub fn is_authenticate_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.authenticate_host)
    }
}

/// A decoded session, its identity, and when it was decoded (unix seconds).
type Decoded = (Arc<Session>, Arc<Identity>, i64);

/// How many of a cookie value's last bytes key the decoded-session cache: a sealed
/// value ends in its authentication tag.
const COOKIE_KEY_TAIL: usize = 32;

fn tail(value: &[u8]) -> &[u8] {
    &value[value.len().saturating_sub(COOKIE_KEY_TAIL)..]
}

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

fn identity_from_claims(claims: &serde_json::Map<String, Value>) -> Identity {
    let text = |k: &str| claim_text(claims, k);
    // Okta access tokens name the user in `uid` and the login in `sub`.
    let user = match text("uid") {
        u if u.is_empty() => text("sub"),
        u => u,
    };
    let email = match text("email") {
        e if e.is_empty() && text("sub").contains('@') => text("sub"),
        e => e,
    };
    Identity {
        user,
        email,
        groups: groups_claim(claims.get("groups")),
        claims: claims.clone(),
    }
}

/// The first characters of a session ID, enough to follow it in logs.
pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}
