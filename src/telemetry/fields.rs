//! The fields of the decision log and the access log, chosen by Pomerium's keys
//! `authorize_log_fields` and `access_log_fields` (docs/operations.md lists them).

use std::marker::PhantomData;

/// A field of the decision log (one record per authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionField {
    RequestId,
    Method,
    Host,
    Path,
    Ip,
    User,
    Email,
    RouteId,
    /// Which policy decided: the route's policy sources.
    Policy,
    /// `allow`, `deny` or `sign-in`.
    Decision,
    /// The reasons, Pomerium's names (`groups-ok`, `user-unauthenticated`, …).
    Reasons,
    Duration,
    Status,
}

/// A field of the access log (one record per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessField {
    Authority,
    Duration,
    ForwardedFor,
    Ip,
    Method,
    Path,
    Query,
    Referer,
    RequestId,
    ResponseCode,
    RouteId,
    UserAgent,
}

/// A kind of field with names.
pub trait Field: Copy + 'static {
    /// Every field with its name (the first name of each is the one we print).
    const NAMES: &'static [(&'static str, Self)];
    fn bit(self) -> u32;
}

impl Field for DecisionField {
    const NAMES: &'static [(&'static str, DecisionField)] = &[
        ("request-id", DecisionField::RequestId),
        ("method", DecisionField::Method),
        ("host", DecisionField::Host),
        ("path", DecisionField::Path),
        ("ip", DecisionField::Ip),
        ("user", DecisionField::User),
        ("email", DecisionField::Email),
        ("route-id", DecisionField::RouteId),
        ("policy", DecisionField::Policy),
        ("decision", DecisionField::Decision),
        ("reasons", DecisionField::Reasons),
        ("duration", DecisionField::Duration),
        ("status", DecisionField::Status),
        // Pomerium's names for the same things.
        ("allow", DecisionField::Decision),
        ("deny", DecisionField::Decision),
        ("allow-why-true", DecisionField::Reasons),
        ("allow-why-false", DecisionField::Reasons),
        ("deny-why-true", DecisionField::Reasons),
        ("deny-why-false", DecisionField::Reasons),
        ("envoy-route-id", DecisionField::RouteId),
    ];
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl Field for AccessField {
    const NAMES: &'static [(&'static str, AccessField)] = &[
        ("authority", AccessField::Authority),
        ("duration", AccessField::Duration),
        ("forwarded-for", AccessField::ForwardedFor),
        ("ip", AccessField::Ip),
        ("method", AccessField::Method),
        ("path", AccessField::Path),
        ("query", AccessField::Query),
        ("referer", AccessField::Referer),
        ("request-id", AccessField::RequestId),
        ("response-code", AccessField::ResponseCode),
        ("route-id", AccessField::RouteId),
        ("user-agent", AccessField::UserAgent),
        ("upstream-cluster", AccessField::RouteId),
    ];
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A set of fields; empty turns the log off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<F> {
    bits: u32,
    kind: PhantomData<F>,
}

impl<F: Field> Fields<F> {
    pub const NONE: Fields<F> = Fields {
        bits: 0,
        kind: PhantomData,
    };

    /// Every field (each once).
    pub fn all() -> Fields<F> {
        Fields::of(F::NAMES.iter().map(|(_, f)| *f))
    }

    pub fn of(fields: impl IntoIterator<Item = F>) -> Fields<F> {
        Fields {
            bits: fields.into_iter().fold(0, |acc, f| acc | f.bit()),
            kind: PhantomData,
        }
    }

    /// Reads names as the config file lists them; the error names an unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Fields<F>, String> {
        let mut out = Vec::new();
        for name in names {
            let key = name.trim().to_ascii_lowercase();
            match F::NAMES.iter().find(|(n, _)| *n == key) {
                Some((_, f)) => out.push(*f),
                None => {
                    return Err(format!(
                        "`{name}` is not a log field; use any of {}",
                        Self::names().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(Fields::of(out))
    }

    /// The names a user can write.
    pub fn names() -> impl Iterator<Item = &'static str> {
        F::NAMES.iter().map(|(n, _)| *n)
    }

    pub fn has(&self, f: F) -> bool {
        self.bits & f.bit() != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_name() {
        let f: Fields<DecisionField> = Fields::parse(["user", "Path", "deny-why-false"]).unwrap();
        assert!(f.has(DecisionField::User) && f.has(DecisionField::Path));
        assert!(f.has(DecisionField::Reasons));
        assert!(!f.has(DecisionField::Email));
        let e = Fields::<DecisionField>::parse(["impersonate-email"]).unwrap_err();
        assert!(e.contains("`impersonate-email` is not a log field"), "{e}");
        assert!(Fields::<DecisionField>::NONE.is_empty());
        let a: Fields<AccessField> = Fields::parse(["upstream-cluster", "user-agent"]).unwrap();
        assert!(a.has(AccessField::RouteId) && a.has(AccessField::UserAgent));
        assert!(Fields::<AccessField>::all().has(AccessField::Referer));
    }
}
