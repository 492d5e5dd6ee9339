//! A JSON rendering of a routing table for `/debug/routes`. Header values are left
//! out: `set_request_headers` may carry credentials.

use serde_json::{Value, json};

use super::{HostMatch, PathMatch, Route, RoutingTable, UpstreamHost, UpstreamScheme};

impl RoutingTable {
    /// Renders every route with its live endpoint state at `now_ms`.
    pub fn describe(&self, now_ms: u64) -> Value {
        Value::Array(self.routes().map(|r| describe_route(r, now_ms)).collect())
    }

    /// Every Gateway socket by local port: the Gateway port it serves, whether it is
    /// HTTPS, and its routes (rendered as [`RoutingTable::describe`]'s, by id).
    pub fn describe_gateways(&self, now_ms: u64) -> Value {
        let mut ports: Vec<_> = self.gateways.iter().collect();
        ports.sort_by_key(|(port, _)| **port);
        Value::Array(
            ports
                .into_iter()
                .map(|(port, t)| {
                    let mut routes: Vec<_> = t.routes().collect();
                    routes.sort_by(|a, b| a.id.cmp(&b.id));
                    json!({
                        "local_port": port,
                        "gateway": &*t.id,
                        "tls": t.tls,
                        "routes": routes.into_iter().map(|r| describe_route(r, now_ms)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

fn describe_route(route: &Route, now_ms: u64) -> Value {
    let host = match &route.host {
        HostMatch::Any => "*".to_string(),
        HostMatch::Exact(h) => h.clone(),
        HostMatch::Wildcard(h) => format!("*.{h}"),
    };
    let (kind, path) = match &route.path {
        PathMatch::Any => ("any", ""),
        PathMatch::Exact(p) => ("exact", p.as_str()),
        PathMatch::StrPrefix(p) => ("prefix", p.as_str()),
        PathMatch::SegmentPrefix(p) => ("segment_prefix", p.as_str()),
        PathMatch::Regex(p) => ("regex", p.as_str()),
    };
    let endpoints: Vec<Value> = route
        .backend
        .endpoints
        .iter()
        .map(|e| {
            let scheme = match e.spec.scheme {
                UpstreamScheme::Http => "http",
                UpstreamScheme::Https => "https",
                UpstreamScheme::H2c => "h2c",
            };
            json!({
                "url": format!("{scheme}://{}", e.authority),
                "inflight": e.inflight(),
                "ejected": e.is_ejected(now_ms),
            })
        })
        .collect();
    let o = &route.options;
    let upstream_host = match &o.upstream_host {
        UpstreamHost::Original => "original".to_string(),
        UpstreamHost::Endpoint => "endpoint".to_string(),
        UpstreamHost::Rewrite(h) => format!("rewrite:{h}"),
    };
    json!({
        "id": &*route.id,
        "host": host,
        "port": route.port,
        "path": {"kind": kind, "value": path},
        "balance": format!("{:?}", route.backend.balance),
        "endpoints": endpoints,
        "policy": {"invalid": route.policy.invalid_reason()},
        "options": {
            "timeout_ms": o.timeout.as_millis() as u64,
            "idle_timeout_ms": o.idle_timeout.as_millis() as u64,
            "upstream_host": upstream_host,
            "prefix_rewrite": o.prefix_rewrite,
            "allow_websockets": o.allow_websockets,
            "pass_identity_headers": o.pass_identity_headers,
            "set_request_headers": o.set_request_headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            "remove_request_headers": o.remove_request_headers.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "set_response_headers": o.set_response_headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            "tls_skip_verify": o.tls.skip_verify,
            "tls_server_name": o.tls.server_name,
        },
    })
}
