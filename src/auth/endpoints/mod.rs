//! Portcullis's own endpoints. On the authenticate host: `/.portcullis/sign_in`,
//! `/oauth2/callback`, `/.portcullis/sign_out`, `/.portcullis/signed_out`. On every
//! route host: `/.portcullis/` (who am I), `/.portcullis/user` (JSON),
//! `/.portcullis/callback` (the one-time handoff), `/.portcullis/sign_out`, and
//! `/.well-known/portcullis/jwks.json`.
//!
//! Sign-in, in order: a route host without a credential sets its nonce cookie and sends
//! the browser to the authenticate host's `sign_in` with the nonce's MAC; the
//! authenticate host signs the user in (or finds its session) and issues a handoff token
//! bound to the route host's origin and that MAC; the route host's `callback` checks the
//! token against its own origin and the browser's nonce cookie, once, and sets its own
//! credential. Renewal (cookie store) is the same round trip.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::gate::{Auth, OUTAGE_GRACE_SECS, SIGN_IN_FLOW_LIFETIME, short};
use super::handoff::Ticket;
use super::pages;
use super::provider::PendingAuth;
use super::redirect::{is_safe_path, validate_return_url};
use super::seal::Purpose;
use super::session::{RouteCredential, Session, StoreError};
use crate::policy::Identity;
use crate::reply::{Body, full};
use crate::routes::RoutingTable;
use crate::routes::authority::canonical;

mod sign_in;
mod sign_out;
mod user;

use sign_in::origin_url;
use sign_out::sign_out_binding;

pub const PREFIX: &str = "/.portcullis/";
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";
pub const CALLBACK_PATH: &str = "/oauth2/callback";
const SIGN_IN_PATH: &str = "/.portcullis/sign_in";
const SIGN_OUT_PATH: &str = "/.portcullis/sign_out";
const HANDOFF_PATH: &str = "/.portcullis/callback";
/// The sign-in flow cookie's sealed contents.
const FLOW: Purpose = Purpose::new(b"sign-in-flow");
/// The sign-out intent carried from a route host to the authenticate host.
const SIGN_OUT: Purpose = Purpose::new(b"sign-out");
/// Largest form body read (sign-out).
const MAX_FORM: usize = 4096;
/// A sign-out intent is valid this long.
const SIGN_OUT_INTENT_SECS: i64 = 60;

/// What a request to one of our endpoints needs to know.
pub struct Ctx<'a> {
    /// Canonical host (lower-case, no port) and the port the request was addressed to.
    pub host: &'a str,
    pub port: u16,
    /// The canonical path.
    pub path: &'a str,
    pub table: &'a RoutingTable,
    pub request_id: &'a HeaderValue,
    pub now: i64,
    /// Directory sync, when configured: the groups the user page shows come from it.
    pub directory: Option<&'a crate::directory::Directory>,
}

impl Auth {
    /// Whether a path is one of ours on this host.
    pub fn is_endpoint(&self, host: &str, port: u16, path: &str) -> bool {
        path.starts_with(PREFIX)
            || path == "/.portcullis"
            || path == JWKS_PATH
            || (path == CALLBACK_PATH && self.is_authenticate_host(host, port))
    }

    /// Answers one of our endpoints.
    pub async fn endpoint<B>(&self, req: Request<B>, ctx: &Ctx<'_>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<crate::reply::BoxError>,
    {
        let on_authenticate = self.is_authenticate_host(ctx.host, ctx.port);
        match (req.method().clone(), ctx.path) {
            (Method::GET, JWKS_PATH) => json(StatusCode::OK, &self.signer().jwks_json()),
            (Method::GET, SIGN_IN_PATH) if on_authenticate => self.sign_in(&req, ctx).await,
            (Method::GET, CALLBACK_PATH) if on_authenticate => self.callback(&req, ctx).await,
            (Method::GET, "/.portcullis/signed_out") if on_authenticate => {
                pages::signed_out(ctx.request_id)
            }
            (Method::GET, SIGN_OUT_PATH) if on_authenticate && query(&req, "intent").is_some() => {
                self.sign_out_at_provider(&req, ctx).await
            }
            (Method::GET, HANDOFF_PATH) if !on_authenticate => self.accept_handoff(&req, ctx).await,
            (Method::GET, "/.portcullis/" | "/.portcullis") => {
                self.user_page(&req, ctx, false).await
            }
            (Method::GET, "/.portcullis/user") => self.user_page(&req, ctx, true).await,
            (Method::GET, SIGN_OUT_PATH) => self.sign_out_form(&req, ctx).await,
            (Method::POST, SIGN_OUT_PATH) => self.sign_out(req, ctx).await,
            _ => pages::message(
                StatusCode::NOT_FOUND,
                "Not found",
                "This Portcullis endpoint does not exist.",
                ctx.request_id,
            ),
        }
    }
}

fn store_unavailable(ctx: &Ctx<'_>) -> Response<Body> {
    pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        "Sessions cannot be read right now. Try again shortly.",
        ctx.request_id,
    )
}

/// Whether the client is a program rather than a browser navigating: it sent a bearer
/// token, asks for JSON, or is a script's `fetch`/XHR.
pub fn is_api_client(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    headers.contains_key(header::AUTHORIZATION)
        || get("accept").is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
        || get("x-requested-with").is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"))
        || (get("sec-fetch-dest") == Some("empty")
            && get("sec-fetch-mode").is_some_and(|m| m != "navigate"))
}

/// Whether a request is a browser's top-level navigation (where a redirect through the
/// authenticate host is harmless): GET or HEAD, not an API client, and either marked
/// `Sec-Fetch-Mode: navigate` or — from browsers that don't send it — asking for HTML.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if !(method == Method::GET || method == Method::HEAD) || is_api_client(headers) {
        return false;
    }
    match headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        Some(mode) => mode == "navigate",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn query<B>(req: &Request<B>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn read_form<B>(req: Request<B>) -> Vec<(String, String)>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<crate::reply::BoxError>,
{
    let body = http_body_util::Limited::new(req.into_body(), MAX_FORM)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    url::form_urlencoded::parse(&body).into_owned().collect()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub(super) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn append_cookies(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for c in cookies {
        headers.append(header::SET_COOKIE, c);
    }
}

fn timestamp(unix: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::sign_in::origin_url;
    use super::sign_out::is_same_origin;
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn api_clients_and_navigations() {
        for (pairs, method, api, nav) in [
            (vec![("accept", "text/html")], Method::GET, false, true),
            (vec![("accept", "*/*")], Method::GET, false, false),
            (
                vec![("accept", "application/json")],
                Method::GET,
                true,
                false,
            ),
            (
                vec![("authorization", "Bearer x")],
                Method::GET,
                true,
                false,
            ),
            (
                vec![("x-requested-with", "XMLHttpRequest")],
                Method::GET,
                true,
                false,
            ),
            (
                vec![("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
                Method::GET,
                true,
                false,
            ),
            (
                vec![
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-dest", "document"),
                ],
                Method::GET,
                false,
                true,
            ),
            (
                vec![
                    ("sec-fetch-mode", "no-cors"),
                    ("sec-fetch-dest", "image"),
                    ("accept", "text/html"),
                ],
                Method::GET,
                false,
                false,
            ),
            (vec![("accept", "text/html")], Method::POST, false, false),
            (vec![("accept", "text/html")], Method::HEAD, false, true),
        ] {
            let h = headers(&pairs);
            assert_eq!(is_api_client(&h), api, "{pairs:?}");
            assert_eq!(is_navigation(&method, &h), nav, "{pairs:?} {method}");
        }
    }

    #[test]
    fn same_origin_checks() {
        for (pairs, same) in [
            (vec![], true),
            (vec![("sec-fetch-site", "same-origin")], true),
            (vec![("sec-fetch-site", "none")], true),
            (vec![("sec-fetch-site", "same-site")], false),
            (vec![("sec-fetch-site", "cross-site")], false),
            (vec![("origin", "https://app:8443")], true),
            (vec![("origin", "https://evil:8443")], false),
            (vec![("origin", "null")], false),
        ] {
            assert_eq!(
                is_same_origin(&headers(&pairs), "app", 8443),
                same,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn origin_urls() {
        assert_eq!(origin_url("app", 443), "https://app");
        assert_eq!(origin_url("app", 8443), "https://app:8443");
        assert_eq!(origin_url("::1", 8443), "https://[::1]:8443");
    }
}
