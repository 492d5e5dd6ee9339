//! The pages Portcullis answers with itself: plain, accessible HTML (or JSON for API
//! clients), no external assets.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::{Body, full};

/// What an error answer says.
pub struct ErrorPage<'a> {
    pub status: StatusCode,
    pub title: &'a str,
    pub detail: &'a str,
    pub route: Option<&'a str>,
    pub request_id: &'a HeaderValue,
}

/// Whether the client prefers JSON to HTML.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

impl ErrorPage<'_> {
    pub fn render(&self, json: bool) -> Response<Body> {
        let request_id = self.request_id.to_str().unwrap_or("");
        if json {
            let body = serde_json::json!({
                "status": self.status.as_u16(),
                "error": self.title,
                "detail": self.detail,
                "route": self.route,
                "request_id": request_id,
            });
            return respond(
                self.status,
                "application/json",
                body.to_string(),
                self.request_id,
            );
        }
        let route = self
            .route
            .map(|r| format!("<dt>Route</dt><dd><code>{}</code></dd>", escape(r)))
            .unwrap_or_default();
        let switch = if self.status == StatusCode::FORBIDDEN {
            "<p><a href=\"/.portcullis/sign_out\">Sign in as someone else</a> \
             &middot; <a href=\"/.portcullis/\">Who am I signed in as?</a></p>"
        } else {
            ""
        };
        let body = format!(
            "<p>{detail}</p>{switch}<dl>{route}<dt>Request ID</dt><dd><code>{id}</code></dd></dl>",
            detail = escape(self.detail),
            id = escape(request_id),
        );
        html_page(
            self.status,
            &format!("{} {}", self.status.as_u16(), self.title),
            &body,
            self.request_id,
        )
    }
}

/// A complete HTML page around `body_html` (already escaped), with the house style.
pub fn html_page(
    status: StatusCode,
    title: &str,
    body_html: &str,
    request_id: &HeaderValue,
) -> Response<Body> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1a1a1a}}\
         h1{{font-size:1.5rem}}dt{{font-weight:600}}dd{{margin:0 0 .5rem}}code{{font-size:.9em}}\
         button{{font:inherit;padding:.4rem 1rem}}</style>\
         </head><body><main><h1>{title}</h1>{body_html}</main></body></html>\n",
        title = escape(title),
    );
    respond(status, "text/html; charset=utf-8", page, request_id)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    request_id: &HeaderValue,
) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        http::HeaderName::from_static("x-request-id"),
        request_id.clone(),
    );
    resp
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_json_is_offered() {
        let id = HeaderValue::from_static("r1");
        let page = ErrorPage {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            detail: "<script>alert(1)</script>",
            route: Some("routes[0]"),
            request_id: &id,
        };
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/json"),
        );
        assert!(!wants_json(&h));
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let resp = page.render(false);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()["x-request-id"], "r1");
    }
}
