//! Certificates as the model carries them: PEM pairs from the config file or from
//! Ingress TLS Secrets, and the names each may serve. Plain data, and the one check of
//! a pair ([`load`]: no clock, no sockets) that `proxy::tls` uses to fill the SNI store
//! and the Gateway index uses to judge a listener's `certificateRefs`.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and key, as PEM, with a name for messages.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    pub source_name: String,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("source_name", &self.source_name)
            .finish_non_exhaustive()
    }
}

/// A certificate that may serve only some of the names it holds: an Ingress' TLS
/// Secret, for the `spec.tls[].hosts` its namespace owns.
#[derive(Clone, Debug)]
pub struct ScopedPair {
    pub pair: PemPair,
    /// Lower-case exact names and `*.parent` wildcards.
    pub names: Vec<String>,
}

/// `pair` as a signing key with its chain, and the DNS names of its leaf; the error
/// says what does not parse or does not belong together.
pub fn load(pair: &PemPair) -> Result<(CertifiedKey, Vec<String>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pair.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM does not parse: {e}"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| "no CERTIFICATE block in the certificate PEM".to_string())?;
    let key_der = PrivateKeyDer::from_pem_slice(&pair.key_pem)
        .map_err(|e| format!("private key PEM does not parse: {e}"))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("certificate does not parse: {e}"))?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    let key = CertifiedKey::new(chain, signing_key);
    key.keys_match()
        .map_err(|e| format!("the private key does not belong to the certificate: {e}"))?;
    Ok((key, names))
}
