//! Why a criterion passed or failed: Pomerium's reason vocabulary as a copyable bitset,
//! so a decision can carry its reasons without touching the heap.

use std::fmt;

/// One reason. The names (see [`Reason::as_str`]) are Pomerium's, so logs read the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Reason {
    Accept,
    Reject,
    UserOk,
    UserUnauthorized,
    /// The criterion needed a signed-in user and there was none: the caller must sign in.
    UserUnauthenticated,
    EmailOk,
    EmailUnauthorized,
    DomainOk,
    DomainUnauthorized,
    GroupsOk,
    GroupsUnauthorized,
    ClaimOk,
    ClaimUnauthorized,
    HttpMethodOk,
    HttpMethodUnauthorized,
    HttpPathOk,
    HttpPathUnauthorized,
    SourceIpOk,
    SourceIpUnauthorized,
    CorsRequest,
    NonCorsRequest,
    DateOk,
    DateUnauthorized,
    DayOfWeekOk,
    DayOfWeekUnauthorized,
    TimeOfDayOk,
    TimeOfDayUnauthorized,
    /// The policy was refused at load time; everyone is denied (see `Policy::deny_all`).
    InvalidPolicy,
}

impl Reason {
    pub const ALL: [Reason; 28] = [
        Reason::Accept,
        Reason::Reject,
        Reason::UserOk,
        Reason::UserUnauthorized,
        Reason::UserUnauthenticated,
        Reason::EmailOk,
        Reason::EmailUnauthorized,
        Reason::DomainOk,
        Reason::DomainUnauthorized,
        Reason::GroupsOk,
        Reason::GroupsUnauthorized,
        Reason::ClaimOk,
        Reason::ClaimUnauthorized,
        Reason::HttpMethodOk,
        Reason::HttpMethodUnauthorized,
        Reason::HttpPathOk,
        Reason::HttpPathUnauthorized,
        Reason::SourceIpOk,
        Reason::SourceIpUnauthorized,
        Reason::CorsRequest,
        Reason::NonCorsRequest,
        Reason::DateOk,
        Reason::DateUnauthorized,
        Reason::DayOfWeekOk,
        Reason::DayOfWeekUnauthorized,
        Reason::TimeOfDayOk,
        Reason::TimeOfDayUnauthorized,
        Reason::InvalidPolicy,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Accept => "accept",
            Reason::Reject => "reject",
            Reason::UserOk => "user-ok",
            Reason::UserUnauthorized => "user-unauthorized",
            Reason::UserUnauthenticated => "user-unauthenticated",
            Reason::EmailOk => "email-ok",
            Reason::EmailUnauthorized => "email-unauthorized",
            Reason::DomainOk => "domain-ok",
            Reason::DomainUnauthorized => "domain-unauthorized",
            Reason::GroupsOk => "groups-ok",
            Reason::GroupsUnauthorized => "groups-unauthorized",
            Reason::ClaimOk => "claim-ok",
            Reason::ClaimUnauthorized => "claim-unauthorized",
            Reason::HttpMethodOk => "http-method-ok",
            Reason::HttpMethodUnauthorized => "http-method-unauthorized",
            Reason::HttpPathOk => "http-path-ok",
            Reason::HttpPathUnauthorized => "http-path-unauthorized",
            Reason::SourceIpOk => "source-ip-ok",
            Reason::SourceIpUnauthorized => "source-ip-unauthorized",
            Reason::CorsRequest => "cors-request",
            Reason::NonCorsRequest => "non-cors-request",
            Reason::DateOk => "date-ok",
            Reason::DateUnauthorized => "date-unauthorized",
            Reason::DayOfWeekOk => "day-of-week-ok",
            Reason::DayOfWeekUnauthorized => "day-of-week-unauthorized",
            Reason::TimeOfDayOk => "time-of-day-ok",
            Reason::TimeOfDayUnauthorized => "time-of-day-unauthorized",
            Reason::InvalidPolicy => "invalid-policy",
        }
    }

    const fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of reasons; union is a bitwise or.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reasons(u32);

impl Reasons {
    pub const EMPTY: Reasons = Reasons(0);

    pub const fn one(r: Reason) -> Reasons {
        Reasons(r.bit())
    }

    pub const fn has(self, r: Reason) -> bool {
        self.0 & r.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn union(self, other: Reasons) -> Reasons {
        Reasons(self.0 | other.0)
    }

    pub fn insert(&mut self, r: Reason) {
        self.0 |= r.bit();
    }

    /// The reasons in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.has(*r))
    }
}

impl FromIterator<Reason> for Reasons {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> Self {
        let mut rs = Reasons::EMPTY;
        for r in iter {
            rs.insert(r);
        }
        rs
    }
}

/// Comma-separated, e.g. `email-ok,http-method-ok`.
impl fmt::Display for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}
