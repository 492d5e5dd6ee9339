//! Signing in: the redirect through the authenticate host (with the browser's nonce),
//! the provider's callback, and the one-time handoff to the route host.

use super::*;

impl Auth {
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
            .unwrap_or_else(crate::auth::csrf::random_state);
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
    pub(super) async fn sign_in<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
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
    pub(super) async fn callback<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
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
                    crate::auth::provider::ProviderError::Unavailable(_) => (
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
    pub(super) fn handoff_to(
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
    pub(super) async fn accept_handoff<B>(
        &self,
        req: &Request<B>,
        ctx: &Ctx<'_>,
    ) -> Response<Body> {
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

    /// The validated `redirect_uri` of a sign-in request: the authenticate host, or a
    /// host with a route that `allowed_return_domains` (when set) also allows.
    pub(super) fn return_url<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Option<String> {
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

    pub(super) fn return_domain_allowed(&self, host: &str) -> bool {
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

    pub(super) fn targets_authenticate_host(&self, url: &str) -> bool {
        url.parse::<http::Uri>()
            .ok()
            .and_then(|u| {
                let a = canonical(u.authority()?.as_str(), 443)?;
                Some(self.is_authenticate_host(&a.host, a.port))
            })
            .unwrap_or(false)
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct Flow {
    pub(super) pending: PendingAuth,
    pub(super) return_url: String,
    /// The MAC of the route host's nonce cookie (absent for the authenticate host).
    #[serde(default)]
    pub(super) nonce_tag: Option<String>,
    pub(super) exp: i64,
}

/// `https://host[:port]`, the port left out when it is 443.
pub(super) fn origin_url(host: &str, port: u16) -> String {
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
