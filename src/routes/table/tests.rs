//! Table-driven tests of host and path matching, following the ingress conformance
//! suite's path_rules, host_rules and default_backend features, plus Pomerium's
//! file-mode matching and backend balancing.

use std::sync::Arc;

use super::backend::{EJECT_AFTER_FAILURES, EJECT_FOR_MS};
use super::regex::PATH_REGEX_MAX_LEN;
use super::*;
use crate::routes::Reach;

fn backend(name: &str) -> BackendSpec {
    BackendSpec {
        endpoints: vec![EndpointSpec {
            scheme: UpstreamScheme::Http,
            host: name.to_string(),
            port: 8080,
            reach: Reach::Operator,
        }],
        balance: Balance::RoundRobin,
    }
}

fn route(id: &str, host: &str, path: PathMatch) -> RouteSpec {
    RouteSpec {
        id: id.to_string(),
        host: HostMatch::parse(host).unwrap(),
        port: None,
        path,
        backend: backend(id),
        policy: Arc::new(Policy::default()),
        options: RouteOptions::default(),
    }
}

fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.into())
}
fn prefix(p: &str) -> PathMatch {
    PathMatch::SegmentPrefix(p.into())
}
fn str_prefix(p: &str) -> PathMatch {
    PathMatch::StrPrefix(p.into())
}
fn regex(p: &str) -> PathMatch {
    PathMatch::Regex(p.into())
}

/// Runs `(host, path, expected route id or None for 404)` cases against a model.
fn check(model: &Model, cases: &[(&str, &str, Option<&str>)]) {
    let (table, diags) = build(model, None);
    assert!(diags.is_empty(), "unexpected diagnostics: {diags:?}");
    for (host, path, want) in cases {
        let got = table.lookup(host, 80, path).map(|m| m.route.id.to_string());
        assert_eq!(got.as_deref(), *want, "{host}{path}");
    }
}

/// The conformance suite's path_rules background Ingress.
fn path_rules_model() -> Model {
    Model {
        routes: vec![
            route("foo-exact", "exact-path-rules", exact("/foo")),
            route("foo-prefix", "prefix-path-rules", prefix("/foo")),
            route(
                "aaa-slash-bbb-prefix",
                "prefix-path-rules",
                prefix("/aaa/bbb"),
            ),
            route("aaa-prefix", "prefix-path-rules", prefix("/aaa")),
            route("mixed-foo-prefix", "mixed-path-rules", prefix("/foo")),
            route("mixed-foo-exact", "mixed-path-rules", exact("/foo")),
            route(
                "aaa-slash-bbb-slash-prefix",
                "trailing-slash-path-rules",
                prefix("/aaa/bbb/"),
            ),
            route(
                "foo-slash-exact",
                "trailing-slash-path-rules",
                exact("/foo/"),
            ),
        ],
        ..Model::default()
    }
}

#[test]
fn conformance_path_rules() {
    check(
        &path_rules_model(),
        &[
            ("exact-path-rules", "/foo", Some("foo-exact")),
            ("exact-path-rules", "/foo/", None),
            ("exact-path-rules", "/FOO", None),
            ("exact-path-rules", "/bar", None),
            ("prefix-path-rules", "/foo", Some("foo-prefix")),
            ("prefix-path-rules", "/foo/", Some("foo-prefix")),
            ("prefix-path-rules", "/FOO", None),
            (
                "prefix-path-rules",
                "/aaa/bbb",
                Some("aaa-slash-bbb-prefix"),
            ),
            (
                "prefix-path-rules",
                "/aaa/bbb/ccc",
                Some("aaa-slash-bbb-prefix"),
            ),
            ("prefix-path-rules", "/aaa/ccc", Some("aaa-prefix")),
            ("prefix-path-rules", "/aaaccc", None),
            ("prefix-path-rules", "/aaa/bbbccc", Some("aaa-prefix")),
            ("mixed-path-rules", "/foo", Some("mixed-foo-exact")),
            ("mixed-path-rules", "/foo/x", Some("mixed-foo-prefix")),
            (
                "trailing-slash-path-rules",
                "/aaa/bbb",
                Some("aaa-slash-bbb-slash-prefix"),
            ),
            (
                "trailing-slash-path-rules",
                "/aaa/bbb/",
                Some("aaa-slash-bbb-slash-prefix"),
            ),
            ("trailing-slash-path-rules", "/foo", None),
            (
                "trailing-slash-path-rules",
                "/foo/",
                Some("foo-slash-exact"),
            ),
        ],
    );
}

#[test]
fn conformance_host_rules() {
    let model = Model {
        routes: vec![
            route("wildcard-foo-com", "*.foo.com", prefix("/")),
            route("foo-bar-com", "foo.bar.com", prefix("/")),
        ],
        ..Model::default()
    };
    check(
        &model,
        &[
            ("foo.bar.com", "/", Some("foo-bar-com")),
            ("FOO.Bar.com.", "/x", Some("foo-bar-com")),
            ("subdomain.bar.com", "/", None),
            ("bar.foo.com", "/", Some("wildcard-foo-com")),
            ("baz.bar.foo.com", "/", None),
            ("foo.com", "/", None),
        ],
    );
}

#[test]
fn conformance_default_backend() {
    let model = Model {
        default_backend: Some(route("echo-service", "", PathMatch::Any)),
        ..Model::default()
    };
    check(
        &model,
        &[
            ("my-host", "/", Some("echo-service")),
            ("my-host", "/sub-path", Some("echo-service")),
            ("some-host", "/", Some("echo-service")),
            ("", "/resource", Some("echo-service")),
        ],
    );
}

#[test]
fn default_backend_takes_what_rules_miss() {
    let model = Model {
        routes: vec![
            route("app", "app.example.com", prefix("/app")),
            route("any-host", "", exact("/healthz")),
        ],
        default_backend: Some(route("fallback", "", PathMatch::Any)),
        ..Model::default()
    };
    check(
        &model,
        &[
            ("app.example.com", "/app/x", Some("app")),
            // A host with rules resolves paths among its own rules only.
            ("app.example.com", "/healthz", Some("fallback")),
            ("other.example.com", "/healthz", Some("any-host")),
            ("other.example.com", "/nope", Some("fallback")),
        ],
    );
}

#[test]
fn precedence_exact_then_longest_prefix_then_regex_then_catch_all() {
    let model = Model {
        routes: vec![
            route("catch-all", "h", PathMatch::Any),
            route("regex-first", "h", regex("/api/v[0-9]+/.*")),
            route("regex-second", "h", regex("/api/.*")),
            route("short-prefix", "h", str_prefix("/api")),
            route("long-prefix", "h", str_prefix("/api/v1/users")),
            route("exact", "h", exact("/api/v1/users")),
        ],
        ..Model::default()
    };
    check(
        &model,
        &[
            ("h", "/api/v1/users", Some("exact")),
            ("h", "/api/v1/users/7", Some("long-prefix")),
            ("h", "/apix", Some("short-prefix")),
            ("h", "/other", Some("catch-all")),
        ],
    );
    // Regexes in model order, before the catch-all; anchored at both ends.
    let model = Model {
        routes: vec![
            route("catch-all", "h", PathMatch::Any),
            route("regex-first", "h", regex("/api/v[0-9]+/.*")),
            route("regex-second", "h", regex("/api/.*")),
        ],
        ..Model::default()
    };
    check(
        &model,
        &[
            ("h", "/api/v2/x", Some("regex-first")),
            ("h", "/api/x", Some("regex-second")),
            ("h", "/x/api/x", Some("catch-all")),
        ],
    );
}

#[test]
fn pomerium_prefix_is_a_string_prefix() {
    let model = Model {
        routes: vec![route("foo", "h", str_prefix("/foo"))],
        ..Model::default()
    };
    check(
        &model,
        &[
            ("h", "/foo", Some("foo")),
            ("h", "/foobar", Some("foo")),
            ("h", "/fo", None),
        ],
    );
}

#[test]
fn ties_keep_model_order_and_duplicates_are_reported() {
    let model = Model {
        routes: vec![
            route("first", "h", str_prefix("/a")),
            route("second", "h", prefix("/b")),
            route("dup", "h", str_prefix("/a")),
        ],
        ..Model::default()
    };
    let (table, diags) = build(&model, None);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].route_id, "dup");
    assert_eq!(
        table.lookup("h", 443, "/a").unwrap().route.id.as_ref(),
        "first"
    );
}

#[test]
fn bad_regex_is_left_out_and_reported() {
    let model = Model {
        routes: vec![
            route("bad", "h", regex("/(unclosed")),
            route("good", "h", exact("/ok")),
        ],
        ..Model::default()
    };
    let (table, diags) = build(&model, None);
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("invalid path regex"), "{diags:?}");
    assert!(table.lookup("h", 443, "/ok").is_some());
    assert!(table.lookup("h", 443, "/(unclosed").is_none());
}

#[test]
fn ports_in_from_restrict_matching() {
    let mut on_8443 = route("on-8443", "h", PathMatch::Any);
    on_8443.port = Some(8443);
    let model = Model {
        routes: vec![on_8443, route("other-path", "h", exact("/x"))],
        ..Model::default()
    };
    let (table, _) = build(&model, None);
    let id = |port, path| {
        table
            .lookup("h", port, path)
            .map(|m| m.route.id.to_string())
    };
    assert_eq!(id(8443, "/").as_deref(), Some("on-8443"));
    assert_eq!(id(443, "/"), None);
    assert_eq!(id(443, "/x").as_deref(), Some("other-path"));
}

#[test]
fn prefix_rewrite() {
    let cases: &[(PathMatch, &str, &str, &str)] = &[
        (str_prefix("/api"), "/v2", "/api/users", "/v2/users"),
        (str_prefix("/api/"), "/", "/api/users", "/users"),
        (prefix("/app"), "/", "/app/x", "/x"),
        (prefix("/app"), "/", "/app", "/"),
        (PathMatch::Any, "/base/", "/x", "/base/x"),
        (exact("/old"), "/new", "/old", "/new"),
    ];
    for (path, rewrite, request, want) in cases {
        let mut spec = route("r", "h", path.clone());
        spec.options.prefix_rewrite = Some(rewrite.to_string());
        let model = Model {
            routes: vec![spec],
            ..Model::default()
        };
        let (table, _) = build(&model, None);
        let m = table.lookup("h", 443, request).unwrap();
        assert_eq!(
            m.rewritten_path(request).as_deref(),
            Some(*want),
            "{path:?}"
        );
    }
}

#[test]
fn authenticate_host_and_known_hosts() {
    let model = Model {
        routes: vec![route("w", "*.apps.example.com", PathMatch::Any)],
        authenticate_host: Some(HostPort {
            host: "auth.example.com".into(),
            port: None,
        }),
        ..Model::default()
    };
    let (table, _) = build(&model, None);
    assert!(table.is_authenticate_host("Auth.Example.com", 443));
    assert!(!table.is_authenticate_host("app.example.com", 443));
    assert!(table.knows_host("grafana.apps.example.com"));
    assert!(!table.knows_host("evil.com"));
    assert!(!table.knows_host("a.b.apps.example.com"));
}

fn two_endpoints(balance: Balance) -> Backend {
    Backend::new(&BackendSpec {
        endpoints: vec![
            EndpointSpec {
                scheme: UpstreamScheme::Http,
                host: "a".into(),
                port: 1,
                reach: Reach::Operator,
            },
            EndpointSpec {
                scheme: UpstreamScheme::Http,
                host: "::1".into(),
                port: 2,
                reach: Reach::Operator,
            },
        ],
        balance,
    })
}

#[test]
fn round_robin_alternates_and_skips_ejected() {
    let b = two_endpoints(Balance::RoundRobin);
    let picks: Vec<_> = (0..4).map(|_| b.pick(0).unwrap().spec.port).collect();
    assert_eq!(picks, [1, 2, 1, 2]);
    assert_eq!(b.endpoints[1].authority.as_str(), "[::1]:2");
    for _ in 0..EJECT_AFTER_FAILURES {
        b.endpoints[0].report(false, 100);
    }
    assert!(b.endpoints[0].is_ejected(100));
    assert!((0..4).all(|_| b.pick(100).unwrap().spec.port == 2));
    // Back after the ejection window.
    let later = 100 + EJECT_FOR_MS;
    let picks: Vec<_> = (0..2).map(|_| b.pick(later).unwrap().spec.port).collect();
    assert!(picks.contains(&1), "{picks:?}");
}

#[test]
fn everything_ejected_still_picks() {
    let b = two_endpoints(Balance::RoundRobin);
    for e in b.endpoints.iter() {
        for _ in 0..EJECT_AFTER_FAILURES {
            e.report(false, 0);
        }
    }
    assert!(b.pick(1).is_some());
}

#[test]
fn success_resets_failure_count() {
    let b = two_endpoints(Balance::RoundRobin);
    for _ in 0..EJECT_AFTER_FAILURES - 1 {
        b.endpoints[0].report(false, 0);
    }
    b.endpoints[0].report(true, 0);
    b.endpoints[0].report(false, 0);
    assert!(!b.endpoints[0].is_ejected(0));
}

#[test]
fn least_request_prefers_idle_endpoint() {
    let b = two_endpoints(Balance::LeastRequest);
    let _busy = b.endpoints[0].start();
    assert!((0..4).all(|_| b.pick(0).unwrap().spec.port == 2));
    drop(_busy);
    assert_eq!(b.endpoints[0].inflight(), 0);
}

#[test]
fn rebuild_keeps_backend_state() {
    let model = Model {
        routes: vec![route("r", "h", PathMatch::Any)],
        ..Model::default()
    };
    let (first, _) = build(&model, None);
    let (second, _) = build(&model, Some(&first));
    let a = &first.lookup("h", 443, "/").unwrap().route.backend;
    let b = &second.lookup("h", 443, "/").unwrap().route.backend;
    assert!(Arc::ptr_eq(a, b));
}

#[test]
fn rebuild_reuses_compiled_path_regexes() {
    // Patterns of this test alone: the memo is shared with tests running beside it.
    let model = Model {
        routes: vec![
            route("a", "h", regex("/api/v[0-9]+/rebuild")),
            // The same pattern on another host is compiled once.
            route("b", "g", regex("/api/v[0-9]+/rebuild")),
            route("c", "h", regex("/other/[a-z]+/rebuild")),
        ],
        ..Model::default()
    };
    let (first, diags) = build(&model, None);
    assert!(diags.is_empty());
    assert_eq!(
        first.regex_stats(),
        RegexStats {
            compiled: 2,
            reused: 0,
            shared: 0
        }
    );
    let mut changed = model.clone();
    changed
        .routes
        .push(route("d", "h", regex("/new/rebuild/.*")));
    let (second, _) = build(&changed, Some(&first));
    assert_eq!(
        second.regex_stats(),
        RegexStats {
            compiled: 1,
            reused: 2,
            shared: 0
        }
    );
    let compiled = |t: &RoutingTable, p: &str| t.regexes.get(p).unwrap().clone();
    assert!(Arc::ptr_eq(
        &compiled(&first, "/api/v[0-9]+/rebuild"),
        &compiled(&second, "/api/v[0-9]+/rebuild")
    ));
    // A pattern no route uses any more is dropped with the old table.
    let (third, _) = build(&Model::default(), Some(&second));
    assert!(third.regexes.is_empty());
    assert_eq!(
        second
            .lookup("h", 80, "/new/rebuild/x")
            .unwrap()
            .route
            .id
            .as_ref(),
        "d"
    );
}

#[test]
fn path_regexes_have_bounded_sizes() {
    let cases: &[(&str, bool)] = &[
        ("/api/v[0-9]+/users/[^/]+", true),
        ("/(foo|bar|baz)/.*\\.(png|jpg)", true),
        ("/(\\w+)/(\\w+)", true),
        ("/\\w{1,30}/\\w{1,30}/\\w{1,30}", false),
        ("/[a-z]{1,1000}{1,1000}", false),
        ("(unclosed", false),
    ];
    for (pattern, ok) in cases {
        let got = compile_path_regex(pattern);
        assert_eq!(got.is_ok(), *ok, "{pattern}: {:?}", got.err());
    }
    let long = format!("/{}", "a".repeat(PATH_REGEX_MAX_LEN));
    assert!(
        compile_path_regex(&long)
            .unwrap_err()
            .contains("bytes long")
    );
    let too_big = compile_path_regex("/\\w{1,30}/\\w{1,30}/\\w{1,30}").unwrap_err();
    assert!(too_big.contains("KiB"), "{too_big}");
}

#[test]
fn nothing_answers_on_the_authenticate_host() {
    let model = Model {
        routes: vec![
            route("wild", "*.corp.example", PathMatch::Any),
            route("any", "*", PathMatch::Any),
        ],
        default_backend: Some(route("default", "*", PathMatch::Any)),
        authenticate_host: Some(HostPort {
            host: "authenticate.corp.example".into(),
            port: Some(8443),
        }),
        ..Model::default()
    };
    let (table, _) = build(&model, None);
    for port in [443, 8443] {
        assert!(
            table
                .lookup("Authenticate.Corp.Example.", port, "/b")
                .is_none(),
            "{port}"
        );
    }
    assert_eq!(
        table
            .lookup("x.corp.example", 443, "/")
            .unwrap()
            .route
            .id
            .as_ref(),
        "wild"
    );
}

#[test]
fn exclusive_hosts_are_not_answered_by_wildcards_or_catch_alls() {
    let model = Model {
        routes: vec![
            route("wild", "*.corp.example", PathMatch::Any),
            route("any", "*", PathMatch::Any),
        ],
        exclusive_hosts: vec!["grafana.corp.example".into()],
        ..Model::default()
    };
    check(
        &model,
        &[
            ("grafana.corp.example", "/", None),
            ("other.corp.example", "/", Some("wild")),
            ("elsewhere.example", "/", Some("any")),
        ],
    );
    let (table, _) = build(&model, None);
    assert!(!table.knows_host("grafana.corp.example"));
    // The admin-designated default backend still answers unmatched paths.
    let with_default = Model {
        default_backend: Some(route("default", "*", PathMatch::Any)),
        ..model
    };
    check(
        &with_default,
        &[("grafana.corp.example", "/", Some("default"))],
    );
}

#[test]
fn a_pattern_someone_holds_is_not_compiled_again() {
    let (held, fresh) = shared_path_regex("/held/[a-z]+/shared").unwrap();
    assert!(fresh);
    let model = Model {
        routes: vec![route("a", "h", regex("/held/[a-z]+/shared"))],
        ..Model::default()
    };
    let (table, _) = build(&model, None);
    assert_eq!(
        table.regex_stats(),
        RegexStats {
            compiled: 0,
            reused: 0,
            shared: 1
        }
    );
    assert!(Arc::ptr_eq(&held, &table.regexes["/held/[a-z]+/shared"]));
    // Once nobody holds it, it is compiled anew.
    drop((held, table));
    assert!(shared_path_regex("/held/[a-z]+/shared").unwrap().1);
}
