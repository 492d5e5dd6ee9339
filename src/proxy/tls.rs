//! Server certificates: a store indexed by name and a resolver that picks one per
//! connection by SNI — exact name, then one-label wildcard, then the default. The store
//! sits behind an `ArcSwap`, so new certificates apply to the next handshake without a
//! restart and without touching open connections.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::PrivateKeyDer;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct CertError {
    /// A file name or Secret name, for the message.
    pub source_name: String,
    pub message: String,
}

/// Certificates by the DNS names in their SAN extension.
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    /// True when `default` was generated rather than configured.
    generated_default: bool,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .field("generated_default", &self.generated_default)
            .finish()
    }
}

pub use crate::routes::certs::{PemPair, ScopedPair};

/// Names for the generated certificate: every exact route host, and `localhost`.
pub fn self_signed_names(model: &crate::routes::Model) -> Vec<String> {
    use crate::routes::HostMatch;
    let mut names: Vec<String> = model
        .routes
        .iter()
        .filter_map(|r| match &r.host {
            HostMatch::Exact(h) => Some(h.clone()),
            HostMatch::Wildcard(h) => Some(format!("*.{h}")),
            HostMatch::Any => None,
        })
        .chain(model.authenticate_host.iter().map(|h| h.host.clone()))
        .collect();
    names.push("localhost".into());
    names.sort();
    names.dedup();
    names
}

impl CertStore {
    /// The controller's store. `trusted` pairs (the config file's) serve every name
    /// they hold and the first is the default (else a generated one: never an Ingress'
    /// Secret). Each `scoped` pair serves the names it lists that its certificate
    /// covers; the first for a name wins. `pinned` exact names get the default rather
    /// than a wildcard entry when nothing serves them exactly. Nothing that fails to
    /// load takes the rest down; the errors say what was skipped.
    pub fn scoped(
        trusted: &[PemPair],
        scoped: &[ScopedPair],
        pinned: &[String],
        fallback_names: &[String],
    ) -> (CertStore, Vec<CertError>) {
        let (mut store, mut errors) = CertStore::lenient(trusted, fallback_names);
        for s in scoped {
            let (key, sans) = match load_pair(&s.pair) {
                Ok(loaded) => loaded,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let key = Arc::new(key);
            let sans: Vec<String> = sans.iter().map(|n| n.to_ascii_lowercase()).collect();
            for name in &s.names {
                if !covers(&sans, name) {
                    errors.push(CertError {
                        source_name: s.pair.source_name.clone(),
                        message: format!(
                            "the certificate does not cover `{name}`; not served for it"
                        ),
                    });
                    continue;
                }
                let (map, name) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut store.wildcard, parent.to_string()),
                    None => (&mut store.exact, name.clone()),
                };
                map.entry(name).or_insert_with(|| key.clone());
            }
        }
        for name in pinned {
            store
                .exact
                .entry(name.to_ascii_lowercase())
                .or_insert_with(|| store.default.clone());
        }
        (store, errors)
    }

    /// Indexes `pairs` by their SAN DNS names; the first pair is the default for clients
    /// without SNI or with unknown names. With no pairs, a self-signed certificate for
    /// `fallback_names` is generated (browsers will warn; configure real certificates).
    /// A pair that fails to parse is an error naming it.
    pub fn new(pairs: &[PemPair], fallback_names: &[String]) -> Result<CertStore, CertError> {
        let mut store = CertStore {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: Arc::new(self_signed(fallback_names)?),
            generated_default: true,
        };
        for (i, pair) in pairs.iter().enumerate() {
            let (key, names) = load_pair(pair)?;
            let key = Arc::new(key);
            if i == 0 {
                store.default = key.clone();
                store.generated_default = false;
            }
            for name in names {
                let name = name.to_ascii_lowercase();
                let (map, name) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut store.wildcard, parent.to_string()),
                    None => (&mut store.exact, name),
                };
                // The first certificate for a name wins, as with the routes.
                map.entry(name).or_insert_with(|| key.clone());
            }
        }
        Ok(store)
    }

    /// Builds a store from what parses, reporting the rest, so one bad Secret never takes
    /// the other certificates down.
    pub fn lenient(pairs: &[PemPair], fallback_names: &[String]) -> (CertStore, Vec<CertError>) {
        let mut good = Vec::with_capacity(pairs.len());
        let mut errors = Vec::new();
        for pair in pairs {
            match load_pair(pair) {
                Ok(_) => good.push(pair.clone()),
                Err(e) => errors.push(e),
            }
        }
        match CertStore::new(&good, fallback_names) {
            Ok(store) => (store, errors),
            Err(e) => {
                errors.push(e);
                let store = CertStore::new(&[], fallback_names)
                    .expect("a self-signed certificate can always be generated");
                (store, errors)
            }
        }
    }

    /// The certificate for a server name: exact, then `*.parent`, then the default.
    pub fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        if let Some(name) = server_name {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return k.clone();
            }
            if let Some(k) = name
                .split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
            {
                return k.clone();
            }
        }
        self.default.clone()
    }

    pub fn has_generated_default(&self) -> bool {
        self.generated_default
    }
}

/// Whether certificate names `sans` cover `name` (exact, or `x.parent` under
/// `*.parent`; a `*.parent` name needs that very wildcard).
fn covers(sans: &[String], name: &str) -> bool {
    if sans.iter().any(|s| s == name) {
        return true;
    }
    !name.starts_with("*.")
        && name
            .split_once('.')
            .is_some_and(|(_, parent)| sans.iter().any(|s| s.strip_prefix("*.") == Some(parent)))
}

fn load_pair(pair: &PemPair) -> Result<(CertifiedKey, Vec<String>), CertError> {
    crate::routes::certs::load(pair).map_err(|message| CertError {
        source_name: pair.source_name.clone(),
        message,
    })
}

/// A self-signed certificate for `names` (or `localhost`).
fn self_signed(names: &[String]) -> Result<CertifiedKey, CertError> {
    let mut names: Vec<String> = names.to_vec();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let err = |e: rcgen::Error| CertError {
        source_name: "generated certificate".into(),
        message: e.to_string(),
    };
    let cert = rcgen::generate_simple_self_signed(names).map_err(err)?;
    let key_der =
        PrivateKeyDer::try_from(cert.signing_key.serialize_der()).map_err(|e| CertError {
            source_name: "generated certificate".into(),
            message: e.to_string(),
        })?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|e| CertError {
            source_name: "generated certificate".into(),
            message: e.to_string(),
        })?;
    Ok(CertifiedKey::new(
        vec![cert.cert.der().clone()],
        signing_key,
    ))
}

// === impl SniResolver ===

/// Resolves each handshake against the current store.
#[derive(Debug)]
pub struct SniResolver(pub Arc<ArcSwap<CertStore>>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().pick(hello.server_name()))
    }
}

/// A rustls server config that resolves by SNI and offers HTTP/2 and HTTP/1.1.
pub fn server_config(store: Arc<ArcSwap<CertStore>>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(store)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> PemPair {
        let cert = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        PemPair {
            source_name: names.join(","),
            cert_pem: cert.cert.pem().into_bytes(),
            key_pem: cert.signing_key.serialize_pem().into_bytes(),
        }
    }

    fn names_of(key: &CertifiedKey) -> Vec<String> {
        webpki::EndEntityCert::try_from(&key.cert[0])
            .unwrap()
            .valid_dns_names()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn picks_exact_then_wildcard_then_default() {
        let store = CertStore::new(
            &[
                pair(&["default.example"]),
                pair(&["*.apps.example"]),
                pair(&["a.apps.example"]),
            ],
            &[],
        )
        .unwrap();
        let cases = [
            (Some("a.apps.example"), "a.apps.example"),
            (Some("B.apps.example"), "*.apps.example"),
            (Some("x.b.apps.example"), "default.example"),
            (Some("apps.example"), "default.example"),
            (None, "default.example"),
        ];
        for (sni, want) in cases {
            assert_eq!(names_of(&store.pick(sni)), [want], "{sni:?}");
        }
        assert!(!store.has_generated_default());
    }

    #[test]
    fn scoped_pairs_serve_only_their_names_and_never_the_default() {
        let victim = pair(&["grafana.corp.example"]);
        let mut squatter = pair(&["grafana.corp.example", "b.corp.example"]);
        squatter.source_name = "secret aaa/squat".into();
        let wildcard = pair(&["*.corp.example"]);
        let scoped = [
            // Sorted first, but scoped to its own host only.
            ScopedPair {
                pair: squatter,
                names: vec!["b.corp.example".into()],
            },
            ScopedPair {
                pair: victim,
                names: vec!["grafana.corp.example".into()],
            },
            ScopedPair {
                pair: wildcard,
                names: vec!["*.corp.example".into(), "other.example".into()],
            },
        ];
        let pinned = ["owned-elsewhere.corp.example".to_string()];
        let (store, errors) = CertStore::scoped(&[], &scoped, &pinned, &["default.test".into()]);
        assert_eq!(errors.len(), 1, "the wildcard does not cover other.example");
        assert!(errors[0].message.contains("other.example"));
        let cases = [
            (Some("grafana.corp.example"), "grafana.corp.example"),
            (Some("b.corp.example"), "grafana.corp.example"),
            (Some("x.corp.example"), "*.corp.example"),
            // A name the wildcard's namespace does not own gets the default.
            (Some("owned-elsewhere.corp.example"), "default.test"),
            (Some("unknown.example"), "default.test"),
            (None, "default.test"),
        ];
        for (sni, want) in cases {
            assert_eq!(names_of(&store.pick(sni))[0], want, "{sni:?}");
        }
        assert!(
            store.has_generated_default(),
            "an Ingress Secret never becomes the default"
        );
    }

    #[test]
    fn trusted_pairs_keep_the_default_and_win_their_names() {
        let config = pair(&["authenticate.corp.example", "*.corp.example"]);
        let scoped = [ScopedPair {
            pair: pair(&["*.corp.example"]),
            names: vec!["*.corp.example".into()],
        }];
        let (store, errors) = CertStore::scoped(&[config], &scoped, &[], &[]);
        assert!(errors.is_empty());
        assert!(!store.has_generated_default());
        assert_eq!(
            names_of(&store.pick(None)),
            ["authenticate.corp.example", "*.corp.example"]
        );
        assert_eq!(
            names_of(&store.pick(Some("x.corp.example")))[0],
            "authenticate.corp.example"
        );
    }

    #[test]
    fn generates_a_default_when_none_is_configured() {
        let store = CertStore::new(&[], &["app.localhost".into()]).unwrap();
        assert!(store.has_generated_default());
        assert_eq!(names_of(&store.pick(Some("x"))), ["app.localhost"]);
    }

    #[test]
    fn a_bad_pair_is_named_and_lenient_keeps_the_rest() {
        let mut bad = pair(&["bad.example"]);
        bad.source_name = "secret apps/bad-tls".into();
        bad.key_pem = pair(&["other.example"]).key_pem;
        let err = CertStore::new(&[bad.clone()], &[]).unwrap_err();
        assert!(err.to_string().starts_with("secret apps/bad-tls:"), "{err}");
        let (store, errors) = CertStore::lenient(&[bad, pair(&["good.example"])], &[]);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            names_of(&store.pick(Some("good.example"))),
            ["good.example"]
        );
    }
}
