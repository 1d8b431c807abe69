//! A Service's table entries: none (headless, ExternalName), one per port and address family,
//! or two with `externalTrafficPolicy: Local` (its external frontends, DNAT to this node's
//! endpoints; its cluster addresses, FullNAT to every endpoint).
//!
//! Addresses a Service may not have are refused one by one, each with an error naming the field,
//! and the rest of the Service is served (`docs/kubernetes.md` §1.2): an `externalIPs` entry
//! outside the ranges the operator allows (`--external-ip-ranges`, none by default — anyone who
//! may create a Service could otherwise take any address, kube-proxy's CVE-2020-8554), and any
//! address of the node's own (`--node-address`) as a cluster or external IP: the node's addresses
//! serve NodePorts only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sluice_model::service::{BackendSpec, Frontend, NatMode, Protocol, ServiceKey, ServiceSpec};
use sluice_model::{Addr, Family};

use super::endpoints::{self, Endpoint};
use super::{Config, Index};
use crate::checked::{Service, ServicePort, ServiceType, TrafficPolicy};
use crate::store::Store;

fn family(a: &IpAddr) -> Family {
    if a.is_ipv4() { Family::V4 } else { Family::V6 }
}

/// What compiling one Service reads besides the Service.
pub(super) struct Unit<'a> {
    pub(super) index: &'a Index,
    pub(super) store: &'a Store,
    pub(super) cfg: &'a Config,
    /// Source addresses for FullNAT, every family.
    pub(super) snat: &'a [Addr],
}

/// One forwarded port of a Service, with what its entries are made of.
struct Port<'a> {
    service: &'a Service,
    port: &'a ServicePort,
    protocol: Protocol,
    /// How its entries are named: `namespace/name:port-name` (or `:80`, `:53/udp` unnamed).
    name: String,
    endpoints: Vec<Endpoint<'a>>,
    /// The Service's LoadBalancer addresses.
    vips: &'a [IpAddr],
    /// Its cluster and external addresses that may be served.
    cluster_ips: &'a [IpAddr],
    external_ips: &'a [IpAddr],
}

impl Unit<'_> {
    /// Appends `s`'s entries to `specs`, what an operator should know to `notes`, and the
    /// addresses refused to `errors` (each starting with `at`, where the Service is written).
    pub(super) fn compile(
        &self,
        s: &Service,
        at: &str,
        load_balancers: &BTreeMap<String, Vec<IpAddr>>,
        specs: &mut Vec<ServiceSpec>,
        notes: &mut Vec<String>,
        errors: &mut Vec<String>,
    ) {
        if s.service_type == ServiceType::ExternalName || s.headless {
            return;
        }
        let key = s.key();
        let vips = load_balancers.get(&key).map(Vec::as_slice).unwrap_or_default();
        let (cluster_ips, external_ips) = self.servable(s, at, errors);
        let mut any_endpoint = false;
        for p in &s.ports {
            let Some(protocol) = p.protocol.forwarded() else {
                notes.push(format!(
                    "Service {key}: port {}/{} is not forwarded (TCP and UDP only)",
                    p.port, p.protocol
                ));
                continue;
            };
            let endpoints = endpoints::of_port(self.index, self.store, s, p);
            any_endpoint |= !endpoints.is_empty();
            let name = match (&p.name, protocol) {
                (Some(n), _) => format!("{key}:{n}"),
                (None, Protocol::Tcp) => format!("{key}:{}", p.port),
                (None, Protocol::Udp) => format!("{key}:{}/udp", p.port),
            };
            let port = Port {
                service: s,
                port: p,
                protocol,
                name,
                endpoints,
                vips,
                cluster_ips: &cluster_ips,
                external_ips: &external_ips,
            };
            for fam in [Family::V4, Family::V6] {
                self.entries(&port, fam, specs, notes);
            }
        }
        if !any_endpoint && !s.ports.is_empty() {
            notes
                .push(format!("Service {key}: no endpoints; new connections are refused until one is ready"));
        }
    }

    /// The cluster and external addresses of `s` that may be served; an error for each other.
    fn servable(&self, s: &Service, at: &str, errors: &mut Vec<String>) -> (Vec<IpAddr>, Vec<IpAddr>) {
        let node = |a: &IpAddr| self.cfg.node_addrs.contains(a);
        let node_only =
            "is an address of this node (--node-address), which serves NodePorts only: not served";
        let mut cluster_ips = Vec::new();
        for a in &s.cluster_ips {
            match node(a) {
                true => errors.push(format!("{at}: spec.clusterIPs: {a} {node_only}")),
                false => cluster_ips.push(*a),
            }
        }
        let mut external_ips = Vec::new();
        for (i, a) in s.external_ips.iter().enumerate() {
            let field = format!("spec.externalIPs[{i}]");
            if node(a) {
                errors.push(format!("{at}: {field}: {a} {node_only}"));
            } else if !self.cfg.external_ip_ranges.iter().any(|r| r.contains(*a)) {
                let allowed = match self.cfg.external_ip_ranges.as_slice() {
                    [] => "none, by default".to_owned(),
                    ranges => ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                };
                errors.push(format!(
                    "{at}: {field}: {a} is outside the external IP ranges allowed (--external-ip-ranges: \
                     {allowed}): not served"
                ));
            } else {
                external_ips.push(*a);
            }
        }
        (cluster_ips, external_ips)
    }

    /// The frontends of one port in one family: those inside the cluster (its cluster
    /// addresses), and those outside (LoadBalancer and external addresses, the node port).
    fn frontends(&self, port: &Port<'_>, fam: Family) -> (Vec<ServiceKey>, Vec<ServiceKey>) {
        let protocol = port.protocol;
        let address = |a: &IpAddr| ServiceKey {
            frontend: Frontend::Address(Addr::from(*a)),
            port: port.port.port,
            protocol,
        };
        let internal = port.cluster_ips.iter().filter(|a| family(a) == fam).map(address).collect();
        let mut outside: Vec<ServiceKey> =
            port.vips.iter().chain(port.external_ips).filter(|a| family(a) == fam).map(address).collect();
        if let Some(np) = port.port.node_port
            && self.cfg.node_addrs.iter().any(|a| family(a) == fam)
        {
            outside.push(ServiceKey { frontend: Frontend::NodePort(fam), port: np, protocol });
        }
        (internal, outside)
    }

    /// The backends of one port in one family. With `only_local`, those on other nodes are
    /// there with weight 0: never chosen for a new flow, but known, so that a flow another
    /// gateway node opened to one of them and ECMP moved here is carried to it, and its
    /// replies are steered to the workers (flow sync, docs/several-nodes.md).
    fn backends(&self, endpoints: &[Endpoint<'_>], fam: Family, only_local: bool) -> Vec<BackendSpec> {
        let here = self.cfg.node_name.as_deref();
        let local = |e: &Endpoint<'_>| !only_local || (e.node.is_some() && e.node == here);
        let mut v: Vec<&Endpoint<'_>> = endpoints.iter().filter(|e| family(&e.addr) == fam).collect();
        // Duplicates (one endpoint in two slices): keep the one not terminating.
        v.sort_by_key(|e| (e.addr, e.port, e.conditions.terminating));
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|e| seen.insert((e.addr, e.port)))
            .map(|e| BackendSpec {
                addr: Addr::from(e.addr),
                port: e.port,
                weight: u16::from(local(e)),
                conditions: e.conditions,
            })
            .collect()
    }

    /// The entries of one port in one family.
    fn entries(&self, port: &Port<'_>, fam: Family, specs: &mut Vec<ServiceSpec>, notes: &mut Vec<String>) {
        let (internal, outside) = self.frontends(port, fam);
        let snat: Vec<Addr> = self.snat.iter().copied().filter(|a| a.family() == fam).collect();
        let s = port.service;
        let entry = |name: String, frontends: Vec<ServiceKey>, nat: NatMode, only_local: bool| ServiceSpec {
            name,
            frontends,
            backends: self.backends(&port.endpoints, fam, only_local),
            scheduler: s.scheduler,
            affinity: s.affinity,
            nat,
            snat: snat.clone(),
        };
        let suffix = if fam == Family::V6 { " (IPv6)" } else { "" };
        let name = &port.name;
        if s.external_traffic_policy == TrafficPolicy::Local && !outside.is_empty() {
            if !internal.is_empty() && !snat.is_empty() {
                specs.push(entry(format!("{name}{suffix}"), internal, NatMode::FullNat, false));
            }
            specs.push(entry(format!("{name} (external, local){suffix}"), outside, NatMode::Dnat, true));
            return;
        }
        let mut all = internal;
        all.extend(outside);
        if all.is_empty() {
            return;
        }
        if snat.is_empty() {
            let key = s.key();
            notes.push(format!(
                "Service {key}: no source address of family {fam:?} for FullNAT; not forwarded over it"
            ));
            return;
        }
        specs.push(entry(format!("{name}{suffix}"), all, NatMode::FullNat, false));
    }
}
