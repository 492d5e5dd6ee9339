//! Serving one socket, on the worker it runs on: the accept loop under the connection
//! slots, the PROXY header, TLS by SNI, HTTP/1.1 or HTTP/2 by ALPN, the per-connection
//! limits and deadlines, and the drain on shutdown. The HTTPS listener and every
//! Gateway socket are served by [`serve_tls`], the redirect listener and Gateways'
//! plain-HTTP sockets by [`serve_plain`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::redirect::redirect_to_https;
use super::slots::Slots;
use super::{Limits, Socket, accept};
use crate::proxy::conn::{self, ClientIo, ConnState, Deadlines, Supervisor, Tracked};
use crate::proxy::{ConnInfo, Proxy};
use crate::server::limits_nonzero as nonzero;
use crate::telemetry::Metrics;

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

/// Serves HTTPS on `listener` with the certificates of `certs`, until `shutdown`
/// turns true, then drains.
pub async fn serve_tls(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    certs: Arc<arc_swap::ArcSwap<crate::proxy::tls::CertStore>>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    socket: Socket,
) {
    let tls = TlsAcceptor::from(crate::proxy::tls::server_config(certs));
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
                default_port,
                client: crate::proxy::client_addr::canonical(client),
                xff_trusted_hops: limits.xff_num_trusted_hops,
                sni,
                gateway,
                tls: true,
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
                default_port: socket.default_port,
                client: crate::proxy::client_addr::canonical(client),
                xff_trusted_hops: limits.xff_num_trusted_hops,
                sni: None,
                gateway: socket.gateway,
                tls: false,
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
                            Some(https_port)
                                if crate::proxy::request::may_be_acme(req.uri().path()) =>
                            {
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
