//! The ingress controller beside the data plane: its flags, the index settings they
//! make, and the sink through which translations reach this replica's data plane.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{AppError, Result};
use crate::kube::controller::ControllerSettings;
use crate::kube::index as kube_index;
use crate::kube::status::{Leadership, Publish, StatusSettings};
use crate::proxy::gateway_sockets::SocketSpec;
use crate::proxy::tls::{CertStore, PemPair};

/// The ingress controller's flags (with `--kubernetes`).
#[derive(clap::Args)]
pub struct ControllerArgs {
    /// Take routes from Ingresses and IdentityPolicies in the cluster (in-cluster
    /// credentials, or KUBECONFIG).
    #[arg(long)]
    pub kubernetes: bool,
    /// This controller's IngressClass name: what the legacy `kubernetes.io/ingress.class`
    /// annotation must say. Which Ingresses are served is decided by their class's
    /// `spec.controller` (`--ingress-controller-name`).
    #[arg(long, default_value = kube_index::DEFAULT_CLASS_NAME)]
    ingress_class: String,
    /// `spec.controller` of the IngressClasses this controller serves: Ingresses whose
    /// class names another controller are untouched. Two releases on one cluster each
    /// take their own (and their own `--lease-name`).
    #[arg(long, default_value = kube_index::CONTROLLER_NAME)]
    ingress_controller_name: String,
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
    #[arg(long, default_value = crate::kube::gateway::CONTROLLER_NAME)]
    gateway_controller_name: String,
    /// Local ports Gateways' sockets are given (FIRST-LAST), one per Gateway port.
    #[arg(long, default_value = "20000-29999")]
    gateway_port_range: String,
    /// The address Gateway sockets listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub(super) gateway_bind_address: std::net::IpAddr,
    /// Labels of this controller's Pods (KEY=VALUE, repeat or comma list): the selector
    /// of the Service each Gateway gets.
    #[arg(long, value_delimiter = ',', value_name = "KEY=VALUE")]
    gateway_pod_selector: Vec<String>,
    /// `spec.type` of the Service each Gateway gets: ClusterIP, NodePort or
    /// LoadBalancer.
    #[arg(long, default_value = "ClusterIP")]
    gateway_service_type: String,
}

impl ControllerArgs {
    /// What tenant endpoints may not reach.
    pub fn upstream_policy(&self) -> Result<crate::routes::AddressPolicy> {
        let mut policy = crate::routes::AddressPolicy::default();
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
                        .map_err(|source| AppError::BlockedUpstreamCidr {
                            value: c.to_string(),
                            source,
                        })
                })
                .collect::<Result<_>>()?;
        }
        policy.allow_loopback = self.test_only_allow_loopback_upstreams;
        Ok(policy)
    }

    /// Gateway API settings, when `--gateway-api` is on.
    pub(super) fn gateway(&self) -> Result<Option<kube_index::gateway::GatewaySettings>> {
        if !self.gateway_api {
            return Ok(None);
        }
        let (lo, hi) = self
            .gateway_port_range
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .filter(|(a, b)| a <= b && *a > 0)
            .ok_or_else(|| AppError::GatewayPortRange(self.gateway_port_range.clone()))?;
        let mut pod_selector = std::collections::BTreeMap::new();
        for kv in self
            .gateway_pod_selector
            .iter()
            .filter(|s| !s.trim().is_empty())
        {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| AppError::GatewayPodSelector(kv.clone()))?;
            pod_selector.insert(k.trim().to_string(), v.trim().to_string());
        }
        if !matches!(
            self.gateway_service_type.as_str(),
            "ClusterIP" | "NodePort" | "LoadBalancer"
        ) {
            return Err(AppError::GatewayServiceType(
                self.gateway_service_type.clone(),
            ));
        }
        Ok(Some(kube_index::gateway::GatewaySettings {
            controller_name: self.gateway_controller_name.clone(),
            local_ports: (lo, hi),
            pod_selector,
            service_type: self.gateway_service_type.clone(),
        }))
    }

    /// Who owns hosts.
    fn host_ownership(&self) -> Result<kube_index::HostOwnership> {
        if self.shared_hosts {
            return Ok(kube_index::HostOwnership::Shared);
        }
        if self.host_owner.is_empty() {
            return Ok(kube_index::HostOwnership::FirstCome);
        }
        let grants = self
            .host_owner
            .iter()
            .map(|g| kube_index::HostGrant::parse(g).map_err(AppError::HostOwner))
            .collect::<Result<_>>()?;
        Ok(kube_index::HostOwnership::Assigned(grants))
    }
}

/// Connects to the cluster and starts the watchers and the status writer beside the
/// data plane.
pub async fn start_controller(
    running: &mut super::Running,
    args: ControllerArgs,
    base: crate::routes::Model,
    base_certificates: Vec<PemPair>,
    claim_headers: Vec<String>,
) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(AppError::Kubernetes)?;
    let publish = match (
        &args.publish_service,
        args.publish_status_address.is_empty(),
    ) {
        (Some(svc), _) => {
            let (namespace, name) = svc
                .split_once('/')
                .ok_or_else(|| AppError::PublishService(svc.clone()))?;
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
        controller_name: args.ingress_controller_name.clone(),
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
                    .filter(|h| *h != crate::routes::HostMatch::Any)
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
    running.spawn(crate::kube::controller::run(
        client.clone(),
        ControllerSettings { index },
        sink,
        shutdown.clone(),
    ));
    running.spawn(crate::kube::status::run(
        client,
        status,
        rx,
        Leadership::default(),
        shutdown,
    ));
    Ok(())
}

// === impl DataPlaneSink ===

/// Applies translations to this replica's data plane and hands them to the status
/// writer. Routes from the config file (if any) stay in front of the cluster's.
pub struct DataPlaneSink {
    pub table: crate::routes::LiveTable,
    pub metrics: Arc<crate::telemetry::Metrics>,
    pub certs: Arc<arc_swap::ArcSwap<CertStore>>,
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// Routes and certificates from the config file.
    pub base: crate::routes::Model,
    pub base_certificates: Vec<PemPair>,
    pub translations: tokio::sync::watch::Sender<Option<Arc<crate::kube::index::Translation>>>,
    /// The Gateway sockets to serve (with Gateway API on).
    pub gateway_sockets: Option<tokio::sync::watch::Sender<Arc<Vec<SocketSpec>>>>,
}

impl crate::kube::controller::Sink for DataPlaneSink {
    fn apply(&self, t: &crate::kube::index::Translation, synced: bool) {
        let mut model = t.model.clone();
        let mut routes = self.base.routes.clone();
        routes.append(&mut model.routes);
        model.routes = routes;
        model.default_backend = self.base.default_backend.clone().or(model.default_backend);
        model.authenticate_host = self.base.authenticate_host.clone();
        model
            .exclusive_hosts
            .extend(self.base.exclusive_hosts.iter().cloned());
        let applied = self.table.apply(&model);
        let regexes = applied.regexes;
        self.metrics.table_swapped(
            applied.generation,
            applied.routes,
            applied.build_time.as_secs_f64(),
        );
        for d in &self.table.load().diagnostics {
            tracing::debug!(route = %d.route_id, "{}", d.message);
        }
        // The config file's certificates serve all their names and give the default;
        // Ingress Secrets serve only the hosts their namespace owns, never the default.
        let names = crate::proxy::tls::self_signed_names(&model);
        let (store, errors) = CertStore::scoped(
            &self.base_certificates,
            &t.certificates,
            &t.default_certificate_hosts,
            &names,
        );
        for e in errors {
            tracing::warn!(error = %e, "skipping a TLS certificate");
        }
        self.certs.store(Arc::new(store));
        if let Some(sockets) = &self.gateway_sockets {
            let specs = gateway_sockets(&t.gateway);
            sockets.send_if_modified(|current| {
                let changed = **current != specs;
                if changed {
                    *current = Arc::new(specs);
                }
                changed
            });
        }
        tracing::info!(
            generation = applied.generation,
            routes = applied.routes,
            certificates = self.base_certificates.len() + t.certificates.len(),
            build_ms = applied.build_time.as_secs_f64() * 1000.0,
            regexes_compiled = regexes.compiled,
            regexes_reused = regexes.reused,
            regexes_shared = regexes.shared,
            "routing table applied from the cluster"
        );
        if synced && !self.ready.swap(true, Ordering::AcqRel) {
            tracing::info!("ready: the first full sync is in the routing table");
        }
        self.translations.send_replace(Some(Arc::new(t.clone())));
    }
}

/// The sockets a translation's Gateway ports need, with their certificates.
fn gateway_sockets(t: &kube_index::gateway::GatewayTranslation) -> Vec<SocketSpec> {
    t.ports
        .iter()
        .map(|p| SocketSpec {
            local_port: p.local_port,
            port: p.port,
            tls: p.tls,
            id: p.id.clone(),
            certificates: t
                .certificates
                .iter()
                .filter(|c| c.local_port == p.local_port)
                .flat_map(|c| c.pairs.iter().map(|(_, pair)| pair.clone()))
                .collect(),
        })
        .collect()
}
