//! Tenancy: what an Ingress author with rights in one namespace cannot do to another
//! (docs/security.md). Each test is an attack from namespace `b` on namespace `ops`.

use serde_json::{Value, json};

use super::*;
use crate::kube::index::{HostGrant, HostOwnership, Reserved, Tenancy};
use crate::routes::{HostMatch, PathMatch};

const PUBLIC: &str = "portcullis.dev/allow-public-unauthenticated-access";

/// Ingress `ns/name` created at `created` (2024-01-DD): `host` → `path` → `web:80`.
fn ing(ns: &str, name: &str, day: u8, host: &str, path: &str, annotations: Value) -> Ingress {
    from(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": annotations,
                     "creationTimestamp": format!("2024-01-{day:02}T00:00:00Z")},
        "spec": {"ingressClassName": "portcullis", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }))
}

/// An index with Service `web` (one ready endpoint) in `ops`, `b`, `c` and `aaa`.
fn tenants(tenancy: Tenancy) -> Index {
    let mut ix = index_with(tenancy);
    for ns in ["ops", "b", "c", "aaa"] {
        serve_web(&mut ix, ns);
    }
    ix
}

/// Applies [`ing`]: `key` is `ns/name`, `url` is the host and path.
fn put(ix: &mut Index, key: &str, day: u8, url: &str, annotations: Value) {
    let (ns, name) = key.split_once('/').unwrap();
    let slash = url.find('/').unwrap();
    let (host, path) = url.split_at(slash);
    ix.apply(ing(ns, name, day, host, path, annotations))
        .unwrap();
}

fn public() -> Value {
    json!({PUBLIC: "true"})
}

fn route_ids(t: &Translation) -> Vec<&str> {
    t.model.routes.iter().map(|r| r.id.as_str()).collect()
}

fn message<'a>(rep: &'a IngressReport, reason: &str) -> &'a str {
    rep.notes
        .iter()
        .find(|n| n.reason == reason)
        .map(|n| n.message.as_str())
        .unwrap_or_else(|| panic!("no {reason} in {:?}", rep.notes))
}

#[test]
fn a_path_on_another_namespaces_host_is_refused_and_left_out() {
    let mut ix = tenants(Tenancy::default());
    put(
        &mut ix,
        "ops/grafana",
        1,
        "grafana.corp.example/",
        json!({}),
    );
    put(&mut ix, "b/squat", 2, "grafana.corp.example/b", public());
    let t = ix.translate();
    let rep = report(&t, "b/squat");
    assert!(!rep.accepted);
    assert_eq!(warnings(rep), ["HostOwnedElsewhere"]);
    assert!(message(rep, "HostOwnedElsewhere").contains("namespace ops"));
    // Not even a deny route: b's `/b` would take that path from ops.
    assert_eq!(route_ids(&t), ["ops/grafana/rules[0]/paths[0]"]);
    assert!(report(&t, "ops/grafana").accepted);
    assert!(!denies(route(&t, "ops/grafana/rules[0]/paths[0]")));
}

#[test]
fn a_rejected_owner_keeps_its_hosts_denying() {
    let mut ix = tenants(Tenancy::default());
    // ops' Ingress has a typo: rejected, but the host stays ops'.
    put(
        &mut ix,
        "ops/grafana",
        1,
        "grafana.corp.example/",
        json!({"portcullis.dev/alowed-groups": "admins"}),
    );
    put(&mut ix, "b/squat", 2, "grafana.corp.example/", public());
    let t = ix.translate();
    assert_eq!(warnings(report(&t, "b/squat")), ["HostOwnedElsewhere"]);
    assert_eq!(route_ids(&t), ["ops/grafana/rules[0]/paths[0]"]);
    assert!(denies(route(&t, "ops/grafana/rules[0]/paths[0]")));
}

#[test]
fn the_admin_map_beats_first_come() {
    let grants = ["ops=grafana.corp.example", "b=*.b.corp.example"]
        .iter()
        .map(|g| HostGrant::parse(g).unwrap())
        .collect();
    let mut ix = tenants(Tenancy {
        hosts: HostOwnership::Assigned(grants),
        ..Tenancy::default()
    });
    // b squats before ops deploys: the map still says ops.
    put(&mut ix, "b/early", 1, "grafana.corp.example/", public());
    put(&mut ix, "b/own", 1, "app.b.corp.example/", public());
    put(&mut ix, "c/stray", 1, "x.b.corp.example/", public());
    let t = ix.translate();
    let rep = report(&t, "b/early");
    assert_eq!(warnings(rep), ["HostNotAssigned"]);
    assert!(message(rep, "HostNotAssigned").contains("gives it to ops"));
    assert!(report(&t, "b/own").accepted);
    assert_eq!(warnings(report(&t, "c/stray")), ["HostNotAssigned"]);
    assert_eq!(route_ids(&t), ["b/own/rules[0]/paths[0]"]);
    // Before ops routes on its host, no wildcard or catch-all may answer it.
    assert_eq!(t.model.exclusive_hosts, ["grafana.corp.example"]);

    put(
        &mut ix,
        "ops/grafana",
        5,
        "grafana.corp.example/",
        json!({}),
    );
    let t = ix.translate();
    assert!(report(&t, "ops/grafana").accepted);
    assert!(!report(&t, "b/early").accepted);
}

#[test]
fn delegation_lets_the_named_namespace_add_paths_and_only_it() {
    let mut ix = tenants(Tenancy::default());
    put(
        &mut ix,
        "ops/grafana",
        1,
        "grafana.corp.example/",
        json!({"portcullis.dev/allow-paths-from-namespaces": "b"}),
    );
    put(&mut ix, "b/docs", 2, "grafana.corp.example/docs", public());
    put(&mut ix, "c/docs", 2, "grafana.corp.example/c", public());
    // b, even older than ops' own second Ingress, cannot take ops' paths.
    put(
        &mut ix,
        "b/takeover",
        2,
        "grafana.corp.example/api",
        public(),
    );
    put(&mut ix, "ops/api", 3, "grafana.corp.example/api", json!({}));
    let t = ix.translate();
    assert!(report(&t, "b/docs").accepted);
    assert_eq!(warnings(report(&t, "c/docs")), ["HostOwnedElsewhere"]);
    // Owners' routes come first, so ops keeps /api and b is told.
    assert!(warnings(report(&t, "b/takeover")).contains(&"RouteConflict"));
    let ids = route_ids(&t);
    let pos = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    assert!(pos("ops/api/rules[0]/paths[0]") < pos("b/takeover/rules[0]/paths[0]"));
    assert!(!ids.iter().any(|i| i.starts_with("c/")));

    // A delegation from an Ingress with an annotation error does not count.
    put(
        &mut ix,
        "ops/grafana",
        1,
        "grafana.corp.example/",
        json!({"portcullis.dev/allow-paths-from-namespaces": "b", "portcullis.dev/timeout": "x"}),
    );
    let t = ix.translate();
    assert_eq!(warnings(report(&t, "b/docs")), ["HostOwnedElsewhere"]);
}

#[test]
fn wildcards_own_what_no_one_named_before_them() {
    let mut ix = tenants(Tenancy::default());
    put(
        &mut ix,
        "ops/grafana",
        1,
        "grafana.corp.example/",
        json!({}),
    );
    put(&mut ix, "b/all", 2, "*.corp.example/", public());
    put(&mut ix, "c/late", 3, "late.corp.example/", public());
    let t = ix.translate();
    assert!(report(&t, "ops/grafana").accepted);
    assert!(
        report(&t, "b/all").accepted,
        "the wildcard does not take grafana"
    );
    assert_eq!(warnings(report(&t, "c/late")), ["HostOwnedElsewhere"]);
}

#[test]
fn catch_all_rules_and_default_backends_only_where_the_admin_says() {
    let catch_all = |name: &str| -> Ingress {
        from(json!({
            "metadata": {"name": name, "namespace": "b", "creationTimestamp": "2024-01-01T00:00:00Z",
                         "annotations": {PUBLIC: "true"}},
            "spec": {"ingressClassName": "portcullis",
                     "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                     "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                               {"host": "b.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
        }))
    };
    let mut ix = tenants(Tenancy::default());
    ix.apply(catch_all("everything")).unwrap();
    let t = ix.translate();
    let rep = report(&t, "b/everything");
    assert_eq!(warnings(rep), ["CatchAllNotAllowed", "CatchAllNotAllowed"]);
    assert!(t.model.default_backend.is_none());
    // Its own host keeps a deny route; the catch-all rule is left out.
    assert_eq!(route_ids(&t), ["b/everything/rules[1]/paths[0]"]);
    assert!(denies(route(&t, "b/everything/rules[1]/paths[0]")));

    let mut ix = tenants(Tenancy {
        catch_all_namespaces: vec!["b".into()],
        ..Tenancy::default()
    });
    ix.apply(catch_all("everything")).unwrap();
    let t = ix.translate();
    assert!(report(&t, "b/everything").accepted);
    assert!(t.model.default_backend.is_some());
    assert_eq!(
        route(&t, "b/everything/rules[0]/paths[0]").host,
        HostMatch::Any
    );
}

#[test]
fn the_sign_in_host_is_reserved() {
    let mut ix = tenants(Tenancy {
        reserved: Reserved {
            sign_in: vec!["authenticate.corp.example".into()],
            operator: vec![HostMatch::parse("*.ops.example").unwrap()],
        },
        ..Tenancy::default()
    });
    put(&mut ix, "b/operator", 1, "x.ops.example/", public());
    put(&mut ix, "b/auth", 1, "Authenticate.Corp.Example/", public());
    put(&mut ix, "b/wild", 1, "*.corp.example/", public());
    let t = ix.translate();
    assert_eq!(warnings(report(&t, "b/auth")), ["ReservedHost"]);
    let rep = report(&t, "b/operator");
    assert_eq!(warnings(rep), ["ReservedHost"]);
    assert!(message(rep, "ReservedHost").contains("config file"));
    assert!(
        report(&t, "b/wild").accepted,
        "the table keeps it off the sign-in host"
    );
    assert_eq!(route_ids(&t), ["b/wild/rules[0]/paths[0]"]);
}

#[test]
fn tls_secrets_serve_only_owned_listed_hosts() {
    let mut ix = tenants(Tenancy::default());
    put(
        &mut ix,
        "ops/grafana",
        1,
        "grafana.corp.example/",
        json!({}),
    );
    for (ns, name) in [("aaa", "squat"), ("aaa", "wild"), ("ops", "grafana-tls")] {
        ix.apply(tls_secret(ns, name)).unwrap();
    }
    let mut squat = ing(
        "aaa",
        "squat",
        2,
        "aaa.example",
        "/",
        json!({PUBLIC: "true"}),
    );
    squat.spec.as_mut().unwrap().tls = from(json!([
        {"hosts": ["grafana.corp.example", "aaa.example"], "secretName": "squat"},
        {"hosts": ["*.corp.example"], "secretName": "wild"},
        {"secretName": "wild"},
    ]));
    ix.apply(squat).unwrap();
    let mut wild = ing(
        "aaa",
        "wild",
        3,
        "*.corp.example",
        "/",
        json!({PUBLIC: "true"}),
    );
    wild.spec.as_mut().unwrap().tls =
        from(json!([{"hosts": ["*.corp.example"], "secretName": "wild"}]));
    ix.apply(wild).unwrap();
    let mut owner = ing("ops", "grafana", 1, "grafana.corp.example", "/", json!({}));
    owner.spec.as_mut().unwrap().tls =
        from(json!([{"hosts": ["grafana.corp.example"], "secretName": "grafana-tls"}]));
    ix.apply(owner).unwrap();
    let t = ix.translate();
    let served: Vec<(&str, Vec<&str>)> = t
        .certificates
        .iter()
        .map(|c| {
            (
                c.pair.source_name.as_str(),
                c.names.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            ("secret aaa/squat", vec!["aaa.example"]),
            ("secret aaa/wild", vec!["*.corp.example"]),
            ("secret ops/grafana-tls", vec!["grafana.corp.example"]),
        ]
    );
    let rep = report(&t, "aaa/squat");
    assert!(rep.accepted, "a TLS host it does not own is a warning");
    assert_eq!(warnings(rep), ["TLSHostNotOwned", "TLSHostNotOwned"]);
    // aaa's wildcard covers grafana, which aaa does not own: pinned to the default
    // when ops' own certificate is missing.
    assert_eq!(t.default_certificate_hosts, ["grafana.corp.example"]);
}

fn external(name: &str) -> Service {
    from(json!({
        "metadata": {"name": "ext", "namespace": "b"},
        "spec": {"type": "ExternalName", "externalName": name, "ports": [{"name": "http", "port": 9090}]},
    }))
}

fn to_ext() -> Ingress {
    from(json!({
        "metadata": {"name": "ext", "namespace": "b", "creationTimestamp": "2024-01-01T00:00:00Z",
                     "annotations": {PUBLIC: "true"}},
        "spec": {"ingressClassName": "portcullis", "rules": [{"host": "b.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "ext", "port": {"number": 9090}}}}]}}]},
    }))
}

#[test]
fn external_name_services_are_off_by_default() {
    let mut ix = tenants(Tenancy::default());
    ix.apply(external("api.example.com")).unwrap();
    ix.apply(to_ext()).unwrap();
    let t = ix.translate();
    let rep = report(&t, "b/ext");
    assert_eq!(warnings(rep), ["ExternalNameNotAllowed"]);
    assert!(message(rep, "ExternalNameNotAllowed").contains("--allow-external-name-services"));
    assert!(
        route(&t, "b/ext/rules[0]/paths[0]")
            .backend
            .endpoints
            .is_empty()
    );
}

#[test]
fn external_names_to_loopback_metadata_and_other_namespaces_are_refused() {
    let cases: &[(&str, Option<&str>)] = &[
        ("localhost", Some("loopback")),
        ("127.0.0.2", Some("loopback")),
        ("169.254.169.254", Some("blocked")),
        ("[::1]", Some("loopback")),
        ("web.ops.svc.cluster.local", Some("namespace ops")),
        ("web.ops", Some("namespace ops")),
        ("web", Some("single label")),
        ("web.b.svc.cluster.local", None),
        ("api.example.com", None),
    ];
    for (name, want) in cases {
        let mut ix = tenants(Tenancy {
            allow_external_names: true,
            ..Tenancy::default()
        });
        ix.apply(external(name)).unwrap();
        ix.apply(to_ext()).unwrap();
        let t = ix.translate();
        let rep = report(&t, "b/ext");
        let r = route(&t, "b/ext/rules[0]/paths[0]");
        match want {
            None => {
                assert!(rep.accepted, "{name}: {:?}", rep.notes);
                assert_eq!(r.backend.endpoints.len(), 1);
                assert_eq!(r.backend.endpoints[0].reach, crate::routes::Reach::Tenant);
            }
            Some(word) => {
                assert_eq!(warnings(rep), ["UpstreamRefused"], "{name}");
                assert!(
                    message(rep, "UpstreamRefused").contains(word),
                    "{name}: {:?}",
                    rep.notes
                );
                assert!(r.backend.endpoints.is_empty(), "{name}");
                assert!(denies(r));
            }
        }
    }
}

#[test]
fn endpoint_slice_addresses_are_checked_too() {
    let mut ix = tenants(Tenancy::default());
    // A hand-made slice (allowed) whose address is the metadata service (refused).
    ix.apply(slice(
        "b",
        "web-evil",
        "web",
        json!([{"name": "http", "port": 8080}]),
        json!([{"addresses": ["169.254.169.254"]}]),
    ))
    .unwrap();
    put(&mut ix, "b/app", 1, "b.example/", public());
    let t = ix.translate();
    assert_eq!(warnings(report(&t, "b/app")), ["UpstreamRefused"]);
    // FQDN slices are ExternalNames by another name.
    let mut ix = tenants(Tenancy::default());
    let mut fqdn = slice(
        "b",
        "web-fqdn",
        "web",
        json!([{"name": "http", "port": 8080}]),
        json!([{"addresses": ["api.example.com"]}]),
    );
    fqdn.address_type = "FQDN".into();
    ix.apply(fqdn).unwrap();
    put(&mut ix, "b/app", 1, "b.example/", public());
    assert_eq!(
        warnings(report(&ix.translate(), "b/app")),
        ["ExternalNameNotAllowed"]
    );
}

#[test]
fn identity_and_framing_headers_cannot_be_set_or_removed() {
    let cases = [
        json!({"portcullis.dev/set-request-headers": "{X-Forwarded-Email: admin@corp.example}"}),
        json!({"portcullis.dev/set-request-headers": "{x_forwarded_email: admin@corp.example}"}),
        json!({"portcullis.dev/set-request-headers": "{X-Portcullis-Jwt-Assertion: forged}"}),
        json!({"portcullis.dev/set-request-headers": "{X-Pomerium-Claim-Email: a@b}"}),
        json!({"portcullis.dev/set-request-headers": "{X-Auth-Request-User: admin}"}),
        json!({"portcullis.dev/set-request-headers": "{X-Email: admin@corp.example}"}),
        json!({"portcullis.dev/set-request-headers": "{Host: grafana.corp.example}"}),
        json!({"portcullis.dev/set-request-headers": "{Transfer-Encoding: chunked}"}),
        json!({"portcullis.dev/remove-request-headers": "X-Portcullis-Jwt-Assertion"}),
        json!({"ingress.pomerium.io/remove_request_headers": "[Content-Length]"}),
        // A response's framing too: a wrong Content-Length would let the upstream's
        // bytes be read as the next response on the client's connection.
        json!({"portcullis.dev/set-response-headers": "{Content-Length: '0'}"}),
        json!({"portcullis.dev/set-response-headers": "{transfer_encoding: chunked}"}),
        json!({"portcullis.dev/set-response-headers": "{Connection: close}"}),
    ];
    for ann in cases {
        let mut ix = tenants(Tenancy {
            claim_headers: vec!["x-email".into()],
            ..Tenancy::default()
        });
        let mut a = ann.clone();
        a[PUBLIC] = json!("true");
        ix.apply(ing("b", "forge", 1, "b.example", "/", a)).unwrap();
        let t = ix.translate();
        let rep = report(&t, "b/forge");
        assert_eq!(warnings(rep), ["ReservedHeader"], "{ann}");
        assert!(denies(route(&t, "b/forge/rules[0]/paths[0]")));
    }
    let mut ix = tenants(Tenancy::default());
    put(
        &mut ix,
        "b/ok",
        1,
        "b.example/",
        json!({PUBLIC: "true", "portcullis.dev/set-request-headers": "{X-Team: b}"}),
    );
    assert!(report(&ix.translate(), "b/ok").accepted);
}

fn regex_ingress(patterns: &[String]) -> Ingress {
    let paths: Vec<Value> = patterns
        .iter()
        .map(|p| {
            json!({"path": p, "pathType": "ImplementationSpecific",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}}})
        })
        .collect();
    from(json!({
        "metadata": {"name": "re", "namespace": "b", "creationTimestamp": "2024-01-01T00:00:00Z",
                     "annotations": {PUBLIC: "true", "portcullis.dev/path-regex": "true"}},
        "spec": {"ingressClassName": "portcullis",
                 "rules": [{"host": "b.example", "http": {"paths": paths}}]},
    }))
}

#[test]
fn path_regexes_are_bounded_per_pattern_and_per_ingress() {
    let check = |patterns: Vec<String>| {
        let mut ix = tenants(Tenancy::default());
        ix.apply(regex_ingress(&patterns)).unwrap();
        let t = ix.translate();
        let rep = report(&t, "b/re").clone();
        (rep, t)
    };
    let (rep, t) = check(vec!["/api/v[0-9]+/.*".into(), "/(foo|bar)/[a-z]+".into()]);
    assert!(rep.accepted, "{:?}", rep.notes);
    assert_eq!(
        route(&t, "b/re/rules[0]/paths[0]").path,
        PathMatch::Regex("/api/v[0-9]+/.*".into())
    );
    // One pattern over the size limit.
    let (rep, _) = check(vec![r"/\w{1,30}/\w{1,30}".into()]);
    assert_eq!(warnings(&rep), ["InvalidPath"]);
    assert!(
        message(&rep, "InvalidPath").contains("KiB"),
        "{:?}",
        rep.notes
    );
    // Too many patterns.
    let many: Vec<String> = (0..40).map(|i| format!("/p{i}/[a-z]+")).collect();
    let (rep, _) = check(many);
    assert_eq!(warnings(&rep), ["PathRegexLimit"]);
    // Each under the limit, together over the budget.
    let big: Vec<String> = (0..8).map(|i| format!(r"/b{i}/(\w+)/(\w+)")).collect();
    let (rep, _) = check(big);
    assert_eq!(warnings(&rep), ["PathRegexLimit"], "{:?}", rep.notes);
    assert!(message(&rep, "PathRegexLimit").contains("KiB"));
}

#[test]
fn annotation_values_are_capped() {
    let mut ix = tenants(Tenancy::default());
    let huge = "a@example.com,".repeat(4000);
    put(
        &mut ix,
        "b/big",
        1,
        "b.example/",
        json!({"portcullis.dev/allowed-users": huge}),
    );
    let t = ix.translate();
    let rep = report(&t, "b/big");
    assert_eq!(warnings(rep), ["InvalidAnnotation"]);
    assert!(message(rep, "InvalidAnnotation").contains("limit"));
}
