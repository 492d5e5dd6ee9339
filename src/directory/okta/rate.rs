//! Okta's rate budget: the `X-Rate-Limit-*` headers and the waits they imply, before
//! the next call to a bucket and after a 429.

use std::time::Duration;

use http::HeaderMap;
use jiff::Timestamp;

/// The longest a rate-limited call waits before it tries again.
const RATE_LIMIT_WAIT_CAP: Duration = Duration::from_secs(60);
/// The shortest wait after a 429 (when the reset is missing or already past).
const MIN_429_WAIT: Duration = Duration::from_secs(1);
/// Upper bound of the random delay added to rate-limit waits, so that replicas spread out.
const JITTER_MAX_MS: u64 = 250;

pub(super) fn jitter() -> Duration {
    Duration::from_millis(rand::random_range(0..=JITTER_MAX_MS))
}

/// Okta's `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (epoch seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateInfo {
    pub remaining: Option<u64>,
    pub reset: Option<i64>,
}

impl RateInfo {
    pub fn from_headers(headers: &HeaderMap) -> RateInfo {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        RateInfo {
            remaining: num("x-rate-limit-remaining").and_then(|n| u64::try_from(n).ok()),
            reset: num("x-rate-limit-reset"),
        }
    }

    fn until_reset(&self, now: Timestamp) -> Option<Duration> {
        let reset = Timestamp::from_second(self.reset?).ok()?;
        let left = now.duration_until(reset);
        (!left.is_negative() && !left.is_zero()).then(|| left.unsigned_abs())
    }
}

/// After a successful call: how long to hold the next call to the same bucket. Only
/// when the budget is used up (`remaining` 0), until the reset, capped.
pub fn wait_before_next(rate: &RateInfo, now: Timestamp, jitter: Duration) -> Option<Duration> {
    if rate.remaining != Some(0) {
        return None;
    }
    rate.until_reset(now)
        .map(|d| d.min(RATE_LIMIT_WAIT_CAP) + jitter)
}

/// After a 429: until the reset, at least [`MIN_429_WAIT`] (never spin), at most
/// [`RATE_LIMIT_WAIT_CAP`], plus jitter.
pub fn wait_after_429(rate: &RateInfo, now: Timestamp, jitter: Duration) -> Duration {
    let wait = rate.until_reset(now).unwrap_or(MIN_429_WAIT);
    wait.clamp(MIN_429_WAIT, RATE_LIMIT_WAIT_CAP) + jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn rate_limit_waits() {
        let now = Timestamp::from_second(1_000).unwrap();
        let j = Duration::from_millis(100);
        let rate = |remaining: Option<u64>, reset: Option<i64>| RateInfo { remaining, reset };
        // (rate, wait before the next call, wait after a 429)
        let cases = [
            (
                rate(Some(5), Some(1_010)),
                None,
                Duration::from_secs(10) + j,
            ),
            (
                rate(Some(0), Some(1_010)),
                Some(Duration::from_secs(10) + j),
                Duration::from_secs(10) + j,
            ),
            // Reset already past: no wait; a 429 still waits the minimum.
            (rate(Some(0), Some(990)), None, MIN_429_WAIT + j),
            (rate(Some(0), Some(1_000)), None, MIN_429_WAIT + j),
            // Missing headers.
            (rate(None, None), None, MIN_429_WAIT + j),
            (rate(Some(0), None), None, MIN_429_WAIT + j),
            // Far-away reset (clock skew): capped.
            (
                rate(Some(0), Some(100_000)),
                Some(RATE_LIMIT_WAIT_CAP + j),
                RATE_LIMIT_WAIT_CAP + j,
            ),
            // Under the minimum: a 429 waits at least the minimum.
            (
                rate(Some(0), Some(1_001)),
                Some(Duration::from_secs(1) + j),
                MIN_429_WAIT + j,
            ),
        ];
        for (rate, next, after_429) in cases {
            assert_eq!(wait_before_next(&rate, now, j), next, "{rate:?}");
            assert_eq!(wait_after_429(&rate, now, j), after_429, "{rate:?}");
        }
    }

    #[test]
    fn rate_headers_parse() {
        let mut h = HeaderMap::new();
        h.insert("X-Rate-Limit-Remaining", HeaderValue::from_static("0"));
        h.insert(
            "X-Rate-Limit-Reset",
            HeaderValue::from_static(" 1700000000"),
        );
        assert_eq!(
            RateInfo::from_headers(&h),
            RateInfo {
                remaining: Some(0),
                reset: Some(1_700_000_000)
            }
        );
        h.insert("X-Rate-Limit-Remaining", HeaderValue::from_static("-1"));
        h.insert("X-Rate-Limit-Reset", HeaderValue::from_static("soon"));
        assert_eq!(RateInfo::from_headers(&h), RateInfo::default());
    }
}
