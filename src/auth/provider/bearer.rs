//! Bearer tokens as `bearer_token_format` reads them: ID tokens for our client, JWT
//! access tokens for an allowed audience issued to an allowed client.

use super::*;

impl Provider {
    /// Verifies a bearer token from this provider as `format` says: an ID token for our
    /// client, or a JWT access token for one of `access_token_audiences` issued to our
    /// client (or one of `access_token_clients`). Returns its claims.
    pub async fn verify_bearer(
        &self,
        raw: &str,
        format: BearerFormat,
    ) -> Result<Map<String, Value>, ProviderError> {
        let token: CoreIdToken = raw
            .parse()
            .map_err(|e| ProviderError::InvalidToken(format!("malformed: {e}")))?;
        let claims = payload(raw)?;
        let kind = token_kind(raw, &claims);
        let refuse = |why: &str| Err(ProviderError::InvalidToken(why.to_string()));
        match (format, kind) {
            (BearerFormat::IdpIdentityToken, TokenKind::Access) => {
                return refuse("an access token where bearer_token_format asks for ID tokens");
            }
            (BearerFormat::IdpAccessToken, TokenKind::Id) => {
                return refuse("an ID token where bearer_token_format asks for access tokens");
            }
            (_, TokenKind::Access) if self.settings.access_token_audiences.is_empty() => {
                return refuse(
                    "access tokens are not accepted (idp_access_token_allowed_audiences is empty)",
                );
            }
            _ => {}
        }
        if kind == TokenKind::Access {
            let audiences = string_or_list(claims.get("aud"));
            if !audiences
                .iter()
                .any(|a| self.settings.access_token_audiences.iter().any(|b| b == a))
            {
                return Err(ProviderError::InvalidToken(format!(
                    "access token audience {audiences:?} is not in idp_access_token_allowed_audiences"
                )));
            }
            let client = access_token_client(&claims);
            let ours = client.is_some_and(|c| {
                c == self.settings.client_id
                    || self.settings.access_token_clients.iter().any(|a| a == c)
            });
            if !ours {
                return Err(ProviderError::InvalidToken(format!(
                    "access token issued to client {client:?}, which is not ours nor in \
                     idp_access_token_allowed_clients"
                )));
            }
        }
        let check = |d: &Discovered| {
            let verifier = d.client.id_token_verifier();
            // ID tokens: the library checks `aud` holds our client ID (and `azp`).
            // Access tokens: their audience and client were checked above.
            let verifier = match kind {
                TokenKind::Id => verifier,
                TokenKind::Access => verifier
                    .require_audience_match(false)
                    .set_other_audience_verifier_fn(|_| true),
            }
            .set_allowed_jose_types(bearer_jose_types());
            token
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .map(|_| ())
        };
        self.with_key_refresh(check).await?;
        Ok(claims)
    }
}

/// Which kind of token a bearer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenKind {
    Id,
    Access,
}

/// Access tokens say so (RFC 9068 `typ: at+jwt`) or carry what only access tokens
/// carry: scopes and the client they were issued to (Okta `scp`/`cid`, RFC 9068
/// `scope`/`client_id`). Everything else is read as an ID token, whose stricter
/// audience rule (our client ID) then applies.
pub(super) fn token_kind(raw: &str, claims: &Map<String, Value>) -> TokenKind {
    let typ = raw
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|h| serde_json::from_slice::<Map<String, Value>>(&h).ok())
        .and_then(|h| {
            h.get("typ")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        });
    let access = typ
        .as_deref()
        .is_some_and(|t| t == "at+jwt" || t == "application/at+jwt")
        || ["scp", "cid", "client_id", "scope"]
            .iter()
            .any(|k| claims.contains_key(*k));
    if access {
        TokenKind::Access
    } else {
        TokenKind::Id
    }
}

/// A JWT's `exp`, unverified (for how long to remember a token already trusted).
pub fn unverified_exp(raw: &str) -> Option<i64> {
    payload(raw).ok()?.get("exp")?.as_i64()
}

/// The client an access token was issued to: Okta's `cid`, RFC 9068's `client_id`,
/// else `azp`.
pub fn access_token_client(claims: &Map<String, Value>) -> Option<&str> {
    ["cid", "client_id", "azp"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str))
}

pub(super) fn string_or_list(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `typ` values of bearer tokens: ID tokens (`JWT`) and RFC 9068 access tokens
/// (`at+jwt`, which Okta's authorization servers use).
pub(super) fn bearer_jose_types() -> Vec<openidconnect::NormalizedJsonWebTokenType> {
    ["JWT", "at+jwt"]
        .into_iter()
        .filter_map(|t| {
            openidconnect::JsonWebTokenType::new(t.to_string())
                .normalize()
                .ok()
        })
        .collect()
}
