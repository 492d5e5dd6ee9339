//! Where Gateways listen: each Gateway port gets a local port on every Portcullis Pod
//! (from `--gateway-port-range`), and a Service per Gateway, in the controller's
//! namespace, maps the Gateway's ports onto them; the Service's address is the
//! Gateway's. Pods need no privileged ports, and two Gateways never share a socket.
//!
//! The choice is a pure function of the Gateways (hash of `namespace/name:port` into
//! the range, probing past ports taken by older Gateways), so every replica binds the
//! same ports without asking anyone, and a Gateway keeps its ports across restarts.

use std::collections::{BTreeMap, BTreeSet};

use super::super::ObjectKey;

/// Label on provisioned Services: the Gateway they serve, `namespace.name` hashed
/// would hide it, so the two halves are separate labels.
pub const GATEWAY_NAMESPACE_LABEL: &str = "gateway.portcullis.dev/namespace";
pub const GATEWAY_NAME_LABEL: &str = "gateway.portcullis.dev/name";
/// Marks a Service as Portcullis's provisioned one (the writer deletes only these).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "portcullis-gateway";

/// FNV-1a, 64 bits: stable across builds and platforms (the standard hasher is not).
pub(super) fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Local ports for `wanted` (Gateway, port) pairs, oldest Gateway first. A pair whose
/// hashed port is taken probes upwards (wrapping in the range). `None` for pairs that
/// find the range full.
pub(super) fn allocate(
    range: (u16, u16),
    wanted: &[(ObjectKey, u16)],
) -> BTreeMap<(ObjectKey, u16), Option<u16>> {
    let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
    let size = u64::from(hi - lo) + 1;
    let mut taken: BTreeSet<u16> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (key, port) in wanted {
        let start = fnv1a(&format!("{key}:{port}")) % size;
        let found = (0..size)
            .map(|i| lo + ((start + i) % size) as u16)
            .find(|p| !taken.contains(p));
        if let Some(p) = found {
            taken.insert(p);
        }
        out.insert((key.clone(), *port), found);
    }
    out
}

/// The name of the Service provisioned for Gateway `key`: a DNS label (at most 63
/// characters) unique per namespace/name.
pub fn service_name(key: &ObjectKey) -> String {
    let hash = format!("{:08x}", fnv1a(&key.to_string()) as u32);
    let prefix = "gw-";
    let room = 63 - prefix.len() - 1 - hash.len();
    let mut name: String = key
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    format!("{prefix}{name}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stable_distinct_and_bounded() {
        let gw = |n: &str| ObjectKey::new("infra", n);
        let wanted = vec![(gw("a"), 80), (gw("a"), 443), (gw("b"), 80)];
        let got = allocate((20000, 20009), &wanted);
        let ports: BTreeSet<u16> = got.values().map(|p| p.unwrap()).collect();
        assert_eq!(ports.len(), 3, "{got:?}");
        assert!(ports.iter().all(|p| (20000..=20009).contains(p)));
        // The same Gateways give the same ports; an older Gateway leaving moves no one
        // whose hashed port was free.
        assert_eq!(allocate((20000, 20009), &wanted), got);
        let alone = allocate((20000, 20009), &wanted[2..]);
        let b = got[&(gw("b"), 80)];
        let start = 20000 + (fnv1a("infra/b:80") % 10) as u16;
        if b == Some(start) {
            assert_eq!(alone[&(gw("b"), 80)], b);
        }
        // A full range: the rest get none.
        let got = allocate((20000, 20001), &wanted);
        assert_eq!(got.values().filter(|p| p.is_none()).count(), 1);
    }

    #[test]
    fn service_names_are_dns_labels() {
        for (ns, name) in [
            ("infra", "same-namespace"),
            ("a", &"x".repeat(253)),
            ("b", "dots.in.name"),
        ] {
            let n = service_name(&ObjectKey::new(ns, name));
            assert!(n.len() <= 63, "{n}");
            assert!(n.starts_with("gw-"), "{n}");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{n}"
            );
        }
        assert_ne!(
            service_name(&ObjectKey::new("a", "gw")),
            service_name(&ObjectKey::new("b", "gw"))
        );
    }
}
