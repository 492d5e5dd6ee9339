//! Writes Ingress and IdentityPolicy status with server-side apply, as this replica's
//! field manager (`portcullis/<identity>`), and the Events of each translation: the
//! [`Writer`], what it remembers between translations, and the apply itself; each
//! kind's status is in [`ingress`] and [`policy`].
//!
//! Each object's first apply of a term is forced, taking over the fields a previous
//! leader (or an older Portcullis's merge patches) set; later applies are not, and a
//! conflict they meet (someone else set a field we own) is logged and applied over.
//! Conditions are a list map keyed by `type` in the CRD, so an apply merges ours by
//! type. Before each API call the writer reads the current [`Claim`]: it writes only
//! while this replica holds the Lease, and what it skips is written on the next claim.

mod ingress;
mod policy;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

use super::events::Recorder;
use super::transitions::Transitions;
use super::{Publish, StatusSettings};
use crate::kube::index::{ObjectKey, Translation};
use crate::kube::lease::Claim;

/// A note published as an Event: (object, reason, message).
type NoteId = (ObjectKey, &'static str, String);

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
    /// Notes already published as Events.
    published: HashSet<NoteId>,
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
