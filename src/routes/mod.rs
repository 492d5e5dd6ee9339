//! The routing table: built whole from a plain [`Model`], looked up per request,
//! swapped atomically. Pure: no I/O, no async, no Kubernetes types.

pub mod authority;
pub mod certs;
mod describe;
pub mod gateway;
mod live;
pub mod model;
pub mod options;
pub mod path;
pub mod reach;
pub mod reserved;
mod table;

pub use live::{Applied, LiveTable};

pub use model::*;
pub use reach::{AddressPolicy, Reach};
pub use table::{
    Backend, Diagnostic, Endpoint, Match, RegexStats, Route, RoutingTable, build,
    path_regex_memory, shared_path_regex,
};
