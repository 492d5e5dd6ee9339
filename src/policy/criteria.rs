//! PPL criteria: compiled from `name[/sub-path]: data` and evaluated to a value and the
//! reasons behind it, as Pomerium does. Identity criteria without a signed-in user yield
//! `false` with `user-unauthenticated`, which is what later turns a decision into sign-in.
//! An identity with an empty user ID (a client_credentials token, say) is not a user:
//! every identity criterion but `claim/…` refuses it with its `*-unauthorized` reason,
//! as Pomerium refuses a session without a user ID.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::matchers::{ListMatcher, StringMatcher};
use super::parse::{Loc, describe};
use super::reason::{Reason, Reasons};
use super::time::{DateMatcher, DayOfWeekMatcher, TimeOfDayMatcher};
use super::{Identity, Input, PolicyError};

/// The criterion names this engine knows, for error messages.
pub(crate) const NAMES: &str = "accept, reject, authenticated_user, email, domain, user, groups, claim/<name>, http_method, http_path, source_ip, cors_preflight, date, day_of_week, time_of_day";

/// Pomerium looks a `claim/a/b` up at most this deep (its rego hard-codes 5 segments).
const MAX_CLAIM_DEPTH: usize = 5;

#[derive(Debug, Clone)]
pub(crate) enum Criterion {
    Accept,
    Reject,
    AuthenticatedUser,
    Email(StringMatcher),
    Domain(StringMatcher),
    User(StringMatcher),
    Groups(ListMatcher),
    Claim(Claim),
    HttpMethod(StringMatcher),
    HttpPath(StringMatcher),
    SourceIp(Box<[IpNet]>),
    CorsPreflight,
    Date(DateMatcher),
    DayOfWeek(DayOfWeekMatcher),
    TimeOfDay(TimeOfDayMatcher),
}

#[derive(Debug, Clone)]
pub(crate) struct Claim {
    /// The whole sub-path, tried first as a literal claim name.
    name: Box<str>,
    /// The sub-path split on `/` and `.`, walked through nested objects when the literal
    /// name is absent; empty when there is only one segment.
    segments: Box<[Box<str>]>,
    matcher: ListMatcher,
}

/// A criterion or operator result: Pomerium's `[value, reasons]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub value: bool,
    pub reasons: Reasons,
}

impl Verdict {
    const fn new(value: bool, pass: Reason, fail: Reason) -> Verdict {
        Verdict {
            value,
            reasons: Reasons::one(if value { pass } else { fail }),
        }
    }

    const fn unauthenticated() -> Verdict {
        Verdict {
            value: false,
            reasons: Reasons::one(Reason::UserUnauthenticated),
        }
    }
}

impl Criterion {
    /// `key` is the criterion's key in the document (`email`, `claim/groups`, ...).
    pub(crate) fn compile(key: &str, data: &Value, loc: &Loc) -> Result<Criterion, PolicyError> {
        let (name, sub_path) = match key.split_once('/') {
            Some((name, sub)) => (name, Some(sub)),
            None => (key, None),
        };
        if name == "claim" {
            return Ok(Criterion::Claim(Claim::compile(sub_path, data, loc)?));
        }
        if sub_path.is_some() {
            if !NAMES.split(", ").any(|n| n == name) {
                return Err(unknown(key, loc));
            }
            return Err(loc.error(format!("criterion {name} takes no sub-path")));
        }
        Ok(match name {
            "accept" => unused_data(data, loc, Criterion::Accept)?,
            "reject" => unused_data(data, loc, Criterion::Reject)?,
            "authenticated_user" => unused_data(data, loc, Criterion::AuthenticatedUser)?,
            "cors_preflight" => unused_data(data, loc, Criterion::CorsPreflight)?,
            "email" => Criterion::Email(StringMatcher::compile(data, loc)?),
            "domain" => Criterion::Domain(StringMatcher::compile(data, loc)?),
            "user" => Criterion::User(StringMatcher::compile(data, loc)?),
            "groups" => Criterion::Groups(ListMatcher::compile(data, loc, true)?),
            "http_method" => Criterion::HttpMethod(StringMatcher::compile(data, loc)?),
            "http_path" => Criterion::HttpPath(StringMatcher::compile(data, loc)?),
            "source_ip" => Criterion::SourceIp(compile_source_ip(data, loc)?),
            "date" => Criterion::Date(DateMatcher::compile(data, loc)?),
            "day_of_week" => Criterion::DayOfWeek(DayOfWeekMatcher::compile(data, loc)?),
            "time_of_day" => Criterion::TimeOfDay(TimeOfDayMatcher::compile(data, loc)?),
            _ => return Err(unknown(key, loc)),
        })
    }

    pub(crate) fn evaluate(&self, input: &Input<'_>) -> Verdict {
        use Reason::*;
        let req = &input.request;
        match self {
            Criterion::Accept => Verdict {
                value: true,
                reasons: Reasons::one(Accept),
            },
            Criterion::Reject => Verdict {
                value: false,
                reasons: Reasons::one(Reject),
            },
            Criterion::AuthenticatedUser => with_user(input, UserOk, UserUnauthorized, |_| true),
            Criterion::Email(m) => {
                with_user(input, EmailOk, EmailUnauthorized, |id| m.matches(&id.email))
            }
            Criterion::Domain(m) => with_user(input, DomainOk, DomainUnauthorized, |id| {
                // Pomerium takes the part after the first `@`, up to any second one.
                let domain = id.email.split('@').nth(1);
                domain.is_some_and(|d| m.matches(d))
            }),
            Criterion::User(m) => {
                with_user(input, UserOk, UserUnauthorized, |id| m.matches(&id.user))
            }
            Criterion::Groups(m) => with_user(input, GroupsOk, GroupsUnauthorized, |id| {
                m.matches(&id.groups)
            }),
            // Claims also decide for an identity without a user ID: a client_credentials
            // token is allowed by `claim/cid: <client>` (Pomerium reads the session's claims).
            Criterion::Claim(c) => match input.identity {
                Some(id) => Verdict::new(c.matches(id), ClaimOk, ClaimUnauthorized),
                None => Verdict::unauthenticated(),
            },
            Criterion::HttpMethod(m) => {
                Verdict::new(m.matches(req.method), HttpMethodOk, HttpMethodUnauthorized)
            }
            Criterion::HttpPath(m) => {
                Verdict::new(m.matches(req.path), HttpPathOk, HttpPathUnauthorized)
            }
            Criterion::SourceIp(nets) => {
                let ok = req.source_ip.is_some_and(|ip| {
                    let ip: IpAddr = ip.to_canonical();
                    nets.iter().any(|n| n.contains(&ip))
                });
                Verdict::new(ok, SourceIpOk, SourceIpUnauthorized)
            }
            Criterion::CorsPreflight => {
                Verdict::new(req.cors_preflight, CorsRequest, NonCorsRequest)
            }
            Criterion::Date(m) => Verdict::new(m.matches(input.now), DateOk, DateUnauthorized),
            Criterion::DayOfWeek(m) => {
                Verdict::new(m.matches(input.now), DayOfWeekOk, DayOfWeekUnauthorized)
            }
            Criterion::TimeOfDay(m) => {
                Verdict::new(m.matches(input.now), TimeOfDayOk, TimeOfDayUnauthorized)
            }
        }
    }
}

/// A criterion on the signed-in user: no identity asks for sign-in; an identity with an
/// empty user ID is not a user and fails; otherwise `test` decides.
fn with_user(
    input: &Input<'_>,
    pass: Reason,
    fail: Reason,
    test: impl FnOnce(&Identity) -> bool,
) -> Verdict {
    match input.identity {
        None => Verdict::unauthenticated(),
        Some(id) if id.user.is_empty() => Verdict::new(false, pass, fail),
        Some(id) => Verdict::new(test(id), pass, fail),
    }
}

fn unknown(key: &str, loc: &Loc) -> PolicyError {
    loc.error(format!(
        "unknown criterion {key:?}; expected one of {NAMES}"
    ))
}

/// `accept`, `reject`, `authenticated_user` and `cors_preflight` ignore their data in
/// PPL ("typically `true`"). A `false` there would still match, so it is refused rather
/// than read the opposite way from what it says.
fn unused_data(data: &Value, loc: &Loc, c: Criterion) -> Result<Criterion, PolicyError> {
    if data == &Value::Bool(false) {
        return Err(loc.error(
            "false is not supported: PPL ignores this value and would still match; remove the criterion instead",
        ));
    }
    Ok(c)
}

fn compile_source_ip(data: &Value, loc: &Loc) -> Result<Box<[IpNet]>, PolicyError> {
    let one = |v: &Value, loc: &Loc| -> Result<IpNet, PolicyError> {
        let Value::String(s) = v else {
            return Err(loc.error(format!(
                "expected an IP address or CIDR range, got {}",
                describe(v)
            )));
        };
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            // Normalise like Go's ParseCIDR: `10.1.2.3/8` covers 10.0.0.0/8.
            return Ok(canonical_net(net.trunc()));
        }
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(canonical_net(IpNet::from(ip))),
            Err(_) => Err(loc.error(format!("invalid IP address or CIDR range {s:?}"))),
        }
    };
    let nets = match data {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(loc.error("empty list; expected at least one IP address or CIDR range"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| one(v, &loc.index(i)))
                .collect::<Result<Vec<_>, _>>()?
        }
        other => vec![one(other, loc)?],
    };
    Ok(nets.into_boxed_slice())
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes its IPv4 form, so it
/// matches the canonical source addresses evaluation compares with.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
    {
        return IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net);
    }
    net
}

impl Claim {
    fn compile(sub_path: Option<&str>, data: &Value, loc: &Loc) -> Result<Claim, PolicyError> {
        let name = match sub_path {
            Some(s) if !s.is_empty() => s,
            _ => return Err(loc.error("claim needs a name: claim/<name>, e.g. claim/groups")),
        };
        let parts: Vec<&str> = name.split(['/', '.']).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(loc.error(format!("invalid claim path {name:?}: empty segment")));
        }
        let segments = if parts.len() > 1 && parts.len() <= MAX_CLAIM_DEPTH {
            parts.into_iter().map(Box::from).collect()
        } else {
            Box::default()
        };
        Ok(Claim {
            name: name.into(),
            segments,
            matcher: ListMatcher::compile(data, loc, false)?,
        })
    }

    /// The claim's values: a list claim is its elements, a scalar is a one-element list,
    /// an absent claim or an object is empty.
    fn matches(&self, id: &Identity) -> bool {
        let mut value = id.claims.get(&*self.name);
        if value.is_none() && !self.segments.is_empty() {
            let mut cur = id.claims.get(&*self.segments[0]);
            for seg in &self.segments[1..] {
                cur = cur.and_then(|v| v.get(&**seg));
            }
            value = cur;
        }
        let values: &[Value] = match value {
            None | Some(Value::Null) | Some(Value::Object(_)) => &[],
            Some(Value::Array(items)) => items,
            Some(v) => std::slice::from_ref(v),
        };
        self.matcher.matches(values)
    }
}
