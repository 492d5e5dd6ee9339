//! The provider's other ends: revocation, end-session, and whether it answers at all
//! (what decides if sessions outlive their tokens during an outage).

use super::*;

impl Provider {
    /// Revokes a refresh token at the provider's RFC 7009 endpoint, when discovery
    /// lists one. `Ok(false)`: the provider has none.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, ProviderError> {
        let d = self.discovered(false).await?;
        let Some(url) = &d.revocation else {
            return Ok(false);
        };
        let resp = self
            .http
            .post(url)
            .basic_auth(
                url_encode(&self.settings.client_id),
                Some(url_encode(&self.settings.client_secret)),
            )
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("revocation: {}", error_chain(&e))))?;
        if resp.status().is_success() {
            Ok(true)
        } else {
            Err(ProviderError::Unavailable(format!(
                "revocation answered {}",
                resp.status()
            )))
        }
    }

    /// Whether the provider answers at all (its discovery document, over HTTP): what
    /// decides if an expired session may be kept during an outage. Probed at most every
    /// few seconds; a failed refresh counts as an answer too ([`Provider::record_outage`]).
    pub async fn reachable(&self) -> bool {
        let mut last = self.reachable.lock().await;
        if let Some((at, up)) = *last
            && at.elapsed() < REACHABILITY_FOR
        {
            return up;
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let up = match tokio::time::timeout(PROBE_TIMEOUT, self.http.get(&url).send()).await {
            Ok(Ok(resp)) => !resp.status().is_server_error(),
            _ => false,
        };
        if up {
            self.down_since
                .store(0, std::sync::atomic::Ordering::Relaxed);
        } else if self.note_down() {
            tracing::warn!(issuer = %self.settings.issuer, "the identity provider is unreachable");
        }
        *last = Some((Instant::now(), up));
        up
    }

    /// Since when (unix seconds) the provider has been unreachable, or `None` when it
    /// answers.
    pub async fn outage_since(&self) -> Option<i64> {
        if self.reachable().await {
            return None;
        }
        match self.down_since.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// Records the start of an outage unless one is recorded; `true` when it is new.
    pub(super) fn note_down(&self) -> bool {
        let now = jiff::Timestamp::now().as_second();
        self.down_since
            .compare_exchange(
                0,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Notes that a call to the provider just failed for want of an answer.
    pub async fn record_outage(&self) {
        self.note_down();
        *self.reachable.lock().await = Some((Instant::now(), false));
    }

    /// The provider's end-session URL for this session, if it has one.
    pub async fn end_session_url(
        &self,
        id_token: &str,
        post_logout_redirect: &str,
    ) -> Option<String> {
        let d = self.discovered(false).await.ok()?;
        let endpoint = d.end_session.as_ref()?;
        let mut req =
            LogoutRequest::from(openidconnect::EndSessionUrl::new(endpoint.clone()).ok()?)
                .set_client_id(ClientId::new(self.settings.client_id.clone()));
        if let Ok(token) = id_token.parse::<CoreIdToken>() {
            req = req.set_id_token_hint(&token);
        }
        if let Ok(url) = PostLogoutRedirectUrl::new(post_logout_redirect.to_string()) {
            req = req.set_post_logout_redirect_uri(url);
        }
        Some(req.http_get_url().to_string())
    }
}

/// RFC 6749 §2.3.1: client credentials are form-encoded before HTTP Basic.
pub(super) fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
