//! Services: checked as the API server validates them, defaulted as its `SetDefaults_Service`
//! does (`docs/kubernetes.md` §1.3), typed once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use sluice_model::ports::NODE_PORTS;
use sluice_model::service::{Affinity, Protocol, Scheduler};

use super::{Checked, Named, Problem, address, choose, namespace_of, port_number, verdict};
use crate::objects::{self, IntOrString};

/// The annotation that selects a Service's scheduler (a [`Scheduler`] name).
pub const SCHEDULER_ANNOTATION: &str = "sluice.io/scheduler";

/// MetalLB's annotation asking for given LoadBalancer addresses (comma-separated; one per family).
pub const LB_IPS_ANNOTATION: &str = "metallb.io/loadBalancerIPs";

/// MetalLB's annotation naming the IPAddressPool to allocate from.
pub const POOL_ANNOTATION: &str = "metallb.io/address-pool";

/// `spec.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// `ClusterIP` (the default): reached at its cluster addresses.
    ClusterIp,
    /// `NodePort`: also at a port of every node.
    NodePort,
    /// `LoadBalancer`: also at an address a load balancer (this one, or another) assigns.
    LoadBalancer,
    /// `ExternalName`: a DNS alias, never proxied at L4.
    ExternalName,
}

impl ServiceType {
    const ALL: [(&'static str, ServiceType); 4] = [
        ("ClusterIP", ServiceType::ClusterIp),
        ("NodePort", ServiceType::NodePort),
        ("LoadBalancer", ServiceType::LoadBalancer),
        ("ExternalName", ServiceType::ExternalName),
    ];

    /// Whether the Service is reached from outside the cluster (node ports, LoadBalancer and
    /// external addresses follow `externalTrafficPolicy`).
    pub fn is_external(self) -> bool {
        matches!(self, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = ServiceType::ALL.iter().find(|(_, t)| t == self).map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// A port's protocol (`protocol`, default TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP: valid, but not forwarded by the gateway.
    Sctp,
}

impl PortProtocol {
    const ALL: [(&'static str, PortProtocol); 3] =
        [("TCP", PortProtocol::Tcp), ("UDP", PortProtocol::Udp), ("SCTP", PortProtocol::Sctp)];

    /// The protocol `value` names (TCP when absent), or a problem at `at`.
    pub(crate) fn check(at: &str, value: Option<&str>, problems: &mut Vec<Problem>) -> PortProtocol {
        value
            .map_or(Some(PortProtocol::Tcp), |v| choose(at, v, &PortProtocol::ALL, problems))
            .unwrap_or(PortProtocol::Tcp)
    }

    /// The gateway's protocol for it; `None` for SCTP, which the gateway does not forward.
    pub fn forwarded(self) -> Option<Protocol> {
        match self {
            PortProtocol::Tcp => Some(Protocol::Tcp),
            PortProtocol::Udp => Some(Protocol::Udp),
            PortProtocol::Sctp => None,
        }
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = PortProtocol::ALL.iter().find(|(_, p)| p == self).map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// `targetPort`: where an endpoint listens (defaulted to `port`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// The name of a container port, resolved Pod by Pod.
    Name(String),
}

/// `externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    /// `Cluster` (the default, and what Services not reached from outside have): any endpoint,
    /// the client's address translated.
    #[default]
    Cluster,
    /// `Local`: endpoints on this node only, the client's address kept.
    Local,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Its name (required when a Service has more than one port).
    pub name: Option<String>,
    /// Its protocol.
    pub protocol: PortProtocol,
    /// The Service port.
    pub port: u16,
    /// Where endpoints listen.
    pub target_port: TargetPort,
    /// The node port (NodePort and LoadBalancer Services only).
    pub node_port: Option<u16>,
}

/// A Service, checked and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.type`.
    pub service_type: ServiceType,
    /// `spec.selector`; empty when the Service has none (its endpoints are managed elsewhere).
    pub selector: BTreeMap<String, String>,
    /// `clusterIP: None`: no virtual address (DNS only).
    pub headless: bool,
    /// `spec.externalName` of an ExternalName Service: a DNS name, lowercase, without a
    /// trailing dot.
    pub external_name: Option<String>,
    /// `spec.clusterIP` and `spec.clusterIPs`, in address order, each once.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP` and its timeout (default 10800 s); `None` for `None`.
    pub affinity: Option<Affinity>,
    /// `spec.externalTrafficPolicy` (Cluster for Services not reached from outside).
    pub external_traffic_policy: TrafficPolicy,
    /// The `sluice.io/scheduler` annotation (Maglev by default).
    pub scheduler: Scheduler,
    /// `spec.loadBalancerClass`.
    pub load_balancer_class: Option<String>,
    /// `spec.loadBalancerIP` (deprecated; `metallb.io/loadBalancerIPs` comes first).
    pub load_balancer_ip: Option<IpAddr>,
    /// The `metallb.io/loadBalancerIPs` annotation's addresses.
    pub load_balancer_ips: Option<Vec<IpAddr>>,
    /// The `metallb.io/address-pool` annotation: the pool to allocate from.
    pub address_pool: Option<String>,
    /// The addresses `status.loadBalancer.ingress` holds (what a load balancer assigned).
    pub status_ips: Vec<IpAddr>,
    /// `metadata.creationTimestamp`, when stated: of two Services claiming one frontend, the
    /// older keeps it (`docs/kubernetes.md` §1.2).
    pub created: Option<Created>,
}

/// A creation time (`metadata.creationTimestamp`, RFC 3339 in UTC as the API server writes it:
/// `2025-01-01T00:00:00Z`, fractions of a second allowed), as seconds and nanoseconds since
/// 1970: ordered as time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Created {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Created {
    /// Parses `2025-01-01T00:00:00Z` or `2025-01-01T00:00:00.5Z`.
    pub fn parse(text: &str) -> Option<Created> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(r)?;
            part.iter()
                .all(u8::is_ascii_digit)
                .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if !punctuation.iter().all(|&(i, c)| b.get(i) == Some(&c)) || b.last() != Some(&b'Z') {
            return None;
        }
        let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let nanos = match &b[19..b.len() - 1] {
            [] => 0,
            [b'.', frac @ ..] if (1..=9).contains(&frac.len()) && frac.iter().all(u8::is_ascii_digit) => {
                let n = frac.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                n * 10u32.pow(9 - frac.len() as u32)
            }
            _ => return None,
        };
        // Days from 1970-01-01 to y-mo-d (proleptic Gregorian; H. Hinnant's days_from_civil).
        let y = if mo <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(Created { secs: days * 86_400 + h * 3600 + mi * 60 + sec, nanos })
    }
}

impl Service {
    /// `namespace/name`: how compile's results and the logs name it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The addresses asked for: `metallb.io/loadBalancerIPs`, else `spec.loadBalancerIP`.
    pub fn asked_ips(&self) -> Option<Vec<IpAddr>> {
        self.load_balancer_ips.clone().or_else(|| self.load_balancer_ip.map(|a| vec![a]))
    }
}

impl Named for Service {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a Service as the API server would, and types it with the API server's defaults.
pub fn service(s: objects::Service) -> Checked<Service> {
    let mut problems = Vec::new();
    let spec = &s.spec;
    let service_type = match spec.type_.as_deref() {
        None => ServiceType::ClusterIp,
        Some(t) => choose("spec.type", t, &ServiceType::ALL, &mut problems).unwrap_or(ServiceType::ClusterIp),
    };
    let (headless, cluster_ips) = cluster_ips(spec, &mut problems);
    let external_ips = spec
        .external_ips
        .iter()
        .enumerate()
        .filter_map(|(i, ip)| address(&format!("spec.externalIPs[{i}]"), ip, &mut problems))
        .collect();
    let load_balancer_ip = spec
        .load_balancer_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .and_then(|ip| address("spec.loadBalancerIP", ip, &mut problems));
    let affinity = affinity(spec, &mut problems);
    let external_traffic_policy = traffic_policy(spec, service_type, &mut problems);
    let scheduler = scheduler(&s.metadata.annotations, &mut problems);
    let load_balancer_ips = load_balancer_ips(&s.metadata.annotations, &mut problems);
    let ports = ports(spec, service_type, &mut problems);
    let status_ips = status_ips(s.status.as_ref(), &mut problems);
    let created = s.metadata.creation_timestamp.as_deref().and_then(|t| {
        let created = Created::parse(t);
        if created.is_none() {
            problems.push(Problem::new(
                "metadata.creationTimestamp",
                format!("{t:?} is not a time as the API server writes it (\"2025-01-01T00:00:00Z\")"),
            ));
        }
        created
    });
    // The API server requires a DNS-1123 subdomain for an ExternalName Service (and ignores
    // the field on others).
    let external_name = match (service_type, spec.external_name.as_deref()) {
        (ServiceType::ExternalName, None | Some("")) => {
            problems.push(Problem::new("spec.externalName", "required for an ExternalName Service"));
            None
        }
        (ServiceType::ExternalName, Some(n)) => {
            let name = n.strip_suffix('.').unwrap_or(n);
            match sluice_model::route::HostRule::new(Some(name)) {
                Ok(sluice_model::route::HostRule::Precise(h)) => Some(h),
                _ => {
                    problems.push(Problem::new(
                        "spec.externalName",
                        format!("{n:?} is not a DNS name (lowercase labels of letters, digits and '-')"),
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let checked = Service {
        external_name,
        namespace: namespace_of(&s.metadata).to_owned(),
        name: s.metadata.name.clone().unwrap_or_default(),
        service_type,
        selector: spec.selector.clone().unwrap_or_default(),
        headless,
        cluster_ips,
        external_ips,
        ports,
        affinity,
        external_traffic_policy,
        scheduler,
        load_balancer_class: spec.load_balancer_class.clone(),
        load_balancer_ip,
        load_balancer_ips,
        address_pool: s.metadata.annotations.get(POOL_ANNOTATION).cloned(),
        status_ips,
        created,
    };
    verdict(checked, problems)
}

/// `clusterIP` and `clusterIPs`: whether the Service is headless, and its addresses.
fn cluster_ips(spec: &objects::ServiceSpec, problems: &mut Vec<Problem>) -> (bool, Vec<IpAddr>) {
    let mut headless = false;
    let mut ips = BTreeSet::new();
    let given = spec.cluster_ip.iter().map(|ip| ("spec.clusterIP".to_owned(), ip)).chain(
        spec.cluster_ips.iter().flatten().enumerate().map(|(i, ip)| (format!("spec.clusterIPs[{i}]"), ip)),
    );
    for (at, ip) in given {
        match ip.as_str() {
            "" => {}
            "None" => headless = true,
            ip => match ip.parse::<IpAddr>() {
                Ok(a) => {
                    ips.insert(a);
                }
                Err(_) => problems.push(Problem::new(
                    at,
                    format!("{ip:?} is not an IP address (or \"None\" for a headless Service)"),
                )),
            },
        }
    }
    (headless, ips.into_iter().collect())
}

/// `sessionAffinity` and its timeout.
fn affinity(spec: &objects::ServiceSpec, problems: &mut Vec<Problem>) -> Option<Affinity> {
    const OPTIONS: [(&str, bool); 2] = [("None", false), ("ClientIP", true)];
    let client_ip = match spec.session_affinity.as_deref() {
        None => false,
        Some(a) => choose("spec.sessionAffinity", a, &OPTIONS, problems).unwrap_or(false),
    };
    if !client_ip {
        // The API server clears the configuration of a Service without affinity.
        return None;
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    let Some(t) = timeout else { return Some(Affinity::default()) };
    let affinity = u32::try_from(t).ok().and_then(Affinity::new);
    if affinity.is_none() {
        let range = Affinity::TIMEOUTS_S;
        problems.push(Problem::new(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            format!("{t} is outside {}..={} seconds", range.start(), range.end()),
        ));
    }
    affinity
}

/// `externalTrafficPolicy`: only for Services reached from outside, `Cluster` by default.
fn traffic_policy(
    spec: &objects::ServiceSpec,
    ty: ServiceType,
    problems: &mut Vec<Problem>,
) -> TrafficPolicy {
    const OPTIONS: [(&str, TrafficPolicy); 2] =
        [("Cluster", TrafficPolicy::Cluster), ("Local", TrafficPolicy::Local)];
    let Some(policy) = spec.external_traffic_policy.as_deref() else { return TrafficPolicy::Cluster };
    if !ty.is_external() {
        problems.push(Problem::new(
            "spec.externalTrafficPolicy",
            format!("applies only to NodePort and LoadBalancer Services, not {ty}"),
        ));
        return TrafficPolicy::Cluster;
    }
    choose("spec.externalTrafficPolicy", policy, &OPTIONS, problems).unwrap_or_default()
}

/// The `sluice.io/scheduler` annotation.
fn scheduler(annotations: &BTreeMap<String, String>, problems: &mut Vec<Problem>) -> Scheduler {
    let Some(name) = annotations.get(SCHEDULER_ANNOTATION) else { return Scheduler::default() };
    let at = format!("metadata.annotations[{SCHEDULER_ANNOTATION}]");
    choose(&at, name, &Scheduler::ALL, problems).unwrap_or_default()
}

/// The `metallb.io/loadBalancerIPs` annotation: addresses separated by commas.
fn load_balancer_ips(
    annotations: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<IpAddr>> {
    let value = annotations.get(LB_IPS_ANNOTATION)?;
    let at = format!("metadata.annotations[{LB_IPS_ANNOTATION}]");
    let mut ips = Vec::new();
    for a in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match a.parse() {
            Ok(ip) => ips.push(ip),
            Err(_) => problems.push(Problem::new(
                &at,
                format!("{a:?} is not an IP address (give addresses separated by commas: \"198.18.100.10, 2001:db8::10\")"),
            )),
        }
    }
    if value.trim().is_empty() {
        problems.push(Problem::new(&at, "no address: give one per family, or remove the annotation"));
    }
    Some(ips)
}

/// `status.loadBalancer.ingress[].ip` (entries with a host name only are not addresses).
fn status_ips(status: Option<&objects::ServiceStatus>, problems: &mut Vec<Problem>) -> Vec<IpAddr> {
    let ingress =
        status.and_then(|s| s.load_balancer.as_ref()).map(|lb| lb.ingress.as_slice()).unwrap_or_default();
    ingress
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let ip = entry.ip.as_deref()?;
            address(&format!("status.loadBalancer.ingress[{i}].ip"), ip, problems)
        })
        .collect()
}

/// The ports, with their defaults; each port and node port once per protocol, each name once.
fn ports(spec: &objects::ServiceSpec, ty: ServiceType, problems: &mut Vec<Problem>) -> Vec<ServicePort> {
    let ports: Vec<ServicePort> =
        spec.ports.iter().enumerate().map(|(i, p)| port(i, p, ty, problems)).collect();
    let multi = ports.len() > 1;
    let mut seen: BTreeMap<(u16, PortProtocol), usize> = BTreeMap::new();
    let mut node_ports: BTreeMap<(u16, PortProtocol), usize> = BTreeMap::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in ports.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let proto = p.protocol;
        if let Some(j) = seen.insert((p.port, proto), i) {
            problems.push(Problem::new(
                at("port"),
                format!("duplicate port {}/{proto} (also spec.ports[{j}])", p.port),
            ));
        }
        match &p.name {
            Some(n) => {
                if let Some(j) = names.insert(n, i) {
                    problems.push(Problem::new(
                        at("name"),
                        format!("duplicate port name {n:?} (also spec.ports[{j}])"),
                    ));
                }
            }
            None if multi => {
                problems.push(Problem::new(at("name"), "required when a Service has more than one port"))
            }
            None => {}
        }
    }
    for (i, p) in ports.iter().enumerate() {
        if let Some(np) = p.node_port
            && let Some(j) = node_ports.insert((np, p.protocol), i)
        {
            problems.push(Problem::new(
                format!("spec.ports[{i}].nodePort"),
                format!("duplicate node port {np}/{} (also spec.ports[{j}])", p.protocol),
            ));
        }
    }
    ports
}

/// One port, with its defaults (`protocol: TCP`, `targetPort` = `port`).
fn port(i: usize, p: &objects::ServicePort, ty: ServiceType, problems: &mut Vec<Problem>) -> ServicePort {
    let at = |f: &str| format!("spec.ports[{i}].{f}");
    let protocol = PortProtocol::check(&at("protocol"), p.protocol.as_deref(), problems);
    let number = port_number(&at("port"), p.port, problems);
    let target_port = match &p.target_port {
        None => TargetPort::Number(number),
        Some(IntOrString::Int(t)) => TargetPort::Number(port_number(&at("targetPort"), *t, problems)),
        Some(IntOrString::Str(n)) if n.is_empty() => {
            problems.push(Problem::new(at("targetPort"), "an empty port name"));
            TargetPort::Name(String::new())
        }
        Some(IntOrString::Str(n)) => TargetPort::Name(n.clone()),
    };
    let node_port = p.node_port.and_then(|np| {
        if !ty.is_external() {
            problems.push(Problem::new(
                at("nodePort"),
                format!("a {ty} Service has no node ports; use type NodePort or LoadBalancer"),
            ));
            return None;
        }
        match u16::try_from(np) {
            Ok(np) if NODE_PORTS.contains(np) => Some(np),
            _ => {
                problems.push(Problem::new(
                    at("nodePort"),
                    format!("{np} is outside the node port range {NODE_PORTS}"),
                ));
                None
            }
        }
    });
    ServicePort { name: p.name.clone(), protocol, port: number, target_port, node_port }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> objects::Service {
        serde_norway::from_str(yaml).unwrap()
    }

    fn problems(yaml: &str) -> Vec<String> {
        service(parse(yaml)).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_the_api_servers() {
        let s = service(parse("metadata: {name: a}\nspec:\n  clusterIP: 198.19.0.1\n  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n")).unwrap();
        assert_eq!((s.namespace.as_str(), s.service_type), ("default", ServiceType::ClusterIp));
        assert_eq!(s.affinity, Some(Affinity::default()));
        assert_eq!(s.external_traffic_policy, TrafficPolicy::Cluster);
        assert_eq!(s.scheduler, Scheduler::Maglev);
        assert_eq!(
            s.ports,
            [ServicePort {
                name: None,
                protocol: PortProtocol::Tcp,
                port: 80,
                target_port: TargetPort::Number(80),
                node_port: None
            }]
        );
        assert_eq!(s.cluster_ips, ["198.19.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn values_are_typed_once() {
        let s = service(parse(
            "metadata:\n  name: a\n  annotations: {sluice.io/scheduler: lc, metallb.io/loadBalancerIPs: \"198.18.100.8, 2001:db8::8\"}\nspec:\n  type: LoadBalancer\n  clusterIPs: [\"2001:db8:19::1\", 198.19.0.1]\n  clusterIP: 198.19.0.1\n  externalTrafficPolicy: Local\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n  ports: [{name: dns, port: 53, protocol: UDP, targetPort: dns, nodePort: 30053}]\nstatus: {loadBalancer: {ingress: [{ip: 198.18.100.8}, {hostname: lb.example.com}]}}\n",
        ))
        .unwrap();
        assert_eq!(s.service_type, ServiceType::LoadBalancer);
        assert_eq!(s.scheduler, Scheduler::LeastConnections);
        assert_eq!(s.affinity, Affinity::new(60));
        assert_eq!(s.external_traffic_policy, TrafficPolicy::Local);
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(s.cluster_ips, [ip("198.19.0.1"), ip("2001:db8:19::1")]);
        assert_eq!(s.load_balancer_ips, Some(vec![ip("198.18.100.8"), ip("2001:db8::8")]));
        assert_eq!(s.status_ips, [ip("198.18.100.8")]);
        let p = &s.ports[0];
        assert_eq!(
            (p.protocol, &p.target_port, p.node_port),
            (PortProtocol::Udp, &TargetPort::Name("dns".into()), Some(30053))
        );
    }

    #[test]
    fn creation_times_are_read_as_times() {
        let t = |s: &str| Created::parse(s);
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(Created { secs: 0, nanos: 0 }));
        assert_eq!(t("2000-03-01T00:00:01.5Z"), Some(Created { secs: 951_868_801, nanos: 500_000_000 }));
        assert_eq!(t("2026-11-30T09:12:44Z").map(|c| c.secs), Some(1_796_029_964));
        assert!(t("2026-11-30T09:12:44Z") < t("2026-11-30T09:12:44.1Z"));
        for bad in [
            "2026-11-30 09:12:44Z",
            "2026-11-30T09:12:44",
            "2026-13-01T00:00:00Z",
            "2026-11-30T09:12:44.Z",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(
            problems("metadata: {name: a, creationTimestamp: yesterday}\nspec: {ports: [{port: 80}]}\n"),
            [
                "metadata.creationTimestamp: \"yesterday\" is not a time as the API server writes it (\"2025-01-01T00:00:00Z\")"
            ]
        );
    }

    #[test]
    fn each_problem_names_its_field() {
        assert_eq!(
            problems(
                "metadata: {name: a}\nspec: {sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}, ports: [{port: 80}]}\n"
            ),
            ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is outside 1..=86400 seconds"]
        );
        assert_eq!(
            problems(
                "metadata: {name: a, annotations: {metallb.io/loadBalancerIPs: \"198.18.100.8, nope\"}}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n"
            ),
            [
                "metadata.annotations[metallb.io/loadBalancerIPs]: \"nope\" is not an IP address (give addresses separated by commas: \"198.18.100.10, 2001:db8::10\")"
            ]
        );
        assert_eq!(
            problems(
                "metadata: {name: a, annotations: {sluice.io/scheduler: rrr}}\nspec: {ports: [{port: 80, protocol: TPC}]}\n"
            ),
            [
                "metadata.annotations[sluice.io/scheduler]: \"rrr\" is not one of maglev, rr, wrr, lc, sh, dh, sed, nq; did you mean \"rr\"?",
                "spec.ports[0].protocol: \"TPC\" is not one of TCP, UDP, SCTP; did you mean \"TCP\"?",
            ]
        );
        assert_eq!(
            problems(
                "metadata: {name: a}\nspec: {externalTrafficPolicy: Local, ports: [{port: 80, nodePort: 30080}]}\n"
            ),
            [
                "spec.externalTrafficPolicy: applies only to NodePort and LoadBalancer Services, not ClusterIP",
                "spec.ports[0].nodePort: a ClusterIP Service has no node ports; use type NodePort or LoadBalancer",
            ]
        );
        assert_eq!(
            problems("metadata: {name: a}\nspec: {clusterIP: 10.0.0.300, ports: [{port: 80}]}\n"),
            ["spec.clusterIP: \"10.0.0.300\" is not an IP address (or \"None\" for a headless Service)"]
        );
    }
}
