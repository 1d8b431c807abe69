//! Next hops from the kernel: routes and neighbours of the gateway's interfaces (one; two when
//! two-armed — each a port of the workers, in order), read over
//! netlink off the hot path and handed to the workers as a fresh [`NextHops`] when they change.
//! Destinations the workers could not resolve, and every backend of a new table, are resolved
//! by asking the kernel (an ARP request / neighbour solicitation goes out); the answer appears in
//! the next read.

use std::collections::BTreeSet;
use std::io;

use sluice_model::Addr;
use sluice_worker::nexthop::{NextHops, Route};
use sluice_xsk::netlink::{self, Netlink};

/// The kernel's view, for the gateway's interfaces.
#[derive(Debug)]
pub(crate) struct Kernel {
    nl: Netlink,
    /// The interfaces, in port order.
    ifindexes: Vec<u32>,
    last: Option<(Vec<netlink::Route>, Vec<netlink::Neighbor>)>,
}

impl Kernel {
    /// For interfaces `ifindexes` (port 0, port 1, …).
    pub(crate) fn open(ifindexes: &[u32]) -> io::Result<Kernel> {
        Ok(Kernel { nl: Netlink::open()?, ifindexes: ifindexes.to_vec(), last: None })
    }

    fn port(&self, ifindex: u32) -> Option<u8> {
        self.ifindexes.iter().position(|&i| i == ifindex).map(|p| p as u8)
    }

    /// Reads routes and neighbours; returns a new [`NextHops`] when they changed since the last
    /// call.
    pub(crate) fn refresh(&mut self) -> io::Result<Option<NextHops>> {
        let mut routes: Vec<_> =
            self.nl.routes()?.into_iter().filter(|r| self.port(r.ifindex).is_some()).collect();
        let mut neigh: Vec<_> =
            self.nl.neighbors()?.into_iter().filter(|n| self.port(n.ifindex).is_some()).collect();
        routes.sort_by_key(|r| (r.ifindex, r.dst, r.len, r.via));
        neigh.sort_by_key(|n| (n.ifindex, n.ip, n.mac));
        if self.last.as_ref().is_some_and(|(r, n)| *r == routes && *n == neigh) {
            return Ok(None);
        }
        let mut hops = NextHops::new();
        for r in &routes {
            let port = self.port(r.ifindex).unwrap_or(0);
            hops.add_route_on(port, Route { prefix: Addr(r.dst), len: r.len, via: r.via.map(Addr) });
        }
        for n in &neigh {
            hops.set_neighbor_on(self.port(n.ifindex).unwrap_or(0), Addr(n.ip), n.mac);
        }
        self.last = Some((routes, neigh));
        Ok(Some(hops))
    }

    /// Whether the kernel has a usable neighbour entry for `ip` on port `port` (as of the last
    /// refresh).
    pub(crate) fn known(&self, port: u8, ip: &Addr) -> bool {
        self.last
            .as_ref()
            .is_some_and(|(_, n)| n.iter().any(|n| n.ip == ip.0 && self.port(n.ifindex) == Some(port)))
    }

    /// Backend liveness, for on-link backends (their next hop is themselves): the kernel knows
    /// them only as neighbours it resolved once, and the gateway's traffic to them bypasses its
    /// stack, so nothing would ever confirm them again or find them gone. Each call asks the
    /// kernel to use (`NTF_USE`) up to `budget` of those whose entry went STALE — it probes them
    /// (after `delay_first_probe_time`, `ucast_solicit` probes `retrans_time` apart) — and
    /// returns those whose entry FAILED: their address no longer answers.
    pub(crate) fn unanswering(
        &mut self,
        hops: &NextHops,
        backends: &BTreeSet<Addr>,
        budget: usize,
    ) -> BTreeSet<Addr> {
        let mut failed = BTreeSet::new();
        let Ok(states) = self.nl.neighbor_states() else { return failed };
        // One lookup per backend: a cluster's backends and the kernel's neighbours both run to
        // thousands.
        let states: std::collections::HashMap<(u32, [u8; 16]), u16> =
            states.into_iter().map(|(i, ip, s)| ((i, ip), s)).collect();
        let state = |port: u8, a: &Addr| {
            let ifindex = self.ifindexes.get(usize::from(port)).copied()?;
            states.get(&(ifindex, a.0)).map(|&s| (ifindex, s))
        };
        let mut asked = 0;
        for a in backends {
            let Some((port, via)) = hops.next_hop_on(a) else { continue };
            if via != *a {
                continue; // behind a router: the router answers for it
            }
            match state(port, a) {
                Some((_, s)) if s & netlink::NUD_FAILED != 0 => {
                    failed.insert(*a);
                }
                Some((ifindex, s))
                    if s & netlink::NUD_STALE != 0
                        && asked < budget
                        && self.nl.resolve(ifindex, &a.0).is_ok() =>
                {
                    asked += 1;
                }
                _ => {}
            }
        }
        failed
    }

    /// Asks the kernel to resolve each address in `addrs` it does not know yet, through the next
    /// hop the routes give (a gateway's address, not the destination's, when routed).
    pub(crate) fn resolve(&mut self, hops: &NextHops, addrs: &BTreeSet<Addr>) -> usize {
        let mut asked = 0;
        for a in addrs {
            let Some((port, via)) = hops.next_hop_on(a) else { continue };
            if self.known(port, &via) {
                continue;
            }
            let Some(&ifindex) = self.ifindexes.get(usize::from(port)) else { continue };
            if self.nl.resolve(ifindex, &via.0).is_ok() {
                asked += 1;
            }
        }
        asked
    }
}
