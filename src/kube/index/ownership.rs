//! Who owns a host, and so who may route on it (docs/annotations.md, "Host ownership").
//!
//! - With an admin map ([`HostOwnership::Assigned`]), the namespaces whose patterns
//!   cover a host own it, and no one else: an exact pattern beats a wildcard one.
//! - Without one ([`HostOwnership::FirstCome`]), the namespace of the oldest Ingress
//!   naming a host owns it (creation time, then namespace/name). An exact host under a
//!   wildcard someone already owns belongs to the wildcard's owner; an exact host owned
//!   before the wildcard stays with its owner. A rejected Ingress keeps its hosts.
//! - [`HostOwnership::Shared`]: every namespace may route on every host (ingress-nginx's
//!   merge behaviour; single-team clusters).
//!
//! The owner may delegate: the annotation `allow-paths-from-namespaces` on an Ingress
//! of the owner's that names the host (or a wildcard covering it) lets the listed
//! namespaces add paths there. Delegates own nothing: their TLS Secrets are not served
//! for the host and their routes lose to the owner's on an identical path.
//!
//! Pure, and free of Kubernetes types: namespaces are strings, hosts [`HostMatch`].

use std::collections::{BTreeSet, HashMap};

use crate::routes::HostMatch;
use crate::routes::gateway::{HostStandings, NameStanding};

use super::report::reasons;

/// Who decides which namespace owns a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostOwnership {
    /// The oldest Ingress naming a host gives it to its namespace.
    #[default]
    FirstCome,
    /// The cluster admin's map (`--host-owner NAMESPACE=PATTERN`) is the only authority.
    Assigned(Vec<HostGrant>),
    /// Any namespace may add paths to any host.
    Shared,
}

/// One entry of the admin's map: `namespace` owns the hosts `pattern` covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    pub namespace: String,
    /// An exact host, or `*.parent` (every name one label below `parent`, and Ingress
    /// hosts `*.parent`).
    pub pattern: HostMatch,
}

impl HostGrant {
    /// Reads `NAMESPACE=PATTERN`, as the `--host-owner` flag takes it.
    pub fn parse(text: &str) -> Result<HostGrant, String> {
        let (ns, pattern) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected NAMESPACE=HOST or NAMESPACE=*.DOMAIN"))?;
        let ns = ns.trim();
        if ns.is_empty() {
            return Err(format!("`{text}`: the namespace is empty"));
        }
        match HostMatch::parse(pattern) {
            Ok(HostMatch::Any) => Err(format!(
                "`{text}`: a pattern must name hosts (`*` alone would give every host away)"
            )),
            Ok(pattern) => Ok(HostGrant {
                namespace: ns.to_string(),
                pattern,
            }),
            Err(why) => Err(format!("`{text}`: {why}")),
        }
    }
}

/// Hosts no Ingress may name: the sign-in host, and the config file's route hosts (the
/// operator's; an exact host under an operator's wildcard too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    /// The `authenticate_service_url` host, lower-case.
    pub sign_in: Vec<String>,
    /// Hosts of the config file's routes.
    pub operator: Vec<HostMatch>,
}

impl Reserved {
    /// Whether no route may name `host` ([`Reserved::why`] without the words).
    fn covers(&self, host: &HostMatch) -> bool {
        self.why(host).is_some()
    }

    /// Why no Ingress may name `host`, if so.
    fn why(&self, host: &HostMatch) -> Option<String> {
        let operator = |m: &HostMatch| self.operator.contains(m);
        match host {
            HostMatch::Exact(h) if self.sign_in.contains(h) => Some(format!(
                "host {h} is Portcullis's sign-in host (authenticate_service_url); no Ingress may route on it"
            )),
            HostMatch::Exact(h)
                if operator(host)
                    || parent(h).is_some_and(|p| operator(&HostMatch::Wildcard(p.into()))) =>
            {
                Some(format!(
                    "host {h} is served by routes of Portcullis's config file (the operator's); no Ingress may route on it"
                ))
            }
            HostMatch::Wildcard(p) if operator(host) => Some(format!(
                "host *.{p} is served by routes of Portcullis's config file (the operator's); no Ingress may route on it"
            )),
            _ => None,
        }
    }
}

/// What one Ingress says about hosts: its namespace, the hosts of its rules, and whom
/// it delegates them to.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub namespace: &'a str,
    pub hosts: Vec<HostMatch>,
    /// Namespaces `allow-paths-from-namespaces` lists (only from a valid Ingress).
    pub delegates: &'a [String],
}

/// May this namespace route on this host?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Owner,
    /// An owner (`owner`) let this namespace add paths.
    Delegated {
        owner: String,
    },
    Refused {
        reason: &'static str,
        message: String,
    },
}

/// Owners of every host the Ingresses (or the admin's map) name, and delegations.
#[derive(Debug, Default)]
pub struct Owners {
    mode: Mode,
    /// Exact host → owning namespaces (one in first-come mode).
    exact: HashMap<String, BTreeSet<String>>,
    /// Wildcard parent (`corp.example` for `*.corp.example`) → owning namespaces.
    wildcard: HashMap<String, BTreeSet<String>>,
    /// Host pattern as the owner named it → (owner, delegate) pairs.
    delegations: HashMap<HostMatch, Vec<(String, String)>>,
    /// Hosts no Ingress may name.
    reserved: Reserved,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    FirstCome,
    Assigned,
    Shared,
}

impl Owners {
    /// Decides ownership from `claims`, which must be in age order (oldest first).
    pub fn decide(ownership: &HostOwnership, reserved: &Reserved, claims: &[Claim<'_>]) -> Owners {
        let mut owners = Owners {
            reserved: reserved.clone(),
            ..Owners::default()
        };
        match ownership {
            HostOwnership::Shared => owners.mode = Mode::Shared,
            HostOwnership::Assigned(grants) => {
                owners.mode = Mode::Assigned;
                for g in grants {
                    let map = match &g.pattern {
                        HostMatch::Exact(h) => owners.exact.entry(h.clone()),
                        HostMatch::Wildcard(p) => owners.wildcard.entry(p.clone()),
                        HostMatch::Any => continue,
                    };
                    map.or_default().insert(g.namespace.clone());
                }
            }
            HostOwnership::FirstCome => {
                for c in claims {
                    for host in &c.hosts {
                        if owners.is_reserved(host) {
                            continue;
                        }
                        match host {
                            HostMatch::Exact(h) if !owners.exact.contains_key(h) => {
                                // Under a wildcard owned already, the name is the
                                // wildcard owner's; else the first to name it owns it.
                                let owner = parent(h)
                                    .and_then(|p| owners.wildcard.get(p))
                                    .cloned()
                                    .unwrap_or_else(|| BTreeSet::from([c.namespace.to_string()]));
                                owners.exact.insert(h.clone(), owner);
                            }
                            HostMatch::Wildcard(p) if !owners.wildcard.contains_key(p) => {
                                owners
                                    .wildcard
                                    .insert(p.clone(), BTreeSet::from([c.namespace.to_string()]));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for c in claims {
            for host in &c.hosts {
                if c.delegates.is_empty() || !owners.owned_by(c.namespace, host) {
                    continue;
                }
                let list = owners.delegations.entry(host.clone()).or_default();
                for d in c.delegates {
                    list.push((c.namespace.to_string(), d.clone()));
                }
            }
        }
        owners
    }

    /// Whether `namespace` may route on `host`, and why not.
    pub fn standing(&self, namespace: &str, host: &HostMatch) -> Standing {
        if let Some(message) = self.reserved.why(host) {
            return Standing::Refused {
                reason: reasons::RESERVED_HOST,
                message,
            };
        }
        if self.mode == Mode::Shared || self.owned_by(namespace, host) {
            return Standing::Owner;
        }
        let owners = self.owners(host);
        if let Some(owner) = self.delegator(namespace, host, owners) {
            return Standing::Delegated { owner };
        }
        let name = describe(host);
        let (reason, message) = match (self.mode, owners) {
            (Mode::Assigned, None) => (
                reasons::HOST_NOT_ASSIGNED,
                format!(
                    "host {name} is not assigned to namespace {namespace}: the cluster admin's host map (--host-owner) gives it to no namespace"
                ),
            ),
            (Mode::Assigned, Some(o)) => (
                reasons::HOST_NOT_ASSIGNED,
                format!(
                    "host {name} is not assigned to namespace {namespace}: the cluster admin's host map (--host-owner) gives it to {}; an owner may list {namespace} in annotation portcullis.dev/allow-paths-from-namespaces",
                    join(o)
                ),
            ),
            (_, Some(o)) => (
                reasons::HOST_OWNED_ELSEWHERE,
                format!(
                    "host {name} belongs to namespace {}, whose Ingress named it first; that namespace may list {namespace} in annotation portcullis.dev/allow-paths-from-namespaces",
                    join(o)
                ),
            ),
            (_, None) => (
                reasons::HOST_OWNED_ELSEWHERE,
                format!("host {name} is not named by any Ingress rule, so no namespace owns it"),
            ),
        };
        Standing::Refused { reason, message }
    }

    /// Whether `namespace` owns `name` (an exact name, e.g. a `spec.tls[].hosts` entry
    /// or a `*.parent` wildcard).
    pub fn owns(&self, namespace: &str, host: &HostMatch) -> bool {
        !self.is_reserved(host) && (self.mode == Mode::Shared || self.owned_by(namespace, host))
    }

    /// The owners of `host`, if anyone owns it.
    pub fn owners(&self, host: &HostMatch) -> Option<&BTreeSet<String>> {
        match host {
            HostMatch::Exact(h) => self
                .exact
                .get(h)
                .or_else(|| parent(h).and_then(|p| self.wildcard.get(p))),
            HostMatch::Wildcard(p) => self.wildcard.get(p),
            HostMatch::Any => None,
        }
    }

    /// Exact hosts of the admin's map: no wildcard or catch-all route may answer them,
    /// even before their owner routes on them.
    pub fn exclusive_hosts(&self) -> Vec<String> {
        if self.mode != Mode::Assigned {
            return Vec::new();
        }
        let mut hosts: Vec<String> = self.exact.keys().cloned().collect();
        hosts.sort();
        hosts
    }

    /// Every name with a standing of its own and who may use it: owned (first-come
    /// claims or the admin's map), delegated by an owner, or reserved (the sign-in host,
    /// the config file's). A name outside these, and not one label below one of their
    /// wildcards, is no one's. With shared hosts, only the reserved names.
    pub fn standings(&self) -> HostStandings {
        let named = |m: &HostMatch| match m {
            HostMatch::Exact(h) => Some((false, h.clone())),
            HostMatch::Wildcard(p) => Some((true, p.clone())),
            HostMatch::Any => None,
        };
        let names: BTreeSet<(bool, String)> = self
            .exact
            .keys()
            .chain(&self.reserved.sign_in)
            .map(|h| (false, h.clone()))
            .chain(self.wildcard.keys().map(|p| (true, p.clone())))
            .chain(self.reserved.operator.iter().filter_map(named))
            .chain(self.delegations.keys().filter_map(named))
            .collect();
        let mut out = HostStandings::default();
        let boxed = |it: &mut dyn Iterator<Item = &String>| -> Box<[Box<str>]> {
            let set: BTreeSet<&String> = it.collect();
            set.into_iter().map(|s| s.as_str().into()).collect()
        };
        for (parent, name) in names {
            let host = if parent {
                HostMatch::Wildcard(name.clone())
            } else {
                HostMatch::Exact(name.clone())
            };
            let reserved = self.reserved.covers(&host);
            if self.mode == Mode::Shared && !reserved {
                continue;
            }
            let owners = self.owners(&host);
            let standing = NameStanding {
                reserved,
                owners: boxed(&mut owners.into_iter().flatten()),
                delegates: boxed(&mut self.delegations_of(&host, owners).map(|(_, d)| d)),
            };
            out.insert(&name, parent, standing);
        }
        out
    }

    fn owned_by(&self, namespace: &str, host: &HostMatch) -> bool {
        self.owners(host).is_some_and(|o| o.contains(namespace))
    }

    /// An owner of `host` that delegated it (or a wildcard it owns `host` through) to
    /// `namespace`.
    fn delegator(
        &self,
        namespace: &str,
        host: &HostMatch,
        owners: Option<&BTreeSet<String>>,
    ) -> Option<String> {
        self.delegations_of(host, owners)
            .find(|(_, delegate)| *delegate == namespace)
            .map(|(owner, _)| owner.clone())
    }

    /// `(owner, delegate)` pairs that let a delegate use `host`: delegations of the
    /// host, or of the wildcard it is owned through, by one of its `owners`.
    fn delegations_of<'s>(
        &'s self,
        host: &HostMatch,
        owners: Option<&'s BTreeSet<String>>,
    ) -> impl Iterator<Item = (&'s String, &'s String)> + 's {
        let through_wildcard = match host {
            HostMatch::Exact(h) => parent(h).map(|p| HostMatch::Wildcard(p.to_string())),
            _ => None,
        };
        [Some(host.clone()), through_wildcard]
            .into_iter()
            .flatten()
            .filter_map(|h| self.delegations.get(&h))
            .flatten()
            .filter(move |(owner, _)| owners.is_some_and(|o| o.contains(owner)))
            .map(|(owner, delegate)| (owner, delegate))
    }

    fn is_reserved(&self, host: &HostMatch) -> bool {
        self.reserved.covers(host)
    }
}

/// `a.b.c` → `b.c`: the wildcard parent a name falls under.
pub(crate) fn parent(host: &str) -> Option<&str> {
    host.split_once('.')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

fn describe(host: &HostMatch) -> String {
    match host {
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Wildcard(p) => format!("*.{p}"),
        HostMatch::Any => "(any host)".into(),
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn h(s: &str) -> HostMatch {
        HostMatch::parse(s).unwrap()
    }

    pub(crate) fn claim<'a>(ns: &'a str, hosts: &[&str], delegates: &'a [String]) -> Claim<'a> {
        Claim {
            namespace: ns,
            hosts: hosts.iter().map(|s| h(s)).collect(),
            delegates,
        }
    }

    /// `Owner`, `Delegated` or the refusal's reason, for compact tables.
    fn word(s: &Standing) -> &'static str {
        match s {
            Standing::Owner => "owner",
            Standing::Delegated { .. } => "delegated",
            Standing::Refused { reason, .. } => reason,
        }
    }

    #[test]
    fn first_come_with_wildcards_and_delegation() {
        let none: &[String] = &[];
        let to_b = ["b".to_string()];
        // Age order: ops first, then b's wildcard, then c, then b again.
        let claims = [
            claim("ops", &["grafana.corp.example"], &to_b),
            claim("b", &["*.corp.example"], none),
            claim("c", &["new.corp.example", "c.example"], none),
            claim("b", &["grafana.corp.example", "b.corp.example"], none),
            claim("c", &["*.apps.example"], &to_b),
        ];
        let reserved = Reserved {
            sign_in: vec!["auth.corp.example".into()],
            operator: vec![h("admin.corp.example"), h("*.ops.example")],
        };
        let o = Owners::decide(&HostOwnership::FirstCome, &reserved, &claims);
        let cases = [
            // The first to name a host owns it; a rejected-later Ingress would too.
            ("ops", "grafana.corp.example", "owner"),
            // ops delegated grafana to b, and only to b.
            ("b", "grafana.corp.example", "delegated"),
            ("c", "grafana.corp.example", reasons::HOST_OWNED_ELSEWHERE),
            // b's wildcard was there before c named a host under it.
            ("c", "new.corp.example", reasons::HOST_OWNED_ELSEWHERE),
            ("b", "new.corp.example", "owner"),
            ("b", "*.corp.example", "owner"),
            ("ops", "*.corp.example", reasons::HOST_OWNED_ELSEWHERE),
            // An exact host older than the wildcard stays with its owner.
            ("b", "b.corp.example", "owner"),
            ("c", "c.example", "owner"),
            // A wildcard's delegation covers the names its owner holds through it.
            ("b", "x.apps.example", "delegated"),
            ("b", "*.apps.example", "delegated"),
            ("ops", "x.apps.example", reasons::HOST_OWNED_ELSEWHERE),
            // The sign-in host is no one's; a wildcard over it is fine.
            ("ops", "auth.corp.example", reasons::RESERVED_HOST),
            // The config file's hosts are the operator's, exact names under its
            // wildcards included.
            ("ops", "admin.corp.example", reasons::RESERVED_HOST),
            ("ops", "*.ops.example", reasons::RESERVED_HOST),
            ("ops", "x.ops.example", reasons::RESERVED_HOST),
            ("ops", "x.y.ops.example", reasons::HOST_OWNED_ELSEWHERE),
            // A host no one named yet: not owned (the caller claims it in age order).
            ("ops", "free.example", reasons::HOST_OWNED_ELSEWHERE),
            ("b", "*.free.example", reasons::HOST_OWNED_ELSEWHERE),
        ];
        for (ns, host, want) in cases {
            assert_eq!(word(&o.standing(ns, &h(host))), want, "{ns} {host}");
        }
        assert!(!o.owns("b", &h("grafana.corp.example")));
        assert!(o.owns("ops", &h("grafana.corp.example")));
        assert!(o.exclusive_hosts().is_empty());
    }

    #[test]
    fn the_admin_map_is_the_only_authority() {
        let grants: Vec<HostGrant> = [
            "ops=grafana.corp.example",
            "b=*.corp.example",
            "a=shared.example",
            "b=shared.example",
        ]
        .iter()
        .map(|g| HostGrant::parse(g).unwrap())
        .collect();
        let to_c = ["c".to_string()];
        let claims = [
            // b came first with a host the map gives to ops: the map wins.
            claim("b", &["grafana.corp.example"], &[]),
            claim("ops", &["grafana.corp.example"], &to_c),
        ];
        let o = Owners::decide(
            &HostOwnership::Assigned(grants),
            &Reserved::default(),
            &claims,
        );
        let cases = [
            ("ops", "grafana.corp.example", "owner"),
            ("b", "grafana.corp.example", reasons::HOST_NOT_ASSIGNED),
            ("c", "grafana.corp.example", "delegated"),
            ("b", "x.corp.example", "owner"),
            ("b", "*.corp.example", "owner"),
            ("ops", "x.corp.example", reasons::HOST_NOT_ASSIGNED),
            // Two levels down is not covered by a one-label wildcard.
            ("b", "a.x.corp.example", reasons::HOST_NOT_ASSIGNED),
            ("a", "shared.example", "owner"),
            ("b", "shared.example", "owner"),
            ("a", "unlisted.example", reasons::HOST_NOT_ASSIGNED),
        ];
        for (ns, host, want) in cases {
            assert_eq!(word(&o.standing(ns, &h(host))), want, "{ns} {host}");
        }
        assert_eq!(
            o.exclusive_hosts(),
            ["grafana.corp.example", "shared.example"]
        );
    }

    #[test]
    fn shared_hosts_let_everyone_in_but_the_sign_in_host_stays_reserved() {
        let claims = [claim("ops", &["grafana.corp.example"], &[])];
        let reserved = Reserved {
            sign_in: vec!["auth.corp.example".into()],
            operator: vec![],
        };
        let o = Owners::decide(&HostOwnership::Shared, &reserved, &claims);
        assert_eq!(word(&o.standing("b", &h("grafana.corp.example"))), "owner");
        assert_eq!(
            word(&o.standing("b", &h("auth.corp.example"))),
            reasons::RESERVED_HOST
        );
    }

    #[test]
    fn grants_parse() {
        let g = HostGrant::parse("ops=*.Ops.Example").unwrap();
        assert_eq!(
            (g.namespace.as_str(), g.pattern),
            ("ops", h("*.ops.example"))
        );
        for bad in ["ops", "=a.example", "ops=*", "ops=a..b", "ops="] {
            assert!(HostGrant::parse(bad).is_err(), "{bad}");
        }
    }
}
