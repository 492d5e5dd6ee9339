//! Sessions: what a signed-in user carries, and where it is kept — sealed in the
//! cookie itself (default: no server state, any replica can read it) or in Redis with
//! only a sealed session ID in the cookie (sign-out ends it everywhere).
//!
//! A [`Session`] (tokens included) lives only on the authenticate host. Route hosts get
//! a [`RouteCredential`] bound to them (see [`super::binding`]): with the cookie store
//! it carries the identity and expires with the provider's tokens (no refresh token:
//! one refresh token, one holder); with Redis it is only the session ID, and any
//! replica refreshes the session server-side under the Redis lock. Where they are kept
//! is [`super::store`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::provider::Tokens;
use super::seal::Purpose;
use crate::policy::Identity;

pub use super::store::{REFRESH_LIMIT, RouteLoaded, Store, StoreError};

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
