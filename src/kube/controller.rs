//! The controller loop: one watcher per kind (per kind and namespace when watching a
//! namespace list; IngressClasses always cluster-wide) feeds the one index; a debounced
//! translation is applied to the live table (every replica), and handed to the status
//! writer (which acts only while this replica leads).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::crd::IdentityPolicy;
use super::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use super::index::{Index, Indexed, Relist, Settings as IndexSettings, Translation};

/// Quiet time after the last change before translating (bursts coalesce).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest a steady stream of changes can hold a translation back.
const MAX_DELAY: Duration = Duration::from_millis(500);
/// How logs name the scope of a cluster-wide watcher.
const ALL_NAMESPACES: &str = "(all)";

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

/// One event from any of the watchers, with the watcher's position among those of its
/// kind. Short-lived and moved once, so the size difference between kinds costs nothing
/// worth a box per event.
#[allow(clippy::large_enum_variant)]
enum Change {
    Ingress(usize, Result<Event<Ingress>, watcher::Error>),
    IngressClass(usize, Result<Event<IngressClass>, watcher::Error>),
    Service(usize, Result<Event<Service>, watcher::Error>),
    EndpointSlice(usize, Result<Event<EndpointSlice>, watcher::Error>),
    Secret(usize, Result<Event<Secret>, watcher::Error>),
    IdentityPolicy(usize, Result<Event<IdentityPolicy>, watcher::Error>),
    GatewayClass(usize, Result<Event<GatewayClass>, watcher::Error>),
    Gateway(usize, Result<Event<Gateway>, watcher::Error>),
    HTTPRoute(usize, Result<Event<HTTPRoute>, watcher::Error>),
    ReferenceGrant(usize, Result<Event<ReferenceGrant>, watcher::Error>),
    Namespace(usize, Result<Event<Namespace>, watcher::Error>),
    ConfigMap(usize, Result<Event<ConfigMap>, watcher::Error>),
}

type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send>>;

/// What wraps one kind's watcher events into a [`Change`].
type Wrap<K> = fn(usize, Result<Event<K>, watcher::Error>) -> Change;

fn watch<K>(api: Api<K>, position: usize, wrap: Wrap<K>) -> ChangeStream
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .map(move |result| wrap(position, result))
        .boxed()
}

/// Per-watcher health, so an outage is logged once, not once per retry.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn error(&mut self, kind: &str, namespace: &str, e: &watcher::Error) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(kind, namespace, error = %e,
                "watch failed; serving the last good configuration and retrying with backoff");
        } else {
            tracing::debug!(kind, namespace, error = %e, "watch still failing");
        }
    }

    fn ok(&mut self, kind: &str, namespace: &str) {
        if self.failing {
            self.failing = false;
            tracing::info!(kind, namespace, "watch recovered");
        }
    }
}

// === impl Watched ===

/// One watcher's bookkeeping: its re-list tracker (scoped to its namespace, if any) and
/// its health.
struct Watched<K> {
    relist: Relist<K>,
    health: Health,
}

impl<K: Indexed> Watched<K> {
    fn new(namespace: Option<&str>) -> Self {
        Watched {
            relist: namespace.map_or_else(Relist::new, Relist::scoped),
            health: Health::default(),
        }
    }

    /// Applies one event; `true` when the index changed.
    fn handle(&mut self, index: &mut Index, result: Result<Event<K>, watcher::Error>) -> bool {
        let namespace = self.relist.scope().unwrap_or(ALL_NAMESPACES);
        match result {
            Ok(event) => {
                self.health.ok(K::KIND, namespace);
                let handled = self.relist.handle(index, event);
                for m in &handled.malformed {
                    tracing::warn!(kind = K::KIND, error = %m, "skipping a malformed object");
                }
                handled.changed
            }
            Err(e) => {
                self.health.error(K::KIND, namespace, &e);
                false
            }
        }
    }
}

/// Starts the watchers of a namespaced kind: one cluster-wide with no namespace list,
/// else one per namespace (RBAC may grant nothing cluster-wide).
fn watch_namespaced<K>(
    client: &Client,
    namespaces: &[String],
    wrap: Wrap<K>,
    streams: &mut Vec<ChangeStream>,
) -> Vec<Watched<K>>
where
    K: Indexed + Resource<Scope = NamespaceResourceScope>,
    K: Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    };
    scopes
        .into_iter()
        .enumerate()
        .map(|(position, scope)| {
            let api = match scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            streams.push(watch(api, position, wrap));
            Watched::new(scope)
        })
        .collect()
}

/// Watches the cluster until `shutdown` turns true, feeding `sink`.
pub async fn run(
    client: Client,
    settings: ControllerSettings,
    sink: Arc<dyn Sink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut namespaces = settings.index.namespaces.clone();
    namespaces.sort();
    namespaces.dedup();
    let mut streams: Vec<ChangeStream> = Vec::new();
    let mut watchers = Watchers {
        ingress: watch_namespaced(&client, &namespaces, Change::Ingress, &mut streams),
        // Cluster-scoped: one watcher, whatever the namespace list.
        ingress_class: {
            streams.push(watch(Api::all(client.clone()), 0, Change::IngressClass));
            vec![Watched::new(None)]
        },
        service: watch_namespaced(&client, &namespaces, Change::Service, &mut streams),
        endpoint_slice: watch_namespaced(&client, &namespaces, Change::EndpointSlice, &mut streams),
        secret: watch_namespaced(&client, &namespaces, Change::Secret, &mut streams),
        identity_policy: watch_namespaced(
            &client,
            &namespaces,
            Change::IdentityPolicy,
            &mut streams,
        ),
        ..Watchers::default()
    };
    if settings.index.gateway.is_some() {
        watchers.watch_gateway_api(&client, &namespaces, &settings.index, &mut streams);
    }
    let mut changes = futures_util::stream::select_all(streams);
    let mut index = Index::new(settings.index.clone());
    let mut dirty_since: Option<tokio::time::Instant> = None;
    let mut last_change = tokio::time::Instant::now();
    let mut was_synced = false;
    let watched = if namespaces.is_empty() {
        ALL_NAMESPACES.to_string()
    } else {
        namespaces.join(",")
    };
    tracing::info!(
        class = %settings.index.class_name,
        namespaces = %watched,
        "watching Ingresses, IngressClasses, Services, EndpointSlices, Secrets and IdentityPolicies"
    );
    loop {
        let deadline = dirty_since.map(|since| (last_change + DEBOUNCE).min(since + MAX_DELAY));
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else { break };
                if watchers.handle(&mut index, change) {
                    let now = tokio::time::Instant::now();
                    dirty_since.get_or_insert(now);
                    last_change = now;
                }
                // The first full list of every watcher is applied at once: readiness waits
                // on it.
                if watchers.synced() && !was_synced {
                    dirty_since = Some(tokio::time::Instant::now() - MAX_DELAY);
                }
            }
            _ = sleep_until(deadline) => {
                dirty_since = None;
                let synced = watchers.synced();
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
            _ = crate::server::stopped(&mut shutdown) => break,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Every watcher's bookkeeping, by kind; positions match the `usize` in [`Change`].
#[derive(Default)]
struct Watchers {
    ingress: Vec<Watched<Ingress>>,
    ingress_class: Vec<Watched<IngressClass>>,
    service: Vec<Watched<Service>>,
    endpoint_slice: Vec<Watched<EndpointSlice>>,
    secret: Vec<Watched<Secret>>,
    identity_policy: Vec<Watched<IdentityPolicy>>,
    gateway_class: Vec<Watched<GatewayClass>>,
    gateway: Vec<Watched<Gateway>>,
    http_route: Vec<Watched<HTTPRoute>>,
    reference_grant: Vec<Watched<ReferenceGrant>>,
    namespace: Vec<Watched<Namespace>>,
    config_map: Vec<Watched<ConfigMap>>,
}

impl Watchers {
    /// Whether every watcher has completed its first full list.
    fn synced(&self) -> bool {
        fn all<K: Indexed>(watched: &[Watched<K>]) -> bool {
            watched.iter().all(|w| w.relist.synced())
        }
        all(&self.ingress)
            && all(&self.ingress_class)
            && all(&self.service)
            && all(&self.endpoint_slice)
            && all(&self.secret)
            && all(&self.identity_policy)
            && all(&self.gateway_class)
            && all(&self.gateway)
            && all(&self.http_route)
            && all(&self.reference_grant)
            && all(&self.namespace)
            && all(&self.config_map)
    }

    /// Applies one change; `true` when the index changed.
    fn handle(&mut self, index: &mut Index, change: Change) -> bool {
        match change {
            Change::Ingress(i, r) => self.ingress[i].handle(index, r),
            Change::IngressClass(i, r) => self.ingress_class[i].handle(index, r),
            Change::Service(i, r) => self.service[i].handle(index, r),
            Change::EndpointSlice(i, r) => self.endpoint_slice[i].handle(index, r),
            Change::Secret(i, r) => self.secret[i].handle(index, r),
            Change::IdentityPolicy(i, r) => self.identity_policy[i].handle(index, r),
            Change::GatewayClass(i, r) => self.gateway_class[i].handle(index, r),
            Change::Gateway(i, r) => self.gateway[i].handle(index, r),
            Change::HTTPRoute(i, r) => self.http_route[i].handle(index, r),
            Change::ReferenceGrant(i, r) => self.reference_grant[i].handle(index, r),
            Change::Namespace(i, r) => self.namespace[i].handle(index, r),
            Change::ConfigMap(i, r) => self.config_map[i].handle(index, r),
        }
    }
}

impl Watchers {
    /// Gateway API's kinds, Namespaces (for `allowedRoutes` selectors), the controller
    /// namespace's ConfigMaps (GatewayClass parameters) and, when a namespace list
    /// leaves it out, its Services (the ones that give Gateways their addresses).
    fn watch_gateway_api(
        &mut self,
        client: &Client,
        namespaces: &[String],
        settings: &IndexSettings,
        streams: &mut Vec<ChangeStream>,
    ) {
        let own = settings.tenancy.controller_namespace.as_str();
        streams.push(watch(Api::all(client.clone()), 0, Change::GatewayClass));
        self.gateway_class.push(Watched::new(None));
        streams.push(watch(Api::all(client.clone()), 0, Change::Namespace));
        self.namespace.push(Watched::new(None));
        self.gateway = watch_namespaced(client, namespaces, Change::Gateway, streams);
        self.http_route = watch_namespaced(client, namespaces, Change::HTTPRoute, streams);
        self.reference_grant =
            watch_namespaced(client, namespaces, Change::ReferenceGrant, streams);
        streams.push(watch(
            Api::namespaced(client.clone(), own),
            0,
            Change::ConfigMap,
        ));
        self.config_map.push(Watched::new(Some(own)));
        if !namespaces.is_empty() && !namespaces.iter().any(|n| n == own) {
            let position = self.service.len();
            streams.push(watch(
                Api::namespaced(client.clone(), own),
                position,
                Change::Service,
            ));
            self.service.push(Watched::new(Some(own)));
        }
    }
}
