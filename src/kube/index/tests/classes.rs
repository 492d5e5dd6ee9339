//! Which Ingresses are ours: by class name, legacy annotation, or default class.

use serde_json::json;

use super::*;
use crate::kube::index::CONTROLLER_NAME;

fn with_class(name: &str, class_name: Option<&str>, legacy: Option<&str>) -> Ingress {
    let mut ing = json!({
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    });
    if let Some(c) = class_name {
        ing["spec"]["ingressClassName"] = json!(c);
    }
    if let Some(l) = legacy {
        ing["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": l});
    }
    from(ing)
}

#[test]
fn class_selection() {
    // (ingressClassName, legacy annotation, our class is default, ours?)
    let cases: &[(Option<&str>, Option<&str>, bool, bool)] = &[
        (Some("portcullis"), None, false, true),
        (Some("nginx"), None, false, false),
        (Some("nginx"), None, true, false),
        (Some("missing"), None, true, false),
        // The class name wins over the legacy annotation.
        (Some("nginx"), Some("portcullis"), false, false),
        (Some("portcullis"), Some("nginx"), false, true),
        (None, Some("portcullis"), false, true),
        (None, Some("nginx"), false, false),
        (None, Some("nginx"), true, false),
        (None, None, false, false),
        (None, None, true, true),
    ];
    for (i, &(class_name, legacy, default, ours)) in cases.iter().enumerate() {
        let mut ix = index();
        ix.apply(class("portcullis", CONTROLLER_NAME, default))
            .unwrap();
        ix.apply(class("nginx", "k8s.io/ingress-nginx", false))
            .unwrap();
        ix.apply(with_class("a", class_name, legacy)).unwrap();
        let t = ix.translate();
        assert_eq!(t.ingresses.len(), usize::from(ours), "case {i}");
        assert_eq!(t.model.routes.len(), usize::from(ours), "case {i}");
    }
}

#[test]
fn another_class_named_for_our_controller_counts() {
    let mut ix = index();
    ix.apply(class("internal", CONTROLLER_NAME, false)).unwrap();
    ix.apply(with_class("a", Some("internal"), None)).unwrap();
    assert_eq!(ix.translate().ingresses.len(), 1);
}

/// Two releases on one cluster (docs/operations.md): each names its own controller
/// (`--ingress-controller-name`) and serves only the classes that name it, the legacy
/// annotation by its own class name, the default class only if it is its own.
#[test]
fn two_releases_serve_only_their_own_classes() {
    const EXTERNAL: &str = "portcullis.dev/ingress-controller-external";
    let release = |controller: &str, class_name: &str| {
        Index::new(Settings {
            controller_name: controller.to_string(),
            class_name: class_name.to_string(),
            ..Settings::default()
        })
    };
    let mut internal = release(CONTROLLER_NAME, "portcullis");
    let mut external = release(EXTERNAL, "portcullis-external");
    for ix in [&mut internal, &mut external] {
        ix.apply(class("portcullis", CONTROLLER_NAME, false))
            .unwrap();
        ix.apply(class("portcullis-external", EXTERNAL, true))
            .unwrap();
        ix.apply(with_class("in", Some("portcullis"), None))
            .unwrap();
        ix.apply(with_class("out", Some("portcullis-external"), None))
            .unwrap();
        ix.apply(with_class("legacy-in", None, Some("portcullis")))
            .unwrap();
        ix.apply(with_class("legacy-out", None, Some("portcullis-external")))
            .unwrap();
        ix.apply(with_class("unnamed", None, None)).unwrap();
    }
    let served = |ix: &Index| {
        let mut names: Vec<String> = ix
            .translate()
            .ingresses
            .iter()
            .map(|r| r.key.name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(served(&internal), ["in", "legacy-in"]);
    // The default class is the external release's: Ingresses naming no class are its.
    assert_eq!(served(&external), ["legacy-out", "out", "unnamed"]);
}

#[test]
fn default_class_of_another_controller_does_not_claim() {
    let mut ix = index();
    ix.apply(class("nginx", "k8s.io/ingress-nginx", true))
        .unwrap();
    ix.apply(with_class("a", None, None)).unwrap();
    assert!(ix.translate().ingresses.is_empty());
}

#[test]
fn other_classes_are_untouched_even_when_broken() {
    // An unknown annotation would reject one of ours; another class' Ingress gets no
    // routes, no report (so no status or events), whatever it says.
    let mut ix = index();
    let mut ing = with_class("theirs", Some("nginx"), None);
    ing.metadata.annotations = Some([("portcullis.dev/bogus".to_string(), "x".to_string())].into());
    ix.apply(ing).unwrap();
    let t = ix.translate();
    assert!(t.ingresses.is_empty());
    assert!(t.model.routes.is_empty());
    assert!(t.model.default_backend.is_none());
}

#[test]
fn class_arriving_later_claims_the_ingress() {
    let mut ix = Index::new(Settings::default());
    ix.apply(with_class("a", Some("portcullis"), None)).unwrap();
    assert!(ix.translate().ingresses.is_empty());
    ix.apply(class("portcullis", CONTROLLER_NAME, false))
        .unwrap();
    assert_eq!(ix.translate().ingresses.len(), 1);
    ix.delete::<IngressClass>("", "portcullis");
    assert!(ix.translate().ingresses.is_empty());
}
