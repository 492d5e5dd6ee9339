//! The controller loop: one watcher per kind feeds the index; a debounced translation
//! is applied to the live table (every replica), and handed to the status writer
//! (which acts only while this replica leads).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::crd::IdentityPolicy;
use super::index::{Index, Relist, Settings as IndexSettings, Translation};

/// Quiet time after the last change before translating (bursts coalesce).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest a steady stream of changes can hold a translation back.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// What the controller watches.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub index: IndexSettings,
}

/// Where translations go: the data plane (every replica) and the status writer.
pub trait Sink: Send + Sync + 'static {
    /// A new translation; `synced` once every kind has been listed fully.
    fn apply(&self, translation: &Translation, synced: bool);
}

/// One event from any of the watchers. Short-lived and moved once, so the size
/// difference between kinds costs nothing worth a box per event.
#[allow(clippy::large_enum_variant)]
enum Change {
    Ingress(Result<Event<Ingress>, watcher::Error>),
    IngressClass(Result<Event<IngressClass>, watcher::Error>),
    Service(Result<Event<Service>, watcher::Error>),
    EndpointSlice(Result<Event<EndpointSlice>, watcher::Error>),
    Secret(Result<Event<Secret>, watcher::Error>),
    IdentityPolicy(Result<Event<IdentityPolicy>, watcher::Error>),
}

type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send>>;

fn watch<K>(api: Api<K>, wrap: fn(Result<Event<K>, watcher::Error>) -> Change) -> ChangeStream
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .map(wrap)
        .boxed()
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Per-kind watch health, so an outage is logged once, not once per retry.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn error(&mut self, kind: &str, e: &watcher::Error) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(kind, error = %e,
                "watch failed; serving the last good configuration and retrying with backoff");
        } else {
            tracing::debug!(kind, error = %e, "watch still failing");
        }
    }

    fn ok(&mut self, kind: &str) {
        if self.failing {
            self.failing = false;
            tracing::info!(kind, "watch recovered");
        }
    }
}

/// Watches the cluster until `shutdown` turns true, feeding `sink`.
pub async fn run(
    client: Client,
    settings: ControllerSettings,
    sink: Arc<dyn Sink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ns = settings.index.namespace.clone();
    let ns = ns.as_deref();
    let streams: Vec<ChangeStream> = vec![
        watch(api::<Ingress>(&client, ns), Change::Ingress),
        watch(
            Api::<IngressClass>::all(client.clone()),
            Change::IngressClass,
        ),
        watch(api::<Service>(&client, ns), Change::Service),
        watch(api::<EndpointSlice>(&client, ns), Change::EndpointSlice),
        watch(api::<Secret>(&client, ns), Change::Secret),
        watch(api::<IdentityPolicy>(&client, ns), Change::IdentityPolicy),
    ];
    let mut changes = futures_util::stream::select_all(streams);
    let mut index = Index::new(settings.index.clone());
    let mut relists = Relists::default();
    let mut health: [Health; 6] = Default::default();
    let mut dirty_since: Option<tokio::time::Instant> = None;
    let mut last_change = tokio::time::Instant::now();
    let mut was_synced = false;
    tracing::info!(
        class = %settings.index.class_name,
        namespace = ns.unwrap_or("(all)"),
        "watching Ingresses, IngressClasses, Services, EndpointSlices, Secrets and IdentityPolicies"
    );
    loop {
        let deadline = dirty_since.map(|since| (last_change + DEBOUNCE).min(since + MAX_DELAY));
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else { break };
                if relists.handle(&mut index, change, &mut health) {
                    let now = tokio::time::Instant::now();
                    dirty_since.get_or_insert(now);
                    last_change = now;
                }
                // The first full list of every kind is applied at once: readiness waits on it.
                if relists.synced() && !was_synced {
                    dirty_since = Some(tokio::time::Instant::now() - MAX_DELAY);
                }
            }
            _ = sleep_until(deadline) => {
                dirty_since = None;
                let synced = relists.synced();
                if !synced {
                    continue;
                }
                let started = std::time::Instant::now();
                let translation = index.translate();
                tracing::debug!(
                    routes = translation.model.routes.len(),
                    ingresses = translation.ingresses.len(),
                    took_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "translated the cluster's objects"
                );
                if !was_synced {
                    tracing::info!(
                        ingresses = translation.ingresses.len(),
                        policies = translation.policies.len(),
                        "first full sync done"
                    );
                }
                was_synced = true;
                sink.apply(&translation, true);
            }
            _ = crate::proxy::server::stopped(&mut shutdown) => break,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One re-list tracker per kind.
#[derive(Default)]
struct Relists {
    ingress: Relist<Ingress>,
    ingress_class: Relist<IngressClass>,
    service: Relist<Service>,
    endpoint_slice: Relist<EndpointSlice>,
    secret: Relist<Secret>,
    identity_policy: Relist<IdentityPolicy>,
}

impl Relists {
    fn synced(&self) -> bool {
        self.ingress.synced()
            && self.ingress_class.synced()
            && self.service.synced()
            && self.endpoint_slice.synced()
            && self.secret.synced()
            && self.identity_policy.synced()
    }

    /// Applies one change; `true` when the index changed.
    fn handle(&mut self, index: &mut Index, change: Change, health: &mut [Health; 6]) -> bool {
        macro_rules! step {
            ($relist:expr, $i:expr, $kind:expr, $result:expr) => {
                match $result {
                    Ok(event) => {
                        health[$i].ok($kind);
                        let handled = $relist.handle(index, event);
                        for m in &handled.malformed {
                            tracing::warn!(kind = $kind, error = %m, "skipping a malformed object");
                        }
                        handled.changed
                    }
                    Err(e) => {
                        health[$i].error($kind, &e);
                        false
                    }
                }
            };
        }
        match change {
            Change::Ingress(r) => step!(self.ingress, 0, "Ingress", r),
            Change::IngressClass(r) => step!(self.ingress_class, 1, "IngressClass", r),
            Change::Service(r) => step!(self.service, 2, "Service", r),
            Change::EndpointSlice(r) => step!(self.endpoint_slice, 3, "EndpointSlice", r),
            Change::Secret(r) => step!(self.secret, 4, "Secret", r),
            Change::IdentityPolicy(r) => step!(self.identity_policy, 5, "IdentityPolicy", r),
        }
    }
}
