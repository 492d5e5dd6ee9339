//! Converging a large cluster must take milliseconds. Prints the time; no assertion on
//! it (CI machines vary), only on the result.

use std::time::Instant;

use serde_json::json;

use super::*;

#[test]
fn a_thousand_ingresses() {
    const N: usize = 1_000;
    let mut ix = index();
    let started = Instant::now();
    for i in 0..N {
        let ns = format!("team-{}", i % 50);
        let name = format!("svc-{i}");
        ix.apply::<Service>(from(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        })))
        .unwrap();
        for s in 0..2 {
            ix.apply::<EndpointSlice>(from(json!({
                "metadata": {"name": format!("{name}-{s}"), "namespace": ns,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": (0..3).map(|e| json!({"addresses": [format!("10.{}.{s}.{e}", i % 250)]}))
                    .collect::<Vec<_>>(),
            })))
            .unwrap();
        }
        ix.apply(tls_secret(&ns, &format!("{name}-tls"))).unwrap();
        ix.apply::<Ingress>(from(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"team": format!("t{}", i % 7)},
                         "annotations": {"portcullis.dev/allowed-groups": "ops, admins",
                                         "portcullis.dev/timeout": "10s"}},
            "spec": {
                "ingressClassName": "portcullis",
                "tls": [{"hosts": [format!("{name}.example.com")], "secretName": format!("{name}-tls")}],
                "rules": [{"host": format!("{name}.example.com"), "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": name, "port": {"name": "http"}}}},
                    {"path": "/api", "pathType": "Exact",
                     "backend": {"service": {"name": name, "port": {"number": 80}}}},
                ]}}],
            },
        })))
        .unwrap();
    }
    for n in 0..50 {
        ix.apply(identity_policy(
            &format!("team-{n}"),
            "team",
            json!({
            "ingressSelector": {"matchLabels": {"team": "t3"}},
            "rules": [{"allow": {"or": [{"groups": {"has": "admin"}}]}}]}),
        ))
        .unwrap();
    }
    let applied = started.elapsed();

    let started = Instant::now();
    let t = ix.translate();
    let translated = started.elapsed();
    eprintln!(
        "{N} Ingresses ({} routes, {} certificates): applied in {applied:?}, translated in {translated:?}",
        t.model.routes.len(),
        t.certificates.len()
    );
    assert_eq!(t.ingresses.len(), N);
    assert_eq!(t.model.routes.len(), 2 * N);
    assert_eq!(t.certificates.len(), N);
    assert!(t.ingresses.iter().all(|r| r.accepted));
    assert!(
        t.model
            .routes
            .iter()
            .all(|r| r.backend.endpoints.len() == 6)
    );
}
