//! Events (events.k8s.io/v1) about our objects. Not kube's `Recorder`: it folds Events
//! of one object and reason into a series that keeps the first note, so a second reason
//! of the same kind (two hosts another namespace owns) would never be told. The writer
//! publishes each note once while it stands, so no series is needed.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::kube::index::NoteType;

/// `reportingController` of our Events.
const REPORTING_CONTROLLER: &str = "portcullis";

/// Publishes Events as one replica.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub client: Client,
    /// This replica's identity (`reportingInstance`).
    pub instance: String,
}

impl Recorder {
    pub async fn publish(
        &self,
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
            reporting_instance: Some(self.instance.chars().take(128).collect()),
            ..KubeEvent::default()
        };
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(error = %e, reason, "cannot publish an Event");
        }
    }
}

/// What an Event's `regarding` says of the object `meta` describes.
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
