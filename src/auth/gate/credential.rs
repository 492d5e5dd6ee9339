//! Route credentials: reading the one bound to this host (through the decoded-credential
//! cache, compared in full and by binding on every hit) and writing the cookies.

use super::*;

impl Auth {
    /// The credential bound to `host:port` that the request carries, if any.
    pub(in crate::auth) async fn credential(
        &self,
        headers: &HeaderMap,
        host: &str,
        port: u16,
        now: i64,
    ) -> Identified {
        let binding = self.names.binding(host, port);
        let found = self.names.with_route_name(&binding, |name| {
            crate::auth::cookies::Pieces::of_unique(headers, name)
        });
        let Some(pieces) = found else {
            return Identified::default();
        };
        // The common case: the same cookie was decoded a moment ago for this same
        // binding. Compared and hashed in place, without joining its chunks.
        let (last, filled) = pieces.tail::<COOKIE_KEY_TAIL>();
        let key = self.cookie_key(pieces.len(), &last[COOKIE_KEY_TAIL - filled..]);
        if let Some(known) = self.recall(key, |seen| pieces.eq_bytes(seen), &binding, now) {
            return Identified {
                identity: Some(known.identity.clone()),
                renew: now >= known.renew_at,
                known: Some(known),
                ..Identified::default()
            };
        }
        match pieces.value() {
            Some(value) => Box::pin(self.load_credential(value, key, binding, now)).await,
            None => Identified::default(),
        }
    }

    /// Decodes (and with Redis, refreshes) a route credential; ended ones come back as
    /// clearing cookies.
    pub(super) async fn load_credential(
        &self,
        value: String,
        key: u64,
        binding: Binding<'_>,
        now: i64,
    ) -> Identified {
        let cookie = self.names.route(&binding);
        let loaded = match self
            .store
            .load_route(&self.sealer, &value, &binding.aad(), now)
            .await
        {
            Ok(Some(l)) => l,
            Ok(None) => {
                return Identified {
                    set_cookies: cookie.clear(),
                    ..Identified::default()
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable");
                return Identified {
                    store_error: Some(e),
                    ..Identified::default()
                };
            }
        };
        let known = match loaded {
            RouteLoaded::Credential(c) if now < c.exp => known_from_credential(c),
            // Expired: renewal goes through the authenticate host — unless the provider
            // is down, when the session outlives its tokens (as the authenticate host's
            // does), until its own end.
            RouteLoaded::Credential(c) => {
                // Only credentials still valid shortly before the outage was noticed,
                // and only for a grace: an old copied credential is not revived.
                let since = match self.provider.outage_since().await {
                    Some(since) => since,
                    None => return Identified::default(),
                };
                if c.exp < since - OUTAGE_GRACE_SECS || now >= c.exp + OUTAGE_GRACE_SECS {
                    return Identified::default();
                }
                let mut known = known_from_credential(c);
                known.valid_until = now + 1;
                known.renew_at = i64::MAX;
                return Identified {
                    identity: Some(known.identity.clone()),
                    known: Some(Arc::new(known)),
                    ..Identified::default()
                };
            }
            RouteLoaded::Session(session) => {
                match self.live(session, now).await {
                    Ok(s) => known_from_session(&s),
                    // The provider refused the grant: the session is over.
                    Err(()) => {
                        return Identified {
                            set_cookies: cookie.clear(),
                            ..Identified::default()
                        };
                    }
                }
            }
        };
        let known = Arc::new(known);
        self.remember(key, &value, &binding, &known, now);
        Identified {
            identity: Some(known.identity.clone()),
            renew: now >= known.renew_at,
            known: Some(known),
            ..Identified::default()
        }
    }

    pub(super) fn recall(
        &self,
        key: u64,
        same: impl Fn(&[u8]) -> bool,
        binding: &Binding<'_>,
        now: i64,
    ) -> Option<Arc<Known>> {
        let cache = crate::sync::lock(&self.decoded);
        let entry = cache.get(&key)?;
        (same(entry.value.as_bytes())
            && entry.binding.is(binding)
            && now - entry.at < DECODED_FOR_SECS
            && now < entry.known.valid_until)
            .then(|| entry.known.clone())
    }

    pub(super) fn remember(
        &self,
        key: u64,
        value: &str,
        binding: &Binding<'_>,
        known: &Arc<Known>,
        now: i64,
    ) {
        let mut cache = crate::sync::lock(&self.decoded);
        if cache.len() >= DECODED_ENTRIES {
            cache.retain(|_, e| now - e.at < DECODED_FOR_SECS);
            if cache.len() >= DECODED_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Remembered {
                value: value.into(),
                binding: binding.owned(),
                known: known.clone(),
                at: now,
            },
        );
    }

    /// The cache key of a cookie value: a keyed hash of its length and last bytes,
    /// where a sealed value ends in its authentication tag. Hashing kilobytes on every
    /// request would cost more than the lookup; the entry keeps the whole value and its
    /// binding and [`Auth::recall`] compares both, so two values with one key only miss.
    pub(super) fn cookie_key(&self, len: usize, tail: &[u8]) -> u64 {
        self.decoded_keys.hash_one((len, tail))
    }

    /// Forgets decoded credentials of a session (sign-out).
    pub(in crate::auth) fn forget_decoded(&self, session_id: &str) {
        let mut cache = crate::sync::lock(&self.decoded);
        cache.retain(|_, e| e.known.sid != session_id);
    }

    /// `Set-Cookie` values storing `credential` for `host:port`.
    pub(in crate::auth) fn route_cookie(
        &self,
        host: &str,
        port: u16,
        credential: &RouteCredential,
        now: i64,
    ) -> Vec<HeaderValue> {
        let binding = self.names.binding(host, port);
        let value = self
            .store
            .route_value(&self.sealer, credential, &binding.aad());
        set_until(
            &self.names.route(&binding),
            &value,
            credential.session_expires,
            now,
        )
    }

    /// `Set-Cookie` values clearing the credential of `host:port`.
    pub(in crate::auth) fn clear_route_cookie(&self, host: &str, port: u16) -> Vec<HeaderValue> {
        self.names.route(&self.names.binding(host, port)).clear()
    }

    /// `Set-Cookie` values storing the authenticate host's session `value` on `port`
    /// until the session ends.
    pub(in crate::auth) fn session_cookie(
        &self,
        port: u16,
        value: &str,
        session: &Session,
        now: i64,
    ) -> Vec<HeaderValue> {
        set_until(&self.names.authenticate(port), value, session.expires, now)
    }
}

/// `Set-Cookie` values storing `value` in `cookie` until `until` (unix seconds).
pub(super) fn set_until(
    cookie: &crate::auth::cookies::SessionCookie,
    value: &str,
    until: i64,
    now: i64,
) -> Vec<HeaderValue> {
    let max_age = Duration::from_secs((until - now).max(0) as u64);
    match cookie.set(value, Some(max_age)) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "session cookie too large; use session_store: redis://…");
            Vec::new()
        }
    }
}

/// A decoded credential in the cache, with what it was decoded from.
pub(super) struct Remembered {
    value: Box<str>,
    binding: OwnedBinding,
    known: Arc<Known>,
    /// When it was decoded (unix seconds).
    at: i64,
}

pub(super) fn known_from_credential(c: RouteCredential) -> Known {
    let identity = Arc::new(c.identity());
    Known {
        identity,
        sid: c.sid,
        name: c.name,
        valid_until: c.exp,
        renew_at: c.renew_at,
        session_expires: c.session_expires,
    }
}

pub(super) fn known_from_session(s: &Session) -> Known {
    // With Redis the session refreshes here; look again when a refresh is due.
    let valid_until = if s.refresh_token.is_some() {
        s.token_expires - crate::auth::session::REFRESH_BEFORE
    } else {
        s.token_expires
    };
    Known {
        identity: Arc::new(s.identity()),
        sid: s.id.clone(),
        name: s.name.clone(),
        valid_until: valid_until.min(s.expires),
        renew_at: i64::MAX,
        session_expires: s.expires,
    }
}

/// How many of a cookie value's last bytes key the decoded-credential cache: a sealed
/// value ends in its authentication tag.
pub(super) const COOKIE_KEY_TAIL: usize = 32;
