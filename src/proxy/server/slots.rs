//! Connection slots: how many connections one listener serves on one worker at once,
//! the wait (not accepting) while all are taken, and the drain that waits for them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::stopped;
use crate::proxy::conn;
use crate::telemetry::Metrics;

/// Connection slots of one listener (or worker), and the drain that waits for them.
pub(super) struct Slots {
    sem: Arc<Semaphore>,
    max: usize,
    listener: &'static str,
}

impl Slots {
    pub(super) fn new(max: usize, listener: &'static str) -> Slots {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            sem: Arc::new(Semaphore::new(max)),
            max,
            listener,
        }
    }

    /// A slot for the next connection, waiting (and not accepting) while all are
    /// taken; `None` once shutdown starts.
    pub(super) async fn take(
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
    pub(super) async fn drain(&self, limit: Duration) {
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
