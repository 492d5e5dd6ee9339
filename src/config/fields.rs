//! Reading typed values out of the YAML tree: mappings that refuse unknown keys, and
//! readers for the value formats Pomerium uses (Go durations, `:443` addresses, URLs).
//! Every reader reports its own problem, located, and returns `None` on failure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::error::Problems;
use super::yaml::{Node, Origin, Value};

/// A mapping being read. Unknown keys are reported when it is opened: a typo must not
/// quietly drop a setting (or open a route).
pub(crate) struct Fields<'a> {
    pub path: String,
    pub origin: Origin,
    entries: Vec<(&'a str, Node)>,
}

impl<'a> Fields<'a> {
    /// Opens `node` as a mapping whose keys must be among `known`.
    pub fn open(node: &'a Node, path: &str, known: &[&str], p: &mut Problems) -> Option<Self> {
        let Value::Map(map) = &node.value else {
            p.push(
                &node.origin,
                path,
                format!("expected a mapping, found {}", node.kind()),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Value::Str(name) = &key.value else {
                p.push(
                    &key.origin,
                    path,
                    format!("keys must be strings, found {}", key.kind()),
                );
                continue;
            };
            if known.contains(&name.as_str()) {
                entries.push((name.as_str(), value.clone()));
            } else {
                p.push(&key.origin, path, unknown_key(name, known));
            }
        }
        Some(Fields {
            path: path.to_string(),
            origin: node.origin.clone(),
            entries,
        })
    }

    /// An empty mapping (for a section that only the environment fills in).
    pub fn empty(path: &str) -> Self {
        Fields {
            path: path.to_string(),
            origin: Origin::Unknown,
            entries: Vec::new(),
        }
    }

    /// Replaces (or adds) `key` with a value from the environment.
    pub fn override_with(&mut self, key: &'a str, var: &str, value: String) {
        let node = Node {
            value: Value::Str(value),
            origin: Origin::Env(var.to_string()),
        };
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = node,
            None => self.entries.push((key, node)),
        }
    }

    /// The value of `key`; an explicit `null` (`key:` with nothing after it) counts as absent.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, v)| *k == key && v.value != Value::Null)
            .map(|(_, v)| v)
    }

    /// The key path of `key` inside this mapping.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reads `key` with `read` when present.
    pub fn read<T>(
        &self,
        key: &str,
        p: &mut Problems,
        read: impl FnOnce(&Node, &str, &mut Problems) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(key)?;
        read(node, &self.key_path(key), p)
    }
}

fn unknown_key(name: &str, known: &[&str]) -> String {
    let mut message = format!("unknown key `{name}`");
    if let Some(close) = known.iter().find(|k| similar(name, k)) {
        message.push_str(&format!(" (did you mean `{close}`?)"));
    }
    message.push_str("; expected one of ");
    message.push_str(&known.join(", "));
    message
}

/// Close enough to be a typo: edit distance at most 2 (or 1 for short names).
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= if b.len() <= 4 { 1 } else { 2 }
}

// === scalar readers ===

/// Any scalar, as text (`idp_client_id: 12345` is a string to us).
pub(crate) fn string(node: &Node, path: &str, p: &mut Problems) -> Option<String> {
    match node.scalar_text() {
        Some(s) => Some(s),
        None => {
            p.push(
                &node.origin,
                path,
                format!("expected a string, found {}", node.kind()),
            );
            None
        }
    }
}

/// A non-empty string.
pub(crate) fn nonempty(node: &Node, path: &str, p: &mut Problems) -> Option<String> {
    let s = string(node, path, p)?;
    if s.trim().is_empty() {
        p.push(&node.origin, path, "must not be empty");
        return None;
    }
    Some(s.trim().to_string())
}

/// A secret string: errors never quote it.
pub(crate) fn secret_string(node: &Node, path: &str, p: &mut Problems) -> Option<String> {
    match &node.value {
        Value::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Str(_) => {
            p.push(&node.origin, path, "must not be empty");
            None
        }
        _ => {
            p.push(
                &node.origin,
                path,
                format!("expected a string, found {}", node.kind()),
            );
            None
        }
    }
}

/// `true`/`false`; as text (environment, quoted YAML) Go's `strconv.ParseBool` forms.
pub(crate) fn boolean(node: &Node, path: &str, p: &mut Problems) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) => crate::routes::options::boolean(s)
            .map_err(|e| p.push(&node.origin, path, e.to_string()))
            .ok(),
        _ => {
            p.push(
                &node.origin,
                path,
                format!("expected true or false, found {}", node.kind()),
            );
            None
        }
    }
}

/// A list of strings, or one string of comma- or space-separated items (the form
/// environment variables use).
pub(crate) fn string_list(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<String>> {
    match &node.value {
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(nonempty(item, &format!("{path}[{i}]"), p)?);
            }
            Some(out)
        }
        Value::Str(s) => Some(split_list(s)),
        _ => {
            p.push(
                &node.origin,
                path,
                format!("expected a list of strings, found {}", node.kind()),
            );
            None
        }
    }
}

/// One string or a list of strings; a scalar is one item, spaces and all (group names).
pub(crate) fn one_or_list(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<String>> {
    match &node.value {
        Value::Seq(_) => string_list(node, path, p),
        _ => nonempty(node, path, p).map(|s| vec![s]),
    }
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// A Go duration (`30s`, `1m30s`, `1.5h`, `300ms`, `0`), as Pomerium writes them.
/// `bearer_token_format`: `default`, `idp_access_token` or `idp_identity_token`.
pub(crate) fn bearer_format(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<crate::routes::BearerFormat> {
    let s = string(node, path, p)?;
    crate::routes::BearerFormat::parse(&s)
        .map_err(|e| p.push(&node.origin, path, e))
        .ok()
}

/// `path_normalization`: `strict` (default) or `lenient`; `true` when lenient.
pub(crate) fn path_normalization(node: &Node, path: &str, p: &mut Problems) -> Option<bool> {
    let s = string(node, path, p)?;
    crate::routes::parse_path_normalization(&s)
        .map_err(|e| p.push(&node.origin, path, e))
        .ok()
}

pub(crate) fn duration(node: &Node, path: &str, p: &mut Problems) -> Option<Duration> {
    let text = match &node.value {
        Value::Int(0) => return Some(Duration::ZERO),
        Value::Int(_) | Value::Float(_) => {
            p.push(
                &node.origin,
                path,
                "a duration needs a unit, such as `30s`, `5m` or `1h30m`",
            );
            return None;
        }
        Value::Str(s) => s.trim(),
        _ => {
            p.push(
                &node.origin,
                path,
                format!("expected a duration, found {}", node.kind()),
            );
            return None;
        }
    };
    match parse_go_duration(text) {
        Ok(d) => Some(d),
        Err(why) => {
            p.push(
                &node.origin,
                path,
                format!("invalid duration `{text}`: {why}"),
            );
            None
        }
    }
}

/// A whole number in `min..=max` (written as a number, or as text from the
/// environment).
pub(crate) fn count(node: &Node, path: &str, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
    let n = match &node.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    let Some(n) = n else {
        p.push(
            &node.origin,
            path,
            format!("expected a whole number, found {}", node.kind()),
        );
        return None;
    };
    match u64::try_from(n) {
        Ok(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            p.push(
                &node.origin,
                path,
                format!("must be between {min} and {max}, found {n}"),
            );
            None
        }
    }
}

pub(crate) use crate::routes::options::parse_go_duration;

/// A listen address: `:443` (all interfaces), `127.0.0.1:8443`, `[::1]:443`, `localhost:8080`.
pub(crate) fn socket_addr(node: &Node, path: &str, p: &mut Problems) -> Option<SocketAddr> {
    let text = string(node, path, p)?;
    match parse_socket_addr(text.trim()) {
        Ok(a) => Some(a),
        Err(why) => {
            p.push(
                &node.origin,
                path,
                format!("invalid address `{text}`: {why}"),
            );
            None
        }
    }
}

pub(crate) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    const FORM: &str = "expected `:PORT`, `IP:PORT` or `[IPv6]:PORT`";
    let (host, port) = text.rsplit_once(':').ok_or(FORM)?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number; {FORM}"))?;
    let ip: IpAddr = match host {
        "" => Ipv4Addr::UNSPECIFIED.into(),
        "localhost" => Ipv4Addr::LOCALHOST.into(),
        h => {
            let h = h
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h);
            h.parse()
                .map_err(|_| format!("`{host}` is not an IP address; {FORM}"))?
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// A header name, lower-cased as `http` keeps it.
pub(crate) fn header_name(node: &Node, path: &str, p: &mut Problems) -> Option<HeaderName> {
    let text = string(node, path, p)?;
    crate::routes::options::header_name(&text)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}

pub(crate) fn header_value(node: &Node, path: &str, p: &mut Problems) -> Option<HeaderValue> {
    let text = string(node, path, p)?;
    crate::routes::options::header_value(&text)
        .map_err(|e| p.push(&node.origin, path, e.to_string()))
        .ok()
}

/// A mapping of header names to values, in file order.
pub(crate) fn header_map(
    node: &Node,
    path: &str,
    p: &mut Problems,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let Value::Map(entries) = &node.value else {
        p.push(
            &node.origin,
            path,
            format!(
                "expected a mapping of header names to values, found {}",
                node.kind()
            ),
        );
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut ok = true;
    for (k, v) in entries {
        let name = header_name(k, path, p);
        let label = format!("{path}.{}", k.scalar_text().unwrap_or_default());
        let value = header_value(v, &label, p);
        match (name, value) {
            (Some(n), Some(v)) => out.push((n, v)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A header name list (`remove_request_headers`).
pub(crate) fn header_names(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<HeaderName>> {
    let names = match &node.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| header_name(item, &format!("{path}[{i}]"), p))
            .collect::<Vec<_>>(),
        Value::Str(s) => split_list(s)
            .into_iter()
            .map(|s| {
                let n = Node {
                    value: Value::Str(s),
                    origin: node.origin.clone(),
                };
                header_name(&n, path, p)
            })
            .collect(),
        _ => {
            p.push(
                &node.origin,
                path,
                format!("expected a list of header names, found {}", node.kind()),
            );
            return None;
        }
    };
    names.into_iter().collect()
}

// === URLs ===

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
    fn go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("0", Some(Duration::ZERO)),
            ("0s", Some(Duration::ZERO)),
            ("30s", Some(ms(30_000))),
            ("1m30s", Some(ms(90_000))),
            ("1.5h", Some(ms(5_400_000))),
            ("300ms", Some(ms(300))),
            ("2h45m", Some(ms(9_900_000))),
            ("10us", Some(Duration::from_micros(10))),
            ("1µs", Some(Duration::from_micros(1))),
            ("+5s", Some(ms(5_000))),
            (".5s", Some(ms(500))),
            ("14h", Some(ms(14 * 3_600_000))),
            ("30", None),
            ("-1s", None),
            ("1d", None),
            ("s", None),
            ("", None),
            ("1.2.3s", None),
            ("5 s", None),
        ] {
            assert_eq!(parse_go_duration(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn listen_addresses() {
        for (text, want) in [
            (":443", Some("0.0.0.0:443")),
            ("127.0.0.1:8443", Some("127.0.0.1:8443")),
            ("[::1]:443", Some("[::1]:443")),
            ("[::]:80", Some("[::]:80")),
            ("localhost:8080", Some("127.0.0.1:8080")),
            ("443", None),
            (":https", None),
            ("example.com:443", None),
            (":70000", None),
        ] {
            assert_eq!(
                parse_socket_addr(text)
                    .ok()
                    .map(|a| a.to_string())
                    .as_deref(),
                want,
                "{text}"
            );
        }
    }

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

    #[test]
    fn typo_suggestions() {
        assert!(unknown_key("polcy", &["from", "policy"]).contains("did you mean `policy`"));
        assert!(!unknown_key("zzzzzz", &["from", "policy"]).contains("did you mean"));
    }
}
