//! Writes Ingress and IdentityPolicy status with server-side apply, as this replica's
//! field manager (`portcullis/<identity>`), and the Events of each translation.
//!
//! Each object's first apply of a term is forced, taking over the fields a previous
//! leader (or an older Portcullis's merge patches) set; later applies are not, and a
//! conflict they meet (someone else set a field we own) is logged and applied over.
//! Conditions are a list map keyed by `type` in the CRD, so an apply merges ours by
//! type. Before each API call the writer reads the current [`Claim`]: it writes only
//! while this replica holds the Lease, and what it skips is written on the next claim.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::events::{Recorder, object_reference};
use super::{Publish, StatusSettings};
use crate::kube::crd::{CONDITION_ACCEPTED, CONDITION_RESOLVED_REFS, IdentityPolicy};
use crate::kube::index::{ConditionState, NoteType, ObjectKey, Translation};
use crate::kube::lease::Claim;

/// Ingress status applies and Events in flight at once.
const STATUS_CONCURRENCY: usize = 16;
const INGRESS_API_VERSION: &str = "networking.k8s.io/v1";
const POLICY_API_VERSION: &str = "portcullis.dev/v1alpha1";

/// Whether this replica may write now, read before each API call.
#[derive(Clone)]
struct Gate {
    claims: watch::Receiver<Claim>,
    identity: String,
    /// Set when a write was skipped for want of the Lease.
    skipped: Arc<AtomicBool>,
}

impl Gate {
    fn open(&self) -> bool {
        let open = self.claims.borrow().is_current_for(&self.identity);
        if !open {
            self.skipped.store(true, Ordering::Relaxed);
        }
        open
    }
}

/// Writes only what changed since the last write.
pub(super) struct Writer {
    client: Client,
    publish: Publish,
    recorder: Recorder,
    gate: Gate,
    /// Applies name this replica as their field manager, so `managedFields` shows who wrote.
    params: PatchParams,
    /// What was applied last, by object (the `status` stanza).
    ingress_status: HashMap<ObjectKey, Value>,
    policy_status: HashMap<ObjectKey, Value>,
    /// Objects applied this term (their next apply is not forced).
    applied: HashSet<(&'static str, ObjectKey)>,
    /// When each condition last changed.
    transitions: Transitions,
    /// `controllerName` in Gateway API status (policy ancestors).
    controller_name: String,
    /// Gateway API status and the Services that give Gateways their addresses.
    gateway: Option<crate::kube::gateway::status::GatewayWriter>,
    /// Notes already published as Events: (object, reason, message).
    published: HashSet<(ObjectKey, &'static str, String)>,
}

impl Writer {
    pub fn new(client: Client, s: &StatusSettings, claims: watch::Receiver<Claim>) -> Writer {
        let manager: String = format!("portcullis/{}", s.identity)
            .chars()
            .take(128)
            .collect();
        Writer {
            controller_name: s
                .gateway
                .as_ref()
                .map(|g| g.controller_name.clone())
                .unwrap_or_default(),
            gateway: s.gateway.as_ref().map(|g| {
                crate::kube::gateway::status::GatewayWriter::new(
                    client.clone(),
                    s.namespace.clone(),
                    g.clone(),
                )
            }),
            recorder: Recorder {
                client: client.clone(),
                instance: s.identity.clone(),
            },
            gate: Gate {
                claims,
                identity: s.identity.clone(),
                skipped: Arc::default(),
            },
            params: PatchParams::apply(&manager),
            client,
            publish: s.publish.clone(),
            ingress_status: HashMap::new(),
            policy_status: HashMap::new(),
            applied: HashSet::new(),
            transitions: Transitions::default(),
            published: HashSet::new(),
        }
    }

    /// Forgets what was written, so the next write repeats everything.
    pub fn forget(&mut self) {
        self.ingress_status.clear();
        self.policy_status.clear();
        if let Some(g) = &mut self.gateway {
            g.forget();
        }
    }

    /// A new term as leader: repeat everything, each object's first apply forced.
    pub fn new_term(&mut self) {
        self.forget();
        self.applied.clear();
    }

    /// Whether a write was skipped for want of the Lease since the last write.
    pub fn behind(&self) -> bool {
        self.gate.skipped.load(Ordering::Relaxed)
    }

    pub async fn write(&mut self, t: &Translation) {
        self.gate.skipped.store(false, Ordering::Relaxed);
        let mut still_noted = HashSet::new();
        self.write_ingresses(t, &mut still_noted).await;
        self.write_policies(t, &mut still_noted).await;
        // A problem that went away and comes back is reported again.
        self.published.retain(|id| still_noted.contains(id));
        // Gateway API status (merge patches of our own classes' objects): written while
        // this replica leads, checked once per translation.
        if let Some(g) = &mut self.gateway
            && self.gate.open()
        {
            g.write(
                &t.gateway,
                &mut self.transitions,
                &self.recorder,
                &self.params,
            )
            .await;
        }
    }

    async fn write_ingresses(
        &mut self,
        t: &Translation,
        still_noted: &mut HashSet<(ObjectKey, &'static str, String)>,
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

    async fn write_policies(
        &mut self,
        t: &Translation,
        still_noted: &mut HashSet<(ObjectKey, &'static str, String)>,
    ) {
        for report in &t.policies {
            let failing = [&report.accepted, &report.resolved_refs]
                .into_iter()
                .filter(|state| !state.status);
            let conditions = [
                self.condition(
                    &report.key,
                    CONDITION_ACCEPTED,
                    &report.accepted,
                    report.generation,
                ),
                self.condition(
                    &report.key,
                    CONDITION_RESOLVED_REFS,
                    &report.resolved_refs,
                    report.generation,
                ),
            ];
            let mut status = json!({
                "attachedIngresses": report.attached_ingresses,
                "conditions": conditions,
            });
            if self.gateway.is_some() {
                status["attachedRoutes"] = json!(report.attached_routes);
                status["ancestors"] = json!(self.ancestors(report));
            }
            if let Some(generation) = report.generation {
                status["observedGeneration"] = generation.into();
            }
            if self.policy_status.get(&report.key) == Some(&status) {
                for state in failing {
                    still_noted.insert((report.key.clone(), state.reason, state.message.clone()));
                }
                continue;
            }
            if !self.gate.open() {
                // Written on the next claim; what was published stands meanwhile.
                for state in failing {
                    still_noted.insert((report.key.clone(), state.reason, state.message.clone()));
                }
                continue;
            }
            let api: Api<IdentityPolicy> =
                Api::namespaced(self.client.clone(), &report.key.namespace);
            let body = json!({
                "apiVersion": POLICY_API_VERSION,
                "kind": "IdentityPolicy",
                "metadata": {"name": report.key.name, "namespace": report.key.namespace},
                "status": status,
            });
            let force = !self
                .applied
                .contains(&("IdentityPolicy", report.key.clone()));
            let obj = match apply_status(&api, &report.key, &self.params, &body, force).await {
                Ok(obj) => obj,
                Err(e) => {
                    tracing::warn!(policy = %report.key, error = %e,
                        "cannot write IdentityPolicy status");
                    continue;
                }
            };
            self.applied.insert(("IdentityPolicy", report.key.clone()));
            self.policy_status.insert(report.key.clone(), status);
            let reference = object_reference(&obj.metadata, POLICY_API_VERSION, "IdentityPolicy");
            for state in failing {
                let id = (report.key.clone(), state.reason, state.message.clone());
                still_noted.insert(id.clone());
                if !self.published.contains(&id) && self.gate.open() {
                    self.published.insert(id);
                    tracing::warn!(policy = %report.key, reason = state.reason, "{}", state.message);
                    self.recorder
                        .publish(NoteType::Warning, state.reason, &state.message, &reference)
                        .await;
                }
            }
        }
    }

    /// A condition, keeping its transition time while its status and reason stand.
    fn condition(
        &mut self,
        key: &ObjectKey,
        type_: &'static str,
        state: &ConditionState,
        generation: Option<i64>,
    ) -> Value {
        self.transitions
            .condition(key, "", type_, state, generation)
    }

    /// A policy's `status.ancestors` (GEP-713): one entry per Gateway it applies under.
    fn ancestors(&mut self, report: &crate::kube::index::IdentityPolicyReport) -> Vec<Value> {
        report
            .ancestors
            .iter()
            .map(|g| {
                let accepted = ConditionState {
                    status: report.accepted.status,
                    reason: if report.accepted.status {
                        "Accepted"
                    } else {
                        "Invalid"
                    },
                    message: report.accepted.message.clone(),
                };
                json!({
                    "ancestorRef": {
                        "group": crate::kube::gateway::GROUP,
                        "kind": crate::kube::gateway::KIND_GATEWAY,
                        "namespace": g.namespace,
                        "name": g.name,
                    },
                    "controllerName": self.controller_name,
                    "conditions": [self.transitions.condition(
                        &report.key,
                        &format!("ancestor/{g}"),
                        CONDITION_ACCEPTED,
                        &accepted,
                        report.generation,
                    )],
                })
            })
            .collect()
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

/// Server-side apply of `body` to the status of `key`. Unforced, a conflict (another
/// field manager set a field we set) is logged and the apply repeated with force: the
/// leader owns the status it writes.
async fn apply_status<K>(
    api: &Api<K>,
    key: &ObjectKey,
    params: &PatchParams,
    body: &Value,
    force: bool,
) -> Result<K, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let forced = || params.clone().force();
    if force {
        return api
            .patch_status(&key.name, &forced(), &Patch::Apply(body))
            .await;
    }
    match api
        .patch_status(&key.name, params, &Patch::Apply(body))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::warn!(object = %key, conflict = %e.message,
                "another field manager set part of this status; applying ours over it");
            api.patch_status(&key.name, &forced(), &Patch::Apply(body))
                .await
        }
        other => other,
    }
}

// === impl Transitions ===

/// When each condition of each object last changed, with the state it changed to, so
/// `lastTransitionTime` moves only when status or reason does.
#[derive(Default)]
pub(crate) struct Transitions {
    /// (object, scope within it — a listener, a parent, an ancestor —, type).
    since: HashMap<(ObjectKey, String, &'static str), (String, String, jiff::Timestamp)>,
}

impl Transitions {
    /// The condition as JSON, keeping its transition time while its status and reason
    /// stand.
    pub(crate) fn condition(
        &mut self,
        key: &ObjectKey,
        scope: &str,
        type_: &'static str,
        state: &ConditionState,
        generation: Option<i64>,
    ) -> Value {
        let status = state.status_str().to_string();
        let entry = self
            .since
            .entry((key.clone(), scope.to_string(), type_))
            .or_insert_with(|| {
                (
                    status.clone(),
                    state.reason.to_string(),
                    jiff::Timestamp::now(),
                )
            });
        if entry.0 != status || entry.1 != state.reason {
            *entry = (
                status.clone(),
                state.reason.to_string(),
                jiff::Timestamp::now(),
            );
        }
        let since = entry.2.round(jiff::Unit::Second).unwrap_or(entry.2);
        let mut condition = json!({
            "type": type_,
            "status": status,
            "reason": state.reason,
            "message": state.message,
            "lastTransitionTime": since.to_string(),
        });
        if let Some(generation) = generation {
            condition["observedGeneration"] = generation.into();
        }
        condition
    }
}
