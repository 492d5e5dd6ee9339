//! Sign-in and sessions (docs/design.md).
//!
//! Building blocks, each pure and small:
//! - [`keys`]: `cookie_secret` and the HKDF subkeys derived from it;
//! - [`seal`]: AEAD sealing of values that travel through the browser;
//! - [`cookies`]: `Set-Cookie` values, chunking, reading back, stripping before upstream;
//! - [`jwt`]: the ES256 `X-Portcullis-Jwt-Assertion` and its JWKS;
//! - [`handoff`]: the single-use sign-in handoff token and its replay guard;
//! - [`redirect`]: return-URL validation (no open redirects);
//! - [`csrf`]: the sign-out CSRF token and OIDC `state` values.
//!
//! And the machinery built on them:
//! - [`provider`]: the OpenID Connect provider (discovery, code flow, refresh, tokens);
//! - [`session`]: sessions and the credentials route hosts get;
//! - [`store`]: where sessions are kept (the cookie, or Redis: one server, Sentinel or Cluster);
//! - [`gate`]: who a request comes from, and the identity sent upstream;
//! - [`endpoints`] and [`pages`]: sign-in, callback, handoff, user page, sign-out.

pub mod binding;
pub mod cookies;
pub mod csrf;
pub mod endpoints;
pub mod gate;
pub mod handoff;
pub mod jwt;
pub mod keys;
pub mod pages;
pub mod provider;
pub mod redirect;
pub mod seal;
pub mod session;
pub mod settings;
pub mod store;

pub use cookies::CookieError;
pub use handoff::{HANDOFF_TTL, HandoffCodec, HandoffError, Ticket};
pub use jwt::{SigningKey, SigningKeyError};
pub use keys::{CookieSecret, KeyError};
pub use redirect::is_safe_path;
