//! The ES256 key that signs `X-Portcullis-Jwt-Assertion`, its JWKS
//! (`/.well-known/portcullis/jwks.json`) and the assertion's claims.
//!
//! `signing_key` is a P-256 private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what
//! `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes) or SEC1
//! (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -name prime256v1 -genkey` writes;
//! an `EC PARAMETERS` block before it is skipped). ring reads only PKCS#8, so SEC1 is
//! rewrapped as PKCS#8 here. Either form must carry the public key (OpenSSL includes it
//! unless told `-no_public`); ring can't derive it. Encrypted keys are refused; decrypt
//! with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pk8.pem`.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::keys::fill_random;

/// How long an assertion is valid (`exp - iat`).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// DER of the PKCS#8 AlgorithmIdentifier for an EC P-256 key:
/// SEQUENCE { OID id-ecPublicKey, OID prime256v1 }.
const P256_ALGORITHM_ID: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing_key holds no unencrypted PEM private key")]
    NoPrivateKey,
    #[error("signing_key is an RSA key; ES256 needs an EC P-256 key")]
    Rsa,
    #[error("signing_key is not a usable EC P-256 private key with its public key ({0})")]
    Rejected(String),
}

// === impl SigningKey ===

/// An ES256 (ECDSA P-256, SHA-256) signing key with its JWK thumbprint as `kid`.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    x: String,
    y: String,
}

impl SigningKey {
    /// Reads a PKCS#8 or SEC1 PEM P-256 private key (see the module docs).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, SigningKeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| SigningKeyError::NoPrivateKey)?;
        let pkcs8 = match &der {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            PrivateKeyDer::Sec1(k) => sec1_to_pkcs8(k.secret_sec1_der()),
            PrivateKeyDer::Pkcs1(_) => return Err(SigningKeyError::Rsa),
            _ => return Err(SigningKeyError::NoPrivateKey),
        };
        SigningKey::from_pkcs8(&pkcs8)
    }

    /// A fresh random key, for `portcullis dev` and tests (assertions then verify only
    /// against this process's JWKS).
    pub fn generate() -> SigningKey {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("the system random number generator failed");
        SigningKey::from_pkcs8(doc.as_ref()).expect("ring reads the PKCS#8 it wrote")
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, SigningKeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| SigningKeyError::Rejected(e.to_string()))?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638: the required members, lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
        Ok(SigningKey { pair, kid, x, y })
    }

    /// The RFC 7638 JWK thumbprint (base64url SHA-256): stable for a given key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }

    /// The body of `/.well-known/portcullis/jwks.json`.
    pub fn jwks_json(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }

    /// A compact JWS over `claims`, header `{"alg":"ES256","kid":…,"typ":"JWT"}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "kid": self.kid, "typ": "JWT" });
        let mut jws = URL_SAFE_NO_PAD.encode(header.to_string());
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), jws.as_bytes())
            .expect("the system random number generator failed");
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        jws
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Wraps a SEC1 `ECPrivateKey` as PKCS#8 v1:
/// SEQUENCE { INTEGER 0, AlgorithmIdentifier(EC, P-256), OCTET STRING { sec1 } }.
/// A key of another curve then fails ring's check of the SEC1 curve parameters.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(P256_ALGORITHM_ID);
    der_push(&mut body, 0x04, sec1);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_push(&mut out, 0x30, &body);
    out
}

/// Appends a DER tag-length-value.
fn der_push(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
}

// === impl Assertion ===

/// The claims of `X-Portcullis-Jwt-Assertion` (docs/migrating-from-pomerium.md lists them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assertion {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// Unix seconds.
    pub iat: i64,
    /// `iat` + [`ASSERTION_LIFETIME`].
    pub exp: i64,
    /// 128 random bits, lowercase hex.
    pub jti: String,
}

impl Assertion {
    /// An assertion issued at `now`, with no email and no groups yet.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        subject: impl Into<String>,
        now: jiff::Timestamp,
    ) -> Assertion {
        let iat = now.as_second();
        let mut jti = [0u8; 16];
        fill_random(&mut jti);
        Assertion {
            iss: issuer.into(),
            aud: audience.into(),
            sub: subject.into(),
            email: None,
            groups: Vec::new(),
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs() as i64,
            jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    pub fn with_email(mut self, email: impl Into<String>) -> Assertion {
        self.email = Some(email.into());
        self
    }

    pub fn with_groups<S: Into<String>>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> Assertion {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// The claims as JSON, to sign with [`SigningKey::sign`] (add more members first if
    /// needed).
    pub fn claims(&self) -> Value {
        serde_json::to_value(self).expect("strings and integers serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    // Test-only keys, made with openssl (see the module docs for the commands).
    const SEC1: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIJAabBBA/3et5z9yZz5/5tQpJEw22oQpOLKv5Wf8x2g3oAoGCCqGSM49
AwEHoUQDQgAE/7xPDbYZ3HzhtYv4BwRGjHr2ebZzXBF9WJQqoLpA4VSHgipbLLTH
J3U20tV9fBzP2YDB0+/Eh2Ow+gbr798sug==
-----END EC PRIVATE KEY-----
";
    /// The same key as [`SEC1`], converted with `openssl pkcs8 -topk8 -nocrypt`.
    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkBpsEED/d63nP3Jn
Pn/m1CkkTDbahCk4sq/lZ/zHaDehRANCAAT/vE8NthncfOG1i/gHBEaMevZ5tnNc
EX1YlCqgukDhVIeCKlsstMcndTbS1X18HM/ZgMHT78SHY7D6Buvv3yy6
-----END PRIVATE KEY-----
";
    /// Computed from `openssl ec -pubout` output with Python's hashlib.
    const X: &str = "_7xPDbYZ3HzhtYv4BwRGjHr2ebZzXBF9WJQqoLpA4VQ";
    const Y: &str = "h4IqWyy0xyd1NtLVfXwcz9mAwdPvxIdjsPoG6-_fLLo";
    const KID: &str = "rZg9iJvsveISfXgQWKuhkaipwYvoBNQiTR8j3Z-Krpw";

    const P384: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDhwlj3C4p7LEUFloWs
BMUV/gZLTcXgzbkVuYAdzxY52EzLdobc309MG6qRRUtJhUqhZANiAARySAD5dgFH
I8nwKduoKc6EwbRp/HSc+NNBquBhgFKkjYn0QNxiEjwhNPLBMBx2jXv+MkGSWTHr
/MlH/CAqaOij7HDw6iQyuxLVDfpwzq5WvL+iw0wwj9SSJdWWW7v3UL8=
-----END PRIVATE KEY-----
";
    const SEC1_NO_PUBLIC: &str = "-----BEGIN EC PRIVATE KEY-----
MDECAQEEIJAabBBA/3et5z9yZz5/5tQpJEw22oQpOLKv5Wf8x2g3oAoGCCqGSM49
AwEH
-----END EC PRIVATE KEY-----
";
    const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIFxPx4dDpGkJzWCfB/pTCn7LBS8aoGYz3tYb6kvvggdP
-----END PRIVATE KEY-----
";

    fn b64_json(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Verifies `jws` with nothing but the JWKS, as an upstream would.
    fn verify_with_jwks(jws: &str, jwks: &Value) -> Result<(Value, Value), &'static str> {
        let parts: Vec<&str> = jws.split('.').collect();
        let [h, c, s] = parts[..] else {
            return Err("not three parts");
        };
        let header = b64_json(h);
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .ok_or("unknown kid")?;
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "signature not base64")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "bad signature")?;
        Ok((header, b64_json(c)))
    }

    #[test]
    fn reads_pkcs8_and_sec1_forms_of_the_same_key() {
        for pem in [
            PKCS8,
            SEC1,
            &SEC1[SEC1.find("-----BEGIN EC PRIVATE").unwrap()..],
        ] {
            let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.kid(), KID);
            assert_eq!(key.jwk()["x"], X);
            assert_eq!(key.jwk()["y"], Y);
        }
    }

    #[test]
    fn refuses_other_keys() {
        let rsa1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        for (pem, want) in [
            ("", Some(SigningKeyError::NoPrivateKey)),
            ("not pem", Some(SigningKeyError::NoPrivateKey)),
            (encrypted, Some(SigningKeyError::NoPrivateKey)),
            (cert, Some(SigningKeyError::NoPrivateKey)),
            (rsa1, Some(SigningKeyError::Rsa)),
            (P384, None),
            (ED25519, None),
            (SEC1_NO_PUBLIC, None),
        ] {
            let err = SigningKey::from_pem(pem.as_bytes()).unwrap_err();
            match want {
                Some(want) => assert_eq!(err, want, "{pem}"),
                None => assert!(
                    matches!(err, SigningKeyError::Rejected(_)),
                    "{pem}: {err:?}"
                ),
            }
        }
    }

    #[test]
    fn jwks_shape() {
        let key = SigningKey::from_pem(PKCS8.as_bytes()).unwrap();
        assert_eq!(
            key.jwks_json(),
            json!({"keys": [{
                "kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": KID,
                "use": "sig", "alg": "ES256",
            }]})
        );
    }

    #[test]
    fn kid_is_stable_and_generated_keys_differ() {
        let key = SigningKey::generate();
        assert_eq!(key.kid(), key.kid());
        assert_eq!(key.jwks_json(), key.jwks_json());
        assert_eq!(key.kid().len(), 43);
        assert_ne!(SigningKey::generate().kid(), key.kid());
        assert_eq!(
            format!("{key:?}"),
            format!("SigningKey {{ kid: {:?}, .. }}", key.kid())
        );
    }

    #[test]
    fn signed_assertions_verify_against_the_jwks() {
        let now: jiff::Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        for key in [
            SigningKey::from_pem(SEC1.as_bytes()).unwrap(),
            SigningKey::generate(),
        ] {
            let a = Assertion::new("https://app.example.com", "app.example.com", "00u1", now)
                .with_email("ada@example.com")
                .with_groups(["admin", "ops"]);
            let jws = key.sign(&a.claims());
            let (header, claims) = verify_with_jwks(&jws, &key.jwks_json()).unwrap();
            assert_eq!(
                header,
                json!({"alg": "ES256", "typ": "JWT", "kid": key.kid()})
            );
            assert_eq!(claims["iss"], "https://app.example.com");
            assert_eq!(claims["aud"], "app.example.com");
            assert_eq!(claims["sub"], "00u1");
            assert_eq!(claims["email"], "ada@example.com");
            assert_eq!(claims["groups"], json!(["admin", "ops"]));
            assert_eq!(claims["iat"], 1735787045);
            assert_eq!(claims["exp"], 1735787045 + 300);
            assert_eq!(claims, a.claims());

            // Another key's JWKS, or any changed byte, fails.
            assert!(verify_with_jwks(&jws, &SigningKey::generate().jwks_json()).is_err());
            let mut other_kid = SigningKey::generate().jwks_json();
            other_kid["keys"][0]["kid"] = json!(key.kid());
            assert_eq!(verify_with_jwks(&jws, &other_kid), Err("bad signature"));
            let forged = a.clone().with_groups(["admin", "ops", "root"]);
            let (h, _, s) = {
                let p: Vec<&str> = jws.split('.').collect();
                (p[0].to_string(), p[1].to_string(), p[2].to_string())
            };
            let tampered = format!(
                "{h}.{}.{s}",
                URL_SAFE_NO_PAD.encode(forged.claims().to_string())
            );
            assert_eq!(
                verify_with_jwks(&tampered, &key.jwks_json()),
                Err("bad signature")
            );
        }
    }

    #[test]
    fn assertion_claims() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let a = Assertion::new("i", "a", "s", now);
        let b = Assertion::new("i", "a", "s", now);
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.jti.len(), 32);
        assert!(
            a.jti
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(
            a.claims(),
            json!({"iss": "i", "aud": "a", "sub": "s", "groups": [], "iat": 1000, "exp": 1300, "jti": a.jti})
        );
    }

    #[test]
    fn der_lengths() {
        for (len, prefix) in [
            (0usize, vec![0x04, 0x00]),
            (127, vec![0x04, 0x7f]),
            (128, vec![0x04, 0x81, 0x80]),
            (300, vec![0x04, 0x82, 0x01, 0x2c]),
        ] {
            let mut out = Vec::new();
            der_push(&mut out, 0x04, &vec![0u8; len]);
            assert_eq!(&out[..prefix.len()], &prefix[..], "{len}");
            assert_eq!(out.len(), prefix.len() + len);
        }
    }
}
