//! Directory sync: Portcullis reads Okta's users and groups itself (Management API,
//! `SSWS` token), so that policy `groups` criteria see current membership and a user
//! who is no longer ACTIVE in Okta loses access within one sync — not when their
//! session expires. Okta caps the groups claim in tokens; the directory has no cap.
//!
//! [`Directory::start`] spawns the sync loop: a full sync at start and every
//! `refresh_interval`, an incremental sync in between, each publishing an immutable
//! [`Snapshot`] through an atomic swap. The proxy asks
//! [`Directory::apply`] (or [`Snapshot::lookup`]) on every request that has an identity.
//! A failed sync keeps the previous snapshot and retries with exponential backoff.
//!
//! Known gap: an incremental sync does not see a *deleted* group (Okta has no
//! "deleted since" filter); its members keep it until the next full sync.

pub mod metrics;
pub mod okta;
mod snapshot;
pub mod sync;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jiff::Timestamp;
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use self::metrics::{DirectoryMetrics, SyncKind};
pub use self::okta::{Client, PageSizes};
pub use self::snapshot::{Snapshot, UserStatus, Verdict};
use self::sync::Watermarks;
use crate::config::DirectorySettings;
use crate::policy::Identity;

/// Where the groups come from, as `/.portcullis/` and `/debug` show it.
pub const SOURCE: &str = "okta directory";
/// Incremental syncs run this many times per `refresh_interval`...
const INCREMENTALS_PER_FULL: u32 = 10;
/// ...but not more often than this.
const MIN_INCREMENTAL_INTERVAL: Duration = Duration::from_secs(10);
/// First retry delay after a failed sync; doubles per failure.
const RETRY_INITIAL: Duration = Duration::from_secs(5);
/// Longest retry delay; also the delay after Okta rejects the token.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Why a sync failed. Messages never hold the API token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 401 or 403: the token is wrong, expired, revoked or lacks permission.
    #[error("Okta rejected the API token: {status} {summary}")]
    Unauthorized { status: u16, summary: String },
    #[error("Okta API {endpoint} is unreachable: {message}")]
    Transport {
        endpoint: &'static str,
        message: String,
    },
    #[error("Okta API {endpoint} answered {status}: {summary}")]
    Status {
        endpoint: &'static str,
        status: u16,
        summary: String,
    },
    #[error("Okta API {endpoint} stayed rate limited after {attempts} attempts")]
    RateLimited {
        endpoint: &'static str,
        attempts: u32,
    },
    #[error("Okta API {endpoint} sent an unreadable answer: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

/// Timing of the sync loop. [`Options::new`] derives it from the settings; tests
/// shorten it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Between full syncs (`refresh_interval`).
    pub full_interval: Duration,
    /// Between incremental syncs.
    pub incremental_interval: Duration,
    /// See [`sync::DEFAULT_OVERLAP`].
    pub overlap: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Timeout of each API call.
    pub request_timeout: Duration,
    pub pages: PageSizes,
}

impl Options {
    /// Full syncs every `refresh_interval`, incremental ones ten times as often (at
    /// most every 10 s).
    pub fn new(settings: &DirectorySettings) -> Options {
        let full = settings.refresh_interval.max(Duration::from_secs(1));
        Options {
            full_interval: full,
            incremental_interval: (full / INCREMENTALS_PER_FULL).max(MIN_INCREMENTAL_INTERVAL),
            overlap: sync::DEFAULT_OVERLAP,
            retry_initial: RETRY_INITIAL,
            retry_max: RETRY_MAX,
            request_timeout: okta::REQUEST_TIMEOUT,
            pages: PageSizes::default(),
        }
    }
}

/// What the sync loop has done, for `/debug` and the user page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Always [`SOURCE`].
    pub source: &'static str,
    /// The org's URL (never the token).
    pub url: String,
    /// A full sync has completed: [`Directory::snapshot`] is `Some`.
    pub ready: bool,
    #[serde(serialize_with = "opt_ts")]
    pub last_success: Option<Timestamp>,
    #[serde(serialize_with = "opt_ts")]
    pub last_full_sync: Option<Timestamp>,
    #[serde(serialize_with = "opt_ts")]
    pub last_error_at: Option<Timestamp>,
    /// The latest failure; kept after a later success (compare the times).
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub full_syncs: u64,
    pub incremental_syncs: u64,
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
    pub api_calls: u64,
    pub rate_limited: u64,
}

fn opt_ts<S: serde::Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

/// The live directory: the latest snapshot and the sync loop that keeps it current.
/// Dropping the last `Arc<Directory>` stops the loop.
pub struct Directory {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

struct Shared {
    snapshot: ArcSwapOption<Snapshot>,
    status: Mutex<Status>,
    client: Client,
    metrics: DirectoryMetrics,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Directory {
    /// Registers the metrics and spawns the sync loop (needs a Tokio runtime).
    pub fn start(
        settings: &DirectorySettings,
        registry: &mut Registry,
    ) -> Result<Arc<Directory>, Error> {
        Directory::start_with(settings, Options::new(settings), registry)
    }

    /// [`Directory::start`] with explicit timing.
    pub fn start_with(
        settings: &DirectorySettings,
        options: Options,
        registry: &mut Registry,
    ) -> Result<Arc<Directory>, Error> {
        let metrics = DirectoryMetrics::register(registry);
        let client = Client::new(
            &settings.url,
            &settings.api_token,
            options.pages,
            options.request_timeout,
            Some(metrics.clone()),
        )?;
        let shared = Arc::new(Shared {
            snapshot: ArcSwapOption::empty(),
            status: Mutex::new(Status {
                source: SOURCE,
                url: settings.url.to_string(),
                ..Status::default()
            }),
            client,
            metrics,
        });
        let task = tokio::spawn(run(shared.clone(), options)).abort_handle();
        Ok(Arc::new(Directory { shared, task }))
    }

    /// The latest snapshot; `None` until the first full sync has completed.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.shared.snapshot.load_full()
    }

    /// A full sync has completed (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.shared.snapshot.load().is_some()
    }

    /// Checks a signed-in identity against the latest snapshot; see
    /// [`Snapshot::apply`]. Before the first full sync: [`Verdict::NotSynced`].
    pub fn apply(&self, identity: &mut Identity) -> Verdict {
        match &*self.shared.snapshot.load() {
            Some(s) => s.apply(identity),
            None => Verdict::NotSynced,
        }
    }

    pub fn status(&self) -> Status {
        let mut status = crate::sync::lock(&self.shared.status).clone();
        status.api_calls = self.shared.client.calls();
        status.rate_limited = self.shared.client.rate_limited();
        status
    }
}

// === the sync loop ===

async fn run(shared: Arc<Shared>, options: Options) {
    let mut marks = Watermarks::default();
    let mut last_full: Option<Instant> = None;
    let mut failures = 0u32;
    let mut token_rejected_reported = false;
    loop {
        let current = shared.snapshot.load_full();
        let kind = match (&current, last_full) {
            (Some(_), Some(t)) if t.elapsed() < options.full_interval => SyncKind::Incremental,
            _ => SyncKind::Full,
        };
        let started = Instant::now();
        let result = match (&current, kind) {
            (Some(current), SyncKind::Incremental) => {
                sync::incremental(&shared.client, current, marks, options.overlap).await
            }
            _ => sync::full(&shared.client).await,
        };
        let delay = match result {
            Ok(synced) => {
                let seconds = started.elapsed().as_secs_f64();
                let snapshot = Arc::new(synced.snapshot);
                marks = synced.marks;
                failures = 0;
                token_rejected_reported = false;
                if kind == SyncKind::Full {
                    last_full = Some(started);
                }
                record_success(&shared, kind, &snapshot, seconds);
                shared.snapshot.store(Some(snapshot));
                let next_full = last_full
                    .map(|t| (t + options.full_interval).saturating_duration_since(Instant::now()))
                    .unwrap_or_default();
                next_full.min(options.incremental_interval)
            }
            Err(error) => {
                failures += 1;
                shared.metrics.sync_failed(kind);
                let delay = if let Error::Unauthorized { .. } = error {
                    // Retrying soon will not help; say so once, loudly.
                    if !token_rejected_reported {
                        tracing::error!(%error, "directory sync stopped: fix directory.api_token");
                        token_rejected_reported = true;
                    } else {
                        tracing::debug!(%error, "directory sync still unauthorized");
                    }
                    options.retry_max
                } else {
                    let delay = backoff(options.retry_initial, options.retry_max, failures);
                    tracing::warn!(
                        %error,
                        kind = kind.as_str(),
                        retry_in_s = delay.as_secs_f64(),
                        "directory sync failed; keeping the previous snapshot"
                    );
                    delay
                };
                let mut status = crate::sync::lock(&shared.status);
                status.last_error = Some(error.to_string());
                status.last_error_at = Some(Timestamp::now());
                status.consecutive_failures = failures;
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

fn record_success(shared: &Shared, kind: SyncKind, snapshot: &Snapshot, seconds: f64) {
    let now = Timestamp::now();
    shared.metrics.sync_ok(
        kind,
        seconds,
        now.as_second(),
        snapshot.user_count(),
        snapshot.group_count(),
    );
    let mut status = crate::sync::lock(&shared.status);
    status.ready = true;
    status.last_success = Some(now);
    status.consecutive_failures = 0;
    status.users = snapshot.user_count();
    status.groups = snapshot.group_count();
    status.memberships = snapshot.membership_count();
    match kind {
        SyncKind::Full => {
            status.full_syncs += 1;
            status.last_full_sync = Some(now);
            tracing::info!(
                users = snapshot.user_count(),
                groups = snapshot.group_count(),
                memberships = snapshot.membership_count(),
                seconds,
                "directory full sync done"
            );
        }
        SyncKind::Incremental => {
            status.incremental_syncs += 1;
            tracing::debug!(seconds, "directory incremental sync done");
        }
    }
}

/// `initial × 2^(failures-1)`, capped.
fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        for (failures, want) in [(1, s(5)), (2, s(10)), (3, s(20)), (7, s(300)), (60, s(300))] {
            assert_eq!(backoff(s(5), s(300), failures), want, "{failures}");
        }
    }

    #[test]
    fn incremental_interval_from_settings() {
        let settings = |secs| DirectorySettings {
            provider: crate::config::DirectoryProvider::Okta,
            url: "https://x.okta.com".parse().unwrap(),
            api_token: crate::config::Secret::new("t".into()),
            refresh_interval: Duration::from_secs(secs),
        };
        for (refresh, incremental) in [(600, 60), (3600, 360), (60, 10), (5, 10)] {
            assert_eq!(
                Options::new(&settings(refresh)).incremental_interval,
                Duration::from_secs(incremental),
                "{refresh}"
            );
        }
    }

    #[test]
    fn errors_never_show_the_token() {
        let e = Error::Unauthorized {
            status: 401,
            summary: "Invalid token provided (E0000011)".into(),
        };
        assert_eq!(
            e.to_string(),
            "Okta rejected the API token: 401 Invalid token provided (E0000011)"
        );
    }
}
