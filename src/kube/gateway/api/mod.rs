//! The Gateway API objects Portcullis reads, written by hand: the standard channel's
//! `GatewayClass`, `Gateway` and `HTTPRoute` (`gateway.networking.k8s.io/v1`) and
//! `ReferenceGrant` (`v1beta1`, served by every release that has it), at
//! [`super::BUNDLE_VERSION`].
//!
//! Why by hand rather than the `gateway-api` crate or kopium: the crate pins kube 4 /
//! k8s-openapi 0.28; kopium's output models every field of every version, most of them
//! fields we must refuse rather than read. Here every field is one Portcullis acts on,
//! and `tests/gateway_api_types.rs` holds the list honest both ways: each field of
//! these types exists in the committed CRDs (`crds/gateway-api/`) with the same type,
//! and each CRD field that is not modelled is named there with what Portcullis does
//! about it (refuses the object, or why ignoring it cannot open anything).
//!
//! Status is written as JSON by the status writer; the status types here are what it
//! reads back (other controllers' route parents are kept).
//!
//! By kind: [`gateway`] (GatewayClass, Gateway and its listeners), [`http_route`]
//! (HTTPRoute), [`refs`] (the references several kinds share, and ReferenceGrant). Every
//! type is re-exported here, so `kube::gateway::api::X` names each one.

mod gateway;
mod http_route;
mod refs;

pub use gateway::*;
pub use http_route::*;
pub use refs::*;
