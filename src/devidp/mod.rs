//! The embedded development OpenID provider that `portcullis dev` starts, so a person can
//! try sign-in with no identity provider to set up. NOT FOR PRODUCTION: it has demo
//! users and no passwords; its login page lets whoever clicks pick a user.
//!
//! It is a small but real OpenID Connect provider, shaped like Okta's: discovery, JWKS,
//! the authorization code flow with PKCE (S256 required, as Okta does for new apps), a
//! `groups` claim always in the ID token and userinfo (Pomerium's Okta guide sets the
//! claim up that way), refresh tokens when `offline_access` is granted (kept, not
//! rotated: Okta's default for web apps), and RP-initiated logout. Endpoints:
//! `/.well-known/openid-configuration`, `/keys`, `/authorize`, `/token`, `/userinfo`,
//! `/logout` (the `endpoints`, `authorize` and `token` modules give each one's rules).
//!
//! Plain HTTP on purpose: [`start`] refuses any address but loopback, so nothing leaves
//! the machine; the browser reaches it at `http://127.0.0.1:PORT` (browsers treat
//! loopback as a secure context) and the proxy's HTTP client reaches it directly, with no
//! certificate to generate or trust. Requests whose `Host` is not a loopback name are
//! refused, which closes the DNS-rebinding door a loopback server otherwise leaves open.
//!
//! There is no provider-side session: every `/authorize` shows the user picker (which
//! also makes "switch account" trivial), and `prompt=none` answers `login_required`.
//! Everything lives in memory and dies with the process; the signing key is generated
//! at start.

mod authorize;
mod config;
mod endpoints;
mod form;
mod pages;
mod store;
mod token;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::SigningKey;
pub use config::{DevClient, DevIdpConfig, DevIdpError, DevUser};
use store::Store;

/// How long a request may wait on the login page.
const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Authorization codes are single-use and live this long (Okta: 60 s).
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Refresh tokens live this long (memory only; the process rarely lives as long).
const REFRESH_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Time in-flight requests get to finish on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

// === impl Idp ===

/// The provider's configuration, key and memory, shared by every request.
pub(crate) struct Idp {
    issuer: String,
    key: SigningKey,
    clients: Vec<DevClient>,
    users: Vec<DevUser>,
    token_lifetime: Duration,
    /// Client secrets are compared as HMACs under this per-process key, in constant time.
    secret_mac: hmac::Key,
    store: Mutex<Store>,
}

impl Idp {
    fn client(&self, client_id: &str) -> Option<&DevClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    fn user(&self, sub: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.sub == sub)
    }

    /// Whether `presented` is `client`'s secret, compared in constant time.
    fn secret_matches(&self, client: &DevClient, presented: &str) -> bool {
        let tag = hmac::sign(&self.secret_mac, client.client_secret.as_bytes());
        hmac::verify(&self.secret_mac, presented.as_bytes(), tag.as_ref()).is_ok()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves maps that are still consistent.
        crate::sync::lock(&self.store)
    }
}

/// 256 random bits, base64url: codes, tokens, pending-request ids.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

// === impl RunningIdp ===

/// A started provider. Dropping it (or [`RunningIdp::shutdown`]) stops it.
pub struct RunningIdp {
    addr: SocketAddr,
    idp: Arc<Idp>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningIdp {
    /// `http://127.0.0.1:PORT`, exactly as discovery and the ID tokens say it (no
    /// trailing slash).
    pub fn issuer(&self) -> String {
        self.idp.issuer.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Test hook: invalidates every refresh token issued to `sub`, so the next refresh
    /// fails with `invalid_grant` (as when an Okta admin revokes a user's tokens).
    /// Access tokens stay valid until they expire. Returns how many were revoked.
    pub fn revoke_refresh_tokens(&self, sub: &str) -> usize {
        self.idp
            .store()
            .refresh_tokens
            .remove_where(|g| g.sub == sub)
    }

    /// Subjects that went through `/logout` with a valid `id_token_hint`, oldest first
    /// (the last 100), so tests can see that sign-out reached the provider.
    pub fn signed_out_subjects(&self) -> Vec<String> {
        self.idp.store().signed_out.iter().cloned().collect()
    }

    /// Stops accepting, lets in-flight requests finish (briefly), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

impl std::fmt::Debug for RunningIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningIdp")
            .field("issuer", &self.idp.issuer)
            .finish_non_exhaustive()
    }
}

/// Validates `config`, binds its loopback address and serves until the returned handle
/// is shut down or dropped.
pub async fn start(config: DevIdpConfig) -> Result<RunningIdp, DevIdpError> {
    config::validate(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DevIdpError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| DevIdpError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut mac_key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut mac_key)
        .expect("the system random number generator failed");
    let idp = Arc::new(Idp {
        // SocketAddr's Display brackets IPv6: http://[::1]:PORT.
        issuer: format!("http://{addr}"),
        key: SigningKey::generate(),
        clients: config.clients,
        users: config.users,
        token_lifetime: config.token_lifetime,
        secret_mac: hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
        store: Mutex::new(Store::new()),
    });
    let (shutdown, stop) = watch::channel(false);
    let task = tokio::spawn(serve(listener, idp.clone(), stop));
    tracing::warn!(
        issuer = %idp.issuer,
        "development OpenID provider started: demo users, no passwords, NOT FOR PRODUCTION"
    );
    Ok(RunningIdp {
        addr,
        idp,
        shutdown,
        task,
    })
}

async fn serve(listener: TcpListener, idp: Arc<Idp>, stop: watch::Receiver<bool>) {
    let limits = crate::server::Limits {
        drain_timeout: DRAIN_TIMEOUT,
        ..crate::server::Limits::default()
    };
    crate::server::serve_plain(
        listener,
        "development OpenID provider",
        limits,
        move |req| {
            let idp = idp.clone();
            async move { endpoints::handle(&idp, req).await }
        },
        stop,
    )
    .await;
}
