//! Stores → the table the gateway forwards from. A pure function: the same stores and
//! configuration give the same table, byte for byte (Services are taken in namespace/name order,
//! LoadBalancer addresses are allocated in that order). Compile reads only checked, typed
//! objects ([`crate::checked`]): it parses and matches no string a check has read.
//!
//! - [`services`]: a Service's table entries. Per Service port (TCP and UDP; SCTP is not
//!   forwarded) and address family, the **frontends**: the ClusterIP; for NodePort and
//!   LoadBalancer Services the node port on the gateway's own addresses; for LoadBalancer
//!   Services their allocated address; `externalIPs`. The **policy**: `sessionAffinity`, the
//!   `sluice.io/scheduler` annotation, and `externalTrafficPolicy: Local`, which gives the
//!   external frontends their own entry — DNAT (the client address kept) to endpoints on this
//!   node only — while the ClusterIP keeps every endpoint under FullNAT.
//! - [`endpoints`]: a Service port's endpoints, from its EndpointSlices, else the Pods its
//!   selector picks, else its v1 Endpoints.
//! - [`allocation`]: LoadBalancer addresses, by MetalLB's rules (`docs/kubernetes.md` §4), and
//!   the addresses IngressClasses are served on.
//! - [`l7`]: the Ingresses of Sluice's class → the L7 half of the table ([`L7Compiled`]);
//!   [`tls`]: TLS Secrets checked. The one input besides the store and the configuration is
//!   the clock, which certificates' expiry is checked against.
//! - here: the [`Compiler`], which keeps each Service's entries between compiles and recompiles
//!   only the Services a change feeds, and the index that finds those Services and their
//!   endpoints without scanning the store.
//!
//! Headless and ExternalName Services have no L4 entry (they matter to Ingress, later).
//!
//! **Collisions**: two Services claiming one frontend (address or node port, port, protocol)
//! cannot both be served. The one created earlier (`metadata.creationTimestamp`; a Service that
//! states one before one that does not), else the first in namespace/name order, keeps it; the
//! other is refused whole, with an error naming both and the frontend, and every other Service is
//! published as usual (`docs/kubernetes.md` §1.2).
//!
//! Not hot path. No `unsafe`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use sluice_model::Addr;
use sluice_model::service::{Generation, MaglevSize, TableSpec};

use sluice_model::service::{ServiceKey, ServiceSpec};

use crate::checked::{AddressRange, EndpointSlice, Endpoints, Named, Pod, Service};
use crate::store::{Changes, Located, Store};

mod allocation;
mod endpoints;
pub mod l7;
mod services;
mod tls;

pub use l7::{HTTP_PORT, HTTPS_PORT, INGRESS_NGINX_CONTROLLER, L7Compiled};
pub use tls::rfc3339;

/// The index's maps: foldhash, several times faster than SipHash on these short string keys, and
/// seeded per process so that labels chosen by whoever may create Pods cannot be made to collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What the gateway node is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// This node's name (for `externalTrafficPolicy: Local`: endpoints on this node only).
    pub node_name: Option<String>,
    /// This node's addresses (where NodePorts answer).
    pub node_addrs: Vec<IpAddr>,
    /// Source addresses for FullNAT (the node addresses when empty).
    pub snat: Vec<IpAddr>,
    /// The `loadBalancerClass` this gateway implements (`None`: Services with no class).
    pub load_balancer_class: Option<String>,
    /// The ranges `spec.externalIPs` may be served from (none: no external IP is).
    pub external_ip_ranges: Vec<AddressRange>,
    /// Serve the IngressClasses of ingress-nginx's controller (`k8s.io/ingress-nginx`) too.
    pub ingress_nginx_class: bool,
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
    /// leader releases the address by clearing what it wrote (`docs/kubernetes.md` §1.1).
    pub release: Vec<String>,
    /// Things an operator should know (a Service without endpoints, a pool exhausted…).
    pub notes: Vec<String>,
    /// What was refused — an address a Service may not have, a Service whose frontend another
    /// holds — each naming where the Service is written, the Service and the field (or both
    /// Services and the frontend); an Ingress backend that cannot answer, a bad TLS Secret (and
    /// the Ingress using it). Everything else is compiled.
    pub errors: Vec<String>,
    /// The addresses each Ingress of Sluice's is served on, by `namespace/name` (what its
    /// `status.loadBalancer.ingress` is to say).
    pub ingress_addresses: BTreeMap<String, Vec<IpAddr>>,
    /// Ingresses (`namespace/name`) no longer served on any address — moved to another class,
    /// their class gone or given no address — whose `status.loadBalancer.ingress` holds an
    /// address of our pools: the leader releases it, as for Services (`release`).
    pub ingress_release: Vec<String>,
    /// Ingresses left alone (another controller's, or of no class), each said once at info
    /// level: not errors.
    pub ignored: Vec<String>,
    /// After an incremental compile ([`Compiler`]) that changed entries in place: the positions
    /// in `spec.services` that differ from the previous compile's (every other entry is equal,
    /// and so are the frontends of these). `None`: take it all as new.
    pub changed: Option<Vec<usize>>,
}

/// Pods by (namespace, label, value), EndpointSlices by (namespace, Service), v1 Endpoints and
/// Services by (namespace, name), and selector Services by (namespace, selector label, value):
/// finding a Service's endpoints costs its own endpoints, not every object in the store (10,000
/// Services over 100,000 Pods would otherwise be a billion label comparisons), and finding the
/// Services a changed Pod feeds costs those Services.
///
/// Keys are hashed (foldhash, seeded per process so that labels chosen by whoever may create Pods
/// cannot be made to collide) and postings are positions in the store: the index owns no strings
/// and outlives one compile. A posting may be stale — a collision, or a position whose object
/// has changed since — so every lookup checks the object it lands on.
#[derive(Default)]
struct Index {
    seed: foldhash::fast::RandomState,
    pods: HashMap<u64, Vec<u32>>,
    slices: HashMap<u64, Vec<u32>>,
    endpoints: HashMap<u64, Vec<u32>>,
    services: HashMap<u64, Vec<u32>>,
    selectors: HashMap<u64, Vec<u32>>,
}

/// Adds `position` to a posting list unless it is there.
fn post(map: &mut HashMap<u64, Vec<u32>>, key: u64, position: usize) {
    let list = map.entry(key).or_default();
    if !list.contains(&(position as u32)) {
        list.push(position as u32);
    }
}

impl Index {
    fn key2(&self, a: &str, b: &str) -> u64 {
        use std::hash::BuildHasher;
        self.seed.hash_one((a, b))
    }

    fn key3(&self, a: &str, b: &str, c: &str) -> u64 {
        use std::hash::BuildHasher;
        self.seed.hash_one((a, b, c))
    }

    fn build(store: &Store) -> Index {
        let mut index = Index::default();
        for i in 0..store.pods.len() {
            index.add_pod(store, i);
        }
        for i in 0..store.endpoint_slices.len() {
            index.add_slice(store, i);
        }
        for (i, e) in store.endpoints.iter().enumerate() {
            let k = index.key2(&e.object.namespace, &e.object.name);
            post(&mut index.endpoints, k, i);
        }
        for (i, s) in store.services.iter().enumerate() {
            let s = &s.object;
            let k = index.key2(&s.namespace, &s.name);
            post(&mut index.services, k, i);
            for (l, v) in &s.selector {
                let k = index.key3(&s.namespace, l, v);
                post(&mut index.selectors, k, i);
            }
        }
        index
    }

    fn add_pod(&mut self, store: &Store, i: usize) {
        let Some(pod) = store.pods.get(i) else { return };
        for (l, v) in &pod.object.labels {
            let k = self.key3(&pod.object.namespace, l, v);
            post(&mut self.pods, k, i);
        }
    }

    fn add_slice(&mut self, store: &Store, i: usize) {
        let Some(slice) = store.endpoint_slices.get(i) else { return };
        if let Some(svc) = &slice.object.service {
            let k = self.key2(&slice.object.namespace, svc);
            post(&mut self.slices, k, i);
        }
    }

    /// The Pods of namespace `ns` whose labels include every pair of `selector` (non-empty):
    /// the shortest posting list of its pairs, checked against the whole selector.
    fn selected<'s>(&self, store: &'s Store, ns: &str, selector: &BTreeMap<String, String>) -> Vec<&'s Pod> {
        let mut shortest: Option<&Vec<u32>> = None;
        for (k, v) in selector {
            let Some(list) = self.pods.get(&self.key3(ns, k, v)) else { return Vec::new() };
            if shortest.is_none_or(|s| list.len() < s.len()) {
                shortest = Some(list);
            }
        }
        shortest
            .into_iter()
            .flatten()
            .filter_map(|&i| store.pods.get(i as usize).map(|l| &l.object))
            .filter(|pod| pod.namespace == ns && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
            .collect()
    }

    /// The EndpointSlices of Service `ns/name`.
    fn slices_of<'s>(&self, store: &'s Store, ns: &str, name: &str) -> Vec<&'s EndpointSlice> {
        let mut v: Vec<(u32, &EndpointSlice)> = self
            .slices
            .get(&self.key2(ns, name))
            .into_iter()
            .flatten()
            .filter_map(|&i| store.endpoint_slices.get(i as usize).map(|l| (i, &l.object)))
            .filter(|(_, s)| s.namespace == ns && s.service.as_deref() == Some(name))
            .collect();
        // Store order, whatever order the postings were made in.
        v.sort_by_key(|(i, _)| *i);
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// The v1 Endpoints object `ns/name`.
    fn endpoints_of<'s>(&self, store: &'s Store, ns: &str, name: &str) -> Option<&'s Endpoints> {
        // The last one of that name, as a map built in store order would keep.
        self.endpoints
            .get(&self.key2(ns, name))
            .into_iter()
            .flatten()
            .filter_map(|&i| store.endpoints.get(i as usize).map(|l| (i, &l.object)))
            .filter(|(_, e)| e.namespace == ns && e.name == name)
            .max_by_key(|(i, _)| *i)
            .map(|(_, e)| e)
    }

    /// Positions of the Services named `ns/name`.
    fn services_named(&self, store: &Store, ns: &str, name: &str) -> Vec<usize> {
        self.services
            .get(&self.key2(ns, name))
            .into_iter()
            .flatten()
            .map(|&i| i as usize)
            .filter(|&i| {
                store.services.get(i).is_some_and(|s| s.object.namespace() == ns && s.object.name() == name)
            })
            .collect()
    }

    /// Positions of the Services whose (non-empty) selector picks a Pod of namespace `ns` with
    /// these labels.
    fn selecting(
        &self,
        store: &Store,
        ns: &str,
        labels: &BTreeMap<String, String>,
        out: &mut BTreeSet<usize>,
    ) {
        for (k, v) in labels {
            for &i in self.selectors.get(&self.key3(ns, k, v)).into_iter().flatten() {
                let Some(s) = store.services.get(i as usize) else { continue };
                let s = &s.object;
                if s.namespace == ns
                    && !s.selector.is_empty()
                    && s.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                {
                    out.insert(i as usize);
                }
            }
        }
    }
}

/// Compiles a store again and again, recompiling only what a change touches: each Service's
/// entries are kept between compiles with the index, and a change to Pods or EndpointSlices
/// (recorded in [`Changes`] by the [`Store`] methods that make it) recompiles the Services
/// selecting the Pod before or after, or owning the slice. The result is the one [`compile`]
/// gives for the same store, entry for entry (tested on random changes).
#[derive(Default)]
pub struct Compiler {
    index: Index,
    /// The configuration of the last compile (another one compiles everything).
    cfg: Option<Config>,
    /// Service positions in namespace/name order.
    order: Vec<u32>,
    /// Service position → its place in `order`.
    place: Vec<u32>,
    /// Each place's entries in `compiled.spec.services`.
    ranges: Vec<std::ops::Range<usize>>,
    /// Each place's notes.
    unit_notes: Vec<Vec<String>>,
    /// Each place's errors.
    unit_errors: Vec<Vec<String>>,
    /// Places whose Service was refused for a collision: no entries, not recompiled.
    refused: Vec<bool>,
    /// Notes about the whole (LoadBalancer allocation).
    global_notes: Vec<String>,
    /// Errors about the whole (allocation, collisions).
    global_errors: Vec<String>,
    /// IngressClass addresses, from the last full compile.
    class_addresses: BTreeMap<String, IpAddr>,
    /// The L7 half's notes and errors.
    l7_notes: Vec<String>,
    l7_errors: Vec<String>,
    snat: Vec<Addr>,
    compiled: Option<Compiled>,
}

impl Compiler {
    /// A compiler that has compiled nothing yet.
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// Compiles `store` after `changes` (all of it the first time, or when the changes or the
    /// configuration say so). `compiled().changed` then names the entries that differ from the
    /// previous compile's, when only some do.
    pub fn compile(
        &mut self,
        store: &Store,
        cfg: &Config,
        generation: Generation,
        changes: &Changes,
    ) -> &Compiled {
        if changes.everything || self.compiled.is_none() || self.cfg.as_ref() != Some(cfg) {
            self.full(store, cfg, generation);
            self.cfg = Some(cfg.clone());
        } else {
            self.incremental(store, cfg, generation, changes);
        }
        self.compiled.as_ref().unwrap_or_else(|| unreachable!("compiled above"))
    }

    /// The last compile's result.
    pub fn compiled(&self) -> Option<&Compiled> {
        self.compiled.as_ref()
    }

    fn full(&mut self, store: &Store, cfg: &Config, generation: Generation) {
        self.index = Index::build(store);
        let mut order: Vec<u32> = (0..store.services.len() as u32).collect();
        order.sort_by_cached_key(|&i| store.services[i as usize].object.key());
        let mut place = vec![0u32; store.services.len()];
        for (p, &i) in order.iter().enumerate() {
            place[i as usize] = p as u32;
        }
        let services: Vec<&Service> = order.iter().map(|&i| &store.services[i as usize].object).collect();
        let mut global_notes = Vec::new();
        let mut ignored = Vec::new();
        let selected = l7::select(store, cfg, &mut ignored);
        let asks = l7::class_asks(store, cfg, &selected);
        let allocated = allocation::allocate(store, cfg, &services, &asks, &mut global_notes);
        let at: Vec<String> = order.iter().map(|&i| located(&store.services[i as usize])).collect();
        let place_of: BTreeMap<String, usize> =
            services.iter().enumerate().map(|(p, s)| (s.key(), p)).collect();
        let mut global_errors: Vec<String> = allocated
            .errors
            .iter()
            .map(|(key, e)| format!("{}: {e}", place_of.get(key).map_or(key.as_str(), |&p| at[p].as_str())))
            .collect();
        global_errors.extend(allocated.class_errors.iter().map(|(class, e)| {
            format!("IngressClass {class}: {e}; its Ingresses have no address to be served on")
        }));
        self.snat = if cfg.snat.is_empty() { &cfg.node_addrs } else { &cfg.snat }
            .iter()
            .map(|a| Addr::from(*a))
            .collect();
        let mut units = Vec::with_capacity(services.len());
        let mut unit_notes = Vec::with_capacity(services.len());
        let mut unit_errors = Vec::with_capacity(services.len());
        for (p, s) in services.iter().enumerate() {
            let (mut specs, mut notes, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            let unit = services::Unit { index: &self.index, store, cfg, snat: &self.snat };
            unit.compile(s, &at[p], &allocated.addresses, &mut specs, &mut notes, &mut errors);
            units.push(specs);
            unit_notes.push(notes);
            unit_errors.push(errors);
        }
        let refused = collisions(&services, &at, &units, &mut global_errors);
        let mut specs = Vec::new();
        let mut ranges = Vec::with_capacity(services.len());
        for (unit, refused) in units.into_iter().zip(&refused) {
            let start = specs.len();
            if !refused {
                specs.extend(unit);
            }
            ranges.push(start..specs.len());
        }
        (self.order, self.place, self.ranges, self.refused) = (order, place, ranges, refused);
        (self.unit_notes, self.global_notes) = (unit_notes, global_notes);
        (self.unit_errors, self.global_errors) = (unit_errors, global_errors);
        let l7 = l7::compile(store, &self.index, &selected, &allocated.classes, now_unix_s());
        let ingress_release =
            allocation::ingress_releases(store, &allocated.addresses, &l7.ingress_addresses);
        (self.l7_notes, self.l7_errors) = (l7.notes, l7.errors);
        self.class_addresses = allocated.classes;
        self.compiled = Some(Compiled {
            spec: TableSpec {
                generation,
                services: specs,
                node_addrs: cfg.node_addrs.iter().map(|a| Addr::from(*a)).collect(),
                maglev_size: MaglevSize::Auto,
                l7: Arc::new(l7.table),
            },
            load_balancers: allocated.addresses,
            release: allocated.release,
            notes: Vec::new(),
            errors: Vec::new(),
            ingress_addresses: l7.ingress_addresses,
            ingress_release,
            ignored,
            changed: None,
        });
        self.gather_notes();
    }

    /// The positions of the Services that `changes` feed, with the index brought up to them.
    fn affected(&mut self, store: &Store, changes: &Changes) -> BTreeSet<usize> {
        let mut affected = BTreeSet::new();
        for (position, before) in &changes.pods {
            if let Some((ns, labels)) = before {
                self.index.selecting(store, ns, labels, &mut affected);
            }
            if let Some(pod) = store.pods.get(*position) {
                self.index.add_pod(store, *position);
                self.index.selecting(store, &pod.object.namespace, &pod.object.labels, &mut affected);
            }
        }
        for &position in &changes.slices {
            self.index.add_slice(store, position);
        }
        for (ns, name) in &changes.services {
            affected.extend(self.index.services_named(store, ns, name));
        }
        affected
    }

    fn incremental(&mut self, store: &Store, cfg: &Config, generation: Generation, changes: &Changes) {
        let affected = self.affected(store, changes);
        let Some(compiled) = self.compiled.as_mut() else { return };
        let mut places: Vec<usize> = affected.into_iter().map(|i| self.place[i] as usize).collect();
        places.sort_unstable();
        let mut changed = Some(Vec::new());
        for place in places {
            if self.refused[place] {
                // Its frontends are another's: an endpoint change does not bring it back.
                continue;
            }
            let located_service = &store.services[self.order[place] as usize];
            let (mut specs, mut notes, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            let unit = services::Unit { index: &self.index, store, cfg, snat: &self.snat };
            let at = located(located_service);
            unit.compile(
                &located_service.object,
                &at,
                &compiled.load_balancers,
                &mut specs,
                &mut notes,
                &mut errors,
            );
            self.unit_notes[place] = notes;
            self.unit_errors[place] = errors;
            let range = self.ranges[place].clone();
            let old = &mut compiled.spec.services;
            if range.len() == specs.len() {
                for (j, spec) in specs.into_iter().enumerate() {
                    if old[range.start + j] != spec {
                        old[range.start + j] = spec;
                        if let Some(c) = changed.as_mut() {
                            c.push(range.start + j);
                        }
                    }
                }
            } else {
                // The Service has more or fewer entries (a family appeared or went): the
                // entries after it move.
                let delta = specs.len() as isize - range.len() as isize;
                self.ranges[place] = range.start..range.start + specs.len();
                old.splice(range, specs);
                for r in &mut self.ranges[place + 1..] {
                    *r = (r.start as isize + delta) as usize..(r.end as isize + delta) as usize;
                }
                changed = None;
            }
        }
        compiled.spec.generation = generation;
        compiled.changed = changed;
        // The L7 half again, whole: its upstreams are endpoints too, and it is small beside L4.
        let mut ignored = Vec::new();
        let selected = l7::select(store, cfg, &mut ignored);
        let l7 = l7::compile(store, &self.index, &selected, &self.class_addresses, now_unix_s());
        if *compiled.spec.l7 != l7.table {
            compiled.spec.l7 = Arc::new(l7.table);
        }
        (compiled.ingress_addresses, compiled.ignored) = (l7.ingress_addresses, ignored);
        (self.l7_notes, self.l7_errors) = (l7.notes, l7.errors);
        self.gather_notes();
    }

    fn gather_notes(&mut self) {
        let Some(compiled) = self.compiled.as_mut() else { return };
        compiled.notes = self
            .global_notes
            .iter()
            .chain(self.unit_notes.iter().flatten())
            .chain(&self.l7_notes)
            .cloned()
            .collect();
        compiled.errors = self
            .global_errors
            .iter()
            .chain(self.unit_errors.iter().flatten())
            .chain(&self.l7_errors)
            .cloned()
            .collect();
    }
}

/// The time TLS certificates' expiry is checked against: now.
fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where a Service is written and which it is: `file:line: Service namespace/name` (a cluster's
/// objects have no file: `Service namespace/name`).
fn located(l: &Located<Service>) -> String {
    match l.line {
        0 => format!("Service {}", l.object.key()),
        line => format!("{}:{line}: Service {}", l.file.display(), l.object.key()),
    }
}

/// Finds the Services (by place) whose entries `units` claim a frontend another Service holds:
/// the Services are taken oldest first (a stated `creationTimestamp` before none, then
/// namespace/name order: the places' order), each keeping its frontends unless one is held
/// already, in which case it is refused whole and an error names both. A Service that claims one
/// frontend in two of its own entries (an external IP equal to its cluster IP under
/// `externalTrafficPolicy: Local`, say) is refused too: the table cannot tell them apart.
fn collisions(
    services: &[&Service],
    at: &[String],
    units: &[Vec<ServiceSpec>],
    errors: &mut Vec<String>,
) -> Vec<bool> {
    let mut precedence: Vec<usize> = (0..services.len()).collect();
    // Stable: equal times keep namespace/name order.
    precedence.sort_by_key(|&p| (services[p].created.is_none(), services[p].created));
    let mut holder: HashMap<ServiceKey, usize> = HashMap::default();
    let mut refused = vec![false; services.len()];
    for p in precedence {
        let mut own: HashMap<ServiceKey, usize> = HashMap::default();
        let mut clash = None;
        'entries: for (e, spec) in units[p].iter().enumerate() {
            for k in &spec.frontends {
                if let Some(&q) = holder.get(k) {
                    clash = Some((*k, Some(q)));
                    break 'entries;
                }
                if own.insert(*k, e).is_some_and(|other| other != e) {
                    clash = Some((*k, None));
                    break 'entries;
                }
            }
        }
        match clash {
            None => holder.extend(own.into_keys().map(|k| (k, p))),
            Some((k, Some(q))) => {
                refused[p] = true;
                let (a, b) = (services[q], services[p]);
                let why = match (a.created, b.created) {
                    (Some(x), Some(y)) if x < y => "created earlier",
                    (Some(_), None) => "its creation time is stated",
                    _ => "first in namespace/name order",
                };
                errors.push(format!(
                    "{}: frontend {k} is already Service {}'s ({}; it keeps it: {why}): Service {} is \
                     refused, every other Service is published",
                    at[p],
                    a.key(),
                    at[q],
                    b.key()
                ));
            }
            Some((k, None)) => {
                refused[p] = true;
                errors.push(format!(
                    "{}: frontend {k} is claimed twice by this Service's own entries (an external or \
                     LoadBalancer address equal to its cluster IP?): refused",
                    at[p]
                ));
            }
        }
    }
    refused
}

/// Compiles the stores. See the module documentation.
pub fn compile(store: &Store, cfg: &Config, generation: Generation) -> Compiled {
    let mut c = Compiler::new();
    c.compile(store, cfg, generation, &Changes::everything());
    c.compiled.take().unwrap_or_else(|| unreachable!("compiled above"))
}
