//! The Gateways' sockets: one per Gateway port, on the local port the controller chose
//! for it, served by every data-plane worker like the HTTPS listener. The set follows
//! the translations: new ports are bound, gone ones drain and close, certificates are
//! swapped in place (the next handshake uses them; open connections are untouched).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use super::server::{Limits, Socket, Worker, serve_plain, serve_tls, stopped};
use super::tls::{CertStore, PemPair};
use super::{GatewayConn, Proxy};

/// How often a port that could not be bound is tried again.
const RETRY_BIND: Duration = Duration::from_secs(1);
/// Connections a socket's accept queue holds.
const BACKLOG: u32 = 1024;

/// One socket to serve.
#[derive(Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub local_port: u16,
    /// The Gateway's port: what a `Host` without a port means, and redirects' default.
    pub port: u16,
    pub tls: bool,
    /// For log lines: `namespace/name:port`.
    pub id: String,
    /// TLS: the certificates, the default one first.
    pub certificates: Vec<PemPair>,
}

impl std::fmt::Debug for SocketSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketSpec")
            .field("local_port", &self.local_port)
            .field("id", &self.id)
            .field("tls", &self.tls)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// A socket being served.
struct Bound {
    spec: SocketSpec,
    certs: Option<Arc<ArcSwap<CertStore>>>,
    stop: watch::Sender<bool>,
}

/// Runs until `shutdown`: keeps the bound sockets equal to the latest `specs`.
pub async fn run(
    bind: IpAddr,
    proxy: Arc<Proxy>,
    workers: Vec<Worker>,
    limits: Limits,
    mut specs: watch::Receiver<Arc<Vec<SocketSpec>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut bound: HashMap<u16, Bound> = HashMap::new();
    let mut retry = tokio::time::interval(RETRY_BIND);
    loop {
        let wanted = specs.borrow_and_update().clone();
        // Gone, or changed in what a socket is (TLS or not, its port, whose Gateway
        // port it serves): stop it. Its open connections never see another Gateway's
        // rules (`proxy::request::lookup` checks the socket's id).
        bound.retain(|port, b| {
            let keep = wanted.iter().any(|s| {
                s.local_port == *port
                    && s.tls == b.spec.tls
                    && s.port == b.spec.port
                    && s.id == b.spec.id
            });
            if !keep {
                tracing::info!(socket = %b.spec.id, local_port = port, "closing a Gateway socket");
                let _ = b.stop.send(true);
            }
            keep
        });
        for spec in wanted.iter() {
            match bound.get_mut(&spec.local_port) {
                Some(b) => {
                    if b.spec.certificates != spec.certificates
                        && let Some(certs) = &b.certs
                    {
                        certs.store(Arc::new(store(spec)));
                    }
                    b.spec = spec.clone();
                }
                None => match listen(bind, spec.local_port) {
                    Ok(listener) => {
                        let b = serve(&proxy, &workers, limits, &shutdown, listener, spec);
                        bound.insert(spec.local_port, b);
                    }
                    // Retried on the next tick (the old socket may still be draining).
                    Err(e) => tracing::warn!(socket = %spec.id, local_port = spec.local_port,
                        error = %e, "cannot bind a Gateway socket; retrying"),
                },
            }
        }
        let missing = wanted.iter().any(|s| !bound.contains_key(&s.local_port));
        tokio::select! {
            changed = specs.changed() => if changed.is_err() { break },
            _ = retry.tick(), if missing => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    for b in bound.values() {
        let _ = b.stop.send(true);
    }
    // Dropping the workers' tokens lets them finish once these sockets have drained.
    drop(workers);
}

fn listen(bind: IpAddr, port: u16) -> std::io::Result<std::net::TcpListener> {
    let addr = SocketAddr::new(bind, port);
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

fn store(spec: &SocketSpec) -> CertStore {
    let (store, errors) = CertStore::lenient(&spec.certificates, &[]);
    for e in errors {
        tracing::warn!(socket = %spec.id, error = %e, "skipping a Gateway certificate");
    }
    store
}

/// Serves `listener` from every worker until its `stop` (or shutdown).
fn serve(
    proxy: &Arc<Proxy>,
    workers: &[Worker],
    limits: Limits,
    shutdown: &watch::Receiver<bool>,
    listener: std::net::TcpListener,
    spec: &SocketSpec,
) -> Bound {
    let certs = spec
        .tls
        .then(|| Arc::new(ArcSwap::from_pointee(store(spec))));
    let (stop, stop_rx) = watch::channel(false);
    let socket = Socket {
        default_port: spec.port,
        gateway: Some(GatewayConn {
            local_port: spec.local_port,
            id: spec.id.as_str().into(),
            certs: certs.clone(),
        }),
        name: "gateway",
    };
    tracing::info!(socket = %spec.id, local_port = spec.local_port, tls = spec.tls,
        "serving a Gateway socket");
    for w in workers {
        let Ok(listener) = listener.try_clone() else {
            continue;
        };
        let proxy = proxy.clone();
        let socket = socket.clone();
        let certs = certs.clone();
        let alive = w.alive.clone();
        let done = either(stop_rx.clone(), shutdown.clone());
        w.handle.spawn(async move {
            let _alive = alive;
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            match certs {
                Some(certs) => serve_tls(listener, proxy, certs, limits, done, socket).await,
                None => serve_plain(listener, proxy, limits, done, socket, None).await,
            }
        });
    }
    Bound {
        spec: spec.clone(),
        certs,
        stop,
    }
}

/// A receiver that turns true when either does.
fn either(mut a: watch::Receiver<bool>, mut b: watch::Receiver<bool>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(*a.borrow() || *b.borrow());
    tokio::spawn(async move {
        tokio::select! {
            _ = stopped(&mut a) => {}
            _ = stopped(&mut b) => {}
            _ = tx.closed() => return,
        }
        let _ = tx.send(true);
    });
    rx
}
