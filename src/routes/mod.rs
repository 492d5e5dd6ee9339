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

pub use live::{Applied, LiveTable, Snapshot};

pub use model::*;
pub use reach::{AddressPolicy, Reach};
pub use table::{
    Backend, Diagnostic, EJECT_AFTER_FAILURES, EJECT_FOR_MS, Endpoint, InflightGuard, Match,
    PATH_REGEX_CACHE_LIMIT, PATH_REGEX_MAX_LEN, PATH_REGEX_SIZE_LIMIT, RegexStats, Route,
    RoutingTable, build, compile_path_regex, path_regex_memory, shared_path_regex,
};
