//! Whom a credential belongs to, and what its cookies are called.
//!
//! A route host's session credential is sealed with its [`Binding`] in the AEAD's
//! associated data: `host:<host>:<port>` for one origin, or `domain:<cookie_domain>`
//! when the operator shares one cookie across a domain's subdomains. A credential
//! carried to another host (or port) does not open there.
//!
//! Browsers send a host's cookies to every port of it (RFC 6265 §8.5), so cookies of an
//! origin on a port other than 443 carry the port in their name (`_portcullis_p8443`);
//! otherwise two ports of one host would overwrite each other's cookie.
//!
//! The cookies, from the configured base name (`cookie_name`, default `_portcullis`):
//!
//! | cookie | where | holds |
//! |---|---|---|
//! | `__Host-<base>[_p<port>]` | each route host | that host's credential |
//! | `<base>` | with `cookie_domain`: `Domain=<cookie_domain>` | the domain's shared credential |
//! | `__Host-<base>_authenticate[_p<port>]` | the authenticate host only | the session (refresh token with the cookie store) |
//! | `__Host-<base>_flow[_p<port>]` | the authenticate host | PKCE verifier, OIDC state and nonce during sign-in |
//! | `__Host-<base>_nonce[_p<port>]` | each route host | the browser's sign-in nonce (login CSRF) |
//!
//! `__Host-` cookies can only be set by the host itself, without `Domain`, on `Path=/`:
//! a sibling subdomain can't plant one (cookie tossing), nor shadow one with a longer
//! path. `<base>` is `cookie_name` without any `__Host-`/`__Secure-` prefix of its own.
//!
//! Every name of the family (see [`super::cookies::in_family`]) is removed before a
//! request goes upstream, and an upstream may not set one.

use std::borrow::Cow;

use super::cookies::{CookieError, SameSite, SessionCookie};

/// The port whose cookies carry no port in their name.
pub const DEFAULT_PORT: u16 = 443;

/// Whom a route credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    /// One origin: canonical host (lower-case, no trailing dot) and port.
    Host { host: &'a str, port: u16 },
    /// Every host of `cookie_domain` (lower-case, no leading dot), any port.
    Domain(&'a str),
}

impl Binding<'_> {
    /// The associated data the credential is sealed with.
    pub fn aad(&self) -> Vec<u8> {
        match self {
            Binding::Host { host, port } => format!("host:{host}:{port}").into_bytes(),
            Binding::Domain(d) => format!("domain:{d}").into_bytes(),
        }
    }

    pub fn owned(&self) -> OwnedBinding {
        match *self {
            Binding::Host { host, port } => OwnedBinding::Host {
                host: host.into(),
                port,
            },
            Binding::Domain(d) => OwnedBinding::Domain(d.into()),
        }
    }
}

/// A [`Binding`] kept in a cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedBinding {
    Host { host: Box<str>, port: u16 },
    Domain(Box<str>),
}

impl OwnedBinding {
    pub fn is(&self, b: &Binding<'_>) -> bool {
        match (self, b) {
            (OwnedBinding::Host { host, port }, Binding::Host { host: h, port: p }) => {
                **host == **h && port == p
            }
            (OwnedBinding::Domain(d), Binding::Domain(e)) => **d == **e,
            _ => false,
        }
    }
}

// === impl CookieNames ===

/// The names and attributes of every cookie Portcullis sets.
#[derive(Debug, Clone)]
pub struct CookieNames {
    /// `cookie_name` as configured: the domain cookie's name, and the family.
    base: String,
    /// `__Host-` and the base without a prefix of its own: every host-only cookie.
    host_base: String,
    /// `cookie_domain`, lower-case, without a leading dot.
    domain: Option<String>,
    same_site: SameSite,
}

impl CookieNames {
    pub fn new(
        base: &str,
        domain: Option<&str>,
        same_site: SameSite,
    ) -> Result<CookieNames, CookieError> {
        // Validates the name and the domain the way the cookies will be written.
        let mut probe = SessionCookie::new(base)?;
        let domain = match domain {
            Some(d) => {
                probe = probe.with_domain(d)?;
                Some(d.trim_start_matches('.').to_ascii_lowercase())
            }
            None => None,
        };
        let _ = probe;
        let bare = strip_prefix_ci(base, "__Host-")
            .or_else(|| strip_prefix_ci(base, "__Secure-"))
            .unwrap_or(base);
        Ok(CookieNames {
            base: base.to_string(),
            host_base: format!("__Host-{bare}"),
            domain,
            same_site,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whom a credential presented on `host:port` must be bound to: the cookie domain
    /// when `host` is inside it, else the origin itself.
    pub fn binding<'a>(&'a self, host: &'a str, port: u16) -> Binding<'a> {
        match &self.domain {
            Some(d)
                if host == d
                    || host
                        .strip_suffix(d.as_str())
                        .is_some_and(|r| r.ends_with('.')) =>
            {
                Binding::Domain(d)
            }
            _ => Binding::Host { host, port },
        }
    }

    /// The name of the credential cookie for `binding` (allocates only off port 443).
    pub fn route_name(&self, binding: &Binding<'_>) -> Cow<'_, str> {
        match binding {
            Binding::Host { port, .. } => self.with_port(&self.host_base, *port),
            Binding::Domain(_) => Cow::Borrowed(&self.base),
        }
    }

    /// Calls `f` with [`CookieNames::route_name`], built on the stack off port 443
    /// (the request path reads this name on every request).
    pub fn with_route_name<R>(&self, binding: &Binding<'_>, f: impl FnOnce(&str) -> R) -> R {
        const ROOM: usize = 96;
        let base = self.host_base.as_bytes();
        match binding {
            Binding::Host { port, .. } if *port != DEFAULT_PORT && base.len() + 7 <= ROOM => {
                let mut buf = [0u8; ROOM];
                buf[..base.len()].copy_from_slice(base);
                buf[base.len()..base.len() + 2].copy_from_slice(b"_p");
                let mut decimal = itoa::Buffer::new();
                let digits = decimal.format(*port).as_bytes();
                let end = base.len() + 2 + digits.len();
                buf[base.len() + 2..end].copy_from_slice(digits);
                f(std::str::from_utf8(&buf[..end]).expect("a cookie name and digits"))
            }
            _ => f(&self.route_name(binding)),
        }
    }

    /// The credential cookie for `binding`.
    pub fn route(&self, binding: &Binding<'_>) -> SessionCookie {
        let cookie = SessionCookie::new(&self.route_name(binding))
            .expect("validated at start")
            .with_same_site(self.same_site);
        match binding {
            Binding::Domain(d) => cookie.with_domain(d).expect("validated at start"),
            Binding::Host { .. } => cookie,
        }
    }

    /// The authenticate host's session cookie (host-only, always).
    pub fn authenticate(&self, port: u16) -> SessionCookie {
        self.cookie(
            &format!("{}_authenticate", self.host_base),
            port,
            self.same_site,
        )
    }

    /// The sign-in flow cookie on the authenticate host. It must survive the
    /// provider's top-level redirect back: Lax.
    pub fn flow(&self, port: u16) -> SessionCookie {
        self.cookie(&format!("{}_flow", self.host_base), port, SameSite::Lax)
    }

    /// The route host's sign-in nonce cookie. `__Host-` (no `Domain` possible, so a
    /// sibling subdomain cannot plant one); Lax, as it must come back on the handoff's
    /// top-level navigation.
    pub fn nonce(&self, port: u16) -> SessionCookie {
        self.cookie(&format!("{}_nonce", self.host_base), port, SameSite::Lax)
    }

    fn cookie(&self, name: &str, port: u16, same_site: SameSite) -> SessionCookie {
        SessionCookie::new(&self.with_port(name, port))
            .expect("validated at start")
            .with_same_site(same_site)
    }

    fn with_port<'a>(&self, name: &'a str, port: u16) -> Cow<'a, str> {
        if port == DEFAULT_PORT {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(format!("{name}_p{port}"))
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(domain: Option<&str>) -> CookieNames {
        CookieNames::new("_portcullis", domain, SameSite::Lax).unwrap()
    }

    #[test]
    fn bindings() {
        let n = names(Some(".Corp.example.com"));
        for (host, port, want) in [
            ("corp.example.com", 443, Binding::Domain("corp.example.com")),
            (
                "app.corp.example.com",
                8443,
                Binding::Domain("corp.example.com"),
            ),
            (
                "a.b.corp.example.com",
                443,
                Binding::Domain("corp.example.com"),
            ),
            (
                "evilcorp.example.com",
                443,
                Binding::Host {
                    host: "evilcorp.example.com",
                    port: 443,
                },
            ),
            (
                "other.example",
                9443,
                Binding::Host {
                    host: "other.example",
                    port: 9443,
                },
            ),
        ] {
            assert_eq!(n.binding(host, port), want, "{host}:{port}");
        }
        let n = names(None);
        assert_eq!(
            n.binding("app.example.com", 443),
            Binding::Host {
                host: "app.example.com",
                port: 443
            }
        );
    }

    #[test]
    fn aads_name_host_port_or_domain() {
        let host = Binding::Host {
            host: "app.example.com",
            port: 8443,
        };
        assert_eq!(host.aad(), b"host:app.example.com:8443");
        assert_eq!(Binding::Domain("example.com").aad(), b"domain:example.com");
        assert!(host.owned().is(&host));
        assert!(!host.owned().is(&Binding::Host {
            host: "app.example.com",
            port: 443
        }));
        assert!(!host.owned().is(&Binding::Domain("app.example.com")));
    }

    #[test]
    fn cookie_names() {
        let n = names(None);
        let b443 = n.binding("app", 443);
        let b8443 = n.binding("app", 8443);
        assert_eq!(n.route_name(&b443), "__Host-_portcullis");
        assert_eq!(n.route_name(&b8443), "__Host-_portcullis_p8443");
        for port in [1, 9, 10, 443, 8443, 65535] {
            let b = Binding::Host { host: "a", port };
            n.with_route_name(&b, |name| assert_eq!(name, n.route_name(&b), "{port}"));
        }
        assert_eq!(
            n.authenticate(443).name(),
            "__Host-_portcullis_authenticate"
        );
        assert_eq!(
            n.authenticate(9443).name(),
            "__Host-_portcullis_authenticate_p9443"
        );
        assert_eq!(n.flow(443).name(), "__Host-_portcullis_flow");
        assert_eq!(n.nonce(443).name(), "__Host-_portcullis_nonce");
        assert_eq!(n.nonce(8443).name(), "__Host-_portcullis_nonce_p8443");
        // A prefix of the operator's own is not doubled, and `__Secure-` (which a
        // sibling could plant) becomes `__Host-` for host-only cookies.
        for base in ["__Host-s", "__Secure-s", "__secure-s"] {
            let p = CookieNames::new(base, None, SameSite::Lax).unwrap();
            assert_eq!(p.nonce(443).name(), "__Host-s_nonce", "{base}");
            assert_eq!(p.route_name(&p.binding("a", 443)), "__Host-s", "{base}");
        }
        let set = n.route(&b8443).set("v", None).unwrap();
        let text = set[0].to_str().unwrap();
        assert!(
            text.starts_with("__Host-_portcullis_p8443=v; Path=/;"),
            "{text}"
        );
        assert!(
            text.contains("Secure") && !text.contains("Domain"),
            "{text}"
        );

        // The domain cookie carries the Domain attribute; the others never do.
        let d = names(Some("example.com"));
        let set = d
            .route(&d.binding("app.example.com", 8443))
            .set("v", None)
            .unwrap();
        assert!(
            set[0]
                .to_str()
                .unwrap()
                .starts_with("_portcullis=v; Path=/; Domain=example.com;")
        );
        let set = d.authenticate(443).set("v", None).unwrap();
        assert!(!set[0].to_str().unwrap().contains("Domain"));
        let set = n.route(&b8443).set("v", None).unwrap();
        assert!(
            set[0]
                .to_str()
                .unwrap()
                .starts_with("__Host-_portcullis_p8443=v; Path=/;")
        );
        assert!(set[0].to_str().unwrap().contains("Secure"));
        let set = d.nonce(443).set("v", None).unwrap();
        assert!(!set[0].to_str().unwrap().contains("Domain"));
    }

    #[test]
    fn refuses_bad_names_and_domains() {
        assert!(CookieNames::new("a b", None, SameSite::Lax).is_err());
        assert!(CookieNames::new("s", Some("a..b"), SameSite::Lax).is_err());
        assert!(CookieNames::new("__Host-s", Some("example.com"), SameSite::Lax).is_err());
    }
}
