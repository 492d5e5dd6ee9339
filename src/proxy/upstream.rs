//! Connections to upstreams: pooled clients per TLS setting, and one-off HTTP/1.1
//! connections for protocol upgrades.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tower_service::Service;

use super::Body;
use super::reach::{GuardedConnector, UpstreamGuard};
use crate::routes::{Reach, UpstreamScheme, UpstreamTls};

/// Time allowed to open a TCP connection to an upstream.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle pooled connections kept per upstream address.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

pub type UpstreamClient = Client<HttpsConnector<GuardedConnector>, Body>;

/// The clients for one TLS setting: pooled HTTPS (HTTP/2 by ALPN), prior-knowledge
/// HTTP/2 for h2c, and an HTTP/1.1-only connector for upgrades. Plain HTTP/1.1 goes
/// through the worker's own pool (`h1pool`).
pub struct Clients {
    pub pooled: UpstreamClient,
    pub h2c: UpstreamClient,
    pub upgrade: HttpsConnector<GuardedConnector>,
}

/// Every upstream client, built lazily per thread and distinct TLS setting: each data
/// plane worker pools its own upstream connections, driven by its own runtime, so a
/// request never waits on another thread's connection task.
pub struct Upstreams {
    id: u64,
    roots: Arc<RootCertStore>,
    /// What endpoints may connect to (checked on every resolved address).
    guard: Arc<UpstreamGuard>,
}

/// One [`Upstreams`]' clients on one thread, by TLS setting and reach (a tenant's
/// endpoint never reuses a connection opened for the operator's).
type ClientsByKind = HashMap<(UpstreamTls, Reach), Arc<Clients>>;

thread_local! {
    /// This thread's clients, by [`Upstreams::id`].
    static CLIENTS: RefCell<HashMap<u64, ClientsByKind>> = RefCell::new(HashMap::new());
}

impl Upstreams {
    /// Loads the system's trusted roots once.
    pub fn new() -> Upstreams {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "skipping a system root certificate");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(roots = added, "loaded system root certificates");
        Upstreams {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            roots: Arc::new(roots),
            guard: Arc::default(),
        }
    }

    /// Checks connections with `guard` (set before the first request).
    pub fn set_guard(&mut self, guard: UpstreamGuard) {
        self.guard = Arc::new(guard);
    }

    pub fn guard(&self) -> &UpstreamGuard {
        &self.guard
    }

    /// This thread's clients for a TLS setting and the reach of an endpoint.
    pub fn clients(&self, tls: &UpstreamTls, reach: Reach) -> Arc<Clients> {
        CLIENTS.with(|all| {
            let mut all = all.borrow_mut();
            let mine = all.entry(self.id).or_default();
            let key = (tls.clone(), reach);
            if let Some(c) = mine.get(&key) {
                return c.clone();
            }
            let connector = GuardedConnector {
                guard: self.guard.clone(),
                reach,
            };
            let c = Arc::new(Clients::new(&self.roots, tls, connector));
            mine.insert(key, c.clone());
            c
        })
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        // Other threads' entries go with their threads (the data plane's workers end
        // with the proxy).
        let _ = CLIENTS.try_with(|all| all.borrow_mut().remove(&self.id));
    }
}

impl Default for Upstreams {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    fn new(roots: &Arc<RootCertStore>, tls: &UpstreamTls, tcp: GuardedConnector) -> Clients {
        let pooled = connector(roots, tls, false, tcp.clone());
        let upgrade = connector(roots, tls, true, tcp);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            // The Host header is set by the proxy on purpose; never from the URI.
            .set_host(false);
        let pooled_client = builder.build(pooled.clone());
        let h2c = builder.clone().http2_only(true).build(pooled);
        Clients {
            pooled: pooled_client,
            h2c,
            upgrade,
        }
    }

    /// The client for an endpoint scheme.
    pub fn for_scheme(&self, scheme: UpstreamScheme) -> &UpstreamClient {
        match scheme {
            UpstreamScheme::H2c => &self.h2c,
            UpstreamScheme::Http | UpstreamScheme::Https => &self.pooled,
        }
    }

    /// Opens a fresh HTTP/1.1 connection for an upgrade handshake.
    pub async fn connect_for_upgrade(
        &self,
        uri: Uri,
    ) -> Result<
        hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let mut connector = self.upgrade.clone();
        connector.call(uri).await
    }
}

/// An http-or-https connector; `http1_only` for upgrades, else HTTP/2 is offered by ALPN.
fn connector(
    roots: &Arc<RootCertStore>,
    tls: &UpstreamTls,
    http1_only: bool,
    tcp: GuardedConnector,
) -> HttpsConnector<GuardedConnector> {
    let b = HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(roots, tls))
        .https_or_http();
    let name = tls
        .server_name
        .as_ref()
        .and_then(|n| ServerName::try_from(n.clone()).ok());
    let b = match name {
        Some(name) => b.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => b,
    };
    if http1_only {
        b.enable_http1().wrap_connector(tcp)
    } else {
        b.enable_all_versions().wrap_connector(tcp)
    }
}

fn tls_config(roots: &Arc<RootCertStore>, tls: &UpstreamTls) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    if tls.skip_verify {
        return builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth();
    }
    let Some(pem) = &tls.ca_pem else {
        // The shared system roots: no copy per worker and TLS setting.
        return builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| match c {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable custom CA certificate");
                None
            }
        })
        .collect();
    let mut roots = (**roots).clone();
    roots.add_parsable_certificates(certs);
    builder.with_root_certificates(roots).with_no_client_auth()
}

/// `tls_skip_verify`: accepts any upstream certificate, still checking handshake
/// signatures so the connection is at least encrypted to whoever answered.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
