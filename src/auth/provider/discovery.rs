//! Discovery: the provider's document and keys, fetched lazily, cached, refetched when
//! stale or when a token names an unknown key; and the HTTP client that fetches them.

use super::*;

impl Provider {
    /// The discovered provider, fetching it when missing, stale, or when `force` (an
    /// unknown key) and the last fetch is not very recent.
    pub(super) async fn discovered(&self, force: bool) -> Result<Arc<Discovered>, ProviderError> {
        let fresh = |d: &Discovered| {
            let age = d.fetched.elapsed();
            age < DISCOVERY_MAX_AGE && !(force && age > MIN_FORCED_REFRESH)
        };
        if let Some(d) = self.discovered.load_full().filter(|d| fresh(d)) {
            return Ok(d);
        }
        let _one_at_a_time = self.refetch.lock().await;
        if let Some(d) = self.discovered.load_full().filter(|d| fresh(d)) {
            return Ok(d);
        }
        match self.discover().await {
            Ok(d) => {
                let d = Arc::new(d);
                self.discovered.store(Some(d.clone()));
                tracing::info!(issuer = %self.settings.issuer, "identity provider discovered");
                Ok(d)
            }
            // A stale document beats none while the provider is down.
            Err(e) => match self.discovered.load_full() {
                Some(d) if !force => {
                    tracing::warn!(error = %e, "rediscovery failed; keeping the previous document");
                    Ok(d)
                }
                _ => Err(e),
            },
        }
    }

    async fn discover(&self) -> Result<Discovered, ProviderError> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| ProviderError::Config(e.to_string()))?;
        let metadata = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery: {}", error_chain(&e))))?;
        let end_session = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().to_string());
        let revocation = metadata
            .additional_metadata()
            .additional_metadata
            .revocation_endpoint
            .clone()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.settings.redirect_url.clone())
                .map_err(|e| ProviderError::Config(e.to_string()))?,
        );
        Ok(Discovered {
            client,
            end_session,
            revocation,
            fetched: Instant::now(),
        })
    }
}

/// A reqwest client for the provider: never follows redirects, times out, trusts the
/// system roots plus `idp_ca_file`.
pub(super) fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, ProviderError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ProviderError::Config(format!("idp_ca_file: {e}")))?;
        if certs.is_empty() {
            return Err(ProviderError::Config(
                "idp_ca_file holds no certificate".into(),
            ));
        }
        roots.add_parsable_certificates(certs);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ProviderError::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(IDP_TIMEOUT)
        .connect_timeout(IDP_TIMEOUT)
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Config(e.to_string()))
}
