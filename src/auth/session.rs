//! Sessions: what a signed-in user carries, and where it is kept — sealed in the
//! cookie itself (default: no server state, any replica can read it) or in Redis with
//! only a sealed session ID in the cookie (sign-out ends it everywhere).
//!
//! A [`Session`] (tokens included) lives only on the authenticate host. Route hosts get
//! a [`RouteCredential`] bound to them (see [`super::binding`]): with the cookie store
//! it carries the identity and expires with the provider's tokens (no refresh token:
//! one refresh token, one holder); with Redis it is only the session ID, and any
//! replica refreshes the session server-side under the Redis lock.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::provider::Tokens;
use super::seal::{Purpose, Sealer};
use crate::policy::Identity;

/// Refresh this long before the tokens expire.
pub const REFRESH_BEFORE: i64 = 60;
/// Claims too large or too private to keep in a session (they are in the ID token).
const DROPPED_CLAIMS: [&str; 6] = ["at_hash", "c_hash", "nonce", "auth_time", "amr", "jti"];
/// The sealed value in a Redis-backed session cookie is only the session ID.
pub(crate) const SESSION_REF: Purpose = Purpose::new(b"session-ref");
/// A route host's credential with the cookie store: the identity, sealed and bound.
pub(crate) const ROUTE: Purpose = Purpose::new(b"route-credential");
/// A route host's credential with Redis: the session ID, sealed and bound.
pub(crate) const ROUTE_REF: Purpose = Purpose::new(b"route-credential-ref");
/// Redis key prefix.
const REDIS_PREFIX: &str = "portcullis:session:";
/// A route credential is renewed this long before it expires at most (half its
/// lifetime when that is shorter).
pub const RENEW_BEFORE: i64 = 60;

/// A signed-in user. `Debug` leaves the tokens out.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// Random, 128 bits, hex: the Redis key and what CSRF tokens are bound to.
    pub id: String,
    pub sub: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Kept for `id_token_hint` at sign-out.
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix seconds when the provider's tokens expire; refreshed before then.
    pub token_expires: i64,
    /// Unix seconds when the session was created.
    pub issued: i64,
    /// Unix seconds when the session ends whatever happens (`cookie_expire`).
    pub expires: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &super::gate::short(&self.id))
            .field("sub", &self.sub)
            .field("email", &self.email)
            .field("token_expires", &self.token_expires)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session from freshly verified tokens.
    pub fn new(tokens: Tokens, now: i64, lifetime: Duration) -> Session {
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .expect("the system random source works");
        let mut session = Session {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            sub: String::new(),
            email: String::new(),
            name: String::new(),
            groups: Vec::new(),
            claims: Map::new(),
            id_token: String::new(),
            refresh_token: None,
            token_expires: 0,
            issued: now,
            expires: now + lifetime.as_secs() as i64,
        };
        session.update(tokens);
        session
    }

    /// Takes new tokens (after a refresh) without changing the session's ID or end.
    pub fn update(&mut self, tokens: Tokens) {
        let claims = tokens.claims;
        let text = |k: &str| claim_text(&claims, k);
        self.sub = text("sub");
        self.email = text("email");
        self.name = match text("name") {
            n if n.is_empty() => text("preferred_username"),
            n => n,
        };
        self.groups = groups_claim(claims.get("groups"));
        self.claims = claims
            .into_iter()
            .filter(|(k, _)| !DROPPED_CLAIMS.contains(&k.as_str()))
            .collect();
        self.id_token = tokens.id_token;
        if tokens.refresh_token.is_some() {
            self.refresh_token = tokens.refresh_token;
        }
        self.token_expires = tokens.expires_at;
    }

    /// Whether the provider's tokens are due for a refresh at `now`.
    pub fn needs_refresh(&self, now: i64) -> bool {
        self.refresh_token.is_some() && now >= self.token_expires - REFRESH_BEFORE
    }

    /// Whether the session can still be used at `now`. Without a refresh token the
    /// session ends with the provider's tokens.
    pub fn is_live(&self, now: i64) -> bool {
        now < self.expires && (self.refresh_token.is_some() || now < self.token_expires)
    }

    /// The identity policies see.
    pub fn identity(&self) -> Identity {
        Identity {
            user: self.sub.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            claims: self.claims.clone(),
        }
    }
}

// === impl RouteCredential ===

/// What a route host knows of a session: who, and until when. Sealed into the route
/// host's cookie with the cookie store; with Redis only `sid` matters there, and the
/// rest is read from the stored session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteCredential {
    /// The session's ID: what sign-out and CSRF tokens are bound to.
    pub sid: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// Unix seconds after which the credential needs renewing through the
    /// authenticate host (the provider's tokens expire then).
    pub exp: i64,
    /// Unix seconds from which browsers are sent for a fresh credential.
    pub renew_at: i64,
    /// Unix seconds when the session ends whatever happens.
    pub session_expires: i64,
}

impl RouteCredential {
    /// The credential for `session` as of `now`. `exp` is when the provider's tokens
    /// expire — or, while the provider cannot be reached (`outage`), a short grace
    /// within the session's own end.
    pub fn of(session: &Session, now: i64, outage: Option<i64>) -> RouteCredential {
        let exp = match outage {
            Some(grace) if session.token_expires <= now + RENEW_BEFORE.min(grace) => {
                (now + grace).min(session.expires)
            }
            _ => session.token_expires.min(session.expires),
        };
        // Without a refresh token nothing renews the session: it ends at `exp`, and a
        // bounce before then would only hand back the same end.
        let renew_at = if session.refresh_token.is_some() {
            exp - RENEW_BEFORE.min((exp - now).max(0) / 2)
        } else {
            exp
        };
        RouteCredential {
            sid: session.id.clone(),
            sub: session.sub.clone(),
            email: session.email.clone(),
            name: session.name.clone(),
            groups: session.groups.clone(),
            claims: session.claims.clone(),
            exp,
            renew_at,
            session_expires: session.expires,
        }
    }

    pub fn identity(&self) -> Identity {
        Identity {
            user: self.sub.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            claims: self.claims.clone(),
        }
    }
}

/// A string claim, or `""` when it is absent or not a string.
pub fn claim_text(claims: &serde_json::Map<String, Value>, name: &str) -> String {
    claims
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Okta sends `groups` as a list; some providers send one string.
pub fn groups_claim(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

// === impl Store ===

/// Where sessions live.
pub enum Store {
    Cookie,
    Redis(redis::aio::ConnectionManager),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a refresh lock lasts before it expires on its own.
pub const REFRESH_LOCK: std::time::Duration = std::time::Duration::from_secs(30);
/// The longest a refresh may take (a token request, key refetch and userinfo call).
pub const REFRESH_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// A held refresh lock: the random value only its holder knows.
pub struct RefreshLock(String);

/// What a route credential refers to.
#[derive(Debug)]
pub enum RouteLoaded {
    /// Cookie store: the credential itself.
    Credential(RouteCredential),
    /// Redis: the live session.
    Session(Session),
}

/// A session store failure (Redis unreachable): requests with such sessions are
/// answered with a 503, never let through.
#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct StoreError(pub String);

impl Store {
    /// Connects to Redis for `redis://…` URLs (the connection manager reconnects on its own).
    pub async fn connect(url: Option<&str>) -> Result<Store, StoreError> {
        let Some(url) = url else {
            return Ok(Store::Cookie);
        };
        let client = redis::Client::open(url).map_err(|e| StoreError(e.to_string()))?;
        let manager = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| StoreError(format!("cannot connect to Redis: {e}")))?;
        Ok(Store::Redis(manager))
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Stores `session` and returns the cookie value that refers to it.
    pub async fn save(
        &self,
        sealer: &Sealer,
        session: &Session,
        now: i64,
    ) -> Result<String, StoreError> {
        let json = serde_json::to_vec(session).expect("sessions serialize");
        match self {
            Store::Cookie => Ok(sealer.seal(Purpose::SESSION, &json)),
            Store::Redis(conn) => {
                let ttl = (session.expires - now).max(1) as u64;
                let value = sealer.seal(Purpose::SESSION, &json);
                let mut conn = conn.clone();
                redis::cmd("SET")
                    .arg(format!("{REDIS_PREFIX}{}", session.id))
                    .arg(value)
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                Ok(sealer.seal(SESSION_REF, session.id.as_bytes()))
            }
        }
    }

    /// The live session a cookie value refers to; `Ok(None)` when there is none (bad,
    /// tampered, expired, signed out).
    pub async fn load(
        &self,
        sealer: &Sealer,
        cookie: &str,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let json = match self {
            Store::Cookie => match sealer.open(Purpose::SESSION, cookie) {
                Ok(json) => json,
                Err(_) => return Ok(None),
            },
            Store::Redis(_) => {
                let Ok(id) = sealer.open(SESSION_REF, cookie) else {
                    return Ok(None);
                };
                let Ok(id) = String::from_utf8(id) else {
                    return Ok(None);
                };
                return self.load_id(sealer, &id, now).await;
            }
        };
        Ok(serde_json::from_slice::<Session>(&json)
            .ok()
            .filter(|s| s.is_live(now)))
    }

    /// The cookie value of a route credential bound to `binding` (its AEAD data).
    pub fn route_value(
        &self,
        sealer: &Sealer,
        credential: &RouteCredential,
        binding: &[u8],
    ) -> String {
        match self {
            Store::Cookie => {
                let json = serde_json::to_vec(credential).expect("credentials serialize");
                sealer.seal_bound(ROUTE, binding, &json)
            }
            Store::Redis(_) => sealer.seal_bound(ROUTE_REF, binding, credential.sid.as_bytes()),
        }
    }

    /// What a route host's cookie value refers to, when it opens under `binding`:
    /// the credential itself (cookie store) or the stored session (Redis; `None` once it
    /// ended). `Ok(None)`: bad, tampered, bound elsewhere, or ended.
    pub async fn load_route(
        &self,
        sealer: &Sealer,
        value: &str,
        binding: &[u8],
        now: i64,
    ) -> Result<Option<RouteLoaded>, StoreError> {
        match self {
            Store::Cookie => Ok(sealer
                .open_bound(ROUTE, binding, value)
                .ok()
                .and_then(|json| serde_json::from_slice::<RouteCredential>(&json).ok())
                .filter(|c| now < c.session_expires)
                .map(RouteLoaded::Credential)),
            Store::Redis(_) => {
                let Some(id) = sealer
                    .open_bound(ROUTE_REF, binding, value)
                    .ok()
                    .and_then(|id| String::from_utf8(id).ok())
                else {
                    return Ok(None);
                };
                Ok(self
                    .load_id(sealer, &id, now)
                    .await?
                    .map(RouteLoaded::Session))
            }
        }
    }

    /// The live session stored under `id` (Redis); `Ok(None)` with the cookie store.
    pub async fn load_id(
        &self,
        sealer: &Sealer,
        id: &str,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let Store::Redis(conn) = self else {
            return Ok(None);
        };
        let mut conn = conn.clone();
        let stored: Option<String> = redis::cmd("GET")
            .arg(format!("{REDIS_PREFIX}{id}"))
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(stored
            .and_then(|s| sealer.open(Purpose::SESSION, &s).ok())
            .and_then(|json| serde_json::from_slice::<Session>(&json).ok())
            .filter(|s| s.id == id && s.is_live(now)))
    }

    /// The session ID an authenticate-host cookie value names, live or not (sign-out
    /// compares it with the intent's).
    pub fn session_id(&self, sealer: &Sealer, cookie: &str) -> Option<String> {
        match self {
            Store::Cookie => sealer
                .open(Purpose::SESSION, cookie)
                .ok()
                .and_then(|json| serde_json::from_slice::<Session>(&json).ok())
                .map(|s| s.id),
            Store::Redis(_) => sealer
                .open(SESSION_REF, cookie)
                .ok()
                .and_then(|id| String::from_utf8(id).ok()),
        }
    }

    /// Ends a session for good (Redis); with cookies, clearing the cookie is all there is.
    pub async fn delete(&self, session_id: &str) -> Result<(), StoreError> {
        if let Store::Redis(conn) = self {
            let mut conn = conn.clone();
            redis::cmd("DEL")
                .arg(format!("{REDIS_PREFIX}{session_id}"))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| StoreError(e.to_string()))?;
        }
        Ok(())
    }

    /// Takes the cluster-wide refresh lock for a session (Redis); `Some` when this
    /// replica should refresh. The lock expires on its own after [`REFRESH_LOCK`];
    /// refreshes are bounded well below that ([`REFRESH_LIMIT`]).
    pub async fn lock_refresh(&self, session_id: &str) -> Result<Option<RefreshLock>, StoreError> {
        let token = super::csrf::random_state();
        match self {
            Store::Cookie => Ok(Some(RefreshLock(token))),
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let got: Option<String> = redis::cmd("SET")
                    .arg(format!("{REDIS_PREFIX}{session_id}:refresh"))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(REFRESH_LOCK.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                Ok(got.map(|_| RefreshLock(token)))
            }
        }
    }

    /// Releases a refresh lock this replica holds (never another's, should this one
    /// have outlived its lock).
    pub async fn unlock_refresh(&self, session_id: &str, lock: &RefreshLock) {
        if let Store::Redis(conn) = self {
            let mut conn = conn.clone();
            let script = redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            );
            let _ = script
                .key(format!("{REDIS_PREFIX}{session_id}:refresh"))
                .arg(&lock.0)
                .invoke_async::<i64>(&mut conn)
                .await;
        }
    }

    /// Stores a refreshed session only if it still exists (a sign-out during the
    /// refresh stays a sign-out). `Ok(false)`: it was gone. The cookie store keeps
    /// nothing, so it always "exists".
    pub async fn save_refreshed(
        &self,
        sealer: &Sealer,
        session: &Session,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Store::Redis(conn) = self else {
            return Ok(true);
        };
        let json = serde_json::to_vec(session).expect("sessions serialize");
        let ttl = (session.expires - now).max(1) as u64;
        let mut conn = conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{REDIS_PREFIX}{}", session.id))
            .arg(sealer.seal(Purpose::SESSION, &json))
            .arg("XX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(set.is_some())
    }

    /// Records a signed-out ID token (its digest) in Redis for `ttl_secs`.
    pub async fn sign_out_token(&self, digest: &[u8; 32], ttl_secs: u64) -> Result<(), StoreError> {
        let Store::Redis(conn) = self else {
            return Ok(());
        };
        let mut conn = conn.clone();
        redis::cmd("SET")
            .arg(format!("portcullis:signed-out:{}", hex(digest)))
            .arg("1")
            .arg("EX")
            .arg(ttl_secs.max(1))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    /// Whether a token's digest was signed out (Redis; `false` with the cookie store).
    pub async fn is_token_signed_out(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        let Store::Redis(conn) = self else {
            return Ok(false);
        };
        let mut conn = conn.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("portcullis:signed-out:{}", hex(digest)))
            .query_async(&mut conn)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(n > 0)
    }

    /// Records a handoff token's ID in Redis; `Ok(true)` the first time it is seen
    /// anywhere in the cluster. (The cookie store has no shared state: the caller's
    /// in-memory guard is all there is.)
    pub async fn first_use_shared(&self, jti: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        match self {
            Store::Cookie => Ok(true),
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let set: Option<String> = redis::cmd("SET")
                    .arg(format!("portcullis:handoff:{jti}"))
                    .arg("1")
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| StoreError(e.to_string()))?;
                Ok(set.is_some())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(groups: Value, refresh: Option<&str>, exp: i64) -> Tokens {
        let claims = serde_json::json!({
            "sub": "00u1", "email": "ada@example.com", "preferred_username": "ada",
            "groups": groups, "nonce": "n", "custom": {"team": "ops"},
        });
        Tokens {
            id_token: "header.payload.sig".into(),
            refresh_token: refresh.map(str::to_string),
            expires_at: exp,
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn sessions_take_identity_from_claims() {
        let s = Session::new(
            tokens(serde_json::json!(["admin", "ops"]), Some("r"), 1000),
            0,
            Duration::from_secs(3600),
        );
        assert_eq!(s.id.len(), 32);
        assert_eq!(
            (s.sub.as_str(), s.email.as_str(), s.name.as_str()),
            ("00u1", "ada@example.com", "ada")
        );
        assert_eq!(s.groups, ["admin", "ops"]);
        assert!(!s.claims.contains_key("nonce"));
        assert_eq!(s.identity().claims["custom"]["team"], "ops");
        assert_eq!(groups_claim(Some(&serde_json::json!("solo"))), ["solo"]);
        assert!(groups_claim(None).is_empty());
    }

    #[test]
    fn refresh_and_liveness() {
        let mut s = Session::new(
            tokens(Value::Null, Some("r1"), 1000),
            0,
            Duration::from_secs(5000),
        );
        assert!(!s.needs_refresh(900));
        assert!(s.needs_refresh(1000 - REFRESH_BEFORE));
        assert!(s.is_live(4999) && !s.is_live(5000));
        // A refresh keeps the ID, takes the new expiry, keeps the old refresh token when
        // the provider does not rotate it.
        let id = s.id.clone();
        s.update(tokens(Value::Null, None, 2000));
        assert_eq!((s.id.as_str(), s.token_expires), (id.as_str(), 2000));
        assert_eq!(s.refresh_token.as_deref(), Some("r1"));
        // Without a refresh token the session ends with the tokens.
        let s = Session::new(
            tokens(Value::Null, None, 1000),
            0,
            Duration::from_secs(5000),
        );
        assert!(s.is_live(999) && !s.is_live(1000));
    }
}
