//! The index itself: change detection, malformed objects, re-lists, watcher events,
//! namespace restriction, determinism.

use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::kube::index::{ObjectKey, Relist};

#[test]
fn apply_reports_only_changes_translation_reads() {
    let mut ix = index();
    let ing = ingress("a", "a.example.com", json!({}));
    assert_eq!(ix.apply(ing.clone()), Ok(true));
    assert_eq!(ix.apply(ing.clone()), Ok(false));
    // Our own status write, and a resourceVersion bump, change nothing we read.
    let mut touched = ing.clone();
    touched.metadata.resource_version = Some("42".into());
    touched.status = from(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}));
    assert_eq!(ix.apply(touched), Ok(false));
    let mut relabelled = ing;
    relabelled.metadata.labels = from(json!({"team": "ops"}));
    assert_eq!(ix.apply(relabelled), Ok(true));

    // Secrets no Ingress could use are not kept.
    let token: Secret = from(json!({"metadata": {"name": "tok", "namespace": "apps"},
        "type": "kubernetes.io/service-account-token", "data": {"token": "eA=="}}));
    assert_eq!(ix.apply(token), Ok(false));
    assert!(!ix.delete::<Secret>("apps", "tok"));
}

#[test]
fn malformed_objects_are_skipped_not_fatal() {
    let mut ix = index();
    let nameless: Ingress = from(json!({"metadata": {"namespace": "apps"}}));
    let err = ix.apply(nameless).unwrap_err();
    assert_eq!(err.kind, "Ingress");
    assert!(err.to_string().contains("no metadata.name"), "{err}");
    let namespaceless: Service = from(json!({"metadata": {"name": "x"}}));
    assert!(ix.apply(namespaceless).is_err());
    let classless: IngressClass = from(json!({"metadata": {}}));
    assert!(ix.apply(classless).is_err());

    let reset = ix.reset(vec![
        ingress("good", "good.example.com", json!({})),
        from(json!({"metadata": {"namespace": "apps"}})),
    ]);
    assert!(reset.changed);
    assert_eq!(reset.malformed.len(), 1);
    assert_eq!(ix.translate().ingresses.len(), 1);
}

#[test]
fn reset_reconciles_deletions_missed_while_the_watch_was_down() {
    let mut ix = index();
    for name in ["a", "b", "c"] {
        ix.apply(ingress(name, &format!("{name}.example.com"), json!({})))
            .unwrap();
    }
    ix.apply(tls_secret("apps", "old")).unwrap();
    assert_eq!(ix.translate().ingresses.len(), 3);

    // Re-list: b was deleted and d created meanwhile.
    let reset = ix.reset(vec![
        ingress("a", "a.example.com", json!({})),
        ingress("c", "c.example.com", json!({})),
        ingress("d", "d.example.com", json!({})),
    ]);
    assert_eq!(
        reset,
        crate::kube::index::Reset {
            changed: true,
            malformed: vec![]
        }
    );
    let t = ix.translate();
    let keys: Vec<String> = t.ingresses.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(keys, ["apps/a", "apps/c", "apps/d"]);
    assert!(t.model.routes.iter().all(|r| !r.id.starts_with("apps/b/")));

    // The same list again changes nothing.
    let again = ix.reset(vec![
        ingress("a", "a.example.com", json!({})),
        ingress("c", "c.example.com", json!({})),
        ingress("d", "d.example.com", json!({})),
    ]);
    assert!(!again.changed);

    // Every kind resets.
    assert!(ix.reset::<Secret>(vec![]).changed);
    assert!(ix.reset::<Service>(vec![]).changed);
    assert!(ix.reset::<EndpointSlice>(vec![]).changed);
    assert!(!ix.reset::<IdentityPolicy>(vec![]).changed);
    let t = ix.translate();
    assert!(
        t.model
            .routes
            .iter()
            .all(|r| r.backend.endpoints.is_empty())
    );
    assert!(ix.reset::<IngressClass>(vec![]).changed);
    assert!(ix.translate().ingresses.is_empty());
}

#[test]
fn watcher_events_drive_the_index() {
    let mut ix = index();
    let mut relist: Relist<Ingress> = Relist::new();
    assert!(!relist.synced());
    let a = ingress("a", "a.example.com", json!({}));
    let b = ingress("b", "b.example.com", json!({}));

    assert!(relist.handle(&mut ix, Event::Apply(a.clone())).changed);
    assert!(relist.handle(&mut ix, Event::Apply(b.clone())).changed);
    assert!(relist.handle(&mut ix, Event::Delete(b.clone())).changed);
    assert!(!relist.handle(&mut ix, Event::Delete(b.clone())).changed);

    // A re-list is buffered: nothing changes until InitDone, then missing objects go.
    ix.apply(b.clone()).unwrap();
    assert!(!relist.handle(&mut ix, Event::Init).changed);
    assert!(!relist.handle(&mut ix, Event::InitApply(a.clone())).changed);
    assert_eq!(ix.translate().ingresses.len(), 2);
    let done = relist.handle(&mut ix, Event::InitDone);
    assert!(done.changed);
    assert!(relist.synced());
    let t = ix.translate();
    assert_eq!(t.ingresses.len(), 1);
    assert_eq!(t.ingresses[0].key, ObjectKey::new("apps", "a"));

    let malformed: Ingress = from(json!({"metadata": {"namespace": "apps"}}));
    assert_eq!(
        relist
            .handle(&mut ix, Event::Apply(malformed))
            .malformed
            .len(),
        1
    );

    let mut classes: Relist<IngressClass> = Relist::new();
    classes.handle(&mut ix, Event::Init);
    classes.handle(&mut ix, Event::InitDone);
    assert!(ix.translate().ingresses.is_empty(), "our class is gone");
}

#[test]
fn namespace_restriction() {
    let mut ix = classed(Settings {
        namespaces: vec!["apps".into()],
        ..Settings::default()
    });
    let mut elsewhere = ingress("x", "x.example.com", json!({}));
    elsewhere.metadata.namespace = Some("other".into());
    assert_eq!(ix.apply(elsewhere), Ok(false));
    assert_eq!(ix.apply(ingress("a", "a.example.com", json!({}))), Ok(true));
    let t = ix.translate();
    assert_eq!(t.ingresses.len(), 1);
    assert_eq!(t.ingresses[0].key.namespace, "apps");
}

#[test]
fn translation_is_deterministic() {
    let build = |reverse: bool| {
        let mut ix = index();
        let mut names: Vec<String> = (0..20).map(|i| format!("ing-{i:02}")).collect();
        if reverse {
            names.reverse();
        }
        for n in &names {
            ix.apply(tls_secret("apps", n)).unwrap();
            let mut ing = ingress(n, &format!("{n}.example.com"), json!({}));
            ing.spec.as_mut().unwrap().tls = from(json!([{"secretName": n}]));
            ix.apply(ing).unwrap();
        }
        format!("{:?}", ix.translate())
    };
    assert_eq!(build(false), build(true));
}
