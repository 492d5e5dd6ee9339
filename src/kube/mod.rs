//! The Kubernetes side of Portcullis: the only room that knows Kubernetes types.
//!
//! [`crd`] defines the `IdentityPolicy` custom resource and generates its CRD. The
//! reflectors, the status writer and the leader election live here too (DESIGN.md
//! sections 1 and 4); they turn cluster objects into the plain [`crate::routes::Model`].

pub mod annotations;
pub mod controller;
pub mod crd;
pub mod gateway;
pub mod index;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::proxy::tls::{CertStore, PemPair};
use crate::routes::{LiveTable, Model};
use crate::telemetry::Metrics;
use index::Translation;

/// Everything `portcullis run --kubernetes` needs to know about the cluster side.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    pub index: index::Settings,
    pub status: status::StatusSettings,
}

/// Applies translations to this replica's data plane and hands them to the status
/// writer. Routes from the config file (if any) stay in front of the cluster's.
pub struct DataPlaneSink {
    pub table: LiveTable,
    pub metrics: Arc<Metrics>,
    pub certs: Arc<ArcSwap<CertStore>>,
    pub ready: Arc<AtomicBool>,
    /// Routes and certificates from the config file.
    pub base: Model,
    pub base_certificates: Vec<PemPair>,
    pub translations: watch::Sender<Option<Arc<Translation>>>,
}

impl controller::Sink for DataPlaneSink {
    fn apply(&self, t: &Translation, synced: bool) {
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
        let names = crate::app::self_signed_names(&model);
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
