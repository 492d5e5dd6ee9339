//! Hosts, paths and the default backend, with Kubernetes' meaning.

use serde_json::json;

use super::*;
use crate::routes::{HostMatch, PathMatch, UpstreamHost};

fn one_path(path_type: &str, path: Option<&str>, annotations: serde_json::Value) -> Ingress {
    let mut p = json!({"pathType": path_type,
        "backend": {"service": {"name": "web", "port": {"number": 80}}}});
    if let Some(path) = path {
        p["path"] = json!(path);
    }
    let mut ing = ingress_spec(
        "a",
        json!({"rules": [{"host": "a.example.com", "http": {"paths": [p]}}]}),
    );
    ing.metadata.annotations = from(annotations);
    ing
}

#[test]
fn path_types() {
    let none = json!({});
    let regex = json!({"portcullis.dev/path-regex": "true"});
    let cases = [
        (
            "Exact",
            Some("/foo"),
            &none,
            PathMatch::Exact("/foo".into()),
        ),
        (
            "Prefix",
            Some("/foo"),
            &none,
            PathMatch::SegmentPrefix("/foo".into()),
        ),
        (
            "Prefix",
            Some("/foo/"),
            &none,
            PathMatch::SegmentPrefix("/foo/".into()),
        ),
        (
            "Prefix",
            Some("/"),
            &none,
            PathMatch::SegmentPrefix("/".into()),
        ),
        (
            "ImplementationSpecific",
            Some("/foo"),
            &none,
            PathMatch::SegmentPrefix("/foo".into()),
        ),
        ("ImplementationSpecific", None, &none, PathMatch::Any),
        (
            "ImplementationSpecific",
            Some("/api/v[0-9]+"),
            &regex,
            PathMatch::Regex("/api/v[0-9]+".into()),
        ),
        // path-regex only changes ImplementationSpecific.
        (
            "Exact",
            Some("/a.b"),
            &regex,
            PathMatch::Exact("/a.b".into()),
        ),
        (
            "Prefix",
            Some("/a"),
            &regex,
            PathMatch::SegmentPrefix("/a".into()),
        ),
    ];
    for (path_type, path, ann, want) in cases {
        let mut ix = index();
        ix.apply(one_path(path_type, path, ann.clone())).unwrap();
        let t = ix.translate();
        let r = route(&t, "apps/a/rules[0]/paths[0]");
        assert_eq!(r.path, want, "{path_type} {path:?}");
        assert!(report(&t, "apps/a").accepted, "{path_type} {path:?}");
    }
}

#[test]
fn bad_paths_reject_with_a_deny_over_the_host() {
    let regex = json!({"portcullis.dev/path-regex": "true"});
    let cases = [
        ("Exact", Some("foo"), json!({})),
        ("Prefix", None, json!({})),
        ("Sideways", Some("/x"), json!({})),
        ("ImplementationSpecific", Some("/(unclosed"), regex),
    ];
    for (path_type, path, ann) in cases {
        let mut ix = index();
        ix.apply(one_path(path_type, path, ann)).unwrap();
        let t = ix.translate();
        let rep = report(&t, "apps/a");
        assert!(!rep.accepted, "{path_type} {path:?}");
        assert_eq!(warnings(rep), ["InvalidPath"], "{path_type} {path:?}");
        let r = route(&t, "apps/a/rules[0]/paths[0]");
        assert_eq!(r.path, PathMatch::Any);
        assert_eq!(r.host, HostMatch::Exact("a.example.com".into()));
        assert!(denies(r));
        assert!(r.backend.endpoints.is_empty());
    }
}

#[test]
fn hosts_and_wildcards() {
    let mut ix = catch_all_index();
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    let paths = json!({"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]});
    ix.apply(ingress_spec(
        "a",
        json!({"rules": [
            {"host": "Foo.Example.com", "http": paths},
            {"host": "*.apps.example.com", "http": paths},
            {"http": paths},
        ]}),
    ))
    .unwrap();
    let t = ix.translate();
    assert_eq!(
        route(&t, "apps/a/rules[0]/paths[0]").host,
        HostMatch::Exact("foo.example.com".into())
    );
    assert_eq!(
        route(&t, "apps/a/rules[1]/paths[0]").host,
        HostMatch::Wildcard("apps.example.com".into())
    );
    assert_eq!(route(&t, "apps/a/rules[2]/paths[0]").host, HostMatch::Any);
    let rep = report(&t, "apps/a");
    assert_eq!(rep.hosts, ["*.apps.example.com", "foo.example.com"]);
    assert_eq!(rep.routes.len(), 3);
    // Ingress convention: the upstream sees the client's Host.
    assert_eq!(
        route(&t, "apps/a/rules[0]/paths[0]").options.upstream_host,
        UpstreamHost::Original
    );
}

#[test]
fn invalid_host_rejects() {
    let mut ix = index();
    ix.apply(ingress("a", "bad host!", json!({}))).unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(!rep.accepted);
    assert_eq!(warnings(rep), ["InvalidHost"]);
    assert!(t.model.routes.is_empty());
}

#[test]
fn rule_without_http_goes_to_the_ingress_default_backend() {
    let mut ix = catch_all_index();
    ix.apply(ingress_spec(
        "a",
        json!({
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
            "rules": [{"host": "a.example.com"}],
        }),
    ))
    .unwrap();
    let t = ix.translate();
    let r = route(&t, "apps/a/rules[0]");
    assert_eq!(
        (&r.host, &r.path),
        (&HostMatch::Exact("a.example.com".into()), &PathMatch::Any)
    );
    assert_eq!(r.backend.endpoints.len(), 1);
    let d = t.model.default_backend.as_ref().unwrap();
    assert_eq!(d.id, "apps/a/defaultBackend");
    assert_eq!(d.backend.endpoints[0].host, "10.0.0.1");
    assert!(report(&t, "apps/a").serves_default_backend);
}

#[test]
fn oldest_default_backend_wins() {
    let mut ix = catch_all_index();
    let with_default = |name: &str, ns: &str, created: &str| -> Ingress {
        from(json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"ingressClassName": "portcullis",
                     "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        }))
    };
    ix.apply(with_default("new", "apps", "2024-05-01T00:00:00Z"))
        .unwrap();
    ix.apply(with_default("old-b", "apps", "2024-01-01T00:00:00Z"))
        .unwrap();
    ix.apply(with_default("old-a", "zzz", "2024-01-01T00:00:00Z"))
        .unwrap();
    let t = ix.translate();
    assert_eq!(
        t.model.default_backend.as_ref().unwrap().id,
        "apps/old-b/defaultBackend"
    );
    assert!(report(&t, "apps/old-b").serves_default_backend);
    for loser in ["apps/new", "zzz/old-a"] {
        let rep = report(&t, loser);
        assert!(!rep.serves_default_backend);
        assert!(
            rep.accepted,
            "a losing default backend is a warning, not a rejection"
        );
        assert!(warnings(rep).contains(&"DefaultBackendConflict"), "{loser}");
    }
}

#[test]
fn identical_routes_older_ingress_wins_and_newer_is_told() {
    let mut ix = index();
    let mut newer = ingress("newer", "same.example.com", json!({}));
    newer.metadata.creation_timestamp = from(json!("2024-06-01T00:00:00Z"));
    ix.apply(newer).unwrap();
    ix.apply(ingress("older", "same.example.com", json!({})))
        .unwrap();
    let t = ix.translate();
    // Model order is age order: the table keeps the first of identical routes.
    assert_eq!(t.model.routes[0].id, "apps/older/rules[0]/paths[0]");
    assert!(warnings(report(&t, "apps/newer")).contains(&"RouteConflict"));
    assert!(!warnings(report(&t, "apps/older")).contains(&"RouteConflict"));
}
