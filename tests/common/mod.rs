//! Test fixtures on loopback: echo upstreams, a WebSocket echo upstream, a test CA with
//! a server certificate, and an HTTPS client that connects to 127.0.0.1 while sending
//! any SNI and `Host` it is told to.
#![allow(dead_code)]
pub mod cluster;
pub mod okta_api;
pub mod redis_servers;
pub mod signin_env;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portcullis::api::proxy::tls::PemPair;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A CA and a server certificate it signed for `names`.
pub struct TestPki {
    pub ca_der: CertificateDer<'static>,
    pub server: PemPair,
    issuer: Arc<rcgen::Issuer<'static, rcgen::KeyPair>>,
}

/// Another server certificate for `names`, signed by the same test CA.
pub fn issue(pki: &TestPki, names: &[&str]) -> PemPair {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    PemPair {
        source_name: names.join(","),
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    }
}

pub fn pki(names: &[&str]) -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portcullis test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    TestPki {
        ca_der: ca.der().clone(),
        server: PemPair {
            source_name: "test certificate".into(),
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        },
        issuer: Arc::new(issuer),
    }
}

/// Starts an upstream that answers every request with a JSON echo of it, tagged with
/// `name` (`portcullis dev`'s demo app).
pub async fn echo_upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(portcullis::api::dev::serve_echo(listener, name));
    addr
}

/// Starts a WebSocket server that echoes every text message back prefixed with `echo: `.
pub async fn websocket_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                        let reply = format!("echo: {}", t.as_str());
                        if ws.send(reply.into()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Spawns a helper server that prints one JSON "ready" line on stdout when it listens
/// (the test provider, the Okta API emulator); returns it with that line. Its stdin is
/// a pipe, so servers told to exit on stdin EOF die with the test process. A helper
/// that has not said it is ready within 30 s is killed and started once more (a hung
/// start must fail the test, not the CI run's time limit).
pub fn spawn_ready(cmd: &mut std::process::Command) -> (std::process::Child, serde_json::Value) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    const READY_WITHIN: Duration = Duration::from_secs(30);
    for attempt in 1..=2 {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(READY_WITHIN) {
            Ok(line) => {
                let ready = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                return (child, ready);
            }
            Err(_) => {
                eprintln!(
                    "{cmd:?} did not say it was ready within {READY_WITHIN:?} (attempt {attempt}); killed"
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    panic!("{cmd:?} never said it was ready")
}

/// A plain-HTTP GET over a fresh connection (admin port, redirect listener).
pub async fn plain_get(addr: SocketAddr, host: &str, path: &str) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Empty<Bytes>>(TokioIo::new(
            stream,
        ))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(Default::default())
        .unwrap();
    let (parts, body) = sender.send_request(req).await.unwrap().into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A loopback address that refuses connections: a socket bound and never listening,
/// kept for the rest of the process so nothing else takes the port meanwhile.
pub async fn dead_address() -> SocketAddr {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = s.local_addr().unwrap();
    std::mem::forget(s);
    addr
}

/// TLS client config trusting only `ca`.
pub fn client_tls(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Opens a TLS connection to `addr` presenting `sni`.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(config)
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap()
}

/// One keep-alive HTTP/1.1 connection over TLS.
pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub host: String,
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl H1 {
    pub async fn connect(addr: SocketAddr, host: &str, config: Arc<rustls::ClientConfig>) -> H1 {
        let tls = tls_connect(addr, host, config).await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        H1 {
            sender,
            host: host.to_string(),
        }
    }

    /// [`H1::connect`], or `None` when the socket or the handshake is not there (yet).
    pub async fn try_connect(
        addr: SocketAddr,
        host: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Option<H1> {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let tls = TlsConnector::from(config)
            .connect(ServerName::try_from(host.to_string()).ok()?, tcp)
            .await
            .ok()?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(H1 {
            sender,
            host: host.to_string(),
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer, hyper::Error> {
        self.send(Request::get(path).body(Full::new(Bytes::new())).unwrap())
            .await
    }

    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Answer, hyper::Error> {
        if !req.headers().contains_key("host") {
            req.headers_mut().insert("host", self.host.parse().unwrap());
        }
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// Kills the child on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on, never handed out twice in one test process.
/// Drawn from 12000–19999: below the kernel's ephemeral range (32768 and up), so no
/// `bind(:0)` and no outgoing connection takes it between this check and the bind of
/// whoever it is for (a port from `bind(:0)` could be), and outside e2e/cluster's
/// 20000–31999.
pub fn free_port() -> u16 {
    free_port_where(|_| true)
}

/// [`free_port`], for which `also` holds too (e.g. a second port it implies is free).
pub fn free_port_where(also: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12000;
    const COUNT: u32 = 8000;
    // Each call takes the next candidate of a walk that starts at a point of its own
    // per process (test binaries run one after another, but a killed one's children
    // may linger) and visits every port of the range once (7919 is prime to 8000).
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = std::process::id().wrapping_mul(2_654_435_761) % COUNT;
    let _ = NEXT.compare_exchange(u32::MAX, 0, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..COUNT {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + i.wrapping_mul(7919)) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && also(port) {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}-{}", FIRST + COUNT - 1)
}

/// Waits (up to 20 s) until the admin listener on `admin` answers `/readyz` with 200.
pub async fn wait_ready(admin: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Plain HTTP by hand: no client (and no TLS provider) needed for one GET.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", admin)).await {
            let _ = s
                .write_all(b"GET /readyz HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
                .await;
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf).await;
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "portcullis did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
