//! Sign-in: the OpenID Connect provider, sessions, and the identity passed upstream.

pub mod provider;
