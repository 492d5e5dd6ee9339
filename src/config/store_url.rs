//! `session_store` URLs: one Redis, Sentinel or Cluster, with or without TLS.
//!
//! - `redis://[user:pass@]host[:6379][/db]`, `rediss://…` (TLS);
//! - `redis+sentinel://[user:pass@]host1[:26379],host2…/master[/db]`, `rediss+sentinel://…`
//!   (TLS to the sentinels and the Redis nodes); the credentials are the nodes'. Sentinels
//!   that want a password of their own get `?sentinel_password=…`;
//! - `redis+cluster://[user:pass@]host1[:6379],host2…`, `rediss+cluster://…` (database 0
//!   only, as Redis Cluster has no other).
//!
//! Parsing is pure and its errors never quote the URL (it may hold a password).

use std::fmt;

use super::Secret;

/// How the Redis behind a URL is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a managed endpoint that fails over behind one name).
    Single,
    /// Sentinels that name the current primary of `master`.
    Sentinel { master: String },
    /// A Redis Cluster reached through any of its nodes.
    Cluster,
}

/// A parsed `session_store` URL. `Debug` leaves the passwords out.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub topology: Topology,
    pub tls: bool,
    /// The server, the sentinels, or the cluster's seed nodes.
    pub hosts: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    pub db: i64,
    /// Sentinel only: the sentinels' own password, if they have one.
    pub sentinel_password: Option<Secret<String>>,
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreUrl")
            .field("topology", &self.topology)
            .field("tls", &self.tls)
            .field("hosts", &self.hosts)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl StoreUrl {
    /// Where it points, without credentials: for log lines.
    pub fn describe(&self) -> String {
        let scheme = match (&self.topology, self.tls) {
            (Topology::Single, false) => "redis",
            (Topology::Single, true) => "rediss",
            (Topology::Sentinel { .. }, false) => "redis+sentinel",
            (Topology::Sentinel { .. }, true) => "rediss+sentinel",
            (Topology::Cluster, false) => "redis+cluster",
            (Topology::Cluster, true) => "rediss+cluster",
        };
        let hosts: Vec<String> = self.hosts.iter().map(|(h, p)| host_port(h, *p)).collect();
        let path = match &self.topology {
            Topology::Sentinel { master } => format!("/{master}/{}", self.db),
            Topology::Single => format!("/{}", self.db),
            Topology::Cluster => String::new(),
        };
        format!("{scheme}://{}{path}", hosts.join(","))
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses a `session_store` URL. The error says what is wrong, never what was written.
pub fn parse(text: &str) -> Result<StoreUrl, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| "is not a URL".to_string())?;
    let (topology_kind, tls) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => ("single", false),
        "rediss" => ("single", true),
        "redis+sentinel" => ("sentinel", false),
        "rediss+sentinel" => ("sentinel", true),
        "redis+cluster" => ("cluster", false),
        "rediss+cluster" => ("cluster", true),
        _ => {
            return Err(
                "has an unknown scheme; use redis://, rediss://, redis+sentinel://, \
                 rediss+sentinel://, redis+cluster:// or rediss+cluster://"
                    .into(),
            );
        }
    };
    if rest.contains('#') {
        return Err("must not have a #fragment (certificates are always verified)".into());
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = match u.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (u, None),
            };
            let user = decode(user).ok_or("has a badly escaped user name")?;
            let pass = pass
                .map(decode)
                .map(|p| p.ok_or("has a badly escaped password"))
                .transpose()?;
            (
                Some(user).filter(|u| !u.is_empty()),
                pass.filter(|p| !p.is_empty()).map(Secret::new),
            )
        }
    };
    let default_port = if topology_kind == "sentinel" {
        26379
    } else {
        6379
    };
    let hosts = hosts
        .split(',')
        .map(|h| parse_host(h, default_port))
        .collect::<Result<Vec<_>, _>>()?;
    if topology_kind == "single" && hosts.len() > 1 {
        return Err(
            "names several hosts; for Sentinel or Cluster use redis+sentinel:// or \
                    redis+cluster://"
                .into(),
        );
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let db_of = |s: Option<&&str>| -> Result<i64, String> {
        match s {
            None => Ok(0),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| "has a database that is not a number".to_string()),
        }
    };
    let (topology, db) = match topology_kind {
        "single" if segments.len() <= 1 => (Topology::Single, db_of(segments.first())?),
        "sentinel" if !segments.is_empty() && segments.len() <= 2 => (
            Topology::Sentinel {
                master: segments[0].to_string(),
            },
            db_of(segments.get(1))?,
        ),
        "sentinel" => {
            return Err(
                "needs the master's name as its path: redis+sentinel://host:26379/mymaster[/db]"
                    .into(),
            );
        }
        "cluster" if segments.is_empty() => (Topology::Cluster, 0),
        "cluster" => return Err("takes no path: Redis Cluster has only database 0".into()),
        _ => return Err("has a path that is not a database number".into()),
    };
    let mut sentinel_password = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sentinel_password" if matches!(topology, Topology::Sentinel { .. }) => {
                let v = decode(v).ok_or("has a badly escaped sentinel_password")?;
                sentinel_password = Some(v).filter(|v| !v.is_empty()).map(Secret::new);
            }
            _ => {
                return Err(
                    "has a query parameter Portcullis does not know (only sentinel_password, \
                     for Sentinel)"
                        .into(),
                );
            }
        }
    }
    Ok(StoreUrl {
        topology,
        tls,
        hosts,
        username,
        password,
        db,
        sentinel_password,
    })
}

fn parse_host(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || "has a host that is not `host`, `host:port` or `[v6]:port`".to_string();
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// Percent-decoding of a URL's user name or password.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let u = parse("redis://:p%40ss@Redis.example:6380/2").unwrap();
        assert_eq!(u.topology, Topology::Single);
        assert!(!u.tls);
        assert_eq!(u.hosts, [("redis.example".to_string(), 6380)]);
        assert_eq!(u.username, None);
        assert_eq!(u.password.as_ref().unwrap().expose(), "p@ss");
        assert_eq!(u.db, 2);
        assert_eq!(u.describe(), "redis://redis.example:6380/2");

        let u = parse("rediss://default:pw@cache.example").unwrap();
        assert!(u.tls);
        assert_eq!(u.hosts, [("cache.example".to_string(), 6379)]);
        assert_eq!(u.username.as_deref(), Some("default"));

        let u = parse(
            "rediss+sentinel://app:pw@s1:26379,[::1]:26380,s3/mymaster/1?sentinel_password=sp",
        )
        .unwrap();
        assert_eq!(
            u.topology,
            Topology::Sentinel {
                master: "mymaster".into()
            }
        );
        assert!(u.tls);
        assert_eq!(
            u.hosts,
            [
                ("s1".to_string(), 26379),
                ("::1".to_string(), 26380),
                ("s3".to_string(), 26379)
            ]
        );
        assert_eq!((u.db, u.username.as_deref()), (1, Some("app")));
        assert_eq!(u.sentinel_password.as_ref().unwrap().expose(), "sp");
        assert_eq!(
            u.describe(),
            "rediss+sentinel://s1:26379,[::1]:26380,s3:26379/mymaster/1"
        );

        let u = parse("redis+cluster://n1:7000,n2:7001,n3").unwrap();
        assert_eq!((u.topology.clone(), u.db), (Topology::Cluster, 0));
        assert_eq!(u.hosts.len(), 3);
        assert_eq!(u.hosts[2], ("n3".to_string(), 6379));
    }

    #[test]
    fn mistakes_are_named_and_secrets_never_quoted() {
        for (text, want) in [
            ("memcached://x", "unknown scheme"),
            ("redis://:hunter2@a,b", "several hosts"),
            ("redis+sentinel://:hunter2@a,b", "master's name"),
            ("redis+cluster://:hunter2@a/1", "only database 0"),
            ("redis://:hunter2@a/x", "not a number"),
            ("rediss://:hunter2@a#insecure", "fragment"),
            ("redis://:hunter2@a?protocol=resp3", "query parameter"),
            ("redis://:hunter2@a:99999", "host"),
            ("redis://:hunter2@", "host"),
            ("redis://:hunter2%zz@a", "escaped password"),
            ("hunter2", "not a URL"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{text}: {err}");
        }
        let u = parse("redis://:hunter2@a").unwrap();
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(!u.describe().contains("hunter2"));
    }
}
