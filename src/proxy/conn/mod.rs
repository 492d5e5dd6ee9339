//! One client connection after accept: the socket wrapper (bytes read past a PROXY
//! header, a lingering close), the deadlines for the first request and between
//! requests, the per-connection limit on requests in flight, and the drain.
//!
//! The protocol itself (HTTP/1.1 or HTTP/2, chosen by ALPN) is hyper's; this module
//! only decides when a connection has waited long enough.
//!
//! `socket` is the socket wrapper, `requests` counts and limits the requests in flight;
//! this file watches the deadlines and the drain, and holds the header-size check and
//! the log throttle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Body;

mod requests;
mod socket;

pub use self::requests::{ConnState, Tracked};
pub use self::socket::ClientIo;

/// Time a connection gets to finish after it was asked to close gracefully because it
/// sat idle (an HTTP/2 client that never acknowledges the GOAWAY's PING).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

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
}
