//! CSRF protection for sign-out, and OIDC `state` values.
//!
//! The sign-out token is `base64url(HMAC-SHA256(csrf subkey, label || session id))`:
//! stateless, valid exactly as long as the session, and useless to anyone who can't
//! read the page that embeds it. Every comparison goes through `ring::hmac::verify`,
//! which compares in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use super::keys::{SubKey, fill_random};

/// Domain separation inside the CSRF subkey: one label per thing it MACs.
const SIGN_OUT_LABEL: &[u8] = b"portcullis/v1/sign-out\0";
const STATE_LABEL: &[u8] = b"portcullis/v1/state\0";
const NONCE_LABEL: &[u8] = b"portcullis/v1/sign-in-nonce\0";
/// Length of a sign-out token: base64url of a 32-byte MAC.
pub const SIGN_OUT_TOKEN_LEN: usize = 43;

/// Makes and checks CSRF tokens under the CSRF subkey.
pub struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    pub fn new(key: &SubKey) -> Csrf {
        Csrf {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        }
    }

    /// The token the sign-out form (or link) carries for the session `session_id`
    /// (any random per-session value; a sealed cookie session should hold one).
    pub fn sign_out_token(&self, session_id: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &labelled(SIGN_OUT_LABEL, session_id)))
    }

    /// Whether `token` is the sign-out token of `session_id`, in constant time.
    pub fn verify_sign_out(&self, session_id: &[u8], token: &str) -> bool {
        if token.len() != SIGN_OUT_TOKEN_LEN {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        hmac::verify(&self.key, &labelled(SIGN_OUT_LABEL, session_id), &tag).is_ok()
    }

    /// What a sign-in carries for the browser's nonce cookie `nonce`: its MAC, so the
    /// nonce itself never appears in a URL, and a handoff can be tied to the browser
    /// that started the sign-in.
    pub fn nonce_tag(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(
            &self.key,
            &labelled(NONCE_LABEL, nonce.as_bytes()),
        ))
    }

    /// Whether `tag` is the MAC of `nonce`, in constant time.
    pub fn verify_nonce(&self, nonce: &str, tag: &str) -> bool {
        if nonce.is_empty() || tag.len() != SIGN_OUT_TOKEN_LEN {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        hmac::verify(&self.key, &labelled(NONCE_LABEL, nonce.as_bytes()), &tag).is_ok()
    }

    /// Whether the `state` the IdP sent back equals the one we stored, compared in
    /// constant time (both sides are MACed under the CSRF key, then the MACs compared
    /// by `hmac::verify`). An empty `expected` never matches.
    pub fn state_matches(&self, expected: &str, received: &str) -> bool {
        if expected.is_empty() {
            return false;
        }
        let tag = hmac::sign(&self.key, &labelled(STATE_LABEL, expected.as_bytes()));
        hmac::verify(
            &self.key,
            &labelled(STATE_LABEL, received.as_bytes()),
            tag.as_ref(),
        )
        .is_ok()
    }
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf([redacted])")
    }
}

/// A fresh OIDC `state` (or any one-time value): 128 random bits, base64url (22 chars).
pub fn random_state() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn labelled(label: &[u8], data: &[u8]) -> Vec<u8> {
    [label, data].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::CookieSecret;

    fn csrf() -> (Csrf, Csrf) {
        let keys = CookieSecret::generate().derive();
        (
            Csrf::new(&keys.csrf),
            Csrf::new(&CookieSecret::generate().derive().csrf),
        )
    }

    #[test]
    fn nonce_tags_tie_to_the_nonce_and_key() {
        let (c, other) = csrf();
        let tag = c.nonce_tag("browser-nonce");
        assert!(c.verify_nonce("browser-nonce", &tag));
        for (nonce, t) in [
            ("other-nonce", tag.as_str()),
            ("", tag.as_str()),
            ("browser-nonce", ""),
            ("browser-nonce", &tag[1..]),
        ] {
            assert!(!c.verify_nonce(nonce, t), "{nonce} {t}");
        }
        assert!(!other.verify_nonce("browser-nonce", &tag));
        // A nonce tag is not a sign-out token for the same bytes.
        assert!(!c.verify_sign_out(b"browser-nonce", &tag));
    }

    #[test]
    fn sign_out_token_is_bound_to_session_and_key() {
        let (c, other) = csrf();
        let token = c.sign_out_token(b"session-1");
        assert_eq!(token.len(), SIGN_OUT_TOKEN_LEN);
        assert_eq!(
            token,
            c.sign_out_token(b"session-1"),
            "deterministic per session"
        );
        let mut flipped = token.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for (name, checker, session, tok, want) in [
            ("valid", &c, &b"session-1"[..], token.as_str(), true),
            ("other session", &c, b"session-2", &token, false),
            ("empty session", &c, b"", &token, false),
            ("other key", &other, b"session-1", &token, false),
            ("flipped", &c, b"session-1", &flipped, false),
            ("empty", &c, b"session-1", "", false),
            ("truncated", &c, b"session-1", &token[..42], false),
            ("extended", &c, b"session-1", &format!("{token}A"), false),
            ("not base64", &c, b"session-1", &"!".repeat(43), false),
            (
                "padded",
                &c,
                b"session-1",
                &format!("{}=", &token[..42]),
                false,
            ),
        ] {
            assert_eq!(checker.verify_sign_out(session, tok), want, "{name}");
        }
    }

    #[test]
    fn sign_out_and_state_macs_are_separated() {
        // A sign-out token is never the MAC of the same bytes as a state.
        let (c, _) = csrf();
        let state_tag = hmac::sign(&c.key, &labelled(STATE_LABEL, b"x"));
        assert_ne!(c.sign_out_token(b"x"), URL_SAFE_NO_PAD.encode(state_tag));
    }

    #[test]
    fn state_matching() {
        let (c, _) = csrf();
        let s = random_state();
        for (expected, received, want) in [
            (s.as_str(), s.as_str(), true),
            (&s, &s[..21], false),
            (&s, &format!("{s}x"), false),
            (&s, "", false),
            ("", "", false),
            ("abc", "abd", false),
            ("abc", "ABC", false),
        ] {
            assert_eq!(
                c.state_matches(expected, received),
                want,
                "{expected:?} {received:?}"
            );
        }
    }

    #[test]
    fn random_states_are_fresh_url_safe_128_bit() {
        let (a, b) = (random_state(), random_state());
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", csrf().0), "Csrf([redacted])");
    }
}
