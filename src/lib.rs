//! Portcullis: a Kubernetes ingress controller with an identity-aware proxy inside.
//!
//! The rooms, in the order a request meets them (see docs/design.md):
//! `config` and `kube` produce a plain [`routes::Model`]; [`routes::build`] compiles it
//! into an immutable [`routes::RoutingTable`]; `proxy` serves the table, asking
//! `policy` for a decision on every request; `telemetry` logs and counts.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod config;
pub mod dev;
pub mod devidp;
pub mod directory;
pub mod kube;
pub mod policy;
pub mod proxy;
pub mod reply;
pub mod routes;
pub mod server;
pub mod sync;
pub mod telemetry;
