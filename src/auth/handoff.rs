//! The sign-in handoff: after the IdP callback on the authenticate host, the browser is
//! sent to the route host's `/.portcullis/callback` with a token that carries that
//! host's credential there. The token is sealed ([`Purpose::HANDOFF`], under the handoff
//! subkey), bound to one target origin (`host:port`), tied to the browser that started
//! the sign-in (the MAC of its nonce cookie, see [`super::csrf::Csrf::nonce_tag`]),
//! lives at most [`HANDOFF_TTL`], and is single-use through a [`ReplayGuard`].
//!
//! Payload inside the seal (big-endian):
//!
//! ```text
//! expires_at: i64 unix seconds | jti: 16 bytes | nonce_tag_len: u16 | nonce tag |
//! target_len: u16 | target origin | sid_len: u16 | session id |
//! path_len: u16 | return path | credential: the rest
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
/// 150 bytes each.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;
/// Unexpired used jtis one session may hold in the guard: a signed-in user redeeming
/// tokens in a loop fills their own budget, not everyone's capacity.
pub const PER_SESSION_BUDGET: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// Malformed, tampered with, or not sealed by us. No detail, deliberately.
    #[error("invalid sign-in handoff token")]
    Invalid,
    #[error("the sign-in handoff token has expired")]
    Expired,
    #[error("the sign-in handoff token is for another host or port")]
    WrongHost,
    /// Issuing only: the target or return path can't be carried safely.
    #[error("refusing to issue a handoff to an invalid host or return path")]
    BadTarget,
}

/// What a handoff token is issued with.
pub struct Ticket<'a> {
    /// The route host's credential (a serialized [`super::session::RouteCredential`]).
    pub credential: &'a [u8],
    /// Whose it is (the user; the replay guard's budget key: a user signing in over and
    /// over gets new sessions, not more budget).
    pub sid: &'a str,
    /// The target origin, canonical `host:port` (compared exactly on verify).
    pub target: &'a str,
    /// Where to send the browser on that host; must pass [`is_safe_path`].
    pub return_path: &'a str,
    /// The MAC of the nonce cookie of the browser that started the sign-in.
    pub nonce_tag: &'a str,
}

/// What a verified handoff token carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Handoff {
    pub credential: Vec<u8>,
    pub sid: String,
    pub target: String,
    /// Always passes [`is_safe_path`].
    pub return_path: String,
    pub nonce_tag: String,
    pub expires_at: Timestamp,
    /// 128 random bits, lowercase hex: the key for [`ReplayGuard::first_use`].
    pub jti: String,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field(
                "credential",
                &format_args!("[{} bytes]", self.credential.len()),
            )
            .field("target", &self.target)
            .field("return_path", &self.return_path)
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti)
            .finish_non_exhaustive()
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

    /// A token for `ticket`, valid from `now` for [`HANDOFF_TTL`]. URL-safe as it is.
    pub fn issue(&self, ticket: &Ticket<'_>, now: Timestamp) -> Result<String, HandoffError> {
        let fields = [
            ticket.nonce_tag.as_bytes(),
            ticket.target.as_bytes(),
            ticket.sid.as_bytes(),
            ticket.return_path.as_bytes(),
        ];
        if ticket.target.is_empty()
            || ticket.nonce_tag.is_empty()
            || fields.iter().any(|f| f.len() > usize::from(u16::MAX))
            || !is_safe_path(ticket.return_path)
        {
            return Err(HandoffError::BadTarget);
        }
        let expires_at = now.as_second() + HANDOFF_TTL.as_secs() as i64;
        let mut jti = [0u8; 16];
        fill_random(&mut jti);
        let mut payload = Vec::with_capacity(
            8 + 16 + 8 + fields.iter().map(|f| f.len()).sum::<usize>() + ticket.credential.len(),
        );
        payload.extend_from_slice(&expires_at.to_be_bytes());
        payload.extend_from_slice(&jti);
        for field in fields {
            payload.extend_from_slice(&(field.len() as u16).to_be_bytes());
            payload.extend_from_slice(field);
        }
        payload.extend_from_slice(ticket.credential);
        Ok(self.sealer.seal(Purpose::HANDOFF, &payload))
    }

    /// Opens `token` and checks it was issued for `expected_target` (canonical
    /// `host:port`, compared exactly) and is unexpired at `now`. The nonce and single
    /// use are the caller's next steps.
    pub fn verify(
        &self,
        token: &str,
        expected_target: &str,
        now: Timestamp,
    ) -> Result<Handoff, HandoffError> {
        let payload = self
            .sealer
            .open(Purpose::HANDOFF, token)
            .map_err(|_| HandoffError::Invalid)?;
        let handoff = decode(&payload).ok_or(HandoffError::Invalid)?;
        if handoff.target != expected_target {
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
    let (nonce_tag, rest) = take_field(rest)?;
    let (target, rest) = take_field(rest)?;
    let (sid, rest) = take_field(rest)?;
    let (return_path, credential) = take_field(rest)?;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    let return_path = text(return_path)?;
    if !is_safe_path(&return_path) {
        return None;
    }
    Some(Handoff {
        credential: credential.to_vec(),
        sid: text(sid)?,
        target: text(target)?,
        return_path,
        nonce_tag: text(nonce_tag)?,
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
/// In memory, per process: with several replicas and the cookie store a token could be
/// replayed on another replica within its [`HANDOFF_TTL`] (the thief would need the
/// token and the victim's nonce cookie). With Redis, a cluster-wide check follows.
///
/// Bounded two ways: a session holds at most [`PER_SESSION_BUDGET`] unexpired jtis
/// (its further tokens are refused until some expire), and at most `capacity` in all;
/// when full, new ones are refused (sign-in fails closed) rather than forgetting one
/// that could then be replayed. Expired entries are dropped on every call.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    per_session: usize,
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// jti → (expiry, session).
    by_jti: HashMap<String, (i64, String)>,
    /// Unexpired jtis per session.
    per_session: HashMap<String, usize>,
    /// Earliest expiry first.
    queue: BinaryHeap<Reverse<(i64, String)>>,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard::with_budget(capacity, PER_SESSION_BUDGET)
    }

    pub fn with_budget(capacity: usize, per_session: usize) -> ReplayGuard {
        ReplayGuard {
            capacity,
            per_session,
            inner: Mutex::default(),
        }
    }

    /// `true` the first time `jti` is seen before `expires_at`; `false` on a replay,
    /// for an already expired token, when `sid` has used its budget, or when full.
    pub fn first_use(&self, jti: &str, sid: &str, expires_at: Timestamp, now: Timestamp) -> bool {
        let (exp, now) = (expires_at.as_second(), now.as_second());
        // A panic elsewhere can't leave the sets inconsistent in a way that matters.
        let mut seen = crate::sync::lock(&self.inner);
        while let Some(Reverse((e, _))) = seen.queue.peek()
            && *e <= now
        {
            let Some(Reverse((_, old))) = seen.queue.pop() else {
                break;
            };
            if let Some((_, session)) = seen.by_jti.remove(&old)
                && let Some(n) = seen.per_session.get_mut(&session)
            {
                *n -= 1;
                if *n == 0 {
                    seen.per_session.remove(&session);
                }
            }
        }
        if exp <= now
            || seen.by_jti.contains_key(jti)
            || seen.by_jti.len() >= self.capacity
            || seen.per_session.get(sid).copied().unwrap_or(0) >= self.per_session
        {
            return false;
        }
        seen.by_jti.insert(jti.to_string(), (exp, sid.to_string()));
        *seen.per_session.entry(sid.to_string()).or_default() += 1;
        seen.queue.push(Reverse((exp, jti.to_string())));
        true
    }

    /// Unexpired jtis remembered (as of the last call).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.inner).by_jti.len()
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

    fn ticket<'a>(credential: &'a [u8], target: &'a str, path: &'a str) -> Ticket<'a> {
        Ticket {
            credential,
            sid: "sid-1",
            target,
            return_path: path,
            nonce_tag: "tag",
        }
    }

    #[test]
    fn round_trip() {
        let (c, _) = codec();
        for credential in [&b""[..], b"cred-123", &[7u8; 4000]] {
            let token = c
                .issue(
                    &ticket(credential, "app.example.com:443", "/x?y=1"),
                    at(1000),
                )
                .unwrap();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            let h = c.verify(&token, "app.example.com:443", at(1030)).unwrap();
            assert_eq!(h.credential, credential);
            assert_eq!(h.target, "app.example.com:443");
            assert_eq!(h.sid, "sid-1");
            assert_eq!(h.nonce_tag, "tag");
            assert_eq!(h.return_path, "/x?y=1");
            assert_eq!(h.expires_at, at(1060));
            assert_eq!(h.jti.len(), 32);
        }
    }

    #[test]
    fn verify_refusals() {
        let (c, keys) = codec();
        let target = "app.example.com:443";
        let token = c.issue(&ticket(b"s", target, "/"), at(1000)).unwrap();
        let other_codec = codec().0;
        let as_session = Sealer::new(&keys.handoff).seal(Purpose::SESSION, b"whatever");
        let far_future = c
            .issue(&ticket(b"s", target, "/"), at(1000 + 3600))
            .unwrap();
        for (name, token, target, now, want) in [
            (
                "wrong host",
                token.as_str(),
                "evil.example.com:443",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "host suffix",
                &token,
                "app.example.com.evil:443",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "other port",
                &token,
                "app.example.com:8443",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "no port",
                &token,
                "app.example.com",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "case",
                &token,
                "APP.example.com:443",
                1001,
                HandoffError::WrongHost,
            ),
            (
                "expired at exp",
                &token,
                target,
                1060,
                HandoffError::Expired,
            ),
            ("expired later", &token, target, 5000, HandoffError::Expired),
            (
                "issued too far ahead",
                &far_future,
                target,
                1000,
                HandoffError::Invalid,
            ),
            (
                "wrong purpose",
                &as_session,
                target,
                1001,
                HandoffError::Invalid,
            ),
            ("empty", "", target, 1001, HandoffError::Invalid),
            ("garbage", "AAAA", target, 1001, HandoffError::Invalid),
        ] {
            assert_eq!(
                c.verify(token, target, at(now)).unwrap_err(),
                want,
                "{name}"
            );
        }
        assert_eq!(
            other_codec.verify(&token, target, at(1001)).unwrap_err(),
            HandoffError::Invalid
        );
        // Last valid second.
        assert!(c.verify(&token, target, at(1059)).is_ok());
        // Issued by a replica whose clock runs a little ahead: accepted.
        let ahead = c.issue(&ticket(b"s", target, "/"), at(1004)).unwrap();
        assert!(c.verify(&ahead, target, at(1000)).is_ok());
    }

    #[test]
    fn any_flipped_byte_fails() {
        let (c, _) = codec();
        let token = c
            .issue(&ticket(b"sess", "a.example.com:443", "/p"), at(1000))
            .unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x20;
            let t = URL_SAFE_NO_PAD.encode(&t);
            assert_eq!(
                c.verify(&t, "a.example.com:443", at(1001)),
                Err(HandoffError::Invalid),
                "{i}"
            );
        }
    }

    #[test]
    fn refuses_to_issue_unsafe_targets() {
        let (c, _) = codec();
        for (target, path, tag) in [
            ("", "/", "t"),
            ("a.example.com:443", "", "t"),
            ("a.example.com:443", "//evil.com", "t"),
            ("a.example.com:443", "https://evil.com", "t"),
            ("a.example.com:443", "/%2F%2Fevil.com", "t"),
            ("a.example.com:443", "/", ""),
        ] {
            let t = Ticket {
                nonce_tag: tag,
                ..ticket(b"s", target, path)
            };
            assert_eq!(
                c.issue(&t, at(0)),
                Err(HandoffError::BadTarget),
                "{target} {path}"
            );
        }
    }

    #[test]
    fn decode_refuses_short_or_inconsistent_payloads() {
        let mut good = Vec::new();
        good.extend_from_slice(&100i64.to_be_bytes());
        good.extend_from_slice(&[1u8; 16]);
        for field in [&b"t"[..], b"h:1", b"s", b"/"] {
            good.extend_from_slice(&(field.len() as u16).to_be_bytes());
            good.extend_from_slice(field);
        }
        assert!(decode(&good).is_some());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut long_field = good.clone();
        long_field[25] = 200;
        assert!(decode(&long_field).is_none());
        let mut bad_path = good.clone();
        let last = bad_path.len() - 1;
        bad_path[last] = b'x';
        assert!(decode(&bad_path).is_none());
        let mut huge_exp = good.clone();
        huge_exp[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(decode(&huge_exp).is_none());
    }

    #[test]
    fn debug_hides_the_credential() {
        let (c, _) = codec();
        let token = c
            .issue(&ticket(b"secret-session", "h:1", "/"), at(0))
            .unwrap();
        let text = format!("{:?}", c.verify(&token, "h:1", at(1)).unwrap());
        assert!(
            text.contains("[14 bytes]") && !text.contains("secret") && !text.contains("tag"),
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
                g.first_use(jti, "s", at(exp), at(now)),
                want,
                "{jti} {exp} {now}"
            );
        }
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn replay_guard_is_bounded_and_cleans_up() {
        let g = ReplayGuard::new(3);
        assert!(g.first_use("a", "s1", at(10), at(0)));
        assert!(g.first_use("b", "s2", at(20), at(0)));
        assert!(g.first_use("c", "s3", at(30), at(0)));
        assert!(!g.first_use("d", "s4", at(30), at(1)), "full: fail closed");
        assert!(
            !g.first_use("a", "s1", at(10), at(1)),
            "still a replay when full"
        );
        assert!(
            g.first_use("d", "s4", at(30), at(10)),
            "a expired, room again"
        );
        assert_eq!(g.len(), 3);
        assert!(g.first_use("e", "s5", at(100), at(40)));
        assert_eq!(g.len(), 1);
        assert!(!ReplayGuard::new(0).first_use("x", "s", at(10), at(0)));
    }

    #[test]
    fn one_session_cannot_fill_the_guard_for_everyone() {
        let g = ReplayGuard::with_budget(1000, 4);
        let used = (0..100)
            .filter(|i| g.first_use(&format!("j{i}"), "mallory", at(100), at(0)))
            .count();
        assert_eq!(used, 4, "the attacker's session stops at its budget");
        assert!(
            g.first_use("alice-1", "alice", at(100), at(1)),
            "others still sign in"
        );
        // Once the attacker's tokens expire, their budget comes back.
        assert!(g.first_use("j-late", "mallory", at(200), at(100)));
    }

    #[test]
    fn replay_guard_is_thread_safe() {
        let g = std::sync::Arc::new(ReplayGuard::with_budget(DEFAULT_REPLAY_CAPACITY, 1000));
        let wins: usize = (0..8)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|i| g.first_use(&format!("j{i}"), "s", at(100), at(0)))
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
        let token = c
            .issue(&ticket(b"s", "a.example.com:443", "/"), at(1000))
            .unwrap();
        let redeem = |now| {
            let h = c.verify(&token, "a.example.com:443", at(now))?;
            Ok::<bool, HandoffError>(guard.first_use(&h.jti, &h.sid, h.expires_at, at(now)))
        };
        assert_eq!(redeem(1001), Ok(true));
        assert_eq!(redeem(1002), Ok(false));
        assert_eq!(redeem(1070), Err(HandoffError::Expired));
    }
}
