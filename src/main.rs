//! The `portcullis` command: wiring only. Each subcommand calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::app::{self, Settings};
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
    let settings = Settings {
        address: config.address,
        http_redirect_address: config.http_redirect_address,
        metrics_address: config.metrics_address,
        certificates,
        limits: Limits::default(),
        redirect_https_port: None,
        auth: None,
    };
    let model = config.model();
    tracing::info!(config = %path.display(), routes = model.routes.len(), "starting");
    runtime()?.block_on(async {
        let running = app::start(settings, &model).await?;
        app::Running::stop_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        Ok(())
    })
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
