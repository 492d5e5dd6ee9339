//! Why Portcullis could not start. Each variant says what failed and, where the cause
//! does not already name it, what to change; the cause is its source, printed after it
//! by `main`. The room errors beneath (a listener, logging, sign-in, certificates) keep
//! their own messages.

use std::path::PathBuf;

use crate::auth::gate::AuthStartError;
use crate::auth::settings::AuthConfigError;
use crate::config::ConfigError;
use crate::proxy::ServeError;
use crate::proxy::tls::CertError;
use crate::server::BindError;
use crate::telemetry::LogError;

/// Why `portcullis run` (or the data plane under `portcullis dev`) could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("give a config file with --config FILE (or PORTCULLIS_CONFIG), or use --kubernetes")]
    NoConfig,
    /// Every problem in the config file, one per line with its place: they stand on
    /// their own, as `portcullis check` prints them.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start logging")]
    Logging(#[from] LogError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot read certificate file {} (named in `certificates`)", .path.display())]
    ReadCertificate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot use a certificate from `certificates` (each needs a PEM certificate chain \
         and its private key)"
    )]
    Certificate(#[from] CertError),
    #[error("cannot start sign-in with the config's keys")]
    SignInSettings(#[from] AuthConfigError),
    #[error("cannot start sign-in")]
    SignIn(#[from] AuthStartError),
    #[error("cannot start directory sync (check `directory`)")]
    Directory(#[from] crate::directory::Error),
    #[error("cannot start a listener (free the port, or set another address)")]
    Bind(#[from] BindError),
    #[error("cannot read the address a listener is bound to")]
    ListenerAddress(#[source] std::io::Error),
    #[error("cannot start the data plane")]
    Serve(#[from] ServeError),
    #[error("cannot connect to Kubernetes (in-cluster credentials or KUBECONFIG)")]
    Kubernetes(#[source] kube::Error),
    #[error("--blocked-upstream-cidr `{value}` is not a CIDR")]
    BlockedUpstreamCidr {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("--publish-service `{0}`: expected NAMESPACE/NAME")]
    PublishService(String),
    #[error("--host-owner {0}")]
    HostOwner(String),
    #[error("--gateway-port-range `{0}`: expected FIRST-LAST, e.g. 20000-29999")]
    GatewayPortRange(String),
    #[error("--gateway-pod-selector `{0}`: expected KEY=VALUE")]
    GatewayPodSelector(String),
    #[error("--gateway-service-type `{0}`: use ClusterIP, NodePort or LoadBalancer")]
    GatewayServiceType(String),
}

/// The room's result.
pub type Result<T, E = AppError> = std::result::Result<T, E>;
