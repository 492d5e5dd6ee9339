//! Bearer tokens: verified as `bearer_token_format` says, refused once their session has
//! signed out; the identity a token stands for.

use super::*;

impl Auth {
    /// A bearer token the provider issued, unless its session signed out.
    pub(super) async fn verify_bearer(
        &self,
        token: &str,
        format: BearerFormat,
        now: i64,
    ) -> Result<serde_json::Map<String, Value>, BearerRefused> {
        let claims = self
            .provider
            .verify_bearer(token, format)
            .await
            .map_err(BearerRefused::Provider)?;
        let digest = token_digest(token);
        let in_memory = {
            let mut revoked = crate::sync::lock(&self.signed_out_tokens);
            revoked.retain(|_, exp| *exp > now);
            revoked.contains_key(&digest)
        };
        // With Redis, every replica knows; an unreadable store fails closed.
        let signed_out = in_memory
            || self
                .store
                .is_token_signed_out(&digest)
                .await
                .map_err(BearerRefused::Store)?;
        if signed_out {
            return Err(BearerRefused::Provider(ProviderError::InvalidToken(
                "the token's session has signed out".into(),
            )));
        }
        Ok(claims)
    }

    /// Refuses `id_token` as a bearer from now until it expires (sign-out).
    pub(in crate::auth) async fn sign_out_token(&self, id_token: &str, now: i64) {
        let exp = crate::auth::provider::unverified_exp(id_token).unwrap_or(now + 3600);
        if exp <= now {
            return;
        }
        let digest = token_digest(id_token);
        crate::sync::lock(&self.signed_out_tokens).insert(digest, exp);
        if let Err(e) = self.store.sign_out_token(&digest, (exp - now) as u64).await {
            tracing::warn!(error = %e, "could not record the signed-out ID token in the store");
        }
    }
}

/// Why a bearer token was not accepted.
pub(super) enum BearerRefused {
    Provider(ProviderError),
    /// The session store could not say whether it was signed out.
    Store(StoreError),
}

pub(super) fn token_digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && token.matches('.').count() == 2)
        .then_some(token.trim())
}

/// The identity a verified bearer token stands for. A token with no user — the
/// `client_credentials` grant, whose subject is the client itself — gets an empty user:
/// no identity criterion allows it, only its claims (e.g. `claim/cid`) can.
pub(super) fn identity_from_claims(claims: &serde_json::Map<String, Value>) -> Identity {
    let text = |k: &str| claim_text(claims, k);
    let client = crate::auth::provider::access_token_client(claims);
    // Tokens a client got for itself (Auth0 `gty`, Entra `idtyp`, or a subject that is
    // the client): no user.
    let for_a_client = client.is_some_and(|c| c == text("sub"))
        || text("gty").split(' ').any(|g| g == "client-credentials")
        || text("idtyp") == "app";
    // Okta access tokens name the user in `uid` and the login in `sub`.
    let user = match text("uid") {
        u if !u.is_empty() => u,
        _ if for_a_client => String::new(),
        _ => text("sub"),
    };
    let email = match text("email") {
        e if e.is_empty() && !user.is_empty() && text("sub").contains('@') => text("sub"),
        e => e,
    };
    Identity {
        user,
        email,
        groups: groups_claim(claims.get("groups")),
        claims: claims.clone(),
    }
}
