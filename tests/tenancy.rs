//! Tenancy against a real API server with RBAC on (issue 14, docs/security.md): Ingress
//! authors of namespaces `b` and `aaa`, each with nothing but its own ServiceAccount
//! token and a Role in its namespace, attack namespace `ops`. Every attack is refused
//! with a Warning Event that says why, and ops' route, certificate and policy stay as
//! they were; ops' delegation lets `b`, and only `b`, add a path.
//!
//! The cluster and replica fixtures are in tests/common/cluster.rs.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::cluster::*;
use common::*;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use portcullis::api::kube::crd::IdentityPolicy;
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};

const PUBLIC: &str = "portcullis.dev/allow-public-unauthenticated-access";
const GRAFANA: &str = "grafana.corp.example";
const AUTHENTICATE: &str = "authenticate.corp.example";

/// An object created through a tenant's own client (its RBAC, not the admin's).
async fn create_as<K>(client: &kube::Client, ns: &str, obj: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> + Resource,
    K::DynamicType: Default,
{
    create_in(&Api::<K>::namespaced(client.clone(), ns), obj).await
}

/// Ingress spec: `host` (`None`: no host) → `path` (Prefix) → Service `service:port`.
fn rule(host: Option<&str>, path: &str, service: &str, port: u16) -> Value {
    let mut r = json!({"http": {"paths": [{"path": path, "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": port}}}}]}});
    if let Some(h) = host {
        r["host"] = json!(h);
    }
    r
}

fn ingress(name: &str, annotations: Value, spec: Value) -> Value {
    let mut spec = spec;
    spec["ingressClassName"] = json!("portcullis");
    json!({"metadata": {"name": name, "annotations": annotations}, "spec": spec})
}

fn external_name(name: &str, target: &str, port: u16) -> Value {
    json!({"metadata": {"name": name},
           "spec": {"type": "ExternalName", "externalName": target,
                    "ports": [{"name": "http", "port": port}]}})
}

fn tls_secret(name: &str, pair: &portcullis::api::proxy::tls::PemPair) -> Value {
    json!({"metadata": {"name": name}, "type": "kubernetes.io/tls",
           "stringData": {"tls.crt": String::from_utf8(pair.cert_pem.clone()).unwrap(),
                          "tls.key": String::from_utf8(pair.key_pem.clone()).unwrap()}})
}

/// Waits for a Warning Event on Ingress `ns/name` with `reason`, whose note contains
/// every one of `words`; returns the note.
async fn warning(cluster: &Cluster, ns: &str, name: &str, reason: &str, words: &[&str]) -> String {
    let found = |events: Vec<(String, String, String)>| {
        events
            .into_iter()
            .find(|(t, r, n)| t == "Warning" && r == reason && words.iter().all(|w| n.contains(w)))
            .map(|(_, _, n)| n)
    };
    within(
        Duration::from_secs(20),
        &format!("Warning {reason} on Ingress {ns}/{name} saying {words:?}"),
        || async { found(cluster.events_in(ns, "Ingress", name).await).is_some() },
    )
    .await;
    let note = found(cluster.events_in(ns, "Ingress", name).await).unwrap_or_default();
    eprintln!("refused {ns}/{name}: {reason}: {note}");
    note
}

/// `GET`/`POST` `path` on `host`: status and, for echo answers, which upstream answered.
async fn ask(
    r: &Replica,
    tls: &Arc<rustls::ClientConfig>,
    method: &str,
    host: &str,
    path: &str,
) -> (u16, String) {
    let mut c = H1::connect(r.https, host, tls.clone()).await;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(Default::default())
        .unwrap();
    let a = c.send(req).await.unwrap();
    let upstream = serde_json::from_str::<Value>(&a.body)
        .ok()
        .and_then(|v| v["upstream"].as_str().map(str::to_string))
        .unwrap_or_default();
    (a.status, upstream)
}

/// A TLS client that accepts any server certificate: these tests look at which
/// certificate is served (with [`served_leaf`]) rather than trust it.
fn any_certificate() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The leaf certificate served for `sni` (or none).
async fn served_leaf(addr: SocketAddr, sni: Option<&str>) -> CertificateDer<'static> {
    let mut config = any_certificate();
    // Without SNI: an IP address as the server name sends none.
    config.enable_sni = sni.is_some();
    let name =
        rustls::pki_types::ServerName::try_from(sni.unwrap_or("127.0.0.1").to_string()).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn leaf_of(pair: &portcullis::api::proxy::tls::PemPair) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(&pair.cert_pem)
        .next()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_reach_into_another_namespace() {
    let cluster = Cluster::up("tenancy").await;
    let pki = pki(&["*.example.test"]);
    let tls = Arc::new(any_certificate());
    let ops = cluster.tenant("ops").await;
    let b = cluster.tenant("b").await;
    let aaa = cluster.tenant("aaa").await;
    let (ops_up, b_up) = (echo_upstream("ops").await, echo_upstream("b").await);

    // The victim: Grafana in ops, its certificate, a GET-only policy; and a second host
    // (prometheus) without a certificate of its own.
    create_as::<Service>(
        &ops,
        "ops",
        external_name("web", "localhost", ops_up.port()),
    )
    .await;
    let grafana_cert = issue(&pki, &[GRAFANA]);
    create_as::<Secret>(&ops, "ops", tls_secret("grafana-tls", &grafana_cert)).await;
    create_as::<IdentityPolicy>(
        &ops,
        "ops",
        json!({"apiVersion": "portcullis.dev/v1alpha1",
        "kind": "IdentityPolicy", "metadata": {"name": "get-only"},
        "spec": {"rules": [{"allow": {"and": [{"http_method": {"is": "GET"}}]}}]}}),
    )
    .await;
    let grafana_spec = json!({
        "rules": [rule(Some(GRAFANA), "/", "web", ops_up.port()),
                  rule(Some("prometheus.corp.example"), "/", "web", ops_up.port())],
        "tls": [{"hosts": [GRAFANA], "secretName": "grafana-tls"}],
    });
    create_as::<Ingress>(
        &ops,
        "ops",
        ingress(
            "grafana",
            json!({"portcullis.dev/identity-policy": "get-only"}),
            grafana_spec.clone(),
        ),
    )
    .await;

    // Creation times have one-second resolution; ties go by namespace/name ("b" < "ops").
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // No certificate in the config file: the default is the generated one.
    let replica = Replica::start_with(
        &cluster,
        "replica-a",
        &ReplicaOptions {
            certificate: None,
            config: &format!("authenticate_service_url: https://{AUTHENTICATE}"),
            args: LOOPBACK_UPSTREAMS,
        },
    )
    .await;
    // Grafana's own certificate, signed by the test CA, is what its clients verify.
    let grafana_tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    within(
        Duration::from_secs(20),
        "ops' Grafana is served",
        || async {
            tokio::time::timeout(
                Duration::from_secs(2),
                ask(&replica, &grafana_tls, "GET", GRAFANA, "/"),
            )
            .await
            .is_ok_and(|a| a == (200, "ops".into()))
        },
    )
    .await;

    // RBAC is on: b's token cannot write into ops.
    let denied = Api::<Ingress>::namespaced(b.clone(), "ops")
        .create(
            &PostParams::default(),
            &serde_json::from_value(ingress(
                "x",
                json!({}),
                json!({"rules": [rule(Some(GRAFANA), "/x", "web", 80)]}),
            ))
            .unwrap(),
        )
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(e)) if e.code == 403),
        "b may not write ops"
    );

    // b's upstream, for the delegation at the end.
    create_as::<Service>(&b, "b", external_name("web", "localhost", b_up.port())).await;
    let b_port = b_up.port();

    // 1. A path on ops' host: `/b` would serve b's HTML on Grafana's origin.
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "squat",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some(GRAFANA), "/b", "web", b_port)]}),
        ),
    )
    .await;
    warning(
        &cluster,
        "b",
        "squat",
        "HostOwnedElsewhere",
        &[GRAFANA, "namespace ops"],
    )
    .await;
    // 2. Host-less rules and a defaultBackend would answer for every host.
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "catch-all",
            json!({PUBLIC: "true"}),
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": b_port}}},
               "rules": [rule(None, "/", "web", b_port)]}),
        ),
    )
    .await;
    warning(
        &cluster,
        "b",
        "catch-all",
        "CatchAllNotAllowed",
        &["defaultBackend"],
    )
    .await;
    warning(
        &cluster,
        "b",
        "catch-all",
        "CatchAllNotAllowed",
        &["has no host"],
    )
    .await;
    // 3. The sign-in host.
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "sign-in",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some(AUTHENTICATE), "/", "web", b_port)]}),
        ),
    )
    .await;
    warning(&cluster, "b", "sign-in", "ReservedHost", &[AUTHENTICATE]).await;
    // 4. A forged identity header for b's own upstream.
    create_as::<Ingress>(&b, "b", ingress("forge",
        json!({PUBLIC: "true", "portcullis.dev/set-request-headers": "{X-Forwarded-Email: admin@corp.example}"}),
        json!({"rules": [rule(Some("forge.b.example"), "/", "web", b_port)]})))
    .await;
    warning(
        &cluster,
        "b",
        "forge",
        "ReservedHeader",
        &["x-forwarded-email", "identity header"],
    )
    .await;
    //    And a response's framing: a short Content-Length would let b's upstream put a
    //    second response (cookies, Clear-Site-Data) on the client's connection.
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "smuggle",
            json!({PUBLIC: "true", "portcullis.dev/set-response-headers": "{Content-Length: '0'}"}),
            json!({"rules": [rule(Some("smuggle.b.example"), "/", "web", b_port)]}),
        ),
    )
    .await;
    warning(
        &cluster,
        "b",
        "smuggle",
        "ReservedHeader",
        &["content-length", "framing header"],
    )
    .await;
    // 5. Portcullis's own admin listener, through an ExternalName to localhost (even
    //    with loopback upstreams allowed for the tests).
    create_as::<Service>(&b, "b", external_name("admin", "localhost", replica.admin)).await;
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "admin",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some("admin.b.example"), "/", "admin", replica.admin)]}),
        ),
    )
    .await;
    warning(
        &cluster,
        "b",
        "admin",
        "UpstreamRefused",
        &["own listeners"],
    )
    .await;
    // 6. ops' Service by its cluster DNS name, around ops' policy.
    create_as::<Service>(
        &b,
        "b",
        external_name("sideways", "web.ops.svc.cluster.local", ops_up.port()),
    )
    .await;
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "sideways",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some("sideways.b.example"), "/", "sideways", ops_up.port())]}),
        ),
    )
    .await;
    warning(
        &cluster,
        "b",
        "sideways",
        "UpstreamRefused",
        &["namespace ops"],
    )
    .await;
    // 7. A policy naming ops' Ingress: targetRefs are of b's namespace only.
    create_as::<IdentityPolicy>(&b, "b", json!({"apiVersion": "portcullis.dev/v1alpha1",
        "kind": "IdentityPolicy", "metadata": {"name": "open-grafana"},
        "spec": {"targetRefs": [{"group": "networking.k8s.io", "kind": "Ingress", "name": "grafana"}],
                 "rules": [{"allow": {"and": [{"accept": true}]}}]}}))
    .await;
    // 8. Path regexes past the per-Ingress limits.
    let many: Vec<Value> = (0..40)
        .map(|i| {
            json!({"path": format!("/r{i}/[a-z]+"), "pathType": "ImplementationSpecific",
                        "backend": {"service": {"name": "web", "port": {"number": b_port}}}})
        })
        .collect();
    create_as::<Ingress>(
        &b,
        "b",
        ingress(
            "regexes",
            json!({PUBLIC: "true", "portcullis.dev/path-regex": "true"}),
            json!({"rules": [{"host": "regex.b.example", "http": {"paths": many}}]}),
        ),
    )
    .await;
    warning(
        &cluster,
        "b",
        "regexes",
        "PathRegexLimit",
        &["40 path regexes"],
    )
    .await;

    // 9. aaa (sorted first) brings a certificate for Grafana and a wildcard one.
    create_as::<Service>(&aaa, "aaa", external_name("web", "localhost", b_port)).await;
    let squat_cert = issue(&pki, &[GRAFANA, "aaa.corp.example"]);
    let wild_cert = issue(&pki, &["*.corp.example"]);
    create_as::<Secret>(&aaa, "aaa", tls_secret("squat-tls", &squat_cert)).await;
    create_as::<Secret>(&aaa, "aaa", tls_secret("wild-tls", &wild_cert)).await;
    create_as::<Ingress>(
        &aaa,
        "aaa",
        ingress(
            "site",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some("aaa.corp.example"), "/", "web", b_port)],
               "tls": [{"hosts": [GRAFANA, "aaa.corp.example"], "secretName": "squat-tls"}]}),
        ),
    )
    .await;
    create_as::<Ingress>(
        &aaa,
        "aaa",
        ingress(
            "wild",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some("*.corp.example"), "/", "web", b_port)],
               "tls": [{"hosts": ["*.corp.example"], "secretName": "wild-tls"}]}),
        ),
    )
    .await;
    warning(&cluster, "aaa", "site", "TLSHostNotOwned", &[GRAFANA]).await;

    // The victim is unchanged: route, policy, certificate.
    within(
        Duration::from_secs(20),
        "aaa's certificates are served for aaa's names",
        || async {
            served_leaf(replica.https, Some("aaa.corp.example")).await == leaf_of(&squat_cert)
        },
    )
    .await;
    assert_eq!(
        ask(&replica, &tls, "GET", GRAFANA, "/").await,
        (200, "ops".into())
    );
    assert_eq!(
        ask(&replica, &tls, "GET", GRAFANA, "/b").await,
        (200, "ops".into())
    );
    assert_eq!(
        ask(&replica, &tls, "POST", GRAFANA, "/").await.0,
        403,
        "ops' policy stands"
    );
    assert_eq!(
        served_leaf(replica.https, Some(GRAFANA)).await,
        leaf_of(&grafana_cert)
    );
    // ops' second host has no certificate of its own: the default, not aaa's wildcard.
    let default = served_leaf(replica.https, None).await;
    assert_ne!(
        default,
        leaf_of(&squat_cert),
        "a Secret is never the default"
    );
    assert_ne!(
        default,
        leaf_of(&wild_cert),
        "a Secret is never the default"
    );
    assert_eq!(
        served_leaf(replica.https, Some("prometheus.corp.example")).await,
        default
    );
    assert_eq!(
        served_leaf(replica.https, Some("unknown.example")).await,
        default
    );
    // The wildcard serves what aaa owns through it.
    assert_eq!(
        served_leaf(replica.https, Some("free.corp.example")).await,
        leaf_of(&wild_cert)
    );
    assert_eq!(
        ask(&replica, &tls, "GET", "prometheus.corp.example", "/").await,
        (200, "ops".into())
    );
    // Nothing of b's answers anywhere: not on the sign-in host, not as a catch-all.
    assert_eq!(ask(&replica, &tls, "GET", AUTHENTICATE, "/").await.0, 404);
    assert_eq!(
        ask(&replica, &tls, "GET", "nobody.example", "/").await.0,
        404
    );
    for host in ["forge.b.example", "admin.b.example", "sideways.b.example"] {
        assert_eq!(ask(&replica, &tls, "GET", host, "/").await.0, 403, "{host}");
    }
    let policies: Api<IdentityPolicy> = Api::namespaced(cluster.client.clone(), "b");
    within(
        Duration::from_secs(20),
        "b's policy targets nothing of ops'",
        || async {
            let p = policies.get("open-grafana").await.unwrap();
            let status = serde_json::to_value(&p.status).unwrap();
            status["attachedIngresses"] == 0
                && status["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "ResolvedRefs" && c["status"] == "False")
                })
        },
    )
    .await;

    // 10. ops delegates its host to b: b's path is served, aaa's is still refused.
    let patch =
        json!({"metadata": {"annotations": {"portcullis.dev/allow-paths-from-namespaces": "b"}}});
    Api::<Ingress>::namespaced(ops.clone(), "ops")
        .patch("grafana", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    create_as::<Ingress>(
        &aaa,
        "aaa",
        ingress(
            "docs",
            json!({PUBLIC: "true"}),
            json!({"rules": [rule(Some(GRAFANA), "/aaa", "web", b_port)]}),
        ),
    )
    .await;
    within(
        Duration::from_secs(20),
        "b's delegated path answers",
        || async { ask(&replica, &tls, "GET", GRAFANA, "/b").await == (200, "b".into()) },
    )
    .await;
    warning(
        &cluster,
        "aaa",
        "docs",
        "HostOwnedElsewhere",
        &["namespace ops"],
    )
    .await;
    assert_eq!(
        ask(&replica, &tls, "GET", GRAFANA, "/aaa").await,
        (200, "ops".into())
    );
    assert_eq!(
        ask(&replica, &tls, "GET", GRAFANA, "/").await,
        (200, "ops".into())
    );
    assert_eq!(ask(&replica, &tls, "POST", GRAFANA, "/").await.0, 403);
    assert_eq!(
        served_leaf(replica.https, Some(GRAFANA)).await,
        leaf_of(&grafana_cert)
    );
}

/// Adds `names` for `ip` to /etc/hosts for the life of the value. The file is never
/// truncated while it is edited: the replicas of the tests running alongside resolve
/// `localhost` through it.
struct HostsEntry {
    line: String,
}

impl HostsEntry {
    fn add(ip: &str, names: &[&str]) -> HostsEntry {
        use std::io::Write;
        let line = format!(
            "{ip} {} # portcullis tenancy test {}",
            names.join(" "),
            std::process::id()
        );
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
        let lead = if hosts.ends_with('\n') || hosts.is_empty() {
            ""
        } else {
            "\n"
        };
        std::fs::OpenOptions::new()
            .append(true)
            .open("/etc/hosts")
            .and_then(|mut f| f.write_all(format!("{lead}{line}\n").as_bytes()))
            .expect("the test may edit /etc/hosts");
        HostsEntry { line }
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        use std::io::{Seek, Write};
        if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
            let kept: String = hosts
                .lines()
                .filter(|l| *l != self.line)
                .map(|l| format!("{l}\n"))
                .collect();
            // In place, then cut: every line before ours stays readable throughout.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open("/etc/hosts")
                .and_then(|mut f| {
                    f.seek(std::io::SeekFrom::Start(0))?;
                    f.write_all(kept.as_bytes())?;
                    f.set_len(kept.len() as u64)
                });
        }
    }
}

/// With ExternalName Services allowed but no test flag, as a production install would
/// run with the flag on: loopback, metadata and a name resolving to loopback are
/// refused, the last when connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_names_to_loopback_and_metadata_are_refused() {
    let cluster = Cluster::up("extname").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let b = cluster.tenant("b").await;
    let upstream = echo_upstream("b").await;
    let port = upstream.port();
    let _hosts = HostsEntry::add("127.0.0.1", &["loopback-alias.portcullis.test"]);
    let _hosts6 = HostsEntry::add("::1", &["loopback6-alias.portcullis.test"]);
    let replica = Replica::start_with(
        &cluster,
        "replica-a",
        &ReplicaOptions {
            certificate: Some(&pki.server),
            config: "",
            args: &["--allow-external-name-services"],
        },
    )
    .await;

    let cases: &[(&str, &str, &[&str])] = &[
        ("localhost", "UpstreamRefused", &["loopback name"]),
        ("127.0.0.2", "UpstreamRefused", &["127.0.0.2", "loopback"]),
        (
            "169.254.169.254",
            "UpstreamRefused",
            &["169.254.169.254", "blocked"],
        ),
        (
            "web.ops.svc.cluster.local",
            "UpstreamRefused",
            &["namespace ops"],
        ),
    ];
    for (i, (target, reason, words)) in cases.iter().enumerate() {
        let name = format!("ext-{i}");
        create_as::<Service>(&b, "b", external_name(&name, target, port)).await;
        create_as::<Ingress>(
            &b,
            "b",
            ingress(
                &name,
                json!({PUBLIC: "true"}),
                json!({"rules": [rule(Some(&format!("{name}.example.test")), "/", &name, port)]}),
            ),
        )
        .await;
        warning(&cluster, "b", &name, reason, words).await;
        assert_eq!(
            ask(&replica, &tls, "GET", &format!("{name}.example.test"), "/")
                .await
                .0,
            403,
            "{target}: the rejected route denies and has no upstream"
        );
    }
    // `[::1]` is not a DNS name: the API server itself refuses it as an ExternalName.
    let refused = Api::<Service>::namespaced(b.clone(), "b")
        .create(
            &PostParams::default(),
            &serde_json::from_value(external_name("v6", "[::1]", port)).unwrap(),
        )
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(e)) if e.code == 422),
        "the API server refuses [::1]"
    );

    // Names the index cannot judge resolve to loopback: refused when connecting.
    for (name, alias) in [
        ("alias", "loopback-alias.portcullis.test"),
        ("alias6", "loopback6-alias.portcullis.test"),
    ] {
        create_as::<Service>(&b, "b", external_name(name, alias, port)).await;
        create_as::<Ingress>(
            &b,
            "b",
            ingress(
                name,
                json!({PUBLIC: "true"}),
                json!({"rules": [rule(Some(&format!("{name}.example.test")), "/", name, port)]}),
            ),
        )
        .await;
        let host = format!("{name}.example.test");
        within(
            Duration::from_secs(20),
            &format!("{alias} is refused at connect time"),
            || async { ask(&replica, &tls, "GET", &host, "/").await.0 == 502 },
        )
        .await;
    }
    let log = std::fs::read_to_string(&replica.log).unwrap();
    for alias in [
        "loopback-alias.portcullis.test",
        "loopback6-alias.portcullis.test",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("refused to connect to an upstream") && l.contains(alias)),
            "a log line says why {alias} was refused:\n{}",
            replica.log_tail()
        );
    }
    // Nothing was ever sent anywhere but loopback: the only connect attempts the
    // replica logged are the refused loopback ones.
    assert!(
        !log.contains("169.254.169.254:"),
        "no connection to the metadata address"
    );
}

/// The figure the issue asks for: 50 Ingresses whose path regexes use up the
/// per-Ingress budget, against the same 50 with plain prefixes, each set watched by its
/// own replica; and a rebuild that reuses the compiled patterns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_regexes_cost_bounded_memory_and_compile_once() {
    const N: usize = 50;
    let cluster = Cluster::up("regex-rss").await;
    let pki = pki(&["*.example.test"]);
    let upstream = echo_upstream("echo").await;
    let port = upstream.port();
    for ns in ["plain", "regex"] {
        let client = cluster.tenant(ns).await;
        create_as::<Service>(&client, ns, external_name("web", "localhost", port)).await;
        for i in 0..N {
            // Two Unicode-class patterns per Ingress, distinct across Ingresses: about
            // 226 KiB compiled, near the 256 KiB budget.
            let (kind, patterns) = if ns == "regex" {
                (
                    "ImplementationSpecific",
                    [format!(r"/a{i}/(\w+)/(\w+)"), format!(r"/b{i}/(\w+)/(\w+)")],
                )
            } else {
                ("Prefix", [format!("/a{i}"), format!("/b{i}")])
            };
            let paths: Vec<Value> = patterns
                .iter()
                .map(|p| {
                    json!({"path": p, "pathType": kind,
                                "backend": {"service": {"name": "web", "port": {"number": port}}}})
                })
                .collect();
            let mut ann = json!({PUBLIC: "true"});
            if ns == "regex" {
                ann["portcullis.dev/path-regex"] = json!("true");
            }
            create_as::<Ingress>(&client, ns, ingress(&format!("app-{i}"), ann,
                json!({"rules": [{"host": format!("app-{i}.{ns}.example.test"), "http": {"paths": paths}}]})))
            .await;
        }
    }
    let start = |ns: &'static str| {
        let cluster = &cluster;
        let pki = &pki;
        async move {
            let lease = format!("lease-{ns}");
            let args = [
                LOOPBACK_UPSTREAMS,
                &["--watch-namespace", ns, "--lease-name", &lease],
            ]
            .concat();
            Replica::start_with(
                cluster,
                &format!("replica-{ns}"),
                &ReplicaOptions {
                    certificate: Some(&pki.server),
                    config: "",
                    args: &args,
                },
            )
            .await
        }
    };
    let plain = start("plain").await;
    let regex = start("regex").await;
    let tls = Arc::new(any_certificate());
    for (r, ns) in [(&plain, "plain"), (&regex, "regex")] {
        within(
            Duration::from_secs(30),
            &format!("{ns}: every route"),
            || async { r.route_count().await >= 2 * N },
        )
        .await;
        // One request per route, so lazy DFA caches hold what matching needs.
        for i in 0..N {
            let host = format!("app-{i}.{ns}.example.test");
            let mut c = H1::connect(r.https, &host, tls.clone()).await;
            for path in [format!("/a{i}/x/y"), format!("/b{i}/x/y")] {
                assert_eq!(c.get(&path).await.unwrap().status, 200, "{host}{path}");
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (plain_rss, regex_rss) = (plain.rss_kib(), regex.rss_kib());
    let ratio = regex_rss as f64 / plain_rss as f64;
    eprintln!(
        "FIGURE RSS with {N} Ingresses: plain prefixes {plain_rss} KiB, path regexes {regex_rss} KiB, ratio {ratio:.2}"
    );
    assert!(
        ratio <= 1.5,
        "regex RSS {regex_rss} KiB vs plain {plain_rss} KiB: {ratio:.2}×"
    );

    // A rebuild (one more Ingress) compiles no pattern again.
    let admin: Api<Ingress> = Api::namespaced(cluster.client.clone(), "regex");
    admin
        .create(
            &PostParams::default(),
            &serde_json::from_value(ingress(
                "one-more",
                json!({PUBLIC: "true"}),
                json!({"rules": [rule(Some("one-more.regex.example.test"), "/", "web", port)]}),
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    within(
        Duration::from_secs(10),
        "the rebuild is applied",
        || async { regex.route_count().await > 2 * N },
    )
    .await;
    let applied = applied_builds(&regex);
    let first = applied.first().expect("a build");
    let last = applied.last().unwrap();
    eprintln!(
        "FIGURE table build with {} path regexes: first {:.2} ms ({} compiled, {} from the index's check), rebuild {:.2} ms ({} compiled, {} reused)",
        2 * N,
        first.ms,
        first.compiled,
        first.shared,
        last.ms,
        last.compiled,
        last.reused
    );
    // Each pattern was compiled once, by the index's size check, and never again.
    assert_eq!((first.compiled, first.shared), (0, 2 * N));
    assert_eq!((last.compiled, last.reused), (0, 2 * N));
}

/// One "routing table applied from the cluster" log line.
struct Build {
    ms: f64,
    compiled: usize,
    reused: usize,
    shared: usize,
}

fn applied_builds(r: &Replica) -> Vec<Build> {
    let log = std::fs::read_to_string(&r.log).unwrap();
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!("{key}="))? + key.len() + 1;
        Some(
            line[at..]
                .split([' ', ',', '}'])
                .next()?
                .trim_matches('"')
                .to_string(),
        )
    };
    log.lines()
        .filter(|l| l.contains("routing table applied from the cluster"))
        .filter_map(|l| {
            Some(Build {
                ms: field(l, "build_ms")?.parse().ok()?,
                compiled: field(l, "regexes_compiled")?.parse().ok()?,
                reused: field(l, "regexes_reused")?.parse().ok()?,
                shared: field(l, "regexes_shared")?.parse().ok()?,
            })
        })
        .collect()
}
