//! `portcullis run`: the config file (or the environment, with `--kubernetes`), the
//! data plane it describes, and the controller beside it until a stop signal.

use std::path::PathBuf;
use std::sync::Arc;

use super::controller::{ControllerArgs, start_controller};
use super::{AppError, Result, Settings};
use crate::auth::gate::{Auth, AuthSettings};
use crate::config::Config;
use crate::proxy::Limits;
use crate::proxy::tls::PemPair;
use crate::telemetry;

/// The runtime for everything but the data plane (which has its own worker threads):
/// the controller, directory sync, the admin listener.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AppError::Runtime)
}

pub fn run(config: Option<PathBuf>, workers: usize, kube: Box<ControllerArgs>) -> Result<()> {
    let (config, origin) = match &config {
        Some(path) => (Config::load(path)?, path.display().to_string()),
        None if kube.kubernetes => {
            let env = |k: &str| std::env::var(k).ok();
            (
                Config::parse("", "(no config file)", &env)?,
                "(no config file)".to_string(),
            )
        }
        None => return Err(AppError::NoConfig),
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
            std::fs::read(p).map_err(|source| AppError::ReadCertificate {
                path: p.clone(),
                source,
            })
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
        let auth = match AuthSettings::from_config(&config)? {
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
            logs: crate::proxy::LogFields {
                decision: config.authorize_log_fields,
                access: config.access_log_fields,
            },
            claim_headers: config
                .jwt_claims_headers
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
            upstream_policy: kube.upstream_policy()?,
            gateway_ports: match kube.kubernetes {
                true => kube
                    .gateway()?
                    .map(|g| (kube.gateway_bind_address, g.local_ports)),
                false => None,
            },
        };
        let mut running = super::start(settings, &model).await?;
        if kube.kubernetes {
            let claim_headers = config
                .jwt_claims_headers
                .iter()
                .map(|(name, _)| name.to_string())
                .collect();
            start_controller(&mut running, *kube, model, certificates, claim_headers).await?;
        }
        super::Running::stop_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        Ok(())
    })
}

/// The data plane's client-side limits from the config's connection keys.
pub(crate) fn limits(c: &crate::config::ConnectionSettings) -> Limits {
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
