//! A route's backend: its endpoints, the live counters that pick among them, and
//! ejection after consecutive transport failures. Shared by routes with the same spec
//! and carried across table rebuilds.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::super::model::*;

/// Consecutive transport failures (connect errors, timeouts) that eject an endpoint.
pub const EJECT_AFTER_FAILURES: u32 = 5;
/// How long an ejected endpoint is skipped; it is tried again afterwards.
pub const EJECT_FOR_MS: u64 = 10_000;

// === impl Backend ===

/// The endpoints of one backend and the state that picks among them. Shared by every
/// route with the same backend spec and carried across table rebuilds.
#[derive(Debug)]
pub struct Backend {
    pub balance: Balance,
    pub endpoints: Box<[Endpoint]>,
    next: AtomicUsize,
}

/// One upstream address with its live counters.
#[derive(Debug)]
pub struct Endpoint {
    pub spec: EndpointSpec,
    /// `host:port`, bracketed for IPv6, ready for URIs.
    pub authority: http::uri::Authority,
    inflight: AtomicUsize,
    failures: AtomicU32,
    /// Milliseconds on the caller's clock until which the endpoint is skipped.
    ejected_until: AtomicU64,
}

impl Backend {
    pub fn new(spec: &BackendSpec) -> Backend {
        Backend {
            balance: spec.balance,
            endpoints: spec.endpoints.iter().filter_map(Endpoint::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Picks an endpoint by the backend's balancing rule, skipping ejected ones unless
    /// every endpoint is ejected (then all are tried, rather than failing outright).
    /// `now_ms` is any monotonic millisecond clock, the same one given to `report`.
    pub fn pick(&self, now_ms: u64) -> Option<&Endpoint> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let healthy = |e: &&Endpoint| e.ejected_until.load(Ordering::Relaxed) <= now_ms;
        let rotation = (0..n).map(|i| &self.endpoints[(start + i) % n]);
        let chosen = match self.balance {
            Balance::RoundRobin => rotation.clone().find(healthy),
            Balance::LeastRequest => rotation
                .clone()
                .filter(healthy)
                .min_by_key(|e| e.inflight.load(Ordering::Relaxed)),
        };
        chosen.or_else(|| rotation.min_by_key(|e| e.inflight.load(Ordering::Relaxed)))
    }
}

impl Endpoint {
    fn new(spec: &EndpointSpec) -> Option<Endpoint> {
        let authority = if spec.host.contains(':') {
            format!("[{}]:{}", spec.host, spec.port)
        } else {
            format!("{}:{}", spec.host, spec.port)
        };
        Some(Endpoint {
            spec: spec.clone(),
            authority: authority.parse().ok()?,
            inflight: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        })
    }

    /// Counts a request in flight until the guard drops (for least-request balancing).
    pub fn start(&self) -> InflightGuard<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self)
    }

    /// Records how a request went. Transport failures in a row eject the endpoint for a
    /// while; any success resets the count.
    pub fn report(&self, transport_ok: bool, now_ms: u64) {
        if transport_ok {
            self.failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= EJECT_AFTER_FAILURES {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until
                .store(now_ms + EJECT_FOR_MS, Ordering::Relaxed);
        }
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now_ms
    }
}

/// Marks a request as finished when dropped.
#[derive(Debug)]
pub struct InflightGuard<'e>(&'e Endpoint);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}
