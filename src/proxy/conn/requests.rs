//! The requests of one connection: how many started, how many are in flight, the limit
//! on the latter, and the response body that ends a request when it is done.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::super::{Body, BoxError};
use super::LIMIT_LOG;
use crate::telemetry::Metrics;

/// Requests of one connection: how many started and how many are in flight (from the
/// service call until the response body is done), and the limit on the latter.
pub struct ConnState {
    /// Started requests in the high 32 bits, in-flight ones in the low 32.
    counts: AtomicU64,
    /// Permits for requests in flight (`max_concurrent_requests_per_connection`).
    slots: Semaphore,
    limit: usize,
    pub(super) metrics: Arc<Metrics>,
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
    pub(super) fn counts(&self) -> (u64, u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
