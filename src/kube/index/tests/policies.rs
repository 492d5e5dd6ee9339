//! IdentityPolicy attachment (targetRefs, ingressSelector, annotation), the union with
//! annotation policies, and the policy reports.

use serde_json::json;

use super::*;
use crate::kube::index::ObjectKey;
use crate::policy::Policy;

const RULES: &str = r#"[{"allow": {"and": [{"groups": {"has": "admin"}}]}}]"#;

fn rules() -> serde_json::Value {
    serde_json::from_str(RULES).unwrap()
}

fn labelled(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> Ingress {
    let mut ing = ingress(name, &format!("{name}.example.com"), annotations);
    ing.metadata.labels = from(labels);
    ing
}

fn attached(t: &Translation, key: &str) -> Vec<String> {
    report(t, key)
        .identity_policies
        .iter()
        .map(ObjectKey::to_string)
        .collect()
}

#[test]
fn three_ways_to_attach_and_they_add_up() {
    let mut ix = index();
    ix.apply(identity_policy(
        "apps",
        "by-ref",
        json!({
        "targetRefs": [{"kind": "Ingress", "name": "a"}], "rules": rules()}),
    ))
    .unwrap();
    ix.apply(identity_policy(
        "apps",
        "by-label",
        json!({
        "ingressSelector": {"matchLabels": {"team": "ops"}}, "rules": rules()}),
    ))
    .unwrap();
    ix.apply(identity_policy("apps", "by-expression", json!({
        "ingressSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
        "rules": rules()}))).unwrap();
    ix.apply(identity_policy(
        "apps",
        "everyone",
        json!({
        "ingressSelector": {}, "rules": rules()}),
    ))
    .unwrap();
    ix.apply(identity_policy(
        "apps",
        "no-selector",
        json!({"rules": rules()}),
    ))
    .unwrap();
    ix.apply(identity_policy(
        "other",
        "elsewhere",
        json!({
        "ingressSelector": {}, "targetRefs": [{"kind": "Ingress", "name": "a"}], "rules": rules()}),
    ))
    .unwrap();

    ix.apply(labelled("a", json!({"team": "ops"}), json!({})))
        .unwrap();
    ix.apply(labelled(
        "b",
        json!({"tier": "api"}),
        json!({"portcullis.dev/identity-policy": "no-selector"}),
    ))
    .unwrap();
    ix.apply(labelled(
        "c",
        json!({}),
        json!({"portcullis.dev/policy": "allow: {or: [{email: {is: a@example.com}}]}"}),
    ))
    .unwrap();

    let t = ix.translate();
    assert_eq!(
        attached(&t, "apps/a"),
        ["apps/by-label", "apps/by-ref", "apps/everyone"]
    );
    assert_eq!(
        attached(&t, "apps/b"),
        ["apps/by-expression", "apps/everyone", "apps/no-selector"]
    );
    assert_eq!(attached(&t, "apps/c"), ["apps/everyone"]);
    assert!(report(&t, "apps/c").policy_annotation);
    for key in ["apps/a", "apps/b", "apps/c"] {
        let rep = report(&t, key);
        assert!(rep.accepted, "{key}: {:?}", rep.notes);
        assert!(!warnings(rep).contains(&"NoPolicy"), "{key}");
    }

    let counts: Vec<(String, i32)> = t
        .policies
        .iter()
        .map(|p| (p.key.to_string(), p.attached_ingresses))
        .collect();
    assert_eq!(
        counts,
        [
            ("apps/by-expression".into(), 1),
            ("apps/by-label".into(), 1),
            ("apps/by-ref".into(), 1),
            ("apps/everyone".into(), 3),
            ("apps/no-selector".into(), 1),
            ("other/elsewhere".into(), 0),
        ]
    );
    for p in &t.policies {
        assert_eq!(p.generation, Some(3));
        assert_eq!(
            (p.accepted.status, p.accepted.reason),
            (true, "Valid"),
            "{}",
            p.key
        );
    }
    // `other/elsewhere` names `a`, but in its own namespace, where there is none.
    let elsewhere = t
        .policies
        .iter()
        .find(|p| p.key.to_string() == "other/elsewhere")
        .unwrap();
    assert_eq!(
        (
            elsewhere.resolved_refs.status,
            elsewhere.resolved_refs.reason
        ),
        (false, "TargetNotFound")
    );
    let by_ref = t
        .policies
        .iter()
        .find(|p| p.key.to_string() == "apps/by-ref")
        .unwrap();
    assert_eq!(by_ref.resolved_refs.status_str(), "True");
    assert_eq!(by_ref.resolved_refs.reason, "RefsResolved");
    let no_refs = t
        .policies
        .iter()
        .find(|p| p.key.to_string() == "apps/everyone")
        .unwrap();
    assert_eq!(
        (no_refs.resolved_refs.status, no_refs.resolved_refs.reason),
        (true, "RefsResolved")
    );
}

#[test]
fn target_of_another_class_is_not_resolved() {
    let mut ix = index();
    let mut theirs = ingress("theirs", "t.example.com", json!({}));
    theirs.spec.as_mut().unwrap().ingress_class_name = Some("nginx".into());
    ix.apply(theirs).unwrap();
    ix.apply(identity_policy(
        "apps",
        "p",
        json!({
        "targetRefs": [{"kind": "Ingress", "name": "theirs"}], "rules": rules()}),
    ))
    .unwrap();
    let t = ix.translate();
    let p = &t.policies[0];
    assert_eq!(
        (p.resolved_refs.status, p.resolved_refs.reason),
        (false, "TargetNotFound")
    );
    assert!(
        p.resolved_refs
            .message
            .contains("not of a Portcullis IngressClass")
    );
    assert_eq!(p.attached_ingresses, 0);
}

#[test]
fn wrong_kind_target() {
    let mut ix = index();
    ix.apply(identity_policy(
        "apps",
        "p",
        json!({
        "targetRefs": [{"group": "", "kind": "Service", "name": "a"}],
        "rules": rules()}),
    ))
    .unwrap();
    let t = ix.translate();
    assert_eq!(t.policies[0].resolved_refs.reason, "InvalidKind");
    // Gateway API kinds are valid; one that does not exist is not found.
    ix.apply(identity_policy(
        "apps",
        "p",
        json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "a"}],
        "rules": rules()}),
    ))
    .unwrap();
    let t = ix.translate();
    assert_eq!(t.policies[0].resolved_refs.reason, "TargetNotFound");
    assert!(
        t.policies[0]
            .resolved_refs
            .message
            .contains("HTTPRoute apps/a not found")
    );
}

#[test]
fn missing_identity_policy_rejects() {
    let mut ix = index();
    ix.apply(identity_policy(
        "apps",
        "present",
        json!({"rules": rules()}),
    ))
    .unwrap();
    ix.apply(ingress(
        "a",
        "a.example.com",
        json!({"portcullis.dev/identity-policy": "present,absent"}),
    ))
    .unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(!rep.accepted);
    assert_eq!(warnings(rep), ["IdentityPolicyNotFound"]);
    assert!(rep.notes[0].message.contains("apps/absent"));
    let r = route(&t, "apps/a/rules[0]/paths[0]");
    assert!(denies(r));
    // Creating it heals the Ingress on the next translation.
    ix.apply(identity_policy("apps", "absent", json!({"rules": rules()})))
        .unwrap();
    let t = ix.translate();
    assert!(report(&t, "apps/a").accepted);
    assert!(!denies(route(&t, "apps/a/rules[0]/paths[0]")));
}

#[test]
fn invalid_rules_deny_every_attached_ingress() {
    // The engine decides what is invalid; with the policy stub nothing is, and this
    // test only checks the plumbing that does not depend on it.
    let bad = json!([{"allow": {"and": [{"no_such_criterion": true}]}}]);
    let engine_rejects = Policy::from_value(&bad).is_err();
    let mut ix = index();
    ix.apply(identity_policy(
        "apps",
        "bad",
        json!({"ingressSelector": {}, "rules": bad}),
    ))
    .unwrap();
    ix.apply(ingress(
        "a",
        "a.example.com",
        json!({"portcullis.dev/allowed-users": "a@example.com"}),
    ))
    .unwrap();
    let t = ix.translate();
    let p = &t.policies[0];
    assert_eq!(p.attached_ingresses, 1);
    let rep = report(&t, "apps/a");
    if engine_rejects {
        assert_eq!(
            (p.accepted.status, p.accepted.reason),
            (false, "InvalidRules")
        );
        assert!(!p.accepted.message.is_empty());
        assert!(!rep.accepted);
        assert_eq!(warnings(rep), ["IdentityPolicyInvalid"]);
        assert!(denies(route(&t, "apps/a/rules[0]/paths[0]")));
    } else {
        assert!(p.accepted.status && rep.accepted);
    }
}

#[test]
fn invalid_selector_is_not_accepted_and_denies_where_named() {
    let mut ix = index();
    ix.apply(identity_policy("apps", "odd", json!({
        "ingressSelector": {"matchExpressions": [{"key": "team", "operator": "Like", "values": ["o"]}]},
        "rules": rules()}))).unwrap();
    // Attached by annotation: the policy is not usable, so the Ingress denies.
    ix.apply(ingress(
        "a",
        "a.example.com",
        json!({"portcullis.dev/identity-policy": "odd"}),
    ))
    .unwrap();
    // Not attached any other way: the bad selector selects nothing.
    ix.apply(ingress(
        "b",
        "b.example.com",
        json!({"portcullis.dev/allowed-users": "a@example.com"}),
    ))
    .unwrap();
    let t = ix.translate();
    let p = &t.policies[0];
    assert_eq!(
        (p.accepted.status, p.accepted.reason),
        (false, "InvalidSelector")
    );
    assert!(
        p.accepted.message.contains("Like"),
        "{}",
        p.accepted.message
    );
    assert_eq!(p.attached_ingresses, 1);
    let a = report(&t, "apps/a");
    assert!(!a.accepted);
    assert_eq!(warnings(a), ["IdentityPolicyInvalid"]);
    assert!(denies(route(&t, "apps/a/rules[0]/paths[0]")));
    assert!(report(&t, "apps/b").accepted);
}

#[test]
fn no_policy_at_all_is_a_warning_and_the_empty_union() {
    let mut ix = index();
    ix.apply(ingress("a", "a.example.com", json!({}))).unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(rep.accepted, "denying everyone is valid, just rarely meant");
    assert_eq!(warnings(rep), ["NoPolicy"]);
    assert!(
        rep.identity_policies.is_empty() && !rep.policy_annotation && !rep.shorthand_annotations
    );
    // Normal note too: the Ingress is served (and denies).
    assert!(
        rep.notes
            .iter()
            .any(|n| n.type_ == NoteType::Normal && n.reason == "Accepted")
    );
}

#[test]
fn policy_deletion_and_label_changes_detach() {
    let mut ix = index();
    ix.apply(identity_policy(
        "apps",
        "ops",
        json!({
        "ingressSelector": {"matchLabels": {"team": "ops"}}, "rules": rules()}),
    ))
    .unwrap();
    ix.apply(labelled("a", json!({"team": "ops"}), json!({})))
        .unwrap();
    assert_eq!(attached(&ix.translate(), "apps/a"), ["apps/ops"]);
    ix.apply(labelled("a", json!({"team": "dev"}), json!({})))
        .unwrap();
    assert!(attached(&ix.translate(), "apps/a").is_empty());
    ix.apply(labelled("a", json!({"team": "ops"}), json!({})))
        .unwrap();
    assert!(ix.delete::<IdentityPolicy>("apps", "ops"));
    let t = ix.translate();
    assert!(attached(&t, "apps/a").is_empty());
    assert!(t.policies.is_empty());
}
