//! STUB — being written.
use std::sync::Arc;

use super::model::*;

#[derive(Debug)]
pub struct Endpoint {
    pub spec: EndpointSpec,
}
#[derive(Debug)]
pub struct Backend {
    pub endpoints: Vec<Endpoint>,
}
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    pub backend: Arc<Backend>,
}
#[derive(Debug, Default)]
pub struct RoutingTable {}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub route_id: String,
    pub message: String,
}
pub struct Match<'t> {
    pub route: &'t Arc<Route>,
}
pub fn build(_model: &Model, _previous: Option<&RoutingTable>) -> (RoutingTable, Vec<Diagnostic>) {
    (RoutingTable {}, Vec::new())
}
pub(crate) fn compile_path_regex(r: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{r})$"))
}
