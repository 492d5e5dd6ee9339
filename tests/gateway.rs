//! Gateway API against a real API server (issue 17): `portcullis run --kubernetes
//! --gateway-api` with the pinned Gateway API CRDs (e2e/cluster applies
//! crds/gateway-api/), the Okta-shaped provider (e2e/oidc) and a GatewayClass, a
//! Gateway in `infra` whose HTTPS listener admits routes from `apps` only, and
//! HTTPRoutes with IdentityPolicies. Requests go to the Gateway's own socket (its
//! local port, read from the Service Portcullis provisions for it).
//!
//! Needs what tests/controller.rs needs, plus `npm ci --prefix e2e/oidc`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::signin_env::{ALICE_LOGIN, BOB_LOGIN, CLIENT_ID, CLIENT_SECRET, Dir, follow};
use common::*;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use portcullis::api::kube::crd::IdentityPolicy;
use portcullis::api::kube::gateway::api::{Gateway, GatewayClass, HTTPRoute};
use portcullis::api::kube::index::ObjectKey;
use portcullis::api::proxy::tls::PemPair;
use serde_json::{Value, json};

const INFRA: &str = "infra";
const OTHER: &str = "other";

/// A cluster with the provider, a replica serving Gateway API and Gateway `infra/gw`.
struct Setup {
    cluster: Cluster,
    /// Kept running for the test (its log is in the cluster dir).
    replica: Option<Replica>,
    /// What started it: the config file's lines, its flags, its certificate.
    config: String,
    args: Vec<String>,
    server: PemPair,
    _idp: Proc,
    _dir: Dir,
    /// The local port of the Gateway's HTTPS listener (port 443), from its Service.
    gw_port: u16,
    /// The local port of its HTTP listener (port 80).
    http_port: u16,
    /// The replica's own HTTPS port (the authenticate host).
    main_port: u16,
    ca: rustls::pki_types::CertificateDer<'static>,
    upstream: SocketAddr,
}

async fn namespace(cluster: &Cluster, name: &str) {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    if namespaces.get_opt(name).await.unwrap().is_none() {
        cluster
            .create_cluster_scoped::<Namespace>(json!({"metadata": {"name": name}}))
            .await;
    }
}

async fn setup(tag: &str) -> Setup {
    let cluster = Cluster::up(tag).await;
    let dir = Dir::new(tag);
    let pki = pki(&[
        "*.example.test",
        "*.apps.example.test",
        "localhost",
        "127.0.0.1",
    ]);
    let cert = dir.write("tls.crt", &pki.server.cert_pem);
    let key = dir.write("tls.key", &pki.server.key_pem);
    let ca_file = dir.write("ca.pem", &common::signin_env::pem_of(&pki.ca_der));
    let main_port = free_port();
    let range_start = free_pair();
    let (idp, idp_base) = common::signin_env::start_idp(&dir, &cert, &key, main_port);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    for ns in [INFRA, OTHER] {
        namespace(&cluster, ns).await;
    }
    // Namespace ops owns grafana.example.test and *.apps.example.test: its Ingress is
    // older than the Gateway.
    namespace(&cluster, "ops").await;
    cluster
        .create::<Service>(
            Some("ops"),
            json!({"metadata": {"name": "echo"},
                   "spec": {"type": "ExternalName", "externalName": "localhost",
                            "ports": [{"name": "http", "port": upstream.port()}]}}),
        )
        .await;
    let ops_rules: Vec<Value> = ["grafana.example.test", "*.apps.example.test"]
        .iter()
        .map(|host| {
            json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "echo", "port": {"number": upstream.port()}}}}]}})
        })
        .collect();
    cluster
        .create::<k8s_openapi::api::networking::v1::Ingress>(
            Some("ops"),
            json!({"metadata": {"name": "grafana"}, "spec": {
                "ingressClassName": "portcullis",
                "rules": ops_rules}}),
        )
        .await;
    // Creation times are in seconds: the Gateway must be a second younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cluster
        .create_cluster_scoped::<GatewayClass>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "portcullis"},
            "spec": {"controllerName": "portcullis.dev/gateway-controller"}}))
        .await;
    cluster
        .create::<Secret>(
            Some(INFRA),
            json!({"metadata": {"name": "gw-cert"}, "type": "kubernetes.io/tls",
                   "stringData": {"tls.crt": String::from_utf8(pki.server.cert_pem.clone()).unwrap(),
                                  "tls.key": String::from_utf8(pki.server.key_pem.clone()).unwrap()}}),
        )
        .await;
    cluster
        .create::<Gateway>(
            Some(INFRA),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw"},
            // Its author would point another namespace's host at this Gateway through
            // external-dns: such words are not copied onto the provisioned Service.
            "spec": {"gatewayClassName": "portcullis",
                     "infrastructure": {
                         "annotations": {"external-dns.alpha.kubernetes.io/hostname": "grafana.example.test"},
                         "labels": {"app.kubernetes.io/managed-by": "someone-else"}},
                     "listeners": [{
                "name": "https", "protocol": "HTTPS", "port": 443,
                "hostname": "*.example.test",
                "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-cert"}]},
                "allowedRoutes": {"namespaces": {"from": "Selector", "selector":
                    {"matchLabels": {"kubernetes.io/metadata.name": NS}}}},
            }, {
                "name": "http", "protocol": "HTTP", "port": 80,
                "hostname": "*.example.test",
                "allowedRoutes": {"namespaces": {"from": "Selector", "selector":
                    {"matchLabels": {"kubernetes.io/metadata.name": NS}}}},
            }]}}),
        )
        .await;
    let config = format!(
        "authenticate_service_url: https://authenticate.example.test:{main_port}\n\
         idp_provider: okta\n\
         idp_provider_url: {idp_base}/oauth2/default\n\
         idp_client_id: {CLIENT_ID}\n\
         idp_client_secret: {CLIENT_SECRET}\n\
         idp_ca_file: {ca}\n\
         cookie_secret: {cookie}\n\
         routes:\n\
         \x20 - from: https://file.example.test\n\
         \x20   to: http://{upstream}\n\
         \x20   allow_public_unauthenticated_access: true\n",
        ca = ca_file.display(),
        cookie = base64_std(&common::signin_env::rand_bytes()),
    );
    let range = format!("{range_start}-{}", range_start + 1);
    let mut args: Vec<String> = LOOPBACK_UPSTREAMS.iter().map(|a| a.to_string()).collect();
    args.extend(
        ["--gateway-api", "--gateway-port-range", &range]
            .iter()
            .map(|a| a.to_string()),
    );
    let mut own_args: Vec<&str> = args.iter().map(String::as_str).collect();
    own_args.extend(["--gateway-bind-address", "127.0.0.1"]);
    let options = ReplicaOptions {
        certificate: Some(&pki.server),
        config: &config,
        args: &own_args,
    };
    let replica = Replica::start_on(&cluster, "gw-a", &options, main_port).await;
    // Where the Gateway's ports are: the targets of the Service provisioned for it.
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), CONTROLLER_NS);
    let name = portcullis::api::kube::index::gateway::service_name(&ObjectKey::new(INFRA, "gw"));
    let targets = || async {
        let svc = services.get_opt(&name).await.ok().flatten()?;
        let mut local = std::collections::BTreeMap::new();
        for p in svc.spec.and_then(|s| s.ports).unwrap_or_default() {
            if let Some(IntOrString::Int(target)) = p.target_port {
                local.insert(p.port, target as u16);
            }
        }
        (local.len() == 2).then_some(local)
    };
    within(Duration::from_secs(20), "the Gateway's Service", || async {
        targets().await.is_some()
    })
    .await;
    let local = targets().await.unwrap();
    eprintln!("Gateway infra/gw: local ports {local:?} (Gateway port: local port)");
    let meta = services.get(&name).await.unwrap().metadata;
    let annotations = meta.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("external-dns.alpha.kubernetes.io/hostname"),
        "{annotations:?}"
    );
    assert_eq!(
        meta.labels.unwrap_or_default()["app.kubernetes.io/managed-by"],
        "portcullis-gateway"
    );
    let (gw_port, http_port) = (local[&443], local[&80]);
    Setup {
        cluster,
        replica: Some(replica),
        config,
        args,
        server: pki.server.clone(),
        _idp: idp,
        _dir: dir,
        gw_port,
        http_port,
        main_port,
        ca: pki.ca_der.clone(),
        upstream,
    }
}

/// A free port whose successor is free too.
fn free_pair() -> u16 {
    common::free_port_where(|p| std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok())
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Setup {
    /// HTTPRoute `ns/name` on `infra/gw` for `host` (empty: no hostnames): `rules`
    /// (default: everything to `echo`).
    async fn route(&self, ns: &str, name: &str, host: &str, rules: Option<Value>) {
        let rules = rules.unwrap_or_else(
            || json!([{"backendRefs": [{"name": "echo", "port": self.upstream.port()}]}]),
        );
        self.cluster
            .create::<HTTPRoute>(
                Some(ns),
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": name},
                    "spec": {"parentRefs": [{"name": "gw", "namespace": INFRA}],
                             "hostnames": if host.is_empty() { json!([]) } else { json!([host]) },
                             "rules": rules}}),
            )
            .await;
    }

    /// [`Setup::route`] with a policy of its own (`NAME-open`) that lets anyone in: what
    /// it reaches is decided by attachment alone.
    async fn open_route(&self, ns: &str, name: &str, host: &str, rules: Option<Value>) {
        self.route(ns, name, host, rules).await;
        let accept = json!([{"allow": {"and": [{"accept": true}]}}]);
        self.policy(ns, &format!("{name}-open"), &[("HTTPRoute", name)], accept)
            .await;
    }

    /// IdentityPolicy `ns/name` naming `targets` (`(kind, name)`), with `rules`.
    async fn policy(&self, ns: &str, name: &str, targets: &[(&str, &str)], rules: Value) {
        let refs: Vec<Value> = targets
            .iter()
            .map(|(kind, n)| json!({"group": "gateway.networking.k8s.io", "kind": kind, "name": n}))
            .collect();
        self.cluster
            .create::<IdentityPolicy>(
                Some(ns),
                json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "IdentityPolicy",
                       "metadata": {"name": name},
                       "spec": {"targetRefs": refs, "rules": rules}}),
            )
            .await;
    }

    /// A browser: cookies kept, the test CA trusted, our names on loopback.
    fn browser(&self) -> reqwest::Client {
        let tls = (*client_tls(&self.ca, &[b"http/1.1"])).clone();
        let gw = SocketAddr::from(([127, 0, 0, 1], self.gw_port));
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(
                "authenticate.example.test",
                SocketAddr::from(([127, 0, 0, 1], self.main_port)),
            );
        for h in [
            "admin", "one", "two", "strict", "evil", "load", "broken", "site",
        ] {
            b = b.resolve(&format!("{h}.example.test"), gw);
        }
        b.build().unwrap()
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}.example.test:{}{path}", self.gw_port)
    }

    /// Another replica of the same controller, its Gateway sockets on `bind` (another
    /// loopback address: as another Pod, same ports), its own HTTPS port.
    async fn second_replica(&self, identity: &str, bind: &str) -> Replica {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(["--gateway-bind-address", bind]);
        let options = ReplicaOptions {
            certificate: Some(&self.server),
            config: &self.config,
            args: &args,
        };
        Replica::start_with(&self.cluster, identity, &options).await
    }

    /// Status and body of an anonymous `method` on the Gateway socket.
    async fn ask(&self, method: &str, host: &str, path: &str) -> (u16, String) {
        self.ask_at([127, 0, 0, 1], method, host, path).await
    }

    /// [`Setup::ask`] on the Gateway socket of the replica bound to `ip`.
    async fn ask_at(&self, ip: [u8; 4], method: &str, host: &str, path: &str) -> (u16, String) {
        let tls = client_tls(&self.ca, &[b"http/1.1"]);
        let addr = SocketAddr::from((ip, self.gw_port));
        let host = format!("{host}.example.test");
        let Ok(Some(mut c)) =
            tokio::time::timeout(Duration::from_secs(2), H1::try_connect(addr, &host, tls)).await
        else {
            return (0, String::new());
        };
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{host}:{}", self.gw_port))
            .body(Default::default())
            .unwrap();
        match c.send(req).await {
            Ok(a) => (a.status, a.body),
            Err(_) => (0, String::new()),
        }
    }

    async fn route_parent(&self, ns: &str, name: &str) -> Value {
        let api: Api<HTTPRoute> = Api::namespaced(self.cluster.client.clone(), ns);
        let r = api.get(name).await.unwrap();
        let status = serde_json::to_value(&r.status).unwrap();
        status["parents"]
            .as_array()
            .and_then(|p| {
                p.iter()
                    .find(|p| p["controllerName"] == "portcullis.dev/gateway-controller")
                    .cloned()
            })
            .unwrap_or(Value::Null)
    }

    /// Waits until route `ns/name`'s parent condition `type_` has `status` (and
    /// `reason`, when given); returns the condition.
    async fn route_condition(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Value {
        let find = |parent: &Value| {
            parent["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
                .filter(|c| c["status"] == status && reason.is_none_or(|r| c["reason"] == r))
        };
        within(
            Duration::from_secs(20),
            &format!("HTTPRoute {ns}/{name} {type_}={status} {reason:?}"),
            || async { find(&self.route_parent(ns, name).await).is_some() },
        )
        .await;
        let c = find(&self.route_parent(ns, name).await).unwrap();
        eprintln!("HTTPRoute {ns}/{name}: {c}");
        c
    }

    async fn policy_status(&self, ns: &str, name: &str) -> Value {
        let api: Api<IdentityPolicy> = Api::namespaced(self.cluster.client.clone(), ns);
        serde_json::to_value(&api.get(name).await.unwrap().status).unwrap()
    }
}

fn condition<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// The controller side: class, Gateway, listener and route status, the provisioned
/// Service, and a route a listener does not admit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_class_gateway_and_routes() {
    let s = setup("gw-status").await;
    let applied = Instant::now();
    s.route(NS, "site", "site.example.test", None).await;
    s.policy(
        NS,
        "anyone-get",
        &[("HTTPRoute", "site")],
        json!([{"allow": {"and": [{"http_method": {"is": "GET"}}]}}]),
    )
    .await;
    within(Duration::from_secs(20), "the route answers", || async {
        s.ask("GET", "site", "/").await.0 == 200
    })
    .await;
    eprintln!(
        "FIGURE httproute-apply-to-serving: {} ms",
        applied.elapsed().as_millis()
    );
    assert_eq!(s.ask("POST", "site", "/").await.0, 403);

    // GatewayClass Accepted, with the features it claims.
    let classes: Api<GatewayClass> = Api::all(s.cluster.client.clone());
    within(Duration::from_secs(20), "GatewayClass Accepted", || async {
        let c = classes.get("portcullis").await.unwrap();
        let st = serde_json::to_value(&c.status).unwrap();
        condition(&st["conditions"], "Accepted")["status"] == "True"
    })
    .await;
    let st = serde_json::to_value(&classes.get("portcullis").await.unwrap().status).unwrap();
    let features: Vec<&str> = st["supportedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(features.contains(&"HTTPRouteQueryParamMatching"), "{st}");

    // Gateway: Accepted, Programmed, the listener's conditions and attached routes.
    let gateways: Api<Gateway> = Api::namespaced(s.cluster.client.clone(), INFRA);
    within(
        Duration::from_secs(20),
        "Gateway Accepted and Programmed, one route attached",
        || async {
            let g = gateways.get("gw").await.unwrap();
            let st = serde_json::to_value(&g.status).unwrap();
            let l = &st["listeners"][0];
            condition(&st["conditions"], "Accepted")["status"] == "True"
                && condition(&st["conditions"], "Programmed")["status"] == "True"
                && condition(&l["conditions"], "ResolvedRefs")["status"] == "True"
                && condition(&l["conditions"], "Programmed")["status"] == "True"
                && l["attachedRoutes"] == 1
        },
    )
    .await;
    let st = serde_json::to_value(&gateways.get("gw").await.unwrap().status).unwrap();
    eprintln!("Gateway infra/gw status: {st}");
    assert!(
        st["addresses"].as_array().is_some_and(|a| !a.is_empty()),
        "{st}"
    );

    // Plain HTTP: the HTTP listener serves the route (its policy needs no sign-in).
    let http = SocketAddr::from(([127, 0, 0, 1], s.http_port));
    let a = plain_get(http, "site.example.test", "/").await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The app is told the scheme the client used (it builds its links from it).
    let echo: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http", "{echo}");
    let (status, body) = s.ask("GET", "site", "/").await;
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https", "{echo}");
    // The live table shows each Gateway socket and its routes.
    let (code, dump) = s
        .replica
        .as_ref()
        .unwrap()
        .admin_get("/debug/routes")
        .await
        .unwrap();
    assert_eq!(code, 200);
    let dump: Value = serde_json::from_str(&dump).unwrap();
    let sockets = dump["gateways"].as_array().expect("gateways");
    let https = sockets
        .iter()
        .find(|g| g["local_port"] == s.gw_port)
        .unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(https["gateway"], "infra/gw:443");
    assert_eq!(https["tls"], true);
    assert!(
        https["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"].as_str().unwrap().contains("/site/")),
        "{https}"
    );

    // Route status: Accepted and ResolvedRefs.
    s.route_condition(NS, "site", "Accepted", "True", None)
        .await;
    s.route_condition(NS, "site", "ResolvedRefs", "True", None)
        .await;
    // The policy reports the Gateway as its ancestor.
    within(Duration::from_secs(20), "policy ancestors", || async {
        let st = s.policy_status(NS, "anyone-get").await;
        st["ancestors"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["ancestorRef"]["name"] == "gw" && a["ancestorRef"]["namespace"] == INFRA)
        })
    })
    .await;

    // A route from a namespace the listener does not admit is not attached: status
    // says why, and its host answers nothing on the Gateway.
    s.open_route(OTHER, "evil", "evil.example.test", None).await;
    let c = s
        .route_condition(
            OTHER,
            "evil",
            "Accepted",
            "False",
            Some("NotAllowedByListeners"),
        )
        .await;
    assert!(!c["message"].as_str().unwrap_or("").is_empty(), "{c}");
    assert_eq!(s.ask("GET", "evil", "/").await.0, 404);
    // ... nor can it take a host the admitted route has (it is not attached at all).
    s.route(OTHER, "evil-site", "site.example.test", None).await;
    s.route_condition(
        OTHER,
        "evil-site",
        "Accepted",
        "False",
        Some("NotAllowedByListeners"),
    )
    .await;
    assert_eq!(s.ask("POST", "site", "/").await.0, 403);

    // An admitted route still cannot take a host another namespace's Ingress named
    // before the Gateway's wildcard was claimed (setup): HostNotOwned, and the host
    // answers nothing on the Gateway.
    s.open_route(NS, "grab", "grafana.example.test", None).await;
    let c = s
        .route_condition(NS, "grab", "Accepted", "False", Some("HostNotOwned"))
        .await;
    assert!(c["message"].as_str().unwrap_or("").contains("ops"), "{c}");
    assert_eq!(s.ask("GET", "grafana", "/").await.0, 404);

    // Nor the sign-in host: reserved for every route, whatever the listener says.
    s.open_route(NS, "steal-auth", "authenticate.example.test", None)
        .await;
    let c = s
        .route_condition(NS, "steal-auth", "Accepted", "False", Some("HostNotOwned"))
        .await;
    assert!(
        c["message"].as_str().unwrap_or("").contains("sign-in"),
        "{c}"
    );

    // A backend in another namespace needs a ReferenceGrant: without one the route's
    // ResolvedRefs is False (RefNotPermitted) and the rule answers 500, never the
    // backend.
    s.cluster
        .create::<Service>(
            Some(OTHER),
            json!({"metadata": {"name": "secret-svc"},
                   "spec": {"type": "ExternalName", "externalName": "localhost",
                            "ports": [{"name": "http", "port": s.upstream.port()}]}}),
        )
        .await;
    s.open_route(
        NS,
        "broken",
        "broken.example.test",
        Some(
            json!([{"backendRefs": [{"name": "secret-svc", "namespace": OTHER,
                                      "port": s.upstream.port()}]}]),
        ),
    )
    .await;
    s.route_condition(
        NS,
        "broken",
        "ResolvedRefs",
        "False",
        Some("RefNotPermitted"),
    )
    .await;
    within(
        Duration::from_secs(20),
        "the ungranted backend answers 500",
        || async { s.ask("GET", "broken", "/").await.0 == 500 },
    )
    .await;

    // A wildcard route and a host-less one, admitted, answer names no one has a
    // standing for, but never a name another namespace owns through a wildcard (ops'
    // Ingress `*.apps.example.test`) or exactly (grafana), nor the config file's host.
    let only = |prefix: &str| {
        Some(
            json!([{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                     "backendRefs": [{"name": "echo", "port": s.upstream.port()}]}]),
        )
    };
    s.open_route(NS, "wide", "*.example.test", only("/wide"))
        .await;
    s.open_route(NS, "hostless", "", only("/any")).await;
    for name in ["wide", "hostless"] {
        s.route_condition(NS, name, "Accepted", "True", None).await;
    }
    within(
        Duration::from_secs(10),
        "the broad routes answer a name no one owns",
        || async {
            s.ask("GET", "fresh", "/wide").await.0 == 200
                && s.ask("GET", "fresh", "/any").await.0 == 200
        },
    )
    .await;
    for host in ["x.apps", "grafana", "file"] {
        for path in ["/wide", "/any"] {
            let (status, body) = s.ask("GET", host, path).await;
            assert_eq!(
                status, 404,
                "{host}.example.test{path} on the Gateway: {body}"
            );
        }
    }

    // The Gateway sockets are Portcullis's own listeners: a backend naming one (here
    // through a loopback ExternalName, which this test run allows; a Pod IP works the
    // same) is refused when connecting, as the HTTPS and admin listeners are — or a
    // ClusterIP-only Gateway could be published through another route, or loop.
    s.cluster
        .create::<Service>(
            Some(NS),
            json!({"metadata": {"name": "sneak"},
                   "spec": {"type": "ExternalName", "externalName": "localhost",
                            "ports": [{"name": "http", "port": s.http_port}]}}),
        )
        .await;
    s.open_route(
        NS,
        "sneak",
        "sneak.example.test",
        Some(json!([{"backendRefs": [{"name": "sneak", "port": s.http_port}]}])),
    )
    .await;
    s.route_condition(NS, "sneak", "Accepted", "True", None)
        .await;
    within(
        Duration::from_secs(20),
        "the route to a Gateway socket is refused",
        || async { s.ask("GET", "sneak", "/").await.0 == 502 },
    )
    .await;
}

/// Sign-in through the Okta-shaped provider on a Gateway's HTTPS listener, and
/// decisions by group: a route's own policy, a Gateway-level baseline over two routes
/// (which never widens a route's own), fail-closed mistakes, path tricks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_sign_in_and_decide_by_group() {
    let s = setup("gw-signin").await;
    let admins = json!([{"allow": {"and": [{"groups": {"has": "admins"}}]}}]);
    let everyone = json!([{"allow": {"and": [{"groups": {"has": "Everyone"}}]}}]);

    // A route with a policy of its own: admins only.
    s.route(NS, "admin", "admin.example.test", None).await;
    s.policy(NS, "admins-only", &[("HTTPRoute", "admin")], admins.clone())
        .await;
    s.route_condition(NS, "admin", "Accepted", "True", None)
        .await;
    // Anonymous: a browser is sent to sign in.
    within(Duration::from_secs(20), "sign-in is asked for", || async {
        let r = s
            .browser()
            .get(s.url("admin", "/"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        r.status() == 302
            && r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with(&format!(
                    "https://authenticate.example.test:{}/",
                    s.main_port
                ))
    })
    .await;
    let alice = s.browser();
    let (r, hops) = follow(&alice, &s.url("admin", "/"), Some(ALICE_LOGIN)).await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "alice: {hops:#?}\n{body}");
    assert!(body.contains("\"upstream\""), "{body}");
    let bob = s.browser();
    let (r, hops) = follow(&bob, &s.url("admin", "/"), Some(BOB_LOGIN)).await;
    assert_eq!(r.status(), 403, "bob: {hops:#?}");
    // The HTTP listener cannot sign anyone in (Secure cookies): it denies, and says
    // to use HTTPS, instead of serving the route's policy without a session.
    let http = SocketAddr::from(([127, 0, 0, 1], s.http_port));
    let a = plain_get(http, "admin.example.test", "/").await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("HTTPS"), "{}", a.body);

    // Routes without a policy of their own deny until the Gateway's policy decides.
    s.route(NS, "one", "one.example.test", None).await;
    s.route(NS, "two", "two.example.test", None).await;
    s.route_condition(NS, "two", "Accepted", "True", None).await;
    let (r, _) = follow(&alice, &s.url("one", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(
        r.status(),
        403,
        "a route with no policy at any level denies"
    );
    // The Gateway's baseline: admins, for both routes.
    s.policy(
        INFRA,
        "gateway-admins",
        &[("Gateway", "gw")],
        admins.clone(),
    )
    .await;
    within(
        Duration::from_secs(20),
        "the baseline applies to one",
        || async {
            follow(&alice, &s.url("one", "/"), Some(ALICE_LOGIN))
                .await
                .0
                .status()
                == 200
        },
    )
    .await;
    for host in ["one", "two"] {
        let (r, _) = follow(&alice, &s.url(host, "/"), Some(ALICE_LOGIN)).await;
        assert_eq!(r.status(), 200, "alice on {host}");
        let (r, _) = follow(&bob, &s.url(host, "/"), Some(BOB_LOGIN)).await;
        assert_eq!(r.status(), 403, "bob on {host}");
    }
    // A route's own policy that allows Everyone does not widen the Gateway's.
    s.policy(
        NS,
        "everyone-two",
        &[("HTTPRoute", "two")],
        everyone.clone(),
    )
    .await;
    within(Duration::from_secs(20), "everyone-two attached", || async {
        s.policy_status(NS, "everyone-two").await["attachedRoutes"] == 1
    })
    .await;
    let (r, _) = follow(&bob, &s.url("two", "/"), Some(BOB_LOGIN)).await;
    assert_eq!(r.status(), 403, "the baseline still denies bob on two");
    let (r, _) = follow(&alice, &s.url("two", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(r.status(), 200);
    let st = s.policy_status(INFRA, "gateway-admins").await;
    eprintln!("gateway-admins status: {st}");

    // Fail closed: a policy that does not parse denies the route it names (not
    // open, not the previous policy), and its status says why.
    s.route(NS, "strict", "strict.example.test", None).await;
    s.policy(
        NS,
        "typo",
        &[("HTTPRoute", "strict")],
        json!([{"allow": {"and": [{"groupz": {"has": "admins"}}]}}]),
    )
    .await;
    within(Duration::from_secs(20), "the typo is reported", || async {
        let st = s.policy_status(NS, "typo").await;
        condition(&st["conditions"], "Accepted")["status"] == "False"
    })
    .await;
    let st = s.policy_status(NS, "typo").await;
    eprintln!("typo status: {st}");
    let (r, _) = follow(&alice, &s.url("strict", "/"), Some(ALICE_LOGIN)).await;
    assert_eq!(r.status(), 403, "an invalid policy denies");
    // A policy naming a route that does not exist says so.
    s.policy(NS, "dangling", &[("HTTPRoute", "nope")], admins.clone())
        .await;
    within(
        Duration::from_secs(20),
        "the dangling ref is reported",
        || async {
            let st = s.policy_status(NS, "dangling").await;
            condition(&st["conditions"], "ResolvedRefs")["status"] == "False"
        },
    )
    .await;

    // Path tricks: a public prefix on the admin host never reaches the admin rule's
    // decision by dot-segments or encodings. (The Gateway's baseline goes first: it
    // would keep the public prefix closed too.)
    let policies: Api<IdentityPolicy> = Api::namespaced(s.cluster.client.clone(), INFRA);
    policies
        .delete("gateway-admins", &Default::default())
        .await
        .unwrap();
    let api: Api<HTTPRoute> = Api::namespaced(s.cluster.client.clone(), NS);
    let port = s.upstream.port();
    api.patch(
        "admin",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"rules": [
            {"backendRefs": [{"name": "echo", "port": port}]},
        ]}})),
    )
    .await
    .unwrap();
    s.open_route(
        NS,
        "admin-public",
        "admin.example.test",
        Some(
            json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/public"}}],
                     "backendRefs": [{"name": "echo", "port": port}]}]),
        ),
    )
    .await;
    within(
        Duration::from_secs(20),
        "the public prefix answers",
        || async { s.ask("GET", "admin", "/public/x").await.0 == 200 },
    )
    .await;
    for path in [
        "/public/../secret",
        "/public/%2e%2e/secret",
        "/public/.%2E/secret",
        "//public/../secret",
        "/public%2f..%2fsecret",
        "/public/..;/secret",
        "/public\\..\\secret",
    ] {
        let (status, body) = s.ask("GET", "admin", path).await;
        eprintln!("path trick {path}: {status}");
        assert!(
            status == 400 || status == 302 || status == 401 || status == 403,
            "{path}: {status} {body}"
        );
        assert!(!body.contains("\"upstream\""), "{path} reached the backend");
    }
}

/// A policy edit under steady load on a Gateway route: decisions change, no request
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_edit_under_load_drops_nothing() {
    let s = setup("gw-load").await;
    s.route(NS, "load", "load.example.test", None).await;
    s.policy(
        NS,
        "get-only",
        &[("HTTPRoute", "load")],
        json!([{"allow": {"and": [{"http_method": {"is": "GET"}}]}}]),
    )
    .await;
    within(Duration::from_secs(20), "the route answers", || async {
        s.ask("GET", "load", "/").await.0 == 200
    })
    .await;
    let tls = client_tls(&s.ca, &[b"http/1.1"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], s.gw_port));
    let load = Load::start(4, addr, "load.example.test", &tls).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let policies: Api<IdentityPolicy> = Api::namespaced(s.cluster.client.clone(), NS);
    policies
        .patch(
            "get-only",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rules":
                [{"allow": {"and": [{"http_method": {"is": "POST"}}]}}]}})),
        )
        .await
        .unwrap();
    within(
        Duration::from_secs(20),
        "GET is denied after the edit",
        || async { s.ask("GET", "load", "/").await.0 == 403 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, denied, failed) = load.stop().await;
    eprintln!("under load: {ok} allowed before the edit, {denied} denied after, {failed} failed");
    assert_eq!(failed, 0, "requests failed during the policy edit");
    assert!(ok > 0 && denied > 0);
    assert_eq!(s.ask("POST", "load", "/").await.0, 200);
}

/// Two replicas serve one Gateway, each on its own address (as two Pods do, same
/// ports). The leader dies (SIGKILL) and routes are created while the Lease is still
/// its: the survivor serves them at once, without writing; once it takes the Lease it
/// writes every route's status and the listeners' `attachedRoutes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_one_gateway_and_a_new_leader_finishes_status() {
    let mut s = setup("gw-two").await;
    let b = s.second_replica("gw-b", "127.0.0.2").await;
    let replicas = [([127, 0, 0, 1], "gw-a"), ([127, 0, 0, 2], "gw-b")];
    s.open_route(NS, "both", "both.example.test", None).await;
    s.route_condition(NS, "both", "Accepted", "True", None)
        .await;
    within(Duration::from_secs(10), "both replicas answer", || async {
        let mut all = true;
        for (ip, _) in replicas {
            all &= s.ask_at(ip, "GET", "both", "/").await.0 == 200;
        }
        all
    })
    .await;

    // Provisioned-looking Services in the controller's namespace: another release's
    // (its own controllerName) and an orphan of ours. A new leader sweeps only ours.
    for (name, controller) in [
        (
            "other-release-gw",
            "portcullis.dev/gateway-controller-other",
        ),
        ("orphan-gw", portcullis::api::kube::gateway::CONTROLLER_NAME),
    ] {
        s.cluster
            .create::<Service>(
                Some(CONTROLLER_NS),
                json!({"metadata": {"name": name,
                        "labels": {"app.kubernetes.io/managed-by": "portcullis-gateway"},
                        "annotations": {"gateway.portcullis.dev/gateway": "infra/gone",
                                        "gateway.portcullis.dev/controller": controller}},
                       "spec": {"ports": [{"name": "p80", "port": 80, "targetPort": 20999}]}}),
            )
            .await;
    }
    let holder = || s.cluster.lease_holder();
    let leader = holder().await;
    assert!(["gw-a", "gw-b"].contains(&leader.as_str()), "{leader:?}");
    // The leader dies, as a crashed Pod does; routes arrive while the Lease is its.
    let (survivor, ip) = if leader == "gw-a" {
        drop(s.replica.take());
        (b, replicas[1].0)
    } else {
        drop(b);
        (s.replica.take().unwrap(), replicas[0].0)
    };
    let died = Instant::now();
    let routes: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    for r in &routes {
        s.open_route(NS, r, &format!("{r}.example.test"), None)
            .await;
    }
    let api: Api<HTTPRoute> = Api::namespaced(s.cluster.client.clone(), NS);
    within(
        Duration::from_secs(10),
        "the survivor serves the new routes before it leads",
        || async {
            let mut all = true;
            for r in &routes {
                all &= s.ask_at(ip, "GET", r, "/").await.0 == 200;
            }
            all
        },
    )
    .await;
    // The survivor may take over 13 s after the kill at the earliest (the 15 s Lease
    // from the last renewal it saw); past 11 s a slow machine may have let it.
    if died.elapsed() < Duration::from_secs(11) {
        assert_eq!(
            holder().await,
            leader,
            "the Lease is still the dead leader's"
        );
        for r in &routes {
            let route = api.get(r).await.unwrap();
            assert!(route.status.is_none(), "{r}: status before anyone leads");
        }
    } else {
        eprintln!(
            "the routes took {} ms to be served: too late to check that nobody leads yet",
            died.elapsed().as_millis()
        );
    }
    within(
        Duration::from_secs(30),
        "the survivor takes the Lease",
        || async { holder().await == survivor.identity },
    )
    .await;
    eprintln!(
        "FIGURE Gateway leader takeover after SIGKILL: {} ms after the kill",
        died.elapsed().as_millis()
    );
    for r in &routes {
        s.route_condition(NS, r, "Accepted", "True", None).await;
        let route = api.get(r).await.unwrap();
        let managers: Vec<String> = route
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.subresource.as_deref() == Some("status"))
            .filter_map(|m| m.manager)
            .collect();
        assert_eq!(
            managers,
            [format!("portcullis/{}", survivor.identity)],
            "{r}: only the new leader wrote its status"
        );
    }
    let gateways: Api<Gateway> = Api::namespaced(s.cluster.client.clone(), INFRA);
    let attached = || async {
        let gw = gateways.get("gw").await.unwrap();
        let status = serde_json::to_value(&gw.status).unwrap();
        status["listeners"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .map(|l| l["attachedRoutes"].clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let want = json!(routes.len() + 1);
    within(
        Duration::from_secs(20),
        "attachedRoutes counts every route on both listeners",
        || async { attached().await == [want.clone(), want.clone()] },
    )
    .await;
    let services: Api<Service> = Api::namespaced(s.cluster.client.clone(), CONTROLLER_NS);
    within(Duration::from_secs(20), "our orphan swept", || async {
        services.get_opt("orphan-gw").await.unwrap().is_none()
    })
    .await;
    assert!(
        services
            .get_opt("other-release-gw")
            .await
            .unwrap()
            .is_some(),
        "another release's Service was swept"
    );
}
