//! Stores → the table the gateway forwards from. A pure function: the same stores and
//! configuration give the same table, byte for byte (Services are taken in namespace/name order,
//! LoadBalancer addresses are allocated in that order).
//!
//! Per Service port (TCP and UDP; SCTP is not forwarded) and address family:
//! - **frontends**: the ClusterIP; for NodePort and LoadBalancer Services the node port on the
//!   gateway's own addresses; for LoadBalancer Services the address from `status` (a cluster
//!   dump), else `loadBalancerIP`, else the next free address of an `IPAddressPool`;
//!   `externalIPs`.
//! - **endpoints**: the EndpointSlices labelled `kubernetes.io/service-name` with the Service's
//!   name, matched by port name, when there are any (in a cluster there always are: the endpoint
//!   controller writes them); else, for a Service with a selector, the Pods it selects, as the
//!   endpoint controller would derive them (ready = the Pod's Ready condition and not being
//!   deleted; a named `targetPort` resolved against the Pod's container ports); else its v1
//!   Endpoints object.
//! - **policy**: `sessionAffinity`, the `sluice.io/scheduler` annotation, and
//!   `externalTrafficPolicy: Local`, which gives the external frontends their own entry — DNAT
//!   (the client address kept) to endpoints on this node only — while the ClusterIP keeps every
//!   endpoint under FullNAT.
//!
//! Headless and ExternalName Services have no L4 entry (they matter to Ingress, later).

use std::collections::{BTreeMap, BTreeSet};

/// The index's maps: foldhash, several times faster than SipHash on these short string keys, and
/// seeded per process so that labels chosen by whoever may create Pods cannot be made to collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::net::IpAddr;

use sluice_model::Addr;
use sluice_model::Family;
use sluice_model::service::{
    Affinity, BackendSpec, Conditions, Frontend, Generation, MaglevSize, NatMode, Protocol, Scheduler,
    ServiceKey, ServiceSpec, TableSpec,
};

use crate::load::{Located, Store};
use crate::objects::{EndpointSlice, Endpoints, IntOrString, Pod, Service, ServicePort};

/// The annotation that selects a Service's scheduler.
pub const SCHEDULER_ANNOTATION: &str = "sluice.io/scheduler";

/// MetalLB's annotation asking for given LoadBalancer addresses (comma-separated; one per family).
pub const LB_IPS_ANNOTATION: &str = "metallb.io/loadBalancerIPs";

/// MetalLB's annotation naming the IPAddressPool to allocate from.
pub const POOL_ANNOTATION: &str = "metallb.io/address-pool";

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
    /// leader releases the address by clearing what it wrote (KUBERNETES.md §1.1).
    pub release: Vec<String>,
    /// Things an operator should know (a Service without endpoints, a pool exhausted…).
    pub notes: Vec<String>,
    /// After an incremental compile ([`Compiler`]) that changed entries in place: the positions
    /// in `spec.services` that differ from the previous compile's (every other entry is equal,
    /// and so are the frontends of these). `None`: take it all as new.
    pub changed: Option<Vec<usize>>,
}

/// Parses a pool entry: an address, a CIDR or an inclusive range `a-b`.
pub fn parse_range(s: &str) -> Option<(IpAddr, IpAddr)> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (a.is_ipv4() == b.is_ipv4() && to_u128(a) <= to_u128(b)).then_some((a, b));
    }
    if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().ok()?;
        let len: u32 = len.parse().ok()?;
        let width = if a.is_ipv4() { 32 } else { 128 };
        if len > width {
            return None;
        }
        let host_bits = width - len;
        let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        let base = to_u128(a) & !mask;
        return Some((from_u128(base, a.is_ipv4()), from_u128(base | mask, a.is_ipv4())));
    }
    let a: IpAddr = s.parse().ok()?;
    Some((a, a))
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(x: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4((x as u32).into()) } else { IpAddr::V6(x.into()) }
}

fn family(a: &IpAddr) -> Family {
    if a.is_ipv4() { Family::V4 } else { Family::V6 }
}

/// One endpoint of one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint<'a> {
    addr: IpAddr,
    port: u16,
    conditions: Conditions,
    node: Option<&'a str>,
}

/// A Service's `namespace/name`: how compile's results name it.
pub fn key(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or("default"),
        s.metadata.name.as_deref().unwrap_or("")
    )
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

fn ns_of(meta: &crate::objects::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
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
            let k = index.key2(ns_of(&e.object.metadata), e.object.metadata.name.as_deref().unwrap_or(""));
            post(&mut index.endpoints, k, i);
        }
        for (i, s) in store.services.iter().enumerate() {
            let s = &s.object;
            let ns = ns_of(&s.metadata);
            let k = index.key2(ns, s.metadata.name.as_deref().unwrap_or(""));
            post(&mut index.services, k, i);
            for (l, v) in s.spec.selector.iter().flatten() {
                let k = index.key3(ns, l, v);
                post(&mut index.selectors, k, i);
            }
        }
        index
    }

    fn add_pod(&mut self, store: &Store, i: usize) {
        let Some(pod) = store.pods.get(i) else { return };
        let ns = ns_of(&pod.object.metadata);
        for (l, v) in &pod.object.metadata.labels {
            let k = self.key3(ns, l, v);
            post(&mut self.pods, k, i);
        }
    }

    fn add_slice(&mut self, store: &Store, i: usize) {
        let Some(slice) = store.endpoint_slices.get(i) else { return };
        if let Some(svc) = slice.object.metadata.labels.get("kubernetes.io/service-name") {
            let k = self.key2(ns_of(&slice.object.metadata), svc);
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
            .filter(|pod| {
                ns_of(&pod.metadata) == ns
                    && selector.iter().all(|(k, v)| pod.metadata.labels.get(k) == Some(v))
            })
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
            .filter(|(_, s)| {
                ns_of(&s.metadata) == ns
                    && s.metadata.labels.get("kubernetes.io/service-name").map(String::as_str) == Some(name)
            })
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
            .filter(|(_, e)| ns_of(&e.metadata) == ns && e.metadata.name.as_deref().unwrap_or("") == name)
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
                store.services.get(i).is_some_and(|s| {
                    ns_of(&s.object.metadata) == ns && s.object.metadata.name.as_deref().unwrap_or("") == name
                })
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
                if ns_of(&s.metadata) == ns
                    && let Some(sel) = &s.spec.selector
                    && !sel.is_empty()
                    && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                {
                    out.insert(i as usize);
                }
            }
        }
    }
}

/// A changed Pod's namespace and labels before the change.
type Before = (String, BTreeMap<String, String>);

/// What changed in a store since a [`Compiler`] last compiled it, as whoever changed it knows:
/// the [`Store`] methods that change Pods and EndpointSlices record it here. Anything else
/// (Services, pools, the configuration) is [`Changes::everything`].
#[derive(Debug, Clone, Default)]
pub struct Changes {
    everything: bool,
    /// Positions in `store.pods` whose Pod changed, arrived or was replaced by another, with
    /// the namespace and labels of the Pod that was there before (none when it is new).
    pods: Vec<(usize, Option<Before>)>,
    /// Positions in `store.endpoint_slices` whose slice changed or arrived.
    slices: Vec<usize>,
    /// Services (namespace, name) whose EndpointSlices changed.
    services: Vec<(String, String)>,
}

impl Changes {
    /// Anything may have changed: compile it all.
    pub fn everything() -> Changes {
        Changes { everything: true, ..Changes::default() }
    }

    /// Whether anything may have changed (a full compile follows).
    pub fn is_everything(&self) -> bool {
        self.everything
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.pods.is_empty() && self.slices.is_empty() && self.services.is_empty()
    }

    /// Adds `other`'s changes to these.
    pub fn merge(&mut self, other: Changes) {
        self.everything |= other.everything;
        self.pods.extend(other.pods);
        self.slices.extend(other.slices);
        self.services.extend(other.services);
    }
}

fn pod_key(pod: &Pod) -> (&str, &str) {
    (ns_of(&pod.metadata), pod.metadata.name.as_deref().unwrap_or(""))
}

fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    let svc = slice.metadata.labels.get("kubernetes.io/service-name")?;
    Some((ns_of(&slice.metadata).to_owned(), svc.clone()))
}

impl Store {
    /// Adds a Pod, or replaces the one of the same namespace and name; records it.
    pub fn put_pod(&mut self, pod: Located<Pod>, changes: &mut Changes) {
        let key = pod_key(&pod.object);
        match self.pods.iter().position(|p| pod_key(&p.object) == key) {
            Some(i) => {
                let old = std::mem::replace(&mut self.pods[i], pod);
                changes
                    .pods
                    .push((i, Some((ns_of(&old.object.metadata).to_owned(), old.object.metadata.labels))));
            }
            None => {
                changes.pods.push((self.pods.len(), None));
                self.pods.push(pod);
            }
        }
    }

    /// Removes the Pod `namespace/name`, if there is one; records it.
    pub fn remove_pod(&mut self, namespace: &str, name: &str, changes: &mut Changes) -> bool {
        let Some(i) = self.pods.iter().position(|p| pod_key(&p.object) == (namespace, name)) else {
            return false;
        };
        let old = self.pods.swap_remove(i);
        changes.pods.push((i, Some((namespace.to_owned(), old.object.metadata.labels))));
        if let Some(moved) = self.pods.get(i) {
            // The last Pod moved into the gap: same Services, new position.
            let labels = moved.object.metadata.labels.clone();
            changes.pods.push((i, Some((ns_of(&moved.object.metadata).to_owned(), labels))));
        }
        true
    }

    /// Adds an EndpointSlice, or replaces the one of the same namespace and name; records it.
    pub fn put_endpoint_slice(&mut self, slice: Located<EndpointSlice>, changes: &mut Changes) {
        let key = |s: &EndpointSlice| (ns_of(&s.metadata).to_owned(), s.metadata.name.clone());
        let k = key(&slice.object);
        changes.services.extend(slice_service(&slice.object));
        match self.endpoint_slices.iter().position(|s| key(&s.object) == k) {
            Some(i) => {
                changes.services.extend(slice_service(&self.endpoint_slices[i].object));
                self.endpoint_slices[i] = slice;
                changes.slices.push(i);
            }
            None => {
                changes.slices.push(self.endpoint_slices.len());
                self.endpoint_slices.push(slice);
            }
        }
    }

    /// Removes the EndpointSlice `namespace/name`, if there is one; records it.
    pub fn remove_endpoint_slice(&mut self, namespace: &str, name: &str, changes: &mut Changes) -> bool {
        let Some(i) = self.endpoint_slices.iter().position(|s| {
            ns_of(&s.object.metadata) == namespace && s.object.metadata.name.as_deref() == Some(name)
        }) else {
            return false;
        };
        let old = self.endpoint_slices.swap_remove(i);
        changes.services.extend(slice_service(&old.object));
        if let Some(moved) = self.endpoint_slices.get(i) {
            changes.services.extend(slice_service(&moved.object));
            changes.slices.push(i);
        }
        true
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
    /// Notes about the whole (LoadBalancer allocation).
    global_notes: Vec<String>,
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
        order.sort_by_cached_key(|&i| key(&store.services[i as usize].object));
        let mut place = vec![0u32; store.services.len()];
        for (p, &i) in order.iter().enumerate() {
            place[i as usize] = p as u32;
        }
        let services: Vec<&Service> = order.iter().map(|&i| &store.services[i as usize].object).collect();
        let mut global_notes = Vec::new();
        let (load_balancers, release) = allocate_load_balancers(store, cfg, &services, &mut global_notes);
        self.snat = if cfg.snat.is_empty() { &cfg.node_addrs } else { &cfg.snat }
            .iter()
            .map(|a| Addr::from(*a))
            .collect();
        let mut specs = Vec::new();
        let mut ranges = Vec::with_capacity(services.len());
        let mut unit_notes = Vec::with_capacity(services.len());
        for s in services {
            let start = specs.len();
            let mut notes = Vec::new();
            compile_service(&self.index, store, s, cfg, &self.snat, &load_balancers, &mut specs, &mut notes);
            ranges.push(start..specs.len());
            unit_notes.push(notes);
        }
        self.order = order;
        self.place = place;
        self.ranges = ranges;
        self.unit_notes = unit_notes;
        self.global_notes = global_notes;
        self.compiled = Some(Compiled {
            spec: TableSpec {
                generation,
                services: specs,
                node_addrs: cfg.node_addrs.iter().map(|a| Addr::from(*a)).collect(),
                maglev_size: MaglevSize::Auto,
            },
            load_balancers,
            release,
            notes: Vec::new(),
            changed: None,
        });
        self.gather_notes();
    }

    fn incremental(&mut self, store: &Store, cfg: &Config, generation: Generation, changes: &Changes) {
        let mut affected = BTreeSet::new();
        for (position, before) in &changes.pods {
            if let Some((ns, labels)) = before {
                self.index.selecting(store, ns, labels, &mut affected);
            }
            if let Some(pod) = store.pods.get(*position) {
                self.index.add_pod(store, *position);
                let meta = &pod.object.metadata;
                self.index.selecting(store, ns_of(meta), &meta.labels, &mut affected);
            }
        }
        for &position in &changes.slices {
            self.index.add_slice(store, position);
        }
        for (ns, name) in &changes.services {
            affected.extend(self.index.services_named(store, ns, name));
        }
        let Some(compiled) = self.compiled.as_mut() else { return };
        let mut places: Vec<usize> = affected.into_iter().map(|i| self.place[i] as usize).collect();
        places.sort_unstable();
        let mut changed = Some(Vec::new());
        for place in places {
            let s = &store.services[self.order[place] as usize].object;
            let mut specs = Vec::new();
            let mut notes = Vec::new();
            compile_service(
                &self.index,
                store,
                s,
                cfg,
                &self.snat,
                &compiled.load_balancers,
                &mut specs,
                &mut notes,
            );
            self.unit_notes[place] = notes;
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
        self.gather_notes();
    }

    fn gather_notes(&mut self) {
        let Some(compiled) = self.compiled.as_mut() else { return };
        compiled.notes = self.global_notes.iter().chain(self.unit_notes.iter().flatten()).cloned().collect();
    }
}

/// Compiles the stores. See the module documentation.
pub fn compile(store: &Store, cfg: &Config, generation: Generation) -> Compiled {
    let mut c = Compiler::new();
    c.compile(store, cfg, generation, &Changes::everything());
    c.compiled.take().unwrap_or_else(|| unreachable!("compiled above"))
}

/// One Service's table entries (none, one per port and family, or two with
/// `externalTrafficPolicy: Local`) and notes.
#[allow(clippy::too_many_arguments)]
fn compile_service(
    index: &Index,
    store: &Store,
    s: &Service,
    cfg: &Config,
    snat: &[Addr],
    load_balancers: &BTreeMap<String, Vec<IpAddr>>,
    specs: &mut Vec<ServiceSpec>,
    notes: &mut Vec<String>,
) {
    let name = key(s);
    let ty = s.spec.type_.as_deref().unwrap_or("ClusterIP");
    if ty == "ExternalName" || s.spec.cluster_ip.as_deref() == Some("None") {
        return;
    }
    let external = ty == "NodePort" || ty == "LoadBalancer";
    let local = external && s.spec.external_traffic_policy.as_deref() == Some("Local");
    let scheduler = s
        .metadata
        .annotations
        .get(SCHEDULER_ANNOTATION)
        .and_then(|v| v.parse::<Scheduler>().ok())
        .unwrap_or_default();
    let affinity = (s.spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        s.spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .and_then(Affinity::new)
            .unwrap_or_default()
    });
    let cluster_ips: Vec<IpAddr> = s
        .spec
        .cluster_ips
        .clone()
        .unwrap_or_default()
        .iter()
        .chain(s.spec.cluster_ip.iter())
        .filter_map(|a| a.parse().ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let external_ips: Vec<IpAddr> = s.spec.external_ips.iter().filter_map(|a| a.parse().ok()).collect();
    let vips = load_balancers.get(&name).cloned().unwrap_or_default();
    let mut any_endpoint = false;
    for p in &s.spec.ports {
        let protocol = match p.protocol.as_deref() {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => {
                notes.push(format!(
                    "Service {name}: port {}/SCTP is not forwarded (TCP and UDP only)",
                    p.port
                ));
                continue;
            }
            _ => Protocol::Tcp,
        };
        let endpoints = endpoints(index, store, s, p);
        any_endpoint |= !endpoints.is_empty();
        let port = p.port as u16;
        let port_name = match (&p.name, protocol) {
            (Some(n), _) => format!("{name}:{n}"),
            (None, Protocol::Tcp) => format!("{name}:{port}"),
            (None, Protocol::Udp) => format!("{name}:{port}/udp"),
        };
        for fam in [Family::V4, Family::V6] {
            let address =
                |a: &IpAddr| ServiceKey { frontend: Frontend::Address(Addr::from(*a)), port, protocol };
            let internal: Vec<ServiceKey> =
                cluster_ips.iter().filter(|a| family(a) == fam).map(address).collect();
            let mut outside: Vec<ServiceKey> =
                vips.iter().chain(&external_ips).filter(|a| family(a) == fam).map(address).collect();
            if external
                && let Some(np) = p.node_port
                && cfg.node_addrs.iter().any(|a| family(a) == fam)
            {
                outside.push(ServiceKey { frontend: Frontend::NodePort(fam), port: np as u16, protocol });
            }
            let backends = |only_local: bool| -> Vec<BackendSpec> {
                let mut seen = BTreeSet::new();
                let mut v: Vec<&Endpoint<'_>> = endpoints
                    .iter()
                    .filter(|e| family(&e.addr) == fam)
                    .filter(|e| !only_local || (e.node.is_some() && e.node == cfg.node_name.as_deref()))
                    .collect();
                // Duplicates (one endpoint in two slices): keep the one not terminating.
                v.sort_by_key(|e| (e.addr, e.port, e.conditions.terminating));
                v.into_iter()
                    .filter(|e| seen.insert((e.addr, e.port)))
                    .map(|e| BackendSpec {
                        addr: Addr::from(e.addr),
                        port: e.port,
                        weight: 1,
                        conditions: e.conditions,
                    })
                    .collect()
            };
            let fam_snat: Vec<Addr> = snat.iter().copied().filter(|a| a.family() == fam).collect();
            let entry =
                |name: String, frontends: Vec<ServiceKey>, nat: NatMode, only_local: bool| ServiceSpec {
                    name,
                    frontends,
                    backends: backends(only_local),
                    scheduler,
                    affinity,
                    nat,
                    snat: fam_snat.clone(),
                };
            let suffix = if fam == Family::V6 { " (IPv6)" } else { "" };
            let full_nat_ok = !fam_snat.is_empty();
            if local && !outside.is_empty() {
                if !internal.is_empty() && full_nat_ok {
                    specs.push(entry(format!("{port_name}{suffix}"), internal, NatMode::FullNat, false));
                }
                specs.push(entry(
                    format!("{port_name} (external, local){suffix}"),
                    outside,
                    NatMode::Dnat,
                    true,
                ));
            } else {
                let mut all = internal;
                all.extend(outside);
                if all.is_empty() {
                    continue;
                }
                if !full_nat_ok {
                    notes.push(format!("Service {name}: no source address of family {fam:?} for FullNAT; not forwarded over it"));
                    continue;
                }
                specs.push(entry(format!("{port_name}{suffix}"), all, NatMode::FullNat, false));
            }
        }
    }
    if !any_endpoint && !s.spec.ports.is_empty() {
        notes.push(format!("Service {name}: no endpoints; new connections are refused until one is ready"));
    }
}

/// The endpoints of one Service port.
fn endpoints<'a>(index: &Index, store: &'a Store, s: &Service, p: &ServicePort) -> Vec<Endpoint<'a>> {
    let ns = s.metadata.namespace.as_deref().unwrap_or("default");
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    let name = s.metadata.name.as_deref().unwrap_or("");
    // EndpointSlices, when the Service has any (the endpoint controller's output: always, in a
    // cluster); else the Pods its selector picks (a manifest directory); else v1 Endpoints.
    let slices = index.slices_of(store, ns, name);
    let has_slices = !slices.is_empty();
    match &s.spec.selector {
        Some(sel) if !sel.is_empty() && !has_slices => {
            let mut v = Vec::new();
            for pod in index.selected(store, ns, sel) {
                pod_endpoints(pod, p, proto, &mut v);
            }
            v
        }
        _ => {
            let port_name = p.name.as_deref().unwrap_or("");
            let mut v = Vec::new();
            for slice in slices {
                if slice.address_type == "FQDN" {
                    continue;
                }
                let Some(port) = slice
                    .ports
                    .iter()
                    .find(|sp| names_port(sp.name.as_deref(), sp.protocol.as_deref(), port_name, proto))
                    .and_then(|sp| sp.port)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n != 0)
                else {
                    continue;
                };
                for e in &slice.endpoints {
                    // Unset conditions: ready and serving mean "unknown, assume yes"; terminating
                    // "no" (discovery/v1 EndpointConditions).
                    let ready = e.conditions.ready.unwrap_or(true);
                    let conditions = Conditions {
                        ready,
                        serving: e.conditions.serving.unwrap_or(ready),
                        terminating: e.conditions.terminating.unwrap_or(false),
                    };
                    for a in e.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                        v.push(Endpoint { addr: a, port, conditions, node: e.node_name.as_deref() });
                    }
                }
            }
            if !has_slices && let Some(e) = index.endpoints_of(store, ns, name) {
                // The legacy form: addresses are ready, notReadyAddresses are not.
                for sub in &e.subsets {
                    let Some(port) = sub
                        .ports
                        .iter()
                        .find(|ep| names_port(ep.name.as_deref(), ep.protocol.as_deref(), port_name, proto))
                        .and_then(|ep| u16::try_from(ep.port).ok())
                    else {
                        continue;
                    };
                    for (addrs, ready) in [(&sub.addresses, true), (&sub.not_ready_addresses, false)] {
                        for a in addrs {
                            if let Ok(addr) = a.ip.parse::<IpAddr>() {
                                let conditions = Conditions { ready, serving: ready, terminating: false };
                                v.push(Endpoint { addr, port, conditions, node: a.node_name.as_deref() });
                            }
                        }
                    }
                }
            }
            v
        }
    }
}

/// Whether an endpoint port (of a slice or a v1 Endpoints subset) is the Service port named
/// `port_name` (empty when unnamed) of protocol `proto`: ports pair up by name and protocol.
fn names_port(name: Option<&str>, protocol: Option<&str>, port_name: &str, proto: &str) -> bool {
    name.unwrap_or("") == port_name && protocol.unwrap_or("TCP") == proto
}

/// The endpoints one Pod gives a Service port, as the endpoint controller derives them.
fn pod_endpoints<'a>(pod: &'a Pod, p: &ServicePort, proto: &str, out: &mut Vec<Endpoint<'a>>) {
    let Some(status) = &pod.status else { return };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return;
    }
    let port = match &p.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::Str(name)) => container_port(pod, name, proto),
        None => u16::try_from(p.port).ok(),
    };
    let Some(port) = port else { return };
    let ready_condition = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let conditions =
        Conditions { ready: ready_condition && !terminating, serving: ready_condition, terminating };
    let node = pod.spec.get("nodeName").and_then(|v| v.as_str());
    let first = out.len();
    for addr in status.pod_ips.iter().filter_map(|i| i.ip.parse().ok()) {
        out.push(Endpoint { addr, port, conditions, node });
    }
    if let Some(addr) = status.pod_ip.as_deref().and_then(|i| i.parse().ok())
        && !out[first..].iter().any(|e| e.addr == addr)
    {
        out.push(Endpoint { addr, port, conditions, node });
    }
}

/// The number of a Pod's container port called `name` (a named `targetPort`).
fn container_port(pod: &Pod, name: &str, proto: &str) -> Option<u16> {
    let containers = pod.spec.get("containers")?.as_sequence()?;
    containers.iter().filter_map(|c| c.get("ports")?.as_sequence()).flatten().find_map(|p| {
        let matches = p.get("name")?.as_str()? == name
            && p.get("protocol").and_then(|v| v.as_str()).unwrap_or("TCP") == proto;
        if matches { u16::try_from(p.get("containerPort")?.as_i64()?).ok() } else { None }
    })
}

/// LoadBalancer addresses for every LoadBalancer Service of our class.
fn allocate_load_balancers(
    store: &Store,
    cfg: &Config,
    services: &[&Service],
    notes: &mut Vec<String>,
) -> (BTreeMap<String, Vec<IpAddr>>, Vec<String>) {
    // (name, autoAssign, inclusive address ranges, avoidBuggyIPs)
    type Pool = (String, bool, Vec<(IpAddr, IpAddr)>, bool);
    // MetalLB's avoidBuggyIPs: no IPv4 address ending in .0 or .255 (old clients treat them as
    // network or broadcast addresses).
    let buggy = |a: &IpAddr| matches!(a, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255));
    let mut pools: Vec<Pool> = store
        .pools
        .iter()
        .map(|l| {
            let p = &l.object;
            let ranges = p.spec.addresses.iter().filter_map(|a| parse_range(a)).collect();
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.spec.auto_assign.unwrap_or(true),
                ranges,
                p.spec.avoid_buggy_ips.unwrap_or(false),
            )
        })
        .collect();
    pools.sort_by(|a, b| a.0.cmp(&b.0));
    let in_pool = |a: &IpAddr| {
        pools.iter().any(|(_, _, rs, avoid)| {
            !(*avoid && buggy(a))
                && rs.iter().any(|(lo, hi)| {
                    lo.is_ipv4() == a.is_ipv4() && (to_u128(*lo)..=to_u128(*hi)).contains(&to_u128(*a))
                })
        })
    };
    let ours: Vec<&&Service> = services
        .iter()
        .filter(|s| {
            s.spec.type_.as_deref() == Some("LoadBalancer")
                && s.spec.load_balancer_class == cfg.load_balancer_class
        })
        .collect();
    let mut taken = BTreeSet::new();
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    // MetalLB's order (KUBERNETES.md §8.1): addresses Services already hold stay theirs; then
    // explicit asks (`metallb.io/loadBalancerIPs`, else `spec.loadBalancerIP`) — a Service whose
    // ask cannot be had gets no other address; then the rest, in name order, from the first
    // auto-assigning pool with room, or from the pool `metallb.io/address-pool` names.
    let explicit = |s: &Service| -> Option<Vec<IpAddr>> {
        let list = s
            .metadata
            .annotations
            .get(LB_IPS_ANNOTATION)
            .map(|v| {
                v.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect::<Vec<_>>()
            })
            .or_else(|| s.spec.load_balancer_ip.clone().map(|a| vec![a]))?;
        Some(list.iter().filter_map(|a| a.parse().ok()).collect())
    };
    let recorded = |s: &Service| -> Vec<IpAddr> {
        s.status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .map(|lb| lb.ingress.iter().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect())
            .unwrap_or_default()
    };
    let mut refused = BTreeSet::new();
    let claim = |s: &Service,
                 a: IpAddr,
                 taken: &mut BTreeSet<IpAddr>,
                 out: &mut BTreeMap<String, Vec<IpAddr>>,
                 notes: &mut Vec<String>|
     -> bool {
        if !in_pool(&a) {
            notes.push(format!(
                "Service {}: LoadBalancer address {a} is in no IPAddressPool; not assigned",
                key(s)
            ));
            false
        } else if !taken.insert(a) {
            notes.push(format!("Service {}: LoadBalancer address {a} is already taken", key(s)));
            false
        } else {
            out.entry(key(s)).or_default().push(a);
            true
        }
    };
    // Held addresses, unless the Service now asks for others.
    for s in &ours {
        let held = recorded(s);
        if explicit(s).is_none_or(|mut asked| {
            let mut h = held.clone();
            asked.sort();
            h.sort();
            asked == h
        }) {
            for a in held {
                // An address no longer valid (pool changed, conflict) is given up for a new one.
                claim(s, a, &mut taken, &mut out, notes);
            }
        }
    }
    // Explicit asks.
    for s in &ours {
        if out.contains_key(&key(s)) {
            continue;
        }
        if let Some(asked) = explicit(s) {
            let mut all = !asked.is_empty();
            for a in asked {
                all &= claim(s, a, &mut taken, &mut out, notes);
            }
            if !all {
                refused.insert(key(s));
            }
        }
    }
    for s in &ours {
        if out.contains_key(&key(s)) || refused.contains(&key(s)) {
            continue;
        }
        let named = s.metadata.annotations.get(POOL_ANNOTATION);
        if let Some(name) = named
            && !pools.iter().any(|(n, _, _, _)| n == name)
        {
            notes.push(format!("Service {}: {POOL_ANNOTATION}: no IPAddressPool named {name:?}", key(s)));
            continue;
        }
        let free = pools
            .iter()
            .filter(|(n, auto, _, _)| named.map_or(*auto, |want| want == n))
            .flat_map(|(_, _, rs, avoid)| rs.iter().map(move |r| (r, *avoid)))
            .find_map(|((lo, hi), avoid)| {
                let (lo_n, hi_n) = (to_u128(*lo), to_u128(*hi));
                (lo_n..=hi_n.min(lo_n.saturating_add(1 << 16)))
                    .map(|n| from_u128(n, lo.is_ipv4()))
                    .find(|a| !(taken.contains(a) || (avoid && buggy(a))))
            });
        match free {
            Some(a) => {
                taken.insert(a);
                out.insert(key(s), vec![a]);
            }
            None => {
                notes.push(format!("Service {}: no free LoadBalancer address in any IPAddressPool", key(s)))
            }
        }
    }
    let release = services
        .iter()
        .filter(|s| !out.contains_key(&key(s)))
        .filter(|s| {
            s.status.as_ref().and_then(|st| st.load_balancer.as_ref()).is_some_and(|lb| {
                lb.ingress
                    .iter()
                    .any(|i| i.ip.as_deref().and_then(|a| a.parse().ok()).is_some_and(|a| in_pool(&a)))
            })
        })
        .map(|s| key(s))
        .collect();
    (out, release)
}
