//! Signing out: the CSRF-protected form on any host, the intent bound to the session,
//! and the authenticate host's end of it (revocation, end-session).

use super::*;

impl Auth {
    /// `GET /.portcullis/sign_out`: a confirmation form (sign-out needs a POST with a
    /// CSRF token).
    pub(super) async fn sign_out_form<B>(&self, req: &Request<B>, ctx: &Ctx<'_>) -> Response<Body> {
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
    pub(super) async fn sign_out<B>(&self, req: Request<B>, ctx: &Ctx<'_>) -> Response<Body>
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
    pub(super) async fn sign_out_at_provider<B>(
        &self,
        req: &Request<B>,
        ctx: &Ctx<'_>,
    ) -> Response<Body> {
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
    pub(super) async fn end_session(
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
    pub(super) async fn revoke(&self, session: &Session) {
        let Some(token) = &session.refresh_token else {
            return;
        };
        match self.provider.revoke(token).await {
            Ok(true) => tracing::debug!(session = %short(&session.id), "refresh token revoked"),
            Ok(false) => tracing::debug!("the provider has no revocation endpoint"),
            Err(e) => tracing::warn!(error = %e, "could not revoke the refresh token"),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct SignOutIntent {
    /// The session being signed out: the authenticate host acts only for this one.
    pub(super) session_id: String,
    /// For `id_token_hint`, when the route host had it (Redis).
    #[serde(default)]
    pub(super) id_token: Option<String>,
    pub(super) exp: i64,
}

/// What a sign-out CSRF token is bound to: the session and this host's origin, so a
/// token read on one host (say, by a script of that host's app) signs nobody out
/// from another.
pub(super) fn sign_out_binding(sid: &str, ctx: &Ctx<'_>) -> String {
    format!("{sid}@{}:{}", ctx.host, ctx.port)
}

/// Whether a state-changing request comes from a page of this same origin, as far as
/// the browser says: `Sec-Fetch-Site` when sent, else `Origin` when sent (requests
/// from older browsers and non-browsers carry neither, and rely on the CSRF token).
pub(super) fn is_same_origin(headers: &HeaderMap, host: &str, port: u16) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin.eq_ignore_ascii_case(&origin_url(host, port)),
        None => true,
    }
}
