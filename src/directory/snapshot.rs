//! The directory as of one sync: an immutable [`Snapshot`] that the proxy reads without
//! locks, and the mutable [`Draft`] a sync builds it from (a full sync from scratch, an
//! incremental one from a copy of the live snapshot).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;

use crate::policy::Identity;

/// An Okta user status. Only `ACTIVE` counts as active: a suspended, locked-out,
/// deprovisioned (or any other) account loses access at the next sync.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Staged,
    Provisioned,
    Active,
    Recovery,
    PasswordExpired,
    LockedOut,
    Suspended,
    Deprovisioned,
    /// A status this version does not know; treated as not active.
    Other(String),
}

impl UserStatus {
    pub fn parse(s: &str) -> UserStatus {
        match s {
            "STAGED" => UserStatus::Staged,
            "PROVISIONED" => UserStatus::Provisioned,
            "ACTIVE" => UserStatus::Active,
            "RECOVERY" => UserStatus::Recovery,
            "PASSWORD_EXPIRED" => UserStatus::PasswordExpired,
            "LOCKED_OUT" => UserStatus::LockedOut,
            "SUSPENDED" => UserStatus::Suspended,
            "DEPROVISIONED" => UserStatus::Deprovisioned,
            other => UserStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            UserStatus::Staged => "STAGED",
            UserStatus::Provisioned => "PROVISIONED",
            UserStatus::Active => "ACTIVE",
            UserStatus::Recovery => "RECOVERY",
            UserStatus::PasswordExpired => "PASSWORD_EXPIRED",
            UserStatus::LockedOut => "LOCKED_OUT",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::Deprovisioned => "DEPROVISIONED",
            UserStatus::Other(s) => s,
        }
    }

    pub fn is_active(&self) -> bool {
        *self == UserStatus::Active
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the directory says about a signed-in identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Active: the identity's groups now come from the directory.
    Active,
    /// No full sync has completed yet: nothing is known (fail closed).
    NotSynced,
    /// Neither the subject nor the email is in the directory.
    NotFound,
    /// In the directory, with a status other than ACTIVE.
    NotActive(UserStatus),
}

impl Verdict {
    pub fn is_active(&self) -> bool {
        *self == Verdict::Active
    }

    /// Why access is denied, for the deny page and the log; `None` when active.
    pub fn deny_reason(&self) -> Option<String> {
        match self {
            Verdict::Active => None,
            Verdict::NotSynced => {
                Some("the user directory has not been loaded yet; try again shortly".into())
            }
            Verdict::NotFound => {
                Some("your account is not active in the directory (it was not found)".into())
            }
            Verdict::NotActive(status) => Some(format!(
                "your account is not active in the directory (status {status})"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRecord {
    pub status: UserStatus,
    pub login: String,
    pub email: String,
}

#[derive(Debug, Clone)]
struct User {
    record: UserRecord,
    /// Group ids, sorted.
    groups: Vec<Arc<str>>,
}

/// The directory as of one sync. Cheap to share (`Arc`), never mutated.
#[derive(Debug, Clone)]
pub struct Snapshot {
    users: HashMap<Arc<str>, User>,
    /// Group id → name.
    groups: HashMap<Arc<str>, Arc<str>>,
    /// Lower-cased login → user id (logins are unique in Okta).
    by_login: HashMap<String, Arc<str>>,
    /// Lower-cased email → user id; `None` when several users share the email, which
    /// then identifies no one.
    by_email: HashMap<String, Option<Arc<str>>>,
    memberships: usize,
    synced_at: Timestamp,
}

/// One user of a [`Snapshot`].
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    id: &'a str,
    user: &'a User,
    snapshot: &'a Snapshot,
}

impl<'a> UserView<'a> {
    /// The Okta user id (the OIDC `sub` when Okta is the identity provider).
    pub fn id(&self) -> &'a str {
        self.id
    }

    pub fn login(&self) -> &'a str {
        &self.user.record.login
    }

    pub fn email(&self) -> &'a str {
        &self.user.record.email
    }

    pub fn status(&self) -> &'a UserStatus {
        &self.user.record.status
    }

    pub fn is_active(&self) -> bool {
        self.status().is_active()
    }

    /// (group id, group name) for each group the user is a member of.
    pub fn groups(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let groups = &self.snapshot.groups;
        self.user
            .groups
            .iter()
            .filter_map(move |id| groups.get(id).map(|name| (&**id, &**name)))
    }

    /// Every group name and group id, what the policy `groups` criterion matches
    /// (docs/policy.md).
    pub fn group_names_and_ids(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.groups().flat_map(|(id, name)| [name, id])
    }
}

impl Snapshot {
    /// The user the session names: by Okta id (`sub`), else by login or email
    /// (case-insensitive) — for identity providers whose `sub` is not the Okta id.
    pub fn lookup(&self, sub: &str, email: &str) -> Option<UserView<'_>> {
        let id = if let Some((id, _)) = self.users.get_key_value(sub) {
            id
        } else {
            let email = email.trim().to_ascii_lowercase();
            if email.is_empty() {
                return None;
            }
            match self.by_login.get(&email) {
                Some(id) => id,
                None => self.by_email.get(&email)?.as_ref()?,
            }
        };
        let user = self.users.get(id)?;
        Some(UserView {
            id,
            user,
            snapshot: self,
        })
    }

    /// Checks `identity` against the directory. When it is active, its groups are
    /// replaced with the directory's group names and ids; otherwise it is unchanged and
    /// the verdict says why access must be denied.
    pub fn apply(&self, identity: &mut Identity) -> Verdict {
        let Some(user) = self.lookup(&identity.user, &identity.email) else {
            return Verdict::NotFound;
        };
        if !user.is_active() {
            return Verdict::NotActive(user.status().clone());
        }
        identity.groups = user.group_names_and_ids().map(str::to_string).collect();
        Verdict::Active
    }

    /// A group's name by id.
    pub fn group_name(&self, id: &str) -> Option<&str> {
        self.groups.get(id).map(|n| &**n)
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn membership_count(&self) -> usize {
        self.memberships
    }

    /// When the sync that produced this snapshot finished.
    pub fn synced_at(&self) -> Timestamp {
        self.synced_at
    }

    /// A mutable copy, for an incremental sync to patch.
    pub(crate) fn to_draft(&self) -> Draft {
        let mut members: HashMap<Arc<str>, HashSet<Arc<str>>> = HashMap::new();
        for (id, user) in &self.users {
            for g in &user.groups {
                members.entry(g.clone()).or_default().insert(id.clone());
            }
        }
        Draft {
            users: self
                .users
                .iter()
                .map(|(id, u)| (id.clone(), u.record.clone()))
                .collect(),
            groups: self.groups.clone(),
            members,
        }
    }
}

/// A directory being built or patched.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    users: HashMap<Arc<str>, UserRecord>,
    groups: HashMap<Arc<str>, Arc<str>>,
    /// Group id → member user ids.
    members: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

impl Draft {
    /// Adds or replaces a user; returns its shared id.
    pub fn upsert_user(&mut self, id: &str, record: UserRecord) -> Arc<str> {
        match self.users.get_key_value(id) {
            Some((key, _)) => {
                let key = key.clone();
                self.users.insert(key.clone(), record);
                key
            }
            None => {
                let key: Arc<str> = Arc::from(id);
                self.users.insert(key.clone(), record);
                key
            }
        }
    }

    /// Adds or renames a group.
    pub fn upsert_group(&mut self, id: &str, name: &str) {
        match self.groups.get_mut(id) {
            Some(n) if **n == *name => {}
            Some(n) => *n = Arc::from(name),
            None => {
                self.groups.insert(Arc::from(id), Arc::from(name));
            }
        }
    }

    /// Removes a group and its memberships.
    pub fn remove_group(&mut self, id: &str) {
        self.groups.remove(id);
        self.members.remove(id);
    }

    /// Replaces a group's members (ids of users already in the draft).
    pub fn set_members(&mut self, group: &str, members: HashSet<Arc<str>>) {
        let key = match self.groups.get_key_value(group) {
            Some((k, _)) => k.clone(),
            None => Arc::from(group),
        };
        self.members.insert(key, members);
    }

    /// The immutable snapshot, with its lookup indexes.
    pub fn freeze(self, synced_at: Timestamp) -> Snapshot {
        let mut user_groups: HashMap<Arc<str>, Vec<Arc<str>>> = HashMap::new();
        let mut memberships = 0;
        for (group, members) in &self.members {
            if !self.groups.contains_key(group) {
                continue;
            }
            for user in members {
                if self.users.contains_key(user) {
                    user_groups
                        .entry(user.clone())
                        .or_default()
                        .push(group.clone());
                    memberships += 1;
                }
            }
        }
        let mut by_login = HashMap::with_capacity(self.users.len());
        let mut by_email: HashMap<String, Option<Arc<str>>> =
            HashMap::with_capacity(self.users.len());
        for (id, record) in &self.users {
            if !record.login.is_empty() {
                by_login.insert(record.login.to_ascii_lowercase(), id.clone());
            }
            if !record.email.is_empty() {
                by_email
                    .entry(record.email.to_ascii_lowercase())
                    .and_modify(|existing| {
                        if existing.as_ref() != Some(id) {
                            *existing = None;
                        }
                    })
                    .or_insert_with(|| Some(id.clone()));
            }
        }
        let users = self
            .users
            .into_iter()
            .map(|(id, record)| {
                let mut groups = user_groups.remove(&id).unwrap_or_default();
                groups.sort();
                (id, User { record, groups })
            })
            .collect();
        Snapshot {
            users,
            groups: self.groups,
            by_login,
            by_email,
            memberships,
            synced_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, login: &str, email: &str) -> UserRecord {
        UserRecord {
            status: UserStatus::parse(status),
            login: login.into(),
            email: email.into(),
        }
    }

    fn sample() -> Snapshot {
        let mut d = Draft::default();
        let alice = d.upsert_user(
            "00ualice",
            record("ACTIVE", "alice@example.com", "Alice@Example.com"),
        );
        let bob = d.upsert_user("00ubob", record("SUSPENDED", "bob", "bob@example.com"));
        let carol = d.upsert_user("00ucarol", record("ACTIVE", "carol", "shared@example.com"));
        let dave = d.upsert_user("00udave", record("ACTIVE", "dave", "shared@example.com"));
        d.upsert_group("00gadmins", "admins");
        d.upsert_group("00geveryone", "Everyone");
        d.set_members("00gadmins", [alice.clone()].into());
        d.set_members(
            "00geveryone",
            [alice, bob, carol, dave, Arc::from("00ugone")].into(),
        );
        // Members of a group that is not in the directory are ignored.
        d.set_members("00gunknown", [Arc::from("00ualice")].into());
        d.freeze(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn lookups() {
        let s = sample();
        // (sub, email, found id, groups)
        let cases: &[(&str, &str, Option<&str>, &[&str])] = &[
            (
                "00ualice",
                "",
                Some("00ualice"),
                &["admins", "00gadmins", "Everyone", "00geveryone"],
            ),
            // The id wins over the email.
            (
                "00ualice",
                "bob@example.com",
                Some("00ualice"),
                &["admins", "00gadmins", "Everyone", "00geveryone"],
            ),
            // Not an Okta id: by login, then email, case-insensitive.
            (
                "other-sub",
                "ALICE@example.com",
                Some("00ualice"),
                &["admins", "00gadmins", "Everyone", "00geveryone"],
            ),
            (
                "other-sub",
                "bob@EXAMPLE.com",
                Some("00ubob"),
                &["Everyone", "00geveryone"],
            ),
            (
                "other-sub",
                "BOB",
                Some("00ubob"),
                &["Everyone", "00geveryone"],
            ),
            // A shared email names no one; a login still does.
            ("other-sub", "shared@example.com", None, &[]),
            (
                "other-sub",
                "carol",
                Some("00ucarol"),
                &["Everyone", "00geveryone"],
            ),
            ("other-sub", "", None, &[]),
            ("00ugone", "", None, &[]),
        ];
        for (sub, email, id, groups) in cases {
            let found = s.lookup(sub, email);
            assert_eq!(found.map(|u| u.id()), *id, "{sub} {email}");
            if let Some(u) = found {
                assert_eq!(
                    u.group_names_and_ids().collect::<Vec<_>>(),
                    *groups,
                    "{sub}"
                );
            }
        }
        assert_eq!(s.user_count(), 4);
        assert_eq!(s.group_count(), 2);
        assert_eq!(s.membership_count(), 5);
        assert_eq!(s.group_name("00gadmins"), Some("admins"));
    }

    #[test]
    fn verdicts() {
        let s = sample();
        let identity = |user: &str, email: &str| Identity {
            user: user.into(),
            email: email.into(),
            groups: vec!["from-token".into()],
            ..Identity::default()
        };
        let cases = [
            (
                "00ualice",
                "",
                Verdict::Active,
                vec!["admins", "00gadmins", "Everyone", "00geveryone"],
            ),
            (
                "00ubob",
                "",
                Verdict::NotActive(UserStatus::Suspended),
                vec!["from-token"],
            ),
            (
                "nobody",
                "nobody@example.com",
                Verdict::NotFound,
                vec!["from-token"],
            ),
        ];
        for (user, email, verdict, groups) in cases {
            let mut id = identity(user, email);
            assert_eq!(s.apply(&mut id), verdict, "{user}");
            assert_eq!(id.groups, groups, "{user}");
            assert_eq!(verdict.deny_reason().is_none(), verdict.is_active());
        }
        assert!(
            Verdict::NotActive(UserStatus::Deprovisioned)
                .deny_reason()
                .unwrap()
                .contains("your account is not active in the directory")
        );
    }

    #[test]
    fn statuses() {
        for s in [
            "STAGED",
            "PROVISIONED",
            "ACTIVE",
            "RECOVERY",
            "PASSWORD_EXPIRED",
            "LOCKED_OUT",
            "SUSPENDED",
            "DEPROVISIONED",
            "SOMETHING_NEW",
        ] {
            let status = UserStatus::parse(s);
            assert_eq!(status.as_str(), s);
            assert_eq!(status.is_active(), s == "ACTIVE");
        }
    }

    #[test]
    fn draft_round_trip_and_patch() {
        let s = sample();
        let mut d = s.to_draft();
        // Alice leaves admins; bob is deprovisioned; admins is renamed.
        d.set_members("00gadmins", HashSet::new());
        d.upsert_user("00ubob", record("DEPROVISIONED", "bob", "bob@example.com"));
        d.upsert_group("00gadmins", "administrators");
        d.upsert_group("00gtemp", "temp");
        d.set_members("00gtemp", [Arc::from("00ualice")].into());
        d.remove_group("00gtemp");
        let p = d.freeze(Timestamp::UNIX_EPOCH);
        let alice = p.lookup("00ualice", "").unwrap();
        assert_eq!(
            alice.group_names_and_ids().collect::<Vec<_>>(),
            ["Everyone", "00geveryone"]
        );
        assert_eq!(
            *p.lookup("00ubob", "").unwrap().status(),
            UserStatus::Deprovisioned
        );
        assert_eq!(p.group_name("00gadmins"), Some("administrators"));
        assert_eq!(p.group_name("00gtemp"), None);
        assert_eq!(p.membership_count(), 4);
        // The original is untouched.
        assert_eq!(s.lookup("00ualice", "").unwrap().groups().count(), 2);
    }
}
