//! Listeners: HTTPS (TLS by SNI, HTTP/1.1 and HTTP/2 by ALPN) and the plain-HTTP
//! listener that only redirects to HTTPS. Both drain in-flight requests on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::conn::{self, ClientIo, ConnState, Deadlines, Supervisor, Tracked};
use super::{Body, ConnInfo, Proxy, empty};
use crate::telemetry::Metrics;

use crate::server::limits_nonzero as nonzero;
pub use crate::server::{Limits, accept, bind, stopped};

fn deadlines(limits: &Limits) -> Deadlines {
    Deadlines {
        first_request: limits.header_read_timeout,
        idle: limits.idle_timeout,
    }
}

/// HTTP/1.1 and HTTP/2 servers, one chosen per connection by ALPN: `h2` gets HTTP/2
/// (and a client that then sends no valid preface is closed), anything else HTTP/1.1.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

fn builders(limits: &Limits) -> Builders {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(nonzero(limits.header_read_timeout))
        .max_buf_size(limits.max_header_bytes.max(8192));
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.saturating_mul(4).min(1 << 24) as u32)
        .max_concurrent_streams(limits.http2_max_concurrent_streams.max(1))
        .keep_alive_interval(Duration::from_secs(30));
    Builders { h1, h2 }
}

/// Connection slots of one listener (or worker), and the drain that waits for them.
struct Slots {
    sem: Arc<Semaphore>,
    max: usize,
    listener: &'static str,
}

impl Slots {
    fn new(max: usize, listener: &'static str) -> Slots {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            sem: Arc::new(Semaphore::new(max)),
            max,
            listener,
        }
    }

    /// A slot for the next connection, waiting (and not accepting) while all are
    /// taken; `None` once shutdown starts.
    async fn take(
        &self,
        metrics: &Metrics,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.sem.clone().try_acquire_owned() {
            return Some(p);
        }
        metrics.connection_limit_hit("connections_per_worker");
        if conn::ACCEPT_LOG.ready() {
            tracing::warn!(
                listener = self.listener,
                worker = std::thread::current().name().unwrap_or(""),
                limit = self.max,
                "connection limit reached: this worker accepts no new connection until \
                 one of its own closes (max_connections_per_worker)"
            );
        }
        tokio::select! {
            p = self.sem.clone().acquire_owned() => p.ok(),
            _ = stopped(shutdown) => None,
        }
    }

    fn open(&self) -> usize {
        self.max - self.sem.available_permits()
    }

    /// Waits until every connection has closed, at most `limit`.
    async fn drain(&self, limit: Duration) {
        let open = self.open();
        if open > 0 {
            tracing::info!(
                listener = self.listener,
                connections = open,
                "draining connections"
            );
        }
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        if tokio::time::timeout(limit, self.sem.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                listener = self.listener,
                "drain timed out; closing remaining connections"
            );
        }
    }
}

/// The PROXY header when `proxy_protocol` is on: the connection's socket and its
/// client, or `None` (logged, counted) when the header is missing or invalid.
async fn front(
    stream: TcpStream,
    peer: SocketAddr,
    limits: &Limits,
    metrics: &Metrics,
) -> Option<(ClientIo, std::net::IpAddr)> {
    if !limits.proxy_protocol {
        return Some((ClientIo::new(stream), peer.ip()));
    }
    match ClientIo::read_proxy_header(stream).await {
        Ok((io, header)) => Some((io, header.source.map_or(peer.ip(), |s| s.ip()))),
        Err(e) => {
            metrics.proxy_protocol_refused();
            if conn::PROXY_LOG.ready() {
                tracing::warn!(%peer, error = %e, "closing a connection without a valid PROXY protocol header (use_proxy_protocol)");
            }
            None
        }
    }
}

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

/// What a socket is to the requests it accepts.
#[derive(Debug, Clone)]
pub struct Socket {
    /// The port a `Host` without one means.
    pub default_port: u16,
    /// A Gateway's socket: its rules answer.
    pub gateway: Option<super::GatewayConn>,
    /// For log lines.
    pub name: &'static str,
}

impl Socket {
    const HTTPS: Socket = Socket {
        default_port: 443,
        gateway: None,
        name: "https",
    };
}

/// Serves HTTPS on `listener` with the certificates of `certs`, until `shutdown`
/// turns true, then drains.
pub async fn serve_tls(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    certs: Arc<arc_swap::ArcSwap<super::tls::CertStore>>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    socket: Socket,
) {
    let tls = TlsAcceptor::from(super::tls::server_config(certs));
    let default_port = socket.default_port;
    let builders = Arc::new(builders(&limits));
    let slots = Slots::new(limits.max_connections_per_worker, socket.name);
    loop {
        let Some(slot) = slots.take(&proxy.metrics, &mut shutdown).await else {
            break;
        };
        let Some((stream, peer)) = accept(&listener, &mut shutdown).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let proxy = proxy.clone();
        let builders = builders.clone();
        let shutdown = shutdown.clone();
        let gateway = socket.gateway.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let handshake = async {
                let (io, client) = front(stream, peer, &limits, &proxy.metrics).await?;
                match tls.accept(io).await {
                    Ok(s) => Some((s, client)),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                }
            };
            let (stream, client) =
                match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return,
                    Err(_) => {
                        proxy.metrics.connection_timeout("handshake");
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let sni: Option<Arc<str>> = stream
                .get_ref()
                .1
                .server_name()
                .map(|n| n.to_ascii_lowercase().into());
            proxy.metrics.connection_opened();
            let conn = ConnInfo {
                peer,
                default_port,
                client: super::client_addr::canonical(client),
                xff_trusted_hops: limits.xff_num_trusted_hops,
                sni,
                gateway,
            };
            let state = Arc::new(ConnState::new(
                limits.max_concurrent_requests_per_connection,
                proxy.metrics.clone(),
            ));
            let max_header_bytes = limits.max_header_bytes;
            let service = {
                let proxy = proxy.clone();
                let state = state.clone();
                service_fn(move |req: Request<Incoming>| {
                    let proxy = proxy.clone();
                    let state = state.clone();
                    let conn = conn.clone();
                    async move {
                        let in_flight = state.begin(peer).await;
                        // HTTP/2 header lists are decoded up to 4× the limit so that
                        // the client gets this answer rather than a GOAWAY.
                        let resp = if h2 && conn::header_list_size(&req) > max_header_bytes {
                            conn::header_too_large()
                        } else {
                            proxy.handle(req, conn).await
                        };
                        Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, in_flight)))
                    }
                })
            };
            let io = TokioIo::new(stream);
            let mut sup = Supervisor {
                state,
                deadlines: deadlines(&limits),
                shutdown,
            };
            let done = if h2 {
                let c = builders.h2.serve_connection(io, service);
                sup.drive(c, |c| c.graceful_shutdown()).await
            } else {
                let c = builders.h1.serve_connection(io, service).with_upgrades();
                sup.drive(c, |c| c.graceful_shutdown()).await
            };
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            proxy.metrics.connection_closed();
        });
    }
    // Stop taking connections before the drain: new ones are refused, not queued.
    drop(listener);
    slots.drain(limits.drain_timeout).await;
}

/// Answers every plain-HTTP request with a redirect to the same URL over HTTPS —
/// except ACME HTTP-01 challenges for routes written for them, which `proxy` serves
/// (cert-manager's solver Ingresses). `https_port` is added to the target unless it is
/// 443.
pub async fn serve_redirect(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    https_port: u16,
    limits: Limits,
    _metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let socket = Socket {
        default_port: 80,
        gateway: None,
        name: "http redirect",
    };
    serve_plain(listener, proxy, limits, shutdown, socket, Some(https_port)).await
}

/// Serves plain HTTP (HTTP/1.1) on `listener`: a Gateway's HTTP listener when
/// `redirect_to` is `None`, else the redirect listener (to that HTTPS port).
pub async fn serve_plain(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    socket: Socket,
    redirect_to: Option<u16>,
) {
    let builders = Arc::new(builders(&limits));
    let slots = Slots::new(limits.max_connections_per_worker, socket.name);
    let metrics = proxy.metrics.clone();
    loop {
        let Some(slot) = slots.take(&metrics, &mut shutdown).await else {
            break;
        };
        let Some((stream, peer)) = accept(&listener, &mut shutdown).await else {
            break;
        };
        let builders = builders.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        let proxy = proxy.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (io, client) = match tokio::time::timeout(
                limits.tls_handshake_timeout,
                front(stream, peer, &limits, &metrics),
            )
            .await
            {
                Ok(Some((io, client))) => (io, client),
                Ok(None) => return,
                Err(_) => {
                    metrics.connection_timeout("handshake");
                    return;
                }
            };
            let state = Arc::new(ConnState::new(
                limits.max_concurrent_requests_per_connection,
                metrics.clone(),
            ));
            let conn = ConnInfo {
                peer,
                default_port: socket.default_port,
                client: super::client_addr::canonical(client),
                xff_trusted_hops: limits.xff_num_trusted_hops,
                sni: None,
                gateway: socket.gateway,
            };
            let service = {
                let state = state.clone();
                let proxy = proxy.clone();
                service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    let proxy = proxy.clone();
                    let conn = conn.clone();
                    async move {
                        let in_flight = state.begin(peer).await;
                        let resp = match redirect_to {
                            None => proxy.handle(req, conn).await,
                            Some(https_port) if super::request::may_be_acme(req.uri().path()) => {
                                match proxy.serve_acme(req, conn).await {
                                    Ok(resp) => resp,
                                    Err(req) => redirect_to_https(&req, https_port),
                                }
                            }
                            Some(https_port) => redirect_to_https(&req, https_port),
                        };
                        Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, in_flight)))
                    }
                })
            };
            let c = builders
                .h1
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut sup = Supervisor {
                state,
                deadlines: deadlines(&limits),
                shutdown,
            };
            let _ = sup.drive(c, |c| c.graceful_shutdown()).await;
        });
    }
    drop(listener);
    slots.drain(limits.drain_timeout).await;
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
) -> anyhow::Result<(Vec<tokio::sync::oneshot::Receiver<()>>, Vec<Worker>)> {
    let listener = listener.into_std()?;
    let mut done = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers.max(1) {
        let listener = listener.try_clone()?;
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
                            tokio::time::sleep(super::h1pool::REAP_EVERY).await;
                            super::h1pool::reap();
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
            })?;
        done.push(rx);
        if let Ok(w) = handle_rx.recv() {
            handles.push(w);
        }
    }
    Ok((done, handles))
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
