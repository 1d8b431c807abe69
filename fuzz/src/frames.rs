//! The `frames` target's world: a real [`Worker`] over a [`MemPort`], with the service table of
//! the worker's pipeline tests (FullNAT and DNAT, TCP and UDP, IPv4 and IPv6, affinity, a
//! NodePort, a draining backend, an empty service), warmed with established flows — and the
//! fuzzer's bytes read as a *sequence* of operations on it: frames (raw bytes, or described
//! structurally: Ethernet with VLAN tags, ARP, neighbour discovery, IPv4/IPv6 with extension
//! headers, TCP/UDP/ICMP, segments of the warm flows in either direction, ICMP errors quoting
//! them), batches, time passing, table swaps, a neighbour learnt, a transmit ring that fills.
//!
//! After every batch: every frame is accounted for (sent, handed to the kernel, dropped with a
//! reason, or parked for its next hop), the flow table holds no more than its capacity, and — when
//! every frame of the batch was well formed with correct checksums — every frame sent has correct
//! IPv4, TCP, UDP and ICMP checksums. At the end, every frame buffer is back.
//!
//! ## Input format
//!
//! Records, one after another: `[op: u8][len: u16 little-endian][len bytes]` (a short last record
//! takes what is left). By `op % 8`:
//! 0 a raw frame; 1 a client's ACK answering a SYN cookie (a proxied connection, and the
//! backend's SYN-ACK); 7 a [`FrameSpec`] read from the bytes with `arbitrary`; 2 run a batch now;
//! 3 time passes (`u32` milliseconds); 4 swap to table `b[0] % 4`; 5 the unknown backend's
//! neighbour is learnt; 6 the transmit ring holds `1 + b[0] % 64` frames.
//! [`Record`] writes them (for seeds and regression tests).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use etherparse::{IcmpEchoHeader, Icmpv4Type, Icmpv6Type, PacketBuilder, SlicedPacket};
use sluice_lb::engine::Config as L4Config;
use sluice_model::service::*;
use sluice_model::{Addr, Counter, Family, PortRange};
use sluice_port::mem::MemPort;
use sluice_worker::nexthop::{NextHops, Route};
use sluice_worker::{BATCH, Worker, WorkerConfig};

pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const NODE: [u8; 4] = [198, 18, 0, 1];
pub const CLIENT: [u8; 4] = [198, 18, 0, 2];
pub const REMOTE_CLIENT: [u8; 4] = [198, 20, 5, 5];
pub const ROUTER: [u8; 4] = [198, 18, 0, 254];
pub const VIP: [u8; 4] = [198, 19, 0, 10];
pub const VIP_DNAT: [u8; 4] = [198, 19, 0, 20];
pub const VIP_AFFINITY: [u8; 4] = [198, 19, 0, 30];
pub const VIP_DRAIN: [u8; 4] = [198, 19, 0, 40];
pub const VIP_ONE: [u8; 4] = [198, 19, 0, 50];
pub const VIP_EMPTY: [u8; 4] = [198, 19, 0, 60];
pub const NODE6: [u8; 16] = v6(0x0db8_0000, 1);
pub const CLIENT6: [u8; 16] = v6(0x0db8_0000, 2);
pub const VIP6: [u8; 16] = v6(0x0db8_0019, 0x10);
/// The backend the neighbour table does not know until op 5 (its frames are parked).
pub const UNKNOWN_BACKEND: u8 = 9;

/// Frame buffers of the port; flows and affinity entries the engine holds (small, so that the
/// fuzzer fills them).
const FRAMES: usize = 256;
const FLOW_CAPACITY: usize = 64;
const AFFINITY_CAPACITY: usize = 16;

/// `2001:<hi>::<last>`.
const fn v6(hi: u32, last: u16) -> [u8; 16] {
    let h = hi.to_be_bytes();
    let l = last.to_be_bytes();
    [0x20, 0x01, h[0], h[1], h[2], h[3], 0, 0, 0, 0, 0, 0, 0, 0, l[0], l[1]]
}

pub fn be(i: u8) -> [u8; 4] {
    [198, 18, 1, i]
}

pub fn be6(i: u8) -> [u8; 16] {
    v6(0x0db8_0001, u16::from(i))
}

pub fn backend_mac(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 1, i]
}

fn a4(a: [u8; 4]) -> Addr {
    Addr::from_v4(a)
}

fn a6(a: [u8; 16]) -> Addr {
    Addr::from_v6(a)
}

fn key(a: Addr, port: u16, protocol: Protocol) -> ServiceKey {
    ServiceKey { frontend: Frontend::Address(a), port, protocol }
}

fn backends(addrs: &[Addr], port: u16, c: Conditions) -> Vec<BackendSpec> {
    addrs.iter().map(|&addr| BackendSpec { addr, port, weight: 1, conditions: c }).collect()
}

fn svc(name: &str, frontends: Vec<ServiceKey>, backends: Vec<BackendSpec>) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        frontends,
        backends,
        scheduler: Scheduler::Maglev,
        affinity: None,
        nat: NatMode::FullNat,
        snat: vec![a4(NODE), a6(NODE6)],
    }
}

/// The standard table of the worker's pipeline tests (`gateway/worker/tests/common`).
pub fn standard_services() -> Vec<ServiceSpec> {
    let three: Vec<Addr> = (1..=3).map(|i| a4(be(i))).collect();
    let mut dnat = svc(
        "default/dnat:80",
        vec![key(a4(VIP_DNAT), 80, Protocol::Tcp)],
        backends(&three, 8080, Conditions::READY),
    );
    dnat.nat = NatMode::Dnat;
    let mut aff = svc(
        "default/sticky:80",
        vec![key(a4(VIP_AFFINITY), 80, Protocol::Tcp)],
        backends(&three, 8080, Conditions::READY),
    );
    aff.affinity = Affinity::new(10);
    aff.scheduler = Scheduler::RoundRobin;
    let mut drain = backends(&three[..1], 8080, Conditions::READY);
    drain.extend(backends(&three[1..2], 8080, Conditions::DRAINING));
    let nodeport = |port, protocol| ServiceKey { frontend: Frontend::NodePort(Family::V4), port, protocol };
    let mut dns = svc(
        "default/dns:53",
        vec![key(a4(VIP), 53, Protocol::Udp), nodeport(31053, Protocol::Udp)],
        backends(&three, 5353, Conditions::READY),
    );
    dns.scheduler = Scheduler::LeastConnections;
    let mut web6 = svc(
        "default/web6:80",
        vec![key(a6(VIP6), 80, Protocol::Tcp)],
        backends(&[a6(be6(1)), a6(be6(2))], 8080, Conditions::READY),
    );
    web6.affinity = Affinity::new(30);
    let mut dns6 = svc(
        "default/dns6:53",
        vec![key(a6(VIP6), 53, Protocol::Udp)],
        backends(&[a6(be6(1))], 5353, Conditions::READY),
    );
    dns6.nat = NatMode::Dnat;
    dns6.scheduler = Scheduler::SourceHash;
    vec![
        svc(
            "default/web:80",
            vec![key(a4(VIP), 80, Protocol::Tcp), nodeport(31080, Protocol::Tcp)],
            backends(&three, 8080, Conditions::READY),
        ),
        dns,
        dnat,
        aff,
        svc("default/drain:80", vec![key(a4(VIP_DRAIN), 80, Protocol::Tcp)], drain),
        svc(
            "default/one:80",
            vec![key(a4(VIP_ONE), 80, Protocol::Tcp)],
            backends(&three[..1], 8080, Conditions::READY),
        ),
        svc(
            "default/one-udp:53",
            vec![key(a4(VIP_ONE), 53, Protocol::Udp)],
            backends(&three[..1], 5353, Conditions::READY),
        ),
        svc("default/empty:80", vec![key(a4(VIP_EMPTY), 80, Protocol::Tcp)], vec![]),
        web6,
        dns6,
    ]
}

fn build(generation: u64, services: Vec<ServiceSpec>) -> Arc<ServiceTable> {
    let spec = TableSpec {
        generation: Generation(generation),
        services,
        node_addrs: vec![a4(NODE), a6(NODE6)],
        maglev_size: MaglevSize::Auto,
        l7: Default::default(),
    };
    Arc::new(ServiceTable::build(&spec).unwrap_or_else(|e| panic!("the fuzz tables build: {e}")))
}

/// The tables op 4 swaps between: the standard one; one where backend 2 has left every service
/// and the unknown backend joined (flows re-validated, orphaned, parked); one with no services;
/// and the standard one with every NAT mode flipped.
pub fn tables() -> &'static [Arc<ServiceTable>] {
    static TABLES: OnceLock<Vec<Arc<ServiceTable>>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let moved = standard_services()
            .into_iter()
            .map(|mut s| {
                if s.backends.iter().any(|b| b.addr == a4(be(2))) {
                    s.backends.retain(|b| b.addr != a4(be(2)));
                    s.backends.push(BackendSpec {
                        addr: a4(be(UNKNOWN_BACKEND)),
                        port: 8080,
                        weight: 2,
                        conditions: Conditions::READY,
                    });
                }
                s
            })
            .collect();
        let flipped = standard_services()
            .into_iter()
            .map(|mut s| {
                s.nat = match s.nat {
                    NatMode::Dnat => NatMode::FullNat,
                    NatMode::FullNat => NatMode::Dnat,
                };
                s
            })
            .collect();
        vec![build(1, standard_services()), build(2, moved), build(3, vec![]), build(4, flipped)]
    })
}

fn next_hops() -> NextHops {
    let mut n = NextHops::new();
    n.add_route(Route { prefix: a4([198, 18, 0, 0]), len: 24, via: None });
    n.add_route(Route { prefix: a4([198, 18, 1, 0]), len: 24, via: None });
    n.add_route(Route { prefix: a4([0, 0, 0, 0]), len: 0, via: Some(a4(ROUTER)) });
    n.add_route(Route { prefix: a6(v6(0x0db8_0000, 0)), len: 64, via: None });
    n.add_route(Route { prefix: a6(v6(0x0db8_0001, 0)), len: 64, via: None });
    n.set_neighbor(a4(CLIENT), CLIENT_MAC);
    n.set_neighbor(a4(ROUTER), ROUTER_MAC);
    n.set_neighbor(a6(CLIENT6), CLIENT_MAC);
    for i in 1..=3 {
        n.set_neighbor(a4(be(i)), backend_mac(i));
        n.set_neighbor(a6(be6(i)), backend_mac(i));
    }
    n
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        mac: GW_MAC,
        l4: L4Config {
            flow_capacity: FLOW_CAPACITY,
            affinity_capacity: AFFINITY_CAPACITY,
            snat_ports: PortRange::new(20_000, 29_999).unwrap_or_else(|e| unreachable!("{e:?}")),
            seed: 0x1234,
            syn_cookie_key: Some(COOKIE_KEY),
            ..L4Config::default()
        },
    }
}

/// The SYN cookie key of the fuzzed worker (op 1 makes cookies with it, as the XDP program would).
const COOKIE_KEY: [u64; 2] = [0x5eed_c00c_1e00_0001, 0x0123_4567_89ab_cdef];

/// One end of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub mac: [u8; 6],
    pub ip: IpAddr,
    pub port: u16,
}

/// A flow the warm-up established: the client's side (client ↔ frontend) and the backend's
/// (gateway ↔ backend; for DNAT the gateway's end is the client's address).
#[derive(Debug, Clone, Copy)]
pub struct KnownFlow {
    pub tcp: bool,
    pub client: End,
    pub frontend: End,
    pub gateway: End,
    pub backend: End,
}

/// The flows the warm-up opens: (client, frontend, TCP?).
fn openers() -> Vec<(End, End, bool)> {
    let c4 = |port| End { mac: CLIENT_MAC, ip: IpAddr::from(CLIENT), port };
    let c6 = |port| End { mac: CLIENT_MAC, ip: IpAddr::from(CLIENT6), port };
    let remote = |port| End { mac: ROUTER_MAC, ip: IpAddr::from(REMOTE_CLIENT), port };
    let gw = |ip: IpAddr, port| End { mac: GW_MAC, ip, port };
    vec![
        (c4(40_000), gw(VIP.into(), 80), true),
        (c4(40_001), gw(VIP_DNAT.into(), 80), true),
        (c4(40_002), gw(VIP_AFFINITY.into(), 80), true),
        (c4(40_003), gw(VIP_DRAIN.into(), 80), true),
        (c4(40_004), gw(NODE.into(), 31080), true),
        (remote(40_005), gw(VIP.into(), 80), true),
        (c4(5000), gw(VIP.into(), 53), false),
        (c4(5001), gw(VIP_ONE.into(), 53), false),
        (c6(40_000), gw(VIP6.into(), 80), true),
        (c6(5000), gw(VIP6.into(), 53), false),
    ]
}

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

fn ip_step(src: End, dst: End, ttl: u8) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(src.mac, dst.mac);
    match (src.ip, dst.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), ttl),
        (s, d) => eth.ipv6(mapped(s), mapped(d), ttl),
    }
}

fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// A TCP segment from `src` to `dst` with `flags`.
pub fn tcp(src: End, dst: End, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    tcp_ttl(src, dst, 64, flags, seq, ack, payload)
}

fn tcp_ttl(src: End, dst: End, ttl: u8, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut s = ip_step(src, dst, ttl).tcp(src.port, dst.port, seq, 64_240);
    use tcp_flags::*;
    if flags & SYN != 0 {
        s = s.syn();
    }
    if flags & ACK != 0 {
        s = s.ack(ack);
    }
    if flags & FIN != 0 {
        s = s.fin();
    }
    if flags & RST != 0 {
        s = s.rst();
    }
    if flags & PSH != 0 {
        s = s.psh();
    }
    if flags & 0x20 != 0 {
        s = s.urg(1);
    }
    if flags & 0x40 != 0 {
        s = s.ece();
    }
    if flags & 0x80 != 0 {
        s = s.cwr();
    }
    let mut v = Vec::new();
    s.write(&mut v, payload).unwrap_or_else(|e| unreachable!("{e}"));
    v
}

/// A UDP datagram from `src` to `dst`.
pub fn udp(src: End, dst: End, payload: &[u8]) -> Vec<u8> {
    udp_ttl(src, dst, 64, payload)
}

fn udp_ttl(src: End, dst: End, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    ip_step(src, dst, ttl)
        .udp(src.port, dst.port)
        .write(&mut v, payload)
        .unwrap_or_else(|e| unreachable!("{e}"));
    v
}

/// An ICMP message (of the family of `src`) of type `ty`, code `code`, bytes 4..8 `rest`.
pub fn icmp(src: End, dst: End, ttl: u8, ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let step = ip_step(src, dst, ttl);
    let r = if src.ip.is_ipv4() && dst.ip.is_ipv4() {
        let t = match (ty, code) {
            (8, 0) | (0, 0) => {
                let echo = IcmpEchoHeader {
                    id: u16::from_be_bytes([rest[0], rest[1]]),
                    seq: u16::from_be_bytes([rest[2], rest[3]]),
                };
                if ty == 8 { Icmpv4Type::EchoRequest(echo) } else { Icmpv4Type::EchoReply(echo) }
            }
            _ => Icmpv4Type::Unknown { type_u8: ty, code_u8: code, bytes5to8: rest },
        };
        step.icmpv4(t).write(&mut v, payload)
    } else {
        step.icmpv6(Icmpv6Type::Unknown { type_u8: ty, code_u8: code, bytes5to8: rest })
            .write(&mut v, payload)
    };
    r.unwrap_or_else(|e| unreachable!("{e}"));
    v
}

/// A broadcast ARP message.
pub fn arp(
    op: u16,
    sender_mac: [u8; 6],
    sender: [u8; 4],
    target_mac: [u8; 6],
    target: [u8; 4],
    dst_mac: [u8; 6],
) -> Vec<u8> {
    use sluice_wire::{arp, ethernet};
    let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    ethernet::Frame::new_unchecked(&mut f[..]).emit(dst_mac, sender_mac, ethernet::ethertype::ARP);
    arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..])
        .emit(op, sender_mac, sender, target_mac, target);
    f
}

/// The warm worker and the flows it holds.
pub struct Harness {
    pub worker: Worker,
    pub port: MemPort,
    pub now_ns: u64,
    pub flows: Vec<KnownFlow>,
    /// Whether every frame of the batch being gathered is well formed with correct checksums.
    clean: bool,
    /// Frames injected and not yet received by the worker.
    batch: usize,
    /// Whether a frame the worker holds for its next hop came from a batch that was not clean
    /// (it may leave in a later batch).
    parked_dirty: bool,
}

impl Harness {
    /// A worker with the standard table, after the warm-up: every opener's flow established (the
    /// client's SYN, the backend's SYN-ACK, the client's ACK; a datagram each way for UDP).
    pub fn warm() -> Harness {
        let mut h = Harness {
            worker: Worker::new(&worker_config(), tables()[0].clone(), next_hops()),
            port: MemPort::new(FRAMES, 2048),
            now_ns: 1_000_000_000,
            flows: Vec::new(),
            clean: true,
            batch: 0,
            parked_dirty: false,
        };
        for (client, frontend, is_tcp) in openers() {
            let first = if is_tcp {
                tcp(client, frontend, tcp_flags::SYN, 100, 0, b"")
            } else {
                udp(client, frontend, b"query")
            };
            let Some(out) = h.one(&first) else { continue };
            let Some((gateway, backend)) = ends(&out) else { continue };
            let reply = if is_tcp {
                tcp(backend, gateway, tcp_flags::SYN | tcp_flags::ACK, 5000, 101, b"")
            } else {
                udp(backend, gateway, b"answer")
            };
            h.one(&reply);
            if is_tcp {
                h.one(&tcp(client, frontend, tcp_flags::ACK, 101, 5001, b"GET / HTTP/1.1\r\n\r\n"));
            }
            h.flows.push(KnownFlow { tcp: is_tcp, client, frontend, gateway, backend });
        }
        assert_eq!(h.flows.len(), openers().len(), "every warm-up flow is established");
        h.check();
        h
    }

    /// Runs one frame through alone: what was transmitted, if anything.
    fn one(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        self.port.inject(frame);
        self.worker.poll(&mut self.port, self.now_ns);
        self.port.drain_kernel();
        let out = self.port.take_tx();
        self.port.drain_tx(|_| {});
        out
    }

    /// Queues a frame for the next batch (running the batch first when it is full).
    pub fn push(&mut self, frame: &[u8], clean: bool, sent: &mut Vec<Vec<u8>>) {
        if frame.len() > 2048 {
            return;
        }
        if self.batch >= BATCH || !self.port.inject(frame) {
            self.run(sent);
            if !self.port.inject(frame) {
                return;
            }
        }
        self.batch += 1;
        self.clean &= clean;
    }

    /// Runs the gathered batch (every frame of it, whatever the transmit ring takes per poll)
    /// and checks the invariants. The frames sent are appended to `sent`.
    pub fn run(&mut self, sent: &mut Vec<Vec<u8>>) {
        // Each poll takes at least one frame (the ring has room for one), so this ends.
        let clean = self.clean && !self.parked_dirty;
        for _ in 0..=FRAMES {
            self.worker.poll(&mut self.port, self.now_ns);
            self.port.drain_tx(|f| {
                if clean && let Err(e) = verify(f) {
                    panic!("a batch of well-formed frames sent a bad one: {e}\n{f:02x?}");
                }
                sent.push(f.to_vec());
            });
            self.port.drain_kernel();
            if self.port.rx_pending() == 0 {
                break;
            }
        }
        assert_eq!(self.port.rx_pending(), 0, "the worker took every frame");
        self.parked_dirty = self.worker.parked() > 0 && !clean;
        self.batch = 0;
        self.clean = true;
        self.check();
    }

    fn check(&self) {
        let c = self.worker.counters();
        let held = (self.worker.parked() + self.worker.deferred()) as u64;
        // Segments the engine wrote in frames of their own leave (or are dropped) without having
        // arrived.
        let out = c[Counter::TxFrames] + c[Counter::KernelFrames] + c.dropped_total() + held;
        assert_eq!(c[Counter::RxFrames] + c[Counter::ExtrasSent], out, "every frame is accounted for: {c:?}");
        let flows = self.worker.l4().flows();
        assert!(flows.len() <= flows.capacity(), "{} flows in a table of {}", flows.len(), flows.capacity());
        assert_eq!(
            self.port.free_frames() + self.worker.parked() + self.worker.deferred(),
            FRAMES,
            "every frame buffer is free, parked or deferred"
        );
    }

    /// Op 1: a client's ACK answering a SYN cookie, as the XDP program would have made it. Bytes:
    /// `[0]` the opener, `[1..3]` the client port, `[3..7]` its ISN, `[7]` the MSS class (bits 0–1)
    /// and whether the backend answers (bit 2), `[8..12]` the backend's ISN, then the payload the
    /// ACK carries. A proxied connection opens; when the backend answers, its SYN-ACK to the SYN
    /// the worker sent follows.
    fn cookie_ack(&mut self, body: &[u8], sent: &mut Vec<Vec<u8>>) {
        use sluice_model::syncookie::{self, Handshake};
        let b = |i: usize| body.get(i).copied().unwrap_or(0);
        let tcp_openers: Vec<(End, End, bool)> = openers().into_iter().filter(|o| o.2).collect();
        let (client, frontend, _) = tcp_openers[usize::from(b(0)) % tcp_openers.len()];
        let client = End { port: u16::from_le_bytes([b(1), b(2)]) | 1024, ..client };
        let isn = u32::from_le_bytes([b(3), b(4), b(5), b(6)]);
        let payload = &body[body.len().min(12)..];
        let hs = Handshake {
            client: mapped(client.ip),
            frontend: mapped(frontend.ip),
            cport: client.port,
            fport: frontend.port,
            isn,
        };
        let c = syncookie::cookie(COOKIE_KEY, &hs, syncookie::slot(self.now_ns), b(7) & 3);
        let flags = tcp_flags::ACK | if payload.is_empty() { 0 } else { tcp_flags::PSH };
        let f = tcp(client, frontend, flags, isn.wrapping_add(1), c.wrapping_add(1), payload);
        self.push(&f, well_formed(&f), sent);
        if b(7) & 4 == 0 {
            return;
        }
        self.run(sent);
        let syn = sent.iter().find_map(|out| {
            let p = SlicedPacket::from_ethernet(out).ok()?;
            let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else { return None };
            (t.syn() && !t.ack() && t.sequence_number() == isn).then(|| ends(out)).flatten()
        });
        if let Some((gateway, backend)) = syn {
            let seq = u32::from_le_bytes([b(8), b(9), b(10), b(11)]);
            let synack =
                tcp(backend, gateway, tcp_flags::SYN | tcp_flags::ACK, seq, isn.wrapping_add(1), b"");
            self.push(&synack, true, sent);
        }
    }

    /// Runs the operations of `data` (see the module documentation), then lets every parked and
    /// deferred frame time out.
    pub fn run_ops(&mut self, data: &[u8]) {
        let mut sent = Vec::new();
        let mut rest = data;
        while let Some((&op, tail)) = rest.split_first() {
            let len = match tail {
                [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
                _ => 0,
            };
            let body_start = tail.len().min(2);
            let body = &tail[body_start..body_start + len.min(tail.len() - body_start)];
            rest = &tail[body_start + body.len()..];
            match op % 8 {
                0 => self.push(body, well_formed(body), &mut sent),
                1 => self.cookie_ack(body, &mut sent),
                2 => self.run(&mut sent),
                3 => {
                    let mut ms = [0u8; 4];
                    ms[..body.len().min(4)].copy_from_slice(&body[..body.len().min(4)]);
                    self.run(&mut sent);
                    self.now_ns += u64::from(u32::from_le_bytes(ms)) * 1_000_000;
                }
                4 => {
                    self.run(&mut sent);
                    let t = tables();
                    self.worker
                        .set_table(t[usize::from(body.first().copied().unwrap_or(0)) % t.len()].clone());
                }
                5 => {
                    self.run(&mut sent);
                    let n = self.worker.next_hops_mut();
                    n.set_neighbor(a4(be(UNKNOWN_BACKEND)), backend_mac(UNKNOWN_BACKEND));
                    n.set_neighbor(a6(be6(UNKNOWN_BACKEND)), backend_mac(UNKNOWN_BACKEND));
                }
                6 => {
                    self.run(&mut sent);
                    self.port.set_tx_capacity(1 + usize::from(body.first().copied().unwrap_or(0)) % BATCH);
                }
                _ => {
                    let Ok(spec) = FrameSpec::arbitrary(&mut Unstructured::new(body)) else { continue };
                    let frame = spec.build(&self.flows);
                    let clean = well_formed(&frame);
                    self.push(&frame, clean, &mut sent);
                }
            }
            // The frames sent are not kept beyond a batch: only checked.
            sent.clear();
        }
        self.run(&mut sent);
        // Past the longest hold: a parked frame's and a deferred one's.
        self.now_ns += 2 * sluice_worker::worker::PARK_NS.max(sluice_lb::engine::DEFER_NS);
        self.run(&mut sent);
        assert_eq!(self.worker.parked(), 0, "parked frames time out");
        assert_eq!(self.worker.deferred(), 0, "deferred frames time out");
        assert_eq!(self.port.free_frames(), FRAMES, "every frame buffer came back");
    }
}

/// The (gateway, backend) ends of a frame the worker sent towards a backend.
fn ends(out: &[u8]) -> Option<(End, End)> {
    let p = SlicedPacket::from_ethernet(out).ok()?;
    let (src, dst) = match p.net? {
        etherparse::NetSlice::Ipv4(ip) => {
            (IpAddr::from(ip.header().source()), IpAddr::from(ip.header().destination()))
        }
        etherparse::NetSlice::Ipv6(ip) => {
            (IpAddr::from(ip.header().source()), IpAddr::from(ip.header().destination()))
        }
    };
    let (sport, dport) = match p.transport? {
        etherparse::TransportSlice::Tcp(t) => (t.source_port(), t.destination_port()),
        etherparse::TransportSlice::Udp(u) => (u.source_port(), u.destination_port()),
        _ => return None,
    };
    let dst_mac = [out[0], out[1], out[2], out[3], out[4], out[5]];
    Some((End { mac: GW_MAC, ip: src, port: sport }, End { mac: dst_mac, ip: dst, port: dport }))
}

/// Whether a frame is one etherparse reads whole and whose checksums are right (an input the
/// worker's rewrites must keep right).
pub fn well_formed(f: &[u8]) -> bool {
    SlicedPacket::from_ethernet(f).is_ok() && verify(f).is_ok()
}

/// Checks the IPv4 header checksum and the TCP, UDP, ICMP or ICMPv6 checksum of a frame.
pub fn verify(f: &[u8]) -> Result<(), String> {
    use sluice_wire::checksum::{accumulate, finish, pseudo_header_v4, pseudo_header_v6};
    let p = SlicedPacket::from_ethernet(f).map_err(|e| format!("unreadable: {e}"))?;
    let Some(net) = p.net else { return Ok(()) };
    let (pseudo, proto, l4) = match &net {
        etherparse::NetSlice::Ipv4(ip) => {
            let h = ip.header();
            if finish(accumulate(0, h.slice())) != 0 {
                return Err("IPv4 header checksum".into());
            }
            if h.is_fragmenting_payload() {
                return Ok(());
            }
            let pl = ip.payload();
            let proto = pl.ip_number.0;
            let len = u16::try_from(pl.payload.len()).map_err(|_| "length")?;
            (pseudo_header_v4(h.source(), h.destination(), proto, len), proto, pl.payload)
        }
        etherparse::NetSlice::Ipv6(ip) => {
            let h = ip.header();
            if ip.is_payload_fragmented() {
                return Ok(());
            }
            let pl = ip.payload();
            let proto = pl.ip_number.0;
            let len = u32::try_from(pl.payload.len()).map_err(|_| "length")?;
            (pseudo_header_v6(&h.source(), &h.destination(), proto, len), proto, pl.payload)
        }
    };
    let v4 = matches!(net, etherparse::NetSlice::Ipv4(_));
    let ok = match proto {
        6 => finish(accumulate(pseudo, l4)) == 0,
        // UDP over IPv4 may carry no checksum.
        17 => (v4 && l4.len() >= 8 && l4[6..8] == [0, 0]) || finish(accumulate(pseudo, l4)) == 0,
        1 if v4 => finish(accumulate(0, l4)) == 0,
        58 if !v4 => finish(accumulate(pseudo, l4)) == 0,
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("protocol {proto} checksum")) }
}

// ---- Structured frames -------------------------------------------------------------------------

/// A host: one the table or the neighbour table knows, or any address.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Host {
    Known(u8),
    Any([u8; 16]),
}

const HOSTS4: [[u8; 4]; 16] = [
    CLIENT,
    REMOTE_CLIENT,
    ROUTER,
    NODE,
    VIP,
    VIP_DNAT,
    VIP_AFFINITY,
    VIP_DRAIN,
    VIP_ONE,
    VIP_EMPTY,
    [198, 18, 1, 1],
    [198, 18, 1, 2],
    [198, 18, 1, 3],
    [198, 18, 1, UNKNOWN_BACKEND],
    [255, 255, 255, 255],
    [0, 0, 0, 0],
];

fn hosts6(i: u8) -> [u8; 16] {
    match i % 8 {
        0 => CLIENT6,
        1 => NODE6,
        2 => VIP6,
        3 => be6(1),
        4 => be6(UNKNOWN_BACKEND),
        5 => [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        6 => [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1],
        _ => [0; 16],
    }
}

impl Host {
    fn ip(self, v6: bool) -> IpAddr {
        match (self, v6) {
            (Host::Known(i), false) => IpAddr::from(HOSTS4[usize::from(i) % HOSTS4.len()]),
            (Host::Known(i), true) => IpAddr::from(hosts6(i)),
            (Host::Any(a), false) => IpAddr::from([a[0], a[1], a[2], a[3]]),
            (Host::Any(a), true) => IpAddr::from(a),
        }
    }

    fn v4(self) -> [u8; 4] {
        match self.ip(false) {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(_) => unreachable!("asked for IPv4"),
        }
    }

    fn v6(self) -> [u8; 16] {
        mapped(self.ip(true))
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum MacSel {
    Gateway,
    Client,
    Router,
    Backend(u8),
    Broadcast,
    Any([u8; 6]),
}

impl MacSel {
    fn mac(self) -> [u8; 6] {
        match self {
            MacSel::Gateway => GW_MAC,
            MacSel::Client => CLIENT_MAC,
            MacSel::Router => ROUTER_MAC,
            MacSel::Backend(i) => backend_mac(i % 4),
            MacSel::Broadcast => [0xff; 6],
            MacSel::Any(m) => m,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum PortSel {
    Known(u8),
    Any(u16),
}

impl PortSel {
    fn port(self) -> u16 {
        const KNOWN: [u16; 14] =
            [80, 53, 31080, 31053, 8080, 5353, 40_000, 5000, 20_000, 29_999, 0, 22, 443, 65535];
        match self {
            PortSel::Known(i) => KNOWN[usize::from(i) % KNOWN.len()],
            PortSel::Any(p) => p,
        }
    }
}

/// VLAN tags inserted after the MAC addresses.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Vlan {
    None,
    Dot1q(u16),
    QinQ(u16, u16),
    /// More tags than the worker walks.
    Three(u16),
    /// Any tag protocol identifier.
    Any(u16, u16),
}

impl Vlan {
    fn insert(self, f: &mut Vec<u8>) {
        let tags: Vec<[u16; 2]> = match self {
            Vlan::None => return,
            Vlan::Dot1q(t) => vec![[0x8100, t]],
            Vlan::QinQ(o, i) => vec![[0x88a8, o], [0x8100, i]],
            Vlan::Three(t) => vec![[0x88a8, t], [0x8100, t], [0x8100, t]],
            Vlan::Any(tpid, t) => vec![[tpid, t]],
        };
        if f.len() < 12 {
            return;
        }
        let bytes: Vec<u8> =
            tags.iter().flat_map(|[p, t]| p.to_be_bytes().into_iter().chain(t.to_be_bytes())).collect();
        f.splice(12..12, bytes);
    }
}

/// An IPv6 extension header, inserted between the fixed header and the upper layer.
#[derive(Debug, Clone, Arbitrary)]
pub struct Ext {
    kind: ExtKind,
    /// Length in the header's units, beyond the minimum (at most 3 used).
    len: u8,
    fill: u8,
    /// Routing header: type and segments left; fragment header: offset, more-fragments, id.
    a: u16,
    b: u32,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ExtKind {
    HopByHop,
    Routing,
    Fragment,
    DestOpts,
    Auth,
    NoNext,
    Any(u8),
}

impl ExtKind {
    fn number(self) -> u8 {
        match self {
            ExtKind::HopByHop => 0,
            ExtKind::Routing => 43,
            ExtKind::Fragment => 44,
            ExtKind::DestOpts => 60,
            ExtKind::Auth => 51,
            ExtKind::NoNext => 59,
            ExtKind::Any(n) => n,
        }
    }
}

/// Inserts `exts` into the IPv6 frame `f` (untagged: before [`Vlan::insert`]), chaining each
/// one's next header, and fixes the payload length. Transport checksums stay right: the
/// pseudo-header counts the upper-layer length only.
fn insert_exts(f: &mut Vec<u8>, exts: &[Ext]) {
    const L3: usize = 14;
    if exts.is_empty() || f.len() < L3 + 40 || f[12..14] != [0x86, 0xdd] {
        return;
    }
    let mut next = f[L3 + 6];
    let mut chain = Vec::new();
    for e in exts.iter().rev() {
        let len = usize::from(e.len % 4);
        let mut h = match e.kind {
            ExtKind::Fragment => {
                let mut h = vec![next, 0];
                h.extend_from_slice(&e.a.to_be_bytes());
                h.extend_from_slice(&e.b.to_be_bytes());
                h
            }
            // RFC 4302 §2.2: the length is in 4-octet units, minus 2.
            ExtKind::Auth => {
                let mut h = vec![next, (len * 2 + 1) as u8];
                h.resize(8 * (len + 1), e.fill);
                h
            }
            _ => {
                let mut h = vec![next, len as u8];
                h.resize(8 * (len + 1), e.fill);
                if matches!(e.kind, ExtKind::Routing) {
                    h[2..4].copy_from_slice(&e.a.to_be_bytes());
                }
                h
            }
        };
        next = e.kind.number();
        h.extend(chain);
        chain = h;
    }
    f[L3 + 6] = next;
    let payload_len = u16::from_be_bytes([f[L3 + 4], f[L3 + 5]]).saturating_add(chain.len() as u16);
    f[L3 + 4..L3 + 6].copy_from_slice(&payload_len.to_be_bytes());
    f.splice(L3 + 40..L3 + 40, chain);
}

#[derive(Debug, Clone, Arbitrary)]
pub enum L4 {
    Tcp { sport: PortSel, dport: PortSel, flags: u8, seq: u32, ack: u32 },
    Udp { sport: PortSel, dport: PortSel },
    Icmp { ty: u8, code: u8, rest: [u8; 4] },
    Echo { reply: bool, id: u16, seq: u16 },
    Other { proto: u8 },
}

/// Which way a segment of a warm flow goes.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Dir {
    /// Client → frontend (the original direction).
    ClientToFrontend,
    /// Backend → gateway (the reply direction).
    BackendToGateway,
    /// Frontend → client, as if the gateway's own reply came back.
    FrontendToClient,
    /// Gateway → backend, as if the gateway's own packet came back.
    GatewayToBackend,
}

/// Which side an ICMP error about a warm flow comes from.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Side {
    /// About a packet the gateway sent the client (frontend → client), from the client or the
    /// router.
    Client,
    /// About a packet the gateway sent the backend (gateway → backend), from the backend or the
    /// router.
    Backend,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum IcmpError {
    Unreachable(u8),
    /// Fragmentation needed (IPv4) or packet too big (IPv6), with an MTU.
    TooBig(u16),
    TimeExceeded(u8),
    ParameterProblem(u8),
    Any(u8, u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum NdType {
    RouterSolicit,
    RouterAdvert,
    NeighborSolicit,
    NeighborAdvert,
    Redirect,
    Any(u8),
}

/// A frame, described.
#[derive(Debug, Clone, Arbitrary)]
pub enum FrameSpec {
    /// Any IP packet.
    Ip {
        v6: bool,
        vlan: Vlan,
        src_mac: MacSel,
        dst_mac: MacSel,
        src: Host,
        dst: Host,
        ttl: u8,
        exts: Vec<Ext>,
        l4: L4,
        payload: Vec<u8>,
    },
    /// A segment (or datagram) of a warm flow.
    Flow {
        flow: u8,
        dir: Dir,
        vlan: Vlan,
        ttl: u8,
        exts: Vec<Ext>,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: Vec<u8>,
    },
    /// An ICMP error quoting a packet of a warm flow (its first `quote_len` bytes).
    IcmpError { flow: u8, side: Side, from_router: bool, error: IcmpError, quote_len: u16, vlan: Vlan },
    /// ARP.
    Arp {
        vlan: Vlan,
        op: u16,
        sender_mac: MacSel,
        sender: Host,
        target_mac: MacSel,
        target: Host,
        broadcast: bool,
    },
    /// Neighbour discovery (ICMPv6): its type, target, options.
    Nd {
        vlan: Vlan,
        ty: NdType,
        sender_mac: MacSel,
        sender: Host,
        target: Host,
        hop_limit: u8,
        flags: u8,
        source_ll: bool,
        multicast: bool,
        options: Vec<u8>,
    },
}

fn cap(v: &[u8], n: usize) -> &[u8] {
    &v[..v.len().min(n)]
}

impl FrameSpec {
    /// The frame's bytes, on the warm flows `flows`.
    pub fn build(&self, flows: &[KnownFlow]) -> Vec<u8> {
        match self {
            FrameSpec::Ip { v6, vlan, src_mac, dst_mac, src, dst, ttl, exts, l4, payload } => {
                let s = |port| End { mac: src_mac.mac(), ip: src.ip(*v6), port };
                let d = |port| End { mac: dst_mac.mac(), ip: dst.ip(*v6), port };
                let payload = cap(payload, 512);
                let mut f = match *l4 {
                    L4::Tcp { sport, dport, flags, seq, ack } => {
                        tcp_ttl(s(sport.port()), d(dport.port()), *ttl, flags, seq, ack, payload)
                    }
                    L4::Udp { sport, dport } => udp_ttl(s(sport.port()), d(dport.port()), *ttl, payload),
                    L4::Icmp { ty, code, rest } => icmp(s(0), d(0), *ttl, ty, code, rest, payload),
                    L4::Echo { reply, id, seq } => {
                        let [a, b] = id.to_be_bytes();
                        let [c, e] = seq.to_be_bytes();
                        let ty = match (v6, reply) {
                            (false, false) => 8,
                            (false, true) => 0,
                            (true, false) => 128,
                            (true, true) => 129,
                        };
                        icmp(s(0), d(0), *ttl, ty, 0, [a, b, c, e], payload)
                    }
                    // A UDP datagram relabelled: etherparse's builder panics on an extension
                    // header's number as the last protocol.
                    L4::Other { proto } => {
                        let mut v = udp_ttl(s(0), d(0), *ttl, payload);
                        relabel(&mut v, proto);
                        v
                    }
                };
                insert_exts(&mut f, cap_exts(exts));
                vlan.insert(&mut f);
                f
            }
            FrameSpec::Flow { flow, dir, vlan, ttl, exts, flags, seq, ack, payload } => {
                let Some(k) = pick(flows, *flow) else { return Vec::new() };
                let (src, dst) = match dir {
                    Dir::ClientToFrontend => (k.client, k.frontend),
                    Dir::BackendToGateway => (k.backend, k.gateway),
                    Dir::FrontendToClient => (k.frontend, k.client),
                    Dir::GatewayToBackend => (k.gateway, k.backend),
                };
                let src = End {
                    mac: if matches!(dir, Dir::BackendToGateway) { src.mac } else { CLIENT_MAC },
                    ..src
                };
                let dst = End { mac: GW_MAC, ..dst };
                let payload = cap(payload, 512);
                let mut f = if k.tcp {
                    tcp_ttl(src, dst, ttl.saturating_add(2), *flags, *seq, *ack, payload)
                } else {
                    udp_ttl(src, dst, ttl.saturating_add(2), payload)
                };
                insert_exts(&mut f, cap_exts(exts));
                vlan.insert(&mut f);
                f
            }
            FrameSpec::IcmpError { flow, side, from_router, error, quote_len, vlan } => {
                let Some(k) = pick(flows, *flow) else { return Vec::new() };
                // The packet quoted is one the gateway sent; the error comes back to the gateway.
                let (quoted_src, quoted_dst) = match side {
                    Side::Client => (k.frontend, k.client),
                    Side::Backend => (k.gateway, k.backend),
                };
                let quoted = if k.tcp {
                    tcp(quoted_src, quoted_dst, tcp_flags::ACK, 5001, 101, b"quoted payload")
                } else {
                    udp(quoted_src, quoted_dst, b"quoted payload")
                };
                let quoted = &quoted[14..];
                let quoted = &quoted[..quoted.len().min(usize::from(*quote_len))];
                let v4 = quoted_src.ip.is_ipv4();
                let (ty, code, rest) = match (*error, v4) {
                    (IcmpError::Unreachable(c), true) => (3, c % 16, [0; 4]),
                    (IcmpError::Unreachable(c), false) => (1, c % 8, [0; 4]),
                    (IcmpError::TooBig(mtu), true) => (3, 4, [0, 0, (mtu >> 8) as u8, mtu as u8]),
                    (IcmpError::TooBig(mtu), false) => (2, 0, u32::from(mtu).to_be_bytes()),
                    (IcmpError::TimeExceeded(c), true) => (11, c % 2, [0; 4]),
                    (IcmpError::TimeExceeded(c), false) => (3, c % 2, [0; 4]),
                    (IcmpError::ParameterProblem(p), true) => (12, 0, [p, 0, 0, 0]),
                    (IcmpError::ParameterProblem(p), false) => (4, 0, u32::from(p).to_be_bytes()),
                    (IcmpError::Any(t, c), _) => (t, c, [0; 4]),
                };
                let reporter = if *from_router {
                    End {
                        mac: ROUTER_MAC,
                        ip: if v4 { IpAddr::from(ROUTER) } else { IpAddr::from(be6(3)) },
                        port: 0,
                    }
                } else {
                    End { port: 0, ..quoted_dst }
                };
                let to = End { mac: GW_MAC, port: 0, ..quoted_src };
                let mut f = icmp(reporter, to, 64, ty, code, rest, quoted);
                vlan.insert(&mut f);
                f
            }
            FrameSpec::Arp { vlan, op, sender_mac, sender, target_mac, target, broadcast } => {
                let op = match op % 4 {
                    0 => 1,
                    1 => 2,
                    _ => *op,
                };
                let dst = if *broadcast { [0xff; 6] } else { GW_MAC };
                let mut f = arp(op, sender_mac.mac(), sender.v4(), target_mac.mac(), target.v4(), dst);
                vlan.insert(&mut f);
                f
            }
            FrameSpec::Nd {
                vlan,
                ty,
                sender_mac,
                sender,
                target,
                hop_limit,
                flags,
                source_ll,
                multicast,
                options,
            } => {
                let ty = match ty {
                    NdType::RouterSolicit => 133,
                    NdType::RouterAdvert => 134,
                    NdType::NeighborSolicit => 135,
                    NdType::NeighborAdvert => 136,
                    NdType::Redirect => 137,
                    NdType::Any(t) => *t,
                };
                let tgt = target.v6();
                let (dst_ip, dst_mac) = if *multicast {
                    let mut group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
                    group[13..].copy_from_slice(&tgt[13..]);
                    (group, [0x33, 0x33, 0xff, tgt[13], tgt[14], tgt[15]])
                } else {
                    (tgt, GW_MAC)
                };
                let mac = sender_mac.mac();
                let mut body = tgt.to_vec();
                if *source_ll {
                    body.extend_from_slice(&[if ty == 136 { 2 } else { 1 }, 1]);
                    body.extend_from_slice(&mac);
                }
                body.extend_from_slice(cap(options, 64));
                let src = End { mac, ip: IpAddr::from(sender.v6()), port: 0 };
                let dst = End { mac: dst_mac, ip: IpAddr::from(dst_ip), port: 0 };
                let mut f = icmp(src, dst, *hop_limit, ty, 0, [*flags, 0, 0, 0], &body);
                vlan.insert(&mut f);
                f
            }
        }
    }
}

/// Sets the protocol (IPv4) or next header (IPv6) of an untagged frame, keeping the IPv4 header
/// checksum right.
fn relabel(f: &mut [u8], proto: u8) {
    use sluice_wire::checksum::checksum;
    match (f[12], f[13]) {
        (0x08, 0x00) => {
            f[23] = proto;
            f[24..26].fill(0);
            let c = checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        _ => f[20] = proto,
    }
}

fn pick(flows: &[KnownFlow], i: u8) -> Option<&KnownFlow> {
    (!flows.is_empty()).then(|| &flows[usize::from(i) % flows.len()])
}

fn cap_exts(exts: &[Ext]) -> &[Ext] {
    &exts[..exts.len().min(4)]
}

/// Writes records of the input format (see the module documentation).
#[derive(Debug, Default)]
pub struct Record(pub Vec<u8>);

impl Record {
    fn op(mut self, op: u8, body: &[u8]) -> Record {
        self.0.push(op);
        self.0.extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.0.extend_from_slice(body);
        self
    }

    /// A raw frame.
    pub fn frame(self, f: &[u8]) -> Record {
        self.op(0, f)
    }

    /// A structured frame, from bytes `arbitrary` reads.
    pub fn spec(self, bytes: &[u8]) -> Record {
        self.op(7, bytes)
    }

    /// A client's ACK answering a SYN cookie (see [`Harness::cookie_ack`] for the bytes).
    pub fn cookie_ack(self, bytes: &[u8]) -> Record {
        self.op(1, bytes)
    }

    /// Runs the batch.
    pub fn batch(self) -> Record {
        self.op(2, &[])
    }

    /// Time passes.
    pub fn wait_ms(self, ms: u32) -> Record {
        self.op(3, &ms.to_le_bytes())
    }

    /// Swaps to table `i`.
    pub fn table(self, i: u8) -> Record {
        self.op(4, &[i])
    }

    /// The unknown backend's neighbour is learnt.
    pub fn learn(self) -> Record {
        self.op(5, &[])
    }

    /// The transmit ring holds `n` frames.
    pub fn tx_ring(self, n: u8) -> Record {
        self.op(6, &[n.saturating_sub(1)])
    }
}
