//! The client side's protocol limits and timeouts, with their defaults (the config
//! file's defaults come from here: one source).

use std::time::Duration;

/// Protocol limits, timeouts and client-address settings of the client side.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to finish its TLS handshake (and to send its PROXY header
    /// first, with `proxy_protocol`).
    pub tls_handshake_timeout: Duration,
    /// Time a client has to send its first request's headers after the handshake;
    /// for HTTP/1.1 also the time a keep-alive connection waits for the next request's
    /// headers (`timeout_header_read`; zero: none).
    pub header_read_timeout: Duration,
    /// Time a connection with no request in flight stays open (`timeout_idle`,
    /// Pomerium's; zero: none).
    pub idle_timeout: Duration,
    /// Largest request head accepted, in bytes.
    pub max_header_bytes: usize,
    /// Time in-flight requests get to finish after shutdown starts.
    pub drain_timeout: Duration,
    /// Connections one worker serves at once (TLS handshakes included); a full
    /// worker stops accepting until one closes (`max_connections_per_worker`).
    pub max_connections_per_worker: usize,
    /// HTTP/2 streams a client may have open on one connection
    /// (`http2_max_concurrent_streams`).
    pub http2_max_concurrent_streams: u32,
    /// Requests one client connection may have in flight, from its headers to the end
    /// of its response body; more wait (`max_concurrent_requests_per_connection`).
    pub max_concurrent_requests_per_connection: usize,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from a load
    /// balancer; one that does not is closed (`use_proxy_protocol`).
    pub proxy_protocol: bool,
    /// Trusted proxies in front that append to `X-Forwarded-For`
    /// (`xff_num_trusted_hops`).
    pub xff_num_trusted_hops: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_header_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
            max_connections_per_worker: 4096,
            http2_max_concurrent_streams: 100,
            max_concurrent_requests_per_connection: 100,
            proxy_protocol: false,
            xff_num_trusted_hops: 0,
        }
    }
}

/// `None` for a zero duration ("no limit").
pub fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}
