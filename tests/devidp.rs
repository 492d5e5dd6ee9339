//! The development OpenID provider that `portcullis dev` starts, driven by openidconnect 4
//! exactly as the proxy's sign-in code drives a real provider: discovery, the
//! authorization code flow with PKCE, ID-token validation against the JWKS, userinfo,
//! refresh, revocation and RP-initiated logout. The browser's part (the login page) is
//! played with reqwest, redirects off.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::url::Url;
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, RequestTokenError, Scope, SubjectIdentifier,
    TokenResponse,
};
use portcullis::api::devidp::{self, DevClient, DevIdpConfig, DevIdpError, DevUser, RunningIdp};
use serde_json::{Value, json};

const CLIENT_ID: &str = "portcullis";
/// Characters that client_secret_basic must form-urlencode (RFC 6749 section 2.3.1).
const SECRET: &str = "dev secret:+/%&";
const REDIRECT: &str = "http://auth.localhost:8443/oauth2/callback";
const POST_LOGOUT: &str = "http://app.localhost:8443/.portcullis/signed_out";
const ADA: &str = "00udevada00000000001";
const LINUS: &str = "00udevlinus000000003";
const ALL_SCOPES: &[&str] = &["email", "profile", "groups", "offline_access"];

/// The client type openidconnect builds from discovery, with a redirect URI.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn config(token_lifetime: Duration) -> DevIdpConfig {
    DevIdpConfig {
        clients: vec![
            DevClient {
                client_id: CLIENT_ID.into(),
                client_secret: SECRET.into(),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec![POST_LOGOUT.into()],
            },
            DevClient::new("other", "other-secret", "http://other.localhost/cb"),
        ],
        token_lifetime,
        ..DevIdpConfig::default()
    }
}

async fn start() -> RunningIdp {
    devidp::start(config(Duration::from_secs(3600)))
        .await
        .unwrap()
}

/// Discovery and the relying-party client, as the proxy builds them.
async fn discover(idp: &RunningIdp, http: &reqwest::Client, secret: &str) -> (Rp, EndSessionUrl) {
    let metadata =
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(idp.issuer()).unwrap(), http)
            .await
            .unwrap();
    let end_session = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT_ID.into()),
        Some(ClientSecret::new(secret.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    (client, end_session)
}

struct SignedIn {
    code: AuthorizationCode,
    verifier: PkceCodeVerifier,
    nonce: Nonce,
}

/// The value of the login form's hidden field `name`.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn location(resp: &reqwest::Response) -> Url {
    assert_eq!(resp.status(), 302, "{resp:?}");
    Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

/// Plays the browser: opens the authorize URL, picks `sub` on the login page, and
/// returns the code from the redirect back to the client.
async fn sign_in(
    idp: &RunningIdp,
    http: &reqwest::Client,
    client: &Rp,
    sub: &str,
    scopes: &[&str],
) -> SignedIn {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let page = http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("id=\"user-{sub}\"")), "{html}");
    let pending = hidden_field(&html, "pending");
    let resp = http
        .post(format!("{}/authorize", idp.issuer()))
        .form(&[("pending", pending.as_str()), ("user", sub)])
        .send()
        .await
        .unwrap();
    let back = location(&resp);
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    SignedIn {
        code: AuthorizationCode::new(query_param(&back, "code").unwrap()),
        verifier,
        nonce,
    }
}

/// Exchanges a code for tokens (the code's own client, verifier and redirect).
async fn redeem(
    client: &Rp,
    http: &reqwest::Client,
    code: AuthorizationCode,
    verifier: PkceCodeVerifier,
) -> CoreTokenResponse {
    client
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .unwrap()
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn server_error<RE: std::error::Error + 'static>(
    result: Result<
        openidconnect::core::CoreTokenResponse,
        RequestTokenError<RE, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
    >,
) -> CoreErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => e.error().clone(),
        Err(e) => panic!("expected an OAuth error response, got {e:?}"),
        Ok(_) => panic!("expected an OAuth error response, got tokens"),
    }
}

#[tokio::test]
async fn discovery_is_okta_shaped_and_accepted_by_openidconnect() {
    let idp = start().await;
    let http = http();
    let issuer = idp.issuer();
    assert_eq!(issuer, format!("http://127.0.0.1:{}", idp.addr().port()));
    let (_, end_session) = discover(&idp, &http, SECRET).await;
    assert_eq!(end_session.as_str(), format!("{issuer}/logout"));

    let resp = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    for (field, want) in [
        ("issuer", json!(issuer)),
        (
            "authorization_endpoint",
            json!(format!("{issuer}/authorize")),
        ),
        ("token_endpoint", json!(format!("{issuer}/token"))),
        ("userinfo_endpoint", json!(format!("{issuer}/userinfo"))),
        ("jwks_uri", json!(format!("{issuer}/keys"))),
        ("response_types_supported", json!(["code"])),
        ("subject_types_supported", json!(["public"])),
        ("id_token_signing_alg_values_supported", json!(["ES256"])),
        (
            "scopes_supported",
            json!(["openid", "profile", "email", "groups", "offline_access"]),
        ),
        (
            "token_endpoint_auth_methods_supported",
            json!(["client_secret_basic", "client_secret_post"]),
        ),
        (
            "grant_types_supported",
            json!(["authorization_code", "refresh_token"]),
        ),
        ("code_challenge_methods_supported", json!(["S256"])),
    ] {
        assert_eq!(doc[field], want, "{field}");
    }
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("groups"))
    );

    let jwks: Value = http
        .get(format!("{issuer}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["crv"], "P-256");
    idp.shutdown().await;
}

#[tokio::test]
async fn sign_in_verify_userinfo_refresh_and_revoke() {
    let idp = start().await;
    let http = http();
    let (client, _) = discover(&idp, &http, SECRET).await;
    let signed_in = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;

    let token = redeem(&client, &http, signed_in.code, signed_in.verifier).await;
    assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    let id_token = token.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &signed_in.nonce).unwrap();
    assert_eq!(claims.subject().as_str(), ADA);
    assert_eq!(claims.email().unwrap().as_str(), "ada@example.com");
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(
        claims.name().unwrap().get(None).unwrap().as_str(),
        "Ada Lovelace"
    );
    assert_eq!(
        claims.preferred_username().unwrap().as_str(),
        "ada@example.com"
    );
    assert!(claims.auth_time().is_some());
    // at_hash binds the access token to the ID token.
    let at_hash = AccessTokenHash::from_token(
        token.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));

    let raw = payload(&id_token.to_string());
    assert_eq!(raw["groups"], json!(["admin", "engineering"]));
    assert_eq!(raw["aud"], CLIENT_ID);
    assert_eq!(raw["azp"], CLIENT_ID);
    assert_eq!(raw["iss"], idp.issuer());
    assert_eq!(raw["nonce"], signed_in.nonce.secret().as_str());
    assert_eq!(
        raw["exp"].as_i64().unwrap() - raw["iat"].as_i64().unwrap(),
        3600
    );

    // Userinfo, as openidconnect asks for it.
    let info: CoreUserInfoClaims = client
        .user_info(
            token.access_token().clone(),
            Some(SubjectIdentifier::new(ADA.into())),
        )
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.email().unwrap().as_str(), "ada@example.com");
    let raw_info: Value = http
        .get(format!("{}/userinfo", idp.issuer()))
        .bearer_auth(token.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw_info["groups"], json!(["admin", "engineering"]));
    assert_eq!(raw_info["sub"], ADA);
    for bearer in [Some("not-a-token"), None] {
        let mut req = http.get(format!("{}/userinfo", idp.issuer()));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    // Refresh: new access and ID tokens, the same refresh token.
    let refresh_token = token
        .refresh_token()
        .expect("offline_access was granted")
        .clone();
    let refreshed = client
        .exchange_refresh_token(&refresh_token)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(
        refreshed.access_token().secret(),
        token.access_token().secret()
    );
    assert_eq!(
        refreshed.refresh_token().map(|t| t.secret()),
        Some(refresh_token.secret())
    );
    let new_id_token = refreshed.id_token().expect("an ID token on refresh");
    let no_nonce = |n: Option<&Nonce>| {
        if n.is_none() {
            Ok(())
        } else {
            Err("a refreshed ID token carries no nonce".to_string())
        }
    };
    let new_claims = new_id_token.claims(&verifier, no_nonce).unwrap();
    assert_eq!(new_claims.subject().as_str(), ADA);
    assert_eq!(new_claims.auth_time(), claims.auth_time());
    assert_eq!(
        payload(&new_id_token.to_string())["groups"],
        json!(["admin", "engineering"])
    );

    // Another client cannot use the refresh token.
    let other = CoreClient::from_provider_metadata(
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(idp.issuer()).unwrap(), &http)
            .await
            .unwrap(),
        ClientId::new("other".into()),
        Some(ClientSecret::new("other-secret".into())),
    );
    let result = other
        .exchange_refresh_token(&refresh_token)
        .unwrap()
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);

    // Revocation ends it: the next refresh is invalid_grant.
    assert_eq!(idp.revoke_refresh_tokens(ADA), 1);
    let result = client
        .exchange_refresh_token(&refresh_token)
        .unwrap()
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);
    idp.shutdown().await;
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_verifier_client_and_redirect() {
    let idp = start().await;
    let http = http();
    let (client, _) = discover(&idp, &http, SECRET).await;

    // A wrong PKCE verifier fails, and spends the code.
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let result = client
        .exchange_code(s.code.clone())
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);
    let result = client
        .exchange_code(s.code)
        .unwrap()
        .set_pkce_verifier(s.verifier)
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);

    // No verifier at all.
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let result = client
        .exchange_code(s.code)
        .unwrap()
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);

    // A replayed code.
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let verifier = s.verifier.secret().clone();
    redeem(&client, &http, s.code.clone(), s.verifier).await;
    let result = client
        .exchange_code(s.code)
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);

    // A wrong client secret: invalid_client (and the code survives for the real client).
    let (impostor, _) = discover(&idp, &http, "wrong secret").await;
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let verifier = s.verifier.secret().clone();
    let result = impostor
        .exchange_code(s.code.clone())
        .unwrap()
        .set_pkce_verifier(s.verifier)
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidClient);
    redeem(&client, &http, s.code, PkceCodeVerifier::new(verifier)).await;

    // A code exchanged with another redirect URI than the one authorized.
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let result = client
        .exchange_code(s.code)
        .unwrap()
        .set_pkce_verifier(s.verifier)
        .set_redirect_uri(std::borrow::Cow::Owned(
            RedirectUrl::new("http://auth.localhost:8443/elsewhere".into()).unwrap(),
        ))
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);

    // Another client's code.
    let other = CoreClient::from_provider_metadata(
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(idp.issuer()).unwrap(), &http)
            .await
            .unwrap(),
        ClientId::new("other".into()),
        Some(ClientSecret::new("other-secret".into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let result = other
        .exchange_code(s.code)
        .unwrap()
        .set_pkce_verifier(s.verifier)
        .request_async(&http)
        .await;
    assert_eq!(server_error(result), CoreErrorResponseType::InvalidGrant);
    idp.shutdown().await;
}

#[tokio::test]
async fn client_secret_post_and_scopes_shape_the_tokens() {
    let idp = start().await;
    let http = http();
    let (client, _) = discover(&idp, &http, SECRET).await;
    let client = client.set_auth_type(AuthType::RequestBody);
    // Only openid: no refresh token, no email or profile claims, groups still there.
    let s = sign_in(&idp, &http, &client, LINUS, &[]).await;
    let token = redeem(&client, &http, s.code, s.verifier).await;
    assert!(token.refresh_token().is_none());
    let id_token = token.id_token().unwrap();
    let claims = id_token
        .claims(&client.id_token_verifier(), &s.nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), LINUS);
    assert!(claims.email().is_none());
    let raw = payload(&id_token.to_string());
    assert_eq!(raw["groups"], json!([]));
    assert!(raw.get("name").is_none());
    idp.shutdown().await;
}

#[tokio::test]
async fn authorize_errors_follow_rfc_6749() {
    let idp = start().await;
    let http = http();
    let issuer = idp.issuer();
    let (client, _) = discover(&idp, &http, SECRET).await;

    // An unregistered redirect URI: a page, never a redirect.
    let stray = client
        .clone()
        .set_redirect_uri(RedirectUrl::new("http://evil.localhost/cb".into()).unwrap());
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = stray
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("not registered"));

    // Errors with a registered redirect URI go back to it, with state.
    let authorize = |query: &str| format!("{issuer}/authorize?{query}");
    let base = format!(
        "client_id={CLIENT_ID}&redirect_uri={}&state=st",
        urlencode(REDIRECT)
    );
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pkce = format!("code_challenge={challenge}&code_challenge_method=S256");
    for (query, error) in [
        (
            format!("{base}&response_type=code&scope=openid"),
            "invalid_request",
        ),
        (
            format!("{base}&response_type=code&scope=openid&{pkce}").replace("S256", "plain"),
            "invalid_request",
        ),
        (
            format!("{base}&response_type=token&scope=openid&{pkce}"),
            "unsupported_response_type",
        ),
        (
            format!("{base}&response_type=code&scope=email&{pkce}"),
            "invalid_scope",
        ),
        (
            format!("{base}&response_type=code&scope=openid+admin&{pkce}"),
            "invalid_scope",
        ),
        (
            format!("{base}&response_type=code&scope=openid&prompt=none&{pkce}"),
            "login_required",
        ),
    ] {
        let resp = http.get(authorize(&query)).send().await.unwrap();
        let back = location(&resp);
        assert!(back.as_str().starts_with(REDIRECT), "{query}");
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some(error),
            "{query}"
        );
        assert_eq!(
            query_param(&back, "state").as_deref(),
            Some("st"),
            "{query}"
        );
        assert!(query_param(&back, "code").is_none());
    }
    // Missing state (Okta requires it) also goes back, without one.
    let query = format!(
        "client_id={CLIENT_ID}&redirect_uri={}&response_type=code&scope=openid&{pkce}",
        urlencode(REDIRECT)
    );
    let back = location(&http.get(authorize(&query)).send().await.unwrap());
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );

    // Unknown client, missing redirect URI, repeated parameter: a page.
    for query in [
        format!(
            "client_id=nobody&redirect_uri={}&response_type=code",
            urlencode(REDIRECT)
        ),
        format!("client_id={CLIENT_ID}&response_type=code"),
        format!("{base}&response_type=code&scope=openid&{pkce}&state=again"),
    ] {
        let resp = http.get(authorize(&query)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert!(resp.headers().get("location").is_none());
    }

    // Cancel on the login page: access_denied with state; the request is then spent.
    let query = format!("{base}&response_type=code&scope=openid&{pkce}");
    let html = http
        .get(authorize(&query))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pending = hidden_field(&html, "pending");
    let resp = http
        .post(format!("{issuer}/authorize"))
        .form(&[("pending", pending.as_str()), ("cancel", "1")])
        .send()
        .await
        .unwrap();
    let back = location(&resp);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st"));
    let resp = http
        .post(format!("{issuer}/authorize"))
        .form(&[("pending", pending.as_str()), ("user", ADA)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // An unknown user or a forged pending id: a page.
    let html = http
        .get(authorize(&query))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pending = hidden_field(&html, "pending");
    for form in [
        [("pending", pending.as_str()), ("user", "00unobody")],
        [("pending", "forged"), ("user", ADA)],
    ] {
        let resp = http
            .post(format!("{issuer}/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{form:?}");
    }
    // The real pending request survived the unknown-user attempt.
    let resp = http
        .post(format!("{issuer}/authorize"))
        .form(&[("pending", pending.as_str()), ("user", ADA)])
        .send()
        .await
        .unwrap();
    assert!(query_param(&location(&resp), "code").is_some());
    idp.shutdown().await;
}

fn urlencode(s: &str) -> String {
    openidconnect::url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn token_endpoint_errors_are_oauth_json() {
    let idp = start().await;
    let http = http();
    let token_url = format!("{}/token", idp.issuer());
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(&token_url)
                .form(&[("grant_type", "authorization_code"), ("code", "x")]),
            401,
            "invalid_client",
        ),
        (
            http.post(&token_url)
                .basic_auth("other", Some("other-secret"))
                .form(&[("grant_type", "password"), ("username", "ada")]),
            400,
            "unsupported_grant_type",
        ),
        (
            http.post(&token_url)
                .basic_auth("other", Some("other-secret"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")]),
            400,
            "invalid_grant",
        ),
        (
            http.post(&token_url)
                .basic_auth("other", Some("other-secret"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_secret", "other-secret"),
                ]),
            400,
            "invalid_request",
        ),
        (
            http.post(&token_url)
                .basic_auth("other", Some("other-secret"))
                .body("grant_type=authorization_code"),
            400,
            "invalid_request",
        ),
    ];
    for (i, (request, status, error)) in cases.into_iter().enumerate() {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), status, "case {i}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], error, "case {i}");
    }
    let resp = http.get(&token_url).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    idp.shutdown().await;
}

#[tokio::test]
async fn logout_returns_to_registered_uri_with_state() {
    let idp = start().await;
    let http = http();
    let (client, end_session) = discover(&idp, &http, SECRET).await;
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let token = redeem(&client, &http, s.code, s.verifier).await;
    let id_token = token.id_token().unwrap();

    let url = LogoutRequest::from(end_session.clone())
        .set_id_token_hint(id_token)
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(POST_LOGOUT.into()).unwrap())
        .set_state(CsrfToken::new("bye".into()))
        .http_get_url();
    let back = location(&http.get(url).send().await.unwrap());
    assert_eq!(back.as_str(), format!("{POST_LOGOUT}?state=bye"));
    assert_eq!(idp.signed_out_subjects(), [ADA]);

    // With client_id instead of a hint.
    let url = LogoutRequest::from(end_session.clone())
        .set_client_id(ClientId::new(CLIENT_ID.into()))
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(POST_LOGOUT.into()).unwrap())
        .http_get_url();
    assert_eq!(
        location(&http.get(url).send().await.unwrap()).as_str(),
        POST_LOGOUT
    );

    // Without a place to return to: a page.
    let url = LogoutRequest::from(end_session.clone())
        .set_id_token_hint(id_token)
        .http_get_url();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("signed out"));

    // Refused: an unregistered URI, a URI with no client to check it against, a forged
    // hint, another client's id with this client's hint.
    let mut forged = id_token.to_string();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let unregistered = PostLogoutRedirectUrl::new("http://evil.localhost/".into()).unwrap();
    let registered = PostLogoutRedirectUrl::new(POST_LOGOUT.into()).unwrap();
    let logout = || LogoutRequest::from(end_session.clone());
    for url in [
        logout()
            .set_id_token_hint(id_token)
            .set_post_logout_redirect_uri(unregistered)
            .http_get_url(),
        logout()
            .set_post_logout_redirect_uri(registered.clone())
            .http_get_url(),
        logout()
            .set_id_token_hint(&forged.parse::<CoreIdToken>().unwrap())
            .set_post_logout_redirect_uri(registered.clone())
            .http_get_url(),
        logout()
            .set_id_token_hint(id_token)
            .set_client_id(ClientId::new("other".into()))
            .set_post_logout_redirect_uri(registered)
            .http_get_url(),
    ] {
        let resp = http.get(url.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{url}");
        assert!(resp.headers().get("location").is_none());
    }
    assert_eq!(idp.signed_out_subjects().len(), 2);
    idp.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_after_token_lifetime() {
    let idp = devidp::start(config(Duration::from_secs(1))).await.unwrap();
    let http = http();
    let (client, _) = discover(&idp, &http, SECRET).await;
    let s = sign_in(&idp, &http, &client, ADA, ALL_SCOPES).await;
    let token = redeem(&client, &http, s.code, s.verifier).await;
    assert_eq!(token.expires_in(), Some(Duration::from_secs(1)));
    let id_token = token.id_token().unwrap().clone();
    let raw = payload(&id_token.to_string());
    assert_eq!(
        raw["exp"].as_i64().unwrap() - raw["iat"].as_i64().unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;

    assert!(
        id_token
            .claims(&client.id_token_verifier(), &s.nonce)
            .is_err()
    );
    let resp = http
        .get(format!("{}/userinfo", idp.issuer()))
        .bearer_auth(token.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The refresh token outlives the access token.
    let refreshed = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let resp = http
        .get(format!("{}/userinfo", idp.issuer()))
        .bearer_auth(refreshed.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    idp.shutdown().await;
}

#[tokio::test]
async fn login_page_is_self_contained_and_marked_not_for_production() {
    let idp = start().await;
    let http = http();
    let (client, _) = discover(&idp, &http, SECRET).await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let resp = http.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let html = resp.text().await.unwrap();
    assert!(html.contains("Portcullis development sign-in — not for production"));
    assert!(html.contains("<html lang=\"en\">"));
    for user in DevUser::demo_users() {
        assert!(html.contains(&format!("id=\"user-{}\"", user.sub)));
        assert!(html.contains(&user.email));
    }
    for external in ["src=", "<link", "<script", "url("] {
        assert!(!html.contains(external), "{external}");
    }

    // A page reached under a foreign host name (DNS rebinding) is refused.
    let resp = http
        .get(url)
        .header("host", "rebind.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 421);
    idp.shutdown().await;
}

#[tokio::test]
async fn start_refuses_bad_config_and_shutdown_stops_serving() {
    let mut c = config(Duration::from_secs(60));
    c.listen = "0.0.0.0:0".parse().unwrap();
    assert!(matches!(
        devidp::start(c).await,
        Err(DevIdpError::NotLoopback(_))
    ));
    let c = DevIdpConfig::default();
    assert!(matches!(
        devidp::start(c).await,
        Err(DevIdpError::Config(_))
    ));

    let idp = start().await;
    let issuer = idp.issuer();
    let http = http();
    assert!(http.get(format!("{issuer}/keys")).send().await.is_ok());
    idp.shutdown().await;
    let fresh = reqwest::Client::builder().build().unwrap();
    assert!(fresh.get(format!("{issuer}/keys")).send().await.is_err());
}
