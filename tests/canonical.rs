//! One canonical request, attacked through the real binary (`portcullis run --config`):
//! path spellings that walk a public prefix into a private one, host and header
//! spellings that the upstream would read differently, and framing from a hostile
//! upstream — over HTTP/1.1 (raw bytes, so no client normalizes anything) and HTTP/2.
//! The path attacks run again through the controller, with Ingresses on a real API
//! server splitting one host into a public and a protected path.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{Proc, client_tls, free_port, pki, tls_connect, wait_ready};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portcullis::api::sync::lock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// What a recording upstream saw: the request line's target, and the headers.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: http::HeaderMap,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An HTTP/1.1 upstream that records every request and answers what `answer` says
/// (status, extra raw header lines, body), as a raw writer so it can misbehave.
async fn upstream(answer: fn(&Seen) -> (u16, &'static str, &'static str)) -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let mut lines = head.split("\r\n");
                    let target = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("")
                        .to_string();
                    let mut headers = http::HeaderMap::new();
                    for line in lines {
                        if let Some((k, v)) = line.split_once(':')
                            && let (Ok(k), Ok(v)) = (
                                http::HeaderName::from_bytes(k.trim().as_bytes()),
                                http::HeaderValue::from_str(v.trim()),
                            )
                        {
                            headers.append(k, v);
                        }
                    }
                    let s = Seen { target, headers };
                    let (status, extra, body) = answer(&s);
                    lock(&seen).push(s);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\n{extra}content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let resp = if extra.contains("transfer-encoding") {
                        // A chunked body beside a Content-Length that lies.
                        format!(
                            "HTTP/1.1 {status} X\r\n{extra}content-length: 3\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                            body.len()
                        )
                    } else {
                        resp
                    };
                    if stream.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    if status == 101 {
                        // Then talk another protocol: the raw bytes of a tunnel.
                        let _ = stream.write_all(b"tunnelled bytes").await;
                        return;
                    }
                }
            });
        }
    });
    (addr, log)
}

fn ok(_: &Seen) -> (u16, &'static str, &'static str) {
    (200, "", "ok")
}

struct Env {
    /// The plain-HTTP listener (with `http_redirect_address` in `extra`).
    http: Option<SocketAddr>,
    _proxy: Proc,
    _dir: common::signin_env::Dir,
    addr: SocketAddr,
    ca: rustls::pki_types::CertificateDer<'static>,
    public: Log,
    private: Log,
    hostile: Log,
}

/// `site.example.test`: `/public` is open to anyone (a plain string prefix, as in
/// Pomerium), everything else needs a user (and no identity provider is configured,
/// so nobody gets in). `ws.example.test` allows WebSockets; `rmq.example.test` keeps
/// encoded slashes (`path_normalization: lenient`); `hostile.example.test` misbehaves.
async fn start(extra: &str) -> Env {
    start_with_http(extra, None).await
}

async fn start_with_http(extra: &str, http: Option<u16>) -> Env {
    let extra = match http {
        Some(p) => format!("http_redirect_address: 127.0.0.1:{p}\n{extra}"),
        None => extra.to_string(),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = common::signin_env::Dir::new("canonical");
    let pki = pki(&["*.example.test"]);
    let cert = dir.write("tls.crt", &pki.server.cert_pem);
    let key = dir.write("tls.key", &pki.server.key_pem);
    // site.example.test has a certificate of its own (the others share the wildcard).
    let site = common::issue(&pki, &["site.example.test"]);
    let site_cert = dir.write("site.crt", &site.cert_pem);
    let site_key = dir.write("site.key", &site.key_pem);
    let (public_addr, public) = upstream(ok).await;
    let (private_addr, private) = upstream(ok).await;
    let (hostile_addr, hostile) = upstream(|s| match s.target.as_str() {
        "/switch" => (101, "connection: upgrade\r\nupgrade: foo\r\n", ""),
        "/chunked" => (200, "transfer-encoding: chunked\r\n", "a full body"),
        _ => (200, "", "ok"),
    })
    .await;
    let port = free_port();
    let admin = free_port();
    let config = format!(
        "address: 127.0.0.1:{port}\n\
         metrics_address: 127.0.0.1:{admin}\n\
         certificates:\n  - cert: {cert}\n    key: {key}\n  - cert: {site_cert}\n    key: {site_key}\n\
         jwt_claims_headers:\n  X-Email: email\n\
         {extra}\
         routes:\n\
         \x20 - from: https://site.example.test\n\
         \x20   path: /.well-known/acme-challenge/tok-123\n\
         \x20   to: http://{public_addr}\n\
         \x20 - from: https://site.example.test\n\
         \x20   prefix: /public\n\
         \x20   to: http://{public_addr}\n\
         \x20   allow_public_unauthenticated_access: true\n\
         \x20   preserve_host_header: true\n\
         \x20 - from: https://site.example.test\n\
         \x20   to: http://{private_addr}\n\
         \x20   allow_any_authenticated_user: true\n\
         \x20 - from: https://ws.example.test\n\
         \x20   to: http://{public_addr}\n\
         \x20   allow_public_unauthenticated_access: true\n\
         \x20   allow_websockets: true\n\
         \x20 - from: https://rmq.example.test\n\
         \x20   prefix: /api/\n\
         \x20   to: http://{public_addr}\n\
         \x20   allow_public_unauthenticated_access: true\n\
         \x20   path_normalization: lenient\n\
         \x20 - from: https://rmq.example.test\n\
         \x20   prefix: /admin\n\
         \x20   to: http://{private_addr}\n\
         \x20   allow_any_authenticated_user: true\n\
         \x20 - from: https://hostile.example.test\n\
         \x20   to: http://{hostile_addr}\n\
         \x20   allow_public_unauthenticated_access: true\n",
        cert = cert.display(),
        key = key.display(),
        site_cert = site_cert.display(),
        site_key = site_key.display(),
    );
    let config_path = dir.write("config.yaml", config.as_bytes());
    let log = std::fs::File::create(dir.0.join("portcullis.log")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_ready(admin).await;
    Env {
        http: http.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
        _proxy: Proc(child),
        _dir: dir,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        ca: pki.ca_der.clone(),
        public,
        private,
        hostile,
    }
}

/// Sends `request` (raw HTTP/1.1 bytes) over TLS with `sni`; returns the status and
/// the whole answer as text.
async fn raw(env: &Env, sni: &str, request: &str) -> (u16, String) {
    raw_to(env.addr, &env.ca, sni, request).await
}

async fn raw_to(
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    sni: &str,
    request: &str,
) -> (u16, String) {
    let mut tls = tls_connect(addr, sni, client_tls(ca, &[b"http/1.1"])).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn get1(env: &Env, host: &str, target: &str) -> (u16, String) {
    raw(
        env,
        host,
        &format!("GET {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
    )
    .await
}

/// One HTTP/2 request with the given `:path`, `:authority` and extra headers.
async fn get2(
    env: &Env,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    get2_to(env.addr, &env.ca, authority, path, headers).await
}

async fn get2_to(
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let tls = tls_connect(addr, authority, client_tls(ca, &[b"h2"])).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let uri = http::Uri::builder()
        .scheme("https")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = http::Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// Each attack form, with its percent-encoded, doubled and mixed-case variants.
fn attack_paths() -> Vec<String> {
    let mut out = Vec::new();
    for dots in ["..", "%2e%2e", "%2E%2E", "%2e.", ".%2E", "%2E%2e"] {
        for sep in ["/", "//", "/./", "/%2e/"] {
            out.push(format!("/public{sep}{dots}/private/x"));
            out.push(format!("/public{sep}{dots}{sep}{dots}/private/x"));
            out.push(format!("/public/{dots};/private/x"));
            out.push(format!("/public/{dots}%3b/private/x"));
        }
    }
    for p in [
        "//admin",
        "///admin",
        "/%61dmin",
        "/%41dmin",
        "/admin;x",
        "/admin%3bx",
        "/public%2F..%2Fprivate",
        "/public%2f..%2fprivate",
        "/public%5C..%5Cprivate",
        "/public\\..\\private",
        "/public/%00/../private",
        "/public/%0d%0a",
        "/./public/../private",
        "/public/../public/../private",
    ] {
        out.push(p.to_string());
    }
    out
}

#[tokio::test]
async fn no_spelling_of_a_path_walks_out_of_a_public_prefix() {
    let env = start("").await;
    let paths = attack_paths();
    for path in &paths {
        let (s1, _) = get1(&env, "site.example.test", path).await;
        let s2 = get2(&env, "site.example.test", path, &[]).await;
        // Refused (400), or decided by the protected route (403): never served from
        // the public route outside its prefix.
        assert!(matches!(s1, 400 | 403), "HTTP/1.1 {path}: {s1}");
        if let Ok((s2, _)) = s2 {
            assert!(matches!(s2, 400 | 403), "HTTP/2 {path}: {s2}");
        }
    }
    // What a plain public request looks like, for contrast.
    assert_eq!(get1(&env, "site.example.test", "/public/page").await.0, 200);
    assert_eq!(
        get1(&env, "site.example.test", "/public/a/../b").await.0,
        200
    );
    let public = lock(&env.public).clone();
    assert!(!public.is_empty());
    for s in &public {
        assert!(
            s.target.starts_with("/public") && !s.target.contains(".."),
            "the public upstream saw {}",
            s.target
        );
    }
    // The canonical path is what the upstream sees.
    assert!(public.iter().any(|s| s.target == "/public/b"), "{public:?}");
    assert!(
        lock(&env.private).is_empty(),
        "the protected upstream saw an anonymous request: {:?}",
        lock(&env.private)
    );
}

/// The same attacks through the controller: one host, two Ingresses of one namespace,
/// `/public` (pathType Prefix) open to anyone and `/` for signed-in users only (no
/// identity provider is configured, so nobody signs in). The protected upstream never
/// sees a request; the public one never a path outside `/public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_controller_no_spelling_walks_out_of_a_public_path() {
    use common::cluster::{Cluster, NS, Replica, within};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::networking::v1::Ingress;
    use serde_json::json;

    let cluster = Cluster::up("canonical").await;
    let pki = pki(&["*.example.test"]);
    let (public_addr, public) = upstream(ok).await;
    let (private_addr, private) = upstream(ok).await;
    for (name, port) in [
        ("public", public_addr.port()),
        ("private", private_addr.port()),
    ] {
        cluster
            .create::<Service>(
                Some(NS),
                json!({"metadata": {"name": name},
                       "spec": {"type": "ExternalName", "externalName": "localhost",
                                "ports": [{"name": "http", "port": port}]}}),
            )
            .await;
    }
    let ingress = |name: &str, path: &str, service: &str, port: u16, annotation: &str| {
        json!({"metadata": {"name": name, "annotations": {annotation: "true"}},
               "spec": {"ingressClassName": "portcullis",
                        "rules": [{"host": "site.example.test", "http": {"paths": [
                            {"path": path, "pathType": "Prefix", "backend": {"service":
                                {"name": service, "port": {"number": port}}}}]}}]}})
    };
    cluster
        .create::<Ingress>(
            Some(NS),
            ingress(
                "site-public",
                "/public",
                "public",
                public_addr.port(),
                "portcullis.dev/allow-public-unauthenticated-access",
            ),
        )
        .await;
    cluster
        .create::<Ingress>(
            Some(NS),
            ingress(
                "site-private",
                "/",
                "private",
                private_addr.port(),
                "portcullis.dev/allow-any-authenticated-user",
            ),
        )
        .await;
    let replica = Replica::start(&cluster, "canonical", &pki).await;
    let (addr, ca) = (replica.https, pki.ca_der.clone());
    let get1 = |target: String| {
        let ca = ca.clone();
        async move {
            let request = format!(
                "GET {target} HTTP/1.1\r\nhost: site.example.test\r\nconnection: close\r\n\r\n"
            );
            raw_to(addr, &ca, "site.example.test", &request).await.0
        }
    };
    within(
        std::time::Duration::from_secs(10),
        "both Ingresses answer",
        || async { get1("/public/page".into()).await == 200 && get1("/other".into()).await == 403 },
    )
    .await;
    lock(&public).clear();

    for path in attack_paths() {
        let s1 = get1(path.clone()).await;
        assert!(matches!(s1, 400 | 403), "HTTP/1.1 {path}: {s1}");
        if let Ok((s2, _)) = get2_to(addr, &ca, "site.example.test", &path, &[]).await {
            assert!(matches!(s2, 400 | 403), "HTTP/2 {path}: {s2}");
        }
    }
    assert_eq!(get1("/public/a/../b".into()).await, 200);
    let seen = lock(&public).clone();
    assert!(
        seen.iter().any(|s| s.target == "/public/b"),
        "the canonical path is what the upstream sees: {seen:?}"
    );
    for s in &seen {
        assert!(
            (s.target == "/public" || s.target.starts_with("/public/")) && !s.target.contains(".."),
            "the public upstream saw {}",
            s.target
        );
    }
    assert!(
        lock(&private).is_empty(),
        "the protected upstream saw an anonymous request: {:?}",
        lock(&private)
    );
}

#[tokio::test]
async fn lenient_routes_keep_encoded_slashes_but_not_a_way_out() {
    let env = start("").await;
    let (s, _) = get1(&env, "rmq.example.test", "/api/vhosts/%2f/queues").await;
    assert_eq!(s, 200);
    assert!(
        lock(&env.public)
            .iter()
            .any(|s| s.target == "/api/vhosts/%2F/queues"),
        "{:?}",
        lock(&env.public)
    );
    // An encoded slash that an upstream would read as a way into /admin is refused.
    for path in ["/api/%2F..%2Fadmin", "/api/..%2Fadmin", "/api;x/../admin"] {
        let (s, _) = get1(&env, "rmq.example.test", path).await;
        assert!(matches!(s, 400 | 403), "{path}: {s}");
    }
    assert!(lock(&env.private).is_empty());
}

#[tokio::test]
async fn the_routed_host_is_the_forwarded_host() {
    let env = start("").await;
    // Absolute-form: the target's authority is the host (RFC 9112 §3.2.2), whatever
    // `Host` says; and that authority is what the upstream sees.
    let (s, _) = raw(
        &env,
        "site.example.test",
        "GET https://site.example.test/public/x HTTP/1.1\r\nhost: other.example.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(s, 200);
    let seen = lock(&env.public).last().cloned().unwrap();
    assert_eq!(seen.headers["host"], "site.example.test");
    // HTTP/2: a host header that differs from :authority is refused.
    let (s, _) = get2(
        &env,
        "site.example.test",
        "/public/x",
        &[("host", "admin.example.test")],
    )
    .await
    .unwrap();
    assert_eq!(s, 400);
    // Two Host headers: refused.
    let (s, _) = raw(
        &env,
        "site.example.test",
        "GET /public/x HTTP/1.1\r\nhost: site.example.test\r\nhost: admin.example.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(s, 400);
    // A host the connection's certificate does not serve: 421 (another certificate is
    // the one for it); one the same certificate serves is fine (HTTP/2 coalescing).
    let (s, _) = raw(
        &env,
        "site.example.test",
        "GET /x HTTP/1.1\r\nhost: ws.example.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(s, 421);
    let (s, _) = raw(
        &env,
        "ws.example.test",
        "GET /x HTTP/1.1\r\nhost: hostile.example.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(s, 200);
    // Case and a trailing dot are the same host.
    let (s, _) = get1(&env, "SITE.example.test.", "/public/y").await;
    assert_eq!(s, 200);
    // Two trailing dots (or any empty label) are no host: later phases would drop
    // another dot and see another name.
    for host in [
        "site.example.test..",
        "site..example.test",
        ".site.example.test",
    ] {
        let (s, _) = raw(
            &env,
            "site.example.test",
            &format!("GET /public/y HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(s, 400, "Host: {host}");
    }
}

#[tokio::test]
async fn clients_cannot_send_identity_or_forwarding_headers() {
    let env = start("").await;
    let forged = "x-email: ceo@example.com\r\nx_email: ceo@example.com\r\n\
                  x_forwarded_email: ceo@example.com\r\nx-forwarded-user: ceo\r\n\
                  x-auth-request-email: ceo@example.com\r\nx-auth-request-groups: admin\r\n\
                  x_portcullis_claim_groups: admin\r\nx-pomerium-claim-email: ceo@example.com\r\n\
                  forwarded: for=10.0.0.1;host=admin\r\nx-real-ip: 10.0.0.1\r\n\
                  x-forwarded-port: 1\r\nx-forwarded-prefix: /admin\r\n\
                  x-original-url: /admin\r\nx-rewrite-url: /admin\r\nx-forwarded-for: 203.0.113.7\r\n";
    let (s, _) = raw(
        &env,
        "site.example.test",
        &format!(
            "GET /public/x HTTP/1.1\r\nhost: site.example.test\r\n{forged}connection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(s, 200);
    // The same through an upgrade on a WebSocket route.
    let _ = raw(
        &env,
        "ws.example.test",
        &format!(
            "GET /chat HTTP/1.1\r\nhost: ws.example.test\r\n{forged}connection: upgrade\r\n\
             upgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
    .await;
    let seen = lock(&env.public).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        let h = &s.headers;
        for name in [
            "x-email",
            "x_email",
            "x_forwarded_email",
            "x-forwarded-user",
            "x-auth-request-email",
            "x-auth-request-groups",
            "x_portcullis_claim_groups",
            "x-pomerium-claim-email",
            "forwarded",
            "x-forwarded-prefix",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(h.get(name).is_none(), "{name} reached the upstream: {h:?}");
        }
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}

#[tokio::test]
async fn framing_is_decided_by_the_proxy_not_by_either_side() {
    let env = start("").await;
    // h2c (and any non-WebSocket upgrade) on a WebSocket route: a plain request.
    let (s, text) = raw(
        &env,
        "ws.example.test",
        "GET /x HTTP/1.1\r\nhost: ws.example.test\r\nconnection: upgrade, http2-settings\r\n\
         upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    assert_eq!(s, 200, "{text}");
    let seen = lock(&env.public).last().cloned().unwrap();
    for name in ["upgrade", "http2-settings"] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name}: {:?}",
            seen.headers
        );
    }
    // An upstream's 101 to a request that asked for no upgrade: 502, no tunnel.
    let (s, text) = get1(&env, "hostile.example.test", "/switch").await;
    assert_eq!(s, 502, "{text}");
    assert!(!text.contains("tunnelled bytes"), "{text}");
    let h2 = get2(&env, "hostile.example.test", "/switch", &[])
        .await
        .unwrap();
    assert_eq!(h2.0, 502);
    // Transfer-Encoding with a Content-Length that lies: the whole body, no length.
    let (s, text) = get1(&env, "hostile.example.test", "/chunked").await;
    assert_eq!(s, 200);
    assert!(text.contains("a full body"), "{text}");
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(!head.contains("content-length: 3"), "{head}");
    let h2 = get2(&env, "hostile.example.test", "/chunked", &[])
        .await
        .unwrap();
    assert_eq!(h2, (200, "a full body".to_string()));
    // CONNECT: 405.
    let (s, _) = raw(
        &env,
        "site.example.test",
        "CONNECT site.example.test:443 HTTP/1.1\r\nhost: site.example.test:443\r\n\r\n",
    )
    .await;
    assert_eq!(s, 405);
    assert!(lock(&env.hostile).iter().all(|s| s.target != "/"));
}

/// cert-manager's HTTP-01 solver: the challenge path of a route written for it is
/// served over plain HTTP, publicly; every other plain-HTTP request still redirects.
#[tokio::test]
async fn acme_challenges_answer_on_the_http_listener() {
    let env = start_with_http("", Some(free_port())).await;
    let http = env.http.unwrap();
    let plain = |path: &'static str| common::plain_get(http, "site.example.test", path);
    let r = plain("/.well-known/acme-challenge/tok-123").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "ok");
    assert!(
        lock(&env.public)
            .iter()
            .any(|s| s.target == "/.well-known/acme-challenge/tok-123")
    );
    for path in ["/.well-known/acme-challenge/other", "/public/x", "/"] {
        let r = plain(path).await;
        assert_eq!(r.status, 301, "{path}: {r:?}");
        assert!(
            r.headers["location"]
                .to_str()
                .unwrap()
                .starts_with("https://site.example.test")
        );
    }
    // Over HTTPS the route's own policy applies (none here: it denies).
    let (s, _) = get1(
        &env,
        "site.example.test",
        "/.well-known/acme-challenge/tok-123",
    )
    .await;
    assert_eq!(s, 403);
}
