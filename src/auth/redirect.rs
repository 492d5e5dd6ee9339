//! Return-URL validation: where a user may be sent after signing in or out. Only our
//! own route hosts (over HTTPS) and paths on the current host pass; everything else
//! is an open redirect waiting to happen.
//!
//! The rules are deliberately stricter than URL parsing: browsers repair many broken
//! forms (`/\evil`, `https:evil`, a tab inside `//`), so anything a browser might read
//! differently from us is refused rather than interpreted.

use http::Uri;
use http::uri::Scheme;

/// Longer return URLs are refused (they only ever come from our own redirects).
pub const MAX_RETURN_URL_LEN: usize = 4096;
/// Rounds of percent-decoding inspected for hidden `//` or `/\`.
const DECODE_ROUNDS: usize = 3;

/// Accepts `raw` (already taken out of its query parameter) when it is:
/// - a path on the current host: starts with exactly one `/`, and no percent-decoding
///   of it starts with `//` or `/\` or holds a control character; or
/// - an absolute `https://` URL without userinfo whose host (lowercased; IPv6 in
///   brackets) `is_known_host` accepts; any port.
///
/// Refused anywhere in `raw`: control characters, spaces, non-ASCII and `\`. A
/// `#fragment` is dropped (`http::Uri` keeps none).
pub fn validate_return_url(raw: &str, is_known_host: impl Fn(&str) -> bool) -> Option<Uri> {
    if raw.is_empty()
        || raw.len() > MAX_RETURN_URL_LEN
        || !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
    {
        return None;
    }
    if raw.starts_with('/') {
        if !is_safe_path(raw) {
            return None;
        }
        let uri: Uri = raw.parse().ok()?;
        return (uri.scheme().is_none() && uri.authority().is_none()).then_some(uri);
    }
    // Exactly `https://`: browsers read `https:evil`, `https:/evil` and `https:///evil`
    // as `https://evil`; we don't guess.
    if !raw.get(..8)?.eq_ignore_ascii_case("https://") || raw[8..].starts_with('/') {
        return None;
    }
    let uri: Uri = raw.parse().ok()?;
    if uri.scheme() != Some(&Scheme::HTTPS) {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if !is_host_name(&host) {
        return None;
    }
    // A `:` after the host must hold a valid port.
    if authority.as_str().len() != authority.host().len() && authority.port_u16().is_none() {
        return None;
    }
    is_known_host(&host).then_some(uri)
}

/// A path on the current host that stays there: visible ASCII without `\`, a single
/// leading `/`, and no round of percent-decoding turns it into `//host` or `/\host` or
/// reveals a control character.
pub fn is_safe_path(raw: &str) -> bool {
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return false;
    }
    let mut current = raw.as_bytes().to_vec();
    for _ in 0..=DECODE_ROUNDS {
        if !current.starts_with(b"/")
            || current.starts_with(b"//")
            || current.starts_with(b"/\\")
            || current.iter().any(|b| b.is_ascii_control())
        {
            return false;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    // Still changing after several rounds: nobody encodes a return path like that.
    false
}

/// A DNS name (letters, digits, `-`, `.`) or a bracketed IPv6 literal.
fn is_host_name(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(host: &str) -> bool {
        matches!(host, "good.com" | "app.good.com" | "[::1]" | "127.0.0.1")
    }

    #[test]
    fn accepts_own_paths_and_known_https_hosts() {
        for (raw, want) in [
            ("/", "/"),
            ("/app", "/app"),
            ("/app?x=1&y=2", "/app?x=1&y=2"),
            ("/a//b", "/a//b"),
            ("/app/../x", "/app/../x"),
            ("/..//evil.com", "/..//evil.com"), // stays on this host: the path is `//evil.com`
            ("/?next=//evil.com", "/?next=//evil.com"),
            ("/%7Euser", "/%7Euser"),
            ("/search?q=a%20b", "/search?q=a%20b"),
            ("https://good.com", "https://good.com/"),
            ("https://good.com/", "https://good.com/"),
            ("https://good.com/x?y=1", "https://good.com/x?y=1"),
            ("https://GOOD.com/x", "https://GOOD.com/x"),
            ("HTTPS://good.com/x", "https://good.com/x"),
            ("https://good.com:8443/x", "https://good.com:8443/x"),
            ("https://app.good.com/", "https://app.good.com/"),
            ("https://[::1]:8443/", "https://[::1]:8443/"),
            ("https://127.0.0.1/", "https://127.0.0.1/"),
            ("https://good.com//evil.com", "https://good.com//evil.com"),
            // `http::Uri` drops fragments; browsers never send them anyway.
            ("/app#frag", "/app"),
            ("/a#//evil.com", "/a"),
            ("https://good.com/a#b", "https://good.com/a"),
        ] {
            let got = validate_return_url(raw, known);
            assert_eq!(got.map(|u| u.to_string()).as_deref(), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn refuses_every_known_bypass() {
        let long = format!("/{}", "a".repeat(MAX_RETURN_URL_LEN));
        let cases: &[&str] = &[
            // Nothing, or not a URL we produce.
            "",
            &long,
            "evil.com",
            "good.com",
            "good.com/x",
            ".",
            "?x=1",
            "#frag",
            // Protocol-relative and slash/backslash confusion.
            "//evil.com",
            "//good.com",
            "///evil.com",
            "////evil.com",
            "/\\evil.com",
            "/\\/evil.com",
            "\\\\evil.com",
            "\\/evil.com",
            "\\evil.com",
            "/\\\\evil.com",
            // Other schemes, any case.
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "javascript://good.com/%0aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "http://good.com/",
            "ftp://good.com/",
            "HTTP://good.com/",
            "https",
            "https:",
            "https://",
            // Browsers repair these into https://evil.com.
            "https:evil.com",
            "https:/evil.com",
            "https:///evil.com",
            "https:\\\\evil.com",
            "https:/\\evil.com",
            // Unknown hosts, lookalikes.
            "https://evil.com",
            "HTTPS://EVIL.COM/",
            "https://good.com.evil.com/",
            "https://evilgood.com/",
            "https://good.com./",
            "https://evil.com/good.com",
            "https://evil.com?good.com",
            "https://evil.com#good.com",
            "https://evil.com#@good.com",
            "https://[::2]/",
            "https://2130706433/",
            // Userinfo.
            "https://good.com@evil.com",
            "https://good.com:443@evil.com/",
            "https://user:pw@good.com/",
            "https://@good.com/",
            "https://good.com%2f@evil.com",
            "https://good.com%40evil.com",
            "https://evil.com\\@good.com",
            "https://good.com\\.evil.com",
            "https://good.com%2eevil.com",
            "https://good_com/",
            // Ports.
            "https://good.com:notaport/",
            "https://good.com:99999/",
            "https://good.com:/",
            // Percent-encoded tricks.
            "%2F%2Fevil.com",
            "%2f%2fevil.com",
            "/%2F%2Fevil.com",
            "/%2f%2fevil.com",
            "/%2F/evil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/%252F%252Fevil.com",
            "/%25252F%25252Fevil.com",
            "/%2525252F%2525252Fevil.com",
            "/%09/evil.com",
            "/%0a/evil.com",
            "/%0d%0aSet-Cookie:%20x=1",
            "/%00",
            "/%7f",
            "%68ttps://evil.com",
            // Whitespace and control characters, anywhere.
            " /app",
            "/app ",
            "/ /evil.com",
            "\t//evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\nSet-Cookie: x=1",
            "https://good.com/\r\n",
            "https://good.com\0.evil.com/",
            "/\u{7f}",
            // Non-ASCII (IDN lookalikes, fullwidth solidus, and the like).
            "/\u{ff0f}evil.com",
            "https://ｇood.com/",
            "https://good.com/é",
            "/\u{3002}evil.com",
        ];
        for raw in cases {
            assert_eq!(validate_return_url(raw, known), None, "{raw:?}");
        }
    }

    #[test]
    fn the_host_is_asked_lowercased() {
        let asked = std::cell::RefCell::new(Vec::new());
        let ask = |h: &str| {
            asked.borrow_mut().push(h.to_string());
            true
        };
        validate_return_url("https://App.Good.COM:8443/x", ask);
        validate_return_url("/local", ask);
        assert_eq!(*asked.borrow(), ["app.good.com"]);
    }

    #[test]
    fn safe_paths() {
        for (raw, want) in [
            ("/", true),
            ("/a%2Fb", true),
            ("/a%252F%252Fb", true),
            ("/%", true),
            ("/%zz", true),
            ("/%2", true),
            ("", false),
            ("a", false),
            ("//a", false),
            ("/%2F%2Fa", false),
            ("/%25%32%46%25%32%46a", false),
            ("/a b", false),
            ("/a\\b", false),
            ("/é", false),
            ("/a\tb", false),
        ] {
            assert_eq!(is_safe_path(raw), want, "{raw:?}");
        }
    }
}
