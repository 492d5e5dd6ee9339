//! Gateway API tenancy: what the author of an HTTPRoute admitted to a Gateway can answer
//! with a wildcard or host-less rule. Hosts another namespace owns (exactly, through a
//! wildcard, or with others under the admin's map) and hosts no route may serve (the
//! sign-in host, the config file's) are never answered by such a rule of a namespace
//! that may not use them, whatever the listener admits.

use http::{HeaderMap, Method};
use serde_json::json;

use super::*;
use crate::kube::gateway::api::{Gateway, GatewayClass, HTTPRoute};
use crate::kube::index::gateway::GatewaySettings;
use crate::kube::index::{HostGrant, HostOwnership, Reserved, Tenancy};
use crate::routes::gateway::GatewayRequest;
use crate::routes::{HostMatch, RoutingTable};

fn tenancy(hosts: HostOwnership) -> Tenancy {
    Tenancy {
        hosts,
        reserved: Reserved {
            sign_in: vec!["auth.example.test".into()],
            operator: vec![HostMatch::parse("file.example.test").unwrap()],
        },
        ..Tenancy::default()
    }
}

/// An index watching Gateway API, with Service `web` in every namespace used, our
/// class, and Gateway `infra/gw` (day 2): listener `open` on port 80 without hostname
/// and `wild` on port 8080 for `*.example.test`, both admitting every namespace.
fn gateway_index(hosts: HostOwnership) -> Index {
    let mut ix = classed(Settings {
        tenancy: tenancy(hosts),
        gateway: Some(GatewaySettings::default()),
        ..Settings::default()
    });
    for ns in ["ops", "b", "c", "infra"] {
        serve_web(&mut ix, ns);
    }
    ix.apply(from::<GatewayClass>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "portcullis"},
        "spec": {"controllerName": crate::kube::gateway::CONTROLLER_NAME}})))
        .unwrap();
    let all = json!({"namespaces": {"from": "All"}});
    ix.apply(from::<Gateway>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "infra", "generation": 1,
                     "creationTimestamp": "2024-01-02T00:00:00Z"},
        "spec": {"gatewayClassName": "portcullis", "listeners": [
            {"name": "open", "protocol": "HTTP", "port": 80, "allowedRoutes": all},
            {"name": "wild", "protocol": "HTTP", "port": 8080,
             "hostname": "*.example.test", "allowedRoutes": all}]}})))
        .unwrap();
    ix
}

/// HTTPRoute `ns/name` (day 3) on `infra/gw` with `hostnames`, `prefix` → `web:80`.
fn http_route(ns: &str, name: &str, hostnames: &[&str], prefix: &str) -> HTTPRoute {
    from(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns, "generation": 1,
                     "creationTimestamp": "2024-01-03T00:00:00Z"},
        "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                 "hostnames": hostnames,
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                            "backendRefs": [{"name": "web", "port": 80}]}]}}))
}

/// Ingress `ops/name` (day 1) for `host`.
fn ops_ingress(name: &str, host: &str) -> Ingress {
    from(json!({
        "metadata": {"name": name, "namespace": "ops",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"ingressClassName": "portcullis", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }))
}

/// The table the translation builds, and the local port of each Gateway port.
fn table(ix: &Index) -> (RoutingTable, Vec<(u16, u16)>) {
    let t = ix.translate();
    let (table, diagnostics) = crate::routes::build(&t.model, None);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let ports = t
        .gateway
        .ports
        .iter()
        .map(|p| (p.port, p.local_port))
        .collect();
    (table, ports)
}

/// The route (`ns/name`) a GET reaches on Gateway port `port`; `-`: none.
fn reached(t: &(RoutingTable, Vec<(u16, u16)>), port: u16, host: &str, path: &str) -> String {
    let local = t.1.iter().find(|(p, _)| *p == port).expect("port served").1;
    let id = t.0.gateway(local).expect("socket").id.clone();
    let headers = HeaderMap::new();
    let req = GatewayRequest {
        host,
        method: &Method::GET,
        path,
        query: None,
        headers: &headers,
    };
    t.0.lookup_gateway(local, &id, &req)
        .map(|m| {
            let id = m.route.id.to_string();
            id.split("/rules").next().unwrap_or_default().to_string()
        })
        .unwrap_or_else(|| "-".to_string())
}

fn check(t: &(RoutingTable, Vec<(u16, u16)>), cases: &[(u16, &str, &str, &str)]) {
    for (port, host, path, want) in cases {
        assert_eq!(
            reached(t, *port, host, path),
            *want,
            "GET {host}{path} on port {port}"
        );
    }
}

#[test]
fn broad_routes_never_answer_hosts_owned_elsewhere_or_reserved() {
    let mut ix = gateway_index(HostOwnership::FirstCome);
    // ops: a wildcard and an exact host, older than the Gateway's `*.example.test`.
    ix.apply(ops_ingress("wild", "*.apps.example.test"))
        .unwrap();
    ix.apply(ops_ingress("grafana", "grafana.example.test"))
        .unwrap();
    // b: a wildcard route (it attaches to `wild` only: the Gateway's namespace owns
    // `*.example.test`) and a host-less one (both listeners).
    ix.apply(http_route("b", "wide", &["*.example.test"], "/wide"))
        .unwrap();
    ix.apply(http_route("b", "any", &[], "/any")).unwrap();
    // infra, the Gateway's namespace, names a host of its own.
    ix.apply(http_route("infra", "mine", &["mine.example.test"], "/mine"))
        .unwrap();
    let t = table(&ix);
    check(
        &t,
        &[
            // Under the Gateway namespace's wildcard, no one else's: b's rules answer
            // it through `wild`, which admitted them; a name no one has a standing
            // for, on any listener.
            (8080, "fresh.example.test", "/wide", "b/wide"),
            (8080, "fresh.example.test", "/any", "b/any"),
            (80, "fresh.other.test", "/any", "b/any"),
            (80, "fresh.example.test", "/any", "-"),
            // ops' wildcard: one label below it is ops', on every listener.
            (8080, "x.apps.example.test", "/wide", "-"),
            (8080, "x.apps.example.test", "/any", "-"),
            (80, "x.apps.example.test", "/any", "-"),
            // Two labels below is no one's (ops' Ingress wildcard covers one label).
            (8080, "y.x.apps.example.test", "/wide", "b/wide"),
            // ops' exact host, named before the Gateway's wildcard.
            (8080, "grafana.example.test", "/wide", "-"),
            (8080, "grafana.example.test", "/any", "-"),
            (80, "grafana.example.test", "/any", "-"),
            // The config file's host and the sign-in host: no one's route.
            (8080, "file.example.test", "/wide", "-"),
            (80, "file.example.test", "/any", "-"),
            (8080, "auth.example.test", "/wide", "-"),
            // The Gateway's namespace's own host: its listener admitted b, so b's
            // broad rules share it through `wild` (the Gateway owner's choice), not
            // through the host-less listener, which claims nothing.
            (8080, "mine.example.test", "/mine", "infra/mine"),
            (8080, "mine.example.test", "/wide", "b/wide"),
            (80, "mine.example.test", "/any", "-"),
            (80, "mine.example.test", "/mine", "infra/mine"),
        ],
    );
}

#[test]
fn hosts_the_admins_map_gives_to_several_namespaces_are_theirs_alone() {
    let grant = |s: &str| HostGrant::parse(s).unwrap();
    let mut ix = gateway_index(HostOwnership::Assigned(vec![
        grant("b=shared.example.test"),
        grant("c=shared.example.test"),
        grant("infra=*.example.test"),
        grant("ops=*.apps.example.test"),
    ]));
    ix.apply(http_route("b", "b-any", &[], "/b")).unwrap();
    ix.apply(http_route("c", "c-any", &[], "/c")).unwrap();
    ix.apply(http_route("ops", "ops-any", &[], "/ops")).unwrap();
    let t = table(&ix);
    check(
        &t,
        &[
            // Both owners of the shared host answer it; the third namespace does not.
            (80, "shared.example.test", "/b", "b/b-any"),
            (80, "shared.example.test", "/c", "c/c-any"),
            (80, "shared.example.test", "/ops", "-"),
            (8080, "shared.example.test", "/ops", "-"),
            // ops' wildcard grant: ops alone.
            (80, "x.apps.example.test", "/ops", "ops/ops-any"),
            (80, "x.apps.example.test", "/b", "-"),
            // The Gateway namespace's wildcard: through `wild`, whose hostname it
            // owns, every admitted namespace; through `open`, no one but infra.
            (8080, "z.example.test", "/b", "b/b-any"),
            (80, "z.example.test", "/b", "-"),
            // A host the map gives to no one is no one's to protect.
            (80, "elsewhere.test", "/b", "b/b-any"),
        ],
    );
}

/// Ingress `ns/name` (day 1) for `host`, with `annotations`.
fn ingress_in(ns: &str, name: &str, host: &str, annotations: serde_json::Value) -> Ingress {
    from(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": annotations,
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"ingressClassName": "portcullis", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }))
}

/// ops delegates its host to the Gateway's namespace only (infra); infra's
/// `*.example.test` listener admits every namespace: b, never delegated, gets nothing
/// of ops' host, with a host-less rule or an exact hostname (a delegate owns nothing,
/// so its listener passes nothing on).
#[test]
fn a_delegation_to_the_gateway_namespace_is_not_passed_on_by_its_listener() {
    let mut ix = gateway_index(HostOwnership::FirstCome);
    ix.apply(ingress_in(
        "ops",
        "grafana",
        "grafana.example.test",
        json!({"portcullis.dev/allow-paths-from-namespaces": "infra"}),
    ))
    .unwrap();
    ix.apply(http_route("b", "any", &[], "/any")).unwrap();
    ix.apply(http_route(
        "b",
        "exact",
        &["grafana.example.test"],
        "/exact",
    ))
    .unwrap();
    let t = table(&ix);
    // b is not ops' delegate: a route of b naming grafana directly on `open` is refused...
    assert_eq!(reached(&t, 80, "grafana.example.test", "/exact"), "-");
    assert_eq!(reached(&t, 80, "grafana.example.test", "/any"), "-");
    // ... nor through infra's listener.
    let got = (
        reached(&t, 8080, "grafana.example.test", "/any"),
        reached(&t, 8080, "grafana.example.test", "/exact"),
    );
    assert_eq!(got, ("-".to_string(), "-".to_string()));
}

/// The same with a wildcard: ops delegates `*.apps.example.test` to infra, which names
/// it on a listener admitting All; c's host-less route answers none of its names.
#[test]
fn a_delegated_wildcard_on_a_listener_hostname_stays_closed_to_others() {
    let mut ix = gateway_index(HostOwnership::FirstCome);
    ix.apply(ingress_in(
        "ops",
        "apps",
        "*.apps.example.test",
        json!({"portcullis.dev/allow-paths-from-namespaces": "infra"}),
    ))
    .unwrap();
    let all = json!({"namespaces": {"from": "All"}});
    ix.apply(from::<Gateway>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw2", "namespace": "infra", "generation": 1,
                     "creationTimestamp": "2024-01-02T00:00:00Z"},
        "spec": {"gatewayClassName": "portcullis", "listeners": [
            {"name": "apps", "protocol": "HTTP", "port": 9090,
             "hostname": "*.apps.example.test", "allowedRoutes": all}]}})))
        .unwrap();
    let mut r: HTTPRoute = http_route("c", "any", &[], "/c");
    r.spec.parent_refs[0].name = "gw2".into();
    ix.apply(r).unwrap();
    let t = table(&ix);
    assert_eq!(reached(&t, 9090, "x.apps.example.test", "/c"), "-");
}

/// Under the admin's map, an exact host an owner delegates below its wildcard grant:
/// the delegate's broad rule answers it, as a route naming it is accepted.
#[test]
fn an_exact_delegation_under_an_assigned_wildcard_holds_for_broad_rules() {
    let grant = |s: &str| HostGrant::parse(s).unwrap();
    let mut ix = gateway_index(HostOwnership::Assigned(vec![
        grant("infra=*.example.test"),
        grant("ops=*.apps.example.test"),
    ]));
    ix.apply(ingress_in(
        "ops",
        "x",
        "x.apps.example.test",
        json!({"portcullis.dev/allow-paths-from-namespaces": "b"}),
    ))
    .unwrap();
    ix.apply(http_route("b", "any", &[], "/any")).unwrap();
    ix.apply(http_route("b", "exact", &["x.apps.example.test"], "/exact"))
        .unwrap();
    let t = table(&ix);
    // The exact route is accepted (b is ops' delegate for the host) ...
    assert_eq!(reached(&t, 80, "x.apps.example.test", "/exact"), "b/exact");
    // ... and so is b's host-less rule, for that host alone.
    assert_eq!(reached(&t, 80, "x.apps.example.test", "/any"), "b/any");
    assert_eq!(reached(&t, 80, "y.apps.example.test", "/any"), "-");
}

/// A route whose only hostname is one the CRD admits but is no host name (an IP
/// literal, a 64-octet label) answers nothing and is not accepted; it never becomes
/// host-less (every host the listener takes).
#[test]
fn invalid_hostnames_never_widen_a_route_to_host_less() {
    let mut ix = gateway_index(HostOwnership::FirstCome);
    ix.apply(http_route("b", "ip", &["10.1.2.3"], "/ip"))
        .unwrap();
    // One bad name among good ones is left out (and said); the rest serve.
    ix.apply(http_route(
        "b",
        "mixed",
        &["10.1.2.4", "m.other.test"],
        "/m",
    ))
    .unwrap();
    let t = table(&ix);
    assert_eq!(reached(&t, 80, "anything.other.test", "/ip"), "-");
    assert_eq!(reached(&t, 80, "anything.other.test", "/m"), "-");
    assert_eq!(reached(&t, 80, "m.other.test", "/m"), "b/mixed");
    let report = ix.translate().gateway.routes;
    let accepted = |name: &str| {
        let r = report.iter().find(|r| r.key.name == name).unwrap();
        let (_, c) = &r.parents[0].conditions[0];
        (
            c.status,
            c.reason,
            r.notes.iter().any(|n| n.message.contains("10.1.2")),
        )
    };
    assert_eq!(accepted("ip"), (false, "UnsupportedValue", true));
    assert_eq!(accepted("mixed"), (true, "Accepted", true));
}

/// Who may use which names is one map for every socket, its size the names with a
/// standing; many Gateways with host-less listeners add nothing to it. Prints the time
/// a translation takes (no assertion on it: machines vary).
#[test]
fn standings_are_one_map_whatever_the_number_of_gateways() {
    for (hosts, tenants, gateways) in [(2000, 20, 1), (2000, 20, 20), (5000, 1, 100)] {
        let mut ix = gateway_index(HostOwnership::FirstCome);
        for i in 0..hosts {
            ix.apply(ingress_in(
                "ops",
                &format!("h{i}"),
                &format!("h{i}.ops.test"),
                json!({}),
            ))
            .unwrap();
        }
        for n in 0..tenants {
            let ns = format!("t{n}");
            serve_web(&mut ix, &ns);
            ix.apply(http_route(&ns, "any", &[], "/any")).unwrap();
        }
        // Tenant b's own Gateways: one host-less listener each, a broad route of its own.
        for g in 1..gateways {
            ix.apply(from::<Gateway>(json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": format!("g{g}"), "namespace": "b", "generation": 1,
                             "creationTimestamp": "2024-01-02T00:00:00Z"},
                "spec": {"gatewayClassName": "portcullis", "listeners": [
                    {"name": "open", "protocol": "HTTP", "port": 80}]}})))
                .unwrap();
            let mut r = http_route("b", &format!("r{g}"), &[], "/b");
            r.spec.parent_refs[0].name = format!("g{g}");
            r.spec.parent_refs[0].namespace = None;
            ix.apply(r).unwrap();
        }
        let started = std::time::Instant::now();
        let t = ix.translate();
        let took = started.elapsed();
        let ports = &t.gateway.ports;
        assert!(ports.len() >= gateways, "{} sockets", ports.len());
        assert!(
            ports
                .iter()
                .all(|p| std::sync::Arc::ptr_eq(&p.standings, &ports[0].standings)),
            "one map for every socket"
        );
        // ops' hosts, the sign-in and config-file hosts, the Gateway's wildcard.
        assert!(
            ports[0].standings.len() <= hosts + 4,
            "{}",
            ports[0].standings.len()
        );
        let (table, _) = crate::routes::build(&t.model, None);
        let probe = format!("h{}.ops.test", hosts - 1);
        let local = ports
            .iter()
            .find(|p| p.id == "infra/gw:80")
            .unwrap()
            .local_port;
        let (_, reached) = (
            ports,
            reached(&(table, vec![(80, local)]), 80, &probe, "/any"),
        );
        assert_eq!(reached, "-", "a tenant's host-less rule on ops' host");
        eprintln!(
            "FIGURE Gateway translation, {hosts} owned hosts, {tenants} tenants with host-less routes, {gateways} Gateways: {took:?}, {} names with a standing",
            ports[0].standings.len()
        );
    }
}

/// An HTTPRoute's regexes (path, header and query matches together) have the budget an
/// Ingress's path regexes have: past it the route is not accepted and answers nothing.
#[test]
fn an_httproute_cannot_hold_more_regexes_than_an_ingress() {
    let mut ix = gateway_index(HostOwnership::FirstCome);
    let route = |name: &str, n: usize| -> HTTPRoute {
        let matches: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                json!({"path": {"type": "PathPrefix", "value": "/"},
                       "headers": [{"type": "RegularExpression", "name": "x-n",
                                    "value": format!("v{i}[0-9]+")}]})
            })
            .collect();
        from(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "b", "generation": 1,
                         "creationTimestamp": "2024-01-03T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                     "hostnames": [format!("{name}.other.test")],
                     "rules": [{"matches": matches,
                                "backendRefs": [{"name": "web", "port": 80}]}]}}))
    };
    ix.apply(route("many", 33)).unwrap();
    ix.apply(route("some", 32)).unwrap();
    let report = ix.translate().gateway.routes;
    let accepted = |name: &str| {
        let r = report.iter().find(|r| r.key.name == name).unwrap();
        let (_, c) = &r.parents[0].conditions[0];
        (c.status, c.reason, c.message.clone())
    };
    let (status, reason, message) = accepted("many");
    assert_eq!((status, reason), (false, "UnsupportedValue"), "{message}");
    assert!(message.contains("33 regexes"), "{message}");
    assert!(accepted("some").0);
}

/// A route author cannot forge identity or forwarding headers, nor Portcullis's
/// cookies, through filters (route-level or on a backendRef): the route is not
/// accepted and answers nothing.
#[test]
fn header_filters_cannot_forge_identity_or_cookies() {
    let mut ix = gateway_index(HostOwnership::FirstCome);
    let route = |name: &str, rule: serde_json::Value| -> HTTPRoute {
        from(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "b", "generation": 1,
                         "creationTimestamp": "2024-01-03T00:00:00Z"},
            "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                     "hostnames": [format!("{name}.other.test")],
                     "rules": [rule]}}))
    };
    let request = |header: &str| {
        json!({"filters": [{"type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": header, "value": "ceo"}]}}],
               "backendRefs": [{"name": "web", "port": 80}]})
    };
    let cases = [
        ("claim", request("X-Pomerium-Claim-Email")),
        ("underscored", request("X_Forwarded_Email")),
        ("assertion", request("X-Pomerium-Jwt-Assertion")),
        (
            "on-backend",
            json!({"backendRefs": [{"name": "web", "port": 80, "filters": [
                {"type": "RequestHeaderModifier",
                 "requestHeaderModifier": {"add": [{"name": "X-Forwarded-Email", "value": "ceo"}]}}]}]}),
        ),
        (
            "cookie",
            json!({"filters": [{"type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"add": [{"name": "Set-Cookie",
                                    "value": "_portcullis=x"}]}}],
                   "backendRefs": [{"name": "web", "port": 80}]}),
        ),
        (
            "framing",
            json!({"filters": [{"type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"set": [{"name": "Content-Length",
                                    "value": "0"}]}}],
                   "backendRefs": [{"name": "web", "port": 80}]}),
        ),
        (
            "signout",
            json!({"filters": [{"type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"set": [{"name": "Clear-Site-Data",
                                    "value": "\"cookies\""}]}}],
                   "backendRefs": [{"name": "web", "port": 80}]}),
        ),
        ("plain", request("X-Team")),
    ];
    for (name, rule) in &cases {
        ix.apply(route(name, rule.clone())).unwrap();
    }
    let t = table(&ix);
    let report = ix.translate().gateway.routes;
    for (name, _) in &cases {
        let r = report.iter().find(|r| r.key.name == *name).unwrap();
        let (_, c) = &r.parents[0].conditions[0];
        let host = format!("{name}.other.test");
        if *name == "plain" {
            assert!(c.status, "{name}: {}", c.message);
            assert_eq!(reached(&t, 80, &host, "/"), "b/plain");
        } else {
            assert!(!c.status, "{name} was accepted");
            assert_eq!(reached(&t, 80, &host, "/"), "-", "{name}");
        }
    }
}
