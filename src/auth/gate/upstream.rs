//! What the upstream gets: Portcullis cookies removed, the signed assertion (reused for a
//! minute for the very same host and identity), identity and claim headers.

use super::*;

impl Auth {
    /// Adds the identity headers for the upstream and removes Portcullis cookies.
    pub fn decorate_upstream(
        &self,
        headers: &mut HeaderMap,
        identity: Option<&Identity>,
        route_host: &str,
        pass_identity_headers: bool,
        now: jiff::Timestamp,
    ) {
        strip_family(headers, self.names.base());
        let Some(id) = identity else {
            return;
        };
        if let Some(v) = self.assertion(id, route_host, now) {
            headers.insert(ASSERTION_HEADER, v);
        }
        if pass_identity_headers {
            let groups = id.groups.join(",");
            for (names, value) in [
                (
                    ["x-portcullis-claim-email", "x-forwarded-email"],
                    id.email.as_str(),
                ),
                (
                    ["x-portcullis-claim-user", "x-forwarded-user"],
                    id.user.as_str(),
                ),
                (
                    ["x-portcullis-claim-groups", "x-forwarded-groups"],
                    groups.as_str(),
                ),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    for name in names {
                        headers.insert(HeaderName::from_static(name), v.clone());
                    }
                }
            }
        }
        for (name, claim) in &self.claims_headers {
            let value = match claim.as_str() {
                "email" => Value::String(id.email.clone()),
                "sub" | "user" => Value::String(id.user.clone()),
                "groups" => Value::String(id.groups.join(",")),
                other => id.claims.get(other).cloned().unwrap_or(Value::Null),
            };
            let text = match value {
                Value::String(s) => s,
                Value::Null => continue,
                Value::Array(list) => list
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&text) {
                headers.insert(name.clone(), v);
            }
        }
    }

    /// The signed assertion for `id` at `route_host`. Signing costs tens of
    /// microseconds, so one assertion (valid five minutes) is reused for a minute — for
    /// exactly the same host and identity, compared in full on every hit.
    pub(super) fn assertion(
        &self,
        id: &Identity,
        route_host: &str,
        now: jiff::Timestamp,
    ) -> Option<HeaderValue> {
        let key = self
            .assertion_keys
            .hash_one((route_host, &id.user, &id.email, &id.groups));
        let now_s = now.as_second();
        {
            let cache = crate::sync::lock(&self.assertions);
            if let Some(s) = cache.get(&key)
                && now_s < s.until
                && s.is_for(route_host, id)
            {
                return Some(s.value.clone());
            }
        }
        let mut assertion = Assertion::new(&self.authenticate_url, route_host, &id.user, now)
            .with_groups(id.groups.iter().cloned());
        if !id.email.is_empty() {
            assertion = assertion.with_email(id.email.clone());
        }
        let value = HeaderValue::from_str(&self.signer.sign(&assertion.claims())).ok()?;
        let mut cache = crate::sync::lock(&self.assertions);
        if cache.len() >= ASSERTION_CACHE_ENTRIES {
            cache.retain(|_, s| now_s < s.until);
            if cache.len() >= ASSERTION_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Signed {
                host: route_host.into(),
                user: id.user.clone(),
                email: id.email.clone(),
                groups: id.groups.clone(),
                value: value.clone(),
                until: now_s + ASSERTION_REUSE_SECS,
            },
        );
        Some(value)
    }
}

/// A signed assertion in the cache, with what it was signed for.
pub(super) struct Signed {
    pub(super) host: Box<str>,
    pub(super) user: String,
    pub(super) email: String,
    pub(super) groups: Vec<String>,
    pub(super) value: HeaderValue,
    pub(super) until: i64,
}

impl Signed {
    pub(super) fn is_for(&self, host: &str, id: &Identity) -> bool {
        *self.host == *host
            && self.user == id.user
            && self.email == id.email
            && self.groups == id.groups
    }
}

/// The signed identity header for upstreams.
pub const ASSERTION_HEADER: HeaderName = HeaderName::from_static("x-portcullis-jwt-assertion");
