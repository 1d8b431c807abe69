//! L2 mode (docs/l2.md): of the gateway nodes on one segment, exactly one answers ARP requests
//! and neighbour solicitations for each VIP an `L2Advertisement` covers, and another takes over,
//! announcing the VIP with gratuitous ARP / unsolicited neighbour advertisements, when it dies.
//!
//! - here: which VIPs are in L2 mode and which of them this node may announce (its
//!   *candidates*: an advertisement that applies to this node and its interface selects the
//!   VIP's pool, and the VIP has an endpoint for new flows here), and the per-VIP role the table
//!   carries to the gateway ([`sluice_model::service::L2Role`]): active for the VIPs the election
//!   gave this node, standby for the others.
//! - [`peers`]: the election in manifest mode, a small authenticated heartbeat protocol between
//!   the nodes' control processes over UDP.
//! - [`lease`]: the election in cluster mode, one Kubernetes Lease per VIP.
//!
//! Both elections hand [`Published`](crate::publish::Published) the set of VIPs this node holds;
//! publishing a table sets each L2 VIP's role from it. A VIP in no L2 mode has no role and is
//! answered for as without L2 mode (a single gateway).
//!
//! **Known limits.** The addresses Ingresses are served on are the kernel's (the L7 stage puts
//! them on the interface), so the kernel answers ARP for them on every node: they are not in L2
//! mode. A control process that dies while its gateway lives leaves the last table's roles in
//! place: its VIPs are answered by two nodes from when the other node takes over (its peer's
//! heartbeats, or its Lease, stop) until control is back (the unit restarts it at once; a new
//! control publishes every VIP on standby until the election says otherwise).
//!
//! Not hot path. No `unsafe`.

pub mod lease;
pub mod peers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sluice_model::Addr;
use sluice_model::service::L2Role;

use crate::store::Store;

/// The VIPs in L2 mode of one publication, and those this node may announce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Vips {
    /// Every LoadBalancer address an L2Advertisement selects.
    pub vips: BTreeSet<IpAddr>,
    /// Those this node contends for.
    pub candidates: BTreeSet<IpAddr>,
    /// Advertisements this node cannot honour, each naming the object and field.
    pub errors: Vec<String>,
}

/// This node's L2 settings and the election's result, kept with what control published.
#[derive(Debug, Clone, Default)]
pub struct L2State {
    /// This node's name (node selectors name it).
    pub node: Option<String>,
    /// The gateway's client-facing interface (`--l2-interface`), which an advertisement's
    /// `interfaces` must list for this node to announce from it.
    pub interface: Option<String>,
    /// Whether an election runs (manifest mode: `--l2-listen`; cluster mode: always). Without
    /// one, an L2Advertisement is an error and its VIPs are answered for as without L2 mode.
    pub elected: bool,
    /// The VIPs the election gave this node.
    pub active: BTreeSet<IpAddr>,
    /// What the last publication found.
    pub vips: L2Vips,
}

/// Which of `assigned` (LoadBalancer addresses) are in L2 mode, and which of those this node
/// (`node`, announcing on `interface`) may announce: selected by an advertisement that applies
/// to it, and with an endpoint for new flows here (`served`: a VIP of a Service with
/// `externalTrafficPolicy: Local` and no endpoint on this node is announced from another, as
/// MetalLB does).
pub fn l2_vips<'a>(
    store: &Store,
    node: Option<&str>,
    interface: Option<&str>,
    assigned: impl IntoIterator<Item = &'a IpAddr>,
    served: &BTreeSet<IpAddr>,
) -> L2Vips {
    let mut out = L2Vips::default();
    if store.l2_advertisements.is_empty() {
        return out;
    }
    let pool_of = |a: IpAddr| {
        store.pools.iter().find(|p| p.object.ranges.iter().any(|r| r.contains(a))).map(|p| &p.object.name)
    };
    // Which advertisements apply to this node, and why one cannot be honoured.
    let mut here = Vec::new();
    for l in &store.l2_advertisements {
        let a = &l.object;
        let on_node = a.nodes.as_ref().is_none_or(|n| node.is_some_and(|me| n.iter().any(|x| x == me)));
        let on_interface = match (a.interfaces.is_empty(), interface) {
            (true, _) => true,
            (false, Some(i)) => a.interfaces.iter().any(|x| x == i),
            (false, None) => {
                out.errors.push(format!(
                    "L2Advertisement {}/{}: spec.interfaces: this node cannot tell whether its gateway's \
                     interface is listed; give control --l2-interface (the gateway's --iface)",
                    a.namespace, a.name
                ));
                false
            }
        };
        here.push(on_node && on_interface);
    }
    for &vip in assigned {
        let pool = pool_of(vip);
        let selects = |a: &crate::checked::L2Advertisement| {
            a.pools.is_empty() || pool.is_some_and(|p| a.pools.iter().any(|x| x == p))
        };
        let mut selected = false;
        for (l, &applies) in store.l2_advertisements.iter().zip(&here) {
            if selects(&l.object) {
                selected = true;
                if applies && served.contains(&vip) {
                    out.candidates.insert(vip);
                }
            }
        }
        if selected {
            out.vips.insert(vip);
        }
    }
    out
}

/// Each L2 VIP's role on this node: active for those the election gave it (and it contends
/// for), standby for the others. Without an election, none (and an error in `l2`).
pub fn roles(l2: &mut L2Vips, state: &L2State) -> BTreeMap<Addr, L2Role> {
    if !state.elected {
        if !l2.vips.is_empty() {
            l2.errors.push(format!(
                "L2Advertisement: {} VIP(s) in L2 mode but no election: give --l2-listen, --l2-peer and \
                 --l2-key (docs/l2.md); until then this node answers for them as a single gateway",
                l2.vips.len()
            ));
        }
        return BTreeMap::new();
    }
    let active = &state.active;
    l2.vips
        .iter()
        .map(|&v| {
            let role = if l2.candidates.contains(&v) && active.contains(&v) {
                L2Role::Active
            } else {
                L2Role::Standby
            };
            (Addr::from(v), role)
        })
        .collect()
}

/// Where node `node` ranks for `vip` among the candidates: MetalLB's order, SHA-256 of
/// `node#vip`, lowest first. Every node computes the same order, so that without a holder the
/// first alive candidate takes the VIP, and VIPs spread over the nodes.
pub fn rank(node: &str, vip: IpAddr) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{node}#{vip}").as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checked::{AddressRange, L2Advertisement, Pool};
    use crate::store::Located;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn located<T>(object: T) -> Located<T> {
        Located { object, file: "test.yaml".into(), line: 1 }
    }

    fn store(advs: Vec<L2Advertisement>) -> Store {
        let pool = |name: &str, range: &str| Pool {
            namespace: "metallb-system".into(),
            name: name.into(),
            ranges: vec![range.parse::<AddressRange>().unwrap()],
            auto_assign: true,
            avoid_buggy_ips: false,
        };
        Store {
            pools: vec![located(pool("edge", "198.18.100.0/24")), located(pool("core", "198.18.101.0/24"))],
            l2_advertisements: advs.into_iter().map(located).collect(),
            ..Store::default()
        }
    }

    fn adv(pools: &[&str], nodes: Option<&[&str]>, interfaces: &[&str]) -> L2Advertisement {
        L2Advertisement {
            namespace: "metallb-system".into(),
            name: "l2".into(),
            pools: pools.iter().map(|p| p.to_string()).collect(),
            nodes: nodes.map(|n| n.iter().map(|x| x.to_string()).collect()),
            interfaces: interfaces.iter().map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn the_advertisements_choose_the_vips_and_the_nodes_that_may_announce_them() {
        let assigned = [ip("198.18.100.10"), ip("198.18.101.10"), ip("198.18.102.10")];
        let served: BTreeSet<IpAddr> = assigned.iter().copied().collect();
        // No advertisement: no VIP in L2 mode (today's behaviour).
        let none = l2_vips(&store(vec![]), Some("gw-1"), None, &assigned, &served);
        assert!(none.vips.is_empty() && none.candidates.is_empty());
        // edge's addresses, from gw-1 only.
        let s = store(vec![adv(&["edge"], Some(&["gw-1"]), &[])]);
        let gw1 = l2_vips(&s, Some("gw-1"), None, &assigned, &served);
        assert_eq!(gw1.vips, [ip("198.18.100.10")].into());
        assert_eq!(gw1.candidates, [ip("198.18.100.10")].into());
        let gw2 = l2_vips(&s, Some("gw-2"), None, &assigned, &served);
        assert_eq!((gw2.vips.len(), gw2.candidates.len()), (1, 0), "in L2 mode, but not gw-2's to announce");
        // Every pool (an address of no pool too); a VIP without an endpoint here is not contended for.
        let s = store(vec![adv(&[], None, &[])]);
        let served_two: BTreeSet<IpAddr> = assigned[..2].iter().copied().collect();
        let all = l2_vips(&s, Some("gw-1"), None, &assigned, &served_two);
        assert_eq!(all.vips.len(), 3);
        assert_eq!(all.candidates, served_two);
        // Interfaces: the gateway's must be listed; unknown, the advertisement is an error.
        let s = store(vec![adv(&["edge"], None, &["eth1"])]);
        assert_eq!(l2_vips(&s, Some("gw-1"), Some("eth1"), &assigned, &served).candidates.len(), 1);
        assert!(l2_vips(&s, Some("gw-1"), Some("eth0"), &assigned, &served).candidates.is_empty());
        let unknown = l2_vips(&s, Some("gw-1"), None, &assigned, &served);
        assert!(unknown.candidates.is_empty());
        assert!(
            unknown.errors[0].starts_with("L2Advertisement metallb-system/l2: spec.interfaces:"),
            "{unknown:?}"
        );
    }

    #[test]
    fn a_vip_is_active_only_where_the_election_and_the_candidacy_agree() {
        let l2 = L2Vips {
            vips: [ip("198.18.100.10"), ip("198.18.100.11"), ip("198.18.100.12")].into(),
            candidates: [ip("198.18.100.10"), ip("198.18.100.11")].into(),
            errors: vec![],
        };
        // The election gave .10 and .12 (.12 no longer a candidate: not active).
        let state = L2State {
            elected: true,
            active: [ip("198.18.100.10"), ip("198.18.100.12")].into(),
            ..L2State::default()
        };
        let mut l2 = l2;
        let r = roles(&mut l2, &state);
        let role = |s: &str| r[&Addr::from(ip(s))];
        assert_eq!(
            (role("198.18.100.10"), role("198.18.100.11"), role("198.18.100.12")),
            (L2Role::Active, L2Role::Standby, L2Role::Standby)
        );
        assert_eq!(r.len(), 3);
        // No election: no roles (answered as a single gateway), and an error saying so.
        let r = roles(&mut l2, &L2State::default());
        assert!(r.is_empty());
        assert!(l2.errors[0].contains("no election"), "{:?}", l2.errors);
    }

    #[test]
    fn the_rank_is_metallbs_order_and_spreads_vips() {
        // Deterministic, and differs by VIP: over 64 VIPs, each of two nodes ranks first for some.
        assert_eq!(rank("gw-1", ip("198.18.100.10")), rank("gw-1", ip("198.18.100.10")));
        let firsts = (0..64u8)
            .filter(|i| {
                let v = IpAddr::from([198, 18, 100, *i]);
                rank("gw-1", v) < rank("gw-2", v)
            })
            .count();
        assert!((10..54).contains(&firsts), "{firsts} of 64");
    }
}
