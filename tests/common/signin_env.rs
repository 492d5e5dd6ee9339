//! The sign-in harness shared by tests/signin.rs and tests/browser.rs: the Okta-shaped
//! provider (e2e/oidc), `redis-server`, the real `portcullis` binary with a generated
//! config and test CA, and helpers to follow redirects and check JWT assertions.
//!
//! Needs `npm ci --prefix e2e/oidc` and Debian's `redis-server` (e2e/test-all installs both).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub use super::{Proc, free_port, wait_ready};
use super::{client_tls, echo_upstream, pki};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "client-secret-for-tests-only";
pub const ALICE: &str = "00ualice0000000001";
pub const BOB: &str = "00ubob000000000001";

pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let d =
            std::env::temp_dir().join(format!("portcullis-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
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

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What the provider is started with besides its defaults.
#[derive(Clone)]
pub struct IdpOptions {
    /// Access and ID token lifetime, seconds.
    pub token_ttl: u64,
    /// `static` (Okta's web-app default) or `rotate`.
    pub refresh_token_rotation: &'static str,
}

impl Default for IdpOptions {
    fn default() -> IdpOptions {
        IdpOptions {
            token_ttl: 5,
            refresh_token_rotation: "static",
        }
    }
}

/// The second client of the provider: a service with the `client_credentials` grant,
/// and a web app that is not Portcullis (its tokens must be refused).
pub const SERVICE_CLIENT_ID: &str = "reporting-service";
pub const SERVICE_CLIENT_SECRET: &str = "service-secret-for-tests-only";
pub const OTHER_CLIENT_ID: &str = "some-other-app";
pub const OTHER_CLIENT_SECRET: &str = "other-secret-for-tests-only";

/// Starts the Okta-shaped provider; returns it with its base URL.
pub fn start_idp(dir: &Dir, cert: &Path, key: &Path, proxy_port: u16) -> (Proc, String) {
    start_idp_with(dir, cert, key, proxy_port, &IdpOptions::default())
}

pub fn start_idp_with(
    dir: &Dir,
    cert: &Path,
    key: &Path,
    proxy_port: u16,
    options: &IdpOptions,
) -> (Proc, String) {
    let auth = format!("https://authenticate.example.test:{proxy_port}");
    let config = json!({
        "tls": {"cert": cert, "key": key},
        "ttl": {"access_token": options.token_ttl, "id_token": options.token_ttl},
        "refresh_token_rotation": options.refresh_token_rotation,
        "clients": [{
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{auth}/oauth2/callback")],
            "post_logout_redirect_uris": [format!("{auth}/.portcullis/signed_out")],
        }, {
            "client_id": SERVICE_CLIENT_ID,
            "client_secret": SERVICE_CLIENT_SECRET,
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
        }, {
            "client_id": OTHER_CLIENT_ID,
            "client_secret": OTHER_CLIENT_SECRET,
            "redirect_uris": [format!("{auth}/oauth2/callback")],
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
    let (child, ready) = super::spawn_ready(
        Command::new("node")
            .arg(server)
            .args(["--config"])
            .arg(&path)
            .args(["--port", "0", "--exit-on-stdin-eof"])
            .stderr(Stdio::null()),
    );
    let base = ready["base_url"].as_str().unwrap().to_string();
    (Proc(child), base)
}

pub fn start_redis() -> (Proc, u16) {
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

/// A running sign-in setup: the provider, `portcullis` (routes `app.example.test`, any
/// signed-in user, identity headers on; `admin.example.test`, group `admins`) and, with
/// the Redis store, `redis-server`. Everything stops when it is dropped.
pub struct Env {
    /// The temp dir with the config, the TLS files and `portcullis.log`.
    pub dir: Dir,
    pub idp_proc: Proc,
    pub proxy: Proc,
    /// More replicas of the same config (see [`start_replicas`]).
    pub replicas: Vec<Proc>,
    pub redis: Option<Proc>,
    /// The provider's base URL (`https://127.0.0.1:PORT`).
    pub idp: String,
    /// The proxy's HTTPS port (every `*.example.test` host).
    pub port: u16,
    /// The (first) proxy's admin port.
    pub admin: u16,
    /// Every replica's admin port (the first is `admin`).
    pub admins: Vec<u16>,
    pub ca_pem: Vec<u8>,
    pub ca: rustls::pki_types::CertificateDer<'static>,
}

/// Starts everything; `issuer_form` is `default` (Okta's custom authorization server) or
/// `org`; `redis` picks the Redis session store instead of the cookie store.
pub async fn start(issuer_form: &str, redis: bool) -> Env {
    start_with(issuer_form, redis, "").await
}

/// [`start`], with `extra` appended to the top level of the config file.
pub async fn start_with(issuer_form: &str, redis: bool, extra: &str) -> Env {
    start_full(issuer_form, redis, extra, &IdpOptions::default(), "").await
}

/// Everything configurable: `extra` top-level config, provider options, and
/// `routes` appended to the two standard routes (YAML list items, indented by two).
pub async fn start_full(
    issuer_form: &str,
    redis: bool,
    extra: &str,
    idp_options: &IdpOptions,
    routes: &str,
) -> Env {
    let port = free_port();
    start_general(
        issuer_form,
        redis,
        extra,
        idp_options,
        routes,
        port,
        &[port],
        true,
    )
    .await
}

/// Replicas of one config sharing a Redis store, each listening on one of `listen`,
/// reached by clients on `public_port` (a balancer in front of them): every URL and
/// the authenticate host name `public_port`.
pub async fn start_replicas(
    issuer_form: &str,
    idp_options: &IdpOptions,
    routes: &str,
    public_port: u16,
    listen: &[u16],
) -> Env {
    start_general(
        issuer_form,
        true,
        "",
        idp_options,
        routes,
        public_port,
        listen,
        true,
    )
    .await
}

/// Everything at once: replicas listening on `listen` (reached on `port`), with the
/// harness's own `redis-server` when `redis`, and `wait`ing for `/readyz` or not.
#[allow(clippy::too_many_arguments)]
pub async fn start_general(
    issuer_form: &str,
    redis: bool,
    extra: &str,
    idp_options: &IdpOptions,
    routes: &str,
    port: u16,
    listen: &[u16],
    wait: bool,
) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Dir::new("signin");
    let pki = pki(&["*.example.test", "127.0.0.1", "localhost"]);
    let cert = dir.write("tls.crt", &pki.server.cert_pem);
    let key = dir.write("tls.key", &pki.server.key_pem);
    let ca_pem = pem_of(&pki.ca_der);
    let ca_file = dir.write("ca.pem", &ca_pem);
    let (idp_proc, idp) = start_idp_with(&dir, &cert, &key, port, idp_options);
    let issuer = match issuer_form {
        "default" => format!("{idp}/oauth2/default"),
        _ => idp.clone(),
    };
    let upstream = echo_upstream("app").await;
    let routes = routes.replace("UPSTREAM", &upstream.to_string());
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
        "certificates:\n  - cert: {cert}\n    key: {key}\n\
         authenticate_service_url: https://authenticate.example.test:{port}\n\
         idp_provider: okta\n\
         idp_provider_url: {issuer}\n\
         idp_client_id: {CLIENT_ID}\n\
         idp_ca_file: {ca}\n\
         cookie_secret: {secret}\n\
         {store}{extra}\
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
         \x20           - groups: {{has: admins}}\n\
         {routes}",
        cert = cert.display(),
        key = key.display(),
        ca = ca_file.display(),
    );
    let config_path = dir.write("config.yaml", config.as_bytes());
    let mut procs = Vec::new();
    let mut admins = Vec::new();
    for (i, listen_port) in listen.iter().enumerate() {
        let admin = free_port();
        let log_name = if i == 0 {
            "portcullis.log".to_string()
        } else {
            format!("portcullis-{i}.log")
        };
        let log = std::fs::File::create(dir.0.join(log_name)).unwrap();
        let proxy = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config_path)
            .env("ADDRESS", format!("127.0.0.1:{listen_port}"))
            .env("METRICS_ADDRESS", format!("127.0.0.1:{admin}"))
            .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
            .env("LOG_LEVEL", "info")
            .env("RUST_LOG", "info,portcullis::api::auth=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        procs.push(Proc(proxy));
        admins.push(admin);
    }
    for admin in admins.iter().filter(|_| wait) {
        wait_ready(*admin).await;
    }
    let proxy = procs.remove(0);
    Env {
        dir,
        idp_proc,
        proxy,
        replicas: procs,
        redis: redis_proc,
        idp,
        port,
        admin: admins[0],
        admins: admins.clone(),
        ca_pem,
        ca: pki.ca_der.clone(),
    }
}

pub fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b
}

pub fn pem_of(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

impl Env {
    /// A browser-like client: keeps cookies, trusts the test CA, resolves our names to
    /// loopback, and does not follow redirects on its own (the tests follow them).
    pub fn browser(&self) -> reqwest::Client {
        // The app's own cookie, which must reach it untouched.
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        jar.add_cookie_str("theme=dark; Path=/", &self.url("app", "/").parse().unwrap());
        self.browser_with(jar)
    }

    /// A browser on `jar`: clients made with one jar are one browser with separate
    /// connections (each a new one through a balancer).
    pub fn browser_with(&self, jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let tls = (*client_tls(&self.ca, &[b"http/1.1"])).clone();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.example.test", addr)
            .resolve("admin.example.test", addr)
            .resolve("authenticate.example.test", addr)
            .resolve("evil.example.test", addr)
            .resolve("docs.example.test", addr)
            .resolve("svc.example.test", addr)
            .resolve("cookies.example.test", addr)
            .build()
            .unwrap()
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}.example.test:{}{path}", self.port)
    }

    /// The first proxy's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.admin));
        super::plain_get(addr, "localhost", "/metrics").await.body
    }

    pub async fn events(&self, kind: &str) -> Vec<Value> {
        let v = get_json(
            &self.browser(),
            format!("{}/__test/events?type={kind}", self.idp),
        )
        .await;
        v["events"].as_array().cloned().unwrap_or_default()
    }
}

/// The provider's test users (see the config above): login and password.
pub const ALICE_LOGIN: (&str, &str) = ("alice@example.com", "alice-pw");
pub const BOB_LOGIN: (&str, &str) = ("bob@example.com", "bob-pw");

/// Follows redirects from `url`, signing in at the provider's login form as
/// `user`/`password`; returns the final response and every URL visited.
pub async fn follow(
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

pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Verifies an ES256 JWT against a JWKS with ring alone.
pub fn verify_es256(token: &str, jwks: &Value) -> bool {
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

/// GETs `url` and reads the body as JSON.
pub async fn get_json(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// Gets tokens for `user` from the provider directly, as an API client's own OIDC
/// library would (authorization code + PKCE), without going through Portcullis.
pub async fn provider_tokens(
    env: &Env,
    issuer: &str,
    user: (&str, &str),
    client: (&str, &str),
) -> Value {
    use base64::Engine;
    let verifier = "a-pkce-verifier-that-is-long-enough-for-the-rules-0123456789";
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    let redirect_uri = env.url("authenticate", "/oauth2/callback");
    let c = env.browser();
    let mut url = reqwest::Url::parse(&format!("{issuer}/v1/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.0)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid email profile groups")
        .append_pair("state", "api-client-state")
        .append_pair("nonce", "api-client-nonce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut resp = c.get(url).send().await.unwrap();
    let code = loop {
        let at = resp.url().clone();
        if resp.status().is_redirection() {
            let next = at
                .join(resp.headers()["location"].to_str().unwrap())
                .unwrap();
            if next.as_str().starts_with(&redirect_uri) {
                break next
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .expect("a code");
            }
            resp = c.get(next).send().await.unwrap();
        } else if at.path().contains("/login/") {
            resp = c
                .post(at)
                .form(&[("username", user.0), ("password", user.1)])
                .send()
                .await
                .unwrap();
        } else {
            panic!("unexpected page {at}: {}", resp.status());
        }
    };
    c.post(format!("{issuer}/v1/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn get(c: &reqwest::Client, url: &str, accept: &str) -> reqwest::Response {
    c.get(url).header("accept", accept).send().await.unwrap()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The value a response sets for cookie `name`, if any.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let (n, rest) = v.split_once('=')?;
        let value = rest.split(';').next()?;
        (n == name && !value.is_empty()).then(|| value.to_string())
    })
}

/// Follows redirects from `url` (signing in as `login` when the provider asks) until
/// the next hop would redeem a handoff token; returns that URL without visiting it.
pub async fn until_handoff(c: &reqwest::Client, url: &str, login: Option<(&str, &str)>) -> String {
    let mut r = get(c, url, "text/html").await;
    for _ in 0..20 {
        let at = r.url().clone();
        if r.status().is_redirection() {
            let next = at.join(&location(&r)).unwrap().to_string();
            if next.contains("/.portcullis/callback?token=") {
                return next;
            }
            r = get(c, &next, "text/html").await;
        } else if r.status() == 200 && at.path().contains("/login/") {
            let (user, password) = login.expect("a login form appeared but no user was given");
            r = c
                .post(at.as_str())
                .form(&[("username", user), ("password", password)])
                .send()
                .await
                .unwrap();
        } else {
            panic!("no handoff on the way: {} at {at}", r.status());
        }
    }
    panic!("too many redirects");
}

/// The CSRF token of the sign-out form `c` gets on `url`.
pub async fn sign_out_csrf(c: &reqwest::Client, url: &str) -> String {
    let form = c.get(url).send().await.unwrap().text().await.unwrap();
    form.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {form}"))
        .to_string()
}

/// A TCP balancer on loopback: each new connection goes to the next backend in turn
/// (what a Service or an L4 load balancer in front of two replicas does).
pub async fn balancer(backends: Vec<SocketAddr>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut next = 0usize;
        while let Ok((mut client, _)) = listener.accept().await {
            let backend = backends[next % backends.len()];
            next += 1;
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    port
}

/// Signs `c` out at `url` (the sign-out form's own CSRF token, POSTed back).
pub async fn sign_out(c: &reqwest::Client, url: &str) -> reqwest::Response {
    let csrf = sign_out_csrf(c, url).await;
    c.post(url)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
}
