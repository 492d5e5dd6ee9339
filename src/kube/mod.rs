//! The Kubernetes side of Portcullis: the only room that knows Kubernetes types.
//!
//! [`crd`] defines the `IdentityPolicy` custom resource and generates its CRD. The
//! reflectors, the status writer and the leader election live here too (docs/design.md
//! sections 1 and 4); they turn cluster objects into the plain [`crate::routes::Model`].

pub mod annotations;
pub mod controller;
pub mod crd;
pub mod gateway;
pub mod index;
pub mod status;
