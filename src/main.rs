//! The `portcullis` command: wiring only. Each subcommand calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use portcullis::app::DataPlaneSink;
use portcullis::app::{self, Settings};
use portcullis::auth::gate::{Auth, AuthSettings};
use portcullis::auth::provider::ProviderSettings;
use portcullis::auth::{CookieSecret, SigningKey};
use portcullis::config::Config;
use portcullis::kube::controller::ControllerSettings;
use portcullis::kube::index as kube_index;
use portcullis::kube::status::{Leadership, Publish, StatusSettings};
use portcullis::proxy::Limits;
use portcullis::proxy::tls::PemPair;
use portcullis::telemetry::{self, LogFormat};

/// The allocator: a proxy allocates and frees small buffers per request on every
/// worker thread, which mimalloc serves markedly faster than the system allocator
/// (measured in e2e/bench: see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kubernetes ingress controller with an identity-aware proxy inside.
#[derive(Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (and, with --kubernetes, the ingress controller).
    Run {
        /// Config file in Pomerium's format.
        #[arg(long, short, env = "PORTCULLIS_CONFIG")]
        config: Option<PathBuf>,
        /// Data-plane threads (0: one per CPU the process may use, cgroup limits
        /// included). Each serves whole connections on its own.
        #[arg(long, env = "PORTCULLIS_WORKERS", default_value_t = 0)]
        workers: usize,
        #[command(flatten)]
        kube: Box<KubeArgs>,
    },
    /// Try Portcullis locally: proxy, demo app and demo routes on loopback. Not for production.
    Dev {
        /// HTTPS port on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Admin port on 127.0.0.1 (/metrics, /healthz, /readyz, /debug/routes).
        #[arg(long, default_value_t = 9091)]
        metrics_port: u16,
        /// Port of the development identity provider on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        idp_port: u16,
    },
    /// Print the IdentityPolicy CustomResourceDefinition (what crds/ holds).
    Crd,
    /// Validate a config file and its policies without starting anything.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Work with policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// The ingress controller's flags (with `--kubernetes`).
#[derive(clap::Args)]
struct KubeArgs {
    /// Take routes from Ingresses and IdentityPolicies in the cluster (in-cluster
    /// credentials, or KUBECONFIG).
    #[arg(long)]
    kubernetes: bool,
    /// The IngressClass name this controller serves.
    #[arg(long, default_value = kube_index::DEFAULT_CLASS_NAME)]
    ingress_class: String,
    /// Watch only these namespaces (repeat the flag or give a comma list; default: all).
    #[arg(long, value_delimiter = ',')]
    watch_namespace: Vec<String>,
    /// Copy this Service's address (NAMESPACE/NAME) into Ingress status.
    #[arg(long, conflicts_with = "publish_status_address")]
    publish_service: Option<String>,
    /// Write these addresses (comma-separated IPs or host names) into Ingress status.
    #[arg(long, value_delimiter = ',')]
    publish_status_address: Vec<String>,
    /// The namespace of the leader-election Lease (this pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    controller_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// The leader-election Lease's name.
    #[arg(long, default_value = "portcullis-leader")]
    lease_name: String,
    /// The cluster's DNS domain (for `service-upstream`).
    #[arg(long, default_value = kube_index::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// Give a namespace the hosts a pattern covers: NAMESPACE=HOST or
    /// NAMESPACE=*.DOMAIN (repeat the flag). With any, this map alone decides which
    /// namespace may route on a host; without, the first Ingress to name a host gives it
    /// to its namespace.
    #[arg(long = "host-owner", value_name = "NAMESPACE=PATTERN")]
    host_owner: Vec<String>,
    /// Let every namespace add paths to every host (ingress-nginx's merge behaviour).
    /// For clusters where one team writes every Ingress.
    #[arg(long, conflicts_with = "host_owner")]
    shared_hosts: bool,
    /// Namespaces whose Ingresses may have rules without a host and a defaultBackend,
    /// which answer for every host (repeat or comma list; `*`: every namespace).
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACE")]
    catch_all_namespace: Vec<String>,
    /// Follow ExternalName Services (and FQDN EndpointSlices). Off: an Ingress whose
    /// backend is one is rejected. Loopback, link-local, metadata addresses and other
    /// namespaces' Services stay refused either way.
    #[arg(long)]
    allow_external_name_services: bool,
    /// Addresses no Ingress backend may reach, besides loopback, link-local,
    /// unspecified and multicast (CIDRs; repeat or comma list). Given, it replaces the
    /// default list: 169.254.169.254/32, fd00:ec2::254/128, 100.100.100.200/32.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    blocked_upstream_cidr: Vec<String>,
    /// TESTS ONLY, never in production: let Ingress backends reach loopback addresses
    /// (Portcullis's own listeners stay refused). Not settable from the Helm chart.
    #[arg(long, hide = true)]
    test_only_allow_loopback_upstreams: bool,
    /// Serve Gateway API: GatewayClasses of --gateway-controller-name, their Gateways
    /// and HTTPRoutes (the Gateway API CRDs must be installed).
    #[arg(long)]
    gateway_api: bool,
    /// `spec.controllerName` of the GatewayClasses this controller serves.
    #[arg(long, default_value = portcullis::kube::gateway::CONTROLLER_NAME)]
    gateway_controller_name: String,
    /// Local ports Gateways' sockets are given (FIRST-LAST), one per Gateway port.
    #[arg(long, default_value = "20000-29999")]
    gateway_port_range: String,
    /// The address Gateway sockets listen on.
    #[arg(long, default_value = "0.0.0.0")]
    gateway_bind_address: std::net::IpAddr,
    /// Labels of this controller's Pods (KEY=VALUE, repeat or comma list): the selector
    /// of the Service each Gateway gets.
    #[arg(long, value_delimiter = ',', value_name = "KEY=VALUE")]
    gateway_pod_selector: Vec<String>,
    /// `spec.type` of the Service each Gateway gets: ClusterIP, NodePort or
    /// LoadBalancer.
    #[arg(long, default_value = "ClusterIP")]
    gateway_service_type: String,
}

impl KubeArgs {
    /// What tenant endpoints may not reach.
    fn upstream_policy(&self) -> anyhow::Result<portcullis::routes::AddressPolicy> {
        let mut policy = portcullis::routes::AddressPolicy::default();
        if !self.blocked_upstream_cidr.is_empty() {
            policy.blocked = self
                .blocked_upstream_cidr
                .iter()
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
                .map(|c| {
                    // A bare address is a /32 or /128.
                    c.parse::<ipnet::IpNet>()
                        .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .with_context(|| format!("--blocked-upstream-cidr `{c}` is not a CIDR"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        policy.allow_loopback = self.test_only_allow_loopback_upstreams;
        Ok(policy)
    }

    /// Gateway API settings, when `--gateway-api` is on.
    fn gateway(&self) -> anyhow::Result<Option<kube_index::gateway::GatewaySettings>> {
        if !self.gateway_api {
            return Ok(None);
        }
        let (lo, hi) = self
            .gateway_port_range
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .filter(|(a, b)| a <= b && *a > 0)
            .with_context(|| {
                format!(
                    "--gateway-port-range `{}`: expected FIRST-LAST, e.g. 20000-29999",
                    self.gateway_port_range
                )
            })?;
        let mut pod_selector = std::collections::BTreeMap::new();
        for kv in self
            .gateway_pod_selector
            .iter()
            .filter(|s| !s.trim().is_empty())
        {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--gateway-pod-selector `{kv}`: expected KEY=VALUE"))?;
            pod_selector.insert(k.trim().to_string(), v.trim().to_string());
        }
        anyhow::ensure!(
            matches!(
                self.gateway_service_type.as_str(),
                "ClusterIP" | "NodePort" | "LoadBalancer"
            ),
            "--gateway-service-type `{}`: use ClusterIP, NodePort or LoadBalancer",
            self.gateway_service_type
        );
        Ok(Some(kube_index::gateway::GatewaySettings {
            controller_name: self.gateway_controller_name.clone(),
            local_ports: (lo, hi),
            pod_selector,
            service_type: self.gateway_service_type.clone(),
        }))
    }

    /// Who owns hosts.
    fn host_ownership(&self) -> anyhow::Result<kube_index::HostOwnership> {
        if self.shared_hosts {
            return Ok(kube_index::HostOwnership::Shared);
        }
        if self.host_owner.is_empty() {
            return Ok(kube_index::HostOwnership::FirstCome);
        }
        let grants = self
            .host_owner
            .iter()
            .map(|g| {
                kube_index::HostGrant::parse(g).map_err(|e| anyhow::anyhow!("--host-owner {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(kube_index::HostOwnership::Assigned(grants))
    }
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Evaluate a policy for an identity and request; prints allow, deny or sign-in first.
    Eval {
        /// The policy document (YAML or JSON).
        #[arg(long)]
        policy: PathBuf,
        /// The input: {"identity": {...}, "request": {...}, "time": "..."} as JSON.
        #[arg(long)]
        input: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for every client and server in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.command {
        Command::Run {
            config,
            workers,
            kube,
        } => run(config, workers, kube),
        Command::Dev {
            port,
            metrics_port,
            idp_port,
        } => dev(port, metrics_port, idp_port),
        Command::Crd => {
            print!("{}", portcullis::kube::crd::crd_yaml());
            Ok(())
        }
        Command::Check { config } => match portcullis::config::check(&config) {
            Ok(report) => {
                print!("{report}");
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("{e}")),
        },
        Command::Policy {
            command: PolicyCommand::Eval { policy, input },
        } => policy_eval(&policy, &input),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime for everything but the data plane (which has its own worker threads):
/// the controller, directory sync, the admin listener.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(config: Option<PathBuf>, workers: usize, kube: Box<KubeArgs>) -> anyhow::Result<()> {
    let (config, origin) = match &config {
        Some(path) => (
            Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
            path.display().to_string(),
        ),
        None if kube.kubernetes => {
            let env = |k: &str| std::env::var(k).ok();
            (
                Config::parse("", "(no config file)", &env).map_err(|e| anyhow::anyhow!("{e}"))?,
                "(no config file)".to_string(),
            )
        }
        None => anyhow::bail!(
            "give a config file with --config FILE (or PORTCULLIS_CONFIG), or use --kubernetes"
        ),
    };
    telemetry::init_logging(&config.log_level, config.log_format)?;
    for w in config.warnings() {
        match &w.route {
            Some(route) => tracing::warn!(route = %route, "{}", w.message),
            None => tracing::warn!("{}", w.message),
        }
    }
    let mut certificates = Vec::new();
    for c in &config.certificates {
        let read = |p: &PathBuf| {
            std::fs::read(p).with_context(|| format!("reading certificate file {}", p.display()))
        };
        certificates.push(PemPair {
            source_name: c.cert.display().to_string(),
            cert_pem: read(&c.cert)?,
            key_pem: read(&c.key)?,
        });
    }
    let model = config.model();
    tracing::info!(config = %origin, routes = model.routes.len(), kubernetes = kube.kubernetes,
        "starting");
    runtime()?.block_on(async {
        let auth = match auth_settings(&config)? {
            Some(a) => Some(Arc::new(Auth::new(a).await?)),
            None => None,
        };
        let settings = Settings {
            address: config.address,
            http_redirect_address: config.http_redirect_address,
            metrics_address: config.metrics_address,
            certificates: certificates.clone(),
            limits: limits(&config.connections),
            redirect_https_port: None,
            auth,
            directory: config.directory.clone(),
            ready_on_start: !kube.kubernetes,
            workers,
            logs: portcullis::proxy::LogFields {
                decision: config.authorize_log_fields,
                access: config.access_log_fields,
            },
            claim_headers: config
                .jwt_claims_headers
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
            upstream_policy: kube.upstream_policy()?,
        };
        let mut running = app::start(settings, &model).await?;
        if kube.kubernetes {
            let claim_headers = config
                .jwt_claims_headers
                .iter()
                .map(|(name, _)| name.to_string())
                .collect();
            start_controller(&mut running, *kube, model, certificates, claim_headers).await?;
        }
        app::Running::stop_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        Ok(())
    })
}

/// The data plane's client-side limits from the config's connection keys.
fn limits(c: &portcullis::config::ConnectionSettings) -> Limits {
    Limits {
        header_read_timeout: c.timeout_header_read,
        idle_timeout: c.timeout_idle,
        max_connections_per_worker: c.max_connections_per_worker,
        max_concurrent_requests_per_connection: c.max_concurrent_requests_per_connection,
        http2_max_concurrent_streams: c.http2_max_concurrent_streams,
        proxy_protocol: c.use_proxy_protocol,
        xff_num_trusted_hops: c.xff_num_trusted_hops,
        ..Limits::default()
    }
}

/// Connects to the cluster and starts the watchers and the status writer beside the
/// data plane.
async fn start_controller(
    running: &mut app::Running,
    args: KubeArgs,
    base: portcullis::routes::Model,
    base_certificates: Vec<PemPair>,
    claim_headers: Vec<String>,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster credentials or KUBECONFIG)")?;
    let publish = match (
        &args.publish_service,
        args.publish_status_address.is_empty(),
    ) {
        (Some(svc), _) => {
            let (namespace, name) = svc
                .split_once('/')
                .context("--publish-service takes NAMESPACE/NAME")?;
            Publish::Service {
                namespace: namespace.into(),
                name: name.into(),
            }
        }
        (None, false) => Publish::Addresses(args.publish_status_address.clone()),
        (None, true) => Publish::None,
    };
    let identity = args.pod_name.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "portcullis".into());
        format!("{host}-{}", std::process::id())
    });
    let index = kube_index::Settings {
        class_name: args.ingress_class.clone(),
        // Blanks are dropped, so only `""` (as a chart may pass) means every namespace.
        namespaces: args
            .watch_namespace
            .iter()
            .map(|ns| ns.trim().to_string())
            .filter(|ns| !ns.is_empty())
            .collect(),
        cluster_domain: args.cluster_domain.clone(),
        tenancy: kube_index::Tenancy {
            hosts: args.host_ownership()?,
            catch_all_namespaces: args
                .catch_all_namespace
                .iter()
                .map(|ns| ns.trim().to_string())
                .filter(|ns| !ns.is_empty())
                .collect(),
            reserved: kube_index::Reserved {
                sign_in: base
                    .authenticate_host
                    .iter()
                    .map(|h| h.host.clone())
                    .collect(),
                operator: base
                    .routes
                    .iter()
                    .map(|r| r.host.clone())
                    .filter(|h| *h != portcullis::routes::HostMatch::Any)
                    .collect(),
            },
            claim_headers,
            allow_external_names: args.allow_external_name_services,
            upstreams: args.upstream_policy()?,
            own_ports: [
                Some(running.https_addr),
                running.http_addr,
                running.admin_addr,
            ]
            .into_iter()
            .flatten()
            .map(|a| a.port())
            .collect(),
            controller_namespace: args.controller_namespace.clone(),
        },
        gateway: args.gateway()?,
        ..kube_index::Settings::default()
    };
    let index_gateway = index.gateway.clone();
    let gateway_sockets = index
        .gateway
        .is_some()
        .then(|| running.serve_gateways(args.gateway_bind_address));
    if args.test_only_allow_loopback_upstreams {
        tracing::warn!(
            "--test-only-allow-loopback-upstreams is set: Ingress backends may reach loopback              addresses; this flag exists for tests and must never be used in production"
        );
    }
    let (tx, rx) = tokio::sync::watch::channel(None);
    let sink = Arc::new(DataPlaneSink {
        table: running.table.clone(),
        metrics: running.metrics.clone(),
        certs: running.certs.clone(),
        ready: running.ready.clone(),
        base,
        base_certificates,
        translations: tx,
        gateway_sockets,
    });
    let status = StatusSettings {
        namespace: args.controller_namespace.clone(),
        lease_name: args.lease_name.clone(),
        identity,
        publish,
        gateway: index_gateway,
    };
    tracing::info!(identity = %status.identity, lease = %format!("{}/{}", status.namespace, status.lease_name),
        "starting the ingress controller");
    let shutdown = running.shutdown_signal();
    running.spawn(portcullis::kube::controller::run(
        client.clone(),
        ControllerSettings { index },
        sink,
        shutdown.clone(),
    ));
    running.spawn(portcullis::kube::status::run(
        client,
        status,
        rx,
        Leadership::default(),
        shutdown,
    ));
    Ok(())
}

/// Sign-in settings from the config, or `None` when no identity provider is configured.
/// Refuses to start with a partial provider configuration or a missing or weak
/// `cookie_secret`.
fn auth_settings(config: &Config) -> anyhow::Result<Option<AuthSettings>> {
    let idp = &config.idp;
    let given = [
        ("idp_provider_url", idp.provider_url.is_some()),
        ("idp_client_id", idp.client_id.is_some()),
        ("idp_client_secret", idp.client_secret.is_some()),
        (
            "authenticate_service_url",
            config.authenticate_service_url.is_some(),
        ),
    ];
    if given.iter().all(|(_, set)| !set) || !given[..3].iter().any(|(_, set)| *set) {
        if config.needs_sign_in() {
            tracing::warn!(
                "routes need sign-in but no identity provider is configured: they deny everyone"
            );
        }
        return Ok(None);
    }
    let missing: Vec<&str> = given
        .iter()
        .filter(|(_, set)| !set)
        .map(|(k, _)| *k)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "sign-in is partly configured; also set {}",
        missing.join(", ")
    );
    let secret = config.cookie.secret.as_ref().context(
        "cookie_secret is required with sign-in (32 random bytes, base64): \
         head -c32 /dev/urandom | base64",
    )?;
    let cookie_secret = CookieSecret::from_bytes(*secret.expose())
        .map_err(|e| anyhow::anyhow!("cookie_secret: {e}"))?;
    let signing_key = match &config.signing.signing_key {
        Some(pem) => {
            SigningKey::from_pem(pem.expose()).map_err(|e| anyhow::anyhow!("signing_key: {e}"))?
        }
        None => {
            tracing::warn!(
                "signing_key is not set: X-Portcullis-Jwt-Assertion is signed with a key made at \
                 start-up, so each replica and each restart has its own; set signing_key for \
                 production"
            );
            SigningKey::generate()
        }
    };
    let ca_pem = match &idp.ca_file {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading idp_ca_file {}", p.display()))?)
        }
        None => None,
    };
    let issuer = issuer_string(idp.provider_url.as_ref().expect("checked above"));
    let authenticate = config
        .authenticate_service_url
        .as_ref()
        .expect("checked above");
    let authenticate_url = issuer_string(authenticate);
    Ok(Some(AuthSettings {
        provider: ProviderSettings {
            issuer,
            client_id: idp.client_id.clone().expect("checked above"),
            client_secret: idp
                .client_secret
                .as_ref()
                .expect("checked above")
                .expose()
                .clone(),
            scopes: idp.scopes.clone(),
            redirect_url: format!("{authenticate_url}/oauth2/callback"),
            ca_pem,
            access_token_audiences: config.bearer.audiences.clone(),
            access_token_clients: config.bearer.clients.clone(),
        },
        authenticate_url,
        cookie_name: config.cookie.name.clone(),
        cookie_domain: config.cookie.domain.clone(),
        cookie_expire: config.cookie.expire,
        cookie_same_site: config.cookie.same_site,
        cookie_secret,
        signing_key,
        session_store: store_settings(&config.session_store)?,
        jwt_claims_headers: config.jwt_claims_headers.clone(),
        allowed_return_domains: config.allowed_return_domains.clone(),
        bearer_format: config.bearer.format,
    }))
}

/// The Redis session store's settings with its TLS files read; `None`: the cookie store.
fn store_settings(
    store: &portcullis::config::SessionStore,
) -> anyhow::Result<Option<portcullis::auth::store::StoreSettings>> {
    let portcullis::config::SessionStore::Redis(redis) = store else {
        return Ok(None);
    };
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("reading {key} {}", path.display()))
    };
    let ca_pem = match &redis.ca_file {
        Some(p) => Some(read("session_store_ca_file", p)?),
        None => None,
    };
    let client_cert = match (&redis.cert_file, &redis.key_file) {
        (Some(cert), Some(key)) => Some((
            read("session_store_cert_file", cert)?,
            read("session_store_key_file", key)?,
        )),
        _ => None,
    };
    Ok(Some(portcullis::auth::store::StoreSettings {
        url: redis.url.clone(),
        ca_pem,
        client_cert,
    }))
}

/// A URL as written, without the trailing `/` that `Uri` adds to a bare authority
/// (Okta's issuers have none, and issuers are compared exactly).
fn issuer_string(uri: &http::Uri) -> String {
    let text = uri.to_string();
    match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("/") => text.trim_end_matches('/').to_string(),
        _ => text,
    }
}

fn dev(https_port: u16, metrics_port: u16, idp_port: u16) -> anyhow::Result<()> {
    telemetry::init_logging("info", LogFormat::Text)?;
    runtime()?.block_on(portcullis::dev::run(portcullis::dev::DevOptions {
        https_port,
        metrics_port,
        idp_port,
    }))
}

fn policy_eval(policy: &PathBuf, input: &PathBuf) -> anyhow::Result<()> {
    let policy_text = std::fs::read_to_string(policy)
        .with_context(|| format!("reading policy {}", policy.display()))?;
    let input_text = std::fs::read_to_string(input)
        .with_context(|| format!("reading input {}", input.display()))?;
    let out = portcullis::policy::cli::eval_cli(&policy_text, &input_text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(())
}
