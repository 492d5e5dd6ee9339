//! Every annotation, its Pomerium spelling, bad values, and fail-closed rejection.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde_json::json;

use super::*;
use crate::kube::annotations::{self, AnnotationErrorKind, IngressAnnotations};
use crate::routes::{Balance, HostMatch, PathMatch, UpstreamHost, UpstreamScheme};

fn parse(pairs: &[(&str, &str)]) -> annotations::Parsed {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    annotations::parse(&map)
}

fn hv(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    (name.parse().unwrap(), value.parse().unwrap())
}

type Check = fn(&IngressAnnotations) -> bool;

/// Every key of docs/annotations.md, with a value and what it must read as.
const EVERY_KEY: &[(&str, &str, Check)] = &[
    (
        "policy",
        "allow:\n  or:\n    - email: {is: a@example.com}\n",
        |a| {
            a.policy.is_some()
                && a.policy_text
                    .as_deref()
                    .is_some_and(|t| t.contains("a@example.com"))
        },
    ),
    ("identity-policy", "admins, ops", |a| {
        a.identity_policies == ["admins", "ops"]
    }),
    ("allowed-users", "a@example.com,b@example.com", |a| {
        a.shorthands.allowed_users == ["a@example.com", "b@example.com"]
    }),
    (
        "allowed-domains",
        "[\"example.com\", \"corp.example.com\"]",
        |a| a.shorthands.allowed_domains == ["example.com", "corp.example.com"],
    ),
    ("allowed-groups", "- Data Science\n- ops\n", |a| {
        a.shorthands.allowed_groups == ["Data Science", "ops"]
    }),
    ("allow-public-unauthenticated-access", "true", |a| {
        a.shorthands.allow_public_unauthenticated_access
    }),
    ("allow-any-authenticated-user", "true", |a| {
        a.shorthands.allow_any_authenticated_user
    }),
    ("cors-allow-preflight", "true", |a| {
        a.shorthands.cors_allow_preflight
    }),
    ("pass-identity-headers", "true", |a| {
        a.options.pass_identity_headers
    }),
    ("set-request-headers", "{X-Team: ops, X-Num: 7}", |a| {
        a.options.set_request_headers == [hv("x-num", "7"), hv("x-team", "ops")]
    }),
    ("remove-request-headers", "X-Secret, Cookie2", |a| {
        a.options.remove_request_headers
            == [
                HeaderName::from_static("x-secret"),
                HeaderName::from_static("cookie2"),
            ]
    }),
    (
        "set-response-headers",
        "{\"Strict-Transport-Security\": \"max-age=31536000\"}",
        |a| a.options.set_response_headers == [hv("strict-transport-security", "max-age=31536000")],
    ),
    ("preserve-host-header", "false", |a| {
        a.options.upstream_host == UpstreamHost::Endpoint
    }),
    ("host-rewrite", "internal.example.com:8080", |a| {
        a.options.upstream_host == UpstreamHost::Rewrite("internal.example.com:8080".into())
    }),
    ("prefix-rewrite", "/v2/", |a| {
        a.options.prefix_rewrite.as_deref() == Some("/v2/")
    }),
    ("path-regex", "true", |a| a.path_regex),
    ("timeout", "1m30s", |a| {
        a.options.timeout == Duration::from_secs(90)
            && a.options.idle_timeout == Duration::from_secs(300)
    }),
    ("idle-timeout", "10s", |a| {
        // As in the file: an idle timeout alone turns the route timeout off.
        a.options.idle_timeout == Duration::from_secs(10) && a.options.timeout == Duration::ZERO
    }),
    ("allow-websockets", "true", |a| {
        a.options.allow_websockets
            && a.options.timeout == Duration::ZERO
            && a.options.idle_timeout == Duration::ZERO
    }),
    ("backend-protocol", "h2c", |a| {
        a.backend_protocol == UpstreamScheme::H2c
    }),
    ("tls-skip-verify", "true", |a| a.options.tls.skip_verify),
    ("tls-server-name", "API.internal", |a| {
        a.options.tls.server_name.as_deref() == Some("api.internal")
    }),
    ("tls-custom-ca-secret", "upstream-ca", |a| {
        a.tls_custom_ca_secret.as_deref() == Some("upstream-ca")
    }),
    ("service-upstream", "true", |a| a.service_upstream),
    ("load-balancing", "least_request", |a| {
        a.load_balancing == Balance::LeastRequest
    }),
    ("path-normalization", "lenient", |a| a.options.lenient_paths),
    ("bearer-token-format", "idp_access_token", |a| {
        a.options.bearer_format == Some(crate::routes::BearerFormat::IdpAccessToken)
    }),
];

#[test]
fn every_key_and_its_pomerium_alias() {
    for (key, value, check) in EVERY_KEY {
        for annotation in [
            format!("portcullis.dev/{key}"),
            format!("ingress.pomerium.io/{}", key.replace('-', "_")),
        ] {
            let p = parse(&[(&annotation, value)]);
            assert!(p.errors.is_empty(), "{annotation}: {:?}", p.errors);
            assert!(check(&p.values), "{annotation}: {:?}", p.values);
        }
    }
    // Defaults when nothing is said: Ingress conventions.
    let p = parse(&[("unrelated.io/x", "y")]);
    assert!(p.errors.is_empty());
    let a = &p.values;
    assert_eq!(a.options.upstream_host, UpstreamHost::Original);
    assert_eq!(a.options.timeout, Duration::from_secs(30));
    assert_eq!(a.backend_protocol, UpstreamScheme::Http);
    assert!(a.policy.is_none() && a.identity_policies.is_empty());
}

#[test]
fn pomerium_specific_names() {
    let cases: &[(&str, &str, Check)] = &[
        ("ingress.pomerium.io/secure_upstream", "true", |a| {
            a.backend_protocol == UpstreamScheme::Https
        }),
        ("ingress.pomerium.io/service_proxy_upstream", "true", |a| {
            a.service_upstream
        }),
        (
            "ingress.pomerium.io/load_balancing_policy",
            "LEAST_REQUEST",
            |a| a.load_balancing == Balance::LeastRequest,
        ),
        (
            "ingress.pomerium.io/policy",
            "[{allow: {and: [{domain: {is: example.com}}]}}]",
            |a| a.policy.is_some(),
        ),
        (
            "ingress.pomerium.io/allowed_users",
            "[\"a@example.com\"]",
            |a| a.shorthands.allowed_users == ["a@example.com"],
        ),
        ("ingress.pomerium.io/preserve_host_header", "true", |a| {
            a.options.upstream_host == UpstreamHost::Original
        }),
    ];
    for (annotation, value, check) in cases {
        let p = parse(&[(annotation, value)]);
        assert!(p.errors.is_empty(), "{annotation}: {:?}", p.errors);
        assert!(check(&p.values), "{annotation}");
    }
}

#[test]
fn unknown_keys() {
    for annotation in [
        "portcullis.dev/allowed-user",
        "portcullis.dev/allowed_users",      // our prefix takes `-`
        "ingress.pomerium.io/allowed-users", // Pomerium's takes `_`
        "ingress.pomerium.io/allow_spdy",    // Pomerium has it; we do not
        "portcullis.dev/",
    ] {
        let p = parse(&[(annotation, "x")]);
        assert_eq!(p.errors.len(), 1, "{annotation}");
        assert_eq!(
            p.errors[0].kind,
            AnnotationErrorKind::Unknown,
            "{annotation}"
        );
    }
    let p = parse(&[("portcullis.dev/alowed-users", "x")]);
    assert!(
        p.errors[0].message.contains("did you mean `allowed-users`"),
        "{}",
        p.errors[0]
    );
}

#[test]
fn invalid_values() {
    let cases = [
        ("portcullis.dev/allow-websockets", "yes please"),
        ("portcullis.dev/timeout", "30"),
        ("portcullis.dev/idle-timeout", "-5s"),
        ("portcullis.dev/set-request-headers", "[a, b]"),
        ("portcullis.dev/set-request-headers", "{\"bad header\": x}"),
        ("portcullis.dev/set-response-headers", "{X-A: {nested: 1}}"),
        ("portcullis.dev/set-response-headers", "{X-A: 1, x-a: 2}"),
        ("portcullis.dev/remove-request-headers", "[\"bad header\"]"),
        ("portcullis.dev/allowed-users", "[a, [b]]"),
        ("portcullis.dev/allowed-users", "[unclosed"),
        ("portcullis.dev/identity-policy", "Not_A_Name"),
        ("portcullis.dev/identity-policy", " , "),
        ("portcullis.dev/host-rewrite", "a b"),
        ("portcullis.dev/prefix-rewrite", "v2"),
        ("portcullis.dev/tls-server-name", "*.wild.example.com"),
        ("portcullis.dev/tls-custom-ca-secret", "Bad/Name"),
        ("portcullis.dev/backend-protocol", "grpc"),
        ("portcullis.dev/load-balancing", "ring_hash"),
        ("portcullis.dev/service-upstream", "maybe"),
        ("portcullis.dev/bearer-token-format", "jwt"),
        ("portcullis.dev/path-normalization", "loose"),
        ("ingress.pomerium.io/secure_upstream", "sure"),
    ];
    for (annotation, value) in cases {
        let p = parse(&[(annotation, value)]);
        assert_eq!(p.errors.len(), 1, "{annotation}={value}: {:?}", p.errors);
        assert_eq!(
            p.errors[0].kind,
            AnnotationErrorKind::Invalid,
            "{annotation}={value}"
        );
        assert_eq!(p.errors[0].annotation, annotation);
    }
}

#[test]
fn combinations_that_contradict() {
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("portcullis.dev/preserve-host-header", "true"),
            ("portcullis.dev/host-rewrite", "x.example.com"),
        ],
        &[
            ("portcullis.dev/prefix-rewrite", "/x"),
            ("portcullis.dev/path-regex", "true"),
        ],
        &[
            ("portcullis.dev/allow-public-unauthenticated-access", "true"),
            ("portcullis.dev/allowed-users", "a@example.com"),
        ],
        // Both spellings of one key must agree.
        &[
            ("portcullis.dev/timeout", "10s"),
            ("ingress.pomerium.io/timeout", "20s"),
        ],
        &[
            ("portcullis.dev/backend-protocol", "http"),
            ("ingress.pomerium.io/secure_upstream", "true"),
        ],
    ];
    for pairs in cases {
        let p = parse(pairs);
        assert_eq!(p.errors.len(), 1, "{pairs:?}: {:?}", p.errors);
    }
    // Agreeing spellings are fine.
    let p = parse(&[
        ("portcullis.dev/timeout", "10s"),
        ("ingress.pomerium.io/timeout", "10s"),
    ]);
    assert!(p.errors.is_empty());
    let p = parse(&[
        ("portcullis.dev/preserve-host-header", "false"),
        ("portcullis.dev/host-rewrite", "x"),
    ]);
    assert!(p.errors.is_empty());
    assert_eq!(
        p.values.options.upstream_host,
        UpstreamHost::Rewrite("x".into())
    );
}

#[test]
fn options_reach_the_routes() {
    let mut ix = index();
    ix.apply(ingress(
        "a",
        "a.example.com",
        json!({
            "portcullis.dev/host-rewrite": "inside.example.com",
            "portcullis.dev/timeout": "5s",
            "ingress.pomerium.io/pass_identity_headers": "true",
            "portcullis.dev/tls-skip-verify": "true",
            "portcullis.dev/allowed-groups": "ops",
        }),
    ))
    .unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(rep.accepted, "{:?}", rep.notes);
    assert!(rep.shorthand_annotations);
    let o = &route(&t, "apps/a/rules[0]/paths[0]").options;
    assert_eq!(
        o.upstream_host,
        UpstreamHost::Rewrite("inside.example.com".into())
    );
    assert_eq!(o.timeout, Duration::from_secs(5));
    assert!(o.pass_identity_headers && o.tls.skip_verify);
}

#[test]
fn a_typo_rejects_the_ingress_with_deny_routes() {
    let cases = [
        json!({"portcullis.dev/alowed-users": "a@example.com"}),
        json!({"ingress.pomerium.io/allowed-users": "a@example.com"}),
        json!({"portcullis.dev/allowed-users": "a@example.com", "portcullis.dev/timeout": "forever"}),
    ];
    for ann in cases {
        let mut ix = catch_all_index();
        // A catch-all of another Ingress must not take the rejected Ingress' traffic.
        ix.apply(ingress_spec(
            "catch-all",
            json!({
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        ))
        .unwrap();
        let mut ing = ingress_spec(
            "a",
            json!({"rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/app", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/app/login", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            ]}}]}),
        );
        ing.metadata.annotations = from(ann.clone());
        ix.apply(ing).unwrap();
        let t = ix.translate();
        let rep = report(&t, "apps/a");
        assert!(!rep.accepted, "{ann}");
        assert!(
            rep.notes.iter().all(|n| n.type_ == NoteType::Warning),
            "{ann}: no Normal event on rejection"
        );
        assert!(
            warnings(rep)
                .iter()
                .all(|w| *w == "UnknownAnnotation" || *w == "InvalidAnnotation"),
            "{ann}: {:?}",
            rep.notes
        );
        let a = route(&t, "apps/a/rules[0]/paths[0]");
        assert_eq!(
            (&a.host, &a.path),
            (
                &HostMatch::Exact("a.example.com".into()),
                &PathMatch::SegmentPrefix("/app".into())
            )
        );
        let b = route(&t, "apps/a/rules[0]/paths[1]");
        assert_eq!(b.path, PathMatch::Exact("/app/login".into()));
        for r in [a, b] {
            assert!(denies(r), "{ann}");
            assert!(
                r.backend.endpoints.is_empty(),
                "a rejected route never reaches the upstream"
            );
            let why = r.policy.invalid_reason().unwrap();
            assert!(why.contains("annotation"), "{why}");
        }
        assert!(report(&t, "apps/catch-all").accepted);
    }
}
