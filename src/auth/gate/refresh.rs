//! Keeping sessions live: the authenticate host's own session, and refreshes — once per
//! session at a time, and with Redis once in the cluster.

use super::*;

impl Auth {
    /// `session`, refreshed when due. `Err`: the provider refused the grant (the session
    /// was deleted). A provider outage keeps the session as it is.
    pub(super) async fn live(&self, session: Session, now: i64) -> Result<Session, ()> {
        if !session.needs_refresh(now) {
            return Ok(session);
        }
        match self.refresh(session.clone(), now).await {
            Ok(Some(fresh)) => Ok(fresh),
            Ok(None) => Ok(session),
            Err(()) => {
                let _ = self.store.delete(&session.id).await;
                self.forget_decoded(&session.id);
                Err(())
            }
        }
    }

    /// The authenticate host's session on `port`, refreshed when due.
    pub(in crate::auth) async fn auth_session(
        &self,
        headers: &HeaderMap,
        port: u16,
        now: i64,
    ) -> AuthSession {
        let cookie = self.names.authenticate(port);
        let Some(value) = cookie.read_unique(headers) else {
            return AuthSession::default();
        };
        let session = match self.store.load(&self.sealer, &value, now).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return AuthSession {
                    set_cookies: cookie.clear(),
                    ..AuthSession::default()
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable");
                return AuthSession {
                    store_error: Some(e),
                    ..AuthSession::default()
                };
            }
        };
        if !session.needs_refresh(now) {
            return AuthSession {
                session: Some(session),
                ..AuthSession::default()
            };
        }
        match self.refresh(session.clone(), now).await {
            Ok(Some(fresh)) => {
                // Redis: the cookie names the session, which `refresh` stored. Cookie
                // store: the cookie is the session.
                let set_cookies = if self.store.is_redis() {
                    Vec::new()
                } else {
                    match self.store.save(&self.sealer, &fresh, now).await {
                        Ok(v) => self.session_cookie(port, &v, &fresh, now),
                        Err(_) => Vec::new(),
                    }
                };
                AuthSession {
                    session: Some(fresh),
                    set_cookies,
                    ..AuthSession::default()
                }
            }
            Ok(None) => AuthSession {
                session: Some(session),
                outage: true,
                ..AuthSession::default()
            },
            Err(()) => {
                let _ = self.store.delete(&session.id).await;
                self.forget_decoded(&session.id);
                AuthSession {
                    set_cookies: cookie.clear(),
                    ..AuthSession::default()
                }
            }
        }
    }

    /// Refreshes once per session at a time (with Redis: in the whole cluster, and the
    /// result is stored before the lock is released, so the next holder sees it).
    /// `Ok(None)`: provider unreachable (keep the old session); `Err`: the grant is gone
    /// (end the session).
    pub(super) async fn refresh(&self, session: Session, now: i64) -> Result<Option<Session>, ()> {
        let id = session.id.clone();
        let slot = {
            let mut flights = crate::sync::lock(&self.flights);
            flights.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.try_lock().is_err());
            flights.entry(session.id.clone()).or_default().clone()
        };
        let mut shared = slot.lock().await;
        if let Some((fresh, at)) = &*shared
            && now - at < REFRESH_SHARE_SECS
            && fresh.token_expires > session.token_expires
        {
            return Ok(Some(fresh.clone()));
        }
        let lock = match self.store.lock_refresh(&session.id).await {
            Ok(Some(lock)) => Some(lock),
            // Another replica is refreshing the same session: wait for its result.
            Ok(None) => {
                let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Ok(Some(s)) = self.store.load_id(&self.sealer, &session.id, now).await
                        && s.token_expires > session.token_expires
                    {
                        return Ok(Some(s));
                    }
                }
                return Ok(None);
            }
            // Redis unreachable: don't refresh (a rotated refresh token whose successor
            // can't be stored would end the session); keep the session as it is, as in a
            // provider outage — its tokens are still valid for a while.
            Err(_) if self.store.is_redis() => return Ok(None),
            Err(_) => None,
        };
        let result = self.refresh_holding(session, now).await;
        if let Some(lock) = &lock {
            self.store.unlock_refresh(&id, lock).await;
        }
        if let Ok(Some(fresh)) = &result {
            *shared = Some((fresh.clone(), now));
        }
        result
    }

    /// The refresh itself, with the lock held (when there is one).
    pub(super) async fn refresh_holding(
        &self,
        mut session: Session,
        now: i64,
    ) -> Result<Option<Session>, ()> {
        if self.store.is_redis() {
            // Another replica may have refreshed (and rotated the refresh token) just
            // before this one took the lock. Use its result rather than the old token.
            match self.store.load_id(&self.sealer, &session.id, now).await {
                Ok(Some(s)) if s.token_expires > session.token_expires => return Ok(Some(s)),
                Ok(Some(s)) => session = s,
                Ok(None) => return Err(()),
                Err(_) => {}
            }
        }
        let refresh_token = session.refresh_token.clone().unwrap_or_default();
        let refreshed = tokio::time::timeout(
            crate::auth::session::REFRESH_LIMIT,
            self.provider.refresh(&refresh_token),
        )
        .await
        .unwrap_or_else(|_| Err(ProviderError::Unavailable("the refresh timed out".into())));
        let tokens = match refreshed {
            Ok(tokens) => tokens,
            // Only an outage keeps a session its provider did not renew: any answer
            // refusing the refresh (a revoked grant, a user an access policy no longer
            // admits, tokens that fail verification) ends it.
            Err(e @ ProviderError::Unavailable(_)) => {
                self.provider.record_outage().await;
                tracing::warn!(error = %e, "refresh failed; keeping the session for now");
                return Ok(None);
            }
            Err(e) => {
                tracing::info!(session = %short(&session.id), reason = %e,
                    "the provider refused the refresh; ending the session");
                return Err(());
            }
        };
        session.update(tokens);
        tracing::debug!(session = %short(&session.id), "tokens refreshed");
        match self.store.save_refreshed(&self.sealer, &session, now).await {
            Ok(true) => {}
            // Signed out while the refresh ran: it stays signed out.
            Ok(false) => return Err(()),
            Err(e) => tracing::warn!(error = %e, "could not store the refreshed session"),
        }
        Ok(Some(session))
    }
}

/// One session's refresh in progress: its result and when it was obtained, shared
/// with requests that waited for it.
pub(super) type Flight = Arc<tokio::sync::Mutex<Option<(Session, i64)>>>;
