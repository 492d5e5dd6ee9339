//! Portcullis's own endpoints. On the authenticate host: `/.portcullis/sign_in`,
//! `/oauth2/callback`, `/.portcullis/sign_out`, `/.portcullis/signed_out`. On every
//! route host: `/.portcullis/` (who am I), `/.portcullis/user` (JSON),
//! `/.portcullis/callback` (the one-time handoff), `/.portcullis/sign_out`, and
//! `/.well-known/portcullis/jwks.json`.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::gate::{Auth, SIGN_IN_FLOW_LIFETIME, short};
use super::pages;
use super::provider::PendingAuth;
use super::redirect::{is_safe_path, validate_return_url};
use super::seal::Purpose;
use super::session::Session;
use crate::proxy::{Body, full};
use crate::routes::RoutingTable;

pub const PREFIX: &str = "/.portcullis/";
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";
pub const CALLBACK_PATH: &str = "/oauth2/callback";
const SIGN_IN_PATH: &str = "/.portcullis/sign_in";
const SIGN_OUT_PATH: &str = "/.portcullis/sign_out";
/// The sign-in flow cookie's sealed contents.
const FLOW: Purpose = Purpose::new(b"sign-in-flow");
/// The sign-out intent carried from a route host to the authenticate host.
const SIGN_OUT: Purpose = Purpose::new(b"sign-out");
/// Largest form body read (sign-out).
const MAX_FORM: usize = 4096;

/// What a request to one of our endpoints needs to know.
pub struct Ctx<'a> {
    /// Host without port, lower-case.
    pub host: &'a str,
    /// `host[:port]` as the client addressed us, for building URLs back.
    pub authority: &'a str,
    pub table: &'a RoutingTable,
    pub request_id: &'a HeaderValue,
    pub now: i64,
    /// Directory sync, when configured: the groups the user page shows come from it.
    pub directory: Option<&'a crate::directory::Directory>,
}

#[derive(Serialize, Deserialize)]
struct Flow {
    pending: PendingAuth,
    return_url: String,
    exp: i64,
}

#[derive(Serialize, Deserialize)]
struct SignOutIntent {
    id_token: Option<String>,
    session_id: Option<String>,
    exp: i64,
}

impl Auth {
    /// Whether a path is one of ours on this host.
    pub fn is_endpoint(&self, host: &str, path: &str) -> bool {
        path.starts_with(PREFIX)
            || path == "/.portcullis"
            || path == JWKS_PATH
            || (path == CALLBACK_PATH && self.is_authenticate_host(host))
    }

    /// Answers one of our endpoints.
    pub async fn endpoint(&self, req: Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let on_authenticate = self.is_authenticate_host(ctx.host);
        match (req.method().clone(), path.as_str()) {
            (Method::GET, JWKS_PATH) => json(StatusCode::OK, &self.signer().jwks_json()),
            (Method::GET, SIGN_IN_PATH) if on_authenticate => self.sign_in(&req, ctx).await,
            (Method::GET, CALLBACK_PATH) if on_authenticate => self.callback(&req, ctx).await,
            (Method::GET, "/.portcullis/signed_out") if on_authenticate => {
                pages::signed_out(ctx.request_id)
            }
            (Method::GET, SIGN_OUT_PATH) if on_authenticate && query(&req, "intent").is_some() => {
                self.sign_out_at_provider(&req, ctx).await
            }
            (Method::GET, "/.portcullis/callback") => self.accept_handoff(&req, ctx).await,
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

    /// Sends the caller to sign in: a redirect for browsers, 401 for API clients.
    pub fn sign_in_response(
        &self,
        headers: &HeaderMap,
        authority: &str,
        path_and_query: &str,
        request_id: &HeaderValue,
    ) -> Response<Body> {
        if is_api_client(headers) {
            let mut resp = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({
                    "status": 401,
                    "error": "Unauthorized",
                    "detail": "Sign in, or send a bearer token from the identity provider.",
                    "request_id": request_id.to_str().unwrap_or(""),
                }),
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
            return resp;
        }
        let target = format!("https://{authority}{path_and_query}");
        let url = format!(
            "{}{SIGN_IN_PATH}?redirect_uri={}",
            self.authenticate_url,
            encode(&target)
        );
        redirect(&url)
    }

    /// `GET /.portcullis/sign_in?redirect_uri=…` on the authenticate host.
    async fn sign_in(&self, req: &Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        let Some(return_url) = self.return_url(req, ctx) else {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Bad sign-in request",
                "The address to return to after sign-in is missing or not one Portcullis serves.",
                ctx.request_id,
            );
        };
        // Already signed in here (and the session still refreshes): hand it over.
        let mut ended = Vec::new();
        if let Some(value) = self.cookie.read(req.headers()) {
            let found = self.live_session(value, ctx.now).await;
            if let (Some(session), Some(value)) = (&found.session, &found.cookie_value) {
                return self.handoff_to(&return_url, value, session, ctx, found.set_cookies);
            }
            ended = found.set_cookies;
        }
        let (url, pending) = match self.provider.authorize_url().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start sign-in");
                return pages::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is unavailable",
                    "The identity provider cannot be reached right now. Try again in a minute.",
                    ctx.request_id,
                );
            }
        };
        let flow = Flow {
            pending,
            return_url,
            exp: ctx.now + SIGN_IN_FLOW_LIFETIME.as_secs() as i64,
        };
        let sealed = self
            .sealer
            .seal(FLOW, &serde_json::to_vec(&flow).expect("flows serialize"));
        let mut resp = redirect(&url);
        let cookies = self
            .flow_cookie
            .set(&sealed, Some(SIGN_IN_FLOW_LIFETIME))
            .unwrap_or_default();
        append_cookies(resp.headers_mut(), ended);
        append_cookies(resp.headers_mut(), cookies);
        resp
    }

    /// `GET /oauth2/callback?code=…&state=…` from the provider.
    async fn callback(&self, req: &Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        let flow = self
            .flow_cookie
            .read(req.headers())
            .and_then(|v| self.sealer.open(FLOW, &v).ok())
            .and_then(|json| serde_json::from_slice::<Flow>(&json).ok())
            .filter(|f| f.exp > ctx.now);
        let Some(flow) = flow else {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in was started too long ago or in another browser. Go back to the \
                 application and try again.",
                ctx.request_id,
            );
        };
        let state_ok =
            query(req, "state").is_some_and(|s| self.csrf.state_matches(&flow.pending.state, &s));
        if !state_ok {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                "The sign-in response does not belong to this browser's sign-in.",
                ctx.request_id,
            );
        }
        if let Some(error) = query(req, "error") {
            let detail = query(req, "error_description").unwrap_or_default();
            tracing::info!(error = %error, detail = %detail, "the identity provider refused sign-in");
            return pages::message(
                StatusCode::FORBIDDEN,
                "Sign-in refused",
                &format!("The identity provider said: {error} {detail}"),
                ctx.request_id,
            );
        }
        let Some(code) = query(req, "code") else {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                "The identity provider sent no authorization code.",
                ctx.request_id,
            );
        };
        let tokens = match self.provider.exchange_code(&code, &flow.pending).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "code exchange failed");
                let (status, detail) = match e {
                    super::provider::ProviderError::Unavailable(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The identity provider cannot be reached right now. Try again in a minute.",
                    ),
                    _ => (
                        StatusCode::FORBIDDEN,
                        "The identity provider's answer could not be verified.",
                    ),
                };
                return pages::message(status, "Sign-in failed", detail, ctx.request_id);
            }
        };
        let session = Session::new(tokens, ctx.now, self.lifetime);
        tracing::info!(session = %short(&session.id), user = %session.sub, email = %session.email,
            "signed in");
        let value = match self.store.save(&self.sealer, &session, ctx.now).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot store a new session");
                return pages::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in failed",
                    "Sessions cannot be stored right now. Try again in a minute.",
                    ctx.request_id,
                );
            }
        };
        let mut cookies = self.session_cookie(&value, &session, ctx.now);
        cookies.extend(self.flow_cookie.clear());
        self.handoff_to(&flow.return_url, &value, &session, ctx, cookies)
    }

    /// Redirects to the return URL: directly on the authenticate host, else through the
    /// route host's one-time `/.portcullis/callback`.
    fn handoff_to(
        &self,
        return_url: &str,
        cookie_value: &str,
        session: &Session,
        ctx: &Ctx<'_>,
        mut cookies: Vec<HeaderValue>,
    ) -> Response<Body> {
        let Ok(uri) = return_url.parse::<http::Uri>() else {
            return redirect("/");
        };
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let resp_url = if self.is_authenticate_host(&host) {
            if cookies.is_empty() {
                cookies = self.session_cookie(cookie_value, session, ctx.now);
            }
            path
        } else {
            // The session travels with its end time: `expires:value`.
            let carried = format!("{}:{cookie_value}", session.expires);
            let token =
                match self
                    .handoff
                    .issue(carried.as_bytes(), &host, &path, timestamp(ctx.now))
                {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hand the session over");
                        return pages::message(
                            StatusCode::BAD_REQUEST,
                            "Bad sign-in request",
                            "The address to return to cannot be used.",
                            ctx.request_id,
                        );
                    }
                };
            format!(
                "https://{}/.portcullis/callback?token={}",
                uri.authority().map_or("", |a| a.as_str()),
                encode(&token)
            )
        };
        let mut resp = redirect(&resp_url);
        append_cookies(resp.headers_mut(), cookies);
        resp
    }

    /// `GET /.portcullis/callback?token=…` on a route host: sets this host's session
    /// cookie, once.
    async fn accept_handoff(&self, req: &Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        let now = timestamp(ctx.now);
        let mut handoff = query(req, "token")
            .and_then(|t| self.handoff.verify(&t, ctx.host, now).ok())
            .filter(|h| self.replay.first_use(&h.jti, h.expires_at, now));
        // With Redis, a token is single-use across every replica too; fail closed.
        if let Some(h) = &handoff {
            let ttl = (h.expires_at.as_second() - ctx.now).max(1) as u64 + 5;
            if !self
                .store
                .first_use_shared(&h.jti, ttl)
                .await
                .unwrap_or(false)
            {
                handoff = None;
            }
        }
        let carried = handoff.as_ref().and_then(|h| {
            let text = std::str::from_utf8(&h.session).ok()?;
            let (expires, value) = text.split_once(':')?;
            Some((
                expires.parse::<i64>().ok()?,
                value.to_string(),
                h.return_path.clone(),
            ))
        });
        let Some((session_expires, value, return_path)) = carried else {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-in link not valid",
                "This sign-in link has expired, was already used, or is for another site. Go \
                 back to the application and try again.",
                ctx.request_id,
            );
        };
        let path = if is_safe_path(&return_path) {
            return_path.as_str()
        } else {
            "/"
        };
        let max_age = std::time::Duration::from_secs((session_expires - ctx.now).max(0) as u64);
        let mut resp = redirect(path);
        match self.cookie.set(&value, Some(max_age)) {
            Ok(cookies) => append_cookies(resp.headers_mut(), cookies),
            Err(e) => {
                tracing::error!(error = %e, "session cookie too large; use session_store: redis://…")
            }
        }
        resp
    }

    async fn current(&self, headers: &HeaderMap, now: i64) -> Option<Session> {
        let value = self.cookie.read(headers)?;
        self.store
            .load(&self.sealer, &value, now)
            .await
            .ok()
            .flatten()
    }

    /// `/.portcullis/` and `/.portcullis/user`.
    async fn user_page(
        &self,
        req: &Request<Incoming>,
        ctx: &Ctx<'_>,
        as_json: bool,
    ) -> Response<Body> {
        let Some(session) = self.current(req.headers(), ctx.now).await else {
            if as_json {
                return json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"signed_in": false}),
                );
            }
            return self.sign_in_response(
                req.headers(),
                ctx.authority,
                "/.portcullis/",
                ctx.request_id,
            );
        };
        // The groups policies see: the directory's when it is configured.
        let mut identity = session.identity();
        let (source, verdict) = match ctx.directory {
            Some(d) => {
                let verdict = d.apply(&mut identity);
                (crate::directory::SOURCE, verdict.deny_reason())
            }
            None => ("identity provider token", None),
        };
        let mut session = session;
        session.groups = identity.groups;
        if as_json {
            return json(
                StatusCode::OK,
                &serde_json::json!({
                    "signed_in": true,
                    "user": session.sub,
                    "email": session.email,
                    "name": session.name,
                    "groups": session.groups,
                    "groups_source": source,
                    "directory_status": verdict,
                    "session_expires": jiff::Timestamp::from_second(session.expires).ok().map(|t| t.to_string()),
                    "claims": session.claims,
                }),
            );
        }
        pages::user(
            &session,
            source,
            verdict.as_deref(),
            &self.csrf.sign_out_token(session.id.as_bytes()),
            ctx.request_id,
        )
    }

    /// `GET /.portcullis/sign_out` on a route host: a confirmation form (sign-out needs
    /// a POST with a CSRF token).
    async fn sign_out_form(&self, req: &Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        match self.current(req.headers(), ctx.now).await {
            Some(session) => pages::sign_out(
                &self.csrf.sign_out_token(session.id.as_bytes()),
                ctx.request_id,
            ),
            None => pages::signed_out(ctx.request_id),
        }
    }

    /// `POST /.portcullis/sign_out`: clears this host's session and continues at the
    /// authenticate host, which clears its own and ends the provider's.
    async fn sign_out(&self, req: Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        let session = self.current(req.headers(), ctx.now).await;
        let form = read_form(req).await;
        let csrf_ok = match (&session, form.iter().find(|(k, _)| k == "csrf")) {
            (Some(s), Some((_, token))) => self.csrf.verify_sign_out(s.id.as_bytes(), token),
            _ => false,
        };
        if session.is_some() && !csrf_ok {
            return pages::message(
                StatusCode::FORBIDDEN,
                "Sign-out refused",
                "The sign-out form was not sent by this site. Use the sign-out button on the \
                 Portcullis page.",
                ctx.request_id,
            );
        }
        let intent = SignOutIntent {
            id_token: session.as_ref().map(|s| s.id_token.clone()),
            session_id: session.as_ref().map(|s| s.id.clone()),
            exp: ctx.now + 60,
        };
        if let Some(s) = &session {
            self.forget_decoded(&s.id);
            if let Err(e) = self.store.delete(&s.id).await {
                tracing::warn!(error = %e, "could not delete the session from the store");
            }
            tracing::info!(session = %short(&s.id), user = %s.sub, "signed out");
        }
        let sealed = self.sealer.seal(
            SIGN_OUT,
            &serde_json::to_vec(&intent).expect("intents serialize"),
        );
        let url = format!(
            "{}{SIGN_OUT_PATH}?intent={}",
            self.authenticate_url,
            encode(&sealed)
        );
        let mut resp = redirect(&url);
        append_cookies(resp.headers_mut(), self.cookie.clear());
        resp
    }

    /// `GET /.portcullis/sign_out?intent=…` on the authenticate host: clears its cookie
    /// and goes to the provider's end-session endpoint.
    async fn sign_out_at_provider(&self, req: &Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        let intent = query(req, "intent")
            .and_then(|i| self.sealer.open(SIGN_OUT, &i).ok())
            .and_then(|json| serde_json::from_slice::<SignOutIntent>(&json).ok())
            .filter(|i| i.exp > ctx.now);
        let Some(intent) = intent else {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-out link not valid",
                "This sign-out link has expired or was not made by Portcullis.",
                ctx.request_id,
            );
        };
        let mine = self.current(req.headers(), ctx.now).await;
        if let Some(s) = &mine
            && intent.session_id.as_deref() != Some(s.id.as_str())
        {
            self.forget_decoded(&s.id);
            let _ = self.store.delete(&s.id).await;
        }
        let id_token = intent
            .id_token
            .or_else(|| mine.as_ref().map(|s| s.id_token.clone()));
        let signed_out = format!("{}/.portcullis/signed_out", self.authenticate_url);
        let target = match id_token {
            Some(t) => self
                .provider
                .end_session_url(&t, &signed_out)
                .await
                .unwrap_or(signed_out),
            None => signed_out,
        };
        let mut resp = redirect(&target);
        append_cookies(resp.headers_mut(), self.cookie.clear());
        resp
    }

    /// The validated `redirect_uri` of a sign-in request.
    fn return_url(&self, req: &Request<Incoming>, ctx: &Ctx<'_>) -> Option<String> {
        let raw = query(req, "redirect_uri")?;
        let uri = validate_return_url(&raw, |h| {
            self.is_authenticate_host(h) || ctx.table.knows_host(h)
        })?;
        // Relative return URLs mean the authenticate host itself.
        Some(if uri.scheme().is_some() {
            uri.to_string()
        } else {
            format!("{}{}", self.authenticate_url, uri)
        })
    }
}

/// Whether the client is a program rather than a browser: it sent a bearer token or
/// asks for JSON.
pub fn is_api_client(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn read_form(req: Request<Incoming>) -> Vec<(String, String)> {
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
