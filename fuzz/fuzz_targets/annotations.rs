//! Arbitrary Ingress annotations. Input, YAML-like: a line `key: value` starts an
//! annotation; following lines that start with a space or a tab continue its value
//! (joined with `\n`; a value of `|` alone starts empty), so multi-line policies fit.
//!
//! Asserts: parsing never panics; every error names an annotation that was given, under
//! one of the two prefixes, and displays with it; a policy that parses evaluates.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use portcullis::api::kube::annotations::{POMERIUM_PREFIX, PREFIX, parse};
use portcullis::api::policy::{Input, Request};

fn annotations(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = &mut current {
                if !value.is_empty() {
                    value.push('\n');
                }
                value.push_str(line);
            }
            continue;
        }
        if let Some((k, v)) = current.take() {
            out.insert(k, v);
        }
        // Annotation keys hold no `:`; values may (`https://…`).
        let (key, value) = line.split_once(':').unwrap_or((line, ""));
        let value = match value.trim() {
            "|" => "",
            _ => value.trim_start(),
        };
        current = Some((key.to_string(), value.to_string()));
    }
    if let Some((k, v)) = current {
        out.insert(k, v);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let given = annotations(text);
    let parsed = parse(&given);
    for e in &parsed.errors {
        assert!(
            given.contains_key(&e.annotation),
            "error for an annotation not given: {e:?}\n{given:?}"
        );
        assert!(
            e.annotation.starts_with(PREFIX) || e.annotation.starts_with(POMERIUM_PREFIX),
            "error for a foreign annotation: {e:?}"
        );
        assert!(e.to_string().contains(&e.annotation), "{e}");
    }
    if let Some(policy) = &parsed.values.policy {
        let _ = policy.evaluate(&Input {
            identity: None,
            request: Request {
                method: "GET",
                path: "/",
                host: "app.example.com",
                source_ip: None,
                cors_preflight: false,
            },
            now: jiff::Timestamp::UNIX_EPOCH,
        });
    }
});
