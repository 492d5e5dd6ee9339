//! The authorization-code + PKCE flow and token refresh: the sign-in URL, the code
//! exchange, ID token verification (refetching keys once for an unknown one) and
//! userinfo.

use super::*;

impl Provider {
    /// Where to send the browser to sign in, and what to remember until it returns.
    pub async fn authorize_url(&self) -> Result<(String, PendingAuth), ProviderError> {
        let d = self.discovered(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = d.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            PendingAuth {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges an authorization code and verifies the ID token against `pending`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pending: &PendingAuth,
    ) -> Result<Tokens, ProviderError> {
        let d = self.discovered(false).await?;
        let response = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let nonce = Nonce::new(pending.nonce.clone());
        self.finish(response, Some(&nonce), None).await
    }

    /// Uses a refresh token. `InvalidGrant` means the session must end.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ProviderError> {
        let d = self.discovered(false).await?;
        let response = d
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
            .map_err(|e| ProviderError::Config(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        self.finish(response, None, Some(refresh_token)).await
    }

    async fn finish(
        &self,
        response: CoreTokenResponse,
        nonce: Option<&Nonce>,
        previous_refresh: Option<&str>,
    ) -> Result<Tokens, ProviderError> {
        let id_token = response.id_token().ok_or_else(|| {
            ProviderError::InvalidToken("no id_token in the token response".into())
        })?;
        let raw = id_token.to_string();
        let mut claims = self.verify_id_token(&raw, nonce).await?;
        let now = jiff::Timestamp::now().as_second();
        let mut expires_at = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        if let Some(lifetime) = response.expires_in() {
            expires_at = expires_at.min(now + lifetime.as_secs() as i64);
        }
        if let Some(info) = self.userinfo(response.access_token().secret()).await {
            let same_subject = info.get("sub") == claims.get("sub");
            if same_subject {
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            } else {
                tracing::warn!("userinfo answered for a different subject; ignoring it");
            }
        }
        Ok(Tokens {
            id_token: raw,
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or(previous_refresh.map(str::to_string)),
            expires_at,
            claims,
        })
    }

    /// Verifies an ID token (signature, issuer, audience, expiry, nonce when given) and
    /// returns all its claims.
    async fn verify_id_token(
        &self,
        raw: &str,
        nonce: Option<&Nonce>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let token: CoreIdToken = raw
            .parse()
            .map_err(|e| ProviderError::InvalidToken(format!("malformed: {e}")))?;
        let check = |d: &Discovered| {
            let verifier = d.client.id_token_verifier();
            match nonce {
                Some(n) => token.claims(&verifier, n).map(|_| ()),
                // Refreshed ID tokens carry no nonce (or the original one).
                None => token
                    .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                    .map(|_| ()),
            }
        };
        self.with_key_refresh(check).await?;
        payload(raw)
    }

    /// Runs a verification; when it fails for want of a key, refetches the provider's
    /// keys once and tries again.
    pub(super) async fn with_key_refresh<F>(&self, check: F) -> Result<(), ProviderError>
    where
        F: Fn(&Discovered) -> Result<(), openidconnect::ClaimsVerificationError>,
    {
        let d = self.discovered(false).await?;
        match check(&d) {
            Ok(()) => Ok(()),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(e)) => {
                tracing::info!(error = %e, "token signed with an unknown key; refetching keys");
                let d = self.discovered(true).await?;
                check(&d).map_err(|e| ProviderError::InvalidToken(e.to_string()))
            }
            Err(e) => Err(ProviderError::InvalidToken(e.to_string())),
        }
    }

    async fn userinfo(&self, access_token: &str) -> Option<Map<String, Value>> {
        let d = self.discovered(false).await.ok()?;
        let url = d.client.user_info_url()?.url().clone();
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            tracing::debug!(status = %resp.status(), "userinfo refused; using ID token claims only");
            return None;
        }
        resp.json::<Map<String, Value>>().await.ok()
    }
}

fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> ProviderError {
    match &e {
        RequestTokenError::ServerResponse(r)
            if *r.error() == openidconnect::core::CoreErrorResponseType::InvalidGrant =>
        {
            ProviderError::InvalidGrant(
                r.error_description()
                    .cloned()
                    .unwrap_or_else(|| "invalid_grant".into()),
            )
        }
        RequestTokenError::ServerResponse(r) => ProviderError::InvalidToken(format!(
            "{}: {}",
            r.error().as_ref(),
            r.error_description().map(String::as_str).unwrap_or("")
        )),
        _ => ProviderError::Unavailable(error_chain(&e)),
    }
}
