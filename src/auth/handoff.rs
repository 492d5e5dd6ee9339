//! The sign-in handoff: after the IdP callback on the authenticate host, the browser is
//! sent to the route host's `/.portcullis/callback` with a token that carries the
//! session there. The token is sealed ([`Purpose::HANDOFF`], under the handoff subkey),
//! bound to one target host, lives at most [`HANDOFF_TTL`], and is single-use through
//! a [`ReplayGuard`].
//!
//! Payload inside the seal (big-endian):
//!
//! ```text
//! expires_at: i64 unix seconds | jti: 16 bytes | host_len: u16 | host |
//! path_len: u16 | return path | session: the rest
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

use super::keys::{SubKey, fill_random};
use super::redirect::is_safe_path;
use super::seal::{Purpose, Sealer};

/// How long a handoff token is valid.
pub const HANDOFF_TTL: Duration = Duration::from_secs(60);
/// How far ahead of a verifying replica's clock the issuing replica's may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);
/// Used jtis remembered by default by [`ReplayGuard::default`]; at most about
/// 100 bytes each.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// Malformed, tampered with, or not sealed by us. No detail, deliberately.
    #[error("invalid sign-in handoff token")]
    Invalid,
    #[error("the sign-in handoff token has expired")]
    Expired,
    #[error("the sign-in handoff token is for another host")]
    WrongHost,
    /// Issuing only: the host or return path can't be carried safely.
    #[error("refusing to issue a handoff to an invalid host or return path")]
    BadTarget,
}

/// What a verified handoff token carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The session (a sealed session, or a session ID with a server-side store).
    pub session: Vec<u8>,
    /// The route host the token was issued for (as given to [`HandoffCodec::issue`]).
    pub host: String,
    /// Where to send the browser on that host; always passes [`is_safe_path`].
    pub return_path: String,
    pub expires_at: Timestamp,
    /// 128 random bits, lowercase hex: the key for [`ReplayGuard::first_use`].
    pub jti: String,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("session", &format_args!("[{} bytes]", self.session.len()))
            .field("host", &self.host)
            .field("return_path", &self.return_path)
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti)
            .finish()
    }
}

// === impl HandoffCodec ===

/// Issues and verifies handoff tokens under the handoff subkey.
#[derive(Debug)]
pub struct HandoffCodec {
    sealer: Sealer,
}

impl HandoffCodec {
    pub fn new(key: &SubKey) -> HandoffCodec {
        HandoffCodec {
            sealer: Sealer::new(key),
        }
    }

    /// A token that hands `session` to `host` (compared ASCII case-insensitively on
    /// verify; pass it the way the verifier will) and then sends the browser to
    /// `return_path`, valid from `now` for [`HANDOFF_TTL`]. URL-safe as it is.
    pub fn issue(
        &self,
        session: &[u8],
        host: &str,
        return_path: &str,
        now: Timestamp,
    ) -> Result<String, HandoffError> {
        if host.is_empty()
            || host.len() > usize::from(u16::MAX)
            || return_path.len() > usize::from(u16::MAX)
            || !is_safe_path(return_path)
        {
            return Err(HandoffError::BadTarget);
        }
        let expires_at = now.as_second() + HANDOFF_TTL.as_secs() as i64;
        let mut jti = [0u8; 16];
        fill_random(&mut jti);
        let mut payload =
            Vec::with_capacity(8 + 16 + 4 + host.len() + return_path.len() + session.len());
        payload.extend_from_slice(&expires_at.to_be_bytes());
        payload.extend_from_slice(&jti);
        for field in [host.as_bytes(), return_path.as_bytes()] {
            payload.extend_from_slice(&(field.len() as u16).to_be_bytes());
            payload.extend_from_slice(field);
        }
        payload.extend_from_slice(session);
        Ok(self.sealer.seal(Purpose::HANDOFF, &payload))
    }

    /// Opens `token` and checks it was issued for `expected_host` and is unexpired at
    /// `now`. Single use is the caller's next step: [`ReplayGuard::first_use`].
    pub fn verify(
        &self,
        token: &str,
        expected_host: &str,
        now: Timestamp,
    ) -> Result<Handoff, HandoffError> {
        let payload = self
            .sealer
            .open(Purpose::HANDOFF, token)
            .map_err(|_| HandoffError::Invalid)?;
        let handoff = decode(&payload).ok_or(HandoffError::Invalid)?;
        if !handoff.host.eq_ignore_ascii_case(expected_host) {
            return Err(HandoffError::WrongHost);
        }
        let exp = handoff.expires_at.as_second();
        if now.as_second() >= exp {
            return Err(HandoffError::Expired);
        }
        // Valid for longer than we ever issue: not from a replica of ours.
        if exp > now.as_second() + (HANDOFF_TTL + MAX_CLOCK_SKEW).as_secs() as i64 {
            return Err(HandoffError::Invalid);
        }
        Ok(handoff)
    }
}

fn decode(payload: &[u8]) -> Option<Handoff> {
    let (exp, rest) = payload.split_first_chunk::<8>()?;
    let (jti, rest) = rest.split_first_chunk::<16>()?;
    let (host, rest) = take_field(rest)?;
    let (return_path, session) = take_field(rest)?;
    let return_path = String::from_utf8(return_path.to_vec()).ok()?;
    if !is_safe_path(&return_path) {
        return None;
    }
    Some(Handoff {
        session: session.to_vec(),
        host: String::from_utf8(host.to_vec()).ok()?,
        return_path,
        expires_at: Timestamp::from_second(i64::from_be_bytes(*exp)).ok()?,
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

fn take_field(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

// === impl ReplayGuard ===

/// Remembers used handoff jtis until they expire, so each token is accepted once.
///
/// In memory, per process: with several replicas a token could be replayed on another
/// replica within its [`HANDOFF_TTL`] (the thief would need the token itself, which
/// travels only in the victim's redirect). A Redis-backed guard closes that gap when
/// `session_store` is Redis.
///
/// Bounded: when `capacity` unexpired jtis are remembered, new ones are refused (sign-in
/// fails closed) rather than forgetting one that could then be replayed. Expired
/// entries are dropped on every call.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    expiry_by_jti: HashMap<String, i64>,
    /// Earliest expiry first.
    queue: BinaryHeap<Reverse<(i64, String)>>,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            capacity,
            inner: Mutex::default(),
        }
    }

    /// `true` the first time `jti` is seen before `expires_at`; `false` on a replay,
    /// for an already expired token, or when full.
    pub fn first_use(&self, jti: &str, expires_at: Timestamp, now: Timestamp) -> bool {
        let (exp, now) = (expires_at.as_second(), now.as_second());
        // A panic elsewhere can't leave the sets inconsistent in a way that matters.
        let mut seen = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(Reverse((e, _))) = seen.queue.peek()
            && *e <= now
        {
            let Some(Reverse((_, old))) = seen.queue.pop() else {
                break;
            };
            seen.expiry_by_jti.remove(&old);
        }
        if exp <= now
            || seen.expiry_by_jti.contains_key(jti)
            || seen.expiry_by_jti.len() >= self.capacity
        {
            return false;
        }
        seen.expiry_by_jti.insert(jti.to_string(), exp);
        seen.queue.push(Reverse((exp, jti.to_string())));
        true
    }

    /// Unexpired jtis remembered (as of the last call).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expiry_by_jti
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ReplayGuard {
    fn default() -> ReplayGuard {
        ReplayGuard::new(DEFAULT_REPLAY_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::auth::keys::CookieSecret;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn codec() -> (HandoffCodec, crate::auth::keys::Keys) {
        let keys = CookieSecret::generate().derive();
        (HandoffCodec::new(&keys.handoff), keys)
    }

    #[test]
    fn round_trip() {
        let (c, _) = codec();
        for session in [&b""[..], b"sid-123", &[7u8; 4000]] {
            let token = c
                .issue(session, "app.example.com", "/x?y=1", at(1000))
                .unwrap();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            let h = c.verify(&token, "APP.example.com", at(1030)).unwrap();
            assert_eq!(h.session, session);
            assert_eq!(h.host, "app.example.com");
            assert_eq!(h.return_path, "/x?y=1");
            assert_eq!(h.expires_at, at(1060));
            assert_eq!(h.jti.len(), 32);
        }
    }

    #[test]
    fn verify_refusals() {
        let (c, keys) = codec();
        let token = c.issue(b"s", "app.example.com", "/", at(1000)).unwrap();
        let other_codec = codec().0;
        let as_session = Sealer::new(&keys.handoff).seal(Purpose::SESSION, b"whatever");
        let far_future = c
            .issue(b"s", "app.example.com", "/", at(1000 + 3600))
            .unwrap();
        for (name, token, host, now, want) in [
            (
                "wrong host",
                token.as_str(),
                "evil.example.com",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "host suffix",
                &token,
                "app.example.com.evil",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "host with port",
                &token,
                "app.example.com:443",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "expired at exp",
                &token,
                "app.example.com",
                1060,
                HandoffError::Expired,
            ),
            (
                "expired later",
                &token,
                "app.example.com",
                5000,
                HandoffError::Expired,
            ),
            (
                "issued too far ahead",
                &far_future,
                "app.example.com",
                1000,
                HandoffError::Invalid,
            ),
            (
                "wrong purpose",
                &as_session,
                "app.example.com",
                1001,
                HandoffError::Invalid,
            ),
            ("empty", "", "app.example.com", 1001, HandoffError::Invalid),
            (
                "garbage",
                "AAAA",
                "app.example.com",
                1001,
                HandoffError::Invalid,
            ),
        ] {
            assert_eq!(c.verify(token, host, at(now)).unwrap_err(), want, "{name}");
        }
        assert_eq!(
            other_codec
                .verify(&token, "app.example.com", at(1001))
                .unwrap_err(),
            HandoffError::Invalid
        );
        // Last valid second.
        assert!(c.verify(&token, "app.example.com", at(1059)).is_ok());
        // Issued by a replica whose clock runs a little ahead: accepted.
        let ahead = c.issue(b"s", "app.example.com", "/", at(1004)).unwrap();
        assert!(c.verify(&ahead, "app.example.com", at(1000)).is_ok());
    }

    #[test]
    fn any_flipped_byte_fails() {
        let (c, _) = codec();
        let token = c.issue(b"sess", "a.example.com", "/p", at(1000)).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x20;
            let t = URL_SAFE_NO_PAD.encode(&t);
            assert_eq!(
                c.verify(&t, "a.example.com", at(1001)),
                Err(HandoffError::Invalid),
                "{i}"
            );
        }
    }

    #[test]
    fn refuses_to_issue_unsafe_targets() {
        let (c, _) = codec();
        for (host, path) in [
            ("", "/"),
            ("a.example.com", ""),
            ("a.example.com", "//evil.com"),
            ("a.example.com", "https://evil.com"),
            ("a.example.com", "/%2F%2Fevil.com"),
        ] {
            assert_eq!(
                c.issue(b"s", host, path, at(0)),
                Err(HandoffError::BadTarget),
                "{host} {path}"
            );
        }
    }

    #[test]
    fn decode_refuses_short_or_inconsistent_payloads() {
        let mut good = Vec::new();
        good.extend_from_slice(&100i64.to_be_bytes());
        good.extend_from_slice(&[1u8; 16]);
        good.extend_from_slice(&[0, 1, b'h', 0, 1, b'/']);
        assert!(decode(&good).is_some());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut long_host = good.clone();
        long_host[25] = 200;
        assert!(decode(&long_host).is_none());
        let mut bad_path = good.clone();
        bad_path[29] = b'x';
        assert!(decode(&bad_path).is_none());
        let mut huge_exp = good.clone();
        huge_exp[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(decode(&huge_exp).is_none());
    }

    #[test]
    fn debug_hides_the_session() {
        let (c, _) = codec();
        let token = c.issue(b"secret-session", "h", "/", at(0)).unwrap();
        let text = format!("{:?}", c.verify(&token, "h", at(1)).unwrap());
        assert!(
            text.contains("[14 bytes]") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn replay_guard_accepts_once() {
        let g = ReplayGuard::new(10);
        for (jti, exp, now, want) in [
            ("a", 100, 10, true),
            ("a", 100, 11, false), // replay
            ("a", 100, 99, false), // replay, last second
            ("b", 100, 50, true),
            ("c", 5, 50, false),   // already expired
            ("d", 50, 50, false),  // expires now
            ("a", 200, 100, true), // the first "a" expired and was dropped
        ] {
            assert_eq!(
                g.first_use(jti, at(exp), at(now)),
                want,
                "{jti} {exp} {now}"
            );
        }
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn replay_guard_is_bounded_and_cleans_up() {
        let g = ReplayGuard::new(3);
        assert!(g.first_use("a", at(10), at(0)));
        assert!(g.first_use("b", at(20), at(0)));
        assert!(g.first_use("c", at(30), at(0)));
        assert!(!g.first_use("d", at(30), at(1)), "full: fail closed");
        assert!(!g.first_use("a", at(10), at(1)), "still a replay when full");
        assert!(g.first_use("d", at(30), at(10)), "a expired, room again");
        assert_eq!(g.len(), 3);
        assert!(g.first_use("e", at(100), at(40)));
        assert_eq!(g.len(), 1);
        assert!(!ReplayGuard::new(0).first_use("x", at(10), at(0)));
    }

    #[test]
    fn replay_guard_is_thread_safe() {
        let g = std::sync::Arc::new(ReplayGuard::default());
        let wins: usize = (0..8)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|i| g.first_use(&format!("j{i}"), at(100), at(0)))
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(wins, 100);
    }

    #[test]
    fn issue_verify_redeem_once() {
        let (c, _) = codec();
        let guard = ReplayGuard::default();
        let token = c.issue(b"s", "a.example.com", "/", at(1000)).unwrap();
        let redeem = |now| {
            let h = c.verify(&token, "a.example.com", at(now))?;
            Ok::<bool, HandoffError>(guard.first_use(&h.jti, h.expires_at, at(now)))
        };
        assert_eq!(redeem(1001), Ok(true));
        assert_eq!(redeem(1002), Ok(false));
        assert_eq!(redeem(1070), Err(HandoffError::Expired));
    }
}
