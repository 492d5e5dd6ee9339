//! The certificates an Ingress' `spec.tls` may serve: each Secret for the hosts its
//! namespace owns; a missing or unusable Secret is a warning, not a rejection.

use super::super::ObjectKey;
use super::super::ownership::Owners;
use super::super::report::reasons;
use super::ingress::Findings;
use super::{Translator, tls_pair};
use crate::routes::HostMatch;
use crate::routes::certs::PemPair;
use k8s_openapi::api::networking::v1::IngressSpec;

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
