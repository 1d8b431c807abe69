//! The XDP steering plan: what the XDP program must steer to the workers for a table generation,
//! and which addresses the gateway owns on the wire — derived from the table alone, so the map
//! and the table never disagree about what is service traffic.

use std::collections::{BTreeSet, HashMap};

use sluice_model::ports::PortRange;
use sluice_model::service::{Frontend, NatMode, ServiceTable};
use sluice_model::{Addr, Family};
use sluice_wire::ip_proto;
use sluice_xsk::{Kind, STEER_HOST, SteerKey, SteerValue};

/// The steering map's wanted content for `table`; FullNAT source addresses take replies on
/// `snat_ports` (the union of the workers' ranges). `is_host` says which addresses are also
/// the host's own: the XDP program leaves to the kernel what the host has a socket for there.
/// `peer_snat`: the FullNAT source addresses of the flow-sync peers (`--peer-snat-address`),
/// whose replies reach this node once it has taken the address over: steered like this
/// node's own, for the flows carried from the peer (`sluice_lb::peers`).
pub(crate) fn plan(
    table: &ServiceTable,
    snat_ports: PortRange,
    peer_snat: &[Addr],
    is_host: &dyn Fn(&Addr) -> bool,
) -> HashMap<SteerKey, SteerValue> {
    let mut m = HashMap::new();
    let none = SteerValue::default();
    let icmp = |a: &Addr| if a.family() == Family::V4 { ip_proto::ICMP } else { ip_proto::ICMPV6 };
    for a in peer_snat {
        let range = SteerValue { lo: snat_ports.lo(), hi: snat_ports.hi(), flags: 0 };
        for proto in [ip_proto::TCP, ip_proto::UDP, icmp(a)] {
            m.insert(SteerKey::new(Kind::Snat, a.0, 0, proto), range);
        }
    }
    // Asked once per address (thousands of services share a few SNAT addresses).
    let mut hosts: HashMap<Addr, bool> = HashMap::new();
    let mut is_host = |a: &Addr| *hosts.entry(*a).or_insert_with(|| is_host(a));
    for s in table.services() {
        for fe in &s.frontends {
            let proto = fe.protocol.number();
            match fe.frontend {
                Frontend::Address(a) => {
                    m.insert(SteerKey::new(Kind::Dst, a.0, fe.port, proto), none);
                    m.insert(SteerKey::new(Kind::Dst, a.0, 0, icmp(&a)), none);
                    m.insert(SteerKey::new(Kind::Owned, a.0, 0, 0), none);
                }
                Frontend::NodePort(family) => {
                    for n in table.node_addrs().iter().filter(|n| n.family() == family) {
                        m.insert(SteerKey::new(Kind::Dst, n.0, fe.port, proto), none);
                    }
                }
            }
            match s.nat {
                NatMode::FullNat => {
                    for a in &s.snat {
                        let flags = if is_host(a) { STEER_HOST } else { 0 };
                        let range = SteerValue { lo: snat_ports.lo(), hi: snat_ports.hi(), flags };
                        m.insert(SteerKey::new(Kind::Snat, a.0, 0, proto), range);
                        m.insert(SteerKey::new(Kind::Snat, a.0, 0, icmp(a)), range);
                    }
                }
                NatMode::Dnat => {
                    for b in &table.backends()[s.backends.start as usize..s.backends.end as usize] {
                        m.insert(SteerKey::new(Kind::Src, b.addr.0, b.port, proto), none);
                    }
                }
            }
        }
    }
    // The host's own addresses among those the table names: a DNAT backend's reply to one of
    // them may be for the host's own connection.
    let named = table.node_addrs().iter().chain(table.services().iter().flat_map(|s| s.snat.iter()));
    for a in named.filter(|a| is_host(a)).collect::<BTreeSet<_>>() {
        m.insert(SteerKey::new(Kind::Host, a.0, 0, 0), none);
    }
    m
}

/// Whether `a` is one of this host's addresses (in the gateway's network namespace): a socket
/// can be bound to it.
pub(crate) fn is_host_address(a: &Addr) -> bool {
    std::net::UdpSocket::bind((a.ip(), 0)).is_ok()
}

/// The addresses the gateway owns on the wire (answers ARP / neighbour solicitations for).
pub(crate) fn owned(table: &ServiceTable) -> BTreeSet<Addr> {
    table
        .services()
        .iter()
        .flat_map(|s| s.frontends.iter())
        .filter_map(|fe| match fe.frontend {
            Frontend::Address(a) => Some(a),
            Frontend::NodePort(_) => None,
        })
        .collect()
}

/// Every backend address, to resolve before the first packet needs it.
pub(crate) fn backend_addrs(table: &ServiceTable) -> BTreeSet<Addr> {
    table.backends().iter().map(|b| b.addr).collect()
}
