//! `portcullis check`: validate a config file offline and summarise what it would serve,
//! with warnings for things that parse but probably aren't what was meant.

use std::fmt::{self, Write as _};
use std::path::Path;

use crate::routes::{Balance, HostMatch, PathMatch, UpstreamScheme};

use super::{Config, ConfigError, IdpProvider};

/// Something valid but suspicious, tied to a route when it is about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `routes[N]`, or `None` for the file as a whole.
    pub route: Option<String>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Some(r) => write!(f, "{r}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Loads and validates `path` (with the process environment, as `run` would) and
/// returns a human summary: listeners, sign-in, one line per route, then warnings.
pub fn check(path: &Path) -> Result<String, ConfigError> {
    let config = Config::load(path)?;
    let mut warnings = config.warnings();
    for (i, c) in config.certificates.iter().enumerate() {
        for file in [&c.cert, &c.key] {
            if !file.exists() {
                warnings.push(Warning {
                    route: None,
                    message: format!("certificates[{i}]: `{}` does not exist", file.display()),
                });
            }
        }
    }
    if let Some(ca) = &config.idp.ca_file
        && !ca.exists()
    {
        warnings.push(Warning {
            route: None,
            message: format!("idp_ca_file: `{}` does not exist", ca.display()),
        });
    }
    Ok(config.summary(&path.display().to_string(), &warnings))
}

impl Config {
    /// Warnings that need no I/O (check adds missing files on top).
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        let file = |message: String| Warning {
            route: None,
            message,
        };
        for r in &self.routes {
            let route = |message: &str| Warning {
                route: Some(r.id.clone()),
                message: message.to_string(),
            };
            if r.denies_everyone() {
                out.push(route(if r.shorthands.cors_allow_preflight {
                    "no `policy` and no allow shorthand: only CORS preflight requests get through"
                } else {
                    "no `policy` and no allow shorthand: this route denies everyone \
                     (add `policy`, `allowed_*`, or `allow_public_unauthenticated_access: true`)"
                }));
            }
            if r.spec.options.tls.skip_verify {
                out.push(route(
                    "tls_skip_verify: the upstream's certificate is not checked",
                ));
            }
            if r.spec.options.tls.server_name.is_some()
                && r.spec
                    .backend
                    .endpoints
                    .iter()
                    .all(|e| e.scheme != UpstreamScheme::Https)
            {
                out.push(route("tls_server_name has no effect: no upstream is https"));
            }
            if let Some(earlier) = self.routes.iter().take_while(|o| o.id != r.id).find(|o| {
                o.spec.host == r.spec.host
                    && o.spec.port == r.spec.port
                    && o.spec.path == r.spec.path
            }) {
                out.push(route(&format!(
                    "same host and path as {}, which comes first: this route never matches",
                    earlier.id
                )));
            }
        }

        let sign_in: Vec<&str> = self
            .routes
            .iter()
            .filter(|r| r.needs_sign_in())
            .map(|r| r.id.as_str())
            .collect();
        if !sign_in.is_empty() {
            let who = match sign_in.len() {
                1 => format!("{} needs", sign_in[0]),
                2..=3 => format!("{} need", sign_in.join(", ")),
                n => format!("{} and {} more routes need", sign_in[..3].join(", "), n - 3),
            };
            let missing: Vec<&str> = [
                (
                    "authenticate_service_url",
                    self.authenticate_service_url.is_none(),
                ),
                ("idp_provider", self.idp.provider.is_none()),
                ("idp_provider_url", self.idp.provider_url.is_none()),
                ("idp_client_id", self.idp.client_id.is_none()),
                ("idp_client_secret", self.idp.client_secret.is_none()),
            ]
            .into_iter()
            .filter_map(|(k, m)| m.then_some(k))
            .collect();
            if !missing.is_empty() {
                out.push(file(format!(
                    "{who} sign-in, but {} not set: those routes will deny instead",
                    join_keys(&missing)
                )));
            }
            // Whatever the session store: the secret keys the sign-in state, the
            // handoff and the route credentials too, and `run` refuses without it.
            if self.cookie.secret.is_none() {
                out.push(file(format!(
                    "{who} sign-in, but cookie_secret is not set: `portcullis run` refuses \
                     to start sign-in without one (head -c32 /dev/urandom | base64)"
                )));
            }
            if self.idp.provider == Some(IdpProvider::Okta)
                && !self.idp.scopes.iter().any(|s| s == "offline_access")
            {
                out.push(file(
                    "idp_scopes lacks offline_access: Okta issues no refresh token, so users \
                     sign in again whenever the access token expires"
                        .to_string(),
                ));
            }
        }
        if self.signing.shared_secret.is_some() {
            out.push(file(
                "shared_secret is read but not used: Pomerium signs the calls between its \
                 services with it, and Portcullis is one process with no such calls; \
                 cookie_secret and signing_key key everything it signs"
                    .to_string(),
            ));
        }
        out
    }

    /// The text `portcullis check` prints.
    pub fn summary(&self, file: &str, warnings: &[Warning]) -> String {
        let mut s = String::new();
        let hosts: std::collections::BTreeSet<String> = self
            .routes
            .iter()
            .map(|r| host_text(&r.spec.host, r.spec.port))
            .collect();
        let _ = writeln!(
            s,
            "{file}: OK, {} route{} on {} host{}",
            self.routes.len(),
            plural(self.routes.len()),
            hosts.len(),
            plural(hosts.len())
        );
        let _ = write!(s, "listen: https {}", self.address);
        if let Some(a) = self.http_redirect_address {
            let _ = write!(s, ", http redirect {a}");
        }
        if let Some(a) = self.metrics_address {
            let _ = write!(s, ", metrics {a}");
        }
        let _ = writeln!(s);
        if let Some(url) = &self.authenticate_service_url {
            let idp = match (self.idp.provider, &self.idp.provider_url) {
                (Some(p), Some(u)) => format!(" via {} {u}", format!("{p:?}").to_lowercase()),
                _ => String::new(),
            };
            let _ = writeln!(s, "sign-in: {url}{idp}");
        }
        if let Some(d) = &self.directory {
            let _ = writeln!(
                s,
                "directory: {:?} {} every {:?}",
                d.provider, d.url, d.refresh_interval
            );
        }
        if !self.routes.is_empty() {
            let _ = writeln!(s, "routes:");
        }
        for r in &self.routes {
            let spec = &r.spec;
            let path = match &spec.path {
                PathMatch::Any => String::new(),
                PathMatch::Exact(p) => format!(" path {p}"),
                PathMatch::StrPrefix(p) | PathMatch::SegmentPrefix(p) => format!(" prefix {p}"),
                PathMatch::Regex(p) => format!(" regex {p}"),
            };
            let balance = match (spec.backend.endpoints.len(), spec.backend.balance) {
                (1, _) => "",
                (_, Balance::RoundRobin) => " (round robin)",
                (_, Balance::LeastRequest) => " (least request)",
            };
            let _ = writeln!(
                s,
                "  {:<11} {}{path} -> {}{balance}  [{}]",
                r.id,
                host_text(&spec.host, spec.port),
                r.to.join(", "),
                access_text(r)
            );
        }
        if !warnings.is_empty() {
            let _ = writeln!(s, "warnings:");
            for w in warnings {
                let _ = writeln!(s, "  {w}");
            }
        }
        s
    }
}

fn access_text(r: &super::RouteConfig) -> String {
    let sh = &r.shorthands;
    let mut parts = Vec::new();
    if sh.allow_public_unauthenticated_access {
        parts.push("public".to_string());
    }
    if sh.allow_any_authenticated_user {
        parts.push("any signed-in user".to_string());
    }
    for (label, list) in [
        ("users", &sh.allowed_users),
        ("domains", &sh.allowed_domains),
        ("groups", &sh.allowed_groups),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label}: {}", list.join(",")));
        }
    }
    if r.policy_document.is_some() {
        parts.push("policy".to_string());
    }
    if sh.cors_allow_preflight {
        parts.push("cors preflight".to_string());
    }
    if parts.is_empty() {
        return "denies everyone".to_string();
    }
    let mut text = parts.join("; ");
    if r.needs_sign_in() {
        text.push_str("; sign-in");
    }
    text
}

fn host_text(host: &HostMatch, port: Option<u16>) -> String {
    let h = match host {
        HostMatch::Any => "*".to_string(),
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Wildcard(h) => format!("*.{h}"),
    };
    match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    }
}

fn join_keys(keys: &[&str]) -> String {
    match keys {
        [one] => format!("{one} is"),
        [init @ .., last] => format!("{} and {last} are", init.join(", ")),
        [] => String::new(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
