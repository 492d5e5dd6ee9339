//! Which upstream addresses an endpoint may reach. An endpoint the operator wrote (a
//! config file `to:`) may reach anything but Portcullis's own listeners; an endpoint an
//! Ingress author chose (a Service's EndpointSlices, an ExternalName, `service-upstream`)
//! may not reach loopback, link-local, unspecified, multicast or cloud metadata
//! addresses either. The index applies [`AddressPolicy`] to addresses it can see; the
//! proxy applies it again to every address a name resolves to, just before connecting.
//!
//! Pure: no I/O. Whether an address is one of this host's own (for the listener check)
//! is the proxy's to find out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Who chose an endpoint, and so which addresses it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reach {
    /// Written by the operator (the config file): only Portcullis's own listeners are
    /// refused.
    #[default]
    Operator,
    /// Chosen by an Ingress author: [`AddressPolicy`] applies as well.
    Tenant,
}

/// Cloud metadata services: AWS/GCP/Azure/OpenStack (169.254.169.254, also link-local),
/// AWS over IPv6 (fd00:ec2::254), Alibaba Cloud (100.100.100.200).
pub const DEFAULT_BLOCKED_UPSTREAMS: &[&str] = &[
    "169.254.169.254/32",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// What tenant endpoints may not reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressPolicy {
    /// Refused besides the fixed classes (the metadata list by default; configurable).
    pub blocked: Vec<IpNet>,
    /// Tests only: lets tenant endpoints reach loopback (Portcullis's own listeners stay
    /// refused). Never settable from the Helm chart.
    pub allow_loopback: bool,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        AddressPolicy {
            blocked: DEFAULT_BLOCKED_UPSTREAMS
                .iter()
                .map(|n| n.parse().expect("valid built-in network"))
                .collect(),
            allow_loopback: false,
        }
    }
}

impl AddressPolicy {
    /// Why a tenant endpoint may not connect to `ip`, or `None` when it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        let ip = canonical(ip);
        if let Some(net) = self.blocked.iter().find(|n| n.contains(&ip)) {
            return Some(format!(
                "{ip} is a blocked upstream address (in {net}: cloud metadata and other addresses the cluster admin listed)"
            ));
        }
        let class = match ip {
            IpAddr::V4(v4) => class_v4(v4),
            IpAddr::V6(v6) => class_v6(v6),
        };
        match class {
            Some("loopback") if self.allow_loopback => None,
            Some(class) => Some(format!(
                "{ip} is a {class} address, which an Ingress backend may not reach"
            )),
            None => None,
        }
    }
}

/// IPv4-mapped and IPv4-compatible IPv6 addresses as the IPv4 address they reach.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn class_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0/8: "this network"; Linux connects 0.0.0.0 to the local host.
        Some("unspecified")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some("multicast or broadcast")
    } else {
        None
    }
}

fn class_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast or broadcast")
    } else if ip.segments()[..6] == [0; 6] {
        // Deprecated IPv4-compatible form (::a.b.c.d): judge the IPv4 address.
        let [a, b] = ip.segments()[6..] else {
            unreachable!()
        };
        class_v4(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_addresses() {
        let policy = AddressPolicy::default();
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("loopback")),
            ("127.0.0.2", Some("loopback")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("::", Some("unspecified")),
            ("169.254.169.254", Some("blocked")),
            ("169.254.1.1", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("fd00:ec2::254", Some("blocked")),
            ("100.100.100.200", Some("blocked")),
            ("::ffff:169.254.169.254", Some("blocked")),
            ("224.0.0.1", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("ff02::1", Some("multicast")),
            ("10.0.0.1", None),
            ("192.168.1.10", None),
            ("100.100.100.201", None),
            ("2001:db8::1", None),
            ("fd00:ec2::253", None),
        ];
        for (ip, want) in cases {
            let got = policy.refuses(ip.parse().unwrap());
            match want {
                None => assert_eq!(got, None, "{ip}"),
                Some(word) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(word)),
                    "{ip}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn the_test_flag_opens_loopback_only() {
        let policy = AddressPolicy {
            allow_loopback: true,
            ..AddressPolicy::default()
        };
        assert_eq!(policy.refuses("127.0.0.2".parse().unwrap()), None);
        assert_eq!(policy.refuses("::1".parse().unwrap()), None);
        assert!(policy.refuses("169.254.169.254".parse().unwrap()).is_some());
        assert!(policy.refuses("0.0.0.0".parse().unwrap()).is_some());
    }

    #[test]
    fn the_blocked_list_is_configurable() {
        let policy = AddressPolicy {
            blocked: vec!["10.96.0.0/12".parse().unwrap()],
            allow_loopback: false,
        };
        assert!(policy.refuses("10.96.0.10".parse().unwrap()).is_some());
        assert_eq!(policy.refuses("100.100.100.200".parse().unwrap()), None);
        // The fixed classes stay.
        assert!(policy.refuses("169.254.169.254".parse().unwrap()).is_some());
    }
}
