//! `application/x-www-form-urlencoded`, read and written by hand: query strings and form
//! bodies of OAuth requests are few, flat name/value pairs.

use std::collections::HashMap;

/// The parameters of one request. Empty values count as absent (RFC 6749 section 3.1).
#[derive(Debug, Default)]
pub(super) struct Params {
    values: HashMap<String, String>,
}

/// A parameter that appeared more than once (RFC 6749 section 3.1 forbids it).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Repeated(pub String);

impl Params {
    pub(super) fn parse(input: &str) -> Result<Params, Repeated> {
        let mut values = HashMap::new();
        for pair in input.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (decode(name), decode(value));
            if value.is_empty() {
                continue;
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(Repeated(name));
            }
        }
        Ok(Params { values })
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Percent-decodes one name or value; `+` is a space. A `%` not followed by two hex
/// digits stays as it is; invalid UTF-8 becomes U+FFFD.
pub(super) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|&b| hex(b));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `uri` with `pairs` added to its query (registered redirect URIs carry no fragment).
pub(super) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in pairs {
        out.push(sep);
        out.push_str(&encode(name));
        out.push('=');
        out.push_str(&encode(value));
        sep = '&';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        for (input, want) in [
            ("a+b", "a b"),
            ("a%20b", "a b"),
            ("%2Fx%2f", "/x/"),
            ("100%", "100%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%e2%9c%93", "\u{2713}"),
            ("%ff", "\u{fffd}"),
            ("", ""),
        ] {
            assert_eq!(decode(input), want, "{input}");
        }
    }

    #[test]
    fn encodes_and_round_trips() {
        let s = "http://a.localhost:8443/oauth2/callback?x=1&y=a b~ü";
        assert_eq!(
            encode(s),
            "http%3A%2F%2Fa.localhost%3A8443%2Foauth2%2Fcallback%3Fx%3D1%26y%3Da%20b~%C3%BC"
        );
        assert_eq!(decode(&encode(s)), s);
    }

    #[test]
    fn parses_params() {
        let p = Params::parse("a=1&b=&&c&d=x%3Dy+z&e=%26").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), None);
        assert_eq!(p.get("d"), Some("x=y z"));
        assert_eq!(p.get("e"), Some("&"));
        assert_eq!(Params::parse("a=1&a=2").unwrap_err(), Repeated("a".into()));
        // An empty repeat is an omitted parameter.
        assert_eq!(Params::parse("a=1&a=").unwrap().get("a"), Some("1"));
    }

    #[test]
    fn adds_query() {
        assert_eq!(
            with_query("http://h/cb", &[("code", "a/b"), ("state", "s")]),
            "http://h/cb?code=a%2Fb&state=s"
        );
        assert_eq!(
            with_query("http://h/cb?x=1", &[("state", "s")]),
            "http://h/cb?x=1&state=s"
        );
    }
}
