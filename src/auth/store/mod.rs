//! Where sessions are kept: sealed in the cookie itself (no server state) or in Redis
//! ([`redis`]: one server, Sentinel or Cluster) with only a sealed session ID in the
//! cookie.
//!
//! Redis keys carry the session ID as a Cluster hash tag, so everything of one session
//! lives in one slot (and one node):
//!
//! | key | what | lifetime |
//! | --- | --- | --- |
//! | `portcullis:session:{<id>}` | the sealed session (route hosts' credentials name it) | the session's |
//! | `portcullis:session:{<id>}:refresh` | the refresh lock (a random owner token) | [`REFRESH_LOCK`] |
//! | `portcullis:session:{<id>}:handoff:<jti>` | a handoff token seen (replay guard) | the token's + 5 s |
//! | `portcullis:signed-out:{<sha256>}` | a signed-out ID token, refused as a bearer | the token's |
//!
//! Every call is bounded ([`redis::COMMAND_WAIT`]); its failure is a [`StoreError`],
//! which callers answer with a 503 — never a guess.

pub mod redis;

use self::redis::Redis;
pub use self::redis::StoreSettings;
use super::seal::{Purpose, Sealer};
use super::session::{ROUTE, ROUTE_REF, RouteCredential, SESSION_REF, Session};

/// Where sessions live.
pub enum Store {
    Cookie,
    Redis(Redis),
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

/// A session store failure (Redis unreachable, or too slow): requests with such
/// sessions are answered with a 503, never let through.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of session `id` (IDs are hex: no braces in them).
fn session_key(id: &str) -> String {
    format!("portcullis:session:{{{id}}}")
}

fn refresh_key(id: &str) -> String {
    format!("portcullis:session:{{{id}}}:refresh")
}

fn handoff_key(sid: &str, jti: &str) -> String {
    format!("portcullis:session:{{{sid}}}:handoff:{jti}")
}

fn signed_out_key(digest: &[u8; 32]) -> String {
    format!("portcullis:signed-out:{{{}}}", hex(digest))
}

impl Store {
    /// The cookie store for `None`; else starts connecting to Redis in the background
    /// (an unreachable Redis is waited for, see [`Store::answered`]).
    pub fn start(settings: Option<StoreSettings>) -> Result<Store, StoreError> {
        match settings {
            None => Ok(Store::Cookie),
            Some(s) => Ok(Store::Redis(Redis::start(s)?)),
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// With Redis, a flag that turns true once it has answered (`/readyz` waits for it).
    pub fn answered(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        match self {
            Store::Cookie => None,
            Store::Redis(r) => Some(r.answered()),
        }
    }

    /// Adds the store's metrics to `registry` (Redis only).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        if let Store::Redis(r) = self {
            r.register(registry);
        }
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
            Store::Redis(r) => {
                let ttl = (session.expires - now).max(1) as u64;
                let value = sealer.seal(Purpose::SESSION, &json);
                let mut cmd = ::redis::cmd("SET");
                cmd.arg(session_key(&session.id))
                    .arg(value)
                    .arg("EX")
                    .arg(ttl);
                r.query::<()>("save", &cmd).await?;
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
        let Store::Redis(r) = self else {
            return Ok(None);
        };
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(session_key(id));
        let stored: Option<String> = r.query("load", &cmd).await?;
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
        if let Store::Redis(r) = self {
            let mut cmd = ::redis::cmd("DEL");
            cmd.arg(session_key(session_id));
            r.query::<()>("delete", &cmd).await?;
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
            Store::Redis(r) => {
                let mut cmd = ::redis::cmd("SET");
                cmd.arg(refresh_key(session_id))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(REFRESH_LOCK.as_millis() as u64);
                let got: Option<String> = r.query("lock", &cmd).await?;
                Ok(got.map(|_| RefreshLock(token)))
            }
        }
    }

    /// Releases a refresh lock this replica holds (never another's, should this one
    /// have outlived its lock). A failure leaves the lock to expire on its own.
    pub async fn unlock_refresh(&self, session_id: &str, lock: &RefreshLock) {
        if let Store::Redis(r) = self {
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            )
            .arg(1)
            .arg(refresh_key(session_id))
            .arg(&lock.0);
            let _ = r.query::<i64>("unlock", &cmd).await;
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
        let Store::Redis(r) = self else {
            return Ok(true);
        };
        let json = serde_json::to_vec(session).expect("sessions serialize");
        let ttl = (session.expires - now).max(1) as u64;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(session_key(&session.id))
            .arg(sealer.seal(Purpose::SESSION, &json))
            .arg("XX")
            .arg("EX")
            .arg(ttl);
        let set: Option<String> = r.query("save", &cmd).await?;
        Ok(set.is_some())
    }

    /// Records a signed-out ID token (its digest) in Redis for `ttl_secs`.
    pub async fn sign_out_token(&self, digest: &[u8; 32], ttl_secs: u64) -> Result<(), StoreError> {
        let Store::Redis(r) = self else {
            return Ok(());
        };
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(signed_out_key(digest))
            .arg("1")
            .arg("EX")
            .arg(ttl_secs.max(1));
        r.query::<()>("signed_out", &cmd).await
    }

    /// Whether a token's digest was signed out (Redis; `false` with the cookie store).
    pub async fn is_token_signed_out(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        let Store::Redis(r) = self else {
            return Ok(false);
        };
        let mut cmd = ::redis::cmd("EXISTS");
        cmd.arg(signed_out_key(digest));
        let n: i64 = r.query("signed_out", &cmd).await?;
        Ok(n > 0)
    }

    /// Records a handoff token's ID (for session `sid`) in Redis; `Ok(true)` the first
    /// time it is seen anywhere in the cluster. (The cookie store has no shared state:
    /// the caller's in-memory guard is all there is.)
    pub async fn first_use_shared(
        &self,
        jti: &str,
        sid: &str,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Cookie => Ok(true),
            Store::Redis(r) => {
                let mut cmd = ::redis::cmd("SET");
                cmd.arg(handoff_key(sid, jti))
                    .arg("1")
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1));
                let set: Option<String> = r.query("handoff", &cmd).await?;
                Ok(set.is_some())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's slot of a key (CRC16/XMODEM of its hash tag, mod 16384).
    fn slot(key: &str) -> u16 {
        let tag = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                _ => key,
            },
            None => key,
        };
        let mut crc = 0u16;
        for b in tag.bytes() {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn a_sessions_keys_share_one_cluster_slot() {
        // Redis's own example: "123456789" hashes to 0x31C3.
        assert_eq!(slot("{123456789}"), 0x31c3);
        let id = "0123456789abcdef0123456789abcdef";
        let keys = [
            session_key(id),
            refresh_key(id),
            handoff_key(id, "some-jti"),
        ];
        assert!(keys.iter().all(|k| slot(k) == slot(&keys[0])), "{keys:?}");
        // Different sessions spread over the slots.
        let other = "fedcba9876543210fedcba9876543210";
        assert_ne!(slot(&session_key(id)), slot(&session_key(other)));
        assert_eq!(session_key(id), format!("portcullis:session:{{{id}}}"));
    }
}
