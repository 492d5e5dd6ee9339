//! Status and Events, written only by the elected leader (a `coordination.k8s.io`
//! Lease); every replica serves traffic. Ingress `status.loadBalancer` shows the
//! published address; IdentityPolicy `status` carries `Accepted` and `ResolvedRefs`;
//! every rejection and warning becomes an Event on its object.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::crd::{CONDITION_ACCEPTED, CONDITION_RESOLVED_REFS, IdentityPolicy};
use super::index::{ConditionState, NoteType};
use super::index::{ObjectKey, Translation};

/// How long a Lease is valid without renewal.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews, and others check whether they can take over.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Ingress status patches and Events in flight at once.
const STATUS_CONCURRENCY: usize = 16;
/// Status is rewritten at least this often, to repair hand edits.
const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// What Ingress status shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// Leave `status.loadBalancer` alone.
    None,
    /// Copy the address of this Service (`--publish-service ns/name`).
    Service { namespace: String, name: String },
    /// Fixed addresses (`--publish-status-address`): IPs or host names.
    Addresses(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct StatusSettings {
    /// Where the Lease lives (the controller's namespace).
    pub namespace: String,
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    pub identity: String,
    pub publish: Publish,
    /// Gateway API status and provisioned Services (with `--gateway-api`).
    pub gateway: Option<crate::kube::index::gateway::GatewaySettings>,
}

/// Whether this replica leads, for metrics and logs.
#[derive(Debug, Default, Clone)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs leader election and, while leading, writes status and Events for each new
/// translation. Releases the Lease on shutdown so another replica takes over at once.
pub async fn run(
    client: Client,
    settings: StatusSettings,
    mut translations: watch::Receiver<Option<Arc<Translation>>>,
    leadership: Leadership,
    mut shutdown: watch::Receiver<bool>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let mut writer = Writer::new(client.clone(), &settings);
    let mut tick = tokio::time::interval(RENEW_EVERY);
    let mut last_full_write = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let leading = match try_lead(&leases, &settings).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: cannot read or write the Lease");
                        false
                    }
                };
                let was = leadership.0.swap(leading, Ordering::Relaxed);
                if leading && !was {
                    tracing::info!(identity = %settings.identity, "became the leader: writing status");
                    writer.forget();
                } else if !leading && was {
                    tracing::info!("lost the leadership: no longer writing status");
                }
                if leading && (!was || last_full_write.elapsed() > RESYNC_EVERY) {
                    if last_full_write.elapsed() > RESYNC_EVERY {
                        writer.forget();
                    }
                    last_full_write = tokio::time::Instant::now();
                    let current = translations.borrow().clone();
                    if let Some(t) = current {
                        writer.write(&t).await;
                    }
                }
            }
            changed = translations.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = translations.borrow_and_update().clone();
                if leadership.is_leader() && let Some(t) = current {
                    writer.write(&t).await;
                }
            }
            _ = crate::server::stopped(&mut shutdown) => break,
        }
    }
    if leadership.is_leader() {
        release(&leases, &settings).await;
        leadership.0.store(false, Ordering::Relaxed);
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Takes, keeps or waits for the Lease; `Ok(true)` while this replica holds it.
async fn try_lead(leases: &Api<Lease>, s: &StatusSettings) -> Result<bool, kube::Error> {
    let fresh_spec = |transitions: i32| LeaseSpec {
        holder_identity: Some(s.identity.clone()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: Some(now_micro()),
        renew_time: Some(now_micro()),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(mut lease) = leases.get_opt(&s.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(s.lease_name.clone()),
                namespace: Some(s.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(fresh_spec(0)),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            jiff::Timestamp::now().as_second() > renewed.as_second() + i64::from(secs)
        }
        _ => true,
    };
    let mine = holder == s.identity;
    if !mine && !holder.is_empty() && !expired {
        return Ok(false);
    }
    lease.spec = Some(if mine {
        LeaseSpec {
            renew_time: Some(now_micro()),
            ..spec
        }
    } else {
        fresh_spec(spec.lease_transitions.unwrap_or(0) + 1)
    });
    // `replace` carries the resourceVersion we read: two replicas cannot both win.
    match leases
        .replace(&s.lease_name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(leases: &Api<Lease>, s: &StatusSettings) {
    let Ok(Some(mut lease)) = leases.get_opt(&s.lease_name).await else {
        return;
    };
    if let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(s.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        if leases
            .replace(&s.lease_name, &PostParams::default(), &lease)
            .await
            .is_ok()
        {
            tracing::info!("released the leader Lease");
        }
    }
}

// === impl Writer ===

/// Writes only what changed since the last write.
struct Writer {
    client: Client,
    publish: Publish,
    recorder: Recorder,
    /// Patches name this replica as their field manager, so `managedFields` shows who wrote.
    params: PatchParams,
    ingress_status: HashMap<ObjectKey, Value>,
    policy_status: HashMap<ObjectKey, Value>,
    /// When each condition last changed.
    transitions: Transitions,
    /// `controllerName` in Gateway API status.
    controller_name: String,
    /// Gateway API status and the Services that give Gateways their addresses.
    gateway: Option<crate::kube::gateway::status::GatewayWriter>,
    /// Notes already published as Events: (object, reason, message).
    published: HashSet<(ObjectKey, &'static str, String)>,
}

impl Writer {
    fn new(client: Client, s: &StatusSettings) -> Writer {
        let client_for_gateway = client.clone();
        Writer {
            controller_name: s
                .gateway
                .as_ref()
                .map(|g| g.controller_name.clone())
                .unwrap_or_default(),
            recorder: Recorder {
                client: client.clone(),
                instance: s.identity.clone(),
            },
            params: PatchParams {
                field_manager: Some(
                    format!("portcullis/{}", s.identity)
                        .chars()
                        .take(128)
                        .collect(),
                ),
                ..PatchParams::default()
            },
            client,
            publish: s.publish.clone(),
            ingress_status: HashMap::new(),
            policy_status: HashMap::new(),
            transitions: Transitions::default(),
            published: HashSet::new(),
            gateway: s.gateway.as_ref().map(|g| {
                crate::kube::gateway::status::GatewayWriter::new(
                    client_for_gateway.clone(),
                    s.namespace.clone(),
                    g.clone(),
                )
            }),
        }
    }

    /// Forgets what was written, so the next write repeats everything.
    fn forget(&mut self) {
        self.ingress_status.clear();
        self.policy_status.clear();
        if let Some(g) = &mut self.gateway {
            g.forget();
        }
    }

    async fn write(&mut self, t: &Translation) {
        let addresses = self.addresses().await;
        let mut still_noted = HashSet::new();
        // Ingresses are independent: write their status and Events a few at a time.
        let mut jobs = Vec::new();
        for report in &t.ingresses {
            let status = addresses
                .as_ref()
                .map(|lb| json!({"status": {"loadBalancer": {"ingress": lb}}}))
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
                jobs.push((report.key.clone(), status, fresh));
            }
        }
        // Each job owns what it uses, so the stream of futures borrows nothing.
        let shared = Arc::new((
            self.client.clone(),
            self.params.clone(),
            self.recorder.clone(),
        ));
        let done: Vec<_> = futures_util::stream::iter(jobs)
            .map(|(key, status, notes)| {
                let shared = shared.clone();
                async move {
                let (client, params, recorder) = &*shared;
                let api: Api<Ingress> = Api::namespaced(client.clone(), &key.namespace);
                let written = match status {
                    Some(status) => match api
                        .patch_status(&key.name, params, &Patch::Merge(&status))
                        .await
                    {
                        Ok(_) => Some(status),
                        Err(e) => {
                            tracing::warn!(ingress = %key, error = %e,
                                "cannot write Ingress status");
                            None
                        }
                    },
                    None => None,
                };
                let mut published = Vec::new();
                if !notes.is_empty()
                    && let Ok(Some(obj)) = api.get_opt(&key.name).await
                {
                    let reference =
                        object_reference(&obj.metadata, "networking.k8s.io/v1", "Ingress");
                    for note in notes {
                        if note.type_ == NoteType::Warning {
                            tracing::warn!(ingress = %key, reason = note.reason, "{}", note.message);
                        }
                        publish(recorder, note.type_, note.reason, &note.message, &reference).await;
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
                self.ingress_status.insert(key, status);
            }
            self.published.extend(published);
        }
        for report in &t.policies {
            let api: Api<IdentityPolicy> =
                Api::namespaced(self.client.clone(), &report.key.namespace);
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
            let ancestors: Vec<Value> = report
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
                .collect();
            let mut status = json!({"status": {
                "observedGeneration": report.generation,
                "attachedIngresses": report.attached_ingresses,
                "conditions": conditions,
            }});
            if self.gateway.is_some() {
                status["status"]["attachedRoutes"] = json!(report.attached_routes);
                status["status"]["ancestors"] = json!(ancestors);
            }
            if self.policy_status.get(&report.key) != Some(&status) {
                match api
                    .patch_status(&report.key.name, &self.params, &Patch::Merge(&status))
                    .await
                {
                    Ok(obj) => {
                        self.policy_status.insert(report.key.clone(), status);
                        let reference = object_reference(
                            &obj.metadata,
                            "portcullis.dev/v1alpha1",
                            "IdentityPolicy",
                        );
                        for state in [&report.accepted, &report.resolved_refs] {
                            if state.status {
                                continue;
                            }
                            let id = (report.key.clone(), state.reason, state.message.clone());
                            still_noted.insert(id.clone());
                            if self.published.insert(id) {
                                tracing::warn!(policy = %report.key, reason = state.reason, "{}", state.message);
                                self.event(
                                    NoteType::Warning,
                                    state.reason,
                                    &state.message,
                                    &reference,
                                )
                                .await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(policy = %report.key, error = %e,
                        "cannot write IdentityPolicy status"),
                }
            } else {
                for state in [&report.accepted, &report.resolved_refs] {
                    if !state.status {
                        still_noted.insert((
                            report.key.clone(),
                            state.reason,
                            state.message.clone(),
                        ));
                    }
                }
            }
        }
        // A problem that went away and comes back is reported again.
        self.published.retain(|id| still_noted.contains(id));
        if let Some(g) = &mut self.gateway {
            g.write(
                &t.gateway,
                &mut self.transitions,
                &self.recorder,
                &self.params,
            )
            .await;
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

    async fn event(
        &self,
        type_: NoteType,
        reason: &str,
        message: &str,
        reference: &ObjectReference,
    ) {
        publish(&self.recorder, type_, reason, message, reference).await;
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
        json!({
            "type": type_,
            "status": status,
            "reason": state.reason,
            "message": state.message,
            "observedGeneration": generation,
            "lastTransitionTime": since.to_string(),
        })
    }
}

/// Writes Events (events.k8s.io/v1). Not kube's `Recorder`: it folds Events of one
/// object and reason into a series that keeps the first note, so a second reason of
/// the same kind (two hosts another namespace owns) would never be told. The writer
/// publishes each note once while it stands, so no series is needed.
#[derive(Clone)]
pub(crate) struct Recorder {
    client: Client,
    /// This replica's identity (`reportingInstance`).
    instance: String,
}

/// `reportingController` of our Events.
const REPORTING_CONTROLLER: &str = "portcullis";

pub(crate) async fn publish(
    recorder: &Recorder,
    type_: NoteType,
    reason: &str,
    message: &str,
    reference: &ObjectReference,
) {
    let now = jiff::Timestamp::now();
    let namespace = reference
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let event = KubeEvent {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                reference.name.as_deref().unwrap_or("portcullis"),
                now.as_nanosecond()
            )),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        action: Some("Reconcile".into()),
        reason: Some(reason.to_string()),
        note: Some(message.chars().take(1000).collect()),
        type_: Some(type_.as_str().into()),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(recorder.instance.chars().take(128).collect()),
        ..KubeEvent::default()
    };
    let events: Api<KubeEvent> = Api::namespaced(recorder.client.clone(), &namespace);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::warn!(error = %e, reason, "cannot publish an Event");
    }
}

pub(crate) fn object_reference(
    meta: &ObjectMeta,
    api_version: &str,
    kind: &str,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    }
}
