//! Leader election over a `coordination.k8s.io` Lease, as its own task (kubert's
//! `LeaseManager` is the model: a task that keeps the Lease and publishes the current
//! [`Claim`] on a watch channel). It renews on its own timer; the status writer reads
//! the claim before each write, so a slow write never delays a renewal.
//!
//! Expiry is judged the way client-go's leader election does: another replica's claim
//! lapses `leaseDurationSeconds` after the local time at which this replica last *saw
//! the record change*, never from the holder's `renewTime` against our own clock (the
//! clocks of two nodes may disagree; a skewed one would take over early, or never).
//! Our own claim stands until [`RENEW_DEADLINE`] after the start of the last renewal
//! that succeeded: before anyone else can judge it expired. See docs/design.md,
//! "Leader election".

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a Lease is valid without renewal (`leaseDurationSeconds`).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long after the start of its last successful renewal the leader acts as the
/// leader. The margin to [`LEASE_DURATION`] covers writes in flight and clock rates.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the leader renews, and the others read the Lease.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Longest one read-and-write of the Lease may take.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Which Lease, and who this replica is in it.
#[derive(Debug, Clone)]
pub(crate) struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's `holderIdentity` (the pod name).
    pub identity: String,
}

/// Who holds the Lease, as this replica last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The holder, or `None` while nobody holds it.
    pub holder: Option<String>,
    /// Until when (this replica's monotonic clock) the claim stands.
    pub until: Instant,
}

impl Claim {
    fn nobody() -> Claim {
        Claim {
            holder: None,
            until: Instant::now(),
        }
    }

    /// Whether `identity` holds the Lease now, by this replica's clock.
    pub fn is_current_for(&self, identity: &str) -> bool {
        self.holder.as_deref() == Some(identity) && Instant::now() < self.until
    }
}

/// Whether this replica leads, for metrics and logs.
#[derive(Debug, Default, Clone)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Records whether this replica leads; `true` when that changed.
    fn set(&self, leading: bool) -> bool {
        self.0.swap(leading, Ordering::Relaxed) != leading
    }
}

/// The running election; [`Elector::stop`] ends it.
pub(crate) struct Elector {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Elector {
    /// Stops renewing and releases the Lease if this replica holds it, so another
    /// replica takes over at once.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the election task; the receiver always holds the current claim.
pub(crate) fn spawn(
    client: Client,
    settings: LeaseSettings,
    leadership: Leadership,
) -> (watch::Receiver<Claim>, Elector) {
    let (tx, rx) = watch::channel(Claim::nobody());
    let (stop, stopped) = oneshot::channel();
    let leases = Api::namespaced(client, &settings.namespace);
    let task = tokio::spawn(run(leases, settings, tx, leadership, stopped));
    (rx, Elector { stop, task })
}

async fn run(
    leases: Api<Lease>,
    s: LeaseSettings,
    claims: watch::Sender<Claim>,
    leadership: Leadership,
    mut stop: oneshot::Receiver<()>,
) {
    let mut observer = Observer::default();
    let mut tick = tokio::time::interval(RETRY_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        // While leading, wake when the claim lapses without a renewal.
        let lapse = leadership.is_leader().then(|| claims.borrow().until);
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = tick.tick() => {
                let started = Instant::now();
                let attempt = tokio::time::timeout(
                    API_TIMEOUT,
                    attempt(&leases, &s, &mut observer, started),
                );
                match attempt.await {
                    Ok(Ok(Some(claim))) => {
                        if failing {
                            failing = false;
                            tracing::info!("leader election: the Lease can be read and written again");
                        }
                        claims.send_if_modified(|c| {
                            let changed = *c != claim;
                            *c = claim;
                            changed
                        });
                    }
                    // Another replica wrote the Lease between our read and write.
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => warn_once(&mut failing, &e.to_string()),
                    Err(_) => warn_once(&mut failing, "timed out"),
                }
            }
            _ = sleep_until(lapse) => {}
        }
        let leading = claims.borrow().is_current_for(&s.identity);
        if leadership.set(leading) {
            if leading {
                tracing::info!(identity = %s.identity, "became the leader: writing status");
            } else {
                tracing::info!("lost the leadership: no longer writing status");
            }
        }
    }
    if claims.borrow().is_current_for(&s.identity) {
        leadership.set(false);
        match tokio::time::timeout(API_TIMEOUT, release(&leases, &s)).await {
            Ok(Ok(true)) => tracing::info!("released the leader Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the leader Lease"),
            Err(_) => tracing::warn!("cannot release the leader Lease: timed out"),
        }
    }
    claims.send_replace(Claim::nobody());
}

/// Logs an outage once, not once per retry.
fn warn_once(failing: &mut bool, error: &str) {
    if *failing {
        tracing::debug!(
            error,
            "leader election: still cannot read or write the Lease"
        );
    } else {
        *failing = true;
        tracing::warn!(error, "leader election: cannot read or write the Lease");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// A spec naming this replica as a new holder.
fn taken_by(identity: &str, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: Some(now_micro()),
        renew_time: Some(now_micro()),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Reads the Lease and takes, keeps or waits for it. `None`: another replica wrote it
/// first (a conflict); the next attempt reads it again.
async fn attempt(
    leases: &Api<Lease>,
    s: &LeaseSettings,
    observer: &mut Observer,
    started: Instant,
) -> Result<Option<Claim>, kube::Error> {
    let ours = || Claim {
        holder: Some(s.identity.clone()),
        until: started + RENEW_DEADLINE,
    };
    let Some(mut lease) = leases.get_opt(&s.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(taken_by(&s.identity, 0)),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Some(ours())),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let now = Instant::now();
    let changed_at = observer.observe(&spec, now);
    lease.spec = Some(match step(&spec, changed_at, &s.identity, now) {
        Step::Wait { holder, until } => {
            return Ok(Some(Claim {
                holder: Some(holder),
                until,
            }));
        }
        Step::Renew => LeaseSpec {
            renew_time: Some(now_micro()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            ..spec
        },
        Step::Take => taken_by(&s.identity, spec.lease_transitions.unwrap_or(0) + 1),
    });
    // `replace` carries the resourceVersion we read: two replicas cannot both win.
    match leases
        .replace(&s.name, &PostParams::default(), &lease)
        .await
    {
        Ok(written) => {
            observer.observe(&written.spec.unwrap_or_default(), Instant::now());
            Ok(Some(ours()))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Clears the holder if it is still this replica; `true` when it was.
async fn release(leases: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let Some(mut lease) = leases.get_opt(&s.name).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return Ok(false);
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    leases
        .replace(&s.name, &PostParams::default(), &lease)
        .await?;
    Ok(true)
}

// === the expiry rule (pure) ===

/// The Lease record as last read, and the local time at which it last changed.
#[derive(Debug, Default)]
struct Observer {
    last: Option<(LeaseSpec, Instant)>,
}

impl Observer {
    /// Notes the record read at `now`; returns when this replica first saw it as it is.
    fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Instant {
        match &self.last {
            Some((seen, since)) if seen == spec => *since,
            _ => {
                self.last = Some((spec.clone(), now));
                now
            }
        }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// It is ours: renew it.
    Renew,
    /// Nobody holds it, or the holder's claim lapsed: take it.
    Take,
    /// Another replica holds it until `until` (local time).
    Wait { holder: String, until: Instant },
}

/// Decides from the record, the local time it last changed (`changed_at`) and `now`.
/// The holder's `renewTime` is never compared with our clock.
fn step(spec: &LeaseSpec, changed_at: Instant, identity: &str, now: Instant) -> Step {
    match spec.holder_identity.as_deref().filter(|h| !h.is_empty()) {
        None => Step::Take,
        Some(holder) if holder == identity => Step::Renew,
        Some(holder) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|secs| u64::try_from(secs).ok())
                .filter(|secs| *secs > 0)
                .map_or(LEASE_DURATION, Duration::from_secs);
            let until = changed_at + duration;
            if now >= until {
                Step::Take
            } else {
                Step::Wait {
                    holder: holder.to_string(),
                    until,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renewed: jiff::Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_holder_whose_clock_runs_behind_is_not_expired_while_it_renews() {
        let start = Instant::now();
        let mut observer = Observer::default();
        // The holder's clock is an hour behind ours: by its renewTime against our clock
        // the Lease expired long ago. It renews every 2 s, so its record keeps changing.
        let behind = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        for i in 0..30u32 {
            let now = start + Duration::from_secs(2) * i;
            let renewed = behind + jiff::SignedDuration::from_secs(2 * i64::from(i));
            let spec = held_by("other", renewed);
            let changed_at = observer.observe(&spec, now);
            assert_eq!(changed_at, now, "each renewal is a change");
            assert_eq!(
                step(&spec, changed_at, "me", now),
                Step::Wait {
                    holder: "other".into(),
                    until: now + LEASE_DURATION
                },
                "a renewing holder is never taken over (renewal {i})"
            );
        }
    }

    #[test]
    fn a_holder_whose_clock_runs_ahead_expires_when_it_stops_renewing() {
        let start = Instant::now();
        let mut observer = Observer::default();
        // An hour ahead: by its renewTime it would stand for another hour.
        let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let spec = held_by("other", ahead);
        assert_eq!(observer.observe(&spec, start), start);
        // It stops renewing: the record stays as it is.
        let at = |secs| start + Duration::from_secs(secs);
        for secs in [1, 5, 14] {
            let changed_at = observer.observe(&spec, at(secs));
            assert_eq!(changed_at, start, "an unchanged record is not a renewal");
            assert!(matches!(
                step(&spec, changed_at, "me", at(secs)),
                Step::Wait { .. }
            ));
        }
        // 15 s after we last saw it change, whatever its timestamp says.
        let changed_at = observer.observe(&spec, at(15));
        assert_eq!(step(&spec, changed_at, "me", at(15)), Step::Take);
    }

    #[test]
    fn a_replica_that_just_started_waits_a_full_duration() {
        // The holder's renewTime is long past, but this replica only now sees the record:
        // it waits the whole duration from now (the holder may still be renewing).
        let now = Instant::now();
        let old = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
        let spec = held_by("other", old);
        let changed_at = Observer::default().observe(&spec, now);
        assert_eq!(
            step(&spec, changed_at, "me", now),
            Step::Wait {
                holder: "other".into(),
                until: now + LEASE_DURATION
            }
        );
    }

    #[test]
    fn ours_is_renewed_and_a_free_lease_is_taken() {
        let now = Instant::now();
        let spec = held_by("me", jiff::Timestamp::now());
        assert_eq!(step(&spec, now, "me", now), Step::Renew);
        let released = LeaseSpec {
            holder_identity: None,
            ..spec.clone()
        };
        assert_eq!(step(&released, now, "me", now), Step::Take);
        let blank = LeaseSpec {
            holder_identity: Some(String::new()),
            ..spec
        };
        assert_eq!(step(&blank, now, "me", now), Step::Take);
    }

    #[test]
    fn a_claim_is_current_only_for_its_holder_and_until_its_deadline() {
        let claim = Claim {
            holder: Some("me".into()),
            until: Instant::now() + Duration::from_secs(60),
        };
        assert!(claim.is_current_for("me"));
        assert!(!claim.is_current_for("other"));
        let lapsed = Claim {
            until: Instant::now() - Duration::from_millis(1),
            ..claim
        };
        assert!(!lapsed.is_current_for("me"));
        assert!(!Claim::nobody().is_current_for("me"));
    }
}
