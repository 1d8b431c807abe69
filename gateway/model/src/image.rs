//! A table generation as bytes: the versioned, position-independent image the control process
//! publishes through the shared-memory table (`sluice-table`) and the gateway validates and
//! adopts. Positions are offsets from the start of the image, never pointers; every integer is
//! little-endian; the layout is written once, in [`layout`], and [`IMAGE_VERSION`] changes with
//! it.
//!
//! An image is a header, then regions one after another: service records, backend records,
//! frontend records, node addresses, a pool of u16 (each service's eligible backends and Maglev
//! table), a pool of addresses (SNAT), and the services' names. Each service's backends and
//! frontends are contiguous and follow the previous service's, so a record says where its first
//! one is and how many. Then the L7 half ([`crate::l7::L7Table`]: routes, upstreams,
//! certificates, listeners): ten regions of records and a byte pool of strings and DER, laid out
//! and checked the same way (`image/l7.rs` says how).
//!
//! **Private keys are in the image** (certificates' `key_der`): whatever holds it must be
//! readable by the gateway's user only (`sluice-table` creates and checks its file so).
//!
//! [`decode`] checks every offset, count and cross-reference before building anything — a
//! damaged or hostile image is refused with the place it is wrong, never a panic — and keeps the
//! Maglev arrays as they were built by control, so every node runs byte-identical tables.
//!
//! **Allocation is bounded by the image's size.** The regions lie one after another, in the
//! order above, without overlapping; backends and frontends are claimed by one service each (each
//! service's follow the previous one's); and the per-service ranges into the pools (names, u16
//! arrays, SNAT addresses), which the format lets lie anywhere in their pool, may together claim
//! no more items than their pool holds. So every item decoded comes from bytes of its own, and
//! what [`decode`] allocates is a small multiple of the image's length (a test measures it with
//! a counting allocator, also for an image whose services all name one huge pool range — before
//! this rule, a few hundred kilobytes could ask for gigabytes).
//!
//! Not hot path: encoded once per generation by control; decoded once per generation by the
//! gateway's main thread, which hands the decoded table to every worker.

mod l7;
pub mod layout;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::addr::{Addr, Family};
#[cfg(test)]
use crate::l7::L7Table;
use crate::maglev::MaglevTable;
use crate::service::{
    Affinity, Backend, Conditions, Frontend, Generation, L2Role, Protocol, Scheduler, Service, ServiceId,
    ServiceKey, ServiceTable,
};
use layout::{
    ADDR_SIZE, CONDITION_ELIGIBLE, CONDITION_READY, CONDITION_SERVING, CONDITION_TERMINATING, FAMILY,
    FRONTEND_KIND, FrontendKind, L2_ROLE, NAT, SERVICE_AFFINITY, U16_SIZE, backend, code, decode_code,
    frontend, header, l2_addr, service,
};

/// First eight bytes of an image.
pub const IMAGE_MAGIC: [u8; 8] = *b"SLUICEIM";
/// The image layout version. 2: the L7 half ([`crate::l7::L7Table`]) after the L4 regions.
/// 3: each route's metrics row. 5: the VIPs in L2 mode and this node's role for each, after
/// the L7 byte pool (in the header's bytes that were reserved).
pub const IMAGE_VERSION: u32 = 5;

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the header.
    TooShort(usize),
    /// Not an image.
    BadMagic,
    /// Another layout version.
    Version(u32),
    /// A region (named) lies outside the image.
    Region(&'static str),
    /// A service record is inconsistent.
    Service {
        /// Its index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A backend record is inconsistent.
    Backend {
        /// Its index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A frontend record is inconsistent.
    Frontend {
        /// Its index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two services claim one frontend.
    DuplicateFrontend(ServiceKey),
    /// A region (named) starts before the previous one ends.
    Overlap(&'static str),
    /// The services' ranges into a pool (named) claim more than it holds: they overlap.
    PoolOverclaimed(&'static str),
    /// A record of an L7 region is inconsistent.
    L7 {
        /// The region (`"L7 paths"`, `"certificates"`…).
        region: &'static str,
        /// The record's index in it.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An L2 address record is inconsistent.
    L2 {
        /// The record's index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::TooShort(n) => write!(f, "table image of {n} bytes is shorter than its header"),
            ImageError::BadMagic => f.write_str("not a table image (no SLUICEIM magic)"),
            ImageError::Version(v) => {
                write!(f, "table image version {v}, this build reads version {IMAGE_VERSION}")
            }
            ImageError::Region(r) => write!(f, "table image: the {r} lie outside the image"),
            ImageError::Service { index, reason } => write!(f, "table image: service {index}: {reason}"),
            ImageError::Backend { index, reason } => write!(f, "table image: backend {index}: {reason}"),
            ImageError::Frontend { index, reason } => write!(f, "table image: frontend {index}: {reason}"),
            ImageError::DuplicateFrontend(k) => write!(f, "table image: frontend {k} claimed twice"),
            ImageError::Overlap(r) => {
                write!(f, "table image: the {r} overlap the region before them (regions follow one another)")
            }
            ImageError::PoolOverclaimed(p) => write!(
                f,
                "table image: the services claim more of the {p} than it holds (their ranges overlap)"
            ),
            ImageError::L7 { region, index, reason } => {
                write!(f, "table image: {region}: record {index}: {reason}")
            }
            ImageError::L2 { index, reason } => write!(f, "table image: L2 address {index}: {reason}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// Where each region starts, and how many items it holds: the header's content.
#[derive(Debug, Clone, Copy, Default)]
struct Regions {
    services: (usize, usize),
    backends: (usize, usize),
    frontends: (usize, usize),
    node_addrs: (usize, usize),
    u16_pool: (usize, usize),
    addr_pool: (usize, usize),
    names: (usize, usize),
    /// The L7 regions of records, in [`layout::L7_REGIONS`] order.
    l7: [(usize, usize); l7::REGIONS],
    /// The L7 byte pool.
    l7_pool: (usize, usize),
    /// The L2 address records, last.
    l2: (usize, usize),
    end: usize,
}

impl Regions {
    /// Lays the regions out one after another for items of these counts (the L7 regions and
    /// pool after them: [`Regions::plan_l7`]).
    fn plan(
        services: usize,
        backends: usize,
        frontends: usize,
        node_addrs: usize,
        u16s: usize,
        addrs: usize,
        names: usize,
    ) -> Regions {
        let mut at = header::SIZE;
        let mut next = |count: usize, size: usize| {
            let start = at;
            at += count * size;
            (start, count)
        };
        let services = next(services, service::SIZE);
        let backends = next(backends, backend::SIZE);
        let frontends = next(frontends, frontend::SIZE);
        let node_addrs = next(node_addrs, ADDR_SIZE);
        let u16_pool = next(u16s, U16_SIZE);
        let addr_pool = next(addrs, ADDR_SIZE);
        let names = next(names, 1);
        Regions {
            services,
            backends,
            frontends,
            node_addrs,
            u16_pool,
            addr_pool,
            names,
            l7: [(at, 0); l7::REGIONS],
            l7_pool: (at, 0),
            l2: (at, 0),
            end: at,
        }
    }

    /// Lays the L7 regions out after the others, for these (records, count) and pool.
    fn plan_l7(&mut self, e: &l7::Encoded) {
        let mut at = self.end;
        for (k, (records, n)) in e.regions.iter().enumerate() {
            self.l7[k] = (at, *n);
            at += records.len();
        }
        self.l7_pool = (at, e.pool.len());
        self.end = at + e.pool.len();
        self.l2 = (self.end, 0);
    }

    /// Lays the L2 address records out last, for `n` of them.
    fn plan_l2(&mut self, n: usize) {
        self.l2 = (self.end, n);
        self.end += n * l2_addr::SIZE;
    }
}

/// Encodes a table. Deterministic: the same table gives the same bytes. Sizes first, then
/// every region written in place into one buffer of the exact size.
pub fn encode(t: &ServiceTable) -> Vec<u8> {
    let svcs = t.services();
    let mut r = Regions::plan(
        svcs.len(),
        t.backends().len(),
        svcs.iter().map(|s| s.frontends.len()).sum(),
        t.node_addrs().len(),
        svcs.iter().map(|s| s.eligible.len() + s.maglev.len()).sum(),
        svcs.iter().map(|s| s.snat.len()).sum(),
        svcs.iter().map(|s| s.name.len()).sum(),
    );
    let l4_end = r.end;
    let l7 = l7::encode(t.l7());
    r.plan_l7(&l7);
    r.plan_l2(t.l2().len());
    let mut out = Vec::with_capacity(r.end);
    out.resize(l4_end, 0);
    for (records, _) in &l7.regions {
        out.extend_from_slice(records);
    }
    out.extend_from_slice(&l7.pool);
    for (a, role) in t.l2() {
        let mut rec = [0u8; l2_addr::SIZE];
        l2_addr::ADDR.write(&mut rec, a.0);
        l2_addr::ROLE.write(&mut rec, code(&L2_ROLE, *role));
        out.extend_from_slice(&rec);
    }
    write_header(&mut out[..header::SIZE], t.generation(), &r);
    // Each service's items go at the next free place of each pool.
    let (mut u16_next, mut addr_next, mut name_next, mut fe_next) = (0usize, 0usize, 0usize, 0usize);
    for s in svcs {
        let at = r.services.0 + s.id.0 as usize * service::SIZE;
        write_service(&mut out[at..at + service::SIZE], s, u16_next, addr_next, name_next, fe_next);
        // The u16 pool: the eligible offsets, then the Maglev array — most of an image's bytes,
        // so each is written in one pass over exact chunks (no bounds check per entry; not one
        // chained iterator, which the compiler does not vectorise).
        for xs in [&s.eligible[..], s.maglev.entries()] {
            let at = r.u16_pool.0 + U16_SIZE * u16_next;
            for (dst, x) in out[at..at + U16_SIZE * xs.len()].chunks_exact_mut(U16_SIZE).zip(xs) {
                dst.copy_from_slice(&x.to_le_bytes());
            }
            u16_next += xs.len();
        }
        for (k, a) in s.snat.iter().enumerate() {
            let at = r.addr_pool.0 + ADDR_SIZE * (addr_next + k);
            out[at..at + ADDR_SIZE].copy_from_slice(&a.0);
        }
        addr_next += s.snat.len();
        let at = r.names.0 + name_next;
        out[at..at + s.name.len()].copy_from_slice(s.name.as_bytes());
        name_next += s.name.len();
        for (k, key) in s.frontends.iter().enumerate() {
            let at = r.frontends.0 + frontend::SIZE * (fe_next + k);
            write_frontend(&mut out[at..at + frontend::SIZE], key, s.id);
        }
        fe_next += s.frontends.len();
    }
    for (i, b) in t.backends().iter().enumerate() {
        let at = r.backends.0 + backend::SIZE * i;
        let rec = &mut out[at..at + backend::SIZE];
        backend::ADDR.write(rec, b.addr.0);
        backend::PORT.write(rec, b.port);
        backend::WEIGHT.write(rec, b.weight);
        backend::CONDITIONS.write(rec, layout::conditions_byte(&b.conditions, b.eligible));
    }
    for (i, a) in t.node_addrs().iter().enumerate() {
        let at = r.node_addrs.0 + ADDR_SIZE * i;
        out[at..at + ADDR_SIZE].copy_from_slice(&a.0);
    }
    out
}

fn write_header(h: &mut [u8], generation: Generation, r: &Regions) {
    let u32_of = |x: usize| x as u32;
    header::MAGIC.write(h, IMAGE_MAGIC);
    header::VERSION.write(h, IMAGE_VERSION);
    header::GENERATION.write(h, generation.0);
    for (count, at, (start, n)) in [
        (header::SERVICES, header::SERVICES_AT, r.services),
        (header::BACKENDS, header::BACKENDS_AT, r.backends),
        (header::FRONTENDS, header::FRONTENDS_AT, r.frontends),
        (header::NODE_ADDRS, header::NODE_ADDRS_AT, r.node_addrs),
        (header::U16_POOL_LEN, header::U16_POOL_AT, r.u16_pool),
        (header::ADDR_POOL_LEN, header::ADDR_POOL_AT, r.addr_pool),
        (header::NAMES_LEN, header::NAMES_AT, r.names),
    ] {
        count.write(h, u32_of(n));
        at.write(h, u32_of(start));
    }
    for ((_, count, at, _), (start, n)) in layout::L7_REGIONS.iter().zip(r.l7) {
        count.write(h, u32_of(n));
        at.write(h, u32_of(start));
    }
    header::L7_BYTES_LEN.write(h, u32_of(r.l7_pool.1));
    header::L7_BYTES_AT.write(h, u32_of(r.l7_pool.0));
    header::L2_ADDRS.write(h, u32_of(r.l2.1));
    header::L2_ADDRS_AT.write(h, u32_of(r.l2.0));
}

fn write_service(rec: &mut [u8], s: &Service, u16_at: usize, addr_at: usize, name_at: usize, fe_at: usize) {
    service::NAME_AT.write(rec, name_at as u32);
    service::NAME_LEN.write(rec, s.name.len() as u32);
    service::NAME_HASH.write(rec, s.name_hash);
    service::FAMILY.write(rec, code(&FAMILY, s.family));
    service::SCHEDULER.write(rec, layout::scheduler_code(s.scheduler));
    service::NAT.write(rec, code(&NAT, s.nat));
    service::FLAGS.write(rec, if s.affinity.is_some() { SERVICE_AFFINITY } else { 0 });
    service::AFFINITY_TIMEOUT_S.write(rec, s.affinity.map_or(0, Affinity::timeout_s));
    service::BACKENDS_FIRST.write(rec, s.backends.start);
    service::BACKENDS_COUNT.write(rec, s.backends.end - s.backends.start);
    service::ELIGIBLE_AT.write(rec, u16_at as u32);
    service::ELIGIBLE_COUNT.write(rec, s.eligible.len() as u32);
    service::MAGLEV_AT.write(rec, (u16_at + s.eligible.len()) as u32);
    service::MAGLEV_COUNT.write(rec, s.maglev.len() as u32);
    service::SNAT_AT.write(rec, addr_at as u32);
    service::SNAT_COUNT.write(rec, s.snat.len() as u32);
    service::FRONTENDS_FIRST.write(rec, fe_at as u32);
    service::FRONTENDS_COUNT.write(rec, s.frontends.len() as u32);
}

fn write_frontend(rec: &mut [u8], key: &ServiceKey, owner: ServiceId) {
    let (addr, kind) = match key.frontend {
        Frontend::Address(a) => (a, FrontendKind::Address),
        Frontend::NodePort(f) => (Addr([0; 16]), FrontendKind::NodePort(f)),
    };
    frontend::ADDR.write(rec, addr.0);
    frontend::PORT.write(rec, key.port);
    frontend::PROTOCOL.write(rec, key.protocol.number());
    frontend::KIND.write(rec, code(&FRONTEND_KIND, kind));
    frontend::SERVICE.write(rec, owner.0);
}

/// Decodes and validates an image: the header and the regions it names, every backend and
/// frontend record, then every service with what it refers to. See the module documentation.
pub fn decode(bytes: &[u8]) -> Result<ServiceTable, ImageError> {
    let (generation, r) = read_header(bytes)?;
    let backends = read_backends(bytes, &r)?;
    let frontends = read_frontends(bytes, &r)?;
    let mut d = Decoder {
        bytes,
        r: &r,
        backends,
        frontends,
        next_backend: 0,
        next_frontend: 0,
        left: Budget { u16s: r.u16_pool.1, addrs: r.addr_pool.1, name_bytes: r.names.1 },
    };
    let mut services = Vec::with_capacity(r.services.1);
    for i in 0..r.services.1 {
        services.push(d.service(i)?);
    }
    if d.next_backend as usize != r.backends.1 {
        return Err(ImageError::Backend { index: d.next_backend as usize, reason: "belongs to no service" });
    }
    if d.next_frontend as usize != r.frontends.1 {
        return Err(ImageError::Frontend {
            index: d.next_frontend as usize,
            reason: "belongs to no service",
        });
    }
    let node_addrs = (0..r.node_addrs.1).map(|k| addr_at(bytes, r.node_addrs.0 + ADDR_SIZE * k)).collect();
    let l7 = Arc::new(l7::decode(bytes, r.l7, r.l7_pool)?);
    let l2 = read_l2(bytes, &r)?;
    let mut t = ServiceTable::from_parts(generation, services, d.backends, node_addrs, l7)
        .map_err(ImageError::DuplicateFrontend)?;
    t.set_l2(l2);
    Ok(t)
}

/// The L2 address records: each address once, each role a known code.
fn read_l2(bytes: &[u8], r: &Regions) -> Result<BTreeMap<Addr, L2Role>, ImageError> {
    let mut out = BTreeMap::new();
    for i in 0..r.l2.1 {
        let at = r.l2.0 + i * l2_addr::SIZE;
        let rec = &bytes[at..at + l2_addr::SIZE];
        let bad = |reason| ImageError::L2 { index: i, reason };
        let role = decode_code(&L2_ROLE, l2_addr::ROLE.read(rec)).ok_or(bad("unknown role"))?;
        if l2_addr::RESERVED.read(rec) != [0; 3] {
            return Err(bad("reserved bytes not zero"));
        }
        if out.insert(Addr(l2_addr::ADDR.read(rec)), role).is_some() {
            return Err(bad("address given twice"));
        }
    }
    Ok(out)
}

/// The address at `at` (inside a region already checked to lie in the image).
fn addr_at(bytes: &[u8], at: usize) -> Addr {
    Addr(layout::Field::<[u8; 16]>::at(0).read(&bytes[at..at + ADDR_SIZE]))
}

/// The header, and each region checked to lie inside the image, after the header.
fn read_header(bytes: &[u8]) -> Result<(Generation, Regions), ImageError> {
    if bytes.len() < header::SIZE {
        return Err(ImageError::TooShort(bytes.len()));
    }
    let h = &bytes[..header::SIZE];
    if header::MAGIC.read(h) != IMAGE_MAGIC {
        return Err(ImageError::BadMagic);
    }
    if header::VERSION.read(h) != IMAGE_VERSION || header::FLAGS.read(h) != 0 {
        return Err(ImageError::Version(header::VERSION.read(h)));
    }
    let region = |count: layout::Field<u32>, at: layout::Field<u32>, size: usize, name: &'static str| {
        let (start, n) = (at.read(h) as usize, count.read(h) as usize);
        let len = n.checked_mul(size).ok_or(ImageError::Region(name))?;
        match start.checked_add(len) {
            Some(end) if start >= header::SIZE && end <= bytes.len() => Ok((start, n)),
            _ => Err(ImageError::Region(name)),
        }
    };
    let r = Regions {
        services: region(header::SERVICES, header::SERVICES_AT, service::SIZE, "service records")?,
        backends: region(header::BACKENDS, header::BACKENDS_AT, backend::SIZE, "backend records")?,
        frontends: region(header::FRONTENDS, header::FRONTENDS_AT, frontend::SIZE, "frontend records")?,
        node_addrs: region(header::NODE_ADDRS, header::NODE_ADDRS_AT, ADDR_SIZE, "node addresses")?,
        u16_pool: region(header::U16_POOL_LEN, header::U16_POOL_AT, U16_SIZE, "u16 pool")?,
        addr_pool: region(header::ADDR_POOL_LEN, header::ADDR_POOL_AT, ADDR_SIZE, "address pool")?,
        names: region(header::NAMES_LEN, header::NAMES_AT, 1, "names")?,
        l7: [(0, 0); l7::REGIONS],
        l7_pool: region(header::L7_BYTES_LEN, header::L7_BYTES_AT, 1, "L7 byte pool")?,
        l2: region(header::L2_ADDRS, header::L2_ADDRS_AT, l2_addr::SIZE, "L2 addresses")?,
        end: bytes.len(),
    };
    let mut r = r;
    for (k, &(name, count, at, size)) in layout::L7_REGIONS.iter().enumerate() {
        r.l7[k] = region(count, at, size, name)?;
    }
    // One after another, none overlapping the next: every item decoded has bytes of its own.
    let ordered = [
        (r.services, service::SIZE, "service records"),
        (r.backends, backend::SIZE, "backend records"),
        (r.frontends, frontend::SIZE, "frontend records"),
        (r.node_addrs, ADDR_SIZE, "node addresses"),
        (r.u16_pool, U16_SIZE, "u16 pool"),
        (r.addr_pool, ADDR_SIZE, "address pool"),
        (r.names, 1, "names"),
    ];
    let l7_regions =
        layout::L7_REGIONS.iter().zip(r.l7).map(|(&(name, _, _, size), region)| (region, size, name));
    let mut end = header::SIZE;
    for ((start, n), size, name) in ordered
        .into_iter()
        .chain(l7_regions)
        .chain([(r.l7_pool, 1, "L7 byte pool"), (r.l2, l2_addr::SIZE, "L2 addresses")])
    {
        if start < end {
            return Err(ImageError::Overlap(name));
        }
        // Cannot overflow: `region` checked start + n × size ≤ the image's length.
        end = start + n * size;
    }
    Ok((Generation(header::GENERATION.read(h)), r))
}

fn read_backends(bytes: &[u8], r: &Regions) -> Result<Vec<Backend>, ImageError> {
    let mut backends = Vec::with_capacity(r.backends.1);
    for i in 0..r.backends.1 {
        let at = r.backends.0 + i * backend::SIZE;
        let rec = &bytes[at..at + backend::SIZE];
        let c = backend::CONDITIONS.read(rec);
        let b = Backend {
            addr: Addr(backend::ADDR.read(rec)),
            port: backend::PORT.read(rec),
            weight: backend::WEIGHT.read(rec),
            conditions: Conditions {
                ready: c & CONDITION_READY != 0,
                serving: c & CONDITION_SERVING != 0,
                terminating: c & CONDITION_TERMINATING != 0,
            },
            service: ServiceId::NONE,
            eligible: c & CONDITION_ELIGIBLE != 0,
        };
        if b.port == 0 {
            return Err(ImageError::Backend { index: i, reason: "port 0" });
        }
        backends.push(b);
    }
    Ok(backends)
}

/// Every frontend record: its key and the service it names.
fn read_frontends(bytes: &[u8], r: &Regions) -> Result<Vec<(ServiceKey, u32)>, ImageError> {
    let mut out = Vec::with_capacity(r.frontends.1);
    for i in 0..r.frontends.1 {
        let at = r.frontends.0 + i * frontend::SIZE;
        let rec = &bytes[at..at + frontend::SIZE];
        let err = |reason| ImageError::Frontend { index: i, reason };
        let protocol = Protocol::from_number(frontend::PROTOCOL.read(rec))
            .ok_or(err("protocol is neither TCP nor UDP"))?;
        let frontend =
            match decode_code(&FRONTEND_KIND, frontend::KIND.read(rec)).ok_or(err("unknown kind"))? {
                FrontendKind::Address => Frontend::Address(Addr(frontend::ADDR.read(rec))),
                FrontendKind::NodePort(f) => Frontend::NodePort(f),
            };
        out.push((
            ServiceKey { frontend, port: frontend::PORT.read(rec), protocol },
            frontend::SERVICE.read(rec),
        ));
    }
    Ok(out)
}

/// Service records, read in order: each service's backends and frontends must follow the
/// previous one's.
struct Decoder<'a> {
    bytes: &'a [u8],
    r: &'a Regions,
    backends: Vec<Backend>,
    frontends: Vec<(ServiceKey, u32)>,
    next_backend: u32,
    next_frontend: u32,
    /// What the pools still hold for the services not decoded yet.
    left: Budget,
}

/// Items of each pool not yet claimed by a service: a claim beyond them is refused before
/// anything is allocated for it.
#[derive(Debug, Clone, Copy)]
struct Budget {
    u16s: usize,
    addrs: usize,
    name_bytes: usize,
}

impl Budget {
    /// Takes `n` items from `left`, or refuses (the ranges overlap) without taking any.
    fn take(left: &mut usize, n: u32, pool: &'static str) -> Result<(), ImageError> {
        *left = left.checked_sub(n as usize).ok_or(ImageError::PoolOverclaimed(pool))?;
        Ok(())
    }
}

/// `count` items at `first` of a pool of `pool_len` items: checked to lie inside the pool.
fn within(first: u32, count: u32, pool_len: usize) -> bool {
    (first as usize).checked_add(count as usize).is_some_and(|e| e <= pool_len)
}

impl Decoder<'_> {
    fn service(&mut self, i: usize) -> Result<Service, ImageError> {
        let at = self.r.services.0 + i * service::SIZE;
        let rec = &self.bytes[at..at + service::SIZE];
        let err = |reason| ImageError::Service { index: i, reason };
        // Each range is charged to its pool before anything is allocated for it.
        Budget::take(&mut self.left.name_bytes, service::NAME_LEN.read(rec), "names")?;
        let u16s = u32::checked_add(service::ELIGIBLE_COUNT.read(rec), service::MAGLEV_COUNT.read(rec))
            .ok_or(ImageError::PoolOverclaimed("u16 pool"))?;
        Budget::take(&mut self.left.u16s, u16s, "u16 pool")?;
        Budget::take(&mut self.left.addrs, service::SNAT_COUNT.read(rec), "address pool")?;
        let name = self.name(rec).ok_or(err("name outside the names, or not UTF-8"))?;
        let name_hash = crate::hash::stable(name.as_bytes());
        if service::NAME_HASH.read(rec) != name_hash {
            return Err(err("name hash does not match the name"));
        }
        let family = decode_code(&FAMILY, service::FAMILY.read(rec)).ok_or(err("unknown family"))?;
        let scheduler =
            Scheduler::ALL.get(service::SCHEDULER.read(rec) as usize).ok_or(err("unknown scheduler"))?.1;
        let nat = decode_code(&NAT, service::NAT.read(rec)).ok_or(err("unknown NAT mode"))?;
        let affinity = match service::FLAGS.read(rec) {
            0 => None,
            SERVICE_AFFINITY => Some(
                Affinity::new(service::AFFINITY_TIMEOUT_S.read(rec))
                    .ok_or(err("affinity timeout out of range"))?,
            ),
            _ => return Err(err("unknown flags")),
        };
        let (be_first, be_n) = (service::BACKENDS_FIRST.read(rec), service::BACKENDS_COUNT.read(rec));
        if be_first != self.next_backend || !within(be_first, be_n, self.r.backends.1) {
            return Err(err("backends do not follow the previous service's"));
        }
        self.next_backend += be_n;
        let n = be_n as usize;
        let eligible = self
            .u16s(service::ELIGIBLE_AT.read(rec), service::ELIGIBLE_COUNT.read(rec))
            .ok_or(err("array outside the u16 pool"))?;
        if eligible.windows(2).any(|w| w[0] >= w[1]) || eligible.iter().any(|&o| o as usize >= n) {
            return Err(err("eligible backends out of order or out of range"));
        }
        let mut is_eligible = vec![false; n];
        for &o in &eligible {
            is_eligible[o as usize] = true;
        }
        let entries = self
            .u16s(service::MAGLEV_AT.read(rec), service::MAGLEV_COUNT.read(rec))
            .ok_or(err("array outside the u16 pool"))?;
        let maglev =
            MaglevTable::from_entries(entries, |e| is_eligible.get(e as usize).copied().unwrap_or(false))
                .ok_or(err("Maglev table of non-prime size or naming a backend that is not eligible"))?;
        if maglev.is_empty() != eligible.is_empty() {
            return Err(err("Maglev table and eligible backends disagree"));
        }
        let snat = self.snat(rec).ok_or(err("SNAT addresses outside the address pool"))?;
        if snat.iter().any(|a| a.family() != family)
            || (nat == crate::service::NatMode::FullNat && snat.is_empty())
        {
            return Err(err("SNAT addresses missing or of another family"));
        }
        let frontends = self.frontends_of(i, rec, family)?;
        for (o, b) in self.backends[be_first as usize..(be_first + be_n) as usize].iter_mut().enumerate() {
            let index = be_first as usize + o;
            if b.addr.family() != family {
                return Err(ImageError::Backend { index, reason: "of another family than its service" });
            }
            if b.eligible != is_eligible[o] {
                return Err(ImageError::Backend { index, reason: "eligibility disagrees with its service" });
            }
            b.service = ServiceId(i as u32);
        }
        Ok(Service {
            id: ServiceId(i as u32),
            name,
            name_hash,
            frontends,
            family,
            scheduler,
            affinity,
            nat,
            snat,
            backends: be_first..be_first + be_n,
            eligible,
            maglev,
        })
    }

    fn name(&self, rec: &[u8]) -> Option<String> {
        let (first, n) = (service::NAME_AT.read(rec), service::NAME_LEN.read(rec));
        if !within(first, n, self.r.names.1) {
            return None;
        }
        let at = self.r.names.0 + first as usize;
        core::str::from_utf8(&self.bytes[at..at + n as usize]).ok().map(str::to_owned)
    }

    fn u16s(&self, first: u32, count: u32) -> Option<Vec<u16>> {
        if !within(first, count, self.r.u16_pool.1) {
            return None;
        }
        let at = self.r.u16_pool.0 + U16_SIZE * first as usize;
        let raw = &self.bytes[at..at + U16_SIZE * count as usize];
        Some(raw.chunks_exact(U16_SIZE).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
    }

    fn snat(&self, rec: &[u8]) -> Option<Vec<Addr>> {
        let (first, n) = (service::SNAT_AT.read(rec), service::SNAT_COUNT.read(rec));
        if !within(first, n, self.r.addr_pool.1) {
            return None;
        }
        Some(
            (first..first + n)
                .map(|k| addr_at(self.bytes, self.r.addr_pool.0 + ADDR_SIZE * k as usize))
                .collect(),
        )
    }

    fn frontends_of(&mut self, i: usize, rec: &[u8], family: Family) -> Result<Vec<ServiceKey>, ImageError> {
        let (first, n) = (service::FRONTENDS_FIRST.read(rec), service::FRONTENDS_COUNT.read(rec));
        if first != self.next_frontend || n == 0 || !within(first, n, self.frontends.len()) {
            return Err(ImageError::Service {
                index: i,
                reason: "frontends do not follow the previous service's",
            });
        }
        self.next_frontend += n;
        let mut out = Vec::with_capacity(n as usize);
        for (k, (key, owner)) in self.frontends[first as usize..(first + n) as usize].iter().enumerate() {
            let fe_err = |reason| ImageError::Frontend { index: first as usize + k, reason };
            if *owner as usize != i {
                return Err(fe_err("names another service than the one listing it"));
            }
            if key.frontend.family() != family {
                return Err(fe_err("of another family than its service"));
            }
            out.push(*key);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::*;
    use proptest::prelude::*;

    fn v4(a: [u8; 4]) -> Addr {
        Addr::from_v4(a)
    }

    fn v6(last: u8) -> Addr {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
        a[15] = last;
        Addr::from_v6(a)
    }

    fn be(a: Addr, port: u16, c: Conditions) -> BackendSpec {
        BackendSpec { addr: a, port, weight: 1, conditions: c }
    }

    fn spec() -> TableSpec {
        let key = |a: Addr, port, protocol| ServiceKey { frontend: Frontend::Address(a), port, protocol };
        TableSpec {
            generation: Generation(42),
            node_addrs: vec![v4([198, 18, 0, 1]), v6(1)],
            maglev_size: MaglevSize::Auto,
            l7: Default::default(),
            services: vec![
                ServiceSpec {
                    name: "default/web:80".into(),
                    frontends: vec![
                        key(v4([198, 19, 0, 10]), 80, Protocol::Tcp),
                        ServiceKey {
                            frontend: Frontend::NodePort(Family::V4),
                            port: 31080,
                            protocol: Protocol::Tcp,
                        },
                    ],
                    backends: (1..=3).map(|i| be(v4([198, 18, 1, i]), 8080, Conditions::READY)).collect(),
                    scheduler: Scheduler::Maglev,
                    affinity: None,
                    nat: NatMode::FullNat,
                    snat: vec![v4([198, 18, 0, 1])],
                },
                ServiceSpec {
                    name: "default/sticky-dnat:80".into(),
                    frontends: vec![key(v4([198, 19, 0, 20]), 80, Protocol::Tcp)],
                    backends: vec![
                        be(v4([198, 18, 1, 1]), 8080, Conditions::READY),
                        be(v4([198, 18, 1, 2]), 8080, Conditions::DRAINING),
                    ],
                    scheduler: Scheduler::LeastConnections,
                    affinity: Affinity::new(600),
                    nat: NatMode::Dnat,
                    snat: vec![],
                },
                ServiceSpec {
                    name: "default/dns6:53 — ünïcode".into(),
                    frontends: vec![key(v6(10), 53, Protocol::Udp)],
                    backends: vec![be(v6(20), 5353, Conditions::READY)],
                    scheduler: Scheduler::SourceHash,
                    affinity: None,
                    nat: NatMode::FullNat,
                    snat: vec![v6(1)],
                },
                ServiceSpec {
                    name: "default/empty:80".into(),
                    frontends: vec![key(v4([198, 19, 0, 60]), 80, Protocol::Tcp)],
                    backends: vec![],
                    scheduler: Scheduler::RoundRobin,
                    affinity: None,
                    nat: NatMode::FullNat,
                    snat: vec![v4([198, 18, 0, 1])],
                },
            ],
        }
    }

    /// An L7 half with one of everything: every host kind, path type, backend kind and key
    /// format, a conflict of each claim, endpoints of both families.
    fn l7_table() -> L7Table {
        use crate::l7::*;
        use crate::route::*;
        let svc = |name: &str, port: ServicePort| ServiceBackend {
            namespace: "shop".into(),
            name: name.into(),
            port,
        };
        let ingresses = vec![
            IngressSpec {
                policy: crate::policy::Policy {
                    rewrite: Some(crate::policy::RewriteTarget::parse("/$1").unwrap()),
                    limits: crate::policy::Limits { rps: Some(5), burst_multiplier: 5, ..Default::default() },
                    ..Default::default()
                },
                canary: None,
                dialect: Default::default(),
                id: IngressRef::new("shop", "web"),
                created_unix_s: Some(100),
                default_backend: Some(Backend::Service(svc("web", ServicePort::Name("http".into())))),
                rules: vec![
                    RuleSpec {
                        host: HostRule::new(Some("shop.example.com")).unwrap(),
                        paths: vec![
                            PathSpec {
                                path_type: PathType::Prefix,
                                path: RulePath::new("/").unwrap(),
                                backend: Backend::Service(svc("web", ServicePort::Number(80))),
                            },
                            PathSpec {
                                path_type: PathType::Exact,
                                path: RulePath::new("/oups").unwrap(),
                                backend: Backend::Unavailable(Unavailable::MissingService),
                            },
                            PathSpec {
                                path_type: PathType::ImplementationSpecific,
                                path: RulePath::new("/api/").unwrap(),
                                backend: Backend::Unavailable(Unavailable::Resource),
                            },
                        ],
                    },
                    RuleSpec {
                        host: HostRule::new(Some("*.example.com")).unwrap(),
                        paths: vec![PathSpec {
                            path_type: PathType::Prefix,
                            path: RulePath::new("/x").unwrap(),
                            backend: Backend::Unavailable(Unavailable::MissingPort),
                        }],
                    },
                ],
            },
            IngressSpec {
                policy: Default::default(),
                canary: None,
                dialect: Default::default(),
                id: IngressRef::new("shop", "copy"),
                created_unix_s: None,
                default_backend: Some(Backend::Unavailable(Unavailable::Resource)),
                rules: vec![RuleSpec {
                    host: HostRule::new(Some("shop.example.com")).unwrap(),
                    paths: vec![PathSpec {
                        path_type: PathType::Prefix,
                        path: RulePath::new("/").unwrap(),
                        backend: Backend::Service(svc("other", ServicePort::Number(8080))),
                    }],
                }],
            },
            IngressSpec {
                policy: crate::policy::Policy { ssl_redirect: true, ..Default::default() },
                canary: Some(crate::policy::Canary { weight: 20, ..Default::default() }),
                dialect: Default::default(),
                id: IngressRef::new("shop", "web-canary"),
                created_unix_s: Some(200),
                default_backend: None,
                rules: vec![RuleSpec {
                    host: HostRule::new(Some("shop.example.com")).unwrap(),
                    paths: vec![PathSpec {
                        path_type: PathType::Prefix,
                        path: RulePath::new("/").unwrap(),
                        backend: Backend::Service(svc("web-v2", ServicePort::Number(80))),
                    }],
                }],
            },
            IngressSpec {
                policy: crate::policy::Policy {
                    rewrite: Some(crate::policy::RewriteTarget::parse("/$2").unwrap()),
                    use_regex: true,
                    ..Default::default()
                },
                canary: None,
                dialect: Dialect::IngressNginx,
                id: IngressRef::new("legacy", "api"),
                created_unix_s: Some(7),
                default_backend: None,
                rules: vec![RuleSpec {
                    host: HostRule::new(Some("www.legacy.example")).unwrap(),
                    paths: vec![PathSpec {
                        path_type: PathType::ImplementationSpecific,
                        path: RulePath::nginx("/api(/|$)(.*)").unwrap(),
                        backend: Backend::Service(svc("web", ServicePort::Number(80))),
                    }],
                }],
            },
            IngressSpec {
                policy: Default::default(),
                canary: None,
                dialect: Default::default(),
                id: IngressRef::new("shop", "catch-all"),
                created_unix_s: Some(5),
                default_backend: Some(Backend::Service(svc("web", ServicePort::Number(80)))),
                rules: vec![],
            },
        ];
        let mut routes = RouteTable::compile(&ingresses);
        let mut next = 7u16;
        routes.number_routes(|_| {
            next += 1;
            next
        });
        assert_eq!(routes.conflicts().len(), 2, "{:?}", routes.conflicts());
        assert_eq!(routes.policies().len(), 4, "the default, web's, the canary's and legacy's");
        assert!(routes.hosts().iter().any(|h| h.dialect == Dialect::IngressNginx && h.regex));
        assert!(routes.hosts().iter().flat_map(|h| &h.paths).any(|p| p.canary.is_some()));
        let ep = |a: &str, ready, serving, terminating| Endpoint {
            addr: a.parse().unwrap(),
            ready,
            serving,
            terminating,
        };
        L7Table {
            routes,
            upstreams: vec![
                Upstream {
                    service: svc("other", ServicePort::Number(8080)),
                    endpoints: vec![],
                    external: None,
                },
                Upstream {
                    external: Some(ExternalName { host: "db.example.com".into(), port: 5432 }),
                    service: svc("web", ServicePort::Number(80)),
                    endpoints: vec![
                        ep("198.18.1.1:8080", true, true, false),
                        ep("[2001:db8::1]:8081", false, true, true),
                    ],
                },
                Upstream {
                    service: svc("web", ServicePort::Name("http".into())),
                    endpoints: vec![ep("198.18.1.2:9090", false, false, false)],
                    external: None,
                },
            ],
            certificates: vec![
                Certificate {
                    secret: SecretRef { namespace: "shop".into(), name: "a-tls".into() },
                    ingresses: vec![IngressRef::new("shop", "web"), IngressRef::new("shop", "copy")],
                    hosts: vec![
                        HostRule::new(Some("shop.example.com")).unwrap(),
                        HostRule::new(Some("*.example.com")).unwrap(),
                    ],
                    chain_der: vec![vec![0x30, 1, 2], vec![0x30, 3]],
                    key_format: KeyFormat::Pkcs8,
                    key_der: vec![0x30, 9, 9, 9],
                    not_after_unix_s: 1_900_000_000,
                },
                Certificate {
                    secret: SecretRef { namespace: "shop".into(), name: "b-tls".into() },
                    ingresses: vec![],
                    hosts: vec![],
                    chain_der: vec![vec![0x30]],
                    key_format: KeyFormat::Sec1,
                    key_der: vec![1],
                    not_after_unix_s: -5,
                },
            ],
            listeners: vec![
                Listener { addr: v4([198, 19, 0, 80]), http_port: 80, https_port: 443 },
                Listener { addr: v6(80), http_port: 8080, https_port: 8443 },
            ],
        }
    }

    fn spec_l7() -> TableSpec {
        TableSpec { l7: std::sync::Arc::new(l7_table()), ..spec() }
    }

    #[test]
    fn the_l7_half_round_trips() {
        let t = ServiceTable::build(&spec_l7()).unwrap();
        let bytes = encode(&t);
        let back = decode(&bytes).unwrap();
        same(&t, &back);
        assert_eq!(back.l7(), t.l7());
        assert_eq!(back.l7(), &l7_table());
        assert_eq!(encode(&back), bytes, "re-encoding gives the same bytes");
        // An empty L7 half is empty regions and pool.
        let empty = encode(&ServiceTable::build(&spec()).unwrap());
        assert_eq!(header::L7_BYTES_LEN.read(&empty), 0);
        assert_eq!(decode(&empty).unwrap().l7(), &L7Table::default());
    }

    #[test]
    fn l7_refusals_say_where() {
        let bytes = encode(&ServiceTable::build(&spec_l7()).unwrap());
        let at = |f: layout::Field<u32>| f.read(&bytes) as usize;
        let path0 = at(header::L7_PATHS_AT);
        let host0 = at(header::L7_HOSTS_AT);
        let cert0 = at(header::L7_CERTIFICATES_AT);
        let l7_err = |b: &[u8]| match decode(b) {
            Err(ImageError::L7 { region, index, reason }) => (region, index, reason),
            other => panic!("{other:?}"),
        };
        // A path's span past the byte pool.
        let mut b = bytes.clone();
        layout::l7_path::PATH.write(&mut b[path0..], layout::Span { at: u32::MAX, len: 4 });
        assert_eq!(l7_err(&b).0, "L7 paths");
        // Two paths naming the same bytes: the pool is overclaimed.
        let mut b = bytes.clone();
        let s = layout::l7_path::PATH.read(&b[path0..]);
        layout::l7_path::PATH.write(&mut b[path0 + layout::l7_path::SIZE..], s);
        // (Spans may lie anywhere in the pool, but together claim no more than it holds: the
        // claim that goes past it is refused, before anything is allocated for it.)
        let (_, _, reason) = l7_err(&b);
        assert!(reason.contains("overlapping"), "{reason}");
        // A path that is not a rule path (its first byte made a space).
        let mut b = bytes.clone();
        let pool = at(header::L7_BYTES_AT);
        b[pool + s.at as usize] = b' ';
        assert_eq!(l7_err(&b), ("L7 paths", 0, "a path that is not a valid rule path"));
        // Unknown codes.
        let mut b = bytes.clone();
        layout::l7_path::PATH_TYPE.write(&mut b[path0..], 9);
        assert_eq!(l7_err(&b), ("L7 paths", 0, "unknown path type"));
        let mut b = bytes.clone();
        layout::l7_host::DEFAULT_BACKEND.write(&mut b[host0..], 200);
        assert_eq!(l7_err(&b), ("L7 host entries", 0, "unknown backend code"));
        // A metrics row no worker publishes.
        let mut b = bytes.clone();
        layout::l7_path::METRIC.write(&mut b[path0..], crate::route_stats::ROWS as u16);
        assert_eq!(l7_err(&b), ("L7 paths", 0, "a metrics row past the last"));
        // A host entry whose paths do not follow the previous one's.
        let mut b = bytes.clone();
        layout::l7_host::PATHS_FIRST.write(&mut b[host0..], 1);
        assert_eq!(l7_err(&b).2, "its items do not follow the previous one's");
        let mut b = bytes.clone();
        layout::l7_host::PATHS_COUNT.write(&mut b[host0..], u32::MAX);
        assert_eq!(l7_err(&b).2, "its items do not follow the previous one's");
        // A certificate without chain, and one whose chain is not all claimed.
        let mut b = bytes.clone();
        let second = cert0 + layout::l7_certificate::SIZE;
        layout::l7_certificate::CHAIN_COUNT.write(&mut b[second..], 0);
        assert_eq!(l7_err(&b), ("certificates", 1, "no certificate in its chain"));
        // Certificates out of order.
        let mut b = bytes.clone();
        let name = layout::l7_certificate::SECRET_NAME.read(&b[cert0..]);
        b[pool + name.at as usize] = b'z';
        assert_eq!(l7_err(&b), ("certificates", 1, "certificates out of order or repeated"));
        // An L7 region overlapping the names.
        let mut b = bytes.clone();
        header::L7_HOSTS_AT.write(&mut b, header::NAMES_AT.read(&bytes));
        assert_eq!(decode(&b).unwrap_err(), ImageError::Overlap("L7 host entries"));
        let mut b = bytes.clone();
        header::L7_BYTES_LEN.write(&mut b, u32::MAX);
        assert_eq!(decode(&b).unwrap_err(), ImageError::Region("L7 byte pool"));
        let e = ImageError::L7 { region: "L7 paths", index: 3, reason: "port 0" };
        assert_eq!(e.to_string(), "table image: L7 paths: record 3: port 0");
    }

    fn same(a: &ServiceTable, b: &ServiceTable) {
        assert_eq!(a.generation(), b.generation());
        assert_eq!(a.services(), b.services());
        assert_eq!(a.backends(), b.backends());
        assert_eq!(a.node_addrs(), b.node_addrs());
        assert_eq!(a.l2(), b.l2());
        for s in a.services() {
            for k in &s.frontends {
                if let Frontend::Address(addr) = k.frontend {
                    assert_eq!(b.lookup(&addr, k.port, k.protocol), Some(s.id));
                    assert!(b.is_vip(&addr));
                }
            }
            for id in s.backends.clone() {
                let be = a.backend(BackendId(id));
                assert_eq!(b.backend_by_addr(s.id, &be.addr, be.port), Some(BackendId(id)));
            }
        }
        assert_eq!(b.lookup(&v4([198, 18, 0, 1]), 31080, Protocol::Tcp), Some(ServiceId(0)));
    }

    #[test]
    fn round_trip_is_exact() {
        let t = ServiceTable::build(&spec()).unwrap();
        let bytes = encode(&t);
        let back = decode(&bytes).unwrap();
        same(&t, &back);
        assert_eq!(encode(&back), bytes, "re-encoding gives the same bytes");
        assert_eq!(&bytes[..8], b"SLUICEIM");
        assert!(decode(&encode(&ServiceTable::empty())).unwrap().services().is_empty());
    }

    #[test]
    fn the_l2_roles_travel_with_the_table_and_bad_ones_are_refused() {
        let mut t = ServiceTable::build(&spec()).unwrap();
        let (a, b) = (Addr::from_v4([198, 19, 0, 10]), Addr::from_v4([198, 18, 100, 10]));
        t.set_l2([(a, L2Role::Active), (b, L2Role::Standby)].into_iter().collect());
        let bytes = encode(&t);
        let back = decode(&bytes).unwrap();
        same(&t, &back);
        assert_eq!(back.l2().get(&b), Some(&L2Role::Standby));
        assert_eq!(encode(&back), bytes);
        // The records are last: the second's role byte, then its reserved bytes.
        let last = bytes.len() - layout::l2_addr::SIZE;
        let mut bad = bytes.clone();
        bad[last + layout::l2_addr::ROLE.at] = 7;
        assert_eq!(decode(&bad).unwrap_err(), ImageError::L2 { index: 1, reason: "unknown role" });
        let mut bad = bytes.clone();
        bad[last + layout::l2_addr::RESERVED.at] = 1;
        assert_eq!(decode(&bad).unwrap_err(), ImageError::L2 { index: 1, reason: "reserved bytes not zero" });
        let mut bad = bytes.clone();
        bad.copy_within(last - layout::l2_addr::SIZE..last, last);
        assert_eq!(decode(&bad).unwrap_err(), ImageError::L2 { index: 1, reason: "address given twice" });
        // A count past the image's end.
        let mut bad = bytes.clone();
        header::L2_ADDRS.write(&mut bad[..header::SIZE], 3);
        assert_eq!(decode(&bad).unwrap_err(), ImageError::Region("L2 addresses"));
    }

    /// The layout is the contract with every gateway of this version: changing it without a
    /// new IMAGE_VERSION would let a gateway misread a table. (Change both, then this.)
    #[test]
    fn the_layout_is_pinned_to_its_version() {
        assert_eq!(
            (IMAGE_VERSION, layout::fingerprint()),
            (5, 0xfdde_1f50_a6e0_aa8d),
            "{:#x}\n{}",
            layout::fingerprint(),
            layout::describe()
        );
        // The L4 offsets the layout gives are the ones version 1 had.
        assert_eq!((header::GENERATION.at, header::SERVICES_AT.at, header::L7_HOSTS.at), (16, 40, 80));
        assert_eq!((service::AFFINITY_TIMEOUT_S.at, service::FRONTENDS_COUNT.at), (20, 60));
        assert_eq!((backend::CONDITIONS.at, frontend::SERVICE.at), (20, 20));
        assert!(layout::describe().contains("   40  4  SERVICES_AT        Where the service records start."));
    }

    #[test]
    fn refusals_say_where() {
        let bytes = encode(&ServiceTable::build(&spec()).unwrap());
        assert_eq!(decode(&bytes[..100]).unwrap_err(), ImageError::TooShort(100));
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(decode(&b).unwrap_err(), ImageError::BadMagic);
        let mut b = bytes.clone();
        b[8] = 9;
        assert_eq!(decode(&b).unwrap_err(), ImageError::Version(9));
        let mut b = bytes.clone();
        header::BACKENDS_AT.write(&mut b, u32::MAX);
        assert_eq!(decode(&b).unwrap_err(), ImageError::Region("backend records"));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(ImageError::Region(_))));
        // A Maglev slot naming a backend that may not take new flows.
        let t = ServiceTable::build(&spec()).unwrap();
        let mut b = encode(&t);
        let u16_at = header::U16_POOL_AT.read(&b) as usize;
        let svc1 = header::SIZE + service::SIZE;
        let maglev_at = service::MAGLEV_AT.read(&b[svc1..]) as usize;
        b[u16_at + 2 * maglev_at..u16_at + 2 * maglev_at + 2].copy_from_slice(&1u16.to_le_bytes());
        let e = decode(&b).unwrap_err();
        assert!(matches!(e, ImageError::Service { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("Maglev"), "{e}");
    }

    #[test]
    fn overlapping_regions_and_ranges_are_refused() {
        let t = ServiceTable::build(&spec()).unwrap();
        let bytes = encode(&t);
        // The backend records moved onto the service records.
        let mut b = bytes.clone();
        header::BACKENDS_AT.write(&mut b, header::SERVICES_AT.read(&bytes));
        assert_eq!(decode(&b).unwrap_err(), ImageError::Overlap("backend records"));
        // Regions out of order: the names before the u16 pool.
        let mut b = bytes.clone();
        header::NAMES_AT.write(&mut b, header::U16_POOL_AT.read(&bytes));
        assert_eq!(decode(&b).unwrap_err(), ImageError::Overlap("names"));
        // Service 1 names service 0's u16 arrays (each within the pool, together more than it).
        let svc = |i: usize| header::SIZE + i * service::SIZE;
        let mut b = bytes.clone();
        let (at, n) = (service::MAGLEV_AT.read(&b[svc(0)..]), service::MAGLEV_COUNT.read(&b[svc(0)..]));
        service::MAGLEV_AT.write(&mut b[svc(1)..], at);
        service::MAGLEV_COUNT.write(&mut b[svc(1)..], n);
        assert_eq!(decode(&b).unwrap_err(), ImageError::PoolOverclaimed("u16 pool"));
        // A count so large that the sum of two overflows u32.
        let mut b = bytes.clone();
        service::ELIGIBLE_COUNT.write(&mut b[svc(0)..], u32::MAX);
        assert!(matches!(decode(&b).unwrap_err(), ImageError::PoolOverclaimed("u16 pool")));
        // Services naming the whole address pool each.
        let mut b = bytes.clone();
        for i in 1..4 {
            service::SNAT_AT.write(&mut b[svc(i)..], 0);
            service::SNAT_COUNT.write(&mut b[svc(i)..], header::ADDR_POOL_LEN.read(&bytes));
        }
        assert_eq!(decode(&b).unwrap_err(), ImageError::PoolOverclaimed("address pool"));
        // Service 0 named by service 1's (longer) name: each valid alone, the last one left short.
        let mut b = bytes.clone();
        for f in [service::NAME_AT, service::NAME_LEN] {
            let v = f.read(&b[svc(1)..]);
            f.write(&mut b[svc(0)..], v);
        }
        let hash = service::NAME_HASH.read(&b[svc(1)..]);
        service::NAME_HASH.write(&mut b[svc(0)..], hash);
        assert_eq!(decode(&b).unwrap_err(), ImageError::PoolOverclaimed("names"));
        assert!(ImageError::PoolOverclaimed("names").to_string().contains("their ranges overlap"));
    }

    fn arb_spec() -> impl Strategy<Value = TableSpec> {
        let service = (
            0u8..4,
            prop::collection::vec((1u8..=250, 1u16..4, 0u8..4), 0..12),
            0usize..8,
            any::<bool>(),
            prop::option::of(1u32..=86_400),
        );
        (prop::collection::vec(service, 0..12), any::<u32>()).prop_map(|(svcs, g)| TableSpec {
            generation: Generation(u64::from(g)),
            node_addrs: vec![Addr::from_v4([198, 18, 0, 1])],
            maglev_size: MaglevSize::Auto,
            l7: Default::default(),
            services: svcs
                .into_iter()
                .enumerate()
                .map(|(i, (port_kind, bes, sched, dnat, aff))| {
                    let mut seen = std::collections::HashSet::new();
                    ServiceSpec {
                        name: format!("ns/svc-{i}"),
                        frontends: vec![ServiceKey {
                            frontend: Frontend::Address(Addr::from_v4([
                                198,
                                19,
                                (i / 250) as u8,
                                (i % 250) as u8 + 1,
                            ])),
                            port: 80 + u16::from(port_kind),
                            protocol: if port_kind % 2 == 0 { Protocol::Tcp } else { Protocol::Udp },
                        }],
                        backends: bes
                            .into_iter()
                            .filter(|(last, port, _)| seen.insert((*last, *port)))
                            .map(|(last, port, c)| BackendSpec {
                                addr: Addr::from_v4([198, 18, 1, last]),
                                port: 8000 + port,
                                weight: u16::from(c) + 1,
                                conditions: if c == 0 { Conditions::DRAINING } else { Conditions::READY },
                            })
                            .collect(),
                        scheduler: Scheduler::ALL[sched].1,
                        affinity: aff.and_then(Affinity::new),
                        nat: if dnat { NatMode::Dnat } else { NatMode::FullNat },
                        snat: vec![Addr::from_v4([198, 18, 0, 1])],
                    }
                })
                .collect(),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_table_round_trips(spec in arb_spec()) {
            let t = ServiceTable::build(&spec).unwrap();
            let bytes = encode(&t);
            let back = decode(&bytes).unwrap();
            same_props(&t, &back)?;
            prop_assert_eq!(encode(&back), bytes);
        }

        /// The same for an image with an L7 half: damage anywhere is refused or decodes to a
        /// consistent table, never a panic.
        #[test]
        fn damaged_l7_images_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), truncate in any::<bool>(), l7_only in any::<bool>()) {
            let mut bytes = encode(&ServiceTable::build(&spec_l7()).unwrap());
            let from = if l7_only { header::L7_HOSTS_AT.read(&bytes) as usize } else { 0 };
            for (at, v) in edits {
                let i = from + at.index(bytes.len() - from);
                bytes[i] = v;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            if let Ok(t) = decode(&bytes) {
                prop_assert!(decode(&encode(&t)).is_ok());
            }
        }

        /// Damaged images never panic the decoder: they are refused, or (if the damage happens
        /// to leave a consistent image) decode to a table that encodes back consistently.
        #[test]
        fn damaged_images_never_panic(spec in arb_spec(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
            let mut bytes = encode(&ServiceTable::build(&spec).unwrap());
            for (at, v) in edits {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            if let Ok(t) = decode(&bytes) {
                prop_assert!(decode(&encode(&t)).is_ok());
            }
        }
    }

    fn same_props(a: &ServiceTable, b: &ServiceTable) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.services(), b.services());
        prop_assert_eq!(a.backends(), b.backends());
        prop_assert_eq!(a.generation(), b.generation());
        Ok(())
    }
}
