//! Sign-in end to end: the `portcullis` binary with a Pomerium-format config, signing in
//! against `oidc-provider` configured like Okta (e2e/oidc, both issuer forms), over TLS
//! with a test CA — with sessions in the cookie and in Redis.
//!
//! Needs `npm ci --prefix e2e/oidc` and Debian's `redis-server` (e2e/test-all installs both).
//! The harness lives in tests/common/signin_env.rs (shared with tests/browser.rs).

mod common;

use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::signin_env::*;
use serde_json::{Value, json};

async fn scenario(issuer_form: &str, redis: bool) {
    let env = start(issuer_form, redis).await;
    let alice = env.browser();

    // An API client without a session gets 401, not a redirect.
    let r = alice
        .get(env.url("app", "/api"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // First visit → provider → callback → handoff → the app, with a valid assertion.
    let (resp, hops) = follow(&alice, &env.url("app", "/hello?x=1"), Some(ALICE_LOGIN)).await;
    assert_eq!(resp.status(), 200, "{hops:#?}");
    assert!(
        hops[1].starts_with(&env.url("authenticate", "/.portcullis/sign_in?redirect_uri=")),
        "{hops:#?}"
    );
    assert!(hops.iter().any(|h| h.starts_with(&env.idp)), "{hops:#?}");
    let handoff = hops
        .iter()
        .find(|h| h.contains("/.portcullis/callback?token="))
        .expect("a handoff hop")
        .clone();
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/hello?x=1");
    let headers = &echo["headers"];
    let jwt = headers["x-portcullis-jwt-assertion"]
        .as_str()
        .expect("an assertion");
    let jwks: Value = get_json(&alice, env.url("app", "/.well-known/portcullis/jwks.json")).await;
    assert!(
        verify_es256(jwt, &jwks),
        "the assertion verifies against the JWKS"
    );
    let claims = jwt_claims(jwt);
    assert_eq!(claims["sub"], ALICE);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["aud"], "app.example.test");
    assert_eq!(
        claims["iss"],
        env.url("authenticate", "").trim_end_matches('/')
    );
    assert!(
        claims["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("admins"))
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert_eq!(headers["x-portcullis-claim-email"], "alice@example.com");
    assert_eq!(headers["x-forwarded-user"], ALICE);
    // No Portcullis cookie reaches the upstream; the app's own does.
    assert_eq!(headers["cookie"], "theme=dark", "{headers}");

    // Spoofed identity headers are replaced.
    let r = alice
        .get(env.url("app", "/spoof"))
        .header("x-forwarded-email", "ceo@example.com")
        .header("x-portcullis-claim-groups", "root")
        .send()
        .await
        .unwrap();
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-email"], "alice@example.com");
    assert_eq!(
        echo["headers"]["x-portcullis-claim-groups"],
        "Everyone,admins"
    );

    // Who am I.
    let me: Value = get_json(&alice, env.url("app", "/.portcullis/user")).await;
    assert_eq!(me["email"], "alice@example.com");

    // A group-restricted route: Alice (admins) passes without signing in again.
    let (resp, hops) = follow(&alice, &env.url("admin", "/"), None).await;
    assert_eq!(resp.status(), 200, "{hops:#?}");
    // Bob is not in admins: he signs in and is refused.
    let bob = env.browser();
    let (resp, _) = follow(&bob, &env.url("admin", "/"), Some(BOB_LOGIN)).await;
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Sign in as someone else"), "{page}");

    // A replayed handoff is refused.
    let replay = env.browser().get(&handoff).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    // A foreign return URL is refused.
    let evil = format!(
        "{}?redirect_uri=https%3A%2F%2Fevil.example.com%2F",
        env.url("authenticate", "/.portcullis/sign_in")
    );
    assert_eq!(env.browser().get(&evil).send().await.unwrap().status(), 400);
    // A tampered session cookie counts as no session.
    let cookies = alice
        .get(env.url("app", "/.portcullis/user"))
        .send()
        .await
        .unwrap();
    assert_eq!(cookies.status(), 200);
    let tampered = env.browser();
    let r = tampered
        .get(env.url("app", "/x"))
        .header("cookie", "_portcullis=AAAA-tampered-value")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);

    // Tokens live 5 s, so requests refresh them; the provider saw refresh grants.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = alice
        .get(env.url("app", "/after-refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !env.events("refresh").await.is_empty(),
        "no refresh reached the provider"
    );

    // A revoked refresh token ends the session at the next refresh (with the cookie
    // store: when the app's credential, which lives as long as the 5 s tokens, is
    // renewed through the authenticate host, which holds the refresh token).
    let revoked = env
        .browser()
        .post(format!("{}/__test/revoke?sub={ALICE}", env.idp))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let r = alice
        .get(env.url("app", "/after-revoke"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the session should have ended");

    // Sign in again, then sign out: CSRF-protected, and it reaches end-session.
    let (resp, _) = follow(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(resp.status(), 200);
    let forged = alice
        .post(env.url("app", "/.portcullis/sign_out"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let form = alice
        .get(env.url("app", "/.portcullis/sign_out"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF field")
        .to_string();
    let logouts_before = env.events("logout").await.len();
    let r = alice
        .post(env.url("app", "/.portcullis/sign_out"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let next = r.headers()["location"].to_str().unwrap().to_string();
    let (resp, hops) = follow(&alice, &next, None).await;
    assert_eq!(resp.status(), 200, "{hops:#?}");
    assert!(
        hops.last().unwrap().ends_with("/.portcullis/signed_out")
            || hops.last().unwrap().contains("/.portcullis/signed_out?"),
        "{hops:#?}"
    );
    assert!(
        env.events("logout").await.len() > logouts_before,
        "end-session not reached"
    );
    let r = alice
        .get(env.url("app", "/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "signed out");
    let _ = std::io::stderr().flush();
    let _ = env.ca_pem.len();
}

#[tokio::test]
async fn okta_custom_authorization_server_with_cookie_sessions() {
    scenario("default", false).await;
}

#[tokio::test]
async fn okta_org_authorization_server_with_redis_sessions() {
    scenario("org", true).await;
}

#[tokio::test]
async fn api_clients_use_bearer_tokens_from_the_provider() {
    let env = start_with(
        "default",
        false,
        "idp_access_token_allowed_audiences: [api://default]\n\
         jwt_claims_headers:\n  X-Email: email\n  X-Nickname: nickname\n",
    )
    .await;
    let issuer = format!("{}/oauth2/default", env.idp);
    let tokens = provider_tokens(&env, &issuer, ALICE_LOGIN, (CLIENT_ID, CLIENT_SECRET)).await;
    let api = env.browser();
    let get = |token: String| {
        let api = api.clone();
        let url = env.url("app", "/api/items");
        async move {
            api.get(url)
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
        }
    };
    // An access token for Okta's default authorization server (aud api://default).
    let access = tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_string();
    let r = get(access.clone()).await;
    if r.status() != 200 {
        let log = std::fs::read_to_string(env.dir.0.join("portcullis.log")).unwrap_or_default();
        panic!(
            "access token refused ({}): {}\n{}",
            r.status(),
            jwt_claims(&access),
            log
        );
    }
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    let claims = jwt_claims(
        echo["headers"]["x-portcullis-jwt-assertion"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        claims["sub"], ALICE,
        "Okta access tokens name the user in `uid`"
    );
    // Claim headers on a bearer request come from the token alone: spoofed ones are
    // removed, in any spelling, and a claim the token lacks is sent as no header.
    assert!(jwt_claims(&access).get("nickname").is_none());
    let r = api
        .get(env.url("app", "/api/items"))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .header("x-email", "ceo@example.com")
        .header("x_email", "ceo@example.com")
        .header("x-nickname", "root")
        .header("x_nickname", "root")
        .header("x-portcullis-claim-nickname", "root")
        .header("x-probe", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    let headers = &echo["headers"];
    assert_eq!(
        headers["x-probe"], "1",
        "the upstream echoes other headers: {headers}"
    );
    assert_ne!(headers["x-email"], "ceo@example.com", "{headers}");
    for name in [
        "x_email",
        "x-nickname",
        "x_nickname",
        "x-portcullis-claim-nickname",
    ] {
        assert!(
            headers.get(name).is_none(),
            "{name} reached the upstream: {headers}"
        );
    }
    // An ID token for this client is accepted too.
    let id = tokens["id_token"]
        .as_str()
        .expect("an ID token")
        .to_string();
    assert_eq!(get(id.clone()).await.status(), 200);
    // Group checks apply to bearer identities: alice is in admins.
    let admin = api
        .get(env.url("admin", "/"))
        .bearer_auth(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    // A forged token (claims changed under the original signature) and a token of no
    // JWT shape get 401, not a redirect.
    let parts: Vec<&str> = id.split('.').collect();
    let mut claims = jwt_claims(&id);
    claims["groups"] = json!(["admins", "root"]);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_eq!(get(forged).await.status(), 401);
    assert_eq!(get("not-a-jwt".into()).await.status(), 401);
}

/// When the provider is down, signed-in users keep their sessions (refreshes fail
/// softly until the session's own end), and the outage is never a way in for others.
#[tokio::test]
async fn an_unreachable_provider_keeps_existing_sessions() {
    let mut env = start("default", false).await;
    let alice = env.browser();
    let (resp, _) = follow(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(resp.status(), 200);
    // Stop the provider, and let the 5-second tokens expire.
    let _ = env.idp_proc.0.kill();
    let _ = env.idp_proc.0.wait();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = alice
        .get(env.url("app", "/still-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the session outlives a provider outage");
    // Someone without a session is still sent to sign in, never let through.
    let r = env
        .browser()
        .get(env.url("app", "/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = env
        .browser()
        .get(env.url("app", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// With directory sync, the directory — not the token — decides groups, and a user
/// deactivated in Okta loses access at the next sync, mid-session.
#[tokio::test]
async fn directory_sync_decides_groups_and_deactivation() {
    use common::okta_api::{Emulator, TOKEN};
    let okta = Emulator::start(&["--rate-limit", "off"]);
    okta.control(
        "PUT",
        "/__test/data",
        json!({
            "users": [
                {"id": ALICE, "status": "ACTIVE",
                 "profile": {"login": "alice@example.com", "email": "alice@example.com",
                             "firstName": "Alice", "lastName": "A"}},
            ],
            "groups": [
                {"id": "00gops00000000000001", "profile": {"name": "ops"}, "members": [ALICE]},
                {"id": "00gadmins00000000001", "profile": {"name": "admins"}, "members": []},
            ],
        }),
    )
    .await;
    let extra = format!(
        "directory:\n  provider: okta\n  url: {}\n  api_token: {TOKEN}\n  refresh_interval: 10s\n",
        okta.url
    );
    // Tokens that outlive the test: this one is about the directory, not refreshes.
    let long_tokens = IdpOptions {
        token_ttl: 600,
        ..IdpOptions::default()
    };
    let env = start_full("default", false, &extra, &long_tokens, "").await;
    let alice = env.browser();
    // The token says `admins`; the directory says only `ops`: the admin route refuses.
    let (resp, hops) = follow(&alice, &env.url("admin", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(resp.status(), 403, "{hops:#?}");
    let me: Value = get_json(&alice, env.url("admin", "/.portcullis/user")).await;
    assert_eq!(me["groups_source"], "okta directory", "{me}");
    assert!(
        me["groups"].as_array().unwrap().contains(&json!("ops")),
        "{me}"
    );

    // Added to `admins` in the directory: allowed after the next sync.
    okta.control(
        "PUT",
        &format!("/__test/groups/00gadmins00000000001/users/{ALICE}"),
        json!({}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = alice.get(env.url("admin", "/")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group change never applied"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Deactivated in Okta: denied mid-session, with the reason.
    okta.control(
        "POST",
        &format!("/__test/users/{ALICE}/deactivate"),
        json!({}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = alice
            .get(env.url("admin", "/"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        if r.status() == 403 {
            let body: Value = r.json().await.unwrap();
            assert!(
                body["detail"].as_str().unwrap().contains("not active"),
                "{body}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deactivation never applied"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
