//! Table-driven tests for the config file: the seed and the examples parse, every key
//! lands in the model, and bad input is refused with a located, readable error.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::*;
use crate::policy::PolicyError;
use crate::routes::{
    Balance, DEFAULT_IDLE_TIMEOUT, DEFAULT_TIMEOUT, EndpointSpec, HostMatch, PathMatch, RouteSpec,
    UpstreamHost, UpstreamScheme,
};

const SEED: &str = include_str!("../../examples/pomerium-okta.yaml");
const LOCAL: &str = include_str!("../../examples/config.yaml");
/// 32 zero bytes, base64.
const KEY32: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "config.yaml", &no_env)
}

fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- in ---\n{text}"))
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted: {text}\n{c:?}"),
        Err(e) => e.to_string(),
    }
}

/// One route with `from`/`to` filled in and `extra` keys added (indented as route keys).
fn route_with(extra: &str) -> String {
    let mut s = String::from("routes:\n  - from: https://a.example.com\n    to: http://up:8080\n");
    for line in extra.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn one_route(extra: &str) -> RouteSpec {
    let c = parse_ok(&route_with(extra));
    let mut m = c.model();
    assert_eq!(m.routes.len(), 1);
    m.routes.remove(0)
}

#[test]
fn the_seed_parses_as_written() {
    let c = parse_ok(SEED);
    assert_eq!(c.address.to_string(), "0.0.0.0:443");
    assert_eq!(c.idp.provider, Some(IdpProvider::Okta));
    assert_eq!(
        c.idp.provider_url.as_ref().unwrap().to_string(),
        "https://awesomecompany.okta.com/"
    );
    assert_eq!(c.idp.client_id.as_deref(), Some("REPLACE ME"));
    assert_eq!(c.idp.client_secret.as_ref().unwrap().expose(), "REPLACE ME");
    assert_eq!(
        c.idp.scopes,
        ["openid", "profile", "email", "groups", "offline_access"]
    );
    assert_eq!(c.cookie.name, "_portcullis");
    assert_eq!(c.cookie.expire, Duration::from_secs(14 * 3600));
    assert_eq!(c.log_level, "info");
    assert_eq!(c.log_format, LogFormat::Text);

    let m = c.model();
    assert_eq!(
        m.authenticate_host,
        Some(HostPort {
            host: "authenticate.corp.example.com".into(),
            port: None
        })
    );
    let r = &m.routes[0];
    assert_eq!(r.id, "routes[0]");
    assert_eq!(r.host, HostMatch::Exact("verify.corp.example.com".into()));
    assert_eq!(r.port, None);
    assert_eq!(r.path, PathMatch::Any);
    assert_eq!(
        r.backend.endpoints,
        [EndpointSpec {
            scheme: UpstreamScheme::Https,
            host: "verify.internal".into(),
            port: 8443,
            reach: crate::routes::Reach::Operator,
        }]
    );
    assert_eq!(r.options.upstream_host, UpstreamHost::Endpoint);
    assert_eq!(r.options.timeout, DEFAULT_TIMEOUT);
    assert_eq!(r.options.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert!(c.routes[0].policy_document.is_some());
    assert!(c.routes[0].needs_sign_in());
    assert!(!c.routes[0].denies_everyone());
}

#[test]
fn shorthand_lists() {
    for (extra, users, groups) in [
        ("allowed_users: a@x.com", vec!["a@x.com"], vec![]),
        (
            "allowed_users: [a@x.com, b@x.com]",
            vec!["a@x.com", "b@x.com"],
            vec![],
        ),
        // Okta group names have spaces: a scalar is one name.
        (
            "allowed_groups: Everyone Admins",
            vec![],
            vec!["Everyone Admins"],
        ),
    ] {
        let c = parse_ok(&route_with(extra));
        assert_eq!(c.routes[0].shorthands.allowed_users, users, "{extra}");
        assert_eq!(c.routes[0].shorthands.allowed_groups, groups, "{extra}");
    }
}

#[test]
fn the_local_example_parses() {
    let c = parse_ok(LOCAL);
    assert_eq!(c.address.to_string(), "127.0.0.1:8443");
    assert_eq!(
        c.http_redirect_address.unwrap().to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(c.metrics_address.unwrap().to_string(), "127.0.0.1:9090");
    let m = c.model();
    assert_eq!(m.routes.len(), 3);
    assert_eq!(m.routes[0].backend.endpoints.len(), 2);
    assert!(m.routes[1].options.allow_websockets);
    assert!(c.routes[2].needs_sign_in());
    assert!(
        m.routes
            .iter()
            .all(|r| matches!(r.host, HostMatch::Exact(ref h) if h.ends_with(".localhost")))
    );
    // Sign-in isn't configured in the example: check says so.
    let warnings = c.warnings();
    assert!(
        warnings.iter().any(|w| w.message.contains("idp_provider")),
        "{warnings:?}"
    );
}

#[test]
fn top_level_keys_map() {
    let text = format!(
        "
address: 127.0.0.1:8443
http_redirect_address: ':80'
metrics_address: '[::1]:9090'
certificates:
  - cert: /etc/tls/a.pem
    key: /etc/tls/a-key.pem
log_level: DEBUG
log_format: json
authenticate_service_url: https://auth.example.com:8443
idp_provider: oidc
idp_provider_url: https://id.example.com/oauth2/default
idp_client_id: 12345
idp_client_secret: s3cret
idp_scopes: openid, email
idp_ca_file: /etc/ca.pem
cookie_name: _sess
cookie_secret: {KEY32}
cookie_domain: .example.com
cookie_expire: 1h30m
cookie_same_site: Strict
shared_secret: {KEY32}
session_store: redis://:pw@localhost:6379/0
directory:
  provider: okta
  api_token: tok
  refresh_interval: 30s
pass_identity_headers: true
jwt_claims_headers:
  X-Email: email
"
    );
    let c = parse_ok(&text);
    assert_eq!(c.address.to_string(), "127.0.0.1:8443");
    assert_eq!(c.http_redirect_address.unwrap().to_string(), "0.0.0.0:80");
    assert_eq!(c.metrics_address.unwrap().to_string(), "[::1]:9090");
    assert_eq!(
        c.certificates,
        [CertificateFiles {
            cert: "/etc/tls/a.pem".into(),
            key: "/etc/tls/a-key.pem".into()
        }]
    );
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(
        c.authenticate_host(),
        Some(HostPort {
            host: "auth.example.com".into(),
            port: Some(8443)
        })
    );
    assert_eq!(c.idp.provider, Some(IdpProvider::Oidc));
    assert_eq!(c.idp.client_id.as_deref(), Some("12345"));
    assert_eq!(c.idp.scopes, ["openid", "email"]);
    assert_eq!(
        c.idp.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert_eq!(c.cookie.name, "_sess");
    assert_eq!(c.cookie.secret.as_ref().unwrap().expose(), &[0u8; 32]);
    assert_eq!(c.cookie.domain.as_deref(), Some(".example.com"));
    assert_eq!(c.cookie.expire, Duration::from_secs(5400));
    assert_eq!(c.cookie.same_site, SameSite::Strict);
    assert!(c.signing.shared_secret.is_some());
    assert!(matches!(c.session_store, SessionStore::Redis(_)));
    let d = c.directory.as_ref().unwrap();
    assert_eq!(d.provider, DirectoryProvider::Okta);
    // The url defaults to the IdP's origin.
    assert_eq!(d.url.to_string(), "https://id.example.com/");
    assert_eq!(d.api_token.expose(), "tok");
    assert_eq!(d.refresh_interval, Duration::from_secs(30));
    assert!(c.pass_identity_headers);
    assert_eq!(
        c.jwt_claims_headers,
        [(HeaderName::from_static("x-email"), "email".to_string())]
    );

    // Secrets stay out of Debug.
    let debug = format!("{c:?}");
    for secret in ["s3cret", ":pw@", "tok\""] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("[redacted]"));
}

#[test]
fn defaults() {
    let c = parse_ok("");
    assert_eq!(c.address.to_string(), "0.0.0.0:443");
    assert_eq!(c.http_redirect_address, None);
    assert_eq!(c.metrics_address, None);
    assert!(c.certificates.is_empty() && c.routes.is_empty());
    assert_eq!(c.session_store, SessionStore::Cookie);
    assert_eq!(c.cookie.same_site, SameSite::Lax);
    assert_eq!(c.directory, None);
    assert_eq!(c.model().authenticate_host, None);
    // List-form claims headers get our prefix.
    let c = parse_ok("jwt_claims_headers: [email, groups]");
    assert_eq!(
        c.jwt_claims_headers[1].0.as_str(),
        "x-portcullis-claim-groups"
    );
}

#[test]
fn route_keys_map() {
    type Check = fn(&RouteSpec);
    let cases: &[(&str, Check)] = &[
        ("", |r| {
            assert_eq!(r.path, PathMatch::Any);
            assert_eq!(r.options.upstream_host, UpstreamHost::Endpoint);
            assert_eq!(r.backend.endpoints[0].port, 8080);
            assert_eq!(r.backend.balance, Balance::RoundRobin);
        }),
        ("path: /exact", |r| {
            assert_eq!(r.path, PathMatch::Exact("/exact".into()))
        }),
        ("prefix: /foo", |r| {
            assert_eq!(r.path, PathMatch::StrPrefix("/foo".into()))
        }),
        ("regex: '/v[0-9]+/.*'", |r| {
            assert_eq!(r.path, PathMatch::Regex("/v[0-9]+/.*".into()))
        }),
        ("preserve_host_header: true", |r| {
            assert_eq!(r.options.upstream_host, UpstreamHost::Original)
        }),
        ("host_rewrite: internal.example:8080", |r| {
            assert_eq!(
                r.options.upstream_host,
                UpstreamHost::Rewrite("internal.example:8080".into())
            )
        }),
        ("prefix: /app/\nprefix_rewrite: /", |r| {
            assert_eq!(r.options.prefix_rewrite.as_deref(), Some("/"))
        }),
        ("timeout: 1m30s", |r| {
            assert_eq!(r.options.timeout, Duration::from_secs(90));
            assert_eq!(r.options.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        }),
        ("timeout: 0", |r| {
            assert_eq!(r.options.timeout, Duration::ZERO)
        }),
        // Pomerium: an idle_timeout without a timeout turns the route timeout off.
        ("idle_timeout: 10m", |r| {
            assert_eq!(r.options.idle_timeout, Duration::from_secs(600));
            assert_eq!(r.options.timeout, Duration::ZERO);
        }),
        // Pomerium: websockets turn both timeouts off unless set.
        ("allow_websockets: true", |r| {
            assert!(r.options.allow_websockets);
            assert_eq!(r.options.timeout, Duration::ZERO);
            assert_eq!(r.options.idle_timeout, Duration::ZERO);
        }),
        ("allow_websockets: true\ntimeout: 5s", |r| {
            assert_eq!(r.options.timeout, Duration::from_secs(5));
            assert_eq!(r.options.idle_timeout, Duration::ZERO);
        }),
        (
            "tls_skip_verify: true\ntls_server_name: Backend.Internal",
            |r| {
                assert!(r.options.tls.skip_verify);
                assert_eq!(
                    r.options.tls.server_name.as_deref(),
                    Some("backend.internal")
                );
            },
        ),
        ("pass_identity_headers: true", |r| {
            assert!(r.options.pass_identity_headers)
        }),
        ("set_request_headers:\n  X-Team: ops\n  X-Empty: ''", |r| {
            assert_eq!(
                r.options.set_request_headers,
                [
                    (
                        HeaderName::from_static("x-team"),
                        HeaderValue::from_static("ops")
                    ),
                    (
                        HeaderName::from_static("x-empty"),
                        HeaderValue::from_static("")
                    ),
                ]
            )
        }),
        ("remove_request_headers: [X-Secret, Cookie]", |r| {
            assert_eq!(
                r.options.remove_request_headers,
                [HeaderName::from_static("x-secret"), http::header::COOKIE]
            )
        }),
        (
            "set_response_headers: {Strict-Transport-Security: max-age=31536000}",
            |r| {
                assert_eq!(
                    r.options.set_response_headers[0].0,
                    http::header::STRICT_TRANSPORT_SECURITY
                )
            },
        ),
        ("load_balancing_policy: least_request", |r| {
            assert_eq!(r.backend.balance, Balance::LeastRequest)
        }),
    ];
    for (extra, check) in cases {
        check(&one_route(extra));
    }
}

#[test]
fn from_and_to_forms() {
    type Endpoints<'a> = &'a [(UpstreamScheme, &'a str, u16)];
    let cases: &[(&str, &str, HostMatch, Option<u16>, Endpoints)] = &[
        (
            "https://A.Example.com",
            "http://up",
            HostMatch::Exact("a.example.com".into()),
            None,
            &[(UpstreamScheme::Http, "up", 80)],
        ),
        (
            "https://*.example.com:8443/",
            "https://up",
            HostMatch::Wildcard("example.com".into()),
            Some(8443),
            &[(UpstreamScheme::Https, "up", 443)],
        ),
        (
            "https://a.example.com:443",
            "[h2c://grpc:50051, 'http://[::1]:9000/']",
            HostMatch::Exact("a.example.com".into()),
            Some(443),
            &[
                (UpstreamScheme::H2c, "grpc", 50051),
                (UpstreamScheme::Http, "::1", 9000),
            ],
        ),
    ];
    for (from, to, host, port, endpoints) in cases {
        let text = format!(
            "routes:\n  - from: {from}\n    to: {to}\n    allow_public_unauthenticated_access: true\n"
        );
        let c = parse_ok(&text);
        let r = &c.model().routes[0];
        assert_eq!(&r.host, host, "{from}");
        assert_eq!(&r.port, port, "{from}");
        let got: Vec<_> = r
            .backend
            .endpoints
            .iter()
            .map(|e| (e.scheme, e.host.as_str(), e.port))
            .collect();
        assert_eq!(&got, endpoints, "{to}");
        assert_eq!(c.routes[0].to.len(), endpoints.len());
    }
}

#[test]
fn bearer_and_return_settings() {
    let c = parse_ok(
        "bearer_token_format: idp_access_token\n\
         idp_access_token_allowed_audiences: [api://default]\n\
         idp_access_token_allowed_clients: 0oaservice\n\
         allowed_return_domains: [App.Example.com, '*.corp.example']\n",
    );
    assert_eq!(c.bearer.format, crate::routes::BearerFormat::IdpAccessToken);
    assert_eq!(c.bearer.audiences, ["api://default"]);
    assert_eq!(c.bearer.clients, ["0oaservice"]);
    assert_eq!(
        c.allowed_return_domains,
        ["app.example.com", "*.corp.example"]
    );
    assert_eq!(
        one_route("bearer_token_format: idp_identity_token")
            .options
            .bearer_format,
        Some(crate::routes::BearerFormat::IdpIdentityToken)
    );
    assert_eq!(one_route("").options.bearer_format, None);
    assert_eq!(parse_ok("").bearer, BearerSettings::default());
}

#[test]
fn route_options_inherit_pass_identity_headers() {
    let c = parse_ok(
        "pass_identity_headers: true
routes:
  - {from: https://a.example.com, to: http://a}
  - {from: https://b.example.com, to: http://b, pass_identity_headers: false}
",
    );
    let m = c.model();
    assert!(m.routes[0].options.pass_identity_headers);
    assert!(!m.routes[1].options.pass_identity_headers);
    assert_eq!(m.routes[1].id, "routes[1]");
}

#[test]
fn bad_input_is_refused_with_a_location() {
    // (config, expected start of the first error line, expected text in it)
    let route = route_with;
    let cases: Vec<(String, &str, &str)> = vec![
        // Unknown keys, everywhere.
        ("adress: ':443'".into(), "config.yaml:1:1: ", "unknown key `adress` (did you mean `address`?); expected one of authenticate_service_url"),
        (route("polcy: []"), "config.yaml:4:5: routes[0]: ", "unknown key `polcy` (did you mean `policy`?); expected one of from, to, prefix"),
        ("directory:\n  provider: okta\n  url: https://x.okta.com\n  api_token: t\n  refresh: 1m".into(), "config.yaml:5:3: directory: ", "unknown key `refresh`"),
        ("certificates:\n  - cert: a\n    key: b\n    chain: c".into(), "config.yaml:4:5: certificates[0]: ", "unknown key `chain`"),
        // Durations.
        (route("timeout: 30"), "config.yaml:4:14: routes[0].timeout: ", "needs a unit"),
        (route("timeout: 5 minutes"), "config.yaml:4:14: routes[0].timeout: ", "invalid duration `5 minutes`"),
        (route("idle_timeout: -1s"), "config.yaml:4:19: routes[0].idle_timeout: ", "must not be negative"),
        ("cookie_expire: 2d".into(), "config.yaml:1:16: cookie_expire: ", "unknown unit `d`"),
        // URLs.
        ("routes:\n  - from: http://a.example.com\n    to: http://up".into(), "config.yaml:2:11: routes[0].from: ", "must be an https:// URL"),
        ("routes:\n  - from: https://a.example.com/app\n    to: http://up".into(), "config.yaml:2:11: routes[0].from: ", "must not have a path; match paths with `prefix`"),
        ("routes:\n  - from: a.example.com\n    to: http://up".into(), "config.yaml:2:11: routes[0].from: ", "is not a URL"),
        ("routes:\n  - from: https://a..b\n    to: http://up".into(), "config.yaml:2:11: routes[0].from: ", "not a valid host name"),
        ("routes:\n  - from: https://a.example.com\n    to: http://up/base".into(), "config.yaml:3:9: routes[0].to: ", "use `prefix_rewrite`"),
        ("routes:\n  - from: https://a.example.com\n    to: [http://up, ftp://x]".into(), "config.yaml:3:21: routes[0].to[1]: ", "scheme `ftp` is not supported"),
        ("routes:\n  - from: https://a.example.com\n    to: []".into(), "config.yaml:3:9: routes[0].to: ", "at least one"),
        ("routes:\n  - to: http://up".into(), "config.yaml:2:5: routes[0]: ", "missing `from`"),
        ("routes:\n  - from: https://a.example.com".into(), "config.yaml:2:5: routes[0]: ", "missing `to`"),
        ("authenticate_service_url: http://auth.example.com".into(), "config.yaml:1:27: authenticate_service_url: ", "scheme must be https"),
        ("authenticate_service_url: https://auth.example.com/x".into(), "config.yaml:1:27: authenticate_service_url: ", "must not have a path"),
        // Headers.
        (route("set_request_headers:\n  'Bad Header': x"), "config.yaml:5:7: routes[0].set_request_headers: ", "not a valid HTTP header name"),
        (route("set_response_headers:\n  X-Ok: \"a\\nb\""), "config.yaml:5:13: routes[0].set_response_headers.X-Ok: ", "not a valid HTTP header value"),
        (route("remove_request_headers: ['x y']"), "config.yaml:4:30: routes[0].remove_request_headers[0]: ", "not a valid HTTP header name"),
        (route("set_request_headers: [a, b]"), "config.yaml:4:26: routes[0].set_request_headers: ", "expected a mapping"),
        // Identity and framing headers are the proxy's (routes/reserved.rs).
        (route("set_request_headers:\n  X-Forwarded-Email: admin@corp.example"), "config.yaml:5:7: routes[0].set_request_headers: ", "`x-forwarded-email` is an identity header"),
        (route("set_request_headers: {x_portcullis_jwt_assertion: forged}"), "config.yaml:4:26: routes[0].set_request_headers: ", "identity header"),
        (route("remove_request_headers: [Content-Length]"), "config.yaml:4:29: routes[0].remove_request_headers: ", "framing header"),
        (route("set_response_headers: {Content-Length: '0'}"), "config.yaml:4:27: routes[0].set_response_headers: ", "framing header"),
        (format!("jwt_claims_headers: {{X-Email: email}}\n{}", route("set_request_headers: {x-email: a}")), "config.yaml:5:26: routes[0].set_request_headers: ", "identity header"),
        // Portcullis's own listeners are never an upstream.
        ("metrics_address: 127.0.0.1:9090\nroutes:\n  - from: https://a.example.com\n    to: http://localhost:9090".into(), "config.yaml:4:9: routes[0].to: ", "own listener 127.0.0.1:9090"),
        ("address: 0.0.0.0:8443\nroutes:\n  - from: https://a.example.com\n    to: [http://up, https://127.0.0.2:8443]".into(), "config.yaml:4:9: routes[0].to: ", "own listener 0.0.0.0:8443"),
        // The sign-in host is not a route's.
        ("authenticate_service_url: https://auth.example.com\nroutes:\n  - from: https://Auth.example.com\n    to: http://up".into(), "config.yaml:3:11: routes[0].from: ", "authenticate_service_url host"),
        // Sign-in.
        ("bearer_token_format: opaque".into(), "config.yaml:1:22: bearer_token_format: ", "not a bearer token format"),
        ("bearer_token_format: idp_access_token".into(), "config.yaml:1:22: idp_access_token_allowed_audiences: ", "needs the audiences to accept"),
        (route("bearer_token_format: idp_access_token"), "config.yaml:1:1: idp_access_token_allowed_audiences: ", "needs the audiences to accept"),
        ("allowed_return_domains: ['*.', 'a b']".into(), "config.yaml:1:25: allowed_return_domains: ", "is not a host name"),
        // Addresses.
        ("address: 443".into(), "config.yaml:1:10: address: ", "invalid address `443`"),
        ("metrics_address: example.com:9090".into(), "config.yaml:1:18: metrics_address: ", "not an IP address"),
        // Paths.
        (route("path: /a\nprefix: /b"), "config.yaml:5:13: routes[0]: ", "`path` and `prefix` cannot be used together"),
        (route("prefix: /a\nregex: /b"), "config.yaml:5:12: routes[0]: ", "`prefix` and `regex` cannot be used together"),
        (route("regex: '/(unclosed'"), "config.yaml:4:12: routes[0].regex: ", "invalid path regex"),
        (route("prefix: app"), "config.yaml:4:13: routes[0].prefix: ", "must start with `/`"),
        (route("regex: /x\nprefix_rewrite: /y"), "config.yaml:5:21: routes[0].prefix_rewrite: ", "cannot be used with `regex`"),
        (route("prefix_rewrite: y"), "config.yaml:4:21: routes[0].prefix_rewrite: ", "must start with `/`"),
        // Other values.
        (route("allow_websockets: maybe"), "config.yaml:4:23: routes[0].allow_websockets: ", "expected true or false"),
        (route("preserve_host_header: true\nhost_rewrite: x"), "config.yaml:5:19: routes[0].host_rewrite: ", "preserve_host_header"),
        (route("allow_public_unauthenticated_access: true\nallowed_users: [a@b.c]"), "config.yaml:4:42: routes[0].allow_public_unauthenticated_access: ", "a public route cannot"),
        (route("load_balancing_policy: RANDOM"), "config.yaml:4:28: routes[0].load_balancing_policy: ", "use ROUND_ROBIN or LEAST_REQUEST"),
        ("idp_provider: google".into(), "config.yaml:1:15: idp_provider: ", "use okta or oidc"),
        ("log_level: loud".into(), "config.yaml:1:12: log_level: ", "not a log level"),
        ("log_format: xml".into(), "config.yaml:1:13: log_format: ", "use text or json"),
        ("cookie_same_site: sometimes".into(), "config.yaml:1:19: cookie_same_site: ", "strict, lax or none"),
        ("cookie_secret: c2hvcnQ=".into(), "config.yaml:1:16: cookie_secret: ", "must be 32 bytes written base64 (got 5 bytes)"),
        ("shared_secret: '!!!'".into(), "config.yaml:1:16: shared_secret: ", "not valid base64"),
        ("signing_key: aGVsbG8=".into(), "config.yaml:1:14: signing_key: ", "PEM private key"),
        ("session_store: memcached://x".into(), "config.yaml:1:16: session_store: ", "`cookie` or a `redis://`"),
        ("directory:\n  provider: okta".into(), "config.yaml:2:3: directory: ", "missing `url`"),
        ("directory: {provider: azure, url: https://x, api_token: t}".into(), "config.yaml:1:23: directory.provider: ", "use okta"),
        ("directory: {provider: okta, url: https://x, api_token: t, refresh_interval: 0s}".into(), "config.yaml:1:77: directory.refresh_interval: ", "greater than zero"),
        ("routes: {from: x}".into(), "config.yaml:1:9: routes: ", "expected a list of routes"),
        ("routes:\n  - just a string".into(), "config.yaml:2:5: routes[0]: ", "expected a mapping"),
        // YAML itself.
        ("routes: [\n".into(), "config.yaml:", ""),
        ("address: ':1'\naddress: ':2'".into(), "config.yaml:2:1: ", "duplicate"),
    ];
    let mut failures = Vec::new();
    for (text, at, what) in &cases {
        let err = parse_err(text);
        let first = err.lines().next().unwrap_or_default();
        if !first.starts_with(at) || !first.contains(what) {
            failures.push(format!("input:\n{text}\nwant: {at}…{what}\ngot:  {err}\n"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = parse(&route_with("timeout: x\nidle_timeout: y\nbogus: 1")).unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
    assert_eq!(err.to_string().lines().count(), 3);
}

#[test]
fn secrets_never_appear_in_errors() {
    for text in [
        "cookie_secret: hunter2-hunter2",
        "shared_secret: hunter2-hunter2",
        "signing_key: hunter2-hunter2",
        "session_store: redis2://user:hunter2@host",
        "idp_client_secret: [hunter2]",
        "directory: {provider: okta, url: https://x, api_token: [hunter2]}",
        "cookie_secret: [hunter2\n",
    ] {
        let err = parse_err(text);
        assert!(!err.contains("hunter2"), "{text}: {err}");
    }
}

#[test]
fn environment_overrides_the_file() {
    let text = "address: ':443'\nlog_level: info\nidp_client_secret: from-file\nidp_scopes: [openid]\nallow_me: 1\n";
    // The unknown key is only there to prove env doesn't bypass validation of the file.
    assert!(parse(text).is_err());
    let text =
        "address: ':443'\nlog_level: info\nidp_client_secret: from-file\nidp_scopes: [openid]\n";
    let env = |var: &str| -> Option<String> {
        match var {
            "ADDRESS" => Some("127.0.0.1:9443".into()),
            "LOG_LEVEL" => Some("debug".into()),
            "IDP_CLIENT_SECRET" => Some("from-env".into()),
            "IDP_SCOPES" => Some("openid email,groups".into()),
            "PASS_IDENTITY_HEADERS" => Some("true".into()),
            "COOKIE_SECRET" => Some(KEY32.into()),
            "METRICS_ADDRESS" => Some(String::new()), // empty: unset
            "DIRECTORY_PROVIDER" => Some("okta".into()),
            "DIRECTORY_URL" => Some("https://corp.okta.com".into()),
            "DIRECTORY_API_TOKEN" => Some("tok".into()),
            _ => None,
        }
    };
    let c = Config::parse(text, "config.yaml", &env).unwrap();
    assert_eq!(c.address.to_string(), "127.0.0.1:9443");
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.idp.client_secret.unwrap().expose(), "from-env");
    assert_eq!(c.idp.scopes, ["openid", "email", "groups"]);
    assert!(c.pass_identity_headers);
    assert!(c.cookie.secret.is_some());
    assert_eq!(c.metrics_address, None);
    assert_eq!(
        c.directory.unwrap().url.to_string(),
        "https://corp.okta.com/"
    );

    // A bad value from the environment names the variable.
    let env = |var: &str| (var == "ADDRESS").then(|| "nonsense".to_string());
    let err = Config::parse(text, "config.yaml", &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("environment variable ADDRESS: address: invalid address"),
        "{err}"
    );
}

#[test]
fn policy_errors_point_into_the_document() {
    let text = "routes:
  - from: https://a.example.com
    to: http://up
    policy:
      - allow:
          and:
            - groups: admin
            - nonsense: 1
";
    let root = yaml::parse(text).unwrap();
    let Value::Map(top) = &root.value else {
        panic!()
    };
    let Value::Seq(routes) = &top[0].1.value else {
        panic!()
    };
    let Value::Map(r0) = &routes[0].value else {
        panic!()
    };
    let policy = &r0[2].1;
    let e = PolicyError {
        location: "[0].allow.and[1]".into(),
        message: "unknown criterion `nonsense`".into(),
    };
    let (origin, path) = route::locate_policy_error(policy, "routes[0].policy", &e);
    assert_eq!(path, "routes[0].policy[0].allow.and[1]");
    assert_eq!(
        origin,
        yaml::Origin::File {
            line: 8,
            column: 15
        }
    );

    // End to end, once the policy compiler refuses unknown criteria.
    if crate::policy::Policy::from_value(&policy.to_json()).is_err() {
        let err = parse_err(text);
        assert!(err.starts_with("config.yaml:8:"), "{err}");
        assert!(err.contains("routes[0].policy[0].allow.and[1]"), "{err}");
    }
}

#[test]
fn check_warnings() {
    let c = parse_ok(
        "routes:
  - {from: https://open.example.com, to: http://a}
  - {from: https://g.example.com, to: https://b, allowed_groups: [ops], tls_skip_verify: true}
  - {from: https://g.example.com, to: http://c, allow_public_unauthenticated_access: true}
",
    );
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(
        has("routes[0]: no `policy` and no allow shorthand: this route denies everyone"),
        "{w:#?}"
    );
    assert!(has("routes[1]: tls_skip_verify"), "{w:#?}");
    assert!(has("routes[2]: same host and path as routes[1]"), "{w:#?}");
    assert!(
        has(
            "routes[1] needs sign-in, but authenticate_service_url, idp_provider, idp_provider_url, idp_client_id and idp_client_secret are not set"
        ),
        "{w:#?}"
    );
    assert!(has("cookie_secret is not set"), "{w:#?}");

    // With Redis sessions too: `run` refuses to start sign-in without the secret.
    let c = parse_ok(&format!("{SEED}session_store: redis://127.0.0.1:6379\n"));
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert!(
        w.iter().any(|x| x.contains("cookie_secret is not set")),
        "{w:#?}"
    );

    // A complete sign-in setup: no sign-in warnings.
    let c = parse_ok(&format!("{SEED}cookie_secret: {KEY32}\n"));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn shared_secret_is_read_but_said_to_be_unused() {
    let c = parse_ok(&format!("shared_secret: {KEY32}\n"));
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert!(
        w.iter()
            .any(|x| x.contains("shared_secret is read but not used")),
        "{w:#?}"
    );
}

#[test]
fn check_prints_a_summary() {
    let dir = std::env::temp_dir().join(format!("portcullis-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, LOCAL).unwrap();
    let out = check(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.contains("OK, 3 routes on 3 hosts"), "{out}");
    assert!(
        out.contains(
            "listen: https 127.0.0.1:8443, http redirect 127.0.0.1:8080, metrics 127.0.0.1:9090"
        ),
        "{out}"
    );
    assert!(out.contains("routes[0]   app.localhost -> http://127.0.0.1:9001, http://127.0.0.1:9002 (round robin)  [public]"), "{out}");
    assert!(
        out.contains(
            "routes[2]   admin.localhost prefix /admin/ -> http://127.0.0.1:9001  [policy; sign-in]"
        ),
        "{out}"
    );
    assert!(out.contains("warnings:"), "{out}");

    let err = check(std::path::Path::new("/nonexistent/portcullis.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/portcullis.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn session_store_keys_beside_the_url() {
    let c = parse_ok(
        "session_store: rediss+cluster://n1:7000,n2:7000\nsession_store_password: s3cret\n\
         session_store_ca_file: /etc/redis/ca.pem\nsession_store_cert_file: /c.pem\n\
         session_store_key_file: /k.pem\n",
    );
    let SessionStore::Redis(r) = &c.session_store else {
        panic!("not redis");
    };
    assert_eq!(r.url.topology, Topology::Cluster);
    assert_eq!(r.url.password.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(
        r.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/redis/ca.pem"))
    );
    assert!(r.cert_file.is_some() && r.key_file.is_some());
    assert!(!format!("{c:?}").contains("s3cret"));
    for (text, want) in [
        (
            "session_store: redis://r\nsession_store_ca_file: /ca.pem",
            "needs a TLS session_store",
        ),
        (
            "session_store: rediss://r\nsession_store_cert_file: /c.pem",
            "needs session_store_key_file",
        ),
        (
            "session_store_password: hunter2",
            "needs a Redis `session_store`",
        ),
        (
            "session_store: redis+sentinel://:hunter2@s1,s2",
            "the URL needs the master's name",
        ),
    ] {
        let err = parse_err(text);
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("hunter2"), "{text}: {err}");
    }
}

#[test]
fn connection_keys() {
    assert_eq!(parse_ok("").connections, ConnectionSettings::default());
    type Check = fn(&ConnectionSettings) -> bool;
    let cases: &[(&str, Check)] = &[
        ("use_proxy_protocol: true", |c| c.use_proxy_protocol),
        ("xff_num_trusted_hops: 2", |c| c.xff_num_trusted_hops == 2),
        ("timeout_header_read: 5s", |c| {
            c.timeout_header_read == Duration::from_secs(5)
        }),
        ("timeout_idle: 0", |c| c.timeout_idle.is_zero()),
        ("timeout_idle: 1m", |c| {
            c.timeout_idle == Duration::from_secs(60)
        }),
        ("max_connections_per_worker: 500", |c| {
            c.max_connections_per_worker == 500
        }),
        ("max_concurrent_requests_per_connection: 8", |c| {
            c.max_concurrent_requests_per_connection == 8
        }),
        ("http2_max_concurrent_streams: 50", |c| {
            c.http2_max_concurrent_streams == 50
        }),
    ];
    for (text, check) in cases {
        assert!(check(&parse_ok(text).connections), "{text}");
    }
    let bad = [
        (
            "xff_num_trusted_hops: -1",
            "config.yaml:1:23: xff_num_trusted_hops: must be between 0 and",
        ),
        (
            "xff_num_trusted_hops: two",
            "expected a whole number, found a string",
        ),
        (
            "max_connections_per_worker: 0",
            "must be between 1 and 1000000, found 0",
        ),
        (
            "http2_max_concurrent_streams: 1.5",
            "expected a whole number, found a number",
        ),
        ("timeout_idle: 5", "a duration needs a unit"),
        ("use_proxy_protocol: maybe", "expected true or false"),
    ];
    for (text, want) in bad {
        let err = parse_err(text);
        assert!(err.contains(want), "{text}: {err}");
    }
    // From the environment, as every top-level key.
    let env = |k: &str| match k {
        "USE_PROXY_PROTOCOL" => Some("true".to_string()),
        "XFF_NUM_TRUSTED_HOPS" => Some("1".to_string()),
        _ => None,
    };
    let c = Config::parse("", "config.yaml", &env).unwrap().connections;
    assert!(c.use_proxy_protocol);
    assert_eq!(c.xff_num_trusted_hops, 1);
}
