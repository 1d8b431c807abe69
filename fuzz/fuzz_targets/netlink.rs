//! The rtnetlink parsers of `sluice_xsk::netlink` on arbitrary datagrams, and what the daemon
//! does with their result (`gateway/daemon/src/kernel.rs`: routes and neighbours into the
//! workers' `NextHops`), with the next-hop cache checked against the neighbours set.
//!
//! Input: a 4-byte sequence number, then one datagram.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sluice_model::Addr;
use sluice_worker::nexthop::{NextHops, Route};
use sluice_xsk::netlink;

const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNEIGH: u16 = 28;

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("netlink"), |data: &[u8]| {
    let Some((seq, dgram)) = data.split_first_chunk::<4>() else { return };
    let (mut routes, mut neighbors) = (Vec::new(), Vec::new());
    let _ = netlink::messages(dgram, u32::from_ne_bytes(*seq), |ty, p| match ty {
        RTM_NEWROUTE => routes.extend(netlink::route(p)),
        RTM_NEWNEIGH => neighbors.extend(netlink::neighbor(p)),
        _ => {}
    });
    // The payload parsers alone, on the whole datagram.
    routes.extend(netlink::route(dgram));
    neighbors.extend(netlink::neighbor(dgram));

    // As the daemon does: two interfaces, ifindex 2 and 3, are ports 0 and 1.
    let port = |ifindex: u32| (ifindex == 3) as u8;
    let mut hops = NextHops::new();
    for r in &routes {
        hops.add_route_on(port(r.ifindex), Route { prefix: Addr(r.dst), len: r.len, via: r.via.map(Addr) });
    }
    let mut macs = HashMap::new();
    for n in &neighbors {
        hops.set_neighbor_on(port(n.ifindex), Addr(n.ip), n.mac);
        macs.insert((port(n.ifindex), Addr(n.ip)), n.mac);
    }
    let probes = routes.iter().map(|r| Addr(r.dst)).chain(routes.iter().filter_map(|r| r.via.map(Addr)))
        .chain(neighbors.iter().map(|n| Addr(n.ip)))
        .chain([Addr::from_v4([198, 18, 0, 2]), Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])]);
    for dst in probes {
        let hop = hops.next_hop_on(&dst);
        let want = hop.and_then(|(p, via)| macs.get(&(p, via)).map(|m| (*m, p)));
        // Twice: the first may fill the cache, the second reads it.
        assert_eq!(hops.resolve_on(&dst), want, "{dst:?} via {hop:?}");
        assert_eq!(hops.resolve_on(&dst), want, "{dst:?} via {hop:?}, cached");
    }
});
