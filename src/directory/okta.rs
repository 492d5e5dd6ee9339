//! A client for the read side of Okta's Management API: users, groups and group members,
//! with `SSWS` token authentication, `Link: rel="next"` paging and Okta's
//! `X-Rate-Limit-*` headers. It waits rather than spins: a bucket whose budget is used up
//! is not called again before its reset time, and a 429 waits for the reset (capped,
//! with jitter). The token lives in one sensitive header value and nowhere else.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::telemetry::error_chain;

use http::{HeaderMap, HeaderValue, StatusCode};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Error;
use super::metrics::DirectoryMetrics;
use crate::config::Secret;

/// Timeout for one API call, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a rate-limited call waits before it tries again.
const RATE_LIMIT_WAIT_CAP: Duration = Duration::from_secs(60);
/// The shortest wait after a 429 (when the reset is missing or already past).
const MIN_429_WAIT: Duration = Duration::from_secs(1);
/// Upper bound of the random delay added to rate-limit waits, so that replicas spread out.
const JITTER_MAX_MS: u64 = 250;
/// 429s in a row for one call before the sync gives up (and backs off as a whole).
const MAX_429_RETRIES: u32 = 8;
/// Retries of one call after a connection error or a 5xx.
const MAX_TRANSIENT_RETRIES: u32 = 2;
/// First delay before a transient retry; doubles each time.
const TRANSIENT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// The endpoints used, each with its own Okta rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Users,
    Groups,
    GroupMembers,
}

impl Endpoint {
    /// The path template, as Okta documents it (also the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Users => "/api/v1/users",
            Endpoint::Groups => "/api/v1/groups",
            Endpoint::GroupMembers => "/api/v1/groups/{id}/users",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Page sizes (`limit=`) per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    pub users: u32,
    pub groups: u32,
    pub members: u32,
}

impl Default for PageSizes {
    /// Users: 200, Okta's maximum. Groups: 200. Members: 1000, Okta's default and
    /// maximum — members are where almost all the calls of a full sync go.
    fn default() -> Self {
        PageSizes {
            users: 200,
            groups: 200,
            members: 1000,
        }
    }
}

// === wire types ===

/// A user as Okta lists it (only the fields directory sync reads).
#[derive(Debug, Clone, Deserialize)]
pub struct OktaUser {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "lastUpdated", default)]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub profile: UserProfile,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserProfile {
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A group as Okta lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct OktaGroup {
    pub id: String,
    #[serde(default)]
    pub profile: GroupProfile,
    #[serde(rename = "lastUpdated", default)]
    pub last_updated: Option<String>,
    #[serde(rename = "lastMembershipUpdated", default)]
    pub last_membership_updated: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupProfile {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
struct OktaErrorBody {
    #[serde(rename = "errorCode", default)]
    code: String,
    #[serde(rename = "errorSummary", default)]
    summary: String,
}

/// Every item of a listing, and the server's clock when the listing began.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// From the first response's `Date` header: lets watermarks follow the server's
    /// clock rather than ours.
    pub server_time: Option<Timestamp>,
}

// === impl Client ===

/// The Okta Management API client. Calls are sequential per sync; the client is `Sync`
/// so that status readers can look at its counters.
pub struct Client {
    http: reqwest::Client,
    /// The org's origin (`https://x.okta.com`); every URL it calls, `next` links
    /// included, must share it, so the token never goes anywhere else.
    base: url::Url,
    authorization: HeaderValue,
    pages: PageSizes,
    /// Per bucket: do not call before this instant (the budget is used up).
    blocked_until: Mutex<[Option<Instant>; 3]>,
    calls: AtomicU64,
    rate_limited: AtomicU64,
    metrics: Option<DirectoryMetrics>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the org at `url` (only its scheme and authority are used).
    pub fn new(
        url: &http::Uri,
        token: &Secret<String>,
        pages: PageSizes,
        timeout: Duration,
        metrics: Option<DirectoryMetrics>,
    ) -> Result<Client, Error> {
        let base = origin_of(url)?;
        let mut authorization = HeaderValue::from_str(&format!("SSWS {}", token.expose()))
            .map_err(|_| {
                Error::Config("directory api_token holds characters not allowed in a header".into())
            })?;
        authorization.set_sensitive(true);
        Ok(Client {
            http: http_client(timeout)?,
            base,
            authorization,
            pages,
            blocked_until: Mutex::new([None; 3]),
            calls: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            metrics,
        })
    }

    /// API calls made so far (every attempt, 429s and failures included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// 429 answers received so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// `GET /api/v1/users`, optionally with a `filter` expression.
    pub async fn users(&self, filter: Option<&str>) -> Result<Listing<OktaUser>, Error> {
        let mut url = self.url("/api/v1/users", self.pages.users);
        if let Some(f) = filter {
            url.query_pairs_mut().append_pair("filter", f);
        }
        self.list(Endpoint::Users, url).await
    }

    /// `GET /api/v1/groups`, optionally with a `filter` expression.
    pub async fn groups(&self, filter: Option<&str>) -> Result<Listing<OktaGroup>, Error> {
        let mut url = self.url("/api/v1/groups", self.pages.groups);
        if let Some(f) = filter {
            url.query_pairs_mut().append_pair("filter", f);
        }
        self.list(Endpoint::Groups, url).await
    }

    /// `GET /api/v1/groups/{id}/users`: members of every status.
    pub async fn members(&self, group_id: &str) -> Result<Listing<OktaUser>, Error> {
        let mut url = self.url("/api/v1/groups", self.pages.members);
        url.path_segments_mut()
            .map_err(|_| Error::Config("directory url cannot be a base".into()))?
            .push(group_id)
            .push("users");
        self.list(Endpoint::GroupMembers, url).await
    }

    fn url(&self, path: &str, limit: u32) -> url::Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        url
    }

    /// Follows `rel="next"` until the last page.
    async fn list<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        first: url::Url,
    ) -> Result<Listing<T>, Error> {
        let mut items = Vec::new();
        let mut server_time = None;
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let page = self.get(endpoint, &url).await?;
            if server_time.is_none() {
                server_time = page.server_time;
            }
            let mut batch: Vec<T> =
                serde_json::from_slice(&page.body).map_err(|e| Error::Decode {
                    endpoint: endpoint.as_str(),
                    message: e.to_string(),
                })?;
            items.append(&mut batch);
            next = match page.next {
                Some(link) => Some(self.same_origin(endpoint, &link)?),
                None => None,
            };
        }
        Ok(Listing { items, server_time })
    }

    /// A `next` link, resolved against the base and checked to stay on its origin.
    fn same_origin(&self, endpoint: Endpoint, link: &str) -> Result<url::Url, Error> {
        let url = self.base.join(link).map_err(|e| Error::Decode {
            endpoint: endpoint.as_str(),
            message: format!("bad next link: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(Error::Decode {
                endpoint: endpoint.as_str(),
                message: format!(
                    "next link leaves {} (refusing to send the token to {})",
                    self.base.origin().ascii_serialization(),
                    url.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// One page, with waits for rate limits and a few retries for transient failures.
    async fn get(&self, endpoint: Endpoint, url: &url::Url) -> Result<Page, Error> {
        let mut limited = 0u32;
        let mut transient = 0u32;
        loop {
            self.wait_for_budget(endpoint).await;
            self.calls.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                m.api_call(endpoint);
            }
            let sent = self
                .http
                .get(url.clone())
                .header(http::header::AUTHORIZATION, self.authorization.clone())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    let error = Error::Transport {
                        endpoint: endpoint.as_str(),
                        message: error_chain(&e.without_url()),
                    };
                    if transient < MAX_TRANSIENT_RETRIES {
                        tracing::debug!(%error, "retrying an Okta API call");
                        tokio::time::sleep(TRANSIENT_RETRY_DELAY * 2u32.pow(transient)).await;
                        transient += 1;
                        continue;
                    }
                    return Err(error);
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let rate = RateInfo::from_headers(&headers);
            self.note_budget(endpoint, &rate, Timestamp::now());
            match status {
                StatusCode::OK => {
                    let body = response.bytes().await.map_err(|e| Error::Transport {
                        endpoint: endpoint.as_str(),
                        message: error_chain(&e.without_url()),
                    })?;
                    return Ok(Page {
                        body,
                        next: next_link(&headers),
                        server_time: server_date(&headers),
                    });
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let body = okta_error(response).await;
                    return Err(Error::Unauthorized {
                        status: status.as_u16(),
                        summary: body.describe(),
                    });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = &self.metrics {
                        m.rate_limited(endpoint);
                    }
                    limited += 1;
                    if limited > MAX_429_RETRIES {
                        return Err(Error::RateLimited {
                            endpoint: endpoint.as_str(),
                            attempts: limited,
                        });
                    }
                    let wait = wait_after_429(&rate, Timestamp::now(), jitter());
                    tracing::info!(
                        endpoint = endpoint.as_str(),
                        wait_ms = wait.as_millis() as u64,
                        "Okta API rate limit reached; waiting for the reset"
                    );
                    tokio::time::sleep(wait).await;
                }
                s if s.is_server_error() && transient < MAX_TRANSIENT_RETRIES => {
                    tracing::debug!(
                        endpoint = endpoint.as_str(),
                        status = s.as_u16(),
                        "retrying an Okta API call"
                    );
                    tokio::time::sleep(TRANSIENT_RETRY_DELAY * 2u32.pow(transient)).await;
                    transient += 1;
                }
                s => {
                    let body = okta_error(response).await;
                    return Err(Error::Status {
                        endpoint: endpoint.as_str(),
                        status: s.as_u16(),
                        summary: body.describe(),
                    });
                }
            }
        }
    }

    async fn wait_for_budget(&self, endpoint: Endpoint) {
        let until = self.blocked_until.lock().expect("not poisoned")[endpoint.index()];
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                tracing::debug!(
                    endpoint = endpoint.as_str(),
                    wait_ms = (until - now).as_millis() as u64,
                    "Okta API budget used up; waiting for the reset"
                );
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }

    fn note_budget(&self, endpoint: Endpoint, rate: &RateInfo, now: Timestamp) {
        let wait = wait_before_next(rate, now, jitter());
        self.blocked_until.lock().expect("not poisoned")[endpoint.index()] =
            wait.map(|w| Instant::now() + w);
    }
}

struct Page {
    body: bytes::Bytes,
    next: Option<String>,
    server_time: Option<Timestamp>,
}

impl OktaErrorBody {
    fn describe(&self) -> String {
        match (self.code.is_empty(), self.summary.is_empty()) {
            (true, true) => "no error details".into(),
            (true, false) => self.summary.clone(),
            (false, true) => self.code.clone(),
            (false, false) => format!("{} ({})", self.summary, self.code),
        }
    }
}

async fn okta_error(response: reqwest::Response) -> OktaErrorBody {
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

fn origin_of(uri: &http::Uri) -> Result<url::Url, Error> {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Error::Config(format!(
            "directory url {uri} needs a scheme and a host"
        )));
    };
    if scheme != "https" && scheme != "http" {
        return Err(Error::Config(format!(
            "directory url {uri} must be https (or http for tests)"
        )));
    }
    url::Url::parse(&format!("{scheme}://{authority}/"))
        .map_err(|e| Error::Config(format!("directory url {uri}: {e}")))
}

/// A reqwest client for Okta: system roots, no redirects, a timeout on every call.
fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(e.to_string()))
}

fn jitter() -> Duration {
    Duration::from_millis(rand::random_range(0..=JITTER_MAX_MS))
}

// === headers ===

/// The `rel="next"` target among every `Link` header (Okta sends one header per link;
/// proxies may join them with commas).
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_links)
        .find(|(_, rels)| {
            rels.split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("next"))
        })
        .map(|(url, _)| url)
}

/// Parses one `Link` header value (RFC 8288) into (target, rel) pairs. Tolerant: a
/// malformed link-value is skipped up to the next comma outside `<>` and quotes.
pub fn parse_links(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return out;
        }
        let Some(after) = rest.strip_prefix('<') else {
            rest = skip_link_value(rest);
            continue;
        };
        let Some(close) = after.find('>') else {
            return out;
        };
        let target = after[..close].trim().to_string();
        rest = &after[close + 1..];
        let mut rel = None;
        // Parameters: `; name=value` or `; name="value"`, up to a comma.
        loop {
            rest = rest.trim_start();
            let Some(param) = rest.strip_prefix(';') else {
                break;
            };
            let param = param.trim_start();
            let name_end = param
                .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_ascii_whitespace())
                .unwrap_or(param.len());
            let name = &param[..name_end];
            rest = param[name_end..].trim_start();
            let value = if let Some(v) = rest.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.strip_prefix('"') {
                    let end = q.find('"').unwrap_or(q.len());
                    rest = q.get(end + 1..).unwrap_or("");
                    &q[..end]
                } else {
                    let end = v.find([';', ',']).unwrap_or(v.len());
                    rest = &v[end..];
                    v[..end].trim()
                }
            } else {
                ""
            };
            if name.eq_ignore_ascii_case("rel") && rel.is_none() {
                rel = Some(value.to_string());
            }
        }
        if let Some(rel) = rel {
            out.push((target, rel));
        }
        rest = skip_link_value(rest);
    }
}

/// Skips to just past the next comma that is outside `<>` and quotes.
fn skip_link_value(s: &str) -> &str {
    let (mut angle, mut quote) = (false, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' if !angle => quote = !quote,
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            ',' if !angle && !quote => return &s[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The server's `Date` header (RFC 2822 / IMF-fixdate), if it parses.
pub fn server_date(headers: &HeaderMap) -> Option<Timestamp> {
    let value = headers.get(http::header::DATE)?.to_str().ok()?;
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()
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

    #[test]
    fn link_values() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            (
                r#"<https://x.okta.com/api/v1/users?limit=200>; rel="self""#,
                &[("https://x.okta.com/api/v1/users?limit=200", "self")],
            ),
            (
                r#"<https://a/x?limit=2>; rel="self", <https://a/x?limit=2&after=00u1>; rel="next""#,
                &[
                    ("https://a/x?limit=2", "self"),
                    ("https://a/x?limit=2&after=00u1", "next"),
                ],
            ),
            // Unquoted rel, odd spacing, extra parameters, upper case.
            (
                "< https://a/n >;type=\"a;b,c\" ;REL=next",
                &[("https://a/n", "next")],
            ),
            // A comma inside the target is not a separator.
            (
                r#"<https://a/x?filter=a,b>; rel="next", <https://a/s>; rel=self"#,
                &[("https://a/x?filter=a,b", "next"), ("https://a/s", "self")],
            ),
            // Garbage before a good link is skipped.
            (
                r#"garbage; rel="next", <https://a/ok>; rel="next""#,
                &[("https://a/ok", "next")],
            ),
            // Several rels in one value.
            (
                r#"<https://a/n>; rel="next last""#,
                &[("https://a/n", "next last")],
            ),
            // No rel: dropped. Unterminated target: stop.
            (r#"<https://a/n>; title="x", <https://a/broken"#, &[]),
        ];
        for (value, want) in cases {
            let got = parse_links(value);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn next_link_across_headers() {
        let header = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(http::header::LINK, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&[r#"<https://a/s>; rel="self""#], None),
            // Okta: two header lines.
            (
                &[
                    r#"<https://a/s>; rel="self""#,
                    r#"<https://a/n>; rel="next""#,
                ],
                Some("https://a/n"),
            ),
            // Joined by a proxy.
            (
                &[r#"<https://a/s>; rel="self", <https://a/n>; rel="next""#],
                Some("https://a/n"),
            ),
            (&[r#"<https://a/n>; rel="NEXT""#], Some("https://a/n")),
            (&[r#"<https://a/n>; rel="nextish""#], None),
        ];
        for (values, want) in cases {
            assert_eq!(next_link(&header(values)).as_deref(), *want, "{values:?}");
        }
    }

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

    #[test]
    fn date_header() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::DATE,
            HeaderValue::from_static("Wed, 10 Jan 2024 10:34:45 GMT"),
        );
        assert_eq!(
            server_date(&h),
            Some("2024-01-10T10:34:45Z".parse().unwrap())
        );
    }

    #[test]
    fn token_stays_out_of_debug() {
        let client = Client::new(
            &"https://x.okta.com/some/path".parse().unwrap(),
            &Secret::new("00secret-token".to_string()),
            PageSizes::default(),
            REQUEST_TIMEOUT,
            None,
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("00secret"), "{debug}");
        assert!(debug.contains("https://x.okta.com/"), "{debug}");
        assert!(!format!("{:?}", client.authorization).contains("00secret"));
    }

    #[test]
    fn next_links_stay_on_the_origin() {
        let client = Client::new(
            &"https://x.okta.com".parse().unwrap(),
            &Secret::new("t".to_string()),
            PageSizes::default(),
            REQUEST_TIMEOUT,
            None,
        )
        .unwrap();
        let e = Endpoint::Users;
        assert!(
            client
                .same_origin(e, "https://x.okta.com/api/v1/users?after=1")
                .is_ok()
        );
        assert!(client.same_origin(e, "/api/v1/users?after=1").is_ok());
        assert!(
            client
                .same_origin(e, "https://evil.example/api/v1/users")
                .is_err()
        );
        assert!(
            client
                .same_origin(e, "http://x.okta.com/api/v1/users")
                .is_err()
        );
    }
}
