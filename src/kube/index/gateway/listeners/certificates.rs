//! An HTTPS listener's certificates: `tls.certificateRefs` (Secrets; another
//! namespace's with its ReferenceGrant), each loaded to check it.

use super::{ListenerState, state};
use crate::kube::gateway::api::Listener;
use crate::kube::gateway::{KIND_GATEWAY, KIND_SECRET, reasons};
use crate::kube::index::gateway::refs::permitted;
use crate::kube::index::store::TLS_SECRET_TYPE;
use crate::kube::index::translate::tls_pair;
use crate::kube::index::{Index, ObjectKey};
use crate::routes::certs::PemPair;

/// HTTPS: certificates from `tls.certificateRefs` (Secrets; another namespace's with
/// its ReferenceGrant). Problems make ResolvedRefs false; a listener left without a
/// certificate is not programmed.
pub(super) fn certificates(index: &Index, gw: &ObjectKey, l: &Listener, s: &mut ListenerState<'_>) {
    let Some(tls) = &l.tls else {
        s.resolved_refs = state(
            false,
            reasons::INVALID_CERTIFICATE_REF,
            "an HTTPS listener needs tls.certificateRefs",
        );
        return;
    };
    if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
        s.accepted = state(
            false,
            reasons::UNSUPPORTED_VALUE,
            "tls.mode Passthrough is not supported on HTTPS listeners",
        );
        return;
    }
    if tls.options.as_ref().is_some_and(|o| !o.is_empty()) {
        s.accepted = state(
            false,
            reasons::UNSUPPORTED_VALUE,
            "tls.options: Portcullis defines no TLS options",
        );
        return;
    }
    let mut problem: Option<(&'static str, String)> = None;
    let mut note = |reason: &'static str, message: String| {
        // RefNotPermitted says the most: it wins over a missing or invalid Secret.
        if problem.is_none() || reason == reasons::REF_NOT_PERMITTED {
            problem = Some((reason, message));
        }
    };
    if tls.certificate_refs.is_empty() {
        note(
            reasons::INVALID_CERTIFICATE_REF,
            "tls.certificateRefs is empty".to_string(),
        );
    }
    for (i, r) in tls.certificate_refs.iter().enumerate() {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or(KIND_SECRET);
        let ns = r.namespace.as_deref().unwrap_or(&gw.namespace);
        let at = format!("tls.certificateRefs[{i}]");
        if !group.is_empty() || kind != KIND_SECRET {
            note(
                reasons::INVALID_CERTIFICATE_REF,
                format!("{at}: {group}/{kind} is not supported; name a Secret"),
            );
            continue;
        }
        if !permitted(
            index,
            (KIND_GATEWAY, &gw.namespace),
            (KIND_SECRET, ns),
            &r.name,
        ) {
            note(
                reasons::REF_NOT_PERMITTED,
                format!(
                    "{at}: Secret {ns}/{} is in another namespace and no ReferenceGrant there permits it",
                    r.name
                ),
            );
            continue;
        }
        let key = ObjectKey::new(ns, r.name.as_str());
        let Some(secret) = index.secrets.get(&key) else {
            note(
                reasons::INVALID_CERTIFICATE_REF,
                format!("{at}: Secret {key} not found (or not of type {TLS_SECRET_TYPE})"),
            );
            continue;
        };
        let pair = match tls_pair(secret) {
            Ok((cert, key_pem)) => PemPair {
                source_name: format!("secret {key}"),
                cert_pem: cert.to_vec(),
                key_pem: key_pem.to_vec(),
            },
            Err(why) => {
                note(
                    reasons::INVALID_CERTIFICATE_REF,
                    format!("{at}: Secret {key} {why}"),
                );
                continue;
            }
        };
        match crate::routes::certs::load(&pair) {
            Ok(_) => s.certificates.push(pair),
            Err(e) => note(
                reasons::INVALID_CERTIFICATE_REF,
                format!("{at}: Secret {key}: {e}"),
            ),
        }
    }
    if let Some((reason, message)) = problem {
        s.resolved_refs = state(false, reason, message);
    }
}
