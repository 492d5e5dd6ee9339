//! Key material for sessions: the `cookie_secret` and the subkeys derived from it.
//!
//! `cookie_secret` is Pomerium's format: 32 random bytes written base64
//! (`head -c32 /dev/urandom | base64`). It is never used directly; HKDF-SHA256 derives one
//! independent 32-byte subkey per use, so a flaw in one use (say, a MAC oracle on the
//! CSRF token) can never reveal the key that encrypts sessions.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// Length of `cookie_secret` and of every subkey.
pub const KEY_LEN: usize = 32;

/// The fewest distinct byte values a secret may have. 32 uniformly random bytes have
/// about 30 distinct values on average; fewer than 17 happens with probability ~2e-15.
/// The rule refuses all-zero and repeated-pattern secrets, and the base64 of text made
/// only of hex digits (at most 16 distinct byte values: a password, not a key).
const MIN_DISTINCT_BYTES: usize = 17;

/// HKDF salt: fixed, so the same secret derives the same keys on every replica.
const HKDF_SALT: &[u8] = b"portcullis cookie_secret";
/// HKDF `info` labels, one per use. Changing one invalidates every token of that use.
pub const LABEL_SESSION: &[u8] = b"portcullis/v1/session-cookie/aead";
pub const LABEL_HANDOFF: &[u8] = b"portcullis/v1/handoff-token/aead";
pub const LABEL_CSRF: &[u8] = b"portcullis/v1/csrf-state/hmac";

/// Why a `cookie_secret` was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cookie_secret is not valid base64")]
    NotBase64,
    #[error(
        "cookie_secret must be 32 bytes written base64 (got {0} bytes); make one with `head -c32 /dev/urandom | base64`"
    )]
    WrongLength(usize),
    #[error(
        "cookie_secret is too weak (all zero, a repeated pattern or text); make one with `head -c32 /dev/urandom | base64`"
    )]
    Weak,
}

// === impl CookieSecret ===

/// The 32-byte `cookie_secret`. `Debug` never prints it.
#[derive(Clone)]
pub struct CookieSecret([u8; KEY_LEN]);

impl CookieSecret {
    /// Reads the secret from base64: standard or URL-safe alphabet, padding optional,
    /// surrounding whitespace ignored (files and env vars end with a newline).
    pub fn from_base64(text: &str) -> Result<CookieSecret, KeyError> {
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(KeyError::NotBase64)?;
        let bytes = <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        CookieSecret::from_bytes(bytes)
    }

    /// Takes already-decoded bytes (what the config reader produces), refusing weak ones.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<CookieSecret, KeyError> {
        let mut seen = [false; 256];
        for b in bytes {
            seen[usize::from(b)] = true;
        }
        if seen.iter().filter(|s| **s).count() < MIN_DISTINCT_BYTES {
            return Err(KeyError::Weak);
        }
        Ok(CookieSecret(bytes))
    }

    /// A fresh random secret, for `portcullis dev` (sessions then die with the process).
    pub fn generate() -> CookieSecret {
        loop {
            let mut bytes = [0u8; KEY_LEN];
            fill_random(&mut bytes);
            // Practically never loops: see MIN_DISTINCT_BYTES.
            if let Ok(secret) = CookieSecret::from_bytes(bytes) {
                return secret;
            }
        }
    }

    /// Derives the per-use subkeys.
    pub fn derive(&self) -> Keys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.0);
        let expand = |label: &[u8]| {
            let mut out = [0u8; KEY_LEN];
            prk.expand(&[label], Len)
                .and_then(|okm| okm.fill(&mut out))
                .expect("HKDF-SHA256 can expand 32 bytes");
            SubKey(out)
        };
        Keys {
            session: expand(LABEL_SESSION),
            handoff: expand(LABEL_HANDOFF),
            csrf: expand(LABEL_CSRF),
        }
    }
}

impl fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieSecret([redacted])")
    }
}

/// Output length marker for `ring::hkdf`.
struct Len;

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

// === impl Keys ===

/// The subkeys derived from one `cookie_secret`.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Encrypts session cookies ([`Sealer`](super::Sealer)).
    pub session: SubKey,
    /// Encrypts sign-in handoff tokens ([`HandoffCodec`](super::HandoffCodec)).
    pub handoff: SubKey,
    /// Signs CSRF tokens ([`Csrf`](super::Csrf)).
    pub csrf: SubKey,
}

/// One derived 32-byte key. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SubKey([u8; KEY_LEN]);

impl SubKey {
    /// The key bytes, for the module that builds a cipher or MAC from them.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubKey([redacted])")
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    // getrandom(2) does not fail once the kernel's pool is seeded; if it ever did,
    // carrying on with predictable bytes would be worse than stopping.
    SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";

    #[test]
    fn accepts_32_random_looking_bytes_in_every_base64_form() {
        let want = CookieSecret::from_base64(GOOD).unwrap().0;
        for text in [
            GOOD,
            "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho",
            "3q2-7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=",
            "3q2-7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho",
            "  3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=\n",
        ] {
            assert_eq!(CookieSecret::from_base64(text).unwrap().0, want, "{text:?}");
        }
    }

    #[test]
    fn refuses_bad_secrets() {
        let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
        let hex_text = b64(b"0123456789abcdef0123456789abcdef");
        let pattern: Vec<u8> = (0..32).map(|i| (i % 8) as u8).collect();
        let sixteen: Vec<u8> = (0..32).map(|i| (i % 16) as u8).collect();
        for (text, want) in [
            ("".to_string(), KeyError::WrongLength(0)),
            ("REPLACE ME".to_string(), KeyError::NotBase64),
            ("c2hvcnQ=".to_string(), KeyError::WrongLength(5)),
            (b64(&[7u8; 33]), KeyError::WrongLength(33)),
            (b64(&[0u8; 32]), KeyError::Weak),
            (b64(&[0xffu8; 32]), KeyError::Weak),
            (b64(&pattern), KeyError::Weak),
            (b64(&sixteen), KeyError::Weak),
            (hex_text, KeyError::Weak),
            (b64(b"passwordpasswordpasswordpassword"), KeyError::Weak),
        ] {
            assert_eq!(
                CookieSecret::from_base64(&text).unwrap_err(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn seventeen_distinct_values_pass() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i % 17) as u8);
        assert!(CookieSecret::from_bytes(bytes).is_ok());
    }

    #[test]
    fn generated_secrets_are_fresh_and_strong() {
        let a = CookieSecret::generate();
        let b = CookieSecret::generate();
        assert_ne!(a.0, b.0);
        assert!(CookieSecret::from_bytes(a.0).is_ok());
    }

    #[test]
    fn subkeys_are_distinct_and_deterministic() {
        let secret = CookieSecret::from_base64(GOOD).unwrap();
        let (k1, k2) = (secret.derive(), secret.derive());
        assert_eq!(k1.session, k2.session);
        assert_ne!(k1.session, k1.handoff);
        assert_ne!(k1.session, k1.csrf);
        assert_ne!(k1.handoff, k1.csrf);
        assert_ne!(k1.session.expose(), &secret.0);
        let other = CookieSecret::generate().derive();
        assert_ne!(k1.session, other.session);
    }

    #[test]
    fn derivation_is_pinned() {
        // Replicas of different versions must agree: changing the derivation breaks
        // every live session. This pins HKDF-SHA256(salt, secret, label).
        let keys = CookieSecret::from_base64(GOOD).unwrap().derive();
        let hex = |k: &SubKey| {
            k.expose()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(hex(&keys.session), PINNED_SESSION);
    }

    /// Computed independently with Python's `hmac`/`hashlib` (RFC 5869 by hand).
    const PINNED_SESSION: &str = "84bbd96939f50fcd314e868d8809b5fb18c099f4b8b4b7cfeddf788b19134e9e";

    #[test]
    fn debug_never_prints_key_bytes() {
        let secret = CookieSecret::from_base64(GOOD).unwrap();
        let keys = secret.derive();
        assert_eq!(format!("{secret:?}"), "CookieSecret([redacted])");
        assert_eq!(
            format!("{keys:?}"),
            "Keys { session: SubKey([redacted]), handoff: SubKey([redacted]), csrf: SubKey([redacted]) }"
        );
    }
}
