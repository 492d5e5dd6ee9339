//! The session trust boundary, attacked through the real binary (docs/design.md,
//! "a signed-in user … never able to carry a credential from one host to another, sign
//! another user in or out"): the Okta-shaped provider (e2e/oidc), `portcullis run` with
//! several route hosts, both session stores, and — for refresh-token rotation with Redis
//! — two replicas behind a TCP balancer.
//!
//! Needs `npm ci --prefix e2e/oidc` and Debian's `redis-server` (e2e/test-all installs both).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::signin_env::*;
use serde_json::Value;

/// `evil.example.test`: any route whose DNS the attacker controls (in a cluster, an
/// Ingress in the attacker's own namespace). `docs.example.test`: a third app.
const MORE_ROUTES: &str = "\
\x20 - from: https://evil.example.test
    to: http://UPSTREAM
    allow_any_authenticated_user: true
\x20 - from: https://docs.example.test
    to: http://UPSTREAM
    allow_any_authenticated_user: true
";

const LONG_TOKENS: IdpOptions = IdpOptions {
    token_ttl: 600,
    refresh_token_rotation: "static",
};

/// The route credential cookie's name on the test port.
fn credential_name(env: &Env) -> String {
    format!("__Host-_portcullis_p{}", env.port)
}

/// A client that keeps no cookies: what an attacker replaying a stolen value uses.
fn bare(env: &Env) -> reqwest::Client {
    let addr = SocketAddr::from(([127, 0, 0, 1], env.port));
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls((*common::client_tls(&env.ca, &[b"http/1.1"])).clone())
        .redirect(reqwest::redirect::Policy::none());
    for host in [
        "app",
        "admin",
        "authenticate",
        "evil",
        "docs",
        "svc",
        "cookies",
        "own",
    ] {
        b = b.resolve(&format!("{host}.example.test"), addr);
    }
    b.build().unwrap()
}

/// The attack of the sessions issue, end to end: a signed-in victim follows a sign-in
/// link that returns to the attacker's host; the attacker redeems the handoff there
/// and replays the credential on the victim's apps.
async fn stolen_handoff(redis: bool) {
    let env = start_full("default", redis, "", &LONG_TOKENS, MORE_ROUTES).await;
    let alice = env.browser();
    let (r, _) = follow(&alice, &env.url("admin", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(r.status(), 200, "alice signs in to the admin app");

    // The attacker makes the link: his own visit to evil gives him a sign-in URL with
    // the MAC of his nonce, and his browser the nonce.
    let attacker = env.browser();
    let r = get(&attacker, &env.url("evil", "/"), "text/html").await;
    assert_eq!(r.status(), 302);
    let link = location(&r);
    assert!(
        link.contains("/.portcullis/sign_in?redirect_uri="),
        "{link}"
    );
    // The victim follows it: she is signed in at the authenticate host, so she is sent
    // straight on with a handoff token for evil — which the attacker receives.
    let r = get(&alice, &link, "text/html").await;
    assert_eq!(r.status(), 302);
    let handoff = location(&r);
    assert!(
        handoff.starts_with(&env.url("evil", "/.portcullis/callback?token=")),
        "{handoff}"
    );
    // He redeems it at Portcullis himself, with Host: evil (and his nonce).
    let r = get(&attacker, &handoff, "text/html").await;
    assert_eq!(
        r.status(),
        302,
        "the attacker redeems the token on his own host"
    );
    let stolen = set_cookie(&r, &credential_name(&env)).expect("a credential for evil");
    // On evil it is her (evil is a route the attacker runs; allowed_return_domains keeps
    // such hosts out of sign-in returns: see allowed_return_domains_narrow_returns).
    let on_evil = bare(&env)
        .get(env.url("evil", "/"))
        .header("cookie", format!("{}={stolen}", credential_name(&env)))
        .send()
        .await
        .unwrap();
    assert_eq!(on_evil.status(), 200);

    // Replayed at once on her apps, before any refresh is due: never 200.
    let thief = bare(&env);
    for host in ["app", "admin", "docs"] {
        for (accept, want) in [("text/html", 302), ("application/json", 401)] {
            let r = thief
                .get(env.url(host, "/"))
                .header("accept", accept)
                .header("cookie", format!("{}={stolen}", credential_name(&env)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), want, "stolen credential on {host} ({accept})");
        }
    }
    // Nor as the authenticate host's session, nor on the user endpoint.
    let r = thief
        .get(env.url("authenticate", "/.portcullis/user"))
        .header(
            "cookie",
            format!("__Host-_portcullis_authenticate_p{}={stolen}", env.port),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = thief
        .get(env.url("app", "/.portcullis/user"))
        .header("cookie", format!("{}={stolen}", credential_name(&env)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The handoff token itself is spent.
    assert_eq!(get(&attacker, &handoff, "text/html").await.status(), 400);
    // A second value planted under her credential's name (cookie tossing, or a longer
    // Path) makes the request anonymous rather than letting the first one win.
    let r = thief
        .get(env.url("evil", "/"))
        .header("accept", "application/json")
        .header(
            "cookie",
            format!("{n}={stolen}; {n}=planted", n = credential_name(&env)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "two values under one name: neither is trusted"
    );
}

#[tokio::test]
async fn a_handoff_stolen_through_another_host_signs_nobody_in_elsewhere_cookie_store() {
    stolen_handoff(false).await;
}

#[tokio::test]
async fn a_handoff_stolen_through_another_host_signs_nobody_in_elsewhere_redis() {
    stolen_handoff(true).await;
}

/// A credential is bound to its port too: browsers send a host's cookies to every port.
#[tokio::test]
async fn a_credential_for_one_port_is_refused_on_another() {
    let env = start_full("default", false, "", &LONG_TOKENS, "").await;
    let alice = env.browser();
    let handoff = until_handoff(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    let r = get(&alice, &handoff, "text/html").await;
    let credential = set_cookie(&r, &credential_name(&env)).expect("app's credential");
    let thief = bare(&env);
    let on = |port: u16, name: String| {
        thief
            .get(env.url("app", "/"))
            .header("host", format!("app.example.test:{port}"))
            .header("accept", "application/json")
            .header("cookie", format!("{name}={credential}"))
            .send()
    };
    assert_eq!(
        on(env.port, credential_name(&env)).await.unwrap().status(),
        200
    );
    let other = if env.port == 8443 { 9443 } else { 8443 };
    for name in [
        credential_name(&env),
        format!("__Host-_portcullis_p{other}"),
    ] {
        let r = on(other, name.clone()).await.unwrap();
        assert_eq!(
            r.status(),
            401,
            "minted for :{}, sent to :{other} as {name}",
            env.port
        );
    }
}

/// Login CSRF: a handoff link works only in the browser that started the sign-in.
#[tokio::test]
async fn a_handoff_link_signs_in_only_the_browser_that_asked() {
    let env = start_full("default", false, "", &LONG_TOKENS, "").await;
    // Bob signs in, and stops before redeeming his handoff.
    let bob = env.browser();
    let link = until_handoff(&bob, &env.url("app", "/"), Some(BOB_LOGIN)).await;
    // Sent to Alice (no nonce of her own yet, then with one): nothing.
    let alice = env.browser();
    let r = get(&alice, &link, "text/html").await;
    assert_eq!(r.status(), 400);
    assert!(set_cookie(&r, &credential_name(&env)).is_none());
    assert_eq!(
        get(&alice, &env.url("app", "/"), "text/html")
            .await
            .status(),
        302
    );
    let r = get(&alice, &link, "text/html").await;
    assert_eq!(r.status(), 400, "her own nonce is not his");
    assert!(set_cookie(&r, &credential_name(&env)).is_none());
    let me = get(
        &alice,
        &env.url("app", "/.portcullis/user"),
        "application/json",
    )
    .await;
    assert_eq!(me.status(), 401, "alice is not signed in as bob");
    // In Bob's own browser the same link works.
    let r = get(&bob, &link, "text/html").await;
    assert_eq!(r.status(), 302);
    assert!(set_cookie(&r, &credential_name(&env)).is_some());
}

/// The authenticate host returns only to its own paths, never `//elsewhere`; and
/// allowed_return_domains keeps hosts with routes but outside the list out.
#[tokio::test]
async fn return_urls_stay_on_our_hosts() {
    let extra = "allowed_return_domains: [app.example.test, \"*.corp.example\"]\n";
    let env = start_full("default", false, extra, &LONG_TOKENS, MORE_ROUTES).await;
    let alice = env.browser();
    let (r, _) = follow(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(r.status(), 200);
    let sign_in = |target: &str| {
        format!(
            "{}?redirect_uri={}&nonce=x",
            env.url("authenticate", "/.portcullis/sign_in"),
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        )
    };
    // `https://<auth host>//evil.example` used to end in `Location: //evil.example`.
    for path in ["//evil.example", "//evil.example/x", "/%2F%2Fevil.example"] {
        let r = get(
            &alice,
            &sign_in(&env.url("authenticate", path)),
            "text/html",
        )
        .await;
        let loc = location(&r);
        assert!(
            r.status() == 400 || (r.status() == 302 && loc == "/"),
            "{path}: {} {loc}",
            r.status()
        );
    }
    // evil has a route but is not in allowed_return_domains: refused; app is in it.
    let r = get(&alice, &sign_in(&env.url("evil", "/")), "text/html").await;
    assert_eq!(r.status(), 400);
    let r = get(&alice, &sign_in(&env.url("docs", "/")), "text/html").await;
    assert_eq!(r.status(), 400);
    let r = get(&alice, &sign_in(&env.url("app", "/")), "text/html").await;
    assert_eq!(r.status(), 302);
}

async fn sign_out_boundaries(redis: bool) {
    let env = start_full("default", redis, "", &LONG_TOKENS, "").await;
    let alice = env.browser();
    let (r, _) = follow(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(r.status(), 200);
    let logouts = env.events("logout").await.len();

    // An anonymous POST gets no sign-out link to send to anyone.
    let r = bare(&env)
        .post(env.url("app", "/.portcullis/sign_out"))
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "nothing to sign out");
    assert!(location(&r).is_empty());
    assert!(
        r.headers().get("set-cookie").is_none(),
        "a POST without our cookies clears none (logout CSRF)"
    );

    // Bob signs himself out, and sends his sign-out link to Alice.
    let bob = env.browser();
    let (r, _) = follow(&bob, &env.url("app", "/"), Some(BOB_LOGIN)).await;
    assert_eq!(r.status(), 200);
    let csrf = sign_out_csrf(&bob, &env.url("app", "/.portcullis/sign_out")).await;
    let r = bob
        .post(env.url("app", "/.portcullis/sign_out"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let bobs_link = location(&r);
    assert!(
        bobs_link.contains("/.portcullis/sign_out?intent="),
        "{bobs_link}"
    );
    let r = get(&alice, &bobs_link, "text/html").await;
    assert_eq!(r.status(), 400, "bob's link does not sign alice out");
    assert_eq!(env.events("logout").await.len(), logouts);
    // Alice is still signed in at the authenticate host: another app needs no login.
    let (r, _) = follow(&alice, &env.url("admin", "/"), None).await;
    assert_eq!(r.status(), 200);

    // Alice signs out: her refresh token is revoked at the provider, and the ID token
    // the sign-out hands the provider in a URL is no bearer token afterwards.
    let revokes = env.events("revoke").await.len();
    let csrf = sign_out_csrf(&alice, &env.url("app", "/.portcullis/sign_out")).await;
    let r = alice
        .post(env.url("app", "/.portcullis/sign_out"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let (r, hops) = follow(&alice, &location(&r), None).await;
    assert_eq!(r.status(), 200, "{hops:#?}");
    let hint = hops
        .iter()
        .find_map(|h| {
            let url = reqwest::Url::parse(h).ok()?;
            url.query_pairs()
                .find(|(k, _)| k == "id_token_hint")
                .map(|(_, v)| v.into_owned())
        })
        .expect("the sign-out went to the provider with id_token_hint");
    for host in ["app", "admin"] {
        let r = bare(&env)
            .get(env.url(host, "/"))
            .bearer_auth(&hint)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "the signed-out ID token on {host}");
    }
    let revoked: Vec<Value> = env.events("revoke").await;
    assert!(
        revoked.len() > revokes,
        "no revocation reached the provider"
    );
    assert!(revoked.iter().all(|e| e["status"] == 200), "{revoked:?}");
    assert!(
        env.events("logout").await.len() > logouts,
        "end-session not reached"
    );
    // Her other app's credential still decodes (cookie store) until it expires, but the
    // session can't be renewed; with Redis it ended everywhere at once.
    let r = get(&alice, &env.url("admin", "/"), "application/json").await;
    if redis {
        assert_eq!(r.status(), 401, "the Redis session ended everywhere");
    }
}

#[tokio::test]
async fn sign_out_is_bound_to_the_session_and_revokes_cookie_store() {
    sign_out_boundaries(false).await;
}

#[tokio::test]
async fn sign_out_is_bound_to_the_session_and_revokes_redis() {
    sign_out_boundaries(true).await;
}

/// Bearer tokens: only access tokens issued to our client (or an allowed one), and a
/// `client_credentials` token is not a user.
#[tokio::test]
async fn bearer_tokens_from_other_clients_and_services() {
    let extra = "idp_access_token_allowed_audiences: [api://default]\n\
                 idp_access_token_allowed_clients: [reporting-service]\n";
    let svc_route = "\
\x20 - from: https://svc.example.test
    to: http://UPSTREAM
    policy:
      - allow:
          and:
            - claim/cid: reporting-service
";
    let env = start_full("default", false, extra, &LONG_TOKENS, svc_route).await;
    let issuer = format!("{}/oauth2/default", env.idp);
    let api = bare(&env);
    let call = |host: &'static str, token: String| {
        let api = api.clone();
        let url = env.url(host, "/api");
        async move {
            api.get(url)
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Alice's tokens from another web app of the same provider.
    let other = provider_tokens(
        &env,
        &issuer,
        ALICE_LOGIN,
        (OTHER_CLIENT_ID, OTHER_CLIENT_SECRET),
    )
    .await;
    for kind in ["access_token", "id_token"] {
        let token = other[kind].as_str().unwrap().to_string();
        assert_eq!(call("app", token).await, 401, "{kind} of another client");
    }
    // Ours are accepted.
    let ours = provider_tokens(&env, &issuer, ALICE_LOGIN, (CLIENT_ID, CLIENT_SECRET)).await;
    let access = ours["access_token"].as_str().unwrap().to_string();
    assert_eq!(call("app", access).await, 200);

    // A service's client_credentials token (sub = cid = the client): not a user.
    let svc: Value = api
        .post(format!("{issuer}/v1/token"))
        .basic_auth(SERVICE_CLIENT_ID, Some(SERVICE_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = svc["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{svc}"))
        .to_string();
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], SERVICE_CLIENT_ID, "{claims}");
    // Valid, but no user: refused as Pomerium refuses a session without a user ID
    // (403 `user-unauthorized`, not a sign-in).
    assert_eq!(
        call("app", token.clone()).await,
        403,
        "not an authenticated user"
    );
    assert_eq!(call("admin", token.clone()).await, 403);
    assert_eq!(
        call("svc", token).await,
        200,
        "claim/cid allows the service"
    );
}

/// A small upstream that answers with the headers it is given, in order.
async fn cookie_upstream(headers: Vec<(&'static str, String)>) -> SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let headers = headers.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let mut resp = http::Response::builder().status(200);
                    for (name, value) in &headers {
                        resp = resp.header(*name, value.as_str());
                    }
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            resp.body(http_body_util::Full::new(bytes::Bytes::from("ok")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn upstreams_cannot_set_portcullis_cookies() {
    // The port is only known once the harness picked it, so the upstream plants every
    // spelling an app could try, port-specific ones for a range of ports included.
    let mut planted = vec![
        "_portcullis=planted; Domain=.example.test; Path=/".to_string(),
        "_portcullis_1=planted; Path=/".to_string(),
        "_portcullis_authenticate=planted".to_string(),
        "__Host-_portcullis_nonce=planted; Path=/; Secure".to_string(),
    ];
    let probe = common::free_port();
    planted.push(format!(
        "_portcullis_p{probe}=planted; Domain=.example.test"
    ));
    planted.push("=_portcullis=nameless; Domain=.example.test".to_string());
    planted.push("theme=dark; Path=/".to_string());
    let mut headers: Vec<(&str, String)> = planted.into_iter().map(|c| ("set-cookie", c)).collect();
    // A browser reads every Clear-Site-Data value: the second one would sign users out
    // of every host sharing the session.
    headers.push(("clear-site-data", "\"cache\"".into()));
    headers.push(("clear-site-data", "\"cookies\"".into()));
    let upstream = cookie_upstream(headers).await;
    // The route's own response headers (an Ingress annotation, an HTTPRoute filter: a
    // tenant's words) are held to the same rule.
    let route = format!(
        "\x20 - from: https://cookies.example.test\n    to: http://{upstream}\n    \
         allow_public_unauthenticated_access: true\n\
         \x20 - from: https://own.example.test\n    to: http://{upstream}\n    \
         allow_public_unauthenticated_access: true\n    \
         set_response_headers:\n      \
         Set-Cookie: \"_portcullis=route; Domain=.example.test; Path=/\"\n      \
         Clear-Site-Data: '\"Cookies\"'\n"
    );
    let env = start_full("default", false, "", &LONG_TOKENS, &route).await;
    let values = |r: &reqwest::Response, name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let r = get(&bare(&env), &env.url("cookies", "/"), "text/html").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        values(&r, "set-cookie"),
        ["theme=dark; Path=/"],
        "only the app's own cookie passes"
    );
    assert_eq!(values(&r, "clear-site-data"), ["\"cache\""]);
    let r = get(&bare(&env), &env.url("own", "/"), "text/html").await;
    assert_eq!(r.status(), 200);
    assert_eq!(values(&r, "set-cookie"), Vec::<String>::new());
    assert_eq!(values(&r, "clear-site-data"), Vec::<String>::new());
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("portcullis_upstream_cookies_dropped_total 7"),
        "{metrics}"
    );
}

/// With rotation on: the user active on three hosts across several refreshes. No API
/// request fails, browsers are bounced at most once per refresh, and the provider sees
/// each refresh token used once.
async fn rotation_on_three_hosts(env: &Env, replicas: usize) {
    let hosts = ["app", "admin", "docs"];
    let alice = env.browser();
    let (r, _) = follow(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(r.status(), 200);
    let mut bounces = 0;
    let mut api_failures = Vec::new();
    let mut api_requests = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0u32;
    while Instant::now() < deadline {
        // Every second, each host is visited as a browser would (following redirects).
        if round.is_multiple_of(4) {
            for host in hosts {
                let (r, hops) = follow(&alice, &env.url(host, "/page"), None).await;
                assert_eq!(r.status(), 200, "{hops:#?}");
                if hops.iter().any(|h| h.contains("/.portcullis/sign_in")) {
                    bounces += 1;
                }
            }
        }
        // In between, the pages' scripts call their APIs, all hosts at once.
        let calls = hosts.map(|host| {
            let c = alice.clone();
            let url = env.url(host, "/api");
            async move {
                c.get(url)
                    .header("accept", "application/json")
                    .header("sec-fetch-mode", "cors")
                    .header("sec-fetch-dest", "empty")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        });
        for (host, status) in hosts
            .iter()
            .zip(futures_util::future::join_all(calls).await)
        {
            api_requests += 1;
            match status {
                Ok(200) => {}
                other => api_failures.push(format!("{host}: {other:?}")),
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let refreshes = env.events("refresh").await;
    let errors = env.events("refresh_error").await;
    let jtis: Vec<&str> = refreshes
        .iter()
        .filter_map(|e| e["refresh_token_jti"].as_str())
        .collect();
    let unique: HashSet<&str> = jtis.iter().copied().collect();
    eprintln!(
        "{replicas} replica(s): {api_requests} API requests, {} refreshes, {bounces} browser \
         bounces, {} refresh errors",
        refreshes.len(),
        errors.len()
    );
    assert!(
        api_failures.is_empty(),
        "API requests failed: {api_failures:?}"
    );
    assert!(
        refreshes.len() >= 3,
        "not several refreshes: {}",
        refreshes.len()
    );
    assert!(
        refreshes.iter().all(|e| e["rotated"] == true),
        "{refreshes:?}"
    );
    assert_eq!(jtis.len(), refreshes.len());
    assert_eq!(unique.len(), jtis.len(), "a refresh token was used twice");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        bounces <= refreshes.len(),
        "{bounces} bounces for {} refreshes",
        refreshes.len()
    );
}

#[tokio::test]
async fn rotation_across_three_hosts_with_the_cookie_store() {
    let rotating = IdpOptions {
        token_ttl: 6,
        refresh_token_rotation: "rotate",
    };
    let env = start_full("default", false, "", &rotating, MORE_ROUTES).await;
    rotation_on_three_hosts(&env, 1).await;
}

#[tokio::test]
async fn rotation_across_three_hosts_with_two_redis_replicas() {
    // Sessions refresh a minute before their tokens expire: 64 s tokens refresh every
    // few seconds, as an hour's tokens do in their last minute.
    let rotating = IdpOptions {
        token_ttl: 64,
        refresh_token_rotation: "rotate",
    };
    // Two replicas of the same config behind one balancer port, which every URL names.
    let (a, b) = (common::free_port(), common::free_port());
    let lb_port = balancer(vec![
        SocketAddr::from(([127, 0, 0, 1], a)),
        SocketAddr::from(([127, 0, 0, 1], b)),
    ])
    .await;
    let env = start_replicas("default", &rotating, MORE_ROUTES, lb_port, &[a, b]).await;
    rotation_on_three_hosts(&env, 2).await;
}
