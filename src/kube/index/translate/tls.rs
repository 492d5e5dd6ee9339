//! Certificates: the ones an Ingress' `spec.tls` may serve (each Secret for the hosts
//! its namespace owns; a missing or unusable Secret is a warning, not a rejection), the
//! exact hosts that must get the default certificate instead of another namespace's
//! wildcard, and the pair a TLS Secret holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::IngressSpec;

use super::super::ObjectKey;
use super::super::ownership::{Claim, Owners};
use super::super::report::reasons;
use super::super::store::{TLS_CERT_KEY, TLS_KEY_KEY, TLS_SECRET_TYPE};
use super::Translator;
use super::ingress::Findings;
use crate::routes::HostMatch;
use crate::routes::certs::{PemPair, ScopedPair};

impl Translator<'_> {
    /// Certificates: a Secret serves the `spec.tls[].hosts` its namespace owns. A
    /// missing or unusable Secret is a warning, not a rejection.
    pub(super) fn tls_pairs(
        &self,
        ns: &str,
        spec: &IngressSpec,
        owners: &Owners,
        found: &mut Findings,
    ) -> Vec<(ObjectKey, PemPair, Vec<String>)> {
        let mut certificates = Vec::new();
        for (i, tls) in spec.tls.iter().flatten().enumerate() {
            let Some(name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let skey = ObjectKey::new(ns, name);
            let mut names = Vec::new();
            for host in tls.hosts.iter().flatten() {
                let host = host.trim().to_ascii_lowercase();
                match HostMatch::parse(&host) {
                    Ok(m @ (HostMatch::Exact(_) | HostMatch::Wildcard(_)))
                        if owners.owns(ns, &m) =>
                    {
                        names.push(host)
                    }
                    _ => found.warn(
                        reasons::TLS_HOST_NOT_OWNED,
                        format!(
                            "spec.tls[{i}]: namespace {ns} does not own host `{host}`; Secret {skey} is not served for it"
                        ),
                    ),
                }
            }
            if names.is_empty() {
                if tls.hosts.as_ref().is_none_or(Vec::is_empty) {
                    found.warn(
                        reasons::TLS_HOST_NOT_OWNED,
                        format!(
                            "spec.tls[{i}] lists no hosts, so Secret {skey} serves none; list the hosts it is for"
                        ),
                    );
                }
                continue;
            }
            match self.index.secrets.get(&skey).map(tls_pair) {
                None => found.warn(
                    reasons::TLS_SECRET_NOT_FOUND,
                    format!(
                        "spec.tls[{i}]: Secret {skey} not found; the default certificate is served"
                    ),
                ),
                Some(Err(why)) => found.warn(
                    reasons::TLS_SECRET_INVALID,
                    format!(
                        "spec.tls[{i}]: Secret {skey} {why}; the default certificate is served"
                    ),
                ),
                Some(Ok((cert, key_pem))) => certificates.push((
                    skey.clone(),
                    PemPair {
                        source_name: format!("secret {skey}"),
                        cert_pem: cert.to_vec(),
                        key_pem: key_pem.to_vec(),
                    },
                    names,
                )),
            }
        }
        certificates
    }
}

/// Exact hosts that must get the default certificate rather than a wildcard Secret of
/// a namespace that does not own them.
pub(super) fn pinned_hosts(
    certificates: &BTreeMap<ObjectKey, ScopedPair>,
    claims: &[Claim<'_>],
    owners: &Owners,
) -> Vec<String> {
    // Wildcard parent → namespaces whose Secrets serve `*.parent`.
    let mut wildcards: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (key, c) in certificates {
        for n in &c.names {
            if let Some(parent) = n.strip_prefix("*.") {
                wildcards
                    .entry(parent)
                    .or_default()
                    .insert(key.namespace.as_str());
            }
        }
    }
    let exact = claims
        .iter()
        .flat_map(|c| c.hosts.iter())
        .filter_map(|h| match h {
            HostMatch::Exact(h) => Some(h.clone()),
            _ => None,
        })
        .chain(owners.exclusive_hosts());
    let mut pinned: BTreeSet<String> = BTreeSet::new();
    for host in exact {
        let Some((_, parent)) = host.split_once('.') else {
            continue;
        };
        let Some(namespaces) = wildcards.get(parent) else {
            continue;
        };
        let m = HostMatch::Exact(host.clone());
        if namespaces.iter().any(|ns| !owners.owns(ns, &m)) {
            pinned.insert(host);
        }
    }
    pinned.into_iter().collect()
}

/// The certificate and key of a TLS Secret.
pub(in crate::kube::index) fn tls_pair(s: &Secret) -> Result<(&[u8], &[u8]), String> {
    if s.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(format!(
            "is of type {}, not {TLS_SECRET_TYPE}",
            s.type_.as_deref().unwrap_or("Opaque")
        ));
    }
    let get = |k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
    };
    match (get(TLS_CERT_KEY), get(TLS_KEY_KEY)) {
        (Some(c), Some(k)) => Ok((c, k)),
        _ => Err(format!("lacks `{TLS_CERT_KEY}` or `{TLS_KEY_KEY}`")),
    }
}
