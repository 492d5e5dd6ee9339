//! Portcullis: a Kubernetes ingress controller with an identity-aware proxy inside.
//!
//! The rooms, in the order a request meets them (see docs/design.md):
//! `config` and `kube` produce a plain [`routes::Model`]; [`routes::build`] compiles it
//! into an immutable [`routes::RoutingTable`]; `proxy` serves the table, asking
//! `policy` for a decision on every request; `telemetry` logs and counts.
#![forbid(unsafe_code)]

pub mod api;

mod app;
mod auth;
mod config;
mod dev;
mod devidp;
mod directory;
mod kube;
mod policy;
mod proxy;
mod reply;
mod routes;
mod server;
mod sync;
mod telemetry;
