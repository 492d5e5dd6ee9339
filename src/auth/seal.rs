//! Authenticated encryption of small values that travel through the browser (session
//! cookies, sign-in handoff tokens).
//!
//! Format, written URL-safe base64 without padding (cookie- and query-safe):
//!
//! ```text
//! version (1 byte, 0x01) || nonce (12 bytes) || ciphertext || tag (16 bytes)
//! ```
//!
//! The cipher is ChaCha20-Poly1305 (ring has no XChaCha20). The associated data is the
//! version byte followed by the [`Purpose`] label, so a value sealed for one purpose
//! never opens as another even under the same key. Nonces are 96 random bits per
//! message: a repeat becomes likely only after about 2^48 messages under one key, and
//! NIST's conservative bound for random nonces (2^32 messages per key, collision
//! chance under 2^-32) is far beyond what sign-ins and refreshes produce; rotating
//! `cookie_secret` starts a fresh key.
//!
//! Expiry is not part of this layer: payloads that expire carry their own expiry, and
//! the caller checks it against a `now` it passes in (no wall clock here).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::keys::{SubKey, fill_random};

/// Format version, first byte of every sealed value.
const VERSION: u8 = 1;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;
/// Sealed text longer than this is refused before decoding (cookies are far smaller).
pub const MAX_SEALED_LEN: usize = 64 * 1024;

/// What a sealed value is for; bound into the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose(&'static [u8]);

impl Purpose {
    /// The session cookie.
    pub const SESSION: Purpose = Purpose(b"session");
    /// The sign-in handoff token (authenticate host → route host).
    pub const HANDOFF: Purpose = Purpose(b"handoff");

    /// Another purpose (e.g. `b"sign-in-flow"` for the PKCE/nonce cookie). Labels must
    /// differ from every other purpose sealed under the same key.
    pub const fn new(label: &'static [u8]) -> Purpose {
        Purpose(label)
    }
}

/// A sealed value did not open: malformed, tampered with, sealed under another key or
/// for another purpose. Deliberately one kind with no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid or tampered sealed value")]
pub struct OpenError;

// === impl Sealer ===

/// Seals and opens values under one key.
pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    pub fn new(key: &SubKey) -> Sealer {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key.expose())
            .expect("a 32-byte key is valid for ChaCha20-Poly1305");
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    /// Encrypts and authenticates `plaintext` for `purpose`.
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> String {
        self.seal_bound(purpose, b"", plaintext)
    }

    /// Decrypts a value sealed by [`Sealer::seal`] with the same key and purpose.
    pub fn open(&self, purpose: Purpose, sealed: &str) -> Result<Vec<u8>, OpenError> {
        self.open_bound(purpose, b"", sealed)
    }

    /// Like [`Sealer::seal`], with `binding` (e.g. the host a credential is for) in the
    /// associated data: the value opens only with the same binding, and the binding
    /// itself is not stored in it.
    pub fn seal_bound(&self, purpose: Purpose, binding: &[u8], plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(purpose, binding)),
                &mut body,
            )
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB");
        out.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value sealed by [`Sealer::seal_bound`] with the same key, purpose and
    /// binding.
    pub fn open_bound(
        &self,
        purpose: Purpose,
        binding: &[u8],
        sealed: &str,
    ) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(OpenError);
        }
        let mut raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError)?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(OpenError);
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&raw[1..1 + NONCE_LEN]).map_err(|_| OpenError)?;
        let plain = self
            .key
            .open_in_place(
                nonce,
                Aad::from(aad(purpose, binding)),
                &mut raw[1 + NONCE_LEN..],
            )
            .map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

/// `version || purpose`, then — for bound values only — `0x00 || binding`. Purpose
/// labels hold no NUL byte, so no purpose with a binding reads as another without one.
fn aad(purpose: Purpose, binding: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + purpose.0.len() + binding.len());
    aad.push(VERSION);
    aad.extend_from_slice(purpose.0);
    if !binding.is_empty() {
        aad.push(0);
        aad.extend_from_slice(binding);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::CookieSecret;

    fn sealer() -> (Sealer, Sealer) {
        let keys = CookieSecret::generate().derive();
        (Sealer::new(&keys.session), Sealer::new(&keys.handoff))
    }

    #[test]
    fn round_trips_and_is_url_safe() {
        let (s, _) = sealer();
        for plain in [&b""[..], b"x", b"hello world", &[0u8; 5000]] {
            let sealed = s.seal(Purpose::SESSION, plain);
            assert!(
                sealed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{sealed}"
            );
            let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
            assert_eq!(raw.len(), 1 + NONCE_LEN + plain.len() + TAG_LEN);
            assert_eq!(raw[0], VERSION);
            assert_eq!(s.open(Purpose::SESSION, &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn nonces_differ_per_message() {
        let (s, _) = sealer();
        assert_ne!(
            s.seal(Purpose::SESSION, b"same"),
            s.seal(Purpose::SESSION, b"same")
        );
    }

    #[test]
    fn any_flipped_bit_fails() {
        let (s, _) = sealer();
        let sealed = s.seal(Purpose::SESSION, b"a session blob");
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = raw.clone();
                t[i] ^= bit;
                let text = URL_SAFE_NO_PAD.encode(&t);
                assert_eq!(s.open(Purpose::SESSION, &text), Err(OpenError), "byte {i}");
            }
        }
    }

    #[test]
    fn refuses_wrong_purpose_key_and_garbage() {
        let (s, other) = sealer();
        let sealed = s.seal(Purpose::SESSION, b"payload");
        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let mut v2 = raw.clone();
        v2[0] = 2;
        let padded = format!("{sealed}=");
        let std_alphabet = sealed.replace('-', "+").replace('_', "/");
        let cases: Vec<(&str, String, &Sealer, Purpose)> = vec![
            ("wrong purpose", sealed.clone(), &s, Purpose::HANDOFF),
            (
                "custom purpose",
                sealed.clone(),
                &s,
                Purpose::new(b"sessio"),
            ),
            ("wrong key", sealed.clone(), &other, Purpose::SESSION),
            ("empty", String::new(), &s, Purpose::SESSION),
            ("not base64", "!!!!".into(), &s, Purpose::SESSION),
            (
                "too short",
                URL_SAFE_NO_PAD.encode([1u8; 28]),
                &s,
                Purpose::SESSION,
            ),
            (
                "truncated",
                sealed[..sealed.len() - 2].to_string(),
                &s,
                Purpose::SESSION,
            ),
            ("extended", format!("{sealed}AA"), &s, Purpose::SESSION),
            (
                "version 2",
                URL_SAFE_NO_PAD.encode(&v2),
                &s,
                Purpose::SESSION,
            ),
            ("padded", padded, &s, Purpose::SESSION),
            ("huge", "A".repeat(MAX_SEALED_LEN + 1), &s, Purpose::SESSION),
        ];
        for (name, text, sealer, purpose) in cases {
            assert_eq!(sealer.open(purpose, &text), Err(OpenError), "{name}");
        }
        if std_alphabet != sealed {
            assert_eq!(s.open(Purpose::SESSION, &std_alphabet), Err(OpenError));
        }
    }

    #[test]
    fn bound_values_open_only_with_their_binding() {
        let (s, _) = sealer();
        let sealed = s.seal_bound(Purpose::SESSION, b"host:app.example.com:443", b"id");
        assert_eq!(
            s.open_bound(Purpose::SESSION, b"host:app.example.com:443", &sealed)
                .unwrap(),
            b"id"
        );
        for other in [
            &b"host:evil.example.com:443"[..],
            b"host:app.example.com:8443",
            b"host:app.example.com:44",
            b"",
        ] {
            assert_eq!(
                s.open_bound(Purpose::SESSION, other, &sealed),
                Err(OpenError),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // Unbound values don't open with a binding, nor bound ones without.
        let plain = s.seal(Purpose::SESSION, b"id");
        assert_eq!(
            s.open_bound(Purpose::SESSION, b"host:a:1", &plain),
            Err(OpenError)
        );
        assert_eq!(s.open(Purpose::SESSION, &sealed), Err(OpenError));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", sealer().0), "Sealer([redacted])");
    }
}
