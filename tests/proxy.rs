//! The data plane end to end on loopback: HTTPS by SNI, forwarding, balancing,
//! WebSockets, redirects, header hygiene, failures, the admin endpoints, and table
//! swaps under load.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue};
use portcullis::api::app::{self, Running, Settings};
use portcullis::api::policy::{Policy, Shorthands};
use portcullis::api::proxy::Limits;
use portcullis::api::routes::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn public() -> Arc<Policy> {
    Arc::new(Policy::from_shorthands(&Shorthands {
        allow_public_unauthenticated_access: true,
        ..Shorthands::default()
    }))
}

fn endpoint(addr: SocketAddr) -> EndpointSpec {
    EndpointSpec {
        scheme: UpstreamScheme::Http,
        host: addr.ip().to_string(),
        port: addr.port(),
        reach: Reach::Operator,
    }
}

fn route(id: &str, host: &str, path: PathMatch, to: &[SocketAddr]) -> RouteSpec {
    RouteSpec {
        id: id.into(),
        host: HostMatch::parse(host).unwrap(),
        port: None,
        path,
        backend: BackendSpec {
            endpoints: to.iter().copied().map(endpoint).collect(),
            balance: Balance::RoundRobin,
        },
        policy: public(),
        options: RouteOptions::default(),
    }
}

struct Fixture {
    running: Running,
    tls: Arc<rustls::ClientConfig>,
    ca: rustls::pki_types::CertificateDer<'static>,
    a: SocketAddr,
    b: SocketAddr,
    ws: SocketAddr,
}

impl Fixture {
    fn tls_ca(&self) -> rustls::pki_types::CertificateDer<'static> {
        self.ca.clone()
    }

    async fn h1(&self, host: &str) -> H1 {
        H1::connect(self.running.https_addr, host, self.tls.clone()).await
    }
}

fn base_model(a: SocketAddr, b: SocketAddr, ws: SocketAddr) -> Model {
    let mut shaped = route(
        "shaped",
        "shaped.example.test",
        PathMatch::StrPrefix("/api".into()),
        &[a],
    );
    shaped.options.prefix_rewrite = Some("/v2".into());
    shaped.options.upstream_host = UpstreamHost::Endpoint;
    shaped.options.set_request_headers = vec![(
        HeaderName::from_static("x-team"),
        HeaderValue::from_static("ops"),
    )];
    shaped.options.remove_request_headers = vec![HeaderName::from_static("x-drop-me")];
    shaped.options.set_response_headers = vec![(
        HeaderName::from_static("strict-transport-security"),
        HeaderValue::from_static("max-age=31536000"),
    )];
    let mut websocket = route("ws", "ws.example.test", PathMatch::Any, &[ws]);
    websocket.options.allow_websockets = true;
    let mut quiet_ws = route("ws-idle", "ws-idle.example.test", PathMatch::Any, &[ws]);
    quiet_ws.options.allow_websockets = true;
    quiet_ws.options.idle_timeout = Duration::from_secs(1);
    let mut private = route("private", "private.example.test", PathMatch::Any, &[a]);
    private.policy =
        Arc::new(Policy::from_yaml("allow:\n  and:\n    - groups: {has: admin}\n").unwrap());
    let mut broken = route("broken", "broken.example.test", PathMatch::Any, &[a]);
    broken.policy = Arc::new(Policy::deny_all("rules[0]: unknown criterion `grups`"));
    Model {
        routes: vec![
            route("a", "a.example.test", PathMatch::Any, &[a]),
            route("lb", "lb.example.test", PathMatch::Any, &[a, b]),
            route("wild", "*.wild.example.test", PathMatch::Any, &[b]),
            shaped,
            websocket,
            quiet_ws,
            private,
            broken,
        ],
        ..Model::default()
    }
}

async fn fixture() -> Fixture {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pki = pki(&[
        "*.example.test",
        "*.wild.example.test",
        "*.y.wild.example.test",
    ]);
    let a = echo_upstream("a").await;
    let b = echo_upstream("b").await;
    let ws = websocket_upstream().await;
    let settings = Settings {
        address: "127.0.0.1:0".parse().unwrap(),
        http_redirect_address: Some("127.0.0.1:0".parse().unwrap()),
        metrics_address: Some("127.0.0.1:0".parse().unwrap()),
        certificates: vec![pki.server.clone()],
        limits: Limits {
            drain_timeout: Duration::from_secs(5),
            ..Limits::default()
        },
        redirect_https_port: None,
        auth: None,
        directory: None,
        ready_on_start: true,
        upstream_policy: Default::default(),
        gateway_ports: None,
        workers: 2,
        logs: portcullis::api::proxy::LogFields::default(),
        claim_headers: Vec::new(),
    };
    let running = app::start(settings, &base_model(a, b, ws)).await.unwrap();
    Fixture {
        running,
        tls: client_tls(&pki.ca_der, &[b"http/1.1"]),
        ca: pki.ca_der.clone(),
        a,
        b,
        ws,
    }
}

#[tokio::test]
async fn forwards_by_host_with_clean_headers() {
    let f = fixture().await;
    let mut c = f.h1("a.example.test").await;
    let req = http::Request::get("/hello?x=1")
        .header("x-forwarded-email", "ceo@example.com")
        .header("x-portcullis-jwt-assertion", "forged")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("x-request-id", "client-id-1")
        .body(Default::default())
        .unwrap();
    let ans = c.send(req).await.unwrap();
    assert_eq!(ans.status, 200, "{}", ans.body);
    let echo = ans.json();
    assert_eq!(echo["upstream"], "a");
    assert_eq!(echo["path"], "/hello?x=1");
    let h = &echo["headers"];
    assert_eq!(
        h["host"], "a.example.test",
        "Ingress default: the client's Host"
    );
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "a.example.test");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-request-id"], "client-id-1");
    for spoofed in ["x-forwarded-email", "x-portcullis-jwt-assertion", "x-hop"] {
        assert!(h.get(spoofed).is_none(), "{spoofed} reached the upstream");
    }
    // Hop-by-hop headers from the upstream do not reach the client.
    assert!(ans.headers.get("keep-alive").is_none());

    // Same connection, different path; unknown hosts are 404 with a request ID.
    assert_eq!(c.get("/again").await.unwrap().status, 200);
    let mut other = f.h1("nope.example.test").await;
    let ans = other.get("/").await.unwrap();
    assert_eq!(ans.status, 404);
    assert!(ans.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn wildcard_hosts_and_sni() {
    let f = fixture().await;
    let mut c = f.h1("x.wild.example.test").await;
    assert_eq!(c.get("/").await.unwrap().json()["upstream"], "b");
    let mut c = f.h1("x.y.wild.example.test").await;
    assert_eq!(c.get("/").await.unwrap().status, 404);
}

#[tokio::test]
async fn balances_round_robin_over_a_list() {
    let f = fixture().await;
    let mut c = f.h1("lb.example.test").await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(
            c.get("/").await.unwrap().json()["upstream"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 3, "{seen:?}");
}

#[tokio::test]
async fn shapes_requests_and_responses() {
    let f = fixture().await;
    let mut c = f.h1("shaped.example.test").await;
    let req = http::Request::get("/api/users?page=2")
        .header("x-drop-me", "1")
        .header("x-team", "client-value")
        .body(Default::default())
        .unwrap();
    let ans = c.send(req).await.unwrap();
    assert_eq!(ans.headers["strict-transport-security"], "max-age=31536000");
    let echo = ans.json();
    assert_eq!(echo["path"], "/v2/users?page=2");
    assert_eq!(echo["headers"]["host"], format!("127.0.0.1:{}", f.a.port()));
    assert_eq!(echo["headers"]["x-team"], "ops");
    assert!(echo["headers"].get("x-drop-me").is_none());
    // Outside the prefix: no route for this host.
    assert_eq!(c.get("/other").await.unwrap().status, 404);
}

#[tokio::test]
async fn policies_deny_what_they_do_not_allow() {
    let f = fixture().await;
    // Needs a signed-in admin; nobody is signed in.
    let ans = f.h1("private.example.test").await.get("/").await.unwrap();
    assert_eq!(ans.status, 403, "{}", ans.body);
    // An invalid policy denies everyone and says so.
    let mut c = f.h1("broken.example.test").await;
    let req = http::Request::get("/")
        .header("accept", "application/json")
        .body(Default::default())
        .unwrap();
    let ans = c.send(req).await.unwrap();
    assert_eq!(ans.status, 403);
    assert_eq!(ans.json()["route"], "broken");
}

#[tokio::test]
async fn upgrades_websockets() {
    let f = fixture().await;
    let tls = tls_connect(f.running.https_addr, "ws.example.test", f.tls.clone()).await;
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://ws.example.test/socket", tls)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        ws.send(format!("ping {i}").into()).await.unwrap();
        let msg = ws.next().await.unwrap().unwrap();
        assert_eq!(msg.into_text().unwrap().as_str(), format!("echo: ping {i}"));
    }
    // Without allow_websockets the upgrade is not forwarded.
    let tls = tls_connect(f.running.https_addr, "a.example.test", f.tls.clone()).await;
    assert!(
        tokio_tungstenite::client_async("wss://a.example.test/socket", tls)
            .await
            .is_err()
    );
    let _ = f.ws;
}

/// `idle_timeout` closes a quiet WebSocket, never one in use: messages every 400 ms
/// for 3 s pass a 1 s limit, then a second of silence closes the tunnel.
#[tokio::test]
async fn websockets_close_when_idle_not_when_old() {
    let f = fixture().await;
    let tls = tls_connect(f.running.https_addr, "ws-idle.example.test", f.tls.clone()).await;
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://ws-idle.example.test/s", tls)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let opened = Instant::now();
    let mut i = 0;
    while opened.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ws.send(format!("ping {i}").into()).await.unwrap();
        let msg = ws.next().await.expect("open").expect("a message");
        assert_eq!(msg.into_text().unwrap().as_str(), format!("echo: ping {i}"));
        i += 1;
    }
    let quiet = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("closed within 10 s");
    assert!(
        !matches!(
            end,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
        ),
        "{end:?}"
    );
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    eprintln!(
        "{i} messages over 3 s, then closed {} ms after the last",
        after.as_millis()
    );
    let _ = f.ws;
}

#[tokio::test]
async fn http_listener_redirects_to_https() {
    let f = fixture().await;
    let resp = plain_get(f.running.http_addr.unwrap(), "a.example.test", "/path?q=1").await;
    assert_eq!(resp.status, 301);
    assert_eq!(
        resp.headers["location"],
        format!(
            "https://a.example.test:{}/path?q=1",
            f.running.https_addr.port()
        )
    );
}

#[tokio::test]
async fn dead_endpoints_fail_over_and_get_ejected() {
    let f = fixture().await;
    let dead = dead_address().await;
    let mut model = base_model(f.a, f.b, f.ws);
    model.routes.push(route(
        "half-dead",
        "half.example.test",
        PathMatch::Any,
        &[dead, f.a],
    ));
    model.routes.push(route(
        "all-dead",
        "dead.example.test",
        PathMatch::Any,
        &[dead],
    ));
    f.running.apply(&model);
    let mut c = f.h1("half.example.test").await;
    for _ in 0..20 {
        let ans = c.get("/").await.unwrap();
        assert_eq!(ans.status, 200, "{}", ans.body);
    }
    let ans = f.h1("dead.example.test").await.get("/").await.unwrap();
    assert_eq!(ans.status, 502);
    let debug = admin_get(&f, "/debug/routes").await;
    let routes: serde_json::Value = serde_json::from_str(&debug).unwrap();
    let half = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "half-dead")
        .unwrap();
    assert_eq!(half["endpoints"][0]["ejected"], true, "{half}");
    assert_eq!(half["endpoints"][1]["ejected"], false, "{half}");
}

async fn admin_get(f: &Fixture, path: &str) -> String {
    plain_get(f.running.admin_addr.unwrap(), "admin", path)
        .await
        .body
}

#[tokio::test]
async fn admin_endpoints() {
    let f = fixture().await;
    f.h1("a.example.test").await.get("/").await.unwrap();
    assert_eq!(admin_get(&f, "/healthz").await, "ok\n");
    assert_eq!(admin_get(&f, "/readyz").await, "ready\n");
    let metrics = admin_get(&f, "/metrics").await;
    assert!(
        metrics.contains("portcullis_requests_total{route=\"a\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_routing_table_generation 1"),
        "{metrics}"
    );
    let routes: serde_json::Value =
        serde_json::from_str(&admin_get(&f, "/debug/routes").await).unwrap();
    assert_eq!(routes["generation"], 1);
    assert_eq!(routes["routes"][0]["id"], "a");
}

/// Swapping the table every few milliseconds under steady load drops no request and no
/// connection: every response is the expected 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_swaps_under_load_drop_nothing() {
    let f = fixture().await;
    let ok = Arc::new(AtomicU64::new(0));
    // Until both counts are reached (at least 3 s), or 30 s on a slow machine.
    let (at_least, deadline) = (
        Instant::now() + Duration::from_secs(3),
        Instant::now() + Duration::from_secs(30),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..8 {
        let mut c = f
            .h1(if i % 2 == 0 {
                "a.example.test"
            } else {
                "lb.example.test"
            })
            .await;
        let (ok, stop) = (ok.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.get("/steady").await {
                    Ok(a) if a.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(a) => failures.push(format!("status {}: {}", a.status, a.body)),
                    Err(e) => failures.push(format!("error: {e}")),
                }
            }
            failures
        }));
    }
    // Alternate between two different tables that both keep the loaded routes.
    let base = base_model(f.a, f.b, f.ws);
    let mut bigger = base.clone();
    for n in 0..500 {
        bigger.routes.push(route(
            &format!("extra-{n}"),
            &format!("h{n}.example.test"),
            PathMatch::Any,
            &[f.b],
        ));
    }
    let mut swaps = 0u64;
    while Instant::now() < deadline
        && (Instant::now() < at_least || swaps <= 100 || ok.load(Ordering::Relaxed) <= 500)
    {
        f.running.apply(if swaps.is_multiple_of(2) {
            &bigger
        } else {
            &base
        });
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    let served = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(swaps > 100, "only {swaps} swaps");
    assert!(served > 500, "only {served} requests served");
    eprintln!("{served} requests, {swaps} table swaps, 0 failures");
}

/// Shutdown lets a request in flight finish.
#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let f = fixture().await;
    let mut c = f.h1("a.example.test").await;
    assert_eq!(c.get("/").await.unwrap().status, 200);
    let Fixture { running, .. } = f;
    let done = tokio::spawn(running.shutdown());
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("shutdown finished")
        .unwrap();
}

#[tokio::test]
async fn serves_http2_by_alpn() {
    let f = fixture().await;
    let tls = client_tls(&f.tls_ca(), &[b"h2"]);
    let stream = tls_connect(f.running.https_addr, "a.example.test", tls).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut streams = Vec::new();
    for i in 0..4 {
        let req = http::Request::get(format!("https://a.example.test/h2/{i}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        streams.push(sender.send_request(req));
    }
    for (i, resp) in futures_util::future::join_all(streams)
        .await
        .into_iter()
        .enumerate()
    {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 200);
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo["path"], format!("/h2/{i}"));
        assert_eq!(echo["headers"]["host"], "a.example.test");
    }
}

/// A data plane with one worker (so every request shares its upstream pool) serving
/// `routes` for `*.example.test`, and a client TLS config that trusts it.
async fn one_worker(routes: Vec<RouteSpec>) -> (Running, Arc<rustls::ClientConfig>) {
    let pki = pki(&["*.example.test"]);
    let settings = Settings {
        address: "127.0.0.1:0".parse().unwrap(),
        http_redirect_address: None,
        metrics_address: None,
        certificates: vec![pki.server.clone()],
        limits: Limits::default(),
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
        routes,
        ..Model::default()
    };
    let running = app::start(settings, &model).await.unwrap();
    (running, client_tls(&pki.ca_der, &[b"http/1.1"]))
}

/// A plain HTTP/1.1 upstream that counts the connections it accepts; with `idle`, it
/// closes a connection that waits that long for its next request (as upstreams with a
/// keep-alive timeout do), without telling the proxy.
async fn counting_upstream(idle: Option<Duration>) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"counted")),
                    ))
                });
                let mut b = hyper::server::conn::http1::Builder::new();
                if let Some(idle) = idle {
                    b.timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(idle);
                }
                let _ = b
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_stale_ones_replaced() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (keep, kept) = counting_upstream(None).await;
    let (idle, idled) = counting_upstream(Some(Duration::from_millis(100))).await;
    let (running, tls) = one_worker(vec![
        route("keep", "keep.example.test", PathMatch::Any, &[keep]),
        route("idle", "idle.example.test", PathMatch::Any, &[idle]),
    ])
    .await;

    // Sequential requests, then four clients at once: the worker reuses its idle
    // upstream connections instead of opening one per request.
    let mut c = H1::connect(running.https_addr, "keep.example.test", tls.clone()).await;
    for _ in 0..20 {
        let ans = c.get("/").await.unwrap();
        assert_eq!((ans.status, ans.body.as_str()), (200, "counted"));
    }
    assert_eq!(kept.load(Ordering::SeqCst), 1);
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(H1::connect(running.https_addr, "keep.example.test", tls.clone()).await);
    }
    for _ in 0..10 {
        let answers = futures_util::future::join_all(clients.iter_mut().map(|c| c.get("/"))).await;
        assert!(answers.iter().all(|a| a.as_ref().unwrap().status == 200));
    }
    let opened = kept.load(Ordering::SeqCst);
    assert!(
        opened <= 4,
        "{opened} upstream connections for 4 concurrent clients"
    );

    // The upstream closes idle connections after 100 ms: the next request after a
    // pause gets a fresh connection, never an error.
    let mut c = H1::connect(running.https_addr, "idle.example.test", tls.clone()).await;
    for round in 1..=3 {
        let ans = c.get("/").await.unwrap();
        assert_eq!(ans.status, 200, "round {round}: {}", ans.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(idled.load(Ordering::SeqCst), 3);
    running.shutdown().await;
}

#[tokio::test]
async fn a_connection_still_taking_an_upload_is_not_handed_to_the_next_request() {
    // The upstream answers a POST at once and reads its body in the background, as an
    // app refusing an upload early does; the client is slow to send that body. The
    // next request to the same upstream must not wait behind the upload.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let status = if req.method() == http::Method::POST {
                            let body = req.into_body();
                            tokio::spawn(async move {
                                let _ = http_body_util::BodyExt::collect(body).await;
                            });
                            401
                        } else {
                            200
                        };
                        let mut resp = hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"done"),
                        ));
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let (running, tls) = one_worker(vec![route(
        "up",
        "up.example.test",
        PathMatch::Any,
        &[upstream],
    )])
    .await;

    // Warm the pool with one connection, then start an upload that stalls.
    let mut c = H1::connect(running.https_addr, "up.example.test", tls.clone()).await;
    assert_eq!(c.get("/").await.unwrap().status, 200);
    let mut upload = tls_connect(running.https_addr, "up.example.test", tls.clone()).await;
    upload
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: up.example.test\r\nContent-Length: 100000\r\n\r\nfirst bytes",
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), upload.read(&mut head))
        .await
        .expect("the early answer arrives")
        .unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );

    let next = tokio::time::timeout(Duration::from_secs(3), c.get("/")).await;
    let next = next.expect("the next request waited behind the stalled upload");
    assert_eq!(next.unwrap().status, 200);
    drop(upload);
    running.shutdown().await;
}
