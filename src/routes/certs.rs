//! Certificates as the model carries them: PEM pairs from the config file or from
//! Ingress TLS Secrets, and the names each may serve. Plain data; `proxy::tls` loads
//! them into the SNI store.

/// A certificate chain and key, as PEM, with a name for messages.
#[derive(Clone)]
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
