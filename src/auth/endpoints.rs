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

#[derive(Serialize, Deserialize)]
struct Flow {
    pending: PendingAuth,
    return_url: String,
    /// The MAC of the route host's nonce cookie (absent for the authenticate host).
    #[serde(default)]
    nonce_tag: Option<String>,
    exp: i64,
}

#[derive(Serialize, Deserialize)]
struct SignOutIntent {
    /// The session being signed out: the authenticate host acts only for this one.
    session_id: String,
    /// For `id_token_hint`, when the route host had it (Redis).
    #[serde(default)]
    id_token: Option<String>,
    exp: i64,
}

/// The session a request on this host belongs to.
struct Current {
    identity: Arc<Identity>,
    sid: String,
    name: String,
    session_expires: i64,
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

    /// Sends the caller to sign in (or to renew this host's credential): a redirect
    /// through the authenticate host for browsers, 401 for API clients. The browser's
    /// nonce cookie on this host (kept when it has one) ties the round trip to it.
    pub fn sign_in_response(
        &self,
        headers: &HeaderMap,
        host: &str,
        port: u16,
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
        let cookie = self.names.nonce(port);
        let nonce = cookie
            .read_unique(headers)
            .filter(|n| n.len() >= 22 && n.bytes().all(is_base64url))
            .unwrap_or_else(super::csrf::random_state);
        let target = format!("{}{path_and_query}", origin_url(host, port));
        let url = format!(
            "{}{SIGN_IN_PATH}?redirect_uri={}&nonce={}",
            self.authenticate_url,
            encode(&target),
            encode(&self.csrf.nonce_tag(&nonce))
        );
        let mut resp = redirect(&url);
        let cookies = cookie
            .set(&nonce, Some(SIGN_IN_FLOW_LIFETIME))
            .unwrap_or_default();
        append_cookies(resp.headers_mut(), cookies);
        resp
    }

    /// `GET /.portcullis/sign_in?redirect_uri=…&nonce=…` on the authenticate host.
    async fn sign_in<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
        let Some(return_url) = self.return_url(req, ctx) else {
            return pages::message(
                StatusCode::BAD_REQUEST,
                "Bad sign-in request",
                "The address to return to after sign-in is missing or not one Portcullis \
                 serves.",
                ctx.request_id,
            );
        };
        let nonce_tag = query(req, "nonce").filter(|t| !t.is_empty());
        if nonce_tag.is_none() && !self.targets_authenticate_host(&return_url) {
            // Not started by a route host of ours (a bookmark, a hand-made link): let
            // the route host start it, with its own nonce.
            return redirect(&return_url);
        }
        let found = self.auth_session(req.headers(), ctx.port, ctx.now).await;
        if found.store_error.is_some() {
            return store_unavailable(ctx);
        }
        // Already signed in here (and the session still refreshes): hand it over.
        if let Some(session) = &found.session {
            return self.handoff_to(
                &return_url,
                nonce_tag.as_deref(),
                session,
                found.outage,
                ctx,
                found.set_cookies,
            );
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
            nonce_tag,
            exp: ctx.now + SIGN_IN_FLOW_LIFETIME.as_secs() as i64,
        };
        let sealed = self
            .sealer
            .seal(FLOW, &serde_json::to_vec(&flow).expect("flows serialize"));
        let mut resp = redirect(&url);
        let cookies = self
            .names
            .flow(ctx.port)
            .set(&sealed, Some(SIGN_IN_FLOW_LIFETIME))
            .unwrap_or_default();
        append_cookies(resp.headers_mut(), found.set_cookies);
        append_cookies(resp.headers_mut(), cookies);
        resp
    }

    /// `GET /oauth2/callback?code=…&state=…` from the provider.
    async fn callback<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
        let flow_cookie = self.names.flow(ctx.port);
        let flow = flow_cookie
            .read_unique(req.headers())
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
        let mut cookies = self.session_cookie(ctx.port, &value, &session, ctx.now);
        cookies.extend(flow_cookie.clear());
        self.handoff_to(
            &flow.return_url,
            flow.nonce_tag.as_deref(),
            &session,
            false,
            ctx,
            cookies,
        )
    }

    /// Redirects to the return URL: a path on the authenticate host itself, else through
    /// the route host's one-time `/.portcullis/callback` with a credential for it.
    fn handoff_to(
        &self,
        return_url: &str,
        nonce_tag: Option<&str>,
        session: &Session,
        outage: bool,
        ctx: &Ctx<'_>,
        cookies: Vec<HeaderValue>,
    ) -> Response<Body> {
        let bad = || {
            pages::message(
                StatusCode::BAD_REQUEST,
                "Bad sign-in request",
                "The address to return to cannot be used.",
                ctx.request_id,
            )
        };
        let Ok(uri) = return_url.parse::<http::Uri>() else {
            return bad();
        };
        let Some(target) = uri.authority().and_then(|a| canonical(a.as_str(), 443)) else {
            return bad();
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = if self.is_authenticate_host(&target.host, target.port) {
            // Only ever a path of ours: never `//elsewhere`.
            if is_safe_path(path) { path } else { "/" }.to_string()
        } else {
            let Some(nonce_tag) = nonce_tag else {
                return bad();
            };
            let credential =
                RouteCredential::of(session, ctx.now, outage.then_some(OUTAGE_GRACE_SECS));
            let ticket = Ticket {
                credential: &serde_json::to_vec(&credential).expect("credentials serialize"),
                sid: if session.sub.is_empty() {
                    &session.id
                } else {
                    &session.sub
                },
                target: &target.to_authority_string(),
                return_path: path,
                nonce_tag,
            };
            match self.handoff.issue(&ticket, timestamp(ctx.now)) {
                Ok(token) => format!(
                    "{}{HANDOFF_PATH}?token={}",
                    origin_url(&target.host, target.port),
                    encode(&token)
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand the session over");
                    return bad();
                }
            }
        };
        let mut resp = redirect(&location);
        append_cookies(resp.headers_mut(), cookies);
        resp
    }

    /// `GET /.portcullis/callback?token=…` on a route host: sets this host's credential,
    /// once, for the browser that started the sign-in.
    async fn accept_handoff<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
        let now = timestamp(ctx.now);
        let origin = crate::routes::authority::Canonical {
            host: ctx.host.into(),
            port: ctx.port,
        }
        .to_authority_string();
        let invalid = |detail: &str| {
            pages::message(
                StatusCode::BAD_REQUEST,
                "Sign-in link not valid",
                detail,
                ctx.request_id,
            )
        };
        let handoff = match query(req, "token").map(|t| self.handoff.verify(&t, &origin, now)) {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                tracing::info!(error = %e, host = %origin, "sign-in handoff refused");
                return invalid(
                    "This sign-in link has expired, was already used, or is for another site. \
                     Go back to the application and try again.",
                );
            }
            None => return invalid("This sign-in link is incomplete."),
        };
        let nonce = self.names.nonce(ctx.port).read_unique(req.headers());
        if !nonce.is_some_and(|n| self.csrf.verify_nonce(&n, &handoff.nonce_tag)) {
            tracing::info!(host = %origin, "sign-in handoff from a browser that did not start it");
            return invalid(
                "This sign-in was started in another browser (or its cookies were cleared). \
                 Go back to the application and sign in here.",
            );
        }
        if !self
            .replay
            .first_use(&handoff.jti, &handoff.sid, handoff.expires_at, now)
        {
            return invalid("This sign-in link was already used. Go back to the application.");
        }
        // With Redis, a token is single-use across every replica too; fail closed.
        let ttl = (handoff.expires_at.as_second() - ctx.now).max(1) as u64 + 5;
        match self
            .store
            .first_use_shared(&handoff.jti, &handoff.sid, ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return invalid("This sign-in link was already used. Go back to the application.");
            }
            Err(_) => return store_unavailable(ctx),
        }
        let Ok(credential) = serde_json::from_slice::<RouteCredential>(&handoff.credential) else {
            return invalid("This sign-in link is damaged.");
        };
        let mut resp = redirect(&handoff.return_path);
        append_cookies(
            resp.headers_mut(),
            self.route_cookie(ctx.host, ctx.port, &credential, ctx.now),
        );
        resp
    }

    /// The session of this request: the authenticate host's own, or this route host's
    /// credential.
    /// `Err`: the session store could not be read (answer 503: never "signed out").
    async fn current(
        &self,
        headers: &HeaderMap,
        ctx: &Ctx<'_>,
    ) -> Result<Option<Current>, StoreError> {
        if self.is_authenticate_host(ctx.host, ctx.port) {
            let found = self.auth_session(headers, ctx.port, ctx.now).await;
            if let Some(e) = found.store_error {
                return Err(e);
            }
            return Ok(found.session.map(|s| Current {
                identity: Arc::new(s.identity()),
                sid: s.id,
                name: s.name,
                session_expires: s.expires,
            }));
        }
        let found = self.credential(headers, ctx.host, ctx.port, ctx.now).await;
        if let Some(e) = found.store_error {
            return Err(e);
        }
        Ok(found.known.map(|known| Current {
            identity: known.identity.clone(),
            sid: known.sid.clone(),
            name: known.name.clone(),
            session_expires: known.session_expires,
        }))
    }

    /// `/.portcullis/` and `/.portcullis/user`.
    async fn user_page<B>(&self, req: &Request<B>, ctx: &Ctx<'_>, as_json: bool) -> Response<Body> {
        let Ok(current) = self.current(req.headers(), ctx).await else {
            return store_unavailable(ctx);
        };
        let Some(current) = current else {
            if as_json {
                return json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"signed_in": false}),
                );
            }
            return self.sign_in_response(
                req.headers(),
                ctx.host,
                ctx.port,
                "/.portcullis/",
                ctx.request_id,
            );
        };
        // The groups policies see: the directory's when it is configured.
        let mut identity = (*current.identity).clone();
        let (source, verdict) = match ctx.directory {
            Some(d) => {
                let verdict = d.apply(&mut identity);
                (crate::directory::SOURCE, verdict.deny_reason())
            }
            None => ("identity provider token", None),
        };
        if as_json {
            return json(
                StatusCode::OK,
                &serde_json::json!({
                    "signed_in": true,
                    "user": identity.user,
                    "email": identity.email,
                    "name": current.name,
                    "groups": identity.groups,
                    "groups_source": source,
                    "directory_status": verdict,
                    "session_expires": jiff::Timestamp::from_second(current.session_expires).ok().map(|t| t.to_string()),
                    "claims": identity.claims,
                }),
            );
        }
        pages::user(
            &pages::UserView {
                name: &current.name,
                email: &identity.email,
                sub: &identity.user,
                groups: &identity.groups,
                expires: current.session_expires,
            },
            source,
            verdict.as_deref(),
            &self
                .csrf
                .sign_out_token(sign_out_binding(&current.sid, ctx).as_bytes()),
            ctx.request_id,
        )
    }

    /// `GET /.portcullis/sign_out`: a confirmation form (sign-out needs a POST with a
    /// CSRF token).
    async fn sign_out_form<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
        match self.current(req.headers(), ctx).await {
            Ok(Some(current)) => pages::sign_out(
                &self
                    .csrf
                    .sign_out_token(sign_out_binding(&current.sid, ctx).as_bytes()),
                ctx.request_id,
            ),
            Ok(None) => pages::signed_out(ctx.request_id),
            Err(_) => store_unavailable(ctx),
        }
    }

    /// `POST /.portcullis/sign_out` with the session's CSRF token. On a route host:
    /// clears this host's credential and continues at the authenticate host with an
    /// intent bound to the session, which clears its own and ends the provider's. With no
    /// session there is nothing to sign out, and no intent: an anonymous POST can't make
    /// a link that signs somebody else out.
    async fn sign_out<B>(&self, req: Request<B>, ctx: &Ctx<'_>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<crate::reply::BoxError>,
    {
        let on_authenticate = self.is_authenticate_host(ctx.host, ctx.port);
        let Ok(current) = self.current(req.headers(), ctx).await else {
            return store_unavailable(ctx);
        };
        let own_cookie = if on_authenticate {
            self.names.authenticate(ctx.port)
        } else {
            self.names.route(&self.names.binding(ctx.host, ctx.port))
        };
        let carried_cookie = own_cookie.read(req.headers()).is_some();
        let auth_cookie = on_authenticate
            .then(|| self.names.authenticate(ctx.port).read_unique(req.headers()))
            .flatten();
        let same_origin = is_same_origin(req.headers(), ctx.host, ctx.port);
        let form = read_form(req).await;
        let Some(current) = current else {
            // Nothing to sign out. A stale cookie is cleared — but only one this request
            // carried: a cross-site POST (no Lax cookies) must not clear anything.
            let mut resp = pages::signed_out(ctx.request_id);
            if carried_cookie && same_origin {
                append_cookies(resp.headers_mut(), own_cookie.clear());
            }
            return resp;
        };
        let csrf_ok = same_origin
            && form
                .iter()
                .find(|(k, _)| k == "csrf")
                .is_some_and(|(_, t)| {
                    self.csrf
                        .verify_sign_out(sign_out_binding(&current.sid, ctx).as_bytes(), t)
                });
        if !csrf_ok {
            return pages::message(
                StatusCode::FORBIDDEN,
                "Sign-out refused",
                "The sign-out form was not sent by this site. Use the sign-out button on the \
                 Portcullis page.",
                ctx.request_id,
            );
        }
        self.forget_decoded(&current.sid);
        tracing::info!(session = %short(&current.sid), user = %current.identity.user, "signing out");
        if on_authenticate {
            let session = match auth_cookie {
                Some(v) => match self.store.load(&self.sealer, &v, ctx.now).await {
                    Ok(s) => s,
                    Err(_) => return store_unavailable(ctx),
                },
                None => None,
            };
            return self.end_session(session, None, &current.sid, ctx).await;
        }
        // With Redis the session is here: end it now, whatever the browser does next.
        let mut id_token = None;
        if self.store.is_redis() {
            // Fail closed: a sign-out the store did not record is not reported done.
            let session = match self
                .store
                .load_id(&self.sealer, &current.sid, ctx.now)
                .await
            {
                Ok(s) => s,
                Err(_) => return store_unavailable(ctx),
            };
            if let Some(session) = session {
                self.revoke(&session).await;
                if let Err(e) = self.store.delete(&session.id).await {
                    tracing::warn!(error = %e, "could not delete the session from the store");
                    return store_unavailable(ctx);
                }
                self.sign_out_token(&session.id_token, ctx.now).await;
                id_token = Some(session.id_token);
            }
        }
        let intent = SignOutIntent {
            session_id: current.sid.clone(),
            id_token,
            exp: ctx.now + SIGN_OUT_INTENT_SECS,
        };
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
        append_cookies(
            resp.headers_mut(),
            self.clear_route_cookie(ctx.host, ctx.port),
        );
        resp
    }

    /// `GET /.portcullis/sign_out?intent=…` on the authenticate host: for the session
    /// the intent names, and only when this browser holds it here, revokes its refresh
    /// token, clears the cookie and goes to the provider's end-session endpoint.
    async fn sign_out_at_provider<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
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
        let value = self.names.authenticate(ctx.port).read_unique(req.headers());
        let held = value
            .as_deref()
            .and_then(|v| self.store.session_id(&self.sealer, v));
        match held {
            // Signed out here already (or never signed in here): nothing to end.
            None => pages::signed_out(ctx.request_id),
            Some(sid) if sid != intent.session_id => {
                tracing::info!(session = %short(&sid), "sign-out link for another session refused");
                pages::message(
                    StatusCode::BAD_REQUEST,
                    "Sign-out link not valid",
                    "This sign-out link is for another session than this browser's.",
                    ctx.request_id,
                )
            }
            Some(sid) => {
                let session = match &value {
                    Some(v) => match self.store.load(&self.sealer, v, ctx.now).await {
                        Ok(s) => s,
                        Err(_) => return store_unavailable(ctx),
                    },
                    None => None,
                };
                self.end_session(session, intent.id_token, &sid, ctx).await
            }
        }
    }

    /// Ends a session at the authenticate host: revokes the refresh token, deletes the
    /// stored session, clears the cookie, and goes to the provider's end-session page.
    async fn end_session(
        &self,
        session: Option<Session>,
        id_token: Option<String>,
        sid: &str,
        ctx: &Ctx<'_>,
    ) -> Response<Body> {
        self.forget_decoded(sid);
        let mut id_token = id_token;
        if let Some(s) = session {
            self.revoke(&s).await;
            if let Err(e) = self.store.delete(&s.id).await {
                // The browser keeps its cookie to try again; the refresh token is
                // already revoked, so the stored session can no longer be renewed.
                tracing::warn!(error = %e, "could not delete the session from the store");
                return store_unavailable(ctx);
            }
            id_token = Some(s.id_token);
        }
        // The ID token goes to the provider in the browser's URL: never a key again.
        if let Some(t) = &id_token {
            self.sign_out_token(t, ctx.now).await;
        }
        tracing::info!(session = %short(sid), "signed out");
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
        append_cookies(
            resp.headers_mut(),
            self.names.authenticate(ctx.port).clear(),
        );
        resp
    }

    /// Revokes a session's refresh token at the provider (best effort: the session is
    /// ended here either way).
    async fn revoke(&self, session: &Session) {
        let Some(token) = &session.refresh_token else {
            return;
        };
        match self.provider.revoke(token).await {
            Ok(true) => tracing::debug!(session = %short(&session.id), "refresh token revoked"),
            Ok(false) => tracing::debug!("the provider has no revocation endpoint"),
            Err(e) => tracing::warn!(error = %e, "could not revoke the refresh token"),
        }
    }

    /// The validated `redirect_uri` of a sign-in request: the authenticate host, or a
    /// host with a route that `allowed_return_domains` (when set) also allows.
    fn return_url<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Option<String> {
        let raw = query(req, "redirect_uri")?;
        let uri = validate_return_url(&raw, |h| {
            h == self.authenticate_host
                || (ctx.table.knows_host(h) && self.return_domain_allowed(h))
        })?;
        // Relative return URLs mean the authenticate host itself.
        Some(if uri.scheme().is_some() {
            uri.to_string()
        } else {
            format!("{}{}", self.authenticate_url, uri)
        })
    }

    fn return_domain_allowed(&self, host: &str) -> bool {
        self.return_domains.is_empty()
            || self
                .return_domains
                .iter()
                .any(|d| match d.strip_prefix("*.") {
                    Some(parent) => host
                        .strip_suffix(parent)
                        .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
                    None => host == d,
                })
    }

    fn targets_authenticate_host(&self, url: &str) -> bool {
        url.parse::<http::Uri>()
            .ok()
            .and_then(|u| {
                let a = canonical(u.authority()?.as_str(), 443)?;
                Some(self.is_authenticate_host(&a.host, a.port))
            })
            .unwrap_or(false)
    }
}

/// What a sign-out CSRF token is bound to: the session and this host's origin, so a
/// token read on one host (say, by a script of that host's app) signs nobody out
/// from another.
fn sign_out_binding(sid: &str, ctx: &Ctx<'_>) -> String {
    format!("{sid}@{}:{}", ctx.host, ctx.port)
}

/// Whether a state-changing request comes from a page of this same origin, as far as
/// the browser says: `Sec-Fetch-Site` when sent, else `Origin` when sent (requests
/// from older browsers and non-browsers carry neither, and rely on the CSRF token).
fn is_same_origin(headers: &HeaderMap, host: &str, port: u16) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin.eq_ignore_ascii_case(&origin_url(host, port)),
        None => true,
    }
}

/// `https://host[:port]`, the port left out when it is 443.
fn origin_url(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
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
