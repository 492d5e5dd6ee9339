//! Arbitrary bytes as a policy document: compiling must never panic, and any policy that
//! compiles must evaluate (signed in and anonymous) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::api::policy::{Identity, Input, Policy, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_yaml(text) else {
        return;
    };
    let identity = Identity {
        user: "u-1".into(),
        email: "alice@example.com".into(),
        groups: vec!["admins".into()],
        claims: serde_json::json!({"groups": ["eng"], "org": {"team": "core"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    for id in [Some(&identity), None] {
        let _ = policy.evaluate(&Input {
            identity: id,
            request: Request {
                method: "GET",
                path: "/",
                host: "app.example.com",
                source_ip: Some(std::net::IpAddr::from([10, 0, 0, 1])),
                cors_preflight: false,
            },
            now: jiff::Timestamp::from_second(1_717_583_400).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        });
    }
});
