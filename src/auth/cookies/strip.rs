//! Removing our cookies from a request before it goes upstream, and the family of
//! cookie names that are ours.

use http::header::{COOKIE, HeaderMap, HeaderValue};

use super::read::{pair_name, pairs, trim};

/// Removes the cookie `name` and its chunks (`name_` followed by digits only) from the
/// request before it goes upstream, keeping every other cookie byte for byte and in
/// order. Several `Cookie` headers are joined into one with `"; "` (RFC 9113 §8.2.3),
/// as an HTTP/1.1 upstream needs; with none left, the header is removed.
pub fn strip_cookies(headers: &mut HeaderMap, name: &str) {
    strip_where(headers, |n| is_ours(n, name.as_bytes()));
}

/// Removes every cookie of the family `base` ([`in_family`]): the session cookies of
/// every host and port, their chunks, and the sign-in flow and nonce cookies.
pub fn strip_family(headers: &mut HeaderMap, base: &str) {
    strip_where(headers, |n| in_family(n, base.as_bytes()));
}

/// Whether a cookie named `candidate` is one of Portcullis's: optionally prefixed with
/// `__Host-` or `__Secure-`, then `base`, then nothing or `_` and anything. Upstreams
/// never see these, and may not set them.
pub fn in_family(candidate: &[u8], base: &[u8]) -> bool {
    let unprefixed = strip_ci_prefix(candidate, b"__Host-")
        .or_else(|| strip_ci_prefix(candidate, b"__Secure-"))
        .unwrap_or(candidate);
    matches!(unprefixed.strip_prefix(base), Some([] | [b'_', ..]))
}

fn strip_ci_prefix<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn strip_where(headers: &mut HeaderMap, ours: impl Fn(&[u8]) -> bool) {
    let mut found = false;
    let mut others = false;
    let mut count = 0;
    for header in headers.get_all(COOKIE) {
        count += 1;
        for pair in pairs(header.as_bytes()).filter(|p| !p.is_empty()) {
            if ours(pair_name(pair)) {
                found = true;
            } else {
                others = true;
            }
        }
    }
    if !found && count <= 1 {
        return;
    }
    if !others {
        headers.remove(COOKIE);
        return;
    }
    let kept: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .filter(|p| !p.is_empty() && !ours(pair_name(p)))
        .collect();
    let joined = kept.join(&b"; "[..]);
    headers.remove(COOKIE);
    let value = HeaderValue::from_bytes(&joined)
        .expect("pieces of valid header values joined by \"; \" are valid");
    headers.insert(COOKIE, value);
}

/// The cookie name a `Set-Cookie` value sets (before its first `=`, trimmed).
pub fn set_cookie_name(value: &[u8]) -> &[u8] {
    let pair = value.split(|b| *b == b';').next().unwrap_or(value);
    pair_name(trim(pair))
}

fn is_ours(candidate: &[u8], name: &[u8]) -> bool {
    match candidate.strip_prefix(name) {
        Some([]) => true,
        Some([b'_', digits @ ..]) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}
