//! Who am I: `/.portcullis/` and `/.portcullis/user`, from this host's session.

use super::*;

impl Auth {
    /// The session of this request: the authenticate host's own, or this route host's
    /// credential.
    /// `Err`: the session store could not be read (answer 503: never "signed out").
    pub(super) async fn current(
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
    pub(super) async fn user_page<B>(
        &self,
        req: &Request<B>,
        ctx: &Ctx<'_>,
        as_json: bool,
    ) -> Response<Body> {
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
}

/// The session a request on this host belongs to.
pub(super) struct Current {
    pub(super) identity: Arc<Identity>,
    pub(super) sid: String,
    pub(super) name: String,
    pub(super) session_expires: i64,
}
