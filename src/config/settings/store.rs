//! `session_store` (the Redis URL) and the keys beside it: the password and the TLS
//! files.

use std::path::PathBuf;

use super::super::error::Problems;
use super::super::fields::{self, Fields};
use super::super::yaml::Node;
use super::super::*;

/// Where sessions live (`session_store`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionStore {
    /// An AEAD-encrypted session in the cookie itself.
    #[default]
    Cookie,
    /// Redis, Sentinel or Cluster (`session_store` and the `session_store_*` keys).
    Redis(Box<RedisSettings>),
}

/// A Redis session store: where it is, and the TLS files for `rediss…://` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// The URL, with `session_store_password` in it when that is set.
    pub url: StoreUrl,
    /// `session_store_ca_file`: the CA bundle that signed the servers' certificates
    /// (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// `session_store_cert_file` and `session_store_key_file`: a client certificate.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

pub(super) fn read_session_store(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<SessionStore> {
    let text = fields::secret_string(node, path, p)?;
    if text == "cookie" {
        return Some(SessionStore::Cookie);
    }
    // The URL may carry a password: the parser's errors never quote it.
    match super::store_url::parse(&text) {
        Ok(url) => Some(SessionStore::Redis(Box::new(RedisSettings {
            url,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }))),
        Err(e) if !text.contains("://") || e.contains("unknown scheme") => {
            p.push(
                &node.origin,
                path,
                "must be `cookie` or a `redis://` / `rediss://` URL (or redis+sentinel://, \
                 rediss+sentinel://, redis+cluster://, rediss+cluster://)",
            );
            None
        }
        Err(e) => {
            p.push(&node.origin, path, format!("the URL {e}"));
            None
        }
    }
}

/// `session_store` and the keys beside it: the password (when not in the URL) and the
/// TLS files for `rediss…://` URLs.
pub(crate) fn read_session_store_settings(f: &Fields<'_>, p: &mut Problems) -> SessionStore {
    let store = f
        .read("session_store", p, read_session_store)
        .unwrap_or_default();
    let password = f.read("session_store_password", p, |n, path, p| {
        fields::secret_string(n, path, p).map(Secret::new)
    });
    let file = |key: &str, p: &mut Problems| f.read(key, p, fields::nonempty).map(PathBuf::from);
    let ca_file = file("session_store_ca_file", p);
    let cert_file = file("session_store_cert_file", p);
    let key_file = file("session_store_key_file", p);
    let SessionStore::Redis(mut redis) = store else {
        for key in [
            "session_store_password",
            "session_store_ca_file",
            "session_store_cert_file",
            "session_store_key_file",
        ] {
            if let Some(n) = f.get(key) {
                p.push(&n.origin, key, "needs a Redis `session_store`");
            }
        }
        return store;
    };
    if let Some(pw) = password {
        redis.url.password = Some(pw);
    }
    if !redis.url.tls {
        for key in [
            "session_store_ca_file",
            "session_store_cert_file",
            "session_store_key_file",
        ] {
            if let Some(n) = f.get(key) {
                p.push(
                    &n.origin,
                    key,
                    "needs a TLS session_store URL (rediss://, rediss+sentinel:// or \
                     rediss+cluster://)",
                );
            }
        }
    }
    if cert_file.is_some() != key_file.is_some() {
        let (given, missing) = if cert_file.is_some() {
            ("session_store_cert_file", "session_store_key_file")
        } else {
            ("session_store_key_file", "session_store_cert_file")
        };
        if let Some(n) = f.get(given) {
            p.push(&n.origin, given, format!("needs {missing} too"));
        }
    }
    redis.ca_file = ca_file;
    redis.cert_file = cert_file;
    redis.key_file = key_file;
    SessionStore::Redis(redis)
}
