//! The ingress controller beside the data plane: its flags, the index settings they
//! make, and the sink through which translations reach this replica's data plane.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;

use crate::kube::controller::ControllerSettings;
use crate::kube::index as kube_index;
use crate::kube::status::{Leadership, Publish, StatusSettings};
use crate::proxy::tls::{CertStore, PemPair};

/// The ingress controller's flags (with `--kubernetes`).
#[derive(clap::Args)]
pub struct ControllerArgs {
    /// Take routes from Ingresses and IdentityPolicies in the cluster (in-cluster
    /// credentials, or KUBECONFIG).
    #[arg(long)]
    pub kubernetes: bool,
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
}

impl ControllerArgs {
    /// What tenant endpoints may not reach.
    pub fn upstream_policy(&self) -> anyhow::Result<crate::routes::AddressPolicy> {
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
                        .with_context(|| format!("--blocked-upstream-cidr `{c}` is not a CIDR"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        policy.allow_loopback = self.test_only_allow_loopback_upstreams;
        Ok(policy)
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

/// Connects to the cluster and starts the watchers and the status writer beside the
/// data plane.
pub async fn start_controller(
    running: &mut super::Running,
    args: ControllerArgs,
    base: crate::routes::Model,
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
        ..kube_index::Settings::default()
    };
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
    });
    let status = StatusSettings {
        namespace: args.controller_namespace.clone(),
        lease_name: args.lease_name.clone(),
        identity,
        publish,
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
