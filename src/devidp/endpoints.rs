//! Routing, response helpers and the small endpoints: discovery, JWKS, userinfo and
//! logout. `/authorize` and `/token` have files of their own.
//!
//! - `GET /.well-known/openid-configuration`: discovery, issuer exactly
//!   `http://127.0.0.1:PORT`.
//! - `GET /keys`: the JWKS (one ES256 key, generated at start).
//! - `GET|POST /userinfo`: `Authorization: Bearer <access token>` → `sub` and the
//!   claims of the granted scopes, plus `groups`; 401 with `WWW-Authenticate` otherwise.
//! - `GET|POST /logout`: RP-initiated logout. `id_token_hint` (ours, expired or not) and/or
//!   `client_id` name the client; `post_logout_redirect_uri` must be registered for it,
//!   and the browser goes there with `state`; without one, a "signed out" page.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::form::{Params, with_query};
use super::{Idp, authorize, pages, token};

pub(super) type Body = Full<Bytes>;

/// Largest form body read (`/authorize`, `/token`, `/logout`).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Paths served and the methods each takes, for 405 answers.
const ROUTES: &[(&str, &str)] = &[
    ("/", "GET"),
    ("/.well-known/openid-configuration", "GET"),
    ("/keys", "GET"),
    ("/authorize", "GET, POST"),
    ("/token", "POST"),
    ("/userinfo", "GET, POST"),
    ("/logout", "GET, POST"),
];

pub(super) async fn handle(idp: &Idp, req: Request<Incoming>) -> Response<Body> {
    if !loopback_host(&req) {
        return html(
            StatusCode::MISDIRECTED_REQUEST,
            pages::error(
                "Wrong host",
                "The development provider answers only to loopback names \
                 (127.0.0.1, [::1], localhost).",
            ),
        );
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/") => html(StatusCode::OK, pages::index(&idp.issuer)),
        (Method::GET, "/.well-known/openid-configuration") => {
            json(StatusCode::OK, &discovery(&idp.issuer))
        }
        (Method::GET, "/keys") => json(StatusCode::OK, &idp.key.jwks_json()),
        (Method::GET, "/authorize") => authorize::start(idp, query(&req)),
        (Method::POST, "/authorize") => {
            let (_, form) = read_form(req).await;
            authorize::post(idp, form)
        }
        (Method::POST, "/token") => {
            let (parts, form) = read_form(req).await;
            token::token(idp, &parts.headers, form)
        }
        (Method::GET | Method::POST, "/userinfo") => userinfo(idp, &req),
        (Method::GET, "/logout") => logout(idp, query(&req)),
        (Method::POST, "/logout") => {
            let (_, form) = read_form(req).await;
            logout(idp, form)
        }
        (_, path) => match ROUTES.iter().find(|(p, _)| *p == path) {
            Some((_, allow)) => {
                let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                resp
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// The discovery document (OpenID Connect Discovery 1.0 section 3).
fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/keys"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": authorize::SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "jti",
            "email", "email_verified", "name", "preferred_username", "groups",
        ],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}

fn userinfo(idp: &Idp, req: &Request<Incoming>) -> Response<Body> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let grant = presented.and_then(|t| {
        idp.store()
            .access_tokens
            .get(t, std::time::Instant::now())
            .cloned()
    });
    let Some(user) = grant.as_ref().and_then(|g| idp.user(&g.sub)) else {
        let challenge = if presented.is_some() {
            r#"Bearer error="invalid_token", error_description="The access token is invalid or expired.""#
        } else {
            "Bearer"
        };
        let mut resp = json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_token", "error_description": "a valid Bearer access token is required"}),
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        return resp;
    };
    let scopes = grant.map(|g| g.scopes).unwrap_or_default();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(user.sub));
    token::user_claims(user, &scopes, &mut claims);
    json(StatusCode::OK, &Value::Object(claims))
}

fn logout(idp: &Idp, params: Result<Params, String>) -> Response<Body> {
    let refuse = |message: &str| {
        html(
            StatusCode::BAD_REQUEST,
            pages::error("Sign-out request refused", message),
        )
    };
    let params = match params {
        Ok(p) => p,
        Err(message) => return refuse(&message),
    };
    let hint = match params.get("id_token_hint") {
        Some(jws) => match token::verify_own_id_token(idp, jws) {
            Some(claims) => Some(claims),
            None => return refuse("The id_token_hint was not issued by this provider."),
        },
        None => None,
    };
    let hinted_client = hint.as_ref().and_then(|c| c["aud"].as_str());
    let client_id = match (params.get("client_id"), hinted_client) {
        (Some(a), Some(b)) if a != b => {
            return refuse("client_id is not the audience of the id_token_hint.");
        }
        (a, b) => a.or(b),
    };
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client) = client_id.and_then(|id| idp.client(id)) else {
                return refuse(
                    "A post_logout_redirect_uri needs an id_token_hint or a client_id \
                     naming a registered client.",
                );
            };
            if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
                return refuse("The post_logout_redirect_uri is not registered for this client.");
            }
            Some(match params.get("state") {
                Some(state) => with_query(uri, &[("state", state)]),
                None => uri.to_owned(),
            })
        }
    };
    if let Some(sub) = hint.as_ref().and_then(|c| c["sub"].as_str()) {
        tracing::info!(sub, "development OpenID provider: signed out");
        idp.store().note_signed_out(sub.to_owned());
    }
    match target {
        Some(target) => redirect(&target),
        None => html(StatusCode::OK, pages::signed_out()),
    }
}

// === requests ===

/// Whether the request names this server by a loopback name (or names none, as
/// HTTP/1.0 may): refuses DNS-rebinding pages that reach 127.0.0.1 under a foreign name.
fn loopback_host<B>(req: &Request<B>) -> bool {
    let authority = match req.uri().authority() {
        Some(a) => Some(a.clone()),
        None => match req.headers().get(header::HOST) {
            None => return true,
            Some(h) => h.to_str().ok().and_then(|h| h.parse().ok()),
        },
    };
    let Some(authority) = authority else {
        return false;
    };
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn query<B>(req: &Request<B>) -> Result<Params, String> {
    Params::parse(req.uri().query().unwrap_or("")).map_err(repeated)
}

fn repeated(r: super::form::Repeated) -> String {
    format!("The parameter {} appears more than once.", r.0)
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
async fn read_form(req: Request<Incoming>) -> (http::request::Parts, Result<Params, String>) {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        let e = "The body must be application/x-www-form-urlencoded.".to_owned();
        return (parts, Err(e));
    }
    let form = match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => match std::str::from_utf8(&collected.to_bytes()) {
            Ok(s) => Params::parse(s).map_err(repeated),
            Err(_) => Err("The body is not UTF-8.".to_owned()),
        },
        Err(_) => Err("The body is unreadable or too large.".to_owned()),
    };
    (parts, form)
}

// === responses ===

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

pub(super) fn json(status: StatusCode, value: &Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body)
}

/// An HTML page that loads nothing, cannot be framed and leaks no referrer.
pub(super) fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = response(status, "text/html; charset=utf-8", body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// 302 to `location` (a registered URI plus our query parameters).
pub(super) fn redirect(location: &str) -> Response<Body> {
    let Ok(value) = HeaderValue::from_str(location) else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::error(
                "Bad redirect",
                "The redirect URI cannot be sent in a header.",
            ),
        );
    };
    let mut resp = response(StatusCode::FOUND, "text/plain; charset=utf-8", "");
    resp.headers_mut().insert(header::LOCATION, value);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_names_only() {
        for (host, ok) in [
            (Some("127.0.0.1:8080"), true),
            (Some("127.0.0.1"), true),
            (Some("[::1]:9"), true),
            (Some("localhost:9"), true),
            (Some("LOCALHOST"), true),
            (Some("idp.localhost:9"), true),
            (Some("127.1.2.3:9"), true),
            (None, true),
            (Some("evil.example:8080"), false),
            (Some("localhost.evil.example"), false),
            (Some("10.0.0.1"), false),
            (Some("not a host"), false),
        ] {
            let mut b = Request::builder().uri("/keys");
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            assert_eq!(loopback_host(&b.body(()).unwrap()), ok, "{host:?}");
        }
        let absolute = Request::builder()
            .uri("http://evil.example/keys")
            .header(header::HOST, "127.0.0.1")
            .body(())
            .unwrap();
        assert!(!loopback_host(&absolute), "the URI's authority wins");
    }

    #[test]
    fn discovery_has_okta_shape() {
        let d = discovery("http://127.0.0.1:1");
        assert_eq!(d["issuer"], "http://127.0.0.1:1");
        assert_eq!(d["jwks_uri"], "http://127.0.0.1:1/keys");
        assert_eq!(d["end_session_endpoint"], "http://127.0.0.1:1/logout");
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            d["scopes_supported"],
            json!(["openid", "profile", "email", "groups", "offline_access"])
        );
    }
}
