//! Prometheus metrics. Label values are shared `Arc<str>`s so recording a request
//! clones a pointer, not a string.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A route id as a label value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteLabel(pub Arc<str>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: RouteLabel,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: RouteLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Every metric Portcullis exports, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    upstream_errors: Family<KindLabels, Counter>,
    table_generation: Gauge,
    table_routes: Gauge,
    table_build_seconds: Histogram,
    connections: Gauge,
    upstream_cookies_dropped: Counter,
    connection_limit_hits: Family<LimitLabels, Counter>,
    connection_timeouts: Family<PhaseLabels, Counter>,
    proxy_protocol_refused: Counter,
    /// The route label of requests that matched no route.
    unrouted: RouteLabel,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status code (route `none` when nothing matched)",
            requests.clone(),
        );
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, by route",
            duration.clone(),
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind (connect, timeout, protocol, upgrade)",
            upstream_errors.clone(),
        );
        let table_generation = Gauge::default();
        registry.register(
            "routing_table_generation",
            "Generation of the live routing table; increases on every swap",
            table_generation.clone(),
        );
        let table_routes = Gauge::default();
        registry.register(
            "routing_table_routes",
            "Routes in the live routing table",
            table_routes.clone(),
        );
        let table_build_seconds =
            Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        registry.register(
            "routing_table_build_seconds",
            "Time to build a routing table from the model",
            table_build_seconds.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open",
            connections.clone(),
        );
        let upstream_cookies_dropped = Counter::default();
        registry.register(
            "upstream_cookies_dropped",
            "Set-Cookie headers from upstreams that named a Portcullis cookie, dropped",
            upstream_cookies_dropped.clone(),
        );
        let connection_limit_hits = Family::<LimitLabels, Counter>::default();
        registry.register(
            "connection_limit_hits",
            "Times a client-side limit was reached: `connections_per_worker` (a worker \
             paused accepting) or `requests_per_connection` (a request waited for a slot)",
            connection_limit_hits.clone(),
        );
        let connection_timeouts = Family::<PhaseLabels, Counter>::default();
        registry.register(
            "connection_timeouts",
            "Client connections closed by a deadline: `handshake` (TLS, PROXY header), \
             `first_request` (no request headers in time) or `idle` (no request in flight)",
            connection_timeouts.clone(),
        );
        let proxy_protocol_refused = Counter::default();
        registry.register(
            "proxy_protocol_refused",
            "Connections closed for a missing or invalid PROXY protocol header",
            proxy_protocol_refused.clone(),
        );
        Metrics {
            registry,
            connection_limit_hits,
            connection_timeouts,
            proxy_protocol_refused,
            upstream_cookies_dropped,
            requests,
            duration,
            upstream_errors,
            table_generation,
            table_routes,
            table_build_seconds,
            connections,
            unrouted: RouteLabel(Arc::from("none")),
        }
    }

    pub fn request(&self, route: Option<&Arc<str>>, status: u16, seconds: f64) {
        let route = match route {
            Some(id) => {
                let route = RouteLabel(id.clone());
                self.duration
                    .get_or_create(&RouteLabels {
                        route: route.clone(),
                    })
                    .observe(seconds);
                route
            }
            None => self.unrouted.clone(),
        };
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    pub fn table_swapped(&self, generation: u64, routes: usize, build_seconds: f64) {
        self.table_generation.set(generation as i64);
        self.table_routes.set(routes as i64);
        self.table_build_seconds.observe(build_seconds);
    }

    pub fn upstream_cookies_dropped(&self, n: usize) {
        self.upstream_cookies_dropped.inc_by(n as u64);
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// A client-side limit was reached (`connections_per_worker`,
    /// `requests_per_connection`).
    pub fn connection_limit_hit(&self, limit: &'static str) {
        self.connection_limit_hits
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A client connection was closed by a deadline (`handshake`, `first_request`,
    /// `idle`).
    pub fn connection_timeout(&self, phase: &'static str) {
        self.connection_timeouts
            .get_or_create(&PhaseLabels { phase })
            .inc();
    }

    pub fn proxy_protocol_refused(&self) {
        self.proxy_protocol_refused.inc();
    }

    /// The registry for components that add their own metrics at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
