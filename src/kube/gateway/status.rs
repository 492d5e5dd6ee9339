//! Gateway API status, written by the leader: GatewayClass (`Accepted`,
//! `supportedFeatures`), Gateway (conditions, listeners, addresses), HTTPRoute
//! (`status.parents`, only the entries of our controller: other controllers' are read
//! fresh and kept, and the write carries the `resourceVersion` it read), Events for
//! problems, and the Services that give Gateways their addresses (server-side apply in
//! the controller's namespace; the ones of Gateways gone are deleted).

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::api::{Gateway, GatewayClass, HTTPRoute};
use super::{GROUP, conditions};
use crate::kube::index::gateway::ports::{
    CONTROLLER_ANNOTATION, GATEWAY_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL,
};
use crate::kube::index::gateway::{GatewaySettings, GatewayTranslation};
use crate::kube::index::{NoteType, ObjectKey};
use crate::kube::status::{Recorder, Transitions, object_reference};

/// Field manager of provisioned Services (server-side apply).
const SERVICE_MANAGER: &str = "portcullis-gateway";

/// What was written, so only changes are written again.
pub struct GatewayWriter {
    client: Client,
    /// Where provisioned Services live.
    namespace: String,
    settings: GatewaySettings,
    classes: HashMap<String, Value>,
    gateways: HashMap<ObjectKey, Value>,
    routes: HashMap<ObjectKey, Value>,
    services: HashMap<String, Value>,
    /// Notes already published as Events: (kind, object, reason, message).
    published: HashSet<(&'static str, ObjectKey, &'static str, String)>,
    /// The labelled Services were listed since leadership began (orphans deleted).
    swept: bool,
}

impl GatewayWriter {
    pub fn new(client: Client, namespace: String, settings: GatewaySettings) -> GatewayWriter {
        GatewayWriter {
            client,
            namespace,
            settings,
            classes: HashMap::new(),
            gateways: HashMap::new(),
            routes: HashMap::new(),
            services: HashMap::new(),
            published: HashSet::new(),
            swept: false,
        }
    }

    /// Forgets what was written: the next write repeats everything.
    pub fn forget(&mut self) {
        self.classes.clear();
        self.gateways.clear();
        self.routes.clear();
        self.services.clear();
        self.swept = false;
    }

    pub(crate) async fn write(
        &mut self,
        t: &GatewayTranslation,
        transitions: &mut Transitions,
        recorder: &Recorder,
        params: &PatchParams,
    ) {
        self.write_services(t).await;
        self.write_classes(t, transitions, params).await;
        self.write_gateways(t, transitions, params, recorder).await;
        self.write_routes(t, transitions, params, recorder).await;
    }

    async fn write_services(&mut self, t: &GatewayTranslation) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let apply = PatchParams::apply(SERVICE_MANAGER).force();
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for s in &t.services {
            wanted.insert(s.name.clone());
            let labels = std::collections::BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )]);
            let annotations = std::collections::BTreeMap::from([
                (GATEWAY_ANNOTATION.to_string(), s.gateway.to_string()),
                (
                    CONTROLLER_ANNOTATION.to_string(),
                    self.settings.controller_name.clone(),
                ),
            ]);
            let ports: Vec<Value> = s
                .ports
                .iter()
                .map(|(port, local)| {
                    json!({"name": format!("p{port}"), "protocol": "TCP",
                           "port": port, "targetPort": local})
                })
                .collect();
            let mut spec = json!({"type": self.settings.service_type, "ports": ports});
            if !self.settings.pod_selector.is_empty() {
                spec["selector"] = json!(self.settings.pod_selector);
            }
            let body = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": s.name, "namespace": self.namespace,
                             "labels": labels, "annotations": annotations},
                "spec": spec,
            });
            if self.services.get(&s.name) == Some(&body) {
                continue;
            }
            match api.patch(&s.name, &apply, &Patch::Apply(&body)).await {
                Ok(_) => {
                    self.services.insert(s.name.clone(), body);
                }
                Err(e) => tracing::warn!(service = %s.name, gateway = %s.gateway, error = %e,
                    "cannot provision the Service of a Gateway"),
            }
        }
        // Services of Gateways gone: those this writer made, and on a new leadership
        // every labelled one the cluster has that this controller made (another
        // release's, in the same namespace, are its own to keep; one made before the
        // annotation existed is left alone too).
        let mut gone: Vec<String> = self
            .services
            .keys()
            .filter(|n| !wanted.contains(*n))
            .cloned()
            .collect();
        if !self.swept {
            let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    self.swept = true;
                    let ours = |s: &Service| {
                        s.metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(CONTROLLER_ANNOTATION))
                            .is_some_and(|c| *c == self.settings.controller_name)
                    };
                    gone.extend(
                        list.items
                            .into_iter()
                            .filter(ours)
                            .filter_map(|s| s.metadata.name)
                            .filter(|n| !wanted.contains(n)),
                    );
                }
                Err(e) => tracing::warn!(error = %e, "cannot list provisioned Gateway Services"),
            }
        }
        gone.sort();
        gone.dedup();
        for name in gone {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(service = %name, "deleted the Service of a Gateway that is gone");
                    self.services.remove(&name);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.services.remove(&name);
                }
                Err(e) => tracing::warn!(service = %name, error = %e,
                    "cannot delete the Service of a Gateway that is gone"),
            }
        }
    }

    async fn write_classes(
        &mut self,
        t: &GatewayTranslation,
        transitions: &mut Transitions,
        params: &PatchParams,
    ) {
        let api: Api<GatewayClass> = Api::all(self.client.clone());
        for c in &t.classes {
            let key = ObjectKey::new("", c.name.as_str());
            let features: Vec<Value> = c
                .supported_features
                .iter()
                .map(|f| json!({"name": f}))
                .collect();
            let status = json!({"status": {
                "conditions": [transitions.condition(&key, "", conditions::ACCEPTED, &c.accepted, c.generation)],
                "supportedFeatures": features,
            }});
            if self.classes.get(&c.name) == Some(&status) {
                continue;
            }
            match api
                .patch_status(&c.name, params, &Patch::Merge(&status))
                .await
            {
                Ok(_) => {
                    self.classes.insert(c.name.clone(), status);
                }
                Err(e) => {
                    tracing::warn!(class = %c.name, error = %e, "cannot write GatewayClass status")
                }
            }
        }
    }

    async fn write_gateways(
        &mut self,
        t: &GatewayTranslation,
        transitions: &mut Transitions,
        params: &PatchParams,
        recorder: &Recorder,
    ) {
        for g in &t.gateways {
            let conds: Vec<Value> = g
                .conditions
                .iter()
                .map(|(type_, state)| transitions.condition(&g.key, "", type_, state, g.generation))
                .collect();
            let listeners: Vec<Value> = g
                .listeners
                .iter()
                .map(|l| {
                    let scope = format!("listener/{}", l.name);
                    json!({
                        "name": l.name,
                        "attachedRoutes": l.attached_routes,
                        "supportedKinds": l.supported_kinds.iter()
                            .map(|(group, kind)| json!({"group": group, "kind": kind}))
                            .collect::<Vec<_>>(),
                        "conditions": l.conditions.iter()
                            .map(|(type_, state)| transitions.condition(&g.key, &scope, type_, state, g.generation))
                            .collect::<Vec<_>>(),
                    })
                })
                .collect();
            let addresses: Vec<Value> = g
                .addresses
                .iter()
                .map(|(type_, value)| json!({"type": type_, "value": value}))
                .collect();
            let status = json!({"status": {
                "conditions": conds,
                "listeners": listeners,
                "addresses": addresses,
            }});
            // The same status for a Gateway made again under its name is still unwritten.
            let written = json!({"uid": g.uid, "status": status});
            if self.gateways.get(&g.key) == Some(&written) {
                continue;
            }
            let api: Api<Gateway> = Api::namespaced(self.client.clone(), &g.key.namespace);
            match api
                .patch_status(&g.key.name, params, &Patch::Merge(&status))
                .await
            {
                Ok(obj) => {
                    self.gateways.insert(g.key.clone(), written);
                    let reference =
                        object_reference(&obj.metadata, &format!("{GROUP}/v1"), "Gateway");
                    for n in &g.notes {
                        let id = ("Gateway", g.key.clone(), n.reason, n.message.clone());
                        if self.published.insert(id) {
                            if n.type_ == NoteType::Warning {
                                tracing::warn!(gateway = %g.key, reason = n.reason, "{}", n.message);
                            }
                            recorder
                                .publish(n.type_, n.reason, &n.message, &reference)
                                .await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(gateway = %g.key, error = %e, "cannot write Gateway status")
                }
            }
        }
        let live: HashSet<&ObjectKey> = t.gateways.iter().map(|g| &g.key).collect();
        self.gateways.retain(|k, _| live.contains(k));
    }

    async fn write_routes(
        &mut self,
        t: &GatewayTranslation,
        transitions: &mut Transitions,
        params: &PatchParams,
        recorder: &Recorder,
    ) {
        let controller = self.settings.controller_name.clone();
        let mut ours: HashMap<ObjectKey, Value> = HashMap::new();
        for r in &t.routes {
            let parents: Vec<Value> = r
                .parents
                .iter()
                .map(|p| {
                    let scope = format!(
                        "parent/{}/{}/{}/{}",
                        p.parent_ref.namespace.as_deref().unwrap_or(""),
                        p.parent_ref.name,
                        p.parent_ref.section_name.as_deref().unwrap_or(""),
                        p.parent_ref.port.unwrap_or(0)
                    );
                    json!({
                        "parentRef": p.parent_ref,
                        "controllerName": controller,
                        "conditions": p.conditions.iter()
                            .map(|(type_, state)| transitions.condition(&r.key, &scope, type_, state, r.generation))
                            .collect::<Vec<_>>(),
                    })
                })
                .collect();
            // With the uid: a route made again under its name is still unwritten.
            ours.insert(
                r.key.clone(),
                json!({"uid": r.uid, "parents": Value::Array(parents)}),
            );
        }
        // Routes we wrote for before and no longer parent: our entries go.
        for k in self.routes.keys() {
            ours.entry(k.clone())
                .or_insert_with(|| json!({"uid": null, "parents": []}));
        }
        let mut written = Vec::new();
        for (key, parents) in &ours {
            if self.routes.get(key) == Some(parents) {
                continue;
            }
            let api: Api<HTTPRoute> = Api::namespaced(self.client.clone(), &key.namespace);
            // Read, merge, write with the version read; again if someone wrote between.
            for _attempt in 0..3 {
                let current = match api.get_opt(&key.name).await {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        written.push((key.clone(), None));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(route = %key, error = %e, "cannot read HTTPRoute status");
                        break;
                    }
                };
                // Other controllers' parents stay as they are, in front.
                let mut list: Vec<Value> = current
                    .status
                    .iter()
                    .flat_map(|s| s.parents.iter())
                    .filter(|p| p.controller_name != controller)
                    .filter_map(|p| serde_json::to_value(p).ok())
                    .collect();
                list.extend(parents["parents"].as_array().cloned().unwrap_or_default());
                let patch = json!({
                    "metadata": {"resourceVersion": current.metadata.resource_version},
                    "status": {"parents": list},
                });
                match api
                    .patch_status(&key.name, params, &Patch::Merge(&patch))
                    .await
                {
                    Ok(obj) => {
                        written.push((key.clone(), Some(parents.clone())));
                        if let Some(r) = t.routes.iter().find(|r| &r.key == key) {
                            let reference = object_reference(
                                &obj.metadata,
                                &format!("{GROUP}/v1"),
                                "HTTPRoute",
                            );
                            for n in &r.notes {
                                let id = ("HTTPRoute", key.clone(), n.reason, n.message.clone());
                                if self.published.insert(id) {
                                    if n.type_ == NoteType::Warning {
                                        tracing::warn!(route = %key, reason = n.reason, "{}", n.message);
                                    }
                                    recorder
                                        .publish(n.type_, n.reason, &n.message, &reference)
                                        .await;
                                }
                            }
                        }
                        break;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        tracing::debug!(route = %key, "HTTPRoute status changed while writing; again");
                    }
                    Err(e) => {
                        tracing::warn!(route = %key, error = %e, "cannot write HTTPRoute status");
                        break;
                    }
                }
            }
        }
        for (key, value) in written {
            match value {
                Some(v)
                    if ours.get(&key).is_some_and(|p| {
                        p["parents"].as_array().is_some_and(|a| !a.is_empty())
                    }) =>
                {
                    self.routes.insert(key, v);
                }
                _ => {
                    self.routes.remove(&key);
                }
            }
        }
        // A problem that went away and comes back is reported again.
        let noted: HashSet<(&'static str, ObjectKey, &'static str, String)> = t
            .routes
            .iter()
            .flat_map(|r| {
                r.notes
                    .iter()
                    .map(|n| ("HTTPRoute", r.key.clone(), n.reason, n.message.clone()))
            })
            .chain(t.gateways.iter().flat_map(|g| {
                g.notes
                    .iter()
                    .map(|n| ("Gateway", g.key.clone(), n.reason, n.message.clone()))
            }))
            .collect();
        self.published.retain(|id| noted.contains(id));
    }
}
