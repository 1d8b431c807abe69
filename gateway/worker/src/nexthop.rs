//! Next-hop resolution: which MAC address a rewritten packet is sent to, and out of which of
//! the worker's ports (one port: one-armed; a client-facing and a backend-facing one:
//! two-armed — each route and neighbour belongs to the port of its interface).
//!
//! Routes (connected prefixes and gateways) and neighbours (IP → MAC) are filled by the control
//! path — from the kernel's tables over netlink in the gateway binary, by hand in tests — and read
//! per packet. A destination whose neighbour is unknown is recorded in a small bounded set of
//! pending resolutions for the control path to resolve (by asking the kernel to ARP/ND for it);
//! the packet is dropped and counted, and the flow's next packet goes through once the neighbour
//! is known. Nothing here blocks or allocates per packet.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use sluice_model::Addr;
use sluice_model::service::IndexHasher;
use sluice_wire::ethernet::Mac;

/// A route: destinations in `prefix/len` go to `via` (or directly, when `via` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Network address (of the same family as the destinations it matches).
    pub prefix: Addr,
    /// Prefix length in bits, counted on the family's own address width.
    pub len: u8,
    /// Gateway, or `None` for a connected network.
    pub via: Option<Addr>,
}

impl Route {
    fn matches(&self, dst: &Addr) -> bool {
        if dst.family() != self.prefix.family() {
            return false;
        }
        let (start, width) = match dst.family() {
            sluice_model::Family::V4 => (12usize, 32u32),
            sluice_model::Family::V6 => (0usize, 128u32),
        };
        let len = u32::from(self.len).min(width) as usize;
        let (full, rem) = (len / 8, len % 8);
        if dst.0[start..start + full] != self.prefix.0[start..start + full] {
            return false;
        }
        rem == 0 || {
            let mask = 0xffu8 << (8 - rem);
            dst.0[start + full] & mask == self.prefix.0[start + full] & mask
        }
    }
}

/// How many unresolved next hops are remembered at once.
pub const PENDING_CAPACITY: usize = 16;

/// Entries of the per-destination resolution cache (direct-mapped).
pub const CACHE_ENTRIES: usize = 1024;

#[derive(Debug, Clone, Copy, Default)]
struct CacheEntry {
    dst: Addr,
    mac: Mac,
    port: u8,
    valid: bool,
}

/// Routes, neighbours and pending resolutions.
///
/// Per packet, [`NextHops::resolve`] is one probe of a direct-mapped cache of destination → MAC;
/// the route walk and the neighbour map are consulted only on a cache miss. Any change of routes
/// or neighbours clears the cache.
#[derive(Debug, Clone)]
pub struct NextHops {
    routes: Vec<(Route, u8)>,
    neighbors: HashMap<(u8, Addr), Mac, BuildHasherDefault<IndexHasher>>,
    pending: [Option<(u8, Addr)>; PENDING_CAPACITY],
    cache: Box<[CacheEntry]>,
}

impl Default for NextHops {
    fn default() -> NextHops {
        NextHops {
            routes: Vec::new(),
            neighbors: HashMap::default(),
            pending: [None; PENDING_CAPACITY],
            cache: vec![CacheEntry::default(); CACHE_ENTRIES].into_boxed_slice(),
        }
    }
}

/// The address as four 32-bit words, each read on its own. The L4 engine builds the address
/// of a verdict with four 4-byte stores (it rewrote the packet's addresses word by word, for
/// the checksums) just before the worker looks its next hop up; a wider load spanning two of
/// those stores cannot be forwarded from the store buffer and waits for them to reach the cache
/// (measured: a fifth of the hot path's time went to two such loads).
#[inline(always)]
fn words(a: &Addr) -> [u32; 4] {
    let b = &a.0;
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

#[inline(always)]
fn cache_slot(w: &[u32; 4]) -> usize {
    let x = u64::from(w[2]) | u64::from(w[3]) << 32;
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(w[0]);
    (h >> 54) as usize & (CACHE_ENTRIES - 1)
}

impl NextHops {
    /// An empty set: every destination is unresolved.
    pub fn new() -> NextHops {
        NextHops::default()
    }

    /// Adds a route of port 0 (control path).
    pub fn add_route(&mut self, r: Route) {
        self.add_route_on(0, r);
    }

    /// Adds a route out of port `port` (control path).
    pub fn add_route_on(&mut self, port: u8, r: Route) {
        self.routes.push((r, port));
        // Longest prefix first, so the first match wins.
        self.routes.sort_by_key(|(r, _)| core::cmp::Reverse(r.len));
        self.clear_cache();
    }

    fn clear_cache(&mut self) {
        self.cache.fill(CacheEntry::default());
    }

    /// Whether every destination `old` resolves is resolved here the same way: the same routes,
    /// and every neighbour of `old` at the same MAC address on the same port (new neighbours
    /// may have come). What the fast path's entries, which carry next hops, need to stay valid.
    pub fn keeps(&self, old: &NextHops) -> bool {
        self.routes == old.routes && old.neighbors.iter().all(|(k, mac)| self.neighbors.get(k) == Some(mac))
    }

    /// Learns or updates a neighbour of port 0 (control path). Clears it from the pending set.
    pub fn set_neighbor(&mut self, ip: Addr, mac: Mac) {
        self.set_neighbor_on(0, ip, mac);
    }

    /// Learns or updates a neighbour on port `port` (control path). Clears it from the pending
    /// set.
    pub fn set_neighbor_on(&mut self, port: u8, ip: Addr, mac: Mac) {
        self.neighbors.insert((port, ip), mac);
        self.clear_cache();
        for p in self.pending.iter_mut() {
            if *p == Some((port, ip)) {
                *p = None;
            }
        }
    }

    /// Learns a neighbour from a packet it sent (an ARP request or neighbour solicitation the
    /// worker answered), so the first reply to a new client need not wait for the kernel, and
    /// lists it as pending so the control path has the kernel resolve it (the next set of next
    /// hops it hands over carries the kernel's answer, which replaces this one).
    ///
    /// Unlike RFC 826's merge step, a request never *changes* a known neighbour: anyone on the
    /// segment can send "who-has VIP tell BACKEND" from their own MAC, and believing it would
    /// divert the backend's traffic to them. Only the kernel's table (which ARP/ND verifies by
    /// asking) updates an entry.
    pub fn learn(&mut self, ip: Addr, mac: Mac) {
        self.learn_on(0, ip, mac);
    }

    /// [`Self::learn`], for a packet that arrived on port `port`.
    pub fn learn_on(&mut self, port: u8, ip: Addr, mac: Mac) {
        if self.neighbors.contains_key(&(port, ip)) {
            return;
        }
        self.neighbors.insert((port, ip), mac);
        self.clear_cache();
        if !self.pending.contains(&Some((port, ip)))
            && let Some(slot) = self.pending.iter_mut().find(|p| p.is_none())
        {
            *slot = Some((port, ip));
        }
    }

    /// The next-hop address for a destination: its gateway, or itself when connected; `None`
    /// without a route.
    #[inline]
    pub fn next_hop(&self, dst: &Addr) -> Option<Addr> {
        self.next_hop_on(dst).map(|(_, a)| a)
    }

    /// [`Self::next_hop`], with the port it is reached through.
    #[inline]
    pub fn next_hop_on(&self, dst: &Addr) -> Option<(u8, Addr)> {
        self.routes.iter().find(|(r, _)| r.matches(dst)).map(|(r, port)| (*port, r.via.unwrap_or(*dst)))
    }

    /// The MAC to send a packet for `dst` to. On a miss, the next hop is remembered as pending.
    #[inline]
    pub fn resolve(&mut self, dst: &Addr) -> Option<Mac> {
        self.resolve_on(dst).map(|(mac, _)| mac)
    }

    /// The MAC to send a packet for `dst` to and the port to send it from. On a miss, the next
    /// hop is remembered as pending.
    #[inline]
    pub fn resolve_on(&mut self, dst: &Addr) -> Option<(Mac, u8)> {
        let w = words(dst);
        let slot = cache_slot(&w);
        let e = &self.cache[slot];
        if e.valid && words(&e.dst) == w {
            return Some((e.mac, e.port));
        }
        self.resolve_slow(dst, slot)
    }

    #[cold]
    fn resolve_slow(&mut self, dst: &Addr, slot: usize) -> Option<(Mac, u8)> {
        let hop = self.next_hop_on(dst)?;
        if let Some(mac) = self.neighbors.get(&hop) {
            self.cache[slot] = CacheEntry { dst: *dst, mac: *mac, port: hop.0, valid: true };
            return Some((*mac, hop.0));
        }
        if !self.pending.contains(&Some(hop))
            && let Some(slot) = self.pending.iter_mut().find(|p| p.is_none())
        {
            *slot = Some(hop);
        }
        None
    }

    /// Next hops waiting for resolution (control path).
    pub fn pending(&self) -> impl Iterator<Item = Addr> + '_ {
        self.pending.iter().flatten().map(|(_, a)| *a)
    }

    /// Next hops waiting for resolution, with the port each is reached through.
    pub fn pending_on(&self) -> impl Iterator<Item = (u8, Addr)> + '_ {
        self.pending.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_gateway() {
        let mut n = NextHops::new();
        n.add_route(Route {
            prefix: Addr::from_v4([0, 0, 0, 0]),
            len: 0,
            via: Some(Addr::from_v4([198, 18, 0, 254])),
        });
        n.add_route(Route { prefix: Addr::from_v4([198, 18, 1, 0]), len: 24, via: None });
        assert_eq!(n.next_hop(&Addr::from_v4([198, 18, 1, 7])), Some(Addr::from_v4([198, 18, 1, 7])));
        assert_eq!(n.next_hop(&Addr::from_v4([198, 19, 5, 5])), Some(Addr::from_v4([198, 18, 0, 254])));
        let v6: Addr = "2001:db8::1".parse::<std::net::IpAddr>().unwrap().into();
        assert_eq!(n.next_hop(&v6), None, "no IPv6 route");
        n.add_route(Route {
            prefix: "2001:db8::".parse::<std::net::IpAddr>().unwrap().into(),
            len: 33,
            via: None,
        });
        assert_eq!(n.next_hop(&v6), Some(v6));
    }

    #[test]
    fn a_request_never_changes_a_known_neighbour() {
        let mut n = NextHops::new();
        n.add_route(Route { prefix: Addr::from_v4([198, 18, 0, 0]), len: 24, via: None });
        let backend = Addr::from_v4([198, 18, 0, 11]);
        let (real, forger) = ([2, 0, 0, 0, 0, 11], [2, 0, 0, 0, 0, 0x66]);
        n.set_neighbor(backend, real);
        n.learn(backend, forger);
        assert_eq!(n.resolve(&backend), Some(real), "the kernel's entry stands");
        // A learned entry is not overwritten by a later request either; the kernel's is.
        let client = Addr::from_v4([198, 18, 0, 2]);
        n.learn(client, real);
        n.learn(client, forger);
        assert_eq!(n.resolve(&client), Some(real));
        n.set_neighbor(client, [2, 0, 0, 0, 0, 2]);
        assert_eq!(n.resolve(&client), Some([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn unresolved_is_pending_until_learned() {
        let mut n = NextHops::new();
        n.add_route(Route { prefix: Addr::from_v4([198, 18, 1, 0]), len: 24, via: None });
        let b = Addr::from_v4([198, 18, 1, 2]);
        assert_eq!(n.resolve(&b), None);
        assert_eq!(n.resolve(&b), None);
        assert_eq!(n.pending().collect::<Vec<_>>(), vec![b], "recorded once");
        n.set_neighbor(b, [2, 0, 0, 0, 1, 2]);
        assert_eq!(n.resolve(&b), Some([2, 0, 0, 0, 1, 2]));
        assert_eq!(n.pending().count(), 0);
    }
}
