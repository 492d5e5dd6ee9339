//! Where Gateways listen: each Gateway port gets a local port on every Portcullis Pod
//! (from `--gateway-port-range`), and a Service per Gateway, in the controller's
//! namespace, maps the Gateway's ports onto them; the Service's address is the
//! Gateway's. Pods need no privileged ports, and two Gateways never share a socket.
//!
//! The choice is a pure function of the Gateways (hash of `namespace/name:port` into
//! the range, probing past ports taken by older Gateways), so every replica binds the
//! same ports without asking anyone, and a Gateway keeps its ports across restarts.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::{Index, ObjectKey};

/// Annotation on provisioned Services: the Gateway they serve, `namespace/name`.
pub const GATEWAY_ANNOTATION: &str = "gateway.portcullis.dev/gateway";
/// Annotation on provisioned Services: the `controllerName` of the release that made
/// them. Two releases in one namespace each sweep only their own.
pub const CONTROLLER_ANNOTATION: &str = "gateway.portcullis.dev/controller";
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

/// Local ports for `wanted` (Gateway, port) pairs, oldest Gateway first. A pair keeps
/// the local port its provisioned Service already maps it to (`held`, read from the
/// cluster, so every replica agrees), if that port is in the range and no older pair
/// kept it: a Gateway that adds a port never takes another's socket (whose Service
/// still sends that Gateway's clients there). The others hash into the range and probe
/// upwards past taken ports (wrapping). `None` for pairs that find the range full.
pub(super) fn allocate(
    range: (u16, u16),
    wanted: &[(ObjectKey, u16)],
    held: &BTreeMap<(ObjectKey, u16), u16>,
) -> BTreeMap<(ObjectKey, u16), Option<u16>> {
    let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
    let size = u64::from(hi - lo) + 1;
    let mut taken: BTreeSet<u16> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for pair in wanted {
        if let Some(&p) = held.get(pair)
            && (lo..=hi).contains(&p)
            && taken.insert(p)
        {
            out.insert(pair.clone(), Some(p));
        }
    }
    for (key, port) in wanted {
        if out.contains_key(&(key.clone(), *port)) {
            continue;
        }
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

/// The local ports the provisioned Services in `controller_ns` map Gateway ports to:
/// only Services we made (our label, the Gateway's annotation, and the name
/// [`service_name`] gives that Gateway), whose target ports are numbers.
pub(super) fn held(index: &Index, controller_ns: &str) -> BTreeMap<(ObjectKey, u16), u16> {
    let mut out = BTreeMap::new();
    for (key, svc) in &index.services.items {
        if key.namespace != controller_ns {
            continue;
        }
        let meta = &svc.metadata;
        let managed = meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL));
        let gateway = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(GATEWAY_ANNOTATION));
        let (Some(MANAGED_BY), Some((ns, name))) = (
            managed.map(String::as_str),
            gateway.and_then(|g| g.split_once('/')),
        ) else {
            continue;
        };
        let gateway = ObjectKey::new(ns, name);
        if key.name != service_name(&gateway) {
            continue;
        }
        for p in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            if let (Ok(port), Some(IntOrString::Int(target))) =
                (u16::try_from(p.port), p.target_port.as_ref())
                && let Ok(target) = u16::try_from(*target)
            {
                out.insert((gateway.clone(), port), target);
            }
        }
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
        let none = BTreeMap::new();
        let got = allocate((20000, 20009), &wanted, &none);
        let ports: BTreeSet<u16> = got.values().map(|p| p.unwrap()).collect();
        assert_eq!(ports.len(), 3, "{got:?}");
        assert!(ports.iter().all(|p| (20000..=20009).contains(p)));
        // The same Gateways give the same ports; an older Gateway leaving moves no one
        // whose hashed port was free.
        assert_eq!(allocate((20000, 20009), &wanted, &none), got);
        let alone = allocate((20000, 20009), &wanted[2..], &none);
        let b = got[&(gw("b"), 80)];
        let start = 20000 + (fnv1a("infra/b:80") % 10) as u16;
        if b == Some(start) {
            assert_eq!(alone[&(gw("b"), 80)], b);
        }
        // A full range: the rest get none.
        let got = allocate((20000, 20001), &wanted, &none);
        assert_eq!(got.values().filter(|p| p.is_none()).count(), 1);
    }

    #[test]
    fn a_held_port_stays_with_its_gateway() {
        let gw = |n: &str| ObjectKey::new("infra", n);
        let range = (20000, 20009);
        let young = (gw("young"), 80);
        let first =
            allocate(range, std::slice::from_ref(&young), &BTreeMap::new())[&young].unwrap();
        // An older Gateway adds a port whose hash lands on the young one's local port.
        let old_port = (1..u16::MAX)
            .find(|p| 20000 + (fnv1a(&format!("infra/old:{p}")) % 10) as u16 == first)
            .unwrap();
        let older = (gw("old"), old_port);
        let wanted = vec![older.clone(), young.clone()];
        // Without the young one's Service the older takes its port ...
        let fresh = allocate(range, &wanted, &BTreeMap::new());
        assert_eq!(fresh[&older], Some(first));
        // ... with it, the young Gateway keeps its socket and the older probes on.
        let held = BTreeMap::from([(young.clone(), first)]);
        let got = allocate(range, &wanted, &held);
        assert_eq!(got[&young], Some(first));
        assert_ne!(got[&older], Some(first));
        assert!(got[&older].is_some());
        // A held port outside the range, or held twice, is not kept.
        let stale = BTreeMap::from([(young.clone(), 19999), (older.clone(), 19999)]);
        let got = allocate(range, &wanted, &stale);
        assert!(
            got.values()
                .all(|p| p.is_some_and(|p| (20000..=20009).contains(&p)))
        );
    }

    #[test]
    fn held_ports_come_only_from_services_we_made() {
        let ns = "portcullis-system".to_string();
        let mut ix = Index::new(crate::kube::index::Settings {
            tenancy: crate::kube::index::Tenancy {
                controller_namespace: ns.clone(),
                ..Default::default()
            },
            ..Default::default()
        });
        let gw = ObjectKey::new("infra", "gw");
        let svc = |ns: &str, name: &str, managed: bool, gateway: &str, target: i32| {
            let mut labels = serde_json::json!({});
            if managed {
                labels[MANAGED_BY_LABEL] = MANAGED_BY.into();
            }
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(serde_json::json!({
                "metadata": {"name": name, "namespace": ns, "labels": labels,
                             "annotations": {GATEWAY_ANNOTATION: gateway}},
                "spec": {"ports": [{"port": 80, "targetPort": target}]}}))
            .unwrap()
        };
        let ours = service_name(&gw);
        for s in [
            svc(&ns, &ours, true, "infra/gw", 20003),
            // Not ours: no label, another namespace, a name that is not the Gateway's.
            svc(&ns, "gw-other", true, "infra/gw2", 20004),
            svc(
                &ns,
                &service_name(&ObjectKey::new("infra", "x")),
                false,
                "infra/x",
                20005,
            ),
            svc(
                "tenant",
                &service_name(&ObjectKey::new("infra", "y")),
                true,
                "infra/y",
                20006,
            ),
        ] {
            ix.apply(s).unwrap();
        }
        assert_eq!(held(&ix, &ns), BTreeMap::from([((gw, 80), 20003)]));
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
