//! Okta response headers as an attacker-controlled (or broken) server or proxy could
//! send them. Input: one `name: value` header per line (invalid ones dropped).
//!
//! Asserts, for `Link`: parsing never panics; no target holds `>`; the `next` link
//! is one of the parsed targets whose `rel` lists `next`. For `Date`: a parsed date
//! prints and parses back to itself. For `X-Rate-Limit-*`: the values read are the
//! headers' integers; the wait after a call is only set when the budget is used up,
//! and at most the 60 s cap; the wait after a 429 lies within [1 s, 60 s]; jitter
//! is added as given.
#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use portcullis::api::directory::okta::{
    RateInfo, next_link, parse_links, server_date, wait_after_429, wait_before_next,
};

/// `directory::okta`'s `RATE_LIMIT_WAIT_CAP` and `MIN_429_WAIT`.
const CAP: Duration = Duration::from_secs(60);
const MIN_429: Duration = Duration::from_secs(1);
const JITTER: Duration = Duration::from_millis(137);

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    // Link.
    let mut links = Vec::new();
    for value in headers.get_all(header::LINK) {
        if let Ok(text) = value.to_str() {
            links.extend(parse_links(text));
        }
    }
    for (target, _) in &links {
        assert!(!target.contains('>'), "{target:?}");
    }
    if let Some(next) = next_link(&headers) {
        assert!(
            links.iter().any(|(t, rels)| *t == next
                && rels
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))),
            "next {next:?} is not among {links:?}"
        );
    }

    // Date.
    if let Some(date) = server_date(&headers) {
        let printed = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_string(&date)
            .expect("a timestamp prints");
        let mut again = HeaderMap::new();
        again.insert(header::DATE, HeaderValue::from_str(&printed).unwrap());
        assert_eq!(server_date(&again), Some(date), "{printed}");
    }

    // Rate limits.
    let rate = RateInfo::from_headers(&headers);
    let header_int = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    assert_eq!(rate.reset, header_int("x-rate-limit-reset"));
    assert_eq!(
        rate.remaining,
        header_int("x-rate-limit-remaining").and_then(|n| u64::try_from(n).ok())
    );
    let now = match rate.reset {
        // Around the reset, so the interesting side of it is reached.
        Some(r) => Timestamp::from_second(r.saturating_sub(i64::from(data.len() as u8) - 64))
            .unwrap_or(Timestamp::UNIX_EPOCH),
        None => Timestamp::UNIX_EPOCH,
    };
    if let Some(wait) = wait_before_next(&rate, now, JITTER) {
        assert_eq!(rate.remaining, Some(0), "{rate:?}");
        assert!(
            wait >= JITTER && wait <= CAP + JITTER,
            "{wait:?} for {rate:?}"
        );
    }
    let wait = wait_after_429(&rate, now, JITTER);
    assert!(
        wait >= MIN_429 + JITTER && wait <= CAP + JITTER,
        "{wait:?} for {rate:?} at {now}"
    );
});
