//! The data plane's listeners: the HTTPS listener served from the worker threads
//! (`https`), the plain-HTTP listener that redirects to HTTPS (`redirect`), and the
//! serving every socket shares, the Gateways' too (`serve`: TLS by SNI, HTTP/1.1 and
//! HTTP/2 by ALPN, the PROXY header; `slots`: connection slots and the drain on
//! shutdown).

mod https;
mod redirect;
mod serve;
mod slots;

pub use crate::server::{Limits, accept, bind, stopped};
pub use https::{ServeError, Worker, spawn_workers};
pub use redirect::serve_redirect;
pub use serve::{serve_plain, serve_tls};

/// What a socket is to the requests it accepts.
#[derive(Debug, Clone)]
pub struct Socket {
    /// The port a `Host` without one means.
    pub default_port: u16,
    /// A Gateway's socket: its rules answer.
    pub gateway: Option<super::GatewayConn>,
    /// For log lines.
    pub name: &'static str,
}

impl Socket {
    const HTTPS: Socket = Socket {
        default_port: 443,
        gateway: None,
        name: "https",
    };
}
