//! The paging headers: `Link` (RFC 8288) and its `rel="next"` target, and `Date`, the
//! server's clock for the listing.

use http::HeaderMap;
use jiff::Timestamp;

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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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
}
