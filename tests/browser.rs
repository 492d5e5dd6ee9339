//! Sign-in with a real browser: headless Chromium, driven through chromedriver's W3C
//! WebDriver HTTP API (plain reqwest + serde_json), signs in at the Okta-shaped provider's
//! login form and reaches the upstream through `portcullis`.
//!
//! Needs Debian's `chromium` and `chromium-driver` and `npm ci --prefix e2e/oidc`
//! (e2e/test-all does both). A missing browser fails the test; it is never skipped.
//! A passing run writes a screenshot of the user page to
//! `$TMPDIR/portcullis-browser-user-page.png` (see `--nocapture` output).
//!
//! TLS: Chromium has no command-line flag to trust one extra CA (it would need an NSS
//! database in the profile, built with `certutil` from libnss3-tools), so the session
//! asks for `acceptInsecureCerts`. Certificate verification against the test CA is
//! covered by the reqwest tests in tests/signin.rs; this test is about the browser's
//! behaviour: redirects, cookies (Secure, HttpOnly, SameSite=Lax) across the provider
//! and our hosts, and the login form.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::signin_env::*;
use serde_json::{Value, json};

/// W3C WebDriver's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Finds `name` on `PATH`, or fails saying how to install it.
fn require(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH: install Debian's `{package}` \
                 (apt-get install {package}; e2e/test-all installs it)"
            )
        })
}

/// A chromedriver process with one browser session. Dropping it (also while a test
/// panics) deletes the session, which quits Chromium, then kills chromedriver's whole
/// process group, so no browser outlives the test.
struct Browser {
    http: reqwest::Client,
    port: u16,
    session: Option<String>,
    driver: Proc,
    log: PathBuf,
    /// The profile and chromedriver's log; removed last.
    _dir: Dir,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let dir = Dir::new("browser");
        let profile = dir.0.join("profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = dir.0.join("chromedriver.log");
        let port = free_port();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                // Chromium's own stdout and stderr go to the log too.
                .arg("--enable-chrome-logs")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so Chromium and its helpers can be killed with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()))
        };
        let mut b = Browser {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            port,
            session: None,
            driver: Proc(driver),
            log,
            _dir: dir,
        };
        b.wait_driver_ready().await;
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(), // Chromium refuses to run as root with its sandbox.
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1024,768".into(),
            format!("--user-data-dir={}", profile.display()),
            // Our host names on loopback; the provider is at 127.0.0.1 already.
            "--host-resolver-rules=MAP *.example.test 127.0.0.1".into(),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // See the module comment: no flag to trust the test CA.
            "acceptInsecureCerts": true,
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 20_000, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        // Not `call`: a failure here must show why Chromium did not start.
        let v: Value = match b
            .http
            .post(format!("http://127.0.0.1:{port}/session"))
            .json(&caps)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => json!({"value": {"error": e.to_string()}}),
        };
        match v["value"]["sessionId"].as_str() {
            Some(id) => b.session = Some(id.to_string()),
            None => {
                let log = std::fs::read_to_string(&b.log).unwrap_or_default();
                b.log = PathBuf::new(); // printed here in full; Drop need not repeat it
                panic!(
                    "chromedriver could not start Chromium ({}): {}\n\
                     --- chromedriver log (with Chromium's output) ---\n{log}",
                    chromium.display(),
                    v["value"]
                )
            }
        }
        b
    }

    async fn wait_driver_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("http://127.0.0.1:{}/status", self.port))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return;
            }
            if let Ok(Some(status)) = self.driver.0.try_wait() {
                panic!(
                    "chromedriver exited ({status})\n--- chromedriver log ---\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready\n--- chromedriver log ---\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One WebDriver command; returns its `value`, failing on a WebDriver error.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: not JSON: {e}"));
        let value = v["value"].clone();
        if !status.is_success() || value.get("error").is_some_and(|e| !e.is_null()) {
            panic!(
                "WebDriver {method} {path} failed ({status}): {} — {}",
                value["error"], value["message"]
            );
        }
        value
    }

    /// A command on the session: `path` is relative to `/session/{id}`.
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let id = self.session.as_deref().expect("a session");
        self.call(method, &format!("/session/{id}{path}"), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn source(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/source", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn title(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/title", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn script(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Finds one element by CSS selector, waiting up to `wait` for it to appear.
    async fn find(&self, css: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let id = self.session.as_deref().expect("a session");
        loop {
            let r = self
                .http
                .post(format!(
                    "http://127.0.0.1:{}/session/{id}/element",
                    self.port
                ))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            if let Some(e) = v["value"][ELEMENT].as_str() {
                return e.to_string();
            }
            if Instant::now() > deadline {
                panic!(
                    "no element `{css}` at {} after {wait:?}: {}\n--- page ---\n{}",
                    self.url().await,
                    v["value"]["message"],
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, element: &str) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Polls the current URL until `done` says yes, for at most `wait`.
    async fn wait_for_url(&self, wait: Duration, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + wait;
        loop {
            let url = self.url().await;
            if done(&url) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "still at {url} after {wait:?}, waiting for {what}\n--- page ---\n{}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, to: &Path) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(to, png).unwrap();
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// `DELETE /session/{id}`, which quits Chromium. Drop cannot await, and may run on a
    /// runtime thread, so this runs on a thread of its own with a runtime of its own.
    fn delete_session(&mut self) {
        let Some(id) = self.session.take() else {
            return;
        };
        let url = format!("http://127.0.0.1:{}/session/{id}", self.port);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let _ = client.delete(url).send().await;
            });
        })
        .join();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log.as_os_str().is_empty() {
            eprintln!("--- chromedriver log (tail) ---\n{}", self.log_tail());
        }
        self.delete_session();
        // chromedriver leads its own process group; take down anything left in it.
        let pgid = self.driver.0.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        // `driver` (kill + wait) and `_dir` (removed) are dropped next, in that order.
    }
}

/// Prints portcullis' log if the test fails.
struct LogOnPanic(PathBuf);

impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- portcullis log (tail) ---\n{}",
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_at_the_login_form_and_reaches_the_upstream() {
    // Fail (not skip) at once when the browser is missing.
    let chromium = require("chromium", "chromium");
    let chromedriver = require("chromedriver", "chromium-driver");
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.2}s] {what}", t0.elapsed().as_secs_f64());
    let env = start("default", false).await;
    step("provider and portcullis ready");
    let _log = LogOnPanic(env.dir.0.join("portcullis.log"));
    let browser = Browser::start(&chromium, &chromedriver).await;
    step("chromium session created");
    let app = env.url("app", "/hello");

    // First visit: portcullis sends the browser to the provider's login page.
    browser.goto(&app).await;
    let username = browser.find("#username", Duration::from_secs(20)).await;
    let login_url = browser.url().await;
    assert!(
        login_url.starts_with(&env.idp) && login_url.contains("/login/"),
        "expected the provider's login page, got {login_url}"
    );
    step("at the provider's login form");
    let password = browser.find("#password", Duration::from_secs(5)).await;
    let sign_in = browser.find("#sign-in", Duration::from_secs(5)).await;
    browser.type_into(&username, "alice@example.com").await;
    browser.type_into(&password, "alice-pw").await;
    browser.click(&sign_in).await;

    // Provider → /oauth2/callback → handoff → back at the app.
    browser
        .wait_for_url(Duration::from_secs(20), "the app", |u| u == app)
        .await;
    step("back at the app, signed in");
    let source = browser.source().await;
    assert!(
        source.contains("x-portcullis-jwt-assertion"),
        "no assertion reached the upstream:\n{source}"
    );
    assert!(
        source.contains("alice@example.com"),
        "alice's email did not reach the upstream:\n{source}"
    );
    // The assertion itself: signed by portcullis' key, for alice.
    let echo_text = browser
        .script("return document.querySelector('pre').textContent")
        .await;
    let echo: Value = serde_json::from_str(echo_text.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the echo is not JSON ({e}):\n{source}"));
    assert_eq!(echo["path"], "/hello");
    let jwt = echo["headers"]["x-portcullis-jwt-assertion"]
        .as_str()
        .expect("an assertion");
    let jwks = get_json(
        &env.browser(),
        env.url("app", "/.well-known/portcullis/jwks.json"),
    )
    .await;
    assert!(verify_es256(jwt, &jwks), "the assertion verifies");
    let claims = jwt_claims(jwt);
    assert_eq!(claims["sub"], ALICE);
    assert_eq!(claims["email"], "alice@example.com");
    // Portcullis' cookies stay between the browser and portcullis.
    assert!(
        !echo["headers"]["cookie"]
            .as_str()
            .unwrap_or_default()
            .contains("_portcullis"),
        "{echo}"
    );

    // The user page.
    browser.goto(&env.url("app", "/.portcullis/")).await;
    let source = browser.source().await;
    assert!(source.contains("alice@example.com"), "{source}");
    browser.find("#sign-out", Duration::from_secs(5)).await;
    let title = browser.title().await;
    assert!(!title.is_empty(), "the user page has a title");
    let shot = std::env::temp_dir().join("portcullis-browser-user-page.png");
    browser.screenshot(&shot).await;
    step("user page checked");
    println!("user page ({title}) screenshot: {}", shot.display());
}
