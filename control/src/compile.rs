//! Stores → the table the gateway forwards from. A pure function: the same stores and
//! configuration give the same table, byte for byte (Services are taken in namespace/name order,
//! LoadBalancer addresses are allocated in that order).
//!
//! Per Service port (TCP and UDP; SCTP is not forwarded) and address family:
//! - **frontends**: the ClusterIP; for NodePort and LoadBalancer Services the node port on the
//!   gateway's own addresses; for LoadBalancer Services the address from `status` (a cluster
//!   dump), else `loadBalancerIP`, else the next free address of an `IPAddressPool`;
//!   `externalIPs`.
//! - **endpoints**: the EndpointSlices labelled `kubernetes.io/service-name` with the Service's
//!   name, matched by port name, when there are any (in a cluster there always are: the endpoint
//!   controller writes them); else, for a Service with a selector, the Pods it selects, as the
//!   endpoint controller would derive them (ready = the Pod's Ready condition and not being
//!   deleted; a named `targetPort` resolved against the Pod's container ports); else its v1
//!   Endpoints object.
//! - **policy**: `sessionAffinity`, the `sluice.io/scheduler` annotation, and
//!   `externalTrafficPolicy: Local`, which gives the external frontends their own entry — DNAT
//!   (the client address kept) to endpoints on this node only — while the ClusterIP keeps every
//!   endpoint under FullNAT.
//!
//! Headless and ExternalName Services have no L4 entry (they matter to Ingress, later).

use std::collections::{BTreeMap, BTreeSet};

/// The index's maps: foldhash, several times faster than SipHash on these short string keys, and
/// seeded per process so that labels chosen by whoever may create Pods cannot be made to collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::IpAddr;

use sluice_lb::Addr;
use sluice_lb::Family;
use sluice_lb::service::{
    Affinity, BackendSpec, Conditions, Frontend, Generation, MaglevSize, NatMode, Protocol, Scheduler,
    ServiceKey, ServiceSpec, TableSpec,
};

use crate::load::Store;
use crate::objects::{EndpointSlice, Endpoints, IntOrString, Pod, Service, ServicePort};

/// The annotation that selects a Service's scheduler.
pub const SCHEDULER_ANNOTATION: &str = "sluice.io/scheduler";

/// MetalLB's annotation asking for given LoadBalancer addresses (comma-separated; one per family).
pub const LB_IPS_ANNOTATION: &str = "metallb.io/loadBalancerIPs";

/// MetalLB's annotation naming the IPAddressPool to allocate from.
pub const POOL_ANNOTATION: &str = "metallb.io/address-pool";

/// What the gateway node is.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// This node's name (for `externalTrafficPolicy: Local`: endpoints on this node only).
    pub node_name: Option<String>,
    /// This node's addresses (where NodePorts answer).
    pub node_addrs: Vec<IpAddr>,
    /// Source addresses for FullNAT (the node addresses when empty).
    pub snat: Vec<IpAddr>,
    /// The `loadBalancerClass` this gateway implements (`None`: Services with no class).
    pub load_balancer_class: Option<String>,
}

/// The result of a compilation.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The table to build and publish.
    pub spec: TableSpec,
    /// LoadBalancer addresses by `namespace/name` (what `status.loadBalancer.ingress` gets).
    pub load_balancers: BTreeMap<String, Vec<IpAddr>>,
    /// Services (`namespace/name`) whose `status.loadBalancer` holds an address of our pools but
    /// which are no longer ours to serve (type or class changed, or not assigned any more): the
    /// leader releases the address by clearing what it wrote (KUBERNETES.md §1.1).
    pub release: Vec<String>,
    /// Things an operator should know (a Service without endpoints, a pool exhausted…).
    pub notes: Vec<String>,
}

/// Parses a pool entry: an address, a CIDR or an inclusive range `a-b`.
pub fn parse_range(s: &str) -> Option<(IpAddr, IpAddr)> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (a.is_ipv4() == b.is_ipv4() && to_u128(a) <= to_u128(b)).then_some((a, b));
    }
    if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().ok()?;
        let len: u32 = len.parse().ok()?;
        let width = if a.is_ipv4() { 32 } else { 128 };
        if len > width {
            return None;
        }
        let host_bits = width - len;
        let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        let base = to_u128(a) & !mask;
        return Some((from_u128(base, a.is_ipv4()), from_u128(base | mask, a.is_ipv4())));
    }
    let a: IpAddr = s.parse().ok()?;
    Some((a, a))
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(x: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4((x as u32).into()) } else { IpAddr::V6(x.into()) }
}

fn family(a: &IpAddr) -> Family {
    if a.is_ipv4() { Family::V4 } else { Family::V6 }
}

/// One endpoint of one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint<'a> {
    addr: IpAddr,
    port: u16,
    conditions: Conditions,
    node: Option<&'a str>,
}

/// A Service's `namespace/name`: how compile's results name it.
pub fn key(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or("default"),
        s.metadata.name.as_deref().unwrap_or("")
    )
}

/// Pods by (namespace, label, value) and EndpointSlices by (namespace, Service), so that finding
/// a Service's endpoints costs its own endpoints, not every object in the store (10,000 Services
/// over 100,000 Pods would otherwise be a billion label comparisons).
struct Index<'a> {
    pods: HashMap<(&'a str, &'a str, &'a str), Vec<&'a Pod>>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    endpoints: HashMap<(&'a str, &'a str), &'a Endpoints>,
}

impl<'a> Index<'a> {
    fn new(store: &'a Store) -> Index<'a> {
        let mut pods: HashMap<(&str, &str, &str), Vec<&Pod>> = HashMap::default();
        for pod in store.pods.iter().map(|l| &l.object) {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            for (k, v) in &pod.metadata.labels {
                pods.entry((ns, k, v)).or_default().push(pod);
            }
        }
        let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::default();
        for slice in store.endpoint_slices.iter().map(|l| &l.object) {
            if let Some(svc) = slice.metadata.labels.get("kubernetes.io/service-name") {
                slices
                    .entry((slice.metadata.namespace.as_deref().unwrap_or("default"), svc))
                    .or_default()
                    .push(slice);
            }
        }
        let endpoints = store
            .endpoints
            .iter()
            .map(|l| &l.object)
            .map(|e| {
                (
                    (
                        e.metadata.namespace.as_deref().unwrap_or("default"),
                        e.metadata.name.as_deref().unwrap_or(""),
                    ),
                    e,
                )
            })
            .collect();
        Index { pods, slices, endpoints }
    }

    /// The Pods of namespace `ns` whose labels include every pair of `selector` (non-empty):
    /// the shortest posting list of its pairs, filtered by the rest.
    fn selected(&self, ns: &str, selector: &BTreeMap<String, String>) -> Vec<&'a Pod> {
        let lists: Option<Vec<&Vec<&Pod>>> =
            selector.iter().map(|(k, v)| self.pods.get(&(ns, k.as_str(), v.as_str()))).collect();
        let Some(shortest) = lists.and_then(|l| l.into_iter().min_by_key(|v| v.len())) else {
            return Vec::new();
        };
        shortest
            .iter()
            .copied()
            .filter(|pod| selector.iter().all(|(k, v)| pod.metadata.labels.get(k) == Some(v)))
            .collect()
    }
}

/// Compiles the stores. See the module documentation.
pub fn compile(store: &Store, cfg: &Config, generation: Generation) -> Compiled {
    let index = Index::new(store);
    let mut services: Vec<&Service> = store.services.iter().map(|l| &l.object).collect();
    services.sort_by_cached_key(|s| key(s));
    let mut notes = Vec::new();
    let (load_balancers, release) = allocate_load_balancers(store, cfg, &services, &mut notes);
    let snat: Vec<Addr> = if cfg.snat.is_empty() { &cfg.node_addrs } else { &cfg.snat }
        .iter()
        .map(|a| Addr::from(*a))
        .collect();
    let mut specs = Vec::new();
    for s in services {
        let name = key(s);
        let ty = s.spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" || s.spec.cluster_ip.as_deref() == Some("None") {
            continue;
        }
        let external = ty == "NodePort" || ty == "LoadBalancer";
        let local = external && s.spec.external_traffic_policy.as_deref() == Some("Local");
        let scheduler = s
            .metadata
            .annotations
            .get(SCHEDULER_ANNOTATION)
            .and_then(|v| v.parse::<Scheduler>().ok())
            .unwrap_or_default();
        let affinity = (s.spec.session_affinity.as_deref() == Some("ClientIP")).then(|| Affinity {
            timeout_s: s
                .spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(i64::from(Affinity::DEFAULT_TIMEOUT_S)) as u32,
        });
        let cluster_ips: Vec<IpAddr> = s
            .spec
            .cluster_ips
            .clone()
            .unwrap_or_default()
            .iter()
            .chain(s.spec.cluster_ip.iter())
            .filter_map(|a| a.parse().ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let external_ips: Vec<IpAddr> = s.spec.external_ips.iter().filter_map(|a| a.parse().ok()).collect();
        let vips = load_balancers.get(&name).cloned().unwrap_or_default();
        let mut any_endpoint = false;
        for p in &s.spec.ports {
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => {
                    notes.push(format!(
                        "Service {name}: port {}/SCTP is not forwarded (TCP and UDP only)",
                        p.port
                    ));
                    continue;
                }
                _ => Protocol::Tcp,
            };
            let endpoints = endpoints(&index, s, p);
            any_endpoint |= !endpoints.is_empty();
            let port = p.port as u16;
            let port_name = match (&p.name, protocol) {
                (Some(n), _) => format!("{name}:{n}"),
                (None, Protocol::Tcp) => format!("{name}:{port}"),
                (None, Protocol::Udp) => format!("{name}:{port}/udp"),
            };
            for fam in [Family::V4, Family::V6] {
                let address =
                    |a: &IpAddr| ServiceKey { frontend: Frontend::Address(Addr::from(*a)), port, protocol };
                let internal: Vec<ServiceKey> =
                    cluster_ips.iter().filter(|a| family(a) == fam).map(address).collect();
                let mut outside: Vec<ServiceKey> =
                    vips.iter().chain(&external_ips).filter(|a| family(a) == fam).map(address).collect();
                if external
                    && let Some(np) = p.node_port
                    && cfg.node_addrs.iter().any(|a| family(a) == fam)
                {
                    outside.push(ServiceKey { frontend: Frontend::NodePort(fam), port: np as u16, protocol });
                }
                let backends = |only_local: bool| -> Vec<BackendSpec> {
                    let mut seen = BTreeSet::new();
                    let mut v: Vec<&Endpoint<'_>> = endpoints
                        .iter()
                        .filter(|e| family(&e.addr) == fam)
                        .filter(|e| !only_local || (e.node.is_some() && e.node == cfg.node_name.as_deref()))
                        .collect();
                    // Duplicates (one endpoint in two slices): keep the one not terminating.
                    v.sort_by_key(|e| (e.addr, e.port, e.conditions.terminating));
                    v.into_iter()
                        .filter(|e| seen.insert((e.addr, e.port)))
                        .map(|e| BackendSpec {
                            addr: Addr::from(e.addr),
                            port: e.port,
                            weight: 1,
                            conditions: e.conditions,
                        })
                        .collect()
                };
                let fam_snat: Vec<Addr> = snat.iter().copied().filter(|a| a.family() == fam).collect();
                let entry =
                    |name: String, frontends: Vec<ServiceKey>, nat: NatMode, only_local: bool| ServiceSpec {
                        name,
                        frontends,
                        backends: backends(only_local),
                        scheduler,
                        affinity,
                        nat,
                        snat: fam_snat.clone(),
                    };
                let suffix = if fam == Family::V6 { " (IPv6)" } else { "" };
                let full_nat_ok = !fam_snat.is_empty();
                if local && !outside.is_empty() {
                    if !internal.is_empty() && full_nat_ok {
                        specs.push(entry(format!("{port_name}{suffix}"), internal, NatMode::FullNat, false));
                    }
                    specs.push(entry(
                        format!("{port_name} (external, local){suffix}"),
                        outside,
                        NatMode::Dnat,
                        true,
                    ));
                } else {
                    let mut all = internal;
                    all.extend(outside);
                    if all.is_empty() {
                        continue;
                    }
                    if !full_nat_ok {
                        notes.push(format!("Service {name}: no source address of family {fam:?} for FullNAT; not forwarded over it"));
                        continue;
                    }
                    specs.push(entry(format!("{port_name}{suffix}"), all, NatMode::FullNat, false));
                }
            }
        }
        if !any_endpoint && !s.spec.ports.is_empty() {
            notes.push(format!(
                "Service {name}: no endpoints; new connections are refused until one is ready"
            ));
        }
    }
    Compiled {
        spec: TableSpec {
            generation,
            services: specs,
            node_addrs: cfg.node_addrs.iter().map(|a| Addr::from(*a)).collect(),
            maglev_size: MaglevSize::Auto,
        },
        load_balancers,
        release,
        notes,
    }
}

/// The endpoints of one Service port.
fn endpoints<'a>(index: &Index<'a>, s: &Service, p: &ServicePort) -> Vec<Endpoint<'a>> {
    let ns = s.metadata.namespace.as_deref().unwrap_or("default");
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    let name = s.metadata.name.as_deref().unwrap_or("");
    // EndpointSlices, when the Service has any (the endpoint controller's output: always, in a
    // cluster); else the Pods its selector picks (a manifest directory); else v1 Endpoints.
    let has_slices = index.slices.contains_key(&(ns, name));
    match &s.spec.selector {
        Some(sel) if !sel.is_empty() && !has_slices => {
            let mut v = Vec::new();
            for pod in index.selected(ns, sel) {
                pod_endpoints(pod, p, proto, &mut v);
            }
            v
        }
        _ => {
            let port_name = p.name.as_deref().unwrap_or("");
            let mut v = Vec::new();
            for slice in index.slices.get(&(ns, name)).into_iter().flatten() {
                if slice.address_type == "FQDN" {
                    continue;
                }
                let Some(port) = slice
                    .ports
                    .iter()
                    .find(|sp| names_port(sp.name.as_deref(), sp.protocol.as_deref(), port_name, proto))
                    .and_then(|sp| sp.port)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n != 0)
                else {
                    continue;
                };
                for e in &slice.endpoints {
                    // Unset conditions: ready and serving mean "unknown, assume yes"; terminating
                    // "no" (discovery/v1 EndpointConditions).
                    let ready = e.conditions.ready.unwrap_or(true);
                    let conditions = Conditions {
                        ready,
                        serving: e.conditions.serving.unwrap_or(ready),
                        terminating: e.conditions.terminating.unwrap_or(false),
                    };
                    for a in e.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                        v.push(Endpoint { addr: a, port, conditions, node: e.node_name.as_deref() });
                    }
                }
            }
            if !has_slices && let Some(e) = index.endpoints.get(&(ns, name)) {
                // The legacy form: addresses are ready, notReadyAddresses are not.
                for sub in &e.subsets {
                    let Some(port) = sub
                        .ports
                        .iter()
                        .find(|ep| names_port(ep.name.as_deref(), ep.protocol.as_deref(), port_name, proto))
                        .and_then(|ep| u16::try_from(ep.port).ok())
                    else {
                        continue;
                    };
                    for (addrs, ready) in [(&sub.addresses, true), (&sub.not_ready_addresses, false)] {
                        for a in addrs {
                            if let Ok(addr) = a.ip.parse::<IpAddr>() {
                                let conditions = Conditions { ready, serving: ready, terminating: false };
                                v.push(Endpoint { addr, port, conditions, node: a.node_name.as_deref() });
                            }
                        }
                    }
                }
            }
            v
        }
    }
}

/// Whether an endpoint port (of a slice or a v1 Endpoints subset) is the Service port named
/// `port_name` (empty when unnamed) of protocol `proto`: ports pair up by name and protocol.
fn names_port(name: Option<&str>, protocol: Option<&str>, port_name: &str, proto: &str) -> bool {
    name.unwrap_or("") == port_name && protocol.unwrap_or("TCP") == proto
}

/// The endpoints one Pod gives a Service port, as the endpoint controller derives them.
fn pod_endpoints<'a>(pod: &'a Pod, p: &ServicePort, proto: &str, out: &mut Vec<Endpoint<'a>>) {
    let Some(status) = &pod.status else { return };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return;
    }
    let port = match &p.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::Str(name)) => container_port(pod, name, proto),
        None => u16::try_from(p.port).ok(),
    };
    let Some(port) = port else { return };
    let ready_condition = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let conditions =
        Conditions { ready: ready_condition && !terminating, serving: ready_condition, terminating };
    let node = pod.spec.get("nodeName").and_then(|v| v.as_str());
    let first = out.len();
    for addr in status.pod_ips.iter().filter_map(|i| i.ip.parse().ok()) {
        out.push(Endpoint { addr, port, conditions, node });
    }
    if let Some(addr) = status.pod_ip.as_deref().and_then(|i| i.parse().ok())
        && !out[first..].iter().any(|e| e.addr == addr)
    {
        out.push(Endpoint { addr, port, conditions, node });
    }
}

/// The number of a Pod's container port called `name` (a named `targetPort`).
fn container_port(pod: &Pod, name: &str, proto: &str) -> Option<u16> {
    let containers = pod.spec.get("containers")?.as_sequence()?;
    containers.iter().filter_map(|c| c.get("ports")?.as_sequence()).flatten().find_map(|p| {
        let matches = p.get("name")?.as_str()? == name
            && p.get("protocol").and_then(|v| v.as_str()).unwrap_or("TCP") == proto;
        if matches { u16::try_from(p.get("containerPort")?.as_i64()?).ok() } else { None }
    })
}

/// LoadBalancer addresses for every LoadBalancer Service of our class.
fn allocate_load_balancers(
    store: &Store,
    cfg: &Config,
    services: &[&Service],
    notes: &mut Vec<String>,
) -> (BTreeMap<String, Vec<IpAddr>>, Vec<String>) {
    // (name, autoAssign, inclusive address ranges, avoidBuggyIPs)
    type Pool = (String, bool, Vec<(IpAddr, IpAddr)>, bool);
    // MetalLB's avoidBuggyIPs: no IPv4 address ending in .0 or .255 (old clients treat them as
    // network or broadcast addresses).
    let buggy = |a: &IpAddr| matches!(a, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255));
    let mut pools: Vec<Pool> = store
        .pools
        .iter()
        .map(|l| {
            let p = &l.object;
            let ranges = p.spec.addresses.iter().filter_map(|a| parse_range(a)).collect();
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.spec.auto_assign.unwrap_or(true),
                ranges,
                p.spec.avoid_buggy_ips.unwrap_or(false),
            )
        })
        .collect();
    pools.sort_by(|a, b| a.0.cmp(&b.0));
    let in_pool = |a: &IpAddr| {
        pools.iter().any(|(_, _, rs, avoid)| {
            !(*avoid && buggy(a))
                && rs.iter().any(|(lo, hi)| {
                    lo.is_ipv4() == a.is_ipv4() && (to_u128(*lo)..=to_u128(*hi)).contains(&to_u128(*a))
                })
        })
    };
    let ours: Vec<&&Service> = services
        .iter()
        .filter(|s| {
            s.spec.type_.as_deref() == Some("LoadBalancer")
                && s.spec.load_balancer_class == cfg.load_balancer_class
        })
        .collect();
    let mut taken = BTreeSet::new();
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    // MetalLB's order (KUBERNETES.md §8.1): addresses Services already hold stay theirs; then
    // explicit asks (`metallb.io/loadBalancerIPs`, else `spec.loadBalancerIP`) — a Service whose
    // ask cannot be had gets no other address; then the rest, in name order, from the first
    // auto-assigning pool with room, or from the pool `metallb.io/address-pool` names.
    let explicit = |s: &Service| -> Option<Vec<IpAddr>> {
        let list = s
            .metadata
            .annotations
            .get(LB_IPS_ANNOTATION)
            .map(|v| {
                v.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect::<Vec<_>>()
            })
            .or_else(|| s.spec.load_balancer_ip.clone().map(|a| vec![a]))?;
        Some(list.iter().filter_map(|a| a.parse().ok()).collect())
    };
    let recorded = |s: &Service| -> Vec<IpAddr> {
        s.status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .map(|lb| lb.ingress.iter().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect())
            .unwrap_or_default()
    };
    let mut refused = BTreeSet::new();
    let claim = |s: &Service,
                 a: IpAddr,
                 taken: &mut BTreeSet<IpAddr>,
                 out: &mut BTreeMap<String, Vec<IpAddr>>,
                 notes: &mut Vec<String>|
     -> bool {
        if !in_pool(&a) {
            notes.push(format!(
                "Service {}: LoadBalancer address {a} is in no IPAddressPool; not assigned",
                key(s)
            ));
            false
        } else if !taken.insert(a) {
            notes.push(format!("Service {}: LoadBalancer address {a} is already taken", key(s)));
            false
        } else {
            out.entry(key(s)).or_default().push(a);
            true
        }
    };
    // Held addresses, unless the Service now asks for others.
    for s in &ours {
        let held = recorded(s);
        if explicit(s).is_none_or(|mut asked| {
            let mut h = held.clone();
            asked.sort();
            h.sort();
            asked == h
        }) {
            for a in held {
                // An address no longer valid (pool changed, conflict) is given up for a new one.
                claim(s, a, &mut taken, &mut out, notes);
            }
        }
    }
    // Explicit asks.
    for s in &ours {
        if out.contains_key(&key(s)) {
            continue;
        }
        if let Some(asked) = explicit(s) {
            let mut all = !asked.is_empty();
            for a in asked {
                all &= claim(s, a, &mut taken, &mut out, notes);
            }
            if !all {
                refused.insert(key(s));
            }
        }
    }
    for s in &ours {
        if out.contains_key(&key(s)) || refused.contains(&key(s)) {
            continue;
        }
        let named = s.metadata.annotations.get(POOL_ANNOTATION);
        if let Some(name) = named
            && !pools.iter().any(|(n, _, _, _)| n == name)
        {
            notes.push(format!("Service {}: {POOL_ANNOTATION}: no IPAddressPool named {name:?}", key(s)));
            continue;
        }
        let free = pools
            .iter()
            .filter(|(n, auto, _, _)| named.map_or(*auto, |want| want == n))
            .flat_map(|(_, _, rs, avoid)| rs.iter().map(move |r| (r, *avoid)))
            .find_map(|((lo, hi), avoid)| {
                let (lo_n, hi_n) = (to_u128(*lo), to_u128(*hi));
                (lo_n..=hi_n.min(lo_n.saturating_add(1 << 16)))
                    .map(|n| from_u128(n, lo.is_ipv4()))
                    .find(|a| !(taken.contains(a) || (avoid && buggy(a))))
            });
        match free {
            Some(a) => {
                taken.insert(a);
                out.insert(key(s), vec![a]);
            }
            None => {
                notes.push(format!("Service {}: no free LoadBalancer address in any IPAddressPool", key(s)))
            }
        }
    }
    let release = services
        .iter()
        .filter(|s| !out.contains_key(&key(s)))
        .filter(|s| {
            s.status.as_ref().and_then(|st| st.load_balancer.as_ref()).is_some_and(|lb| {
                lb.ingress
                    .iter()
                    .any(|i| i.ip.as_deref().and_then(|a| a.parse().ok()).is_some_and(|a| in_pool(&a)))
            })
        })
        .map(|s| key(s))
        .collect();
    (out, release)
}
