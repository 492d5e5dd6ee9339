//! `portcullis dev` as a person tries it: start it with no setup, follow the printed
//! URL, pick a demo user at the development provider, reach the demo app, and see
//! yourself on `/.portcullis/`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const ADA: &str = "00udevada00000000001";
const GRACE: &str = "00udevgrace000000002";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `portcullis dev` on free ports; returns it with its HTTPS port.
fn start_dev() -> (Proc, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["dev", "--port", "0", "--metrics-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let mut port = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.trim().strip_prefix("https://app.localhost:") {
            port = rest.split('/').next().and_then(|p| p.parse().ok());
        }
        if line.contains("Ctrl-C stops") {
            break;
        }
    }
    assert!(banner.contains("NEVER for production"), "{banner}");
    (
        Proc(child),
        port.unwrap_or_else(|| panic!("no app URL in:\n{banner}")),
    )
}

fn browser(port: u16) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    reqwest::Client::builder()
        // `portcullis dev` serves a self-signed certificate, as the banner says.
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.localhost", addr)
        .resolve("admin.localhost", addr)
        .resolve("authenticate.localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Follows redirects from `url`; at the development provider's login page, picks `user`.
async fn sign_in_and_get(c: &reqwest::Client, url: &str, user: &str) -> reqwest::Response {
    let mut resp = c
        .get(url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    for _ in 0..15 {
        if resp.status().is_redirection() {
            let next = resp
                .url()
                .join(resp.headers()["location"].to_str().unwrap())
                .unwrap();
            resp = c
                .get(next)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            continue;
        }
        let at = resp.url().clone();
        if at.path() == "/authorize" && resp.status() == 200 {
            let page = resp.text().await.unwrap();
            let pending = page
                .split("name=\"pending\" value=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("the login form carries the pending request")
                .to_string();
            assert!(page.contains(&format!("id=\"user-{user}\"")), "{page}");
            resp = c
                .post(at)
                .form(&[("pending", pending.as_str()), ("user", user)])
                .send()
                .await
                .unwrap();
            continue;
        }
        return resp;
    }
    panic!("too many redirects");
}

#[tokio::test]
async fn dev_mode_signs_a_demo_user_in() {
    let (_dev, port) = start_dev();
    let ada = browser(port);
    let app = format!("https://app.localhost:{port}/hello");
    let resp = sign_in_and_get(&ada, &app, ADA).await;
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["upstream"], "demo-app");
    assert_eq!(
        echo["headers"]["x-portcullis-claim-email"], "ada@example.com",
        "{echo}"
    );
    assert!(echo["headers"]["x-portcullis-jwt-assertion"].is_string());

    let page = ada
        .get(format!("https://app.localhost:{port}/.portcullis/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("ada@example.com") && page.contains("admin"),
        "{page}"
    );

    // Ada is in `admin`; Grace is not.
    let admin = format!("https://admin.localhost:{port}/");
    assert_eq!(sign_in_and_get(&ada, &admin, ADA).await.status(), 200);
    let grace = browser(port);
    assert_eq!(sign_in_and_get(&grace, &admin, GRACE).await.status(), 403);
}
