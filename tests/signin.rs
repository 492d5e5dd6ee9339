//! Sign-in end to end: the `portcullis` binary with a Pomerium-format config, signing in
//! against `oidc-provider` configured like Okta (e2e/oidc, both issuer forms), over TLS
//! with a test CA — with sessions in the cookie and in Redis.
//!
//! Needs `npm ci --prefix e2e/oidc` and Debian's `redis-server` (e2e/test-all installs both).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const CLIENT_ID: &str = "portcullis-test";
const CLIENT_SECRET: &str = "client-secret-for-tests-only";
const ALICE: &str = "00ualice0000000001";
const BOB: &str = "00ubob000000000001";

/// Kills the child on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let d =
            std::env::temp_dir().join(format!("portcullis-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts the Okta-shaped provider; returns it with its base URL.
fn start_idp(dir: &Dir, cert: &Path, key: &Path, proxy_port: u16) -> (Proc, String) {
    let auth = format!("https://authenticate.example.test:{proxy_port}");
    let config = json!({
        "tls": {"cert": cert, "key": key},
        "ttl": {"access_token": 5, "id_token": 5},
        "clients": [{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{auth}/oauth2/callback")],
            "post_logout_redirect_uris": [format!("{auth}/.portcullis/signed_out")],
        }],
        "users": [
            {"sub": ALICE, "email": "alice@example.com", "email_verified": true, "name": "Alice",
             "login": "alice@example.com", "password": "alice-pw", "groups": ["Everyone", "admins"]},
            {"sub": BOB, "email": "bob@example.com", "email_verified": true, "name": "Bob",
             "login": "bob@example.com", "password": "bob-pw", "groups": ["Everyone"]},
        ],
    });
    let path = dir.write("idp.json", config.to_string().as_bytes());
    let server = repo().join("e2e/oidc/server.js");
    assert!(
        repo().join("e2e/oidc/node_modules").exists(),
        "run `npm ci --prefix e2e/oidc` first (e2e/test-all does)"
    );
    let mut child = Command::new("node")
        .arg(server)
        .args(["--config"])
        .arg(&path)
        .args(["--port", "0", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is installed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let base = ready["base_url"].as_str().unwrap().to_string();
    (Proc(child), base)
}

fn start_redis() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server; e2e/test-all does)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), port)
}

struct Env {
    _dir: Dir,
    _idp: Proc,
    _proxy: Proc,
    _redis: Option<Proc>,
    idp: String,
    port: u16,
    ca_pem: Vec<u8>,
    ca: rustls::pki_types::CertificateDer<'static>,
}

async fn start(issuer_form: &str, redis: bool) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Dir::new("signin");
    let pki = pki(&["*.example.test", "127.0.0.1", "localhost"]);
    let cert = dir.write("tls.crt", &pki.server.cert_pem);
    let key = dir.write("tls.key", &pki.server.key_pem);
    let ca_pem = pem_of(&pki.ca_der);
    let ca_file = dir.write("ca.pem", &ca_pem);
    let port = free_port();
    let admin = free_port();
    let (idp_proc, idp) = start_idp(&dir, &cert, &key, port);
    let issuer = match issuer_form {
        "default" => format!("{idp}/oauth2/default"),
        _ => idp.clone(),
    };
    let upstream = echo_upstream("app").await;
    let (redis_proc, store) = if redis {
        let (p, port) = start_redis();
        (
            Some(p),
            format!("session_store: redis://127.0.0.1:{port}/0\n"),
        )
    } else {
        (None, String::new())
    };
    let secret = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
    let config = format!(
        "address: 127.0.0.1:{port}\n\
         metrics_address: 127.0.0.1:{admin}\n\
         certificates:\n  - cert: {cert}\n    key: {key}\n\
         authenticate_service_url: https://authenticate.example.test:{port}\n\
         idp_provider: okta\n\
         idp_provider_url: {issuer}\n\
         idp_client_id: {CLIENT_ID}\n\
         idp_ca_file: {ca}\n\
         cookie_secret: {secret}\n\
         {store}\
         routes:\n\
         \x20 - from: https://app.example.test\n\
         \x20   to: http://{upstream}\n\
         \x20   allow_any_authenticated_user: true\n\
         \x20   pass_identity_headers: true\n\
         \x20 - from: https://admin.example.test\n\
         \x20   to: http://{upstream}\n\
         \x20   policy:\n\
         \x20     - allow:\n\
         \x20         and:\n\
         \x20           - groups: {{has: admins}}\n",
        cert = cert.display(),
        key = key.display(),
        ca = ca_file.display(),
    );
    let config_path = dir.write("config.yaml", config.as_bytes());
    let log = std::fs::File::create(dir.0.join("portcullis.log")).unwrap();
    let proxy = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_ready(admin).await;
    Env {
        _dir: dir,
        _idp: idp_proc,
        _proxy: Proc(proxy),
        _redis: redis_proc,
        idp,
        port,
        ca_pem,
        ca: pki.ca_der.clone(),
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b
}

fn pem_of(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

async fn wait_ready(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "portcullis did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Env {
    /// A browser-like client: keeps cookies, trusts the test CA, resolves our names to
    /// loopback, and does not follow redirects on its own (the tests follow them).
    fn browser(&self) -> reqwest::Client {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let tls = (*client_tls(&self.ca, &[b"http/1.1"])).clone();
        // The app's own cookie, which must reach it untouched.
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        jar.add_cookie_str("theme=dark; Path=/", &self.url("app", "/").parse().unwrap());
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.example.test", addr)
            .resolve("admin.example.test", addr)
            .resolve("authenticate.example.test", addr)
            .build()
            .unwrap()
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}.example.test:{}{path}", self.port)
    }

    async fn events(&self, kind: &str) -> Vec<Value> {
        let v: Value = self
            .browser()
            .get(format!("{}/__test/events?type={kind}", self.idp))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["events"].as_array().cloned().unwrap_or_default()
    }
}

/// Follows redirects from `url`, signing in at the provider's login form as
/// `user`/`password`; returns the final response and every URL visited.
async fn follow(
    c: &reqwest::Client,
    url: &str,
    login: Option<(&str, &str)>,
) -> (reqwest::Response, Vec<String>) {
    let mut hops = vec![url.to_string()];
    let mut resp = c
        .get(url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    for _ in 0..20 {
        let current = resp.url().clone();
        if resp.status().is_redirection() {
            let loc = resp.headers()["location"].to_str().unwrap().to_string();
            let next = current.join(&loc).unwrap().to_string();
            hops.push(next.clone());
            resp = c
                .get(&next)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            continue;
        }
        if resp.status() == 200 && current.path().contains("/login/") {
            let (user, password) = login.expect("a login form appeared but no user was given");
            resp = c
                .post(current.as_str())
                .form(&[("username", user), ("password", password)])
                .send()
                .await
                .unwrap();
            continue;
        }
        return (resp, hops);
    }
    panic!("too many redirects: {hops:#?}");
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Verifies an ES256 JWT against a JWKS with ring alone.
fn verify_es256(token: &str, jwks: &Value) -> bool {
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the JWT's kid is in the JWKS");
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(
            signing_input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(sig).unwrap(),
        )
        .is_ok()
}

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
    let (resp, hops) = follow(
        &alice,
        &env.url("app", "/hello?x=1"),
        Some(("alice@example.com", "alice-pw")),
    )
    .await;
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
    let jwks: Value = alice
        .get(env.url("app", "/.well-known/portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let me: Value = alice
        .get(env.url("app", "/.portcullis/user"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "alice@example.com");

    // A group-restricted route: Alice (admins) passes without signing in again.
    let (resp, hops) = follow(&alice, &env.url("admin", "/"), None).await;
    assert_eq!(resp.status(), 200, "{hops:#?}");
    // Bob is not in admins: he signs in and is refused.
    let bob = env.browser();
    let (resp, _) = follow(
        &bob,
        &env.url("admin", "/"),
        Some(("bob@example.com", "bob-pw")),
    )
    .await;
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

    // A revoked refresh token ends the session at the next refresh.
    let revoked = env
        .browser()
        .post(format!("{}/__test/revoke?sub={ALICE}", env.idp))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = alice
        .get(env.url("app", "/after-revoke"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the session should have ended");

    // Sign in again, then sign out: CSRF-protected, and it reaches end-session.
    let (resp, _) = follow(
        &alice,
        &env.url("app", "/"),
        Some(("alice@example.com", "alice-pw")),
    )
    .await;
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
