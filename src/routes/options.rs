//! Route option values as text — what the config file and the Ingress annotations
//! both write — read by one parser each. Pure; each error says what is wrong with the
//! value, and the caller says where it was (file:line:col, or Ingress + annotation).

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::model::{Balance, UpstreamScheme};

/// What is wrong with an option's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(message: String) -> Result<T, ValueError> {
    Err(ValueError(message))
}

/// `true`/`false` in Go's `strconv.ParseBool` forms (`1`, `t`, `TRUE`, …).
pub fn boolean(text: &str) -> Result<bool, ValueError> {
    match text.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => err(format!("expected true or false, found `{other}`")),
    }
}

/// A duration in Go's form (`30s`, `1m30s`, `0` for none).
pub fn duration(text: &str) -> Result<Duration, ValueError> {
    let text = text.trim();
    parse_go_duration(text).map_err(|why| ValueError(format!("invalid duration `{text}`: {why}")))
}

/// `host_rewrite` / `host-rewrite`: a host, or host:port.
pub fn host_rewrite(text: &str) -> Result<String, ValueError> {
    let v = text.trim();
    let valid = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if valid {
        Ok(v.to_string())
    } else {
        err(format!("`{v}` is not a valid host (or host:port)"))
    }
}

/// `load_balancing_policy` (Pomerium's `ROUND_ROBIN`) / `load-balancing`
/// (`round_robin`): either spelling, any case.
pub fn balance(text: &str) -> Result<Balance, ValueError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "round_robin" => Ok(Balance::RoundRobin),
        "least_request" => Ok(Balance::LeastRequest),
        _ => err(format!(
            "`{}` is not supported; use ROUND_ROBIN or LEAST_REQUEST (any case)",
            text.trim()
        )),
    }
}

/// `backend-protocol`: `http`, `https` or `h2c`.
pub fn backend_protocol(text: &str) -> Result<UpstreamScheme, ValueError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "http" => Ok(UpstreamScheme::Http),
        "https" => Ok(UpstreamScheme::Https),
        "h2c" => Ok(UpstreamScheme::H2c),
        other => err(format!(
            "`{other}` is not supported; use http, https or h2c"
        )),
    }
}

/// A header name (lower-cased, as `http` keeps it).
pub fn header_name(text: &str) -> Result<HeaderName, ValueError> {
    HeaderName::from_bytes(text.trim().as_bytes())
        .map_err(|_| ValueError(format!("`{text}` is not a valid HTTP header name")))
}

/// A header value (no control characters).
pub fn header_value(text: &str) -> Result<HeaderValue, ValueError> {
    HeaderValue::from_str(text).map_err(|_| {
        ValueError(format!(
            "{text:?} is not a valid HTTP header value (control characters?)"
        ))
    })
}

/// Go's `time.ParseDuration`, minus negative values (no timeout here can be negative).
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, String> {
    const UNITS: &str = "use ns, us, ms, s, m or h, as in `30s` or `1m30s`";
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err("must not be negative".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(format!("empty; {UNITS}"));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(format!("expected a number before `{unit}`"));
        }
        if unit.is_empty() {
            return Err(format!("missing unit after `{num}`; {UNITS}"));
        }
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => return Err(format!("unknown unit `{other}`; {UNITS}")),
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| "number too large".to_string())?
        };
        let mut part = int.checked_mul(nanos_per).ok_or("too large")?;
        let mut scale = nanos_per;
        for d in frac.bytes().take(18) {
            scale /= 10;
            part += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(part).ok_or("too large")?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "too large".to_string())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_read_alike() {
        for (text, want) in [
            ("true", Some(true)),
            ("T", Some(true)),
            ("1", Some(true)),
            (" false ", Some(false)),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(boolean(text).ok(), want, "{text:?}");
        }
        for text in ["ROUND_ROBIN", "round_robin", "Round_Robin"] {
            assert_eq!(balance(text), Ok(Balance::RoundRobin), "{text}");
        }
        for text in ["LEAST_REQUEST", "least_request"] {
            assert_eq!(balance(text), Ok(Balance::LeastRequest), "{text}");
        }
        assert!(
            balance("ring_hash")
                .unwrap_err()
                .0
                .contains("use ROUND_ROBIN or LEAST_REQUEST")
        );
        assert_eq!(
            host_rewrite(" a.example:8080 "),
            Ok("a.example:8080".into())
        );
        assert!(host_rewrite("a b").is_err() && host_rewrite("").is_err());
        assert_eq!(backend_protocol("H2C"), Ok(UpstreamScheme::H2c));
        assert!(backend_protocol("grpc").is_err());
        assert_eq!(header_name(" X-Team ").unwrap(), "x-team");
        assert!(header_name("bad header").is_err());
        assert!(header_value("a\nb").is_err());
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(
            duration("30")
                .unwrap_err()
                .0
                .contains("invalid duration `30`")
        );
    }
}
