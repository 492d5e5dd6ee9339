//! `directory`: the Okta directory sync section.

use std::time::Duration;

use super::super::error::Problems;
use super::super::fields::{self, Fields};
use super::super::*;

/// Directory sync (`directory:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySettings {
    pub provider: DirectoryProvider,
    /// The Okta org URL; defaults to the origin of `idp_provider_url`.
    pub url: http::Uri,
    pub api_token: Secret<String>,
    pub refresh_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryProvider {
    Okta,
}

pub(crate) fn read_directory(
    top: &Fields<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    idp_url: Option<&http::Uri>,
    p: &mut Problems,
) -> Option<DirectorySettings> {
    let overrides: Vec<(&str, String, String)> = DIRECTORY_KEYS
        .iter()
        .filter_map(|k| {
            let var = format!("DIRECTORY_{}", k.to_ascii_uppercase());
            env(&var).filter(|v| !v.is_empty()).map(|v| (*k, var, v))
        })
        .collect();
    let mut f = match top.get("directory") {
        Some(node) => Fields::open(node, "directory", DIRECTORY_KEYS, p)?,
        None if overrides.is_empty() => return None,
        None => Fields::empty("directory"),
    };
    for (key, var, value) in overrides {
        f.override_with(key, &var, value);
    }
    let before = p.list.len();
    let provider = match f.get("provider") {
        Some(_) => f.read("provider", p, |n, path, p| {
            let s = fields::string(n, path, p)?;
            if s.trim().eq_ignore_ascii_case("okta") {
                Some(DirectoryProvider::Okta)
            } else {
                p.push(&n.origin, path, format!("`{s}` is not supported; use okta"));
                None
            }
        }),
        None => {
            p.push(&f.origin, "directory", "missing `provider` (okta)");
            None
        }
    };
    let url = match f.get("url") {
        Some(_) => f.read("url", p, |n, path, p| {
            fields::origin_url(n, path, &["https", "http"], false, p)
        }),
        None => {
            match idp_url.and_then(|u| {
                let origin = format!("{}://{}", u.scheme_str()?, u.authority()?);
                origin.parse::<http::Uri>().ok()
            }) {
                Some(u) => Some(u),
                None => {
                    p.push(&f.origin, "directory", "missing `url` (the Okta org URL; defaults to the origin of idp_provider_url)");
                    None
                }
            }
        }
    };
    let api_token = match f.get("api_token") {
        Some(_) => f
            .read("api_token", p, fields::secret_string)
            .map(Secret::new),
        None => {
            p.push(
                &f.origin,
                "directory",
                "missing `api_token` (an Okta API token, or set DIRECTORY_API_TOKEN)",
            );
            None
        }
    };
    let refresh_interval = f
        .read("refresh_interval", p, |n, path, p| {
            let d = fields::duration(n, path, p)?;
            if d.is_zero() {
                p.push(&n.origin, path, "must be greater than zero");
                return None;
            }
            Some(d)
        })
        .unwrap_or(DEFAULT_DIRECTORY_REFRESH);
    if p.list.len() > before {
        return None;
    }
    Some(DirectorySettings {
        provider: provider?,
        url: url?,
        api_token: api_token?,
        refresh_interval,
    })
}
