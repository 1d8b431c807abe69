//! The addresses the L7 stage serves Ingresses on, owned on the wire by the kernel: each is put
//! on the client-facing interface as a host address (/32, /128), so the kernel's TCP accepts
//! connections to it, answers ARP and neighbour solicitations for it, and the workers' listeners
//! (`SO_REUSEPORT`, one per worker) receive them. The XDP program steers only what the table
//! names as L4 (frontend address, port and protocol), so the L7 ports of such an address reach
//! the kernel while L4 Services on its other ports keep going to the workers.
//!
//! An address the gateway put there is taken off when it leaves the table and when the gateway
//! stops; one that was on the interface before is left alone (it is the operator's).
//!
//! Not hot path: runs on the main thread when a generation changes the set.

use std::collections::BTreeSet;
use std::io;

use sluice_log::{info, warn};
use sluice_model::Addr;
use sluice_xsk::netlink::Netlink;

/// The L7 addresses on one interface.
#[derive(Debug)]
pub(crate) struct L7Addresses {
    nl: Netlink,
    ifindex: u32,
    iface: String,
    /// The wanted addresses that are on the interface.
    present: BTreeSet<Addr>,
    /// The ones the gateway put there (and so takes off).
    added: BTreeSet<Addr>,
}

impl L7Addresses {
    /// For interface `iface` (index `ifindex`).
    pub(crate) fn open(iface: &str, ifindex: u32) -> io::Result<L7Addresses> {
        Ok(L7Addresses {
            nl: Netlink::open()?,
            ifindex,
            iface: iface.to_owned(),
            present: BTreeSet::new(),
            added: BTreeSet::new(),
        })
    }

    /// Brings the interface to `wanted`; returns the addresses that are new on it (to
    /// announce). One that cannot be added is logged and tried again at the next call.
    pub(crate) fn sync(&mut self, wanted: &BTreeSet<Addr>) -> Vec<Addr> {
        let mut fresh = Vec::new();
        for a in wanted.difference(&self.present.clone()) {
            match self.nl.add_address(self.ifindex, &a.0) {
                Ok(true) => {
                    info!("L7: serving on {} (added to {})", a.ip(), self.iface);
                    self.added.insert(*a);
                    self.present.insert(*a);
                    fresh.push(*a);
                }
                Ok(false) => {
                    info!("L7: serving on {} (it was on {} already)", a.ip(), self.iface);
                    self.present.insert(*a);
                    fresh.push(*a);
                }
                Err(e) => {
                    warn!("L7: cannot put {} on {}: {e}; Ingresses there are not served", a.ip(), self.iface)
                }
            }
        }
        let leaving: Vec<Addr> = self.present.difference(wanted).copied().collect();
        for a in leaving {
            self.present.remove(&a);
            if self.added.contains(&a) {
                self.take_off(&a);
            }
        }
        fresh
    }

    /// The addresses the gateway put on the interface (and takes off when it stops).
    pub(crate) fn added(&self) -> Vec<std::net::IpAddr> {
        self.added.iter().map(Addr::ip).collect()
    }

    /// Takes over addresses an old gateway put on the interface (an upgrade): they are this
    /// gateway's now, taken off when they leave the table or when it stops.
    pub(crate) fn adopt(&mut self, addrs: &[std::net::IpAddr]) {
        for &ip in addrs {
            self.added.insert(Addr::from(ip));
            self.present.insert(Addr::from(ip));
        }
    }

    /// Leaves every address where it is (a new gateway took them over).
    pub(crate) fn forget(&mut self) {
        self.added.clear();
        self.present.clear();
    }

    fn take_off(&mut self, a: &Addr) {
        match self.nl.del_address(self.ifindex, &a.0) {
            Ok(_) => info!("L7: no longer serving on {} (taken off {})", a.ip(), self.iface),
            Err(e) => warn!("L7: cannot take {} off {}: {e}", a.ip(), self.iface),
        }
        self.added.remove(a);
    }
}

impl Drop for L7Addresses {
    fn drop(&mut self) {
        for a in self.added.clone() {
            self.take_off(&a);
        }
    }
}
