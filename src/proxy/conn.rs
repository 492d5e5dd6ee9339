//! One client connection after accept: the socket wrapper (bytes read past a PROXY
//! header, a lingering close), the deadlines for the first request and between
//! requests, the per-connection limit on requests in flight, and the drain.
//!
//! The protocol itself (HTTP/1.1 or HTTP/2, chosen by ALPN) is hyper's; this module
//! only decides when a connection has waited long enough.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

use super::client_addr::{self, Parsed, ProxyError, ProxyHeader};
use super::{Body, BoxError};
use crate::telemetry::Metrics;

/// How long a closing connection keeps reading (and discarding) what the client still
/// sends, and how much of it: closing a socket with unread data makes the kernel send
/// a reset, which can destroy a response the client has not read yet (a 431 sent while
/// the client is still writing its oversized header).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// Time a connection gets to finish after it was asked to close gracefully because it
/// sat idle (an HTTP/2 client that never acknowledges the GOAWAY's PING).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The client socket: first any bytes read past the PROXY header, then the socket.
/// Shutting it down sends FIN, then lingers (bounded) reading what the client still
/// sends so that our last response is not destroyed by a reset.
pub struct ClientIo {
    tcp: TcpStream,
    prefix: Bytes,
    linger: Linger,
}

enum Linger {
    Open,
    Draining {
        left: usize,
        deadline: Option<Pin<Box<Sleep>>>,
    },
    Done,
}

impl ClientIo {
    pub fn new(tcp: TcpStream) -> ClientIo {
        ClientIo {
            tcp,
            prefix: Bytes::new(),
            linger: Linger::Open,
        }
    }

    /// Reads the PROXY header a load balancer sends first (v1 or v2), within whatever
    /// deadline the caller sets. The connection's own bytes read past it are kept.
    pub async fn read_proxy_header(
        mut tcp: TcpStream,
    ) -> Result<(ClientIo, ProxyHeader), ProxyReadError> {
        let mut buf = [0u8; 256];
        let mut filled = 0;
        let header = loop {
            let n = tcp.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(ProxyReadError::Proxy(ProxyError::Missing));
            }
            filled += n;
            match client_addr::parse_proxy_header(&buf[..filled])? {
                Parsed::Header(h) => break h,
                // Both versions are decided within 232 bytes, so the buffer never
                // fills up while incomplete.
                Parsed::Incomplete if filled == buf.len() => {
                    return Err(ProxyReadError::Proxy(ProxyError::Missing));
                }
                Parsed::Incomplete => {}
            }
        };
        let prefix = if header.len <= filled {
            Bytes::copy_from_slice(&buf[header.len..filled])
        } else {
            // v2 TLVs we do not use: skip them (at most 64 KiB, by the length field).
            let mut skip = header.len - filled;
            while skip > 0 {
                let n = tcp.read(&mut buf[..skip.min(256)]).await?;
                if n == 0 {
                    return Err(ProxyReadError::Proxy(ProxyError::Missing));
                }
                skip -= n;
            }
            Bytes::new()
        };
        Ok((
            ClientIo {
                tcp,
                prefix,
                linger: Linger::Open,
            },
            header,
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyReadError {
    #[error("{0}")]
    Proxy(#[from] ProxyError),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.prefix.is_empty() {
            let n = me.prefix.len().min(buf.remaining());
            buf.put_slice(&me.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            match &mut me.linger {
                Linger::Open => {
                    ready!(Pin::new(&mut me.tcp).poll_shutdown(cx))?;
                    me.linger = Linger::Draining {
                        left: LINGER_BYTES,
                        deadline: None,
                    };
                }
                Linger::Draining { left, deadline } => {
                    let mut scratch = [0u8; 4096];
                    let mut rb = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut me.tcp).poll_read(cx, &mut rb) {
                        Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                            *left = left.saturating_sub(rb.filled().len());
                            if *left == 0 {
                                me.linger = Linger::Done;
                            }
                        }
                        // EOF or an error: the client is done too.
                        Poll::Ready(_) => me.linger = Linger::Done,
                        Poll::Pending => {
                            // The timer only exists for clients that keep the socket
                            // open after our FIN.
                            let sleep = deadline
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIME)));
                            ready!(sleep.as_mut().poll(cx));
                            me.linger = Linger::Done;
                        }
                    }
                }
                Linger::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Requests of one connection: how many started and how many are in flight (from the
/// service call until the response body is done), and the limit on the latter.
pub struct ConnState {
    /// Started requests in the high 32 bits, in-flight ones in the low 32.
    counts: AtomicU64,
    /// Permits for requests in flight (`max_concurrent_requests_per_connection`).
    slots: Semaphore,
    limit: usize,
    metrics: Arc<Metrics>,
}

const STARTED: u64 = 1 << 32;

impl ConnState {
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> ConnState {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        ConnState {
            counts: AtomicU64::new(0),
            slots: Semaphore::new(limit),
            limit,
            metrics,
        }
    }

    /// (started, in flight).
    fn counts(&self) -> (u64, u64) {
        let c = self.counts.load(Ordering::Relaxed);
        (c >> 32, c & 0xffff_ffff)
    }

    /// Starts a request: counts it, then waits for a slot when the connection already
    /// has its limit of requests in flight. The returned guard ends it.
    pub async fn begin(self: &Arc<Self>, peer: std::net::SocketAddr) -> InFlight {
        self.counts.fetch_add(STARTED + 1, Ordering::Relaxed);
        let mut guard = InFlight {
            state: self.clone(),
            slot: false,
        };
        let permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                self.metrics.connection_limit_hit("requests_per_connection");
                if LIMIT_LOG.ready() {
                    tracing::warn!(
                        %peer,
                        limit = self.limit,
                        "a client connection has its limit of requests in flight; its \
                         next requests wait for one to finish \
                         (max_concurrent_requests_per_connection)"
                    );
                }
                // The semaphore is never closed.
                match self.slots.acquire().await {
                    Ok(p) => p,
                    Err(_) => return guard,
                }
            }
        };
        permit.forget();
        guard.slot = true;
        guard
    }
}

/// One request in flight; dropping it (with the response body) ends it.
pub struct InFlight {
    state: Arc<ConnState>,
    slot: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.slot {
            self.state.slots.add_permits(1);
        }
        self.state.counts.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that ends its request's [`InFlight`] when it is done or dropped.
/// Not boxed: wrapping costs no allocation.
pub struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub fn new(body: Body, in_flight: InFlight) -> Tracked {
        Tracked {
            body,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The deadlines of one connection (zero: none).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the end of the TLS handshake to the first request's headers.
    pub first_request: Duration,
    /// With no request in flight, until the connection is closed.
    pub idle: Duration,
}

/// What watches one connection: its requests, its deadlines, and the shutdown signal.
pub struct Supervisor {
    pub state: Arc<ConnState>,
    pub deadlines: Deadlines,
    pub shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    /// Drives `conn` (a hyper connection) to its end, closing it when it breaks a
    /// deadline and gracefully when shutdown starts. `graceful` is its
    /// `graceful_shutdown`.
    pub async fn drive<F>(
        &mut self,
        conn: F,
        graceful: impl Fn(Pin<&mut F>),
    ) -> Result<(), hyper::Error>
    where
        F: Future<Output = Result<(), hyper::Error>>,
    {
        drive(
            conn,
            graceful,
            &self.state,
            self.deadlines,
            &mut self.shutdown,
        )
        .await
    }
}

async fn drive<F>(
    conn: F,
    graceful: impl Fn(Pin<&mut F>),
    state: &ConnState,
    deadlines: Deadlines,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    F: Future<Output = Result<(), hyper::Error>>,
{
    let mut conn = std::pin::pin!(conn);
    let start = Instant::now();
    let far = start + Duration::from_secs(86400 * 365);
    let after = |t: Instant, d: Duration| if d.is_zero() { far } else { t + d };
    // Without a request yet, the first-request deadline rules (or, without one, the
    // idle timeout from the start).
    let first_deadline = if deadlines.first_request.is_zero() {
        after(start, deadlines.idle)
    } else {
        start + deadlines.first_request
    };
    // Idle connections are noticed within a quarter of the idle timeout.
    let tick = (deadlines.idle / 4).max(Duration::from_millis(10));
    let next_tick = |now: Instant| {
        after(
            now,
            if deadlines.idle.is_zero() {
                Duration::ZERO
            } else {
                tick
            },
        )
    };
    let timer = tokio::time::sleep_until(first_deadline.min(next_tick(start)));
    let mut timer = std::pin::pin!(timer);
    let mut watch = Watch::FirstRequest;
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            done = conn.as_mut() => {
                if let Err(e) = &done
                    && e.is_timeout()
                {
                    // hyper's HTTP/1.1 header timer: before the first request, or
                    // while a keep-alive connection waited for the next one.
                    let (started, _) = state.counts();
                    state.metrics.connection_timeout(if started == 0 { "first_request" } else { "idle" });
                }
                return done;
            }
            _ = super::server::stopped(shutdown), if !draining => {
                graceful(conn.as_mut());
                draining = true;
            }
            () = timer.as_mut() => {
                let now = Instant::now();
                let (started, in_flight) = state.counts();
                let next = match watch {
                    Watch::Closing => {
                        tracing::debug!("idle connection did not close in time; closing");
                        return Ok(());
                    }
                    Watch::FirstRequest if started == 0 => {
                        if now >= first_deadline {
                            state.metrics.connection_timeout("first_request");
                            tracing::debug!("no request within the header-read timeout; closing");
                            return Ok(());
                        }
                        first_deadline.min(next_tick(now))
                    }
                    Watch::FirstRequest | Watch::Busy => {
                        watch = if in_flight == 0 {
                            Watch::Idle { since: now, started }
                        } else {
                            Watch::Busy
                        };
                        next_tick(now)
                    }
                    Watch::Idle { since, started: seen } => {
                        if in_flight > 0 || started != seen {
                            watch = Watch::Busy;
                            next_tick(now)
                        } else if now >= after(since, deadlines.idle) {
                            state.metrics.connection_timeout("idle");
                            tracing::debug!("connection idle; closing");
                            graceful(conn.as_mut());
                            watch = Watch::Closing;
                            now + IDLE_CLOSE_GRACE
                        } else {
                            after(since, deadlines.idle).min(next_tick(now))
                        }
                    }
                };
                timer.as_mut().reset(next);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Watch {
    /// No request yet.
    FirstRequest,
    /// Requests were in flight at the last look.
    Busy,
    /// Nothing in flight and nothing started since `since`.
    Idle { since: Instant, started: u64 },
    /// Asked to close; waiting for it.
    Closing,
}

/// The size of a request's header list as HTTP/2 counts it (RFC 9113 §6.5.2: name,
/// value and 32 bytes per field, pseudo-header fields included).
pub fn header_list_size<B>(req: &http::Request<B>) -> usize {
    let uri = req.uri();
    let pseudo = [
        (":method", req.method().as_str().len()),
        (":scheme", uri.scheme_str().map_or(0, str::len)),
        (
            ":authority",
            uri.authority().map_or(0, |a| a.as_str().len()),
        ),
        (
            ":path",
            uri.path_and_query().map_or(1, |p| p.as_str().len()),
        ),
    ];
    let pseudo: usize = pseudo.iter().map(|(n, v)| n.len() + v + 32).sum();
    pseudo
        + req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum::<usize>()
}

/// `431 Request Header Fields Too Large`, for HTTP/2 requests over the limit (hyper
/// answers HTTP/1.1 ones itself).
pub fn header_too_large() -> http::Response<Body> {
    let mut resp = http::Response::new(super::empty());
    *resp.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

/// At most one log line per interval for a kind of event, across all connections.
pub struct Throttle {
    last_ms: AtomicU64,
    every_ms: u64,
}

pub static LIMIT_LOG: Throttle = Throttle::new(10_000);
pub static PROXY_LOG: Throttle = Throttle::new(10_000);
pub static ACCEPT_LOG: Throttle = Throttle::new(10_000);

impl Throttle {
    pub const fn new(every_ms: u64) -> Throttle {
        Throttle {
            last_ms: AtomicU64::new(0),
            every_ms,
        }
    }

    /// Whether to log now.
    pub fn ready(&self) -> bool {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let epoch = EPOCH.get_or_init(std::time::Instant::now);
        // +1: the first event (at 0 ms) logs too.
        let now = epoch.elapsed().as_millis() as u64 + self.every_ms + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        now >= last + self.every_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_list_sizes_count_as_http2_does() {
        let req = http::Request::get("https://a.example/x?y")
            .header("cookie", "abc")
            .body(())
            .unwrap();
        // :method GET, :scheme https, :authority a.example, :path /x?y, cookie abc.
        let want = (7 + 3 + 32) + (7 + 5 + 32) + (10 + 9 + 32) + (5 + 4 + 32) + (6 + 3 + 32);
        assert_eq!(header_list_size(&req), want);
    }

    #[test]
    fn throttle_lets_one_through_per_interval() {
        let t = Throttle::new(60_000);
        assert!(t.ready());
        assert!(!t.ready());
        assert!(!t.ready());
        let fast = Throttle::new(0);
        assert!(fast.ready());
        assert!(fast.ready());
    }

    #[tokio::test]
    async fn requests_over_the_limit_wait_for_a_slot() {
        let state = Arc::new(ConnState::new(2, Arc::new(Metrics::new())));
        let peer = "127.0.0.1:1".parse().unwrap();
        let a = state.begin(peer).await;
        let b = state.begin(peer).await;
        assert_eq!(state.counts(), (2, 2));
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.begin(peer).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a third request got a slot");
        assert_eq!(
            state.counts(),
            (3, 3),
            "a waiting request counts as in flight"
        );
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("a freed slot goes to the waiting request")
            .unwrap();
        drop((b, c));
        assert_eq!(state.counts(), (3, 0));
        assert_eq!(state.slots.available_permits(), 2);
    }
}
