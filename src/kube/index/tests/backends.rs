//! Service backends: EndpointSlices, named ports, ExternalName, service-upstream.

use serde_json::json;

use super::*;
use crate::kube::index::Tenancy;
use crate::routes::{Balance, EndpointSpec, Reach, UpstreamScheme};

fn to_port(port: serde_json::Value, annotations: serde_json::Value) -> Ingress {
    let mut ing = ingress_spec(
        "a",
        json!({"rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": port}}}
        ]}}]}),
    );
    // Some policy, so that the only warnings are about backends.
    let mut annotations = annotations;
    annotations["portcullis.dev/allowed-domains"] = json!("example.com");
    ing.metadata.annotations = from(annotations);
    ing
}

fn ep(host: &str, port: u16) -> EndpointSpec {
    EndpointSpec {
        scheme: UpstreamScheme::Http,
        host: host.into(),
        port,
        reach: Reach::Tenant,
    }
}

fn endpoints(t: &Translation) -> Vec<(String, u16)> {
    route(t, "apps/a/rules[0]/paths[0]")
        .backend
        .endpoints
        .iter()
        .map(|e| (e.host.clone(), e.port))
        .collect()
}

/// Service `apps/api`: ports 80 `http` → 8080 and 9090 `metrics`; two slices.
fn api_index() -> Index {
    let mut ix = index();
    ix.apply(service(
        "apps",
        "api",
        json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "metrics", "port": 9090},
        ]),
    ))
    .unwrap();
    let ports = json!([{"name": "http", "port": 8080}, {"name": "metrics", "port": 9091}]);
    ix.apply(slice(
        "apps",
        "api-1",
        "api",
        ports.clone(),
        json!([
            {"addresses": ["10.0.0.3"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"]},                                                // unset: ready
            {"addresses": ["10.0.0.9"], "conditions": {"ready": false}},               // not ready
            {"addresses": ["10.0.0.8"], "conditions": {"ready": true, "terminating": true}},
        ]),
    ))
    .unwrap();
    ix.apply(slice(
        "apps",
        "api-2",
        "api",
        ports,
        json!([
            {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},                // duplicate
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
        ]),
    ))
    .unwrap();
    // Another Service's slice in the same namespace is not ours.
    ix.apply(slice(
        "apps",
        "other-1",
        "other",
        json!([{"name": "http", "port": 8080}]),
        json!([{"addresses": ["10.9.9.9"]}]),
    ))
    .unwrap();
    ix
}

#[test]
fn ready_endpoints_deduplicated_and_sorted() {
    let mut ix = api_index();
    ix.apply(to_port(json!({"number": 80}), json!({}))).unwrap();
    let t = ix.translate();
    assert_eq!(
        endpoints(&t),
        [
            ("10.0.0.1".into(), 8080),
            ("10.0.0.2".into(), 8080),
            ("10.0.0.3".into(), 8080)
        ]
    );
    assert!(report(&t, "apps/a").accepted);
}

#[test]
fn named_and_numbered_ports() {
    let cases = [
        (json!({"number": 80}), Some(8080)),
        (json!({"name": "http"}), Some(8080)),
        (json!({"number": 9090}), Some(9091)),
        (json!({"name": "metrics"}), Some(9091)),
        (json!({"number": 81}), None),
        (json!({"name": "nope"}), None),
    ];
    for (port, want) in cases {
        let mut ix = api_index();
        ix.apply(to_port(port.clone(), json!({}))).unwrap();
        let t = ix.translate();
        let rep = report(&t, "apps/a");
        match want {
            Some(p) => assert_eq!(endpoints(&t)[0].1, p, "{port}"),
            None => {
                assert!(endpoints(&t).is_empty(), "{port}");
                assert_eq!(warnings(rep), ["ServicePortNotFound"], "{port}");
                assert!(rep.accepted, "a missing port is a 503, not a rejection");
            }
        }
    }
}

#[test]
fn unnamed_service_port_matches_unnamed_slice_port() {
    let mut ix = index();
    ix.apply(service(
        "apps",
        "api",
        json!([{"port": 80, "targetPort": 3000}]),
    ))
    .unwrap();
    ix.apply(slice(
        "apps",
        "api-1",
        "api",
        json!([{"port": 3000}]),
        json!([{"addresses": ["10.1.0.1"]}]),
    ))
    .unwrap();
    ix.apply(to_port(json!({"number": 80}), json!({}))).unwrap();
    assert_eq!(endpoints(&ix.translate()), [("10.1.0.1".into(), 3000)]);
}

#[test]
fn slices_follow_applies_and_deletes() {
    let mut ix = api_index();
    ix.apply(to_port(json!({"number": 80}), json!({}))).unwrap();
    assert!(ix.delete::<EndpointSlice>("apps", "api-2"));
    assert_eq!(
        endpoints(&ix.translate()),
        [("10.0.0.2".into(), 8080), ("10.0.0.3".into(), 8080)]
    );
    assert!(ix.delete::<EndpointSlice>("apps", "api-1"));
    let t = ix.translate();
    assert!(endpoints(&t).is_empty());
    assert_eq!(warnings(report(&t, "apps/a")), ["NoReadyEndpoints"]);
}

#[test]
fn missing_service_is_a_warning() {
    let mut ix = index();
    ix.apply(to_port(json!({"number": 80}), json!({}))).unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(rep.accepted);
    assert_eq!(warnings(rep), ["ServiceNotFound"]);
    assert!(endpoints(&t).is_empty());
}

#[test]
fn external_name() {
    let mut ix = index_with(Tenancy {
        allow_external_names: true,
        ..Tenancy::default()
    });
    ix.apply::<Service>(from(json!({
        "metadata": {"name": "api", "namespace": "apps"},
        "spec": {"type": "ExternalName", "externalName": "API.example.net.",
                 "ports": [{"name": "https", "port": 8443}]},
    })))
    .unwrap();
    for (port, want) in [
        (json!({"number": 443}), 443),
        (json!({"name": "https"}), 8443),
    ] {
        ix.apply(to_port(
            port,
            json!({"portcullis.dev/backend-protocol": "https"}),
        ))
        .unwrap();
        let t = ix.translate();
        let r = route(&t, "apps/a/rules[0]/paths[0]");
        assert_eq!(
            r.backend.endpoints,
            [EndpointSpec {
                scheme: UpstreamScheme::Https,
                host: "api.example.net".into(),
                port: want,
                reach: Reach::Tenant,
            }]
        );
    }
}

#[test]
fn service_upstream_uses_the_service_dns_name() {
    for key in [
        "portcullis.dev/service-upstream",
        "ingress.pomerium.io/service_proxy_upstream",
    ] {
        let mut ix = api_index();
        ix.apply(to_port(json!({"name": "metrics"}), json!({key: "true"})))
            .unwrap();
        assert_eq!(
            endpoints(&ix.translate()),
            [("api.apps.svc.cluster.local".into(), 9090)],
            "{key}"
        );
    }
    let mut ix = classed(Settings {
        cluster_domain: "corp.internal".into(),
        ..Settings::default()
    });
    ix.apply(service("apps", "api", json!([{"port": 80}])))
        .unwrap();
    ix.apply(to_port(
        json!({"number": 80}),
        json!({"portcullis.dev/service-upstream": "true"}),
    ))
    .unwrap();
    assert_eq!(
        endpoints(&ix.translate()),
        [("api.apps.svc.corp.internal".into(), 80)]
    );
}

#[test]
fn scheme_and_balance() {
    let cases = [
        (json!({}), UpstreamScheme::Http, Balance::RoundRobin),
        (
            json!({"portcullis.dev/backend-protocol": "h2c"}),
            UpstreamScheme::H2c,
            Balance::RoundRobin,
        ),
        (
            json!({"portcullis.dev/backend-protocol": "HTTPS"}),
            UpstreamScheme::Https,
            Balance::RoundRobin,
        ),
        (
            json!({"ingress.pomerium.io/backend_protocol": "https"}),
            UpstreamScheme::Https,
            Balance::RoundRobin,
        ),
        (
            json!({"ingress.pomerium.io/secure_upstream": "true"}),
            UpstreamScheme::Https,
            Balance::RoundRobin,
        ),
        (
            json!({"ingress.pomerium.io/secure_upstream": "false"}),
            UpstreamScheme::Http,
            Balance::RoundRobin,
        ),
        (
            json!({"portcullis.dev/load-balancing": "least_request"}),
            UpstreamScheme::Http,
            Balance::LeastRequest,
        ),
        (
            json!({"ingress.pomerium.io/load_balancing": "round_robin"}),
            UpstreamScheme::Http,
            Balance::RoundRobin,
        ),
        (
            json!({"ingress.pomerium.io/load_balancing_policy": "LEAST_REQUEST"}),
            UpstreamScheme::Http,
            Balance::LeastRequest,
        ),
    ];
    for (ann, scheme, balance) in cases {
        let mut ix = api_index();
        ix.apply(to_port(json!({"number": 80}), ann.clone()))
            .unwrap();
        let t = ix.translate();
        assert!(report(&t, "apps/a").accepted, "{ann}");
        let r = route(&t, "apps/a/rules[0]/paths[0]");
        assert_eq!(r.backend.balance, balance, "{ann}");
        assert!(
            r.backend.endpoints.iter().all(|e| e.scheme == scheme),
            "{ann}"
        );
        assert_eq!(
            r.backend.endpoints[0],
            EndpointSpec {
                scheme,
                ..ep("10.0.0.1", 8080)
            }
        );
    }
}

#[test]
fn resource_backend_rejects() {
    let mut ix = index();
    ix.apply(ingress_spec("a", json!({"rules": [{"host": "a.example.com", "http": {"paths": [
        {"path": "/static", "pathType": "Prefix",
         "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}},
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"number": 80}}}},
    ]}}]})))
    .unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(!rep.accepted);
    assert_eq!(warnings(rep), ["UnsupportedBackend"]);
    // Both paths deny, the good one included: the Ingress is rejected as a whole.
    for id in ["apps/a/rules[0]/paths[0]", "apps/a/rules[0]/paths[1]"] {
        assert!(denies(route(&t, id)), "{id}");
        assert!(route(&t, id).backend.endpoints.is_empty());
    }
}
