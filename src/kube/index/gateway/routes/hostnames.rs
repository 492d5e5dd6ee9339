//! Hostnames as Gateway API writes them (lower-case labels, maybe `*.` in front), which
//! names a pattern covers, and what a listener's and a route's hostnames have in common.

use crate::routes::gateway::GatewayHost;

/// A hostname as Gateway API writes it: lower-case labels, maybe `*.` in front.
pub(in crate::kube::index::gateway) fn parse_hostname(h: &str) -> Result<GatewayHost, String> {
    let h = h.trim().to_ascii_lowercase();
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("`{h}` is not a host name or `*.` wildcard"));
    }
    if !wild && name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("`{h}` is an IP address; hostnames must be names"));
    }
    Ok(if wild {
        GatewayHost::Wildcard(name.to_string())
    } else {
        GatewayHost::Exact(name.to_string())
    })
}

/// The hostnames a listener and a route have in common: `None` when they have none.
pub(super) fn intersect(
    listener: Option<&GatewayHost>,
    route: &[GatewayHost],
) -> Option<Vec<GatewayHost>> {
    let Some(l) = listener else {
        return Some(route.to_vec());
    };
    if route.is_empty() {
        return Some(vec![l.clone()]);
    }
    let both: Vec<GatewayHost> = route.iter().filter_map(|r| intersect_one(l, r)).collect();
    (!both.is_empty()).then_some(both)
}

fn intersect_one(l: &GatewayHost, r: &GatewayHost) -> Option<GatewayHost> {
    use GatewayHost::{Exact, Wildcard};
    match (l, r) {
        (Exact(a), Exact(b)) => (a == b).then(|| r.clone()),
        (Wildcard(_), Exact(h)) => l.covers(h).then(|| r.clone()),
        (Exact(h), Wildcard(_)) => r.covers(h).then(|| l.clone()),
        (Wildcard(a), Wildcard(b)) => {
            if a == b || l.covers(b) {
                Some(r.clone())
            } else if r.covers(a) {
                Some(l.clone())
            } else {
                None
            }
        }
    }
}
