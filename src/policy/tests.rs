//! Table-driven tests: every criterion and matcher, the operators (PPL's odd `not` and
//! `nor` included), decision order and sign-in, shorthands, union, and every error kind
//! with its location.

use std::net::IpAddr;

use jiff::Timestamp;
use serde_json::json;

use super::cli::eval_cli;
use super::*;

/// The request every case starts from; a case's `tweak` changes what it needs.
struct Ctx {
    identity: Option<Identity>,
    method: &'static str,
    path: &'static str,
    source_ip: Option<IpAddr>,
    cors_preflight: bool,
    /// A Wednesday, 10:30 UTC.
    now: Timestamp,
}

fn alice() -> Identity {
    Identity {
        user: "u-123".into(),
        email: "alice@example.com".into(),
        groups: vec!["admins".into(), "00gid42".into()],
        claims: json!({
            "family_name": "Smith",
            "groups": ["eng", "ops"],
            "org": {"team": "core", "unit": {"floor": "3"}},
            "age": 30,
            "verified": true,
            "a/b": "literal",
            "nothing": null,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            identity: Some(alice()),
            method: "GET",
            path: "/app/index.html",
            source_ip: Some("10.1.2.3".parse().unwrap()),
            cors_preflight: false,
            now: ts("2024-06-05T10:30:00Z"),
        }
    }
}

impl Ctx {
    fn decide(&self, policy: &Policy) -> Decision {
        corpus_export::decided(policy, self);
        policy.evaluate(&Input {
            identity: self.identity.as_ref(),
            request: Request {
                method: self.method,
                path: self.path,
                host: "app.example.com",
                source_ip: self.source_ip,
                cors_preflight: self.cors_preflight,
            },
            now: self.now,
        })
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn policy(yaml: &str) -> Policy {
    let p =
        Policy::from_yaml(yaml).unwrap_or_else(|e| panic!("policy should compile: {e}\n{yaml}"));
    corpus_export::compiled(&p, yaml);
    p
}

/// With `PPL_CORPUS_EXPORT=FILE`, every document these tests compile with [`policy`] (or
/// refuse in `every_error_with_its_location`) is appended to FILE with each input it is
/// decided for, in `portcullis policy eval`'s input format: the fixed cases of the PPL
/// corpus (tests/data/ppl-corpus, made by e2e/ppl-corpus/generate). Unset: nothing.
mod corpus_export {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io::Write as _;
    use std::sync::Mutex;

    use serde_json::{Value, json};

    use super::{Ctx, Policy};

    thread_local! {
        static SOURCES: RefCell<HashMap<usize, String>> = RefCell::new(HashMap::new());
    }
    static FILE: Mutex<()> = Mutex::new(());

    fn enabled() -> Option<String> {
        std::env::var("PPL_CORPUS_EXPORT").ok()
    }

    pub(super) fn compiled(p: &Policy, yaml: &str) {
        if enabled().is_some() {
            let key = std::sync::Arc::as_ptr(&p.inner) as usize;
            SOURCES.with(|s| s.borrow_mut().insert(key, yaml.to_owned()));
        }
    }

    pub(super) fn decided(p: &Policy, ctx: &Ctx) {
        if enabled().is_none() {
            return;
        }
        let key = std::sync::Arc::as_ptr(&p.inner) as usize;
        if let Some(yaml) = SOURCES.with(|s| s.borrow().get(&key).cloned()) {
            write(&yaml, ctx);
        }
    }

    /// Also for documents that do not compile.
    pub(super) fn write(yaml: &str, ctx: &Ctx) {
        let Some(path) = enabled() else { return };
        let identity = ctx.identity.as_ref().map(|id| {
            json!({"user": id.user, "email": id.email, "groups": id.groups, "claims": id.claims})
        });
        let mut request =
            json!({"method": ctx.method, "path": ctx.path, "host": "app.example.com"});
        if let Some(ip) = ctx.source_ip {
            request["source_ip"] = Value::String(ip.to_string());
        }
        if ctx.cors_preflight {
            request["method"] = "OPTIONS".into();
            request["headers"] = json!({"Origin": "https://other.example.com", "Access-Control-Request-Method": "POST"});
        }
        let test = std::thread::current().name().unwrap_or("").to_owned();
        let line = json!({
            "source": format!("src/policy/tests.rs {test}"),
            "policy": yaml,
            "input": {"identity": identity, "request": request, "time": ctx.now.to_string()},
        });
        let _guard = crate::sync::lock(&FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

fn anonymous(c: &mut Ctx) {
    c.identity = None;
}

fn nothing(_: &mut Ctx) {}

/// `(criterion as a YAML flow mapping, change to the request, expected match)`.
type CriterionCase = (&'static str, fn(&mut Ctx), bool);

#[test]
fn every_criterion_and_matcher() {
    let cases: &[CriterionCase] = &[
        // accept, reject, authenticated_user
        ("{accept: true}", nothing, true),
        ("{accept: true}", anonymous, true),
        ("{reject: true}", nothing, false),
        ("{authenticated_user: true}", nothing, true),
        // email: bare scalar is `is`, then every string matcher
        ("{email: alice@example.com}", nothing, true),
        ("{email: bob@example.com}", nothing, false),
        ("{email: {is: alice@example.com}}", nothing, true),
        ("{email: {is: ALICE@example.com}}", nothing, false),
        ("{email: {not: bob@example.com}}", nothing, true),
        ("{email: {not: alice@example.com}}", nothing, false),
        ("{email: {starts_with: alice@}}", nothing, true),
        ("{email: {starts_with: bob@}}", nothing, false),
        ("{email: {ends_with: '@example.com'}}", nothing, true),
        ("{email: {ends_with: '@example.org'}}", nothing, false),
        ("{email: {contains: '@exam'}}", nothing, true),
        ("{email: {contains: bob}}", nothing, false),
        (
            "{email: {in: [bob@example.com, alice@example.com]}}",
            nothing,
            true,
        ),
        ("{email: {in: [bob@example.com]}}", nothing, false),
        ("{email: {in: []}}", nothing, false),
        ("{email: {not_in: [bob@example.com]}}", nothing, true),
        (
            "{email: {not_in: [bob@example.com, alice@example.com]}}",
            nothing,
            false,
        ),
        // several matcher keys must all hold
        (
            "{email: {starts_with: alice, ends_with: example.com}}",
            nothing,
            true,
        ),
        (
            "{email: {starts_with: alice, ends_with: example.org}}",
            nothing,
            false,
        ),
        // domain: the part after `@`
        ("{domain: example.com}", nothing, true),
        ("{domain: {is: example.org}}", nothing, false),
        ("{domain: {ends_with: .com}}", nothing, true),
        ("{domain: example.com}", |c| no_at_email(c), false),
        ("{domain: {not: example.com}}", |c| no_at_email(c), false),
        ("{domain: b}", |c| email(c, "a@b@c"), true),
        // user: the IdP subject
        ("{user: u-123}", nothing, true),
        ("{user: {in: [u-1, u-123]}}", nothing, true),
        ("{user: alice@example.com}", nothing, false),
        // groups: bare scalar is `has`, then has / is / exclude
        ("{groups: admins}", nothing, true),
        ("{groups: 00gid42}", nothing, true),
        ("{groups: {has: admins}}", nothing, true),
        ("{groups: {has: devs}}", nothing, false),
        ("{groups: {is: admins}}", nothing, false),
        ("{groups: {is: admins}}", |c| groups(c, &["admins"]), true),
        ("{groups: {exclude: contractors}}", nothing, true),
        ("{groups: {exclude: admins}}", nothing, false),
        (
            "{groups: {has: admins, exclude: contractors}}",
            nothing,
            true,
        ),
        ("{groups: {has: admins}}", |c| groups(c, &[]), false),
        // claim/<name>: scalars are one-element lists; nesting with / and .
        ("{claim/family_name: Smith}", nothing, true),
        ("{claim/family_name: smith}", nothing, false),
        ("{claim/family_name: {is: Smith}}", nothing, true),
        ("{claim/groups: eng}", nothing, true),
        ("{claim/groups: {has: ops}}", nothing, true),
        ("{claim/groups: {has: hr}}", nothing, false),
        ("{claim/groups: {is: eng}}", nothing, false),
        ("{claim/groups: {exclude: hr}}", nothing, true),
        ("{claim/groups: {exclude: eng}}", nothing, false),
        ("{claim/age: 30}", nothing, true),
        ("{claim/age: '30'}", nothing, false),
        ("{claim/verified: true}", nothing, true),
        ("{claim/verified: false}", nothing, false),
        ("{claim/org/team: core}", nothing, true),
        ("{claim/org.team: core}", nothing, true),
        ("{claim/org/unit/floor: '3'}", nothing, true),
        ("{claim/org: core}", nothing, false),
        ("{claim/a/b: literal}", nothing, true),
        ("{claim/missing: x}", nothing, false),
        ("{claim/missing: {exclude: x}}", nothing, true),
        ("{claim/nothing: {has: x}}", nothing, false),
        // http_method, http_path
        ("{http_method: GET}", nothing, true),
        ("{http_method: {is: POST}}", nothing, false),
        ("{http_method: {in: [GET, HEAD]}}", nothing, true),
        ("{http_method: {not_in: [GET, HEAD]}}", nothing, false),
        ("{http_path: {starts_with: /app/}}", nothing, true),
        ("{http_path: {starts_with: /admin/}}", nothing, false),
        ("{http_path: /app/index.html}", nothing, true),
        (
            "{http_path: {ends_with: .html, contains: app}}",
            nothing,
            true,
        ),
        // source_ip: IP, CIDR, list, IPv6, mapped IPv4, absent
        ("{source_ip: 10.1.2.3}", nothing, true),
        ("{source_ip: 10.1.2.4}", nothing, false),
        ("{source_ip: 10.0.0.0/8}", nothing, true),
        ("{source_ip: 10.1.2.3/8}", nothing, true),
        ("{source_ip: 192.168.0.0/16}", nothing, false),
        ("{source_ip: [192.168.0.0/16, 10.1.0.0/16]}", nothing, true),
        (
            "{source_ip: '2001:db8::/32'}",
            |c| ip(c, "2001:db8::1"),
            true,
        ),
        ("{source_ip: '2001:db8::/32'}", nothing, false),
        (
            "{source_ip: 10.0.0.0/8}",
            |c| ip(c, "::ffff:10.9.9.9"),
            true,
        ),
        ("{source_ip: '::ffff:10.0.0.0/104'}", nothing, true),
        ("{source_ip: 0.0.0.0/0}", |c| c.source_ip = None, false),
        // cors_preflight
        ("{cors_preflight: true}", nothing, false),
        ("{cors_preflight: true}", |c| c.cors_preflight = true, true),
        // date: after inclusive, before exclusive, UTC without offset
        ("{date: {after: '2024-01-01T00:00:00'}}", nothing, true),
        ("{date: {after: '2025-01-01'}}", nothing, false),
        ("{date: {before: '2025-01-01'}}", nothing, true),
        ("{date: {before: '2024-06-05T10:30:00'}}", nothing, false),
        ("{date: {after: '2024-06-05T10:30:00'}}", nothing, true),
        (
            "{date: {after: '2024-06-05T12:00:00+02:00'}}",
            nothing,
            true,
        ),
        ("{date: {after: '2024-06-05T10:30:01Z'}}", nothing, false),
        (
            "{date: {after: '2024-06-05T10:30:00-01:00'}}",
            nothing,
            false,
        ),
        (
            "{date: {after: 2020-01-02T16:20:00, before: 2150-01-02T16:20:00}}",
            nothing,
            true,
        ),
        // day_of_week (UTC): now is a Wednesday
        ("{day_of_week: '*'}", nothing, true),
        ("{day_of_week: wed}", nothing, true),
        ("{day_of_week: Wednesday}", nothing, true),
        ("{day_of_week: 'mon,wed'}", nothing, true),
        ("{day_of_week: 'Monday, Tuesday'}", nothing, false),
        ("{day_of_week: mon-fri}", nothing, true),
        ("{day_of_week: thu-fri}", nothing, false),
        ("{day_of_week: fri-wed}", nothing, true),
        ("{day_of_week: 'sat,sun'}", nothing, false),
        ("{day_of_week: 'sat-sun,wed'}", nothing, true),
        (
            "{day_of_week: 'mon-fri'}",
            |c| c.now = ts("2024-06-08T10:00:00Z"),
            false,
        ),
        // time_of_day: now is 10:30 UTC, 12:30 in Paris (CEST)
        (
            "{time_of_day: {timezone: UTC, after: '09:00', before: '17:00'}}",
            nothing,
            true,
        ),
        (
            "{time_of_day: {timezone: UTC, after: '11:00'}}",
            nothing,
            false,
        ),
        (
            "{time_of_day: {timezone: UTC, before: '10:30'}}",
            nothing,
            false,
        ),
        (
            "{time_of_day: {timezone: UTC, after: '10:30'}}",
            nothing,
            true,
        ),
        (
            "{time_of_day: {timezone: UTC, after: '10:29:59.5', before: '10:30:00.5'}}",
            nothing,
            true,
        ),
        (
            "{time_of_day: {timezone: UTC, after: 9 AM, before: 5PM}}",
            nothing,
            true,
        ),
        (
            "{time_of_day: {timezone: UTC, after: '9:00AM', before: '10:00 AM'}}",
            nothing,
            false,
        ),
        (
            "{time_of_day: {timezone: Europe/Paris, after: '12:00'}}",
            nothing,
            true,
        ),
        (
            "{time_of_day: {timezone: Europe/Paris, before: '12:00'}}",
            nothing,
            false,
        ),
        (
            "{time_of_day: {timezone: America/New_York, before: 7 AM}}",
            nothing,
            true,
        ),
        // after > before wraps midnight
        (
            "{time_of_day: {timezone: UTC, after: '22:00', before: '11:00'}}",
            nothing,
            true,
        ),
        (
            "{time_of_day: {timezone: UTC, after: '22:00', before: '06:00'}}",
            nothing,
            false,
        ),
        (
            "{time_of_day: {timezone: UTC, after: '22:00', before: '06:00'}}",
            |c| c.now = ts("2024-06-05T23:15:00Z"),
            true,
        ),
    ];
    let mut failures = Vec::new();
    for (criterion, tweak, want) in cases {
        let p = policy(&format!("allow:\n  and:\n    - {criterion}\n"));
        let mut ctx = Ctx::default();
        tweak(&mut ctx);
        let got = ctx.decide(&p).outcome;
        let want = if *want { Outcome::Allow } else { Outcome::Deny };
        if got != want {
            failures.push(format!("{criterion}: got {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn no_at_email(c: &mut Ctx) {
    email(c, "alice");
}

fn email(c: &mut Ctx, e: &str) {
    if let Some(id) = c.identity.as_mut() {
        id.email = e.into();
    }
}

fn groups(c: &mut Ctx, gs: &[&str]) {
    if let Some(id) = c.identity.as_mut() {
        id.groups = gs.iter().map(|g| g.to_string()).collect();
    }
}

fn ip(c: &mut Ctx, s: &str) {
    c.source_ip = Some(s.parse().unwrap());
}

#[test]
fn operators_including_ppl_not_and_nor() {
    // `not` is "none true" (NOR), `nor` is "not all true" (NAND), as in PPL.
    let cases: &[(&str, bool)] = &[
        ("and: [{accept: 1}, {accept: 1}]", true),
        ("and: [{accept: 1}, {reject: 1}]", false),
        ("or: [{reject: 1}, {accept: 1}]", true),
        ("or: [{reject: 1}, {reject: 1}]", false),
        ("not: [{reject: 1}, {reject: 1}]", true),
        ("not: [{accept: 1}, {reject: 1}]", false),
        ("not: [{accept: 1}, {accept: 1}]", false),
        ("nor: [{accept: 1}, {reject: 1}]", true),
        ("nor: [{reject: 1}, {reject: 1}]", true),
        ("nor: [{accept: 1}, {accept: 1}]", false),
        // nesting
        ("and: [{accept: 1}, {or: [{reject: 1}, {accept: 1}]}]", true),
        (
            "and: [{accept: 1}, {or: [{reject: 1}, {reject: 1}]}]",
            false,
        ),
        ("not: [{and: [{accept: 1}, {reject: 1}]}]", true),
        (
            "or: [{nor: [{accept: 1}, {accept: 1}]}, {not: [{reject: 1}]}]",
            true,
        ),
        (
            "and: [{not: [{http_method: POST}]}, {nor: [{http_path: /x}, {http_method: GET}]}]",
            true,
        ),
        // several operators in one rule: any of them
        ("{and: [{reject: 1}], or: [{accept: 1}]}", true),
        ("{and: [{reject: 1}], not: [{accept: 1}]}", false),
    ];
    for (body, want) in cases {
        let yaml = if body.starts_with('{') {
            format!("allow: {body}")
        } else {
            format!("allow: {{{body}}}")
        };
        let p = policy(&yaml);
        let want = if *want { Outcome::Allow } else { Outcome::Deny };
        assert_eq!(Ctx::default().decide(&p).outcome, want, "{yaml}");
    }
}

#[test]
fn decision_order_and_sign_in() {
    use Outcome::*;
    // (policy, anonymous?, method, expected)
    let cases: &[(&str, bool, &str, Outcome)] = &[
        // deny beats allow
        (
            "[{allow: {or: [{accept: 1}]}}, {deny: {or: [{http_method: DELETE}]}}]",
            false,
            "DELETE",
            Deny,
        ),
        (
            "[{allow: {or: [{accept: 1}]}}, {deny: {or: [{http_method: DELETE}]}}]",
            false,
            "GET",
            Allow,
        ),
        (
            "{allow: {or: [{accept: 1}]}, deny: {or: [{http_method: DELETE}]}}",
            true,
            "DELETE",
            Deny,
        ),
        // nothing matches: deny
        ("allow: {or: [{http_method: POST}]}", false, "GET", Deny),
        ("[]", false, "GET", Deny),
        ("[]", true, "GET", Deny),
        // an identity criterion in a failing allow: sign in
        (
            "allow: {or: [{email: alice@example.com}]}",
            true,
            "GET",
            SignIn,
        ),
        (
            "allow: {and: [{http_method: POST}, {email: alice@example.com}]}",
            true,
            "GET",
            SignIn,
        ),
        ("allow: {and: [{groups: admins}]}", true, "GET", SignIn),
        ("allow: {and: [{claim/groups: eng}]}", true, "GET", SignIn),
        ("allow: {and: [{user: u-123}]}", true, "GET", SignIn),
        ("allow: {and: [{domain: example.com}]}", true, "GET", SignIn),
        (
            "allow: {and: [{authenticated_user: true}]}",
            true,
            "GET",
            SignIn,
        ),
        // a matching allow carries only its own reasons: no sign-in
        (
            "allow: {or: [{accept: 1}, {email: alice@example.com}]}",
            true,
            "GET",
            Allow,
        ),
        (
            "[{allow: {or: [{accept: 1}]}}, {allow: {or: [{email: x@y}]}}]",
            true,
            "GET",
            Allow,
        ),
        // an `and` that failed on a request criterion still reports the identity one
        (
            "allow: {and: [{http_method: POST}, {email: x@y}]}",
            true,
            "GET",
            SignIn,
        ),
        // identity criteria under not/nor: the inverted result keeps the reason
        (
            "allow: {not: [{email: bob@example.com}]}",
            true,
            "GET",
            SignIn,
        ),
        (
            "allow: {nor: [{email: bob@example.com}]}",
            true,
            "GET",
            SignIn,
        ),
        (
            "allow: {not: [{email: bob@example.com}]}",
            false,
            "GET",
            Allow,
        ),
        // a deny rule with an identity criterion: sign in first
        (
            "[{allow: {or: [{accept: 1}]}}, {deny: {or: [{email: bob@example.com}]}}]",
            true,
            "GET",
            SignIn,
        ),
        (
            "[{allow: {or: [{accept: 1}]}}, {deny: {and: [{http_method: POST}, {email: b@x}]}}]",
            true,
            "GET",
            SignIn,
        ),
        // ...unless the deny matched on other criteria (its reasons are those of the match)
        (
            "[{allow: {or: [{accept: 1}]}}, {deny: {or: [{http_method: GET}, {email: b@x}]}}]",
            true,
            "GET",
            Deny,
        ),
        // signed in, wrong person: plain deny
        (
            "allow: {or: [{email: bob@example.com}]}",
            false,
            "GET",
            Deny,
        ),
        (
            "[{allow: {or: [{accept: 1}]}}, {deny: {or: [{email: alice@example.com}]}}]",
            false,
            "GET",
            Deny,
        ),
    ];
    for (yaml, anon, method, want) in cases {
        let p = policy(yaml);
        let mut ctx = Ctx {
            method,
            ..Ctx::default()
        };
        if *anon {
            ctx.identity = None;
        }
        assert_eq!(
            ctx.decide(&p).outcome,
            *want,
            "{yaml} anonymous={anon} {method}"
        );
    }
}

/// A client_credentials token (claims, no user ID), or with `user` the same identity as
/// a user.
fn service_identity(user: &str) -> Identity {
    Identity {
        user: user.into(),
        email: "svc@example.com".into(),
        groups: vec!["admins".into()],
        claims: json!({"cid": "reporting", "scp": ["read"], "email": "svc@example.com"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

#[test]
fn an_empty_user_id_is_not_a_user() {
    use Outcome::*;
    use Reason::*;
    // Every identity criterion refuses an empty user ID, whatever the matcher: a plain
    // deny, not a sign-in (it is signed in, just not as a user). Claims still decide.
    // (criterion, decision without a user ID, decision with user ID u-123)
    let cases: &[(&str, (Outcome, Reason), Outcome)] = &[
        (
            "{authenticated_user: true}",
            (Deny, UserUnauthorized),
            Allow,
        ),
        ("{email: svc@example.com}", (Deny, EmailUnauthorized), Allow),
        (
            "{email: {not: x@example.com}}",
            (Deny, EmailUnauthorized),
            Allow,
        ),
        ("{email: {not_in: []}}", (Deny, EmailUnauthorized), Allow),
        ("{domain: example.com}", (Deny, DomainUnauthorized), Allow),
        (
            "{domain: {not: example.org}}",
            (Deny, DomainUnauthorized),
            Allow,
        ),
        ("{user: ''}", (Deny, UserUnauthorized), Deny),
        ("{user: {not: u-1}}", (Deny, UserUnauthorized), Allow),
        ("{groups: admins}", (Deny, GroupsUnauthorized), Allow),
        (
            "{groups: {exclude: contractors}}",
            (Deny, GroupsUnauthorized),
            Allow,
        ),
        ("{claim/cid: reporting}", (Allow, ClaimOk), Allow),
        ("{claim/scp: {has: read}}", (Allow, ClaimOk), Allow),
        ("{claim/cid: other}", (Deny, ClaimUnauthorized), Deny),
        ("{claim/email: svc@example.com}", (Allow, ClaimOk), Allow),
    ];
    let mut failures = Vec::new();
    for (criterion, (outcome, reason), as_user) in cases {
        let p = policy(&format!("allow:\n  and:\n    - {criterion}\n"));
        for (user, want) in [
            ("", (*outcome, Reasons::one(*reason))),
            ("u-123", (*as_user, Reasons::EMPTY)),
        ] {
            let ctx = Ctx {
                identity: Some(service_identity(user)),
                ..Ctx::default()
            };
            let got = ctx.decide(&p);
            let reasons_ok = want.1.is_empty() || got.reasons == want.1;
            if got.outcome != want.0 || !reasons_ok {
                failures.push(format!(
                    "{criterion} user={user:?}: got {} {}, want {} {}",
                    got.outcome, got.reasons, want.0, want.1
                ));
            }
        }
    }
    // Inverted, the refusal counts as false: `not: [authenticated_user]` lets it in.
    let p = policy("allow: {not: [{authenticated_user: true}]}");
    let ctx = Ctx {
        identity: Some(service_identity("")),
        ..Ctx::default()
    };
    assert_eq!(ctx.decide(&p).outcome, Allow);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn decisions_carry_reasons() {
    use Reason::*;
    let cases: &[(&str, bool, &[Reason])] = &[
        (
            "allow: {and: [{email: alice@example.com}, {http_method: GET}]}",
            false,
            &[EmailOk, HttpMethodOk],
        ),
        (
            "allow: {and: [{email: bob@example.com}, {http_method: GET}]}",
            false,
            &[EmailUnauthorized],
        ),
        (
            "allow: {or: [{email: bob@example.com}, {http_method: POST}]}",
            false,
            &[EmailUnauthorized, HttpMethodUnauthorized],
        ),
        (
            "allow: {or: [{email: alice@example.com}]}",
            true,
            &[UserUnauthenticated],
        ),
        (
            "{allow: {or: [{accept: 1}]}, deny: {or: [{source_ip: 10.0.0.0/8}]}}",
            false,
            &[SourceIpOk],
        ),
        (
            "allow: {or: [{cors_preflight: 1}]}",
            true,
            &[NonCorsRequest],
        ),
        (
            "allow: {or: [{date: {after: '2000-01-01'}}, {day_of_week: sun}]}",
            false,
            &[DateOk],
        ),
        (
            "allow: {and: [{time_of_day: {timezone: UTC, after: '11:00'}}, {reject: 1}]}",
            false,
            &[TimeOfDayUnauthorized, Reject],
        ),
        (
            "allow: {not: [{groups: devs}, {claim/groups: hr}]}",
            false,
            &[GroupsUnauthorized, ClaimUnauthorized],
        ),
        (
            "allow: {nor: [{groups: admins}, {claim/groups: eng}]}",
            false,
            &[GroupsOk, ClaimOk],
        ),
        ("allow: {and: [{day_of_week: wed}]}", false, &[DayOfWeekOk]),
        (
            "allow: {and: [{http_path: /nope}]}",
            false,
            &[HttpPathUnauthorized],
        ),
        (
            "allow: {and: [{user: u-123}, {domain: example.com}]}",
            false,
            &[UserOk, DomainOk],
        ),
        ("allow: {and: [{accept: 1}]}", false, &[Accept]),
    ];
    for (yaml, anon, want) in cases {
        let mut ctx = Ctx::default();
        if *anon {
            ctx.identity = None;
        }
        let got = ctx.decide(&policy(yaml)).reasons;
        let want: Reasons = want.iter().copied().collect();
        assert_eq!(got, want, "{yaml}: got {got}, want {want}");
    }
    let all: Reasons = Reason::ALL.into_iter().collect();
    assert_eq!(all.iter().count(), Reason::ALL.len());
    assert_eq!(
        Reasons::one(Reason::EmailOk)
            .union(Reasons::one(Reason::Accept))
            .to_string(),
        "accept,email-ok"
    );
}

#[test]
fn shorthands() {
    use Outcome::*;
    let anon = |c: &mut Ctx| c.identity = None;
    let bob = |c: &mut Ctx| {
        c.identity = Some(Identity {
            user: "u-9".into(),
            email: "bob@other.org".into(),
            ..Identity::default()
        })
    };
    let preflight = |c: &mut Ctx| {
        c.identity = None;
        c.cors_preflight = true;
        c.method = "OPTIONS";
    };
    let s = |f: fn(&mut Shorthands)| {
        let mut s = Shorthands::default();
        f(&mut s);
        s
    };
    type ShorthandCase = (Shorthands, fn(&mut Ctx), Outcome);
    let cases: Vec<ShorthandCase> = vec![
        (Shorthands::default(), nothing, Deny),
        (Shorthands::default(), anon, Deny),
        (
            s(|s| s.allow_public_unauthenticated_access = true),
            anon,
            Allow,
        ),
        (s(|s| s.allow_any_authenticated_user = true), anon, SignIn),
        (s(|s| s.allow_any_authenticated_user = true), bob, Allow),
        (
            s(|s| s.allowed_users = vec!["u-123".into()]),
            nothing,
            Allow,
        ),
        (
            s(|s| s.allowed_users = vec!["alice@example.com".into()]),
            nothing,
            Allow,
        ),
        (
            s(|s| s.allowed_users = vec!["alice@example.com".into()]),
            bob,
            Deny,
        ),
        (
            s(|s| s.allowed_users = vec!["alice@example.com".into()]),
            anon,
            SignIn,
        ),
        (
            s(|s| s.allowed_domains = vec!["example.com".into()]),
            nothing,
            Allow,
        ),
        (
            s(|s| s.allowed_domains = vec!["example.com".into()]),
            bob,
            Deny,
        ),
        (
            s(|s| s.allowed_groups = vec!["admins".into()]),
            nothing,
            Allow,
        ),
        (s(|s| s.allowed_groups = vec!["admins".into()]), bob, Deny),
        (s(|s| s.cors_allow_preflight = true), preflight, Allow),
        (s(|s| s.cors_allow_preflight = true), anon, Deny),
        (
            s(|s| {
                s.cors_allow_preflight = true;
                s.allowed_domains = vec!["example.com".into()];
            }),
            preflight,
            Allow,
        ),
    ];
    for (i, (sh, tweak, want)) in cases.iter().enumerate() {
        let p = Policy::from_shorthands(sh);
        assert!(p.invalid_reason().is_none());
        let mut ctx = Ctx::default();
        tweak(&mut ctx);
        assert_eq!(ctx.decide(&p).outcome, *want, "case {i}: {sh:?}");
    }
    assert!(Policy::from_shorthands(&Shorthands::default()).is_empty());
}

#[test]
fn union_and_deny_all() {
    let alice_only = policy("allow: {or: [{email: alice@example.com}]}");
    let bob_only = Policy::from_shorthands(&Shorthands {
        allowed_users: vec!["bob@example.com".into()],
        ..Shorthands::default()
    });
    let no_delete = policy("deny: {or: [{http_method: DELETE}]}");
    let u = Policy::union([bob_only.clone(), alice_only.clone(), no_delete.clone()]);
    assert_eq!(Ctx::default().decide(&u).outcome, Outcome::Allow);
    let delete = Ctx {
        method: "DELETE",
        ..Ctx::default()
    };
    assert_eq!(delete.decide(&u).outcome, Outcome::Deny);
    assert_eq!(Ctx::default().decide(&bob_only).outcome, Outcome::Deny);

    // Empty union: no rules, denies everyone.
    let empty = Policy::union([]);
    assert!(empty.is_empty() && empty.invalid_reason().is_none());
    assert_eq!(Ctx::default().decide(&empty).outcome, Outcome::Deny);

    // deny_all: everyone denied, reason kept, also through a union.
    let broken = Policy::deny_all("bad policy in route x");
    let d = Ctx::default().decide(&broken);
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.reasons, Reasons::one(Reason::InvalidPolicy));
    assert_eq!(broken.invalid_reason(), Some("bad policy in route x"));
    let public = Policy::from_shorthands(&Shorthands {
        allow_public_unauthenticated_access: true,
        ..Shorthands::default()
    });
    let u = Policy::union([public.clone(), broken, Policy::deny_all("second")]);
    assert_eq!(u.invalid_reason(), Some("bad policy in route x"));
    let anon = Ctx {
        identity: None,
        ..Ctx::default()
    };
    assert_eq!(anon.decide(&u).outcome, Outcome::Deny);
    assert_eq!(anon.decide(&public).outcome, Outcome::Allow);
}

/// A Gateway's policy is a baseline: both it and the route's own must allow.
#[test]
fn baseline_all_of() {
    let employees = policy("allow: {or: [{groups: {has: admins}}, {groups: {has: employees}}]}");
    let admins = policy("allow: {or: [{groups: {has: admins}}]}");
    let public = policy("allow: {or: [{accept: true}]}");
    let no_delete = policy("allow: {or: [{accept: true}]}\ndeny: {or: [{http_method: DELETE}]}");
    let from_office = policy("allow: {or: [{source_ip: 10.0.0.0/8}]}");
    let bob = Identity {
        user: "u-bob".into(),
        email: "bob@example.com".into(),
        groups: vec!["employees".into()],
        ..Identity::default()
    };
    let as_bob = |c: &mut Ctx| c.identity = Some(bob.clone());
    let delete = |c: &mut Ctx| c.method = "DELETE";
    let outside = |c: &mut Ctx| c.source_ip = Some("192.0.2.1".parse().unwrap());
    type Tweak<'a> = &'a dyn Fn(&mut Ctx);
    let cases: &[(&str, &Policy, &Policy, Tweak<'_>, Outcome)] = &[
        // A Gateway allowing employees never widens a route limited to admins.
        (
            "admins route, bob",
            &admins,
            &employees,
            &as_bob,
            Outcome::Deny,
        ),
        (
            "admins route, alice",
            &admins,
            &employees,
            &nothing,
            Outcome::Allow,
        ),
        // A public route still needs the Gateway's employees.
        (
            "public route, anonymous",
            &public,
            &employees,
            &anonymous,
            Outcome::SignIn,
        ),
        (
            "public route, bob",
            &public,
            &employees,
            &as_bob,
            Outcome::Allow,
        ),
        // A deny from either side applies.
        (
            "gateway denies DELETE",
            &admins,
            &no_delete,
            &delete,
            Outcome::Deny,
        ),
        (
            "route denies DELETE",
            &no_delete,
            &public,
            &delete,
            Outcome::Deny,
        ),
        // A deny needs no sign-in: it wins over the other side's sign-in.
        (
            "outside, anonymous",
            &from_office,
            &employees,
            &|c: &mut Ctx| {
                anonymous(c);
                outside(c)
            },
            Outcome::Deny,
        ),
        (
            "route asks sign-in",
            &admins,
            &from_office,
            &anonymous,
            Outcome::SignIn,
        ),
    ];
    for (name, route, gateway, tweak, want) in cases {
        let mut c = Ctx::default();
        tweak(&mut c);
        let both = (*route).clone().all_of((*gateway).clone());
        assert_eq!(c.decide(&both).outcome, *want, "{name}");
    }
    // Chains: every baseline must allow.
    let chained = public
        .clone()
        .all_of(employees.clone())
        .all_of(admins.clone());
    let mut c = Ctx::default();
    as_bob(&mut c);
    assert_eq!(c.decide(&chained).outcome, Outcome::Deny);
    assert!(!chained.is_empty());
    // An invalid side denies; a baseline cannot be widened by a union.
    let broken = public
        .clone()
        .all_of(Policy::deny_all("gateway policy broken"));
    assert_eq!(broken.invalid_reason(), Some("gateway policy broken"));
    let widened = Policy::union([public.clone().all_of(admins.clone()), public.clone()]);
    assert!(widened.invalid_reason().is_some());
    assert_eq!(Ctx::default().decide(&widened).outcome, Outcome::Deny);
}

#[test]
fn from_value_matches_from_yaml() {
    let doc = json!([{"allow": {"and": [{"domain": {"is": "example.com"}}]}}]);
    let p = Policy::from_value(&doc).unwrap();
    assert_eq!(Ctx::default().decide(&p).outcome, Outcome::Allow);
    let err = Policy::from_value(&json!({"allow": {"and": [{"email": {"is": 1}}]}})).unwrap_err();
    assert_eq!(err.location, "allow.and[0].email.is");
}

#[test]
fn yaml_times_stay_strings() {
    // YAML 1.1 would read 2:20:00 as a sexagesimal number.
    let p = policy(
        "allow:\n  and:\n    - time_of_day:\n        timezone: UTC\n        after: 2:20:00\n        before: 4:30PM\n",
    );
    assert_eq!(Ctx::default().decide(&p).outcome, Outcome::Allow);
}

#[test]
fn every_error_with_its_location() {
    let cases: &[(&str, &str, &str)] = &[
        // document shape
        ("42", "$", "expected a rule or a list of rules"),
        ("allow: [", "$", "invalid YAML"),
        ("- 1", "[0]", "expected a rule object"),
        ("- {}", "[0]", "empty rule"),
        (
            "permit: {or: [{accept: 1}]}",
            "permit",
            "unknown key \"permit\"",
        ),
        (
            "- allow: {or: [{accept: 1}]}\n- permit: {}",
            "[1].permit",
            "unknown key",
        ),
        (
            "allow: [{accept: 1}]",
            "allow",
            "expected an object with and, or, not or nor",
        ),
        ("allow: {}", "allow", "no operators"),
        (
            "allow: {xor: [{accept: 1}]}",
            "allow.xor",
            "unknown operator \"xor\"",
        ),
        (
            "allow: {and: {accept: 1}}",
            "allow.and",
            "expected a list of criteria",
        ),
        // empty operator lists, nested too
        ("allow: {and: []}", "allow.and", "empty operator"),
        (
            "- allow: {and: [{accept: 1}]}\n- deny: {or: []}",
            "[1].deny.or",
            "empty operator",
        ),
        (
            "allow: {and: [{or: []}]}",
            "allow.and[0].or",
            "empty operator",
        ),
        (
            "allow: {and: [{not: [{nor: []}]}]}",
            "allow.and[0].not[0].nor",
            "empty operator",
        ),
        // criterion shape
        (
            "allow: {and: [accept]}",
            "allow.and[0]",
            "expected a criterion object",
        ),
        (
            "allow: {and: [{accept: 1, reject: 1}]}",
            "allow.and[0]",
            "exactly one key, found 2",
        ),
        (
            "allow: {and: [{}]}",
            "allow.and[0]",
            "exactly one key, found 0",
        ),
        (
            "allow: {and: [{emial: x}]}",
            "allow.and[0].emial",
            "unknown criterion \"emial\"",
        ),
        (
            "allow: {and: [{device: x}]}",
            "allow.and[0].device",
            "unknown criterion",
        ),
        (
            "allow: {and: [{email/x: y}]}",
            "allow.and[0].email/x",
            "takes no sub-path",
        ),
        (
            "allow: {and: [{nope/x: y}]}",
            "allow.and[0].nope/x",
            "unknown criterion",
        ),
        (
            "allow: {and: [{claim: x}]}",
            "allow.and[0].claim",
            "claim needs a name",
        ),
        (
            "allow: {and: [{claim/: x}]}",
            "allow.and[0].claim/",
            "claim needs a name",
        ),
        (
            "allow: {and: [{claim/a//b: x}]}",
            "allow.and[0].claim/a//b",
            "empty segment",
        ),
        (
            "allow: {and: [{accept: false}]}",
            "allow.and[0].accept",
            "false is not supported",
        ),
        (
            "deny: {or: [{cors_preflight: false}]}",
            "deny.or[0].cors_preflight",
            "false is not supported",
        ),
        // matchers
        (
            "allow: {and: [{email: {equals: x}}]}",
            "allow.and[0].email.equals",
            "unknown string matcher \"equals\"",
        ),
        (
            "allow: {and: [{email: {}}]}",
            "allow.and[0].email",
            "empty string matcher",
        ),
        (
            "allow: {and: [{groups: {contains: x}}]}",
            "allow.and[0].groups.contains",
            "unknown string list matcher",
        ),
        (
            "allow: {and: [{groups: {}}]}",
            "allow.and[0].groups",
            "empty string list matcher",
        ),
        (
            "allow: {and: [{claim/x: {in: [a]}}]}",
            "allow.and[0].claim/x.in",
            "unknown string list matcher",
        ),
        // wrong value types
        (
            "allow: {and: [{email: 5}]}",
            "allow.and[0].email",
            "got a number",
        ),
        (
            "allow: {and: [{user: [a, b]}]}",
            "allow.and[0].user",
            "got a list",
        ),
        (
            "allow: {and: [{http_method: {is: [GET]}}]}",
            "allow.and[0].http_method.is",
            "expected a string, got a list",
        ),
        (
            "allow: {and: [{email: {in: x}}]}",
            "allow.and[0].email.in",
            "expected a list of strings",
        ),
        (
            "allow: {and: [{email: {not_in: [a, 1]}}]}",
            "allow.and[0].email.not_in[1]",
            "expected a string",
        ),
        (
            "allow: {and: [{groups: 1234}]}",
            "allow.and[0].groups",
            "quote it",
        ),
        (
            "allow: {and: [{groups: {has: [a]}}]}",
            "allow.and[0].groups.has",
            "got a list",
        ),
        (
            "allow: {and: [{claim/x: {has: {a: 1}}}]}",
            "allow.and[0].claim/x.has",
            "got an object",
        ),
        (
            "allow: {and: [{claim/x: null}]}",
            "allow.and[0].claim/x",
            "got null",
        ),
        // source_ip
        (
            "allow: {and: [{source_ip: 10.0.0.0/33}]}",
            "allow.and[0].source_ip",
            "invalid IP address or CIDR range \"10.0.0.0/33\"",
        ),
        (
            "allow: {and: [{source_ip: [10.0.0.1, nope]}]}",
            "allow.and[0].source_ip[1]",
            "invalid IP",
        ),
        (
            "allow: {and: [{source_ip: []}]}",
            "allow.and[0].source_ip",
            "empty list",
        ),
        (
            "allow: {and: [{source_ip: 10}]}",
            "allow.and[0].source_ip",
            "got a number",
        ),
        // time_of_day
        (
            "- allow:\n    and:\n      - accept: true\n      - http_method: GET\n      - time_of_day: {timezone: Mars/Base, after: '9:00'}",
            "[0].allow.and[2].time_of_day.timezone",
            "unknown time zone \"Mars/Base\"",
        ),
        (
            "allow: {and: [{time_of_day: {after: '9:00'}}]}",
            "allow.and[0].time_of_day.timezone",
            "timezone is required",
        ),
        (
            "allow: {and: [{time_of_day: {timezone: UTC}}]}",
            "allow.and[0].time_of_day",
            "at least one of after, before",
        ),
        (
            "allow: {and: [{time_of_day: {timezone: 5, after: '9:00'}}]}",
            "allow.and[0].time_of_day.timezone",
            "expected a time zone name",
        ),
        (
            "allow: {and: [{time_of_day: {timezone: UTC, after: '25:00'}}]}",
            "allow.and[0].time_of_day.after",
            "invalid time \"25:00\"",
        ),
        (
            "allow: {and: [{time_of_day: {timezone: UTC, before: noon}}]}",
            "allow.and[0].time_of_day.before",
            "invalid time",
        ),
        (
            "allow: {and: [{time_of_day: {timezone: UTC, at: '9:00'}}]}",
            "allow.and[0].time_of_day.at",
            "unknown key \"at\"",
        ),
        (
            "allow: {and: [{time_of_day: '9:00'}]}",
            "allow.and[0].time_of_day",
            "expected an object",
        ),
        // date
        (
            "allow: {and: [{date: {after: yesterday}}]}",
            "allow.and[0].date.after",
            "invalid date \"yesterday\"",
        ),
        (
            "allow: {and: [{date: {before: '2024-13-01'}}]}",
            "allow.and[0].date.before",
            "invalid date",
        ),
        (
            "allow: {and: [{date: {since: '2024-01-01'}}]}",
            "allow.and[0].date.since",
            "unknown key \"since\"",
        ),
        (
            "allow: {and: [{date: {}}]}",
            "allow.and[0].date",
            "empty object",
        ),
        (
            "allow: {and: [{date: {after: 20240101}}]}",
            "allow.and[0].date.after",
            "got a number",
        ),
        // day_of_week
        (
            "allow: {and: [{day_of_week: funday}]}",
            "allow.and[0].day_of_week",
            "unknown day \"funday\"",
        ),
        (
            "allow: {and: [{day_of_week: mon-xyz}]}",
            "allow.and[0].day_of_week",
            "unknown day \"xyz\"",
        ),
        (
            "allow: {and: [{day_of_week: 'mon,'}]}",
            "allow.and[0].day_of_week",
            "unknown day \"\"",
        ),
        (
            "allow: {and: [{day_of_week: 1}]}",
            "allow.and[0].day_of_week",
            "got a number",
        ),
    ];
    let mut failures = Vec::new();
    for (yaml, location, message) in cases {
        corpus_export::write(yaml, &Ctx::default());
        match Policy::from_yaml(yaml) {
            Ok(_) => failures.push(format!("{yaml:?}: compiled, want error at {location}")),
            Err(e) if e.location != *location || !e.message.contains(message) => failures.push(
                format!("{yaml:?}: got {e}, want {location}: ...{message}..."),
            ),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let mars = cases.iter().find(|c| c.0.contains("Mars/Base")).unwrap();
    let e = Policy::from_yaml(mars.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "[0].allow.and[2].time_of_day.timezone: unknown time zone \"Mars/Base\""
    );
}

#[test]
fn policy_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    let p = policy("allow: {or: [{accept: 1}]}");
    let q = p.clone();
    assert!(std::sync::Arc::ptr_eq(&p.inner, &q.inner));
}

#[test]
fn cli() {
    let policy = "allow:\n  and:\n    - email: alice@example.com\n    - http_method: GET\n";
    let input = r#"{"identity": {"user": "u-1", "email": "alice@example.com", "groups": [], "claims": {}},
                    "request": {"method": "GET", "path": "/", "host": "a", "source_ip": "10.0.0.1"},
                    "time": "2024-06-05T10:30:00Z"}"#;
    assert_eq!(
        eval_cli(policy, input).unwrap(),
        "allow\nemail-ok\nhttp-method-ok\n"
    );

    let anon = r#"{"identity": null, "request": {"method": "GET", "path": "/"}}"#;
    assert_eq!(
        eval_cli(policy, anon).unwrap(),
        "sign-in\nuser-unauthenticated\n"
    );
    let absent = r#"{"request": {"method": "GET", "path": "/"}}"#;
    assert_eq!(
        eval_cli(policy, absent).unwrap(),
        "sign-in\nuser-unauthenticated\n"
    );

    let bob =
        r#"{"identity": {"email": "bob@example.com"}, "request": {"method": "GET", "path": "/"}}"#;
    assert_eq!(eval_cli(policy, bob).unwrap(), "deny\nemail-unauthorized\n");

    // cors_preflight comes from the method and headers, any header case.
    let cors = "allow: {or: [{cors_preflight: true}]}";
    let pre = r#"{"request": {"method": "OPTIONS", "path": "/", "headers": {"origin": "https://x", "Access-Control-Request-Method": "POST"}}}"#;
    assert_eq!(eval_cli(cors, pre).unwrap(), "allow\ncors-request\n");
    let not_pre =
        r#"{"request": {"method": "OPTIONS", "path": "/", "headers": {"Origin": "https://x"}}}"#;
    assert_eq!(eval_cli(cors, not_pre).unwrap(), "deny\nnon-cors-request\n");

    // Invalid input or policy: Err with a clear message.
    let unknown = r#"{"request": {"method": "GET", "path": "/", "ip": "1.2.3.4"}}"#;
    let e = eval_cli(policy, unknown).unwrap_err();
    assert!(e.contains("unknown field `ip`"), "{e}");
    let top = r#"{"request": {"method": "GET", "path": "/"}, "now": "x"}"#;
    assert!(
        eval_cli(policy, top)
            .unwrap_err()
            .contains("unknown field `now`")
    );
    let ident = r#"{"identity": {"mail": "x"}, "request": {"method": "GET", "path": "/"}}"#;
    assert!(
        eval_cli(policy, ident)
            .unwrap_err()
            .contains("unknown field `mail`")
    );
    let bad_time = r#"{"request": {"method": "GET", "path": "/"}, "time": "tomorrow"}"#;
    assert!(eval_cli(policy, bad_time).unwrap_err().contains("time"));
    let bad_ip = r#"{"request": {"method": "GET", "path": "/", "source_ip": "x"}}"#;
    assert!(eval_cli(policy, bad_ip).unwrap_err().contains("source_ip"));
    let e = eval_cli("allow: {and: []}", absent).unwrap_err();
    assert_eq!(
        e,
        "invalid policy: allow.and: empty operator; expected at least one criterion"
    );
}
