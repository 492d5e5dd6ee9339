//! The ingress controller against a real kube-apiserver and etcd (e2e/cluster): Ingresses
//! and IdentityPolicies become routes within a second, policy edits change decisions
//! under load, deletions remove routes, mistakes fail closed with Events and conditions,
//! TLS comes from Secrets, status shows the published address, and exactly one of two
//! replicas writes status until it stops.
//!
//! The cluster and replica fixtures are in tests/common/cluster.rs.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, ListParams, PostParams};
use portcullis::api::kube::crd::IdentityPolicy;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_and_policy_lifecycle() {
    let cluster = Cluster::up("lifecycle").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let replica = Replica::start(&cluster, "replica-a", &pki).await;

    // Apply: a policy that lets anyone GET, and an Ingress that uses it.
    cluster
        .policy(
            "get-only",
            json!([{"allow": {"and": [{"http_method": {"is": "GET"}}]}}]),
        )
        .await;
    let applied = Instant::now();
    cluster
        .ingress(
            "app",
            "app.example.test",
            upstream.port(),
            json!({"portcullis.dev/identity-policy": "get-only"}),
            None,
        )
        .await;
    within(
        Duration::from_secs(15),
        "the new route answers 200",
        || async { status_of(&replica, &tls, "app.example.test", "GET").await == Some(200) },
    )
    .await;
    let served = applied.elapsed();
    eprintln!("FIGURE apply-to-serving: {} ms", served.as_millis());
    assert_eq!(
        status_of(&replica, &tls, "app.example.test", "POST").await,
        Some(403)
    );

    // Status: the published address, an Accepted Event, the policy's conditions.
    let ingresses = cluster.api::<Ingress>(Some(NS));
    within(
        Duration::from_secs(15),
        "Ingress status shows the address",
        || async {
            ingress_address(&ingresses.get("app").await.unwrap()).as_deref() == Some(PUBLISHED)
        },
    )
    .await;
    within(Duration::from_secs(15), "an Accepted Event", || async {
        cluster
            .events_for("Ingress", "app")
            .await
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "Accepted")
    })
    .await;
    let policies = cluster.api::<IdentityPolicy>(Some(NS));
    within(
        Duration::from_secs(15),
        "the policy is Accepted and attached",
        || async {
            let p = policies.get("get-only").await.unwrap();
            let status = serde_json::to_value(&p.status).unwrap();
            status["attachedIngresses"] == 1
                && status["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Accepted" && c["status"] == "True")
                })
        },
    )
    .await;

    // Edit the policy under steady load: decisions change, nothing fails.
    let load = Load::start(4, replica.https, "app.example.test", &tls).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut p = policies.get("get-only").await.unwrap();
    p.spec.rules =
        serde_json::from_value(json!([{"allow": {"and": [{"http_method": {"is": "POST"}}]}}]))
            .unwrap();
    policies
        .replace("get-only", &PostParams::default(), &p)
        .await
        .unwrap();
    within(
        Duration::from_secs(15),
        "GET is denied after the edit",
        || async { status_of(&replica, &tls, "app.example.test", "GET").await == Some(403) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, denied, failed) = load.stop().await;
    eprintln!("under load: {ok} allowed before the edit, {denied} denied after, {failed} failed");
    assert_eq!(failed, 0, "requests failed during the policy edit");
    assert!(ok > 0 && denied > 0);
    assert_eq!(
        status_of(&replica, &tls, "app.example.test", "POST").await,
        Some(200)
    );

    // Delete: the route goes away.
    ingresses
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    within(
        Duration::from_secs(15),
        "the deleted route answers 404",
        || async { status_of(&replica, &tls, "app.example.test", "GET").await == Some(404) },
    )
    .await;
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_fail_closed_and_say_why() {
    let cluster = Cluster::up("mistakes").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let replica = Replica::start(&cluster, "replica-a", &pki).await;
    let public = json!({"portcullis.dev/allow-public-unauthenticated-access": "true"});
    let port = upstream.port();

    // A typo in an annotation rejects the Ingress instead of opening it.
    cluster
        .ingress(
            "typo",
            "typo.example.test",
            port,
            json!({"portcullis.dev/allow-public-unauthenticated-access": "true",
                   "portcullis.dev/alowed-users": "bob@example.com"}),
            None,
        )
        .await;
    // An IdentityPolicy that does not compile denies the Ingresses it is attached to.
    cluster
        .policy(
            "broken",
            json!([{"allow": {"and": [{"grups": {"has": "admin"}}]}}]),
        )
        .await;
    cluster
        .ingress(
            "uses-broken",
            "broken.example.test",
            port,
            json!({"portcullis.dev/identity-policy": "broken"}),
            None,
        )
        .await;
    // A reference to an IdentityPolicy that does not exist.
    cluster
        .ingress(
            "missing-policy",
            "missing.example.test",
            port,
            json!({"portcullis.dev/identity-policy": "nope"}),
            None,
        )
        .await;
    // A missing TLS Secret is reported; the route is still served (default certificate).
    cluster
        .ingress(
            "no-secret",
            "nosecret.example.test",
            port,
            public.clone(),
            Some("absent-tls"),
        )
        .await;
    // A present TLS Secret is served by SNI.
    let site = issue(&pki, &["tls.example.test"]);
    cluster
        .create::<Secret>(
            Some(NS),
            json!({"metadata": {"name": "site-tls"}, "type": "kubernetes.io/tls",
                   "stringData": {"tls.crt": String::from_utf8(site.cert_pem.clone()).unwrap(),
                                  "tls.key": String::from_utf8(site.key_pem.clone()).unwrap()}}),
        )
        .await;
    cluster
        .ingress(
            "with-secret",
            "tls.example.test",
            port,
            public.clone(),
            Some("site-tls"),
        )
        .await;

    within(
        Duration::from_secs(15),
        "every host has its route",
        || async { replica.route_count().await >= 5 },
    )
    .await;
    for host in [
        "typo.example.test",
        "broken.example.test",
        "missing.example.test",
    ] {
        assert_eq!(
            status_of(&replica, &tls, host, "GET").await,
            Some(403),
            "{host}"
        );
    }
    assert_eq!(
        status_of(&replica, &tls, "nosecret.example.test", "GET").await,
        Some(200)
    );
    // The Secret's certificate (signed by the same test CA, for tls.example.test only).
    within(
        Duration::from_secs(15),
        "the Secret's certificate is served",
        || async { status_of(&replica, &tls, "tls.example.test", "GET").await == Some(200) },
    )
    .await;
    let served = tls_connect(replica.https, "tls.example.test", tls.clone()).await;
    let leaf = served.get_ref().1.peer_certificates().unwrap()[0].clone();
    let names: Vec<String> = webpki::EndEntityCert::try_from(&leaf)
        .unwrap()
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    assert_eq!(names, ["tls.example.test"]);

    let expect_event = |object: &'static str, kind: &'static str, reason: &'static str| {
        let cluster = &cluster;
        async move {
            within(
                Duration::from_secs(15),
                &format!("{kind} {object}: {reason}"),
                || async {
                    cluster
                        .events_for(kind, object)
                        .await
                        .iter()
                        .any(|(t, r, _)| t == "Warning" && r == reason)
                },
            )
            .await;
        }
    };
    expect_event("typo", "Ingress", "UnknownAnnotation").await;
    expect_event("missing-policy", "Ingress", "IdentityPolicyNotFound").await;
    expect_event("no-secret", "Ingress", "TLSSecretNotFound").await;
    expect_event("broken", "IdentityPolicy", "InvalidRules").await;
    let policies = cluster.api::<IdentityPolicy>(Some(NS));
    let p = policies.get("broken").await.unwrap();
    let status = serde_json::to_value(&p.status).unwrap();
    let accepted = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Accepted")
        .unwrap()
        .clone();
    assert_eq!(accepted["status"], "False", "{status}");
    assert_eq!(accepted["reason"], "InvalidRules");
    assert!(
        accepted["message"].as_str().unwrap().contains("grups"),
        "{accepted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_status_and_another_takes_over() {
    let cluster = Cluster::up("leader").await;
    let pki = pki(&["*.example.test"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let public = json!({"portcullis.dev/allow-public-unauthenticated-access": "true"});
    let mut a = Replica::start(&cluster, "replica-a", &pki).await;
    let mut b = Replica::start(&cluster, "replica-b", &pki).await;
    let holder = || cluster.lease_holder();
    within(
        Duration::from_secs(15),
        "a replica holds the Lease",
        || async { !holder().await.is_empty() },
    )
    .await;
    let leader = holder().await;
    cluster
        .ingress(
            "first",
            "first.example.test",
            upstream.port(),
            public.clone(),
            None,
        )
        .await;
    let ingresses = cluster.api::<Ingress>(Some(NS));
    within(
        Duration::from_secs(15),
        "status of `first` is written",
        || async { ingress_address(&ingresses.get("first").await.unwrap()).is_some() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let managers = status_managers(&ingresses.get("first").await.unwrap());
    assert_eq!(
        managers,
        [format!("portcullis/{leader}")],
        "only the leader writes status"
    );

    // The leader stops; the other takes the Lease and writes status from then on.
    let (stopped, survivor) = if leader == a.identity {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    stopped.stop();
    let took_over = within(
        Duration::from_secs(20),
        "the other replica takes over",
        || async { holder().await == survivor.identity },
    )
    .await;
    eprintln!("FIGURE leader takeover: {} ms", took_over.as_millis());
    cluster
        .ingress(
            "second",
            "second.example.test",
            upstream.port(),
            public,
            None,
        )
        .await;
    within(
        Duration::from_secs(15),
        "status of `second` is written",
        || async { ingress_address(&ingresses.get("second").await.unwrap()).is_some() },
    )
    .await;
    let managers = status_managers(&ingresses.get("second").await.unwrap());
    assert_eq!(managers, [format!("portcullis/{}", survivor.identity)]);
    // The survivor serves traffic throughout.
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    assert_eq!(
        status_of(survivor, &tls, "second.example.test", "GET").await,
        Some(200)
    );
}

/// The figure the issue asks for: a cold start converging 1,000 Ingresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_converges_a_thousand_ingresses() {
    const N: usize = 1000;
    let cluster = Cluster::up("thousand").await;
    let pki = pki(&["*.example.test"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    let created = Instant::now();
    let port = upstream.port();
    let cluster = Arc::new(cluster);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..N).step_by(8) {
                cluster
                    .ingress(
                        &format!("app-{i}"),
                        &format!("app-{i}.example.test"),
                        port,
                        json!({"portcullis.dev/allow-public-unauthenticated-access": "true"}),
                        None,
                    )
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "created {N} Ingresses in {} ms",
        created.elapsed().as_millis()
    );
    let started = Instant::now();
    let replica = Replica::start(&cluster, "replica-a", &pki).await;
    let ready = started.elapsed();
    let converged = within(
        Duration::from_secs(60),
        "every Ingress is routed",
        || async { replica.route_count().await >= N },
    )
    .await
        + ready;
    eprintln!(
        "FIGURE cold start with {N} Ingresses: ready in {} ms, all routes in {} ms",
        ready.as_millis(),
        converged.as_millis()
    );
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    assert_eq!(
        status_of(&replica, &tls, "app-999.example.test", "GET").await,
        Some(200)
    );
    // Status is written for all of them by the leader.
    let ingresses = cluster.api::<Ingress>(Some(NS));
    let written = within(
        Duration::from_secs(120),
        "status for every Ingress",
        || async {
            let list = ingresses.list(&ListParams::default()).await.unwrap();
            list.items
                .iter()
                .filter(|i| ingress_address(i).is_some())
                .count()
                >= N
        },
    )
    .await;
    eprintln!(
        "FIGURE status written for {N} Ingresses {} ms after ready",
        written.as_millis()
    );
}

/// With the API server gone, the last good table keeps serving, and the outage is
/// logged once per watch, not once per retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_keeps_the_last_good_table() {
    let cluster = Cluster::up("outage").await;
    let pki = pki(&["*.example.test"]);
    let tls = client_tls(&pki.ca_der, &[b"http/1.1"]);
    let upstream = echo_upstream("echo").await;
    cluster.echo_service(upstream.port()).await;
    cluster
        .ingress(
            "app",
            "app.example.test",
            upstream.port(),
            json!({"portcullis.dev/allow-public-unauthenticated-access": "true"}),
            None,
        )
        .await;
    let replica = Replica::start(&cluster, "replica-a", &pki).await;
    within(Duration::from_secs(15), "the route answers", || async {
        status_of(&replica, &tls, "app.example.test", "GET").await == Some(200)
    })
    .await;

    let pid = std::fs::read_to_string(cluster.dir.join("kube-apiserver.pid")).unwrap();
    let killed = Command::new("kill")
        .arg("-KILL")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(killed.success());
    // Serving continues for a while with the API server gone (watches retry meanwhile).
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            status_of(&replica, &tls, "app.example.test", "GET").await,
            Some(200)
        );
    }
    let (ready, _) = replica.admin_get("/readyz").await.unwrap();
    assert_eq!(ready, 200, "still ready: the table is the last good one");
    let log = std::fs::read_to_string(&replica.log).unwrap();
    let outage_lines = log
        .matches("watch failed; serving the last good configuration")
        .count();
    assert!(
        (1..=6).contains(&outage_lines),
        "expected one warning per watched kind, got {outage_lines}:\n{}",
        replica.log_tail()
    );
}
