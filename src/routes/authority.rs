//! The one place a request's `host[:port]` is taken apart: lower-cased, one trailing dot
//! removed, the port split off (or the listener's default filled in). Routing, session
//! binding, sign-in URLs and logs all use the [`Canonical`] form this returns, so no two
//! phases can read the same authority differently.

use std::borrow::Cow;

/// Longest host name accepted (DNS caps names at 253).
pub const MAX_HOST_LEN: usize = 255;

/// A request's host and port in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical<'a> {
    /// Lower-case, without a trailing dot; IPv6 literals without brackets.
    pub host: Cow<'a, str>,
    pub port: u16,
}

impl Canonical<'_> {
    /// `host:port`, IPv6 literals bracketed: how a binding or a log names this origin.
    pub fn to_authority_string(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits `authority` (`host`, `host:port`, `[v6]`, `[v6]:port`) into its canonical
/// parts; `default_port` stands in for a missing port. `None` for anything that is not
/// a plain authority: userinfo, an empty or overlong host, a bad port, stray brackets.
pub fn canonical(authority: &str, default_port: u16) -> Option<Canonical<'_>> {
    let (host, port) = split(authority, default_port)?;
    Some(Canonical {
        host: canonical_host(host)?,
        port,
    })
}

/// Lower-cases `host` and drops one trailing dot; borrows when nothing changes. `None`
/// for an empty or overlong name, an empty label (`app..`, `.app`, `a..b`: no two
/// phases may disagree on how many dots to drop), or bytes no host name has.
pub fn canonical_host(host: &str) -> Option<Cow<'_, str>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty()
        || host.starts_with('.')
        || host.ends_with('.')
        || host.contains("..")
        || host.len() > MAX_HOST_LEN
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    {
        return None;
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

fn split(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host, port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (authority, default_port),
    };
    // A `:` left in the host is an unbracketed IPv6 literal or garbage.
    (!host.is_empty() && !host.contains(':')).then_some((host, port))
}

/// Digits only (no sign, no spaces), 1–65535.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            ("app.example.com", Some(("app.example.com", 443))),
            ("APP.Example.COM", Some(("app.example.com", 443))),
            ("app.example.com.", Some(("app.example.com", 443))),
            ("app.example.com.:8443", Some(("app.example.com", 8443))),
            ("app.example.com:8443", Some(("app.example.com", 8443))),
            ("[::1]:8443", Some(("::1", 8443))),
            ("[::1]", Some(("::1", 443))),
            ("[::1]x", None),
            ("[not-v6]:1", None),
            ("::1", None),
            ("app:notaport", None),
            ("app:+443", None),
            ("app:0", None),
            ("app:65536", None),
            ("app:", None),
            ("", None),
            (":443", None),
            (".", None),
            ("app..", None),
            ("app...:443", None),
            (".app", None),
            ("a..b", None),
            ("user@app.example.com", None),
            ("app example", None),
            ("app/x", None),
        ];
        for (input, want) in cases {
            let got = canonical(input, 443);
            let got = got.as_ref().map(|c| (&*c.host, c.port));
            assert_eq!(got, *want, "{input}");
        }
        let long = "a".repeat(MAX_HOST_LEN + 1);
        assert_eq!(canonical(&long, 443), None);
    }

    #[test]
    fn borrows_when_already_canonical() {
        assert!(matches!(
            canonical("app.example.com:1", 443).unwrap().host,
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            canonical("App.example.com", 443).unwrap().host,
            Cow::Owned(_)
        ));
    }

    #[test]
    fn authority_strings() {
        let c = canonical("[::1]:8443", 443).unwrap();
        assert_eq!(c.to_authority_string(), "[::1]:8443");
        let c = canonical("App:80", 443).unwrap();
        assert_eq!(c.to_authority_string(), "app:80");
    }
}
