//! What Portcullis answers with: the body type every response carries (upstream bodies
//! passed through, or its own pages), and the plain HTML/JSON pages it renders itself.
//! Below `auth` and `proxy`, so both can answer without importing each other.

pub mod pages;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors of bodies in flight (upstream or client I/O, idle timeouts).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body Portcullis sends: upstream bodies passed through, or its own pages.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
