//! The connect-time check on upstream addresses: every address an endpoint's name
//! resolves to is judged just before connecting, so a DNS name that points at loopback
//! or a metadata service (or changes to, after the index saw it) is refused too.
//! Portcullis's own listeners are refused for every endpoint; tenant endpoints also get
//! the [`AddressPolicy`] (`routes/reach.rs`). Both upstream connectors (the HTTP/1.1
//! pool and the general clients) open their TCP connections through [`connect`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::upstream::CONNECT_TIMEOUT;
use crate::routes::reach::canonical;
use crate::routes::{AddressPolicy, Reach};

/// Refuses what endpoints may not reach.
#[derive(Debug, Clone, Default)]
pub struct UpstreamGuard {
    /// What tenant endpoints may not reach.
    policy: AddressPolicy,
    /// Portcullis's own listeners (as bound: an unspecified address means every local
    /// address on that port), as an address and an inclusive range of ports.
    own: Vec<(IpAddr, u16, u16)>,
}

impl UpstreamGuard {
    pub fn new(policy: AddressPolicy, own: Vec<SocketAddr>) -> Self {
        let own = own.iter().map(|a| (a.ip(), a.port(), a.port())).collect();
        UpstreamGuard { policy, own }
    }

    /// Also refuses `ip`'s ports `first..=last` (the Gateway sockets' range: which of
    /// them are bound changes with the Gateways, and none is ever an upstream).
    pub fn with_own_ports(mut self, ip: IpAddr, first: u16, last: u16) -> Self {
        self.own.push((ip, first, last));
        self
    }

    /// Why an endpoint of `reach` may not connect to `addr`, or `None` when it may.
    pub fn refuses(&self, reach: Reach, addr: SocketAddr) -> Option<String> {
        let ip = canonical(addr.ip());
        if self.is_own(ip, addr.port()) {
            return Some(format!(
                "{addr} is one of Portcullis's own listeners, which are never an upstream"
            ));
        }
        match reach {
            Reach::Operator => None,
            Reach::Tenant => self.policy.refuses(ip),
        }
    }

    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|&(l, first, last)| {
            let listener = canonical(l);
            (first..=last).contains(&port)
                && (listener == ip
                    || (listener.is_unspecified() && is_local(ip))
                    || (ip.is_unspecified() && is_local(listener)))
        })
    }
}

/// Whether `ip` is one of this host's own addresses. Binding a UDP socket to it
/// succeeds only for a local address, and sends nothing.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Why a connection was not opened, in words for the log and the 502 page's detail.
pub type ConnectError = String;

/// Resolves `host` (a name or an IP literal, IPv6 with or without brackets) and opens a
/// TCP connection to the first address the guard allows that answers, within
/// [`CONNECT_TIMEOUT`] per step. Refused addresses are skipped; when none is left the
/// error says why.
pub async fn connect(
    guard: &UpstreamGuard,
    reach: Reach,
    host: &str,
    port: u16,
) -> Result<TcpStream, ConnectError> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| "name lookup timed out".to_string())?
            .map_err(|e| format!("name lookup: {e}"))?
            .collect(),
    };
    let mut reason = String::from("the name has no addresses");
    for addr in addrs {
        if let Some(why) = guard.refuses(reach, addr) {
            tracing::warn!(%host, %addr, "refused to connect to an upstream: {why}");
            reason = format!("refused: {why}");
            continue;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
                let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
                return Ok(stream);
            }
            Ok(Err(e)) => reason = format!("tcp connect to {addr}: {e}"),
            Err(_) => reason = format!("tcp connect to {addr} timed out"),
        }
    }
    Err(reason)
}

// === impl GuardedConnector ===

/// The TCP connector under the general (HTTPS, h2c, upgrade) clients: [`connect`]
/// for the URI's host and port.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    pub guard: Arc<UpstreamGuard>,
    pub reach: Reach,
}

#[derive(Debug, thiserror::Error)]
#[error("connect to {authority}: {reason}")]
pub struct GuardedConnectError {
    authority: String,
    reason: ConnectError,
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = GuardedConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let guard = self.guard.clone();
        let reach = self.reach;
        Box::pin(async move {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            let failed = |reason| GuardedConnectError {
                authority: authority.clone(),
                reason,
            };
            let host = uri
                .host()
                .ok_or_else(|| failed("the URI has no host".into()))?;
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            connect(&guard, reach, host, port)
                .await
                .map(TokioIo::new)
                .map_err(failed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_listeners_are_refused_for_everyone() {
        let guard = UpstreamGuard::new(
            AddressPolicy {
                allow_loopback: true,
                ..AddressPolicy::default()
            },
            vec![addr("127.0.0.1:8443"), addr("0.0.0.0:9090")],
        );
        for reach in [Reach::Operator, Reach::Tenant] {
            for target in [
                "127.0.0.1:8443",
                "127.0.0.1:9090",
                "127.0.0.2:9090",
                "[::1]:9090",
                "0.0.0.0:8443",
                "[::ffff:127.0.0.1]:8443",
            ] {
                assert!(
                    guard.refuses(reach, addr(target)).is_some(),
                    "{reach:?} {target}"
                );
            }
            // Another loopback port is someone else's.
            assert_eq!(guard.refuses(reach, addr("127.0.0.1:8080")), None);
        }
        // The Gateway sockets' whole range, bound or not yet.
        let gateways = guard
            .clone()
            .with_own_ports("0.0.0.0".parse().unwrap(), 20000, 20009);
        for reach in [Reach::Operator, Reach::Tenant] {
            for target in [
                "127.0.0.1:20000",
                "127.0.0.1:20005",
                "[::1]:20009",
                "127.0.0.1:8443",
            ] {
                assert!(
                    gateways.refuses(reach, addr(target)).is_some(),
                    "{reach:?} {target}"
                );
            }
            for target in ["127.0.0.1:19999", "127.0.0.1:20010"] {
                assert_eq!(gateways.refuses(reach, addr(target)), None, "{target}");
            }
            // 127.0.0.2 does not reach a listener bound to 127.0.0.1 alone.
            assert_eq!(guard.refuses(reach, addr("127.0.0.2:8443")), None);
        }
    }

    #[test]
    fn tenants_get_the_address_policy_operators_do_not() {
        let guard = UpstreamGuard::new(AddressPolicy::default(), vec![]);
        for target in [
            "127.0.0.1:80",
            "169.254.169.254:80",
            "[fd00:ec2::254]:80",
            "[::1]:80",
        ] {
            assert!(
                guard.refuses(Reach::Tenant, addr(target)).is_some(),
                "{target}"
            );
            assert_eq!(
                guard.refuses(Reach::Operator, addr(target)),
                None,
                "{target}"
            );
        }
        assert_eq!(guard.refuses(Reach::Tenant, addr("10.0.0.1:80")), None);
    }

    #[tokio::test]
    async fn connect_refuses_before_sending_anything() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let guard = UpstreamGuard::new(AddressPolicy::default(), vec![]);
        let err = connect(&guard, Reach::Tenant, "localhost", port)
            .await
            .unwrap_err();
        assert!(err.contains("refused") && err.contains("loopback"), "{err}");
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "no connection was made");
        // The operator's endpoint may reach it.
        connect(&guard, Reach::Operator, "localhost", port)
            .await
            .unwrap();
    }
}
