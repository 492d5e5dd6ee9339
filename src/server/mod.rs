//! Listeners for every server Portcullis runs: binding with a message that names the
//! setting, accepting with a pause after errors (never a spin), the shutdown signal,
//! the client-side limits and timeouts, and a plain HTTP/1.1 server with a header-read
//! timeout and a drain — what the admin listener, the development identity provider and
//! the demo app use. The data plane (`proxy::server`) adds TLS by SNI, ALPN, PROXY
//! protocol and per-connection limits on top of these pieces.

mod limits;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use limits::{Limits, nonzero as limits_nonzero};

/// The shutdown signal every server and background task listens to: it turns `true`
/// once, when the process starts draining.
pub type Shutdown = watch::Receiver<bool>;

/// Pause after a failed accept (out of file descriptors, say), so it is retried
/// without spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener that could not be bound, naming the config key that asked for it.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {key} {addr}: {source}")]
pub struct BindError {
    pub key: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a listener with a message naming the config key when that fails.
pub async fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { key, addr, source })
}

/// The next connection, or `None` once shutdown starts. Accept errors are logged and
/// retried after a pause, never fatal.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &mut Shutdown,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = stopped(shutdown) => return None,
        }
    }
}

/// Resolves once `shutdown` holds true (or its sender is gone).
pub async fn stopped(shutdown: &mut Shutdown) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Serves plain HTTP/1.1 on `listener` with `handle` until `shutdown`, then gives
/// in-flight requests `limits.drain_timeout`. Each connection gets the header-read
/// timeout of `limits` and its idle timeout between requests.
pub async fn serve_plain<F, Fut, R>(
    listener: TcpListener,
    name: &'static str,
    limits: Limits,
    handle: F,
    mut shutdown: Shutdown,
) where
    F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<R>> + Send + 'static,
    R: http_body::Body + Send + 'static,
    R::Data: Send,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handle = Arc::new(handle);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits::nonzero(limits.header_read_timeout))
        .max_buf_size(limits.max_header_bytes.max(8192));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    while let Some((stream, _)) = accept(&listener, &mut shutdown).await {
        let handle = handle.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(handle(req).await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(server = name, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!(server = name, "drain timed out; closing what is left");
    }
}
