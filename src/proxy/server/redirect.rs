//! The plain-HTTP listener: every request is redirected to the same URL over HTTPS,
//! but ACME HTTP-01 challenges for routes written for them.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Limits, Socket, serve_plain};
use crate::proxy::{Body, Proxy, empty};
use crate::telemetry::Metrics;

/// Answers every plain-HTTP request with a redirect to the same URL over HTTPS —
/// except ACME HTTP-01 challenges for routes written for them, which `proxy` serves
/// (cert-manager's solver Ingresses). `https_port` is added to the target unless it is
/// 443.
pub async fn serve_redirect(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    https_port: u16,
    limits: Limits,
    _metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let socket = Socket {
        default_port: 80,
        gateway: None,
        name: "http redirect",
    };
    serve_plain(listener, proxy, limits, shutdown, socket, Some(https_port)).await
}

pub(super) fn redirect_to_https<B>(req: &Request<B>, https_port: u16) -> Response<Body> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let host = authority
        .and_then(|a| crate::routes::authority::canonical(a, 80))
        .map(|c| c.host)
        .map(|h| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.into_owned()
            }
        });
    let mut resp = Response::new(empty());
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let target = format!("https://{host}{port}{path}");
    *resp.status_mut() = if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    match HeaderValue::from_str(&target) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_path_and_query() {
        let cases = [
            (
                "app.example.com",
                "/a?b=1",
                443,
                "https://app.example.com/a?b=1",
            ),
            (
                "app.example.com:8080",
                "/",
                8443,
                "https://app.example.com:8443/",
            ),
            ("[::1]:8080", "/x", 443, "https://[::1]/x"),
        ];
        for (host, path, port, want) in cases {
            let req = Request::builder()
                .uri(path)
                .header("host", host)
                .body(())
                .unwrap();
            let resp = redirect_to_https(&req, port);
            assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
            assert_eq!(resp.headers()["location"], want, "{host}{path}");
        }
        let post = Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "h")
            .body(())
            .unwrap();
        assert_eq!(
            redirect_to_https(&post, 443).status(),
            StatusCode::PERMANENT_REDIRECT
        );
        let none = Request::builder().uri("/").body(()).unwrap();
        assert_eq!(
            redirect_to_https(&none, 443).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
