//! A private kube-apiserver + etcd (e2e/cluster) and `portcullis run --kubernetes`
//! replicas against it, for the controller tests (tests/controller.rs,
//! tests/tenancy.rs).
//!
//! Needs Go on PATH the first time (e2e/cluster builds and caches kube-apiserver and
//! etcd); later runs start a cluster in about three seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, ListParams, PostParams};
use portcullis::api::kube::crd::IdentityPolicy;
use portcullis::api::proxy::tls::PemPair;
use serde_json::{Value, json};

use super::{H1, TestPki, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const PUBLISHED: &str = "203.0.113.10";
pub const NS: &str = "apps";
pub const CONTROLLER_NS: &str = "portcullis-system";

/// A private test cluster, stopped on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

impl Cluster {
    pub async fn up(tag: &str) -> Cluster {
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

    /// A client acting as an Ingress author of `namespace` alone: the token of its own
    /// ServiceAccount `author` (TokenRequest), with a Role that lets it manage
    /// Ingresses, Services, Secrets and IdentityPolicies there and read Events. The
    /// namespace is created if need be.
    pub async fn tenant(&self, namespace: &str) -> kube::Client {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;
        use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces.get_opt(namespace).await.unwrap().is_none() {
            self.create_cluster_scoped::<Namespace>(json!({"metadata": {"name": namespace}}))
                .await;
        }
        self.create::<ServiceAccount>(Some(namespace), json!({"metadata": {"name": "author"}}))
            .await;
        self.create::<Role>(
            Some(namespace),
            json!({"metadata": {"name": "ingress-author"}, "rules": [
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["*"]},
                {"apiGroups": [""], "resources": ["services", "secrets"], "verbs": ["*"]},
                {"apiGroups": ["portcullis.dev"], "resources": ["identitypolicies"], "verbs": ["*"]},
                {"apiGroups": ["events.k8s.io", ""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
            ]}),
        )
        .await;
        self.create::<RoleBinding>(
            Some(namespace),
            json!({"metadata": {"name": "ingress-author"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ingress-author"},
                   "subjects": [{"kind": "ServiceAccount", "name": "author", "namespace": namespace}]}),
        )
        .await;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request: TokenRequest =
            serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
                .unwrap();
        let token = accounts
            .create_token_request("author", &PostParams::default(), &request)
            .await
            .unwrap()
            .status
            .expect("a token")
            .token;
        // The admin kubeconfig with the tenant's token instead of the admin's.
        let admin = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let text: String = admin
            .lines()
            .map(|l| match l.trim_start().strip_prefix("token:") {
                Some(_) => format!("    token: {token}"),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = self.dir.join(format!("kubeconfig-{namespace}"));
        std::fs::write(&path, text).unwrap();
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    pub fn api<K>(&self, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns.unwrap_or(NS))
    }

    pub async fn create<K>(&self, ns: Option<&str>, obj: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> + Resource,
        K::DynamicType: Default,
    {
        create_in(&self.api::<K>(ns), obj).await
    }

    pub async fn create_cluster_scoped<K>(&self, obj: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope> + Resource,
        K::DynamicType: Default,
    {
        create_in(&Api::<K>::all(self.client.clone()), obj).await
    }

    /// An ExternalName Service `echo` pointing at `localhost` (the API server refuses
    /// loopback addresses in EndpointSlices).
    pub async fn echo_service(&self, port: u16) {
        self.create::<Service>(
            Some(NS),
            json!({"metadata": {"name": "echo"},
                   "spec": {"type": "ExternalName", "externalName": "localhost",
                            "ports": [{"name": "http", "port": port}]}}),
        )
        .await;
    }

    pub async fn ingress(
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

    pub async fn policy(&self, name: &str, rules: Value) {
        self.create::<IdentityPolicy>(
            Some(NS),
            json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "IdentityPolicy",
                   "metadata": {"name": name}, "spec": {"rules": rules}}),
        )
        .await;
    }

    /// The leader Lease's spec (empty while no replica holds it).
    pub async fn lease(&self) -> k8s_openapi::api::coordination::v1::LeaseSpec {
        self.api::<k8s_openapi::api::coordination::v1::Lease>(Some(CONTROLLER_NS))
            .get_opt("portcullis-leader")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .unwrap_or_default()
    }

    /// The leader's identity (`--pod-name`); empty while no replica holds the Lease.
    pub async fn lease_holder(&self) -> String {
        self.lease().await.holder_identity.unwrap_or_default()
    }

    pub async fn events_for(&self, kind: &str, name: &str) -> Vec<(String, String, String)> {
        self.events_in(NS, kind, name).await
    }

    /// `(type, reason, note)` of the Events about `kind` `namespace`/`name`.
    pub async fn events_in(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Vec<(String, String, String)> {
        let list = self
            .api::<Event>(Some(namespace))
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
pub trait Resource:
    Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug
{
}
impl<K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug> Resource for K {}

pub async fn create_in<K: Resource>(api: &Api<K>, obj: Value) -> K {
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
pub struct Replica {
    child: Option<Child>,
    pub https: SocketAddr,
    pub admin: u16,
    pub identity: String,
    pub log: PathBuf,
}

/// How a [`Replica`] runs besides the defaults.
pub struct ReplicaOptions<'a> {
    /// Served from the config file (`certificates:`); `None`: no configured certificate.
    pub certificate: Option<&'a PemPair>,
    /// More config file lines (top-level keys).
    pub config: &'a str,
    /// More `portcullis run` flags.
    pub args: &'a [&'a str],
}

/// The flags the tests' `localhost` ExternalName upstreams need (the API server refuses
/// loopback EndpointSlice addresses).
pub const LOOPBACK_UPSTREAMS: &[&str] = &[
    "--allow-external-name-services",
    "--test-only-allow-loopback-upstreams",
];

impl Replica {
    /// A replica serving the test certificate, with loopback upstreams allowed.
    pub async fn start(cluster: &Cluster, identity: &str, pki: &TestPki) -> Replica {
        let options = ReplicaOptions {
            certificate: Some(&pki.server),
            config: "",
            args: LOOPBACK_UPSTREAMS,
        };
        Replica::start_with(cluster, identity, &options).await
    }

    pub async fn start_with(
        cluster: &Cluster,
        identity: &str,
        options: &ReplicaOptions<'_>,
    ) -> Replica {
        Replica::start_general(cluster, identity, options, &cluster.kubeconfig, free_port()).await
    }

    /// A replica that reaches the API server as `kubeconfig` says (e.g. through a proxy).
    pub async fn start_through(
        cluster: &Cluster,
        identity: &str,
        options: &ReplicaOptions<'_>,
        kubeconfig: &std::path::Path,
    ) -> Replica {
        Replica::start_general(cluster, identity, options, kubeconfig, free_port()).await
    }

    /// [`Replica::start_with`] on a chosen HTTPS port (one a provider's redirect URIs
    /// already name).
    pub async fn start_on(
        cluster: &Cluster,
        identity: &str,
        options: &ReplicaOptions<'_>,
        https: u16,
    ) -> Replica {
        Replica::start_general(cluster, identity, options, &cluster.kubeconfig, https).await
    }

    /// Everything chosen: the API server as `kubeconfig` says, HTTPS on `https`.
    pub async fn start_general(
        cluster: &Cluster,
        identity: &str,
        options: &ReplicaOptions<'_>,
        kubeconfig: &std::path::Path,
        https: u16,
    ) -> Replica {
        let admin = free_port();
        let dir = &cluster.dir;
        let mut text = format!(
            "address: 127.0.0.1:{https}\nmetrics_address: 127.0.0.1:{admin}\n{}\n",
            options.config
        );
        if let Some(pair) = options.certificate {
            let cert = dir.join(format!("{identity}.crt"));
            let key = dir.join(format!("{identity}.key"));
            std::fs::write(&cert, &pair.cert_pem).unwrap();
            std::fs::write(&key, &pair.key_pem).unwrap();
            text.push_str(&format!(
                "certificates:\n  - cert: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        let config = dir.join(format!("{identity}.yaml"));
        std::fs::write(&config, text).unwrap();
        let log = dir.join(format!("{identity}.log"));
        let child = Command::new(BIN)
            .args(["run", "--kubernetes", "--config"])
            .arg(&config)
            .args([
                "--publish-status-address",
                PUBLISHED,
                "--controller-namespace",
                CONTROLLER_NS,
            ])
            .args(options.args)
            .args(["--pod-name", identity])
            .env("KUBECONFIG", kubeconfig)
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

    /// The replica's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::get(format!("http://127.0.0.1:{}{path}", self.admin))
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.admin_get("/readyz").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready:\n{}", self.identity, self.log_tail());
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops with SIGTERM, as Kubernetes does, and waits for the drain.
    pub fn stop(&mut self) {
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

    pub async fn route_count(&self) -> usize {
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
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
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

pub async fn status_of(
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

/// Steady GET load on `/` over keep-alive connections, counting answers: 200, 403 and
/// anything else (a failure), until [`Load::stop`].
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    counts: Arc<[std::sync::atomic::AtomicU64; 3]>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub async fn start(
        connections: usize,
        addr: SocketAddr,
        host: &str,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Load {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counts: Arc<[std::sync::atomic::AtomicU64; 3]> = Arc::new(Default::default());
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let mut c = H1::connect(addr, host, tls.clone()).await;
            let (stop, counts) = (stop.clone(), counts.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let slot = match c.get("/").await {
                        Ok(a) if a.status == 200 => 0,
                        Ok(a) if a.status == 403 => 1,
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Relaxed);
                }
            }));
        }
        Load {
            stop,
            counts,
            tasks,
        }
    }

    /// Stops and returns `(allowed, denied, failed)`.
    pub async fn stop(self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stop.store(true, Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let [ok, denied, failed] = &*self.counts;
        (ok.load(Relaxed), denied.load(Relaxed), failed.load(Relaxed))
    }
}

/// The first `status.loadBalancer.ingress[].ip` of an Ingress.
pub fn ingress_address(ing: &Ingress) -> Option<String> {
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

/// The field managers of the Ingress's status subresource.
pub fn status_managers(ing: &Ingress) -> Vec<String> {
    ing.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect()
}
