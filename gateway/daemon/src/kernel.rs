//! Next hops from the kernel: routes and neighbours of the gateway's interface, read over
//! netlink off the hot path and handed to the workers as a fresh [`NextHops`] when they change.
//! Destinations the workers could not resolve, and every backend of a new table, are resolved
//! by asking the kernel (an ARP request / neighbour solicitation goes out); the answer appears in
//! the next read.

use std::collections::BTreeSet;
use std::io;

use sluice_lb::Addr;
use sluice_worker::nexthop::{NextHops, Route};
use sluice_xsk::netlink::{self, Netlink};

/// The kernel's view, for one interface.
#[derive(Debug)]
pub(crate) struct Kernel {
    nl: Netlink,
    ifindex: u32,
    last: Option<(Vec<netlink::Route>, Vec<netlink::Neighbor>)>,
}

impl Kernel {
    /// For interface `ifindex`.
    pub(crate) fn open(ifindex: u32) -> io::Result<Kernel> {
        Ok(Kernel { nl: Netlink::open()?, ifindex, last: None })
    }

    /// Reads routes and neighbours; returns a new [`NextHops`] when they changed since the last
    /// call.
    pub(crate) fn refresh(&mut self) -> io::Result<Option<NextHops>> {
        let mut routes: Vec<_> =
            self.nl.routes()?.into_iter().filter(|r| r.ifindex == self.ifindex).collect();
        let mut neigh: Vec<_> =
            self.nl.neighbors()?.into_iter().filter(|n| n.ifindex == self.ifindex).collect();
        routes.sort_by_key(|r| (r.dst, r.len, r.via));
        neigh.sort_by_key(|n| (n.ip, n.mac));
        if self.last.as_ref().is_some_and(|(r, n)| *r == routes && *n == neigh) {
            return Ok(None);
        }
        let mut hops = NextHops::new();
        for r in &routes {
            hops.add_route(Route { prefix: Addr(r.dst), len: r.len, via: r.via.map(Addr) });
        }
        for n in &neigh {
            hops.set_neighbor(Addr(n.ip), n.mac);
        }
        self.last = Some((routes, neigh));
        Ok(Some(hops))
    }

    /// Whether the kernel has a usable neighbour entry for `ip` (as of the last refresh).
    pub(crate) fn known(&self, ip: &Addr) -> bool {
        self.last.as_ref().is_some_and(|(_, n)| n.iter().any(|n| n.ip == ip.0))
    }

    /// Asks the kernel to resolve each address in `addrs` it does not know yet, through the next
    /// hop the routes give (a gateway's address, not the destination's, when routed).
    pub(crate) fn resolve(&mut self, hops: &NextHops, addrs: &BTreeSet<Addr>) -> usize {
        let mut asked = 0;
        for a in addrs {
            let Some(via) = hops.next_hop(a) else { continue };
            if self.known(&via) {
                continue;
            }
            if self.nl.resolve(self.ifindex, &via.0).is_ok() {
                asked += 1;
            }
        }
        asked
    }
}
