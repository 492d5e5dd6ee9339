//! Watching a namespace list: admission keeps only the listed namespaces, and a
//! namespaced watcher's re-list replaces only its own namespace's objects.

use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::kube::index::{Indexed, ObjectKey, Relist};

/// An Ingress of class `portcullis` named `name` in namespace `ns`.
fn ingress_in(ns: &str, name: &str) -> Ingress {
    let mut ing = ingress(name, &format!("{name}.{ns}.example.com"), json!({}));
    ing.metadata.namespace = Some(ns.into());
    ing
}

fn ingress_keys(ix: &Index) -> Vec<String> {
    ix.translate()
        .ingresses
        .iter()
        .map(|r| r.key.to_string())
        .collect()
}

/// An index of every namespace holding Ingresses `a/x`, `a/y`, `b/x` and `b/z`.
fn two_namespaces() -> Index {
    let mut ix = Index::new(Settings::default());
    ix.apply(class(
        "portcullis",
        crate::kube::index::CONTROLLER_NAME,
        false,
    ))
    .unwrap();
    for (ns, name) in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "z")] {
        assert_eq!(ix.apply(ingress_in(ns, name)), Ok(true));
    }
    ix
}

#[test]
fn scoped_reset_replaces_only_its_namespace() {
    struct Case {
        name: &'static str,
        scope: Option<&'static str>,
        relisted: &'static [(&'static str, &'static str)],
        changed: bool,
        keys: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a lost y; b untouched",
            scope: Some("a"),
            relisted: &[("a", "x")],
            changed: true,
            keys: &["a/x", "b/x", "b/z"],
        },
        Case {
            name: "the same list changes nothing",
            scope: Some("a"),
            relisted: &[("a", "x"), ("a", "y")],
            changed: false,
            keys: &["a/x", "a/y", "b/x", "b/z"],
        },
        Case {
            name: "a gained w",
            scope: Some("a"),
            relisted: &[("a", "x"), ("a", "y"), ("a", "w")],
            changed: true,
            keys: &["a/w", "a/x", "a/y", "b/x", "b/z"],
        },
        Case {
            name: "a emptied",
            scope: Some("a"),
            relisted: &[],
            changed: true,
            keys: &["b/x", "b/z"],
        },
        Case {
            name: "another namespace's object in the list is not a's to add",
            scope: Some("a"),
            relisted: &[("a", "x"), ("a", "y"), ("b", "new")],
            changed: false,
            keys: &["a/x", "a/y", "b/x", "b/z"],
        },
        Case {
            name: "b re-lists: a untouched",
            scope: Some("b"),
            relisted: &[("b", "z")],
            changed: true,
            keys: &["a/x", "a/y", "b/z"],
        },
        Case {
            name: "an empty namespace re-lists empty",
            scope: Some("c"),
            relisted: &[],
            changed: false,
            keys: &["a/x", "a/y", "b/x", "b/z"],
        },
        Case {
            name: "unscoped replaces everything",
            scope: None,
            relisted: &[("a", "x")],
            changed: true,
            keys: &["a/x"],
        },
    ];
    for case in cases {
        let mut ix = two_namespaces();
        let objs = case
            .relisted
            .iter()
            .map(|(ns, name)| ingress_in(ns, name))
            .collect();
        let reset = ix.reset_scoped(objs, case.scope);
        assert_eq!(reset.changed, case.changed, "{}", case.name);
        assert!(reset.malformed.is_empty(), "{}", case.name);
        assert_eq!(ingress_keys(&ix), case.keys, "{}", case.name);
    }
}

#[test]
fn every_namespaced_kind_resets_within_its_scope() {
    let mut ix = Index::new(Settings::default());
    for ns in ["a", "b"] {
        ix.apply(service(ns, "web", json!([{"port": 80}]))).unwrap();
        ix.apply(slice(ns, "web-1", "web", json!([]), json!([])))
            .unwrap();
        ix.apply(tls_secret(ns, "tls")).unwrap();
        ix.apply(identity_policy(ns, "p", json!({"rules": []})))
            .unwrap();
    }
    fn empty_relist<K: Indexed>(ix: &mut Index) {
        let reset = ix.reset_scoped::<K>(Vec::new(), Some("a"));
        assert!(reset.changed, "{}", K::KIND);
    }
    empty_relist::<Service>(&mut ix);
    empty_relist::<EndpointSlice>(&mut ix);
    empty_relist::<Secret>(&mut ix);
    empty_relist::<IdentityPolicy>(&mut ix);
    let services: Vec<_> = ix.services.items.keys().cloned().collect();
    assert_eq!(services, [ObjectKey::new("b", "web")]);
    let slices: Vec<_> = ix.slices.items.keys().cloned().collect();
    assert_eq!(slices, [ObjectKey::new("b", "web-1")]);
    let secrets: Vec<_> = ix.secrets.items.keys().cloned().collect();
    assert_eq!(secrets, [ObjectKey::new("b", "tls")]);
    let policies: Vec<_> = ix.policies.items.keys().cloned().collect();
    assert_eq!(policies, [ObjectKey::new("b", "p")]);
}

#[test]
fn scoped_relists_drive_one_index() {
    let mut ix = two_namespaces();
    let mut a: Relist<Ingress> = Relist::scoped("a");
    let mut b: Relist<Ingress> = Relist::scoped("b");
    assert_eq!(a.scope(), Some("a"));
    assert_eq!(Relist::<Ingress>::new().scope(), None);

    // a's watcher re-lists (after an outage during which a/y was deleted).
    a.handle(&mut ix, Event::Init);
    a.handle(&mut ix, Event::InitApply(ingress_in("a", "x")));
    assert!(a.handle(&mut ix, Event::InitDone).changed);
    assert!(a.synced() && !b.synced());
    assert_eq!(ingress_keys(&ix), ["a/x", "b/x", "b/z"]);

    // b's first list: what a listed stays.
    b.handle(&mut ix, Event::Init);
    b.handle(&mut ix, Event::InitApply(ingress_in("b", "x")));
    b.handle(&mut ix, Event::InitApply(ingress_in("b", "z")));
    assert!(!b.handle(&mut ix, Event::InitDone).changed);
    assert!(b.synced());
    assert_eq!(ingress_keys(&ix), ["a/x", "b/x", "b/z"]);

    // Watch events go straight through.
    assert!(
        b.handle(&mut ix, Event::Delete(ingress_in("b", "x")))
            .changed
    );
    assert!(
        a.handle(&mut ix, Event::Apply(ingress_in("a", "v")))
            .changed
    );
    assert_eq!(ingress_keys(&ix), ["a/v", "a/x", "b/z"]);
}

#[test]
fn admission_keeps_only_the_listed_namespaces() {
    let mut ix = Index::new(Settings {
        namespaces: vec!["a".into(), "b".into()],
        ..Settings::default()
    });
    // IngressClasses are cluster-scoped: always kept.
    assert_eq!(
        ix.apply(class(
            "portcullis",
            crate::kube::index::CONTROLLER_NAME,
            false
        )),
        Ok(true)
    );
    for ns in ["a", "b", "c"] {
        let kept = ns != "c";
        assert_eq!(ix.apply(ingress_in(ns, "x")), Ok(kept), "{ns}");
        let svc = service(ns, "web", json!([{"port": 80}]));
        assert_eq!(ix.apply(svc), Ok(kept), "{ns}");
        let slice = slice(ns, "web-1", "web", json!([]), json!([]));
        assert_eq!(ix.apply(slice), Ok(kept), "{ns}");
        assert_eq!(ix.apply(tls_secret(ns, "tls")), Ok(kept), "{ns}");
        let policy = identity_policy(ns, "p", json!({"rules": []}));
        assert_eq!(ix.apply(policy), Ok(kept), "{ns}");
    }
    assert_eq!(ingress_keys(&ix), ["a/x", "b/x"]);
    assert!(ix.services.items.keys().all(|k| k.namespace != "c"));
    assert!(ix.slices.items.keys().all(|k| k.namespace != "c"));
    assert!(ix.secrets.items.keys().all(|k| k.namespace != "c"));
    assert!(ix.policies.items.keys().all(|k| k.namespace != "c"));
}

#[test]
fn an_ingress_in_an_unwatched_namespace_never_appears() {
    let mut ix = classed(Settings {
        namespaces: vec!["a".into(), "b".into()],
        ..Settings::default()
    });
    let stray = ingress_in("c", "stray");

    // Not by a watch event, ...
    let mut relist: Relist<Ingress> = Relist::new();
    assert!(!relist.handle(&mut ix, Event::Apply(stray.clone())).changed);
    // ... not by an unscoped re-list, ...
    relist.handle(&mut ix, Event::Init);
    relist.handle(&mut ix, Event::InitApply(ingress_in("a", "x")));
    relist.handle(&mut ix, Event::InitApply(stray.clone()));
    relist.handle(&mut ix, Event::InitDone);
    assert_eq!(ingress_keys(&ix), ["a/x"]);
    // ... nor by a re-list scoped to its own namespace.
    let reset = ix.reset_scoped(vec![stray.clone()], Some("c"));
    assert!(!reset.changed);
    assert_eq!(ingress_keys(&ix), ["a/x"]);
    let t = ix.translate();
    assert!(t.model.routes.iter().all(|r| !r.id.starts_with("c/")));
    assert!(!ix.delete::<Ingress>("c", "stray"));
}
