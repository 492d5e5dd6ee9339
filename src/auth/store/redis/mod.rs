//! The connection to Redis behind the session store: one server (`redis://`,
//! `rediss://`), the primary that Sentinel names (`redis+sentinel://`), or a Cluster
//! (`redis+cluster://`), with TLS on rustls.
//!
//! A task on the main runtime owns the connection: it connects (at start-up without
//! holding the process up, so `/readyz` waits instead of the process crash-looping),
//! pings it every [`HEALTH_EVERY`], and reconnects — asking the sentinels again — when
//! it breaks. Requests only borrow it, and no store call waits longer than
//! [`COMMAND_WAIT`]: a call that does not finish by then is a [`StoreError`], and the
//! request that made it a 503.
//!
//! `connect` owns the topology: the clients for one server, Sentinel or Cluster, with
//! TLS, and one connection attempt; this file owns the shared connection, the calls and
//! the task that keeps it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use redis::FromRedisValue;
use tokio::sync::{Notify, watch};

use self::connect::{Conn, Target, connect, target};
use super::StoreError;
use crate::config::StoreUrl;

mod connect;

/// The longest any one store call waits (a request makes one or two).
pub const COMMAND_WAIT: Duration = Duration::from_secs(1);
/// How often a healthy connection is pinged.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// How often a connection is tried again while Redis cannot be reached.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// How to reach Redis, and the TLS material for it.
pub struct StoreSettings {
    pub url: StoreUrl,
    /// `session_store_ca_file`'s PEM; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// `session_store_cert_file` and `session_store_key_file`, PEM.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    op: &'static str,
    kind: &'static str,
}

/// The store's metrics, registered by [`Redis::register`].
#[derive(Clone)]
struct StoreMetrics {
    errors: Family<ErrorLabels, Counter>,
    duration: Family<OpLabels, Histogram>,
    up: Gauge,
}

struct Inner {
    target: Target,
    /// Where it points, without credentials (for log lines).
    describe: String,
    /// The connection and its generation (so a stale failure can't drop a newer one).
    current: Mutex<Option<(u64, Conn)>>,
    generation: AtomicU64,
    /// Set when a call timed out: the task tries a fresh connection beside it.
    suspect: AtomicBool,
    /// The last connection attempt failed (calls without a connection fail at once).
    down: AtomicBool,
    /// Redis has answered at least once since start-up (`/readyz`).
    answered: Arc<AtomicBool>,
    wake: Notify,
    connected: watch::Sender<u64>,
    metrics: StoreMetrics,
}

/// The Redis session store's connection. Cheap to share; the task stops with the
/// runtime.
pub struct Redis {
    inner: Arc<Inner>,
}

impl Redis {
    /// Builds the client and starts the connection task on the current runtime. Fails
    /// only on settings that can never work (unreadable certificates); an unreachable
    /// Redis is waited for.
    pub fn start(settings: StoreSettings) -> Result<Redis, StoreError> {
        let target = target(&settings).map_err(|e| StoreError(format!("session store: {e}")))?;
        let describe = settings.url.describe();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<OpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ])
        });
        let inner = Arc::new(Inner {
            target,
            describe,
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
            suspect: AtomicBool::new(false),
            down: AtomicBool::new(true),
            answered: Arc::new(AtomicBool::new(false)),
            wake: Notify::new(),
            connected: watch::channel(0).0,
            metrics: StoreMetrics {
                errors,
                duration,
                up: Gauge::default(),
            },
        });
        tokio::spawn(maintain(inner.clone()));
        Ok(Redis { inner })
    }

    /// Turns true once Redis has answered (and stays true: a later outage is a 503
    /// per request, not an unready replica — public routes keep working).
    pub fn answered(&self) -> Arc<AtomicBool> {
        self.inner.answered.clone()
    }

    /// Adds the store's metrics to `registry` (prefix `portcullis_`).
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.inner.metrics;
        registry.register(
            "session_store_errors",
            "Session store calls that failed, by operation and kind (timeout, connection, \
             server); each one answered a request with a 503",
            m.errors.clone(),
        );
        registry.register(
            "session_store_duration_seconds",
            "Time of session store calls, by operation (failures included; capped by the \
             1 s bound)",
            m.duration.clone(),
        );
        registry.register(
            "session_store_up",
            "1 while the session store answers (health check every second), else 0",
            m.up.clone(),
        );
    }

    /// Runs `cmd`, waiting at most [`COMMAND_WAIT`] in all.
    pub async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = tokio::time::timeout(COMMAND_WAIT, self.run(cmd)).await;
        let inner = &self.inner;
        let elapsed = start.elapsed().as_secs_f64();
        inner
            .metrics
            .duration
            .get_or_create(&OpLabels { op })
            .observe(elapsed);
        let (kind, message) = match result {
            Ok(Ok(v)) => {
                inner.seen_up();
                return Ok(v);
            }
            Ok(Err(Failure::NotConnected)) => ("connection", "not connected".to_string()),
            Ok(Err(Failure::Redis(generation, e))) => {
                let kind = if broken(&e) {
                    inner.drop_connection(generation, &e);
                    "connection"
                } else {
                    "server"
                };
                (kind, format!("Redis: {}", error_text(&e)))
            }
            Err(_) => {
                // The connection may be fine and Redis only paused (or slow), or the
                // path to it may be gone: try a fresh connection beside it.
                inner.suspect.store(true, Ordering::Release);
                inner.wake.notify_one();
                (
                    "timeout",
                    format!("no answer within {} ms", COMMAND_WAIT.as_millis()),
                )
            }
        };
        inner
            .metrics
            .errors
            .get_or_create(&ErrorLabels { op, kind })
            .inc();
        Err(StoreError(format!("session store ({op}): {message}")))
    }

    async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Failure> {
        let (generation, conn) = self.connection().await?;
        conn.query(cmd)
            .await
            .map_err(|e| Failure::Redis(generation, e))
    }

    /// The current connection; without one, waits for the connection task's attempt
    /// unless the last attempt already failed.
    async fn connection(&self) -> Result<(u64, Conn), Failure> {
        let inner = &self.inner;
        let mut connected = inner.connected.subscribe();
        loop {
            if let Some(c) = inner.current() {
                return Ok(c);
            }
            if inner.down.load(Ordering::Acquire) {
                inner.wake.notify_one();
                return Err(Failure::NotConnected);
            }
            inner.wake.notify_one();
            if connected.changed().await.is_err() {
                return Err(Failure::NotConnected);
            }
        }
    }
}

enum Failure {
    NotConnected,
    Redis(u64, redis::RedisError),
}

impl Inner {
    fn current(&self) -> Option<(u64, Conn)> {
        crate::sync::lock(&self.current).clone()
    }

    fn install(&self, conn: Conn) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *crate::sync::lock(&self.current) = Some((generation, conn));
        self.down.store(false, Ordering::Release);
        self.suspect.store(false, Ordering::Release);
        self.connected.send_replace(generation);
        self.seen_up();
    }

    /// Forgets connection `generation` (if it is still the current one).
    fn drop_connection(&self, generation: u64, e: &redis::RedisError) {
        let mut current = crate::sync::lock(&self.current);
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
            drop(current);
            tracing::warn!(store = %self.describe, error = %error_text(e),
                "session store connection lost; reconnecting");
            self.seen_down();
            self.wake.notify_one();
        }
    }

    fn seen_up(&self) {
        if self.metrics.up.set(1) != 1 {
            tracing::info!(store = %self.describe, "session store answers");
        }
        self.answered.store(true, Ordering::Release);
    }

    fn seen_down(&self) {
        if self.metrics.up.set(0) == 1 {
            tracing::warn!(store = %self.describe,
                "session store not answering: requests that need it get a 503");
        }
    }
}

/// The connection task: connects, health-checks and reconnects, for as long as the
/// runtime runs.
async fn maintain(inner: Arc<Inner>) {
    let mut failures = 0u32;
    loop {
        match inner.current() {
            None => match connect(&inner.target).await {
                Ok(conn) => {
                    if failures > 0 || !inner.answered.load(Ordering::Acquire) {
                        tracing::info!(store = %inner.describe, "connected to the session store");
                    }
                    failures = 0;
                    inner.install(conn);
                }
                Err(e) => {
                    inner.down.store(true, Ordering::Release);
                    // Anyone waiting for this attempt hears of its failure.
                    inner.connected.send_modify(|_| {});
                    inner.seen_down();
                    if failures.is_multiple_of(50) {
                        tracing::warn!(store = %inner.describe, error = %e,
                            "cannot connect to the session store; retrying every 200 ms");
                    }
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            },
            Some((generation, conn)) => {
                if inner.suspect.swap(false, Ordering::AcqRel) {
                    // A call timed out. A fresh connection that works replaces the old
                    // one (the old path may be gone); one that can't be made leaves it
                    // (Redis itself may be stalled, and then the old one recovers first).
                    if let Ok(fresh) = connect(&inner.target).await {
                        tracing::info!(store = %inner.describe,
                            "replaced a session store connection that stopped answering");
                        inner.install(fresh);
                        continue;
                    }
                } else {
                    tokio::select! {
                        _ = inner.wake.notified() => {},
                        _ = tokio::time::sleep(HEALTH_EVERY) => {},
                    }
                }
                if inner.current().is_none_or(|(g, _)| g != generation) {
                    continue;
                }
                let ping =
                    tokio::time::timeout(COMMAND_WAIT, conn.query::<String>(&redis::cmd("PING")))
                        .await;
                match ping {
                    Ok(Ok(_)) => inner.seen_up(),
                    Ok(Err(e)) if broken(&e) => inner.drop_connection(generation, &e),
                    Ok(Err(_)) => inner.seen_up(),
                    Err(_) => {
                        inner.seen_down();
                        inner.suspect.store(true, Ordering::Release);
                    }
                }
            }
        }
    }
}

/// Errors after which the connection is not used again: it is closed, or it reaches a
/// server that is no longer the primary (a fail-over demoted it).
fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.kind() == redis::ErrorKind::ReadOnly
        || e.code() == Some("MASTERDOWN")
        || e.code() == Some("LOADING")
}

/// A Redis error for a log line: the client's errors name hosts and Redis's own
/// answer, never the password (it is never part of a command we log).
fn error_text(e: &redis::RedisError) -> String {
    e.to_string()
}
