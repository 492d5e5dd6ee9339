//! Listeners: HTTPS (TLS by SNI, HTTP/1.1 and HTTP/2 by ALPN) and the plain-HTTP
//! listener that only redirects to HTTPS. Both drain in-flight requests on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{Body, ConnInfo, Proxy, empty};

/// Protocol limits and timeouts of the client side.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to finish its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Largest request head accepted, in bytes.
    pub max_header_bytes: usize,
    /// Time in-flight requests get to finish after shutdown starts.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30));
    b
}

/// Serves HTTPS on `listener` until `shutdown` turns true, then drains.
pub async fn serve_https(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = TlsAcceptor::from(super::tls::server_config(proxy.certs.clone()));
    // A `Host` without a port means the scheme's default, whatever port we listen on
    // (behind a Service or load balancer the two differ).
    let default_port = 443;
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    loop {
        let Some((stream, peer)) = accept(&listener, &mut shutdown).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let proxy = proxy.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(
                limits.tls_handshake_timeout,
                tls.accept(stream),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            proxy.metrics.connection_opened();
            let conn = ConnInfo { peer, default_port };
            let service = {
                let proxy = proxy.clone();
                service_fn(move |req: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req, conn).await) }
                })
            };
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            proxy.metrics.connection_closed();
        });
    }
    // Stop taking connections before the drain: new ones are refused, not queued.
    drop(listener);
    drain(graceful, limits.drain_timeout, "https").await;
}

/// Answers every plain-HTTP request with a redirect to the same URL over HTTPS.
/// `https_port` is added to the target unless it is 443.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    loop {
        let Some((stream, _)) = accept(&listener, &mut shutdown).await else {
            break;
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(redirect_to_https(&req, https_port))
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let _ = watcher.watch(connection).await;
        });
    }
    drop(listener);
    drain(graceful, limits.drain_timeout, "http redirect").await;
}

fn redirect_to_https<B>(req: &Request<B>, https_port: u16) -> Response<Body> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let host = authority
        .and_then(|a| crate::routes::authority::canonical(a, 80))
        .map(|c| c.host)
        .map(|h| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.into_owned()
            }
        });
    let mut resp = Response::new(empty());
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let target = format!("https://{host}{port}{path}");
    *resp.status_mut() = if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    match HeaderValue::from_str(&target) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    resp
}

async fn drain(graceful: GracefulShutdown, limit: Duration, name: &str) {
    let open = graceful.count();
    if open > 0 {
        tracing::info!(listener = name, connections = open, "draining connections");
    }
    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "drain timed out; closing remaining connections"
        );
    }
}

/// The next connection, or `None` once shutdown starts. Accept errors (such as running
/// out of file descriptors) are logged and retried after a pause, never fatal.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped(shutdown) => return None,
        }
    }
}

/// Resolves once `shutdown` holds true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Binds a listener with a message naming the config key when that fails.
/// Serves `listener` from `workers` threads, each running its own single-threaded
/// runtime: a connection, its requests and its upstream connections stay on one
/// thread, with no hand-offs between threads on the way. Every worker accepts from the
/// same socket, so an idle worker picks up new connections first. Each receiver
/// resolves when its worker has drained.
pub fn spawn_workers(
    listener: TcpListener,
    workers: usize,
    proxy: &Arc<Proxy>,
    limits: Limits,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::sync::oneshot::Receiver<()>>> {
    let listener = listener.into_std()?;
    let mut done = Vec::with_capacity(workers);
    for i in 0..workers.max(1) {
        let listener = listener.try_clone()?;
        let proxy = proxy.clone();
        let shutdown = shutdown.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
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
                runtime.block_on(async move {
                    tokio::spawn(async {
                        loop {
                            tokio::time::sleep(super::h1pool::REAP_EVERY).await;
                            super::h1pool::reap();
                        }
                    });
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve_https(l, proxy, limits, shutdown).await,
                        Err(e) => tracing::error!(worker = i, error = %e, "worker cannot listen"),
                    }
                });
                // Connections still open after the drain are dropped here.
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    Ok(done)
}

pub async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {key} {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_path_and_query() {
        let cases = [
            (
                "app.example.com",
                "/a?b=1",
                443,
                "https://app.example.com/a?b=1",
            ),
            (
                "app.example.com:8080",
                "/",
                8443,
                "https://app.example.com:8443/",
            ),
            ("[::1]:8080", "/x", 443, "https://[::1]/x"),
        ];
        for (host, path, port, want) in cases {
            let req = Request::builder()
                .uri(path)
                .header("host", host)
                .body(())
                .unwrap();
            let resp = redirect_to_https(&req, port);
            assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
            assert_eq!(resp.headers()["location"], want, "{host}{path}");
        }
        let post = Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "h")
            .body(())
            .unwrap();
        assert_eq!(
            redirect_to_https(&post, 443).status(),
            StatusCode::PERMANENT_REDIRECT
        );
        let none = Request::builder().uri("/").body(()).unwrap();
        assert_eq!(
            redirect_to_https(&none, 443).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
