//! Request header names a route may not set or remove: identity headers (upstreams
//! trust them to name the signed-in user) and framing headers (they decide where one
//! request ends and the next begins). One list for every caller: Ingress annotations,
//! the config file, and the proxy's own stripping of client-sent identity headers.
//!
//! Names are compared without regard to case and with `_` read as `-`: many upstream
//! stacks (CGI, WSGI, nginx with `underscores_in_headers`) fold `X_Forwarded_Email`
//! into the same variable as `X-Forwarded-Email`, so either spelling forges it.
//!
//! Pure: no allocation, no I/O.

/// Prefixes of identity headers: ours, Pomerium's and oauth2-proxy's.
pub const IDENTITY_HEADER_PREFIXES: &[&str] = &["x-portcullis-", "x-pomerium-", "x-auth-request-"];

/// Identity headers by full name (the `X-Forwarded-*` family upstreams of Pomerium and
/// oauth2-proxy read).
pub const IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-email",
    "x-forwarded-user",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
];

/// Headers that frame the request on the way upstream (RFC 9110/9112 hop-by-hop and
/// message-length fields), which a route must leave to the proxy.
pub const FRAMING_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// Why an identity header is reserved.
pub const IDENTITY_REASON: &str = "an identity header: upstreams trust it to name the signed-in user, and only Portcullis sets it";
/// Why a framing header is reserved.
pub const FRAMING_REASON: &str =
    "a framing header: it decides how the request is delimited, which only the proxy may decide";

/// Why a route may not set, add or remove a framing header on a response.
pub const RESPONSE_FRAMING_REASON: &str = "a framing header: it decides how the response is delimited (a wrong Content-Length would let the upstream's bytes be read as a second response on the connection), which only the proxy may decide";

/// Whether `name` is a framing header (`Content-Length`, `Transfer-Encoding`,
/// `Connection` and the other hop-by-hop names), in any case and spelling.
pub fn framing_header(name: &str) -> bool {
    FRAMING_HEADERS.iter().any(|h| same_name(name, h))
}

/// Why a route may not set or remove the response header `name`, or `None` when it
/// may: the framing headers. (Portcullis's cookies are stripped from every response
/// after the route's headers; HTTPRoute filters refuse setting them too.)
pub fn reserved_response_header(name: &str) -> Option<&'static str> {
    framing_header(name).then_some(RESPONSE_FRAMING_REASON)
}

/// Why a route may not set or remove the request header `name`, or `None` when it may.
/// Covers the fixed lists above; configured claim headers need
/// [`reserved_request_header_with`].
pub fn reserved_request_header(name: &str) -> Option<&'static str> {
    if framing_header(name) {
        return Some(FRAMING_REASON);
    }
    if identity_header(name) {
        return Some(IDENTITY_REASON);
    }
    None
}

/// [`reserved_request_header`], plus the header names configured in `jwt_claims_headers`
/// (they carry identity claims as well).
pub fn reserved_request_header_with<S: AsRef<str>>(
    name: &str,
    claim_headers: &[S],
) -> Option<&'static str> {
    reserved_request_header(name).or_else(|| {
        claim_headers
            .iter()
            .any(|c| same_name(name, c.as_ref()))
            .then_some(IDENTITY_REASON)
    })
}

/// Whether `name` is an identity header of the fixed lists, in any case and spelling.
pub fn identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.iter().any(|h| same_name(name, h))
        || IDENTITY_HEADER_PREFIXES
            .iter()
            .any(|p| name.len() > p.len() && same_bytes(&name.as_bytes()[..p.len()], p.as_bytes()))
}

/// Whether two header names are the same once case is ignored and `_` is read as `-`.
pub fn same_name(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_in_every_spelling() {
        let cases: &[(&str, Option<&str>)] = &[
            ("X-Forwarded-Email", Some(IDENTITY_REASON)),
            ("x_forwarded_email", Some(IDENTITY_REASON)),
            ("X-FORWARDED-USER", Some(IDENTITY_REASON)),
            ("X-Forwarded-Groups", Some(IDENTITY_REASON)),
            ("X-Portcullis-Jwt-Assertion", Some(IDENTITY_REASON)),
            ("x_portcullis_claim_email", Some(IDENTITY_REASON)),
            ("X-Pomerium-Jwt-Assertion", Some(IDENTITY_REASON)),
            ("X-Pomerium-Claim-Groups", Some(IDENTITY_REASON)),
            ("X-Auth-Request-Email", Some(IDENTITY_REASON)),
            ("X-Auth-Request-Access-Token", Some(IDENTITY_REASON)),
            ("Host", Some(FRAMING_REASON)),
            ("content-length", Some(FRAMING_REASON)),
            ("Content_Length", Some(FRAMING_REASON)),
            ("Transfer-Encoding", Some(FRAMING_REASON)),
            ("Connection", Some(FRAMING_REASON)),
            ("Upgrade", Some(FRAMING_REASON)),
            ("TE", Some(FRAMING_REASON)),
            // Not reserved: look-alikes and ordinary headers.
            ("X-Portcullis", None),
            ("X-Portcullis-", None),
            ("X-Forwarded-For", None),
            ("X-Forwarded-Emails", None),
            ("X-Team", None),
            ("Authorization", None),
            ("Hostname", None),
            ("", None),
            ("Xé-Portcullis-Jwt", None),
        ];
        for (name, want) in cases {
            assert_eq!(reserved_request_header(name), *want, "{name}");
        }
    }

    #[test]
    fn configured_claim_headers_are_identity_headers() {
        let claims = ["X-Email", "x-user-groups"];
        assert_eq!(
            reserved_request_header_with("x_email", &claims),
            Some(IDENTITY_REASON)
        );
        assert_eq!(
            reserved_request_header_with("X-User-Groups", &claims),
            Some(IDENTITY_REASON)
        );
        assert_eq!(reserved_request_header_with("X-Team", &claims), None);
        assert_eq!(
            reserved_request_header_with("Host", &[] as &[&str]),
            Some(FRAMING_REASON)
        );
    }
}
