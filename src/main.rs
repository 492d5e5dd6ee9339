//! The `portcullis` command: wiring only. Each subcommand calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use portcullis::app::{self, Settings};
use portcullis::auth::gate::{Auth, AuthSettings};
use portcullis::auth::provider::ProviderSettings;
use portcullis::auth::{CookieSecret, SigningKey};
use portcullis::config::Config;
use portcullis::proxy::Limits;
use portcullis::proxy::tls::PemPair;
use portcullis::telemetry::{self, LogFormat};

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
        /// Take routes from Ingresses and IdentityPolicies in the cluster.
        #[arg(long)]
        kubernetes: bool,
    },
    /// Try Portcullis locally: proxy, demo app and demo routes on loopback. Not for production.
    Dev {
        /// HTTPS port on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Admin port on 127.0.0.1 (/metrics, /healthz, /readyz, /debug/routes).
        #[arg(long, default_value_t = 9091)]
        metrics_port: u16,
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
        Command::Run { config, kubernetes } => run(config, kubernetes),
        Command::Dev { port, metrics_port } => dev(port, metrics_port),
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(config: Option<PathBuf>, kubernetes: bool) -> anyhow::Result<()> {
    if kubernetes {
        anyhow::bail!(
            "--kubernetes: the ingress controller is not part of this build yet; \
             run with --config FILE"
        );
    }
    let path = config.context("give a config file with --config FILE (or PORTCULLIS_CONFIG)")?;
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    tracing::info!(config = %path.display(), routes = model.routes.len(), "starting");
    runtime()?.block_on(async {
        let auth = match auth_settings(&config)? {
            Some(a) => Some(Arc::new(Auth::new(a).await?)),
            None => None,
        };
        let settings = Settings {
            address: config.address,
            http_redirect_address: config.http_redirect_address,
            metrics_address: config.metrics_address,
            certificates,
            limits: Limits::default(),
            redirect_https_port: None,
            auth,
        };
        let running = app::start(settings, &model).await?;
        app::Running::stop_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        Ok(())
    })
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
    // Okta's custom authorization servers issue access tokens for `api://<name>`.
    let bearer_audiences = issuer
        .rsplit_once("/oauth2/")
        .map(|(_, name)| vec![format!("api://{name}")])
        .unwrap_or_default();
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
            bearer_audiences,
        },
        authenticate_url,
        cookie_name: config.cookie.name.clone(),
        cookie_domain: config.cookie.domain.clone(),
        cookie_expire: config.cookie.expire,
        cookie_same_site: config.cookie.same_site,
        cookie_secret,
        signing_key,
        session_store: match &config.session_store {
            portcullis::config::SessionStore::Cookie => None,
            portcullis::config::SessionStore::Redis(url) => Some(url.expose().clone()),
        },
        jwt_claims_headers: config.jwt_claims_headers.clone(),
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

fn dev(https_port: u16, metrics_port: u16) -> anyhow::Result<()> {
    telemetry::init_logging("info", LogFormat::Text)?;
    runtime()?.block_on(portcullis::dev::run(portcullis::dev::DevOptions {
        https_port,
        metrics_port,
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
