//! The `portcullis` binary as a user runs it: `run --config` serving a real config file,
//! `check` refusing mistakes with their location, and `policy eval`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[tokio::test]
async fn run_serves_a_config_file() {
    let dir = TempDir::new("run");
    let pki = pki(&["*.example.test"]);
    let cert = dir.write(
        "tls.crt",
        std::str::from_utf8(&pki.server.cert_pem).unwrap(),
    );
    let key = dir.write("tls.key", std::str::from_utf8(&pki.server.key_pem).unwrap());
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let (https, admin) = (free_port(), free_port());
    let config = dir.write(
        "config.yaml",
        &format!(
            "address: 127.0.0.1:{https}\n\
             metrics_address: 127.0.0.1:{admin}\n\
             certificates:\n  - cert: {cert}\n    key: {key}\n\
             routes:\n\
             \x20 - from: https://app.example.test\n\
             \x20   to: [http://{a}, http://{b}]\n\
             \x20   allow_public_unauthenticated_access: true\n\
             \x20 - from: https://other.example.test\n\
             \x20   to: http://{a}\n\
             \x20   preserve_host_header: true\n\
             \x20   allow_public_unauthenticated_access: true\n",
            cert = cert.display(),
            key = key.display(),
        ),
    );
    let child = Command::new(BIN)
        .args(["run", "--workers", "3", "--config"])
        .arg(&config)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _running = Proc(child);
    wait_ready(admin).await;
    // `--workers 3`: three data-plane threads (named portcullis-worker-N, which the
    // kernel cuts to 15 bytes).
    let workers = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim() == "portcullis-work")
        .count();
    assert_eq!(workers, 3);

    // An HTTP/1.1 client offers only http/1.1: after ALPN picks h2, HTTP/1.1 bytes
    // are refused (the connection is closed).
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    let mut app = H1::connect(addr, "app.example.test", tls.clone()).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ans = app.get("/").await.unwrap();
        assert_eq!(ans.status, 200, "{}", ans.body);
        let echo = ans.json();
        // File mode: the upstream sees its own host, as in Pomerium.
        let upstream = echo["upstream"].as_str().unwrap().to_string();
        let want_host = if upstream == "a" { a } else { b }.to_string();
        assert_eq!(echo["headers"]["host"], want_host);
        seen.push(upstream);
    }
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"]);
    let ans = H1::connect(addr, "other.example.test", tls)
        .await
        .get("/")
        .await
        .unwrap();
    assert_eq!(ans.json()["headers"]["host"], "other.example.test");
}

#[test]
fn check_refuses_unknown_keys_with_their_location() {
    let dir = TempDir::new("check");
    let config = dir.write(
        "config.yaml",
        "routes:\n  - from: https://app.example.test\n    to: http://127.0.0.1:9\n    polcy: []\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config.yaml:4:5"), "{stderr}");
    assert!(stderr.contains("unknown key `polcy`"), "{stderr}");

    let good = dir.write(
        "good.yaml",
        "routes:\n  - from: https://app.example.test\n    to: http://127.0.0.1:9\n    allow_public_unauthenticated_access: true\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn run_refuses_a_bad_config_before_listening() {
    let dir = TempDir::new("bad");
    let config = dir.write("config.yaml", "adress: 127.0.0.1:8443\n");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown key `adress`"), "{stderr}");
}

#[test]
fn policy_eval_prints_the_decision_first() {
    let dir = TempDir::new("eval");
    let policy = dir.write(
        "policy.yaml",
        "allow:\n  and:\n    - groups: {has: admin}\n    - http_method: GET\n",
    );
    let run = |input: &str| {
        let input = dir.write("input.json", input);
        Command::new(BIN)
            .args(["policy", "eval", "--policy"])
            .arg(&policy)
            .arg("--input")
            .arg(&input)
            .output()
            .unwrap()
    };
    let cases = [
        (
            r#"{"identity": {"user": "u", "email": "a@example.com", "groups": ["admin"]},
                "request": {"method": "GET", "path": "/"}}"#,
            "allow",
        ),
        (
            r#"{"identity": {"user": "u", "email": "a@example.com", "groups": ["dev"]},
                "request": {"method": "GET", "path": "/"}}"#,
            "deny",
        ),
        (r#"{"request": {"method": "GET", "path": "/"}}"#, "sign-in"),
    ];
    for (input, want) in cases {
        let out = run(input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().next(), Some(want), "{stdout}");
    }
    let bad = dir.write("bad.yaml", "allow:\n  and:\n    - grups: admin\n");
    let input = dir.write(
        "anon.json",
        r#"{"request": {"method": "GET", "path": "/"}}"#,
    );
    let out = Command::new(BIN)
        .args(["policy", "eval", "--policy"])
        .arg(&bad)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow.and[0].grups: unknown criterion"));
}
