//! A table generation as bytes: the versioned, position-independent image the control process
//! publishes through the shared-memory table (`sluice-table`) and each gateway worker validates
//! and adopts. Positions are offsets from the start of the image, never pointers; every integer
//! is little-endian; the layout below is the contract, and [`IMAGE_VERSION`] changes with it.
//!
//! ```text
//! header (128 B)
//!   0  magic "SLUICEIM"          8  version u32          12 flags u32 (0)
//!   16 generation u64            24 services u32         28 backends u32
//!   32 frontends u32             36 node addresses u32
//!   40 services at u32           44 backends at u32      48 frontends at u32
//!   52 node addresses at u32     56 u16 pool at u32      60 u16 pool entries u32
//!   64 address pool at u32       68 address pool entries u32
//!   72 names at u32              76 names bytes u32
//!   80 L7 routes at u32 / 84 bytes u32, 88 certificates at u32 / 92 bytes u32 (reserved: 0)
//! service (64 B): name at/len u32 u32, name hash u64, family u8 (0 v4, 1 v6), scheduler u8,
//!   NAT u8 (0 FullNAT, 1 DNAT), flags u8 (1: affinity), affinity timeout s u32,
//!   backends first/count u32 u32, eligible at/count (u16 pool), Maglev at/count (u16 pool),
//!   SNAT at/count (address pool), frontends first/count u32 u32
//! backend (24 B): address [16], port u16, weight u16, conditions u8 (1 ready, 2 serving,
//!   4 terminating, 8 eligible), 3 B zero
//! frontend (24 B): address [16] (zero for a NodePort), port u16, protocol u8,
//!   kind u8 (0 address, 1 NodePort IPv4, 2 NodePort IPv6), service u32
//! node address (16 B); u16 pool (2 B each); address pool (16 B each); names (UTF-8)
//! ```
//!
//! [`decode`] checks every offset, count and cross-reference before building anything — a
//! damaged or hostile image is refused with the place it is wrong, never a panic — and keeps the
//! Maglev arrays as they were built by control, so every node runs byte-identical tables.
//!
//! Not hot path: encoded once per generation by control, decoded once per generation per worker.

use crate::addr::{Addr, Family};
use crate::maglev::MaglevTable;
use crate::service::{
    Affinity, Backend, Conditions, Frontend, Generation, NatMode, Protocol, Scheduler, Service, ServiceId,
    ServiceKey, ServiceTable,
};

/// First eight bytes of an image.
pub const IMAGE_MAGIC: [u8; 8] = *b"SLUICEIM";
/// The image layout version.
pub const IMAGE_VERSION: u32 = 1;

const HEADER: usize = 128;
const SERVICE: usize = 64;
const BACKEND: usize = 24;
const FRONTEND: usize = 24;
const ADDR: usize = 16;

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
        }
    }
}

impl std::error::Error for ImageError {}

fn scheduler_code(s: Scheduler) -> u8 {
    Scheduler::ALL.iter().position(|(_, x)| *x == s).unwrap_or(0) as u8
}

/// Writes little-endian fields into a region of the output, advancing.
struct Writer<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, x: &[u8]) {
        self.b[self.at..self.at + x.len()].copy_from_slice(x);
        self.at += x.len();
    }
    fn u8(&mut self, x: u8) {
        self.bytes(&[x]);
    }
    fn u16(&mut self, x: u16) {
        self.bytes(&x.to_le_bytes());
    }
    fn u32(&mut self, x: u32) {
        self.bytes(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.bytes(&x.to_le_bytes());
    }
    fn u16s(&mut self, xs: &[u16]) {
        let end = self.at + 2 * xs.len();
        for (dst, x) in self.b[self.at..end].chunks_exact_mut(2).zip(xs) {
            dst.copy_from_slice(&x.to_le_bytes());
        }
        self.at = end;
    }
}

/// Encodes a table. Deterministic: the same table gives the same bytes. Two passes: sizes first,
/// then every region written in place into one buffer of the exact size.
pub fn encode(t: &ServiceTable) -> Vec<u8> {
    let svcs = t.services();
    let n_fe: usize = svcs.iter().map(|s| s.frontends.len()).sum();
    let u16_len: usize = svcs.iter().map(|s| s.eligible.len() + s.maglev.len()).sum();
    let addr_len: usize = svcs.iter().map(|s| s.snat.len()).sum();
    let names_len: usize = svcs.iter().map(|s| s.name.len()).sum();
    let services_at = HEADER;
    let backends_at = services_at + svcs.len() * SERVICE;
    let frontends_at = backends_at + t.backends().len() * BACKEND;
    let node_at = frontends_at + n_fe * FRONTEND;
    let u16_at = node_at + t.node_addrs().len() * ADDR;
    let addr_at = u16_at + u16_len * 2;
    let names_at = addr_at + addr_len * ADDR;
    let end = names_at + names_len;
    let mut out = vec![0u8; end];

    let mut h = Writer { b: &mut out, at: 0 };
    h.bytes(&IMAGE_MAGIC);
    h.u32(IMAGE_VERSION);
    h.u32(0);
    h.u64(t.generation().0);
    for n in [svcs.len(), t.backends().len(), n_fe, t.node_addrs().len()] {
        h.u32(n as u32);
    }
    for x in [
        services_at,
        backends_at,
        frontends_at,
        node_at,
        u16_at,
        u16_len,
        addr_at,
        addr_len,
        names_at,
        names_len,
        end,
        0,
        end,
        0,
    ] {
        h.u32(x as u32);
    }

    let (mut u16_next, mut addr_next, mut name_next, mut fe_next) = (0usize, 0usize, 0usize, 0usize);
    for s in svcs {
        let mut w = Writer { b: &mut out, at: services_at + s.id.0 as usize * SERVICE };
        w.u32(name_next as u32);
        w.u32(s.name.len() as u32);
        w.u64(s.name_hash);
        w.u8(u8::from(s.family == Family::V6));
        w.u8(scheduler_code(s.scheduler));
        w.u8(u8::from(s.nat == NatMode::Dnat));
        w.u8(u8::from(s.affinity.is_some()));
        w.u32(s.affinity.map_or(0, |a| a.timeout_s));
        w.u32(s.backends.start);
        w.u32(s.backends.end - s.backends.start);
        w.u32(u16_next as u32);
        w.u32(s.eligible.len() as u32);
        w.u32((u16_next + s.eligible.len()) as u32);
        w.u32(s.maglev.len() as u32);
        w.u32(addr_next as u32);
        w.u32(s.snat.len() as u32);
        w.u32(fe_next as u32);
        w.u32(s.frontends.len() as u32);

        let mut w = Writer { b: &mut out, at: u16_at + 2 * u16_next };
        w.u16s(&s.eligible);
        w.u16s(s.maglev.entries());
        u16_next += s.eligible.len() + s.maglev.len();
        let mut w = Writer { b: &mut out, at: addr_at + ADDR * addr_next };
        for a in &s.snat {
            w.bytes(&a.0);
        }
        addr_next += s.snat.len();
        let mut w = Writer { b: &mut out, at: names_at + name_next };
        w.bytes(s.name.as_bytes());
        name_next += s.name.len();
        let mut w = Writer { b: &mut out, at: frontends_at + FRONTEND * fe_next };
        for k in &s.frontends {
            let (addr, kind) = match k.frontend {
                Frontend::Address(a) => (a, 0u8),
                Frontend::NodePort(Family::V4) => (Addr([0; 16]), 1),
                Frontend::NodePort(Family::V6) => (Addr([0; 16]), 2),
            };
            w.bytes(&addr.0);
            w.u16(k.port);
            w.u8(k.protocol.number());
            w.u8(kind);
            w.u32(s.id.0);
        }
        fe_next += s.frontends.len();
    }
    let mut w = Writer { b: &mut out, at: backends_at };
    for b in t.backends() {
        w.bytes(&b.addr.0);
        w.u16(b.port);
        w.u16(b.weight);
        let c = &b.conditions;
        w.u8(u8::from(c.ready)
            | u8::from(c.serving) << 1
            | u8::from(c.terminating) << 2
            | u8::from(b.eligible) << 3);
        w.bytes(&[0; 3]);
    }
    let mut w = Writer { b: &mut out, at: node_at };
    for a in t.node_addrs() {
        w.bytes(&a.0);
    }
    out
}

/// Reads little-endian fields at a position, all bounds-checked (a short image is an error,
/// never a panic).
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = self.b.get(at..at + N) {
            a.copy_from_slice(s);
        }
        a
    }
    fn u8(&self, at: usize) -> u8 {
        self.bytes::<1>(at)[0]
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.bytes(at))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes(at))
    }
    fn addr(&self, at: usize) -> Addr {
        Addr(self.bytes(at))
    }
    /// A region of `count` items of `size` bytes at header field `at_field`, checked to lie in the
    /// image; returns its start.
    fn region(
        &self,
        at_field: usize,
        count: usize,
        size: usize,
        name: &'static str,
    ) -> Result<usize, ImageError> {
        let start = self.u32(at_field) as usize;
        let len = count.checked_mul(size).ok_or(ImageError::Region(name))?;
        match start.checked_add(len) {
            Some(end) if start >= HEADER && end <= self.b.len() => Ok(start),
            _ => Err(ImageError::Region(name)),
        }
    }
    /// `count` items at `first` of a pool of `pool_len` items: checked to lie inside the pool.
    fn within(first: u32, count: u32, pool_len: usize) -> bool {
        (first as usize).checked_add(count as usize).is_some_and(|e| e <= pool_len)
    }
}

/// Decodes and validates an image. See the module documentation.
pub fn decode(bytes: &[u8]) -> Result<ServiceTable, ImageError> {
    if bytes.len() < HEADER {
        return Err(ImageError::TooShort(bytes.len()));
    }
    let r = Reader { b: bytes };
    if r.bytes::<8>(0) != IMAGE_MAGIC {
        return Err(ImageError::BadMagic);
    }
    if r.u32(8) != IMAGE_VERSION || r.u32(12) != 0 {
        return Err(ImageError::Version(r.u32(8)));
    }
    let generation = Generation(r.u64(16));
    let (n_svc, n_be, n_fe, n_node) =
        (r.u32(24) as usize, r.u32(28) as usize, r.u32(32) as usize, r.u32(36) as usize);
    let svc_at = r.region(40, n_svc, SERVICE, "service records")?;
    let be_at = r.region(44, n_be, BACKEND, "backend records")?;
    let fe_at = r.region(48, n_fe, FRONTEND, "frontend records")?;
    let node_at = r.region(52, n_node, ADDR, "node addresses")?;
    let u16_len = r.u32(60) as usize;
    let u16_at = r.region(56, u16_len, 2, "u16 pool")?;
    let addr_len = r.u32(68) as usize;
    let addr_at = r.region(64, addr_len, ADDR, "address pool")?;
    let names_len = r.u32(76) as usize;
    let names_at = r.region(72, names_len, 1, "names")?;

    let mut backends = Vec::with_capacity(n_be);
    for i in 0..n_be {
        let at = be_at + i * BACKEND;
        let c = r.u8(at + 20);
        let b = Backend {
            addr: r.addr(at),
            port: r.u16(at + 16),
            weight: r.u16(at + 18),
            conditions: Conditions { ready: c & 1 != 0, serving: c & 2 != 0, terminating: c & 4 != 0 },
            service: ServiceId(u32::MAX),
            eligible: c & 8 != 0,
        };
        if b.port == 0 {
            return Err(ImageError::Backend { index: i, reason: "port 0" });
        }
        backends.push(b);
    }
    let mut frontend_recs = Vec::with_capacity(n_fe);
    for i in 0..n_fe {
        let at = fe_at + i * FRONTEND;
        let err = |reason| ImageError::Frontend { index: i, reason };
        let protocol = Protocol::from_number(r.u8(at + 18)).ok_or(err("protocol is neither TCP nor UDP"))?;
        let frontend = match r.u8(at + 19) {
            0 => Frontend::Address(r.addr(at)),
            1 => Frontend::NodePort(Family::V4),
            2 => Frontend::NodePort(Family::V6),
            _ => return Err(err("unknown kind")),
        };
        frontend_recs.push((ServiceKey { frontend, port: r.u16(at + 16), protocol }, r.u32(at + 20)));
    }
    let mut services = Vec::with_capacity(n_svc);
    let mut next_backend = 0u32;
    let mut next_frontend = 0u32;
    for i in 0..n_svc {
        let at = svc_at + i * SERVICE;
        let err = |reason| ImageError::Service { index: i, reason };
        let (name_first, name_n) = (r.u32(at), r.u32(at + 4));
        if !Reader::within(name_first, name_n, names_len) {
            return Err(err("name outside the names"));
        }
        let name_bytes = &bytes[names_at + name_first as usize..names_at + (name_first + name_n) as usize];
        let name = core::str::from_utf8(name_bytes).map_err(|_| err("name is not UTF-8"))?.to_owned();
        let name_hash = crate::hash::stable(name.as_bytes());
        if r.u64(at + 8) != name_hash {
            return Err(err("name hash does not match the name"));
        }
        let family = match r.u8(at + 16) {
            0 => Family::V4,
            1 => Family::V6,
            _ => return Err(err("unknown family")),
        };
        let scheduler = Scheduler::ALL.get(r.u8(at + 17) as usize).ok_or(err("unknown scheduler"))?.1;
        let nat = match r.u8(at + 18) {
            0 => NatMode::FullNat,
            1 => NatMode::Dnat,
            _ => return Err(err("unknown NAT mode")),
        };
        let affinity = match r.u8(at + 19) {
            0 => None,
            1 => {
                let timeout_s = r.u32(at + 20);
                if timeout_s == 0 || timeout_s > Affinity::MAX_TIMEOUT_S {
                    return Err(err("affinity timeout out of range"));
                }
                Some(Affinity { timeout_s })
            }
            _ => return Err(err("unknown flags")),
        };
        let (be_first, be_n) = (r.u32(at + 24), r.u32(at + 28));
        if be_first != next_backend || !Reader::within(be_first, be_n, n_be) {
            return Err(err("backends do not follow the previous service's"));
        }
        next_backend += be_n;
        let n = be_n as usize;
        let pool16 = |first: u32, count: u32| -> Result<Vec<u16>, ImageError> {
            if !Reader::within(first, count, u16_len) {
                return Err(err("array outside the u16 pool"));
            }
            let at = u16_at + 2 * first as usize;
            let raw = &bytes[at..at + 2 * count as usize];
            Ok(raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
        };
        let eligible = pool16(r.u32(at + 32), r.u32(at + 36))?;
        if eligible.windows(2).any(|w| w[0] >= w[1]) || eligible.iter().any(|&o| o as usize >= n) {
            return Err(err("eligible backends out of order or out of range"));
        }
        let mut is_eligible = vec![false; n];
        for &o in &eligible {
            is_eligible[o as usize] = true;
        }
        let maglev = MaglevTable::from_entries(pool16(r.u32(at + 40), r.u32(at + 44))?, |e| {
            is_eligible.get(e as usize).copied().unwrap_or(false)
        })
        .ok_or(err("Maglev table of non-prime size or naming a backend that is not eligible"))?;
        if maglev.is_empty() != eligible.is_empty() {
            return Err(err("Maglev table and eligible backends disagree"));
        }
        let (snat_first, snat_n) = (r.u32(at + 48), r.u32(at + 52));
        if !Reader::within(snat_first, snat_n, addr_len) {
            return Err(err("SNAT addresses outside the address pool"));
        }
        let snat: Vec<Addr> =
            (snat_first..snat_first + snat_n).map(|k| r.addr(addr_at + ADDR * k as usize)).collect();
        if snat.iter().any(|a| a.family() != family) || (nat == NatMode::FullNat && snat.is_empty()) {
            return Err(err("SNAT addresses missing or of another family"));
        }
        let (fe_first, fe_n) = (r.u32(at + 56), r.u32(at + 60));
        if fe_first != next_frontend || fe_n == 0 || !Reader::within(fe_first, fe_n, n_fe) {
            return Err(err("frontends do not follow the previous service's"));
        }
        next_frontend += fe_n;
        let mut frontends = Vec::with_capacity(fe_n as usize);
        for (k, (key, owner)) in
            frontend_recs[fe_first as usize..(fe_first + fe_n) as usize].iter().enumerate()
        {
            let fe_err = |reason| ImageError::Frontend { index: fe_first as usize + k, reason };
            if *owner as usize != i {
                return Err(fe_err("names another service than the one listing it"));
            }
            if key.frontend.family() != family {
                return Err(fe_err("of another family than its service"));
            }
            frontends.push(*key);
        }
        for (o, b) in backends[be_first as usize..(be_first + be_n) as usize].iter_mut().enumerate() {
            if b.addr.family() != family {
                return Err(ImageError::Backend {
                    index: be_first as usize + o,
                    reason: "of another family than its service",
                });
            }
            if b.eligible != is_eligible[o] {
                return Err(ImageError::Backend {
                    index: be_first as usize + o,
                    reason: "eligibility disagrees with its service",
                });
            }
            b.service = ServiceId(i as u32);
        }
        services.push(Service {
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
        });
    }
    if next_backend as usize != n_be {
        return Err(ImageError::Backend { index: next_backend as usize, reason: "belongs to no service" });
    }
    if next_frontend as usize != n_fe {
        return Err(ImageError::Frontend { index: next_frontend as usize, reason: "belongs to no service" });
    }
    let node_addrs = (0..n_node).map(|k| r.addr(node_at + ADDR * k)).collect();
    ServiceTable::from_parts(generation, services, backends, node_addrs)
        .map_err(ImageError::DuplicateFrontend)
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
                    affinity: Some(Affinity { timeout_s: 600 }),
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

    fn same(a: &ServiceTable, b: &ServiceTable) {
        assert_eq!(a.generation(), b.generation());
        assert_eq!(a.services(), b.services());
        assert_eq!(a.backends(), b.backends());
        assert_eq!(a.node_addrs(), b.node_addrs());
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
        b[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&b).unwrap_err(), ImageError::Region("backend records"));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(ImageError::Region(_))));
        // A Maglev slot naming a backend that may not take new flows.
        let t = ServiceTable::build(&spec()).unwrap();
        let mut b = encode(&t);
        let u16_at = u32::from_le_bytes(b[56..60].try_into().unwrap()) as usize;
        let svc1 = HEADER + SERVICE;
        let maglev_at = u32::from_le_bytes(b[svc1 + 40..svc1 + 44].try_into().unwrap()) as usize;
        b[u16_at + 2 * maglev_at..u16_at + 2 * maglev_at + 2].copy_from_slice(&1u16.to_le_bytes());
        let e = decode(&b).unwrap_err();
        assert!(matches!(e, ImageError::Service { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("Maglev"), "{e}");
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
                        affinity: aff.map(|timeout_s| Affinity { timeout_s }),
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
