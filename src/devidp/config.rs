//! The development provider's configuration: its clients, users and token lifetime,
//! and the checks [`start`](super::start) makes before listening.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default lifetime of access and ID tokens (Okta's default).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// What the development provider serves.
#[derive(Debug, Clone)]
pub struct DevIdpConfig {
    /// A loopback address; port 0 picks a free one (see [`RunningIdp::addr`](super::RunningIdp::addr)).
    pub listen: SocketAddr,
    /// The relying parties allowed to sign users in (at least one).
    pub clients: Vec<DevClient>,
    /// The users the login page offers (at least one).
    pub users: Vec<DevUser>,
    /// Lifetime of access and ID tokens.
    pub token_lifetime: Duration,
}

impl Default for DevIdpConfig {
    /// 127.0.0.1 on a free port, no clients yet, the demo users, one-hour tokens.
    fn default() -> Self {
        DevIdpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            clients: Vec::new(),
            users: DevUser::demo_users(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

/// A registered OAuth client (confidential: it authenticates with its secret,
/// `client_secret_basic` or `client_secret_post`).
#[derive(Clone, PartialEq, Eq)]
pub struct DevClient {
    pub client_id: String,
    pub client_secret: String,
    /// Compared exactly, as Okta does.
    pub redirect_uris: Vec<String>,
    /// Where `/logout` may send the browser back to, compared exactly.
    pub post_logout_redirect_uris: Vec<String>,
}

impl DevClient {
    /// A client with one redirect URI and no post-logout redirect URIs.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> DevClient {
        DevClient {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: vec![redirect_uri.into()],
            post_logout_redirect_uris: Vec::new(),
        }
    }
}

impl std::fmt::Debug for DevClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .finish()
    }
}

/// A user the login page offers. Deserializable, so `portcullis dev` can read users
/// from a small file (`groups` may be left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevUser {
    /// The subject: stable, Okta-style (`00u…`).
    pub sub: String,
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl DevUser {
    /// Ada (groups `admin`, `engineering`), Grace (`engineering`) and Linus (no groups).
    pub fn demo_users() -> Vec<DevUser> {
        let user = |sub: &str, email: &str, name: &str, groups: &[&str]| DevUser {
            sub: sub.into(),
            email: email.into(),
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        vec![
            user(
                "00udevada00000000001",
                "ada@example.com",
                "Ada Lovelace",
                &["admin", "engineering"],
            ),
            user(
                "00udevgrace000000002",
                "grace@example.com",
                "Grace Hopper",
                &["engineering"],
            ),
            user(
                "00udevlinus000000003",
                "linus@example.com",
                "Linus Torvalds",
                &[],
            ),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("the development OpenID provider listens on loopback only, not on {0}")]
    NotLoopback(SocketAddr),
    #[error("the development OpenID provider cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("development OpenID provider: {0}")]
    Config(String),
}

pub(super) fn validate(config: &DevIdpConfig) -> Result<(), DevIdpError> {
    let invalid = |m: String| Err(DevIdpError::Config(m));
    if !config.listen.ip().is_loopback() {
        return Err(DevIdpError::NotLoopback(config.listen));
    }
    if config.clients.is_empty() {
        return invalid("no clients registered".into());
    }
    if config.users.is_empty() {
        return invalid("no users".into());
    }
    if config.token_lifetime < Duration::from_secs(1) {
        return invalid("token_lifetime must be at least one second".into());
    }
    for (i, c) in config.clients.iter().enumerate() {
        if c.client_id.is_empty() || c.client_secret.is_empty() {
            return invalid(format!("client {i} needs a client_id and a client_secret"));
        }
        if config.clients[..i]
            .iter()
            .any(|o| o.client_id == c.client_id)
        {
            return invalid(format!("client_id {:?} registered twice", c.client_id));
        }
        if c.redirect_uris.is_empty() {
            return invalid(format!("client {:?} has no redirect URI", c.client_id));
        }
        for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
            let scheme_ok = uri.starts_with("http://") || uri.starts_with("https://");
            if !scheme_ok || uri.contains('#') || uri.chars().any(char::is_whitespace) {
                return invalid(format!(
                    "client {:?}: {uri:?} is not an absolute http(s) URI without a fragment",
                    c.client_id
                ));
            }
        }
    }
    for (i, u) in config.users.iter().enumerate() {
        if u.sub.is_empty() {
            return invalid(format!("user {i} has no sub"));
        }
        if config.users[..i].iter().any(|o| o.sub == u.sub) {
            return invalid(format!("user sub {:?} listed twice", u.sub));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DevIdpConfig {
        DevIdpConfig {
            clients: vec![DevClient::new("c", "s", "http://app.localhost/cb")],
            ..DevIdpConfig::default()
        }
    }

    #[test]
    fn validates_config() {
        assert!(validate(&config()).is_ok());
        let mut c = config();
        c.listen = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(validate(&c), Err(DevIdpError::NotLoopback(_))));
        c.listen = "[::1]:0".parse().unwrap();
        assert!(validate(&c).is_ok());
        type Edit = fn(&mut DevIdpConfig);
        let bad: [Edit; 8] = [
            |c| c.clients.clear(),
            |c| c.users.clear(),
            |c| c.token_lifetime = Duration::ZERO,
            |c| c.clients[0].client_secret.clear(),
            |c| c.clients.push(c.clients[0].clone()),
            |c| c.clients[0].redirect_uris = vec!["http://x/cb#frag".into()],
            |c| c.clients[0].post_logout_redirect_uris = vec!["/relative".into()],
            |c| c.users.push(c.users[0].clone()),
        ];
        for (i, edit) in bad.iter().enumerate() {
            let mut c = config();
            edit(&mut c);
            assert!(matches!(validate(&c), Err(DevIdpError::Config(_))), "{i}");
        }
    }

    #[test]
    fn demo_users_are_okta_shaped() {
        let users = DevUser::demo_users();
        assert_eq!(users.len(), 3);
        for u in &users {
            assert!(u.sub.starts_with("00u") && u.sub.len() == 20, "{}", u.sub);
            assert!(u.sub.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_eq!(users[0].groups, ["admin", "engineering"]);
        assert!(users[2].groups.is_empty());
        let read: DevUser =
            serde_json::from_str(r#"{"sub":"00u1","email":"e@x","name":"N"}"#).unwrap();
        assert!(read.groups.is_empty());
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = DevClient::new("c", "hunter2", "http://x/cb");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
