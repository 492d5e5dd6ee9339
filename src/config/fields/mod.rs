//! Reading typed values out of the YAML tree: mappings that refuse unknown keys, and
//! readers for the value formats Pomerium uses (Go durations, `:443` addresses, URLs).
//! Every reader reports its own problem, located, and returns `None` on failure.
//!
//! `headers` reads header names, values and maps; `url` takes URLs apart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::error::Problems;
use super::yaml::{Node, Origin, Value};

mod headers;
mod url;

pub(crate) use self::headers::{header_map, header_name, header_names};
pub(crate) use self::url::{origin_url, split_url};

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
    fn typo_suggestions() {
        assert!(unknown_key("polcy", &["from", "policy"]).contains("did you mean `policy`"));
        assert!(!unknown_key("zzzzzz", &["from", "policy"]).contains("did you mean"));
    }
}
