//! URLs taken apart as written, and origins (`scheme://host[:port]`) as `http::Uri`.

use super::super::error::Problems;
use super::super::yaml::Node;
use super::string;

/// A URL taken apart without normalising anything away, so we can refuse what we don't
/// serve (a path in `from`, user info, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub scheme: String,
    /// Lower-case; IPv6 literals without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Path, query and fragment as written (`""` when none).
    pub rest: String,
}

impl Url {
    /// True when nothing follows the authority but an optional `/`.
    pub fn has_no_path(&self) -> bool {
        self.rest.is_empty() || self.rest == "/"
    }
}

pub(crate) fn split_url(text: &str) -> Result<Url, String> {
    let text = text.trim();
    let (scheme, after) = text
        .split_once("://")
        .ok_or_else(|| format!("`{text}` is not a URL (expected `scheme://host`)"))?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(format!("`{text}` has an invalid scheme"));
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return Err(format!("`{text}`: user info in URLs is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: unclosed `[` in host"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{text}`: `{h}` is not an IPv6 address"));
        }
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| format!("`{text}`: junk after `]`"))?,
            ),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) => (h.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{text}`: `{p}` is not a port number"))?,
        ),
    };
    Ok(Url {
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_ascii_lowercase(),
        port,
        rest: rest.to_string(),
    })
}

/// A URL with one of `schemes` and nothing after the host, as an `http::Uri`.
pub(crate) fn origin_url(
    node: &Node,
    path: &str,
    schemes: &[&str],
    allow_path: bool,
    p: &mut Problems,
) -> Option<http::Uri> {
    let text = string(node, path, p)?;
    let url = match split_url(&text) {
        Ok(u) => u,
        Err(why) => {
            p.push(&node.origin, path, why);
            return None;
        }
    };
    if !schemes.contains(&url.scheme.as_str()) {
        p.push(
            &node.origin,
            path,
            format!("`{text}`: scheme must be {}", schemes.join(" or ")),
        );
        return None;
    }
    if !allow_path && !url.has_no_path() {
        p.push(
            &node.origin,
            path,
            format!("`{text}`: must not have a path, query or fragment"),
        );
        return None;
    }
    match text.trim().parse::<http::Uri>() {
        Ok(u) => Some(u),
        Err(e) => {
            p.push(
                &node.origin,
                path,
                format!("`{text}` is not a valid URL: {e}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = split_url("https://*.Example.com:8443/x?y").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("https", "*.example.com", Some(8443))
        );
        assert_eq!(u.rest, "/x?y");
        let u = split_url("h2c://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", None));
        assert!(u.has_no_path());
        for bad in [
            "example.com",
            "https://",
            "https://a:0",
            "https://a:x",
            "https://u:p@a",
            "https://[zz]",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
