//! `portcullis policy eval --policy FILE --input FILE`: evaluates a policy document for
//! one request described in JSON, for trying policies out and for support questions.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::{Identity, Input, Policy, Request};

/// The input document. Unknown keys are refused so a typo cannot silently change the
/// question being asked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalInput {
    /// Absent or `null`: an anonymous request.
    #[serde(default)]
    identity: Option<EvalIdentity>,
    request: EvalRequest,
    /// RFC 3339; defaults to now.
    #[serde(default)]
    time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalIdentity {
    #[serde(default)]
    user: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalRequest {
    method: String,
    path: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Returns the decision (`allow`, `deny` or `sign-in`) on the first line, then one
/// reason per line. Errors only when the policy or the input is invalid.
pub fn eval_cli(policy_text: &str, input_json: &str) -> Result<String, String> {
    let policy = Policy::from_yaml(policy_text).map_err(|e| format!("invalid policy: {e}"))?;
    let input: EvalInput =
        serde_json::from_str(input_json).map_err(|e| format!("invalid input: {e}"))?;

    let now = match &input.time {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("invalid input: time {t:?} is not RFC 3339: {e}"))?,
        None => jiff::Timestamp::now(),
    };
    let source_ip = match &input.request.source_ip {
        Some(ip) => Some(ip.trim().parse::<IpAddr>().map_err(|_| {
            format!("invalid input: request.source_ip {ip:?} is not an IP address")
        })?),
        None => None,
    };
    let header = |name: &str| {
        input
            .request
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && !v.is_empty())
    };
    let cors_preflight = input.request.method.eq_ignore_ascii_case("OPTIONS")
        && header("origin")
        && header("access-control-request-method");

    let identity = input.identity.map(|i| Identity {
        user: i.user,
        email: i.email,
        groups: i.groups,
        claims: i.claims,
    });
    let decision = policy.evaluate(&Input {
        identity: identity.as_ref(),
        request: Request {
            method: &input.request.method,
            path: &input.request.path,
            host: &input.request.host,
            source_ip,
            cors_preflight,
        },
        now,
    });

    let mut out = format!("{}\n", decision.outcome);
    for r in decision.reasons.iter() {
        out.push_str(r.as_str());
        out.push('\n');
    }
    Ok(out)
}
