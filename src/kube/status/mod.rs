//! Status and Events, written only by the elected leader (a `coordination.k8s.io`
//! Lease, kept by [`super::lease`] in its own task); every replica serves traffic.
//! Ingress `status.loadBalancer` shows the published address; IdentityPolicy `status`
//! carries `Accepted` and `ResolvedRefs`; every rejection and warning becomes an Event
//! on its object.
//!
//! [`writer`] writes status with server-side apply (Ingress and IdentityPolicy status in
//! its own modules); [`events`] publishes the Events; [`transitions`] keeps each
//! condition's `lastTransitionTime`.
//! Writes read the current claim before each API call and never hold up the Lease's
//! renewal (docs/design.md, "Leader election").

mod events;
mod transitions;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use super::index::Translation;
use super::lease::{self, LeaseSettings};
use writer::Writer;

pub(crate) use events::{Recorder, object_reference};
pub(crate) use transitions::Transitions;

pub use super::lease::Leadership;

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

/// Runs leader election (its own task) and, while leading, writes status and Events
/// for each new translation. On shutdown stops writing first, then releases the Lease
/// so another replica takes over at once.
pub async fn run(
    client: Client,
    settings: StatusSettings,
    mut translations: watch::Receiver<Option<Arc<Translation>>>,
    leadership: Leadership,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut claims, elector) = lease::spawn(
        client.clone(),
        LeaseSettings {
            namespace: settings.namespace.clone(),
            name: settings.lease_name.clone(),
            identity: settings.identity.clone(),
        },
        leadership,
    );
    let mut writer = Writer::new(client, &settings, claims.clone());
    let mut resync =
        tokio::time::interval_at(tokio::time::Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
    let mut leading = false;
    loop {
        let write = tokio::select! {
            changed = claims.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = claims.borrow_and_update().is_current_for(&settings.identity);
                let became = now && !leading;
                leading = now;
                if became {
                    // A new term: write everything, taking over fields a previous
                    // leader applied.
                    writer.new_term();
                }
                became || (leading && writer.behind())
            }
            changed = translations.changed() => {
                if changed.is_err() {
                    break;
                }
                translations.borrow_and_update();
                claims.borrow().is_current_for(&settings.identity)
            }
            _ = resync.tick() => {
                let now = claims.borrow().is_current_for(&settings.identity);
                if now {
                    writer.forget();
                }
                now
            }
            _ = crate::server::stopped(&mut shutdown) => break,
        };
        let current = translations.borrow().clone();
        if write && let Some(t) = current {
            tokio::select! {
                _ = writer.write(&t) => {}
                _ = crate::server::stopped(&mut shutdown) => break,
            }
        }
    }
    elector.stop().await;
}
