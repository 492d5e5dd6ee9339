//! The Okta Management API client: the calls, paging through `next` links on the org's
//! origin only, retries of transient failures and waits on rate limits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::telemetry::error_chain;

use http::{HeaderValue, StatusCode};
use jiff::Timestamp;
use serde::de::DeserializeOwned;

use super::super::Error;
use super::super::metrics::DirectoryMetrics;
use super::dto::{OktaGroup, OktaUser, okta_error};
use super::links::{next_link, server_date};
use super::rate::{RateInfo, jitter, wait_after_429, wait_before_next};
use super::{Endpoint, PageSizes};
use crate::config::Secret;

/// Timeout for one API call, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// 429s in a row for one call before the sync gives up (and backs off as a whole).
const MAX_429_RETRIES: u32 = 8;
/// Retries of one call after a connection error or a 5xx.
const MAX_TRANSIENT_RETRIES: u32 = 2;
/// First delay before a transient retry; doubles each time.
const TRANSIENT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// Every item of a listing, and the server's clock when the listing began.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// From the first response's `Date` header: lets watermarks follow the server's
    /// clock rather than ours.
    pub server_time: Option<Timestamp>,
}

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
        let until = crate::sync::lock(&self.blocked_until)[endpoint.index()];
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
        crate::sync::lock(&self.blocked_until)[endpoint.index()] = wait.map(|w| Instant::now() + w);
    }
}

struct Page {
    body: bytes::Bytes,
    next: Option<String>,
    server_time: Option<Timestamp>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
