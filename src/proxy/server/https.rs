//! The HTTPS listener, served from the data plane's worker threads: one
//! single-threaded runtime per thread, every one accepting from the same socket.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Limits, Socket, serve_tls};
use crate::proxy::{Proxy, h1pool};

/// Serves HTTPS on `listener` until `shutdown` turns true, then drains.
pub async fn serve_https(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let certs = proxy.certs.clone();
    // A `Host` without a port means the scheme's default, whatever port we listen on
    // (behind a Service or load balancer the two differ).
    serve_tls(listener, proxy, certs, limits, shutdown, Socket::HTTPS).await
}

/// Why the HTTPS listener's worker threads could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot share the HTTPS listener with the worker threads (out of file descriptors? \
         raise the limit, or lower --workers)"
    )]
    Listener(#[source] std::io::Error),
    #[error(
        "cannot start data-plane worker thread {worker} (lower --workers, or raise the \
         process's thread limit)"
    )]
    Thread {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
}

/// One data-plane thread: its runtime, where Gateway sockets are served too, and a
/// token that keeps it from shutting down while they drain (every clone dropped: done).
#[derive(Clone)]
pub struct Worker {
    pub handle: tokio::runtime::Handle,
    pub alive: tokio::sync::mpsc::Sender<()>,
}

/// Serves `listener` from `workers` threads, each running its own single-threaded
/// runtime: a connection, its requests and its upstream connections stay on one
/// thread, with no hand-offs between threads on the way. Every worker accepts from the
/// same socket, so an idle worker picks up new connections first. Each receiver
/// resolves when its worker has drained; the [`Worker`]s let other sockets (Gateways)
/// be served by the same threads.
pub fn spawn_workers(
    listener: TcpListener,
    workers: usize,
    proxy: &Arc<Proxy>,
    limits: Limits,
    shutdown: &watch::Receiver<bool>,
) -> Result<(Vec<tokio::sync::oneshot::Receiver<()>>, Vec<Worker>), ServeError> {
    let listener = listener.into_std().map_err(ServeError::Listener)?;
    let mut done = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers.max(1) {
        let listener = listener.try_clone().map_err(ServeError::Listener)?;
        let proxy = proxy.clone();
        let shutdown = shutdown.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("portcullis-worker-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(worker = i, error = %e, "cannot start a worker runtime");
                        return;
                    }
                };
                let (alive, mut others) = tokio::sync::mpsc::channel::<()>(1);
                let _ = handle_tx.send(Worker {
                    handle: runtime.handle().clone(),
                    alive,
                });
                runtime.block_on(async move {
                    tokio::spawn(async {
                        loop {
                            tokio::time::sleep(h1pool::REAP_EVERY).await;
                            h1pool::reap();
                        }
                    });
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve_https(l, proxy, limits, shutdown).await,
                        Err(e) => tracing::error!(worker = i, error = %e, "worker cannot listen"),
                    }
                    // Other sockets served here drain too, within the same limit.
                    let wait = limits.drain_timeout + Duration::from_secs(1);
                    let _ = tokio::time::timeout(wait, others.recv()).await;
                });
                // Connections still open after the drain are dropped here.
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = tx.send(());
            })
            .map_err(|source| ServeError::Thread { worker: i, source })?;
        done.push(rx);
        if let Ok(w) = handle_rx.recv() {
            handles.push(w);
        }
    }
    Ok((done, handles))
}
