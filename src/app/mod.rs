//! Starting and stopping the whole data plane: listeners, the live table, the admin
//! endpoints, and graceful shutdown. `main` and the integration tests both use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::proxy::tls::{CertStore, PemPair};
use crate::proxy::{self, Limits, Proxy};
use crate::routes::{LiveTable, Model};
use crate::telemetry::{self, AdminState, Metrics};

mod controller;
mod error;
mod run;

pub use controller::ControllerArgs;
pub use error::{AppError, Result};
pub(crate) use run::limits;
pub use run::{run, runtime};

/// Where to listen and with which certificates.
#[derive(Clone)]
pub struct Settings {
    pub address: SocketAddr,
    pub http_redirect_address: Option<SocketAddr>,
    pub metrics_address: Option<SocketAddr>,
    pub certificates: Vec<PemPair>,
    pub limits: Limits,
    /// Port named in HTTP→HTTPS redirects; defaults to the HTTPS listener's port.
    pub redirect_https_port: Option<u16>,
    /// Sign-in, when an identity provider is configured.
    pub auth: Option<Arc<crate::auth::gate::Auth>>,
    /// Okta directory sync (`directory:` in the config).
    pub directory: Option<crate::config::DirectorySettings>,
    /// Whether `/readyz` answers ready once `model` is applied (file mode), or waits
    /// for someone to set [`Running::ready`] (the controller, after its first full sync).
    pub ready_on_start: bool,
    /// Data-plane threads, each with its own single-threaded runtime accepting from
    /// the one HTTPS listener; 0: one per CPU the process may use.
    pub workers: usize,
    /// What the decision and access logs record (`authorize_log_fields`,
    /// `access_log_fields`).
    pub logs: crate::proxy::LogFields,
    /// The header names of `jwt_claims_headers` (stripped from every client request).
    pub claim_headers: Vec<http::HeaderName>,
    /// What endpoints chosen by Ingress authors may not reach (checked at connect
    /// time; Portcullis's own listeners are refused for every endpoint).
    pub upstream_policy: crate::routes::AddressPolicy,
    /// The Gateway sockets' bind address and local port range, when Gateway API is on:
    /// refused for every endpoint as the other listeners are.
    pub gateway_ports: Option<(std::net::IpAddr, (u16, u16))>,
}

/// A started data plane.
pub struct Running {
    pub https_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub table: LiveTable,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// The certificates served by SNI; swapped whole when Secrets change.
    pub certs: Arc<ArcSwap<CertStore>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The data plane, its worker threads and limits, for Gateway sockets.
    proxy: Arc<Proxy>,
    workers: Option<Vec<proxy::server::Worker>>,
    limits: Limits,
}

/// Binds every listener, applies `model` and starts serving. Errors name the
/// setting at fault (a port in use, a certificate that does not parse).
pub async fn start(settings: Settings, model: &Model) -> Result<Running> {
    let fallback_names = crate::proxy::tls::self_signed_names(model);
    let certs = CertStore::new(&settings.certificates, &fallback_names)?;
    if certs.has_generated_default() {
        tracing::warn!(
            names = ?fallback_names,
            "no certificates configured: serving a generated self-signed certificate \
             (browsers will warn; set `certificates` for production)"
        );
    }
    let certs = Arc::new(ArcSwap::from_pointee(certs));
    let mut metrics = Metrics::new();
    if let Some(auth) = &settings.auth {
        auth.register_metrics(metrics.registry_mut());
    }
    let directory = match &settings.directory {
        Some(d) => Some(crate::directory::Directory::start(
            d,
            metrics.registry_mut(),
        )?),
        None => None,
    };
    let metrics = Arc::new(metrics);
    let table = LiveTable::default();
    let ready = Arc::new(AtomicBool::new(false));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let https = proxy::server::bind(settings.address, "address").await?;
    let https_addr = https.local_addr().map_err(AppError::ListenerAddress)?;
    let http = match settings.http_redirect_address {
        Some(a) => Some(proxy::server::bind(a, "http_redirect_address").await?),
        None => None,
    };
    let http_addr = http
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(AppError::ListenerAddress)?;
    let admin = match settings.metrics_address {
        Some(a) => Some(telemetry::bind_admin(a).await?),
        None => None,
    };
    let admin_addr = admin
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(AppError::ListenerAddress)?;

    let own_listeners = [Some(https_addr), http_addr, admin_addr]
        .into_iter()
        .flatten()
        .collect();
    let mut proxy = Proxy::new(
        table.clone(),
        certs.clone(),
        metrics.clone(),
        settings.auth.clone(),
        directory,
    )
    .with_upstream_guard({
        let guard = crate::proxy::reach::UpstreamGuard::new(
            settings.upstream_policy.clone(),
            own_listeners,
        );
        match settings.gateway_ports {
            Some((ip, (first, last))) => guard.with_own_ports(ip, first, last),
            None => guard,
        }
    });
    proxy.logs = settings.logs;
    proxy.claim_headers = settings.claim_headers.clone();
    let proxy = Arc::new(proxy);
    let running_table = table.clone();
    let applied = table.apply(model);
    report_applied(&table, &metrics, applied);
    if settings.ready_on_start {
        ready.store(true, Ordering::Release);
    }

    let workers = worker_count(settings.workers);
    let (done, worker_handles) =
        proxy::server::spawn_workers(https, workers, &proxy, settings.limits, &shutdown_rx)?;
    for done in done {
        tasks.spawn(async move {
            let _ = done.await;
        });
    }
    tracing::info!(address = %https_addr, workers, "HTTPS listener ready");
    if let Some(listener) = http {
        let port = settings.redirect_https_port.unwrap_or(https_addr.port());
        tasks.spawn(proxy::serve_redirect(
            listener,
            proxy.clone(),
            port,
            settings.limits,
            metrics.clone(),
            shutdown_rx.clone(),
        ));
        tracing::info!(address = ?http_addr, "HTTP listener ready (redirects to HTTPS)");
    }
    if let Some(listener) = admin {
        let debug_table = table.clone();
        let debug_proxy = proxy.clone();
        let state = Arc::new(AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
            session_store: settings.auth.as_ref().and_then(|a| a.store_answered()),
            debug_routes: Box::new(move || {
                let snapshot = debug_table.load_full();
                serde_json::json!({
                    "generation": snapshot.generation,
                    "routes": snapshot.table.describe(debug_proxy.now_ms()),
                    "gateways": snapshot.table.describe_gateways(debug_proxy.now_ms()),
                    "diagnostics": snapshot.diagnostics.iter().map(|d| serde_json::json!({
                        "route": d.route_id, "message": d.message,
                    })).collect::<Vec<_>>(),
                })
            }),
        });
        tasks.spawn(telemetry::serve_admin(listener, state, shutdown_rx.clone()));
    }
    Ok(Running {
        https_addr,
        http_addr,
        admin_addr,
        table: running_table,
        metrics,
        ready,
        certs,
        shutdown,
        tasks,
        proxy,
        workers: Some(worker_handles),
        limits: settings.limits,
    })
}

impl Running {
    /// Swaps in a table built from `model`; in-flight requests finish on the old one.
    pub fn apply(&self, model: &Model) {
        let applied = self.table.apply(model);
        report_applied(&self.table, &self.metrics, applied);
    }

    /// A receiver that turns true when shutdown starts, for tasks started beside the
    /// data plane (the controller).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Runs a task until shutdown, awaited by [`Running::shutdown`].
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&mut self, task: F) {
        self.tasks.spawn(task);
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), and
    /// returns when every listener is done.
    /// Starts serving Gateway sockets on `bind` (the controller, with Gateway API on):
    /// each set sent on the returned channel replaces the sockets served. Once only.
    pub fn serve_gateways(
        &mut self,
        bind: std::net::IpAddr,
    ) -> watch::Sender<Arc<Vec<proxy::gateway_sockets::SocketSpec>>> {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        if let Some(workers) = self.workers.take() {
            self.tasks.spawn(proxy::gateway_sockets::run(
                bind,
                self.proxy.clone(),
                workers,
                self.limits,
                rx,
                self.shutdown.subscribe(),
            ));
        }
        tx
    }

    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        // The workers wait for the sockets these tokens stand for.
        self.workers = None;
        while self.tasks.join_next().await.is_some() {}
    }

    /// Resolves when the process is asked to stop (SIGINT or SIGTERM).
    pub async fn stop_signal() {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    }
}

/// `requested`, or one per CPU the process may use (cgroup limits included).
fn worker_count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn report_applied(table: &LiveTable, metrics: &Metrics, applied: crate::routes::Applied) {
    metrics.table_swapped(
        applied.generation,
        applied.routes,
        applied.build_time.as_secs_f64(),
    );
    let snapshot = table.load();
    for d in &snapshot.diagnostics {
        tracing::warn!(route = %d.route_id, "{}", d.message);
    }
    tracing::info!(
        generation = applied.generation,
        routes = applied.routes,
        build_ms = applied.build_time.as_secs_f64() * 1000.0,
        "routing table applied"
    );
}
