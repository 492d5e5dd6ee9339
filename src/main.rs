//! The `portcullis` command: wiring only. Each subcommand calls into the library.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use portcullis::api::app::{self, ControllerArgs};
use portcullis::api::telemetry::{self, LogFormat};

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
        kube: Box<ControllerArgs>,
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
        } => app::run(config, workers, kube).map_err(Failure::from),
        Command::Dev {
            port,
            metrics_port,
            idp_port,
        } => dev(port, metrics_port, idp_port),
        Command::Crd => {
            print!("{}", portcullis::api::kube::crd::crd_yaml());
            Ok(())
        }
        Command::Check { config } => match portcullis::api::config::check(&config) {
            Ok(report) => {
                print!("{report}");
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        Command::Policy {
            command: PolicyCommand::Eval { policy, input },
        } => policy_eval(&policy, &input),
    };
    telemetry::flush_logs();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Why a subcommand failed: a room's error, whose causes are its sources.
type Failure = Box<dyn Error>;

/// An error and its causes, `: `-separated, each said once: a cause whose text is
/// already in the line (an error that prints its source besides returning it, as
/// some of ours and many dependencies' do) is not repeated.
fn report(e: &dyn Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// A file named on the command line that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {}", .path.display())]
struct ReadError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn read(what: &'static str, path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn dev(https_port: u16, metrics_port: u16, idp_port: u16) -> Result<(), Failure> {
    telemetry::init_logging("info", LogFormat::Text)?;
    app::runtime()?.block_on(portcullis::api::dev::run(
        portcullis::api::dev::DevOptions {
            https_port,
            metrics_port,
            idp_port,
        },
    ))?;
    Ok(())
}

fn policy_eval(policy: &Path, input: &Path) -> Result<(), Failure> {
    let policy_text = read("policy", policy)?;
    let input_text = read("input", input)?;
    let out = portcullis::api::policy::cli::eval_cli(&policy_text, &input_text)?;
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(())
}
