//! Directory sync metrics, registered by the component itself under
//! `<registry prefix>_directory_*` (`portcullis_directory_*` in the binary).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::okta::Endpoint;

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncKind {
    Full,
    Incremental,
}

impl SyncKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncKind::Full => "full",
            SyncKind::Incremental => "incremental",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SyncLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// Handles to the directory metrics; clones share the same series.
#[derive(Debug, Clone)]
pub struct DirectoryMetrics {
    last_success: Gauge,
    duration: Family<KindLabels, Histogram>,
    syncs: Family<SyncLabels, Counter>,
    users: Gauge,
    groups: Gauge,
    api_calls: Family<EndpointLabels, Counter>,
    rate_limited: Family<EndpointLabels, Counter>,
}

impl DirectoryMetrics {
    /// Creates the metrics and registers them in a `directory` sub-registry.
    pub fn register(registry: &mut Registry) -> DirectoryMetrics {
        let registry = registry.sub_registry_with_prefix("directory");
        let last_success = Gauge::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful directory sync (full or incremental)",
            last_success.clone(),
        );
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ])
        });
        registry.register(
            "sync_duration_seconds",
            "Duration of successful directory syncs, by kind (full, incremental)",
            duration.clone(),
        );
        let syncs = Family::<SyncLabels, Counter>::default();
        registry.register(
            "syncs",
            "Directory syncs, by kind and result (ok, error)",
            syncs.clone(),
        );
        let users = Gauge::default();
        registry.register("users", "Users in the directory snapshot", users.clone());
        let groups = Gauge::default();
        registry.register("groups", "Groups in the directory snapshot", groups.clone());
        let api_calls = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "api_calls",
            "Okta Management API calls, by endpoint (every attempt)",
            api_calls.clone(),
        );
        let rate_limited = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "api_rate_limited",
            "Okta Management API answers with status 429, by endpoint",
            rate_limited.clone(),
        );
        DirectoryMetrics {
            last_success,
            duration,
            syncs,
            users,
            groups,
            api_calls,
            rate_limited,
        }
    }

    pub(crate) fn api_call(&self, endpoint: Endpoint) {
        self.api_calls
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .inc();
    }

    pub(crate) fn rate_limited(&self, endpoint: Endpoint) {
        self.rate_limited
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .inc();
    }

    pub(crate) fn sync_ok(
        &self,
        kind: SyncKind,
        seconds: f64,
        unix_seconds: i64,
        users: usize,
        groups: usize,
    ) {
        self.duration
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .observe(seconds);
        self.syncs
            .get_or_create(&SyncLabels {
                kind: kind.as_str(),
                result: "ok",
            })
            .inc();
        self.last_success.set(unix_seconds);
        self.users.set(users as i64);
        self.groups.set(groups as i64);
    }

    pub(crate) fn sync_failed(&self, kind: SyncKind) {
        self.syncs
            .get_or_create(&SyncLabels {
                kind: kind.as_str(),
                result: "error",
            })
            .inc();
    }
}
