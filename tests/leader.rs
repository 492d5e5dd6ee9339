//! Leader election against a real kube-apiserver and etcd (e2e/cluster): a status write
//! the API server answers slowly (held by a delaying proxy, longer than the renew
//! interval and longer than the Lease lasts) does not lose the Lease. The election runs
//! as its own task and keeps renewing while the write waits; the other replica never
//! takes over; the status lands once the API server answers.
//!
//! The cluster and replica fixtures are in tests/common/cluster.rs.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use http::{Method, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::api::networking::v1::Ingress;
use portcullis::api::sync::lock;
use serde_json::json;
use tokio::net::TcpListener;

/// How often the leader renews (the Lease's retry period in src/kube/lease.rs).
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// The Lease's `leaseDurationSeconds`.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long after its last renewal the leader still acts as the leader.
const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How long the proxy holds each status write: ten renew intervals, and longer than a
/// Lease lasts without renewal.
const SLOW: Duration = Duration::from_secs(20);

/// One status write the proxy held: when it arrived, and when its answer went back.
#[derive(Debug, Clone)]
struct Held {
    path: String,
    arrived: Instant,
    answered: Option<Instant>,
}

/// A plain-HTTP proxy in front of the API server that holds every status write
/// (`PATCH …/status`) for [`SLOW`] before passing it on; everything else (the Lease,
/// watches, Events) passes at once. It forwards with the test's admin client.
struct SlowApi {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<Held>>>,
}

impl SlowApi {
    async fn start(upstream: kube::Client) -> SlowApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let log = held.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (upstream, log) = (upstream.clone(), log.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        forward(upstream.clone(), log.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        SlowApi { addr, held }
    }

    /// The cluster's kubeconfig, pointed at this proxy.
    fn kubeconfig(&self, cluster: &Cluster) -> PathBuf {
        let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|l| match l.trim_start().strip_prefix("server:") {
                Some(_) => format!("    server: http://{}", self.addr),
                None => l.to_string(),
            })
            .collect();
        let path = cluster.dir.join("kubeconfig-slow");
        std::fs::write(&path, text.join("\n")).unwrap();
        path
    }

    fn held(&self) -> Vec<Held> {
        lock(&self.held).clone()
    }
}

async fn forward(
    upstream: kube::Client,
    log: Arc<Mutex<Vec<Held>>>,
    req: Request<Incoming>,
) -> Result<Response<kube::client::Body>, Infallible> {
    let slow = req.method() == Method::PATCH && req.uri().path().ends_with("/status");
    let (mut parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // The admin client sets its own host and credentials.
    for name in [header::HOST, header::AUTHORIZATION, header::CONNECTION] {
        parts.headers.remove(name);
    }
    let entry = slow.then(|| {
        let mut log = lock(&log);
        log.push(Held {
            path: parts.uri.path().to_string(),
            arrived: Instant::now(),
            answered: None,
        });
        log.len() - 1
    });
    if slow {
        tokio::time::sleep(SLOW).await;
    }
    let request = Request::from_parts(parts, kube::client::Body::from(body.to_vec()));
    let mut response = match upstream.send(request).await {
        Ok(r) => r,
        Err(e) => Response::builder()
            .status(502)
            .body(kube::client::Body::from(e.to_string().into_bytes()))
            .unwrap(),
    };
    response.headers_mut().remove(header::CONNECTION);
    if let Some(i) = entry {
        lock(&log)[i].answered = Some(Instant::now());
    }
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_status_write_does_not_lose_the_lease() {
    let cluster = Cluster::up("slowstatus").await;
    let pki = pki(&["*.example.test"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let proxy = SlowApi::start(cluster.client.clone()).await;
    let kubeconfig = proxy.kubeconfig(&cluster);
    let options = ReplicaOptions {
        certificate: Some(&pki.server),
        config: "",
        args: LOOPBACK_UPSTREAMS,
    };
    let slow = Replica::start_through(&cluster, "replica-slow", &options, &kubeconfig).await;
    let lease = || cluster.lease();
    let holder = |spec: &LeaseSpec| spec.holder_identity.clone().unwrap_or_default();
    within(
        Duration::from_secs(15),
        "the replica behind the slow API server holds the Lease",
        || async { holder(&lease().await) == slow.identity },
    )
    .await;
    // A second replica, straight to the API server, ready to take over.
    let other = Replica::start(&cluster, "replica-fast", &pki).await;
    let transitions = lease().await.lease_transitions;

    let public = json!({"portcullis.dev/allow-public-unauthenticated-access": "true"});
    cluster
        .ingress("slow", "slow.example.test", upstream.port(), public, None)
        .await;
    let ingresses = cluster.api::<Ingress>(Some(NS));
    // Watch the Lease every 100 ms until the held write was answered and its status shows.
    let start = Instant::now();
    let mut renewed_at = Vec::new();
    let mut last_renew = None;
    loop {
        let spec = lease().await;
        assert_eq!(
            holder(&spec),
            slow.identity,
            "the Lease stays with the leader while its status write is held ({:?} in)\n\
             leader:\n{}\nother:\n{}",
            start.elapsed(),
            slow.log_tail(),
            other.log_tail()
        );
        if spec.renew_time != last_renew {
            renewed_at.push(Instant::now());
            last_renew = spec.renew_time;
        }
        let answered = proxy.held().iter().any(|h| h.answered.is_some());
        if answered
            && ingress_address(&ingresses.get("slow").await.unwrap()).as_deref() == Some(PUBLISHED)
        {
            break;
        }
        assert!(
            start.elapsed() < SLOW + Duration::from_secs(30),
            "the status never landed; held: {:?}\n{}",
            proxy.held(),
            slow.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The write really was slow: held longer than the renew interval, and longer than
    // the Lease lasts without renewal.
    let held = proxy.held();
    let first = held
        .iter()
        .find(|h| h.answered.is_some())
        .expect("a held status write");
    assert!(first.path.ends_with("/ingresses/slow/status"), "{held:?}");
    let (arrived, answered) = (first.arrived, first.answered.unwrap());
    let took = answered - arrived;
    assert!(took >= SLOW, "{took:?}");
    assert!(took > 5 * RENEW_EVERY && took > LEASE_DURATION, "{took:?}");
    // The Lease was renewed on its own timer all along.
    let during: Vec<Instant> = renewed_at
        .iter()
        .copied()
        .filter(|t| *t > arrived && *t < answered)
        .collect();
    assert!(
        during.len() >= 5,
        "renewed {} times while the write was held for {took:?}",
        during.len()
    );
    let longest_gap = renewed_at
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest_gap < RENEW_DEADLINE,
        "no renewal for {longest_gap:?}"
    );
    assert_eq!(
        lease().await.lease_transitions,
        transitions,
        "nobody took the Lease"
    );
    assert_eq!(holder(&lease().await), slow.identity);
    // The status landed, written by the leader alone.
    let ing = ingresses.get("slow").await.unwrap();
    assert_eq!(ingress_address(&ing).as_deref(), Some(PUBLISHED));
    assert_eq!(
        status_managers(&ing),
        [format!("portcullis/{}", slow.identity)]
    );
    eprintln!(
        "FIGURE slow status write: held {} ms (renew interval {} ms, Lease {} s); {} renewals meanwhile, longest gap {} ms",
        took.as_millis(),
        RENEW_EVERY.as_millis(),
        LEASE_DURATION.as_secs(),
        during.len(),
        longest_gap.as_millis()
    );
}
