//! Services, backends and the compiled service table a worker forwards from.
//!
//! A [`TableSpec`] is what the control process hands over: services keyed by frontend
//! (a VIP/ClusterIP address, or the NodePort wildcard meaning "any of this node's addresses"),
//! port and protocol, each with its backends and policy. [`ServiceTable::build`] validates it and
//! compiles the forms the data plane needs: backends in canonical order, the set eligible for new
//! flows, the Maglev table, and hash indexes for the per-packet lookups. A built table travels
//! from control to the gateway as a [`crate::image`] through the shared-memory table, and
//! [`ServiceTable::build_reusing`] keeps the Maglev tables of services whose eligible backends did
//! not change, so a one-endpoint change does not rebuild ten thousand of them.
//!
//! Endpoint semantics follow kube-proxy (`pkg/proxy/topology.go`, `CategorizeEndpoints`): new
//! flows go to **ready** endpoints; when none is ready, to endpoints that are **serving and
//! terminating**; a terminating endpoint keeps its existing flows (the flow table decides that,
//! by asking [`ServiceTable::backend_by_addr`] whether the backend still exists).
//!
//! A service is single-family: a dual-stack Kubernetes Service becomes two services here, one
//! per family, as kube-proxy runs one tracker per family.
//!
//! Not hot path to build; the lookups are.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;

use crate::addr::{Addr, Family};
use crate::l7::L7Table;
use crate::maglev::{self, MaglevTable, Member};

/// Identifies a table generation. Increases with every publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u64);

/// Index of a service in one table generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u32);

impl ServiceId {
    /// No service of the current generation (an orphaned flow's).
    pub const NONE: ServiceId = ServiceId(u32::MAX);
}

/// Index of a backend in one table generation (global across services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub u32);

impl BackendId {
    /// No backend of the current generation (an orphaned flow's).
    pub const NONE: BackendId = BackendId(u32::MAX);
}

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// IANA protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => sluice_wire::ip_proto::TCP,
            Protocol::Udp => sluice_wire::ip_proto::UDP,
        }
    }

    /// From an IANA protocol number.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            sluice_wire::ip_proto::TCP => Some(Protocol::Tcp),
            sluice_wire::ip_proto::UDP => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// Where a service is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frontend {
    /// A virtual address: ClusterIP, LoadBalancer VIP or external IP.
    Address(Addr),
    /// A NodePort: any of the gateway node's own addresses of this family.
    NodePort(Family),
}

impl Frontend {
    /// The family of the frontend.
    pub fn family(&self) -> Family {
        match self {
            Frontend::Address(a) => a.family(),
            Frontend::NodePort(f) => *f,
        }
    }
}

/// A service's key: frontend, port and protocol (the family is the frontend's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Address or NodePort wildcard.
    pub frontend: Frontend,
    /// Service port (or node port).
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl core::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        match self.frontend {
            Frontend::Address(a) if a.family() == Family::V6 => write!(f, "[{a}]:{}/{proto}", self.port),
            Frontend::Address(a) => write!(f, "{a}:{}/{proto}", self.port),
            Frontend::NodePort(Family::V4) => write!(f, "<node-ipv4>:{}/{proto}", self.port),
            Frontend::NodePort(Family::V6) => write!(f, "[<node-ipv6>]:{}/{proto}", self.port),
        }
    }
}

/// EndpointSlice conditions (discovery.k8s.io/v1 `EndpointConditions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Conditions {
    /// Ready to receive new connections.
    pub ready: bool,
    /// Serving (may be true while terminating).
    pub serving: bool,
    /// Being deleted.
    pub terminating: bool,
}

impl Conditions {
    /// A ready, serving, not-terminating endpoint.
    pub const READY: Conditions = Conditions { ready: true, serving: true, terminating: false };
    /// A terminating endpoint still serving its connections (graceful drain).
    pub const DRAINING: Conditions = Conditions { ready: false, serving: true, terminating: true };
}

/// A backend as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendSpec {
    /// Endpoint address.
    pub addr: Addr,
    /// Endpoint port (the resolved targetPort).
    pub port: u16,
    /// Relative weight for weighted schedulers (1 unless told otherwise; 0 takes no new flows).
    pub weight: u16,
    /// Endpoint conditions.
    pub conditions: Conditions,
}

/// How a service picks a backend for a new flow: Maglev, or one of the IPVS schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheduler {
    /// Maglev consistent hashing of the 5-tuple (the default).
    #[default]
    Maglev,
    /// `rr`: round robin.
    RoundRobin,
    /// `wrr`: weighted round robin (smooth, interleaved).
    WeightedRoundRobin,
    /// `lc`: least connections.
    LeastConnections,
    /// `sh`: source hashing (consistent: Maglev on the client address).
    SourceHash,
    /// `dh`: destination hashing (consistent: Maglev on the destination address).
    DestinationHash,
    /// `sed`: shortest expected delay, `(C + 1) / W`.
    ShortestExpectedDelay,
    /// `nq`: never queue: an idle backend if any, else shortest expected delay.
    NeverQueue,
}

impl Scheduler {
    /// All schedulers, with their annotation names.
    pub const ALL: [(&'static str, Scheduler); 8] = [
        ("maglev", Scheduler::Maglev),
        ("rr", Scheduler::RoundRobin),
        ("wrr", Scheduler::WeightedRoundRobin),
        ("lc", Scheduler::LeastConnections),
        ("sh", Scheduler::SourceHash),
        ("dh", Scheduler::DestinationHash),
        ("sed", Scheduler::ShortestExpectedDelay),
        ("nq", Scheduler::NeverQueue),
    ];

    /// The annotation name (`sluice.io/scheduler` value).
    pub fn name(self) -> &'static str {
        Scheduler::ALL.iter().find(|(_, s)| *s == self).map(|(n, _)| *n).unwrap_or("maglev")
    }

    /// Whether the choice depends only on packet fields, so that any worker (or node) would make
    /// the same choice for the same flow. Only such schedulers can adopt a TCP flow mid-stream.
    pub fn is_consistent(self) -> bool {
        matches!(self, Scheduler::Maglev | Scheduler::SourceHash | Scheduler::DestinationHash)
    }

    /// Whether the scheduler reads per-backend connection counts.
    pub fn counts_connections(self) -> bool {
        matches!(self, Scheduler::LeastConnections | Scheduler::ShortestExpectedDelay | Scheduler::NeverQueue)
    }
}

impl core::str::FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Scheduler, String> {
        Scheduler::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = Scheduler::ALL.iter().map(|(n, _)| *n).collect();
            format!("unknown scheduler {s:?} (expected one of {})", names.join(", "))
        })
    }
}

/// How addresses are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NatMode {
    /// Source and destination rewritten: the backend sees a gateway address, so replies come
    /// back here from any network (`externalTrafficPolicy: Cluster`).
    #[default]
    FullNat,
    /// Destination only: the backend sees the client's address and must route replies through
    /// the gateway (`externalTrafficPolicy: Local`, or a gateway that is the backends' router).
    Dnat,
}

/// `sessionAffinity: ClientIP`, with its timeout: always in Kubernetes' range (a value of this
/// type has been checked once, where it was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Affinity {
    timeout_s: u32,
}

impl Affinity {
    /// Kubernetes' default timeout (3 hours).
    pub const DEFAULT_TIMEOUT_S: u32 = 10_800;
    /// Kubernetes' maximum timeout (1 day).
    pub const MAX_TIMEOUT_S: u32 = 86_400;
    /// The timeouts Kubernetes accepts (`sessionAffinityConfig.clientIP.timeoutSeconds`).
    pub const TIMEOUTS_S: core::ops::RangeInclusive<u32> = 1..=Affinity::MAX_TIMEOUT_S;

    /// Affinity for `timeout_s` seconds, if Kubernetes would accept it ([`Self::TIMEOUTS_S`]).
    pub const fn new(timeout_s: u32) -> Option<Affinity> {
        if timeout_s == 0 || timeout_s > Affinity::MAX_TIMEOUT_S {
            return None;
        }
        Some(Affinity { timeout_s })
    }

    /// How long an entry lives after the client's last new connection, in seconds.
    pub const fn timeout_s(self) -> u32 {
        self.timeout_s
    }
}

impl Default for Affinity {
    fn default() -> Affinity {
        Affinity { timeout_s: Affinity::DEFAULT_TIMEOUT_S }
    }
}

/// A service as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Human name for logs and status (`namespace/name:port`).
    pub name: String,
    /// Where the service is reached (one or more keys, all of one family).
    pub frontends: Vec<ServiceKey>,
    /// Its endpoints, in any order.
    pub backends: Vec<BackendSpec>,
    /// Backend choice for new flows.
    pub scheduler: Scheduler,
    /// Client-IP affinity, if asked for.
    pub affinity: Option<Affinity>,
    /// Rewrite mode.
    pub nat: NatMode,
    /// Source addresses for FullNAT (at least one of the service's family when FullNAT).
    pub snat: Vec<Addr>,
}

/// How big Maglev tables are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaglevSize {
    /// The same prime for every service ([`maglev::DEFAULT_SIZE`] by default).
    Fixed(u32),
    /// The smallest offered prime ≥ 100 × backends ([`maglev::size_for`]): bounded memory for
    /// tables of many small services.
    #[default]
    Auto,
}

/// Everything a table is built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSpec {
    /// Generation number of the table.
    pub generation: Generation,
    /// The services.
    pub services: Vec<ServiceSpec>,
    /// The gateway node's own addresses (where NodePorts listen).
    pub node_addrs: Vec<Addr>,
    /// Maglev table sizing.
    pub maglev_size: MaglevSize,
    /// The L7 half of the generation (empty without Ingresses). Shared: the table built from
    /// this spec holds the same one.
    pub l7: Arc<L7Table>,
}

/// Why a table spec was refused. Each names the service it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// Two services claim the same frontend.
    DuplicateFrontend {
        /// The key.
        key: ServiceKey,
        /// The service that had it first.
        first: String,
        /// The service that claimed it again.
        second: String,
    },
    /// A service has no frontend.
    NoFrontend {
        /// The service.
        service: String,
    },
    /// A service mixes address families among its frontends and backends.
    MixedFamilies {
        /// The service.
        service: String,
    },
    /// A FullNAT service has no SNAT address of its family.
    NoSnatAddress {
        /// The service.
        service: String,
        /// The family missing.
        family: Family,
    },
    /// The same backend address and port is listed twice in one service.
    DuplicateBackend {
        /// The service.
        service: String,
        /// The backend address.
        addr: Addr,
        /// The backend port.
        port: u16,
    },
    /// A backend with port 0 or an unspecified address.
    BadBackend {
        /// The service.
        service: String,
        /// The backend address.
        addr: Addr,
        /// The backend port.
        port: u16,
    },
    /// The Maglev table could not be built.
    Maglev {
        /// The service.
        service: String,
        /// Why.
        error: maglev::BuildError,
    },
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::DuplicateFrontend { key, first, second } => {
                write!(f, "service {second}: frontend {key} is already used by service {first}")
            }
            TableError::NoFrontend { service } => write!(f, "service {service}: no frontend"),
            TableError::MixedFamilies { service } => write!(
                f,
                "service {service}: frontends and backends mix IPv4 and IPv6 (split a dual-stack service into one per family)"
            ),
            TableError::NoSnatAddress { service, family } => {
                write!(f, "service {service}: FullNAT needs an SNAT address of family {family:?}")
            }
            TableError::DuplicateBackend { service, addr, port } => {
                write!(f, "service {service}: backend {addr} port {port} listed twice")
            }
            TableError::BadBackend { service, addr, port } => {
                write!(f, "service {service}: backend {addr} port {port} is not a usable endpoint")
            }
            TableError::Maglev { service, error } => write!(f, "service {service}: {error}"),
        }
    }
}

impl std::error::Error for TableError {}

/// A backend in a built table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Endpoint address.
    pub addr: Addr,
    /// Endpoint port.
    pub port: u16,
    /// Weight.
    pub weight: u16,
    /// Conditions.
    pub conditions: Conditions,
    /// The service it belongs to.
    pub service: ServiceId,
    /// Whether it may take new flows (see the module documentation).
    pub eligible: bool,
}

/// A service in a built table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its id in this generation.
    pub id: ServiceId,
    /// Human name.
    pub name: String,
    /// [`crate::hash::stable`] of the name: identifies the service across generations (client
    /// affinity is keyed by it).
    pub name_hash: u64,
    /// Frontends.
    pub frontends: Vec<ServiceKey>,
    /// Family of frontends and backends.
    pub family: Family,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Affinity.
    pub affinity: Option<Affinity>,
    /// NAT mode.
    pub nat: NatMode,
    /// SNAT addresses (of the service's family).
    pub snat: Vec<Addr>,
    /// Its backends' ids: a contiguous range of the table's backends, in canonical order.
    pub backends: Range<u32>,
    /// Offsets (within `backends`) of the backends eligible for new flows, canonical order.
    pub eligible: Vec<u16>,
    /// Maglev table over the eligible backends; entries are offsets within `backends`.
    pub maglev: MaglevTable,
}

impl Service {
    /// The backend id of an offset within this service.
    #[inline(always)]
    pub fn backend_id(&self, offset: u16) -> BackendId {
        BackendId(self.backends.start + u32::from(offset))
    }
}

/// A small, fast, fixed-key hasher for the table's indexes. Their keys come from the control
/// plane, not from packets, so flooding-resistance is not needed; lookups with packet-derived keys
/// only probe.
#[derive(Default, Clone, Copy)]
pub struct IndexHasher(u64);

impl Hasher for IndexHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        crate::hash::words(0x5eed, &[self.0])
    }
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline(always)]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

type Index<K, V> = HashMap<K, V, BuildHasherDefault<IndexHasher>>;

/// This node's part in announcing a VIP in L2 mode (docs/l2.md): of the nodes on a segment,
/// one is active for the VIP and answers ARP requests and neighbour solicitations for it; the
/// others stand by, still forwarding what reaches them, silent on the wire. A VIP in no L2 mode
/// has no role and is answered for as it always was (a single gateway on its segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L2Role {
    /// Announced from this node: answer for it, and announce it (gratuitous ARP, unsolicited
    /// neighbour advertisement) when it becomes active here.
    Active,
    /// Announced from another node: never answered for here.
    Standby,
}

/// A compiled, immutable service table: one generation.
#[derive(Debug, Clone)]
pub struct ServiceTable {
    generation: Generation,
    services: Vec<Service>,
    backends: Vec<Backend>,
    by_address: Index<(Addr, u16, Protocol), ServiceId>,
    by_node_port: Index<(Family, u16, Protocol), ServiceId>,
    node_addrs: Vec<Addr>,
    vips: HashSet<Addr, BuildHasherDefault<IndexHasher>>,
    /// The VIPs in L2 mode, with this node's role for each.
    l2: BTreeMap<Addr, L2Role>,
    l7: Arc<L7Table>,
}

impl ServiceTable {
    /// An empty table (no services) of generation 0.
    pub fn empty() -> ServiceTable {
        ServiceTable::build(&TableSpec::default()).unwrap_or_else(|_| unreachable!("empty spec is valid"))
    }

    /// Validates and compiles a spec.
    pub fn build(spec: &TableSpec) -> Result<ServiceTable, TableError> {
        ServiceTable::build_reusing(spec, None)
    }

    /// [`Self::build`], taking each service's Maglev table from `previous` when that service
    /// (same name) has exactly the same eligible members and table size — the table would be
    /// byte-identical, and building it is most of the cost of a table with many services.
    pub fn build_reusing(
        spec: &TableSpec,
        previous: Option<&ServiceTable>,
    ) -> Result<ServiceTable, TableError> {
        let reusable: Index<&str, &Service> =
            previous.map(|p| p.services.iter().map(|s| (s.name.as_str(), s)).collect()).unwrap_or_default();
        let mut services: Vec<Service> = Vec::with_capacity(spec.services.len());
        let mut all_backends: Vec<Backend> = Vec::new();
        let n_frontends: usize = spec.services.iter().map(|s| s.frontends.len()).sum();
        let mut owner: Index<ServiceKey, usize> =
            Index::with_capacity_and_hasher(n_frontends, Default::default());
        for (i, s) in spec.services.iter().enumerate() {
            let id = ServiceId(i as u32);
            let reuse =
                reusable.get(s.name.as_str()).map(|p| (*p, previous.map_or(&[][..], |t| &t.backends[..])));
            services.push(build_service(id, s, spec.maglev_size, reuse, &mut all_backends)?);
            for k in &s.frontends {
                if let Some(&j) = owner.get(k) {
                    if j != i {
                        return Err(TableError::DuplicateFrontend {
                            key: *k,
                            first: spec.services[j].name.clone(),
                            second: s.name.clone(),
                        });
                    }
                    continue;
                }
                owner.insert(*k, i);
            }
        }
        let (g, addrs, l7) = (spec.generation, spec.node_addrs.clone(), spec.l7.clone());
        ServiceTable::from_parts(g, services, all_backends, addrs, l7)
            .map_err(|_| unreachable!("frontends were checked for duplicates above"))
    }

    /// Brings this table to `spec` when `spec` differs from what the table was built from only
    /// in the services at positions `changed` — as many services, the same names and frontends,
    /// other backends or policy: the incremental compile's case, an endpoint changed — rebuilding
    /// only those services (their Maglev tables reused when their members are the same) and
    /// moving the backends after them. The result is the table [`Self::build_reusing`] gives.
    /// Returns `Ok(false)`, leaving the table as it was, when `spec` is not such a change (the
    /// caller then builds), and the error, also leaving the table as it was, when a changed
    /// service is invalid.
    pub fn update(&mut self, spec: &TableSpec, changed: &[usize]) -> Result<bool, TableError> {
        if spec.services.len() != self.services.len() || spec.node_addrs != self.node_addrs {
            return Ok(false);
        }
        let mut changed = changed.to_vec();
        changed.sort_unstable();
        changed.dedup();
        let same_place = |&i: &usize| {
            self.services.get(i).is_some_and(|old| {
                let new = &spec.services[i];
                old.name == new.name && old.frontends == new.frontends
            })
        };
        if !changed.iter().all(same_place) {
            return Ok(false);
        }
        // Build apart first, so that an invalid service leaves the table as it was.
        let mut built = Vec::with_capacity(changed.len());
        for &i in &changed {
            let mut backends = Vec::new();
            let old = &self.services[i];
            let service = build_service(
                ServiceId(i as u32),
                &spec.services[i],
                spec.maglev_size,
                Some((old, &self.backends)),
                &mut backends,
            )?;
            built.push((i, service, backends));
        }
        let resized = built.iter().any(|(i, _, b)| b.len() != self.services[*i].backends.len());
        // Last first: splicing a service's backends leaves the ranges before it in place.
        for (i, mut service, backends) in built.into_iter().rev() {
            let old = self.services[i].backends.clone();
            service.backends = old.start..old.start + backends.len() as u32;
            self.backends.splice(old.start as usize..old.end as usize, backends);
            self.services[i] = service;
        }
        if resized {
            let mut at = 0u32;
            for s in &mut self.services {
                let len = s.backends.end - s.backends.start;
                s.backends = at..at + len;
                at += len;
            }
        }
        self.generation = spec.generation;
        self.l7 = spec.l7.clone();
        Ok(true)
    }

    /// Assembles a table from compiled parts (from [`Self::build`], or decoded from an image),
    /// building its lookup indexes. Fails with the key two services both claim.
    pub(crate) fn from_parts(
        generation: Generation,
        services: Vec<Service>,
        backends: Vec<Backend>,
        node_addrs: Vec<Addr>,
        l7: Arc<L7Table>,
    ) -> Result<ServiceTable, ServiceKey> {
        let n_frontends: usize = services.iter().map(|s| s.frontends.len()).sum();
        let mut t = ServiceTable {
            generation,
            services,
            backends,
            by_address: Index::with_capacity_and_hasher(n_frontends, Default::default()),
            by_node_port: Index::default(),
            node_addrs,
            vips: HashSet::with_capacity_and_hasher(n_frontends, Default::default()),
            l2: BTreeMap::new(),
            l7,
        };
        for s in &t.services {
            for k in &s.frontends {
                let fresh = match k.frontend {
                    Frontend::Address(a) => {
                        t.vips.insert(a);
                        t.by_address.insert((a, k.port, k.protocol), s.id).is_none_or(|prev| prev == s.id)
                    }
                    Frontend::NodePort(f) => {
                        t.by_node_port.insert((f, k.port, k.protocol), s.id).is_none_or(|prev| prev == s.id)
                    }
                };
                if !fresh {
                    return Err(*k);
                }
            }
        }
        Ok(t)
    }

    /// The generation.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// All services.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// All backends.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// A service by id.
    #[inline(always)]
    pub fn service(&self, id: ServiceId) -> &Service {
        &self.services[id.0 as usize]
    }

    /// A backend by id.
    #[inline(always)]
    pub fn backend(&self, id: BackendId) -> &Backend {
        &self.backends[id.0 as usize]
    }

    /// The L7 half of this generation: routes, upstreams, certificates, listeners.
    pub fn l7(&self) -> &L7Table {
        &self.l7
    }

    /// The L7 half, shared (for a thread that keeps it past this table).
    pub fn l7_shared(&self) -> Arc<L7Table> {
        Arc::clone(&self.l7)
    }

    /// The L7 half, to change before the table is published (control numbers its routes'
    /// metrics rows). Copied first if another holder shares it.
    pub fn l7_mut(&mut self) -> &mut L7Table {
        Arc::make_mut(&mut self.l7)
    }

    /// The gateway's own addresses.
    pub fn node_addrs(&self) -> &[Addr] {
        &self.node_addrs
    }

    /// Whether an address is one of the gateway node's own.
    #[inline(always)]
    pub fn is_node_addr(&self, a: &Addr) -> bool {
        self.node_addrs.iter().any(|n| n == a)
    }

    /// Whether an address is a service address (VIP / ClusterIP) of some service.
    #[inline(always)]
    pub fn is_vip(&self, a: &Addr) -> bool {
        !self.vips.is_empty() && self.vips.contains(a)
    }

    /// The VIPs in L2 mode and this node's role for each (none: every VIP is answered for).
    pub fn l2(&self) -> &BTreeMap<Addr, L2Role> {
        &self.l2
    }

    /// Sets the VIPs in L2 mode and this node's role for each: the election's result, which
    /// control adds to a table after building it.
    pub fn set_l2(&mut self, l2: BTreeMap<Addr, L2Role>) {
        self.l2 = l2;
    }

    /// Whether this node answers ARP requests and neighbour solicitations for `a`, and announces
    /// it: a VIP, and not one another node announces in L2 mode. Off the hot path (ARP and NDP).
    pub fn answers_for(&self, a: &Addr) -> bool {
        self.is_vip(a) && (self.l2.is_empty() || self.l2.get(a) != Some(&L2Role::Standby))
    }

    /// The service a packet to `dst:port/protocol` is for: an address frontend, else a NodePort
    /// if `dst` is one of the node's addresses.
    #[inline]
    pub fn lookup(&self, dst: &Addr, port: u16, protocol: Protocol) -> Option<ServiceId> {
        if let Some(&id) = self.by_address.get(&(*dst, port, protocol)) {
            return Some(id);
        }
        if !self.by_node_port.is_empty() && self.is_node_addr(dst) {
            return self.by_node_port.get(&(dst.family(), port, protocol)).copied();
        }
        None
    }

    /// The backend of a service with this address and port, if the service still has it (in any
    /// condition): how a flow from an earlier generation finds its backend again.
    ///
    /// A binary search of the service's backends, which are in canonical (address, port) order:
    /// no index to build or keep, and called once per flow per generation, not per packet.
    #[inline]
    pub fn backend_by_addr(&self, service: ServiceId, addr: &Addr, port: u16) -> Option<BackendId> {
        let range = self.services.get(service.0 as usize)?.backends.clone();
        let slice = &self.backends[range.start as usize..range.end as usize];
        slice
            .binary_search_by(|b| (b.addr, b.port).cmp(&(*addr, port)))
            .ok()
            .map(|i| BackendId(range.start + i as u32))
    }
}

/// Builds one service of a table: its backends appended to `all_backends` (in canonical order),
/// its Maglev table taken from `reuse` (the service of the same name in the previous table, and
/// that table's backends) when the members are the same. Checks everything about the service
/// but whether another service claims its frontends.
fn build_service(
    id: ServiceId,
    s: &ServiceSpec,
    maglev_size: MaglevSize,
    reuse: Option<(&Service, &[Backend])>,
    all_backends: &mut Vec<Backend>,
) -> Result<Service, TableError> {
    let err_name = || s.name.clone();
    let Some(first) = s.frontends.first() else {
        return Err(TableError::NoFrontend { service: err_name() });
    };
    let family = first.frontend.family();
    if s.frontends.iter().any(|k| k.frontend.family() != family)
        || s.backends.iter().any(|b| b.addr.family() != family)
    {
        return Err(TableError::MixedFamilies { service: err_name() });
    }
    let snat: Vec<Addr> = s.snat.iter().copied().filter(|a| a.family() == family).collect();
    if s.nat == NatMode::FullNat && snat.is_empty() {
        return Err(TableError::NoSnatAddress { service: err_name(), family });
    }
    // Canonical order: by address then port, so the Maglev table and every index are
    // independent of the order the backends were listed in.
    let mut backends = s.backends.clone();
    backends.sort_by_key(|b| (b.addr, b.port));
    for w in backends.windows(2) {
        if (w[0].addr, w[0].port) == (w[1].addr, w[1].port) {
            return Err(TableError::DuplicateBackend {
                service: err_name(),
                addr: w[0].addr,
                port: w[0].port,
            });
        }
    }
    if backends.len() > maglev::MAX_BACKENDS {
        return Err(TableError::Maglev {
            service: err_name(),
            error: maglev::BuildError::TooManyBackends(backends.len()),
        });
    }
    let start = all_backends.len() as u32;
    for b in &backends {
        if b.port == 0 || b.addr == Addr::unspecified(b.addr.family()) {
            return Err(TableError::BadBackend { service: err_name(), addr: b.addr, port: b.port });
        }
        all_backends.push(Backend {
            addr: b.addr,
            port: b.port,
            weight: b.weight,
            conditions: b.conditions,
            service: id,
            eligible: false,
        });
    }
    let end = all_backends.len() as u32;
    let usable = |b: &BackendSpec| b.weight > 0;
    let mut eligible: Vec<u16> = (0..backends.len() as u16)
        .filter(|&o| usable(&backends[o as usize]) && backends[o as usize].conditions.ready)
        .collect();
    if eligible.is_empty() {
        eligible = (0..backends.len() as u16)
            .filter(|&o| {
                let b = &backends[o as usize];
                usable(b) && b.conditions.serving && b.conditions.terminating
            })
            .collect();
    }
    for &o in &eligible {
        all_backends[start as usize + o as usize].eligible = true;
    }
    let members: Vec<Member> = eligible
        .iter()
        .map(|&o| {
            let b = &backends[o as usize];
            let mut id = [0u8; 18];
            id[..16].copy_from_slice(&b.addr.0);
            id[16..].copy_from_slice(&b.port.to_be_bytes());
            Member { id, weight: u32::from(b.weight), index: o }
        })
        .collect();
    let m = match maglev_size {
        MaglevSize::Fixed(m) => m,
        MaglevSize::Auto => maglev::size_for(members.len()),
    };
    let same_members = |p: &Service| {
        p.maglev.len() == m as usize
            && p.eligible == eligible
            && members.iter().all(|mem| {
                let b = &reuse.map_or(&[][..], |(_, b)| b)[p.backends.start as usize + mem.index as usize];
                let mut id = [0u8; 18];
                id[..16].copy_from_slice(&b.addr.0);
                id[16..].copy_from_slice(&b.port.to_be_bytes());
                id == mem.id && u32::from(b.weight) == mem.weight
            })
    };
    let maglev = match reuse.map(|(p, _)| p) {
        Some(p) if !members.is_empty() && same_members(p) => p.maglev.clone(),
        _ if members.is_empty() => MaglevTable::build(&[], maglev::size_for(0))
            .map_err(|error| TableError::Maglev { service: err_name(), error })?,
        _ => MaglevTable::build(&members, m)
            .map_err(|error| TableError::Maglev { service: err_name(), error })?,
    };
    Ok(Service {
        id,
        name: s.name.clone(),
        name_hash: crate::hash::stable(s.name.as_bytes()),
        frontends: s.frontends.clone(),
        family,
        scheduler: s.scheduler,
        affinity: s.affinity,
        nat: s.nat,
        snat,
        backends: start..end,
        eligible,
        maglev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Addr {
        Addr::from_v4(a)
    }

    fn backend(last: u8, c: Conditions) -> BackendSpec {
        BackendSpec { addr: v4([198, 18, 1, last]), port: 8080, weight: 1, conditions: c }
    }

    fn svc(name: &str, vip: [u8; 4], backends: Vec<BackendSpec>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            frontends: vec![ServiceKey {
                frontend: Frontend::Address(v4(vip)),
                port: 80,
                protocol: Protocol::Tcp,
            }],
            backends,
            scheduler: Scheduler::Maglev,
            affinity: None,
            nat: NatMode::FullNat,
            snat: vec![v4([198, 18, 0, 1])],
        }
    }

    #[test]
    fn lookup_address_and_nodeport() {
        let mut np = svc("np", [0, 0, 0, 0], vec![backend(1, Conditions::READY)]);
        np.frontends = vec![ServiceKey {
            frontend: Frontend::NodePort(Family::V4),
            port: 31080,
            protocol: Protocol::Tcp,
        }];
        let spec = TableSpec {
            generation: Generation(7),
            services: vec![svc("vip", [198, 19, 0, 10], vec![backend(1, Conditions::READY)]), np],
            node_addrs: vec![v4([198, 18, 0, 1])],
            maglev_size: MaglevSize::Auto,
            l7: Default::default(),
        };
        let t = ServiceTable::build(&spec).unwrap();
        assert_eq!(t.generation(), Generation(7));
        assert_eq!(t.lookup(&v4([198, 19, 0, 10]), 80, Protocol::Tcp), Some(ServiceId(0)));
        assert_eq!(t.lookup(&v4([198, 19, 0, 10]), 80, Protocol::Udp), None);
        assert_eq!(t.lookup(&v4([198, 18, 0, 1]), 31080, Protocol::Tcp), Some(ServiceId(1)));
        // NodePorts answer only on the node's own addresses.
        assert_eq!(t.lookup(&v4([198, 18, 0, 9]), 31080, Protocol::Tcp), None);
        assert!(t.is_vip(&v4([198, 19, 0, 10])));
        assert!(!t.is_vip(&v4([198, 18, 0, 1])));
    }

    #[test]
    fn a_vip_another_node_announces_in_l2_is_not_answered_for() {
        let spec = TableSpec {
            services: vec![
                svc("a", [198, 18, 100, 10], vec![backend(1, Conditions::READY)]),
                svc("b", [198, 18, 100, 11], vec![backend(1, Conditions::READY)]),
                svc("c", [198, 18, 100, 12], vec![backend(1, Conditions::READY)]),
            ],
            ..TableSpec::default()
        };
        let mut t = ServiceTable::build(&spec).unwrap();
        let (a, b, c) = (v4([198, 18, 100, 10]), v4([198, 18, 100, 11]), v4([198, 18, 100, 12]));
        // No L2 mode: every VIP, as before; never an address that is no VIP.
        assert!(t.answers_for(&a) && t.answers_for(&b) && t.answers_for(&c));
        assert!(!t.answers_for(&v4([198, 18, 100, 13])));
        t.set_l2([(a, L2Role::Active), (b, L2Role::Standby)].into_iter().collect());
        assert!(t.answers_for(&a), "active here");
        assert!(!t.answers_for(&b), "another node's");
        assert!(t.answers_for(&c), "not in L2 mode: as before");
        assert!(!t.answers_for(&v4([198, 18, 100, 13])));
        // Standby still forwards: the VIP stays a VIP.
        assert!(t.is_vip(&b));
    }

    #[test]
    fn eligible_ready_then_fallback_to_serving_terminating() {
        let t = ServiceTable::build(&TableSpec {
            services: vec![
                svc(
                    "mixed",
                    [198, 19, 0, 1],
                    vec![
                        backend(1, Conditions::READY),
                        backend(2, Conditions::DRAINING),
                        backend(3, Conditions { ready: false, serving: false, terminating: false }),
                    ],
                ),
                svc(
                    "draining",
                    [198, 19, 0, 2],
                    vec![
                        backend(1, Conditions::DRAINING),
                        backend(2, Conditions { ready: false, serving: false, terminating: true }),
                    ],
                ),
            ],
            ..TableSpec::default()
        })
        .unwrap();
        assert_eq!(t.service(ServiceId(0)).eligible, vec![0]);
        assert_eq!(t.service(ServiceId(1)).eligible, vec![0], "no ready: serving+terminating only");
        assert!(t.service(ServiceId(1)).maglev.entries().iter().all(|&e| e == 0));
        // Every backend, eligible or not, can still be found by address for existing flows.
        assert!(t.backend_by_addr(ServiceId(1), &v4([198, 18, 1, 2]), 8080).is_some());
    }

    #[test]
    fn order_of_listing_does_not_matter() {
        let bs: Vec<BackendSpec> = (1..=9).map(|i| backend(i, Conditions::READY)).collect();
        let mut rev = bs.clone();
        rev.reverse();
        let a = ServiceTable::build(&TableSpec {
            services: vec![svc("a", [198, 19, 0, 1], bs)],
            ..TableSpec::default()
        })
        .unwrap();
        let b = ServiceTable::build(&TableSpec {
            services: vec![svc("a", [198, 19, 0, 1], rev)],
            ..TableSpec::default()
        })
        .unwrap();
        assert_eq!(a.services()[0].maglev, b.services()[0].maglev);
        assert_eq!(a.backends(), b.backends());
    }

    #[test]
    fn refusals_name_the_service() {
        let dup = TableSpec {
            services: vec![svc("first", [198, 19, 0, 1], vec![]), svc("second", [198, 19, 0, 1], vec![])],
            ..TableSpec::default()
        };
        let e = ServiceTable::build(&dup).unwrap_err();
        assert_eq!(
            e.to_string(),
            "service second: frontend 198.19.0.1:80/tcp is already used by service first"
        );

        let mut nosnat = svc("nosnat", [198, 19, 0, 1], vec![]);
        nosnat.snat = vec![Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])];
        let e =
            ServiceTable::build(&TableSpec { services: vec![nosnat], ..TableSpec::default() }).unwrap_err();
        assert!(matches!(e, TableError::NoSnatAddress { family: Family::V4, .. }), "{e}");

        let mixed = svc(
            "mixed",
            [198, 19, 0, 1],
            vec![BackendSpec {
                addr: Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                port: 80,
                weight: 1,
                conditions: Conditions::READY,
            }],
        );
        let e =
            ServiceTable::build(&TableSpec { services: vec![mixed], ..TableSpec::default() }).unwrap_err();
        assert!(matches!(e, TableError::MixedFamilies { .. }));

        let twice =
            svc("twice", [198, 19, 0, 1], vec![backend(1, Conditions::READY), backend(1, Conditions::READY)]);
        let e =
            ServiceTable::build(&TableSpec { services: vec![twice], ..TableSpec::default() }).unwrap_err();
        assert!(matches!(e, TableError::DuplicateBackend { .. }));

        // An affinity timeout out of range cannot even be made.
        assert_eq!(Affinity::new(86_401), None);
        assert_eq!(Affinity::new(0), None);
        assert_eq!(Affinity::new(86_400).map(Affinity::timeout_s), Some(86_400));
    }

    proptest::proptest! {
        /// Updating a table in place for services whose backends changed gives the table a build
        /// gives, whatever changed (backends added, removed, made ready or not, reweighted).
        #[test]
        fn update_gives_the_table_a_build_would(
            before in proptest::collection::vec(proptest::collection::vec((1u8..40, 0u8..4, 1u16..3), 0..8), 1..10),
            edits in proptest::collection::vec((0usize..10, proptest::collection::vec((1u8..40, 0u8..4, 1u16..3), 0..8), proptest::bool::ANY), 0..6),
        ) {
            let conditions = [Conditions::READY, Conditions::DRAINING, Conditions { ready: false, serving: false, terminating: false }, Conditions { ready: true, serving: true, terminating: false }];
            let backends = |v: &Vec<(u8, u8, u16)>| {
                let mut seen = std::collections::BTreeSet::new();
                v.iter()
                    .filter(|(last, _, _)| seen.insert(*last))
                    .map(|&(last, c, w)| BackendSpec { weight: w, ..backend(last, conditions[c as usize]) })
                    .collect::<Vec<_>>()
            };
            let services = |all: &Vec<Vec<(u8, u8, u16)>>| {
                all.iter().enumerate().map(|(i, b)| svc(&format!("s{i}"), [198, 19, 0, i as u8 + 1], backends(b))).collect()
            };
            let old_spec = TableSpec { generation: Generation(1), services: services(&before), ..TableSpec::default() };
            let mut after = before.clone();
            let mut changed = Vec::new();
            for (i, b, reweight) in edits {
                let i = i % after.len();
                if reweight {
                    // The same backends, each weight changed (1 ↔ 2): only the weights differ.
                    after[i].iter_mut().for_each(|x| x.2 = 3 - x.2);
                } else {
                    after[i] = b;
                }
                changed.push(i);
            }
            let new_spec = TableSpec { generation: Generation(2), services: services(&after), ..TableSpec::default() };
            let old = ServiceTable::build(&old_spec).unwrap();
            let mut updated = old.clone();
            proptest::prop_assert!(updated.update(&new_spec, &changed).unwrap());
            // Against a fresh build, which shares no Maglev-reuse check with `update` (as the
            // doc promises), and against a reusing build (what control publishes).
            let fresh = ServiceTable::build(&new_spec).unwrap();
            let reusing = ServiceTable::build_reusing(&new_spec, Some(&old)).unwrap();
            for built in [&fresh, &reusing] {
                proptest::prop_assert_eq!(updated.generation(), built.generation());
                proptest::prop_assert_eq!(updated.services(), built.services());
                proptest::prop_assert_eq!(updated.backends(), built.backends());
            }
        }
    }

    #[test]
    fn update_refuses_what_it_cannot_patch_and_keeps_the_table_on_errors() {
        let bs = |n: u8| (1..=n).map(|i| backend(i, Conditions::READY)).collect::<Vec<_>>();
        let spec = TableSpec {
            services: vec![svc("a", [198, 19, 0, 1], bs(3)), svc("b", [198, 19, 0, 2], bs(2))],
            ..TableSpec::default()
        };
        let t = ServiceTable::build(&spec).unwrap();
        // Another name, other frontends, another number of services: not a patch.
        let mut renamed = spec.clone();
        renamed.services[1].name = "c".into();
        let mut moved = spec.clone();
        moved.services[1].frontends[0].port = 81;
        let mut fewer = spec.clone();
        fewer.services.pop();
        for other in [renamed, moved, fewer] {
            let mut u = t.clone();
            assert_eq!(u.update(&other, &[1]), Ok(false));
            assert_eq!(u.services(), t.services());
        }
        // An invalid service: the error, and the table as it was.
        let mut twice = spec.clone();
        twice.services[0].backends = vec![backend(1, Conditions::READY), backend(1, Conditions::READY)];
        twice.services[1].backends = bs(4);
        let mut u = t.clone();
        assert!(matches!(u.update(&twice, &[0, 1]), Err(TableError::DuplicateBackend { .. })));
        assert_eq!((u.services(), u.backends()), (t.services(), t.backends()));
    }

    #[test]
    fn reuse_gives_the_table_a_fresh_build_would() {
        let bs = |n: u8| (1..=n).map(|i| backend(i, Conditions::READY)).collect::<Vec<_>>();
        let spec = |b3: Vec<BackendSpec>| TableSpec {
            services: vec![svc("a", [198, 19, 0, 1], bs(5)), svc("b", [198, 19, 0, 2], b3)],
            ..TableSpec::default()
        };
        let old = ServiceTable::build(&spec(bs(3))).unwrap();
        // Unchanged services are reused; changed ones (added, weight, readiness) are rebuilt;
        // either way the result equals a fresh build.
        let mut weight = bs(3);
        weight[1].weight = 5;
        let mut not_ready = bs(3);
        not_ready[0].conditions = Conditions::DRAINING;
        for b in [bs(3), bs(4), weight, not_ready] {
            let fresh = ServiceTable::build(&spec(b.clone())).unwrap();
            let reused = ServiceTable::build_reusing(&spec(b), Some(&old)).unwrap();
            assert_eq!(fresh.services(), reused.services());
        }
    }

    #[test]
    fn scheduler_names_round_trip() {
        for (n, s) in Scheduler::ALL {
            assert_eq!(n.parse::<Scheduler>().unwrap(), s);
            assert_eq!(s.name(), n);
        }
        assert!("wlc".parse::<Scheduler>().unwrap_err().contains("expected one of maglev, rr"));
    }
}
