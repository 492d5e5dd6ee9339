//! The Kubernetes side of Portcullis: the only room that knows Kubernetes types.
//!
//! [`crd`] defines the `IdentityPolicy` custom resource and generates its CRD. The
//! reflectors turn cluster objects into the plain [`crate::routes::Model`]; the leader
//! election (`lease`, its own task) and the status writer ([`status`]) live here too
//! (docs/design.md, "Rooms" and "Leader election").

pub mod annotations;
pub mod controller;
pub mod crd;
pub mod gateway;
pub mod index;
mod lease;
pub mod status;
