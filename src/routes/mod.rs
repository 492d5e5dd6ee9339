//! The routing table: built whole from a plain [`Model`], looked up per request,
//! swapped atomically. Pure: no I/O, no async, no Kubernetes types.

pub mod authority;
mod describe;
mod live;
pub mod model;
pub mod path;
mod table;

pub use live::{Applied, LiveTable, Snapshot};

pub use model::*;
pub use table::{
    Backend, Diagnostic, EJECT_AFTER_FAILURES, EJECT_FOR_MS, Endpoint, InflightGuard, Match, Route,
    RoutingTable, build,
};
