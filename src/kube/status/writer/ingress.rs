//! Ingress status (`status.loadBalancer`, the published address) and the Events of
//! each Ingress's notes, written a few Ingresses at a time.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde_json::{Value, json};

use super::super::Publish;
use super::super::events::object_reference;
use super::{NoteId, Writer, apply_status};
use crate::kube::index::{NoteType, Translation};

/// Ingress status applies and Events in flight at once.
const STATUS_CONCURRENCY: usize = 16;
const INGRESS_API_VERSION: &str = "networking.k8s.io/v1";

// === impl Writer ===

impl Writer {
    pub(super) async fn write_ingresses(
        &mut self,
        t: &Translation,
        still_noted: &mut HashSet<NoteId>,
    ) {
        let addresses = self.addresses().await;
        // Ingresses are independent: write their status and Events a few at a time.
        let mut jobs = Vec::new();
        for report in &t.ingresses {
            let status = addresses
                .as_ref()
                .map(|lb| json!({"loadBalancer": {"ingress": lb}}))
                .filter(|s| self.ingress_status.get(&report.key) != Some(s));
            let mut fresh = Vec::new();
            for note in &report.notes {
                let id = (report.key.clone(), note.reason, note.message.clone());
                if !self.published.contains(&id) {
                    fresh.push(note.clone());
                }
                still_noted.insert(id);
            }
            if status.is_some() || !fresh.is_empty() {
                let force = !self.applied.contains(&("Ingress", report.key.clone()));
                jobs.push((report.key.clone(), status, force, fresh));
            }
        }
        // Each job owns what it uses, so the stream of futures borrows nothing.
        let shared = Arc::new((
            self.client.clone(),
            self.params.clone(),
            self.recorder.clone(),
            self.gate.clone(),
        ));
        let done: Vec<_> = futures_util::stream::iter(jobs)
            .map(|(key, status, force, notes)| {
                let shared = shared.clone();
                async move {
                    let (client, params, recorder, gate) = &*shared;
                    let api: Api<Ingress> = Api::namespaced(client.clone(), &key.namespace);
                    let written = match status {
                        Some(status) if gate.open() => {
                            let body = json!({
                                "apiVersion": INGRESS_API_VERSION,
                                "kind": "Ingress",
                                "metadata": {"name": key.name, "namespace": key.namespace},
                                "status": status,
                            });
                            match apply_status(&api, &key, params, &body, force).await {
                                Ok(_) => Some(status),
                                Err(e) => {
                                    tracing::warn!(ingress = %key, error = %e,
                                        "cannot write Ingress status");
                                    None
                                }
                            }
                        }
                        _ => None,
                    };
                    let mut published = Vec::new();
                    if !notes.is_empty()
                        && let Ok(Some(obj)) = api.get_opt(&key.name).await
                    {
                        let reference =
                            object_reference(&obj.metadata, INGRESS_API_VERSION, "Ingress");
                        for note in notes {
                            if !gate.open() {
                                break;
                            }
                            if note.type_ == NoteType::Warning {
                                tracing::warn!(ingress = %key, reason = note.reason, "{}", note.message);
                            }
                            recorder
                                .publish(note.type_, note.reason, &note.message, &reference)
                                .await;
                            published.push((key.clone(), note.reason, note.message));
                        }
                    }
                    (key, written, published)
                }
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .collect()
            .await;
        for (key, written, published) in done {
            if let Some(status) = written {
                self.applied.insert(("Ingress", key.clone()));
                self.ingress_status.insert(key, status);
            }
            self.published.extend(published);
        }
    }

    /// The `status.loadBalancer.ingress` entries to publish, if any.
    async fn addresses(&self) -> Option<Vec<Value>> {
        let entry = |a: &str| {
            if a.parse::<std::net::IpAddr>().is_ok() {
                json!({"ip": a})
            } else {
                json!({"hostname": a})
            }
        };
        match &self.publish {
            Publish::None => None,
            Publish::Addresses(list) => Some(list.iter().map(|a| entry(a)).collect()),
            Publish::Service { namespace, name } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                let svc = match api.get_opt(name).await {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        tracing::warn!(service = %format!("{namespace}/{name}"),
                            "--publish-service names a Service that does not exist");
                        return None;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the publish Service");
                        return None;
                    }
                };
                let from_lb: Vec<Value> = svc
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()).map(entry))
                    .collect();
                if !from_lb.is_empty() {
                    return Some(from_lb);
                }
                let external: Vec<Value> = svc
                    .spec
                    .and_then(|s| s.external_ips)
                    .unwrap_or_default()
                    .iter()
                    .map(|a| entry(a))
                    .collect();
                (!external.is_empty()).then_some(external)
            }
        }
    }
}
