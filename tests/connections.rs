//! Client connections through the real server functions on loopback: deadlines for
//! silent and idle clients, the per-connection limit on requests in flight (an HTTP/2
//! client holding flow control at zero), the per-worker connection limit, oversized
//! headers, HTTP/2 chosen by ALPN, and the client address behind a load balancer (PROXY
//! protocol v1/v2, `xff_num_trusted_hops`).

mod common;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use portcullis::api::app::{self, Running, Settings};
use portcullis::api::policy::{Policy, Shorthands};
use portcullis::api::proxy::Limits;
use portcullis::api::routes::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "app.example.test";

fn route(id: &str, host: &str, policy: Arc<Policy>, to: SocketAddr) -> RouteSpec {
    RouteSpec {
        id: id.into(),
        host: HostMatch::parse(host).unwrap(),
        port: None,
        path: PathMatch::Any,
        backend: BackendSpec {
            endpoints: vec![EndpointSpec {
                scheme: UpstreamScheme::Http,
                host: to.ip().to_string(),
                port: to.port(),
                reach: Reach::Operator,
            }],
            balance: Balance::RoundRobin,
        },
        policy,
        options: RouteOptions::default(),
    }
}

fn public() -> Arc<Policy> {
    Arc::new(Policy::from_shorthands(&Shorthands {
        allow_public_unauthenticated_access: true,
        ..Shorthands::default()
    }))
}

struct Env {
    running: Running,
    pki: TestPki,
}

impl Env {
    fn tls(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        client_tls(&self.pki.ca_der, alpn)
    }

    fn metric(&self, line_start: &str) -> u64 {
        let text = self.running.metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix(line_start)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

/// One worker serving `app.example.test` (public, to `upstream`) and
/// `office.example.test` (only from 203.0.113.0/24), with `limits`.
async fn start(limits: Limits, upstream: SocketAddr) -> Env {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pki = pki(&["*.example.test"]);
    let office =
        Arc::new(Policy::from_yaml("allow:\n  and:\n    - source_ip: 203.0.113.0/24\n").unwrap());
    let settings = Settings {
        address: "127.0.0.1:0".parse().unwrap(),
        http_redirect_address: Some("127.0.0.1:0".parse().unwrap()),
        metrics_address: None,
        certificates: vec![pki.server.clone()],
        limits: Limits {
            drain_timeout: Duration::from_secs(2),
            ..limits
        },
        redirect_https_port: None,
        auth: None,
        directory: None,
        ready_on_start: true,
        upstream_policy: Default::default(),
        gateway_ports: None,
        workers: 1,
        logs: portcullis::api::proxy::LogFields::default(),
        claim_headers: Vec::new(),
    };
    let model = Model {
        routes: vec![
            route("app", HOST, public(), upstream),
            route("office", "office.example.test", office, upstream),
        ],
        ..Model::default()
    };
    let running = app::start(settings, &model).await.unwrap();
    Env { running, pki }
}

/// Waits until the peer closes `s` (EOF or reset); the time it took.
async fn time_to_close<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

fn assert_between(d: Duration, lo: Duration, hi: Duration, what: &str) {
    println!("{what}: closed after {d:?}");
    assert!(
        d >= lo && d <= hi,
        "{what}: closed after {d:?}, want {lo:?}..{hi:?}"
    );
}

#[tokio::test]
async fn silent_clients_are_closed_within_the_header_read_timeout() {
    let upstream = echo_upstream("app").await;
    let env = start(
        Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        upstream,
    )
    .await;
    let addr = env.running.https_addr;
    let (lo, hi) = (Duration::from_millis(900), Duration::from_millis(2500));
    // HTTP/1.1 by ALPN, no ALPN at all, and HTTP/2 by ALPN without its preface: each
    // completes the handshake and sends nothing.
    for alpn in [&[&b"http/1.1"[..]][..], &[], &[b"h2"]] {
        let mut s = tls_connect(addr, HOST, env.tls(alpn)).await;
        let took = time_to_close(&mut s, Duration::from_secs(10)).await;
        let names: Vec<_> = alpn.iter().map(|p| String::from_utf8_lossy(p)).collect();
        assert_between(took, lo, hi, &format!("silent client with ALPN {names:?}"));
    }
    // HTTP/2 with its preface and SETTINGS, but never a request.
    let s = tls_connect(addr, HOST, env.tls(&[b"h2"])).await;
    let (_client, conn) = h2::client::handshake(s).await.unwrap();
    let t = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("an HTTP/2 connection with no request is closed");
    assert_between(t.elapsed(), lo, hi, "HTTP/2 client sending no request");
    // A silent plain-HTTP client of the redirect listener, too.
    let mut plain = TcpStream::connect(env.running.http_addr.unwrap())
        .await
        .unwrap();
    let took = time_to_close(&mut plain, Duration::from_secs(10)).await;
    assert_between(took, lo, hi, "silent client of the redirect listener");

    let timeouts = env.metric("portcullis_connection_timeouts_total{phase=\"first_request\"}");
    assert!(timeouts >= 4, "first_request timeouts counted: {timeouts}");
    env.running.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_timeout_idle() {
    let upstream = echo_upstream("app").await;
    let env = start(
        Limits {
            header_read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        upstream,
    )
    .await;
    let addr = env.running.https_addr;
    // HTTP/1.1: one request, then nothing.
    let mut s = tls_connect(addr, HOST, env.tls(&[b"http/1.1"])).await;
    s.write_all(b"GET /one HTTP/1.1\r\nhost: app.example.test\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let took = time_to_close(&mut s, Duration::from_secs(10)).await;
    assert_between(
        took,
        Duration::from_millis(900),
        Duration::from_millis(2500),
        "idle HTTP/1.1 connection",
    );

    // HTTP/2: requests keep it open past the idle timeout; then it idles and closes.
    let s = tls_connect(addr, HOST, env.tls(&[b"h2"])).await;
    let (client, conn) = h2::client::handshake(s).await.unwrap();
    let conn = tokio::spawn(conn);
    let started = Instant::now();
    for i in 0..6 {
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::get(format!("https://{HOST}/h2/{i}"))
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        let mut body = resp.await.unwrap().into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let busy = started.elapsed();
    assert!(busy > Duration::from_millis(1500), "{busy:?}");
    assert!(!conn.is_finished(), "closed while requests kept coming");
    let idle_from = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("an idle HTTP/2 connection is closed");
    assert_between(
        idle_from.elapsed(),
        Duration::from_millis(900),
        Duration::from_millis(2500),
        "idle HTTP/2 connection",
    );
    assert!(env.metric("portcullis_connection_timeouts_total{phase=\"idle\"}") >= 2);
    env.running.shutdown().await;
}

/// An HTTP/1.1 upstream whose responses never end (a body that keeps coming while the
/// client reads it). Counts the requests it is serving now and the most at once.
async fn endless_upstream() -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let now = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let (n, m) = (now.clone(), most.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (n, m) = (n.clone(), m.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let current = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(current, Ordering::SeqCst);
                    let body = Endless {
                        _open: Counted(n.clone()),
                    };
                    async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, now, most)
}

/// Decrements its counter when dropped.
struct Counted(Arc<AtomicU64>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 16 KiB chunks forever.
struct Endless {
    _open: Counted,
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &[b'x'; 16384],
        )))))
    }
}

#[tokio::test]
async fn an_http2_client_holding_flow_control_at_zero_holds_at_most_the_configured_upstream_requests()
 {
    const STREAMS: usize = 40;
    const LIMIT: usize = 8;
    let (upstream, now, most) = endless_upstream().await;
    let env = start(
        Limits {
            max_concurrent_requests_per_connection: LIMIT,
            http2_max_concurrent_streams: 100,
            ..Limits::default()
        },
        upstream,
    )
    .await;
    let s = tls_connect(env.running.https_addr, HOST, env.tls(&[b"h2"])).await;
    // A receive window of zero: the proxy can send response headers, never a byte of
    // a body.
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(s)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut responses = Vec::new();
    for i in 0..STREAMS {
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::get(format!("https://{HOST}/stream/{i}"))
            .body(())
            .unwrap();
        responses.push(c.send_request(req, true).unwrap().0);
    }
    // Give every stream time to reach the proxy and, if it could, the upstream.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (open, peak) = (now.load(Ordering::SeqCst), most.load(Ordering::SeqCst));
    println!("{STREAMS} streams held at window 0: {open} upstream requests open, peak {peak}");
    assert_eq!(peak, LIMIT as u64, "upstream requests at once");
    assert_eq!(open, LIMIT as u64);
    let waits =
        env.metric("portcullis_connection_limit_hits_total{limit=\"requests_per_connection\"}");
    assert!(
        waits >= (STREAMS - LIMIT) as u64,
        "limit hits counted: {waits}"
    );

    // The client goes away: every upstream request ends with it.
    drop(responses);
    drop(client);
    conn.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    while now.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "upstream requests still open after the client left: {}",
            now.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.running.shutdown().await;
}

#[tokio::test]
async fn a_full_worker_accepts_no_new_connection_until_one_closes() {
    let upstream = echo_upstream("app").await;
    let env = start(
        Limits {
            max_connections_per_worker: 3,
            ..Limits::default()
        },
        upstream,
    )
    .await;
    let addr = env.running.https_addr;
    let tls = env.tls(&[b"http/1.1"]);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = H1::connect(addr, HOST, tls.clone()).await;
        assert_eq!(c.get("/").await.unwrap().status, 200);
        held.push(c);
    }
    // The kernel completes the TCP handshake (backlog); TLS waits for a free slot.
    let fourth = tokio::spawn({
        let tls = tls.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(tls)
                .connect(ServerName::try_from(HOST).unwrap(), tcp)
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!fourth.is_finished(), "a fourth connection was served");
    let hits =
        env.metric("portcullis_connection_limit_hits_total{limit=\"connections_per_worker\"}");
    assert!(hits >= 1, "limit hit counted: {hits}");
    drop(held.pop());
    let s = tokio::time::timeout(Duration::from_secs(5), fourth)
        .await
        .expect("a freed slot takes the waiting connection")
        .unwrap();
    drop(s);
    env.running.shutdown().await;
}

#[tokio::test]
async fn an_oversized_request_header_gets_431() {
    let upstream = echo_upstream("app").await;
    let env = start(Limits::default(), upstream).await;
    let addr = env.running.https_addr;
    let big = "a".repeat(200 * 1024);

    // HTTP/1.1: the answer arrives even though the client is still writing.
    let s = tls_connect(addr, HOST, env.tls(&[b"http/1.1"])).await;
    let (mut rd, mut wr) = tokio::io::split(s);
    let head = format!("GET / HTTP/1.1\r\nhost: {HOST}\r\nx-big: {big}\r\n\r\n");
    let writer = tokio::spawn(async move {
        // Past the limit first, the rest once the answer is out: a client still
        // writing when the proxy answers gets the answer all the same.
        let (first, rest) = head.as_bytes().split_at(80 * 1024);
        let _ = wr.write_all(first).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = wr.write_all(rest).await;
        wr
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "HTTP/1.1 answer: {text:?}"
    );
    let _ = writer.await;

    // HTTP/2: one 200 KB header, and 100 of 2 KB, each get a 431 on their stream and
    // the connection goes on.
    let s = tls_connect(addr, HOST, env.tls(&[b"h2"])).await;
    let (client, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    let one = http::Request::get(format!("https://{HOST}/")).header("x-big", &big);
    let mut many = http::Request::get(format!("https://{HOST}/"));
    for i in 0..100 {
        many = many.header(format!("x-big-{i}"), "b".repeat(2048));
    }
    for (what, req) in [("one 200 KB header", one), ("100 headers of 2 KB", many)] {
        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c.send_request(req.body(()).unwrap(), true).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .expect("an answer")
            .unwrap_or_else(|e| panic!("{what}: a response, not {e:?}"));
        assert_eq!(resp.status(), 431, "{what}");
    }
    let mut c = client.ready().await.unwrap();
    let req = http::Request::get(format!("https://{HOST}/after"))
        .body(())
        .unwrap();
    let (resp, _) = c.send_request(req, true).unwrap();
    assert_eq!(
        resp.await.unwrap().status(),
        200,
        "the connection still serves"
    );
    env.running.shutdown().await;
}

#[tokio::test]
async fn h2_by_alpn_refuses_an_http1_request() {
    let upstream = echo_upstream("app").await;
    let env = start(Limits::default(), upstream).await;
    let mut s = tls_connect(env.running.https_addr, HOST, env.tls(&[b"h2"])).await;
    s.write_all(b"GET / HTTP/1.1\r\nhost: app.example.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed");
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1"),
        "answered as HTTP/1.1: {:?}",
        String::from_utf8_lossy(&got)
    );
    env.running.shutdown().await;
}

// --- client addresses --------------------------------------------------------------------

fn proxy_v1(src: &str, port: u16) -> Vec<u8> {
    let family = if src.contains(':') { "TCP6" } else { "TCP4" };
    let dst = if src.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("PROXY {family} {src} {dst} {port} 443\r\n").into_bytes()
}

fn proxy_v2(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 7]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    // A TLV (AWS NLB's VPC endpoint ID type), skipped.
    h.extend_from_slice(&[0xea, 0, 4, b'v', b'p', b'c', b'e']);
    h
}

/// TCP to `addr`, `prefix` first, then TLS and one HTTP/1.1 request to `host`.
async fn get_after(
    addr: SocketAddr,
    prefix: &[u8],
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    xff: Option<&str>,
) -> Result<Answer, String> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(prefix).await.unwrap();
    let s = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from(host.to_string()).unwrap(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    request(s, host, xff).await
}

async fn request<S>(s: S, host: &str, xff: Option<&str>) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Empty<Bytes>>(
            hyper_util::rt::TokioIo::new(s),
        )
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::get("/who").header("host", host);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = sender
        .send_request(req.body(Default::default()).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[tokio::test]
async fn proxy_protocol_gives_the_client_address_and_is_required() {
    let upstream = echo_upstream("app").await;
    let env = start(
        Limits {
            proxy_protocol: true,
            ..Limits::default()
        },
        upstream,
    )
    .await;
    let addr = env.running.https_addr;
    let tls = env.tls(&[b"http/1.1"]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (proxy_v1("203.0.113.7", 50000), "203.0.113.7"),
        (proxy_v1("2001:db8::7", 50000), "2001:db8::7"),
        (proxy_v1("::ffff:203.0.113.8", 1), "203.0.113.8"),
        (proxy_v2([203, 0, 113, 9], 4242), "203.0.113.9"),
        // A health check of the load balancer's own: the peer is the client.
        (
            b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec(),
            "127.0.0.1",
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
    ];
    for (prefix, want) in &cases {
        let ans = get_after(addr, prefix, tls.clone(), HOST, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(prefix)));
        assert_eq!(ans.status, 200, "{}", ans.body);
        assert_eq!(
            ans.json()["headers"]["x-forwarded-for"],
            *want,
            "{}",
            String::from_utf8_lossy(prefix)
        );
    }
    // A source_ip policy sees the PROXY source, not the load balancer.
    let inside = get_after(
        addr,
        &proxy_v1("203.0.113.7", 1),
        tls.clone(),
        "office.example.test",
        None,
    )
    .await
    .unwrap();
    assert_eq!(inside.status, 200, "{}", inside.body);
    let outside = get_after(
        addr,
        &proxy_v1("198.51.100.7", 1),
        tls.clone(),
        "office.example.test",
        None,
    )
    .await
    .unwrap();
    assert_eq!(outside.status, 403);

    // Without the header, or with a broken one, the connection is closed.
    let refused: [&[u8]; 4] = [
        b"",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 443\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 1 443\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04",
    ];
    for prefix in refused {
        let got = get_after(addr, prefix, tls.clone(), HOST, None).await;
        assert!(got.is_err(), "{}: {got:?}", String::from_utf8_lossy(prefix));
    }
    assert!(env.metric("portcullis_proxy_protocol_refused_total") >= 4);

    // The HTTP redirect listener expects it too.
    let http = env.running.http_addr.unwrap();
    let mut tcp = TcpStream::connect(http).await.unwrap();
    tcp.write_all(&proxy_v1("203.0.113.7", 1)).await.unwrap();
    let ans = request(tcp, HOST, None).await.unwrap();
    assert_eq!(ans.status, 301);
    let https_port = addr.port();
    assert_eq!(
        ans.headers["location"],
        format!("https://{HOST}:{https_port}/who")
    );
    let tcp = TcpStream::connect(http).await.unwrap();
    assert!(
        request(tcp, HOST, None).await.is_err(),
        "redirect listener without PROXY"
    );
    env.running.shutdown().await;
}

#[tokio::test]
async fn trusted_hops_pick_the_client_from_x_forwarded_for() {
    let upstream = echo_upstream("app").await;
    let env = start(
        Limits {
            xff_num_trusted_hops: 1,
            ..Limits::default()
        },
        upstream,
    )
    .await;
    let addr = env.running.https_addr;
    let tls = env.tls(&[b"http/1.1"]);
    // (X-Forwarded-For sent, host, status): office.example.test allows 203.0.113.0/24.
    let office = "office.example.test";
    let cases = [
        (Some("198.51.100.1, 203.0.113.7"), office, 200),
        (Some("198.51.100.1, 203.0.113.7:4711"), office, 200),
        // A client writing its own entry on the left gains nothing.
        (Some("203.0.113.7, 198.51.100.1"), office, 403),
        // No header, or no address in it: the peer (127.0.0.1).
        (None, office, 403),
        (Some("not-an-address"), office, 403),
        (None, HOST, 200),
        (Some("2001:db8::1"), HOST, 200),
    ];
    for (xff, host, status) in cases {
        let ans = get_after(addr, b"", tls.clone(), host, xff).await.unwrap();
        assert_eq!(ans.status, status, "{xff:?} to {host}: {}", ans.body);
        if status == 200 {
            // Forwarded as Envoy does: what came, then the connection's client.
            let forwarded = match xff {
                Some(x) => format!("{x}, 127.0.0.1"),
                None => "127.0.0.1".into(),
            };
            assert_eq!(
                ans.json()["headers"]["x-forwarded-for"],
                forwarded.as_str(),
                "{xff:?}"
            );
        }
    }
    env.running.shutdown().await;
}
