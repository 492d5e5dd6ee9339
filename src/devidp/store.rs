//! The provider's memory: pending sign-ins, authorization codes, access and refresh
//! tokens. Every map expires its entries and holds at most a fixed number of them, so a
//! client looping on `/authorize` or `/token` cannot grow memory without bound.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Sign-ins started on `/authorize` and not yet decided on the login page.
const MAX_PENDING: usize = 1_000;
/// Authorization codes issued and not yet redeemed.
const MAX_CODES: usize = 1_000;
const MAX_ACCESS_TOKENS: usize = 10_000;
const MAX_REFRESH_TOKENS: usize = 10_000;
/// Subjects remembered as signed out through `/logout` (newest last).
const MAX_SIGNED_OUT: usize = 100;

/// A map whose entries expire and whose size is capped: when full, the entry closest to
/// expiry makes room.
#[derive(Debug)]
pub(super) struct Expiring<V> {
    entries: HashMap<String, (Instant, V)>,
    cap: usize,
}

impl<V> Expiring<V> {
    pub(super) fn new(cap: usize) -> Expiring<V> {
        Expiring {
            entries: HashMap::new(),
            cap,
        }
    }

    pub(super) fn insert(&mut self, key: String, value: V, ttl: Duration, now: Instant) {
        self.entries.retain(|_, (expires, _)| *expires > now);
        if self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
            let soonest = self
                .entries
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(k, _)| k.clone());
            if let Some(k) = soonest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key, (now + ttl, value));
    }

    /// The live value under `key`.
    pub(super) fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, v)| v)
    }

    /// Removes `key`, returning its value if it had not expired.
    pub(super) fn take(&mut self, key: &str, now: Instant) -> Option<V> {
        self.entries
            .remove(key)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, v)| v)
    }

    /// Drops every entry for which `drop` holds; returns how many went.
    pub(super) fn remove_where(&mut self, mut drop: impl FnMut(&V) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, (_, v)| !drop(v));
        before - self.entries.len()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What a client asked for on `/authorize`, validated.
#[derive(Debug, Clone)]
pub(super) struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: String,
    pub nonce: Option<String>,
    /// base64url(SHA-256(code_verifier)).
    pub code_challenge: String,
}

/// An authorization code: the request it answers and who signed in.
#[derive(Debug, Clone)]
pub(super) struct CodeGrant {
    pub request: AuthorizationRequest,
    pub sub: String,
    /// Unix seconds.
    pub auth_time: i64,
}

/// What an access or refresh token stands for.
#[derive(Debug, Clone)]
pub(super) struct TokenGrant {
    pub client_id: String,
    pub sub: String,
    pub scopes: Vec<String>,
    pub auth_time: i64,
}

#[derive(Debug)]
pub(super) struct Store {
    /// Keyed by the random id in the login form's hidden `pending` field.
    pub pending: Expiring<AuthorizationRequest>,
    pub codes: Expiring<CodeGrant>,
    pub access_tokens: Expiring<TokenGrant>,
    pub refresh_tokens: Expiring<TokenGrant>,
    pub signed_out: VecDeque<String>,
}

impl Store {
    pub(super) fn new() -> Store {
        Store {
            pending: Expiring::new(MAX_PENDING),
            codes: Expiring::new(MAX_CODES),
            access_tokens: Expiring::new(MAX_ACCESS_TOKENS),
            refresh_tokens: Expiring::new(MAX_REFRESH_TOKENS),
            signed_out: VecDeque::new(),
        }
    }

    pub(super) fn note_signed_out(&mut self, sub: String) {
        if self.signed_out.len() >= MAX_SIGNED_OUT {
            self.signed_out.pop_front();
        }
        self.signed_out.push_back(sub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn entries_expire() {
        let t0 = Instant::now();
        let mut m = Expiring::new(10);
        m.insert("a".into(), 1, 60 * S, t0);
        assert_eq!(m.get("a", t0 + 59 * S), Some(&1));
        assert_eq!(m.get("a", t0 + 60 * S), None);
        assert_eq!(m.take("a", t0 + 61 * S), None);
        assert_eq!(m.len(), 0, "take removes even an expired entry");
    }

    #[test]
    fn take_is_single_use() {
        let t0 = Instant::now();
        let mut m = Expiring::new(10);
        m.insert("code".into(), "grant", 60 * S, t0);
        assert_eq!(m.take("code", t0), Some("grant"));
        assert_eq!(m.take("code", t0), None);
    }

    #[test]
    fn size_is_capped() {
        let t0 = Instant::now();
        let mut m = Expiring::new(3);
        for i in 0..1_000u64 {
            m.insert(format!("k{i}"), i, Duration::from_secs(100 + i), t0);
            assert!(m.len() <= 3);
        }
        // The newest (longest-lived) survive.
        assert_eq!(m.get("k999", t0), Some(&999));
        assert_eq!(m.get("k997", t0), Some(&997));
        assert_eq!(m.get("k0", t0), None);
        // Expired entries are purged before anything live is evicted.
        m.insert("late".into(), 0, S, t0 + 2_000 * S);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn remove_where_counts() {
        let t0 = Instant::now();
        let mut m = Expiring::new(10);
        for (k, v) in [("a", 1), ("b", 2), ("c", 1)] {
            m.insert(k.into(), v, S, t0);
        }
        assert_eq!(m.remove_where(|v| *v == 1), 2);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn signed_out_is_capped() {
        let mut s = Store::new();
        for i in 0..(MAX_SIGNED_OUT + 5) {
            s.note_signed_out(i.to_string());
        }
        assert_eq!(s.signed_out.len(), MAX_SIGNED_OUT);
        assert_eq!(s.signed_out.back().map(String::as_str), Some("104"));
    }
}
