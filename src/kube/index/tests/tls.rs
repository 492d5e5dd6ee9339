//! TLS Secrets for SNI, and the upstream CA Secret.

use serde_json::json;

use super::*;

fn with_tls(secrets: &[&str]) -> Ingress {
    let tls: Vec<_> = secrets
        .iter()
        .map(|s| json!({"hosts": ["a.example.com"], "secretName": s}))
        .collect();
    let mut ing = ingress("a", "a.example.com", json!({}));
    ing.spec.as_mut().unwrap().tls = from(json!(tls));
    ing
}

#[test]
fn tls_secrets_present_missing_invalid() {
    let mut ix = index();
    ix.apply(tls_secret("apps", "a-tls")).unwrap();
    ix.apply(tls_secret("other", "elsewhere")).unwrap();
    ix.apply::<Secret>(from(json!({
        "metadata": {"name": "opaque", "namespace": "apps"}, "type": "Opaque",
        "data": {"tls.crt": "Q0VSVA==", "tls.key": "S0VZ"}})))
        .unwrap();
    ix.apply::<Secret>(from(json!({
        "metadata": {"name": "half", "namespace": "apps"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Q0VSVA=="}})))
        .unwrap();
    ix.apply(with_tls(&[
        "a-tls",
        "missing",
        "opaque",
        "half",
        "elsewhere",
    ]))
    .unwrap();
    // A second Ingress using the same Secret does not duplicate the pair.
    let mut b = with_tls(&["a-tls"]);
    b.metadata.name = Some("b".into());
    b.spec.as_mut().unwrap().rules.as_mut().unwrap()[0].host = Some("b.example.com".into());
    ix.apply(b).unwrap();

    let t = ix.translate();
    let names: Vec<&str> = t
        .certificates
        .iter()
        .map(|c| c.pair.source_name.as_str())
        .collect();
    assert_eq!(names, ["secret apps/a-tls"]);
    assert_eq!(t.certificates[0].pair.cert_pem, b"CERT");
    assert_eq!(t.certificates[0].pair.key_pem, b"KEY");
    // Both Ingresses list a.example.com, which their namespace owns.
    assert_eq!(t.certificates[0].names, ["a.example.com"]);
    let rep = report(&t, "apps/a");
    assert!(
        rep.accepted,
        "a missing TLS Secret does not reject the routes"
    );
    assert_eq!(
        warnings(rep),
        [
            "NoPolicy",
            "TLSSecretNotFound",
            "TLSSecretInvalid",
            "TLSSecretInvalid",
            "TLSSecretNotFound"
        ]
    );
    assert!(!denies(route(&t, "apps/a/rules[0]/paths[0]")));
    // Debug output names certificates, never their bytes.
    assert!(!format!("{t:?}").contains("KEY\""));
}

#[test]
fn custom_ca_secret() {
    let ann = json!({"portcullis.dev/tls-custom-ca-secret": "upstream-ca"});
    let mut ix = index();
    ix.apply(ingress("a", "a.example.com", ann.clone()))
        .unwrap();
    let t = ix.translate();
    let rep = report(&t, "apps/a");
    assert!(!rep.accepted);
    assert_eq!(warnings(rep), ["CustomCASecretNotFound"]);
    assert!(denies(route(&t, "apps/a/rules[0]/paths[0]")));

    ix.apply::<Secret>(from(json!({
        "metadata": {"name": "upstream-ca", "namespace": "apps"}, "type": "Opaque",
        "data": {"ca.crt": "Q0E="}})))
        .unwrap();
    let t = ix.translate();
    assert!(report(&t, "apps/a").accepted);
    let r = route(&t, "apps/a/rules[0]/paths[0]");
    assert_eq!(r.options.tls.ca_pem.as_deref(), Some(&b"CA"[..]));

    // A Secret of the name without `ca.crt` is not a CA bundle.
    ix.apply(tls_secret("apps", "upstream-ca")).unwrap();
    let t = ix.translate();
    assert_eq!(warnings(report(&t, "apps/a")), ["CustomCASecretInvalid"]);
}
