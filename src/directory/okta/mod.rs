//! A client for the read side of Okta's Management API: users, groups and group members,
//! with `SSWS` token authentication, `Link: rel="next"` paging and Okta's
//! `X-Rate-Limit-*` headers. It waits rather than spins: a bucket whose budget is used up
//! is not called again before its reset time, and a 429 waits for the reset (capped,
//! with jitter). The token lives in one sensitive header value and nowhere else.
//!
//! `client` makes the calls, `links` reads the paging headers (`Link`, `Date`), `rate`
//! the rate-limit headers and the waits they imply, `dto` holds the wire types.

mod client;
mod dto;
mod links;
mod rate;

pub use self::client::{Client, Listing, REQUEST_TIMEOUT};
pub use self::dto::{OktaGroup, OktaUser};
pub use self::links::{next_link, parse_links, server_date};
pub use self::rate::{RateInfo, wait_after_429, wait_before_next};

/// The endpoints used, each with its own Okta rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Users,
    Groups,
    GroupMembers,
}

impl Endpoint {
    /// The path template, as Okta documents it (also the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Users => "/api/v1/users",
            Endpoint::Groups => "/api/v1/groups",
            Endpoint::GroupMembers => "/api/v1/groups/{id}/users",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Page sizes (`limit=`) per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    pub users: u32,
    pub groups: u32,
    pub members: u32,
}

impl Default for PageSizes {
    /// Users: 200, Okta's maximum. Groups: 200. Members: 1000, Okta's default and
    /// maximum — members are where almost all the calls of a full sync go.
    fn default() -> Self {
        PageSizes {
            users: 200,
            groups: 200,
            members: 1000,
        }
    }
}
