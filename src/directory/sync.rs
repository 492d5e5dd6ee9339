//! One sync against Okta. A full sync rebuilds the directory from scratch (so it catches
//! deletions); an incremental sync asks only for what changed since its watermarks and
//! patches a copy of the live snapshot.
//!
//! Okta's change timestamps, and what each query catches:
//! - users `filter=lastUpdated gt W`: profile and status changes — but not users who
//!   became DEPROVISIONED, which Okta leaves out unless the filter names `status`; so a
//!   second query asks for `status eq "DEPROVISIONED" and lastUpdated gt W`.
//! - groups `filter=lastUpdated gt W or lastMembershipUpdated gt W`: renamed groups and
//!   groups whose members changed (a membership change touches only the group's
//!   `lastMembershipUpdated`); their members are then read again in full.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::Error;
use super::okta::{Client, Listing, OktaGroup, OktaUser};
use super::snapshot::{Draft, Snapshot, UserRecord, UserStatus};

/// How far behind the newest change seen the next incremental sync starts, so that
/// changes Okta makes visible late are not skipped.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(60);

/// The newest change time seen (on Okta's clock) for one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark(Option<Timestamp>);

impl Watermark {
    /// Moves forward to `ts` if it is newer; never moves back.
    pub fn observe(&mut self, ts: Option<Timestamp>) {
        if let Some(ts) = ts {
            self.0 = Some(self.0.map_or(ts, |w| w.max(ts)));
        }
    }

    /// Parses an Okta timestamp and observes it; unparsable values are ignored.
    fn observe_str(&mut self, ts: Option<&str>) {
        self.observe(ts.and_then(|s| s.parse().ok()));
    }

    /// Where the next query starts: the watermark minus the overlap (the epoch when
    /// nothing was seen, which asks for everything).
    pub fn since(&self, overlap: Duration) -> Timestamp {
        let Some(w) = self.0 else {
            return Timestamp::UNIX_EPOCH;
        };
        let overlap = jiff::SignedDuration::try_from(overlap).unwrap_or(jiff::SignedDuration::ZERO);
        w.checked_sub(overlap)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .max(Timestamp::UNIX_EPOCH)
    }

    pub fn get(&self) -> Option<Timestamp> {
        self.0
    }
}

/// The watermarks an incremental sync starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    pub users: Watermark,
    pub groups: Watermark,
}

/// A completed sync: the new snapshot and the watermarks to continue from.
pub struct Synced {
    pub snapshot: Snapshot,
    pub marks: Watermarks,
}

/// Reads the whole directory.
pub async fn full(client: &Client) -> Result<Synced, Error> {
    let mut draft = Draft::default();
    let mut marks = Watermarks::default();

    // Groups first: their listing time bounds what the member walk below may miss.
    let groups = client.groups(None).await?;
    observe_listing(&mut marks.groups, &groups);
    let users = client.users(None).await?;
    observe_listing(&mut marks.users, &users);
    // Listing all users leaves DEPROVISIONED users out; ask for them by name so they
    // are reported as such rather than as unknown.
    let deprovisioned = client.users(Some(r#"status eq "DEPROVISIONED""#)).await?;
    observe_listing(&mut marks.users, &deprovisioned);
    for user in users.items.iter().chain(&deprovisioned.items) {
        upsert_user(&mut draft, user);
    }
    for group in &groups.items {
        read_group(client, &mut draft, &mut marks, group).await?;
    }
    Ok(Synced {
        snapshot: draft.freeze(Timestamp::now()),
        marks,
    })
}

/// Applies what changed since `marks` to a copy of `current`.
pub async fn incremental(
    client: &Client,
    current: &Snapshot,
    marks: Watermarks,
    overlap: Duration,
) -> Result<Synced, Error> {
    let mut next = marks;
    let users_since = okta_time(marks.users.since(overlap));
    let groups_since = okta_time(marks.groups.since(overlap));

    let changed = client
        .users(Some(&format!(r#"lastUpdated gt "{users_since}""#)))
        .await?;
    let deprovisioned = client
        .users(Some(&format!(
            r#"status eq "DEPROVISIONED" and lastUpdated gt "{users_since}""#
        )))
        .await?;
    let groups = client
        .groups(Some(&format!(
            r#"lastUpdated gt "{groups_since}" or lastMembershipUpdated gt "{groups_since}""#
        )))
        .await?;
    observe_listing(&mut next.users, &changed);
    observe_listing(&mut next.users, &deprovisioned);
    observe_listing(&mut next.groups, &groups);

    let mut draft = current.to_draft();
    for user in changed.items.iter().chain(&deprovisioned.items) {
        upsert_user(&mut draft, user);
    }
    for group in &groups.items {
        read_group(client, &mut draft, &mut next, group).await?;
    }
    Ok(Synced {
        snapshot: draft.freeze(Timestamp::now()),
        marks: next,
    })
}

/// Adds a group and (re)reads all its members. Member objects are full users of
/// every status, so they also refresh or add the users they describe.
async fn read_group(
    client: &Client,
    draft: &mut Draft,
    marks: &mut Watermarks,
    group: &OktaGroup,
) -> Result<(), Error> {
    draft.upsert_group(&group.id, &group.profile.name);
    marks.groups.observe_str(group.last_updated.as_deref());
    marks
        .groups
        .observe_str(group.last_membership_updated.as_deref());
    let members = match client.members(&group.id).await {
        Ok(m) => m,
        // Deleted between the group listing and now: gone from the directory too.
        Err(Error::Status { status: 404, .. }) => {
            tracing::debug!(group = %group.id, "group deleted during the sync");
            draft.remove_group(&group.id);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let ids: HashSet<Arc<str>> = members
        .items
        .iter()
        .map(|user| upsert_user(draft, user))
        .collect();
    draft.set_members(&group.id, ids);
    Ok(())
}

fn upsert_user(draft: &mut Draft, user: &OktaUser) -> Arc<str> {
    let login = user.profile.login.clone().unwrap_or_default();
    let email = user.profile.email.clone().unwrap_or_else(|| login.clone());
    draft.upsert_user(
        &user.id,
        UserRecord {
            status: UserStatus::parse(&user.status),
            login,
            email,
        },
    )
}

/// The server's clock when a listing began, and every change time in it.
fn observe_listing<T: Changed>(mark: &mut Watermark, listing: &Listing<T>) {
    mark.observe(listing.server_time);
    for item in &listing.items {
        for ts in item.changed() {
            mark.observe_str(ts);
        }
    }
}

trait Changed {
    fn changed(&self) -> [Option<&str>; 2];
}

impl Changed for OktaUser {
    fn changed(&self) -> [Option<&str>; 2] {
        [self.last_updated.as_deref(), None]
    }
}

impl Changed for OktaGroup {
    fn changed(&self) -> [Option<&str>; 2] {
        [
            self.last_updated.as_deref(),
            self.last_membership_updated.as_deref(),
        ]
    }
}

/// Okta's timestamp form: UTC with milliseconds.
pub fn okta_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn watermark_advances() {
        let overlap = Duration::from_secs(60);
        // (observations in order, expected watermark, expected `since`)
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (&[], None, "1970-01-01T00:00:00Z"),
            (
                &["2025-01-01T00:10:00.000Z"],
                Some("2025-01-01T00:10:00Z"),
                "2025-01-01T00:09:00Z",
            ),
            // Takes the newest, whatever the order.
            (
                &[
                    "2025-01-01T00:10:00Z",
                    "2025-03-01T12:00:00.250Z",
                    "2025-02-01T00:00:00Z",
                ],
                Some("2025-03-01T12:00:00.250Z"),
                "2025-03-01T11:59:00.250Z",
            ),
            // Garbage is ignored.
            (
                &["not a time", "2025-01-01T00:10:00Z", ""],
                Some("2025-01-01T00:10:00Z"),
                "2025-01-01T00:09:00Z",
            ),
            // Near the epoch: `since` clamps.
            (
                &["1970-01-01T00:00:30Z"],
                Some("1970-01-01T00:00:30Z"),
                "1970-01-01T00:00:00Z",
            ),
        ];
        for (seen, want, since) in cases {
            let mut w = Watermark::default();
            for s in *seen {
                w.observe_str(Some(s));
            }
            assert_eq!(w.get(), want.map(ts), "{seen:?}");
            assert_eq!(w.since(overlap), ts(since), "{seen:?}");
        }
    }

    #[test]
    fn watermark_never_goes_back() {
        let mut w = Watermark::default();
        w.observe(Some(ts("2025-05-01T00:00:00Z")));
        w.observe(Some(ts("2025-04-01T00:00:00Z")));
        w.observe(None);
        assert_eq!(w.get(), Some(ts("2025-05-01T00:00:00Z")));
        // A later sync with a later server clock advances it even with no changes.
        w.observe(Some(ts("2025-05-01T00:05:00Z")));
        assert_eq!(w.since(Duration::from_secs(60)), ts("2025-05-01T00:04:00Z"));
    }

    #[test]
    fn okta_time_form() {
        assert_eq!(
            okta_time(ts("2025-01-02T03:04:05Z")),
            "2025-01-02T03:04:05.000Z"
        );
        assert_eq!(
            okta_time(ts("2025-01-02T03:04:05.123456Z")),
            "2025-01-02T03:04:05.123Z"
        );
    }
}
