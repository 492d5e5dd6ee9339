//! Which upstreams an Ingress author may name (docs/security.md, "Backends"): no
//! loopback, link-local, unspecified or metadata address; not Portcullis's own
//! listeners; no Service of another namespace, by DNS name or by ClusterIP. Names are
//! judged as the controller's own resolver would read them: Kubernetes pods resolve
//! short names through a search path (`grafana.ops` is Service `grafana` in namespace
//! `ops`), so those count as what they would resolve to.
//!
//! The proxy checks the resolved addresses again at connect time (`proxy/reach.rs`):
//! a DNS name outside the cluster can still point anywhere.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::{ObjectKey, Tenancy};

/// Namespaces every cluster has, known even when their objects are not watched.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// What the checks need besides the settings: the namespaces and ClusterIPs the index
/// knows.
pub(super) struct UpstreamRules<'a> {
    pub tenancy: &'a Tenancy,
    pub cluster_domain: &'a str,
    /// Every namespace seen in any indexed object, the controller's and the system ones.
    pub namespaces: BTreeSet<&'a str>,
    /// ClusterIPs of indexed Services.
    pub cluster_ips: HashMap<IpAddr, &'a ObjectKey>,
}

impl<'a> UpstreamRules<'a> {
    pub fn new(
        tenancy: &'a Tenancy,
        cluster_domain: &'a str,
        mut namespaces: BTreeSet<&'a str>,
        cluster_ips: HashMap<IpAddr, &'a ObjectKey>,
    ) -> Self {
        namespaces.extend(SYSTEM_NAMESPACES);
        if !tenancy.controller_namespace.is_empty() {
            namespaces.insert(&tenancy.controller_namespace);
        }
        UpstreamRules {
            tenancy,
            cluster_domain,
            namespaces,
            cluster_ips,
        }
    }

    /// Why a backend of namespace `ns` may not connect to `ip:port`.
    pub fn check_ip(&self, ip: IpAddr, port: u16, ns: &str) -> Result<(), String> {
        let ip = crate::routes::reach::canonical(ip);
        if let Some(why) = self.tenancy.upstreams.refuses(ip) {
            return Err(why);
        }
        if ip.is_loopback() && self.tenancy.own_ports.contains(&port) {
            return Err(format!(
                "{ip}:{port} is one of Portcullis's own listeners, which are never an upstream"
            ));
        }
        if let Some(svc) = self.cluster_ips.get(&ip)
            && svc.namespace != ns
        {
            return Err(format!(
                "{ip} is the ClusterIP of Service {svc}; an Ingress reaches only Services of its own namespace"
            ));
        }
        Ok(())
    }

    /// Why a backend of namespace `ns` may not use the DNS name `name` (an ExternalName,
    /// an FQDN EndpointSlice address) on `port`.
    pub fn check_name(&self, name: &str, port: u16, ns: &str) -> Result<(), String> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_ip(ip, port, ns);
        }
        if name.is_empty() {
            return Err("the name is empty".into());
        }
        if name == "localhost" || name.ends_with(".localhost") {
            if !self.tenancy.upstreams.allow_loopback {
                return Err(format!(
                    "`{name}` is a loopback name, which an Ingress backend may not reach"
                ));
            }
            if self.tenancy.own_ports.contains(&port) {
                return Err(format!(
                    "`{name}:{port}` is one of Portcullis's own listeners, which are never an upstream"
                ));
            }
            return Ok(());
        }
        let domain = self.cluster_domain.trim_matches('.').to_ascii_lowercase();
        if let Some(rest) = name.strip_suffix(&format!(".{domain}")) {
            return self.check_cluster_name(&name, rest, ns);
        }
        if name == domain {
            return Err(format!("`{name}` is the cluster domain itself"));
        }
        // The search path (`<ns>.svc.<domain> svc.<domain> <domain>`, ndots 5) completes
        // names that end in a prefix of `svc.<domain>`, and short names.
        let domain_labels: Vec<&str> = domain.split('.').collect();
        for k in (0..domain_labels.len()).rev() {
            let partial = std::iter::once("svc")
                .chain(domain_labels[..k].iter().copied())
                .collect::<Vec<_>>()
                .join(".");
            if let Some(rest) = name.strip_suffix(&format!(".{partial}")) {
                return self.check_cluster_name(&name, &format!("{rest}.svc"), ns);
            }
        }
        if let Some(rest) = name.strip_suffix(".pod") {
            return self.check_cluster_name(&name, &format!("{rest}.pod"), ns);
        }
        let labels: Vec<&str> = name.split('.').collect();
        match labels.as_slice() {
            [_] => Err(format!(
                "`{name}` has a single label: the DNS search path would make it a Service of Portcullis's own namespace; write the fully-qualified name"
            )),
            [.., svc, last] if labels.len() <= 3 && self.namespaces.contains(last) => {
                if *last == ns {
                    Ok(())
                } else {
                    Err(format!(
                        "`{name}` resolves through the DNS search path to Service {svc} of namespace {last}; an Ingress reaches only Services of its own namespace"
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    /// `rest` is `name` without the cluster domain: `<svc>.<ns>.svc` (or with a
    /// hostname in front) is fine in namespace `ns`; anything else is refused.
    fn check_cluster_name(&self, name: &str, rest: &str, ns: &str) -> Result<(), String> {
        let labels: Vec<&str> = rest.split('.').collect();
        match labels.as_slice() {
            [.., svc, target, "svc"] if labels.len() <= 4 => {
                if *target == ns {
                    Ok(())
                } else {
                    Err(format!(
                        "`{name}` is Service {svc} of namespace {target}; an Ingress reaches only Services of its own namespace"
                    ))
                }
            }
            [.., "pod"] => Err(format!(
                "`{name}` is a pod DNS name; name a Service of this namespace instead"
            )),
            _ => Err(format!(
                "`{name}` is in the cluster domain but is not a Service of namespace {ns}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::AddressPolicy;

    fn rules<'a>(tenancy: &'a Tenancy, ips: HashMap<IpAddr, &'a ObjectKey>) -> UpstreamRules<'a> {
        UpstreamRules::new(tenancy, "cluster.local", BTreeSet::from(["b", "ops"]), ips)
    }

    #[test]
    fn names_an_ingress_of_b_may_use() {
        let tenancy = Tenancy {
            controller_namespace: "portcullis-system".into(),
            own_ports: vec![9090],
            ..Tenancy::default()
        };
        let grafana = ObjectKey::new("ops", "grafana");
        let web = ObjectKey::new("b", "web");
        let ips = HashMap::from([
            ("10.96.0.10".parse().unwrap(), &grafana),
            ("10.96.0.11".parse().unwrap(), &web),
        ]);
        let r = rules(&tenancy, ips);
        let cases: &[(&str, Option<&str>)] = &[
            ("api.example.com", None),
            ("api.example.com.", None),
            ("example.com", None),
            ("web.b.svc.cluster.local", None),
            ("web.b.svc.cluster.local.", None),
            ("web-0.web.b.svc.cluster.local", None),
            ("web.b.svc", None),
            ("web.b", None),
            ("10.0.0.5", None),
            ("10.96.0.11", None),
            ("localhost", Some("loopback")),
            ("LOCALHOST.", Some("loopback")),
            ("app.localhost", Some("loopback")),
            ("127.0.0.2", Some("loopback")),
            ("[::1]", Some("loopback")),
            ("::1", Some("loopback")),
            ("169.254.169.254", Some("blocked")),
            ("fd00:ec2::254", Some("blocked")),
            ("100.100.100.200", Some("blocked")),
            ("0.0.0.0", Some("unspecified")),
            ("10.96.0.10", Some("ClusterIP of Service ops/grafana")),
            ("grafana.ops.svc.cluster.local", Some("namespace ops")),
            ("GRAFANA.OPS.SVC.CLUSTER.LOCAL.", Some("namespace ops")),
            (
                "grafana-0.grafana.ops.svc.cluster.local",
                Some("namespace ops"),
            ),
            ("grafana.ops.svc", Some("namespace ops")),
            ("grafana.ops.svc.cluster", Some("namespace ops")),
            ("grafana.ops", Some("namespace ops")),
            ("grafana-0.grafana.ops", Some("namespace ops")),
            ("kube-dns.kube-system", Some("namespace kube-system")),
            (
                "metrics.portcullis-system",
                Some("namespace portcullis-system"),
            ),
            ("grafana", Some("single label")),
            ("10-0-0-5.ops.pod.cluster.local", Some("pod DNS name")),
            ("10-0-0-5.b.pod", Some("pod DNS name")),
            ("cluster.local", Some("cluster domain")),
            ("x.cluster.local", Some("not a Service")),
            ("a.b.c.d.svc.cluster.local", Some("not a Service")),
        ];
        for (name, want) in cases {
            let got = r.check_name(name, 80, "b");
            match want {
                None => assert_eq!(got, Ok(()), "{name}"),
                Some(word) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(word)),
                    "{name}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn with_loopback_open_for_tests_own_listeners_stay_closed() {
        let tenancy = Tenancy {
            upstreams: AddressPolicy {
                allow_loopback: true,
                ..AddressPolicy::default()
            },
            own_ports: vec![8443, 9090],
            ..Tenancy::default()
        };
        let r = rules(&tenancy, HashMap::new());
        assert_eq!(r.check_name("localhost", 8080, "b"), Ok(()));
        assert_eq!(r.check_name("127.0.0.2", 8080, "b"), Ok(()));
        for (name, port) in [("localhost", 9090), ("127.0.0.1", 8443), ("[::1]", 9090)] {
            let got = r.check_name(name, port, "b");
            assert!(
                got.as_ref().is_err_and(|e| e.contains("own listeners")),
                "{name}:{port}: {got:?}"
            );
        }
        assert!(r.check_name("169.254.169.254", 80, "b").is_err());
    }
}
