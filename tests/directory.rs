//! Directory sync against the Okta Management API emulator (`e2e/okta-api`): paging,
//! rate limits, membership and status changes picked up by incremental syncs, outages,
//! a rejected token, and the call counts for a 10,000-user directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::okta_api::{Emulator, TOKEN};
use portcullis::api::config::{DirectoryProvider, DirectorySettings, Secret};
use portcullis::api::directory::{
    Client, Directory, Options, PageSizes, Snapshot, Status, UserStatus, Verdict, sync,
};
use portcullis::api::policy::Identity;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

// === the emulator ===

/// What these tests add to the shared emulator harness.
trait EmulatorExt {
    fn settings(&self, token: &str) -> DirectorySettings;
    fn start_directory(&self, options: Options) -> (Arc<Directory>, Registry);
}

impl EmulatorExt for Emulator {
    fn settings(&self, token: &str) -> DirectorySettings {
        DirectorySettings {
            provider: DirectoryProvider::Okta,
            url: self.url.parse().unwrap(),
            api_token: Secret::new(token.to_string()),
            refresh_interval: Duration::from_secs(3600),
        }
    }

    fn start_directory(&self, options: Options) -> (Arc<Directory>, Registry) {
        let mut registry = Registry::with_prefix("portcullis");
        let dir = Directory::start_with(&self.settings(TOKEN), options, &mut registry).unwrap();
        (dir, registry)
    }
}

/// Quick loop timing for tests: incremental syncs every 200 ms, fast retries. The
/// request timeout leaves a loaded machine room (a retried call would change the
/// counts tests assert); the outage test shortens it for its hung API.
fn fast(settings: &DirectorySettings) -> Options {
    Options {
        incremental_interval: Duration::from_millis(200),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
        request_timeout: Duration::from_secs(10),
        ..Options::new(settings)
    }
}

async fn wait_for(dir: &Directory, what: &str, cond: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = dir.status();
        if cond(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ready(dir: &Directory) -> Arc<Snapshot> {
    wait_for(dir, "the first full sync", |s| s.ready).await;
    dir.snapshot().unwrap()
}

/// Waits for two more incremental syncs: the second one started after any change made
/// before this call.
async fn next_sync(dir: &Directory) -> Arc<Snapshot> {
    let n = dir.status().incremental_syncs;
    wait_for(dir, "two incremental syncs", |s| {
        s.incremental_syncs >= n + 2
    })
    .await;
    dir.snapshot().unwrap()
}

fn groups_of(snapshot: &Snapshot, sub: &str) -> Vec<String> {
    let mut g: Vec<String> = snapshot
        .lookup(sub, "")
        .unwrap_or_else(|| panic!("{sub} is in the directory"))
        .groups()
        .map(|(_, name)| name.to_string())
        .collect();
    g.sort();
    g
}

fn small_directory() -> Value {
    json!({
        "users": [
            {"id": "00ualice000000000001", "profile": {"login": "alice@example.com"}},
            {"id": "00ubob00000000000002", "profile": {"login": "bob@example.com"}},
            {"id": "00ucarol000000000003", "profile": {"login": "carol@example.com", "email": "Carol@Example.com"}},
        ],
        "groups": [
            {"id": "00geveryone000000000", "type": "BUILT_IN", "profile": {"name": "Everyone"},
             "members": ["alice@example.com", "bob@example.com", "carol@example.com"]},
            {"id": "00gadmins00000000000", "profile": {"name": "admins"},
             "members": ["alice@example.com", "bob@example.com"]},
        ],
    })
}

fn identity(user: &str, email: &str) -> Identity {
    Identity {
        user: user.into(),
        email: email.into(),
        groups: vec!["claim-group".into()],
        ..Identity::default()
    }
}

fn ms(iso: &str) -> i64 {
    iso.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_reads_every_user_once() {
    let emu = Emulator::start(&["--generate", "users=450,groups=4", "--rate-limit", "off"]);
    let options = Options {
        pages: PageSizes {
            users: 200,
            groups: 2,
            members: 200,
        },
        ..fast(&emu.settings(TOKEN))
    };
    let (dir, registry) = emu.start_directory(options);
    let snapshot = ready(&dir).await;

    let data = emu.get("/__test/data").await;
    let users = data["users"].as_array().unwrap();
    assert_eq!(users.len(), 450);
    assert_eq!(snapshot.user_count(), 450, "deprovisioned users included");
    for u in users {
        let id = u["id"].as_str().unwrap();
        let view = snapshot
            .lookup(id, "")
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(view.login(), u["profile"]["login"].as_str().unwrap());
        assert_eq!(view.status().as_str(), u["status"].as_str().unwrap());
    }
    let health = emu.get("/__test/health").await;
    assert_eq!(snapshot.group_count(), 4);
    assert_eq!(
        snapshot.membership_count() as u64,
        health["memberships"].as_u64().unwrap()
    );

    // The full sync alone (incremental ones may have run since): 450 users at 200 a
    // page = 3 calls, plus 1 for the DEPROVISIONED users.
    let requests = emu.get("/__test/requests").await;
    let users_pages = requests["requests"]
        .as_array()
        .or(requests.as_array())
        .unwrap()
        .iter()
        .filter(|r| {
            let url = r["url"].as_str().unwrap();
            url.starts_with("/api/v1/users?") && !url.contains("filter=")
        })
        .count();
    assert_eq!(users_pages, 3);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for name in [
        "portcullis_directory_last_success_timestamp_seconds ",
        "portcullis_directory_users 450",
        "portcullis_directory_groups 4",
        "portcullis_directory_sync_duration_seconds_count{kind=\"full\"} 1",
        "portcullis_directory_api_calls_total{endpoint=\"/api/v1/groups/{id}/users\"}",
        "portcullis_directory_syncs_total{kind=\"full\",result=\"ok\"} 1",
    ] {
        assert!(text.contains(name), "{name} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_calls_wait_for_the_reset() {
    let emu = Emulator::start(&["--generate", "users=50,groups=5"]);
    emu.control(
        "POST",
        "/__test/force-429",
        json!({"count": 2, "bucket": "members", "resetSeconds": 1}),
    )
    .await;
    let (dir, _registry) = emu.start_directory(fast(&emu.settings(TOKEN)));
    ready(&dir).await;
    let status = dir.status();
    assert_eq!(status.rate_limited, 2, "{status:?}");
    assert_eq!(status.full_syncs, 1);
    let stats = emu.get("/__test/stats").await;
    assert_eq!(stats["rateLimited"], 2, "{stats}");

    // Each 429 is followed, on its bucket, by a call no earlier than its reset.
    let requests = emu.get("/__test/requests").await;
    let log: Vec<&Value> = requests["requests"]
        .as_array()
        .or(requests.as_array())
        .unwrap()
        .iter()
        .filter(|r| r["url"].as_str().unwrap().starts_with("/api/v1/groups/"))
        .collect();
    let mut checked = 0;
    for (i, r) in log.iter().enumerate() {
        if r["status"] == 429 {
            let at = ms(r["t"].as_str().unwrap());
            let reset_ms = ((at + 1000 + 999) / 1000) * 1000;
            let next = log[i + 1];
            assert!(
                ms(next["t"].as_str().unwrap()) >= reset_ms,
                "{r} then {next}: earlier than the reset"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_budget_waits_instead_of_drawing_429s() {
    let emu = Emulator::start(&["--generate", "users=450,groups=3"]);
    // One user-list call per 1-second window; a full sync needs four, so it must wait
    // for at least two window resets.
    emu.control(
        "POST",
        "/__test/rate-limits",
        json!({"users": 1, "windowSeconds": 1}),
    )
    .await;
    let started = Instant::now();
    let (dir, _registry) = emu.start_directory(fast(&emu.settings(TOKEN)));
    let snapshot = ready(&dir).await;
    assert_eq!(snapshot.user_count(), 450);
    assert_eq!(dir.status().rate_limited, 0);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let stats = emu.get("/__test/stats").await;
    assert_eq!(stats["rateLimited"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_from_a_group_loses_it_at_the_next_sync() {
    let emu = Emulator::start(&["--rate-limit", "off"]);
    emu.control("PUT", "/__test/data", small_directory()).await;
    let (dir, _registry) = emu.start_directory(fast(&emu.settings(TOKEN)));
    let before = ready(&dir).await;
    let alice = "00ualice000000000001";
    assert_eq!(groups_of(&before, alice), ["Everyone", "admins"]);
    let mut id = identity(alice, "alice@example.com");
    assert_eq!(dir.apply(&mut id), Verdict::Active);
    assert!(id.groups.contains(&"admins".to_string()));
    assert!(id.groups.contains(&"00gadmins00000000000".to_string()));
    assert!(!id.groups.contains(&"claim-group".to_string()));

    emu.control(
        "DELETE",
        "/__test/groups/admins/users/alice@example.com",
        json!({}),
    )
    .await;
    let after = next_sync(&dir).await;
    assert_eq!(groups_of(&after, alice), ["Everyone"]);
    assert_eq!(
        groups_of(&after, "00ubob00000000000002"),
        ["Everyone", "admins"]
    );
    let mut id = identity(alice, "alice@example.com");
    assert_eq!(dir.apply(&mut id), Verdict::Active);
    assert_eq!(id.groups, ["Everyone", "00geveryone000000000"]);
    // Patched, not rebuilt: still on the first full sync.
    assert_eq!(dir.status().full_syncs, 1);

    // Added back, and a new group: seen too.
    emu.control(
        "PUT",
        "/__test/groups/admins/users/alice@example.com",
        json!({}),
    )
    .await;
    emu.control(
        "POST",
        "/__test/groups",
        json!({"profile": {"name": "oncall"}, "members": ["carol@example.com"]}),
    )
    .await;
    let later = next_sync(&dir).await;
    assert_eq!(groups_of(&later, alice), ["Everyone", "admins"]);
    // Looked up by email (an identity provider whose `sub` is not the Okta id).
    let carol = later.lookup("not-an-okta-id", "carol@example.com").unwrap();
    let mut names: Vec<&str> = carol.groups().map(|(_, n)| n).collect();
    names.sort();
    assert_eq!(names, ["Everyone", "oncall"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_user_is_not_active_after_the_next_sync() {
    let emu = Emulator::start(&["--rate-limit", "off"]);
    emu.control("PUT", "/__test/data", small_directory()).await;
    let (dir, _registry) = emu.start_directory(fast(&emu.settings(TOKEN)));
    let before = ready(&dir).await;
    let bob = "00ubob00000000000002";
    assert!(before.lookup(bob, "").unwrap().is_active());

    emu.control(
        "POST",
        "/__test/users/bob@example.com/deactivate",
        json!({}),
    )
    .await;
    emu.control("POST", "/__test/users/carol@example.com/suspend", json!({}))
        .await;
    let after = next_sync(&dir).await;
    let view = after.lookup(bob, "").unwrap();
    assert_eq!(*view.status(), UserStatus::Deprovisioned);
    assert!(!view.is_active());
    let mut id = identity(bob, "bob@example.com");
    let verdict = dir.apply(&mut id);
    assert_eq!(verdict, Verdict::NotActive(UserStatus::Deprovisioned));
    assert!(
        verdict
            .deny_reason()
            .unwrap()
            .starts_with("your account is not active in the directory")
    );
    assert_eq!(
        id.groups,
        ["claim-group"],
        "a denied identity is left as it was"
    );
    assert_eq!(
        dir.apply(&mut identity("00ucarol000000000003", "")),
        Verdict::NotActive(UserStatus::Suspended)
    );
    // Someone the directory has never heard of.
    assert_eq!(
        dir.apply(&mut identity("00unobody", "nobody@example.com")),
        Verdict::NotFound
    );
    // And back.
    emu.control("POST", "/__test/users/bob@example.com/activate", json!({}))
        .await;
    next_sync(&dir).await;
    assert_eq!(dir.apply(&mut identity(bob, "")), Verdict::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_keeps_the_snapshot_and_recovers() {
    let emu = Emulator::start(&["--rate-limit", "off"]);
    emu.control("PUT", "/__test/data", small_directory()).await;
    let (dir, _registry) = emu.start_directory(Options {
        request_timeout: Duration::from_secs(1),
        ..fast(&emu.settings(TOKEN))
    });
    ready(&dir).await;
    let alice = "00ualice000000000001";

    for mode in ["reset", "503", "hang"] {
        emu.control("POST", "/__test/down", json!({"mode": mode}))
            .await;
        let n = dir.status().consecutive_failures;
        let failing = wait_for(&dir, "a failed sync", |s| s.consecutive_failures > n).await;
        let kept = dir.snapshot().unwrap();
        // A change made while the API is down arrives once it is back.
        emu.control(
            "DELETE",
            "/__test/groups/admins/users/alice@example.com",
            json!({}),
        )
        .await;
        wait_for(&dir, "another failed sync", |s| {
            s.consecutive_failures > failing.consecutive_failures
        })
        .await;
        assert!(
            Arc::ptr_eq(&kept, &dir.snapshot().unwrap()),
            "{mode}: snapshot kept"
        );
        assert_eq!(groups_of(&kept, alice), ["Everyone", "admins"]);
        assert_eq!(dir.apply(&mut identity(alice, "")), Verdict::Active);
        let error = dir.status().last_error.unwrap();
        assert!(error.starts_with("Okta API"), "{mode}: {error}");
        assert!(!error.contains(TOKEN));

        emu.control("POST", "/__test/up", json!({})).await;
        wait_for(&dir, "recovery", |s| s.consecutive_failures == 0).await;
        let after = next_sync(&dir).await;
        assert_eq!(groups_of(&after, alice), ["Everyone"], "{mode}");
        emu.control(
            "PUT",
            "/__test/groups/admins/users/alice@example.com",
            json!({}),
        )
        .await;
        next_sync(&dir).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_reported_as_such_and_not_hammered() {
    let emu = Emulator::start(&["--rate-limit", "off"]);
    emu.control("PUT", "/__test/data", small_directory()).await;
    let wrong = "00wrong-token-zyxwvu";
    let settings = emu.settings(wrong);
    let options = Options {
        retry_max: Duration::from_secs(30),
        ..fast(&settings)
    };
    let mut registry = Registry::default();
    let dir = Directory::start_with(&settings, options, &mut registry).unwrap();
    let status = wait_for(&dir, "the failure", |s| s.last_error.is_some()).await;
    let error = status.last_error.unwrap();
    assert!(
        error.starts_with("Okta rejected the API token: 401"),
        "{error}"
    );
    assert!(!error.contains(wrong));
    assert!(!format!("{dir:?}").contains(wrong));
    assert!(
        !serde_json::to_string(&dir.status())
            .unwrap()
            .contains(wrong)
    );
    assert!(dir.snapshot().is_none());
    assert!(!dir.is_ready());
    assert_eq!(
        dir.apply(&mut identity("00ualice000000000001", "")),
        Verdict::NotSynced
    );
    assert!(!dir.status().ready);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = emu.get("/__test/stats").await;
    assert_eq!(stats["unauthorized"], 1, "no retry loop: {stats}");
}

/// The figures for the note: API calls of a full and an incremental sync of a
/// directory of 10,000 users and 1,000 groups. `cargo test --test directory -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints the call counts"]
async fn call_counts_for_10000_users_and_1000_groups() {
    let emu = Emulator::start(&[
        "--generate",
        "users=10000,groups=1000",
        "--rate-limit",
        "off",
    ]);
    let settings = emu.settings(TOKEN);
    for pages in [
        PageSizes::default(),
        PageSizes {
            users: 200,
            groups: 200,
            members: 200,
        },
    ] {
        emu.control("POST", "/__test/stats/reset", json!({})).await;
        let client = Client::new(
            &settings.url,
            &settings.api_token,
            pages,
            Duration::from_secs(30),
            None,
        )
        .unwrap();
        let started = Instant::now();
        let full = sync::full(&client).await.unwrap();
        let full_time = started.elapsed();
        let full_stats = emu.get("/__test/stats").await;
        let counts = emu.get("/__test/health").await;
        assert_eq!(
            full.snapshot.user_count() as u64,
            counts["users"].as_u64().unwrap()
        );
        assert_eq!(
            full.snapshot.membership_count() as u64,
            counts["memberships"].as_u64().unwrap()
        );

        // An incremental sync with no change, then one with a few.
        emu.control("POST", "/__test/stats/reset", json!({})).await;
        let quiet = sync::incremental(&client, &full.snapshot, full.marks, sync::DEFAULT_OVERLAP)
            .await
            .unwrap();
        let quiet_stats = emu.get("/__test/stats").await;

        let data = emu.get("/__test/data").await;
        let groups = data["groups"].as_array().unwrap();
        let users = data["users"].as_array().unwrap();
        // Three membership removals (three groups), two deactivations, one rename.
        for g in groups.iter().filter(|g| g["type"] != "BUILT_IN").take(3) {
            let group = g["id"].as_str().unwrap();
            let member = &g["members"][0];
            emu.control(
                "DELETE",
                &format!("/__test/groups/{group}/users/{}", member.as_str().unwrap()),
                json!({}),
            )
            .await;
        }
        for u in users.iter().filter(|u| u["status"] == "ACTIVE").take(2) {
            let id = u["id"].as_str().unwrap();
            emu.control("POST", &format!("/__test/users/{id}/deactivate"), json!({}))
                .await;
        }
        let renamed = groups[5]["id"].as_str().unwrap();
        emu.control(
            "PATCH",
            &format!("/__test/groups/{renamed}"),
            json!({"profile": {"name": "renamed"}}),
        )
        .await;
        emu.control("POST", "/__test/stats/reset", json!({})).await;
        let started = Instant::now();
        let changed =
            sync::incremental(&client, &quiet.snapshot, quiet.marks, sync::DEFAULT_OVERLAP)
                .await
                .unwrap();
        let incremental_time = started.elapsed();
        let changed_stats = emu.get("/__test/stats").await;
        assert_eq!(changed.snapshot.group_name(renamed), Some("renamed"));

        // Restore for the next round of page sizes.
        emu.control(
            "POST",
            "/__test/generate",
            json!({"users": 10000, "groups": 1000}),
        )
        .await;
        let calls = |s: &Value, ep: &str| s["endpoints"][ep]["calls"].as_u64().unwrap_or(0);
        println!(
            "page sizes {pages:?}:\n  full sync: {} calls (users {}, groups {}, members {}) in {:.2?}\n  \
             incremental, no changes: {} calls\n  \
             incremental, 3 membership removals + 2 deactivations + 1 rename: {} calls \
             (users {}, groups {}, members {}) in {:.2?}",
            full_stats["total"],
            calls(&full_stats, "/api/v1/users"),
            calls(&full_stats, "/api/v1/groups"),
            calls(&full_stats, "/api/v1/groups/{id}/users"),
            full_time,
            quiet_stats["total"],
            changed_stats["total"],
            calls(&changed_stats, "/api/v1/users"),
            calls(&changed_stats, "/api/v1/groups"),
            calls(&changed_stats, "/api/v1/groups/{id}/users"),
            incremental_time,
        );
    }
}
