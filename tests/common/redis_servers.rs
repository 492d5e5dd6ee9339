//! Real `redis-server` processes on loopback for the session store tests: plain, TLS
//! (with a test CA, optionally asking for client certificates), a Sentinel set, and a
//! three-node Cluster. Each runs in the test's own directory and dies with its [`Proc`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::signin_env::{Dir, pem_of};
use super::{Proc, free_port, issue, pki};

/// One `redis-server` (or sentinel) and how it was started, so it can be started again
/// with the same data.
pub struct Server {
    pub proc: Option<Proc>,
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl Server {
    /// Starts `redis-server` with `args` and waits until `port` accepts connections.
    pub fn start(dir: &Dir, port: u16, args: Vec<String>) -> Server {
        let log = dir.0.join(format!("redis-{port}.log"));
        let mut s = Server {
            proc: None,
            port,
            args,
            log,
        };
        s.restart();
        s
    }

    /// Starts it (again), with the same arguments and directory.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (e2e/test-all installs it)");
        self.proc = Some(Proc(child));
        wait_port(self.port);
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("running").0.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// SIGTERM (Redis writes its AOF and exits), and waits for the exit.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let mut p = self.proc.take().unwrap();
        let _ = p.0.wait();
    }

    /// SIGKILL, at once.
    pub fn kill(&mut self) {
        self.proc = None;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits (up to 10 s) until something listens on `port`.
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The arguments every test server gets: loopback, no RDB snapshots.
pub fn base_args(port: u16, dir: &Dir) -> Vec<String> {
    let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--dir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(dir.0.display().to_string());
    args.extend(["--port".to_string(), port.to_string()]);
    args
}

/// `redis-cli -p port ARGS…` (plain TCP); its output, trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_with(port, &[], args)
}

/// `redis-cli` with extra connection options (`--tls`, `--cacert`, `-c`, …).
pub fn cli_with(port: u16, options: &[&str], args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(options)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `check` every 100 ms for up to `within`; panics with `what` when it never holds.
pub fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A test CA, a server certificate for `127.0.0.1` only (so `localhost` is a wrong
/// name), and a client certificate, as PEM files in `dir`.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsFiles {
    pub fn new(dir: &Dir) -> TlsFiles {
        let pki = pki(&["127.0.0.1"]);
        let client = issue(&pki, &["portcullis-client"]);
        TlsFiles {
            ca: dir.write("redis-ca.pem", &pem_of(&pki.ca_der)),
            server_cert: dir.write("redis-server.crt", &pki.server.cert_pem),
            server_key: dir.write("redis-server.key", &pki.server.key_pem),
            client_cert: dir.write("redis-client.crt", &client.cert_pem),
            client_key: dir.write("redis-client.key", &client.key_pem),
        }
    }

    /// `redis-server` arguments for TLS only on `port`; `clients`: ask for client
    /// certificates.
    pub fn server_args(&self, port: u16, clients: bool) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            p(&self.server_cert),
            "--tls-key-file".into(),
            p(&self.server_key),
            "--tls-ca-cert-file".into(),
            p(&self.ca),
            "--tls-auth-clients".into(),
            if clients { "yes" } else { "no" }.into(),
        ]
    }

    /// `redis-cli` options for a TLS connection with the client certificate.
    pub fn cli_options(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca.display().to_string(),
            "--cert".into(),
            self.client_cert.display().to_string(),
            "--key".into(),
            self.client_key.display().to_string(),
        ]
    }
}

/// A Sentinel set: one primary, one replica, three sentinels watching `mymaster`
/// (quorum 2, down after 1 s).
pub struct SentinelSet {
    pub primary: Server,
    pub replica: Server,
    pub sentinels: Vec<Server>,
}

impl SentinelSet {
    pub fn start(dir: &Dir) -> SentinelSet {
        let (p, r) = (free_port(), free_port());
        let primary = Server::start(dir, p, base_args(p, dir));
        let mut replica_args = base_args(r, dir);
        replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        let replica = Server::start(dir, r, replica_args);
        let sentinels = (0..3)
            .map(|i| {
                let port = free_port();
                let conf = dir.write(
                    &format!("sentinel-{i}.conf"),
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor mymaster 127.0.0.1 {p} 2\n\
                         sentinel down-after-milliseconds mymaster 1000\n\
                         sentinel failover-timeout mymaster 10000\n",
                        dir = dir.0.display()
                    )
                    .as_bytes(),
                );
                Server::start(
                    dir,
                    port,
                    vec![conf.display().to_string(), "--sentinel".into()],
                )
            })
            .collect::<Vec<_>>();
        // Each sentinel has found the replica and the other two (hello messages every 2 s).
        for s in &sentinels {
            wait_until(Duration::from_secs(30), "sentinels see each other", || {
                cli(s.port, &["INFO", "sentinel"]).contains("status=ok")
                    && cli(s.port, &["INFO", "sentinel"]).contains("slaves=1,sentinels=3")
            });
        }
        SentinelSet {
            primary,
            replica,
            sentinels,
        }
    }

    /// The `session_store` URL naming the three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/mymaster/0", hosts.join(","))
    }

    /// The port of the primary the first sentinel names.
    pub fn primary_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinels[0].port,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        );
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }
}

/// A three-node Redis Cluster (no replicas), slots spread over all three.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    pub fn start(dir: &Dir) -> Cluster {
        let nodes: Vec<Server> = (0..3)
            .map(|_| {
                // A cluster node binds its bus port, port + 10000, too.
                let port = super::free_port_where(|p| {
                    std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
                });
                let mut args = base_args(port, dir);
                args.extend([
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    dir.0
                        .join(format!("nodes-{port}.conf"))
                        .display()
                        .to_string(),
                    "--cluster-node-timeout".into(),
                    "3000".into(),
                    "--appendonly".into(),
                    "no".into(),
                ]);
                Server::start(dir, port, args)
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &nodes {
            wait_until(Duration::from_secs(20), "cluster_state:ok", || {
                cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        Cluster { nodes }
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Every key in the cluster matching `pattern`, from each node.
    pub fn keys(&self, pattern: &str) -> Vec<(u16, String)> {
        self.nodes
            .iter()
            .flat_map(|n| {
                cli(n.port, &["--scan", "--pattern", pattern])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| (n.port, l.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
