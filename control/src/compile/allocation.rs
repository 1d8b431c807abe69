//! LoadBalancer addresses for every LoadBalancer Service of our class, by MetalLB's rules
//! (`docs/kubernetes.md` §4), in this order:
//!
//! 1. **held**: an address a Service's `status` already holds stays its own (unless the Service
//!    now asks for others, or the address is no longer in a pool or is taken);
//! 2. **asked**: `metallb.io/loadBalancerIPs`, else `spec.loadBalancerIP` — a Service whose ask
//!    cannot be had gets no other address;
//! 3. **auto-assigned**: the rest, in name order, the first free address of the first
//!    auto-assigning pool with room, or of the pool `metallb.io/address-pool` names;
//! 4. **released**: Services holding an address of our pools that are no longer ours to serve;
//! 5. **IngressClasses** of Sluice's with at least one Ingress, after every Service (so that
//!    Ingresses never move a Service's address): the address the class names
//!    (`sluice.io/ingress-address`), else the first free address of the pool it names
//!    (`metallb.io/address-pool`), else of the first auto-assigning pool with room. In manifest
//!    mode, where no status holds an address, a class that names none takes the first one left
//!    after the Services: pin it with the annotation to keep it when Services are added.
//! 6. **Ingresses released** ([`ingress_releases`]): Ingresses served on no address (their class
//!    is not Sluice's any more, or is gone, or got no address) whose status holds an address of
//!    our pools that no LoadBalancer Service has — what Sluice wrote there. An address a Service
//!    of ours has is left alone: it is what another Ingress controller fronted by that Service
//!    (ingress-nginx's `--publish-service`) writes to its own Ingresses.
//!
//! An address of the node's own (`--node-address`) is never given, even from a pool that holds
//! it: node addresses serve NodePorts only. A Service that holds or asks for one is refused it
//! with an error naming the field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::Config;
use crate::checked::{LB_IPS_ANNOTATION, POOL_ANNOTATION, Pool, Service, ServiceType};
use crate::store::Store;

/// What allocation decided.
pub(super) struct Allocated {
    /// LoadBalancer addresses by `namespace/name`.
    pub(super) addresses: BTreeMap<String, Vec<IpAddr>>,
    /// Services (`namespace/name`) whose address is to be released.
    pub(super) release: Vec<String>,
    /// Addresses refused: (`namespace/name`, `field: what is wrong`).
    pub(super) errors: Vec<(String, String)>,
    /// IngressClass addresses by class name.
    pub(super) classes: BTreeMap<String, IpAddr>,
    /// IngressClass addresses refused: (class name, what is wrong).
    pub(super) class_errors: Vec<(String, String)>,
}

/// An IngressClass to serve: its name, the address it names, the pool it names.
pub(super) struct ClassAsk<'a> {
    pub(super) name: &'a str,
    pub(super) address: Option<IpAddr>,
    pub(super) pool: Option<&'a str>,
}

/// Allocates the addresses of `services` (in namespace/name order) from the store's pools.
pub(super) fn allocate(
    store: &Store,
    cfg: &Config,
    services: &[&Service],
    classes: &[ClassAsk<'_>],
    notes: &mut Vec<String>,
) -> Allocated {
    let ours: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| {
            s.service_type == ServiceType::LoadBalancer && s.load_balancer_class == cfg.load_balancer_class
        })
        .collect();
    let mut a = Allocation {
        pools: Pools::new(store),
        node_addrs: &cfg.node_addrs,
        // Node addresses are never free.
        taken: cfg.node_addrs.iter().copied().collect(),
        out: BTreeMap::new(),
        refused: BTreeSet::new(),
        notes,
        errors: Vec::new(),
    };
    a.keep_held(&ours);
    a.grant_asks(&ours);
    a.auto_assign(&ours);
    let release = a.releases(services);
    let (classes, class_errors) = a.classes(classes);
    Allocated { addresses: a.out, release, errors: a.errors, classes, class_errors }
}

/// The Ingresses (`namespace/name`) to release, in store order: those not `served` whose status
/// holds an address of the store's pools that no Service is `assigned`. Releasing clears only
/// what Sluice's field manager wrote, so a wrong guess costs one write, never another writer's
/// address.
pub(super) fn ingress_releases(
    store: &Store,
    assigned: &BTreeMap<String, Vec<IpAddr>>,
    served: &BTreeMap<String, Vec<IpAddr>>,
) -> Vec<String> {
    let pools = Pools::new(store);
    let services: BTreeSet<IpAddr> = assigned.values().flatten().copied().collect();
    store
        .ingresses
        .iter()
        .map(|l| &l.object)
        .filter(|i| i.status_ips.iter().any(|a| pools.hold(*a) && !services.contains(a)))
        .map(|i| i.key())
        .filter(|k| !served.contains_key(k))
        .collect()
}

/// MetalLB's `avoidBuggyIPs`: an IPv4 address ending in .0 or .255 (old clients take them for
/// network or broadcast addresses).
fn buggy(a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

/// The address pools, in name order.
struct Pools<'a>(Vec<&'a Pool>);

impl<'a> Pools<'a> {
    fn new(store: &'a Store) -> Pools<'a> {
        let mut pools: Vec<&Pool> = store.pools.iter().map(|l| &l.object).collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Pools(pools)
    }

    /// Whether a pool may give `a`.
    fn hold(&self, a: IpAddr) -> bool {
        self.0.iter().any(|p| !(p.avoid_buggy_ips && buggy(a)) && p.ranges.iter().any(|r| r.contains(a)))
    }

    fn named(&self, name: &str) -> Option<&Pool> {
        self.0.iter().copied().find(|p| p.name == name)
    }

    /// The first address not `taken` of the pool `named`, else of the auto-assigning pools.
    fn free(&self, named: Option<&str>, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        self.0
            .iter()
            .filter(|p| named.map_or(p.auto_assign, |want| want == p.name))
            .flat_map(|p| p.ranges.iter().map(move |r| (r, p.avoid_buggy_ips)))
            // Lazily: fewer addresses than are taken are passed over before a free one, however
            // vast an IPv6 range is.
            .find_map(|(r, avoid)| r.addresses().find(|a| !(taken.contains(a) || (avoid && buggy(*a)))))
    }
}

/// An allocation under way.
struct Allocation<'a, 'n> {
    pools: Pools<'a>,
    node_addrs: &'a [IpAddr],
    taken: BTreeSet<IpAddr>,
    out: BTreeMap<String, Vec<IpAddr>>,
    /// Services whose ask could not be had: they get no other address.
    refused: BTreeSet<String>,
    notes: &'n mut Vec<String>,
    errors: Vec<(String, String)>,
}

impl Allocation<'_, '_> {
    /// Gives `a` (from `field`) to `s` if a pool holds it, nobody has it and it is no node's.
    fn claim(&mut self, s: &Service, field: &str, a: IpAddr) -> bool {
        let key = s.key();
        if self.node_addrs.contains(&a) {
            self.errors.push((
                key,
                format!(
                    "{field}: {a} is an address of this node (--node-address), which serves NodePorts \
                     only: not assigned"
                ),
            ));
            false
        } else if !self.pools.hold(a) {
            self.notes.push(format!(
                "Service {key}: LoadBalancer address {a} is in no IPAddressPool; not assigned"
            ));
            false
        } else if !self.taken.insert(a) {
            self.notes.push(format!("Service {key}: LoadBalancer address {a} is already taken"));
            false
        } else {
            self.out.entry(key).or_default().push(a);
            true
        }
    }

    /// Held addresses stay, unless the Service now asks for others.
    fn keep_held(&mut self, ours: &[&Service]) {
        for s in ours {
            let same_ask = s.asked_ips().is_none_or(|mut asked| {
                let mut held = s.status_ips.clone();
                asked.sort();
                held.sort();
                asked == held
            });
            if same_ask {
                for &a in &s.status_ips {
                    // An address no longer valid (pool changed, conflict) is given up for a new one.
                    self.claim(s, "status.loadBalancer.ingress", a);
                }
            }
        }
    }

    /// Explicit asks, all or nothing.
    fn grant_asks(&mut self, ours: &[&Service]) {
        for s in ours {
            if self.out.contains_key(&s.key()) {
                continue;
            }
            if let Some(asked) = s.asked_ips() {
                let field = match s.load_balancer_ips {
                    Some(_) => format!("metadata.annotations[{LB_IPS_ANNOTATION}]"),
                    None => "spec.loadBalancerIP".to_owned(),
                };
                let mut all = !asked.is_empty();
                for a in asked {
                    all &= self.claim(s, &field, a);
                }
                if !all {
                    self.refused.insert(s.key());
                }
            }
        }
    }

    /// The rest, from the pool they name or the auto-assigning pools.
    fn auto_assign(&mut self, ours: &[&Service]) {
        for s in ours {
            let key = s.key();
            if self.out.contains_key(&key) || self.refused.contains(&key) {
                continue;
            }
            let named = s.address_pool.as_deref();
            if let Some(name) = named
                && self.pools.named(name).is_none()
            {
                self.notes.push(format!("Service {key}: {POOL_ANNOTATION}: no IPAddressPool named {name:?}"));
                continue;
            }
            match self.pools.free(named, &self.taken) {
                Some(a) => {
                    self.taken.insert(a);
                    self.out.insert(key, vec![a]);
                }
                None => self
                    .notes
                    .push(format!("Service {key}: no free LoadBalancer address in any IPAddressPool")),
            }
        }
    }

    /// IngressClasses, in name order, after every Service.
    fn classes(&mut self, classes: &[ClassAsk<'_>]) -> (BTreeMap<String, IpAddr>, Vec<(String, String)>) {
        let (mut out, mut errors) = (BTreeMap::new(), Vec::new());
        for c in classes {
            let got = match (c.address, c.pool) {
                (Some(a), _) => {
                    let field =
                        format!("metadata.annotations[{}]", crate::checked::INGRESS_ADDRESS_ANNOTATION);
                    if self.node_addrs.contains(&a) {
                        Err(format!("{field}: {a} is an address of this node, which serves NodePorts only"))
                    } else if !self.pools.hold(a) {
                        Err(format!("{field}: {a} is in no IPAddressPool"))
                    } else if !self.taken.insert(a) {
                        Err(format!("{field}: {a} is already a LoadBalancer Service's"))
                    } else {
                        Ok(a)
                    }
                }
                (None, Some(name)) if self.pools.named(name).is_none() => {
                    Err(format!("metadata.annotations[{POOL_ANNOTATION}]: no IPAddressPool named {name:?}"))
                }
                (None, pool) => match self.pools.free(pool, &self.taken) {
                    Some(a) => {
                        self.taken.insert(a);
                        Ok(a)
                    }
                    None => Err("no free LoadBalancer address in any IPAddressPool".to_owned()),
                },
            };
            match got {
                Ok(a) => {
                    out.insert(c.name.to_owned(), a);
                }
                Err(e) => errors.push((c.name.to_owned(), e)),
            }
        }
        (out, errors)
    }

    /// Services given no address whose status holds one of our pools'.
    fn releases(&self, services: &[&Service]) -> Vec<String> {
        services
            .iter()
            .filter(|s| !self.out.contains_key(&s.key()))
            .filter(|s| s.status_ips.iter().any(|a| self.pools.hold(*a)))
            .map(|s| s.key())
            .collect()
    }
}
