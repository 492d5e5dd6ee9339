//! Table-driven tests of the Gateway API table: listener choice, host groups, match
//! precedence, weights, redirects and rewrites. Cases marked "conformance" are the
//! suite's own (sigs.k8s.io/gateway-api/conformance, tests/*.yaml).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;
use crate::policy::Policy;
use crate::routes::{
    Balance, EndpointSpec, HostPort, Model, Reach, RouteOptions, RoutingTable, UpstreamScheme,
    build,
};

const PORT: u16 = 20080;

/// Request headers of a case.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn backend(name: &str) -> BackendSpec {
    BackendSpec {
        endpoints: vec![EndpointSpec {
            scheme: UpstreamScheme::Http,
            host: name.to_string(),
            port: 80,
            reach: Reach::Tenant,
        }],
        balance: Balance::RoundRobin,
    }
}

/// A rule `id` on `hostnames` with `matches`, forwarding to a backend named `id`.
fn rule(id: &str, hostnames: &[&str], matches: RequestMatch) -> RuleSpec {
    RuleSpec {
        id: id.to_string(),
        namespace: "ns".to_string(),
        hostnames: hostnames.iter().map(|h| host(h)).collect(),
        matches,
        order: (0, 0, 0),
        action: Action::Forward {
            backends: vec![WeightedBackend {
                backend: Some(backend(id)),
                weight: 1,
                request_headers: HeaderModifier::default(),
            }],
            filters: Filters::default(),
        },
        policy: Arc::new(Policy::default()),
        options: RouteOptions::default(),
    }
}

fn host(h: &str) -> GatewayHost {
    match h.strip_prefix("*.") {
        Some(s) => GatewayHost::Wildcard(s.to_string()),
        None => GatewayHost::Exact(h.to_string()),
    }
}

fn prefix(p: &str) -> RequestMatch {
    RequestMatch {
        path: PathMatch::Prefix(p.to_string()),
        ..RequestMatch::default()
    }
}

fn exact(p: &str) -> RequestMatch {
    RequestMatch {
        path: PathMatch::Exact(p.to_string()),
        ..RequestMatch::default()
    }
}

fn listener(name: &str, hostname: Option<&str>, rules: Vec<RuleSpec>) -> ListenerSpec {
    ListenerSpec {
        name: name.to_string(),
        hostname: hostname.map(host),
        rules,
        gateway_namespace: "infra".to_string(),
        shares_owned_names: false,
    }
}

fn table(listeners: Vec<ListenerSpec>) -> RoutingTable {
    table_with(listeners, Arc::default())
}

/// [`table`] with names that have a standing.
fn table_with(listeners: Vec<ListenerSpec>, standings: Arc<HostStandings>) -> RoutingTable {
    let model = Model {
        gateways: vec![GatewayPortSpec {
            local_port: PORT,
            id: "infra/gw:80".to_string(),
            port: 80,
            tls: false,
            listeners,
            standings,
        }],
        ..Model::default()
    };
    let (table, diagnostics) = build(&model, None);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    table
}

/// The rule id a request reaches (`None`: 404).
fn lookup(
    t: &RoutingTable,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    lookup_method(t, Method::GET, host, path_and_query, headers)
}

fn lookup_method(
    t: &RoutingTable,
    method: Method,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let req = GatewayRequest {
        host,
        method: &method,
        path,
        query,
        headers: &map,
    };
    t.lookup_gateway(PORT, "infra/gw:80", &req)
        .map(|m| m.route.id.to_string())
}

fn check(t: &RoutingTable, cases: &[(&str, &str, Headers<'_>, Option<&str>)]) {
    for (host, path, headers, want) in cases {
        assert_eq!(
            lookup(t, host, path, headers).as_deref(),
            *want,
            "{host}{path} {headers:?}"
        );
    }
}

#[test]
fn listeners_most_specific_hostname_first_and_isolated() {
    // conformance: httproute-listener-hostname-matching.yaml, plus an empty listener.
    let t = table(vec![
        listener(
            "listener-1",
            Some("bar.com"),
            vec![rule("route-1", &[], prefix("/"))],
        ),
        listener(
            "listener-2",
            Some("foo.bar.com"),
            vec![rule("route-2", &[], prefix("/"))],
        ),
        listener(
            "listener-3",
            Some("*.bar.com"),
            vec![rule("route-3", &[], prefix("/"))],
        ),
        listener(
            "listener-4",
            Some("*.foo.com"),
            vec![rule("route-4", &[], prefix("/"))],
        ),
        listener("empty", Some("quiet.bar.com"), vec![]),
        listener("any", None, vec![rule("catch-all", &[], prefix("/"))]),
    ]);
    check(
        &t,
        &[
            ("bar.com", "/", &[], Some("route-1")),
            ("foo.bar.com", "/", &[], Some("route-2")),
            ("baz.bar.com", "/", &[], Some("route-3")),
            ("boo.bar.com", "/", &[], Some("route-3")),
            // Gateway wildcards cover more than one label.
            ("multiple.prefixes.bar.com", "/", &[], Some("route-3")),
            ("bar.foo.com", "/", &[], Some("route-4")),
            ("multiple.prefixes.foo.com", "/", &[], Some("route-4")),
            ("foo.com", "/", &[], Some("catch-all")),
            ("no.matching.host", "/", &[], Some("catch-all")),
            // The most specific listener has no routes: nothing else answers for it.
            ("quiet.bar.com", "/", &[], None),
            // Case and a trailing dot do not matter.
            ("FOO.Bar.com.", "/", &[], Some("route-2")),
        ],
    );
}

#[test]
fn host_groups_fall_through_in_order() {
    let t = table(vec![listener(
        "http",
        None,
        vec![
            rule("exact-a", &["foo.example.com"], prefix("/a")),
            rule("deep-b", &["*.foo.example.com"], prefix("/b")),
            rule("wild-b", &["*.example.com"], prefix("/b")),
            rule("wild-c", &["*.example.com"], prefix("/c")),
            rule("any-d", &[], prefix("/d")),
        ],
    )]);
    check(
        &t,
        &[
            ("foo.example.com", "/a", &[], Some("exact-a")),
            // No exact rule matches /b: the wildcard's does.
            ("foo.example.com", "/b", &[], Some("wild-b")),
            ("x.foo.example.com", "/b", &[], Some("deep-b")),
            ("x.foo.example.com", "/c", &[], Some("wild-c")),
            ("foo.example.com", "/d", &[], Some("any-d")),
            ("example.com", "/b", &[], None),
            ("other.org", "/d", &[], Some("any-d")),
            ("other.org", "/a", &[], None),
        ],
    );
}

#[test]
fn names_with_a_standing_fall_through_only_to_namespaces_that_may_use_them() {
    let ns = |mut r: RuleSpec, ns: &str| {
        r.namespace = ns.to_string();
        r
    };
    let names = |v: &[&str]| v.iter().map(|s| (*s).into()).collect::<Box<[Box<str>]>>();
    let owned = |owners: &[&str], delegates: &[&str]| NameStanding {
        reserved: false,
        owners: names(owners),
        delegates: names(delegates),
    };
    let rules = |gw_ns: &str| {
        vec![
            ns(rule("theirs", &["*.example.com"], prefix("/")), "other"),
            ns(
                rule("own-wild", &["*.example.com"], prefix("/own")),
                "owner",
            ),
            ns(
                rule("own-exact", &["app.example.com"], prefix("/app")),
                "owner",
            ),
            ns(rule("any", &[], prefix("/any")), "other"),
            ns(rule("gw", &[], prefix("/gw")), gw_ns),
        ]
    };
    let mut standings = HostStandings::default();
    standings.insert("app.example.com", false, owned(&["owner"], &[]));
    standings.insert(
        "ops.example.com",
        false,
        NameStanding {
            reserved: true,
            ..NameStanding::default()
        },
    );
    standings.insert("apps.example.com", true, owned(&["owner"], &[]));
    // Under the owner's wildcard, a host the owner let `other` use.
    standings.insert(
        "free.apps.example.com",
        false,
        owned(&["owner"], &["other"]),
    );
    // The Gateway's namespace's own names.
    standings.insert("infra.example.com", true, owned(&["infra"], &[]));
    // A standing without owner (a delegation no owner backs): a route naming it needs
    // a listener whose hostname its Gateway's namespace owns.
    standings.insert("left.example.com", false, owned(&[], &[]));
    let standings = Arc::new(standings);
    let t = table_with(
        vec![listener("http", None, rules("infra"))],
        standings.clone(),
    );
    check(
        &t,
        &[
            ("app.example.com", "/app", &[], Some("own-exact")),
            ("app.example.com", "/own", &[], Some("own-wild")),
            // Another namespace's wildcard or host-less rule never answers for the
            // owner's host.
            ("app.example.com", "/else", &[], None),
            ("app.example.com", "/any", &[], None),
            // Reserved: no one's broad rule.
            ("ops.example.com", "/own", &[], None),
            ("ops.example.com", "/any", &[], None),
            // One label below the owner's wildcard: the parent's standing.
            ("x.apps.example.com", "/own", &[], Some("own-wild")),
            ("x.apps.example.com", "/else", &[], None),
            ("x.apps.example.com", "/any", &[], None),
            // A delegate's rules answer what it was delegated.
            ("free.apps.example.com", "/else", &[], Some("theirs")),
            // Two labels below: no standing, no limit.
            ("y.x.apps.example.com", "/else", &[], Some("theirs")),
            ("else.example.com", "/else", &[], Some("theirs")),
            ("other.org", "/any", &[], Some("any")),
            // The Gateway namespace's names: its own rules; a listener without
            // hostname shares nothing with the routes it admits.
            ("x.infra.example.com", "/gw", &[], Some("gw")),
            ("x.infra.example.com", "/any", &[], None),
            ("left.example.com", "/any", &[], None),
        ],
    );
    // A listener whose hostname the Gateway's namespace owns shares that namespace's
    // names (and names no one owns) with the routes it admits, nothing else.
    let mut l = listener("https", Some("*.example.com"), rules("infra"));
    l.shares_owned_names = true;
    let t = table_with(vec![l], standings);
    check(
        &t,
        &[
            ("x.infra.example.com", "/any", &[], Some("theirs")),
            ("left.example.com", "/any", &[], Some("theirs")),
            ("app.example.com", "/any", &[], None),
            ("x.apps.example.com", "/else", &[], None),
            ("ops.example.com", "/gw", &[], None),
        ],
    );
}

#[test]
fn path_precedence() {
    // conformance: httproute-path-match-order.yaml (in spirit): exact, then the
    // longest prefix; element-wise prefixes; regexes between the two.
    let t = table(vec![listener(
        "http",
        None,
        vec![
            rule("root", &[], prefix("/")),
            rule("match", &[], prefix("/match")),
            rule("match-exact", &[], exact("/match/exact")),
            rule("match-exact-one", &[], exact("/match/exact/one")),
            rule("match-prefix-trailing", &[], prefix("/match/prefix/")),
            rule(
                "regex",
                &[],
                RequestMatch {
                    path: PathMatch::Regex("/match/[0-9]+".to_string()),
                    ..RequestMatch::default()
                },
            ),
        ],
    )]);
    check(
        &t,
        &[
            ("h", "/", &[], Some("root")),
            ("h", "/matchx", &[], Some("root")),
            ("h", "/match", &[], Some("match")),
            ("h", "/match/", &[], Some("match")),
            ("h", "/match/exact", &[], Some("match-exact")),
            ("h", "/match/exact/", &[], Some("match")),
            ("h", "/match/exact/one", &[], Some("match-exact-one")),
            ("h", "/match/exact/one/two", &[], Some("match")),
            ("h", "/match/prefix", &[], Some("match-prefix-trailing")),
            ("h", "/match/prefix/one", &[], Some("match-prefix-trailing")),
            ("h", "/match/prefixes", &[], Some("match")),
            ("h", "/match/123", &[], Some("regex")),
            // Anchored: the whole path must match.
            ("h", "/match/123/x", &[], Some("match")),
            ("h", "/x/match/123", &[], Some("root")),
        ],
    );
}

#[test]
fn methods_headers_and_query_precedence() {
    // conformance: httproute-query-param-matching.yaml, the route as written.
    let q = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), ValueMatch::Exact(v.to_string())))
            .collect::<Vec<_>>()
    };
    let h = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    ValueMatch::Exact(v.to_string()),
                )
            })
            .collect::<Vec<_>>()
    };
    let m = |path: Option<&str>, headers: &[(&str, &str)], query: &[(&str, &str)]| RequestMatch {
        path: path.map_or_else(PathMatch::default, |p| PathMatch::Prefix(p.to_string())),
        method: None,
        headers: h(headers),
        query: q(query),
    };
    let mut rules = Vec::new();
    let mut add = |backend: &str, rule_index: u32, matches: Vec<RequestMatch>| {
        for (j, matches) in matches.into_iter().enumerate() {
            let mut r = rule(&format!("{backend}#{rule_index}.{j}"), &[], matches);
            r.order = (0, rule_index, j as u32);
            rules.push(r);
        }
    };
    add("v1", 0, vec![m(None, &[], &[("animal", "whale")])]);
    add("v2", 1, vec![m(None, &[], &[("animal", "dolphin")])]);
    add(
        "v3",
        2,
        vec![
            m(None, &[], &[("animal", "dolphin"), ("color", "blue")]),
            m(None, &[], &[("ANIMAL", "Whale")]),
        ],
    );
    add(
        "v1",
        3,
        vec![m(Some("/path1"), &[], &[("animal", "whale")])],
    );
    add(
        "v2",
        4,
        vec![m(None, &[("version", "one")], &[("animal", "whale")])],
    );
    add(
        "v3",
        5,
        vec![m(
            Some("/path2"),
            &[("version", "two")],
            &[("animal", "whale")],
        )],
    );
    add(
        "v1",
        6,
        vec![
            m(Some("/path3"), &[], &[("animal", "shark")]),
            m(
                Some("/path4"),
                &[("version", "three")],
                &[("animal", "kraken")],
            ),
        ],
    );
    add("v1", 7, vec![m(Some("/path5"), &[], &[])]);
    add("v2", 8, vec![m(None, &[], &[("animal", "hydra")])]);
    add("v3", 9, vec![m(None, &[("version", "four")], &[])]);
    let t = table(vec![listener("http", None, rules)]);
    let backend = |path: &str, headers: &[(&str, &str)]| {
        lookup(&t, "h", path, headers).map(|id| id.split('#').next().unwrap().to_string())
    };
    let cases: &[(&str, Headers<'_>, Option<&str>)] = &[
        ("/?animal=whale", &[], Some("v1")),
        ("/?animal=dolphin", &[], Some("v2")),
        ("/?animal=dolphin&color=blue", &[], Some("v3")),
        ("/?ANIMAL=Whale", &[], Some("v3")),
        ("/?animal=whale&otherparam=irrelevant", &[], Some("v1")),
        ("/?animal=dolphin&color=yellow", &[], Some("v2")),
        ("/?color=blue", &[], None),
        ("/?animal=dog", &[], None),
        ("/?animal=whaledolphin", &[], None),
        ("/", &[], None),
        ("/path1?animal=whale", &[], Some("v1")),
        ("/?animal=whale", &[("version", "one")], Some("v2")),
        ("/path2?animal=whale", &[("version", "two")], Some("v3")),
        ("/path3?animal=shark", &[], Some("v1")),
        ("/path4?animal=kraken", &[("version", "three")], Some("v1")),
        ("/?animal=shark", &[], None),
        ("/path4?animal=kraken", &[], None),
        ("/path5?animal=hydra", &[], Some("v1")),
        ("/?animal=hydra", &[("version", "four")], Some("v3")),
        // The first of a repeated parameter counts; values are percent-decoded.
        ("/?animal=whale&animal=dolphin", &[], Some("v1")),
        ("/?animal=dolphin&animal=whale", &[], Some("v2")),
        ("/?animal=wh%61le", &[], Some("v1")),
    ];
    for (path, headers, want) in cases {
        assert_eq!(
            backend(path, headers).as_deref(),
            *want,
            "{path} {headers:?}"
        );
    }
}

#[test]
fn method_and_header_values() {
    let with = |id: &str, method: Option<Method>, headers: Vec<(&str, ValueMatch)>| {
        rule(
            id,
            &[],
            RequestMatch {
                path: PathMatch::default(),
                method,
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (HeaderName::from_bytes(n.as_bytes()).unwrap(), v))
                    .collect(),
                query: Vec::new(),
            },
        )
    };
    let t = table(vec![listener(
        "http",
        None,
        vec![
            with("post", Some(Method::POST), vec![]),
            with(
                "two-headers",
                None,
                vec![
                    ("version", ValueMatch::Exact("two".into())),
                    ("color", ValueMatch::Exact("orange".into())),
                ],
            ),
            with(
                "v1",
                None,
                vec![("version", ValueMatch::Exact("one".into()))],
            ),
            with(
                "regex",
                None,
                vec![("x-id", ValueMatch::Regex("[0-9]{3}".into()))],
            ),
            with(
                "joined",
                None,
                vec![("x-list", ValueMatch::Exact("a,b".into()))],
            ),
            with("fallback", None, vec![]),
        ],
    )]);
    let cases: &[(Method, Headers<'_>, &str)] = &[
        (Method::POST, &[], "post"),
        (Method::GET, &[], "fallback"),
        (Method::GET, &[("Version", "one")], "v1"),
        (Method::GET, &[("version", "ONE")], "fallback"),
        (
            Method::GET,
            &[("version", "two"), ("color", "orange")],
            "two-headers",
        ),
        (Method::GET, &[("version", "two")], "fallback"),
        (Method::GET, &[("x-id", "123")], "regex"),
        (Method::GET, &[("x-id", "1234")], "fallback"),
        (Method::GET, &[("x-list", "a"), ("x-list", "b")], "joined"),
        // A method match outranks more header matches.
        (
            Method::POST,
            &[("version", "two"), ("color", "orange")],
            "post",
        ),
    ];
    for (method, headers, want) in cases {
        assert_eq!(
            lookup_method(&t, method.clone(), "h", "/", headers).as_deref(),
            Some(*want),
            "{method} {headers:?}"
        );
    }
}

#[test]
fn ties_go_to_the_older_route_then_the_earlier_rule() {
    let mut newer = rule("newer", &[], prefix("/same"));
    newer.order = (1, 0, 0);
    let mut older_second = rule("older-second", &[], prefix("/same"));
    older_second.order = (0, 1, 0);
    let mut older_first = rule("older-first", &[], prefix("/same"));
    older_first.order = (0, 0, 0);
    let t = table(vec![listener(
        "http",
        None,
        vec![newer, older_second, older_first],
    )]);
    check(&t, &[("h", "/same", &[], Some("older-first"))]);
}

#[test]
fn unknown_sockets_and_the_sign_in_host_answer_nothing() {
    let mut model = Model {
        gateways: vec![GatewayPortSpec {
            local_port: PORT,
            id: "infra/gw:80".into(),
            port: 80,
            tls: false,
            listeners: vec![listener("http", None, vec![rule("any", &[], prefix("/"))])],
            standings: Arc::default(),
        }],
        authenticate_host: Some(HostPort {
            host: "authenticate.example.com".into(),
            port: None,
        }),
        ..Model::default()
    };
    let (t, _) = build(&model, None);
    assert_eq!(
        lookup(&t, "app.example.com", "/", &[]).as_deref(),
        Some("any")
    );
    assert_eq!(lookup(&t, "authenticate.example.com", "/", &[]), None);
    let req = GatewayRequest {
        host: "app.example.com",
        method: &Method::GET,
        path: "/",
        query: None,
        headers: &HeaderMap::new(),
    };
    assert!(t.lookup_gateway(PORT + 1, "infra/gw:80", &req).is_none());
    // A connection of a socket whose local port has since gone to another Gateway.
    assert!(t.lookup_gateway(PORT, "other/gw:80", &req).is_none());
    assert!(t.lookup_gateway(PORT, "infra/gw:80", &req).is_some());
    // Two specs for one socket: the second is refused, the first still serves.
    let second = model.gateways[0].clone();
    model.gateways.push(GatewayPortSpec {
        id: "other/gw:80".into(),
        ..second
    });
    let (t, diagnostics) = build(&model, None);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].route_id, "other/gw:80");
    assert_eq!(t.gateway(PORT).unwrap().id.as_ref(), "infra/gw:80");
    // Gateway hosts count as known (sign-in return URLs).
    let t = table(vec![listener(
        "http",
        None,
        vec![rule(
            "r",
            &["app.example.com", "*.apps.example.com"],
            prefix("/"),
        )],
    )]);
    assert!(t.knows_host("app.example.com"));
    assert!(t.knows_host("a.b.apps.example.com"));
    assert!(!t.knows_host("apps.example.com"));
}

#[test]
fn weights_split_requests_in_proportion() {
    let weighted = |weights: &[(Option<&str>, u32)]| {
        let mut r = rule("split", &[], prefix("/"));
        r.action = Action::Forward {
            backends: weights
                .iter()
                .map(|(b, w)| WeightedBackend {
                    backend: b.map(backend),
                    weight: *w,
                    request_headers: HeaderModifier::default(),
                })
                .collect(),
            filters: Filters::default(),
        };
        table(vec![listener("http", None, vec![r])])
    };
    let count = |t: &RoutingTable, n: usize| {
        let route = t.gateway(PORT).unwrap().routes().next().unwrap().clone();
        let m = route.gateway.as_ref().unwrap();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..n {
            let name = match m.pick().unwrap() {
                PickedBackend::Backend { backend, .. } => backend.endpoints[0].spec.host.clone(),
                PickedBackend::Invalid => "500".to_string(),
            };
            *seen.entry(name).or_default() += 1;
        }
        seen
    };
    // conformance: httproute-weight.yaml (70/30/0).
    let t = weighted(&[(Some("v1"), 70), (Some("v2"), 30), (Some("v3"), 0)]);
    let seen = count(&t, 1000);
    assert_eq!(seen.get("v1"), Some(&700), "{seen:?}");
    assert_eq!(seen.get("v2"), Some(&300), "{seen:?}");
    assert_eq!(seen.get("v3"), None, "{seen:?}");
    // An invalid backendRef's share gets 500.
    let t = weighted(&[(Some("v1"), 1), (None, 1)]);
    let seen = count(&t, 10);
    assert_eq!(seen.get("500"), Some(&5), "{seen:?}");
    // Nothing with weight: everything gets 500.
    let t = weighted(&[(Some("v1"), 0)]);
    assert_eq!(count(&t, 3).get("500"), Some(&3));
    // Consecutive requests alternate rather than come in runs.
    let t = weighted(&[(Some("v1"), 50), (Some("v2"), 50)]);
    let route = t.gateway(PORT).unwrap().routes().next().unwrap().clone();
    let g = route.gateway.as_ref().unwrap();
    let first: Vec<bool> = (0..10)
        .map(|_| matches!(g.pick(), Some(PickedBackend::Backend { backend, .. }) if backend.endpoints[0].spec.host == "v1"))
        .collect();
    assert!(first.windows(2).any(|w| w[0] != w[1]), "{first:?}");
}

#[test]
fn redirect_locations() {
    // conformance: httproute-redirect-port-and-scheme.yaml and friends.
    let spec = |scheme: Option<&str>, port: Option<u16>| RedirectSpec {
        scheme: scheme.map(str::to_string),
        hostname: Some("example.org".into()),
        path: None,
        port,
        status: 302,
    };
    let target = |tls: bool, listener_port: u16| RedirectTarget {
        tls,
        host: "request.example.com",
        listener_port,
        path: "/scheme-nil-and-port-nil",
        matched_len: 0,
        query: None,
    };
    type Case<'a> = (Option<&'a str>, Option<u16>, bool, u16, &'a str);
    let cases: &[Case<'_>] = &[
        (
            None,
            None,
            false,
            80,
            "http://example.org/scheme-nil-and-port-nil",
        ),
        (
            None,
            Some(80),
            false,
            80,
            "http://example.org/scheme-nil-and-port-nil",
        ),
        (
            None,
            Some(8080),
            false,
            80,
            "http://example.org:8080/scheme-nil-and-port-nil",
        ),
        (
            Some("https"),
            None,
            false,
            80,
            "https://example.org/scheme-nil-and-port-nil",
        ),
        (
            Some("https"),
            Some(443),
            false,
            80,
            "https://example.org/scheme-nil-and-port-nil",
        ),
        (
            Some("https"),
            Some(8443),
            false,
            80,
            "https://example.org:8443/scheme-nil-and-port-nil",
        ),
        // On a listener on 8080, no scheme and no port: the listener's port.
        (
            None,
            None,
            false,
            8080,
            "http://example.org:8080/scheme-nil-and-port-nil",
        ),
        (
            None,
            Some(80),
            false,
            8080,
            "http://example.org/scheme-nil-and-port-nil",
        ),
        (
            Some("https"),
            None,
            false,
            8080,
            "https://example.org/scheme-nil-and-port-nil",
        ),
        // On an HTTPS listener.
        (
            None,
            None,
            true,
            443,
            "https://example.org/scheme-nil-and-port-nil",
        ),
        (
            None,
            Some(8443),
            true,
            443,
            "https://example.org:8443/scheme-nil-and-port-nil",
        ),
        (
            Some("http"),
            None,
            true,
            443,
            "http://example.org/scheme-nil-and-port-nil",
        ),
        (
            Some("http"),
            Some(8080),
            true,
            443,
            "http://example.org:8080/scheme-nil-and-port-nil",
        ),
    ];
    for (scheme, port, tls, listener_port, want) in cases {
        assert_eq!(
            redirect_location(&spec(*scheme, *port), &target(*tls, *listener_port)),
            *want,
            "{scheme:?} {port:?} {tls} {listener_port}"
        );
    }
    // The request's host (bracketed IPv6) and query when none is given; paths.
    let plain = RedirectSpec {
        scheme: None,
        hostname: None,
        path: Some(PathRewrite::Prefix("/replacement-prefix".into())),
        port: None,
        status: 301,
    };
    let t = RedirectTarget {
        tls: false,
        host: "::1",
        listener_port: 80,
        path: "/original-prefix/lemon",
        matched_len: "/original-prefix".len(),
        query: Some("a=1"),
    };
    assert_eq!(
        redirect_location(&plain, &t),
        "http://[::1]/replacement-prefix/lemon?a=1"
    );
    let full = RedirectSpec {
        path: Some(PathRewrite::Full("/full-path-replacement".into())),
        ..plain
    };
    assert_eq!(
        redirect_location(&full, &t),
        "http://[::1]/full-path-replacement?a=1"
    );
}

#[test]
fn path_rewrites() {
    // conformance: httproute-rewrite-path.yaml.
    let cases: &[(PathRewrite, &str, &str, &str)] = &[
        (
            PathRewrite::Prefix("/one".into()),
            "/prefix/one",
            "/prefix/one/two",
            "/one/two",
        ),
        (
            PathRewrite::Prefix("/".into()),
            "/strip-prefix",
            "/strip-prefix/three",
            "/three",
        ),
        (
            PathRewrite::Prefix("/".into()),
            "/strip-prefix",
            "/strip-prefix",
            "/",
        ),
        (
            PathRewrite::Full("/one".into()),
            "/full/one",
            "/full/one/two",
            "/one",
        ),
        (
            PathRewrite::Prefix("/prefix".into()),
            "/prefix/rewrite-path-and-modify-headers",
            "/prefix/rewrite-path-and-modify-headers/one",
            "/prefix/one",
        ),
        // A prefix written with its trailing slash matches without it.
        (PathRewrite::Prefix("/xyz".into()), "/abc/", "/abc", "/xyz"),
        (
            PathRewrite::Prefix("/xyz/".into()),
            "/abc/",
            "/abc/def",
            "/xyz/def",
        ),
    ];
    for (rewrite, rule_prefix, path, want) in cases {
        let mut r = rule("rw", &[], prefix(rule_prefix));
        r.action = Action::Forward {
            backends: vec![WeightedBackend {
                backend: Some(backend("b")),
                weight: 1,
                request_headers: HeaderModifier::default(),
            }],
            filters: Filters {
                path_rewrite: Some(rewrite.clone()),
                ..Filters::default()
            },
        };
        let t = table(vec![listener("http", None, vec![r])]);
        let req = GatewayRequest {
            host: "h",
            method: &Method::GET,
            path,
            query: None,
            headers: &HeaderMap::new(),
        };
        let m = t.lookup_gateway(PORT, "infra/gw:80", &req).expect(path);
        assert_eq!(
            m.rewritten_path(path).as_deref(),
            Some(*want),
            "{rewrite:?} {path}"
        );
    }
}

#[test]
fn header_modifiers_set_add_remove() {
    let modifier = HeaderModifier {
        set: vec![(
            HeaderName::from_static("x-header-set"),
            HeaderValue::from_static("set-overwrites-values"),
        )],
        add: vec![(
            HeaderName::from_static("x-header-add"),
            HeaderValue::from_static("add-appends-values"),
        )],
        remove: vec![HeaderName::from_static("x-header-remove")],
    };
    let mut headers = HeaderMap::new();
    headers.insert("x-header-set", HeaderValue::from_static("some-other-value"));
    headers.insert("x-header-add", HeaderValue::from_static("some-other-value"));
    headers.insert("x-header-remove", HeaderValue::from_static("gone"));
    modifier.apply(&mut headers);
    let all = |n: &str| {
        headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(all("x-header-set"), "set-overwrites-values");
    assert_eq!(all("x-header-add"), "some-other-value,add-appends-values");
    assert_eq!(all("x-header-remove"), "");
}
