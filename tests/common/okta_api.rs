//! The Okta Management API emulator (`e2e/okta-api`), started per test on loopback.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The SSWS token the emulator accepts.
pub const TOKEN: &str = "00test-token-abcdef";

pub struct Emulator {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    pub fn start(args: &[&str]) -> Emulator {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/okta-api/server.js");
        let (child, ready) = super::spawn_ready(
            Command::new("node")
                .arg(server)
                .args(["--port", "0", "--token", TOKEN])
                .args(args)
                .env("OKTA_API_EXIT_ON_STDIN_EOF", "1")
                .stderr(Stdio::inherit()),
        );
        assert_eq!(ready["ready"], true, "{ready}");
        Emulator {
            child,
            url: ready["url"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }
}
