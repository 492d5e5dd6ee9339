//! The ingress controller against a real kube-apiserver and etcd (e2e/cluster): Ingresses
//! and IdentityPolicies become routes within a second, policy edits change decisions
//! under load, deletions remove routes, mistakes fail closed with Events and conditions,
//! TLS comes from Secrets, status shows the published address, and exactly one of two
//! replicas writes status until it stops.
//!
//! Needs Go on PATH the first time (e2e/cluster builds and caches kube-apiserver and
//! etcd); later runs start a cluster in about three seconds.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use portcullis::kube::crd::IdentityPolicy;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const PUBLISHED: &str = "203.0.113.10";
const NS: &str = "apps";
const CONTROLLER_NS: &str = "portcullis-system";

/// A private test cluster, stopped on drop.
struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    client: kube::Client,
}

impl Cluster {
    async fn up(tag: &str) -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("portcullis-ctl-{tag}-{}", std::process::id()));
        let repo = env!("CARGO_MANIFEST_DIR");
        let mut path = std::env::var("PATH").unwrap_or_default();
        if !path
            .split(':')
            .any(|p| std::path::Path::new(p).join("go").exists())
        {
            path.push_str(":/usr/local/go/bin");
        }
        let out = Command::new(format!("{repo}/e2e/cluster"))
            .arg("up")
            .env("PORTCULLIS_CLUSTER_DIR", &dir)
            .env("PATH", &path)
            .stderr(Stdio::inherit())
            .output()
            .expect("e2e/cluster runs");
        assert!(out.status.success(), "e2e/cluster up failed");
        let kubeconfig = dir.join("kubeconfig");
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let cluster = Cluster {
            dir,
            kubeconfig,
            client,
        };
        for ns in [NS, CONTROLLER_NS] {
            cluster
                .create_cluster_scoped::<Namespace>(json!({"metadata": {"name": ns}}))
                .await;
        }
        cluster
            .create_cluster_scoped::<IngressClass>(json!({"metadata": {"name": "portcullis"},
                       "spec": {"controller": "portcullis.dev/ingress-controller"}}))
            .await;
        cluster
    }

    fn api<K>(&self, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns.unwrap_or(NS))
    }

    async fn create<K>(&self, ns: Option<&str>, obj: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> + Resource,
        K::DynamicType: Default,
    {
        create_in(&self.api::<K>(ns), obj).await
    }

    async fn create_cluster_scoped<K>(&self, obj: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope> + Resource,
        K::DynamicType: Default,
    {
        create_in(&Api::<K>::all(self.client.clone()), obj).await
    }

    /// An ExternalName Service `echo` pointing at `localhost` (the API server refuses
    /// loopback addresses in EndpointSlices).
    async fn echo_service(&self, port: u16) {
        self.create::<Service>(
            Some(NS),
            json!({"metadata": {"name": "echo"},
                   "spec": {"type": "ExternalName", "externalName": "localhost",
                            "ports": [{"name": "http", "port": port}]}}),
        )
        .await;
    }

    async fn ingress(
        &self,
        name: &str,
        host: &str,
        port: u16,
        annotations: Value,
        tls: Option<&str>,
    ) {
        let mut spec = json!({
            "ingressClassName": "portcullis",
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "echo", "port": {"number": port}}}}]}}],
        });
        if let Some(secret) = tls {
            spec["tls"] = json!([{"hosts": [host], "secretName": secret}]);
        }
        self.create::<Ingress>(
            Some(NS),
            json!({"metadata": {"name": name, "annotations": annotations}, "spec": spec}),
        )
        .await;
    }

    async fn policy(&self, name: &str, rules: Value) {
        self.create::<IdentityPolicy>(
            Some(NS),
            json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "IdentityPolicy",
                   "metadata": {"name": name}, "spec": {"rules": rules}}),
        )
        .await;
    }

    async fn events_for(&self, kind: &str, name: &str) -> Vec<(String, String, String)> {
        let list = self
            .api::<Event>(Some(NS))
            .list(&ListParams::default())
            .await
            .unwrap();
        list.items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
            })
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// What the test creates through the API: any object kube can send and read back.
trait Resource: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug {}
impl<K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug> Resource for K {}

async fn create_in<K: Resource>(api: &Api<K>, obj: Value) -> K {
    let obj: K = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(format!("{}/e2e/cluster", env!("CARGO_MANIFEST_DIR")))
            .arg("down")
            .env("PORTCULLIS_CLUSTER_DIR", &self.dir)
            .stderr(Stdio::null())
            .status();
    }
}

/// One `portcullis run --kubernetes` replica.
struct Replica {
    child: Option<Child>,
    https: SocketAddr,
    admin: u16,
    identity: String,
    log: PathBuf,
}

impl Replica {
    async fn start(cluster: &Cluster, identity: &str, pki: &TestPki) -> Replica {
        let (https, admin) = (free_port(), free_port());
        let dir = &cluster.dir;
        let cert = dir.join(format!("{identity}.crt"));
        let key = dir.join(format!("{identity}.key"));
        std::fs::write(&cert, &pki.server.cert_pem).unwrap();
        std::fs::write(&key, &pki.server.key_pem).unwrap();
        let config = dir.join(format!("{identity}.yaml"));
        std::fs::write(
            &config,
            format!(
                "address: 127.0.0.1:{https}\nmetrics_address: 127.0.0.1:{admin}\n\
                 certificates:\n  - cert: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("{identity}.log"));
        let child = Command::new(BIN)
            .args(["run", "--kubernetes", "--config"])
            .arg(&config)
            .args([
                "--publish-status-address",
                PUBLISHED,
                "--controller-namespace",
                CONTROLLER_NS,
                // The upstreams of these tests are ExternalName `localhost` Services
                // (the API server refuses loopback EndpointSlice addresses).
                "--allow-external-name-services",
                "--test-only-allow-loopback-upstreams",
            ])
            .args(["--pod-name", identity])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let replica = Replica {
            child: Some(child),
            https: SocketAddr::from(([127, 0, 0, 1], https)),
            admin,
            identity: identity.into(),
            log,
        };
        replica.wait_ready().await;
        replica
    }

    async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::get(format!("http://127.0.0.1:{}{path}", self.admin))
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.admin_get("/readyz").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready:\n{}", self.identity, self.log_tail());
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops with SIGTERM, as Kubernetes does, and waits for the drain.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn route_count(&self) -> usize {
        let (_, body) = self.admin_get("/debug/routes").await.unwrap_or_default();
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["routes"].as_array().map(Vec::len))
            .unwrap_or(0)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 10 ms until it holds or `limit` passes; returns the time taken.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status_of(
    r: &Replica,
    tls: &Arc<rustls::ClientConfig>,
    host: &str,
    method: &str,
) -> Option<u16> {
    let mut c = tokio::time::timeout(
        Duration::from_secs(2),
        H1::connect(r.https, host, tls.clone()),
    )
    .await
    .ok()?;
    let req = http::Request::builder()
        .method(method)
        .uri("/")
        .body(Default::default())
        .unwrap();
    c.send(req).await.ok().map(|a| a.status)
}

fn ingress_address(ing: &Ingress) -> Option<String> {
    ing.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

fn status_managers(ing: &Ingress) -> Vec<String> {
    ing.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_and_policy_lifecycle() {
    let cluster = Cluster::up("lifecycle").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let replica = Replica::start(&cluster, "replica-a", &pki).await;

    // Apply: a policy that lets anyone GET, and an Ingress that uses it.
    cluster
        .policy(
            "get-only",
            json!([{"allow": {"and": [{"http_method": {"is": "GET"}}]}}]),
        )
        .await;
    let applied = Instant::now();
    cluster
        .ingress(
            "app",
            "app.example.test",
            upstream.port(),
            json!({"portcullis.dev/identity-policy": "get-only"}),
            None,
        )
        .await;
    within(
        Duration::from_secs(1),
        "the new route answers 200",
        || async { status_of(&replica, &tls, "app.example.test", "GET").await == Some(200) },
    )
    .await;
    let served = applied.elapsed();
    eprintln!("FIGURE apply-to-serving: {} ms", served.as_millis());
    assert_eq!(
        status_of(&replica, &tls, "app.example.test", "POST").await,
        Some(403)
    );

    // Status: the published address, an Accepted Event, the policy's conditions.
    let ingresses = cluster.api::<Ingress>(Some(NS));
    within(
        Duration::from_secs(15),
        "Ingress status shows the address",
        || async {
            ingress_address(&ingresses.get("app").await.unwrap()).as_deref() == Some(PUBLISHED)
        },
    )
    .await;
    within(Duration::from_secs(15), "an Accepted Event", || async {
        cluster
            .events_for("Ingress", "app")
            .await
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "Accepted")
    })
    .await;
    let policies = cluster.api::<IdentityPolicy>(Some(NS));
    within(
        Duration::from_secs(15),
        "the policy is Accepted and attached",
        || async {
            let p = policies.get("get-only").await.unwrap();
            let status = serde_json::to_value(&p.status).unwrap();
            status["attachedIngresses"] == 1
                && status["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Accepted" && c["status"] == "True")
                })
        },
    )
    .await;

    // Edit the policy under steady load: decisions change, nothing fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, denied, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut load = Vec::new();
    for _ in 0..4 {
        let mut c = H1::connect(replica.https, "app.example.test", tls.clone()).await;
        let (stop, ok, denied, failed) = (stop.clone(), ok.clone(), denied.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.get("/").await {
                    Ok(a) if a.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(a) if a.status == 403 => denied.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut p = policies.get("get-only").await.unwrap();
    p.spec.rules =
        serde_json::from_value(json!([{"allow": {"and": [{"http_method": {"is": "POST"}}]}}]))
            .unwrap();
    policies
        .replace("get-only", &PostParams::default(), &p)
        .await
        .unwrap();
    within(
        Duration::from_secs(2),
        "GET is denied after the edit",
        || async { status_of(&replica, &tls, "app.example.test", "GET").await == Some(403) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (ok, denied, failed) = (
        ok.load(Ordering::Relaxed),
        denied.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("under load: {ok} allowed before the edit, {denied} denied after, {failed} failed");
    assert_eq!(failed, 0, "requests failed during the policy edit");
    assert!(ok > 0 && denied > 0);
    assert_eq!(
        status_of(&replica, &tls, "app.example.test", "POST").await,
        Some(200)
    );

    // Delete: the route goes away.
    ingresses
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    within(
        Duration::from_secs(1),
        "the deleted route answers 404",
        || async { status_of(&replica, &tls, "app.example.test", "GET").await == Some(404) },
    )
    .await;
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_fail_closed_and_say_why() {
    let cluster = Cluster::up("mistakes").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let replica = Replica::start(&cluster, "replica-a", &pki).await;
    let public = json!({"portcullis.dev/allow-public-unauthenticated-access": "true"});
    let port = upstream.port();

    // A typo in an annotation rejects the Ingress instead of opening it.
    cluster
        .ingress(
            "typo",
            "typo.example.test",
            port,
            json!({"portcullis.dev/allow-public-unauthenticated-access": "true",
                   "portcullis.dev/alowed-users": "bob@example.com"}),
            None,
        )
        .await;
    // An IdentityPolicy that does not compile denies the Ingresses it is attached to.
    cluster
        .policy(
            "broken",
            json!([{"allow": {"and": [{"grups": {"has": "admin"}}]}}]),
        )
        .await;
    cluster
        .ingress(
            "uses-broken",
            "broken.example.test",
            port,
            json!({"portcullis.dev/identity-policy": "broken"}),
            None,
        )
        .await;
    // A reference to an IdentityPolicy that does not exist.
    cluster
        .ingress(
            "missing-policy",
            "missing.example.test",
            port,
            json!({"portcullis.dev/identity-policy": "nope"}),
            None,
        )
        .await;
    // A missing TLS Secret is reported; the route is still served (default certificate).
    cluster
        .ingress(
            "no-secret",
            "nosecret.example.test",
            port,
            public.clone(),
            Some("absent-tls"),
        )
        .await;
    // A present TLS Secret is served by SNI.
    let site = issue(&pki, &["tls.example.test"]);
    cluster
        .create::<Secret>(
            Some(NS),
            json!({"metadata": {"name": "site-tls"}, "type": "kubernetes.io/tls",
                   "stringData": {"tls.crt": String::from_utf8(site.cert_pem.clone()).unwrap(),
                                  "tls.key": String::from_utf8(site.key_pem.clone()).unwrap()}}),
        )
        .await;
    cluster
        .ingress(
            "with-secret",
            "tls.example.test",
            port,
            public.clone(),
            Some("site-tls"),
        )
        .await;

    within(
        Duration::from_secs(2),
        "every host has its route",
        || async { replica.route_count().await >= 5 },
    )
    .await;
    for host in [
        "typo.example.test",
        "broken.example.test",
        "missing.example.test",
    ] {
        assert_eq!(
            status_of(&replica, &tls, host, "GET").await,
            Some(403),
            "{host}"
        );
    }
    assert_eq!(
        status_of(&replica, &tls, "nosecret.example.test", "GET").await,
        Some(200)
    );
    // The Secret's certificate (signed by the same test CA, for tls.example.test only).
    within(
        Duration::from_secs(2),
        "the Secret's certificate is served",
        || async { status_of(&replica, &tls, "tls.example.test", "GET").await == Some(200) },
    )
    .await;
    let served = tls_connect(replica.https, "tls.example.test", tls.clone()).await;
    let leaf = served.get_ref().1.peer_certificates().unwrap()[0].clone();
    let names: Vec<String> = webpki::EndEntityCert::try_from(&leaf)
        .unwrap()
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    assert_eq!(names, ["tls.example.test"]);

    let expect_event = |object: &'static str, kind: &'static str, reason: &'static str| {
        let cluster = &cluster;
        async move {
            within(
                Duration::from_secs(15),
                &format!("{kind} {object}: {reason}"),
                || async {
                    cluster
                        .events_for(kind, object)
                        .await
                        .iter()
                        .any(|(t, r, _)| t == "Warning" && r == reason)
                },
            )
            .await;
        }
    };
    expect_event("typo", "Ingress", "UnknownAnnotation").await;
    expect_event("missing-policy", "Ingress", "IdentityPolicyNotFound").await;
    expect_event("no-secret", "Ingress", "TLSSecretNotFound").await;
    expect_event("broken", "IdentityPolicy", "InvalidRules").await;
    let policies = cluster.api::<IdentityPolicy>(Some(NS));
    let p = policies.get("broken").await.unwrap();
    let status = serde_json::to_value(&p.status).unwrap();
    let accepted = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Accepted")
        .unwrap()
        .clone();
    assert_eq!(accepted["status"], "False", "{status}");
    assert_eq!(accepted["reason"], "InvalidRules");
    assert!(
        accepted["message"].as_str().unwrap().contains("grups"),
        "{accepted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_status_and_another_takes_over() {
    let cluster = Cluster::up("leader").await;
    let pki = pki(&["*.example.test"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let public = json!({"portcullis.dev/allow-public-unauthenticated-access": "true"});
    let mut a = Replica::start(&cluster, "replica-a", &pki).await;
    let mut b = Replica::start(&cluster, "replica-b", &pki).await;
    let leases = cluster.api::<k8s_openapi::api::coordination::v1::Lease>(Some(CONTROLLER_NS));
    let holder = || async {
        leases
            .get_opt("portcullis-leader")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .unwrap_or_default()
    };
    within(
        Duration::from_secs(15),
        "a replica holds the Lease",
        || async { !holder().await.is_empty() },
    )
    .await;
    let leader = holder().await;
    cluster
        .ingress(
            "first",
            "first.example.test",
            upstream.port(),
            public.clone(),
            None,
        )
        .await;
    let ingresses = cluster.api::<Ingress>(Some(NS));
    within(
        Duration::from_secs(15),
        "status of `first` is written",
        || async { ingress_address(&ingresses.get("first").await.unwrap()).is_some() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let managers = status_managers(&ingresses.get("first").await.unwrap());
    assert_eq!(
        managers,
        [format!("portcullis/{leader}")],
        "only the leader writes status"
    );

    // The leader stops; the other takes the Lease and writes status from then on.
    let (stopped, survivor) = if leader == a.identity {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    stopped.stop();
    let took_over = within(
        Duration::from_secs(20),
        "the other replica takes over",
        || async { holder().await == survivor.identity },
    )
    .await;
    eprintln!("FIGURE leader takeover: {} ms", took_over.as_millis());
    cluster
        .ingress(
            "second",
            "second.example.test",
            upstream.port(),
            public,
            None,
        )
        .await;
    within(
        Duration::from_secs(15),
        "status of `second` is written",
        || async { ingress_address(&ingresses.get("second").await.unwrap()).is_some() },
    )
    .await;
    let managers = status_managers(&ingresses.get("second").await.unwrap());
    assert_eq!(managers, [format!("portcullis/{}", survivor.identity)]);
    // The survivor serves traffic throughout.
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    assert_eq!(
        status_of(survivor, &tls, "second.example.test", "GET").await,
        Some(200)
    );
}

/// The figure the issue asks for: a cold start converging 1,000 Ingresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_converges_a_thousand_ingresses() {
    const N: usize = 1000;
    let cluster = Cluster::up("thousand").await;
    let pki = pki(&["*.example.test"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let created = Instant::now();
    let port = upstream.port();
    let cluster = Arc::new(cluster);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..N).step_by(8) {
                cluster
                    .ingress(
                        &format!("app-{i}"),
                        &format!("app-{i}.example.test"),
                        port,
                        json!({"portcullis.dev/allow-public-unauthenticated-access": "true"}),
                        None,
                    )
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "created {N} Ingresses in {} ms",
        created.elapsed().as_millis()
    );
    let started = Instant::now();
    let replica = Replica::start(&cluster, "replica-a", &pki).await;
    let ready = started.elapsed();
    let converged = within(
        Duration::from_secs(60),
        "every Ingress is routed",
        || async { replica.route_count().await >= N },
    )
    .await
        + ready;
    eprintln!(
        "FIGURE cold start with {N} Ingresses: ready in {} ms, all routes in {} ms",
        ready.as_millis(),
        converged.as_millis()
    );
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    assert_eq!(
        status_of(&replica, &tls, "app-999.example.test", "GET").await,
        Some(200)
    );
    // Status is written for all of them by the leader.
    let ingresses = cluster.api::<Ingress>(Some(NS));
    let written = within(
        Duration::from_secs(120),
        "status for every Ingress",
        || async {
            let list = ingresses.list(&ListParams::default()).await.unwrap();
            list.items
                .iter()
                .filter(|i| ingress_address(i).is_some())
                .count()
                >= N
        },
    )
    .await;
    eprintln!(
        "FIGURE status written for {N} Ingresses {} ms after ready",
        written.as_millis()
    );
}

/// With the API server gone, the last good table keeps serving, and the outage is
/// logged once per watch, not once per retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_keeps_the_last_good_table() {
    let cluster = Cluster::up("outage").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    cluster
        .ingress(
            "app",
            "app.example.test",
            upstream.port(),
            json!({"portcullis.dev/allow-public-unauthenticated-access": "true"}),
            None,
        )
        .await;
    let replica = Replica::start(&cluster, "replica-a", &pki).await;
    within(Duration::from_secs(2), "the route answers", || async {
        status_of(&replica, &tls, "app.example.test", "GET").await == Some(200)
    })
    .await;

    let pid = std::fs::read_to_string(cluster.dir.join("kube-apiserver.pid")).unwrap();
    let killed = Command::new("kill")
        .arg("-KILL")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(killed.success());
    // Serving continues for a while with the API server gone (watches retry meanwhile).
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            status_of(&replica, &tls, "app.example.test", "GET").await,
            Some(200)
        );
    }
    let (ready, _) = replica.admin_get("/readyz").await.unwrap();
    assert_eq!(ready, 200, "still ready: the table is the last good one");
    let log = std::fs::read_to_string(&replica.log).unwrap();
    let outage_lines = log
        .matches("watch failed; serving the last good configuration")
        .count();
    assert!(
        (1..=6).contains(&outage_lines),
        "expected one warning per watched kind, got {outage_lines}:\n{}",
        replica.log_tail()
    );
}
