//! `/token` and the ID token.
//!
//! - Client authentication: `client_secret_basic` (RFC 6749 section 2.3.1: id and secret
//!   are form-urlencoded before the Basic encoding, as oauth2-rs sends them) or
//!   `client_secret_post`, not both. Secrets are compared in constant time. Failure:
//!   401 `invalid_client`.
//! - `grant_type=authorization_code`: the code (single-use, 60 s, issued to this client),
//!   `redirect_uri` equal to the one sent to `/authorize`, and a `code_verifier` whose
//!   S256 is the `code_challenge`. Anything wrong: 400 `invalid_grant`; the code is spent
//!   either way.
//! - `grant_type=refresh_token`: a live refresh token of this client (see
//!   [`RunningIdp::revoke_refresh_tokens`](super::RunningIdp::revoke_refresh_tokens));
//!   `scope`, if sent, may only narrow the original grant (`invalid_scope` otherwise).
//! - Success: `access_token` (opaque, random), `token_type: Bearer`, `expires_in`,
//!   `scope`, `id_token`, and `refresh_token` when `offline_access` was granted (on a
//!   refresh, the same token again: kept, not rotated, like Okta's default).
//! - The ID token (ES256, header `kid`): `iss`, `sub`, `aud` = `azp` = the client id,
//!   `exp`, `iat`, `auth_time`, `jti`, `at_hash`, `nonce` (code flow, when sent), then
//!   `email` and `email_verified` (scope `email`), `name` and `preferred_username`
//!   (scope `profile`), and `groups` always.

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use ring::digest::{SHA256, digest};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::{Map, Value, json};

use super::authorize::pkce_charset;
use super::endpoints::{Body, json};
use super::form::{Params, decode};
use super::store::TokenGrant;
use super::{DevClient, DevUser, Idp, REFRESH_LIFETIME, now_unix, random_token};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn invalid_request(description: &str) -> Response<Body> {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> Response<Body> {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client() -> Response<Body> {
    let mut resp = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed.",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="portcullis-dev""#),
    );
    resp
}

pub(super) fn token(
    idp: &Idp,
    headers: &HeaderMap,
    form: Result<Params, String>,
) -> Response<Body> {
    let form = match form {
        Ok(f) => f,
        Err(message) => return invalid_request(&message),
    };
    let client = match authenticate(idp, headers, &form) {
        Ok(client) => client,
        Err(AuthFailure::Client) => return invalid_client(),
        Err(AuthFailure::Request(description)) => return invalid_request(description),
    };
    match form.get("grant_type") {
        Some("authorization_code") => code_grant(idp, client, &form),
        Some("refresh_token") => refresh_grant(idp, client, &form),
        None => invalid_request("grant_type is required."),
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Supported: authorization_code, refresh_token.",
        ),
    }
}

/// Why client authentication failed.
enum AuthFailure {
    /// Unknown client, wrong or missing secret: 401 `invalid_client`.
    Client,
    /// A malformed attempt: 400 `invalid_request`.
    Request(&'static str),
}

/// The client named and proven by `client_secret_basic` or `client_secret_post`.
fn authenticate<'a>(
    idp: &'a Idp,
    headers: &HeaderMap,
    form: &Params,
) -> Result<&'a DevClient, AuthFailure> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(basic_credentials(value).ok_or(AuthFailure::Client)?),
    };
    let (id, secret) = match basic {
        Some((id, secret)) => {
            if form.get("client_secret").is_some() {
                return Err(AuthFailure::Request(
                    "Use one client authentication method, not two.",
                ));
            }
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(AuthFailure::Request(
                    "client_id differs from the Basic credentials.",
                ));
            }
            (id, secret)
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => return Err(AuthFailure::Client),
        },
    };
    match idp.client(&id) {
        Some(client) if idp.secret_matches(client, &secret) => Ok(client),
        _ => Err(AuthFailure::Client),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    Some((decode(id), decode(secret)))
}

/// Whether S256(`verifier`) is `challenge` (RFC 7636 section 4.6).
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && pkce_charset(verifier)
        && URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())) == challenge
}

fn code_grant(idp: &Idp, client: &DevClient, form: &Params) -> Response<Body> {
    let Some(code) = form.get("code") else {
        return invalid_request("code is required.");
    };
    // Spent here, whatever follows: a code is good for one attempt.
    let Some(grant) = idp.store().codes.take(code, Instant::now()) else {
        return invalid_grant("The code is invalid, expired or already used.");
    };
    let request = &grant.request;
    if request.client_id != client.client_id {
        return invalid_grant("The code was issued to another client.");
    }
    if form.get("redirect_uri") != Some(request.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri does not match the authorization request.");
    }
    let verifier = form.get("code_verifier").unwrap_or("");
    if !pkce_matches(verifier, &request.code_challenge) {
        return invalid_grant("PKCE verification failed.");
    }
    let refresh_token = request
        .scopes
        .iter()
        .any(|s| s == "offline_access")
        .then(random_token);
    issue(
        idp,
        TokenGrant {
            client_id: client.client_id.clone(),
            sub: grant.sub.clone(),
            scopes: request.scopes.clone(),
            auth_time: grant.auth_time,
        },
        request.nonce.as_deref(),
        refresh_token,
        true,
    )
}

fn refresh_grant(idp: &Idp, client: &DevClient, form: &Params) -> Response<Body> {
    let Some(refresh_token) = form.get("refresh_token") else {
        return invalid_request("refresh_token is required.");
    };
    let found = idp
        .store()
        .refresh_tokens
        .get(refresh_token, Instant::now())
        .cloned();
    let Some(mut grant) = found else {
        return invalid_grant("The refresh token is invalid, expired or revoked.");
    };
    if grant.client_id != client.client_id {
        return invalid_grant("The refresh token was issued to another client.");
    }
    if let Some(scope) = form.get("scope") {
        let asked: Vec<String> = scope.split_ascii_whitespace().map(str::to_owned).collect();
        if let Some(extra) = asked.iter().find(|s| !grant.scopes.contains(s)) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                &format!("The scope {extra} was not granted."),
            );
        }
        grant.scopes = asked;
    }
    issue(idp, grant, None, Some(refresh_token.to_owned()), false)
}

/// Mints the access token and ID token for `grant`; stores the access token and, when
/// `store_refresh`, the refresh token.
fn issue(
    idp: &Idp,
    grant: TokenGrant,
    nonce: Option<&str>,
    refresh_token: Option<String>,
    store_refresh: bool,
) -> Response<Body> {
    let Some(user) = idp.user(&grant.sub) else {
        return invalid_grant("The user no longer exists.");
    };
    let lifetime = idp.token_lifetime.as_secs();
    let access_token = random_token();
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": grant.scopes.join(" "),
    });
    if grant.scopes.iter().any(|s| s == "openid") {
        let iat = now_unix();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(idp.issuer));
        claims.insert("sub".into(), json!(user.sub));
        claims.insert("aud".into(), json!(grant.client_id));
        claims.insert("azp".into(), json!(grant.client_id));
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(iat + lifetime as i64));
        claims.insert("auth_time".into(), json!(grant.auth_time));
        claims.insert("jti".into(), json!(random_token()));
        let hash = digest(&SHA256, access_token.as_bytes());
        claims.insert(
            "at_hash".into(),
            json!(URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])),
        );
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        user_claims(user, &grant.scopes, &mut claims);
        body["id_token"] = json!(idp.key.sign(&Value::Object(claims)));
    }
    if let Some(refresh_token) = &refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    let now = Instant::now();
    let mut store = idp.store();
    if let (Some(token), true) = (refresh_token, store_refresh) {
        store
            .refresh_tokens
            .insert(token, grant.clone(), REFRESH_LIFETIME, now);
    }
    store
        .access_tokens
        .insert(access_token, grant, idp.token_lifetime, now);
    json(StatusCode::OK, &body)
}

/// The user's claims for `scopes` (OIDC Core section 5.4), plus `groups` always.
pub(super) fn user_claims(user: &DevUser, scopes: &[String], claims: &mut Map<String, Value>) {
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    if has("email") {
        claims.insert("email".into(), json!(user.email));
        claims.insert("email_verified".into(), json!(true));
    }
    if has("profile") {
        claims.insert("name".into(), json!(user.name));
        claims.insert("preferred_username".into(), json!(user.email));
    }
    claims.insert("groups".into(), json!(user.groups));
}

/// The claims of an ID token this provider signed (expired or not), for `/logout`'s
/// `id_token_hint`.
pub(super) fn verify_own_id_token(idp: &Idp, jws: &str) -> Option<Value> {
    let mut parts = jws.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let read = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let head = read(header)?;
    if head["alg"] != "ES256" || head["kid"] != idp.key.kid() {
        return None;
    }
    let jwk = idp.key.jwk();
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str()?).ok()?);
    point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str()?).ok()?);
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{header}.{payload}").as_bytes(), &signature)
        .ok()?;
    let claims = read(payload)?;
    (claims["iss"] == idp.issuer.as_str()).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches("", challenge));
        assert!(!pkce_matches(&"a".repeat(129), challenge));
        assert!(!pkce_matches(&format!("{verifier}!"), challenge));
    }

    #[test]
    fn reads_basic_credentials() {
        let header =
            |raw: &str| HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap();
        assert_eq!(
            basic_credentials(&header("portcullis:s%3Acr%2Bt+x")),
            Some(("portcullis".into(), "s:cr+t x".into()))
        );
        assert_eq!(basic_credentials(&header("no-colon")), None);
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer abc")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!!")),
            None
        );
    }

    #[test]
    fn claims_follow_scopes() {
        let user = &DevUser::demo_users()[0];
        let mut claims = Map::new();
        user_claims(user, &["openid".into()], &mut claims);
        assert_eq!(
            Value::Object(claims),
            json!({"groups": ["admin", "engineering"]})
        );
        let mut claims = Map::new();
        user_claims(
            user,
            &["openid".into(), "email".into(), "profile".into()],
            &mut claims,
        );
        assert_eq!(
            Value::Object(claims),
            json!({
                "email": "ada@example.com", "email_verified": true,
                "name": "Ada Lovelace", "preferred_username": "ada@example.com",
                "groups": ["admin", "engineering"],
            })
        );
    }
}
