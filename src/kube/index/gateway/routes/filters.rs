//! A rule's filters: header modifiers (requests may not be given identity or framing
//! headers, responses no `Set-Cookie`), redirects and URL rewrites. A filter Portcullis
//! does not apply is refused, never silently ignored.

use http::{HeaderName, HeaderValue};

use super::hostnames::parse_hostname;
use crate::kube::gateway::api::{HTTPHeaderFilter, HTTPPathModifier, HTTPRouteFilter};
use crate::routes::gateway::{Filters, GatewayHost, HeaderModifier, PathRewrite, RedirectSpec};
use crate::routes::reserved::reserved_request_header_with;

/// Applies a rule-level filter; `Err` for a filter Portcullis does not apply (the
/// route is then not accepted: UnsupportedValue, never silently ignored).
pub(super) fn apply_filter(
    f: &HTTPRouteFilter,
    filters: &mut Filters,
    redirect: &mut Option<RedirectSpec>,
    claim_headers: &[String],
) -> Result<(), String> {
    match f.type_.as_str() {
        "RequestHeaderModifier" => {
            let spec = f
                .request_header_modifier
                .as_ref()
                .ok_or("requestHeaderModifier is missing")?;
            filters.request_headers = header_modifier(spec, Direction::Request, claim_headers)?;
        }
        "ResponseHeaderModifier" => {
            let spec = f
                .response_header_modifier
                .as_ref()
                .ok_or("responseHeaderModifier is missing")?;
            filters.response_headers = header_modifier(spec, Direction::Response, claim_headers)?;
        }
        "RequestRedirect" => {
            let spec = f
                .request_redirect
                .as_ref()
                .ok_or("requestRedirect is missing")?;
            let status = spec.status_code.unwrap_or(302);
            if ![301, 302, 303, 307, 308].contains(&status) {
                return Err(format!("statusCode {status} is not a redirect"));
            }
            let scheme = match spec.scheme.as_deref() {
                None => None,
                Some(s @ ("http" | "https")) => Some(s.to_string()),
                Some(other) => return Err(format!("scheme `{other}`: use http or https")),
            };
            let hostname = match spec.hostname.as_deref() {
                None => None,
                Some(h) => match parse_hostname(h)? {
                    GatewayHost::Exact(h) => Some(h),
                    GatewayHost::Wildcard(_) => {
                        return Err(format!("hostname `{h}`: a redirect needs one name"));
                    }
                },
            };
            *redirect = Some(RedirectSpec {
                scheme,
                hostname,
                path: spec.path.as_ref().map(path_modifier).transpose()?,
                port: spec
                    .port
                    .map(|p| u16::try_from(p).map_err(|_| format!("port {p} is out of range")))
                    .transpose()?,
                status: status as u16,
            });
        }
        "URLRewrite" => {
            let spec = f.url_rewrite.as_ref().ok_or("urlRewrite is missing")?;
            if let Some(h) = spec.hostname.as_deref() {
                match parse_hostname(h)? {
                    GatewayHost::Exact(h) => filters.host_rewrite = Some(h),
                    GatewayHost::Wildcard(_) => {
                        return Err(format!("hostname `{h}`: a rewrite needs one name"));
                    }
                }
            }
            filters.path_rewrite = spec.path.as_ref().map(path_modifier).transpose()?;
        }
        other => {
            return Err(format!(
                "filter type {other} is not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect and URLRewrite are)"
            ));
        }
    }
    Ok(())
}

fn path_modifier(p: &HTTPPathModifier) -> Result<PathRewrite, String> {
    match (
        p.type_.as_str(),
        &p.replace_full_path,
        &p.replace_prefix_match,
    ) {
        ("ReplaceFullPath", Some(v), _) if v.starts_with('/') => Ok(PathRewrite::Full(v.clone())),
        ("ReplacePrefixMatch", _, Some(v)) if v.starts_with('/') || v.is_empty() => {
            Ok(PathRewrite::Prefix(v.clone()))
        }
        (t, _, _) => Err(format!(
            "path modifier {t} needs its value, starting with `/`"
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Request,
    Response,
}

/// A header modifier with names and values checked: requests may not be given
/// identity or framing headers (`routes::reserved`), responses no framing headers and
/// no `Set-Cookie` or `Clear-Site-Data` (Portcullis's cookies are its own).
pub(super) fn header_modifier(
    spec: &HTTPHeaderFilter,
    direction: Direction,
    claim_headers: &[String],
) -> Result<HeaderModifier, String> {
    let name = |n: &str| -> Result<HeaderName, String> {
        let parsed = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{n}` is not a header name"))?;
        match direction {
            Direction::Request => {
                if let Some(why) = reserved_request_header_with(n, claim_headers) {
                    return Err(format!("`{n}` is {why}"));
                }
            }
            Direction::Response => {
                if let Some(why) = crate::routes::reserved::reserved_response_header(n) {
                    return Err(format!("`{n}` is {why}"));
                }
            }
        }
        Ok(parsed)
    };
    let pair =
        |h: &crate::kube::gateway::api::HTTPHeader| -> Result<(HeaderName, HeaderValue), String> {
            let n = name(&h.name)?;
            // Portcullis's cookies may be shared by other hosts' sessions; what a filter
            // sets is also stripped of them on the way out (proxy::request::respond).
            if direction == Direction::Response
                && (n == http::header::SET_COOKIE || n.as_str() == "clear-site-data")
            {
                return Err(format!("{} may not be set or added by a filter", h.name));
            }
            let v = HeaderValue::from_str(&h.value)
                .map_err(|_| format!("the value of `{}` is not a header value", h.name))?;
            Ok((n, v))
        };
    Ok(HeaderModifier {
        set: spec.set.iter().map(&pair).collect::<Result<_, _>>()?,
        add: spec.add.iter().map(&pair).collect::<Result<_, _>>()?,
        remove: spec
            .remove
            .iter()
            .map(|n| name(n))
            .collect::<Result<_, _>>()?,
    })
}
